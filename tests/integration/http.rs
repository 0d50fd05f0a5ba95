//! The one HTTP/1.1 client of the tests, on `std::net::TcpStream`: raw requests, the response
//! head reader ([`response_head`]), whole responses with Content-Length bodies taken from a
//! buffer ([`take_response`]), and [`Conn`], a client connection that reads them, several per
//! connection and pipelined, tells a FIN from a reset and can keep every byte it received.
//! Every read and write has a timeout, every response a deadline. Also the request-head reader
//! of the fake servers ([`read_request_head`]).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Per read/write/connect.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// For one whole response.
const RESPONSE_DEADLINE: Duration = Duration::from_secs(10);
/// The largest request head a fake server reads.
const MAX_REQUEST_HEAD: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Every value of header `name` in `headers`, case-insensitively, in order.
fn values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

impl Response {
    /// The first header called `name`, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        values(&self.headers, name).first().copied()
    }

    /// The Location header; panics with the whole response when there is none.
    pub fn location(&self) -> &str {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location header in {self:?}"))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, asserting `Content-Type: application/json`.
    pub fn json(&self) -> serde_json::Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Headers that must not differ between two answers to the same request (all but Date),
    /// lower-cased names, in order.
    pub fn stable_headers(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect()
    }

    /// `"302 http://..."` or `"404 Server not found"`: a one-line summary for polling and
    /// assertion messages.
    pub fn summary(&self) -> String {
        match self.header("location") {
            Some(location) => format!("{} {location}", self.status),
            None => format!("{} {}", self.status, self.text()),
        }
    }
}

/// The bytes of one request: `Host` first, then `headers` in order.
pub fn raw_request(method: &str, target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: router.test\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Where `needle` first starts in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `bytes` as text for a message, escaped.
pub fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).escape_debug().to_string()
}

/// The head at the start of `buf` (up to the blank line) as lines; `None` while incomplete.
fn head_lines(buf: &[u8]) -> Option<(String, usize)> {
    let end = find(buf, b"\r\n\r\n")?;
    Some((String::from_utf8_lossy(&buf[..end]).into_owned(), end + 4))
}

/// A `Name: value` line, trimmed; `None` without a colon.
fn field(line: &str) -> Option<(String, String)> {
    line.split_once(':')
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
}

/// The response head at the start of `buf` (status and headers, body empty) and where its
/// body starts; `None` while the head is incomplete.
pub fn response_head(buf: &[u8]) -> Result<Option<(Response, usize)>, String> {
    let Some((head, body_start)) = head_lines(buf) else {
        return Ok(None);
    };
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .map(|line| field(line).ok_or_else(|| format!("bad header line {line:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    Ok(Some((response, body_start)))
}

/// The length of the body that follows `head`: 0 for HEAD and the statuses without a body,
/// else its Content-Length. The router declares every length: a chunked body, or one that runs
/// until the connection closes, is an error.
fn body_length(head: &Response, head_request: bool) -> Result<usize, String> {
    let status = head.status;
    if head_request || status == 204 || status == 304 || status < 200 {
        return Ok(0);
    }
    if head
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        return Err(format!(
            "chunked responses are not expected from the router: {head:?}"
        ));
    }
    let value = head
        .header("content-length")
        .ok_or_else(|| format!("no Content-Length in {head:?}"))?;
    value
        .parse()
        .map_err(|_| format!("bad Content-Length {value:?}"))
}

/// The first whole response in `buf`, removed from it; `None` while incomplete.
/// `head_request`: the request was HEAD (no body follows).
pub fn take_response(buf: &mut Vec<u8>, head_request: bool) -> Result<Option<Response>, String> {
    let Some((mut response, body_start)) = response_head(buf)? else {
        return Ok(None);
    };
    let body_end = body_start + body_length(&response, head_request)?;
    if buf.len() < body_end {
        return Ok(None);
    }
    response.body = buf[body_start..body_end].to_vec();
    buf.drain(..body_end);
    Ok(Some(response))
}

/// A connected socket with `timeout` on every read and write, and Nagle off.
pub fn try_connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .and_then(|()| stream.set_nodelay(true))
        .map_err(|e| format!("socket options for {addr}: {e}"))?;
    Ok(stream)
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// How the peer ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `read` returned 0: a FIN.
    Eof,
    /// `ECONNRESET` (or the like).
    Reset,
}

/// One client connection; bytes read past a response stay buffered for the next one.
pub struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    /// The most one whole response may take.
    deadline: Duration,
    /// Received, not yet taken as a response.
    buf: Vec<u8>,
    /// How the peer ended the connection, once it has.
    end: Option<End>,
    /// Every byte received, when asked for ([`Conn::keep_received`]).
    received: Option<Vec<u8>>,
}

impl Conn {
    /// Connects with [`IO_TIMEOUT`] on every read and write; a response may take 10 s.
    pub fn try_open(addr: SocketAddr) -> Result<Conn, String> {
        let stream = try_connect(addr, IO_TIMEOUT)?;
        Ok(Conn::over(stream, addr, RESPONSE_DEADLINE))
    }

