//! The request-path grammar: `/btv/{live|catchup}/{hls|mpd}[_{wv|pr|cenc}]/{id}[.m3u8|.mpd]`,
//! `/vod/{rest}` and `/static[/{rest}]`, anchored and case-sensitive. Anything else is invalid.
//! Live and catch-up also take sub-requests (what proxied manifests refer to):
//! `/btv/{live|catchup}/{codec}/{id}/~e{edge_id}/{rest}` or `.../{id}/~/{rest}`, `rest` being
//! a safe relative path inside the content's directory on the edge.

pub use crate::vocab::path::is_epg_id;
pub use crate::vocab::RouteKind;
use crate::vocab::{Encryption, Id, Protocol};

/// The marker segment that starts a sub-request's edge hint: `~e{edge_id}` or `~` (none).
pub const SUB_REQUEST_MARK: &str = "~";

/// A live or catch-up request: which content, in which protocol and encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRequest<'a> {
    pub protocol: Protocol,
    pub encryption: Encryption,
    pub epg_id: &'a str,
    /// A sub-request: a file inside the content's directory on the edge.
    pub sub: Option<SubPath<'a>>,
}

/// The part of a sub-request after the content id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubPath<'a> {
    /// The edge the session was on (`~e{id}`): kept while it is still a right choice.
    pub edge_hint: Option<Id>,
    /// Relative to the content's directory on the edge; non-empty, safe (no `.`/`..`
    /// segments, no leading `/`).
    pub rest: &'a str,
}

/// A request path that fits the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    Live(ContentRequest<'a>),
    Catchup(ContentRequest<'a>),
    /// `/vod/...`: the request path itself goes into the redirect.
    Vod,
    /// `/static` or `/static/...`: likewise.
    Static,
}

impl Route<'_> {
    pub fn kind(&self) -> RouteKind {
        match self {
            Route::Live(_) => RouteKind::Live,
            Route::Catchup(_) => RouteKind::Catchup,
            Route::Vod => RouteKind::Vod,
            Route::Static => RouteKind::Static,
        }
    }
}

fn parse_codec(codec: &str) -> Option<(Protocol, Encryption)> {
    let (protocol, suffix) = match codec.split_once('_') {
        Some((p, s)) => (p, Some(s)),
        None => (codec, None),
    };
    let protocol = match protocol {
        "hls" => Protocol::Hls,
        "mpd" => Protocol::Mpd,
        _ => return None,
    };
    let encryption = match suffix {
        None => Encryption::None,
        Some("wv") => Encryption::Widevine,
        Some("pr") => Encryption::PlayReady,
        Some("cenc") => Encryption::Cenc,
        Some(_) => return None,
    };
    Some((protocol, encryption))
}

fn parse_content(rest: &str) -> Option<ContentRequest<'_>> {
    let (codec, resource) = rest.split_once('/')?;
    let (protocol, encryption) = parse_codec(codec)?;
    if let Some((epg_id, sub)) = resource.split_once('/') {
        let sub = parse_sub_path(sub)?;
        return is_epg_id(epg_id).then_some(ContentRequest {
            protocol,
            encryption,
            epg_id,
            sub: Some(sub),
        });
    }
    let epg_id = resource
        .strip_suffix(".m3u8")
        .or_else(|| resource.strip_suffix(".mpd"))
        .unwrap_or(resource);
    is_epg_id(epg_id).then_some(ContentRequest {
        protocol,
        encryption,
        epg_id,
        sub: None,
    })
}

/// `~e{edge_id}/{rest}` or `~/{rest}`: the edge id is decimal digits of a positive id, `rest`
/// a non-empty safe path (what [`is_safe_path`] accepts, not starting with `/`).
fn parse_sub_path(sub: &str) -> Option<SubPath<'_>> {
    let (mark, rest) = sub.split_once('/')?;
    let hint = mark.strip_prefix(SUB_REQUEST_MARK)?;
    let edge_hint = match hint {
        "" => None,
        digits => {
            let digits = digits.strip_prefix('e')?;
            if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            Some(digits.parse::<Id>().ok()?)
        }
    };
    let safe = !rest.is_empty() && is_safe_sub_path(rest);
    safe.then_some(SubPath { edge_hint, rest })
}

