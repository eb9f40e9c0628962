//! The policy engine: pure functions from (request, client, room view,
//! config, clock reading) to a decision: `allow`, `confirm` or `deny`, each
//! with reasons a person can read. No I/O, no clock of its own, no state:
//! the service gathers the facts and acts on the decision.
//!
//! | file | check |
//! |---|---|
//! | [`rules`] | ordered rules on room, event type, state-ness; the defaults |
//! | [`authz`] | the authorization rules against the PDU's own `auth_events`, and the baseline its diff is computed against |
//! | [`power`] | events that affect others: kick, ban, unban, invite, power levels, redactions |
//! | [`settings`] | the room's security settings (join rules, ACL, encryption…) old → new, for prompts |
//! | [`levels`] | power levels parsed (strings in v1–9) and diffed field by field |
//! | [`intent`] | the PDU matches what the client asked for; joins that bind a key |
//! | [`create_room`] | `sign.batch`: only a new room's createRoom batch, as its intent implies |
//! | [`replay`] | depth rule, anchor, superseded `auth_events`, known `prev_events`, depth window |
//! | [`time`] | `origin_server_ts` near the agent's clock |
//! | [`clients`] | per-executable rules |
//! | [`rate`] | per-room and per-client bursts |
//! | [`config`] | the `[policy]` configuration and its defaults |

pub mod authz;
pub mod clients;
pub mod config;
pub mod create_room;
pub mod intent;
pub mod levels;
pub mod power;
pub mod rate;
pub mod replay;
pub mod rules;
pub mod settings;
pub mod time;

pub use config::{Action, PolicyConfig, ReplayMode, RoomViewMode};

use cryptoid_protocol::json::{Object, Value};
use cryptoid_protocol::RoomVersion;

/// The PDU to judge.
pub struct SignRequest<'a> {
    pub pdu: &'a Object,
    pub intent: Option<&'a Value>,
    pub room_version: &'a RoomVersion,
    /// Signing binds the sender's key to the room (its own join, or the
    /// create event of a new room).
    pub binds_key: bool,
    /// Initial state of a room being created (`sign.batch`).
    pub initial_state: bool,
    /// The Matrix user the signing key belongs to, when its record says.
    pub key_user: Option<&'a str>,
}

/// Who asks.
pub struct ClientFacts<'a> {
    pub exe: Option<&'a str>,
    /// The user approved this executable earlier in this agent session.
    pub approved_this_session: bool,
}

/// The room's newest authorization-relevant event.
pub struct Anchor<'a> {
    pub event_id: &'a str,
    pub depth: i64,
    /// `m.room.power_levels`, `ban of 3TPraTczVkDP…`.
    pub what: &'a str,
}

/// What the agent knows of the room.
pub struct RoomFacts<'a> {
    /// The room view holds anything of this room (observed, signed, batched).
    pub exists: bool,
    /// The room view could be read. False after a storage error until the
    /// agent reopens it: then nothing is known, and nothing is signed.
    pub readable: bool,
    /// `rooms.observe` has fed this room.
    pub observed: bool,
    /// Highest depth observed or signed; `None` when nothing is known.
    pub max_depth: Option<i64>,
    /// The depth of an event observed or signed (never of one merely named
    /// in someone's `prev_events`).
    pub depth_of: &'a dyn Fn(&str) -> Option<i64>,
    /// An event this agent signed.
    pub is_own: &'a dyn Fn(&str) -> bool,
    /// The newest `m.room.power_levels` content signed or observed.
    pub power_levels: Option<&'a Object>,
    /// The current content of a setting ([`settings::TYPES`]) by (type,
    /// state key), when observed or signed.
    pub setting: &'a dyn Fn(&str, &str) -> Option<Object>,
    pub anchor: Option<Anchor<'a>>,
    /// An authorization event a newer one replaced.
    pub is_superseded: &'a dyn Fn(&str) -> bool,
    /// A member's Matrix ID by cryptoID, and whether its server signed the
    /// mapping (else the homeserver only claims it).
    pub member: &'a dyn Fn(&str) -> Option<(String, bool)>,
    /// A verified authorization event the view holds, by event ID: what a
    /// PDU's `auth_events` are checked against.
    pub auth_event: &'a dyn Fn(&str) -> Option<Object>,
    /// The view holds verified authorization events of this room.
    pub holds_verified: bool,
    /// The newest power levels only claimed by the homeserver (a summary
    /// under `room_view = "verified"`): it can widen a diff, never narrow it.
    pub claimed_power_levels: Option<&'a Object>,
}

