//! Manifest rewriting for proxy and manifest modes: finds every URL reference in an HLS
//! playlist or a DASH MPD, resolves it against the URL the manifest came from, and lets the
//! caller replace it. Pure: no I/O, no Pingora; every byte that is not a reference is copied.
//!
//! Notes for callers:
//! - The callback is called only for references that resolve to an `http`/`https` URL with an
//!   authority. `skd://`, `data:`, `urn:` and other schemes, empty references, references with
//!   spaces or control characters and HLS references holding an `EXT-X-DEFINE` variable
//!   (`{$name}`) are never passed to it and are kept exactly as written.
//! - [`ResolvedRef::path`] has its dot segments removed, but percent-encoded dots (`%2E%2E`) are
//!   left as they are (RFC 3986 resolution does not decode): a caller that maps paths onto a
//!   directory must reject them itself.
//! - The callback writes its replacement as a raw URL; for DASH the rewriter XML-escapes it, for
//!   HLS it is written as is (a `"` or a line break in it would break the playlist).
//! - Which references reach the callback, per format: see [`hls`] and [`dash`].

pub mod dash;
pub mod hls;
#[cfg(test)]
mod properties;
pub mod url;

pub use url::BaseUrl;

/// The two manifest formats the router rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    /// An HLS playlist (RFC 8216), multivariant or media.
    Hls,
    /// A DASH Media Presentation Description (ISO/IEC 23009-1).
    Dash,
}

/// The manifest format a content type names (case-insensitive, parameters ignored):
/// `application/vnd.apple.mpegurl`, `application/x-mpegurl`, `audio/mpegurl`,
/// `audio/x-mpegurl` → HLS; `application/dash+xml` → DASH.
pub fn format_from_content_type(content_type: &str) -> Option<ManifestFormat> {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    const HLS: [&str; 4] = [
        "application/vnd.apple.mpegurl",
        "application/x-mpegurl",
        "audio/mpegurl",
        "audio/x-mpegurl",
    ];
    if HLS.iter().any(|name| essence.eq_ignore_ascii_case(name)) {
        Some(ManifestFormat::Hls)
    } else if essence.eq_ignore_ascii_case("application/dash+xml") {
        Some(ManifestFormat::Dash)
    } else {
        None
    }
}

/// The manifest format of a response: by content type first, else by the body's start
/// (`#EXTM3U` after an optional BOM; an XML document whose root element is `MPD`, possibly
/// after an XML declaration, comments or a prefix). `None`: not a manifest (pass through).
pub fn sniff(content_type: Option<&str>, body: &[u8]) -> Option<ManifestFormat> {
    if let Some(format) = content_type.and_then(format_from_content_type) {
        return Some(format);
    }
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.starts_with(b"#EXTM3U") {
        Some(ManifestFormat::Hls)
    } else if dash::root_is_mpd(body) {
        Some(ManifestFormat::Dash)
    } else {
        None
    }
}

/// One reference found in a manifest, resolved against the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedRef<'a> {
    /// As written in the manifest (for DASH: with XML entities decoded; for an inserted MPD-level
    /// `BaseURL`: the empty string).
    pub original: &'a str,
    /// Same scheme and authority (case-insensitive host, default ports) as the base.
    pub same_origin: bool,
    /// `scheme://authority` of the resolved URL (scheme lowercased).
    pub origin: &'a str,
    /// Resolved absolute path (dot segments removed), at least `/`.
    pub path: &'a str,
    /// The query, without `?`.
    pub query: Option<&'a str>,
    /// The fragment as written, without `#` (not part of `absolute`; append it if you want it).
    pub fragment: Option<&'a str>,
    /// The whole resolved absolute URL (`scheme://authority/path?query`), no fragment.
    pub absolute: &'a str,
    /// A DASH `BaseURL` (a directory that other references resolve against) rather than a resource.
    pub is_dir: bool,
}

/// Why a body could not be rewritten as the format it was said to be. The caller passes the
/// body through unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// An HLS playlist must start with `#EXTM3U` (after an optional BOM).
    #[error("not an HLS playlist: it does not start with #EXTM3U")]
    NotHls,
    /// The body is not a well-formed XML document with an `MPD` root element.
    #[error("not a DASH MPD: {0}")]
    NotMpd(&'static str),
}

