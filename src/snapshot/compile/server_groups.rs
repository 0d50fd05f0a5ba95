//! The server-groups step: each group's members as indexes into the servers. A member that
//! names no accepted server is dropped; the group is kept.

use super::{parse_all, Problems};
use crate::snapshot::model::{is_status, Id, RawServerGroup};
use rustc_hash::FxHashMap;
use serde_json::value::RawValue;

/// An accepted server group, as the regions step reads it.
pub(super) struct ServerGroup {
    pub active: bool,
    /// Indexes into the accepted servers, in the group's order.
    pub members: Vec<u32>,
}

/// The accepted server groups by id (one entry per accepted group).
pub(super) type ServerGroups = FxHashMap<Id, ServerGroup>;

/// Server groups, their members resolved against the accepted servers.
pub(super) fn compile_server_groups(
    raws: &[&RawValue],
    server_index: &FxHashMap<Id, u32>,
    problems: &mut Problems,
) -> ServerGroups {
    let raw_groups = parse_all::<RawServerGroup>("server_groups", raws, |g| g.id, problems);
    let mut groups = ServerGroups::default();
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
        groups.insert(g.id, ServerGroup { active, members });
    }
    groups
}
