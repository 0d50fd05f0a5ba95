//! Benchmarks of the manifest rewriters (`cti_kaltura::manifest`): a 2,000-entry live HLS media
//! playlist (issue 14 §6: < 100 µs), a multivariant playlist and DASH MPDs, each in proxy mode
//! (references back to the router), manifest mode (absolute on the edge), with the router's own
//! live proxy- and manifest-mode policies (`streaming::rebase::Rebase::rewrite`, the production
//! path; `live_proxy_callback` is the proxy policy without the plain-relative shortcut) and
//! with a callback that keeps everything (the cost of finding and resolving alone). Results:
//! `docs/performance.md`, section "Manifest rewriting".
//!
//! `cargo bench --bench manifest` measures; under `cargo test` criterion runs each once.

use criterion::{Criterion, Throughput};
use cti_kaltura::manifest::{rewrite, BaseUrl, ManifestFormat, ResolvedRef};
use cti_kaltura::streaming::rebase::{Rebase, SubRequestBase};
use std::fmt::Write;
use std::hint::black_box;

/// A live media playlist as a packager writes it: `entries` segments of 2 s with a
/// program-date-time every 30 entries, an AES-128 key on another host and a token on every
/// segment URI.
fn live_media_playlist(entries: usize) -> String {
    let mut playlist = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1764780000\n\
         #EXT-X-KEY:METHOD=AES-128,URI=\"https://keys.example.net/key?id=ch1\",IV=0x1\n",
    );
    for index in 0..entries {
        let sequence = 1_764_780_000 + index;
        if index % 30 == 0 {
            let _ = writeln!(
                playlist,
                "#EXT-X-PROGRAM-DATE-TIME:2026-12-03T17:{:02}:00.000Z",
                index / 30 % 60
            );
        }
        let _ = writeln!(
            playlist,
            "#EXTINF:2.000000,\nch1-{sequence}.ts?token=a1b2c3d4e5f6"
        );
    }
    playlist
}

fn multivariant_playlist() -> String {
    let mut playlist = String::from("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for (language, name) in [("en", "English"), ("ru", "Русский"), ("de", "Deutsch")] {
        let _ = writeln!(
            playlist,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",LANGUAGE=\"{language}\",NAME=\"{name}\",URI=\"audio/{language}/index.m3u8\""
        );
        let _ = writeln!(
            playlist,
            "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",LANGUAGE=\"{language}\",NAME=\"{name}\",URI=\"subs/{language}/index.m3u8\""
        );
    }
    for (bandwidth, height) in [
        (800_000, 360),
        (1_400_000, 480),
        (2_800_000, 720),
        (5_000_000, 1080),
    ] {
        let _ = writeln!(
            playlist,
            "#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},RESOLUTION={}x{height},CODECS=\"avc1.4d401f,mp4a.40.2\",AUDIO=\"aac\",SUBTITLES=\"subs\"\n{height}p/index.m3u8",
            height * 16 / 9
        );
        let _ = writeln!(
            playlist,
            "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={},URI=\"{height}p/iframes.m3u8\"",
            bandwidth / 10
        );
    }
    playlist
}

/// An MPD of one period with three representations and `entries` `SegmentURL`s each.
fn segment_list_mpd(entries: usize) -> String {
    let mut mpd = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" type=\"static\" \
         mediaPresentationDuration=\"PT1H\" minBufferTime=\"PT2S\" profiles=\"urn:mpeg:dash:profile:full:2011\">\n\
         \x20 <ProgramInformation><Title>Film</Title></ProgramInformation>\n  <Period id=\"0\">\n    <AdaptationSet mimeType=\"video/mp4\">\n",
    );
    for representation in 0..3 {
        let _ = writeln!(
            mpd,
            "      <Representation id=\"v{representation}\" bandwidth=\"{}\">",
            (representation + 1) * 1_000_000
        );
        mpd.push_str("        <SegmentList timescale=\"1000\" duration=\"2000\">\n");
        let _ = writeln!(
            mpd,
            "          <Initialization sourceURL=\"v{representation}/init.mp4\"/>"
        );
        for index in 0..entries {
            let _ = writeln!(
                mpd,
                "          <SegmentURL media=\"v{representation}/seg-{index}.m4s\"/>"
            );
        }
        mpd.push_str("        </SegmentList>\n      </Representation>\n");
    }
    mpd.push_str("    </AdaptationSet>\n  </Period>\n</MPD>\n");
    mpd
}

/// The callbacks the router's modes would use.
fn to_router(r: &ResolvedRef<'_>, out: &mut String) -> bool {
    if !r.same_origin {
        return false;
    }
    out.push_str("http://router.example/s/");
    out.push_str(r.path);
    if let Some(query) = r.query {
        out.push('?');
        out.push_str(query);
    }
    true
}

fn to_edge(r: &ResolvedRef<'_>, out: &mut String) -> bool {
    if !r.same_origin {
        return false;
    }
    out.push_str(r.absolute);
    true
}

