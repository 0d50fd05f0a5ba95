//! Prometheus metrics, registered once in the default registry (the one Pingora's and our
//! `/metrics` serve). Per-request counters are resolved up front, so recording is one atomic add.

use crate::routing::{BadRequest, NotFound, Outcome, RouteKind};
use once_cell::sync::Lazy;
use prometheus::{
    register_int_counter_vec, register_int_gauge, register_int_gauge_vec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec,
};

/// Request outcomes as metric labels.
pub const OUTCOMES: [&str; 6] = [
    "redirect",
    "not_found",
    "bad_request",
    "method_not_allowed",
    "unavailable",
    "error",
];
/// Route kinds as metric labels; `invalid` when the path did not parse.
pub const KINDS: [&str; 5] = ["live", "catchup", "vod", "static", "invalid"];

pub fn outcome_label(outcome: &Outcome) -> usize {
    match outcome {
        Outcome::Redirect { .. } => 0,
        Outcome::NotFound(NotFound::Content | NotFound::Edge) => 1,
        Outcome::BadRequest(BadRequest::Path | BadRequest::ClientIp) => 2,
        Outcome::MethodNotAllowed => 3,
        Outcome::NoSnapshot => 4,
    }
}

pub fn kind_label(kind: Option<RouteKind>) -> usize {
    match kind {
        Some(RouteKind::Live) => 0,
        Some(RouteKind::Catchup) => 1,
        Some(RouteKind::Vod) => 2,
        Some(RouteKind::Static) => 3,
        None => 4,
    }
}

pub struct Metrics {
    requests: Vec<IntCounter>,
    /// Fetches and loads by result: ok, unchanged, error, refused.
    pub snapshot_fetches: IntCounterVec,
    pub snapshot_problems: IntGauge,
    pub snapshot_loaded_timestamp: IntGauge,
    /// Always 1, labelled with the version in service.
    pub snapshot_version: IntGaugeVec,
    /// Seconds since the last successful fetch or load; set when scraped.
    pub snapshot_age: IntGauge,
    pub snapshot_entities: IntGaugeVec,
    pub snapshot_quarantined: IntCounterVec,
    /// 1 when an edge is up by the health checker's view, 0 when down.
    pub edge_up: IntGaugeVec,
    pub health_checks: IntCounterVec,
    /// Regions routing among unhealthy edges because health left them none.
    pub panic_regions: IntGauge,
}

impl Metrics {
    /// Counts one answered request.
    #[inline]
    pub fn count_request(&self, kind: usize, outcome: usize) {
        self.requests[kind * OUTCOMES.len() + outcome].inc();
    }
}

pub static METRICS: Lazy<Metrics> = Lazy::new(|| {
    let requests = register_int_counter_vec!(
        "cti_kaltura_requests_total",
        "Requests answered, by route kind and outcome",
        &["kind", "outcome"]
    )
    .expect("metric registers once");
    let mut resolved = Vec::with_capacity(KINDS.len() * OUTCOMES.len());
    for kind in KINDS {
        for outcome in OUTCOMES {
            resolved.push(requests.with_label_values(&[kind, outcome]));
        }
    }
    Metrics {
        requests: resolved,
        snapshot_fetches: register_int_counter_vec!(
            "cti_kaltura_snapshot_fetch_total",
            "Routing snapshot fetches and file loads, by result (ok, unchanged, error, refused)",
            &["result"]
        )
        .expect("metric registers once"),
        snapshot_version: register_int_gauge_vec!(
            "cti_kaltura_snapshot_version_info",
            "The routing snapshot version in service (value always 1)",
            &["version"]
        )
        .expect("metric registers once"),
        snapshot_age: register_int_gauge!(
            "cti_kaltura_snapshot_age_seconds",
            "Seconds since the last successful snapshot fetch or load"
        )
        .expect("metric registers once"),
        snapshot_entities: register_int_gauge_vec!(
            "cti_kaltura_snapshot_entities",
            "Entities accepted into the snapshot in service, by kind",
            &["kind"]
        )
        .expect("metric registers once"),
        edge_up: register_int_gauge_vec!(
            "cti_kaltura_edge_up",
            "Edge health by the active checker: 1 up, 0 down",
            &["server"]
        )
        .expect("metric registers once"),
        health_checks: register_int_counter_vec!(
            "cti_kaltura_health_check_total",
            "Health checks by edge and result (ok, bad_status, bad_body, timeout, error, no_path)",
            &["server", "result"]
        )
        .expect("metric registers once"),
        panic_regions: register_int_gauge!(
            "cti_kaltura_panic_regions",
            "Regions in panic mode: routing among admin-eligible edges that all failed health checks"
        )
        .expect("metric registers once"),
        snapshot_quarantined: register_int_counter_vec!(
            "cti_kaltura_snapshot_quarantined_total",
            "Entities skipped by validation, by kind, summed over every accepted snapshot",
            &["kind"]
        )
        .expect("metric registers once"),
        snapshot_problems: register_int_gauge!(
            "cti_kaltura_snapshot_problems",
            "Entities quarantined or references dropped in the current snapshot"
        )
        .expect("metric registers once"),
        snapshot_loaded_timestamp: register_int_gauge!(
            "cti_kaltura_snapshot_loaded_timestamp_seconds",
            "Unix time the current snapshot was loaded"
        )
        .expect("metric registers once"),
    }
});
