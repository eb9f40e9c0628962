//! Why sharing cryptoIDs through secret storage failed.

use cryptoid_protocol::secret_storage::SecretStorageError;
use cryptoid_protocol::share::ShareError;

#[derive(Debug, thiserror::Error)]
pub enum ShareFailure {
    #[error("give the recovery key or the passphrase of the secret-storage key, exactly one")]
    OneSecret,
    #[error(transparent)]
    Storage(#[from] SecretStorageError),
    #[error(transparent)]
    Document(#[from] ShareError),
    #[error(
        "the account data has no {0}: push from a device that has the keys first (`cryptoidctl share push`)"
    )]
    Missing(String),
    #[error("{name} is not encrypted for secret-storage key {key_id:?}: push again from a device that has the keys, under the current default key")]
    NotForKey { name: String, key_id: String },
    #[error("the shared cryptoIDs served are an export made at {exported_at} ms, older than one this device imported before ({newest} ms): a rollback by the homeserver? push again from a device that has the keys")]
    RolledBack { exported_at: u64, newest: u64 },
}
