//! `origin_server_ts` must be near the agent's clock: a server must not keep
//! a signed PDU to release later, nor date one into the past.

use super::config::{Action, PolicyConfig};
use super::Finding;
use cryptoid_protocol::json::{Object, Value};

fn human(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=119 => format!("{s} s"),
        120..=3599 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

pub fn check(pdu: &Object, cfg: &PolicyConfig, now_ms: u64) -> Option<Finding> {
    let ts = pdu.get("origin_server_ts").and_then(Value::as_int)?;
    let ts = u64::try_from(ts).unwrap_or(0);
    let skew = cfg.clock_skew_secs.saturating_mul(1000);
    if ts + skew < now_ms {
        Some(Finding::new(
            Action::Deny,
            format!(
                "origin_server_ts is {} in the past (allowed: {} s)",
                human(now_ms - ts),
                cfg.clock_skew_secs
            ),
        ))
    } else if ts > now_ms + skew {
        Some(Finding::new(
            Action::Deny,
            format!(
                "origin_server_ts is {} in the future (allowed: {} s)",
                human(ts - now_ms),
                cfg.clock_skew_secs
            ),
        ))
    } else {
        None
    }
}
