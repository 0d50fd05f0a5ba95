//! Serving TLS on the public listeners: certificates from PEM files chosen by SNI (the first
//! is the default), the rustls server configuration (versions, ALPN, session resumption),
//! reloads that keep the certificates in service when the new files are bad, and the TLS
//! metrics.

pub mod certs;
pub mod metrics;
pub mod reload;
pub mod resolver;
pub mod server_config;

use crate::config::{CertificateFiles, TlsConfig};
use pingora::listeners::tls::Acceptor;
use resolver::{CertSet, SniResolver};
use std::sync::Arc;

/// The TLS side of the public listeners: the acceptor every handshake uses and the resolver a
/// reload swaps certificates in.
pub struct TlsState {
    pub acceptor: Acceptor,
    pub resolver: Arc<SniResolver>,
    pub files: Vec<CertificateFiles>,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsState")
            .field("files", &self.files)
            .finish()
    }
}

impl TlsState {
    /// Loads the configured certificates and builds the acceptor; the problems, by key path,
    /// when a file is bad.
    pub fn new(config: &TlsConfig) -> Result<Arc<TlsState>, Vec<(String, String)>> {
        let loaded = certs::load_all(&config.certificates)?;
        if loaded.is_empty() {
            return Err(vec![(
                "router.tls.certificates".to_string(),
                "missing: TLS listeners need at least one certificate".to_string(),
            )]);
        }
        let resolver = Arc::new(SniResolver::new(CertSet::new(loaded)));
        let server_config = server_config::build(Arc::clone(&resolver), config)
            .map_err(|e| vec![("router.tls".to_string(), e)])?;
        let state = TlsState {
            acceptor: Acceptor::from_server_config(server_config),
            resolver,
            files: config.certificates.clone(),
        };
        state.publish_expiry();
        Ok(Arc::new(state))
    }

    /// Sets the expiry gauges from the certificates in service.
    pub fn publish_expiry(&self) {
        let set = self.resolver.current();
        let infos: Vec<_> = set.certs.iter().map(|c| &c.info).collect();
        metrics::TLS_METRICS.show_certificates(&infos, unix_now());
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `GET /debug/tls`: the certificates in service, the first being the default.
pub fn debug_json(tls: Option<&TlsState>) -> serde_json::Value {
    let Some(tls) = tls else {
        return serde_json::json!({"enabled": false, "certificates": []});
    };
    let set = tls.resolver.current();
    let now = unix_now();
    let certificates: Vec<_> = set
        .certs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let info = &c.info;
            serde_json::json!({
                "cert_file": info.cert_file,
                "default": i == 0,
                "subject": info.subject,
                "names": info.names,
                "key_type": info.key_type,
                "not_after_unix": info.not_after_unix,
                "seconds_to_expiry": info.not_after_unix - now,
                "ocsp_stapled": info.ocsp,
            })
        })
        .collect();
    serde_json::json!({"enabled": true, "certificates": certificates})
}
