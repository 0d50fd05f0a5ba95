//! HTTP/1.1 conformance of proxy mode (RFC 9110, RFC 9112), whatever transport carries it: a
//! raw fake edge answers with scripted bytes (Content-Length, chunked with extensions and
//! trailers, close-delimited, HEAD, 304/204, 206, 1xx, garbage, resets, a body cut short, 4 MiB)
//! and a raw client (and curl, a client we did not write) checks what the router makes of it:
//! framing, end-to-end and hop-by-hop fields, forwarding fields, connection reuse on both sides,
//! 502s.

use crate::fake_edge::{edge, pattern, snapshot, RegionSpec};
use crate::harness::{poll, run_bounded, Router, Setup};
use crate::http::{find, raw_request, response_head, shown, Conn, End, Response};
use crate::raw_edge::{After, RawEdge, RawRequest, Reply};
use std::process::Command;
use std::time::{Duration, Instant};

/// The edge's name: what `Host` must say on the way to it.
const EDGE_DOMAIN: &str = "edge.framing.test";
/// A short connect timeout: refused connections fail at once anyway.
/// The two proxy transports every case here runs against: the router's own HTTP/1.1 relay
/// (`router.proxy.relay: true`, the default) and the Pingora adapter (`relay: false`).
#[derive(Debug, Clone, Copy)]
enum Transport {
    Relay,
    Framework,
}

impl Transport {
    fn proxy_line(self) -> &'static str {
        match self {
            Transport::Relay => {
                "proxy: {connect_timeout_ms: 300, read_timeout_ms: 5000, relay: true}"
            }
            Transport::Framework => {
                "proxy: {connect_timeout_ms: 300, read_timeout_ms: 5000, relay: false}"
            }
        }
    }
}
/// The most one response may take to arrive whole.
const RESPONSE_WITHIN: Duration = Duration::from_secs(10);

/// End-to-end fields an edge sends with a file; each must reach the client unchanged.
const END_TO_END: [(&str, &str); 6] = [
    ("Content-Type", "video/mp4"),
    ("ETag", "\"v1-5000\""),
    ("Last-Modified", "Wed, 21 Oct 2026 07:28:00 GMT"),
    ("Accept-Ranges", "bytes"),
    ("Cache-Control", "public, max-age=3600"),
    ("X-Edge-Thing", "thing; a=1, b=\"two\""),
];

/// A router whose VOD route proxies to `edge` (named [`EDGE_DOMAIN`], at its address).
fn setup(edge_server: &RawEdge, transport: Transport) -> Setup {
    let servers = [edge(1, EDGE_DOMAIN, "127.0.0.1", edge_server.port())];
    let region = RegionSpec {
        id: 1,
        cidrs: &["127.0.0.1/32"],
        edge_ids: &[1],
    };
    Setup::with(snapshot("v1", &[region], &servers))
        .router_lines(&["routes: {vod: {mode: proxy}}", transport.proxy_line()])
}

fn start(edge_server: &RawEdge, transport: Transport) -> Router {
    setup(edge_server, transport).start()
}

/// How the router delimited a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body: HEAD, 204, 304.
    Empty,
    Length,
    Chunked,
    /// Until the connection closed (FIN).
    Close,
}

/// One final response as the client decoded it.
#[derive(Debug)]
struct Framed {
    /// Status, fields and the decoded body.
    response: Response,
    framing: Framing,
    /// The statuses of the 1xx answers before it.
    interim: Vec<u16>,
    /// Trailer lines of a chunked body.
    trailers: Vec<String>,
}

/// A whole chunked body, decoded.
struct Dechunked {
    body: Vec<u8>,
    trailers: Vec<String>,
    /// The bytes of the chunked encoding, up to and including its last CRLF.
    used: usize,
}

/// The chunked body at the start of `bytes`; `None` while incomplete.
fn decode_chunked(bytes: &[u8]) -> Result<Option<Dechunked>, String> {
    let mut pos = 0;
    let mut body = Vec::new();
    loop {
        let Some(eol) = find(&bytes[pos..], b"\r\n") else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&bytes[pos..pos + eol]).into_owned();
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|e| format!("bad chunk size line {line:?}: {e}"))?;
        pos += eol + 2;
        if size == 0 {
            let mut trailers = Vec::new();
            loop {
                let Some(eol) = find(&bytes[pos..], b"\r\n") else {
                    return Ok(None);
                };
                let line = String::from_utf8_lossy(&bytes[pos..pos + eol]).into_owned();
                pos += eol + 2;
                if line.is_empty() {
                    return Ok(Some(Dechunked {
                        body,
                        trailers,
                        used: pos,
                    }));
                }
                trailers.push(line);
            }
        }
        if bytes.len() < pos + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&bytes[pos..pos + size]);
        if &bytes[pos + size..pos + size + 2] != b"\r\n" {
            return Err(format!("chunk of {size} bytes not followed by CRLF"));
        }
        pos += size + 2;
    }
}

