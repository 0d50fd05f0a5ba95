//! Operations: request metrics and their labels, the access log (JSON, text, off), the
//! `/debug/route` explanation, SIGHUP re-reading the config (applied, refused, needing an
//! upgrade) and a zero-downtime binary upgrade under continuous client traffic.

use crate::data::{self, *};
use crate::harness::{bin, free_port, poll, try_poll, v4, ChildGuard, Router, Setup, CONFIG_FILE};
use crate::http::{raw_request, Conn, Response};
use crate::routes::{assert_error, assert_redirect, INVALID, NOT_FOUND};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const LIVE: &str = "/btv/live/hls/epg_1";
const LIVE_LOCATION: &str = "http://edge-a.test/live/one.m3u8";

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

/// Every sample of a Prometheus text exposition: `name{labels as printed}` → value.
fn prometheus_samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, value)| (series.to_string(), value.parse().unwrap_or(f64::NAN)))
        .collect()
}

fn metrics(router: &Router) -> BTreeMap<String, f64> {
    let answer = router.management("/metrics");
    assert_eq!(answer.status, 200, "{answer:?}");
    prometheus_samples(&answer.text())
}

/// The sum of every `cti_kaltura_requests_total` series.
fn requests_counted(samples: &BTreeMap<String, f64>) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| series.starts_with("cti_kaltura_requests_total{"))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn request_metrics_carry_kind_and_outcome_labels() {
    let router = Setup::with(data::standard()).start();
    assert_redirect(&router.get(LIVE), LIVE_LOCATION);
    assert_error(&router.get("/btv/live/hls/no_such_channel"), 404, NOT_FOUND);
    assert_error(&router.get("/nonexistent"), 400, INVALID);
    assert_error(
        &router.request(router.v4(), "DELETE", LIVE, &[]),
        405,
        "Method not allowed",
    );

    // Counted in `logging()`, after the answer went out: wait until all four are in.
    let samples = poll("four requests counted in /metrics", || {
        let samples = metrics(&router);
        let counted = requests_counted(&samples);
        if counted >= 4.0 {
            Ok(samples)
        } else {
            Err(format!("{counted} requests counted"))
        }
    });
    for (series, wanted) in [
        (
            r#"cti_kaltura_requests_total{kind="live",outcome="redirect"}"#,
            1.0,
        ),
        (
            r#"cti_kaltura_requests_total{kind="live",outcome="not_found"}"#,
            1.0,
        ),
        (
            r#"cti_kaltura_requests_total{kind="invalid",outcome="bad_request"}"#,
            1.0,
        ),
        (
            r#"cti_kaltura_requests_total{kind="invalid",outcome="method_not_allowed"}"#,
            1.0,
        ),
        (
            r#"cti_kaltura_request_duration_seconds_count{kind="live"}"#,
            2.0,
        ),
        (
            r#"cti_kaltura_request_duration_seconds_count{kind="invalid"}"#,
            2.0,
        ),
        (
            r#"cti_kaltura_request_duration_seconds_bucket{kind="live",le="+Inf"}"#,
            2.0,
        ),
    ] {
        assert_eq!(
            samples.get(series),
            Some(&wanted),
            "{series} in {samples:#?}"
        );
    }
    // Nothing else was counted (management requests are not routing requests).
    assert_eq!(requests_counted(&samples), 4.0, "{samples:#?}");
    // A bucket resolving tens of microseconds, at most as full as the total.
    let fine_bucket = r#"cti_kaltura_request_duration_seconds_bucket{kind="live",le="0.00005"}"#;
    let fine = samples
        .get(fine_bucket)
        .unwrap_or_else(|| panic!("no {fine_bucket} in {samples:#?}"));
    assert!((0.0..=2.0).contains(fine), "{fine_bucket} = {fine}");
    let sum = samples[r#"cti_kaltura_request_duration_seconds_sum{kind="live"}"#];
    assert!(sum > 0.0 && sum < 10.0, "duration sum {sum}");
}

// ---------------------------------------------------------------------------------------------
// Access log
// ---------------------------------------------------------------------------------------------

/// The keys of one access-log line, in either format.
const ACCESS_KEYS: [&str; 11] = [
    "time",
    "client",
    "peer",
    "method",
    "path",
    "status",
    "edge",
    "region_id",
    "subnet_id",
    "reason",
    "duration_us",
];

/// A path only the access-log tests request, to find their line among the others.
const LOGGED_PATH: &str = "/btv/live/hls/epg_1.m3u8";

/// The message part of every stderr line logged with target `access` (env_logger prints
/// `[TIME LEVEL target] message`).
fn access_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.split_once(" access] ").map(|(_, msg)| msg.to_string()))
        .collect()
}

