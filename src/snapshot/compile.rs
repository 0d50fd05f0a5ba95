//! Compiling a document into a [`Snapshot`]: per-entity validation with quarantine, then the
//! indexes the request path reads.

use super::model::*;
use super::prefix_table::PrefixTable;
use super::weighted::WeightedTable;
use super::*;
use crate::vocab::path::{is_epg_id, is_path_like, normalize_path_into};
use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeSet;

/// An entity skipped (quarantined) or a reference dropped, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The array it came from (`subnets`, `servers`, …).
    pub entity: &'static str,
    /// Position in that array.
    pub index: usize,
    pub id: Option<Id>,
    pub reason: String,
    /// True when the entity was skipped; false when only one of its references was dropped.
    pub quarantined: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.quarantined {
            "skipped"
        } else {
            "kept, reference dropped"
        };
        match self.id {
            Some(id) => write!(
                f,
                "{}[{}] id={}: {} ({what})",
                self.entity, self.index, id, self.reason
            ),
            None => write!(
                f,
                "{}[{}]: {} ({what})",
                self.entity, self.index, self.reason
            ),
        }
    }
}

struct Problems(Vec<Problem>);

impl Problems {
    fn skip(
        &mut self,
        entity: &'static str,
        index: usize,
        id: Option<Id>,
        reason: impl Into<String>,
    ) {
        self.0.push(Problem {
            entity,
            index,
            id,
            reason: reason.into(),
            quarantined: true,
        });
    }
    fn drop_ref(&mut self, entity: &'static str, index: usize, id: Id, reason: impl Into<String>) {
        self.0.push(Problem {
            entity,
            index,
            id: Some(id),
            reason: reason.into(),
            quarantined: false,
        });
    }
}

#[derive(Deserialize)]
struct IdOnly {
    id: Option<serde_json::Value>,
}

