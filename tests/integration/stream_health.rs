//! Stream health per (edge, live stream) against fake live edges whose playlists advance one
//! segment a second: a frozen copy of one channel on one edge stops receiving that channel's
//! players (and only that channel's) and comes back when it advances again; a channel frozen
//! on every edge routes as if it were not; a 404 counts as stalled; a multivariant playlist is
//! followed and a DASH MPD judged; the passive path reads the playlists the router fetches
//! (proxy and manifest modes, gzip-compressed ones decompressed); the probe budget holds with a hot set larger than it covers; SIGHUP switches it
//! off (every pair released, no probes) and on again.

use crate::fake_edge::{edge, RegionSpec};
use crate::harness::{try_poll_for, Router, Setup};
use crate::live_edge::LiveEdge;
use crate::prometheus::{metric_sum, scrape};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// One segment (and target duration) of every fake live channel.
const SEGMENT: Duration = Duration::from_secs(1);
/// How long a test waits for a transition: k (3) × 1 s plus a probe round, with generous
/// slack for two busy cores and debug builds.
const SETTLE: Duration = Duration::from_secs(20);
const HEALTH: [&str; 5] = [
    "enabled: true",
    "interval_ms: 200",
    "timeout_ms: 150",
    "fall: 2",
    "rise: 2",
];

fn channel_path(n: usize) -> String {
    format!("/live/ch{n}.m3u8")
}

fn player_path(n: usize) -> String {
    format!("/btv/live/hls/ch{n}")
}

/// A snapshot with one region (all of loopback), `edges`, and `channels` live HLS channels
/// `ch1`…: channel n is stream id 100 + n at [`channel_path`].
fn snapshot(edges: &[(i64, &LiveEdge)], channels: usize) -> Value {
    let edge_ids: Vec<i64> = edges.iter().map(|(id, _)| *id).collect();
    let regions = [RegionSpec {
        id: 1,
        cidrs: &["127.0.0.0/8"],
        edge_ids: &edge_ids,
    }];
    let servers: Vec<Value> = edges
        .iter()
        .map(|(id, e)| edge(*id, &e.host(), &e.host(), e.port()))
        .collect();
    let mut doc = crate::fake_edge::snapshot("streams-1", &regions, &servers);
    doc["linear_channels"] = (1..=channels)
        .map(|n| json!({"id": n, "epg_id": format!("ch{n}")}))
        .collect();
    doc["tv_streams"] = (1..=channels)
        .map(|n| {
            json!({"id": 100 + n, "linear_channel_id": n, "stream_path": channel_path(n),
                   "status": "ACTIVE", "protocol": "HLS", "encryption": "NONE"})
        })
        .collect();
    doc["programs"] = json!([]);
    doc["program_records"] = json!([]);
    doc
}

fn start(snapshot: Value, stream_lines: &[&str], extra: &[&str]) -> Router {
    let mut lines = vec!["stream_health:".to_string()];
    lines.extend(stream_lines.iter().map(|l| format!("  {l}")));
    lines.extend(extra.iter().map(|l| l.to_string()));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    Setup::with(snapshot)
        .health(&HEALTH)
        .router_lines(&lines)
        .start()
}

/// Which edge (by host) a live redirect went to.
fn redirected_to(router: &Router, n: usize) -> String {
    let response = router.get(&player_path(n));
    assert_eq!(response.status, 302, "{}", response.summary());
    let location = response.location();
    let host = location
        .strip_prefix("http://")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("unexpected location {location}"));
    host.to_string()
}

/// The edges `count` requests for channel `n` went to.
fn spread(router: &Router, n: usize, count: usize) -> BTreeSet<String> {
    (0..count).map(|_| redirected_to(router, n)).collect()
}

/// `/debug/streams` as JSON.
fn debug_streams(router: &Router) -> Value {
    let answer = router.management("/debug/streams");
    assert_eq!(answer.status, 200, "{}", answer.summary());
    answer.json()
}

