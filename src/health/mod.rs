//! Edge health as an overlay on the routing snapshot. The snapshot is immutable but for one
//! thing: each server holds an `Arc<HealthCell>` (an atomic up/down flag, defined in
//! `snapshot`). This registry owns those cells by server id, with each server's hysteresis; when
//! a snapshot is published, `attach` gives it the cells of the servers it still has, so a new
//! snapshot keeps the health already known and a health change never rebuilds routing data.
//! The checks that flip the cells run in `health_checker` (and, passively, in the proxy).

pub mod hysteresis;

pub use crate::snapshot::HealthCell;

use crate::snapshot::{Id, Snapshot};
use hysteresis::Hysteresis;
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex};

/// What the checker last saw of one edge, for `/debug/edges`.
#[derive(Debug, Clone)]
pub struct EdgeRecord {
    pub state: Hysteresis,
    pub last_result: Option<String>,
    pub last_check_unix_ms: Option<u64>,
    pub last_duration_ms: Option<u64>,
}

impl Default for EdgeRecord {
    fn default() -> Self {
        EdgeRecord {
            state: Hysteresis::new(true),
            last_result: None,
            last_check_unix_ms: None,
            last_duration_ms: None,
        }
    }
}

/// Health cells and checker records by server id; outlives any one snapshot.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    cells: Mutex<FxHashMap<Id, Arc<HealthCell>>>,
    records: Mutex<FxHashMap<Id, EdgeRecord>>,
}

impl HealthRegistry {
    /// Points every server of a new snapshot at its health cell (existing servers keep theirs;
    /// new ones start up), and forgets servers the snapshot no longer has.
    pub fn attach(&self, snapshot: &mut Snapshot) {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let mut fresh = FxHashMap::default();
        for server in &mut snapshot.servers {
            let cell = cells.remove(&server.id).unwrap_or_default();
            server.health = cell.clone();
            fresh.insert(server.id, cell);
        }
        *cells = fresh;
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.retain(|id, _| cells.contains_key(id));
    }

    /// The checker's record of `id` (default when never checked).
    pub fn record(&self, id: Id) -> EdgeRecord {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
            .unwrap_or_default()
    }

    /// Records one observation of `id` (an active check or a proxied connection); returns the
    /// new state when it changed. The caller flips the cell.
    pub fn observe(&self, id: Id, success: bool, rise: u32, fall: u32) -> Option<bool> {
        self.update_record(id, |record| record.state.observe(success, rise, fall))
    }

    /// Applies `f` to the record of `id` under the lock.
    pub fn update_record<T>(&self, id: Id, f: impl FnOnce(&mut EdgeRecord) -> T) -> T {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        f(records.entry(id).or_default())
    }
}
