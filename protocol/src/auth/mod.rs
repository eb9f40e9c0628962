//! The authorization rules (spec "Room versions", each version's
//! "Authorization rules"), applied as a server applies them to an event it
//! receives: against the event's **own `auth_events`**, never against a
//! "current state" someone describes. The agent uses them twice: on events
//! fed to `rooms.observe` (a forged power change does not become the room's
//! state) and on a PDU before it is signed (the user never signs an event
//! the federation would reject).
//!
//! The reference is Synapse's `event_auth` (the pinned release the tests
//! install): a differential test feeds both thousands of generated cases
//! and requires the same accept/reject, including where Synapse reads
//! malformed content strictly (a missing `membership`, a power level that
//! is not a number).
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | [`check`], which `auth_events` an event may cite, create, sending, redactions, aliases |
//! | [`member`] | `m.room.member`: join, invite, leave, ban, knock, restricted joins, third-party invites |
//! | [`power`] | reading levels (with the older versions' string levels) and who may change them |
//!
//! **The cryptoID versions** (`org.matrix.msc4080`, `org.matrix.msc4014`)
//! follow v11 with three differences, because a cryptoID names no server:
//! the create event's `room_id` domain is not compared with its sender's,
//! the `m.federate` rule is not applied (no sender or target has a domain
//! to compare), and `m.room.power_levels` `users` keys may be cryptoIDs.

mod member;
mod power;
#[cfg(test)]
mod tests;

use crate::json::{Object, Value};
use crate::RoomVersion;
use std::collections::HashMap;

pub use power::CREATOR_LEVEL;

/// Why an event fails the authorization rules (or cannot be judged).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "auth event {0} is not known: it must be observed (and verified) before the events that cite it"
    )]
    UnknownAuthEvent(String),
    #[error("auth event {event_id} belongs to room {room}, not to this event's room")]
    AuthEventInOtherRoom { event_id: String, room: String },
    #[error("auth_events name two events for ({0}): a server rejects the event")]
    DuplicateAuthEvent(String),
    #[error(
        "auth event {event_id} ({key}) is not one the rules read for this event: a server rejects the event"
    )]
    UnexpectedAuthEvent { event_id: String, key: String },
    #[error("auth_events hold no m.room.create")]
    NoCreateEvent,
    #[error("m.room.create: {0}")]
    Create(String),
    #[error("the room is not federated (m.federate is false) and {0} is from another server")]
    NotFederated(String),
    #[error("the sender {0} is not joined to the room")]
    SenderNotJoined(String),
    #[error("membership: {0}")]
    Membership(String),
    #[error("the sender's power level {has} is below the {needed} needed to {what}")]
    InsufficientPower { has: i128, needed: i128, what: String },
    #[error("power levels: {0}")]
    PowerLevels(String),
    #[error("the state key {0:?} names another user, whose state only they may set")]
    OthersState(String),
    #[error("m.room.redaction: the sender may not redact events of another server")]
    Redaction,
    #[error("m.room.aliases: {0}")]
    Aliases(String),
    #[error("malformed for the rules: {0}")]
    Malformed(String),
}

type Result<T> = std::result::Result<T, AuthError>;

fn malformed(what: impl Into<String>) -> AuthError {
    AuthError::Malformed(what.into())
}

/// One event as the rules read it: its ID and its JSON.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ev<'a> {
    pub id: &'a str,
    pub obj: &'a Object,
}

static EMPTY: std::sync::OnceLock<Object> = std::sync::OnceLock::new();

