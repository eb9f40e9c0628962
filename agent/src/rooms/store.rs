//! The room view's tables in one embedded database (redb: pure Rust, ACID,
//! copy-on-write B-trees, readers never blocked by the writer). What a
//! room holds beyond its small summary ([`super::view::Meta`]) lives here,
//! keyed by room, so a call writes what it changes and nothing else:
//!
//! | table | key → value |
//! |---|---|
//! | `meta` | room → its summary (JSON) |
//! | `marker` | `"seq"` → the journal sequence number the view covers |
//! | `events`, `own`, `superseded`, `superseded_rules` | (room, event ID) → (depth, insertion number), with `*_order` (room, number) → event ID to forget the oldest past a set's bound |
//! | `auth` | (room, `type\0state_key`) → (event ID, depth): current authorization state |
//! | `members` | (room, cryptoID) → (Matrix ID, verified) |
//! | `settings` | (room, `type\0state_key`) → (depth, canonical JSON content) |
//! | `full` | (room, event ID) → canonical JSON of a verified authorization event (create, power levels, join rules, member, third-party invite): what later events' `auth_events` are checked against |

use crate::error::{Error, Result};
use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub const MARKER: TableDefinition<&str, u64> = TableDefinition::new("marker");
pub const AUTH: TableDefinition<(&str, &str), (&str, i64)> = TableDefinition::new("auth");
pub const MEMBERS: TableDefinition<(&str, &str), (&str, bool)> = TableDefinition::new("members");
pub const SETTINGS: TableDefinition<(&str, &str), (i64, &str)> = TableDefinition::new("settings");
pub const FULL: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("full");

/// A bounded set of event IDs with their depths, forgetting its oldest.
pub struct SetDef {
    pub by_id: TableDefinition<'static, (&'static str, &'static str), (i64, u64)>,
    pub by_seq: TableDefinition<'static, (&'static str, u64), &'static str>,
    pub cap: u64,
}

/// Observed or signed events with their depths. Forward extremities are
/// recent, so a window suffices; it is wide, since it costs disk, not RAM.
pub const EVENTS: SetDef = SetDef {
    by_id: TableDefinition::new("events"),
    by_seq: TableDefinition::new("events_order"),
    cap: 100_000,
};
/// Events this agent signed (messages only: see `record_signed`).
pub const OWN: SetDef =
    SetDef { by_id: TableDefinition::new("own"), by_seq: TableDefinition::new("own_order"), cap: 100_000 };
/// Memberships a newer one replaced.
pub const SUPERSEDED: SetDef = SetDef {
    by_id: TableDefinition::new("superseded"),
    by_seq: TableDefinition::new("superseded_order"),
    cap: 100_000,
};
/// Create, power levels, join rules, third-party invites a newer one
/// replaced: apart, so a flood of memberships cannot evict them.
pub const SUPERSEDED_RULES: SetDef = SetDef {
    by_id: TableDefinition::new("superseded_rules"),
    by_seq: TableDefinition::new("superseded_rules_order"),
    cap: 100_000,
};

/// Per room, past which `rooms.observe` refuses with `room_limit`: the
/// authorization state (one entry per member) and the members' names.
/// Beyond it the view would have to drop state a decision depends on.
pub const MAX_AUTH_STATE: u64 = 1_000_000;
/// Verified authorization events kept per room, as a multiple of the
/// member limit: every membership change of a long history, not only the
/// current ones.
pub const FULL_PER_AUTH_ENTRY: u64 = 4;
/// Settings kept per room (space children are keyed by room).
pub const MAX_SETTINGS: u64 = 1024;

/// The size of a set in one room, and its next insertion number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetCount {
    pub len: u64,
    pub next: u64,
}

/// A storage failure, said as what it is.
pub fn db_err(e: impl std::fmt::Display) -> Error {
    Error::Storage(std::io::Error::other(format!("room view database: {e}")))
}

