//! Certificate reloads: on SIGHUP, and when a certificate, key or OCSP file changes
//! (modification time, size, inode, polled). The new set goes into service whole, or not at
//! all: a bad file is refused with one log line and the certificates in service stay.

use super::metrics::TLS_METRICS;
use super::resolver::CertSet;
use super::{certs, TlsState};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub struct CertificateReloader {
    tls: Arc<TlsState>,
    watch_interval: Option<Duration>,
}

/// What identifies a version of a file: modification time, size, inode.
type FileStamp = Option<(i64, i64, u64, u64)>;

fn stamp(path: &Path) -> FileStamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.mtime(), meta.mtime_nsec(), meta.size(), meta.ino()))
}

impl CertificateReloader {
    pub fn new(tls: Arc<TlsState>, watch_interval: Option<Duration>) -> CertificateReloader {
        CertificateReloader {
            tls,
            watch_interval,
        }
    }

    fn stamps(&self) -> Vec<FileStamp> {
        self.tls
            .files
            .iter()
            .flat_map(|f| [Some(&f.cert_file), Some(&f.key_file), f.ocsp_file.as_ref()])
            .map(|p| p.and_then(|p| stamp(p)))
            .collect()
    }

    /// Reads every certificate again; puts the new set in service only when all load.
    pub fn reload(&self, why: &str) -> bool {
        match certs::load_all(&self.tls.files) {
            Ok(loaded) => {
                let names: Vec<_> = loaded.iter().map(|c| c.info.cert_file.clone()).collect();
                self.tls.resolver.replace(CertSet::new(loaded));
                self.tls.publish_expiry();
                TLS_METRICS.reloads.with_label_values(&["ok"]).inc();
                log::info!("TLS certificates reloaded ({why}): {}", names.join(", "));
                true
            }
            Err(problems) => {
                TLS_METRICS.reloads.with_label_values(&["refused"]).inc();
                let what: Vec<_> = problems.iter().map(|(k, m)| format!("{k}: {m}")).collect();
                log::error!(
                    "TLS certificates NOT reloaded ({why}), the ones in service stay: {}",
                    what.join("; ")
                );
                false
            }
        }
    }
}

#[async_trait]
impl BackgroundService for CertificateReloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(signal) => Some(signal),
            Err(e) => {
                log::error!(
                    "cannot listen for SIGHUP: certificates reload on file change only: {e}"
                );
                None
            }
        };
        let mut last = self.stamps();
        // Refreshes the expiry gauges too (they count down).
        let every = self.watch_interval.unwrap_or(Duration::from_secs(60));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let hup = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = hup => {
                    last = self.stamps();
                    self.reload("SIGHUP");
                }
                _ = ticks.tick() => {
                    if self.watch_interval.is_some() {
                        let now = self.stamps();
                        if now != last {
                            last = now;
                            self.reload("files changed");
                            continue;
                        }
                    }
                    self.tls.publish_expiry();
                }
            }
        }
    }
}
