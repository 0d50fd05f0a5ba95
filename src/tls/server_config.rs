//! The rustls server configuration of the TLS listeners: TLS 1.3 and 1.2 only with the
//! *ring* provider's suites (all AEAD with ECDHE), ALPN `h2` then `http/1.1`, session
//! resumption by tickets (keys rotated every 6 hours) and by a server-side session cache,
//! both shared by every worker thread. Certificates come from the SNI resolver, so a
//! reload swaps them without touching this configuration (tickets stay valid).

use super::certs::provider;
use super::resolver::SniResolver;
use crate::config::TlsConfig;
use rustls::server::ServerSessionMemoryCache;
use rustls::ServerConfig;
use std::sync::Arc;

/// ALPN identifiers, in the server's order of preference.
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Builds the server configuration around `resolver`.
pub fn build(resolver: Arc<SniResolver>, tls: &TlsConfig) -> Result<Arc<ServerConfig>, String> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = if tls.h2.enabled {
        vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()]
    } else {
        vec![ALPN_HTTP11.to_vec()]
    };
    if tls.session_cache_size > 0 {
        config.session_storage = ServerSessionMemoryCache::new(tls.session_cache_size);
    } else {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    }
    config.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| format!("session tickets: {e}"))?;
    // No 0-RTT: a replayed early request would be routed twice (harmless for a redirect, but
    // not for every proxied request).
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}
