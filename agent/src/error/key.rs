//! Why a key cannot be found or used for what was asked.

/// A key that is missing, or in a state that forbids the request.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no key with cryptoID {0}")]
    Unknown(String),
    #[error("sender {0} is not a cryptoID this agent holds")]
    SenderNotHeld(String),
    #[error("cryptoID {0} was deleted meanwhile; nothing was signed")]
    DeletedMeanwhile(String),
    #[error("{0:?} is not a cryptoID ({1})")]
    Malformed(String, String),
    #[error(
        "cryptoID {0} is not bound to a room yet; only its own join (or, for a new room key, m.room.create) can bind it"
    )]
    Unbound(String),
    #[error("cryptoID {cryptoid} belongs to room {bound}, not {wanted}")]
    OtherRoom { cryptoid: String, bound: String, wanted: String },
    #[error("cryptoID {cryptoid} is already bound to room {room}")]
    AlreadyBound { cryptoid: String, room: String },
    /// Retired, or (for publishing) already bound.
    #[error("cryptoID {cryptoid} is {state} and cannot {action}")]
    WrongState { cryptoid: String, state: &'static str, action: &'static str },
    #[error("room {room} already has cryptoID {other} for this user; delete it first")]
    RoomTaken { room: String, other: String },
    #[error("{0} is not a one-time cryptoID")]
    NotOneTime(String),
    #[error("cryptoID {cryptoid} changed while the request waited (now {state}); nothing was signed")]
    ChangedMeanwhile { cryptoid: String, state: &'static str },
}
