//! Wiring the Pingora server: the public routing service, the management service, the
//! routing source, the health checker and the SIGHUP config reloader.

pub mod access_log;
pub mod answer;
pub mod h2_limits;
pub mod management;
pub mod pipeline;
pub mod proxy;
pub mod public;
pub mod relay;
pub mod signals;

/// Earlier path of the public listener's HTTP/1 parser and writer (the fuzz targets use it).
pub use public::http1;

use crate::health_checker::HealthChecker;
use crate::settings::SharedSettings;
use crate::sources::admin_api::AdminApiSource;
use crate::sources::file::FileSource;
use crate::sources::RefreshSender;
use crate::state::RouterState;
use pingora::listeners::TcpSocketOptions;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{ExecutionPhase, Server};
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

fn socket_options(addr: &SocketAddr) -> TcpSocketOptions {
    let mut options = TcpSocketOptions::default();
    // `0.0.0.0:p` and `[::]:p` can then be listened on side by side.
    if addr.is_ipv6() {
        options.ipv6_only = Some(true);
    }
    options
}

/// The configured routing source.
pub enum RoutingSource {
    File(FileSource),
    AdminApi(AdminApiSource),
}

/// What the services are built from, besides Pingora's own settings.
pub struct Parts {
    /// The configuration file, re-read on SIGHUP.
    pub config_path: PathBuf,
    pub settings: SharedSettings,
    pub source: RoutingSource,
    pub refresh: RefreshSender,
    pub state: Arc<RouterState>,
    pub upgrade: signals::upgrade::SelfUpgrade,
    /// Certificates and acceptor of the TLS listeners, when there are any.
    pub tls: Option<Arc<crate::tls::TlsState>>,
}

/// Sets `flag` once this process has handed its listening sockets to a new one (SIGQUIT in a
/// zero-downtime upgrade), for the seconds both processes accept before this one stops.
fn watch_hand_over(server: &Server, flag: Arc<AtomicBool>) {
    let mut phases = server.watch_execution_phase();
    let watcher = std::thread::Builder::new()
        .name("upgrade watch".into())
        .spawn(move || loop {
            match phases.blocking_recv() {
                Ok(ExecutionPhase::GracefulUpgradeCloseTimeout) => {
                    log::info!(
                        "listening sockets handed over: answers now close their connections"
                    );
                    flag.store(true, Ordering::Relaxed);
                }
                Err(RecvError::Closed) => return,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
            }
        });
    if let Err(e) = watcher {
        log::warn!("cannot watch for upgrades ({e}): connections will not be closed early");
    }
}

/// Builds the server with every service; `run_forever()` is the caller's.
pub fn build_server(opt: Opt, server_conf: ServerConf, parts: Parts) -> Server {
    let Parts {
        config_path,
        settings,
        source,
        refresh,
        state,
        upgrade,
        tls,
    } = parts;
    let mut server = Server::new_with_opt_and_conf(opt, server_conf);
    server.bootstrap();
    let config = settings.current();
    let config = &config.config;

    let proxy = proxy::router_proxy::RouterProxy {
        state: state.clone(),
        settings: settings.clone(),
        resolver: proxy::edge_resolver::EdgeResolver::default(),
        // The same options (CA file, ...) as the framework's own connector to edges.
        manifest_connector: pingora::connectors::http::Connector::new(Some(
            pingora::connectors::ConnectorOptions::from_server_conf(&server.configuration),
        )),
    };
    let mut proxy = pingora::proxy::http_proxy(&server.configuration, proxy);
    proxy.h2_options = Some(h2_limits::h2_options(&config.tls.h2));
    proxy.server_options = Some(h2_limits::server_options(config.http.keepalive_timeout));
    let handing_over = Arc::new(AtomicBool::new(false));
    watch_hand_over(&server, Arc::clone(&handing_over));
    let app =
        public::fast_path::RouterApp::new(proxy, state.clone(), settings.clone(), handing_over);
    let mut router =
        public::listeners::RouterListeners::new("cti-kaltura router", config.listen.clone(), app);
    if let Some(tls) = &tls {
        router = router.with_tls(config.tls.listen.clone(), Arc::clone(tls));
    }

    let management_app = management::Management {
        state: state.clone(),
        refresh: refresh.clone(),
        settings: settings.clone(),
        tls: tls.clone(),
    };
    let mut management = Service::new("cti-kaltura management".to_string(), management_app);
    let management_addr = config.management_listen;
    management.add_tcp_with_settings(
        &management_addr.to_string(),
        socket_options(&management_addr),
    );
    management.threads = Some(1);

    server.add_service(router);
    server.add_service(management);
    // Always present: `router.health.enabled` can be switched by a reload.
    server.add_service(background_service(
        "stream health prober",
        crate::stream_prober::StreamProber::new(settings.clone(), state.clone()),
    ));
    server.add_service(background_service(
        "edge health checker",
        HealthChecker::new(settings.clone(), state),
    ));
    server.add_service(background_service("in-place upgrade", upgrade));
    if let Some(tls) = tls {
        server.add_service(background_service(
            "TLS certificate reloader",
            crate::tls::reload::CertificateReloader::new(tls, config.tls.watch_interval),
        ));
    }
    server.add_service(background_service(
        "config reloader",
        signals::reload::ConfigReloader::new(config_path, settings, refresh),
    ));
    match source {
        RoutingSource::File(file) => {
            server.add_service(background_service("routing file source", file))
        }
        RoutingSource::AdminApi(api) => {
            server.add_service(background_service("routing admin API source", api))
        }
    };
    server
}
