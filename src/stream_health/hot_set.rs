//! The hot set: which live streams players asked for recently, and in which region. The
//! request path records each live decision in a fixed, lossy table of atomics (no lock, no
//! allocation; a slot already holding the same entry this second is not written again); the
//! prober reads the entries younger than the TTL, most recent first, up to the size cap. Two
//! entries hashing to one slot overwrite each other: a stream that players keep asking for
//! comes back at its next request.

use crate::snapshot::Id;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Slots in the table: far more than the largest hot set allowed, so collisions are rare.
pub const SLOTS: usize = 1 << 16;
const _: () = assert!(SLOTS >= 3 * crate::config::MAX_HOT_SET);

/// A stream asked for in a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HotEntry {
    pub stream_id: Id,
    pub region_id: Id,
}

pub struct HotRecorder {
    /// Stream id + 1 (0: empty).
    streams: Box<[AtomicU64]>,
    regions: Box<[AtomicU64]>,
    /// [`HotRecorder::clock`] when last recorded.
    stamps: Box<[AtomicU32]>,
    /// Coarse seconds, advanced by the prober; 0 until it runs (then nothing is recorded).
    clock: AtomicU32,
}

impl std::fmt::Debug for HotRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotRecorder")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Default for HotRecorder {
    fn default() -> Self {
        HotRecorder {
            streams: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            regions: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            stamps: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
            clock: AtomicU32::new(0),
        }
    }
}

fn slot_of(entry: HotEntry) -> usize {
    let mut hasher = rustc_hash::FxHasher::default();
    entry.hash(&mut hasher);
    // FxHash's high bits are the well-mixed ones.
    (hasher.finish() >> 48) as usize & (SLOTS - 1)
}

impl HotRecorder {
    /// Records a live request (the request path): a few relaxed atomic operations.
    #[inline]
    pub fn record(&self, entry: HotEntry) {
        let now = self.clock.load(Ordering::Relaxed);
        if now == 0 {
            return;
        }
        let slot = slot_of(entry);
        let key = (entry.stream_id as u64).wrapping_add(1);
        if self.stamps[slot].load(Ordering::Relaxed) == now
            && self.streams[slot].load(Ordering::Relaxed) == key
            && self.regions[slot].load(Ordering::Relaxed) == entry.region_id as u64
        {
            return;
        }
        self.streams[slot].store(key, Ordering::Relaxed);
        self.regions[slot].store(entry.region_id as u64, Ordering::Relaxed);
        self.stamps[slot].store(now, Ordering::Relaxed);
    }

    /// Advances the coarse clock (the prober, on each tick) to `secs` (at least 1).
    pub fn set_clock(&self, secs: u32) {
        self.clock.store(secs.max(1), Ordering::Relaxed);
    }

    /// The entries recorded within the last `ttl_secs`, most recent first, at most `cap`.
    pub fn hot(&self, ttl_secs: u32, cap: usize) -> Vec<HotEntry> {
        let now = self.clock.load(Ordering::Relaxed);
        let mut found: Vec<(u32, HotEntry)> = (0..SLOTS)
            .filter_map(|slot| {
                let key = self.streams[slot].load(Ordering::Relaxed);
                let stamp = self.stamps[slot].load(Ordering::Relaxed);
                if key == 0 || stamp == 0 || now.saturating_sub(stamp) > ttl_secs {
                    return None;
                }
                let entry = HotEntry {
                    stream_id: key.wrapping_sub(1) as Id,
                    region_id: self.regions[slot].load(Ordering::Relaxed) as Id,
                };
                Some((stamp, entry))
            })
            .collect();
        found.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        found.truncate(cap);
        found.into_iter().map(|(_, e)| e).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(stream_id: Id, region_id: Id) -> HotEntry {
        HotEntry {
            stream_id,
            region_id,
        }
    }

    #[test]
    fn nothing_is_recorded_before_the_clock_runs() {
        let hot = HotRecorder::default();
        hot.record(entry(1, 1));
        hot.set_clock(1);
        assert_eq!(hot.hot(60, 10), vec![]);
    }

    #[test]
    fn entries_age_out_and_the_newest_win_the_cap() {
        let hot = HotRecorder::default();
        hot.set_clock(10);
        hot.record(entry(1, 7));
        hot.record(entry(1, 7));
        hot.set_clock(20);
        hot.record(entry(2, 7));
        hot.record(entry(3, 8));
        assert_eq!(hot.hot(60, 10), vec![entry(2, 7), entry(3, 8), entry(1, 7)]);
        assert_eq!(hot.hot(60, 2), vec![entry(2, 7), entry(3, 8)], "capped");
        hot.set_clock(75);
        assert_eq!(
            hot.hot(60, 10),
            vec![entry(2, 7), entry(3, 8)],
            "1 aged out"
        );
        hot.record(entry(1, 7));
        assert_eq!(hot.hot(60, 1), vec![entry(1, 7)], "asked for again");
    }

    #[test]
    fn many_streams_fit_with_few_losses() {
        let hot = HotRecorder::default();
        hot.set_clock(1);
        for stream in 0..10_000 {
            hot.record(entry(stream, 1));
        }
        let kept = hot.hot(60, usize::MAX).len();
        assert!(kept > 9_000, "only {kept} of 10,000 kept");
    }
}
