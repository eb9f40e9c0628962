//! Bursts: more signatures in a room, or by a client, than the configured
//! rate within the window → confirm.

use super::config::{Action, PolicyConfig};
use super::{ClientFacts, Finding, RateFacts};
use cryptoid_protocol::json::{Object, Value};

pub fn check(pdu: &Object, client: &ClientFacts<'_>, facts: RateFacts, cfg: &PolicyConfig) -> Vec<Finding> {
    let r = &cfg.rate;
    let room = pdu.get("room_id").and_then(Value::as_str).unwrap_or("");
    let mut out = Vec::new();
    if r.per_room > 0 && facts.room >= r.per_room {
        out.push(Finding::new(
            Action::Confirm,
            format!(
                "burst: {} signatures in {room} in the last {} s (limit {})",
                facts.room, r.window_secs, r.per_room
            ),
        ));
    }
    if r.per_client > 0 && facts.client >= r.per_client {
        out.push(Finding::new(
            Action::Confirm,
            format!(
                "burst: {} signatures for client {} in the last {} s (limit {})",
                facts.client,
                client.exe.unwrap_or("(unknown)"),
                r.window_secs,
                r.per_client
            ),
        ));
    }
    out
}
