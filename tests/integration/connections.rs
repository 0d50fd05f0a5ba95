//! The public listener's own connection handling, over raw sockets: the header deadline (from
//! accept for the first request, from the first byte for later ones), the keep-alive idle
//! timeout, the per-client connection limit (trusted proxies exempt), pipelining, requests
//! handed to the framework and back (a POST with a body, a proxy-mode route) on one
//! keep-alive connection, HTTP/1.0, and heads too large to finish. Each close the router
//! makes itself is checked in `cti_kaltura_client_connections_closed_total{reason}` by delta.

use crate::data;
use crate::fake_edge::{self, edge, FakeEdge, RegionSpec};
use crate::harness::{poll, try_poll_for, Router, Setup, CONFIG_FILE};
use crate::http::{raw_request, shown, Conn, Response};
use crate::prometheus::{metric_sum, scrape, wait_metric_sum, REQUESTS};
use crate::routes::{assert_error, assert_redirect, NOT_FOUND};
use std::fs;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

/// Per socket read and write: a stuck router fails the test instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest a close the router owes may take after its timer is due.
const CLOSE_SLACK: Duration = Duration::from_millis(2000);
/// Timer lower bound allowance (a close that comes much earlier than due is a failure).
const EARLY: Duration = Duration::from_millis(100);

const REDIRECT: &str = "/vod/a.mp4";
const REDIRECT_LOCATION: &str = "http://edge-a.test/vod/a.mp4";

/// A client connection that knows when it was opened and times the router's close.
struct Wire {
    conn: Conn,
    opened: Instant,
}

/// How a connection ended.
#[derive(Debug)]
struct Closed {
    /// From the call that waited for the close.
    after: Duration,
    /// Bytes received before the close (the router must send none in these tests).
    bytes: Vec<u8>,
}

impl Wire {
    fn open(addr: SocketAddr) -> Wire {
        Wire {
            conn: Conn::open_with_timeout(addr, IO_TIMEOUT),
            opened: Instant::now(),
        }
    }

    /// Reads one response (`head_request`: no body).
    fn response(&mut self, head_request: bool) -> Response {
        self.conn.read_response(head_request)
    }

    /// Waits at most `within` for the router to close the connection (EOF or reset).
    fn closed_within(&mut self, within: Duration) -> Result<Closed, String> {
        let started = Instant::now();
        match self.conn.until_closed(within)? {
            Some(_) => Ok(Closed {
                after: started.elapsed(),
                bytes: self.conn.take_buffered(),
            }),
            None => Err(format!(
                "still open after {within:?}; received {:?}",
                shown(self.conn.buffered())
            )),
        }
    }

    /// [`Wire::closed_within`], asserting the router sent nothing before closing.
    fn assert_closed_silently(&mut self, within: Duration) -> Duration {
        let closed = self.closed_within(within).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            closed.bytes.is_empty(),
            "the router answered before closing: {:?}",
            String::from_utf8_lossy(&closed.bytes)
        );
        closed.after
    }
}

