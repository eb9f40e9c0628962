//! `share.*`: a user's cryptoIDs moved between their devices through Matrix
//! secret storage (see [`crate::share`] for the document,
//! [`crate::secret_storage`] for the encryption).

use super::keys::KeyKind;
use super::Method;
use crate::json::Value;
use crate::secret_storage::KeyDescription;
use serde::{Deserialize, Serialize};

/// `share.export`: the account data to store (one entry per part), made
/// from every shareable key, encrypted under the user's secret-storage key.
pub struct Export;
impl Method for Export {
    const NAME: &'static str = "share.export";
    const SECRET_PARAMS: bool = true;
    type Params = ExportParams;
    type Result = ExportResult;
}

/// `share.import`: merges the keys of stored account data; never replaces
/// a key unless asked.
pub struct Import;
impl Method for Import {
    const NAME: &'static str = "share.import";
    const SECRET_PARAMS: bool = true;
    type Params = ImportParams;
    type Result = ImportReport;
}

/// The secret-storage key, as a recovery key or as the passphrase it was
/// derived from (exactly one), and the key it must be.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<String>,
    /// The key's ID (`m.secret_storage.default_key`'s `key`).
    pub key_id: String,
    /// The content of `m.secret_storage.key.<key_id>`.
    pub key_description: KeyDescription,
}

impl std::fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log line through Debug.
        f.debug_struct("StorageKey")
            .field("recovery_key", &self.recovery_key.as_ref().map(|_| "<redacted>"))
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<redacted>"))
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Drop for StorageKey {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.recovery_key.zeroize();
        self.passphrase.zeroize();
    }
}

/// `share.export {recovery_key | passphrase, key_id, key_description}`.
pub type ExportParams = StorageKey;

/// One account-data event: its type and content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountData {
    #[serde(rename = "type")]
    pub event_type: String,
    pub content: Value,
}

/// A key that is not in the export, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Left {
    pub cryptoid: String,
    pub kind: KeyKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
    pub backend: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportResult {
    /// PUT each to `/user/{userId}/account_data/{type}`, all of them.
    pub account_data: Vec<AccountData>,
    /// Room keys exported.
    pub rooms: u64,
    /// Published one-time keys exported.
    pub one_time: u64,
    /// Keys that stay on this device (hardware keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stays: Vec<Left>,
    /// Keys not shared for another reason (not yet bound or published).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Left>,
}

/// `share.import {key: {recovery_key | passphrase, key_id,
/// key_description}, account_data, replace?}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    pub key: StorageKey,
    /// The account data read back: part 0 (`org.matrix.msc4080.cryptoids`)
    /// and every part it names.
    pub account_data: Vec<AccountData>,
    /// Replace a local key whose room has another key in the import (the
    /// local one is retired). Always confirmed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace: bool,
}

/// A key of the import and what became of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Imported {
    pub cryptoid: String,
    pub kind: KeyKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
}

/// A room that has one key here and another in the import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conflict {
    pub room_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The key this device has (kept, unless replaced).
    pub local: String,
    /// The key the import has.
    pub remote: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportReport {
    /// When the imported export was made (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_at: Option<u64>,
    /// New keys, durably added.
    pub added: Vec<Imported>,
    /// Keys this device already had, unchanged.
    pub same: Vec<Imported>,
    /// Rooms whose key differs: the local key was kept.
    pub conflicts: Vec<Conflict>,
    /// Rooms whose local key was retired for the imported one (`replace`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<Conflict>,
    /// Keys of the import not taken, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Left>,
}