/// The (edge host, path) of every stalled pair.
fn stalled_pairs(router: &Router) -> BTreeSet<(String, String)> {
    debug_streams(router)["stalled"]
        .as_array()
        .expect("a stalled array")
        .iter()
        .map(|p| {
            (
                p["edge"].as_str().unwrap_or_default().to_string(),
                p["path"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Polls until the stalled pairs are `want`, asking for `players` channels meanwhile (so they
/// stay in the hot set).
fn wait_stalled(router: &Router, want: &BTreeSet<(String, String)>, players: &[usize]) {
    try_poll_for("stalled pairs", SETTLE, Duration::from_millis(100), || {
        for &n in players {
            router.get(&player_path(n));
        }
        let now = stalled_pairs(router);
        if now == *want {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\nrouter stderr:\n{}", router.stderr()));
}

/// Polls (asking as `players` do meanwhile) until every `(edge, path)` copy was probed at least
/// twice; then no pair may be stalled (every copy advances so far).
fn wait_probed(router: &Router, copies: &[(&LiveEdge, &str)], players: impl Fn()) {
    try_poll_for(
        "probes of every copy",
        SETTLE,
        Duration::from_millis(100),
        || {
            players();
            let counts: Vec<usize> = copies.iter().map(|(e, p)| e.probes_of(p)).collect();
            if counts.iter().all(|&c| c >= 2) {
                Ok(())
            } else {
                Err(format!("{counts:?}"))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nrouter stderr:\n{}", router.stderr()));
    assert_eq!(
        stalled_pairs(router),
        BTreeSet::new(),
        "advancing copies are not stalled"
    );
}

fn pair(edge: &LiveEdge, n: usize) -> (String, String) {
    (edge.host(), channel_path(n))
}

#[test]
fn a_frozen_copy_loses_its_channels_players_only_and_wins_them_back() {
    let a = LiveEdge::start(61, &["/live/ch1.m3u8", "/live/ch2.m3u8"], SEGMENT);
    let b = LiveEdge::start(62, &["/live/ch1.m3u8", "/live/ch2.m3u8"], SEGMENT);
    let router = start(
        snapshot(&[(1, &a), (2, &b)], 2),
        &[
            "probes_per_sec: 100",
            "min_round_interval_ms: 200",
            "passive: false",
        ],
        &[],
    );
    // Players of both channels make them hot; both edges' copies get probed.
    let (ch1, ch2) = ("/live/ch1.m3u8", "/live/ch2.m3u8");
    wait_probed(
        &router,
        &[(&a, ch1), (&a, ch2), (&b, ch1), (&b, ch2)],
        || {
            spread(&router, 1, 1);
            spread(&router, 2, 1);
        },
    );
    assert_eq!(
        spread(&router, 1, 40).len(),
        2,
        "both edges take ch1 while it advances"
    );

    a.freeze("/live/ch1.m3u8");
    wait_stalled(&router, &BTreeSet::from([pair(&a, 1)]), &[1, 2]);
    let entry = &debug_streams(&router)["stalled"][0];
    assert_eq!(entry["edge_id"], 1);
    assert_eq!(entry["stream_id"], 101);
    assert_eq!(entry["cause"], "not_advancing");
    assert_eq!(entry["seen_by"], "probe");
    assert!(entry["stalled_since_unix_ms"].as_u64().unwrap() > 0);
    assert!(entry["last_sequence"].as_u64().unwrap() >= 1000);

    assert_eq!(
        spread(&router, 1, 40),
        BTreeSet::from([b.host()]),
        "ch1's players avoid the edge whose copy stalled"
    );
    assert_eq!(
        spread(&router, 2, 40),
        BTreeSet::from([a.host(), b.host()]),
        "the edge's other channel still goes there"
    );
    let route = router
        .management("/debug/route?ip=127.0.0.1&path=/btv/live/hls/ch1")
        .json();
    assert_eq!(
        route["stream_health"]["stalled_edges"],
        json!([1]),
        "{route}"
    );
    assert_eq!(
        route["result"]["stream_stall"], "avoided stalled edges",
        "{route}"
    );
    let metrics = scrape(&router);
    assert_eq!(
        metric_sum(&metrics, "cti_kaltura_stream_stalled_pairs", &[]),
        1.0
    );
    assert!(
        metric_sum(
            &metrics,
            "cti_kaltura_stream_probes_total",
            &[("result", "ok")]
        ) > 0.0
    );
    assert!(
        router.stderr().contains("STALLED: not advancing"),
        "{}",
        router.stderr()
    );

    // Frozen everywhere: routed as if it were not, and said once.
    b.freeze("/live/ch1.m3u8");
    wait_stalled(
        &router,
        &BTreeSet::from([pair(&a, 1), pair(&b, 1)]),
        &[1, 2],
    );
    try_poll_for(
        "the all-stalled log line",
        SETTLE,
        Duration::from_millis(100),
        || {
            spread(&router, 1, 1);
            let log = router.stderr();
            match log
                .matches("is stalled on every eligible edge of region 1")
                .count()
            {
                1 => Ok(()),
                n => Err(format!("{n} lines")),
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nrouter stderr:\n{}", router.stderr()));
    assert_eq!(
        spread(&router, 1, 40),
        BTreeSet::from([a.host(), b.host()]),
        "stalled on every edge: routed as if on none"
    );

    // Advancing again: the pairs come back.
    a.set_copy("/live/ch1.m3u8", crate::live_edge::Copy::Advancing);
    b.set_copy("/live/ch1.m3u8", crate::live_edge::Copy::Advancing);
    wait_stalled(&router, &BTreeSet::new(), &[1, 2]);
    assert_eq!(
        spread(&router, 1, 40).len(),
        2,
        "ch1 goes to both edges again"
    );
    assert!(
        router.stderr().contains("is advancing again"),
        "{}",
        router.stderr()
    );
    assert_eq!(
        metric_sum(&scrape(&router), "cti_kaltura_stream_stalled_pairs", &[]),
        0.0
    );
}

/// Edges A (`127.0.0.{host_a}`, without ch1: 404) and B (with it), a router on them; returns
/// once A's copy of ch1 is stalled for not being found and ch1's players go to B only.
fn start_with_a_missing_copy(host_a: u8, host_b: u8) -> (LiveEdge, LiveEdge, Router) {
    let a = LiveEdge::start(host_a, &["/live/ch1.m3u8"], SEGMENT);
    let b = LiveEdge::start(host_b, &["/live/ch1.m3u8"], SEGMENT);
    a.set_copy("/live/ch1.m3u8", crate::live_edge::Copy::Missing);
    let router = start(
        snapshot(&[(1, &a), (2, &b)], 1),
        &["min_round_interval_ms: 200", "passive: false"],
        &[],
    );
    wait_stalled(&router, &BTreeSet::from([pair(&a, 1)]), &[1]);
    assert_eq!(debug_streams(&router)["stalled"][0]["cause"], "not_found");
    assert_eq!(spread(&router, 1, 30), BTreeSet::from([b.host()]));
    (a, b, router)
}

#[test]
fn an_edge_without_the_channel_counts_as_stalled_for_it() {
    start_with_a_missing_copy(63, 64);
}

#[test]
fn proxied_playlists_are_read_passively() {
    playlists_fetched_by_the_router_are_read_passively("proxy", false, (65, 66));
}

#[test]
fn playlists_fetched_in_manifest_mode_are_read_passively() {
    playlists_fetched_by_the_router_are_read_passively("manifest", false, (81, 82));
}

#[test]
fn gzip_compressed_playlists_are_read_decompressed() {
    playlists_fetched_by_the_router_are_read_passively("proxy", true, (83, 84));
}

/// Two edges (`127.0.0.{hosts}`) with ch1, probes refused, live routes in `mode` (the router
/// fetches the playlists), players' playlists gzip-compressed by the edges when `gzip`: one
/// copy freezes, the router sees it in the playlists players fetch, and players avoid it.
fn playlists_fetched_by_the_router_are_read_passively(mode: &str, gzip: bool, hosts: (u8, u8)) {
    let a = LiveEdge::start(hosts.0, &["/live/ch1.m3u8"], SEGMENT);
    let b = LiveEdge::start(hosts.1, &["/live/ch1.m3u8"], SEGMENT);
    // Probes learn nothing here: only the playlists players fetch through the router count.
    for edge in [&a, &b] {
        edge.refuse_probes(true);
        edge.gzip_players(gzip);
    }
    let mode_line = format!("    mode: {mode}");
    let router = start(
        snapshot(&[(1, &a), (2, &b)], 1),
        &["min_round_interval_ms: 200"],
        &["routes:", "  live:", &mode_line],
    );
    let fetch = || {
        let response = router.get(&player_path(1));
        assert_eq!(response.status, 200, "{}", response.summary());
        assert!(
            response.text().starts_with("#EXTM3U"),
            "{}",
            response.summary()
        );
        // Rewritten as the mode wants: segments on the edge, or back through the router.
        let segments = match mode {
            "manifest" => "\nhttp://127.0.0.",
            _ => "\n/btv/live/hls/ch1/~e",
        };
        assert!(response.text().contains(segments), "{}", response.text());
        response.header("x-edge").unwrap_or_default().to_string()
    };
    try_poll_for(
        "proxied playlists from both edges",
        SETTLE,
        Duration::from_millis(50),
        || {
            let seen: BTreeSet<String> = (0..10).map(|_| fetch()).collect();
            if seen.len() == 2 {
                Ok(())
            } else {
                Err(format!("{seen:?}"))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));

    a.freeze("/live/ch1.m3u8");
    try_poll_for(
        "the frozen copy seen in the playlists the router fetches",
        SETTLE,
        Duration::from_millis(100),
        || {
            fetch();
            let now = stalled_pairs(&router);
            if now == BTreeSet::from([pair(&a, 1)]) {
                Ok(())
            } else {
                Err(format!("{now:?}"))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nrouter stderr:\n{}", router.stderr()));
    assert_eq!(
        debug_streams(&router)["stalled"][0]["seen_by"],
        "proxied playlist"
    );
    let seen: BTreeSet<String> = (0..30).map(|_| fetch()).collect();
    assert_eq!(
        seen,
        BTreeSet::from([b.host()]),
        "players avoid the stalled copy"
    );
    let metrics = scrape(&router);
    assert!(
        metric_sum(
            &metrics,
            "cti_kaltura_stream_passive_reads_total",
            &[("result", "ok")]
        ) > 0.0
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "cti_kaltura_stream_probes_total",
            &[("result", "ok")]
        ),
        0.0,
        "no probe judged anything"
    );
}

#[test]
fn the_probe_budget_holds_with_a_hot_set_larger_than_it_covers() {
    const CHANNELS: usize = 60;
    const BUDGET: usize = 10;
    let paths: Vec<String> = (1..=CHANNELS).map(channel_path).collect();
    let path_refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let a = LiveEdge::start(67, &path_refs, SEGMENT);
    let b = LiveEdge::start(68, &path_refs, SEGMENT);
    let router = start(
        snapshot(&[(1, &a), (2, &b)], CHANNELS),
        &[
            "probes_per_sec: 10",
            "min_round_interval_ms: 200",
            "passive: false",
        ],
        &[],
    );
    // 60 channels × 2 edges = 120 copies: a round takes 12 s at 10 probes/s.
    for n in 1..=CHANNELS {
        redirected_to(&router, n);
    }
    let probes = || -> Vec<Instant> {
        a.hits()
            .into_iter()
            .chain(b.hits())
            .filter(|h| h.probe)
            .map(|h| h.at)
            .collect()
    };
    let first = try_poll_for("the first probe", SETTLE, Duration::from_millis(50), || {
        probes()
            .into_iter()
            .min()
            .ok_or_else(|| "none yet".to_string())
    })
    .unwrap_or_else(|e| panic!("{e}\nrouter stderr:\n{}", router.stderr()));
    // A 4 s window starting 1 s after the first probe.
    let (from, window) = (first + Duration::from_secs(1), Duration::from_secs(4));
    while Instant::now() < from + window + Duration::from_millis(500) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let in_window = probes()
        .into_iter()
        .filter(|&t| t >= from && t < from + window)
        .count();
    let allowed = BUDGET * window.as_secs() as usize;
    assert!(
        in_window <= allowed + 2,
        "{in_window} probes in {window:?} with a budget of {BUDGET}/s"
    );
    assert!(
        in_window >= allowed / 2,
        "only {in_window} probes in {window:?}: the budget is not being spent"
    );
    let distinct: BTreeSet<String> = a
        .hits()
        .into_iter()
        .chain(b.hits())
        .filter(|h| h.probe)
        .map(|h| h.path)
        .collect();
    assert!(
        distinct.len() < CHANNELS,
        "the hot set is larger than the budget covers in this time ({} channels probed)",
        distinct.len()
    );
    let metrics = scrape(&router);
    assert_eq!(
        metric_sum(&metrics, "cti_kaltura_stream_hot_set_entries", &[]),
        CHANNELS as f64
    );
}

#[test]
fn multivariant_playlists_are_followed_and_dash_mpds_judged() {
    let paths = ["/live/mv/media.m3u8", "/live/dash.mpd"];
    let a = LiveEdge::start(69, &paths, SEGMENT);
    let b = LiveEdge::start(70, &paths, SEGMENT);
    let mut doc = snapshot(&[(1, &a), (2, &b)], 2);
    // ch1: an HLS stream whose path is a multivariant playlist; ch2: a DASH stream.
    doc["tv_streams"] = json!([
        {"id": 101, "linear_channel_id": 1, "stream_path": "/live/mv/master.m3u8",
         "status": "ACTIVE", "protocol": "HLS", "encryption": "NONE"},
        {"id": 102, "linear_channel_id": 2, "stream_path": "/live/dash.mpd",
         "status": "ACTIVE", "protocol": "MPD", "encryption": "NONE"}
    ]);
    let router = start(doc, &["min_round_interval_ms: 200", "passive: false"], &[]);
    let players = || {
        router.get("/btv/live/hls/ch1");
        router.get("/btv/live/mpd/ch2");
    };
    wait_probed(
        &router,
        &[(&a, "/live/mv/media.m3u8"), (&a, "/live/dash.mpd")],
        players,
    );
    let metrics = scrape(&router);
    assert_eq!(
        metric_sum(
            &metrics,
            "cti_kaltura_stream_probes_total",
            &[("result", "unusable")]
        ),
        0.0,
        "every answer was read"
    );

    a.freeze("/live/mv/media.m3u8");
    a.freeze("/live/dash.mpd");
    try_poll_for(
        "both copies on edge A stalled",
        SETTLE,
        Duration::from_millis(100),
        || {
            players();
            let now = stalled_pairs(&router);
            let want = BTreeSet::from([
                (a.host(), "/live/mv/master.m3u8".to_string()),
                (a.host(), "/live/dash.mpd".to_string()),
            ]);
            if now == want {
                Ok(())
            } else {
                Err(format!("{now:?}"))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nrouter stderr:\n{}", router.stderr()));
    for path in ["/btv/live/hls/ch1", "/btv/live/mpd/ch2"] {
        let edges: BTreeSet<String> = (0..30)
            .map(|_| {
                let response = router.get(path);
                assert_eq!(response.status, 302, "{}", response.summary());
                response.location().to_string()
            })
            .map(|location| {
                location
                    .split(':')
                    .nth(1)
                    .unwrap_or_default()
                    .trim_start_matches("//")
                    .to_string()
            })
            .collect();
        assert_eq!(edges, BTreeSet::from([b.host()]), "{path}");
    }
}

#[test]
fn switching_stream_health_off_by_sighup_releases_every_pair() {
    let (a, b, router) = start_with_a_missing_copy(73, 74);
    let config_path = router.dir().join(crate::harness::CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).expect("read config");
    let set = |enabled: bool| {
        let edited = text.replace(
            "  stream_health:\n",
            &format!("  stream_health:\n    enabled: {enabled}\n"),
        );
        assert_ne!(edited, text, "no stream_health section in:\n{text}");
        std::fs::write(&config_path, edited).expect("write config");
        router.wait_sighup_handler();
        router.sighup();
    };
    set(false);
    try_poll_for(
        "stream health off",
        SETTLE,
        Duration::from_millis(100),
        || {
            let streams = debug_streams(&router);
            if streams["enabled"] == false && streams["stalled_pairs"] == 0 {
                Ok(())
            } else {
                Err(streams.to_string())
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nrouter stderr:\n{}", router.stderr()));
    assert_eq!(
        spread(&router, 1, 40),
        BTreeSet::from([a.host(), b.host()]),
        "nothing is avoided with stream health off"
    );
    // A probe started just before the switch may still land in the first window; none after.
    std::thread::sleep(Duration::from_millis(600));
    let probes_when_off = a.probes_of("/live/ch1.m3u8");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        a.probes_of("/live/ch1.m3u8"),
        probes_when_off,
        "no probes while off (5 rounds would have run)"
    );

    set(true);
    wait_stalled(&router, &BTreeSet::from([pair(&a, 1)]), &[1]);
}
