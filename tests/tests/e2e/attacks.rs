//! A hostile homeserver against the real agent over its socket: one test
//! per class of attack (policy round 2), each with a control beside it that
//! must still sign. An agent that refuses everything fails these tests too.

use super::agent_sign::{assert_verifies, create, sign, try_sign, RV};
use super::policy::answer_after;
use cryptoid_protocol::client::blocking::Client;
use cryptoid_protocol::json::{self, Int, Object, Value};
use cryptoid_protocol::wire::agent::Lock;
use cryptoid_protocol::wire::keys::{Delete, KeyRef};
use cryptoid_protocol::wire::otk::{Generate, GenerateParams};
use cryptoid_protocol::wire::rooms::{Observe, ObserveParams, ObservedEvent};
use cryptoid_protocol::wire::sign::{
    intent, SignBatch, SignBatchParams, SignPdu, SignPduParams, SignedBatch,
};
use cryptoid_protocol::wire::{ErrorKind, NoParams};
use cryptoid_protocol::{client::ClientError, event, RoomVersion};
use cryptoid_tests::agent::Agent;
use cryptoid_tests::pdus;

pub(super) const ROOM: &str = "!attacked:x";
pub(super) const OTHER: &str = "3TPraTczVkDPTRaX4K+AfUuyx7Mzq1UafTXypnl0t2k";

/// An agent whose room view takes summaries on the homeserver's word
/// (`room_view = "claimed"`): these attacks feed the view as claims. The
/// verified view has its own attacks (`attacks_verified`).
pub(super) fn agent(policy: &str) -> Agent {
    let timeout = if policy.contains("confirm_timeout_secs") { "" } else { "confirm_timeout_secs = 2\n" };
    Agent::start_with(
        &[],
        Some(&format!(
            "[policy]\nunknown_clients = \"allow\"\nconfirm_delete = false\nroom_view = \"claimed\"\n{timeout}{policy}"
        )),
    )
}

pub(super) fn set(pdu: &Value, key: &str, v: Value) -> Value {
    let mut o = pdu.as_object().expect("object").clone();
    o.insert(key.into(), v);
    Value::Object(o)
}

pub(super) fn int(v: i64) -> Value {
    Value::Int(Int::new(v).expect("int"))
}

pub(super) fn ids(v: &[&str]) -> Value {
    Value::Array(v.iter().map(|s| Value::from(*s)).collect())
}

pub(super) fn id(c: char) -> String {
    pdus::event_id(c)
}

pub(super) fn batch(
    c: &mut Client,
    pdus: Vec<Value>,
    intent: Option<Value>,
) -> Result<SignedBatch, ClientError> {
    c.call::<SignBatch>(&SignBatchParams { room_version: RV.into(), pdus, event_ids: None, intent })
}

pub(super) fn sign_with(c: &mut Client, pdu: Value, intent: Value) -> Result<(), ClientError> {
    c.call::<SignPdu>(&SignPduParams { room_version: RV.into(), pdu, event_id: None, intent: Some(intent) })
        .map(drop)
}

/// Refused by the policy, with a decisive reason that names `needle` (the
/// rule or the field).
pub(super) fn denied(r: Result<impl std::fmt::Debug, ClientError>, needle: &str) {
    let e = r.expect_err("the attack must be refused");
    assert_eq!(e.kind(), Some(ErrorKind::PolicyDenied), "{e}");
    assert!(e.reasons().iter().any(|r| r.contains(needle)), "{needle:?} in the reasons of {e:?}");
}

/// Refused with this kind and cause (`data.kind`, `data.cause`).
pub(super) fn refused(r: Result<impl std::fmt::Debug, ClientError>, kind: ErrorKind, cause: &str) {
    let e = r.expect_err("the attack must be refused");
    assert_eq!((e.kind(), e.cause()), (Some(kind), Some(cause)), "{e}");
}

pub(super) fn state_ev(id: &str, depth: u64, ty: &str, sk: &str, content: &str) -> ObservedEvent {
    ObservedEvent {
        event_id: id.into(),
        depth,
        prev_events: vec![],
        event_type: Some(ty.into()),
        state_key: Some(sk.into()),
        content: Some(json::from_str(content).expect("content")),
    }
}

pub(super) fn plain(id: &str, depth: u64, prev: &[&str]) -> ObservedEvent {
    ObservedEvent {
        event_id: id.into(),
        depth,
        prev_events: prev.iter().map(|s| s.to_string()).collect(),
        event_type: None,
        state_key: None,
        content: None,
    }
}

