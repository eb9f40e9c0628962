//! `sign.*`: signing PDUs the homeserver built.

use super::Method;
use crate::json::Value;
use serde::{Deserialize, Serialize};

/// `sign.pdu`: check and sign one PDU.
pub struct SignPdu;
impl Method for SignPdu {
    const NAME: &'static str = "sign.pdu";
    type Params = SignPduParams;
    type Result = SignedPdu;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignPduParams {
    pub room_version: String,
    /// The PDU as the homeserver returned it.
    pub pdu: Value,
    /// The `event_id` the homeserver announced; must match the recomputed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// What the user asked for: `{type, state_key?, content?}` (policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPdu {
    /// The PDU with `signatures` (and `hashes`, when it had none) added.
    pub pdu: Value,
    pub event_id: String,
    /// The signature, unpadded Base64.
    pub signature: String,
}

/// `sign.batch`: a `createRoom` batch, checked whole, signed in order, all
/// or nothing.
pub struct SignBatch;
impl Method for SignBatch {
    const NAME: &'static str = "sign.batch";
    type Params = SignBatchParams;
    type Result = SignedBatch;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignBatchParams {
    pub room_version: String,
    pub pdus: Vec<Value>,
    /// Event IDs the server announced, one per PDU, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_ids: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBatch {
    pub pdus: Vec<SignedPdu>,
}
