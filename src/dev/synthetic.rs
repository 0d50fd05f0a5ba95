//! A deterministic generator of synthetic routing snapshots, used by the benchmarks,
//! `examples/compile_snapshot.rs` and `cti-kaltura-snapshot gen` (each includes this file with
//! `#[path]`: test data is not part of the shipped library). The document is built as
//! one JSON string in memory, from a seed.
//!
//! Shape at [`Scale::FULL`]: 100,000 subnets (80% IPv4 in /16../24, 20% IPv6 in /32../64,
//! nested inside their /16 or /32 block so fallback chains exist), 200 regions (10 of them
//! without an eligible edge, used only under an aggregate so that clients fall back), 60
//! server groups, 40 EDGE servers and 4 DVRs, 10,000 channels with 6 live streams each
//! (HLS/MPD x NONE/WIDEVINE/PLAYREADY, every fifth channel with 2 more for CENC) and
//! 125,000 programs with 8 COMPLETED catch-up records each (HLS/MPD x 4 encryptions) spread
//! over the DVRs: 1,000,000 records.

use cti_kaltura::config::{parse_cidr, TrustedProxies, DEFAULT_TRUSTED_PROXIES};
use cti_kaltura::routing::RoutingPolicy;
use std::collections::HashSet;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The seed of every generated document and request list.
pub const SEED: u64 = 0x5eed_2019;

/// Catch-up records per program: HLS/MPD x NONE/CENC/WIDEVINE/PLAYREADY.
pub const RECORDS_PER_PROGRAM: usize = 8;
/// Every `CENC_EVERY`-th channel also has CENC streams.
pub const CENC_EVERY: usize = 5;
/// Every `DEAD_REGION_EVERY`-th region has no eligible edge.
pub const DEAD_REGION_EVERY: usize = 20;

/// How big a document to generate.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub subnets: usize,
    /// Share of the subnets that are IPv6, in percent.
    pub v6_percent: usize,
    pub regions: usize,
    pub server_groups: usize,
    pub edges: usize,
    pub dvrs: usize,
    pub channels: usize,
    pub programs: usize,
    /// Client addresses drawn from the subnets (a power of two).
    pub client_ips: usize,
}

impl Scale {
    /// The benchmark document.
    pub const FULL: Scale = Scale {
        subnets: 100_000,
        v6_percent: 20,
        regions: 200,
        server_groups: 60,
        edges: 40,
        dvrs: 4,
        channels: 10_000,
        programs: 125_000,
        client_ips: 1 << 16,
    };

    /// A small document with the same shape, for `cargo test --all-targets` (debug builds).
    pub const SMOKE: Scale = Scale {
        subnets: 2_000,
        v6_percent: 20,
        regions: 40,
        server_groups: 12,
        edges: 20,
        dvrs: 2,
        channels: 200,
        programs: 1_000,
        client_ips: 1 << 10,
    };
}

/// What was generated, with counts as written into the document.
pub struct Generated {
    pub scale: Scale,
    pub json: String,
    pub counts: Counts,
    /// Addresses inside the generated subnets (a random host of a random subnet each).
    pub client_ips: Vec<IpAddr>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub regions: usize,
    pub dead_regions: usize,
    pub subnets: usize,
    pub v4_subnets: usize,
    pub v6_subnets: usize,
    pub server_groups: usize,
    pub servers: usize,
    pub linear_channels: usize,
    pub tv_streams: usize,
    pub programs: usize,
    pub program_records: usize,
}

/// A generated subnet; IPv4 addresses sit in the low 32 bits.
#[derive(Debug, Clone, Copy)]
struct Net {
    addr: u128,
    len: u8,
    v4: bool,
    region: usize,
}

impl Net {
    fn cidr(&self, out: &mut String) {
        if self.v4 {
            let _ = write!(out, "{}/{}", Ipv4Addr::from(self.addr as u32), self.len);
        } else {
            let _ = write!(out, "{}/{}", Ipv6Addr::from(self.addr), self.len);
        }
    }

