//! Explaining a decision without making one (`GET /debug/route`, `cti-kaltura-snapshot
//! route`): the matched subnets in order, each region and candidate edge with why it is or is
//! not eligible, the content candidates with the encryption rule applied, and the result.

use super::decide::{decide_with_streams, Outcome, RequestFacts, RoutingPolicy};
use super::request_path::{parse_route, Route};
use crate::config::TrustedProxies;
use crate::snapshot::{Id, Server, ServerType, Snapshot, StallEffect};
use crate::stream_health::StalledPairs;
use serde_json::{json, Value};
use std::net::IpAddr;

const ENCRYPTIONS: [&str; 4] = ["NONE", "CENC", "WIDEVINE", "PLAYREADY"];

/// Why a member of a region's group is or is not an eligible edge.
fn edge_verdict(server: &Server, group_active: bool, region_active: bool) -> &'static str {
    if !region_active {
        "region not ACTIVE"
    } else if !group_active {
        "server group not ACTIVE"
    } else if server.server_type != ServerType::Edge {
        "not an EDGE server"
    } else if !server.active {
        "status not ACTIVE"
    } else if !server.available {
        "availability false"
    } else if server.weight == 0 {
        "weight not > 0"
    } else if !server.is_up() {
        "failing health checks"
    } else {
        "eligible"
    }
}

/// `stalled`: the edges whose copy of the requested live stream is stalled.
fn region_report(snapshot: &Snapshot, region_index: u32, stalled: &[Id]) -> Value {
    let region = &snapshot.regions[region_index as usize];
    let total: u64 = region
        .edges
        .weights()
        .filter(|&(e, _)| snapshot.servers[e as usize].is_up())
        .map(|(_, w)| w)
        .sum();
    let mut candidates = Vec::new();
    for group in region.groups.iter() {
        for &i in group.servers.iter() {
            let server = &snapshot.servers[i as usize];
            let verdict = edge_verdict(server, group.active, region.active);
            let share =
                (verdict == "eligible" && total > 0).then(|| server.weight as f64 / total as f64);
            candidates.push(json!({
                "server_id": server.id,
                "domain_name": &*server.domain_name,
                "group_id": group.id,
                "type": format!("{:?}", server.server_type).to_uppercase(),
                "active": server.active,
                "availability": server.available,
                "healthy": server.is_up(),
                "weight": server.weight,
                "verdict": verdict,
                "probability": share,
                "stream_stalled": stalled.contains(&server.id),
            }));
        }
    }
    json!({
        "region_id": region.id,
        "name": &*region.name,
        "active": region.active,
        "eligible_edges": region.edges.edges().len(),
        "candidates": candidates,
    })
}

fn content_report(snapshot: &Snapshot, route: &Route<'_>) -> Value {
    let (table, c, what) = match route {
        Route::Live(c) => (&snapshot.live, c, "tv_streams (ACTIVE)"),
        Route::Catchup(c) => (&snapshot.catchup, c, "program_records (COMPLETED)"),
        Route::Vod | Route::Static => {
            return json!({"lookup": "none: the request path goes to the edge as is"})
        }
    };
    let candidates = table.candidates(c.epg_id, c.protocol);
    let present: Vec<Value> = candidates
        .iter()
        .enumerate()
        .filter_map(|(e, found)| {
            found.map(|p| json!({"encryption": ENCRYPTIONS[e], "id": p.id, "path": &*p.path}))
        })
        .collect();
    let accepted: Vec<&str> = c
        .encryption
        .acceptable()
        .iter()
        .map(|&e| ENCRYPTIONS[e as usize])
        .collect();
    let chosen = table.find(c.epg_id, c.protocol, c.encryption);
    json!({
        "lookup": what,
        "epg_id": c.epg_id,
        "protocol": format!("{:?}", c.protocol).to_uppercase(),
        "requested_encryption": ENCRYPTIONS[c.encryption as usize],
        "accepted_in_order": accepted,
        "candidates": present,
        "chosen": chosen.map(|p| json!({"id": p.id, "path": &*p.path})),
    })
}

