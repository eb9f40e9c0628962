//! Gathering the facts for the policy, acting on its decision (deny,
//! confirm, allow), and the `policy.*`, `rooms.*`, `confirm.*` methods.

use super::sign::Checked;
use super::{Audit, ClientInfo, Service};
use crate::error::{Error, Result};
use crate::policy::{self, Action, ClientFacts, Decision, RateFacts, SignRequest};
use crate::prompt::{Answer, Outcome, Question};
use crate::sync::MutexExt;
use cryptoid_protocol::json::Value;
use cryptoid_protocol::wire::confirm::{AnswerParams, PendingList};
use cryptoid_protocol::wire::policy::{CheckResult, Verdict};
use cryptoid_protocol::wire::rooms::{ObserveParams, RoomView};
use cryptoid_protocol::wire::sign::SignPduParams;
use cryptoid_protocol::wire::ErrorKind;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Signatures per room and per client executable in the sliding window.
#[derive(Default)]
pub(super) struct RateTracker {
    rooms: HashMap<String, VecDeque<Duration>>,
    clients: HashMap<String, VecDeque<Duration>>,
}

fn prune(q: &mut VecDeque<Duration>, now: Duration, window: Duration) -> u32 {
    while q.front().is_some_and(|t| now.saturating_sub(*t) >= window) {
        q.pop_front();
    }
    q.len() as u32
}

/// Rate-window entries reserved for a request; given back on drop unless
/// kept (the request signed).
pub(super) struct Reservation<'a> {
    svc: &'a Service,
    room: String,
    client: String,
    at: Duration,
    n: usize,
    pub(super) facts: RateFacts,
    kept: bool,
}

impl Reservation<'_> {
    pub(super) fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let mut r = self.svc.rate.locked();
        let give_back = |q: Option<&mut VecDeque<Duration>>, n: usize, at: Duration| {
            if let Some(q) = q {
                for _ in 0..n {
                    match q.iter().rposition(|t| *t == at) {
                        Some(i) => drop(q.remove(i)),
                        None => break,
                    }
                }
            }
        };
        give_back(r.rooms.get_mut(&self.room), self.n, self.at);
        give_back(r.clients.get_mut(&self.client), self.n, self.at);
    }
}

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

/// Journals the decision; `Err` for a denial, whether to ask otherwise.
fn needs_confirmation(decision: &Decision, audit: &mut Audit) -> Result<bool> {
    audit.decision = Some(decision.action.as_str());
    audit.reasons = decision.reasons();
    match decision.action {
        Action::Allow => Ok(false),
        Action::Confirm => Ok(true),
        Action::Deny => Err(Error::Request {
            kind: ErrorKind::PolicyDenied,
            message: format!("the policy denies this: {}", decision.decisive_reasons().join("; ")),
            reasons: decision.decisive_reasons(),
        }),
    }
}

fn exe_of(client: &ClientInfo) -> &str {
    client.exe.as_deref().unwrap_or("(unknown executable)")
}

