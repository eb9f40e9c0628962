//! What a server checks of an event it receives before the authorization
//! rules ([`crate::auth`]): its shape and size limits, its event ID (the
//! reference hash from v3 on), its content hash and its signatures.
//!
//! - **Signatures.** In the cryptoID versions the sender *is* the key: the
//!   event must carry a valid signature by the sender under `ed25519:1`,
//!   and no server key is needed. In the other versions the sender's server
//!   must have signed (v1–v2: also the server of the event ID; a restricted
//!   join: also the authorising member's server), with a key the caller
//!   knows ([`ServerKeys`]).
//! - **A content hash that does not match** is how a server sees an event
//!   redacted in transit. A server redacts such an event and goes on; so
//!   does this check, but only for an event already in its redacted form
//!   (what a server serves for a redacted event). Any other mismatch is
//!   content the signatures do not cover, and is refused.

use crate::base64;
use crate::event::{content_hash, signing_bytes};
use crate::json::{write_object_filtered, Object, Value};
use crate::keys::PublicKey;
use crate::room_version::{EventIdFormat, RoomVersion};

/// The largest PDU servers accept (canonical JSON bytes).
pub const MAX_PDU_BYTES: usize = 65_536;

/// Server signing keys by server name: `(key ID, key)` pairs.
pub type ServerKeys<'a> = dyn Fn(&str) -> Vec<(String, PublicKey)> + 'a;

/// A received event that passed: its event ID, and whether it arrived in
/// its redacted form (its content is then what the redaction kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub event_id: String,
    pub redacted: bool,
}