/// A path relative to a content's directory that stays inside it: what [`is_safe_path`]
/// accepts, not starting with `/`, no encoded `/` or `\` (`%2f`, `%5c`: an edge that decodes
/// them would see other segments), and no segment that an edge could decode into `.` or `..`
/// (`%2e`, `.%2E`, ...). May be empty (the directory itself).
pub fn is_safe_sub_path(rest: &str) -> bool {
    !rest.starts_with('/')
        && is_safe_path(rest)
        && (!rest.contains('%') || escapes_stay_inside(rest))
}

/// For a safe path with `%` escapes: no encoded `/` or `\`, no segment of (encoded) dots only.
fn escapes_stay_inside(rest: &str) -> bool {
    let encoded_separator = rest.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && (w[1] == b'2' && w[2].eq_ignore_ascii_case(&b'f')
                || w[1] == b'5' && w[2].eq_ignore_ascii_case(&b'c'))
    });
    !encoded_separator && !rest.split('/').any(is_dot_segment_encoded)
}

/// `.` or `..` written with some dots as `%2e` / `%2E`.
fn is_dot_segment_encoded(segment: &str) -> bool {
    let mut dots = 0;
    let mut rest = segment;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            rest = after;
        } else if let Some(after) = rest
            .get(..3)
            .filter(|escape| escape.eq_ignore_ascii_case("%2e"))
            .and_then(|_| rest.get(3..))
        {
            rest = after;
        } else {
            return false;
        }
        dots += 1;
    }
    dots == 1 || dots == 2
}

/// Whether a path (without query) names a manifest by its extension: `.m3u8` or `.mpd`, in any
/// case. The router fetches those itself, to rewrite them.
pub fn names_manifest(path: &str) -> bool {
    // The last segment ends with the extension and has a name before it.
    let ends = |ext: &str| {
        let name_end = path.len().wrapping_sub(ext.len() + 1);
        path.len() > ext.len()
            && path.as_bytes()[name_end] != b'/'
            && path.as_bytes()[name_end + 1..].eq_ignore_ascii_case(ext.as_bytes())
    };
    ends(".m3u8") || ends(".mpd")
}

/// Writes the sub-request path of `epg_id` (the route's `/btv/{live|catchup}/{codec}` part in
/// `route_prefix`) for `rest` with an optional edge hint; the inverse of [`parse_route`].
pub fn write_sub_request(
    out: &mut String,
    route_prefix: &str,
    epg_id: &str,
    edge_hint: Option<Id>,
    rest: &str,
) {
    out.push_str(route_prefix);
    out.push('/');
    out.push_str(epg_id);
    out.push('/');
    out.push_str(SUB_REQUEST_MARK);
    if let Some(id) = edge_hint {
        out.push('e');
        out.push_str(&id.to_string());
    }
    out.push('/');
    out.push_str(rest);
}

/// RFC 3986 path characters (unreserved, sub-delims, `:`, `@`, `/`) and `%XX` escapes; no
/// `.` or `..` segments. What passes can be copied into a Location as is. One pass over the
/// bytes (it runs for every reference of a rewritten manifest).
pub fn is_safe_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    let mut i = 0;
    let mut segment_start = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |j: usize| bytes.get(j).is_some_and(|b| b.is_ascii_hexdigit());
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                i += 3;
                continue;
            }
            b'/' => {
                if is_dot_segment(&bytes[segment_start..i]) {
                    return false;
                }
                segment_start = i + 1;
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => {}
            b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+'
            | b',' | b';' | b'=' | b':' | b'@' => {}
            _ => return false,
        }
        i += 1;
    }
    !is_dot_segment(&bytes[segment_start..])
}

fn is_dot_segment(segment: &[u8]) -> bool {
    matches!(segment, b"." | b"..")
}

/// Visible ASCII only: what a query string may carry into a Location header.
pub fn is_safe_query(query: &str) -> bool {
    query
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b'#')
}