/// Sends the logged request from 127.0.0.1 (trusted) on behalf of [`CLIENT_ALT`] and waits
/// for its access-log line (the only one naming [`LOGGED_PATH`]).
fn logged_line(router: &Router) -> String {
    assert_redirect(
        &router.get_for(CLIENT_ALT, LOGGED_PATH),
        &format!("http://{EDGE_ALT}:8080/live/one.m3u8"),
    );
    let lines = poll("the access-log line of the request", || {
        let lines: Vec<String> = access_lines(&router.stderr())
            .into_iter()
            .filter(|l| l.contains(LOGGED_PATH))
            .collect();
        if lines.is_empty() {
            Err("no access line yet".to_string())
        } else {
            Ok(lines)
        }
    });
    // Written once, after the answer: give a duplicate the time to show up.
    std::thread::sleep(Duration::from_millis(200));
    let again: Vec<String> = access_lines(&router.stderr())
        .into_iter()
        .filter(|l| l.contains(LOGGED_PATH))
        .collect();
    assert_eq!(again.len(), 1, "one line per request: {again:#?}");
    lines[0].clone()
}

fn assert_rfc3339_utc(time: &str) {
    assert!(
        time.len() == 24 && time.starts_with("20") && time.as_bytes()[10] == b'T',
        "time {time:?}"
    );
    assert!(time.ends_with('Z'), "time {time:?}");
}

#[test]
fn access_log_json_line_has_every_field() {
    let router = Setup::with(data::standard())
        .trusted_proxies(&["127.0.0.1/32"])
        .router_lines(&["access_log: {enabled: true, format: json}"])
        .start();
    let line = logged_line(&router);
    let doc: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("the access line is not one JSON object ({e}): {line}"));
    let keys: BTreeSet<&str> = doc
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {line}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ACCESS_KEYS.into_iter().collect(), "{line}");
    assert_rfc3339_utc(doc["time"].as_str().unwrap_or_default());
    assert_eq!(doc["client"], CLIENT_ALT, "{line}");
    assert_eq!(doc["peer"], "127.0.0.1", "{line}");
    assert_eq!(doc["method"], "GET", "{line}");
    assert_eq!(doc["path"], LOGGED_PATH, "{line}");
    assert_eq!(doc["status"], 302, "{line}");
    assert_eq!(doc["edge"], EDGE_ALT, "{line}");
    assert_eq!(doc["region_id"], 4, "{line}");
    assert_eq!(doc["subnet_id"], 4, "{line}");
    assert_eq!(doc["reason"], "redirect", "{line}");
    let micros = doc["duration_us"]
        .as_u64()
        .unwrap_or_else(|| panic!("duration_us is not a whole number: {line}"));
    assert!(micros < 10_000_000, "{line}");

    // Without a proxy speaking for it the peer is the client: no separate peer.
    let own_path = "/vod/peer-check.mp4";
    assert_redirect(
        &router.get(own_path),
        &format!("http://{EDGE_V4}{own_path}"),
    );
    let line = poll("the access-log line of a direct request", || {
        access_lines(&router.stderr())
            .into_iter()
            .find(|l| l.contains(own_path))
            .ok_or_else(|| "no access line yet".to_string())
    });
    let doc: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(doc["client"], "127.0.0.1", "{line}");
    assert_eq!(doc["peer"], Value::Null, "{line}");
    assert_eq!(doc["edge"], EDGE_V4, "{line}");
    assert_eq!(doc["region_id"], 1, "{line}");
    assert_eq!(doc["subnet_id"], 1, "{line}");
}

