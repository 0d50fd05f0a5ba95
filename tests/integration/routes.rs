//! Every route and every error over real HTTP: redirects and their headers, schemes and ports,
//! encryption fallback, catch-up, VOD and static, 400/404/405, HEAD, keep-alive, pipelining,
//! IPv6 clients and the subnet fallback chain.

use crate::data::{self, *};
use crate::harness::Setup;
use crate::http::{raw_request, Response};

pub const CACHE_CONTROL: &str = "max-age=0, private, must-revalidate";

/// A 302 to exactly `location`, with the router's redirect headers and no body.
pub fn assert_redirect(response: &Response, location: &str) {
    assert_eq!(
        response.status, 302,
        "expected a redirect to {location}, got {response:?}"
    );
    assert_eq!(response.location(), location, "{response:?}");
    assert_eq!(response.header("content-length"), Some("0"), "{response:?}");
    assert_eq!(
        response.header("cache-control"),
        Some(CACHE_CONTROL),
        "{response:?}"
    );
    assert!(response.body.is_empty(), "{response:?}");
}

/// An error answer: `status`, plain-text `body`, matching Content-Length, no Location.
pub fn assert_error(response: &Response, status: u16, body: &str) {
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(response.text(), body, "{response:?}");
    assert_eq!(
        response.header("content-length"),
        Some(body.len().to_string().as_str()),
        "{response:?}"
    );
    assert_eq!(response.header("content-type"), Some("text/plain"));
    assert_eq!(response.header("location"), None, "{response:?}");
}

pub const NOT_FOUND: &str = "Server not found";
pub const INVALID: &str = "Request invalid";

#[test]
fn live_redirect_has_exact_location_and_headers() {
    let router = Setup::with(data::standard()).start();
    let response = router.get("/btv/live/hls/epg_1.m3u8?token=abc");
    assert_redirect(&response, "http://edge-a.test/live/one.m3u8?token=abc");
    // Without the extension and without a query.
    assert_redirect(
        &router.get("/btv/live/hls/epg_1"),
        "http://edge-a.test/live/one.m3u8",
    );
    // `.mpd` is accepted as the extension too.
    assert_redirect(
        &router.get("/btv/live/mpd_wv/epg_1.mpd?a=1&b=2"),
        "http://edge-a.test/live/one-wv.mpd?a=1&b=2",
    );
}

#[test]
fn edge_port_decides_scheme_and_port_of_live_and_catchup() {
    let router = Setup::with(data::standard()).start();
    assert_redirect(
        &router.get_for(CLIENT_TLS, "/btv/live/hls/epg_1.m3u8?token=abc"),
        &format!("https://{EDGE_TLS}/live/one.m3u8?token=abc"),
    );
    assert_redirect(
        &router.get_for(CLIENT_ALT, "/btv/live/hls/epg_1.m3u8?token=abc"),
        &format!("http://{EDGE_ALT}:8080/live/one.m3u8?token=abc"),
    );
    assert_redirect(
        &router.get_for(CLIENT_TLS, "/btv/catchup/hls/prog_1"),
        &format!("https://{EDGE_TLS}/dvr/dvrpfx/rec/one.m3u8"),
    );
    assert_redirect(
        &router.get_for(CLIENT_ALT, "/btv/catchup/hls/prog_1"),
        &format!("http://{EDGE_ALT}:8080/dvr/dvrpfx/rec/one.m3u8"),
    );
}

