//! The thin Pingora adapter: a request decided by the pipeline (on the router's own loop, or
//! here when the framework reads it first) is answered, or (proxy mode) sent to the chosen edge
//! with one retry on another edge of the region if the connection fails.

use super::edge_failover;
use super::edge_resolver::EdgeResolver;
use super::hop_by_hop;
use crate::metrics::{OutcomeLabel, METRICS};
use crate::server::answer::{Answer, FieldValue, HeadSize, TextAnswer, BODY_BAD_GATEWAY};
use crate::server::pipeline::{self, Action, Handled, Incoming, ProxyTarget, Record};
use crate::settings::SharedSettings;
use crate::state::RouterState;
use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderValue;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::ErrorSource;
use std::cell::RefCell;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

pub struct RouterProxy {
    pub state: Arc<RouterState>,
    pub settings: SharedSettings,
    /// Addresses of edges without an `ip`.
    pub resolver: EdgeResolver,
    /// Connections to edges for the manifests the router fetches itself.
    pub manifest_connector: Connector,
}

/// A request between `request_filter` and `logging`.
pub struct RequestCtx {
    started: Instant,
    /// Set once the request is decided.
    pub(super) record: Option<Record>,
    pub(super) proxy: Option<ProxyTarget>,
    /// Stream health (issue 16): the live playlist being fetched, read on its way through.
    pub(super) playlist: Option<super::stream_watch::PlaylistWatch>,
}

tokio::task_local! {
    /// The decision of a request the router's own loop hands to the framework.
    static DECIDED: RefCell<Option<Handled>>;
}

/// Runs the framework on one request that is decided already (`handled`), so that it is not
/// decided again.
pub async fn with_decision<F: Future>(handled: Handled, process: F) -> F::Output {
    DECIDED.scope(RefCell::new(Some(handled)), process).await
}

fn take_decision() -> Option<Handled> {
    DECIDED
        .try_with(|decided| decided.borrow_mut().take())
        .ok()
        .flatten()
}

/// Writes an answer through the framework, from the same description as the router's own
/// HTTP/1 writer.
pub(super) async fn write_answer(session: &mut Session, answer: &Answer) -> Result<()> {
    let mut resp = ResponseHeader::build(answer.status(), Some(4))?;
    let mut fields = Ok(());
    answer.fields(|name, value| {
        let value = match value {
            FieldValue::Bytes(bytes) => HeaderValue::from_bytes(bytes)
                .or_err(ErrorType::InternalError, "answer header value"),
            FieldValue::Number(n) => Ok(HeaderValue::from(n)),
        };
        if fields.is_ok() {
            fields = value.and_then(|value| resp.insert_header(name, value));
        }
    });
    fields?;
    let body = answer.body();
    let head_only = session.req_header().method == http::Method::HEAD || body.is_empty();
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if head_only {
        return Ok(());
    }
    session
        .write_response_body(Some(Bytes::from_static(body.as_bytes())), true)
        .await
}

impl RouterProxy {
    /// Decides a request that reached the framework first.
    fn handle(&self, session: &Session, started: Instant) -> Handled {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        let req = session.req_header();
        let size = HeadSize {
            uri_bytes: req.raw_path().len(),
            header_count: req.headers.len(),
            header_bytes: req
                .headers
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len())
                .sum(),
        };
        let incoming = Incoming {
            method: &req.method,
            path: req.uri.path(),
            query: req.uri.query(),
            raw_target: req.raw_path(),
            peer,
            x_real_ip: req.headers.get("x-real-ip").map(|v| v.as_bytes()),
            size,
            secure: session.digest().is_some_and(|d| d.ssl_digest.is_some()),
        };
        pipeline::handle(&self.state, &self.settings.load(), &incoming, started)
    }

    /// A connection to the chosen edge failed (or its name did not resolve): counted against
    /// the edge, and retried once on another edge of the region.
    pub(super) fn connect_failed(&self, ctx: &mut RequestCtx, mut e: Box<Error>) -> Box<Error> {
        let Some(target) = ctx.proxy.as_mut() else {
            return e;
        };
        let settings = self.settings.load();
        if edge_failover::connect_failed(&self.state, &settings, target, ctx.record.as_mut(), &e) {
            e.set_retry(true);
        }
        e
    }

    /// The chosen edge as a peer (its address resolved when it has no `ip`), with the proxy
    /// timeouts; a name that does not resolve is a failed connection.
    pub(super) async fn edge_peer(&self, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
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
            record: None,
            proxy: None,
            playlist: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let handled = match take_decision() {
            Some(handled) => handled,
            None => self.handle(session, ctx.started),
        };
        let Handled { action, record } = handled;
        ctx.record = Some(record);
        match action {
            Action::Proxy(target) => {
                let fetched_here = target.manifest.is_some();
                if fetched_here {
                    // Stream health (issue 16): a live playlist the router fetches is read.
                    ctx.playlist =
                        super::stream_watch::PlaylistWatch::start(&self.settings.load(), &target);
                }
                ctx.proxy = Some(target);
                if fetched_here {
                    self.serve_manifest(session, ctx).await?;
                }
                Ok(fetched_here)
            }
            Action::Answer(answer) => {
                write_answer(session, &answer).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        self.edge_peer(ctx).await
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
        if let Some(record) = &ctx.record {
            METRICS.count_upstream_status(record.kind, response.status.as_u16());
        }
        hop_by_hop::strip(response);
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
        if let Some(record) = ctx.record.as_mut() {
            record.outcome = OutcomeLabel::Error;
        }
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
            if let Err(write_error) = write_answer(session, &Answer::Text(answer)).await {
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
        let record = ctx
            .record
            .take()
            .unwrap_or_else(|| Record::unrouted(ctx.started));
        // A redirect the framework could not finish writing counts as an error.
        let record = match record.outcome {
            OutcomeLabel::Redirect if error.is_some() => Record {
                outcome: OutcomeLabel::Error,
                ..record
            },
            _ => record,
        };
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        record.finish(status, &self.settings.load());
    }
}
