//! Addresses of edges that have a `domain_name` but no `ip`, for proxy mode: looked up off the
//! worker threads (tokio's resolver runs `getaddrinfo` on its blocking pool), bounded in time,
//! and cached briefly, both answers and failures, so that a name that does not resolve costs
//! one lookup per few seconds and never blocks or fails a request it was not asked for.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a resolved address is used before it is looked up again.
const RESOLVED_FOR: Duration = Duration::from_secs(30);
/// How long a name that did not resolve is not looked up again.
const FAILED_FOR: Duration = Duration::from_secs(5);
/// Most names remembered; the cache starts over past it (edges are few; this only bounds a
/// snapshot with an absurd number of unresolved edges).
const MAX_NAMES: usize = 4096;

#[derive(Default)]
pub struct EdgeResolver {
    cache: Mutex<HashMap<(String, u16), Resolved>>,
}

#[derive(Clone, Copy)]
struct Resolved {
    addr: Option<SocketAddr>,
    until: Instant,
}

impl EdgeResolver {
    /// The first address `name:port` resolves to within `limit`; `None` when it does not
    /// resolve (or not in time). A name that is an IP literal needs no lookup.
    pub async fn resolve(&self, name: &str, port: u16, limit: Duration) -> Option<SocketAddr> {
        if let Ok(ip) = name.parse() {
            return Some(SocketAddr::new(ip, port));
        }
        let key = (name.to_string(), port);
        let now = Instant::now();
        if let Some(hit) = self.cached(&key, now) {
            return hit.addr;
        }
        let addr = match tokio::time::timeout(limit, tokio::net::lookup_host((name, port))).await {
            Ok(Ok(mut addrs)) => addrs.next(),
            Ok(Err(e)) => {
                log::warn!("proxy: edge {name} does not resolve ({e}); trying again in 5 s");
                None
            }
            Err(_) => {
                log::warn!("proxy: edge {name} did not resolve within {limit:?}");
                None
            }
        };
        let until = now
            + if addr.is_some() {
                RESOLVED_FOR
            } else {
                FAILED_FOR
            };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_NAMES {
            cache.clear();
        }
        cache.insert(key, Resolved { addr, until });
        addr
    }

    fn cached(&self, key: &(String, u16), now: Instant) -> Option<Resolved> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(key).copied().filter(|hit| hit.until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_resolve_to_themselves_and_unknown_names_to_nothing() {
        let resolver = EdgeResolver::default();
        let limit = Duration::from_secs(5);
        assert_eq!(
            resolver.resolve("127.0.0.1", 8080, limit).await,
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            resolver.resolve("::1", 80, limit).await,
            Some("[::1]:80".parse().unwrap())
        );
        let local = resolver.resolve("localhost", 81, limit).await;
        assert!(local.is_some_and(|a| a.ip().is_loopback() && a.port() == 81));
        // RFC 6761: `.invalid` never resolves.
        assert_eq!(resolver.resolve("edge.invalid", 80, limit).await, None);
        // The failure is remembered.
        let key = ("edge.invalid".to_string(), 80);
        assert!(resolver.cached(&key, Instant::now()).is_some());
    }
}
