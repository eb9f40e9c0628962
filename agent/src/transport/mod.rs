//! Transports translate between a wire and the method table
//! ([`crate::rpc`]); they hold no logic of their own: the UNIX socket
//! (JSON-RPC lines, peer credentials, timeouts) and D-Bus
//! (`org.cryptoid.Agent1` on the session bus, caller identity from the bus),
//! and on that bus the desktop notifications ([`notify`]).

pub mod dbus;
pub mod notify;
pub mod socket;