impl Deref for Wire {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl DerefMut for Wire {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

/// The `reason` labels of `cti_kaltura_client_connections_closed_total`, in the order of
/// the arrays below.
const REASONS: [&str; 4] = [
    "header_timeout",
    "idle_timeout",
    "client_limit",
    "head_too_large",
];

/// `cti_kaltura_client_connections_closed_total{reason}`.
fn closed(text: &str, reason: &str) -> f64 {
    metric_sum(
        text,
        "cti_kaltura_client_connections_closed_total",
        &[("reason", reason)],
    )
}

/// Every close reason's counter, in a fixed order, for before/after deltas.
fn close_counts(router: &Router) -> [f64; 4] {
    let text = scrape(router);
    REASONS.map(|reason| closed(&text, reason))
}

/// What each reason's counter grew by since `before` (names the reasons for messages).
fn close_deltas(router: &Router, before: [f64; 4]) -> Vec<(&'static str, f64)> {
    let now = close_counts(router);
    REASONS
        .into_iter()
        .zip(now.iter().zip(before).map(|(n, b)| n - b))
        .collect()
}

/// Asserts each reason's counter grew by exactly the given amount since `before` (polling
/// for up to 2 s: a counter is bumped just before the socket closes, the metrics come from
/// elsewhere).
fn assert_close_deltas(router: &Router, before: [f64; 4], want: [f64; 4]) {
    let wanted: Vec<(&str, f64)> = REASONS.into_iter().zip(want).collect();
    let counted = try_poll_for(
        "close reasons counted",
        Duration::from_secs(2),
        Duration::from_millis(20),
        || {
            let got = close_deltas(router, before);
            if got == wanted {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        },
    );
    counted.unwrap_or_else(|e| panic!("{e}; expected {wanted:?}"));
}

/// `cti_kaltura_client_connections`: client connections open.
fn open_connections(router: &Router) -> f64 {
    metric_sum(&scrape(router), "cti_kaltura_client_connections", &[])
}

fn wait_open_connections(router: &Router, wanted: f64) {
    poll(&format!("{wanted} open client connections"), || {
        let now = open_connections(router);
        if now == wanted {
            Ok(())
        } else {
            Err(format!("{now} open"))
        }
    });
}

/// Rewrites the router's config with `keepalive_timeout_secs: secs` (the harness writes 60,
/// and the key may appear only once) and applies it with SIGHUP.
fn set_keepalive_timeout(router: &Router, secs: u64) {
    let path = router.dir().join(CONFIG_FILE);
    let text = fs::read_to_string(&path).expect("read the config");
    let changed = text.replace(
        "keepalive_timeout_secs: 60\n",
        &format!("keepalive_timeout_secs: {secs}\n"),
    );
    assert_ne!(changed, text, "no keepalive_timeout_secs: 60 in\n{text}");
    fs::write(&path, changed).expect("write the config");
    let applied = |log: &str| {
        log.lines()
            .filter(|l| l.contains("SIGHUP: configuration") && l.contains("applied"))
            .count()
    };
    let before = applied(&router.stderr());
    router.wait_sighup_handler();
    router.sighup();
    poll("the new config applied", || {
        let log = router.stderr();
        if applied(&log) > before {
            Ok(())
        } else {
            Err(log)
        }
    });
}

/// Asserts a close came at the header or idle deadline: not early, not long after.
fn assert_closed_near(what: &str, after: Duration, due: Duration) {
    assert!(
        after + EARLY >= due && after <= due + CLOSE_SLACK,
        "{what}: closed after {after:?}, due after {due:?}"
    );
}

#[test]
fn slow_and_silent_first_heads_are_cut_at_the_header_deadline_while_others_are_served() {
    let router = Setup::with(data::standard())
        .http(&["header_timeout_secs: 1"])
        .start();
    let before = close_counts(&router);

    let head = raw_request("GET", "/vod/slow.mp4", &[("X-Pad", "padding")]);
    let mut slow = Wire::open(router.v4());
    // Sends nothing at all: watched on its own thread, so its close is timed exactly.
    let mut silent = Wire::open(router.v4());
    let silent = std::thread::spawn(move || {
        silent.assert_closed_silently(Duration::from_secs(3));
        silent.opened.elapsed()
    });
    let mut normal_took = None;
    let mut slow_closed = None;
    // One byte every 200 ms: 5 bytes a second, far fewer than the head has.
    for (i, byte) in head.iter().enumerate() {
        if slow.try_send(&[*byte]).is_err() {
            slow_closed = Some(slow.opened.elapsed());
            break;
        }
        if i == 2 {
            // Another client meanwhile: answered at once, not after the slow one.
            let started = Instant::now();
            let mut normal = Wire::open(router.v4());
            assert_redirect(&normal.get(REDIRECT), REDIRECT_LOCATION);
            normal_took = Some(started.elapsed());
        }
        match slow.closed_within(Duration::from_millis(200)) {
            Ok(closed) => {
                assert!(
                    closed.bytes.is_empty(),
                    "the slow client got an answer: {:?}",
                    String::from_utf8_lossy(&closed.bytes)
                );
                slow_closed = Some(slow.opened.elapsed());
                break;
            }
            Err(still_open) => assert!(
                slow.opened.elapsed() < Duration::from_secs(4),
                "{still_open}"
            ),
        }
    }
    let slow_closed = slow_closed.expect("the slow client was never disconnected");
    assert_closed_near("slow head", slow_closed, Duration::from_secs(1));
    let normal_took = normal_took.expect("the normal request ran");
    assert!(
        normal_took < Duration::from_millis(500),
        "the other client waited {normal_took:?}"
    );

    // The silent one: closed at the deadline counted from accept, without a word.
    let silent_closed = silent.join().expect("the silent client's thread");
    assert_closed_near("silent connection", silent_closed, Duration::from_secs(1));
    assert_close_deltas(&router, before, [2.0, 0.0, 0.0, 0.0]);
    // The router goes on serving.
    assert_redirect(&router.get(REDIRECT), REDIRECT_LOCATION);
}

#[test]
fn a_later_requests_header_deadline_runs_from_its_first_byte() {
    let router = Setup::with(data::standard())
        .http(&["header_timeout_secs: 1"])
        .start();
    let before = close_counts(&router);
    let mut wire = Wire::open(router.v4());
    assert_redirect(&wire.get(REDIRECT), REDIRECT_LOCATION);
    // An idle gap (part of the test) longer than the header timeout, shorter than the
    // keep-alive timeout (60 s): the next request is not late.
    std::thread::sleep(Duration::from_millis(1500));
    assert_redirect(&wire.get(REDIRECT), REDIRECT_LOCATION);
    // Idle again before the next head: its deadline must not run from the last answer.
    std::thread::sleep(Duration::from_millis(300));
    // A head that starts and never ends: cut one header timeout after its first byte.
    let head = raw_request("GET", REDIRECT, &[]);
    let started = Instant::now();
    wire.send(&head[..1]);
    // A slow client: the rest of the head comes later.
    std::thread::sleep(Duration::from_millis(300));
    wire.send(&head[1..head.len() - 2]);
    wire.assert_closed_silently(Duration::from_secs(4));
    assert_closed_near(
        "unfinished second head",
        started.elapsed(),
        Duration::from_secs(1),
    );
    assert_close_deltas(&router, before, [1.0, 0.0, 0.0, 0.0]);
}

#[test]
fn keepalive_connections_stay_open_while_used_and_close_when_idle() {
    let router = Setup::with(data::standard()).start();
    set_keepalive_timeout(&router, 1);
    let before = close_counts(&router);
    let mut wire = Wire::open(router.v4());
    for i in 0..3 {
        if i > 0 {
            // Idle (part of the test) for less than the 1 s keep-alive timeout each time, longer
            // than it in all.
            std::thread::sleep(Duration::from_millis(600));
        }
        let response = wire.get(REDIRECT);
        assert_redirect(&response, REDIRECT_LOCATION);
        assert_eq!(
            response.header("connection"),
            Some("keep-alive"),
            "request {i}: {response:?}"
        );
    }
    // Then idle: closed after the keep-alive timeout, without a word.
    let after = wire.assert_closed_silently(Duration::from_secs(4));
    assert_closed_near("idle keep-alive connection", after, Duration::from_secs(1));
    assert_close_deltas(&router, before, [0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn one_client_gets_at_most_its_connection_limit_until_one_closes() {
    let router = Setup::with(data::standard())
        .http(&["max_connections_per_client: 3"])
        .trusted_proxies(&["192.0.2.0/24"])
        .start();
    // The harness's readiness probes are gone.
    wait_open_connections(&router, 0.0);
    let before = close_counts(&router);

    let mut held: Vec<Wire> = (0..3).map(|_| Wire::open(router.v4())).collect();
    for wire in &mut held {
        assert_redirect(&wire.get(REDIRECT), REDIRECT_LOCATION);
    }
    assert_eq!(open_connections(&router), 3.0);

    // The fourth: accepted by the kernel, then closed by the router without an answer.
    let mut fourth = Wire::open(router.v4());
    let _ = fourth.try_send(&raw_request("GET", REDIRECT, &[]));
    fourth.assert_closed_silently(Duration::from_secs(2));
    assert_close_deltas(&router, before, [0.0, 0.0, 1.0, 0.0]);
    assert_eq!(open_connections(&router), 3.0);

    // The three still work.
    for wire in &mut held {
        assert_redirect(&wire.get(REDIRECT), REDIRECT_LOCATION);
    }

    // One goes: its place is free for a new connection.
    drop(held.pop());
    wait_open_connections(&router, 2.0);
    let mut fresh = Wire::open(router.v4());
    assert_redirect(&fresh.get(REDIRECT), REDIRECT_LOCATION);
    assert_redirect(&fresh.get(REDIRECT), REDIRECT_LOCATION);
    assert_eq!(open_connections(&router), 3.0);
    assert_close_deltas(&router, before, [0.0, 0.0, 1.0, 0.0]);
}

#[test]
fn trusted_proxies_are_exempt_from_the_connection_limit() {
    // Loopback is trusted by default.
    let router = Setup::with(data::standard())
        .http(&["max_connections_per_client: 3"])
        .start();
    let before = close_counts(&router);
    let mut held: Vec<Wire> = (0..5).map(|_| Wire::open(router.v4())).collect();
    for wire in &mut held {
        assert_redirect(&wire.get(REDIRECT), REDIRECT_LOCATION);
    }
    // All five still open and answering.
    for wire in &mut held {
        assert_redirect(&wire.get(REDIRECT), REDIRECT_LOCATION);
    }
    assert!(open_connections(&router) >= 5.0);
    assert_close_deltas(&router, before, [0.0; 4]);
}

/// No bytes beyond the answers read so far, and the connection serves another request.
fn assert_nothing_more_and_reusable(wire: &mut Wire) {
    assert!(wire.buffered().is_empty(), "{:?}", shown(wire.buffered()));
    assert_redirect(&wire.get(REDIRECT), REDIRECT_LOCATION);
}

#[test]
fn pipelined_gets_are_answered_in_order_on_one_connection() {
    let router = Setup::with(data::standard()).start();
    let mut wire = Wire::open(router.v4());
    let mut three = raw_request("GET", "/vod/one.mp4", &[]);
    three.extend(raw_request("GET", "/btv/live/hls/no_such_channel", &[]));
    three.extend(raw_request("GET", "/vod/three.mp4", &[]));
    wire.send(&three);
    assert_redirect(&wire.response(false), "http://edge-a.test/vod/one.mp4");
    assert_error(&wire.response(false), 404, NOT_FOUND);
    assert_redirect(&wire.response(false), "http://edge-a.test/vod/three.mp4");
    // Nothing more came, and the connection goes on.
    assert_nothing_more_and_reusable(&mut wire);
}

#[test]
fn other_methods_get_405_and_handed_over_requests_give_the_connection_back() {
    let router = Setup::with(data::standard()).start();
    let mut wire = Wire::open(router.v4());
    let requests: [(&str, &[(&str, &str)]); 3] = [
        ("OPTIONS", &[]),
        ("DELETE", &[]),
        ("POST", &[("Content-Length", "0")]),
    ];
    for (method, headers) in requests {
        wire.send(&raw_request(method, REDIRECT, headers));
        let answer = wire.response(false);
        assert_error(&answer, 405, "Method not allowed");
        assert_eq!(answer.header("allow"), Some("GET, HEAD"), "{method}");
        assert_eq!(
            answer.header("connection"),
            Some("keep-alive"),
            "{method}: {answer:?}"
        );
        // The next GET on the same socket.
        assert_redirect(&wire.get(REDIRECT), REDIRECT_LOCATION);
    }

    // In one write: GET, DELETE, GET, and a GET the fast path hands over (absolute form).
    let mut mixed = raw_request("GET", "/vod/before.mp4", &[]);
    mixed.extend(raw_request("DELETE", REDIRECT, &[]));
    mixed.extend(raw_request(
        "GET",
        "http://router.test/vod/absolute.mp4",
        &[],
    ));
    mixed.extend(raw_request("GET", "/vod/after.mp4", &[]));
    wire.send(&mixed);
    assert_redirect(&wire.response(false), "http://edge-a.test/vod/before.mp4");
    assert_error(&wire.response(false), 405, "Method not allowed");
    assert_redirect(&wire.response(false), "http://edge-a.test/vod/absolute.mp4");
    assert_redirect(&wire.response(false), "http://edge-a.test/vod/after.mp4");
    assert_nothing_more_and_reusable(&mut wire);
}

/// A body of up to 64 KiB is read and dropped, so the connection is kept after the 405; a
/// larger one is not read and the connection closes after the answer.
#[test]
fn a_post_with_a_body_gets_405_and_the_connection_is_kept_unless_the_body_is_large() {
    let router = Setup::with(data::standard()).start();
    let mut wire = Wire::open(router.v4());

    // Separately: the POST and its body, then a GET.
    wire.send(&raw_request("POST", REDIRECT, &[("Content-Length", "5")]));
    wire.send(b"hello");
    let post = wire.response(false);
    assert_error(&post, 405, "Method not allowed");
    assert_eq!(
        post.header("connection"),
        Some("keep-alive"),
        "the 405 to a POST with a body ends the connection: {post:?}"
    );
    assert_redirect(&wire.get(REDIRECT), REDIRECT_LOCATION);

    // In one write: GET, POST with a body, GET (the body's bytes must not be read as a head).
    let mut mixed = raw_request("GET", "/vod/before.mp4", &[]);
    mixed.extend(raw_request("POST", REDIRECT, &[("Content-Length", "5")]));
    mixed.extend(b"GET /");
    mixed.extend(raw_request("GET", "/vod/after.mp4", &[]));
    wire.send(&mixed);
    assert_redirect(&wire.response(false), "http://edge-a.test/vod/before.mp4");
    assert_error(&wire.response(false), 405, "Method not allowed");
    assert_redirect(&wire.response(false), "http://edge-a.test/vod/after.mp4");
    assert_redirect(&wire.get(REDIRECT), REDIRECT_LOCATION);

    // Over 64 KiB: answered, not read, closed.
    let mut wire = Wire::open(router.v4());
    wire.send(&raw_request(
        "POST",
        REDIRECT,
        &[("Content-Length", "100000")],
    ));
    let post = wire.response(false);
    assert_error(&post, 405, "Method not allowed");
    assert_eq!(post.header("connection"), Some("close"), "{post:?}");
    wire.assert_closed_silently(Duration::from_secs(2));
}

#[test]
fn http10_closes_unless_asked_to_keep_alive() {
    let router = Setup::with(data::standard()).start();

    let mut plain = Wire::open(router.v4());
    plain.send(format!("GET {REDIRECT} HTTP/1.0\r\nHost: router.test\r\n\r\n").as_bytes());
    let response = plain.response(false);
    assert_redirect(&response, REDIRECT_LOCATION);
    assert_eq!(response.header("connection"), Some("close"), "{response:?}");
    // Closed at once, far before any timeout.
    plain.assert_closed_silently(Duration::from_secs(2));

    let mut kept = Wire::open(router.v4());
    let request =
        format!("GET {REDIRECT} HTTP/1.0\r\nHost: router.test\r\nConnection: keep-alive\r\n\r\n");
    for i in 0..3 {
        kept.send(request.as_bytes());
        let response = kept.response(false);
        assert_redirect(&response, REDIRECT_LOCATION);
        assert_eq!(
            response.header("connection"),
            Some("keep-alive"),
            "request {i}: {response:?}"
        );
    }
    // Still open: no close within a while.
    let still = kept.closed_within(Duration::from_millis(300));
    assert!(still.is_err(), "closed: {still:?}");
    assert_redirect(&kept.get(REDIRECT), REDIRECT_LOCATION);

    // HTTP/1.1 asking to close is closed too.
    let mut close = Wire::open(router.v4());
    close.send(&raw_request("GET", REDIRECT, &[("Connection", "close")]));
    let response = close.response(false);
    assert_redirect(&response, REDIRECT_LOCATION);
    assert_eq!(response.header("connection"), Some("close"), "{response:?}");
    close.assert_closed_silently(Duration::from_secs(2));
}

#[test]
fn heads_that_outgrow_the_limits_get_414_or_431_and_the_connection_closes() {
    // Cap: 64 + 256 + 4 * 4 + 1024 = 1360 bytes of unfinished head.
    let router = Setup::with(data::standard())
        .http(&[
            "max_uri_bytes: 64",
            "max_header_bytes: 256",
            "max_header_count: 4",
        ])
        .start();
    let before = close_counts(&router);

    // A request line of 5000 bytes with no line end.
    let mut wire = Wire::open(router.v4());
    let line = format!("GET /vod/{}", "a".repeat(5000 - 9));
    assert_eq!(line.len(), 5000);
    wire.send(line.as_bytes());
    let response = wire.response(false);
    assert_error(&response, 414, "Request URI too long");
    assert_eq!(response.header("connection"), Some("close"), "{response:?}");
    wire.assert_closed_silently(Duration::from_secs(2));

    // Long headers, the head never finished.
    let mut wire = Wire::open(router.v4());
    let mut head = b"GET /vod/a.mp4 HTTP/1.1\r\nHost: router.test\r\n".to_vec();
    for i in 0..20 {
        head.extend(format!("X-Long-{i}: {}\r\n", "v".repeat(200)).as_bytes());
    }
    wire.send(&head);
    let response = wire.response(false);
    assert_error(&response, 431, "Request headers too large");
    assert_eq!(response.header("connection"), Some("close"), "{response:?}");
    wire.assert_closed_silently(Duration::from_secs(2));
    assert_close_deltas(&router, before, [0.0, 0.0, 0.0, 2.0]);

    // More header lines than any limit allows (a whole head): 431, closed.
    let mut wire = Wire::open(router.v4());
    let mut head = b"GET /vod/a.mp4 HTTP/1.1\r\n".to_vec();
    for _ in 0..300 {
        head.extend(b"a:b\r\n");
    }
    head.extend(b"\r\n");
    wire.send(&head);
    let response = wire.response(false);
    assert_error(&response, 431, "Request headers too large");
    wire.assert_closed_silently(Duration::from_secs(2));
    assert_close_deltas(&router, before, [0.0, 0.0, 0.0, 3.0]);

    // Within the limits, all is well.
    assert_redirect(&router.get(REDIRECT), REDIRECT_LOCATION);
}

#[test]
fn proxied_and_redirected_requests_share_one_keepalive_connection() {
    let fake = FakeEdge::start("edge-mix", 1);
    fake.set_body_len(3000);
    let snapshot = fake_edge::snapshot(
        "v1",
        &[RegionSpec {
            id: 1,
            cidrs: &["127.0.0.1/32"],
            edge_ids: &[1],
        }],
        &[edge(1, "edge-mix.proxy.test", "127.0.0.1", fake.port())],
    );
    let router = Setup::with(snapshot)
        .router_lines(&[
            "routes: {vod: {mode: proxy}}",
            "proxy: {connect_timeout_ms: 300, read_timeout_ms: 5000}",
        ])
        .start();
    let live_location = format!(
        "http://edge-mix.proxy.test:{}{}",
        fake.port(),
        fake_edge::LIVE_PATH
    );

    let mut wire = Wire::open(router.v4());
    for round in 0..2 {
        let proxied = wire.get(&format!("/vod/movie-{round}.bin"));
        assert_eq!(proxied.status, 200, "round {round}: {proxied:?}");
        assert_eq!(proxied.header("x-edge"), Some("edge-mix"), "{proxied:?}");
        assert_eq!(proxied.body, fake_edge::pattern(0, 3000), "round {round}");
        let redirected = wire.get("/btv/live/hls/epg_1.m3u8");
        assert_redirect(&redirected, &live_location);
    }
    // Both kinds pipelined in one write.
    let mut both = raw_request("GET", "/btv/live/hls/epg_1.m3u8", &[]);
    both.extend(raw_request("GET", "/vod/movie-2.bin", &[]));
    both.extend(raw_request("GET", "/btv/live/hls/epg_1.m3u8", &[]));
    wire.send(&both);
    assert_redirect(&wire.response(false), &live_location);
    let proxied = wire.response(false);
    assert_eq!(proxied.status, 200, "{proxied:?}");
    assert_eq!(proxied.body.len(), 3000);
    assert_redirect(&wire.response(false), &live_location);

    let targets: Vec<String> = fake.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(
        targets,
        ["/vod/movie-0.bin", "/vod/movie-1.bin", "/vod/movie-2.bin"]
    );
}

/// The labels of `cti_kaltura_requests_total` that count heads refused with a 400.
const BAD_REQUEST: [(&str, &str); 2] = [("kind", "invalid"), ("outcome", "bad_request")];

#[test]
fn heads_that_are_not_http_get_400_are_counted_and_the_connection_closes() {
    let router = Setup::with(data::standard()).start();
    let before = metric_sum(&scrape(&router), REQUESTS, &BAD_REQUEST);
    let garbage: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nbad header line\r\n\r\n",
        b"GET\x01/ HTTP/1.1\r\n\r\n",
        // The start of a TLS ClientHello, sent to the plain-HTTP port.
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ];
    for bytes in garbage {
        let mut wire = Wire::open(router.v4());
        wire.send(bytes);
        let answer = wire.response(false);
        assert_error(&answer, 400, "Request invalid");
        assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
        wire.assert_closed_silently(Duration::from_secs(2));
    }
    // Counted after the answer went out.
    let text = wait_metric_sum(&router, REQUESTS, &BAD_REQUEST, before + 3.0);
    assert_eq!(
        metric_sum(&text, REQUESTS, &BAD_REQUEST) - before,
        3.0,
        "{text}"
    );
    assert_redirect(&router.get(REDIRECT), REDIRECT_LOCATION);
}

/// `router.http.defer_accept_secs`: the kernel keeps a connection that has sent nothing, so it
/// is not open in the router (without the option it is at once: the other tests); once it
/// sends a request it is accepted and answered, and the next connection too.
#[test]
fn deferred_accept_leaves_silent_connections_to_the_kernel_until_they_speak() {
    let router = Setup::with(data::standard())
        .http(&["defer_accept_secs: 30"])
        .start();
    // Connected first: without the option, the router would have accepted (and counted) it
    // before the second connection, whose request it answers.
    let mut silent = Wire::open(router.v4());
    let mut other = Wire::open(router.v4());
    assert_redirect(&other.get(REDIRECT), REDIRECT_LOCATION);
    assert_eq!(
        open_connections(&router),
        1.0,
        "the silent connection was accepted"
    );
    assert_redirect(&silent.get(REDIRECT), REDIRECT_LOCATION);
    wait_open_connections(&router, 2.0);
}
