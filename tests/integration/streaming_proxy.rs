//! Proxy and manifest modes carrying whole streaming sessions, against in-process media
//! edges: playlists rewritten so that every reference comes back to the router (or, in
//! manifest mode, points at the edge), sub-requests reaching the right file in the stream's
//! directory, escapes refused, query strings, `Range` and `HEAD` passing, large and
//! non-manifest answers passed through, gzip from the edge, sessions sticky to their edge and
//! moved when it dies.

use crate::harness::{Router, Setup};
use crate::http::Response;
use crate::media_edge::{
    media_edge_entry, streaming_snapshot, File, MediaEdge, CATCHUP_PATH, DASH_PATH, HLS_PATH,
};
use crate::prometheus::{metric_sum, scrape};

const PROXY: &str = "proxy: {connect_timeout_ms: 300, read_timeout_ms: 5000}";

const MASTER: &str = "#EXTM3U\n\
#EXT-X-VERSION:6\n\
#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"https://keys.example.com/k1\"\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en\",URI=\"audio/en.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO=\"aud\"\n\
v1/index.m3u8?token=abc\n\
#EXT-X-STREAM-INF:BANDWIDTH=1600000,AUDIO=\"aud\"\n\
/live/ch1/v2/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=100000\n\
http://cdn.other.example/ch1/low.m3u8\n";

/// The media playlist of `v1`; `{origin}` is the edge's own origin.
fn media_playlist(origin: &str) -> String {
    format!(
        "#EXTM3U\r\n\
#EXT-X-TARGETDURATION:2\r\n\
#EXT-X-MEDIA-SEQUENCE:5\r\n\
#EXT-X-MAP:URI=\"init.mp4\"\r\n\
#EXTINF:2.0,\r\n\
seg5.m4s\r\n\
#EXTINF:2.0,\r\n\
{origin}/live/ch1/v1/seg6.m4s\r\n\
#EXTINF:2.0,\r\n\
/shared/ads/ad1.m4s\r\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg7.part0.m4s\"\r\n"
    )
}

/// An edge (id `id`) serving the HLS session of `ch1` and its catch-up recording.
fn hls_edge(name: &str, host: u8) -> MediaEdge {
    let edge = MediaEdge::start(name, host);
    edge.put(HLS_PATH, MASTER);
    edge.put("/live/ch1/v1/index.m3u8", media_playlist(&edge.origin()));
    edge.put("/live/ch1/v1/seg5.m4s", format!("segment 5 from {name}"));
    edge.put("/live/ch1/v1/init.mp4", "init");
    edge.put(
        CATCHUP_PATH,
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg0.ts\n#EXT-X-ENDLIST\n",
    );
    edge.put("/dvr/dvrpfx/rec1/seg0.ts", "catch-up segment 0");
    edge
}

fn start(edges: &[(i64, &MediaEdge)], lines: &[&str]) -> Router {
    let entries: Vec<_> = edges
        .iter()
        .map(|(id, e)| media_edge_entry(*id, e))
        .collect();
    let mut all = vec![PROXY];
    all.extend_from_slice(lines);
    Setup::with(streaming_snapshot("v1", &entries))
        .router_lines(&all)
        .start()
}

fn ok(response: Response) -> Response {
    assert_eq!(response.status, 200, "{}", response.summary());
    response
}

