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

/// Whether (type, state key) is one the authorization rules read: only
/// the empty state key makes a create, power levels or join rules event
/// the room's (under "x" no server reads it); memberships and third-party
/// invites are keyed by their state key.
pub fn is_auth_key(ty: &str, state_key: &str) -> bool {
    AUTH_TYPES.contains(&ty)
        && (state_key.is_empty() || matches!(ty, "m.room.member" | "m.room.third_party_invite"))
}

/// Whether `event` is one the authorization rules read ([`is_auth_key`]).
pub fn is_auth_event(event: &Object) -> bool {
    match (event.get("type").and_then(Value::as_str), event.get("state_key").and_then(Value::as_str)) {
        (Some(ty), Some(sk)) => is_auth_key(ty, sk),
        _ => false,
    }
}

/// One full event after the checks.
pub struct Checked {
    pub event: Object,
    pub event_id: String,
    pub depth: i64,
    pub grade: Grade,
    /// It arrived in its redacted form (its content is what a redaction keeps).
    pub redacted: bool,
}

/// Below this many events the checks run on the calling thread.
const PARALLEL_FROM: usize = 64;

/// Checks `pdus` of `room` in version `rv`: refuses the call at the first
/// event that fails; returns the rest in depth order with their grades.
/// `view` looks up what the view already holds.
/// The received-event checks (signatures above all) run on every core.
pub fn check(
    room: &str,
    rv: &RoomVersion,
    pdus: Vec<Value>,
    keys: &ServerKeys,
    view: &ViewReader<'_>,
) -> Result<Vec<Checked>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let per = pdus.len().div_ceil(threads).max(PARALLEL_FROM);
    let mut parts: Vec<Vec<(usize, Value)>> = Vec::new();
    for (i, v) in pdus.into_iter().enumerate() {
        if parts.last().is_none_or(|p| p.len() >= per) {
            parts.push(Vec::with_capacity(per));
        }
        if let Some(p) = parts.last_mut() {
            p.push((i, v));
        }
    }
    let one = |part: Vec<(usize, Value)>| -> Result<Vec<(usize, Checked)>> {
        part.into_iter().map(|(i, v)| received_one(room, rv, i, v, keys).map(|c| (i, c))).collect()
    };
    let results: Vec<Result<Vec<(usize, Checked)>>> = if parts.len() <= 1 {
        parts.into_iter().map(one).collect()
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = parts.into_iter().map(|part| s.spawn(move || one(part))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::internal("an event check panicked"))))
                .collect()
        })
    };
    let mut checked: Vec<(usize, Checked)> = Vec::new();
    let mut first_error: Option<(usize, Error)> = None;
    for r in results {
        match r {
            Ok(mut c) => checked.append(&mut c),
            Err(e) => {
                let index = match &e {
                    Error::Observed { index, .. } => *index,
                    _ => usize::MAX,
                };
                // The first bad event in the call's order, whichever thread saw it.
                if first_error.as_ref().is_none_or(|(i, _)| index < *i) {
                    first_error = Some((index, e));
                }
            }
        }
    }
    if let Some((_, e)) = first_error {
        return Err(e);
    }
    // Ancestors first: an event's auth events are older than it.
    checked.sort_by_key(|(_, c)| c.depth);
    authorize(rv, &mut checked, view).map_err(|(index, event_id, e)| refused(room, index, &event_id, e))?;
    Ok(checked.into_iter().map(|(_, c)| c).collect())
}

/// An ID and a depth: a current state event.
pub type Current = (String, i64);

/// What the view already holds, for the authorization phase.
pub struct ViewReader<'a> {
    /// A verified authorization event by ID.
    pub held: &'a dyn Fn(&str) -> Option<Object>,
    /// The current (trusted) state event of (type, state key), with its depth.
    pub current: &'a dyn Fn(&str, &str) -> Option<Current>,
}

/// An event's (type, state key) and depth, as the rules read them.
fn key_of(e: &Object) -> Option<(String, String, i64)> {
    Some((
        e.get("type")?.as_str()?.to_owned(),
        e.get("state_key")?.as_str()?.to_owned(),
        e.get("depth").and_then(Value::as_int).unwrap_or(0),
    ))
}

