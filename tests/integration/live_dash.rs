//! A live DASH presentation for the fake media edges, made from the static MPD that ffmpeg's
//! dash muxer wrote (`SegmentTemplate` with `$Number$`, `startNumber="1"`, a
//! `SegmentTimeline` per representation, segment files `chunk-{rep}-{number}.m4s`). The edge
//! serves it as a packager serves a live event: `type="dynamic"` with `availabilityStartTime`,
//! `publishTime`, `minimumUpdatePeriod` and `timeShiftBufferDepth`, a `Location` (where to
//! fetch the MPD again), a timeline that shows `window` segments when the first MPD request
//! arrives (the event's clock starts then) and one more each second until all are shown, and
//! each segment file available (else `404`) from when the timeline shows it. One presentation
//! may be served by several edges: they share its clock, as copies of one live stream do.

use crate::media_edge::{Dynamic, Gate};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One segment of a timeline: start and duration in the representation's timescale.
#[derive(Debug, Clone, Copy)]
struct Segment {
    t: u64,
    d: u64,
}

struct Inner {
    /// The static MPD split around its timelines: `texts[i]` comes before timeline `i`
    /// (the last one after the last timeline); in `texts[0]`, the root's
    /// `mediaPresentationDuration` taken out (its `type` is replaced at each request) and the
    /// `Location` put in.
    texts: Vec<String>,
    timelines: Vec<Vec<Segment>>,
    window: usize,
    /// When the first MPD request arrived.
    started: OnceLock<(Instant, SystemTime)>,
    /// How many segments each MPD served showed, oldest first.
    shown_log: Mutex<Vec<usize>>,
    /// Segment files asked for before they were available, oldest first.
    refused: Mutex<Vec<String>>,
}

/// A live presentation; clones share it.
#[derive(Clone)]
pub struct LiveDash(Arc<Inner>);

impl LiveDash {
    /// The presentation of the static MPD `mpd` (as ffmpeg's dash muxer writes it with
    /// `-use_template 1 -use_timeline 1`), showing `window` segments at its start, with a
    /// `Location` of `location`.
    pub fn from_static(mpd: &str, window: usize, location: &str) -> LiveDash {
        let mut texts = Vec::new();
        let mut timelines = Vec::new();
        let mut rest = mpd;
        while let Some(open) = rest.find("<SegmentTimeline>") {
            let body_start = open + "<SegmentTimeline>".len();
            let close = body_start
                + rest[body_start..]
                    .find("</SegmentTimeline>")
                    .expect("a closed SegmentTimeline");
            texts.push(rest[..body_start].to_string());
            timelines.push(parse_timeline(&rest[body_start..close]));
            rest = &rest[close..];
        }
        texts.push(rest.to_string());
        assert!(!timelines.is_empty(), "no SegmentTimeline in\n{mpd}");
        let root = &mut texts[0];
        assert!(root.contains("type=\"static\""), "not a static MPD:\n{mpd}");
        if let Some(at) = root.find("mediaPresentationDuration=\"") {
            let value = at + "mediaPresentationDuration=\"".len();
            let end = value + root[value..].find('"').expect("a quoted duration") + 1;
            let end = end + root[end..].len() - root[end..].trim_start().len();
            root.replace_range(at..end, "");
        }
        // Where the schema puts it: after `ProgramInformation` and `BaseURL`, before
        // `ServiceDescription` and `Period`.
        let before = ["<ServiceDescription", "<Period"]
            .iter()
            .find_map(|name| root.find(name))
            .expect("a Period");
        root.insert_str(before, &format!("<Location>{location}</Location>\n\t"));
        LiveDash(Arc::new(Inner {
            texts,
            timelines,
            window,
            started: OnceLock::new(),
            shown_log: Mutex::new(Vec::new()),
            refused: Mutex::new(Vec::new()),
        }))
    }

    /// Segments in the whole event (of its shortest representation).
    pub fn segments(&self) -> usize {
        self.0.timelines.iter().map(Vec::len).min().unwrap_or(0)
    }

    /// How many segments each MPD served so far showed, oldest first.
    pub fn shown_log(&self) -> Vec<usize> {
        lock(&self.0.shown_log).clone()
    }

    /// The segment files asked for before they were available (answered `404`), oldest first.
    pub fn refused(&self) -> Vec<String> {
        lock(&self.0.refused).clone()
    }

    /// The MPD, made at each request.
    pub fn mpd_source(&self) -> Dynamic {
        let dash = self.clone();
        Arc::new(move || dash.mpd().into_bytes())
    }

    /// Whether a file of the presentation's directory may be served now: init segments
    /// always, media segments once shown (none before the first MPD request).
    pub fn gate(&self) -> Gate {
        let dash = self.clone();
        Arc::new(move |name: &str| {
            let Some(number) = segment_number(name) else {
                return true;
            };
            let started = dash.0.started.get();
            let available = started.is_some_and(|(start, _)| number <= dash.shown(start.elapsed()));
            if !available {
                lock(&dash.0.refused).push(name.to_string());
            }
            available
        })
    }

    fn shown(&self, elapsed: Duration) -> usize {
        (self.0.window + elapsed.as_secs() as usize).min(self.segments())
    }

