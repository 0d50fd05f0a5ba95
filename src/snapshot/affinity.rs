//! Content affinity: a weighted rendezvous hash of the content key over a region's edges, so
//! the same channel or file lands on the same edge (hot caches) and moves as little as
//! possible when an edge leaves or joins. Hashes are fixed (FNV-1a + splitmix64) so every
//! router of a fleet, whatever its build, agrees.

use super::weighted::{remix, WeightedTable};

pub use crate::vocab::MAX_SPREAD;

/// Incremental FNV-1a 64.
#[derive(Debug, Clone, Copy)]
pub struct KeyHasher(u64);

impl Default for KeyHasher {
    fn default() -> Self {
        KeyHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl KeyHasher {
    #[inline]
    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// Hashes a path as if normalised: runs of `/` count as one.
    #[inline]
    pub fn path(mut self, path: &str) -> Self {
        let mut last_slash = false;
        for &b in path.as_bytes() {
            if b == b'/' && last_slash {
                continue;
            }
            last_slash = b == b'/';
            self = self.bytes(&[b]);
        }
        self
    }

    pub fn finish(self) -> u64 {
        remix(self.0)
    }
}

/// The weighted rendezvous score of `edge_id` for `key_hash`: weight / -ln(u), u uniform in
/// (0, 1) from the pair's hash. The highest score wins.
#[inline]
fn score(key_hash: u64, edge_id: i64, weight: u64) -> f64 {
    let h = remix(key_hash ^ remix(edge_id as u64));
    let unit = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    weight as f64 / -unit.ln()
}

/// Chooses among the edges of `table` that pass `usable`: the `spread` best-scoring edges for
/// `key_hash`, then one of them by `random`. `id_of` gives an edge's stable id.
#[inline]
pub fn rendezvous(
    table: &WeightedTable,
    key_hash: u64,
    spread: usize,
    random: u64,
    id_of: impl Fn(u32) -> i64,
    usable: impl Fn(u32) -> bool,
) -> Option<u32> {
    let spread = spread.clamp(1, MAX_SPREAD);
    let mut best: [(f64, u32); MAX_SPREAD] = [(f64::NEG_INFINITY, u32::MAX); MAX_SPREAD];
    let mut found = 0;
    for (edge, weight) in table.weights() {
        if !usable(edge) {
            continue;
        }
        let s = score(key_hash, id_of(edge), weight);
        // Insertion into the sorted top-`spread` list.
        let mut at = found.min(spread);
        while at > 0 && best[at - 1].0 < s {
            if at < spread {
                best[at] = best[at - 1];
            }
            at -= 1;
        }
        if at < spread {
            best[at] = (s, edge);
            found = (found + 1).min(spread);
        }
    }
    match found {
        0 => None,
        n => Some(best[(random % n as u64) as usize].1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(weights: &[u64]) -> WeightedTable {
        WeightedTable::new(weights.iter().enumerate().map(|(i, &w)| (i as u32, w)))
    }

    fn key(i: u64) -> u64 {
        KeyHasher::default().bytes(&i.to_le_bytes()).finish()
    }

    fn choose(t: &WeightedTable, k: u64, usable: impl Fn(u32) -> bool) -> u32 {
        rendezvous(t, k, 1, 0, |e| e as i64 + 100, usable).unwrap()
    }

    #[test]
    fn the_same_key_always_picks_the_same_edge() {
        let t = table(&[10; 9]);
        for i in 0..1000 {
            assert_eq!(choose(&t, key(i), |_| true), choose(&t, key(i), |_| true));
        }
        assert_eq!(
            KeyHasher::default().path("/vod//a///b").finish(),
            KeyHasher::default().path("/vod/a/b").finish()
        );
    }

    #[test]
    fn removing_one_of_n_edges_moves_only_its_keys() {
        let n = 10;
        let t = table(&[10; 10]);
        let keys = 20_000;
        let mut moved = 0;
        for i in 0..keys {
            let before = choose(&t, key(i), |_| true);
            let after = choose(&t, key(i), |e| e != 3);
            if before != 3 {
                assert_eq!(before, after, "a key not on the removed edge must stay");
            } else {
                moved += 1;
            }
        }
        let fraction = moved as f64 / keys as f64;
        // Expected 1/n = 0.1; the binomial sd is 0.002, so ±0.02 cannot flake.
        assert!((fraction - 1.0 / n as f64).abs() < 0.02, "moved {fraction}");
    }

    #[test]
    fn weights_are_respected_over_many_keys() {
        let t = table(&[10, 20, 30, 40]);
        let keys = 40_000;
        let mut counts = [0u32; 4];
        for i in 0..keys {
            counts[choose(&t, key(i), |_| true) as usize] += 1;
        }
        for (i, w) in [10.0, 20.0, 30.0, 40.0].iter().enumerate() {
            let share = counts[i] as f64 / keys as f64;
            assert!((share - w / 100.0).abs() < 0.02, "edge {i}: {share}");
        }
    }

    #[test]
    fn spread_uses_the_top_edges_of_the_key() {
        let t = table(&[10; 6]);
        let k = key(42);
        let first = choose(&t, k, |_| true);
        let mut seen = std::collections::BTreeSet::new();
        for r in 0..64 {
            seen.insert(rendezvous(&t, k, 3, r, |e| e as i64 + 100, |_| true).unwrap());
        }
        assert_eq!(seen.len(), 3);
        assert!(seen.contains(&first));
        assert_eq!(rendezvous(&t, k, 3, 0, |e| e as i64, |_| false), None);
    }
}
