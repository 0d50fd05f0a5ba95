//! SIGUSR2: upgrade in place. The running router checks the configuration with the binary now
//! on disk (`-t`), starts it with `-u` (and `-d` when daemonised) and hands it the listening
//! sockets with Pingora's SIGQUIT mechanism. Under systemd the new process is a child of the
//! service's own process, in the service's cgroup, so systemd follows it through the PID file
//! (`systemctl kill -s USR2 cti-kaltura`); this is how nginx upgrades its binary too.

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long the new process must stay up before the sockets are handed over.
const SETTLE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct SelfUpgrade {
    /// The binary to start: the path this process was started from (the new build, once it
    /// has been installed over the old one).
    pub exe: PathBuf,
    /// The configuration file, absolute.
    pub conf: PathBuf,
    /// Start the new process daemonised (`-d`), as this one is.
    pub daemon: bool,
}

impl SelfUpgrade {
    /// Starts the new process; `Ok` once it runs and waits for the sockets.
    fn start_successor(&self) -> Result<(), String> {
        let check = Command::new(&self.exe)
            .arg("-t")
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.exe.display()))?;
        if !check.status.success() {
            return Err(format!(
                "{} -t refused the configuration: {}",
                self.exe.display(),
                String::from_utf8_lossy(&check.stderr).trim()
            ));
        }
        let mut command = Command::new(&self.exe);
        command.arg("-u");
        if self.daemon {
            command.arg("-d");
        }
        let mut child = command
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.exe.display()))?;
        std::thread::sleep(SETTLE);
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the new process exited at once with {status}"));
        }
        // Reap it if it exits (daemonising, it forks and its first process ends).
        std::thread::spawn(move || child.wait());
        Ok(())
    }
}

#[async_trait]
impl BackgroundService for SelfUpgrade {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut usr2 = match signal(SignalKind::user_defined2()) {
            Ok(signal) => signal,
            Err(e) => {
                log::error!("cannot listen for SIGUSR2: in-place upgrades are unavailable: {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = usr2.recv() => {
                    log::info!("SIGUSR2: upgrading to {}", self.exe.display());
                    let upgrade = self.clone();
                    let started = tokio::task::spawn_blocking(move || upgrade.start_successor())
                        .await
                        .unwrap_or_else(|e| Err(format!("the upgrade task failed: {e}")));
                    match started {
                        Ok(()) => {
                            log::info!("SIGUSR2: new process started; handing over the listeners");
                            // SAFETY: sends a signal to this process; Pingora's handler takes it.
                            unsafe {
                                libc::kill(libc::getpid(), libc::SIGQUIT);
                            }
                        }
                        Err(e) => log::error!("SIGUSR2: upgrade abandoned, this process keeps serving: {e}"),
                    }
                }
            }
        }
    }
}
