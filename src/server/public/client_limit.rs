//! Open connections per client address, so one address cannot hold all of the router's
//! connections (`router.http.max_connections_per_client`; trusted proxies are exempt).

use rustc_hash::FxHashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

const SHARDS: usize = 64;

/// Connection counts by address, sharded so accepting rarely contends.
pub struct ClientLimiter {
    shards: Vec<Mutex<FxHashMap<IpAddr, u32>>>,
}

/// One admitted connection; dropping it gives the place back.
pub struct ClientSlot {
    limiter: Arc<ClientLimiter>,
    ip: IpAddr,
}

impl Default for ClientLimiter {
    fn default() -> Self {
        ClientLimiter {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl ClientLimiter {
    fn shard(&self, ip: &IpAddr) -> &Mutex<FxHashMap<IpAddr, u32>> {
        let mut hasher = rustc_hash::FxHasher::default();
        ip.hash(&mut hasher);
        &self.shards[hasher.finish() as usize % SHARDS]
    }

    /// A place for one more connection from `ip`, or `None` when it already has `limit`.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<ClientSlot> {
        let mut counts = self.shard(&ip).lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count as usize >= limit {
            if *count == 0 {
                counts.remove(&ip);
            }
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            limiter: Arc::clone(self),
            ip,
        })
    }

    /// Open connections from `ip`.
    #[cfg(test)]
    pub fn count(&self, ip: IpAddr) -> u32 {
        let counts = self.shard(&ip).lock().unwrap_or_else(|e| e.into_inner());
        counts.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = self
            .limiter
            .shard(&self.ip)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_at_most_its_limit_and_places_come_back() {
        let limiter = Arc::new(ClientLimiter::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| limiter.admit(a, 3).unwrap()).collect();
        assert!(limiter.admit(a, 3).is_none());
        let other = limiter
            .admit(b, 3)
            .expect("another address is not affected");
        assert_eq!(limiter.count(a), 3);
        drop(held);
        assert_eq!(limiter.count(a), 0);
        assert!(limiter.admit(a, 3).is_some());
        drop(other);
        assert_eq!(limiter.count(b), 0);
        assert!(limiter.admit(b, 0).is_none(), "a zero limit admits nobody");
        assert_eq!(limiter.count(b), 0);
    }
}
