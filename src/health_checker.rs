//! The active health checker: every interval, GET each checkable edge's health path
//! concurrently, each with its own timeout, and apply hysteresis. Rounds start on a fixed
//! clock whatever the number of dead edges. Also evaluates panic mode per region.

use crate::config::HealthConfig;
use crate::health::HealthRegistry;
use crate::metrics::METRICS;
use crate::settings::SharedSettings;
use crate::snapshot::{Id, ServerType, Snapshot};
use crate::state::RouterState;
use async_trait::async_trait;
use futures_util::future::join_all;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The longest health response body read; a healthy edge answers `OK`.
const MAX_BODY_BYTES: usize = 4096;

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    Ok,
    BadStatus(u16),
    BadBody,
    Timeout,
    Error(String),
}

impl CheckResult {
    pub fn is_ok(&self) -> bool {
        *self == CheckResult::Ok
    }

    /// Bounded metric label.
    pub fn label(&self) -> &'static str {
        match self {
            CheckResult::Ok => "ok",
            CheckResult::BadStatus(_) => "bad_status",
            CheckResult::BadBody => "bad_body",
            CheckResult::Timeout => "timeout",
            CheckResult::Error(_) => "error",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            CheckResult::Ok => "ok".into(),
            CheckResult::BadStatus(status) => format!("HTTP status {status}"),
            CheckResult::BadBody => "unexpected body".into(),
            CheckResult::Timeout => "timed out".into(),
            CheckResult::Error(e) => e.clone(),
        }
    }
}

/// One edge to check this round.
struct Target {
    id: Id,
    label: String,
    url: Option<String>,
}

/// Whether the active checker checks `server` (and so can bring it back up after failures).
pub fn is_checked(server: &crate::snapshot::Server) -> bool {
    server.server_type == ServerType::Edge
        && server.active
        && server.healthcheck_enabled
        && server
            .healthcheck_path
            .as_deref()
            .is_some_and(|p| !p.trim().is_empty())
}

/// Edges with `healthcheck_enabled` that routing could use: EDGE and ACTIVE.
fn targets(snapshot: &Snapshot) -> Vec<Target> {
    snapshot
        .servers
        .iter()
        .filter(|s| s.server_type == ServerType::Edge && s.active && s.healthcheck_enabled)
        .map(|s| Target {
            id: s.id,
            label: s.domain_name.to_string(),
            url: s
                .healthcheck_path
                .as_deref()
                .filter(|p| !p.trim().is_empty())
                .map(|path| {
                    crate::routing::location::build_location(&s.live_base, path.trim(), false, None)
                }),
        })
        .collect()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub struct HealthChecker {
    settings: SharedSettings,
    state: Arc<RouterState>,
    /// The HTTP client and the settings it was built with (rebuilt when they change).
    client: Mutex<Option<(HealthConfig, reqwest::Client)>>,
    /// Servers whose missing health-check path was already reported.
    reported_no_path: Mutex<BTreeSet<Id>>,
    /// Regions in panic mode (or, with panic mode off, without a healthy edge) last round.
    troubled_regions: Mutex<BTreeSet<Id>>,
    /// Label values of `cti_kaltura_edge_up` last set, to drop servers that went away.
    labelled: Mutex<BTreeSet<String>>,
}

fn build_client(config: &HealthConfig) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(!config.tls_verify)
        .connect_timeout(config.timeout)
        .timeout(config.timeout)
        .pool_max_idle_per_host(1)
        .user_agent(concat!("cti-kaltura-health/", env!("CARGO_PKG_VERSION")))
        .build()
}

impl HealthChecker {
    pub fn new(settings: SharedSettings, state: Arc<RouterState>) -> HealthChecker {
        HealthChecker {
            settings,
            state,
            client: Mutex::default(),
            reported_no_path: Mutex::default(),
            troubled_regions: Mutex::default(),
            labelled: Mutex::default(),
        }
    }