#[test]
fn proxied_hls_playlists_point_back_to_the_router_and_sub_requests_reach_the_stream_directory() {
    let edge = hls_edge("e1", 2);
    let router = start(
        &[(1, &edge)],
        &["routes: {live: {mode: proxy}, catchup: {mode: proxy}}"],
    );

    let master = ok(router.get("/btv/live/hls/ch1.m3u8?token=t0"));
    assert_eq!(
        master.text(),
        "#EXTM3U\n\
#EXT-X-VERSION:6\n\
#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"https://keys.example.com/k1\"\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en\",URI=\"/btv/live/hls/ch1/~e1/audio/en.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO=\"aud\"\n\
/btv/live/hls/ch1/~e1/v1/index.m3u8?token=abc\n\
#EXT-X-STREAM-INF:BANDWIDTH=1600000,AUDIO=\"aud\"\n\
/btv/live/hls/ch1/~e1/v2/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=100000\n\
http://cdn.other.example/ch1/low.m3u8\n"
    );
    assert_eq!(
        master.header("content-length"),
        Some(master.body.len().to_string().as_str())
    );
    assert_eq!(
        master.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(master.header("cache-control"), Some("no-cache"));
    assert_eq!(master.header("etag"), None, "{:?}", master.headers);
    assert_eq!(master.header("transfer-encoding"), None);

    let media = ok(router.get("/btv/live/hls/ch1/~e1/v1/index.m3u8?token=abc"));
    let origin = edge.origin();
    assert_eq!(
        media.text(),
        format!(
            "#EXTM3U\r\n\
#EXT-X-TARGETDURATION:2\r\n\
#EXT-X-MEDIA-SEQUENCE:5\r\n\
#EXT-X-MAP:URI=\"/btv/live/hls/ch1/~e1/v1/init.mp4\"\r\n\
#EXTINF:2.0,\r\n\
/btv/live/hls/ch1/~e1/v1/seg5.m4s\r\n\
#EXTINF:2.0,\r\n\
/btv/live/hls/ch1/~e1/v1/seg6.m4s\r\n\
#EXTINF:2.0,\r\n\
{origin}/shared/ads/ad1.m4s\r\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"/btv/live/hls/ch1/~e1/v1/seg7.part0.m4s\"\r\n"
        )
    );
    let segment = ok(router.get("/btv/live/hls/ch1/~e1/v1/seg5.m4s?_HLS_msn=5&_HLS_part=1"));
    assert_eq!(segment.text(), "segment 5 from e1");
    assert_eq!(segment.header("x-edge"), Some("e1"));
    // Without an edge hint too.
    assert_eq!(
        ok(router.get("/btv/live/hls/ch1/~/v1/init.mp4")).text(),
        "init"
    );

    let catchup = ok(router.get("/btv/catchup/hls/p1.m3u8"));
    assert_eq!(
        catchup.text(),
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n/btv/catchup/hls/p1/~e1/seg0.ts\n#EXT-X-ENDLIST\n"
    );
    // Not live: the edge's caching, for this player only.
    assert_eq!(catchup.header("cache-control"), Some("private, max-age=60"));
    assert_eq!(
        ok(router.get("/btv/catchup/hls/p1/~e1/seg0.ts")).text(),
        "catch-up segment 0"
    );

    assert_eq!(
        edge.targets(),
        [
            "/live/ch1/master.m3u8?token=t0",
            "/live/ch1/v1/index.m3u8?token=abc",
            "/live/ch1/v1/seg5.m4s?_HLS_msn=5&_HLS_part=1",
            "/live/ch1/v1/init.mp4",
            CATCHUP_PATH,
            "/dvr/dvrpfx/rec1/seg0.ts",
        ]
    );
    for request in edge.requests() {
        assert_eq!(request.header("host"), edge.host());
        assert_eq!(request.header("x-real-ip"), "127.0.0.1");
    }
    // Manifests are asked for uncompressed.
    assert_eq!(edge.requests()[0].header("accept-encoding"), "identity");
    let text = scrape(&router);
    assert_eq!(
        metric_sum(
            &text,
            "cti_kaltura_manifest_rewrites_total",
            &[("format", "hls")]
        ),
        3.0,
        "{text}"
    );
}

#[test]
fn escapes_from_the_stream_directory_are_refused() {
    let edge = hls_edge("e1", 3);
    let router = start(&[(1, &edge)], &["routes: {live: {mode: proxy}}"]);
    for path in [
        "/btv/live/hls/ch1/~e1/../secret.ts",
        "/btv/live/hls/ch1/~e1/v1/../../secret.ts",
        "/btv/live/hls/ch1/~/%2e%2e/secret.ts",
        "/btv/live/hls/ch1/~/..%2fsecret.ts",
        "/btv/live/hls/ch1/~e1//etc/passwd",
        "/btv/live/hls/ch1/~ehost.evil/x.ts",
        "/btv/live/hls/ch1/~e1/",
    ] {
        let response = router.get(path);
        assert_eq!(response.status, 400, "{path}: {}", response.summary());
    }
    assert!(edge.targets().is_empty(), "{:?}", edge.targets());
}

#[test]
fn range_and_head_pass_through() {
    let edge = hls_edge("e1", 4);
    edge.put("/live/ch1/v1/seg9.ts", (0u8..200).collect::<Vec<u8>>());
    let router = start(&[(1, &edge)], &["routes: {live: {mode: proxy}}"]);

    let partial = router.request(
        router.v4(),
        "GET",
        "/btv/live/hls/ch1/~e1/v1/seg9.ts",
        &[("Range", "bytes=10-19")],
    );
    assert_eq!(partial.status, 206, "{}", partial.summary());
    assert_eq!(partial.body, (10u8..20).collect::<Vec<u8>>());
    assert_eq!(partial.header("content-range"), Some("bytes 10-19/200"));

    let whole = ok(router.get("/btv/live/hls/ch1.m3u8"));
    let head = router.request(router.v4(), "HEAD", "/btv/live/hls/ch1.m3u8", &[]);
    assert_eq!(head.status, 200, "{}", head.summary());
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(whole.body.len().to_string().as_str())
    );
    let head_segment = router.request(router.v4(), "HEAD", "/btv/live/hls/ch1/~e1/v1/seg9.ts", &[]);
    assert_eq!(head_segment.status, 200, "{}", head_segment.summary());
    assert_eq!(head_segment.header("content-length"), Some("200"));
    assert!(head_segment.body.is_empty());
    let methods: Vec<String> = edge.requests().iter().map(|r| r.method.clone()).collect();
    // The manifest's HEAD is a GET at the edge (the rewritten length needs the body).
    assert_eq!(methods, ["GET", "GET", "GET", "HEAD"]);
    assert!(edge.requests()[1].header_values("range").is_empty());
}

