//! In-process fake edges for the health and proxy-mode suites: small HTTP/1.1 servers on a
//! loopback address (`127.0.0.N`, port chosen by the OS), one accept thread each plus one
//! thread per connection, whose behaviour the test switches while the router runs. Also the
//! routing snapshots both suites share.
//!
//! - `GET /healthcheck` answers as [`Health`] says: `200 OK` (body `OK`), `503`, `200` with
//!   body `NOT OK`, slowly, alternately good and bad, or not at all (listener dropped:
//!   connection refused).
//! - Any other path answers `200` with [`FakeEdge::set_body_len`] bytes of [`pattern`], and
//!   records the request line and headers.
//!
//! Every answer carries `Connection: close` and the connection is closed after it, so neither
//! the router's health client nor its proxy pool ever reuses one. Dropping a fake stops its
//! threads (open connections are shut down, so none lingers).

use crate::http::{read_request_head, RequestHead};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The health-check path every fake edge serves (and the snapshots here name).
pub const HEALTH_PATH: &str = "/healthcheck";
/// How often the accept loop looks for connections and for a switch to or from `Closed`.
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// Per read and write on a fake's connections.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes per body write.
const WRITE_CHUNK: usize = 64 * 1024;

/// How the health endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// `200` with body `OK`.
    Ok,
    /// `503` (wrong status).
    BadStatus,
    /// `200` with body `NOT OK` (wrong body).
    BadBody,
    /// Waits this long, then `200 OK` (slower than the router's timeout).
    Slow(Duration),
    /// `200 OK` and `503` in turn, switching on every health request received (the first
    /// one fails).
    Flapping,
    /// No listener at all: connections are refused (content requests too).
    Closed,
}

/// One content request as the fake edge received it.
pub type Seen = RequestHead;

