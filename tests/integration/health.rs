//! Active edge health checks against in-process fake edges: a killed edge leaves routing
//! within the documented bound and comes back after `rise` good checks, a flapping edge does
//! not flap routing, `healthcheck_enabled: false` and a missing path, panic mode, health
//! across a snapshot reload, and `/debug/edges` with the health metrics.
//!
//! Every fake edge listens on its own loopback address `127.0.0.N` and is named by it
//! (`domain_name` = `ip` = `127.0.0.N`), so health checks reach it, redirects name it
//! (`http://127.0.0.N:PORT/live/one.m3u8`) and the `server` metric labels tell edges apart.

use crate::fake_edge::{self, fake_edge, FakeEdge, Health, RegionSpec};
use crate::harness::{try_poll_for, write_json_renamed, Router, Setup};
use crate::http::Response;
use crate::prometheus::{metric_sum, metric_value, samples, scrape};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_millis(150);
const FALL: u32 = 2;
const RISE: u32 = 2;
/// `router.health` for most tests: checks every 200 ms, 150 ms each, 2 to fall, 2 to rise.
const HEALTH: [&str; 5] = [
    "enabled: true",
    "interval_ms: 200",
    "timeout_ms: 150",
    "fall: 2",
    "rise: 2",
];
/// Scheduling slack on top of a documented bound (two busy cores, debug builds).
const SLACK: Duration = Duration::from_millis(1000);
/// How long a test waits for a state that should come within a few check rounds.
const SETTLE: Duration = Duration::from_secs(8);

const LIVE: &str = "/btv/live/hls/epg_1.m3u8";

/// The longest time from an edge failing (or recovering) to routing knowing it: `n`
/// consecutive checks, plus up to one interval until the first of them starts, plus the
/// last one's timeout.
fn bound(n: u32) -> Duration {
    INTERVAL * n + INTERVAL + TIMEOUT
}

/// The live redirect that names `fake`.
fn live_location(fake: &FakeEdge) -> String {
    format!(
        "http://{}:{}{}",
        fake.host(),
        fake.port(),
        fake_edge::LIVE_PATH
    )
}

/// Which of `fakes` a live redirect went to; panics on anything else.
fn chosen(response: &Response, fakes: &[&FakeEdge]) -> usize {
    assert_eq!(response.status, 302, "{response:?}");
    let location = response.location();
    fakes
        .iter()
        .position(|f| location == live_location(f))
        .unwrap_or_else(|| panic!("redirect to no known edge: {response:?}"))
}

/// `/debug/edges` as its `edges` array.
fn debug_edges(router: &Router) -> Vec<Value> {
    let answer = router.management("/debug/edges");
    assert_eq!(answer.status, 200, "{answer:?}");
    let doc: Value = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|e| panic!("/debug/edges is not JSON ({e}): {answer:?}"));
    doc["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("no edges array: {doc}"))
        .clone()
}

/// The `/debug/edges` entry of `fake` (by host and port).
fn edge_entry(router: &Router, fake: &FakeEdge) -> Value {
    debug_edges(router)
        .into_iter()
        .find(|e| e["domain_name"] == fake.host().as_str() && e["port"] == fake.port())
        .unwrap_or_else(|| panic!("{} not in /debug/edges", fake.describe()))
}

fn is_up(router: &Router, fake: &FakeEdge) -> bool {
    let entry = edge_entry(router, fake);
    entry["health"]["up"]
        .as_bool()
        .unwrap_or_else(|| panic!("no health.up in {entry}"))
}

/// Polls `probe` every 20 ms until it holds, for at most `limit`; returns the time taken.
fn wait_until(what: &str, limit: Duration, probe: impl FnMut() -> Result<(), String>) -> Duration {
    let started = Instant::now();
    try_poll_for(what, limit, Duration::from_millis(20), probe).unwrap_or_else(|e| panic!("{e}"));
    started.elapsed()
}

