//! The admin API source against a small in-process admin server the tests control: polling and
//! push refresh, conditional requests (ETag, 304), bearer tokens, every kind of failed fetch
//! keeping routing, the blast-radius guard and `force`, the persisted snapshot across a restart
//! during an admin outage, a start with neither snapshot nor admin, and config validation.

use crate::data;
use crate::harness::{
    bin, free_port, poll, run_bounded, v4, yaml_str, ConfigSpec, Router, Setup, CONFIG_FILE,
};
use crate::http::{self, read_request_head, RequestHead, Response};
use crate::prometheus::{metric_sum, scrape};
use crate::routes::{assert_error, assert_redirect, NOT_FOUND};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const LIVE: &str = "/btv/live/hls/epg_1";
/// How long the fake holds back an answer in the hanging modes (the router's timeout is 1 s).
const HANG: Duration = Duration::from_secs(4);
/// Scheduling slack on top of a documented delay (poll interval, backoff cap).
const SLACK: Duration = Duration::from_millis(1500);

fn live_location(path: &str) -> String {
    format!("http://{}{path}", data::EDGE_V4)
}

// ---------------------------------------------------------------------------------------------
// The fake admin API
// ---------------------------------------------------------------------------------------------

/// How the fake answers a snapshot request.
#[derive(Debug, Clone)]
enum Mode {
    /// The current document with its ETag; `304` when `If-None-Match` names that ETag.
    Serve,
    /// Nothing for [`HANG`], then `200` with these bytes.
    Hang(Vec<u8>),
    /// The head and half of these bytes at once, the rest after [`HANG`].
    StallInBody(Vec<u8>),
    /// This status with these bytes as the body.
    Status(u16, Vec<u8>),
    /// `200` with these bytes and a matching Content-Length.
    Body(Vec<u8>),
    /// `200` declaring 100 bytes more than these, which are sent before the connection closes.
    Truncated(Vec<u8>),
    /// `200` without Content-Length: the body (these bytes) ends when the connection closes.
    Undeclared(Vec<u8>),
}

/// One request as the fake saw it, and the status it answered.
#[derive(Debug, Clone)]
struct Seen {
    request: RequestHead,
    status: u16,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.request.header_values(name).first().copied()
    }
}

struct AdminState {
    mode: Mode,
    body: Vec<u8>,
    etag: String,
    etags_issued: u32,
    seen: Vec<Seen>,
}

/// One listening period: its stop flag and accept thread.
struct Run {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// An HTTP/1.1 admin API on `127.0.0.1:port`, one thread per connection, every answer with
/// `Connection: close`. It can go down (connections refused) and come up again on the same
/// port; dropping it stops every thread within a bounded time.
struct FakeAdmin {
    port: u16,
    state: Arc<Mutex<AdminState>>,
    run: Option<Run>,
}

impl FakeAdmin {
    /// Not listening yet, on a port reserved for this test; serves `doc` once up.
    fn down(doc: &Value) -> FakeAdmin {
        let admin = FakeAdmin {
            port: free_port(),
            state: Arc::new(Mutex::new(AdminState {
                mode: Mode::Serve,
                body: Vec::new(),
                etag: String::new(),
                etags_issued: 0,
                seen: Vec::new(),
            })),
            run: None,
        };
        admin.serve(doc);
        admin
    }

    /// Listening and serving `doc`.
    fn up(doc: &Value) -> FakeAdmin {
        let mut admin = FakeAdmin::down(doc);
        admin.come_up();
        admin
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/snapshot", self.port)
    }

    fn lock(&self) -> MutexGuard<'_, AdminState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves `doc` (compact JSON) under a new ETag, which is returned.
    fn serve(&self, doc: &Value) -> String {
        self.serve_bytes(serde_json::to_vec(doc).expect("JSON serialises"))
    }

    fn serve_bytes(&self, body: Vec<u8>) -> String {
        let mut state = self.lock();
        state.etags_issued += 1;
        state.etag = format!("\"admin-{}\"", state.etags_issued);
        state.body = body;
        state.mode = Mode::Serve;
        state.etag.clone()
    }

    /// The bytes of the document being served.
    fn body(&self) -> Vec<u8> {
        self.lock().body.clone()
    }

    fn set_mode(&self, mode: Mode) {
        self.lock().mode = mode;
    }

    fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    fn seen_count(&self) -> usize {
        self.lock().seen.len()
    }

    /// Polls until the fake has seen more than `count` requests; returns the first new one.
    fn wait_request_after(&self, count: usize, what: &str) -> Seen {
        poll(what, || {
            self.seen()
                .get(count)
                .cloned()
                .ok_or_else(|| format!("{} request(s) seen", self.seen_count()))
        })
    }