/// A bounded set's two tables (by ID, by insertion number) and its bound.
type SetTables<'t> =
    (Table<'t, (&'static str, &'static str), (i64, u64)>, Table<'t, (&'static str, u64), &'static str>, u64);

/// The tables a write transaction changes, opened once.
pub struct Writer<'t> {
    pub meta: Table<'t, &'static str, &'static [u8]>,
    pub auth: Table<'t, (&'static str, &'static str), (&'static str, i64)>,
    pub members: Table<'t, (&'static str, &'static str), (&'static str, bool)>,
    pub settings: Table<'t, (&'static str, &'static str), (i64, &'static str)>,
    pub full: Table<'t, (&'static str, &'static str), &'static [u8]>,
    sets: [SetTables<'t>; 4],
    /// Authorization-state entries a room may hold (see [`MAX_AUTH_STATE`]).
    pub max_auth: u64,
}

/// Which set.
#[derive(Clone, Copy)]
pub enum Set {
    Events = 0,
    Own = 1,
    Superseded = 2,
    SupersededRules = 3,
}

impl<'t> Writer<'t> {
    pub fn open(tx: &'t WriteTransaction) -> Result<Writer<'t>> {
        Writer::with_limit(tx, MAX_AUTH_STATE)
    }

    /// With another limit than [`MAX_AUTH_STATE`] (tests reach it).
    pub fn with_limit(tx: &'t WriteTransaction, max_auth: u64) -> Result<Writer<'t>> {
        let set = |d: &SetDef| -> Result<_> {
            Ok((tx.open_table(d.by_id).map_err(db_err)?, tx.open_table(d.by_seq).map_err(db_err)?, d.cap))
        };
        Ok(Writer {
            meta: tx.open_table(META).map_err(db_err)?,
            auth: tx.open_table(AUTH).map_err(db_err)?,
            members: tx.open_table(MEMBERS).map_err(db_err)?,
            settings: tx.open_table(SETTINGS).map_err(db_err)?,
            full: tx.open_table(FULL).map_err(db_err)?,
            sets: [set(&EVENTS)?, set(&OWN)?, set(&SUPERSEDED)?, set(&SUPERSEDED_RULES)?],
            max_auth,
        })
    }

    /// Adds `id` at `depth` to a room's set; an ID already there keeps its
    /// depth (a later observation cannot re-date an event). Past the set's
    /// bound the oldest is forgotten.
    pub fn insert(&mut self, set: Set, count: &mut SetCount, room: &str, id: &str, depth: i64) -> Result<()> {
        let (by_id, by_seq, cap) = &mut self.sets[set as usize];
        if by_id.get((room, id)).map_err(db_err)?.is_some() {
            return Ok(());
        }
        let seq = count.next;
        count.next += 1;
        by_id.insert((room, id), (depth, seq)).map_err(db_err)?;
        by_seq.insert((room, seq), id).map_err(db_err)?;
        count.len += 1;
        if count.len > *cap {
            let oldest = by_seq
                .range((room, 0)..=(room, u64::MAX))
                .map_err(db_err)?
                .next()
                .transpose()
                .map_err(db_err)?
                .map(|(k, v)| (k.value().1, v.value().to_owned()));
            if let Some((s, old)) = oldest {
                by_seq.remove((room, s)).map_err(db_err)?;
                by_id.remove((room, old.as_str())).map_err(db_err)?;
                count.len -= 1;
            }
        }
        Ok(())
    }

    pub fn auth(&self, room: &str, key: &str) -> Result<Option<(String, i64)>> {
        Ok(self.auth.get((room, key)).map_err(db_err)?.map(|g| {
            let (id, d) = g.value();
            (id.to_owned(), d)
        }))
    }

    pub fn setting_depth(&self, room: &str, key: &str) -> Result<Option<i64>> {
        Ok(self.settings.get((room, key)).map_err(db_err)?.map(|g| g.value().0))
    }
}
