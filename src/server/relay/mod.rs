//! The router's own HTTP/1.1 relay for proxied segments and files: the request the router's
//! loop has read and decided goes to the edge on a kept-open connection, and the edge's answer
//! comes back through, framing and all, without the proxy framework's per-request machinery.
//!
//! It takes the requests that are most of proxy mode's traffic and nothing else
//! ([`eligible`]): `GET` or `HEAD` over HTTP/1.1 with no body, for a file or segment (not a
//! manifest the router rewrites), to an edge with a configured address on plain HTTP. The rest
//! (manifests, TLS edges, edges known by name only, HTTP/1.0 clients, other methods, HTTP/2)
//! goes through the Pingora adapter as before. The rules both follow are the same: the
//! edge's address from routing data, `Host` the edge's name, `X-Forwarded-For` and
//! `X-Real-IP` the client, one retry on another edge when a connection fails
//! ([`edge_failover`]), 502 when no edge answers, the edge's answer as it sent it otherwise.
//!
//! HTTP/1.1 to the letter (RFC 9110, 9112): hop-by-hop fields (the fixed ones and those the
//! `Connection` field names) are dropped both ways; the body framing is the edge's
//! (`Content-Length`, chunked passed through unchanged, or until the edge closes, and then the
//! client's connection closes too); interim 1xx answers are dropped; a `HEAD`, 204 or 304 has
//! no body; an edge connection is reused only after a response read whole with no excess; an
//! edge that breaks off a body makes the client's connection close before the announced end.

mod chunked;
mod response;
mod splice;
mod upstream;

use crate::config::ProxyConfig;
use crate::metrics::{OutcomeLabel, METRICS};
use crate::server::answer::{Answer, TextAnswer, BODY_BAD_GATEWAY};
use crate::server::pipeline::{ProxyTarget, Record};
use crate::server::proxy::edge_failover;
use crate::server::public::http1::{send, write_answer, BodyFraming, FastHead, FastMethod};
use crate::settings::SharedSettings;
use crate::state::RouterState;
use chunked::ChunkedEnd;
use response::{connection_tokens, is_hop_by_hop, EdgeHead, Framing, HeadRead};
use std::io;
use std::io::Write;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use upstream::EdgeConnection;

/// The largest response head accepted from an edge.
const MAX_EDGE_HEAD: usize = 64 * 1024;
/// Body bytes moved per read from the edge.
const RELAY_BUFFER: usize = 64 * 1024;
/// Most header fields of a client's request head (as the router's parser allows).
const MAX_REQUEST_FIELDS: usize = 257;

/// The client side of a relay: a byte stream, and the TCP socket under it when there is one
/// (a large body then moves from the edge to the client with `splice`, never through user
/// space).
pub trait Client: AsyncRead + AsyncWrite + Unpin {
    fn tcp(&mut self) -> Option<&TcpStream> {
        None
    }
}

/// Whether the relay takes this request (see the module documentation).
pub fn eligible(proxy: &ProxyConfig, head: &FastHead, target: &ProxyTarget) -> bool {
    proxy.relay
        && matches!(head.method, FastMethod::Get | FastMethod::Head)
        && !head.http10
        && matches!(head.body, BodyFraming::Length(0))
        && target.manifest.is_none()
        && edge_address(target).is_some()
}

/// The chosen edge's address when the routing data gives one and it speaks plain HTTP.
fn edge_address(target: &ProxyTarget) -> Option<SocketAddr> {
    let edge = &target.snapshot.servers[target.edge_index as usize];
    let ip = edge.ip.filter(|_| edge.port != 443)?;
    Some(SocketAddr::new(ip, edge.port))
}

/// How a relayed request ended.
#[derive(Debug, Clone, Copy)]
pub struct Relayed {
    /// The status the client got (0: none).
    pub status: u16,
    /// The client's connection may carry another request.
    pub keep_client: bool,
}

/// One relayed request: what the relay needs from the router's loop.
pub struct RelayRequest<'a> {
    /// The client's request head, as read.
    pub head: &'a [u8],
    pub head_request: bool,
    /// The client's connection is to stay open after this answer.
    pub keep_alive: bool,
    /// Longest time for writing to the client.
    pub send_limit: Duration,
}

/// What went wrong with one edge connection before the client got anything.
enum EdgeFailure {
    /// The connection could not be made (counts against the edge; another edge may do).
    Connect(io::Error),
    /// A reused connection turned out closed before any answer: try a new one.
    Stale,
    /// The edge answered badly or not in time.
    Answer(String),
}