    pub fn open(addr: SocketAddr) -> Conn {
        Conn::try_open(addr).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Connects with `timeout` on the connect, every write and every whole response.
    pub fn open_with_timeout(addr: SocketAddr, timeout: Duration) -> Conn {
        let stream = try_connect(addr, timeout).unwrap_or_else(|e| panic!("{e}"));
        Conn::over(stream, addr, timeout)
    }

    fn over(stream: TcpStream, addr: SocketAddr, deadline: Duration) -> Conn {
        Conn {
            stream,
            addr,
            deadline,
            buf: Vec::new(),
            end: None,
            received: None,
        }
    }

    /// Keeps every byte received from now on, for [`Conn::received`].
    pub fn keep_received(mut self) -> Conn {
        self.received = Some(Vec::new());
        self
    }

    /// Every byte received since [`Conn::keep_received`].
    pub fn received(&self) -> &[u8] {
        self.received.as_deref().unwrap_or_default()
    }

    /// Received, not yet taken as a response.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Drops the first `n` buffered bytes: a response the caller has read itself.
    pub fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }

    /// Takes the bytes received and not yet taken as a response.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    pub fn try_send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("write to {}: {e}", self.addr))
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes).unwrap_or_else(|e| panic!("{e}"));
    }

    /// One read, waiting at most `wait`: the number of bytes it got (0 when the wait ran out
    /// or the peer has ended the connection, which [`Conn::until_closed`] then reports).
    pub fn read_some(&mut self, wait: Duration) -> Result<usize, String> {
        if self.end.is_some() {
            return Ok(0);
        }
        self.stream
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .map_err(|e| format!("read timeout for {}: {e}", self.addr))?;
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => self.end = Some(End::Eof),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                if let Some(received) = &mut self.received {
                    received.extend_from_slice(&chunk[..n]);
                }
                return Ok(n);
            }
            Err(e) if is_reset(&e) => self.end = Some(End::Reset),
            Err(e) if is_timeout(&e) => {}
            Err(e) => {
                return Err(format!(
                    "read from {}: {e}; buffered: {:?}",
                    self.addr,
                    shown(&self.buf)
                ))
            }
        }
        Ok(0)
    }

    /// Reads until the peer ends the connection, for at most `within`: how it ended, or
    /// `None` while it is still open. The bytes read stay buffered.
    pub fn until_closed(&mut self, within: Duration) -> Result<Option<End>, String> {
        let deadline = Instant::now() + within;
        while self.end.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.read_some(left)?;
        }
        Ok(self.end)
    }

    /// Reads one response; `head_request` says the request was HEAD (no body follows).
    pub fn try_read_response(&mut self, head_request: bool) -> Result<Response, String> {
        let deadline = Instant::now() + self.deadline;
        loop {
            if let Some(response) = take_response(&mut self.buf, head_request)? {
                return Ok(response);
            }
            if let Some(end) = self.end {
                return Err(format!(
                    "{end:?} from {} before a whole response; buffered: {:?}",
                    self.addr,
                    shown(&self.buf)
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "no complete response from {} within {:?}; buffered: {:?}",
                    self.addr,
                    self.deadline,
                    shown(&self.buf)
                ));
            }
            self.read_some(left)?;
        }
    }

    pub fn read_response(&mut self, head_request: bool) -> Response {
        self.try_read_response(head_request)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sends one request and reads its response.
    pub fn request(&mut self, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
        self.send(&raw_request(method, target, headers));
        self.read_response(method == "HEAD")
    }

    /// `GET target` and its response.
    pub fn get(&mut self, target: &str) -> Response {
        self.request("GET", target, &[])
    }
}

/// One request on a fresh connection that asks to be closed afterwards.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    let mut conn = Conn::try_open(addr)?;
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    all.push(("Connection", "close"));
    conn.try_send(&raw_request(method, target, &all))?;
    conn.try_read_response(method == "HEAD")
}

/// One request head as a fake server received it.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: String,
    /// Path and query, as on the request line.
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// Every value of header `name`, case-insensitively, in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        values(&self.headers, name)
    }

    /// The only value of header `name`; panics when it is missing or repeated.
    pub fn header(&self, name: &str) -> &str {
        match self.header_values(name).as_slice() {
            [one] => one,
            other => panic!("expected one {name} header, found {other:?} in {self:?}"),
        }
    }
}

/// Reads one request head (server side, at most 64 KiB); `None` when the connection ends
/// first or the request line is malformed. Lines without a colon are skipped.
pub fn read_request_head(stream: &mut TcpStream) -> Option<RequestHead> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, _) = loop {
        if let Some(head) = head_lines(&buf) {
            break head;
        }
        if buf.len() > MAX_REQUEST_HEAD {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let mut lines = head.split("\r\n");
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    Some(RequestHead {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        headers: lines.filter_map(field).collect(),
    })
}