    fn mpd(&self) -> String {
        let inner = &self.0;
        let (start, wall_start) = *inner
            .started
            .get_or_init(|| (Instant::now(), SystemTime::now()));
        let shown = self.shown(start.elapsed());
        lock(&inner.shown_log).push(shown);
        // Segment n (from 1) ends at presentation time n s, when it becomes available (ISO/IEC
        // 23009-1 §5.3.9.5: availabilityStartTime + Period@start + its end); the timeline shows
        // it `n - window` s after the clock started: the event started `window` s before.
        let window = Duration::from_secs(inner.window as u64);
        let event_start = wall_start - window;
        // This version of the MPD appeared when its last segment was added.
        let published = wall_start + Duration::from_secs(shown.saturating_sub(inner.window) as u64);
        let live = format!(
            "type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\" \
             minimumUpdatePeriod=\"PT1S\" timeShiftBufferDepth=\"PT30S\"",
            utc(event_start),
            utc(published)
        );
        let mut out = inner.texts[0].replacen("type=\"static\"", &live, 1);
        for (timeline, text) in inner.timelines.iter().zip(&inner.texts[1..]) {
            for segment in &timeline[..shown.min(timeline.len())] {
                out.push_str(&format!("<S t=\"{}\" d=\"{}\" />", segment.t, segment.d));
            }
            out.push_str(text);
        }
        out
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `S` elements of a timeline, one entry per segment (`r` expanded, `t` carried on).
fn parse_timeline(body: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut next = 0u64;
    for element in body.split("<S ").skip(1) {
        let element = &element[..element.find("/>").expect("a closed S element")];
        let (mut t, mut d, mut r) = (None, None, 0);
        for pair in element.split_whitespace() {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let value: u64 = value.trim_matches('"').parse().expect("a whole number");
            match name {
                "t" => t = Some(value),
                "d" => d = Some(value),
                "r" => r = value,
                _ => {}
            }
        }
        let d = d.expect("S@d");
        next = t.unwrap_or(next);
        for _ in 0..=r {
            segments.push(Segment { t: next, d });
            next += d;
        }
    }
    segments
}

/// The `$Number$` of a media segment file `chunk-{rep}-{number}.m4s`.
fn segment_number(name: &str) -> Option<usize> {
    let stem = name.strip_prefix("chunk-")?.strip_suffix(".m4s")?;
    stem.rsplit_once('-')?.1.parse().ok()
}

/// `YYYY-MM-DDThh:mm:ss.mmmZ` (UTC), an `xs:dateTime` as MPDs write them.
fn utc(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (the proleptic Gregorian calendar).
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        since_epoch.subsec_millis()
    )
}

#[test]
fn the_timeline_grows_from_the_window_and_segments_wait_for_it() {
    let mpd = concat!(
        "<MPD type=\"static\"\n\tmediaPresentationDuration=\"PT3.0S\"\n",
        "\tminBufferTime=\"PT2.0S\">\n",
        "<Period>",
        "<SegmentTemplate media=\"chunk-$RepresentationID$-$Number%05d$.m4s\" startNumber=\"1\">",
        "<SegmentTimeline>\n<S t=\"0\" d=\"10\" r=\"1\" />\n<S d=\"12\" />\n</SegmentTimeline>",
        "</SegmentTemplate>\n",
        "<SegmentTemplate><SegmentTimeline><S t=\"5\" d=\"9\" r=\"2\"/></SegmentTimeline>",
        "</SegmentTemplate>\n",
        "</Period>",
        "</MPD>\n",
    );
    let dash = LiveDash::from_static(mpd, 2, "/x/manifest.mpd");
    assert_eq!(dash.segments(), 3);
    let gate = dash.gate();
    assert!(gate("init-0.m4s"));
    assert!(
        !gate("chunk-0-00001.m4s"),
        "available before the event started"
    );
    let text = String::from_utf8((dash.mpd_source())()).expect("utf-8");
    assert!(
        text.starts_with("<MPD type=\"dynamic\" availabilityStartTime=\"20"),
        "{text}"
    );
    assert!(!text.contains("mediaPresentationDuration"), "{text}");
    assert!(
        text.contains(
            "minBufferTime=\"PT2.0S\">\n<Location>/x/manifest.mpd</Location>\n\t<Period>"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "<SegmentTimeline><S t=\"0\" d=\"10\" /><S t=\"10\" d=\"10\" /></SegmentTimeline>"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "<SegmentTimeline><S t=\"5\" d=\"9\" /><S t=\"14\" d=\"9\" /></SegmentTimeline>"
        ),
        "{text}"
    );
    assert!(gate("chunk-0-00002.m4s"));
    assert!(!gate("chunk-1-00003.m4s"));
    assert_eq!(dash.shown_log(), vec![2]);
    assert_eq!(
        dash.refused(),
        vec!["chunk-0-00001.m4s", "chunk-1-00003.m4s"]
    );
    assert_eq!(dash.shown(Duration::from_secs(5)), 3);
    assert_eq!(
        utc(UNIX_EPOCH + Duration::from_secs(951_782_400)),
        "2000-02-29T00:00:00.000Z"
    );
    assert_eq!(
        utc(UNIX_EPOCH + Duration::from_millis(1_796_310_061_042)),
        "2026-12-03T15:01:01.042Z"
    );
}
