//! RFC 3986 §5 reference resolution for manifest rewriting: a parsed base URL (where the
//! manifest came from) and resolution of one reference into a caller-owned buffer, so that
//! rewriting a playlist allocates nothing per reference.

/// An `http` or `https` URL that references in a manifest resolve against (RFC 3986 §5.1: the
/// URL the manifest was finally fetched from). The path is kept with dot segments removed, the
/// fragment is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// `scheme://authority/path?query`, scheme lowercased, path without dot segments.
    full: String,
    /// End of `scheme://authority` in `full`.
    origin_end: usize,
    /// End of the path in `full` (the query, if any, follows after a `?`).
    path_end: usize,
    /// End of the directory (path up to and including its last `/`) in `full`.
    dir_end: usize,
    origin: OriginKey,
}

/// What two URLs must share to be the same origin: scheme, userinfo, host (compared
/// case-insensitively) and port (a missing port is the scheme's default).
#[derive(Debug, Clone, PartialEq, Eq)]
struct OriginKey {
    https: bool,
    userinfo: Option<String>,
    host_lower: String,
    port: Port,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Port {
    Number(u16),
    /// Not a valid number: compared as written.
    Other(String),
}

impl BaseUrl {
    /// Parses an absolute `http`/`https` URL with an authority. `None` for anything else
    /// (relative references, other schemes, an empty host, spaces or control characters).
    pub fn parse(url: &str) -> Option<BaseUrl> {
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return None;
        }
        let parts = split_reference(url);
        let scheme = parts.scheme?;
        let https = scheme_is_https(scheme)?;
        let authority = parts.authority?;
        let origin = OriginKey::parse(https, authority)?;
        if origin.host_lower.is_empty() {
            return None;
        }
        let mut full = String::with_capacity(url.len() + 1);
        full.push_str(if https { "https://" } else { "http://" });
        full.push_str(authority);
        let origin_end = full.len();
        full.push('/');
        push_without_dot_segments(
            &mut full,
            parts.path.strip_prefix('/').unwrap_or(parts.path),
        );
        let path_end = full.len();
        let dir_end = full.rfind('/').map_or(path_end, |slash| slash + 1);
        if let Some(query) = parts.query {
            full.push('?');
            full.push_str(query);
        }
        Some(BaseUrl {
            full,
            origin_end,
            path_end,
            dir_end,
            origin,
        })
    }

    /// `scheme://authority`, the scheme lowercased, the authority as written.
    pub fn origin(&self) -> &str {
        &self.full[..self.origin_end]
    }

    /// The path up to and including its last `/` (at least `/`).
    pub fn dir(&self) -> &str {
        &self.full[self.origin_end..self.dir_end]
    }

    /// The whole path, dot segments removed.
    pub fn path(&self) -> &str {
        &self.full[self.origin_end..self.path_end]
    }

    /// The query without its `?`.
    pub fn query(&self) -> Option<&str> {
        self.full.get(self.path_end + 1..)
    }

    /// The whole URL: `scheme://authority/path?query`.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The base's directory as a URL: `scheme://authority/dir/`.
    pub fn dir_url(&self) -> &str {
        &self.full[..self.dir_end]
    }

    /// Whether `url` (absolute) has the same origin as this base.
    pub fn same_origin(&self, url: &str) -> bool {
        let parts = split_reference(url);
        match (parts.scheme.and_then(scheme_is_https), parts.authority) {
            (Some(https), Some(authority)) => self.origin.matches(https, authority),
            _ => false,
        }
    }
}

