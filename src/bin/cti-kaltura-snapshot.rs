//! `cti-kaltura-snapshot`: the operator's companion for routing snapshots — check a file,
//! diff two, explain a routing decision offline, generate synthetic data.

#[path = "../dev/synthetic.rs"]
#[allow(dead_code)]
mod synthetic;
use clap::{Parser, Subcommand};
use cti_kaltura::config::GuardConfig;
use cti_kaltura::routing::explain::explain;
use cti_kaltura::routing::RoutingPolicy;
use cti_kaltura::snapshot::diff::{Change, SnapshotDiff};
use cti_kaltura::snapshot::Snapshot;
use cti_kaltura::sources::file::load_file;
use cti_kaltura::sources::guard;
use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cti-kaltura-snapshot",
    about = "Check, compare and query CtiKaltura routing snapshots"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and compile FILE; print counts and every quarantined entity. Exit 1 if it does
    /// not load.
    Check { file: PathBuf },
    /// What routing would change from OLD to NEW, and the blast-radius guard's verdict.
    /// Exit 0 when the guard would accept NEW, 3 when it would refuse it.
    Diff {
        old: PathBuf,
        new: PathBuf,
        /// The guard's largest removed fraction (router.routing.guard.max_removed_fraction).
        #[arg(long, default_value_t = GuardConfig::default().max_removed_fraction, value_parser = fraction)]
        max_removed_fraction: f64,
        /// How many ids to list per change.
        #[arg(long, default_value_t = 20)]
        show: usize,
    },
    /// Explain how FILE routes PATH for a client at IP (the offline twin of GET /debug/route).
    Route {
        file: PathBuf,
        ip: String,
        path: String,
    },
    /// Write a synthetic snapshot (the benchmarks' generator) as JSON.
    Gen {
        /// `full` (100,000 subnets, 10,000 channels, 1,000,000 records) or `smoke` (small).
        #[arg(long, default_value = "smoke")]
        scale: String,
        #[arg(long)]
        subnets: Option<usize>,
        #[arg(long)]
        channels: Option<usize>,
        #[arg(long)]
        programs: Option<usize>,
        #[arg(long, default_value_t = synthetic::SEED)]
        seed: u64,
        /// Output file (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

/// A number from 0 to 1.
fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err("must be a number from 0 to 1".to_string()),
    }
}

fn load(path: &Path) -> Result<Snapshot, ExitCode> {
    load_file(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(1)
    })
}

fn print_change<T: Display>(out: &mut impl Write, what: &str, change: &Change<T>, show: usize) {
    let list = |items: &[T]| {
        let shown: Vec<String> = items.iter().take(show).map(|x| x.to_string()).collect();
        let more = items.len().saturating_sub(show);
        if more > 0 {
            format!("{} … and {more} more", shown.join(", "))
        } else {
            shown.join(", ")
        }
    };
    let _ = writeln!(
        out,
        "{what}: +{} -{}",
        change.added.len(),
        change.removed.len()
    );
    if !change.added.is_empty() {
        let _ = writeln!(out, "  added:   {}", list(&change.added));
    }
    if !change.removed.is_empty() {
        let _ = writeln!(out, "  removed: {}", list(&change.removed));
    }
}

fn check(file: PathBuf) -> ExitCode {
    let snapshot = match load(&file) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let info = &snapshot.info;
    let c = &info.counts;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}: version {}",
        file.display(),
        info.version.as_deref().unwrap_or("(none)")
    );
    let _ = writeln!(
        out,
        "regions {}, subnets {}, server groups {}, servers {}, channels {}, streams {}, programs {}, records {}",
        c.regions, c.subnets, c.server_groups, c.servers, c.linear_channels, c.tv_streams, c.programs, c.program_records
    );
    let _ = writeln!(
        out,
        "routable regions {}, eligible edges {}, live channels {}, catch-up programs {}",
        snapshot
            .regions
            .iter()
            .filter(|r| !r.edges.is_empty())
            .count(),
        snapshot.eligible_edge_ids().len(),
        snapshot.live.epg_ids().count(),
        snapshot.catchup.epg_ids().count()
    );
    let _ = writeln!(out, "problems: {}", info.problems.len());
    for problem in &info.problems {
        let _ = writeln!(out, "  {problem}");
    }
    ExitCode::SUCCESS
}

