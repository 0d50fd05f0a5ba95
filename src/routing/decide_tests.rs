//! `decide()` end to end over a small snapshot: the original's worked examples (Appendix A)
//! with our documented differences, client addresses, fallback, hostile input and weights.

use super::*;
use crate::config::parse_cidr;
use crate::routing::RouteKind;
use crate::snapshot::{load_snapshot, Snapshot};
use http::Method;
use serde_json::{json, Value};

// ----- the snapshot -----

fn region(id: Id, status: &str, groups: &[Id]) -> Value {
    json!({"id": id, "name": format!("r{id}"), "status": status, "server_group_ids": groups})
}

fn group(id: Id, servers: &[Id]) -> Value {
    json!({"id": id, "status": "ACTIVE", "server_ids": servers})
}

fn edge(id: Id, domain: &str, port: u16, weight: u64) -> Value {
    json!({"id": id, "type": "EDGE", "domain_name": domain, "port": port, "status": "ACTIVE",
           "availability": true, "weight": weight})
}

fn subnet(id: Id, cidr: &str, region_id: Id) -> Value {
    json!({"id": id, "cidr": cidr, "region_id": region_id})
}

fn stream(id: Id, channel: Id, protocol: &str, encryption: &str, path: &str) -> Value {
    json!({"id": id, "linear_channel_id": channel, "stream_path": path, "status": "ACTIVE",
           "protocol": protocol, "encryption": encryption})
}

fn record(id: Id, program: Id, status: &str, encryption: &str, path: &str) -> Value {
    json!({"id": id, "program_id": program, "server_id": 90, "status": status, "protocol": "HLS",
           "encryption": encryption, "path": path})
}

/// Edge 1 `e1.example:<port>` serves region 10 via subnet 100 (10.0.0.0/8). Other networks:
/// 10.1.2.0/24 (subnet 101) → region 11, INACTIVE, whose edge is `inactive-region.example`;
/// 20.0.0.0/8 (200) → region 20, `e2.example`; 2001:db8::/32 (300) → region 30, `e6.example`;
/// 40.0.0.0/8 (400) → region 40, `w1.example` (weight 1) and `w3.example` (weight 3).
/// Channels: epg_1 (HLS NONE, MPD NONE, MPD CENC), epg_2 (MPD NONE only), epg_3 (MPD CENC
/// only). Programs: p_1 (COMPLETED HLS NONE `r1`, HLS CENC `r2`), p_2 (a RUNNING record only);
/// records live on DVR 90 with prefix `dvr1`.
fn snapshot(port: u16) -> Snapshot {
    let doc = json!({
        "version": "decide-tests",
        "regions": [
            region(10, "ACTIVE", &[1]), region(11, "INACTIVE", &[2]), region(20, "ACTIVE", &[3]),
            region(30, "ACTIVE", &[4]), region(40, "ACTIVE", &[5]),
        ],
        "server_groups": [group(1, &[1]), group(2, &[11]), group(3, &[2]), group(4, &[6]), group(5, &[43, 41])],
        "servers": [
            edge(1, "e1.example", port, 1), edge(11, "inactive-region.example", 80, 1),
            edge(2, "e2.example", 80, 1), edge(6, "e6.example", 80, 1),
            edge(41, "w1.example", 80, 1), edge(43, "w3.example", 80, 3),
            {"id": 90, "type": "DVR", "domain_name": "dvr.example", "port": 80, "status": "ACTIVE", "prefix": "dvr1"},
        ],
        "subnets": [
            subnet(100, "10.0.0.0/8", 10), subnet(101, "10.1.2.0/24", 11), subnet(200, "20.0.0.0/8", 20),
            subnet(300, "2001:db8::/32", 30), subnet(400, "40.0.0.0/8", 40),
        ],
        "linear_channels": [{"id": 1, "epg_id": "epg_1"}, {"id": 2, "epg_id": "epg_2"}, {"id": 3, "epg_id": "epg_3"}],
        "tv_streams": [
            stream(1, 1, "HLS", "NONE", "/live/ch1/index.m3u8"),
            stream(2, 1, "MPD", "NONE", "/none.mpd"),
            stream(3, 1, "MPD", "CENC", "/c.mpd"),
            stream(4, 2, "MPD", "NONE", "/epg2-none.mpd"),
            stream(5, 3, "MPD", "CENC", "/epg3-cenc.mpd"),
        ],
        "programs": [{"id": 1, "linear_channel_id": 1, "epg_id": "p_1"}, {"id": 2, "linear_channel_id": 1, "epg_id": "p_2"}],
        "program_records": [
            record(1, 1, "COMPLETED", "NONE", "r1"),
            record(2, 1, "COMPLETED", "CENC", "r2"),
            record(3, 2, "RUNNING", "NONE", "r3"),
        ],
    });
    let s = load_snapshot(&serde_json::to_vec(&doc).unwrap(), "decide-tests").unwrap();
    assert!(s.info.problems.is_empty(), "{:?}", s.info.problems);
    s
}

// ----- requests -----

/// A client in subnet 100 only.
const CLIENT: &str = "10.9.9.9";
/// A client in subnet 101 (region 11, INACTIVE) and subnet 100.
const FALLBACK_CLIENT: &str = "10.1.2.3";
/// A trusted proxy, itself in no subnet.
const PROXY: &str = "192.0.2.1";
/// In no subnet.
const NOWHERE: &str = "198.51.100.7";

fn policy(append_query_string: bool) -> RoutingPolicy {
    let trusted = ["192.0.2.1/32", "::1/128"].map(|net| parse_cidr(net).unwrap());
    RoutingPolicy {
        trusted_proxies: TrustedProxies(trusted.to_vec()),
        append_query_string,
        ..RoutingPolicy::default()
    }
}

