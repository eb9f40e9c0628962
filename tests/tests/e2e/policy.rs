//! Policy scenarios through the real socket: each gets its documented
//! decision; askpass with real scripts that allow, deny and hang.

use super::agent_sign::{assert_verifies, create, sign, try_sign, RV};
use cryptoid_protocol::client::blocking::Client;
use cryptoid_protocol::json::{self, Int, Object, Value};
use cryptoid_protocol::wire::confirm::{Answer, AnswerParams, Pending};
use cryptoid_protocol::wire::keys::{Delete, KeyRef};
use cryptoid_protocol::wire::policy::{Check, CheckResult, Verdict};
use cryptoid_protocol::wire::rooms::{Observe, ObserveParams, ObservedEvent};
use cryptoid_protocol::wire::sign::SignPduParams;
use cryptoid_protocol::wire::{ErrorKind, NoParams};
use cryptoid_tests::agent::Agent;
use cryptoid_tests::pdus;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ROOM: &str = "!policy:x";
const OTHER: &str = "3TPraTczVkDPTRaX4K+AfUuyx7Mzq1UafTXypnl0t2k";

fn with(pdu: &Value, f: impl FnOnce(&mut Object)) -> Value {
    let mut o = pdu.as_object().expect("object").clone();
    f(&mut o);
    Value::Object(o)
}

fn int(v: i64) -> Value {
    Value::Int(Int::new(v).expect("int"))
}

fn check(c: &mut Client, pdu: Value) -> CheckResult {
    c.call::<Check>(&SignPduParams { room_version: RV.into(), pdu, event_id: None, intent: None })
        .expect("policy.check")
}

fn observe(c: &mut Client, events: Vec<ObservedEvent>) {
    super::agent_sign::observe(c, ROOM, events);
}

fn seen(id: &str, depth: u64) -> ObservedEvent {
    ObservedEvent {
        event_id: id.into(),
        depth,
        prev_events: vec![],
        event_type: None,
        state_key: None,
        content: None,
    }
}

/// A script in `dir` running `body` under /bin/sh.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

/// With `room_view = "claimed"`: these tests feed the view as summaries.
fn policy_agent(policy: &str) -> Agent {
    Agent::start_with(
        &[],
        Some(&format!("[policy]\nunknown_clients = \"allow\"\nconfirm_delete = false\nroom_view = \"claimed\"\n{policy}")),
    )
}

