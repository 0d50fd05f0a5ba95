//! Differential framing: the router's request framing (`server::http1::parse_head`, its strict
//! `chunked_body_len` for chunked bodies, and Pingora's HTTP/1 session for the requests it
//! hands over) against hyper 1.x's HTTP/1 server, on the same bytes.
//!
//! The bytes are one connection's input, written at once and then half-closed. Request by
//! request (at most `MAX_REQUESTS`), the router either refuses (`Refuse`, `TooManyHeaders`, a
//! chunked body `chunked_body_len` calls `Invalid`, or Pingora refusing a delegated request:
//! comparison stops there, refusing is always allowed) or frames the request exactly as hyper
//! does: the same method and target (for absolute-form on the fast loop, the path and query the
//! router routes by), the same body framing (`Length(n)` where hyper knows an exact length of
//! `n`, `Chunked` where hyper decodes a chunked body), the same body bytes (decoded), and the
//! next request starting at the same byte (hyper's next request is the one the router parses
//! from the rest). A request the router accepts and hyper refuses is a disagreement (panic),
//! unless it is one of the few `DELIBERATE` differences below.
//!
//! Router against Pingora: a request the router hands over (delegated, or proxied from the
//! fast loop) with exactly its bytes must be read by Pingora with the same head, the same body,
//! ending at the same byte, or be refused by it.
//!
//! Comparison also stops at the end of the input (a partial head or body), after a request that
//! closes the connection (`Connection: close`, HTTP/1.0), and after `Upgrade` / `CONNECT` (the
//! bytes after it need not be HTTP/1).
#![no_main]

use bytes::{Bytes, BytesMut};
use cti_kaltura::server::http1::{
    chunked_body_len, parse_head, BodyFraming, ChunkedBody, HeadParse,
};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use pingora_core::protocols::http::v1::server::HttpSession;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longer inputs are skipped (run with `-max_len=4096`).
const MAX_INPUT: usize = 4096;
/// Requests compared per input.
const MAX_REQUESTS: usize = 4;
/// hyper's service fails (and hyper closes) after this many requests: one more than compared,
/// so that "hyper saw a request the router did not" can still be seen.
const HYPER_REQUESTS: usize = MAX_REQUESTS + 1;
/// The router parses up to 257 header fields (`TooManyHeaders` beyond); hyper is given the same
/// limit, so that header count is not a difference.
const MAX_HEADERS: usize = 257;
/// In-memory, nothing should ever wait; a run this long is a hang (reported before
/// libFuzzer's own `-timeout=10`).
const HANG: Duration = Duration::from_secs(5);

/// A request as hyper handed it to the service.
#[derive(Debug)]
struct HyperRequest {
    method: http::Method,
    uri: http::Uri,
    /// `Some(n)` for a `Content-Length` (or empty) body, `None` for a chunked one.
    exact_len: Option<u64>,
    /// The whole body, or hyper's error reading it (hyper refused the message's body).
    body: Result<Bytes, String>,
}

#[derive(Debug, Default)]
struct HyperRun {
    requests: Vec<HyperRequest>,
    /// `Some` when hyper refused a head (a parse error, or a 4xx/5xx answer written).
    refused: Option<String>,
}

