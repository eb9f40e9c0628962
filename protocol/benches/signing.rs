//! Criterion benches of the signing core on a ~1 KB `m.room.message` PDU,
//! next to raw Ed25519 signing of the same canonical bytes (the floor).
//!
//! Target (DESIGN §8): `hash_redact_sign` ≤ 1.25 × `raw_ed25519_sign`.

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

criterion_group!(signing, benches);
criterion_main!(signing);
