//! Manifests the router fetches itself (proxy and manifest modes): the whole body is read from
//! the edge (up to `router.proxy.max_manifest_bytes`, asking for `Accept-Encoding: identity`
//! and decompressing gzip/deflate anyway), rewritten, and answered with its own
//! `Content-Length`. Anything else the edge sends (an error status, a body that is not a
//! manifest, one too large or unreadable) goes to the player as the edge sent it.
//!
//! Why not Pingora's response filters: the framework writes the response head to the player
//! before any body filter runs, so a rewritten body could only go out chunked, and the
//! `HEAD` of a manifest could not carry its rewritten length. These requests are therefore
//! answered from `request_filter`, over Pingora's own connector and connection pool, with the
//! same peer, timeouts, retry and passive health as proxied requests. Segments never come here.

use super::hop_by_hop;
use super::router_proxy::{RequestCtx, RouterProxy};
use crate::config::Mode;
use crate::manifest::{self, BaseUrl, ManifestFormat};
use crate::metrics::{PassthroughReason, MANIFEST_METRICS, METRICS};
use crate::routing::RouteKind;
use crate::server::pipeline::ManifestPlan;
use crate::streaming::rebase::{Rebase, SubRequestBase};
use bytes::{Bytes, BytesMut};
use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use std::io::Read;

/// Request headers not copied to the edge: hop-by-hop, ours, and those that would make the
/// edge send something other than the whole manifest (ranges, conditionals, compression).
const NOT_FORWARDED: [&str; 14] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
    "transfer-encoding",
    "host",
    "x-forwarded-for",
    "x-real-ip",
    "range",
    "if-range",
    "if-none-match",
    "if-modified-since",
    "accept-encoding",
];

/// Answer headers that describe the edge's bytes, not the rewritten ones.
const NOT_KEPT_WHEN_REWRITTEN: [&str; 9] = [
    "content-length",
    "transfer-encoding",
    "content-encoding",
    "etag",
    "last-modified",
    "accept-ranges",
    "content-range",
    "content-md5",
    "digest",
];

/// What was read of the edge's answer.
enum BodyRead {
    /// The whole body (as sent, possibly compressed).
    Whole(Bytes),
    /// More than the limit: the bytes read so far, the rest still to stream.
    Partial(BytesMut),
}

impl RouterProxy {
    /// Fetches the manifest of the request in `ctx` and answers it, rewritten when it is one.
    pub(super) async fn serve_manifest(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(plan) = ctx.proxy.as_ref().and_then(|t| t.manifest.clone()) else {
            return Error::e_explain(ErrorType::InternalError, "no manifest plan");
        };
        let settings = self.settings.load();
        let limit = settings.config.proxy.max_manifest_bytes;
        let idle = settings.config.http.keepalive_timeout;
        drop(settings);

        // A pooled connection the edge closed meanwhile fails before any answer: such a
        // failure is tried again on a fresh connection.
        let mut stale = 0;
        let (mut upstream, peer, response) = loop {
            let (mut upstream, peer, reused) = self.connect_for_manifest(ctx).await?;
            let request = self.manifest_request(session, ctx)?;
            match exchange(&mut upstream, request).await {
                Ok(response) => break (upstream, peer, response),
                Err(e) if reused && stale < 2 => {
                    log::debug!("manifest: pooled edge connection failed ({e}); reconnecting");
                    stale += 1;
                }
                Err(e) => return Err(e),
            }
        };
        if let Some(record) = &ctx.record {
            METRICS.count_upstream_status(record.kind, response.status.as_u16());
        }
        let head_only = session.req_header().method == http::Method::HEAD;
        // Stream health (issue 16): which edge answered the live playlist, and how.
        let mut watch = ctx.playlist.take();
        if let (Some(w), Some(target)) = (watch.as_mut(), ctx.proxy.as_ref()) {
            if !w.answered(&self.state, target, response.status.as_u16()) {
                watch = None;
            }
        }

        // Edge errors (and anything but a 200) go to the player as they are.
        if response.status != http::StatusCode::OK {
            if let Some(w) = watch.as_mut() {
                w.feed(&self.state, None, true);
            }
            return stream_through(session, upstream, response, BytesMut::new(), head_only).await;
        }
        // Media by its type (a live stream that is a TS feed): streamed at once, not buffered.
        let content_type = response
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if content_type.is_some_and(is_media_type) {
            MANIFEST_METRICS.count_passthrough(PassthroughReason::NotManifest);
            return stream_through(session, upstream, response, BytesMut::new(), head_only).await;
        }
        let declared = response
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            MANIFEST_METRICS.count_passthrough(PassthroughReason::TooLarge);
            return stream_through(session, upstream, response, BytesMut::new(), head_only).await;
        }
        let body = match read_up_to(&mut upstream, limit).await? {
            BodyRead::Whole(body) => body,
            BodyRead::Partial(read) => {
                MANIFEST_METRICS.count_passthrough(PassthroughReason::TooLarge);
                return stream_through(session, upstream, response, read, head_only).await;
            }
        };
        // The whole body is in: the connection can serve another request.
        self.manifest_connector
            .release_http_session(upstream, &*peer, Some(idle))
            .await;

