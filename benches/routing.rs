//! Benchmarks of the routing core on a generated snapshot of production size (see
//! `src/synthetic.rs`): the whole routing decision (`routing` group) and parsing plus
//! compiling the snapshot document (`compile` group). Results: `docs/performance.md`.
//!
//! `cargo bench --bench routing` runs them on the full document. Under `cargo test` (no
//! `--bench` flag, or with `--test`) criterion runs each benchmark once; the document is then
//! generated at [`Scale::SMOKE`] so that debug builds stay quick.
//!
//! Before measuring, every prepared request is decided once with allocations counted: a
//! redirect must allocate exactly once (its Location string), a 404 or 400 not at all.

#[path = "../src/dev/synthetic.rs"]
#[allow(dead_code)]
mod support;

use criterion::{Criterion, SamplingMode, Throughput};
use cti_kaltura::routing::{
    decide, BadRequest, Decision, NotFound, Outcome, RequestFacts, RoutingPolicy,
};
use cti_kaltura::snapshot::{load_snapshot, Snapshot};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;
use support::{Generated, Scale, SEED};

/// The system allocator, counting allocations (and their bytes) while [`COUNTING`] is set.
/// Off, the cost is one relaxed load per allocation.
struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static ALLOCATED_BYTES: AtomicUsize = AtomicUsize::new(0);

