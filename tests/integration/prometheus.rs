//! The one reader of the router's `/metrics` (Prometheus text exposition): every sample of a
//! metric with its labels, sums over the samples carrying some labels, the value of one exact
//! series, and polling `/metrics` until a sum has got somewhere.

use crate::harness::{try_poll, Router};

/// Routing requests answered, by `kind` and `outcome`.
pub const REQUESTS: &str = "cti_kaltura_requests_total";

/// `GET /metrics` on the management listener (asserting a 200); its text.
pub fn scrape(router: &Router) -> String {
    let answer = router.management("/metrics");
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.text()
}

/// The labels and value of every sample of metric `name` in a Prometheus text exposition.
pub fn samples(text: &str, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value: f64 = value.trim().parse().ok()?;
            let (metric, labels) = match series.split_once('{') {
                Some((metric, rest)) => (metric, parse_labels(rest.strip_suffix('}')?)),
                None => (series, Vec::new()),
            };
            (metric == name).then_some((labels, value))
        })
        .collect()
}

/// `a="x",b="y"` (values without escapes or commas, as every label here).
fn parse_labels(text: &str) -> Vec<(String, String)> {
    text.split("\",")
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key.trim().to_string(), value.trim_matches('"').to_string()))
        })
        .collect()
}

/// Whether `have` holds every label of `labels`.
fn carries(have: &[(String, String)], labels: &[(&str, &str)]) -> bool {
    labels
        .iter()
        .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v))
}

/// The sum of the samples of `name` carrying every label of `labels` (0 when none does).
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text, name)
        .iter()
        .filter(|(have, _)| carries(have, labels))
        .map(|(_, value)| value)
        .sum()
}

/// The value of the series `name{labels}` with exactly these labels (in any order); `None`
/// when there is none, a panic when it is printed twice.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = samples(text, name)
        .into_iter()
        .filter(|(have, _)| have.len() == labels.len() && carries(have, labels))
        .map(|(_, value)| value)
        .collect();
    match found.as_slice() {
        [] => None,
        [one] => Some(*one),
        more => panic!("{name}{labels:?} printed {} times: {more:?}", more.len()),
    }
}

/// Polls `/metrics` until [`metric_sum`] of `name` and `labels` is at least `at_least`;
/// returns that text. Request metrics are counted after the answer has gone out.
pub fn wait_metric_sum(
    router: &Router,
    name: &str,
    labels: &[(&str, &str)],
    at_least: f64,
) -> String {
    try_poll(
        &format!("{name}{labels:?} at least {at_least} in /metrics"),
        || {
            let text = scrape(router);
            let sum = metric_sum(&text, name, labels);
            if sum >= at_least {
                Ok(text)
            } else {
                Err(format!("{sum}"))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}; router stderr:\n{}", router.stderr()))
}

/// One exact series (name, all its labels) and the value it must have.
pub type Series<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// Asserts that every one of `series` has its value in `text`.
pub fn assert_series(text: &str, series: &[Series<'_>]) {
    for &(name, labels, wanted) in series {
        assert_eq!(
            metric_value(text, name, labels),
            Some(wanted),
            "{name}{labels:?} in:\n{text}"
        );
    }
}
