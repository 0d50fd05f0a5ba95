//! The routing snapshot: an immutable, indexed view of the admin's routing data, compiled once
//! off the request path and then only read (prefix table, fallback chains, weighted edge
//! tables, content maps with paths already resolved). The one thing in it that changes is each
//! server's health flag ([`HealthCell`]), which the health registry (`crate::health`) attaches
//! at publish time and the checks flip; it knows nothing of health checks itself.

pub mod affinity;
mod compile;
pub mod diff;
mod health_cell;
mod load;
pub mod model;
pub mod prefix_table;
mod stream_avoid;
pub mod weighted;

pub use compile::{compile, Problem};
pub use load::{load_snapshot, parse_document, Document, LoadError};
pub use model::{Encryption, Id, Protocol};

pub use crate::vocab::canonical_ip;
pub use health_cell::HealthCell;
use ipnet::IpNet;
use prefix_table::PrefixTable;
use rustc_hash::FxHashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;
pub use stream_avoid::StallEffect;
use weighted::WeightedTable;

/// How an edge is chosen among a region's eligible edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    /// At random with probability weight / Σ weights; the value is a uniform random `u64`.
    Random(u64),
    /// Weighted rendezvous hash of the content key, spread over the `spread` best edges.
    Consistent {
        key_hash: u64,
        spread: usize,
        random: u64,
    },
}

/// The outcome of edge selection.
#[derive(Debug, Clone, Copy)]
pub struct EdgeChoice<'a> {
    /// The fallback-chain step (subnet and region) that yielded the edge.
    pub step: Candidate,
    pub edge: &'a Server,
    /// Index of the edge in [`Snapshot::servers`].
    pub edge_index: u32,
    /// True when health left the region no edge and panic mode chose among all of them.
    pub panic: bool,
}

/// What a snapshot is and where it came from, for logs and management endpoints.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    /// The document's `version`, if it had one.
    pub version: Option<String>,
    /// Where it was read from (a file path or a URL).
    pub source: String,
    pub loaded_at: SystemTime,
    pub counts: EntityCounts,
    /// Entities skipped or references dropped, each with its reason.
    pub problems: Vec<Problem>,
}

/// How many entities of each kind were accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityCounts {
    pub regions: usize,
    pub subnets: usize,
    pub server_groups: usize,
    pub servers: usize,
    pub linear_channels: usize,
    pub tv_streams: usize,
    pub programs: usize,
    pub program_records: usize,
}

impl EntityCounts {
    /// Each count with its document array's name (metric labels, JSON summaries).
    pub fn by_kind(&self) -> [(&'static str, usize); 8] {
        [
            ("regions", self.regions),
            ("subnets", self.subnets),
            ("server_groups", self.server_groups),
            ("servers", self.servers),
            ("linear_channels", self.linear_channels),
            ("tv_streams", self.tv_streams),
            ("programs", self.programs),
            ("program_records", self.program_records),
        ]
    }
}

/// One step of a client network's fallback chain: a subnet and its region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub subnet_id: Id,
    /// Index into [`Snapshot::regions`].
    pub region: u32,
}

/// A distinct network with the subnets that name it and its whole fallback chain.
#[derive(Debug, Clone)]
pub struct Network {
    pub cidr: IpNet,
    /// This network's subnets (lowest id first), then those of each enclosing network,
    /// most specific first.
    pub chain: Box<[Candidate]>,
}

#[derive(Debug, Clone)]
pub struct Region {
    pub id: Id,
    pub name: Box<str>,
    pub active: bool,
    /// Eligible edges (ACTIVE group listed by this region, EDGE, ACTIVE, available, weight
    /// > 0), lowest id first; empty when the region is not ACTIVE.
    pub edges: WeightedTable,
    /// The groups the region lists, with every member (for explaining decisions).
    pub groups: Box<[GroupMembers]>,
}

