//! Snapshot loading and compilation: formats, quarantine, schema evolution, the prefix table's
//! fallback chains, edge eligibility and content resolution.

use super::*;
use serde_json::{json, Value};
use std::net::IpAddr;
use Encryption as E;
use Protocol::{Hls, Mpd};

// ----- document builders -----

fn region(id: Id, status: &str, groups: &[Id]) -> Value {
    json!({"id": id, "name": format!("region{id}"), "status": status, "server_group_ids": groups})
}

fn group(id: Id, status: &str, servers: &[Id]) -> Value {
    json!({"id": id, "name": format!("group{id}"), "status": status, "server_ids": servers})
}

fn edge(id: Id, domain: &str, port: i64, weight: i64) -> Value {
    json!({"id": id, "type": "EDGE", "domain_name": domain, "ip": "192.0.2.10", "port": port,
           "status": "ACTIVE", "availability": true, "weight": weight, "healthcheck_enabled": true})
}

fn dvr(id: Id, prefix: Value) -> Value {
    json!({"id": id, "type": "DVR", "domain_name": format!("dvr{id}.example"), "port": 80,
           "status": "ACTIVE", "availability": true, "weight": 1, "prefix": prefix})
}

fn subnet(id: Id, cidr: &str, region_id: Id) -> Value {
    json!({"id": id, "name": format!("subnet{id}"), "cidr": cidr, "region_id": region_id})
}

fn channel(id: Id, epg_id: &str) -> Value {
    json!({"id": id, "epg_id": epg_id, "name": format!("channel{id}"), "dvr_enabled": true})
}

fn stream(id: Id, channel: Id, protocol: &str, encryption: &str, path: &str) -> Value {
    json!({"id": id, "linear_channel_id": channel, "stream_path": path, "status": "ACTIVE",
           "protocol": protocol, "encryption": encryption})
}

fn program(id: Id, channel: Id, epg_id: &str) -> Value {
    json!({"id": id, "linear_channel_id": channel, "epg_id": epg_id, "name": format!("program{id}")})
}

fn record(
    id: Id,
    program: Id,
    server: Id,
    protocol: &str,
    encryption: &str,
    status: &str,
    path: &str,
) -> Value {
    json!({"id": id, "program_id": program, "server_id": server, "status": status,
           "protocol": protocol, "encryption": encryption, "path": path})
}

/// `entity` with `key` set to `value`.
fn with(mut entity: Value, key: &str, value: Value) -> Value {
    entity[key] = value;
    entity
}

/// `entity` without `key`.
fn without(mut entity: Value, key: &str) -> Value {
    entity.as_object_mut().unwrap().remove(key);
    entity
}

/// A snapshot document under construction: entity arrays by name.
#[derive(Clone, Default)]
struct Doc(serde_json::Map<String, Value>);

impl Doc {
    fn add(mut self, array: &str, item: Value) -> Doc {
        let items = self.0.entry(array).or_insert_with(|| json!([]));
        items.as_array_mut().unwrap().push(item);
        self
    }

    fn top(mut self, key: &str, value: Value) -> Doc {
        self.0.insert(key.to_string(), value);
        self
    }

    fn json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).unwrap()
    }

    fn load(&self) -> Snapshot {
        load_snapshot(&self.json(), "test").expect("document loads")
    }
}

/// Region 1 → group 1 → edge 1 `e1.example:80`; DVR 2 with prefix `dvr1`; subnet 1 =
/// 10.0.0.0/8 → region 1; channel 1 `epg_1` with stream 1 (HLS NONE `/base.m3u8`); program 1
/// `p_1` with COMPLETED record 1 (HLS NONE `base_rec`) on DVR 2.
fn base() -> Doc {
    Doc::default()
        .add("regions", region(1, "ACTIVE", &[1]))
        .add("server_groups", group(1, "ACTIVE", &[1]))
        .add("servers", edge(1, "e1.example", 80, 1))
        .add("servers", dvr(2, json!("dvr1")))
        .add("subnets", subnet(1, "10.0.0.0/8", 1))
        .add("linear_channels", channel(1, "epg_1"))
        .add("tv_streams", stream(1, 1, "HLS", "NONE", "/base.m3u8"))
        .add("programs", program(1, 1, "p_1"))
        .add(
            "program_records",
            record(1, 1, 2, "HLS", "NONE", "COMPLETED", "base_rec"),
        )
}

/// An address in the base document's subnet 1.
const CLIENT: &str = "10.1.2.3";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn live<'s>(
    s: &'s Snapshot,
    epg_id: &str,
    protocol: Protocol,
    encryption: Encryption,
) -> Option<&'s str> {
    s.live.find(epg_id, protocol, encryption).map(|c| &*c.path)
}

fn catchup<'s>(
    s: &'s Snapshot,
    epg_id: &str,
    protocol: Protocol,
    encryption: Encryption,
) -> Option<&'s str> {
    s.catchup
        .find(epg_id, protocol, encryption)
        .map(|c| &*c.path)
}

/// Ids of the eligible edges of region `region_id`, in table order.
fn edge_ids(s: &Snapshot, region_id: Id) -> Vec<Id> {
    let region = s
        .regions
        .iter()
        .find(|r| r.id == region_id)
        .expect("region exists");
    region
        .edges
        .edges()
        .iter()
        .map(|&i| s.servers[i as usize].id)
        .collect()
}

/// Edge selection as routing does it (no panic mode; every server healthy in these tests).
fn choose<'s>(s: &'s Snapshot, client: &str, random: u64) -> Option<(Candidate, &'s Server)> {
    s.choose_edge(ip(client), Selector::Random(random), false)
        .map(|choice| (choice.step, choice.edge))
}

/// (subnet id, edge id) chosen for `client` with a fixed random value.
fn chosen(s: &Snapshot, client: &str) -> Option<(Id, Id)> {
    choose(s, client, 0).map(|(step, edge)| (step.subnet_id, edge.id))
}

fn chain(s: &Snapshot, client: &str) -> Option<Vec<Id>> {
    s.network_of(ip(client))
        .map(|n| n.chain.iter().map(|c| c.subnet_id).collect())
}

/// Everything the base document serves is still served, and nothing more (bad test entities
/// use MPD, which the base document does not have).
fn assert_base_routes(s: &Snapshot) {
    assert_eq!(edge_ids(s, 1), vec![1], "region 1 edges");
    let (step, edge) = choose(s, CLIENT, 0).expect("an edge for the client");
    assert_eq!(
        (step.subnet_id, &*edge.domain_name, &*edge.live_base),
        (1, "e1.example", "http://e1.example")
    );
    assert_eq!(live(s, "epg_1", Hls, E::None), Some("/base.m3u8"));
    assert_eq!(catchup(s, "p_1", Hls, E::None), Some("/dvr/dvr1/base_rec"));
    for e in [E::None, E::Cenc, E::Widevine, E::PlayReady] {
        assert_eq!(live(s, "epg_1", Mpd, e), None, "live MPD {e:?}");
        assert_eq!(catchup(s, "p_1", Mpd, e), None, "catch-up MPD {e:?}");
    }
}

/// Expected problem: entity array, index, id, quarantined, a fragment of the reason.
type Expected<'a> = (&'a str, usize, Option<Id>, bool, &'a str);

