//! Just enough of a live HLS media playlist or DASH MPD to tell whether a copy advances: a
//! position (a sequence number and a fingerprint that changes when the copy moves on) and how
//! often it should move (the HLS target duration; the DASH segment duration).

use std::hash::{Hash, Hasher};

/// Where a live copy stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// HLS: the media sequence number of the last segment. DASH: the start of the newest
    /// segment in its timescale's units (0 without a `SegmentTimeline`).
    pub sequence: u64,
    /// Changes whenever the copy advances (sequence, last segment URI, `publishTime`).
    pub fingerprint: u64,
    /// How long the copy may take to advance once: the target duration, in milliseconds.
    pub target_duration_ms: u64,
}

/// What a fetched document says about liveness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// A live media playlist or dynamic MPD at this position.
    Live(Position),
    /// An HLS multivariant playlist; the URI of its first variant (as written, unresolved).
    Multivariant { first_variant: String },
    /// Says nothing about liveness (static MPD, no target duration, not a playlist); the
    /// reason is a bounded label.
    Unusable(&'static str),
}

/// Reads an HLS playlist (`#EXTM3U` first) or a DASH MPD (`<MPD`), whichever `body` is.
pub fn read(body: &[u8]) -> Reading {
    let Ok(text) = std::str::from_utf8(body) else {
        return Reading::Unusable("not_utf8");
    };
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if text.starts_with("#EXTM3U") {
        read_hls(text)
    } else if text.contains("<MPD") {
        read_dash(text)
    } else {
        Reading::Unusable("not_a_playlist")
    }
}

fn fingerprint(parts: impl Hash) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    parts.hash(&mut hasher);
    hasher.finish()
}

/// An HLS playlist: a media playlist's position, or a multivariant playlist's first variant.
pub fn read_hls(text: &str) -> Reading {
    let mut media_sequence: u64 = 0;
    let mut target_duration_secs: Option<f64> = None;
    let mut segments: u64 = 0;
    let mut last_segment: Option<&str> = None;
    let mut variant_next = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        if let Some(tag) = line.strip_prefix('#') {
            if let Some(value) = tag.strip_prefix("EXT-X-MEDIA-SEQUENCE:") {
                media_sequence = value.trim().parse().unwrap_or(0);
            } else if let Some(value) = tag.strip_prefix("EXT-X-TARGETDURATION:") {
                target_duration_secs = value.trim().parse().ok();
            } else if tag.starts_with("EXT-X-STREAM-INF") {
                variant_next = true;
            }
            continue;
        }
        if variant_next {
            return Reading::Multivariant {
                first_variant: line.to_string(),
            };
        }
        segments += 1;
        last_segment = Some(line);
    }
    let Some(target) = target_duration_secs.filter(|t| *t > 0.0 && t.is_finite()) else {
        return Reading::Unusable("no_target_duration");
    };
    let Some(last) = last_segment else {
        return Reading::Unusable("no_segments");
    };
    let sequence = media_sequence.saturating_add(segments - 1);
    Reading::Live(Position {
        sequence,
        fingerprint: fingerprint((sequence, last)),
        target_duration_ms: (target * 1000.0) as u64,
    })
}

/// A DASH MPD: live (`type="dynamic"`) only; its position is the newest segment of the first
/// `SegmentTimeline` and `publishTime`.
pub fn read_dash(text: &str) -> Reading {
    let Some(root) = element(text, "MPD") else {
        return Reading::Unusable("no_mpd_element");
    };
    if attribute(root, "type") != Some("dynamic") {
        return Reading::Unusable("static_mpd");
    }
    let publish_time = attribute(root, "publishTime");
    let timeline = newest_segment(text);
    if publish_time.is_none() && timeline.is_none() {
        return Reading::Unusable("no_timeline_or_publish_time");
    }
    let segment_ms = timeline.map(|t| t.duration_ms).filter(|&ms| ms > 0);
    let target_duration_ms = attribute(root, "maxSegmentDuration")
        .and_then(iso_duration_ms)
        .or(segment_ms)
        .or_else(|| attribute(root, "minimumUpdatePeriod").and_then(iso_duration_ms))
        .filter(|&ms| ms > 0);
    let Some(target_duration_ms) = target_duration_ms else {
        return Reading::Unusable("no_target_duration");
    };
    let sequence = timeline.map_or(0, |t| t.start);
    Reading::Live(Position {
        sequence,
        fingerprint: fingerprint((sequence, publish_time)),
        target_duration_ms,
    })
}

#[derive(Debug, Clone, Copy)]
struct Newest {
    /// Start of the newest segment, in timescale units.
    start: u64,
    duration_ms: u64,
}