/// A server group as a region sees it.
#[derive(Debug, Clone)]
pub struct GroupMembers {
    pub id: Id,
    pub active: bool,
    /// Indexes into [`Snapshot::servers`], in the group's order.
    pub servers: Box<[u32]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerType {
    Edge,
    Dvr,
    Other,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub id: Id,
    pub server_type: ServerType,
    pub domain_name: Box<str>,
    pub ip: Option<IpAddr>,
    pub port: u16,
    pub active: bool,
    pub available: bool,
    pub weight: u64,
    pub healthcheck_enabled: bool,
    pub healthcheck_path: Option<Box<str>>,
    /// `https://host`, `http://host` or `http://host:port`, for live and catch-up.
    pub live_base: Box<str>,
    /// `http://host`, for VOD and static (always http, no port: a customer rule).
    pub http_base: Box<str>,
    /// The bases of the `https` and `request` location schemes.
    pub scheme_bases: SchemeBases,
    /// Health as the checker sees it; shared with the health registry.
    pub health: Arc<HealthCell>,
}

impl Server {
    #[inline]
    pub fn is_up(&self) -> bool {
        self.health.is_up()
    }
}

const NO_CONTENT: u32 = u32::MAX;

/// For one epg id: the chosen content per protocol and encryption (index into the paths).
#[derive(Debug, Clone, Copy)]
pub struct ContentSlots([[u32; 4]; 2]);

impl Default for ContentSlots {
    fn default() -> Self {
        ContentSlots([[NO_CONTENT; 4]; 2])
    }
}

/// A stream or record path, normalised, with the id of the row it came from.
#[derive(Debug, Clone)]
pub struct ContentPath {
    pub id: Id,
    pub path: Box<str>,
}

/// A content lookup: one table for live streams, one for catch-up records.
#[derive(Debug, Default)]
pub struct ContentTable {
    by_epg_id: FxHashMap<Box<str>, ContentSlots>,
    paths: Vec<ContentPath>,
}

impl ContentTable {
    /// The content for `epg_id` in `protocol`, applying the encryption fallback rule.
    #[inline]
    pub fn find(
        &self,
        epg_id: &str,
        protocol: Protocol,
        wanted: Encryption,
    ) -> Option<&ContentPath> {
        let slots = self.by_epg_id.get(epg_id)?.0[protocol as usize];
        wanted
            .acceptable()
            .iter()
            .map(|&e| slots[e as usize])
            .find(|&i| i != NO_CONTENT)
            .map(|i| &self.paths[i as usize])
    }

    /// Every epg id with content, in no particular order.
    pub fn epg_ids(&self) -> impl Iterator<Item = &str> {
        self.by_epg_id.keys().map(|k| &**k)
    }

    /// Every encryption's content for `epg_id` in `protocol` (indexed like [`Encryption`]).
    pub fn candidates(&self, epg_id: &str, protocol: Protocol) -> [Option<&ContentPath>; 4] {
        let slots = self.by_epg_id.get(epg_id).map(|s| s.0[protocol as usize]);
        std::array::from_fn(|e| {
            let i = slots?[e];
            (i != NO_CONTENT).then(|| &self.paths[i as usize])
        })
    }

