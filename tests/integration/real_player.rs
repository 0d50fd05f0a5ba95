//! A real player through the router: ffmpeg (Debian's package, installed by `.ci/install-deps`)
//! plays media that ffmpeg itself generated at test time, served by in-process media edges,
//! to the end, in redirect, proxy and manifest modes: live HLS (a playlist that grows while it
//! plays), live DASH (a dynamic MPD whose `SegmentTimeline` grows while it plays, refreshed
//! through the router, see [`LiveDash`]), catch-up HLS and a VOD MP4; and a live session whose
//! edge is killed mid-way in proxy and manifest modes (HLS), and in proxy mode (DASH). Every
//! ffmpeg run is bounded in time and killed at the end. Without ffmpeg these tests fail (they
//! do not skip).
//!
//! What ffmpeg 5.1's DASH demuxer (`libavformat/dashdec.c`) does with a dynamic MPD, which
//! these tests are built around:
//! - it starts at the first segment of the last 60 s of the `SegmentTimeline`
//!   (`calc_cur_seg_no`): here the first one;
//! - before each segment it fetches the MPD again from the URL it was given
//!   (`get_current_fragment` calls `refresh_manifest` whenever the representation has a
//!   timeline; with `SegmentTemplate@duration` alone it never refreshes), and keeps only the
//!   new timeline: the segment URLs stay those of the first MPD it read;
//! - it does not wait for a segment: one past the timeline is asked for at once, and one that
//!   fails (`404`) is skipped. A player that reads as fast as it can overruns the live edge, so
//!   ffmpeg plays at the media's own rate (`-re`), as a viewer does;
//! - it never leaves live mode (`is_live` is only ever set), even when the MPD turns
//!   `static`: past the last segment it asks for ever higher numbers. A live DASH session
//!   therefore ends when the viewer stops: ffmpeg plays [`DASH_PLAY_SECS`] seconds (`-t`) of
//!   an event that lasts longer.

use crate::harness::{try_poll_for, ChildGuard, Router, Setup};
use crate::http::RequestHead;
use crate::live_dash::LiveDash;
use crate::media_edge::{
    media_edge_entry, streaming_snapshot, MediaEdge, CATCHUP_PATH, DASH_PATH, HLS_PATH,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest one ffmpeg run may take (the live stream lasts about 8 s).
const PLAY_BOUND: Duration = Duration::from_secs(90);
/// Segments (1 s each) of the generated HLS media.
const HLS_SEGMENTS: usize = 8;
/// Live: segments in the playlist when the session starts; one more each second after.
const LIVE_WINDOW: usize = 3;
/// Segments (1 s each) of the generated DASH media: the live DASH event's length.
const DASH_SEGMENTS: usize = 8;
/// Seconds of the live DASH event ffmpeg plays (`-t`, at the media's rate): fewer than the
/// event lasts, since ffmpeg does not stop at its end (module documentation).
const DASH_PLAY_SECS: usize = 5;

fn ffmpeg() -> &'static str {
    let found = Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "ffmpeg is not installed: the real-player tests need it (Debian package `ffmpeg`; \
         `bash .ci/install-deps` installs it)"
    );
    "ffmpeg"
}

