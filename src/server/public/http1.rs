//! The HTTP/1 the router speaks itself: a request head parsed in place (httparse) into the few
//! facts routing needs, and redirect or text answers serialised into one buffer. Anything this
//! does not handle is handed, bytes untouched, to the Pingora framework.

use crate::server::answer::{Answer, FieldValue, HeadSize};
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

/// A complete, well-framed request head the router answers itself: no `Upgrade` or `Expect`,
/// an origin-form (or absolute-form) target of visible ASCII. Ranges index the buffer that was
/// parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastHead {
    /// Bytes of the head, up to and including the empty line.
    pub head_len: usize,
    /// How the body that follows the head is framed.
    pub body: BodyFraming,
    pub method: FastMethod,
    /// Path and query.
    pub target: Range<usize>,
    /// The first `X-Real-IP` value.
    pub x_real_ip: Option<Range<usize>>,
    /// The client wants the connection kept (HTTP/1.1 without `close`, HTTP/1.0 with
    /// `keep-alive`).
    pub keep_alive: bool,
    /// An HTTP/1.0 request (else HTTP/1.1).
    pub http10: bool,
    pub size: HeadSize,
}

/// How the body of a request the framework takes is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// `Content-Length` bytes (0 without the field).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A head refused before routing: its framing is ambiguous or it is not HTTP/1 (RFC 9112).
/// Answered with `status` and `Connection: close`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// 400, or 501 for a transfer coding the router does not implement.
    pub status: u16,
    /// Why, for tests and debugging; never logged per request.
    pub why: &'static str,
}

const fn refuse(why: &'static str) -> HeadParse {
    HeadParse::Refuse(Refusal { status: 400, why })
}

/// What a buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadParse {
    /// Not a whole head yet.
    Partial,
    Fast(FastHead),
    /// A well-framed request for the framework (`Upgrade`, `Expect`, an unusual target): the
    /// head's length, how its body is framed, and whether the client wants the connection kept
    /// (as the router reads every `Connection` field; the framework reads only the first).
    Delegate {
        head_len: usize,
        body: BodyFraming,
        keep_alive: bool,
    },
    /// Refused: answered, then the connection closes.
    Refuse(Refusal),
    /// More header lines than any limit allows.
    TooManyHeaders,
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

/// Every LF of the head is preceded by CR (RFC 9112 §2.2 lets a recipient accept a bare LF;
/// the router does not, so that no front proxy can read the head's lines differently).
fn lines_end_in_crlf(head: &[u8]) -> bool {
    // memchr finds the few LFs of a head with SIMD; only their predecessors are looked at.
    memchr::memchr_iter(b'\n', head).all(|i| i > 0 && head[i - 1] == b'\r')
}

/// The value of one `Content-Length` field: a list of `1*DIGIT` elements that all agree.
fn content_length(value: &[u8]) -> Option<u64> {
    let mut length = None;
    for element in value.split(|&b| b == b',') {
        let digits = element.trim_ascii();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = digits.iter().try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?;
        match length {
            Some(seen) if seen != n => return None,
            _ => length = Some(n),
        }
    }
    length
}

/// The `Transfer-Encoding` fields of a head, as one list (RFC 9110 §5.3).
#[derive(Debug, Clone, Copy, Default)]
struct Codings {
    fields: u32,
    /// Non-empty list elements.
    codings: u32,
    /// Empty list elements (`chunked,`): refused, as nginx and Pingora (which frames proxied
    /// requests) do, although RFC 9110 §5.6.1 lets a recipient skip them.
    empty: bool,
    chunked: u32,
    last_is_chunked: bool,
}

/// How a head's `Transfer-Encoding` frames its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransferFraming {
    Absent,
    /// `chunked` alone.
    Chunked,
    /// `chunked` last, after codings the router does not implement.
    ChunkedAfterOthers,
    /// Chunked is not the final coding (or is there twice, or the list is empty): the body's
    /// end cannot be known.
    Unframed,
}

