//! Benchmarks of stream health's request-path costs and of playlist reading: the live routing
//! decision with no stalled pair (the overlay is not read), with a stalled pair of another
//! stream, and with the requested stream stalled on one edge of ten; the overlay check alone;
//! recording the hot set; reading an HLS playlist (3 and 3,600 segments) and a DASH MPD.
//! `cargo bench --bench stream_health`; results in `docs/performance.md` ("Stream health").

use criterion::Criterion;
use cti_kaltura::routing::{decide, decide_with_streams, Outcome, RequestFacts, RoutingPolicy};
use cti_kaltura::snapshot::{load_snapshot, Snapshot};
use cti_kaltura::stream_health::{playlist, StalledOverlay, StalledPairs, StreamHealth};
use serde_json::json;
use std::hint::black_box;

/// One region (10.0.0.0/8) of 10 edges; 100 live HLS channels `ch0`… (stream ids 1000…).
fn snapshot() -> Snapshot {
    let servers: Vec<_> = (1..=10)
        .map(|id| {
            json!({"id": id, "type": "EDGE", "domain_name": format!("e{id}.example"), "port": 80,
                   "status": "ACTIVE", "weight": 10})
        })
        .collect();
    let doc = json!({
        "regions": [{"id": 1, "status": "ACTIVE", "server_group_ids": [1]}],
        "subnets": [{"id": 1, "cidr": "10.0.0.0/8", "region_id": 1}],
        "server_groups": [{"id": 1, "status": "ACTIVE", "server_ids": (1..=10).collect::<Vec<_>>()}],
        "servers": servers,
        "linear_channels": (0..100).map(|n| json!({"id": n + 1, "epg_id": format!("ch{n}")})).collect::<Vec<_>>(),
        "tv_streams": (0..100).map(|n| json!({"id": 1000 + n, "linear_channel_id": n + 1,
            "stream_path": format!("/live/ch{n}/index.m3u8"), "status": "ACTIVE",
            "protocol": "HLS", "encryption": "NONE"})).collect::<Vec<_>>(),
    });
    load_snapshot(doc.to_string().as_bytes(), "bench").expect("bench snapshot loads")
}

fn hls(segments: u64) -> String {
    let mut out = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:500000\n",
    );
    for n in 0..segments {
        out.push_str(&format!(
            "#EXT-X-PROGRAM-DATE-TIME:2026-12-03T10:00:00Z\n#EXTINF:2.000,\nsegment_{}.ts\n",
            500_000 + n
        ));
    }
    out
}

const MPD: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" profiles="urn:mpeg:dash:profile:isoff-live:2011"
     availabilityStartTime="2026-01-01T00:00:00Z" publishTime="2026-12-03T10:00:00Z"
     minimumUpdatePeriod="PT2S" timeShiftBufferDepth="PT30S" maxSegmentDuration="PT2S">
  <Period id="0" start="PT0S">
    <AdaptationSet mimeType="video/mp4" segmentAlignment="true">
      <SegmentTemplate timescale="90000" media="v_$RepresentationID$_$Time$.m4s" initialization="v_$RepresentationID$_init.mp4">
        <SegmentTimeline><S t="900000000" d="180000" r="14"/></SegmentTimeline>
      </SegmentTemplate>
      <Representation id="720p" bandwidth="3000000" width="1280" height="720" codecs="avc1.64001f"/>
      <Representation id="360p" bandwidth="800000" width="640" height="360" codecs="avc1.64001e"/>
    </AdaptationSet>
    <AdaptationSet mimeType="audio/mp4" lang="en">
      <SegmentTemplate timescale="48000" media="a_$Time$.m4s" initialization="a_init.mp4">
        <SegmentTimeline><S t="480000000" d="96000" r="14"/></SegmentTimeline>
      </SegmentTemplate>
      <Representation id="audio" bandwidth="128000" codecs="mp4a.40.2"/>
    </AdaptationSet>
  </Period>
</MPD>"#;

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let snapshot = snapshot();
    let policy = RoutingPolicy::default();
    let facts = |random: u64| RequestFacts {
        method: &http::Method::GET,
        path: "/btv/live/hls/ch7",
        query: None,
        peer: "10.1.2.3".parse().expect("an address"),
        x_real_ip: None,
        random,
        secure: false,
    };
    let other_stalled = StalledPairs::from_pairs([(3, 1042), (5, 1043)]);
    let this_stalled = StalledPairs::from_pairs([(3, 1007)]);
    let check = |d: cti_kaltura::routing::Decision| {
        assert!(matches!(d.outcome, Outcome::Redirect { .. }), "{d:?}");
    };
    check(decide(Some(&snapshot), &policy, &facts(1)));
    check(decide_with_streams(
        Some(&snapshot),
        Some(&this_stalled),
        &policy,
        &facts(1),
    ));

    let mut g = c.benchmark_group("stream_health_routing");
    let mut random = 0u64;
    let mut next = move || {
        random = random.wrapping_add(0x9e37_79b9_7f4a_7c15);
        random
    };
    g.bench_function("decide_live_plain", |b| {
        b.iter(|| decide(Some(&snapshot), &policy, black_box(&facts(next()))))
    });
    let empty = StalledOverlay::default();
    let others = StalledOverlay::default();
    others.publish(other_stalled.clone());
    let this = StalledOverlay::default();
    this.publish(this_stalled.clone());
    for (name, overlay) in [
        ("decide_live_no_stalled_pair", &empty),
        ("decide_live_other_stream_stalled", &others),
        ("decide_live_this_stream_stalled_1_of_10", &this),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                // What the pipeline does: the overlay's view, then the decision.
                let view = black_box(overlay).view();
                decide_with_streams(
                    Some(&snapshot),
                    view.as_deref().map(|s| &**s),
                    &policy,
                    black_box(&facts(next())),
                )
            })
        });
    }
    g.bench_function("overlay_view_empty", |b| {
        b.iter(|| black_box(&empty).view().is_some())
    });
    let health = StreamHealth::default();
    health.hot().set_clock(1);
    g.bench_function("hot_set_record_repeat", |b| {
        b.iter(|| health.record_request(black_box(1007), black_box(1)))
    });
    g.finish();

    let mut g = c.benchmark_group("stream_health_playlist");
    let small = hls(3);
    let dvr = hls(3600);
    g.bench_function("hls_3_segments", |b| {
        b.iter(|| playlist::read(black_box(small.as_bytes())))
    });
    g.bench_function("hls_3600_segments", |b| {
        b.iter(|| playlist::read(black_box(dvr.as_bytes())))
    });
    g.bench_function("dash_mpd_timeline", |b| {
        b.iter(|| playlist::read(black_box(MPD.as_bytes())))
    });
    g.finish();
    c.final_summary();
}
