//! Edge choice that avoids, for one stream, the edges whose copy of it has stalled (stream
//! health): the region's other healthy edges take the stream; when every healthy edge of the
//! region has it stalled, the choice is made as if none had.

use super::{affinity, weighted, EdgeChoice, Selector, Snapshot};
use std::net::IpAddr;

/// What avoiding stalled copies did to a choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
