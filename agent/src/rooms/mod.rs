//! The room view: per room, the events the agent has observed
//! (`rooms.observe`) or signed with their depths, the events it signed
//! itself, the last power levels, the current authorization state (create,
//! power levels, join rules, memberships) with the events it superseded,
//! the members' names, the room's security settings, and the *anchor*: the
//! newest authorization-relevant event (create, power levels, join rules,
//! a membership change that is not a join). The anti-replay, auth-event and
//! redaction checks and the prompts read it.
//!
//! Only events actually observed or signed are known: an ID merely named in
//! someone's `prev_events` is not, so a homeserver cannot make the agent
//! "know" an event by citing it.
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | [`Rooms`]: observe, record, read, flush, replay; member names |
//! | [`store`] | the database's tables, bounded sets, per-room limits |
//! | [`view`] | a room's in-memory summary and how one event changes the view |
//! | [`migrate`] | the JSON files of older releases, imported on first start |
//!
//! **Storage.** One redb database (`rooms/rooms.redb`): a call writes what
//! it changes, O(events), never a whole room. `rooms.observe` commits
//! durably before answering, in chunks, so a signature elsewhere waits at
//! most for one chunk. A signature commits without an fsync; every second a
//! durable commit makes them durable with the journal sequence number they
//! cover, and at start-up the journal entries after it (each signature with
//! its event ID, depth, version, type, state key and membership) are
//! replayed, so a crash loses nothing the journal has.
//!
//! **Memory.** Per room only a summary stays in memory ([`view::Meta`]:
//! version, depths, anchor, power levels, name, counters); events, members,
//! authorization state and settings live in the database (its cache is 2
//! MiB). Past [`store::MAX_AUTH_STATE`] members a room's observe is refused
//! with `room_limit`.
//!
//! **Locks.** Parsing and checking `mxid_mapping` signatures happen before
//! any lock; a room's own lock is held while its changes are applied, and a
//! reader of another room never waits for it.

pub mod migrate;
pub mod store;
pub mod verify;
pub mod view;

use crate::error::{Error, PduError, Result};
use crate::fsutil;
use crate::policy::{Anchor, RoomFacts, RoomViewMode};
use crate::sync::MutexExt;
use cryptoid_protocol::json::{Object, Value};
use cryptoid_protocol::wire::rooms::{ObserveParams, RoomView};
use redb::{Durability, ReadableTable};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use store::{db_err, Writer};
use view::Meta;

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

/// How far the agent can vouch for a fact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grade {
    /// Verified (event ID, hashes, signature, authorization rules against
    /// held `auth_events`), signed by this agent, or, under `room_view =
    /// "claimed"`, taken on the homeserver's word as older releases did.
    Trusted,
    /// Only claimed by the homeserver: it may widen a diff, nothing more.
    Claimed,
}

/// An event observed or signed, as the room view records it.
pub struct Seen<'a> {
    pub event_id: &'a str,
    pub depth: i64,
    pub event_type: Option<&'a str>,
    pub state_key: Option<&'a str>,
    pub content: Option<&'a Object>,
    pub grade: Grade,
    /// The whole event, verified and authorized, when later events'
    /// `auth_events` may cite it: kept in the `full` table.
    pub full: Option<&'a Object>,
}

impl<'a> Seen<'a> {
    /// The facts of a PDU (trusted: this agent signed it).
    pub fn of_pdu(event_id: &'a str, depth: i64, pdu: &'a Object) -> Seen<'a> {
        Seen {
            event_id,
            depth,
            event_type: pdu.get("type").and_then(Value::as_str),
            state_key: pdu.get("state_key").and_then(Value::as_str),
            content: pdu.get("content").and_then(Value::as_object),
            grade: Grade::Trusted,
            full: None,
        }
    }
}

const PINNED_KEYS: &str = "server_keys.json";
const DATABASE: &str = "rooms.redb";
/// The database's page cache: what the view may hold in memory beyond the
/// summaries.
const CACHE_BYTES: usize = 2 << 20;
/// Events applied per write transaction of an observe: a signature in
/// another room waits at most for one chunk.
const CHUNK: usize = 500;

/// Each room's summary, behind its own lock.
type Summaries = HashMap<String, Arc<Mutex<Meta>>>;

