//! Large bodies from the edge to the client without passing through user space: `splice(2)`
//! moves the socket's pages into a pipe and from the pipe into the other socket, so the relay
//! copies none of the bytes it carries (a read and a write each copy every byte once).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bodies at least this long (after what came with the head) are spliced.
pub const MIN_SPLICED: u64 = 128 * 1024;
/// The pipe's size: bytes moved per round.
const PIPE_BYTES: libc::c_int = 256 * 1024;

/// A pipe for one body.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 returned two new descriptors that nothing else owns.
        let pipe = unsafe {
            Pipe {
                read: OwnedFd::from_raw_fd(fds[0]),
                write: OwnedFd::from_raw_fd(fds[1]),
            }
        };
        // A larger pipe moves more per system call; the default (64 KiB) works too.
        // SAFETY: fcntl on a descriptor this function owns.
        unsafe { libc::fcntl(pipe.write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES) };
        Ok(pipe)
    }
}

/// One non-blocking `splice` of up to `len` bytes.
fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain descriptors, no offsets (sockets and pipes have none).
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Moves exactly `len` body bytes from `edge` to `client`. An error (the edge closing early
/// included) leaves the client's answer short: the caller closes the client's connection.
pub async fn body(
    edge: &TcpStream,
    client: &TcpStream,
    mut len: u64,
    read_limit: Duration,
    write_limit: Duration,
) -> io::Result<()> {
    let pipe = Pipe::new()?;
    while len > 0 {
        let want = len.min(PIPE_BYTES as u64) as usize;
        let moved = loop {
            match edge.try_io(Interest::READABLE, || {
                splice(edge.as_raw_fd(), pipe.write.as_raw_fd(), want)
            }) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::time::timeout(read_limit, edge.readable())
                        .await
                        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
                }
                Err(e) => return Err(e),
            }
        };
        len -= moved as u64;
        let mut in_pipe = moved;
        while in_pipe > 0 {
            match client.try_io(Interest::WRITABLE, || {
                splice(pipe.read.as_raw_fd(), client.as_raw_fd(), in_pipe)
            }) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => in_pipe -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::time::timeout(write_limit, client.writable())
                        .await
                        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}
