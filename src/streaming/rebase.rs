//! The rebase policy of proxy and manifest modes: for each reference the manifest rewriter
//! finds, the URL the player is to use instead (or none: left as written).
//!
//! - References to other hosts (key servers, other CDNs) are always left as written.
//! - Manifest mode ([`Rebase::EdgeUrls`]): same-origin references become absolute URLs on the
//!   edge the manifest came from; segments then go straight to that edge. For live and
//!   catch-up, references to other playlists (`.m3u8`, `.mpd`) inside the content's directory
//!   become sub-requests instead, so that every playlist refresh comes back to the router and
//!   is a fresh decision (a dead edge is left at the next refresh).
//! - Proxy mode, live and catch-up ([`Rebase::SubRequests`]): same-origin references inside the
//!   content's directory on the edge become router sub-requests
//!   `/btv/{live|catchup}/{codec}/{id}/~e{edge_id}/{rest}` (absolute-path form); ones outside it
//!   (which no sub-request can name) become absolute URLs on the edge.
//! - Proxy mode, VOD and static ([`Rebase::SamePaths`]): the router's path is the edge's path,
//!   so same-origin references under `/vod/` (or `/static`) become that path; others absolute
//!   on the edge.

use crate::manifest::ResolvedRef;
use crate::routing::request_path::{
    is_safe_path, is_safe_sub_path, names_manifest, SUB_REQUEST_MARK,
};
use crate::vocab::Id;

/// What sub-requests of one content are made of.
#[derive(Debug, Clone, Copy)]
pub struct SubRequestBase<'a> {
    /// `/btv/{live|catchup}/{codec}/{id}`.
    pub content_prefix: &'a str,
    /// The edge the manifest came from: the hint sub-requests carry.
    pub edge_id: Id,
    /// The content's directory on the edge (`/live/ch1/`), ends with `/`.
    pub dir: &'a str,
}

impl SubRequestBase<'_> {
    /// Writes the sub-request of `r` when it lies inside the directory.
    fn write(&self, r: &ResolvedRef<'_>, out: &mut String) -> bool {
        let inside = r
            .path
            .strip_prefix(self.dir)
            .filter(|rest| (r.is_dir || !rest.is_empty()) && is_safe_sub_path(rest));
        let Some(rest) = inside else {
            return false;
        };
        let (prefix, id) = self
            .content_prefix
            .rsplit_once('/')
            .unwrap_or((self.content_prefix, ""));
        push_sub_request(out, prefix, id, self.edge_id, rest);
        push_query_and_fragment(out, r);
        true
    }
}

/// Writes what `request_path::write_sub_request` writes with an edge hint, without its
/// per-call `String` for the edge id: this runs once per reference of a proxied playlist
/// (2,000 times for a long live playlist). A test holds the two to the same bytes.
fn push_sub_request(out: &mut String, route_prefix: &str, epg_id: &str, edge_id: Id, rest: &str) {
    out.push_str(route_prefix);
    out.push('/');
    out.push_str(epg_id);
    out.push('/');
    out.push_str(SUB_REQUEST_MARK);
    out.push('e');
    push_decimal(out, edge_id);
    out.push('/');
    out.push_str(rest);
}

/// Appends `number` in decimal, as `Display` writes it.
fn push_decimal(out: &mut String, number: Id) {
    if number < 0 {
        out.push('-');
    }
    let mut magnitude = number.unsigned_abs();
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    for &digit in &digits[start..] {
        out.push(char::from(digit));
    }
}

/// Where a proxied manifest's same-origin references are to point.
#[derive(Debug, Clone, Copy)]
pub enum Rebase<'a> {
    /// Absolute URLs on the edge (manifest mode); with `playlists`, references to playlists
    /// inside the content's directory are sub-requests.
    EdgeUrls {
        playlists: Option<SubRequestBase<'a>>,
    },
    /// Router sub-requests for what lies inside the content's directory on the edge (proxy
    /// mode, live and catch-up).
    SubRequests(SubRequestBase<'a>),
    /// The same path on the router (proxy mode, VOD and static): paths under `namespace`.
    SamePaths {
        /// `/vod/` or `/static`.
        namespace: &'a str,
    },
}

impl Rebase<'_> {
    /// Appends the replacement of `r` to `out` and returns true, or returns false to leave `r`
    /// as written (the rewriter's callback contract).
    pub fn apply(&self, r: &ResolvedRef<'_>, out: &mut String) -> bool {
        if !r.same_origin {
            return false;
        }
        match *self {
            Rebase::EdgeUrls { playlists } => {
                if let Some(sub) = playlists.filter(|_| !r.is_dir && names_manifest(r.path)) {
                    if sub.write(r, out) {
                        return true;
                    }
                }
            }
            Rebase::SubRequests(sub) => {
                if sub.write(r, out) {
                    return true;
                }
            }
            Rebase::SamePaths { namespace } => {
                if r.path.starts_with(namespace) && is_safe_path(r.path) {
                    out.push_str(r.path);
                    push_query_and_fragment(out, r);
                    return true;
                }
            }
        }
        out.push_str(r.absolute);
        if let Some(fragment) = r.fragment {
            out.push('#');
            out.push_str(fragment);
        }
        true
    }
}

