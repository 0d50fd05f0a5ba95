//! Longest-prefix match without a scan: nested CIDR networks are flattened once into sorted,
//! disjoint address segments, each naming its most specific network; a lookup is one binary search.

/// An address as an unsigned integer (`u32` for IPv4, `u128` for IPv6).
pub trait AddrKey: Copy + Ord + std::fmt::Debug {
    const MAX: Self;
    fn next(self) -> Self;
}

impl AddrKey for u32 {
    const MAX: Self = u32::MAX;
    fn next(self) -> Self {
        self + 1
    }
}

impl AddrKey for u128 {
    const MAX: Self = u128::MAX;
    fn next(self) -> Self {
        self + 1
    }
}

const NO_NETWORK: u32 = u32::MAX;

/// Segments sorted by start; `networks[i]` covers `starts[i] ..= starts[i+1]-1`.
#[derive(Debug, Default)]
pub struct PrefixTable<K> {
    starts: Vec<K>,
    networks: Vec<u32>,
}

impl<K: AddrKey> PrefixTable<K> {
    /// Builds the table from unique networks given as inclusive `(first, last)` ranges that are
    /// either nested or disjoint (true of CIDR blocks). Returns the table and, for each network,
    /// the index of the nearest network enclosing it.
    pub fn build(ranges: &[(K, K)]) -> (PrefixTable<K>, Vec<Option<u32>>) {
        let mut order: Vec<u32> = (0..ranges.len() as u32).collect();
        // Enclosing networks first: same start, wider end sorts earlier.
        order.sort_unstable_by(|&a, &b| {
            let (ra, rb) = (ranges[a as usize], ranges[b as usize]);
            ra.0.cmp(&rb.0).then(rb.1.cmp(&ra.1))
        });
        let mut table = PrefixTable {
            starts: Vec::with_capacity(ranges.len() * 2),
            networks: Vec::with_capacity(ranges.len() * 2),
        };
        let mut parents = vec![None; ranges.len()];
        let mut open: Vec<u32> = Vec::new();
        for &net in &order {
            let (start, _) = ranges[net as usize];
            table.close_until(&mut open, ranges, |end| end < start);
            parents[net as usize] = open.last().copied();
            table.push(start, net);
            open.push(net);
        }
        table.close_until(&mut open, ranges, |_| true);
        (table, parents)
    }

    /// Closes open networks (innermost first) whose end satisfies `done`, starting the segment
    /// that follows each one.
    fn close_until(&mut self, open: &mut Vec<u32>, ranges: &[(K, K)], done: impl Fn(K) -> bool) {
        while let Some(&top) = open.last() {
            let end = ranges[top as usize].1;
            if !done(end) {
                break;
            }
            open.pop();
            if end != K::MAX {
                self.push(end.next(), open.last().copied().unwrap_or(NO_NETWORK));
            }
        }
    }

    fn push(&mut self, start: K, network: u32) {
        if self.starts.last() == Some(&start) {
            // A later push at the same address is more specific (or the segment after a
            // network that ended just before): it replaces the previous one.
            *self.networks.last_mut().expect("parallel vectors") = network;
        } else {
            self.starts.push(start);
            self.networks.push(network);
        }
    }

    /// The most specific network containing `addr`.
    #[inline]
    pub fn lookup(&self, addr: K) -> Option<u32> {
        let after = self.starts.partition_point(|&s| s <= addr);
        let network = *self.networks.get(after.checked_sub(1)?)?;
        (network != NO_NETWORK).then_some(network)
    }