        let decoded = decode(&response, &body, limit);
        if let Some(w) = watch.as_mut() {
            // Stream health judges the playlist as the player reads it: decompressed (a body
            // that does not decode is judged as sent).
            let text: &[u8] = decoded.as_deref().unwrap_or(&body);
            w.feed(&self.state, Some(text), true);
        }
        let rewritten = decoded.and_then(|text| rewrite_answer(&plan, ctx, &response, &text));
        let answer = match rewritten {
            Ok((resp, rewritten)) => {
                return write_whole(session, resp, Bytes::from(rewritten), head_only).await;
            }
            Err(reason) => reason,
        };
        MANIFEST_METRICS.count_passthrough(answer);
        let mut resp = response;
        hop_by_hop::strip(&mut resp);
        resp.remove_header(&header::TRANSFER_ENCODING);
        resp.insert_header(header::CONTENT_LENGTH, body.len())?;
        write_whole(session, resp, body, head_only).await
    }

    /// A connection to the chosen edge; a failed connection is counted against the edge and
    /// retried once on another edge of the region, like the framework's proxying.
    async fn connect_for_manifest(
        &self,
        ctx: &mut RequestCtx,
    ) -> Result<(HttpSession, Box<HttpPeer>, bool)> {
        loop {
            let peer = self.edge_peer(ctx).await;
            let connected = match peer {
                Ok(peer) => match self.manifest_connector.get_http_session(&*peer).await {
                    Ok((mut upstream, reused)) => {
                        upstream.set_read_timeout(peer.options.read_timeout);
                        upstream.set_write_timeout(peer.options.write_timeout);
                        return Ok((upstream, peer, reused));
                    }
                    Err(e) => self.connect_failed(ctx, e),
                },
                // Already counted (a name that does not resolve).
                Err(e) => e,
            };
            if !connected.retry() {
                return Err(connected);
            }
        }
    }

    /// The edge request: `GET` (also for `HEAD`: the rewritten length needs the body) of the
    /// content's path, with the client's headers except [`NOT_FORWARDED`].
    fn manifest_request(&self, session: &Session, ctx: &RequestCtx) -> Result<Box<RequestHeader>> {
        let Some(target) = ctx.proxy.as_ref() else {
            return Error::e_explain(ErrorType::InternalError, "no edge chosen");
        };
        let edge = &target.snapshot.servers[target.edge_index as usize];
        let mut request = RequestHeader::build("GET", target.path_and_query.as_bytes(), None)?;
        for (name, value) in session.req_header().headers.iter() {
            if !NOT_FORWARDED.contains(&name.as_str()) {
                request.append_header(name.clone(), value.clone())?;
            }
        }
        request.insert_header(header::HOST, &*edge.domain_name)?;
        request.insert_header(header::ACCEPT_ENCODING, "identity")?;
        let client = target.client_ip.to_string();
        request.insert_header("X-Forwarded-For", &client)?;
        request.insert_header("X-Real-IP", &client)?;
        Ok(Box::new(request))
    }
}

