//! The service: the one implementation of every method. Transports only
//! translate requests into calls of these methods. It composes parts that
//! each keep their own state behind their own lock: the key registry
//! ([`crate::keys::Registry`]), the backends ([`backends`]), the room view
//! ([`crate::rooms::Rooms`]), the confirmations ([`crate::prompt::Prompts`]),
//! the rate windows ([`rate`]) and the journal.
//!
//! | file | methods |
//! |---|---|
//! | `mod.rs` | construction, `agent.*`, `journal.*` |
//! | [`backends`] | the software keystore, PKCS#11 token and YubiKey, `backend.init`, lock state |
//! | [`yubikey`] | the YubiKey's part of the backends |
//! | [`keys`] | `keys.*` and `otk.*` |
//! | [`sign`] | `sign.pdu`, `sign.batch` and the hard checks |
//! | [`decide`] | facts for the policy and its decisions; `policy.*` |
//! | [`confirm`] | acting on a decision, asking the person, management rules; `confirm.*` |
//! | [`rate`] | the signing rate windows, reserved before deciding |
//! | [`room_view`] | `rooms.*` and flushing the room view |
//! | [`share`] | `share.export`, `share.import`: keys through secret storage |

mod backends;
mod confirm;
mod decide;
mod keys;
mod rate;
mod room_view;
mod share;
mod sign;
mod yubikey;

use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Refusal, Result};
use crate::journal::{self, Journal};
use crate::keys::Registry;
use crate::keystore::soft::SoftBackend;
use crate::keystore::Backend;
use crate::prompt::Prompts;
use crate::rooms::Rooms;
use cryptoid_protocol::json::{Int, Object, Value};
use cryptoid_protocol::wire::agent::{BackendInfo, HelloResult, LockState, PasswdParams, UnlockParams};
use cryptoid_protocol::wire::backend::InitParams;
use cryptoid_protocol::wire::journal::{TailParams, TailResult, VerifyResult};
use cryptoid_protocol::wire::PROTOCOL_VERSION;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Who is calling, from the socket's peer credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    pub uid: u32,
    pub pid: Option<i32>,
    /// `/proc/<pid>/exe`, when readable.
    pub exe: Option<String>,
}

impl ClientInfo {
    /// `/proc/<pid>/exe` of a process, as clients are named.
    pub fn exe_of_pid(pid: i32) -> Option<String> {
        std::fs::read_link(format!("/proc/{pid}/exe")).ok().map(|p| p.display().to_string())
    }

    /// The agent itself (start-up and shutdown entries).
    pub fn agent() -> ClientInfo {
        ClientInfo {
            uid: rustix::process::getuid().as_raw(),
            pid: Some(std::process::id() as i32),
            exe: None,
        }
    }
}

/// What a step learned of a request's subject (the PDU or key it is
/// about), returned as a value and merged into the journal entry.
#[derive(Clone, Debug, Default)]
pub struct Subject {
    pub room_id: Option<String>,
    pub event_type: Option<String>,
    pub cryptoid: Option<String>,
    pub event_id: Option<String>,
}

/// What acting on a policy decision learned: the verdict, its reasons,
/// and who answered a confirmation.
#[derive(Clone, Debug, Default)]
pub struct Judged {
    pub decision: Option<&'static str>,
    pub reasons: Vec<String>,
    pub confirmed_by: Option<String>,
}

/// A request's journal entry, built from what its steps returned. Never
/// holds secrets.
#[derive(Debug, Default)]
pub struct Audit {
    pub room_id: Option<String>,
    pub event_type: Option<String>,
    pub event_id: Option<String>,
    pub cryptoid: Option<String>,
    pub count: Option<u64>,
    /// The policy's verdict and its reasons.
    pub decision: Option<&'static str>,
    pub reasons: Vec<String>,
    /// Who answered a confirmation.
    pub confirmed_by: Option<String>,
    /// Events signed; replayed into the room view after a crash.
    pub signed: Vec<SignedNote>,
    /// An `intended` entry was journaled before the change was made.
    pub intended: bool,
}

/// What the journal keeps of a signed event: enough to rebuild the room
/// view (depth, and the anchor for authorization events).
#[derive(Clone, Debug, Default)]
pub struct SignedNote {
    /// Replay restores the room's version, and whether the ID was computed.
    pub room_version: String,
    pub event_id: String,
    pub depth: i64,
    pub event_type: Option<String>,
    pub state_key: Option<String>,
    pub membership: Option<String>,
}