impl OriginKey {
    fn parse(https: bool, authority: &str) -> Option<OriginKey> {
        let (userinfo, host_port) = match authority.rfind('@') {
            Some(at) => (Some(authority[..at].to_owned()), &authority[at + 1..]),
            None => (None, authority),
        };
        let (host, port) = if host_port.starts_with('[') {
            let close = host_port.find(']')?;
            let rest = &host_port[close + 1..];
            let port = match rest.strip_prefix(':') {
                Some(port) => Some(port),
                None if rest.is_empty() => None,
                None => return None,
            };
            (&host_port[..=close], port)
        } else {
            match host_port.rfind(':') {
                Some(colon) => (&host_port[..colon], Some(&host_port[colon + 1..])),
                None => (host_port, None),
            }
        };
        let default_port = if https { 443 } else { 80 };
        let port = match port {
            None | Some("") => Port::Number(default_port),
            Some(digits) => match digits.parse::<u16>() {
                Ok(number) if digits.bytes().all(|b| b.is_ascii_digit()) => Port::Number(number),
                _ => Port::Other(digits.to_owned()),
            },
        };
        Some(OriginKey {
            https,
            userinfo,
            host_lower: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Same origin as `self`, without allocating.
    fn matches(&self, https: bool, authority: &str) -> bool {
        if https != self.https {
            return false;
        }
        let (userinfo, host_port) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        if userinfo != self.userinfo.as_deref() {
            return false;
        }
        let port_start = if host_port.starts_with('[') {
            match host_port.find(']') {
                Some(close) => close + 1,
                None => return false,
            }
        } else {
            host_port.rfind(':').unwrap_or(host_port.len())
        };
        let (host, port) = host_port.split_at(port_start);
        if !host.eq_ignore_ascii_case(&self.host_lower) {
            return false;
        }
        let port = match port.strip_prefix(':') {
            Some(port) => port,
            None if port.is_empty() => "",
            None => return false,
        };
        match &self.port {
            Port::Number(number) => {
                if port.is_empty() {
                    *number == if https { 443 } else { 80 }
                } else {
                    port.bytes().all(|b| b.is_ascii_digit())
                        && port.parse::<u16>().ok() == Some(*number)
                }
            }
            Port::Other(other) => port == other,
        }
    }
}

/// `Some(true)` for `https`, `Some(false)` for `http` (any case), `None` for other schemes.
fn scheme_is_https(scheme: &str) -> Option<bool> {
    if scheme.eq_ignore_ascii_case("https") {
        Some(true)
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(false)
    } else {
        None
    }
}

/// The five components of a URI reference (RFC 3986 §3, Appendix B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReferenceParts<'a> {
    pub scheme: Option<&'a str>,
    pub authority: Option<&'a str>,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub fragment: Option<&'a str>,
}

/// Splits a reference into its components; never fails (Appendix B's regular expression).
pub(crate) fn split_reference(reference: &str) -> ReferenceParts<'_> {
    let mut rest = reference;
    let fragment = match rest.find('#') {
        Some(hash) => {
            let fragment = &rest[hash + 1..];
            rest = &rest[..hash];
            Some(fragment)
        }
        None => None,
    };
    let query = match rest.find('?') {
        Some(question) => {
            let query = &rest[question + 1..];
            rest = &rest[..question];
            Some(query)
        }
        None => None,
    };
    let scheme = scheme_len(rest).map(|len| {
        let scheme = &rest[..len];
        rest = &rest[len + 1..];
        scheme
    });
    let authority = rest.strip_prefix("//").map(|after| {
        let end = after.find('/').unwrap_or(after.len());
        rest = &after[end..];
        &after[..end]
    });
    ReferenceParts {
        scheme,
        authority,
        path: rest,
        query,
        fragment,
    }
}

/// A reference split in one pass, with what resolution needs to know about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScannedReference<'a> {
    pub parts: ReferenceParts<'a>,
    /// Whether the path may hold a `.` or `..` segment (a `.` at the start of a segment).
    pub dot_segments: bool,
}

/// Bytes the scanner stops at: controls and space (refused), `#`, `?`, `:`, `/`, `.`, `{`.
const SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte <= 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[0x7f] = true;
    table[b'#' as usize] = true;
    table[b'?' as usize] = true;
    table[b':' as usize] = true;
    table[b'/' as usize] = true;
    table[b'.' as usize] = true;
    table[b'{' as usize] = true;
    table
};