#[test]
fn encrypted_requests_fall_back_to_cenc_but_clear_ones_never_do() {
    let router = Setup::with(data::standard()).start();
    // WIDEVINE exists for epg_1/MPD: taken as is.
    assert_redirect(
        &router.get("/btv/live/mpd_wv/epg_1"),
        "http://edge-a.test/live/one-wv.mpd",
    );
    // epg_2 has only CENC: wv and pr fall back to it, cenc takes it directly.
    assert_redirect(
        &router.get("/btv/live/hls_wv/epg_2.m3u8"),
        "http://edge-a.test/live/two-cenc.m3u8",
    );
    assert_redirect(
        &router.get("/btv/live/mpd_pr/epg_2"),
        "http://edge-a.test/live/two-cenc.mpd",
    );
    assert_redirect(
        &router.get("/btv/live/mpd_cenc/epg_2"),
        "http://edge-a.test/live/two-cenc.mpd",
    );
    // NONE never falls back to CENC, CENC never to NONE, MPD never to HLS.
    assert_error(&router.get("/btv/live/hls/epg_2"), 404, NOT_FOUND);
    assert_error(&router.get("/btv/live/mpd/epg_2.mpd"), 404, NOT_FOUND);
    assert_error(&router.get("/btv/live/hls_cenc/epg_1"), 404, NOT_FOUND);
    assert_error(&router.get("/btv/live/mpd/epg_1"), 404, NOT_FOUND);
    // wv falls back to CENC only, never to NONE.
    assert_error(&router.get("/btv/live/hls_wv/epg_1"), 404, NOT_FOUND);
    // Unknown channel.
    assert_error(&router.get("/btv/live/hls/no_such_channel"), 404, NOT_FOUND);
}

#[test]
fn catchup_redirects_to_dvr_prefix_and_record_path() {
    let router = Setup::with(data::standard()).start();
    assert_redirect(
        &router.get("/btv/catchup/hls/prog_1.m3u8?token=abc"),
        "http://edge-a.test/dvr/dvrpfx/rec/one.m3u8?token=abc",
    );
    assert_redirect(
        &router.get("/btv/catchup/mpd_wv/prog_1"),
        "http://edge-a.test/dvr/dvrpfx/rec/one-cenc.mpd",
    );
    // A RUNNING record is not served.
    assert_error(&router.get("/btv/catchup/hls/prog_run"), 404, NOT_FOUND);
    // A program with no record in that protocol, and an unknown program.
    assert_error(&router.get("/btv/catchup/mpd/prog_1"), 404, NOT_FOUND);
    assert_error(&router.get("/btv/catchup/hls/no_such_prog"), 404, NOT_FOUND);
    // A channel epg id is not a program epg id.
    assert_error(&router.get("/btv/catchup/hls/epg_1"), 404, NOT_FOUND);
}

#[test]
fn vod_and_static_are_always_http_without_port() {
    let router = Setup::with(data::standard()).start();
    // The client's edge listens on 443, yet VOD and static go to plain http, no port.
    assert_redirect(
        &router.get_for(CLIENT_TLS, "/vod/a//b/c.mp4?t=1"),
        &format!("http://{EDGE_TLS}/vod/a/b/c.mp4?t=1"),
    );
    assert_redirect(
        &router.get_for(CLIENT_TLS, "/static"),
        &format!("http://{EDGE_TLS}/static"),
    );
    assert_redirect(
        &router.get_for(CLIENT_TLS, "/static/img/x.png"),
        &format!("http://{EDGE_TLS}/static/img/x.png"),
    );
    assert_redirect(
        &router.get_for(CLIENT_ALT, "/vod/a//b/c.mp4?t=1"),
        &format!("http://{EDGE_ALT}/vod/a/b/c.mp4?t=1"),
    );
    assert_redirect(
        &router.get_for(CLIENT_ALT, "/static/img/x.png"),
        &format!("http://{EDGE_ALT}/static/img/x.png"),
    );
    // Escapes pass through untouched.
    assert_redirect(
        &router.get("/vod/a%20b/c.mp4"),
        "http://edge-a.test/vod/a%20b/c.mp4",
    );
}

#[test]
fn paths_outside_the_grammar_are_400() {
    let router = Setup::with(data::standard()).start();
    for path in [
        "/vod",
        "/btv/live/hls/a/",
        "/btv/live/HLS/a",
        "/nonexistent",
        "/vod/a%zz",
        "/",
        "/btv/live/hls_xx/epg_1",
        "/btv/live/hls/epg_1/extra",
        "/vod/../etc/passwd",
        "/staticx",
    ] {
        let response = router.get(path);
        assert_error(&response, 400, INVALID);
        assert_eq!(response.header("cache-control"), None, "{path}");
    }
}