impl Audit {
    /// Takes in what a step learned of the subject (set fields win).
    pub fn subject(&mut self, s: Subject) {
        let keep = |mine: &mut Option<String>, new: Option<String>| {
            if new.is_some() {
                *mine = new;
            }
        };
        keep(&mut self.room_id, s.room_id);
        keep(&mut self.event_type, s.event_type);
        keep(&mut self.cryptoid, s.cryptoid);
        keep(&mut self.event_id, s.event_id);
    }

    /// Takes in a decision and its confirmation.
    pub fn judged(&mut self, j: Judged) {
        self.decision = j.decision.or(self.decision);
        if !j.reasons.is_empty() {
            self.reasons = j.reasons;
        }
        if j.confirmed_by.is_some() {
            self.confirmed_by = j.confirmed_by;
        }
    }
}

/// What a method's success changes that transports announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announce {
    Nothing,
    /// The lock state (`LockChanged`).
    LockState,
    /// The set of keys or their states (`KeysChanged`).
    Keys,
}

/// Things transports may announce (D-Bus signals).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    LockChanged(bool),
    KeysChanged,
    /// A hardware key waits for a touch; the text says which and why.
    TouchRequested(String),
    /// The touch awaited is over (signed or failed).
    TouchDone,
    /// A state event was signed: a line a person can read.
    StateSigned(String),
}

/// Everything the agent keeps, under one data directory.
pub struct Service {
    data_dir: PathBuf,
    registry: Arc<Registry>,
    backends: backends::Backends,
    journal: Journal,
    rooms: Rooms,
    prompts: Arc<Prompts>,
    rate: Mutex<rate::RateTracker>,
    clock: Arc<dyn Clock>,
    config: Config,
    events: tokio::sync::broadcast::Sender<Event>,
}

/// Files under the data directory.
pub fn keystore_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keystore.json")
}

impl Service {
    /// Opens the data directory: keystore, key records, journal (repairing a
    /// torn tail). The agent starts locked unless the keystore has no
    /// passphrase.
    pub fn open(
        data_dir: &Path,
        config: Config,
        no_passphrase: bool,
        clock: Arc<dyn Clock>,
    ) -> Result<Service> {
        crate::fsutil::private_dir(data_dir)?;
        let soft = Arc::new(
            SoftBackend::open_with(
                keystore_path(data_dir),
                no_passphrase,
                config.pkcs11.module_dirs.clone(),
            )?
            .with_tpm_tcti(config.tpm.tcti.clone()),
        );
        let registry = Arc::new(Registry::load(data_dir.join("keys"))?);
        let opts = journal::Options {
            max_segment_bytes: config.journal.max_segment_bytes.max(1024),
            fsync_interval: Duration::from_millis(config.journal.fsync_interval_ms.max(1)),
        };
        let (journal, recovery) = Journal::open(data_dir.join("journal"), opts)?;
        let (rooms, covered) = Rooms::load(data_dir.join("rooms"))?;
        let rooms = rooms.with_member_redaction(
            config
                .member_redaction
                .iter()
                .filter_map(|(v, m)| cryptoid_protocol::MemberRedaction::from_name(m).map(|m| (v.clone(), m)))
                .collect(),
        );
        let replayed = rooms.replay(&journal.entries_since(covered)?);
        if replayed > 0 {
            tracing::info!(replayed, "room view: replayed signatures from the journal");
        }
        let prompts = Arc::new(Prompts::new(clock.clone()));
        let events = tokio::sync::broadcast::channel(64).0;
        let backends = backends::Backends::new(
            soft,
            data_dir.join("backends.json"),
            config.pkcs11.module_dirs.clone(),
            #[cfg(feature = "yubikey")]
            yubikey::hooks(registry.clone(), events.clone()),
        );
        let svc = Service {
            data_dir: data_dir.to_owned(),
            registry,
            backends,
            journal,
            rooms,
            prompts,
            rate: Mutex::new(rate::RateTracker::default()),
            clock,
            config,
            events,
        };
        if recovery.torn_bytes > 0 {
            tracing::warn!(
                bytes = recovery.torn_bytes,
                "cut a torn last line off the journal (crash during a write)"
            );
            let mut e = Object::new();
            e.insert("event".into(), Value::from("journal.repaired"));
            e.insert("dropped_bytes".into(), Value::Int(int(recovery.torn_bytes)));
            svc.journal.append(e, svc.now())?;
        }
        let mut e = Object::new();
        e.insert("event".into(), Value::from("agent.started"));
        e.insert("version".into(), Value::from(crate::VERSION));
        // On a full disk the agent still starts: every request that needs
        // the journal is refused with storage_error until space is back.
        if let Err(err) = svc.journal.append(e, svc.now()) {
            tracing::error!(error = %err, "could not journal the start; requests that need the journal will be refused");
        }
        Ok(svc)
    }

    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Announcements for transports (lock and key changes, touch notices).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The confirmation machinery (a transport may add a prompter to it).
    pub fn prompts(&self) -> &Arc<Prompts> {
        &self.prompts
    }