    /// A random address inside this network.
    fn random_host(&self, rng: &mut fastrand::Rng) -> IpAddr {
        if self.v4 {
            let host = !v4_mask(self.len);
            IpAddr::V4(Ipv4Addr::from(self.addr as u32 | (rng.u32(..) & host)))
        } else {
            let host = !v6_mask(self.len);
            IpAddr::V6(Ipv6Addr::from(self.addr | (rng.u128(..) & host)))
        }
    }
}

fn v4_mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

fn v6_mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    }
}

/// First octets of public-looking IPv4 space (as in `conf/gen_routing.py`).
const V4_FIRST_OCTETS: [u32; 34] = [
    2, 5, 31, 37, 46, 62, 77, 78, 79, 80, 81, 82, 83, 85, 86, 87, 88, 89, 91, 92, 93, 94, 95, 109,
    145, 176, 178, 185, 188, 194, 195, 212, 213, 217,
];

/// Regions of the networks of one block: the aggregate (if any) gets the block's home
/// region; the others mostly the home region, sometimes another live region, and, when an
/// aggregate encloses them, sometimes a dead region (so that clients fall back).
struct RegionPicker<'a> {
    live: &'a [usize],
    dead: &'a [usize],
}

impl RegionPicker<'_> {
    fn pick(&self, rng: &mut fastrand::Rng, home: usize, enclosed: bool) -> usize {
        let roll = rng.u32(0..100);
        if enclosed && roll < 8 && !self.dead.is_empty() {
            self.dead[rng.usize(..self.dead.len())]
        } else if roll < 75 {
            home
        } else {
            self.live[rng.usize(..self.live.len())]
        }
    }
}

/// One IPv4 /16 block: maybe the /16 itself, 1-4 networks of /17../22 and 8-28 of /22../24.
fn v4_block(rng: &mut fastrand::Rng, base: u32, regions: &RegionPicker<'_>, out: &mut Vec<Net>) {
    let home = regions.live[rng.usize(..regions.live.len())];
    let aggregate = rng.u32(0..100) < 60;
    let mut seen = HashSet::new();
    let mut push = |rng: &mut fastrand::Rng, addr: u32, len: u8, region: Option<usize>| {
        let addr = addr & v4_mask(len);
        if seen.insert((addr, len)) {
            let region = region.unwrap_or_else(|| regions.pick(rng, home, aggregate));
            out.push(Net {
                addr: addr.into(),
                len,
                v4: true,
                region,
            });
        }
    };
    if aggregate {
        push(rng, base, 16, Some(home));
    }
    for _ in 0..rng.usize(1..=4) {
        let len = rng.u8(17..=22);
        let addr = base | rng.u32(0..1 << 16);
        push(rng, addr, len, None);
    }
    for _ in 0..rng.usize(8..=28) {
        let len = match rng.u32(0..100) {
            0..=69 => 24,
            70..=84 => 23,
            _ => 22,
        };
        let addr = base | rng.u32(0..1 << 16);
        push(rng, addr, len, None);
    }
}

/// One IPv6 /32 block: maybe the /32 itself, 1-3 networks of /36../48 and 4-16 of /48../64.
fn v6_block(rng: &mut fastrand::Rng, base: u128, regions: &RegionPicker<'_>, out: &mut Vec<Net>) {
    let home = regions.live[rng.usize(..regions.live.len())];
    let aggregate = rng.u32(0..100) < 60;
    let below_32 = !v6_mask(32);
    let mut seen = HashSet::new();
    let mut push = |rng: &mut fastrand::Rng, addr: u128, len: u8, region: Option<usize>| {
        let addr = addr & v6_mask(len);
        if seen.insert((addr, len)) {
            let region = region.unwrap_or_else(|| regions.pick(rng, home, aggregate));
            out.push(Net {
                addr,
                len,
                v4: false,
                region,
            });
        }
    };
    if aggregate {
        push(rng, base, 32, Some(home));
    }
    for _ in 0..rng.usize(1..=3) {
        let len = [36, 40, 44, 48][rng.usize(..4)];
        let addr = base | (rng.u128(..) & below_32);
        push(rng, addr, len, None);
    }
    for _ in 0..rng.usize(4..=16) {
        let len = [48, 56, 56, 60, 64, 64][rng.usize(..6)];
        let addr = base | (rng.u128(..) & below_32);
        push(rng, addr, len, None);
    }
}

