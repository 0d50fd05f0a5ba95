//! Prometheus metrics, registered once in the default registry (the one Pingora's and our
//! `/metrics` serve). Per-request counters are resolved up front, so recording is one atomic add.

use crate::routing::{BadRequest, NotFound, Outcome, RouteKind};
use prometheus::{
    register_int_counter_vec, register_int_gauge, register_int_gauge_vec, Histogram, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec,
};
use std::sync::LazyLock;

/// A request's route kind as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindLabel {
    Live,
    Catchup,
    Vod,
    Static,
    /// The path did not parse, or the head was refused before routing.
    Invalid,
}

impl KindLabel {
    pub const ALL: [KindLabel; 5] = [
        KindLabel::Live,
        KindLabel::Catchup,
        KindLabel::Vod,
        KindLabel::Static,
        KindLabel::Invalid,
    ];

    pub fn of(kind: Option<RouteKind>) -> KindLabel {
        match kind {
            Some(RouteKind::Live) => KindLabel::Live,
            Some(RouteKind::Catchup) => KindLabel::Catchup,
            Some(RouteKind::Vod) => KindLabel::Vod,
            Some(RouteKind::Static) => KindLabel::Static,
            None => KindLabel::Invalid,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KindLabel::Invalid => "invalid",
            KindLabel::Live => RouteKind::Live.as_str(),
            KindLabel::Catchup => RouteKind::Catchup.as_str(),
            KindLabel::Vod => RouteKind::Vod.as_str(),
            KindLabel::Static => RouteKind::Static.as_str(),
        }
    }
}

/// A request's outcome as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeLabel {
    Redirect,
    NotFound,
    BadRequest,
    MethodNotAllowed,
    /// No snapshot loaded yet.
    Unavailable,
    /// The request failed after routing (no edge answered a proxied request, or the request
    /// failed before it was routed).
    Error,
    /// Proxied to an edge.
    Proxy,
}

impl OutcomeLabel {
    pub const ALL: [OutcomeLabel; 7] = [
        OutcomeLabel::Redirect,
        OutcomeLabel::NotFound,
        OutcomeLabel::BadRequest,
        OutcomeLabel::MethodNotAllowed,
        OutcomeLabel::Unavailable,
        OutcomeLabel::Error,
        OutcomeLabel::Proxy,
    ];

    pub fn of(outcome: &Outcome) -> OutcomeLabel {
        match outcome {
            Outcome::Redirect { .. } => OutcomeLabel::Redirect,
            Outcome::NotFound(NotFound::Content | NotFound::Edge) => OutcomeLabel::NotFound,
            Outcome::BadRequest(BadRequest::Path | BadRequest::ClientIp) => {
                OutcomeLabel::BadRequest
            }
            Outcome::MethodNotAllowed => OutcomeLabel::MethodNotAllowed,
            Outcome::NoSnapshot => OutcomeLabel::Unavailable,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeLabel::Redirect => "redirect",
            OutcomeLabel::NotFound => "not_found",
            OutcomeLabel::BadRequest => "bad_request",
            OutcomeLabel::MethodNotAllowed => "method_not_allowed",
            OutcomeLabel::Unavailable => "unavailable",
            OutcomeLabel::Error => "error",
            OutcomeLabel::Proxy => "proxy",
        }
    }
}

/// Upstream status classes in proxy mode.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

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
    pub fn observe_duration(&self, kind: KindLabel, took: std::time::Duration) {
        self.durations[kind as usize].observe(took.as_secs_f64());
    }

    /// Counts an edge's answer in proxy mode by status class.
    #[inline]
    pub fn count_upstream_status(&self, kind: KindLabel, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.upstream_statuses[kind as usize * STATUS_CLASSES.len() + class].inc();
    }

    /// Counts a client connection the router ended.
    #[inline]
    pub fn count_close(&self, reason: CloseReason) {
        self.client_connections_closed[reason as usize].inc();
    }

    /// Counts one answered request.
    #[inline]
    pub fn count_request(&self, kind: KindLabel, outcome: OutcomeLabel) {
        self.requests[kind as usize * OutcomeLabel::ALL.len() + outcome as usize].inc();
    }
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let requests = register_int_counter_vec!(
        "cti_kaltura_requests_total",
        "Requests answered, by route kind and outcome",
        &["kind", "outcome"]
    )
    .expect("metric registers once");
    let mut resolved = Vec::with_capacity(KindLabel::ALL.len() * OutcomeLabel::ALL.len());
    for kind in KindLabel::ALL {
        for outcome in OutcomeLabel::ALL {
            resolved.push(requests.with_label_values(&[kind.as_str(), outcome.as_str()]));
        }
    }
    let upstream = register_int_counter_vec!(
        "cti_kaltura_upstream_responses_total",
        "Edge answers in proxy mode, by route kind and status class",
        &["kind", "class"]
    )
    .expect("metric registers once");
    let mut upstream_statuses = Vec::with_capacity(KindLabel::ALL.len() * STATUS_CLASSES.len());
    for kind in KindLabel::ALL {
        for class in STATUS_CLASSES {
            upstream_statuses.push(upstream.with_label_values(&[kind.as_str(), class]));
        }
    }
    let durations = prometheus::register_histogram_vec!(
        "cti_kaltura_request_duration_seconds",
        "Time from request header to the end of the answer, by route kind",
        &["kind"],
        DURATION_BUCKETS.to_vec()
    )
    .expect("metric registers once");
    let durations = KindLabel::ALL
        .iter()
        .map(|k| durations.with_label_values(&[k.as_str()]))
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

