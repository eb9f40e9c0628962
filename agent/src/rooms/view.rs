//! A room's summary, kept in memory (small and bounded: no member or event
//! lists), and how one observed or signed event changes the room view:
//! its summary here, its sets and state in the database ([`super::store`]).

use super::store::{db_err, SetCount, Writer, MAX_SETTINGS};
use super::Seen;
use crate::error::Result;
use cryptoid_protocol::json::Value;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

/// The newest authorization-relevant event of a room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorState {
    pub event_id: String,
    pub depth: i64,
    /// What it is, for reasons: `m.room.power_levels`, `ban of 3TPraTczVkDP…`.
    pub what: String,
}

/// What the agent keeps of a room in memory.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    #[serde(default)]
    pub room_version: Option<String>,
    #[serde(default)]
    pub observed: bool,
    #[serde(default)]
    pub max_depth: Option<i64>,
    /// The newest power levels content, and its depth.
    #[serde(default)]
    pub power_levels: Option<Value>,
    #[serde(default)]
    pub power_levels_depth: Option<i64>,
    #[serde(default)]
    pub anchor: Option<AnchorState>,
    /// The room's name (`m.room.name`), for prompts.
    #[serde(default)]
    pub name: Option<String>,
    /// Sizes of the room's rows in the database.
    #[serde(default)]
    pub events: SetCount,
    #[serde(default)]
    pub own: SetCount,
    #[serde(default)]
    pub superseded: SetCount,
    #[serde(default)]
    pub superseded_rules: SetCount,
    #[serde(default)]
    pub auth_len: u64,
    #[serde(default)]
    pub members_len: u64,
    #[serde(default)]
    pub settings_len: u64,
    /// Verified authorization events held (the `full` table).
    #[serde(default)]
    pub full_len: u64,
    /// The newest power levels only claimed by the homeserver (a summary
    /// under `room_view = "verified"`): a diff shows the changes against it
    /// too, never fewer.
    #[serde(default)]
    pub claimed_power_levels: Option<Value>,
    #[serde(default)]
    pub claimed_power_levels_depth: Option<i64>,
}

/// What a change would need beyond a room's limit.
#[derive(Debug)]
pub struct OverLimit {
    pub what: &'static str,
    pub limit: u64,
}

