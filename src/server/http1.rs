//! The HTTP/1 the router speaks itself: a request head parsed in place (httparse) into the few
//! facts routing needs, and redirect or text answers serialised into one buffer. Anything this
//! does not handle is handed, bytes untouched, to the Pingora framework.

use super::answer::{HeadSize, TextAnswer, CACHE_CONTROL};
use pingora::protocols::http::date::get_cached_date;
use std::io::Write;
use std::mem::MaybeUninit;
use std::ops::Range;

/// More headers than Pingora itself accepts (256), so "too many" is always over the limit.
const MAX_PARSED_HEADERS: usize = 257;

/// A request's method: the two routed ones, or another (answered 405), by its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FastMethod {
    Get,
    Head,
    Other(Range<usize>),
}

impl FastMethod {
    /// The method as `http` knows it; `None` for one it cannot represent.
    pub fn to_http(&self, buf: &[u8]) -> Option<http::Method> {
        match self {
            FastMethod::Get => Some(http::Method::GET),
            FastMethod::Head => Some(http::Method::HEAD),
            FastMethod::Other(range) => http::Method::from_bytes(&buf[range.clone()]).ok(),
        }
    }
}

/// A complete request head the router answers itself: no chunked body, no `Upgrade` or
/// `Expect`, an origin-form target of visible ASCII. Ranges index the buffer that was parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastHead {
    /// Bytes of the head, up to and including the empty line.
    pub head_len: usize,
    /// Bytes of the body that follows the head (`Content-Length`).
    pub body_len: usize,
    pub method: FastMethod,
    /// Path and query.
    pub target: Range<usize>,
    /// The first `X-Real-IP` value.
    pub x_real_ip: Option<Range<usize>>,
    /// The client wants the connection kept (HTTP/1.1 without `close`, HTTP/1.0 with
    /// `keep-alive`).
    pub keep_alive: bool,
    pub size: HeadSize,
}

