//! `cti-kaltura-admin-api` against a real PostgreSQL holding the original admin schema, with
//! real routers fed by it: the same answers as from the equivalent snapshot file, changes made
//! the way the admin application makes them reaching a long-polling router, a server group
//! and its servers changed in one transaction seen whole, and the database stopped and
//! started again under traffic. Also its config check, token, ETag, 304 and gzip (with curl).

use crate::harness::{poll, run_bounded, yaml_str, Router, Setup};
use crate::http::Response;
use crate::postgres::{admin_api_bin, AdminApi, Postgres};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

/// The operator's data as the original admin left it: legacy integer encodings (`'0'`,
/// `'1'`, `'2'`), NULLs the admin would have refused, a subnet with host bits and a second
/// literal for the same network, a duplicate stream, a host name the router cannot use.
const SEED: &str = "
INSERT INTO regions (id, name, status) VALUES (1, 'Almaty', 'ACTIVE'), (2, 'Astana', '0'), (3, 'Closed', 'INACTIVE');
INSERT INTO subnets (id, cidr, name, region_id) VALUES
  (100, '10.20.0.1/16', 'almaty', 1), (101, '10.20.0.0/16', 'almaty-again', 1),
  (102, '10.30.0.0/16', 'astana', 2), (103, NULL, 'broken', 1),
  (104, '10.40.0.0/16', NULL, 3), (105, '10.50.0.0/33', 'bad-mask', 1);
INSERT INTO server_groups (id, name, status) VALUES (10, 'almaty', 'ACTIVE'), (20, 'astana', '0');
INSERT INTO servers (id, domain_name, ip, port, weight, prefix, type, status) VALUES
  (1000, 'edge1.almaty.test', '192.0.2.10', 443, 50, NULL, 'EDGE', 'ACTIVE'),
  (1001, 'edge1.astana.test', '192.0.2.11', 80, 10, NULL, '0', '0'),
  (1002, 'Bad Host', '192.0.2.12', 80, 10, NULL, 'EDGE', 'ACTIVE'),
  (2000, 'dvr1.almaty.test', '192.0.2.20', 80, NULL, 'dvr1', '1', 'ACTIVE');
INSERT INTO region_server_groups (region_id, server_group_id) VALUES (1, 10), (2, 20), (3, 10);
INSERT INTO server_group_servers (server_group_id, server_id) VALUES (10, 1000), (10, 2000), (20, 1001), (20, 1002);
INSERT INTO linear_channels (id, name, code_name, epg_id, server_group_id, dvr_enabled) VALUES
  (25, 'Channel 25', 'ch25', '000000025', 10, true), (26, 'No EPG', 'ch26', NULL, 10, false);
INSERT INTO tv_streams (id, stream_path, status, protocol, encryption, linear_channel_id) VALUES
  (250, '/live/ch25/hls/index.m3u8', 'ACTIVE', 'HLS', 'NONE', 25),
  (251, '/live/ch25/dash/manifest.mpd', 'ACTIVE', 'MPD', 'CENC', 25),
  (252, '/live/ch25/hls/duplicate.m3u8', 'ACTIVE', 'HLS', 'NONE', 25),
  (253, '/live/ch25/old.mpd', '1', 'MPD', 'WIDEVINE', 25),
  (254, '/live/ch26/index.m3u8', 'ACTIVE', 'HLS', 'NONE', 26);
INSERT INTO programs (id, name, epg_id, linear_channel_id, start_datetime, end_datetime) VALUES
  (7001, 'Evening news', '297190605151500', 25, '2019-06-05 15:15:00', '2019-06-05 16:00:00');
INSERT INTO program_records (id, path, program_id, server_id, protocol, encryption, status) VALUES
  (9001, 'rec/297190605151500/manifest.mpd', 7001, 2000, '2', 'NONE', '2'),
  (9002, 'rec/297190605151500/index.m3u8', 7001, 2000, 'HLS', 'NONE', 'COMPLETED');
";

