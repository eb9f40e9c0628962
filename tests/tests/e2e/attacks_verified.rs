//! The verified room view against the real agent over its socket, with
//! the default `room_view = "verified"`: a homeserver that invents facts
//! about a room. Each attack has a control beside it that must still pass.
//!
//! The room: an honest history built with the protocol crate (create by A,
//! A's join, power levels giving A and the agent's key B 100, join rules,
//! C invited and joined at level 0), every event signed by its sender's
//! cryptoID, B's join signed by the agent itself.

use super::agent_sign::{assert_verifies, create, sign, try_sign, RV};
use super::attacks::{denied, refused};
use cryptoid_protocol::client::blocking::Client;
use cryptoid_protocol::json::{Object, Value};
use cryptoid_protocol::keys::{KeyPair, CRYPTOID_KEY_ID};
use cryptoid_protocol::wire::policy::{Check, CheckResult, Verdict};
use cryptoid_protocol::wire::rooms::{Observe, ObserveParams, ObservedEvent, RoomView};
use cryptoid_protocol::wire::sign::SignPduParams;
use cryptoid_protocol::wire::ErrorKind;
use cryptoid_protocol::{event, json};
use cryptoid_tests::agent::Agent;
use cryptoid_tests::history::History;

const ROOM: &str = "!verified:x";

fn agent() -> Agent {
    Agent::start_with(
        &[],
        Some("[policy]\nunknown_clients = \"allow\"\nconfirm_delete = false\nconfirm_timeout_secs = 2\n[policy.rate]\nper_room = 0\nper_client = 0\n"),
    )
}

struct Room {
    h: History,
    a: KeyPair,
    c: KeyPair,
    b: String,
}

fn observe_pdus(
    c: &mut Client,
    pdus: Vec<Value>,
) -> Result<RoomView, cryptoid_protocol::client::ClientError> {
    c.call::<Observe>(&ObserveParams { room_id: ROOM.into(), pdus, ..ObserveParams::default() })
}

fn check(c: &mut Client, pdu: Object) -> CheckResult {
    c.call::<Check>(&SignPduParams {
        room_version: RV.into(),
        pdu: Value::Object(pdu),
        event_id: None,
        intent: None,
    })
    .expect("policy.check")
}