fn subnets(rng: &mut fastrand::Rng, scale: &Scale, regions: &RegionPicker<'_>) -> Vec<Net> {
    let v6_target = scale.subnets * scale.v6_percent / 100;
    let v4_target = scale.subnets - v6_target;

    let mut v4 = Vec::with_capacity(v4_target + 64);
    let mut blocks = HashSet::new();
    while v4.len() < v4_target {
        let first = V4_FIRST_OCTETS[rng.usize(..V4_FIRST_OCTETS.len())];
        let base = first << 24 | rng.u32(0..256) << 16;
        assert!(
            blocks.len() < 256 * V4_FIRST_OCTETS.len(),
            "IPv4 space exhausted"
        );
        if blocks.insert(base) {
            v4_block(rng, base, regions, &mut v4);
        }
    }
    // Blocks list their aggregate first, so this never leaves a dead region uncovered.
    v4.truncate(v4_target);

    let mut v6 = Vec::with_capacity(v6_target + 32);
    let mut blocks = HashSet::new();
    while v6.len() < v6_target {
        // 2a00::/12, RIPE's space: 2a0X:XXXX::/32.
        let base = u128::from(0x2a00_0000 | rng.u32(0..1 << 20)) << 96;
        if blocks.insert(base) {
            v6_block(rng, base, regions, &mut v6);
        }
    }
    v6.truncate(v6_target);

    let mut all = v4;
    all.extend(v6);
    rng.shuffle(&mut all);
    all
}

/// `(protocol, encryption, codec in the URL)` of every live stream of a channel.
const LIVE_CODECS: [(&str, &str, &str); 6] = [
    ("HLS", "NONE", "hls"),
    ("HLS", "WIDEVINE", "hls_wv"),
    ("HLS", "PLAYREADY", "hls_pr"),
    ("MPD", "NONE", "mpd"),
    ("MPD", "WIDEVINE", "mpd_wv"),
    ("MPD", "PLAYREADY", "mpd_pr"),
];
const CENC_CODECS: [(&str, &str, &str); 2] =
    [("HLS", "CENC", "hls_cenc"), ("MPD", "CENC", "mpd_cenc")];
/// Catch-up records cover every combination.
const RECORD_CODECS: [(&str, &str, &str); RECORDS_PER_PROGRAM] = [
    ("HLS", "NONE", "hls"),
    ("HLS", "CENC", "hls_cenc"),
    ("HLS", "WIDEVINE", "hls_wv"),
    ("HLS", "PLAYREADY", "hls_pr"),
    ("MPD", "NONE", "mpd"),
    ("MPD", "CENC", "mpd_cenc"),
    ("MPD", "WIDEVINE", "mpd_wv"),
    ("MPD", "PLAYREADY", "mpd_pr"),
];

fn manifest(protocol: &str) -> &'static str {
    if protocol == "HLS" {
        "index.m3u8"
    } else {
        "manifest.mpd"
    }
}

/// The epg id of channel `id` (1-based).
pub fn channel_epg_id(id: usize) -> String {
    format!("{id:09}")
}

/// The epg id of program `id` (1-based): 15 digits, like the admin's programme ids.
pub fn program_epg_id(id: usize) -> String {
    format!("{}", 297_000_000_000_000u64 + id as u64)
}

/// Whether channel `id` has CENC streams.
pub fn has_cenc(id: usize) -> bool {
    id % CENC_EVERY == 0
}