fn assert_problems(s: &Snapshot, expected: &[Expected<'_>]) {
    let got: Vec<_> = s
        .info
        .problems
        .iter()
        .map(|p| (p.entity, p.index, p.id, p.quarantined))
        .collect();
    let want: Vec<_> = expected.iter().map(|e| (e.0, e.1, e.2, e.3)).collect();
    assert_eq!(got, want, "problems: {:#?}", s.info.problems);
    for (problem, e) in s.info.problems.iter().zip(expected) {
        assert!(
            problem.reason.contains(e.4),
            "reason {:?} lacks {:?}",
            problem.reason,
            e.4
        );
    }
}

/// Loads `doc`, checks its problems exactly, and checks the base content still routes.
fn assert_quarantined(label: &str, doc: Doc, expected: &[Expected<'_>]) -> Snapshot {
    let s = doc.load();
    eprintln!("case: {label}");
    assert_problems(&s, expected);
    assert_base_routes(&s);
    s
}

/// What routing can observe of a snapshot, as text, for comparing two loads.
fn fingerprint(s: &Snapshot) -> String {
    let mut out = format!(
        "{:?}\n{:?}\n{:?}\n",
        s.info.version, s.info.counts, s.info.problems
    );
    for r in &s.regions {
        out += &format!(
            "region {} {:?} {} {:?}\n",
            r.id,
            r.name,
            r.active,
            edge_ids(s, r.id)
        );
    }
    for server in &s.servers {
        out += &format!("{server:?}\n");
    }
    for n in s.networks() {
        out += &format!("{} {:?}\n", n.cidr, n.chain);
    }
    for epg in ["epg_1", "epg_2", "p_1", "p_2"] {
        for p in [Hls, Mpd] {
            for e in [E::None, E::Cenc, E::Widevine, E::PlayReady] {
                out += &format!(
                    "{epg} {p:?} {e:?} {:?} {:?}\n",
                    live(s, epg, p, e),
                    catchup(s, epg, p, e)
                );
            }
        }
    }
    out
}

// ----- formats -----

const YAML_DOC: &str = r#"
version: "v7"
regions:
  - {id: 1, name: north, status: ACTIVE, server_group_ids: [1]}
server_groups:
  - id: 1
    name: g1
    status: ACTIVE
    server_ids: [1, 2]
servers:
  - {id: 1, type: EDGE, domain_name: e1.example, ip: 192.0.2.1, port: 443, status: ACTIVE, availability: true, weight: 2}
  - {id: 2, type: EDGE, domain_name: e2.example, port: 96, status: ACTIVE, availability: true, weight: 5}
  - {id: 3, type: DVR, domain_name: dvr.example, port: 80, status: ACTIVE, prefix: ~}
subnets:
  - {id: 1, cidr: 10.0.0.0/8, region_id: 1}
  - {id: 2, cidr: "2001:db8::/32", region_id: 1}
linear_channels:
  - {id: 1, epg_id: epg_1}
tv_streams:
  - {id: 1, linear_channel_id: 1, stream_path: /hls.m3u8, status: ACTIVE, protocol: HLS, encryption: NONE}
  - {id: 2, linear_channel_id: 1, stream_path: /cenc.mpd, status: ACTIVE, protocol: MPD, encryption: CENC}
programs:
  - {id: 1, linear_channel_id: 1, epg_id: p_1}
program_records:
  - {id: 1, program_id: 1, server_id: 3, status: COMPLETED, protocol: MPD, encryption: WIDEVINE, path: rec_wv}
"#;

fn yaml_doc_as_json() -> Value {
    json!({
        "version": "v7",
        "regions": [{"id": 1, "name": "north", "status": "ACTIVE", "server_group_ids": [1]}],
        "server_groups": [{"id": 1, "name": "g1", "status": "ACTIVE", "server_ids": [1, 2]}],
        "servers": [
            {"id": 1, "type": "EDGE", "domain_name": "e1.example", "ip": "192.0.2.1", "port": 443,
             "status": "ACTIVE", "availability": true, "weight": 2},
            {"id": 2, "type": "EDGE", "domain_name": "e2.example", "port": 96, "status": "ACTIVE",
             "availability": true, "weight": 5},
            {"id": 3, "type": "DVR", "domain_name": "dvr.example", "port": 80, "status": "ACTIVE", "prefix": null}
        ],
        "subnets": [{"id": 1, "cidr": "10.0.0.0/8", "region_id": 1}, {"id": 2, "cidr": "2001:db8::/32", "region_id": 1}],
        "linear_channels": [{"id": 1, "epg_id": "epg_1"}],
        "tv_streams": [
            {"id": 1, "linear_channel_id": 1, "stream_path": "/hls.m3u8", "status": "ACTIVE", "protocol": "HLS", "encryption": "NONE"},
            {"id": 2, "linear_channel_id": 1, "stream_path": "/cenc.mpd", "status": "ACTIVE", "protocol": "MPD", "encryption": "CENC"}
        ],
        "programs": [{"id": 1, "linear_channel_id": 1, "epg_id": "p_1"}],
        "program_records": [
            {"id": 1, "program_id": 1, "server_id": 3, "status": "COMPLETED", "protocol": "MPD", "encryption": "WIDEVINE", "path": "rec_wv"}
        ]
    })
}

#[test]
fn json_and_yaml_forms_of_a_document_load_the_same() {
    let from_yaml = load_snapshot(YAML_DOC.as_bytes(), "r.yaml").unwrap();
    let from_json =
        load_snapshot(&serde_json::to_vec(&yaml_doc_as_json()).unwrap(), "r.json").unwrap();
    assert_eq!(fingerprint(&from_yaml), fingerprint(&from_json));
    // The comparison is not vacuous: both loaded everything.
    let counts = EntityCounts {
        regions: 1,
        subnets: 2,
        server_groups: 1,
        servers: 3,
        linear_channels: 1,
        tv_streams: 2,
        programs: 1,
        program_records: 1,
    };
    assert_eq!(from_yaml.info.counts, counts);
    assert_eq!(from_yaml.info.version.as_deref(), Some("v7"));
    assert_eq!(from_yaml.info.source, "r.yaml");
    assert_eq!(edge_ids(&from_yaml, 1), vec![1, 2]);
    assert_eq!(from_yaml.regions[0].edges.total_weight(), 7);
    assert_eq!(
        live(&from_yaml, "epg_1", Mpd, E::Widevine),
        Some("/cenc.mpd")
    );
    assert_eq!(
        catchup(&from_yaml, "p_1", Mpd, E::Widevine),
        Some("/dvr/rec_wv")
    );
    assert_eq!(chain(&from_yaml, "2001:db8::1"), Some(vec![2]));

    // The base document, machine-converted to YAML, also loads identically.
    let yaml = serde_yaml::to_string(&base().0).unwrap();
    let base_yaml = load_snapshot(yaml.as_bytes(), "base.yaml").unwrap();
    assert_eq!(fingerprint(&base_yaml), fingerprint(&base().load()));
    assert_base_routes(&base_yaml);
}

#[test]
fn documents_that_are_not_snapshots_are_rejected() {
    let cases: [(&str, &[u8]); 9] = [
        ("broken JSON", b"{ \"regions\": [ "),
        ("JSON garbage", b"{ not json }"),
        ("not UTF-8", b"{\"version\": \"\xff\"}"),
        ("broken YAML", b"regions: [1, 2\nservers: {"),
        ("a YAML scalar", b"just some words"),
        ("a JSON array", b"[1, 2, 3]"),
        ("regions not an array (JSON)", b"{\"regions\": 5}"),
        ("regions an object (JSON)", b"{\"regions\": {\"id\": 1}}"),
        ("regions not an array (YAML)", b"regions: not-a-list\n"),
    ];
    for (label, bytes) in cases {
        let result = load_snapshot(bytes, "bad");
        assert!(result.is_err(), "{label} must be rejected");
    }
    assert!(matches!(
        load_snapshot(b"{ not json }", "x"),
        Err(LoadError::Json(_))
    ));
    assert!(matches!(
        load_snapshot(b"regions: [1, 2\nservers: {", "x"),
        Err(LoadError::Yaml(_))
    ));
    assert!(matches!(
        load_snapshot(b"{\"regions\": 5}", "x"),
        Err(LoadError::Shape(_))
    ));
    assert!(matches!(
        load_snapshot(b"regions: not-a-list\n", "x"),
        Err(LoadError::Shape(_))
    ));
    assert!(matches!(
        load_snapshot(b"{\"servers\": \"none\"}", "x"),
        Err(LoadError::Shape(_))
    ));
}

#[test]
fn version_is_kept_as_text() {
    let version_of = |doc: Doc| doc.load().info.version;
    assert_eq!(
        version_of(base().top("version", json!("2024-06-01.3"))),
        Some("2024-06-01.3".into())
    );
    assert_eq!(
        version_of(base().top("version", json!(42))),
        Some("42".into())
    );
    assert_eq!(version_of(base().top("version", json!(null))), None);
    assert_eq!(version_of(base()), None);
    let yaml = load_snapshot(b"version: 43\nregions: []\n", "y").unwrap();
    assert_eq!(yaml.info.version.as_deref(), Some("43"));
    let yaml = load_snapshot(b"version: \"43\"\n", "y").unwrap();
    assert_eq!(yaml.info.version.as_deref(), Some("43"));
}

#[test]
fn base_document_loads_without_problems() {
    let s = base().load();
    assert_problems(&s, &[]);
    assert_base_routes(&s);
    assert_eq!(
        s.info.counts,
        EntityCounts {
            regions: 1,
            subnets: 1,
            server_groups: 1,
            servers: 2,
            linear_channels: 1,
            tv_streams: 1,
            programs: 1,
            program_records: 1,
        }
    );
}

// ----- quarantine -----

#[test]
fn bad_subnets_are_quarantined() {
    for cidr in ["10.0.0.0/33", "not-a-cidr", "10.0.0/8", ""] {
        let s = assert_quarantined(
            cidr,
            base().add("subnets", subnet(5, cidr, 1)),
            &[("subnets", 1, Some(5), true, "is not a CIDR")],
        );
        assert_eq!(s.info.counts.subnets, 1);
    }
    let s = assert_quarantined(
        "dangling region",
        base().add("subnets", subnet(5, "10.1.0.0/16", 99)),
        &[("subnets", 1, Some(5), true, "no region 99")],
    );
    assert_eq!(chain(&s, CLIENT), Some(vec![1]));
}

#[test]
fn bad_servers_are_quarantined_and_dropped_from_groups() {
    let cases = [
        ("weight 0", edge(5, "bad.example", 80, 0), "weight 0"),
        ("weight -3", edge(5, "bad.example", 80, -3), "weight -3"),
        (
            "no weight",
            without(edge(5, "bad.example", 80, 1), "weight"),
            "weight 0",
        ),
        (
            "slash in domain",
            edge(5, "bad.example/x", 80, 1),
            "not a host name",
        ),
        (
            "space in domain",
            edge(5, "bad host.example", 80, 1),
            "not a host name",
        ),
        (
            "URL as domain",
            edge(5, "http://bad.example", 80, 1),
            "not a host name",
        ),
        ("empty domain", edge(5, "", 80, 1), "not a host name"),
        ("port 0", edge(5, "bad.example", 0, 1), "port 0"),
        ("port 70000", edge(5, "bad.example", 70000, 1), "port 70000"),
        ("port -80", edge(5, "bad.example", -80, 1), "port -80"),
        (
            "bad ip",
            with(edge(5, "bad.example", 80, 1), "ip", json!("10.0.0")),
            "not an IP",
        ),
        (
            "port as text",
            with(edge(5, "bad.example", 80, 1), "port", json!("eighty")),
            "invalid type",
        ),
        (
            "weight as text",
            with(edge(5, "bad.example", 80, 1), "weight", json!("1")),
            "invalid type",
        ),
    ];
    for (label, server, reason) in cases {
        // The bad server is listed by group 1 too: the group is kept without it.
        let doc = base()
            .add("servers", server)
            .add("server_groups", group(3, "ACTIVE", &[5, 1]));
        let s = assert_quarantined(
            label,
            doc,
            &[
                ("servers", 2, Some(5), true, reason),
                ("server_groups", 1, Some(3), false, "no server 5"),
            ],
        );
        assert!(s.servers.iter().all(|x| x.id != 5), "{label}");
        assert_eq!(s.info.counts.servers, 2);
        assert_eq!(s.info.counts.server_groups, 2);
    }
}

#[test]
fn dvr_weight_is_not_checked() {
    // Weight only matters for edges: a DVR with weight 0 still holds records.
    let s = base()
        .add("servers", with(dvr(5, json!("d5")), "weight", json!(0)))
        .load();
    assert_problems(&s, &[]);
    assert_eq!(s.info.counts.servers, 3);
}

#[test]
fn bad_streams_are_quarantined() {
    let cases = [
        (
            "URL as path",
            stream(5, 1, "MPD", "NONE", "http://evil/x"),
            "not a path",
            Some(5),
        ),
        (
            "space in path",
            stream(5, 1, "MPD", "NONE", "a b"),
            "not a path",
            Some(5),
        ),
        (
            "CRLF in path",
            stream(5, 1, "MPD", "NONE", "/a\r\nb"),
            "not a path",
            Some(5),
        ),
        (
            "query in path",
            stream(5, 1, "MPD", "NONE", "/a?b=1"),
            "not a path",
            Some(5),
        ),
        (
            "empty path",
            stream(5, 1, "MPD", "NONE", ""),
            "not a path",
            Some(5),
        ),
        (
            "dangling channel",
            stream(5, 99, "MPD", "NONE", "/x.mpd"),
            "no linear channel 99",
            Some(5),
        ),
        (
            "path as number",
            with(stream(5, 1, "MPD", "NONE", "/x"), "stream_path", json!(7)),
            "invalid type",
            Some(5),
        ),
        (
            "id as text",
            with(stream(5, 1, "MPD", "NONE", "/x"), "id", json!("five")),
            "invalid type",
            None,
        ),
    ];
    for (label, bad, reason, id) in cases {
        let s = assert_quarantined(
            label,
            base().add("tv_streams", bad),
            &[("tv_streams", 1, id, true, reason)],
        );
        assert_eq!(s.info.counts.tv_streams, 1, "{label}");
    }
}

#[test]
fn bad_records_are_quarantined() {
    let cases = [
        (
            "server is an EDGE",
            record(5, 1, 1, "MPD", "NONE", "COMPLETED", "evil"),
            "server 1 is not a DVR",
        ),
        (
            "dangling server",
            record(5, 1, 99, "MPD", "NONE", "COMPLETED", "evil"),
            "no server 99",
        ),
        (
            "dangling program",
            record(5, 99, 2, "MPD", "NONE", "COMPLETED", "evil"),
            "no program 99",
        ),
        (
            "URL as path",
            record(5, 1, 2, "MPD", "NONE", "COMPLETED", "http://evil/x"),
            "not a path",
        ),
        (
            "space in path",
            record(5, 1, 2, "MPD", "NONE", "COMPLETED", "a b"),
            "not a path",
        ),
        (
            "no path",
            without(record(5, 1, 2, "MPD", "NONE", "COMPLETED", "x"), "path"),
            "missing field",
        ),
    ];
    for (label, bad, reason) in cases {
        let s = assert_quarantined(
            label,
            base().add("program_records", bad),
            &[("program_records", 1, Some(5), true, reason)],
        );
        assert_eq!(s.info.counts.program_records, 1, "{label}");
    }
}

#[test]
fn bad_channels_programs_and_regions_are_quarantined() {
    assert_quarantined(
        "channel epg id with a slash",
        base().add("linear_channels", channel(5, "a/b")),
        &[("linear_channels", 1, Some(5), true, "is not [A-Za-z0-9_]+")],
    );
    assert_quarantined(
        "program on a missing channel",
        base().add("programs", program(5, 99, "p_5")),
        &[("programs", 1, Some(5), true, "no linear channel 99")],
    );
    assert_quarantined(
        "program epg id with a dot",
        base().add("programs", program(5, 1, "p.5")),
        &[("programs", 1, Some(5), true, "is not [A-Za-z0-9_]+")],
    );
    assert_quarantined(
        "region groups as text",
        base().add(
            "regions",
            with(region(7, "ACTIVE", &[1]), "server_group_ids", json!("1")),
        ),
        &[("regions", 1, Some(7), true, "invalid type")],
    );
    assert_quarantined(
        "subnet region_id as text",
        base().add(
            "subnets",
            with(subnet(5, "10.1.0.0/16", 1), "region_id", json!("1")),
        ),
        &[("subnets", 1, Some(5), true, "invalid type")],
    );
    assert_quarantined(
        "a server that is not an object",
        base().add("servers", json!(42)),
        &[("servers", 2, None, true, "invalid type")],
    );
}

#[test]
fn duplicate_ids_keep_the_first_entity() {
    let s = assert_quarantined(
        "duplicate server",
        base().add("servers", edge(1, "dup.example", 80, 100)),
        &[("servers", 2, Some(1), true, "duplicate id")],
    );
    assert_eq!(s.servers.iter().filter(|x| x.id == 1).count(), 1);
    let s = assert_quarantined(
        "duplicate subnet",
        base().add("subnets", subnet(1, "10.1.0.0/16", 1)),
        &[("subnets", 1, Some(1), true, "duplicate id")],
    );
    assert_eq!(
        s.network_of(ip(CLIENT)).unwrap().cidr.to_string(),
        "10.0.0.0/8"
    );
    assert_quarantined(
        "duplicate stream",
        base().add("tv_streams", stream(1, 1, "MPD", "NONE", "/dup.mpd")),
        &[("tv_streams", 1, Some(1), true, "duplicate id")],
    );
    assert_quarantined(
        "duplicate record",
        base().add(
            "program_records",
            record(1, 1, 2, "MPD", "NONE", "COMPLETED", "dup"),
        ),
        &[("program_records", 1, Some(1), true, "duplicate id")],
    );
    assert_quarantined(
        "duplicate region",
        base().add("regions", region(1, "INACTIVE", &[])),
        &[("regions", 1, Some(1), true, "duplicate id")],
    );
}

#[test]
fn missing_server_group_reference_is_dropped_and_the_region_kept() {
    let doc = base().add("regions", region(3, "ACTIVE", &[99, 1]));
    let s = assert_quarantined(
        "region lists group 99",
        doc,
        &[("regions", 1, Some(3), false, "no server group 99")],
    );
    assert_eq!(edge_ids(&s, 3), vec![1]);
    assert_eq!(s.info.counts.regions, 2);
    assert_eq!(
        s.info.problems[0].to_string(),
        "regions[1] id=3: server_group_ids: no server group 99 (kept, reference dropped)"
    );
}

// ----- schema evolution -----

/// Adds unknown fields to every entity of every array, and unknown top-level keys.
fn with_unknown_fields(doc: Doc) -> Doc {
    let mut doc = doc;
    for items in doc.0.values_mut() {
        for item in items.as_array_mut().unwrap() {
            let item = item.as_object_mut().unwrap();
            item.insert("future_field".into(), json!({"nested": [1, "x", null]}));
            item.insert("inserted_at".into(), json!("2019-03-04T10:00:00Z"));
            item.insert("region_ids".into(), json!([1, 2, 3]));
        }
    }
    doc.top("future_entities", json!([{"id": 1, "cidr": "x"}]))
        .top("generated_by", json!({"admin": "2.0"}))
        .top("epg_sources", json!("ignored"))
}

#[test]
fn unknown_fields_and_top_level_keys_are_ignored() {
    let plain = base().load();
    let extended = with_unknown_fields(base()).load();
    assert_problems(&extended, &[]);
    assert_eq!(fingerprint(&extended), fingerprint(&plain));
    assert_base_routes(&extended);
    // Also through YAML.
    let yaml = serde_yaml::to_string(&with_unknown_fields(base()).0).unwrap();
    let from_yaml = load_snapshot(yaml.as_bytes(), "y").unwrap();
    assert_eq!(fingerprint(&from_yaml), fingerprint(&plain));
}

#[test]
fn unknown_enum_values_never_match_but_are_not_rejected() {
    let doc = base()
        // Region 3 ARCHIVED; region 5 ACTIVE but its only group ARCHIVED.
        .add("regions", region(3, "ARCHIVED", &[1]))
        .add("regions", region(5, "ACTIVE", &[4]))
        .add("server_groups", group(4, "ARCHIVED", &[1]))
        // Servers 6 (ARCHIVED) and 7 (ORIGIN) in a group of region 1.
        .add("server_groups", group(8, "ACTIVE", &[6, 7]))
        .add(
            "servers",
            with(
                edge(6, "archived.example", 80, 5),
                "status",
                json!("ARCHIVED"),
            ),
        )
        .add(
            "servers",
            with(edge(7, "origin.example", 80, 5), "type", json!("ORIGIN")),
        )
        .add("subnets", subnet(3, "10.3.0.0/16", 3))
        .add("subnets", subnet(5, "10.5.0.0/16", 5))
        .add("linear_channels", channel(2, "epg_2"))
        .add("tv_streams", stream(10, 2, "DASH", "NONE", "/dash.mpd"))
        .add(
            "tv_streams",
            stream(11, 2, "HLS", "FAIRPLAY", "/fairplay.m3u8"),
        )
        .add(
            "tv_streams",
            with(
                stream(12, 2, "MPD", "CENC", "/archived.mpd"),
                "status",
                json!("ARCHIVED"),
            ),
        )
        .add("programs", program(2, 2, "p_2"))
        .add(
            "program_records",
            record(10, 2, 2, "DASH", "NONE", "COMPLETED", "dash"),
        )
        .add(
            "program_records",
            record(11, 2, 2, "HLS", "FAIRPLAY", "COMPLETED", "fairplay"),
        )
        .add(
            "program_records",
            record(12, 2, 2, "MPD", "CENC", "ARCHIVED", "archived"),
        );
    let mut doc = doc;
    let regions = doc.0.get_mut("regions").unwrap().as_array_mut().unwrap();
    regions[0] = region(1, "ACTIVE", &[1, 8]);
    let s = doc.load();
    assert_problems(&s, &[]);
    assert_base_routes(&s);
    assert_eq!(s.info.counts.servers, 4);
    assert_eq!(s.info.counts.tv_streams, 4);
    assert_eq!(s.info.counts.program_records, 4);
    assert!(!s.regions.iter().find(|r| r.id == 3).unwrap().active);
    assert_eq!(edge_ids(&s, 3), Vec::<Id>::new());
    assert_eq!(edge_ids(&s, 5), Vec::<Id>::new());
    let origin = s.servers.iter().find(|x| x.id == 7).unwrap();
    assert_eq!(origin.server_type, ServerType::Other);
    // Clients of regions 3 and 5 fall back to subnet 1.
    assert_eq!(chosen(&s, "10.3.0.1"), Some((1, 1)));
    assert_eq!(chosen(&s, "10.5.0.1"), Some((1, 1)));
    for p in [Hls, Mpd] {
        for e in [E::None, E::Cenc, E::Widevine, E::PlayReady] {
            assert_eq!(live(&s, "epg_2", p, e), None, "live {p:?} {e:?}");
            assert_eq!(catchup(&s, "p_2", p, e), None, "catch-up {p:?} {e:?}");
        }
    }
}

#[test]
fn absent_encryption_means_none() {
    let s = base()
        .add("linear_channels", channel(2, "epg_2"))
        .add(
            "tv_streams",
            without(stream(5, 2, "MPD", "CENC", "/absent.mpd"), "encryption"),
        )
        .load();
    assert_problems(&s, &[]);
    assert_eq!(live(&s, "epg_2", Mpd, E::None), Some("/absent.mpd"));
    assert_eq!(live(&s, "epg_2", Mpd, E::Cenc), None);
}

// ----- prefix table and fallback chains -----

#[test]
fn fallback_chain_follows_original_subnet_ordering_vectors() {
    let s = Doc::default()
        .add("regions", region(1, "ACTIVE", &[]))
        .add("subnets", subnet(1, "147.147.147.147/30", 1))
        .add("subnets", subnet(2, "147.147.147.144/28", 1))
        .add("subnets", subnet(3, "147.147.147.130/26", 1))
        .load();
    assert_problems(&s, &[]);
    assert_eq!(chain(&s, "147.147.147.145"), Some(vec![1, 2, 3]));
    assert_eq!(chain(&s, "147.147.147.150"), Some(vec![2, 3]));
    assert_eq!(chain(&s, "147.147.147.180"), Some(vec![3]));
    assert_eq!(chain(&s, "147.147.124.70"), None);
    // Host bits are discarded: .130/26 covers .128-.191, .147/30 covers .144-.147.
    assert_eq!(chain(&s, "147.147.147.128"), Some(vec![3]));
    assert_eq!(chain(&s, "147.147.147.191"), Some(vec![3]));
    assert_eq!(chain(&s, "147.147.147.192"), None);
    assert_eq!(chain(&s, "147.147.147.144"), Some(vec![1, 2, 3]));
    assert_eq!(chain(&s, "147.147.147.148"), Some(vec![2, 3]));
    assert_eq!(
        s.network_of(ip("147.147.147.145"))
            .unwrap()
            .cidr
            .to_string(),
        "147.147.147.144/30"
    );
    // IPv4-mapped IPv6 clients are looked up as IPv4; IPv4-compatible ones are not.
    assert_eq!(chain(&s, "::ffff:147.147.147.145"), Some(vec![1, 2, 3]));
    assert_eq!(chain(&s, "::ffff:147.147.147.180"), Some(vec![3]));
    assert_eq!(chain(&s, "::147.147.147.145"), None);
}

#[test]
fn identical_networks_keep_ascending_subnet_ids() {
    let s = Doc::default()
        .add("regions", region(1, "ACTIVE", &[]))
        .add("regions", region(2, "ACTIVE", &[]))
        .add("subnets", subnet(9, "10.20.0.0/16", 1))
        .add("subnets", subnet(6, "10.0.0.0/8", 2))
        .add("subnets", subnet(4, "10.20.77.1/16", 2))
        .add("subnets", subnet(7, "10.20.0.0/16", 1))
        .load();
    assert_eq!(chain(&s, "10.20.1.1"), Some(vec![4, 7, 9, 6]));
    assert_eq!(chain(&s, "10.21.1.1"), Some(vec![6]));
    assert_eq!(s.networks().count(), 2);
    let step_regions: Vec<Id> = s
        .network_of(ip("10.20.1.1"))
        .unwrap()
        .chain
        .iter()
        .map(|c| s.regions[c.region as usize].id)
        .collect();
    assert_eq!(step_regions, vec![2, 1, 1, 2]);
}

#[test]
fn ipv6_subnets_have_their_own_chains() {
    let s = Doc::default()
        .add("regions", region(1, "ACTIVE", &[]))
        .add("subnets", subnet(10, "2001:db8::/32", 1))
        .add("subnets", subnet(11, "2001:db8:1::/48", 1))
        .add("subnets", subnet(12, "2001:db8:1::1/128", 1))
        .add("subnets", subnet(13, "10.0.0.0/8", 1))
        .load();
    assert_problems(&s, &[]);
    assert_eq!(chain(&s, "2001:db8:1::1"), Some(vec![12, 11, 10]));
    assert_eq!(chain(&s, "2001:db8:1::2"), Some(vec![11, 10]));
    assert_eq!(chain(&s, "2001:db8:ffff::1"), Some(vec![10]));
    assert_eq!(chain(&s, "2001:db9::1"), None);
    assert_eq!(chain(&s, "10.0.0.1"), Some(vec![13]));
    assert_eq!(chain(&s, "::ffff:10.0.0.1"), Some(vec![13]));
    assert_eq!(chain(&s, "::a00:1"), None);
}

// ----- edge eligibility and choice -----

/// Region 1 (status `region_status`, groups `groups`) → group 1 (`group_status`) → `server`;
/// subnet 1 = 10.0.0.0/8.
fn single_edge(region_status: &str, group_status: &str, server: Value, groups: &[Id]) -> Snapshot {
    Doc::default()
        .add("regions", region(1, region_status, groups))
        .add("server_groups", group(1, group_status, &[1]))
        .add("servers", server)
        .add("subnets", subnet(1, "10.0.0.0/8", 1))
        .load()
}

#[test]
fn region_edge_table_holds_only_eligible_edges() {
    let e1 = || edge(1, "e1.example", 80, 1);
    let cases = [
        ("control", single_edge("ACTIVE", "ACTIVE", e1(), &[1]), true),
        (
            "healthcheck disabled is still eligible",
            single_edge(
                "ACTIVE",
                "ACTIVE",
                with(e1(), "healthcheck_enabled", json!(false)),
                &[1],
            ),
            true,
        ),
        (
            "availability absent means available",
            single_edge("ACTIVE", "ACTIVE", without(e1(), "availability"), &[1]),
            true,
        ),
        (
            "region INACTIVE",
            single_edge("INACTIVE", "ACTIVE", e1(), &[1]),
            false,
        ),
        (
            "group INACTIVE",
            single_edge("ACTIVE", "INACTIVE", e1(), &[1]),
            false,
        ),
        (
            "server INACTIVE",
            single_edge(
                "ACTIVE",
                "ACTIVE",
                with(e1(), "status", json!("INACTIVE")),
                &[1],
            ),
            false,
        ),
        (
            "server status absent",
            single_edge("ACTIVE", "ACTIVE", without(e1(), "status"), &[1]),
            false,
        ),
        (
            "availability false",
            single_edge(
                "ACTIVE",
                "ACTIVE",
                with(e1(), "availability", json!(false)),
                &[1],
            ),
            false,
        ),
        (
            "type DVR",
            single_edge("ACTIVE", "ACTIVE", with(e1(), "type", json!("DVR")), &[1]),
            false,
        ),
        (
            "type absent",
            single_edge("ACTIVE", "ACTIVE", without(e1(), "type"), &[1]),
            false,
        ),
        (
            "region without groups",
            single_edge("ACTIVE", "ACTIVE", e1(), &[]),
            false,
        ),
    ];
    for (label, s, eligible) in cases {
        assert_problems(&s, &[]);
        let expected: Vec<Id> = if eligible { vec![1] } else { vec![] };
        assert_eq!(edge_ids(&s, 1), expected, "{label}");
        assert_eq!(
            chosen(&s, "10.0.0.1"),
            eligible.then_some((1, 1)),
            "{label}"
        );
        assert!(s.network_of(ip("10.0.0.1")).is_some(), "{label}");
    }
}

#[test]
fn edges_of_several_groups_are_deduplicated_in_id_order() {
    let s = Doc::default()
        .add("regions", region(1, "ACTIVE", &[2, 1]))
        .add("server_groups", group(1, "ACTIVE", &[3, 1]))
        .add("server_groups", group(2, "ACTIVE", &[1, 2]))
        .add("servers", edge(3, "e3.example", 80, 30))
        .add("servers", edge(1, "e1.example", 80, 10))
        .add("servers", edge(2, "e2.example", 80, 20))
        .add("subnets", subnet(1, "10.0.0.0/8", 1))
        .load();
    assert_eq!(edge_ids(&s, 1), vec![1, 2, 3]);
    assert_eq!(s.regions[0].edges.total_weight(), 60);
    // Tickets follow the original's interval walk over ascending ids.
    let pick = |ticket| {
        s.regions[0]
            .edges
            .pick_ticket(ticket)
            .map(|i| s.servers[i as usize].id)
    };
    assert_eq!(
        (pick(0), pick(9), pick(10), pick(29), pick(30), pick(59)),
        (Some(1), Some(1), Some(2), Some(2), Some(3), Some(3))
    );
}

#[test]
fn choose_edge_falls_back_to_less_specific_subnets() {
    let s = base()
        // 10.1.2.0/24 → region 3, INACTIVE although its group has an edge.
        .add("regions", region(3, "INACTIVE", &[1]))
        .add("subnets", subnet(5, "10.1.2.0/24", 3))
        // 10.1.0.0/16 → region 4 whose only edge is unavailable.
        .add("regions", region(4, "ACTIVE", &[2]))
        .add("server_groups", group(2, "ACTIVE", &[8]))
        .add(
            "servers",
            with(edge(8, "down.example", 80, 1), "availability", json!(false)),
        )
        .add("subnets", subnet(6, "10.1.0.0/16", 4))
        // 10.1.2.128/25 → region 9 with a healthy edge 9.
        .add("regions", region(9, "ACTIVE", &[3]))
        .add("server_groups", group(3, "ACTIVE", &[9]))
        .add("servers", edge(9, "e9.example", 80, 1))
        .add("subnets", subnet(7, "10.1.2.128/25", 9))
        // 172.16.0.0/12 → region 3 only: nothing eligible anywhere on the chain.
        .add("subnets", subnet(8, "172.16.0.0/12", 3))
        .load();
    assert_problems(&s, &[]);
    assert_eq!(chain(&s, "10.1.2.3"), Some(vec![5, 6, 1]));
    assert_eq!(chosen(&s, "10.1.2.3"), Some((1, 1)));
    assert_eq!(chosen(&s, "10.1.3.3"), Some((1, 1)));
    assert_eq!(chain(&s, "10.1.2.200"), Some(vec![7, 5, 6, 1]));
    assert_eq!(chosen(&s, "10.1.2.200"), Some((7, 9)));
    assert_eq!(chosen(&s, "172.16.0.1"), None);
    assert!(s.network_of(ip("172.16.0.1")).is_some());
    assert_eq!(chosen(&s, "192.0.2.1"), None);
    let (step, _) = choose(&s, "10.1.2.200", u64::MAX).unwrap();
    assert_eq!(s.regions[step.region as usize].id, 9);
}

// ----- content -----

#[test]
fn duplicate_streams_lowest_id_wins_in_any_order() {
    let orders: [[Id; 3]; 6] = [
        [9, 3, 5],
        [9, 5, 3],
        [3, 9, 5],
        [3, 5, 9],
        [5, 3, 9],
        [5, 9, 3],
    ];
    for order in orders {
        let mut doc = base().add("linear_channels", channel(2, "epg_2"));
        for id in order {
            doc = doc.add(
                "tv_streams",
                stream(id, 2, "HLS", "NONE", &format!("/id{id}.m3u8")),
            );
        }
        let s = doc.load();
        let found = s.live.find("epg_2", Hls, E::None).unwrap();
        assert_eq!(
            (found.id, &*found.path),
            (3, "/id3.m3u8"),
            "order {order:?}"
        );
        assert_eq!(live(&s, "epg_1", Hls, E::None), Some("/base.m3u8"));
    }
}

#[test]
fn duplicate_records_lowest_id_wins_in_any_order() {
    for order in [[8, 4, 6], [4, 6, 8], [6, 8, 4]] {
        let mut doc = base();
        for id in order {
            doc = doc.add(
                "program_records",
                record(id, 1, 2, "MPD", "CENC", "COMPLETED", &format!("rec{id}")),
            );
        }
        let s = doc.load();
        assert_eq!(
            catchup(&s, "p_1", Mpd, E::Cenc),
            Some("/dvr/dvr1/rec4"),
            "order {order:?}"
        );
    }
}

#[test]
fn inactive_duplicate_with_lower_id_does_not_hide_the_active_one() {
    let s = base()
        .add(
            "tv_streams",
            with(
                stream(0, 1, "MPD", "NONE", "/inactive.mpd"),
                "status",
                json!("INACTIVE"),
            ),
        )
        .add("tv_streams", stream(7, 1, "MPD", "NONE", "/active.mpd"))
        .add(
            "program_records",
            record(0, 1, 2, "MPD", "NONE", "RUNNING", "running"),
        )
        .add(
            "program_records",
            record(7, 1, 2, "MPD", "NONE", "COMPLETED", "completed"),
        )
        .load();
    assert_eq!(live(&s, "epg_1", Mpd, E::None), Some("/active.mpd"));
    assert_eq!(
        catchup(&s, "p_1", Mpd, E::None),
        Some("/dvr/dvr1/completed")
    );
}

const REQUESTS: [Encryption; 4] = [E::None, E::PlayReady, E::Widevine, E::Cenc];

/// §1.8.1: the candidates present and the chosen one per request (NONE, PLAYREADY, WIDEVINE,
/// CENC); "-" is nothing.
const MATRIX: [(&str, &[&str], [&str; 4]); 5] = [
    (
        "all",
        &["NONE", "PLAYREADY", "WIDEVINE", "CENC"],
        ["none", "playready", "widevine", "cenc"],
    ),
    (
        "none_cenc",
        &["NONE", "CENC"],
        ["none", "cenc", "cenc", "cenc"],
    ),
    (
        "none_pr",
        &["NONE", "PLAYREADY"],
        ["none", "playready", "-", "-"],
    ),
    (
        "none_wv",
        &["NONE", "WIDEVINE"],
        ["none", "-", "widevine", "-"],
    ),
    ("cenc_only", &["CENC"], ["-", "cenc", "cenc", "cenc"]),
];

#[test]
fn live_encryption_matrix() {
    let mut doc = base();
    let mut next_id = 10;
    for (row, (epg, present, _)) in MATRIX.iter().enumerate() {
        let channel_id = 10 + row as Id;
        doc = doc.add("linear_channels", channel(channel_id, epg));
        for enc in *present {
            doc = doc.add(
                "tv_streams",
                stream(
                    next_id,
                    channel_id,
                    "MPD",
                    enc,
                    &format!("/{}.mpd", enc.to_lowercase()),
                ),
            );
            next_id += 1;
        }
    }
    let s = doc.load();
    assert_problems(&s, &[]);
    for (epg, _, expected) in MATRIX {
        for (request, want) in REQUESTS.iter().zip(expected) {
            let want = (want != "-").then(|| format!("/{want}.mpd"));
            assert_eq!(
                live(&s, epg, Mpd, *request).map(str::to_string),
                want,
                "{epg} {request:?}"
            );
            assert_eq!(live(&s, epg, Hls, *request), None, "{epg} HLS {request:?}");
            assert_eq!(
                catchup(&s, epg, Mpd, *request),
                None,
                "{epg} is not a program"
            );
        }
    }
}

#[test]
fn catchup_encryption_matrix_sees_completed_records_only() {
    let mut doc = base();
    let mut next_id = 10;
    for (row, (epg, present, _)) in MATRIX.iter().enumerate() {
        let program_id = 10 + row as Id;
        doc = doc.add("programs", program(program_id, 1, epg));
        for enc in *present {
            let path = enc.to_lowercase();
            doc = doc.add(
                "program_records",
                record(next_id, program_id, 2, "HLS", enc, "COMPLETED", &path),
            );
            // Records in any other status are invisible, even with a lower id.
            for (k, status) in ["RUNNING", "NEW", "PLANNED", "ERROR", "CANCELED"]
                .iter()
                .enumerate()
            {
                let id = -(next_id * 10 + k as Id);
                doc = doc.add(
                    "program_records",
                    record(id, program_id, 2, "HLS", enc, status, status),
                );
            }
            next_id += 1;
        }
    }
    // A program with only non-COMPLETED records.
    doc = doc.add("programs", program(20, 1, "p_pending"));
    for (k, status) in ["RUNNING", "NEW", "PLANNED", "ERROR", "REMOVED"]
        .iter()
        .enumerate()
    {
        let enc = ["NONE", "CENC", "WIDEVINE", "PLAYREADY", "NONE"][k];
        doc = doc.add(
            "program_records",
            record(100 + k as Id, 20, 2, "HLS", enc, status, "pending"),
        );
    }
    let s = doc.load();
    assert_problems(&s, &[]);
    for (epg, _, expected) in MATRIX {
        for (request, want) in REQUESTS.iter().zip(expected) {
            let want = (want != "-").then(|| format!("/dvr/dvr1/{want}"));
            assert_eq!(
                catchup(&s, epg, Hls, *request).map(str::to_string),
                want,
                "{epg} {request:?}"
            );
            assert_eq!(
                catchup(&s, epg, Mpd, *request),
                None,
                "{epg} MPD {request:?}"
            );
            assert_eq!(live(&s, epg, Hls, *request), None, "{epg} is not a channel");
        }
    }
    for request in REQUESTS {
        assert_eq!(
            catchup(&s, "p_pending", Hls, request),
            None,
            "p_pending {request:?}"
        );
    }
}

#[test]
fn dvr_prefix_is_resolved_into_the_record_path() {
    // (prefix, or None for no prefix field; record path; catch-up path)
    let cases: [(Option<Value>, &str, &str); 6] = [
        (Some(json!("dvr1")), "rec123", "/dvr/dvr1/rec123"),
        (Some(json!(null)), "rec", "/dvr/rec"),
        (None, "rec", "/dvr/rec"),
        (Some(json!("")), "rec", "/dvr/rec"),
        (Some(json!("/a//b/")), "/rec//x", "/dvr/a/b/rec/x"),
        (Some(json!("deep/er")), "r.m3u8", "/dvr/deep/er/r.m3u8"),
    ];
    let mut doc = base();
    for (k, (prefix, path, _)) in cases.iter().enumerate() {
        let id = 10 + k as Id;
        let server = match prefix {
            Some(prefix) => dvr(id, prefix.clone()),
            None => without(dvr(id, json!(null)), "prefix"),
        };
        doc = doc
            .add("servers", server)
            .add("programs", program(id, 1, &format!("pfx_{k}")))
            .add(
                "program_records",
                record(id, id, id, "HLS", "NONE", "COMPLETED", path),
            );
    }
    let s = doc.load();
    assert_problems(&s, &[]);
    for (k, (_, _, expected)) in cases.iter().enumerate() {
        assert_eq!(
            catchup(&s, &format!("pfx_{k}"), Hls, E::None),
            Some(*expected),
            "case {k}"
        );
    }
}

#[test]
fn dvr_with_a_bad_prefix_is_quarantined_with_its_records() {
    let s = base()
        .add("servers", dvr(10, json!("http://evil/")))
        .add(
            "program_records",
            record(10, 1, 10, "MPD", "NONE", "COMPLETED", "evil"),
        )
        .load();
    assert_problems(
        &s,
        &[
            ("servers", 2, Some(10), true, "is not a path"),
            ("program_records", 1, Some(10), true, "no server 10"),
        ],
    );
    assert_base_routes(&s);
}

#[test]
fn base_urls_follow_the_port() {
    let s = Doc::default()
        .add("servers", edge(1, "e443.example", 443, 1))
        .add("servers", edge(2, "e80.example", 80, 1))
        .add("servers", edge(3, "e96.example", 96, 1))
        .add("servers", edge(4, "E8080.Example", 8080, 1))
        .add("servers", edge(5, "e65535.example", 65535, 1))
        .load();
    assert_problems(&s, &[]);
    let bases: Vec<(Id, &str, u16, &str, &str)> = s
        .servers
        .iter()
        .map(|x| (x.id, &*x.domain_name, x.port, &*x.live_base, &*x.http_base))
        .collect();
    assert_eq!(
        bases,
        vec![
            (
                1,
                "e443.example",
                443,
                "https://e443.example",
                "http://e443.example"
            ),
            (
                2,
                "e80.example",
                80,
                "http://e80.example",
                "http://e80.example"
            ),
            (
                3,
                "e96.example",
                96,
                "http://e96.example:96",
                "http://e96.example"
            ),
            (
                4,
                "e8080.example",
                8080,
                "http://e8080.example:8080",
                "http://e8080.example"
            ),
            (
                5,
                "e65535.example",
                65535,
                "http://e65535.example:65535",
                "http://e65535.example"
            ),
        ]
    );
}

#[test]
fn top_level_array_is_not_a_snapshot_document() {
    // serde would fill the document's fields positionally from an array; an empty array (an
    // admin API answering `[]`) must not become an empty snapshot.
    for doc in [
        &b"[]"[..],
        b"[null, [], [], [], [], [], [], [], []]",
        b"- 1\n- []\n",
    ] {
        let result = load_snapshot(doc, "x");
        assert!(
            matches!(result, Err(LoadError::Shape(_))),
            "{:?} must be rejected, got {:?}",
            String::from_utf8_lossy(doc),
            result.map(|s| s.info.counts)
        );
    }
}

#[test]
fn empty_object_is_an_empty_snapshot() {
    let s = load_snapshot(b"{}", "x").unwrap();
    assert_eq!(s.info.counts, EntityCounts::default());
    assert_problems(&s, &[]);
    assert!(s.network_of(ip(CLIENT)).is_none());
}

#[test]
fn deleted_edge_leaves_the_survivor() {
    // Edges 1 and 2000 are listed by group 1, but 2000 is gone from the servers.
    let mut doc = base();
    doc.0.get_mut("server_groups").unwrap()[0] = group(1, "ACTIVE", &[2_000, 1]);
    let s = doc.load();
    assert_problems(
        &s,
        &[("server_groups", 0, Some(1), false, "no server 2000")],
    );
    let mut rng = fastrand::Rng::with_seed(3);
    for _ in 0..1000 {
        assert_eq!(choose(&s, CLIENT, rng.u64(..)).map(|(_, e)| e.id), Some(1));
    }
}

#[test]
fn catchup_ignores_the_dvr_status_and_availability() {
    let down = with(
        with(dvr(5, json!("down")), "status", json!("INACTIVE")),
        "availability",
        json!(false),
    );
    let s = base()
        .add("servers", down)
        .add(
            "program_records",
            record(5, 1, 5, "MPD", "NONE", "COMPLETED", "rec"),
        )
        .load();
    assert_problems(&s, &[]);
    assert_eq!(catchup(&s, "p_1", Mpd, E::None), Some("/dvr/down/rec"));
}

#[test]
fn stream_paths_are_normalised() {
    let s = base()
        .add(
            "tv_streams",
            stream(5, 1, "MPD", "NONE", "no/leading//slash.mpd"),
        )
        .add("tv_streams", stream(6, 1, "MPD", "CENC", "///x///y.mpd"))
        .load();
    assert_problems(&s, &[]);
    assert_eq!(
        live(&s, "epg_1", Mpd, E::None),
        Some("/no/leading/slash.mpd")
    );
    assert_eq!(live(&s, "epg_1", Mpd, E::Cenc), Some("/x/y.mpd"));
}

// ----- property: whatever the loader accepts routes without panics -----

fn pick<T: Clone>(rng: &mut fastrand::Rng, items: &[T]) -> T {
    items[rng.usize(..items.len())].clone()
}

/// Mostly (9 in 10) one of the `good` values, otherwise one of the hostile `bad` ones.
fn good_or_bad(rng: &mut fastrand::Rng, good: &[Value], bad: &[Value]) -> Value {
    if rng.u8(0..10) > 0 {
        pick(rng, good)
    } else {
        pick(rng, bad)
    }
}

/// An id: mostly small (so duplicates and dangling references are common), sometimes
/// negative, extreme or of the wrong type.
fn random_id(rng: &mut fastrand::Rng) -> Value {
    match rng.u8(0..100) {
        0 => json!(-1),
        1 => json!(i64::MAX),
        2 => json!(i64::MIN),
        3 => json!("7"),
        4 => Value::Null,
        5 => json!(1.5),
        _ => json!(rng.i64(0..4)),
    }
}

fn random_ids(rng: &mut fastrand::Rng) -> Value {
    match rng.u8(0..20) {
        0 => json!("1,2"),
        1 => Value::Null,
        _ => Value::Array((0..rng.usize(0..5)).map(|_| random_id(rng)).collect()),
    }
}

/// `good` mostly, otherwise an unknown, miscased, empty or mistyped status.
fn random_status(rng: &mut fastrand::Rng, good: &str) -> Value {
    let bad = [
        Value::Null,
        json!(1),
        json!("DELETED"),
        json!("active"),
        json!(""),
        json!("RUNNING"),
        json!("INACTIVE"),
    ];
    good_or_bad(rng, &[json!(good)], &bad)
}

/// A CIDR: IPv4 or IPv6 in a small space (so networks nest), IPv4-mapped, bare addresses,
/// and malformed ones.
fn random_cidr(rng: &mut fastrand::Rng) -> Value {
    let text = match rng.u8(0..14) {
        0..=4 => format!("10.{}.{}.0/{}", rng.u8(0..4), rng.u8(0..4), rng.u8(0..=32)),
        5..=7 => format!("2001:db8:{:x}::/{}", rng.u8(0..4), rng.u8(0..=128)),
        8 => format!("::ffff:10.{}.0.0/{}", rng.u8(0..4), rng.u8(96..=128)),
        9 => pick(rng, &["0.0.0.0/0", "::/0", "10.1.2.3", "2001:db8::1"]).to_string(),
        10 => pick(
            rng,
            &["10.0.0.0/33", "::/129", "300.1.1.1/8", "10.0.0.0/-1"],
        )
        .to_string(),
        11 => pick(rng, &["abc", "", " 10.0.0.0/8 ", "fe80::1%eth0/64"]).to_string(),
        12 => return json!(10),
        _ => return Value::Null,
    };
    json!(text)
}

fn random_content_path(rng: &mut fastrand::Rng) -> Value {
    let good = [json!("/live/ch.m3u8"), json!("rel//path.mpd"), json!("r1")];
    let bad = [
        json!("/a b"),
        json!("/a?b"),
        json!("http://evil/x"),
        json!("/\u{e9}"),
        json!("/a\r\nb"),
        json!(""),
        json!(5),
        Value::Null,
    ];
    good_or_bad(rng, &good, &bad)
}

fn random_epg_id(rng: &mut fastrand::Rng) -> Value {
    let good = [json!("epg_1"), json!("epg_2"), json!("p_1")];
    let bad = [json!("bad id"), json!(""), json!("\u{c4}"), json!(3)];
    good_or_bad(rng, &good, &bad)
}

fn random_server(rng: &mut fastrand::Rng) -> Value {
    let good_types = [json!("EDGE"), json!("EDGE"), json!("DVR")];
    let server_type = good_or_bad(
        rng,
        &good_types,
        &[json!("ORIGIN"), json!("edge"), Value::Null],
    );
    let good_domains = [
        json!("e1.example"),
        json!("E2.Example"),
        json!(" e3.example "),
    ];
    let bad_domains = [
        json!("bad host"),
        json!(""),
        json!("a..b"),
        json!("e4.example:80"),
        json!("\u{e9}.example"),
        json!(7),
    ];
    let domain = good_or_bad(rng, &good_domains, &bad_domains);
    let good_ports = [json!(80), json!(443), json!(8080), json!(65535)];
    let bad_ports = [json!(0), json!(70000), json!(-1), json!("80")];
    let port = good_or_bad(rng, &good_ports, &bad_ports);
    let good_weights = [json!(1), json!(3), json!(i64::MAX)];
    let bad_weights = [json!(0), json!(-5), json!(1.5), Value::Null];
    let weight = good_or_bad(rng, &good_weights, &bad_weights);
    let good_prefixes = [json!("dvr1"), json!("/x//y"), Value::Null];
    let bad_prefixes = [json!(""), json!("a?b"), json!("http://x"), json!(1)];
    let prefix = good_or_bad(rng, &good_prefixes, &bad_prefixes);
    let good_ips = [json!("192.0.2.1"), json!("2001:db8::1"), Value::Null];
    let ip = good_or_bad(rng, &good_ips, &[json!(""), json!("nope")]);
    json!({"id": random_id(rng), "type": server_type, "domain_name": domain, "ip": ip,
           "port": port, "status": random_status(rng, "ACTIVE"),
           "availability": rng.u8(0..5) > 0, "weight": weight, "prefix": prefix,
           "healthcheck_enabled": rng.bool()})
}

/// A valid edge with id 1 on a random port and weight.
fn random_edge_core(rng: &mut fastrand::Rng) -> Value {
    let port = pick(rng, &[80, 443, 8080, 65535]);
    let weight = pick(rng, &[1, 5, i64::MAX]);
    edge(1, pick(rng, &["e1.example", "E1.Example"]), port, weight)
}

/// Sometimes drops a field or adds an unknown one; rarely the entity is not an object.
fn mangle(rng: &mut fastrand::Rng, mut entity: Value) -> Value {
    match rng.u8(0..25) {
        0 => {
            let keys: Vec<String> = entity.as_object().unwrap().keys().cloned().collect();
            let key = pick(rng, &keys);
            entity.as_object_mut().unwrap().remove(&key);
        }
        1 => entity["x_unknown"] = json!({"nested": [1, 2]}),
        2 => return json!([entity]),
        3 => return json!("entity"),
        _ => {}
    }
    entity
}

/// A small random snapshot document: random entity counts, ids with duplicates and dangling
/// references, unknown enum values, malformed CIDRs, weights and ports out of range.
fn random_document(rng: &mut fastrand::Rng) -> Value {
    type Make = fn(&mut fastrand::Rng) -> Value;
    let arrays: [(&str, Make); 8] = [
        ("regions", |rng| {
            json!({"id": random_id(rng), "name": "r", "status": random_status(rng, "ACTIVE"),
                   "server_group_ids": random_ids(rng)})
        }),
        ("server_groups", |rng| {
            json!({"id": random_id(rng), "status": random_status(rng, "ACTIVE"),
                   "server_ids": random_ids(rng)})
        }),
        ("servers", random_server),
        (
            "subnets",
            |rng| json!({"id": random_id(rng), "cidr": random_cidr(rng), "region_id": random_id(rng)}),
        ),
        (
            "linear_channels",
            |rng| json!({"id": random_id(rng), "epg_id": random_epg_id(rng)}),
        ),
        ("tv_streams", |rng| {
            let protocol = good_or_bad(rng, &[json!("HLS"), json!("MPD")], &[json!("DASH")]);
            let encryption = good_or_bad(
                rng,
                &[
                    json!("NONE"),
                    json!("CENC"),
                    json!("WIDEVINE"),
                    json!("PLAYREADY"),
                ],
                &[json!("FAIRPLAY"), Value::Null],
            );
            json!({"id": random_id(rng), "linear_channel_id": random_id(rng),
                   "stream_path": random_content_path(rng),
                   "status": random_status(rng, "ACTIVE"), "protocol": protocol,
                   "encryption": encryption})
        }),
        ("programs", |rng| {
            json!({"id": random_id(rng), "linear_channel_id": random_id(rng),
                   "epg_id": random_epg_id(rng)})
        }),
        ("program_records", |rng| {
            let protocol = good_or_bad(rng, &[json!("HLS"), json!("MPD")], &[json!("hls")]);
            let encryption = good_or_bad(rng, &[json!("NONE"), json!("CENC")], &[json!("X")]);
            json!({"id": random_id(rng), "program_id": random_id(rng),
                   "server_id": random_id(rng), "status": random_status(rng, "COMPLETED"),
                   "path": random_content_path(rng), "protocol": protocol,
                   "encryption": encryption})
        }),
    ];
    // Half the documents also hold a routable core somewhere in their arrays (region 1 →
    // group 1 → edge 1, a subnet of region 1), which random entities before it may displace
    // (duplicate ids) or reference.
    let core = rng.bool().then(|| {
        let cidr = pick(rng, &["0.0.0.0/0", "10.0.0.0/8", "::/0", "2001:db8::/32"]);
        [
            ("regions", region(1, "ACTIVE", &[1])),
            ("server_groups", group(1, "ACTIVE", &[1, 2])),
            ("servers", random_edge_core(rng)),
            ("subnets", subnet(9, cidr, 1)),
        ]
    });
    let mut doc = serde_json::Map::new();
    for (name, make) in arrays {
        if rng.u8(0..10) == 0 {
            continue;
        }
        let mut items = Vec::new();
        for _ in 0..rng.usize(0..7) {
            let entity = make(rng);
            items.push(mangle(rng, entity));
        }
        for (array, entity) in core.iter().flatten() {
            if *array == name {
                items.insert(rng.usize(..=items.len()), entity.clone());
            }
        }
        doc.insert(name.to_string(), Value::Array(items));
    }
    if rng.bool() {
        let version = pick(rng, &[json!("v1"), json!(3), Value::Null]);
        doc.insert("version".into(), version);
    }
    Value::Object(doc)
}

/// Counts and problems agree with the document: every entity is either counted or
/// quarantined (once), never both.
fn assert_counts_consistent(s: &Snapshot, doc: &Value) {
    let c = &s.info.counts;
    assert_eq!(c.regions, s.regions.len());
    assert_eq!(c.servers, s.servers.len());
    assert_eq!(c.subnets, s.subnet_ids.len());
    assert!(c.tv_streams >= s.live.len() && c.program_records >= s.catchup.len());
    let distinct = |ids: Vec<Id>| ids.iter().collect::<std::collections::BTreeSet<_>>().len();
    assert_eq!(
        distinct(s.servers.iter().map(|x| x.id).collect()),
        c.servers
    );
    assert_eq!(
        distinct(s.regions.iter().map(|x| x.id).collect()),
        c.regions
    );
    assert_eq!(distinct(s.subnet_ids.to_vec()), c.subnets);
    for (name, counted) in c.by_kind() {
        let len = doc.get(name).and_then(Value::as_array).map_or(0, Vec::len);
        let quarantined: Vec<usize> = s
            .info
            .problems
            .iter()
            .filter(|p| p.entity == name && p.quarantined)
            .map(|p| p.index)
            .collect();
        let unique: std::collections::BTreeSet<_> = quarantined.iter().collect();
        assert_eq!(unique.len(), quarantined.len(), "{name}: quarantined twice");
        assert!(
            quarantined.iter().all(|&i| i < len),
            "{name}: index out of range"
        );
        assert_eq!(
            counted + quarantined.len(),
            len,
            "{name}: {counted} counted + {} quarantined != {len}\n{:#?}",
            quarantined.len(),
            s.info.problems
        );
    }
}

#[test]
fn routing_never_panics_on_any_snapshot_the_loader_accepts() {
    use crate::config::{Mode, RouteConfig, RoutesConfig, SelectionPolicy};
    use crate::routing::{decide, Outcome, RequestFacts, RoutingPolicy};
    let consistent = RoutingPolicy {
        routes: RoutesConfig(
            [RouteConfig {
                mode: Mode::Redirect,
                selection: SelectionPolicy::Consistent,
                spread: 3,
                ..RouteConfig::default()
            }; 4],
        ),
        panic_mode: false,
        ..RoutingPolicy::default()
    };
    let policies = [RoutingPolicy::default(), consistent];
    let mut rng = fastrand::Rng::with_seed(0x5eed_0300);
    let (mut loaded_with_edges, mut redirects) = (0, 0);
    for round in 0..300 {
        let doc = random_document(&mut rng);
        let bytes = if round % 5 == 0 {
            serde_yaml::to_string(&doc).unwrap().into_bytes()
        } else {
            serde_json::to_vec(&doc).unwrap()
        };
        // Entity arrays are always arrays here, so whatever is in them the document loads.
        let s = load_snapshot(&bytes, "property").unwrap_or_else(|e| panic!("{e}: {doc}"));
        assert_counts_consistent(&s, &doc);
        if !s.eligible_edge_ids().is_empty() {
            loaded_with_edges += 1;
        }
        // Some edges are down, so health fallbacks and panic mode run too.
        for server in &s.servers {
            server.health.set_up(rng.u8(0..4) > 0);
        }
        let mut paths = vec![
            "/vod/a//b.mp4".to_string(),
            "/static".to_string(),
            "/btv/live/hls/epg_1".to_string(),
            "/btv/catchup/mpd_wv/p_1".to_string(),
        ];
        paths.extend(
            s.live
                .epg_ids()
                .map(|id| format!("/btv/live/mpd_wv/{id}.mpd")),
        );
        paths.extend(
            s.catchup
                .epg_ids()
                .map(|id| format!("/btv/catchup/hls/{id}")),
        );
        let mut clients: Vec<IpAddr> = s
            .networks()
            .flat_map(|n| [n.cidr.network(), n.cidr.broadcast()])
            .collect();
        clients.extend(
            [
                "10.1.2.3",
                "2001:db8:1::1",
                "::ffff:10.0.0.1",
                "8.8.8.8",
                "::",
            ]
            .map(ip),
        );
        for _ in 0..50 {
            let path = pick(&mut rng, &paths);
            let facts = RequestFacts {
                method: &http::Method::GET,
                path: &path,
                query: rng.bool().then_some("t=1"),
                peer: pick(&mut rng, &clients),
                x_real_ip: None,
                random: rng.u64(..),
                secure: false,
            };
            let d = decide(Some(&s), &policies[rng.usize(..2)], &facts);
            if let Outcome::Redirect {
                location, target, ..
            } = &d.outcome
            {
                let edge = &s.servers[target.edge_index as usize];
                assert!(
                    location.starts_with(&*edge.live_base)
                        || location.starts_with(&*edge.http_base),
                    "{location}"
                );
                assert!(location.bytes().all(|b| (0x21..=0x7e).contains(&b)));
                assert!(s.eligible_edge_ids().contains(&edge.id), "{location}");
                redirects += 1;
            }
        }
    }
    // The generator is not so hostile that nothing ever routes.
    assert!(
        loaded_with_edges > 60 && redirects > 600,
        "{loaded_with_edges} snapshots with edges, {redirects} redirects"
    );
}
