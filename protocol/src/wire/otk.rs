//! `otk.*`: the pool of one-time cryptoIDs handed out on invites.

use super::keys::{KeyInfo, KeyList};
use super::Method;
use crate::json::Value;
use serde::{Deserialize, Serialize};

/// Most one-time cryptoIDs one `otk.generate` makes.
pub const MAX_GENERATE: u32 = 1000;

/// `otk.generate`: new one-time cryptoIDs, each durable before returned.
pub struct Generate;
impl Method for Generate {
    const NAME: &'static str = "otk.generate";
    type Params = GenerateParams;
    type Result = KeyList;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateParams {
    pub count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

/// `otk.upload_body`: `{"one_time_cryptoids": {"ed25519:<id>": {"key": "<cryptoID>"}}}`
/// for every unpublished one-time cryptoID, ready for `/keys/upload`.
pub struct UploadBody;
impl Method for UploadBody {
    const NAME: &'static str = "otk.upload_body";
    type Params = super::NoParams;
    type Result = Value;
}

/// `otk.mark_published`: the server has these keys now.
pub struct MarkPublished;
impl Method for MarkPublished {
    const NAME: &'static str = "otk.mark_published";
    type Params = MarkPublishedParams;
    type Result = KeyList;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkPublishedParams {
    pub cryptoids: Vec<String>,
}

/// `otk.claim`: bind a one-time cryptoID to the room that invited with it
/// (from `rooms.invite.<room>.one_time_cryptoid`). Atomic; at most once.
pub struct Claim;
impl Method for Claim {
    const NAME: &'static str = "otk.claim";
    type Params = ClaimParams;
    type Result = KeyInfo;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimParams {
    pub cryptoid: String,
    pub room_id: String,
}
