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

use crate::manifest::{self, BaseUrl, ManifestFormat, PlainRelative, ResolvedRef, RewriteError};
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

impl Rebase<'_> {
    /// Rewrites `body`, fetched from `base`, with this policy: what the router serves. The
    /// same bytes as [`manifest::rewrite`] with [`Rebase::apply`] as the callback, faster: plain
    /// relative references (the segments of a live playlist) take the rewriter's shortcut.
    pub fn rewrite(
        &self,
        format: ManifestFormat,
        body: &str,
        base: &BaseUrl,
    ) -> Result<String, RewriteError> {
        let prefix = self.plain_relative_prefix(base);
        let plain = prefix.as_deref().map(|prefix| PlainRelative {
            prefix,
            unless: self.plain_relative_exception(),
        });
        let mut callback = |r: &ResolvedRef<'_>, out: &mut String| self.apply(r, out);
        manifest::rewrite_with(format, body, base, &mut callback, plain)
    }

    /// What [`Rebase::apply`] writes for any plain relative reference of a manifest fetched
    /// from `base` (one that resolves to `base`'s directory and the reference as written),
    /// minus the reference itself: `None` where that is not one prefix for all of them.
    fn plain_relative_prefix(&self, base: &BaseUrl) -> Option<String> {
        match *self {
            // `absolute` is the directory URL and the reference; the fragment follows it.
            Rebase::EdgeUrls { .. } => Some(base.dir_url().to_owned()),
            // The path is the directory and the reference: inside the content's directory,
            // and a safe sub-path, when the directory's own rest is one (a plain relative
            // path adds no dot segment, escape or leading `/`).
            Rebase::SubRequests(sub) => {
                let rest = base
                    .dir()
                    .strip_prefix(sub.dir)
                    .filter(|rest| is_safe_sub_path(rest))?;
                let (prefix, id) = sub
                    .content_prefix
                    .rsplit_once('/')
                    .unwrap_or((sub.content_prefix, ""));
                let mut written = String::new();
                push_sub_request(&mut written, prefix, id, sub.edge_id, rest);
                Some(written)
            }
            Rebase::SamePaths { namespace } => {
                let dir = base.dir();
                (dir.starts_with(namespace) && is_safe_path(dir)).then(|| dir.to_owned())
            }
        }
    }

    /// Plain relative paths that [`Rebase::apply`] treats apart: manifests, when they are
    /// to be sub-requests in manifest mode.
    fn plain_relative_exception(&self) -> fn(&str) -> bool {
        match self {
            Rebase::EdgeUrls {
                playlists: Some(_), ..
            } => names_manifest,
            _ => |_| false,
        }
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

    /// Every policy the router uses, for the equivalence property below.
    fn policies() -> Vec<Rebase<'static>> {
        vec![
            Rebase::SubRequests(SUB),
            Rebase::EdgeUrls {
                playlists: Some(SUB),
            },
            Rebase::EdgeUrls { playlists: None },
            Rebase::SamePaths { namespace: "/vod/" },
            Rebase::SamePaths {
                namespace: "/static",
            },
        ]
    }

    #[test]
    fn the_shortcut_prefixes_are_what_apply_writes() {
        let base = BaseUrl::parse("http://edge:8080/live/ch1/v1/index.m3u8?t=1").expect("base");
        let prefixes: Vec<Option<String>> = policies()
            .iter()
            .map(|policy| policy.plain_relative_prefix(&base))
            .collect();
        assert_eq!(
            prefixes,
            [
                Some("/btv/live/hls/ch1/~e7/v1/".to_string()),
                Some("http://edge:8080/live/ch1/v1/".to_string()),
                Some("http://edge:8080/live/ch1/v1/".to_string()),
                None,
                None,
            ]
        );
        let outside = BaseUrl::parse("http://edge:8080/live/ch2/index.m3u8").expect("base");
        assert_eq!(
            Rebase::SubRequests(SUB).plain_relative_prefix(&outside),
            None
        );
        let vod = BaseUrl::parse("http://edge:8080/vod/m/index.m3u8").expect("base");
        assert_eq!(
            Rebase::SamePaths { namespace: "/vod/" }.plain_relative_prefix(&vod),
            Some("/vod/m/".to_string())
        );
    }

    proptest::proptest! {
        /// The shortcut changes no byte: for every policy, base and reference (as a URI line
        /// and as an `EXT-X-MAP` URI), `Rebase::rewrite` writes what the rewriter writes when
        /// it calls `apply` for every reference.
        #[test]
        fn rewriting_with_the_shortcut_writes_what_apply_writes(
            references in proptest::collection::vec(
                proptest::prop_oneof![
                    "[a-z0-9_-]{1,6}(/[a-z0-9._-]{1,6}){0,2}(\\?[a-z0-9=&%{$ ]{0,6})?(#[a-z ]{0,3})?",
                    "[a-z0-9./%?#:{$@ =_~\\\\-]{1,16}",
                    "(/|\\./|\\.\\./|//edge:8080/|http://edge:8080/)[a-z0-9./%?#-]{0,12}",
                ],
                1..8,
            ),
            base_url in proptest::sample::select(vec![
                "http://edge:8080/live/ch1/index.m3u8",
                "http://edge:8080/live/ch1/v1/index.m3u8?t=1",
                "http://edge:8080/live/ch1/%2e%2e/index.m3u8",
                "http://edge:8080/live/ch1/a%2Fb/index.m3u8",
                "http://edge:8080/live/index.m3u8",
                "http://edge:8080/vod/m/index.m3u8",
                "http://edge:8080/static/x/index.m3u8",
                "http://edge:8080/staticx/index.m3u8",
            ]),
        ) {
            let base = BaseUrl::parse(base_url).expect("base");
            let mut body = String::from("#EXTM3U\n");
            for reference in &references {
                if !reference.contains('"') {
                    body.push_str(&format!("#EXT-X-MAP:URI=\"{reference}\"\n"));
                }
                body.push_str(&format!("#EXTINF:2,\n{reference}\r\n"));
            }
            for policy in policies() {
                let mut callback = |r: &ResolvedRef<'_>, out: &mut String| policy.apply(r, out);
                let expected = manifest::rewrite(ManifestFormat::Hls, &body, &base, &mut callback);
                let written = policy.rewrite(ManifestFormat::Hls, &body, &base);
                proptest::prop_assert_eq!(written, expected, "{:?}", policy);
            }
        }
    }
}
