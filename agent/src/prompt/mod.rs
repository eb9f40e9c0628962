//! Confirmations. A `confirm` decision holds its request and asks every
//! provider at once: pinentry (the desktop's dialog, see [`pinentry`]),
//! the askpass program (if configured), a registered D-Bus prompter, and
//! the list that `confirm.pending`/`confirm.answer` (and `cryptoidctl
//! confirm`) serve. The first answer wins and the others are cancelled
//! (their dialogs killed); none within the timeout is
//! `confirmation_timeout`. A client that asks the person on its own
//! terminal (`confirm.ask_here`, see [`self_askers`]) gets no pinentry
//! beside it: one question per terminal.

pub mod approvals;
pub mod askpass;
pub mod pinentry;
pub mod self_askers;

use crate::clock::Clock;
use crate::sync::MutexExt;
use approvals::{Approvals, Key};
use cryptoid_protocol::wire::confirm::PendingConfirmation;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// What is asked.
#[derive(Clone, Debug)]
pub struct Question {
    pub prompt: String,
    pub method: String,
    pub client_exe: Option<String>,
    pub client_pid: Option<i32>,
    pub room_id: Option<String>,
    pub event_type: Option<String>,
    pub cryptoid: Option<String>,
    pub changes: Vec<String>,
    pub reasons: Vec<String>,
    /// What a remembered approval covers beyond (client, room, type): the
    /// exact change, for state events and redactions; `None` for plain
    /// messages.
    pub scope: Option<String>,
    /// Whether `remember` may be honoured (one PDU, not a batch).
    pub rememberable: bool,
    /// Only a dialog the agent runs itself (pinentry, askpass) may answer:
    /// the socket and a D-Bus prompter are any process of the user,
    /// including the one that asked (used where secret keys move).
    pub person_only: bool,
    /// pinentry may show on the client's display or terminal. Off where
    /// the client must not answer its own question (`person_only`, or
    /// `socket_confirm = false`): it picks its own `DISPLAY` and terminal,
    /// so the dialog goes to the agent's own display instead.
    pub on_client_display: bool,
}

/// Longest prompt shown, in characters.
const PROMPT_CHARS: usize = 2000;

impl Question {
    /// Every string made safe to show: homeserver text reaches askpass,
    /// D-Bus prompters, `confirm.pending` and terminals from here.
    fn sanitized(mut self) -> Question {
        use cryptoid_protocol::text::{sanitize, sanitize_default};
        let opt = |o: &mut Option<String>| {
            if let Some(v) = o {
                *v = sanitize_default(v);
            }
        };
        self.prompt = sanitize(&self.prompt, PROMPT_CHARS).into_owned();
        opt(&mut self.client_exe);
        opt(&mut self.room_id);
        opt(&mut self.event_type);
        opt(&mut self.cryptoid);
        for v in self.changes.iter_mut().chain(self.reasons.iter_mut()) {
            *v = sanitize(v, 400).into_owned();
        }
        self
    }
}

impl Question {
    /// What a dialog shows: the question, what changes, and why it is
    /// asked (already sanitized).
    pub fn dialog_text(&self) -> String {
        let mut t = self.prompt.clone();
        // Sign prompts already name their changes.
        if !self.changes.is_empty() && !self.changes.iter().all(|c| self.prompt.contains(c.as_str())) {
            t.push_str("\n\nChanges:");
            for c in &self.changes {
                t.push_str("\n  • ");
                t.push_str(c);
            }
        }
        if !self.reasons.is_empty() {
            t.push_str("\n\nAsked because: ");
            t.push_str(&self.reasons.join("; "));
        }
        t
    }
}

/// An answer and who gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub allow: bool,
    pub remember: Option<Duration>,
    pub by: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Allowed {
        by: String,
    },
    Denied {
        by: String,
    },
    TimedOut,
    /// Too many questions wait already: this one is not asked.
    Busy,
}

/// Most questions waiting at once: a client cannot bury the person in
/// dialogs (nor the agent in dialog processes).
pub const MAX_PENDING: usize = 16;

/// What a prompter resolves to: `Some((allow, remember_secs))`.
pub type PrompterAnswer = std::pin::Pin<Box<dyn std::future::Future<Output = Option<(bool, u32)>> + Send>>;

/// A prompt provider outside the agent (the D-Bus prompter): given the
/// request, resolves to `Some((allow, remember_secs))`, or `None` when it
/// cannot answer (gone, failed).
pub trait Prompter: Send + Sync {
    fn confirm(&self, id: u64, question: &Question) -> PrompterAnswer;
}

struct Waiting {
    question: Question,
    /// (exe, room, type) before sanitizing, for remembered approvals.
    raw: (Option<String>, Option<String>, Option<String>),
    deadline: Duration,
    tx: oneshot::Sender<Answer>,
}

