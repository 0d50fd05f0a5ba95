//! The one way a routing document goes into service, whichever source brought it: compiled off
//! the runtime's workers, checked by the blast-radius guard (admin source), persisted (admin
//! source with a `state_dir`), published. A document that fails any step leaves the snapshot
//! in service.

use super::{guard, persist, RefreshOutcome};
use crate::config::GuardConfig;
use crate::snapshot::load_snapshot;
use crate::state::RouterState;
use std::path::PathBuf;
use std::sync::Arc;

/// What a source asks of accepting its document.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Refuse a document that would remove too much of the snapshot in service.
    pub guard: Option<GuardConfig>,
    /// Keep the accepted document (and its ETag) in this directory.
    pub persist_to: Option<(PathBuf, Option<String>)>,
}

/// Compiles `body` (from `source`, for logs), applies `rules` and publishes, on the calling
/// thread. `Failed` and `Refused` leave the snapshot in service; a failure is recorded in the
/// state, a refusal is the caller's to record (it knows whether it is a repeat).
pub fn accept_now(state: &RouterState, body: &[u8], source: &str, rules: &Rules) -> RefreshOutcome {
    let snapshot = match load_snapshot(body, source) {
        Ok(snapshot) => snapshot,
        Err(e) => {
            state.fail(source, &e);
            return RefreshOutcome::Failed {
                reason: e.to_string(),
            };
        }
    };
    let version = snapshot.info.version.clone();
    if let (Some(guard), Some(current)) = (&rules.guard, state.snapshot()) {
        if let Err(reasons) = guard::check(&current, &snapshot, guard) {
            return RefreshOutcome::Refused { version, reasons };
        }
    }
    if let Some((dir, etag)) = &rules.persist_to {
        if let Err(e) = persist::save(dir, body, etag.as_deref()) {
            log::error!("cannot persist the snapshot to {}: {e} (routing goes on; a restart during an admin outage would start from an older state)", dir.display());
        }
    }
    let problems = snapshot.info.problems.len();
    state.publish(snapshot);
    RefreshOutcome::Accepted { version, problems }
}

/// [`accept_now`] on the blocking pool, so compiling a large document never stalls requests.
pub async fn accept(
    state: &Arc<RouterState>,
    body: Vec<u8>,
    source: &str,
    rules: Rules,
) -> RefreshOutcome {
    let (task_state, task_source) = (Arc::clone(state), source.to_string());
    let task =
        tokio::task::spawn_blocking(move || accept_now(&task_state, &body, &task_source, &rules));
    task.await.unwrap_or_else(|e| {
        let reason = format!("compiling the snapshot failed: {e}");
        state.fail(source, &reason);
        RefreshOutcome::Failed { reason }
    })
}

/// Reads a snapshot file and accepts it (no guard, nothing persisted), on the calling thread.
pub fn accept_file_now(state: &RouterState, path: &std::path::Path) -> RefreshOutcome {
    let shown = path.display().to_string();
    match std::fs::read(path) {
        Ok(body) => accept_now(state, &body, &shown, &Rules::default()),
        Err(e) => {
            let reason = format!("cannot read {shown}: {e}");
            state.fail(&shown, &reason);
            RefreshOutcome::Failed { reason }
        }
    }
}

/// [`accept_file_now`] on the blocking pool.
pub async fn accept_file(state: &Arc<RouterState>, path: PathBuf) -> RefreshOutcome {
    let task_state = Arc::clone(state);
    let shown = path.display().to_string();
    let task = tokio::task::spawn_blocking(move || accept_file_now(&task_state, &path));
    task.await.unwrap_or_else(|e| {
        let reason = format!("loading the snapshot file failed: {e}");
        state.fail(&shown, &reason);
        RefreshOutcome::Failed { reason }
    })
}