/// The start of `bytes` as text for a message, and their length (bodies are long).
fn brief(bytes: &[u8]) -> String {
    let shown_len = bytes.len().min(300);
    format!("{} ({} bytes)", shown(&bytes[..shown_len]), bytes.len())
}

/// Reads more into `conn`; `Err` once the peer has ended the connection or `deadline` passed.
fn read_more(conn: &mut Conn, deadline: Instant, what: &str) -> Result<(), String> {
    if let Some(end) = conn.until_closed(Duration::ZERO)? {
        return Err(format!(
            "{end:?} before {what}; buffered: {}",
            brief(conn.buffered())
        ));
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(format!(
            "no {what} within {RESPONSE_WITHIN:?}; buffered: {}",
            brief(conn.buffered())
        ));
    }
    conn.read_some(left).map(|_| ())
}

/// Reads one final response (after any 1xx), whatever framing the router chose, and decodes
/// its body. A body cut short by the end of the connection is an error.
fn read_framed(conn: &mut Conn, head_request: bool) -> Result<Framed, String> {
    let deadline = Instant::now() + RESPONSE_WITHIN;
    let mut interim = Vec::new();
    loop {
        let (mut response, start) = loop {
            if let Some(head) = response_head(conn.buffered())? {
                break head;
            }
            read_more(conn, deadline, "a whole response head")?;
        };
        let status = response.status;
        if (100..200).contains(&status) {
            interim.push(status);
            conn.consume(start);
            continue;
        }
        let chunked = response
            .header("transfer-encoding")
            .map(|te| te.to_ascii_lowercase());
        let mut framed = |response: Response, framing, trailers| Framed {
            response,
            framing,
            interim: std::mem::take(&mut interim),
            trailers,
        };
        if head_request || status == 204 || status == 304 {
            conn.consume(start);
            return Ok(framed(response, Framing::Empty, Vec::new()));
        }
        let lengths: Vec<String> = response
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .map(|(_, value)| value.clone())
            .collect();
        if chunked.is_some() && !lengths.is_empty() {
            return Err(format!(
                "both Transfer-Encoding and Content-Length: {:?}",
                response.headers
            ));
        }
        if lengths.iter().any(|l| *l != lengths[0]) {
            return Err(format!("differing Content-Lengths: {:?}", response.headers));
        }
        if let Some(te) = chunked {
            if te.trim() != "chunked" {
                return Err(format!("unexpected Transfer-Encoding {te:?}"));
            }
            loop {
                if let Some(whole) = decode_chunked(&conn.buffered()[start..])? {
                    conn.consume(start + whole.used);
                    response.body = whole.body;
                    return Ok(framed(response, Framing::Chunked, whole.trailers));
                }
                read_more(conn, deadline, "the end of a chunked body")?;
            }
        }
        if let Some(value) = response.header("content-length") {
            let len: usize = value
                .parse()
                .map_err(|_| format!("bad Content-Length {value:?}"))?;
            while conn.buffered().len() < start + len {
                read_more(
                    conn,
                    deadline,
                    &format!("{len} body bytes (Content-Length)"),
                )?;
            }
            response.body = conn.buffered()[start..start + len].to_vec();
            conn.consume(start + len);
            return Ok(framed(response, Framing::Length, Vec::new()));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        return match conn.until_closed(left)? {
            Some(End::Eof) => {
                response.body = conn.buffered()[start..].to_vec();
                let all = conn.buffered().len();
                conn.consume(all);
                Ok(framed(response, Framing::Close, Vec::new()))
            }
            other => Err(format!(
                "close-delimited body not ended by a FIN ({other:?}); buffered: {}",
                brief(conn.buffered())
            )),
        };
    }
}

/// Sends one request on `conn` and reads its response; panics with the router's log.
fn exchange(
    router: &Router,
    conn: &mut Conn,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Framed {
    conn.send(&raw_request(method, target, headers));
    read_framed(conn, method == "HEAD").unwrap_or_else(|e| {
        panic!(
            "{method} {target}: {e}\nrouter stderr:\n{}",
            router.stderr()
        )
    })
}

/// Runs curl (HTTP/1.1, bounded) with `args`; its exit code, stdout and stderr.
fn curl(router: &Router, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["--http1.1", "-sS", "--max-time", "10"])
        .args(args);
    let (status, out, err) = run_bounded(&mut cmd, router.dir());
    (status.code(), out, err)
}

/// The body curl fetched for `path` (curl exited 0).
fn curl_body(router: &Router, path: &str) -> Vec<u8> {
    let file = router.dir().join("curl-body.out");
    let target = file.display().to_string();
    let (code, _, err) = curl(router, &["-o", &target, &url(router, path)]);
    assert_eq!(code, Some(0), "curl {path}: {err}");
    std::fs::read(&file).expect("curl's output")
}

fn url(router: &Router, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", router.port)
}

/// FNV-1a 64 of `bytes`: a checksum to name in messages.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn assert_same_body(got: &[u8], wanted: &[u8], what: &str) {
    assert!(
        got == wanted,
        "{what}: {} bytes, checksum {:x}; the edge sent {} bytes, checksum {:x}",
        got.len(),
        checksum(got),
        wanted.len(),
        checksum(wanted)
    );
}