/// The newest segment of the first `SegmentTimeline` (each `S` has `t`, `d`, `r`; a missing
/// `t` continues from the previous segment's end, `r` repeats, a negative `r` counts once).
fn newest_segment(text: &str) -> Option<Newest> {
    let open = text.find("<SegmentTimeline")?;
    let close = text[open..].find("</SegmentTimeline").map(|i| open + i)?;
    let timescale = text[..open]
        .rfind("<SegmentTemplate")
        .and_then(|at| element(&text[at..], "SegmentTemplate"))
        .and_then(|tag| attribute(tag, "timescale"))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&t| t > 0)
        .unwrap_or(1);
    let mut next_start: u64 = 0;
    let mut newest: Option<Newest> = None;
    let mut rest = &text[open..close];
    while let Some(at) = rest.find("<S") {
        rest = &rest[at..];
        let Some(tag) = element(rest, "S") else {
            rest = &rest[2..];
            continue;
        };
        rest = &rest[tag.len()..];
        let number = |name| attribute(tag, name).and_then(|v| v.parse::<i64>().ok());
        let duration = number("d").filter(|&d| d > 0)? as u64;
        let repeat = number("r").filter(|&r| r > 0).unwrap_or(0) as u64;
        let start = number("t").map_or(next_start, |t| t.max(0) as u64);
        let last_start = start.saturating_add(duration.saturating_mul(repeat));
        next_start = last_start.saturating_add(duration);
        newest = Some(Newest {
            start: last_start,
            duration_ms: duration.saturating_mul(1000) / timescale,
        });
    }
    newest
}

/// The start tag of the first `<name ...>` (or `<name>`) element in `text`, without `<`.
fn element<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(at) = text[from..].find('<').map(|i| from + i) {
        let after = &text[at + 1..];
        if after.starts_with(name)
            && after[name.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_whitespace() || c == '>' || c == '/')
        {
            let end = after.find('>')?;
            return Some(&after[..end]);
        }
        from = at + 1;
    }
    None
}

/// The value of attribute `name` in a start tag (either quote style).
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(at) = tag[from..].find(name).map(|i| from + i) {
        from = at + name.len();
        let preceded = tag[..at]
            .chars()
            .next_back()
            .is_some_and(char::is_whitespace);
        let rest = tag[from..].trim_start();
        let Some(value) = rest.strip_prefix('=').map(str::trim_start) else {
            continue;
        };
        if !preceded {
            continue;
        }
        let quote = value.chars().next()?;
        if quote != '"' && quote != '\'' {
            continue;
        }
        let value = &value[1..];
        return value.find(quote).map(|end| &value[..end]);
    }
    None
}

