//! SIGUSR2: the router starts the binary on disk with `-u` and hands it the listening sockets
//! (the in-place upgrade systemd can trigger); no request fails across it.

use crate::data;
use crate::harness::{Setup, CONFIG_FILE};
use crate::http::try_request;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Kills a process by pid when dropped (the successor is not our child).
pub struct KillOnDrop(pub Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// The process started with `-u` on this config, if any.
pub fn successor(config: &Path) -> Option<u32> {
    let config = config.display().to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            (args.iter().any(|a| a == "-u") && args.contains(&config)).then_some(pid)
        })
}

/// Sends SIGUSR2 to `old` and waits (bounded) until it has exited; returns a guard that kills
/// the successor.
pub fn upgrade_in_place(old: u32, config: &Path, stderr: impl Fn() -> String) -> KillOnDrop {
    let sent = Command::new("kill")
        .args(["-USR2", &old.to_string()])
        .status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -USR2 {old}");
    let mut guard = KillOnDrop(None);
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(old) && Instant::now() < deadline {
        if guard.0.is_none() {
            guard.0 = successor(config);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !alive(old),
        "the old process still runs; stderr:\n{}",
        stderr()
    );
    guard.0 = guard.0.or_else(|| successor(config));
    let new = guard.0.expect("a successor process");
    assert!(alive(new), "the successor died; stderr:\n{}", stderr());
    guard
}

#[test]
fn sigusr2_upgrades_in_place_without_dropping_a_request() {
    let router = Setup::with(data::standard()).start();
    let old = router.pid();
    let config = router.dir().join(CONFIG_FILE);
    let addr = router.v4();

    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            let deadline = Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                match try_request(addr, "GET", "/vod/upgrade", &[]) {
                    Ok(r) if r.status == 302 => ok += 1,
                    Ok(r) => failed.push(r.summary()),
                    Err(e) => failed.push(e),
                }
                std::thread::sleep(Duration::from_millis(3));
            }
            (ok, failed)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let _successor = upgrade_in_place(old, &config, || router.stderr());

    // Served by the successor alone now.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = client.join().unwrap();
    assert!(
        failed.is_empty(),
        "{} failed requests: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 200, "only {ok} requests were served");
    let r = try_request(addr, "GET", "/vod/after", &[]).unwrap();
    assert_eq!(r.status, 302);
    assert!(
        router.stderr().contains("SIGUSR2: new process started"),
        "{}",
        router.stderr()
    );
}
