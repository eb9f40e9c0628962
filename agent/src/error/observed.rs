//! Why `rooms.observe` refuses a full event: the checks a server makes of
//! what it receives. The whole call is refused and nothing of it is kept,
//! so a client learns which event the homeserver got wrong.

use cryptoid_protocol::auth::AuthError;
use cryptoid_protocol::received::ReceivedError;

#[derive(Debug, thiserror::Error)]
pub enum ObservedError {
    #[error("it is not a JSON object")]
    NotAnObject,
    #[error("it is for room {found}, not {room}")]
    OtherRoom { room: String, found: String },
    #[error(
        "the agent does not know the room's version: pass room_version, or the room's m.room.create first"
    )]
    NoRoomVersion,
    #[error("{0}")]
    Received(#[from] ReceivedError),
    #[error("it cites more than 10 auth_events or 20 prev_events, which servers refuse")]
    TooManyRefs,
    #[error("it fails the authorization rules against its own auth_events, so servers reject it: {0}")]
    Unauthorized(AuthError),
}