/// A `200` head with `len` as its Content-Length, then `fields` (lines without CRLF).
fn ok_head(len: usize, fields: &[&str]) -> String {
    let mut head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}");
    for field in fields {
        head.push_str("\r\n");
        head.push_str(field);
    }
    head
}

/// Every `Name: value` of `fields` as the edge's head lines.
fn field_lines(fields: &[(&str, &str)]) -> Vec<String> {
    fields.iter().map(|(n, v)| format!("{n}: {v}")).collect()
}

fn lines_ref(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).collect()
}

fn content_length_answer_keeps_status_body_end_to_end_fields_and_the_connection(
    transport: Transport,
) {
    let body = pattern(0, 5000);
    let lines = field_lines(&END_TO_END);
    let head = ok_head(body.len(), &lines_ref(&lines));
    let sent = body.clone();
    let edge_server = RawEdge::start(move |request: &RawRequest| {
        if request.head.target == "/vod/missing.mp4" {
            Reply::keep(
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nX-Edge-Thing: gone",
                b"no such file\n",
            )
        } else {
            Reply::keep(&head, &sent)
        }
    });
    let router = start(&edge_server, transport);

    let mut conn = Conn::open(router.v4());
    for target in ["/vod/a.mp4", "/vod/b.mp4?t=1"] {
        let got = exchange(&router, &mut conn, "GET", target, &[]);
        let response = &got.response;
        assert_eq!(response.status, 200, "{got:?}");
        assert_eq!(got.framing, Framing::Length, "{:?}", response.headers);
        assert_eq!(response.header("content-length"), Some("5000"));
        for (name, value) in END_TO_END {
            assert_eq!(
                response.header(name),
                Some(value),
                "{name}: {:?}",
                response.headers
            );
        }
        assert_same_body(&response.body, &body, target);
    }
    // The edge's error reaches the client as the edge sent it, and the connection stays.
    let missing = exchange(&router, &mut conn, "GET", "/vod/missing.mp4", &[]);
    assert_eq!(missing.response.status, 404, "{missing:?}");
    assert_eq!(missing.response.body, b"no such file\n");
    assert_eq!(missing.response.header("x-edge-thing"), Some("gone"));
    let again = exchange(&router, &mut conn, "GET", "/vod/a.mp4", &[]);
    assert_same_body(&again.response.body, &body, "after the 404");
    let targets = edge_server.targets();
    assert_eq!(
        targets,
        [
            "/vod/a.mp4",
            "/vod/b.mp4?t=1",
            "/vod/missing.mp4",
            "/vod/a.mp4"
        ]
    );

    // curl: two transfers, the second on the first one's connection.
    let (code, out, err) = curl(
        &router,
        &[
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects} %{size_download} %{content_type}\\n",
            &url(&router, "/vod/c.mp4"),
            &url(&router, "/vod/d.mp4"),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["200 1 5000 video/mp4", "200 0 5000 video/mp4"],
        "{err}"
    );
}

/// The chunks of [`chunked_answer`]: sizes chosen to cross buffer sizes.
const CHUNK_SIZES: [usize; 5] = [7, 300, 4096, 1, 20_000];

/// A chunked 200 with chunk extensions and a trailer; the decoded body.
fn chunked_answer() -> (Vec<u8>, Vec<u8>) {
    let mut bytes = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nTransfer-Encoding: chunked\r\nTrailer: X-Digest\r\nX-Edge-Thing: chunked\r\n\r\n".to_vec();
    let mut body = Vec::new();
    for (i, size) in CHUNK_SIZES.iter().enumerate() {
        let data = pattern(body.len(), *size);
        bytes.extend_from_slice(format!("{size:x};ext-{i}=\"v {i}\";flag\r\n").as_bytes());
        bytes.extend_from_slice(&data);
        bytes.extend_from_slice(b"\r\n");
        body.extend_from_slice(&data);
    }
    bytes.extend_from_slice(b"0;last=1\r\nX-Digest: fnv-abc\r\n\r\n");
    (bytes, body)
}