/// Stream health metrics (per edge and live stream); no per-stream or per-edge labels.
pub struct StreamMetrics {
    /// (edge, stream) pairs stalled right now; set on every prober tick and scrape.
    pub stalled_pairs: IntGauge,
    /// (edge, stream) pairs watched (probed or read) right now.
    pub watched_pairs: IntGauge,
    /// (stream, region) entries in the hot set of the last probe round.
    pub hot_set_entries: IntGauge,
    /// (stream, region) entries where every eligible edge has the stream stalled.
    pub all_stalled: IntGauge,
    /// Probes by result (ok, not_found, bad_status, timeout, error, too_large, unusable).
    pub probes: IntCounterVec,
    /// Proxied live playlists read, by the same results.
    pub passive_reads: IntCounterVec,
    /// Pair transitions, by the state entered (stalled, advancing).
    pub transitions: IntCounterVec,
}

pub static STREAM_METRICS: LazyLock<StreamMetrics> = LazyLock::new(|| StreamMetrics {
    stalled_pairs: register_int_gauge!(
        "cti_kaltura_stream_stalled_pairs",
        "(edge, live stream) pairs whose copy is stalled and avoided"
    )
    .expect("metric registers once"),
    watched_pairs: register_int_gauge!(
        "cti_kaltura_stream_watched_pairs",
        "(edge, live stream) pairs watched by stream health"
    )
    .expect("metric registers once"),
    hot_set_entries: register_int_gauge!(
        "cti_kaltura_stream_hot_set_entries",
        "(stream, region) entries probed in the last round"
    )
    .expect("metric registers once"),
    all_stalled: register_int_gauge!(
        "cti_kaltura_stream_all_stalled",
        "(stream, region) entries stalled on every eligible edge (routed as if none were)"
    )
    .expect("metric registers once"),
    probes: register_int_counter_vec!(
        "cti_kaltura_stream_probes_total",
        "Stream probes by result (ok, not_found, bad_status, timeout, error, too_large, unusable)",
        &["result"]
    )
    .expect("metric registers once"),
    passive_reads: register_int_counter_vec!(
        "cti_kaltura_stream_passive_reads_total",
        "Live playlists read as they passed through in proxy mode, by result",
        &["result"]
    )
    .expect("metric registers once"),
    transitions: register_int_counter_vec!(
        "cti_kaltura_stream_transitions_total",
        "(edge, live stream) pair transitions, by the state entered (stalled, advancing)",
        &["to"]
    )
    .expect("metric registers once"),
});

/// Why a proxied manifest candidate was passed through unmodified (`reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassthroughReason {
    /// Larger than `router.proxy.max_manifest_bytes`.
    TooLarge,
    /// Not a manifest by content type and body.
    NotManifest,
    /// A manifest the rewriter could not parse (or not UTF-8, or an unknown encoding).
    Unreadable,
}

impl PassthroughReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PassthroughReason::TooLarge => "too_large",
            PassthroughReason::NotManifest => "not_manifest",
            PassthroughReason::Unreadable => "unreadable",
        }
    }
}

/// Manifest rewriting in proxy and manifest modes.
pub struct ManifestMetrics {
    /// Rewritten manifests, by format (`hls`, `dash`).
    pub rewritten: IntCounterVec,
    /// Manifest candidates passed through unmodified, by [`PassthroughReason`].
    pub passthrough: IntCounterVec,
}

impl ManifestMetrics {
    pub fn count_passthrough(&self, reason: PassthroughReason) {
        self.passthrough.with_label_values(&[reason.as_str()]).inc();
    }
}

pub static MANIFEST_METRICS: LazyLock<ManifestMetrics> = LazyLock::new(|| {
    ManifestMetrics {
    rewritten: register_int_counter_vec!(
        "cti_kaltura_manifest_rewrites_total",
        "Manifests rewritten in proxy and manifest modes, by format (hls, dash)",
        &["format"]
    )
    .expect("metric registers once"),
    passthrough: register_int_counter_vec!(
        "cti_kaltura_manifest_passthrough_total",
        "Manifest fetches passed through unmodified, by reason (too_large, not_manifest, unreadable)",
        &["reason"]
    )
    .expect("metric registers once"),
}
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_index_their_own_position() {
        for (i, kind) in KindLabel::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i);
        }
        for (i, outcome) in OutcomeLabel::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, i);
        }
        assert_eq!(KindLabel::of(None).as_str(), "invalid");
        assert_eq!(KindLabel::of(Some(RouteKind::Vod)).as_str(), "vod");
    }
}
