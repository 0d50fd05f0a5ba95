//! Proxy mode against in-process fake edges: bodies small and large arrive intact, the edge
//! sees the redirect's path and query with the edge's `Host` and the client's address, a dead
//! edge is retried on a live one, two dead edges give 502, a client that hangs up mid-body
//! logs no error. And `selection: consistent`: same path, same edge; removing an edge moves
//! only its own paths; weights hold over many paths.

use crate::fake_edge::{self, edge, pattern, FakeEdge, RegionSpec};
use crate::harness::{poll, write_json_renamed, Router, Setup};
use crate::http::{raw_request, Conn, Response};
use crate::prometheus::{metric_sum, scrape, wait_metric_sum, REQUESTS};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const MIB: usize = 1024 * 1024;
/// A short connect timeout: refused connections fail at once anyway.
const PROXY: &str = "proxy: {connect_timeout_ms: 300, read_timeout_ms: 5000}";

/// A snapshot whose one region (`127.0.0.1/32` and `198.51.100.0/24`) has `servers`.
fn one_region(version: &str, servers: &[Value]) -> Value {
    let ids: Vec<i64> = servers.iter().filter_map(|s| s["id"].as_i64()).collect();
    fake_edge::snapshot(
        version,
        &[RegionSpec {
            id: 1,
            cidrs: &["127.0.0.1/32", "198.51.100.0/24"],
            edge_ids: &ids,
        }],
        servers,
    )
}

/// An edge entry for a fake on `127.0.0.1`, named `domain` (what `Host` must say).
fn proxied_edge(id: i64, domain: &str, fake: &FakeEdge) -> Value {
    edge(id, domain, "127.0.0.1", fake.port())
}

/// A 200 from the edge named `edge` carrying exactly `len` bytes of the pattern.
fn assert_body(response: &Response, edge: &str, len: usize) {
    assert_eq!(
        response.status, 200,
        "{} {:?}",
        response.status, response.headers
    );
    assert_eq!(response.header("location"), None, "{:?}", response.headers);
    assert_eq!(
        response.header("x-edge"),
        Some(edge),
        "{:?}",
        response.headers
    );
    assert_eq!(response.body.len(), len, "{:?}", response.headers);
    // Compared in pieces, so a mismatch names its offset instead of dumping megabytes.
    let expected = pattern(0, len);
    if let Some(at) = (0..len).step_by(4096).find(|&at| {
        let end = (at + 4096).min(len);
        response.body[at..end] != expected[at..end]
    }) {
        panic!(
            "body differs from the edge's within bytes {at}..{}",
            at + 4096
        );
    }
}

#[test]
fn proxied_vod_arrives_intact_with_path_host_and_client_address() {
    let fake = FakeEdge::start("edge-one", 1);
    let router = Setup::with(one_region(
        "v1",
        &[proxied_edge(1, "edge-one.proxy.test", &fake)],
    ))
    .router_lines(&["routes: {vod: {mode: proxy}}", PROXY])
    .start();

    fake.set_body_len(1000);
    let small = router.get("/vod/a//b.bin?x=1");
    assert_body(&small, "edge-one", 1000);
    assert_eq!(small.header("content-length"), Some("1000"));

    fake.set_body_len(4 * MIB);
    let large = router.get("/vod/a//b.bin?x=1");
    assert_body(&large, "edge-one", 4 * MIB);

    // From a trusted proxy (loopback), X-Real-IP names the client.
    fake.set_body_len(10);
    let relayed = router.get_for("198.51.100.7", "/vod/a//b.bin?x=1");
    assert_body(&relayed, "edge-one", 10);

    let seen = fake.requests();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for (request, client) in seen.iter().zip(["127.0.0.1", "127.0.0.1", "198.51.100.7"]) {
        assert_eq!(request.method, "GET", "{request:?}");
        assert_eq!(request.target, "/vod/a/b.bin?x=1", "{request:?}");
        assert_eq!(request.version, "HTTP/1.1", "{request:?}");
        assert_eq!(request.header("host"), "edge-one.proxy.test");
        assert_eq!(request.header("x-forwarded-for"), client, "{request:?}");
        assert_eq!(request.header("x-real-ip"), client, "{request:?}");
    }

    let text = scrape(&router);
    let ok = metric_sum(
        &text,
        "cti_kaltura_upstream_responses_total",
        &[("kind", "vod"), ("class", "2xx")],
    );
    assert_eq!(ok, 3.0, "{text}");
}