impl Codings {
    fn add(&mut self, value: &[u8]) {
        self.fields += 1;
        for coding in value.split(|&b| b == b',') {
            let coding = coding.trim_ascii();
            if coding.is_empty() {
                self.empty = true;
                continue;
            }
            let chunked = coding.eq_ignore_ascii_case(b"chunked");
            self.codings += 1;
            self.chunked += u32::from(chunked);
            self.last_is_chunked = chunked;
        }
    }

    fn framing(&self) -> TransferFraming {
        match *self {
            Codings { fields: 0, .. } => TransferFraming::Absent,
            Codings {
                chunked: 1,
                last_is_chunked: true,
                empty: false,
                codings,
                ..
            } => {
                if codings == 1 {
                    TransferFraming::Chunked
                } else {
                    TransferFraming::ChunkedAfterOthers
                }
            }
            _ => TransferFraming::Unframed,
        }
    }
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2) by its characters, or empty.
fn valid_host(value: &[u8]) -> bool {
    value.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
            )
    })
}

/// The path and query of an absolute-form target (`http://host/path?query`), when it has a
/// path; `None` for any other form.
fn absolute_form_path(target: &[u8]) -> Option<&[u8]> {
    let scheme_len = if target.len() > 7 && target[..7].eq_ignore_ascii_case(b"http://") {
        7
    } else if target.len() > 8 && target[..8].eq_ignore_ascii_case(b"https://") {
        8
    } else {
        return None;
    };
    let rest = &target[scheme_len..];
    let path_start = rest.iter().position(|&b| b == b'/')?;
    let authority = &rest[..path_start];
    if authority.is_empty() || !valid_host(authority) || authority.contains(&b'?') {
        return None;
    }
    Some(&rest[path_start..])
}

/// Parses the head at the start of `buf` and checks its framing (RFC 9112 §3.2, §5, §6):
/// what is ambiguous is refused, so that no front proxy and the router can read one stream
/// of bytes as different requests.
pub fn parse_head(buf: &[u8]) -> HeadParse {
    let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_PARSED_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return HeadParse::Partial,
        Err(httparse::Error::TooManyHeaders) => return HeadParse::TooManyHeaders,
        // Bad request line, field name, value character, obs-fold, space before a colon.
        Err(_) => return refuse("not an HTTP/1 head"),
    };
    if !lines_end_in_crlf(&buf[..head_len]) {
        return refuse("bare LF");
    }
    let http10 = req.version == Some(0);
    let mut keep_alive = !http10;
    let mut close = false;
    let mut content_len: Option<u64> = None;
    let mut codings = Codings::default();
    let mut hosts = 0usize;
    let mut plain = true;
    let mut x_real_ip = None;
    let mut size = HeadSize {
        uri_bytes: 0,
        header_count: req.headers.len(),
        header_bytes: 0,
    };
    for header in req.headers.iter() {
        let name = header.name;
        let value = header.value;
        size.header_bytes += name.len() + value.len();
        if name.eq_ignore_ascii_case("x-real-ip") {
            if x_real_ip.is_none() {
                x_real_ip = Some(range_in(buf, value));
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if !valid_host(value.trim_ascii()) {
                return refuse("bad Host");
            }
        } else if name.eq_ignore_ascii_case("connection") {
            // `close` in any field wins, whatever another field says.
            if has_token(value, "close") {
                keep_alive = false;
                close = true;
            } else if http10 && !close && has_token(value, "keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            match (content_length(value), content_len) {
                (Some(n), None) => content_len = Some(n),
                (Some(n), Some(seen)) if n == seen => {}
                _ => return refuse("bad Content-Length"),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            codings.add(value);
        } else if name.eq_ignore_ascii_case("upgrade") || name.eq_ignore_ascii_case("expect") {
            plain = false;
        }
    }
    if hosts > 1 || (hosts == 0 && !http10) {
        return refuse("Host missing or repeated");
    }
    let body = match (codings.framing(), content_len) {
        (TransferFraming::Absent, None) => BodyFraming::Length(0),
        (TransferFraming::Absent, Some(n)) => match usize::try_from(n) {
            Ok(n) if head_len.checked_add(n).is_some() => BodyFraming::Length(n),
            _ => return refuse("bad Content-Length"),
        },
        (_, Some(_)) => return refuse("Transfer-Encoding with Content-Length"),
        _ if http10 => return refuse("Transfer-Encoding in HTTP/1.0"),
        (TransferFraming::Chunked, None) => BodyFraming::Chunked,
        (TransferFraming::ChunkedAfterOthers, None) => {
            return HeadParse::Refuse(Refusal {
                status: 501,
                why: "transfer coding not implemented",
            })
        }
        (TransferFraming::Unframed, None) => return refuse("chunked is not the final coding"),
    };
    let method = match req.method {
        Some("GET") => FastMethod::Get,
        Some("HEAD") => FastMethod::Head,
        Some(other) => FastMethod::Other(range_in(buf, other.as_bytes())),
        None => return refuse("no method"),
    };
    let raw_target = req.path.unwrap_or_default().as_bytes();
    let target = absolute_form_path(raw_target).unwrap_or(raw_target);
    // A fragment is no part of a request target (RFC 9112 §3.2): cut off, as nginx does.
    let target = target.split(|&b| b == b'#').next().unwrap_or_default();
    size.uri_bytes = raw_target.len();
    let origin_form =
        target.first() == Some(&b'/') && target.iter().all(|&b| (0x21..=0x7e).contains(&b));
    if !plain || !origin_form {
        return HeadParse::Delegate {
            head_len,
            body,
            keep_alive,
        };
    }
    HeadParse::Fast(FastHead {
        head_len,
        body,
        method,
        target: range_in(buf, target),
        x_real_ip,
        keep_alive,
        http10,
        size,
    })
}

/// What the bytes at the start of a chunked body are (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedBody {
    /// Not the whole body yet.
    Partial,
    /// The whole body, last chunk and trailer section included, is this many bytes.
    Complete(usize),
    /// Not chunked framing: the body's end cannot be known.
    Invalid,
}