    /// The client for `config`, built anew when the health settings changed.
    fn client(&self, config: &HealthConfig) -> Option<reqwest::Client> {
        let mut cached = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((built_for, client)) = cached.as_ref() {
            if built_for == config {
                return Some(client.clone());
            }
        }
        match build_client(config) {
            Ok(client) => {
                *cached = Some((config.clone(), client.clone()));
                Some(client)
            }
            Err(e) => {
                log::error!("edge health checks skipped: cannot build their HTTP client: {e}");
                None
            }
        }
    }

    async fn check(
        &self,
        client: &reqwest::Client,
        config: &HealthConfig,
        url: &str,
    ) -> CheckResult {
        let attempt = async {
            let response = client.get(url).send().await?;
            let status = response.status().as_u16();
            if status != config.expected_status {
                return Ok::<_, reqwest::Error>(CheckResult::BadStatus(status));
            }
            let Some(expected) = &config.expected_body else {
                return Ok(CheckResult::Ok);
            };
            if response
                .content_length()
                .is_some_and(|len| len as usize > MAX_BODY_BYTES)
            {
                return Ok(CheckResult::BadBody);
            }
            let body = response.bytes().await?;
            Ok(if body.as_ref() == expected.as_bytes() {
                CheckResult::Ok
            } else {
                CheckResult::BadBody
            })
        };
        match tokio::time::timeout(config.timeout, attempt).await {
            Err(_) => CheckResult::Timeout,
            Ok(Ok(result)) => result,
            Ok(Err(e)) if e.is_timeout() => CheckResult::Timeout,
            Ok(Err(e)) => CheckResult::Error(crate::vocab::error_chain(&e)),
        }
    }

    /// With checks switched off by a reload, every edge counts as up again.
    fn stand_down(&self) {
        let Some(snapshot) = self.state.snapshot() else {
            return;
        };
        for server in &snapshot.servers {
            if !server.health.set_up(true) {
                log::info!(
                    "edge {} counts as up: health checks are off",
                    server.domain_name
                );
            }
            self.state.health().update_record(server.id, |r| {
                r.state = crate::health::hysteresis::Hysteresis::new(true)
            });
        }
        METRICS.panic_regions.set(0);
    }

    /// One round over every target, concurrently.
    pub async fn round(&self, config: &HealthConfig) {
        let Some(client) = self.client(config) else {
            return;
        };
        let Some(snapshot) = self.state.snapshot() else {
            return;
        };
        let registry = self.state.health();
        let targets = targets(&snapshot);
        let client = &client;
        let checks = targets.iter().map(|t| async move {
            let started = Instant::now();
            let result = match &t.url {
                Some(url) => Some(self.check(client, config, url).await),
                None => None,
            };
            (t, result, started.elapsed())
        });
        let results = join_all(checks).await;
        let now_ms = unix_ms();
        for (target, result, took) in results {
            match result {
                Some(result) => {
                    self.apply(config, registry, &snapshot, target, result, took, now_ms)
                }
                None => self.report_missing_path(registry, target),
            }
        }
        self.update_labels(&targets);
        self.release_unchecked(registry, &snapshot);
        self.evaluate_regions(config, &snapshot);
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        config: &HealthConfig,
        registry: &HealthRegistry,
        snapshot: &Snapshot,
        target: &Target,
        result: CheckResult,
        took: Duration,
        now_ms: u64,
    ) {
        METRICS
            .health_checks
            .with_label_values(&[&target.label, result.label()])
            .inc();
        let (rise, fall) = (config.rise, config.fall);
        let transition = registry.update_record(target.id, |record| {
            record.last_result = Some(result.describe());
            record.last_check_unix_ms = Some(now_ms);
            record.last_duration_ms = Some(took.as_millis() as u64);
            record.state.observe(result.is_ok(), rise, fall)
        });
        let Some(server) = snapshot.servers.iter().find(|s| s.id == target.id) else {
            return;
        };
        if let Some(up) = transition {
            server.health.set_up(up);
            if up {
                log::info!(
                    "edge {} (id {}) is UP again after {rise} good checks",
                    target.label,
                    target.id
                );
            } else {
                log::warn!(
                    "edge {} (id {}) is DOWN after {fall} failed checks: {}",
                    target.label,
                    target.id,
                    result.describe()
                );
            }
        }
        METRICS
            .edge_up
            .with_label_values(&[&target.label])
            .set(server.is_up() as i64);
    }

