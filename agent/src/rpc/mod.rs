//! Every transport's way in: [`call`] runs a method by name on untyped
//! params, through one generic path (`serve`) that enforces what the
//! method's declaration ([`table`]) says: its client rule, its intent entry,
//! where it runs; then journals the outcome and returns a [`Reply`] the
//! transport encodes its own way (a JSON-RPC line, a D-Bus reply). Every
//! request that reaches the agent is journaled, malformed ones included, and
//! no result is released unless its journal entry was written.

pub mod table;

use crate::error::{Error, RequestError, Result};
use crate::service::{Announce, Audit, ClientInfo, Service};
use cryptoid_protocol::json::Value;
use cryptoid_protocol::wire::{
    self, agent, backend, confirm, journal, keys, otk, policy, rooms, share, sign, Method,
};
use std::sync::Arc;
use table::Handler;

/// What a method does, which decides the client rule it meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Reveals nothing beyond the keys' public parts and the agent's state:
    /// any client of the user.
    Read,
    /// Signs or judges PDUs: the policy decides each one (client `sign`
    /// rule, event rules, intent, anti-replay, rate) inside the service.
    Sign,
    /// Changes what the agent keeps, or reveals its history (the journal
    /// tells which rooms the user is in): client `manage` rule; unknown
    /// clients are asked once per agent session.
    Manage,
    /// Sees or answers confirmations: only with `socket_confirm = true`.
    Confirm,
    /// Locking (always safe) and unlocking (needs the secret itself): any
    /// client of the user.
    Lock,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Sign => "sign",
            Class::Manage => "manage",
            Class::Confirm => "confirm",
            Class::Lock => "lock",
        }
    }
}

/// Handles one request line (without its newline); returns the response line.
pub async fn handle_line(svc: &Arc<Service>, client: &ClientInfo, line: &[u8]) -> Vec<u8> {
    match decode(svc, client, line) {
        Ok(req) => handle_request(svc, client, req).await,
        Err(answer) => answer,
    }
}

/// Parses a request line; a malformed one is journaled and answered here.
fn decode(svc: &Service, client: &ClientInfo, line: &[u8]) -> Result<wire::Request, Vec<u8>> {
    wire::decode_request(line).map_err(|bad| {
        let err = Error::from(bad.error.clone());
        if let Err(e) = svc.journal_request("(invalid)", client, &Audit::default(), Err(&err)) {
            tracing::error!(error = %e, "cannot journal an invalid request");
        }
        wire::encode_error(&bad.id, &bad.error)
    })
}

async fn handle_request(svc: &Arc<Service>, client: &ClientInfo, req: wire::Request) -> Vec<u8> {
    let id = req.id.clone();
    match call(svc, client, req).await {
        Ok(reply) => reply.line(&id),
        Err(e) => wire::encode_error(&id, &e),
    }
}

/// An answer of [`handle_line_queued`]: ready, or waiting for its journal
/// entry to be written.
#[must_use = "release the answer: it commits the request's journal entry"]
pub enum Answer {
    Ready(Vec<u8>),
    /// A `sign` class answer whose entry is queued: [`Answer::release`]
    /// commits it and then gives the bytes to send.
    Queued {
        ticket: crate::journal::Ticket,
        id: Value,
        /// The answer once the entry is written.
        line: Vec<u8>,
        /// A result that must not be released unless its entry is written
        /// (a refusal is sent either way).
        withhold_unwritten: bool,
        announce: Announce,
    },
}

impl Answer {
    /// The bytes to send: for a queued answer, only once its journal entry
    /// is written (one write for every entry queued so far).
    pub fn release(self, svc: &Service) -> Vec<u8> {
        match self {
            Answer::Ready(bytes) => bytes,
            Answer::Queued { ticket, id, line, withhold_unwritten, announce } => {
                match svc.journal_commit(ticket) {
                    Ok(()) => {
                        svc.announce(announce);
                        line
                    }
                    Err(e) if withhold_unwritten => {
                        tracing::error!(error = %e, "journal write failed; withholding the result");
                        wire::encode_error(&id, &e.to_rpc())
                    }
                    // As `finish`: a refusal is sent anyway, and so is a
                    // change whose intent is on record.
                    Err(e) => {
                        tracing::error!(error = %e, "the outcome of a request could not be journaled");
                        svc.announce(announce);
                        line
                    }
                }
            }
        }
    }
}

