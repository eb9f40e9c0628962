//! Hashing, naming, signing and verifying events and JSON objects (spec
//! server-server API "Signing Events", appendices "Signing JSON").
//!
//! Signing is split in two so that the key can live anywhere (memory, HSM,
//! YubiKey): [`prepare`] checks and completes the hashes and yields the exact
//! bytes to sign plus the event ID; [`PreparedEvent::attach_signature`] adds
//! the signature. [`hash_and_sign`] does both with an in-memory key.

use crate::base64;
use crate::json::{write_object_filtered, Object, Value};
use crate::keys::{KeyPair, PublicKey, Signer, VerifyFailure};
use crate::redaction::write_signing_bytes;
use crate::room_version::{EventIdFormat, RoomVersion};
use sha2::{Digest, Sha256};

/// Why an event cannot be hashed, named or signed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("`hashes` must be an object with a string `sha256`")]
    MalformedHashes,
    #[error("hashes.sha256 is {found} but the content hashes to {computed}: the event was altered after hashing (remove `hashes` to have it computed)")]
    HashMismatch { computed: String, found: String },
    #[error("room version {0} carries the event ID in the event, and this one has no string `event_id`")]
    MissingEventId(&'static str),
    #[error("`signatures` must be an object of objects of strings")]
    MalformedSignatures,
    #[error("room version {0}'s m.room.create must not carry a `room_id`: the room ID is the hash of the create event (a server that sends one asks for a signature over other bytes than the room's servers check)")]
    CreateCarriesRoomId(&'static str),
}

/// Whether `event` is the `m.room.create` of its room (type and empty
/// state key).
pub fn is_create(event: &Object) -> bool {
    event.get("type").and_then(Value::as_str) == Some("m.room.create")
        && event.get("state_key").and_then(Value::as_str) == Some("")
}

/// Why an event or object does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no signature by {entity} with key {key_id}")]
    MissingSignature { entity: String, key_id: String },
    #[error("the signature by {entity} is not valid Base64 of 64 bytes")]
    BadSignatureEncoding { entity: String },
    #[error("the event has no hashes.sha256")]
    MissingHash,
    #[error("content hash mismatch: hashes.sha256 is {found} but the event hashes to {computed}")]
    HashMismatch { computed: String, found: String },
    #[error("{0}")]
    Malformed(#[from] EventError),
    #[error("{0}")]
    Signature(#[from] VerifyFailure),
}

/// SHA-256 of the canonical JSON of `event` without `unsigned`, `signatures`
/// and `hashes`: the value of `hashes.sha256`. Covers the unredacted event.
pub fn content_hash(event: &Object) -> [u8; 32] {
    let mut buf = Vec::with_capacity(1024);
    write_object_filtered(&mut buf, event, |k| !matches!(k, "unsigned" | "signatures" | "hashes"));
    Sha256::digest(&buf).into()
}

/// The exact bytes signed for `event` (and hashed for its reference hash):
/// canonical JSON of the redacted event without `signatures` and `unsigned`.
pub fn signing_bytes(event: &Object, rv: &RoomVersion) -> Vec<u8> {
    let mut buf = Vec::with_capacity(512);
    write_signing_bytes(&mut buf, event, rv);
    buf
}

/// The reference hash: SHA-256 of [`signing_bytes`].
pub fn reference_hash(event: &Object, rv: &RoomVersion) -> [u8; 32] {
    Sha256::digest(signing_bytes(event, rv)).into()
}

/// The event ID of `event` in room version `rv`. For v1–v2 it is the
/// `event_id` the event carries; from v3 on it is derived from the reference
/// hash, so signing does not change it.
pub fn event_id(event: &Object, rv: &RoomVersion) -> Result<String, EventError> {
    event_id_from_signing_bytes(event, rv, &signing_bytes(event, rv))
        .ok_or(EventError::MissingEventId(rv.id()))
}

/// `None` only for a v1–v2 event that carries no `event_id`.
fn event_id_from_signing_bytes(event: &Object, rv: &RoomVersion, bytes: &[u8]) -> Option<String> {
    let encode = match rv.event_id_format() {
        EventIdFormat::Carried => {
            return event.get("event_id").and_then(Value::as_str).map(str::to_owned);
        }
        EventIdFormat::Base64Standard => base64::encode,
        EventIdFormat::Base64UrlSafe => base64::encode_url_safe,
    };
    let hash: [u8; 32] = Sha256::digest(bytes).into();
    Some(format!("${}", encode(&hash)))
}

/// The `hashes.sha256` an event carries, if any, and whether it is well formed.
fn carried_hash(event: &Object) -> Result<Option<&str>, EventError> {
    match event.get("hashes") {
        None => Ok(None),
        Some(Value::Object(h)) => match h.get("sha256") {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(EventError::MalformedHashes),
        },
        Some(_) => Err(EventError::MalformedHashes),
    }
}

/// An event whose hashes are checked and complete, ready to be signed.
#[derive(Clone, Debug)]
pub struct PreparedEvent {
    event: Object,
    signing_bytes: Vec<u8>,
    event_id: Option<String>,
    hash_added: bool,
}

/// Checks and completes `hashes.sha256` and computes the signing bytes and
/// event ID.
///
/// A `hashes.sha256` that is present must equal the recomputed content hash:
/// it is never silently replaced, because a server that changed the event
/// after hashing it changed what the user would sign. An absent one is added.
pub fn prepare(mut event: Object, rv: &RoomVersion) -> Result<PreparedEvent, EventError> {
    if rv.room_id_is_create_hash() && event.contains_key("room_id") && is_create(&event) {
        return Err(EventError::CreateCarriesRoomId(rv.id()));
    }
    let computed = content_hash(&event);
    let hash_added = match carried_hash(&event)? {
        Some(found) => {
            // Compare bytes, so a padded but equal hash is accepted as sent.
            if base64::decode(found).ok().as_deref() != Some(&computed[..]) {
                return Err(EventError::HashMismatch {
                    computed: base64::encode(&computed),
                    found: found.to_owned(),
                });
            }
            false
        }
        None => {
            let hashes = event.entry("hashes".to_owned()).or_insert_with(|| Value::Object(Object::new()));
            let Value::Object(hashes) = hashes else {
                return Err(EventError::MalformedHashes);
            };
            hashes.insert("sha256".to_owned(), Value::String(base64::encode(&computed)));
            true
        }
    };
    let signing_bytes = signing_bytes(&event, rv);
    let event_id = event_id_from_signing_bytes(&event, rv, &signing_bytes);
    Ok(PreparedEvent { event, signing_bytes, event_id, hash_added })
}

impl PreparedEvent {
    /// The bytes to sign: canonical JSON of the redacted event.
    pub fn signing_bytes(&self) -> &[u8] {
        &self.signing_bytes
    }

    /// The event ID; `None` only for a v1–v2 event without `event_id`.
    pub fn event_id(&self) -> Option<&str> {
        self.event_id.as_deref()
    }

    /// The event with complete hashes (not yet signed).
    pub fn event(&self) -> &Object {
        &self.event
    }

    /// Whether `hashes.sha256` was absent and has been added.
    pub fn hash_added(&self) -> bool {
        self.hash_added
    }

    /// Adds `signatures[entity][key_id]` and returns the signed event.
    pub fn attach_signature(
        mut self,
        entity: &str,
        key_id: &str,
        signature: &[u8; 64],
    ) -> Result<Object, EventError> {
        add_signature(&mut self.event, entity, key_id, signature)?;
        Ok(self.event)
    }
}

fn add_signature(
    obj: &mut Object,
    entity: &str,
    key_id: &str,
    signature: &[u8; 64],
) -> Result<(), EventError> {
    let sigs = obj.entry("signatures".to_owned()).or_insert_with(|| Value::Object(Object::new()));
    let Value::Object(sigs) = sigs else {
        return Err(EventError::MalformedSignatures);
    };
    let by_entity = sigs.entry(entity.to_owned()).or_insert_with(|| Value::Object(Object::new()));
    let Value::Object(by_entity) = by_entity else {
        return Err(EventError::MalformedSignatures);
    };
    by_entity.insert(key_id.to_owned(), Value::String(base64::encode(signature)));
    Ok(())
}

/// A signed event with its ID and the signature added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedEvent {
    pub event: Object,
    /// `None` only for a v1–v2 event without `event_id`.
    pub event_id: Option<String>,
    pub signature: [u8; 64],
}

/// Hashes, redacts and signs `event` with `signer` as `entity`/`key_id`.
pub fn hash_and_sign<S: Signer>(
    event: Object,
    rv: &RoomVersion,
    entity: &str,
    key_id: &str,
    signer: &S,
) -> Result<SignedEvent, SignError<S::Error>> {
    let prepared = prepare(event, rv)?;
    let signature = signer.sign(prepared.signing_bytes()).map_err(SignError::Signer)?;
    let event_id = prepared.event_id.clone();
    let event = prepared.attach_signature(entity, key_id, &signature)?;
    Ok(SignedEvent { event, event_id, signature })
}

/// Signing failed in the event or in the signer.
#[derive(Debug, thiserror::Error)]
pub enum SignError<E> {
    #[error("{0}")]
    Event(#[from] EventError),
    #[error("signer failed: {0}")]
    Signer(E),
}

fn find_signature(obj: &Object, entity: &str, key_id: &str) -> Result<[u8; 64], VerifyError> {
    let missing = || VerifyError::MissingSignature { entity: entity.to_owned(), key_id: key_id.to_owned() };
    let sig = obj
        .get("signatures")
        .and_then(Value::as_object)
        .and_then(|s| s.get(entity))
        .and_then(Value::as_object)
        .and_then(|s| s.get(key_id))
        .and_then(Value::as_str)
        .ok_or_else(missing)?;
    base64::decode_array::<64>(sig)
        .map_err(|_| VerifyError::BadSignatureEncoding { entity: entity.to_owned() })
}

/// Checks an event's content hash and its signature by `entity`/`key_id`.
pub fn verify_event(
    event: &Object,
    rv: &RoomVersion,
    entity: &str,
    key_id: &str,
    key: &PublicKey,
) -> Result<(), VerifyError> {
    let signature = find_signature(event, entity, key_id)?;
    let found = carried_hash(event)?.ok_or(VerifyError::MissingHash)?;
    let computed = content_hash(event);
    if base64::decode(found).ok().as_deref() != Some(&computed[..]) {
        return Err(VerifyError::HashMismatch {
            computed: base64::encode(&computed),
            found: found.to_owned(),
        });
    }
    key.verify(&signing_bytes(event, rv), &signature)?;
    Ok(())
}

/// Canonical JSON of `obj` without `signatures` and `unsigned`: what
/// [`sign_json`] signs.
pub fn json_signing_bytes(obj: &Object) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    write_object_filtered(&mut buf, obj, |k| !matches!(k, "signatures" | "unsigned"));
    buf
}

/// Signs a JSON object (not an event: no hashing, no redaction), as for
/// server keys or `mxid_mapping`. `unsigned` is left in place.
pub fn sign_json(
    obj: &mut Object,
    entity: &str,
    key_id: &str,
    key: &KeyPair,
) -> Result<[u8; 64], EventError> {
    let signature = key.sign(&json_signing_bytes(obj));
    add_signature(obj, entity, key_id, &signature)?;
    Ok(signature)
}

/// Verifies a JSON object's signature by `entity`/`key_id`.
pub fn verify_json(obj: &Object, entity: &str, key_id: &str, key: &PublicKey) -> Result<(), VerifyError> {
    let signature = find_signature(obj, entity, key_id)?;
    key.verify(&json_signing_bytes(obj), &signature)?;
    Ok(())
}
