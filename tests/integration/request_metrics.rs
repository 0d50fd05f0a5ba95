//! Request metrics: `cti_kaltura_requests_total` by route kind and outcome, and the request
//! duration histogram by kind, counted once per routing request (never for management ones).

use crate::data::{self, LIVE, LIVE_LOCATION};
use crate::harness::Setup;
use crate::prometheus::{assert_series, metric_sum, metric_value, wait_metric_sum, REQUESTS};
use crate::routes::{assert_error, assert_redirect, INVALID, NOT_FOUND};

const DURATION: &str = "cti_kaltura_request_duration_seconds";

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
    let text = wait_metric_sum(&router, REQUESTS, &[], 4.0);
    let count = format!("{DURATION}_count");
    let bucket = format!("{DURATION}_bucket");
    assert_series(
        &text,
        &[
            (REQUESTS, &[("kind", "live"), ("outcome", "redirect")], 1.0),
            (REQUESTS, &[("kind", "live"), ("outcome", "not_found")], 1.0),
            (
                REQUESTS,
                &[("kind", "invalid"), ("outcome", "bad_request")],
                1.0,
            ),
            (
                REQUESTS,
                &[("kind", "invalid"), ("outcome", "method_not_allowed")],
                1.0,
            ),
            (&count, &[("kind", "live")], 2.0),
            (&count, &[("kind", "invalid")], 2.0),
            (&bucket, &[("kind", "live"), ("le", "+Inf")], 2.0),
        ],
    );
    // Nothing else was counted (management requests are not routing requests).
    assert_eq!(metric_sum(&text, REQUESTS, &[]), 4.0, "{text}");
    // A bucket resolving tens of microseconds, at most as full as the total.
    let fine_bucket = [("kind", "live"), ("le", "0.00005")];
    let fine = metric_value(&text, &bucket, &fine_bucket)
        .unwrap_or_else(|| panic!("no {bucket}{fine_bucket:?} in {text}"));
    assert!(
        (0.0..=2.0).contains(&fine),
        "{bucket}{fine_bucket:?} = {fine}"
    );
    let sum = metric_value(&text, &format!("{DURATION}_sum"), &[("kind", "live")])
        .unwrap_or_else(|| panic!("no {DURATION}_sum{{kind=\"live\"}} in {text}"));
    assert!(sum > 0.0 && sum < 10.0, "duration sum {sum}");
}