/// Byte `i` of every body a fake edge serves: splitmix64 of the 8-byte word index, so a
/// lost, repeated or reordered stretch of a body never compares equal.
pub fn pattern(offset: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut i = offset;
    while out.len() < len {
        let word = splitmix64((i / 8) as u64).to_le_bytes();
        let from = i % 8;
        let take = (8 - from).min(len - out.len());
        out.extend_from_slice(&word[from..from + take]);
        i += take;
    }
    out
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What the test and the fake's threads share.
struct Shared {
    health: Health,
    /// With [`Health::Flapping`]: whether the next health answer is good.
    flap_ok_next: bool,
    body_len: usize,
    health_requests: usize,
    requests: Vec<Seen>,
    /// Body bytes written for each content request (by index), once written or cut off.
    sent: HashMap<usize, usize>,
    /// Clones of the open connections, to shut them down on `Closed` and on drop.
    open: HashMap<u64, TcpStream>,
    next_conn: u64,
    handlers: Vec<JoinHandle<()>>,
    /// The last failure to listen again after `Closed`, for assertion messages.
    listen_error: Option<String>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fake edge; see the module documentation.
pub struct FakeEdge {
    /// Sent back in every content answer as `X-Edge`.
    pub name: String,
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeEdge {
    /// A healthy fake edge on `127.0.0.{host}` (a fresh port) serving 1 KiB bodies.
    pub fn start(name: &str, host: u8) -> FakeEdge {
        FakeEdge::start_with(name, host, Health::Ok)
    }

    /// A fake edge whose port has no listener from the start: connections are refused.
    pub fn dead(name: &str, host: u8) -> FakeEdge {
        FakeEdge::start_with(name, host, Health::Closed)
    }

    pub fn start_with(name: &str, host: u8, health: Health) -> FakeEdge {
        let ip = Ipv4Addr::new(127, 0, 0, host);
        let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
        let addr = listener.local_addr().expect("local addr");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let shared = Arc::new(Mutex::new(Shared {
            health,
            flap_ok_next: false,
            body_len: 1024,
            health_requests: 0,
            requests: Vec::new(),
            sent: HashMap::new(),
            open: HashMap::new(),
            next_conn: 0,
            handlers: Vec::new(),
            listen_error: None,
        }));
        // A dead edge never listens: the port is refused before the router can see it.
        let listener = (health != Health::Closed).then_some(listener);
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (shared, stop, name) = (shared.clone(), stop.clone(), name.to_string());
            std::thread::Builder::new()
                .name(format!("fake-edge-{name}"))
                .spawn(move || accept_loop(listener, addr, &name, &shared, &stop))
                .expect("spawn fake edge thread")
        };
        FakeEdge {
            name: name.to_string(),
            addr,
            shared,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// `127.0.0.N`: the host the router reaches this edge at.
    pub fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Switches the health endpoint; `Closed` also drops the listener (and every open
    /// connection), leaving `Closed` listens on the same port again.
    pub fn set_health(&self, health: Health) {
        let mut shared = lock(&self.shared);
        shared.health = health;
        shared.flap_ok_next = false;
    }

    /// The length of every content body from now on.
    pub fn set_body_len(&self, len: usize) {
        lock(&self.shared).body_len = len;
    }

    /// Health requests received so far (answered or not).
    pub fn health_requests(&self) -> usize {
        lock(&self.shared).health_requests
    }

    /// Content requests received so far, oldest first.
    pub fn requests(&self) -> Vec<Seen> {
        lock(&self.shared).requests.clone()
    }

    /// For each content request so far: the body bytes written, once the body was written
    /// whole or the connection broke (`None` while it is still being written).
    pub fn bytes_sent(&self) -> Vec<Option<usize>> {
        let shared = lock(&self.shared);
        (0..shared.requests.len())
            .map(|i| shared.sent.get(&i).copied())
            .collect()
    }

    /// Whether the fake listens right now, and the last failure to listen again.
    pub fn describe(&self) -> String {
        let shared = lock(&self.shared);
        format!(
            "fake edge {} at {} ({:?}, {} health requests, {} content requests, last listen error: {:?})",
            self.name,
            self.addr,
            shared.health,
            shared.health_requests,
            shared.requests.len(),
            shared.listen_error
        )
    }
}

impl Drop for FakeEdge {
    fn drop(&mut self) {
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

fn accept_loop(
    mut listener: Option<TcpListener>,
    addr: SocketAddr,
    name: &str,
    shared: &Arc<Mutex<Shared>>,
    stop: &Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        let closed = lock(shared).health == Health::Closed;
        if closed && listener.is_some() {
            // Dead: no listener, and the connections it had are cut.
            listener = None;
            let shared = lock(shared);
            for stream in shared.open.values() {
                let _ = stream.shutdown(Shutdown::Both);
            }
        } else if !closed && listener.is_none() {
            match TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
                Ok(l) => {
                    listener = Some(l);
                    lock(shared).listen_error = None;
                }
                Err(e) => {
                    lock(shared).listen_error = Some(e.to_string());
                    std::thread::sleep(ACCEPT_POLL);
                    continue;
                }
            }
        }
        let Some(l) = listener.as_ref() else {
            std::thread::sleep(ACCEPT_POLL);
            continue;
        };
        match l.accept() {
            Ok((stream, _)) => {
                let Ok(clone) = stream.try_clone() else {
                    continue;
                };
                let mut guard = lock(shared);
                guard.handlers.retain(|h| !h.is_finished());
                let id = guard.next_conn;
                guard.next_conn += 1;
                guard.open.insert(id, clone);
                let (shared2, stop2, name2) = (shared.clone(), stop.clone(), name.to_string());
                let handler = std::thread::Builder::new()
                    .name(format!("fake-edge-{name}-conn"))
                    .spawn(move || {
                        serve(stream, &name2, &shared2, &stop2);
                        lock(&shared2).open.remove(&id);
                    })
                    .expect("spawn fake edge connection thread");
                guard.handlers.push(handler);
            }
            // Nothing to accept yet (non-blocking), or a passing error: look again soon.
            Err(_) => std::thread::sleep(ACCEPT_POLL),
        }
    }
}

fn respond(stream: &mut TcpStream, status: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body));
}

fn serve(mut stream: TcpStream, name: &str, shared: &Mutex<Shared>, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Some(request) = read_request_head(&mut stream) else {
        return;
    };
    let path = request.target.split('?').next().unwrap_or_default();
    if path == HEALTH_PATH {
        let answer = {
            let mut shared = lock(shared);
            shared.health_requests += 1;
            match shared.health {
                Health::Flapping => {
                    let ok = shared.flap_ok_next;
                    shared.flap_ok_next = !ok;
                    if ok {
                        Health::Ok
                    } else {
                        Health::BadStatus
                    }
                }
                other => other,
            }
        };
        match answer {
            Health::Ok | Health::Flapping | Health::Closed => respond(&mut stream, "200 OK", b"OK"),
            Health::BadStatus => respond(&mut stream, "503 Service Unavailable", b"OK"),
            Health::BadBody => respond(&mut stream, "200 OK", b"NOT OK"),
            Health::Slow(delay) => {
                let until = Instant::now() + delay;
                while Instant::now() < until {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    // The delay is what is tested (the router's check timeout); slices only
                    // to see `stop`.
                    std::thread::sleep(Duration::from_millis(10));
                }
                respond(&mut stream, "200 OK", b"OK");
            }
        }
    } else {
        let (index, len) = {
            let mut shared = lock(shared);
            shared.requests.push(request.clone());
            (shared.requests.len() - 1, shared.body_len)
        };
        let sent = send_body(&mut stream, name, &request.method, len, stop);
        lock(shared).sent.insert(index, sent);
        if sent < len && request.method != "HEAD" {
            return;
        }
    }
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
    // Let the peer read the answer and close first (no reset from unread bytes).
    let mut rest = [0u8; 1024];
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    while matches!(stream.read(&mut rest), Ok(n) if n > 0) {}
}

/// Writes a content answer with `len` bytes of [`pattern`]; returns the body bytes written.
fn send_body(
    stream: &mut TcpStream,
    name: &str,
    method: &str,
    len: usize,
    stop: &AtomicBool,
) -> usize {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\nX-Edge: {name}\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).is_err() || method == "HEAD" {
        return 0;
    }
    let mut sent = 0;
    while sent < len && !stop.load(Ordering::SeqCst) {
        let n = WRITE_CHUNK.min(len - sent);
        if stream.write_all(&pattern(sent, n)).is_err() {
            break;
        }
        sent += n;
    }
    sent
}

/// An EDGE server entry: ACTIVE, available, weight 10, health-checked on [`HEALTH_PATH`].
pub fn edge(id: i64, domain: &str, ip: &str, port: u16) -> Value {
    json!({
        "id": id, "type": "EDGE", "domain_name": domain, "ip": ip, "port": port,
        "status": "ACTIVE", "availability": true, "weight": 10, "prefix": null,
        "healthcheck_enabled": true, "healthcheck_path": HEALTH_PATH
    })
}

/// [`edge`] for a fake: its domain name is its loopback address (health checks resolve it).
pub fn fake_edge(id: i64, fake: &FakeEdge) -> Value {
    edge(id, &fake.host(), &fake.host(), fake.port())
}

/// One region: its subnets and the edges of its one server group.
#[derive(Debug, Clone, Copy)]
pub struct RegionSpec<'a> {
    pub id: i64,
    pub cidrs: &'a [&'a str],
    pub edge_ids: &'a [i64],
}

