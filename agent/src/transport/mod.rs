//! Transports translate between a wire and the service; they hold no logic
//! of their own. Only the UNIX socket exists so far (D-Bus comes later).

pub mod dbus;
pub mod socket;