/// What a buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadParse {
    /// Not a whole head yet.
    Partial,
    Fast(FastHead),
    /// For the framework: `request_len` is the head plus a `Content-Length` body when known,
    /// `None` when the request's end is unknown (chunked body, unparsable head).
    Delegate {
        request_len: Option<usize>,
    },
    /// More header lines than any limit allows.
    TooManyHeaders,
    /// Not HTTP/1 (a bad request line or header line).
    Invalid,
}

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn range_in(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

/// Parses the head at the start of `buf`.
pub fn parse_head(buf: &[u8]) -> HeadParse {
    let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_PARSED_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return HeadParse::Partial,
        Err(httparse::Error::TooManyHeaders) => return HeadParse::TooManyHeaders,
        // Pingora parses with the same httparse rules, and would answer 400 too.
        Err(_) => return HeadParse::Invalid,
    };
    let http10 = req.version == Some(0);
    let mut keep_alive = !http10;
    let mut body_len = 0usize;
    let mut plain = true;
    let mut x_real_ip = None;
    let mut size = HeadSize {
        uri_bytes: 0,
        header_count: req.headers.len(),
        header_bytes: 0,
    };
    for header in req.headers.iter() {
        let name = header.name;
        size.header_bytes += name.len() + header.value.len();
        if name.eq_ignore_ascii_case("x-real-ip") {
            if x_real_ip.is_none() {
                x_real_ip = Some(range_in(buf, header.value));
            }
        } else if name.eq_ignore_ascii_case("connection") {
            if has_token(header.value, "close") {
                keep_alive = false;
            } else if http10 && has_token(header.value, "keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
            {
                Some(n) if body_len == 0 || body_len == n => body_len = n,
                _ => return HeadParse::Delegate { request_len: None },
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return HeadParse::Delegate { request_len: None };
        } else if name.eq_ignore_ascii_case("upgrade") || name.eq_ignore_ascii_case("expect") {
            plain = false;
        }
    }
    let request_len = head_len.checked_add(body_len);
    let method = match req.method {
        Some("GET") => FastMethod::Get,
        Some("HEAD") => FastMethod::Head,
        Some(other) => FastMethod::Other(range_in(buf, other.as_bytes())),
        None => return HeadParse::Delegate { request_len },
    };
    let target = req.path.unwrap_or_default().as_bytes();
    size.uri_bytes = target.len();
    let origin_form = target.first() == Some(&b'/')
        && target
            .iter()
            .all(|&b| (0x21..=0x7e).contains(&b) && b != b'#');
    if !plain || !origin_form || request_len.is_none() {
        return HeadParse::Delegate { request_len };
    }
    HeadParse::Fast(FastHead {
        head_len,
        body_len,
        method,
        target: range_in(buf, target),
        x_real_ip,
        keep_alive,
        size,
    })
}

fn status_line(out: &mut Vec<u8>, status: u16) {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    // Formatting into the Vec itself: no allocation.
    let _ = write!(out, "HTTP/1.1 {status} {reason}\r\n");
}

fn header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn end_of_head(out: &mut Vec<u8>, keep_alive: bool) {
    header(out, "Date", get_cached_date().as_bytes());
    let connection: &[u8] = if keep_alive { b"keep-alive" } else { b"close" };
    header(out, "Connection", connection);
    out.extend_from_slice(b"\r\n");
}

/// A `302` to `location`, with the same headers as the framework's answer.
pub fn write_redirect(out: &mut Vec<u8>, location: &str, keep_alive: bool) {
    out.extend_from_slice(b"HTTP/1.1 302 Found\r\n");
    header(out, "Location", location.as_bytes());
    header(out, "Content-Length", b"0");
    header(out, "Cache-Control", CACHE_CONTROL.as_bytes());
    end_of_head(out, keep_alive);
}

/// A `text/plain` answer; a HEAD request gets the head only.
pub fn write_text(out: &mut Vec<u8>, answer: TextAnswer, head_only: bool, keep_alive: bool) {
    status_line(out, answer.status);
    header(out, "Content-Type", b"text/plain");
    let _ = write!(out, "Content-Length: {}\r\n", answer.body.len());
    if let Some((name, value)) = answer.extra {
        header(out, name, value.as_bytes());
    }
    end_of_head(out, keep_alive);
    if !head_only {
        out.extend_from_slice(answer.body.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(raw: &[u8]) -> FastHead {
        match parse_head(raw) {
            HeadParse::Fast(head) => head,
            other => panic!("expected a fast head, got {other:?}"),
        }
    }

    #[test]
    fn a_plain_get_is_answered_here() {
        let raw = b"GET /btv/live/hls/1.m3u8?a=b HTTP/1.1\r\nHost: x\r\nX-Real-IP: 1.2.3.4\r\nx-real-ip: 5.6.7.8\r\n\r\nGET /next";
        let head = fast(raw);
        assert_eq!(head.head_len, raw.len() - b"GET /next".len());
        assert_eq!(head.method, FastMethod::Get);
        assert_eq!(&raw[head.target.clone()], b"/btv/live/hls/1.m3u8?a=b");
        assert_eq!(&raw[head.x_real_ip.clone().unwrap()], b"1.2.3.4");
        assert!(head.keep_alive);
        assert_eq!(head.size.uri_bytes, 24);
        assert_eq!(head.size.header_count, 3);
        assert_eq!(head.size.header_bytes, 4 + 1 + 9 + 7 + 9 + 7);
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_header() {
        assert!(!fast(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keep_alive);
        assert!(!fast(b"GET / HTTP/1.1\r\nConnection: te, close\r\n\r\n").keep_alive);
        assert!(!fast(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(fast(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(fast(b"HEAD / HTTP/1.1\r\n\r\n").keep_alive);
    }

    #[test]
    fn partial_heads_wait_for_more() {
        assert_eq!(parse_head(b""), HeadParse::Partial);
        assert_eq!(
            parse_head(b"GET /a HTTP/1.1\r\nHost: x\r\n"),
            HeadParse::Partial
        );
    }

    #[test]
    fn bodies_and_other_methods_are_known_by_length() {
        let post = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET";
        let head = fast(post);
        assert_eq!(head.head_len + head.body_len, post.len() - 3);
        assert_eq!(head.method.to_http(post), Some(http::Method::POST));
        let get_body = b"GET /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nab";
        let head = fast(get_body);
        assert_eq!((head.method, head.body_len), (FastMethod::Get, 2));
        let odd = b"BREW /pot HTTP/1.1\r\n\r\n";
        assert_eq!(fast(odd).method.to_http(odd).unwrap().as_str(), "BREW");
    }

    #[test]
    fn anything_unusual_goes_to_the_framework_with_its_length() {
        for raw in [
            &b"GET /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"GET /a HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"GET /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            assert_eq!(parse_head(raw), HeadParse::Delegate { request_len: None });
        }
        for raw in [
            &b"GET\x01 / HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ] {
            assert_eq!(parse_head(raw), HeadParse::Invalid);
        }
        for raw in [
            &b"GET http://x/a HTTP/1.1\r\n\r\n"[..],
            b"GET /a#b HTTP/1.1\r\n\r\n",
            b"GET /a HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            b"GET /a HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\n\r\n",
            b"POST http://x/a HTTP/1.1\r\n\r\n",
            b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(raw), HeadParse::Delegate { request_len: Some(n) } if n == raw.len()),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn too_many_headers_is_reported() {
        let mut raw = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..300 {
            raw.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        assert_eq!(parse_head(&raw), HeadParse::TooManyHeaders);
    }

    #[test]
    fn answers_are_well_formed() {
        let mut out = Vec::new();
        write_redirect(&mut out, "http://edge.example/a", true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 302 Found\r\nLocation: http://edge.example/a\r\nContent-Length: 0\r\nCache-Control: max-age=0, private, must-revalidate\r\nDate: "));
        assert!(text.ends_with("\r\nConnection: keep-alive\r\n\r\n"));

        let mut out = Vec::new();
        let answer = TextAnswer {
            status: 405,
            body: "Method not allowed",
            extra: Some(("Allow", "GET, HEAD")),
        };
        write_text(&mut out, answer, false, false);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\nContent-Length: 18\r\nAllow: GET, HEAD\r\nDate: "));
        assert!(text.ends_with("\r\nConnection: close\r\n\r\nMethod not allowed"));
        let mut head_only = Vec::new();
        write_text(&mut head_only, answer, true, false);
        assert_eq!(head_only, out[..out.len() - answer.body.len()]);
    }
}
