//! The rustls server configuration of the TLS listeners: TLS 1.3 and 1.2 only with the
//! *aws-lc-rs* provider's suites (all AEAD with ECDHE), ALPN `h2` then `http/1.1`, session
//! resumption by tickets (keys rotated every 6 hours) and by a server-side session cache,
//! both shared by every worker thread. Certificates come from the SNI resolver, so a
//! reload swaps them without touching this configuration (tickets stay valid).

use super::certs::provider;
use super::metrics::TLS_METRICS;
use super::resolver::SniResolver;
use crate::config::TlsConfig;
use rustls::server::{ProducesTickets, ServerSessionMemoryCache};
use rustls::ServerConfig;
use std::sync::Arc;

/// ALPN identifiers, in the server's order of preference.
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// rustls's rotating ticketer, counting the tickets it takes back (resumptions).
#[derive(Debug)]
struct CountingTicketer(Arc<dyn ProducesTickets>);

impl ProducesTickets for CountingTicketer {
    fn enabled(&self) -> bool {
        self.0.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.0.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.0.encrypt(plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let plain = self.0.decrypt(cipher);
        if plain.is_some() {
            TLS_METRICS.ticket_resumptions.inc();
        }
        plain
    }
}

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
    let ticketer =
        rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| format!("session tickets: {e}"))?;
    config.ticketer = Arc::new(CountingTicketer(ticketer));
    // No 0-RTT: a replayed early request would be routed twice (harmless for a redirect, but
    // not for every proxied request).
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}