/// hyper's HTTP/1 server over an in-memory pipe: the input written at once, then a FIN.
fn run_hyper(rt: &tokio::runtime::Runtime, data: &[u8]) -> HyperRun {
    let seen: Rc<RefCell<Vec<HyperRequest>>> = Rc::default();
    let (conn_result, output) = rt.block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let service_seen = seen.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let seen = service_seen.clone();
            async move {
                if seen.borrow().len() >= HYPER_REQUESTS {
                    return Err("enough requests");
                }
                let (parts, body) = req.into_parts();
                let exact_len = body.size_hint().exact();
                let body = body
                    .collect()
                    .await
                    .map(|collected| collected.to_bytes())
                    .map_err(|e| format!("{e:?}"));
                seen.borrow_mut().push(HyperRequest {
                    method: parts.method,
                    uri: parts.uri,
                    exact_len,
                    body,
                });
                Ok(Response::new(Empty::<Bytes>::new()))
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        // half_close: the input ends with a FIN while hyper may still be answering an earlier
        // request; without it hyper drops the pipelined requests still in its buffer
        // ("connection closed before message completed"), as for a client that went away.
        builder
            .max_headers(MAX_HEADERS)
            .half_close(true)
            .header_read_timeout(None);
        let conn = builder.serve_connection(TokioIo::new(server), service);
        let client = async {
            // The pipe holds the whole input (64 KiB > MAX_INPUT): this never waits on hyper.
            client.write_all(data).await.expect("write to hyper");
            client.shutdown().await.expect("half-close");
            let mut output = Vec::new();
            let _ = client.read_to_end(&mut output).await;
            output
        };
        tokio::time::timeout(HANG, async { tokio::join!(conn, client) })
            .await
            .expect("hyper did not finish with an in-memory input")
    });
    let requests = std::mem::take(&mut *seen.borrow_mut());
    let mut refused = match conn_result {
        Err(e) if e.is_parse() || e.is_parse_too_large() || e.is_parse_status() => {
            Some(e.to_string())
        }
        _ => None,
    };
    // Any answer of 400 or more was hyper's own (the service always answers 200).
    let mut rest = &output[..];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(rest) {
            Ok(httparse::Status::Complete(n)) => {
                let code = response.code.unwrap_or(0);
                if code >= 400 && refused.is_none() {
                    refused = Some(format!("answered {code}"));
                }
                rest = &rest[n..];
            }
            _ => break,
        }
    }
    HyperRun { requests, refused }
}

/// The target as hyper sees it: the path and query (fragment dropped), or `*`.
fn hyper_path_and_query(uri: &http::Uri) -> &str {
    uri.path_and_query().map_or("", |p| p.as_str())
}

/// A request as the router (and, for a delegated one, Pingora) frames it.
#[derive(Debug)]
struct Framed {
    /// Where it starts in the input.
    start: usize,
    head_len: usize,
    method: http::Method,
    target: Target,
    /// `Length(n)` or `Chunked`.
    framing: BodyFraming,
    /// The body's bytes (decoded); `None` when the input ends inside it.
    body: Option<Bytes>,
    /// Head plus body on the wire.
    wire_len: usize,
    keep_alive: bool,
    /// `Upgrade` or `CONNECT`: the bytes after it may not be HTTP/1.
    switches: bool,
    /// Answered on the router's own loop, or handed to Pingora.
    fast: bool,
}

enum Target {
    /// The fast loop's target: path and query (for absolute-form, the part after the authority).
    PathAndQuery(String),
    /// A delegated request's request-target, as the bytes of its request line (hyper's URI
    /// must be these bytes parsed).
    Raw(Vec<u8>),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::PathAndQuery(path) => write!(f, "{path:?}"),
            Target::Raw(raw) => write!(f, "raw \"{}\"", show(raw)),
        }
    }
}

/// Why the router's side stopped.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The input ends before this request's head is whole.
    PartialHead,
    /// The input ended exactly after the last request.
    EndOfInput,
    /// Refused (by the router, or by Pingora for a delegated request), the input ends inside a
    /// body, the connection closes after the last request, or it switches protocols.
    Stop,
    /// `MAX_REQUESTS` compared.
    Limit,
}

/// A request as Pingora's HTTP/1 server session reads it.
#[derive(Debug)]
struct PingoraRequest {
    head_len: usize,
    method: http::Method,
    body: Bytes,
    /// Where Pingora's body reader stopped (the bytes it hands back for a next request); `None`
    /// when it does not keep the connection (then nothing is read after it anyway).
    wire_len: Option<usize>,
    keep_alive: bool,
    switches: bool,
}

#[derive(Debug)]
enum PingoraEnd {
    /// A 400 (bad head, bad chunk, bad trailer).
    Refused,
    /// The input ends before the request does.
    NeedsMore(String),
}

