//! Power levels as the authorization rules read them, and the rule for
//! changing them. Levels are read the way Synapse reads them (Python's
//! `int()`): room versions before 10 may write `"50"`, and a level that is
//! not a number makes the event fail, not default.

use super::{malformed, AuthError, AuthMap, Ev, Result};
use crate::json::{Object, Value};
use crate::RoomVersion;

/// A room version 12 creator's level: above any level a power levels event
/// can write (Synapse's `CREATOR_POWER_LEVEL`).
pub const CREATOR_LEVEL: i128 = 1 << 53;

/// The level-valued keys of a power levels event.
const NAMED: [&str; 7] =
    ["users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"];

/// Python's `int(str)`: surrounding whitespace, a sign, digits with single
/// underscores between them.
pub(crate) fn python_int(s: &str) -> Option<i128> {
    let t = s.trim();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let mut v: i128 = 0;
    for c in digits.chars().filter(|c| *c != '_') {
        v = v.checked_mul(10)?.checked_add(i128::from(c.to_digit(10)?))?;
    }
    Some(if neg { -v } else { v })
}

/// A level as `int(value)` reads it.
pub(crate) fn level_of(v: &Value) -> Result<i128> {
    match v {
        Value::Int(i) => Ok(i128::from(i.get())),
        Value::Bool(b) => Ok(i128::from(*b)),
        Value::String(s) => {
            python_int(s).ok_or_else(|| malformed(format!("power level {s:?} is not a number")))
        }
        other => Err(malformed(format!("power level {other} is not a number"))),
    }
}

/// `content[key]` as an object: absent is empty, anything but an object
/// (null included) is malformed.
fn sub_object<'a>(content: &'a Object, key: &str) -> Result<Option<&'a Object>> {
    match content.get(key) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(malformed(format!("power levels' {key} is not an object"))),
    }
}

/// Whether `user` created the room (v12: or is one of its additional creators).
fn is_creator(create: &Ev<'_>, user: &str, rv: &RoomVersion) -> bool {
    create.sender() == user
        || (rv.creators_have_infinite_power()
            && create
                .content()
                .get("additional_creators")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|c| c.as_str() == Some(user))))
}

/// A user's power level under the auth events.
pub(crate) fn user_level(user: &str, auth: &AuthMap<'_>, rv: &RoomVersion) -> Result<i128> {
    let create = auth.get(&("m.room.create", "")).ok_or(AuthError::NoCreateEvent)?;
    if rv.creators_have_infinite_power() && is_creator(create, user, rv) {
        return Ok(CREATOR_LEVEL);
    }
    if let Some(pl) = auth.get(&("m.room.power_levels", "")) {
        let content = pl.content();
        let own =
            sub_object(content, "users")?.and_then(|u| u.get(user)).filter(|v| !matches!(v, Value::Null));
        return match own.or_else(|| content.get("users_default")) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => level_of(v),
        };
    }
    let creator = if rv.implicit_room_creator() {
        Some(create.sender())
    } else {
        Some(
            create
                .content()
                .get("creator")
                .ok_or_else(|| malformed("the create event has no creator"))?
                .as_str(),
        )
        .flatten()
    };
    Ok(if creator == Some(user) { 100 } else { 0 })
}

/// A named level (`invite`, `ban`, …), or its default without power levels.
pub(crate) fn named_level(auth: &AuthMap<'_>, name: &str, default: i128) -> Result<i128> {
    match auth.get(&("m.room.power_levels", "")).and_then(|pl| pl.content().get(name)) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => level_of(v),
    }
}

/// The level needed to send `ty` (a state event when `state_key` is set).
pub(crate) fn send_level(ty: &str, state_key: Option<&str>, pl: Option<&Ev<'_>>) -> Result<i128> {
    let empty = Object::new();
    let content = pl.map_or(&empty, |p| p.content());
    if let Some(v) =
        sub_object(content, "events")?.and_then(|e| e.get(ty)).filter(|v| !matches!(v, Value::Null))
    {
        return level_of(v);
    }
    let (key, default) = if state_key.is_some() { ("state_default", 50) } else { ("events_default", 0) };
    content.get(key).map_or(Ok(default), level_of)
}