impl<'a> Ev<'a> {
    fn str_field(&self, key: &str) -> Option<&'a str> {
        self.obj.get(key).and_then(Value::as_str)
    }
    pub fn ty(&self) -> &'a str {
        self.str_field("type").unwrap_or("")
    }
    pub fn state_key(&self) -> Option<&'a str> {
        self.str_field("state_key")
    }
    pub fn sender(&self) -> &'a str {
        self.str_field("sender").unwrap_or("")
    }
    pub fn content(&self) -> &'a Object {
        match self.obj.get("content") {
            Some(Value::Object(c)) => c,
            _ => EMPTY.get_or_init(Object::new),
        }
    }
    /// `content.membership` (any JSON type: the rules compare it).
    pub fn membership(&self) -> Option<&'a str> {
        self.content().get("membership").and_then(Value::as_str)
    }
    /// The room the event belongs to; a v12 create event names none and
    /// its room is its own hash.
    fn room(&self, rv: &RoomVersion) -> Option<String> {
        match self.str_field("room_id") {
            Some(r) => Some(r.to_owned()),
            None if rv.room_id_is_create_hash() && crate::event::is_create(self.obj) => {
                self.id.strip_prefix('$').map(|h| format!("!{h}"))
            }
            None => None,
        }
    }
}

/// The event IDs of `prev_events` or `auth_events` (v1–v2 write pairs).
pub fn ref_ids<'a>(event: &'a Object, key: &str) -> Vec<&'a str> {
    event
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.as_str()),
                    Value::Array(pair) => pair.first().and_then(Value::as_str),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The auth events an event is judged by: its `auth_events`, and in room
/// version 12 also its room's create event, whose ID is the room ID with
/// `$` for `!` (MSC4291: the create event is no longer listed).
pub fn auth_event_ids(event: &Object, rv: &RoomVersion) -> Vec<String> {
    let mut ids: Vec<String> = ref_ids(event, "auth_events").into_iter().map(str::to_owned).collect();
    if rv.room_id_is_create_hash() && !crate::event::is_create(event) {
        if let Some(h) = event.get("room_id").and_then(Value::as_str).and_then(|r| r.strip_prefix('!')) {
            ids.push(format!("${h}"));
        }
    }
    ids
}

/// The server part of a user, room or event ID (after the first `:`).
pub(crate) fn domain_of(id: &str) -> Result<&str> {
    id.split_once(':').map(|(_, d)| d).ok_or_else(|| malformed(format!("{id:?} names no server")))
}

/// The (type, state key) pairs the rules may read for `event`; anything
/// else cited is refused.
fn expected_auth_keys(event: &Ev<'_>, rv: &RoomVersion) -> Result<Vec<(String, String)>> {
    let key = |t: &str, s: &str| (t.to_owned(), s.to_owned());
    let mut keys =
        vec![key("m.room.power_levels", ""), key("m.room.member", event.sender()), key("m.room.create", "")];
    if event.ty() == "m.room.member" {
        let content = event.content();
        let membership =
            content.get("membership").ok_or_else(|| malformed("m.room.member without membership"))?;
        let m = membership.as_str();
        if matches!(m, Some("join" | "invite" | "knock")) {
            keys.push(key("m.room.join_rules", ""));
        }
        let target = event.state_key().ok_or_else(|| malformed("m.room.member without a state key"))?;
        keys.push(key("m.room.member", target));
        if m == Some("invite") && content.contains_key("third_party_invite") {
            let token = content
                .get("third_party_invite")
                .and_then(Value::as_object)
                .and_then(|t| t.get("signed"))
                .and_then(Value::as_object)
                .and_then(|s| s.get("token"))
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("third_party_invite without signed.token"))?;
            keys.push(key("m.room.third_party_invite", token));
        }
        if rv.has_restricted_joins() && m == Some("join") {
            if let Some(by) = content.get(member::AUTHORISING_USER) {
                let by = by
                    .as_str()
                    .ok_or_else(|| malformed("join_authorised_via_users_server is not a string"))?;
                keys.push(key("m.room.member", by));
            }
        }
    }
    Ok(keys)
}

/// The auth events by (type, state key).
pub(crate) type AuthMap<'a> = HashMap<(&'a str, &'a str), Ev<'a>>;