impl CountingAllocator {
    #[inline]
    fn count(size: usize) {
        if COUNTING.load(Relaxed) {
            ALLOCATIONS.fetch_add(1, Relaxed);
            ALLOCATED_BYTES.fetch_add(size, Relaxed);
        }
    }
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result with the allocations (and bytes) made meanwhile. The
/// result is dropped by the caller, outside the count.
fn counting<R>(f: impl FnOnce() -> R) -> (R, usize, usize) {
    ALLOCATIONS.store(0, Relaxed);
    ALLOCATED_BYTES.store(0, Relaxed);
    COUNTING.store(true, Relaxed);
    let result = f();
    COUNTING.store(false, Relaxed);
    (
        result,
        ALLOCATIONS.load(Relaxed),
        ALLOCATED_BYTES.load(Relaxed),
    )
}

/// One prepared request.
struct Request {
    path: String,
    peer: IpAddr,
    x_real_ip: Option<String>,
}

impl Request {
    #[inline]
    fn facts(&self, random: u64) -> RequestFacts<'_> {
        RequestFacts {
            method: &http::Method::GET,
            path: &self.path,
            query: None,
            peer: self.peer,
            x_real_ip: self.x_real_ip.as_deref().map(str::as_bytes),
            random,
            secure: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Redirect,
    NotFound,
    BadRequest,
}

/// A benchmark: requests cycled through in order (a power-of-two count) and the outcome
/// every one of them must have.
struct Workload {
    name: &'static str,
    requests: Vec<Request>,
    expect: Expect,
}

/// Where the client address comes from.
enum Client<'a> {
    /// The TCP peer, cycling through the generated client addresses.
    Peer(&'a [IpAddr]),
    /// A trusted proxy (127.0.0.1) with the address in `X-Real-IP`, cycling likewise.
    XRealIp(&'a [IpAddr]),
    /// Always the same peer.
    Fixed(IpAddr),
}

fn workload(
    name: &'static str,
    paths: Vec<String>,
    client: Client<'_>,
    expect: Expect,
) -> Workload {
    let proxy: IpAddr = [127, 0, 0, 1].into();
    let requests = paths
        .into_iter()
        .enumerate()
        .map(|(i, path)| match client {
            Client::Peer(ips) => Request {
                path,
                peer: ips[i % ips.len()],
                x_real_ip: None,
            },
            Client::XRealIp(ips) => Request {
                path,
                peer: proxy,
                x_real_ip: Some(ips[i % ips.len()].to_string()),
            },
            Client::Fixed(ip) => Request {
                path,
                peer: ip,
                x_real_ip: None,
            },
        })
        .collect::<Vec<_>>();
    assert!(requests.len().is_power_of_two());
    Workload {
        name,
        requests,
        expect,
    }
}

fn workloads(generated: &Generated) -> Vec<Workload> {
    let n = generated.scale.client_ips;
    let ips = &generated.client_ips[..];
    let mut rng = fastrand::Rng::with_seed(SEED ^ 1);
    let live = generated.live_paths(&mut rng, n);
    vec![
        workload(
            "live/peer",
            live.clone(),
            Client::Peer(ips),
            Expect::Redirect,
        ),
        workload(
            "live/x_real_ip",
            live.clone(),
            Client::XRealIp(ips),
            Expect::Redirect,
        ),
        workload(
            "live/peer_fixed_ip",
            live,
            Client::Fixed(ips[0]),
            Expect::Redirect,
        ),
        workload(
            "catchup/peer",
            generated.catchup_paths(&mut rng, n),
            Client::Peer(ips),
            Expect::Redirect,
        ),
        workload(
            "vod/peer",
            generated.vod_paths(&mut rng, n),
            Client::Peer(ips),
            Expect::Redirect,
        ),
        workload(
            "404_unknown_channel/peer",
            generated.unknown_channel_paths(&mut rng, n),
            Client::Peer(ips),
            Expect::NotFound,
        ),
        workload(
            "400_bad_path/peer",
            generated.bad_paths(&mut rng, n),
            Client::Peer(ips),
            Expect::BadRequest,
        ),
    ]
}

fn outcome_matches(decision: &Decision, expect: Expect) -> bool {
    match expect {
        Expect::Redirect => matches!(decision.outcome, Outcome::Redirect { .. }),
        Expect::NotFound => decision.outcome == Outcome::NotFound(NotFound::Content),
        Expect::BadRequest => decision.outcome == Outcome::BadRequest(BadRequest::Path),
    }
}

/// Decides every request of every workload once, counting allocations per decision: a
/// redirect must make exactly one (the Location), a 404 or 400 none. Panics otherwise.
fn check_workloads(snapshot: &Snapshot, policy: &RoutingPolicy, workloads: &[Workload]) {
    let mut rng = fastrand::Rng::with_seed(SEED ^ 2);
    println!("allocations per decide() call (counting global allocator), every prepared request:");
    for w in workloads {
        let expected = usize::from(w.expect == Expect::Redirect);
        let (mut min, mut max, mut bytes, mut fell_back) = (usize::MAX, 0, 0, 0);
        for (i, request) in w.requests.iter().enumerate() {
            let facts = request.facts(rng.u64(..));
            let (decision, allocations, allocated) =
                counting(|| decide(Some(snapshot), policy, &facts));
            assert!(
                outcome_matches(&decision, w.expect),
                "{} request {i} ({:?}): {:?}",
                w.name,
                request.path,
                decision.outcome
            );
            assert_eq!(
                allocations, expected,
                "{} request {i} ({:?}) made {allocations} allocations",
                w.name, request.path
            );
            min = min.min(allocations);
            max = max.max(allocations);
            bytes += allocated;
            if let (Outcome::Redirect { subnet_id, .. }, Some(ip)) =
                (&decision.outcome, decision.client_ip)
            {
                let most_specific = snapshot.network_of(ip).expect("routed").chain[0];
                if most_specific.subnet_id != *subnet_id {
                    fell_back += 1;
                }
            }
        }
        let n = w.requests.len();
        print!(
            "  {:<26} {n} requests: min {min}, max {max} allocations, {:.1} bytes on average",
            w.name,
            bytes as f64 / n as f64
        );
        if w.expect == Expect::Redirect {
            print!("; {fell_back} fell back along the subnet chain");
        }
        println!();
    }
    // The one-call form of the same claim, for the record.
    let single = |w: &Workload| {
        let facts = w.requests[0].facts(12345);
        let (decision, allocations, _) = counting(|| decide(Some(snapshot), policy, &facts));
        drop(decision);
        allocations
    };
    let by_name = |name: &str| {
        single(
            workloads
                .iter()
                .find(|w| w.name == name)
                .expect("workload exists"),
        )
    };
    let (live, not_found, bad) = (
        by_name("live/peer"),
        by_name("404_unknown_channel/peer"),
        by_name("400_bad_path/peer"),
    );
    println!("one call: live redirect {live} allocation(s), 404 {not_found}, 400 {bad}");
    assert_eq!((live, not_found, bad), (1, 0, 0));
}

fn describe(generated: &Generated, snapshot: &Snapshot) {
    let c = &generated.counts;
    println!(
        "document: {:.1} MiB of JSON; {} regions ({} without an eligible edge), {} subnets \
         ({} IPv4, {} IPv6), {} server groups, {} servers, {} channels, {} streams, {} programs, \
         {} records",
        generated.json.len() as f64 / (1024.0 * 1024.0),
        c.regions,
        c.dead_regions,
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
    let mut chains = [0usize; 5];
    for network in snapshot.networks() {
        chains[network.chain.len().min(5) - 1] += 1;
    }
    println!(
        "snapshot: {:?}; {} problems; {} live and {} catch-up contents; networks by chain \
         length 1/2/3/4/5+: {chains:?}",
        snapshot.info.counts,
        snapshot.info.problems.len(),
        snapshot.live.len(),
        snapshot.catchup.len()
    );
}

fn bench_routing(
    c: &mut Criterion,
    snapshot: &Snapshot,
    policy: &RoutingPolicy,
    workloads: &[Workload],
) {
    let mut group = c.benchmark_group("routing");
    group.throughput(Throughput::Elements(1));
    for w in workloads {
        let mask = w.requests.len() - 1;
        let mut rng = fastrand::Rng::with_seed(SEED ^ 3);
        let mut i = 0usize;
        group.bench_function(w.name, |b| {
            b.iter(|| {
                let request = &w.requests[i & mask];
                i = i.wrapping_add(1);
                let facts = request.facts(rng.u64(..));
                decide(Some(snapshot), policy, black_box(&facts))
            })
        });
    }
    group.finish();
}

fn bench_compile(c: &mut Criterion, json: &str) {
    let mut group = c.benchmark_group("compile");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function("load_snapshot", |b| {
        // The old snapshot is dropped outside the measurement (the router drops it later,
        // when the last request using it ends).
        b.iter_with_large_drop(|| load_snapshot(black_box(json.as_bytes()), "bench").unwrap())
    });
    group.finish();
}

fn main() {
    // Criterion's own rule: `--bench` without `--test` measures; anything else is a test run.
    let args: Vec<String> = std::env::args().collect();
    let measuring = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let scale = if measuring { Scale::FULL } else { Scale::SMOKE };

    let started = Instant::now();
    let generated = support::generate(&scale, SEED);
    let generate_time = started.elapsed();
    let started = Instant::now();
    let snapshot = load_snapshot(generated.json.as_bytes(), "bench").expect("a valid document");
    println!(
        "generated in {:.2?}, loaded in {:.2?} (one unmeasured run)",
        generate_time,
        started.elapsed()
    );
    describe(&generated, &snapshot);
    assert!(
        snapshot.info.problems.is_empty(),
        "the generated document has problems: {:?}",
        &snapshot.info.problems[..snapshot.info.problems.len().min(5)]
    );

    let policy = support::default_policy();
    let workloads = workloads(&generated);
    check_workloads(&snapshot, &policy, &workloads);

    let mut criterion = Criterion::default().configure_from_args();
    bench_routing(&mut criterion, &snapshot, &policy, &workloads);
    bench_compile(&mut criterion, &generated.json);
    criterion.final_summary();
}
