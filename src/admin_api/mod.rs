//! `cti-kaltura-admin-api`: serves the routing snapshot contract (`docs/admin-api.md`) from
//! the original admin's PostgreSQL database, and tells long-polling routers of each change.
//! Arrows point down: http → hub ← follow → database → document.

pub mod config;
pub mod database;
pub mod document;
pub mod follow;
pub mod http;
pub mod hub;

use std::sync::Arc;

/// Binds the listener, starts following the database and serves until the process ends.
pub async fn run(config: config::ApiConfig) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    log::info!(
        "cti-kaltura-admin-api listening on {} (long-poll {})",
        listener.local_addr()?,
        if config.long_poll_max_wait.is_zero() {
            "off".to_string()
        } else {
            format!("up to {} s", config.long_poll_max_wait.as_secs())
        }
    );
    let hub = hub::Hub::new();
    tokio::spawn(follow::follow(config.database.clone(), Arc::clone(&hub)));
    let endpoint = http::Endpoint {
        token: config.token.clone(),
        long_poll_max_wait: config.long_poll_max_wait,
    };
    http::serve(listener, endpoint, hub).await;
    Ok(())
}
