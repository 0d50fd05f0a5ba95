//! The snapshot document as the admin API serves it: one JSON object of entity arrays.
//! Unknown fields are ignored and enums stay strings, so schema growth never breaks parsing.

use serde::Deserialize;
use std::borrow::Cow;

pub use crate::vocab::{Encryption, Id, Protocol};

#[derive(Debug, Deserialize)]
pub struct RawRegion<'a> {
    pub id: Id,
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub status: Option<Cow<'a, str>>,
    #[serde(default)]
    pub server_group_ids: Vec<Id>,
}

#[derive(Debug, Deserialize)]
pub struct RawSubnet<'a> {
    pub id: Id,
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub cidr: Cow<'a, str>,
    pub region_id: Id,
}

#[derive(Debug, Deserialize)]
pub struct RawServerGroup<'a> {
    pub id: Id,
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub status: Option<Cow<'a, str>>,
    #[serde(default)]
    pub server_ids: Vec<Id>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
pub struct RawServer<'a> {
    pub id: Id,
    #[serde(rename = "type", default, borrow)]
    pub server_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub domain_name: Cow<'a, str>,
    #[serde(default, borrow)]
    pub ip: Option<Cow<'a, str>>,
    pub port: i64,
    #[serde(default, borrow)]
    pub status: Option<Cow<'a, str>>,
    #[serde(default = "yes")]
    pub availability: bool,
    #[serde(default)]
    pub weight: i64,
    #[serde(default, borrow)]
    pub prefix: Option<Cow<'a, str>>,
    #[serde(default = "yes")]
    pub healthcheck_enabled: bool,
    #[serde(default, borrow)]
    pub healthcheck_path: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
pub struct RawLinearChannel<'a> {
    pub id: Id,
    #[serde(borrow)]
    pub epg_id: Cow<'a, str>,
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub code_name: Option<Cow<'a, str>>,
    #[serde(default)]
    pub dvr_enabled: bool,
    #[serde(default)]
    pub server_group_id: Option<Id>,
}

#[derive(Debug, Deserialize)]
pub struct RawTvStream<'a> {
    pub id: Id,
    pub linear_channel_id: Id,
    #[serde(borrow)]
    pub stream_path: Cow<'a, str>,
    #[serde(default, borrow)]
    pub status: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub protocol: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub encryption: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
pub struct RawProgram<'a> {
    pub id: Id,
    pub linear_channel_id: Id,
    #[serde(borrow)]
    pub epg_id: Cow<'a, str>,
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
pub struct RawProgramRecord<'a> {
    pub id: Id,
    pub program_id: Id,
    pub server_id: Id,
    #[serde(default, borrow)]
    pub status: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub protocol: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub encryption: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub path: Cow<'a, str>,
}

pub fn is_status(value: &Option<Cow<'_, str>>, wanted: &str) -> bool {
    value.as_deref() == Some(wanted)
}
