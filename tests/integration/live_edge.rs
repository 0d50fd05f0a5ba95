//! A fake edge serving live HLS media playlists (and DASH MPDs for paths ending `.mpd`) that
//! advance with time (one segment per `segment`), for the stream-health suite: each channel path can be frozen (its playlist stops
//! advancing) or removed (404) while the router runs, probes (User-Agent
//! `cti-kaltura-stream-probe/...`) can be refused with 503, players' playlists can be sent
//! gzip-compressed, and every playlist request is
//! counted with its time. `DIR/master.m3u8` is a multivariant playlist naming `media.m3u8`
//! when `DIR/media.m3u8` is served. `/healthcheck` answers `200 OK`. One thread per connection,
//! `Connection: close`; dropping the fake stops it.

use crate::fake_edge::HEALTH_PATH;
use crate::http::read_request_head;
use std::collections::HashMap;
use std::io::Write;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const PROBE_AGENT: &str = "cti-kaltura-stream-probe/";

/// How one channel's copy behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copy {
    Advancing,
    /// Stuck at this media sequence.
    Frozen(u64),
    /// 404.
    Missing,
}

/// One playlist request as received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub at: Instant,
    pub probe: bool,
}

struct Shared {
    copies: HashMap<String, Copy>,
    refuse_probes: bool,
    /// Players' playlists go out gzip-compressed (whatever they accept).
    gzip_players: bool,
    hits: Vec<Hit>,
}

