//! Zero-downtime binary upgrades under client traffic: by hand (a second process started with
//! `-u` takes the listening sockets, then the old one gets SIGQUIT) and in place (SIGUSR2: the
//! router starts the binary on disk with `-u` itself, as systemd can trigger). No request fails
//! across either.

use crate::data::{self, *};
use crate::harness::{bin, poll, try_poll_for, ChildGuard, Setup, CONFIG_FILE};
use crate::http::{raw_request, try_request, Conn, Response};
use crate::prometheus::{metric_value, scrape, REQUESTS};
use crate::routes::assert_redirect;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// Whether process `pid` has exited (gone, or a zombie not yet reaped by its parent).
fn exited(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// [`exited`] as a probe for polling.
fn exited_yet(pid: u32) -> Result<(), String> {
    if exited(pid) {
        Ok(())
    } else {
        Err(format!("process {pid} still runs"))
    }
}

/// The process started with `-u` on this config, if any.
fn successor(config: &Path) -> Option<u32> {
    let config = config.display().to_string();
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
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
    let gone = try_poll_for(
        "the old process exited after SIGUSR2",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || {
            if guard.0.is_none() {
                guard.0 = successor(config);
            }
            exited_yet(old)
        },
    );
    gone.unwrap_or_else(|e| panic!("{e}; stderr:\n{}", stderr()));
    guard.0 = guard.0.or_else(|| successor(config));
    let new = guard.0.expect("a successor process");
    assert!(!exited(new), "the successor died; stderr:\n{}", stderr());
    guard
}

/// Polls until every client has had some answers: traffic flows before the upgrade starts.
fn wait_for_traffic(served: &[AtomicUsize]) {
    poll("client traffic before the upgrade", || {
        let counts: Vec<usize> = served.iter().map(|n| n.load(Ordering::Acquire)).collect();
        if counts.iter().all(|&n| n >= 20) {
            Ok(())
        } else {
            Err(format!("answers so far: {counts:?}"))
        }
    });
}

#[test]
fn sigusr2_upgrades_in_place_without_dropping_a_request() {
    let router = Setup::with(data::standard()).start();
    let old = router.pid();
    let config = router.dir().join(CONFIG_FILE);
    let addr = router.v4();

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let client = {
        let (stop, served) = (stop.clone(), served.clone());
        std::thread::spawn(move || {
            let mut failed = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                match try_request(addr, "GET", "/vod/upgrade", &[]) {
                    Ok(r) if r.status == 302 => {
                        served.fetch_add(1, Ordering::Release);
                    }
                    Ok(r) => failed.push(r.summary()),
                    Err(e) => failed.push(e),
                }
                // The pace of the traffic the upgrade must not disturb.
                std::thread::sleep(Duration::from_millis(3));
            }
            failed
        })
    };
    wait_for_traffic(std::slice::from_ref(&*served));
    let _successor = upgrade_in_place(old, &config, || router.stderr());

    // Served by the successor alone for a while (part of the test: no request fails).
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let failed = client.join().unwrap();
    let ok = served.load(Ordering::Acquire);
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

/// What one client thread saw.
#[derive(Default)]
struct ClientRun {
    /// When each correct answer arrived.
    served: Vec<Instant>,
    /// First attempts that failed (each retried once on a fresh connection).
    retries: Vec<String>,
    /// Requests that failed after their retry, or got a wrong answer.
    failures: Vec<String>,
    /// Connections opened.
    connections: usize,
}

impl ClientRun {
    fn max_gap(&self) -> Duration {
        self.served
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    }

    fn served_after(&self, at: Instant) -> usize {
        self.served.iter().filter(|&&t| t > at).count()
    }
}

/// One request on `conn` (opened first when there is none); the connection is dropped when
/// it is not to be reused.
fn attempt(
    conn: &mut Option<Conn>,
    addr: SocketAddr,
    target: &str,
    keep_alive: bool,
) -> Result<Response, String> {
    let open = match conn {
        Some(open) => open,
        None => conn.insert(Conn::try_open(addr)?),
    };
    let headers: &[(&str, &str)] = if keep_alive {
        &[]
    } else {
        &[("Connection", "close")]
    };
    let result = open
        .try_send(&raw_request("GET", target, headers))
        .and_then(|()| open.try_read_response(false));
    let reusable = keep_alive
        && result.as_ref().is_ok_and(|r| {
            !r.header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        });
    if !reusable {
        *conn = None;
    }
    result
}

/// Sends `GET target` every 2 ms until `stop` (or `hard_deadline`), expecting a 302 to
/// `location` and counting those in `served`; a failed attempt is retried once on a fresh
/// connection.
fn keep_requesting(
    addr: SocketAddr,
    target: &str,
    location: &str,
    keep_alive: bool,
    stop: &AtomicBool,
    hard_deadline: Instant,
    served: &AtomicUsize,
) -> ClientRun {
    let mut run = ClientRun::default();
    let mut conn = None;
    while !stop.load(Ordering::Acquire) && Instant::now() < hard_deadline {
        let reused = conn.is_some();
        run.connections += usize::from(!reused);
        let answer = match attempt(&mut conn, addr, target, keep_alive) {
            Ok(answer) => Ok(answer),
            Err(first) => {
                let on = if reused { "reused" } else { "fresh" };
                run.retries.push(format!("{on} connection: {first}"));
                conn = None;
                run.connections += 1;
                attempt(&mut conn, addr, target, keep_alive)
                    .map_err(|e| format!("{e} (after a retry; first attempt: {first})"))
            }
        };
        match answer {
            Ok(r) if r.status == 302 && r.header("location") == Some(location) => {
                run.served.push(Instant::now());
                served.fetch_add(1, Ordering::Release);
            }
            Ok(r) => run.failures.push(format!("wrong answer {}", r.summary())),
            Err(e) => run.failures.push(e),
        }
        // The pace of the traffic the upgrade must not disturb.
        std::thread::sleep(Duration::from_millis(2));
    }
    run
}

/// Sets the flag when dropped, so client threads stop however the test ends.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[test]
fn binary_upgrade_under_continuous_traffic_drops_no_request() {
    // The harness's config (grace_period_seconds 0, graceful_shutdown_timeout_seconds 1) is
    // enough: no request failed with it. The old process keeps accepting for Pingora's fixed
    // 5 s after it has handed its sockets over (CLOSE_TIMEOUT), then stops; the clients run
    // until it has exited and a second beyond. During those 5 s the old process answers with
    // `Connection: close`, so the keep-alive client moves to a new connection after an answer
    // instead of meeting its connection closed under a request. A client that does meet a
    // closed connection retries its idempotent GET once on a fresh one, like any HTTP client;
    // retries are counted and printed. Asserted: no request failed after its one retry, and
    // the busy keep-alive client never needed a retry.
    let router = Setup::with(data::standard()).start();
    let old_pid = router.pid();
    let dir = router.dir().to_path_buf();
    let upgrade_sock = dir.join("upgrade.sock");
    let new_stderr_path = dir.join("upgraded.stderr");
    let stop = AtomicBool::new(false);
    let mut upgraded: Option<ChildGuard> = None;
    let hard_deadline = Instant::now() + Duration::from_secs(20);

    let served = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let (keep_alive, fresh, old_exited_at) = std::thread::scope(|s| {
        let _stop_guard = StopOnDrop(&stop);
        let (v4_addr, v6_addr) = (router.v4(), router.v6());
        let stop = &stop;
        let [served_v4, served_v6] = &served;
        let keep_alive = s.spawn(move || {
            keep_requesting(
                v4_addr,
                LIVE,
                LIVE_LOCATION,
                true,
                stop,
                hard_deadline,
                served_v4,
            )
        });
        let fresh = s.spawn(move || {
            let location = format!("http://{EDGE_V6}/live/one.m3u8");
            keep_requesting(
                v6_addr,
                LIVE,
                &location,
                false,
                stop,
                hard_deadline,
                served_v6,
            )
        });
        wait_for_traffic(&served);

        // The new process: same binary, same config, same environment, `-u`.
        let child = Command::new(bin())
            .arg("-u")
            .arg("-c")
            .arg(dir.join(CONFIG_FILE))
            .current_dir(dir.join("run"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("upgraded.stdout")).expect("stdout file"))
            .stderr(fs::File::create(&new_stderr_path).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} -u: {e}", bin()));
        let new_process = upgraded.insert(ChildGuard(child));
        // Up when it waits for the sockets on the upgrade socket.
        poll("the new process waiting for the listening sockets", || {
            if let Some(status) = new_process.0.try_wait().expect("try_wait") {
                panic!(
                    "the new process exited with {status}; stderr:\n{}",
                    fs::read_to_string(&new_stderr_path).unwrap_or_default()
                );
            }
            let log = fs::read_to_string(&new_stderr_path).unwrap_or_default();
            if upgrade_sock.exists() && log.contains("Bootstrap starting") {
                Ok(())
            } else {
                Err(format!("no upgrade socket yet; stderr:\n{log}"))
            }
        });

        let status = Command::new("kill")
            .args(["-QUIT", &old_pid.to_string()])
            .status()
            .expect("run kill -QUIT");
        assert!(status.success(), "kill -QUIT {old_pid}: {status}");
        let quit_at = Instant::now();
        let gone = try_poll_for(
            "the old process exited after SIGQUIT",
            Duration::from_secs(12),
            Duration::from_millis(20),
            || exited_yet(old_pid),
        );
        gone.unwrap_or_else(|e| panic!("{e}; stderr:\n{}", router.stderr()));
        let old_exited_at = Instant::now();
        println!(
            "upgrade: old process exited {:?} after SIGQUIT",
            old_exited_at - quit_at
        );
        // Traffic to the new process alone for a while (part of the test: no gap, no failure).
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Release);
        (
            keep_alive.join().expect("keep-alive client"),
            fresh.join().expect("fresh-connection client"),
            old_exited_at,
        )
    });

    let new_process = upgraded.as_mut().expect("the new process was started");
    let new_log = || fs::read_to_string(&new_stderr_path).unwrap_or_default();
    if let Some(status) = new_process.0.try_wait().expect("try_wait") {
        panic!(
            "the new process exited with {status}; stderr:\n{}",
            new_log()
        );
    }
    for (name, run) in [("keep-alive", &keep_alive), ("new connections", &fresh)] {
        println!(
            "upgrade: {name} client: {} served ({} after the old process exited) on {} \
             connection(s), {} retried, {} failed, longest gap between answers {:?}; \
             retries: {:?}",
            run.served.len(),
            run.served_after(old_exited_at),
            run.connections,
            run.retries.len(),
            run.failures.len(),
            run.max_gap(),
            run.retries
        );
    }
    let old_log = router.stderr();
    assert!(
        old_log.contains("listener sockets sent"),
        "the old process did not hand its sockets over:\n{old_log}"
    );
    assert!(
        old_log.contains("listening sockets handed over"),
        "the old process did not start closing its connections:\n{old_log}"
    );
    assert!(
        keep_alive.retries.is_empty(),
        "the keep-alive client met a connection closed under a request: {:?}",
        keep_alive.retries
    );
    for (name, run) in [("keep-alive", &keep_alive), ("new connections", &fresh)] {
        assert!(
            run.failures.is_empty(),
            "{name} client: {} request(s) failed after one retry on a fresh connection: {:#?}\n\
             old stderr:\n{old_log}\nnew stderr:\n{}",
            run.failures.len(),
            run.failures,
            new_log()
        );
        assert!(
            run.served_after(old_exited_at) > 0,
            "{name} client: nothing served after the old process exited"
        );
        assert!(
            run.max_gap() < Duration::from_secs(2),
            "{name} client: {:?} without an answer",
            run.max_gap()
        );
    }
    let total = keep_alive.served.len() + fresh.served.len();
    assert!(
        total > 500,
        "only {total} requests served across the upgrade"
    );

    // The listeners (public and management) now belong to the new process, which counted
    // the requests it answered.
    let text = scrape(&router);
    let served_by_new = metric_value(
        &text,
        REQUESTS,
        &[("kind", "live"), ("outcome", "redirect")],
    )
    .unwrap_or(0.0);
    assert!(served_by_new > 0.0, "{text}");
    assert!(
        served_by_new < total as f64,
        "the old process served none? {served_by_new} of {total}"
    );
    assert_redirect(&router.get(LIVE), LIVE_LOCATION);
    assert!(new_log().contains("Bootstrap done"), "{}", new_log());
}
