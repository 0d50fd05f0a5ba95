//! Logging: env_logger (`RUST_LOG`, default `info`) behind a rate limit for Pingora's own
//! warnings and errors. A flood of clients hanging up mid-request makes Pingora log one ERROR
//! each, before any router callback can suppress it; at most [`LINES_PER_WINDOW`] lines per
//! target per [`WINDOW`] pass, and the number held back is reported with the next one.

use log::{Level, Log, Metadata, Record};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines of one target allowed per window.
pub const LINES_PER_WINDOW: u32 = 20;
/// The rate-limit window.
pub const WINDOW: Duration = Duration::from_secs(10);

struct Window {
    started: Instant,
    passed: u32,
    held_back: u64,
}

/// Whether a line may pass now, and how many were held back before it.
#[derive(Default)]
pub struct RateLimit {
    windows: Mutex<HashMap<String, Window>>,
}

impl RateLimit {
    /// `Some(held_back)` when a line of `key` may be written at `now`.
    pub fn admit(&self, key: &str, now: Instant) -> Option<u64> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let window = windows.entry(key.to_string()).or_insert(Window {
            started: now,
            passed: 0,
            held_back: 0,
        });
        if now.duration_since(window.started) >= WINDOW {
            window.started = now;
            window.passed = 0;
        }
        if window.passed < LINES_PER_WINDOW {
            window.passed += 1;
            Some(std::mem::take(&mut window.held_back))
        } else {
            window.held_back += 1;
            None
        }
    }
}

struct RateLimitedLogger {
    inner: env_logger::Logger,
    limit: RateLimit,
}

impl Log for RateLimitedLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if !self.inner.matches(record) {
            return;
        }
        let limited = record.target().starts_with("pingora") && record.level() <= Level::Warn;
        if !limited {
            return self.inner.log(record);
        }
        match self.limit.admit(record.target(), Instant::now()) {
            None => {}
            Some(0) => self.inner.log(record),
            Some(held_back) => {
                self.inner.log(record);
                self.inner.log(
                    &Record::builder()
                        .level(Level::Warn)
                        .target("cti_kaltura::logging")
                        .args(format_args!(
                            "{held_back} more {} lines were held back (at most {LINES_PER_WINDOW} per {}s)",
                            record.target(),
                            WINDOW.as_secs()
                        ))
                        .build(),
                );
            }
        }
    }

    fn flush(&self) {
        self.inner.flush()
    }
}

/// Installs the logger; call once, first thing.
pub fn init() {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let max_level = inner.filter();
    let logger = RateLimitedLogger {
        inner,
        limit: RateLimit::default(),
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max_level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_window_and_the_rest_is_counted() {
        let limit = RateLimit::default();
        let t0 = Instant::now();
        let passed = (0..1000)
            .filter(|_| limit.admit("pingora_proxy", t0).is_some())
            .count();
        assert_eq!(passed, LINES_PER_WINDOW as usize);
        // Another target has its own budget.
        assert_eq!(limit.admit("pingora_core", t0), Some(0));
        // Next window: the first line reports what was held back.
        assert_eq!(
            limit.admit("pingora_proxy", t0 + WINDOW),
            Some(1000 - LINES_PER_WINDOW as u64)
        );
        assert_eq!(limit.admit("pingora_proxy", t0 + WINDOW), Some(0));
    }
}
