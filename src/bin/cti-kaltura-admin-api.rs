//! `cti-kaltura-admin-api`: the admin API service. Wiring only: options, config, run.

use clap::Parser;
use cti_kaltura::admin_api::{self, config::ApiConfig};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cti-kaltura-admin-api",
    version,
    about = "Serves CtiKaltura routing snapshots from the original admin's PostgreSQL database"
)]
struct Cli {
    /// The configuration file (YAML).
    #[arg(
        short = 'c',
        long = "conf",
        default_value = "/etc/cti-kaltura/admin-api.yaml"
    )]
    config: PathBuf,
    /// Check the configuration file and exit (0 when it is valid).
    #[arg(short = 't', long = "test")]
    test: bool,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let config = match ApiConfig::load(&cli.config) {
        Ok(config) => config,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{}: {e}", cli.config.display());
            }
            return ExitCode::from(1);
        }
    };
    if cli.test {
        println!("{}: configuration OK", cli.config.display());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            result = admin_api::run(config) => result,
            _ = shutdown_signal() => {
                log::info!("shutting down");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cti-kaltura-admin-api: {e}");
            ExitCode::from(2)
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
