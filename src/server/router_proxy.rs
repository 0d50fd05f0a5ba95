//! The thin Pingora adapter: per request, load the snapshot, call the pure routing core and
//! turn its decision into HTTP — a redirect answered here, or (proxy mode) a request to the
//! chosen edge with one retry on another edge of the region if the connection fails.

use super::access_log::{self, AccessRecord};
use super::answer::{
    access_record, error_answer, over_limits, oversize_record, HeadSize, TextAnswer,
    BODY_BAD_GATEWAY, CACHE_CONTROL,
};
use super::edge_resolver::EdgeResolver;
use crate::config::Mode;
use crate::metrics::{kind_label, outcome_label, KINDS, METRICS, OUTCOME_ERROR, OUTCOME_PROXY};
use crate::routing::{decide, BadRequest, EdgeTarget, Outcome, RequestFacts};
use crate::settings::SharedSettings;
use crate::snapshot::{Selector, Snapshot};
use crate::state::RouterState;
use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::ErrorSource;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

pub struct RouterProxy {
    pub state: Arc<RouterState>,
    pub settings: SharedSettings,
    /// Addresses of edges without an `ip`.
    pub resolver: EdgeResolver,
}

/// A request being proxied: the snapshot it was routed on and where it goes.
pub struct ProxyTarget {
    snapshot: Arc<Snapshot>,
    edge_index: u32,
    region_index: u32,
    /// Path and query for the edge (what the redirect would have carried after the host).
    path_and_query: String,
    client_ip: IpAddr,
    retried: bool,
}

/// What `logging()` needs to know about the answer.
pub struct RequestCtx {
    started: Instant,
    kind: usize,
    outcome: usize,
    proxy: Option<ProxyTarget>,
    /// Only when the access log is on.
    access: Option<Box<AccessRecord>>,
}

async fn write_redirect(session: &mut Session, location: String) -> Result<()> {
    let mut resp = ResponseHeader::build(302, Some(3))?;
    resp.insert_header("Location", location)?;
    // Static values: no copy per answer.
    resp.insert_header("Content-Length", HeaderValue::from_static("0"))?;
    resp.insert_header("Cache-Control", HeaderValue::from_static(CACHE_CONTROL))?;
    session.write_response_header(Box::new(resp), true).await
}

async fn write_text(session: &mut Session, answer: TextAnswer) -> Result<()> {
    let TextAnswer {
        status,
        body,
        extra,
    } = answer;
    let is_head = session.req_header().method == http::Method::HEAD;
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header("Content-Type", HeaderValue::from_static("text/plain"))?;
    resp.insert_header("Content-Length", HeaderValue::from(body.len()))?;
    if let Some((name, value)) = extra {
        resp.insert_header(name, HeaderValue::from_static(value))?;
    }
    if is_head {
        return session.write_response_header(Box::new(resp), true).await;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(Bytes::from_static(body.as_bytes())), true)
        .await
}

impl RouterProxy {
    /// A connection to the chosen edge failed (or its name did not resolve): counted against
    /// the edge, and retried once on another edge of the region.
    fn connect_failed(&self, ctx: &mut RequestCtx, mut e: Box<Error>) -> Box<Error> {
        let Some(target) = ctx.proxy.as_mut() else {
            return e;
        };
        self.passive_failure(target);
        if target.retried {
            return e;
        }
        let selector = Selector::Random(fastrand::u64(..));
        let other = target.snapshot.pick_in_region(
            target.region_index,
            selector,
            Some(target.edge_index),
            self.settings.load().policy.panic_mode,
        );
        if let Some((edge_index, _)) = other {
            let (from, to) = (
                &target.snapshot.servers[target.edge_index as usize],
                &target.snapshot.servers[edge_index as usize],
            );
            log::warn!(
                "proxy: cannot connect to edge {} ({e}); retrying on {}",
                from.domain_name,
                to.domain_name
            );
            METRICS.upstream_retries.inc();
            if let Some(record) = ctx.access.as_mut() {
                record.edge = Some(to.domain_name.to_string());
                record.reason = "proxy_retried";
            }
            target.edge_index = edge_index;
            target.retried = true;
            e.set_retry(true);
        }
        e
    }

    /// Counts a failed connection against the edge, like a failed health check.
    fn passive_failure(&self, target: &ProxyTarget) {
        METRICS.upstream_connect_failures.inc();
        let settings = self.settings.load();
        let health = &settings.config.health;
        if !health.enabled {
            return;
        }
        let server = &target.snapshot.servers[target.edge_index as usize];
        if !crate::health_checker::is_checked(server) {
            // Nothing would ever bring an unchecked edge back up.
            return;
        }
        let registry = self.state.health();
        if registry.observe(server.id, false, health.rise, health.fall) == Some(false) {
            server.health.set_up(false);
            log::warn!(
                "edge {} (id {}) is DOWN after failed proxy connections",
                server.domain_name,
                server.id
            );
        }
    }
}

#[async_trait]
impl ProxyHttp for RouterProxy {
    type CTX = RequestCtx;