impl Meta {
    /// Applies one event. `Err(OverLimit)` leaves the authorization state
    /// as it was (the caller refuses the call).
    pub fn see(&mut self, w: &mut Writer<'_>, room: &str, e: &Seen<'_>) -> Result<Result<(), OverLimit>> {
        use super::store::Set;
        if e.grade == super::Grade::Claimed {
            // The homeserver's word: it may widen a diff, nothing more.
            if e.event_type == Some("m.room.power_levels")
                && e.state_key == Some("")
                && self.claimed_power_levels_depth.is_none_or(|d| d <= e.depth)
            {
                if let Some(c) = e.content {
                    self.claimed_power_levels = Some(Value::Object(c.clone()));
                    self.claimed_power_levels_depth = Some(e.depth);
                }
            }
            return Ok(Ok(()));
        }
        if let Some(full) = e.full {
            let held = w.full.get((room, e.event_id)).map_err(db_err)?.is_some();
            if !held {
                let cap = w.max_auth.saturating_mul(super::store::FULL_PER_AUTH_ENTRY);
                if self.full_len >= cap {
                    return Ok(Err(OverLimit { what: "verified authorization events", limit: cap }));
                }
                let mut bytes = Vec::with_capacity(1024);
                cryptoid_protocol::json::write_object_filtered(&mut bytes, full, |_| true);
                w.full.insert((room, e.event_id), bytes.as_slice()).map_err(db_err)?;
                self.full_len += 1;
            }
        }
        w.insert(Set::Events, &mut self.events, room, e.event_id, e.depth)?;
        self.max_depth = Some(self.max_depth.map_or(e.depth, |d| d.max(e.depth)));
        let (Some(ty), Some(sk)) = (e.event_type, e.state_key) else { return Ok(Ok(())) };
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
                let known = w.setting_depth(room, &key)?;
                let fits = known.is_some() || self.settings_len < MAX_SETTINGS;
                if known.is_none_or(|d| d <= e.depth) && fits {
                    let text = cryptoid_protocol::json::to_canonical_string(&Value::Object(c.clone()));
                    w.settings.insert((room, key.as_str()), (e.depth, text.as_str())).map_err(db_err)?;
                    if known.is_none() {
                        self.settings_len += 1;
                    }
                }
            }
        }
        if !super::verify::is_auth_key(ty, sk) {
            return Ok(Ok(()));
        }
        let membership = e.content.and_then(|c| c.get("membership")).and_then(Value::as_str);
        let key = format!("{ty}\u{0}{sk}");
        let (set, count) = if ty == "m.room.member" {
            (Set::Superseded, &mut self.superseded)
        } else {
            (Set::SupersededRules, &mut self.superseded_rules)
        };
        let current = w.auth(room, &key)?;
        // Past the limit the entry is not kept (the caller refuses the
        // call), but the anchor still moves: a ban is a ban.
        let over = (current.is_none() && self.auth_len >= w.max_auth)
            .then_some(OverLimit { what: "authorization state entries (members)", limit: w.max_auth });
        let newest = match &current {
            _ if over.is_some() => false,
            Some((id, _)) if id == e.event_id => true,
            Some((_, d)) if *d > e.depth => {
                w.insert(set, count, room, e.event_id, e.depth)?;
                false
            }
            Some((id, d)) if *d < e.depth => {
                w.insert(set, count, room, id, *d)?;
                true
            }
            // Same depth, another event: a fork. Keep the first; flag neither.
            Some(_) => false,
            None => true,
        };
        if newest {
            w.auth.insert((room, key.as_str()), (e.event_id, e.depth)).map_err(db_err)?;
            if current.is_none() {
                self.auth_len += 1;
            }
            if ty == "m.room.power_levels" && self.power_levels_depth.is_none_or(|d| d <= e.depth) {
                if let Some(c) = e.content {
                    self.power_levels = Some(Value::Object(c.clone()));
                    self.power_levels_depth = Some(e.depth);
                }
            }
        }
        let what = match (ty, membership) {
            ("m.room.member", Some("join")) | ("m.room.third_party_invite", _) => {
                return Ok(over.map_or(Ok(()), Err))
            }
            ("m.room.member", m) => {
                format!("{} of {}", m.unwrap_or("membership change"), crate::policy::power::short(sk))
            }
            _ => ty.to_owned(),
        };
        if self.anchor.as_ref().is_none_or(|a| a.depth < e.depth) {
            self.anchor = Some(AnchorState { event_id: e.event_id.to_owned(), depth: e.depth, what });
        }
        Ok(over.map_or(Ok(()), Err))
    }

    /// Records a member's name; false (not kept) past the room's limit.
    pub fn name_member(
        &mut self,
        w: &mut Writer<'_>,
        room: &str,
        cryptoid: &str,
        name: &super::MemberName,
    ) -> Result<bool> {
        let known = w.members.get((room, cryptoid)).map_err(db_err)?.is_some();
        if !known && self.members_len >= w.max_auth {
            return Ok(false);
        }
        w.members.insert((room, cryptoid), (name.user_id.as_str(), name.verified)).map_err(db_err)?;
        if !known {
            self.members_len += 1;
        }
        Ok(true)
    }

    /// Writes the summary itself.
    pub fn store(&self, w: &mut Writer<'_>, room: &str) -> Result<()> {
        let bytes = serde_json::to_vec(self).map_err(crate::error::Error::internal)?;
        w.meta.insert(room, bytes.as_slice()).map_err(db_err)?;
        Ok(())
    }
}
