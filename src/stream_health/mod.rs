//! Stream health: whether each edge's copy of each live stream advances, and the overlay that
//! keeps players of a stream off the edges whose copy stalled.
//!
//! How it sits next to the others: the routing snapshot is immutable and knows nothing of
//! health; edge health is an atomic flag per server that the snapshot points at
//! (`crate::health`); stream health is a third, separate overlay keyed by (edge id, stream id)
//! — stable admin ids, so it survives snapshot reloads like edge health does. The request path
//! reads it through [`StalledOverlay::view`]: one relaxed atomic load when no pair is stalled,
//! otherwise one `ArcSwap` load and one hash lookup by stream id; routing then avoids those
//! edges for that stream only (`crate::routing`). It is fed by active probes
//! (`crate::stream_prober`, off the request path) and passively by live playlists proxied
//! through the router. A stream is one `tv_streams` row (channel, protocol, encryption):
//! the HLS and DASH copies of a channel are judged apart.

pub mod budget;
pub mod hot_set;
pub mod liveness;
pub mod overlay;
pub mod playlist;

use crate::snapshot::{Id, Snapshot};
use hot_set::{HotEntry, HotRecorder};
use liveness::{Liveness, Observation, StallCause, Transition};
pub use overlay::{StalledOverlay, StalledPairs};
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;
use std::sync::Mutex;

/// One edge's copy of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairKey {
    pub edge_id: Id,
    pub stream_id: Id,
}

/// Names of a pair for logs and `/debug/streams`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairNames {
    pub edge: Box<str>,
    /// The stream's path on the edge.
    pub path: Box<str>,
}

/// Where an observation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Probe,
    Passive,
}

#[derive(Debug, Clone)]
struct PairRecord {
    liveness: Liveness,
    names: PairNames,
    source: Source,
}

/// A stalled pair as `/debug/streams` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StalledReport {
    pub key: PairKey,
    pub names: PairNames,
    pub since_unix_ms: u64,
    pub cause: StallCause,
    pub last_sequence: Option<u64>,
    pub last_observed_unix_ms: u64,
    pub source: Source,
}

/// Stream health state: the overlay routing reads, the hot set, and each watched pair.
#[derive(Debug, Default)]
pub struct StreamHealth {
    overlay: StalledOverlay,
    hot: HotRecorder,
    pairs: Mutex<FxHashMap<PairKey, PairRecord>>,
    /// (stream, region) pairs where every eligible edge has the stream stalled, as last logged.
    all_stalled: Mutex<BTreeSet<(Id, Id)>>,
}

impl StreamHealth {
    /// What routing reads.
    #[inline]
    pub fn overlay(&self) -> &StalledOverlay {
        &self.overlay
    }

    /// The hot-set recorder (the request path records, the prober reads).
    #[inline]
    pub fn hot(&self) -> &HotRecorder {
        &self.hot
    }