    /// Starts listening on the port (again); retries briefly while it is still taken.
    fn come_up(&mut self) {
        assert!(self.run.is_none(), "the fake admin is already up");
        let listener = poll(&format!("fake admin: bind 127.0.0.1:{}", self.port), || {
            TcpListener::bind(("127.0.0.1", self.port)).map_err(|e| e.to_string())
        });
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            let state = self.state.clone();
            std::thread::spawn(move || accept_loop(listener, state, stop))
        };
        self.run = Some(Run { stop, thread });
    }

    /// Stops listening: from now on connections are refused. Hanging answers end at once.
    fn go_down(&mut self) {
        if let Some(run) = self.run.take() {
            run.stop.store(true, Ordering::SeqCst);
            let _ = run.thread.join();
        }
    }
}

impl Drop for FakeAdmin {
    fn drop(&mut self) {
        self.go_down();
    }
}

fn accept_loop(listener: TcpListener, state: Arc<Mutex<AdminState>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let state = state.clone();
                let stop = stop.clone();
                std::thread::spawn(move || handle(stream, &state, &stop));
            }
            // Non-blocking: nothing to accept yet; look again soon (and at `stop`).
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    // The listener is dropped here: the port refuses connections.
}

/// Sleeps up to `how_long`, returning early once `stop` is set.
fn hang(how_long: Duration, stop: &AtomicBool) {
    let until = Instant::now() + how_long;
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        // The hang is what is tested (the router's fetch timeout); slices only to see `stop`.
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn head(status: u16, reason: &str, etag: &str, length: Option<usize>) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nETag: {etag}\r\nConnection: close\r\n"
    );
    if let Some(length) = length {
        out.push_str(&format!("Content-Length: {length}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn handle(mut stream: TcpStream, state: &Mutex<AdminState>, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let Some(request) = read_request_head(&mut stream) else {
        return;
    };
    let (mode, body, etag) = {
        let state = state.lock().unwrap_or_else(|e| e.into_inner());
        (state.mode.clone(), state.body.clone(), state.etag.clone())
    };
    let if_none_match = request.header_values("if-none-match").first().copied();
    let status = match &mode {
        Mode::Serve if if_none_match == Some(etag.as_str()) => 304,
        Mode::Status(status, _) => *status,
        _ => 200,
    };
    state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .seen
        .push(Seen { request, status });
    const BAIT_ETAG: &str = "\"failure\"";
    // Write errors are expected (the router may give up first) and ignored.
    let _ = (|| -> std::io::Result<()> {
        match mode {
            Mode::Serve if status == 304 => {
                stream.write_all(
                    format!(
                        "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                )?;
            }
            Mode::Serve => {
                stream.write_all(&head(200, "OK", &etag, Some(body.len())))?;
                stream.write_all(&body)?;
            }
            Mode::Hang(bytes) => {
                hang(HANG, stop);
                stream.write_all(&head(200, "OK", BAIT_ETAG, Some(bytes.len())))?;
                stream.write_all(&bytes)?;
            }
            Mode::StallInBody(bytes) => {
                let half = bytes.len() / 2;
                stream.write_all(&head(200, "OK", BAIT_ETAG, Some(bytes.len())))?;
                stream.write_all(&bytes[..half])?;
                stream.flush()?;
                hang(HANG, stop);
                stream.write_all(&bytes[half..])?;
            }
            Mode::Status(status, bytes) => {
                stream.write_all(&head(status, "Failing", BAIT_ETAG, Some(bytes.len())))?;
                stream.write_all(&bytes)?;
            }
            Mode::Body(bytes) => {
                stream.write_all(&head(200, "OK", BAIT_ETAG, Some(bytes.len())))?;
                stream.write_all(&bytes)?;
            }
            Mode::Truncated(bytes) => {
                stream.write_all(&head(200, "OK", BAIT_ETAG, Some(bytes.len() + 100)))?;
                stream.write_all(&bytes)?;
            }
            Mode::Undeclared(bytes) => {
                stream.write_all(&head(200, "OK", BAIT_ETAG, None))?;
                stream.write_all(&bytes)?;
            }
        }
        stream.flush()?;
        stream.shutdown(std::net::Shutdown::Write)
    })();
    // Let the client read everything before the socket closes.
    let mut rest = [0u8; 512];
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = stream.read(&mut rest);
}

// ---------------------------------------------------------------------------------------------
// Documents, config and management helpers
// ---------------------------------------------------------------------------------------------

/// The smallest document that routes [`LIVE`] from 127.0.0.1: one region, subnet, group, edge
/// ([`data::EDGE_V4`]), channel `epg_1` and its HLS stream at `live_path`.
fn small(version: &str, live_path: &str) -> Value {
    json!({
        "version": version,
        "regions": [{"id": 1, "name": "MAIN", "status": "ACTIVE", "server_group_ids": [1]}],
        "subnets": [{"id": 1, "name": "loopback-v4", "cidr": "127.0.0.1/32", "region_id": 1}],
        "server_groups": [{"id": 1, "name": "g-main", "status": "ACTIVE", "server_ids": [101]}],
        "servers": [{"id": 101, "type": "EDGE", "domain_name": data::EDGE_V4, "port": 80,
                     "status": "ACTIVE", "availability": true, "weight": 10}],
        "linear_channels": [{"id": 1, "epg_id": "epg_1", "name": "One"}],
        "tv_streams": [{"id": 11, "linear_channel_id": 1, "stream_path": live_path,
                        "status": "ACTIVE", "protocol": "HLS", "encryption": "NONE"}]
    })
}

/// [`small`] padded (an unknown field, ignored by the loader) to more than `bytes` bytes: a
/// valid document that would change routing if its size were not checked.
fn padded(version: &str, live_path: &str, bytes: usize) -> Vec<u8> {
    let mut doc = small(version, live_path);
    doc["padding"] = Value::String("x".repeat(bytes));
    serde_json::to_vec(&doc).expect("JSON serialises")
}

/// [`data::snapshot`] with only its first subnet (`127.0.0.1/32`): 6 of 7 subnets removed.
fn most_subnets_removed(version: &str, live_path: &str) -> Value {
    let mut doc = data::snapshot(version, live_path);
    let subnets = doc["subnets"].as_array_mut().expect("subnets array");
    subnets.truncate(1);
    doc
}

/// The lines of a `routing:` section with an `admin_api:` source at `url`; `api` lines go
/// under `admin_api:` (unindented here), `state_dir` is set when given.
fn routing(url: &str, poll_secs: u64, api: &[&str], state_dir: Option<&Path>) -> Vec<String> {
    let mut lines = vec![
        "admin_api:".to_string(),
        format!("  url: {}", yaml_str(url)),
        format!("  poll_interval_secs: {poll_secs}"),
    ];
    lines.extend(api.iter().map(|l| format!("  {l}")));
    if let Some(dir) = state_dir {
        lines.push(format!(
            "state_dir: {}",
            yaml_str(&dir.display().to_string())
        ));
    }
    lines
}

fn strs(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).collect()
}

fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create temp dir")
}

/// `POST /admin/refresh{query}` on the management listener.
fn post_refresh(router: &Router, query: &str, headers: &[(&str, &str)]) -> Response {
    let target = format!("/admin/refresh{query}");
    http::try_request(v4(router.management_port), "POST", &target, headers)
        .unwrap_or_else(|e| panic!("POST {target}: {e}; router stderr:\n{}", router.stderr()))
}

/// `POST /admin/refresh{query}` without a token; asserts the status, returns the JSON answer.
fn refresh(router: &Router, query: &str, status: u16) -> Value {
    let response = post_refresh(router, query, &[]);
    assert_eq!(
        response.status,
        status,
        "POST /admin/refresh{query}: {}\nrouter stderr:\n{}",
        response.text(),
        router.stderr()
    );
    response.json()
}

fn debug_snapshot(router: &Router) -> Value {
    router.management("/debug/snapshot").json()
}

/// `cti_kaltura_snapshot_fetch_total{result="…"}` (0 while absent).
fn fetches(router: &Router, result: &str) -> u64 {
    metric_sum(
        &scrape(router),
        "cti_kaltura_snapshot_fetch_total",
        &[("result", result)],
    ) as u64
}

fn assert_routes_to(router: &Router, live_path: &str) {
    assert_redirect(&router.get(LIVE), &live_location(live_path));
}

fn wait_routes_to(router: &Router, what: &str, live_path: &str) -> Instant {
    let wanted = live_location(live_path);
    let response = router.poll_get(what, LIVE, |r| r.header("location") == Some(&wanted));
    let at = Instant::now();
    assert_redirect(&response, &wanted);
    at
}

fn assert_ready(router: &Router) {
    let ready = router.management("/readyz");
    assert_eq!(ready.status, 200, "{ready:?}");
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn a_change_in_the_admin_is_routed_within_one_poll_interval() {
    const POLL: Duration = Duration::from_secs(1);
    let admin = FakeAdmin::up(&data::snapshot("v1", "/live/one.m3u8"));
    let router = Setup::without_file()
        .routing(&strs(&routing(&admin.url(), POLL.as_secs(), &[], None)))
        .expect_snapshot(true)
        .start();
    assert_routes_to(&router, "/live/one.m3u8");
    let info = debug_snapshot(&router);
    assert_eq!(info["version"], "v1", "{info}");
    assert_eq!(info["source"], admin.url(), "{info}");

    // Polls of an unchanged admin are conditional and answered 304 (no rebuild).
    let first = admin.seen()[0].clone();
    assert_eq!(
        (first.request.method.as_str(), first.request.target.as_str()),
        ("GET", "/snapshot"),
        "{first:?}"
    );
    let etag1 = admin.lock().etag.clone();
    let count = admin.seen_count();
    let next = admin.wait_request_after(count, "a second poll");
    assert_eq!(
        next.header("if-none-match"),
        Some(etag1.as_str()),
        "{next:?}"
    );
    assert_eq!(next.status, 304, "{next:?}");
    poll("an unchanged poll counted", || {
        match fetches(&router, "unchanged") {
            0 => Err("unchanged fetches: 0".to_string()),
            n => Ok(n),
        }
    });
    assert_eq!(debug_snapshot(&router)["version"], "v1");

    // The admin changes; the next poll (at most one interval away) routes the change.
    admin.serve(&data::snapshot("v2", "/live/changed.m3u8"));
    let changed = Instant::now();
    let routed = wait_routes_to(&router, "the admin change routed", "/live/changed.m3u8");
    let took = routed - changed;
    assert!(
        took <= POLL + SLACK,
        "the change took {took:?} (poll interval {POLL:?})"
    );
    assert_eq!(debug_snapshot(&router)["version"], "v2");
    let last = admin
        .seen()
        .into_iter()
        .rev()
        .find(|s| s.status == 200)
        .expect("a 200 answer");
    assert_eq!(
        last.header("if-none-match"),
        Some(etag1.as_str()),
        "{last:?}"
    );
}

#[test]
fn refresh_pushes_a_change_at_once_and_a_second_refresh_is_unchanged() {
    let admin = FakeAdmin::up(&data::snapshot("v1", "/live/one.m3u8"));
    // Hourly polls: only the push can explain a change within this test.
    let router = Setup::without_file()
        .routing(&strs(&routing(&admin.url(), 3600, &[], None)))
        .expect_snapshot(true)
        .start();
    assert_routes_to(&router, "/live/one.m3u8");
    let first = admin.seen()[0].clone();
    let encodings = first.header("accept-encoding").unwrap_or_default();
    assert!(
        encodings.to_ascii_lowercase().contains("gzip"),
        "Accept-Encoding {encodings:?} in {first:?}"
    );
    assert_eq!(first.header("authorization"), None, "{first:?}");

    let etag2 = admin.serve(&data::snapshot("v2", "/live/pushed.m3u8"));
    let count = admin.seen_count();
    let answer = refresh(&router, "", 200);
    assert_eq!(answer["outcome"], "accepted", "{answer}");
    assert_eq!(answer["version"], "v2", "{answer}");
    assert_eq!(answer["problems"], 0, "{answer}");
    // In service before the answer was sent: no polling needed.
    assert_routes_to(&router, "/live/pushed.m3u8");
    assert_eq!(debug_snapshot(&router)["version"], "v2");
    assert_eq!(admin.seen_count(), count + 1, "one fetch per refresh");

    // Nothing changed since: a conditional request, answered 304, reported as unchanged.
    let unchanged_before = fetches(&router, "unchanged");
    let answer = refresh(&router, "", 200);
    assert_eq!(answer["outcome"], "unchanged", "{answer}");
    assert_eq!(answer["version"], "v2", "{answer}");
    let seen = admin.seen();
    assert_eq!(seen.len(), count + 2, "{seen:?}");
    let last = &seen[count + 1];
    assert_eq!(
        last.header("if-none-match"),
        Some(etag2.as_str()),
        "{last:?}"
    );
    assert_eq!(last.status, 304, "{last:?}");
    assert_eq!(fetches(&router, "unchanged"), unchanged_before + 1);
    assert_routes_to(&router, "/live/pushed.m3u8");

    // The method is checked.
    let get = router.management("/admin/refresh");
    assert_eq!(get.status, 405, "{get:?}");
}

#[test]
fn bearer_tokens_to_the_admin_and_on_the_refresh_endpoint() {
    let dir = temp_dir("cti-kaltura-admin-token-");
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, "t0ken-from-file\n").expect("write token file");
    let admin = FakeAdmin::up(&data::snapshot("v1", "/live/one.m3u8"));
    let token_line = format!(
        "token_file: {}",
        yaml_str(&token_file.display().to_string())
    );
    let router = Setup::without_file()
        .routing(&strs(&routing(&admin.url(), 3600, &[&token_line], None)))
        .router_lines(&["management: {token: \"s3cret\"}"])
        .expect_snapshot(true)
        .start();
    let first = admin.seen()[0].clone();
    assert_eq!(
        first.header("authorization"),
        Some("Bearer t0ken-from-file"),
        "{first:?}"
    );

    admin.serve(&data::snapshot("v2", "/live/two.m3u8"));
    let count = admin.seen_count();
    for headers in [
        &[][..],
        &[("Authorization", "Bearer wrong")][..],
        &[("Authorization", "s3cret")][..],
        &[("Authorization", "Basic czNjcmV0")][..],
    ] {
        let response = post_refresh(&router, "", headers);
        assert_eq!(response.status, 401, "{headers:?}: {response:?}");
    }
    // Refused before any fetch: routing and the admin untouched.
    assert_eq!(admin.seen_count(), count);
    assert_routes_to(&router, "/live/one.m3u8");

    let response = post_refresh(&router, "", &[("Authorization", "Bearer s3cret")]);
    assert_eq!(response.status, 200, "{response:?}");
    let answer = response.json();
    assert_eq!(answer["outcome"], "accepted", "{answer}");
    assert_eq!(answer["version"], "v2", "{answer}");
    assert_routes_to(&router, "/live/two.m3u8");
    let pushed = admin.seen()[count].clone();
    assert_eq!(
        pushed.header("authorization"),
        Some("Bearer t0ken-from-file"),
        "{pushed:?}"
    );
}

#[test]
fn every_kind_of_failed_fetch_keeps_routing() {
    const CAP: usize = 2048;
    let mut admin = FakeAdmin::up(&small("v1", "/live/one.m3u8"));
    let etag1 = admin.lock().etag.clone();
    let router = Setup::without_file()
        .routing(&strs(&routing(
            &admin.url(),
            3600,
            &[
                "timeout_secs: 1",
                &format!("max_body_bytes: {CAP}"),
                "max_backoff_secs: 1",
            ],
            None,
        )))
        .expect_snapshot(true)
        .start();
    assert_routes_to(&router, "/live/one.m3u8");

    // Each failure carries, where it can, a valid document that would change routing if it
    // were wrongly accepted.
    let bait = |tag: &str| {
        serde_json::to_vec(&small(tag, &format!("/live/{tag}.m3u8"))).expect("JSON serialises")
    };
    let cases: Vec<(&str, Mode, &str)> = vec![
        ("HTTP 500", Mode::Status(500, bait("status500")), "500"),
        ("HTTP 503", Mode::Status(503, bait("status503")), "503"),
        (
            "a body that is not JSON",
            Mode::Body(b"<html><body>Bad gateway</body></html>".to_vec()),
            "not a snapshot document",
        ),
        (
            "a body that is not JSON (broken JSON)",
            Mode::Body(b"{\"version\": \"broken\", \"regions\": [".to_vec()),
            "json",
        ),
        (
            "a truncated body",
            Mode::Truncated(bait("truncated")),
            "reading body",
        ),
        (
            "a body over max_body_bytes (declared)",
            Mode::Body(padded("big", "/live/big.m3u8", 4 * CAP)),
            "max_body_bytes",
        ),
        (
            "a body over max_body_bytes (undeclared length)",
            Mode::Undeclared(padded("big2", "/live/big2.m3u8", 4 * CAP)),
            "max_body_bytes",
        ),
        (
            "a structurally wrong document",
            Mode::Body(br#"{"version": "wrong", "regions": 5}"#.to_vec()),
            "not a snapshot document",
        ),
        (
            "no answer within timeout_secs",
            Mode::Hang(bait("late")),
            "timed out",
        ),
        (
            "a body stalling past timeout_secs",
            Mode::StallInBody(bait("stalled")),
            "timed out",
        ),
    ];
    let check = |what: &str, reason_part: &str| {
        let errors_before = fetches(&router, "error");
        let started = Instant::now();
        let answer = refresh(&router, "", 502);
        assert_eq!(answer["outcome"], "failed", "{what}: {answer}");
        let reason = answer["reason"].as_str().unwrap_or_default();
        assert!(!reason.trim().is_empty(), "{what}: no reason in {answer}");
        assert!(
            reason
                .to_ascii_lowercase()
                .contains(&reason_part.to_ascii_lowercase()),
            "{what}: reason {reason:?} does not mention {reason_part:?}"
        );
        // Within the router's own timeout (1 s, plus one background fetch possibly in
        // flight), long before the hanging fake would have answered.
        let took = started.elapsed();
        assert!(took < HANG, "{what}: the refresh took {took:?}");
        let errors_after = fetches(&router, "error");
        assert!(
            errors_after > errors_before,
            "{what}: error fetches {errors_before} -> {errors_after}"
        );
        assert_routes_to(&router, "/live/one.m3u8");
        assert_ready(&router);
        let info = debug_snapshot(&router);
        assert_eq!(info["version"], "v1", "{what}: {info}");
    };
    for (what, mode, reason_part) in cases {
        admin.set_mode(mode);
        check(what, reason_part);
    }
    admin.go_down();
    check("connection refused", "connection refused");
    // Each failure is logged with its reason and what is kept.
    let log = router.stderr();
    for wanted in [
        "not loaded: HTTP 500 Internal Server Error; keeping snapshot version v1",
        "not loaded: body of ",
        "Connection refused",
    ] {
        assert!(
            log.contains(wanted),
            "{wanted:?} not in the router log:\n{log}"
        );
    }

    // Back up with a new document: accepted, and the failures did not replace the ETag. A
    // background retry (every second at most) may fetch it just before the push does.
    let count = admin.seen_count();
    admin.serve(&small("v2", "/live/two.m3u8"));
    admin.come_up();
    let answer = refresh(&router, "", 200);
    assert!(
        answer["outcome"] == "accepted" || answer["outcome"] == "unchanged",
        "{answer}"
    );
    assert_eq!(answer["version"], "v2", "{answer}");
    assert_routes_to(&router, "/live/two.m3u8");
    let recovered = admin.seen()[count].clone();
    assert_eq!(
        recovered.header("if-none-match"),
        Some(etag1.as_str()),
        "{recovered:?}"
    );
}

#[test]
fn the_blast_radius_guard_refuses_and_force_accepts() {
    let admin = FakeAdmin::up(&data::snapshot("v1", "/live/one.m3u8"));
    let router = Setup::without_file()
        .routing(&strs(&routing(&admin.url(), 3600, &[], None)))
        .expect_snapshot(true)
        .start();
    assert_routes_to(&router, "/live/one.m3u8");
    assert_eq!(debug_snapshot(&router)["last_refused"], Value::Null);

    // Six of seven subnets gone: refused, routing unchanged.
    admin.serve(&most_subnets_removed("few", "/live/few.m3u8"));
    let answer = refresh(&router, "", 409);
    assert_eq!(answer["outcome"], "refused", "{answer}");
    assert_eq!(answer["version"], "few", "{answer}");
    let reasons = answer["reasons"].as_array().cloned().unwrap_or_default();
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().is_some_and(|r| r.contains("6 of 7 subnets"))),
        "{answer}"
    );
    assert_routes_to(&router, "/live/one.m3u8");
    let info = debug_snapshot(&router);
    assert_eq!(info["version"], "v1", "{info}");
    assert_eq!(info["last_refused"]["version"], "few", "{info}");
    assert_eq!(info["last_refused"]["reasons"], answer["reasons"], "{info}");
    assert_eq!(info["last_refused"]["source"], admin.url(), "{info}");
    assert!(fetches(&router, "refused") >= 1);

    // An admin database restored empty: refused too.
    admin.serve_bytes(b"{}".to_vec());
    let answer = refresh(&router, "", 409);
    assert_eq!(answer["outcome"], "refused", "{answer}");
    let reasons: Vec<String> = answer["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        reasons.iter().any(|r| r.contains("7 of 7 subnets")),
        "{answer}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("eligible edges")),
        "{answer}"
    );
    assert_routes_to(&router, "/live/one.m3u8");
    assert_ready(&router);
    let info = debug_snapshot(&router);
    assert_eq!(info["version"], "v1", "{info}");
    assert_eq!(info["last_refused"]["version"], Value::Null, "{info}");
    assert_eq!(info["last_refused"]["reasons"], answer["reasons"], "{info}");

    // An operator forces it: accepted, and the channel is gone.
    let count = admin.seen_count();
    let answer = refresh(&router, "?force=true", 200);
    assert_eq!(answer["outcome"], "accepted", "{answer}");
    assert_error(&router.get(LIVE), 404, NOT_FOUND);
    assert_ready(&router);
    let info = debug_snapshot(&router);
    assert_eq!(info["counts"]["subnets"], 0, "{info}");
    // Forced fetches are unconditional.
    let forced = admin.seen()[count].clone();
    assert_eq!(forced.header("if-none-match"), None, "{forced:?}");
    assert_eq!(forced.status, 200, "{forced:?}");
}

