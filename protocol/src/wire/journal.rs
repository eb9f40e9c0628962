//! `journal.*`: the hash-chained audit journal.

use super::Method;
use crate::json::Value;
use serde::{Deserialize, Serialize};

/// `journal.tail`: the newest entries, oldest first.
pub struct Tail;
impl Method for Tail {
    const NAME: &'static str = "journal.tail";
    type Params = TailParams;
    type Result = TailResult;
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailParams {
    /// How many entries (default 20, at most 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailResult {
    pub entries: Vec<Value>,
}

/// `journal.verify`: check the whole hash chain.
pub struct Verify;
impl Method for Verify {
    const NAME: &'static str = "journal.verify";
    type Params = super::NoParams;
    type Result = VerifyResult;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResult {
    pub ok: bool,
    pub entries: u64,
    /// What is wrong and where, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
