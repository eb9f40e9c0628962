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
    /// What the user asked for: `{type, room_id?, state_key?, membership?,
    /// content?}` (policy); build it with [`intent`].
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
    /// `{"create_room": <the /createRoom request body>}`: the agent derives
    /// the initial state the body implies and refuses a batch that differs
    /// ([`intent::create_room`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBatch {
    pub pdus: Vec<SignedPdu>,
}

/// Builders for `intent`: what the user asked for, which the PDU the
/// homeserver built must match. Pass one with every request you can; the
/// agent refuses a PDU that differs from it.
pub mod intent {
    use crate::json::{Object, Value};

    fn object(pairs: Vec<(&str, Value)>) -> Value {
        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Object>())
    }

    /// A message or other non-state event: `PUT /rooms/{room}/send/{type}`.
    pub fn send(room_id: &str, event_type: &str, content: Value) -> Value {
        object(vec![
            ("room_id", Value::from(room_id)),
            ("type", Value::from(event_type)),
            ("content", content),
        ])
    }

    /// A state event: `PUT /rooms/{room}/state/{type}/{state_key}`.
    pub fn state(room_id: &str, event_type: &str, state_key: &str, content: Value) -> Value {
        object(vec![
            ("room_id", Value::from(room_id)),
            ("type", Value::from(event_type)),
            ("state_key", Value::from(state_key)),
            ("content", content),
        ])
    }

    /// The user's own join with `cryptoid` (the server adds `mxid_mapping`
    /// to the content, so only `membership` is pinned).
    pub fn join(room_id: &str, cryptoid: &str) -> Value {
        object(vec![
            ("room_id", Value::from(room_id)),
            ("type", Value::from("m.room.member")),
            ("state_key", Value::from(cryptoid)),
            ("membership", Value::from("join")),
        ])
    }

    /// A `createRoom` batch: the request body the client sent.
    pub fn create_room(body: Value) -> Value {
        object(vec![("create_room", body)])
    }
}
