//! `rooms.observe` and the periodic flush of the room view.

use super::Service;
use crate::error::{RequestError, Result};
use cryptoid_protocol::wire::rooms::{ObserveParams, RoomView};

impl Service {
    pub fn rooms_observe(&self, p: &ObserveParams) -> Result<RoomView> {
        if !p.room_id.starts_with('!') {
            return Err(RequestError::param("room_id", format!("{:?} is not a room ID", p.room_id)).into());
        }
        self.rooms.observe(p)
    }

    /// Writes the room views changed since the last flush.
    pub fn flush_rooms(&self) -> Result<usize> {
        let seq = self.journal.last_seq();
        self.rooms.flush(seq)
    }
}
