//! Edge choice that avoids, for one stream, the edges whose copy of it has stalled (stream
//! health): the region's other healthy edges take the stream; when every healthy edge of the
//! region has it stalled, the choice is made as if none had.

use super::{affinity, weighted, EdgeChoice, Selector, Snapshot};
use std::net::IpAddr;

/// What avoiding stalled copies did to a choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum StallEffect {
    /// No edge of the region had the stream stalled (or none was asked about).
    #[default]
    None,
    /// Stalled edges were passed over; another edge took the stream.
    Avoided,
    /// Every healthy edge of the region had the stream stalled: chosen as if none had.
    AllStalled,
}

impl Snapshot {
    /// [`Snapshot::choose_edge`], passing over the edges for which `stalled(edge index)` holds
    /// where the region has another healthy edge.
    #[inline]
    pub fn choose_edge_avoiding(
        &self,
        ip: IpAddr,
        selector: Selector,
        panic_mode: bool,
        stalled: impl Fn(u32) -> bool,
    ) -> Option<(EdgeChoice<'_>, StallEffect)> {
        let network = self.network_of(ip)?;
        network.chain.iter().find_map(|step| {
            let table = &self.regions[step.region as usize].edges;
            let (edge, panic, effect) = match self.pick_avoiding(step.region, selector, &stalled) {
                Some(edge) => {
                    let avoided = table.edges().iter().any(|&e| stalled(e));
                    let effect = if avoided {
                        StallEffect::Avoided
                    } else {
                        StallEffect::None
                    };
                    (edge, false, effect)
                }
                None => {
                    let (edge, panic) =
                        self.pick_in_region(step.region, selector, None, panic_mode)?;
                    let any_healthy = table
                        .edges()
                        .iter()
                        .any(|&e| self.servers[e as usize].is_up());
                    let effect = if any_healthy {
                        StallEffect::AllStalled
                    } else {
                        StallEffect::None
                    };
                    (edge, panic, effect)
                }
            };
            Some((
                EdgeChoice {
                    step: *step,
                    edge: &self.servers[edge as usize],
                    edge_index: edge,
                    panic,
                },
                effect,
            ))
        })
    }

    /// [`Snapshot::pick_in_region`] for a retry after a failed connection (never `exclude`),
    /// passing over the edges for which `stalled(edge index)` holds where the region has
    /// another healthy edge.
    pub fn pick_in_region_avoiding(
        &self,
        region: u32,
        selector: Selector,
        exclude: Option<u32>,
        panic_mode: bool,
        stalled: impl Fn(u32) -> bool,
    ) -> Option<(u32, bool)> {
        let passed_over = |e: u32| Some(e) == exclude || stalled(e);
        match self.pick_avoiding(region, selector, &passed_over) {
            Some(edge) => Some((edge, false)),
            None => self.pick_in_region(region, selector, exclude, panic_mode),
        }
    }

