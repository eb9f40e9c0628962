//! The room view: per room, the events the agent has observed
//! (`rooms.observe`) or signed with their depths, the events it signed
//! itself, the last power levels, the current authorization state (create,
//! power levels, join rules, memberships) with the events it superseded,
//! and the *anchor*: the newest authorization-relevant event (create, power
//! levels, join rules, a membership change that is not a join). The
//! anti-replay, auth-event and redaction checks read it.
//!
//! Only events actually observed or signed are known: an ID merely named in
//! someone's `prev_events` is not, so a homeserver cannot make the agent
//! "know" an event by citing it.
//!
//! Durability without fsyncs on the signing path: `rooms.observe` writes its
//! room's file before answering; signing updates memory only, and dirty
//! rooms are written every second with the journal sequence number they
//! cover (`state.json`). At start-up the journal entries after that number
//! (the signatures, each with its event ID, depth, type, state key and
//! membership) are replayed, so a crash loses nothing the journal has.

use crate::error::{PduError, Result};
use crate::fsutil;
use crate::policy::{Anchor, RoomFacts};
use crate::sync::MutexExt;
use cryptoid_protocol::base64;
use cryptoid_protocol::json::{Object, Value};
use cryptoid_protocol::wire::rooms::{ObserveParams, RoomView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;

/// Events remembered per room (known with depth, own, superseded). Forward
/// extremities are recent, so a bounded window suffices.
const RECENT: usize = 4096;

/// A bounded map that forgets its oldest members.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(from = "RecentOnDisk", into = "Vec<(String, i64)>")]
struct Recent {
    order: VecDeque<String>,
    map: HashMap<String, i64>,
}

/// `[[id, depth], …]`; views written before round 2 kept bare IDs (depth
/// unknown: recorded as 0, which only `own` ever held).
#[derive(Deserialize)]
#[serde(untagged)]
enum RecentOnDisk {
    WithDepth(Vec<(String, i64)>),
    Ids(Vec<String>),
}

impl From<RecentOnDisk> for Recent {
    fn from(v: RecentOnDisk) -> Recent {
        let mut r = Recent::default();
        match v {
            RecentOnDisk::WithDepth(v) => v.into_iter().for_each(|(id, depth)| r.insert(id, depth)),
            RecentOnDisk::Ids(v) => v.into_iter().for_each(|id| r.insert(id, 0)),
        }
        r
    }
}

impl From<Recent> for Vec<(String, i64)> {
    fn from(mut r: Recent) -> Vec<(String, i64)> {
        r.order.drain(..).filter_map(|id| r.map.get(&id).map(|d| (id.clone(), *d))).collect()
    }
}

impl Recent {
    /// Adds `id`; an ID already known keeps its depth (a later
    /// observation cannot re-date an event).
    fn insert(&mut self, id: String, depth: i64) {
        if let std::collections::hash_map::Entry::Vacant(v) = self.map.entry(id.clone()) {
            v.insert(depth);
            self.order.push_back(id);
            if self.order.len() > RECENT {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }

    fn get(&self, id: &str) -> Option<i64> {
        self.map.get(id).copied()
    }

    fn len(&self) -> usize {
        self.order.len()
    }

    fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.order.retain(|id| keep(id));
        self.map.retain(|id, _| keep(id));
    }
}

/// The newest authorization-relevant event of a room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnchorState {
    event_id: String,
    depth: i64,
    /// What it is, for reasons: `m.room.power_levels`, `ban of 3TPraTczVkDP…`.
    what: String,
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
    /// Observed or signed events and their depths.
    #[serde(default)]
    events: Recent,
    #[serde(default)]
    own: Recent,
    #[serde(default)]
    power_levels: Option<Value>,
    /// Depth of the power levels in `power_levels` (the newest wins).
    #[serde(default)]
    power_levels_depth: Option<i64>,
    #[serde(default)]
    anchor: Option<AnchorState>,
    /// Current authorization state: `type\u{0}state_key` → (event ID, depth).
    #[serde(default)]
    auth_state: BTreeMap<String, (String, i64)>,
    /// Memberships a newer one replaced.
    #[serde(default)]
    superseded: Recent,
    /// Create, power levels, join rules and third-party invites a newer one
    /// replaced: kept apart, so a flood of memberships cannot evict them.
    #[serde(default)]
    superseded_rules: Recent,
    /// Members' Matrix IDs by cryptoID, from the `mxid_mapping` of their
    /// observed `m.room.member` events.
    #[serde(default)]
    members: BTreeMap<String, MemberName>,
    /// The room's name (`m.room.name`), for prompts.
    #[serde(default)]
    name: Option<String>,
    /// The current content of its security settings (join rules, ACL,
    /// encryption…; `policy::settings::TYPES`) by `type\u{0}state_key`,
    /// with its depth (the newest wins), for prompts' old → new.
    #[serde(default)]
    settings: BTreeMap<String, (i64, Value)>,
    /// Before round 2 the view kept bare IDs, including IDs only named as
    /// `prev_events`; those are not evidence of anything and are dropped.
    #[serde(default, skip_serializing)]
    #[allow(dead_code)]
    known: Option<serde_json::Value>,
}

/// A member's Matrix ID, and whether its server's signature on the mapping
/// verified with a key given to `rooms.observe` (else the homeserver only
/// claims it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberName {
    pub user_id: String,
    pub verified: bool,
}

