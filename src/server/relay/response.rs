//! The edge's response head: parsed, its body framing found (RFC 9112 §6.3), and written
//! again for the client without the hop-by-hop fields.

use std::io::Write;

/// Most header fields an edge's response head may have.
const MAX_FIELDS: usize = 100;

/// How the edge frames the body of its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (a `HEAD` request, 204, 304).
    Empty,
    Length(u64),
    /// `Transfer-Encoding` ending in `chunked`: passed through as it is.
    Chunked,
    /// Until the edge closes the connection.
    UntilClose,
}

/// A final response head from the edge, and the client's version of it.
#[derive(Debug)]
pub struct EdgeHead {
    pub status: u16,
    /// Bytes of the edge's head (what follows is body).
    pub len: usize,
    pub framing: Framing,
    /// The edge keeps the connection open after this response.
    pub reusable: bool,
}

/// What reading the start of the buffer as a response head found.
#[derive(Debug)]
pub enum HeadRead {
    /// Not all of it yet.
    Partial,
    /// An interim (1xx) response of `len` bytes, to skip.
    Interim {
        len: usize,
    },
    Final(EdgeHead),
    /// Not a usable HTTP/1 response head.
    Invalid(&'static str),
}

/// Fields that describe one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether a field is hop-by-hop, by the fixed list or by the message's `Connection` tokens.
pub fn is_hop_by_hop(name: &str, connection_tokens: &[&[u8]]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || connection_tokens
            .iter()
            .any(|token| token.eq_ignore_ascii_case(name.as_bytes()))
}

/// The comma-separated tokens of every `Connection` field among `fields`.
pub fn connection_tokens<'a>(fields: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<&'a [u8]> {
    let mut tokens = Vec::new();
    for (name, value) in fields {
        if name.eq_ignore_ascii_case("connection") {
            tokens.extend(
                value
                    .split(|&b| b == b',')
                    .map(|t| t.trim_ascii())
                    .filter(|t| !t.is_empty()),
            );
        }
    }
    tokens
}

/// Reads the response head at the start of `buf` for a request that was `HEAD` or not, and
/// when it is final, appends the client's head to `out`: the status line, the edge's
/// end-to-end fields, its `Transfer-Encoding` when the chunked body passes through, and
/// `Connection: close` when the client's connection ends after it.
pub fn read_head(
    buf: &[u8],
    head_request: bool,
    client_keep_alive: bool,
    out: &mut Vec<u8>,
) -> HeadRead {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut response = httparse::Response::new(&mut fields);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return HeadRead::Partial,
        Err(_) => return HeadRead::Invalid("not an HTTP/1 response head"),
    };
    let status = response.code.unwrap_or(0);
    if (100..200).contains(&status) {
        if status == 101 {
            return HeadRead::Invalid("101 Switching Protocols to a request without Upgrade");
        }
        return HeadRead::Interim { len };
    }
    let http10 = response.version == Some(0);
    let tokens = connection_tokens(response.headers.iter().map(|f| (f.name, f.value)));
    let mut length: Option<u64> = None;
    let mut codings_end_chunked = None;
    for field in response.headers.iter() {
        if field.name.eq_ignore_ascii_case("content-length") {
            let Some(n) = parse_length(field.value) else {
                return HeadRead::Invalid("bad Content-Length");
            };
            if length.is_some_and(|seen| seen != n) {
                return HeadRead::Invalid("conflicting Content-Length");
            }
            length = Some(n);
        } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = field.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
            codings_end_chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    let framing = if head_request || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match (codings_end_chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::UntilClose,
        }
    };
    let edge_closes = http10 && !tokens.iter().any(|t| t.eq_ignore_ascii_case(b"keep-alive"))
        || tokens.iter().any(|t| t.eq_ignore_ascii_case(b"close"));
    let reusable = !edge_closes && framing != Framing::UntilClose;

    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\n",
        response.reason.unwrap_or("")
    );
    for field in response.headers.iter() {
        let name = field.name;
        let keep = if name.eq_ignore_ascii_case("transfer-encoding") {
            // The chunked body goes through unchanged, with its coding named; any other
            // coding's body is delimited by the close (and says so).
            !head_request && codings_end_chunked.is_some()
        } else if name.eq_ignore_ascii_case("content-length") {
            codings_end_chunked.is_none()
        } else {
            !is_hop_by_hop(name, &tokens)
        };
        if keep {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(field.value);
            out.extend_from_slice(b"\r\n");
        }
    }
    if !client_keep_alive || framing == Framing::UntilClose {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    HeadRead::Final(EdgeHead {
        status,
        len,
        framing,
        reusable,
    })
}

/// A `Content-Length` value: digits only, no sign, no list.
fn parse_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_head(raw: &[u8], head_request: bool, keep_alive: bool) -> (EdgeHead, String) {
        let mut out = Vec::new();
        match read_head(raw, head_request, keep_alive, &mut out) {
            HeadRead::Final(head) => (head, String::from_utf8(out).expect("ascii")),
            other => panic!("not final: {other:?}"),
        }
    }

    #[test]
    fn framing_follows_rfc_9112_section_6_3() {
        let cases: [(&[u8], bool, Framing, bool); 8] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                false,
                Framing::Length(5),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                false,
                Framing::Chunked,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                false,
                Framing::UntilClose,
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\n\r\n",
                false,
                Framing::UntilClose,
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                true,
                Framing::Empty,
                true,
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
                false,
                Framing::Empty,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
                false,
                Framing::Length(5),
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n",
                false,
                Framing::Length(5),
                false,
            ),
        ];
        for (raw, head_request, framing, reusable) in cases {
            let (head, _) = client_head(raw, head_request, true);
            assert_eq!(head.framing, framing, "{}", String::from_utf8_lossy(raw));
            assert_eq!(head.reusable, reusable, "{}", String::from_utf8_lossy(raw));
            assert_eq!(head.len, raw.len());
        }
    }

    #[test]
    fn the_client_gets_end_to_end_fields_only() {
        let raw = b"HTTP/1.1 206 Partial Content\r\nContent-Type: video/mp2t\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\nContent-Range: bytes 0-4/10\r\nContent-Length: 5\r\n\r\n";
        let (head, out) = client_head(raw, false, true);
        assert_eq!(head.status, 206);
        assert_eq!(
            out,
            "HTTP/1.1 206 Partial Content\r\nContent-Type: video/mp2t\r\nContent-Range: bytes 0-4/10\r\nContent-Length: 5\r\n\r\n"
        );
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n";
        let (_, out) = client_head(raw, false, false);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        let (_, out) = client_head(b"HTTP/1.1 200 OK\r\n\r\n", false, true);
        assert_eq!(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    }

    #[test]
    fn interim_partial_and_invalid_heads() {
        let mut out = Vec::new();
        assert!(matches!(
            read_head(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200",
                false,
                true,
                &mut out
            ),
            HeadRead::Interim { len: 25 }
        ));
        assert!(matches!(
            read_head(b"HTTP/1.1 200 OK\r\nContent-", false, true, &mut out),
            HeadRead::Partial
        ));
        for bad in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        ] {
            assert!(matches!(
                read_head(bad, false, true, &mut out),
                HeadRead::Invalid(_)
            ));
        }
        assert!(
            out.is_empty(),
            "nothing is written for a head that is not final"
        );
    }
}
