//! The admin API's HTTP/1.1 endpoints on hyper 1: `GET /api/routing/snapshot` (ETag, 304,
//! gzip, bearer token, long-poll with `Prefer: wait=N`), `/healthz`, `/readyz`, `/metrics`.

use super::hub::{unix, Hub, Published};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub const SNAPSHOT_PATH: &str = "/api/routing/snapshot";
/// Sent with every snapshot answer by an API that long-polls: the longest wait it grants, in
/// seconds. A router sees it and starts asking with `Prefer: wait=N`.
pub const LONG_POLL_HEADER: &str = "cti-long-poll-max-wait";

/// What the endpoints need besides the hub.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub token: Option<String>,
    pub long_poll_max_wait: Duration,
}

/// Serves until the process ends.
pub async fn serve(listener: TcpListener, endpoint: Endpoint, hub: Arc<Hub>) {
    let endpoint = Arc::new(endpoint);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: wait a little instead of spinning.
                log::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (endpoint, hub) = (Arc::clone(&endpoint), Arc::clone(&hub));
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let (endpoint, hub) = (Arc::clone(&endpoint), Arc::clone(&hub));
                async move {
                    Ok::<_, Infallible>(
                        answer(
                            &endpoint,
                            &hub,
                            request.method(),
                            request.uri().path(),
                            request.headers(),
                        )
                        .await,
                    )
                }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.into())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// One request's answer; every path ends here, errors as short texts.
pub async fn answer(
    endpoint: &Endpoint,
    hub: &Hub,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Response<Full<Bytes>> {
    match path {
        "/healthz" => text(StatusCode::OK, "OK\n"),
        "/readyz" => readyz(hub),
        "/metrics" => metrics(hub),
        SNAPSHOT_PATH if method == Method::GET || method == Method::HEAD => {
            let response = snapshot(endpoint, hub, method, headers).await;
            hub.metrics
                .answers
                .with_label_values(&[response.status().as_str()])
                .inc();
            response
        }
        SNAPSHOT_PATH => {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn readyz(hub: &Hub) -> Response<Full<Bytes>> {
    let current = hub.current();
    match (current, hub.outage()) {
        (None, outage) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "no snapshot yet: {}\n",
                outage.map_or_else(|| "reading".into(), |o| o.error)
            ),
        ),
        (Some(p), Some(outage)) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "stale: database unreachable since {} ({}); still serving snapshot {} read at {}\n",
                unix(outage.since),
                outage.error,
                p.version,
                unix(p.built_at)
            ),
        ),
        (Some(p), None) => text(
            StatusCode::OK,
            format!(
                "ready: snapshot {} read at {}\n",
                p.version,
                unix(p.built_at)
            ),
        ),
    }
}

