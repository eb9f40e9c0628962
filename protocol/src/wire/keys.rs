//! `keys.*`: room cryptoIDs.

use super::Method;
use serde::{Deserialize, Serialize};

/// What a key is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// A room cryptoID made with `keys.create`.
    Room,
    /// A one-time cryptoID from the pool (`otk.generate`).
    OneTime,
}

/// Life cycle: a room key starts `unbound` (no room yet, as for `createRoom`)
/// or `bound`; a one-time key goes `unpublished` → `published` → `bound`.
/// Deleting a key `retires` it: its secret is destroyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Unbound,
    Unpublished,
    Published,
    Bound,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Unbound => "unbound",
            KeyState::Unpublished => "unpublished",
            KeyState::Published => "published",
            KeyState::Bound => "bound",
            KeyState::Retired => "retired",
        }
    }
}

/// The public view of a key record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub cryptoid: String,
    pub algorithm: String,
    pub kind: KeyKind,
    /// `ed25519:<id>` of a one-time cryptoID (its upload key ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    pub state: KeyState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub backend: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<u64>,
}

/// `keys.create`: a new cryptoID, durable before it is returned.
pub struct Create;
impl Method for Create {
    const NAME: &'static str = "keys.create";
    type Params = CreateParams;
    type Result = KeyInfo;
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateParams {
    /// The room the key is for; absent for `createRoom`, where the room ID
    /// is known only afterwards (the key is bound by signing the room's
    /// `m.room.create`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

/// `keys.list`.
pub struct List;
impl Method for List {
    const NAME: &'static str = "keys.list";
    type Params = ListParams;
    type Result = KeyList;
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<KeyKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<KeyState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

/// Names one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRef {
    pub cryptoid: String,
}

/// `keys.get`.
pub struct Get;
impl Method for Get {
    const NAME: &'static str = "keys.get";
    type Params = KeyRef;
    type Result = KeyInfo;
}

/// `keys.delete`: retire a key and destroy its secret.
pub struct Delete;
impl Method for Delete {
    const NAME: &'static str = "keys.delete";
    type Params = KeyRef;
    type Result = KeyInfo;
}