/// Matches a raw (undecoded) request path against the grammar.
pub fn parse_route(path: &str) -> Option<Route<'_>> {
    if let Some(rest) = path.strip_prefix("/btv/live/") {
        return parse_content(rest).map(Route::Live);
    }
    if let Some(rest) = path.strip_prefix("/btv/catchup/") {
        return parse_content(rest).map(Route::Catchup);
    }
    let route = if path.starts_with("/vod/") {
        Route::Vod
    } else if path == "/static" || path.starts_with("/static/") {
        Route::Static
    } else {
        return None;
    };
    is_safe_path(path).then_some(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(p: Protocol, e: Encryption, id: &str) -> Option<Route<'_>> {
        Some(Route::Live(ContentRequest {
            protocol: p,
            encryption: e,
            epg_id: id,
            sub: None,
        }))
    }

    #[test]
    fn accepted_forms() {
        use Encryption::*;
        use Protocol::*;
        assert_eq!(
            parse_route("/btv/live/hls/resource_1234"),
            live(Hls, None, "resource_1234")
        );
        assert_eq!(
            parse_route("/btv/live/hls/resource_1234.m3u8"),
            live(Hls, None, "resource_1234")
        );
        assert_eq!(parse_route("/btv/live/hls/r.mpd"), live(Hls, None, "r"));
        assert_eq!(parse_route("/btv/live/mpd_cenc/r"), live(Mpd, Cenc, "r"));
        assert_eq!(
            parse_route("/btv/live/mpd_wv/000000025"),
            live(Mpd, Widevine, "000000025")
        );
        assert_eq!(
            parse_route("/btv/live/hls_pr/abcXmpd"),
            live(Hls, PlayReady, "abcXmpd")
        );
        assert_eq!(
            parse_route("/btv/catchup/mpd_wv/297190605151500"),
            Some(Route::Catchup(ContentRequest {
                protocol: Mpd,
                encryption: Widevine,
                epg_id: "297190605151500",
                sub: Option::None,
            }))
        );
        assert_eq!(parse_route("/vod/a//b/c.mp4"), Some(Route::Vod));
        assert_eq!(parse_route("/vod/"), Some(Route::Vod));
        assert_eq!(parse_route("/vod/a%20b"), Some(Route::Vod));
        assert_eq!(parse_route("/static"), Some(Route::Static));
        assert_eq!(parse_route("/static/img/x.png"), Some(Route::Static));
    }

    #[test]
    fn rejected_forms() {
        for path in [
            "/btv/life/hls/r",
            "/btv/live/hlss/r",
            "/btv/live/hls_xx/r",
            "/btv/live/hls_/r",
            "/btv/live/hls/asd123!",
            "/btv/live/HLS/a",
            "/btv/live/hls/a.M3U8",
            "/btv/live/hls/a/",
            "/btv/live/hls/",
            "/btv/live/hls/a/b",
            "/btv/live/hls/a/~",
            "/btv/live/hls/a/~/",
            "/btv/live/hls/a/~x/b.ts",
            "/btv/live/hls/a/~e/b.ts",
            "/btv/live/hls/a/~e1x/b.ts",
            "/btv/live/hls/a/~e-1/b.ts",
            "/btv/live/hls/a/~e1//b.ts",
            "/btv/live/hls/a/~e1/../b.ts",
            "/btv/live/hls/a/~/x/../../b.ts",
            "/btv/live/hls/a/~/./b.ts",
            "/btv/live/hls/a/~/b%zz",
            "/btv/live/hls/a/~/b c",
            "/btv/live/hls/a/~/%2e%2E/b.ts",
            "/btv/live/hls/a/~/x/.%2e/b.ts",
            "/btv/live/hls/a/~/%2E/b.ts",
            "/btv/live/hls/a.m3u8/~/b.ts",
            "/btv/live/hls/a!/~/b.ts",
            "/btv/live/hls/a.mpd.m3u8",
            "/btv/live/hls/a!m3u8",
            "/btv/live/hls/a/mpd",
            "/btv/xlive/hls/a",
            "/btv/live/catchup/hls/x",
            "/btv/live",
            "//btv//live/hls/x",
            "/btv//live/hls/x",
            "/btv/live/hls/ab%20c",
            "/BTV/live/hls/a",
            "/vod",
            "//vod/x",
            "/vod/a%zz",
            "/vod/a%2",
            "/vod/../etc/passwd",
            "/vod/a/./b",
            "/vod/a b",
            "/vod/a\r\nb",
            "/vod/\u{e9}",
            "/static.x",
            "/staticx",
            "/static/a\"b",
            "/non/existing/path",
            "/",
            "",
            "/btv/catchup/mpd/",
            "/btv/live/hls/.m3u8",
        ] {
            assert_eq!(parse_route(path), None, "{path:?} must be rejected");
        }
    }

    #[test]
    fn sub_requests_name_content_hint_and_rest() {
        let sub = |path| match parse_route(path) {
            Some(Route::Live(c) | Route::Catchup(c)) => {
                c.sub.map(|s| (c.epg_id, s.edge_hint, s.rest))
            }
            _ => None,
        };
        assert_eq!(
            sub("/btv/live/hls/ch1/~/seg0.ts"),
            Some(("ch1", None, "seg0.ts"))
        );
        assert_eq!(
            sub("/btv/live/hls_wv/ch1/~e42/v1/a%20b/seg.m4s"),
            Some(("ch1", Some(42), "v1/a%20b/seg.m4s"))
        );
        assert_eq!(
            sub("/btv/catchup/mpd/p1/~e7/manifest.mpd"),
            Some(("p1", Some(7), "manifest.mpd"))
        );
        let mut out = String::new();
        write_sub_request(&mut out, "/btv/live/hls", "ch1", Some(42), "v1/index.m3u8");
        assert_eq!(out, "/btv/live/hls/ch1/~e42/v1/index.m3u8");
        assert_eq!(sub(&out), Some(("ch1", Some(42), "v1/index.m3u8")));
        let mut out = String::new();
        write_sub_request(&mut out, "/btv/catchup/mpd", "p1", None, "a.mpd");
        assert_eq!(sub(&out), Some(("p1", None, "a.mpd")));
    }

    /// The grammar's definition: the character set, and no `.` or `..` segment.
    fn is_safe_path_by_definition(path: &str) -> bool {
        let chars_ok = {
            let b = path.as_bytes();
            let mut i = 0;
            let mut ok = true;
            while i < b.len() {
                if b[i] == b'%' {
                    let hex = |j: usize| b.get(j).is_some_and(|c| c.is_ascii_hexdigit());
                    if !(hex(i + 1) && hex(i + 2)) {
                        ok = false;
                        break;
                    }
                    i += 3;
                    continue;
                }
                if !(b[i].is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b[i])) {
                    ok = false;
                    break;
                }
                i += 1;
            }
            ok
        };
        chars_ok && !path.split('/').any(|s| s == "." || s == "..")
    }

    #[test]
    fn the_one_pass_path_check_matches_its_definition() {
        let pieces = [
            "a", "/", ".", "..", "%2e", "%zz", "%4", "b c", "~", "\u{e9}", "//", "x.ts",
        ];
        let mut rng = fastrand::Rng::with_seed(14);
        for _ in 0..20_000 {
            let path: String = (0..rng.usize(0..7))
                .map(|_| pieces[rng.usize(..pieces.len())])
                .collect();
            assert_eq!(
                is_safe_path(&path),
                is_safe_path_by_definition(&path),
                "{path:?}"
            );
        }
    }

    #[test]
    fn manifests_by_extension() {
        assert!(names_manifest("/live/a/index.m3u8"));
        assert!(names_manifest("v1/INDEX.M3U8"));
        assert!(names_manifest("manifest.mpd"));
        assert!(!names_manifest("/live/a/seg.ts"));
        assert!(!names_manifest("/live/a.m3u8/seg.ts"));
        assert!(!names_manifest(".mpd"));
        assert!(!names_manifest("/a/.m3u8"));
        assert!(names_manifest("/a/x.m3u8"));
        assert!(names_manifest("/a/\u{e9}.MPD"));
        // Multi-byte characters just before the length of an extension (a byte-offset cut
        // of the name would split one).
        assert!(!names_manifest("a\u{e9}bcd"));
        assert!(!names_manifest("\u{e9}"));
        assert!(!names_manifest(""));
        assert!(is_safe_sub_path(""));
        assert!(is_safe_sub_path("a/%2e%2ex/b"));
        assert!(!is_safe_sub_path("a/%2e%2e/b"));
        assert!(!is_safe_sub_path("..%2f..%2fetc"));
        assert!(!is_safe_sub_path("a%5C..%5Cb"));
    }

    #[test]
    fn query_must_be_visible_ascii() {
        assert!(is_safe_query("token=abc&exp=1"));
        assert!(is_safe_query(""));
        assert!(!is_safe_query("a=b c"));
        assert!(!is_safe_query("a=\x7f"));
        assert!(!is_safe_query("a=\u{e9}"));
    }
}