/// The honest room, observed in full (every event verified).
fn honest_room(c: &mut Client) -> Room {
    let b = create(c, Some(ROOM));
    let a = KeyPair::from_seed(&[0xa; 32]);
    let cc = KeyPair::from_seed(&[0xc; 32]);
    let power = format!(r#"{{"users":{{"{}":100,"{b}":100}}}}"#, a.cryptoid());
    let mut h = History::new(&a, ROOM, &power);
    h.add(&a, "m.room.member", Some(&b), r#"{"membership":"invite"}"#);
    let join = h.next(&b, "m.room.member", Some(&b), r#"{"membership":"join"}"#, None);
    let signed = sign(c, Value::Object(join));
    h.push(signed.pdu.into_object().expect("object"));
    h.add(&a, "m.room.member", Some(&cc.cryptoid()), r#"{"membership":"invite"}"#);
    h.add(&cc, "m.room.member", Some(&cc.cryptoid()), r#"{"membership":"join"}"#);
    let view = observe_pdus(c, h.pdus()).expect("an honest history is accepted");
    assert_eq!((view.verified, view.claimed), (h.events.len() as u64, 0), "{view:?}");
    Room { h, a, c: cc, b }
}

/// Signs `pdu` with `key` as its sender's client would.
fn signed_by(key: &KeyPair, pdu: Object) -> Object {
    event::hash_and_sign(pdu, &RV_VERSION, &key.cryptoid(), CRYPTOID_KEY_ID, key).expect("sign").event
}

const RV_VERSION: cryptoid_protocol::RoomVersion = cryptoid_protocol::RoomVersion::MSC4080;

fn power_content(r: &Room, extra: &str) -> String {
    format!(r#"{{"users":{{"{}":100,"{}":100{extra}}}}}"#, r.a.cryptoid(), r.b)
}

/// Attack: the homeserver alters a verified event's content (C granted
/// 100 in A's power levels), or signs an event with a key that is not its
/// sender's, or names an event by another ID. Each is refused with its own
/// cause, and nothing of the call is kept. Control: the honest history.
#[test]
fn a_forged_event_in_rooms_observe_is_refused() {
    let agent = agent();
    let mut c = agent.unlocked();
    let r = honest_room(&mut c);
    let pl_index = r.h.ids.iter().position(|i| *i == r.h.id_of("m.room.power_levels", "")).expect("pl");
    let mut forged = r.h.events[pl_index].clone();
    let users = forged
        .get_mut("content")
        .and_then(Value::as_object_mut)
        .and_then(|c| c.get_mut("users"))
        .and_then(Value::as_object_mut)
        .expect("users");
    users.insert(r.c.cryptoid(), Value::Int(json::Int::from(100)));
    let e = observe_pdus(&mut c, vec![Value::Object(forged)]).expect_err("a forged event");
    assert_eq!(e.kind(), Some(ErrorKind::BadPdu), "{e}");
    assert!(matches!(e.cause(), Some("observed_signature" | "observed_content_hash")), "{e}");
    // Signed by C, claiming to be A's.
    let mut impostor = r.h.next(&r.a.cryptoid(), "m.room.topic", Some(""), r#"{"topic":"x"}"#, None);
    impostor = signed_by(&r.c, impostor);
    let e = observe_pdus(&mut c, vec![Value::Object(impostor)]).expect_err("an impostor");
    assert_eq!(e.cause(), Some("observed_signature"), "{e}");
    // A carried event ID that is not the event's hash.
    let mut renamed = r.h.events[1].clone();
    renamed.insert("event_id".into(), r.h.ids[2].as_str().into());
    let e = observe_pdus(&mut c, vec![Value::Object(renamed)]).expect_err("another ID");
    assert_eq!(e.cause(), Some("observed_event_id"), "{e}");
    // A refused call keeps nothing: a good event in the same call is not
    // known afterwards (the message cites it as prev and stays unverified).
    let good = signed_by(&r.c, r.h.next(&r.c.cryptoid(), "m.room.message", None, r#"{"body":"hi"}"#, None));
    let bad = signed_by(&r.c, r.h.next(&r.a.cryptoid(), "m.room.message", None, r#"{"body":"x"}"#, None));
    let e = observe_pdus(&mut c, vec![Value::Object(good.clone()), Value::Object(bad)]).expect_err("one bad");
    assert_eq!(e.cause(), Some("observed_signature"), "{e}");
    // Control: the same good event alone is accepted and verified.
    let v = observe_pdus(&mut c, vec![Value::Object(good)]).expect("control");
    assert_eq!((v.verified, v.claimed), (1, 0));
}

/// Attack: C, at level 0, signs power levels that give C 100, and the
/// homeserver serves it. Servers reject it; the agent refuses it, and the
/// power shown for a later change is still A's. Control: A's own change
/// (D to 50) is accepted and becomes the baseline.
#[test]
fn a_power_change_by_a_member_without_power_does_not_become_current() {
    let agent = agent();
    let mut c = agent.unlocked();
    let mut r = honest_room(&mut c);
    let grab = signed_by(
        &r.c,
        r.h.next(
            &r.c.cryptoid(),
            "m.room.power_levels",
            Some(""),
            &power_content(&r, &format!(r#","{}":100"#, r.c.cryptoid())),
            None,
        ),
    );
    let e = observe_pdus(&mut c, vec![Value::Object(grab)]).expect_err("unauthorized");
    assert_eq!(e.cause(), Some("observed_unauthorized"), "{e}");
    assert!(e.to_string().contains("power level"), "{e}");
    // B's power levels that "keep" C at 100 show the grant.
    let keep = r.h.next(
        &r.b,
        "m.room.power_levels",
        Some(""),
        &power_content(&r, &format!(r#","{}":100"#, r.c.cryptoid())),
        None,
    );
    let d = check(&mut c, keep);
    let short: String = r.c.cryptoid().chars().take(12).collect();
    assert!(d.changes.iter().any(|ch| ch.contains(&short) && ch.contains("→ 100")), "{:?}", d.changes);
    // Control: A's change is authorized and becomes the baseline.
    let d_key = KeyPair::from_seed(&[0xd; 32]).cryptoid();
    let by_a = signed_by(
        &r.a,
        r.h.next(
            &r.a.cryptoid(),
            "m.room.power_levels",
            Some(""),
            &power_content(&r, &format!(r#","{d_key}":50"#)),
            None,
        ),
    );
    let v = observe_pdus(&mut c, vec![Value::Object(by_a.clone())]).expect("A may");
    assert_eq!(v.verified, 1);
    r.h.push(by_a);
    let same = r.h.next(
        &r.b,
        "m.room.power_levels",
        Some(""),
        &power_content(&r, &format!(r#","{d_key}":50"#)),
        None,
    );
    let d = check(&mut c, same);
    assert!(d.changes.is_empty(), "unchanged against A's verified power levels: {:?}", d.changes);
}

/// Attack: the homeserver feeds a summary (a claim) of power levels that
/// give C 100, and builds B's power levels citing it in `auth_events`, so
/// that "keeping" the grant would look like no change. The agent asks,
/// says the baseline is not verified, and names the grant. Control: the
/// same content citing the verified power levels shows the grant too and
/// passes the rules; a message citing verified events is allowed.
#[test]
fn auth_events_naming_an_unverified_power_levels_event_are_asked_about() {
    let agent = agent();
    let mut c = agent.unlocked();
    let r = honest_room(&mut c);
    let fake = format!("${}", "f".repeat(43));
    let grant = power_content(&r, &format!(r#","{}":100"#, r.c.cryptoid()));
    let claim = ObservedEvent {
        event_id: fake.clone(),
        depth: 50,
        prev_events: vec![],
        event_type: Some("m.room.power_levels".into()),
        state_key: Some(String::new()),
        content: Some(json::from_str(&grant).expect("json")),
    };
    let v = c
        .call::<Observe>(&ObserveParams {
            room_id: ROOM.into(),
            events: vec![claim],
            ..ObserveParams::default()
        })
        .expect("a summary is accepted as a claim");
    assert_eq!((v.verified, v.claimed), (0, 1));
    let auth = vec![r.h.id_of("m.room.create", ""), fake, r.h.id_of("m.room.member", &r.b)];
    let keep = r.h.next(&r.b, "m.room.power_levels", Some(""), &grant, Some(auth));
    let d = check(&mut c, keep.clone());
    assert_eq!(d.decision, Verdict::Confirm, "{:?}", d.reasons);
    assert!(
        d.reasons.iter().any(|x| x.contains("has not verified the room's power levels")),
        "{:?}",
        d.reasons
    );
    let short: String = r.c.cryptoid().chars().take(12).collect();
    assert!(
        d.changes.iter().any(|ch| ch.contains(&short) && ch.contains("→ 100")),
        "the grant is named: {:?}",
        d.changes
    );
    // Signing it needs a person: with none, nothing is signed.
    let e = try_sign(&mut c, Value::Object(keep)).expect_err("asked, no one answers");
    assert_eq!(e.kind(), Some(ErrorKind::ConfirmationTimeout), "{e}");
    // Control: the same content on the verified power levels.
    let honest = r.h.next(&r.b, "m.room.power_levels", Some(""), &grant, None);
    let d = check(&mut c, honest);
    assert!(
        d.reasons.iter().any(|x| x.contains("passes the room version's authorization rules")),
        "{:?}",
        d.reasons
    );
    assert!(
        d.changes.iter().any(|ch| ch.contains(&short) && ch.contains("0 (default) → 100")),
        "{:?}",
        d.changes
    );
    let msg = r.h.next(&r.b, "m.room.message", None, r#"{"body":"hi","msgtype":"m.text"}"#, None);
    assert_eq!(check(&mut c, msg).decision, Verdict::Allow);
}

/// Attack: the homeserver asks B to kick A (level 100, equal to B's) or to
/// send while citing a membership that is not B's: servers reject both,
/// so the agent denies them. Control: kicking C (level 0) is a question
/// about power over others, not a denial; a message on the honest history
/// signs and verifies.
#[test]
fn a_pdu_the_federation_would_reject_is_denied_and_honest_history_signs() {
    let agent = agent();
    let mut c = agent.unlocked();
    let r = honest_room(&mut c);
    let kick_a = r.h.next(&r.b, "m.room.member", Some(&r.a.cryptoid()), r#"{"membership":"leave"}"#, None);
    denied(try_sign(&mut c, Value::Object(kick_a)), "servers would reject this event");
    let auth = vec![
        r.h.id_of("m.room.create", ""),
        r.h.id_of("m.room.power_levels", ""),
        r.h.id_of("m.room.member", &r.c.cryptoid()),
    ];
    let wrong_member =
        r.h.next(&r.b, "m.room.message", None, r#"{"body":"hi","msgtype":"m.text"}"#, Some(auth));
    denied(try_sign(&mut c, Value::Object(wrong_member)), "servers would reject this event");
    // Control: kicking C is allowed by the rules; the policy asks.
    let kick_c = r.h.next(&r.b, "m.room.member", Some(&r.c.cryptoid()), r#"{"membership":"leave"}"#, None);
    let d = check(&mut c, kick_c);
    assert_eq!(d.decision, Verdict::Confirm, "{:?}", d.reasons);
    assert!(
        d.reasons.iter().any(|x| x.contains("passes the room version's authorization rules")),
        "{:?}",
        d.reasons
    );
    let msg = r.h.next(&r.b, "m.room.message", None, r#"{"body":"hi","msgtype":"m.text"}"#, None);
    let s = sign(&mut c, Value::Object(msg));
    assert_verifies(&s.pdu, &r.b);
    // A message citing an event the agent does not hold, in a room it holds
    // verified, is asked about.
    let mut auth = r.h.auth_for(&r.b, "m.room.message", None, "{}");
    auth[1] = format!("${}", "u".repeat(43));
    let odd = r.h.next(&r.b, "m.room.message", None, r#"{"body":"hi","msgtype":"m.text"}"#, Some(auth));
    refused(try_sign(&mut c, Value::Object(odd)), ErrorKind::ConfirmationTimeout, "timed_out");
}

/// What the agent signs in a room it holds verified is held too, when it
/// passed the rules against held events: B's new membership (a display
/// name) is cited by B's next message before any /sync, and that message
/// signs without a question. Control: citing a membership nobody signed
/// is still asked about.
#[test]
fn own_signed_state_is_held_for_later_checks() {
    let agent = agent();
    let mut c = agent.unlocked();
    let mut r = honest_room(&mut c);
    let rename =
        r.h.next(&r.b, "m.room.member", Some(&r.b), r#"{"membership":"join","displayname":"B"}"#, None);
    let s = sign(&mut c, Value::Object(rename));
    r.h.push(s.pdu.into_object().expect("object"));
    let msg = r.h.next(&r.b, "m.room.message", None, r#"{"body":"hi","msgtype":"m.text"}"#, None);
    assert_eq!(check(&mut c, msg.clone()).decision, Verdict::Allow);
    sign(&mut c, Value::Object(msg));
    let mut auth = r.h.auth_for(&r.b, "m.room.message", None, "{}");
    auth.retain(|a| *a != r.h.id_of("m.room.member", &r.b));
    auth.push(format!("${}", "m".repeat(43)));
    let odd = r.h.next(&r.b, "m.room.message", None, r#"{"body":"hi","msgtype":"m.text"}"#, Some(auth));
    assert_eq!(check(&mut c, odd).decision, Verdict::Confirm);
}

/// Honest full events from a real room: Synapse builds the history (rooms
/// of versions 10, 11 and 12: a power change, a topic, two members'
/// messages), Alice's client reads it with an `event_format: federation`
/// filter, and `cryptoidctl rooms observe --server-keys` feeds it. Every
/// event verifies against the server's key. Attack: the same /sync with
/// one message's body changed is refused and keeps nothing; without the
/// server's key nothing can be verified.
#[test]
fn a_real_synapse_room_read_in_federation_format_is_verified() {
    use cryptoid_tests::interop::Synapse;
    use cryptoid_tests::{stderr, stdout};
    let Some(hs) = Synapse::start() else { return };
    let (_, alice) = hs.user("alice");
    let (_, bob) = hs.user("bob");
    let agent = agent();
    let _c = agent.unlocked();
    let path = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();
    let mut fed = std::collections::HashMap::new();
    for version in ["10", "11", "12"] {
        let (room, sync, keys) = hs.room_history(&alice, &bob, version);
        fed.insert(version, (room.clone(), sync.clone()));
        // The history from /messages (a v12 /sync leaves out the create
        // event), then the /sync: every event verified, none claimed.
        for file in [sync.with_file_name("history.json"), sync.clone()] {
            let out =
                agent.ctl(&["--json", "rooms", "observe", "--server-keys", &path(&keys), &path(&file)], b"");
            assert!(out.status.success(), "v{version} {}: {}", file.display(), stderr(&out));
            let views: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
            let view = views
                .as_array()
                .and_then(|a| a.iter().find(|v| v["room_id"] == room.as_str()))
                .unwrap_or_else(|| panic!("v{version}: no view of {room} in {views}"));
            assert!(view["verified"].as_u64().unwrap_or(0) >= 12, "v{version} {}: {view}", file.display());
            assert_eq!(view["claimed"].as_u64(), Some(0), "v{version}: {view}");
        }
        // Attack: a message's body changed in transit.
        let text = std::fs::read_to_string(&sync).expect("sync");
        let forged = text.replacen("\"body\": \"bob 1\"", "\"body\": \"send money\"", 1);
        assert_ne!(forged, text, "v{version}: the message is in the /sync");
        let forged_path = sync.with_file_name("forged.json");
        std::fs::write(&forged_path, forged).expect("write");
        let out = agent.ctl(&["rooms", "observe", "--server-keys", &path(&keys), &path(&forged_path)], b"");
        assert!(!out.status.success(), "v{version}: a forged /sync was accepted");
        assert!(stderr(&out).contains("content hash"), "v{version}: {}", stderr(&out));
    }
    // Attack: a key ID of the homeserver's making for the pinned server,
    // and an event it signed: the new key is ignored, the event refused.
    let mallory = KeyPair::from_seed(&[0x66; 32]);
    let (room, sync) = fed.remove("11").expect("the v11 room");
    let forged = format!(
        r#"{{"type":"m.room.message","room_id":"{room}","sender":"@alice:localhost","content":{{"body":"forged"}},"depth":99,"origin_server_ts":1,"prev_events":[],"auth_events":[]}}"#
    );
    let forged = event::hash_and_sign(
        json::from_str(&forged).expect("json").into_object().expect("object"),
        &cryptoid_protocol::RoomVersion::V11,
        "localhost",
        "ed25519:evil",
        &mallory,
    )
    .expect("sign")
    .event;
    let doc = serde_json::json!({"room_id": room, "events": [serde_json::to_value(Value::Object(forged)).expect("json")]});
    let forged_path = sync.with_file_name("evil.json");
    std::fs::write(&forged_path, doc.to_string()).expect("write");
    let evil_keys = sync.with_file_name("evil-keys.json");
    std::fs::write(
        &evil_keys,
        format!(r#"{{"localhost":{{"ed25519:evil":"{}"}}}}"#, mallory.public_key().to_base64()),
    )
    .expect("write");
    let out = agent.ctl(&["rooms", "observe", "--server-keys", &path(&evil_keys), &path(&forged_path)], b"");
    assert!(!out.status.success(), "a forged key for a pinned server was taken");
    assert!(stderr(&out).contains("no valid signature by localhost"), "{}", stderr(&out));
    // Without the server's key, a fresh agent can verify nothing.
    let fresh = self::agent();
    let (_, sync, _) = hs.room_history(&alice, &bob, "11");
    let out = fresh.ctl(&["rooms", "observe", &path(&sync.with_file_name("history.json"))], b"");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("server_keys"), "{}", stderr(&out));
}

/// A client that joins a big room sees its recent events only: events
/// whose auth events the agent does not hold are kept as claims (their
/// signatures are good, their authority unknown), and count for nothing
/// a person relies on. Fed the events they cite, the same events verify.
#[test]
fn a_partial_history_is_claimed_until_its_auth_chain_is_held() {
    let agent = agent();
    let mut c = agent.unlocked();
    let _b = create(&mut c, Some(ROOM));
    let a = KeyPair::from_seed(&[0xa; 32]);
    let mut h = History::new(&a, ROOM, &format!(r#"{{"users":{{"{}":100}}}}"#, a.cryptoid()));
    h.add(&a, "m.room.topic", Some(""), r#"{"topic":"t"}"#);
    h.add(&a, "m.room.message", None, r#"{"body":"m"}"#);
    let recent: Vec<Value> = h.pdus().into_iter().skip(4).collect();
    let v = c
        .call::<Observe>(&ObserveParams {
            room_id: ROOM.into(),
            room_version: Some(RV.into()),
            pdus: recent.clone(),
            ..ObserveParams::default()
        })
        .expect("recent events");
    assert_eq!((v.verified, v.claimed), (0, 2), "{v:?}");
    let v = observe_pdus(&mut c, h.pdus()).expect("whole history");
    assert_eq!((v.verified, v.claimed), (6, 0), "{v:?}");
}

/// Attack: the homeserver makes a key H and signs a second `m.room.create`
/// for the room (in a cryptoID room nothing binds the room ID to its
/// create), H's join and power levels giving H 100: a whole room of its
/// own that would pass the rules event by event. A room has one create:
/// the second is refused, and nothing of its chain is kept. Control: the
/// honest history fed again is accepted.
#[test]
fn a_second_create_for_the_room_is_refused() {
    let agent = agent();
    let mut c = agent.unlocked();
    let r = honest_room(&mut c);
    let h_key = KeyPair::from_seed(&[0x4; 32]);
    let mut fake = History::new(&h_key, ROOM, &format!(r#"{{"users":{{"{}":100}}}}"#, h_key.cryptoid()));
    // Deeper than the real events, so it would win by depth.
    for e in fake.events.iter_mut() {
        let d = e.get("depth").and_then(Value::as_int).unwrap_or(0) + 100;
        e.insert("depth".into(), Value::Int(json::Int::new(d).expect("depth")));
    }
    let resigned: Vec<Value> = fake
        .events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.remove("signatures");
            e.remove("hashes");
            Value::Object(signed_by(&h_key, e))
        })
        .collect();
    let e = observe_pdus(&mut c, resigned).expect_err("a second create");
    assert_eq!(e.cause(), Some("observed_unauthorized"), "{e}");
    assert!(e.to_string().contains("already has its m.room.create"), "{e}");
    let v = observe_pdus(&mut c, r.h.pdus()).expect("control: the honest history again");
    assert_eq!(v.claimed, 0);
}

/// Attack: C had 50 once (enough to send power levels) and was demoted; C
/// then signs power levels that keep C at 50, citing the old power levels
/// (where C could), deeper than the demotion. Servers soft-fail it; the agent keeps it as a claim: it
/// never becomes the room's power levels, and a PDU citing it is asked
/// about with C's grant named. Control: an event on the current power
/// levels is verified.
#[test]
fn an_event_authorized_by_superseded_power_is_not_the_room_s_state() {
    let agent = agent();
    let mut c = agent.unlocked();
    let mut r = honest_room(&mut c);
    let c_id = r.c.cryptoid();
    let old_pl =
        r.h.add(&r.a, "m.room.power_levels", Some(""), &power_content(&r, &format!(r#","{c_id}":50"#)));
    r.h.add(&r.a, "m.room.power_levels", Some(""), &power_content(&r, ""));
    observe_pdus(&mut c, r.h.pdus()).expect("the grant and the demotion");
    let auth = vec![r.h.id_of("m.room.create", ""), old_pl, r.h.id_of("m.room.member", &c_id)];
    let grab = signed_by(
        &r.c,
        r.h.next(
            &c_id,
            "m.room.power_levels",
            Some(""),
            &power_content(&r, &format!(r#","{c_id}":50"#)),
            Some(auth),
        ),
    );
    let grab_id = event::event_id(&grab, &RV_VERSION).expect("id");
    let v = observe_pdus(&mut c, vec![Value::Object(grab)]).expect("kept as a claim");
    assert_eq!((v.verified, v.claimed), (0, 1), "{v:?}");
    let auth = vec![r.h.id_of("m.room.create", ""), grab_id, r.h.id_of("m.room.member", &r.b)];
    let keep = r.h.next(
        &r.b,
        "m.room.power_levels",
        Some(""),
        &power_content(&r, &format!(r#","{c_id}":50"#)),
        Some(auth),
    );
    let d = check(&mut c, keep);
    assert_eq!(d.decision, Verdict::Confirm, "{:?}", d.reasons);
    let short: String = c_id.chars().take(12).collect();
    assert!(d.changes.iter().any(|ch| ch.contains(&short) && ch.contains("→ 50")), "{:?}", d.changes);
    // Control: A's message on the current state is verified.
    let msg = signed_by(&r.a, r.h.next(&r.a.cryptoid(), "m.room.message", None, r#"{"body":"hi"}"#, None));
    assert_eq!(observe_pdus(&mut c, vec![Value::Object(msg)]).expect("control").verified, 1);
}

/// Attack: the homeserver serves the redacted copy of an authorization
/// event (content pruned to what a redaction keeps, hashes and signatures
/// intact: it verifies) before the full one, so that the pruned content
/// becomes what later events are judged by. A redacted authorization event
/// is kept as a claim; the full copy fed after it is verified. Control: a
/// redacted message is verified (its content matters to no rule).
#[test]
fn a_redacted_copy_of_an_authorization_event_is_only_a_claim() {
    let agent = agent();
    let mut c = agent.unlocked();
    let mut r = honest_room(&mut c);
    let c_id = r.c.cryptoid();
    r.h.add(&r.c, "m.room.member", Some(&c_id), r#"{"membership":"join","displayname":"C"}"#);
    let full = r.h.events.last().cloned().expect("event");
    let mut pruned = full.clone();
    pruned.get_mut("content").and_then(Value::as_object_mut).expect("content").remove("displayname");
    let v = observe_pdus(&mut c, vec![Value::Object(pruned)]).expect("a redacted copy verifies");
    assert_eq!((v.verified, v.claimed), (0, 1), "{v:?}");
    let v = observe_pdus(&mut c, vec![Value::Object(full)]).expect("the full copy");
    assert_eq!((v.verified, v.claimed), (1, 0), "{v:?}");
    let msg = signed_by(&r.c, r.h.next(&c_id, "m.room.message", None, r#"{"body":"secret"}"#, None));
    let mut redacted = msg.clone();
    redacted.insert("content".into(), Value::Object(Object::new()));
    assert_eq!(observe_pdus(&mut c, vec![Value::Object(redacted)]).expect("control").verified, 1);
}
