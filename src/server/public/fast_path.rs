//! The public listeners' app. It reads each request head itself, under a header deadline and
//! an idle timeout, and answers redirects and errors on a small HTTP/1 loop; the rest
//! (proxy-mode routes, chunked bodies, unusual requests) goes, bytes untouched, to the Pingora
//! proxy framework, whose per-request machinery costs more than all the rest of a redirect.

use super::client_limit::{ClientLimiter, ClientSlot};
use super::coalesced_writes::CoalescedWrites;
use super::http1::{
    chunked_body_len, parse_head, send, write_answer, BodyFraming, ChunkedBody, FastHead,
    FastMethod, HeadParse, Refusal,
};
use super::idle_timer::IdleTimer;
use super::lazy_tcp::LazyTcp;
use crate::config::HttpConfig;
use crate::metrics::{CloseReason, METRICS};
use crate::server::answer::{
    Answer, TextAnswer, BODY_HEADERS_TOO_LARGE, BODY_INVALID, BODY_NOT_IMPLEMENTED,
    BODY_URI_TOO_LONG,
};
use crate::server::pipeline::{self, Action, Handled, Incoming, Record};
use crate::server::proxy::router_proxy::{with_decision, RouterProxy};
use crate::server::relay::{self, RelayRequest};
use crate::settings::SharedSettings;
use crate::snapshot::canonical_ip;
use crate::state::RouterState;
use bytes::{Buf, BytesMut};
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest, Stream};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// First read buffer of a connection; it grows for larger heads.
const INITIAL_BUFFER: usize = 2048;
/// Largest request body (of a request answered here, e.g. a 405 to a POST) read and dropped
/// to keep the connection; the connection is closed after the answer to a larger one.
const MAX_DISCARDED_BODY: usize = 64 * 1024;
/// Room for a request line and header punctuation beyond the configured limits.
const HEAD_SLACK: usize = 1024;

pub struct RouterApp {
    proxy: Arc<HttpProxy<RouterProxy>>,
    state: Arc<RouterState>,
    settings: SharedSettings,
    clients: Arc<ClientLimiter>,
    /// Set at shutdown's end: idle connections close.
    closing: watch::Sender<bool>,
    /// Set while the listening sockets are being handed to a new process: answers say
    /// `Connection: close`, so clients reconnect to the new process.
    handing_over: Arc<AtomicBool>,
}

/// Why reading the next request stopped without a head.
enum ReadEnd {
    /// The client closed, or the connection failed.
    Closed,
    Idle,
    HeaderTimeout,
    Closing,
}

/// What reading the next request gave.
enum NextRequest {
    Head(HeadParse),
    /// The buffer reached the size cap without a whole head: 414 or 431.
    TooLarge(TextAnswer),
}

/// An answer written into the output buffer, to be counted once it is sent.
struct Answered {
    status: u16,
    record: Record,
}

/// A connection the fast loop serves: the accepted socket itself, or Pingora's stream once
/// the framework has handled a request on it.
pub trait Connection: relay::Client + Send {
    /// Turns Nagle's algorithm off, for connections that carry more than one answer.
    fn no_delay(&mut self) {}
}

impl Connection for LazyTcp {
    fn no_delay(&mut self) {
        self.set_nodelay();
    }
}

/// Pingora's streams come from [`into_pingora_stream`], which turned Nagle off.
impl Connection for Stream {}

/// A socket of the router's own loop: large proxied bodies are spliced into it.
impl relay::Client for LazyTcp {
    fn tcp(&mut self) -> Option<&TcpStream> {
        self.registered().ok().map(|tcp| &*tcp)
    }
}

/// Pingora's streams (handed over, or TLS): bodies are written through them.
impl relay::Client for Stream {}

/// The accepted socket as a Pingora stream, for the framework: Nagle off, the client's
/// address known without asking the kernel again, and a response head sent with its body.
fn into_pingora_stream(tcp: LazyTcp, peer: SocketAddr) -> Option<Stream> {
    Some(Box::new(CoalescedWrites::new(into_l4_stream(tcp, peer)?)))
}