pub(super) fn observe(c: &mut Client, events: Vec<ObservedEvent>) {
    super::agent_sign::observe(c, ROOM, events);
}

/// A message at `depth` on `prevs`, citing `auths`.
pub(super) fn message(k: &str, depth: i64, prevs: &[&str], auths: &[&str]) -> Value {
    let m = pdus::message(k, ROOM, "hi");
    set(&set(&set(&m, "depth", int(depth)), "prev_events", ids(prevs)), "auth_events", ids(auths))
}

#[test]
fn sign_batch_on_an_existing_room_is_refused() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    sign(&mut c, pdus::message(&k, ROOM, "the room exists"));
    // Attack: a one-PDU "batch" making a known room public, skipping the
    // confirmation sign.pdu would ask for.
    let public = pdus::state(&k, ROOM, "m.room.join_rules", "", r#"{"join_rule":"public"}"#, &id('b'));
    denied(batch(&mut c, vec![public.clone()], None), "only for createRoom");
    // Attack: a batch that starts with a create but is for a room the agent knows.
    let (mut events, _) = pdus::create_room(&k, ROOM, &pdus::default_power(&k), &[]);
    events.truncate(1);
    denied(batch(&mut c, events, None), "already knows this room");
    // Control: a new room's createRoom batch signs.
    let fresh = create(&mut c, None);
    let (events, _) = pdus::create_room(&fresh, "!new:x", &pdus::default_power(&fresh), &[]);
    let signed = batch(&mut c, events.clone(), None).expect("a createRoom batch");
    assert_verifies(&signed.pdus[2].pdu, &fresh);
    // …once: the same batch again is for a room now known.
    denied(batch(&mut c, events, None), "already knows this room");
}

#[test]
fn a_forged_create_is_refused() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let fresh = create(&mut c, None);
    let (events, _) = pdus::create_room(&fresh, "!forged:x", &pdus::default_power(&fresh), &[]);
    let with_content = |content: &str| {
        let mut e = events.clone();
        e[0] = set(&e[0], "content", json::from_str(content).expect("content"));
        pdus::chain(e, &RoomVersion::MSC4080).0
    };
    // Attack: the create names someone else as the creator (v1–10 read it).
    let other = with_content(&format!(r#"{{"creator":"{OTHER}","room_version":"{RV}"}}"#));
    denied(batch(&mut c, other, None), "as creator");
    // Attack: the create claims another room version than the one signed under.
    let v1 = with_content(&format!(r#"{{"creator":"{fresh}","room_version":"1"}}"#));
    denied(batch(&mut c, v1, None), "says room version \"1\"");
    // Attack: a create for a new room signed with a key already bound elsewhere.
    let bound = create(&mut c, Some(ROOM));
    let (stolen, _) = pdus::create_room(&bound, "!stolen:x", &pdus::default_power(&bound), &[]);
    let e = batch(&mut c, stolen, None).expect_err("a bound key cannot create");
    assert!(matches!(e.kind(), Some(ErrorKind::KeyNotUsable | ErrorKind::PolicyDenied)), "{e}");
    // Control: the honest create of the fresh key.
    batch(&mut c, events, None).expect("the honest batch");
}

#[test]
fn sign_batch_chain_must_be_exact() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, None);
    let (events, ids_) = pdus::create_room(&k, "!chain:x", &pdus::default_power(&k), &[]);
    // Attack: PDU 2 also names an event outside the batch.
    let extra = set(&events[2], "prev_events", ids(&[&ids_[1], &id('z')]));
    denied(batch(&mut c, vec![events[0].clone(), events[1].clone(), extra], None), "must name exactly it");
    // Attack: a depth that jumps.
    let jump = set(&events[2], "depth", int(9));
    denied(batch(&mut c, vec![events[0].clone(), events[1].clone(), jump], None), "must be 3");
    // Control.
    batch(&mut c, events, None).expect("the chained batch");
}

#[test]
fn a_batch_cannot_carry_state_twice_or_borrow_another_rooms_auth() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, None);
    let power = pdus::default_power(&k);
    let grab = power.replace(r#""users":{"#, &format!(r#""users":{{"{OTHER}":100,"#));
    // Attack: power levels twice, the first giving someone else 100 (only
    // the last would be judged, both would be signed).
    let (events, _) = pdus::create_room(&k, "!twice:x", &grab, &[("m.room.power_levels", "", &power)]);
    denied(batch(&mut c, events, None), "a second time");
    // Attack: the join authorized by an existing room's events.
    let (events, ids_) = pdus::create_room(&k, "!borrowed:x", &power, &[]);
    let foreign = set(&events[1], "auth_events", ids(&[&ids_[0], &id('f')]));
    let (events2, _) =
        pdus::chain(vec![events[0].clone(), foreign, events[2].clone()], &RoomVersion::MSC4080);
    denied(batch(&mut c, events2, None), "not an earlier event of the batch");
    // Attack: no power levels at all (every member could then send any state).
    let (mut bare, _) = pdus::create_room(&k, "!bare:x", &power, &[]);
    bare.truncate(2);
    refused(batch(&mut c, bare, None), ErrorKind::ConfirmationTimeout, "timed_out");
    // Control: auth_events citing earlier batch events only.
    let (events, ids_) = pdus::create_room(&k, "!fine:x", &power, &[]);
    let cites = set(&events[2], "auth_events", ids(&[&ids_[0], &ids_[1]]));
    let (events, _) = pdus::chain(vec![events[0].clone(), events[1].clone(), cites], &RoomVersion::MSC4080);
    batch(&mut c, events, None).expect("a batch citing its own events");
}

