//! Every public vector in `tests/vectors/` (copied from `shared/vectors/`,
//! plus the Synapse and ruma values listed in the research note).

use cryptoid_protocol::event::{self, EventError};
use cryptoid_protocol::json::{self, Object, ParseErrorKind, Value};
use cryptoid_protocol::keys::{KeyPair, PublicKey, CRYPTOID_KEY_ID};
use cryptoid_protocol::{base64, RoomVersion};

const SPEC: &str = include_str!("../vectors/spec.json");
const MSC4080: &str = include_str!("../vectors/msc4080.json");
const EXTRA: &str = include_str!("../vectors/extra.json");

fn load(text: &str) -> Object {
    json::from_str(text).expect("vector file parses strictly").into_object().expect("object")
}

fn get<'a>(v: &'a Object, key: &str) -> &'a Value {
    v.get(key).unwrap_or_else(|| panic!("vector has no {key:?}"))
}

fn s<'a>(v: &'a Object, key: &str) -> &'a str {
    get(v, key).as_str().unwrap_or_else(|| panic!("{key:?} is not a string"))
}

fn obj<'a>(v: &'a Object, key: &str) -> &'a Object {
    get(v, key).as_object().unwrap_or_else(|| panic!("{key:?} is not an object"))
}

fn cases<'a>(v: &'a Object, key: &str) -> impl Iterator<Item = &'a Object> {
    get(v, key).as_array().expect("array").iter().map(|c| c.as_object().expect("case object"))
}

fn signature_of(signed: &Object, entity: &str, key_id: &str) -> String {
    let sigs = obj(signed, "signatures");
    s(obj(sigs, entity), key_id).to_owned()
}

#[test]
fn spec_seed_derives_public_key() {
    let v = load(SPEC);
    let k = obj(&v, "signing_key");
    let kp = KeyPair::from_base64_seed(s(k, "seed")).expect("seed with trailing bits decodes");
    assert_eq!(kp.cryptoid(), s(k, "public_key"));
}

fn check_sign_json(key: &KeyPair, entity: &str, key_id: &str, case: &Object) {
    let mut input = obj(case, "input").clone();
    let sig = event::sign_json(&mut input, entity, key_id, key).expect("sign_json");
    assert_eq!(base64::encode(&sig), s(case, "signature"));
    assert_eq!(signature_of(&input, entity, key_id), s(case, "signature"));
    event::verify_json(&input, entity, key_id, &key.public_key()).expect("verify_json");
}

#[test]
fn spec_sign_json() {
    let v = load(SPEC);
    let k = obj(&v, "signing_key");
    let kp = KeyPair::from_base64_seed(s(k, "seed")).expect("seed");
    for case in cases(&v, "sign_json") {
        check_sign_json(&kp, s(k, "entity"), s(k, "key_id"), case);
    }
}

/// Signs one event case and checks hash, signature, verification and (when
/// the vector has one) the event ID under each listed room version.
fn check_sign_event(key: &KeyPair, entity: &str, key_id: &str, case: &Object) -> Object {
    let label = s(case, "label");
    let rv = RoomVersion::from_id(s(case, "room_version")).expect("known room version");
    let input =
        case.get("input").or_else(|| case.get("input_pdu")).and_then(Value::as_object).expect("input");
    let signed = event::hash_and_sign(input.clone(), &rv, entity, key_id, key).expect(label);
    let hashes = obj(&signed.event, "hashes");
    assert_eq!(s(hashes, "sha256"), s(case, "content_hash"), "{label}: content hash");
    assert_eq!(base64::encode(&signed.signature), s(case, "signature"), "{label}: signature");
    assert_eq!(signature_of(&signed.event, entity, key_id), s(case, "signature"), "{label}");
    event::verify_event(&signed.event, &rv, entity, key_id, &key.public_key()).expect(label);
    // Only `hashes` and `signatures` may differ from the input.
    for (k, val) in &signed.event {
        if k != "hashes" && k != "signatures" {
            assert_eq!(input.get(k), Some(val), "{label}: {k} changed");
        }
    }
    assert_eq!(
        signed.event.len(),
        input.len()
            + usize::from(!input.contains_key("hashes"))
            + usize::from(!input.contains_key("signatures"))
    );
    signed.event
}

