//! CtiKaltura: the request router of an IPTV/OTT CDN. It finds a player's network, picks a
//! healthy edge of that network's region by weight and answers with a redirect to it.

pub mod admin_api;
pub mod config;
pub mod health;
pub mod health_checker;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod routing;
pub mod server;
pub mod settings;
pub mod snapshot;
pub mod sources;
pub mod startup;
pub mod state;
pub mod stream_health;
pub mod stream_prober;
pub mod streaming;
pub mod tls;
pub mod vocab;