impl RoomFacts<'_> {
    /// A cryptoID as a person reads it: `@bob:example.org (3TPraTczVkDP…)`
    /// when the room view knows the member, marked when only the homeserver
    /// claims the name; else the short cryptoID.
    pub fn name(&self, cryptoid: &str) -> String {
        match (self.member)(cryptoid) {
            Some((user, true)) => format!("{} ({})", user, power::short(cryptoid)),
            // The marker first: a long name cannot push it out of sight.
            Some((user, false)) => {
                format!("{} (name claimed by the homeserver: {})", power::short(cryptoid), user)
            }
            None => power::short(cryptoid),
        }
    }
}

impl RoomFacts<'_> {
    /// A room the agent knows nothing about.
    pub fn unknown<'x>() -> RoomFacts<'x> {
        RoomFacts {
            exists: false,
            readable: true,
            observed: false,
            max_depth: None,
            depth_of: &|_| None,
            is_own: &|_| false,
            power_levels: None,
            setting: &|_, _| None,
            anchor: None,
            is_superseded: &|_| false,
            member: &|_| None,
            auth_event: &|_| None,
            holds_verified: false,
            claimed_power_levels: None,
        }
    }
}

/// Signatures already made within the rate window.
#[derive(Clone, Copy, Debug, Default)]
pub struct RateFacts {
    pub room: u32,
    pub client: u32,
}

/// How much a change matters to others: a prompt shows what gives power
/// to others or opens the room first, then what else affects others, then
/// the rest, so a padded list cannot push a grant out of sight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Weight {
    /// Gives power to others, or lets more people in or read more.
    Opens,
    /// Affects others otherwise (a ban, a kick, a lowered level, an ACL).
    Others,
    /// The signer's own (their membership, their level), or a note.
    Own,
}

/// Changes in prompt order (stable within a weight); returns them and how
/// many open the room or give power (they come first).
fn ordered(mut changes: Vec<(Weight, String)>) -> (Vec<String>, usize) {
    changes.sort_by_key(|(w, _)| *w);
    let opens = changes.iter().filter(|(w, _)| *w == Weight::Opens).count();
    (changes.into_iter().map(|(_, c)| c).collect(), opens)
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
    /// Readable description of what the event changes (for prompts), in
    /// [`Weight`] order.
    pub changes: Vec<String>,
    /// How many of `changes` (the first ones) give power to others or
    /// open the room: a prompt that cuts its list says how many it hid.
    pub opening: usize,
    /// A remembered approval must cover this exact change (target and new
    /// value), not every event of the type: state events, redactions and
    /// batches. Plain messages are remembered by type.
    pub exact_scope: bool,
}

