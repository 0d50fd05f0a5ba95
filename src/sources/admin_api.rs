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

/// The header an API that long-polls sends with its snapshot answers: the longest wait (in
/// seconds) it grants to `Prefer: wait=N`.
pub const LONG_POLL_HEADER: &str = "cti-long-poll-max-wait";

/// A fetch that came back (or failed), not yet accepted.
pub struct Fetch {
    force: bool,
    sent: Option<(String, bool)>,
    result: Result<Option<Fetched>, String>,
    /// The wait asked of a long-polling API, if this fetch was a long-poll.
    pub long_poll: Option<Duration>,
}

/// The wait a poll asks for: the configured one, within what the API grants; none when either
/// is off or unknown, or when there is no ETag to wait on.
pub fn long_poll_wait(
    configured: Duration,
    granted: Option<Duration>,
    has_etag: bool,
) -> Option<Duration> {
    let wait = configured.min(granted?);
    (has_etag && !wait.is_zero()).then_some(wait)
}

pub struct AdminApiSource {
    settings: SharedSettings,
    client: reqwest::Client,
    state: Arc<RouterState>,
    etag: Mutex<Option<String>>,
    refresh: Mutex<Option<RefreshReceiver>>,
    /// The last snapshot the guard refused, until one is accepted.
    refused: Mutex<Option<Refusal>>,
    /// The longest wait the API granted in its last answer (`Cti-Long-Poll-Max-Wait`); none
    /// for an API that does not long-poll.
    long_poll_granted: Mutex<Option<Duration>>,
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
            long_poll_granted: Mutex::new(None),
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
        long_poll: Option<Duration>,
    ) -> Result<Option<Fetched>, String> {
        let mut request = self
            .client
            .get(&api.url)
            .timeout(api.timeout + long_poll.unwrap_or_default());
        if let Some(token) = &api.token {
            request = request.bearer_auth(token);
        }
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(wait) = long_poll {
            request = request.header("prefer", format!("wait={}", wait.as_secs()));
        }
        let mut response = request.send().await.map_err(|e| error_chain(&e))?;
        let granted = response
            .headers()
            .get(LONG_POLL_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        *self
            .long_poll_granted
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = granted;
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
        let fetch = self.fetch_only(force, condition).await;
        self.accept_fetched(fetch).await
    }

    /// The request half of [`Self::refresh`]: it changes no state but the long-poll grant, so
    /// dropping it (a push refresh arriving during a long-poll) is harmless.
    pub async fn fetch_only(&self, force: bool, condition: Condition) -> Fetch {
        let settings = self.settings.current();
        let Some(api) = settings.config.routing.admin_api.as_ref() else {
            return Fetch {
                force,
                sent: None,
                result: Err("no admin API configured".into()),
                long_poll: None,
            };
        };
        let condition = if force { Condition::None } else { condition };
        let sent = self.condition_etag(condition);
        let granted = *self
            .long_poll_granted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let long_poll = if condition == Condition::Poll {
            long_poll_wait(api.long_poll_wait, granted, sent.is_some())
        } else {
            None
        };
        let result = self
            .fetch(api, sent.as_ref().map(|(e, _)| e.as_str()), long_poll)
            .await;
        Fetch {
            force,
            sent,
            result,
            long_poll,
        }
    }

    /// Whether the next timer poll would be a long-poll (the API offers it, it is not turned
    /// off, and there is an ETag to wait on).
    pub fn long_polls(&self) -> bool {
        let granted = *self
            .long_poll_granted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let configured = self
            .settings
            .load()
            .config
            .routing
            .admin_api
            .as_ref()
            .map_or(Duration::ZERO, |api| api.long_poll_wait);
        let has_etag = self.condition_etag(Condition::Poll).is_some();
        long_poll_wait(configured, granted, has_etag).is_some()
    }

    /// The accepting half of [`Self::refresh`]: compile, guard, persist, publish.
    pub async fn accept_fetched(&self, fetch: Fetch) -> RefreshOutcome {
        let settings = self.settings.current();
        let routing = &settings.config.routing;
        let Some(api) = routing.admin_api.as_ref() else {
            return RefreshOutcome::Failed {
                reason: "no admin API configured".into(),
            };
        };
        let source = api.url.as_str();
        let Fetch {
            force,
            sent,
            result,
            ..
        } = fetch;
        let fetched = match result {
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
            let mut long_polled = None;
            let started = Instant::now();
            let outcome = tokio::select! {
                _ = shutdown.changed() => return,
                Some(request) = super::next_request(&mut refresh) => {
                    log::info!("refresh requested{}", if request.force { " (force)" } else { "" });
                    let outcome = self.refresh(request.force, Condition::Request).await;
                    let _ = request.reply.send(outcome.clone());
                    outcome
                }
                // A refresh request or shutdown may drop a poll (a long-poll waits long).
                fetch = async {
                    tokio::time::sleep_until(next_fetch).await;
                    self.fetch_only(false, Condition::Poll).await
                } => {
                    long_polled = fetch.long_poll;
                    self.accept_fetched(fetch).await
                }
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
                // Long-poll: ask again at once, unless the last one came back early without
                // news (an intermediary that does not hold requests): then poll as usual.
                let returned_early = long_polled.is_some_and(|wait| {
                    matches!(outcome, RefreshOutcome::Unchanged { .. })
                        && started.elapsed() < wait / 2
                });
                if self.long_polls() && !returned_early {
                    next_fetch = Instant::now();
                    continue;
                }
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
    fn a_poll_long_polls_only_when_both_sides_agree_and_there_is_an_etag() {
        let s = Duration::from_secs;
        assert_eq!(long_poll_wait(s(25), Some(s(60)), true), Some(s(25)));
        assert_eq!(long_poll_wait(s(25), Some(s(10)), true), Some(s(10)));
        assert_eq!(long_poll_wait(s(25), None, true), None);
        assert_eq!(long_poll_wait(s(0), Some(s(60)), true), None);
        assert_eq!(long_poll_wait(s(25), Some(s(0)), true), None);
        assert_eq!(long_poll_wait(s(25), Some(s(60)), false), None);
    }

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
