//! `cti-kaltura -c conf/cti-kaltura.yaml [-t] [-u] [-d]`: wiring only — the config, the
//! start-up policy (`cti_kaltura::startup`), then the Pingora server.

use cti_kaltura::server::signals::upgrade::SelfUpgrade;
use cti_kaltura::server::{build_server, Parts};
use cti_kaltura::settings::SharedSettings;
use cti_kaltura::sources::refresh_channel;
use cti_kaltura::startup;
use cti_kaltura::state::RouterState;
use pingora::server::configuration::Opt;
use std::path::PathBuf;
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
    let (server_conf, config) = match startup::load_config(&conf_path) {
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
        return startup::test_config(&shown, &config);
    }
    if !opt.upgrade {
        // Pingora retries a busy port for half a minute and then runs on without that
        // listener; a clear error and a non-zero exit serve an operator better.
        if let Err(errors) = startup::check_listeners(&config) {
            for e in &errors {
                eprintln!("{shown}: {e}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    }

    let tls = if config.tls.listen.is_empty() {
        None
    } else {
        match cti_kaltura::tls::TlsState::new(&config.tls) {
            Ok(tls) => Some(tls),
            Err(errors) => {
                for (key, message) in &errors {
                    eprintln!("{shown}: {key}: {message}");
                }
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    };
    let state = RouterState::new();
    let (refresh_tx, refresh_rx) = refresh_channel();
    let settings = SharedSettings::new(config.clone());
    let source = match startup::routing_source(&config, &settings, &state, refresh_rx) {
        Ok(source) => source,
        Err(message) => {
            eprintln!("{shown}: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Resolved now: in daemon mode the working directory becomes `/`.
    let conf_path = std::path::absolute(&conf_path).unwrap_or(conf_path);
    if opt.upgrade && config.health.enabled {
        // The old process serves until this one takes the sockets: spend that time learning
        // which edges are down, instead of sending players to them for the first seconds.
        startup::check_health_before_takeover(&settings, &state);
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
        tls,
    };
    let server = build_server(opt, server_conf, parts);
    server.run_forever()
}
