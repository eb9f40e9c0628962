//! A PDU judged as every other server will judge it: by the authorization
//! rules against its own `auth_events`. When the agent holds them all
//! verified, a PDU that fails the rules is denied (the user never signs an
//! event the federation rejects), and the power levels among them are the
//! baseline of the diff the person approves. When it does not, the
//! baseline is unverified, and the prompt says so.

use super::config::{Action, RoomViewMode};
use super::{Finding, PolicyConfig, RoomFacts, SignRequest};
use cryptoid_protocol::auth;
use cryptoid_protocol::json::{Object, Value};

/// What the PDU's diff is computed against.
pub enum Baseline {
    /// Every auth event is held verified and the PDU passes the rules
    /// against them: these are its power levels (none: the room's defaults).
    Verified { power_levels: Option<Object> },
    /// Some auth events are not held verified (listed).
    Unverified { missing: Vec<String> },
}

pub fn check(req: &SignRequest<'_>, room: &RoomFacts<'_>, cfg: &PolicyConfig) -> (Vec<Finding>, Baseline) {
    let pdu = req.pdu;
    let rv = req.room_version;
    let ids = auth::auth_event_ids(pdu, rv);
    let mut held: Vec<(String, Object)> = Vec::with_capacity(ids.len());
    let mut missing = Vec::new();
    for id in ids {
        if held.iter().any(|(h, _)| *h == id) || missing.contains(&id) {
            // Cited twice: the rules refuse it; one lookup is enough.
            continue;
        }
        match (room.auth_event)(&id) {
            Some(e) => held.push((id, e)),
            None => missing.push(id),
        }
    }
    if req.initial_state || !missing.is_empty() || held.is_empty() {
        let mut findings = Vec::new();
        if cfg.room_view == RoomViewMode::Verified && room.holds_verified && !req.initial_state {
            findings.push(Finding::new(
                Action::Confirm,
                format!(
                    "the agent holds this room verified, but not {} that this PDU's auth_events name: servers will judge it by events the agent has not verified (feed them to rooms.observe as pdus)",
                    if missing.is_empty() { "the events".to_owned() } else { missing.join(", ") }
                ),
            ));
        }
        return (findings, Baseline::Unverified { missing });
    }
    let event_id = pdu.get("event_id").and_then(Value::as_str).unwrap_or("");
    let refs: Vec<(&str, &Object)> = held.iter().map(|(id, e)| (id.as_str(), e)).collect();
    let finding = match auth::check(rv, event_id, pdu, &refs) {
        Ok(()) => Finding::new(Action::Allow, "passes the room version's authorization rules against its auth_events"),
        Err(e) => Finding::new(
            Action::Deny,
            format!("servers would reject this event: it fails the authorization rules against its own auth_events ({e})"),
        ),
    };
    let power_levels = held
        .into_iter()
        .map(|(_, e)| e)
        .find(|e| {
            e.get("type").and_then(Value::as_str) == Some("m.room.power_levels")
                && e.get("state_key").and_then(Value::as_str) == Some("")
        })
        .and_then(|mut e| e.remove("content"))
        .and_then(Value::into_object);
    (vec![finding], Baseline::Verified { power_levels })
}
