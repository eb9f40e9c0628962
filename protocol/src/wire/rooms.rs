//! `rooms.observe`: feed the agent's view of a room (what `/sync` showed),
//! which the anti-replay checks compare `prev_events` and `depth` with and
//! the diffs a person approves are computed against.
//!
//! Two grades of fact: `pdus` are full events in federation format, which
//! the agent verifies (event ID, content hash, signature, authorization
//! rules against their own `auth_events`) and refuses when a check fails;
//! `events` are summaries, which the agent takes as *claimed* by the
//! homeserver (under `room_view = "verified"` they can only make it more
//! careful).

use super::Method;
use crate::json::Value;
use serde::{Deserialize, Serialize};

pub struct Observe;
impl Method for Observe {
    const NAME: &'static str = "rooms.observe";
    type Params = ObserveParams;
    type Result = RoomView;
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserveParams {
    pub room_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_version: Option<String>,
    /// Summaries: claimed facts.
    #[serde(default)]
    pub events: Vec<ObservedEvent>,
    /// Full events in federation format (`/sync`, `/messages` or `/context`
    /// with a filter of `"event_format": "federation"`): verified facts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pdus: Vec<Value>,
    /// Server signing keys, `{server: {key_id: public key (Base64)}}`, for
    /// checking the server signatures of members' `mxid_mapping`: a mapping
    /// that verifies names its member by Matrix ID; one that does not is
    /// shown as claimed by the homeserver.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub server_keys: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
}

/// An event seen in the room (federation format carries depth and
/// prev_events; `type`/`state_key`/`content` let the agent track power
/// levels).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedEvent {
    pub event_id: String,
    pub depth: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prev_events: Vec<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
}

/// What the agent now knows of the room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomView {
    pub room_id: String,
    pub max_depth: Option<u64>,
    pub known_events: u64,
    pub observed: bool,
    /// Of this call's events: how many entered the view verified.
    #[serde(default)]
    pub verified: u64,
    /// Of this call's events: how many are only claimed (summaries, and
    /// full events whose `auth_events` the agent does not hold).
    #[serde(default)]
    pub claimed: u64,
}

/// What [`from_sync`] made of a document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FromSync {
    /// One `rooms.observe` per room with events.
    pub calls: Vec<ObserveParams>,
    /// Events neither full (federation format) nor a summary (no
    /// `event_id` or `depth`): a client-format `/sync` gives only these.
    pub skipped: usize,
}

/// The `rooms.observe` calls for a `/sync` response (`rooms.join` and
/// `rooms.leave`, their `state` and `timeline` events) or a
/// `{room_id, events}` document. Events in federation format (with
/// `hashes` and `signatures`) become `pdus`, to be verified; others with an
/// `event_id` and a `depth` become summaries (claims). Ask the homeserver
/// with a filter of `{"event_format": "federation"}` to get the first kind.
pub fn from_sync(doc: &crate::json::Object) -> Option<FromSync> {
    let mut out = FromSync::default();
    let one = |room_id: &str, lists: Vec<&Vec<Value>>, out: &mut FromSync| {
        let mut p = ObserveParams { room_id: room_id.to_owned(), ..ObserveParams::default() };
        for e in lists.into_iter().flatten() {
            let Some(o) = e.as_object() else {
                out.skipped += 1;
                continue;
            };
            if o.contains_key("hashes") && o.contains_key("signatures") {
                p.pdus.push(e.clone());
            } else if let Some(s) = summary(o) {
                p.events.push(s);
            } else {
                out.skipped += 1;
            }
        }
        if !p.events.is_empty() || !p.pdus.is_empty() {
            out.calls.push(p);
        }
    };
    if let (Some(room), Some(events)) =
        (doc.get("room_id").and_then(Value::as_str), doc.get("events").and_then(Value::as_array))
    {
        one(room, vec![events], &mut out);
        return Some(out);
    }
    let rooms = doc.get("rooms")?.as_object()?;
    for section in ["join", "leave"] {
        for (room_id, room) in rooms.get(section).and_then(Value::as_object).into_iter().flatten() {
            let lists = ["state", "timeline"]
                .iter()
                .filter_map(|part| room.as_object()?.get(*part)?.as_object()?.get("events")?.as_array())
                .collect();
            one(room_id, lists, &mut out);
        }
    }
    Some(out)
}

/// A summary of an event with an `event_id` and a `depth`.
fn summary(e: &crate::json::Object) -> Option<ObservedEvent> {
    let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(ObservedEvent {
        event_id: s("event_id")?,
        depth: e.get("depth").and_then(Value::as_int).and_then(|d| u64::try_from(d).ok())?,
        prev_events: e
            .get("prev_events")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default(),
        event_type: s("type"),
        state_key: s("state_key"),
        content: e.get("content").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(text: &str) -> crate::json::Object {
        crate::json::from_str(text).expect("json").into_object().expect("object")
    }

    #[test]
    fn from_sync_splits_full_events_from_summaries() {
        let doc = obj(r#"{"rooms":{"join":{"!a:x":{"timeline":{"events":[
                {"event_id":"$1","depth":5,"prev_events":["$0"],"type":"m.room.message","content":{}},
                {"event_id":"$2","type":"m.room.message"},
                {"type":"m.room.message","sender":"k","room_id":"!a:x","content":{},"depth":6,"hashes":{"sha256":"h"},"signatures":{}}]},
                "state":{"events":[{"event_id":"$p","depth":3,"type":"m.room.power_levels","state_key":"","content":{"users":{}}}]}}}}}"#);
        let FromSync { calls, skipped } = from_sync(&doc).expect("parse");
        assert_eq!(skipped, 1);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].room_id, "!a:x");
        let ids: Vec<&str> = calls[0].events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["$p", "$1"]);
        assert_eq!(calls[0].events[1].prev_events, ["$0"]);
        assert_eq!(calls[0].pdus.len(), 1, "the federation-format event is a full event");
        let direct = obj(r#"{"room_id":"!b:x","events":[{"event_id":"$9","depth":9}]}"#);
        assert_eq!(from_sync(&direct).expect("direct").calls[0].room_id, "!b:x");
        assert!(from_sync(&obj("{}")).is_none());
    }
}
