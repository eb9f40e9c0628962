//! `rooms.observe` and the periodic flush of the room view.

use super::Service;
use crate::error::{Error, Result};
use cryptoid_protocol::wire::rooms::{ObserveParams, RoomView};
use cryptoid_protocol::wire::ErrorKind;

impl Service {
    pub fn rooms_observe(&self, p: &ObserveParams) -> Result<RoomView> {
        if !p.room_id.starts_with('!') {
            return Err(Error::new(ErrorKind::InvalidParams, format!("{:?} is not a room ID", p.room_id)));
        }
        self.rooms.observe(p)
    }

    /// Writes the room views changed since the last flush.
    pub fn flush_rooms(&self) -> Result<usize> {
        let seq = self.journal.last_seq();
        self.rooms.flush(seq)
    }
}
