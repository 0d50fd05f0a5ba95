//! Write coalescing for the streams handed to Pingora: a response head and a small body leave
//! in one `send` instead of two.
//!
//! Pingora writes a response head and then its body, and flushes after each body write (and
//! after a head with no body). Its own listeners give their streams a small write buffer for
//! that; the streams the router's own loop hands over come from `From<TcpStream>`, which has
//! none (and the buffer setter is crate-private), so every proxied answer cost one more
//! system call, and on a TCP connection a `send` is the most expensive thing a request does
//! (the receiver's side of loopback runs inside it). [`CoalescedWrites`] keeps writes until a
//! flush, up to [`LIMIT`] bytes; a larger write goes out together with what is kept, in one
//! vectored write. Everything else (reads, digests, TLS facts) is the inner stream's.

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Writes kept until a flush: enough for a head and a small body.
pub const LIMIT: usize = 16 * 1024;

/// A stream whose writes are kept until a flush (see the module documentation).
#[derive(Debug)]
pub struct CoalescedWrites<S> {
    inner: S,
    /// Written by the caller, not yet by the stream; `kept[sent..]` is what is left.
    kept: Vec<u8>,
    sent: usize,
}

impl<S> CoalescedWrites<S> {
    pub fn new(inner: S) -> Self {
        CoalescedWrites {
            inner,
            kept: Vec::new(),
            sent: 0,
        }
    }

    fn pending(&self) -> &[u8] {
        &self.kept[self.sent..]
    }

    fn forget_sent(&mut self) {
        self.kept.clear();
        self.sent = 0;
    }
}

impl<S: AsyncWrite + Unpin> CoalescedWrites<S> {
    /// Writes out what is kept.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending().is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.kept[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.forget_sent();
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CoalescedWrites<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending().len() + buf.len() <= LIMIT {
            this.kept.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        // Too much to keep: what is kept and `buf` leave together.
        while !this.pending().is_empty() {
            let slices = [IoSlice::new(&this.kept[this.sent..]), IoSlice::new(buf)];
            let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let pending = this.pending().len();
            if n > pending {
                this.forget_sent();
                return Poll::Ready(Ok(n - pending));
            }
            this.sent += n;
        }
        this.forget_sent();
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CoalescedWrites<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

#[async_trait]
impl<S: AsyncWrite + Shutdown + Unpin + Send> Shutdown for CoalescedWrites<S> {
    async fn shutdown(&mut self) {
        if let Err(e) = self.flush().await {
            log::debug!("cannot flush before shutdown: {e}");
        }
        self.inner.shutdown().await;
    }
}

impl<S: UniqueID> UniqueID for CoalescedWrites<S> {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl<S: Ssl> Ssl for CoalescedWrites<S> {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl<S: GetTimingDigest> GetTimingDigest for CoalescedWrites<S> {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl<S: GetProxyDigest> GetProxyDigest for CoalescedWrites<S> {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl<S: GetSocketDigest> GetSocketDigest for CoalescedWrites<S> {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, socket_digest: SocketDigest) {
        self.inner.set_socket_digest(socket_digest)
    }
}

#[async_trait]
impl<S: Peek + Send> Peek for CoalescedWrites<S> {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The other end of a socket: records each system call's bytes, taking at most `per_call`.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<Vec<u8>>,
        per_call: Option<usize>,
        flushes: usize,
    }

    impl Recorder {
        fn take(&mut self, slices: &[IoSlice<'_>]) -> usize {
            let mut call = Vec::new();
            for slice in slices {
                call.extend_from_slice(slice);
            }
            call.truncate(self.per_call.unwrap_or(usize::MAX));
            let n = call.len();
            self.calls.push(call);
            n
        }

        fn received(&self) -> Vec<u8> {
            self.calls.concat()
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(self.get_mut().take(&[IoSlice::new(buf)])))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(self.get_mut().take(bufs)))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().flushes += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    }

    #[tokio::test]
    async fn a_head_and_a_small_body_leave_in_one_write_at_the_flush() {
        let mut stream = CoalescedWrites::new(Recorder::default());
        let head = bytes(240, 1);
        let body = bytes(1024, 2);
        stream.write_all(&head).await.expect("head");
        stream.write_all(&body).await.expect("body");
        assert!(
            stream.inner.calls.is_empty(),
            "nothing is sent before the flush"
        );
        stream.flush().await.expect("flush");
        assert_eq!(stream.inner.calls, [[head, body].concat()]);
        assert_eq!(stream.inner.flushes, 1);
        stream.flush().await.expect("an empty flush");
        assert_eq!(stream.inner.calls.len(), 1, "an empty flush sends nothing");
    }

    #[tokio::test]
    async fn a_large_write_leaves_with_what_was_kept_in_one_vectored_write() {
        let mut stream = CoalescedWrites::new(Recorder::default());
        let head = bytes(300, 3);
        let body = bytes(LIMIT * 4, 4);
        stream.write_all(&head).await.expect("head");
        stream.write_all(&body).await.expect("body");
        assert_eq!(stream.inner.calls, [[head, body].concat()]);
        stream.shutdown().await.expect("shutdown");
        assert_eq!(stream.inner.calls.len(), 1);
    }

    #[tokio::test]
    async fn short_writes_lose_and_reorder_nothing() {
        for per_call in [1, 7, 250, 301, 4096] {
            let recorder = Recorder {
                per_call: Some(per_call),
                ..Recorder::default()
            };
            let mut stream = CoalescedWrites::new(recorder);
            let parts = [
                bytes(300, 5),
                bytes(10, 6),
                bytes(LIMIT + 5, 7),
                bytes(99, 8),
            ];
            for part in &parts {
                stream.write_all(part).await.expect("part");
            }
            stream.flush().await.expect("flush");
            assert_eq!(
                stream.inner.received(),
                parts.concat(),
                "{per_call} per call"
            );
            assert!(stream.pending().is_empty());
        }
    }

    #[tokio::test]
    async fn shutdown_sends_what_is_kept_first() {
        let mut stream = CoalescedWrites::new(Recorder::default());
        stream.write_all(b"last words").await.expect("write");
        AsyncWriteExt::shutdown(&mut stream)
            .await
            .expect("shutdown");
        assert_eq!(stream.inner.received(), b"last words");
    }
}