#[test]
fn spec_sign_event() {
    let v = load(SPEC);
    let k = obj(&v, "signing_key");
    let kp = KeyPair::from_base64_seed(s(k, "seed")).expect("seed");
    let mut checked_ids = 0;
    for case in cases(&v, "sign_event") {
        let signed = check_sign_event(&kp, s(k, "entity"), s(k, "key_id"), case);
        if let Some(id) = case.get("event_id").and_then(Value::as_str) {
            let rv = RoomVersion::from_id(s(case, "room_version")).expect("rv");
            assert_eq!(event::event_id(&signed, &rv).expect("id"), id);
            checked_ids += 1;
        }
        if let Some(id) = case.get("event_id_v3_v4_v10").and_then(Value::as_str) {
            for rv in [RoomVersion::V3, RoomVersion::V4, RoomVersion::V10] {
                assert_eq!(event::event_id(&signed, &rv).expect("id"), id, "{rv}");
                checked_ids += 1;
            }
        }
    }
    assert_eq!(checked_ids, 4);
}

#[test]
fn spec_canonical_json() {
    let v = load(SPEC);
    for case in cases(&v, "canonical_json") {
        let parsed = json::from_str(s(case, "input")).expect("valid input");
        assert_eq!(json::to_canonical_string(&parsed), s(case, "canonical"));
    }
}

#[test]
fn spec_must_reject_with_specific_errors() {
    let v = load(SPEC);
    let mut n = 0;
    for case in cases(&v, "must_reject") {
        let err = json::from_str(s(case, "input")).expect_err("must be rejected");
        let ok = match s(case, "why") {
            "duplicate key" => err.kind == ParseErrorKind::DuplicateKey("a".into()),
            "float" => err.kind == ParseErrorKind::Float,
            "integer beyond 2^53-1" => err.kind == ParseErrorKind::IntegerOutOfRange,
            "lone surrogate" => err.kind == ParseErrorKind::LoneSurrogate(0xd800),
            other => panic!("unknown must_reject reason {other:?}"),
        };
        assert!(ok, "{}: got {err}", s(case, "why"));
        // A duplicate key is an error of the object holding it; the others
        // are errors of the value at "a".
        let path = if matches!(err.kind, ParseErrorKind::DuplicateKey(_)) { "$" } else { "$.a" };
        assert_eq!(err.path, path, "{err}");
        n += 1;
    }
    assert_eq!(n, 4);
}

#[test]
fn msc4080_cases() {
    let v = load(MSC4080);
    let kp = KeyPair::from_base64_seed(s(&v, "seed")).expect("seed");
    let mut n = 0;
    for case in cases(&v, "cases") {
        let label = s(case, "label");
        let cryptoid = s(case, "cryptoid");
        assert_eq!(kp.cryptoid(), cryptoid);
        assert_eq!(s(case, "key_id"), CRYPTOID_KEY_ID);
        let rv = RoomVersion::from_id(s(case, "room_version")).expect("msc4080 is known");
        let input = obj(case, "input_pdu");

        // The event ID is the same before and after signing.
        let prepared = event::prepare(input.clone(), &rv).expect(label);
        assert!(prepared.hash_added());
        assert_eq!(prepared.event_id(), Some(s(case, "event_id")), "{label}: event id before signing");
        assert_eq!(
            std::str::from_utf8(prepared.signing_bytes()).expect("utf-8"),
            s(case, "signed_bytes"),
            "{label}"
        );

        let signed = check_sign_event(&kp, cryptoid, CRYPTOID_KEY_ID, case);
        assert_eq!(&signed, obj(case, "signed_pdu"), "{label}: signed PDU");
        assert_eq!(event::event_id(&signed, &rv).expect("id"), s(case, "event_id"), "{label}: after signing");

        // Signing the already-hashed PDU again is accepted and identical.
        let mut rehashed = input.clone();
        rehashed.insert("hashes".into(), get(&signed, "hashes").clone());
        let again = event::hash_and_sign(rehashed, &rv, cryptoid, CRYPTOID_KEY_ID, &kp).expect(label);
        assert_eq!(&again.event, &signed);
        n += 1;
    }
    assert_eq!(n, 4);
}

