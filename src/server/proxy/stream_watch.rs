//! Passive stream health: the live playlist (or MPD) the router fetches for a player (proxy
//! and manifest modes), decompressed when the edge compressed it, bounded by
//! `max_playlist_bytes`, and handed whole to `StreamHealth::observe_proxied`. Only for live routes, only when the pair has not been
//! looked at within half a target duration, so thousands of players cost one read.

use crate::metrics::STREAM_METRICS;
use crate::server::pipeline::ProxyTarget;
use crate::settings::Settings;
use crate::state::RouterState;
use crate::stream_health::{PairKey, PairNames};

/// One proxied live playlist being collected.
#[derive(Debug)]
pub struct PlaylistWatch {
    stream_id: crate::snapshot::Id,
    /// Set once the edge's answer head arrives (after any retry).
    pair: Option<(PairKey, PairNames, u16)>,
    body: Vec<u8>,
    max_bytes: usize,
    stall_factor: u32,
    /// The body outgrew `max_bytes`: not read.
    given_up: bool,
}

impl PlaylistWatch {
    /// A watch for `target` when it is a live stream and passive reading is on.
    pub fn start(settings: &Settings, target: &ProxyTarget) -> Option<PlaylistWatch> {
        let config = &settings.config;
        if !config.stream_health_on() || !config.stream_health.passive {
            return None;
        }
        Some(PlaylistWatch {
            stream_id: target.stream_id?,
            pair: None,
            body: Vec::new(),
            max_bytes: config.stream_health.max_playlist_bytes,
            stall_factor: config.stream_health.stall_factor,
            given_up: false,
        })
    }

    /// The edge answered `status`; `target` names the edge it came from. Returns false when
    /// the pair was looked at too recently to read this one.
    pub fn answered(&mut self, state: &RouterState, target: &ProxyTarget, status: u16) -> bool {
        let Some(edge) = target.snapshot.servers.get(target.edge_index as usize) else {
            return false;
        };
        let key = PairKey {
            edge_id: edge.id,
            stream_id: self.stream_id,
        };
        if !state
            .streams()
            .wants_passive(key, crate::stream_prober::unix_ms())
        {
            return false;
        }
        let path = target
            .path_and_query
            .split('?')
            .next()
            .unwrap_or_default()
            .into();
        let names = PairNames {
            edge: edge.domain_name.clone(),
            path,
        };
        self.pair = Some((key, names, status));
        true
    }

    /// Takes one piece of the body; at the end, judges the whole.
    pub fn feed(&mut self, state: &RouterState, chunk: Option<&[u8]>, end_of_stream: bool) {
        if self.pair.is_none() || self.given_up {
            return;
        }
        if let Some(chunk) = chunk {
            if self.body.len() + chunk.len() > self.max_bytes {
                self.given_up = true;
                self.body = Vec::new();
                STREAM_METRICS
                    .passive_reads
                    .with_label_values(&["too_large"])
                    .inc();
                return;
            }
            self.body.extend_from_slice(chunk);
        }
        if !end_of_stream {
            return;
        }
        let Some((key, names, status)) = self.pair.take() else {
            return;
        };
        let streams = state.streams();
        let before = streams.overlay().len();
        let label = streams.observe_proxied(
            key,
            &names,
            status,
            &self.body,
            crate::stream_prober::unix_ms(),
            self.stall_factor,
        );
        if streams.overlay().len() != before {
            STREAM_METRICS
                .stalled_pairs
                .set(streams.overlay().len() as i64);
        }
        STREAM_METRICS
            .passive_reads
            .with_label_values(&[label])
            .inc();
    }
}
