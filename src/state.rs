//! The state shared by the request path and the background tasks: one snapshot behind one
//! `ArcSwap`. Readers `load()`, a source `store()`s a whole new snapshot.

use crate::health::HealthRegistry;
use crate::metrics::METRICS;
use crate::snapshot::Snapshot;
use crate::stream_health::StreamHealth;
use arc_swap::ArcSwapOption;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// How many quarantine problems are logged one by one per load; the rest are summarised.
const PROBLEMS_LOGGED: usize = 50;

/// A snapshot the guard refused, for `/debug/snapshot`.
#[derive(Debug, Clone)]
pub struct RefusedSummary {
    pub version: Option<String>,
    pub source: String,
    pub at_unix: u64,
    pub reasons: Vec<String>,
}

#[derive(Default)]
pub struct RouterState {
    snapshot: ArcSwapOption<Snapshot>,
    health: HealthRegistry,
    /// Stream health: the stalled-pairs overlay, the hot set, each watched pair.
    streams: StreamHealth,
    last_success_unix: AtomicU64,
    last_refused: Mutex<Option<RefusedSummary>>,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl RouterState {
    pub fn new() -> Arc<RouterState> {
        Arc::new(RouterState::default())
    }

    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.load_full()
    }

    /// The lock-free read used per request.
    #[inline]
    pub fn snapshot_guard(&self) -> arc_swap::Guard<Option<Arc<Snapshot>>> {
        self.snapshot.load()
    }

    /// Health cells and checker records, by server id.
    pub fn health(&self) -> &HealthRegistry {
        &self.health
    }

    /// Stream health (per edge and live stream), beside the snapshot and edge health.
    #[inline]
    pub fn streams(&self) -> &StreamHealth {
        &self.streams
    }

    /// Publishes a new snapshot: requests already in flight finish on the old one. Servers
    /// it shares with the old snapshot keep their health.
    pub fn publish(&self, mut snapshot: Snapshot) {
        self.health.attach(&mut snapshot);
        log_accepted(&snapshot);
        *self.last_refused.lock().unwrap_or_else(|e| e.into_inner()) = None;
        record_metrics(&snapshot);
        self.mark_success();
        self.snapshot.store(Some(Arc::new(snapshot)));
    }

    /// A fetch that found nothing new still proves the data is current.
    pub fn mark_unchanged(&self) {
        METRICS
            .snapshot_fetches
            .with_label_values(&["unchanged"])
            .inc();
        self.mark_success();
    }

    fn mark_success(&self) {
        self.last_success_unix.store(unix_now(), Ordering::Relaxed);
    }

    /// Seconds since the last successful fetch or load (`None` before the first).
    pub fn age_secs(&self) -> Option<u64> {
        match self.last_success_unix.load(Ordering::Relaxed) {
            0 => None,
            at => Some(unix_now().saturating_sub(at)),
        }
    }

    /// Records a failed load or fetch; the current snapshot stays.
    pub fn fail(&self, source: &str, reason: &dyn std::fmt::Display) {
        METRICS.snapshot_fetches.with_label_values(&["error"]).inc();
        log::error!(
            "routing snapshot from {source} not loaded: {reason}; {}",
            self.keeping()
        );
    }

    /// Records a snapshot refused by the blast-radius guard; `log` is false for a repeat.
    pub fn refuse(&self, refused: RefusedSummary, log: bool) {
        METRICS
            .snapshot_fetches
            .with_label_values(&["refused"])
            .inc();
        if log {
            log::error!(
                "routing snapshot version {} from {} refused by the blast-radius guard: {}; {}. \
                 Accept it with POST /admin/refresh?force=true or router.routing.guard.enabled: false",
                refused.version.as_deref().unwrap_or("(none)"),
                refused.source,
                refused.reasons.join("; "),
                self.keeping()
            );
        }
        *self.last_refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(refused);
    }

    pub fn last_refused(&self) -> Option<RefusedSummary> {
        self.last_refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn keeping(&self) -> String {
        match self.snapshot.load().as_deref() {
            Some(s) => format!(
                "keeping snapshot version {}",
                s.info.version.as_deref().unwrap_or("(none)")
            ),
            None => "no snapshot loaded yet: routed requests get 503".to_string(),
        }
    }
}

fn record_metrics(snapshot: &Snapshot) {
    let info = &snapshot.info;
    METRICS.snapshot_fetches.with_label_values(&["ok"]).inc();
    METRICS.snapshot_problems.set(info.problems.len() as i64);
    let loaded = info
        .loaded_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    METRICS.snapshot_loaded_timestamp.set(loaded as i64);
    METRICS.snapshot_version.reset();
    METRICS
        .snapshot_version
        .with_label_values(&[info.version.as_deref().unwrap_or("")])
        .set(1);
    for (kind, count) in info.counts.by_kind() {
        METRICS
            .snapshot_entities
            .with_label_values(&[kind])
            .set(count as i64);
    }
    for problem in info.problems.iter().filter(|p| p.quarantined) {
        METRICS
            .snapshot_quarantined
            .with_label_values(&[problem.entity])
            .inc();
    }
}

fn log_accepted(snapshot: &Snapshot) {
    let info = &snapshot.info;
    let c = &info.counts;
    log::info!(
        "routing snapshot loaded from {}: version {}, {} regions, {} subnets, {} server groups, {} servers, \
         {} channels, {} streams, {} programs, {} records, {} problems",
        info.source,
        info.version.as_deref().unwrap_or("(none)"),
        c.regions,
        c.subnets,
        c.server_groups,
        c.servers,
        c.linear_channels,
        c.tv_streams,
        c.programs,
        c.program_records,
        info.problems.len()
    );
    if c.subnets == 0 || snapshot.eligible_edge_ids().is_empty() {
        log::warn!(
            "routing snapshot from {} has no subnets or no eligible edge: every routed request gets 404",
            info.source
        );
    }
    for problem in info.problems.iter().take(PROBLEMS_LOGGED) {
        log::warn!("routing snapshot from {}: {problem}", info.source);
    }
    if info.problems.len() > PROBLEMS_LOGGED {
        log::warn!(
            "routing snapshot from {}: {} more problems not logged (see GET /debug/snapshot on the management listener)",
            info.source,
            info.problems.len() - PROBLEMS_LOGGED
        );
    }
}
