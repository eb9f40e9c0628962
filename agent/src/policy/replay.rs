//! Anti-replay: a homeserver must not anchor a new event at an old point of
//! the room DAG (before a ban or a power change) through `prev_events` and
//! `depth`.
//!
//! - `window` (default): `depth` ≥ highest known depth − `depth_window`;
//! - `strict`: every `prev_events` entry is known to the agent;
//! - state events are checked strictly whenever the room has been observed;
//! - `off`.

use super::config::{Action, PolicyConfig, ReplayMode};
use super::{Finding, RoomFacts, SignRequest};
use cryptoid_protocol::json::Value;

fn prev_ids(pdu: &cryptoid_protocol::json::Object) -> Vec<&str> {
    pdu.get("prev_events")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.as_str()),
                    // v1–v2: [event_id, hashes]
                    Value::Array(pair) => pair.first().and_then(Value::as_str),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn check(req: &SignRequest<'_>, room: &RoomFacts<'_>, cfg: &PolicyConfig) -> Vec<Finding> {
    if cfg.anti_replay == ReplayMode::Off || req.initial_state {
        return Vec::new();
    }
    let pdu = req.pdu;
    let is_state = pdu.contains_key("state_key");
    let strict = cfg.anti_replay == ReplayMode::Strict || (is_state && room.observed);
    let mut out = Vec::new();
    if strict {
        let unknown: Vec<&str> = prev_ids(pdu).into_iter().filter(|id| !(room.is_known)(id)).collect();
        if !unknown.is_empty() {
            let why = if cfg.anti_replay == ReplayMode::Strict {
                "strict mode"
            } else {
                "state event in an observed room"
            };
            out.push(Finding::new(
                Action::Deny,
                format!(
                    "prev_events {} never seen by the agent ({why}): feed /sync to rooms.observe, or the server may be replaying into the past",
                    unknown.join(", ")
                ),
            ));
        }
    }
    if let (Some(max), Some(depth)) = (room.max_depth, pdu.get("depth").and_then(Value::as_int)) {
        if depth < max.saturating_sub(cfg.depth_window) {
            out.push(Finding::new(
                Action::Deny,
                format!(
                    "depth {depth} is {} below the newest depth {max} the agent knows (window {}): the event would land in the room's past",
                    max - depth,
                    cfg.depth_window
                ),
            ));
        }
    }
    out
}