#[test]
fn methods_other_than_get_and_head_are_405() {
    let router = Setup::with(data::standard()).start();
    for method in ["POST", "DELETE", "PUT", "OPTIONS"] {
        let headers: &[(&str, &str)] = if method == "POST" || method == "PUT" {
            &[("Content-Length", "0")]
        } else {
            &[]
        };
        let response = router.request(router.v4(), method, "/btv/live/hls/epg_1", headers);
        assert_error(&response, 405, "Method not allowed");
        assert_eq!(response.header("allow"), Some("GET, HEAD"), "{method}");
    }
    // Even where GET would be 400.
    let response = router.request(router.v4(), "DELETE", "/nonexistent", &[]);
    assert_error(&response, 405, "Method not allowed");
    assert_eq!(response.header("allow"), Some("GET, HEAD"));
}

#[test]
fn head_answers_like_get_without_a_body_and_keeps_the_connection() {
    let router = Setup::with(data::standard()).start();
    let mut conn = router.connect(router.v4());
    let target = "/btv/live/hls/epg_1.m3u8?token=abc";
    let head = conn.request("HEAD", target, &[]);
    assert!(head.body.is_empty(), "{head:?}");
    // The connection is still usable after HEAD: a GET on the same socket.
    let get = conn.request("GET", target, &[]);
    assert_redirect(&get, "http://edge-a.test/live/one.m3u8?token=abc");
    assert_eq!(head.status, get.status);
    assert_eq!(head.stable_headers(), get.stable_headers());

    // HEAD of an error: same status and headers (Content-Length of the GET body), no body.
    let head = conn.request("HEAD", "/btv/live/hls/no_such_channel", &[]);
    assert!(head.body.is_empty(), "{head:?}");
    let get = conn.request("GET", "/btv/live/hls/no_such_channel", &[]);
    assert_error(&get, 404, NOT_FOUND);
    assert_eq!(head.status, 404);
    assert_eq!(head.stable_headers(), get.stable_headers());

    let head = conn.request("HEAD", "/nonexistent", &[]);
    assert_eq!(head.status, 400);
    assert!(head.body.is_empty(), "{head:?}");
    // And the connection still answers afterwards.
    assert_redirect(
        &conn.request("GET", "/btv/live/hls/epg_1", &[]),
        "http://edge-a.test/live/one.m3u8",
    );
}