    pub fn segment_count(&self) -> usize {
        self.starts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_range(addr: u32, len: u8) -> (u32, u32) {
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        (addr & mask, (addr & mask) | !mask)
    }

    /// The reference: scan every network, keep the narrowest that contains the address.
    fn naive(ranges: &[(u32, u32)], addr: u32) -> Option<u32> {
        ranges
            .iter()
            .enumerate()
            .filter(|(_, r)| r.0 <= addr && addr <= r.1)
            .min_by_key(|(_, r)| r.1 - r.0)
            .map(|(i, _)| i as u32)
    }

    #[test]
    fn matches_original_subnet_ordering_vectors() {
        // 147.147.147.147/30 (id1), .144/28 (id2), .130/26 (id3)
        let base = 147u32 << 24 | 147 << 16 | 147 << 8;
        let ranges = [
            v4_range(base | 147, 30),
            v4_range(base | 144, 28),
            v4_range(base | 130, 26),
        ];
        let (table, parents) = PrefixTable::build(&ranges);
        assert_eq!(table.lookup(base | 145), Some(0));
        assert_eq!(parents, vec![Some(1), Some(2), None]);
        assert_eq!(table.lookup(base | 150), Some(1));
        assert_eq!(table.lookup(base | 180), Some(2));
        assert_eq!(table.lookup(147 << 24 | 147 << 16 | 124 << 8 | 70), None);
    }

    #[test]
    fn whole_space_and_edges_of_the_space() {
        let ranges = [(0u32, u32::MAX), v4_range(u32::MAX, 24), v4_range(0, 8)];
        let (table, parents) = PrefixTable::build(&ranges);
        assert_eq!(table.lookup(0), Some(2));
        assert_eq!(table.lookup(u32::MAX), Some(1));
        assert_eq!(table.lookup(1 << 24), Some(0));
        assert_eq!(parents, vec![None, Some(0), Some(0)]);
        let (empty, _) = PrefixTable::<u128>::build(&[]);
        assert_eq!(empty.lookup(42), None);
    }

    #[test]
    fn longest_prefix_match_equals_naive_scan_on_random_networks() {
        let mut rng = fastrand::Rng::with_seed(7);
        for round in 0..40 {
            // Cluster addresses in a small space so networks nest often.
            let mut ranges: Vec<(u32, u32)> = Vec::new();
            for _ in 0..(round * 5 + 1) {
                let addr = 0x0a00_0000 | rng.u32(0..1 << 16);
                let r = v4_range(addr, rng.u8(8..=32));
                if !ranges.contains(&r) {
                    ranges.push(r);
                }
            }
            let (table, parents) = PrefixTable::build(&ranges);
            for _ in 0..2000 {
                let addr = 0x0a00_0000 | rng.u32(0..1 << 17);
                assert_eq!(table.lookup(addr), naive(&ranges, addr), "addr {addr:#x}");
            }
            for (i, parent) in parents.iter().enumerate() {
                let (start, end) = ranges[i];
                let expected = ranges
                    .iter()
                    .copied()
                    .filter(|&r| r != ranges[i] && r.0 <= start && end <= r.1)
                    .min_by_key(|r| r.1 - r.0);
                assert_eq!(parent.map(|p| ranges[p as usize]), expected);
            }
        }
    }

    fn v6_range(addr: u128, len: u8) -> (u128, u128) {
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - len)
        };
        (addr & mask, (addr & mask) | !mask)
    }

    fn naive_v6(ranges: &[(u128, u128)], addr: u128) -> Option<u32> {
        ranges
            .iter()
            .enumerate()
            .filter(|(_, r)| r.0 <= addr && addr <= r.1)
            .min_by_key(|(_, r)| r.1 - r.0)
            .map(|(i, _)| i as u32)
    }

    #[test]
    fn longest_prefix_match_equals_naive_scan_on_random_ipv6_networks() {
        let mut rng = fastrand::Rng::with_seed(61);
        // Addresses share a random /96 base (with the low 32 bits random), so networks of
        // every length from /0 to /128 nest often; probes also hit the space's two ends.
        for round in 0..40 {
            let base = rng.u128(..) & (u128::MAX << 32);
            let near = |rng: &mut fastrand::Rng| base | rng.u128(0..1 << 20);
            let mut ranges: Vec<(u128, u128)> = Vec::new();
            if round % 4 == 0 {
                ranges.push(v6_range(0, 0));
            }
            for _ in 0..(round * 5 + 1) {
                let len = match rng.u8(0..10) {
                    0 => rng.u8(0..=96),
                    _ => rng.u8(96..=128),
                };
                let addr = if rng.u8(0..20) == 0 {
                    [0, u128::MAX][rng.usize(0..2)]
                } else {
                    near(&mut rng)
                };
                let r = v6_range(addr, len);
                if !ranges.contains(&r) {
                    ranges.push(r);
                }
            }
            let (table, parents) = PrefixTable::build(&ranges);
            for i in 0..2000 {
                let addr = match i % 50 {
                    0 => 0,
                    1 => u128::MAX,
                    2 => rng.u128(..),
                    _ => base | rng.u128(0..1 << 21),
                };
                assert_eq!(
                    table.lookup(addr),
                    naive_v6(&ranges, addr),
                    "addr {addr:#x}"
                );
            }
            // Every network's own first and last address resolve as the naive scan says.
            for &(start, end) in &ranges {
                for addr in [start, end, start.saturating_sub(1), end.saturating_add(1)] {
                    assert_eq!(table.lookup(addr), naive_v6(&ranges, addr));
                }
            }
            for (i, parent) in parents.iter().enumerate() {
                let (start, end) = ranges[i];
                let expected = ranges
                    .iter()
                    .copied()
                    .filter(|&r| r != ranges[i] && r.0 <= start && end <= r.1)
                    .min_by_key(|r| r.1 - r.0);
                assert_eq!(parent.map(|p| ranges[p as usize]), expected);
            }
        }
    }
}