fn chunked_answer_reaches_the_client_framed_and_decodes_to_the_edges_bytes(transport: Transport) {
    let (answer, body) = chunked_answer();
    let edge_server = RawEdge::start(move |_| Reply::new(answer.clone(), After::KeepOpen));
    let router = start(&edge_server, transport);

    let mut conn = Conn::open(router.v4());
    for target in ["/vod/chunked-1.ts", "/vod/chunked-2.ts"] {
        let got = exchange(&router, &mut conn, "GET", target, &[]);
        assert_eq!(got.response.status, 200, "{got:?}");
        assert!(
            matches!(got.framing, Framing::Chunked | Framing::Length),
            "{:?} on a kept connection: {:?}",
            got.framing,
            got.response.headers
        );
        assert_eq!(got.response.header("x-edge-thing"), Some("chunked"));
        assert_same_body(&got.response.body, &body, target);
        // Trailers may be dropped (RFC 9110 §6.5.1), never turned into body bytes.
        assert!(
            got.trailers.iter().all(|t| t.starts_with("X-Digest")),
            "{:?}",
            got.trailers
        );
    }
    assert_eq!(edge_server.requests().len(), 2);

    assert_same_body(&curl_body(&router, "/vod/chunked-3.ts"), &body, "curl");
}

fn close_delimited_answer_arrives_whole_with_a_valid_framing(transport: Transport) {
    let body = pattern(0, 20_000);
    let mut answer = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\n\r\n".to_vec();
    answer.extend_from_slice(&body);
    let edge_server = RawEdge::start(move |_| Reply::new(answer.clone(), After::Close));
    let router = start(&edge_server, transport);

    let mut conn = Conn::open(router.v4());
    let got = exchange(&router, &mut conn, "GET", "/vod/close-1.ts", &[]);
    assert_eq!(got.response.status, 200, "{got:?}");
    assert_same_body(&got.response.body, &body, "close-delimited");
    match got.framing {
        // The connection ended after the body (read_framed waited for the FIN).
        Framing::Close => {}
        Framing::Chunked | Framing::Length => {
            let again = exchange(&router, &mut conn, "GET", "/vod/close-2.ts", &[]);
            assert_same_body(&again.response.body, &body, "second, same connection");
        }
        Framing::Empty => panic!("no body: {got:?}"),
    }

    assert_same_body(&curl_body(&router, "/vod/close-3.ts"), &body, "curl");
}

fn head_returns_the_edges_fields_and_no_body(transport: Transport) {
    let edge_server = RawEdge::start(|request: &RawRequest| {
        if request.head.method == "HEAD" {
            Reply::keep(
                &ok_head(
                    12_345,
                    &[
                        "Content-Type: video/mp4",
                        "ETag: \"h1\"",
                        "Accept-Ranges: bytes",
                    ],
                ),
                b"",
            )
        } else {
            Reply::keep(&ok_head(3, &["Content-Type: text/plain"]), b"abc")
        }
    });
    let router = start(&edge_server, transport);

    let mut conn = Conn::open(router.v4());
    for _ in 0..2 {
        let got = exchange(&router, &mut conn, "HEAD", "/vod/movie.mp4", &[]);
        let response = &got.response;
        assert_eq!(response.status, 200, "{got:?}");
        assert_eq!(response.header("content-length"), Some("12345"));
        assert_eq!(response.header("content-type"), Some("video/mp4"));
        assert_eq!(response.header("etag"), Some("\"h1\""));
        assert_eq!(response.header("transfer-encoding"), None);
        // No body bytes follow: the next response starts right after the head.
        let next = exchange(&router, &mut conn, "GET", "/vod/small.txt", &[]);
        assert_eq!(next.response.status, 200, "{next:?}");
        assert_eq!(next.response.body, b"abc");
    }
    let methods: Vec<String> = edge_server
        .requests()
        .iter()
        .map(|r| r.head.method.clone())
        .collect();
    assert_eq!(methods, ["HEAD", "GET", "HEAD", "GET"]);
}

/// Request fields the edge must receive exactly as the client sent them.
const CONDITIONAL: [(&str, &str); 6] = [
    ("If-None-Match", "\"v1\", W/\"v0\""),
    ("If-Modified-Since", "Wed, 21 Oct 2026 07:28:00 GMT"),
    ("Range", "bytes=0-99"),
    ("User-Agent", "Player/1.0 (framing test)"),
    ("Accept-Encoding", "gzip, br;q=0.5"),
    ("X-Custom-Thing", "a b;c=\"d\""),
];

