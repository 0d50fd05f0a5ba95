//! The configuration in force, swappable as a whole on SIGHUP: the request path and the
//! background tasks read it through one `ArcSwap` (a load per use, no lock), so a reload
//! applies atomically and nothing reads half of an old and half of a new config.

use crate::config::Config;
use crate::routing::RoutingPolicy;
use arc_swap::ArcSwap;
use std::sync::Arc;

/// A validated config and what the routing core derives from it.
#[derive(Debug)]
pub struct Settings {
    pub config: Config,
    pub policy: RoutingPolicy,
}

impl Settings {
    pub fn new(config: Config) -> Settings {
        let policy = RoutingPolicy::from_config(&config);
        Settings { config, policy }
    }
}

/// The settings shared by every component.
#[derive(Debug, Clone)]
pub struct SharedSettings(Arc<ArcSwap<Settings>>);

impl SharedSettings {
    pub fn new(config: Config) -> SharedSettings {
        SharedSettings(Arc::new(ArcSwap::from_pointee(Settings::new(config))))
    }

    /// The lock-free read used per request.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Settings>> {
        self.0.load()
    }

    pub fn current(&self) -> Arc<Settings> {
        self.0.load_full()
    }

    pub fn store(&self, config: Config) {
        self.0.store(Arc::new(Settings::new(config)));
    }
}

/// Settings a running process cannot change: what a reload keeps from `old`, with the key
/// paths that changed and why they need a restart or upgrade.
pub fn keep_fixed_settings(old: &Config, new: &mut Config) -> Vec<String> {
    let mut kept = Vec::new();
    if old.listen != new.listen {
        kept.push(
            "router.listen: new listeners need a binary upgrade (-u) or a restart".to_string(),
        );
        new.listen = old.listen.clone();
    }
    if old.management_listen != new.management_listen {
        kept.push(
            "router.management_listen: a new listener needs a binary upgrade (-u) or a restart"
                .to_string(),
        );
        new.management_listen = old.management_listen;
    }
    let kind = |c: &Config| c.routing.file.is_some();
    if kind(old) != kind(new) {
        kept.push(
            "router.routing: switching between `file` and `admin_api` needs a restart".to_string(),
        );
        new.routing = old.routing.clone();
    } else if old.routing.state_dir != new.routing.state_dir {
        kept.push("router.routing.state_dir: needs a restart".to_string());
        new.routing.state_dir = old.routing.state_dir.clone();
    }
    // The certificates' contents reload (SIGHUP, file change) and the handshake timeout
    // applies to new connections; listeners, file names and the h2 settings are fixed.
    let mut fixed = new.tls.clone();
    fixed.handshake_timeout = old.tls.handshake_timeout;
    if old.tls != fixed {
        kept.push(
            "router.tls: listeners, certificate files and h2 settings need a binary upgrade (-u) or a restart (the files' contents reload on SIGHUP)"
                .to_string(),
        );
        let handshake_timeout = new.tls.handshake_timeout;
        new.tls = old.tls.clone();
        new.tls.handshake_timeout = handshake_timeout;
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        Config::from_yaml(yaml).unwrap()
    }

    #[test]
    fn listeners_and_source_kind_are_kept_the_rest_applies() {
        let old = config("router:\n  listen: [\"127.0.0.1:1\"]\n  routing: {file: a.yaml}\n");
        let mut new = config(
            "router:\n  listen: [\"127.0.0.1:2\"]\n  routing: {admin_api: {url: \"http://x/\"}}\n  client_ip: {trusted_proxies: [\"10.0.0.0/8\"]}\n",
        );
        let kept = keep_fixed_settings(&old, &mut new);
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert!(kept[0].starts_with("router.listen:"));
        assert!(kept[1].starts_with("router.routing:"));
        assert_eq!(new.listen, old.listen);
        assert_eq!(new.routing.file, old.routing.file);
        assert!(new
            .client_ip
            .trusted_proxies
            .contains("10.1.1.1".parse().unwrap()));
        let mut same = config("router:\n  listen: [\"127.0.0.1:1\"]\n  routing: {file: b.yaml}\n");
        assert!(keep_fixed_settings(&old, &mut same).is_empty());
        assert_eq!(
            same.routing.file.as_deref(),
            Some(std::path::Path::new("b.yaml"))
        );
    }
}
