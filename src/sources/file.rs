//! The file source: loads `router.routing.file`, then reloads it when it changes (polled), and
//! on request (SIGHUP, `POST /admin/refresh`). A file that fails to load leaves the current
//! snapshot.

use super::{accept, RefreshOutcome, RefreshReceiver};
use crate::settings::SharedSettings;
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
    settings: SharedSettings,
    state: Arc<RouterState>,
    /// The file last loaded and its stamp then.
    last: Mutex<Option<(PathBuf, Option<FileStamp>)>>,
    refresh: Mutex<Option<RefreshReceiver>>,
}

impl FileSource {
    pub fn new(
        settings: SharedSettings,
        state: Arc<RouterState>,
        refresh: RefreshReceiver,
    ) -> FileSource {
        FileSource {
            settings,
            state,
            last: Mutex::new(None),
            refresh: Mutex::new(Some(refresh)),
        }
    }

    fn path(&self) -> Option<PathBuf> {
        self.settings.load().config.routing.file.clone()
    }

    /// The configured file, remembered with its stamp as the last one attempted.
    fn attempt(&self) -> Result<PathBuf, RefreshOutcome> {
        let Some(path) = self.path() else {
            return Err(RefreshOutcome::Failed {
                reason: "no routing file configured".into(),
            });
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((path.clone(), stamp(&path)));
        Ok(path)
    }

    /// Loads the file on the calling thread and publishes it, or logs why not (at start-up,
    /// before the listeners open, so the first request already has routing data).
    pub fn load_now(&self) -> RefreshOutcome {
        match self.attempt() {
            Ok(path) => accept::accept_file_now(&self.state, &path),
            Err(outcome) => outcome,
        }
    }

    /// Loads the file off the runtime's workers and publishes it, or logs why not.
    pub async fn reload(&self) -> RefreshOutcome {
        match self.attempt() {
            Ok(path) => accept::accept_file(&self.state, path).await,
            Err(outcome) => outcome,
        }
    }

    /// Reloads when the file (or its path, after a config reload) changed since the last
    /// attempt: one log line per change, however long a broken file stays broken.
    async fn reload_if_changed(&self) {
        let Some(path) = self.path() else { return };
        let now = Some((path.clone(), stamp(&path)));
        let changed = *self.last.lock().unwrap_or_else(|e| e.into_inner()) != now;
        if changed {
            self.reload().await;
        }
    }
}

#[async_trait]
impl BackgroundService for FileSource {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut refresh = self
            .refresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // Checked every 250 ms whether a check is due, so a reloaded interval applies at once.
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut last_check = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(request) = super::next_request(&mut refresh) => {
                    log::info!("reloading the routing file on request");
                    let _ = request.reply.send(self.reload().await);
                }
                _ = tick.tick() => {
                    let every = self.settings.load().config.routing.watch_interval;
                    if every.is_some_and(|every| last_check.elapsed() >= every) {
                        last_check = tokio::time::Instant::now();
                        self.reload_if_changed().await;
                    }
                }
            }
        }
    }
}
