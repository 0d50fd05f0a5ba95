//! The probe budget: a token bucket that grants at most `probes_per_sec` probes per second,
//! spread over time (each tick grants only what accrued since the last one, with a burst of
//! at most one tick's worth), and the round-robin queue of pairs that spends it.

use std::collections::VecDeque;

/// Grants probes at a fixed rate. Tokens are counted in thousandths of a probe, so the
/// arithmetic is exact.
#[derive(Debug, Clone)]
pub struct ProbeBudget {
    per_sec: u64,
    /// The most tokens kept between ticks (one tick's worth, at least one probe).
    burst_milli: u64,
    tokens_milli: u64,
    last_ms: Option<u64>,
}

impl ProbeBudget {
    /// `per_sec` probes per second; ticks come every `tick_ms`.
    pub fn new(per_sec: u32, tick_ms: u64) -> ProbeBudget {
        let per_sec = u64::from(per_sec.max(1));
        ProbeBudget {
            per_sec,
            burst_milli: (per_sec * tick_ms).max(1000),
            tokens_milli: 0,
            last_ms: None,
        }
    }

    /// The probes allowed at `now_ms` (monotonic milliseconds); the first call allows one.
    pub fn grant(&mut self, now_ms: u64) -> usize {
        let accrued = match self.last_ms {
            None => 1000,
            Some(last) => self.per_sec.saturating_mul(now_ms.saturating_sub(last)),
        };
        self.last_ms = Some(now_ms);
        self.tokens_milli = self
            .tokens_milli
            .saturating_add(accrued)
            .min(self.burst_milli);
        let granted = self.tokens_milli / 1000;
        self.tokens_milli -= granted * 1000;
        granted as usize
    }
}

/// The pairs still to probe in the current round, in order.
#[derive(Debug)]
pub struct RoundQueue<T> {
    pending: VecDeque<T>,
    /// When the current round started (monotonic ms).
    started_ms: Option<u64>,
}

impl<T> Default for RoundQueue<T> {
    fn default() -> Self {
        RoundQueue {
            pending: VecDeque::new(),
            started_ms: None,
        }
    }
}

impl<T> RoundQueue<T> {
    /// Whether a new round may start: the last one is done and began at least
    /// `min_round_ms` ago.
    pub fn wants_new_round(&self, now_ms: u64, min_round_ms: u64) -> bool {
        self.pending.is_empty()
            && self
                .started_ms
                .is_none_or(|at| now_ms.saturating_sub(at) >= min_round_ms)
    }

    /// Starts a round over `targets`.
    pub fn start_round(&mut self, targets: impl IntoIterator<Item = T>, now_ms: u64) {
        self.pending = targets.into_iter().collect();
        self.started_ms = Some(now_ms);
    }

    /// Takes up to `n` pairs of the current round.
    pub fn take(&mut self, n: usize) -> Vec<T> {
        let n = n.min(self.pending.len());
        self.pending.drain(..n).collect()
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_grants_its_rate_spread_over_ticks() {
        let mut budget = ProbeBudget::new(20, 50);
        let mut granted = Vec::new();
        for tick in 0..=200u64 {
            granted.push(budget.grant(tick * 50));
        }
        let total: usize = granted.iter().sum();
        // 10 s at 20/s, plus the first probe.
        assert_eq!(total, 201);
        assert!(
            granted.iter().all(|&g| g <= 1),
            "one tick's worth at most per tick: {granted:?}"
        );
    }

    #[test]
    fn an_idle_budget_does_not_hoard() {
        let mut budget = ProbeBudget::new(100, 50);
        budget.grant(0);
        // A stall of the runtime for 10 s does not release 1,000 probes at once.
        assert_eq!(budget.grant(10_000), 5);
        assert_eq!(budget.grant(10_050), 5);
    }

    #[test]
    fn low_rates_accumulate_across_ticks() {
        let mut budget = ProbeBudget::new(1, 50);
        let granted: usize = (0..=100u64).map(|t| budget.grant(t * 50)).sum();
        assert_eq!(granted, 6, "the first, then one a second for 5 s");
    }

    #[test]
    fn rounds_run_to_the_end_and_never_restart_early() {
        let mut queue = RoundQueue::default();
        assert!(queue.wants_new_round(0, 1000));
        queue.start_round(1..=5, 0);
        assert_eq!(queue.take(2), vec![1, 2]);
        assert!(!queue.wants_new_round(5000, 1000), "the round is not done");
        assert_eq!(queue.take(10), vec![3, 4, 5]);
        assert!(!queue.wants_new_round(999, 1000), "too soon");
        assert!(queue.wants_new_round(1000, 1000));
        assert_eq!(queue.pending(), 0);
    }

    /// A hot set larger than the budget covers: probes per window stay at the rate.
    #[test]
    fn a_hot_set_larger_than_the_budget_is_probed_at_the_budget() {
        let mut budget = ProbeBudget::new(10, 50);
        let mut queue = RoundQueue::default();
        let mut probed_per_sec = [0usize; 10];
        for tick in 0..200u64 {
            let now = tick * 50;
            if queue.wants_new_round(now, 1000) {
                queue.start_round(0..500, now);
            }
            probed_per_sec[(now / 1000) as usize] += queue.take(budget.grant(now)).len();
        }
        assert!(
            probed_per_sec.iter().all(|&n| n <= 11),
            "{probed_per_sec:?}"
        );
        assert!(
            probed_per_sec[1..].iter().all(|&n| n >= 9),
            "{probed_per_sec:?}"
        );
    }
}
