//! Up/down decisions with hysteresis: `fall` consecutive failures mark an edge down, `rise`
//! consecutive successes mark it up, so one lost probe or one lucky one changes nothing.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hysteresis {
    pub up: bool,
    pub ok_streak: u32,
    pub fail_streak: u32,
}

impl Hysteresis {
    pub fn new(up: bool) -> Hysteresis {
        Hysteresis {
            up,
            ok_streak: 0,
            fail_streak: 0,
        }
    }

    /// Records one check; returns the new state when it changed.
    pub fn observe(&mut self, success: bool, rise: u32, fall: u32) -> Option<bool> {
        if success {
            self.ok_streak = self.ok_streak.saturating_add(1);
            self.fail_streak = 0;
            if !self.up && self.ok_streak >= rise {
                self.up = true;
                return Some(true);
            }
        } else {
            self.fail_streak = self.fail_streak.saturating_add(1);
            self.ok_streak = 0;
            if self.up && self.fail_streak >= fall {
                self.up = false;
                return Some(false);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(results: &str, rise: u32, fall: u32) -> String {
        let mut h = Hysteresis::new(true);
        results
            .chars()
            .map(|c| {
                h.observe(c == '+', rise, fall);
                if h.up {
                    'U'
                } else {
                    'D'
                }
            })
            .collect()
    }

    #[test]
    fn fall_and_rise_need_consecutive_results() {
        assert_eq!(
            run("-+-+-+", 2, 2),
            "UUUUUU",
            "a flapping edge does not flap routing"
        );
        assert_eq!(run("--", 2, 2), "UD");
        assert_eq!(run("--+-++", 2, 2), "UDDDDU");
        assert_eq!(run("---+++", 3, 3), "UUDDDU");
        assert_eq!(run("-", 1, 1), "D");
    }

    #[test]
    fn transitions_are_reported_once() {
        let mut h = Hysteresis::new(true);
        assert_eq!(h.observe(false, 2, 2), None);
        assert_eq!(h.observe(false, 2, 2), Some(false));
        assert_eq!(h.observe(false, 2, 2), None);
        assert_eq!(h.observe(true, 2, 2), None);
        assert_eq!(h.observe(true, 2, 2), Some(true));
        assert_eq!(h.observe(true, 2, 2), None);
    }
}
