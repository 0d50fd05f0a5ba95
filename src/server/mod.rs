//! Wiring the Pingora server: the public routing service, the management service and the
//! routing source, from a validated [`Config`].

pub mod management;
pub mod router_proxy;

use crate::config::Config;
use crate::health::checker::HealthChecker;
use crate::routing::RoutingPolicy;
use crate::sources::admin_api::AdminApiSource;
use crate::sources::file::FileSource;
use crate::sources::RefreshSender;
use crate::state::RouterState;
use pingora::listeners::TcpSocketOptions;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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

/// Builds the server with every service; `run_forever()` is the caller's.
pub fn build_server(
    opt: Opt,
    server_conf: ServerConf,
    config: &Config,
    source: RoutingSource,
    refresh: RefreshSender,
    state: Arc<RouterState>,
) -> Server {
    let mut server = Server::new_with_opt_and_conf(opt, server_conf);
    server.bootstrap();

    let policy = RoutingPolicy {
        trusted_proxies: config.client_ip.trusted_proxies.clone(),
        append_query_string: config.redirect.append_query_string,
        panic_mode: config.health.panic_mode,
        routes: config.routes,
    };
    let proxy = router_proxy::RouterProxy {
        state: state.clone(),
        policy: policy.clone(),
        keepalive_timeout_secs: config.http.keepalive_timeout_secs,
        proxy: config.proxy.clone(),
        health: config.health.clone(),
    };
    let mut router = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        proxy,
        "cti-kaltura router",
    );
    for addr in &config.listen {
        router.add_tcp_with_settings(&addr.to_string(), socket_options(addr));
    }

    let refresh_wait = config
        .routing
        .admin_api
        .as_ref()
        .map_or(Duration::from_secs(30), |api| {
            api.timeout + Duration::from_secs(30)
        });
    let state_for_health = state.clone();
    let management_app = management::Management {
        state,
        refresh,
        token: config.management.token.clone(),
        refresh_wait,
        policy,
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
    if config.health.enabled {
        match HealthChecker::new(config.health.clone(), state_for_health) {
            Ok(checker) => {
                server.add_service(background_service("edge health checker", checker));
            }
            Err(e) => {
                log::error!("edge health checks are off: cannot build their HTTP client: {e}")
            }
        }
    } else {
        log::info!("edge health checks are off (router.health.enabled: false)");
    }
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
