//! Starting the real `cti-kaltura` binary: a fresh temp directory per router with a generated
//! config and routing file, free loopback ports (IPv4 and IPv6), bounded readiness polling and
//! a guard that kills the child however the test ends.

use crate::http::{self, Conn, Response};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a router may take to become ready, and a change to take effect.
pub const BOUND: Duration = Duration::from_secs(10);
const POLL_EVERY: Duration = Duration::from_millis(50);
/// Start attempts (a port picked as free may be taken before the router binds it).
const START_ATTEMPTS: usize = 3;
/// What the router prints when a listen address is taken at start-up (it then exits 2).
const PORT_IN_USE: &str = "Address already in use";

pub const ROUTING_FILE: &str = "routing.json";
pub const CONFIG_FILE: &str = "cti-kaltura.yaml";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cti-kaltura")
}

/// Ports handed out by this test process, so parallel tests never share one.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port free on both `127.0.0.1` and `[::1]` right now (the listeners are dropped again).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let v4 = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = v4.local_addr().expect("local addr").port();
        let v6_free = TcpListener::bind((Ipv6Addr::LOCALHOST, port)).is_ok();
        drop(v4);
        if v6_free
            && HANDED_OUT
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(port)
        {
            return port;
        }
    }
    panic!("no port free on both 127.0.0.1 and [::1] after 100 tries");
}

pub fn v4(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn v6(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv6Addr::LOCALHOST, port))
}

/// YAML text of a string (a JSON string is a YAML double-quoted scalar).
pub fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// Everything a generated config file says.
pub struct ConfigSpec {
    pub port: u16,
    pub management_port: u16,
    /// As written under `router.routing.file`.
    pub routing_file: String,
    pub watch_interval_secs: u64,
    /// `None` leaves the key out (loopback is trusted by default).
    pub trusted_proxies: Option<Vec<String>>,
    pub keepalive_timeout_secs: u64,
    /// Raw YAML lines added under `router:` (indented by two spaces).
    pub extra_router_lines: Vec<String>,
    /// Replaces the `health:` section (YAML lines below `health:`, unindented).
    pub health_block: Option<Vec<String>>,
    /// Replaces the `routing:` section (YAML lines below `routing:`, unindented).
    pub routing_block: Option<Vec<String>>,
    /// Lines added to the `http:` section (below `keepalive_timeout_secs`).
    pub http_lines: Vec<String>,
}

impl ConfigSpec {
    pub fn new(routing_file: &str) -> ConfigSpec {
        ConfigSpec {
            port: free_port(),
            management_port: free_port(),
            routing_file: routing_file.to_string(),
            watch_interval_secs: 1,
            trusted_proxies: None,
            keepalive_timeout_secs: 60,
            extra_router_lines: Vec::new(),
            health_block: None,
            routing_block: None,
            http_lines: Vec::new(),
        }
    }

