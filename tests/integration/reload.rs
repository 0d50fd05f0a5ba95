//! Routing data changes while the router runs: a changed file takes effect (renamed over or
//! rewritten in place), a broken file keeps the old snapshot, SIGHUP reloads, and a router
//! that starts without loadable data answers 503 until a good file appears.

use crate::data;
use crate::harness::{poll, write_in_place, write_json_renamed, Router, Setup};
use crate::prometheus::{metric_sum, scrape};
use crate::routes::{assert_error, assert_redirect, INVALID};
use serde_json::Value;
use std::time::{Duration, Instant};

const LIVE: &str = "/btv/live/hls/epg_1?token=abc";

fn live_location(path: &str) -> String {
    format!("http://edge-a.test{path}?token=abc")
}

/// Polls until `GET LIVE` redirects to `path`, then checks the full answer.
fn wait_for_live_path(router: &Router, what: &str, path: &str) {
    let wanted = live_location(path);
    let response = router.poll_get(what, LIVE, |r| r.header("location") == Some(&wanted));
    assert_redirect(&response, &wanted);
}

/// `/debug/snapshot` as JSON.
fn debug_snapshot(router: &Router) -> Value {
    let snapshot = router.management("/debug/snapshot");
    serde_json::from_slice(&snapshot.body)
        .unwrap_or_else(|e| panic!("/debug/snapshot is not JSON ({e}): {snapshot:?}"))
}

/// The snapshot version in service.
fn version(router: &Router) -> Value {
    let doc = debug_snapshot(router);
    assert_eq!(doc["loaded"], true, "{doc}");
    doc["version"].clone()
}

/// Failed loads so far: `cti_kaltura_snapshot_fetch_total{result="error"}` (0 when absent).
fn rejected_loads(router: &Router) -> u64 {
    metric_sum(
        &scrape(router),
        "cti_kaltura_snapshot_fetch_total",
        &[("result", "error")],
    ) as u64
}

#[test]
fn changed_file_takes_effect_and_broken_file_keeps_the_old_snapshot() {
    let router = Setup::with(data::standard()).start();
    let file = router.routing_path().to_path_buf();
    assert_redirect(&router.get(LIVE), &live_location(data::LIVE_PATH));

    // Written elsewhere and renamed over (new inode).
    write_json_renamed(&file, &data::snapshot("v2", "/live/renamed.m3u8"));
    wait_for_live_path(&router, "renamed file", "/live/renamed.m3u8");
    assert_eq!(version(&router), "v2");

    // Rewritten in place, same length as before (only the modification time changes).
    let in_place = data::snapshot("v3", "/live/inplace.m3u8");
    write_in_place(&file, &serde_json::to_vec_pretty(&in_place).unwrap());
    wait_for_live_path(&router, "file rewritten in place", "/live/inplace.m3u8");
    assert_eq!(version(&router), "v3");

    // A broken file: seen and refused (the rejected counter moves), the old data stays.
    let rejected_before = rejected_loads(&router);
    write_in_place(&file, b"{not json");
    poll("the broken file refused", || {
        let now = rejected_loads(&router);
        if now > rejected_before {
            Ok(())
        } else {
            Err(format!("rejected loads still {now}"))
        }
    });
    assert_redirect(&router.get(LIVE), &live_location("/live/inplace.m3u8"));
    for endpoint in ["/healthz", "/readyz"] {
        let answer = router.management(endpoint);
        assert_eq!(answer.status, 200, "{endpoint}: {answer:?}");
    }
    assert_eq!(version(&router), "v3");
    // Routing of everything else is untouched too.
    assert_redirect(&router.get("/vod/a.mp4"), "http://edge-a.test/vod/a.mp4");
    assert_error(&router.get("/nonexistent"), 400, INVALID);

    // A good file again takes effect.
    write_json_renamed(&file, &data::snapshot("v4", "/live/final.m3u8"));
    wait_for_live_path(&router, "good file after a broken one", "/live/final.m3u8");
    assert_eq!(version(&router), "v4");
    assert_eq!(router.management("/readyz").status, 200);
}

