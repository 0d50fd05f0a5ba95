//! `cti-kaltura -c conf/cti-kaltura.yaml [-t] [-u] [-d]`: load and validate the one YAML file,
//! load the routing snapshot, then run the Pingora server.

use cti_kaltura::config::Config;
use cti_kaltura::server::build_server;
use cti_kaltura::sources::file::{load_file, FileSource};
use cti_kaltura::state::RouterState;
use pingora::server::configuration::{Opt, ServerConf};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut opt = Opt::parse_args();
    let Some(conf_path) = opt.conf.take().map(PathBuf::from) else {
        eprintln!("usage: cti-kaltura -c /etc/cti-kaltura/cti-kaltura.yaml [-t] [-u] [-d]");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&conf_path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{}: cannot read config file: {e}", conf_path.display());
            return ExitCode::from(2);
        }
    };
    let server_conf = match ServerConf::from_yaml(&text) {
        Ok(conf) => conf,
        Err(e) => {
            eprintln!(
                "{}: Pingora settings: {}",
                conf_path.display(),
                e.context
                    .as_ref()
                    .map_or(e.etype.as_str().to_string(), |c| c.as_str().to_string())
            );
            return ExitCode::from(2);
        }
    };
    let config = match Config::load_from_yaml(&conf_path) {
        Ok(config) => config,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{}: {e}", conf_path.display());
            }
            eprintln!(
                "{}: {} configuration error(s)",
                conf_path.display(),
                errors.0.len()
            );
            return ExitCode::from(2);
        }
    };

    if opt.test {
        return match load_file(&config.routing.file) {
            Ok(snapshot) => {
                println!(
                    "{}: configuration OK; routing snapshot {} version {} with {} problem(s)",
                    conf_path.display(),
                    config.routing.file.display(),
                    snapshot.info.version.as_deref().unwrap_or("(none)"),
                    snapshot.info.problems.len()
                );
                for problem in &snapshot.info.problems {
                    println!("  {problem}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: router.routing.file: {e}", conf_path.display());
                ExitCode::from(1)
            }
        };
    }

    let state = RouterState::new();
    let source = FileSource::new(
        config.routing.file.clone(),
        config.routing.watch_interval,
        state.clone(),
    );
    // Loaded before the listeners open, so the first request already has routing data.
    source.reload();
    let server = build_server(opt, server_conf, &config, source, state);
    server.run_forever()
}