/// The rewritten answer of the (decoded) body, or why the body passes through unmodified.
fn rewrite_answer(
    plan: &ManifestPlan,
    ctx: &RequestCtx,
    response: &ResponseHeader,
    decoded: &[u8],
) -> std::result::Result<(ResponseHeader, String), PassthroughReason> {
    let target = ctx.proxy.as_ref().ok_or(PassthroughReason::Unreadable)?;
    let edge = &target.snapshot.servers[target.edge_index as usize];
    let content_type = response
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let format = manifest::sniff(content_type, decoded).ok_or(PassthroughReason::NotManifest)?;
    let text = std::str::from_utf8(decoded).map_err(|_| PassthroughReason::Unreadable)?;

    let edge_base = match plan.kind {
        RouteKind::Live | RouteKind::Catchup => &*edge.live_base,
        RouteKind::Vod | RouteKind::Static => &*edge.http_base,
    };
    let base = BaseUrl::parse(&format!("{edge_base}{}", target.path_and_query))
        .ok_or(PassthroughReason::Unreadable)?;
    let dir = &target.path_and_query[..plan.dir_len.min(target.path_and_query.len())];
    let sub_requests = SubRequestBase {
        content_prefix: &plan.content_prefix,
        edge_id: edge.id,
        dir,
    };
    let rebase = match (plan.mode, plan.kind) {
        (Mode::Proxy, RouteKind::Live | RouteKind::Catchup) => Rebase::SubRequests(sub_requests),
        (Mode::Proxy, RouteKind::Vod) => Rebase::SamePaths { namespace: "/vod/" },
        (Mode::Proxy, RouteKind::Static) => Rebase::SamePaths {
            namespace: "/static",
        },
        (Mode::Manifest | Mode::Redirect, RouteKind::Live | RouteKind::Catchup) => {
            Rebase::EdgeUrls {
                playlists: Some(sub_requests),
            }
        }
        (Mode::Manifest | Mode::Redirect, RouteKind::Vod | RouteKind::Static) => {
            Rebase::EdgeUrls { playlists: None }
        }
    };
    let rewritten = rebase
        .rewrite(format, text, &base)
        .map_err(|_| PassthroughReason::Unreadable)?;
    MANIFEST_METRICS
        .rewritten
        .with_label_values(&[match format {
            ManifestFormat::Hls => "hls",
            ManifestFormat::Dash => "dash",
        }])
        .inc();

    let mut resp = response.clone();
    hop_by_hop::strip(&mut resp);
    for name in NOT_KEPT_WHEN_REWRITTEN {
        resp.remove_header(name);
    }
    let unreadable = |_| PassthroughReason::Unreadable;
    resp.insert_header(header::CONTENT_LENGTH, rewritten.len())
        .map_err(unreadable)?;
    if content_type.and_then(manifest::format_from_content_type) != Some(format) {
        let mime = match format {
            ManifestFormat::Hls => "application/vnd.apple.mpegurl",
            ManifestFormat::Dash => "application/dash+xml",
        };
        resp.insert_header(header::CONTENT_TYPE, mime)
            .map_err(unreadable)?;
    }
    // A live playlist changes every few seconds, and names the session's edge: never cached.
    // Others keep the edge's caching headers, but only for this player (they name an edge).
    if plan.kind == RouteKind::Live {
        resp.insert_header(header::CACHE_CONTROL, "no-cache")
            .map_err(unreadable)?;
    } else if let Some(cc) = response.headers.get(header::CACHE_CONTROL) {
        let private = match cc.to_str() {
            Ok(cc) if cc.contains("private") || cc.contains("no-store") => cc.to_string(),
            Ok(cc) => format!("private, {cc}"),
            Err(_) => "private".to_string(),
        };
        resp.insert_header(header::CACHE_CONTROL, private)
            .map_err(unreadable)?;
    }
    Ok((resp, rewritten))
}