/// As [`handle_line`], for a connection that answers several requests at
/// once (pipelined lines read together): a `sign` class request's journal
/// entry is queued rather than written, so the batch's entries are written
/// together when the answers are released ([`Answer::release`], before any
/// of them is sent). Any other method runs as in [`handle_line`], after the
/// entries queued before it are written (it may read the journal).
pub async fn handle_line_queued(svc: &Arc<Service>, client: &ClientInfo, line: &[u8]) -> Answer {
    let req = match decode(svc, client, line) {
        Ok(r) if class_of(&r.method) == Some(Class::Sign) => r,
        Ok(r) => {
            if let Err(e) = svc.journal_flush_queue() {
                tracing::error!(error = %e, "cannot write queued journal entries");
            }
            return Answer::Ready(handle_request(svc, client, r).await);
        }
        Err(answer) => return Answer::Ready(answer),
    };
    let id = req.id.clone();
    let method = req.method.clone();
    let mut audit = Audit::default();
    let result = route(svc, client, req, &mut audit).await;
    let ticket = svc.journal_request_queued(&method, client, &audit, result.as_ref().map(|_| ()));
    match result {
        // As `finish`: a change whose intent is on record is released even
        // if its outcome cannot be written.
        Ok(reply) => Answer::Queued {
            line: reply.line(&id),
            id,
            ticket,
            withhold_unwritten: !audit.intended,
            announce: announces(&method),
        },
        Err(e) => Answer::Queued {
            line: wire::encode_error(&id, &e.to_rpc()),
            id,
            ticket,
            withhold_unwritten: false,
            announce: Announce::Nothing,
        },
    }
}

fn class_of(method: &str) -> Option<Class> {
    METHODS.iter().find(|(name, _)| *name == method).map(|(_, class)| *class)
}

/// A method's result, encodable by any transport.
pub trait Reply: Send {
    /// A JSON-RPC response line.
    fn line(&self, id: &Value) -> Vec<u8>;
    /// The result as JSON text.
    fn json(&self) -> String;
}

impl<T: serde::Serialize + Send> Reply for T {
    fn line(&self, id: &Value) -> Vec<u8> {
        wire::encode_result(id, self)
    }

    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"cannot encode: {e}\"}}"))
    }
}

/// Runs one request and journals it.
pub async fn call(
    svc: &Arc<Service>,
    client: &ClientInfo,
    req: wire::Request,
) -> Result<Box<dyn Reply>, wire::RpcError> {
    let method = req.method.clone();
    let mut audit = Audit::default();
    let result = route(svc, client, req, &mut audit).await.map(|r| (r, announces(&method)));
    finish(svc, &method, client, &audit, result)
}

/// Runs one request of a method known at compile time and journals it,
/// by the same path as [`call`]; the result stays typed (D-Bus encodes it
/// without a round trip through JSON text).
pub async fn call_typed<M: Handler>(
    svc: &Arc<Service>,
    client: &ClientInfo,
    params: Value,
) -> Result<M::Result, wire::RpcError> {
    let mut audit = Audit::default();
    let req = wire::Request { id: Value::Null, method: M::NAME.to_owned(), params };
    let result = match req.params::<M>() {
        Ok(p) => execute::<M>(svc, client, p, &mut audit).await.map(|r| (r, M::ANNOUNCES)),
        Err(e) => Err(e.into()),
    };
    finish(svc, M::NAME, client, &audit, result)
}

