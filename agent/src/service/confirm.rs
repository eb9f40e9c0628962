//! Acting on a decision (deny, confirm, allow), asking the person through
//! every provider, remembered approvals, the client rules of management
//! requests, and the `confirm.*` methods.

use super::rate::exe_of;
use super::sign::Checked;
use super::{ClientInfo, Judged, Service};
use crate::error::{Refusal, Result};
use crate::policy::{self, Action, Decision};
use crate::prompt::{Answer, ClientAnswer, Outcome, Question};
use cryptoid_protocol::wire::confirm::{AnswerParams, AskHereResult, PendingList};
use std::time::Duration;

/// What a remembered approval covers for these events: the exact change
/// (type, state key, content, redaction target) when `exact`, else `None`
/// (the event type).
fn approval_scope(events: &[&Checked], exact: bool) -> Option<String> {
    use sha2::{Digest, Sha256};
    if !exact {
        return None;
    }
    let mut h = Sha256::new();
    for c in events {
        let e = c.prepared.event();
        for k in ["type", "state_key", "redacts", "content"] {
            h.update(k.as_bytes());
            if let Some(v) = e.get(k) {
                h.update(cryptoid_protocol::json::to_canonical_string(v).as_bytes());
            }
            h.update([0]);
        }
    }
    Some(cryptoid_protocol::base64::encode(&h.finalize()))
}

/// The decision as the journal records it.
fn judged(decision: &Decision) -> Judged {
    Judged { decision: Some(decision.action.as_str()), reasons: decision.reasons(), confirmed_by: None }
}

/// `Err` for a denial; whether to ask otherwise.
fn needs_confirmation(decision: &Decision) -> Result<bool> {
    match decision.action {
        Action::Allow => Ok(false),
        Action::Confirm => Ok(true),
        Action::Deny => Err(Refusal::Policy { reasons: decision.decisive_reasons() }.into()),
    }
}