impl Decision {
    fn from(findings: Vec<Finding>, changes: Vec<(Weight, String)>, exact_scope: bool) -> Decision {
        let action = findings.iter().map(|f| f.action).max().unwrap_or(Action::Allow);
        let (changes, opening) = ordered(changes);
        Decision { action, findings, changes, opening, exact_scope }
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

/// The checks of one PDU that do not depend on who asks or how often.
fn judge_pdu(
    req: &SignRequest<'_>,
    room: &RoomFacts<'_>,
    cfg: &PolicyConfig,
    now_ms: u64,
) -> (Vec<Finding>, Vec<(Weight, String)>) {
    let mut findings = vec![rules::check(req, cfg)];
    if !room.readable {
        findings.push(Finding::new(
            Action::Deny,
            "the room view cannot be read after a storage error (the agent reopens it within a second): try again",
        ));
    }
    let ty = req.pdu.get("type").and_then(Value::as_str);
    // A batch's power levels are judged against what createRoom implies,
    // and so are its invites when the batch has the request to match.
    // (Others' memberships only: the creator's own join is still checked
    // here, its mxid_mapping above all.)
    let others_member = ty == Some("m.room.member")
        && req.pdu.get("state_key").and_then(Value::as_str) != req.pdu.get("sender").and_then(Value::as_str);
    let by_request = ty == Some("m.room.power_levels") || (others_member && req.intent.is_some());
    let (authz_findings, baseline) = authz::check(req, room, cfg);
    findings.extend(authz_findings);
    let (power_findings, mut changes) = if req.initial_state && by_request {
        (Vec::new(), Vec::new())
    } else {
        power::check(req, room, cfg, &baseline)
    };
    findings.extend(power_findings);
    if let (Some(ty), Some(sk), Some(content)) = (
        ty,
        req.pdu.get("state_key").and_then(Value::as_str),
        req.pdu.get("content").and_then(Value::as_object),
    ) {
        let old = if req.initial_state { None } else { (room.setting)(ty, sk) };
        let mut lines = settings::describe(ty, sk, old.as_ref(), content);
        if req.initial_state {
            // A new room has no old value to compare with.
            lines.retain(|(w, _)| *w != Weight::Own);
        }
        changes.extend(lines);
    }
    if !req.initial_state {
        match (req.intent, cfg.require_intent) {
            (Some(i), _) => findings.push(match intent::check(i, req.pdu) {
                Ok(()) => Finding::new(Action::Allow, "the PDU matches the client's intent"),
                Err(m) => Finding::new(Action::Deny, m.0),
            }),
            (None, true) => findings.push(Finding::new(
                Action::Deny,
                "require_intent is set and the client gave no intent {type, room_id?, state_key?, membership?, content?}",
            )),
            (None, false) => {}
        }
        // Under any state key: one under "x" is no room's create to a
        // server, but a view or client that reads the type alone may take it.
        if ty == Some("m.room.create") {
            findings.push(Finding::new(
                Action::Deny,
                "m.room.create (under any state key) is signed only as the first PDU of a createRoom batch (sign.batch)",
            ));
        } else if req.binds_key && !intent::names_own_join(req.intent, req.pdu) {
            let room_id = req.pdu.get("room_id").and_then(Value::as_str).unwrap_or("?");
            findings.push(Finding::new(
                Action::Confirm,
                format!(
                    "this join binds a cryptoID waiting for its room to {room_id}, and no intent {{room_id, type: m.room.member, state_key, membership: join}} names that room"
                ),
            ));
        }
    }
    findings.extend(replay::check(req, room, cfg));
    findings.extend(time::check(req.pdu, cfg, now_ms));
    (findings, changes)
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
    let (f, changes) = judge_pdu(req, room, cfg, now_ms);
    findings.extend(f);
    findings.extend(rate::check(req.pdu, client, rate_facts, cfg));
    let exact = req.pdu.contains_key("state_key")
        || req.pdu.get("type").and_then(Value::as_str) == Some("m.room.redaction");
    Decision::from(findings, changes, exact)
}

/// Judges a createRoom batch whose PDUs passed the hard checks: its shape
/// and intent ([`create_room`]), then each PDU as initial state.
pub fn evaluate_batch(
    batch: &create_room::Batch<'_>,
    client: &ClientFacts<'_>,
    room: &RoomFacts<'_>,
    rate_facts: RateFacts,
    cfg: &PolicyConfig,
    now_ms: u64,
) -> Decision {
    let mut findings = vec![clients::check(client, cfg, clients::Purpose::Sign)];
    let (f, mut changes) = create_room::check(batch, room);
    findings.extend(f);
    if batch.intent.is_none() && cfg.require_intent {
        findings.push(Finding::new(
            Action::Deny,
            "require_intent is set and the batch has no intent {create_room: <the /createRoom request body>}",
        ));
    }
    for (i, pdu) in batch.pdus.iter().enumerate() {
        let req = SignRequest {
            pdu,
            // Only to tell judge_pdu the batch is matched against a
            // request ([`create_room`] did that).
            intent: batch.intent,
            room_version: batch.room_version,
            binds_key: i == 0,
            initial_state: true,
            key_user: batch.key_user,
        };
        let ty = pdu.get("type").and_then(Value::as_str).unwrap_or("?");
        let (f, c) = judge_pdu(&req, room, cfg, now_ms);
        findings.extend(f.into_iter().map(|mut f| {
            f.reason = format!("PDU {i} ({ty}): {}", f.reason);
            f
        }));
        changes.extend(c);
    }
    if let Some(first) = batch.pdus.first() {
        findings.extend(rate::check(first, client, rate_facts, cfg));
    }
    Decision::from(findings, changes, true)
}

/// What a management request puts at stake, beyond the client rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stakes {
    /// Creating, generating, publishing, binding, reading the journal.
    Ordinary,
    /// Destroys a secret (deleting a key): confirmed if `confirm_delete`.
    Destroys,
    /// Releases secrets or accepts them (sharing keys through secret
    /// storage): always confirmed, whatever the client and the config.
    MovesSecrets,
}

/// Judges a key-management request (create, delete, generate, bind, share).
pub fn evaluate_management(client: &ClientFacts<'_>, cfg: &PolicyConfig, stakes: Stakes) -> Decision {
    let mut findings = vec![clients::check(client, cfg, clients::Purpose::Manage)];
    match stakes {
        Stakes::Ordinary => {}
        Stakes::Destroys if cfg.confirm_delete => findings.push(Finding::new(
            Action::Confirm,
            "deleting a key destroys it for good (confirm_delete = true)",
        )),
        Stakes::Destroys => {}
        Stakes::MovesSecrets => findings.push(Finding::new(
            Action::Confirm,
            "this moves secret keys between this device and the homeserver's account data (always confirmed)",
        )),
    }
    Decision::from(findings, Vec::new(), true)
}

#[cfg(test)]
mod tests;
