//! Compiling a document into a [`Snapshot`]: per-entity validation with quarantine, then the
//! indexes the request path reads. Each entity kind is one step (a submodule) that takes its
//! raw array and what earlier steps built, and returns what later steps need; [`compile`] runs
//! the steps in order and assembles the snapshot.

mod content;
mod regions;
mod server_groups;
mod servers;
mod subnets;

use super::model::Id;
use super::{Document, EntityCounts, Snapshot, SnapshotInfo};
use content::{compile_catchup_records, compile_channels, compile_live_streams, compile_programs};
use regions::compile_regions;
use serde::Deserialize;
use serde_json::value::RawValue;
use server_groups::compile_server_groups;
use servers::compile_servers;
use subnets::compile_subnets;

/// An entity skipped (quarantined) or a reference dropped, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The array it came from (`subnets`, `servers`, …).
    pub entity: &'static str,
    /// Position in that array.
    pub index: usize,
    pub id: Option<Id>,
    pub reason: String,
    /// True when the entity was skipped; false when only one of its references was dropped.
    pub quarantined: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.quarantined {
            "skipped"
        } else {
            "kept, reference dropped"
        };
        match self.id {
            Some(id) => write!(
                f,
                "{}[{}] id={}: {} ({what})",
                self.entity, self.index, id, self.reason
            ),
            None => write!(
                f,
                "{}[{}]: {} ({what})",
                self.entity, self.index, self.reason
            ),
        }
    }
}

/// The problems found so far, in the order the steps found them.
struct Problems(Vec<Problem>);

impl Problems {
    fn skip(
        &mut self,
        entity: &'static str,
        index: usize,
        id: Option<Id>,
        reason: impl Into<String>,
    ) {
        self.0.push(Problem {
            entity,
            index,
            id,
            reason: reason.into(),
            quarantined: true,
        });
    }
    /// The value `checked` holds, or `None` once the entity is skipped for the reason it holds.
    fn ok_or_skip<T>(
        &mut self,
        entity: &'static str,
        index: usize,
        id: Id,
        checked: Result<T, String>,
    ) -> Option<T> {
        match checked {
            Ok(value) => Some(value),
            Err(reason) => {
                self.skip(entity, index, Some(id), reason);
                None
            }
        }
    }
    fn drop_ref(&mut self, entity: &'static str, index: usize, id: Id, reason: impl Into<String>) {
        self.0.push(Problem {
            entity,
            index,
            id: Some(id),
            reason: reason.into(),
            quarantined: false,
        });
    }
}

#[derive(Deserialize)]
struct IdOnly {
    id: Option<serde_json::Value>,
}

/// Parses every raw entity of one array; unparsable ones and duplicate ids are quarantined.
fn parse_all<'a, T: Deserialize<'a>>(
    entity: &'static str,
    raws: &[&'a RawValue],
    id_of: impl Fn(&T) -> Id,
    problems: &mut Problems,
) -> Vec<(usize, T)> {
    let mut seen = rustc_hash::FxHashSet::default();
    let mut out = Vec::with_capacity(raws.len());
    for (index, raw) in raws.iter().enumerate() {
        match serde_json::from_str::<T>(raw.get()) {
            Ok(item) => {
                let id = id_of(&item);
                if seen.insert(id) {
                    out.push((index, item));
                } else {
                    problems.skip(entity, index, Some(id), "duplicate id");
                }
            }
            Err(e) => {
                let id = serde_json::from_str::<IdOnly>(raw.get())
                    .ok()
                    .and_then(|x| x.id)
                    .and_then(|v| v.as_i64());
                problems.skip(entity, index, id, e.to_string());
            }
        }
    }
    out
}

/// Compiles a parsed document. Never fails: bad entities are quarantined and listed in
/// [`SnapshotInfo::problems`].
pub fn compile(doc: &Document<'_>, source: &str) -> Snapshot {
    let mut problems = Problems(Vec::new());
    let servers = compile_servers(&doc.servers, &mut problems);
    let groups = compile_server_groups(&doc.server_groups, &servers.index_by_id, &mut problems);
    let regions = compile_regions(&doc.regions, &groups, &servers.servers, &mut problems);
    let subnets = compile_subnets(&doc.subnets, &regions.index_by_id, &mut problems);
    let channels = compile_channels(&doc.linear_channels, &mut problems);
    let programs = compile_programs(&doc.programs, &channels, &mut problems);
    let live = compile_live_streams(&doc.tv_streams, &channels, &mut problems);
    let catchup = compile_catchup_records(&doc.program_records, &programs, &servers, &mut problems);

    let counts = EntityCounts {
        regions: regions.regions.len(),
        subnets: subnets.ids.len(),
        server_groups: groups.len(),
        servers: servers.servers.len(),
        linear_channels: channels.len(),
        tv_streams: live.count,
        programs: programs.len(),
        program_records: catchup.count,
    };
    Snapshot {
        info: SnapshotInfo {
            version: doc.version_text(),
            source: source.to_string(),
            loaded_at: std::time::SystemTime::now(),
            counts,
            problems: problems.0,
        },
        v4: subnets.v4,
        v6: subnets.v6,
        v4_networks: subnets.v4_networks,
        v6_networks: subnets.v6_networks,
        regions: regions.regions,
        servers: servers.servers,
        live: live.table,
        catchup: catchup.table,
        subnet_ids: subnets.ids,
    }
}
