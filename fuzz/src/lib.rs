//! Shared pieces of the fuzz targets: a small fixed snapshot, routing policies, and the
//! invariants every routing decision must keep.

use cti_kaltura::config::{
    parse_cidr, Mode, RouteConfig, RoutesConfig, SelectionPolicy, TrustedProxies,
};
use cti_kaltura::routing::{decide, Decision, Outcome, RequestFacts, RoutingPolicy};
use cti_kaltura::snapshot::{load_snapshot, Snapshot};
use std::net::IpAddr;
use std::sync::OnceLock;

/// A small snapshot that routes every client somewhere: `0.0.0.0/0` and `::/0` catch all,
/// nested networks fall back through an INACTIVE region, edges on ports 80, 443, 8080 and
/// 65535, live streams in every protocol and encryption, DVR records with a prefix.
pub const FIXED_SNAPSHOT_JSON: &str = r#"{
  "version": "fuzz-1",
  "regions": [
    {"id": 1, "name": "all", "status": "ACTIVE", "server_group_ids": [1]},
    {"id": 2, "name": "ten", "status": "ACTIVE", "server_group_ids": [2]},
    {"id": 3, "name": "off", "status": "INACTIVE", "server_group_ids": [1, 2]},
    {"id": 4, "name": "down", "status": "ACTIVE", "server_group_ids": [3]}
  ],
  "server_groups": [
    {"id": 1, "status": "ACTIVE", "server_ids": [1, 2, 5]},
    {"id": 2, "status": "ACTIVE", "server_ids": [3, 4]},
    {"id": 3, "status": "ACTIVE", "server_ids": [6]}
  ],
  "servers": [
    {"id": 1, "type": "EDGE", "domain_name": "e1.example", "port": 80, "status": "ACTIVE", "availability": true, "weight": 1},
    {"id": 2, "type": "EDGE", "domain_name": "E2.Example", "port": 443, "status": "ACTIVE", "availability": true, "weight": 3},
    {"id": 3, "type": "EDGE", "domain_name": "e3.example", "port": 8080, "status": "ACTIVE", "availability": true, "weight": 2},
    {"id": 4, "type": "EDGE", "domain_name": "e4.example", "port": 65535, "status": "ACTIVE", "availability": true, "weight": 5},
    {"id": 5, "type": "EDGE", "domain_name": "e5.example", "port": 81, "status": "ACTIVE", "availability": true, "weight": 2},
    {"id": 6, "type": "EDGE", "domain_name": "e6.example", "port": 80, "status": "ACTIVE", "availability": true, "weight": 1},
    {"id": 90, "type": "DVR", "domain_name": "dvr.example", "port": 80, "status": "ACTIVE", "prefix": "dvr1"}
  ],
  "subnets": [
    {"id": 100, "cidr": "0.0.0.0/0", "region_id": 1},
    {"id": 101, "cidr": "10.0.0.0/8", "region_id": 2},
    {"id": 102, "cidr": "10.1.0.0/16", "region_id": 3},
    {"id": 103, "cidr": "192.0.2.0/24", "region_id": 4},
    {"id": 200, "cidr": "::/0", "region_id": 1},
    {"id": 201, "cidr": "2001:db8::/32", "region_id": 2}
  ],
  "linear_channels": [{"id": 1, "epg_id": "epg_1"}, {"id": 2, "epg_id": "epg_2"}],
  "tv_streams": [
    {"id": 1, "linear_channel_id": 1, "stream_path": "/live/ch1/index.m3u8", "status": "ACTIVE", "protocol": "HLS", "encryption": "NONE"},
    {"id": 2, "linear_channel_id": 1, "stream_path": "ch1.mpd", "status": "ACTIVE", "protocol": "MPD", "encryption": "NONE"},
    {"id": 3, "linear_channel_id": 1, "stream_path": "//c//ch1.mpd", "status": "ACTIVE", "protocol": "MPD", "encryption": "CENC"},
    {"id": 4, "linear_channel_id": 2, "stream_path": "/wv.mpd", "status": "ACTIVE", "protocol": "MPD", "encryption": "WIDEVINE"},
    {"id": 5, "linear_channel_id": 2, "stream_path": "/pr.m3u8", "status": "ACTIVE", "protocol": "HLS", "encryption": "PLAYREADY"}
  ],
  "programs": [{"id": 1, "linear_channel_id": 1, "epg_id": "p_1"}],
  "program_records": [
    {"id": 1, "program_id": 1, "server_id": 90, "status": "COMPLETED", "protocol": "HLS", "encryption": "NONE", "path": "r1"},
    {"id": 2, "program_id": 1, "server_id": 90, "status": "COMPLETED", "protocol": "MPD", "encryption": "CENC", "path": "/r2.mpd"}
  ]
}"#;

