//! Keys and one-time cryptoIDs through the real socket.

use super::agent_sign::{assert_verifies, create, sign, try_sign};
use cryptoid_protocol::json::{self, Value};
use cryptoid_protocol::wire::keys::{Delete, KeyKind, KeyRef, KeyState, List, ListParams};
use cryptoid_protocol::wire::otk::{
    Claim, ClaimParams, Generate, GenerateParams, MarkPublished, MarkPublishedParams, UploadBody,
};
use cryptoid_protocol::wire::{ErrorKind, NoParams};
use cryptoid_tests::agent::Agent;
use cryptoid_tests::pdus;

#[test]
fn one_time_cryptoid_life_cycle() {
    let agent = Agent::start();
    let mut c = agent.unlocked();
    let made = c.call::<Generate>(&GenerateParams { count: 3, backend: None }).expect("generate").keys;
    assert_eq!(made.len(), 3);
    assert!(made.iter().all(|k| k.kind == KeyKind::OneTime && k.state == KeyState::Unpublished));

    // The upload body is exactly the /keys/upload shape.
    let body = c.call::<UploadBody>(&NoParams {}).expect("upload body");
    let mut expected = String::from(r#"{"one_time_cryptoids":{"#);
    let mut sorted = made.clone();
    sorted.sort_by(|a, b| a.key_id.cmp(&b.key_id));
    for (i, k) in sorted.iter().enumerate() {
        if i > 0 {
            expected.push(',');
        }
        expected.push_str(&format!(
            r#""{}":{{"key":"{}"}}"#,
            k.key_id.as_deref().expect("key id"),
            k.cryptoid
        ));
    }
    expected.push_str("}}");
    assert_eq!(json::to_canonical_string(&body), expected);
    assert_eq!(sorted[0].key_id.as_deref(), Some("ed25519:AAAAAAAAAAA"));

    let ids: Vec<String> = made.iter().map(|k| k.cryptoid.clone()).collect();
    let published = c.call::<MarkPublished>(&MarkPublishedParams { cryptoids: ids.clone() }).expect("mark");
    assert!(published.keys.iter().all(|k| k.state == KeyState::Published));
    let body = c.call::<UploadBody>(&NoParams {}).expect("empty body");
    assert_eq!(json::to_canonical_string(&body), r#"{"one_time_cryptoids":{}}"#);

    // An invite claimed key 0: bind it, once.
    let k0 = &ids[0];
    let bound =
        c.call::<Claim>(&ClaimParams { cryptoid: k0.clone(), room_id: "!a:x".into() }).expect("claim");
    assert_eq!((bound.state, bound.room_id.as_deref()), (KeyState::Bound, Some("!a:x")));
    c.call::<Claim>(&ClaimParams { cryptoid: k0.clone(), room_id: "!a:x".into() })
        .expect("same room: idempotent");
    let err = c
        .call::<Claim>(&ClaimParams { cryptoid: k0.clone(), room_id: "!b:x".into() })
        .expect_err("second room");
    cryptoid_tests::assert_refused(&err, ErrorKind::KeyNotUsable, "key_already_bound");
    assert_verifies(&sign(&mut c, pdus::message(k0, "!a:x", "hi")).pdu, k0);
    let err = try_sign(&mut c, pdus::message(k0, "!b:x", "hi")).expect_err("other room");
    assert_eq!(err.kind(), Some(ErrorKind::KeyNotUsable));

    // Key 1 is bound by signing its own join (accepting the invite).
    let k1 = &ids[1];
    let err = try_sign(&mut c, pdus::message(k1, "!c:x", "hi")).expect_err("a message cannot bind");
    cryptoid_tests::assert_refused(&err, ErrorKind::KeyNotUsable, "key_unbound");
    let join = pdus::state(k1, "!c:x", "m.room.member", k1, r#"{"membership":"join"}"#, &pdus::event_id('c'));
    // The user accepted the invite to !c:x: the intent names that room.
    let signed = c
        .call::<cryptoid_protocol::wire::sign::SignPdu>(&cryptoid_protocol::wire::sign::SignPduParams {
            room_version: super::agent_sign::RV.into(),
            pdu: join,
            event_id: None,
            intent: Some(cryptoid_protocol::wire::sign::intent::join("!c:x", k1)),
        })
        .expect("the accepted invite's join");
    assert_verifies(&signed.pdu, k1);
    let listed =
        c.call::<List>(&ListParams { room_id: Some("!c:x".into()), ..Default::default() }).expect("list");
    assert_eq!(listed.keys.len(), 1);
    assert_eq!(listed.keys[0].cryptoid, *k1);
    // Binding it elsewhere now fails.
    let err =
        c.call::<Claim>(&ClaimParams { cryptoid: k1.clone(), room_id: "!d:x".into() }).expect_err("bound");
    assert_eq!(err.kind(), Some(ErrorKind::KeyNotUsable));
}

#[test]
fn generate_limits() {
    let agent = Agent::start();
    let mut c = agent.unlocked();
    for count in [0, 1001] {
        let err = c.call::<Generate>(&GenerateParams { count, backend: None }).expect_err("out of range");
        assert_eq!(err.kind(), Some(ErrorKind::InvalidParams), "{err}");
    }
    let keys = c.call::<Generate>(&GenerateParams { count: 1000, backend: None }).expect("1000 at once").keys;
    assert_eq!(keys.len(), 1000);
    let err = c
        .call::<Generate>(&GenerateParams { count: 1, backend: Some("pkcs11".into()) })
        .expect_err("backend");
    assert_eq!(err.kind(), Some(ErrorKind::BackendUnavailable));
}

#[test]
fn one_key_per_room_and_delete_retires() {
    let agent = Agent::start();
    let mut c = agent.unlocked();
    let k = create(&mut c, Some("!r:x"));
    let err = c
        .call::<cryptoid_protocol::wire::keys::Create>(&cryptoid_protocol::wire::keys::CreateParams {
            room_id: Some("!r:x".into()),
            ..Default::default()
        })
        .expect_err("second key for the room");
    assert_eq!(err.kind(), Some(ErrorKind::KeyNotUsable));
    let retired = c.call::<Delete>(&KeyRef { cryptoid: k.clone() }).expect("delete");
    assert_eq!(retired.state, KeyState::Retired);
    let err = try_sign(&mut c, pdus::message(&k, "!r:x", "x")).expect_err("retired");
    assert_eq!(err.kind(), Some(ErrorKind::KeyNotUsable));
    // The sealed secret is gone from disk.
    let files: Vec<_> = std::fs::read_dir(agent.data_dir().join("keys")).expect("keys dir").collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(files[0].as_ref().expect("entry").path()).expect("record");
    let rec = json::from_str(&text).expect("json");
    assert_eq!(rec.as_object().and_then(|o| o.get("handle")), Some(&Value::Null));
    // A new key for the room can be made now.
    create(&mut c, Some("!r:x"));
}

/// A change gets an `intended` entry before it is made, so that a full disk
/// or a `kill -9` between the change and its outcome entry cannot leave a
/// key the journal never heard of (found by the full-disk test: a key was
/// created, its entry did not fit, the client was told nothing changed).
#[test]
fn changes_are_journaled_before_they_are_made() {
    use cryptoid_protocol::wire::journal::{Tail, TailParams};
    let agent = Agent::start();
    let mut c = agent.unlocked();
    let k = create(&mut c, Some("!intent:x"));
    c.call::<Delete>(&KeyRef { cryptoid: k.clone() }).expect("delete");
    let tail = c.call::<Tail>(&TailParams { limit: Some(20), room_id: None }).expect("tail");
    let field = |e: &Value, f: &str| {
        e.as_object().and_then(|o| o.get(f)).and_then(|v| v.as_str()).map(str::to_owned).unwrap_or_default()
    };
    let changes: Vec<(String, String)> = tail
        .entries
        .iter()
        .filter(|e| matches!(field(e, "method").as_str(), "keys.create" | "keys.delete"))
        .map(|e| (field(e, "method"), field(e, "outcome")))
        .collect();
    let expected = [
        ("keys.create", "intended"),
        ("keys.create", "ok"),
        ("keys.delete", "intended"),
        ("keys.delete", "ok"),
    ];
    assert_eq!(changes, expected.map(|(m, o)| (m.to_owned(), o.to_owned())), "{tail:?}");
    let intent = tail
        .entries
        .iter()
        .find(|e| field(e, "method") == "keys.create" && field(e, "outcome") == "intended")
        .expect("intent");
    assert_eq!(field(intent, "room_id"), "!intent:x", "the intent names what it will change: {intent:?}");
}
