//! Anti-replay: the homeserver chooses `prev_events`, `auth_events` and
//! `depth`, and must not anchor a new event at an old point of the room DAG
//! (before a ban or a power change). Checks, in order:
//!
//! - **depth rule**: when the depths of all `prev_events` are known, `depth`
//!   must be exactly their maximum + 1 (the spec's rule); when only some
//!   are, above every known one;
//! - **anchor**: the room's newest authorization-relevant event (create,
//!   power levels, join rules, a membership change that is not a join) must
//!   lie behind the new event: `depth` above the anchor's, and some known
//!   `prev_event` must be the anchor or deeper than it;
//! - **superseded auth**: `auth_events` must not name an authorization event
//!   the agent knows was replaced;
//! - **known prev_events**: in `strict` mode (and for state events in an
//!   observed room) every `prev_events` entry was observed or signed;
//! - **window**: `depth` ≥ highest known depth − `depth_window`.
//!
//! `off` skips all of them. A createRoom batch is judged by its chain
//! instead ([`super::create_room`]).

use super::config::{Action, PolicyConfig, ReplayMode};
use super::{Finding, RoomFacts, SignRequest};
use cryptoid_protocol::json::Value;

/// The event IDs of a `prev_events` or `auth_events` list (v1–v2 pairs too).
pub use cryptoid_protocol::auth::ref_ids;

fn deny(out: &mut Vec<Finding>, why: String) {
    out.push(Finding::new(Action::Deny, why));
}

pub fn check(req: &SignRequest<'_>, room: &RoomFacts<'_>, cfg: &PolicyConfig) -> Vec<Finding> {
    if cfg.anti_replay == ReplayMode::Off || req.initial_state {
        return Vec::new();
    }
    let pdu = req.pdu;
    let depth = pdu.get("depth").and_then(Value::as_int).unwrap_or(0);
    let prevs: Vec<(&str, Option<i64>)> =
        ref_ids(pdu, "prev_events").into_iter().map(|id| (id, (room.depth_of)(id))).collect();
    let mut out = Vec::new();

    let known: Vec<(&str, i64)> = prevs.iter().filter_map(|(id, d)| d.map(|d| (*id, d))).collect();
    if !known.is_empty() && known.len() < prevs.len() {
        // Some parents unknown: depth must still exceed every known one
        // (an event cannot be older than its parent).
        let (id, highest) = known.iter().max_by_key(|(_, d)| *d).copied().unwrap_or(("?", 0));
        if depth <= highest {
            deny(
                &mut out,
                format!("depth {depth} is not above the depth {highest} of its prev_event {id}: an event comes after its parents"),
            );
        }
    }
    if !prevs.is_empty() && known.len() == prevs.len() {
        let expected = known.iter().map(|(_, d)| *d).max().unwrap_or(0).saturating_add(1);
        if depth != expected {
            deny(
                &mut out,
                format!(
                    "depth {depth} breaks the depth rule: its prev_events are known at depth {} at most, so it must be {expected}",
                    expected - 1
                ),
            );
        }
    }

    if let Some(a) = &room.anchor {
        if depth <= a.depth {
            deny(
                &mut out,
                format!(
                    "depth {depth} is not above the room's latest {} ({} at depth {}): the event would be anchored before it",
                    a.what, a.event_id, a.depth
                ),
            );
        } else if !known.is_empty() && !known.iter().any(|(id, d)| *id == a.event_id || *d > a.depth) {
            deny(
                &mut out,
                format!(
                    "every known prev_event lies at or before the room's latest {} ({} at depth {}): the event would be anchored before it",
                    a.what, a.event_id, a.depth
                ),
            );
        }
    }

    let stale: Vec<&str> =
        ref_ids(pdu, "auth_events").into_iter().filter(|id| (room.is_superseded)(id)).collect();
    if !stale.is_empty() {
        deny(
            &mut out,
            format!(
                "auth_events name {}, superseded by newer state the agent has seen: the event would be authorized by old power levels, join rules or memberships",
                stale.join(", ")
            ),
        );
    }

    let is_state = pdu.contains_key("state_key");
    let strict = cfg.anti_replay == ReplayMode::Strict || (is_state && room.observed);
    let unknown: Vec<&str> = prevs.iter().filter(|(_, d)| d.is_none()).map(|(id, _)| *id).collect();
    if strict && !unknown.is_empty() {
        let why = if cfg.anti_replay == ReplayMode::Strict {
            "strict mode"
        } else {
            "state event in an observed room"
        };
        deny(
            &mut out,
            format!(
                "prev_events {} never observed or signed by the agent ({why}): feed /sync to rooms.observe, or the server may be replaying into the past",
                unknown.join(", ")
            ),
        );
    }

    if let Some(max) = room.max_depth {
        if depth < max.saturating_sub(cfg.depth_window) {
            deny(
                &mut out,
                format!(
                    "depth {depth} is {} below the newest depth {max} the agent knows (window {}): the event would land in the room's past",
                    max - depth,
                    cfg.depth_window
                ),
            );
        }
    }
    out
}