    /// The whole file; Pingora's pid file and upgrade socket go into `dir`.
    pub fn to_yaml(&self, dir: &Path) -> String {
        let mut y = String::new();
        y.push_str("version: 1\nthreads: 1\n");
        y.push_str(&format!(
            "pid_file: {}\n",
            yaml_str(&dir.join("cti-kaltura.pid").display().to_string())
        ));
        y.push_str(&format!(
            "upgrade_sock: {}\n",
            yaml_str(&dir.join("upgrade.sock").display().to_string())
        ));
        y.push_str("grace_period_seconds: 0\ngraceful_shutdown_timeout_seconds: 1\n");
        y.push_str("router:\n  listen:\n");
        y.push_str(&format!("    - \"127.0.0.1:{}\"\n", self.port));
        y.push_str(&format!("    - \"[::1]:{}\"\n", self.port));
        y.push_str(&format!(
            "  management_listen: \"127.0.0.1:{}\"\n",
            self.management_port
        ));
        y.push_str("  routing:\n");
        match &self.routing_block {
            Some(lines) => {
                for line in lines {
                    y.push_str(&format!("    {line}\n"));
                }
            }
            None => {
                y.push_str(&format!("    file: {}\n", yaml_str(&self.routing_file)));
                y.push_str(&format!(
                    "    watch_interval_secs: {}\n",
                    self.watch_interval_secs
                ));
            }
        }
        if let Some(list) = &self.trusted_proxies {
            y.push_str("  client_ip:\n    trusted_proxies:\n");
            for item in list {
                y.push_str(&format!("      - {}\n", yaml_str(item)));
            }
        }
        // No active health checks: they would resolve the marker edge names (traffic off
        // loopback) and mark the edges down; routing then rests on admin data alone.
        match &self.health_block {
            Some(lines) => {
                y.push_str("  health:\n");
                for line in lines {
                    y.push_str(&format!("    {line}\n"));
                }
            }
            None => y.push_str("  health:\n    enabled: false\n"),
        }
        y.push_str(&format!(
            "  http:\n    keepalive_timeout_secs: {}\n",
            self.keepalive_timeout_secs
        ));
        for line in &self.http_lines {
            y.push_str(&format!("    {line}\n"));
        }
        y.push_str("  redirect:\n    append_query_string: true\n");
        for line in &self.extra_router_lines {
            y.push_str(&format!("  {line}\n"));
        }
        y
    }
}

/// Writes `value` as pretty JSON to a temporary file next to `path`, then renames it over.
pub fn write_json_renamed(path: &Path, value: &Value) {
    let tmp = path.with_extension("json.tmp");
    fs::write(
        &tmp,
        serde_json::to_vec_pretty(value).expect("JSON serialises"),
    )
    .unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename onto {}: {e}", path.display()));
}

/// Rewrites `path` in place (truncate, write): same inode.
pub fn write_in_place(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Calls `probe` every 50 ms until it returns `Ok`, for at most [`BOUND`]; the error names
/// `what` and the last `Err` seen.
pub fn try_poll<T>(what: &str, probe: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    try_poll_for(what, BOUND, POLL_EVERY, probe)
}

/// Calls `probe` every `every` until it returns `Ok`, for at most `bound`; the error names
/// `what` and the last `Err` seen.
pub fn try_poll_for<T>(
    what: &str,
    bound: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + bound;
    loop {
        match probe() {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => {
                return Err(format!("{what}: not within {bound:?}; last seen: {last}"))
            }
            Err(_) => std::thread::sleep(every),
        }
    }
}

/// [`try_poll`], panicking when the bound passes.
pub fn poll<T>(what: &str, probe: impl FnMut() -> Result<T, String>) -> T {
    try_poll(what, probe).unwrap_or_else(|e| panic!("{e}"))
}

/// Kills (SIGKILL) and reaps the child when dropped, also while a test panics.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` with stdout and stderr captured, for at most [`BOUND`].
pub fn run_bounded(cmd: &mut Command, dir: &Path) -> (ExitStatus, String, String) {
    let out_path = dir.join("run.stdout");
    let err_path = dir.join("run.stderr");
    let out = fs::File::create(&out_path).expect("create stdout file");
    let err = fs::File::create(&err_path).expect("create stderr file");
    let mut guard = ChildGuard(
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env("RUST_LOG", "info")
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")),
    );
    let status = try_poll(&format!("{cmd:?} exited"), || {
        guard
            .0
            .try_wait()
            .expect("try_wait")
            .ok_or_else(|| "still running".to_string())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}; stderr:\n{}",
            fs::read_to_string(&err_path).unwrap_or_default()
        )
    });
    (
        status,
        fs::read_to_string(&out_path).unwrap_or_default(),
        fs::read_to_string(&err_path).unwrap_or_default(),
    )
}

/// What the routing file holds when the router starts.
enum Initial {
    Json(Value),
    Raw(Vec<u8>),
    Missing,
}

