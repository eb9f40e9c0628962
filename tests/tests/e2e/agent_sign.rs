//! Signing through the agent: the result verifies, only `hashes` and
//! `signatures` change, and createRoom batches are chained.

use cryptoid_protocol::event;
use cryptoid_protocol::json::Value;
use cryptoid_protocol::keys::{PublicKey, CRYPTOID_KEY_ID};
use cryptoid_protocol::wire::keys::{Create, CreateParams, Get, KeyRef, KeyState};
use cryptoid_protocol::wire::sign::{SignBatch, SignBatchParams, SignPdu, SignPduParams};
use cryptoid_protocol::wire::ErrorKind;
use cryptoid_protocol::RoomVersion;
use cryptoid_tests::agent::Agent;
use cryptoid_tests::pdus;

pub const RV: &str = "org.matrix.msc4080";

pub fn create(c: &mut cryptoid_protocol::client::blocking::Client, room: Option<&str>) -> String {
    c.call::<Create>(&CreateParams { room_id: room.map(str::to_owned), ..Default::default() })
        .expect("keys.create")
        .cryptoid
}

/// What `agent.hello` says protects the software keystore, and whether a
/// passphrase (or other protection) has been set up.
pub fn soft_protection(
    c: &mut cryptoid_protocol::client::blocking::Client,
) -> (cryptoid_protocol::wire::agent::Protection, bool) {
    use cryptoid_protocol::wire::agent::Hello;
    let hello = c.call::<Hello>(&cryptoid_protocol::wire::NoParams {}).expect("hello");
    let soft = hello.backends.iter().find(|b| b.name == "soft").expect("the soft backend");
    (soft.protection, hello.passphrase_set)
}

/// Gives `events` of `room` to the agent's room view (`rooms.observe`).
pub fn observe(
    c: &mut cryptoid_protocol::client::blocking::Client,
    room: &str,
    events: Vec<cryptoid_protocol::wire::rooms::ObservedEvent>,
) {
    use cryptoid_protocol::wire::rooms::{Observe, ObserveParams};
    c.call::<Observe>(&ObserveParams {
        room_id: room.into(),
        room_version: None,
        events,
        server_keys: Default::default(),
        pdus: Vec::new(),
    })
    .expect("observe");
}

pub fn try_sign(
    c: &mut cryptoid_protocol::client::blocking::Client,
    pdu: Value,
) -> Result<cryptoid_protocol::wire::sign::SignedPdu, cryptoid_protocol::client::ClientError> {
    c.call::<SignPdu>(&SignPduParams { room_version: RV.into(), pdu, event_id: None, intent: None })
}

pub fn sign(
    c: &mut cryptoid_protocol::client::blocking::Client,
    pdu: Value,
) -> cryptoid_protocol::wire::sign::SignedPdu {
    try_sign(c, pdu).expect("sign.pdu")
}

pub fn assert_verifies(pdu: &Value, cryptoid: &str) {
    let key = PublicKey::from_base64(cryptoid).expect("cryptoid");
    event::verify_event(
        pdu.as_object().expect("object"),
        &RoomVersion::MSC4080,
        cryptoid,
        CRYPTOID_KEY_ID,
        &key,
    )
    .expect("signature verifies");
}

#[test]
fn create_sign_verify() {
    let agent = Agent::start();
    let mut c = agent.unlocked();
    let cryptoid = create(&mut c, Some("!room:example.org"));
    let input = pdus::message(&cryptoid, "!room:example.org", "hello");
    let signed = sign(&mut c, input.clone());
    assert_verifies(&signed.pdu, &cryptoid);
    // Only hashes and signatures were added; the event ID matches.
    let (inp, out) = (input.as_object().expect("in"), signed.pdu.as_object().expect("out"));
    for (k, v) in inp {
        assert_eq!(out.get(k), Some(v), "{k} changed");
    }
    assert_eq!(out.len(), inp.len() + 2);
    let rv = RoomVersion::MSC4080;
    assert_eq!(event::event_id(out, &rv).expect("id"), signed.event_id);

    // Announcing the right event ID is accepted; the server's hash is kept.
    let mut unsigned = out.clone();
    unsigned.remove("signatures");
    let again = c
        .call::<SignPdu>(&SignPduParams {
            room_version: RV.into(),
            pdu: Value::Object(unsigned),
            event_id: Some(signed.event_id.clone()),
            intent: None,
        })
        .expect("sign with event_id");
    assert_eq!(again.event_id, signed.event_id);
    assert_eq!(again.pdu, signed.pdu);
}