fn not_modified_and_no_content_have_no_body_and_conditional_fields_reach_the_edge(
    transport: Transport,
) {
    let edge_server = RawEdge::start(|request: &RawRequest| match request.head.target.as_str() {
        "/vod/not-modified.mp4" => Reply::keep(
            "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nCache-Control: max-age=60",
            b"",
        ),
        "/vod/no-content.mp4" => Reply::keep("HTTP/1.1 204 No Content\r\nX-Edge-Thing: none", b""),
        _ => Reply::keep(&ok_head(2, &[]), b"ok"),
    });
    let router = start(&edge_server, transport);

    let mut conn = Conn::open(router.v4());
    let not_modified = exchange(
        &router,
        &mut conn,
        "GET",
        "/vod/not-modified.mp4",
        &CONDITIONAL,
    );
    assert_eq!(not_modified.response.status, 304, "{not_modified:?}");
    assert_eq!(not_modified.response.header("etag"), Some("\"v1\""));
    assert_eq!(
        not_modified.response.header("cache-control"),
        Some("max-age=60")
    );
    let no_content = exchange(
        &router,
        &mut conn,
        "GET",
        "/vod/no-content.mp4",
        &CONDITIONAL,
    );
    assert_eq!(no_content.response.status, 204, "{no_content:?}");
    assert_eq!(no_content.response.header("x-edge-thing"), Some("none"));
    // Neither carried a body: the next answer on the connection is read cleanly.
    let after = exchange(&router, &mut conn, "GET", "/vod/after.mp4", &[]);
    assert_eq!(after.response.status, 200, "{after:?}");
    assert_eq!(after.response.body, b"ok");
    assert!(conn.buffered().is_empty(), "{}", brief(conn.buffered()));

    let seen = edge_server.requests();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for request in &seen[..2] {
        for (name, value) in CONDITIONAL {
            assert_eq!(
                request.head.header_values(name),
                [value],
                "{name} in {}",
                request.raw_text()
            );
        }
    }
}