    /// Announces what a successful call changed (its declaration says).
    pub fn announce(&self, what: Announce) {
        let event = match what {
            Announce::Nothing => return,
            Announce::LockState => Event::LockChanged(self.is_locked()),
            Announce::Keys => Event::KeysChanged,
        };
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }

    pub fn is_locked(&self) -> bool {
        self.backends.is_locked()
    }

    fn require_unlocked(&self) -> Result<()> {
        self.backends.require_unlocked()
    }

    fn backend(&self, name: Option<&str>) -> Result<Arc<dyn Backend>> {
        self.backends.get(name)
    }

    fn drop_pkcs11_if_gone(&self, err: &Error) {
        self.backends.drop_pkcs11_if_gone(err)
    }

    /// `backend.init`: sets up a token or card and remembers it.
    pub fn backend_init(&self, p: &InitParams) -> Result<BackendInfo> {
        self.backends.init(p, &self.registry)
    }

    /// `backend.tpm_change_pin`. Slow (the TPM): call off the async runtime.
    pub fn tpm_change_pin(
        &self,
        p: &cryptoid_protocol::wire::backend::TpmChangePinParams,
    ) -> Result<BackendInfo> {
        self.backends.tpm_change_pin(p, &self.registry)
    }

    /// Journals one request.
    pub fn journal_request(
        &self,
        method: &str,
        client: &ClientInfo,
        audit: &Audit,
        outcome: Result<(), &Error>,
    ) -> Result<()> {
        self.journal.append(outcome_entry(method, client, audit, outcome), self.now())?;
        Ok(())
    }

    /// As [`Service::journal_request`], but only queued: the entry is
    /// written by the next commit (several requests answered together,
    /// one write). Commit the ticket before releasing anything.
    pub fn journal_request_queued(
        &self,
        method: &str,
        client: &ClientInfo,
        audit: &Audit,
        outcome: Result<(), &Error>,
    ) -> journal::Ticket {
        self.journal.enqueue(outcome_entry(method, client, audit, outcome), self.now())
    }

    /// Writes every queued journal entry now.
    pub fn journal_flush_queue(&self) -> Result<()> {
        self.journal.flush_queue()?;
        Ok(())
    }

    /// Before waiting for a person or a token (seconds, perhaps minutes):
    /// the entries of requests answered together with this one (pipelined)
    /// are written now, so that what they did (a room view change, a key
    /// bound) is not left unjournaled for the wait.
    pub(super) fn flush_journal_before_waiting(&self) {
        if let Err(e) = self.journal.flush_queue() {
            // Their owners get the error when they commit, and withhold.
            tracing::error!(error = %e, "cannot write queued journal entries");
        }
    }

    /// Writes the queued entry of `ticket` (and every one queued before).
    pub fn journal_commit(&self, ticket: journal::Ticket) -> Result<()> {
        self.journal.commit(ticket)?;
        Ok(())
    }

    /// Journals a change about to be made (outcome `intended`); its
    /// outcome follows in a second entry.
    pub fn journal_intent(&self, method: &str, client: &ClientInfo, audit: &Audit) -> Result<()> {
        let mut e = request_entry(method, client, audit);
        e.insert("outcome".into(), Value::from("intended"));
        self.journal.append(e, self.now())?;
        Ok(())
    }

    /// Refuses a connection of another uid: journals it and returns the
    /// error to send.
    pub fn refuse_other_user(&self, client: &ClientInfo, own_uid: u32) -> Error {
        tracing::warn!(uid = client.uid, pid = ?client.pid, exe = ?client.exe, "refused a connection from another user");
        let err = Refusal::OtherUser { uid: client.uid, own: own_uid }.into();
        if let Err(e) = self.journal_request("connect", client, &Audit::default(), Err(&err)) {
            tracing::error!(error = %e, "cannot journal a refused connection");
        }
        err
    }

    /// Flushes what must survive a restart: last-used times and the journal.
    pub fn shutdown(&self) -> Result<()> {
        if let Err(e) = self.registry.persist_last_used() {
            tracing::warn!(error = %e, "could not save last-used times");
        }
        if let Err(e) = self.flush_rooms() {
            tracing::warn!(error = %e, "could not save the room view; the journal still has it");
        }
        let mut e = Object::new();
        e.insert("event".into(), Value::from("agent.stopped"));
        self.journal.append(e, self.now())?;
        self.journal.close()?;
        Ok(())
    }

