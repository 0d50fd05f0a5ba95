//! Paths as routing data and requests carry them: normalising, the characters a Location may
//! hold, and the epg-id grammar.

/// Appends `path` to `out` with runs of `/` collapsed and a leading `/` guaranteed.
#[inline]
pub fn normalize_path_into(out: &mut String, path: &str) {
    let mut last_was_slash = false;
    if !path.starts_with('/') {
        out.push('/');
        last_was_slash = true;
    }
    for segment in path.split('/') {
        if !last_was_slash {
            out.push('/');
        }
        out.push_str(segment);
        last_was_slash = segment.is_empty();
    }
}

/// A path from routing data that can go into a Location: visible ASCII, no query or fragment,
/// not a URL of its own.
pub fn is_path_like(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && !matches!(b, b'?' | b'#' | b'\\'))
        && !s.contains("://")
}

/// `[A-Za-z0-9_]+`: an epg id as it may appear in a URL.
pub fn is_epg_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