    /// No downstream modules: the router never compresses (redirects have no body, proxied
    /// video is already compressed), and each module costs work on every request.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            kind: KINDS.len() - 1,
            outcome: 0,
            proxy: None,
            access: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        let req = session.req_header();
        let settings = self.settings.load();
        let size = HeadSize {
            uri_bytes: req.raw_path().len(),
            header_count: req.headers.len(),
            header_bytes: req
                .headers
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len())
                .sum(),
        };
        if let Some(answer) = over_limits(size, &settings.config.http) {
            ctx.outcome = outcome_label(&Outcome::BadRequest(BadRequest::Path));
            if settings.config.access_log.enabled {
                ctx.access = Some(oversize_record(
                    peer,
                    req.method.as_str(),
                    req.raw_path(),
                    answer.status,
                ));
            }
            drop(settings);
            write_text(session, answer).await?;
            return Ok(true);
        }
        let policy = &settings.policy;
        let snapshot = self.state.snapshot_guard();
        let facts = RequestFacts {
            method: &req.method,
            path: req.uri.path(),
            query: req.uri.query(),
            peer,
            x_real_ip: req.headers.get("x-real-ip").map(|v| v.as_bytes()),
            random: fastrand::u64(..),
        };
        let decision = decide(snapshot.as_deref(), policy, &facts);
        ctx.kind = kind_label(decision.kind);
        ctx.outcome = outcome_label(&decision.outcome);
        let proxied = decision
            .kind
            .is_some_and(|k| policy.routes.get(k).mode == Mode::Proxy);
        if settings.config.access_log.enabled {
            ctx.access = Some(access_record(
                &decision,
                snapshot.as_deref(),
                peer,
                req.method.as_str(),
                req.uri.path(),
                proxied,
            ));
        }
        match decision.outcome {
            Outcome::Redirect { location, .. } if proxied => {
                let (Some(snapshot), Some(client_ip), Some(target)) =
                    (snapshot.as_ref(), decision.client_ip, decision.target)
                else {
                    return Error::e_explain(
                        ErrorType::InternalError,
                        "redirect without a snapshot",
                    );
                };
                let EdgeTarget {
                    path_start,
                    edge_index,
                    region_index,
                    ..
                } = target;
                ctx.outcome = OUTCOME_PROXY;
                ctx.proxy = Some(ProxyTarget {
                    snapshot: Arc::clone(snapshot),
                    edge_index,
                    region_index,
                    path_and_query: location[path_start..].to_string(),
                    client_ip,
                    retried: false,
                });
                return Ok(false);
            }
            Outcome::Redirect { location, .. } => {
                drop((snapshot, settings));
                write_redirect(session, location).await?
            }
            other => {
                drop((snapshot, settings));
                write_text(session, error_answer(&other)).await?
            }
        }
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(target) = ctx.proxy.as_ref() else {
            return Error::e_explain(ErrorType::InternalError, "no edge chosen for proxying");
        };
        let edge = &target.snapshot.servers[target.edge_index as usize];
        let settings = self.settings.load();
        let proxy = &settings.config.proxy;
        let tls = edge.port == 443;
        let sni = edge.domain_name.to_string();
        let addr = match edge.ip {
            Some(ip) => SocketAddr::new(ip, edge.port),
            None => {
                let resolved = self
                    .resolver
                    .resolve(&edge.domain_name, edge.port, proxy.connect_timeout)
                    .await;
                match resolved {
                    Some(addr) => addr,
                    None => {
                        let e = Error::explain(
                            ErrorType::ConnectError,
                            format!("edge {} does not resolve", edge.domain_name),
                        );
                        drop(settings);
                        return Err(self.connect_failed(ctx, e));
                    }
                }
            }
        };
        let mut peer = HttpPeer::new(addr, tls, sni);
        peer.options.connection_timeout = Some(proxy.connect_timeout);
        peer.options.read_timeout = Some(proxy.read_timeout);
        peer.options.write_timeout = Some(proxy.write_timeout);
        peer.options.verify_cert = proxy.tls_verify;
        peer.options.verify_hostname = proxy.tls_verify;
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(target) = ctx.proxy.as_ref() else {
            return Ok(());
        };
        let edge = &target.snapshot.servers[target.edge_index as usize];
        let uri: http::Uri = target
            .path_and_query
            .parse()
            .map_err(|e| Error::explain(ErrorType::InternalError, format!("edge path: {e}")))?;
        upstream_request.set_uri(uri);
        upstream_request.insert_header("Host", &*edge.domain_name)?;
        let client = target.client_ip.to_string();
        upstream_request.insert_header("X-Forwarded-For", &client)?;
        upstream_request.insert_header("X-Real-IP", &client)?;
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        METRICS.count_upstream_status(ctx.kind, response.status.as_u16());
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        e: Box<Error>,
    ) -> Box<Error> {
        self.connect_failed(ctx, e)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        ctx.outcome = OUTCOME_ERROR;
        let code = match e.esource() {
            ErrorSource::Downstream => 0,
            _ => 502,
        };
        if code != 0 && session.response_written().is_none() {
            let answer = TextAnswer {
                status: 502,
                body: BODY_BAD_GATEWAY,
                extra: None,
            };
            if let Err(write_error) = write_text(session, answer).await {
                log::debug!("cannot send 502 to the client: {write_error}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        // Players abandon video requests all the time: not an error worth a log line.
        *error.esource() == ErrorSource::Downstream
    }

    async fn logging(
        &self,
        session: &mut Session,
        error: Option<&pingora::Error>,
        ctx: &mut RequestCtx,
    ) {
        let outcome = if error.is_some() && ctx.outcome == 0 {
            OUTCOME_ERROR
        } else {
            ctx.outcome
        };
        let took = ctx.started.elapsed();
        METRICS.count_request(ctx.kind, outcome);
        METRICS.observe_duration(ctx.kind, took);
        if let Some(record) = &ctx.access {
            let status = session.response_written().map_or(0, |r| r.status.as_u16());
            access_log::write(
                record,
                status,
                took,
                self.settings.load().config.access_log.json,
            );
        }
    }
}
