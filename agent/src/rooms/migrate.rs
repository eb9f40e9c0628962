//! The room view as releases before the database kept it: one JSON file per
//! room, rewritten whole, and `state.json` with the journal sequence number
//! they covered. On first start they are read into the database in one
//! transaction and then removed; a crash before the removal imports them
//! again, which changes nothing (the database holds no newer state of
//! them yet: the agent serves only after the migration).

use super::store::{db_err, Set, Writer, MARKER};
use super::view::{AnchorState, Meta};
use super::MemberName;
use crate::error::Result;
use cryptoid_protocol::json::Value;
use redb::ReadableTable;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `[[id, depth], …]`, oldest first; views before round 2 kept bare IDs
/// (depth unknown: recorded as 0, which only `own` ever held).
#[derive(Deserialize)]
#[serde(untagged)]
enum Recent {
    WithDepth(Vec<(String, i64)>),
    Ids(Vec<String>),
}

fn into_vec(r: Option<Recent>) -> Vec<(String, i64)> {
    match r {
        Some(Recent::WithDepth(v)) => v,
        Some(Recent::Ids(v)) => v.into_iter().map(|id| (id, 0)).collect(),
        None => Vec::new(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OldRoom {
    room_id: String,
    #[serde(default)]
    room_version: Option<String>,
    #[serde(default)]
    observed: bool,
    #[serde(default)]
    max_depth: Option<i64>,
    #[serde(default)]
    events: Option<Recent>,
    #[serde(default)]
    own: Option<Recent>,
    #[serde(default)]
    power_levels: Option<Value>,
    #[serde(default)]
    power_levels_depth: Option<i64>,
    #[serde(default)]
    anchor: Option<AnchorState>,
    #[serde(default)]
    auth_state: BTreeMap<String, (String, i64)>,
    #[serde(default)]
    superseded: Option<Recent>,
    #[serde(default)]
    superseded_rules: Option<Recent>,
    #[serde(default)]
    members: BTreeMap<String, MemberName>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    settings: BTreeMap<String, (i64, Value)>,
    /// Before round 2 the view kept bare IDs, including IDs only named as
    /// `prev_events`; those are not evidence of anything and are dropped.
    #[serde(default)]
    #[allow(dead_code)]
    known: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Marker {
    seq: u64,
}

/// The JSON files of an older release in `dir`: room files and the marker.
pub fn legacy_files(dir: &Path) -> Result<(Vec<PathBuf>, Option<PathBuf>)> {
    let mut rooms = Vec::new();
    let mut marker = None;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        match path.file_name().and_then(|n| n.to_str()) {
            Some("state.json") => marker = Some(path),
            Some(super::PINNED_KEYS) => {}
            Some(n) if n.ends_with(".json") => rooms.push(path),
            _ => {}
        }
    }
    Ok((rooms, marker))
}

/// Imports the legacy files into `db` (one durable transaction); returns
/// the summaries of the rooms imported. A damaged room file is skipped with
/// a warning, as the old loader did: it only weakens anti-replay for one
/// room until it is observed again.
pub fn import(db: &redb::Database, rooms: &[PathBuf], marker: Option<&Path>) -> Result<Vec<(String, Meta)>> {
    let tx = db.begin_write().map_err(db_err)?;
    let mut out = Vec::new();
    {
        let mut w = Writer::open(&tx)?;
        for path in rooms {
            let old: OldRoom = match std::fs::read(path).map(|b| serde_json::from_slice(&b)) {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring a damaged room view");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            // Imported already (a crash came before the files were
            // removed): the database's copy is the one to keep.
            if w.meta.get(old.room_id.as_str()).map_err(db_err)?.is_some() {
                continue;
            }
            out.push((old.room_id.clone(), import_room(&mut w, old)?));
        }
        if let Some(m) = marker {
            let seq =
                std::fs::read(m).ok().and_then(|b| serde_json::from_slice::<Marker>(&b).ok()).map(|m| m.seq);
            let mut t = tx.open_table(MARKER).map_err(db_err)?;
            t.insert("seq", seq.unwrap_or(0)).map_err(db_err)?;
        }
    }
    tx.commit().map_err(db_err)?;
    Ok(out)
}

fn import_room(w: &mut Writer<'_>, old: OldRoom) -> Result<Meta> {
    let room = old.room_id.as_str();
    let mut m = Meta {
        room_version: old.room_version,
        observed: old.observed,
        max_depth: old.max_depth,
        power_levels: old.power_levels,
        power_levels_depth: old.power_levels_depth,
        anchor: old.anchor,
        name: old.name,
        ..Meta::default()
    };
    for (id, d) in into_vec(old.events) {
        w.insert(Set::Events, &mut m.events, room, &id, d)?;
    }
    // Carried (v1/v2) IDs hold a ':': the homeserver chose those, so they
    // are not the user's own.
    for (id, d) in into_vec(old.own).into_iter().filter(|(id, _)| !id.contains(':')) {
        w.insert(Set::Own, &mut m.own, room, &id, d)?;
    }
    for (id, d) in into_vec(old.superseded) {
        w.insert(Set::Superseded, &mut m.superseded, room, &id, d)?;
    }
    for (id, d) in into_vec(old.superseded_rules) {
        w.insert(Set::SupersededRules, &mut m.superseded_rules, room, &id, d)?;
    }
    for (key, (id, d)) in &old.auth_state {
        w.auth.insert((room, key.as_str()), (id.as_str(), *d)).map_err(db_err)?;
        m.auth_len += 1;
    }
    for (key, name) in &old.members {
        w.members.insert((room, key.as_str()), (name.user_id.as_str(), name.verified)).map_err(db_err)?;
        m.members_len += 1;
    }
    for (key, (d, v)) in &old.settings {
        let text = cryptoid_protocol::json::to_canonical_string(v);
        w.settings.insert((room, key.as_str()), (*d, text.as_str())).map_err(db_err)?;
        m.settings_len += 1;
    }
    m.store(w, room)?;
    Ok(m)
}