    /// Offers a row; the lowest id wins each (epg id, protocol, encryption) slot.
    fn offer(
        &mut self,
        epg_id: &str,
        protocol: Protocol,
        encryption: Encryption,
        id: Id,
        path: Box<str>,
    ) {
        let slots = match self.by_epg_id.get_mut(epg_id) {
            Some(slots) => slots,
            None => self.by_epg_id.entry(epg_id.into()).or_default(),
        };
        let slot = &mut slots.0[protocol as usize][encryption as usize];
        if *slot == NO_CONTENT {
            *slot = self.paths.len() as u32;
            self.paths.push(ContentPath { id, path });
        } else if self.paths[*slot as usize].id > id {
            self.paths[*slot as usize] = ContentPath { id, path };
        }
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Every chosen stream or record path, with its row id.
    pub fn paths(&self) -> &[ContentPath] {
        &self.paths
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

/// The compiled routing state. Immutable once built; swapped whole.
#[derive(Debug)]
pub struct Snapshot {
    pub info: SnapshotInfo,
    v4: PrefixTable<u32>,
    v6: PrefixTable<u128>,
    v4_networks: Vec<Network>,
    v6_networks: Vec<Network>,
    pub regions: Vec<Region>,
    pub servers: Vec<Server>,
    pub live: ContentTable,
    pub catchup: ContentTable,
    /// Ids of the accepted subnets, ascending.
    pub subnet_ids: Box<[Id]>,
}

impl Snapshot {
    /// The most specific network containing `ip`, with its fallback chain.
    #[inline]
    pub fn network_of(&self, ip: IpAddr) -> Option<&Network> {
        match canonical_ip(ip) {
            IpAddr::V4(v4) => {
                let i = self.v4.lookup(u32::from(v4))?;
                self.v4_networks.get(i as usize)
            }
            IpAddr::V6(v6) => {
                let i = self.v6.lookup(u128::from(v6))?;
                self.v6_networks.get(i as usize)
            }
        }
    }

    /// Walks the client's fallback chain and returns the first step whose region is ACTIVE
    /// with an eligible, healthy edge, and the edge chosen there by `selector`. With
    /// `panic_mode`, a region whose admin-eligible edges are all unhealthy routes among them.
    #[inline]
    pub fn choose_edge(
        &self,
        ip: IpAddr,
        selector: Selector,
        panic_mode: bool,
    ) -> Option<EdgeChoice<'_>> {
        let network = self.network_of(ip)?;
        network.chain.iter().find_map(|step| {
            let (edge, panic) = self.pick_in_region(step.region, selector, None, panic_mode)?;
            Some(EdgeChoice {
                step: *step,
                edge: &self.servers[edge as usize],
                edge_index: edge,
                panic,
            })
        })
    }

    /// An edge of region `region` by `selector`, never `exclude` (a retry after a failed
    /// connection). Returns the edge index and whether panic mode chose it.
    #[inline]
    pub fn pick_in_region(
        &self,
        region: u32,
        selector: Selector,
        exclude: Option<u32>,
        panic_mode: bool,
    ) -> Option<(u32, bool)> {
        let table = &self.regions[region as usize].edges;
        if exclude.is_none() {
            if let Selector::Random(random) = selector {
                return self.pick_healthy(table, random, panic_mode);
            }
        }
        let allowed = |edge: u32| Some(edge) != exclude;
        let id_of = |edge: u32| self.servers[edge as usize].id;
        let (key_hash, spread, random) = match selector {
            Selector::Random(random) => (random, 1, random),
            Selector::Consistent {
                key_hash,
                spread,
                random,
            } => (key_hash, spread, random),
        };
        let up = |edge: u32| allowed(edge) && self.servers[edge as usize].is_up();
        if let Some(edge) = affinity::rendezvous(table, key_hash, spread, random, id_of, up) {
            return Some((edge, false));
        }
        if !panic_mode {
            return None;
        }
        affinity::rendezvous(table, key_hash, spread, random, id_of, allowed)
            .map(|edge| (edge, true))
    }

    /// A sub-request's edge hint, if it is still a right choice in `region` (where a fresh
    /// decision for the client landed): an eligible edge of the region, healthy (unless
    /// `panic` chose the fresh one), and with consistent selection one of the content's
    /// `spread` edges. Returns its index.
    pub fn hinted_edge(
        &self,
        region: u32,
        edge_id: Id,
        selector: Selector,
        panic: bool,
    ) -> Option<u32> {
        let table = &self.regions[region as usize].edges;
        let edge = table
            .edges()
            .iter()
            .copied()
            .find(|&e| self.servers[e as usize].id == edge_id)?;
        if !panic && !self.servers[edge as usize].is_up() {
            return None;
        }
        let Selector::Consistent {
            key_hash, spread, ..
        } = selector
        else {
            return Some(edge);
        };
        let id_of = |e: u32| self.servers[e as usize].id;
        let usable = |e: u32| panic || self.servers[e as usize].is_up();
        let spread = spread.clamp(1, affinity::MAX_SPREAD);
        (0..spread as u64)
            .any(|pick| {
                affinity::rendezvous(table, key_hash, spread, pick, id_of, usable) == Some(edge)
            })
            .then_some(edge)
    }

    /// A weighted choice among the healthy edges of `table`. The common case (the first draw
    /// is healthy) costs one atomic load; otherwise a second draw runs over the healthy ones,
    /// which keeps every healthy edge's probability at weight / Σ healthy weights.
    #[inline]
    fn pick_healthy(
        &self,
        table: &WeightedTable,
        random: u64,
        panic_mode: bool,
    ) -> Option<(u32, bool)> {
        let first = table.pick(random)?;
        if self.servers[first as usize].is_up() {
            return Some((first, false));
        }
        let up = |&(edge, _): &(u32, u64)| self.servers[edge as usize].is_up();
        let healthy_total: u64 = table.weights().filter(up).map(|(_, w)| w).sum();
        if healthy_total == 0 {
            return panic_mode.then_some((first, true));
        }
        let mut ticket = weighted::scale(weighted::remix(random), healthy_total);
        for (edge, weight) in table.weights().filter(up) {
            if ticket < weight {
                return Some((edge, false));
            }
            ticket -= weight;
        }
        None
    }

    /// Ids of the servers that are an eligible edge of at least one region, ascending.
    pub fn eligible_edge_ids(&self) -> Vec<Id> {
        let mut ids: Vec<Id> = self
            .regions
            .iter()
            .flat_map(|r| r.edges.edges())
            .map(|&i| self.servers[i as usize].id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Every distinct network, IPv4 then IPv6 (for tests and debugging).
    pub fn networks(&self) -> impl Iterator<Item = &Network> {
        self.v4_networks.iter().chain(self.v6_networks.iter())
    }
}

#[cfg(test)]
mod tests;

/// An edge's Location bases when the scheme is chosen by the route's `location_scheme`
/// rather than by the edge's port. Port rule: 80 and 443 are left out (each scheme's
/// default), any other port is kept; VOD and static carry no port, as with the edge rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemeBases {
    /// Live and catch-up over https: `https://host` or `https://host:port`.
    pub live_https: Box<str>,
    /// Live and catch-up over http: `http://host` or `http://host:port`.
    pub live_http: Box<str>,
    /// VOD and static over https: `https://host`.
    pub http_https: Box<str>,
}
