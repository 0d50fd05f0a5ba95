//! The routing decision: method, path grammar, client address, content, then edge — a pure
//! function of the request facts and the snapshot.

use super::client_ip::client_ip;
use super::location::build_location;
use super::request_path::{is_safe_query, parse_route, Route, RouteKind};
use crate::config::{Config, LocationScheme, RoutesConfig, SelectionPolicy, TrustedProxies};
use crate::snapshot::affinity::KeyHasher;
use crate::snapshot::{Id, Selector, Snapshot, StallEffect};
use crate::stream_health::StalledPairs;
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
    /// The request arrived over TLS (for the `request` location scheme).
    pub secure: bool,
}

/// The settings the decision depends on.
#[derive(Debug, Clone)]
pub struct RoutingPolicy {
    pub trusted_proxies: TrustedProxies,
    pub append_query_string: bool,
    /// Route among a region's admin-eligible edges when health leaves it none.
    pub panic_mode: bool,
    /// Mode and edge selection per route kind.
    pub routes: RoutesConfig,
}

impl RoutingPolicy {
    /// What the routing core takes from a configuration.
    pub fn from_config(config: &Config) -> RoutingPolicy {
        RoutingPolicy {
            trusted_proxies: config.client_ip.trusted_proxies.clone(),
            append_query_string: config.redirect.append_query_string,
            panic_mode: config.health.panic_mode,
            routes: config.routes,
        }
    }
}

impl Default for RoutingPolicy {
    /// The policy of the default configuration.
    fn default() -> Self {
        RoutingPolicy::from_config(&Config::default())
    }
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
        /// Where the redirect points inside the snapshot (proxying, retries, logs).
        target: EdgeTarget,
    },
    NotFound(NotFound),
    BadRequest(BadRequest),
    MethodNotAllowed,
    /// No snapshot has been loaded yet.
    NoSnapshot,
}

