//! The state shared by the request path and the background tasks: one snapshot behind one
//! `ArcSwap`. Readers `load()`, the loader `store()`s a whole new snapshot.

use crate::metrics::METRICS;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwapOption;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// How many quarantine problems are logged one by one per load; the rest are summarised.
const PROBLEMS_LOGGED: usize = 50;

#[derive(Default)]
pub struct RouterState {
    snapshot: ArcSwapOption<Snapshot>,
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

    /// Publishes a new snapshot: requests already in flight finish on the old one.
    pub fn publish(&self, snapshot: Snapshot) {
        log_accepted(&snapshot);
        METRICS
            .snapshot_loads
            .with_label_values(&["accepted"])
            .inc();
        METRICS
            .snapshot_problems
            .set(snapshot.info.problems.len() as i64);
        let loaded = snapshot
            .info
            .loaded_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        METRICS.snapshot_loaded_timestamp.set(loaded as i64);
        self.snapshot.store(Some(Arc::new(snapshot)));
    }

    /// Records a refused load; the current snapshot stays.
    pub fn refuse(&self, source: &str, reason: &dyn std::fmt::Display) {
        METRICS
            .snapshot_loads
            .with_label_values(&["rejected"])
            .inc();
        let keeping = match self.snapshot.load().as_deref() {
            Some(s) => format!(
                "keeping snapshot version {}",
                s.info.version.as_deref().unwrap_or("(none)")
            ),
            None => "no snapshot loaded yet: answering 503".to_string(),
        };
        log::error!("routing snapshot from {source} rejected: {reason}; {keeping}");
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
    for problem in info.problems.iter().take(PROBLEMS_LOGGED) {
        log::warn!("routing snapshot from {}: {problem}", info.source);
    }
    if info.problems.len() > PROBLEMS_LOGGED {
        log::warn!(
            "routing snapshot from {}: {} more problems not logged (see GET /snapshot on the management listener)",
            info.source,
            info.problems.len() - PROBLEMS_LOGGED
        );
    }
}