fn diff(old: PathBuf, new: PathBuf, max_removed_fraction: f64, show: usize) -> ExitCode {
    let (old_snapshot, new_snapshot) = match (load(&old), load(&new)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let d = SnapshotDiff::between(&old_snapshot, &new_snapshot);
    let mut out = std::io::stdout().lock();
    print_change(&mut out, "subnets", &d.subnets, show);
    print_change(&mut out, "routable regions", &d.routable_regions, show);
    print_change(&mut out, "eligible edges", &d.eligible_edges, show);
    print_change(&mut out, "live channels", &d.live_channels, show);
    print_change(&mut out, "catch-up programs", &d.catchup_programs, show);
    let guard_config = GuardConfig {
        enabled: true,
        max_removed_fraction,
    };
    match guard::check(&old_snapshot, &new_snapshot, &guard_config) {
        Ok(()) => {
            let _ = writeln!(out, "blast-radius guard: would accept");
            ExitCode::SUCCESS
        }
        Err(reasons) => {
            let _ = writeln!(out, "blast-radius guard: would REFUSE");
            for reason in reasons {
                let _ = writeln!(out, "  {reason}");
            }
            ExitCode::from(3)
        }
    }
}

fn route(file: PathBuf, ip: String, path: String) -> ExitCode {
    let snapshot = match load(&file) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(ip) = cti_kaltura::routing::client_ip::parse_x_real_ip(ip.as_bytes()) else {
        eprintln!("{ip}: not an IP address");
        return ExitCode::from(2);
    };
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (path, None),
    };
    let report = explain(
        &snapshot,
        &RoutingPolicy::default(),
        ip,
        &path,
        query.as_deref(),
    );
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    ExitCode::SUCCESS
}

#[allow(clippy::too_many_arguments)]
fn gen(
    scale: &str,
    subnets: Option<usize>,
    channels: Option<usize>,
    programs: Option<usize>,
    seed: u64,
    output: Option<PathBuf>,
) -> ExitCode {
    use synthetic::{generate, Scale};
    let mut scale = match scale {
        "full" => Scale::FULL,
        "smoke" => Scale::SMOKE,
        other => {
            eprintln!("--scale {other}: use `full` or `smoke`");
            return ExitCode::from(2);
        }
    };
    scale.subnets = subnets.unwrap_or(scale.subnets);
    scale.channels = channels.unwrap_or(scale.channels);
    scale.programs = programs.unwrap_or(scale.programs);
    let generated = generate(&scale, seed);
    let c = generated.counts;
    eprintln!(
        "generated {} regions, {} subnets ({} IPv6), {} servers, {} channels, {} streams, {} programs, {} records: {} bytes",
        c.regions, c.subnets, c.v6_subnets, c.servers, c.linear_channels, c.tv_streams, c.programs,
        c.program_records, generated.json.len()
    );
    let written = match output {
        Some(path) => std::fs::write(&path, generated.json.as_bytes()),
        None => std::io::stdout()
            .lock()
            .write_all(generated.json.as_bytes()),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write the snapshot: {e}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { file } => check(file),
        Command::Diff {
            old,
            new,
            max_removed_fraction,
            show,
        } => diff(old, new, max_removed_fraction, show),
        Command::Route { file, ip, path } => route(file, ip, path),
        Command::Gen {
            scale,
            subnets,
            channels,
            programs,
            seed,
            output,
        } => gen(&scale, subnets, channels, programs, seed, output),
    }
}
