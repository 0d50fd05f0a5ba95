//! Rows of the original admin schema → the routing snapshot document of `docs/admin-api.md`.
//! Pure: legacy integer encodings are mapped, NULLs pass through as `null` (or are left out
//! where the router reads absence as the default), so the router quarantines what is unusable.

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub type Id = i64;

/// `status` columns before 2019-03-18: 0 = ACTIVE, 1 = INACTIVE.
pub fn status(raw: Option<String>) -> Option<String> {
    legacy(raw, &["ACTIVE", "INACTIVE"])
}

/// `servers.type` before 2019-03-18: 0 = EDGE, 1 = DVR.
pub fn server_type(raw: Option<String>) -> Option<String> {
    legacy(raw, &["EDGE", "DVR"])
}

/// `program_records.status` before 2019-03-18: 0 = PLANNED, 1 = RUNNING, 2 = COMPLETED,
/// 3 = ERROR.
pub fn record_status(raw: Option<String>) -> Option<String> {
    legacy(raw, &["PLANNED", "RUNNING", "COMPLETED", "ERROR"])
}

/// `program_records.protocol` (and its encryption) before 2019-03-18: 0 = HLS, 1 = MPD,
/// 2 = MPD + WIDEVINE, 3 = MPD + PLAYREADY. The migration split encryption out with the
/// default `NONE`, so a legacy 2 or 3 beside `NONE` (or NULL) carries the encryption.
pub fn record_protocol(
    protocol: Option<String>,
    encryption: Option<String>,
) -> (Option<String>, Option<String>) {
    let implied = match protocol.as_deref().map(str::trim) {
        Some("0") => Some(("HLS", None)),
        Some("1") => Some(("MPD", None)),
        Some("2") => Some(("MPD", Some("WIDEVINE"))),
        Some("3") => Some(("MPD", Some("PLAYREADY"))),
        _ => None,
    };
    match implied {
        None => (protocol, encryption),
        Some((protocol, implied_encryption)) => {
            let unset = matches!(encryption.as_deref(), None | Some("NONE"));
            let encryption = match implied_encryption {
                Some(e) if unset => Some(e.to_string()),
                _ => encryption,
            };
            (Some(protocol.to_string()), encryption)
        }
    }
}

