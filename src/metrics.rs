//! Prometheus metrics, registered once in the default registry (the one Pingora's and our
//! `/metrics` serve). Per-request counters are resolved up front, so recording is one atomic add.

use crate::routing::{BadRequest, NotFound, Outcome, RouteKind};
use std::sync::LazyLock;
use prometheus::{
    register_int_counter_vec, register_int_gauge, register_int_gauge_vec, Histogram, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec,
};

/// Request outcomes as metric labels.
pub const OUTCOMES: [&str; 7] = [
    "redirect",
    "not_found",
    "bad_request",
    "method_not_allowed",
    "unavailable",
    "error",
    "proxy",
];
/// Index of `error` in [`OUTCOMES`]: the request failed after routing (e.g. no edge answered).
pub const OUTCOME_ERROR: usize = 5;
/// Index of `proxy` in [`OUTCOMES`].
pub const OUTCOME_PROXY: usize = 6;
/// Upstream status classes in proxy mode.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
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
    durations: Vec<Histogram>,
    upstream_statuses: Vec<IntCounter>,
    pub upstream_connect_failures: IntCounter,
    pub upstream_retries: IntCounter,
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
    /// Client connections open on the public listeners.
    pub client_connections: IntGauge,
    /// Client connections the router ended itself, by reason.
    client_connections_closed: [IntCounter; CLOSE_REASONS.len()],
}

/// Why the router ended a client connection (`reason` label).
pub const CLOSE_REASONS: [&str; 5] = [
    "header_timeout",
    "idle_timeout",
    "client_limit",
    "head_too_large",
    "bad_request",
];

/// Index into [`CLOSE_REASONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    HeaderTimeout = 0,
    IdleTimeout = 1,
    ClientLimit = 2,
    HeadTooLarge = 3,
    /// A head refused for its framing or syntax (RFC 9112).
    BadRequest = 4,
}

/// Request latency buckets (seconds): tens of microseconds up to seconds (proxy mode).
const DURATION_BUCKETS: [f64; 18] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

impl Metrics {
    /// Records one request's time from its header to its end.
    #[inline]
    pub fn observe_duration(&self, kind: usize, took: std::time::Duration) {
        self.durations[kind].observe(took.as_secs_f64());
    }

    /// Counts an edge's answer in proxy mode by status class.
    #[inline]
    pub fn count_upstream_status(&self, kind: usize, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.upstream_statuses[kind * STATUS_CLASSES.len() + class].inc();
    }

    /// Counts a client connection the router ended.
    #[inline]
    pub fn count_close(&self, reason: CloseReason) {
        self.client_connections_closed[reason as usize].inc();
    }

    /// Counts one answered request.
    #[inline]
    pub fn count_request(&self, kind: usize, outcome: usize) {
        self.requests[kind * OUTCOMES.len() + outcome].inc();
    }
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
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
    let upstream = register_int_counter_vec!(
        "cti_kaltura_upstream_responses_total",
        "Edge answers in proxy mode, by route kind and status class",
        &["kind", "class"]
    )
    .expect("metric registers once");
    let mut upstream_statuses = Vec::with_capacity(KINDS.len() * STATUS_CLASSES.len());
    for kind in KINDS {
        for class in STATUS_CLASSES {
            upstream_statuses.push(upstream.with_label_values(&[kind, class]));
        }
    }
    let durations = prometheus::register_histogram_vec!(
        "cti_kaltura_request_duration_seconds",
        "Time from request header to the end of the answer, by route kind",
        &["kind"],
        DURATION_BUCKETS.to_vec()
    )
    .expect("metric registers once");
    let durations = KINDS
        .iter()
        .map(|k| durations.with_label_values(&[k]))
        .collect();
    Metrics {
        requests: resolved,
        durations,
        upstream_statuses,
        upstream_connect_failures: prometheus::register_int_counter!(
            "cti_kaltura_upstream_connect_failures_total",
            "Failed connections to edges in proxy mode"
        )
        .expect("metric registers once"),
        upstream_retries: prometheus::register_int_counter!(
            "cti_kaltura_upstream_retries_total",
            "Proxy requests retried on another edge after a failed connection"
        )
        .expect("metric registers once"),
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
        client_connections: register_int_gauge!(
            "cti_kaltura_client_connections",
            "Client connections open on the public listeners"
        )
        .expect("metric registers once"),
        client_connections_closed: {
            let closed = register_int_counter_vec!(
                "cti_kaltura_client_connections_closed_total",
                "Client connections the router closed itself, by reason (header_timeout, idle_timeout, client_limit, head_too_large)",
                &["reason"]
            )
            .expect("metric registers once");
            CLOSE_REASONS.map(|reason| closed.with_label_values(&[reason]))
        },
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