pub struct Rooms {
    dir: PathBuf,
    /// Reopened after a storage error (redb refuses every call until then);
    /// `None` only while that happens.
    db: RwLock<Option<redb::Database>>,
    /// A write failed: reads are refused (the policy denies) until the
    /// database is reopened and the journal replayed (see [`Rooms::recover`]).
    broken: std::sync::atomic::AtomicBool,
    /// Each room's summary, behind its own lock.
    rooms: RwLock<Summaries>,
    /// Rooms with signatures not yet made durable.
    dirty: Mutex<HashSet<String>>,
    /// Server keys pinned on first sight (`server_keys.json`): a later
    /// `rooms.observe` cannot swap one and so upgrade a forged mapping.
    pinned: Mutex<ServerKeys>,
    /// Authorization-state entries (members) a room may hold.
    max_auth: u64,
    /// `[member_redaction]`: room version ID → variant.
    member_redaction: BTreeMap<String, cryptoid_protocol::MemberRedaction>,
}

impl Rooms {
    /// Opens the view (migrating an older release's files); returns the
    /// journal sequence number it covers.
    pub fn load(dir: PathBuf) -> Result<(Rooms, u64)> {
        Rooms::load_with_limit(dir, store::MAX_AUTH_STATE)
    }

    /// [`Rooms::load`] with another member limit (tests reach it).
    pub fn load_with_limit(dir: PathBuf, max_auth: u64) -> Result<(Rooms, u64)> {
        fsutil::private_dir(&dir)?;
        fsutil::remove_stale_temps(&dir)?;
        let path = dir.join(DATABASE);
        let db = open_db(&path)?;
        let pinned = match std::fs::read(dir.join(PINNED_KEYS)) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "ignoring damaged pinned server keys");
                ServerKeys::new()
            }),
            Err(_) => ServerKeys::new(),
        };
        let (legacy, marker) = migrate::legacy_files(&dir)?;
        if !legacy.is_empty() || marker.is_some() {
            let n = migrate::import(&db, &legacy, marker.as_deref())?.len();
            for p in legacy.iter().chain(marker.iter()) {
                std::fs::remove_file(p)?;
            }
            fsutil::sync_dir(&dir)?;
            tracing::info!(rooms = n, "room view moved from JSON files into {DATABASE}");
        }
        // Every table exists from the start: readers open them all. (On a
        // full disk this may fail; readers then see an unknown view.)
        let create_tables = || -> Result<()> {
            let tx = db.begin_write().map_err(db_err)?;
            drop(Writer::open(&tx)?);
            drop(tx.open_table(store::MARKER).map_err(db_err)?);
            tx.commit().map_err(db_err)
        };
        if let Err(e) = create_tables() {
            tracing::warn!(error = %e, "could not prepare the room view's tables");
        }
        let (rooms, seq) = read_summaries(&db)?;
        let rooms = Rooms {
            dir,
            db: RwLock::new(Some(db)),
            broken: std::sync::atomic::AtomicBool::new(false),
            rooms: RwLock::new(rooms),
            dirty: Mutex::new(HashSet::new()),
            pinned: Mutex::new(pinned),
            max_auth,
            member_redaction: BTreeMap::new(),
        };
        Ok((rooms, seq))
    }

    /// The room's summary, if the view holds it.
    fn get(&self, room_id: &str) -> Option<Arc<Mutex<Meta>>> {
        self.rooms.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(room_id).cloned()
    }

    fn get_or_create(&self, room_id: &str) -> Arc<Mutex<Meta>> {
        if let Some(m) = self.get(room_id) {
            return m;
        }
        let mut rooms = self.rooms.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        rooms.entry(room_id.to_owned()).or_default().clone()
    }

    /// Feeds observed events; durable before returning. Full events
    /// (`pdus`) are verified first ([`verify`]) and one that fails refuses
    /// the call; summaries (`events`) are claims, trusted only under
    /// `room_view = "claimed"`. Events are applied in depth order, so a
    /// `/sync` batch in any order ends with the newest state current.
    pub fn observe(&self, mut p: ObserveParams, mode: RoomViewMode) -> Result<RoomView> {
        let keys = self.pin(&p.server_keys)?;
        // The version the call implies: its `room_version`, and the
        // version its create event names; they must agree with each other
        // and with what the agent already knows.
        let summary_create = p.events.iter().find_map(|e| {
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
        let pdus = std::mem::take(&mut p.pdus);
        let pdu_create: Option<String> =
            pdus.iter().filter_map(Value::as_object).find(|e| cryptoid_protocol::event::is_create(e)).map(
                |e| {
                    e.get("content")
                        .and_then(Value::as_object)
                        .and_then(|c| c.get("room_version"))
                        .and_then(Value::as_str)
                        .unwrap_or("1")
                        .to_owned()
                },
            );
        let pdu_create = pdu_create.as_deref();
        let mismatch = |known: &str, given: &str| -> Error {
            PduError::RoomVersionMismatch {
                room: p.room_id.clone(),
                known: known.to_owned(),
                given: given.to_owned(),
            }
            .into()
        };
        if let (Some(a), Some(b)) = (summary_create, pdu_create) {
            if a != b {
                return Err(mismatch(b, a));
            }
        }
        let from_create = pdu_create.or(summary_create);
        if let (Some(given), Some(create)) = (p.room_version.as_deref(), from_create) {
            if given != create {
                return Err(mismatch(create, given));
            }
        }
        let implied = p.room_version.as_deref().or(from_create);
        let existed = self.get(&p.room_id).is_some();
        let slot = self.get_or_create(&p.room_id);
        let known_version = slot.locked().room_version.clone();
        if let (Some(known), Some(given)) = (known_version.as_deref(), implied) {
            if known != given {
                return Err(mismatch(known, given));
            }
        }
        let room = p.room_id.as_str();
        let checked = if pdus.is_empty() {
            Vec::new()
        } else {
            let version = implied.map(str::to_owned).or(known_version).ok_or_else(|| Error::Observed {
                room: room.to_owned(),
                index: 0,
                event_id: "?".into(),
                source: crate::error::ObservedError::NoRoomVersion,
            })?;
            let rv = self.version(&version).ok_or_else(|| {
                PduError::UnsupportedRoomVersion(
                    cryptoid_protocol::UnknownRoomVersion(version.clone()).to_string(),
                )
            })?;
            self.with_reader(room, |view| verify::check(room, &rv, pdus, &keys, view))?
        };
        let summary_grade = match mode {
            RoomViewMode::Verified => Grade::Claimed,
            RoomViewMode::Claimed => Grade::Trusted,
        };
        let mut seen: Vec<Seen<'_>> = p
            .events
            .iter()
            .map(|e| Seen {
                event_id: &e.event_id,
                depth: i64::try_from(e.depth).unwrap_or(i64::MAX),
                event_type: e.event_type.as_deref(),
                state_key: e.state_key.as_deref(),
                content: e.content.as_ref().and_then(Value::as_object),
                grade: summary_grade,
                full: None,
            })
            .collect();
        seen.extend(checked.iter().map(|c| {
            let mut s = Seen::of_pdu(&c.event_id, c.depth, &c.event);
            s.grade = c.grade;
            s.full = (c.grade == Grade::Trusted && verify::is_auth_event(&c.event)).then_some(&c.event);
            s
        }));
        seen.sort_by_key(|e| e.depth);
        let (verified, claimed) = (
            seen.iter().filter(|e| e.grade == Grade::Trusted).count() as u64,
            seen.iter().filter(|e| e.grade == Grade::Claimed).count() as u64,
        );
        // Member names (their server signatures checked here, before any lock).
        let names: Vec<(&str, MemberName)> = seen
            .iter()
            .filter_map(|e| match (e.event_type, e.state_key, e.content) {
                (Some("m.room.member"), Some(sk), Some(c)) => mxid_mapping(sk, c, &keys).map(|n| (sk, n)),
                _ => None,
            })
            .collect();
        let chunks: Vec<&[Seen<'_>]> = if seen.is_empty() { vec![&[]] } else { seen.chunks(CHUNK).collect() };
        let last = chunks.len() - 1;
        let mut applied = 0;
        for (i, chunk) in chunks.into_iter().enumerate() {
            // The room's lock for one chunk at a time: a signature in this
            // room waits for one chunk, not for the whole call.
            let mut meta = slot.locked();
            let mut m = meta.clone();
            if chunk.iter().any(|e| e.grade == Grade::Trusted) {
                m.observed = true;
            }
            if let Some(v) = implied {
                m.room_version = Some(v.to_owned());
            }
            let outcome = self.with_db(|db| {
                let mut tx = db.begin_write().map_err(db_err)?;
                // The last chunk makes the whole call durable.
                tx.set_durability(if i == last { Durability::Immediate } else { Durability::None });
                {
                    let mut w = Writer::with_limit(&tx, self.max_auth)?;
                    if i == 0 {
                        // Names are for prompts only: past the limit a
                        // member stays unnamed (shown by key), never wrong.
                        for (sk, name) in &names {
                            m.name_member(&mut w, room, sk, name)?;
                        }
                    }
                    for e in chunk {
                        if let Err(over) = m.see(&mut w, room, e)? {
                            return Ok(Err(over));
                        }
                    }
                    m.store(&mut w, room)?;
                }
                tx.commit().map_err(db_err)?;
                Ok(Ok(()))
            });
            match outcome {
                Ok(Ok(())) => {
                    applied += chunk.len();
                    *meta = m;
                }
                Ok(Err(over)) => {
                    drop(meta);
                    // What was kept is durable before the answer says so.
                    self.with_db(|db| {
                        let mut tx = db.begin_write().map_err(db_err)?;
                        tx.set_durability(Durability::Immediate);
                        tx.commit().map_err(db_err)
                    })?;
                    return Err(limit(room, over, applied));
                }
                Err(e) => {
                    drop(meta);
                    if !existed && applied == 0 {
                        // Nothing of it was kept: the view does not hold it.
                        self.rooms.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(room);
                    }
                    return Err(e);
                }
            }
        }
        let meta = slot.locked();
        Ok(RoomView {
            room_id: p.room_id.clone(),
            max_depth: meta.max_depth.and_then(|d| u64::try_from(d).ok()),
            known_events: meta.events.len,
            observed: meta.observed,
            verified,
            claimed,
        })
    }

    /// Whether `event` passes the authorization rules against auth events
    /// the view holds, every one of them.
    fn authorized_by_held(&self, room: &str, event: &Object, room_version: Option<&str>) -> bool {
        let Some(rv) = room_version.and_then(|v| self.version(v)) else { return false };
        let Ok(event_id) = cryptoid_protocol::event::event_id(event, &rv) else { return false };
        self.with_reader(room, |view| {
            let ids = cryptoid_protocol::auth::auth_event_ids(event, &rv);
            let found: Option<Vec<(String, Object)>> =
                ids.into_iter().map(|id| (view.held)(&id).map(|e| (id, e))).collect();
            found.is_some_and(|f| {
                let refs: Vec<(&str, &Object)> = f.iter().map(|(id, e)| (id.as_str(), e)).collect();
                cryptoid_protocol::auth::check(&rv, &event_id, event, &refs).is_ok()
            })
        })
    }

    /// Runs `f` with lookups of what the view holds for `room` (one read
    /// snapshot): verified authorization events by ID, and the current
    /// state by (type, state key).
    fn with_reader<R>(&self, room: &str, f: impl FnOnce(&verify::ViewReader<'_>) -> R) -> R {
        let guard = self.db.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let tx = guard.as_ref().and_then(|db| db.begin_read().ok());
        let full = tx.as_ref().and_then(|tx| tx.open_table(store::FULL).ok());
        let auth = tx.as_ref().and_then(|tx| tx.open_table(store::AUTH).ok());
        let held = |id: &str| -> Option<Object> {
            let g = full.as_ref()?.get((room, id)).ok()??;
            cryptoid_protocol::json::from_slice(g.value()).ok()?.into_object()
        };
        let current = |ty: &str, sk: &str| -> Option<(String, i64)> {
            let key = format!("{ty}\u{0}{sk}");
            let g = auth.as_ref()?.get((room, key.as_str())).ok()??;
            let (id, depth) = g.value();
            Some((id.to_owned(), depth))
        };
        f(&verify::ViewReader { held: &held, current: &current })
    }

    /// A room version by ID, with the configured `m.room.member` redaction
    /// variant (`[member_redaction]`): event IDs depend on it.
    pub fn version(&self, id: &str) -> Option<cryptoid_protocol::RoomVersion> {
        let rv = cryptoid_protocol::RoomVersion::from_id(id).ok()?;
        Some(match self.member_redaction.get(id) {
            Some(m) => rv.with_member_redaction(*m),
            None => rv,
        })
    }

    /// The `[member_redaction]` variants of the configuration.
    pub fn with_member_redaction(
        mut self,
        variants: std::collections::BTreeMap<String, cryptoid_protocol::MemberRedaction>,
    ) -> Rooms {
        self.member_redaction = variants;
        self
    }

    /// Runs `f` on the database; a failure marks the view broken (redb
    /// refuses every later call after an I/O error) until [`Rooms::recover`].
    fn with_db<R>(&self, f: impl FnOnce(&redb::Database) -> Result<R>) -> Result<R> {
        let guard = self.db.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let r = match guard.as_ref() {
            Some(db) => f(db),
            None => Err(db_err("closed after a storage error; it is being reopened")),
        };
        if r.is_err() {
            self.broken.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        r
    }

    /// Whether a storage error left the view unusable until [`Rooms::recover`].
    pub fn is_broken(&self) -> bool {
        self.broken.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// After a storage error: reopens the database, reloads the summaries
    /// (what non-durable commits held is gone) and replays the journal
    /// entries after the durable marker. Returns the signatures replayed.
    pub fn recover(&self, entries_since: impl FnOnce(u64) -> Result<Vec<Object>>) -> Result<usize> {
        let seq = {
            let mut guard = self.db.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            // redb opens a file once: the failed handle goes first.
            drop(guard.take());
            let db = open_db(&self.dir.join(DATABASE))?;
            let (rooms, seq) = read_summaries(&db)?;
            *guard = Some(db);
            *self.rooms.write().unwrap_or_else(std::sync::PoisonError::into_inner) = rooms;
            seq
        };
        self.dirty.locked().clear();
        self.broken.store(false, std::sync::atomic::Ordering::SeqCst);
        let n = self.replay(&entries_since(seq)?);
        tracing::info!(replayed = n, "room view reopened after a storage error");
        Ok(n)
    }

    /// Pins the keys of servers not seen before (durably); returns every
    /// pinned key. Once a server is pinned, another key under a pinned key
    /// ID, or a new key ID, is ignored, loudly: a later `rooms.observe`
    /// cannot add a key of its own making for someone else's server.
    fn pin(&self, offered: &ServerKeys) -> Result<ServerKeys> {
        let mut pinned = self.pinned.locked();
        let mut changed = false;
        for (server, keys) in offered {
            let known = pinned.get(server).is_some_and(|k| !k.is_empty());
            for (id, key) in keys {
                let slot = pinned.entry(server.clone()).or_default();
                match slot.get(id) {
                    None if known => {
                        tracing::warn!(server, key_id = id, "ignoring a new key ID for a pinned server (remove the server from rooms/server_keys.json to accept its new keys)");
                    }
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
            let bytes = serde_json::to_vec(&*pinned).map_err(Error::internal)?;
            fsutil::write_atomic(&self.dir.join(PINNED_KEYS), &bytes)?;
        }
        Ok(pinned.clone())
    }

    /// Records an event the agent signed under `room_version` (its first
    /// signature there fixes the room's version when nothing else has),
    /// without an fsync: the next flush makes it durable, and the journal
    /// has it until then. It counts as the user's own only when its event
    /// ID was computed from what was signed: room versions 1 and 2 carry an
    /// ID the homeserver chose, which may be someone else's event (journal
    /// entries before round 3 name no version; a carried ID has a ':').
    pub fn record_signed(&self, room_id: &str, e: &Seen<'_>, room_version: Option<&str>) {
        let own = match room_version.and_then(|v| cryptoid_protocol::RoomVersion::from_id(v).ok()) {
            Some(rv) => rv.event_id_format() != cryptoid_protocol::EventIdFormat::Carried,
            None => !e.event_id.contains(':'),
        };
        if let Err(err) = self.try_record_signed(room_id, e, room_version, own) {
            // The journal holds the signature; a restart replays it.
            tracing::warn!(error = %err, room = room_id, "could not record a signature in the room view");
        }
    }

    fn try_record_signed(
        &self,
        room_id: &str,
        e: &Seen<'_>,
        room_version: Option<&str>,
        own: bool,
    ) -> Result<()> {
        // A signed authorization event is held for later auth checks only
        // when the events it cites are held and it passes the rules.
        let full = e.full.filter(|ev| self.authorized_by_held(room_id, ev, room_version));
        let e = &Seen { full, ..*e };
        let slot = self.get_or_create(room_id);
        let mut meta = slot.locked();
        let mut m = meta.clone();
        if m.room_version.is_none() {
            m.room_version = room_version.map(str::to_owned);
        }
        self.with_db(|db| {
            let mut tx = db.begin_write().map_err(db_err)?;
            tx.set_durability(Durability::None);
            {
                let mut w = Writer::with_limit(&tx, self.max_auth)?;
                if let Err(over) = m.see(&mut w, room_id, e)? {
                    tracing::warn!(
                        room = room_id,
                        what = over.what,
                        "room view limit reached; a signed event is not in the authorization state"
                    );
                }
                // Redacting one's own message is one's own business;
                // redacting one's own state event (an ACL, the encryption)
                // empties it for everyone, so it is not a silent "own" target.
                if own && e.state_key.is_none() {
                    w.insert(store::Set::Own, &mut m.own, room_id, e.event_id, e.depth)?;
                }
                m.store(&mut w, room_id)?;
            }
            tx.commit().map_err(db_err)
        })?;
        *meta = m;
        drop(meta);
        self.dirty.locked().insert(room_id.to_owned());
        Ok(())
    }

    /// The room's version, once known (create event, `rooms.observe`, or
    /// the first PDU signed there).
    pub fn version_of(&self, room_id: &str) -> Option<String> {
        self.get(room_id).and_then(|m| m.locked().room_version.clone())
    }

    /// The room's name, if an `m.room.name` was observed or signed.
    pub fn name(&self, room_id: &str) -> Option<String> {
        self.get(room_id).and_then(|m| m.locked().name.clone())
    }

    /// Runs `f` with what the agent knows of `room_id`. Holds that room's
    /// lock only; lookups read a snapshot of the database.
    pub fn with_facts<R>(&self, room_id: &str, f: impl FnOnce(&RoomFacts<'_>) -> R) -> R {
        let Some(slot) = self.get(room_id) else { return f(&RoomFacts::unknown()) };
        let meta = slot.locked();
        let guard = self.db.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let tables = match (guard.as_ref(), self.is_broken()) {
            (Some(db), false) => db.begin_read().map_err(db_err).and_then(|tx| Tables::open(&tx)),
            _ => Err(db_err("unusable after a storage error until it is reopened")),
        };
        let tables = match tables {
            Ok(t) => Some(t),
            Err(e) => {
                // What cannot be read is unknown: the policy asks or denies.
                tracing::warn!(error = %e, room = room_id, "room view unreadable; its events count as unknown");
                None
            }
        };
        let t = tables.as_ref();
        let depth_of = |id: &str| t.and_then(|t| t.depth(&t.events, room_id, id));
        let own = |id: &str| t.is_some_and(|t| t.depth(&t.own, room_id, id).is_some());
        let superseded = |id: &str| {
            t.is_some_and(|t| {
                t.depth(&t.superseded, room_id, id).is_some()
                    || t.depth(&t.superseded_rules, room_id, id).is_some()
            })
        };
        let member = |id: &str| {
            t.and_then(|t| t.members.get((room_id, id)).ok().flatten()).map(|g| {
                let (u, v) = g.value();
                (u.to_owned(), v)
            })
        };
        let held = |id: &str| {
            t.and_then(|t| t.full.get((room_id, id)).ok().flatten())
                .and_then(|g| cryptoid_protocol::json::from_slice(g.value()).ok())
                .and_then(Value::into_object)
        };
        let setting = |ty: &str, sk: &str| {
            let key = format!("{ty}\u{0}{sk}");
            t.and_then(|t| t.settings.get((room_id, key.as_str())).ok().flatten())
                .and_then(|g| cryptoid_protocol::json::from_str(g.value().1).ok())
                .and_then(Value::into_object)
        };
        f(&RoomFacts {
            exists: true,
            readable: t.is_some(),
            observed: meta.observed,
            max_depth: meta.max_depth,
            depth_of: &depth_of,
            is_own: &own,
            power_levels: meta.power_levels.as_ref().and_then(Value::as_object),
            setting: &setting,
            anchor: meta.anchor.as_ref().map(|a| Anchor {
                event_id: &a.event_id,
                depth: a.depth,
                what: &a.what,
            }),
            is_superseded: &superseded,
            member: &member,
            auth_event: &held,
            holds_verified: meta.full_len > 0,
            claimed_power_levels: meta.claimed_power_levels.as_ref().and_then(Value::as_object),
        })
    }

    /// Makes the signatures recorded since the last flush durable, with the
    /// marker `seq` (read from the journal *before* calling, so replay
    /// covers the rest). Returns how many rooms they touched.
    pub fn flush(&self, seq: u64) -> Result<usize> {
        let dirty: Vec<String> = self.dirty.locked().drain().collect();
        if dirty.is_empty() {
            return Ok(0);
        }
        let commit = self.with_db(|db| {
            let mut tx = db.begin_write().map_err(db_err)?;
            tx.set_durability(Durability::Immediate);
            tx.open_table(store::MARKER).map_err(db_err)?.insert("seq", seq).map_err(db_err)?;
            tx.commit().map_err(db_err)
        });
        if let Err(e) = commit {
            // Still dirty; the journal still has them.
            self.dirty.locked().extend(dirty);
            return Err(e);
        }
        Ok(dirty.len())
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
                self.record_signed(
                    room,
                    &Seen {
                        event_id: id,
                        depth,
                        event_type: s.get("type").and_then(Value::as_str),
                        state_key: s.get("state_key").and_then(Value::as_str),
                        content: content.as_ref(),
                        grade: Grade::Trusted,
                        full: None,
                    },
                    version,
                );
                n += 1;
            }
        }
        n
    }
}

/// Opens (or creates) the database, private to the user.
fn open_db(path: &std::path::Path) -> Result<redb::Database> {
    let db = redb::Builder::new().set_cache_size(CACHE_BYTES).create(path).map_err(db_err)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(db)
}

/// Every room's summary, and the journal sequence number the view covers.
fn read_summaries(db: &redb::Database) -> Result<(Summaries, u64)> {
    let mut rooms = HashMap::new();
    let seq;
    {
        let tx = db.begin_read().map_err(db_err)?;
        match tx.open_table(store::META) {
            Ok(t) => {
                for r in t.iter().map_err(db_err)? {
                    let (k, v) = r.map_err(db_err)?;
                    match serde_json::from_slice::<Meta>(v.value()) {
                        Ok(m) => {
                            rooms.insert(k.value().to_owned(), Arc::new(Mutex::new(m)));
                        }
                        Err(e) => {
                            tracing::warn!(room = k.value(), error = %e, "ignoring a damaged room summary")
                        }
                    }
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(db_err(e)),
        }
        seq = match tx.open_table(store::MARKER) {
            Ok(t) => t.get("seq").map_err(db_err)?.map_or(0, |g| g.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(db_err(e)),
        };
    }
    Ok((rooms, seq))
}

/// `room_limit`, naming the limit and what was applied before it.
fn limit(room: &str, over: view::OverLimit, applied: usize) -> Error {
    Error::RoomLimit { room: room.to_owned(), what: over.what, limit: over.limit, applied }
}

/// The tables a reader looks things up in.
struct Tables {
    events: redb::ReadOnlyTable<(&'static str, &'static str), (i64, u64)>,
    own: redb::ReadOnlyTable<(&'static str, &'static str), (i64, u64)>,
    superseded: redb::ReadOnlyTable<(&'static str, &'static str), (i64, u64)>,
    superseded_rules: redb::ReadOnlyTable<(&'static str, &'static str), (i64, u64)>,
    members: redb::ReadOnlyTable<(&'static str, &'static str), (&'static str, bool)>,
    settings: redb::ReadOnlyTable<(&'static str, &'static str), (i64, &'static str)>,
    full: redb::ReadOnlyTable<(&'static str, &'static str), &'static [u8]>,
}

impl Tables {
    fn open(tx: &redb::ReadTransaction) -> Result<Tables> {
        let open = |d| tx.open_table(d).map_err(db_err);
        Ok(Tables {
            events: open(store::EVENTS.by_id)?,
            own: open(store::OWN.by_id)?,
            superseded: open(store::SUPERSEDED.by_id)?,
            superseded_rules: open(store::SUPERSEDED_RULES.by_id)?,
            members: tx.open_table(store::MEMBERS).map_err(db_err)?,
            settings: tx.open_table(store::SETTINGS).map_err(db_err)?,
            full: tx.open_table(store::FULL).map_err(db_err)?,
        })
    }

    fn depth(
        &self,
        t: &redb::ReadOnlyTable<(&'static str, &'static str), (i64, u64)>,
        room: &str,
        id: &str,
    ) -> Option<i64> {
        t.get((room, id)).ok().flatten().map(|g| g.value().0)
    }
}

#[cfg(test)]
mod tests;
