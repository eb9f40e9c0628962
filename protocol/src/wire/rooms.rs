//! `rooms.observe`: feed the agent's view of a room (what `/sync` showed),
//! which the anti-replay checks compare `prev_events` and `depth` with and
//! the diffs a person approves are computed against.
//!
//! Two grades of fact: `pdus` are full events in federation format, which
//! the agent verifies (event ID, content hash, signature, authorization
//! rules against their own `auth_events`) and refuses when a check fails;
//! `events` are summaries, which the agent takes as *claimed* by the
//! homeserver (under `room_view = "verified"` they can only make it more
//! careful).

use super::Method;
use crate::json::Value;
use serde::{Deserialize, Serialize};

pub struct Observe;
impl Method for Observe {
    const NAME: &'static str = "rooms.observe";
    type Params = ObserveParams;
    type Result = RoomView;
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserveParams {
    pub room_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_version: Option<String>,
    /// Summaries: claimed facts.
    #[serde(default)]
    pub events: Vec<ObservedEvent>,
    /// Full events in federation format (`/sync`, `/messages` or `/context`
    /// with a filter of `"event_format": "federation"`): verified facts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pdus: Vec<Value>,
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
    /// Of this call's events: how many entered the view verified.
    #[serde(default)]
    pub verified: u64,
    /// Of this call's events: how many are only claimed (summaries, and
    /// full events whose `auth_events` the agent does not hold).
    #[serde(default)]
    pub claimed: u64,
}