#[test]
fn msc4080_join_mxid_mapping_is_server_signed() {
    // The mapping inside the join vector is signed by the ruma test key
    // acting as server "domain".
    let v = load(MSC4080);
    let extra = load(EXTRA);
    let ruma = obj(&extra, "ruma");
    let server = PublicKey::from_base64(s(ruma, "public_key")).expect("key");
    let join = cases(&v, "cases").find(|c| s(c, "label").starts_with("join")).expect("join case");
    let mapping = obj(obj(obj(join, "input_pdu"), "content"), "mxid_mapping");
    event::verify_json(mapping, "domain", "ed25519:1", &server).expect("mapping signature");
}

#[test]
fn msc4080_tampered_hash_is_refused_not_replaced() {
    let v = load(MSC4080);
    let case = cases(&v, "cases").next().expect("case");
    let rv = RoomVersion::MSC4080;
    let mut pdu = obj(case, "signed_pdu").clone();
    pdu.remove("signatures");
    let Some(Value::Object(content)) = pdu.get_mut("content") else { panic!("content") };
    content.insert("body".into(), Value::from("goodbye"));
    match event::prepare(pdu, &rv) {
        Err(EventError::HashMismatch { found, .. }) => assert_eq!(found, s(case, "content_hash")),
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
}

#[test]
fn msc4080_verification_detects_tampering() {
    let v = load(MSC4080);
    let kp = KeyPair::from_base64_seed(s(&v, "seed")).expect("seed");
    for case in cases(&v, "cases") {
        let rv = RoomVersion::MSC4080;
        let signed = obj(case, "signed_pdu");
        let cryptoid = s(case, "cryptoid");
        event::verify_event(signed, &rv, cryptoid, CRYPTOID_KEY_ID, &kp.public_key()).expect("valid");
        // A redacted field changed: the signature breaks.
        let mut t = signed.clone();
        t.insert("depth".into(), Value::Int(json::Int::from(99)));
        let err =
            event::verify_event(&t, &rv, cryptoid, CRYPTOID_KEY_ID, &kp.public_key()).expect_err("depth");
        assert!(matches!(err, event::VerifyError::HashMismatch { .. }), "{err}");
        // Another key: the signature does not verify.
        let other = KeyPair::from_seed(&[9; 32]).public_key();
        assert!(event::verify_event(signed, &rv, cryptoid, CRYPTOID_KEY_ID, &other).is_err());
    }
}

#[test]
fn synapse_vectors() {
    let extra = load(EXTRA);
    let syn = obj(&extra, "synapse");
    let kp = KeyPair::from_base64_seed(s(syn, "seed")).expect("seed");
    for case in cases(syn, "cases") {
        check_sign_event(&kp, s(syn, "entity"), s(syn, "key_id"), case);
    }
}

#[test]
fn ruma_vectors() {
    let extra = load(EXTRA);
    let ruma = obj(&extra, "ruma");
    let kp = KeyPair::from_base64_seed(s(ruma, "seed")).expect("seed");
    assert_eq!(kp.cryptoid(), s(ruma, "public_key"));
    for case in cases(ruma, "sign_json") {
        check_sign_json(&kp, s(ruma, "entity"), s(ruma, "key_id"), case);
    }
    for case in cases(ruma, "sign_event") {
        check_sign_event(&kp, s(ruma, "entity"), s(ruma, "key_id"), case);
    }
}