#[test]
fn large_non_manifest_and_failed_answers_pass_through_unmodified() {
    let edge = hls_edge("e1", 5);
    let mut big = String::from("#EXTM3U\n#EXT-X-TARGETDURATION:2\n");
    while big.len() < 3000 {
        big.push_str("#EXTINF:2.0,\nseg.ts\n");
    }
    edge.put(HLS_PATH, big.clone());
    edge.put_file(
        "/live/ch1/v1/index.m3u8",
        File {
            status: 200,
            content_type: "text/plain".into(),
            body: b"not a playlist".to_vec(),
            gzip: false,
        },
    );
    edge.put_file(
        "/live/ch1/v2/index.m3u8",
        File {
            status: 503,
            content_type: "text/plain".into(),
            body: b"edge overloaded".to_vec(),
            gzip: false,
        },
    );
    let router = Setup::with(streaming_snapshot("v1", &[media_edge_entry(1, &edge)]))
        .router_lines(&[
            "routes: {live: {mode: proxy}}",
            "proxy: {connect_timeout_ms: 300, read_timeout_ms: 5000, max_manifest_bytes: 1024}",
        ])
        .start();

    let large = ok(router.get("/btv/live/hls/ch1.m3u8"));
    assert_eq!(large.text(), big);
    let plain = ok(router.get("/btv/live/hls/ch1/~e1/v1/index.m3u8"));
    assert_eq!(plain.text(), "not a playlist");
    let failed = router.get("/btv/live/hls/ch1/~e1/v2/index.m3u8");
    assert_eq!(failed.status, 503, "{}", failed.summary());
    assert_eq!(failed.text(), "edge overloaded");
    // Media by its type is streamed without being buffered: not_manifest, not too_large.
    edge.put_file(
        "/live/ch1/v4/index.m3u8",
        File {
            status: 200,
            content_type: "video/mp2t".into(),
            body: vec![0x47; 3000],
            gzip: false,
        },
    );
    let media = ok(router.get("/btv/live/hls/ch1/~e1/v4/index.m3u8"));
    assert_eq!(media.body, vec![0x47; 3000]);
    let missing = router.get("/btv/live/hls/ch1/~e1/v3/index.m3u8");
    assert_eq!(missing.status, 404, "{}", missing.summary());

    let text = scrape(&router);
    let passed = |reason| {
        metric_sum(
            &text,
            "cti_kaltura_manifest_passthrough_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(passed("too_large"), 1.0, "{text}");
    assert_eq!(passed("not_manifest"), 2.0, "{text}");
    assert_eq!(
        metric_sum(&text, "cti_kaltura_manifest_rewrites_total", &[]),
        0.0,
        "{text}"
    );
}

#[test]
fn gzip_from_the_edge_is_decompressed_and_rewritten() {
    let edge = hls_edge("e1", 6);
    edge.put_file(
        HLS_PATH,
        File {
            status: 200,
            content_type: "application/vnd.apple.mpegurl".into(),
            body: MASTER.as_bytes().to_vec(),
            gzip: true,
        },
    );
    let router = start(&[(1, &edge)], &["routes: {live: {mode: proxy}}"]);
    let master = ok(router.get("/btv/live/hls/ch1.m3u8"));
    assert_eq!(
        master.header("content-encoding"),
        None,
        "{:?}",
        master.headers
    );
    assert!(
        master
            .text()
            .contains("\n/btv/live/hls/ch1/~e1/v1/index.m3u8?token=abc\n"),
        "{}",
        master.text()
    );
    assert_eq!(
        master.header("content-length"),
        Some(master.body.len().to_string().as_str())
    );
}

#[test]
fn manifest_mode_answers_segments_absolute_on_the_edge_and_playlists_through_the_router() {
    let edge = hls_edge("e1", 7);
    let router = start(&[(1, &edge)], &["routes: {live: {mode: manifest}}"]);
    let master = ok(router.get("/btv/live/hls/ch1.m3u8"));
    let origin = edge.origin();
    assert_eq!(
        master.text(),
        format!(
            "#EXTM3U\n\
#EXT-X-VERSION:6\n\
#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"https://keys.example.com/k1\"\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en\",URI=\"/btv/live/hls/ch1/~e1/audio/en.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO=\"aud\"\n\
/btv/live/hls/ch1/~e1/v1/index.m3u8?token=abc\n\
#EXT-X-STREAM-INF:BANDWIDTH=1600000,AUDIO=\"aud\"\n\
/btv/live/hls/ch1/~e1/v2/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=100000\n\
http://cdn.other.example/ch1/low.m3u8\n"
        )
    );
    let media = ok(router.get("/btv/live/hls/ch1/~e1/v1/index.m3u8"));
    assert_eq!(
        media.text(),
        format!(
            "#EXTM3U\r\n\
#EXT-X-TARGETDURATION:2\r\n\
#EXT-X-MEDIA-SEQUENCE:5\r\n\
#EXT-X-MAP:URI=\"{origin}/live/ch1/v1/init.mp4\"\r\n\
#EXTINF:2.0,\r\n\
{origin}/live/ch1/v1/seg5.m4s\r\n\
#EXTINF:2.0,\r\n\
{origin}/live/ch1/v1/seg6.m4s\r\n\
#EXTINF:2.0,\r\n\
{origin}/shared/ads/ad1.m4s\r\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{origin}/live/ch1/v1/seg7.part0.m4s\"\r\n"
        )
    );
    assert_eq!(edge.targets(), [HLS_PATH, "/live/ch1/v1/index.m3u8"]);
}

/// The edge id a rewritten playlist's sub-requests carry (`~e{id}/`).
fn hinted_edge(body: &str) -> i64 {
    let at = body
        .find("/~e")
        .unwrap_or_else(|| panic!("no edge hint in {body}"));
    let digits: String = body[at + 3..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("bad hint in {body}"))
}

#[test]
fn live_sessions_stay_on_their_edge_and_move_when_it_dies() {
    let mut edges = [hls_edge("e1", 8), hls_edge("e2", 9)];
    let router = start(
        &[(1, &edges[0]), (2, &edges[1])],
        &["routes: {live: {mode: proxy}}"],
    );
    let first = hinted_edge(&ok(router.get("/btv/live/hls/ch1.m3u8")).text());
    let (mine, other) = if first == 1 { (0, 1) } else { (1, 0) };
    // Weighted random would pick the other edge half the time: the hint keeps the session.
    for _ in 0..12 {
        let refresh = ok(router.get(&format!("/btv/live/hls/ch1/~e{first}/v1/index.m3u8")));
        assert_eq!(hinted_edge(&refresh.text()), first);
    }
    let count = |edge: &MediaEdge| {
        edge.targets()
            .iter()
            .filter(|t| t.contains("v1/index"))
            .count()
    };
    assert_eq!(count(&edges[mine]), 12);
    assert_eq!(count(&edges[other]), 0);

    edges[mine].kill();
    let survivor = &edges[other];
    let second = if first == 1 { 2 } else { 1 };
    // A segment of the dead edge's session: served by the other.
    let segment = ok(router.get(&format!("/btv/live/hls/ch1/~e{first}/v1/seg5.m4s")));
    assert_eq!(segment.text(), format!("segment 5 from {}", survivor.name));
    // The next refresh moves the session: its references name the survivor.
    let refresh = ok(router.get(&format!("/btv/live/hls/ch1/~e{first}/v1/index.m3u8")));
    assert_eq!(hinted_edge(&refresh.text()), second, "{}", refresh.text());
    assert!(refresh
        .text()
        .contains(&format!("/btv/live/hls/ch1/~e{second}/v1/seg5.m4s")));
}

#[test]
fn with_consistent_selection_a_hint_for_another_edge_is_not_followed() {
    let edges = [hls_edge("e1", 10), hls_edge("e2", 11)];
    let router = start(
        &[(1, &edges[0]), (2, &edges[1])],
        &["routes: {live: {mode: proxy, selection: consistent}}"],
    );
    let chosen = hinted_edge(&ok(router.get("/btv/live/hls/ch1.m3u8")).text());
    let wrong = if chosen == 1 { 2 } else { 1 };
    let refresh = ok(router.get(&format!("/btv/live/hls/ch1/~e{wrong}/v1/index.m3u8")));
    assert_eq!(hinted_edge(&refresh.text()), chosen);
    let unknown = ok(router.get("/btv/live/hls/ch1/~e77/v1/index.m3u8"));
    assert_eq!(hinted_edge(&unknown.text()), chosen);
    let served_by_wrong = edges[(wrong - 1) as usize].targets();
    assert!(served_by_wrong.is_empty(), "{served_by_wrong:?}");
}

#[test]
fn dash_manifests_get_a_base_url_back_to_the_router() {
    let edge = MediaEdge::start("d1", 12);
    edge.put(
        DASH_PATH,
        r#"<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" minimumUpdatePeriod="PT2S">
  <Period id="0" start="PT0S">
    <AdaptationSet mimeType="video/mp4">
      <SegmentTemplate initialization="init-$RepresentationID$.m4s" media="chunk-$RepresentationID$-$Number$.m4s" startNumber="1" duration="2" timescale="1"/>
      <Representation id="0" bandwidth="100000"/>
    </AdaptationSet>
  </Period>
</MPD>
"#,
    );
    edge.put("/live/ch1/dash/chunk-0-1.m4s", "dash chunk");
    let router = start(&[(1, &edge)], &["routes: {live: {mode: proxy}}"]);
    let mpd = ok(router.get("/btv/live/mpd/ch1.mpd"));
    let text = mpd.text();
    assert!(
        text.contains("<BaseURL>/btv/live/mpd/ch1/~e1/</BaseURL>"),
        "{text}"
    );
    assert!(
        text.contains(r#"media="chunk-$RepresentationID$-$Number$.m4s""#),
        "{text}"
    );
    assert_eq!(mpd.header("content-type"), Some("application/dash+xml"));
    assert_eq!(
        ok(router.get("/btv/live/mpd/ch1/~e1/chunk-0-1.m4s")).text(),
        "dash chunk"
    );
    assert!(edge
        .targets()
        .contains(&"/live/ch1/dash/chunk-0-1.m4s".to_string()));
}

#[test]
fn a_manifest_whose_edges_are_all_dead_is_a_502_and_a_dead_first_choice_is_retried() {
    let mut dead = hls_edge("dead", 13);
    dead.kill();
    let router = start(&[(1, &dead)], &["routes: {live: {mode: proxy}}"]);
    let response = router.get("/btv/live/hls/ch1.m3u8");
    assert_eq!(response.status, 502, "{}", response.summary());
    drop(router);

    let live = hls_edge("live", 14);
    let router = start(
        &[(1, &dead), (2, &live)],
        &["routes: {live: {mode: proxy}}"],
    );
    // Whichever is chosen first, the playlist comes from the live edge and names it.
    for _ in 0..6 {
        let master = ok(router.get("/btv/live/hls/ch1.m3u8"));
        assert_eq!(hinted_edge(&master.text()), 2, "{}", master.text());
    }
}

#[test]
fn vod_playlists_keep_their_paths_in_proxy_mode() {
    let edge = MediaEdge::start("v1", 15);
    edge.put(
        "/vod/movies/m1/index.m3u8",
        "#EXTM3U\n#EXTINF:4.0,\nseg0.ts\n#EXTINF:4.0,\n/vod/movies/m1/seg1.ts?t=1\n#EXTINF:4.0,\n/ads/a.ts\n#EXT-X-ENDLIST\n",
    );
    edge.put("/vod/movies/m1/seg0.ts", "vod segment 0");
    let router = start(&[(1, &edge)], &["routes: {vod: {mode: proxy}}"]);
    let playlist = ok(router.get("/vod/movies/m1/index.m3u8"));
    // VOD and static edges are reached over http:// without a port (as their redirects).
    let edge_base = format!("http://{}", edge.host());
    assert_eq!(
        playlist.text(),
        format!(
            "#EXTM3U\n#EXTINF:4.0,\n/vod/movies/m1/seg0.ts\n#EXTINF:4.0,\n/vod/movies/m1/seg1.ts?t=1\n#EXTINF:4.0,\n{edge_base}/ads/a.ts\n#EXT-X-ENDLIST\n"
        )
    );
    assert_eq!(
        ok(router.get("/vod/movies/m1/seg0.ts")).text(),
        "vod segment 0"
    );
    assert_eq!(
        edge.targets(),
        ["/vod/movies/m1/index.m3u8", "/vod/movies/m1/seg0.ts"]
    );
}