/// A value written as a small integer (a column still of an integer type, or its text) is
/// replaced by the name at that index; anything else stays as it is (the router treats
/// unknown values as "not matching").
fn legacy(raw: Option<String>, names: &[&str]) -> Option<String> {
    let value = raw?;
    match value.trim().parse::<usize>() {
        Ok(i) if i < names.len() => Some(names[i].to_string()),
        _ => Some(value),
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Region {
    pub id: Id,
    pub name: Option<String>,
    pub status: Option<String>,
    pub server_group_ids: Vec<Id>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Subnet {
    pub id: Id,
    pub name: Option<String>,
    /// As stored, host bits and all; the router ignores host bits.
    pub cidr: Option<String>,
    pub region_id: Option<Id>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServerGroup {
    pub id: Id,
    pub name: Option<String>,
    pub status: Option<String>,
    pub server_ids: Vec<Id>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Server {
    pub id: Id,
    #[serde(rename = "type")]
    pub server_type: Option<String>,
    pub domain_name: Option<String>,
    pub ip: Option<String>,
    pub port: Option<i64>,
    pub status: Option<String>,
    /// Left out when NULL: the router's default (`true`) is the column's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability: Option<bool>,
    /// Left out when NULL: an edge without weight is quarantined, a DVR needs none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck_enabled: Option<bool>,
    pub healthcheck_path: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LinearChannel {
    pub id: Id,
    pub epg_id: Option<String>,
    pub name: Option<String>,
    pub code_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dvr_enabled: Option<bool>,
    pub server_group_id: Option<Id>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TvStream {
    pub id: Id,
    pub linear_channel_id: Option<Id>,
    pub stream_path: Option<String>,
    pub status: Option<String>,
    pub protocol: Option<String>,
    pub encryption: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Program {
    pub id: Id,
    pub linear_channel_id: Option<Id>,
    pub epg_id: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProgramRecord {
    pub id: Id,
    pub program_id: Option<Id>,
    pub server_id: Option<Id>,
    pub status: Option<String>,
    pub protocol: Option<String>,
    pub encryption: Option<String>,
    pub path: Option<String>,
}

/// Every entity of one consistent read, each array ordered by id.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Entities {
    pub regions: Vec<Region>,
    pub subnets: Vec<Subnet>,
    pub server_groups: Vec<ServerGroup>,
    pub servers: Vec<Server>,
    pub linear_channels: Vec<LinearChannel>,
    pub tv_streams: Vec<TvStream>,
    pub programs: Vec<Program>,
    pub program_records: Vec<ProgramRecord>,
}

impl Entities {
    pub fn record_count(&self) -> usize {
        self.regions.len()
            + self.subnets.len()
            + self.server_groups.len()
            + self.servers.len()
            + self.linear_channels.len()
            + self.tv_streams.len()
            + self.programs.len()
            + self.program_records.len()
    }
}

/// Join-table rows `(parent, child)` grouped by parent, children sorted; rows with a NULL side
/// cannot name anything and are left out.
pub fn group_pairs(
    pairs: impl IntoIterator<Item = (Option<Id>, Option<Id>)>,
) -> BTreeMap<Id, Vec<Id>> {
    let mut grouped: BTreeMap<Id, Vec<Id>> = BTreeMap::new();
    for (parent, child) in pairs {
        if let (Some(parent), Some(child)) = (parent, child) {
            grouped.entry(parent).or_default().push(child);
        }
    }
    for children in grouped.values_mut() {
        children.sort_unstable();
        children.dedup();
    }
    grouped
}

/// A serialised document: the same data gives the same bytes, version and ETag on every node.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub body: Vec<u8>,
    /// `db-` and 16 hex digits of the data's hash.
    pub version: String,
    /// Hex digits of the body's SHA-256 (without quotes).
    pub hash: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The JSON document; its `version` is derived from the data, so an unchanged database gives
/// an unchanged body (and ETag).
pub fn encode(entities: &Entities) -> Encoded {
    // Serialising plain structs of strings and integers cannot fail.
    let arrays = serde_json::to_vec(entities).unwrap_or_else(|_| b"{}".to_vec());
    let version = format!("db-{}", &hex(&Sha256::digest(&arrays))[..16]);
    let mut body = Vec::with_capacity(arrays.len() + 40);
    body.extend_from_slice(format!("{{\"version\":\"{version}\"").as_bytes());
    if arrays.len() > 2 {
        body.push(b',');
    }
    body.extend_from_slice(&arrays[1..]);
    let hash = hex(&Sha256::digest(&body)[..16]);
    Encoded {
        body,
        version,
        hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn legacy_integer_encodings_become_names() {
        assert_eq!(status(s("0")), s("ACTIVE"));
        assert_eq!(status(s("1")), s("INACTIVE"));
        assert_eq!(status(s("ACTIVE")), s("ACTIVE"));
        assert_eq!(status(s("7")), s("7"), "unknown numbers stay as they are");
        assert_eq!(status(None), None);
        assert_eq!(server_type(s("0")), s("EDGE"));
        assert_eq!(server_type(s("1")), s("DVR"));
        assert_eq!(record_status(s("2")), s("COMPLETED"));
        assert_eq!(record_status(s("CANCELED")), s("CANCELED"));
    }

    #[test]
    fn legacy_record_protocols_carry_their_encryption() {
        assert_eq!(record_protocol(s("0"), s("NONE")), (s("HLS"), s("NONE")));
        assert_eq!(record_protocol(s("1"), s("NONE")), (s("MPD"), s("NONE")));
        assert_eq!(
            record_protocol(s("2"), s("NONE")),
            (s("MPD"), s("WIDEVINE"))
        );
        assert_eq!(record_protocol(s("3"), None), (s("MPD"), s("PLAYREADY")));
        // An encryption set after the split wins over the legacy code.
        assert_eq!(record_protocol(s("2"), s("CENC")), (s("MPD"), s("CENC")));
        assert_eq!(record_protocol(s("MPD"), s("CENC")), (s("MPD"), s("CENC")));
        assert_eq!(record_protocol(None, None), (None, None));
    }

    #[test]
    fn join_rows_group_sorted_without_nulls_or_repeats() {
        let grouped = group_pairs([
            (Some(2), Some(9)),
            (Some(1), Some(5)),
            (Some(2), Some(3)),
            (None, Some(4)),
            (Some(1), None),
            (Some(2), Some(3)),
        ]);
        assert_eq!(grouped.get(&1), Some(&vec![5]));
        assert_eq!(grouped.get(&2), Some(&vec![3, 9]));
        assert_eq!(grouped.len(), 2);
    }

    #[test]
    fn encoding_is_deterministic_and_follows_the_data() {
        let mut entities = Entities::default();
        let empty = encode(&entities);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&empty.body).unwrap()["version"],
            serde_json::json!(empty.version)
        );
        entities.regions.push(Region {
            id: 1,
            name: s("A"),
            status: s("ACTIVE"),
            server_group_ids: vec![10],
        });
        let one = encode(&entities);
        let again = encode(&entities.clone());
        assert_eq!(one.body, again.body);
        assert_eq!(one.hash, again.hash);
        assert_ne!(one.hash, empty.hash);
        assert_ne!(one.version, empty.version);
        let value: serde_json::Value = serde_json::from_slice(&one.body).unwrap();
        assert_eq!(
            value["regions"][0]["server_group_ids"],
            serde_json::json!([10])
        );
    }

    #[test]
    fn nulls_the_router_must_quarantine_stay_null_and_optional_ones_are_left_out() {
        let server = Server {
            id: 1,
            server_type: s("EDGE"),
            domain_name: None,
            ip: None,
            port: None,
            status: s("ACTIVE"),
            availability: None,
            weight: None,
            prefix: None,
            healthcheck_enabled: None,
            healthcheck_path: None,
        };
        let value = serde_json::to_value(&server).unwrap();
        assert_eq!(value["domain_name"], serde_json::Value::Null);
        assert!(value.get("weight").is_none());
        assert!(value.get("availability").is_none());
    }
}