fn metrics(hub: &Hub) -> Response<Full<Bytes>> {
    use prometheus::Encoder;
    let mut out = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    if let Err(e) = encoder.encode(&hub.metrics.registry.gather(), &mut out) {
        return text(StatusCode::INTERNAL_SERVER_ERROR, format!("metrics: {e}\n"));
    }
    let mut response = Response::new(Full::new(Bytes::from(out)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// Whether `Authorization` carries `Bearer TOKEN` (scheme in any case), compared in constant
/// time.
pub fn authorized(token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(token) = token else { return true };
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, given)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The wait a `Prefer` header asks for (`Prefer: wait=25`, RFC 7240), if any.
pub fn preferred_wait(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .find_map(|pref| {
            let (name, value) = pref.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("wait") {
                return None;
            }
            value
                .trim()
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs)
        })
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                matches!(
                    p.trim().replace(' ', "").as_str(),
                    "q=0" | "q=0.0" | "q=0.00" | "q=0.000"
                )
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

async fn snapshot(
    endpoint: &Endpoint,
    hub: &Hub,
    method: &Method,
    headers: &HeaderMap,
) -> Response<Full<Bytes>> {
    if !authorized(endpoint.token.as_deref(), headers) {
        let mut response = text(StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let mut current = hub.current();
    let wait = preferred_wait(headers)
        .map(|w| w.min(endpoint.long_poll_max_wait))
        .unwrap_or_default();
    if let (Some(tag), false) = (if_none_match, wait.is_zero()) {
        if current.as_ref().is_some_and(|p| p.matches(tag)) {
            current = wait_for_change(hub, tag, wait).await;
        }
    }
    let Some(published) = current else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no snapshot read from the database yet\n",
        );
    };
    let gzip = accepts_gzip(headers);
    let mut response = if if_none_match.is_some_and(|tag| published.matches(tag)) {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        full_answer(hub, &published, gzip, method)
    };
    let h = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&published.etag(gzip)) {
        h.insert(header::ETAG, etag);
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if !endpoint.long_poll_max_wait.is_zero() {
        h.insert(
            LONG_POLL_HEADER,
            HeaderValue::from(endpoint.long_poll_max_wait.as_secs()),
        );
    }
    response
}

fn full_answer(
    hub: &Hub,
    published: &Published,
    gzip: bool,
    method: &Method,
) -> Response<Full<Bytes>> {
    let body = if gzip {
        published.gzip.clone()
    } else {
        published.body.clone()
    };
    let encoding = if gzip { "gzip" } else { "identity" };
    let length = body.len();
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        body
    };
    hub.metrics
        .sent_bytes
        .with_label_values(&[encoding])
        .inc_by(body.len() as u64);
    let mut response = Response::new(Full::new(body));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if method == Method::HEAD {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    response
}

/// Counts a held long-poll while it lives: a request dropped mid-wait (the router went away)
/// is uncounted too.
struct Waiting<'a>(&'a prometheus::IntGauge);

impl<'a> Waiting<'a> {
    fn new(gauge: &'a prometheus::IntGauge) -> Waiting<'a> {
        gauge.inc();
        Waiting(gauge)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Holds a long-poll until the document no longer matches `tag` or `wait` ends; the document
/// in service then.
async fn wait_for_change(hub: &Hub, tag: &str, wait: Duration) -> Option<Arc<Published>> {
    let mut receiver = hub.subscribe();
    let _waiting = Waiting::new(&hub.metrics.clients_waiting);
    // Ending by time is the ordinary 304; a closed channel cannot happen while `hub` lives.
    let _ = tokio::time::timeout(
        wait,
        receiver.wait_for(|p| p.as_ref().is_some_and(|p| !p.matches(tag))),
    )
    .await;
    hub.current()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn bearer_tokens_are_checked_exactly_with_any_scheme_case() {
        assert!(authorized(None, &headers(&[])));
        assert!(authorized(
            Some("s3"),
            &headers(&[("authorization", "Bearer s3")])
        ));
        assert!(authorized(
            Some("s3"),
            &headers(&[("authorization", "bearer s3")])
        ));
        assert!(!authorized(
            Some("s3"),
            &headers(&[("authorization", "Bearer s4")])
        ));
        assert!(!authorized(
            Some("s3"),
            &headers(&[("authorization", "Basic s3")])
        ));
        assert!(!authorized(
            Some("s3"),
            &headers(&[("authorization", "Bearer s3x")])
        ));
        assert!(!authorized(Some("s3"), &headers(&[])));
    }

    #[test]
    fn prefer_wait_is_read_among_other_preferences() {
        assert_eq!(
            preferred_wait(&headers(&[("prefer", "wait=25")])),
            Some(Duration::from_secs(25))
        );
        assert_eq!(
            preferred_wait(&headers(&[("prefer", "respond-async, wait=7")])),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            preferred_wait(&headers(&[("prefer", "return=minimal")])),
            None
        );
        assert_eq!(preferred_wait(&headers(&[("prefer", "wait=soon")])), None);
        assert_eq!(preferred_wait(&headers(&[])), None);
    }

    #[test]
    fn gzip_is_sent_only_when_accepted() {
        assert!(accepts_gzip(&headers(&[("accept-encoding", "gzip")])));
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "br, GZIP;q=0.5"
        )])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "gzip;q=0")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "identity")])));
        assert!(!accepts_gzip(&headers(&[])));
    }
}
