//! `kill -9` at random points while keys are made, one-time keys generated
//! and bound, PDUs signed and the journal rotated: after
//! each restart the journal verifies, and at the end every public key the
//! agent ever returned still signs and no key is bound twice.

use super::agent_sign::{assert_verifies, try_sign, RV};
use cryptoid_protocol::client::blocking::Client;
use cryptoid_protocol::wire::journal::Verify;
use cryptoid_protocol::wire::keys::{Create, CreateParams, KeyKind, KeyState, List, ListParams};
use cryptoid_protocol::wire::otk::{Claim, ClaimParams, Generate, GenerateParams};
use cryptoid_protocol::wire::sign::{SignPdu, SignPduParams};
use cryptoid_protocol::wire::NoParams;
use cryptoid_tests::agent::Agent;
use cryptoid_tests::pdus;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Kills per run: 12 by default (CI), `CRYPTOID_CRASH_KILLS` for long runs
/// (`CRYPTOID_CRASH_KILLS=200 cargo nextest run -E 'test(kill9)'`).
fn kills() -> u64 {
    std::env::var("CRYPTOID_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(12)
}

/// A small deterministic generator (xorshift), seeded per run and printed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Default)]
struct Returned {
    /// cryptoID → room of room keys and acknowledged claims, or None for
    /// unclaimed one-time keys.
    keys: HashMap<String, Option<String>>,
    /// One-time cryptoID → the room a claim was sent for (acknowledged or not).
    claims: HashMap<String, String>,
}

fn workload(mut c: Client, round: u64, seen: Arc<Mutex<Returned>>) {
    let mut n = 0u64;
    loop {
        n += 1;
        let fresh = match c.call::<Generate>(&GenerateParams { count: 5, backend: None }) {
            Ok(r) => {
                let mut s = seen.lock().expect("lock");
                for k in &r.keys {
                    s.keys.insert(k.cryptoid.clone(), None);
                }
                r.keys
            }
            Err(_) => return,
        };
        // An invite binds one of them; the binding may be cut by the kill.
        let otk = &fresh[0].cryptoid;
        let invited = format!("!invite{round}-{n}:x");
        seen.lock().expect("lock").claims.insert(otk.clone(), invited.clone());
        if c.call::<Claim>(&ClaimParams { cryptoid: otk.clone(), room_id: invited.clone() }).is_err() {
            return;
        }
        seen.lock().expect("lock").keys.insert(otk.clone(), Some(invited));
        let room = format!("!crash{round}-{n}:x");
        let Ok(k) = c.call::<Create>(&CreateParams { room_id: Some(room.clone()), ..Default::default() })
        else {
            return;
        };
        seen.lock().expect("lock").keys.insert(k.cryptoid.clone(), Some(room.clone()));
        let pdu = pdus::message(&k.cryptoid, &room, "during the crash test");
        if c.call::<SignPdu>(&SignPduParams { room_version: RV.into(), pdu, event_id: None, intent: None })
            .is_err()
        {
            return;
        }
    }
}

#[test]
fn kill9_during_key_creation_binding_and_signing_loses_nothing() {
    // Small journal segments, so rotation happens under the kills too.
    let mut agent = Agent::start_with(&[], Some("[journal]\nmax_segment_bytes = 4096\n"));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let seen = Arc::new(Mutex::new(Returned::default()));
    let kills = kills();
    for round in 0..kills {
        let c = agent.unlocked();
        let s = seen.clone();
        let worker = std::thread::spawn(move || workload(c, round, s));
        std::thread::sleep(Duration::from_millis(20 + rng.next() % 150));
        agent.kill9();
        worker.join().expect("workload thread");
        agent.spawn().expect("restart after kill -9");
        let v = agent.client().call::<Verify>(&NoParams {}).expect("journal.verify");
        assert!(v.ok, "round {round}: {:?}", v.error);
    }
    let Returned { keys: seen, claims } = std::mem::take(&mut *seen.lock().expect("lock"));
    assert!(seen.len() > kills as usize, "the workload made keys ({})", seen.len());

    let mut c = agent.unlocked();
    let all = c.call::<List>(&ListParams::default()).expect("list").keys;
    let listed: HashMap<&str, _> = all.iter().map(|k| (k.cryptoid.as_str(), k)).collect();
    for (cryptoid, room) in &seen {
        let k = listed.get(cryptoid.as_str()).unwrap_or_else(|| panic!("returned key {cryptoid} lost"));
        let room = match room {
            Some(r) => {
                assert_eq!((k.state, k.room_id.as_ref()), (KeyState::Bound, Some(r)));
                r.clone()
            }
            // A claim cut by the kill either bound the key to its room or
            // left it free; never to another room.
            None if k.state == KeyState::Bound => {
                let r = claims.get(cryptoid).expect("a bound key was claimed");
                assert_eq!(k.room_id.as_ref(), Some(r), "one-time key {cryptoid} bound elsewhere");
                r.clone()
            }
            None => {
                assert_eq!(k.kind, KeyKind::OneTime);
                let r = format!("!otk-{}:x", cryptoid.replace(['/', '+'], "_"));
                c.call::<Claim>(&ClaimParams { cryptoid: cryptoid.clone(), room_id: r.clone() })
                    .expect("claim");
                r
            }
        };
        let signed = try_sign(&mut c, pdus::message(cryptoid, &room, "after the crashes"))
            .expect("every returned key still signs");
        assert_verifies(&signed.pdu, cryptoid);
    }
    // No room has two bound keys; no key is in two rooms.
    let all = c.call::<List>(&ListParams::default()).expect("list").keys;
    let mut rooms = HashSet::new();
    for k in all.iter().filter(|k| k.state == KeyState::Bound) {
        assert!(rooms.insert(k.room_id.clone()), "room {:?} has two keys", k.room_id);
    }
    let v = c.call::<Verify>(&NoParams {}).expect("verify");
    assert!(v.ok, "{:?}", v.error);
}
