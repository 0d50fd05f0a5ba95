//! The blast-radius guard: a new admin snapshot that would remove too much routing (an admin
//! database restored empty, a botched bulk edit) is refused instead of blanking the CDN.

use crate::config::GuardConfig;
use crate::snapshot::{Id, Snapshot};
use std::collections::HashSet;

/// How many of `old` are missing from `new` (both ascending, deduplicated).
fn removed_count(old: &[Id], new: &[Id]) -> usize {
    let new: HashSet<Id> = new.iter().copied().collect();
    old.iter().filter(|id| !new.contains(id)).count()
}

fn check_fraction(what: &str, old: &[Id], new: &[Id], max: f64, reasons: &mut Vec<String>) {
    if old.is_empty() {
        return;
    }
    let removed = removed_count(old, new);
    let fraction = removed as f64 / old.len() as f64;
    if fraction > max {
        reasons.push(format!(
            "would remove {removed} of {} {what} ({:.0}%, limit {:.0}%)",
            old.len(),
            fraction * 100.0,
            max * 100.0
        ));
    }
}

/// `Ok` when `new` may replace `old`; otherwise every reason it may not.
pub fn check(old: &Snapshot, new: &Snapshot, config: &GuardConfig) -> Result<(), Vec<String>> {
    if !config.enabled {
        return Ok(());
    }
    let mut reasons = Vec::new();
    let max = config.max_removed_fraction;
    check_fraction(
        "subnets",
        &old.subnet_ids,
        &new.subnet_ids,
        max,
        &mut reasons,
    );
    check_fraction(
        "eligible edges",
        &old.eligible_edge_ids(),
        &new.eligible_edge_ids(),
        max,
        &mut reasons,
    );

    let mut emptied: Vec<String> = Vec::new();
    for region in old.regions.iter().filter(|r| !r.edges.is_empty()) {
        if let Some(after) = new.regions.iter().find(|r| r.id == region.id) {
            if after.edges.is_empty() {
                emptied.push(format!("{} ({})", region.id, region.name));
            }
        }
    }
    if !emptied.is_empty() {
        let shown: Vec<&str> = emptied.iter().take(10).map(String::as_str).collect();
        let more = emptied.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        reasons.push(format!(
            "would leave {} region(s) with eligible edges now without any: {}{tail}",
            emptied.len(),
            shown.join(", ")
        ));
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::load_snapshot;
    use serde_json::json;

    /// `regions` regions, each with one subnet and one edge of its own.
    fn snapshot(regions: i64, edge_available: impl Fn(i64) -> bool) -> Snapshot {
        let ids: Vec<i64> = (1..=regions).collect();
        let doc = json!({
            "regions": ids.iter().map(|&i| json!({"id": i, "name": format!("r{i}"), "status": "ACTIVE", "server_group_ids": [i]})).collect::<Vec<_>>(),
            "subnets": ids.iter().map(|&i| json!({"id": i, "cidr": format!("10.{i}.0.0/16"), "region_id": i})).collect::<Vec<_>>(),
            "server_groups": ids.iter().map(|&i| json!({"id": i, "status": "ACTIVE", "server_ids": [i]})).collect::<Vec<_>>(),
            "servers": ids.iter().map(|&i| json!({"id": i, "type": "EDGE", "domain_name": format!("e{i}.test"), "port": 80, "status": "ACTIVE", "weight": 1, "availability": edge_available(i)})).collect::<Vec<_>>(),
        });
        load_snapshot(doc.to_string().as_bytes(), "test").unwrap()
    }

    #[test]
    fn an_empty_admin_database_is_refused() {
        let old = snapshot(10, |_| true);
        let empty = load_snapshot(b"{}", "test").unwrap();
        let reasons = check(&old, &empty, &GuardConfig::default()).unwrap_err();
        assert_eq!(
            reasons,
            vec![
                "would remove 10 of 10 subnets (100%, limit 50%)",
                "would remove 10 of 10 eligible edges (100%, limit 50%)",
            ]
        );
    }

    #[test]
    fn small_changes_pass_and_the_limit_is_inclusive() {
        let old = snapshot(10, |_| true);
        // Regions 6..10 gone entirely: exactly half of subnets and edges removed.
        let half = snapshot(5, |_| true);
        assert_eq!(check(&old, &half, &GuardConfig::default()), Ok(()));
        let strict = GuardConfig {
            enabled: true,
            max_removed_fraction: 0.4,
        };
        assert_eq!(check(&old, &half, &strict).unwrap_err().len(), 2);
        let disabled = GuardConfig {
            enabled: false,
            max_removed_fraction: 0.0,
        };
        assert_eq!(
            check(&old, &load_snapshot(b"{}", "t").unwrap(), &disabled),
            Ok(())
        );
    }

    #[test]
    fn a_region_left_without_edges_is_refused() {
        let old = snapshot(10, |_| true);
        let new = snapshot(10, |i| i != 3);
        assert_eq!(
            check(&old, &new, &GuardConfig::default()),
            Err(vec![
                "would leave 1 region(s) with eligible edges now without any: 3 (r3)".to_string()
            ])
        );
    }
}
