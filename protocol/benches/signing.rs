//! Criterion benches of the signing core on a ~1 KB `m.room.message` PDU,
//! next to raw Ed25519 signing of the same canonical bytes (the floor).
//!
//! Target (DESIGN §8): `hash_redact_sign` ≤ 1.25 × `raw_ed25519_sign`.
//! The `authorization` group: what judging a PDU by its auth events adds.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cryptoid_protocol::event;
use cryptoid_protocol::json;
use cryptoid_protocol::keys::{KeyPair, CRYPTOID_KEY_ID};
use cryptoid_protocol::redaction;
use cryptoid_protocol::RoomVersion;
use std::hint::black_box;

const PDU: &str = include_str!("fixtures/message_1k.json");
const SEED: &str = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";

fn benches(c: &mut Criterion) {
    let rv = RoomVersion::MSC4080;
    let key = KeyPair::from_base64_seed(SEED).expect("seed");
    let cryptoid = key.cryptoid();
    let value = json::from_str(PDU).expect("fixture parses");
    let pdu = value.as_object().expect("object").clone();
    let canonical = json::to_canonical_vec(&value);
    let prepared = event::prepare(pdu.clone(), &rv).expect("prepare");
    let signing_bytes = prepared.signing_bytes().to_vec();
    let hashed = prepared.event().clone();

    let mut g = c.benchmark_group("pdu_1k");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse", |b| b.iter(|| json::from_slice(black_box(&canonical)).expect("parse")));
    g.bench_function("canonicalize", |b| b.iter(|| json::to_canonical_vec(black_box(&value))));
    g.bench_function("content_hash", |b| b.iter(|| event::content_hash(black_box(&pdu))));
    g.bench_function("redact_owned", |b| b.iter(|| redaction::redact(black_box(&hashed), &rv)));
    g.bench_function("redact_reference_hash", |b| b.iter(|| event::reference_hash(black_box(&hashed), &rv)));
    g.bench_function("raw_ed25519_sign", |b| b.iter(|| key.sign(black_box(&signing_bytes))));
    g.bench_function("hash_redact_sign", |b| {
        b.iter_batched(
            || pdu.clone(),
            |p| event::hash_and_sign(p, &rv, &cryptoid, CRYPTOID_KEY_ID, &key).expect("sign"),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("parse_hash_redact_sign", |b| {
        b.iter(|| {
            let p = json::from_slice(black_box(&canonical)).expect("parse").into_object().expect("object");
            event::hash_and_sign(p, &rv, &cryptoid, CRYPTOID_KEY_ID, &key).expect("sign")
        })
    });
    g.finish();
}

/// What judging a PDU by its own auth events adds to signing it: the
/// agent reads the cited events (create, power levels, the sender's join)
/// as canonical JSON and runs the rules; beside `received_check` of the
/// same message (what `rooms.observe` pays per event, signature included).
fn authorization(c: &mut Criterion) {
    let rv = RoomVersion::MSC4080;
    let key = KeyPair::from_base64_seed(SEED).expect("seed");
    let me = key.cryptoid();
    let ev = |text: String| json::from_str(&text).expect("json").into_object().expect("object");
    let room = "!bench:localhost";
    let create = ev(format!(
        r#"{{"type":"m.room.create","state_key":"","sender":"{me}","room_id":"{room}","content":{{"room_version":"org.matrix.msc4080"}},"depth":1,"prev_events":[],"auth_events":[],"origin_server_ts":1}}"#
    ));
    let cid = event::event_id(&create, &rv).expect("id");
    let join = ev(format!(
        r#"{{"type":"m.room.member","state_key":"{me}","sender":"{me}","room_id":"{room}","content":{{"membership":"join"}},"depth":2,"prev_events":["{cid}"],"auth_events":["{cid}"],"origin_server_ts":1}}"#
    ));
    let jid = event::event_id(&join, &rv).expect("id");
    let pl = ev(format!(
        r#"{{"type":"m.room.power_levels","state_key":"","sender":"{me}","room_id":"{room}","content":{{"users":{{"{me}":100}},"events":{{"m.room.power_levels":100}},"state_default":50}},"depth":3,"prev_events":["{jid}"],"auth_events":["{cid}","{jid}"],"origin_server_ts":1}}"#
    ));
    let pid = event::event_id(&pl, &rv).expect("id");
    let stored: Vec<(String, Vec<u8>)> = [(&cid, &create), (&jid, &join), (&pid, &pl)]
        .into_iter()
        .map(|(id, e)| (id.clone(), json::to_canonical_vec(&json::Value::Object(e.clone()))))
        .collect();
    let mut msg = json::from_str(PDU).expect("fixture").into_object().expect("object");
    msg.insert("room_id".into(), room.into());
    msg.insert("sender".into(), me.as_str().into());
    msg.insert(
        "auth_events".into(),
        json::Value::Array(vec![cid.as_str().into(), pid.as_str().into(), jid.as_str().into()]),
    );
    let signed = event::hash_and_sign(msg.clone(), &rv, &me, CRYPTOID_KEY_ID, &key).expect("sign").event;
    let no_keys = |_: &str| Vec::new();

    let mut g = c.benchmark_group("authorization");
    g.throughput(Throughput::Elements(1));
    g.bench_function("read_auth_events_and_check", |b| {
        b.iter(|| {
            let held: Vec<(String, json::Object)> = stored
                .iter()
                .map(|(id, bytes)| {
                    (id.clone(), json::from_slice(bytes).expect("parse").into_object().expect("object"))
                })
                .collect();
            let refs: Vec<(&str, &json::Object)> = held.iter().map(|(id, e)| (id.as_str(), e)).collect();
            cryptoid_protocol::auth::check(&rv, "", black_box(&msg), &refs).expect("authorized")
        })
    });
    g.bench_function("hash_redact_sign", |b| {
        b.iter_batched(
            || msg.clone(),
            |p| event::hash_and_sign(p, &rv, &me, CRYPTOID_KEY_ID, &key).expect("sign"),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("received_check", |b| {
        b.iter(|| cryptoid_protocol::received::check(black_box(&signed), &rv, &no_keys).expect("verifies"))
    });
    g.finish();
}

criterion_group!(signing, benches, authorization);
criterion_main!(signing);
