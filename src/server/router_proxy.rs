//! The thin Pingora adapter: per request, load the snapshot, call the pure routing core and
//! turn its decision into an HTTP answer. Redirects keep the connection alive.

use crate::metrics::{kind_label, outcome_label, METRICS, OUTCOMES};
use crate::routing::{decide, Outcome, RequestFacts, RoutingPolicy};
use crate::state::RouterState;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

pub const BODY_NOT_FOUND: &str = "Server not found";
pub const BODY_INVALID: &str = "Request invalid";
pub const BODY_METHOD: &str = "Method not allowed";
pub const BODY_UNAVAILABLE: &str = "No routing data loaded yet";
const CACHE_CONTROL: &str = "max-age=0, private, must-revalidate";

pub struct RouterProxy {
    pub state: Arc<RouterState>,
    pub policy: RoutingPolicy,
    pub keepalive_timeout_secs: u64,
}

/// What `logging()` needs to know about the answer.
#[derive(Default)]
pub struct RequestCtx {
    kind: usize,
    outcome: usize,
}

/// Status and body of each non-redirect outcome.
fn error_answer(outcome: &Outcome) -> (u16, &'static str) {
    match outcome {
        Outcome::NotFound(_) => (404, BODY_NOT_FOUND),
        Outcome::BadRequest(_) => (400, BODY_INVALID),
        Outcome::MethodNotAllowed => (405, BODY_METHOD),
        Outcome::NoSnapshot => (503, BODY_UNAVAILABLE),
        Outcome::Redirect { .. } => (500, ""),
    }
}

async fn write_redirect(session: &mut Session, location: String) -> Result<()> {
    let mut resp = ResponseHeader::build(302, Some(3))?;
    resp.insert_header("Location", location)?;
    resp.insert_header("Content-Length", "0")?;
    resp.insert_header("Cache-Control", CACHE_CONTROL)?;
    session.write_response_header(Box::new(resp), true).await
}

async fn write_error(session: &mut Session, outcome: &Outcome, is_head: bool) -> Result<()> {
    let (status, body) = error_answer(outcome);
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header("Content-Type", "text/plain")?;
    resp.insert_header("Content-Length", body.len().to_string())?;
    match outcome {
        Outcome::MethodNotAllowed => resp.insert_header("Allow", "GET, HEAD")?,
        Outcome::NoSnapshot => resp.insert_header("Retry-After", "5")?,
        _ => {}
    }
    if is_head {
        return session.write_response_header(Box::new(resp), true).await;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(Bytes::from_static(body.as_bytes())), true)
        .await
}

#[async_trait]
impl ProxyHttp for RouterProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        session.set_pipelining_enabled(true);
        session.set_keepalive(Some(self.keepalive_timeout_secs));
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        let req = session.req_header();
        let is_head = req.method == http::Method::HEAD;
        let decision = {
            let snapshot = self.state.snapshot_guard();
            let facts = RequestFacts {
                method: &req.method,
                path: req.uri.path(),
                query: req.uri.query(),
                peer,
                x_real_ip: req.headers.get("x-real-ip").map(|v| v.as_bytes()),
                random: fastrand::u64(..),
            };
            decide(snapshot.as_deref(), &self.policy, &facts)
        };
        ctx.kind = kind_label(decision.kind);
        ctx.outcome = outcome_label(&decision.outcome);
        match decision.outcome {
            Outcome::Redirect { location, .. } => write_redirect(session, location).await?,
            other => write_error(session, &other, is_head).await?,
        }
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        // Every request is answered in request_filter; proxy mode comes with its own issue.
        Error::e_explain(
            ErrorType::InternalError,
            "the router answers every request itself",
        )
    }

    async fn logging(
        &self,
        _session: &mut Session,
        error: Option<&pingora::Error>,
        ctx: &mut RequestCtx,
    ) {
        let outcome = if error.is_some() && ctx.outcome == 0 {
            OUTCOMES.len() - 1
        } else {
            ctx.outcome
        };
        METRICS.count_request(ctx.kind, outcome);
    }
}
