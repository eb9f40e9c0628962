//! Gathering the facts for the policy and asking it: `sign.pdu`'s and
//! `sign.batch`'s decisions, `policy.check` and `policy.show`; and the PIN
//! of a locked token before it signs.

use super::sign::Checked;
use super::{Audit, ClientInfo, Service};
use crate::error::{Error, Result};
use crate::policy::{self, Action, ClientFacts, Decision, RateFacts, SignRequest};
use cryptoid_protocol::json::Value;
use cryptoid_protocol::wire::policy::{CheckResult, Verdict};
use cryptoid_protocol::wire::sign::SignPduParams;
use std::time::Duration;

impl Service {
    pub(super) fn client_facts<'a>(&self, client: &'a ClientInfo) -> ClientFacts<'a> {
        ClientFacts {
            exe: client.exe.as_deref(),
            approved_this_session: self.prompts.session_approved(client.exe.as_deref()),
        }
    }

    pub(super) fn decide_sign(
        &self,
        client: &ClientInfo,
        c: &Checked,
        intent: Option<&Value>,
        rate: RateFacts,
    ) -> Decision {
        let req = SignRequest {
            pdu: c.prepared.event(),
            intent,
            room_version: &c.room_version,
            binds_key: c.binds,
            initial_state: false,
            key_user: c.record.info.user_id.as_deref(),
        };
        let facts = self.client_facts(client);
        self.rooms.with_facts(&c.room_id, |room| {
            policy::evaluate(&req, &facts, room, rate, &self.config.policy, self.now())
        })
    }

    /// A createRoom batch is one decision ([`policy::evaluate_batch`]).
    pub(super) fn decide_batch(
        &self,
        client: &ClientInfo,
        checked: &[Checked],
        intent: Option<&Value>,
        rate: RateFacts,
    ) -> Decision {
        let pdus: Vec<&cryptoid_protocol::json::Object> =
            checked.iter().map(|c| c.prepared.event()).collect();
        let ids: Vec<&str> = checked.iter().map(|c| c.event_id.as_str()).collect();
        let rv = checked.first().map_or(cryptoid_protocol::RoomVersion::MSC4080, |c| c.room_version);
        let binds_creator = checked.first().is_some_and(|c| c.binds);
        let batch = policy::create_room::Batch {
            pdus: &pdus,
            event_ids: &ids,
            intent,
            room_version: &rv,
            binds_creator,
            key_user: checked.first().and_then(|c| c.record.info.user_id.as_deref()),
        };
        let facts = self.client_facts(client);
        let room_id = checked.first().map_or("", |c| c.room_id.as_str());
        self.rooms.with_facts(room_id, |room| {
            policy::evaluate_batch(&batch, &facts, room, rate, &self.config.policy, self.now())
        })
    }

    /// Before signing with keys on a locked token or YubiKey: ask for the
    /// PIN (once; askpass and pinentry at once, the first answer wins) and
    /// log in, so the user is prompted instead of the client getting
    /// `pin_required`. Whether it asked (the request waited).
    pub(super) async fn ensure_token_unlocked(&self, client: &ClientInfo, events: &[&Checked]) -> bool {
        let mut asked_anyone = false;
        for (name, what) in [("pkcs11", "the PKCS#11 token"), ("yubikey", "the YubiKey")] {
            let Some(first) = events.iter().find(|c| c.record.info.backend == name) else { continue };
            let Ok(backend) = self.backend(Some(name)) else { continue };
            if !backend.is_locked() {
                continue;
            }
            let prompt = cryptoid_protocol::text::sanitize_default(&format!(
                "PIN of {what} to sign {} in {} (asked by {})",
                first.event_type,
                first.room_id,
                super::rate::exe_of(client),
            ));
            if self.askpass().is_none() && self.pinentry().is_none() {
                continue;
            }
            asked_anyone = true;
            let Some((pin, by)) = self.ask_pin(client, &prompt).await else { continue };
            let secret = crate::keystore::UnlockSecret { passphrase: None, pin: Some(pin.as_str()) };
            let r = tokio::task::block_in_place(|| backend.unlock(&secret));
            match r {
                Ok(()) => tracing::info!(%by, "{what} unlocked with a PIN from {by}"),
                Err(e) => tracing::warn!(error = %e, "the PIN from {by} did not unlock {what}"),
            }
        }
        asked_anyone
    }

    /// A PIN from askpass or pinentry, whichever answers first, and who
    /// gave it; `None` if neither is there or neither answered in time.
    async fn ask_pin(
        &self,
        client: &ClientInfo,
        prompt: &str,
    ) -> Option<(zeroize::Zeroizing<String>, String)> {
        self.flush_journal_before_waiting();
        use crate::prompt::pinentry;
        let wait = Duration::from_secs(self.config.policy.confirm_timeout_secs);
        let (askpass, program) = (self.askpass(), self.pinentry());
        let by_askpass = async {
            let program = askpass?;
            let pin = crate::prompt::askpass::read_secret(&program, prompt).await?;
            Some((pin, format!("askpass {program}")))
        };
        let by_pinentry = async {
            let program = program?;
            let display = pinentry::display_for(client.pid);
            if !display.is_usable() {
                tracing::info!("no display or terminal to show pinentry on; not asked there");
                return None;
            }
            let req = cryptoid_protocol::assuan::Request {
                title: "cryptoid-agent: PIN".into(),
                description: prompt.to_owned(),
                prompt: Some("PIN:".into()),
                timeout_secs: wait.as_secs(),
                wants_pin: true,
                ..Default::default()
            };
            match pinentry::run(&program, &req, &display, wait + Duration::from_secs(1)).await {
                Ok(cryptoid_protocol::assuan::Outcome::Pin(pin)) if !pin.is_empty() => {
                    Some((pin, format!("pinentry {} on {}", program.display(), display.describe())))
                }
                Ok(other) => {
                    tracing::info!(?other, "pinentry gave no PIN");
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pinentry gave no PIN");
                    None
                }
            }
        };
        // The first that gives a PIN; one that gives none leaves the other
        // to answer. Dropping the loser kills its program.
        let both = async {
            tokio::pin!(by_askpass, by_pinentry);
            let (mut a_done, mut p_done) = (false, false);
            loop {
                tokio::select! {
                    r = &mut by_askpass, if !a_done => match r { Some(x) => return Some(x), None => a_done = true },
                    r = &mut by_pinentry, if !p_done => match r { Some(x) => return Some(x), None => p_done = true },
                    else => return None,
                }
            }
        };
        tokio::time::timeout(wait, both).await.ok().flatten()
    }

    /// `policy.check`: the decision `sign.pdu` would meet, without signing
    /// or asking (a failed hard check is a denial with its reason), and the
    /// journal entry its steps produced.
    pub fn policy_check(&self, client: &ClientInfo, p: SignPduParams) -> (Audit, CheckResult) {
        let mut audit = Audit::default();
        let r = self.policy_check_steps(client, p, &mut audit);
        (audit, r)
    }

    fn policy_check_steps(&self, client: &ClientInfo, p: SignPduParams, audit: &mut Audit) -> CheckResult {
        let checked = self.room_version(&p.room_version).and_then(|rv| {
            let (learned, checked) = self.check_pdu(&rv, p.pdu, p.event_id.as_deref(), None);
            audit.subject(learned);
            checked
        });
        let c = match checked {
            Ok(c) => c,
            Err(e) => {
                return CheckResult {
                    decision: Verdict::Deny,
                    reasons: vec![format!("deny: {e} [{}]", e.kind())],
                    changes: Vec::new(),
                }
            }
        };
        // Judged as if the request came now; nothing is reserved.
        let rate = self.rate_reserve(client, &c.room_id, 0).facts;
        let d = self.decide_sign(client, &c, p.intent.as_ref(), rate);
        audit.decision = Some(d.action.as_str());
        audit.reasons = d.reasons();
        CheckResult {
            decision: match d.action {
                Action::Allow => Verdict::Allow,
                Action::Confirm => Verdict::Confirm,
                Action::Deny => Verdict::Deny,
            },
            reasons: d.reasons(),
            changes: d.changes,
        }
    }

    /// `policy.show`: the effective policy, defaults filled in.
    pub fn policy_show(&self) -> Result<Value> {
        let v = serde_json::to_value(&self.config.policy).map_err(Error::internal)?;
        serde_json::from_value::<Value>(v).map_err(Error::internal)
    }
}
