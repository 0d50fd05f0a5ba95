//! A raw fake edge for the proxy framing tests: an in-process TCP server on `127.0.0.1` (port
//! chosen by the OS) that answers each request with exactly the bytes the test's script returns,
//! then keeps the connection, closes it (FIN) or resets it (RST). It records every request's raw
//! head (with the connection it came on) and counts the connections it accepted. Dropping it
//! stops its threads and shuts down every open connection.

use crate::http::{find, RequestHead};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the accept loop looks for connections and for `stop`.
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// Per read and write: a connection the router keeps idle is ended by [`RawEdge`]'s drop.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One request as the edge received it.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// The head's bytes, up to and including the blank line.
    pub raw: Vec<u8>,
    pub head: RequestHead,
    /// Which accepted connection it came on (0 for the first).
    pub connection: usize,
    /// Its place on that connection (0 for the first request).
    pub nth: usize,
}

impl RawRequest {
    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

/// What the edge does after writing a reply's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Waits for the next request on the same connection.
    KeepOpen,
    /// Shuts the connection down (FIN) and closes it.
    Close,
    /// Closes it with a reset (RST): `SO_LINGER` 0.
    Reset,
}

/// The scripted answer to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Written as they are (empty: nothing is written).
    pub bytes: Vec<u8>,
    pub after: After,
}

impl Reply {
    pub fn new(bytes: impl Into<Vec<u8>>, after: After) -> Reply {
        Reply {
            bytes: bytes.into(),
            after,
        }
    }

    /// `head` (status line and fields, without the blank line) and `body`, connection kept.
    pub fn keep(head: &str, body: &[u8]) -> Reply {
        let mut bytes = format!("{head}\r\n\r\n").into_bytes();
        bytes.extend_from_slice(body);
        Reply::new(bytes, After::KeepOpen)
    }
}

pub type Script = Arc<dyn Fn(&RawRequest) -> Reply + Send + Sync>;

struct Shared {
    script: Script,
    requests: Vec<RawRequest>,
    connections: usize,
    /// Clones of the open connections, shut down on drop.
    open: HashMap<usize, TcpStream>,
    handlers: Vec<JoinHandle<()>>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct RawEdge {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl RawEdge {
    /// Listens on `127.0.0.1` and answers every request as `script` says.
    pub fn start(script: impl Fn(&RawRequest) -> Reply + Send + Sync + 'static) -> RawEdge {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let shared = Arc::new(Mutex::new(Shared {
            script: Arc::new(script),
            requests: Vec::new(),
            connections: 0,
            open: HashMap::new(),
            handlers: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("raw-edge".to_string())
                .spawn(move || accept_loop(&listener, &shared, &stop))
                .expect("spawn raw edge thread")
        };
        RawEdge {
            addr,
            shared,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Replaces the script from the next request on.
    pub fn set_script(&self, script: impl Fn(&RawRequest) -> Reply + Send + Sync + 'static) {
        lock(&self.shared).script = Arc::new(script);
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RawRequest> {
        lock(&self.shared).requests.clone()
    }

    /// The request target of every request so far, oldest first.
    pub fn targets(&self) -> Vec<String> {
        let shared = lock(&self.shared);
        shared
            .requests
            .iter()
            .map(|r| r.head.target.clone())
            .collect()
    }

    /// Connections accepted and not yet closed by the edge or its peer.
    pub fn open_connections(&self) -> usize {
        lock(&self.shared).open.len()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        lock(&self.shared).connections
    }
}

impl Drop for RawEdge {
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

fn accept_loop(listener: &TcpListener, shared: &Arc<Mutex<Shared>>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let Ok((stream, _)) = listener.accept() else {
            // Nothing to accept yet (non-blocking), or a passing error: look again soon.
            std::thread::sleep(ACCEPT_POLL);
            continue;
        };
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let mut guard = lock(shared);
        guard.handlers.retain(|h| !h.is_finished());
        let id = guard.connections;
        guard.connections += 1;
        guard.open.insert(id, clone);
        let shared2 = shared.clone();
        let handler = std::thread::Builder::new()
            .name("raw-edge-conn".to_string())
            .spawn(move || {
                if serve(&stream, id, &shared2) == After::Reset {
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                } else {
                    let _ = stream.shutdown(Shutdown::Both);
                }
                // The clone goes too, so that dropping `stream` really closes the socket
                // (a reset needs the last descriptor closed).
                drop(lock(&shared2).open.remove(&id));
                drop(stream);
            })
            .expect("spawn raw edge connection thread");
        guard.handlers.push(handler);
    }
}

/// Answers the requests of one connection until the script or the peer ends it; returns how
/// the connection is to be closed.
fn serve(stream: &TcpStream, connection: usize, shared: &Mutex<Shared>) -> After {
    let mut stream = stream;
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    for nth in 0.. {
        let Some(raw) = next_head(&mut stream, &mut buf) else {
            return After::Close;
        };
        let Some(head) = parse_head(&raw) else {
            return After::Close;
        };
        let request = RawRequest {
            raw,
            head,
            connection,
            nth,
        };
        let script = {
            let mut shared = lock(shared);
            shared.requests.push(request.clone());
            shared.script.clone()
        };
        let reply = script(&request);
        if !reply.bytes.is_empty() && stream.write_all(&reply.bytes).is_err() {
            return After::Close;
        }
        let _ = stream.flush();
        if reply.after != After::KeepOpen {
            return reply.after;
        }
    }
    After::Close
}

/// The next request head (the router's requests here have no body), taken from `buf` and the
/// stream; `None` when the connection ends first.
fn next_head(stream: &mut &TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            return Some(buf.drain(..end + 4).collect());
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn parse_head(raw: &[u8]) -> Option<RequestHead> {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.trim_end_matches("\r\n").split("\r\n");
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    Some(RequestHead {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        headers,
    })
}
