//! The room view: per room, the highest depth and the recent event IDs the
//! agent has observed (`rooms.observe`) or signed, the recent events it
//! signed itself, and the last power levels it saw. The anti-replay and
//! redaction checks read it.
//!
//! Durability without fsyncs on the signing path: `rooms.observe` writes its
//! room's file before answering; signing updates memory only, and dirty
//! rooms are written every second with the journal sequence number they
//! cover (`state.json`). At start-up the journal entries after that number
//! (the signatures, each with its event ID and depth) are replayed, so a
//! crash loses nothing the journal has.

use crate::error::Result;
use crate::fsutil;
use crate::policy::RoomFacts;
use cryptoid_protocol::base64;
use cryptoid_protocol::json::{Object, Value};
use cryptoid_protocol::wire::rooms::{ObserveParams, RoomView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;

/// Event IDs remembered per room (known, and own). Forward extremities are
/// recent, so a bounded window suffices.
const RECENT: usize = 4096;

/// A bounded set that forgets its oldest members.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
struct Recent {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl From<Vec<String>> for Recent {
    fn from(v: Vec<String>) -> Recent {
        let mut r = Recent::default();
        for id in v {
            r.insert(id);
        }
        r
    }
}

impl From<Recent> for Vec<String> {
    fn from(r: Recent) -> Vec<String> {
        r.order.into()
    }
}

impl Recent {
    fn insert(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > RECENT {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomState {
    room_id: String,
    #[serde(default)]
    room_version: Option<String>,
    #[serde(default)]
    observed: bool,
    #[serde(default)]
    max_depth: Option<i64>,
    #[serde(default)]
    known: Recent,
    #[serde(default)]
    own: Recent,
    #[serde(default)]
    power_levels: Option<Value>,
}

impl RoomState {
    fn see(&mut self, event_id: &str, depth: i64) {
        self.known.insert(event_id.to_owned());
        self.max_depth = Some(self.max_depth.map_or(depth, |d| d.max(depth)));
    }

    fn view(&self) -> RoomView {
        RoomView {
            room_id: self.room_id.clone(),
            max_depth: self.max_depth.and_then(|d| u64::try_from(d).ok()),
            known_events: self.known.order.len() as u64,
            observed: self.observed,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Marker {
    /// Journal entries up to this sequence number are in the room files.
    seq: u64,
}

pub struct Rooms {
    dir: PathBuf,
    rooms: Mutex<HashMap<String, RoomState>>,
    dirty: Mutex<HashSet<String>>,
}

impl Rooms {
    /// Loads every room file; returns the journal sequence number they cover.
    pub fn load(dir: PathBuf) -> Result<(Rooms, u64)> {
        fsutil::private_dir(&dir)?;
        fsutil::remove_stale_temps(&dir)?;
        let mut rooms = HashMap::new();
        let mut seq = 0;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let bytes = std::fs::read(&path)?;
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name == "state.json" {
                seq = serde_json::from_slice::<Marker>(&bytes).map(|m| m.seq).unwrap_or(0);
            } else if name.ends_with(".json") {
                match serde_json::from_slice::<RoomState>(&bytes) {
                    Ok(r) => {
                        rooms.insert(r.room_id.clone(), r);
                    }
                    // A damaged view only weakens anti-replay for one room
                    // until it is observed again: warn, do not refuse to start.
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "ignoring a damaged room view")
                    }
                }
            }
        }
        Ok((Rooms { dir, rooms: Mutex::new(rooms), dirty: Mutex::new(HashSet::new()) }, seq))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RoomState>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path_of(&self, room_id: &str) -> PathBuf {
        let h: [u8; 32] = Sha256::digest(room_id.as_bytes()).into();
        self.dir.join(format!("{}.json", base64::encode_url_safe(&h[..18])))
    }

    fn write(&self, room: &RoomState) -> Result<()> {
        let bytes = serde_json::to_vec(room).map_err(|e| {
            crate::error::Error::new(cryptoid_protocol::wire::ErrorKind::InternalError, e.to_string())
        })?;
        fsutil::write_atomic(&self.path_of(&room.room_id), &bytes)?;
        Ok(())
    }

    /// Feeds observed events; written durably before returning.
    pub fn observe(&self, p: &ObserveParams) -> Result<RoomView> {
        let snapshot = {
            let mut rooms = self.lock();
            let r = rooms
                .entry(p.room_id.clone())
                .or_insert_with(|| RoomState { room_id: p.room_id.clone(), ..Default::default() });
            r.observed = true;
            if p.room_version.is_some() {
                r.room_version = p.room_version.clone();
            }
            for e in &p.events {
                r.see(&e.event_id, i64::try_from(e.depth).unwrap_or(i64::MAX));
                for prev in &e.prev_events {
                    r.known.insert(prev.clone());
                }
                if e.event_type.as_deref() == Some("m.room.power_levels")
                    && e.state_key.as_deref() == Some("")
                {
                    if let Some(c @ Value::Object(_)) = &e.content {
                        r.power_levels = Some(c.clone());
                    }
                }
            }
            r.clone()
        };
        self.write(&snapshot)?;
        Ok(snapshot.view())
    }

    /// Records an event the agent signed (memory now, disk at the next flush).
    pub fn record_signed(&self, room_id: &str, event_id: &str, depth: i64, power_levels: Option<&Object>) {
        let mut rooms = self.lock();
        let r = rooms
            .entry(room_id.to_owned())
            .or_insert_with(|| RoomState { room_id: room_id.to_owned(), ..Default::default() });
        r.see(event_id, depth);
        r.own.insert(event_id.to_owned());
        if let Some(pl) = power_levels {
            r.power_levels = Some(Value::Object(pl.clone()));
        }
        drop(rooms);
        self.dirty.lock().unwrap_or_else(|p| p.into_inner()).insert(room_id.to_owned());
    }

    /// Runs `f` with what the agent knows of `room_id`.
    pub fn with_facts<R>(&self, room_id: &str, f: impl FnOnce(&RoomFacts<'_>) -> R) -> R {
        let rooms = self.lock();
        match rooms.get(room_id) {
            None => f(&RoomFacts::unknown()),
            Some(r) => {
                let known = |id: &str| r.known.contains(id);
                let own = |id: &str| r.own.contains(id);
                f(&RoomFacts {
                    observed: r.observed,
                    max_depth: r.max_depth,
                    is_known: &known,
                    is_own: &own,
                    power_levels: r.power_levels.as_ref().and_then(Value::as_object),
                })
            }
        }
    }

    /// Writes the rooms changed since the last flush, then the marker `seq`
    /// (read from the journal *before* calling, so replay covers the rest).
    pub fn flush(&self, seq: u64) -> Result<usize> {
        let dirty: Vec<String> = self.dirty.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
        let snapshots: Vec<RoomState> = {
            let rooms = self.lock();
            dirty.iter().filter_map(|id| rooms.get(id).cloned()).collect()
        };
        for r in &snapshots {
            if let Err(e) = self.write(r) {
                // Keep it dirty; the journal still has it.
                self.dirty.lock().unwrap_or_else(|p| p.into_inner()).insert(r.room_id.clone());
                return Err(e);
            }
        }
        let marker = serde_json::to_vec(&Marker { seq }).unwrap_or_default();
        fsutil::write_atomic(&self.dir.join("state.json"), &marker)?;
        Ok(snapshots.len())
    }

    /// Applies journaled signatures (start-up replay).
    pub fn replay(&self, entries: &[Object]) -> usize {
        let mut n = 0;
        for e in entries {
            let (Some(room), Some(signed)) =
                (e.get("room_id").and_then(Value::as_str), e.get("signed").and_then(Value::as_array))
            else {
                continue;
            };
            for s in signed.iter().filter_map(Value::as_object) {
                if let (Some(id), Some(depth)) =
                    (s.get("event_id").and_then(Value::as_str), s.get("depth").and_then(Value::as_int))
                {
                    self.record_signed(room, id, depth, None);
                    n += 1;
                }
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoid_protocol::wire::rooms::ObservedEvent;

    fn ev(id: &str, depth: u64, prev: &[&str]) -> ObservedEvent {
        ObservedEvent {
            event_id: id.into(),
            depth,
            prev_events: prev.iter().map(|s| s.to_string()).collect(),
            event_type: None,
            state_key: None,
            content: None,
        }
    }

    #[test]
    fn observe_sign_flush_reload() {
        let d = tempfile::tempdir().expect("tempdir");
        let (rooms, seq) = Rooms::load(d.path().to_path_buf()).expect("load");
        assert_eq!(seq, 0);
        let v = rooms
            .observe(&ObserveParams {
                room_id: "!r:x".into(),
                room_version: None,
                events: vec![ev("$a", 10, &["$z"])],
            })
            .expect("observe");
        assert_eq!((v.max_depth, v.known_events, v.observed), (Some(10), 2, true));
        rooms.record_signed("!r:x", "$b", 11, None);
        rooms.with_facts("!r:x", |f| {
            assert_eq!(f.max_depth, Some(11));
            assert!((f.is_known)("$z") && (f.is_own)("$b") && !(f.is_own)("$a"));
        });
        assert_eq!(rooms.flush(7).expect("flush"), 1);
        drop(rooms);
        let (rooms, seq) = Rooms::load(d.path().to_path_buf()).expect("reload");
        assert_eq!(seq, 7);
        rooms.with_facts("!r:x", |f| assert!(f.observed && (f.is_own)("$b") && f.max_depth == Some(11)));
        rooms.with_facts("!unknown:x", |f| assert!(f.max_depth.is_none() && !f.observed));
    }

    #[test]
    fn replay_applies_journaled_signatures() {
        let d = tempfile::tempdir().expect("tempdir");
        let (rooms, _) = Rooms::load(d.path().to_path_buf()).expect("load");
        let entry = cryptoid_protocol::json::from_str(
            r#"{"room_id":"!r:x","signed":[{"event_id":"$s1","depth":40},{"event_id":"$s2","depth":41}]}"#,
        )
        .expect("entry")
        .into_object()
        .expect("object");
        assert_eq!(rooms.replay(&[entry]), 2);
        rooms.with_facts("!r:x", |f| assert!(f.max_depth == Some(41) && (f.is_own)("$s1")));
    }

    #[test]
    fn recent_is_bounded() {
        let mut r = Recent::default();
        for i in 0..RECENT + 10 {
            r.insert(format!("${i}"));
        }
        assert!(!r.contains("$0") && r.contains(&format!("${}", RECENT + 9)));
        assert_eq!(r.order.len(), RECENT);
    }
}