#[test]
fn a_file_with_bad_entities_keeps_serving_the_good_ones() {
    let router = Setup::with(data::standard()).start();
    let mut doc = data::snapshot("v2", "/live/changed.m3u8");
    // A subnet that is not a CIDR and a stream with a URL as path: skipped, rest loads.
    doc["subnets"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"id": 99, "cidr": "10.0.0.300/8", "region_id": 1}));
    doc["tv_streams"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "id": 99, "linear_channel_id": 2, "stream_path": "http://evil.test/x",
            "status": "ACTIVE", "protocol": "HLS", "encryption": "NONE"
        }));
    write_json_renamed(router.routing_path(), &doc);
    wait_for_live_path(
        &router,
        "file with quarantined entities",
        "/live/changed.m3u8",
    );
    let info = debug_snapshot(&router);
    assert_eq!(info["problem_count"], 2, "{info}");
    assert_error(
        &router.get("/btv/live/hls/epg_2"),
        404,
        crate::routes::NOT_FOUND,
    );
}

#[test]
fn sighup_reloads_when_watching_is_off() {
    let mut router = Setup::with(data::standard()).watch_interval_secs(0).start();
    router.wait_sighup_handler();
    let file = router.routing_path().to_path_buf();

    write_json_renamed(&file, &data::snapshot("v2", "/live/after-hup.m3u8"));
    // Not watched: for well over a watch period nothing changes.
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        assert_redirect(&router.get(LIVE), &live_location(data::LIVE_PATH));
        // Watching for a change that must not come.
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(version(&router), data::VERSION);

    router.sighup();
    wait_for_live_path(&router, "reload on SIGHUP", "/live/after-hup.m3u8");
    assert_eq!(version(&router), "v2");

    // SIGHUP with a broken file: refused, old data kept, process alive.
    let rejected_before = rejected_loads(&router);
    write_in_place(&file, b"{not json");
    router.sighup();
    poll("the broken file refused on SIGHUP", || {
        let now = rejected_loads(&router);
        if now > rejected_before {
            Ok(())
        } else {
            Err(format!("rejected loads still {now}"))
        }
    });
    router.assert_alive();
    assert_redirect(&router.get(LIVE), &live_location("/live/after-hup.m3u8"));
    assert_eq!(router.management("/readyz").status, 200);

    write_json_renamed(&file, &data::snapshot("v3", "/live/second-hup.m3u8"));
    router.sighup();
    wait_for_live_path(&router, "second reload on SIGHUP", "/live/second-hup.m3u8");
    router.assert_alive();
}

/// With no loadable data: 503 on a valid route, 400 on an invalid one; alive but not ready.
fn assert_unavailable(router: &Router) {
    let response = router.get(LIVE);
    assert_error(&response, 503, "No routing data loaded yet");
    assert_eq!(response.header("retry-after"), Some("5"), "{response:?}");
    assert_eq!(router.get("/vod/a.mp4").status, 503);
    assert_error(&router.get("/nonexistent"), 400, INVALID);
    let ready = router.management("/readyz");
    assert_eq!(ready.status, 503, "{ready:?}");
    let alive = router.management("/healthz");
    assert_eq!(alive.status, 200, "{alive:?}");
    let snapshot = router.management("/debug/snapshot");
    assert_eq!(snapshot.status, 503, "{snapshot:?}");
    assert_eq!(debug_snapshot(router)["loaded"], false);
}

#[test]
fn without_a_file_at_start_answers_503_until_one_appears() {
    let router = Setup::without_file().start();
    assert_unavailable(&router);
    // The IPv6 listener is up as well.
    assert_eq!(router.request(router.v6(), "GET", LIVE, &[]).status, 503);

    write_json_renamed(router.routing_path(), &data::standard());
    wait_for_live_path(&router, "file created after start", data::LIVE_PATH);
    assert_eq!(router.management("/readyz").status, 200);
    assert_eq!(version(&router), data::VERSION);
}

#[test]
fn with_a_broken_file_at_start_answers_503_until_it_is_fixed() {
    let router = Setup::with_unloadable_file(b"{not json").start();
    assert_unavailable(&router);
    write_in_place(
        router.routing_path(),
        &serde_json::to_vec(&data::standard()).unwrap(),
    );
    wait_for_live_path(&router, "file fixed after start", data::LIVE_PATH);
    assert_eq!(router.management("/readyz").status, 200);
}

#[test]
fn relative_file_missing_at_start_is_picked_up_next_to_the_config() {
    // `file: routing.json`, the router's working directory elsewhere, no file anywhere at
    // start. The file then appears next to the config file, where the config documents that
    // relative paths are looked for ("tried from the working directory, then from this
    // file's directory").
    let router = Setup::without_file().relative_file().start();
    assert_unavailable(&router);
    write_json_renamed(&router.dir().join("routing.json"), &data::standard());
    wait_for_live_path(
        &router,
        "relative file created next to the config after start",
        data::LIVE_PATH,
    );
}
