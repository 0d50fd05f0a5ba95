//! The routing decision: method, path grammar, client address, content, then edge — a pure
//! function of the request facts and the snapshot.

use super::client_ip::client_ip;
use super::location::build_location;
use super::request_path::{is_safe_query, parse_route, Route, RouteKind};
use crate::config::TrustedProxies;
use crate::snapshot::{Id, Snapshot};
use std::net::IpAddr;

/// What the router knows about one request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub method: &'a http::Method,
    /// Raw (undecoded) path.
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// TCP peer.
    pub peer: IpAddr,
    /// The first `X-Real-IP` header, if any.
    pub x_real_ip: Option<&'a [u8]>,
    /// A uniformly random number for the weighted choice.
    pub random: u64,
}

/// The settings the decision depends on.
#[derive(Debug, Clone, Default)]
pub struct RoutingPolicy {
    pub trusted_proxies: TrustedProxies,
    pub append_query_string: bool,
    /// Route among a region's admin-eligible edges when health leaves it none.
    pub panic_mode: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// The path (or query) does not fit the grammar.
    Path,
    /// A trusted proxy sent a malformed `X-Real-IP`.
    ClientIp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotFound {
    /// No stream or record for that id, protocol and encryption.
    Content,
    /// No subnet, or no eligible edge along the client's fallback chain.
    Edge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Redirect {
        location: String,
        edge_id: Id,
        region_id: Id,
        subnet_id: Id,
    },
    NotFound(NotFound),
    BadRequest(BadRequest),
    MethodNotAllowed,
    /// No snapshot has been loaded yet.
    NoSnapshot,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Known once the path parsed.
    pub kind: Option<RouteKind>,
    /// Known once the client address was resolved.
    pub client_ip: Option<IpAddr>,
    pub outcome: Outcome,
}

impl Decision {
    fn early(kind: Option<RouteKind>, outcome: Outcome) -> Decision {
        Decision {
            kind,
            client_ip: None,
            outcome,
        }
    }
}

/// Decides one request. Content is looked up before the edge, so a missing channel costs no
/// edge selection.
pub fn decide(
    snapshot: Option<&Snapshot>,
    policy: &RoutingPolicy,
    req: &RequestFacts<'_>,
) -> Decision {
    if req.method != http::Method::GET && req.method != http::Method::HEAD {
        return Decision::early(None, Outcome::MethodNotAllowed);
    }
    let query = req.query.filter(|_| policy.append_query_string);
    let Some(route) = parse_route(req.path).filter(|_| req.query.is_none_or(is_safe_query)) else {
        return Decision::early(None, Outcome::BadRequest(BadRequest::Path));
    };
    let kind = Some(route.kind());
    let Ok(ip) = client_ip(req.peer, req.x_real_ip, &policy.trusted_proxies) else {
        return Decision::early(kind, Outcome::BadRequest(BadRequest::ClientIp));
    };
    let decision = |outcome| Decision {
        kind,
        client_ip: Some(ip),
        outcome,
    };
    let Some(snapshot) = snapshot else {
        return decision(Outcome::NoSnapshot);
    };

    let content = match route {
        Route::Live(c) => match snapshot.live.find(c.epg_id, c.protocol, c.encryption) {
            Some(content) => Some(&*content.path),
            None => return decision(Outcome::NotFound(NotFound::Content)),
        },
        Route::Catchup(c) => match snapshot.catchup.find(c.epg_id, c.protocol, c.encryption) {
            Some(content) => Some(&*content.path),
            None => return decision(Outcome::NotFound(NotFound::Content)),
        },
        Route::Vod | Route::Static => None,
    };
    let Some(choice) = snapshot.choose_edge(ip, req.random, policy.panic_mode) else {
        return decision(Outcome::NotFound(NotFound::Edge));
    };
    let (step, edge) = (choice.step, choice.edge);
    let location = match content {
        Some(path) => build_location(&edge.live_base, path, true, query),
        None => build_location(&edge.http_base, req.path, false, query),
    };
    decision(Outcome::Redirect {
        location,
        edge_id: edge.id,
        region_id: snapshot.regions[step.region as usize].id,
        subnet_id: step.subnet_id,
    })
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
