//! Policy round 3 against the real agent over its socket: state keys,
//! one version per room, redaction targets, depth with unknown parents,
//! prompts a person can decide on, and createRoom details. One test per
//! class, each with a control beside it that must still sign.

use super::agent_sign::{assert_verifies, create, sign, try_sign, RV};
use super::attacks::{
    agent, batch, body, denied, id, ids, int, observe, plain, refused, set, sign_with, state_ev, OTHER, ROOM,
};
use cryptoid_protocol::client::blocking::Client;
use cryptoid_protocol::json::{self, Value};
use cryptoid_protocol::wire::policy::{Check, CheckResult, Verdict};
use cryptoid_protocol::wire::rooms::{Observe, ObserveParams};
use cryptoid_protocol::wire::sign::{SignPdu, SignPduParams};
use cryptoid_protocol::wire::ErrorKind;
use cryptoid_tests::pdus;

fn check(c: &mut Client, pdu: Value) -> CheckResult {
    c.call::<Check>(&SignPduParams { room_version: RV.into(), pdu, event_id: None, intent: None })
        .expect("policy.check")
}

/// A state event at `depth` on `prevs`, citing `auths`.
fn state_at(k: &str, ty: &str, sk: &str, content: &str, depth: i64, prevs: &[&str], auths: &[&str]) -> Value {
    let e = pdus::state(k, ROOM, ty, sk, content, "");
    set(&set(&set(&e, "depth", int(depth)), "prev_events", ids(prevs)), "auth_events", ids(auths))
}