/// Why a received event is refused. Each names the check that failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReceivedError {
    #[error("the event lacks `{0}` of the right type (a PDU in federation format has type, sender, room_id, content, depth, prev_events, auth_events, origin_server_ts, hashes and signatures): ask the homeserver with a filter of \"event_format\": \"federation\"")]
    Shape(&'static str),
    #[error("the event is {0} bytes of canonical JSON; servers accept at most 65536")]
    TooLarge(usize),
    #[error("`{0}` is longer than 255 bytes")]
    FieldTooLong(&'static str),
    #[error("the event says its ID is {given} but its reference hash makes it {computed}")]
    EventIdMismatch { given: String, computed: String },
    #[error("room version {0} carries the event ID in the event, and this one has none")]
    NoEventId(&'static str),
    #[error("the content hash does not match (hashes.sha256 {found}, computed {computed}): the content was changed after it was signed")]
    ContentHash { found: String, computed: String },
    #[error("no valid signature by {entity}: {why}")]
    Signature { entity: String, why: String },
    #[error("no signing key of server {0} is known: pass its keys in server_keys (its /_matrix/key/v2/server answer)")]
    UnknownServerKey(String),
}

type Result<T> = std::result::Result<T, ReceivedError>;

/// Checks a received event in room version `rv`; `server_keys` looks up a
/// server's keys (unused in the cryptoID versions).
pub fn check(event: &Object, rv: &RoomVersion, server_keys: &ServerKeys<'_>) -> Result<Received> {
    // v3 on: a carried `event_id` (Synapse's federation format adds one)
    // is not part of what is hashed.
    if rv.event_id_format() != EventIdFormat::Carried && event.contains_key("event_id") {
        return check_owned(event.clone(), rv, server_keys).map(|(r, _)| r);
    }
    check_as_signed(event, None, rv, server_keys)
}

/// [`check`] of an event the caller gives away: a carried `event_id` (v3
/// on) is taken out in place rather than by copying the event, compared
/// with the hash, and the event is handed back as signed (without it).
pub fn check_owned(
    mut event: Object,
    rv: &RoomVersion,
    server_keys: &ServerKeys<'_>,
) -> Result<(Received, Object)> {
    let carried = match rv.event_id_format() {
        EventIdFormat::Carried => None,
        _ => event.remove("event_id"),
    };
    let carried = match &carried {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(ReceivedError::Shape("event_id")),
        None => None,
    };
    let r = check_as_signed(&event, carried, rv, server_keys)?;
    Ok((r, event))
}

/// The checks of an event as signed; `carried_v3` is an `event_id` (v3 on)
/// taken out of it, which must agree with the hash.
fn check_as_signed(
    event: &Object,
    carried_v3: Option<&str>,
    rv: &RoomVersion,
    server_keys: &ServerKeys<'_>,
) -> Result<Received> {
    check_shape(event, rv)?;
    let mut canonical = Vec::with_capacity(1024);
    write_object_filtered(&mut canonical, event, |k| k != "unsigned");
    if canonical.len() > MAX_PDU_BYTES {
        return Err(ReceivedError::TooLarge(canonical.len()));
    }
    let carried = carried_v3.or_else(|| event.get("event_id").and_then(Value::as_str));
    let bytes = signing_bytes(event, rv);
    let event_id = match rv.event_id_format() {
        EventIdFormat::Carried => carried.ok_or(ReceivedError::NoEventId(rv.id()))?.to_owned(),
        EventIdFormat::Base64Standard => format!("${}", base64::encode(&sha256(&bytes))),
        EventIdFormat::Base64UrlSafe => format!("${}", base64::encode_url_safe(&sha256(&bytes))),
    };
    if let Some(given) = carried {
        if given != event_id {
            return Err(ReceivedError::EventIdMismatch { given: given.to_owned(), computed: event_id });
        }
    }
    if event_id.len() > 255 {
        return Err(ReceivedError::FieldTooLong("event_id"));
    }
    let found = event
        .get("hashes")
        .and_then(Value::as_object)
        .and_then(|h| h.get("sha256"))
        .and_then(Value::as_str)
        .ok_or(ReceivedError::Shape("hashes.sha256"))?;
    let computed = content_hash(event);
    let redacted = if base64::decode(found).ok().as_deref() == Some(&computed[..]) {
        false
    } else {
        let mut whole = Vec::with_capacity(bytes.len());
        write_object_filtered(&mut whole, event, |k| !matches!(k, "signatures" | "unsigned"));
        if whole != bytes {
            return Err(ReceivedError::ContentHash {
                found: found.to_owned(),
                computed: base64::encode(&computed),
            });
        }
        true
    };
    check_signatures(event, &event_id, rv, &bytes, server_keys)?;
    Ok(Received { event_id, redacted })
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

fn check_shape(event: &Object, rv: &RoomVersion) -> Result<()> {
    let str_field = |k: &'static str| event.get(k).and_then(Value::as_str).ok_or(ReceivedError::Shape(k));
    let ty = str_field("type")?;
    let sender = str_field("sender")?;
    let v12_create = rv.room_id_is_create_hash() && crate::event::is_create(event);
    let room = if v12_create { "" } else { str_field("room_id")? };
    if !matches!(event.get("content"), Some(Value::Object(_))) {
        return Err(ReceivedError::Shape("content"));
    }
    for k in ["depth", "origin_server_ts"] {
        if event.get(k).and_then(Value::as_int).is_none() {
            return Err(ReceivedError::Shape(if k == "depth" { "depth" } else { "origin_server_ts" }));
        }
    }
    for k in ["prev_events", "auth_events"] {
        if !matches!(event.get(k), Some(Value::Array(_))) {
            return Err(ReceivedError::Shape(if k == "prev_events" { "prev_events" } else { "auth_events" }));
        }
    }
    if !matches!(event.get("signatures"), Some(Value::Object(_))) {
        return Err(ReceivedError::Shape("signatures"));
    }
    if event.contains_key("state_key") && event.get("state_key").and_then(Value::as_str).is_none() {
        return Err(ReceivedError::Shape("state_key"));
    }
    for (name, v) in [("sender", sender), ("room_id", room), ("type", ty)] {
        if v.len() > 255 {
            return Err(ReceivedError::FieldTooLong(name));
        }
    }
    if event.get("state_key").and_then(Value::as_str).is_some_and(|s| s.len() > 255) {
        return Err(ReceivedError::FieldTooLong("state_key"));
    }
    Ok(())
}

/// The signature of `entity` under `key_id`, decoded.
fn signature_of(event: &Object, entity: &str, key_id: &str) -> Option<[u8; 64]> {
    let s = event.get("signatures")?.as_object()?.get(entity)?.as_object()?.get(key_id)?.as_str()?;
    base64::decode_array::<64>(s).ok()
}

fn check_signatures(
    event: &Object,
    event_id: &str,
    rv: &RoomVersion,
    bytes: &[u8],
    server_keys: &ServerKeys<'_>,
) -> Result<()> {
    let sender = event.get("sender").and_then(Value::as_str).unwrap_or("");
    if rv.uses_cryptoids() {
        let fail = |why: String| ReceivedError::Signature { entity: sender.to_owned(), why };
        let key = PublicKey::from_base64(sender).map_err(|_| fail("the sender is not a cryptoID".into()))?;
        let sig = signature_of(event, sender, crate::keys::CRYPTOID_KEY_ID)
            .ok_or_else(|| fail("the event carries no signature by its sender".into()))?;
        return key.verify(bytes, &sig).map_err(|e| fail(e.to_string()));
    }
    let domain = |id: &str| id.split_once(':').map(|(_, d)| d.to_owned());
    let content = event.get("content").and_then(Value::as_object);
    let membership = content.and_then(|c| c.get("membership")).and_then(Value::as_str);
    let is_member = event.get("type").and_then(Value::as_str) == Some("m.room.member");
    let via_3pid = is_member
        && membership == Some("invite")
        && content.is_some_and(|c| c.contains_key("third_party_invite"));
    let mut servers: Vec<String> = Vec::new();
    if !via_3pid {
        servers.push(domain(sender).ok_or_else(|| ReceivedError::Signature {
            entity: sender.to_owned(),
            why: "the sender names no server".into(),
        })?);
    }
    if rv.event_id_format() == EventIdFormat::Carried {
        servers.push(domain(event_id).ok_or_else(|| ReceivedError::Signature {
            entity: event_id.to_owned(),
            why: "the event ID names no server".into(),
        })?);
    }
    if rv.has_restricted_joins() && is_member && membership == Some("join") {
        if let Some(by) =
            content.and_then(|c| c.get("join_authorised_via_users_server")).and_then(Value::as_str)
        {
            servers.extend(domain(by));
        }
    }
    servers.sort();
    servers.dedup();
    for server in servers {
        let keys = server_keys(&server);
        if keys.is_empty() {
            return Err(ReceivedError::UnknownServerKey(server));
        }
        let ok = keys.iter().any(|(id, key)| {
            signature_of(event, &server, id).is_some_and(|sig| key.verify(bytes, &sig).is_ok())
        });
        if !ok {
            return Err(ReceivedError::Signature {
                entity: server,
                why: "none of its known keys signed the event".into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::hash_and_sign;
    use crate::json::from_str;
    use crate::keys::{KeyPair, CRYPTOID_KEY_ID};

    fn signed(content: &str) -> (Object, KeyPair) {
        let key = KeyPair::from_seed(&[7; 32]);
        let id = key.cryptoid();
        let pdu = from_str(&format!(
            r#"{{"type":"m.room.member","state_key":"{id}","room_id":"!r:x","sender":"{id}","content":{content},"depth":3,"origin_server_ts":1,"prev_events":["$p"],"auth_events":["$a"]}}"#
        ))
        .expect("json")
        .into_object()
        .expect("object");
        let s = hash_and_sign(pdu, &RoomVersion::MSC4080, &id, CRYPTOID_KEY_ID, &key).expect("sign");
        (s.event, key)
    }

    fn none(_: &str) -> Vec<(String, PublicKey)> {
        Vec::new()
    }

    #[test]
    fn a_cryptoid_signed_event_passes_and_its_id_is_the_reference_hash() {
        let (e, _) = signed(r#"{"membership":"join","displayname":"A"}"#);
        let r = check(&e, &RoomVersion::MSC4080, &none).expect("passes");
        assert_eq!(r.event_id, crate::event::event_id(&e, &RoomVersion::MSC4080).expect("id"));
        assert!(!r.redacted);
    }

    #[test]
    fn changed_content_is_refused_and_its_redacted_form_is_accepted_as_redacted() {
        let (mut e, _) = signed(r#"{"membership":"join","displayname":"A"}"#);
        let mut forged = e.clone();
        forged
            .get_mut("content")
            .and_then(Value::as_object_mut)
            .expect("content")
            .insert("displayname".into(), "B".into());
        assert!(matches!(
            check(&forged, &RoomVersion::MSC4080, &none),
            Err(ReceivedError::ContentHash { .. })
        ));
        // A server's redacted copy: content pruned, hashes and signatures kept.
        e.get_mut("content").and_then(Value::as_object_mut).expect("content").remove("displayname");
        assert!(check(&e, &RoomVersion::MSC4080, &none).expect("redacted copy").redacted);
        // Forged power in the kept keys breaks the signature.
        e.get_mut("content")
            .and_then(Value::as_object_mut)
            .expect("content")
            .insert("membership".into(), "ban".into());
        assert!(matches!(check(&e, &RoomVersion::MSC4080, &none), Err(ReceivedError::Signature { .. })));
    }

    #[test]
    fn a_wrong_carried_event_id_or_another_signer_is_refused() {
        let (e, _) = signed(r#"{"membership":"join"}"#);
        let mut wrong = e.clone();
        wrong.insert("event_id".into(), "$notit".into());
        assert!(matches!(
            check(&wrong, &RoomVersion::MSC4080, &none),
            Err(ReceivedError::EventIdMismatch { .. })
        ));
        let mut other = e.clone();
        let stranger = KeyPair::from_seed(&[9; 32]).cryptoid();
        other.insert("sender".into(), stranger.into());
        assert!(matches!(check(&other, &RoomVersion::MSC4080, &none), Err(ReceivedError::Signature { .. })));
        let mut missing = e;
        missing.remove("hashes");
        assert_eq!(check(&missing, &RoomVersion::MSC4080, &none), Err(ReceivedError::Shape("hashes.sha256")));
    }
}
