//! Routing snapshots for the tests, built with `serde_json::json!`. Every region has one edge
//! with a marker domain, so the edge in a Location names the subnet (and region) that matched.

use serde_json::{json, Value};

/// `127.0.0.1/32` → region MAIN → this edge (port 80).
pub const EDGE_V4: &str = "edge-a.test";
/// `::1/128` → region V6 → this edge (port 80).
pub const EDGE_V6: &str = "edge-v6.test";
/// `192.0.2.0/24` → region TLS → this edge on port 443.
pub const CLIENT_TLS: &str = "192.0.2.10";
pub const EDGE_TLS: &str = "edge-tls.test";
/// `198.51.100.0/24` → region ALT → this edge on port 8080.
pub const CLIENT_ALT: &str = "198.51.100.10";
pub const EDGE_ALT: &str = "edge-alt.test";
/// In `10.1.2.0/24` (region INACTIVE) and `10.0.0.0/8` (region FALLBACK).
pub const CLIENT_IN_INACTIVE_REGION: &str = "10.1.2.3";
/// In `10.2.2.0/24` (region whose only edge has `availability: false`) and `10.0.0.0/8`.
pub const CLIENT_WITH_UNAVAILABLE_EDGE: &str = "10.2.2.3";
/// The edge of region FALLBACK (`10.0.0.0/8`).
pub const EDGE_FALLBACK: &str = "fallback.test";
/// In no subnet at all.
pub const CLIENT_NOWHERE: &str = "203.0.113.9";

/// Live path of `epg_1` (HLS, no encryption) in [`standard`].
pub const LIVE_PATH: &str = "/live/one.m3u8";
/// A live request for `epg_1` in HLS, without encryption.
pub const LIVE: &str = "/btv/live/hls/epg_1";
/// Where [`LIVE`] from 127.0.0.1 is sent with [`standard`].
pub const LIVE_LOCATION: &str = "http://edge-a.test/live/one.m3u8";
pub const VERSION: &str = "v1";

/// Entity counts of every snapshot built here (for `/snapshot`).
pub const COUNTS: [(&str, u64); 8] = [
    ("regions", 7),
    ("subnets", 7),
    ("server_groups", 7),
    ("servers", 8),
    ("linear_channels", 2),
    ("tv_streams", 4),
    ("programs", 2),
    ("program_records", 3),
];

fn edge(id: i64, domain: &str, port: u16, available: bool) -> Value {
    json!({
        "id": id, "type": "EDGE", "domain_name": domain, "ip": "192.0.2.200", "port": port,
        "status": "ACTIVE", "availability": available, "weight": 10, "prefix": null,
        "healthcheck_enabled": true, "healthcheck_path": "/healthcheck"
    })
}