#[test]
fn proxied_live_and_catchup_carry_the_stream_path_and_query() {
    let fake = FakeEdge::start("edge-live", 1);
    fake.set_body_len(2048);
    let router = Setup::with(one_region(
        "v1",
        &[proxied_edge(1, "edge-live.proxy.test", &fake)],
    ))
    .router_lines(&[
        "routes: {live: {mode: proxy}, catchup: {mode: proxy}}",
        PROXY,
    ])
    .start();

    assert_body(
        &router.get("/btv/live/hls/epg_1.m3u8?token=abc&b=2"),
        "edge-live",
        2048,
    );
    assert_body(
        &router.get("/btv/catchup/hls/prog_1?token=t"),
        "edge-live",
        2048,
    );
    let seen = fake.requests();
    let targets: Vec<&str> = seen.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            format!("{}?token=abc&b=2", fake_edge::LIVE_PATH),
            format!("{}?token=t", fake_edge::CATCHUP_EDGE_PATH),
        ]
    );
    for request in &seen {
        assert_eq!(request.header("host"), "edge-live.proxy.test");
        assert_eq!(request.header("x-forwarded-for"), "127.0.0.1");
    }

    // VOD stays in redirect mode: the mode is per route kind.
    let vod = router.get("/vod/x.mp4");
    assert_eq!(vod.status, 302, "{vod:?}");
    assert_eq!(vod.location(), "http://edge-live.proxy.test/vod/x.mp4");
    assert_eq!(fake.requests().len(), 2);
}

#[test]
fn dead_edge_is_retried_on_a_live_one() {
    let dead = FakeEdge::dead("dead", 1);
    let live = FakeEdge::start("live", 1);
    let mut heavy_dead = proxied_edge(1, "dead.proxy.test", &dead);
    // Nearly every first choice is the dead edge.
    heavy_dead["weight"] = json!(1000);
    let router = Setup::with(one_region(
        "v1",
        &[heavy_dead, proxied_edge(2, "live.proxy.test", &live)],
    ))
    .router_lines(&["routes: {vod: {mode: proxy}}", PROXY])
    .start();

    live.set_body_len(100 * 1024);
    for i in 0..10 {
        let response = router.get(&format!("/vod/file-{i}.bin"));
        assert_body(&response, "live", 100 * 1024);
    }
    assert_eq!(live.requests().len(), 10, "{}", live.describe());
    for request in live.requests() {
        assert_eq!(request.header("host"), "live.proxy.test");
    }
    let text = scrape(&router);
    let retries = metric_sum(&text, "cti_kaltura_upstream_retries_total", &[]);
    let failures = metric_sum(&text, "cti_kaltura_upstream_connect_failures_total", &[]);
    assert!(retries >= 1.0, "{text}");
    assert!(failures >= retries, "{text}");
}

#[test]
fn failed_connections_mark_the_edge_down_before_any_check() {
    let dead = FakeEdge::dead("dead", 2);
    let live = FakeEdge::start("live", 3);
    let mut heavy_dead = fake_edge::fake_edge(1, &dead);
    // Every first choice is the dead edge (the live one's odds: 1 in 100 001).
    heavy_dead["weight"] = json!(1_000_000);
    let fall = 3;
    // One round of active checks at start-up at most: the rest is passive health.
    let router = Setup::with(one_region(
        "v1",
        &[heavy_dead, fake_edge::fake_edge(2, &live)],
    ))
    .health(&[
        "enabled: true",
        "interval_ms: 600000",
        "timeout_ms: 500",
        "fall: 3",
        "rise: 2",
    ])
    .router_lines(&["routes: {vod: {mode: proxy}}", PROXY])
    .start();

    let dead_is_up = || {
        let answer = router.management("/debug/edges");
        let doc: Value = serde_json::from_slice(&answer.body).expect("JSON");
        let entry = doc["edges"]
            .as_array()
            .and_then(|edges| edges.iter().find(|e| e["id"] == 1))
            .cloned()
            .unwrap_or_else(|| panic!("no edge 1: {doc}"));
        entry["health"]["up"] == true
    };
    let mut requests = 0;
    while dead_is_up() {
        assert!(
            requests < fall,
            "still up after {requests} failed connections"
        );
        assert_body(&router.get("/vod/f.bin"), "live", 1024);
        requests += 1;
    }
    // Down: chosen no more, so no more failed connections or retries.
    let retries =
        |router: &Router| metric_sum(&scrape(router), "cti_kaltura_upstream_retries_total", &[]);
    let before = retries(&router);
    for _ in 0..10 {
        assert_body(&router.get("/vod/f.bin"), "live", 1024);
    }
    assert_eq!(retries(&router), before);
    assert!(!dead_is_up());
}