/// Waits until `fake` is up (`want` true) or down by `/debug/edges`.
fn wait_health(router: &Router, fake: &FakeEdge, want: bool, limit: Duration) -> Duration {
    wait_until(
        &format!("{} {}", fake.describe(), if want { "up" } else { "down" }),
        limit,
        || {
            let entry = edge_entry(router, fake);
            if entry["health"]["up"] == want {
                Ok(())
            } else {
                Err(entry.to_string())
            }
        },
    )
}

/// Waits until every fake has been checked at least `rounds` times (by its own count).
fn wait_checked(fakes: &[&FakeEdge], rounds: usize) {
    wait_until("health requests at every edge", SETTLE, || {
        match fakes.iter().find(|f| f.health_requests() < rounds) {
            None => Ok(()),
            Some(f) => Err(f.describe()),
        }
    });
}

/// A snapshot with one region on `127.0.0.1/32` whose edges are `fakes` (ids 1, 2, ...).
fn one_region(version: &str, fakes: &[&FakeEdge]) -> Value {
    let ids: Vec<i64> = (1..=fakes.len() as i64).collect();
    let servers: Vec<Value> = fakes
        .iter()
        .zip(&ids)
        .map(|(f, &id)| fake_edge(id, f))
        .collect();
    fake_edge::snapshot(
        version,
        &[RegionSpec {
            id: 1,
            cidrs: &["127.0.0.1/32"],
            edge_ids: &ids,
        }],
        &servers,
    )
}

/// `cti_kaltura_panic_regions` (panics when it is missing).
fn panic_regions(router: &Router) -> f64 {
    let text = scrape(router);
    match samples(&text, "cti_kaltura_panic_regions").as_slice() {
        [(_, value)] => *value,
        other => panic!("cti_kaltura_panic_regions: {other:?}"),
    }
}

/// Waits until `cti_kaltura_panic_regions` is `want`.
fn wait_panic_regions(router: &Router, want: f64) {
    wait_until(&format!("cti_kaltura_panic_regions {want}"), SETTLE, || {
        let value = panic_regions(router);
        if value == want {
            Ok(())
        } else {
            Err(value.to_string())
        }
    });
}

