//! The one request pipeline: from what a listener knows of a request to either an answer to
//! write or an edge to proxy to, with the request's metric labels and access-log record. Every
//! listener and protocol path calls [`handle`] once per request (the router's own HTTP/1 loop,
//! and the Pingora adapter for what reaches it first); a request the loop hands to Pingora for
//! proxying carries its [`Handled`] along, so it is never decided twice.

use super::access_log::{self, AccessRecord};
use super::answer::{access_record, over_limits, oversize_record, Answer, HeadSize};
use crate::config::Mode;
use crate::metrics::{KindLabel, OutcomeLabel, METRICS};
use crate::routing::request_path::names_manifest;
use crate::routing::{decide_with_streams, Decision, EdgeTarget, Outcome, RequestFacts, RouteKind};
use crate::settings::Settings;
use crate::snapshot::Id;
use crate::snapshot::Snapshot;
use crate::state::RouterState;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// What a listener knows of a request when it is to be decided.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub method: &'a http::Method,
    /// Raw (undecoded) path, for routing.
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The request target as received, for the access log of a request refused for its size.
    pub raw_target: &'a [u8],
    /// TCP peer.
    pub peer: IpAddr,
    /// The first `X-Real-IP` value.
    pub x_real_ip: Option<&'a [u8]>,
    pub size: HeadSize,
    /// Arrived over TLS.
    pub secure: bool,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Action {
    /// Write this answer.
    Answer(Answer),
    /// Fetch from this edge and stream its answer back.
    Proxy(ProxyTarget),
}

/// A decided request: what to do, and what to count and log once it is done.
#[derive(Debug)]
pub struct Handled {
    pub action: Action,
    pub record: Record,
}

/// A request being proxied: the snapshot it was routed on and where it goes.
#[derive(Debug)]
pub struct ProxyTarget {
    pub snapshot: Arc<Snapshot>,
    pub edge_index: u32,
    pub region_index: u32,
    /// Path and query for the edge (what the redirect would have carried after the host).
    pub path_and_query: String,
    pub client_ip: IpAddr,
    /// Already retried once on another edge.
    pub retried: bool,
    /// The live stream (tv_stream id), for reading its proxied playlist (stream health).
    pub stream_id: Option<Id>,
    /// A manifest the router fetches whole and rewrites; `None`: streamed through as is.
    pub manifest: Option<ManifestPlan>,
}

/// How the references of a fetched manifest are to be rewritten.
#[derive(Debug, Clone)]
pub struct ManifestPlan {
    pub kind: RouteKind,
    /// `Proxy`: back through the router; `Manifest`: absolute on the edge.
    pub mode: Mode,
    /// Live and catch-up: `/btv/{live|catchup}/{codec}/{id}`, what sub-requests start with.
    pub content_prefix: String,
    /// The content's directory on the edge is `path_and_query[..dir_len]`.
    pub dir_len: usize,
}

/// The plan for a request in `mode` (`Proxy` or `Manifest`) when its path names a manifest
/// (the live or catch-up content itself, or a `.m3u8`/`.mpd` file).
fn manifest_plan(
    kind: RouteKind,
    mode: Mode,
    path: &str,
    target: &EdgeTarget,
) -> Option<ManifestPlan> {
    let content_prefix = match kind {
        RouteKind::Live | RouteKind::Catchup => match path.find("/~") {
            Some(sub) if names_manifest(path) => &path[..sub],
            Some(_) => return None,
            None => path
                .strip_suffix(".m3u8")
                .or_else(|| path.strip_suffix(".mpd"))
                .unwrap_or(path),
        },
        RouteKind::Vod | RouteKind::Static if names_manifest(path) => "",
        RouteKind::Vod | RouteKind::Static => return None,
    };
    Some(ManifestPlan {
        kind,
        mode,
        content_prefix: content_prefix.to_string(),
        dir_len: target.dir_end - target.path_start,
    })
}

/// A request's metric labels, access-log record and start, until it is finished.
#[derive(Debug)]
pub struct Record {
    pub kind: KindLabel,
    pub outcome: OutcomeLabel,
    /// Only when the access log is on.
    pub access: Option<Box<AccessRecord>>,
    pub started: Instant,
}

