//! The management listener: `/healthz` (alive), `/readyz` (a snapshot is loaded),
//! `/debug/snapshot` (what is in service) and `/metrics`.

use crate::data;
use crate::harness::Setup;
use crate::prometheus::{assert_series, wait_metric_sum, REQUESTS};
use crate::routes::assert_redirect;
use serde_json::Value;

#[test]
fn health_readiness_snapshot_and_metrics() {
    let router = Setup::with(data::standard()).start();

    let health = router.management("/healthz");
    assert_eq!(health.status, 200, "{health:?}");
    let ready = router.management("/readyz");
    assert_eq!(ready.status, 200, "{ready:?}");

    let snapshot = router.management("/debug/snapshot");
    assert_eq!(snapshot.status, 200, "{snapshot:?}");
    assert_eq!(
        snapshot.header("content-type"),
        Some("application/json"),
        "{snapshot:?}"
    );
    let doc: Value = serde_json::from_slice(&snapshot.body).expect("/debug/snapshot is JSON");
    assert_eq!(doc["loaded"], true, "{doc}");
    assert_eq!(doc["version"], data::VERSION, "{doc}");
    assert_eq!(
        doc["source"],
        router.routing_path().display().to_string(),
        "{doc}"
    );
    for (entity, count) in data::COUNTS {
        assert_eq!(doc["counts"][entity], count, "counts.{entity} in {doc}");
    }
    assert_eq!(doc["problem_count"], 0, "{doc}");
    assert!(doc["loaded_at_unix"].as_u64().unwrap_or(0) > 0, "{doc}");

    // One redirect, then the per-request counter shows it (counted after the answer is sent).
    assert_redirect(
        &router.get("/btv/live/hls/epg_1"),
        "http://edge-a.test/live/one.m3u8",
    );
    let redirects = [("kind", "live"), ("outcome", "redirect")];
    let metrics = wait_metric_sum(&router, REQUESTS, &redirects, 1.0);
    assert_series(
        &metrics,
        &[
            (REQUESTS, &redirects, 1.0),
            ("cti_kaltura_snapshot_fetch_total", &[("result", "ok")], 1.0),
            (
                "cti_kaltura_snapshot_version_info",
                &[("version", "v1")],
                1.0,
            ),
            ("cti_kaltura_snapshot_entities", &[("kind", "regions")], 7.0),
        ],
    );

    let other = router.management("/nothing-here");
    assert_eq!(other.status, 404, "{other:?}");
}
