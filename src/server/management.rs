//! The management listener: `/healthz` for load balancers, `/snapshot` describing the routing
//! data in service, `/metrics` for Prometheus.

use crate::state::RouterState;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// How many quarantine problems `/snapshot` lists.
const PROBLEMS_SHOWN: usize = 200;

pub struct Management {
    pub state: Arc<RouterState>,
}

fn answer(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .header("Content-Length", body.len())
        .body(body)
        .expect("static response parts are valid")
}

impl Management {
    fn healthz(&self) -> Response<Vec<u8>> {
        match self.state.snapshot() {
            Some(_) => answer(200, "text/plain", b"ok\n".to_vec()),
            None => answer(503, "text/plain", b"no routing snapshot loaded\n".to_vec()),
        }
    }

    fn snapshot(&self) -> Response<Vec<u8>> {
        let Some(snapshot) = self.state.snapshot() else {
            return answer(503, "text/plain", b"no routing snapshot loaded\n".to_vec());
        };
        let info = &snapshot.info;
        let c = &info.counts;
        let body = serde_json::json!({
            "version": info.version,
            "source": info.source,
            "loaded_at_unix": info.loaded_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "counts": {
                "regions": c.regions, "subnets": c.subnets, "server_groups": c.server_groups,
                "servers": c.servers, "linear_channels": c.linear_channels, "tv_streams": c.tv_streams,
                "programs": c.programs, "program_records": c.program_records,
            },
            "problem_count": info.problems.len(),
            "problems": info.problems.iter().take(PROBLEMS_SHOWN).map(|p| p.to_string()).collect::<Vec<_>>(),
        });
        answer(
            200,
            "application/json",
            serde_json::to_vec_pretty(&body).unwrap_or_default(),
        )
    }

    fn metrics(&self) -> Response<Vec<u8>> {
        use prometheus::Encoder;
        let encoder = prometheus::TextEncoder::new();
        let mut body = Vec::new();
        match encoder.encode(&prometheus::gather(), &mut body) {
            Ok(()) => answer(200, encoder.format_type(), body),
            Err(e) => answer(
                500,
                "text/plain",
                format!("cannot encode metrics: {e}\n").into_bytes(),
            ),
        }
    }
}

#[async_trait]
impl ServeHttp for Management {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        if req.method != http::Method::GET {
            return answer(405, "text/plain", b"use GET\n".to_vec());
        }
        match req.uri.path() {
            "/healthz" => self.healthz(),
            "/snapshot" => self.snapshot(),
            "/metrics" => self.metrics(),
            _ => answer(
                404,
                "text/plain",
                b"endpoints: /healthz /snapshot /metrics\n".to_vec(),
            ),
        }
    }
}