/// Whether `event` (named `event_id`) passes room version `rv`'s
/// authorization rules against `auth`: the events of
/// [`auth_event_ids`]`(event)`, each as `(event ID, event)`, which the
/// caller holds as accepted (verified) events. An ID of
/// [`auth_event_ids`] missing from `auth` is [`AuthError::UnknownAuthEvent`].
pub fn check(rv: &RoomVersion, event_id: &str, event: &Object, auth: &[(&str, &Object)]) -> Result<()> {
    let ev = Ev { id: event_id, obj: event };
    if ev.ty() == "m.room.create" {
        // By type alone, as servers do: a create under another state key
        // is judged by the create rule too.
        return check_create(&ev, rv);
    }
    let expected = expected_auth_keys(&ev, rv)?;
    let room = ev.str_field("room_id").ok_or_else(|| malformed("the event has no room_id"))?;
    let mut map: AuthMap<'_> = HashMap::new();
    for id in auth_event_ids(event, rv) {
        let (aid, aobj) = auth
            .iter()
            .find(|(aid, _)| *aid == id)
            .copied()
            .ok_or_else(|| AuthError::UnknownAuthEvent(id.clone()))?;
        let a = Ev { id: aid, obj: aobj };
        let a_room = a.room(rv).unwrap_or_default();
        if a_room != room {
            return Err(AuthError::AuthEventInOtherRoom { event_id: id, room: a_room });
        }
        let Some(sk) = a.state_key() else {
            return Err(AuthError::UnexpectedAuthEvent {
                event_id: id,
                key: format!("{}, not state", a.ty()),
            });
        };
        let k = (a.ty(), sk);
        if map.contains_key(&k) {
            return Err(AuthError::DuplicateAuthEvent(format!("{}, {sk:?}", a.ty())));
        }
        if !expected.iter().any(|(t, s)| t == k.0 && s == k.1) {
            return Err(AuthError::UnexpectedAuthEvent { event_id: id, key: format!("{}, {sk:?}", a.ty()) });
        }
        map.insert(k, a);
    }
    if !map.contains_key(&("m.room.create", "")) {
        return Err(AuthError::NoCreateEvent);
    }
    check_against(&ev, rv, &map)
}

/// The rules that read the auth events (Synapse's state-dependent part).
fn check_against(ev: &Ev<'_>, rv: &RoomVersion, auth: &AuthMap<'_>) -> Result<()> {
    let create = auth.get(&("m.room.create", "")).ok_or(AuthError::NoCreateEvent)?;
    if !rv.uses_cryptoids() {
        let creating = domain_of(create.sender())?;
        let sender = ev.sender();
        if domain_of(sender)? != creating && !can_federate(auth) {
            return Err(AuthError::NotFederated(sender.to_owned()));
        }
    }
    let ty = ev.ty();
    if ty == "m.room.aliases" && rv.special_case_aliases_auth() {
        let sk = ev.state_key().ok_or_else(|| AuthError::Aliases("must be a state event".into()))?;
        if sk.is_empty() {
            return Err(AuthError::Aliases("the state key must be a server name".into()));
        }
        if sk != domain_of(ev.sender())? {
            return Err(AuthError::Aliases("the state key is not the sender's server".into()));
        }
        return Ok(());
    }
    if ty == "m.room.member" {
        return member::check(ev, rv, auth);
    }
    sender_joined(ev.sender(), auth)?;
    if ty == "m.room.third_party_invite" {
        let has = power::user_level(ev.sender(), auth, rv)?;
        let needed = power::named_level(auth, "invite", 0)?;
        if has < needed {
            return Err(AuthError::InsufficientPower { has, needed, what: "invite".into() });
        }
        return Ok(());
    }
    can_send(ev, rv, auth)?;
    if ty == "m.room.power_levels" {
        power::check_change(ev, rv, auth)?;
    }
    if ty == "m.room.redaction" {
        check_redaction(ev, rv, auth)?;
    }
    Ok(())
}

/// `m.federate` in the create event (absent: true; only `true` counts).
pub(crate) fn can_federate(auth: &AuthMap<'_>) -> bool {
    auth.get(&("m.room.create", ""))
        .is_some_and(|c| c.content().get("m.federate").is_none_or(|v| v.as_bool() == Some(true)))
}

pub(crate) fn sender_joined(sender: &str, auth: &AuthMap<'_>) -> Result<()> {
    match auth.get(&("m.room.member", sender)) {
        Some(m) if m.membership() == Some("join") => Ok(()),
        _ => Err(AuthError::SenderNotJoined(sender.to_owned())),
    }
}

