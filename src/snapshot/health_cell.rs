//! One edge's health as the request path reads it: an atomic flag shared between the snapshot
//! (which points at it) and the health checker (which flips it). Flipping never rebuilds the
//! snapshot, and a new snapshot takes over the cells of the servers it still has.

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug)]
pub struct HealthCell {
    up: AtomicBool,
}

impl Default for HealthCell {
    /// A server nobody has checked yet counts as up: the admin's availability decides.
    fn default() -> Self {
        HealthCell {
            up: AtomicBool::new(true),
        }
    }
}

impl HealthCell {
    #[inline]
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Sets the state; returns the previous one.
    pub fn set_up(&self, up: bool) -> bool {
        self.up.swap(up, Ordering::Relaxed)
    }
}