/// Whether a `users` key names a member: a user ID (`@` and a `:`), and in
/// the cryptoID versions also a cryptoID.
fn names_member(k: &str, rv: &RoomVersion) -> bool {
    let user_id = k.strip_prefix('@').is_some_and(|r| r.contains(':'));
    user_id || (rv.uses_cryptoids() && crate::keys::PublicKey::from_base64(k).is_ok())
}

/// The power levels rule: well-formed levels, and no change the sender's
/// level does not allow (raising anything above it, changing a level above
/// it, or changing another member's level equal to it).
pub(crate) fn check_change(ev: &Ev<'_>, rv: &RoomVersion, auth: &AuthMap<'_>) -> Result<()> {
    let bad = |m: String| Err(AuthError::PowerLevels(m));
    let content = ev.content();
    let users = sub_object(content, "users")?;
    for (k, v) in users.into_iter().flatten() {
        if !names_member(k, rv) {
            return bad(format!("users key {k:?} is not a valid user ID"));
        }
        level_of(v)?;
    }
    if rv.creators_have_infinite_power() {
        let create = auth.get(&("m.room.create", "")).ok_or(AuthError::NoCreateEvent)?;
        let listed = |u: &str| users.is_some_and(|m| m.contains_key(u));
        if listed(create.sender()) {
            return bad("the room's creator must not appear in users".into());
        }
        let extra = create.content().get("additional_creators").and_then(Value::as_array);
        if extra.into_iter().flatten().filter_map(Value::as_str).any(listed) {
            return bad("an additional creator must not appear in users".into());
        }
    }
    if rv.enforces_integer_power_levels() {
        for (k, v) in content {
            if NAMED.contains(&k.as_str()) && !matches!(v, Value::Int(_)) {
                return bad(format!("{k} must be an integer"));
            }
            if matches!(k.as_str(), "events" | "notifications" | "users") {
                match v {
                    Value::Object(o) if o.values().all(|x| matches!(x, Value::Int(_))) => {}
                    _ => return bad(format!("{k} must be an object of integers")),
                }
            }
        }
    }
    let Some(current) = auth.get(&("m.room.power_levels", "")) else { return Ok(()) };
    let sender = ev.sender();
    let has = user_level(sender, auth, rv)?;
    let old = current.content();
    let mut dirs: Vec<Option<&str>> = vec![Some("users"), Some("events")];
    if rv.limits_notifications_power_levels() {
        dirs.push(Some("notifications"));
    }
    dirs.push(None);
    for dir in dirs {
        let (old_loc, new_loc) = match dir {
            Some(d) => (sub_object(old, d)?, sub_object(content, d)?),
            None => (Some(old), Some(content)),
        };
        let names: Vec<&str> = match dir {
            Some(_) => {
                let mut n: Vec<&str> =
                    old_loc.into_iter().chain(new_loc).flat_map(|o| o.keys().map(String::as_str)).collect();
                n.sort_unstable();
                n.dedup();
                n
            }
            None => NAMED.to_vec(),
        };
        for name in names {
            let read = |loc: Option<&Object>| -> Result<Option<i128>> {
                loc.and_then(|o| o.get(name)).map(level_of).transpose()
            };
            let (was, will) = (read(old_loc)?, read(new_loc)?);
            if was.is_some() && was == will {
                continue;
            }
            if dir == Some("users") && name != sender && was == Some(has) {
                return bad(format!("the sender may not change the level of {name}, equal to their own"));
            }
            if was.is_some_and(|l| l > has) || will.is_some_and(|l| l > has) {
                let what = dir.map_or(name.to_owned(), |d| format!("{d}[{name}]"));
                return bad(format!("the sender (level {has}) may not change {what} above their own level"));
            }
        }
    }
    Ok(())
}
