//! Generates the benchmark snapshot document (the one `benches/routing.rs` uses), parses and
//! compiles it once, and prints the timings, the counts and the process's memory at each
//! step. Run it under `/usr/bin/time -v` for the peak resident set size:
//!
//! ```text
//! cargo build --release --example compile_snapshot
//! /usr/bin/time -v target/release/examples/compile_snapshot
//! ```
//!
//! `load_snapshot` on JSON bytes is `parse_document` then `compile` (the text is borrowed, not
//! copied); the two steps are timed separately here.

#[path = "../src/dev/synthetic.rs"]
#[allow(dead_code)]
mod support;

use cti_kaltura::snapshot::{compile, parse_document};
use std::time::Instant;

const MIB: f64 = 1024.0 * 1024.0;

/// A `Vm*` line of `/proc/self/status`, in MiB (None off Linux).
fn vm(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn memory(step: &str) {
    let show = |v: Option<f64>| v.map_or("?".to_string(), |m| format!("{m:.0} MiB"));
    println!(
        "  memory {step:<34} VmRSS {:>9}  VmHWM (peak) {:>9}",
        show(vm("VmRSS:")),
        show(vm("VmHWM:"))
    );
}

fn main() {
    let scale = support::Scale::FULL;
    memory("at start");

    let started = Instant::now();
    let generated = support::generate(&scale, support::SEED);
    let generate_time = started.elapsed();
    let c = &generated.counts;
    println!(
        "generate:         {generate_time:>10.2?}  JSON document {} bytes ({:.1} MiB)",
        generated.json.len(),
        generated.json.len() as f64 / MIB
    );
    println!(
        "  written: {} regions, {} subnets ({} IPv4, {} IPv6), {} server groups, {} servers, \
         {} channels, {} streams, {} programs, {} records",
        c.regions,
        c.subnets,
        c.v4_subnets,
        c.v6_subnets,
        c.server_groups,
        c.servers,
        c.linear_channels,
        c.tv_streams,
        c.programs,
        c.program_records
    );
    memory("after generating");

    let started = Instant::now();
    let document = parse_document(&generated.json).expect("a valid document");
    let parse_time = started.elapsed();
    memory("after parse_document");
    let started = Instant::now();
    let snapshot = compile(&document, "compile_snapshot");
    let compile_time = started.elapsed();
    println!("parse_document:   {parse_time:>10.2?}");
    println!("compile:          {compile_time:>10.2?}");
    println!("parse + compile:  {:>10.2?}", parse_time + compile_time);
    memory("after compile (document alive)");

    drop(document);
    drop(generated);
    memory("after dropping the document");

    println!(
        "snapshot: {:?}; {} problems; {} networks; {} live and {} catch-up contents",
        snapshot.info.counts,
        snapshot.info.problems.len(),
        snapshot.networks().count(),
        snapshot.live.len(),
        snapshot.catchup.len()
    );
    assert!(snapshot.info.problems.is_empty());
}