#[test]
fn intent_must_match() {
    let agent = Agent::start();
    let mut c = agent.unlocked();
    let cryptoid = create(&mut c, Some("!r:x"));
    let pdu = pdus::message(&cryptoid, "!r:x", "hello");
    let intent = |body: &str| {
        cryptoid_protocol::json::from_str(&format!(
            r#"{{"type":"m.room.message","content":{{"body":"{body}","msgtype":"m.text"}}}}"#
        ))
        .expect("intent")
    };
    let ok = c.call::<SignPdu>(&SignPduParams {
        room_version: RV.into(),
        pdu: pdu.clone(),
        event_id: None,
        intent: Some(intent("hello")),
    });
    assert!(ok.is_ok(), "{ok:?}");
    let err = c
        .call::<SignPdu>(&SignPduParams {
            room_version: RV.into(),
            pdu,
            event_id: None,
            intent: Some(intent("bye")),
        })
        .expect_err("intent mismatch");
    cryptoid_tests::assert_denied(&err, "PDU content is");
}

#[test]
fn create_room_batch_binds_the_new_key() {
    let agent = Agent::start();
    let mut c = agent.unlocked();
    // createRoom: the key is made before the room ID is known.
    let cryptoid = create(&mut c, None);
    let room = "!new:example.org";
    let (batch, ids) = pdus::create_room(&cryptoid, room, &pdus::default_power(&cryptoid), &[]);
    let (create_ev, member, power) = (batch[0].clone(), batch[1].clone(), batch[2].clone());
    let create_id = ids[0].clone();

    // Out of order: refused, nothing bound.
    let err = c
        .call::<SignBatch>(&SignBatchParams {
            room_version: RV.into(),
            pdus: vec![create_ev.clone(), power.clone(), member.clone()],
            event_ids: None,
            intent: None,
        })
        .expect_err("broken chain");
    cryptoid_tests::assert_denied(&err, "does not follow");
    assert_eq!(c.call::<Get>(&KeyRef { cryptoid: cryptoid.clone() }).expect("get").state, KeyState::Unbound);

    let signed = c
        .call::<SignBatch>(&SignBatchParams {
            room_version: RV.into(),
            pdus: vec![create_ev, member, power],
            event_ids: None,
            intent: None,
        })
        .expect("batch");
    assert_eq!(signed.pdus.len(), 3);
    assert_eq!(signed.pdus[0].event_id, create_id);
    for s in &signed.pdus {
        assert_verifies(&s.pdu, &cryptoid);
    }
    let key = c.call::<Get>(&KeyRef { cryptoid: cryptoid.clone() }).expect("get");
    assert_eq!((key.state, key.room_id.as_deref()), (KeyState::Bound, Some(room)));
    // Bound now: it signs in this room and nowhere else. The message cites
    // the batch's events, which the agent holds verified now (it signed
    // them and they pass the rules).
    let mut first = pdus::message(&cryptoid, room, "first message").into_object().expect("object");
    first.insert("auth_events".into(), Value::Array(ids.iter().map(|i| Value::from(i.as_str())).collect()));
    first.insert("prev_events".into(), Value::Array(vec![Value::from(ids[2].as_str())]));
    first.insert("depth".into(), Value::Int(cryptoid_protocol::json::Int::from(4)));
    sign(&mut c, Value::Object(first));
    let err = try_sign(&mut c, pdus::message(&cryptoid, "!other:example.org", "x")).expect_err("other room");
    cryptoid_tests::assert_refused(&err, ErrorKind::KeyNotUsable, "key_bound_elsewhere");
}

#[test]
fn async_client_signs_too() {
    let agent = Agent::start();
    let mut c = agent.unlocked();
    let cryptoid = create(&mut c, Some("!async:x"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let signed = rt.block_on(async {
        let mut ac =
            cryptoid_protocol::client::r#async::Client::connect(&agent.socket()).await.expect("connect");
        ac.call::<SignPdu>(&SignPduParams {
            room_version: RV.into(),
            pdu: pdus::message(&cryptoid, "!async:x", "async"),
            event_id: None,
            intent: None,
        })
        .await
        .expect("sign")
    });
    assert_verifies(&signed.pdu, &cryptoid);
}