/// Pingora's reading of the request at the start of `rest`, with everything after it
/// available: the router hands over exactly the request's bytes, so Pingora must stop where the
/// router's framing ends, or refuse; reading on would take the next request's bytes (or wait
/// for bytes that never come) as body.
async fn pingora_frame(rest: &[u8], keep_alive: bool) -> Result<PingoraRequest, PingoraEnd> {
    fn end(e: pingora_core::BError) -> PingoraEnd {
        let text = e.to_string();
        match e.etype() {
            pingora_core::ErrorType::ConnectionClosed => PingoraEnd::NeedsMore(text),
            pingora_core::ErrorType::Custom("PrematureBodyEnd") => PingoraEnd::NeedsMore(text),
            _ => PingoraEnd::Refused,
        }
    }
    let mut session = HttpSession::new(Box::new(std::io::Cursor::new(Vec::<u8>::new())));
    session.set_read_timeout(None);
    // With pipelining on, the bytes after the request come back from `reuse()`: that is where
    // its body reader stopped. (The router keeps pipelining off: bytes read past a request
    // close the connection, and a next request is parsed from what arrives after.)
    session.set_pipelining_enabled(true);
    session.set_pipelined_prefix(BytesMut::from(rest));
    // As the router's hand-over does (`ServerSession::set_keepalive`, before the framework
    // reads the request).
    session.set_server_keepalive(keep_alive.then_some(60));
    let head_len = match session.read_request().await {
        Ok(Some(n)) => n,
        Ok(None) => return Err(PingoraEnd::NeedsMore("no request".into())),
        Err(e) => return Err(end(e)),
    };
    let header = session.req_header();
    let method = header.method.clone();
    let switches = method == http::Method::CONNECT || session.is_upgrade_req();
    let mut body = BytesMut::new();
    loop {
        match session.read_body_bytes().await {
            Ok(Some(bytes)) => body.extend_from_slice(&bytes),
            Ok(None) => break,
            Err(e) => return Err(end(e)),
        }
    }
    let keep_alive = session.will_keepalive();
    let wire_len = match session.reuse().await {
        Ok(Some(reused)) => Some(rest.len() - reused.into_parts().1.map_or(0, |p| p.len())),
        Ok(None) => None,
        Err(e) => return Err(end(e)),
    };
    Ok(PingoraRequest {
        head_len,
        method,
        body: body.freeze(),
        wire_len,
        keep_alive,
        switches,
    })
}

/// The data of a chunked body `chunked_body_len` accepted (so: well-formed, CRLF lines).
fn decode_chunked(mut wire: &[u8]) -> Bytes {
    let mut data = Vec::new();
    loop {
        let lf = wire
            .iter()
            .position(|&b| b == b'\n')
            .expect("a chunk-size line");
        let digits = wire.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let hex = std::str::from_utf8(&wire[..digits]).expect("hex digits");
        let size = usize::from_str_radix(hex, 16).expect("a chunk size");
        wire = &wire[lf + 1..];
        if size == 0 {
            return data.into();
        }
        data.extend_from_slice(&wire[..size]);
        wire = &wire[size + 2..];
    }
}

