//! The regions step: each region's groups (every member, for explaining decisions) and its
//! weighted table of eligible edges, drawn from its ACTIVE groups.

use super::server_groups::ServerGroups;
use super::{parse_all, Problems};
use crate::snapshot::model::{is_status, Id, RawRegion};
use crate::snapshot::weighted::WeightedTable;
use crate::snapshot::{GroupMembers, Region, Server, ServerType};
use rustc_hash::FxHashMap;
use serde_json::value::RawValue;
use std::collections::BTreeSet;

/// The accepted regions and their index for the subnets step.
pub(super) struct CompiledRegions {
    pub regions: Vec<Region>,
    /// Index into `regions` by region id.
    pub index_by_id: FxHashMap<Id, u32>,
}

/// Regions, their groups resolved against the accepted server groups.
pub(super) fn compile_regions(
    raws: &[&RawValue],
    server_groups: &ServerGroups,
    servers: &[Server],
    problems: &mut Problems,
) -> CompiledRegions {
    let raw_regions = parse_all::<RawRegion>("regions", raws, |r| r.id, problems);
    let mut compiled = CompiledRegions {
        regions: Vec::with_capacity(raw_regions.len()),
        index_by_id: FxHashMap::default(),
    };
    for (index, r) in &raw_regions {
        let region = region_from_raw(*index, r, server_groups, servers, problems);
        compiled
            .index_by_id
            .insert(r.id, compiled.regions.len() as u32);
        compiled.regions.push(region);
    }
    compiled
}

/// One region: its groups, with a dropped reference for each group id that names no accepted
/// group, and its edges (none when the region is not ACTIVE).
fn region_from_raw(
    index: usize,
    r: &RawRegion<'_>,
    server_groups: &ServerGroups,
    servers: &[Server],
    problems: &mut Problems,
) -> Region {
    // (server id, server index): the edges come out lowest id first.
    let mut eligible = BTreeSet::new();
    let mut groups = Vec::new();
    for gid in &r.server_group_ids {
        let Some(group) = server_groups.get(gid) else {
            problems.drop_ref(
                "regions",
                index,
                r.id,
                format!("server_group_ids: no server group {gid}"),
            );
            continue;
        };
        groups.push(GroupMembers {
            id: *gid,
            active: group.active,
            servers: group.members.clone().into(),
        });
        if group.active {
            for &i in &group.members {
                let s = &servers[i as usize];
                if is_eligible_edge(s) {
                    eligible.insert((s.id, i));
                }
            }
        }
    }
    let active = is_status(&r.status, "ACTIVE");
    let edges = if active {
        WeightedTable::new(
            eligible
                .iter()
                .map(|&(_, i)| (i, servers[i as usize].weight)),
        )
    } else {
        WeightedTable::default()
    };
    Region {
        id: r.id,
        name: r.name.as_deref().unwrap_or_default().into(),
        active,
        edges,
        groups: groups.into(),
    }
}

/// A member of an ACTIVE group that its regions may route to: an EDGE server that is ACTIVE,
/// available and weighted.
fn is_eligible_edge(s: &Server) -> bool {
    s.server_type == ServerType::Edge && s.active && s.available && s.weight > 0
}