/// Where a redirect points inside the snapshot, for proxying and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeTarget {
    /// Where the edge-relative part (path and query) starts in the Location.
    pub path_start: usize,
    /// Live and catch-up: where the content's directory on the edge (the stream's or record's
    /// path up to its last `/`) ends in the Location; what sub-requests resolve against.
    /// `path_start` for VOD and static.
    pub dir_end: usize,
    /// Index of the edge in [`Snapshot::servers`].
    pub edge_index: u32,
    /// Index of the region in [`Snapshot::regions`].
    pub region_index: u32,
    /// Panic mode chose the edge: every eligible edge of the region looked unhealthy.
    pub panic: bool,
    /// The live stream (tv_stream id) routed, for stream health.
    pub stream_id: Option<Id>,
    /// What avoiding stalled copies of the stream did.
    pub stall: StallEffect,
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

    /// Where a redirect points; `None` for any other outcome.
    pub fn target(&self) -> Option<&EdgeTarget> {
        match &self.outcome {
            Outcome::Redirect { target, .. } => Some(target),
            _ => None,
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
    decide_with_streams(snapshot, None, policy, req)
}

/// [`decide`], keeping a live stream off the edges whose copy of it is stalled (`stalled`,
/// the stream-health overlay; `None` when no pair is stalled).
pub fn decide_with_streams(
    snapshot: Option<&Snapshot>,
    stalled: Option<&StalledPairs>,
    policy: &RoutingPolicy,
    req: &RequestFacts<'_>,
) -> Decision {
    if req.method != http::Method::GET && req.method != http::Method::HEAD {
        return Decision::early(None, Outcome::MethodNotAllowed);
    }
    let query = req.query.filter(|_| policy.append_query_string);
    let Some(route) = parse_route(req.path).filter(|_| query.is_none_or(is_safe_query)) else {
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

    let mut stream_id = None;
    let content = match route {
        Route::Live(c) => match snapshot.live.find(c.epg_id, c.protocol, c.encryption) {
            Some(content) => {
                stream_id = Some(content.id);
                Some(&*content.path)
            }
            None => return decision(Outcome::NotFound(NotFound::Content)),
        },
        Route::Catchup(c) => match snapshot.catchup.find(c.epg_id, c.protocol, c.encryption) {
            Some(content) => Some(&*content.path),
            None => return decision(Outcome::NotFound(NotFound::Content)),
        },
        Route::Vod | Route::Static => None,
    };
    let route_config = policy.routes.get(route.kind());
    let selector = match route_config.selection {
        SelectionPolicy::WeightedRandom => Selector::Random(req.random),
        SelectionPolicy::Consistent => Selector::Consistent {
            key_hash: content_key(&route, req.path),
            spread: route_config.spread,
            random: req.random,
        },
    };
    let stalled_edges = stream_id.and_then(|id| stalled?.edges_stalled_for(id));
    let is_stalled = |e: u32| {
        stalled_edges.is_some_and(|edges| edges.contains(&snapshot.servers[e as usize].id))
    };
    let chosen = match stalled_edges {
        None => snapshot
            .choose_edge(ip, selector, policy.panic_mode)
            .map(|choice| (choice, StallEffect::None)),
        Some(_) => snapshot.choose_edge_avoiding(ip, selector, policy.panic_mode, is_stalled),
    };
    let Some((mut choice, stall)) = chosen else {
        return decision(Outcome::NotFound(NotFound::Edge));
    };
    let sub = match route {
        Route::Live(c) | Route::Catchup(c) => c.sub,
        Route::Vod | Route::Static => None,
    };
    if let Some(hinted) = sub
        .and_then(|s| s.edge_hint)
        .and_then(|id| snapshot.hinted_edge(choice.step.region, id, selector, choice.panic))
        .filter(|&e| stall == StallEffect::AllStalled || !is_stalled(e))
    {
        choice.edge_index = hinted;
        choice.edge = &snapshot.servers[hinted as usize];
    }
    let (step, edge) = (choice.step, choice.edge);
    let https = match route_config.location_scheme {
        LocationScheme::Edge => None,
        LocationScheme::Https => Some(true),
        LocationScheme::Request => Some(req.secure),
    };
    let bases = &edge.scheme_bases;
    let (live_base, http_base) = match https {
        None => (&edge.live_base, &edge.http_base),
        Some(true) => (&bases.live_https, &bases.http_https),
        Some(false) => (&bases.live_http, &edge.http_base),
    };
    let (location, path_start, dir_end) = match (content, sub) {
        (Some(path), None) => {
            let base = live_base.len();
            let dir_end = base + path.rfind('/').map_or(0, |i| i + 1);
            (build_location(live_base, path, true, query), base, dir_end)
        }
        (Some(path), Some(sub)) => {
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            let base = live_base.len();
            let mut location = String::with_capacity(
                base + dir.len() + sub.rest.len() + query.map_or(0, |q| q.len() + 1),
            );
            location.push_str(live_base);
            location.push_str(dir);
            location.push_str(sub.rest);
            if let Some(q) = query {
                location.push('?');
                location.push_str(q);
            }
            (location, base, base + dir.len())
        }
        (None, _) => {
            let base = http_base.len();
            (
                build_location(http_base, req.path, false, query),
                base,
                base,
            )
        }
    };
    decision(Outcome::Redirect {
        location,
        edge_id: edge.id,
        region_id: snapshot.regions[step.region as usize].id,
        subnet_id: step.subnet_id,
        target: EdgeTarget {
            path_start,
            dir_end,
            edge_index: choice.edge_index,
            region_index: step.region,
            panic: choice.panic,
            stream_id,
            stall,
        },
    })
}

/// The content key of affinity hashing: channel and protocol for live, program for catch-up,
/// the (normalised) path for VOD and static.
fn content_key(route: &Route<'_>, path: &str) -> u64 {
    match route {
        Route::Live(c) => KeyHasher::default()
            .bytes(c.epg_id.as_bytes())
            .bytes(&[c.protocol as u8])
            .finish(),
        Route::Catchup(c) => KeyHasher::default().bytes(c.epg_id.as_bytes()).finish(),
        Route::Vod | Route::Static => KeyHasher::default().path(path).finish(),
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
