//! The management listener: `/healthz` (alive), `/readyz` (a snapshot is loaded),
//! `/debug/snapshot`, `/debug/streams`, `/metrics`, and `POST /admin/refresh[?force=true]`.

use crate::metrics::METRICS;
use crate::settings::SharedSettings;
use crate::snapshot::ServerType;
use crate::sources::{RefreshOutcome, RefreshRequest, RefreshSender};
use crate::state::RouterState;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// How many quarantine problems `/debug/snapshot` lists.
const PROBLEMS_SHOWN: usize = 200;

pub struct Management {
    pub state: Arc<RouterState>,
    pub refresh: RefreshSender,
    /// Token, policy and timeouts in force.
    pub settings: SharedSettings,
    /// The TLS listeners' certificates, when there are TLS listeners.
    pub tls: Option<Arc<crate::tls::TlsState>>,
}

/// How long `POST /admin/refresh` waits for the fetch: the admin timeout plus time to compile.
fn refresh_wait(config: &crate::config::Config) -> Duration {
    let compile = Duration::from_secs(30);
    config
        .routing
        .admin_api
        .as_ref()
        .map_or(compile, |api| api.timeout + compile)
}

/// The decoded `key=value` pairs of a query string.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let Some(query) = query else {
        return Vec::new();
    };
    match reqwest::Url::parse(&format!("http://management/?{query}")) {
        Ok(url) => url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn answer(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .header("Content-Length", body.len())
        .body(body)
        .expect("static response parts are valid")
}

fn text(status: u16, body: &str) -> Response<Vec<u8>> {
    answer(status, "text/plain", format!("{body}\n").into_bytes())
}

fn json(status: u16, value: &serde_json::Value) -> Response<Vec<u8>> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    answer(status, "application/json", body)
}