/// Journals a request's outcome; releases the result only once that is
/// written (or the change's intent was), and then announces what it changed.
fn finish<T>(
    svc: &Service,
    method: &str,
    client: &ClientInfo,
    audit: &Audit,
    result: Result<(T, Announce)>,
) -> Result<T, wire::RpcError> {
    let journaled = svc.journal_request(method, client, audit, result.as_ref().map(|_| ()));
    match (result, journaled) {
        (Ok((reply, what)), Ok(())) => {
            svc.announce(what);
            Ok(reply)
        }
        (Err(e), _) => Err(e.to_rpc()),
        // The change was made and its intent is on record: withholding the
        // result now would hide a change from the client that asked for it.
        (Ok((reply, what)), Err(e)) if audit.intended => {
            tracing::error!(error = %e, method, "the outcome of a journaled change could not be journaled");
            svc.announce(what);
            Ok(reply)
        }
        (Ok(_), Err(e)) => {
            tracing::error!(error = %e, "journal write failed; withholding the result");
            Err(e.to_rpc())
        }
    }
}

/// The table: every method the agent serves, each through [`serve`].
macro_rules! methods {
    ($($m:ty),* $(,)?) => {
        /// Every method with its class, for documentation and tests.
        pub const METHODS: &[(&str, Class)] = &[$((<$m as Method>::NAME, <$m as Handler>::CLASS)),*];

        /// What a method's success announces, by name (for [`call`]).
        fn announces(method: &str) -> Announce {
            $(
                if method == <$m as Method>::NAME {
                    return <$m as Handler>::ANNOUNCES;
                }
            )*
            Announce::Nothing
        }

        async fn route(
            svc: &Arc<Service>,
            client: &ClientInfo,
            req: wire::Request,
            audit: &mut Audit,
        ) -> Result<Box<dyn Reply>> {
            $(
                if req.method == <$m as Method>::NAME {
                    return serve::<$m>(svc, client, req, audit).await;
                }
            )*
            Err(RequestError::UnknownMethod(req.method).into())
        }
    };
}

methods![
    agent::Hello,
    agent::Lock,
    agent::Unlock,
    agent::Passwd,
    backend::Init,
    backend::TpmChangePin,
    keys::Create,
    keys::List,
    keys::Get,
    keys::Delete,
    otk::Generate,
    otk::UploadBody,
    otk::MarkPublished,
    otk::Claim,
    sign::SignPdu,
    sign::SignBatch,
    policy::Check,
    policy::Show,
    rooms::Observe,
    confirm::Pending,
    confirm::Answer,
    confirm::AskHere,
    journal::Tail,
    journal::Verify,
    share::Export,
    share::Import,
];

/// Parses a request's params and runs it by [`execute`].
async fn serve<M: Handler>(
    svc: &Arc<Service>,
    client: &ClientInfo,
    req: wire::Request,
    audit: &mut Audit,
) -> Result<Box<dyn Reply>> {
    let p = req.params::<M>()?;
    Ok(Box::new(execute::<M>(svc, client, p, audit).await?))
}

/// The one path every method takes: its description, the client rule of
/// its class, the intent entry of a change, then the service call where
/// the declaration says it runs.
async fn execute<M: Handler>(
    svc: &Arc<Service>,
    client: &ClientInfo,
    p: M::Params,
    audit: &mut Audit,
) -> Result<M::Result> {
    let what = M::describe(&p, audit);
    match M::CLASS {
        Class::Read | Class::Lock | Class::Sign => {}
        Class::Manage => {
            let about = (audit.room_id.clone(), audit.cryptoid.clone());
            let (judged, r) =
                svc.authorize_management(client, M::NAME, M::UNDONE, what, M::STAKES, about).await;
            audit.judged(judged);
            r?
        }
        Class::Confirm => svc.require_socket_confirm()?,
    }
    if M::CHANGES {
        svc.journal_intent(M::NAME, client, audit)?;
        audit.intended = true;
    }
    if !M::BLOCKING {
        return M::run(table::Call { svc, client, params: p, audit }).await;
    }
    let (svc, client) = (svc.clone(), client.clone());
    let mut a = std::mem::take(audit);
    let handle = tokio::runtime::Handle::current();
    let (r, a) = tokio::task::spawn_blocking(move || {
        let r = handle.block_on(M::run(table::Call { svc: &svc, client: &client, params: p, audit: &mut a }));
        (r, a)
    })
    .await
    .map_err(|e| Error::internal(format!("worker failed: {e}")))?;
    *audit = a;
    r
}