/// The body as text bytes: decompressed when the edge sent gzip or deflate although asked for
/// identity, within `limit` bytes after decompression.
fn decode<'b>(
    response: &ResponseHeader,
    body: &'b [u8],
    limit: usize,
) -> std::result::Result<std::borrow::Cow<'b, [u8]>, PassthroughReason> {
    let encoding = response
        .headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let mut out = Vec::new();
    let read = match encoding.as_deref() {
        None | Some("") | Some("identity") => return Ok(std::borrow::Cow::Borrowed(body)),
        Some("gzip" | "x-gzip") => flate2::read::MultiGzDecoder::new(body)
            .take(limit as u64 + 1)
            .read_to_end(&mut out),
        Some("deflate") => {
            // Meant to be zlib-wrapped; some servers send raw deflate.
            let zlib = flate2::read::ZlibDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut out);
            if zlib.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(body)
                    .take(limit as u64 + 1)
                    .read_to_end(&mut out)
            } else {
                zlib
            }
        }
        Some(_) => return Err(PassthroughReason::Unreadable),
    };
    match read {
        Ok(n) if n > limit => Err(PassthroughReason::TooLarge),
        Ok(_) => Ok(std::borrow::Cow::Owned(out)),
        Err(_) => Err(PassthroughReason::Unreadable),
    }
}

/// `video/*` or `audio/*` other than the HLS playlist types: never a manifest.
fn is_media_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let media = ["video/", "audio/"].iter().any(|prefix| {
        essence
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    });
    media && manifest::format_from_content_type(essence).is_none()
}

/// Sends the request and reads the answer's head.
async fn exchange(
    upstream: &mut HttpSession,
    request: Box<RequestHeader>,
) -> Result<ResponseHeader> {
    upstream.write_request_header(request).await?;
    upstream.finish_request_body().await?;
    upstream.read_response_header().await?;
    match upstream.response_header() {
        Some(response) => Ok(response.clone()),
        None => Error::e_explain(ErrorType::InvalidHTTPHeader, "no answer head from the edge"),
    }
}

/// Reads the body up to `limit` bytes (one more tells it is larger).
async fn read_up_to(upstream: &mut HttpSession, limit: usize) -> Result<BodyRead> {
    let mut body = BytesMut::new();
    while let Some(chunk) = upstream.read_response_body().await? {
        body.extend_from_slice(&chunk);
        if body.len() > limit {
            return Ok(BodyRead::Partial(body));
        }
    }
    Ok(BodyRead::Whole(body.freeze()))
}

/// Writes a whole answer (`HEAD`: its head only).
async fn write_whole(
    session: &mut Session,
    resp: ResponseHeader,
    body: Bytes,
    head_only: bool,
) -> Result<()> {
    let empty = head_only || body.is_empty();
    session.write_response_header(Box::new(resp), empty).await?;
    if !empty {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// Sends the edge's answer as it is: its head, the bytes already read, then the rest as it
/// comes (the edge connection is not reused: it may be left mid-body).
async fn stream_through(
    session: &mut Session,
    mut upstream: HttpSession,
    mut resp: ResponseHeader,
    read: BytesMut,
    head_only: bool,
) -> Result<()> {
    hop_by_hop::strip(&mut resp);
    let framed = resp.headers.contains_key(header::CONTENT_LENGTH)
        || resp.headers.contains_key(header::TRANSFER_ENCODING);
    if !framed {
        // Close-delimited at the edge: chunked to the player, so its connection stays usable.
        resp.insert_header(header::TRANSFER_ENCODING, "chunked")?;
    }
    let no_body = head_only || matches!(resp.status.as_u16(), 204 | 304);
    session
        .write_response_header(Box::new(resp), no_body)
        .await?;
    if no_body {
        upstream.shutdown().await;
        return Ok(());
    }
    if !read.is_empty() {
        session
            .write_response_body(Some(read.freeze()), false)
            .await?;
    }
    while let Some(chunk) = upstream.read_response_body().await? {
        session.write_response_body(Some(chunk), false).await?;
    }
    session.write_response_body(None, true).await
}
