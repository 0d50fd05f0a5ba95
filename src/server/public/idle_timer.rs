//! A keep-alive connection's idle timer, armed once per connection and moved lazily: a request
//! only stamps the time it arrived; the timer is re-armed when it fires early. A timer per
//! request (Pingora's `fast_timeout` registers one in a B-tree on every wait, never cancelled)
//! cost more instructions than parsing the request head.

use std::pin::Pin;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The idle deadline of one connection: `last_request + timeout`.
pub struct IdleTimer {
    last_request: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    pub fn new(now: std::time::Instant) -> IdleTimer {
        IdleTimer {
            last_request: now.into(),
            sleep: None,
        }
    }

    /// A request arrived at `at`: the silence that counts starts again from there.
    pub fn stamp(&mut self, at: std::time::Instant) {
        self.last_request = at.into();
    }

    /// Resolves when `timeout` has passed since the last stamped request. Cancel-safe: the
    /// timer stays armed between calls (at an earlier deadline, which it then moves), so
    /// waiting again costs no registration.
    pub async fn expired(&mut self, timeout: Duration) {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(self.last_request + timeout)));
        loop {
            sleep.as_mut().await;
            let deadline = self.last_request + timeout;
            if Instant::now() >= deadline {
                return;
            }
            // A request came since the timer was armed: move it to the new deadline.
            sleep.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_after_the_timeout_from_the_last_request() {
        let start = Instant::now();
        let mut timer = IdleTimer::new(start.into_std());
        let timeout = Duration::from_secs(10);
        // A request 4 s in moves the deadline to 14 s.
        tokio::time::advance(Duration::from_secs(4)).await;
        timer.stamp(Instant::now().into_std());
        timer.expired(timeout).await;
        let waited = Instant::now() - start;
        assert!(waited >= Duration::from_secs(14), "fired at {waited:?}");
        assert!(waited < Duration::from_secs(15), "fired at {waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_while_armed_moves_the_deadline() {
        let start = Instant::now();
        let mut timer = IdleTimer::new(start.into_std());
        let timeout = Duration::from_secs(10);
        // Armed for 10 s, abandoned (a request came), stamped at 6 s: fires at 16 s.
        let wait = tokio::time::timeout(Duration::from_secs(6), timer.expired(timeout)).await;
        assert!(wait.is_err(), "fired before its deadline");
        timer.stamp(Instant::now().into_std());
        timer.expired(timeout).await;
        let waited = Instant::now() - start;
        assert!(waited >= Duration::from_secs(16), "fired at {waited:?}");
        assert!(waited < Duration::from_secs(17), "fired at {waited:?}");
    }
}