/// The fixed snapshot, built once. Edge 1 (one of three in region 1) and edge 6 (the only
/// one of region 4) are marked down, so the healthy redraw and panic mode are exercised too.
pub fn fixed_snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let s = load_snapshot(FIXED_SNAPSHOT_JSON.as_bytes(), "fuzz").expect("fixed snapshot");
        assert!(s.info.problems.is_empty(), "{:?}", s.info.problems);
        for server in &s.servers {
            if server.id == 1 || server.id == 6 {
                server.health.set_up(false);
            }
        }
        s
    })
}

/// Two policies: the defaults (weighted random, query appended, panic mode, loopback
/// trusted) and consistent hashing spread over 3 edges, no query, no panic mode, with a
/// trusted proxy range in 192.0.2.0/24 and 2001:db8:ffff::/48.
pub fn policies() -> &'static [RoutingPolicy; 2] {
    static POLICIES: OnceLock<[RoutingPolicy; 2]> = OnceLock::new();
    POLICIES.get_or_init(|| {
        let consistent = RouteConfig {
            mode: Mode::Redirect,
            selection: SelectionPolicy::Consistent,
            spread: 3,
            ..RouteConfig::default()
        };
        [
            RoutingPolicy::default(),
            RoutingPolicy {
                trusted_proxies: TrustedProxies(
                    ["192.0.2.0/24", "2001:db8:ffff::/48", "127.0.0.1"]
                        .iter()
                        .map(|s| parse_cidr(s).expect("valid CIDR"))
                        .collect(),
                ),
                append_query_string: false,
                panic_mode: false,
                routes: RoutesConfig([consistent; 4]),
            },
        ]
    })
}

/// Clients: in nested v4 networks, in the trusted proxy range, v6, v4-mapped v6, and the
/// extremes of both address spaces.
pub const CLIENTS: &[&str] = &[
    "10.1.2.3",
    "10.9.9.9",
    "192.0.2.1",
    "8.8.8.8",
    "2001:db8::1",
    "2001:db8:ffff::1",
    "::ffff:10.1.2.3",
    "0.0.0.0",
    "255.255.255.255",
    "::",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "127.0.0.1",
];

pub fn client(i: usize) -> IpAddr {
    CLIENTS[i % CLIENTS.len()].parse().expect("valid client")
}

/// The Location invariant: `http(s)://host[:port]/…` with `host` one of the snapshot's edge
/// domain names, and nothing but visible ASCII (no byte < 0x21, no 0x7f, nothing above).
pub fn check_location(location: &str, snapshot: &Snapshot) {
    assert!(
        location.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "Location with a control, blank or non-ASCII byte: {location:?}"
    );
    let rest = location
        .strip_prefix("http://")
        .or_else(|| location.strip_prefix("https://"))
        .unwrap_or_else(|| panic!("Location without http(s) scheme: {location:?}"));
    let authority_end = rest
        .find('/')
        .unwrap_or_else(|| panic!("Location without a path: {location:?}"));
    let authority = &rest[..authority_end];
    let host = match authority.split_once(':') {
        Some((host, port)) => {
            let port: u16 = port
                .parse()
                .unwrap_or_else(|_| panic!("bad port in Location {location:?}"));
            assert!(port != 0, "port 0 in Location {location:?}");
            host
        }
        None => authority,
    };
    assert!(
        snapshot.servers.iter().any(|s| &*s.domain_name == host),
        "Location host {host:?} is not an edge of the snapshot: {location:?}"
    );
}

/// The invariants of one decision: a redirect's Location is well formed and its target
/// points into the snapshot; a path outside the grammar is a bad request.
pub fn check_decision(decision: &Decision, snapshot: &Snapshot, req: &RequestFacts<'_>) {
    if let Outcome::Redirect {
        location,
        edge_id,
        target,
        ..
    } = &decision.outcome
    {
        check_location(location, snapshot);
        let edge = &snapshot.servers[target.edge_index as usize];
        assert_eq!(edge.id, *edge_id);
        assert!(
            location[target.path_start..].starts_with('/'),
            "{location:?}"
        );
        assert!(location.starts_with(&*edge.live_base) || location.starts_with(&*edge.http_base));
    }
    let method_ok = req.method == http::Method::GET || req.method == http::Method::HEAD;
    if method_ok && cti_kaltura::routing::request_path::parse_route(req.path).is_none() {
        assert_eq!(
            decision.outcome,
            Outcome::BadRequest(cti_kaltura::routing::BadRequest::Path),
            "{:?}",
            req.path
        );
    }
}

/// `decide` with invariants checked.
pub fn decide_checked(
    snapshot: &Snapshot,
    policy: &RoutingPolicy,
    req: &RequestFacts<'_>,
) -> Decision {
    let decision = decide(Some(snapshot), policy, req);
    check_decision(&decision, snapshot, req);
    decision
}

