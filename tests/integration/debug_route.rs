//! `GET /debug/route?ip=&path=` on the management listener: why a request from that address
//! would go where it goes (the fallback chain of subnets, every candidate edge with its verdict
//! and probability, the content lookup, the result), agreeing with real routing; 400 for what
//! cannot be explained.

use crate::data::{self, *};
use crate::fake_edge::{fake_edge, FakeEdge, Health};
use crate::harness::{poll, Router, Setup};
use crate::routes::assert_redirect;
use serde_json::{json, Value};

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
    answer.json()
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

#[test]
fn debug_route_explains_an_edge_failing_health_checks() {
    let sick = FakeEdge::start_with("sick", 1, Health::BadStatus);
    let well = FakeEdge::start("well", 1);
    let snapshot = json!({
        "version": "health-1",
        "regions": [{"id": 1, "name": "MAIN", "status": "ACTIVE", "server_group_ids": [1]}],
        "subnets": [{"id": 1, "name": "loopback", "cidr": "127.0.0.1/32", "region_id": 1}],
        "server_groups": [{"id": 1, "name": "g", "status": "ACTIVE", "server_ids": [101, 102]}],
        "servers": [fake_edge(101, &sick), fake_edge(102, &well)],
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
    let location = format!("http://127.0.0.1:{}/live/one.m3u8", well.port());
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
