//! # cryptoid-protocol
//!
//! The Matrix signing core of cryptoid-agent, with no async runtime and no
//! I/O: everything here is a pure function of its inputs, so the agent, the
//! CLI and client applications all sign byte-identically.
//!
//! ## Layout
//!
//! | module | holds |
//! |---|---|
//! | [`json`] | the canonical value type, the strict parser (duplicate keys, floats, big integers, lone surrogates and deep nesting refused) and the byte-exact canonical serializer |
//! | [`auth`] | the authorization rules per room version, against an event's own `auth_events` |
//! | [`assuan`] | the Assuan protocol of pinentry, without I/O: escaping, the dialog's commands, its answers |
//! | [`base64`] | Matrix unpadded Base64 (lenient decoding, unpadded output) |
//! | [`room_version`] | room versions 1–12, `org.matrix.msc4014`, `org.matrix.msc4080`: event-ID format, redaction generation, the `m.room.member` redaction divergence |
//! | [`received`] | what a server checks of an event it receives: shape, size, event ID, content hash, signatures (cryptoID or server) |
//! | [`redaction`] | the redaction algorithm and the allocation-free writer of the signing bytes |
//! | [`event`] | content hash, reference hash, event ID, prepare/sign/verify of events, signing of plain JSON |
//! | [`keys`] | Ed25519 key pairs, public keys, cryptoIDs, the [`keys::Signer`] trait |
//! | [`secret_storage`] | Matrix secret storage (`m.secret_storage.v1.aes-hmac-sha2`): key checks, recovery keys, passphrases, encrypting secrets |
//! | [`share`] | the document of shared cryptoIDs (MSC4080), split into secret-storage parts |
//! | [`text`] | homeserver strings made safe to show a person (controls and bidi overrides escaped) |
//!
//! ## Signing a PDU returned by the homeserver
//!
//! ```
//! use cryptoid_protocol::{event, json, keys::{KeyPair, CRYPTOID_KEY_ID}, RoomVersion};
//!
//! let key = KeyPair::from_seed(&[1; 32]);
//! let cryptoid = key.cryptoid();
//! let pdu = format!(
//!     r#"{{"type":"m.room.message","room_id":"!r:example.org","sender":"{cryptoid}",
//!         "content":{{"msgtype":"m.text","body":"hi"}},"depth":5,"origin_server_ts":1700000000000,
//!         "prev_events":["$p"],"auth_events":["$a"]}}"#
//! );
//! let pdu = json::from_str(&pdu).unwrap().into_object().unwrap();
//! let rv = RoomVersion::from_id("org.matrix.msc4080").unwrap();
//! let signed = event::hash_and_sign(pdu, &rv, &cryptoid, CRYPTOID_KEY_ID, &key).unwrap();
//! assert!(signed.event_id.unwrap().starts_with('$'));
//! event::verify_event(&signed.event, &rv, &cryptoid, CRYPTOID_KEY_ID, &key.public_key()).unwrap();
//! ```

#![forbid(unsafe_code)]

pub mod assuan;
pub mod auth;
pub mod base64;
pub mod client;
pub mod event;
pub mod json;
pub mod keys;
pub mod received;
pub mod redaction;
pub mod room_version;
pub mod secret_storage;
pub mod share;
pub mod text;
pub mod wire;

pub use room_version::{EventIdFormat, MemberRedaction, RoomVersion, UnknownRoomVersion};