/// How to start a router: routing data and the config keys the tests vary.
pub struct Setup {
    initial: Initial,
    trusted_proxies: Option<Vec<String>>,
    watch_interval_secs: u64,
    relative_file: bool,
    extra_router_lines: Vec<String>,
    health_block: Option<Vec<String>>,
    routing_block: Option<Vec<String>>,
    http_lines: Vec<String>,
    expect_snapshot: Option<bool>,
}

impl Setup {
    /// The routing file holds `snapshot`.
    pub fn with(snapshot: Value) -> Setup {
        Setup {
            initial: Initial::Json(snapshot),
            trusted_proxies: None,
            watch_interval_secs: 1,
            relative_file: false,
            extra_router_lines: Vec::new(),
            health_block: None,
            routing_block: None,
            http_lines: Vec::new(),
            expect_snapshot: None,
        }
    }

    /// Adds lines to the `http:` section (e.g. `max_uri_bytes: 1024`).
    pub fn http(mut self, lines: &[&str]) -> Setup {
        self.http_lines.extend(lines.iter().map(|s| s.to_string()));
        self
    }

    /// Adds raw YAML lines under `router:` (e.g. `routes: {vod: {mode: proxy}}`,
    /// `access_log: {enabled: true}`); nested lines carry their own extra indentation.
    pub fn router_lines(mut self, lines: &[&str]) -> Setup {
        self.extra_router_lines
            .extend(lines.iter().map(|s| s.to_string()));
        self
    }

