//! The `router.tls` section: TLS listeners, their certificate files (the first is the
//! default), session resumption and the HTTP/2 limits. Only the shape is checked here; the
//! files themselves are read and checked by `crate::tls::certs` (at start-up and `-t`).

use super::yaml_walk::{Errors, Section};
use super::{parse_socket_addr, secs_in};
use serde_yaml::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// TLS listeners and certificates (`router.tls`).
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// TLS listeners (`router.tls.listen`); HTTP/2 and HTTP/1.1 by ALPN.
    pub listen: Vec<SocketAddr>,
    /// Certificates; the first is served to clients without SNI or with an unknown name.
    pub certificates: Vec<CertificateFiles>,
    /// How often the certificate files are checked for a change; `None` = only on SIGHUP.
    pub watch_interval: Option<Duration>,
    /// Time a client has to finish its TLS handshake.
    pub handshake_timeout: Duration,
    /// TLS 1.2 session IDs (and TLS 1.3 stateful resumption) kept in memory, shared by
    /// every worker thread.
    pub session_cache_size: usize,
    pub h2: H2Config,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            listen: Vec::new(),
            certificates: Vec::new(),
            watch_interval: Some(Duration::from_secs(10)),
            handshake_timeout: Duration::from_secs(10),
            session_cache_size: 20_480,
            h2: H2Config::default(),
        }
    }
}

/// One certificate (`router.tls.certificates[i]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// PEM chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key: PKCS#8, RSA (PKCS#1) or SEC1.
    pub key_file: PathBuf,
    /// A DER OCSP response stapled to handshakes (optional).
    pub ocsp_file: Option<PathBuf>,
}

/// HTTP/2 on TLS listeners (`router.tls.h2`), with its limits against abuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Config {
    /// Offer `h2` by ALPN.
    pub enabled: bool,
    /// Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// Largest decoded header list of a request (SETTINGS_MAX_HEADER_LIST_SIZE).
    pub max_header_list_bytes: u32,
    /// Streams the client reset before the router took them: more closes the connection
    /// (GOAWAY ENHANCE_YOUR_CALM), the rapid-reset attack (CVE-2023-44487).
    pub max_pending_reset_streams: usize,
    /// Streams the router had to reset for the client's errors: more closes the connection.
    pub max_local_error_resets: usize,
}

impl Default for H2Config {
    fn default() -> Self {
        H2Config {
            enabled: true,
            max_concurrent_streams: 100,
            max_header_list_bytes: 65_536,
            max_pending_reset_streams: 20,
            max_local_error_resets: 1024,
        }
    }
}

/// Reads `router.tls`.
pub(super) fn read_tls(mut tls: Section<'_>, errors: &mut Errors) -> TlsConfig {
    let d = TlsConfig::default();
    let listen = tls
        .list("listen", errors, parse_socket_addr)
        .unwrap_or_default();
    let errors_before = errors.0.len();
    let certificates = read_certificates(&mut tls, errors);
    // Not said again when the items were reported already.
    if !listen.is_empty() && certificates.is_empty() && errors.0.len() == errors_before {
        errors.push(
            tls.key_path("certificates"),
            "missing: TLS listeners need at least one certificate",
        );
    }
    let default_watch = d.watch_interval.map_or(0, |every| every.as_secs());
    let watch_secs = tls.u64_in("watch_interval_secs", default_watch, 0..=3600, errors);
    let handshake_timeout = secs_in(
        &mut tls,
        "handshake_timeout_secs",
        d.handshake_timeout,
        1..=300,
        errors,
    );
    let session_cache_size = tls.u64_in(
        "session_cache_size",
        d.session_cache_size as u64,
        0..=10_000_000,
        errors,
    ) as usize;
    let h2 = read_h2(tls.section("h2", errors), errors);
    tls.finish(errors);
    TlsConfig {
        listen,
        certificates,
        watch_interval: (watch_secs > 0).then(|| Duration::from_secs(watch_secs)),
        handshake_timeout,
        session_cache_size,
        h2,
    }
}

fn read_certificates(tls: &mut Section<'_>, errors: &mut Errors) -> Vec<CertificateFiles> {
    let path = tls.key_path("certificates");
    let items = match tls.value("certificates") {
        None => return Vec::new(),
        Some(Value::Sequence(items)) => items,
        Some(_) => {
            errors.push(path, "expected a list of {cert_file, key_file}");
            return Vec::new();
        }
    };
    let mut certificates = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut cert = Section::new(format!("{path}[{i}]"), Some(item), errors);
        let mut file = |cert: &mut Section<'_>, key: &'static str, required: bool| match cert
            .string(key, errors)
        {
            Some(f) if !f.trim().is_empty() => Some(PathBuf::from(f)),
            Some(_) => {
                errors.push(cert.key_path(key), "must be a path");
                None
            }
            None if required => {
                errors.push(cert.key_path(key), "missing: a PEM file");
                None
            }
            None => None,
        };
        let cert_file = file(&mut cert, "cert_file", true);
        let key_file = file(&mut cert, "key_file", true);
        let ocsp_file = file(&mut cert, "ocsp_file", false);
        cert.finish(errors);
        if let (Some(cert_file), Some(key_file)) = (cert_file, key_file) {
            certificates.push(CertificateFiles {
                cert_file,
                key_file,
                ocsp_file,
            });
        }
    }
    certificates
}

fn read_h2(mut h2: Section<'_>, errors: &mut Errors) -> H2Config {
    let d = H2Config::default();
    let config = H2Config {
        enabled: h2.bool("enabled", d.enabled, errors),
        max_concurrent_streams: h2.u64_in(
            "max_concurrent_streams",
            d.max_concurrent_streams as u64,
            1..=10_000,
            errors,
        ) as u32,
        max_header_list_bytes: h2.u64_in(
            "max_header_list_bytes",
            d.max_header_list_bytes as u64,
            1024..=1_048_576,
            errors,
        ) as u32,
        max_pending_reset_streams: h2.u64_in(
            "max_pending_reset_streams",
            d.max_pending_reset_streams as u64,
            1..=10_000,
            errors,
        ) as usize,
        max_local_error_resets: h2.u64_in(
            "max_local_error_resets",
            d.max_local_error_resets as u64,
            1..=100_000,
            errors,
        ) as usize,
    };
    h2.finish(errors);
    config
}