/// The same data written by hand as a snapshot document, in today's encodings.
fn equivalent_document() -> Value {
    let edge = |id: i64,
                domain: &str,
                port: i64,
                typ: &str,
                weight: Option<i64>,
                prefix: Option<&str>| {
        let mut v = json!({"id": id, "type": typ, "domain_name": domain, "ip": "192.0.2.1", "port": port,
            "status": "ACTIVE", "availability": true, "prefix": prefix});
        if let Some(w) = weight {
            v["weight"] = json!(w);
        }
        v
    };
    json!({
        "version": "hand-written",
        "regions": [
            {"id": 1, "name": "Almaty", "status": "ACTIVE", "server_group_ids": [10]},
            {"id": 2, "name": "Astana", "status": "ACTIVE", "server_group_ids": [20]},
            {"id": 3, "name": "Closed", "status": "INACTIVE", "server_group_ids": [10]}
        ],
        "subnets": [
            {"id": 100, "cidr": "10.20.0.1/16", "region_id": 1},
            {"id": 101, "cidr": "10.20.0.0/16", "region_id": 1},
            {"id": 102, "cidr": "10.30.0.0/16", "region_id": 2},
            {"id": 103, "cidr": null, "region_id": 1},
            {"id": 104, "cidr": "10.40.0.0/16", "region_id": 3},
            {"id": 105, "cidr": "10.50.0.0/33", "region_id": 1}
        ],
        "server_groups": [
            {"id": 10, "status": "ACTIVE", "server_ids": [1000, 2000]},
            {"id": 20, "status": "ACTIVE", "server_ids": [1001, 1002]}
        ],
        "servers": [
            edge(1000, "edge1.almaty.test", 443, "EDGE", Some(50), None),
            edge(1001, "edge1.astana.test", 80, "EDGE", Some(10), None),
            edge(1002, "Bad Host", 80, "EDGE", Some(10), None),
            edge(2000, "dvr1.almaty.test", 80, "DVR", None, Some("dvr1"))
        ],
        "linear_channels": [
            {"id": 25, "epg_id": "000000025", "server_group_id": 10},
            {"id": 26, "epg_id": null, "server_group_id": 10}
        ],
        "tv_streams": [
            {"id": 250, "linear_channel_id": 25, "stream_path": "/live/ch25/hls/index.m3u8", "status": "ACTIVE", "protocol": "HLS", "encryption": "NONE"},
            {"id": 251, "linear_channel_id": 25, "stream_path": "/live/ch25/dash/manifest.mpd", "status": "ACTIVE", "protocol": "MPD", "encryption": "CENC"},
            {"id": 252, "linear_channel_id": 25, "stream_path": "/live/ch25/hls/duplicate.m3u8", "status": "ACTIVE", "protocol": "HLS", "encryption": "NONE"},
            {"id": 253, "linear_channel_id": 25, "stream_path": "/live/ch25/old.mpd", "status": "INACTIVE", "protocol": "MPD", "encryption": "WIDEVINE"},
            {"id": 254, "linear_channel_id": 26, "stream_path": "/live/ch26/index.m3u8", "status": "ACTIVE", "protocol": "HLS", "encryption": "NONE"}
        ],
        "programs": [
            {"id": 7001, "linear_channel_id": 25, "epg_id": "297190605151500"}
        ],
        "program_records": [
            {"id": 9001, "program_id": 7001, "server_id": 2000, "status": "COMPLETED", "protocol": "MPD", "encryption": "WIDEVINE", "path": "rec/297190605151500/manifest.mpd"},
            {"id": 9002, "program_id": 7001, "server_id": 2000, "status": "COMPLETED", "protocol": "HLS", "encryption": "NONE", "path": "rec/297190605151500/index.m3u8"}
        ]
    })
}

const LIVE_HLS: &str = "/btv/live/hls/000000025.m3u8";
const ALMATY: &str = "10.20.1.2";

/// The router's `routing:` lines for the admin API at `url`.
fn routing_lines(url: &str, extra: &[&str]) -> Vec<String> {
    let mut lines = vec![
        "admin_api:".to_string(),
        format!("  url: {}", yaml_str(url)),
        "  poll_interval_secs: 1".to_string(),
        "  timeout_secs: 2".to_string(),
        "  max_backoff_secs: 1".to_string(),
    ];
    lines.extend(extra.iter().map(|l| format!("  {l}")));
    lines
}

fn router_for(api: &AdminApi, extra: &[&str]) -> Router {
    let lines = routing_lines(&api.url(), extra);
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    Setup::without_file()
        .routing(&lines)
        .expect_snapshot(true)
        .start()
}

fn seeded() -> Postgres {
    let pg = Postgres::start();
    pg.psql("kaltura_admin", SEED);
    pg
}

