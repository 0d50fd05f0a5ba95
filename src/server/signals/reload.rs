//! SIGHUP: re-read the YAML config and apply everything under `router:` that needs no new
//! sockets, atomically; report what needs an upgrade; refuse an invalid file whole. Then ask
//! the routing source to reload (the file is re-read, the admin API is asked at once).

use crate::config::Config;
use crate::settings::{keep_fixed_settings, SharedSettings};
use crate::sources::{RefreshRequest, RefreshSender};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::PathBuf;

pub struct ConfigReloader {
    path: PathBuf,
    settings: SharedSettings,
    refresh: RefreshSender,
}

impl ConfigReloader {
    pub fn new(path: PathBuf, settings: SharedSettings, refresh: RefreshSender) -> ConfigReloader {
        ConfigReloader {
            path,
            settings,
            refresh,
        }
    }

    /// Re-reads the config; returns whether a new one was applied.
    pub fn reload(&self) -> bool {
        let shown = self.path.display();
        let mut config = match Config::load_from_yaml(&self.path) {
            Ok(config) => config,
            Err(errors) => {
                for e in &errors.0 {
                    log::error!("SIGHUP: {shown}: {e}");
                }
                log::error!(
                    "SIGHUP: {shown} refused ({} error(s)); the running configuration stays",
                    errors.0.len()
                );
                return false;
            }
        };
        let old = self.settings.current();
        for kept in keep_fixed_settings(&old.config, &mut config) {
            log::warn!("SIGHUP: {kept}; the running value stays");
        }
        self.settings.store(config);
        log::info!("SIGHUP: configuration {shown} applied");
        true
    }
}

#[async_trait]
impl BackgroundService for ConfigReloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(signal) => signal,
            Err(e) => {
                log::error!("cannot listen for SIGHUP: reloads are unavailable: {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = hangup.recv() => {
                    log::info!("SIGHUP: reloading {} and the routing data", self.path.display());
                    self.reload();
                    let (reply, _outcome) = tokio::sync::oneshot::channel();
                    if self.refresh.send(RefreshRequest { force: false, reply }).await.is_err() {
                        log::error!("SIGHUP: the routing source is not running");
                    }
                }
            }
        }
    }
}
