//! Clients for the agent's socket: [`blocking::Client`] (std) and, with the
//! `tokio` feature, [`r#async::Client`]. Both speak every method through one
//! typed call, `call::<M>(&params)`, where `M` is a [`Method`] from
//! [`crate::wire`].
//!
//! ## How a Matrix client uses the agent
//!
//! The homeserver builds the event and returns it unsigned; the agent checks
//! and signs it; the client posts it to `/send_pdus`:
//!
//! ```no_run
//! use cryptoid_protocol::client::blocking::Client;
//! use cryptoid_protocol::json;
//! use cryptoid_protocol::wire::{keys, sign};
//!
//! # fn http_post(_: &str, _: &str) -> String { String::new() }
//! let mut agent = Client::connect_default()?;
//!
//! // Joining: a fresh cryptoID for the room goes into the /join body.
//! let key = agent.call::<keys::Create>(&keys::CreateParams {
//!     room_id: Some("!room:example.org".into()),
//!     ..Default::default()
//! })?;
//!
//! // PUT /rooms/{id}/send/m.room.message/{txn} answers {event_id, pdu}.
//! let answer = json::from_str(&http_post("/send/...", r#"{"body":"hi"}"#))?.into_object().unwrap_or_default();
//! let signed = agent.call::<sign::SignPdu>(&sign::SignPduParams {
//!     room_version: "org.matrix.msc4080".into(),
//!     pdu: answer.get("pdu").cloned().unwrap_or(json::Value::Null),
//!     event_id: answer.get("event_id").and_then(|v| v.as_str()).map(str::to_owned),
//!     intent: None,
//! })?;
//!
//! // POST /send_pdus/{txn} with {"pdus":[{"room_version":…,"pdu":signed.pdu}]}.
//! let body = format!(r#"{{"pdus":[{{"room_version":"org.matrix.msc4080","pdu":{}}}]}}"#, signed.pdu);
//! http_post("/send_pdus/...", &body);
//! # let _ = key;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "tokio")]
pub mod r#async;
pub mod blocking;

use crate::json::Value;
use crate::wire::{self, Method, RpcError};
use std::path::PathBuf;

/// Environment variable naming the agent socket, like `SSH_AUTH_SOCK`.
pub const SOCKET_ENV: &str = "CRYPTOID_AUTH_SOCK";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no agent socket: set {SOCKET_ENV} (is cryptoid-agent running?) or XDG_RUNTIME_DIR")]
    NoSocket,
    #[error("cannot connect to the agent at {path} (is cryptoid-agent running?)")]
    Connect { path: PathBuf, source: std::io::Error },
    #[error("connection to the agent failed")]
    Io(#[from] std::io::Error),
    #[error("the agent closed the connection")]
    Closed,
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The agent answered with an error.
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

impl ClientError {
    /// The agent's error kind, when the agent answered with an error.
    pub fn kind(&self) -> Option<wire::ErrorKind> {
        match self {
            ClientError::Rpc(e) => Some(e.kind()),
            _ => None,
        }
    }

    /// The agent's `data.cause`, when it named one.
    pub fn cause(&self) -> Option<&str> {
        match self {
            ClientError::Rpc(e) => e.cause(),
            _ => None,
        }
    }

    /// The agent's `data.reasons` (empty unless it gave some).
    pub fn reasons(&self) -> &[String] {
        match self {
            ClientError::Rpc(e) => &e.data.reasons,
            _ => &[],
        }
    }
}

/// `$CRYPTOID_AUTH_SOCK`, else `$XDG_RUNTIME_DIR/cryptoid-agent/agent.sock`.
pub fn default_socket_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|p| !p.is_empty())
        .map(|d| PathBuf::from(d).join("cryptoid-agent").join("agent.sock"))
}

/// Completes a call from what the write and the read of the response line
/// gave. The agent may answer and close before reading the request (a
/// refused uid), so an answer read after a failed write still counts.
fn complete<M: Method>(
    expected_id: u64,
    written: std::io::Result<()>,
    read: std::io::Result<usize>,
    mut buf: Vec<u8>,
) -> Result<M::Result, ClientError> {
    let n = match read {
        Ok(n) => n,
        Err(e) => return Err(written.err().unwrap_or(e).into()),
    };
    if n == 0 {
        written?;
        return Err(ClientError::Closed);
    }
    if buf.last() != Some(&b'\n') {
        return Err(ClientError::Protocol("response line too long or truncated".into()));
    }
    buf.pop();
    finish::<M>(expected_id, &buf)
}

/// Turns a response line into the method's result.
fn finish<M: Method>(expected_id: u64, line: &[u8]) -> Result<M::Result, ClientError> {
    let resp = wire::decode_response(line).map_err(ClientError::Protocol)?;
    // An error with a null id is about the connection (refused, line too
    // long), not about one request.
    if let (Value::Null, Err(e)) = (&resp.id, &resp.outcome) {
        return Err(ClientError::Rpc(e.clone()));
    }
    if resp.id.as_int() != i64::try_from(expected_id).ok() {
        return Err(ClientError::Protocol(format!(
            "response for id {} while waiting for {expected_id}",
            resp.id
        )));
    }
    let value = resp.outcome?;
    value
        .deserialize_into::<M::Result>()
        .map_err(|e| ClientError::Protocol(format!("unexpected result for {}: {e}", M::NAME)))
}