/// Log lines of the router containing `needle`.
fn log_lines(router: &Router, needle: &str) -> usize {
    router
        .stderr()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

#[test]
fn killed_edge_leaves_routing_within_the_bound_and_returns_after_rise_good_checks() {
    let a = FakeEdge::start("a", 2);
    let b = FakeEdge::start("b", 3);
    let c = FakeEdge::start("c", 4);
    let fakes = [&a, &b, &c];
    let router = Setup::with(one_region("v1", &fakes))
        .health(&HEALTH)
        .start();
    wait_checked(&fakes, 2);
    assert!(is_up(&router, &b));

    // Killed: the listener goes away, connections are refused.
    b.set_health(Health::Closed);
    let limit = bound(FALL);
    let took = wait_health(&router, &b, false, SETTLE);
    assert!(
        took <= limit + SLACK,
        "down after {took:?}; documented bound {limit:?}"
    );
    let mut seen = [0; 3];
    for _ in 0..30 {
        let response = router.get(LIVE);
        seen[chosen(&response, &fakes)] += 1;
    }
    assert_eq!(seen[1], 0, "a dead edge got redirects: {seen:?}");
    assert!(seen[0] > 0 && seen[2] > 0, "live edges share: {seen:?}");
    let entry = edge_entry(&router, &b);
    assert!(
        entry["health"]["consecutive_failed"].as_u64() >= Some(FALL as u64),
        "{entry}"
    );
    assert_ne!(entry["health"]["last_result"], "ok", "{entry}");

    // Back: listening and answering OK again; up after `rise` good checks, not before.
    let checks_before = b.health_requests();
    b.set_health(Health::Ok);
    let limit = bound(RISE);
    let took = wait_health(&router, &b, true, SETTLE);
    assert!(
        took <= limit + SLACK,
        "up after {took:?}; documented bound {limit:?}; {}",
        b.describe()
    );
    let good_checks = b.health_requests() - checks_before;
    assert!(
        good_checks >= RISE as usize,
        "up again after {good_checks} health requests; rise is {RISE}"
    );
    let entry = edge_entry(&router, &b);
    assert!(
        entry["health"]["consecutive_ok"].as_u64() >= Some(RISE as u64),
        "{entry}"
    );
    assert_eq!(entry["health"]["last_result"], "ok", "{entry}");
    let mut back = false;
    for _ in 0..60 {
        if chosen(&router.get(LIVE), &fakes) == 1 {
            back = true;
            break;
        }
    }
    assert!(back, "the recovered edge gets no redirects");
}

#[test]
fn flapping_edge_does_not_flap_routing() {
    let a = FakeEdge::start("a", 2);
    let b = FakeEdge::start_with("b", 3, Health::Flapping);
    let fakes = [&a, &b];
    // A timeout equal to the interval: on a busy machine a slow check must not count as a
    // second failure in a row.
    let router = Setup::with(one_region("v1", &fakes))
        .health(&[
            "enabled: true",
            "interval_ms: 200",
            "timeout_ms: 200",
            "fall: 2",
            "rise: 2",
        ])
        .start();
    let started = Instant::now();
    let mut to_b = 0;
    let mut samples_taken = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let entry = edge_entry(&router, &b);
        assert_eq!(
            entry["health"]["up"], true,
            "the flapping edge was excluded: {entry}"
        );
        samples_taken += 1;
        if chosen(&router.get(LIVE), &fakes) == 1 {
            to_b += 1;
        }
        // Sampling routing and health over the 3 s (the watching is the test).
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(samples_taken >= 10, "only {samples_taken} samples");
    assert!(
        to_b > 0,
        "the flapping edge got no redirect in {samples_taken}"
    );
    // It really flapped: good and bad answers were both seen.
    assert!(b.health_requests() >= 8, "{}", b.describe());
    let text = scrape(&router);
    let host = b.host();
    for result in ["ok", "bad_status"] {
        let n = metric_sum(
            &text,
            "cti_kaltura_health_check_total",
            &[("server", &host), ("result", result)],
        );
        assert!(
            n >= 3.0,
            "{result} checks of the flapping edge: {n}\n{text}"
        );
    }
    assert!(is_up(&router, &b));
}

#[test]
fn edge_without_healthcheck_enabled_is_never_checked() {
    let a = FakeEdge::start("a", 2);
    // Would fail every check, were it checked.
    let x = FakeEdge::start_with("x", 3, Health::BadStatus);
    let mut snapshot = one_region("v1", &[&a, &x]);
    snapshot["servers"][1]["healthcheck_enabled"] = json!(false);
    let router = Setup::with(snapshot).health(&HEALTH).start();
    // About a second of checks (five rounds) at the other edge.
    wait_checked(&[&a], 5);
    assert_eq!(x.health_requests(), 0, "{}", x.describe());

    let entry = edge_entry(&router, &x);
    assert_eq!(entry["admin"]["healthcheck_enabled"], false, "{entry}");
    assert_eq!(entry["health"]["up"], true, "{entry}");
    assert_eq!(entry["health"]["last_result"], Value::Null, "{entry}");
    let text = scrape(&router);
    assert!(
        samples(&text, "cti_kaltura_health_check_total")
            .iter()
            .all(|(labels, _)| !labels.contains(&("server".into(), x.host()))),
        "an unchecked edge has check counts:\n{text}"
    );
    // Still routable.
    let mut to_x = 0;
    for _ in 0..40 {
        if chosen(&router.get(LIVE), &[&a, &x]) == 1 {
            to_x += 1;
        }
    }
    assert!(to_x > 0, "the unchecked edge got no redirect");
    assert_eq!(x.health_requests(), 0, "{}", x.describe());
}

#[test]
fn missing_healthcheck_path_is_reported_for_that_server_only() {
    let a = FakeEdge::start("a", 2);
    let n = FakeEdge::start("n", 3);
    let m = FakeEdge::start("m", 4);
    let fakes = [&a, &n, &m];
    let mut snapshot = one_region("v1", &fakes);
    snapshot["servers"][1]["healthcheck_path"] = Value::Null;
    snapshot["servers"][2]["healthcheck_path"] = json!("");
    let router = Setup::with(snapshot).health(&HEALTH).start();
    wait_checked(&[&a], 4);

    // The checked edge is checked normally, round after round.
    let entry = edge_entry(&router, &a);
    assert_eq!(entry["health"]["up"], true, "{entry}");
    assert_eq!(entry["health"]["last_result"], "ok", "{entry}");
    assert!(
        entry["health"]["consecutive_ok"].as_u64() >= Some(2),
        "{entry}"
    );
    let text = scrape(&router);
    let ok = metric_sum(
        &text,
        "cti_kaltura_health_check_total",
        &[("server", &a.host()), ("result", "ok")],
    );
    assert!(ok >= 2.0, "{text}");
    assert!(
        samples(&text, "cti_kaltura_health_check_total")
            .iter()
            .all(
                |(labels, _)| !(labels.contains(&("server".into(), a.host()))
                    && labels.contains(&("result".into(), "no_path".into())))
            ),
        "{text}"
    );

    // Each path-less edge: reported, never requested, still up.
    for fake in [&n, &m] {
        assert_eq!(fake.health_requests(), 0, "{}", fake.describe());
        let entry = edge_entry(&router, fake);
        let last = entry["health"]["last_result"].as_str().unwrap_or_default();
        assert!(last.contains("no healthcheck_path"), "{entry}");
        assert_eq!(entry["health"]["up"], true, "{entry}");
        let reported = metric_sum(
            &text,
            "cti_kaltura_health_check_total",
            &[("server", &fake.host()), ("result", "no_path")],
        );
        assert!(reported >= 1.0, "{text}");
        // Warned about in the log, once, by name; not every round.
        let warned = router
            .stderr()
            .lines()
            .filter(|l| l.contains("no healthcheck_path") && l.contains(&fake.host()))
            .count();
        assert_eq!(
            warned,
            1,
            "warnings about {}:\n{}",
            fake.host(),
            router.stderr()
        );
    }
    let about_a = router
        .stderr()
        .lines()
        .filter(|l| l.contains("healthcheck_path") && l.contains(&a.host()))
        .count();
    assert_eq!(about_a, 0, "{}", router.stderr());

    // All three are routable.
    let mut seen = [0; 3];
    for _ in 0..45 {
        seen[chosen(&router.get(LIVE), &fakes)] += 1;
    }
    assert!(seen.iter().all(|&s| s > 0), "{seen:?}");
}

#[test]
fn region_with_every_edge_down_panics_or_falls_back() {
    let a = FakeEdge::start("a", 2);
    let b = FakeEdge::start("b", 3);
    let c = FakeEdge::start("c", 4);
    let servers = [fake_edge(1, &a), fake_edge(2, &b), fake_edge(3, &c)];
    let main = RegionSpec {
        id: 1,
        cidrs: &["127.0.0.1/32"],
        edge_ids: &[1, 2],
    };
    let fallback = RegionSpec {
        id: 2,
        cidrs: &["127.0.0.0/8"],
        edge_ids: &[3],
    };
    // Only for the router without panic mode: a region with no less specific subnet.
    let lonely = RegionSpec {
        id: 3,
        cidrs: &["192.0.2.0/24"],
        edge_ids: &[1, 2],
    };
    let panicking = Setup::with(fake_edge::snapshot("v1", &[main, fallback], &servers))
        .health(&HEALTH)
        .start();
    let mut no_panic_health = HEALTH.to_vec();
    no_panic_health.push("panic_mode: false");
    let strict = Setup::with(fake_edge::snapshot(
        "v1",
        &[main, fallback, lonely],
        &servers,
    ))
    .health(&no_panic_health)
    .start();
    let fakes = [&a, &b, &c];
    wait_checked(&fakes, 2);
    assert_eq!(panic_regions(&panicking), 0.0);

    a.set_health(Health::BadStatus);
    b.set_health(Health::BadStatus);
    for router in [&panicking, &strict] {
        for fake in [&a, &b] {
            wait_health(router, fake, false, bound(FALL) + SLACK);
        }
    }

    // Panic mode: the region still routes among its (unhealthy) edges, not to the fallback.
    let mut seen = [0; 3];
    for _ in 0..30 {
        seen[chosen(&panicking.get(LIVE), &fakes)] += 1;
    }
    assert_eq!(seen[2], 0, "panic mode left the region: {seen:?}");
    assert!(seen[0] > 0 && seen[1] > 0, "{seen:?}");
    wait_panic_regions(&panicking, 1.0);
    // Logged, once: not again in the next three check rounds (waited out on purpose).
    wait_until("PANIC MODE logged", SETTLE, || {
        match log_lines(&panicking, "PANIC MODE") {
            0 => Err("not yet".to_string()),
            _ => Ok(()),
        }
    });
    std::thread::sleep(INTERVAL * 3);
    assert_eq!(
        log_lines(&panicking, "PANIC MODE"),
        1,
        "{}",
        panicking.stderr()
    );

    // Without panic mode: the fallback region's edge, or 404 with nothing to fall back on.
    for _ in 0..20 {
        assert_eq!(chosen(&strict.get(LIVE), &fakes), 2);
    }
    let lonely_client = strict.get_for("192.0.2.10", LIVE);
    assert_eq!(lonely_client.status, 404, "{lonely_client:?}");
    assert_eq!(lonely_client.text(), "Server not found");
    assert_eq!(panic_regions(&strict), 0.0);

    // One edge recovers: panic is over and only that edge is used.
    a.set_health(Health::Ok);
    for router in [&panicking, &strict] {
        wait_health(router, &a, true, bound(RISE) + SLACK);
    }
    wait_panic_regions(&panicking, 0.0);
    for _ in 0..20 {
        assert_eq!(chosen(&panicking.get(LIVE), &fakes), 0);
        assert_eq!(chosen(&strict.get(LIVE), &fakes), 0);
        assert_eq!(chosen(&strict.get_for("192.0.2.10", LIVE), &fakes), 0);
    }
}

#[test]
fn health_survives_a_snapshot_reload() {
    let a = FakeEdge::start("a", 2);
    let b = FakeEdge::start_with("b", 3, Health::BadStatus);
    let fakes = [&a, &b];
    // fall 4: were health reset by the reload, the edge would route for 4 intervals.
    let router = Setup::with(one_region("v1", &fakes))
        .health(&[
            "enabled: true",
            "interval_ms: 200",
            "timeout_ms: 150",
            "fall: 4",
            "rise: 2",
        ])
        .start();
    wait_health(&router, &b, false, bound(4) + SLACK);
    let failed_before = edge_entry(&router, &b)["health"]["consecutive_failed"]
        .as_u64()
        .expect("consecutive_failed");

    // An unrelated change: a second channel.
    let mut v2 = one_region("v2", &fakes);
    v2["linear_channels"]
        .as_array_mut()
        .expect("channels")
        .push(
            json!({"id": 2, "epg_id": "epg_2", "name": "Two", "code_name": "two",
                     "dvr_enabled": false}),
        );
    v2["tv_streams"].as_array_mut().expect("streams").push(
        json!({"id": 21, "linear_channel_id": 2, "stream_path": "/live/two.m3u8",
                     "status": "ACTIVE", "protocol": "HLS", "encryption": "NONE"}),
    );
    write_json_renamed(router.routing_path(), &v2);
    wait_until("snapshot v2 in service", Duration::from_secs(10), || {
        let answer = router.management("/debug/snapshot");
        let doc: Value = serde_json::from_slice(&answer.body).map_err(|e| e.to_string())?;
        if doc["version"] == "v2" {
            Ok(())
        } else {
            Err(doc["version"].to_string())
        }
    });
    let reloaded = Instant::now();

    // Right after the reload, before `fall` new checks could have marked it down again.
    let entry = edge_entry(&router, &b);
    let looked_after = reloaded.elapsed();
    assert_eq!(entry["health"]["up"], false, "{entry}");
    assert!(
        looked_after < INTERVAL * 4,
        "/debug/edges answered {looked_after:?} after the reload: too late to tell"
    );
    for i in 0..30 {
        let target = if i % 2 == 0 {
            LIVE
        } else {
            "/btv/live/hls/epg_2.m3u8"
        };
        let response = router.get(target);
        assert_eq!(response.status, 302, "{response:?}");
        assert!(
            response
                .location()
                .starts_with(&format!("http://{}:{}/", a.host(), a.port())),
            "request {i} after the reload: {response:?}"
        );
    }
    let entry = edge_entry(&router, &b);
    assert_eq!(entry["health"]["up"], false, "{entry}");
    assert!(
        entry["health"]["consecutive_failed"].as_u64() >= Some(failed_before),
        "the failure count went back from {failed_before}: {entry}"
    );
    // And later, with the edge still failing, it stays down: three check rounds waited out on
    // purpose.
    std::thread::sleep(INTERVAL * 3);
    assert!(!is_up(&router, &b));
    assert!(is_up(&router, &a));
}

#[test]
fn debug_edges_and_metrics_show_every_edge() {
    let a = FakeEdge::start("ok", 2);
    let b = FakeEdge::start_with("bad-body", 3, Health::BadBody);
    let c = FakeEdge::start_with("slow", 4, Health::Slow(Duration::from_millis(600)));
    let d = FakeEdge::start_with("bad-status", 5, Health::BadStatus);
    let e = FakeEdge::start("unavailable", 6);
    let f = FakeEdge::start("inactive", 7);
    let fakes = [&a, &b, &c, &d, &e, &f];
    let mut snapshot = one_region("v1", &fakes);
    snapshot["servers"][4]["availability"] = json!(false);
    snapshot["servers"][5]["status"] = json!("INACTIVE");
    let router = Setup::with(snapshot).health(&HEALTH).start();
    wait_until("every verdict in", SETTLE, || {
        let ok = edge_entry(&router, &a)["health"]["consecutive_ok"].as_u64() >= Some(2);
        let down = [&b, &c, &d].iter().all(|f| !is_up(&router, f));
        if ok && down {
            Ok(())
        } else {
            Err(format!("{:?}", debug_edges(&router)))
        }
    });

    let edges = debug_edges(&router);
    let ids: Vec<i64> = edges.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert_eq!(ids.len(), edges.len(), "{edges:?}");
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [1, 2, 3, 4, 5, 6], "edges only, no DVR: {edges:?}");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    for (i, fake) in fakes.iter().enumerate() {
        let entry = edge_entry(&router, fake);
        assert_eq!(entry["id"], i as i64 + 1, "{entry}");
        let admin = &entry["admin"];
        assert_eq!(admin["active"], i != 5, "{entry}");
        assert_eq!(admin["availability"], i != 4, "{entry}");
        assert_eq!(admin["weight"], 10, "{entry}");
        assert_eq!(admin["healthcheck_enabled"], true, "{entry}");
        assert_eq!(admin["healthcheck_path"], fake_edge::HEALTH_PATH, "{entry}");
        let health = &entry["health"];
        for key in [
            "up",
            "last_result",
            "last_check_unix_ms",
            "last_duration_ms",
            "consecutive_ok",
            "consecutive_failed",
        ] {
            assert!(health.get(key).is_some(), "no health.{key}: {entry}");
        }
        if i == 5 {
            // Not ACTIVE: never checked.
            assert_eq!(health["last_result"], Value::Null, "{entry}");
            assert_eq!(fake.health_requests(), 0, "{}", fake.describe());
            continue;
        }
        let checked_at = health["last_check_unix_ms"]
            .as_u64()
            .unwrap_or_else(|| panic!("no check time: {entry}"));
        assert!(
            checked_at <= now_ms + 1000 && checked_at + 10_000 >= now_ms,
            "checked at {checked_at}, now {now_ms}: {entry}"
        );
        let (up, result) = match i {
            0 | 4 => (true, "ok"),
            1 => (false, "unexpected body"),
            2 => (false, "timed out"),
            _ => (false, "HTTP status 503"),
        };
        assert_eq!(health["up"], up, "{entry}");
        assert_eq!(health["last_result"], result, "{entry}");
        let (streak, other) = if up {
            ("consecutive_ok", "consecutive_failed")
        } else {
            ("consecutive_failed", "consecutive_ok")
        };
        assert!(health[streak].as_u64() >= Some(1), "{entry}");
        assert_eq!(health[other], 0, "{entry}");
    }

    let text = scrape(&router);
    for (fake, up, result) in [
        (&a, 1.0, "ok"),
        (&b, 0.0, "bad_body"),
        (&c, 0.0, "timeout"),
        (&d, 0.0, "bad_status"),
        (&e, 1.0, "ok"),
    ] {
        let host = fake.host();
        assert_eq!(
            metric_value(&text, "cti_kaltura_edge_up", &[("server", &host)]),
            Some(up),
            "cti_kaltura_edge_up{{server=\"{host}\"}}:\n{text}"
        );
        let checks = metric_sum(
            &text,
            "cti_kaltura_health_check_total",
            &[("server", &host), ("result", result)],
        );
        assert!(checks >= 1.0, "{host} {result}: {checks}\n{text}");
    }
    let inactive = f.host();
    for name in ["cti_kaltura_edge_up", "cti_kaltura_health_check_total"] {
        assert!(
            samples(&text, name)
                .iter()
                .all(|(labels, _)| !labels.contains(&("server".into(), inactive.clone()))),
            "{name} has the inactive edge:\n{text}"
        );
    }
    // One eligible edge is up: no region in panic.
    assert_eq!(panic_regions(&router), 0.0);
}

#[test]
fn an_upgraded_process_knows_dead_edges_before_it_takes_over() {
    let a = FakeEdge::start("a", 2);
    let b = FakeEdge::start("b", 3);
    let fakes = [&a, &b];
    // Rounds 20 s apart: within this test, only the checks the successor runs before taking
    // the sockets can mark `b` down.
    let router = Setup::with(one_region("v1", &fakes))
        .health(&[
            "enabled: true",
            "interval_ms: 20000",
            "timeout_ms: 300",
            "fall: 2",
            "rise: 2",
        ])
        .start();
    wait_checked(&fakes, 1);
    b.set_health(Health::Closed);
    let config = router.dir().join(crate::harness::CONFIG_FILE);
    let _successor = crate::upgrade::upgrade_in_place(router.pid(), &config, || router.stderr());
    let mut seen = [0; 2];
    for _ in 0..40 {
        seen[chosen(&router.get(LIVE), &fakes)] += 1;
    }
    assert_eq!(
        seen[1], 0,
        "the new process sent players to the dead edge: {seen:?}"
    );
    assert!(
        router
            .stderr()
            .contains("health checked 2 time(s) before taking over the listeners"),
        "{}",
        router.stderr()
    );
}
