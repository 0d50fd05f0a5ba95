//! A real player through the router: ffmpeg (Debian's package, installed by `.ci/install-deps`)
//! plays media that ffmpeg itself generated at test time, served by in-process media edges,
//! to the end, in redirect, proxy and manifest modes: live HLS (a playlist that grows while it
//! plays), DASH on the live route, catch-up HLS and a VOD MP4; and a live session whose edge
//! is killed mid-way in proxy and manifest modes. Every ffmpeg run is bounded in time and
//! killed at the end. Without ffmpeg these tests fail (they do not skip).

use crate::harness::{try_poll_for, ChildGuard, Router, Setup};
use crate::media_edge::{media_edge_entry, streaming_snapshot, MediaEdge, CATCHUP_PATH, HLS_PATH};
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
/// each), `dash/manifest.mpd` with its init and chunk files, `clip.mp4`.
struct Media {
    dir: tempfile::TempDir,
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
        generate(
            root,
            &[
                "-t",
                "4",
                "-f",
                "dash",
                "-seg_duration",
                "1",
                "-use_template",
                "1",
                "-use_timeline",
                "0",
                "-init_seg_name",
                "init-$RepresentationID$.m4s",
                "-media_seg_name",
                "chunk-$RepresentationID$-$Number%05d$.m4s",
                "dash/manifest.mpd",
            ],
        );
        generate(root, &["-t", "3", "-movflags", "+faststart", "clip.mp4"]);
        Media { dir }
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

    /// DASH files other than the MPD.
    fn dash_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path("dash"))
            .expect("dash dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".m4s"))
            .collect();
        names.sort();
        assert!(names.len() >= 4, "{names:?}");
        names
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
/// [`HLS_PATH`], `v1/index.m3u8` growing from `live_start`, segments in `v1/`), DASH at
/// [`DASH_PATH`], the catch-up recording at [`CATCHUP_PATH`] (the whole HLS, ended) and
/// `/vod/movies/clip.mp4`.
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
    edge.serve_dir("/live/ch1/dash/", media.path("dash"));
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
        let log = dir.join(format!("ffmpeg-{}.log", fastrand_name()));
        let err = std::fs::File::create(&log).expect("log file");
        let child = Command::new(ffmpeg())
            .args(["-hide_banner", "-nostdin", "-loglevel", "info"])
            .args(["-rw_timeout", "5000000", "-i", url, "-f", "null", "-"])
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

/// Live HLS, catch-up HLS, DASH and the MP4 in one mode. In redirect mode the edge listens on
/// port 80: VOD redirects name no port (a customer rule), so the player goes to port 80.
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
    // a redirect led to: through a 302 it asks the router for them and fails. That is what
    // manifest mode is for (docs/operations.md).
    if mode == "redirect" {
        let url = format!("http://{}/btv/live/mpd/ch1.mpd", router.v4());
        let (status, log) = Player::start(&url, router.dir()).wait();
        assert!(
            !status.success(),
            "ffmpeg's DASH through a 302 works now:\n{log}"
        );
    } else {
        let log = play(&router, "/btv/live/mpd/ch1.mpd");
        let chunks: Vec<String> = media
            .dash_files()
            .into_iter()
            .map(|n| format!("/live/ch1/dash/{n}"))
            .collect();
        assert_served(&[&edge], &chunks, &log);
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

/// A live session whose edge dies after it served two segments: ffmpeg plays on to the end,
/// the other edge serving the rest.
fn live_session_survives_a_dead_edge(mode: &str, hosts: (u8, u8)) {
    let media = Media::make();
    let start = Instant::now();
    let mut edges = [
        media_edge("e1", hosts.0, &media, start),
        media_edge("e2", hosts.1, &media, start),
    ];
    let router = router_for(&[(1, &edges[0]), (2, &edges[1])], mode, true);
    let url = format!("http://{}/btv/live/hls/ch1.m3u8", router.v4());
    let player = Player::start(&url, router.dir());
    let segments_of =
        |edge: &MediaEdge| edge.targets().iter().filter(|t| t.ends_with(".ts")).count();
    let session = try_poll_for(
        "two segments served",
        PLAY_BOUND,
        Duration::from_millis(50),
        || match edges.iter().position(|e| segments_of(e) >= 2) {
            Some(i) => Ok(i),
            None => Err(player.log()),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let killed_at = edges[session].targets().len();
    edges[session].kill();
    let log = player.finish();
    let survivor = &edges[1 - session];
    let last = format!("/live/ch1/v1/{}", media.hls_segments()[HLS_SEGMENTS - 1].1);
    assert!(
        survivor.targets().contains(&last),
        "the survivor did not serve the last segment; it saw {:?} (the dead edge saw {:?} before it died)\n{log}",
        survivor.targets(),
        &edges[session].targets()[..killed_at]
    );
    let _ = router;
}

#[test]
fn ffmpeg_plays_on_when_the_edge_dies_in_proxy_mode() {
    live_session_survives_a_dead_edge("proxy", (43, 44));
}

#[test]
fn ffmpeg_plays_on_when_the_edge_dies_in_manifest_mode() {
    live_session_survives_a_dead_edge("manifest", (45, 46));
}