#[test]
fn keepalive_connection_serves_redirect_404_and_400() {
    let router = Setup::with(data::standard()).start();
    let mut conn = router.connect(router.v4());
    let answers = [
        conn.request("GET", "/btv/live/hls/epg_1.m3u8?token=abc", &[]),
        conn.request("GET", "/btv/live/hls/no_such_channel", &[]),
        conn.request("GET", "/nonexistent", &[]),
    ];
    assert_redirect(&answers[0], "http://edge-a.test/live/one.m3u8?token=abc");
    assert_error(&answers[1], 404, NOT_FOUND);
    assert_error(&answers[2], 400, INVALID);
    for response in &answers {
        let connection = response.header("connection").unwrap_or("");
        assert!(
            !connection.eq_ignore_ascii_case("close"),
            "the router closes after {response:?}"
        );
    }
    // Still open: a fourth request on the same socket is answered.
    assert_redirect(
        &conn.request("GET", "/vod/x.mp4", &[]),
        "http://edge-a.test/vod/x.mp4",
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let router = Setup::with(data::standard()).start();
    let mut conn = router.connect(router.v4());
    let mut both = raw_request("GET", "/btv/live/hls/epg_1?n=1", &[]);
    both.extend(raw_request("GET", "/btv/live/hls_wv/epg_2?n=2", &[]));
    conn.send(&both);
    let first = conn.read_response(false);
    let second = conn.read_response(false);
    assert_redirect(&first, "http://edge-a.test/live/one.m3u8?n=1");
    assert_redirect(&second, "http://edge-a.test/live/two-cenc.m3u8?n=2");
    // The connection goes on after the pipelined pair.
    assert_error(
        &conn.request("GET", "/btv/live/hls/no_such_channel", &[]),
        404,
        NOT_FOUND,
    );

    // Errors with bodies and a HEAD inside a pipeline keep the responses apart.
    let mut mixed = raw_request("GET", "/btv/live/hls/no_such_channel", &[]);
    mixed.extend(raw_request("HEAD", "/btv/live/hls/epg_1", &[]));
    mixed.extend(raw_request("GET", "/nonexistent", &[]));
    mixed.extend(raw_request("GET", "/static", &[]));
    conn.send(&mixed);
    assert_error(&conn.read_response(false), 404, NOT_FOUND);
    let head = conn.read_response(true);
    assert_eq!(head.status, 302, "{head:?}");
    assert_eq!(head.location(), "http://edge-a.test/live/one.m3u8");
    assert_error(&conn.read_response(false), 400, INVALID);
    assert_redirect(&conn.read_response(false), "http://edge-a.test/static");
}

#[test]
fn ipv6_client_routes_by_its_own_subnet() {
    let router = Setup::with(data::standard()).start();
    assert_redirect(
        &router.request(
            router.v6(),
            "GET",
            "/btv/live/hls/epg_1.m3u8?token=abc",
            &[],
        ),
        &format!("http://{EDGE_V6}/live/one.m3u8?token=abc"),
    );
    assert_redirect(
        &router.request(router.v6(), "GET", "/vod/a//b", &[]),
        &format!("http://{EDGE_V6}/vod/a/b"),
    );
    // Keep-alive over IPv6 too.
    let mut conn = router.connect(router.v6());
    assert_redirect(
        &conn.request("GET", "/btv/catchup/hls/prog_1", &[]),
        &format!("http://{EDGE_V6}/dvr/dvrpfx/rec/one.m3u8"),
    );
    assert_redirect(
        &conn.request("GET", "/static", &[]),
        &format!("http://{EDGE_V6}/static"),
    );
    // The IPv4 client of the same router still gets its own edge.
    assert_redirect(
        &router.get("/btv/live/hls/epg_1"),
        &format!("http://{EDGE_V4}/live/one.m3u8"),
    );
}

#[test]
fn falls_back_to_a_less_specific_subnet() {
    let router = Setup::with(data::standard()).start();
    // 10.1.2.0/24 is in an INACTIVE region: 10.0.0.0/8 answers.
    assert_redirect(
        &router.get_for(CLIENT_IN_INACTIVE_REGION, "/btv/live/hls/epg_1"),
        &format!("http://{EDGE_FALLBACK}/live/one.m3u8"),
    );
    // 10.2.2.0/24's region has only an unavailable edge: 10.0.0.0/8 answers.
    assert_redirect(
        &router.get_for(CLIENT_WITH_UNAVAILABLE_EDGE, "/btv/live/hls/epg_1"),
        &format!("http://{EDGE_FALLBACK}/live/one.m3u8"),
    );
    assert_redirect(
        &router.get_for(CLIENT_WITH_UNAVAILABLE_EDGE, "/vod/f.mp4"),
        &format!("http://{EDGE_FALLBACK}/vod/f.mp4"),
    );
    // An address only in 10.0.0.0/8.
    assert_redirect(
        &router.get_for("10.200.0.1", "/btv/catchup/hls/prog_1"),
        &format!("http://{EDGE_FALLBACK}/dvr/dvrpfx/rec/one.m3u8"),
    );
}

#[test]
fn client_in_no_subnet_is_404() {
    let router = Setup::with(data::standard()).start();
    for target in ["/btv/live/hls/epg_1", "/vod/a.mp4", "/static"] {
        assert_error(&router.get_for(CLIENT_NOWHERE, target), 404, NOT_FOUND);
    }
    // Content is looked up first: an unknown channel is 404 too, and a bad path still 400.
    assert_error(
        &router.get_for(CLIENT_NOWHERE, "/btv/live/hls/no_such_channel"),
        404,
        NOT_FOUND,
    );
    assert_error(
        &router.get_for(CLIENT_NOWHERE, "/nonexistent"),
        400,
        INVALID,
    );
}
