//! Load: 64 concurrent clients × 2,000 mixed requests (sign, list, hello,
//! invalid) against one agent; every request gets its expected answer and
//! exactly one journal entry (a change, here each client's `keys.create`,
//! one more: its intent, written before the key is made).

use super::agent_sign::{assert_verifies, RV};
use cryptoid_protocol::json::{self, Value};
use cryptoid_protocol::wire::journal::{Verify, VerifyResult};
use cryptoid_protocol::wire::NoParams;
use cryptoid_tests::agent::Agent;
use cryptoid_tests::pdus;
use cryptoid_tests::raw::Raw;

const CLIENTS: usize = 64;
const REQUESTS: usize = 2_000;

fn result(v: &Value) -> &Value {
    v.as_object().and_then(|o| o.get("result")).unwrap_or_else(|| panic!("not a result: {v}"))
}

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    v.as_object().and_then(|o| o.get(name)).unwrap_or_else(|| panic!("no `{name}` in {v}"))
}

/// One client's run: its own room and key, then `REQUESTS` requests in a
/// fixed mix. Returns how many it sent.
fn client(agent: &Agent, n: usize) -> usize {
    let mut raw = Raw::open(agent);
    let room = format!("!load{n}:example.org");
    let created = raw.call(&format!(
        r#"{{"jsonrpc":"2.0","id":0,"method":"keys.create","params":{{"room_id":"{room}"}}}}"#
    ));
    let cryptoid = field(result(&created), "cryptoid").as_str().expect("cryptoid").to_owned();
    for i in 1..REQUESTS {
        match i % 8 {
            0 | 1 | 4 => {
                let pdu = pdus::message(&cryptoid, &room, &format!("load {n}/{i}"));
                let line = format!(
                    r#"{{"jsonrpc":"2.0","id":{i},"method":"sign.pdu","params":{{"room_version":"{RV}","pdu":{}}}}}"#,
                    json::to_canonical_string(&pdu)
                );
                let signed = raw.call(&line);
                let signed = field(result(&signed), "pdu");
                // A sample is verified here; the agent verifies each itself.
                if i % 200 == 0 {
                    assert_verifies(signed, &cryptoid);
                }
            }
            2 | 5 => {
                let list = raw.call(&format!(
                    r#"{{"jsonrpc":"2.0","id":{i},"method":"keys.list","params":{{"room_id":"{room}"}}}}"#
                ));
                let keys = field(result(&list), "keys").as_array().expect("keys");
                assert_eq!(keys.len(), 1, "client {n}: {list}");
            }
            3 => {
                let hello = raw.call(&format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"agent.hello"}}"#));
                assert_eq!(field(result(&hello), "locked"), &Value::Bool(false), "{hello}");
            }
            _ => {
                // Four kinds of invalid request, in turn.
                let (line, want) = match (i / 8) % 4 {
                    0 => (format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"agent.hello""#), "parse_error"),
                    1 => {
                        (format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"keys.nope"}}"#), "method_not_found")
                    }
                    2 => (
                        format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"keys.list","params":{{"room":1}}}}"#),
                        "invalid_params",
                    ),
                    _ => (
                        format!(
                            r#"{{"jsonrpc":"2.0","id":{i},"method":"agent.hello","params":{{"x":0.5}}}}"#
                        ),
                        "parse_error",
                    ),
                };
                let e = raw.error_of(&line);
                assert_eq!(e.kind, want, "client {n}, request {i}: {e:?}");
            }
        }
    }
    REQUESTS
}

#[test]
fn sixty_four_clients_two_thousand_mixed_requests_each_journaled() {
    let agent = Agent::start();
    let mut c = agent.unlocked();
    let before: VerifyResult = c.call::<Verify>(&NoParams {}).expect("journal.verify");
    assert!(before.ok, "{before:?}");

    let sent: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|n| {
                s.spawn({
                    let agent = &agent;
                    move || client(agent, n)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a client failed")).sum()
    });
    assert_eq!(sent, CLIENTS * REQUESTS);

    let after: VerifyResult = c.call::<Verify>(&NoParams {}).expect("journal.verify");
    assert!(after.ok, "journal does not verify after the load: {after:?}");
    // Every request is journaled, the first `journal.verify` included, and
    // each client's `keys.create` has its intent entry too.
    assert_eq!(after.entries - before.entries, (sent + CLIENTS) as u64 + 1, "journal entries");
}
