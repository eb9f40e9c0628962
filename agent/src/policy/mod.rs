//! The policy engine: pure functions from (request, client, room view,
//! config, clock reading) to a decision: `allow`, `confirm` or `deny`, each
//! with reasons a person can read. No I/O, no clock of its own, no state:
//! the service gathers the facts and acts on the decision.
//!
//! | file | check |
//! |---|---|
//! | [`rules`] | ordered rules on room, event type, state-ness; the defaults |
//! | [`power`] | events that affect others: kick, ban, unban, invite, power levels, redactions |
//! | [`intent`] | the PDU matches what the client asked for |
//! | [`replay`] | `prev_events`/`depth` against the room view (anti-replay) |
//! | [`time`] | `origin_server_ts` near the agent's clock |
//! | [`clients`] | per-executable rules |
//! | [`rate`] | per-room and per-client bursts |
//! | [`config`] | the `[policy]` configuration and its defaults |

pub mod clients;
pub mod config;
pub mod intent;
pub mod power;
pub mod rate;
pub mod replay;
pub mod rules;
pub mod time;

pub use config::{Action, PolicyConfig, ReplayMode};

use cryptoid_protocol::json::{Object, Value};

/// The PDU to judge.
pub struct SignRequest<'a> {
    pub pdu: &'a Object,
    pub intent: Option<&'a Value>,
    /// Initial state of a room being created (`sign.batch`).
    pub initial_state: bool,
}

/// Who asks.
pub struct ClientFacts<'a> {
    pub exe: Option<&'a str>,
    /// The user approved this executable earlier in this agent session.
    pub approved_this_session: bool,
}

/// What the agent knows of the room.
pub struct RoomFacts<'a> {
    /// `rooms.observe` has fed this room.
    pub observed: bool,
    /// Highest depth observed or signed; `None` when nothing is known.
    pub max_depth: Option<i64>,
    pub is_known: &'a dyn Fn(&str) -> bool,
    /// An event this agent signed.
    pub is_own: &'a dyn Fn(&str) -> bool,
    /// The last `m.room.power_levels` content signed or observed.
    pub power_levels: Option<&'a Object>,
}

impl RoomFacts<'_> {
    /// A room the agent knows nothing about.
    pub fn unknown() -> RoomFacts<'static> {
        RoomFacts {
            observed: false,
            max_depth: None,
            is_known: &|_| false,
            is_own: &|_| false,
            power_levels: None,
        }
    }
}

/// Signatures already made within the rate window.
#[derive(Clone, Copy, Debug, Default)]
pub struct RateFacts {
    pub room: u32,
    pub client: u32,
}

/// One check's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub action: Action,
    pub reason: String,
}

impl Finding {
    pub fn new(action: Action, reason: impl Into<String>) -> Finding {
        Finding { action, reason: reason.into() }
    }
}

/// The decision: the strictest finding wins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub findings: Vec<Finding>,
    /// Readable description of what the event changes (for prompts).
    pub changes: Vec<String>,
}

impl Decision {
    fn from(findings: Vec<Finding>, changes: Vec<String>) -> Decision {
        let action = findings.iter().map(|f| f.action).max().unwrap_or(Action::Allow);
        Decision { action, findings, changes }
    }

    /// Reasons, strictest first, each prefixed with its verdict.
    pub fn reasons(&self) -> Vec<String> {
        let mut f: Vec<&Finding> = self.findings.iter().collect();
        f.sort_by_key(|f| std::cmp::Reverse(f.action));
        f.iter().map(|f| format!("{}: {}", f.action.as_str(), f.reason)).collect()
    }

    /// The reasons behind the decision itself (e.g. only the denials).
    pub fn decisive_reasons(&self) -> Vec<String> {
        self.findings.iter().filter(|f| f.action == self.action).map(|f| f.reason.clone()).collect()
    }
}

/// Judges a PDU that passed the hard checks.
pub fn evaluate(
    req: &SignRequest<'_>,
    client: &ClientFacts<'_>,
    room: &RoomFacts<'_>,
    rate_facts: RateFacts,
    cfg: &PolicyConfig,
    now_ms: u64,
) -> Decision {
    let mut findings = vec![clients::check(client, cfg, clients::Purpose::Sign)];
    findings.push(rules::check(req, cfg));
    let (power_findings, changes) = power::check(req, room, cfg);
    findings.extend(power_findings);
    match (req.intent, cfg.require_intent) {
        (Some(i), _) => findings.push(match intent::check(i, req.pdu) {
            Ok(()) => Finding::new(Action::Allow, "the PDU matches the client's intent"),
            Err(m) => Finding::new(Action::Deny, m.0),
        }),
        (None, true) => findings.push(Finding::new(
            Action::Deny,
            "require_intent is set and the client gave no intent {type, state_key?, content?}",
        )),
        (None, false) => {}
    }
    findings.extend(replay::check(req, room, cfg));
    findings.extend(time::check(req.pdu, cfg, now_ms));
    findings.extend(rate::check(req.pdu, client, rate_facts, cfg));
    Decision::from(findings, changes)
}

/// Judges a key-management request (create, delete, generate, bind).
pub fn evaluate_management(client: &ClientFacts<'_>, cfg: &PolicyConfig, deleting: bool) -> Decision {
    let mut findings = vec![clients::check(client, cfg, clients::Purpose::Manage)];
    if deleting && cfg.confirm_delete {
        findings.push(Finding::new(
            Action::Confirm,
            "deleting a key destroys it for good (confirm_delete = true)",
        ));
    }
    Decision::from(findings, Vec::new())
}

#[cfg(test)]
mod tests;
