//! The admin API source: polls the admin's snapshot endpoint (conditional GET with ETag), and
//! fetches at once on `POST /admin/refresh`. Every failure keeps the current snapshot; failures
//! back off with jitter; accepted snapshots are persisted for the next start.

use super::{accept, persist, RefreshOutcome, RefreshReceiver};
use crate::config::AdminApiConfig;
use crate::settings::SharedSettings;
use crate::snapshot::Snapshot;
use crate::state::{unix_now, RefusedSummary, RouterState};
pub use crate::vocab::error_chain;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// First retry delay after a failure; doubles per consecutive failure up to the configured cap.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The wait before retry number `failures` (1-based): exponential, capped, with jitter in
/// [50%, 100%] so a fleet of routers does not retry in step.
pub fn backoff(failures: u32, max: Duration, random_unit: f64) -> Duration {
    let exp = FIRST_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    exp.min(max)
        .mul_f64(0.5 + 0.5 * random_unit.clamp(0.0, 1.0))
}

/// A refused snapshot: polls ask "anything newer than this?" instead of downloading it again,
/// and a refusal repeated at every poll is logged once.
#[derive(Debug, Clone)]
struct Refusal {
    etag: Option<String>,
    version: Option<String>,
    reasons: Vec<String>,
}

/// How a fetch conditions its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// A timer poll: nothing newer than what was last accepted or refused.
    Poll,
    /// A requested refresh (push, SIGHUP): nothing newer than what is in service, so a refused
    /// snapshot is judged again (under a guard setting that may have changed).
    Request,
    /// A forced refresh: always download.
    None,
}

/// A fetched body that is new (not a 304).
struct Fetched {
    body: Vec<u8>,
    etag: Option<String>,
}

pub struct AdminApiSource {
    settings: SharedSettings,
    client: reqwest::Client,
    state: Arc<RouterState>,
    etag: Mutex<Option<String>>,
    refresh: Mutex<Option<RefreshReceiver>>,
    /// The last snapshot the guard refused, until one is accepted.
    refused: Mutex<Option<Refusal>>,
}

