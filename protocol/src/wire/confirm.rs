//! `confirm.*`: list and answer pending confirmation requests (the
//! fallback prompt; askpass and the D-Bus prompter are the others). The
//! first answer wins.

use super::{Method, NoParams};
use serde::{Deserialize, Serialize};

pub struct Pending;
impl Method for Pending {
    const NAME: &'static str = "confirm.pending";
    type Params = NoParams;
    type Result = PendingList;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingList {
    pub pending: Vec<PendingConfirmation>,
}

/// One request waiting for the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingConfirmation {
    pub id: u64,
    /// The prompt text: client, room, event type, cryptoID, changes.
    pub prompt: String,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_exe: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cryptoid: Option<String>,
    pub changes: Vec<String>,
    pub reasons: Vec<String>,
    pub expires_in_ms: u64,
    /// Only the agent's own dialog (pinentry, askpass) answers this one:
    /// a client must not offer to answer it (`confirm.answer` is refused).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub person_only: bool,
}

/// A terminal client (`cryptoidctl`) says it asks the person itself, on
/// its own terminal, for the questions its requests raise: while this
/// process lives, the agent does not also start pinentry on that client's
/// terminal or display, so the person sees one question and their first
/// keystroke answers it. Refused (`socket_confirm_off`) where clients may
/// not answer: then the agent's dialog is the only asker.
pub struct AskHere;
impl Method for AskHere {
    const NAME: &'static str = "confirm.ask_here";
    type Params = NoParams;
    type Result = AskHereResult;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AskHereResult {
    /// The process the agent will leave the asking to (the caller).
    pub pid: i32,
}

pub struct Answer;
impl Method for Answer {
    const NAME: &'static str = "confirm.answer";
    type Params = AnswerParams;
    type Result = NoParams;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerParams {
    pub id: u64,
    pub allow: bool,
    /// Remember an approval for (client, room, event type) this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remember_secs: Option<u32>,
}