/// Appends `,"key":[` (or `"key":[` for the first key) and the items, each written by
/// `item` after a comma when needed, then `]`.
fn array(json: &mut String, key: &str, n: usize, mut item: impl FnMut(&mut String, usize)) {
    let _ = write!(json, ",\"{key}\":[");
    for i in 0..n {
        if i > 0 {
            json.push(',');
        }
        item(json, i);
    }
    json.push(']');
}

fn id_list(json: &mut String, ids: &[usize]) {
    json.push('[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        let _ = write!(json, "{id}");
    }
    json.push(']');
}

/// Generates the document and the client addresses.
pub fn generate(scale: &Scale, seed: u64) -> Generated {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut counts = Counts::default();
    // About 170 bytes per record dominate; reserve once.
    let mut json = String::with_capacity(
        scale.programs * RECORDS_PER_PROGRAM * 175 + scale.channels * 900 + scale.subnets * 80,
    );
    json.push_str("{\"version\":\"bench-1\"");

    // Servers: DVRs are 1..=dvrs, edges follow. Every tenth edge is ineligible (INACTIVE or
    // unavailable), so a window of 4 consecutive edges holds at most one.
    let dvr_ids: Vec<usize> = (1..=scale.dvrs).collect();
    let edge_ids: Vec<usize> = (scale.dvrs + 1..=scale.dvrs + scale.edges).collect();
    array(&mut json, "servers", scale.dvrs + scale.edges, |json, i| {
        let id = i + 1;
        if i < scale.dvrs {
            let _ = write!(
                json,
                "{{\"id\":{id},\"type\":\"DVR\",\"domain_name\":\"dvr{id}.cdn.bench.test\",\
                 \"ip\":\"192.0.2.{id}\",\"port\":80,\"status\":\"ACTIVE\",\"availability\":true,\
                 \"weight\":30,\"prefix\":\"dvr{id}\",\"healthcheck_enabled\":true,\
                 \"healthcheck_path\":\"/healthcheck\"}}"
            );
        } else {
            let k = i - scale.dvrs;
            let port = match k % 7 {
                0 => 443,
                3 => 8080,
                _ => 80,
            };
            let status = if k % 20 == 3 { "INACTIVE" } else { "ACTIVE" };
            let available = k % 20 != 13;
            let weight = rng.u32(10..=100);
            let _ = write!(
                json,
                "{{\"id\":{id},\"type\":\"EDGE\",\"domain_name\":\"edge{k}.cdn.bench.test\",\
                 \"ip\":\"198.51.100.{k}\",\"port\":{port},\"status\":\"{status}\",\
                 \"availability\":{available},\"weight\":{weight},\"prefix\":null,\
                 \"healthcheck_enabled\":true,\"healthcheck_path\":\"/healthcheck\"}}"
            );
        }
    });
    counts.servers = scale.dvrs + scale.edges;

    // Server groups: 4 consecutive edges and one DVR each; the last group is INACTIVE.
    let inactive_group = scale.server_groups;
    array(
        &mut json,
        "server_groups",
        scale.server_groups,
        |json, g| {
            let mut members: Vec<usize> = (0..4)
                .map(|j| edge_ids[(g * 3 + j) % edge_ids.len()])
                .collect();
            members.push(dvr_ids[g % dvr_ids.len()]);
            let status = if g + 1 == inactive_group {
                "INACTIVE"
            } else {
                "ACTIVE"
            };
            let _ = write!(
                json,
                "{{\"id\":{},\"name\":\"group{}\",\"status\":\"{status}\",\"server_ids\":",
                g + 1,
                g + 1
            );
            id_list(json, &members);
            json.push('}');
        },
    );
    counts.server_groups = scale.server_groups;

    // Regions: every twentieth is dead (INACTIVE, or listing only the INACTIVE group).
    let mut live = Vec::new();
    let mut dead = Vec::new();
    array(&mut json, "regions", scale.regions, |json, r| {
        let id = r + 1;
        let (status, groups) = if id % DEAD_REGION_EVERY == 0 {
            dead.push(id);
            if (id / DEAD_REGION_EVERY) % 2 == 1 {
                ("INACTIVE", vec![rng.usize(1..inactive_group)])
            } else {
                ("ACTIVE", vec![inactive_group])
            }
        } else {
            live.push(id);
            let mut groups: Vec<usize> = (0..rng.usize(1..=3))
                .map(|_| rng.usize(1..inactive_group))
                .collect();
            groups.sort_unstable();
            groups.dedup();
            ("ACTIVE", groups)
        };
        let _ = write!(
            json,
            "{{\"id\":{id},\"name\":\"region{id}\",\"status\":\"{status}\",\"server_group_ids\":"
        );
        id_list(json, &groups);
        json.push('}');
    });
    counts.regions = scale.regions;
    counts.dead_regions = dead.len();

    // Subnets.
    let nets = subnets(
        &mut rng,
        scale,
        &RegionPicker {
            live: &live,
            dead: &dead,
        },
    );
    array(&mut json, "subnets", nets.len(), |json, i| {
        let _ = write!(
            json,
            "{{\"id\":{},\"name\":\"net{}\",\"cidr\":\"",
            i + 1,
            i + 1
        );
        nets[i].cidr(json);
        let _ = write!(json, "\",\"region_id\":{}}}", nets[i].region);
    });
    counts.subnets = nets.len();
    counts.v4_subnets = nets.iter().filter(|n| n.v4).count();
    counts.v6_subnets = nets.len() - counts.v4_subnets;

    // Channels and their live streams.
    array(&mut json, "linear_channels", scale.channels, |json, c| {
        let id = c + 1;
        let epg = channel_epg_id(id);
        let group = rng.usize(1..inactive_group);
        let _ = write!(
            json,
            "{{\"id\":{id},\"epg_id\":\"{epg}\",\"name\":\"Channel {id}\",\
             \"code_name\":\"ch{id}\",\"dvr_enabled\":true,\"server_group_id\":{group}}}"
        );
    });
    counts.linear_channels = scale.channels;
    let mut streams = Vec::with_capacity(scale.channels * 8);
    for c in 1..=scale.channels {
        let extra: &[_] = if has_cenc(c) { &CENC_CODECS } else { &[] };
        for codec in LIVE_CODECS.iter().chain(extra) {
            streams.push((c, *codec));
        }
    }
    array(&mut json, "tv_streams", streams.len(), |json, i| {
        let (c, (protocol, encryption, codec)) = streams[i];
        let epg = channel_epg_id(c);
        let _ = write!(
            json,
            "{{\"id\":{},\"linear_channel_id\":{c},\"stream_path\":\"/live/{epg}/{codec}/{}\",\
             \"status\":\"ACTIVE\",\"protocol\":\"{protocol}\",\"encryption\":\"{encryption}\"}}",
            i + 1,
            manifest(protocol)
        );
    });
    counts.tv_streams = streams.len();

    // Programs and their catch-up records (record ids in program order, DVRs round robin).
    array(&mut json, "programs", scale.programs, |json, p| {
        let id = p + 1;
        let _ = write!(
            json,
            "{{\"id\":{id},\"linear_channel_id\":{},\"epg_id\":\"{}\",\"name\":\"Program {id}\"}}",
            p % scale.channels + 1,
            program_epg_id(id)
        );
    });
    counts.programs = scale.programs;
    let records = scale.programs * RECORDS_PER_PROGRAM;
    array(&mut json, "program_records", records, |json, i| {
        let program = i / RECORDS_PER_PROGRAM + 1;
        let (protocol, encryption, codec) = RECORD_CODECS[i % RECORDS_PER_PROGRAM];
        let _ = write!(
            json,
            "{{\"id\":{},\"program_id\":{program},\"server_id\":{},\"status\":\"COMPLETED\",\
             \"protocol\":\"{protocol}\",\"encryption\":\"{encryption}\",\
             \"path\":\"{}/{codec}/{}\"}}",
            i + 1,
            dvr_ids[i % dvr_ids.len()],
            program_epg_id(program),
            manifest(protocol)
        );
    });
    counts.program_records = records;
    json.push('}');

    let client_ips = (0..scale.client_ips)
        .map(|_| nets[rng.usize(..nets.len())].random_host(&mut rng))
        .collect();
    Generated {
        scale: *scale,
        json,
        counts,
        client_ips,
    }
}