/// Server keys given to `rooms.observe`: `{server: {key_id: key}}`.
pub type ServerKeys = BTreeMap<String, BTreeMap<String, String>>;

/// The name an `m.room.member` event's `mxid_mapping` gives its state key,
/// if the mapping is for that cryptoID; verified when the user's server
/// signed it with a key in `keys`.
pub fn mxid_mapping(state_key: &str, content: &Object, keys: &ServerKeys) -> Option<MemberName> {
    let m = content.get("mxid_mapping")?.as_object()?;
    let user_id = m.get("user_id")?.as_str()?;
    if m.get("user_room_key")?.as_str()? != state_key || !is_user_id(user_id) {
        return None;
    }
    let server = user_id.split_once(':')?.1;
    let verified = keys.get(server).is_some_and(|ks| {
        ks.iter().any(|(key_id, key)| {
            cryptoid_protocol::keys::PublicKey::from_base64(key)
                .is_ok_and(|k| cryptoid_protocol::event::verify_json(m, server, key_id, &k).is_ok())
        })
    });
    Some(MemberName { user_id: user_id.to_owned(), verified })
}

/// A Matrix user ID by the grammar (`@localpart:server`, at most 255
/// bytes, no spaces, brackets or controls): nothing that could dress up as
/// other prompt text.
fn is_user_id(u: &str) -> bool {
    let Some((local, server)) = u.strip_prefix('@').and_then(|r| r.split_once(':')) else { return false };
    let local_ok =
        !local.is_empty() && local.chars().all(|c| c.is_ascii_alphanumeric() || "._=-/+".contains(c));
    let server_ok =
        !server.is_empty() && server.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    u.len() <= 255 && local_ok && server_ok
}

/// Most settings kept per room (space children are keyed by room): a
/// homeserver cannot grow a room's view without bound through them.
const MAX_SETTINGS: usize = 1024;

/// State types the authorization rules read (an `auth_events` candidate).
const AUTH_TYPES: [&str; 5] = [
    "m.room.create",
    "m.room.power_levels",
    "m.room.join_rules",
    "m.room.member",
    "m.room.third_party_invite",
];

/// An event observed or signed, as the room view records it.
pub struct Seen<'a> {
    pub event_id: &'a str,
    pub depth: i64,
    pub event_type: Option<&'a str>,
    pub state_key: Option<&'a str>,
    pub content: Option<&'a Object>,
}

impl<'a> Seen<'a> {
    /// The facts of a PDU.
    pub fn of_pdu(event_id: &'a str, depth: i64, pdu: &'a Object) -> Seen<'a> {
        Seen {
            event_id,
            depth,
            event_type: pdu.get("type").and_then(Value::as_str),
            state_key: pdu.get("state_key").and_then(Value::as_str),
            content: pdu.get("content").and_then(Value::as_object),
        }
    }
}

