//! Power levels as the authorization rules read them, and their diff.
//!
//! Every field is compared: `users`, `users_default`, `events`,
//! `events_default`, `state_default`, `ban`, `kick`, `redact`, `invite`,
//! `notifications`, and any other key (as JSON). Levels written as strings
//! (valid in room versions 1–9) are parsed as integers; a level that is no
//! integer, or a string from room version 10 on, is an error, never read as
//! the default.

use cryptoid_protocol::json::{Object, Value};
use cryptoid_protocol::RoomVersion;
use std::collections::BTreeSet;

/// Threshold fields and their values when absent from a power levels event.
pub const THRESHOLDS: [(&str, i64); 7] = [
    ("users_default", 0),
    ("events_default", 0),
    ("state_default", 50),
    ("ban", 50),
    ("kick", 50),
    ("redact", 50),
    ("invite", 0),
];

/// `notifications.room` when absent.
const NOTIFICATIONS_ROOM: i64 = 50;

/// Largest magnitude canonical JSON allows.
const MAX_LEVEL: i64 = (1 << 53) - 1;

/// Parses a level: an integer, or in room versions 1–9 a string of one
/// (optional sign, ASCII digits, surrounding whitespace ignored).
pub fn parse(v: &Value, rv: &RoomVersion, what: &str) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(i.get()),
        Value::String(s) if rv.allows_string_power_levels() => {
            let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
            let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("power level {what} is {v}, which is not an integer"));
            }
            t.parse::<i64>()
                .ok()
                .filter(|n| n.unsigned_abs() <= MAX_LEVEL as u64)
                .ok_or_else(|| format!("power level {what} is {v}, out of range"))
        }
        Value::String(_) => Err(format!(
            "power level {what} is the string {v}; room version {rv} requires integers (strings were valid up to version 9)"
        )),
        other => Err(format!("power level {what} is {other}, which is not an integer")),
    }
}

/// A power levels content, checked.
pub struct Levels<'a> {
    obj: &'a Object,
    rv: &'a RoomVersion,
}

/// One field that differs between two power levels contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// `state_default`, `events[m.room.power_levels]`, `users[3TPraTczVkDP…]`.
    pub field: String,
    /// The user a `users` entry names, unshortened.
    pub user: Option<String>,
    pub from: String,
    pub to: String,
    /// Someone gains power: a lower threshold, a higher user level or
    /// `users_default`.
    pub grants: bool,
}

impl Change {
    pub fn describe(&self) -> String {
        format!("{} {} → {}", self.field, self.from, self.to)
    }
}

fn sub<'a>(obj: &'a Object, key: &str) -> Option<&'a Object> {
    obj.get(key).and_then(Value::as_object)
}

/// An empty content: every level at its default.
static EMPTY: Object = Object::new();

impl<'a> Levels<'a> {
    /// The levels of a content with no fields (all defaults).
    pub fn defaults(rv: &'a RoomVersion) -> Levels<'a> {
        Levels { obj: &EMPTY, rv }
    }

    /// Checks every level in `obj` parses; names the first that does not.
    pub fn new(obj: &'a Object, rv: &'a RoomVersion) -> Result<Levels<'a>, String> {
        let l = Levels { obj, rv };
        for (k, _) in THRESHOLDS {
            l.top(k)?;
        }
        for map in ["users", "events", "notifications"] {
            match obj.get(map) {
                None | Some(Value::Object(_)) => {}
                Some(other) => return Err(format!("power levels `{map}` is {other}, not an object")),
            }
            for (k, v) in sub(obj, map).into_iter().flatten() {
                parse(v, rv, &format!("{map}[{k}]"))?;
            }
        }
        Ok(l)
    }

    fn top(&self, key: &str) -> Result<Option<i64>, String> {
        self.obj.get(key).map(|v| parse(v, self.rv, key)).transpose()
    }

    fn in_map(&self, map: &str, key: &str) -> Option<i64> {
        sub(self.obj, map).and_then(|m| m.get(key)).and_then(|v| parse(v, self.rv, key).ok())
    }

    /// A threshold's value, its default when absent.
    pub fn threshold(&self, key: &str) -> i64 {
        let default = THRESHOLDS.iter().find(|(k, _)| *k == key).map_or(0, |(_, d)| *d);
        self.top(key).ok().flatten().unwrap_or(default)
    }

    /// A user's level (`users_default` when not listed).
    pub fn user(&self, user: &str) -> i64 {
        self.in_map("users", user).unwrap_or_else(|| self.threshold("users_default"))
    }