/// Relays `request` to `target`'s edge and the answer back to `client`; `out` is scratch.
pub async fn relay<C: Client>(
    client: &mut C,
    request: &RelayRequest<'_>,
    target: &mut ProxyTarget,
    record: &mut Record,
    state: &RouterState,
    settings: &SharedSettings,
    out: &mut Vec<u8>,
) -> Relayed {
    let proxy = settings.load().config.proxy.clone();
    let mut fresh_only = false;
    let failure = loop {
        let Some(addr) = edge_address(target) else {
            // A retry landed on an edge the relay cannot reach (TLS or no address).
            break format!(
                "edge {} has no plain-HTTP address",
                target.snapshot.servers[target.edge_index as usize].domain_name
            );
        };
        let idle = if fresh_only {
            None
        } else {
            upstream::take_idle(addr)
        };
        let connection = match idle {
            Some(connection) => Ok(connection),
            None => upstream::connect(addr, proxy.connect_timeout).await,
        };
        let attempt = match connection {
            Ok(connection) => {
                let ask = build_request(request.head, target);
                exchange(client, request, connection, addr, &ask, &proxy, record, out).await
            }
            Err(e) => Err(EdgeFailure::Connect(e)),
        };
        match attempt {
            Ok(relayed) => return relayed,
            Err(EdgeFailure::Stale) => fresh_only = true,
            Err(EdgeFailure::Connect(e)) => {
                let settings = settings.load();
                if !edge_failover::connect_failed(state, &settings, target, Some(record), &e) {
                    break e.to_string();
                }
                fresh_only = false;
            }
            Err(EdgeFailure::Answer(why)) => break why,
        }
    };
    let edge = &target.snapshot.servers[target.edge_index as usize];
    log::warn!("proxy: edge {} failed: {failure}", edge.domain_name);
    record.outcome = OutcomeLabel::Error;
    out.clear();
    let answer = Answer::Text(TextAnswer {
        status: 502,
        body: BODY_BAD_GATEWAY,
        extra: None,
    });
    write_answer(out, &answer, request.head_request, false);
    let _ = send(client, out, request.send_limit).await;
    Relayed {
        status: 502,
        keep_client: false,
    }
}

/// The request for the edge: the client's, with the decided path, the edge's `Host`, the
/// client's address, and without hop-by-hop fields or the client's own forwarding fields.
fn build_request(client_head: &[u8], target: &ProxyTarget) -> Vec<u8> {
    let edge = &target.snapshot.servers[target.edge_index as usize];
    let mut fields = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_REQUEST_FIELDS];
    let mut parsed = httparse::Request::new(&mut []);
    // The router's loop parsed this head already, with the same limits.
    let _ = parsed.parse_with_uninit_headers(client_head, &mut fields);
    let mut ask = Vec::with_capacity(client_head.len() + 128);
    ask.extend_from_slice(parsed.method.unwrap_or("GET").as_bytes());
    ask.push(b' ');
    ask.extend_from_slice(target.path_and_query.as_bytes());
    ask.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    ask.extend_from_slice(edge.domain_name.as_bytes());
    ask.extend_from_slice(b"\r\n");
    let tokens = connection_tokens(parsed.headers.iter().map(|f| (f.name, f.value)));
    for field in parsed.headers.iter() {
        let name = field.name;
        let replaced = ["host", "x-forwarded-for", "x-real-ip", "content-length"]
            .iter()
            .any(|r| name.eq_ignore_ascii_case(r));
        if !replaced && !is_hop_by_hop(name, &tokens) {
            ask.extend_from_slice(name.as_bytes());
            ask.extend_from_slice(b": ");
            ask.extend_from_slice(field.value);
            ask.extend_from_slice(b"\r\n");
        }
    }
    let client = target.client_ip;
    // Writing to a Vec cannot fail.
    let _ = write!(
        ask,
        "X-Forwarded-For: {client}\r\nX-Real-IP: {client}\r\n\r\n"
    );
    ask
}