/// The router's framing of the requests in `data`.
fn frame_all(rt: &tokio::runtime::Runtime, data: &[u8]) -> (Vec<Framed>, End) {
    let mut framed = Vec::new();
    let mut offset = 0;
    while framed.len() < MAX_REQUESTS {
        let rest = &data[offset..];
        let request = match parse_head(rest) {
            HeadParse::Partial => return (framed, End::PartialHead),
            HeadParse::Refuse(_) | HeadParse::TooManyHeaders => return (framed, End::Stop),
            HeadParse::Fast(head) => {
                let head_len = head.head_len;
                let (body, wire_len) = match head.body {
                    BodyFraming::Length(n) => {
                        let end = head_len.checked_add(n).expect("head + body overflows");
                        let body = (end <= rest.len())
                            .then(|| Bytes::copy_from_slice(&rest[head_len..end]));
                        (body, end)
                    }
                    BodyFraming::Chunked => match chunked_body_len(&rest[head_len..]) {
                        // Answered 400, connection closed.
                        ChunkedBody::Invalid => return (framed, End::Stop),
                        ChunkedBody::Partial => (None, usize::MAX),
                        ChunkedBody::Complete(n) => {
                            let wire = &rest[head_len..head_len + n];
                            (Some(decode_chunked(wire)), head_len + n)
                        }
                    },
                };
                // In proxy mode the router hands this request (head and body, `wire_len` bytes)
                // to Pingora: Pingora reads the same request, or refuses it.
                if body.is_some() {
                    match rt.block_on(pingora_frame(rest, head.keep_alive)) {
                        Ok(p) => {
                            let same = p.head_len == head_len
                                && Some(&p.body) == body.as_ref()
                                && p.wire_len.is_none_or(|len| len == wire_len);
                            if !same {
                                disagree(
                                    data,
                                    format!(
                                        "router (fast loop) and Pingora frame request {} at byte {offset} differently: router head {head_len} {:?} body {:?} ends at {wire_len}; Pingora head {} body {:?} ends at {:?}",
                                        framed.len(),
                                        head.body,
                                        body.as_deref().map(show),
                                        p.head_len,
                                        show(&p.body),
                                        p.wire_len
                                    ),
                                );
                            }
                        }
                        Err(PingoraEnd::Refused) => {}
                        Err(PingoraEnd::NeedsMore(why)) => disagree(
                            data,
                            format!(
                                "request {} at byte {offset}: the router's body ends at {wire_len}, Pingora reads on past the input ({why})",
                                framed.len()
                            ),
                        ),
                    }
                }
                let target = std::str::from_utf8(&rest[head.target.clone()])
                    .expect("a fast target is ASCII")
                    .to_string();
                let method = head
                    .method
                    .to_http(rest)
                    .expect("httparse's method token is an http::Method");
                let switches = method == http::Method::CONNECT;
                Framed {
                    start: offset,
                    head_len,
                    method,
                    target: Target::PathAndQuery(target),
                    framing: head.body,
                    body,
                    wire_len,
                    keep_alive: head.keep_alive,
                    switches,
                    fast: true,
                }
            }
            HeadParse::Delegate {
                head_len,
                body,
                keep_alive,
            } => {
                // As the router hands it over: a chunked body is first measured by its own
                // strict `chunked_body_len` (refused when `Invalid`), and the framework gets
                // exactly the request's bytes and the router's keep-alive.
                let (router_body, request_len) = match body {
                    BodyFraming::Length(n) => {
                        let end = head_len.checked_add(n).expect("head + body overflows");
                        if end > rest.len() {
                            // Pingora would wait for the rest of the body.
                            return (framed, End::Stop);
                        }
                        (Bytes::copy_from_slice(&rest[head_len..end]), end)
                    }
                    BodyFraming::Chunked => match chunked_body_len(&rest[head_len..]) {
                        // Answered 400 (connection closed), or the input ends inside the body.
                        ChunkedBody::Invalid | ChunkedBody::Partial => return (framed, End::Stop),
                        ChunkedBody::Complete(n) => {
                            (decode_chunked(&rest[head_len..head_len + n]), head_len + n)
                        }
                    },
                };
                // The framework reads it: Pingora refusing it is the router refusing it;
                // reading it otherwise is a disagreement.
                let p = match rt.block_on(pingora_frame(rest, keep_alive)) {
                    Ok(p) => p,
                    Err(PingoraEnd::Refused) => return (framed, End::Stop),
                    Err(PingoraEnd::NeedsMore(why)) => disagree(
                        data,
                        format!(
                            "request {} at byte {offset}: the router hands over {request_len} bytes ({body:?}), Pingora reads on past the input ({why})",
                            framed.len()
                        ),
                    ),
                };
                if p.head_len != head_len
                    || p.body != router_body
                    || p.wire_len.is_some_and(|len| len != request_len)
                {
                    disagree(
                        data,
                        format!(
                            "request {} at byte {offset}: router head {head_len} {body:?} body {:?} ends at {request_len}; Pingora head {} body {:?} ends at {:?}",
                            framed.len(),
                            show(&router_body),
                            p.head_len,
                            show(&p.body),
                            p.wire_len
                        ),
                    );
                }
                let (target, _) = head_fields(&rest[..head_len]);
                Framed {
                    start: offset,
                    head_len,
                    method: p.method,
                    target: Target::Raw(target),
                    framing: body,
                    body: Some(router_body),
                    wire_len: request_len,
                    // The connection goes on only when both keep it: the router closes it (a
                    // lingering close) after a hand-over whose client asked to close in any
                    // `Connection` field, even when Pingora (which reads only the first) kept it.
                    keep_alive: keep_alive && p.keep_alive,
                    switches: p.switches,
                    fast: false,
                }
            }
        };
        let (whole, keep_alive, switches, wire_len) = (
            request.body.is_some(),
            request.keep_alive,
            request.switches,
            request.wire_len,
        );
        framed.push(request);
        if !whole || !keep_alive || switches {
            return (framed, End::Stop);
        }
        offset += wire_len;
        if offset == data.len() {
            return (framed, End::EndOfInput);
        }
    }
    (framed, End::Limit)
}

