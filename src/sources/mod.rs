//! Where routing snapshots come from: a file, or the admin API. Each source runs as a
//! background service and also answers refresh requests from the management listener.

pub mod accept;
pub mod admin_api;
pub mod file;
pub mod guard;
pub mod persist;

use tokio::sync::{mpsc, oneshot};

/// What one fetch or load came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// A new snapshot is in service.
    Accepted {
        version: Option<String>,
        problems: usize,
    },
    /// The source had nothing new (HTTP 304).
    Unchanged { version: Option<String> },
    /// The blast-radius guard refused it; the old snapshot stays.
    Refused {
        version: Option<String>,
        reasons: Vec<String>,
    },
    /// The fetch or load failed; the old snapshot stays.
    Failed { reason: String },
}

impl RefreshOutcome {
    /// The management endpoint's status for this outcome.
    pub fn http_status(&self) -> u16 {
        match self {
            RefreshOutcome::Accepted { .. } | RefreshOutcome::Unchanged { .. } => 200,
            RefreshOutcome::Refused { .. } => 409,
            RefreshOutcome::Failed { .. } => 502,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            RefreshOutcome::Accepted { version, problems } => {
                json!({"outcome": "accepted", "version": version, "problems": problems})
            }
            RefreshOutcome::Unchanged { version } => {
                json!({"outcome": "unchanged", "version": version})
            }
            RefreshOutcome::Refused { version, reasons } => {
                json!({"outcome": "refused", "version": version, "reasons": reasons})
            }
            RefreshOutcome::Failed { reason } => json!({"outcome": "failed", "reason": reason}),
        }
    }
}

/// A request to fetch now; `force` bypasses the blast-radius guard.
#[derive(Debug)]
pub struct RefreshRequest {
    pub force: bool,
    pub reply: oneshot::Sender<RefreshOutcome>,
}

pub type RefreshSender = mpsc::Sender<RefreshRequest>;
pub type RefreshReceiver = mpsc::Receiver<RefreshRequest>;

/// The channel between the management listener and the active source.
pub fn refresh_channel() -> (RefreshSender, RefreshReceiver) {
    mpsc::channel(16)
}

/// The next refresh request, or never when there is no receiver (lets a `select!` branch
/// wait on an optional channel).
pub async fn next_request(receiver: &mut Option<RefreshReceiver>) -> Option<RefreshRequest> {
    match receiver.as_mut() {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}