impl Service {
    fn client_facts<'a>(&self, client: &'a ClientInfo) -> ClientFacts<'a> {
        ClientFacts {
            exe: client.exe.as_deref(),
            approved_this_session: self.prompts.session_approved(client.exe.as_deref()),
        }
    }

    /// Reserves `n` signatures in the rate windows of `room` and the client
    /// before the policy decides, in one step under the lock: concurrent
    /// requests cannot all see the count below the limit. The counts before
    /// the reservation are what the policy judges. Dropped without
    /// [`Reservation::keep`] (denied, declined, failed), it is given back.
    ///
    /// A queue keeps at most `limit` times, and none without a limit:
    /// memory stays bounded at any signing rate (a soak at 10,000
    /// signatures/s had these queues holding a minute of them, ~30 MiB).
    pub(super) fn rate_reserve(&self, client: &ClientInfo, room: &str, n: usize) -> Reservation<'_> {
        let limits = &self.config.policy.rate;
        let window = Duration::from_secs(limits.window_secs);
        let now = self.clock.monotonic();
        let mut r = self.rate.locked();
        let take = |q: &mut VecDeque<Duration>, limit: u32| {
            let before = prune(q, now, window);
            for _ in 0..n {
                q.push_back(now);
            }
            while q.len() > limit as usize {
                q.pop_front();
            }
            before
        };
        let mut facts = RateFacts::default();
        if limits.per_room > 0 {
            facts.room = take(r.rooms.entry(room.to_owned()).or_default(), limits.per_room);
        }
        if limits.per_client > 0 {
            facts.client = take(r.clients.entry(exe_of(client).to_owned()).or_default(), limits.per_client);
        }
        Reservation {
            svc: self,
            room: room.to_owned(),
            client: exe_of(client).to_owned(),
            at: now,
            n,
            facts,
            kept: false,
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
        };
        let facts = self.client_facts(client);
        let room_id = checked.first().map_or("", |c| c.room_id.as_str());
        self.rooms.with_facts(room_id, |room| {
            policy::evaluate_batch(&batch, &facts, room, rate, &self.config.policy, self.now())
        })
    }

    /// Before signing with keys on a locked token or YubiKey: ask the
    /// askpass program for the PIN (once) and log in, so the user is
    /// prompted instead of the client getting `pin_required`.
    pub(super) async fn ensure_token_unlocked(&self, events: &[&Checked]) {
        for (name, what) in [("pkcs11", "the PKCS#11 token"), ("yubikey", "the YubiKey")] {
            let Some(first) = events.iter().find(|c| c.record.info.backend == name) else { continue };
            let (Ok(backend), Some(program)) = (self.backend(Some(name)), self.askpass()) else { continue };
            if !backend.is_locked() {
                continue;
            }
            let prompt = cryptoid_protocol::text::sanitize_default(&format!(
                "PIN of {what} to sign {} in {}",
                first.event_type, first.room_id
            ));
            let wait = Duration::from_secs(self.config.policy.confirm_timeout_secs);
            let asked = tokio::time::timeout(wait, crate::prompt::askpass::read_secret(&program, &prompt));
            if let Ok(Some(pin)) = asked.await {
                let secret = crate::keystore::UnlockSecret { passphrase: None, pin: Some(pin.as_str()) };
                let r = tokio::task::block_in_place(|| backend.unlock(&secret));
                if let Err(e) = r {
                    tracing::warn!(error = %e, "the PIN from askpass did not unlock {what}");
                }
            }
        }
    }

    fn askpass(&self) -> Option<String> {
        std::env::var("CRYPTOID_ASKPASS")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| self.config.policy.askpass.clone())
    }

    /// Acts on a decision: deny → `policy_denied`; confirm → ask (unless a
    /// remembered approval covers it); allow → go on. Journals the decision.
    pub(super) async fn enforce(
        &self,
        client: &ClientInfo,
        method: &str,
        events: &[&Checked],
        decision: Decision,
        audit: &mut Audit,
    ) -> Result<()> {
        if !needs_confirmation(&decision, audit)? {
            return Ok(());
        }
        let first = events.first();
        let room = first.map(|c| c.room_id.clone());
        let ty = first.map(|c| c.event_type.clone());
        let scope = approval_scope(events, decision.exact_scope);
        if events.len() == 1 {
            if let (Some(exe), Some(room), Some(ty)) = (&client.exe, &room, &ty) {
                if self.prompts.remembered(exe, room, ty, scope.as_deref()) {
                    audit.confirmed_by = Some("remembered approval".into());
                    return Ok(());
                }
            }
        }
        let cryptoid = first.map(|c| c.record.info.cryptoid.clone());
        let what = match events.len() {
            1 => ty.clone().unwrap_or_default(),
            n => format!("a createRoom batch of {n} events"),
        };
        let mut prompt = format!(
            "{} (pid {}) asks to sign {what} in {} with cryptoID {}",
            exe_of(client),
            client.pid.map_or("?".to_owned(), |p| p.to_string()),
            room.as_deref().unwrap_or("?"),
            cryptoid.as_deref().map(policy::power::short).unwrap_or_default(),
        );
        if !decision.changes.is_empty() {
            // Bounded, so a padded list cannot push what matters out of a
            // cut prompt: effects on others come first (policy order).
            const SHOWN: usize = 8;
            prompt.push_str(": ");
            prompt.push_str(&decision.changes.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("; "));
            if decision.changes.len() > SHOWN {
                prompt.push_str(&format!(
                    "; and {} more changes (all listed by `cryptoidctl confirm`)",
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
        };
        self.confirm(q, audit).await
    }

    async fn confirm(&self, q: Question, audit: &mut Audit) -> Result<()> {
        let timeout = Duration::from_secs(self.config.policy.confirm_timeout_secs);
        match self.prompts.ask(q, self.askpass(), timeout).await {
            Outcome::Allowed { by } => {
                audit.confirmed_by = Some(by);
                Ok(())
            }
            Outcome::Denied { by } => {
                audit.confirmed_by = Some(by.clone());
                Err(Error::new(ErrorKind::ConfirmationDenied, format!("the user declined ({by})")))
            }
            Outcome::TimedOut => Err(Error::new(
                ErrorKind::ConfirmationTimeout,
                format!(
                    "no answer within {} s; nothing was signed (answer with `cryptoidctl confirm` or an askpass program)",
                    timeout.as_secs()
                ),
            )),
        }
    }

    /// Key management (create, delete, generate, publish, bind, observe) is
    /// judged by the client rules; deleting may need confirmation.
    pub async fn authorize_management(
        &self,
        client: &ClientInfo,
        method: &str,
        what: String,
        deleting: bool,
        audit: &mut Audit,
    ) -> Result<()> {
        let decision = policy::evaluate_management(&self.client_facts(client), &self.config.policy, deleting);
        if !needs_confirmation(&decision, audit)? {
            return Ok(());
        }
        let q = Question {
            prompt: format!(
                "{} (pid {}) asks to {what}",
                exe_of(client),
                client.pid.map_or("?".to_owned(), |p| p.to_string())
            ),
            method: method.to_owned(),
            client_exe: client.exe.clone(),
            client_pid: client.pid,
            room_id: audit.room_id.clone(),
            event_type: None,
            cryptoid: audit.cryptoid.clone(),
            changes: vec![what],
            reasons: decision.decisive_reasons(),
            scope: None,
            rememberable: false,
        };
        self.confirm(q, audit).await
    }

    /// `policy.check`: the decision `sign.pdu` would meet, without signing
    /// or asking. A failed hard check is a denial with its reason.
    pub fn policy_check(&self, client: &ClientInfo, p: SignPduParams, audit: &mut Audit) -> CheckResult {
        let checked = self
            .room_version(&p.room_version)
            .and_then(|rv| self.check_pdu(&rv, p.pdu, p.event_id.as_deref(), None, audit));
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
        let rate = {
            let r = self.rate_reserve(client, &c.room_id, 0);
            r.facts
        };
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
        let v = serde_json::to_value(&self.config.policy)
            .map_err(|e| Error::new(ErrorKind::InternalError, e.to_string()))?;
        serde_json::from_value::<Value>(v).map_err(|e| Error::new(ErrorKind::InternalError, e.to_string()))
    }

    pub fn rooms_observe(&self, p: &ObserveParams) -> Result<RoomView> {
        if !p.room_id.starts_with('!') {
            return Err(Error::new(ErrorKind::InvalidParams, format!("{:?} is not a room ID", p.room_id)));
        }
        self.rooms.observe(p)
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
        Err(Error::new(
            ErrorKind::NotPermitted,
            "socket_confirm = false: confirmations are seen and answered by the askpass program only",
        ))
    }

    pub fn confirm_answer(&self, client: &ClientInfo, p: &AnswerParams) -> Result<()> {
        let by =
            format!("socket ({} pid {})", exe_of(client), client.pid.map_or("?".into(), |p| p.to_string()));
        let remember = p.remember_secs.filter(|s| *s > 0).map(|s| Duration::from_secs(u64::from(s)));
        if self.prompts.answer(p.id, Answer { allow: p.allow, remember, by }) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::InvalidParams,
                format!("no pending confirmation {} (answered or expired)", p.id),
            ))
        }
    }

    /// Writes the room views changed since the last flush.
    pub fn flush_rooms(&self) -> Result<usize> {
        let seq = self.journal.last_seq();
        self.rooms.flush(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::Config;
    use std::sync::Arc;

    #[test]
    fn rate_queues_stay_bounded_at_any_signing_rate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.policy.rate.per_room = 5;
        config.policy.rate.per_client = 0;
        let svc = Service::open(dir.path(), config, true, Arc::new(ManualClock::new(1))).expect("service");
        let client = ClientInfo { uid: 0, pid: None, exe: Some("/usr/bin/x".into()) };
        for _ in 0..10_000 {
            svc.rate_reserve(&client, "!r:x", 1).keep();
        }
        // The limit is still seen as reached, from at most `limit` entries.
        assert_eq!(svc.rate_reserve(&client, "!r:x", 0).facts.room, 5);
        let r = svc.rate.lock().expect("lock");
        assert_eq!(r.rooms["!r:x"].len(), 5);
        assert!(r.clients.is_empty(), "no limit, nothing recorded");
    }

    #[test]
    fn rate_reservations_are_taken_before_signing_and_given_back_on_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.policy.rate.per_room = 3;
        let svc = Service::open(dir.path(), config, true, Arc::new(ManualClock::new(1))).expect("service");
        let client = ClientInfo { uid: 0, pid: None, exe: Some("/usr/bin/x".into()) };
        // Three requests in flight at once each see the ones before them.
        let held: Vec<_> = (0..3).map(|_| svc.rate_reserve(&client, "!r:x", 1)).collect();
        assert_eq!(held.iter().map(|r| r.facts.room).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(svc.rate_reserve(&client, "!r:x", 0).facts.room, 3, "a fourth is over the limit");
        drop(held); // none signed: all given back
        assert_eq!(svc.rate_reserve(&client, "!r:x", 0).facts.room, 0);
    }
}
