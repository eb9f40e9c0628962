//! Writes a verified room history at scale, and measures the in-process
//! floor of verifying it, for `tests/scale.py` (the verified view's cost):
//!
//!     history-gen OUT MEMBERS MESSAGES
//!
//! The room (`org.matrix.msc4080`, public): create, the creator's join,
//! power levels, join rules, then MEMBERS joins (one cryptoID each) and
//! MESSAGES messages by them, every event signed and citing the auth events
//! a server picks. OUT gets the events as one JSON array. Prints
//! `{"events": N, "floor_events_per_s": F}`: the received-event checks and
//! the authorization rules of the same events in this process, with the
//! auth events in a hash map (the agent's floor: no storage, no socket).

use cryptoid_protocol::json::{self, Object, Value};
use cryptoid_protocol::keys::{KeyPair, PublicKey};
use cryptoid_protocol::{auth, received};
use cryptoid_tests::history::{History, RV};
use std::collections::HashMap;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, out, members, messages] = args.as_slice() else {
        eprintln!("usage: history-gen OUT MEMBERS MESSAGES");
        std::process::exit(2);
    };
    let (members, messages): (usize, usize) =
        (members.parse().expect("MEMBERS is a number"), messages.parse().expect("MESSAGES is a number"));
    let creator = KeyPair::from_seed(&[1; 32]);
    let mut h = History::new(
        &creator,
        "!verified-scale:example.org",
        &format!(r#"{{"users":{{"{}":100}}}}"#, creator.cryptoid()),
    );
    // Public: each member joins on its own.
    h.add(&creator, "m.room.join_rules", Some(""), r#"{"join_rule":"public"}"#);
    let keys: Vec<KeyPair> = (0..members)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 2).to_le_bytes());
            KeyPair::from_seed(&seed)
        })
        .collect();
    for k in &keys {
        h.add(k, "m.room.member", Some(&k.cryptoid()), r#"{"membership":"join"}"#);
    }
    for i in 0..messages {
        let k = &keys[i % keys.len().max(1)];
        h.add(k, "m.room.message", None, &format!(r#"{{"body":"message {i}","msgtype":"m.text"}}"#));
    }
    let text = json::to_canonical_string(&Value::Array(h.pdus()));
    std::fs::write(out, text).expect("write OUT");

    let no_keys = |_: &str| -> Vec<(String, PublicKey)> { Vec::new() };
    let t = Instant::now();
    let mut held: HashMap<String, Object> = HashMap::new();
    for e in &h.events {
        let r = received::check(e, &RV, &no_keys).expect("verifies");
        let ids = auth::auth_event_ids(e, &RV);
        let refs: Vec<(&str, &Object)> =
            ids.iter().filter_map(|id| held.get(id).map(|a| (id.as_str(), a))).collect();
        auth::check(&RV, &r.event_id, e, &refs).expect("authorized");
        if e.contains_key("state_key") {
            held.insert(r.event_id, e.clone());
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        r#"{{"events": {}, "floor_events_per_s": {:.0}}}"#,
        h.events.len(),
        h.events.len() as f64 / secs
    );
}