fn push_query_and_fragment(out: &mut String, r: &ResolvedRef<'_>) {
    if let Some(query) = r.query {
        out.push('?');
        out.push_str(query);
    }
    if let Some(fragment) = r.fragment {
        out.push('#');
        out.push_str(fragment);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference<'a>(
        origin: &'a str,
        path: &'a str,
        query: Option<&'a str>,
        absolute: &'a str,
    ) -> ResolvedRef<'a> {
        ResolvedRef {
            original: "",
            same_origin: origin == "http://edge:8080",
            origin,
            path,
            query,
            fragment: None,
            absolute,
            is_dir: path.ends_with('/'),
        }
    }

    const SUB: SubRequestBase<'static> = SubRequestBase {
        content_prefix: "/btv/live/hls/ch1",
        edge_id: 7,
        dir: "/live/ch1/",
    };

    #[test]
    fn sub_requests_are_written_as_write_sub_request_writes_them() {
        use crate::routing::request_path::write_sub_request;
        for edge_id in [0, 1, 7, 9, 10, 42, 999, 1_000_000, -5, Id::MAX, Id::MIN] {
            for (prefix, id, rest) in [
                ("/btv/live/hls", "ch1", "v1/seg1.ts"),
                ("/btv/catchup/dash", "1234", ""),
            ] {
                let mut expected = String::from("x");
                write_sub_request(&mut expected, prefix, id, Some(edge_id), rest);
                let mut written = String::from("x");
                push_sub_request(&mut written, prefix, id, edge_id, rest);
                assert_eq!(written, expected, "edge {edge_id}");
            }
        }
    }

    fn apply(rebase: Rebase<'_>, r: &ResolvedRef<'_>) -> Option<String> {
        let mut out = String::new();
        rebase.apply(r, &mut out).then_some(out)
    }

    #[test]
    fn each_mode_points_each_reference_where_its_documentation_says() {
        let inside = reference(
            "http://edge:8080",
            "/live/ch1/v1/seg1.ts",
            Some("t=1"),
            "http://edge:8080/live/ch1/v1/seg1.ts?t=1",
        );
        let playlist = reference(
            "http://edge:8080",
            "/live/ch1/v1/index.m3u8",
            None,
            "http://edge:8080/live/ch1/v1/index.m3u8",
        );
        let outside = reference(
            "http://edge:8080",
            "/ads/a.ts",
            None,
            "http://edge:8080/ads/a.ts",
        );
        let escape = reference(
            "http://edge:8080",
            "/live/ch1/%2e%2e/x.ts",
            None,
            "http://edge:8080/live/ch1/%2e%2e/x.ts",
        );
        let dir = reference(
            "http://edge:8080",
            "/live/ch1/",
            None,
            "http://edge:8080/live/ch1/",
        );
        let other = reference("https://keys.example", "/k", None, "https://keys.example/k");
        let vod = reference(
            "http://edge:8080",
            "/vod/m/seg1.ts",
            None,
            "http://edge:8080/vod/m/seg1.ts",
        );

        let proxy = Rebase::SubRequests(SUB);
        assert_eq!(
            apply(proxy, &inside).as_deref(),
            Some("/btv/live/hls/ch1/~e7/v1/seg1.ts?t=1")
        );
        assert_eq!(
            apply(proxy, &playlist).as_deref(),
            Some("/btv/live/hls/ch1/~e7/v1/index.m3u8")
        );
        assert_eq!(
            apply(proxy, &outside).as_deref(),
            Some("http://edge:8080/ads/a.ts")
        );
        assert_eq!(
            apply(proxy, &escape).as_deref(),
            Some("http://edge:8080/live/ch1/%2e%2e/x.ts")
        );
        assert_eq!(
            apply(proxy, &dir).as_deref(),
            Some("/btv/live/hls/ch1/~e7/")
        );
        assert_eq!(apply(proxy, &other), None);

        let manifest = Rebase::EdgeUrls {
            playlists: Some(SUB),
        };
        assert_eq!(
            apply(manifest, &inside).as_deref(),
            Some("http://edge:8080/live/ch1/v1/seg1.ts?t=1")
        );
        assert_eq!(
            apply(manifest, &playlist).as_deref(),
            Some("/btv/live/hls/ch1/~e7/v1/index.m3u8")
        );
        assert_eq!(
            apply(manifest, &dir).as_deref(),
            Some("http://edge:8080/live/ch1/")
        );
        assert_eq!(apply(manifest, &other), None);
        let plain = Rebase::EdgeUrls { playlists: None };
        assert_eq!(
            apply(plain, &playlist).as_deref(),
            Some("http://edge:8080/live/ch1/v1/index.m3u8")
        );

        let same = Rebase::SamePaths { namespace: "/vod/" };
        assert_eq!(apply(same, &vod).as_deref(), Some("/vod/m/seg1.ts"));
        assert_eq!(
            apply(same, &outside).as_deref(),
            Some("http://edge:8080/ads/a.ts")
        );
        assert_eq!(apply(same, &other), None);
    }
}
