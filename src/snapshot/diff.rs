//! What replacing one snapshot by another would change for routing: subnets, regions, eligible
//! edges and content added or removed (`cti-kaltura-snapshot diff`).

use super::{Id, Snapshot};
use std::collections::BTreeSet;

/// Added and removed members of one kind of thing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change<T> {
    pub added: Vec<T>,
    pub removed: Vec<T>,
}

impl<T: Ord + Clone> Change<T> {
    fn between(old: impl IntoIterator<Item = T>, new: impl IntoIterator<Item = T>) -> Change<T> {
        let old: BTreeSet<T> = old.into_iter().collect();
        let new: BTreeSet<T> = new.into_iter().collect();
        Change {
            added: new.difference(&old).cloned().collect(),
            removed: old.difference(&new).cloned().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// The routing-relevant differences between two snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotDiff {
    pub subnets: Change<Id>,
    /// Regions with at least one eligible edge.
    pub routable_regions: Change<Id>,
    pub eligible_edges: Change<Id>,
    /// Channel epg ids with at least one ACTIVE stream.
    pub live_channels: Change<String>,
    /// Program epg ids with at least one COMPLETED record.
    pub catchup_programs: Change<String>,
}

impl SnapshotDiff {
    pub fn between(old: &Snapshot, new: &Snapshot) -> SnapshotDiff {
        let routable = |s: &Snapshot| -> Vec<Id> {
            s.regions
                .iter()
                .filter(|r| !r.edges.is_empty())
                .map(|r| r.id)
                .collect()
        };
        let epgs =
            |t: &super::ContentTable| -> Vec<String> { t.epg_ids().map(str::to_string).collect() };
        SnapshotDiff {
            subnets: Change::between(
                old.subnet_ids.iter().copied(),
                new.subnet_ids.iter().copied(),
            ),
            routable_regions: Change::between(routable(old), routable(new)),
            eligible_edges: Change::between(old.eligible_edge_ids(), new.eligible_edge_ids()),
            live_channels: Change::between(epgs(&old.live), epgs(&new.live)),
            catchup_programs: Change::between(epgs(&old.catchup), epgs(&new.catchup)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.subnets.is_empty()
            && self.routable_regions.is_empty()
            && self.eligible_edges.is_empty()
            && self.live_channels.is_empty()
            && self.catchup_programs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::load_snapshot;
    use serde_json::json;

    fn snapshot(subnets: &[i64], edge_available: bool, channels: &[&str]) -> Snapshot {
        let doc = json!({
            "regions": [{"id": 1, "status": "ACTIVE", "server_group_ids": [1]}],
            "subnets": subnets.iter().map(|&i| json!({"id": i, "cidr": format!("10.{i}.0.0/16"), "region_id": 1})).collect::<Vec<_>>(),
            "server_groups": [{"id": 1, "status": "ACTIVE", "server_ids": [7]}],
            "servers": [{"id": 7, "type": "EDGE", "domain_name": "e.test", "port": 80, "status": "ACTIVE", "weight": 1, "availability": edge_available}],
            "linear_channels": channels.iter().enumerate().map(|(i, c)| json!({"id": i, "epg_id": c})).collect::<Vec<_>>(),
            "tv_streams": (0..channels.len()).map(|i| json!({"id": i, "linear_channel_id": i, "stream_path": "/s", "status": "ACTIVE", "protocol": "HLS"})).collect::<Vec<_>>(),
        });
        load_snapshot(doc.to_string().as_bytes(), "t").unwrap()
    }

    #[test]
    fn reports_what_routing_gains_and_loses() {
        let old = snapshot(&[1, 2, 3], true, &["a", "b"]);
        let new = snapshot(&[2, 3, 4], false, &["b", "c"]);
        let d = SnapshotDiff::between(&old, &new);
        assert_eq!(
            d.subnets,
            Change {
                added: vec![4],
                removed: vec![1]
            }
        );
        assert_eq!(
            d.eligible_edges,
            Change {
                added: vec![],
                removed: vec![7]
            }
        );
        assert_eq!(
            d.routable_regions,
            Change {
                added: vec![],
                removed: vec![1]
            }
        );
        assert_eq!(
            d.live_channels,
            Change {
                added: vec!["c".to_string()],
                removed: vec!["a".to_string()]
            }
        );
        assert!(d.catchup_programs.is_empty());
        assert!(SnapshotDiff::between(&old, &old).is_empty());
    }
}
