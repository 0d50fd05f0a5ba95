//! The subnets step: each subnet's network and region, grouped into distinct networks, then
//! the IPv4 and IPv6 prefix tables with every network's fallback chain.

use super::{parse_all, Problems};
use crate::snapshot::model::{Id, RawSubnet};
use crate::snapshot::prefix_table::{self, PrefixTable};
use crate::snapshot::{Candidate, Network};
use ipnet::IpNet;
use rustc_hash::FxHashMap;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// The client-network lookup the snapshot serves from.
pub(super) struct CompiledSubnets {
    pub v4: PrefixTable<u32>,
    pub v4_networks: Vec<Network>,
    pub v6: PrefixTable<u128>,
    pub v6_networks: Vec<Network>,
    /// Ids of the accepted subnets, ascending.
    pub ids: Box<[Id]>,
}

/// Subnets with a valid CIDR and an accepted region, and the prefix tables they make.
pub(super) fn compile_subnets(
    raws: &[&RawValue],
    region_index: &FxHashMap<Id, u32>,
    problems: &mut Problems,
) -> CompiledSubnets {
    let raw_subnets = parse_all::<RawSubnet>("subnets", raws, |s| s.id, problems);
    let mut by_network: BTreeMap<IpNet, Vec<Candidate>> = BTreeMap::new();
    let mut ids = Vec::with_capacity(raw_subnets.len());
    for (index, s) in &raw_subnets {
        let checked = network_and_region(s, region_index);
        let Some((net, region)) = problems.ok_or_skip("subnets", *index, s.id, checked) else {
            continue;
        };
        ids.push(s.id);
        by_network.entry(net).or_default().push(Candidate {
            subnet_id: s.id,
            region,
        });
    }
    let (v4, v4_networks, v6, v6_networks) = build_prefix_tables(by_network);
    ids.sort_unstable();
    CompiledSubnets {
        v4,
        v4_networks,
        v6,
        v6_networks,
        ids: ids.into(),
    }
}

/// The subnet's network and the index of its region, or why it is skipped.
fn network_and_region(
    s: &RawSubnet<'_>,
    region_index: &FxHashMap<Id, u32>,
) -> Result<(IpNet, u32), String> {
    let Ok(net) = crate::vocab::parse_cidr(&s.cidr) else {
        return Err(format!("cidr {:?} is not a CIDR", s.cidr));
    };
    let Some(&region) = region_index.get(&s.region_id) else {
        return Err(format!("region_id: no region {}", s.region_id));
    };
    Ok((ipv4_mapped_as_ipv4(net), region))
}

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