impl RoomState {
    fn see(&mut self, e: &Seen<'_>) {
        self.events.insert(e.event_id.to_owned(), e.depth);
        self.max_depth = Some(self.max_depth.map_or(e.depth, |d| d.max(e.depth)));
        let (Some(ty), Some(sk)) = (e.event_type, e.state_key) else { return };
        if ty == "m.room.create" && sk.is_empty() && self.room_version.is_none() {
            // Servers read the version from the create event (absent: "1").
            let v = e.content.and_then(|c| c.get("room_version")).and_then(Value::as_str).unwrap_or("1");
            self.room_version = Some(v.to_owned());
        }
        if ty == "m.room.name" && sk.is_empty() {
            // Shown to people only (escaped there), never decided on.
            let name = e.content.and_then(|c| c.get("name")).and_then(Value::as_str);
            self.name = name.filter(|n| !n.is_empty()).map(|n| n.chars().take(100).collect());
        }
        if crate::policy::settings::TYPES.contains(&ty) {
            let keyed = matches!(ty, "m.room.third_party_invite" | "m.space.child" | "m.space.parent");
            if let (Some(c), true) = (e.content, keyed || sk.is_empty()) {
                let key = format!("{ty}\u{0}{sk}");
                let newer = self.settings.get(&key).is_none_or(|(d, _)| *d <= e.depth);
                if newer && (self.settings.contains_key(&key) || self.settings.len() < MAX_SETTINGS) {
                    self.settings.insert(key, (e.depth, Value::Object(c.clone())));
                }
            }
        }
        // Only the empty state key makes a create, power levels or join
        // rules event the room's: under "x" it is a state event no server
        // reads for authorization. Memberships and third-party invites are
        // keyed by their state key.
        let keyed = matches!(ty, "m.room.member" | "m.room.third_party_invite");
        if !AUTH_TYPES.contains(&ty) || (!keyed && !sk.is_empty()) {
            return;
        }
        let membership = e.content.and_then(|c| c.get("membership")).and_then(Value::as_str);
        let key = format!("{ty}\u{0}{sk}");
        let superseded =
            if ty == "m.room.member" { &mut self.superseded } else { &mut self.superseded_rules };
        let newest = match self.auth_state.get(&key) {
            Some((id, _)) if id == e.event_id => true,
            Some((_, d)) if *d > e.depth => {
                superseded.insert(e.event_id.to_owned(), e.depth);
                false
            }
            Some((id, d)) if *d < e.depth => {
                superseded.insert(id.clone(), *d);
                true
            }
            // Same depth, another event: a fork. Keep the first; flag neither.
            Some(_) => false,
            None => true,
        };
        if newest {
            self.auth_state.insert(key, (e.event_id.to_owned(), e.depth));
            if ty == "m.room.power_levels" && self.power_levels_depth.is_none_or(|d| d <= e.depth) {
                if let Some(c) = e.content {
                    self.power_levels = Some(Value::Object(c.clone()));
                    self.power_levels_depth = Some(e.depth);
                }
            }
        }
        let what = match (ty, membership) {
            ("m.room.member", Some("join")) | ("m.room.third_party_invite", _) => return,
            ("m.room.member", m) => {
                format!("{} of {}", m.unwrap_or("membership change"), crate::policy::power::short(sk))
            }
            _ => ty.to_owned(),
        };
        if self.anchor.as_ref().is_none_or(|a| a.depth < e.depth) {
            self.anchor = Some(AnchorState { event_id: e.event_id.to_owned(), depth: e.depth, what });
        }
    }