pub struct LiveEdge {
    pub addr: SocketAddr,
    started: Instant,
    segment: Duration,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl LiveEdge {
    /// A live edge on `127.0.0.{host}` serving `paths` (all advancing), one segment per
    /// `segment` (also the target duration, rounded up to whole seconds).
    pub fn start(host: u8, paths: &[&str], segment: Duration) -> LiveEdge {
        let ip = Ipv4Addr::new(127, 0, 0, host);
        let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Mutex::new(Shared {
            copies: paths
                .iter()
                .map(|p| (p.to_string(), Copy::Advancing))
                .collect(),
            refuse_probes: false,
            gzip_players: false,
            hits: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let acceptor = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("live-edge-{host}"))
                .spawn(move || accept_loop(&listener, &shared, &stop, started, segment))
                .expect("spawn live edge")
        };
        LiveEdge {
            addr,
            started,
            segment,
            shared,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The media sequence an advancing copy shows now.
    pub fn sequence_now(&self) -> u64 {
        sequence_at(self.started, self.segment)
    }

    /// Freezes `path` at its current sequence.
    pub fn freeze(&self, path: &str) {
        let at = self.sequence_now();
        lock(&self.shared)
            .copies
            .insert(path.to_string(), Copy::Frozen(at));
    }

    pub fn set_copy(&self, path: &str, copy: Copy) {
        lock(&self.shared).copies.insert(path.to_string(), copy);
    }

    /// Answer probes with 503 (only players' playlists are then readable).
    pub fn refuse_probes(&self, refuse: bool) {
        lock(&self.shared).refuse_probes = refuse;
    }

    /// Send players' playlists gzip-compressed (`Content-Encoding: gzip`) even to a request
    /// for `identity`, as some edges do; probes still get them plain.
    pub fn gzip_players(&self, gzip: bool) {
        lock(&self.shared).gzip_players = gzip;
    }

    /// Every playlist request so far.
    pub fn hits(&self) -> Vec<Hit> {
        lock(&self.shared).hits.clone()
    }

    /// Probes of `path` so far.
    pub fn probes_of(&self, path: &str) -> usize {
        lock(&self.shared)
            .hits
            .iter()
            .filter(|h| h.probe && h.path == path)
            .count()
    }
}

impl Drop for LiveEdge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn sequence_at(started: Instant, segment: Duration) -> u64 {
    // Starts at 1000 so that a frozen copy and a fresh one never look alike.
    1000 + (started.elapsed().as_millis() / segment.as_millis().max(1)) as u64
}

/// A live DASH MPD (`SegmentTimeline`, timescale 1000) whose newest segment is number `last`.
pub fn dash_mpd(last: u64, segment: Duration) -> String {
    let d = segment.as_millis() as u64;
    let first = last.saturating_sub(2);
    format!(
        r#"<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" availabilityStartTime="2026-01-01T00:00:00Z"
     minimumUpdatePeriod="PT1S">
  <Period id="0" start="PT0S"><AdaptationSet mimeType="video/mp4">
    <SegmentTemplate timescale="1000" media="v_$Time$.m4s" initialization="v_init.mp4">
      <SegmentTimeline><S t="{}" d="{d}" r="2"/></SegmentTimeline>
    </SegmentTemplate>
    <Representation id="v" bandwidth="800000"/>
  </AdaptationSet></Period>
</MPD>
"#,
        first * d
    )
}

/// An HLS media playlist whose last segment is `last`: three segments.
pub fn media_playlist(last: u64, segment: Duration) -> String {
    let target = segment.as_secs_f64().ceil().max(1.0) as u64;
    let first = last.saturating_sub(2);
    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
    );
    for n in first..=last {
        out.push_str(&format!(
            "#EXTINF:{:.3},\nseg{n}.ts\n",
            segment.as_secs_f64()
        ));
    }
    out
}

fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Mutex<Shared>>,
    stop: &AtomicBool,
    started: Instant,
    segment: Duration,
) {
    let mut handlers: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = shared.clone();
                handlers.retain(|h| !h.is_finished());
                handlers.push(std::thread::spawn(move || {
                    serve(stream, &shared, started, segment)
                }));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    for handler in handlers {
        let _ = handler.join();
    }
}

fn serve(mut stream: TcpStream, shared: &Mutex<Shared>, started: Instant, segment: Duration) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let Some(request) = read_request_head(&mut stream) else {
        return;
    };
    let path = request
        .target
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut gzip = false;
    let (status, content_type, body) = if path == HEALTH_PATH {
        ("200 OK", "text/plain", "OK".to_string())
    } else {
        let probe = request
            .header_values("user-agent")
            .iter()
            .any(|ua| ua.starts_with(PROBE_AGENT));
        let mut shared = lock(shared);
        gzip = !probe && shared.gzip_players;
        shared.hits.push(Hit {
            path: path.clone(),
            at: Instant::now(),
            probe,
        });
        // `DIR/master.m3u8` is a multivariant playlist whose only variant is `DIR/media.m3u8`.
        if let Some(dir) = path.strip_suffix("/master.m3u8") {
            if shared.copies.contains_key(&format!("{dir}/media.m3u8")) {
                let body = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nmedia.m3u8\n";
                return answer(&mut stream, "200 OK", "application/vnd.apple.mpegurl", body);
            }
        }
        let last = match shared.copies.get(&path) {
            _ if probe && shared.refuse_probes => None,
            None | Some(Copy::Missing) => None,
            Some(Copy::Frozen(at)) => Some(*at),
            Some(Copy::Advancing) => Some(sequence_at(started, segment)),
        };
        match last {
            None if probe && shared.refuse_probes => {
                ("503 Service Unavailable", "text/plain", String::new())
            }
            None => ("404 Not Found", "text/plain", String::new()),
            Some(last) if path.ends_with(".mpd") => {
                ("200 OK", "application/dash+xml", dash_mpd(last, segment))
            }
            Some(last) => (
                "200 OK",
                "application/vnd.apple.mpegurl",
                media_playlist(last, segment),
            ),
        }
    };
    if gzip && status == "200 OK" {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = encoder.write_all(body.as_bytes());
        let compressed = encoder.finish().unwrap_or_default();
        return answer_bytes(&mut stream, status, content_type, Some("gzip"), &compressed);
    }
    answer(&mut stream, status, content_type, &body);
}

fn answer(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) {
    answer_bytes(stream, status, content_type, None, body.as_bytes());
}

fn answer_bytes(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: &[u8],
) {
    let edge = stream
        .local_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let encoding = encoding
        .map(|e| format!("Content-Encoding: {e}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{encoding}Content-Length: {}\r\nX-Edge: {edge}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body));
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
}