    /// Records that a player was routed to `stream_id` in region `region_id`.
    #[inline]
    pub fn record_request(&self, stream_id: Id, region_id: Id) {
        self.hot.record(HotEntry {
            stream_id,
            region_id,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FxHashMap<PairKey, PairRecord>> {
        self.pairs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a proxied playlist of `key` is worth reading now: not when the pair was looked
    /// at less than half a target duration ago (thousands of players fetch the same playlist).
    pub fn wants_passive(&self, key: PairKey, now_ms: u64) -> bool {
        match self.lock().get(&key) {
            None => true,
            Some(record) => {
                let half_target = record.liveness.last.map_or(0, |p| p.target_duration_ms / 2);
                now_ms.saturating_sub(record.liveness.observed_at_ms) >= half_target
            }
        }
    }

    /// Applies one observation of `key`; logs and publishes a transition, and returns it.
    pub fn observe(
        &self,
        key: PairKey,
        names: &PairNames,
        observation: Observation,
        source: Source,
        now_ms: u64,
        stall_factor: u32,
    ) -> Option<Transition> {
        let mut pairs = self.lock();
        let record = pairs.entry(key).or_insert_with(|| PairRecord {
            liveness: Liveness::default(),
            names: names.clone(),
            source,
        });
        record.names.clone_from(names);
        record.source = source;
        let stalled_since = record.liveness.stalled.map(|(since, _)| since);
        let transition = record.liveness.observe(observation, now_ms, stall_factor)?;
        log_transition(key, record, transition, stalled_since, now_ms, stall_factor);
        self.publish(&pairs);
        Some(transition)
    }

    /// Publishes the stalled pairs of `pairs`.
    fn publish(&self, pairs: &FxHashMap<PairKey, PairRecord>) {
        self.overlay.publish(StalledPairs::from_pairs(
            pairs
                .iter()
                .filter(|(_, r)| r.liveness.is_stalled())
                .map(|(k, _)| (k.edge_id, k.stream_id)),
        ));
    }

    /// Forgets pairs not looked at since `before_ms` (their stream left the hot set, or their
    /// edge the region); a stalled one is released, with a log line.
    pub fn forget_unobserved(&self, before_ms: u64) {
        let mut pairs = self.lock();
        let mut released = false;
        pairs.retain(|key, record| {
            if record.liveness.observed_at_ms >= before_ms {
                return true;
            }
            if record.liveness.is_stalled() {
                released = true;
                log::info!(
                    "stream health: edge {} (id {}) stream {} (id {}) no longer watched: no longer avoided",
                    record.names.edge,
                    key.edge_id,
                    record.names.path,
                    key.stream_id
                );
            }
            false
        });
        if released {
            self.publish(&pairs);
        }
    }

    /// Forgets everything (stream health switched off).
    pub fn stand_down(&self) {
        let mut pairs = self.lock();
        if pairs.values().any(|r| r.liveness.is_stalled()) {
            log::info!("stream health is off: no stream is avoided on any edge");
        }
        pairs.clear();
        self.publish(&pairs);
        self.all_stalled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The stalled pairs, by edge id then stream id.
    pub fn stalled(&self) -> Vec<StalledReport> {
        let pairs = self.lock();
        let mut out: Vec<StalledReport> = pairs
            .iter()
            .filter_map(|(key, record)| {
                let (since, cause) = record.liveness.stalled?;
                Some(StalledReport {
                    key: *key,
                    names: record.names.clone(),
                    since_unix_ms: since,
                    cause,
                    last_sequence: record.liveness.last.map(|p| p.sequence),
                    last_observed_unix_ms: record.liveness.observed_at_ms,
                    source: record.source,
                })
            })
            .collect();
        out.sort_unstable_by_key(|r| r.key);
        out
    }

    /// Pairs watched right now (stalled or not).
    pub fn watched(&self) -> usize {
        self.lock().len()
    }

    /// Logs, once each way, a stream whose copies are stalled on every eligible, healthy edge
    /// of a region routing it (routing then ignores the stalls there); returns how many such
    /// (stream, region) pairs there are.
    pub fn review_regions(&self, snapshot: &Snapshot) -> usize {
        let Some(view) = self.overlay.view() else {
            let mut previous = self.all_stalled.lock().unwrap_or_else(|e| e.into_inner());
            for (stream, region) in std::mem::take(&mut *previous) {
                log_all_stalled_over(stream, region);
            }
            return 0;
        };
        let mut now_all = BTreeSet::new();
        for region in &snapshot.regions {
            let healthy: Vec<Id> = region
                .edges
                .edges()
                .iter()
                .map(|&i| &snapshot.servers[i as usize])
                .filter(|s| s.is_up())
                .map(|s| s.id)
                .collect();
            if healthy.is_empty() {
                continue;
            }
            for (stream, stalled) in view.iter() {
                if healthy.iter().all(|e| stalled.contains(e)) {
                    now_all.insert((stream, region.id));
                }
            }
        }
        let mut previous = self.all_stalled.lock().unwrap_or_else(|e| e.into_inner());
        for &(stream, region) in now_all.difference(&previous) {
            log::error!(
                "stream health: stream id {stream} is stalled on every eligible edge of region {region}: \
                 routing there as if none were (the problem is upstream of the edges)"
            );
        }
        for &(stream, region) in previous.difference(&now_all) {
            log_all_stalled_over(stream, region);
        }
        let count = now_all.len();
        *previous = now_all;
        count
    }
}

/// What one fetched playlist (its status and body) says about a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    Observed(Observation),
    /// A multivariant playlist: its first variant (unresolved) says more.
    Follow(String),
    /// Nothing about liveness; the bounded result label says why.
    Nothing(&'static str),
}

impl Judgement {
    /// The result label (`ok`, `not_found`, ...) of metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Judgement::Observed(Observation::At(_)) => "ok",
            Judgement::Observed(Observation::NotFound) => "not_found",
            Judgement::Follow(_) => "multivariant",
            Judgement::Nothing(why) => why,
        }
    }
}

/// Judges an edge's answer to a live playlist request: 404 means the edge does not serve the
/// stream; another non-2xx status is the edge's own health's business (says nothing here).
pub fn judge(status: u16, body: &[u8]) -> Judgement {
    match status {
        404 => Judgement::Observed(Observation::NotFound),
        200..=299 => match playlist::read(body) {
            playlist::Reading::Live(position) => Judgement::Observed(Observation::At(position)),
            playlist::Reading::Multivariant { first_variant } => Judgement::Follow(first_variant),
            playlist::Reading::Unusable(_) => Judgement::Nothing("unusable"),
        },
        _ => Judgement::Nothing("bad_status"),
    }
}

impl StreamHealth {
    /// The passive entry point: a live playlist of `key` that passed through the router
    /// (status and whole body). Returns the result label.
    pub fn observe_proxied(
        &self,
        key: PairKey,
        names: &PairNames,
        status: u16,
        body: &[u8],
        now_ms: u64,
        stall_factor: u32,
    ) -> &'static str {
        let judgement = judge(status, body);
        match &judgement {
            Judgement::Observed(observation) => {
                self.observe(
                    key,
                    names,
                    *observation,
                    Source::Passive,
                    now_ms,
                    stall_factor,
                );
            }
            // A multivariant playlist names no segment: the probes follow it, players too.
            Judgement::Follow(_) | Judgement::Nothing(_) => {}
        }
        judgement.label()
    }
}

fn log_all_stalled_over(stream: Id, region: Id) {
    log::info!(
        "stream health: stream id {stream} is no longer stalled on every eligible edge of region {region}"
    );
}

fn log_transition(
    key: PairKey,
    record: &PairRecord,
    transition: Transition,
    stalled_since: Option<u64>,
    now_ms: u64,
    stall_factor: u32,
) {
    let (edge, path) = (&record.names.edge, &record.names.path);
    let sequence = record
        .liveness
        .last
        .map_or_else(|| "none".to_string(), |p| p.sequence.to_string());
    let via = match record.source {
        Source::Probe => "probe",
        Source::Passive => "proxied playlist",
    };
    match transition {
        Transition::Stalled(StallCause::NotAdvancing) => log::warn!(
            "stream health: edge {edge} (id {}) copy of stream {path} (id {}) STALLED: not advancing \
             for {stall_factor} × its {} ms target duration (last sequence {sequence}, seen by {via}); \
             its players go to the region's other edges",
            key.edge_id,
            key.stream_id,
            record.liveness.last.map_or(0, |p| p.target_duration_ms),
        ),
        Transition::Stalled(StallCause::NotFound) => log::warn!(
            "stream health: edge {edge} (id {}) copy of stream {path} (id {}) STALLED: the edge answers 404 \
             (seen by {via}); its players go to the region's other edges",
            key.edge_id,
            key.stream_id,
        ),
        Transition::Advancing => log::info!(
            "stream health: edge {edge} (id {}) copy of stream {path} (id {}) is advancing again \
             (sequence {sequence}) after {} ms stalled",
            key.edge_id,
            key.stream_id,
            now_ms.saturating_sub(stalled_since.unwrap_or(now_ms)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::playlist::Position;
    use super::*;

    fn names() -> PairNames {
        PairNames {
            edge: "e1".into(),
            path: "/live/one.m3u8".into(),
        }
    }

    fn at(sequence: u64) -> Observation {
        Observation::At(Position {
            sequence,
            fingerprint: sequence,
            target_duration_ms: 1000,
        })
    }

    #[test]
    fn a_stalled_pair_is_published_for_its_stream_only_and_released_on_advance() {
        let health = StreamHealth::default();
        let key = PairKey {
            edge_id: 1,
            stream_id: 11,
        };
        let other = PairKey {
            edge_id: 1,
            stream_id: 12,
        };
        for (ms, seq) in [(0, 5), (1000, 5), (2000, 5)] {
            health.observe(key, &names(), at(seq), Source::Probe, ms, 3);
            health.observe(other, &names(), at(ms), Source::Probe, ms, 3);
        }
        assert!(health.overlay().view().is_none());
        let t = health.observe(key, &names(), at(5), Source::Probe, 3500, 3);
        assert_eq!(t, Some(Transition::Stalled(StallCause::NotAdvancing)));
        let view = health.overlay().view().expect("one stalled pair");
        assert_eq!(view.edges_stalled_for(11), Some(&[1][..]));
        assert_eq!(view.edges_stalled_for(12), None, "the edge's other stream");
        let report = health.stalled();
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].since_unix_ms, 3500);
        assert_eq!(report[0].last_sequence, Some(5));
        assert!(!health.wants_passive(key, 3600), "just looked at");
        assert!(health.wants_passive(key, 4000));
        let t = health.observe(key, &names(), at(6), Source::Passive, 4000, 3);
        assert_eq!(t, Some(Transition::Advancing));
        assert!(health.overlay().view().is_none());
    }

    #[test]
    fn proxied_playlists_are_judged_like_probes() {
        let health = StreamHealth::default();
        let key = PairKey {
            edge_id: 3,
            stream_id: 11,
        };
        let frozen =
            b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:1,\ns7.ts\n";
        assert_eq!(
            health.observe_proxied(key, &names(), 200, frozen, 0, 3),
            "ok"
        );
        assert_eq!(
            health.observe_proxied(key, &names(), 200, frozen, 3001, 3),
            "ok"
        );
        assert_eq!(health.stalled().len(), 1);
        assert_eq!(health.stalled()[0].source, Source::Passive);
        assert_eq!(
            health.observe_proxied(key, &names(), 503, b"", 4000, 3),
            "bad_status"
        );
        assert_eq!(
            health.observe_proxied(key, &names(), 200, b"junk", 4000, 3),
            "unusable"
        );
        assert_eq!(
            health.observe_proxied(
                key,
                &names(),
                200,
                b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n",
                4000,
                3
            ),
            "multivariant"
        );
        assert_eq!(health.stalled().len(), 1, "none of those changes the state");
        assert_eq!(
            health.observe_proxied(key, &names(), 404, b"", 4000, 3),
            "not_found"
        );
    }

    #[test]
    fn unobserved_pairs_are_forgotten_and_released() {
        let health = StreamHealth::default();
        let key = PairKey {
            edge_id: 2,
            stream_id: 11,
        };
        health.observe(key, &names(), Observation::NotFound, Source::Probe, 100, 3);
        assert_eq!(health.overlay().len(), 1);
        health.forget_unobserved(50);
        assert_eq!(health.overlay().len(), 1, "seen after the cut-off");
        health.forget_unobserved(200);
        assert_eq!(health.overlay().len(), 0);
        assert_eq!(health.watched(), 0);
    }
}