impl Service {
    pub(super) fn askpass(&self) -> Option<String> {
        std::env::var("CRYPTOID_ASKPASS")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| self.config.policy.askpass.clone())
    }

    pub(super) fn pinentry(&self) -> Option<std::path::PathBuf> {
        crate::prompt::pinentry::program(self.config.policy.pinentry.as_deref())
    }

    /// Acts on a decision: deny → `policy_denied`; confirm → ask (unless a
    /// remembered approval covers it); allow → go on. Returns what the
    /// journal records of it beside the outcome.
    pub(super) async fn enforce(
        &self,
        client: &ClientInfo,
        method: &str,
        events: &[&Checked],
        decision: Decision,
    ) -> (Judged, Result<()>) {
        let mut j = judged(&decision);
        match needs_confirmation(&decision) {
            Ok(true) => {}
            Ok(false) => return (j, Ok(())),
            Err(e) => return (j, Err(e)),
        }
        let first = events.first();
        let room = first.map(|c| c.room_id.clone());
        let ty = first.map(|c| c.event_type.clone());
        let scope = approval_scope(events, decision.exact_scope);
        if events.len() == 1 {
            if let (Some(exe), Some(room), Some(ty)) = (&client.exe, &room, &ty) {
                if self.prompts.remembered(exe, room, ty, scope.as_deref()) {
                    j.confirmed_by = Some("remembered approval".into());
                    return (j, Ok(()));
                }
            }
        }
        let cryptoid = first.map(|c| c.record.info.cryptoid.clone());
        let what = match events.len() {
            1 => ty.clone().unwrap_or_default(),
            n => format!("a createRoom batch of {n} events"),
        };
        // The ID first, the homeserver's name after it, labelled, short
        // and without quote look-alikes: a name cannot pass for the
        // agent's own words.
        let room_shown = match room.as_deref() {
            Some(r) => match self.rooms.name(r) {
                Some(name) => {
                    let clean: String = name
                        .chars()
                        .filter(|c| {
                            !matches!(
                                c,
                                '"' | '\u{201c}'
                                    | '\u{201d}'
                                    | '\u{ab}'
                                    | '\u{bb}'
                                    | '\u{2018}'
                                    | '\u{2019}'
                                    | '('
                                    | ')'
                            )
                        })
                        .take(40)
                        .collect();
                    format!("{r} (named \u{ab}{clean}\u{bb})")
                }
                None => r.to_owned(),
            },
            None => "?".to_owned(),
        };
        let mut prompt = format!(
            "{} (pid {}) asks to sign {what} in {} with cryptoID {}",
            exe_of(client),
            client.pid.map_or("?".to_owned(), |p| p.to_string()),
            room_shown,
            cryptoid.as_deref().map(policy::power::short).unwrap_or_default(),
        );
        if !decision.changes.is_empty() {
            // Bounded, so a padded list cannot push what matters out of a
            // cut prompt: what gives power to others or opens the room
            // comes first (policy order), and a cut says how much of that
            // it hid.
            const SHOWN: usize = 8;
            prompt.push_str(": ");
            prompt.push_str(&decision.changes.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("; "));
            if decision.changes.len() > SHOWN {
                let hidden_opening = decision.opening.saturating_sub(SHOWN);
                let of_them = match hidden_opening {
                    0 => String::new(),
                    n => format!(", {n} of them giving power to others or opening the room"),
                };
                prompt.push_str(&format!(
                    "; and {} more changes{of_them} (all listed by `cryptoidctl confirm`)",
                    decision.changes.len() - SHOWN
                ));
            }
        }
        let q = Question {
            prompt,
            method: method.to_owned(),
            client_exe: client.exe.clone(),
            client_pid: client.pid,
            room_id: room,
            event_type: ty,
            cryptoid,
            changes: decision.changes.clone(),
            reasons: decision.decisive_reasons(),
            scope: if events.len() == 1 { scope } else { None },
            rememberable: events.len() == 1,
            person_only: false,
            on_client_display: self.config.policy.socket_confirm,
        };
        let (by, r) = self.confirm(q, "nothing was signed").await;
        j.confirmed_by = by;
        (j, r)
    }

    /// Asks; the outcome, and who answered. `undone` says what did not
    /// happen when the answer is no or none.
    async fn confirm(&self, q: Question, undone: &'static str) -> (Option<String>, Result<()>) {
        self.flush_journal_before_waiting();
        let timeout = Duration::from_secs(self.config.policy.confirm_timeout_secs);
        match self.prompts.ask(q, self.askpass(), self.pinentry(), timeout).await {
            Outcome::Allowed { by } => (Some(by), Ok(())),
            Outcome::Denied { by } => {
                let e = Refusal::Declined { by: by.clone(), undone }.into();
                (Some(by), Err(e))
            }
            Outcome::TimedOut => (None, Err(Refusal::TimedOut { secs: timeout.as_secs(), undone }.into())),
            Outcome::Busy => (None, Err(Refusal::Busy { undone }.into())),
        }
    }

    /// Key management (create, delete, generate, publish, bind, observe) is
    /// judged by the client rules; deleting may need confirmation, sharing
    /// always does.
    /// `room_id` and `cryptoid` name what the request is about, for the
    /// prompt; `undone` what does not happen when it is refused.
    pub async fn authorize_management(
        &self,
        client: &ClientInfo,
        method: &str,
        undone: &'static str,
        what: String,
        stakes: policy::Stakes,
        about: (Option<String>, Option<String>),
    ) -> (Judged, Result<()>) {
        let decision = policy::evaluate_management(&self.client_facts(client), &self.config.policy, stakes);
        let mut j = judged(&decision);
        match needs_confirmation(&decision) {
            Ok(true) => {}
            Ok(false) => return (j, Ok(())),
            Err(e) => return (j, Err(e)),
        }
        // Only a dialog the agent runs may answer: with none, say so now
        // rather than after the timeout.
        let pinentry_can_ask =
            self.pinentry().is_some() && crate::prompt::pinentry::agent_display().is_usable();
        if stakes == policy::Stakes::MovesSecrets && self.askpass().is_none() && !pinentry_can_ask {
            return (j, Err(Refusal::NoDialog.into()));
        }
        let (room_id, cryptoid) = about;
        let q = Question {
            prompt: format!(
                "{} (pid {}) asks to {what}",
                exe_of(client),
                client.pid.map_or("?".to_owned(), |p| p.to_string())
            ),
            method: method.to_owned(),
            client_exe: client.exe.clone(),
            client_pid: client.pid,
            room_id,
            event_type: None,
            cryptoid,
            changes: vec![what],
            reasons: decision.decisive_reasons(),
            scope: None,
            rememberable: false,
            person_only: stakes == policy::Stakes::MovesSecrets,
            on_client_display: self.config.policy.socket_confirm && stakes != policy::Stakes::MovesSecrets,
        };
        let (by, r) = self.confirm(q, undone).await;
        j.confirmed_by = by;
        (j, r)
    }

    /// `confirm.ask_here`: the client asks the person on its own terminal,
    /// so no pinentry is started beside it (needs `socket_confirm`, as
    /// answering does: checked by the method's class).
    pub fn confirm_ask_here(&self, client: &ClientInfo) -> Result<AskHereResult> {
        match client.pid {
            Some(pid) if self.prompts.register_self_asker(pid, client.exe.as_deref()) => Ok(AskHereResult { pid }),
            _ => Err(crate::error::RequestError::param(
                "pid",
                "the agent cannot identify the calling process (no pid in its credentials, or it is gone); its dialog will ask instead",
            )
            .into()),
        }
    }

    pub fn confirm_pending(&self) -> PendingList {
        PendingList { pending: self.prompts.pending() }
    }

    /// The client rule of the `confirm` class: seeing and answering
    /// confirmations over the socket needs `socket_confirm = true`.
    pub fn require_socket_confirm(&self) -> Result<()> {
        if self.config.policy.socket_confirm {
            return Ok(());
        }
        Err(Refusal::SocketConfirmOff.into())
    }

    pub fn confirm_answer(&self, client: &ClientInfo, p: &AnswerParams) -> Result<()> {
        let by =
            format!("socket ({} pid {})", exe_of(client), client.pid.map_or("?".into(), |p| p.to_string()));
        let remember = p.remember_secs.filter(|s| *s > 0).map(|s| Duration::from_secs(u64::from(s)));
        match self.prompts.answer_from_client(p.id, Answer { allow: p.allow, remember, by }) {
            ClientAnswer::Taken => Ok(()),
            ClientAnswer::NotPending => Err(Refusal::NoSuchPending(p.id).into()),
            ClientAnswer::PersonOnly => Err(Refusal::PersonOnly(p.id).into()),
        }
    }
}
