//! Why a PDU is refused before the policy looks at it: the hard checks.

use cryptoid_protocol::event::EventError;

/// A PDU that fails a hard check. Each names the field and what it must be.
#[derive(Debug, thiserror::Error)]
pub enum PduError {
    #[error("the PDU must be a JSON object, not {0}")]
    NotAnObject(&'static str),
    #[error("the PDU is {size} bytes of canonical JSON; at most {max} are signed")]
    TooLarge { size: usize, max: usize },
    #[error("the PDU has no `{0}`")]
    Missing(&'static str),
    #[error("`{field}` must be {expected}, not {found}")]
    WrongType { field: &'static str, expected: &'static str, found: String },
    #[error("`type` is empty")]
    EmptyType,
    #[error("`{field}` lists {count} events; at most {max} are allowed")]
    TooManyRefs { field: &'static str, count: usize, max: usize },
    #[error("`{field}` holds {found}, which is not an event ID of room version {version}")]
    BadRef { field: &'static str, found: String, version: &'static str },
    #[error("`{field}` lists {id} twice")]
    DuplicateRef { field: &'static str, id: String },
    #[error("the PDU already carries a signature by {0}; the agent signs only unsigned PDUs")]
    AlreadySigned(String),
    /// From the event layer: malformed hashes or signatures, a content hash
    /// that does not match, a v12 create that carries a room ID.
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("the server announced event ID {announced} but the PDU hashes to {computed}")]
    EventIdMismatch { announced: String, computed: String },
    #[error("{0}")]
    UnsupportedRoomVersion(String),
    #[error("room {room} is room version {known} to the agent (from its create event, rooms.observe or the first PDU signed there), but this is version {given}: a room has one version")]
    RoomVersionMismatch { room: String, known: String, given: String },
    #[error("PDU {index} is for room {room} but the batch is for {batch_room}")]
    BatchMixesRooms { index: usize, room: String, batch_room: String },
}
