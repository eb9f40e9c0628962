//! The agent library's error type. Every variant maps to a wire
//! [`ErrorKind`]; messages say what happened and what to do.

use crate::keystore::KeystoreError;
use cryptoid_protocol::wire::{ErrorKind, RpcError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    #[error("storage failed: {0}; nothing was changed")]
    Storage(#[from] std::io::Error),
    /// A request-level failure with its wire kind.
    #[error("{message}")]
    Request { kind: ErrorKind, message: String, reasons: Vec<String> },
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::Request { kind, message: message.into(), reasons: Vec::new() }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Keystore(e) => e.kind(),
            Error::Storage(_) => ErrorKind::StorageError,
            Error::Request { kind, .. } => *kind,
        }
    }

    pub fn to_rpc(&self) -> RpcError {
        let e = RpcError::new(self.kind(), self.to_string());
        match self {
            Error::Request { reasons, .. } => e.with_reasons(reasons.clone()),
            _ => e,
        }
    }
}

impl From<RpcError> for Error {
    fn from(e: RpcError) -> Error {
        Error::Request { kind: e.kind(), message: e.message, reasons: e.data.reasons }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