#[test]
fn access_log_text_line_has_the_same_keys() {
    let router = Setup::with(data::standard())
        .trusted_proxies(&["127.0.0.1/32"])
        .router_lines(&["access_log: {enabled: true, format: text}"])
        .start();
    let line = logged_line(&router);
    let pairs: BTreeMap<&str, &str> = line
        .split_whitespace()
        .map(|kv| {
            kv.split_once('=')
                .unwrap_or_else(|| panic!("{kv:?} is not key=value in {line}"))
        })
        .collect();
    let keys: BTreeSet<&str> = pairs.keys().copied().collect();
    assert_eq!(
        keys,
        ACCESS_KEYS.into_iter().collect(),
        "the text format should use the JSON format's keys: {line}"
    );
    assert_rfc3339_utc(pairs["time"]);
    assert_eq!(pairs["client"], CLIENT_ALT, "{line}");
    assert_eq!(pairs["peer"], "127.0.0.1", "{line}");
    assert_eq!(pairs["method"], "GET", "{line}");
    // Quoted, so that whatever a client sent stays on one line.
    assert_eq!(pairs["path"].trim_matches('"'), LOGGED_PATH, "{line}");
    assert_eq!(pairs["status"], "302", "{line}");
    assert_eq!(pairs["edge"], EDGE_ALT, "{line}");
    assert_eq!(pairs["region_id"], "4", "{line}");
    assert_eq!(pairs["subnet_id"], "4", "{line}");
    assert_eq!(pairs["reason"], "redirect", "{line}");
    assert!(pairs["duration_us"].parse::<u64>().is_ok(), "{line}");
}