/// One request and its answer on one edge connection.
#[allow(clippy::too_many_arguments)]
async fn exchange<C: Client>(
    client: &mut C,
    request: &RelayRequest<'_>,
    connection: EdgeConnection,
    addr: SocketAddr,
    ask: &[u8],
    proxy: &ProxyConfig,
    record: &mut Record,
    out: &mut Vec<u8>,
) -> Result<Relayed, EdgeFailure> {
    let EdgeConnection { mut stream, reused } = connection;
    let lost = |e: io::Error| {
        if reused {
            EdgeFailure::Stale
        } else {
            EdgeFailure::Answer(format!("sending the request: {e}"))
        }
    };
    match tokio::time::timeout(proxy.write_timeout, stream.write_all(ask)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(lost(e)),
        Err(_) => return Err(EdgeFailure::Answer("sending the request timed out".into())),
    }
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut start = 0;
    out.clear();
    let head = loop {
        match response::read_head(&buf[start..], request.head_request, request.keep_alive, out) {
            HeadRead::Final(head) => break head,
            HeadRead::Interim { len } => {
                // Dropped; the final head may be in the buffer already.
                start += len;
                continue;
            }
            HeadRead::Invalid(why) => return Err(EdgeFailure::Answer(why.to_string())),
            HeadRead::Partial if buf.len() - start >= MAX_EDGE_HEAD => {
                return Err(EdgeFailure::Answer("response head too large".into()))
            }
            HeadRead::Partial => {}
        }
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity());
        }
        match read_some(&mut stream, &mut buf, proxy.read_timeout).await {
            Ok(0) if reused && buf.is_empty() => return Err(EdgeFailure::Stale),
            Ok(0) => return Err(EdgeFailure::Answer("closed before a response head".into())),
            Ok(_) => {}
            Err(e) if reused && buf.is_empty() && e.kind() != io::ErrorKind::TimedOut => {
                return Err(EdgeFailure::Stale)
            }
            Err(e) => return Err(EdgeFailure::Answer(format!("reading the response: {e}"))),
        }
    };
    METRICS.count_upstream_status(record.kind, head.status);
    buf.drain(..start + head.len);
    let ended = relay_body(client, &mut stream, &head, buf, request, proxy, out).await;
    if !ended.whole {
        record.outcome = OutcomeLabel::Error;
    }
    if ended.whole && !ended.excess && head.reusable {
        upstream::put_idle(addr, stream);
    }
    Ok(Relayed {
        status: head.status,
        keep_client: ended.whole && request.keep_alive && head.framing != Framing::UntilClose,
    })
}

/// How a body relay ended.
struct BodyEnd {
    /// The client got the whole answer.
    whole: bool,
    /// The edge sent more than the answer: its connection is not to be reused.
    excess: bool,
}

/// Sends the client's head (in `out`) with the body's first bytes (in `buf`, what followed the
/// edge's head), then the rest of the body as it comes.
async fn relay_body<C: Client>(
    client: &mut C,
    edge: &mut TcpStream,
    head: &EdgeHead,
    mut buf: Vec<u8>,
    request: &RelayRequest<'_>,
    proxy: &ProxyConfig,
    out: &mut Vec<u8>,
) -> BodyEnd {
    let broken = BodyEnd {
        whole: false,
        excess: true,
    };
    let mut remaining = match head.framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    let mut chunks = ChunkedEnd::default();
    let mut first = true;
    loop {
        // The part of `buf` that belongs to the body, and whether the body is complete.
        let (take, done) = match head.framing {
            Framing::Empty => (0, true),
            Framing::Length(_) => {
                let take = (buf.len() as u64).min(remaining);
                remaining -= take;
                (take as usize, remaining == 0)
            }
            Framing::Chunked => match chunks.scan(&buf) {
                Ok(take) => (take, chunks.is_done()),
                Err(_) => return broken,
            },
            Framing::UntilClose => (buf.len(), false),
        };
        let excess = take < buf.len();
        let sent = if first {
            first = false;
            out.extend_from_slice(&buf[..take]);
            send(client, out, request.send_limit).await
        } else {
            take == 0 || send(client, &buf[..take], request.send_limit).await
        };
        if !sent {
            return broken;
        }
        if done {
            return BodyEnd {
                whole: true,
                excess,
            };
        }
        if matches!(head.framing, Framing::Length(_)) && remaining >= splice::MIN_SPLICED {
            if let Some(tcp) = client.tcp() {
                let spliced =
                    splice::body(edge, tcp, remaining, proxy.read_timeout, request.send_limit);
                return match spliced.await {
                    Ok(()) => BodyEnd {
                        whole: true,
                        excess: false,
                    },
                    Err(e) => {
                        if e.kind() == io::ErrorKind::UnexpectedEof {
                            log::warn!(
                                "proxy: the edge closed the connection in the middle of a body"
                            );
                        }
                        broken
                    }
                };
            }
        }
        buf.clear();
        if buf.capacity() < RELAY_BUFFER {
            buf.reserve(RELAY_BUFFER);
        }
        match read_some(edge, &mut buf, proxy.read_timeout).await {
            Ok(0) if head.framing == Framing::UntilClose => {
                return BodyEnd {
                    whole: true,
                    excess: true,
                }
            }
            Ok(0) => {
                log::warn!("proxy: the edge closed the connection in the middle of a body");
                return broken;
            }
            Ok(_) => {}
            Err(e) => {
                log::warn!("proxy: reading a body from the edge: {e}");
                return broken;
            }
        }
    }
}

/// Reads what the edge has into the spare capacity of `buf`, within `limit`.
async fn read_some(edge: &mut TcpStream, buf: &mut Vec<u8>, limit: Duration) -> io::Result<usize> {
    match tokio::time::timeout(limit, edge.read_buf(buf)).await {
        Ok(read) => read,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out")),
    }
}
