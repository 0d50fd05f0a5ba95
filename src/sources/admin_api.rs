//! The admin API source: polls the admin's snapshot endpoint (conditional GET with ETag), and
//! fetches at once on `POST /admin/refresh`. Every failure keeps the current snapshot; failures
//! back off with jitter; accepted snapshots are persisted for the next start.

use super::{guard, persist, RefreshOutcome, RefreshReceiver};
use crate::config::AdminApiConfig;
use crate::settings::SharedSettings;
use crate::snapshot::{load_snapshot, Snapshot};
use crate::state::{unix_now, RefusedSummary, RouterState};
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
    /// The reasons of the last refusal, so a snapshot refused at every poll is logged once.
    last_refusal: Mutex<Option<Vec<String>>>,
}

/// Renders an error with its causes (`error sending request: connection refused`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
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
            last_refusal: Mutex::new(None),
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

    /// One conditional GET. `Ok(None)` is a 304.
    async fn fetch(
        &self,
        api: &AdminApiConfig,
        conditional: bool,
    ) -> Result<Option<Fetched>, String> {
        let mut request = self.client.get(&api.url).timeout(api.timeout);
        if let Some(token) = &api.token {
            request = request.bearer_auth(token);
        }
        let etag = self.etag.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let (true, Some(etag)) = (conditional, etag) {
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

    /// Fetches, validates, guards, persists and publishes. `force` skips the guard and the
    /// conditional request.
    pub async fn refresh(&self, force: bool) -> RefreshOutcome {
        let settings = self.settings.current();
        let routing = &settings.config.routing;
        let Some(api) = routing.admin_api.as_ref() else {
            return RefreshOutcome::Failed {
                reason: "no admin API configured".into(),
            };
        };
        let source = api.url.as_str();
        let fetched = match self.fetch(api, !force).await {
            Ok(Some(fetched)) => fetched,
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
        let url = api.url.clone();
        let (snapshot, fetched) = match tokio::task::spawn_blocking(move || {
            (load_snapshot(&fetched.body, &url), fetched)
        })
        .await
        {
            Ok((Ok(snapshot), fetched)) => (snapshot, fetched),
            Ok((Err(e), _)) => {
                self.state.fail(source, &e);
                return RefreshOutcome::Failed {
                    reason: e.to_string(),
                };
            }
            Err(e) => {
                let reason = format!("compiling the snapshot failed: {e}");
                self.state.fail(source, &reason);
                return RefreshOutcome::Failed { reason };
            }
        };
        let version = snapshot.info.version.clone();
        if let (false, Some(current)) = (force, self.state.snapshot()) {
            if let Err(reasons) = guard::check(&current, &snapshot, &routing.guard) {
                let mut last = self.last_refusal.lock().unwrap_or_else(|e| e.into_inner());
                let repeat = last.as_ref() == Some(&reasons);
                *last = Some(reasons.clone());
                drop(last);
                let summary = RefusedSummary {
                    version: version.clone(),
                    source: source.to_string(),
                    at_unix: unix_now(),
                    reasons: reasons.clone(),
                };
                self.state.refuse(summary, !repeat);
                // Polls then ask "anything newer than the refused one?" instead of downloading
                // it again every interval; a forced refresh fetches unconditionally.
                *self.etag.lock().unwrap_or_else(|e| e.into_inner()) = fetched.etag;
                return RefreshOutcome::Refused { version, reasons };
            }
        }
        *self.last_refusal.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let Some(dir) = &routing.state_dir {
            if let Err(e) = persist::save(dir, &fetched.body, fetched.etag.as_deref()) {
                log::error!("cannot persist the snapshot to {}: {e} (routing goes on; a restart during an admin outage would start from an older state)", dir.display());
            }
        }
        *self.etag.lock().unwrap_or_else(|e| e.into_inner()) = fetched.etag;
        let problems = snapshot.info.problems.len();
        self.state.publish(snapshot);
        RefreshOutcome::Accepted { version, problems }
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
                    let outcome = self.refresh(request.force).await;
                    let _ = request.reply.send(outcome.clone());
                    outcome
                }
                _ = tokio::time::sleep_until(next_fetch) => self.refresh(false).await,
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
