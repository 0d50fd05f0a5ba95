//! `X-Real-IP` from trusted and untrusted peers.

use crate::data::{self, *};
use crate::harness::Setup;
use crate::routes::{assert_error, assert_redirect, INVALID};

#[test]
fn trusted_peer_speaks_for_the_client_and_a_malformed_header_is_400() {
    let router = Setup::with(data::standard())
        .trusted_proxies(&["127.0.0.1/32"])
        .start();
    // From 127.0.0.1 (trusted) the header decides the region.
    assert_redirect(
        &router.get_for(CLIENT_IN_INACTIVE_REGION, "/btv/live/hls/epg_1"),
        &format!("http://{EDGE_FALLBACK}/live/one.m3u8"),
    );
    assert_redirect(
        &router.get_for(CLIENT_TLS, "/btv/live/hls/epg_1"),
        &format!("https://{EDGE_TLS}/live/one.m3u8"),
    );
    // An IPv6 client address in the header, bracketed or not.
    assert_redirect(
        &router.get_for("::1", "/btv/live/hls/epg_1"),
        &format!("http://{EDGE_V6}/live/one.m3u8"),
    );
    assert_redirect(
        &router.get_for("[::1]", "/btv/live/hls/epg_1"),
        &format!("http://{EDGE_V6}/live/one.m3u8"),
    );
    // Without the header the peer itself is the client.
    assert_redirect(
        &router.get("/btv/live/hls/epg_1"),
        &format!("http://{EDGE_V4}/live/one.m3u8"),
    );
    // A trusted proxy sending garbage is a bad request, whatever the route.
    for bad in ["10.0.0.300", "10.1.2.3, 10.2.2.3", "unknown", ""] {
        assert_error(&router.get_for(bad, "/btv/live/hls/epg_1"), 400, INVALID);
    }
    assert_error(&router.get_for("10.0.0.300", "/vod/a.mp4"), 400, INVALID);
}

#[test]
fn untrusted_peer_header_is_ignored() {
    let router = Setup::with(data::standard())
        .trusted_proxies(&["127.0.0.1/32"])
        .start();
    let from_v6 = |client: &str, target: &str| {
        router.request(router.v6(), "GET", target, &[("X-Real-IP", client)])
    };
    // [::1] is not trusted here: its header is ignored, ::1's own subnet routes.
    assert_redirect(
        &from_v6(CLIENT_IN_INACTIVE_REGION, "/btv/live/hls/epg_1"),
        &format!("http://{EDGE_V6}/live/one.m3u8"),
    );
    assert_redirect(
        &from_v6(CLIENT_NOWHERE, "/vod/a.mp4"),
        &format!("http://{EDGE_V6}/vod/a.mp4"),
    );
    // Even a malformed value is ignored rather than refused.
    assert_redirect(
        &from_v6("10.0.0.300", "/btv/live/hls/epg_1"),
        &format!("http://{EDGE_V6}/live/one.m3u8"),
    );
}

#[test]
fn loopback_v6_is_trusted_by_default() {
    // Without `client_ip.trusted_proxies`, 127.0.0.0/8 and ::1 are trusted.
    let router = Setup::with(data::standard()).start();
    assert_redirect(
        &router.request(
            router.v6(),
            "GET",
            "/btv/live/hls/epg_1",
            &[("X-Real-IP", CLIENT_ALT)],
        ),
        &format!("http://{EDGE_ALT}:8080/live/one.m3u8"),
    );
    assert_error(
        &router.request(
            router.v6(),
            "GET",
            "/btv/live/hls/epg_1",
            &[("X-Real-IP", "10.0.0.300")],
        ),
        400,
        INVALID,
    );
}