/// The accepted socket as Pingora's TCP stream (for a TLS handshake, or boxed for the
/// framework).
fn into_l4_stream(tcp: LazyTcp, peer: SocketAddr) -> Option<L4Stream> {
    let tcp: TcpStream = tcp.into_registered().ok()?;
    let _ = tcp.set_nodelay(true);
    let mut stream: L4Stream = tcp.into();
    let digest = SocketDigest::from_raw_fd(stream.as_raw_fd());
    let _ = digest.peer_addr.set(Some(peer.into()));
    stream.set_socket_digest(digest);
    Some(stream)
}

/// A connection's state across requests, whichever stream carries it.
struct ConnState {
    buf: BytesMut,
    out: Vec<u8>,
    /// When the connection was accepted, until its first request head is read.
    accepted: Option<Instant>,
    closing: watch::Receiver<bool>,
    answers: u64,
    /// The keep-alive idle deadline, from the last request.
    idle: IdleTimer,
    /// The connection is TLS (the `request` location scheme gives `https`).
    secure: bool,
}

/// A request for the framework at the start of the buffer.
#[derive(Debug)]
struct Handover {
    /// Head and body, when known.
    request_len: Option<usize>,
    /// Decided already when it is to be proxied.
    decided: Option<Box<Handled>>,
    /// The client wants the connection kept (every `Connection` field read).
    keep_alive: bool,
}

/// How serving a stream ended.
enum Served {
    /// The connection is over.
    Done,
    /// The request at the start of the buffer is for the framework.
    Delegate(Handover),
}

/// The most bytes a head within the configured limits can take.
fn head_cap(limits: &HttpConfig) -> usize {
    limits.max_uri_bytes + limits.max_header_bytes + 4 * limits.max_header_count + HEAD_SLACK
}

async fn read_more<S: Connection>(stream: &mut S, buf: &mut BytesMut) -> Result<(), ReadEnd> {
    if buf.capacity() - buf.len() < 512 {
        buf.reserve(buf.len().max(INITIAL_BUFFER));
    }
    match stream.read_buf(buf).await {
        Ok(0) | Err(_) => Err(ReadEnd::Closed),
        Ok(_) => Ok(()),
    }
}

