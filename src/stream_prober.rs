//! The stream prober: off the request path, every tick (50 ms) it spends the probe budget on
//! the current round — the live streams of the hot set, each on every healthy eligible edge of
//! the regions players asked for it in — fetching each copy's playlist (or MPD) once, bounded
//! in time and bytes, and feeds what it saw to stream health (`crate::stream_health`).

use crate::config::StreamHealthConfig;
use crate::metrics::STREAM_METRICS;
use crate::settings::SharedSettings;
use crate::snapshot::{Id, Snapshot};
use crate::state::RouterState;
use crate::stream_health::budget::{ProbeBudget, RoundQueue};
use crate::stream_health::hot_set::HotEntry;
use crate::stream_health::liveness::Transition;
use crate::stream_health::{judge, Judgement, PairKey, PairNames, Source};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the prober wakes to spend the budget.
pub const TICK: Duration = Duration::from_millis(50);

/// One copy to probe.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub key: PairKey,
    pub names: PairNames,
    pub url: String,
}

/// What one probe found: a judgement of the copy, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fetched {
    Answer(u16, Vec<u8>),
    TooLarge,
    Timeout,
    Error,
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The copies to probe for `hot`: each entry's stream on every healthy eligible edge of its
/// region, each (edge, stream) once, in hot-set order.
pub fn targets(snapshot: &Snapshot, hot: &[HotEntry]) -> Vec<ProbeTarget> {
    let paths: FxHashMap<Id, &str> = snapshot
        .live
        .paths()
        .iter()
        .map(|p| (p.id, &*p.path))
        .collect();
    let regions: FxHashMap<Id, usize> = snapshot
        .regions
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id, i))
        .collect();
    let mut seen = FxHashSet::default();
    let mut out = Vec::new();
    for entry in hot {
        let (Some(path), Some(&region)) =
            (paths.get(&entry.stream_id), regions.get(&entry.region_id))
        else {
            continue;
        };
        for &edge in snapshot.regions[region].edges.edges() {
            let server = &snapshot.servers[edge as usize];
            let key = PairKey {
                edge_id: server.id,
                stream_id: entry.stream_id,
            };
            if !server.is_up() || !seen.insert(key) {
                continue;
            }
            out.push(ProbeTarget {
                key,
                names: PairNames {
                    edge: server.domain_name.clone(),
                    path: (*path).into(),
                },
                url: format!("{}{}", server.live_base, path),
            });
        }
    }
    out
}