#[test]
fn both_edges_dead_is_a_502_after_one_retry() {
    let one = FakeEdge::dead("one", 1);
    let two = FakeEdge::dead("two", 1);
    let router = Setup::with(one_region(
        "v1",
        &[
            proxied_edge(1, "one.proxy.test", &one),
            proxied_edge(2, "two.proxy.test", &two),
        ],
    ))
    .router_lines(&["routes: {vod: {mode: proxy}}", PROXY])
    .start();

    // Refused connections, not a time-out: the failure counters below say why each 502 came.
    for _ in 0..3 {
        let response = router.get("/vod/x.bin");
        assert_eq!(response.status, 502, "{response:?}");
        assert!(
            !response.body.is_empty() && response.body.len() < 100,
            "{response:?}"
        );
        assert_eq!(response.header("location"), None, "{response:?}");
    }
    let text = scrape(&router);
    let retries = metric_sum(&text, "cti_kaltura_upstream_retries_total", &[]);
    let failures = metric_sum(&text, "cti_kaltura_upstream_connect_failures_total", &[]);
    assert!(retries >= 3.0, "one retry per request:\n{text}");
    assert!(
        failures >= 6.0,
        "two failed connections per request:\n{text}"
    );
}

#[test]
fn client_hanging_up_mid_body_logs_no_error() {
    let fake = FakeEdge::start("big", 1);
    // Far more than every socket buffer on the way can hold.
    fake.set_body_len(64 * MIB);
    let router = Setup::with(one_region(
        "v1",
        &[proxied_edge(1, "big.proxy.test", &fake)],
    ))
    .router_lines(&["routes: {vod: {mode: proxy}}", PROXY])
    .start();

    let aborted = 3;
    for i in 0..aborted {
        let mut conn = Conn::open(router.v4());
        conn.send(&raw_request("GET", &format!("/vod/big-{i}.bin"), &[]));
        while conn.buffered().len() < 16 * 1024 {
            let got = conn.buffered().len();
            match conn.read_some(Duration::from_secs(5)) {
                Ok(0) => panic!("closed, or nothing for 5 s, after {got} bytes"),
                Ok(_) => {}
                Err(e) => panic!("read after {got} bytes: {e}"),
            }
        }
        // Gone, with megabytes still to come.
        drop(conn);
    }

    // The router goes on serving, and has finished with every aborted request.
    fake.set_body_len(1000);
    assert_body(&router.get("/vod/small.bin"), "big", 1000);
    wait_metric_sum(&router, REQUESTS, &[("kind", "vod")], (aborted + 1) as f64);
    // Time for an error line to follow the requests (waited out on purpose: none may come).
    std::thread::sleep(Duration::from_millis(300));
    let log = router.stderr();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(
        errors.is_empty(),
        "error-level lines after client aborts:\n{}\n\nwhole log:\n{log}",
        errors.join("\n")
    );
    assert_eq!(fake.requests().len(), aborted + 1);

    // And the router let go of the edge too: no aborted body was fetched whole.
    let sent = poll("every body written or cut off", || {
        let sent = fake.bytes_sent();
        if sent.iter().all(Option::is_some) {
            Ok(sent)
        } else {
            Err(format!("{sent:?}"))
        }
    });
    for (i, bytes) in sent.iter().take(aborted).enumerate() {
        assert!(
            bytes.is_some_and(|b| b < 64 * MIB),
            "aborted request {i}: the edge sent {bytes:?} bytes"
        );
    }
}

