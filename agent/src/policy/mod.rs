//! Pure decision functions over PDUs: no I/O, no clock of their own.
//!
//! For now: matching a PDU against the client's stated intent. The rule
//! engine (types, rooms, anti-replay, time, clients, rates, confirmations)
//! lands with the policy issue.

pub mod intent;