/// The callback that replaces references: it appends a replacement URL to the `String` and
/// returns true, or returns false to keep the reference exactly as written (anything it
/// appended is then removed).
pub type Rebase<'r> = dyn FnMut(&ResolvedRef<'_>, &mut String) -> bool + 'r;

/// A shortcut a caller may offer for the commonest reference of a live playlist, a *plain
/// relative* one next to it (`seg-123.ts?token=…`; defined by [`url::plain_relative_path`]):
/// the caller promises that the callback would replace every such reference, whose path
/// `unless` does not accept, with `prefix` followed by the reference exactly as written. The
/// rewriter then writes that without resolving the reference or calling back (HLS only: a
/// DASH replacement is XML-escaped, so DASH always calls back).
#[derive(Debug, Clone, Copy)]
pub struct PlainRelative<'a> {
    /// What the replacement of a plain relative reference starts with.
    pub prefix: &'a str,
    /// Plain references whose path this accepts go to the callback as usual.
    pub unless: fn(&str) -> bool,
}

/// Rewrites every reference in `body` through `rebase`; every other byte is copied unchanged.
/// Allocates the output and one scratch buffer, not one string per reference.
pub fn rewrite(
    format: ManifestFormat,
    body: &str,
    base: &BaseUrl,
    rebase: &mut Rebase<'_>,
) -> Result<String, RewriteError> {
    rewrite_with(format, body, base, rebase, None)
}

/// [`rewrite`], with the caller's [`PlainRelative`] shortcut when it has one.
pub fn rewrite_with(
    format: ManifestFormat,
    body: &str,
    base: &BaseUrl,
    rebase: &mut Rebase<'_>,
    plain: Option<PlainRelative<'_>>,
) -> Result<String, RewriteError> {
    let mut rebaser = Rebaser {
        manifest: base,
        scratch: String::with_capacity(256),
        rebase,
        plain,
    };
    match format {
        ManifestFormat::Hls => hls::rewrite(body, base, &mut rebaser),
        ManifestFormat::Dash => dash::rewrite(body, base, &mut rebaser),
    }
}

/// Resolves references and runs the caller's callback on them, reusing one buffer.
pub(crate) struct Rebaser<'c, 'r> {
    /// The manifest's own URL: `same_origin` is always relative to it, whatever base a
    /// reference resolves against (a DASH `BaseURL` may name another host).
    manifest: &'c BaseUrl,
    scratch: String,
    rebase: &'c mut Rebase<'r>,
    plain: Option<PlainRelative<'c>>,
}

impl<'c> Rebaser<'c, '_> {
    /// The caller's prefix for `reference` when it is a plain relative reference the
    /// caller's shortcut covers: the replacement is that prefix and the reference as written.
    pub(crate) fn plain_prefix(&self, reference: &str) -> Option<&'c str> {
        let plain = self.plain?;
        let path_len = url::plain_relative_path(reference)?;
        (!(plain.unless)(&reference[..path_len])).then_some(plain.prefix)
    }

    /// Appends the callback's replacement for `reference` (resolved against `base`) to `out`
    /// and returns true; returns false with `out` untouched when the reference is kept.
    pub(crate) fn replace(
        &mut self,
        base: &BaseUrl,
        reference: &str,
        is_dir: bool,
        out: &mut String,
    ) -> bool {
        if reference.is_empty() {
            return false;
        }
        self.scratch.clear();
        let Some((mut spans, fragment_start)) =
            url::resolve_into(base, reference, &mut self.scratch)
        else {
            return false;
        };
        if !std::ptr::eq(base, self.manifest) {
            spans.same_origin = self.manifest.same_origin(&self.scratch[..spans.end]);
        }
        self.call(reference, spans, fragment_start, is_dir, out)
    }

    /// Offers `base`'s own directory (an MPD-level `BaseURL` to insert) to the callback.
    pub(crate) fn replace_base_dir(&mut self, base: &BaseUrl, out: &mut String) -> bool {
        self.scratch.clear();
        self.scratch.push_str(base.dir_url());
        let spans = url::ResolvedSpans {
            same_origin: true,
            path_start: base.origin().len(),
            path_end: self.scratch.len(),
            has_query: false,
            end: self.scratch.len(),
        };
        self.call("", spans, None, true, out)
    }

    fn call(
        &mut self,
        reference: &str,
        spans: url::ResolvedSpans,
        fragment_start: Option<usize>,
        is_dir: bool,
        out: &mut String,
    ) -> bool {
        let absolute = &self.scratch[..spans.end];
        let resolved = ResolvedRef {
            original: reference,
            same_origin: spans.same_origin,
            origin: &absolute[..spans.path_start],
            path: &absolute[spans.path_start..spans.path_end],
            query: if spans.has_query {
                Some(&absolute[spans.path_end + 1..])
            } else {
                None
            },
            fragment: fragment_start.map(|start| &reference[start..]),
            absolute,
            is_dir,
        };
        let mark = out.len();
        if (self.rebase)(&resolved, out) {
            true
        } else {
            out.truncate(mark);
            false
        }
    }
}