    /// Replaces the `health:` section (default `enabled: false`) with these lines.
    pub fn health(mut self, lines: &[&str]) -> Setup {
        self.health_block = Some(lines.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Replaces the `routing:` section (default: the test's routing file) with these lines,
    /// e.g. an `admin_api:` source. Readiness then waits for a snapshot only if
    /// [`Setup::expect_snapshot`] says so (default: false).
    pub fn routing(mut self, lines: &[&str]) -> Setup {
        self.routing_block = Some(lines.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Whether start-up waits for `/readyz` 200 (true) or accepts 503 (false).
    pub fn expect_snapshot(mut self, expect: bool) -> Setup {
        self.expect_snapshot = Some(expect);
        self
    }

    /// The routing file holds these bytes (which do not load).
    pub fn with_unloadable_file(bytes: &[u8]) -> Setup {
        Setup {
            initial: Initial::Raw(bytes.to_vec()),
            ..Setup::with(Value::Null)
        }
    }

    /// There is no routing file yet.
    pub fn without_file() -> Setup {
        Setup {
            initial: Initial::Missing,
            ..Setup::with(Value::Null)
        }
    }

    pub fn trusted_proxies(mut self, list: &[&str]) -> Setup {
        self.trusted_proxies = Some(list.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn watch_interval_secs(mut self, secs: u64) -> Setup {
        self.watch_interval_secs = secs;
        self
    }

    /// Names the routing file relatively (`routing.json`, next to the config file); the
    /// router's working directory is elsewhere.
    pub fn relative_file(mut self) -> Setup {
        self.relative_file = true;
        self
    }

    /// Starts the router and waits until it serves: `/healthz` answers 200, `/readyz` 200 when
    /// the routing file loads (503 when it cannot) and both public listeners accept
    /// connections.
    pub fn start(self) -> Router {
        let mut dir = tempfile::Builder::new()
            .prefix("cti-kaltura-it-")
            .tempdir()
            .expect("create temp dir");
        let run_dir = dir.path().join("run");
        fs::create_dir(&run_dir).expect("create run dir");
        let routing_path = dir.path().join(ROUTING_FILE);
        let expect_snapshot = match &self.initial {
            Initial::Json(value) => {
                write_json_renamed(&routing_path, value);
                true
            }
            Initial::Raw(bytes) => {
                write_in_place(&routing_path, bytes);
                false
            }
            Initial::Missing => false,
        };
        // With a custom routing section the snapshot's source is not this test's file.
        let custom_routing = self.routing_block.is_some();
        let ready_when = match (self.expect_snapshot, custom_routing) {
            (Some(true), custom) => ReadyWhen::Snapshot {
                check_source: !custom,
            },
            (Some(false), _) => ReadyWhen::NoSnapshot,
            (None, true) => ReadyWhen::Either,
            (None, false) if expect_snapshot => ReadyWhen::Snapshot { check_source: true },
            (None, false) => ReadyWhen::NoSnapshot,
        };
        let routing_file = if self.relative_file {
            ROUTING_FILE.to_string()
        } else {
            routing_path.display().to_string()
        };
        let config_path = dir.path().join(CONFIG_FILE);
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            let mut spec = ConfigSpec::new(&routing_file);
            spec.watch_interval_secs = self.watch_interval_secs;
            spec.trusted_proxies = self.trusted_proxies.clone();
            spec.extra_router_lines = self.extra_router_lines.clone();
            spec.health_block = self.health_block.clone();
            spec.routing_block = self.routing_block.clone();
            spec.http_lines = self.http_lines.clone();
            fs::write(&config_path, spec.to_yaml(dir.path())).expect("write config");
            let stderr_path = dir.path().join(format!("router-{attempt}.stderr"));
            let stdout = fs::File::create(dir.path().join(format!("router-{attempt}.stdout")))
                .expect("create stdout file");
            let stderr = fs::File::create(&stderr_path).expect("create stderr file");
            let child = Command::new(bin())
                .arg("-c")
                .arg(&config_path)
                .current_dir(&run_dir)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin()));
            let mut router = Router {
                child: ChildGuard(child),
                port: spec.port,
                management_port: spec.management_port,
                routing_path: routing_path.clone(),
                stderr_path,
                dir,
            };
            match router.wait_ready(ready_when) {
                Ok(()) => return router,
                Err(why) => {
                    failures.push(format!("attempt {attempt}: {why}"));
                    // Kill this child; keep the directory for the next attempt.
                    let Router {
                        child, dir: kept, ..
                    } = router;
                    drop(child);
                    dir = kept;
                }
            }
        }
        panic!("router did not start:\n{}", failures.join("\n"));
    }
}

/// What start-up waits for.
#[derive(Debug, Clone, Copy)]
enum ReadyWhen {
    /// `/readyz` 200; with `check_source`, the snapshot came from this test's file.
    Snapshot { check_source: bool },
    /// `/readyz` 503.
    NoSnapshot,
    /// Either: the test looks for itself.
    Either,
}

/// A running router. Dropping it kills the process, then removes its directory.
pub struct Router {
    child: ChildGuard,
    pub port: u16,
    pub management_port: u16,
    routing_path: PathBuf,
    stderr_path: PathBuf,
    dir: tempfile::TempDir,
}

impl Router {
    /// Polls until ready; `Err` only for a port taken before the router bound it (retry).
    fn wait_ready(&mut self, ready_when: ReadyWhen) -> Result<(), String> {
        let ready = try_poll("router ready", || {
            let exited = self.child.0.try_wait().expect("try_wait");
            let stderr = self.stderr();
            if stderr.contains(PORT_IN_USE) {
                return Ok(Err(format!("a port was taken:\n{stderr}")));
            }
            if let Some(status) = exited {
                panic!("router exited during start-up with {status}; stderr:\n{stderr}");
            }
            self.readiness(ready_when).map(Ok)
        });
        ready.unwrap_or_else(|e| panic!("{e}; stderr:\n{}", self.stderr()))
    }

    fn readiness(&self, ready_when: ReadyWhen) -> Result<(), String> {
        let alive = self.try_management("/healthz")?;
        if alive.status != 200 {
            return Err(format!("/healthz answered {}", alive.summary()));
        }
        let ready = self.try_management("/readyz")?;
        let wanted_ok = match ready_when {
            ReadyWhen::Snapshot { .. } => ready.status == 200,
            ReadyWhen::NoSnapshot => ready.status == 503,
            ReadyWhen::Either => ready.status == 200 || ready.status == 503,
        };
        if !wanted_ok {
            return Err(format!("/readyz answered {}", ready.summary()));
        }
        if let ReadyWhen::Snapshot { check_source: true } = ready_when {
            // The right router: its snapshot came from this test's file.
            let snapshot = self.try_management("/debug/snapshot")?;
            let doc: Value = serde_json::from_slice(&snapshot.body)
                .map_err(|e| format!("/debug/snapshot is not JSON: {e}"))?;
            let wanted = self.routing_path.display().to_string();
            if doc["source"] != Value::String(wanted.clone()) {
                return Err(format!(
                    "/debug/snapshot source {} is not {wanted}",
                    doc["source"]
                ));
            }
        }
        for addr in [self.v4(), self.v6()] {
            TcpStream::connect_timeout(&addr, http::IO_TIMEOUT)
                .map_err(|e| format!("connect to {addr}: {e}"))?;
        }
        Ok(())
    }

    pub fn v4(&self) -> SocketAddr {
        v4(self.port)
    }

    pub fn v6(&self) -> SocketAddr {
        v6(self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn routing_path(&self) -> &Path {
        &self.routing_path
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// The router's log so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    fn try_management(&self, path: &str) -> Result<Response, String> {
        http::try_request(v4(self.management_port), "GET", path, &[])
    }

    /// `GET path` on the management listener.
    pub fn management(&self, path: &str) -> Response {
        self.try_management(path)
            .unwrap_or_else(|e| panic!("management {path}: {e}; router stderr:\n{}", self.stderr()))
    }

    /// One request on a fresh connection to `addr`.
    pub fn request(
        &self,
        addr: SocketAddr,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        http::try_request(addr, method, target, headers).unwrap_or_else(|e| {
            panic!(
                "{method} {target} to {addr}: {e}; router stderr:\n{}",
                self.stderr()
            )
        })
    }

    /// `GET target` from 127.0.0.1.
    pub fn get(&self, target: &str) -> Response {
        self.request(self.v4(), "GET", target, &[])
    }

    /// `GET target` from 127.0.0.1 with `X-Real-IP: client`.
    pub fn get_for(&self, client: &str, target: &str) -> Response {
        self.request(self.v4(), "GET", target, &[("X-Real-IP", client)])
    }

    /// A keep-alive connection to `addr`.
    pub fn connect(&self, addr: SocketAddr) -> Conn {
        Conn::open(addr)
    }

    /// Polls `GET target` from 127.0.0.1 until `accept` takes its answer; returns it.
    pub fn poll_get(
        &self,
        what: &str,
        target: &str,
        accept: impl Fn(&Response) -> bool,
    ) -> Response {
        try_poll(&format!("{what} (GET {target})"), || {
            let response = http::try_request(self.v4(), "GET", target, &[])?;
            if accept(&response) {
                Ok(response)
            } else {
                Err(response.summary())
            }
        })
        .unwrap_or_else(|e| panic!("{e}\nrouter stderr:\n{}", self.stderr()))
    }

    /// Sends SIGHUP with the `kill` command.
    pub fn sighup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .expect("run kill -HUP");
        assert!(
            status.success(),
            "kill -HUP {} failed: {status}",
            self.pid()
        );
    }

    /// Waits until the process has a SIGHUP handler installed (bit 0 of `SigCgt` in
    /// `/proc/PID/status`): before that, SIGHUP's default action would end it.
    pub fn wait_sighup_handler(&self) {
        let status_path = format!("/proc/{}/status", self.pid());
        poll("SIGHUP handler installed", || {
            let status = fs::read_to_string(&status_path).map_err(|e| e.to_string())?;
            let mask = status
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
                .ok_or_else(|| format!("no SigCgt in {status_path}"))?;
            if mask & 1 == 1 {
                Ok(())
            } else {
                Err(format!("SigCgt {mask:#x}"))
            }
        });
    }

    /// Asserts the process is still running.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.0.try_wait().expect("try_wait") {
            panic!("router exited with {status}; stderr:\n{}", self.stderr());
        }
    }
}