    /// A server no longer checked (health check switched off for it, or its path removed)
    /// counts as up again: nothing else would ever bring it back.
    fn release_unchecked(&self, registry: &HealthRegistry, snapshot: &Snapshot) {
        for server in snapshot.servers.iter().filter(|s| !is_checked(s)) {
            if !server.health.set_up(true) {
                registry.update_record(server.id, |r| {
                    r.state = crate::health::hysteresis::Hysteresis::new(true)
                });
                log::info!(
                    "edge {} (id {}) is no longer health-checked: counted as up",
                    server.domain_name,
                    server.id
                );
            }
        }
    }

    fn report_missing_path(&self, registry: &HealthRegistry, target: &Target) {
        METRICS
            .health_checks
            .with_label_values(&[&target.label, "no_path"])
            .inc();
        registry.update_record(target.id, |record| {
            record.last_result =
                Some("not checked: healthcheck_enabled but no healthcheck_path".into());
        });
        if self
            .reported_no_path
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(target.id)
        {
            log::warn!(
                "edge {} (id {}) has healthcheck_enabled but no healthcheck_path: not checked, counted as up",
                target.label,
                target.id
            );
        }
    }

    fn update_labels(&self, targets: &[Target]) {
        let current: BTreeSet<String> = targets.iter().map(|t| t.label.clone()).collect();
        let mut labelled = self.labelled.lock().unwrap_or_else(|e| e.into_inner());
        for gone in labelled.difference(&current) {
            let _ = METRICS.edge_up.remove_label_values(&[gone]);
        }
        *labelled = current;
    }

    /// Logs regions entering or leaving panic (once each way) and sets the gauge.
    fn evaluate_regions(&self, config: &HealthConfig, snapshot: &Snapshot) {
        let troubled: BTreeSet<Id> = snapshot
            .regions
            .iter()
            .filter(|r| {
                !r.edges.is_empty()
                    && r.edges
                        .edges()
                        .iter()
                        .all(|&i| !snapshot.servers[i as usize].is_up())
            })
            .map(|r| r.id)
            .collect();
        let mut previous = self
            .troubled_regions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let what = if config.panic_mode {
            "PANIC MODE: routing among its unhealthy edges"
        } else {
            "no healthy edge: its clients fall back to less specific subnets"
        };
        for id in troubled.difference(&previous) {
            let name = snapshot
                .regions
                .iter()
                .find(|r| r.id == *id)
                .map_or("", |r| &*r.name);
            log::error!(
                "region {id} ({name}): every admin-eligible edge failed its health checks; {what}"
            );
        }
        for id in previous.difference(&troubled) {
            log::info!("region {id}: healthy edges again, panic over");
        }
        let panicking = if config.panic_mode { troubled.len() } else { 0 };
        METRICS.panic_regions.set(panicking as i64);
        *previous = troubled;
    }
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut every = self.settings.load().config.health.interval;
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut was_enabled = true;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = interval.tick() => {
                    let config = self.settings.load().config.health.clone();
                    if config.enabled {
                        self.round(&config).await;
                    } else if was_enabled {
                        self.stand_down();
                    }
                    was_enabled = config.enabled;
                    if config.interval != every {
                        // A reload changed the interval: restart the clock on the new one.
                        every = config.interval;
                        interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                    }
                }
            }
        }
    }
}