/// Splits `reference` like [`split_reference`] in a single pass over its bytes; `None` for a
/// reference with a space or a control character before its fragment, or an `EXT-X-DEFINE`
/// variable (`{$name}`), which cannot be resolved before substitution.
pub(crate) fn scan_reference(reference: &str) -> Option<ScannedReference<'_>> {
    let bytes = reference.as_bytes();
    let mut query_at = None;
    let mut fragment_at = None;
    let mut first_colon = None;
    let mut first_slash = None;
    let mut dot_segments = false;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if !SPECIAL[usize::from(byte)] {
            at += 1;
            continue;
        }
        match byte {
            b'#' => {
                fragment_at = Some(at);
                break;
            }
            b'?' => {
                query_at = query_at.or(Some(at));
            }
            b':' => first_colon = first_colon.or(Some(at)),
            b'/' => first_slash = first_slash.or(Some(at)),
            b'.' => {
                // Conservative: a '.' that starts a segment (or follows a scheme's ':').
                let segment_start = at == 0 || matches!(bytes[at - 1], b'/' | b':');
                dot_segments |= query_at.is_none() && segment_start;
            }
            b'{' => {
                if bytes.get(at + 1) == Some(&b'$') {
                    return None;
                }
            }
            _ => return None,
        }
        at += 1;
    }
    let path_end = query_at.or(fragment_at).unwrap_or(bytes.len());
    let scheme_end = first_colon.filter(|&colon| {
        colon < path_end
            && first_slash.is_none_or(|slash| colon < slash)
            && scheme_len(&reference[..=colon]) == Some(colon)
    });
    let mut path_start = scheme_end.map_or(0, |colon| colon + 1);
    let authority = if reference[path_start..path_end].starts_with("//") {
        let authority_start = path_start + 2;
        let authority_end = reference[authority_start..path_end]
            .find('/')
            .map_or(path_end, |slash| authority_start + slash);
        path_start = authority_end;
        Some(&reference[authority_start..authority_end])
    } else {
        None
    };
    let query =
        query_at.map(|question| &reference[question + 1..fragment_at.unwrap_or(bytes.len())]);
    Some(ScannedReference {
        parts: ReferenceParts {
            scheme: scheme_end.map(|colon| &reference[..colon]),
            authority,
            path: &reference[path_start..path_end],
            query,
            fragment: fragment_at.map(|hash| &reference[hash + 1..]),
        },
        dot_segments,
    })
}

/// Bytes inside a segment of a plain path: unreserved characters, sub-delimiters and `@`; no
/// `%` (no escapes to judge) and no `:` (nothing that could be a scheme).
const PLAIN_SEGMENT: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = (byte as u8).is_ascii_alphanumeric();
        byte += 1;
    }
    let mut others = b"-._~!$&'()*+,;=@".as_slice();
    while let [first, rest @ ..] = others {
        table[*first as usize] = true;
        others = rest;
    }
    table
};

/// The length of the path of `reference` when it is a *plain relative* reference, one that
/// resolves to the base's directory followed by the reference exactly as written:
/// - a relative path of one or more non-empty segments of [`PLAIN_SEGMENT`] bytes, separated
///   by `/`, none starting with `.` (no dot segments to remove, no escapes, no scheme, no
///   authority, no leading or trailing `/`);
/// - then an optional query without spaces, control characters or `{$` (which
///   [`scan_reference`] refuses);
/// - then an optional fragment (anything).
///
/// This runs once per segment of a proxied live playlist: the segments are scanned with a
/// table, the query eight bytes at a time.
pub(crate) fn plain_relative_path(reference: &str) -> Option<usize> {
    let bytes = reference.as_bytes();
    let mut at = 0;
    loop {
        // The start of a segment: not `.`, not empty.
        match bytes.get(at) {
            Some(&byte) if byte != b'.' && PLAIN_SEGMENT[usize::from(byte)] => at += 1,
            _ => return None,
        }
        while at < bytes.len() && PLAIN_SEGMENT[usize::from(bytes[at])] {
            at += 1;
        }
        if bytes.get(at) != Some(&b'/') {
            break;
        }
        at += 1;
    }
    let path_len = at;
    if bytes.get(at) == Some(&b'?') {
        at = query_end(bytes, at + 1)?;
    }
    match bytes.get(at) {
        None | Some(b'#') => Some(path_len),
        Some(_) => None,
    }
}

