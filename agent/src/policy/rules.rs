//! Ordered rules on room, event type and state-ness, then the defaults.

use super::config::{glob, Action, PolicyConfig};
use super::{Finding, SignRequest};
use cryptoid_protocol::json::Value;

/// State types whose change is security-relevant: confirm by default.
const SENSITIVE_STATE: [&str; 6] = [
    "m.room.power_levels",
    "m.room.join_rules",
    "m.room.server_acl",
    "m.room.tombstone",
    "m.room.history_visibility",
    "m.room.encryption",
];

/// State types that change only presentation: allowed by default.
const PLAIN_STATE: [&str; 7] = [
    "m.room.member",
    "m.room.create",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.pinned_events",
];

/// Initial state a createRoom batch normally carries (DESIGN §7): expected,
/// so allowed there; power over others is still judged by `power`.
const INITIAL_STATE: [&str; 5] = [
    "m.room.power_levels",
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.encryption",
    "m.room.guest_access",
];

pub fn check(req: &SignRequest<'_>, cfg: &PolicyConfig) -> Finding {
    let ty = req.pdu.get("type").and_then(Value::as_str).unwrap_or("");
    let room = req.pdu.get("room_id").and_then(Value::as_str).unwrap_or("");
    let is_state = req.pdu.contains_key("state_key");
    let kind = if is_state { "state event" } else { "event" };
    if let Some((i, rule)) = cfg.rules.iter().enumerate().find(|(_, r)| {
        glob(&r.room, room) && glob(&r.event_type, ty) && r.state.is_none_or(|s| s == is_state)
    }) {
        return Finding::new(
            rule.action,
            format!(
                "{kind} {ty} in {room}: rule {} (room {:?}, type {:?}) says {}",
                i + 1,
                rule.room,
                rule.event_type,
                rule.action.as_str()
            ),
        );
    }
    let (action, why) = if !is_state {
        (Action::Allow, "events that are not state are allowed by default")
    } else if req.initial_state && INITIAL_STATE.contains(&ty) {
        (Action::Allow, "expected initial state of a new room")
    } else if SENSITIVE_STATE.contains(&ty) {
        (Action::Confirm, "security-relevant state needs confirmation by default")
    } else if PLAIN_STATE.contains(&ty) {
        (Action::Allow, "allowed by default")
    } else {
        (Action::Confirm, "unknown state events need confirmation by default")
    };
    Finding::new(action, format!("{kind} {ty}: {why}"))
}