/// An ISO 8601 duration (`PT2S`, `PT1.5S`, `PT1M`, `P0DT0H0M2.000S`) in milliseconds.
pub fn iso_duration_ms(text: &str) -> Option<u64> {
    let text = text.trim().strip_prefix('P')?;
    let (days, time) = match text.split_once('T') {
        Some((days, time)) => (days, time),
        None => (text, ""),
    };
    let mut total = 0.0f64;
    let mut number = String::new();
    for (part, units) in [(days, "YMWD"), (time, "HMS")] {
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let value: f64 = number.parse().ok()?;
            number.clear();
            let secs = match (units, c) {
                ("YMWD", 'D') => 86_400.0,
                ("YMWD", 'W') => 604_800.0,
                ("HMS", 'H') => 3_600.0,
                ("HMS", 'M') => 60.0,
                ("HMS", 'S') => 1.0,
                // Years and months have no fixed length; a live period never uses them.
                _ => return None,
            };
            total += value * secs;
        }
        if !number.is_empty() {
            return None;
        }
    }
    Some((total * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hls(sequence: u64, segments: &[&str]) -> String {
        let mut out = format!(
            "#EXTM3U\r\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{sequence}\n"
        );
        for s in segments {
            out.push_str(&format!("#EXTINF:2.000,\n{s}\n"));
        }
        out
    }

    fn live(reading: Reading) -> Position {
        match reading {
            Reading::Live(p) => p,
            other => panic!("not live: {other:?}"),
        }
    }

    #[test]
    fn hls_media_playlist_position() {
        let p = live(read(
            hls(100, &["a100.ts", "a101.ts", "a102.ts"]).as_bytes(),
        ));
        assert_eq!(p.sequence, 102);
        assert_eq!(p.target_duration_ms, 2000);
        let same = live(read(
            hls(100, &["a100.ts", "a101.ts", "a102.ts"]).as_bytes(),
        ));
        assert_eq!(p, same, "the same playlist twice is the same position");
        let next = live(read(
            hls(101, &["a101.ts", "a102.ts", "a103.ts"]).as_bytes(),
        ));
        assert_eq!(next.sequence, 103);
        assert_ne!(next.fingerprint, p.fingerprint);
        // A packager that rewrites the last segment under the same sequence still advances.
        let renamed = live(read(
            hls(100, &["a100.ts", "a101.ts", "b102.ts"]).as_bytes(),
        ));
        assert_ne!(renamed.fingerprint, p.fingerprint);
    }

    #[test]
    fn hls_without_target_duration_or_segments_says_nothing() {
        assert_eq!(
            read(b"#EXTM3U\n#EXTINF:2,\na.ts\n"),
            Reading::Unusable("no_target_duration")
        );
        assert_eq!(
            read(b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n"),
            Reading::Unusable("no_segments")
        );
        assert_eq!(read(b"<html>"), Reading::Unusable("not_a_playlist"));
        assert_eq!(read(&[0xff, 0xfe]), Reading::Unusable("not_utf8"));
    }

    #[test]
    fn hls_multivariant_names_its_first_variant() {
        let text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nlow/index.m3u8\n\
                    #EXT-X-STREAM-INF:BANDWIDTH=1600000\nhigh/index.m3u8\n";
        assert_eq!(
            read(text.as_bytes()),
            Reading::Multivariant {
                first_variant: "low/index.m3u8".into()
            }
        );
    }

    fn mpd(publish: &str, timeline: &str) -> String {
        format!(
            r#"<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" availabilityStartTime="2026-01-01T00:00:00Z"
     publishTime="{publish}" minimumUpdatePeriod="PT2S">
  <Period id="0" start="PT0S"><AdaptationSet mimeType="video/mp4">
    <SegmentTemplate timescale="90000" media="v_$Time$.m4s" initialization="v_init.mp4">
      <SegmentTimeline>{timeline}</SegmentTimeline>
    </SegmentTemplate>
  </AdaptationSet></Period>
</MPD>"#
        )
    }

    #[test]
    fn dash_timeline_position() {
        let a = live(read(
            mpd(
                "2026-01-01T00:00:10Z",
                r#"<S t="900000" d="180000" r="2"/>"#,
            )
            .as_bytes(),
        ));
        assert_eq!(a.sequence, 900_000 + 2 * 180_000);
        assert_eq!(a.target_duration_ms, 2000, "the segment duration");
        let b = live(read(
            mpd(
                "2026-01-01T00:00:10Z",
                r#"<S t="900000" d="180000" r="2"/><S d="180000"/>"#,
            )
            .as_bytes(),
        ));
        assert_eq!(b.sequence, 900_000 + 3 * 180_000);
        assert_ne!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn dash_publish_time_alone_and_static() {
        let text = r#"<MPD type="dynamic" publishTime="2026-01-01T00:00:10Z" maxSegmentDuration="PT4S"></MPD>"#;
        let a = live(read(text.as_bytes()));
        assert_eq!(a.target_duration_ms, 4000);
        let later = text.replace("00:00:10Z", "00:00:14Z");
        assert_ne!(live(read(later.as_bytes())).fingerprint, a.fingerprint);
        assert_eq!(
            read(br#"<MPD type="static" mediaPresentationDuration="PT60S"></MPD>"#),
            Reading::Unusable("static_mpd")
        );
        assert_eq!(
            read(br#"<MPD type="dynamic" minimumUpdatePeriod="PT2S"></MPD>"#),
            Reading::Unusable("no_timeline_or_publish_time")
        );
    }

    #[test]
    fn attributes_need_a_word_boundary() {
        let tag = r#"MPD xtype="x" type='dynamic'"#;
        assert_eq!(attribute(tag, "type"), Some("dynamic"));
        assert_eq!(attribute("S d=\"5\"", "t"), None);
    }

    #[test]
    fn iso_durations() {
        assert_eq!(iso_duration_ms("PT2S"), Some(2000));
        assert_eq!(iso_duration_ms("PT1.5S"), Some(1500));
        assert_eq!(iso_duration_ms("PT1M"), Some(60_000));
        assert_eq!(iso_duration_ms("P0DT0H0M2.000S"), Some(2000));
        assert_eq!(iso_duration_ms("P1D"), Some(86_400_000));
        assert_eq!(iso_duration_ms("2S"), None);
        assert_eq!(iso_duration_ms("PT2"), None);
        assert_eq!(iso_duration_ms("P1Y"), None);
    }
}