/// Reads until `buf` starts with a whole request head. The first request's head must arrive
/// within the header timeout of `accepted`; a later one may be preceded by up to the
/// keep-alive timeout of silence and must then arrive within the header timeout.
async fn read_request<S: Connection>(
    stream: &mut S,
    buf: &mut BytesMut,
    limits: &HttpConfig,
    accepted: Option<Instant>,
    closing: &mut watch::Receiver<bool>,
    idle: &mut IdleTimer,
) -> Result<NextRequest, ReadEnd> {
    let header_timeout = limits.header_timeout;
    let mut deadline = accepted.map(|t| t + header_timeout);
    if buf.is_empty() && deadline.is_none() {
        if *closing.borrow() {
            return Err(ReadEnd::Closing);
        }
        tokio::select! {
            biased;
            read = read_more(stream, buf) => read?,
            _ = idle.expired(limits.keepalive_timeout) => return Err(ReadEnd::Idle),
            _ = closing.changed() => return Err(ReadEnd::Closing),
        }
    }
    let cap = head_cap(limits);
    loop {
        match parse_head(buf) {
            HeadParse::Partial => {}
            parsed => return Ok(NextRequest::Head(parsed)),
        }
        // Only a head that needs more reads needs its deadline (and the clock).
        let deadline = *deadline.get_or_insert_with(|| Instant::now() + header_timeout);
        if buf.len() >= cap {
            let line_complete = buf.windows(2).any(|w| w == b"\r\n");
            let (status, body) = if line_complete {
                (431, BODY_HEADERS_TOO_LARGE)
            } else {
                (414, BODY_URI_TOO_LONG)
            };
            return Ok(NextRequest::TooLarge(TextAnswer {
                status,
                body,
                extra: None,
            }));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        pingora_timeout::timeout(left, read_more(stream, buf))
            .await
            .map_err(|_| ReadEnd::HeaderTimeout)??;
    }
}

/// The answer to a head refused for its framing: 501 for a transfer coding the router does not
/// implement, 400 otherwise.
fn refusal_answer(refusal: Refusal) -> TextAnswer {
    let body = if refusal.status == 501 {
        BODY_NOT_IMPLEMENTED
    } else {
        BODY_INVALID
    };
    TextAnswer {
        status: refusal.status,
        body,
        extra: None,
    }
}

/// Why a chunked body was not read whole.
enum BodyEnd {
    /// Not chunked framing.
    Invalid,
    /// The client closed, or did not send it in time.
    Gone,
}

/// Reads until the chunked body after the head (at `head_len` in `buf`) is whole, within the
/// header timeout, and gives its length; `None` when it grows past what the router reads to
/// keep a connection.
async fn read_chunked_body<S: Connection>(
    stream: &mut S,
    buf: &mut BytesMut,
    head_len: usize,
    limits: &HttpConfig,
) -> Result<Option<usize>, BodyEnd> {
    let deadline = Instant::now() + limits.header_timeout;
    loop {
        match chunked_body_len(&buf[head_len..]) {
            ChunkedBody::Complete(len) => return Ok(Some(len)),
            ChunkedBody::Invalid => return Err(BodyEnd::Invalid),
            ChunkedBody::Partial if buf.len() - head_len > MAX_DISCARDED_BODY => return Ok(None),
            ChunkedBody::Partial => {
                let left = deadline.saturating_duration_since(Instant::now());
                match pingora_timeout::timeout(left, read_more(stream, buf)).await {
                    Ok(Ok(())) => {}
                    _ => return Err(BodyEnd::Gone),
                }
            }
        }
    }
}

/// Reads and drops a request body of `len` bytes (some may be in `buf` already), so that the
/// connection can carry the next request; false when it does not arrive in time.
async fn discard_body<S: Connection>(
    stream: &mut S,
    buf: &mut BytesMut,
    len: usize,
    limits: &HttpConfig,
) -> bool {
    let buffered = len.min(buf.len());
    buf.advance(buffered);
    let mut left = len - buffered;
    let deadline = Instant::now() + limits.header_timeout;
    while left > 0 {
        let wait = deadline.saturating_duration_since(Instant::now());
        match pingora_timeout::timeout(wait, read_more(stream, buf)).await {
            Ok(Ok(())) => {
                let taken = left.min(buf.len());
                buf.advance(taken);
                left -= taken;
            }
            _ => return false,
        }
    }
    true
}

/// Nginx's lingering close: half-closes the connection, then reads and drops whatever the
/// client still sends until it closes, sends nothing for `lingering_timeout`, or
/// `lingering_time` have passed (or the router is shutting down). Closing a socket with
/// unread bytes would send a reset, which can destroy the answer still in flight.
async fn linger<S: Connection>(stream: &mut S, conn: &mut ConnState, limits: &HttpConfig) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let deadline = Instant::now() + limits.lingering_time;
    let quiet = limits.lingering_timeout;
    let buf = &mut conn.buf;
    loop {
        buf.clear();
        let wait = quiet.min(deadline.saturating_duration_since(Instant::now()));
        if wait.is_zero() || *conn.closing.borrow() {
            return;
        }
        tokio::select! {
            biased;
            read = pingora_timeout::timeout(wait, read_more(stream, buf)) => {
                if !matches!(read, Ok(Ok(()))) {
                    return;
                }
            }
            _ = conn.closing.changed() => return,
        }
    }
}

/// How long an answer may take to be written: the keep-alive timeout.
fn send_limit(limits: &HttpConfig) -> Duration {
    limits.keepalive_timeout
}

impl RouterApp {
    pub fn new(
        proxy: HttpProxy<RouterProxy>,
        state: Arc<RouterState>,
        settings: SharedSettings,
        handing_over: Arc<AtomicBool>,
    ) -> Self {
        RouterApp {
            proxy: Arc::new(proxy),
            state,
            settings,
            clients: Arc::new(ClientLimiter::default()),
            closing: watch::Sender::new(false),
            handing_over,
        }
    }

    /// `router.http.defer_accept_secs`, for the listeners.
    pub fn defer_accept(&self) -> Duration {
        self.settings.load().config.http.defer_accept
    }

    /// Connections are to end after their current answer.
    fn ending(&self, shutdown: &ShutdownWatch) -> bool {
        *shutdown.borrow() || self.handing_over.load(Ordering::Relaxed)
    }