/// Live path of `epg_1` (HLS, no encryption) in every [`snapshot`].
pub const LIVE_PATH: &str = "/live/one.m3u8";
/// The DVR record of `prog_1` (HLS): `/dvr/dvrpfx/rec/one.m3u8` on the edge.
pub const CATCHUP_EDGE_PATH: &str = "/dvr/dvrpfx/rec/one.m3u8";

/// A routing snapshot: the regions (each with its subnets and one server group, id = region
/// id), the servers, a DVR with prefix `dvrpfx`, channel `epg_1` with its HLS stream at
/// [`LIVE_PATH`] and program `prog_1` recorded as `rec/one.m3u8`.
pub fn snapshot(version: &str, regions: &[RegionSpec<'_>], servers: &[Value]) -> Value {
    let mut subnets = Vec::new();
    for region in regions {
        for (i, cidr) in region.cidrs.iter().enumerate() {
            subnets.push(json!({
                "id": region.id * 100 + i as i64, "name": format!("net-{}-{i}", region.id),
                "cidr": cidr, "region_id": region.id
            }));
        }
    }
    let mut all_servers = servers.to_vec();
    all_servers.push(json!({
        "id": 9000, "type": "DVR", "domain_name": "dvr.test", "ip": "192.0.2.201",
        "port": 80, "status": "ACTIVE", "availability": true, "weight": 10,
        "prefix": "dvrpfx"
    }));
    json!({
        "version": version,
        "regions": regions.iter().map(|r| json!({
            "id": r.id, "name": format!("R{}", r.id), "status": "ACTIVE",
            "server_group_ids": [r.id]
        })).collect::<Vec<_>>(),
        "subnets": subnets,
        "server_groups": regions.iter().map(|r| json!({
            "id": r.id, "name": format!("g{}", r.id), "status": "ACTIVE",
            "server_ids": r.edge_ids
        })).collect::<Vec<_>>(),
        "servers": all_servers,
        "linear_channels": [
            {"id": 1, "epg_id": "epg_1", "name": "One", "code_name": "one", "dvr_enabled": true}
        ],
        "tv_streams": [
            {"id": 11, "linear_channel_id": 1, "stream_path": LIVE_PATH, "status": "ACTIVE",
             "protocol": "HLS", "encryption": "NONE"}
        ],
        "programs": [
            {"id": 1, "linear_channel_id": 1, "epg_id": "prog_1", "name": "Done"}
        ],
        "program_records": [
            {"id": 1, "program_id": 1, "server_id": 9000, "status": "COMPLETED",
             "protocol": "HLS", "encryption": "NONE", "path": "rec/one.m3u8"}
        ]
    })
}
