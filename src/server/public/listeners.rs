//! The public listeners' service: binds each `router.listen` address (or takes its socket over
//! from the previous process in a zero-downtime upgrade, through Pingora's table of listening
//! sockets), accepts, and runs [`RouterApp`] on each connection in a task of its own. Pingora's
//! generic listening service spawns a future of about 8.7 KB per connection (it carries TLS
//! handshake state the router's plain listeners never use); this one spawns a few hundred bytes.

use super::fast_path::RouterApp;
use super::lazy_tcp::accept_nonblocking;
use crate::tls::TlsState;
use async_trait::async_trait;
use pingora::server::{ListenFds, ShutdownWatch};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;

/// Pending connections the kernel queues per listener (Pingora's value).
const BACKLOG: i32 = 65_535;

pub struct RouterListeners {
    name: String,
    addrs: Vec<SocketAddr>,
    /// TLS listeners (`router.tls.listen`) and what their handshakes use.
    tls: Option<(Vec<SocketAddr>, Arc<TlsState>)>,
    app: Option<RouterApp>,
}

impl RouterListeners {
    pub fn new(name: &str, addrs: Vec<SocketAddr>, app: RouterApp) -> Self {
        RouterListeners {
            name: name.to_string(),
            addrs,
            tls: None,
            app: Some(app),
        }
    }

    /// Adds TLS listeners.
    pub fn with_tls(mut self, addrs: Vec<SocketAddr>, tls: Arc<TlsState>) -> Self {
        if !addrs.is_empty() {
            self.tls = Some((addrs, tls));
        }
        self
    }
}

/// A new listening socket: address reuse, IPv6 listeners IPv6-only (so `0.0.0.0:p` and
/// `[::]:p` can both be listened on).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// `router.http.defer_accept_secs` on a listening socket (also one handed over by the previous
/// process, so that an upgrade applies a changed value; zero turns it off).
fn set_defer_accept(listener: &std::net::TcpListener, after: Duration) -> std::io::Result<()> {
    let secs = libc::c_int::try_from(after.as_secs()).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt on a socket this process holds, with a c_int option value.
    let set = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The listening socket for `addr`: the one handed over by the previous process if there is
/// one, else a new one, registered so that it can be handed to the next.
fn listen(
    addr: SocketAddr,
    fds: Option<&ListenFds>,
) -> std::io::Result<AsyncFd<std::net::TcpListener>> {
    let key = addr.to_string();
    let std_listener = match fds {
        Some(fds) => {
            let mut table = fds.lock();
            match table.get(&key) {
                // SAFETY: the table holds a listening socket the previous process sent for
                // this address, and nothing else in this process owns it.
                Some(&fd) => unsafe { std::net::TcpListener::from_raw_fd(fd) },
                None => {
                    let listener = bind(addr)?;
                    table.add(key, listener.as_raw_fd());
                    listener
                }
            }
        }
        None => bind(addr)?,
    };
    std_listener.set_nonblocking(true)?;
    // SAFETY: the listener owns its descriptor and lives inside the AsyncFd, so the
    // descriptor stays open while registered.
    unsafe { AsyncFd::register(std_listener) }.map_err(std::io::Error::from)
}

/// Accepts until shutdown starts.
async fn accept_loop(
    app: Arc<RouterApp>,
    listener: Arc<AsyncFd<std::net::TcpListener>>,
    tls: Option<Arc<TlsState>>,
    mut shutdown: ShutdownWatch,
) {
    loop {
        let mut ready = tokio::select! {
            ready = listener.readable() => match ready {
                Ok(ready) => ready,
                Err(e) => {
                    log::error!("listener failed: {e}");
                    break;
                }
            },
            changed = shutdown.changed() => match changed {
                Ok(()) if !*shutdown.borrow() => continue,
                _ => break,
            },
        };
        let Ok(accepted) = ready.try_io(|listener| accept_nonblocking(listener.get_ref())) else {
            // Nothing pending any more: wait for readiness again.
            continue;
        };
        match accepted {
            Ok((tcp, peer)) => {
                let app = Arc::clone(&app);
                let shutdown = shutdown.clone();
                match &tls {
                    None => {
                        tokio::spawn(
                            async move { app.serve_connection(tcp, peer, &shutdown).await },
                        );
                    }
                    Some(tls) => {
                        let tls = Arc::clone(tls);
                        tokio::spawn(async move {
                            app.serve_tls_connection(tcp, peer, &tls, &shutdown).await
                        });
                    }
                }
            }
            Err(e) => {
                log::error!("accept() failed: {e}");
                if e.raw_os_error() == Some(libc::EMFILE) || e.raw_os_error() == Some(libc::ENFILE)
                {
                    // Out of file descriptors: accept would fail at once again; wait for
                    // connections to close.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

#[async_trait]
impl pingora::services::Service for RouterListeners {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        let Some(app) = self.app.take() else {
            log::error!("{}: started twice", self.name);
            return;
        };
        let app = Arc::new(app);
        let mut loops = Vec::new();
        let plain = self.addrs.iter().map(|addr| (*addr, None));
        let tls = self
            .tls
            .iter()
            .flat_map(|(addrs, tls)| addrs.iter().map(move |addr| (*addr, Some(Arc::clone(tls)))));
        for (addr, tls) in plain.chain(tls) {
            let addr = &addr;
            let listener = match listen(*addr, fds.as_ref()) {
                Ok(listener) => Arc::new(listener),
                Err(e) => {
                    // Checked before start-up; only another process taking the port in
                    // between gets here.
                    log::error!("cannot listen on {addr}: {e}");
                    std::process::exit(1);
                }
            };
            let defer = app.defer_accept();
            if let Err(e) = set_defer_accept(listener.get_ref(), defer) {
                log::warn!("{addr}: cannot set TCP_DEFER_ACCEPT: {e}");
            }
            let what = if tls.is_some() { " (TLS)" } else { "" };
            log::info!("listening on {addr}{what}");
            for _ in 0..listeners_per_fd.max(1) {
                let accepting = accept_loop(
                    Arc::clone(&app),
                    Arc::clone(&listener),
                    tls.clone(),
                    shutdown.clone(),
                );
                loops.push(tokio::spawn(accepting));
            }
        }
        futures_util::future::join_all(loops).await;
        log::info!("{}: listeners closed", self.name);
        app.cleanup().await;
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        let tls = self.tls.iter().flat_map(|(addrs, _)| addrs);
        Some(
            self.addrs
                .iter()
                .chain(tls)
                .map(|a| a.to_string())
                .collect(),
        )
    }
}