    /// Decides a head read on the fast loop; `None` for a method the framework must handle.
    fn handle(
        &self,
        buf: &[u8],
        head: &FastHead,
        peer: IpAddr,
        secure: bool,
        started: Instant,
    ) -> Option<Handled> {
        let settings = self.settings.load();
        let method = head.method.to_http(buf)?;
        let raw_target = &buf[head.target.clone()];
        // Visible ASCII only (checked by the parser).
        let target = std::str::from_utf8(raw_target).ok()?;
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        let incoming = Incoming {
            method: &method,
            path,
            query,
            raw_target,
            peer,
            x_real_ip: head.x_real_ip.clone().map(|r| &buf[r]),
            size: head.size,
            secure,
        };
        Some(pipeline::handle(&self.state, &settings, &incoming, started))
    }

    fn record(&self, answered: Answered) {
        answered
            .record
            .finish(answered.status, &self.settings.load());
    }

    /// Hands the request at the start of `buf` (`request_len` bytes when known) to the
    /// framework; the connection comes back when it may be reused.
    async fn delegate(
        &self,
        stream: Stream,
        buf: &mut BytesMut,
        handover: Handover,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Handover {
            request_len,
            decided,
            keep_alive,
        } = handover;
        let take = request_len.map_or(buf.len(), |n| n.min(buf.len()));
        let mut session = ServerSession::new_http1(stream);
        session.set_pipelined_prefix(buf.split_to(take));
        let limits = self.settings.load().config.http;
        let keepalive =
            (keep_alive && !self.ending(shutdown)).then_some(limits.keepalive_timeout.as_secs());
        session.set_keepalive(keepalive);
        let process = self.proxy.process_new_http(session, shutdown);
        let reused = match decided {
            Some(handled) => with_decision(*handled, process).await?,
            None => process.await?,
        };
        // Pipelining stays off in the framework, so no bytes of a next request are left
        // inside the returned settings: they are all in `buf` or still in the socket.
        Some(reused.consume().0)
    }