#[test]
fn access_log_is_off_by_default() {
    let router = Setup::with(data::standard())
        .trusted_proxies(&["127.0.0.1/32"])
        .start();
    assert_redirect(
        &router.get_for(CLIENT_ALT, LOGGED_PATH),
        &format!("http://{EDGE_ALT}:8080/live/one.m3u8"),
    );
    // `logging()` ran once the request is counted; the line would follow at once.
    poll("the request counted", || {
        let counted = requests_counted(&metrics(&router));
        if counted >= 1.0 {
            Ok(())
        } else {
            Err(format!("{counted} requests counted"))
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let stderr = router.stderr();
    assert_eq!(access_lines(&stderr), Vec::<String>::new(), "{stderr}");
    assert!(!stderr.contains(LOGGED_PATH), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// /debug/route
// ---------------------------------------------------------------------------------------------

/// Percent-encodes a query value (keeps unreserved characters, `/` and `:`).
fn query_value(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn debug_route_target(ip: &str, path: &str) -> String {
    format!(
        "/debug/route?ip={}&path={}",
        query_value(ip),
        query_value(path)
    )
}

/// `/debug/route` for `ip` and `path`, as JSON (asserting a 200 JSON answer).
fn explain(router: &Router, ip: &str, path: &str) -> Value {
    let answer = router.management(&debug_route_target(ip, path));
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "{answer:?}"
    );
    serde_json::from_slice(&answer.body)
        .unwrap_or_else(|e| panic!("/debug/route is not JSON ({e}): {answer:?}"))
}

/// `(domain, verdict)` of every candidate edge of one fallback-chain step.
fn verdicts(step: &Value) -> Vec<(String, String)> {
    step["candidates"]
        .as_array()
        .unwrap_or_else(|| panic!("no candidates in {step}"))
        .iter()
        .map(|c| {
            (
                c["domain_name"].as_str().unwrap_or_default().to_string(),
                c["verdict"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn pair(domain: &str, verdict: &str) -> (String, String) {
    (domain.to_string(), verdict.to_string())
}

#[test]
fn debug_route_explains_fallback_and_inactive_region() {
    let router = Setup::with(data::standard()).start();
    let e = explain(&router, CLIENT_IN_INACTIVE_REGION, "/btv/live/hls/epg_1");
    assert_eq!(e["client_ip"], CLIENT_IN_INACTIVE_REGION, "{e:#}");
    assert_eq!(e["route"], json!({"valid": true, "kind": "live"}), "{e:#}");
    assert_eq!(e["network"], "10.1.2.0/24", "{e:#}");
    assert_eq!(e["snapshot_version"], data::VERSION, "{e:#}");
    let chain = e["fallback_chain"].as_array().expect("a chain");
    assert_eq!(chain.len(), 2, "inner and outer subnet: {e:#}");

    // The inner subnet's region is INACTIVE: its edge is not eligible, for that reason.
    let inner = &chain[0];
    assert_eq!(inner["subnet_id"], 5, "{e:#}");
    assert_eq!(inner["region_id"], 5, "{e:#}");
    assert_eq!(inner["name"], "OFF", "{e:#}");
    assert_eq!(inner["active"], false, "{e:#}");
    assert_eq!(inner["eligible_edges"], 0, "{e:#}");
    assert_eq!(
        verdicts(inner),
        vec![pair("edge-in-inactive-region.test", "region not ACTIVE")],
        "{e:#}"
    );
    assert_eq!(inner["candidates"][0]["probability"], Value::Null, "{e:#}");

    // The outer subnet's region serves.
    let outer = &chain[1];
    assert_eq!(outer["subnet_id"], 7, "{e:#}");
    assert_eq!(outer["region_id"], 7, "{e:#}");
    assert_eq!(outer["active"], true, "{e:#}");
    assert_eq!(
        verdicts(outer),
        vec![pair(EDGE_FALLBACK, "eligible")],
        "{e:#}"
    );
    assert_eq!(outer["candidates"][0]["probability"], 1.0, "{e:#}");

    let location = format!("http://{EDGE_FALLBACK}/live/one.m3u8");
    assert_eq!(
        e["result"],
        json!({"status": 302, "location": location, "edge_id": 107, "region_id": 7,
               "subnet_id": 7, "panic_mode": false}),
        "{e:#}"
    );
    assert_eq!(e["content"]["chosen"]["path"], data::LIVE_PATH, "{e:#}");
}

#[test]
fn debug_route_explains_unavailable_edge_encryption_fallback_and_bad_requests() {
    let router = Setup::with(data::standard()).start();

    // The inner region's only edge has `availability: false`.
    let e = explain(&router, CLIENT_WITH_UNAVAILABLE_EDGE, "/vod/a.mp4");
    let chain = e["fallback_chain"].as_array().expect("a chain");
    assert_eq!(chain.len(), 2, "{e:#}");
    assert_eq!(chain[0]["subnet_id"], 6, "{e:#}");
    assert_eq!(chain[0]["active"], true, "{e:#}");
    assert_eq!(chain[0]["eligible_edges"], 0, "{e:#}");
    assert_eq!(
        verdicts(&chain[0]),
        vec![pair("edge-unavailable.test", "availability false")],
        "{e:#}"
    );
    assert_eq!(chain[0]["candidates"][0]["availability"], false, "{e:#}");
    assert_eq!(chain[1]["subnet_id"], 7, "{e:#}");
    assert_eq!(e["result"]["location"], "http://fallback.test/vod/a.mp4");
    assert_eq!(e["result"]["subnet_id"], 7, "{e:#}");
    assert_eq!(
        e["content"]["lookup"],
        "none: the request path goes to the edge as is"
    );

    // Widevine asked for, only CENC exists for epg_2 in HLS: the rule falls back to CENC.
    let e = explain(&router, "127.0.0.1", "/btv/live/hls_wv/epg_2");
    let content = &e["content"];
    assert_eq!(content["epg_id"], "epg_2", "{e:#}");
    assert_eq!(content["protocol"], "HLS", "{e:#}");
    assert_eq!(content["requested_encryption"], "WIDEVINE", "{e:#}");
    assert_eq!(
        content["accepted_in_order"],
        json!(["WIDEVINE", "CENC"]),
        "{e:#}"
    );
    assert_eq!(
        content["candidates"],
        json!([{"encryption": "CENC", "id": 21, "path": "/live/two-cenc.m3u8"}]),
        "{e:#}"
    );
    assert_eq!(
        content["chosen"],
        json!({"id": 21, "path": "/live/two-cenc.m3u8"}),
        "{e:#}"
    );
    let location = format!("http://{EDGE_V4}/live/two-cenc.m3u8");
    assert_eq!(e["result"]["status"], 302, "{e:#}");
    assert_eq!(e["result"]["location"], location.as_str(), "{e:#}");
    assert_eq!(e["result"]["subnet_id"], 1, "{e:#}");
    // The explanation agrees with the decision actually made.
    assert_redirect(&router.get("/btv/live/hls_wv/epg_2"), &location);

    // A query in the explained path is carried into the Location.
    let e = explain(&router, "127.0.0.1", "/btv/live/hls/epg_1?token=a&b=c");
    assert_eq!(
        e["result"]["location"],
        format!("{LIVE_LOCATION}?token=a&b=c")
    );

    // Content that does not exist, a path that does not parse.
    let e = explain(&router, "127.0.0.1", "/btv/live/hls/no_such_channel");
    assert_eq!(e["result"]["status"], 404, "{e:#}");
    assert_eq!(e["content"]["chosen"], Value::Null, "{e:#}");
    let e = explain(&router, "127.0.0.1", "/nonexistent");
    assert_eq!(e["route"]["valid"], false, "{e:#}");
    assert_eq!(e["result"]["status"], 400, "{e:#}");

    // Requests that cannot be explained: no ip, a malformed ip, no path.
    for target in [
        "/debug/route?path=/btv/live/hls/epg_1".to_string(),
        debug_route_target("10.0.0.300", "/btv/live/hls/epg_1"),
        "/debug/route?ip=127.0.0.1".to_string(),
        "/debug/route".to_string(),
    ] {
        let answer = router.management(&target);
        assert_eq!(answer.status, 400, "{target}: {answer:?}");
        assert!(answer.text().contains("usage"), "{target}: {answer:?}");
    }
}

/// A fake edge answering every request with one fixed status line and body, for health checks.
struct FakeEdge {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeEdge {
    fn start(status_line: &'static str, body: &'static str) -> FakeEdge {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a fake edge");
        listener
            .set_nonblocking(true)
            .expect("non-blocking fake edge");
        let port = listener.local_addr().expect("fake edge address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((stream, _)) => answer_once(stream, status_line, body),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeEdge {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeEdge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request head and answers it, closing the connection.
fn answer_once(mut stream: TcpStream, status_line: &str, body: &str) {
    let ok = stream.set_nonblocking(false).is_ok()
        && stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .is_ok();
    if !ok {
        return;
    }
    let mut head = Vec::new();
    let mut chunk = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = write!(
        stream,
        "HTTP/1.1 {status_line}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn checked_edge(id: i64, port: u16) -> Value {
    json!({
        "id": id, "type": "EDGE", "domain_name": "127.0.0.1", "ip": "127.0.0.1", "port": port,
        "status": "ACTIVE", "availability": true, "weight": 10, "prefix": null,
        "healthcheck_enabled": true, "healthcheck_path": "/healthcheck"
    })
}

#[test]
fn debug_route_explains_an_edge_failing_health_checks() {
    let sick = FakeEdge::start("503 Service Unavailable", "down");
    let well = FakeEdge::start("200 OK", "OK");
    let snapshot = json!({
        "version": "health-1",
        "regions": [{"id": 1, "name": "MAIN", "status": "ACTIVE", "server_group_ids": [1]}],
        "subnets": [{"id": 1, "name": "loopback", "cidr": "127.0.0.1/32", "region_id": 1}],
        "server_groups": [{"id": 1, "name": "g", "status": "ACTIVE", "server_ids": [101, 102]}],
        "servers": [checked_edge(101, sick.port), checked_edge(102, well.port)],
        "linear_channels": [
            {"id": 1, "epg_id": "epg_1", "name": "One", "code_name": "one", "dvr_enabled": false}
        ],
        "tv_streams": [
            {"id": 11, "linear_channel_id": 1, "stream_path": "/live/one.m3u8",
             "status": "ACTIVE", "protocol": "HLS", "encryption": "NONE"}
        ]
    });
    let router = Setup::with(snapshot)
        .health(&[
            "enabled: true",
            "interval_ms: 200",
            "timeout_ms: 150",
            "fall: 1",
            "rise: 1",
            "panic_mode: false",
        ])
        .start();
    let e = poll("the 503 edge marked down in /debug/route", || {
        let e = explain(&router, "127.0.0.1", LIVE);
        let seen: Vec<(String, String)> = e["fallback_chain"][0]["candidates"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| (c["server_id"].to_string(), c["verdict"].to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let wanted = vec![
            ("101".to_string(), "\"failing health checks\"".to_string()),
            ("102".to_string(), "\"eligible\"".to_string()),
        ];
        if seen == wanted {
            Ok(e)
        } else {
            Err(format!("{seen:?}"))
        }
    });
    let candidates = &e["fallback_chain"][0]["candidates"];
    assert_eq!(candidates[0]["healthy"], false, "{e:#}");
    assert_eq!(candidates[0]["availability"], true, "{e:#}");
    assert_eq!(candidates[0]["probability"], Value::Null, "{e:#}");
    assert_eq!(candidates[1]["healthy"], true, "{e:#}");
    assert_eq!(candidates[1]["probability"], 1.0, "{e:#}");
    let location = format!("http://127.0.0.1:{}/live/one.m3u8", well.port);
    assert_eq!(
        e["result"],
        json!({"status": 302, "location": location, "edge_id": 102, "region_id": 1,
               "subnet_id": 1, "panic_mode": false}),
        "{e:#}"
    );
    // Routing agrees: every request goes to the healthy edge.
    for _ in 0..10 {
        assert_redirect(&router.get(LIVE), &location);
    }
}

// ---------------------------------------------------------------------------------------------
// SIGHUP
// ---------------------------------------------------------------------------------------------

/// Where `GET LIVE` from 127.0.0.1 with `X-Real-IP: CLIENT_ALT` is sent.
fn location_for_alt(router: &Router) -> String {
    router.get_for(CLIENT_ALT, LIVE).summary()
}

/// The header decides: region ALT.
fn alt_by_header() -> String {
    format!("302 http://{EDGE_ALT}:8080/live/one.m3u8")
}

/// The header is ignored: the peer 127.0.0.1 decides, region MAIN.
fn alt_ignored() -> String {
    format!("302 {LIVE_LOCATION}")
}

/// Polls until [`location_for_alt`] is `wanted`.
fn wait_for_alt(router: &Router, what: &str, wanted: &str) {
    let seen = try_poll(what, || {
        let seen = location_for_alt(router);
        if seen == wanted {
            Ok(())
        } else {
            Err(seen)
        }
    });
    seen.unwrap_or_else(|e| panic!("{e}; stderr:\n{}", router.stderr()));
}

/// `text` with `from` replaced by `to`, which must occur in it.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from} not in the config:\n{text}");
    text.replace(from, to)
}

/// Polls the router's stderr until a line contains every one of `needles`; returns it.
fn wait_for_log_line(router: &Router, what: &str, needles: &[&str]) -> String {
    let found = try_poll(what, || {
        router
            .stderr()
            .lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
            .ok_or_else(|| format!("no line with {needles:?}"))
    });
    found.unwrap_or_else(|e| panic!("{e}; stderr:\n{}", router.stderr()))
}

#[test]
fn sighup_applies_trusted_proxies_refuses_invalid_config_and_reports_listen_changes() {
    let mut router = Setup::with(data::standard())
        .trusted_proxies(&["127.0.0.1/32"])
        .start();
    router.wait_sighup_handler();
    let config_path = router.dir().join(CONFIG_FILE);
    let original = fs::read_to_string(&config_path).expect("read the config");
    assert_eq!(location_for_alt(&router), alt_by_header());

    // Trust only 10.0.0.0/8: 127.0.0.1's header is ignored from now on.
    let untrusting = replaced(&original, "\"127.0.0.1/32\"", "\"10.0.0.0/8\"");
    fs::write(&config_path, &untrusting).expect("write the config");
    router.sighup();
    wait_for_alt(&router, "the trusted-proxy change applied", &alt_ignored());
    wait_for_log_line(
        &router,
        "the reload logged",
        &["SIGHUP: configuration", "applied"],
    );
    router.assert_alive();

    // An invalid file (unknown key) that would trust 127.0.0.1 again: refused whole.
    let invalid = format!("{original}  colour: red\n");
    fs::write(&config_path, &invalid).expect("write the config");
    router.sighup();
    let error = wait_for_log_line(&router, "the refusal logged", &["router.colour"]);
    assert!(error.contains("ERROR"), "{error}");
    assert!(error.contains("unknown key"), "{error}");
    wait_for_log_line(&router, "the refusal summed up", &["refused", "stays"]);
    for _ in 0..5 {
        assert_eq!(
            location_for_alt(&router),
            alt_ignored(),
            "invalid file applied"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    router.assert_alive();

    // A new listen port (and 127.0.0.1 trusted again): the listener change is reported as
    // needing an upgrade and not applied, the rest applies.
    let new_port = free_port();
    let moved = replaced(
        &original,
        &format!("\"127.0.0.1:{}\"", router.port),
        &format!("\"127.0.0.1:{new_port}\""),
    );
    fs::write(&config_path, &moved).expect("write the config");
    router.sighup();
    let kept = wait_for_log_line(&router, "the listen change reported", &["router.listen"]);
    assert!(kept.contains("upgrade"), "{kept}");
    wait_for_alt(
        &router,
        "the rest of the new config applied",
        &alt_by_header(),
    );
    // The old listeners keep serving; nothing listens on the new port.
    assert_redirect(&router.get(LIVE), LIVE_LOCATION);
    assert_redirect(
        &router.request(router.v6(), "GET", LIVE, &[]),
        &format!("http://{EDGE_V6}/live/one.m3u8"),
    );
    let refused = TcpStream::connect_timeout(&v4(new_port), Duration::from_secs(1));
    assert!(refused.is_err(), "something listens on {new_port}");
    router.assert_alive();
}

// ---------------------------------------------------------------------------------------------
// Zero-downtime upgrade
// ---------------------------------------------------------------------------------------------

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
/// `location`; a failed attempt is retried once on a fresh connection.
fn keep_requesting(
    addr: SocketAddr,
    target: &str,
    location: &str,
    keep_alive: bool,
    stop: &AtomicBool,
    hard_deadline: Instant,
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
                run.served.push(Instant::now())
            }
            Ok(r) => run.failures.push(format!("wrong answer {}", r.summary())),
            Err(e) => run.failures.push(e),
        }
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

/// Whether process `pid` has exited (gone, or a zombie not yet reaped by its guard).
fn exited(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
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

    let (keep_alive, fresh, old_exited_at) = std::thread::scope(|s| {
        let _stop_guard = StopOnDrop(&stop);
        let (v4_addr, v6_addr) = (router.v4(), router.v6());
        let stop = &stop;
        let keep_alive = s.spawn(move || {
            keep_requesting(v4_addr, LIVE, LIVE_LOCATION, true, stop, hard_deadline)
        });
        let fresh = s.spawn(move || {
            let location = format!("http://{EDGE_V6}/live/one.m3u8");
            keep_requesting(v6_addr, LIVE, &location, false, stop, hard_deadline)
        });
        std::thread::sleep(Duration::from_millis(300));

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
        let exit_bound = Duration::from_secs(12);
        while !exited(old_pid) {
            assert!(
                quit_at.elapsed() < exit_bound,
                "the old process still runs {exit_bound:?} after SIGQUIT; stderr:\n{}",
                router.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let old_exited_at = Instant::now();
        println!(
            "upgrade: old process exited {:?} after SIGQUIT",
            old_exited_at - quit_at
        );
        // Traffic to the new process alone for a while.
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
    let samples = metrics(&router);
    let served_by_new = samples
        .get(r#"cti_kaltura_requests_total{kind="live",outcome="redirect"}"#)
        .copied()
        .unwrap_or(0.0);
    assert!(served_by_new > 0.0, "{samples:#?}");
    assert!(
        served_by_new < total as f64,
        "the old process served none? {served_by_new} of {total}"
    );
    assert_redirect(&router.get(LIVE), LIVE_LOCATION);
    assert!(new_log().contains("Bootstrap done"), "{}", new_log());
}
