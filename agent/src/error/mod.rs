//! The agent library's errors: one enum per concern, and in this file the
//! one place where each variant gets its wire identity: `data.kind` (the
//! stable class a client acts on) and `data.cause` (the stable name of the
//! variant, for programs and tests that must tell causes apart). Messages
//! are for people: they say what happened and what to do, and may change.
//!
//! | concern | enum | where |
//! |---|---|---|
//! | the request itself | [`RequestError`] | wire decoding, method lookup, params |
//! | a PDU's hard checks | [`PduError`] | `service::sign` |
//! | a full event fed to `rooms.observe` | [`ObservedError`] | `rooms::verify` |
//! | keys and their states | [`KeyError`] | `service::keys`, `keys`, `service::sign` |
//! | policy, client rules, confirmations | [`Refusal`] | `service::confirm`, `service::sign` |
//! | backends and tokens | [`KeystoreError`] | `keystore`, `service::backends` |
//! | sharing keys through secret storage | [`ShareFailure`] | `service::share` |

mod key;
mod observed;
mod pdu;
mod refusal;
mod request;
mod share;

pub use crate::keystore::KeystoreError;
pub use key::KeyError;
pub use observed::ObservedError;
pub use pdu::PduError;
pub use refusal::Refusal;
pub use request::RequestError;
pub use share::ShareFailure;