    /// Serves requests on `stream` until the connection ends or a request is for the
    /// framework.
    async fn serve<S: Connection>(
        &self,
        stream: &mut S,
        conn: &mut ConnState,
        peer: IpAddr,
        shutdown: &ShutdownWatch,
    ) -> Served {
        loop {
            let limits = self.settings.load().config.http;
            let buf = &mut conn.buf;
            let next = read_request(
                stream,
                buf,
                &limits,
                conn.accepted,
                &mut conn.closing,
                &mut conn.idle,
            )
            .await;
            conn.accepted = None;
            let head = match next {
                Ok(NextRequest::Head(head)) => head,
                Ok(NextRequest::TooLarge(answer)) => {
                    METRICS.count_close(CloseReason::HeadTooLarge);
                    return self.refuse(stream, conn, answer).await;
                }
                Err(ReadEnd::HeaderTimeout) => {
                    METRICS.count_close(CloseReason::HeaderTimeout);
                    return Served::Done;
                }
                Err(ReadEnd::Idle) => {
                    METRICS.count_close(CloseReason::IdleTimeout);
                    return Served::Done;
                }
                Err(ReadEnd::Closed | ReadEnd::Closing) => return Served::Done,
            };
            let fast = match head {
                HeadParse::Fast(fast) => fast,
                HeadParse::Delegate {
                    head_len,
                    body,
                    keep_alive,
                } => {
                    // A chunked body is checked by the router's own rules before the framework
                    // decodes it (more leniently); one over what the loop reads is the framework's.
                    let request_len = match body {
                        BodyFraming::Length(n) => head_len.checked_add(n),
                        BodyFraming::Chunked => {
                            match read_chunked_body(stream, buf, head_len, &limits).await {
                                Ok(len) => len.and_then(|n| head_len.checked_add(n)),
                                Err(BodyEnd::Invalid) => {
                                    METRICS.count_close(CloseReason::BadRequest);
                                    let refusal = Refusal {
                                        status: 400,
                                        why: "bad chunked body",
                                    };
                                    return self
                                        .refuse(stream, conn, refusal_answer(refusal))
                                        .await;
                                }
                                Err(BodyEnd::Gone) => return Served::Done,
                            }
                        }
                    };
                    return Served::Delegate(Handover {
                        request_len,
                        decided: None,
                        keep_alive,
                    });
                }
                HeadParse::TooManyHeaders => {
                    METRICS.count_close(CloseReason::HeadTooLarge);
                    let answer = TextAnswer {
                        status: 431,
                        body: BODY_HEADERS_TOO_LARGE,
                        extra: None,
                    };
                    return self.refuse(stream, conn, answer).await;
                }
                HeadParse::Refuse(refusal) => {
                    METRICS.count_close(CloseReason::BadRequest);
                    return self.refuse(stream, conn, refusal_answer(refusal)).await;
                }
                // read_request returns whole heads only.
                HeadParse::Partial => return Served::Done,
            };
            let body_len = match fast.body {
                BodyFraming::Length(n) => Some(n),
                BodyFraming::Chunked => {
                    match read_chunked_body(stream, buf, fast.head_len, &limits).await {
                        Ok(len) => len,
                        Err(BodyEnd::Invalid) => {
                            METRICS.count_close(CloseReason::BadRequest);
                            let refusal = Refusal {
                                status: 400,
                                why: "bad chunked body",
                            };
                            return self.refuse(stream, conn, refusal_answer(refusal)).await;
                        }
                        Err(BodyEnd::Gone) => return Served::Done,
                    }
                }
            };
            let started = Instant::now();
            conn.out.clear();
            let keep_alive = fast.keep_alive
                && !self.ending(shutdown)
                && body_len.is_some_and(|n| n <= MAX_DISCARDED_BODY);
            let request_len = body_len.and_then(|n| fast.head_len.checked_add(n));
            let Some(Handled { action, record }) =
                self.handle(buf, &fast, peer, conn.secure, started)
            else {
                return Served::Delegate(Handover {
                    request_len,
                    decided: None,
                    keep_alive: fast.keep_alive,
                });
            };
            let answer = match action {
                Action::Answer(answer) => answer,
                Action::Proxy(mut target)
                    if relay::eligible(&self.settings.load().config.proxy, &fast, &target) =>
                {
                    let mut record = record;
                    let request = RelayRequest {
                        head: &buf[..fast.head_len],
                        head_request: fast.method == FastMethod::Head,
                        keep_alive,
                        send_limit: send_limit(&limits),
                    };
                    let relayed = relay::relay(
                        stream,
                        &request,
                        &mut target,
                        &mut record,
                        &self.state,
                        &self.settings,
                        &mut conn.out,
                    )
                    .await;
                    buf.advance(fast.head_len);
                    conn.answers += 1;
                    self.record(Answered {
                        status: relayed.status,
                        record,
                    });
                    if !relayed.keep_client {
                        return Served::Done;
                    }
                    conn.idle.stamp(Instant::now());
                    continue;
                }
                proxy @ Action::Proxy(_) => {
                    let handled = Handled {
                        action: proxy,
                        record,
                    };
                    return Served::Delegate(Handover {
                        request_len,
                        decided: Some(Box::new(handled)),
                        keep_alive: fast.keep_alive,
                    });
                }
            };
            write_answer(
                &mut conn.out,
                &answer,
                fast.method == FastMethod::Head,
                keep_alive,
            );
            let answered = Answered {
                status: answer.status(),
                record,
            };
            buf.advance(fast.head_len);
            let body_len = body_len.unwrap_or(usize::MAX);
            if keep_alive && !discard_body(stream, buf, body_len, &limits).await {
                return Served::Done;
            }
            if conn.answers == 1 {
                stream.no_delay();
            }
            conn.answers += 1;
            let sent = send(stream, &conn.out, send_limit(&limits)).await;
            self.record(answered);
            if !sent {
                return Served::Done;
            }
            if !keep_alive {
                // Bytes the client sent after the head (a body not read, pipelined requests)
                // would make the close a reset: linger until they stop. Otherwise dropping the
                // connection closes it (FIN after the answer).
                if body_len > 0 || !buf.is_empty() {
                    linger(stream, conn, &limits).await;
                }
                return Served::Done;
            }
            conn.idle.stamp(Instant::now());
        }
    }