#[test]
fn a_refused_snapshot_is_accepted_after_the_guard_is_switched_off() {
    // The issue: "a refused snapshot can be accepted by `POST /admin/refresh?force=true` or by
    // a config switch". The switch: `router.routing.guard.enabled: false`, then SIGHUP.
    const GUARD_ON: &str = "guard: {enabled: true, max_removed_fraction: 0.5}";
    const GUARD_OFF: &str = "guard: {enabled: false, max_removed_fraction: 0.5}";
    let admin = FakeAdmin::up(&data::snapshot("v1", "/live/one.m3u8"));
    let mut lines = routing(&admin.url(), 1, &[], None);
    lines.push(GUARD_ON.to_string());
    let router = Setup::without_file()
        .routing(&strs(&lines))
        .expect_snapshot(true)
        .start();
    router.wait_sighup_handler();
    assert_routes_to(&router, "/live/one.m3u8");

    admin.serve(&most_subnets_removed("few", "/live/few.m3u8"));
    let answer = refresh(&router, "", 409);
    assert_eq!(answer["outcome"], "refused", "{answer}");
    assert_routes_to(&router, "/live/one.m3u8");

    let config_path = router.dir().join(CONFIG_FILE);
    let config = std::fs::read_to_string(&config_path).expect("read config");
    assert!(config.contains(GUARD_ON), "{config}");
    std::fs::write(&config_path, config.replace(GUARD_ON, GUARD_OFF)).expect("write config");
    router.sighup();
    poll("SIGHUP applied", || {
        if router.stderr().contains("SIGHUP: configuration") {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    });
    // The admin still serves the refused document; with the guard off it is accepted (by the
    // refresh SIGHUP triggers, or at the latest by a poll one interval later).
    wait_routes_to(
        &router,
        "the refused snapshot accepted once the guard is off",
        "/live/few.m3u8",
    );
    assert_eq!(debug_snapshot(&router)["version"], "few");
}

#[test]
fn a_restart_during_an_admin_outage_serves_the_persisted_snapshot() {
    let dir = temp_dir("cti-kaltura-admin-state-");
    let state_dir = dir.path().join("state");
    let mut admin = FakeAdmin::up(&data::snapshot("v1", "/live/one.m3u8"));
    let etag = admin.lock().etag.clone();
    let lines = routing(
        &admin.url(),
        3600,
        &["max_backoff_secs: 1"],
        Some(&state_dir),
    );

    let first = Setup::without_file()
        .routing(&strs(&lines))
        .expect_snapshot(true)
        .start();
    assert_routes_to(&first, "/live/one.m3u8");
    // Persisted exactly as served, with its ETag, and no temporary files left.
    let persisted = state_dir.join("snapshot.json");
    assert_eq!(
        std::fs::read(&persisted).expect("snapshot.json in state_dir"),
        admin.body()
    );
    assert_eq!(
        std::fs::read_to_string(state_dir.join("snapshot.etag"))
            .expect("snapshot.etag in state_dir")
            .trim(),
        etag
    );
    let mut names: Vec<String> = std::fs::read_dir(&state_dir)
        .expect("read state_dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["snapshot.etag", "snapshot.json"]);
    drop(first);

    // The admin is down; a new router with the same state_dir routes from the start.
    admin.go_down();
    let second = Setup::without_file()
        .routing(&strs(&lines))
        .expect_snapshot(true)
        .start();
    assert_ready(&second);
    assert_routes_to(&second, "/live/one.m3u8");
    assert_eq!(debug_snapshot(&second)["version"], "v1");
    // Its fetches fail meanwhile, and it keeps routing.
    poll("a failed fetch while the admin is down", || {
        match fetches(&second, "error") {
            0 => Err("no error fetch yet".to_string()),
            n => Ok(n),
        }
    });
    assert_ready(&second);
    assert_routes_to(&second, "/live/one.m3u8");

    // The admin comes back unchanged: the first fetch is conditional on the persisted ETag.
    let count = admin.seen_count();
    admin.come_up();
    let next = admin.wait_request_after(count, "a fetch once the admin is back");
    assert_eq!(
        next.header("if-none-match"),
        Some(etag.as_str()),
        "{next:?}"
    );
    assert_eq!(next.status, 304, "{next:?}");
    assert_routes_to(&second, "/live/one.m3u8");
}

#[test]
fn an_unusable_persisted_snapshot_is_fetched_again_in_full() {
    // state_dir keeps the document and its ETag. When the document cannot be used at start
    // (corrupted, or deleted by hand) the ETag alone must not make the admin answer 304: the
    // router has nothing to keep.
    let dir = temp_dir("cti-kaltura-admin-corrupt-");
    let state_dir = dir.path().join("state");
    let admin = FakeAdmin::up(&data::snapshot("v1", "/live/one.m3u8"));
    let etag = admin.lock().etag.clone();
    let lines = routing(&admin.url(), 1, &["max_backoff_secs: 1"], Some(&state_dir));
    let first = Setup::without_file()
        .routing(&strs(&lines))
        .expect_snapshot(true)
        .start();
    assert_routes_to(&first, "/live/one.m3u8");
    drop(first);
    let persisted = state_dir.join("snapshot.json");
    let bytes = std::fs::read(&persisted).expect("snapshot.json in state_dir");
    std::fs::write(&persisted, &bytes[..bytes.len() / 2]).expect("truncate snapshot.json");
    assert_eq!(
        std::fs::read_to_string(state_dir.join("snapshot.etag"))
            .expect("snapshot.etag in state_dir")
            .trim(),
        etag
    );

    let count = admin.seen_count();
    let second = Setup::without_file().routing(&strs(&lines)).start();
    admin.wait_request_after(count, "a fetch by the restarted router");
    wait_routes_to(
        &second,
        "routing from the admin after an unusable persisted snapshot",
        "/live/one.m3u8",
    );
    assert_ready(&second);
    let fetched = admin.seen()[count].clone();
    assert_eq!(fetched.status, 200, "{fetched:?}");
}

#[test]
fn without_snapshot_or_admin_answers_503_until_the_admin_comes_up() {
    const MAX_BACKOFF: Duration = Duration::from_secs(1);
    let dir = temp_dir("cti-kaltura-admin-empty-");
    let state_dir = dir.path().join("state");
    // The port is reserved now; the admin starts listening on it later.
    let mut admin = FakeAdmin::down(&data::snapshot("v1", "/live/one.m3u8"));
    let router = Setup::without_file()
        .routing(&strs(&routing(
            &admin.url(),
            3600,
            &[&format!("max_backoff_secs: {}", MAX_BACKOFF.as_secs())],
            Some(&state_dir),
        )))
        .expect_snapshot(false)
        .start();

    let response = router.get(LIVE);
    assert_eq!(response.status, 503, "{response:?}");
    assert!(
        response.header("retry-after").is_some(),
        "no Retry-After: {response:?}"
    );
    let ready = router.management("/readyz");
    assert_eq!(ready.status, 503, "{ready:?}");
    let alive = router.management("/healthz");
    assert_eq!(alive.status, 200, "{alive:?}");
    poll("failed fetches while the admin is down", || {
        match fetches(&router, "error") {
            n if n >= 2 => Ok(n),
            n => Err(format!("{n} error fetch(es)")),
        }
    });
    assert_eq!(router.get(LIVE).status, 503);

    admin.come_up();
    let up = Instant::now();
    let routed = wait_routes_to(&router, "routing once the admin is up", "/live/one.m3u8");
    let took = routed - up;
    assert!(
        took <= MAX_BACKOFF + SLACK,
        "recovered {took:?} after the admin came up (max_backoff_secs {MAX_BACKOFF:?})"
    );
    assert_ready(&router);
    assert!(state_dir.join("snapshot.json").exists());
}

#[test]
fn check_flag_rejects_file_and_admin_api_together() {
    let dir = temp_dir("cti-kaltura-admin-cli-");
    let routing_file = dir.path().join("routing.json");
    std::fs::write(
        &routing_file,
        serde_json::to_vec(&data::standard()).expect("JSON serialises"),
    )
    .expect("write routing file");
    let config = dir.path().join("cti-kaltura.yaml");
    let run = |routing_block: Vec<String>, args: &[&str]| {
        let mut spec = ConfigSpec::new(&routing_file.display().to_string());
        spec.routing_block = Some(routing_block);
        std::fs::write(&config, spec.to_yaml(dir.path())).expect("write config");
        let mut cmd = Command::new(bin());
        cmd.arg("-c")
            .arg(&config)
            .args(args)
            .current_dir(dir.path());
        run_bounded(&mut cmd, dir.path())
    };

    let mut both = vec![format!(
        "file: {}",
        yaml_str(&routing_file.display().to_string())
    )];
    both.extend(routing("http://127.0.0.1:9/snapshot", 5, &[], None));
    for args in [&["-t"][..], &[][..]] {
        let (status, _, stderr) = run(both.clone(), args);
        assert!(
            !status.success(),
            "{args:?}: file and admin_api together accepted: {status}\n{stderr}"
        );
        assert!(status.code().is_some(), "killed by a signal: {status}");
        assert!(stderr.contains("router.routing.admin_api"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

    // An admin_api section without its url names the key.
    let (status, _, stderr) = run(
        vec![
            "admin_api:".to_string(),
            "  poll_interval_secs: 5".to_string(),
        ],
        &["-t"],
    );
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("router.routing.admin_api.url"), "{stderr}");

    // Alone, admin_api passes -t without contacting the admin.
    let (status, stdout, stderr) = run(
        routing("http://127.0.0.1:9/snapshot", 5, &[], None),
        &["-t"],
    );
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
}
