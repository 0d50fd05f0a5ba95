//! Whether one edge's copy of one live stream advances: a small state machine fed with what
//! each probe or proxied playlist showed. Stalled when the position has not changed for
//! `stall_factor` × target duration, or when the edge answered 404; advancing again on the
//! first change of position after that.

use super::playlist::Position;

/// One look at a pair's copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// A live playlist at this position.
    At(Position),
    /// The edge does not serve the stream (404).
    NotFound,
}

/// Why a pair is stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallCause {
    /// Same position for longer than `stall_factor` × target duration.
    NotAdvancing,
    /// The edge answered 404 for the stream.
    NotFound,
}

impl StallCause {
    pub fn as_str(self) -> &'static str {
        match self {
            StallCause::NotAdvancing => "not_advancing",
            StallCause::NotFound => "not_found",
        }
    }
}

/// A change of a pair's state, to log and publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Stalled(StallCause),
    Advancing,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Liveness {
    /// The last position seen.
    pub last: Option<Position>,
    /// When the current position was first seen (unix ms).
    pub changed_at_ms: u64,
    /// When the pair was last looked at (unix ms).
    pub observed_at_ms: u64,
    /// Since when, and why, the pair is stalled.
    pub stalled: Option<(u64, StallCause)>,
}

impl Liveness {
    pub fn is_stalled(&self) -> bool {
        self.stalled.is_some()
    }

    /// Applies one observation made at `now_ms`; returns the transition it caused.
    pub fn observe(
        &mut self,
        observation: Observation,
        now_ms: u64,
        stall_factor: u32,
    ) -> Option<Transition> {
        self.observed_at_ms = now_ms;
        let position = match observation {
            Observation::NotFound => {
                if let Some((_, cause)) = &mut self.stalled {
                    // Already stalled: still since then, now for this reason.
                    *cause = StallCause::NotFound;
                    return None;
                }
                self.stalled = Some((now_ms, StallCause::NotFound));
                return Some(Transition::Stalled(StallCause::NotFound));
            }
            Observation::At(position) => position,
        };
        let moved = self
            .last
            .is_some_and(|last| last.fingerprint != position.fingerprint);
        let first = self.last.is_none();
        self.last = Some(position);
        if moved || first {
            self.changed_at_ms = now_ms;
        }
        if moved && self.stalled.is_some() {
            self.stalled = None;
            return Some(Transition::Advancing);
        }
        let allowed_ms = position
            .target_duration_ms
            .saturating_mul(u64::from(stall_factor));
        if self.stalled.is_none() && now_ms.saturating_sub(self.changed_at_ms) > allowed_ms {
            self.stalled = Some((now_ms, StallCause::NotAdvancing));
            return Some(Transition::Stalled(StallCause::NotAdvancing));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(sequence: u64) -> Observation {
        Observation::At(Position {
            sequence,
            fingerprint: sequence * 7919,
            target_duration_ms: 1000,
        })
    }

    /// Feeds `(ms, observation)` in order; returns the transitions with their times.
    fn run(steps: &[(u64, Observation)]) -> Vec<(u64, Transition)> {
        let mut l = Liveness::default();
        steps
            .iter()
            .filter_map(|&(ms, o)| l.observe(o, ms, 3).map(|t| (ms, t)))
            .collect()
    }

    #[test]
    fn an_advancing_copy_never_stalls() {
        let steps: Vec<_> = (0..20).map(|i| (i * 1000, at(i))).collect();
        assert_eq!(run(&steps), vec![]);
        // Seen rarely but moving each time: still advancing.
        assert_eq!(
            run(&[(0, at(1)), (10_000, at(11)), (20_000, at(21))]),
            vec![]
        );
    }

    #[test]
    fn a_frozen_copy_stalls_after_k_target_durations_and_comes_back_on_a_change() {
        let frozen = at(5);
        let transitions = run(&[
            (0, at(4)),
            (1000, frozen),
            (2000, frozen),
            (4000, frozen),
            (4001, frozen),
            (5000, frozen),
            (6000, at(6)),
            (7000, at(7)),
        ]);
        assert_eq!(
            transitions,
            vec![
                (4001, Transition::Stalled(StallCause::NotAdvancing)),
                (6000, Transition::Advancing)
            ],
            "3 × 1 s after the position was first seen, not before; back on the next change"
        );
    }

    #[test]
    fn a_copy_seen_frozen_from_the_start_stalls_only_after_the_whole_window() {
        let frozen = at(9);
        assert_eq!(run(&[(0, frozen), (3000, frozen)]), vec![]);
        assert_eq!(
            run(&[(0, frozen), (3001, frozen)]),
            vec![(3001, Transition::Stalled(StallCause::NotAdvancing))]
        );
    }

    #[test]
    fn a_stalled_copy_that_starts_answering_404_stays_stalled_since_the_first_time() {
        let mut l = Liveness::default();
        let frozen = at(2);
        l.observe(frozen, 0, 3);
        assert!(l.observe(frozen, 3500, 3).is_some());
        assert_eq!(l.observe(Observation::NotFound, 4000, 3), None);
        assert_eq!(l.stalled, Some((3500, StallCause::NotFound)));
    }

    #[test]
    fn not_found_stalls_at_once_and_needs_a_moving_copy_to_come_back() {
        let transitions = run(&[
            (0, at(1)),
            (500, Observation::NotFound),
            (900, Observation::NotFound),
            (1000, at(1)),
            (2000, at(2)),
        ]);
        assert_eq!(
            transitions,
            vec![
                (500, Transition::Stalled(StallCause::NotFound)),
                (2000, Transition::Advancing)
            ],
            "a 404 stalls once; the same position again is not advancing"
        );
        // A copy that 404'd from the start comes back after two different positions.
        assert_eq!(
            run(&[(0, Observation::NotFound), (100, at(3)), (1100, at(4))]),
            vec![
                (0, Transition::Stalled(StallCause::NotFound)),
                (1100, Transition::Advancing)
            ]
        );
    }
}
