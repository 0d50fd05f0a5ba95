//! TLS metrics: handshakes by result, protocol version and ALPN; seconds to expiry and
//! reloads of the certificates. Registered once, in the registry `/metrics` serves.

use super::certs::CertificateInfo;
use prometheus::{
    register_int_counter, register_int_counter_vec, register_int_gauge_vec, IntCounter,
    IntCounterVec, IntGaugeVec,
};
use std::sync::LazyLock;

pub struct TlsMetrics {
    /// `cti_kaltura_tls_handshakes_total{result, version, alpn}`.
    pub handshakes: IntCounterVec,
    /// `cti_kaltura_tls_certificate_expiry_seconds{cert_file}`.
    pub expiry: IntGaugeVec,
    /// `cti_kaltura_tls_certificate_reloads_total{result}`.
    pub reloads: IntCounterVec,
    /// `cti_kaltura_tls_ticket_resumptions_total`: session tickets the router could decrypt,
    /// i.e. handshakes resumed from a ticket.
    pub ticket_resumptions: IntCounter,
}

/// How a handshake ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeResult {
    Ok,
    Failed,
    Timeout,
}

impl TlsMetrics {
    pub fn count_handshake(&self, result: HandshakeResult, version: &str, alpn: &str) {
        let result = match result {
            HandshakeResult::Ok => "ok",
            HandshakeResult::Failed => "failed",
            HandshakeResult::Timeout => "timeout",
        };
        self.handshakes
            .with_label_values(&[result, version, alpn])
            .inc();
    }

    /// Sets the expiry gauges to the certificates in service (and only to them).
    pub fn show_certificates(&self, certs: &[&CertificateInfo], now_unix: i64) {
        self.expiry.reset();
        for cert in certs {
            self.expiry
                .with_label_values(&[cert.cert_file.as_str()])
                .set(cert.not_after_unix - now_unix);
        }
    }
}

pub static TLS_METRICS: LazyLock<TlsMetrics> = LazyLock::new(|| TlsMetrics {
    handshakes: register_int_counter_vec!(
        "cti_kaltura_tls_handshakes_total",
        "TLS handshakes on the public TLS listeners, by result, protocol version and ALPN",
        &["result", "version", "alpn"]
    )
    .expect("metric registers once"),
    expiry: register_int_gauge_vec!(
        "cti_kaltura_tls_certificate_expiry_seconds",
        "Seconds until the certificate in service expires (negative: expired)",
        &["cert_file"]
    )
    .expect("metric registers once"),
    reloads: register_int_counter_vec!(
        "cti_kaltura_tls_certificate_reloads_total",
        "Certificate reloads, by result (ok: put in service; refused: the old ones stay)",
        &["result"]
    )
    .expect("metric registers once"),
    ticket_resumptions: register_int_counter!(
        "cti_kaltura_tls_ticket_resumptions_total",
        "TLS session tickets presented by clients and decrypted (handshakes resumed from a ticket)"
    )
    .expect("metric registers once"),
});
