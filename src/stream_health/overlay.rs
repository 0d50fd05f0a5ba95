//! The stalled (edge, stream) pairs as the request path reads them: one immutable map behind
//! one `ArcSwap`, replaced whole on each transition, and a count read first so that a router
//! with no stalled pair pays one relaxed atomic load per live request and nothing else.

use crate::snapshot::Id;
use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// For each live stream (tv_stream id) with a stalled copy: the ids of the edges whose copy
/// is stalled.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StalledPairs {
    by_stream: FxHashMap<Id, Box<[Id]>>,
}

impl StalledPairs {
    /// From `(edge id, stream id)` pairs, in any order.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Id, Id)>) -> StalledPairs {
        let mut grouped: FxHashMap<Id, Vec<Id>> = FxHashMap::default();
        for (edge, stream) in pairs {
            grouped.entry(stream).or_default().push(edge);
        }
        StalledPairs {
            by_stream: grouped
                .into_iter()
                .map(|(stream, mut edges)| {
                    edges.sort_unstable();
                    edges.dedup();
                    (stream, edges.into_boxed_slice())
                })
                .collect(),
        }
    }

    /// The edges whose copy of `stream` is stalled (`None` when there is none).
    #[inline]
    pub fn edges_stalled_for(&self, stream: Id) -> Option<&[Id]> {
        self.by_stream.get(&stream).map(|edges| &**edges)
    }

    /// Every stream with stalled copies, with the edges that have them.
    pub fn iter(&self) -> impl Iterator<Item = (Id, &[Id])> {
        self.by_stream
            .iter()
            .map(|(&stream, edges)| (stream, &**edges))
    }

    /// The number of stalled pairs.
    pub fn len(&self) -> usize {
        self.by_stream.values().map(|e| e.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_stream.is_empty()
    }
}

/// The published stalled pairs.
#[derive(Debug, Default)]
pub struct StalledOverlay {
    count: AtomicUsize,
    pairs: ArcSwap<StalledPairs>,
    /// Bumped by every publication, so a reader can tell a change it has not seen.
    generation: AtomicU64,
}

impl StalledOverlay {
    /// The stalled pairs, or `None` (one atomic load) when there is none.
    #[inline]
    pub fn view(&self) -> Option<arc_swap::Guard<Arc<StalledPairs>>> {
        if self.count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        Some(self.pairs.load())
    }

    /// Replaces the published pairs.
    pub fn publish(&self, pairs: StalledPairs) {
        let count = pairs.len();
        // The map first, so a reader that sees the count sees (at least) this map.
        self.pairs.store(Arc::new(pairs));
        self.count.store(count, Ordering::Release);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// How many times pairs were published.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_group_by_stream_and_an_empty_overlay_is_not_read() {
        let overlay = StalledOverlay::default();
        assert!(overlay.view().is_none());
        overlay.publish(StalledPairs::from_pairs([
            (2, 11),
            (1, 11),
            (2, 11),
            (3, 12),
        ]));
        let view = overlay.view().expect("pairs published");
        assert_eq!(view.edges_stalled_for(11), Some(&[1, 2][..]));
        assert_eq!(view.edges_stalled_for(12), Some(&[3][..]));
        assert_eq!(view.edges_stalled_for(13), None);
        assert_eq!(overlay.len(), 3);
        overlay.publish(StalledPairs::default());
        assert!(overlay.view().is_none());
    }
}
