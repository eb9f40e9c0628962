//! Safety invariant: a one-time cryptoID is never bound to two rooms, and a
//! room never gets two active keys for the user, whatever order claims come
//! in, whether they race, and across restarts of the agent.

use cryptoid_agent::clock::ManualClock;
use cryptoid_agent::config::Config;
use cryptoid_agent::service::Service;
use cryptoid_protocol::wire::keys::{KeyRef, KeyState};
use cryptoid_protocol::wire::otk::{ClaimParams, GenerateParams};
use cryptoid_protocol::wire::ErrorKind;
use proptest::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

const KEYS: usize = 4;
const ROOMS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    /// One claim of key `.0` for room `.1`.
    Claim(usize, usize),
    /// Claims of one key for every room at once, from several threads.
    Race(usize),
    /// Drop the service and open it again from disk.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..KEYS, 0..ROOMS).prop_map(|(k, r)| Op::Claim(k, r)),
        2 => (0..KEYS).prop_map(Op::Race),
        1 => Just(Op::Restart),
    ]
}

fn open(dir: &Path) -> Service {
    Service::open(dir, Config::default(), true, Arc::new(ManualClock::new(1_800_000_000_000)))
        .expect("service")
}

fn room(r: usize) -> String {
    format!("!room{r}:x")
}

fn claim(svc: &Service, key: &str, r: usize) -> Result<(), ErrorKind> {
    let p = ClaimParams { cryptoid: key.to_owned(), room_id: room(r) };
    svc.otk_claim(&p).map(|_| ()).map_err(|e| e.kind())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn one_time_cryptoid_never_bound_to_two_rooms(ops in proptest::collection::vec(op(), 1..24)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut svc = Arc::new(open(dir.path()));
        let keys: Vec<String> = svc
            .otk_generate(&GenerateParams { count: KEYS as u32, backend: None })
            .expect("generate")
            .keys
            .into_iter()
            .map(|k| k.cryptoid)
            .collect();
        // The model: which room each key went to, and which key each room has.
        let mut bound: HashMap<usize, usize> = HashMap::new();
        let mut holder: HashMap<usize, usize> = HashMap::new();

        for op in ops {
            match op {
                Op::Claim(k, r) => {
                    let got = claim(&svc, &keys[k], r);
                    let allowed = match (bound.get(&k), holder.get(&r)) {
                        (Some(&br), _) => br == r,
                        (None, Some(_)) => false,
                        (None, None) => true,
                    };
                    if allowed {
                        prop_assert_eq!(got, Ok(()), "claim of key {} for room {} refused", k, r);
                        bound.insert(k, r);
                        holder.insert(r, k);
                    } else {
                        prop_assert_eq!(got, Err(ErrorKind::KeyNotUsable), "claim of key {} for room {}", k, r);
                    }
                }
                Op::Race(k) => {
                    let winners: Vec<usize> = std::thread::scope(|s| {
                        let handles: Vec<_> = (0..ROOMS)
                            .map(|r| {
                                let svc = &svc;
                                let key = &keys[k];
                                s.spawn(move || claim(svc, key, r).ok().map(|()| r))
                            })
                            .collect();
                        handles.into_iter().filter_map(|h| h.join().expect("thread")).collect()
                    });
                    // At most one room wins, and only one the model allows.
                    prop_assert!(winners.len() <= 1, "key {} bound to rooms {:?} at once", k, winners);
                    if let Some(&r) = winners.first() {
                        prop_assert!(bound.get(&k).is_none_or(|&br| br == r));
                        prop_assert!(holder.get(&r).is_none_or(|&hk| hk == k));
                        bound.insert(k, r);
                        holder.insert(r, k);
                    } else {
                        prop_assert!(bound.contains_key(&k) || (0..ROOMS).all(|r| holder.contains_key(&r)),
                            "a free key lost a race with no winner");
                    }
                }
                Op::Restart => {
                    drop(svc);
                    svc = Arc::new(open(dir.path()));
                }
            }
            // What the agent holds matches the model after every step.
            for (k, key) in keys.iter().enumerate() {
                let info = svc.keys_get(&KeyRef { cryptoid: key.clone() }).expect("get");
                match bound.get(&k) {
                    Some(&r) => {
                        prop_assert_eq!(info.state, KeyState::Bound);
                        prop_assert_eq!(info.room_id, Some(room(r)));
                    }
                    None => prop_assert_eq!(info.room_id, None),
                }
            }
        }
    }
}
