//! A connection on a TLS listener: the handshake (under `router.tls.handshake_timeout_secs`),
//! then HTTP/1.1 on the same fast loop as plain connections, or HTTP/2 (chosen by ALPN) on
//! Pingora's h2 server, whose requests reach the same pipeline through the proxy adapter.

use super::{into_l4_stream, OpenConnection, RouterApp, Served};
use crate::server::public::coalesced_writes::CoalescedWrites;
use crate::server::public::lazy_tcp::LazyTcp;
use crate::snapshot::canonical_ip;
use crate::tls::metrics::{HandshakeResult, TLS_METRICS};
use crate::tls::TlsState;
use pingora::apps::ServerApp;
use pingora::protocols::{Ssl, Stream, ALPN};
use pingora::server::ShutdownWatch;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The ALPN label of a handshake's metrics.
fn alpn_label(alpn: Option<&ALPN>) -> &'static str {
    match alpn {
        Some(ALPN::H2) => "h2",
        Some(ALPN::H1) => "http/1.1",
        Some(_) => "other",
        None => "none",
    }
}

impl RouterApp {
    /// Serves one connection accepted on a TLS listener until it ends.
    pub async fn serve_tls_connection(
        &self,
        tcp: std::net::TcpStream,
        peer: SocketAddr,
        tls: &Arc<TlsState>,
        shutdown: &ShutdownWatch,
    ) {
        let peer_ip = canonical_ip(peer.ip());
        let Ok(_slot) = self.admit(peer_ip) else {
            return;
        };
        let _open = OpenConnection::new();
        let Some(l4) = into_l4_stream(LazyTcp::Plain(tcp), peer) else {
            return;
        };
        let handshake_timeout = self.settings.load().config.tls.handshake_timeout;
        let handshake = tls.acceptor.tls_handshake(l4);
        let tls_stream = match pingora_timeout::timeout(handshake_timeout, handshake).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                TLS_METRICS.count_handshake(HandshakeResult::Failed, "unknown", "none");
                log::debug!("TLS handshake with {peer} failed: {e}");
                return;
            }
            Err(_) => {
                TLS_METRICS.count_handshake(HandshakeResult::Timeout, "unknown", "none");
                return;
            }
        };
        let alpn = tls_stream.selected_alpn_proto();
        let version = tls_stream
            .get_ssl_digest()
            .map(|d| d.version.to_string())
            .unwrap_or_default();
        TLS_METRICS.count_handshake(HandshakeResult::Ok, &version, alpn_label(alpn.as_ref()));
        if alpn == Some(ALPN::H2) {
            // Pingora's h2 server: the limits are the proxy's `h2_options`, and every stream
            // goes through the proxy adapter's `request_filter`, hence the same pipeline.
            ServerApp::process_new(&self.proxy, Box::new(tls_stream), shutdown).await;
            return;
        }
        // HTTP/1: a response head and a small body in one TLS write.
        let mut stream: Stream = Box::new(CoalescedWrites::new(tls_stream));
        // The first request head is due within the header timeout of the handshake's end.
        let mut conn = self.new_conn(Instant::now(), true);
        let Served::Delegate(handover) =
            self.serve(&mut stream, &mut conn, peer_ip, shutdown).await
        else {
            return;
        };
        self.serve_handed_over(stream, &mut conn, handover, peer_ip, shutdown)
            .await;
    }
}