/// The create rule.
fn check_create(ev: &Ev<'_>, rv: &RoomVersion) -> Result<()> {
    let bad = |m: &str| Err(AuthError::Create(m.to_owned()));
    if !ref_ids(ev.obj, "prev_events").is_empty() {
        return bad("it has prev_events");
    }
    if rv.room_id_is_create_hash() {
        if ev.obj.contains_key("room_id") {
            return bad("it carries a room_id (room version 12 derives the room ID from its hash)");
        }
    } else if !rv.uses_cryptoids() {
        let room = ev.str_field("room_id").ok_or_else(|| malformed("the create event has no room_id"))?;
        if domain_of(room)? != domain_of(ev.sender())? {
            return bad("the room ID's server is not the sender's");
        }
    }
    let content = ev.content();
    match content.get("room_version") {
        None => {}
        Some(Value::String(v)) if RoomVersion::from_id(v).is_ok() => {}
        Some(v) => return bad(&format!("unsupported room_version {v}")),
    }
    if !rv.implicit_room_creator() && !content.contains_key("creator") {
        return bad("it lacks content.creator");
    }
    if rv.creators_have_infinite_power() {
        if let Some(extra) = content.get("additional_creators") {
            let Some(list) = extra.as_array() else { return bad("additional_creators is not an array") };
            for c in list {
                match c.as_str() {
                    Some(u) if is_valid_user_id(u) && u.len() <= 255 => {}
                    _ => return bad(&format!("additional_creators entry {c} is not a valid user ID")),
                }
            }
        }
    }
    Ok(())
}

/// The rule for events other than create, member, aliases and
/// third-party invites: the sender's level reaches the type's, and a
/// state key that is another user's ID is theirs alone.
fn can_send(ev: &Ev<'_>, rv: &RoomVersion, auth: &AuthMap<'_>) -> Result<()> {
    let sk = ev.state_key();
    let needed = power::send_level(ev.ty(), sk, auth.get(&("m.room.power_levels", "")))?;
    let has = power::user_level(ev.sender(), auth, rv)?;
    if has < needed {
        return Err(AuthError::InsufficientPower { has, needed, what: format!("send {}", ev.ty()) });
    }
    if let Some(sk) = sk {
        if sk.starts_with('@') && sk != ev.sender() {
            return Err(AuthError::OthersState(sk.to_owned()));
        }
    }
    Ok(())
}

/// The redaction rule: a sender with the redact level may redact; in v1–v2
/// also one redacting events of its own server. From v3 on, a lower sender
/// passes here and the redaction applies only to its own events (servers
/// check that when they apply it).
fn check_redaction(ev: &Ev<'_>, rv: &RoomVersion, auth: &AuthMap<'_>) -> Result<()> {
    let has = power::user_level(ev.sender(), auth, rv)?;
    if has >= power::named_level(auth, "redact", 50)? {
        return Ok(());
    }
    if rv.event_id_format() != crate::EventIdFormat::Carried {
        return Ok(());
    }
    let own = domain_of(ev.id)?;
    // Synapse allows a v1–v2 redaction without a string target.
    let Some(target) = ev.str_field("redacts") else { return Ok(()) };
    if domain_of(target)? == own {
        return Ok(());
    }
    Err(AuthError::Redaction)
}

/// A user ID by Synapse's `UserID.is_valid`: `@`, a `:`, and a server name
/// that parses (host name or bracketed IPv6, optional port).
pub(crate) fn is_valid_user_id(u: &str) -> bool {
    let Some((_, server)) = u.strip_prefix('@').and_then(|r| r.split_once(':')) else { return false };
    is_valid_server_name(server)
}

fn is_valid_server_name(s: &str) -> bool {
    if s.ends_with(']') {
        return is_ipv6_literal(s);
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if port.is_some_and(|p| power::python_int(p).is_none()) {
        return false;
    }
    if host.starts_with('[') {
        return is_ipv6_literal(host);
    }
    !host.is_empty()
        && host
            .split('.')
            .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

fn is_ipv6_literal(s: &str) -> bool {
    s.len() > 2
        && s.starts_with('[')
        && s.ends_with(']')
        && s[1..s.len() - 1].chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
}