/// Where a query starting at `from` ends (its `#` or the end), or `None` when it holds a
/// space, a control character or `{$`.
fn query_end(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let mut at = from;
    // Skip words with no byte below 0x21 and no `#`, `{` or DEL (a hit may be a false
    // positive; the byte loop below decides).
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let below_space = word.wrapping_sub(ONES * 0x21) & !word & HIGHS;
        let special = zero_byte(word ^ (ONES * u64::from(b'#')))
            | zero_byte(word ^ (ONES * u64::from(b'{')))
            | zero_byte(word ^ (ONES * 0x7f));
        if below_space | special != 0 {
            break;
        }
        at += 8;
    }
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'#' => break,
            0..=b' ' | 0x7f => return None,
            b'{' if bytes.get(at + 1) == Some(&b'$') => return None,
            _ => at += 1,
        }
    }
    Some(at)
}

/// Length of a leading `scheme` (ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )) followed by `:`.
fn scheme_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if !bytes.first()?.is_ascii_alphabetic() {
        return None;
    }
    for (index, &byte) in bytes.iter().enumerate().skip(1) {
        match byte {
            b':' => return Some(index),
            b'+' | b'-' | b'.' => {}
            _ if byte.is_ascii_alphanumeric() => {}
            _ => return None,
        }
    }
    None
}

/// Appends `segments` (path segments without a leading `/`) to `out`, which ends with `/`,
/// removing `.` and `..` segments as RFC 3986 §5.2.4 does (merge and remove in one pass).
/// `root` is the index in `out` of the path's leading `/`: `..` never removes it.
fn push_segments(out: &mut String, root: usize, segments: &str) {
    let mut rest = segments;
    loop {
        let (segment, last) = match rest.find('/') {
            Some(slash) => (&rest[..slash], false),
            None => (rest, true),
        };
        match segment {
            "." => {}
            ".." => {
                // `out` ends with '/': drop the segment before it, but never the root '/'.
                let without_slash = out.len() - 1;
                let cut = out[root..without_slash]
                    .rfind('/')
                    .map_or(root + 1, |slash| root + slash + 1);
                out.truncate(cut.max(root + 1));
            }
            _ => {
                out.push_str(segment);
                if !last {
                    out.push('/');
                }
            }
        }
        if last {
            return;
        }
        rest = &rest[segment.len() + 1..];
    }
}

/// Appends the segments of a path given without its leading `/` to `out` (which ends with
/// the path's leading `/`), dot segments removed.
fn push_without_dot_segments(out: &mut String, segments: &str) {
    let root = out.len() - 1;
    push_segments(out, root, segments);
}

/// Where the parts of a resolved reference are in the buffer it was written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResolvedSpans {
    pub same_origin: bool,
    /// `buf[start..path_start]` is `scheme://authority`.
    pub path_start: usize,
    pub path_end: usize,
    /// The query (without `?`) runs from `path_end + 1` to `end` when present.
    pub has_query: bool,
    pub end: usize,
}

/// Resolves `reference` against `base` (RFC 3986 §5.2.2, strict: a scheme in the reference
/// always wins) and appends `scheme://authority/path?query` to `buf`. `None` (nothing appended)
/// when the result is not an `http`/`https` URL with an authority (`skd:`, `data:`, `urn:` …),
/// or when the reference holds spaces or control characters.
pub(crate) fn resolve_into(
    base: &BaseUrl,
    reference: &str,
    buf: &mut String,
) -> Option<(ResolvedSpans, Option<usize>)> {
    let scanned = scan_reference(reference)?;
    let parts = scanned.parts;
    let start = buf.len();
    let same_origin;
    let path_start;
    let mut query = parts.query;
    let push_path = |buf: &mut String, path: &str| {
        if scanned.dot_segments {
            buf.push('/');
            push_without_dot_segments(buf, path.strip_prefix('/').unwrap_or(path));
        } else if path.is_empty() {
            buf.push('/');
        } else {
            buf.push_str(path);
        }
    };
    match (parts.scheme, parts.authority) {
        (Some(scheme), authority) => {
            let https = scheme_is_https(scheme)?;
            let authority = authority.filter(|a| !a.is_empty())?;
            same_origin = base.origin.matches(https, authority);
            buf.push_str(if https { "https://" } else { "http://" });
            buf.push_str(authority);
            path_start = buf.len();
            push_path(buf, parts.path);
        }
        (None, Some(authority)) => {
            if authority.is_empty() {
                return None;
            }
            same_origin = base.origin.matches(base.origin.https, authority);
            buf.push_str(if base.origin.https {
                "https://"
            } else {
                "http://"
            });
            buf.push_str(authority);
            path_start = buf.len();
            push_path(buf, parts.path);
        }
        (None, None) => {
            same_origin = true;
            if parts.path.is_empty() {
                buf.push_str(base.origin());
                path_start = buf.len();
                buf.push_str(base.path());
                if query.is_none() {
                    query = base.query();
                }
            } else if parts.path.starts_with('/') {
                buf.push_str(base.origin());
                path_start = buf.len();
                push_path(buf, parts.path);
            } else {
                // The common case (a segment next to its playlist): directory URL + path.
                buf.push_str(base.dir_url());
                path_start = start + base.origin_end;
                if scanned.dot_segments {
                    push_segments(buf, path_start, parts.path);
                } else {
                    buf.push_str(parts.path);
                }
            }
        }
    }
    let path_end = buf.len();
    if let Some(query) = query {
        buf.push('?');
        buf.push_str(query);
    }
    let fragment_start = parts
        .fragment
        .map(|fragment| reference.len() - fragment.len());
    Some((
        ResolvedSpans {
            same_origin,
            path_start: path_start - start,
            path_end: path_end - start,
            has_query: query.is_some(),
            end: buf.len() - start,
        },
        fragment_start,
    ))
}