    /// Answers a head that is not read further (over the size cap, badly framed, not HTTP)
    /// and ends the connection with a lingering close.
    async fn refuse<S: Connection>(
        &self,
        stream: &mut S,
        conn: &mut ConnState,
        answer: TextAnswer,
    ) -> Served {
        let started = Instant::now();
        conn.out.clear();
        write_answer(&mut conn.out, &Answer::Text(answer), false, false);
        let limits = self.settings.load().config.http;
        if send(stream, &conn.out, send_limit(&limits)).await {
            linger(stream, conn, &limits).await;
        }
        self.record(Answered {
            status: answer.status,
            record: Record::refused(started),
        });
        Served::Done
    }

    /// A slot for a new connection from `peer_ip` under `max_connections_per_client`:
    /// `Err` when the client has as many open already (counted and logged here).
    fn admit(&self, peer_ip: IpAddr) -> Result<Option<ClientSlot>, ()> {
        let limit = {
            let settings = self.settings.load();
            let limit = settings.config.http.max_connections_per_client;
            let exempt = settings.policy.trusted_proxies.contains(peer_ip);
            (limit > 0 && !exempt).then_some(limit)
        };
        match limit {
            Some(limit) => match self.clients.admit(peer_ip, limit) {
                Some(slot) => Ok(Some(slot)),
                None => {
                    METRICS.count_close(CloseReason::ClientLimit);
                    log::debug!("refused a connection from {peer_ip}: {limit} already open");
                    Err(())
                }
            },
            None => Ok(None),
        }
    }

    fn new_conn(&self, accepted: Instant, secure: bool) -> ConnState {
        ConnState {
            buf: BytesMut::with_capacity(INITIAL_BUFFER),
            out: Vec::with_capacity(512),
            accepted: Some(accepted),
            closing: self.closing.subscribe(),
            answers: 0,
            idle: IdleTimer::new(accepted),
            secure,
        }
    }

    /// Serves one accepted connection until it ends: on the fast loop, through the
    /// framework for the requests that need it.
    pub async fn serve_connection(
        &self,
        tcp: std::net::TcpStream,
        peer: SocketAddr,
        shutdown: &ShutdownWatch,
    ) {
        let peer_ip = canonical_ip(peer.ip());
        let Ok(_slot) = self.admit(peer_ip) else {
            return;
        };
        let _open = OpenConnection::new();
        let mut conn = self.new_conn(Instant::now(), false);
        let mut tcp = LazyTcp::Plain(tcp);
        let Served::Delegate(handover) = self.serve(&mut tcp, &mut conn, peer_ip, shutdown).await
        else {
            return;
        };
        let Some(stream) = into_pingora_stream(tcp, peer) else {
            return;
        };
        self.serve_handed_over(stream, &mut conn, handover, peer_ip, shutdown)
            .await;
    }

    /// Serves a connection whose next request is for the framework: the framework and the
    /// fast loop take turns until it ends.
    async fn serve_handed_over(
        &self,
        mut stream: Stream,
        conn: &mut ConnState,
        mut handover: Handover,
        peer_ip: IpAddr,
        shutdown: &ShutdownWatch,
    ) {
        loop {
            let keep_alive = handover.keep_alive;
            match self
                .delegate(stream, &mut conn.buf, handover, shutdown)
                .await
            {
                Some(reused) if keep_alive => {
                    conn.idle.stamp(Instant::now());
                    stream = reused;
                }
                Some(mut reused) => {
                    // The client asked for a close that the framework may not have seen (it
                    // reads only the first Connection field): nothing more is read as a request.
                    let limits = self.settings.load().config.http;
                    linger(&mut reused, conn, &limits).await;
                    return;
                }
                None => return,
            }
            match self.serve(&mut stream, conn, peer_ip, shutdown).await {
                Served::Done => return,
                Served::Delegate(next) => handover = next,
            }
        }
    }

    /// At shutdown's end: idle connections close, and the framework's too.
    pub async fn cleanup(&self) {
        self.closing.send_replace(true);
        ServerApp::cleanup(&*self.proxy).await;
    }
}

/// Counts an open client connection for as long as it lives.
struct OpenConnection;

impl OpenConnection {
    fn new() -> Self {
        METRICS.client_connections.inc();
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        METRICS.client_connections.dec();
    }
}

#[path = "tls_connection.rs"]
mod tls_connection;

#[cfg(test)]
#[path = "fast_path_tests.rs"]
mod tests;
