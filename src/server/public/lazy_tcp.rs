//! An accepted socket that joins the event loop only when it has to wait. Most connections of a
//! redirector carry one request that is already there when the connection is accepted, and
//! one small answer that fits the socket buffer: such a connection is read, answered and
//! closed without ever being registered with epoll (two system calls fewer than a tokio
//! `TcpStream`, which registers at accept and deregisters at close).

use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub enum LazyTcp {
    /// Not registered yet: non-blocking calls on the socket itself.
    Plain(std::net::TcpStream),
    Registered(TcpStream),
    /// Registration failed; every call fails.
    Broken,
}

/// Accepts one connection from a non-blocking listener, itself non-blocking (`accept4` with
/// `SOCK_NONBLOCK`, so no extra `fcntl`).
pub fn accept_nonblocking(
    listener: &std::net::TcpListener,
) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` and `len` describe a valid, writable sockaddr buffer.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: accept4 returned a new descriptor that nothing else owns.
    let stream = std::net::TcpStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
    match socket_addr(&storage) {
        Some(peer) => Ok((stream, peer)),
        None => stream.peer_addr().map(|peer| (stream, peer)),
    }
}

/// The IPv4 or IPv6 address in `storage`, as the kernel filled it.
fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let v4 =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let v6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(v6.sin6_port),
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

impl LazyTcp {
    /// The registered stream, registering now if needed.
    pub fn registered(&mut self) -> io::Result<&mut TcpStream> {
        if matches!(self, LazyTcp::Plain(_)) {
            if let LazyTcp::Plain(plain) = std::mem::replace(self, LazyTcp::Broken) {
                *self = LazyTcp::Registered(TcpStream::from_std(plain)?);
            }
        }
        match self {
            LazyTcp::Registered(stream) => Ok(stream),
            _ => Err(io::Error::new(io::ErrorKind::NotConnected, "socket lost")),
        }
    }

    /// The registered stream, owned (for Pingora).
    pub fn into_registered(mut self) -> io::Result<TcpStream> {
        self.registered()?;
        match self {
            LazyTcp::Registered(stream) => Ok(stream),
            _ => Err(io::Error::new(io::ErrorKind::NotConnected, "socket lost")),
        }
    }

    pub fn set_nodelay(&self) {
        let _ = match self {
            LazyTcp::Plain(s) => s.set_nodelay(true),
            LazyTcp::Registered(s) => s.set_nodelay(true),
            LazyTcp::Broken => Ok(()),
        };
    }
}

fn would_block(result: &io::Result<usize>) -> bool {
    matches!(result, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

impl AsyncRead for LazyTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let LazyTcp::Plain(plain) = this {
            // SAFETY: recv writes at most `unfilled.len()` bytes into the unfilled part, and
            // only the `n` bytes it reports are marked initialised.
            let unfilled = unsafe { buf.unfilled_mut() };
            let n = unsafe {
                libc::recv(
                    plain.as_raw_fd(),
                    unfilled.as_mut_ptr().cast(),
                    unfilled.len(),
                    0,
                )
            };
            let result = if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            };
            if !would_block(&result) {
                return Poll::Ready(result.map(|n| {
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                }));
            }
        }
        match this.registered() {
            Ok(stream) => Pin::new(stream).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for LazyTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let LazyTcp::Plain(plain) = this {
            let result = plain.write(data);
            if !would_block(&result) {
                return Poll::Ready(result);
            }
        }
        match this.registered() {
            Ok(stream) => Pin::new(stream).poll_write(cx, data),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            LazyTcp::Plain(plain) => Poll::Ready(plain.shutdown(std::net::Shutdown::Write)),
            LazyTcp::Registered(stream) => Pin::new(stream).poll_shutdown(cx),
            LazyTcp::Broken => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_sockets_are_non_blocking_and_know_their_peer() {
        for local in ["127.0.0.1:0", "[::1]:0"] {
            let listener = std::net::TcpListener::bind(local).unwrap();
            listener.set_nonblocking(true).unwrap();
            let pending = accept_nonblocking(&listener).unwrap_err();
            assert_eq!(pending.kind(), io::ErrorKind::WouldBlock, "{local}");
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            // connect() has returned: the connection is in the accept queue.
            let (accepted, peer) = accept_nonblocking(&listener).unwrap();
            assert_eq!(peer, client.local_addr().unwrap(), "{local}");
            let mut byte = [0u8; 1];
            let read = std::io::Read::read(&mut &accepted, &mut byte).unwrap_err();
            assert_eq!(read.kind(), io::ErrorKind::WouldBlock, "{local}");
        }
    }
}