fn range_request_gets_the_edges_partial_content(transport: Transport) {
    let full = pattern(0, 5000);
    let part = full[..100].to_vec();
    let edge_server = RawEdge::start(move |request: &RawRequest| {
        if request.head.header_values("range") == ["bytes=0-99"] {
            Reply::keep(
                "HTTP/1.1 206 Partial Content\r\nContent-Type: video/mp4\r\nContent-Range: bytes 0-99/5000\r\nContent-Length: 100",
                &part,
            )
        } else {
            Reply::keep(&ok_head(full.len(), &["Content-Type: video/mp4"]), &full)
        }
    });
    let router = start(&edge_server, transport);

    let mut conn = Conn::open(router.v4());
    for _ in 0..2 {
        let got = exchange(
            &router,
            &mut conn,
            "GET",
            "/vod/movie.mp4",
            &[("Range", "bytes=0-99")],
        );
        assert_eq!(got.response.status, 206, "{got:?}");
        assert_eq!(
            got.response.header("content-range"),
            Some("bytes 0-99/5000")
        );
        assert_same_body(&got.response.body, &pattern(0, 100), "the range");
    }
    let (code, out, err) = curl(
        &router,
        &[
            "-r",
            "0-99",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
            &url(&router, "/vod/movie.mp4"),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "206 100");
}

/// An edge answer with hop-by-hop fields: its own `Connection` option, `Keep-Alive`.
fn hop_by_hop_edge() -> RawEdge {
    RawEdge::start(|_| {
        Reply::keep(
            &ok_head(
                2,
                &[
                    "Connection: keep-alive, X-Edge-Hop",
                    "Keep-Alive: timeout=5, max=7",
                    "X-Edge-Hop: 1",
                    "X-Edge-Thing: kept",
                ],
            ),
            b"ok",
        )
    })
}

/// A client request's hop-by-hop fields, its own (untrusted) forwarding fields, and one
/// end-to-end field.
const CLIENT_FIELDS: [(&str, &str); 8] = [
    ("Connection", "keep-alive, X-Hop"),
    ("X-Hop", "1"),
    ("Keep-Alive", "timeout=30"),
    ("TE", "trailers"),
    ("Proxy-Connection", "keep-alive"),
    ("X-Forwarded-For", "203.0.113.9"),
    ("X-Real-IP", "203.0.113.10"),
    ("X-End-To-End", "kept"),
];

/// Two requests with [`CLIENT_FIELDS`] on one connection through a router that does not trust
/// loopback as a proxy; their responses (each a 200 with the edge's body).
fn hop_by_hop_exchanges(edge_server: &RawEdge, transport: Transport) -> Vec<Response> {
    let router = setup(edge_server, transport)
        .trusted_proxies(&["192.0.2.0/24"])
        .start();
    let mut conn = Conn::open(router.v4());
    ["/vod/hop-1.mp4", "/vod/hop-2.mp4"]
        .iter()
        .map(|target| {
            let got = exchange(&router, &mut conn, "GET", target, &CLIENT_FIELDS);
            assert_eq!(got.response.status, 200, "{got:?}");
            assert_eq!(got.response.body, b"ok");
            assert_eq!(got.response.header("x-edge-thing"), Some("kept"));
            got.response
        })
        .collect()
}

fn the_clients_hop_by_hop_fields_stop_at_the_router_and_forwarding_fields_are_its_own(
    transport: Transport,
) {
    let edge_server = hop_by_hop_edge();
    hop_by_hop_exchanges(&edge_server, transport);
    let seen = edge_server.requests();
    assert_eq!(seen.len(), 2);
    for request in seen {
        let head = &request.head;
        let raw = request.raw_text();
        for name in ["X-Hop", "Keep-Alive", "TE", "Proxy-Connection"] {
            assert!(
                head.header_values(name).is_empty(),
                "{name} reached the edge:\n{raw}"
            );
        }
        assert!(
            !head
                .header_values("connection")
                .iter()
                .any(|c| c.to_ascii_lowercase().contains("x-hop")),
            "the client's Connection reached the edge:\n{raw}"
        );
        assert_eq!(head.header_values("host"), [EDGE_DOMAIN], "{raw}");
        assert_eq!(
            head.header_values("x-forwarded-for"),
            ["127.0.0.1"],
            "{raw}"
        );
        assert_eq!(head.header_values("x-real-ip"), ["127.0.0.1"], "{raw}");
        assert_eq!(head.header_values("x-end-to-end"), ["kept"], "{raw}");
    }
}

fn the_edges_hop_by_hop_fields_stop_at_the_router(transport: Transport) {
    let edge_server = hop_by_hop_edge();
    for response in hop_by_hop_exchanges(&edge_server, transport) {
        let fields = &response.headers;
        assert_eq!(response.header("x-edge-hop"), None, "{fields:?}");
        let connection = response.header("connection").unwrap_or_default();
        assert!(
            !connection.to_ascii_lowercase().contains("x-edge-hop"),
            "{fields:?}"
        );
        // The router may announce its own Keep-Alive, never the edge's.
        assert!(
            !response
                .header("keep-alive")
                .is_some_and(|k| k.contains("max=7")),
            "{fields:?}"
        );
    }
}

fn edge_connections_are_reused_and_one_the_edge_closes_is_not(transport: Transport) {
    let keep = |_: &RawRequest| Reply::keep(&ok_head(4, &["Content-Type: text/plain"]), b"kept");
    let edge_server = RawEdge::start(keep);
    let router = start(&edge_server, transport);

    let mut conn = Conn::open(router.v4());
    for i in 0..20 {
        let got = exchange(&router, &mut conn, "GET", &format!("/vod/seg-{i}.ts"), &[]);
        assert_eq!(got.response.body, b"kept", "{got:?}");
    }
    assert!(
        edge_server.connections() <= 2,
        "{} edge connections for 20 sequential requests",
        edge_server.connections()
    );

    edge_server.set_script(|_| {
        Reply::new(
            format!("{}\r\n\r\nclosed", ok_head(6, &["Connection: close"])),
            After::Close,
        )
    });
    for i in 0..3 {
        let got = exchange(&router, &mut conn, "GET", &format!("/vod/last-{i}.ts"), &[]);
        assert_eq!(got.response.status, 200, "{got:?}");
        assert_eq!(got.response.body, b"closed", "{got:?}");
    }
    let seen = edge_server.requests();
    assert_eq!(seen.len(), 23);
    for pair in seen[20..].windows(2) {
        assert_eq!(pair[1].nth, 0, "reused after Connection: close: {pair:?}");
        assert_ne!(pair[1].connection, pair[0].connection, "{pair:?}");
    }
}

fn an_edge_closing_an_idle_kept_alive_connection_costs_no_request(transport: Transport) {
    // Each answer says nothing of closing (HTTP/1.1: persistent), then the edge closes.
    let edge_server =
        RawEdge::start(|_| Reply::new(format!("{}\r\n\r\nok", ok_head(2, &[])), After::Close));
    let router = start(&edge_server, transport);

    let mut conn = Conn::open(router.v4());
    for i in 0..4 {
        let got = exchange(&router, &mut conn, "GET", &format!("/vod/idle-{i}.ts"), &[]);
        assert_eq!(got.response.status, 200, "request {i}: {got:?}");
        assert_eq!(got.response.body, b"ok");
        // The edge's side of the connection is closed before the next request.
        poll("the edge closed its connection", || {
            match edge_server.open_connections() {
                0 => Ok(()),
                n => Err(format!("{n} open")),
            }
        });
    }
    assert_eq!(edge_server.connections(), 4);
}

fn a_request_on_a_kept_alive_connection_the_edge_drops_unanswered_is_retried(transport: Transport) {
    // The race of RFC 9112 §9.3.1: the edge closes a kept-alive connection just as the next
    // request arrives on it. A GET is safe to retry on a fresh connection.
    let edge_server = RawEdge::start(|request: &RawRequest| {
        if request.nth == 0 {
            Reply::keep(&ok_head(2, &[]), b"ok")
        } else {
            Reply::new(Vec::new(), After::Close)
        }
    });
    let router = start(&edge_server, transport);

    let mut conn = Conn::open(router.v4());
    for i in 0..3 {
        let got = exchange(
            &router,
            &mut conn,
            "GET",
            &format!("/vod/stale-{i}.ts"),
            &[],
        );
        assert_eq!(
            got.response.status,
            200,
            "request {i}: {got:?}; edge saw {:?}",
            edge_server.requests()
        );
        assert_eq!(got.response.body, b"ok");
    }
    // The race did happen: requests arrived on kept connections and were dropped unanswered.
    let seen = edge_server.requests();
    let dropped = seen.iter().filter(|r| r.nth > 0).count();
    assert!(dropped >= 1, "{seen:?}");
    assert_eq!(seen.len(), 3 + dropped, "{seen:?}");
}

fn interim_answers_before_the_final_one_are_survived(transport: Transport) {
    let body = pattern(0, 1000);
    let sent = body.clone();
    let edge_server = RawEdge::start(move |request: &RawRequest| {
        let interim: &[u8] = match request.head.target.as_str() {
            "/vod/continue.mp4" => b"HTTP/1.1 100 Continue\r\n\r\n",
            "/vod/hints.mp4" => b"HTTP/1.1 103 Early Hints\r\nLink: </init.mp4>; rel=preload\r\n\r\n",
            _ => b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n",
        };
        let mut bytes = interim.to_vec();
        bytes.extend_from_slice(
            format!("{}\r\n\r\n", ok_head(sent.len(), &["X-Edge-Thing: final"])).as_bytes(),
        );
        bytes.extend_from_slice(&sent);
        Reply::new(bytes, After::KeepOpen)
    });
    let router = start(&edge_server, transport);

    let mut conn = Conn::open(router.v4());
    for target in [
        "/vod/continue.mp4",
        "/vod/hints.mp4",
        "/vod/both.mp4",
        "/vod/hints.mp4",
    ] {
        let got = exchange(&router, &mut conn, "GET", target, &[]);
        assert_eq!(got.response.status, 200, "{target}: {got:?}");
        assert_eq!(got.response.header("x-edge-thing"), Some("final"));
        assert_same_body(&got.response.body, &body, target);
        // A proxy may pass 1xx on (RFC 9110 §15.2) but never a 100 the client did not ask for
        // in place of the final answer.
        assert!(
            got.interim.iter().all(|s| *s == 100 || *s == 103),
            "{got:?}"
        );
    }
}

fn garbage_or_a_reset_from_the_edge_is_a_502_and_the_router_serves_on(transport: Transport) {
    let edge_server = RawEdge::start(|request: &RawRequest| match request.head.target.as_str() {
        "/vod/garbage.ts" => Reply::new(
            b"SSH-2.0-OpenSSH_9.2\r\nthis is not HTTP at all\r\n\r\n".to_vec(),
            After::Close,
        ),
        "/vod/reset.ts" => Reply::new(Vec::new(), After::Reset),
        _ => Reply::keep(&ok_head(2, &[]), b"ok"),
    });
    let router = start(&edge_server, transport);

    for target in [
        "/vod/garbage.ts",
        "/vod/reset.ts",
        "/vod/garbage.ts",
        "/vod/reset.ts",
    ] {
        let mut conn = Conn::open(router.v4());
        let got = exchange(&router, &mut conn, "GET", target, &[]);
        assert_eq!(got.response.status, 502, "{target}: {got:?}");
        assert!(
            !got.response.body.is_empty() && got.response.body.len() < 100,
            "{got:?}"
        );
        let mut fresh = Conn::open(router.v4());
        let ok = exchange(&router, &mut fresh, "GET", "/vod/fine.ts", &[]);
        assert_eq!(ok.response.status, 200, "after {target}: {ok:?}");
        assert_eq!(ok.response.body, b"ok");
    }
    // Every bad answer was the edge's (the requests reached it), none a refused connection.
    let targets = edge_server.targets();
    for bad in ["/vod/garbage.ts", "/vod/reset.ts"] {
        assert!(
            targets.iter().filter(|t| *t == bad).count() >= 2,
            "{targets:?}"
        );
    }
}

fn an_edge_dying_mid_body_never_yields_a_complete_looking_answer(transport: Transport) {
    /// (announced, sent) bytes: a small body, and one large enough for the relay to splice.
    const SMALL: (usize, usize) = (100_000, 30_000);
    const LARGE: (usize, usize) = (1_000_000, 300_000);
    let edge_server = RawEdge::start(|request: &RawRequest| {
        let (announced, sent) = if request.head.target.contains("large") {
            LARGE
        } else {
            SMALL
        };
        let mut bytes = format!(
            "{}\r\n\r\n",
            ok_head(announced, &["Content-Type: video/mp4"])
        )
        .into_bytes();
        bytes.extend_from_slice(&pattern(0, sent));
        Reply::new(bytes, After::Close)
    });
    let router = start(&edge_server, transport);

    for (size, (announced, _)) in [("small", SMALL), ("large", LARGE)] {
        for i in 0..2 {
            let mut conn = Conn::open(router.v4());
            conn.send(&raw_request(
                "GET",
                &format!("/vod/cut-{size}-{i}.mp4"),
                &[],
            ));
            match read_framed(&mut conn, false) {
                // A whole answer only if it says it failed.
                Ok(got) => assert!(got.response.status >= 500, "complete-looking: {got:?}"),
                Err(e) => {
                    let ended = conn.until_closed(Duration::ZERO).expect("read");
                    assert!(ended.is_some(), "not closed: {e}");
                    let head = response_head(conn.buffered())
                        .expect("a head")
                        .map(|(r, _)| r);
                    if let Some(head) = head {
                        let announced = announced.to_string();
                        assert_eq!(
                            head.header("content-length"),
                            Some(announced.as_str()),
                            "{head:?}"
                        );
                    }
                }
            }
        }
        // curl: a partial transfer (exit 18), or another failure, never success.
        let (code, _, err) = curl(
            &router,
            &[
                "-o",
                "/dev/null",
                &url(&router, &format!("/vod/cut-{size}-curl.mp4")),
            ],
        );
        assert!(
            code.is_some_and(|c| c != 0),
            "curl exited {code:?} for a cut {size} body: {err}"
        );
    }
}

fn a_four_mib_body_arrives_intact(transport: Transport) {
    const LEN: usize = 4 * 1024 * 1024;
    let body = pattern(0, LEN);
    let mut answer = format!("{}\r\n\r\n", ok_head(LEN, &["Content-Type: video/mp4"])).into_bytes();
    answer.extend_from_slice(&body);
    let edge_server = RawEdge::start(move |_| Reply::new(answer.clone(), After::KeepOpen));
    let router = start(&edge_server, transport);

    let mut conn = Conn::open(router.v4());
    let got = exchange(&router, &mut conn, "GET", "/vod/big.mp4", &[]);
    assert_eq!(got.response.status, 200, "{:?}", got.response.headers);
    assert_same_body(&got.response.body, &body, "raw client");

    assert_same_body(&curl_body(&router, "/vod/big-2.mp4"), &body, "curl");
}

fn bytes_an_edge_sends_past_its_body_never_answer_a_later_request(transport: Transport) {
    // After each body, a whole second response nobody asked for: on a reused connection a proxy
    // that read it as the next answer would hand one client's request another's bytes.
    let edge_server = RawEdge::start(|request: &RawRequest| {
        let mut bytes = format!("{}\r\n\r\nok", ok_head(2, &[])).into_bytes();
        if request.nth == 0 {
            bytes.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!");
        }
        Reply::new(bytes, After::KeepOpen)
    });
    let router = start(&edge_server, transport);

    let mut conn = Conn::open(router.v4());
    for i in 0..4 {
        let got = exchange(&router, &mut conn, "GET", &format!("/vod/tail-{i}.ts"), &[]);
        assert_eq!(got.response.status, 200, "request {i}: {got:?}");
        assert_eq!(got.response.body, b"ok", "request {i}: {got:?}");
    }
    assert!(conn.buffered().is_empty(), "{}", brief(conn.buffered()));
    // Every answer was the edge's answer to that very request.
    let targets = edge_server.targets();
    assert_eq!(
        targets,
        [
            "/vod/tail-0.ts",
            "/vod/tail-1.ts",
            "/vod/tail-2.ts",
            "/vod/tail-3.ts"
        ]
    );
}

/// Each case as two tests: `<case>::relay` and `<case>::framework`.
macro_rules! on_both_transports {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[test]
                fn relay() {
                    super::$case(super::Transport::Relay);
                }

                #[test]
                fn framework() {
                    super::$case(super::Transport::Framework);
                }
            }
        )*
    };
}

on_both_transports!(
    the_edges_hop_by_hop_fields_stop_at_the_router,
    content_length_answer_keeps_status_body_end_to_end_fields_and_the_connection,
    chunked_answer_reaches_the_client_framed_and_decodes_to_the_edges_bytes,
    close_delimited_answer_arrives_whole_with_a_valid_framing,
    head_returns_the_edges_fields_and_no_body,
    not_modified_and_no_content_have_no_body_and_conditional_fields_reach_the_edge,
    range_request_gets_the_edges_partial_content,
    the_clients_hop_by_hop_fields_stop_at_the_router_and_forwarding_fields_are_its_own,
    edge_connections_are_reused_and_one_the_edge_closes_is_not,
    an_edge_closing_an_idle_kept_alive_connection_costs_no_request,
    a_request_on_a_kept_alive_connection_the_edge_drops_unanswered_is_retried,
    interim_answers_before_the_final_one_are_survived,
    garbage_or_a_reset_from_the_edge_is_a_502_and_the_router_serves_on,
    an_edge_dying_mid_body_never_yields_a_complete_looking_answer,
    a_four_mib_body_arrives_intact,
    bytes_an_edge_sends_past_its_body_never_answer_a_later_request,
);
