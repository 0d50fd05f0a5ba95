//! The content steps: linear channels and programs (their epg ids), then the live streams and
//! catch-up records that fill the two content tables, paths normalised and each record's DVR
//! prefix resolved.

use super::servers::CompiledServers;
use super::{parse_all, Problems};
use crate::snapshot::model::{
    is_status, Encryption, Id, Protocol, RawLinearChannel, RawProgram, RawProgramRecord,
    RawTvStream,
};
use crate::snapshot::ContentTable;
use crate::vocab::path::{is_epg_id, is_path_like, normalize_path_into};
use rustc_hash::FxHashMap;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The epg ids of the accepted rows (channels, or programs) by row id.
pub(super) type EpgIds<'a> = FxHashMap<Id, Cow<'a, str>>;

/// A content table and how many rows were accepted, offered to the table or not (a row that
/// is not ACTIVE or COMPLETED, or has an unknown protocol or encryption, is not offered).
#[derive(Default)]
pub(super) struct CompiledContent {
    pub table: ContentTable,
    pub count: usize,
}

/// Linear channels with a valid epg id.
pub(super) fn compile_channels<'a>(raws: &[&'a RawValue], problems: &mut Problems) -> EpgIds<'a> {
    let raw_channels = parse_all::<RawLinearChannel>("linear_channels", raws, |c| c.id, problems);
    let mut channels = EpgIds::default();
    for (index, c) in raw_channels {
        if is_epg_id(&c.epg_id) {
            channels.insert(c.id, c.epg_id);
        } else {
            problems.skip(
                "linear_channels",
                index,
                Some(c.id),
                format!("epg_id {:?} is not [A-Za-z0-9_]+", c.epg_id),
            );
        }
    }
    channels
}

/// Programs of an accepted channel with a valid epg id.
pub(super) fn compile_programs<'a>(
    raws: &[&'a RawValue],
    channels: &EpgIds<'_>,
    problems: &mut Problems,
) -> EpgIds<'a> {
    let raw_programs = parse_all::<RawProgram>("programs", raws, |p| p.id, problems);
    let mut programs = EpgIds::default();
    for (index, p) in raw_programs {
        if !channels.contains_key(&p.linear_channel_id) {
            problems.skip(
                "programs",
                index,
                Some(p.id),
                format!(
                    "linear_channel_id: no linear channel {}",
                    p.linear_channel_id
                ),
            );
        } else if !is_epg_id(&p.epg_id) {
            problems.skip(
                "programs",
                index,
                Some(p.id),
                format!("epg_id {:?} is not [A-Za-z0-9_]+", p.epg_id),
            );
        } else {
            programs.insert(p.id, p.epg_id);
        }
    }
    programs
}

/// Live streams, under their channel's epg id.
pub(super) fn compile_live_streams(
    raws: &[&RawValue],
    channels: &EpgIds<'_>,
    problems: &mut Problems,
) -> CompiledContent {
    let raw_streams = parse_all::<RawTvStream>("tv_streams", raws, |s| s.id, problems);
    let mut live = CompiledContent::default();
    for (index, s) in &raw_streams {
        let checked = stream_epg_id(s, channels);
        let Some(epg_id) = problems.ok_or_skip("tv_streams", *index, s.id, checked) else {
            continue;
        };
        live.count += 1;
        let active = is_status(&s.status, "ACTIVE");
        if let Some((p, e)) = slot(active, s.protocol.as_deref(), s.encryption.as_deref()) {
            live.table
                .offer(epg_id, p, e, s.id, normalized(&s.stream_path));
        }
    }
    live
}

/// The epg id a stream is filed under, or why it is skipped.
fn stream_epg_id<'c>(s: &RawTvStream<'_>, channels: &'c EpgIds<'_>) -> Result<&'c str, String> {
    let Some(epg_id) = channels.get(&s.linear_channel_id) else {
        return Err(format!(
            "linear_channel_id: no linear channel {}",
            s.linear_channel_id
        ));
    };
    if !is_path_like(&s.stream_path) {
        return Err(format!("stream_path {:?} is not a path", s.stream_path));
    }
    Ok(epg_id)
}

/// Catch-up records, under their program's epg id, at `/dvr/<their DVR's prefix>/<path>`.
pub(super) fn compile_catchup_records(
    raws: &[&RawValue],
    programs: &EpgIds<'_>,
    servers: &CompiledServers<'_>,
    problems: &mut Problems,
) -> CompiledContent {
    let raw_records = parse_all::<RawProgramRecord>("program_records", raws, |r| r.id, problems);
    let mut catchup = CompiledContent::default();
    let mut dvr_path = String::new();
    for (index, r) in &raw_records {
        let checked = record_epg_id_and_prefix(r, programs, servers);
        let Some((epg_id, prefix)) = problems.ok_or_skip("program_records", *index, r.id, checked)
        else {
            continue;
        };
        catchup.count += 1;
        let completed = is_status(&r.status, "COMPLETED");
        if let Some((p, e)) = slot(completed, r.protocol.as_deref(), r.encryption.as_deref()) {
            dvr_path.clear();
            dvr_path.push_str("/dvr/");
            dvr_path.push_str(prefix);
            dvr_path.push('/');
            dvr_path.push_str(&r.path);
            catchup
                .table
                .offer(epg_id, p, e, r.id, normalized(&dvr_path));
        }
    }
    catchup
}

/// The epg id a record is filed under and its DVR's prefix (empty when it has none), or why
/// it is skipped.
fn record_epg_id_and_prefix<'x>(
    r: &RawProgramRecord<'_>,
    programs: &'x EpgIds<'_>,
    servers: &'x CompiledServers<'_>,
) -> Result<(&'x str, &'x str), String> {
    let Some(epg_id) = programs.get(&r.program_id) else {
        return Err(format!("program_id: no program {}", r.program_id));
    };
    let Some(prefix) = servers.dvr_prefix.get(&r.server_id) else {
        return Err(if servers.index_by_id.contains_key(&r.server_id) {
            format!("server_id: server {} is not a DVR", r.server_id)
        } else {
            format!("server_id: no server {}", r.server_id)
        });
    };
    if !is_path_like(&r.path) {
        return Err(format!("path {:?} is not a path", r.path));
    }
    Ok((epg_id, prefix.as_deref().unwrap_or("")))
}

/// The table slot an accepted row is offered to: only a row in the wanted status (ACTIVE
/// stream, COMPLETED record) with a known protocol and encryption has one.
fn slot(
    in_status: bool,
    protocol: Option<&str>,
    encryption: Option<&str>,
) -> Option<(Protocol, Encryption)> {
    if !in_status {
        return None;
    }
    Some((
        Protocol::from_data(protocol)?,
        Encryption::from_data(encryption)?,
    ))
}

fn normalized(path: &str) -> Box<str> {
    let mut out = String::with_capacity(path.len() + 1);
    normalize_path_into(&mut out, path);
    out.into()
}
