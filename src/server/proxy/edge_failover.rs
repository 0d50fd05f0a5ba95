//! What a failed connection to an edge does, for every proxy transport: it counts against the
//! edge like a failed health check (passive health), and the request moves once to another
//! edge of its region (passing over edges whose copy of the stream is stalled).

use crate::metrics::METRICS;
use crate::server::pipeline::{ProxyTarget, Record};
use crate::settings::Settings;
use crate::snapshot::Selector;
use crate::state::RouterState;
use std::fmt::Display;

/// Counts the failure against `target`'s edge and, unless the request moved already, moves
/// `target` to another edge of the region; true when it moved (the caller retries there).
pub fn connect_failed(
    state: &RouterState,
    settings: &Settings,
    target: &mut ProxyTarget,
    record: Option<&mut Record>,
    why: &dyn Display,
) -> bool {
    passive_failure(state, settings, target);
    if target.retried {
        return false;
    }
    let selector = Selector::Random(fastrand::u64(..));
    // Stream health (issue 16): the retry, too, passes over stalled copies of the stream.
    let stalled = target
        .stream_id
        .filter(|_| settings.config.stream_health_on())
        .and_then(|_| state.streams().overlay().view());
    let stalled_edges = stalled
        .as_deref()
        .zip(target.stream_id)
        .and_then(|(pairs, stream)| pairs.edges_stalled_for(stream));
    let snapshot = &target.snapshot;
    let other = snapshot.pick_in_region_avoiding(
        target.region_index,
        selector,
        Some(target.edge_index),
        settings.policy.panic_mode,
        |e| stalled_edges.is_some_and(|edges| edges.contains(&snapshot.servers[e as usize].id)),
    );
    drop(stalled);
    let Some((edge_index, _)) = other else {
        return false;
    };
    let (from, to) = (
        &target.snapshot.servers[target.edge_index as usize],
        &target.snapshot.servers[edge_index as usize],
    );
    log::warn!(
        "proxy: cannot connect to edge {} ({why}); retrying on {}",
        from.domain_name,
        to.domain_name
    );
    METRICS.upstream_retries.inc();
    if let Some(access) = record.and_then(|r| r.access.as_mut()) {
        access.edge = Some(to.domain_name.to_string());
        access.reason = "proxy_retried";
    }
    target.edge_index = edge_index;
    target.retried = true;
    true
}

/// Counts a failed connection against the edge, like a failed health check.
fn passive_failure(state: &RouterState, settings: &Settings, target: &ProxyTarget) {
    METRICS.upstream_connect_failures.inc();
    let health = &settings.config.health;
    if !health.enabled {
        return;
    }
    let server = &target.snapshot.servers[target.edge_index as usize];
    if !crate::health_checker::is_checked(server) {
        // Nothing would ever bring an unchecked edge back up.
        return;
    }
    let registry = state.health();
    if registry.observe(server.id, false, health.rise, health.fall) == Some(false) {
        server.health.set_up(false);
        log::warn!(
            "edge {} (id {}) is DOWN after failed proxy connections",
            server.domain_name,
            server.id
        );
    }
}