/// The request's head fields, by a strict parse of its head (the router accepted it).
fn head_fields(head: &[u8]) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let mut headers = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let _ = req.parse(head);
    let target = req.path.unwrap_or_default().as_bytes().to_vec();
    let fields = req
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    (target, fields)
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Connections the router keeps and hyper closes: one deliberate difference.
fn keep_alive_difference(request: &Framed, head: &[u8]) -> Option<&'static str> {
    let mut headers = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let _ = req.parse(head);
    let mut connection = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .map(|h| h.value);
    if request.fast {
        // DELIBERATE: an HTTP/1.0 `Connection: keep-alive` in a field that also holds obs-text
        // (bytes >= 0x80) or other bytes outside visible ASCII. The router reads the list's
        // tokens byte by byte (RFC 9110 §5.5: obs-text is opaque data), hyper ignores a value
        // that is not visible ASCII and closes. Either way the request's framing is the same.
        let opaque_keep_alive = |v: &[u8]| {
            has_token(v, b"keep-alive")
                && !v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        };
        if req.version == Some(0) && connection.any(opaque_keep_alive) {
            return Some("obs-text in an HTTP/1.0 Connection field");
        }
    }
    None
}

fn values<'a>(fields: &'a [(String, Vec<u8>)], name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    fields
        .iter()
        .filter(move |(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// Deliberate differences: heads the router (with Pingora) accepts and hyper refuses, each with
/// the refusal hyper gives and the reason it is not a framing disagreement. Keep it short.
const DELIBERATE: &[(&str, &str, fn(&[u8], &[(String, Vec<u8>)]) -> bool)] = &[
    (
        // RFC 9110 §8.6: a recipient may take `Content-Length: 5, 5` (or a list with the same
        // value repeated) as 5; the router does, and refuses any list whose values differ.
        // hyper's server accepts only 1*DIGIT per field value. Both agree on the length when
        // both accept.
        "Content-Length as a list of one repeated value",
        "invalid content-length parsed",
        |_, fields| values(fields, "content-length").any(|v| v.contains(&b',')),
    ),
    (
        // Targets `http::Uri` does not parse (in a path `<`, `>` or a backtick, in a query `"`,
        // `<` or `>`, bytes >= 0x80 that are not UTF-8, absolute or authority forms it does not
        // take): httparse accepts them, so the head's framing is not in doubt; the router
        // routes them (a path outside its grammar is answered 400, the connection kept) or
        // delegates them (Pingora percent-escapes such a target); hyper answers 400.
        "target http::Uri rejects",
        "invalid URI",
        |target, _| http::Uri::try_from(target).is_err(),
    ),
];

fn deliberate(head: &[u8], hyper_refusal: &str) -> Option<&'static str> {
    let (target, fields) = head_fields(head);
    // When the bytes after a head it refuses start with the HTTP/2 preface (`PRI * HTTP/2.0`),
    // hyper reports any parse error as this one: the cause is lost, any entry may apply.
    let relabelled = hyper_refusal == "invalid HTTP version parsed (found HTTP2 preface)";
    DELIBERATE
        .iter()
        .find(|(_, refusal, applies)| {
            (relabelled || hyper_refusal == *refusal) && applies(&target, &fields)
        })
        .map(|(what, _, _)| *what)
}

fn show(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let _ = write!(out, "{}", c.escape_debug());
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

fn disagree(data: &[u8], what: String) -> ! {
    panic!(
        "framing disagreement: {what}\n  input ({} bytes): \"{}\"",
        data.len(),
        show(data)
    );
}

fn compare(data: &[u8], framed: &[Framed], end: &End, hyper: &HyperRun) {
    for (i, ours) in framed.iter().enumerate() {
        let head = &data[ours.start..ours.start + ours.head_len];
        let who = if ours.fast {
            "router"
        } else {
            "router+Pingora"
        };
        let Some(theirs) = hyper.requests.get(i) else {
            match &hyper.refused {
                Some(refusal) => {
                    if deliberate(head, refusal).is_some() {
                        return;
                    }
                    disagree(
                        data,
                        format!(
                            "request {i} at byte {}: {who} accepts it ({:?} {:?}, {:?}), hyper refuses it ({refusal})",
                            ours.start, ours.method, ours.target, ours.framing
                        ),
                    )
                }
                None => {
                    if i > 0 {
                        let previous = &framed[i - 1];
                        let head = &data[previous.start..previous.start + previous.head_len];
                        if keep_alive_difference(previous, head).is_some() {
                            return;
                        }
                    }
                    disagree(
                    data,
                    format!(
                        "request {i} at byte {}: {who} frames it ({:?} {:?}, {:?}), hyper does not see it (the connection ended after {} requests)",
                        ours.start, ours.method, ours.target, ours.framing, hyper.requests.len()
                    ),
                    )
                }
            }
        };
        let context = || {
            format!(
                "request {i} at byte {}: {who} {:?} {:?} {:?} body {:?}; hyper {:?} {:?} length {:?} body {:?}",
                ours.start,
                ours.method,
                ours.target,
                ours.framing,
                ours.body.as_deref().map(show),
                theirs.method,
                theirs.uri,
                theirs.exact_len,
                theirs.body.as_deref().map(show),
            )
        };
        if ours.method != theirs.method {
            disagree(data, format!("method differs: {}", context()));
        }
        let same_target = match &ours.target {
            Target::PathAndQuery(path) => hyper_path_and_query(&theirs.uri) == path,
            Target::Raw(raw) => {
                http::Uri::try_from(raw.as_slice()).ok().as_ref() == Some(&theirs.uri)
            }
        };
        if !same_target {
            disagree(data, format!("target differs: {}", context()));
        }
        let same_framing = match ours.framing {
            BodyFraming::Length(n) => theirs.exact_len == Some(n as u64),
            BodyFraming::Chunked => theirs.exact_len.is_none(),
        };
        if !same_framing {
            disagree(data, format!("body framing differs: {}", context()));
        }
        match (&ours.body, &theirs.body) {
            // The input ends inside the body: hyper must not have found it whole.
            (None, Ok(_)) => disagree(
                data,
                format!(
                    "the router's body runs past the input, hyper's does not: {}",
                    context()
                ),
            ),
            (None, Err(_)) => return,
            (Some(mine), Ok(hyper_body)) if mine == hyper_body => {}
            (Some(_), Ok(_)) => disagree(data, format!("body differs: {}", context())),
            (Some(_), Err(_)) => disagree(data, format!("hyper refuses the body: {}", context())),
        }
    }
    let n = framed.len();
    match end {
        // hyper must not find a request where the router still waits for its head, nor after
        // the last one at the end of the input.
        End::PartialHead | End::EndOfInput => {
            if hyper.requests.len() > n {
                disagree(
                    data,
                    format!(
                        "hyper sees request {n} ({:?} {:?}) where the router sees {}",
                        hyper.requests[n].method,
                        hyper.requests[n].uri,
                        if *end == End::PartialHead {
                            "an incomplete head"
                        } else {
                            "the end of the input"
                        }
                    ),
                );
            }
        }
        End::Stop | End::Limit => {}
    }
}

/// `FRAMING_DEBUG=1`: print both sides' framing of each input (for running single inputs).
fn debug() -> bool {
    static DEBUG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("FRAMING_DEBUG").is_some())
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
}

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT {
        return;
    }
    RUNTIME.with(|rt| {
        let (framed, end) = frame_all(rt, data);
        if framed.is_empty() && end != End::PartialHead {
            // Refused at once: nothing the router accepts to compare.
            return;
        }
        if framed.is_empty() && data.iter().all(|b| *b == b'\r' || *b == b'\n') {
            return;
        }
        let hyper = run_hyper(rt, data);
        if debug() {
            eprintln!("router: {end:?} after {framed:#?}\nhyper: {hyper:#?}");
        }
        compare(data, &framed, &end, &hyper);
    });
});
