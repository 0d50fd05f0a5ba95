//! The rebase policy of proxy and manifest modes: for each reference the manifest rewriter
//! finds, the URL the player is to use instead (or none: left as written).
//!
//! - References to other hosts (key servers, other CDNs) are always left as written.
//! - Manifest mode ([`Rebase::EdgeUrls`]): same-origin references become absolute URLs on the
//!   edge the manifest came from; segments then go straight to that edge.
//! - Proxy mode, live and catch-up ([`Rebase::SubRequests`]): same-origin references inside the
//!   content's directory on the edge become router sub-requests
//!   `/btv/{live|catchup}/{codec}/{id}/~e{edge_id}/{rest}` (absolute-path form); ones outside it
//!   (which no sub-request can name) become absolute URLs on the edge.
//! - Proxy mode, VOD and static ([`Rebase::SamePaths`]): the router's path is the edge's path,
//!   so same-origin references under `/vod/` (or `/static`) become that path; others absolute
//!   on the edge.

use crate::manifest::ResolvedRef;
use crate::routing::request_path::{is_safe_path, is_safe_sub_path, write_sub_request};
use crate::vocab::Id;

/// Where a proxied manifest's same-origin references are to point.
#[derive(Debug, Clone, Copy)]
pub enum Rebase<'a> {
    /// Absolute URLs on the edge (manifest mode).
    EdgeUrls,
    /// Router sub-requests for what lies inside `dir` on the edge (proxy mode, live and
    /// catch-up).
    SubRequests {
        /// `/btv/{live|catchup}/{codec}/{id}`.
        content_prefix: &'a str,
        /// The edge the manifest came from: the hint sub-requests carry.
        edge_id: Id,
        /// The content's directory on the edge (`/live/ch1/`), ends with `/`.
        dir: &'a str,
    },
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
            Rebase::EdgeUrls => {}
            Rebase::SubRequests {
                content_prefix,
                edge_id,
                dir,
            } => {
                let inside = r
                    .path
                    .strip_prefix(dir)
                    .filter(|rest| (r.is_dir || !rest.is_empty()) && is_safe_sub_path(rest));
                if let Some(rest) = inside {
                    let (prefix, id) = content_prefix
                        .rsplit_once('/')
                        .unwrap_or((content_prefix, ""));
                    write_sub_request(out, prefix, id, Some(edge_id), rest);
                    push_query_and_fragment(out, r);
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