/// Resolves `reference` against `base` into a new string (`scheme://authority/path?query`);
/// `None` as for the rewriter (other schemes, no authority, control characters).
pub fn resolve(base: &BaseUrl, reference: &str) -> Option<String> {
    let mut buf = String::new();
    resolve_into(base, reference, &mut buf)?;
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(url: &str) -> BaseUrl {
        BaseUrl::parse(url).expect("valid base")
    }

    /// RFC 3986 §5.4.1 and §5.4.2, minus the results that are not http URLs.
    #[test]
    fn rfc3986_normal_and_abnormal_examples() {
        let b = base("http://a/b/c/d;p?q");
        let cases = [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g/"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q"),
            ("g#s", "http://a/b/c/g"),
            ("g?y#s", "http://a/b/c/g?y"),
            (";x", "http://a/b/c/;x"),
            ("g;x", "http://a/b/c/g;x"),
            ("g;x?y#s", "http://a/b/c/g;x?y"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../", "http://a/"),
            ("../../g", "http://a/g"),
            ("../../../g", "http://a/g"),
            ("../../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            (".g", "http://a/b/c/.g"),
            ("g..", "http://a/b/c/g.."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("./g/.", "http://a/b/c/g/"),
            ("g/./h", "http://a/b/c/g/h"),
            ("g/../h", "http://a/b/c/h"),
            ("g;x=1/./y", "http://a/b/c/g;x=1/y"),
            ("g;x=1/../y", "http://a/b/c/y"),
            ("g?y/./x", "http://a/b/c/g?y/./x"),
            ("g?y/../x", "http://a/b/c/g?y/../x"),
            ("g#s/./x", "http://a/b/c/g"),
            ("g#s/../x", "http://a/b/c/g"),
        ];
        for (reference, expected) in cases {
            assert_eq!(
                resolve(&b, reference).as_deref(),
                Some(expected),
                "reference {reference:?}"
            );
        }
        assert_eq!(resolve(&b, "g:h"), None, "another scheme is never resolved");
        assert_eq!(
            resolve(&b, "http:g"),
            None,
            "strict parser: a scheme without authority is not an http URL"
        );
    }

    #[test]
    fn same_origin_compares_scheme_host_case_and_default_ports() {
        let b = base("http://Edge.Example:80/btv/live/ch1/index.m3u8");
        let same = [
            "seg.ts",
            "/x",
            "//edge.example/x",
            "http://EDGE.example/x",
            "HTTP://edge.example:80/x",
            "http://edge.example:/x",
        ];
        for reference in same {
            let mut buf = String::new();
            let (spans, _) = resolve_into(&b, reference, &mut buf).expect("resolves");
            assert!(spans.same_origin, "{reference}");
        }
        let other = [
            "https://edge.example/x",
            "http://edge.example:8080/x",
            "//keys.example/k",
            "http://user@edge.example/x",
        ];
        for reference in other {
            let mut buf = String::new();
            let (spans, _) = resolve_into(&b, reference, &mut buf).expect("resolves");
            assert!(!spans.same_origin, "{reference}");
        }
        assert!(base("https://[::1]:8443/a").same_origin("https://[::1]:8443/b"));
        assert!(!base("https://[::1]:8443/a").same_origin("https://[::1]/b"));
        assert!(base("https://h/a").same_origin("https://h:443/b"));
    }

    #[test]
    fn base_parts() {
        let b = base("HTTP://edge:8080/btv/./live/../live/hls/ch1.m3u8?token=a#frag");
        assert_eq!(b.origin(), "http://edge:8080");
        assert_eq!(b.dir(), "/btv/live/hls/");
        assert_eq!(b.path(), "/btv/live/hls/ch1.m3u8");
        assert_eq!(b.query(), Some("token=a"));
        assert_eq!(b.dir_url(), "http://edge:8080/btv/live/hls/");
        assert_eq!(base("http://edge").path(), "/");
        assert_eq!(base("http://edge").dir(), "/");
        assert_eq!(base("http://edge/a?").query(), Some(""));
        assert_eq!(base("http://edge/a").query(), None);
        for bad in [
            "/relative",
            "edge/x",
            "ftp://edge/x",
            "http:///x",
            "http://edge/a b",
            "skd://key",
            "http://[::1/x",
        ] {
            assert_eq!(BaseUrl::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn query_and_fragment_are_kept_apart() {
        let b = base("http://edge/dir/index.m3u8");
        let mut buf = String::from("prefix");
        let (spans, fragment) =
            resolve_into(&b, "../seg.ts?_HLS_msn=3&_HLS_part=1#t=2", &mut buf).expect("resolves");
        let url = &buf[6..];
        assert_eq!(url, "http://edge/seg.ts?_HLS_msn=3&_HLS_part=1");
        assert_eq!(&url[spans.path_start..spans.path_end], "/seg.ts");
        assert!(spans.has_query);
        assert_eq!(fragment, Some("../seg.ts?_HLS_msn=3&_HLS_part=1#".len()));
    }

    #[test]
    fn plain_relative_references_are_the_simple_ones() {
        for (reference, path_len) in [
            ("seg-1.ts", Some(8)),
            ("v1/seg-1.ts?token=a%2Fb&x={y}#t=1", Some(11)),
            ("a/b/", None),
            ("a/b", Some(3)),
            ("seg.ts#frag with spaces", Some(6)),
            ("x?", Some(1)),
            ("./seg.ts", None),
            ("../seg.ts", None),
            ("v1/.hidden", None),
            ("/abs/seg.ts", None),
            ("a//b", None),
            ("a%2e", None),
            ("c:seg.ts", None),
            ("//host/x", None),
            ("?only=query", None),
            ("", None),
            ("seg.ts?a b", None),
            ("seg.ts?x={$v}", None),
            ("seg\\x.ts", None),
            ("s\u{e9}g.ts", None),
        ] {
            assert_eq!(plain_relative_path(reference), path_len, "{reference:?}");
        }
    }

    proptest::proptest! {
        /// What the shortcut relies on: a plain relative reference resolves to the base's
        /// directory URL followed by the reference as written (its fragment apart).
        #[test]
        fn a_plain_relative_reference_resolves_to_the_directory_and_itself(
            reference in "[a-z0-9./%?#:{$@ =_-]{1,16}",
            base_url in proptest::sample::select(vec![
                "http://edge/live/ch1/index.m3u8",
                "https://Edge:443/a/b/c.m3u8?t=1",
                "http://edge",
            ]),
        ) {
            let Some(path_len) = plain_relative_path(&reference) else {
                return Ok(());
            };
            let b = base(base_url);
            let without_fragment = reference.split('#').next().unwrap_or("");
            proptest::prop_assert_eq!(
                resolve(&b, &reference),
                Some(format!("{}{without_fragment}", b.dir_url()))
            );
            let mut buf = String::new();
            let (spans, _) = resolve_into(&b, &reference, &mut buf).expect("resolves");
            proptest::prop_assert_eq!(
                &buf[spans.path_start..spans.path_end],
                format!("{}{}", b.dir(), &reference[..path_len])
            );
        }
    }
}
