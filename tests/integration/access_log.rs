//! The access log: one line per request after the answer, as JSON or as `key=value` text with
//! the same keys, naming the client a trusted proxy speaks for and the peer; off by default.

use crate::data::{self, *};
use crate::harness::{poll, Router, Setup};
use crate::prometheus::{wait_metric_sum, REQUESTS};
use crate::routes::assert_redirect;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

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

/// The access-log lines so far that name `path`.
fn lines_naming(router: &Router, path: &str) -> Vec<String> {
    access_lines(&router.stderr())
        .into_iter()
        .filter(|l| l.contains(path))
        .collect()
}

/// Polls until an access-log line names `path`; returns the first.
fn wait_line_naming(router: &Router, what: &str, path: &str) -> String {
    poll(what, || {
        lines_naming(router, path)
            .into_iter()
            .next()
            .ok_or_else(|| "no access line yet".to_string())
    })
}

/// A router trusting 127.0.0.1 as a proxy, with `access_log` set to these YAML lines.
fn start(access_log: &[&str]) -> Router {
    Setup::with(data::standard())
        .trusted_proxies(&["127.0.0.1/32"])
        .router_lines(access_log)
        .start()
}

/// Sends the logged request from 127.0.0.1 (trusted) on behalf of [`CLIENT_ALT`].
fn send_logged_request(router: &Router) {
    assert_redirect(
        &router.get_for(CLIENT_ALT, LOGGED_PATH),
        &format!("http://{EDGE_ALT}:8080/live/one.m3u8"),
    );
}

/// Sends the logged request and waits for its access-log line (the only one naming
/// [`LOGGED_PATH`]).
fn logged_line(router: &Router) -> String {
    send_logged_request(router);
    let line = wait_line_naming(router, "the access-log line of the request", LOGGED_PATH);
    // Written once, after the answer: a duplicate is given the time to show up (waited out on
    // purpose).
    std::thread::sleep(Duration::from_millis(200));
    let again = lines_naming(router, LOGGED_PATH);
    assert_eq!(again.len(), 1, "one line per request: {again:#?}");
    line
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
    let router = start(&["access_log: {enabled: true, format: json}"]);
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
    let line = wait_line_naming(&router, "the access-log line of a direct request", own_path);
    let doc: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(doc["client"], "127.0.0.1", "{line}");
    assert_eq!(doc["peer"], Value::Null, "{line}");
    assert_eq!(doc["edge"], EDGE_V4, "{line}");
    assert_eq!(doc["region_id"], 1, "{line}");
    assert_eq!(doc["subnet_id"], 1, "{line}");
}

#[test]
fn access_log_text_line_has_the_same_keys() {
    let router = start(&["access_log: {enabled: true, format: text}"]);
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
    let router = start(&[]);
    send_logged_request(&router);
    // `logging()` ran once the request is counted; the line would follow at once.
    wait_metric_sum(&router, REQUESTS, &[], 1.0);
    // The time a line would take to show up, waited out on purpose: none may come.
    std::thread::sleep(Duration::from_millis(300));
    let stderr = router.stderr();
    assert_eq!(access_lines(&stderr), Vec::<String>::new(), "{stderr}");
    assert!(!stderr.contains(LOGGED_PATH), "{stderr}");
}
