//! `cti-kaltura -c conf/cti-kaltura.yaml [-t] [-u] [-d]`: load and validate the one YAML file,
//! load the routing snapshot, then run the Pingora server.

use cti_kaltura::config::Config;
use cti_kaltura::health_checker::HealthChecker;
use cti_kaltura::server::upgrade::SelfUpgrade;
use cti_kaltura::server::{build_server, Parts, RoutingSource};
use cti_kaltura::settings::SharedSettings;
use cti_kaltura::sources::admin_api::AdminApiSource;
use cti_kaltura::sources::file::{load_file, FileSource};
use cti_kaltura::sources::refresh_channel;
use cti_kaltura::state::RouterState;
use pingora::server::configuration::{Opt, ServerConf};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit code for an unusable configuration.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    // Until their handlers are installed, a SIGHUP (an early `systemctl reload`) or SIGUSR2
    // must not end the process, which is their default action.
    // SAFETY: setting a signal disposition to SIG_IGN before any thread exists.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGUSR2, libc::SIG_IGN);
    }
    cti_kaltura::logging::init();
    let mut opt = Opt::parse_args();
    let Some(conf_path) = opt.conf.take().map(PathBuf::from) else {
        eprintln!("usage: cti-kaltura -c /etc/cti-kaltura/cti-kaltura.yaml [-t] [-u] [-d]");
        return ExitCode::from(EXIT_CONFIG);
    };
    let shown = conf_path.display().to_string();
    let (server_conf, config) = match load_config(&conf_path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for e in &errors {
                eprintln!("{shown}: {e}");
            }
            eprintln!("{shown}: {} configuration error(s)", errors.len());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if opt.test {
        return test_config(&shown, &config);
    }
    if !opt.upgrade {
        // Pingora retries a busy port for half a minute and then runs on without that
        // listener; a clear error and a non-zero exit serve an operator better.
        if let Err(errors) = check_listeners(&config) {
            for e in &errors {
                eprintln!("{shown}: {e}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    }

    let state = RouterState::new();
    let (refresh_tx, refresh_rx) = refresh_channel();
    let settings = SharedSettings::new(config.clone());
    let source = if config.routing.file.is_some() {
        let source = FileSource::new(settings.clone(), state.clone(), refresh_rx);
        // Loaded before the listeners open, so the first request already has routing data.
        source.reload();
        RoutingSource::File(source)
    } else {
        match &config.routing.state_dir {
            Some(dir) => {
                if let Err(e) = std::fs::create_dir_all(dir) {
                    eprintln!(
                        "{shown}: router.routing.state_dir: cannot create {}: {e}",
                        dir.display()
                    );
                    return ExitCode::from(EXIT_CONFIG);
                }
                if let Some(snapshot) = AdminApiSource::load_persisted(dir) {
                    log::info!("serving the persisted snapshot while the admin API is asked for a newer one");
                    state.publish(snapshot);
                }
            }
            None => log::warn!(
                "router.routing.state_dir is not set: a restart during an admin outage starts without routing data"
            ),
        }
        match AdminApiSource::new(settings.clone(), state.clone(), refresh_rx) {
            Ok(source) => RoutingSource::AdminApi(source),
            Err(e) => {
                eprintln!("{shown}: router.routing.admin_api: cannot build the HTTP client: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    };
    // Resolved now: in daemon mode the working directory becomes `/`.
    let conf_path = std::path::absolute(&conf_path).unwrap_or(conf_path);
    if opt.upgrade && config.health.enabled {
        // The old process serves until this one takes the sockets: spend that time learning
        // which edges are down, instead of sending players to them for the first seconds.
        check_health_before_takeover(&settings, &state);
    }
    let upgrade = SelfUpgrade {
        exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("cti-kaltura")),
        conf: conf_path.clone(),
        daemon: opt.daemon || server_conf.daemon,
    };
    let parts = Parts {
        config_path: conf_path,
        settings,
        source,
        refresh: refresh_tx,
        state,
        upgrade,
    };
    let server = build_server(opt, server_conf, parts);
    server.run_forever()
}

/// `fall` back-to-back health rounds (each bounded by the check timeout), so edges that are
/// down when this process takes over are already marked down.
fn check_health_before_takeover(settings: &SharedSettings, state: &std::sync::Arc<RouterState>) {
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
    cti_kaltura::server::listeners::bind(addr).map(drop)
}

/// Every configured listener can be bound now (none is taken by another process).
fn check_listeners(config: &Config) -> Result<(), Vec<String>> {
    let listeners = config
        .listen
        .iter()
        .enumerate()
        .map(|(i, addr)| (format!("router.listen[{i}]"), *addr))
        .chain([(
            "router.management_listen".to_string(),
            config.management_listen,
        )]);
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
fn load_config(path: &Path) -> Result<(ServerConf, Config), Vec<String>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![format!("cannot read config file: {e}")])?;
    let server_conf = ServerConf::from_yaml(&text).map_err(|e| {
        let detail = e.root_cause().to_string();
        vec![format!("Pingora settings (top level): {detail}")]
    });
    let config = Config::load_from_yaml(path)
        .map_err(|e| e.0.iter().map(|e| e.to_string()).collect::<Vec<_>>());
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
fn test_config(shown: &str, config: &Config) -> ExitCode {
    let (key, path) = match (&config.routing.file, &config.routing.state_dir) {
        (Some(file), _) => ("router.routing.file", file.clone()),
        (None, Some(dir)) if cti_kaltura::sources::persist::snapshot_path(dir).exists() => (
            "router.routing.state_dir",
            cti_kaltura::sources::persist::snapshot_path(dir),
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