/// Runs ffmpeg with `args` to the end (bounded); panics with its output when it fails.
fn generate(dir: &Path, args: &[&str]) {
    let status = Command::new(ffmpeg())
        .current_dir(dir)
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=160x120:rate=10"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "10"])
        .args(["-c:a", "aac", "-b:a", "32k"])
        .args(args)
        .output()
        .expect("run ffmpeg");
    assert!(
        status.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// Media made by ffmpeg in a fresh directory: `hls/v1/index.m3u8` + `seg{0..8}.ts` (1 s
/// each), `dash/manifest.mpd` (static, with a `SegmentTimeline`) with its init and chunk files
/// (`init-{rep}.m4s`, `chunk-{rep}-{00001..00008}.m4s`: video 0, audio 1), `clip.mp4`; and the
/// live DASH event made of that MPD.
struct Media {
    dir: tempfile::TempDir,
    dash: LiveDash,
}

impl Media {
    fn make() -> Media {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("hls/v1")).expect("mkdir");
        std::fs::create_dir_all(root.join("dash")).expect("mkdir");
        let duration = HLS_SEGMENTS.to_string();
        generate(
            root,
            &[
                "-t",
                &duration,
                "-f",
                "hls",
                "-hls_time",
                "1",
                "-hls_list_size",
                "0",
                "-hls_segment_filename",
                "hls/v1/seg%d.ts",
                "hls/v1/index.m3u8",
            ],
        );
        let dash_duration = DASH_SEGMENTS.to_string();
        generate(
            root,
            &[
                "-t",
                &dash_duration,
                "-f",
                "dash",
                "-seg_duration",
                "1",
                "-use_template",
                "1",
                "-use_timeline",
                "1",
                "-init_seg_name",
                "init-$RepresentationID$.m4s",
                "-media_seg_name",
                "chunk-$RepresentationID$-$Number%05d$.m4s",
                "dash/manifest.mpd",
            ],
        );
        generate(root, &["-t", "3", "-movflags", "+faststart", "clip.mp4"]);
        let mpd = std::fs::read_to_string(root.join("dash/manifest.mpd")).expect("mpd");
        let dash = LiveDash::from_static(&mpd, LIVE_WINDOW, DASH_PATH);
        assert_eq!(dash.segments(), DASH_SEGMENTS, "{mpd}");
        Media { dir, dash }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `(EXTINF line, segment name)` of the generated media playlist, in order.
    fn hls_segments(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(self.path("hls/v1/index.m3u8")).expect("playlist");
        let lines: Vec<&str> = text.lines().collect();
        let segments: Vec<(String, String)> = lines
            .windows(2)
            .filter(|w| w[0].starts_with("#EXTINF"))
            .map(|w| (w[0].to_string(), w[1].to_string()))
            .collect();
        assert_eq!(segments.len(), HLS_SEGMENTS, "{text}");
        segments
    }
}

/// A live media playlist over `segments` that shows [`LIVE_WINDOW`] segments at `start` and
/// one more each second, then ends (`EXT-X-ENDLIST`) once all are shown.
fn live_playlist(segments: Vec<(String, String)>, start: Instant) -> crate::media_edge::Dynamic {
    Arc::new(move || {
        let shown = (LIVE_WINDOW + start.elapsed().as_secs() as usize).min(segments.len());
        let mut text = String::from(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n",
        );
        for (extinf, name) in &segments[..shown] {
            text.push_str(extinf);
            text.push('\n');
            text.push_str(name);
            text.push('\n');
        }
        if shown == segments.len() {
            text.push_str("#EXT-X-ENDLIST\n");
        }
        text.into_bytes()
    })
}

/// A media edge serving everything in `media`: live HLS of `ch1` (multivariant playlist at
/// [`HLS_PATH`], `v1/index.m3u8` growing from `live_start`, segments in `v1/`), live DASH of
/// `ch1` (`media.dash`: MPD at [`DASH_PATH`], segments in `dash/`), the catch-up recording at
/// [`CATCHUP_PATH`] (the whole HLS, ended) and `/vod/movies/clip.mp4`.
fn media_edge(name: &str, host: u8, media: &Media, live_start: Instant) -> MediaEdge {
    media_edge_on(MediaEdge::start(name, host), media, live_start)
}

fn media_edge_on(edge: MediaEdge, media: &Media, live_start: Instant) -> MediaEdge {
    edge.put(
        HLS_PATH,
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=160x120\nv1/index.m3u8\n",
    );
    edge.put_dynamic(
        "/live/ch1/v1/index.m3u8",
        live_playlist(media.hls_segments(), live_start),
    );
    edge.serve_dir("/live/ch1/v1/", media.path("hls/v1"));
    edge.put_dynamic(DASH_PATH, media.dash.mpd_source());
    edge.serve_dir_gated("/live/ch1/dash/", media.path("dash"), media.dash.gate());
    edge.put(
        CATCHUP_PATH,
        std::fs::read(media.path("hls/v1/index.m3u8")).expect("playlist"),
    );
    edge.serve_dir("/dvr/dvrpfx/rec1/", media.path("hls/v1"));
    edge.put(
        "/vod/movies/clip.mp4",
        std::fs::read(media.path("clip.mp4")).expect("clip"),
    );
    edge
}

fn router_for(edges: &[(i64, &MediaEdge)], mode: &str, health: bool) -> Router {
    let entries: Vec<_> = edges
        .iter()
        .map(|(id, e)| media_edge_entry(*id, e))
        .collect();
    let routes = format!(
        "routes: {{live: {{mode: {mode}}}, catchup: {{mode: {mode}}}, vod: {{mode: {mode}}}}}"
    );
    let setup = Setup::with(streaming_snapshot("v1", &entries)).router_lines(&[
        &routes,
        "proxy: {connect_timeout_ms: 300, read_timeout_ms: 5000}",
    ]);
    let setup = if health {
        setup.health(&[
            "enabled: true",
            "interval_ms: 300",
            "timeout_ms: 200",
            "fall: 1",
            "rise: 1",
        ])
    } else {
        setup
    };
    setup.start()
}

/// A running ffmpeg playing `url` into the null muxer; killed when dropped.
struct Player {
    child: ChildGuard,
    log: PathBuf,
}

impl Player {
    fn start(url: &str, dir: &Path) -> Player {
        Player::start_with(url, dir, &[], &[])
    }

    /// Plays live DASH as a viewer does: at the media's rate, for [`DASH_PLAY_SECS`].
    fn start_live_dash(url: &str, dir: &Path) -> Player {
        Player::start_with(url, dir, &["-re"], &["-t", &DASH_PLAY_SECS.to_string()])
    }

    /// ffmpeg with `input` options before `-i url` and `output` options after it.
    fn start_with(url: &str, dir: &Path, input: &[&str], output: &[&str]) -> Player {
        let log = dir.join(format!("ffmpeg-{}.log", fastrand_name()));
        let err = std::fs::File::create(&log).expect("log file");
        let child = Command::new(ffmpeg())
            .args(["-hide_banner", "-nostdin", "-loglevel", "info"])
            .args(["-rw_timeout", "5000000"])
            .args(input)
            .args(["-i", url])
            .args(output)
            .args(["-f", "null", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn ffmpeg");
        Player {
            child: ChildGuard(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) for ffmpeg to end; panics unless it exited 0.
    fn finish(self) -> String {
        let (status, log) = self.wait();
        assert!(status.success(), "ffmpeg exited {status}:\n{log}");
        log
    }

    /// Waits (bounded) for ffmpeg to end: its exit status and log.
    fn wait(mut self) -> (std::process::ExitStatus, String) {
        let status = try_poll_for(
            "ffmpeg finished",
            PLAY_BOUND,
            Duration::from_millis(100),
            || {
                self.child
                    .0
                    .try_wait()
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| "still playing".to_string())
            },
        )
        .unwrap_or_else(|e| panic!("{e}\nffmpeg log:\n{}", self.log()));
        (status, self.log())
    }
}

/// A fresh name for each player's log in one test process.
fn fastrand_name() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Plays `route` through `router` to the end.
fn play(router: &Router, route: &str) -> String {
    let url = format!("http://{}{route}", router.v4());
    Player::start(&url, router.dir()).finish()
}

/// Whether some edge of `edges` served every one of `paths` (a GET, whole or by range).
fn assert_served(edges: &[&MediaEdge], paths: &[String], log: &str) {
    let seen: Vec<String> = edges
        .iter()
        .flat_map(|e| e.targets())
        .map(|t| t.split('?').next().unwrap_or_default().to_string())
        .collect();
    for path in paths {
        assert!(
            seen.contains(path),
            "no edge served {path}; edges saw {seen:?}\nffmpeg log:\n{log}"
        );
    }
}

fn hls_segment_paths(media: &Media, dir: &str) -> Vec<String> {
    media
        .hls_segments()
        .into_iter()
        .map(|(_, name)| format!("{dir}{name}"))
        .collect()
}

/// Live HLS, catch-up HLS, live DASH and the MP4 in one mode. In redirect mode the edge listens
/// on port 80: VOD redirects name no port (a customer rule), so the player goes to port 80.
fn plays_everything(mode: &str, host: u8) {
    let media = Media::make();
    let port = if mode == "redirect" { 80 } else { 0 };
    let edge = media_edge_on(
        MediaEdge::start_on("e1", host, port),
        &media,
        Instant::now(),
    );
    let router = router_for(&[(1, &edge)], mode, false);

    let log = play(&router, "/btv/live/hls/ch1.m3u8");
    assert_served(&[&edge], &hls_segment_paths(&media, "/live/ch1/v1/"), &log);

    let log = play(&router, "/btv/catchup/hls/p1.m3u8");
    assert_served(
        &[&edge],
        &hls_segment_paths(&media, "/dvr/dvrpfx/rec1/"),
        &log,
    );

    let log = play(&router, "/vod/movies/clip.mp4");
    assert_served(&[&edge], &["/vod/movies/clip.mp4".to_string()], &log);

    // ffmpeg 5.1's DASH demuxer resolves segments against the URL it was given, not the one
    // a redirect led to: through a 302 it asks the router for them and fails (at the first,
    // the init segment). That is what manifest mode is for (docs/operations.md).
    let url = format!("http://{}{DASH_ROUTE}", router.v4());
    if mode == "redirect" {
        let (status, log) = Player::start_live_dash(&url, router.dir()).wait();
        assert!(
            !status.success(),
            "ffmpeg's DASH through a 302 works now:\n{log}"
        );
    } else {
        let log = Player::start_live_dash(&url, router.dir()).finish();
        let segments_via_router = mode == "proxy";
        assert_played_live_dash(&media, &[&edge], segments_via_router, &log);
        assert_location_comes_back_to_the_router(&router);
    }
}

/// The live DASH of `ch1` on the router.
const DASH_ROUTE: &str = "/btv/live/mpd/ch1.mpd";

/// That the `Location` of the live MPD (where to fetch it again; ffmpeg does not use it) names
/// the router in proxy and manifest modes, and that the MPD fetched there is the live one,
/// rewritten the same way.
fn assert_location_comes_back_to_the_router(router: &Router) {
    let location_of = |target: &str| {
        let mpd = router.get(target);
        let text = mpd.text();
        assert!(
            mpd.status == 200 && text.contains("type=\"dynamic\""),
            "{target}: {}",
            mpd.summary()
        );
        let start = text.find("<Location>").expect("a Location") + "<Location>".len();
        let location = text[start..start + text[start..].find('<').expect("closed")].to_string();
        assert!(
            location.starts_with("/btv/live/mpd/ch1/~e") && location.ends_with("/manifest.mpd"),
            "{target}: Location {location:?}\n{text}"
        );
        location
    };
    let location = location_of(DASH_ROUTE);
    assert_eq!(location_of(&location), location);
}

/// Whether the router sent `request` to the edge (the router adds `X-Forwarded-For`; ffmpeg
/// going straight to the edge does not).
fn via_router(request: &RequestHead) -> bool {
    request
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("x-forwarded-for"))
}

/// That ffmpeg played the live DASH event of `media` from `edges` as a live session: it
/// fetched the MPD again and again through the router, each refresh reaching an edge, while
/// the timeline grew; it asked for no segment before it was available; and every segment of
/// the seconds it played (video and audio), including ones not yet available when it started,
/// was served by an edge: through the router's
/// sub-requests when `segments_via_router` (proxy mode), else straight to the edge (manifest
/// mode).
fn assert_played_live_dash(
    media: &Media,
    edges: &[&MediaEdge],
    segments_via_router: bool,
    log: &str,
) {
    let requests: Vec<RequestHead> = edges.iter().flat_map(|e| e.requests()).collect();
    let path_of = |r: &RequestHead| r.target.split('?').next().unwrap_or("").to_string();
    let mpd_fetches: Vec<_> = requests
        .iter()
        .filter(|r| path_of(r) == DASH_PATH)
        .collect();
    assert!(
        mpd_fetches.len() > DASH_PLAY_SECS && mpd_fetches.iter().all(|r| via_router(r)),
        "the MPD was not refreshed through the router: the edges saw {:?}\n{log}",
        mpd_fetches.iter().map(|r| &r.headers).collect::<Vec<_>>()
    );
    let shown = media.dash.shown_log();
    assert!(
        shown.first() == Some(&LIVE_WINDOW) && shown.last() > shown.first(),
        "the timeline did not grow between refreshes: {shown:?}\n{log}"
    );
    let refused = media.dash.refused();
    assert!(
        refused.is_empty(),
        "ffmpeg asked for segments before they were available: {refused:?}\n{log}"
    );
    for number in 1..=DASH_PLAY_SECS {
        for representation in 0..2 {
            let path = format!("/live/ch1/dash/chunk-{representation}-{number:05}.m4s");
            let served: Vec<bool> = requests
                .iter()
                .filter(|r| path_of(r) == path)
                .map(via_router)
                .collect();
            assert!(
                !served.is_empty() && served.iter().all(|&v| v == segments_via_router),
                "{path}: served {served:?} (true: through the router), expected {}\n\
                 edges saw {:?}\n{log}",
                if segments_via_router {
                    "through the router"
                } else {
                    "straight"
                },
                requests.iter().map(|r| &r.target).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn ffmpeg_plays_every_kind_in_redirect_mode() {
    plays_everything("redirect", 40);
}

#[test]
fn ffmpeg_plays_every_kind_in_proxy_mode() {
    plays_everything("proxy", 41);
}

#[test]
fn ffmpeg_plays_every_kind_in_manifest_mode() {
    plays_everything("manifest", 42);
}

/// The live stream of a dead-edge case.
#[derive(Clone, Copy)]
enum Live {
    Hls,
    Dash,
}

impl Live {
    /// The route ffmpeg plays, and the edge paths of its live playlist (or MPD), of the
    /// segment after which the edge dies (the second) and of the last segment ffmpeg plays.
    fn paths(self, media: &Media) -> (&'static str, &'static str, String, String) {
        match self {
            Live::Hls => {
                let segments = hls_segment_paths(media, "/live/ch1/v1/");
                let (second, last) = (segments[1].clone(), segments[HLS_SEGMENTS - 1].clone());
                (
                    "/btv/live/hls/ch1.m3u8",
                    "/live/ch1/v1/index.m3u8",
                    second,
                    last,
                )
            }
            Live::Dash => (
                DASH_ROUTE,
                DASH_PATH,
                "/live/ch1/dash/chunk-0-00002.m4s".to_string(),
                format!("/live/ch1/dash/chunk-0-{DASH_PLAY_SECS:05}.m4s"),
            ),
        }
    }
}

/// A live session whose edge dies after it served the second segment: ffmpeg plays on to the
/// end, the other edge serving the playlist (MPD) refreshes and the last segment.
fn live_session_survives_a_dead_edge(live: Live, mode: &str, hosts: (u8, u8)) {
    let media = Media::make();
    let start = Instant::now();
    let mut edges = [
        media_edge("e1", hosts.0, &media, start),
        media_edge("e2", hosts.1, &media, start),
    ];
    let router = router_for(&[(1, &edges[0]), (2, &edges[1])], mode, true);
    let (route, playlist, second, last) = live.paths(&media);
    let url = format!("http://{}{route}", router.v4());
    let player = match live {
        Live::Hls => Player::start(&url, router.dir()),
        Live::Dash => Player::start_live_dash(&url, router.dir()),
    };
    let session = try_poll_for(
        "two segments served",
        PLAY_BOUND,
        Duration::from_millis(50),
        || match edges.iter().position(|e| e.targets().contains(&second)) {
            Some(i) => Ok(i),
            None => Err(player.log()),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let killed_at = edges[session].targets().len();
    edges[session].kill();
    let log = player.finish();
    let survivor = &edges[1 - session].targets();
    assert!(
        survivor.iter().any(|t| t == playlist) && survivor.contains(&last),
        "the survivor did not serve {playlist} and the last segment played; it saw \
         {survivor:?} (the dead edge saw {:?} before it died)\n{log}",
        &edges[session].targets()[..killed_at]
    );
    let _ = router;
}

#[test]
fn ffmpeg_plays_on_when_the_edge_dies_in_proxy_mode() {
    live_session_survives_a_dead_edge(Live::Hls, "proxy", (43, 44));
}

#[test]
fn ffmpeg_plays_on_when_the_edge_dies_in_manifest_mode() {
    live_session_survives_a_dead_edge(Live::Hls, "manifest", (45, 46));
}

/// Not in manifest mode: ffmpeg 5.1 keeps the segment URLs of the first MPD it read, which
/// name the dead edge there (docs/operations.md).
#[test]
fn ffmpeg_plays_live_dash_on_when_the_edge_dies_in_proxy_mode() {
    live_session_survives_a_dead_edge(Live::Dash, "proxy", (47, 48));
}