impl Record {
    /// A request refused before routing (its head), counted as `invalid`/`bad_request`.
    pub fn refused(started: Instant) -> Record {
        Record {
            kind: KindLabel::Invalid,
            outcome: OutcomeLabel::BadRequest,
            access: None,
            started,
        }
    }

    /// A request that failed before it was decided (the framework could not read it).
    pub fn unrouted(started: Instant) -> Record {
        Record {
            kind: KindLabel::Invalid,
            outcome: OutcomeLabel::Error,
            access: None,
            started,
        }
    }

    /// Counts the request and writes its access-log line, with the status it was answered.
    pub fn finish(&self, status: u16, settings: &Settings) {
        let took = self.started.elapsed();
        METRICS.count_request(self.kind, self.outcome);
        METRICS.observe_duration(self.kind, took);
        if let Some(record) = &self.access {
            access_log::write(record, status, took, settings.config.access_log.json);
        }
    }
}

/// Decides one request: size limits, then the routing decision, then the answer or the proxy
/// target.
pub fn handle(
    state: &RouterState,
    settings: &Settings,
    req: &Incoming<'_>,
    started: Instant,
) -> Handled {
    let access_on = settings.config.access_log.enabled;
    if let Some(answer) = over_limits(req.size, &settings.config.http) {
        let access = access_on
            .then(|| oversize_record(req.peer, req.method.as_str(), req.raw_target, answer.status));
        return Handled {
            action: Action::Answer(Answer::Text(answer)),
            record: Record {
                access,
                ..Record::refused(started)
            },
        };
    }
    let snapshot = state.snapshot_guard();
    let facts = RequestFacts {
        method: req.method,
        path: req.path,
        query: req.query,
        peer: req.peer,
        x_real_ip: req.x_real_ip,
        random: fastrand::u64(..),
        secure: req.secure,
    };
    let policy = &settings.policy;
    let streams_on = settings.config.stream_health_on();
    let stalled = streams_on
        .then(|| state.streams().overlay().view())
        .flatten();
    let decision = decide_with_streams(
        snapshot.as_deref(),
        stalled.as_deref().map(|s| &**s),
        policy,
        &facts,
    );
    drop(stalled);
    if let (
        true,
        Outcome::Redirect {
            region_id, target, ..
        },
    ) = (streams_on, &decision.outcome)
    {
        if let Some(stream_id) = target.stream_id {
            state.streams().record_request(stream_id, *region_id);
        }
    }
    let proxied = decision.kind.is_some_and(|k| policy.routes.fetches(k));
    let access = access_on.then(|| {
        access_record(
            &decision,
            snapshot.as_deref(),
            req.peer,
            req.method.as_str(),
            req.path,
            proxied,
        )
    });
    let kind = KindLabel::of(decision.kind);
    let outcome = OutcomeLabel::of(&decision.outcome);
    let record = |outcome| Record {
        kind,
        outcome,
        access,
        started,
    };
    let Decision {
        outcome: routed,
        client_ip,
        kind: route_kind,
    } = decision;
    match (routed, snapshot.as_ref(), client_ip) {
        (
            Outcome::Redirect {
                location, target, ..
            },
            Some(snapshot),
            Some(client_ip),
        ) if proxied => {
            let manifest = route_kind.and_then(|kind| {
                manifest_plan(kind, policy.routes.get(kind).mode, req.path, &target)
            });
            let EdgeTarget {
                path_start,
                edge_index,
                region_index,
                stream_id,
                ..
            } = target;
            let mut path_and_query = location;
            path_and_query.drain(..path_start);
            Handled {
                action: Action::Proxy(ProxyTarget {
                    snapshot: Arc::clone(snapshot),
                    edge_index,
                    region_index,
                    path_and_query,
                    client_ip,
                    retried: false,
                    stream_id,
                    manifest,
                }),
                record: record(OutcomeLabel::Proxy),
            }
        }
        (routed, ..) => Handled {
            action: Action::Answer(Answer::of(routed)),
            record: record(outcome),
        },
    }
}