/// The router's configuration defaults for the settings the decision reads: X-Real-IP
/// believed from loopback only, query strings appended. Fields this file does not name (if
/// the policy grows any) keep `RoutingPolicy::default()`.
#[allow(clippy::needless_update)]
pub fn default_policy() -> RoutingPolicy {
    RoutingPolicy {
        trusted_proxies: TrustedProxies(
            DEFAULT_TRUSTED_PROXIES
                .iter()
                .map(|s| parse_cidr(s).expect("valid default"))
                .collect(),
        ),
        append_query_string: true,
        ..RoutingPolicy::default()
    }
}

/// Request paths of each kind, drawn at random (`n` of each).
impl Generated {
    /// Live paths of existing channels in a codec they carry, half with a manifest suffix.
    pub fn live_paths(&self, rng: &mut fastrand::Rng, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let c = rng.usize(1..=self.scale.channels);
                let (protocol, _, codec) = if has_cenc(c) && rng.u32(0..4) == 0 {
                    CENC_CODECS[rng.usize(..2)]
                } else {
                    LIVE_CODECS[rng.usize(..6)]
                };
                let suffix = match (rng.bool(), protocol) {
                    (false, _) => "",
                    (true, "HLS") => ".m3u8",
                    (true, _) => ".mpd",
                };
                format!("/btv/live/{codec}/{}{suffix}", channel_epg_id(c))
            })
            .collect()
    }

    /// Catch-up paths of existing programs, any codec.
    pub fn catchup_paths(&self, rng: &mut fastrand::Rng, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let p = rng.usize(1..=self.scale.programs);
                let (_, _, codec) = RECORD_CODECS[rng.usize(..RECORDS_PER_PROGRAM)];
                format!("/btv/catchup/{codec}/{}", program_epg_id(p))
            })
            .collect()
    }

    /// VOD paths, one in four with a doubled slash to normalise.
    pub fn vod_paths(&self, rng: &mut fastrand::Rng, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let slash = if rng.u32(0..4) == 0 { "//" } else { "/" };
                format!(
                    "/vod/films{slash}{}/{}/index.m3u8",
                    rng.u32(1..100_000),
                    ["hls", "hls_wv", "mpd", "mpd_wv"][rng.usize(..4)]
                )
            })
            .collect()
    }

    /// Well-formed live paths of channels that do not exist (404).
    pub fn unknown_channel_paths(&self, rng: &mut fastrand::Rng, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let c = self.scale.channels + rng.usize(1..=1_000_000);
                let (_, _, codec) = LIVE_CODECS[rng.usize(..6)];
                format!("/btv/live/{codec}/{}", channel_epg_id(c))
            })
            .collect()
    }

    /// Paths that do not fit the grammar (400).
    pub fn bad_paths(&self, rng: &mut fastrand::Rng, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let c = channel_epg_id(rng.usize(1..=self.scale.channels));
                match rng.u32(0..6) {
                    0 => format!("/btv/live/hls_xx/{c}"),
                    1 => format!("/btv/life/hls/{c}"),
                    2 => format!("/btv/live/hls/{c}.m3u8/x"),
                    3 => "/favicon.ico".to_string(),
                    4 => format!("/vod/../etc/{c}"),
                    _ => format!("/btv/catchup/mpd_wv/{c}!"),
                }
            })
            .collect()
    }
}