/// Compares without an early exit, so response timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Management {
    fn readyz(&self) -> Response<Vec<u8>> {
        match self.state.snapshot() {
            Some(_) => text(200, "ready"),
            None => text(503, "not ready: no routing snapshot loaded"),
        }
    }

    fn debug_snapshot(&self) -> Response<Vec<u8>> {
        let refused = self.state.last_refused().map(|r| {
            serde_json::json!({
                "version": r.version, "source": r.source, "at_unix": r.at_unix, "reasons": r.reasons,
            })
        });
        let Some(snapshot) = self.state.snapshot() else {
            return json(
                503,
                &serde_json::json!({"loaded": false, "last_refused": refused}),
            );
        };
        let info = &snapshot.info;
        let c = &info.counts;
        json(
            200,
            &serde_json::json!({
                "loaded": true,
                "version": info.version,
                "source": info.source,
                "loaded_at_unix": info.loaded_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                "age_seconds": self.state.age_secs(),
                "counts": c.by_kind().into_iter().map(|(k, n)| (k.to_string(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
                "problem_count": info.problems.len(),
                "problems": info.problems.iter().take(PROBLEMS_SHOWN).map(|p| p.to_string()).collect::<Vec<_>>(),
                "last_refused": refused,
            }),
        )
    }

    /// `GET /debug/route?ip=ADDR&path=PATH`: explains a decision without making one.
    fn debug_route(&self, query: Option<&str>) -> Response<Vec<u8>> {
        let pairs = query_pairs(query);
        let get = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let Some(ip) =
            get("ip").and_then(|v| crate::routing::client_ip::parse_x_real_ip(v.as_bytes()))
        else {
            return text(
                400,
                "usage: /debug/route?ip=ADDR&path=/btv/live/hls/ID (path URL-encoded)",
            );
        };
        let Some(full_path) = get("path") else {
            return text(
                400,
                "usage: /debug/route?ip=ADDR&path=/btv/live/hls/ID (path URL-encoded)",
            );
        };
        let (path, request_query) = match full_path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (full_path, None),
        };
        let Some(snapshot) = self.state.snapshot() else {
            return text(503, "no routing snapshot loaded");
        };
        let settings = self.settings.load();
        let stalled = settings
            .config
            .stream_health_on()
            .then(|| self.state.streams().overlay().view())
            .flatten();
        json(
            200,
            &crate::routing::explain::explain_with_streams(
                &snapshot,
                stalled.as_deref().map(|s| &**s),
                &settings.policy,
                ip,
                path,
                request_query,
            ),
        )
    }

    /// `GET /debug/streams`: the stalled (edge, live stream) pairs.
    fn debug_streams(&self) -> Response<Vec<u8>> {
        let streams = self.state.streams();
        let stalled: Vec<serde_json::Value> = streams
            .stalled()
            .into_iter()
            .map(|r| {
                serde_json::json!({
                    "edge_id": r.key.edge_id,
                    "edge": &*r.names.edge,
                    "stream_id": r.key.stream_id,
                    "path": &*r.names.path,
                    "cause": r.cause.as_str(),
                    "stalled_since_unix_ms": r.since_unix_ms,
                    "last_sequence": r.last_sequence,
                    "last_observed_unix_ms": r.last_observed_unix_ms,
                    "seen_by": match r.source {
                        crate::stream_health::Source::Probe => "probe",
                        crate::stream_health::Source::Passive => "proxied playlist",
                    },
                })
            })
            .collect();
        json(
            200,
            &serde_json::json!({
                "enabled": self.settings.load().config.stream_health_on(),
                "watched_pairs": streams.watched(),
                "stalled_pairs": stalled.len(),
                "stalled": stalled,
            }),
        )
    }

    /// Every edge with its admin state and what the health checker saw.
    fn debug_edges(&self) -> Response<Vec<u8>> {
        let Some(snapshot) = self.state.snapshot() else {
            return json(503, &serde_json::json!({"loaded": false, "edges": []}));
        };
        let edges: Vec<serde_json::Value> = snapshot
            .servers
            .iter()
            .filter(|s| s.server_type == ServerType::Edge)
            .map(|s| {
                let record = self.state.health().record(s.id);
                serde_json::json!({
                    "id": s.id,
                    "domain_name": &*s.domain_name,
                    "port": s.port,
                    "admin": {
                        "active": s.active, "availability": s.available, "weight": s.weight,
                        "healthcheck_enabled": s.healthcheck_enabled,
                        "healthcheck_path": s.healthcheck_path.as_deref(),
                    },
                    "health": {
                        "up": s.is_up(),
                        "last_result": record.last_result,
                        "last_check_unix_ms": record.last_check_unix_ms,
                        "last_duration_ms": record.last_duration_ms,
                        "consecutive_ok": record.state.ok_streak,
                        "consecutive_failed": record.state.fail_streak,
                    },
                })
            })
            .collect();
        json(200, &serde_json::json!({"loaded": true, "edges": edges}))
    }

    fn metrics(&self) -> Response<Vec<u8>> {
        use prometheus::Encoder;
        if let Some(age) = self.state.age_secs() {
            METRICS.snapshot_age.set(age as i64);
        }
        crate::metrics::STREAM_METRICS
            .stalled_pairs
            .set(self.state.streams().overlay().len() as i64);
        let encoder = prometheus::TextEncoder::new();
        let mut body = Vec::new();
        match encoder.encode(&prometheus::gather(), &mut body) {
            Ok(()) => answer(200, encoder.format_type(), body),
            Err(e) => text(500, &format!("cannot encode metrics: {e}")),
        }
    }

    async fn admin_refresh(&self, session: &ServerSession) -> Response<Vec<u8>> {
        let settings = self.settings.current();
        let config = &settings.config;
        if let Some(token) = &config.management.token {
            let given = session
                .req_header()
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token)
                .unwrap_or("");
            if !constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
                return text(401, "missing or wrong bearer token");
            }
        }
        let force = session
            .req_header()
            .uri
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "force=true" || kv == "force=1"));
        let (reply, outcome) = tokio::sync::oneshot::channel();
        if self
            .refresh
            .send(RefreshRequest { force, reply })
            .await
            .is_err()
        {
            return text(503, "the routing source is not running");
        }
        let outcome = match tokio::time::timeout(refresh_wait(config), outcome).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => return text(503, "the routing source stopped"),
            Err(_) => return text(504, "the refresh is still running; see /debug/snapshot"),
        };
        if let RefreshOutcome::Accepted { .. } = outcome {
            log::info!(
                "refresh via management endpoint accepted a new snapshot{}",
                if force { " (forced)" } else { "" }
            );
        }
        json(outcome.http_status(), &outcome.to_json())
    }
}

#[async_trait]
impl ServeHttp for Management {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_string();
        match (method.as_str(), path.as_str()) {
            ("GET", "/healthz") => text(200, "ok"),
            ("GET", "/readyz") => self.readyz(),
            ("GET", "/debug/snapshot") => self.debug_snapshot(),
            ("GET", "/debug/edges") => self.debug_edges(),
            ("GET", "/debug/route") => self.debug_route(session.req_header().uri.query()),
            ("GET", "/debug/streams") => self.debug_streams(),
            ("GET", "/debug/tls") => json(200, &crate::tls::debug_json(self.tls.as_deref())),
            ("GET", "/metrics") => self.metrics(),
            ("POST", "/admin/refresh") => self.admin_refresh(session).await,
            (
                _,
                "/healthz" | "/readyz" | "/debug/snapshot" | "/debug/edges" | "/debug/route" | "/metrics"
                | "/admin/refresh" | "/debug/streams" | "/debug/tls",
            ) => {
                text(405, "method not allowed")
            }
            _ => text(
                404,
                "endpoints: GET /healthz /readyz /debug/snapshot /debug/edges /debug/route?ip=&path= /debug/streams /debug/tls /metrics, POST /admin/refresh[?force=true]",
            ),
        }
    }
}
