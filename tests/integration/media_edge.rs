//! An in-process fake streaming edge for the manifest and real-player suites: a small
//! HTTP/1.1 server on `127.0.0.N` serving files put into it, made at each request (a live
//! playlist or MPD), or read from a directory (such as media ffmpeg generated; a gate can hold
//! live segments back until they are available), with `Range` (one range), `HEAD`, optional
//! gzip, a health endpoint, and a log of every request. [`MediaEdge::kill`] makes it vanish
//! mid-session (listener gone, open connections cut, later connections refused).

use crate::http::{read_request_head, RequestHead};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

const ACCEPT_POLL: Duration = Duration::from_millis(5);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// One file the edge serves.
#[derive(Debug, Clone)]
pub struct File {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// Sent gzip-compressed with `Content-Encoding: gzip`, whatever the request asked.
    pub gzip: bool,
}

/// A body made at each request (a live playlist that grows).
pub type Dynamic = Arc<dyn Fn() -> Vec<u8> + Send + Sync>;

/// Whether a file of a served directory (its path below the prefix) may be served now (a live
/// segment not yet available is a `404`).
pub type Gate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

#[derive(Default)]
struct Shared {
    files: HashMap<String, File>,
    dynamic: HashMap<String, Dynamic>,
    /// `(url prefix, directory, gate)`: paths under the prefix are read from the directory
    /// (when the gate, if any, lets them).
    dirs: Vec<(String, PathBuf, Option<Gate>)>,
    requests: Vec<RequestHead>,
    open: HashMap<u64, TcpStream>,
    next_conn: u64,
    handlers: Vec<JoinHandle<()>>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The content type an edge would send for a file name.
pub fn content_type_of(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or_default();
    match ext {
        "m3u8" => "application/vnd.apple.mpegurl",
        "mpd" => "application/dash+xml",
        "ts" => "video/mp2t",
        "mp4" | "m4s" => "video/mp4",
        "key" => "application/octet-stream",
        _ => "application/octet-stream",
    }
}

pub struct MediaEdge {
    pub name: String,
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    /// Set by `kill` and on drop: no more listening.
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl MediaEdge {
    /// A live edge on `127.0.0.{host}` (fresh port) with no files yet.
    pub fn start(name: &str, host: u8) -> MediaEdge {
        MediaEdge::start_on(name, host, 0)
    }

    /// A live edge on `127.0.0.{host}:{port}` (0: a fresh port).
    pub fn start_on(name: &str, host: u8, port: u16) -> MediaEdge {
        let ip = Ipv4Addr::new(127, 0, 0, host);
        let listener = TcpListener::bind((ip, port)).unwrap_or_else(|e| {
            panic!("bind {ip}:{port}: {e} (port 80 needs root or CAP_NET_BIND_SERVICE)")
        });
        let addr = listener.local_addr().expect("local addr");
        listener.set_nonblocking(true).expect("non-blocking");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (shared, stop, name) = (shared.clone(), stop.clone(), name.to_string());
            std::thread::Builder::new()
                .name(format!("media-edge-{name}"))
                .spawn(move || accept_loop(listener, &name, &shared, &stop))
                .expect("spawn media edge")
        };
        MediaEdge {
            name: name.to_string(),
            addr,
            shared,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// `127.0.0.N`: the edge's address and domain name.
    pub fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.N:PORT`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `body` at `path` (200, content type from the extension).
    pub fn put(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.put_file(
            path,
            File {
                status: 200,
                content_type: content_type_of(path).to_string(),
                body: body.into(),
                gzip: false,
            },
        );
    }

    pub fn put_file(&self, path: &str, file: File) {
        lock(&self.shared).files.insert(path.to_string(), file);
    }

    /// Serves at `path` what `make` returns at each request (200, type from the extension).
    pub fn put_dynamic(&self, path: &str, make: Dynamic) {
        lock(&self.shared).dynamic.insert(path.to_string(), make);
    }

    /// Serves the files of `dir` under `prefix` (`/live/ch1/` + the file's relative path).
    pub fn serve_dir(&self, prefix: &str, dir: PathBuf) {
        lock(&self.shared)
            .dirs
            .push((prefix.to_string(), dir, None));
    }

    /// Like [`MediaEdge::serve_dir`], each file only while `gate` lets it (else `404`).
    pub fn serve_dir_gated(&self, prefix: &str, dir: PathBuf, gate: Gate) {
        lock(&self.shared)
            .dirs
            .push((prefix.to_string(), dir, Some(gate)));
    }

    /// Every request received (health checks excluded), oldest first.
    pub fn requests(&self) -> Vec<RequestHead> {
        lock(&self.shared).requests.clone()
    }

    /// The request targets received, oldest first.
    pub fn targets(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.target).collect()
    }

    /// Gone: the listener closes, open connections are cut, later ones refused.
    pub fn kill(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let handlers = {
            let mut shared = lock(&self.shared);
            for stream in shared.open.values() {
                let _ = stream.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut shared.handlers)
        };
        for handler in handlers {
            let _ = handler.join();
        }
    }
}

impl Drop for MediaEdge {
    fn drop(&mut self) {
        self.kill();
    }
}

fn accept_loop(listener: TcpListener, name: &str, shared: &Arc<Mutex<Shared>>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let Ok(clone) = stream.try_clone() else {
                    continue;
                };
                let mut guard = lock(shared);
                guard.handlers.retain(|h| !h.is_finished());
                let id = guard.next_conn;
                guard.next_conn += 1;
                guard.open.insert(id, clone);
                let (shared2, name2) = (shared.clone(), name.to_string());
                let handler = std::thread::Builder::new()
                    .name(format!("media-edge-{name}-conn"))
                    .spawn(move || {
                        serve(stream, &name2, &shared2);
                        lock(&shared2).open.remove(&id);
                    })
                    .expect("spawn media edge connection");
                guard.handlers.push(handler);
            }
            Err(_) => std::thread::sleep(ACCEPT_POLL),
        }
    }
}

/// The file at `path`: put, or read from a served directory.
fn find(shared: &Mutex<Shared>, path: &str) -> Option<File> {
    let shared = lock(shared);
    if let Some(file) = shared.files.get(path) {
        return Some(file.clone());
    }
    if let Some(make) = shared.dynamic.get(path) {
        return Some(File {
            status: 200,
            content_type: content_type_of(path).to_string(),
            body: make(),
            gzip: false,
        });
    }
    for (prefix, dir, gate) in &shared.dirs {
        if let Some(rest) = path.strip_prefix(prefix.as_str()) {
            if rest.split('/').any(|s| s == "..") || gate.as_ref().is_some_and(|g| !g(rest)) {
                return None;
            }
            if let Ok(body) = std::fs::read(dir.join(rest)) {
                return Some(File {
                    status: 200,
                    content_type: content_type_of(path).to_string(),
                    body,
                    gzip: false,
                });
            }
        }
    }
    None
}

/// `bytes=a-b` or `bytes=a-` within `len`.
fn parse_range(value: &str, len: usize) -> Option<(usize, usize)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: usize = a.trim().parse().ok()?;
    let end = match b.trim() {
        "" => len.checked_sub(1)?,
        b => b.parse::<usize>().ok()?.min(len.checked_sub(1)?),
    };
    (start <= end).then_some((start, end))
}

fn serve(mut stream: TcpStream, name: &str, shared: &Mutex<Shared>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Some(request) = read_request_head(&mut stream) else {
        return;
    };
    let path = request
        .target
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    let head_only = request.method == "HEAD";
    let (status, content_type, mut body, gzip) = if path == crate::fake_edge::HEALTH_PATH {
        (200, "text/plain".to_string(), b"OK".to_vec(), false)
    } else {
        lock(shared).requests.push(request.clone());
        match find(shared, &path) {
            Some(file) => (file.status, file.content_type, file.body, file.gzip),
            None => (
                404,
                "text/plain".to_string(),
                b"no such file".to_vec(),
                false,
            ),
        }
    };
    let mut extra = String::new();
    let mut status_line = match status {
        200 => "200 OK".to_string(),
        404 => "404 Not Found".to_string(),
        other => format!("{other} Edge Says So"),
    };
    if gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = encoder.write_all(&body);
        body = encoder.finish().unwrap_or_default();
        extra.push_str("Content-Encoding: gzip\r\n");
    }
    let range = request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("range"))
        .and_then(|(_, v)| parse_range(v, body.len()));
    if let (200, Some((start, end)), false) = (status, range, gzip) {
        extra.push_str(&format!(
            "Content-Range: bytes {start}-{end}/{}\r\n",
            body.len()
        ));
        body = body[start..=end].to_vec();
        status_line = "206 Partial Content".to_string();
    }
    let head = format!(
        "HTTP/1.1 {status_line}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nETag: \"edge-{name}\"\r\nAccept-Ranges: bytes\r\nCache-Control: max-age=60\r\nX-Edge: {name}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    if !head_only {
        let _ = stream.write_all(&body);
    }
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
    let mut rest = [0u8; 1024];
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    while matches!(stream.read(&mut rest), Ok(n) if n > 0) {}
}

/// Live HLS of `ch1` on the edge (its directory `/live/ch1/`).
pub const HLS_PATH: &str = "/live/ch1/master.m3u8";
/// Live DASH of `ch1` on the edge (its directory `/live/ch1/dash/`).
pub const DASH_PATH: &str = "/live/ch1/dash/manifest.mpd";
/// The catch-up recording of `p1` (HLS) on the edge: `/dvr/{prefix}/{record path}`.
pub const CATCHUP_PATH: &str = "/dvr/dvrpfx/rec1/index.m3u8";

/// A routing snapshot with one region (`127.0.0.1/32`) whose edges are `edges`, channel `ch1`
/// streaming HLS at [`HLS_PATH`] and DASH at [`DASH_PATH`], and program `p1` recorded (HLS)
/// at [`CATCHUP_PATH`].
pub fn streaming_snapshot(version: &str, edges: &[serde_json::Value]) -> serde_json::Value {
    let ids: Vec<i64> = edges.iter().filter_map(|s| s["id"].as_i64()).collect();
    let mut servers = edges.to_vec();
    servers.push(serde_json::json!({
        "id": 9000, "type": "DVR", "domain_name": "dvr.test", "ip": "192.0.2.201",
        "port": 80, "status": "ACTIVE", "availability": true, "weight": 10,
        "prefix": "dvrpfx"
    }));
    serde_json::json!({
        "version": version,
        "regions": [{"id": 1, "name": "R1", "status": "ACTIVE", "server_group_ids": [1]}],
        "subnets": [{"id": 100, "name": "lo", "cidr": "127.0.0.1/32", "region_id": 1}],
        "server_groups": [{"id": 1, "name": "g1", "status": "ACTIVE", "server_ids": ids}],
        "servers": servers,
        "linear_channels": [
            {"id": 1, "epg_id": "ch1", "name": "One", "code_name": "one", "dvr_enabled": true}
        ],
        "tv_streams": [
            {"id": 11, "linear_channel_id": 1, "stream_path": HLS_PATH, "status": "ACTIVE",
             "protocol": "HLS", "encryption": "NONE"},
            {"id": 12, "linear_channel_id": 1, "stream_path": DASH_PATH, "status": "ACTIVE",
             "protocol": "MPD", "encryption": "NONE"}
        ],
        "programs": [{"id": 1, "linear_channel_id": 1, "epg_id": "p1", "name": "Done"}],
        "program_records": [
            {"id": 1, "program_id": 1, "server_id": 9000, "status": "COMPLETED",
             "protocol": "HLS", "encryption": "NONE", "path": "rec1/index.m3u8"}
        ]
    })
}

/// The snapshot entry of a media edge with id `id` (domain name = its address).
pub fn media_edge_entry(id: i64, edge: &MediaEdge) -> serde_json::Value {
    crate::fake_edge::edge(id, &edge.host(), &edge.host(), edge.port())
}
