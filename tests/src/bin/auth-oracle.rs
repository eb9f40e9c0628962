//! Reads authorization cases as JSON lines and answers each with the
//! agent's verdict, for the differential test against Synapse
//! (`tests/interop/auth_diff.py`).
//!
//! In:  `{"room_version": "11", "event": {…}, "auth_events": [{…}, …]}`
//!      (federation format; v1–v2 events carry their `event_id`)
//! Out: `{"ok": true}` or `{"ok": false, "why": "…"}`, one line per case.

use cryptoid_protocol::{auth, event, json, RoomVersion};
use std::io::{BufRead, Write};

fn judge(line: &str) -> Result<(), String> {
    let case =
        json::from_str(line).map_err(|e| format!("case: {e}"))?.into_object().ok_or("case: not an object")?;
    let rv = case
        .get("room_version")
        .and_then(json::Value::as_str)
        .ok_or("case: no room_version")
        .and_then(|v| RoomVersion::from_id(v).map_err(|_| "case: unknown room version"))?;
    let ev = case.get("event").and_then(json::Value::as_object).ok_or("case: no event")?;
    let auth_events: Vec<&json::Object> = case
        .get("auth_events")
        .and_then(json::Value::as_array)
        .map(|a| a.iter().filter_map(json::Value::as_object).collect())
        .unwrap_or_default();
    let ids: Vec<String> = auth_events
        .iter()
        .map(|e| event::event_id(e, &rv))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let held: Vec<(&str, &json::Object)> =
        ids.iter().map(String::as_str).zip(auth_events.iter().copied()).collect();
    let id = event::event_id(ev, &rv).map_err(|e| e.to_string())?;
    auth::check(&rv, &id, ev, &held).map_err(|e| e.to_string())
}

fn main() {
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let answer = match judge(&line) {
            Ok(()) => serde_json::json!({"ok": true}),
            Err(why) => serde_json::json!({"ok": false, "why": why}),
        };
        if writeln!(out, "{answer}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
}