#[test]
fn hard_check_failures_are_denials_in_policy_check() {
    let agent = policy_agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let good = pdus::message(&k, ROOM, "hi");
    assert_eq!(check(&mut c, good.clone()).decision, Verdict::Allow);
    for (pdu, needle) in [
        (pdus::message(OTHER, ROOM, "x"), "[unknown_key]"),
        (pdus::message(&k, "!elsewhere:x", "x"), "[key_not_usable]"),
        (
            with(&good, |o| {
                drop(o.insert("hashes".into(), json::from_str(r#"{"sha256":"AAAA"}"#).expect("h")))
            }),
            "[hash_mismatch]",
        ),
    ] {
        let r = check(&mut c, pdu);
        assert_eq!(r.decision, Verdict::Deny);
        assert!(r.reasons[0].contains(needle), "{:?}", r.reasons);
    }
    let r = c
        .call::<Check>(&SignPduParams {
            room_version: RV.into(),
            pdu: good,
            event_id: Some(pdus::event_id('z')),
            intent: None,
        })
        .expect("check");
    assert!(r.reasons[0].contains("[event_id_mismatch]"), "{:?}", r.reasons);
}

#[test]
fn replay_into_the_past_is_denied_and_survives_restarts() {
    let mut agent = policy_agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    observe(&mut c, vec![seen(&pdus::event_id('f'), 200)]);
    let old = with(&pdus::message(&k, ROOM, "old"), |o| drop(o.insert("depth".into(), int(100))));
    let err = try_sign(&mut c, old.clone()).expect_err("100 below the frontier");
    cryptoid_tests::assert_denied(&err, "depth 100 is 100 below the newest depth 200");
    let fresh = with(&pdus::message(&k, ROOM, "new"), |o| drop(o.insert("depth".into(), int(201))));
    sign(&mut c, fresh);

    // Signed events raise the frontier; a crash right after loses nothing
    // (the journal is replayed into the room view).
    let newer = with(&pdus::message(&k, ROOM, "newer"), |o| drop(o.insert("depth".into(), int(400))));
    sign(&mut c, newer);
    agent.restart();
    let mut c = agent.unlocked();
    let err = try_sign(&mut c, with(&old, |o| drop(o.insert("depth".into(), int(300)))))
        .expect_err("below 400 − 50");
    cryptoid_tests::assert_denied(&err, "below the newest depth 400");
}

#[test]
fn strict_mode_needs_known_prev_events() {
    let agent = policy_agent("anti_replay = \"strict\"\n");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let pdu = pdus::message(&k, ROOM, "hi"); // prev_events: $bbb…
    let err = try_sign(&mut c, pdu.clone()).expect_err("unknown prev");
    cryptoid_tests::assert_denied(&err, "never observed or signed by the agent");
    observe(&mut c, vec![seen(&pdus::event_id('b'), 6)]);
    assert_verifies(&sign(&mut c, pdu).pdu, &k);
}

#[test]
fn timestamps_an_hour_off_are_denied() {
    let agent = policy_agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let base = pdus::message(&k, ROOM, "hi");
    let ts = base.as_object().and_then(|o| o.get("origin_server_ts")).and_then(Value::as_int).expect("ts");
    for (offset, needle) in [(-3_600_000, "in the past"), (3_600_000, "in the future")] {
        let err =
            try_sign(&mut c, with(&base, |o| drop(o.insert("origin_server_ts".into(), int(ts + offset)))))
                .expect_err("an hour off");
        cryptoid_tests::assert_denied(&err, needle);
    }
}

#[test]
fn intent_mismatch_is_denied() {
    let agent = policy_agent("require_intent = true\n");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let pdu = pdus::message(&k, ROOM, "hi");
    let err = try_sign(&mut c, pdu.clone()).expect_err("intent required");
    cryptoid_tests::assert_denied(&err, "require_intent");
    let intent = json::from_str(r#"{"type":"m.room.message","content":{"body":"bye","msgtype":"m.text"}}"#)
        .expect("intent");
    let err = c
        .call::<cryptoid_protocol::wire::sign::SignPdu>(&SignPduParams {
            room_version: RV.into(),
            pdu,
            event_id: None,
            intent: Some(intent),
        })
        .expect_err("mismatch");
    cryptoid_tests::assert_denied(&err, "PDU content is");
}

#[test]
fn power_over_others_asks_askpass_which_allows_or_denies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("asked.txt");
    let allow = script(
        dir.path(),
        "allow",
        &format!("printf '%s|%s' \"$1\" \"$CRYPTOID_ASKPASS_PROMPT\" > {}\nexit 0", log.display()),
    );
    let deny = script(dir.path(), "deny", "exit 1");
    for (askpass, allowed) in [(&deny, false), (&allow, true)] {
        let agent = policy_agent(&format!("askpass = \"{}\"\n", askpass.display()));
        let mut c = agent.unlocked();
        let k = create(&mut c, Some(ROOM));
        // The room's current power levels: only me at 100.
        let mut pl = seen(&pdus::event_id('p'), 3);
        pl.event_type = Some("m.room.power_levels".into());
        pl.state_key = Some(String::new());
        pl.content = Some(json::from_str(&format!(r#"{{"users":{{"{k}":100}}}}"#)).expect("pl"));
        observe(&mut c, vec![pl, seen(&pdus::event_id('b'), 6)]);
        let grant = pdus::state(
            &k,
            ROOM,
            "m.room.power_levels",
            "",
            &format!(r#"{{"users":{{"{k}":100,"{OTHER}":100}}}}"#),
            &pdus::event_id('b'),
        );
        let grant = with(&grant, |o| drop(o.insert("depth".into(), int(7))));
        let r = check(&mut c, grant.clone());
        assert_eq!(r.decision, Verdict::Confirm);
        assert_eq!(r.changes, ["users[3TPraTczVkDP…] 0 (default) → 100"]);
        match (try_sign(&mut c, grant), allowed) {
            (Ok(s), true) => assert_verifies(&s.pdu, &k),
            (Err(e), false) => assert_eq!(e.kind(), Some(ErrorKind::ConfirmationDenied), "{e}"),
            (other, _) => panic!("askpass {}: {other:?}", askpass.display()),
        }
    }
    let asked = std::fs::read_to_string(&log).expect("askpass ran");
    assert!(asked.ends_with("|confirm"), "{asked}");
    for needle in
        ["cryptoidctl", "m.room.power_levels", ROOM, "users[3TPraTczVkDP…] 0 (default) → 100", "(pid "]
    {
        assert!(
            asked.contains(needle) || (needle == "cryptoidctl" && asked.contains("e2e")),
            "{needle} in {asked}"
        );
    }
}

#[test]
fn a_hanging_askpass_times_out_and_is_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("pid");
    let hang = script(dir.path(), "hang", &format!("echo $$ > {}\nexec sleep 600", pidfile.display()));
    let agent = policy_agent(&format!("askpass = \"{}\"\nconfirm_timeout_secs = 2\n", hang.display()));
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let kick =
        pdus::state(&k, ROOM, "m.room.member", OTHER, r#"{"membership":"leave"}"#, &pdus::event_id('b'));
    let err = try_sign(&mut c, kick).expect_err("no answer");
    assert_eq!(err.kind(), Some(ErrorKind::ConfirmationTimeout));
    let pid: i32 = std::fs::read_to_string(&pidfile).expect("pid").trim().parse().expect("pid number");
    // The agent killed it (it may take a moment to be reaped).
    let gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
    });
    assert!(gone, "askpass {pid} still running");
}

/// Answers the first pending confirmation from another connection, after
/// running `before` on that connection; what was shown: the prompt, then
/// each change.
pub(super) fn answer_after(
    agent: &Agent,
    allow: bool,
    remember: Option<u32>,
    before: impl FnOnce(&mut Client) + Send + 'static,
) -> std::thread::JoinHandle<Vec<String>> {
    let mut other = agent.client();
    std::thread::spawn(move || {
        for _ in 0..100 {
            let pending = other.call::<Pending>(&NoParams {}).expect("pending").pending;
            if let Some(p) = pending.first() {
                before(&mut other);
                let mut shown = vec![p.prompt.clone()];
                shown.extend(p.changes.clone());
                other
                    .call::<Answer>(&AnswerParams { id: p.id, allow, remember_secs: remember })
                    .expect("answer");
                return shown;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no confirmation appeared");
    })
}

/// Answers the first pending confirmation from another connection.
fn answer_from_another_client(
    agent: &Agent,
    allow: bool,
    remember: Option<u32>,
) -> std::thread::JoinHandle<Vec<String>> {
    answer_after(agent, allow, remember, |_| {})
}

#[test]
fn kick_and_ban_wait_for_an_answer_over_the_socket_and_approvals_cover_the_exact_change() {
    let agent = policy_agent("confirm_timeout_secs = 2\n");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let ban = pdus::state(&k, ROOM, "m.room.member", OTHER, r#"{"membership":"ban"}"#, &pdus::event_id('b'));
    assert_eq!(check(&mut c, ban.clone()).changes, ["ban 3TPraTczVkDP…"]);
    let answering = answer_from_another_client(&agent, false, None);
    let err = try_sign(&mut c, ban.clone()).expect_err("declined");
    assert_eq!(err.kind(), Some(ErrorKind::ConfirmationDenied));
    assert!(answering.join().expect("answer")[0].contains("ban 3TPraTczVkDP…"));

    let answering = answer_from_another_client(&agent, true, Some(300));
    assert_verifies(&sign(&mut c, ban.clone()).pdu, &k);
    answering.join().expect("answer");
    // Remembered for exactly this change: the same ban again needs no answer…
    // (Deeper than the first ban, which anchors the room now.)
    let again = with(&ban, |o| drop(o.insert("depth".into(), int(2))));
    assert_verifies(&sign(&mut c, again).pdu, &k);
    let tail = c
        .call::<cryptoid_protocol::wire::journal::Tail>(&cryptoid_protocol::wire::journal::TailParams {
            limit: Some(1),
            room_id: None,
        })
        .expect("tail");
    let last = tail.entries[0].as_object().expect("entry");
    assert_eq!(last.get("decision").and_then(Value::as_str), Some("confirm"));
    assert_eq!(last.get("confirmed_by").and_then(Value::as_str), Some("remembered approval"));
    // …but it does not cover another change of the same type: a kick asks.
    let kick =
        pdus::state(&k, ROOM, "m.room.member", OTHER, r#"{"membership":"leave"}"#, &pdus::event_id('b'));
    let kick = with(&kick, |o| drop(o.insert("depth".into(), int(3))));
    let err = try_sign(&mut c, kick).expect_err("not covered");
    assert_eq!(err.kind(), Some(ErrorKind::ConfirmationTimeout), "{err}");
}

#[test]
fn a_burst_beyond_the_rate_limit_needs_confirmation() {
    let agent = policy_agent("confirm_timeout_secs = 1\n[policy.rate]\nper_room = 3\nper_client = 0\n");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    for i in 0..3 {
        sign(&mut c, pdus::message(&k, ROOM, &format!("m{i}")));
    }
    let r = check(&mut c, pdus::message(&k, ROOM, "m3"));
    assert_eq!(r.decision, Verdict::Confirm);
    assert!(r.reasons[0].contains("burst: 3 signatures in !policy:x"), "{:?}", r.reasons);
    let err = try_sign(&mut c, pdus::message(&k, ROOM, "m3")).expect_err("unanswered");
    assert_eq!(err.kind(), Some(ErrorKind::ConfirmationTimeout));
}

#[test]
fn unknown_clients_are_confirmed_once_per_session() {
    let agent = Agent::start_with(
        &[],
        Some("[policy]\nconfirm_delete = true\n[policy.rate]\nper_room = 0\nper_client = 0\n"),
    );
    let mut c = agent.unlocked();
    // Management by an unknown client: confirm once.
    let answering = answer_from_another_client(&agent, true, None);
    let k = create(&mut c, Some(ROOM));
    assert!(answering.join().expect("answer")[0].contains("create a cryptoID for room !policy:x"));
    // Approved for this session: signing and more management go through.
    sign(&mut c, pdus::message(&k, ROOM, "hi"));
    create(&mut c, Some("!second:x"));
    // Deleting still asks (confirm_delete).
    let answering = answer_from_another_client(&agent, false, None);
    let err = c.call::<Delete>(&KeyRef { cryptoid: k.clone() }).expect_err("declined");
    assert_eq!(err.kind(), Some(ErrorKind::ConfirmationDenied));
    assert!(answering.join().expect("answer")[0].contains("delete cryptoID"));
}

/// A member observed with a server-signed `mxid_mapping` is named by Matrix
/// ID in what the policy shows; one whose signature does not verify (or
/// whose server key was not given) is marked as the homeserver's claim.
#[test]
fn members_are_named_by_matrix_id_and_unverified_names_are_marked() {
    use cryptoid_protocol::keys::KeyPair;
    let agent = policy_agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let server = KeyPair::from_seed(&[9; 32]);
    let mapping = |user: &str, key: &KeyPair| {
        let mut m = json::from_str(&format!(r#"{{"user_room_key":"{OTHER}","user_id":"{user}"}}"#))
            .expect("mapping")
            .into_object()
            .expect("object");
        cryptoid_protocol::event::sign_json(&mut m, "example.org", "ed25519:1", key).expect("sign");
        m
    };
    let member_event = |m: Object| ObservedEvent {
        event_id: pdus::event_id('m'),
        depth: 3,
        prev_events: vec![],
        event_type: Some("m.room.member".into()),
        state_key: Some(OTHER.into()),
        content: Some(Value::Object(Object::from_iter([
            ("membership".to_owned(), Value::from("join")),
            ("mxid_mapping".to_owned(), Value::Object(m)),
        ]))),
    };
    let keys = std::collections::BTreeMap::from([(
        "example.org".to_owned(),
        std::collections::BTreeMap::from([("ed25519:1".to_owned(), server.public_key().to_base64())]),
    )]);
    let ban = pdus::state(&k, ROOM, "m.room.member", OTHER, r#"{"membership":"ban"}"#, &pdus::event_id('b'));
    let observe_with = |c: &mut Client, m: Object, keys: &std::collections::BTreeMap<_, _>| {
        c.call::<Observe>(&ObserveParams {
            room_id: ROOM.into(),
            room_version: None,
            events: vec![member_event(m)],
            server_keys: keys.clone(),
            pdus: Vec::new(),
        })
        .expect("observe");
    };
    // Verified: the server's key was given and its signature holds.
    observe_with(&mut c, mapping("@bob:example.org", &server), &keys);
    assert_eq!(check(&mut c, ban.clone()).changes, ["ban @bob:example.org (3TPraTczVkDP…)"]);
    // The person is asked with the names: the member's and the room's.
    let mut named = seen(&pdus::event_id('n'), 5);
    named.event_type = Some("m.room.name".into());
    named.state_key = Some(String::new());
    named.content = Some(json::from_str(r#"{"name":"Team room\u202e"}"#).expect("name"));
    observe(&mut c, vec![named]);
    let after_name = with(&ban, |o| {
        o.insert("prev_events".into(), Value::Array(vec![Value::from(pdus::event_id('n'))]));
        o.insert("depth".into(), int(6));
    });
    let answering = answer_from_another_client(&agent, false, None);
    let err = try_sign(&mut c, after_name).expect_err("declined");
    assert_eq!(err.kind(), Some(ErrorKind::ConfirmationDenied), "{err:?}");
    let shown = answering.join().expect("answer").join("\n");
    assert!(shown.contains("ban @bob:example.org (3TPraTczVkDP…)"), "{shown}");
    assert!(shown.contains("!policy:x (named «Team room\\u202e»)"), "the room by name, escaped: {shown}");
    // Attack: a user ID that dresses up as a verified name with the key in
    // brackets is no user ID; it names nobody.
    observe_with(&mut c, mapping("@bob:example.org (3TPraTczVkDP…)", &server), &keys);
    assert_eq!(
        check(
            &mut c,
            pdus::state(&k, ROOM, "m.room.member", OTHER, r#"{"membership":"ban"}"#, &pdus::event_id('b'))
        )
        .changes,
        ["ban @bob:example.org (3TPraTczVkDP…)"],
        "the earlier name stays"
    );
    // Attack: a mapping the homeserver made up (signed by another key).
    observe_with(&mut c, mapping("@alice:example.org", &KeyPair::from_seed(&[7; 32])), &keys);
    assert_eq!(
        check(&mut c, ban.clone()).changes,
        ["ban 3TPraTczVkDP… (name claimed by the homeserver: @alice:example.org)"]
    );
    // Attack: a client offers its own key for the server, to make its
    // forged mapping verify: the key pinned first stands.
    let forger = KeyPair::from_seed(&[7; 32]);
    let forged_keys = std::collections::BTreeMap::from([(
        "example.org".to_owned(),
        std::collections::BTreeMap::from([("ed25519:1".to_owned(), forger.public_key().to_base64())]),
    )]);
    observe_with(&mut c, mapping("@alice:example.org", &forger), &forged_keys);
    assert_eq!(
        check(&mut c, ban.clone()).changes,
        ["ban 3TPraTczVkDP… (name claimed by the homeserver: @alice:example.org)"]
    );
    // Observed again without keys: checked against the keys pinned before.
    observe_with(&mut c, mapping("@bob:example.org", &server), &Default::default());
    assert_eq!(check(&mut c, ban.clone()).changes, ["ban @bob:example.org (3TPraTczVkDP…)"]);
    // A server whose key was never given: a claim.
    let mut other = json::from_str(&format!(r#"{{"user_room_key":"{OTHER}","user_id":"@carol:other.org"}}"#))
        .expect("mapping")
        .into_object()
        .expect("object");
    cryptoid_protocol::event::sign_json(&mut other, "other.org", "ed25519:1", &server).expect("sign");
    observe_with(&mut c, other, &Default::default());
    assert_eq!(
        check(&mut c, ban).changes,
        ["ban 3TPraTczVkDP… (name claimed by the homeserver: @carol:other.org)"]
    );
}

/// The user's own join carries the homeserver's `mxid_mapping`: one that
/// names another cryptoID, or another user than the key's, is denied.
#[test]
fn an_own_join_whose_mxid_mapping_names_someone_else_is_denied() {
    let agent = policy_agent("");
    let mut c = agent.unlocked();
    let k = c
        .call::<cryptoid_protocol::wire::keys::Create>(&cryptoid_protocol::wire::keys::CreateParams {
            room_id: Some(ROOM.into()),
            user_id: Some("@alice:example.org".into()),
            backend: None,
        })
        .expect("key")
        .cryptoid;
    let join = |key: &str, user: &str| {
        let content = format!(
            r#"{{"membership":"join","mxid_mapping":{{"user_room_key":"{key}","user_id":"{user}","signatures":{{}}}}}}"#
        );
        pdus::state(&k, ROOM, "m.room.member", &k, &content, &pdus::event_id('j'))
    };
    let r = check(&mut c, join(OTHER, "@alice:example.org"));
    assert_eq!(r.decision, Verdict::Deny, "{r:?}");
    assert!(
        r.reasons.iter().any(|x| x.contains("names cryptoID 3TPraTczVkDP…, not the key that signs it")),
        "{r:?}"
    );
    let r = check(&mut c, join(&k, "@eve:example.org"));
    assert_eq!(r.decision, Verdict::Deny, "{r:?}");
    assert!(
        r.reasons
            .iter()
            .any(|x| x.contains("names @eve:example.org, but this cryptoID belongs to @alice:example.org")),
        "{r:?}"
    );
    // Control: the honest mapping.
    let r = check(&mut c, join(&k, "@alice:example.org"));
    assert_ne!(r.decision, Verdict::Deny, "{r:?}");
}

/// A sign pipelined in front of one that waits for a person is journaled
/// before the wait, not after it: its journal entry is on disk while the
/// question is open (found by review: it sat in the write queue for the
/// whole wait, while its room-view change could already reach the disk).
#[test]
fn a_sign_pipelined_before_a_confirmation_is_journaled_before_the_wait() {
    let agent = policy_agent("confirm_timeout_secs = 20\n");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let line = |id: u32, pdu: &Value| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"sign.pdu","params":{{"room_version":"{RV}","pdu":{pdu}}}}}"#
        )
    };
    let message = pdus::message(&k, ROOM, "before the ban");
    let ban = pdus::state(&k, ROOM, "m.room.member", OTHER, r#"{"membership":"ban"}"#, &pdus::event_id('b'));
    let mut raw = cryptoid_tests::raw::Raw::open(&agent);
    raw.send(format!("{}\n{}\n", line(1, &message), line(2, &ban)).as_bytes());
    // While the ban's question is open (nobody asks the agent anything
    // meanwhile: any other request would write the queue itself), the
    // message's entry reaches the disk.
    let journal = agent.data_dir().join("journal");
    let signed_on_disk = || {
        let mut signed = Vec::new();
        for f in std::fs::read_dir(&journal).expect("journal dir").flatten() {
            for l in std::fs::read_to_string(f.path()).unwrap_or_default().lines() {
                let e = json::from_str(l).expect("journal line");
                let s =
                    |k: &str| e.as_object().and_then(|o| o.get(k)).and_then(Value::as_str).map(str::to_owned);
                if s("method").as_deref() == Some("sign.pdu") {
                    signed.push((s("type").unwrap_or_default(), s("outcome").unwrap_or_default()));
                }
            }
        }
        signed
    };
    let seen = (0..50).find_map(|_| {
        let s = signed_on_disk();
        if s.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
            return None;
        }
        Some(s)
    });
    assert_eq!(seen, Some(vec![("m.room.message".to_owned(), "ok".to_owned())]));
    answer_after(&agent, true, None, |_| {}).join().expect("answered");
    let answers: Vec<Value> = (0..2).map(|_| raw.line()).collect();
    for a in &answers {
        let pdu = a
            .as_object()
            .and_then(|o| o.get("result"))
            .and_then(|r| r.as_object())
            .and_then(|r| r.get("pdu"));
        assert_verifies(pdu.expect("signed"), &k);
    }
}
