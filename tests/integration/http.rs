//! A minimal HTTP/1.1 client on `std::net::TcpStream`: raw requests, status line, headers
//! (case-insensitive lookup), Content-Length bodies, several requests per connection and
//! pipelined requests. Every read and write has a timeout, every response a deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Per read/write/connect.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// For one whole response.
const RESPONSE_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name`, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The Location header; panics with the whole response when there is none.
    pub fn location(&self) -> &str {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location header in {self:?}"))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
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

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One client connection; bytes read past a response stay buffered for the next one.
pub struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    buf: Vec<u8>,
    eof: bool,
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

/// [`try_connect`], panicking on failure.
pub fn connect(addr: SocketAddr, timeout: Duration) -> TcpStream {
    try_connect(addr, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// The response head at the start of `buf` (status and headers, body empty) and where its
/// body starts; `None` while the head is incomplete.
pub fn response_head(buf: &[u8]) -> Result<Option<(Response, usize)>, String> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    Ok(Some((response, head_end + 4)))
}

impl Conn {
    pub fn try_open(addr: SocketAddr) -> Result<Conn, String> {
        let stream = try_connect(addr, IO_TIMEOUT)?;
        Ok(Conn {
            stream,
            addr,
            buf: Vec::new(),
            eof: false,
        })
    }

    pub fn open(addr: SocketAddr) -> Conn {
        Conn::try_open(addr).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("write to {}: {e}", self.addr))
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Reads more bytes; `Ok(false)` at end of stream.
    fn fill(&mut self, deadline: Instant) -> Result<bool, String> {
        if self.eof {
            return Ok(false);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no complete response from {} within {RESPONSE_DEADLINE:?}; buffered: {:?}",
                self.addr,
                String::from_utf8_lossy(&self.buf)
            ));
        }
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                Ok(false)
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) => Err(format!(
                "read from {}: {e}; buffered: {:?}",
                self.addr,
                String::from_utf8_lossy(&self.buf)
            )),
        }
    }

    /// Reads one response; `head_request` says the request was HEAD (no body follows).
    pub fn try_read_response(&mut self, head_request: bool) -> Result<Response, String> {
        let deadline = Instant::now() + RESPONSE_DEADLINE;
        let (mut response, body_start) = loop {
            if let Some(head) = response_head(&self.buf)? {
                break head;
            }
            if !self.fill(deadline)? {
                return Err(format!(
                    "connection to {} closed before a response head; got {:?}",
                    self.addr,
                    String::from_utf8_lossy(&self.buf)
                ));
            }
        };
        let status = response.status;
        let no_body = head_request || status == 204 || status == 304 || status < 200;
        if response
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
            && !no_body
        {
            return Err(format!(
                "chunked responses are not expected from the router: {response:?}"
            ));
        }
        let length = if no_body {
            Some(0)
        } else {
            match response.header("content-length") {
                Some(v) => Some(
                    v.parse::<usize>()
                        .map_err(|_| format!("bad Content-Length {v:?}"))?,
                ),
                None => None, // body runs to the end of the stream
            }
        };
        let body_end = match length {
            Some(len) => {
                while self.buf.len() < body_start + len {
                    if !self.fill(deadline)? {
                        return Err(format!(
                            "connection closed inside a {len}-byte body: {:?}",
                            String::from_utf8_lossy(&self.buf)
                        ));
                    }
                }
                body_start + len
            }
            None => {
                while self.fill(deadline)? {}
                self.buf.len()
            }
        };
        response.body = self.buf[body_start..body_end].to_vec();
        self.buf.drain(..body_end);
        Ok(response)
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