/// The explanation of routing `path` for a client at `ip` (as if `ip` were the resolved
/// client address). The Location shown is one possible choice (random draw 0).
pub fn explain(
    snapshot: &Snapshot,
    policy: &RoutingPolicy,
    ip: IpAddr,
    path: &str,
    query: Option<&str>,
) -> Value {
    explain_with_streams(snapshot, None, policy, ip, path, query)
}

/// [`explain`] with the stream-health overlay: which edges have the requested live stream
/// stalled, and what avoiding them did.
pub fn explain_with_streams(
    snapshot: &Snapshot,
    stalled: Option<&StalledPairs>,
    policy: &RoutingPolicy,
    ip: IpAddr,
    path: &str,
    query: Option<&str>,
) -> Value {
    let route = parse_route(path);
    let stream_id = match &route {
        Some(Route::Live(c)) => snapshot
            .live
            .find(c.epg_id, c.protocol, c.encryption)
            .map(|p| p.id),
        _ => None,
    };
    let stalled_edges = stream_id
        .and_then(|id| stalled?.edges_stalled_for(id))
        .unwrap_or(&[]);
    let route_report = match &route {
        None => json!({"valid": false}),
        Some(r) => json!({"valid": true, "kind": r.kind().as_str()}),
    };
    let network = snapshot.network_of(ip);
    let subnets: Vec<Value> = network
        .map(|n| {
            n.chain
                .iter()
                .map(|step| {
                    let mut report = region_report(snapshot, step.region, stalled_edges);
                    report["subnet_id"] = json!(step.subnet_id);
                    report
                })
                .collect()
        })
        .unwrap_or_default();
    let content = route.as_ref().map(|r| content_report(snapshot, r));
    let facts = RequestFacts {
        method: &http::Method::GET,
        path,
        query,
        peer: ip,
        x_real_ip: None,
        random: 0,
        secure: false,
    };
    // The address is taken as the client's: no proxy header applies.
    let untrusting = RoutingPolicy {
        trusted_proxies: TrustedProxies::none(),
        ..policy.clone()
    };
    let decision = decide_with_streams(Some(snapshot), stalled, &untrusting, &facts);
    let result = match &decision.outcome {
        Outcome::Redirect {
            location,
            edge_id,
            region_id,
            subnet_id,
            target,
        } => {
            let mut result = json!({
                "status": 302, "location": location, "edge_id": edge_id, "region_id": region_id,
                "subnet_id": subnet_id, "panic_mode": target.panic,
            });
            // Only when stream health touched the choice.
            let stall = match target.stall {
                StallEffect::None => None,
                StallEffect::Avoided => Some("avoided stalled edges"),
                StallEffect::AllStalled => {
                    Some("every healthy edge stalled: routed as if none were")
                }
            };
            if let Some(stall) = stall {
                result["stream_stall"] = json!(stall);
            }
            result
        }
        Outcome::NotFound(why) => json!({"status": 404, "reason": format!("{why:?}")}),
        Outcome::BadRequest(why) => json!({"status": 400, "reason": format!("{why:?}")}),
        Outcome::MethodNotAllowed => json!({"status": 405}),
        Outcome::NoSnapshot => json!({"status": 503}),
    };
    json!({
        "client_ip": ip.to_string(),
        "path": path,
        "route": route_report,
        "network": network.map(|n| n.cidr.to_string()),
        "fallback_chain": subnets,
        "content": content,
        "stream_health": json!({"stream_id": stream_id, "stalled_edges": stalled_edges}),
        "result": result,
        "snapshot_version": snapshot.info.version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::load_snapshot;

    fn snapshot() -> Snapshot {
        let doc = json!({
            "regions": [
                {"id": 1, "name": "inner", "status": "INACTIVE", "server_group_ids": [1]},
                {"id": 2, "name": "outer", "status": "ACTIVE", "server_group_ids": [1, 2]}
            ],
            "subnets": [
                {"id": 10, "cidr": "10.1.0.0/16", "region_id": 1},
                {"id": 20, "cidr": "10.0.0.0/8", "region_id": 2}
            ],
            "server_groups": [
                {"id": 1, "status": "ACTIVE", "server_ids": [100, 101, 102]},
                {"id": 2, "status": "INACTIVE", "server_ids": [103]}
            ],
            "servers": [
                {"id": 100, "type": "EDGE", "domain_name": "up.test", "port": 80, "status": "ACTIVE", "weight": 10},
                {"id": 101, "type": "EDGE", "domain_name": "off.test", "port": 80, "status": "ACTIVE", "weight": 10, "availability": false},
                {"id": 102, "type": "DVR", "domain_name": "dvr.test", "port": 80, "status": "ACTIVE", "weight": 10, "prefix": "d"},
                {"id": 103, "type": "EDGE", "domain_name": "grp.test", "port": 80, "status": "ACTIVE", "weight": 10}
            ],
            "linear_channels": [{"id": 1, "epg_id": "ch"}],
            "tv_streams": [
                {"id": 1, "linear_channel_id": 1, "stream_path": "/none", "status": "ACTIVE", "protocol": "HLS", "encryption": "NONE"},
                {"id": 2, "linear_channel_id": 1, "stream_path": "/cenc", "status": "ACTIVE", "protocol": "HLS", "encryption": "CENC"}
            ]
        });
        load_snapshot(doc.to_string().as_bytes(), "test").unwrap()
    }

    #[test]
    fn explains_fallback_verdicts_and_encryption() {
        let s = snapshot();
        let e = explain(
            &s,
            &RoutingPolicy::default(),
            "10.1.2.3".parse().unwrap(),
            "/btv/live/hls_wv/ch",
            None,
        );
        let chain = e["fallback_chain"].as_array().unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0]["subnet_id"], 10);
        assert_eq!(chain[0]["candidates"][0]["verdict"], "region not ACTIVE");
        let outer: Vec<(&str, &str)> = chain[1]["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["domain_name"].as_str().unwrap(),
                    c["verdict"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            outer,
            vec![
                ("up.test", "eligible"),
                ("off.test", "availability false"),
                ("dvr.test", "not an EDGE server"),
                ("grp.test", "server group not ACTIVE"),
            ]
        );
        assert_eq!(chain[1]["candidates"][0]["probability"], 1.0);
        assert_eq!(
            e["content"]["accepted_in_order"],
            json!(["WIDEVINE", "CENC"])
        );
        assert_eq!(e["content"]["chosen"]["path"], "/cenc");
        assert_eq!(e["result"]["location"], "http://up.test/cenc");
        assert_eq!(e["result"]["subnet_id"], 20);
    }

    #[test]
    fn explains_unhealthy_edges_and_errors() {
        let s = snapshot();
        s.servers
            .iter()
            .find(|x| x.id == 100)
            .unwrap()
            .health
            .set_up(false);
        let policy = RoutingPolicy {
            panic_mode: false,
            ..RoutingPolicy::default()
        };
        let e = explain(&s, &policy, "10.9.9.9".parse().unwrap(), "/vod/a", None);
        assert_eq!(
            e["fallback_chain"][0]["candidates"][0]["verdict"],
            "failing health checks"
        );
        assert_eq!(e["result"]["status"], 404);
        let e = explain(
            &s,
            &RoutingPolicy::default(),
            "10.9.9.9".parse().unwrap(),
            "/vod/a",
            None,
        );
        assert_eq!(e["result"]["panic_mode"], true);
        let e = explain(&s, &policy, "192.0.2.1".parse().unwrap(), "/nope", None);
        assert_eq!(e["route"]["valid"], false);
        assert_eq!(e["fallback_chain"], json!([]));
        assert_eq!(e["result"]["status"], 400);
    }

    #[test]
    fn explains_a_stalled_stream_on_an_edge() {
        let s = snapshot();
        let stalled = StalledPairs::from_pairs([(100, 1)]);
        let e = explain_with_streams(
            &s,
            Some(&stalled),
            &RoutingPolicy::default(),
            "10.9.9.9".parse().unwrap(),
            "/btv/live/hls/ch",
            None,
        );
        assert_eq!(e["stream_health"]["stream_id"], 1);
        assert_eq!(e["stream_health"]["stalled_edges"], json!([100]));
        assert_eq!(
            e["fallback_chain"][0]["candidates"][0]["stream_stalled"],
            true
        );
        // The only eligible edge: routed there as if it were not stalled.
        assert_eq!(
            e["result"]["stream_stall"],
            "every healthy edge stalled: routed as if none were"
        );
        assert_eq!(e["result"]["edge_id"], 100);
    }
}
