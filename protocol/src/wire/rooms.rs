//! `rooms.observe`: feed the agent's view of a room (what `/sync` showed),
//! which the anti-replay checks compare `prev_events` and `depth` with.

use super::Method;
use crate::json::Value;
use serde::{Deserialize, Serialize};

pub struct Observe;
impl Method for Observe {
    const NAME: &'static str = "rooms.observe";
    type Params = ObserveParams;
    type Result = RoomView;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserveParams {
    pub room_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_version: Option<String>,
    pub events: Vec<ObservedEvent>,
    /// Server signing keys, `{server: {key_id: public key (Base64)}}`, for
    /// checking the server signatures of members' `mxid_mapping`: a mapping
    /// that verifies names its member by Matrix ID; one that does not is
    /// shown as claimed by the homeserver.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub server_keys: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
}

/// An event seen in the room (federation format carries depth and
/// prev_events; `type`/`state_key`/`content` let the agent track power
/// levels).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedEvent {
    pub event_id: String,
    pub depth: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prev_events: Vec<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
}

/// What the agent now knows of the room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomView {
    pub room_id: String,
    pub max_depth: Option<u64>,
    pub known_events: u64,
    pub observed: bool,
}