use cryptoid_protocol::event::EventError;
use cryptoid_protocol::secret_storage::SecretStorageError as Sse;
use cryptoid_protocol::share::ShareError;
use cryptoid_protocol::wire::{ErrorKind, RpcError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Pdu(#[from] PduError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    #[error(transparent)]
    Share(#[from] ShareFailure),
    #[error("storage failed: {0}; nothing was changed")]
    Storage(#[from] std::io::Error),
    /// A file the agent wrote no longer parses.
    #[error("{path} is damaged ({why}); {fix}")]
    Damaged { path: String, why: String, fix: &'static str },
    /// A bug or an impossible state; the message is for the bug report.
    #[error("internal error: {0}")]
    Internal(String),
    /// The room view would have to drop state a decision depends on.
    #[error("room {room} reached the room view's limit of {limit} {what}: this rooms.observe was refused after {applied} of its events (they are kept); the policy treats the rest as unknown")]
    RoomLimit { room: String, what: &'static str, limit: u64, applied: usize },
    /// A full event fed to `rooms.observe` failed a check: nothing of the
    /// call was kept.
    #[error("rooms.observe of {room} was refused, nothing of it kept: pdus[{index}] ({event_id}): {source}")]
    Observed { room: String, index: usize, event_id: String, source: ObservedError },
    /// An error of one PDU of a `sign.batch`.
    #[error("PDU {index} of the batch: {source}")]
    InBatch { index: usize, source: Box<Error> },
}

impl From<EventError> for Error {
    fn from(e: EventError) -> Error {
        Error::Pdu(PduError::Event(e))
    }
}

impl Error {
    pub fn internal(msg: impl std::fmt::Display) -> Error {
        Error::Internal(msg.to_string())
    }

    /// Reads a JSON state file the agent wrote; a missing one is the
    /// default, one that no longer parses is `Damaged` with `fix`.
    pub fn read_state<T: serde::de::DeserializeOwned + Default>(
        path: &std::path::Path,
        fix: &'static str,
    ) -> Result<T> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Damaged {
                path: path.display().to_string(),
                why: e.to_string(),
                fix,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Its wire identity: `(data.kind, data.cause)`. The one place.
    pub fn identity(&self) -> (ErrorKind, &str) {
        use ErrorKind as K;
        match self {
            Error::Request(e) => match e {
                RequestError::Wire(rpc) => (rpc.kind(), rpc.cause().unwrap_or("malformed_request")),
                RequestError::UnknownMethod(_) => (K::MethodNotFound, "unknown_method"),
                RequestError::Param { .. } => (K::InvalidParams, "bad_param"),
            },
            Error::Pdu(e) => match e {
                PduError::Event(EventError::HashMismatch { .. }) => {
                    (K::HashMismatch, "content_hash_mismatch")
                }
                PduError::Event(EventError::CreateCarriesRoomId(_)) => (K::BadPdu, "create_carries_room_id"),
                PduError::Event(_) => (K::BadPdu, "malformed_field"),
                PduError::EventIdMismatch { .. } => (K::EventIdMismatch, "event_id_mismatch"),
                PduError::UnsupportedRoomVersion(_) => (K::UnsupportedRoomVersion, "unknown_room_version"),
                PduError::NotAnObject(_) => (K::BadPdu, "not_an_object"),
                PduError::TooLarge { .. } => (K::BadPdu, "too_large"),
                PduError::Missing(_) => (K::BadPdu, "missing_field"),
                PduError::WrongType { .. } | PduError::EmptyType => (K::BadPdu, "malformed_field"),
                PduError::TooManyRefs { .. } => (K::BadPdu, "too_many_refs"),
                PduError::BadRef { .. } => (K::BadPdu, "bad_event_ref"),
                PduError::DuplicateRef { .. } => (K::BadPdu, "duplicate_event_ref"),
                PduError::AlreadySigned(_) => (K::BadPdu, "already_signed"),
                PduError::RoomVersionMismatch { .. } => (K::BadPdu, "room_version_mismatch"),
                PduError::BatchMixesRooms { .. } => (K::BadPdu, "batch_mixes_rooms"),
            },
            Error::Key(e) => match e {
                KeyError::Unknown(_) => (K::UnknownKey, "no_such_key"),
                KeyError::SenderNotHeld(_) => (K::UnknownKey, "sender_not_held"),
                KeyError::DeletedMeanwhile(_) => (K::UnknownKey, "deleted_meanwhile"),
                KeyError::Malformed(..) => (K::InvalidParams, "malformed_cryptoid"),
                KeyError::Unbound(_) => (K::KeyNotUsable, "key_unbound"),
                KeyError::OtherRoom { .. } => (K::KeyNotUsable, "key_bound_elsewhere"),
                KeyError::AlreadyBound { .. } => (K::KeyNotUsable, "key_already_bound"),
                KeyError::WrongState { .. } => (K::KeyNotUsable, "key_state"),
                KeyError::RoomTaken { .. } => (K::KeyNotUsable, "room_has_key"),
                KeyError::NotOneTime(_) => (K::KeyNotUsable, "not_one_time"),
                KeyError::ChangedMeanwhile { .. } => (K::KeyNotUsable, "changed_meanwhile"),
            },
            Error::Refused(e) => match e {
                Refusal::Policy { .. } => (K::PolicyDenied, "policy"),
                Refusal::PolicyAfterWait { .. } => (K::PolicyDenied, "policy_after_wait"),
                Refusal::OtherUser { .. } => (K::NotPermitted, "other_user"),
                Refusal::SocketConfirmOff => (K::NotPermitted, "socket_confirm_off"),
                Refusal::Declined { .. } => (K::ConfirmationDenied, "declined"),
                Refusal::TimedOut { .. } => (K::ConfirmationTimeout, "timed_out"),
                Refusal::NoSuchPending(_) => (K::InvalidParams, "no_such_confirmation"),
                Refusal::PersonOnly(_) => (K::NotPermitted, "person_only"),
                Refusal::NoDialog => (K::ConfirmationTimeout, "no_dialog"),
                Refusal::Busy { .. } => (K::ConfirmationTimeout, "too_many_pending"),
            },
            Error::Keystore(e) => keystore_identity(e),
            Error::Share(e) => match e {
                ShareFailure::OneSecret => (K::InvalidParams, "one_secret"),
                ShareFailure::Storage(Sse::WrongKey) => (K::BadPassphrase, "wrong_storage_key"),
                ShareFailure::Storage(Sse::RecoveryKey(_)) => (K::BadPassphrase, "bad_recovery_key"),
                ShareFailure::Storage(Sse::BadMac) => (K::InvalidParams, "secret_altered"),
                ShareFailure::Storage(_) => (K::InvalidParams, "bad_key_description"),
                ShareFailure::Document(ShareError::MixedExports { .. }) => {
                    (K::InvalidParams, "mixed_exports")
                }
                ShareFailure::Document(ShareError::Version(_)) => (K::InvalidParams, "newer_format"),
                ShareFailure::Document(_) => (K::InvalidParams, "bad_share_document"),
                ShareFailure::Missing(_) => (K::InvalidParams, "part_missing"),
                ShareFailure::NotForKey { .. } => (K::InvalidParams, "not_for_key"),
                ShareFailure::RolledBack { .. } => (K::InvalidParams, "rolled_back"),
            },
            Error::Storage(_) => (K::StorageError, "write_failed"),
            Error::Damaged { .. } => (K::InternalError, "damaged_file"),
            Error::Internal(_) => (K::InternalError, "internal"),
            Error::RoomLimit { .. } => (K::InvalidParams, "room_limit"),
            Error::Observed { source, .. } => (
                K::BadPdu,
                match source {
                    ObservedError::NotAnObject => "observed_not_an_object",
                    ObservedError::OtherRoom { .. } => "observed_other_room",
                    ObservedError::NoRoomVersion => "observed_no_room_version",
                    ObservedError::TooManyRefs => "observed_malformed",
                    ObservedError::Received(r) => {
                        use cryptoid_protocol::received::ReceivedError as R;
                        match r {
                            R::Shape(_) | R::TooLarge(_) | R::FieldTooLong(_) => "observed_malformed",
                            R::EventIdMismatch { .. } | R::NoEventId(_) => "observed_event_id",
                            R::ContentHash { .. } => "observed_content_hash",
                            R::Signature { .. } => "observed_signature",
                            R::UnknownServerKey(_) => "observed_unknown_server_key",
                        }
                    }
                    ObservedError::Unauthorized(_) => "observed_unauthorized",
                },
            ),
            Error::InBatch { source, .. } => source.identity(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.identity().0
    }

    /// `data.cause`: the variant's stable name.
    pub fn cause(&self) -> &str {
        self.identity().1
    }

    /// The rules behind a refusal by the policy.
    pub fn reasons(&self) -> &[String] {
        match self {
            Error::Refused(Refusal::Policy { reasons } | Refusal::PolicyAfterWait { reasons }) => reasons,
            Error::InBatch { source, .. } => source.reasons(),
            Error::Request(RequestError::Wire(rpc)) => &rpc.data.reasons,
            _ => &[],
        }
    }

    pub fn to_rpc(&self) -> RpcError {
        let (kind, cause) = self.identity();
        RpcError::new(kind, self.to_string()).with_cause(cause).with_reasons(self.reasons().to_vec())
    }
}

fn keystore_identity(e: &KeystoreError) -> (ErrorKind, &'static str) {
    use ErrorKind as K;
    match e {
        KeystoreError::Locked => (K::Locked, "locked"),
        KeystoreError::BadPassphrase => (K::BadPassphrase, "bad_passphrase"),
        KeystoreError::BadPin(_) => (K::BadPassphrase, "bad_pin"),
        KeystoreError::PinBlocked(_) => (K::BadPassphrase, "pin_blocked"),
        KeystoreError::PassphraseRequired(_) => (K::InvalidParams, "passphrase_required"),
        KeystoreError::Invalid(_) => (K::InvalidParams, "bad_backend_params"),
        KeystoreError::Corrupt { .. } => (K::InternalError, "damaged_file"),
        KeystoreError::Unseal => (K::InternalError, "unseal_failed"),
        KeystoreError::Seal => (K::InternalError, "seal_failed"),
        KeystoreError::Io(_) => (K::StorageError, "write_failed"),
        KeystoreError::NoSuchBackend(_) => (K::BackendUnavailable, "no_such_backend"),
        KeystoreError::NotSetUp { .. } => (K::BackendUnavailable, "not_set_up"),
        KeystoreError::NotBuilt { .. } => (K::BackendUnavailable, "not_built"),
        KeystoreError::Unavailable(_) => (K::BackendUnavailable, "token_unavailable"),
        KeystoreError::WrappedBy(_) => (K::InvalidParams, "keystore_wrapped"),
        KeystoreError::ModuleNotAllowed { .. } => (K::BackendUnavailable, "module_not_allowed"),
        KeystoreError::PinNoLongerAccepted(_) => (K::BadPassphrase, "pin_changed"),
        KeystoreError::FirmwareTooOld { .. } => (K::BackendUnavailable, "firmware_too_old"),
        KeystoreError::ManagementKeyUnusable(_) => (K::BackendUnavailable, "management_key_unusable"),
        KeystoreError::SeveralCards(_) => (K::InvalidParams, "several_cards"),
        KeystoreError::PinRequired(_) => (K::PinRequired, "pin_required"),
        KeystoreError::MessageTooLarge(_) => (K::MessageTooLarge, "message_too_large"),
        KeystoreError::TpmUnavailable(_) => (K::BackendUnavailable, "tpm_unavailable"),
        KeystoreError::TpmMismatch => (K::BackendUnavailable, "tpm_mismatch"),
        KeystoreError::PcrChanged(_) => (K::BackendUnavailable, "tpm_pcr_changed"),
        KeystoreError::NoRecovery => (K::InvalidParams, "no_recovery_passphrase"),
        KeystoreError::BadRecoveryPassphrase => (K::BadPassphrase, "bad_recovery_passphrase"),
    }
}

impl From<RpcError> for Error {
    fn from(e: RpcError) -> Error {
        Error::Request(RequestError::Wire(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    /// Every cause this file names is documented in the README's error
    /// table, so the two cannot drift apart.
    #[test]
    fn every_cause_is_documented() {
        let readme = include_str!("../../../README.md");
        let source = include_str!("mod.rs");
        let mut n = 0;
        for line in source.lines().filter(|l| l.contains("=> (K::") && l.trim_end().ends_with("\"),")) {
            let Some(cause) = line.rsplit('"').nth(1) else { continue };
            assert!(readme.contains(&format!("`{cause}`")), "cause {cause:?} is not in the README");
            n += 1;
        }
        assert!(n > 50, "found only {n} causes: has the mapping moved?");
    }
}