/// Every edge of the consistent-selection tests: `edge-N.test`, not health-checked.
fn marker_edge(id: i64, weight: u64) -> Value {
    let mut server = edge(id, &format!("edge-{id}.test"), "192.0.2.1", 80);
    server["weight"] = json!(weight);
    server["healthcheck_enabled"] = json!(false);
    server
}

/// The edge host a VOD redirect names.
fn host_of(response: &Response) -> String {
    assert_eq!(response.status, 302, "{response:?}");
    let location = response.location();
    location
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("odd Location {location}"))
        .to_string()
}

/// The edge every one of `paths` is redirected to, over one keep-alive connection.
fn edges_of(router: &Router, paths: &[String]) -> Vec<String> {
    let mut conn = router.connect(router.v4());
    paths
        .iter()
        .map(|p| host_of(&conn.request("GET", p, &[])))
        .collect()
}

/// Waits until `/debug/snapshot` reports `version`.
fn wait_version(router: &Router, version: &str) {
    poll(&format!("snapshot {version} in service"), || {
        let answer = router.management("/debug/snapshot");
        let doc: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if doc["version"] == version {
            Ok(())
        } else {
            Err(doc.to_string())
        }
    });
}

fn count(edges: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for edge in edges {
        *counts.entry(edge.as_str()).or_default() += 1;
    }
    counts
}

#[test]
fn consistent_selection_keeps_paths_on_their_edge_and_moves_only_a_removed_edges_paths() {
    let four: Vec<Value> = (1..=4).map(|id| marker_edge(id, 10)).collect();
    let router = Setup::with(one_region("v1", &four))
        .router_lines(&["routes: {vod: {selection: consistent}}"])
        .start();

    // The same path: always the same edge, whatever the query or doubled slashes.
    let first = host_of(&router.get("/vod/movies/m1/video.mp4"));
    for i in 0..20 {
        let target = match i % 3 {
            0 => "/vod/movies/m1/video.mp4".to_string(),
            1 => format!("/vod/movies/m1/video.mp4?token={i}"),
            _ => "/vod/movies//m1///video.mp4".to_string(),
        };
        assert_eq!(host_of(&router.get(&target)), first, "{target}");
    }

    // Different paths spread over every edge.
    let paths: Vec<String> = (0..200)
        .map(|i| format!("/vod/movies/m{i}/video.mp4"))
        .collect();
    let before = edges_of(&router, &paths);
    let counts = count(&before);
    assert_eq!(counts.len(), 4, "{counts:?}");
    assert!(counts.values().all(|&n| n >= 20), "{counts:?}");
    assert_eq!(edges_of(&router, &paths), before, "not stable");

    // edge-3 leaves: only its paths move, to the other edges.
    let three: Vec<Value> = [1, 2, 4].iter().map(|&id| marker_edge(id, 10)).collect();
    write_json_renamed(router.routing_path(), &one_region("v2", &three));
    wait_version(&router, "v2");
    let after = edges_of(&router, &paths);
    let mut moved = 0;
    for ((path, was), now) in paths.iter().zip(&before).zip(&after) {
        if was == "edge-3.test" {
            assert_ne!(now, "edge-3.test", "{path}");
            moved += 1;
        } else {
            assert_eq!(now, was, "{path} moved though its edge stayed");
        }
    }
    let fraction = moved as f64 / paths.len() as f64;
    assert!(
        (fraction - 0.25).abs() < 0.1,
        "moved {moved} of {} paths (1/4 expected)",
        paths.len()
    );
    assert_eq!(count(&after).len(), 3, "{:?}", count(&after));
}

#[test]
fn consistent_selection_respects_weights() {
    let servers = [marker_edge(1, 10), marker_edge(2, 30)];
    let router = Setup::with(one_region("v1", &servers))
        .router_lines(&["routes: {static: {selection: consistent}}"])
        .start();
    let paths: Vec<String> = (0..400).map(|i| format!("/static/img/{i}.png")).collect();
    let edges = edges_of(&router, &paths);
    let counts = count(&edges);
    let heavy = counts.get("edge-2.test").copied().unwrap_or(0) as f64 / 400.0;
    // Expected 0.75; the binomial standard deviation over 400 paths is about 0.02.
    assert!((heavy - 0.75).abs() < 0.08, "{counts:?}");
}
