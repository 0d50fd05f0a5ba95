//! The access log: one line per request (log target `access`), as `key=value` text or JSON
//! lines. Off by default: at tens of thousands of requests per second it is the costliest
//! thing the router could do.

use std::net::IpAddr;
use std::time::Duration;

/// What one request came to, gathered only when the access log is on.
#[derive(Debug, Default)]
pub struct AccessRecord {
    pub client_ip: Option<IpAddr>,
    /// The TCP peer, shown when it differs from the client (a trusted proxy spoke for it).
    pub peer: Option<IpAddr>,
    pub method: String,
    pub path: String,
    pub edge: Option<String>,
    pub region_id: Option<i64>,
    pub subnet_id: Option<i64>,
    pub reason: &'static str,
}

fn quoted(s: &str) -> String {
    // Paths can hold anything a client sent: escape so one request is one line.
    serde_json::to_string(s).unwrap_or_default()
}

pub fn write(record: &AccessRecord, status: u16, took: Duration, json: bool) {
    let micros = took.as_micros() as u64;
    let peer = record.peer.filter(|p| Some(*p) != record.client_ip);
    if json {
        let line = serde_json::json!({
            "time": humantime_now(),
            "client": record.client_ip.map(|ip| ip.to_string()),
            "peer": peer.map(|ip| ip.to_string()),
            "method": record.method,
            "path": record.path,
            "status": status,
            "edge": record.edge,
            "region_id": record.region_id,
            "subnet_id": record.subnet_id,
            "reason": record.reason,
            "duration_us": micros,
        });
        log::info!(target: "access", "{line}");
    } else {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        log::info!(
            target: "access",
            "time={} client={} peer={} method={} path={} status={status} edge={} region_id={} subnet_id={} reason={} duration_us={micros}",
            humantime_now(),
            opt(record.client_ip.map(|ip| ip.to_string())),
            opt(peer.map(|ip| ip.to_string())),
            record.method,
            quoted(&record.path),
            opt(record.edge.clone()),
            opt(record.region_id.map(|id| id.to_string())),
            opt(record.subnet_id.map(|id| id.to_string())),
            record.reason,
        );
    }
}

/// RFC 3339 UTC time with milliseconds, without a date crate.
fn humantime_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_format_is_rfc3339() {
        let t = super::humantime_now();
        assert_eq!(t.len(), 24, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{t}"
        );
    }
}