/// A v11+ redaction by `k` in ROOM of `target` (`content.redacts`).
fn redaction_of(k: &str, target: &str) -> Value {
    let mut r = pdus::state(k, ROOM, "m.room.redaction", "", &format!(r#"{{"redacts":"{target}"}}"#), "")
        .into_object()
        .expect("object");
    r.remove("state_key");
    Value::Object(r)
}

/// Attack: power levels under state key "x" that already give OTHER 100
/// are fed to the view; then the real power levels grant OTHER 100. To
/// every server that is a grant, and the prompt must say so. Also a create
/// under "x" through sign.pdu, and an extra power levels under "x" in a
/// createRoom batch. Controls: the grant is shown against the real power
/// levels, and the batch without the extra state signs.
#[test]
fn a_state_key_other_than_empty_is_not_room_state() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let (pl, fake, tip) = (id('p'), id('f'), id('t'));
    observe(
        &mut c,
        vec![
            state_ev(&pl, 2, "m.room.power_levels", "", &format!(r#"{{"users":{{"{k}":100}}}}"#)),
            state_ev(
                &fake,
                3,
                "m.room.power_levels",
                "x",
                &format!(r#"{{"users":{{"{k}":100,"{OTHER}":100}}}}"#),
            ),
            plain(&tip, 4, &[&fake]),
        ],
    );
    let grant = state_at(
        &k,
        "m.room.power_levels",
        "",
        &format!(r#"{{"users":{{"{k}":100,"{OTHER}":100}}}}"#),
        5,
        &[&tip],
        &[&pl],
    );
    let r = check(&mut c, grant);
    assert_eq!(r.decision, Verdict::Confirm, "{r:?}");
    assert!(r.changes.iter().any(|ch| ch.contains("users[3TPraTczVkDP…]") && ch.contains("100")), "{r:?}");
    // Attack: a create under "x" signed one by one (it would become the
    // room's anchor to a view that reads the type alone).
    let create_x =
        state_at(&k, "m.room.create", "x", r#"{"room_version":"org.matrix.msc4080"}"#, 5, &[&tip], &[]);
    denied(try_sign(&mut c, create_x), "m.room.create (under any state key)");
    // Control: a message on the same tip signs.
    sign(&mut c, set(&set(&pdus::message(&k, ROOM, "hi"), "depth", int(5)), "prev_events", ids(&[&tip])));

    // createRoom: an extra power levels under "x", not implied.
    let k2 = create(&mut c, None);
    let asked = body(r#"{"preset":"private_chat"}"#);
    let private = [
        ("m.room.join_rules", "", r#"{"join_rule":"invite"}"#),
        ("m.room.history_visibility", "", r#"{"history_visibility":"shared"}"#),
        ("m.room.guest_access", "", r#"{"guest_access":"can_join"}"#),
    ];
    let mut extra = private.to_vec();
    let sneaky = format!(r#"{{"users":{{"{OTHER}":100}}}}"#);
    extra.push(("m.room.power_levels", "x", &sneaky));
    let (events, _) = pdus::create_room(&k2, "!sk1:x", &pdus::default_power(&k2), &extra);
    denied(batch(&mut c, events, Some(asked.clone())), "m.room.power_levels (\"x\")");
    // Control: the batch as implied signs.
    let (events, _) = pdus::create_room(&k2, "!sk2:x", &pdus::default_power(&k2), &private);
    batch(&mut c, events, Some(asked)).expect("as asked");
}

/// Attack: once the room is msc4080 to the agent, a version-1 PDU for it
/// carrying another member's event ID (v1 PDUs carry their own) would be
/// recorded as the user's own event, and a later redaction of it signed
/// with no question. Refused as `room_version_mismatch`; so is observing
/// the room as another version. Control: the room's own version signs, and
/// the other member's event still needs the person to redact it.
#[test]
fn one_room_one_room_version() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    sign(&mut c, pdus::message(&k, ROOM, "the room is msc4080"));
    let victim = "$someone-elses-event:x";
    let v1 = set(&pdus::message(&k, ROOM, "v1"), "event_id", Value::from(victim));
    let r =
        c.call::<SignPdu>(&SignPduParams { room_version: "1".into(), pdu: v1, event_id: None, intent: None });
    refused(r, ErrorKind::BadPdu, "room_version_mismatch");
    let r = c.call::<Observe>(&ObserveParams {
        room_id: ROOM.into(),
        room_version: Some("1".into()),
        events: vec![],
        server_keys: Default::default(),
        pdus: Vec::new(),
    });
    refused(r, ErrorKind::BadPdu, "room_version_mismatch");
    // The other member's event is not the user's: redacting it is a
    // question nobody answers here (timeout), not a silent signature.
    let redaction = redaction_of(&k, "$someone-elses-event:x");
    refused(try_sign(&mut c, redaction), ErrorKind::ConfirmationTimeout, "timed_out");
    // Control: the room's version signs.
    assert_verifies(&sign(&mut c, pdus::message(&k, ROOM, "still msc4080")).pdu, &k);
}

/// In a room of version 1 or 2 the event ID is the one the PDU carries:
/// the homeserver's choice, not computed from what was signed, so it is
/// never recorded as the user's own. Control: in an msc4080 room the
/// user's own event is redacted without a question.
#[test]
fn a_carried_event_id_is_never_the_user_s_own() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let room = "!old:x";
    let k = create(&mut c, Some(room));
    let victim = "$victim:x";
    let m = set(&pdus::message(&k, room, "v1"), "event_id", Value::from(victim));
    let m = set(&m, "prev_events", json::from_str(r#"[["$prev:x",{"sha256":"x"}]]"#).expect("prev"));
    let m = set(&m, "auth_events", json::from_str(r#"[["$auth:x",{"sha256":"x"}]]"#).expect("auth"));
    c.call::<SignPdu>(&SignPduParams {
        room_version: "1".into(),
        pdu: m.clone(),
        event_id: None,
        intent: None,
    })
    .expect("a v1 message signs");
    let mut redaction = m.as_object().expect("object").clone();
    redaction.insert("type".into(), Value::from("m.room.redaction"));
    redaction.insert("redacts".into(), Value::from(victim));
    redaction.insert("event_id".into(), Value::from("$redaction:x"));
    redaction.insert("content".into(), json::from_str("{}").expect("content"));
    let r = c.call::<SignPdu>(&SignPduParams {
        room_version: "1".into(),
        pdu: Value::Object(redaction),
        event_id: None,
        intent: None,
    });
    refused(r, ErrorKind::ConfirmationTimeout, "timed_out");
    // Control: msc4080 computes the ID; the user's own event is redacted.
    let k2 = create(&mut c, Some(ROOM));
    let own = sign(&mut c, pdus::message(&k2, ROOM, "mine")).event_id;
    sign(&mut c, redaction_of(&k2, &own));
}

/// Attack: from v11 the target is `content.redacts`; a top-level `redacts`
/// naming another event is what clients and older code read. Control: the
/// content target alone signs, also against an intent naming it.
#[test]
fn a_redaction_names_one_target() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let own = sign(&mut c, pdus::message(&k, ROOM, "mine")).event_id;
    let redaction = |top: Option<&str>| match top {
        Some(t) => set(&redaction_of(&k, &own), "redacts", Value::from(t)),
        None => redaction_of(&k, &own),
    };
    let theirs = id('z');
    denied(try_sign(&mut c, redaction(Some(&theirs))), "top-level redacts");
    // v11: an intent for one event, content.redacts naming another.
    let other_intent: Value =
        json::from_str(&format!(r#"{{"type":"m.room.redaction","redacts":"{theirs}"}}"#)).expect("intent");
    denied(sign_with(&mut c, redaction(None), other_intent), "but the client asked for");
    // An intent naming the content target does not cover a second one.
    let asked: Value =
        json::from_str(&format!(r#"{{"type":"m.room.redaction","redacts":"{own}"}}"#)).expect("intent");
    denied(sign_with(&mut c, redaction(Some(&theirs)), asked.clone()), "redacts");
    // Controls: the content target alone, and with an intent naming it.
    sign(&mut c, redaction(None));
    sign_with(&mut c, redaction(None), asked).expect("the intent's target");
}

/// Attack: a parent the agent knows at depth 10 and one it does not; the
/// event claims depth 5, older than its own parent. Control: above it signs.
#[test]
fn depth_is_above_every_known_parent_even_when_some_are_unknown() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let (tip, unknown) = (id('t'), id('u'));
    observe(&mut c, vec![plain(&tip, 10, &[])]);
    let m = |depth: i64| {
        set(&set(&pdus::message(&k, ROOM, "hi"), "depth", int(depth)), "prev_events", ids(&[&tip, &unknown]))
    };
    denied(try_sign(&mut c, m(5)), "is not above the depth 10");
    denied(try_sign(&mut c, m(10)), "is not above the depth 10");
    sign(&mut c, m(11));
}

/// A cryptoID that sorts before OTHER ("3TPr…"): padding keys that came
/// first in the list pushed a grant out of a cut prompt.
fn padding_key(i: u8) -> String {
    let mut k = format!("0{i:02}");
    k.push_str(&"A".repeat(40));
    k
}

/// Attack: eight lowered users whose keys sort first, and a grant of 100
/// to OTHER: the grant was "and 1 more". It comes first, in the prompt the
/// person reads. Control: approved, it signs.
#[test]
fn a_grant_is_never_hidden_behind_padding() {
    let agent = agent("confirm_timeout_secs = 10\n");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let (pl, tip) = (id('p'), id('t'));
    let padded: String = (0..8).map(|i| format!(r#""{}":50,"#, padding_key(i))).collect();
    observe(
        &mut c,
        vec![
            state_ev(&pl, 2, "m.room.power_levels", "", &format!(r#"{{"users":{{{padded}"{k}":100}}}}"#)),
            plain(&tip, 3, &[&pl]),
        ],
    );
    let lowered: String = (0..8).map(|i| format!(r#""{}":10,"#, padding_key(i))).collect();
    let new = format!(r#"{{"users":{{{lowered}"{k}":100,"{OTHER}":100}}}}"#);
    let grant = state_at(&k, "m.room.power_levels", "", &new, 4, &[&tip], &[&pl]);
    let r = check(&mut c, grant.clone());
    assert!(r.changes[0].contains("users[3TPraTczVkDP…]") && r.changes[0].contains("→ 100"), "{r:?}");
    let t = super::policy::answer_after(&agent, true, None, |_| {});
    assert_verifies(&sign(&mut c, grant).pdu, &k);
    let shown = t.join().expect("answer");
    let prompt = &shown[0];
    let grant_at = prompt.find("users[3TPraTczVkDP…]").expect("the grant is in the prompt");
    assert!(prompt.find("users[000").is_none_or(|p| p > grant_at), "the grant comes first: {prompt}");
    assert!(prompt.contains("and 1 more changes"), "{prompt}");
}

/// Attack: a join-rules change said only "asks to sign m.room.join_rules".
/// Now every security setting shows old → new, in `changes` and the
/// prompt. Control: approved, the change signs.
#[test]
fn security_settings_are_shown_old_to_new() {
    let agent = agent("confirm_timeout_secs = 10\n");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let (jr, acl, tip) = (id('j'), id('a'), id('t'));
    observe(
        &mut c,
        vec![
            state_ev(&jr, 2, "m.room.join_rules", "", r#"{"join_rule":"invite"}"#),
            state_ev(&acl, 3, "m.room.server_acl", "", r#"{"allow":["*"],"deny":["evil.example"]}"#),
            plain(&tip, 4, &[&acl]),
        ],
    );
    let public = state_at(&k, "m.room.join_rules", "", r#"{"join_rule":"public"}"#, 5, &[&tip], &[&jr]);
    let r = check(&mut c, public.clone());
    assert!(r.changes.iter().any(|ch| ch == "join rule \"invite\" → \"public\""), "{r:?}");
    let unban = state_at(&k, "m.room.server_acl", "", r#"{"allow":["*"],"deny":[]}"#, 5, &[&tip], &[&acl]);
    let r = check(&mut c, unban);
    assert!(r.changes.iter().any(|ch| ch == "server ACL deny: − \"evil.example\""), "{r:?}");
    let restricted = state_at(
        &k,
        "m.room.join_rules",
        "",
        r#"{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"!space:x"}]}"#,
        5,
        &[&tip],
        &[&jr],
    );
    let r = check(&mut c, restricted);
    assert!(r.changes.iter().any(|ch| ch.contains("may join") && ch.contains("!space:x")), "{r:?}");
    for (ty, sk, content, want) in [
        ("m.room.history_visibility", "", r#"{"history_visibility":"world_readable"}"#, "history visibility"),
        ("m.room.guest_access", "", r#"{"guest_access":"can_join"}"#, "guest access"),
        ("m.room.encryption", "", r#"{"algorithm":"m.megolm.v1.aes-sha2"}"#, "encryption off →"),
        ("m.room.tombstone", "", r#"{"replacement_room":"!new:x","body":"moved"}"#, "!new:x"),
        ("m.room.canonical_alias", "", r##"{"alias":"#a:x","alt_aliases":["#b:x"]}"##, "alternative aliases"),
        ("m.room.third_party_invite", "tok", r#"{"display_name":"b...@example.org"}"#, "third-party invite"),
        ("m.space.child", "!c:x", r#"{"via":["x"]}"#, "space child"),
        ("m.space.parent", "!p:x", r#"{"via":["x"]}"#, "space parent"),
    ] {
        let r = check(&mut c, state_at(&k, ty, sk, content, 5, &[&tip], &[]));
        assert!(r.changes.iter().any(|ch| ch.contains(want)), "{ty}: {r:?}");
    }
    // The prompt shows it too; approved, it signs (control).
    let t = super::policy::answer_after(&agent, true, None, |_| {});
    assert_verifies(&sign(&mut c, public).pdu, &k);
    let shown = t.join().expect("answer");
    assert!(shown[0].contains("join rule \"invite\" → \"public\""), "{shown:?}");
}

const PRIVATE: [(&str, &str, &str); 3] = [
    ("m.room.join_rules", "", r#"{"join_rule":"invite"}"#),
    ("m.room.history_visibility", "", r#"{"history_visibility":"shared"}"#),
    ("m.room.guest_access", "", r#"{"guest_access":"can_join"}"#),
];

/// A createRoom batch for `body` with the private state, `power` and
/// `extra` state.
fn try_create_room(
    c: &mut Client,
    room: &str,
    body_text: &str,
    power: impl FnOnce(&str) -> String,
    extra: &[(&str, &str, &str)],
) -> Result<(), cryptoid_protocol::client::ClientError> {
    let k = create(c, None);
    let mut state = PRIVATE.to_vec();
    state.extend_from_slice(extra);
    let (events, _) = pdus::create_room(&k, room, &power(&k), &state);
    batch(c, events, Some(body(body_text))).map(drop)
}

/// Attack: thresholds raised above the creator's own level lock the
/// creator out (here of all state, and of bans). Denied unless the
/// request's override asked for exactly that value (the control).
#[test]
fn a_create_room_batch_cannot_lock_the_creator_out() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let raise = |field: &'static str| {
        move |k: &str| {
            pdus::default_power(k).replace(&format!(r#""{field}":50"#), &format!(r#""{field}":101"#))
        }
    };
    let asked = r#"{"preset":"private_chat"}"#;
    denied(try_create_room(&mut c, "!lock1:x", asked, raise("state_default"), &[]), "locked out");
    denied(try_create_room(&mut c, "!lock2:x", asked, raise("ban"), &[]), "locked out");
    let events_raised = |k: &str| {
        pdus::default_power(k).replace(r#""m.room.power_levels":100"#, r#""m.room.power_levels":101"#)
    };
    denied(try_create_room(&mut c, "!lock3:x", asked, events_raised, &[]), "locked out");
    // Control: asked for exactly that.
    try_create_room(
        &mut c,
        "!lock4:x",
        r#"{"preset":"private_chat","power_level_content_override":{"ban":101}}"#,
        raise("ban"),
        &[],
    )
    .expect("the override asked for it");
}

/// Attack: a name, topic or alias carrying keys nobody asked for (an
/// `m.topic` with other text, an alias list). Control: exactly the
/// request's content signs.
#[test]
fn create_room_name_topic_and_alias_are_exactly_what_was_asked() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let asked = r#"{"preset":"private_chat","name":"Team","topic":"plans","room_alias_name":"team"}"#;
    let power = |k: &str| pdus::default_power(k);
    let name = ("m.room.name", "", r#"{"name":"Team"}"#);
    let topic = ("m.room.topic", "", r#"{"topic":"plans"}"#);
    let alias = ("m.room.canonical_alias", "", r##"{"alias":"#team:x"}"##);
    let bad_name = ("m.room.name", "", r#"{"name":"Team","x":1}"#);
    denied(try_create_room(&mut c, "!n1:x", asked, power, &[bad_name, topic, alias]), "m.room.name");
    let bad_topic = ("m.room.topic", "", r#"{"topic":"plans","m.topic":{"m.text":[{"body":"other"}]}}"#);
    denied(try_create_room(&mut c, "!n2:x", asked, power, &[name, bad_topic, alias]), "m.room.topic");
    let bad_alias = ("m.room.canonical_alias", "", r##"{"alias":"#team:x","alt_aliases":["#evil:x"]}"##);
    denied(
        try_create_room(&mut c, "!n3:x", asked, power, &[name, topic, bad_alias]),
        "m.room.canonical_alias",
    );
    try_create_room(&mut c, "!n4:x", asked, power, &[name, topic, alias]).expect("as asked");
}

/// The invitee's one-time cryptoID, claimed by the homeserver for them.
const BOB_KEY: &str = "l8Hft5qXKn1vfHrg3p4+W8gELQVo8N13JkluMfmn2sQ";

fn invite_of(key: &str, user: &str) -> String {
    format!(
        r#"{{"membership":"invite","is_direct":true,"mxid_mapping":{{"user_room_key":"{key}","user_id":"{user}"}}}}"#
    )
}

/// trusted_private_chat under MSC4080: the invitee's cryptoID is not known
/// when the client asks, so the homeserver claims a one-time cryptoID for
/// each invitee, invites it in the batch with an `mxid_mapping` naming the
/// invited user, and gives that key 100. Control: such a batch signs.
/// Attacks: 100 for a key no invite names, an invite of someone not asked
/// for, and a trusted invitee with no invite (the grant cannot be checked).
#[test]
fn trusted_private_chat_gives_exactly_the_invited_keys_the_creator_s_power() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let asked = r#"{"preset":"trusted_private_chat","invite":["@bob:x"],"is_direct":true}"#;
    let with = |extra_users: &'static str| {
        move |k: &str| pdus::default_power(k).replace(r#""users":{"#, &format!(r#""users":{{{extra_users}"#))
    };
    let bob = invite_of(BOB_KEY, "@bob:x");
    let invite = ("m.room.member", BOB_KEY, bob.as_str());
    // The key is the homeserver's choice: the person is asked, and told.
    let t = super::policy::answer_after(&agent, true, None, |_| {});
    try_create_room(
        &mut c,
        "!t1:x",
        asked,
        with(r#""l8Hft5qXKn1vfHrg3p4+W8gELQVo8N13JkluMfmn2sQ":100,"#),
        &[invite],
    )
    .expect("the trusted invitee at 100 under the key it is invited as");
    let shown = t.join().expect("answer");
    assert!(shown[0].contains("name claimed by the homeserver: @bob:x"), "{shown:?}");
    // Attack: the creator at 1000 and the invitee at 100, the ban level at
    // 500: the trusted invitee is locked out of banning.
    let lockout = |k: &str| {
        pdus::default_power(k)
            .replace(
                &format!(r#""{k}":100"#),
                &format!(r#""{k}":1000,"l8Hft5qXKn1vfHrg3p4+W8gELQVo8N13JkluMfmn2sQ":100"#),
            )
            .replace(r#""ban":50"#, r#""ban":500"#)
    };
    denied(try_create_room(&mut c, "!t5:x", asked, lockout, &[invite]), "locked out");
    // Attack: 100 for another key.
    denied(
        try_create_room(
            &mut c,
            "!t2:x",
            asked,
            with(r#""3TPraTczVkDPTRaX4K+AfUuyx7Mzq1UafTXypnl0t2k":100,"#),
            &[invite],
        ),
        "did not ask for",
    );
    // Attack: the invite names someone else.
    let eve = invite_of(BOB_KEY, "@eve:x");
    denied(
        try_create_room(
            &mut c,
            "!t3:x",
            asked,
            with(r#""l8Hft5qXKn1vfHrg3p4+W8gELQVo8N13JkluMfmn2sQ":100,"#),
            &[("m.room.member", BOB_KEY, eve.as_str())],
        ),
        "does not invite",
    );
    // Attack: the trusted invitee's power with no invite saying whose key.
    denied(
        try_create_room(
            &mut c,
            "!t4:x",
            asked,
            with(r#""l8Hft5qXKn1vfHrg3p4+W8gELQVo8N13JkluMfmn2sQ":100,"#),
            &[],
        ),
        "no invite of @bob:x",
    );
    let _ = OTHER;
}

/// Attack: the creator's own join in an intent batch naming another user,
/// or another key (the user's key shown under someone else's name), was
/// not checked once invites in such batches stopped being asked about.
/// Control: the join naming the user and the key signs.
#[test]
fn the_creator_s_join_in_a_batch_names_the_creator() {
    use cryptoid_protocol::wire::keys::{Create, CreateParams};
    let agent = agent("");
    let mut c = agent.unlocked();
    let asked = body(r#"{"preset":"private_chat"}"#);
    let mut with_join = |room: &str, mapping: &dyn Fn(&str) -> String| {
        let k = c
            .call::<Create>(&CreateParams { user_id: Some("@me:x".into()), ..Default::default() })
            .expect("keys.create")
            .cryptoid;
        let (mut events, _) = pdus::create_room(&k, room, &pdus::default_power(&k), &PRIVATE);
        let join = format!(r#"{{"membership":"join","mxid_mapping":{}}}"#, mapping(&k));
        events[1] = set(&events[1], "content", json::from_str(&join).expect("join"));
        // Chained again: the join's ID changed, so the auth events are picked again.
        let events = events.iter().map(|e| set(e, "auth_events", ids(&[]))).collect();
        let (events, _) = pdus::chain(events, &cryptoid_protocol::RoomVersion::MSC4080);
        batch(&mut c, events, Some(asked.clone())).map(drop)
    };
    denied(
        with_join("!j1:x", &|k| format!(r#"{{"user_room_key":"{k}","user_id":"@ceo:corp"}}"#)),
        "belongs to @me:x",
    );
    denied(
        with_join("!j2:x", &|_| format!(r#"{{"user_room_key":"{OTHER}","user_id":"@me:x"}}"#)),
        "not the key that signs it",
    );
    with_join("!j3:x", &|k| format!(r#"{{"user_room_key":"{k}","user_id":"@me:x"}}"#))
        .expect("the user's own join");
}

/// Attack: the homeserver fed a made-up "public" join rule, so making the
/// room public "changes nothing" to the view. The prompt still says what
/// the event sets. Control: it is a question, not a silent signature.
#[test]
fn an_unchanged_setting_still_says_what_it_sets() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let (jr, tip) = (id('j'), id('t'));
    observe(
        &mut c,
        vec![state_ev(&jr, 2, "m.room.join_rules", "", r#"{"join_rule":"public"}"#), plain(&tip, 3, &[&jr])],
    );
    let public = state_at(&k, "m.room.join_rules", "", r#"{"join_rule":"public"}"#, 4, &[&tip], &[&jr]);
    let r = check(&mut c, public);
    assert_eq!(r.decision, Verdict::Confirm, "{r:?}");
    assert!(
        r.changes
            .iter()
            .any(|ch| ch.contains(r#"{"join_rule":"public"}"#) && ch.contains("unchanged per the room view")),
        "{r:?}"
    );
}

/// Attack: redacting the user's own state event (here the room's ACL)
/// empties it for everyone; it was allowed as "own". Control: the user's
/// own message is still redacted without a question.
#[test]
fn redacting_one_s_own_state_event_is_asked() {
    let agent = agent("");
    let mut c = agent.unlocked();
    let k = create(&mut c, Some(ROOM));
    let acl = pdus::state(&k, ROOM, "m.room.server_acl", "", r#"{"allow":["*"]}"#, "");
    let t = super::policy::answer_after(&agent, true, None, |_| {});
    let acl = sign(&mut c, acl).event_id;
    t.join().expect("answer");
    let msg = sign(&mut c, pdus::message(&k, ROOM, "mine")).event_id;
    refused(try_sign(&mut c, redaction_of(&k, &acl)), ErrorKind::ConfirmationTimeout, "timed_out");
    sign(&mut c, redaction_of(&k, &msg));
}
