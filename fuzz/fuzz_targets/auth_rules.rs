//! The received-event checks and the authorization rules on hostile input:
//! the input is a JSON case `{"room_version", "event", "auth_events": [...]}`
//! (the differential test's format), any shape.
//!
//! Oracles: no panic on any input; an event the rules accept passes them
//! again with its auth events in any order (the verdict does not depend on
//! how a homeserver lists them); a create event's verdict does not depend on
//! auth events at all.
#![no_main]

use cryptoid_protocol::json::{self, Object, Value};
use cryptoid_protocol::{auth, event, received, RoomVersion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Object(case)) = json::from_slice(data) else { return };
    let Some(rv) = case.get("room_version").and_then(Value::as_str).and_then(|v| RoomVersion::from_id(v).ok()) else {
        return;
    };
    let Some(ev) = case.get("event").and_then(Value::as_object) else { return };
    let no_keys = |_: &str| Vec::new();
    let _ = received::check(ev, &rv, &no_keys);
    let auth_events: Vec<&Object> =
        case.get("auth_events").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_object).collect()).unwrap_or_default();
    let ids: Vec<String> = auth_events.iter().filter_map(|e| event::event_id(e, &rv).ok()).collect();
    if ids.len() != auth_events.len() {
        return;
    }
    let id = event::event_id(ev, &rv).unwrap_or_default();
    let held: Vec<(&str, &Object)> = ids.iter().map(String::as_str).zip(auth_events.iter().copied()).collect();
    let verdict = auth::check(&rv, &id, ev, &held);
    let mut reversed = held.clone();
    reversed.reverse();
    if verdict.is_ok() {
        assert!(auth::check(&rv, &id, ev, &reversed).is_ok(), "the verdict depends on the auth events' order");
    }
    if ev.get("type").and_then(Value::as_str) == Some("m.room.create") {
        assert_eq!(verdict.is_ok(), auth::check(&rv, &id, ev, &[]).is_ok(), "a create's verdict read auth events");
    }
});