/// Longest chunk-size line or trailer line accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// The line at the start of `buf` without its CRLF: `Err(Partial)` before its end,
/// `Err(Invalid)` for a bare CR or LF or a line too long.
fn crlf_line(buf: &[u8]) -> Result<&[u8], ChunkedBody> {
    let window = &buf[..buf.len().min(MAX_CHUNK_LINE + 2)];
    match window.iter().position(|&b| b == b'\n') {
        Some(lf) if lf > 0 && window[lf - 1] == b'\r' => {
            let line = &window[..lf - 1];
            if line.contains(&b'\r') {
                Err(ChunkedBody::Invalid)
            } else {
                Ok(line)
            }
        }
        Some(_) => Err(ChunkedBody::Invalid),
        None if window.len() > MAX_CHUNK_LINE => Err(ChunkedBody::Invalid),
        None => Err(ChunkedBody::Partial),
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `*( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )`.
fn valid_chunk_ext(mut ext: &[u8]) -> bool {
    fn skip_ws(s: &[u8]) -> &[u8] {
        let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
        &s[n..]
    }
    fn token(s: &[u8]) -> Option<&[u8]> {
        let n = s.iter().take_while(|&&b| is_tchar(b)).count();
        (n > 0).then(|| &s[n..])
    }
    fn quoted(s: &[u8]) -> Option<&[u8]> {
        let mut i = 1;
        while i < s.len() {
            match s[i] {
                b'"' => return Some(&s[i + 1..]),
                b'\\' if i + 1 < s.len() => i += 2,
                b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => i += 1,
                _ => return None,
            }
        }
        None
    }
    loop {
        if ext.is_empty() {
            return true;
        }
        let Some(rest) = skip_ws(ext).strip_prefix(b";") else {
            return false;
        };
        let Some(rest) = token(skip_ws(rest)) else {
            return false;
        };
        ext = rest;
        if let Some(value) = skip_ws(ext).strip_prefix(b"=") {
            let value = skip_ws(value);
            let rest = if value.first() == Some(&b'"') {
                quoted(value)
            } else {
                token(value)
            };
            let Some(rest) = rest else {
                return false;
            };
            ext = rest;
        }
    }
}

/// A trailer field line: `token ":" OWS field-value OWS`, no control characters.
fn valid_field_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    colon > 0
        && line[..colon].iter().all(|&b| is_tchar(b))
        && line[colon + 1..]
            .iter()
            .all(|&b| b == b'\t' || (0x20..=0x7e).contains(&b) || b >= 0x80)
}

/// Frames a chunked body: its chunk sizes (hex, at most 16 digits), extensions, data, and
/// trailer section, strictly.
pub fn chunked_body_len(buf: &[u8]) -> ChunkedBody {
    let mut at = 0usize;
    loop {
        let line = match crlf_line(&buf[at..]) {
            Ok(line) => line,
            Err(end) => return end,
        };
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits == 0 || digits > 16 || !valid_chunk_ext(&line[digits..]) {
            return ChunkedBody::Invalid;
        }
        let Some(size) = std::str::from_utf8(&line[..digits])
            .ok()
            .and_then(|hex| usize::from_str_radix(hex, 16).ok())
        else {
            return ChunkedBody::Invalid;
        };
        at += line.len() + 2;
        if size == 0 {
            loop {
                let line = match crlf_line(&buf[at..]) {
                    Ok(line) => line,
                    Err(end) => return end,
                };
                at += line.len() + 2;
                if line.is_empty() {
                    return ChunkedBody::Complete(at);
                }
                if !valid_field_line(line) {
                    return ChunkedBody::Invalid;
                }
            }
        }
        let Some(data_end) = at.checked_add(size) else {
            return ChunkedBody::Invalid;
        };
        if buf.len() < data_end.saturating_add(2) {
            // Everything that arrived must still be chunk data.
            return if buf.len() > data_end && buf[data_end] != b'\r' {
                ChunkedBody::Invalid
            } else {
                ChunkedBody::Partial
            };
        }
        if &buf[data_end..data_end + 2] != b"\r\n" {
            return ChunkedBody::Invalid;
        }
        at = data_end + 2;
    }
}

fn status_line(out: &mut Vec<u8>, status: u16) {
    if status == 302 {
        out.extend_from_slice(b"HTTP/1.1 302 Found\r\n");
        return;
    }
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

/// Serialises an answer: its status line and fields, `Date` and `Connection`, and its body
/// unless the request was HEAD.
pub fn write_answer(out: &mut Vec<u8>, answer: &Answer, head_only: bool, keep_alive: bool) {
    status_line(out, answer.status());
    answer.fields(|name, value| match value {
        FieldValue::Bytes(bytes) => header(out, name, bytes),
        FieldValue::Number(n) => {
            let _ = write!(out, "{name}: {n}\r\n");
        }
    });
    header(out, "Date", get_cached_date().as_bytes());
    let connection: &[u8] = if keep_alive { b"keep-alive" } else { b"close" };
    header(out, "Connection", connection);
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(answer.body().as_bytes());
    }
}

/// Writes an answer (or a part of one); false when the connection failed or the client did not
/// take it within `limit` (a client that sends requests and never reads its answers).
pub async fn send<W: tokio::io::AsyncWrite + Unpin>(
    stream: &mut W,
    out: &[u8],
    limit: std::time::Duration,
) -> bool {
    use tokio::io::AsyncWriteExt;
    let write = async { stream.write_all(out).await.is_ok() && stream.flush().await.is_ok() };
    pingora_timeout::timeout(limit, write)
        .await
        .unwrap_or(false)
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
        assert!(!fast(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n").keep_alive);
        assert!(!fast(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: te, close\r\n\r\n").keep_alive);
        assert!(!fast(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(fast(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        // `close` wins over a later `keep-alive`, and is seen in any field.
        assert!(
            !fast(b"GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n")
                .keep_alive
        );
        let delegated = b"GET * HTTP/1.1\r\nHost: x\r\nConnection: te\r\nConnection: close\r\n\r\n";
        assert!(matches!(
            parse_head(delegated),
            HeadParse::Delegate {
                keep_alive: false,
                ..
            }
        ));
        assert!(fast(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n").keep_alive);
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
        let post = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET";
        let head = fast(post);
        assert_eq!(head.body, BodyFraming::Length(3));
        assert_eq!(head.head_len + 3, post.len() - 3);
        assert_eq!(head.method.to_http(post), Some(http::Method::POST));
        let get_body = b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab";
        let head = fast(get_body);
        assert_eq!(
            (head.method, head.body),
            (FastMethod::Get, BodyFraming::Length(2))
        );
        let odd = b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(fast(odd).method.to_http(odd).unwrap().as_str(), "BREW");
    }

    fn refused(raw: &[u8]) -> u16 {
        match parse_head(raw) {
            HeadParse::Refuse(refusal) => refusal.status,
            other => panic!(
                "{} was not refused: {other:?}",
                String::from_utf8_lossy(raw)
            ),
        }
    }

    #[test]
    fn anything_unusual_goes_to_the_framework_with_its_framing() {
        assert_eq!(
            fast(b"GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").body,
            BodyFraming::Chunked
        );
        assert_eq!(
            parse_head(b"POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HeadParse::Delegate {
                head_len: 79,
                body: BodyFraming::Chunked,
                keep_alive: true,
            }
        );
        for raw in [
            &b"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"[..],
            b"GET /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET http://x?a HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            assert_eq!(
                parse_head(raw),
                HeadParse::Delegate {
                    head_len: raw.len(),
                    body: BodyFraming::Length(0),
                    keep_alive: true,
                },
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn a_fragment_is_cut_off() {
        let raw = b"GET /vod/a?x=<?k=v#frag HTTP/1.1\r\nHost: x\r\n\r\n";
        let head = fast(raw);
        assert_eq!(&raw[head.target.clone()], b"/vod/a?x=<?k=v");
        assert_eq!(head.size.uri_bytes, 19);
    }

    #[test]
    fn absolute_form_targets_are_routed_by_their_path() {
        let raw = b"GET http://Router.example:8080/vod/a.mp4?t=1 HTTP/1.1\r\nHost: other\r\n\r\n";
        let head = fast(raw);
        assert_eq!(&raw[head.target.clone()], b"/vod/a.mp4?t=1");
        assert_eq!(head.size.uri_bytes, 40);
        let head = fast(b"GET HTTPS://h/ HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(head.target.len(), 1);
    }

    #[test]
    fn content_length_is_digits_and_one_value() {
        for value in [
            "+5",
            "-1",
            "5 5",
            "0x10",
            "",
            " ",
            "5,",
            "5, 6",
            "1e3",
            "99999999999999999999",
        ] {
            let raw = format!("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\n");
            assert_eq!(refused(raw.as_bytes()), 400, "Content-Length: {value}");
        }
        // A first 0 must not hide a second, different length.
        assert_eq!(
            refused(
                b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n"
            ),
            400
        );
        let same =
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\ncontent-length: 005\r\n\r\n";
        assert_eq!(fast(same).body, BodyFraming::Length(5));
        assert_eq!(
            fast(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3 , 3\r\n\r\n").body,
            BodyFraming::Length(3)
        );
    }

    #[test]
    fn transfer_encoding_must_end_in_chunked_alone() {
        let te = |value: &str| {
            format!("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {value}\r\n\r\n")
        };
        for value in ["CHUNKED", " chunked ", "chunked\t"] {
            assert_eq!(
                fast(te(value).as_bytes()).body,
                BodyFraming::Chunked,
                "{value}"
            );
        }
        for value in [
            "gzip",
            "chunked, gzip",
            "xchunked",
            "chunked;a=b",
            "",
            ",",
            "chunked, chunked",
            "identity",
            ", chunked",
            "chunked,",
        ] {
            assert_eq!(
                refused(te(value).as_bytes()),
                400,
                "Transfer-Encoding: {value}"
            );
        }
        assert_eq!(refused(te("gzip, chunked").as_bytes()), 501);
        // Two fields are one list.
        assert_eq!(
            refused(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"),
            400
        );
        // CL.TE and TE.CL.
        assert_eq!(refused(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
        assert_eq!(refused(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"), 400);
        assert_eq!(
            refused(b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
    }

    #[test]
    fn host_is_required_once_in_http11() {
        assert_eq!(refused(b"GET /a HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(
            refused(b"GET /a HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
            400
        );
        assert_eq!(
            refused(b"GET /a HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"),
            400
        );
        assert_eq!(refused(b"GET /a HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
        assert_eq!(refused(b"GET /a HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400);
        fast(b"GET /a HTTP/1.0\r\n\r\n");
        fast(b"GET /a HTTP/1.1\r\nHost:\r\n\r\n");
        fast(b"GET /a HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
    }

    #[test]
    fn heads_that_lines_could_be_read_differently_are_refused() {
        for raw in [
            &b"GET /a HTTP/1.1\nHost: x\n\n"[..],
            b"GET /a HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\x0bchunked\r\n\r\n",
            b"GET\x01 / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
            b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ] {
            assert_eq!(refused(raw), 400, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn chunked_bodies_are_framed_strictly() {
        let complete = |raw: &[u8]| chunked_body_len(raw) == ChunkedBody::Complete(raw.len());
        assert!(complete(b"0\r\n\r\n"));
        assert!(complete(b"5\r\nhello\r\n0\r\n\r\n"));
        assert!(complete(
            b"A;name=value;q=\"a \\\" b\"\r\n0123456789\r\n000\r\nTrailer: x\r\n\r\n"
        ));
        assert!(complete(b"5 ; ext\r\nhello\r\n0\r\n\r\n"));
        // What follows the body is not part of it.
        assert_eq!(
            chunked_body_len(b"1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n"),
            ChunkedBody::Complete(11)
        );
        for partial in [
            &b""[..],
            b"5",
            b"5\r\nhel",
            b"5\r\nhello\r",
            b"0\r\n",
            b"0\r\nT: x\r\n",
        ] {
            assert_eq!(
                chunked_body_len(partial),
                ChunkedBody::Partial,
                "{partial:?}"
            );
        }
        for invalid in [
            &b"zz\r\n"[..],
            b"-1\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"ffffffffffffffffff\r\n",
            b"5;\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"b\r\nhello\r\n0\r\n\r\n",
            b"0\r\nbad trailer\r\n\r\n",
            b"0\r\nT: a\rb\r\n\r\n",
            b"3\r\nabc\r\n0\r\n\n",
        ] {
            assert_eq!(
                chunked_body_len(invalid),
                ChunkedBody::Invalid,
                "{}",
                String::from_utf8_lossy(invalid)
            );
        }
        let long = vec![b'1'; MAX_CHUNK_LINE + 10];
        assert_eq!(chunked_body_len(&long), ChunkedBody::Invalid);
    }

    #[test]
    fn too_many_headers_is_reported() {
        let mut raw = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..300 {
            raw.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        assert_eq!(parse_head(&raw), HeadParse::TooManyHeaders);
    }

    #[test]
    fn answers_are_well_formed() {
        let mut out = Vec::new();
        let redirect = Answer::Redirect("http://edge.example/a".into());
        write_answer(&mut out, &redirect, false, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 302 Found\r\nLocation: http://edge.example/a\r\nContent-Length: 0\r\nCache-Control: max-age=0, private, must-revalidate\r\nDate: "));
        assert!(text.ends_with("\r\nConnection: keep-alive\r\n\r\n"));

        let mut out = Vec::new();
        let answer = Answer::of(crate::routing::Outcome::MethodNotAllowed);
        write_answer(&mut out, &answer, false, false);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\nContent-Length: 18\r\nAllow: GET, HEAD\r\nDate: "));
        assert!(text.ends_with("\r\nConnection: close\r\n\r\nMethod not allowed"));
        let mut head_only = Vec::new();
        write_answer(&mut head_only, &answer, true, false);
        assert_eq!(head_only, out[..out.len() - answer.body().len()]);
    }
}
