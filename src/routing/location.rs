//! Redirect URL construction: `scheme://host[:port]` from routing data, a normalised path
//! (runs of `/` collapsed, a leading `/` added) and, optionally, the request's query string.

pub use crate::vocab::path::{is_path_like, normalize_path_into};

/// `base` + `path` (normalised unless `path_is_normalized`) + `?query`, in one allocation.
#[inline]
pub fn build_location(
    base: &str,
    path: &str,
    path_is_normalized: bool,
    query: Option<&str>,
) -> String {
    let query_len = query.map_or(0, |q| q.len() + 1);
    let mut out = String::with_capacity(base.len() + path.len() + 1 + query_len);
    out.push_str(base);
    if path_is_normalized {
        out.push_str(path);
    } else {
        normalize_path_into(&mut out, path);
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(path: &str) -> String {
        let mut s = String::new();
        normalize_path_into(&mut s, path);
        s
    }

    #[test]
    fn normalisation_vectors() {
        assert_eq!(normalized("///some/normal/url"), "/some/normal/url");
        assert_eq!(normalized("some/normal/url"), "/some/normal/url");
        assert_eq!(normalized("/vod//a//b"), "/vod/a/b");
        assert_eq!(normalized("/dvr//rec123"), "/dvr/rec123");
        assert_eq!(normalized("/static"), "/static");
        assert_eq!(normalized("/vod/"), "/vod/");
        assert_eq!(normalized("a//"), "/a/");
        assert_eq!(normalized(""), "/");
        assert_eq!(normalized("/"), "/");
    }

    #[test]
    fn location_vectors() {
        assert_eq!(
            build_location("https://host.com", "///some/path", false, None),
            "https://host.com/some/path"
        );
        assert_eq!(
            build_location("http://host.com", "some/path", false, None),
            "http://host.com/some/path"
        );
        assert_eq!(
            build_location("http://edge:96", "/a", true, Some("t=1&x=%20")),
            "http://edge:96/a?t=1&x=%20"
        );
        assert_eq!(
            build_location("http://e", "/a", true, Some("")),
            "http://e/a?"
        );
    }

    #[test]
    fn data_paths() {
        assert!(is_path_like("stream0hls"));
        assert!(is_path_like("/live/ch1/index.m3u8"));
        for bad in [
            "",
            "/a b",
            "/a?b",
            "/a#b",
            "http://evil/x",
            "/a\r\n",
            "/a\\b",
            "/\u{e9}",
        ] {
            assert!(!is_path_like(bad), "{bad:?}");
        }
    }
}
