//! The file source: loads `router.routing.file`, then reloads it when it changes (polled), on
//! SIGHUP and on `POST /admin/refresh`. A file that fails to load leaves the current snapshot.

use super::{RefreshOutcome, RefreshReceiver};
use crate::snapshot::{load_snapshot, LoadError, Snapshot};
use crate::state::RouterState;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a snapshot file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Load { path: String, source: LoadError },
}

/// Reads and compiles a snapshot file.
pub fn load_file(path: &Path) -> Result<Snapshot, FileError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| FileError::Read {
        path: shown.clone(),
        source,
    })?;
    load_snapshot(&bytes, &shown).map_err(|source| FileError::Load {
        path: shown,
        source,
    })
}

/// What identifies one version of the file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified_ns: i128,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        len: meta.len(),
        inode: meta.ino(),
    })
}

pub struct FileSource {
    path: PathBuf,
    watch_interval: Option<Duration>,
    state: Arc<RouterState>,
    last_stamp: Mutex<Option<FileStamp>>,
    refresh: Mutex<Option<RefreshReceiver>>,
}

impl FileSource {
    pub fn new(
        path: PathBuf,
        watch_interval: Option<Duration>,
        state: Arc<RouterState>,
        refresh: RefreshReceiver,
    ) -> FileSource {
        FileSource {
            path,
            watch_interval,
            state,
            last_stamp: Mutex::new(None),
            refresh: Mutex::new(Some(refresh)),
        }
    }

    /// Loads the file now and publishes it, or logs why not.
    pub fn reload(&self) -> RefreshOutcome {
        let before = stamp(&self.path);
        *self.last_stamp.lock().unwrap_or_else(|e| e.into_inner()) = before;
        match load_file(&self.path) {
            Ok(snapshot) => {
                let outcome = RefreshOutcome::Accepted {
                    version: snapshot.info.version.clone(),
                    problems: snapshot.info.problems.len(),
                };
                self.state.publish(snapshot);
                outcome
            }
            Err(e) => {
                self.state.fail(&self.path.display().to_string(), &e);
                RefreshOutcome::Failed {
                    reason: e.to_string(),
                }
            }
        }
    }

    /// Reloads when the file's stamp changed since the last attempt (one log line per change,
    /// however long a broken file stays broken).
    fn reload_if_changed(&self) {
        let now = stamp(&self.path);
        let changed = *self.last_stamp.lock().unwrap_or_else(|e| e.into_inner()) != now;
        if changed {
            self.reload();
        }
    }
}

/// Waits for the next tick of an optional interval (forever when there is none).
async fn next_tick(interval: &mut Option<tokio::time::Interval>) {
    match interval.as_mut() {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[async_trait]
impl BackgroundService for FileSource {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(e) => {
                log::error!("cannot listen for SIGHUP, reloads only by file watching: {e}");
                None
            }
        };
        let mut refresh = self
            .refresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let mut tick = self.watch_interval.map(|every| {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(_) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    log::info!("SIGHUP: reloading {}", self.path.display());
                    self.reload();
                }
                Some(request) = async { match refresh.as_mut() { Some(r) => r.recv().await, None => std::future::pending().await } } => {
                    log::info!("refresh requested: reloading {}", self.path.display());
                    let _ = request.reply.send(self.reload());
                }
                _ = next_tick(&mut tick) => self.reload_if_changed(),
            }
        }
    }
}