/// The authorization phase, in depth order. An event is *trusted* when
/// every auth event it cites is held (or trusted earlier in the call), it
/// passes the rules against them, and, if it would become the room's
/// state, none of them is stale (a newer event of the same type and state
/// key is current: servers soft-fail such an event). An older event, fed
/// after newer state, is trusted without becoming current (the view keeps
/// it as superseded). A second
/// `m.room.create` is refused: a room has one, the first the view
/// verified (in v12 the one whose hash is the room ID).
fn authorize(
    rv: &RoomVersion,
    checked: &mut [(usize, Checked)],
    view: &ViewReader<'_>,
) -> std::result::Result<(), (usize, String, ObservedError)> {
    let mut authorized: HashMap<String, usize> = HashMap::new();
    // The state this call made current: (type, state key) → (ID, depth).
    let mut current: HashMap<(String, String), Current> = HashMap::new();
    let current_of = |current: &HashMap<(String, String), Current>, ty: &str, sk: &str| {
        current.get(&(ty.to_owned(), sk.to_owned())).cloned().or_else(|| (view.current)(ty, sk))
    };
    for n in 0..checked.len() {
        let (index, c) = &checked[n];
        let unauthorized = |e: cryptoid_protocol::auth::AuthError| {
            (*index, c.event_id.clone(), ObservedError::Unauthorized(e))
        };
        let refs = |key: &str| auth::ref_ids(&c.event, key).len();
        if refs("auth_events") > MAX_AUTH_EVENTS || refs("prev_events") > MAX_PREV_EVENTS {
            return Err((*index, c.event_id.clone(), ObservedError::TooManyRefs));
        }
        if c.event.get("type").and_then(Value::as_str) == Some("m.room.create") {
            if let Some((room_create, _)) = current_of(&current, "m.room.create", "") {
                if room_create != c.event_id {
                    return Err(unauthorized(cryptoid_protocol::auth::AuthError::Create(format!(
                        "the room already has its m.room.create, {room_create}: a second one is not the room's"
                    ))));
                }
            }
        }
        let ids = auth::auth_event_ids(&c.event, rv);
        let mut fetched: Vec<(String, Object)> = Vec::new();
        let mut all = true;
        for id in &ids {
            if authorized.contains_key(id) || fetched.iter().any(|(f, _)| f == id) {
                continue;
            }
            match (view.held)(id) {
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
        let mut auth_events: Vec<(&str, &Object)> = fetched.iter().map(|(id, e)| (id.as_str(), e)).collect();
        for id in &ids {
            if let Some(&k) = authorized.get(id) {
                auth_events.push((checked[k].1.event_id.as_str(), &checked[k].1.event));
            }
        }
        auth::check(rv, &c.event_id, &c.event, &auth_events).map_err(unauthorized)?;
        // Stale: it would become the room's state, but it is authorized by
        // state the view already knows was replaced.
        let becomes_current = is_auth_event(&c.event)
            && key_of(&c.event).is_some_and(|(ty, sk, depth)| {
                current_of(&current, &ty, &sk).is_none_or(|(cur, d)| cur != c.event_id && d < depth)
            });
        let stale = becomes_current
            && auth_events.iter().any(|(id, e)| {
                key_of(e).is_some_and(|(ty, sk, depth)| {
                    current_of(&current, &ty, &sk).is_some_and(|(cur, d)| cur != *id && d > depth)
                })
            });
        // A redacted copy of an authorization event is what some server
        // serves; its pruned content must not become a baseline.
        if stale || (c.redacted && is_auth_event(&c.event)) {
            continue;
        }
        let trusted_id = c.event_id.clone();
        let key = key_of(&c.event);
        checked[n].1.grade = Grade::Trusted;
        if is_auth_event(&checked[n].1.event) {
            authorized.insert(trusted_id.clone(), n);
            if let Some((ty, sk, depth)) = key {
                let newer = current_of(&current, &ty, &sk).is_none_or(|(_, d)| d < depth);
                if newer {
                    current.insert((ty, sk), (trusted_id, depth));
                }
            }
        }
    }
    Ok(())
}

/// At most this many `auth_events` and `prev_events` per event (servers'
/// limits): the checks stay bounded whatever an event cites.
const MAX_AUTH_EVENTS: usize = 10;
const MAX_PREV_EVENTS: usize = 20;

/// `rooms.observe` refused because of `pdus[index]`.
fn refused(room: &str, index: usize, event_id: &str, source: ObservedError) -> Error {
    Error::Observed {
        room: room.to_owned(),
        index,
        event_id: if event_id.is_empty() { "?".into() } else { event_id.to_owned() },
        source,
    }
}

/// The received-event checks of `pdus[index]`, and the event as the rules
/// read it and the view keeps it (as signed: no `unsigned`).
fn received_one(room: &str, rv: &RoomVersion, index: usize, v: Value, keys: &ServerKeys) -> Result<Checked> {
    let refuse = |event_id: &str, source: ObservedError| refused(room, index, event_id, source);
    let server_keys = |server: &str| -> Vec<(String, PublicKey)> {
        keys.get(server)
            .into_iter()
            .flatten()
            .filter_map(|(id, k)| PublicKey::from_base64(k).ok().map(|k| (id.clone(), k)))
            .collect()
    };
    let Value::Object(mut event) = v else { return Err(refuse("", ObservedError::NotAnObject)) };
    event.remove("unsigned");
    // A v12 create names no room (its hash is the room ID); Synapse adds
    // one when it serves the event to a client. Checked, then dropped.
    let served_room = if rv.room_id_is_create_hash() && cryptoid_protocol::event::is_create(&event) {
        event.remove("room_id")
    } else {
        None
    };
    let (r, event) = received::check_owned(event, rv, &server_keys).map_err(|e| refuse("", e.into()))?;
    let derived = || format!("!{}", r.event_id.trim_start_matches('$'));
    let found = match (&served_room, event.get("room_id").and_then(Value::as_str)) {
        (Some(served), _) => served.as_str().unwrap_or("?").to_owned(),
        (None, Some(r)) => r.to_owned(),
        // A v12 create: its room is its own hash.
        (None, None) => derived(),
    };
    let expected = if served_room.is_some() { derived() } else { room.to_owned() };
    if found != expected || expected != room {
        return Err(refuse(&r.event_id, ObservedError::OtherRoom { room: room.to_owned(), found }));
    }
    let depth = event.get("depth").and_then(Value::as_int).unwrap_or(0);
    Ok(Checked { event, event_id: r.event_id, depth, grade: Grade::Claimed, redacted: r.redacted })
}