#[derive(Clone)]
struct Req<'a> {
    method: Method,
    path: &'a str,
    query: Option<&'a str>,
    peer: &'a str,
    x_real_ip: Option<&'a [u8]>,
}

fn get(path: &str) -> Req<'_> {
    Req {
        method: Method::GET,
        path,
        query: None,
        peer: CLIENT,
        x_real_ip: None,
    }
}

impl<'a> Req<'a> {
    fn method(self, method: Method) -> Self {
        Req { method, ..self }
    }
    fn query(self, query: &'a str) -> Self {
        Req {
            query: Some(query),
            ..self
        }
    }
    fn from(self, peer: &'a str) -> Self {
        Req { peer, ..self }
    }
    fn x_real_ip(self, value: &'a str) -> Self {
        Req {
            x_real_ip: Some(value.as_bytes()),
            ..self
        }
    }

    fn decide_with(
        &self,
        snapshot: Option<&Snapshot>,
        policy: &RoutingPolicy,
        random: u64,
    ) -> Decision {
        let facts = RequestFacts {
            method: &self.method,
            path: self.path,
            query: self.query,
            peer: self.peer.parse().unwrap(),
            x_real_ip: self.x_real_ip,
            random,
            secure: false,
        };
        let mut decision = decide(snapshot, policy, &facts);
        // Expected outcomes below name edge, region and subnet; where the redirect points
        // inside the snapshot is checked by the tests that call `decide` directly.
        if let Outcome::Redirect { target, .. } = &mut decision.outcome {
            *target = ANY_TARGET;
        }
        decision
    }

