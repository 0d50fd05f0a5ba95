//! What the router answers, whoever writes it (the fast HTTP/1 path or the Pingora proxy
//! framework): size limits, the status and body of each outcome, and the access-log record.

use super::access_log::AccessRecord;
use crate::config::HttpConfig;
use crate::routing::{BadRequest, Decision, NotFound, Outcome};
use crate::snapshot::Snapshot;
use std::net::IpAddr;

pub const BODY_NOT_FOUND: &str = "Server not found";
pub const BODY_INVALID: &str = "Request invalid";
pub const BODY_NOT_IMPLEMENTED: &str = "Transfer coding not implemented";
pub const BODY_METHOD: &str = "Method not allowed";
pub const BODY_UNAVAILABLE: &str = "No routing data loaded yet";
pub const BODY_BAD_GATEWAY: &str = "Edge server unavailable";
pub const BODY_URI_TOO_LONG: &str = "Request URI too long";
pub const BODY_HEADERS_TOO_LARGE: &str = "Request headers too large";
pub const CACHE_CONTROL: &str = "max-age=0, private, must-revalidate";

/// A text answer: status, body and at most one extra header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextAnswer {
    pub status: u16,
    pub body: &'static str,
    pub extra: Option<(&'static str, &'static str)>,
}

/// The sizes of a request head that the limits apply to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadSize {
    /// Bytes of the request target (path and query).
    pub uri_bytes: usize,
    pub header_count: usize,
    /// Sum of header name and value lengths.
    pub header_bytes: usize,
}

/// The 414/431 answer for a request over the configured size limits, if it is.
pub fn over_limits(size: HeadSize, limits: &HttpConfig) -> Option<TextAnswer> {
    let body = if size.uri_bytes > limits.max_uri_bytes {
        (414, BODY_URI_TOO_LONG)
    } else if size.header_count > limits.max_header_count
        || size.header_bytes > limits.max_header_bytes
    {
        (431, BODY_HEADERS_TOO_LARGE)
    } else {
        return None;
    };
    Some(TextAnswer {
        status: body.0,
        body: body.1,
        extra: None,
    })
}

/// What the router answers itself, whichever path writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `302 Found` to this Location.
    Redirect(String),
    Text(TextAnswer),
}

/// A header field's value as an answer carries it.
#[derive(Debug, Clone, Copy)]
pub enum FieldValue<'a> {
    Bytes(&'a [u8]),
    Number(usize),
}

impl Answer {
    /// The answer to a routing outcome (a redirect is answered as one).
    pub fn of(outcome: Outcome) -> Answer {
        let (status, body, extra) = match outcome {
            Outcome::Redirect { location, .. } => return Answer::Redirect(location),
            Outcome::NotFound(_) => (404, BODY_NOT_FOUND, None),
            Outcome::BadRequest(_) => (400, BODY_INVALID, None),
            Outcome::MethodNotAllowed => (405, BODY_METHOD, Some(("Allow", "GET, HEAD"))),
            Outcome::NoSnapshot => (503, BODY_UNAVAILABLE, Some(("Retry-After", "5"))),
        };
        Answer::Text(TextAnswer {
            status,
            body,
            extra,
        })
    }

    pub fn status(&self) -> u16 {
        match self {
            Answer::Redirect(_) => 302,
            Answer::Text(text) => text.status,
        }
    }

    /// The header fields of the answer, in order, besides `Date` and `Connection` (which
    /// the connection's writer adds): the one description both writers serialise.
    pub fn fields(&self, mut field: impl FnMut(&'static str, FieldValue<'_>)) {
        match self {
            Answer::Redirect(location) => {
                field("Location", FieldValue::Bytes(location.as_bytes()));
                field("Content-Length", FieldValue::Bytes(b"0"));
                field("Cache-Control", FieldValue::Bytes(CACHE_CONTROL.as_bytes()));
            }
            Answer::Text(text) => {
                field("Content-Type", FieldValue::Bytes(b"text/plain"));
                field("Content-Length", FieldValue::Number(text.body.len()));
                if let Some((name, value)) = text.extra {
                    field(name, FieldValue::Bytes(value.as_bytes()));
                }
            }
        }
    }

    pub fn body(&self) -> &'static str {
        match self {
            Answer::Redirect(_) => "",
            Answer::Text(text) => text.body,
        }
    }
}

/// The access log's `reason` for a decision.
fn reason(outcome: &Outcome, proxied: bool, panic: bool) -> &'static str {
    match outcome {
        Outcome::Redirect { .. } if panic => "panic_mode",
        Outcome::Redirect { .. } if proxied => "proxy",
        Outcome::Redirect { .. } => "redirect",
        Outcome::NotFound(NotFound::Content) => "no_content",
        Outcome::NotFound(NotFound::Edge) => "no_edge",
        Outcome::BadRequest(BadRequest::Path) => "bad_path",
        Outcome::BadRequest(BadRequest::ClientIp) => "bad_x_real_ip",
        Outcome::MethodNotAllowed => "method_not_allowed",
        Outcome::NoSnapshot => "no_snapshot",
    }
}

/// The access-log record of a routed request.
pub fn access_record(
    decision: &Decision,
    snapshot: Option<&Snapshot>,
    peer: IpAddr,
    method: &str,
    path: &str,
    proxied: bool,
) -> Box<AccessRecord> {
    let edge = match (&decision.outcome, snapshot) {
        (Outcome::Redirect { target, .. }, Some(s)) => Some(
            s.servers[target.edge_index as usize]
                .domain_name
                .to_string(),
        ),
        _ => None,
    };
    let (region_id, subnet_id) = match &decision.outcome {
        Outcome::Redirect {
            region_id,
            subnet_id,
            ..
        } => (Some(*region_id), Some(*subnet_id)),
        _ => (None, None),
    };
    let panic = decision.target().is_some_and(|t| t.panic);
    Box::new(AccessRecord {
        client_ip: decision.client_ip,
        peer: Some(peer),
        method: method.to_string(),
        path: path.to_string(),
        edge,
        region_id,
        subnet_id,
        reason: reason(&decision.outcome, proxied, panic),
    })
}

/// The access-log record of a request refused by the size limits.
pub fn oversize_record(
    peer: IpAddr,
    method: &str,
    target: &[u8],
    status: u16,
) -> Box<AccessRecord> {
    Box::new(AccessRecord {
        client_ip: Some(peer),
        peer: Some(peer),
        method: method.to_string(),
        // Not the whole target: it is what was too long.
        path: String::from_utf8_lossy(&target[..target.len().min(256)]).into_owned(),
        reason: if status == 414 {
            "uri_too_long"
        } else {
            "headers_too_large"
        },
        ..AccessRecord::default()
    })
}
