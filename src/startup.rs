//! Start-up policy, between reading the config file and running the server: the config and
//! Pingora's settings from one file, `-t`, listeners that must be free, the first routing data
//! (the file, or the persisted admin snapshot), and a health round before an upgrade takes over.

use crate::config::Config;
use crate::health_checker::HealthChecker;
use crate::server::RoutingSource;
use crate::settings::SharedSettings;
use crate::sources::admin_api::AdminApiSource;
use crate::sources::file::{load_file, FileSource};
use crate::sources::RefreshReceiver;
use crate::state::RouterState;
use pingora::server::configuration::ServerConf;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// The routing source the config names, with its first routing data already in service where
/// there is some: the file (loaded before the listeners open, so the first request already has
/// routing data), or the persisted admin snapshot while the admin API is asked for a newer one.
/// `Err` is a message for the operator (an unusable `state_dir` or admin client).
pub fn routing_source(
    config: &Config,
    settings: &SharedSettings,
    state: &Arc<RouterState>,
    refresh: RefreshReceiver,
) -> Result<RoutingSource, String> {
    if config.routing.file.is_some() {
        let source = FileSource::new(settings.clone(), state.clone(), refresh);
        source.load_now();
        return Ok(RoutingSource::File(source));
    }
    match &config.routing.state_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| {
                format!(
                    "router.routing.state_dir: cannot create {}: {e}",
                    dir.display()
                )
            })?;
            if let Some(snapshot) = AdminApiSource::load_persisted(dir) {
                log::info!("serving the persisted snapshot while the admin API is asked for a newer one");
                state.publish(snapshot);
            }
        }
        None => log::warn!(
            "router.routing.state_dir is not set: a restart during an admin outage starts without routing data"
        ),
    }
    AdminApiSource::new(settings.clone(), state.clone(), refresh)
        .map(RoutingSource::AdminApi)
        .map_err(|e| format!("router.routing.admin_api: cannot build the HTTP client: {e}"))
}

/// `fall` back-to-back health rounds (each bounded by the check timeout), so edges that are
/// down when this process takes over are already marked down.
pub fn check_health_before_takeover(settings: &SharedSettings, state: &Arc<RouterState>) {
    let health = settings.load().config.health.clone();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            log::warn!("no health round before the takeover: {e}");
            return;
        }
    };
    let checker = HealthChecker::new(settings.clone(), state.clone());
    runtime.block_on(async {
        for _ in 0..health.fall {
            checker.round(&health).await;
        }
    });
    log::info!(
        "health checked {} time(s) before taking over the listeners",
        health.fall
    );
}

/// Binds `addr` the way the router will, then lets it go.
fn try_bind(addr: SocketAddr) -> std::io::Result<()> {
    crate::server::public::listeners::bind(addr).map(drop)
}

/// Every configured listener can be bound now (none is taken by another process).
pub fn check_listeners(config: &Config) -> Result<(), Vec<String>> {
    let listeners = config
        .listen
        .iter()
        .enumerate()
        .map(|(i, addr)| (format!("router.listen[{i}]"), *addr))
        .chain([(
            "router.management_listen".to_string(),
            config.management_listen,
        )])
        .chain(
            config
                .tls
                .listen
                .iter()
                .enumerate()
                .map(|(i, addr)| (format!("router.tls.listen[{i}]"), *addr)),
        );
    let errors: Vec<String> = listeners
        .filter_map(|(key, addr)| {
            try_bind(addr)
                .err()
                .map(|e| format!("{key}: cannot listen on {addr}: {e}"))
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Pingora's settings and ours, from the one file; every problem is returned.
pub fn load_config(path: &Path) -> Result<(ServerConf, Config), Vec<String>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![format!("cannot read config file: {e}")])?;
    let server_conf = ServerConf::from_yaml(&text).map_err(|e| {
        let detail = e.root_cause().to_string();
        vec![format!("Pingora settings (top level): {detail}")]
    });
    let config = Config::load_from_yaml(path)
        .map_err(|e| e.0.iter().map(|e| e.to_string()).collect::<Vec<_>>());
    // The certificate files are read now, so that `-t` and the start report a bad one.
    let config =
        config.and_then(
            |config| match crate::tls::certs::load_all(&config.tls.certificates) {
                Ok(_) => Ok(config),
                Err(problems) => Err(problems
                    .into_iter()
                    .map(|(key, message)| format!("{key}: {message}"))
                    .collect()),
            },
        );
    match (server_conf, config) {
        (Ok(server_conf), Ok(config)) => Ok((server_conf, config)),
        (server_conf, config) => Err(server_conf
            .err()
            .into_iter()
            .flatten()
            .chain(config.err().into_iter().flatten())
            .collect()),
    }
}

/// `-t`: the config is valid; also load the routing file (or the persisted admin snapshot).
pub fn test_config(shown: &str, config: &Config) -> ExitCode {
    let (key, path) = match (&config.routing.file, &config.routing.state_dir) {
        (Some(file), _) => ("router.routing.file", file.clone()),
        (None, Some(dir)) if crate::sources::persist::snapshot_path(dir).exists() => (
            "router.routing.state_dir",
            crate::sources::persist::snapshot_path(dir),
        ),
        _ => {
            println!("{shown}: configuration OK (the admin API is not contacted by -t)");
            return ExitCode::SUCCESS;
        }
    };
    match load_file(&path) {
        Ok(snapshot) => {
            let mut out = std::io::stdout().lock();
            // Written without panicking on a closed pipe (`cti-kaltura -t | head`).
            let _ = writeln!(
                out,
                "{shown}: configuration OK; routing snapshot {} version {} with {} problem(s)",
                path.display(),
                snapshot.info.version.as_deref().unwrap_or("(none)"),
                snapshot.info.problems.len()
            );
            for problem in &snapshot.info.problems {
                let _ = writeln!(out, "  {problem}");
            }
            ExitCode::SUCCESS
        }
        // The persisted admin snapshot is a cache: the router starts without it and fetches.
        Err(e) if key == "router.routing.state_dir" => {
            eprintln!("{shown}: warning: {key}: persisted snapshot not usable ({e}); the router will fetch from the admin API");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{shown}: {key}: {e}");
            ExitCode::from(1)
        }
    }
}
