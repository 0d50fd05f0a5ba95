//! DASH MPD rewriting (ISO/IEC 23009-1): the MPD-level `BaseURL` (inserted when missing),
//! `Location`, `PatchLocation` and non-relative segment URLs.

use super::{BaseUrl, Rebaser, RewriteError};

/// Whether the document's root element is `MPD` (any namespace prefix), after an optional
/// XML declaration, comments, processing instructions and white space.
pub(crate) fn root_is_mpd(body: &[u8]) -> bool {
    let mut rest = body;
    loop {
        rest = rest.trim_ascii_start();
        if let Some(after) = rest.strip_prefix(b"<?") {
            match find(after, b"?>") {
                Some(end) => rest = &after[end + 2..],
                None => return false,
            }
        } else if let Some(after) = rest.strip_prefix(b"<!--") {
            match find(after, b"-->") {
                Some(end) => rest = &after[end + 3..],
                None => return false,
            }
        } else if let Some(after) = rest.strip_prefix(b"<") {
            let name_len = after
                .iter()
                .position(|&b| b.is_ascii_whitespace() || b == b'>' || b == b'/')
                .unwrap_or(after.len());
            let name = &after[..name_len];
            let local = name
                .iter()
                .rposition(|&b| b == b':')
                .map_or(name, |colon| &name[colon + 1..]);
            return local == b"MPD" && name_len < after.len();
        } else {
            return false;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Rewrites an MPD: see the module documentation.
pub(crate) fn rewrite(
    _body: &str,
    _base: &BaseUrl,
    _rebaser: &mut Rebaser<'_, '_>,
) -> Result<String, RewriteError> {
    Err(RewriteError::NotMpd(
        "DASH rewriting is not implemented yet",
    ))
}
