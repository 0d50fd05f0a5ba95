//! Connections to edges for the relay: kept open between requests, per thread (each of the
//! router's worker threads has its own runtime), at most [`MAX_IDLE_PER_EDGE`] idle ones per
//! edge address, each reused for at most [`IDLE_LIMIT`] after its last answer.
//!
//! An idle connection the edge closed is only noticed when it is used: the relay then retries
//! the request once on a new connection (GET and HEAD are idempotent, RFC 9110 §9.2.2).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Idle connections kept per edge address and thread.
pub const MAX_IDLE_PER_EDGE: usize = 64;
/// How long an idle connection is reused (edges commonly close idle ones after 60–75 s).
pub const IDLE_LIMIT: Duration = Duration::from_secs(15);

struct Idle {
    stream: TcpStream,
    since: Instant,
}

thread_local! {
    static IDLE: RefCell<HashMap<SocketAddr, VecDeque<Idle>>> = RefCell::new(HashMap::new());
}

/// A connection to an edge, and whether it served requests before.
pub struct EdgeConnection {
    pub stream: TcpStream,
    pub reused: bool,
}

/// An idle connection to `addr`, the most recently used first.
pub fn take_idle(addr: SocketAddr) -> Option<EdgeConnection> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.get_mut(&addr)?;
        while let Some(entry) = list.pop_back() {
            if entry.since.elapsed() < IDLE_LIMIT {
                return Some(EdgeConnection {
                    stream: entry.stream,
                    reused: true,
                });
            }
        }
        None
    })
}

/// Opens a new connection to `addr` within `limit`.
pub async fn connect(addr: SocketAddr, limit: Duration) -> io::Result<EdgeConnection> {
    let stream = match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Ok(connected) => connected?,
        Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    };
    stream.set_nodelay(true)?;
    Ok(EdgeConnection {
        stream,
        reused: false,
    })
}

/// Keeps a connection whose last response was read whole, for the next request to `addr`.
pub fn put_idle(addr: SocketAddr, stream: TcpStream) {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(addr).or_default();
        // Oldest first: the expired ones, and the one to drop when full, are at the front.
        let now = Instant::now();
        while list
            .front()
            .is_some_and(|entry| now.duration_since(entry.since) >= IDLE_LIMIT)
            || list.len() >= MAX_IDLE_PER_EDGE
        {
            list.pop_front();
        }
        list.push_back(Idle { stream, since: now });
    });
}