    /// The level for `event_type` as state and as any other event.
    fn event_both(&self, event_type: &str) -> (i64, i64) {
        match self.in_map("events", event_type) {
            Some(l) => (l, l),
            None => (self.threshold("state_default"), self.threshold("events_default")),
        }
    }

    fn notification(&self, key: &str) -> i64 {
        self.in_map("notifications", key).unwrap_or(if key == "room" { NOTIFICATIONS_ROOM } else { 0 })
    }

    fn keys(&self, map: &str) -> impl Iterator<Item = &'a String> {
        sub(self.obj, map).into_iter().flat_map(|m| m.keys())
    }

    /// Whether `map[key]` is written (not defaulted).
    fn has(&self, map: &str, key: &str) -> bool {
        sub(self.obj, map).is_some_and(|m| m.contains_key(key))
    }

    /// Every field where `new` differs from `self`.
    pub fn diff(&self, new: &Levels<'_>) -> Vec<Change> {
        let mut out = Vec::new();
        let show = |written: bool, v: i64| if written { v.to_string() } else { format!("{v} (default)") };
        for (k, _) in THRESHOLDS {
            let (a, b) = (self.threshold(k), new.threshold(k));
            if a != b {
                let grants = if k == "users_default" { b > a } else { b < a };
                out.push(Change {
                    field: k.to_owned(),
                    user: None,
                    from: show(self.obj.contains_key(k), a),
                    to: show(new.obj.contains_key(k), b),
                    grants,
                });
            }
        }
        let users: BTreeSet<&String> = self.keys("users").chain(new.keys("users")).collect();
        for u in users {
            let (a, b) = (self.user(u), new.user(u));
            if a != b {
                out.push(Change {
                    field: format!("users[{}]", super::power::short(u)),
                    user: Some(u.clone()),
                    from: show(self.has("users", u), a),
                    to: show(new.has("users", u), b),
                    grants: b > a,
                });
            }
        }
        // An unlisted type needs `state_default` as state and
        // `events_default` otherwise: a change under either is a change.
        let events: BTreeSet<&String> = self.keys("events").chain(new.keys("events")).collect();
        for t in events {
            let (a, b) = (self.event_both(t), new.event_both(t));
            if a != b || self.has("events", t) != new.has("events", t) {
                let show = |l: &Levels<'_>, (state, other): (i64, i64)| {
                    if l.has("events", t) {
                        state.to_string()
                    } else {
                        format!("unset ({state} as state, {other} otherwise)")
                    }
                };
                out.push(Change {
                    field: format!("events[{t}]"),
                    user: None,
                    from: show(self, a),
                    to: show(new, b),
                    grants: b.0 < a.0 || b.1 < a.1,
                });
            }
        }
        let notes: BTreeSet<&str> = self
            .keys("notifications")
            .chain(new.keys("notifications"))
            .map(String::as_str)
            .chain(["room"])
            .collect();
        for n in notes {
            let (a, b) = (self.notification(n), new.notification(n));
            if a != b {
                out.push(Change {
                    field: format!("notifications[{n}]"),
                    user: None,
                    from: show(self.has("notifications", n), a),
                    to: show(new.has("notifications", n), b),
                    grants: b < a,
                });
            }
        }
        let known = |k: &str| {
            THRESHOLDS.iter().any(|(t, _)| *t == k) || matches!(k, "users" | "events" | "notifications")
        };
        let others: BTreeSet<&String> =
            self.obj.keys().chain(new.obj.keys()).filter(|k| !known(k.as_str())).collect();
        for k in others {
            let (a, b) = (self.obj.get(k.as_str()), new.obj.get(k.as_str()));
            if a != b {
                let show = |v: Option<&Value>| v.map_or("unset".to_owned(), |v| v.to_string());
                // Keys the authorization rules do not read grant nothing.
                out.push(Change { field: k.clone(), user: None, from: show(a), to: show(b), grants: false });
            }
        }
        out
    }

    /// Fields of `self` raised from `base` above `level` (the creator's):
    /// what the creator could no longer do, e.g. `state_default 50 → 101`.
    pub fn raised_above(&self, base: &Levels<'_>, level: i64) -> Vec<String> {
        let mut out = Vec::new();
        for (k, _) in THRESHOLDS.iter().filter(|(k, _)| *k != "users_default") {
            let (a, b) = (base.threshold(k), self.threshold(k));
            if b > a && b > level {
                out.push(format!("{k} {a} → {b}"));
            }
        }
        let events: BTreeSet<&String> = base.keys("events").chain(self.keys("events")).collect();
        for t in events {
            let (a, b) = (base.event_both(t), self.event_both(t));
            if b.0 > a.0 && b.0 > level {
                out.push(format!("events[{t}] {} → {}", a.0, b.0));
            }
        }
        out
    }
}