/// A handful of routing decisions on a snapshot the loader accepted: fixed paths, the
/// snapshot's own epg ids and networks, both policies. Must not panic.
pub fn exercise(snapshot: &Snapshot, seed: u64) {
    let mut paths: Vec<String> = [
        "/btv/live/hls/epg_1",
        "/btv/live/mpd_wv/epg_1.mpd",
        "/btv/catchup/hls/p_1.m3u8",
        "/btv/catchup/mpd_pr/p_1",
        "/vod/a//b.mp4",
        "/static",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (i, id) in snapshot.live.epg_ids().take(3).enumerate() {
        let codec = ["hls", "mpd", "mpd_cenc"][i % 3];
        paths.push(format!("/btv/live/{codec}/{id}"));
    }
    for (i, id) in snapshot.catchup.epg_ids().take(3).enumerate() {
        let codec = ["hls", "mpd_wv", "hls_pr"][i % 3];
        paths.push(format!("/btv/catchup/{codec}/{id}"));
    }
    let mut clients: Vec<IpAddr> = (0..CLIENTS.len()).map(client).collect();
    for network in snapshot.networks().take(6) {
        clients.push(network.cidr.network());
        clients.push(network.cidr.broadcast());
    }
    let mut random = seed;
    for (i, path) in paths.iter().enumerate() {
        for (j, &peer) in clients.iter().enumerate() {
            if (i + j) % 3 != 0 {
                continue;
            }
            random = random
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let req = RequestFacts {
                method: &http::Method::GET,
                path,
                query: Some("token=abc"),
                peer,
                x_real_ip: None,
                random,
                secure: false,
            };
            decide_checked(snapshot, &policies()[(i + j) % 2], &req);
        }
    }
}

/// The snapshot's bookkeeping: counts match what it holds, and every entity of the document
/// was either counted or quarantined, never both.
pub fn check_counts(snapshot: &Snapshot, input: &[u8]) {
    let counts = &snapshot.info.counts;
    assert_eq!(counts.regions, snapshot.regions.len());
    assert_eq!(counts.servers, snapshot.servers.len());
    assert_eq!(counts.subnets, snapshot.subnet_ids.len());
    // The same JSON the loader read (YAML is converted the same way).
    let looks_like_json = input
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{');
    let doc: Option<serde_json::Value> = if looks_like_json {
        serde_json::from_slice(input).ok()
    } else {
        serde_yaml::from_slice(input).ok()
    };
    let Some(doc) = doc else { return };
    let arrays = [
        ("regions", counts.regions),
        ("subnets", counts.subnets),
        ("server_groups", counts.server_groups),
        ("servers", counts.servers),
        ("linear_channels", counts.linear_channels),
        ("tv_streams", counts.tv_streams),
        ("programs", counts.programs),
        ("program_records", counts.program_records),
    ];
    for (name, counted) in arrays {
        let len = doc
            .get(name)
            .and_then(|a| a.as_array())
            .map_or(0, |a| a.len());
        let quarantined = snapshot
            .info
            .problems
            .iter()
            .filter(|p| p.entity == name && p.quarantined)
            .count();
        assert_eq!(
            counted + quarantined,
            len,
            "{name}: {counted} counted + {quarantined} quarantined != {len} in the document"
        );
    }
    for p in &snapshot.info.problems {
        let len = doc
            .get(p.entity)
            .and_then(|a| a.as_array())
            .map_or(0, |a| a.len());
        assert!(p.index < len, "{p}");
    }
}

/// Whether every `token_file` the config names is safe to read: missing, or a regular file of
/// at most 1 MiB. The config loader reads token files; a fuzzer that names `/dev/zero` or a
/// FIFO would hang the run, which is the operator's choice and not a bug.
pub fn token_files_are_harmless(text: &str) -> bool {
    fn walk(value: &serde_yaml::Value) -> bool {
        match value {
            serde_yaml::Value::Mapping(map) => map.iter().all(|(k, v)| {
                let harmless = match (k.as_str(), v.as_str()) {
                    (Some("token_file"), Some(path)) => match std::fs::metadata(path) {
                        Err(_) => true,
                        Ok(meta) => meta.is_file() && meta.len() <= 1 << 20,
                    },
                    _ => true,
                };
                harmless && walk(k) && walk(v)
            }),
            serde_yaml::Value::Sequence(items) => items.iter().all(walk),
            serde_yaml::Value::Tagged(tagged) => walk(&tagged.value),
            _ => true,
        }
    }
    match serde_yaml::from_str::<serde_yaml::Value>(text) {
        Ok(value) => walk(&value),
        Err(_) => true,
    }
}
