//! Weighted random choice over a region's eligible edges: probability weight / Σ weights,
//! prepared once per snapshot as cumulative sums so a choice is one binary search.

/// Cumulative weights of a list of edges (indexes into the snapshot's edge table).
#[derive(Debug, Clone, Default)]
pub struct WeightedTable {
    edges: Box<[u32]>,
    cumulative: Box<[u64]>,
}

impl WeightedTable {
    /// Builds the table from `(edge, weight)` pairs; pairs with weight 0 are left out.
    pub fn new(entries: impl IntoIterator<Item = (u32, u64)>) -> WeightedTable {
        let mut edges = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u64;
        for (edge, weight) in entries {
            if weight == 0 {
                continue;
            }
            total = total.saturating_add(weight);
            edges.push(edge);
            cumulative.push(total);
        }
        WeightedTable {
            edges: edges.into(),
            cumulative: cumulative.into(),
        }
    }

    pub fn total_weight(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    pub fn edges(&self) -> &[u32] {
        &self.edges
    }

    /// The edge owning ticket `ticket` in `0..total_weight()`: edge i owns the half-open
    /// interval `[cumulative[i-1], cumulative[i])`. Out-of-range tickets wrap.
    #[inline]
    pub fn pick_ticket(&self, ticket: u64) -> Option<u32> {
        let total = self.total_weight();
        if total == 0 {
            return None;
        }
        let ticket = ticket % total;
        let i = self.cumulative.partition_point(|&c| c <= ticket);
        self.edges.get(i).copied()
    }

    /// A choice driven by a uniformly random `u64`.
    #[inline]
    pub fn pick(&self, random: u64) -> Option<u32> {
        self.pick_ticket(scale(random, self.total_weight()))
    }

    /// `(edge, weight)` pairs in table order.
    pub fn weights(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        let mut previous = 0;
        self.edges
            .iter()
            .zip(self.cumulative.iter())
            .map(move |(&edge, &c)| {
                let weight = c - previous;
                previous = c;
                (edge, weight)
            })
    }
}

/// Maps a uniformly random `u64` onto `0..total` (multiply-shift: no division, bias below
/// 2^-40 for any realistic total).
#[inline]
pub fn scale(random: u64, total: u64) -> u64 {
    ((random as u128 * total as u128) >> 64) as u64
}

/// A second, independent-looking random value from the first (splitmix64 finaliser), for a
/// redraw that must not correlate with the draw that led to it.
#[inline]
pub fn remix(random: u64) -> u64 {
    let mut z = random.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_walk_matches_original_vectors() {
        // Weights [10, 20, 30]; the original drew r in 1..=T, our ticket is r - 1.
        let table = WeightedTable::new([(1, 10), (2, 20), (3, 30)]);
        for (r, expected) in [
            (1, 1),
            (10, 1),
            (11, 2),
            (15, 2),
            (30, 2),
            (31, 3),
            (55, 3),
            (60, 3),
        ] {
            assert_eq!(table.pick_ticket(r - 1), Some(expected), "r = {r}");
        }
    }

    #[test]
    fn weights_are_recovered_from_cumulative_sums() {
        let table = WeightedTable::new([(7, 10), (8, 0), (9, 30)]);
        assert_eq!(table.weights().collect::<Vec<_>>(), vec![(7, 10), (9, 30)]);
    }

    #[test]
    fn empty_and_zero_weight_tables_choose_nothing() {
        assert_eq!(WeightedTable::new([]).pick(123), None);
        let zero = WeightedTable::new([(1, 0)]);
        assert!(zero.is_empty());
        assert_eq!(zero.pick(u64::MAX), None);
        // A zero weight never steals a ticket.
        let mixed = WeightedTable::new([(1, 0), (2, 5)]);
        assert_eq!(mixed.pick(0), Some(2));
        assert_eq!(mixed.pick(u64::MAX), Some(2));
    }

    #[test]
    fn choice_frequencies_follow_weights() {
        // 600,000 draws: each share's standard deviation is under 0.07 percentage points, so a
        // 1-point tolerance is over 14 sigma: this cannot flake, yet a wrong walk fails it.
        let table = WeightedTable::new([(0, 10), (1, 20), (2, 30)]);
        let mut rng = fastrand::Rng::with_seed(42);
        let mut counts = [0u64; 3];
        let draws = 600_000;
        for _ in 0..draws {
            counts[table.pick(rng.u64(..)).unwrap() as usize] += 1;
        }
        for (i, weight) in [10.0, 20.0, 30.0].iter().enumerate() {
            let share = counts[i] as f64 / draws as f64;
            assert!(
                (share - weight / 60.0).abs() < 0.01,
                "edge {i}: share {share}"
            );
        }
    }
}
