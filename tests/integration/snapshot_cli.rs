//! `cti-kaltura-snapshot`: check, diff and route on fixture files, through the real binary.

use crate::harness::run_bounded;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cti-kaltura-snapshot")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn run(args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (status, stdout, stderr) = run_bounded(Command::new(bin()).args(args), dir.path());
    (status.code().unwrap_or(-1), stdout, stderr)
}

#[test]
fn check_prints_counts_and_every_quarantined_entity() {
    let a = fixture("snapshot-a.json");
    let (code, out, _) = run(&["check", a.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("version fixture-1"), "{out}");
    assert!(out.contains("regions 2, subnets 3,"), "{out}");
    assert!(out.contains("problems: 1"), "{out}");
    assert!(
        out.contains("subnets[3] id=4: cidr \"not-a-cidr\" is not a CIDR (skipped)"),
        "{out}"
    );
}

#[test]
fn check_fails_on_a_file_that_does_not_load() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{not json").unwrap();
    let (code, _, err) = run(&["check", broken.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("not valid JSON"), "{err}");
}

#[test]
fn diff_lists_changes_and_the_guard_verdict() {
    let (a, b) = (fixture("snapshot-a.json"), fixture("snapshot-b.json"));
    let (code, out, _) = run(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    // South's only edge became unavailable: the region is left without edges.
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("eligible edges: +0 -1\n  removed: 2\n"),
        "{out}"
    );
    assert!(
        out.contains("routable regions: +0 -1\n  removed: 2\n"),
        "{out}"
    );
    assert!(out.contains("subnets: +0 -0"), "{out}");
    assert!(out.contains("blast-radius guard: would REFUSE"), "{out}");
    assert!(out.contains("would leave 1 region(s)"), "{out}");
    let (code, out, _) = run(&["diff", a.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("blast-radius guard: would accept"), "{out}");
}

#[test]
fn route_explains_a_decision_offline() {
    let a = fixture("snapshot-a.json");
    let (code, out, _) = run(&[
        "route",
        a.to_str().unwrap(),
        "10.2.3.4",
        "/btv/live/hls/ch1?t=1",
    ]);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(
        report["result"]["location"],
        "https://south.test/live/ch1.m3u8?t=1"
    );
    assert_eq!(report["fallback_chain"][0]["name"], "South");
    let (code, _, err) = run(&["route", a.to_str().unwrap(), "not-an-ip", "/vod/x"]);
    assert_eq!(code, 2);
    assert!(err.contains("not an IP address"), "{err}");
}

#[test]
fn gen_writes_a_snapshot_that_check_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen.json");
    let (code, _, err) = run(&[
        "gen",
        "--subnets",
        "300",
        "--channels",
        "20",
        "--programs",
        "10",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("300 subnets"), "{err}");
    let (code, out_text, _) = run(&["check", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{out_text}");
    assert!(out_text.contains("subnets 300,"), "{out_text}");
    assert!(out_text.contains("channels 20,"), "{out_text}");
    assert!(out_text.contains("problems: 0"), "{out_text}");
    // Deterministic: the same seed writes the same bytes.
    let again = dir.path().join("again.json");
    run(&[
        "gen",
        "--subnets",
        "300",
        "--channels",
        "20",
        "--programs",
        "10",
        "-o",
        again.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
}
