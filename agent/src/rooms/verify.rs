//! Full events fed to `rooms.observe`, checked as a server checks what it
//! receives, before any lock: the received-event checks (shape, event ID,
//! content hash, signature) and then, in depth order, the authorization
//! rules against each event's own `auth_events`.
//!
//! An event that fails a check refuses the whole call (a homeserver that
//! serves a forged or unauthorized event is lying, and the client should
//! hear which event). An event whose `auth_events` the agent does not hold
//! verified is kept as *claimed*: its signature is good, its authority is
//! unknown.

use super::{Grade, ServerKeys};
use crate::error::{Error, ObservedError, Result};
use cryptoid_protocol::auth;
use cryptoid_protocol::json::{Object, Value};
use cryptoid_protocol::keys::PublicKey;
use cryptoid_protocol::{received, RoomVersion};
use std::collections::HashMap;

/// The state types whose events later events' `auth_events` cite.
pub const AUTH_TYPES: [&str; 5] = [
    "m.room.create",
    "m.room.power_levels",
    "m.room.join_rules",
    "m.room.member",
    "m.room.third_party_invite",
];

/// Whether `event` is one the authorization rules read (its type, and the
/// empty state key where the rules read only that).
pub fn is_auth_event(event: &Object) -> bool {
    let ty = event.get("type").and_then(Value::as_str).unwrap_or("");
    match event.get("state_key").and_then(Value::as_str) {
        Some(sk) => {
            AUTH_TYPES.contains(&ty)
                && (sk.is_empty() || matches!(ty, "m.room.member" | "m.room.third_party_invite"))
        }
        None => false,
    }
}

/// One full event after the checks.
pub struct Checked {
    pub event: Object,
    pub event_id: String,
    pub depth: i64,
    pub grade: Grade,
}

/// Checks `pdus` of `room` in version `rv`: refuses the call at the first
/// event that fails; returns the rest in depth order with their grades.
/// `held` looks up a verified authorization event the view already holds.
pub fn check(
    room: &str,
    rv: &RoomVersion,
    pdus: &[Value],
    keys: &ServerKeys,
    held: &dyn Fn(&str) -> Option<Object>,
) -> Result<Vec<Checked>> {
    let refuse = |index: usize, event_id: &str, source: ObservedError| Error::Observed {
        room: room.to_owned(),
        index,
        event_id: if event_id.is_empty() { "?".into() } else { event_id.to_owned() },
        source,
    };
    let server_keys = |server: &str| -> Vec<(String, PublicKey)> {
        keys.get(server)
            .into_iter()
            .flatten()
            .filter_map(|(id, k)| PublicKey::from_base64(k).ok().map(|k| (id.clone(), k)))
            .collect()
    };
    let mut checked: Vec<(usize, Checked)> = Vec::with_capacity(pdus.len());
    for (i, v) in pdus.iter().enumerate() {
        let Value::Object(event) = v else { return Err(refuse(i, "", ObservedError::NotAnObject)) };
        // A v12 create names no room (its hash is the room ID); Synapse adds
        // one when it serves the event to a client. Checked, then dropped.
        let stripped;
        let (event, served_room) = if rv.room_id_is_create_hash()
            && cryptoid_protocol::event::is_create(event)
            && event.contains_key("room_id")
        {
            let mut e = event.clone();
            let served = e.remove("room_id");
            stripped = e;
            (&stripped, served)
        } else {
            (event, None)
        };
        let r = received::check(event, rv, &server_keys).map_err(|e| refuse(i, "", e.into()))?;
        if let Some(served) = served_room {
            let derived = format!("!{}", r.event_id.trim_start_matches('$'));
            if served.as_str() != Some(derived.as_str()) {
                let found = served.as_str().unwrap_or("?").to_owned();
                return Err(refuse(i, &r.event_id, ObservedError::OtherRoom { room: derived, found }));
            }
        }
        let found = match event.get("room_id").and_then(Value::as_str) {
            Some(r) => r.to_owned(),
            // A v12 create: its room is its own hash.
            None => format!("!{}", r.event_id.trim_start_matches('$')),
        };
        if found != room {
            return Err(refuse(i, &r.event_id, ObservedError::OtherRoom { room: room.to_owned(), found }));
        }
        let depth = event.get("depth").and_then(Value::as_int).unwrap_or(0);
        let mut event = event.clone();
        // What the rules read and the view keeps: the event as signed.
        event.remove("unsigned");
        checked.push((i, Checked { event, event_id: r.event_id, depth, grade: Grade::Claimed }));
    }
    // Ancestors first: an event's auth events are older than it.
    checked.sort_by_key(|(_, c)| c.depth);
    let mut authorized: HashMap<String, usize> = HashMap::new();
    for n in 0..checked.len() {
        let ids = auth::auth_event_ids(&checked[n].1.event, rv);
        let mut fetched: Vec<(String, Object)> = Vec::new();
        let mut all = true;
        for id in &ids {
            if authorized.contains_key(id) || fetched.iter().any(|(f, _)| f == id) {
                continue;
            }
            match held(id) {
                Some(e) => fetched.push((id.clone(), e)),
                None => {
                    all = false;
                    break;
                }
            }
        }
        if !all {
            continue;
        }
        let (index, c) = &checked[n];
        let mut auth_events: Vec<(&str, &Object)> = fetched.iter().map(|(id, e)| (id.as_str(), e)).collect();
        for id in &ids {
            if let Some(&k) = authorized.get(id) {
                auth_events.push((checked[k].1.event_id.as_str(), &checked[k].1.event));
            }
        }
        auth::check(rv, &c.event_id, &c.event, &auth_events)
            .map_err(|e| refuse(*index, &c.event_id, ObservedError::Unauthorized(e)))?;
        checked[n].1.grade = Grade::Trusted;
        if is_auth_event(&checked[n].1.event) {
            authorized.insert(checked[n].1.event_id.clone(), n);
        }
    }
    Ok(checked.into_iter().map(|(_, c)| c).collect())
}