/// Parses every raw entity of one array; unparsable ones and duplicate ids are quarantined.
fn parse_all<'a, T: Deserialize<'a>>(
    entity: &'static str,
    raws: &[&'a RawValue],
    id_of: impl Fn(&T) -> Id,
    problems: &mut Problems,
) -> Vec<(usize, T)> {
    let mut seen = rustc_hash::FxHashSet::default();
    let mut out = Vec::with_capacity(raws.len());
    for (index, raw) in raws.iter().enumerate() {
        match serde_json::from_str::<T>(raw.get()) {
            Ok(item) => {
                let id = id_of(&item);
                if seen.insert(id) {
                    out.push((index, item));
                } else {
                    problems.skip(entity, index, Some(id), "duplicate id");
                }
            }
            Err(e) => {
                let id = serde_json::from_str::<IdOnly>(raw.get())
                    .ok()
                    .and_then(|x| x.id)
                    .and_then(|v| v.as_i64());
                problems.skip(entity, index, id, e.to_string());
            }
        }
    }
    out
}

fn is_domain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn normalized(path: &str) -> Box<str> {
    let mut out = String::with_capacity(path.len() + 1);
    normalize_path_into(&mut out, path);
    out.into()
}

fn base_urls(domain: &str, port: u16) -> (Box<str>, Box<str>) {
    let live = match port {
        443 => format!("https://{domain}"),
        80 => format!("http://{domain}"),
        other => format!("http://{domain}:{other}"),
    };
    (live.into(), format!("http://{domain}").into())
}

/// Compiles a parsed document. Never fails: bad entities are quarantined and listed in
/// [`SnapshotInfo::problems`].
pub fn compile(doc: &Document<'_>, source: &str) -> Snapshot {
    let mut problems = Problems(Vec::new());

    // Servers.
    let raw_servers = parse_all::<RawServer>("servers", &doc.servers, |s| s.id, &mut problems);
    let mut servers: Vec<Server> = Vec::with_capacity(raw_servers.len());
    let mut dvr_prefix: FxHashMap<Id, Option<&str>> = FxHashMap::default();
    let mut server_index: FxHashMap<Id, u32> = FxHashMap::default();
    let mut raw_server_prefixes: Vec<(Id, Option<std::borrow::Cow<str>>)> = Vec::new();
    for (index, s) in raw_servers {
        let server_type = match s.server_type.as_deref() {
            Some("EDGE") => ServerType::Edge,
            Some("DVR") => ServerType::Dvr,
            _ => ServerType::Other,
        };
        let domain = s.domain_name.trim();
        if !is_domain_name(domain) {
            problems.skip(
                "servers",
                index,
                Some(s.id),
                format!("domain_name {:?} is not a host name", s.domain_name),
            );
            continue;
        }
        let Ok(port) =
            u16::try_from(s.port)
                .map_err(|_| ())
                .and_then(|p| if p == 0 { Err(()) } else { Ok(p) })
        else {
            problems.skip(
                "servers",
                index,
                Some(s.id),
                format!("port {} is not 1-65535", s.port),
            );
            continue;
        };
        if server_type == ServerType::Edge && s.weight <= 0 {
            problems.skip(
                "servers",
                index,
                Some(s.id),
                format!("weight {} must be > 0", s.weight),
            );
            continue;
        }
        let ip = match s.ip.as_deref().map(str::trim).filter(|ip| !ip.is_empty()) {
            None => None,
            Some(text) => match text.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    problems.skip(
                        "servers",
                        index,
                        Some(s.id),
                        format!("ip {text:?} is not an IP address"),
                    );
                    continue;
                }
            },
        };
        if let Some(prefix) = s.prefix.as_deref().filter(|p| !p.is_empty()) {
            if !is_path_like(prefix) {
                problems.skip(
                    "servers",
                    index,
                    Some(s.id),
                    format!("prefix {prefix:?} is not a path"),
                );
                continue;
            }
        }
        let domain_lower = domain.to_ascii_lowercase();
        let (live_base, http_base) = base_urls(&domain_lower, port);
        server_index.insert(s.id, servers.len() as u32);
        if server_type == ServerType::Dvr {
            raw_server_prefixes.push((s.id, s.prefix.clone()));
        }
        servers.push(Server {
            id: s.id,
            server_type,
            domain_name: domain_lower.into(),
            ip,
            port,
            active: is_status(&s.status, "ACTIVE"),
            available: s.availability,
            weight: s.weight.max(0) as u64,
            healthcheck_enabled: s.healthcheck_enabled,
            healthcheck_path: s.healthcheck_path.as_deref().map(Into::into),
            live_base,
            http_base,
            health: Default::default(),
        });
    }
    for (id, prefix) in &raw_server_prefixes {
        dvr_prefix.insert(*id, prefix.as_deref());
    }

    // Server groups: dangling server ids are dropped, the group is kept.
    let raw_groups =
        parse_all::<RawServerGroup>("server_groups", &doc.server_groups, |g| g.id, &mut problems);
    let mut group_edges: FxHashMap<Id, (bool, Vec<u32>)> = FxHashMap::default();
    for (index, g) in &raw_groups {
        let mut members = Vec::new();
        for sid in &g.server_ids {
            match server_index.get(sid) {
                Some(&i) => members.push(i),
                None => problems.drop_ref(
                    "server_groups",
                    *index,
                    g.id,
                    format!("server_ids: no server {sid}"),
                ),
            }
        }
        let active = is_status(&g.status, "ACTIVE");
        group_edges.insert(g.id, (active, members));
    }

    // Regions: eligible edges of their ACTIVE groups.
    let raw_regions = parse_all::<RawRegion>("regions", &doc.regions, |r| r.id, &mut problems);
    let mut regions = Vec::with_capacity(raw_regions.len());
    let mut region_index: FxHashMap<Id, u32> = FxHashMap::default();
    for (index, r) in &raw_regions {
        let active = is_status(&r.status, "ACTIVE");
        let mut eligible = BTreeSet::new();
        let mut groups = Vec::new();
        for gid in &r.server_group_ids {
            if let Some((active, members)) = group_edges.get(gid) {
                groups.push(GroupMembers {
                    id: *gid,
                    active: *active,
                    servers: members.clone().into(),
                });
            }
            match group_edges
                .get(gid)
                .filter(|(active, _)| *active)
                .map(|(_, m)| m)
            {
                None if !group_edges.contains_key(gid) => problems.drop_ref(
                    "regions",
                    *index,
                    r.id,
                    format!("server_group_ids: no server group {gid}"),
                ),
                None => {}
                Some(members) => {
                    for &i in members {
                        let s = &servers[i as usize];
                        if s.server_type == ServerType::Edge
                            && s.active
                            && s.available
                            && s.weight > 0
                        {
                            eligible.insert((s.id, i));
                        }
                    }
                }
            }
        }
        let edges = if active {
            WeightedTable::new(
                eligible
                    .iter()
                    .map(|&(_, i)| (i, servers[i as usize].weight)),
            )
        } else {
            WeightedTable::default()
        };
        region_index.insert(r.id, regions.len() as u32);
        regions.push(Region {
            id: r.id,
            name: r.name.as_deref().unwrap_or_default().into(),
            active,
            edges,
            groups: groups.into(),
        });
    }

    // Subnets, grouped into distinct networks.
    let raw_subnets = parse_all::<RawSubnet>("subnets", &doc.subnets, |s| s.id, &mut problems);
    let mut by_network: BTreeMap<IpNet, Vec<Candidate>> = BTreeMap::new();
    let mut subnet_ids = Vec::with_capacity(raw_subnets.len());
    for (index, s) in &raw_subnets {
        let net = match crate::vocab::parse_cidr(&s.cidr) {
            Ok(net) => ipv4_mapped_as_ipv4(net),
            Err(_) => {
                problems.skip(
                    "subnets",
                    *index,
                    Some(s.id),
                    format!("cidr {:?} is not a CIDR", s.cidr),
                );
                continue;
            }
        };
        let Some(&region) = region_index.get(&s.region_id) else {
            problems.skip(
                "subnets",
                *index,
                Some(s.id),
                format!("region_id: no region {}", s.region_id),
            );
            continue;
        };
        subnet_ids.push(s.id);
        by_network.entry(net).or_default().push(Candidate {
            subnet_id: s.id,
            region,
        });
    }
    let (v4, v4_networks, v6, v6_networks) = build_prefix_tables(by_network);

    // Channels and programs: epg ids by id.
    let raw_channels = parse_all::<RawLinearChannel>(
        "linear_channels",
        &doc.linear_channels,
        |c| c.id,
        &mut problems,
    );
    let mut channel_epg: FxHashMap<Id, &str> = FxHashMap::default();
    for (index, c) in &raw_channels {
        if is_epg_id(&c.epg_id) {
            channel_epg.insert(c.id, &c.epg_id);
        } else {
            problems.skip(
                "linear_channels",
                *index,
                Some(c.id),
                format!("epg_id {:?} is not [A-Za-z0-9_]+", c.epg_id),
            );
        }
    }
    let raw_programs = parse_all::<RawProgram>("programs", &doc.programs, |p| p.id, &mut problems);
    let mut program_epg: FxHashMap<Id, &str> = FxHashMap::default();
    for (index, p) in &raw_programs {
        if !channel_epg.contains_key(&p.linear_channel_id) {
            problems.skip(
                "programs",
                *index,
                Some(p.id),
                format!(
                    "linear_channel_id: no linear channel {}",
                    p.linear_channel_id
                ),
            );
        } else if !is_epg_id(&p.epg_id) {
            problems.skip(
                "programs",
                *index,
                Some(p.id),
                format!("epg_id {:?} is not [A-Za-z0-9_]+", p.epg_id),
            );
        } else {
            program_epg.insert(p.id, &p.epg_id);
        }
    }

    // Live streams.
    let raw_streams =
        parse_all::<RawTvStream>("tv_streams", &doc.tv_streams, |s| s.id, &mut problems);
    let mut live = ContentTable::default();
    let mut stream_count = 0;
    for (index, s) in &raw_streams {
        let Some(epg_id) = channel_epg.get(&s.linear_channel_id) else {
            problems.skip(
                "tv_streams",
                *index,
                Some(s.id),
                format!(
                    "linear_channel_id: no linear channel {}",
                    s.linear_channel_id
                ),
            );
            continue;
        };
        if !is_path_like(&s.stream_path) {
            problems.skip(
                "tv_streams",
                *index,
                Some(s.id),
                format!("stream_path {:?} is not a path", s.stream_path),
            );
            continue;
        }
        stream_count += 1;
        let protocol = Protocol::from_data(s.protocol.as_deref());
        let encryption = Encryption::from_data(s.encryption.as_deref());
        if let (true, Some(p), Some(e)) = (is_status(&s.status, "ACTIVE"), protocol, encryption) {
            live.offer(epg_id, p, e, s.id, normalized(&s.stream_path));
        }
    }

    // Catch-up records, with their DVR's prefix resolved.
    let raw_records = parse_all::<RawProgramRecord>(
        "program_records",
        &doc.program_records,
        |r| r.id,
        &mut problems,
    );
    let mut catchup = ContentTable::default();
    let mut record_count = 0;
    let mut dvr_path = String::new();
    for (index, r) in &raw_records {
        let Some(epg_id) = program_epg.get(&r.program_id) else {
            problems.skip(
                "program_records",
                *index,
                Some(r.id),
                format!("program_id: no program {}", r.program_id),
            );
            continue;
        };
        let Some(prefix) = dvr_prefix.get(&r.server_id) else {
            let reason = if server_index.contains_key(&r.server_id) {
                format!("server_id: server {} is not a DVR", r.server_id)
            } else {
                format!("server_id: no server {}", r.server_id)
            };
            problems.skip("program_records", *index, Some(r.id), reason);
            continue;
        };
        if !is_path_like(&r.path) {
            problems.skip(
                "program_records",
                *index,
                Some(r.id),
                format!("path {:?} is not a path", r.path),
            );
            continue;
        }
        record_count += 1;
        let protocol = Protocol::from_data(r.protocol.as_deref());
        let encryption = Encryption::from_data(r.encryption.as_deref());
        if let (true, Some(p), Some(e)) = (is_status(&r.status, "COMPLETED"), protocol, encryption)
        {
            dvr_path.clear();
            dvr_path.push_str("/dvr/");
            dvr_path.push_str(prefix.unwrap_or(""));
            dvr_path.push('/');
            dvr_path.push_str(&r.path);
            catchup.offer(epg_id, p, e, r.id, normalized(&dvr_path));
        }
    }

    let counts = EntityCounts {
        regions: regions.len(),
        subnets: subnet_ids.len(),
        server_groups: raw_groups.len(),
        servers: servers.len(),
        linear_channels: channel_epg.len(),
        tv_streams: stream_count,
        programs: program_epg.len(),
        program_records: record_count,
    };
    Snapshot {
        info: SnapshotInfo {
            version: doc.version_text(),
            source: source.to_string(),
            loaded_at: std::time::SystemTime::now(),
            counts,
            problems: problems.0,
        },
        v4,
        v6,
        v4_networks,
        v6_networks,
        regions,
        servers,
        live,
        catchup,
        subnet_ids: {
            subnet_ids.sort_unstable();
            subnet_ids.into()
        },
    }
}