    /// A healthy edge of `region` without a stalled copy, by `selector`.
    fn pick_avoiding(
        &self,
        region: u32,
        selector: Selector,
        stalled: &impl Fn(u32) -> bool,
    ) -> Option<u32> {
        let table = &self.regions[region as usize].edges;
        let usable = |edge: u32| self.servers[edge as usize].is_up() && !stalled(edge);
        match selector {
            Selector::Random(random) => {
                let first = table.pick(random)?;
                if usable(first) {
                    return Some(first);
                }
                let total: u64 = table
                    .weights()
                    .filter(|&(e, _)| usable(e))
                    .map(|(_, w)| w)
                    .sum();
                if total == 0 {
                    return None;
                }
                let mut ticket = weighted::scale(weighted::remix(random), total);
                for (edge, weight) in table.weights().filter(|&(e, _)| usable(e)) {
                    if ticket < weight {
                        return Some(edge);
                    }
                    ticket -= weight;
                }
                None
            }
            Selector::Consistent {
                key_hash,
                spread,
                random,
            } => {
                let id_of = |edge: u32| self.servers[edge as usize].id;
                affinity::rendezvous(table, key_hash, spread, random, id_of, usable)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::load_snapshot;
    use serde_json::json;
    use std::collections::BTreeMap;

    /// Region 1 (10.0.0.0/8): edges 1 (weight 1), 2 (weight 3), 3 (weight 2). Channels `a`
    /// (stream 11) and `b` (stream 12).
    fn snapshot() -> Snapshot {
        let edge = |id: i64, weight: u64| {
            json!({"id": id, "type": "EDGE", "domain_name": format!("e{id}.test"), "port": 80,
                   "status": "ACTIVE", "weight": weight})
        };
        let doc = json!({
            "regions": [{"id": 1, "status": "ACTIVE", "server_group_ids": [1]}],
            "subnets": [{"id": 1, "cidr": "10.0.0.0/8", "region_id": 1}],
            "server_groups": [{"id": 1, "status": "ACTIVE", "server_ids": [1, 2, 3]}],
            "servers": [edge(1, 1), edge(2, 3), edge(3, 2)],
            "linear_channels": [{"id": 1, "epg_id": "a"}, {"id": 2, "epg_id": "b"}],
            "tv_streams": [
                {"id": 11, "linear_channel_id": 1, "stream_path": "/a.m3u8", "status": "ACTIVE", "protocol": "HLS", "encryption": "NONE"},
                {"id": 12, "linear_channel_id": 2, "stream_path": "/b.m3u8", "status": "ACTIVE", "protocol": "HLS", "encryption": "NONE"}
            ]
        });
        load_snapshot(doc.to_string().as_bytes(), "test").unwrap()
    }

    fn ip() -> IpAddr {
        "10.1.2.3".parse().unwrap()
    }

    fn index_of(s: &Snapshot, id: i64) -> u32 {
        s.servers.iter().position(|x| x.id == id).unwrap() as u32
    }

    /// Edge ids chosen over `draws` random selectors, with the effects seen.
    fn tally(s: &Snapshot, stalled: &[i64], draws: u64) -> (BTreeMap<i64, u64>, Vec<StallEffect>) {
        let mut counts = BTreeMap::new();
        let mut effects = Vec::new();
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..draws {
            let (choice, effect) = s
                .choose_edge_avoiding(ip(), Selector::Random(rng.u64(..)), true, |e| {
                    stalled.contains(&s.servers[e as usize].id)
                })
                .unwrap();
            *counts.entry(choice.edge.id).or_default() += 1;
            if !effects.contains(&effect) {
                effects.push(effect);
            }
        }
        (counts, effects)
    }

    #[test]
    fn a_stalled_edge_is_passed_over_and_the_rest_keep_their_weights() {
        let s = snapshot();
        let (counts, effects) = tally(&s, &[2], 6000);
        assert_eq!(counts.get(&2), None, "{counts:?}");
        let (one, three) = (counts[&1] as f64, counts[&3] as f64);
        assert!((1.7..2.3).contains(&(three / one)), "{counts:?}");
        assert_eq!(effects, vec![StallEffect::Avoided]);
    }

    #[test]
    fn every_healthy_edge_stalled_routes_as_if_none_were() {
        let s = snapshot();
        s.servers[index_of(&s, 1) as usize].health.set_up(false);
        let (counts, effects) = tally(&s, &[2, 3], 2000);
        assert_eq!(counts.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(effects, vec![StallEffect::AllStalled]);
        // The same choice as without stream health, draw by draw.
        for random in [0u64, 1, u64::MAX / 3, u64::MAX] {
            let plain = s.choose_edge(ip(), Selector::Random(random), true).unwrap();
            let (avoiding, _) = s
                .choose_edge_avoiding(ip(), Selector::Random(random), true, |_| true)
                .unwrap();
            assert_eq!(plain.edge.id, avoiding.edge.id);
        }
    }

    #[test]
    fn affinity_moves_only_the_keys_of_the_stalled_edge() {
        let s = snapshot();
        let stalled = index_of(&s, 3);
        for key_hash in 0..200u64 {
            let selector = Selector::Consistent {
                key_hash: key_hash.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                spread: 1,
                random: 0,
            };
            let plain = s.choose_edge(ip(), selector, true).unwrap().edge_index;
            let (avoiding, effect) = s
                .choose_edge_avoiding(ip(), selector, true, |e| e == stalled)
                .unwrap();
            assert_ne!(avoiding.edge_index, stalled);
            if plain != stalled {
                assert_eq!(
                    avoiding.edge_index, plain,
                    "key {key_hash} moved needlessly"
                );
            }
            assert_eq!(effect, StallEffect::Avoided);
        }
    }

    /// The (edge id, stream id, stall effect) of `draws` decisions of `path`, with `stalled`
    /// (edge, stream) pairs.
    fn decisions(
        s: &Snapshot,
        stalled: &[(i64, i64)],
        path: &str,
        draws: u64,
    ) -> std::collections::BTreeSet<(i64, Option<i64>, StallEffect)> {
        use crate::routing::{decide_with_streams, Outcome, RequestFacts, RoutingPolicy};
        use crate::stream_health::StalledPairs;
        let stalled = StalledPairs::from_pairs(stalled.iter().copied());
        let policy = RoutingPolicy::default();
        (0..draws)
            .map(|random| {
                let facts = RequestFacts {
                    method: &http::Method::GET,
                    path,
                    query: None,
                    peer: ip(),
                    x_real_ip: None,
                    random: random.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    secure: false,
                };
                let d = decide_with_streams(Some(s), Some(&stalled), &policy, &facts);
                let Outcome::Redirect {
                    edge_id, target, ..
                } = d.outcome
                else {
                    panic!("{d:?}");
                };
                (edge_id, target.stream_id, target.stall)
            })
            .collect()
    }

    #[test]
    fn decide_avoids_a_stalled_edge_for_that_stream_only() {
        let s = snapshot();
        let edges_of = |path: &str| decisions(&s, &[(2, 11)], path, 400);
        let a: Vec<(i64, Option<i64>)> = edges_of("/btv/live/hls/a")
            .into_iter()
            .map(|(e, s, _)| (e, s))
            .collect();
        assert_eq!(
            a,
            vec![(1, Some(11)), (3, Some(11))],
            "stream 11 avoids edge 2"
        );
        let b: Vec<i64> = edges_of("/btv/live/hls/b")
            .into_iter()
            .map(|(e, _, effect)| {
                assert_eq!(effect, StallEffect::None);
                e
            })
            .collect();
        assert_eq!(b, vec![1, 2, 3], "stream 12 still goes to edge 2");
    }

    /// The edge ids 200 draws of `path` were redirected to, with `stalled` (edge, stream)
    /// pairs.
    fn decided_edges(s: &Snapshot, stalled: &[(i64, i64)], path: &str) -> Vec<i64> {
        let edges: std::collections::BTreeSet<i64> = decisions(s, stalled, path, 200)
            .into_iter()
            .map(|(edge, _, _)| edge)
            .collect();
        edges.into_iter().collect()
    }

    #[test]
    fn an_edge_hint_is_not_followed_to_a_stalled_copy_unless_every_copy_is() {
        let s = snapshot();
        let hinting_2 = "/btv/live/hls/a/~e2/seg1.ts";
        // Nothing stalled: the hint holds.
        assert_eq!(decided_edges(&s, &[], hinting_2), vec![2]);
        // Edge 2's copy of stream 11 stalled: its sub-requests go elsewhere.
        assert_eq!(decided_edges(&s, &[(2, 11)], hinting_2), vec![1, 3]);
        // A hint of a healthy copy still holds while another copy is stalled.
        assert_eq!(
            decided_edges(&s, &[(2, 11)], "/btv/live/hls/a/~e3/seg1.ts"),
            vec![3]
        );
        // Another stream stalled on edge 2 does not matter to this one.
        assert_eq!(decided_edges(&s, &[(2, 12)], hinting_2), vec![2]);
        // Every copy stalled: routed as if none were, and the hint holds again.
        let all = [(1, 11), (2, 11), (3, 11)];
        assert_eq!(decided_edges(&s, &all, hinting_2), vec![2]);
    }

    #[test]
    fn a_retry_passes_over_stalled_copies_while_a_healthy_one_remains() {
        let s = snapshot();
        let region = 0;
        let (one, two, three) = (index_of(&s, 1), index_of(&s, 2), index_of(&s, 3));
        let retries = |stalled: &[u32]| {
            let mut seen = std::collections::BTreeSet::new();
            for random in 0..300u64 {
                let selector = Selector::Random(random.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let (edge, panic) = s
                    .pick_in_region_avoiding(region, selector, Some(one), true, |e| {
                        stalled.contains(&e)
                    })
                    .unwrap();
                assert!(!panic);
                seen.insert(edge);
            }
            seen.into_iter().collect::<Vec<_>>()
        };
        // Edge 1 failed to connect: the retry goes to 2 or 3 ...
        assert_eq!(retries(&[]), vec![two, three]);
        // ... only 3 while 2's copy is stalled ...
        assert_eq!(retries(&[two]), vec![three]);
        // ... and to either again when both are stalled (never back to 1).
        assert_eq!(retries(&[two, three]), vec![two, three]);
        // A stalled copy on a down edge is no way out: the healthy stalled one is taken.
        s.servers[three as usize].health.set_up(false);
        assert_eq!(retries(&[two]), vec![two]);
    }
}