    /// The outcome with the default policy (query appended) and a fixed random value.
    fn on(&self, snapshot: &Snapshot) -> Outcome {
        self.decide_with(Some(snapshot), &policy(true), 0).outcome
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Stands for the snapshot position of any redirect in expected outcomes.
const ANY_TARGET: EdgeTarget = EdgeTarget {
    path_start: 0,
    dir_end: 0,
    edge_index: 0,
    region_index: 0,
    panic: false,
    stream_id: None,
    stall: crate::snapshot::StallEffect::None,
};

/// A redirect by edge 1 of region 10 via subnet 100.
fn to_e1(location: &str) -> Outcome {
    Outcome::Redirect {
        location: location.to_string(),
        edge_id: 1,
        region_id: 10,
        subnet_id: 100,
        target: ANY_TARGET,
    }
}

const NO_CONTENT: Outcome = Outcome::NotFound(NotFound::Content);
const NO_EDGE: Outcome = Outcome::NotFound(NotFound::Edge);
const BAD_PATH: Outcome = Outcome::BadRequest(BadRequest::Path);
const BAD_CLIENT_IP: Outcome = Outcome::BadRequest(BadRequest::ClientIp);

fn assert_rows(rows: &[(&Snapshot, Req<'_>, Outcome)]) {
    for (snapshot, req, expected) in rows {
        let label = format!(
            "{} {:?} ?{:?} from {} x-real-ip {:?}",
            req.method, req.path, req.query, req.peer, req.x_real_ip
        );
        assert_eq!(&req.on(snapshot), expected, "{label}");
    }
}

// ----- tests -----

#[test]
fn appendix_a_worked_examples() {
    let (s80, s443) = (snapshot(80), snapshot(443));
    assert_rows(&[
        (
            &s80,
            get("/btv/live/hls/epg_1"),
            to_e1("http://e1.example/live/ch1/index.m3u8"),
        ),
        // WIDEVINE falls back to CENC.
        (
            &s80,
            get("/btv/live/mpd_wv/epg_1.mpd"),
            to_e1("http://e1.example/c.mpd"),
        ),
        (&s80, get("/btv/live/mpd_wv/epg_2"), NO_CONTENT),
        // NONE has no fallback.
        (&s80, get("/btv/live/mpd/epg_3"), NO_CONTENT),
        (
            &s443,
            get("/btv/live/hls/epg_1"),
            to_e1("https://e1.example/live/ch1/index.m3u8"),
        ),
        (
            &s80,
            get("/btv/catchup/hls_pr/p_1"),
            to_e1("http://e1.example/dvr/dvr1/r2"),
        ),
        (
            &s443,
            get("/btv/catchup/hls_pr/p_1"),
            to_e1("https://e1.example/dvr/dvr1/r2"),
        ),
        (&s80, get("/btv/catchup/hls/p_2"), NO_CONTENT),
        // VOD: http forced on a 443 edge; our difference: the query is kept.
        (
            &s443,
            get("/vod/a//b/c.mp4").query("t=1"),
            to_e1("http://e1.example/vod/a/b/c.mp4?t=1"),
        ),
        (
            &s80,
            get("/static/img/x.png"),
            to_e1("http://e1.example/static/img/x.png"),
        ),
        (
            &s443,
            get("/static/img/x.png"),
            to_e1("http://e1.example/static/img/x.png"),
        ),
        (&s80, get("/static"), to_e1("http://e1.example/static")),
        // Malformed X-Real-IP from a trusted proxy: 400, not the original's 500.
        (
            &s80,
            get("/btv/live/hls/epg_1").from(PROXY).x_real_ip("1.2.3"),
            BAD_CLIENT_IP,
        ),
        // Other methods: 405 (ours), HEAD is answered like GET (ours).
        (
            &s80,
            get("/btv/live/hls/epg_1").method(Method::POST),
            Outcome::MethodNotAllowed,
        ),
        (
            &s80,
            get("/btv/live/hls/epg_1").method(Method::HEAD),
            to_e1("http://e1.example/live/ch1/index.m3u8"),
        ),
        // Grammar failures: 400, not the original's 500.
        (&s80, get("/btv/live/hls/epg_1/"), BAD_PATH),
        // Fallback from the INACTIVE region of 10.1.2.0/24 to 10.0.0.0/8.
        (
            &s80,
            get("/btv/live/hls/epg_1").from(FALLBACK_CLIENT),
            to_e1("http://e1.example/live/ch1/index.m3u8"),
        ),
    ]);
}

#[test]
fn original_500s_and_400s_are_bad_requests() {
    let s = snapshot(80);
    for path in [
        "/btv/live/hls/epg_1/",
        "/btv/live",
        "/btv/live/hls/",
        "/btv/life/hls/epg_1",
        "/btv/live/HLS/epg_1",
        "/btv/live/hls_xx/epg_1",
        "/btv/live/hls/a/b",
        "/btv/live/hls/a!m3u8",
        "/btv/live/catchup/hls/epg_1",
        "//btv//live/hls/epg_1",
        "/btv//live/hls/epg_1",
        "/btv/live/hls/ep%20g",
        "/vod",
        "//vod/x",
        "/vod/a%zz",
        "/non/existing/path",
        "/BTV/live/hls/epg_1",
        "/",
        "",
    ] {
        let d = get(path).decide_with(Some(&s), &policy(true), 0);
        assert_eq!(
            d,
            Decision {
                kind: None,
                client_ip: None,
                outcome: BAD_PATH,
            },
            "{path:?}"
        );
    }
}

#[test]
fn head_is_answered_like_get_and_other_methods_are_not_allowed() {
    let s = snapshot(80);
    for path in [
        "/btv/live/hls/epg_1",
        "/btv/catchup/hls/p_1",
        "/vod/x.mp4",
        "/static/y",
        "/btv/live/hls/nope",
    ] {
        assert_eq!(
            get(path).method(Method::HEAD).on(&s),
            get(path).on(&s),
            "{path}"
        );
    }
    let custom = Method::from_bytes(b"PURGE").unwrap();
    for method in [
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
        custom,
    ] {
        for path in ["/btv/live/hls/epg_1", "/vod/x", "/non/existing/path"] {
            let d = get(path)
                .method(method.clone())
                .decide_with(Some(&s), &policy(true), 0);
            assert_eq!(
                d,
                Decision {
                    kind: None,
                    client_ip: None,
                    outcome: Outcome::MethodNotAllowed,
                },
                "{method} {path}"
            );
            let d = get(path)
                .method(method.clone())
                .decide_with(None, &policy(true), 0);
            assert_eq!(
                d.outcome,
                Outcome::MethodNotAllowed,
                "{method} {path} without snapshot"
            );
        }
    }
}

#[test]
fn query_string_is_appended_only_when_enabled() {
    let s = snapshot(443);
    let rows = [
        (
            get("/vod/a//b/c.mp4").query("t=1"),
            "http://e1.example/vod/a/b/c.mp4",
        ),
        (
            get("/static/x.png").query("v=2&w=%20"),
            "http://e1.example/static/x.png",
        ),
        (
            get("/btv/live/hls/epg_1.m3u8").query("token=abc"),
            "https://e1.example/live/ch1/index.m3u8",
        ),
        (
            get("/btv/catchup/hls/p_1").query("exp=9"),
            "https://e1.example/dvr/dvr1/r1",
        ),
    ];
    for (req, without_query) in rows {
        let query = req.query.unwrap();
        let on = req.decide_with(Some(&s), &policy(true), 0).outcome;
        assert_eq!(
            on,
            to_e1(&format!("{without_query}?{query}")),
            "{}",
            req.path
        );
        let off = req.decide_with(Some(&s), &policy(false), 0).outcome;
        assert_eq!(off, to_e1(without_query), "{}", req.path);
    }
    // Without a query nothing is appended, whatever the policy.
    assert_eq!(get("/vod/x").on(&s), to_e1("http://e1.example/vod/x"));
    // A query that cannot go into a Location is refused.
    for query in ["a=b c", "a=\r\nb", "x#frag", "a=\u{e9}", "a=\x7f", "a=\0"] {
        let d = get("/vod/x")
            .query(query)
            .decide_with(Some(&s), &policy(true), 0);
        assert_eq!(d.outcome, BAD_PATH, "{query:?}");
    }
}

#[test]
fn without_a_snapshot_only_valid_requests_get_no_snapshot() {
    let p = policy(true);
    let d = get("/btv/live/hls/epg_1").decide_with(None, &p, 0);
    assert_eq!(
        d,
        Decision {
            kind: Some(RouteKind::Live),
            client_ip: Some(ip(CLIENT)),
            outcome: Outcome::NoSnapshot,
        }
    );
    assert_eq!(
        get("/vod/x").decide_with(None, &p, 0).outcome,
        Outcome::NoSnapshot
    );
    assert_eq!(
        get("/btv/live/hls/epg_1/").decide_with(None, &p, 0).outcome,
        BAD_PATH
    );
    assert_eq!(get("/nowhere").decide_with(None, &p, 0).outcome, BAD_PATH);
    let bad_ip = get("/btv/live/hls/epg_1").from(PROXY).x_real_ip("unknown");
    assert_eq!(bad_ip.decide_with(None, &p, 0).outcome, BAD_CLIENT_IP);
}

#[test]
fn missing_content_and_missing_edge_are_told_apart() {
    let s = snapshot(80);
    assert_rows(&[
        (&s, get("/btv/live/hls/nope"), NO_CONTENT),
        (&s, get("/btv/live/hls_cenc/epg_1"), NO_CONTENT),
        (&s, get("/btv/catchup/mpd/p_1"), NO_CONTENT),
        (&s, get("/btv/catchup/hls/epg_1"), NO_CONTENT),
        (&s, get("/btv/live/hls/p_1"), NO_CONTENT),
        (&s, get("/btv/live/hls/epg_1").from(NOWHERE), NO_EDGE),
        (&s, get("/btv/catchup/hls/p_1").from(NOWHERE), NO_EDGE),
        (&s, get("/vod/x").from(NOWHERE), NO_EDGE),
        (&s, get("/static").from(NOWHERE), NO_EDGE),
        // Content is looked up first.
        (&s, get("/btv/live/hls/nope").from(NOWHERE), NO_CONTENT),
    ]);
    let d = get("/btv/live/hls/epg_1")
        .from(NOWHERE)
        .decide_with(Some(&s), &policy(true), 0);
    assert_eq!(
        d,
        Decision {
            kind: Some(RouteKind::Live),
            client_ip: Some(ip(NOWHERE)),
            outcome: NO_EDGE,
        }
    );
}

#[test]
fn x_real_ip_is_believed_only_from_trusted_proxies() {
    let s = snapshot(80);
    let e2 = Outcome::Redirect {
        location: "http://e2.example/vod/x".into(),
        edge_id: 2,
        region_id: 20,
        subnet_id: 200,
        target: ANY_TARGET,
    };
    let e1 = to_e1("http://e1.example/vod/x");
    let vod = || get("/vod/x");
    assert_rows(&[
        (&s, vod().from(PROXY).x_real_ip("20.0.0.5"), e2.clone()),
        (&s, vod().from("::1").x_real_ip("20.0.0.5"), e2.clone()),
        (
            &s,
            vod().from("::ffff:192.0.2.1").x_real_ip("20.0.0.5"),
            e2.clone(),
        ),
        (
            &s,
            vod().from(PROXY).x_real_ip("::ffff:20.0.0.5"),
            e2.clone(),
        ),
        (&s, vod().from(PROXY).x_real_ip(" 20.0.0.5 "), e2.clone()),
        // Untrusted peers: the header is ignored, even when malformed.
        (&s, vod().from(CLIENT).x_real_ip("20.0.0.5"), e1.clone()),
        (&s, vod().from(CLIENT).x_real_ip("garbage"), e1.clone()),
        (&s, vod().from("192.0.2.2").x_real_ip("10.9.9.9"), NO_EDGE),
        // A trusted proxy without the header is routed by its own address.
        (&s, vod().from(PROXY), NO_EDGE),
    ]);
    for bad in [
        "",
        "1.2.3",
        "1.2.3.4.5",
        "10.0.0.300",
        "1.2.3.4, 5.6.7.8",
        "unknown",
        "-1.2.3.4",
        "1.2.3.4:80",
    ] {
        let d = vod()
            .from(PROXY)
            .x_real_ip(bad)
            .decide_with(Some(&s), &policy(true), 0);
        assert_eq!(
            d,
            Decision {
                kind: Some(RouteKind::Vod),
                client_ip: None,
                outcome: BAD_CLIENT_IP,
            },
            "{bad:?}"
        );
    }
    let d = vod()
        .from(PROXY)
        .x_real_ip("20.0.0.5")
        .decide_with(Some(&s), &policy(true), 0);
    assert_eq!(d.client_ip, Some(ip("20.0.0.5")));
    let d = vod()
        .from(CLIENT)
        .x_real_ip("20.0.0.5")
        .decide_with(Some(&s), &policy(true), 0);
    assert_eq!(d.client_ip, Some(ip(CLIENT)));
}

#[test]
fn ipv6_clients_are_routed_by_ipv6_subnets() {
    let s = snapshot(80);
    let e6 = |location: &str| Outcome::Redirect {
        location: location.into(),
        edge_id: 6,
        region_id: 30,
        subnet_id: 300,
        target: ANY_TARGET,
    };
    assert_rows(&[
        (
            &s,
            get("/btv/live/mpd_cenc/epg_1").from("2001:db8::7"),
            e6("http://e6.example/c.mpd"),
        ),
        (
            &s,
            get("/vod/v.mp4").from(PROXY).x_real_ip("2001:db8:1::8"),
            e6("http://e6.example/vod/v.mp4"),
        ),
        (
            &s,
            get("/vod/v.mp4").from(PROXY).x_real_ip("[2001:db8::9]"),
            e6("http://e6.example/vod/v.mp4"),
        ),
        (&s, get("/vod/v.mp4").from("2001:db9::1"), NO_EDGE),
        // IPv4-mapped peers are IPv4 clients.
        (
            &s,
            get("/vod/v.mp4").from("::ffff:10.9.9.9"),
            to_e1("http://e1.example/vod/v.mp4"),
        ),
    ]);
    let d = get("/vod/v.mp4")
        .from("::ffff:10.9.9.9")
        .decide_with(Some(&s), &policy(true), 0);
    assert_eq!(d.client_ip, Some(ip(CLIENT)));
}

#[test]
fn redirect_reports_the_edge_region_and_subnet_actually_used() {
    let s = snapshot(96);
    // Directly in subnet 100, and via fallback from subnet 101: both report subnet 100.
    for client in [CLIENT, FALLBACK_CLIENT] {
        let d = get("/btv/live/hls/epg_1")
            .from(client)
            .decide_with(Some(&s), &policy(true), 0);
        assert_eq!(
            (d.kind, d.client_ip, d.outcome),
            (
                Some(RouteKind::Live),
                Some(ip(client)),
                to_e1("http://e1.example:96/live/ch1/index.m3u8"),
            ),
            "{client}"
        );
    }
    // The non-default port is shown for live and catch-up, never for VOD and static.
    assert_eq!(
        get("/btv/catchup/hls/p_1").on(&s),
        to_e1("http://e1.example:96/dvr/dvr1/r1")
    );
    assert_eq!(get("/vod/x").on(&s), to_e1("http://e1.example/vod/x"));
    assert_eq!(get("/static/x").on(&s), to_e1("http://e1.example/static/x"));
    let d = get("/btv/catchup/hls/p_1")
        .from("20.1.1.1")
        .decide_with(Some(&s), &policy(true), 0);
    assert_eq!(
        d.outcome,
        Outcome::Redirect {
            location: "http://e2.example/dvr/dvr1/r1".into(),
            edge_id: 2,
            region_id: 20,
            subnet_id: 200,
            target: ANY_TARGET,
        }
    );
    assert_eq!(d.kind, Some(RouteKind::Catchup));
}

/// Paths that must never reach a Location header.
const HOSTILE_PATHS: &[&str] = &[
    "/vod/a\r\nSet-Cookie: x=1",
    "/vod/a\nLocation: http://evil/",
    "/vod/a\rb",
    "/vod/a\0b",
    "/vod/a\tb",
    "/vod/a b",
    "/vod/\x7f",
    "/vod/\x1b[31m",
    "/vod/\u{85}",
    "/vod/\u{2028}x",
    "/vod/\u{e9}",
    "/vod/a\"b",
    "/vod/<script>",
    "/vod/a\\b",
    "/vod/a#b",
    "/vod/a?b",
    "/vod/../../etc/passwd",
    "/vod/%",
    "/vod/%0",
    "/static/a\r\n",
    "/static\r\n",
    "/static/./x",
    "/static/\u{feff}",
    "/btv/live/hls/epg_1\r\n",
    "/btv/live/hls/epg\n_1",
    "/btv/live/hls/epg_1\0",
    "/btv/catchup/hls/p_1 HTTP/1.1",
];

fn is_visible_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

#[test]
fn hostile_paths_are_bad_requests() {
    let s = snapshot(80);
    for path in HOSTILE_PATHS {
        for append in [true, false] {
            let d = get(path).decide_with(Some(&s), &policy(append), 0);
            assert_eq!(d.outcome, BAD_PATH, "{path:?}");
        }
    }
}

#[test]
fn accepted_paths_give_locations_without_control_characters() {
    let s = snapshot(80);
    // Escaped control characters stay escaped: copied verbatim, never decoded.
    for path in [
        "/vod/%0d%0aSet-Cookie:%20x=1",
        "/static/%00",
        "/vod/%E2%80%A8",
        "/vod/a@b:c;d=e,f!$&'()*+~",
    ] {
        match get(path).on(&s) {
            Outcome::Redirect { location, .. } => {
                assert_eq!(location, format!("http://e1.example{path}"));
                assert!(is_visible_ascii(&location), "{location:?}");
            }
            other => panic!("{path:?}: {other:?}"),
        }
    }
    // Random paths over a hostile alphabet: every one is refused or gives a visible-ASCII Location.
    let alphabet: Vec<char> = "ab/%0d.?#\\\" \t\r\n\0\x7f\u{85}\u{e9}:@".chars().collect();
    let mut rng = fastrand::Rng::with_seed(1);
    let (mut redirected, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let prefix = [
            "/vod/",
            "/static/",
            "/btv/live/hls/",
            "/btv/catchup/mpd_wv/",
        ][rng.usize(..4)];
        let tail: String = (0..rng.usize(0..8))
            .map(|_| alphabet[rng.usize(..alphabet.len())])
            .collect();
        let path = format!("{prefix}{tail}");
        let query: String = (0..rng.usize(0..4))
            .map(|_| alphabet[rng.usize(..alphabet.len())])
            .collect();
        let req = if rng.bool() {
            get(&path).query(&query)
        } else {
            get(&path)
        };
        match req.on(&s) {
            Outcome::Redirect { location, .. } => {
                assert!(
                    is_visible_ascii(&location),
                    "{path:?} ?{query:?} → {location:?}"
                );
                redirected += 1;
            }
            Outcome::BadRequest(BadRequest::Path) => refused += 1,
            Outcome::NotFound(NotFound::Content) => {}
            other => panic!("{path:?}: {other:?}"),
        }
    }
    assert!(
        redirected > 1000 && refused > 1000,
        "redirected {redirected}, refused {refused}"
    );
}

#[test]
fn weighted_choice_follows_weights_over_many_draws() {
    let s = snapshot(80);
    let p = policy(true);
    let req = get("/vod/x").from("40.1.2.3");
    let mut rng = fastrand::Rng::with_seed(2024);
    let draws = 40_000;
    let (mut w1, mut w3) = (0u32, 0u32);
    for _ in 0..draws {
        match req.decide_with(Some(&s), &p, rng.u64(..)).outcome {
            Outcome::Redirect {
                location,
                edge_id: 41,
                region_id: 40,
                subnet_id: 400,
                ..
            } => {
                assert_eq!(location, "http://w1.example/vod/x");
                w1 += 1;
            }
            Outcome::Redirect {
                location,
                edge_id: 43,
                region_id: 40,
                subnet_id: 400,
                ..
            } => {
                assert_eq!(location, "http://w3.example/vod/x");
                w3 += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(w1 + w3, draws);
    let share1 = f64::from(w1) / f64::from(draws);
    let share3 = f64::from(w3) / f64::from(draws);
    assert!((share1 - 0.25).abs() <= 0.02, "weight 1 share {share1}");
    assert!((share3 - 0.75).abs() <= 0.02, "weight 3 share {share3}");
    // The extremes of the random range reach both edges.
    let edge_at = |random| match req.decide_with(Some(&s), &p, random).outcome {
        Outcome::Redirect { edge_id, .. } => edge_id,
        other => panic!("{other:?}"),
    };
    assert_eq!((edge_at(0), edge_at(u64::MAX)), (41, 43));
}

// ----- property: the Location is always well formed -----

/// `scheme://host[:port]` and the rest (from the `/` on) of a Location, or why it is not one.
fn split_location(location: &str) -> Result<(&str, &str, Option<u16>, &str), String> {
    let (scheme, rest) = location
        .split_once("://")
        .ok_or_else(|| "no scheme".to_string())?;
    if scheme != "http" && scheme != "https" {
        return Err(format!("scheme {scheme:?}"));
    }
    let slash = rest.find('/').ok_or_else(|| "no path".to_string())?;
    let (authority, path) = rest.split_at(slash);
    let (host, port) = match authority.split_once(':') {
        None => (authority, None),
        Some((host, port)) => match port.parse::<u16>() {
            Ok(p) if p > 0 && !port.starts_with('0') => (host, Some(p)),
            _ => return Err(format!("port {port:?}")),
        },
    };
    Ok((scheme, host, port, path))
}

/// Path pieces for the generator: grammar words, hostile characters, escapes and unicode.
const PATH_PIECES: &[&str] = &[
    "a", "Z", "0", "9", "_", "-", "~", "epg_1", "epg_2", "epg_3", "p_1", "p_2", "hls", "mpd",
    "hls_wv", "mpd_cenc", "mpd_pr", "hls_xx", "HLS", ".m3u8", ".mpd", "/", "//", "%", "%0d", "%0a",
    "%00", "%2F", "%2e%2e", "%zz", "%E2", "%80", "%7", ".", "..", "./", "?", "#", "\\", "\r", "\n",
    "\r\n", "\t", " ", "\0", "\x7f", "\x1b", "\u{85}", "\u{a0}", "\u{e9}", "\u{2028}", "\u{feff}",
    "📺", "@", ":", ";", "=", "&", "'", "(", "*", "+", ",", "$", "!", "\"", "<", ">", "{", "|",
    "^", "`",
];

/// A random path: mostly a valid prefix with a random tail, sometimes a whole valid live
/// or catch-up path with a random suffix, sometimes no valid prefix at all.
fn random_path(rng: &mut fastrand::Rng) -> String {
    let tail = |rng: &mut fastrand::Rng, max: usize| -> String {
        (0..rng.usize(0..=max))
            .map(|_| PATH_PIECES[rng.usize(..PATH_PIECES.len())])
            .collect()
    };
    match rng.u8(0..10) {
        0..=5 => {
            let prefix = [
                "/btv/live/",
                "/btv/catchup/",
                "/vod/",
                "/static",
                "/static/",
            ][rng.usize(..5)];
            format!("{prefix}{}", tail(rng, 8))
        }
        6..=8 => {
            // Mostly content the snapshot has: live epg_1..3 in MPD, catch-up p_1 in HLS.
            let (kind, codecs, ids) = if rng.bool() {
                let codecs = ["hls", "mpd", "mpd_cenc", "mpd_pr", "mpd_wv", "hls_wv"];
                ("live", codecs, ["epg_1", "epg_2", "epg_3", "p_1"])
            } else {
                let codecs = ["hls", "hls_wv", "hls_pr", "hls_cenc", "mpd", "mpd_wv"];
                ("catchup", codecs, ["p_1", "p_1", "p_2", "epg_1"])
            };
            let codec = codecs[rng.usize(..codecs.len())];
            let id = ids[rng.usize(..ids.len())];
            let ext = ["", "", ".m3u8", ".mpd"][rng.usize(..4)];
            let extra = if rng.u8(0..4) == 0 {
                tail(rng, 2)
            } else {
                String::new()
            };
            format!("/btv/{kind}/{codec}/{id}{ext}{extra}")
        }
        _ => tail(rng, 10),
    }
}

/// A random query: visible ASCII, hostile characters or unicode.
fn random_query(rng: &mut fastrand::Rng) -> String {
    const QUERY_PIECES: &[&str] = &[
        "t", "=", "&", "1", "%20", "%0d%0a", "/", "?", "#", " ", "\t", "\r\n", "\0", "\x7f",
        "\u{e9}", "\u{2028}", "\"", "'", "<", "\\", "https:", "//evil",
    ];
    (0..rng.usize(0..6))
        .map(|_| QUERY_PIECES[rng.usize(..QUERY_PIECES.len())])
        .collect()
}

#[test]
fn location_is_scheme_host_port_path_whatever_the_request_path() {
    let snapshots = [snapshot(80), snapshot(443), snapshot(8080)];
    let consistent = RoutingPolicy {
        routes: crate::config::RoutesConfig(
            [crate::config::RouteConfig {
                mode: crate::config::Mode::Redirect,
                selection: crate::config::SelectionPolicy::Consistent,
                spread: 2,
                location_scheme: crate::config::LocationScheme::Edge,
            }; 4],
        ),
        ..policy(true)
    };
    let policies = [policy(true), policy(false), consistent];
    let clients = [
        CLIENT,
        FALLBACK_CLIENT,
        "20.1.1.1",
        "2001:db8::5",
        "40.1.2.3",
        NOWHERE,
    ];
    let mut rng = fastrand::Rng::with_seed(0x10ca7104);
    let mut redirects = [0u32; 4];
    let mut refused = 0u32;
    for _ in 0..50_000 {
        let s = &snapshots[rng.usize(..snapshots.len())];
        let p = &policies[rng.usize(..policies.len())];
        let path = random_path(&mut rng);
        let query = rng.bool().then(|| random_query(&mut rng));
        let (peer, x_real_ip): (&str, Option<&[u8]>) = if rng.u8(0..4) == 0 {
            (PROXY, Some(clients[rng.usize(..clients.len())].as_bytes()))
        } else {
            (clients[rng.usize(..clients.len())], None)
        };
        let method = if rng.bool() {
            Method::GET
        } else {
            Method::HEAD
        };
        let facts = RequestFacts {
            method: &method,
            path: &path,
            query: query.as_deref(),
            peer: ip(peer),
            x_real_ip,
            random: rng.u64(..),
            secure: false,
        };
        let d = decide(Some(s), p, &facts);
        let label = format!("{path:?} ?{query:?} from {peer} → {:?}", d.outcome);
        match &d.outcome {
            Outcome::Redirect {
                location, target, ..
            } => {
                assert!(is_visible_ascii(location), "{label}");
                let (scheme, host, port, rest) =
                    split_location(location).unwrap_or_else(|e| panic!("{e}: {label}"));
                let edge = s
                    .servers
                    .iter()
                    .find(|e| &*e.domain_name == host)
                    .unwrap_or_else(|| panic!("host not in the snapshot: {label}"));
                let (edge_path, _query) = rest.split_once('?').unwrap_or((rest, ""));
                assert!(edge_path.starts_with('/'), "{label}");
                assert!(
                    !rest.contains('#') && !edge_path.contains('\\') && !edge_path.contains("//"),
                    "{label}"
                );
                assert_eq!(s.servers[target.edge_index as usize].id, edge.id, "{label}");
                assert_eq!(&location[target.path_start..], rest, "{label}");
                let kind = d.kind.expect("a redirect has a kind");
                if matches!(kind, RouteKind::Vod | RouteKind::Static) {
                    // VOD and static: always http, no port, the normalised request path.
                    assert_eq!((scheme, port), ("http", None), "{label}");
                    let mut expected = String::new();
                    crate::routing::location::normalize_path_into(&mut expected, &path);
                    if let Some(q) = query.as_deref().filter(|_| p.append_query_string) {
                        expected.push('?');
                        expected.push_str(q);
                    }
                    assert_eq!(rest, expected, "{label}");
                } else {
                    let expected_port = (edge.port != 80 && edge.port != 443).then_some(edge.port);
                    let expected_scheme = if edge.port == 443 { "https" } else { "http" };
                    assert_eq!((scheme, port), (expected_scheme, expected_port), "{label}");
                }
                redirects[kind as usize] += 1;
            }
            Outcome::BadRequest(BadRequest::Path) => {
                assert!(
                    parse_route(&path).is_none()
                        || query
                            .as_deref()
                            .is_some_and(|q| p.append_query_string && !is_safe_query(q)),
                    "{label}"
                );
                refused += 1;
            }
            Outcome::NotFound(_) => {}
            other => panic!("unexpected {other:?}: {label}"),
        }
    }
    // The generator reaches every route kind's redirect and many refusals.
    assert!(
        redirects.iter().all(|&n| n > 1000) && refused > 5000,
        "redirects {redirects:?}, refused {refused}"
    );
}

/// `location_scheme` × edge port × the request's scheme → the Location's base, for live
/// (content path) and VOD (request path).
#[test]
fn location_scheme_table() {
    use crate::config::LocationScheme::{self, *};
    let with_scheme = |scheme: LocationScheme| RoutingPolicy {
        routes: crate::config::RoutesConfig(
            [crate::config::RouteConfig {
                location_scheme: scheme,
                ..Default::default()
            }; 4],
        ),
        ..policy(false)
    };
    let location = |s: &Snapshot, scheme, path: &str, secure: bool| {
        let facts = RequestFacts {
            method: &Method::GET,
            path,
            query: None,
            peer: CLIENT.parse().unwrap(),
            x_real_ip: None,
            random: 0,
            secure,
        };
        match decide(Some(s), &with_scheme(scheme), &facts).outcome {
            Outcome::Redirect { location, .. } => location,
            other => panic!("{other:?}"),
        }
    };
    let live = "/btv/live/hls/epg_1";
    let cases: &[(LocationScheme, u16, bool, &str, &str)] = &[
        // scheme, edge port, request over TLS, live base, VOD base
        (Edge, 80, true, "http://e1.example", "http://e1.example"),
        (Edge, 443, false, "https://e1.example", "http://e1.example"),
        (
            Edge,
            8080,
            true,
            "http://e1.example:8080",
            "http://e1.example",
        ),
        (Https, 80, false, "https://e1.example", "https://e1.example"),
        (
            Https,
            443,
            false,
            "https://e1.example",
            "https://e1.example",
        ),
        (
            Https,
            8443,
            false,
            "https://e1.example:8443",
            "https://e1.example",
        ),
        (
            Request,
            80,
            true,
            "https://e1.example",
            "https://e1.example",
        ),
        (
            Request,
            443,
            false,
            "http://e1.example",
            "http://e1.example",
        ),
        (
            Request,
            8080,
            false,
            "http://e1.example:8080",
            "http://e1.example",
        ),
        (
            Request,
            8080,
            true,
            "https://e1.example:8080",
            "https://e1.example",
        ),
    ];
    for &(scheme, port, secure, live_base, vod_base) in cases {
        let s = snapshot(port);
        let label = format!("{scheme:?} port {port} secure {secure}");
        assert_eq!(
            location(&s, scheme, live, secure),
            format!("{live_base}/live/ch1/index.m3u8"),
            "{label}"
        );
        assert_eq!(
            location(&s, scheme, "/vod//x.mp4", secure),
            format!("{vod_base}/vod/x.mp4"),
            "{label}"
        );
    }
}

// ----- sub-requests and edge hints -----

/// The Location of `path` from a client of region 40 (edges w1 = 41, w3 = 43), for random
/// values 0..n.
fn hinted_locations(s: &Snapshot, p: &RoutingPolicy, path: &str, n: u64) -> Vec<String> {
    (0..n)
        .map(|r| {
            match get(path)
                .from("40.1.2.3")
                .decide_with(Some(s), p, r.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .outcome
            {
                Outcome::Redirect { location, .. } => location,
                other => panic!("{path}: {other:?}"),
            }
        })
        .collect()
}

fn consistent_policy(spread: usize) -> RoutingPolicy {
    RoutingPolicy {
        routes: crate::config::RoutesConfig(
            [crate::config::RouteConfig {
                mode: crate::config::Mode::Proxy,
                selection: crate::config::SelectionPolicy::Consistent,
                spread,
                ..Default::default()
            }; 4],
        ),
        ..policy(true)
    }
}

/// `decide` itself (the target kept), from [`CLIENT`].
fn decided(s: &Snapshot, path: &str, query: Option<&str>) -> (String, EdgeTarget) {
    let facts = RequestFacts {
        method: &Method::GET,
        path,
        query,
        peer: CLIENT.parse().unwrap(),
        x_real_ip: None,
        random: 0,
        secure: false,
    };
    match decide(Some(s), &policy(true), &facts).outcome {
        Outcome::Redirect {
            location, target, ..
        } => (location, target),
        other => panic!("{path}: {other:?}"),
    }
}

#[test]
fn sub_requests_resolve_in_the_content_directory() {
    let s = snapshot(80);
    let (location, target) = decided(
        &s,
        "/btv/live/hls/epg_1/~e1/v1/seg5.ts",
        Some("_HLS_msn=5&_HLS_part=1"),
    );
    assert_eq!(
        location,
        "http://e1.example/live/ch1/v1/seg5.ts?_HLS_msn=5&_HLS_part=1"
    );
    assert_eq!(&location[target.path_start..target.dir_end], "/live/ch1/");
    // Catch-up: the recording's directory on the edge.
    let (location, _) = decided(&s, "/btv/catchup/hls/p_1/~/part/seg0.ts", None);
    assert_eq!(location, "http://e1.example/dvr/dvr1/part/seg0.ts");
    let (location, target) = decided(&s, "/btv/live/hls/epg_1.m3u8", None);
    assert_eq!(&location[target.path_start..target.dir_end], "/live/ch1/");
}

#[test]
fn a_hint_is_followed_while_its_edge_is_eligible_and_healthy() {
    let s = snapshot(80);
    let p = policy(true);
    let hosts = |path| -> Vec<String> {
        hinted_locations(&s, &p, path, 64)
            .into_iter()
            .map(|l| l.split('/').nth(2).unwrap_or_default().to_string())
            .collect()
    };
    // Without a hint both edges of the region get sessions.
    let fresh = hosts("/btv/live/hls/epg_1/~/a.ts");
    assert!(fresh.iter().any(|h| h == "w1.example") && fresh.iter().any(|h| h == "w3.example"));
    // A hint of either: always that edge.
    assert!(hosts("/btv/live/hls/epg_1/~e41/a.ts")
        .iter()
        .all(|h| h == "w1.example"));
    assert!(hosts("/btv/live/hls/epg_1/~e43/a.ts")
        .iter()
        .all(|h| h == "w3.example"));
    // An edge of another region, or no edge at all: decided afresh.
    for other in [
        "/btv/live/hls/epg_1/~e1/a.ts",
        "/btv/live/hls/epg_1/~e999/a.ts",
    ] {
        let got = hosts(other);
        assert!(
            got.iter().any(|h| h == "w1.example") && got.iter().any(|h| h == "w3.example"),
            "{other}: {got:?}"
        );
    }
    // A dead edge: never.
    let w1 = s.servers.iter().find(|e| e.id == 41).expect("w1");
    w1.health.set_up(false);
    assert!(hosts("/btv/live/hls/epg_1/~e41/a.ts")
        .iter()
        .all(|h| h == "w3.example"));
    // Every edge of the region dead (panic mode): the hint holds again.
    let w3 = s.servers.iter().find(|e| e.id == 43).expect("w3");
    w3.health.set_up(false);
    assert!(hosts("/btv/live/hls/epg_1/~e41/a.ts")
        .iter()
        .all(|h| h == "w1.example"));
}

#[test]
fn with_consistent_selection_a_hint_holds_only_among_the_contents_edges() {
    let s = snapshot(80);
    let one = consistent_policy(1);
    let chosen = hinted_locations(&s, &one, "/btv/live/hls/epg_1/~/a.ts", 1).remove(0);
    let host = chosen.split('/').nth(2).unwrap_or_default().to_string();
    let other = if host == "w1.example" { 43 } else { 41 };
    let hinted = hinted_locations(&s, &one, &format!("/btv/live/hls/epg_1/~e{other}/a.ts"), 32);
    assert!(hinted.iter().all(|l| *l == chosen), "{hinted:?}");
    // Spread over both edges: either hint holds.
    let two = consistent_policy(2);
    for (id, host) in [(41, "w1.example"), (43, "w3.example")] {
        let hinted = hinted_locations(&s, &two, &format!("/btv/live/hls/epg_1/~e{id}/a.ts"), 32);
        assert!(hinted.iter().all(|l| l.contains(host)), "{hinted:?}");
    }
}