use std::collections::BTreeMap;

/// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4 network it names, since
/// lookups treat mapped client addresses as IPv4.
fn ipv4_mapped_as_ipv4(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let (Some(v4), true) = (v6.network().to_ipv4_mapped(), v6.prefix_len() >= 96) {
            if let Ok(mapped) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                return IpNet::V4(mapped);
            }
        }
    }
    net
}

type Tables = (
    PrefixTable<u32>,
    Vec<Network>,
    PrefixTable<u128>,
    Vec<Network>,
);

/// Builds both prefix tables and every network's fallback chain.
fn build_prefix_tables(by_network: BTreeMap<IpNet, Vec<Candidate>>) -> Tables {
    let mut v4_nets = Vec::new();
    let mut v6_nets = Vec::new();
    for (net, mut candidates) in by_network {
        candidates.sort_by_key(|c| c.subnet_id);
        match net {
            IpNet::V4(n) => v4_nets.push((
                n.into(),
                candidates,
                (u32::from(n.network()), u32::from(n.broadcast())),
            )),
            IpNet::V6(n) => v6_nets.push((
                n.into(),
                candidates,
                (u128::from(n.network()), u128::from(n.broadcast())),
            )),
        }
    }
    let (v4, v4_networks) = with_chains(v4_nets);
    let (v6, v6_networks) = with_chains(v6_nets);
    (v4, v4_networks, v6, v6_networks)
}

fn with_chains<K: prefix_table::AddrKey>(
    nets: Vec<(IpNet, Vec<Candidate>, (K, K))>,
) -> (PrefixTable<K>, Vec<Network>) {
    let ranges: Vec<(K, K)> = nets.iter().map(|n| n.2).collect();
    let (table, parents) = PrefixTable::build(&ranges);
    let chains: Vec<Box<[Candidate]>> = (0..nets.len())
        .map(|i| {
            let mut chain = Vec::new();
            let mut at = Some(i as u32);
            while let Some(n) = at {
                chain.extend_from_slice(&nets[n as usize].1);
                at = parents[n as usize];
            }
            chain.into()
        })
        .collect();
    let networks = nets
        .into_iter()
        .zip(chains)
        .map(|((cidr, _, _), chain)| Network { cidr, chain })
        .collect();
    (table, networks)
}
