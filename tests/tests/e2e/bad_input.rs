//! Every bad-input kind gets its error, and the agent keeps serving.

use super::agent_sign::{create, sign, try_sign, RV};
use cryptoid_protocol::json::Value;
use cryptoid_protocol::wire::agent::Hello;
use cryptoid_protocol::wire::{ErrorKind, NoParams};
use cryptoid_tests::agent::Agent;
use cryptoid_tests::pdus;
use cryptoid_tests::raw::{error_fields, Raw};
use std::io::{Read, Write};

fn sign_line(pdu: &Value, extra: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"sign.pdu","params":{{"room_version":"{RV}","pdu":{pdu}{extra}}}}}"#
    )
}

fn still_serving(agent: &Agent) {
    agent.client().call::<Hello>(&NoParams {}).expect("agent still serving");
}

#[test]
fn malformed_float_duplicate_and_unknown_method() {
    let agent = Agent::start();
    let mut raw = Raw::open(&agent);
    let e = raw.error_of(r#"{"jsonrpc":"2.0","id":1,"method":"agent.hello""#);
    assert_eq!((e.code, e.identity()), (-32700, ("parse_error", "unexpected_end")), "{e:?}");
    // The same connection goes on after a bad line.
    let e = raw.error_of(r#"{"jsonrpc":"2.0","id":2,"method":"agent.hello","params":{"x":1.5}}"#);
    assert_eq!(e.identity(), ("parse_error", "float"), "{e:?}");
    let e = raw.error_of(r#"{"jsonrpc":"2.0","id":3,"method":"agent.hello","params":{"a":{"b":1,"b":2}}}"#);
    assert_eq!(e.identity(), ("parse_error", "duplicate_key"), "{e:?}");
    let e = raw.error_of(r#"{"jsonrpc":"2.0","id":4,"method":"agent.nope"}"#);
    assert_eq!((e.code, e.identity()), (-32601, ("method_not_found", "unknown_method")), "{e:?}");
    let e = raw.error_of(r#"{"jsonrpc":"2.0","id":5,"method":"keys.create","params":{"room":"!r:x"}}"#);
    assert_eq!((e.code, e.identity()), (-32602, ("invalid_params", "params_mismatch")), "{e:?}");
    still_serving(&agent);
}

#[test]
fn a_line_over_the_limit_closes_only_that_connection() {
    let agent = Agent::start();
    let mut raw = Raw::open(&agent);
    let big = vec![b'x'; cryptoid_protocol::wire::MAX_LINE + 1024];
    // The agent may close before reading everything; a broken pipe is fine.
    let _ = raw.w.write_all(&big);
    let v = raw.line();
    let e = error_fields(&v);
    assert_eq!(e.identity(), ("message_too_large", "line_too_long"), "{e:?}");
    let mut rest = Vec::new();
    let _ = raw.r.read_to_end(&mut rest);
    assert!(rest.is_empty(), "connection closed after the error");
    still_serving(&agent);
}

#[test]
fn pdu_errors_have_their_kinds() {
    let agent = Agent::start();
    let mut c = agent.unlocked();
    let k = create(&mut c, Some("!r:x"));
    let good = pdus::message(&k, "!r:x", "hello");
    let signed = sign(&mut c, good.clone());
    let mut raw = Raw::open(&agent);

    let kind_of = |raw: &mut Raw, line: String| raw.error_of(&line);
    let is = |e: cryptoid_tests::raw::WireError, kind: &str, cause: &str| {
        assert_eq!(e.identity(), (kind, cause), "{e:?}");
    };
    // Unknown room version.
    is(
        kind_of(&mut raw, sign_line(&good, "").replace(RV, "13")),
        "unsupported_room_version",
        "unknown_room_version",
    );
    // Wrong hash: the server changed the body after hashing.
    let mut tampered = signed.pdu.as_object().expect("o").clone();
    tampered.remove("signatures");
    let mut content = tampered["content"].as_object().expect("content").clone();
    content.insert("body".into(), Value::from("evil"));
    tampered.insert("content".into(), Value::Object(content));
    is(kind_of(&mut raw, sign_line(&Value::Object(tampered), "")), "hash_mismatch", "content_hash_mismatch");
    // Wrong event_id.
    let e = kind_of(&mut raw, sign_line(&good, &format!(r#","event_id":"{}""#, pdus::event_id('z'))));
    is(e, "event_id_mismatch", "event_id_mismatch");
    // Unknown sender.
    let stranger = "3TPraTczVkDPTRaX4K+AfUuyx7Mzq1UafTXypnl0t2k";
    is(
        kind_of(&mut raw, sign_line(&pdus::message(stranger, "!r:x", "x"), "")),
        "unknown_key",
        "sender_not_held",
    );
    // Room mismatch.
    let e = kind_of(&mut raw, sign_line(&pdus::message(&k, "!other:x", "x"), ""));
    is(e, "key_not_usable", "key_bound_elsewhere");
    // Already signed by someone else.
    is(kind_of(&mut raw, sign_line(&signed.pdu, "")), "bad_pdu", "already_signed");
    // Structural problems.
    let with = |f: &dyn Fn(&mut cryptoid_protocol::json::Object)| {
        let mut p = good.as_object().expect("o").clone();
        f(&mut p);
        sign_line(&Value::Object(p), "")
    };
    let ids = |n: usize| Value::Array((0..n).map(|i| Value::from(format!("${i:0>43}"))).collect());
    for (label, line, cause) in [
        (
            "too many prev_events",
            with(&|p| {
                p.insert("prev_events".into(), ids(21));
            }),
            "too_many_refs",
        ),
        (
            "too many auth_events",
            with(&|p| {
                p.insert("auth_events".into(), ids(11));
            }),
            "too_many_refs",
        ),
        (
            "duplicate prev_events",
            with(&|p| {
                p.insert(
                    "prev_events".into(),
                    Value::Array(vec![Value::from(pdus::event_id('b')), Value::from(pdus::event_id('b'))]),
                );
            }),
            "duplicate_event_ref",
        ),
        (
            "malformed prev_event",
            with(&|p| {
                p.insert("prev_events".into(), Value::Array(vec![Value::from("$short")]));
            }),
            "bad_event_ref",
        ),
        (
            "no content",
            with(&|p| {
                p.remove("content");
            }),
            "missing_field",
        ),
        (
            "string depth",
            with(&|p| {
                p.insert("depth".into(), Value::from("5"));
            }),
            "malformed_field",
        ),
        (
            "oversized",
            with(&|p| {
                p.insert(
                    "content".into(),
                    cryptoid_protocol::json::from_str(&format!(r#"{{"body":"{}"}}"#, "x".repeat(70_000)))
                        .expect("big"),
                );
            }),
            "too_large",
        ),
    ] {
        let e = raw.error_of(&line);
        assert_eq!(e.identity(), ("bad_pdu", cause), "{label}: {e:?}");
    }
    // Locked.
    c.call::<cryptoid_protocol::wire::agent::Lock>(&NoParams {}).expect("lock");
    assert_eq!(raw.error_of(&sign_line(&good, "")).identity(), ("locked", "locked"));
    still_serving(&agent);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let agent = Agent::start();
    let mut raw = Raw::open(&agent);
    let mut batch = String::new();
    for id in 0..50 {
        batch.push_str(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"agent.hello"}}"#));
        batch.push('\n');
    }
    batch.push_str(r#"{"jsonrpc":"2.0","id":"last","method":"agent.hello"}"#);
    batch.push('\n');
    raw.send(batch.as_bytes());
    for id in 0..50 {
        let v = raw.line();
        assert_eq!(v.as_object().and_then(|o| o.get("id")).and_then(Value::as_int), Some(id));
    }
    assert_eq!(raw.line().as_object().and_then(|o| o.get("id")).and_then(Value::as_str), Some("last"));
}

#[test]
fn a_stalled_client_does_not_delay_others_and_is_cut_off() {
    let agent = Agent::start_with(&[], Some("[socket]\nline_timeout_secs = 2\n"));
    let mut stalled = Raw::open(&agent);
    stalled.send(br#"{"jsonrpc":"2.0","id":1,"meth"#);
    // Others are served while the stalled line is pending.
    let mut c = agent.unlocked();
    let k = create(&mut c, Some("!r:x"));
    for i in 0..20 {
        sign(&mut c, pdus::message(&k, "!r:x", &format!("m{i}")));
    }
    // After the line timeout the stalled client gets an error and is closed.
    let e = error_fields(&stalled.line());
    assert_eq!(e.identity(), ("invalid_request", "line_timeout"), "{e:?}");
    let mut rest = Vec::new();
    let _ = stalled.r.read_to_end(&mut rest);
    assert!(rest.is_empty());
    // An unknown sender error reaches the typed client too.
    let err = try_sign(&mut c, pdus::message("AAAA", "!r:x", "x")).expect_err("unknown");
    assert_eq!(err.kind(), Some(ErrorKind::UnknownKey));
}

/// Pipelined signs have their journal entries written together before
/// their answers are sent, in request order; a journal read pipelined after
/// them sees them (entries queued before another method are written first),
/// and the chain verifies.
#[test]
fn pipelined_signs_are_journaled_in_order_and_seen_by_a_journal_read_behind_them() {
    use cryptoid_protocol::wire::journal::Verify;
    let agent = Agent::start();
    let mut c = agent.unlocked();
    let k = create(&mut c, Some("!pipe:x"));
    let mut raw = Raw::open(&agent);
    let sign_of = |id: u32, body: &str| {
        let pdu = pdus::message(&k, "!pipe:x", body);
        sign_line(&pdu, "").replacen(r#""id":1"#, &format!(r#""id":{id}"#), 1)
    };
    let mut batch = [sign_of(1, "one"), sign_of(2, "two")].join("\n");
    batch.push_str("\n{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"journal.tail\",\"params\":{\"limit\":2}}\n");
    batch.push_str(&sign_of(4, "four"));
    batch.push('\n');
    raw.send(batch.as_bytes());
    let answers: Vec<Value> = (0..4).map(|_| raw.line()).collect();
    let field = |v: &Value, path: &[&str]| {
        let mut cur = Some(v);
        for p in path {
            cur = cur.and_then(|c| c.as_object()).and_then(|o| o.get(*p));
        }
        cur.cloned()
    };
    let ids: Vec<i64> = answers.iter().filter_map(|a| field(a, &["id"]).and_then(|i| i.as_int())).collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    for a in [&answers[0], &answers[1], &answers[3]] {
        assert!(field(a, &["result", "event_id"]).is_some(), "not signed: {a}");
    }
    // The read behind the two signs sees both, in order.
    let tail =
        field(&answers[2], &["result", "entries"]).and_then(|e| e.as_array().cloned()).expect("entries");
    let seen: Vec<(String, Option<String>)> = tail
        .iter()
        .map(|e| {
            let s = |f: &str| field(e, &[f]).and_then(|v| v.as_str().map(str::to_owned));
            (s("method").unwrap_or_default(), s("event_id"))
        })
        .collect();
    let signed = |a: &Value| field(a, &["result", "event_id"]).and_then(|v| v.as_str().map(str::to_owned));
    assert_eq!(
        seen,
        [("sign.pdu".to_owned(), signed(&answers[0])), ("sign.pdu".to_owned(), signed(&answers[1]))]
    );
    let v = c.call::<Verify>(&NoParams {}).expect("verify");
    assert!(v.ok, "{:?}", v.error);
}
