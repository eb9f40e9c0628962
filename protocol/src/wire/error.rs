//! Error objects: a stable numeric code, a message a person can act on, and
//! `data.kind`, the machine-readable reason.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a request failed. The snake_case name is `data.kind` on the wire and
/// the suffix of the D-Bus error name; the code is stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The line is not JSON, or not strict JSON (duplicate keys, floats…).
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    InternalError,
    /// The agent is locked: unlock it first.
    Locked,
    /// The passphrase is wrong.
    BadPassphrase,
    PolicyDenied,
    ConfirmationDenied,
    ConfirmationTimeout,
    /// No such key (or the PDU's sender is not a key the agent holds).
    UnknownKey,
    /// The key is bound to another room, already bound, or retired.
    KeyNotUsable,
    BadPdu,
    HashMismatch,
    EventIdMismatch,
    UnsupportedRoomVersion,
    BackendUnavailable,
    PinRequired,
    MessageTooLarge,
    /// The caller may not use the agent (another uid) or this method.
    NotPermitted,
    /// The disk refused a write; nothing was acknowledged.
    StorageError,
    /// A kind this client does not know (sent by a newer agent).
    #[serde(other)]
    Unknown,
}

impl ErrorKind {
    /// The JSON-RPC error code: the reserved range for protocol errors,
    /// −32001 and below for the agent's own.
    pub fn code(self) -> i32 {
        match self {
            ErrorKind::ParseError => -32700,
            ErrorKind::InvalidRequest => -32600,
            ErrorKind::MethodNotFound => -32601,
            ErrorKind::InvalidParams => -32602,
            ErrorKind::InternalError => -32603,
            ErrorKind::Locked => -32001,
            ErrorKind::BadPassphrase => -32002,
            ErrorKind::PolicyDenied => -32003,
            ErrorKind::ConfirmationDenied => -32004,
            ErrorKind::ConfirmationTimeout => -32005,
            ErrorKind::UnknownKey => -32006,
            ErrorKind::KeyNotUsable => -32007,
            ErrorKind::BadPdu => -32008,
            ErrorKind::HashMismatch => -32009,
            ErrorKind::EventIdMismatch => -32010,
            ErrorKind::UnsupportedRoomVersion => -32011,
            ErrorKind::BackendUnavailable => -32012,
            ErrorKind::PinRequired => -32013,
            ErrorKind::MessageTooLarge => -32014,
            ErrorKind::NotPermitted => -32015,
            ErrorKind::StorageError => -32016,
            ErrorKind::Unknown => -32099,
        }
    }

    /// The `data.kind` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ParseError => "parse_error",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::MethodNotFound => "method_not_found",
            ErrorKind::InvalidParams => "invalid_params",
            ErrorKind::InternalError => "internal_error",
            ErrorKind::Locked => "locked",
            ErrorKind::BadPassphrase => "bad_passphrase",
            ErrorKind::PolicyDenied => "policy_denied",
            ErrorKind::ConfirmationDenied => "confirmation_denied",
            ErrorKind::ConfirmationTimeout => "confirmation_timeout",
            ErrorKind::UnknownKey => "unknown_key",
            ErrorKind::KeyNotUsable => "key_not_usable",
            ErrorKind::BadPdu => "bad_pdu",
            ErrorKind::HashMismatch => "hash_mismatch",
            ErrorKind::EventIdMismatch => "event_id_mismatch",
            ErrorKind::UnsupportedRoomVersion => "unsupported_room_version",
            ErrorKind::BackendUnavailable => "backend_unavailable",
            ErrorKind::PinRequired => "pin_required",
            ErrorKind::MessageTooLarge => "message_too_large",
            ErrorKind::NotPermitted => "not_permitted",
            ErrorKind::StorageError => "storage_error",
            ErrorKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `data` of an error object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorData {
    pub kind: ErrorKind,
    /// What exactly went wrong within `kind`, as a stable snake_case name
    /// (e.g. `key_bound_elsewhere` within `key_not_usable`): for programs
    /// that must tell causes apart without reading `message`, which is for
    /// people and may change. Absent when the kind says it all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Reasons behind a policy decision, when there are several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// A JSON-RPC error object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} [{}]", data.kind)]
pub struct RpcError {
    pub code: i32,
    pub message: String,
    pub data: ErrorData,
}

impl RpcError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> RpcError {
        RpcError {
            code: kind.code(),
            message: message.into(),
            data: ErrorData { kind, cause: None, reasons: Vec::new() },
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.data.kind
    }

    pub fn with_reasons(mut self, reasons: Vec<String>) -> RpcError {
        self.data.reasons = reasons;
        self
    }

    pub fn with_cause(mut self, cause: impl Into<String>) -> RpcError {
        self.data.cause = Some(cause.into());
        self
    }

    /// `data.cause`, if the agent named one.
    pub fn cause(&self) -> Option<&str> {
        self.data.cause.as_deref()
    }
}