    // ---- agent.* ----

    pub fn hello(&self) -> HelloResult {
        HelloResult {
            protocol: PROTOCOL_VERSION,
            agent_version: crate::VERSION.to_owned(),
            locked: self.is_locked(),
            passphrase_set: self.backends.soft.initialized(),
            backends: self.backends.infos(&self.registry),
        }
    }

    pub fn lock(&self) -> LockState {
        self.backends.lock()
    }

    /// Unlocks; the first unlock of a new keystore sets its passphrase.
    /// Slow on purpose (Argon2id): call off the async runtime.
    pub fn unlock(&self, p: &UnlockParams) -> Result<LockState> {
        self.backends.unlock(p)
    }

    /// Changes the software keystore's passphrase. Slow (two Argon2id runs).
    pub fn passwd(&self, p: &PasswdParams) -> Result<()> {
        self.backends.soft.change_passphrase(&p.passphrase, &p.new_passphrase)?;
        Ok(())
    }

    // ---- journal.* ----

    pub fn journal_tail(&self, p: &TailParams) -> Result<TailResult> {
        let limit = p.limit.unwrap_or(20).min(10_000) as usize;
        let room = p.room_id.as_deref();
        let entries = self
            .journal
            .tail(limit, |e| room.is_none_or(|r| e.get("room_id").and_then(Value::as_str) == Some(r)))?;
        Ok(TailResult { entries: entries.into_iter().map(Value::Object).collect() })
    }

    pub fn journal_verify(&self) -> Result<VerifyResult> {
        let v = self.journal.verify()?;
        Ok(VerifyResult { ok: v.error.is_none(), entries: v.entries, error: v.error.map(|t| t.to_string()) })
    }
}

fn int(v: u64) -> Int {
    Int::new(i64::try_from(v).unwrap_or(i64::MAX)).unwrap_or(Int::from(u32::MAX))
}

/// A request's journal entry, without its outcome.
/// The journal entry of a request's outcome.
fn outcome_entry(method: &str, client: &ClientInfo, audit: &Audit, outcome: Result<(), &Error>) -> Object {
    let mut e = request_entry(method, client, audit);
    match outcome {
        Ok(()) => {
            e.insert("outcome".into(), Value::from("ok"));
        }
        Err(err) => {
            e.insert("outcome".into(), Value::from(err.kind().as_str()));
            e.insert("reason".into(), Value::from(err.to_string()));
        }
    }
    e
}

fn request_entry(method: &str, client: &ClientInfo, audit: &Audit) -> Object {
    let mut e = Object::new();

    e.insert("method".into(), Value::from(method));
    let mut c = Object::new();
    c.insert("uid".into(), Value::Int(Int::from(client.uid)));
    if let Some(pid) = client.pid {
        c.insert("pid".into(), Value::Int(Int::from(pid)));
    }
    if let Some(exe) = &client.exe {
        c.insert("exe".into(), Value::from(exe.as_str()));
    }
    e.insert("client".into(), Value::Object(c));
    for (k, v) in [
        ("room_id", &audit.room_id),
        ("type", &audit.event_type),
        ("event_id", &audit.event_id),
        ("cryptoid", &audit.cryptoid),
        ("confirmed_by", &audit.confirmed_by),
    ] {
        if let Some(v) = v {
            e.insert(k.into(), Value::from(v.as_str()));
        }
    }
    if let Some(n) = audit.count {
        e.insert("count".into(), Value::Int(int(n)));
    }
    if let Some(d) = audit.decision {
        e.insert("decision".into(), Value::from(d));
        e.insert(
            "reasons".into(),
            Value::Array(audit.reasons.iter().map(|r| Value::from(r.as_str())).collect()),
        );
    }
    if !audit.signed.is_empty() {
        let signed = audit
            .signed
            .iter()
            .map(|n| {
                let mut o = Object::new();
                o.insert("event_id".into(), Value::from(n.event_id.as_str()));
                o.insert("room_version".into(), Value::from(n.room_version.as_str()));
                o.insert("depth".into(), Value::Int(int(u64::try_from(n.depth).unwrap_or(0))));
                for (k, v) in
                    [("type", &n.event_type), ("state_key", &n.state_key), ("membership", &n.membership)]
                {
                    if let Some(v) = v {
                        o.insert(k.into(), Value::from(v.as_str()));
                    }
                }
                Value::Object(o)
            })
            .collect();
        e.insert("signed".into(), Value::Array(signed));
    }
    e
}
