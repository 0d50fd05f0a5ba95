//! The servers step: each server validated (host name, port, edge weight, IP, DVR prefix) and
//! given its base URLs; the id index and the DVR prefixes for the steps that refer to servers.

use super::{parse_all, Problems};
use crate::snapshot::model::{is_status, Id, RawServer};
use crate::snapshot::{SchemeBases, Server, ServerType};
use crate::vocab::path::is_path_like;
use rustc_hash::FxHashMap;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::net::IpAddr;

/// The accepted servers and what later steps look up in them.
pub(super) struct CompiledServers<'a> {
    pub servers: Vec<Server>,
    /// Index into `servers` by server id.
    pub index_by_id: FxHashMap<Id, u32>,
    /// Each DVR server's `prefix` as the document gives it, by server id.
    pub dvr_prefix: FxHashMap<Id, Option<Cow<'a, str>>>,
}

/// Servers: a server that fails a check is skipped, with the first check it fails.
pub(super) fn compile_servers<'a>(
    raws: &[&'a RawValue],
    problems: &mut Problems,
) -> CompiledServers<'a> {
    let raw_servers = parse_all::<RawServer>("servers", raws, |s| s.id, problems);
    let mut compiled = CompiledServers {
        servers: Vec::with_capacity(raw_servers.len()),
        index_by_id: FxHashMap::default(),
        dvr_prefix: FxHashMap::default(),
    };
    for (index, s) in raw_servers {
        let checked = server_from_raw(&s);
        let Some(server) = problems.ok_or_skip("servers", index, s.id, checked) else {
            continue;
        };
        compiled
            .index_by_id
            .insert(s.id, compiled.servers.len() as u32);
        if server.server_type == ServerType::Dvr {
            compiled.dvr_prefix.insert(s.id, s.prefix);
        }
        compiled.servers.push(server);
    }
    compiled
}

/// The server as the snapshot holds it, or why it is skipped.
fn server_from_raw(s: &RawServer<'_>) -> Result<Server, String> {
    let server_type = match s.server_type.as_deref() {
        Some("EDGE") => ServerType::Edge,
        Some("DVR") => ServerType::Dvr,
        _ => ServerType::Other,
    };
    let domain = s.domain_name.trim();
    if !is_domain_name(domain) {
        return Err(format!(
            "domain_name {:?} is not a host name",
            s.domain_name
        ));
    }
    let Some(port) = u16::try_from(s.port).ok().filter(|&p| p != 0) else {
        return Err(format!("port {} is not 1-65535", s.port));
    };
    if server_type == ServerType::Edge && s.weight <= 0 {
        return Err(format!("weight {} must be > 0", s.weight));
    }
    let ip = match s.ip.as_deref().map(str::trim).filter(|ip| !ip.is_empty()) {
        None => None,
        Some(text) => match text.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => return Err(format!("ip {text:?} is not an IP address")),
        },
    };
    if let Some(prefix) = s.prefix.as_deref().filter(|p| !p.is_empty()) {
        if !is_path_like(prefix) {
            return Err(format!("prefix {prefix:?} is not a path"));
        }
    }
    let domain_lower = domain.to_ascii_lowercase();
    let (live_base, http_base) = base_urls(&domain_lower, port);
    let scheme_bases = scheme_bases(&domain_lower, port);
    Ok(Server {
        id: s.id,
        server_type,
        domain_name: domain_lower.into(),
        ip,
        port,
        active: is_status(&s.status, "ACTIVE"),
        available: s.availability,
        weight: s.weight.max(0) as u64,
        healthcheck_enabled: s.healthcheck_enabled,
        healthcheck_path: s.healthcheck_path.as_deref().map(Into::into),
        live_base,
        http_base,
        scheme_bases,
        health: Default::default(),
    })
}

fn is_domain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The bases of the `https` and `request` location schemes (see [`SchemeBases`]).
fn scheme_bases(domain: &str, port: u16) -> SchemeBases {
    let with_port = |scheme: &str| match port {
        80 | 443 => format!("{scheme}://{domain}").into(),
        other => format!("{scheme}://{domain}:{other}").into(),
    };
    SchemeBases {
        live_https: with_port("https"),
        live_http: with_port("http"),
        http_https: format!("https://{domain}").into(),
    }
}

fn base_urls(domain: &str, port: u16) -> (Box<str>, Box<str>) {
    let live = match port {
        443 => format!("https://{domain}"),
        80 => format!("http://{domain}"),
        other => format!("http://{domain}:{other}"),
    };
    (live.into(), format!("http://{domain}").into())
}