/// The standard snapshot with `epg_1`'s HLS stream at `live_path` and the given version.
pub fn snapshot(version: &str, live_path: &str) -> Value {
    json!({
        "version": version,
        "regions": [
            {"id": 1, "name": "MAIN", "status": "ACTIVE", "server_group_ids": [1]},
            {"id": 2, "name": "V6", "status": "ACTIVE", "server_group_ids": [2]},
            {"id": 3, "name": "TLS", "status": "ACTIVE", "server_group_ids": [3]},
            {"id": 4, "name": "ALT", "status": "ACTIVE", "server_group_ids": [4]},
            {"id": 5, "name": "OFF", "status": "INACTIVE", "server_group_ids": [5]},
            {"id": 6, "name": "DOWN", "status": "ACTIVE", "server_group_ids": [6]},
            {"id": 7, "name": "FALLBACK", "status": "ACTIVE", "server_group_ids": [7]}
        ],
        "subnets": [
            {"id": 1, "name": "loopback-v4", "cidr": "127.0.0.1/32", "region_id": 1},
            {"id": 2, "name": "loopback-v6", "cidr": "::1/128", "region_id": 2},
            {"id": 3, "name": "tls", "cidr": "192.0.2.0/24", "region_id": 3},
            {"id": 4, "name": "alt", "cidr": "198.51.100.0/24", "region_id": 4},
            {"id": 5, "name": "inactive", "cidr": "10.1.2.0/24", "region_id": 5},
            {"id": 6, "name": "unavailable", "cidr": "10.2.2.0/24", "region_id": 6},
            {"id": 7, "name": "wide", "cidr": "10.0.0.0/8", "region_id": 7}
        ],
        "server_groups": [
            {"id": 1, "name": "g-main", "status": "ACTIVE", "server_ids": [101]},
            {"id": 2, "name": "g-v6", "status": "ACTIVE", "server_ids": [102]},
            {"id": 3, "name": "g-tls", "status": "ACTIVE", "server_ids": [103]},
            {"id": 4, "name": "g-alt", "status": "ACTIVE", "server_ids": [104]},
            {"id": 5, "name": "g-off", "status": "ACTIVE", "server_ids": [105]},
            {"id": 6, "name": "g-down", "status": "ACTIVE", "server_ids": [106]},
            {"id": 7, "name": "g-fallback", "status": "ACTIVE", "server_ids": [107]}
        ],
        "servers": [
            edge(101, EDGE_V4, 80, true),
            edge(102, EDGE_V6, 80, true),
            edge(103, EDGE_TLS, 443, true),
            edge(104, EDGE_ALT, 8080, true),
            edge(105, "edge-in-inactive-region.test", 80, true),
            edge(106, "edge-unavailable.test", 80, false),
            edge(107, EDGE_FALLBACK, 80, true),
            {"id": 201, "type": "DVR", "domain_name": "dvr-1.test", "ip": "192.0.2.201",
             "port": 80, "status": "ACTIVE", "availability": true, "weight": 10,
             "prefix": "dvrpfx"}
        ],
        "linear_channels": [
            {"id": 1, "epg_id": "epg_1", "name": "One", "code_name": "one", "dvr_enabled": true},
            {"id": 2, "epg_id": "epg_2", "name": "Two", "code_name": "two", "dvr_enabled": false}
        ],
        "tv_streams": [
            {"id": 11, "linear_channel_id": 1, "stream_path": live_path, "status": "ACTIVE",
             "protocol": "HLS", "encryption": "NONE"},
            {"id": 12, "linear_channel_id": 1, "stream_path": "/live/one-wv.mpd",
             "status": "ACTIVE", "protocol": "MPD", "encryption": "WIDEVINE"},
            {"id": 21, "linear_channel_id": 2, "stream_path": "/live/two-cenc.m3u8",
             "status": "ACTIVE", "protocol": "HLS", "encryption": "CENC"},
            {"id": 22, "linear_channel_id": 2, "stream_path": "/live/two-cenc.mpd",
             "status": "ACTIVE", "protocol": "MPD", "encryption": "CENC"}
        ],
        "programs": [
            {"id": 1, "linear_channel_id": 1, "epg_id": "prog_1", "name": "Done"},
            {"id": 2, "linear_channel_id": 1, "epg_id": "prog_run", "name": "Still recording"}
        ],
        "program_records": [
            {"id": 1, "program_id": 1, "server_id": 201, "status": "COMPLETED",
             "protocol": "HLS", "encryption": "NONE", "path": "rec//one.m3u8"},
            {"id": 2, "program_id": 2, "server_id": 201, "status": "RUNNING",
             "protocol": "HLS", "encryption": "NONE", "path": "rec/run.m3u8"},
            {"id": 3, "program_id": 1, "server_id": 201, "status": "COMPLETED",
             "protocol": "MPD", "encryption": "CENC", "path": "rec/one-cenc.mpd"}
        ]
    })
}

/// [`snapshot`] with version [`VERSION`] and `epg_1` at [`LIVE_PATH`].
pub fn standard() -> Value {
    snapshot(VERSION, LIVE_PATH)
}
