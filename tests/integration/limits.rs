//! Hostile requests: over-long URIs and header floods get a clear 4xx (not a crash, not a
//! closed connection), are counted, and leave the connection usable.

use crate::data;
use crate::harness::Setup;
use crate::http::{raw_request, Conn};
use crate::prometheus::{metric_value, wait_metric_sum, REQUESTS};

#[test]
fn oversized_uri_and_header_floods_get_clear_answers_on_a_live_connection() {
    let router = Setup::with(data::standard())
        .http(&[
            "max_uri_bytes: 1024",
            "max_header_count: 20",
            "max_header_bytes: 2048",
        ])
        .start();
    let mut conn = Conn::open(router.v4());

    let long = format!("/vod/{}", "a".repeat(2000));
    let r = conn.request("GET", &long, &[]);
    assert_eq!(r.status, 414, "{}", r.summary());
    assert_eq!(r.text(), "Request URI too long");

    let names: Vec<String> = (0..30).map(|i| format!("x-flood-{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let r = conn.request("GET", "/vod/ok", &many);
    assert_eq!(r.status, 431, "{}", r.summary());
    assert_eq!(r.text(), "Request headers too large");

    let big = "b".repeat(3000);
    let r = conn.request("GET", "/vod/ok", &[("x-big", big.as_str())]);
    assert_eq!(r.status, 431, "{}", r.summary());

    // The same connection still routes.
    let r = conn.request("GET", "/vod/ok", &[]);
    assert_eq!(r.status, 302, "{}", r.summary());

    // Counted after the answers went out.
    let invalid = [("kind", "invalid"), ("outcome", "bad_request")];
    let metrics = wait_metric_sum(&router, REQUESTS, &invalid, 3.0);
    assert_eq!(
        metric_value(&metrics, REQUESTS, &invalid),
        Some(3.0),
        "{metrics}"
    );
}

#[test]
fn limits_have_defaults_that_admit_normal_requests() {
    let router = Setup::with(data::standard()).start();
    let target = format!("/vod/{}?token={}", "p".repeat(3000), "t".repeat(3000));
    let r = router.get(&target);
    assert_eq!(r.status, 302, "{}", r.summary());
    let r = router.get(&format!("/vod/{}", "p".repeat(9000)));
    assert_eq!(r.status, 414, "{}", r.summary());
    let mut conn = Conn::open(router.v4());
    conn.send(&raw_request("GET", "/vod/x", &[("x-a", "1"); 70]));
    assert_eq!(conn.read_response(false).status, 431);
}