pub struct Prompts {
    clock: Arc<dyn Clock>,
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, Waiting>>,
    approvals: Mutex<Approvals>,
    /// Executables the user approved in this agent session.
    session: Mutex<HashSet<String>>,
    /// The registered desktop prompter, asked instead of askpass.
    prompter: Mutex<Option<Arc<dyn Prompter>>>,
    /// `(id, prompt)` of each new request, for D-Bus signals.
    requested: tokio::sync::broadcast::Sender<(u64, String)>,
    /// One pinentry dialog on screen at a time, the others queued (as
    /// gpg-agent does).
    one_dialog: Arc<tokio::sync::Semaphore>,
    /// Clients that ask on their own terminal.
    self_askers: Mutex<self_askers::SelfAskers>,
}

impl Prompts {
    pub fn new(clock: Arc<dyn Clock>) -> Prompts {
        Prompts {
            clock,
            next_id: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
            approvals: Mutex::new(Approvals::default()),
            session: Mutex::new(HashSet::new()),
            prompter: Mutex::new(None),
            requested: tokio::sync::broadcast::channel(64).0,
            one_dialog: Arc::new(tokio::sync::Semaphore::new(1)),
            self_askers: Mutex::new(self_askers::SelfAskers::default()),
        }
    }

    /// Leaves the asking to client `pid` for its own questions (see
    /// [`self_askers`]); false when the process cannot be identified.
    pub fn register_self_asker(&self, pid: i32, exe: Option<&str>) -> bool {
        self.self_askers.locked().register(pid, exe)
    }

    /// Sets (or clears) the desktop prompter.
    pub fn set_prompter(&self, p: Option<Arc<dyn Prompter>>) {
        *self.prompter.locked() = p;
    }

    /// New requests as `(id, prompt)`.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<(u64, String)> {
        self.requested.subscribe()
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting>> {
        self.waiting.locked()
    }

    /// Whether a remembered approval covers (exe, room, type, scope) now.
    pub fn remembered(&self, exe: &str, room: &str, event_type: &str, scope: Option<&str>) -> bool {
        let key = Key {
            exe: exe.into(),
            room: room.into(),
            event_type: event_type.into(),
            scope: scope.map(str::to_owned),
        };
        self.approvals.locked().covers(&key, self.clock.monotonic())
    }

    pub fn session_approved(&self, exe: Option<&str>) -> bool {
        exe.is_some_and(|e| self.session.locked().contains(e))
    }