/// What the router's proxy mode does for the live channel of the HLS bodies: references in
/// the content's directory become sub-requests `/btv/live/hls/ch1/~e7/<rest>`.
const LIVE_PROXY: Rebase<'static> = Rebase::SubRequests(LIVE_CHANNEL);

/// What the router's manifest mode does for it: absolute URLs on the edge, playlists as
/// sub-requests.
const LIVE_MANIFEST: Rebase<'static> = Rebase::EdgeUrls {
    playlists: Some(LIVE_CHANNEL),
};

const LIVE_CHANNEL: SubRequestBase<'static> = SubRequestBase {
    content_prefix: "/btv/live/hls/ch1",
    edge_id: 7,
    dir: "/btv/live/hls/ch1/",
};

fn live_proxy_callback(r: &ResolvedRef<'_>, out: &mut String) -> bool {
    LIVE_PROXY.apply(r, out)
}

fn keep(_: &ResolvedRef<'_>, _: &mut String) -> bool {
    false
}

type Callback = fn(&ResolvedRef<'_>, &mut String) -> bool;

/// How a mode rewrites: `rewrite` with a callback, or the router's own `Rebase::rewrite`
/// (the production path, with the plain-relative shortcut).
#[derive(Clone, Copy)]
enum Rewriter {
    Callback(Callback),
    Policy(Rebase<'static>),
}

impl Rewriter {
    fn run(self, format: ManifestFormat, body: &str, base: &BaseUrl) -> String {
        match self {
            Rewriter::Callback(callback) => {
                let mut callback = callback;
                rewrite(format, body, base, &mut callback)
            }
            Rewriter::Policy(policy) => policy.rewrite(format, body, base),
        }
        .expect("a manifest")
    }
}

/// `live_proxy` and `live_manifest` are what the router runs; `live_proxy_callback` is the
/// same policy through the callback alone (before the shortcut); the others are stand-ins.
const MODES: [(&str, Rewriter); 6] = [
    ("proxy", Rewriter::Callback(to_router)),
    ("live_proxy", Rewriter::Policy(LIVE_PROXY)),
    (
        "live_proxy_callback",
        Rewriter::Callback(live_proxy_callback),
    ),
    ("live_manifest", Rewriter::Policy(LIVE_MANIFEST)),
    ("manifest", Rewriter::Callback(to_edge)),
    ("keep", Rewriter::Callback(keep)),
];

fn bench_case(
    criterion: &mut Criterion,
    name: &str,
    format: ManifestFormat,
    body: &str,
    base: &BaseUrl,
) {
    let mut group = criterion.benchmark_group(format!("manifest/{name}"));
    group.throughput(Throughput::Bytes(body.len() as u64));
    for (mode, rewriter) in MODES {
        let output = rewriter.run(format, body, base);
        assert!(
            mode == "keep" || output != body,
            "{name}/{mode} rewrote nothing"
        );
        group.bench_function(mode, |b| {
            b.iter(|| rewriter.run(format, black_box(body), base))
        });
    }
    group.finish();
}

fn main() {
    let hls_base =
        BaseUrl::parse("http://edge-7.example.net:8080/btv/live/hls/ch1/index.m3u8?token=t")
            .expect("base");
    let dash_base =
        BaseUrl::parse("http://edge-7.example.net:8080/vod/films/f1/manifest.mpd").expect("base");
    let media = live_media_playlist(2_000);
    let multivariant = multivariant_playlist();
    let mpd = segment_list_mpd(600);
    println!(
        "bodies: media playlist {} bytes (2,000 entries), multivariant {} bytes, MPD {} bytes (1,803 URL attributes)",
        media.len(),
        multivariant.len(),
        mpd.len()
    );
    // For instruction counts (valgrind), which contention does not change: run only the
    // named case `MANIFEST_REWRITES` times, e.g. `MANIFEST_CASE=hls_media_2000/proxy`.
    if let (Ok(case), Ok(count)) = (
        std::env::var("MANIFEST_CASE"),
        std::env::var("MANIFEST_REWRITES"),
    ) {
        let count: usize = count.parse().expect("MANIFEST_REWRITES: a number");
        let (name, mode) = case.split_once('/').expect("MANIFEST_CASE: name/mode");
        let (format, body, base) = match name {
            "hls_media_2000" => (ManifestFormat::Hls, &media, &hls_base),
            "hls_multivariant" => (ManifestFormat::Hls, &multivariant, &hls_base),
            _ => (ManifestFormat::Dash, &mpd, &dash_base),
        };
        let (_, rewriter) = MODES
            .into_iter()
            .find(|(name, _)| *name == mode)
            .expect("a mode");
        for _ in 0..count {
            black_box(rewriter.run(format, black_box(body), base));
        }
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    bench_case(
        &mut criterion,
        "hls_media_2000",
        ManifestFormat::Hls,
        &media,
        &hls_base,
    );
    bench_case(
        &mut criterion,
        "hls_multivariant",
        ManifestFormat::Hls,
        &multivariant,
        &hls_base,
    );
    bench_case(
        &mut criterion,
        "dash_segment_list_1800",
        ManifestFormat::Dash,
        &mpd,
        &dash_base,
    );
    criterion.final_summary();
}
