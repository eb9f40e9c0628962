//! `rooms.observe` and the periodic flush of the room view.

use super::Service;
use crate::error::{RequestError, Result};
use cryptoid_protocol::wire::rooms::{ObserveParams, RoomView};

/// Events in one observe past which freed memory is handed back.
const TRIM_AFTER: usize = 1000;

/// A large observe happened since the last tick: its request (parsed
/// trees of megabytes) is freed only after the call returns, so the memory
/// is handed back at the next one-second tick, not inside the call.
static TRIM_PENDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A large observe parses megabytes into short-lived trees; glibc keeps
/// what they freed in its arenas, so RSS after a feed would stay far above
/// what the view holds (and that memory may be locked by mlockall).
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the system; it
    // touches no memory the program holds.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Service {
    pub fn rooms_observe(&self, p: ObserveParams) -> Result<RoomView> {
        if !p.room_id.starts_with('!') {
            return Err(RequestError::param("room_id", format!("{:?} is not a room ID", p.room_id)).into());
        }
        if p.events.len() + p.pdus.len() >= TRIM_AFTER {
            TRIM_PENDING.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.rooms.observe(p, self.config.policy.room_view)
    }

    /// Writes the room views changed since the last flush.
    /// After a storage error, first reopens the view and replays the
    /// journal since its durable marker.
    pub fn flush_rooms(&self) -> Result<usize> {
        if TRIM_PENDING.swap(false, std::sync::atomic::Ordering::Relaxed) {
            give_back_freed_memory();
        }
        if self.rooms.is_broken() {
            self.rooms.recover(|seq| Ok(self.journal.entries_since(seq)?))?;
        }
        let seq = self.journal.last_seq();
        self.rooms.flush(seq)
    }
}