impl AdminApiSource {
    pub fn new(
        settings: SharedSettings,
        state: Arc<RouterState>,
        refresh: RefreshReceiver,
    ) -> Result<AdminApiSource, reqwest::Error> {
        // Timeouts are set per request from the settings in force, so a reload changes them.
        let client = reqwest::Client::builder()
            .user_agent(concat!("cti-kaltura/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let state_dir = settings.load().config.routing.state_dir.clone();
        let etag = state_dir.as_deref().and_then(persist::read_etag);
        Ok(AdminApiSource {
            settings,
            client,
            state,
            etag: Mutex::new(etag),
            refresh: Mutex::new(Some(refresh)),
            refused: Mutex::new(None),
        })
    }

    /// The persisted snapshot from `state_dir`, if there is a readable one.
    pub fn load_persisted(state_dir: &std::path::Path) -> Option<Snapshot> {
        let path = persist::snapshot_path(state_dir);
        match crate::sources::file::load_file(&path) {
            Ok(snapshot) => Some(snapshot),
            Err(crate::sources::file::FileError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                None
            }
            Err(e) => {
                log::error!("persisted snapshot not usable: {e}");
                None
            }
        }
    }

    /// The ETag a fetch sends in `If-None-Match`, and whether it is a refused snapshot's.
    /// Nothing while no snapshot is in service: a 304 could not give the router one.
    fn condition_etag(&self, condition: Condition) -> Option<(String, bool)> {
        self.state.snapshot()?;
        let accepted = || self.etag.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match condition {
            Condition::None => None,
            Condition::Request => accepted().map(|e| (e, false)),
            Condition::Poll => {
                let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
                match refused.as_ref().and_then(|r| r.etag.clone()) {
                    Some(etag) => Some((etag, true)),
                    None => accepted().map(|e| (e, false)),
                }
            }
        }
    }

    /// One GET, conditional on `etag`. `Ok(None)` is a 304.
    async fn fetch(
        &self,
        api: &AdminApiConfig,
        etag: Option<&str>,
    ) -> Result<Option<Fetched>, String> {
        let mut request = self.client.get(&api.url).timeout(api.timeout);
        if let Some(token) = &api.token {
            request = request.bearer_auth(token);
        }
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let mut response = request.send().await.map_err(|e| error_chain(&e))?;
        match response.status() {
            StatusCode::NOT_MODIFIED => return Ok(None),
            StatusCode::OK => {}
            other => return Err(format!("HTTP {other}")),
        }
        let cap = api.max_body_bytes;
        if response.content_length().is_some_and(|len| len > cap) {
            return Err(format!(
                "body of {} bytes is over max_body_bytes {cap}",
                response.content_length().unwrap_or(0)
            ));
        }
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading body: {}", error_chain(&e)))?
        {
            if body.len() as u64 + chunk.len() as u64 > cap {
                return Err(format!("body is over max_body_bytes {cap}"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(Fetched { body, etag }))
    }

    /// Fetches, then accepts through the one accept path (compile, guard, persist, publish).
    /// `force` skips the guard and the conditional request; `condition` says what a 304 is
    /// measured against.
    pub async fn refresh(&self, force: bool, condition: Condition) -> RefreshOutcome {
        let settings = self.settings.current();
        let routing = &settings.config.routing;
        let Some(api) = routing.admin_api.as_ref() else {
            return RefreshOutcome::Failed {
                reason: "no admin API configured".into(),
            };
        };
        let source = api.url.as_str();
        let condition = if force { Condition::None } else { condition };
        let sent = self.condition_etag(condition);
        let fetched = match self
            .fetch(api, sent.as_ref().map(|(e, _)| e.as_str()))
            .await
        {
            Ok(Some(fetched)) => fetched,
            Ok(None) if sent.as_ref().is_some_and(|(_, refused)| *refused) => {
                // Still the snapshot the guard refused: nothing new, and not current either.
                let refused = self
                    .refused
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let (version, reasons) =
                    refused.map(|r| (r.version, r.reasons)).unwrap_or_default();
                crate::metrics::METRICS
                    .snapshot_fetches
                    .with_label_values(&["refused"])
                    .inc();
                return RefreshOutcome::Refused { version, reasons };
            }
            Ok(None) => {
                self.state.mark_unchanged();
                let version = self.state.snapshot().and_then(|s| s.info.version.clone());
                return RefreshOutcome::Unchanged { version };
            }
            Err(reason) => {
                self.state.fail(source, &reason);
                return RefreshOutcome::Failed { reason };
            }
        };
        let rules = accept::Rules {
            guard: (!force).then(|| routing.guard.clone()),
            persist_to: routing
                .state_dir
                .clone()
                .map(|dir| (dir, fetched.etag.clone())),
        };
        let outcome = accept::accept(&self.state, fetched.body, source, rules).await;
        match &outcome {
            RefreshOutcome::Refused { version, reasons } => {
                let mut last = self.refused.lock().unwrap_or_else(|e| e.into_inner());
                let repeat = last.as_ref().is_some_and(|r| &r.reasons == reasons);
                *last = Some(Refusal {
                    etag: fetched.etag,
                    version: version.clone(),
                    reasons: reasons.clone(),
                });
                drop(last);
                let summary = RefusedSummary {
                    version: version.clone(),
                    source: source.to_string(),
                    at_unix: unix_now(),
                    reasons: reasons.clone(),
                };
                self.state.refuse(summary, !repeat);
            }
            RefreshOutcome::Accepted { .. } => {
                *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = None;
                *self.etag.lock().unwrap_or_else(|e| e.into_inner()) = fetched.etag;
            }
            RefreshOutcome::Unchanged { .. } | RefreshOutcome::Failed { .. } => {}
        }
        outcome
    }
}

#[async_trait]
impl BackgroundService for AdminApiSource {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut refresh = self
            .refresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let mut failures: u32 = 0;
        // The first fetch runs at once: a persisted snapshot may already be serving.
        let mut next_fetch = Instant::now();
        loop {
            let outcome = tokio::select! {
                _ = shutdown.changed() => return,
                Some(request) = super::next_request(&mut refresh) => {
                    log::info!("refresh requested{}", if request.force { " (force)" } else { "" });
                    let outcome = self.refresh(request.force, Condition::Request).await;
                    let _ = request.reply.send(outcome.clone());
                    outcome
                }
                _ = tokio::time::sleep_until(next_fetch) => self.refresh(false, Condition::Poll).await,
            };
            if matches!(outcome, RefreshOutcome::Failed { .. }) {
                failures = failures.saturating_add(1);
                let max_backoff = self
                    .settings
                    .load()
                    .config
                    .routing
                    .admin_api
                    .as_ref()
                    .map_or(Duration::from_secs(60), |api| api.max_backoff);
                let wait = backoff(failures, max_backoff, fastrand::f64());
                log::info!(
                    "next admin fetch in {:.1} s (failure {failures} in a row)",
                    wait.as_secs_f64()
                );
                next_fetch = Instant::now() + wait;
            } else {
                if failures > 0 {
                    log::info!("admin API reachable again after {failures} failed fetch(es)");
                }
                failures = 0;
                let poll = self
                    .settings
                    .load()
                    .config
                    .routing
                    .admin_api
                    .as_ref()
                    .map_or(Duration::from_secs(5), |api| api.poll_interval);
                next_fetch = Instant::now() + poll;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let cap = Duration::from_secs(60);
        assert_eq!(backoff(1, cap, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(1, cap, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(3, cap, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(7, cap, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(40, cap, 0.0), Duration::from_secs(30));
        assert_eq!(
            backoff(u32::MAX, Duration::from_secs(5), 1.0),
            Duration::from_secs(5)
        );
    }
}