fn build_client(config: &StreamHealthConfig, tls_verify: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(!tls_verify)
        .connect_timeout(config.probe_timeout)
        .timeout(config.probe_timeout)
        .pool_max_idle_per_host(2)
        .user_agent(concat!(
            "cti-kaltura-stream-probe/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
}

/// GETs `url`, reading at most `max_bytes` of body.
async fn fetch(client: &reqwest::Client, url: &str, max_bytes: usize) -> Fetched {
    let attempt = async {
        let mut response = client.get(url).send().await?;
        let status = response.status().as_u16();
        if response
            .content_length()
            .is_some_and(|len| len > max_bytes as u64)
        {
            return Ok(Fetched::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > max_bytes {
                return Ok(Fetched::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok::<_, reqwest::Error>(Fetched::Answer(status, body))
    };
    match attempt.await {
        Ok(fetched) => fetched,
        Err(e) if e.is_timeout() => Fetched::Timeout,
        Err(_) => Fetched::Error,
    }
}

/// Probes one copy: its playlist, and a multivariant playlist's first variant. Returns the
/// judgement, or the result label of a probe that judged nothing.
async fn probe(
    client: &reqwest::Client,
    url: &str,
    max_bytes: usize,
) -> Result<Judgement, &'static str> {
    let mut url = url.to_string();
    for _ in 0..2 {
        let judgement = match fetch(client, &url, max_bytes).await {
            Fetched::Answer(status, body) => judge(status, &body),
            Fetched::TooLarge => return Err("too_large"),
            Fetched::Timeout => return Err("timeout"),
            Fetched::Error => return Err("error"),
        };
        let Judgement::Follow(variant) = &judgement else {
            return Ok(judgement);
        };
        match reqwest::Url::parse(&url).and_then(|base| base.join(variant)) {
            Ok(next) => url = next.to_string(),
            Err(_) => return Err("unusable"),
        }
    }
    // A variant that is itself multivariant.
    Err("unusable")
}

/// What the prober keeps between ticks.
struct Round {
    budget: ProbeBudget,
    budget_rate: u32,
    queue: RoundQueue<ProbeTarget>,
    /// The overlay generation last reviewed for streams stalled on every edge of a region.
    reviewed: u64,
}

pub struct StreamProber {
    settings: SharedSettings,
    state: Arc<RouterState>,
    /// The HTTP client and what it was built with.
    client: Mutex<Option<((StreamHealthConfig, bool), reqwest::Client)>>,
}

impl StreamProber {
    pub fn new(settings: SharedSettings, state: Arc<RouterState>) -> StreamProber {
        StreamProber {
            settings,
            state,
            client: Mutex::default(),
        }
    }

    fn client(&self, config: &StreamHealthConfig, tls_verify: bool) -> Option<reqwest::Client> {
        let mut cached = self.client.lock().unwrap_or_else(|e| e.into_inner());
        let wanted = (config.clone(), tls_verify);
        if let Some((built_for, client)) = cached.as_ref() {
            if *built_for == wanted {
                return Some(client.clone());
            }
        }
        match build_client(config, tls_verify) {
            Ok(client) => {
                *cached = Some((wanted, client.clone()));
                Some(client)
            }
            Err(e) => {
                log::error!("stream probes skipped: cannot build their HTTP client: {e}");
                None
            }
        }
    }

    /// Starts a new round over the hot set, and does the round's bookkeeping.
    fn new_round(&self, round: &mut Round, config: &StreamHealthConfig, now_ms: u64) {
        let streams = self.state.streams();
        let hot = streams
            .hot()
            .hot(config.hot_ttl.as_secs() as u32, config.hot_set_size);
        STREAM_METRICS.hot_set_entries.set(hot.len() as i64);
        let targets = match self.state.snapshot() {
            Some(snapshot) => {
                // Health and the snapshot change too: review each round, not only on transitions.
                self.review_regions(round, &snapshot);
                targets(&snapshot, &hot)
            }
            None => Vec::new(),
        };
        round.queue.start_round(targets, now_ms);
        // A pair not looked at for a whole TTL after its stream left the hot set.
        let ttl_ms = config.hot_ttl.as_millis() as u64;
        streams.forget_unobserved(unix_ms().saturating_sub(2 * ttl_ms));
        STREAM_METRICS.watched_pairs.set(streams.watched() as i64);
    }

    /// Logs streams stalled on every eligible edge of a region (once each way).
    fn review_regions(&self, round: &mut Round, snapshot: &Snapshot) {
        let streams = self.state.streams();
        round.reviewed = streams.overlay().generation();
        let all_stalled = streams.review_regions(snapshot);
        STREAM_METRICS.all_stalled.set(all_stalled as i64);
    }

    fn tick(&self, round: &mut Round, config: &StreamHealthConfig, now_ms: u64) {
        if round.reviewed != self.state.streams().overlay().generation() {
            if let Some(snapshot) = self.state.snapshot() {
                self.review_regions(round, &snapshot);
            }
        }
        if round.budget_rate != config.probes_per_sec {
            round.budget = ProbeBudget::new(config.probes_per_sec, TICK.as_millis() as u64);
            round.budget_rate = config.probes_per_sec;
        }
        let min_round_ms = config.min_round_interval.as_millis() as u64;
        if round.queue.wants_new_round(now_ms, min_round_ms) {
            self.new_round(round, config, now_ms);
        }
        let granted = round.budget.grant(now_ms);
        let batch = round.queue.take(granted);
        STREAM_METRICS
            .stalled_pairs
            .set(self.state.streams().overlay().len() as i64);
        if batch.is_empty() {
            return;
        }
        let tls_verify = self.settings.load().config.health.tls_verify;
        let Some(client) = self.client(config, tls_verify) else {
            return;
        };
        for target in batch {
            let (client, state, config) = (client.clone(), self.state.clone(), config.clone());
            tokio::spawn(async move {
                let outcome = tokio::time::timeout(
                    config.probe_timeout,
                    probe(&client, &target.url, config.max_playlist_bytes),
                )
                .await
                .unwrap_or(Err("timeout"));
                let label = match &outcome {
                    Ok(judgement) => judgement.label(),
                    Err(label) => label,
                };
                STREAM_METRICS.probes.with_label_values(&[label]).inc();
                if let Ok(Judgement::Observed(observation)) = outcome {
                    let transition = state.streams().observe(
                        target.key,
                        &target.names,
                        observation,
                        Source::Probe,
                        unix_ms(),
                        config.stall_factor,
                    );
                    count_transition(transition);
                }
            });
        }
    }
}

/// Counts a pair's transition.
pub fn count_transition(transition: Option<Transition>) {
    let to = match transition {
        None => return,
        Some(Transition::Stalled(_)) => "stalled",
        Some(Transition::Advancing) => "advancing",
    };
    STREAM_METRICS.transitions.with_label_values(&[to]).inc();
}

#[async_trait]
impl BackgroundService for StreamProber {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let started = Instant::now();
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut round = Round {
            budget: ProbeBudget::new(1, TICK.as_millis() as u64),
            budget_rate: 0,
            queue: RoundQueue::default(),
            reviewed: 0,
        };
        let mut was_on = false;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = interval.tick() => {
                    let settings = self.settings.load();
                    let on = settings.config.stream_health_on();
                    let config = settings.config.stream_health.clone();
                    drop(settings);
                    let elapsed = started.elapsed();
                    if !on {
                        if was_on {
                            self.state.streams().stand_down();
                            round.queue = RoundQueue::default();
                            STREAM_METRICS.stalled_pairs.set(0);
                        }
                        was_on = false;
                        continue;
                    }
                    was_on = true;
                    // The hot set's coarse clock (starts at 1: 0 means "not running").
                    self.state.streams().hot().set_clock(elapsed.as_secs() as u32 + 1);
                    self.tick(&mut round, &config, elapsed.as_millis() as u64);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::load_snapshot;
    use serde_json::json;

    #[test]
    fn targets_cover_each_regions_healthy_edges_once() {
        let doc = json!({
            "regions": [
                {"id": 1, "status": "ACTIVE", "server_group_ids": [1]},
                {"id": 2, "status": "ACTIVE", "server_group_ids": [2]}
            ],
            "subnets": [
                {"id": 1, "cidr": "10.1.0.0/16", "region_id": 1},
                {"id": 2, "cidr": "10.2.0.0/16", "region_id": 2}
            ],
            "server_groups": [
                {"id": 1, "status": "ACTIVE", "server_ids": [100, 101]},
                {"id": 2, "status": "ACTIVE", "server_ids": [101, 102]}
            ],
            "servers": [
                {"id": 100, "type": "EDGE", "domain_name": "a.test", "port": 80, "status": "ACTIVE", "weight": 1},
                {"id": 101, "type": "EDGE", "domain_name": "b.test", "port": 8080, "status": "ACTIVE", "weight": 1},
                {"id": 102, "type": "EDGE", "domain_name": "c.test", "port": 443, "status": "ACTIVE", "weight": 1}
            ],
            "linear_channels": [{"id": 1, "epg_id": "one"}],
            "tv_streams": [
                {"id": 11, "linear_channel_id": 1, "stream_path": "/live/one.m3u8", "status": "ACTIVE", "protocol": "HLS", "encryption": "NONE"}
            ]
        });
        let snapshot = load_snapshot(doc.to_string().as_bytes(), "test").unwrap();
        snapshot
            .servers
            .iter()
            .find(|s| s.id == 102)
            .unwrap()
            .health
            .set_up(false);
        let hot = [
            HotEntry {
                stream_id: 11,
                region_id: 1,
            },
            HotEntry {
                stream_id: 11,
                region_id: 2,
            },
            HotEntry {
                stream_id: 99,
                region_id: 1,
            },
        ];
        let urls: Vec<String> = targets(&snapshot, &hot)
            .into_iter()
            .map(|t| t.url)
            .collect();
        assert_eq!(
            urls,
            vec![
                "http://a.test/live/one.m3u8",
                "http://b.test:8080/live/one.m3u8"
            ],
            "b once for both regions, c down, stream 99 unknown"
        );
    }
}