/// What the format tests share: a callback that sends same-origin references to
/// `http://router/r<path>` (query kept) and keeps the rest.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// Rewrites `body` fetched from `base`; returns the output and what the callback saw, one
    /// `[dir ]"original" -> absolute` line per reference.
    pub(crate) fn rewrite_to_router(
        format: ManifestFormat,
        body: &str,
        base: &str,
    ) -> (String, Vec<String>) {
        let base = BaseUrl::parse(base).expect("base");
        let mut seen = Vec::new();
        let mut to_router = |r: &ResolvedRef<'_>, out: &mut String| {
            let dir = if r.is_dir { "dir " } else { "" };
            seen.push(format!("{dir}{:?} -> {}", r.original, r.absolute));
            if !r.same_origin {
                return false;
            }
            out.push_str("http://router/r");
            out.push_str(r.path);
            if let Some(query) = r.query {
                out.push('?');
                out.push_str(query);
            }
            true
        };
        let out = rewrite(format, body, &base, &mut to_router).expect("rewrites");
        (out, seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_by_content_type_then_body() {
        assert_eq!(
            sniff(Some("application/vnd.apple.mpegurl"), b""),
            Some(ManifestFormat::Hls)
        );
        assert_eq!(
            sniff(Some("Application/X-MpegURL; charset=utf-8"), b""),
            Some(ManifestFormat::Hls)
        );
        assert_eq!(sniff(Some("audio/mpegurl"), b""), Some(ManifestFormat::Hls));
        assert_eq!(
            sniff(Some("application/dash+xml ;profile=x"), b"#EXTM3U"),
            Some(ManifestFormat::Dash)
        );
        assert_eq!(sniff(Some("video/mp2t"), b"\x47\x40\x00"), None);
        assert_eq!(
            sniff(None, b"#EXTM3U\n#EXT-X-VERSION:3\n"),
            Some(ManifestFormat::Hls)
        );
        assert_eq!(
            sniff(Some("text/plain"), b"\xEF\xBB\xBF#EXTM3U\r\n"),
            Some(ManifestFormat::Hls)
        );
        assert_eq!(sniff(None, b"<?xml version=\"1.0\"?>\n<!-- made by x -->\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\">"), Some(ManifestFormat::Dash));
        assert_eq!(
            sniff(
                None,
                b"<mpd:MPD xmlns:mpd=\"urn:mpeg:dash:schema:mpd:2011\"/>"
            ),
            Some(ManifestFormat::Dash)
        );
        assert_eq!(sniff(None, b"<MPD>"), Some(ManifestFormat::Dash));
        assert_eq!(sniff(None, b"<?xml version=\"1.0\"?><html>"), None);
        assert_eq!(sniff(None, b"<MPDX>"), None);
        assert_eq!(sniff(None, b" #EXTM3U"), None);
        assert_eq!(sniff(None, b""), None);
    }
}