    fn view(&self) -> RoomView {
        RoomView {
            room_id: self.room_id.clone(),
            max_depth: self.max_depth.and_then(|d| u64::try_from(d).ok()),
            known_events: self.events.len() as u64,
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
    /// Server keys pinned on first sight (`server_keys.json`): a later
    /// `rooms.observe` cannot swap one and so upgrade a forged mapping.
    pinned: Mutex<ServerKeys>,
}

const PINNED_KEYS: &str = "server_keys.json";

impl Rooms {
    /// Loads every room file; returns the journal sequence number they cover.
    pub fn load(dir: PathBuf) -> Result<(Rooms, u64)> {
        fsutil::private_dir(&dir)?;
        fsutil::remove_stale_temps(&dir)?;
        let mut rooms = HashMap::new();
        let mut seq = 0;
        let mut pinned = ServerKeys::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let bytes = std::fs::read(&path)?;
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name == "state.json" {
                seq = serde_json::from_slice::<Marker>(&bytes).map(|m| m.seq).unwrap_or(0);
            } else if name == PINNED_KEYS {
                pinned = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "ignoring damaged pinned server keys");
                    ServerKeys::new()
                });
            } else if name.ends_with(".json") {
                match serde_json::from_slice::<RoomState>(&bytes) {
                    Ok(mut r) => {
                        // Views before round 3 may hold carried (v1/v2)
                        // IDs as own: the homeserver chose those.
                        r.own.retain(|id| !id.contains(':'));
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
        let rooms = Rooms {
            dir,
            rooms: Mutex::new(rooms),
            dirty: Mutex::new(HashSet::new()),
            pinned: Mutex::new(pinned),
        };
        Ok((rooms, seq))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RoomState>> {
        self.rooms.locked()
    }

    fn path_of(&self, room_id: &str) -> PathBuf {
        let h: [u8; 32] = Sha256::digest(room_id.as_bytes()).into();
        self.dir.join(format!("{}.json", base64::encode_url_safe(&h[..18])))
    }

    fn write(&self, room: &RoomState) -> Result<()> {
        let bytes = serde_json::to_vec(room).map_err(crate::error::Error::internal)?;
        fsutil::write_atomic(&self.path_of(&room.room_id), &bytes)?;
        Ok(())
    }

    /// Feeds observed events; written durably before returning. Events are
    /// applied in depth order, so a `/sync` batch in any order ends with the
    /// newest state current.
    pub fn observe(&self, p: &ObserveParams) -> Result<RoomView> {
        let keys = self.pin(&p.server_keys)?;
        // The version the call implies: its `room_version`, and the
        // version its create event names; they must agree with each other
        // and with what the agent already knows.
        let from_create = p.events.iter().find_map(|e| {
            (e.event_type.as_deref() == Some("m.room.create") && e.state_key.as_deref() == Some("")).then(
                || {
                    e.content
                        .as_ref()
                        .and_then(Value::as_object)
                        .and_then(|c| c.get("room_version"))
                        .and_then(Value::as_str)
                        .unwrap_or("1")
                },
            )
        });
        if let (Some(given), Some(create)) = (p.room_version.as_deref(), from_create) {
            if given != create {
                return Err(PduError::RoomVersionMismatch {
                    room: p.room_id.clone(),
                    known: create.to_owned(),
                    given: given.to_owned(),
                }
                .into());
            }
        }
        let implied = p.room_version.as_deref().or(from_create);
        let snapshot = {
            let mut rooms = self.lock();
            if let (Some(known), Some(given)) =
                (rooms.get(&p.room_id).and_then(|r| r.room_version.as_deref()), implied)
            {
                if known != given {
                    return Err(PduError::RoomVersionMismatch {
                        room: p.room_id.clone(),
                        known: known.to_owned(),
                        given: given.to_owned(),
                    }
                    .into());
                }
            }
            let r = rooms
                .entry(p.room_id.clone())
                .or_insert_with(|| RoomState { room_id: p.room_id.clone(), ..Default::default() });
            r.observed = true;
            if let Some(v) = implied {
                r.room_version = Some(v.to_owned());
            }
            let mut events: Vec<_> = p.events.iter().collect();
            events.sort_by_key(|e| e.depth);
            for e in &events {
                if let (Some("m.room.member"), Some(sk), Some(c)) = (
                    e.event_type.as_deref(),
                    e.state_key.as_deref(),
                    e.content.as_ref().and_then(Value::as_object),
                ) {
                    if let Some(name) = mxid_mapping(sk, c, &keys) {
                        r.members.insert(sk.to_owned(), name);
                    }
                }
            }
            for e in events {
                r.see(&Seen {
                    event_id: &e.event_id,
                    depth: i64::try_from(e.depth).unwrap_or(i64::MAX),
                    event_type: e.event_type.as_deref(),
                    state_key: e.state_key.as_deref(),
                    content: e.content.as_ref().and_then(Value::as_object),
                });
            }
            r.clone()
        };
        self.write(&snapshot)?;
        Ok(snapshot.view())
    }

    /// Pins server keys not seen before (durably); returns every pinned key.
    /// A different key under a pinned (server, key ID) is ignored, loudly.
    fn pin(&self, offered: &ServerKeys) -> Result<ServerKeys> {
        let mut pinned = self.pinned.locked();
        let mut changed = false;
        for (server, keys) in offered {
            for (id, key) in keys {
                let slot = pinned.entry(server.clone()).or_default();
                match slot.get(id) {
                    None => {
                        slot.insert(id.clone(), key.clone());
                        changed = true;
                    }
                    Some(k) if k != key => {
                        tracing::warn!(server, key_id = id, "ignoring another key for a pinned server key");
                    }
                    Some(_) => {}
                }
            }
        }
        if changed {
            let bytes = serde_json::to_vec(&*pinned).map_err(crate::error::Error::internal)?;
            fsutil::write_atomic(&self.dir.join(PINNED_KEYS), &bytes)?;
        }
        Ok(pinned.clone())
    }

    /// Records an event the agent signed (memory now, disk at the next flush)
    /// under `room_version` (its first signature there fixes the room's
    /// version when nothing else has). It counts as the user's own only
    /// when `own`: its event ID was computed from what was signed (room
    /// versions 1 and 2 carry an ID the homeserver chose, which may be
    /// someone else's event).
    pub fn record_signed(&self, room_id: &str, e: &Seen<'_>, room_version: Option<&str>, own: bool) {
        let mut rooms = self.lock();
        let r = rooms
            .entry(room_id.to_owned())
            .or_insert_with(|| RoomState { room_id: room_id.to_owned(), ..Default::default() });
        if r.room_version.is_none() {
            r.room_version = room_version.map(str::to_owned);
        }
        r.see(e);
        // Redacting one's own message is one's own business; redacting
        // one's own state event (an ACL, the encryption) empties it for
        // everyone, so it is not recorded as a silent "own" target.
        if own && e.state_key.is_none() {
            r.own.insert(e.event_id.to_owned(), e.depth);
        }
        drop(rooms);
        self.dirty.locked().insert(room_id.to_owned());
    }

    /// The room's version, once known (create event, `rooms.observe`, or
    /// the first PDU signed there).
    pub fn version_of(&self, room_id: &str) -> Option<String> {
        self.lock().get(room_id).and_then(|r| r.room_version.clone())
    }

    /// The room's name, if an `m.room.name` was observed or signed.
    pub fn name(&self, room_id: &str) -> Option<String> {
        self.lock().get(room_id).and_then(|r| r.name.clone())
    }

    /// Runs `f` with what the agent knows of `room_id`.
    pub fn with_facts<R>(&self, room_id: &str, f: impl FnOnce(&RoomFacts<'_>) -> R) -> R {
        let rooms = self.lock();
        match rooms.get(room_id) {
            None => f(&RoomFacts::unknown()),
            Some(r) => {
                let depth_of = |id: &str| r.events.get(id);
                let own = |id: &str| r.own.get(id).is_some();
                let superseded =
                    |id: &str| r.superseded.get(id).is_some() || r.superseded_rules.get(id).is_some();
                let member = |id: &str| r.members.get(id).map(|m| (m.user_id.clone(), m.verified));
                let setting = |ty: &str, sk: &str| {
                    r.settings.get(&format!("{ty}\u{0}{sk}")).and_then(|(_, v)| v.as_object())
                };
                f(&RoomFacts {
                    exists: true,
                    observed: r.observed,
                    max_depth: r.max_depth,
                    depth_of: &depth_of,
                    is_own: &own,
                    power_levels: r.power_levels.as_ref().and_then(Value::as_object),
                    setting: &setting,
                    anchor: r.anchor.as_ref().map(|a| Anchor {
                        event_id: &a.event_id,
                        depth: a.depth,
                        what: &a.what,
                    }),
                    is_superseded: &superseded,
                    member: &member,
                })
            }
        }
    }

    /// Writes the rooms changed since the last flush, then the marker `seq`
    /// (read from the journal *before* calling, so replay covers the rest).
    pub fn flush(&self, seq: u64) -> Result<usize> {
        let dirty: Vec<String> = self.dirty.locked().drain().collect();
        let snapshots: Vec<RoomState> = {
            let rooms = self.lock();
            dirty.iter().filter_map(|id| rooms.get(id).cloned()).collect()
        };
        for r in &snapshots {
            if let Err(e) = self.write(r) {
                // Keep it dirty; the journal still has it.
                self.dirty.locked().insert(r.room_id.clone());
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
                let (Some(id), Some(depth)) =
                    (s.get("event_id").and_then(Value::as_str), s.get("depth").and_then(Value::as_int))
                else {
                    continue;
                };
                let content: Option<Object> = s.get("membership").map(|m| {
                    let mut c = Object::new();
                    c.insert("membership".into(), m.clone());
                    c
                });
                let version = s.get("room_version").and_then(Value::as_str);
                // Entries before round 3: a carried (v1/v2) ID has a ':'.
                let own = match version.and_then(|v| cryptoid_protocol::RoomVersion::from_id(v).ok()) {
                    Some(rv) => rv.event_id_format() != cryptoid_protocol::EventIdFormat::Carried,
                    None => !id.contains(':'),
                };
                self.record_signed(
                    room,
                    &Seen {
                        event_id: id,
                        depth,
                        event_type: s.get("type").and_then(Value::as_str),
                        state_key: s.get("state_key").and_then(Value::as_str),
                        content: content.as_ref(),
                    },
                    version,
                    own,
                );
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoid_protocol::json::from_str;
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

    fn state(id: &str, depth: u64, ty: &str, sk: &str, content: &str) -> ObservedEvent {
        ObservedEvent {
            event_type: Some(ty.into()),
            state_key: Some(sk.into()),
            content: Some(from_str(content).expect("content")),
            ..ev(id, depth, &[])
        }
    }

    fn observe(rooms: &Rooms, events: Vec<ObservedEvent>) -> RoomView {
        rooms
            .observe(&ObserveParams {
                room_id: "!r:x".into(),
                room_version: None,
                events,
                server_keys: Default::default(),
            })
            .expect("observe")
    }

    #[test]
    fn observe_sign_flush_reload() {
        let d = tempfile::tempdir().expect("tempdir");
        let (rooms, seq) = Rooms::load(d.path().to_path_buf()).expect("load");
        assert_eq!(seq, 0);
        let v = observe(&rooms, vec![ev("$a", 10, &["$z"])]);
        // `$z` is only named as a prev_event: not known.
        assert_eq!((v.max_depth, v.known_events, v.observed), (Some(10), 1, true));
        rooms.record_signed(
            "!r:x",
            &Seen { event_id: "$b", depth: 11, event_type: None, state_key: None, content: None },
            None,
            true,
        );
        rooms.with_facts("!r:x", |f| {
            assert_eq!(f.max_depth, Some(11));
            assert_eq!(
                ((f.depth_of)("$a"), (f.depth_of)("$b"), (f.depth_of)("$z")),
                (Some(10), Some(11), None)
            );
            assert!((f.is_own)("$b") && !(f.is_own)("$a") && f.exists);
        });
        assert_eq!(rooms.flush(7).expect("flush"), 1);
        drop(rooms);
        let (rooms, seq) = Rooms::load(d.path().to_path_buf()).expect("reload");
        assert_eq!(seq, 7);
        rooms.with_facts("!r:x", |f| assert!(f.observed && (f.is_own)("$b") && f.max_depth == Some(11)));
        rooms.with_facts("!unknown:x", |f| assert!(f.max_depth.is_none() && !f.observed && !f.exists));
    }

    #[test]
    fn the_anchor_is_the_newest_authorization_event_and_superseded_ones_are_flagged() {
        let d = tempfile::tempdir().expect("tempdir");
        let (rooms, _) = Rooms::load(d.path().to_path_buf()).expect("load");
        // Delivered out of order on purpose: the view sorts by depth.
        observe(
            &rooms,
            vec![
                state("$ban", 9, "m.room.member", "@m", r#"{"membership":"ban"}"#),
                state("$pl2", 8, "m.room.power_levels", "", r#"{"users":{"a":100}}"#),
                state("$c", 1, "m.room.create", "", "{}"),
                state("$pl1", 3, "m.room.power_levels", "", r#"{"users":{"a":100,"m":100}}"#),
                state("$join", 12, "m.room.member", "@a", r#"{"membership":"join"}"#),
                ev("$msg", 13, &[]),
            ],
        );
        rooms.with_facts("!r:x", |f| {
            let a = f.anchor.as_ref().expect("anchor");
            assert_eq!((a.event_id, a.depth, a.what), ("$ban", 9, "ban of @m"), "joins do not anchor");
            assert!((f.is_superseded)("$pl1") && !(f.is_superseded)("$pl2") && !(f.is_superseded)("$c"));
            let users = f.power_levels.and_then(|p| p.get("users")).and_then(Value::as_object).expect("pl");
            assert_eq!(users.len(), 1, "the newest power levels are current");
        });
        // An older power levels event arriving later does not replace them.
        observe(&rooms, vec![state("$pl0", 2, "m.room.power_levels", "", "{}")]);
        rooms.with_facts("!r:x", |f| {
            assert!((f.is_superseded)("$pl0"));
            assert!(f.power_levels.is_some_and(|p| p.contains_key("users")));
        });
    }

    #[test]
    fn replay_applies_journaled_signatures() {
        let d = tempfile::tempdir().expect("tempdir");
        let (rooms, _) = Rooms::load(d.path().to_path_buf()).expect("load");
        let entry = from_str(
            r#"{"room_id":"!r:x","signed":[{"event_id":"$s1","depth":40},{"event_id":"$s2","depth":41,"type":"m.room.member","state_key":"@m","membership":"leave"}]}"#,
        )
        .expect("entry")
        .into_object()
        .expect("object");
        assert_eq!(rooms.replay(&[entry]), 2);
        rooms.with_facts("!r:x", |f| {
            assert!(f.max_depth == Some(41) && (f.is_own)("$s1"));
            assert_eq!(f.anchor.as_ref().map(|a| a.event_id), Some("$s2"), "a replayed kick anchors");
        });
    }

    #[test]
    fn recent_is_bounded() {
        let mut r = Recent::default();
        for i in 0..RECENT + 10 {
            r.insert(format!("${i}"), i as i64);
        }
        assert!(r.get("$0").is_none() && r.get(&format!("${}", RECENT + 9)).is_some());
        assert_eq!(r.order.len(), RECENT);
        assert_eq!(r.map.len(), RECENT);
    }

    #[test]
    fn a_view_written_before_round_2_loads_without_its_unproven_ids() {
        let d = tempfile::tempdir().expect("tempdir");
        let old = r#"{"room_id":"!r:x","observed":true,"max_depth":9,"known":["$a","$z"],"own":["$o"],"power_levels":null}"#;
        std::fs::write(d.path().join("old.json"), old).expect("write");
        let (rooms, _) = Rooms::load(d.path().to_path_buf()).expect("load");
        rooms.with_facts("!r:x", |f| {
            assert!(f.observed && f.max_depth == Some(9) && (f.depth_of)("$a").is_none() && (f.is_own)("$o"))
        });
    }
}