    /// Asks the user; resolves with the first answer or the timeout.
    pub async fn ask(
        self: &Arc<Self>,
        q: Question,
        askpass: Option<String>,
        pinentry: Option<std::path::PathBuf>,
        timeout: Duration,
    ) -> Outcome {
        // Keys for remembering use the raw values; what is shown is clean.
        let raw_room = q.room_id.clone();
        let raw_type = q.event_type.clone();
        let raw_exe = q.client_exe.clone();
        // A client that asks on its own terminal is the one asker there:
        // a pinentry beside it would split the person's keystrokes.
        let client_asks =
            q.on_client_display && self.self_askers.locked().asks_itself(q.client_pid, raw_exe.as_deref());
        let q = q.sanitized();
        if self.waiting().len() >= MAX_PENDING {
            tracing::warn!(pending = MAX_PENDING, "too many confirmations waiting; not asking another");
            return Outcome::Busy;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let deadline = self.clock.monotonic() + timeout;
        self.waiting()
            .insert(id, Waiting { question: q.clone(), raw: (raw_exe, raw_room, raw_type), deadline, tx });
        tracing::info!(id, prompt = %q.prompt, "confirmation requested");
        let _ = self.requested.send((id, q.prompt.clone()));
        // A registered desktop prompter is asked first (instead of askpass),
        // unless only a person may answer.
        let prompter = self.prompter.locked().clone().filter(|_| !q.person_only);
        let _prompter = prompter.map(|p| {
            let me = self.clone();
            let fut = p.confirm(id, &q);
            AbortOnDrop(tokio::spawn(async move {
                if let Some((allow, remember)) = fut.await {
                    let remember = (remember > 0).then(|| Duration::from_secs(u64::from(remember)));
                    me.answer(id, Answer { allow, remember, by: "D-Bus prompter".into() });
                }
            }))
        });
        // The askpass program answers like any other provider; when this
        // function returns, the task is aborted and the program killed.
        let askpass = if _prompter.is_some() { None } else { askpass };
        let _askpass = askpass.map(|program| {
            let me = self.clone();
            let prompt = q.prompt.clone();
            AbortOnDrop(tokio::spawn(async move {
                if let Some(allow) = askpass::run(&program, &prompt).await {
                    me.answer(id, Answer { allow, remember: None, by: format!("askpass {program}") });
                }
            }))
        });
        let pinentry = if client_asks {
            tracing::info!(id, pid = ?q.client_pid, "the client asks on its own terminal; pinentry not run");
            None
        } else {
            pinentry
        };
        let display =
            if q.on_client_display { pinentry::display_for(q.client_pid) } else { pinentry::agent_display() };
        if pinentry.is_some() && !display.is_usable() {
            tracing::info!(id, "no display or terminal to show pinentry on; not asked there");
        }
        let _pinentry = pinentry.filter(|_| display.is_usable()).map(|program| {
            let me = self.clone();
            let req = cryptoid_protocol::assuan::Request {
                title: "cryptoid-agent: confirm".into(),
                description: q.dialog_text(),
                ok: Some("Allow".into()),
                cancel: Some("Deny".into()),
                timeout_secs: timeout.as_secs(),
                ..Default::default()
            };
            let one_dialog = self.one_dialog.clone();
            AbortOnDrop(tokio::spawn(async move {
                use cryptoid_protocol::assuan::Outcome as P;
                // Queued behind the dialog on screen; dropped unasked if
                // the question is answered elsewhere meanwhile.
                let Ok(_on_screen) = one_dialog.acquire_owned().await else { return };
                let by = format!("pinentry {} on {}", program.display(), display.describe());
                match pinentry::run(&program, &req, &display, timeout + Duration::from_secs(1)).await {
                    Ok(P::Confirmed) => drop(me.answer(id, Answer { allow: true, remember: None, by })),
                    Ok(P::Cancelled) => drop(me.answer(id, Answer { allow: false, remember: None, by })),
                    Ok(other) => tracing::info!(id, outcome = ?other, %by, "pinentry gave no answer"),
                    Err(e) => tracing::warn!(id, error = %e, "pinentry gave no answer"),
                }
            }))
        });
        let answer = tokio::time::timeout(timeout, rx).await;
        self.finish(id, answer)
    }

    fn finish(
        &self,
        id: u64,
        a: Result<Result<Answer, oneshot::error::RecvError>, tokio::time::error::Elapsed>,
    ) -> Outcome {
        self.waiting().remove(&id);
        match a {
            Ok(Ok(ans)) if ans.allow => Outcome::Allowed { by: ans.by },
            Ok(Ok(ans)) => Outcome::Denied { by: ans.by },
            _ => Outcome::TimedOut,
        }
    }

    /// An answer from a client (the socket's `confirm.answer`): refused for
    /// a question only a person may answer in a dialog.
    pub fn answer_from_client(&self, id: u64, ans: Answer) -> ClientAnswer {
        match self.waiting().get(&id) {
            None => return ClientAnswer::NotPending,
            Some(w) if w.question.person_only => return ClientAnswer::PersonOnly,
            Some(_) => {}
        }
        if self.answer(id, ans) {
            ClientAnswer::Taken
        } else {
            ClientAnswer::NotPending
        }
    }

    /// Answers request `id`. Returns false when it is no longer pending.
    /// An approval also approves the client for the session and, with
    /// `remember`, (client, room, type) for that long.
    pub fn answer(&self, id: u64, ans: Answer) -> bool {
        let Some(w) = self.waiting().remove(&id) else { return false };
        if ans.allow {
            let (exe, room, ty) = &w.raw;
            if let Some(exe) = exe {
                self.session.locked().insert(exe.clone());
                let ttl = ans.remember.filter(|_| w.question.rememberable);
                if let (Some(ttl), Some(room), Some(ty)) = (ttl, room, ty) {
                    let key = Key {
                        exe: exe.clone(),
                        room: room.clone(),
                        event_type: ty.clone(),
                        scope: w.question.scope.clone(),
                    };
                    self.approvals.locked().remember(key, self.clock.monotonic(), ttl);
                }
            }
        }
        tracing::info!(id, allow = ans.allow, by = %ans.by, "confirmation answered");
        w.tx.send(ans).is_ok()
    }

    pub fn pending(&self) -> Vec<PendingConfirmation> {
        let now = self.clock.monotonic();
        let mut out: Vec<PendingConfirmation> = self
            .waiting()
            .iter()
            .map(|(id, w)| PendingConfirmation {
                id: *id,
                prompt: w.question.prompt.clone(),
                method: w.question.method.clone(),
                client_exe: w.question.client_exe.clone(),
                client_pid: w.question.client_pid,
                room_id: w.question.room_id.clone(),
                event_type: w.question.event_type.clone(),
                cryptoid: w.question.cryptoid.clone(),
                changes: w.question.changes.clone(),
                reasons: w.question.reasons.clone(),
                expires_in_ms: w.deadline.saturating_sub(now).as_millis() as u64,
                person_only: w.question.person_only,
            })
            .collect();
        out.sort_by_key(|p| p.id);
        out
    }
}

/// What became of a client's answer.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientAnswer {
    Taken,
    NotPending,
    PersonOnly,
}

/// Aborts a task (killing an askpass child) when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