#[test]
fn power_levels_in_initial_state_are_compared_exactly() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, None);
    let power = pdus::default_power(&k);
    let asked = intent::create_room(
        json::from_str(&format!(
            r#"{{"preset":"private_chat","initial_state":[{{"type":"m.room.power_levels","state_key":"","content":{power}}}]}}"#
        ))
        .expect("body"),
    );
    let private = [
        ("m.room.join_rules", "", r#"{"join_rule":"invite"}"#),
        ("m.room.history_visibility", "", r#"{"history_visibility":"shared"}"#),
        ("m.room.guest_access", "", r#"{"guest_access":"can_join"}"#),
    ];
    // Attack: other power levels than the ones in initial_state.
    let other = power.replace(r#""ban":50"#, r#""ban":0"#);
    let (events, _) = pdus::create_room(&k, "!pl1:x", &other, &private);
    denied(batch(&mut c, events, Some(asked.clone())), "m.room.power_levels");
    // Control: exactly those.
    let (events, _) = pdus::create_room(&k, "!pl2:x", &power, &private);
    batch(&mut c, events, Some(asked)).expect("as asked");
}

#[test]
fn an_approved_request_is_judged_again_after_the_wait() {
    let agent = agent("confirm_timeout_secs = 10\n");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let (pl1, pl2, tip) = (id('o'), id('n'), id('t'));
    observe(
        &mut c,
        vec![
            state_ev(&pl1, 2, "m.room.power_levels", "", &format!(r#"{{"users":{{"{k}":100}}}}"#)),
            plain(&tip, 3, &[&pl1]),
        ],
    );
    let kick = pdus::state(&k, ROOM, "m.room.member", OTHER, r#"{"membership":"leave"}"#, &tip);
    let kick = set(&set(&kick, "depth", int(4)), "auth_events", ids(&[&pl1]));
    // Attack window: while the user is asked, the room's power levels change;
    // the approved kick still cites the old ones.
    let mut feeder = agent.client();
    let newer = pl2.clone();
    let t = answer_after(&agent, true, None, move |_| {
        feeder
            .call::<Observe>(&ObserveParams {
                room_id: ROOM.into(),
                room_version: None,
                events: vec![state_ev(&newer, 4, "m.room.power_levels", "", "{}")],
                server_keys: Default::default(),
                pdus: Vec::new(),
            })
            .expect("observe");
    });
    refused(try_sign(&mut c, kick.clone()), ErrorKind::PolicyDenied, "policy_after_wait");
    t.join().expect("answer");
    // Control: the same kick on the current state, approved, signs.
    let kick =
        set(&set(&set(&kick, "depth", int(5)), "auth_events", ids(&[&pl2])), "prev_events", ids(&[&pl2]));
    let t = answer_after(&agent, true, None, |_| {});
    assert_verifies(&sign(&mut c, kick).pdu, &k);
    t.join().expect("answer");
}

pub(super) fn body(text: &str) -> Value {
    intent::create_room(json::from_str(text).expect("createRoom body"))
}

#[test]
fn create_room_intent_pins_the_security_state() {
    let agent = agent("require_intent = true\n");
    let mut c = agent.unlocked();
    let k = create(&mut c, None);
    let private = [
        ("m.room.join_rules", "", r#"{"join_rule":"invite"}"#),
        ("m.room.history_visibility", "", r#"{"history_visibility":"shared"}"#),
        ("m.room.guest_access", "", r#"{"guest_access":"can_join"}"#),
        ("m.room.name", "", r#"{"name":"Team"}"#),
    ];
    let asked = body(r#"{"preset":"private_chat","name":"Team"}"#);
    // Attack: the client asked for a private room; the batch makes it public.
    let mut public = private;
    public[0].2 = r#"{"join_rule":"public"}"#;
    let (events, _) = pdus::create_room(&k, "!a:x", &pdus::default_power(&k), &public);
    denied(batch(&mut c, events, Some(asked.clone())), "m.room.join_rules");
    // Attack: power for someone else, not asked for.
    let power = pdus::default_power(&k).replace(r#""users":{"#, &format!(r#""users":{{"{OTHER}":100,"#));
    let (events, _) = pdus::create_room(&k, "!b:x", &power, &private);
    denied(batch(&mut c, events, Some(asked.clone())), "users[3TPraTczVkDP…]");
    // Attack: the override asked for kick 100; the batch has 0.
    let (events, _) = pdus::create_room(
        &k,
        "!c:x",
        &pdus::default_power(&k).replace(r#""kick":50"#, r#""kick":0"#),
        &private,
    );
    let with_override =
        body(r#"{"preset":"private_chat","name":"Team","power_level_content_override":{"kick":100}}"#);
    denied(batch(&mut c, events, Some(with_override.clone())), "power_level_content_override.kick");
    // Attack: an ACL nobody asked for.
    let mut acl = private.to_vec();
    acl.push(("m.room.server_acl", "", r#"{"allow":["evil.example"]}"#));
    let (events, _) = pdus::create_room(&k, "!d:x", &pdus::default_power(&k), &acl);
    denied(batch(&mut c, events, Some(asked.clone())), "m.room.server_acl");
    // require_intent: a batch without one is refused.
    let (events, _) = pdus::create_room(&k, "!e:x", &pdus::default_power(&k), &private);
    denied(batch(&mut c, events.clone(), None), "require_intent");
    // Controls: what was asked for signs, with require_intent on.
    batch(&mut c, events, Some(asked)).expect("as asked");
    let k2 = create(&mut c, None);
    let power = pdus::default_power(&k2).replace(r#""kick":50"#, r#""kick":100"#);
    let (events, _) = pdus::create_room(&k2, "!f:x", &power, &private);
    batch(&mut c, events, Some(with_override)).expect("the override applied");
}

#[test]
fn a_batch_without_intent_giving_power_beyond_the_creator_asks() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, None);
    // Attack: everyone at 50 (users_default), unasked.
    let power = pdus::default_power(&k).replace(r#""users_default":0"#, r#""users_default":50"#);
    let (events, _) = pdus::create_room(&k, "!p:x", &power, &[]);
    refused(batch(&mut c, events, None), ErrorKind::ConfirmationTimeout, "timed_out");
    // Attack: anyone at 50 may change the power levels.
    let k2 = create(&mut c, None);
    let power =
        pdus::default_power(&k2).replace(r#""m.room.power_levels":100"#, r#""m.room.power_levels":50"#);
    let (events, _) = pdus::create_room(&k2, "!q:x", &power, &[]);
    refused(batch(&mut c, events, None), ErrorKind::ConfirmationTimeout, "timed_out");
    // Control: the defaults sign without a question.
    let k3 = create(&mut c, None);
    let (events, _) = pdus::create_room(&k3, "!r:x", &pdus::default_power(&k3), &[]);
    batch(&mut c, events, None).expect("defaults");
}

#[test]
fn anchoring_before_a_ban_and_breaking_the_depth_rule_are_refused() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let (e4, ban, m6) = (id('d'), id('x'), id('m'));
    observe(
        &mut c,
        vec![
            // Its room version (a create without one is version 1).
            state_ev(&id('c'), 1, "m.room.create", "", r#"{"room_version":"org.matrix.msc4080"}"#),
            plain(&e4, 4, &[]),
            state_ev(&ban, 5, "m.room.member", OTHER, r#"{"membership":"ban"}"#),
            plain(&m6, 6, &[&ban]),
        ],
    );
    // Attack: a message hung under the event before the ban.
    denied(try_sign(&mut c, message(&k, 5, &[&e4], &[])), "not above the room's latest ban");
    // Attack: the right parent, a made-up depth.
    denied(try_sign(&mut c, message(&k, 9, &[&m6], &[])), "must be 7");
    // Control: after the ban, at the right depth.
    assert_verifies(&sign(&mut c, message(&k, 7, &[&m6], &[])).pdu, &k);
}

#[test]
fn superseded_auth_events_are_refused() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let (old, new, tip) = (id('o'), id('n'), id('t'));
    observe(
        &mut c,
        vec![
            state_ev(
                &old,
                2,
                "m.room.power_levels",
                "",
                &format!(r#"{{"users":{{"{k}":100,"{OTHER}":100}}}}"#),
            ),
            state_ev(&new, 5, "m.room.power_levels", "", &format!(r#"{{"users":{{"{k}":100}}}}"#)),
            plain(&tip, 6, &[&new]),
        ],
    );
    // Attack: authorized by the power levels before the demotion.
    denied(try_sign(&mut c, message(&k, 7, &[&tip], &[&old])), "superseded");
    // Control: the current ones.
    sign(&mut c, message(&k, 7, &[&tip], &[&new]));
}

#[test]
fn strict_mode_counts_only_observed_events() {
    let agent = agent("anti_replay = \"strict\"\n");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let (seen, named) = (id('s'), id('q'));
    observe(&mut c, vec![plain(&seen, 10, &[&named])]);
    // Attack: an ID the agent only saw named as someone's prev_event.
    denied(try_sign(&mut c, message(&k, 10, &[&named], &[])), "never observed");
    // Control.
    sign(&mut c, message(&k, 11, &[&seen], &[]));
}

#[test]
fn a_join_that_binds_a_one_time_key_needs_an_intent_naming_the_room() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let otks = c.call::<Generate>(&GenerateParams { count: 2, backend: None }).expect("generate").keys;
    let (a, b) = (otks[0].cryptoid.clone(), otks[1].cryptoid.clone());
    let join = |k: &str| pdus::state(k, ROOM, "m.room.member", k, r#"{"membership":"join"}"#, &id('b'));
    // Attack: the server joins the user to a room of its choice.
    refused(try_sign(&mut c, join(&a)), ErrorKind::ConfirmationTimeout, "timed_out");
    // Attack: the intent names another room.
    denied(sign_with(&mut c, join(&a), intent::join("!elsewhere:x", &a)), "room_id");
    // Control: the intent names this room: it signs and binds.
    sign_with(&mut c, join(&b), intent::join(ROOM, &b)).expect("the asked-for join");
}

#[test]
fn a_key_deleted_or_an_agent_locked_during_a_confirmation_signs_nothing() {
    let agent = agent("confirm_timeout_secs = 10\n");
    let mut c = agent.unlocked();
    let kick = |k: &str| pdus::state(k, ROOM, "m.room.member", OTHER, r#"{"membership":"leave"}"#, &id('b'));
    // Attack window: the key is deleted while the user is being asked.
    let k = create(&mut c, Some(ROOM));
    let gone = k.clone();
    let t = answer_after(&agent, true, None, move |o| {
        drop(o.call::<Delete>(&KeyRef { cryptoid: gone }).expect("delete"))
    });
    refused(try_sign(&mut c, kick(&k)), ErrorKind::UnknownKey, "deleted_meanwhile");
    t.join().expect("answer");
    // …or the agent is locked.
    let k = create(&mut c, Some("!second:x"));
    let kick2 = pdus::state(&k, "!second:x", "m.room.member", OTHER, r#"{"membership":"leave"}"#, &id('b'));
    let t = answer_after(&agent, true, None, |o| {
        o.call::<Lock>(&NoParams {}).expect("lock");
    });
    refused(try_sign(&mut c, kick2), ErrorKind::Locked, "locked");
    t.join().expect("answer");
    // Control: unlocked again, approved, it signs.
    let mut c = agent.unlocked();
    let k = create(&mut c, Some("!third:x"));
    let kick3 = pdus::state(&k, "!third:x", "m.room.member", OTHER, r#"{"membership":"leave"}"#, &id('b'));
    let t = answer_after(&agent, true, None, |_| {});
    assert_verifies(&sign(&mut c, kick3).pdu, &k);
    t.join().expect("answer");
}

#[test]
fn homeserver_strings_reach_prompts_escaped() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    // Attack: a state key that clears the screen and reverses text.
    let nasty = "\u{1b}[2J\u{202e}evil";
    let kick = pdus::state(&k, ROOM, "m.room.member", "x", r#"{"membership":"leave"}"#, &id('b'));
    let kick = set(&kick, "state_key", Value::from(nasty));
    let t = answer_after(&agent, false, None, |_| {});
    refused(try_sign(&mut c, kick), ErrorKind::ConfirmationDenied, "declined");
    let shown = t.join().expect("answer");
    for s in &shown {
        assert!(!s.contains('\u{1b}') && !s.contains('\u{202e}'), "raw control in {s:?}");
    }
    assert!(shown.iter().any(|s| s.contains("\\u001b[2J\\u202eevil")), "{shown:?}");
    // Control: ordinary text is shown as it is.
    let plain = pdus::state(&k, ROOM, "m.room.member", OTHER, r#"{"membership":"ban"}"#, &id('b'));
    let t = answer_after(&agent, false, None, |_| {});
    refused(try_sign(&mut c, plain), ErrorKind::ConfirmationDenied, "declined");
    assert!(t.join().expect("answer").iter().any(|s| s.contains("ban 3TPraTczVkDP…")));
}

#[test]
fn concurrent_requests_cannot_exceed_the_rate_limit() {
    let agent =
        agent("confirm_timeout_secs = 1\n[policy.rate]\nper_room = 3\nper_client = 0\nwindow_secs = 600\n");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    // Attack: eight requests at once, to slip past a limit of three.
    let results: Vec<bool> = (0..8)
        .map(|i| {
            let mut c = agent.client();
            let pdu = pdus::message(&k, ROOM, &format!("m{i}"));
            std::thread::spawn(move || try_sign(&mut c, pdu).is_ok())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    // Control: exactly the three within the limit signed.
    assert_eq!(results.iter().filter(|ok| **ok).count(), 3, "{results:?}");
}

#[test]
fn a_v12_create_carrying_a_room_id_is_refused() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, None);
    let rv = RoomVersion::V12;
    let content = format!(r#"{{"creator":"{k}","room_version":"12"}}"#);
    let with_room = pdus::state(&k, "!claimed:x", "m.room.create", "", &content, "");
    let call = |c: &mut Client, pdus: Vec<Value>| {
        c.call::<SignBatch>(&SignBatchParams {
            room_version: "12".into(),
            pdus,
            event_ids: None,
            intent: None,
        })
    };
    // Attack: a room_id in the v12 create.
    refused(call(&mut c, vec![with_room.clone()]), ErrorKind::BadPdu, "create_carries_room_id");
    // …refused offline too.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("create.json");
    std::fs::write(&file, json::to_canonical_string(&with_room)).expect("write");
    let key = dir.path().join("key");
    std::fs::write(&key, format!("ed25519 a_bcde {}\n", cryptoid_tests::vectors::SPEC_SEED)).expect("key");
    let out = cryptoid_tests::ctl(
        &[
            "pdu",
            "sign",
            "--room-version",
            "12",
            "--key-file",
            key.to_str().expect("p"),
            file.to_str().expect("p"),
        ],
        b"",
    );
    assert!(!out.status.success(), "{}", cryptoid_tests::stdout(&out));
    assert!(
        cryptoid_tests::stderr(&out).contains("must not carry a `room_id`"),
        "{}",
        cryptoid_tests::stderr(&out)
    );
    // Control: without one, the room ID is the create event's hash.
    let mut create_ev: Object = with_room.into_object().expect("object");
    create_ev.remove("room_id");
    let create_id =
        event::prepare(create_ev.clone(), &rv).expect("prepare").event_id().expect("id").to_owned();
    let room = format!("!{}", &create_id[1..]);
    let join = pdus::state(&k, &room, "m.room.member", &k, r#"{"membership":"join"}"#, &create_id);
    let join = set(&join, "depth", int(2));
    let join_id = event::prepare(join.as_object().expect("o").clone(), &rv)
        .expect("p")
        .event_id()
        .expect("id")
        .to_owned();
    // v12: the creator is not listed in `users`; the tombstone needs 150.
    let power = pdus::default_power(&k)
        .replace(&format!(r#""users":{{"{k}":100}}"#), r#""users":{}"#)
        .replace(r#""m.room.tombstone":100"#, r#""m.room.tombstone":150"#);
    let power = set(&pdus::state(&k, &room, "m.room.power_levels", "", &power, &join_id), "depth", int(3));
    let signed = call(&mut c, vec![Value::Object(create_ev), join, power]).expect("a v12 createRoom batch");
    assert_eq!(signed.pdus[0].event_id, create_id);
}