fn location_of(router: &Router, client: &str, path: &str) -> String {
    router.get_for(client, path).summary()
}

#[test]
fn a_router_fed_from_postgres_routes_like_the_equivalent_snapshot_file() {
    let pg = seeded();
    let api = AdminApi::start(&pg.url(), &[]);
    let from_db = router_for(&api, &[]);
    let from_file = Setup::with(equivalent_document()).start();

    let clients = [ALMATY, "10.30.1.2", "10.40.1.2", "10.50.0.1", "192.0.2.99"];
    let paths = [
        LIVE_HLS,
        "/btv/live/mpd/000000025",
        "/btv/live/mpd_cenc/000000025",
        "/btv/live/mpd_wv/000000025.mpd",
        "/btv/live/mpd_pr/000000025",
        "/btv/catchup/hls/297190605151500.m3u8",
        "/btv/catchup/mpd_wv/297190605151500.mpd",
        "/btv/catchup/mpd_pr/297190605151500.mpd",
        "/btv/live/hls/26.m3u8",
        "/vod/films/a//b.mp4?t=1",
    ];
    let mut compared = 0;
    for client in clients {
        for path in paths {
            assert_eq!(
                location_of(&from_db, client, path),
                location_of(&from_file, client, path),
                "{client} {path}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 50);
    // Not vacuous: what the original's data means, legacy encodings included.
    let expected = [
        (
            ALMATY,
            LIVE_HLS,
            "302 https://edge1.almaty.test/live/ch25/hls/index.m3u8",
        ),
        (
            "10.30.1.2",
            LIVE_HLS,
            "302 http://edge1.astana.test/live/ch25/hls/index.m3u8",
        ),
        (
            ALMATY,
            "/btv/live/mpd_wv/000000025.mpd",
            "302 https://edge1.almaty.test/live/ch25/dash/manifest.mpd",
        ),
        (
            ALMATY,
            "/btv/catchup/mpd_wv/297190605151500.mpd",
            "302 https://edge1.almaty.test/dvr/dvr1/rec/297190605151500/manifest.mpd",
        ),
    ];
    for (client, path, answer) in expected {
        assert_eq!(
            location_of(&from_db, client, path),
            answer,
            "{client} {path}"
        );
    }
    // The unusable rows are quarantined the same way from both.
    let (db, file) = (
        from_db.management("/debug/snapshot").json(),
        from_file.management("/debug/snapshot").json(),
    );
    assert_eq!(db["counts"], file["counts"], "{db}\n{file}");
    assert_eq!(db["problem_count"], file["problem_count"], "{db}\n{file}");
    assert!(db["problem_count"].as_u64().unwrap_or(0) >= 4, "{db}");
    assert!(
        db["version"].as_str().unwrap_or("").starts_with("db-"),
        "{db}"
    );
}

/// Polls the router until `path` from [`ALMATY`] is answered with `answer`; the time it took.
fn wait_for_answer(router: &Router, path: &str, answer: &str) -> Duration {
    let started = Instant::now();
    poll(&format!("router answers {answer}"), || {
        let seen = location_of(router, ALMATY, path);
        if seen == answer {
            Ok(())
        } else {
            Err(seen)
        }
    });
    started.elapsed()
}

#[test]
fn a_committed_change_reaches_a_long_polling_router_through_the_triggers() {
    let pg = seeded();
    pg.install_notify_triggers();
    // The fingerprint out of the way (10 min): only the notification can bring the change.
    let api = AdminApi::start_with(&pg.url(), 600_000, &[]);
    let router = router_for(&api, &[]);
    // The router holds a long-poll open at the API (its default against an API that offers it).
    poll("a long-poll held", || {
        match api.metric("cti_kaltura_admin_api_clients_waiting") {
            n if n >= 1.0 => Ok(()),
            n => Err(format!("{n} waiting")),
        }
    });
    // As the admin application does it: an UPDATE with its own updated_at.
    pg.psql(
        "kaltura_admin",
        "UPDATE tv_streams SET stream_path = '/live/ch25/hls/v2.m3u8', updated_at = now() WHERE id = 250",
    );
    wait_for_answer(
        &router,
        LIVE_HLS,
        "302 https://edge1.almaty.test/live/ch25/hls/v2.m3u8",
    );
    let stderr = api.stderr();
    assert!(stderr.contains("noticed by notify"), "{stderr}");
    // Polls in between were long-polls answered 304, not a stream of downloads: the router has
    // downloaded the document twice (start, change).
    let text = api.get("/metrics", &[]).text();
    let downloads: f64 = text
        .lines()
        .filter(|l| l.starts_with("cti_kaltura_admin_api_answers_total{status=\"200\"}"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(downloads, 2.0, "{text}");
}

#[test]
fn without_triggers_the_fingerprint_notices_inserts_and_deletes() {
    let pg = seeded();
    let api = AdminApi::start(&pg.url(), &[]);
    let router = router_for(&api, &[]);
    // A new subnet for a new network, in the admin's way (insert, then the region's list).
    pg.psql(
        "kaltura_admin",
        "INSERT INTO subnets (id, cidr, name, region_id) VALUES (106, '172.16.0.0/12', 'new', 2)",
    );
    let path_answer = "302 http://edge1.astana.test/live/ch25/hls/index.m3u8";
    poll("the new subnet routes", || {
        let seen = location_of(&router, "172.16.5.5", LIVE_HLS);
        (seen == path_answer).then_some(()).ok_or(seen)
    });
    pg.psql("kaltura_admin", "DELETE FROM subnets WHERE id = 106");
    poll("the deleted subnet no longer routes", || {
        let seen = location_of(&router, "172.16.5.5", LIVE_HLS);
        seen.starts_with("404").then_some(()).ok_or(seen)
    });
    assert!(
        api.stderr().contains("noticed by fingerprint"),
        "{}",
        api.stderr()
    );
}

/// One generation of group 10: its name and both of its edges' names change together.
fn generation_sql(k: u32) -> String {
    format!(
        "BEGIN; UPDATE server_groups SET name = 'gen-{k}', updated_at = now() WHERE id = 10; \
         SELECT pg_sleep(0.01); \
         UPDATE servers SET domain_name = 'gen-{k}.edge1.almaty.test', updated_at = now() WHERE id = 1000; \
         SELECT pg_sleep(0.01); \
         UPDATE servers SET domain_name = 'gen-{k}.dvr1.almaty.test', updated_at = now() WHERE id = 2000; \
         COMMIT;"
    )
}

/// The generation a document shows, if the group and its servers agree; `Err` when mixed.
fn generation_of(document: &Value) -> Result<Option<u32>, String> {
    let group = document["server_groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["id"] == 10))
        .and_then(|g| g["name"].as_str())
        .unwrap_or("");
    let servers: Vec<&str> = document["servers"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter(|s| s["id"] == 1000 || s["id"] == 2000)
                .filter_map(|s| s["domain_name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let generation = group
        .strip_prefix("gen-")
        .and_then(|k| k.parse::<u32>().ok());
    let prefix = generation.map(|k| format!("gen-{k}."));
    let agree = servers.len() == 2
        && servers.iter().all(|s| {
            s.starts_with(prefix.as_deref().unwrap_or(""))
                && (prefix.is_some() || !s.starts_with("gen-"))
        });
    if agree {
        Ok(generation)
    } else {
        Err(format!("group {group:?} with servers {servers:?}"))
    }
}

#[test]
fn a_group_and_its_servers_changed_in_one_transaction_are_seen_all_at_once() {
    let pg = seeded();
    pg.install_notify_triggers();
    let api = AdminApi::start(&pg.url(), &[]);
    let router = router_for(&api, &[]);
    const GENERATIONS: u32 = 40;
    let script: String = (1..=GENERATIONS)
        .map(generation_sql)
        .collect::<Vec<_>>()
        .join("\n");
    let writer = {
        let url = pg.url();
        let psql = pg.psql_program();
        std::thread::spawn(move || {
            let status = Command::new(psql)
                .args([
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-o",
                    "/dev/null",
                    "-d",
                    &url,
                    "-c",
                ])
                .arg(&script)
                .status()
                .expect("run psql");
            assert!(status.success());
        })
    };
    // While the transactions commit, every document the API serves and every answer the
    // router gives shows one whole generation, never going back.
    let mut documents = 0;
    let mut last_router_generation = 0u32;
    let mut last_document_generation = 0u32;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !writer.is_finished() || last_router_generation < GENERATIONS {
        let response = api.get("/api/routing/snapshot", &[]);
        assert_eq!(response.status, 200);
        let document: Value = serde_json::from_slice(&response.body).expect("JSON");
        let generation =
            generation_of(&document).unwrap_or_else(|mixed| panic!("a mixed snapshot: {mixed}"));
        let generation = generation.unwrap_or(0);
        assert!(
            generation >= last_document_generation,
            "{generation} after {last_document_generation}"
        );
        last_document_generation = generation;
        documents += 1;
        let answer = location_of(&router, ALMATY, LIVE_HLS);
        let host = answer
            .strip_prefix("302 https://")
            .unwrap_or_else(|| panic!("{answer}"));
        let generation = match host.strip_prefix("gen-") {
            Some(rest) => rest
                .split('.')
                .next()
                .and_then(|k| k.parse().ok())
                .unwrap_or_else(|| panic!("{answer}")),
            None => 0,
        };
        assert!(
            generation >= last_router_generation,
            "{answer} after generation {last_router_generation}"
        );
        last_router_generation = generation;
        assert!(
            Instant::now() < deadline,
            "the router did not reach generation {GENERATIONS} within 60 s: {answer}"
        );
    }
    writer.join().expect("writer");
    assert!(documents > 1);
}

fn is_served(router: &Router) -> Result<(), String> {
    let answer = location_of(router, ALMATY, LIVE_HLS);
    answer.starts_with("302 ").then_some(()).ok_or(answer)
}

#[test]
fn the_database_stopped_and_started_again_under_traffic() {
    let pg = seeded();
    let api = AdminApi::start(&pg.url(), &[]);
    let router = router_for(&api, &[]);
    // Players ask all along: every answer must be a redirect, whatever the database does.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (stop, addr) = (stop.clone(), router.v4());
        std::thread::spawn(move || {
            let (mut asked, mut wrong) = (0u64, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let headers = [("X-Real-IP", ALMATY)];
                match crate::http::try_request(addr, "GET", LIVE_HLS, &headers) {
                    Ok(r) if r.status == 302 => {}
                    Ok(r) => wrong.push(r.summary()),
                    Err(e) => wrong.push(e),
                }
                asked += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            (asked, wrong)
        })
    };
    let before = api.get("/api/routing/snapshot", &[]);
    pg.stop();
    poll("the API says the database is down", || {
        let r = api.get("/readyz", &[]);
        (r.status == 503 && r.text().contains("database unreachable"))
            .then_some(())
            .ok_or(r.summary())
    });
    assert_eq!(api.metric("cti_kaltura_admin_api_database_up"), 0.0);
    // The last snapshot is still served, unchanged, and the router keeps routing.
    let during = api.get("/api/routing/snapshot", &[]);
    assert_eq!(during.status, 200);
    assert_eq!(during.header("etag"), before.header("etag"));
    for _ in 0..20 {
        is_served(&router).unwrap_or_else(|answer| panic!("during the outage: {answer}"));
    }
    pg.start_again();
    poll("the API reconnects", || {
        let r = api.get("/readyz", &[]);
        (r.status == 200).then_some(()).ok_or(r.summary())
    });
    assert_eq!(api.metric("cti_kaltura_admin_api_database_up"), 1.0);
    pg.psql(
        "kaltura_admin",
        "UPDATE tv_streams SET stream_path = '/live/ch25/after-outage.m3u8' WHERE id = 250",
    );
    wait_for_answer(
        &router,
        LIVE_HLS,
        "302 https://edge1.almaty.test/live/ch25/after-outage.m3u8",
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (asked, wrong) = traffic.join().expect("traffic thread");
    assert!(
        wrong.is_empty(),
        "{} of {asked} answers were not redirects: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert!(asked >= 20, "only {asked} requests during the test");
}

#[test]
fn the_api_checks_its_config_and_answers_tokens_etags_and_gzip() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "listen: nowhere\ndatabase: {urll: x}\n").expect("write");
    let (status, _, stderr) = run_bounded(
        Command::new(admin_api_bin()).arg("-c").arg(&bad).arg("-t"),
        dir.path(),
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    for wanted in [
        "listen: not an address:port",
        "database.url: missing",
        "database.urll: unknown key",
    ] {
        assert!(stderr.contains(wanted), "{wanted} in {stderr}");
    }
    let pg = seeded();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        format!(
            "listen: 127.0.0.1:1\ndatabase: {{url: \"{}\"}}\ntoken: s3cret\n",
            pg.url()
        ),
    )
    .expect("write");
    let (status, stdout, stderr) = run_bounded(
        Command::new(admin_api_bin()).arg("-c").arg(&good).arg("-t"),
        dir.path(),
    );
    assert_eq!(status.code(), Some(0), "{stdout}{stderr}");

    let api = AdminApi::start(&pg.url(), &["token: s3cret"]);
    assert_eq!(api.get("/api/routing/snapshot", &[]).status, 401);
    assert_eq!(
        api.get(
            "/api/routing/snapshot",
            &[("Authorization", "Bearer wrong")]
        )
        .status,
        401
    );
    assert_eq!(api.get("/healthz", &[]).status, 200);
    // curl, a client we did not write: gzip on request, ETag, then 304.
    let curl = |extra: &[&str]| -> Response {
        let out = Command::new("curl")
            .args([
                "-s",
                "-i",
                "--max-time",
                "10",
                "-H",
                "Authorization: Bearer s3cret",
            ])
            .args(extra)
            .arg(api.url())
            .output()
            .expect("run curl");
        parse_curl(&out.stdout)
    };
    let plain = curl(&[]);
    assert_eq!(plain.status, 200);
    let etag = plain.header("etag").expect("an ETag").to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "a strong ETag: {etag}"
    );
    let document: Value = serde_json::from_slice(&plain.body).expect("JSON");
    assert_eq!(document["program_records"][0]["encryption"], "WIDEVINE");
    let gzipped = curl(&["--compressed"]);
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert_eq!(
        gzipped.body, plain.body,
        "curl decompresses to the same document"
    );
    assert!(gzipped.header("etag").is_some_and(|e| e != etag));
    let not_modified = curl(&["-H", &format!("If-None-Match: {etag}")]);
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    // A long-poll that sees no change ends with 304 when its wait is over.
    let held = curl(&[
        "-H",
        &format!("If-None-Match: {etag}"),
        "-H",
        "Prefer: wait=1",
    ]);
    assert_eq!(held.status, 304);
    assert_eq!(held.header("cti-long-poll-max-wait"), Some("60"));
    // A long-poll whose client goes away is no longer counted as waiting.
    let gone = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "1",
            "-H",
            "Authorization: Bearer s3cret",
        ])
        .args([
            "-H",
            &format!("If-None-Match: {etag}"),
            "-H",
            "Prefer: wait=30",
        ])
        .arg(api.url())
        .status()
        .expect("run curl");
    assert_eq!(gone.code(), Some(28), "curl gave up waiting (exit 28)");
    poll("no long-poll left waiting", || {
        let waiting = api.metric("cti_kaltura_admin_api_clients_waiting");
        (waiting == 0.0)
            .then_some(())
            .ok_or(format!("{waiting} waiting"))
    });
}

/// `curl -i` output (the last head, the body after it).
fn parse_curl(output: &[u8]) -> Response {
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {}", String::from_utf8_lossy(output)));
    let head = String::from_utf8_lossy(&output[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: output[split + 4..].to_vec(),
    }
}

/// `cti_kaltura_admin_api_answers_total{status="…"}` (0 while absent).
fn answers(api: &AdminApi, status: &str) -> f64 {
    let text = api.get("/metrics", &[]).text();
    let prefix = format!("cti_kaltura_admin_api_answers_total{{status=\"{status}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn against_an_api_that_does_not_long_poll_the_router_keeps_polling() {
    let pg = seeded();
    let api = AdminApi::start(&pg.url(), &["long_poll: {max_wait_secs: 0}"]);
    let head = api.get("/api/routing/snapshot", &[]);
    assert_eq!(head.header("cti-long-poll-max-wait"), None, "{head:?}");
    let router = router_for(&api, &[]);
    // Conditional polls every second (poll_interval_secs: 1), each answered 304 at once.
    let before = answers(&api, "304");
    poll("three more polls answered 304", || {
        let now = answers(&api, "304");
        (now >= before + 3.0)
            .then_some(())
            .ok_or(format!("{now} after {before}"))
    });
    assert_eq!(api.metric("cti_kaltura_admin_api_clients_waiting"), 0.0);
    pg.psql(
        "kaltura_admin",
        "UPDATE tv_streams SET stream_path = '/live/ch25/polled.m3u8' WHERE id = 250",
    );
    wait_for_answer(
        &router,
        LIVE_HLS,
        "302 https://edge1.almaty.test/live/ch25/polled.m3u8",
    );
}
