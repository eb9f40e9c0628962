//! Table-driven tests of the decision function: every rule and default.

use super::*;
use cryptoid_protocol::json::from_str;

const ME: &str = "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI";
const OTHER: &str = "3TPraTczVkDPTRaX4K+AfUuyx7Mzq1UafTXypnl0t2k";
const NOW: u64 = 1_800_000_000_000;

fn pdu(ty: &str, state_key: Option<&str>, content: &str) -> Object {
    let sk = state_key.map(|k| format!(r#","state_key":"{k}""#)).unwrap_or_default();
    let text = format!(
        r#"{{"type":"{ty}","room_id":"!r:x","sender":"{ME}","content":{content},"depth":100,"origin_server_ts":{NOW},"prev_events":["$p1"],"auth_events":[]{sk}}}"#
    );
    from_str(&text).expect("pdu").into_object().expect("object")
}

/// The defaults, with the room view taken on the homeserver's word: these
/// tests feed the view's facts directly. (The verified baseline:
/// `verified_baseline_*`.)
fn claimed() -> PolicyConfig {
    PolicyConfig { room_view: RoomViewMode::Claimed, ..PolicyConfig::default() }
}

fn trusted() -> ClientFacts<'static> {
    ClientFacts { exe: Some("/usr/bin/client"), approved_this_session: true }
}

const RV: RoomVersion = RoomVersion::MSC4080;

fn sr<'a>(pdu: &'a Object, intent: Option<&'a Value>) -> SignRequest<'a> {
    SignRequest { pdu, intent, room_version: &RV, binds_key: false, initial_state: false, key_user: None }
}

fn decide_with(p: &Object, cfg: &PolicyConfig, room: &RoomFacts<'_>, initial: bool) -> Decision {
    let req = SignRequest { initial_state: initial, ..sr(p, None) };
    evaluate(&req, &trusted(), room, RateFacts::default(), cfg, NOW)
}

fn decide(p: &Object) -> Decision {
    decide_with(p, &claimed(), &RoomFacts::unknown(), false)
}

#[test]
fn defaults_by_event_type() {
    let cases: &[(&str, Option<&str>, &str, Action)] = &[
        ("m.room.message", None, r#"{"body":"hi","msgtype":"m.text"}"#, Action::Allow),
        ("m.reaction", None, "{}", Action::Allow),
        ("m.room.encrypted", None, "{}", Action::Allow),
        ("org.example.custom", None, "{}", Action::Allow),
        ("m.room.power_levels", Some(""), "{}", Action::Confirm),
        ("m.room.join_rules", Some(""), r#"{"join_rule":"public"}"#, Action::Confirm),
        ("m.room.server_acl", Some(""), "{}", Action::Confirm),
        ("m.room.tombstone", Some(""), "{}", Action::Confirm),
        ("m.room.history_visibility", Some(""), "{}", Action::Confirm),
        ("m.room.encryption", Some(""), "{}", Action::Confirm),
        ("m.room.name", Some(""), r#"{"name":"x"}"#, Action::Allow),
        ("m.room.topic", Some(""), r#"{"topic":"x"}"#, Action::Allow),
        ("org.example.state", Some(""), "{}", Action::Confirm),
        ("m.room.member", Some(ME), r#"{"membership":"join"}"#, Action::Allow),
        ("m.room.member", Some(ME), r#"{"membership":"leave"}"#, Action::Allow),
    ];
    for (ty, sk, content, want) in cases {
        let d = decide(&pdu(ty, *sk, content));
        assert_eq!(d.action, *want, "{ty}: {:?}", d.reasons());
    }
}

#[test]
fn actions_on_others_name_the_target() {
    let cases = [
        (r#"{"membership":"ban"}"#, "ban 3TPraTczVkDP…"),
        (r#"{"membership":"leave"}"#, "kick (or unban) 3TPraTczVkDP…"),
        (r#"{"membership":"invite"}"#, "invite 3TPraTczVkDP…"),
    ];
    for (content, change) in cases {
        let d = decide(&pdu("m.room.member", Some(OTHER), content));
        assert_eq!(d.action, Action::Confirm, "{content}");
        assert_eq!(d.changes, [change]);
        assert!(d.reasons().iter().any(|r| r.contains("affects someone else")), "{:?}", d.reasons());
    }
    // power_over_others = deny turns them into denials.
    let cfg = PolicyConfig { power_over_others: Action::Deny, ..claimed() };
    let d = decide_with(
        &pdu("m.room.member", Some(OTHER), r#"{"membership":"ban"}"#),
        &cfg,
        &RoomFacts::unknown(),
        false,
    );
    assert_eq!(d.action, Action::Deny);
}

#[test]
fn power_levels_diff_against_the_known_state() {
    let old = from_str(&format!(r#"{{"users":{{"{ME}":100}},"users_default":0}}"#))
        .expect("old")
        .into_object()
        .expect("o");
    let room = RoomFacts { power_levels: Some(&old), ..RoomFacts::unknown() };
    let grant = pdu("m.room.power_levels", Some(""), &format!(r#"{{"users":{{"{ME}":100,"{OTHER}":100}}}}"#));
    let d = decide_with(&grant, &claimed(), &room, false);
    assert_eq!(d.action, Action::Confirm);
    assert_eq!(d.changes, ["users[3TPraTczVkDP…] 0 (default) → 100"]);
    // Even with a rule allowing power_levels, power over others confirms.
    let cfg = PolicyConfig {
        rules: vec![config::Rule {
            room: "*".into(),
            event_type: "m.room.power_levels".into(),
            state: None,
            action: Action::Allow,
        }],
        ..claimed()
    };
    assert_eq!(decide_with(&grant, &cfg, &room, false).action, Action::Confirm);
    let unchanged =
        pdu("m.room.power_levels", Some(""), &format!(r#"{{"users":{{"{ME}":100}},"users_default":0}}"#));
    let d = decide_with(&unchanged, &cfg, &room, false);
    assert_eq!((d.action, d.changes.len()), (Action::Allow, 0), "{:?}", d.reasons());
}

#[test]
fn redactions_of_own_and_others_events() {
    let own = |id: &str| id == "$mine";
    let room = RoomFacts { is_own: &own, ..RoomFacts::unknown() };
    let mine = pdu("m.room.redaction", None, r#"{"redacts":"$mine"}"#);
    assert_eq!(decide_with(&mine, &claimed(), &room, false).action, Action::Allow);
    let theirs = pdu("m.room.redaction", None, r#"{"redacts":"$theirs"}"#);
    let d = decide_with(&theirs, &claimed(), &room, false);
    assert_eq!(d.action, Action::Confirm);
    assert_eq!(d.changes, ["redact $theirs, which is not one of your events"]);
}

#[test]
fn user_rules_come_first_in_order() {
    let rule = |room: &str, ty: &str, state: Option<bool>, action| config::Rule {
        room: room.into(),
        event_type: ty.into(),
        state,
        action,
    };
    let cfg = PolicyConfig {
        rules: vec![
            rule("!r:*", "m.room.message", None, Action::Deny),
            rule("*", "m.room.*", Some(true), Action::Allow),
            rule("*", "*", Some(false), Action::Confirm),
        ],
        ..claimed()
    };
    let room = RoomFacts::unknown();
    let msg = pdu("m.room.message", None, "{}");
    let d = decide_with(&msg, &cfg, &room, false);
    assert_eq!(d.action, Action::Deny);
    assert!(d.decisive_reasons()[0].contains("rule 1"), "{:?}", d.reasons());
    assert_eq!(
        decide_with(&pdu("m.room.join_rules", Some(""), "{}"), &cfg, &room, false).action,
        Action::Allow
    );
    assert_eq!(decide_with(&pdu("m.reaction", None, "{}"), &cfg, &room, false).action, Action::Confirm);
}

#[test]
fn intent_and_require_intent() {
    let p = pdu("m.room.message", None, r#"{"body":"hi"}"#);
    let good = from_str(r#"{"type":"m.room.message","content":{"body":"hi"}}"#).expect("intent");
    let bad = from_str(r#"{"type":"m.room.message","content":{"body":"bye"}}"#).expect("intent");
    let cfg = claimed();
    let room = RoomFacts::unknown();
    let run = |intent: Option<&Value>, cfg: &PolicyConfig| {
        evaluate(&sr(&p, intent), &trusted(), &room, RateFacts::default(), cfg, NOW)
    };
    assert_eq!(run(Some(&good), &cfg).action, Action::Allow);
    let d = run(Some(&bad), &cfg);
    assert_eq!(d.action, Action::Deny);
    assert!(d.decisive_reasons()[0].starts_with("PDU content is"), "{:?}", d.reasons());
    let strict = PolicyConfig { require_intent: true, ..claimed() };
    assert_eq!(run(None, &strict).action, Action::Deny);
    assert_eq!(run(Some(&good), &strict).action, Action::Allow);
}

#[test]
fn anti_replay_modes() {
    let known = |id: &str| (id == "$p1").then_some(99);
    let unknown_prev = |_: &str| None;
    let at_200 = RoomFacts { max_depth: Some(200), depth_of: &known, ..RoomFacts::unknown() };
    let msg = pdu("m.room.message", None, "{}"); // depth 100, prev $p1
                                                 // window (default): 100 below a frontier of 200 with window 50 → deny.
    let d = decide_with(&msg, &claimed(), &at_200, false);
    assert_eq!(d.action, Action::Deny);
    assert!(d.decisive_reasons()[0].contains("100 below the newest depth 200"), "{:?}", d.reasons());
    let at_140 = RoomFacts { max_depth: Some(140), ..RoomFacts::unknown() };
    assert_eq!(decide_with(&msg, &claimed(), &at_140, false).action, Action::Allow);
    // Nothing known: nothing to compare.
    assert_eq!(decide(&msg).action, Action::Allow);
    // strict: the prev_event must be known.
    let strict = PolicyConfig { anti_replay: ReplayMode::Strict, ..claimed() };
    let knows = RoomFacts { depth_of: &known, ..RoomFacts::unknown() };
    assert_eq!(decide_with(&msg, &strict, &knows, false).action, Action::Allow);
    let blind = RoomFacts { depth_of: &unknown_prev, ..RoomFacts::unknown() };
    let d = decide_with(&msg, &strict, &blind, false);
    assert_eq!(d.action, Action::Deny);
    assert!(d.decisive_reasons()[0].contains("$p1 never observed or signed"), "{:?}", d.reasons());
    // window mode, state event, observed room: strict for it.
    let observed = RoomFacts { observed: true, depth_of: &unknown_prev, ..RoomFacts::unknown() };
    let name = pdu("m.room.name", Some(""), r#"{"name":"x"}"#);
    assert_eq!(decide_with(&name, &claimed(), &observed, false).action, Action::Deny);
    assert_eq!(decide_with(&msg, &claimed(), &observed, false).action, Action::Allow);
    // off.
    let off = PolicyConfig { anti_replay: ReplayMode::Off, ..claimed() };
    assert_eq!(decide_with(&msg, &off, &at_200, false).action, Action::Allow);
}

/// A message at `depth` with `prev_events` and `auth_events`.
fn at(depth: i64, prevs: &[&str], auths: &[&str]) -> Object {
    let mut p = pdu("m.room.message", None, "{}");
    let ids = |v: &[&str]| Value::Array(v.iter().map(|s| Value::from(*s)).collect());
    p.insert("depth".into(), Value::Int(cryptoid_protocol::json::Int::new(depth).expect("depth")));
    p.insert("prev_events".into(), ids(prevs));
    p.insert("auth_events".into(), ids(auths));
    p
}

#[test]
fn depth_rule_anchor_and_superseded_auth_events() {
    // The room: $c (1) … $pl (10, power levels: the anchor) … $m11 (11),
    // $fork (10, a sibling of $pl), $old (5); $pl0 superseded by $pl.
    let depths = |id: &str| match id {
        "$c" => Some(1),
        "$old" => Some(5),
        "$pl" | "$fork" => Some(10),
        "$m11" => Some(11),
        _ => None,
    };
    let superseded = |id: &str| id == "$pl0";
    let room = RoomFacts {
        exists: true,
        max_depth: Some(11),
        depth_of: &depths,
        anchor: Some(Anchor { event_id: "$pl", depth: 10, what: "m.room.power_levels" }),
        is_superseded: &superseded,
        ..RoomFacts::unknown()
    };
    let cfg = claimed();
    /// (depth, prev_events, auth_events, verdict, reason contains)
    type Case<'a> = (i64, &'a [&'a str], &'a [&'a str], Action, &'a str);
    #[rustfmt::skip]
    let cases: &[Case] = &[
        // controls: children of the anchor and of later events
        (11, &["$pl"], &["$c"], Action::Allow, ""),
        (12, &["$m11"], &["$pl"], Action::Allow, ""),
        (12, &["$m11", "$old"], &[], Action::Allow, ""),
        // unknown prev_events: the depth must still be above the anchor
        (12, &["$unknown"], &[], Action::Allow, ""),
        (9, &["$unknown"], &[], Action::Deny, "not above the room's latest m.room.power_levels"),
        // depth rule
        (13, &["$m11"], &[], Action::Deny, "must be 12"),
        (11, &["$m11"], &[], Action::Deny, "must be 12"),
        // anchored before the power change: a child of an older event
        (6, &["$old"], &[], Action::Deny, "not above"),
        // a child of the anchor's sibling (forked around it): depth 11 is
        // above the anchor, but no prev_event is the anchor or after it
        (11, &["$fork"], &[], Action::Deny, "at or before the room's latest"),
        // superseded power levels as auth
        (12, &["$m11"], &["$pl0"], Action::Deny, "superseded"),
    ];
    for (depth, prevs, auths, want, needle) in cases {
        let d = decide_with(&at(*depth, prevs, auths), &cfg, &room, false);
        assert_eq!(d.action, *want, "depth {depth} prevs {prevs:?} auths {auths:?}: {:?}", d.reasons());
        if !needle.is_empty() {
            assert!(d.decisive_reasons().iter().any(|r| r.contains(needle)), "{needle}: {:?}", d.reasons());
        }
    }
    // strict counts only observed or signed events.
    let strict = PolicyConfig { anti_replay: ReplayMode::Strict, ..claimed() };
    assert_eq!(decide_with(&at(12, &["$m11"], &[]), &strict, &room, false).action, Action::Allow);
    assert_eq!(decide_with(&at(12, &["$m11", "$named"], &[]), &strict, &room, false).action, Action::Deny);
}

fn levels(text: &str) -> Object {
    from_str(text).expect("levels").into_object().expect("object")
}

#[test]
fn power_levels_every_field_is_diffed() {
    let base = format!(
        r#"{{"users":{{"{ME}":100}},"users_default":0,"events":{{"m.room.power_levels":100,"m.room.name":50}},"events_default":0,"state_default":50,"ban":50,"kick":50,"redact":50,"invite":0,"notifications":{{"room":50}}}}"#
    );
    let old = levels(&base);
    let room = RoomFacts { power_levels: Some(&old), ..RoomFacts::unknown() };
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str)] = &[
        (r#""state_default":50"#, r#""state_default":0"#, "state_default 50 → 0"),
        (r#""users_default":0"#, r#""users_default":50"#, "users_default 0 → 50"),
        (r#""events_default":0"#, r#""events_default":10"#, "events_default 0 → 10"),
        (r#""ban":50"#, r#""ban":0"#, "ban 50 → 0"),
        (r#""kick":50"#, r#""kick":1"#, "kick 50 → 1"),
        (r#""redact":50"#, r#""redact":0"#, "redact 50 → 0"),
        (r#""invite":0"#, r#""invite":100"#, "invite 0 → 100"),
        (r#""m.room.power_levels":100"#, r#""m.room.power_levels":0"#, "events[m.room.power_levels] 100 → 0"),
        (r#""m.room.name":50"#, r#""m.room.name":50,"m.room.tombstone":0"#, "events[m.room.tombstone] unset (50 as state, 0 otherwise) → 0"),
        (r#""notifications":{"room":50}"#, r#""notifications":{"room":0}"#, "notifications[room] 50 → 0"),
        // Dropping an entry: a message type falls back to events_default (0).
        (r#""m.room.name":50"#, r#""m.room.name":50,"m.room.message":50"#, "events[m.room.message] unset (50 as state, 0 otherwise) → 50"),
        (r#""invite":0"#, r#""invite":0,"historical":0"#, "historical unset → 0"),
    ];
    for (from, to, change) in cases {
        assert!(base.contains(from), "{from}");
        let new = pdu("m.room.power_levels", Some(""), &base.replacen(from, to, 1));
        let d = decide_with(&new, &claimed(), &room, false);
        assert_eq!(d.changes, [*change], "{to}");
        assert_eq!(d.action, Action::Confirm, "{to}");
        assert!(d.reasons().iter().any(|r| r.contains("affects someone else")), "{to}: {:?}", d.reasons());
        // Power over others set to deny: every one of these is denied.
        let deny = PolicyConfig { power_over_others: Action::Deny, ..claimed() };
        assert_eq!(decide_with(&new, &deny, &room, false).action, Action::Deny, "{to}");
    }
    // Attack: dropping a message type's entry lets anyone at
    // events_default (0) send it, though state_default is unchanged.
    let with_msg =
        levels(&base.replacen(r#""m.room.name":50"#, r#""m.room.name":50,"m.room.message":50"#, 1));
    let guarded = RoomFacts { power_levels: Some(&with_msg), ..RoomFacts::unknown() };
    let dropped = pdu("m.room.power_levels", Some(""), &base);
    let d = decide_with(&dropped, &claimed(), &guarded, false);
    assert_eq!(d.changes, ["events[m.room.message] 50 → unset (50 as state, 0 otherwise)"]);
    assert!(
        levels::Levels::new(&with_msg, &RV)
            .expect("l")
            .diff(&levels::Levels::new(&levels(&base), &RV).expect("l"))[0]
            .grants
    );
    // Control: the same content changes nothing and names nothing.
    let same = pdu("m.room.power_levels", Some(""), &base);
    assert!(decide_with(&same, &claimed(), &room, false).changes.is_empty());
    // Own level: listed, not power over others.
    let own = pdu("m.room.power_levels", Some(""), &base.replacen(r#":100}"#, r#":90}"#, 1));
    let d = decide_with(&own, &PolicyConfig { power_over_others: Action::Deny, ..claimed() }, &room, false);
    assert_eq!(d.changes, ["own users[XGX0JRS2Af3b…] 100 → 90"]);
    assert_eq!(d.action, Action::Confirm, "security state, not over others");
}

#[test]
fn power_levels_as_strings_are_parsed_by_room_version() {
    let old = levels(&format!(r#"{{"users":{{"{ME}":100}},"ban":50}}"#));
    let room = RoomFacts { power_levels: Some(&old), ..RoomFacts::unknown() };
    let run = |rv: &RoomVersion, ban: &str| {
        let p = pdu("m.room.power_levels", Some(""), &format!(r#"{{"users":{{"{ME}":100}},"ban":{ban}}}"#));
        let req = SignRequest { room_version: rv, ..sr(&p, None) };
        evaluate(&req, &trusted(), &room, RateFacts::default(), &claimed(), NOW)
    };
    // v9: "0" is 0 (not the default 50): a change, named.
    let d = run(&RoomVersion::V9, r#""0""#);
    assert_eq!(d.changes, ["ban 50 → 0"]);
    assert_eq!(run(&RoomVersion::V9, r#"" +50 ""#).changes.len(), 0, "equal to 50");
    assert_eq!(run(&RoomVersion::V9, r#""-5""#).changes, ["ban 50 → -5"]);
    for bad in [r#""fifty""#, r#""5x""#, r#""""#, r#""1_0""#, "true"] {
        let d = run(&RoomVersion::V9, bad);
        assert_eq!(d.action, Action::Deny, "{bad}");
        assert!(d.decisive_reasons()[0].contains("power level ban"), "{bad}: {:?}", d.reasons());
    }
    // v10 on: strings are invalid.
    let d = run(&RoomVersion::V10, r#""0""#);
    assert_eq!(d.action, Action::Deny);
    assert!(d.decisive_reasons()[0].contains("requires integers"), "{:?}", d.reasons());
    assert_eq!(run(&RoomVersion::V10, "0").changes, ["ban 50 → 0"]);
}

#[test]
fn redaction_targets_by_room_version() {
    let own = |id: &str| id == "$mine";
    let room = RoomFacts { is_own: &own, ..RoomFacts::unknown() };
    let v10 = |p: &Object| {
        let req = SignRequest { room_version: &RoomVersion::V10, ..sr(p, None) };
        evaluate(&req, &trusted(), &room, RateFacts::default(), &claimed(), NOW)
    };
    let v11 = |p: &Object| decide_with(p, &claimed(), &room, false);
    // Each version's own field alone: its target decides.
    let inner = pdu("m.room.redaction", None, r#"{"redacts":"$mine"}"#);
    assert_eq!(v11(&inner).action, Action::Allow, "v11+ reads content.redacts");
    let mut top = pdu("m.room.redaction", None, "{}");
    top.insert("redacts".into(), Value::from("$theirs"));
    assert_eq!(v10(&top).action, Action::Confirm, "v10 reads the top-level $theirs");
    top.insert("redacts".into(), Value::from("$mine"));
    assert_eq!(v10(&top).action, Action::Allow);
    // Attack: both fields, naming different events. Clients and older code
    // read the other field than the room version: denied in either version.
    let mut both = inner.clone();
    both.insert("redacts".into(), Value::from("$theirs"));
    let d = v11(&both);
    assert_eq!(d.action, Action::Deny, "{:?}", d.reasons());
    assert!(d.decisive_reasons()[0].contains("top-level redacts"), "{:?}", d.reasons());
    assert_eq!(v10(&both).action, Action::Deny);
    // Control: both fields naming the same event sign as before.
    both.insert("redacts".into(), Value::from("$mine"));
    assert_eq!(v11(&both).action, Action::Allow);
    assert_eq!(v10(&both).action, Action::Allow);
}

#[test]
fn joins_that_bind_a_key_need_an_intent_naming_the_room() {
    let join = {
        let mut p = pdu("m.room.member", Some(ME), r#"{"membership":"join"}"#);
        p.insert("room_id".into(), Value::from("!r:x"));
        p
    };
    let ask = |intent: Option<&Value>| {
        let req = SignRequest { binds_key: true, ..sr(&join, intent) };
        evaluate(&req, &trusted(), &RoomFacts::unknown(), RateFacts::default(), &claimed(), NOW)
    };
    let d = ask(None);
    assert_eq!(d.action, Action::Confirm);
    assert!(d.decisive_reasons()[0].contains("binds a cryptoID"), "{:?}", d.reasons());
    let right = from_str(&format!(
        r#"{{"room_id":"!r:x","type":"m.room.member","state_key":"{ME}","membership":"join"}}"#
    ))
    .expect("intent");
    assert_eq!(ask(Some(&right)).action, Action::Allow);
    let elsewhere = from_str(&format!(
        r#"{{"room_id":"!other:x","type":"m.room.member","state_key":"{ME}","membership":"join"}}"#
    ))
    .expect("intent");
    assert_eq!(ask(Some(&elsewhere)).action, Action::Deny, "room_id differs");
    // A join that binds nothing needs no intent.
    assert_eq!(decide(&join).action, Action::Allow);
    // m.room.create is for sign.batch only.
    assert_eq!(decide(&pdu("m.room.create", Some(""), "{}")).action, Action::Deny);
}

#[test]
fn timestamps_outside_the_skew_are_denied() {
    let at = |ts: u64| {
        let mut p = pdu("m.room.message", None, "{}");
        p.insert(
            "origin_server_ts".into(),
            Value::Int(cryptoid_protocol::json::Int::new(ts as i64).expect("ts")),
        );
        p
    };
    let hour = 3_600_000;
    for (ts, action, needle) in [
        (NOW - hour, Action::Deny, "1 h 0 min in the past"),
        (NOW + hour, Action::Deny, "1 h 0 min in the future"),
        (NOW - 299_000, Action::Allow, ""),
        (NOW + 299_000, Action::Allow, ""),
    ] {
        let d = decide(&at(ts));
        assert_eq!(d.action, action, "{ts}");
        if !needle.is_empty() {
            assert!(d.decisive_reasons()[0].contains(needle), "{:?}", d.reasons());
        }
    }
}

#[test]
fn client_rules_and_session_approval() {
    let cfg = PolicyConfig {
        clients: vec![
            config::ClientRule { exe: "/usr/bin/good*".into(), sign: Action::Allow, manage: Action::Confirm },
            config::ClientRule { exe: "/tmp/*".into(), sign: Action::Deny, manage: Action::Deny },
        ],
        ..claimed()
    };
    let p = pdu("m.room.message", None, "{}");
    let run = |exe: Option<&str>, approved: bool| {
        let c = ClientFacts { exe, approved_this_session: approved };
        evaluate(&sr(&p, None), &c, &RoomFacts::unknown(), RateFacts::default(), &cfg, NOW).action
    };
    assert_eq!(run(Some("/usr/bin/good-client"), false), Action::Allow);
    assert_eq!(run(Some("/tmp/evil"), true), Action::Deny);
    assert_eq!(run(Some("/usr/bin/other"), false), Action::Confirm);
    assert_eq!(run(Some("/usr/bin/other"), true), Action::Allow);
    assert_eq!(run(None, false), Action::Confirm);
    let good = ClientFacts { exe: Some("/usr/bin/good"), approved_this_session: false };
    assert_eq!(evaluate_management(&good, &cfg, Stakes::Ordinary).action, Action::Confirm);
    let approved = ClientFacts { exe: Some("/usr/bin/good"), approved_this_session: true };
    assert_eq!(evaluate_management(&approved, &cfg, Stakes::Ordinary).action, Action::Allow);
    assert_eq!(evaluate_management(&approved, &cfg, Stakes::Destroys).action, Action::Confirm);
    // Moving secrets is asked even of an approved client, whatever the config.
    assert_eq!(evaluate_management(&approved, &cfg, Stakes::MovesSecrets).action, Action::Confirm);
    let no_confirm = PolicyConfig { confirm_delete: false, ..cfg.clone() };
    assert_eq!(evaluate_management(&approved, &no_confirm, Stakes::Destroys).action, Action::Allow);
    assert_eq!(evaluate_management(&approved, &no_confirm, Stakes::MovesSecrets).action, Action::Confirm);
}

#[test]
fn bursts_beyond_the_rate_confirm() {
    let p = pdu("m.room.message", None, "{}");
    let cfg = claimed();
    let run = |room, client, cfg: &PolicyConfig| {
        evaluate(&sr(&p, None), &trusted(), &RoomFacts::unknown(), RateFacts { room, client }, cfg, NOW)
    };
    assert_eq!(run(59, 0, &cfg).action, Action::Allow);
    let d = run(60, 0, &cfg);
    assert_eq!(d.action, Action::Confirm);
    assert!(d.decisive_reasons()[0].contains("60 signatures in !r:x"), "{:?}", d.reasons());
    assert_eq!(run(0, 600, &cfg).action, Action::Confirm);
    let off = PolicyConfig {
        rate: config::RateConfig { per_room: 0, per_client: 0, window_secs: 60 },
        ..claimed()
    };
    assert_eq!(run(10_000, 10_000, &off).action, Action::Allow);
}

/// A createRoom batch by ME: create, join, power levels (`power`), then
/// `extra` state, chained with real event IDs.
fn room_batch(power: &str, extra: &[(&str, &str, &str)]) -> (Vec<Object>, Vec<String>) {
    let mut events = vec![
        ("m.room.create", "", format!(r#"{{"creator":"{ME}","room_version":"org.matrix.msc4080"}}"#)),
        ("m.room.member", ME, r#"{"membership":"join"}"#.to_owned()),
        ("m.room.power_levels", "", power.to_owned()),
    ];
    events.extend(extra.iter().map(|(t, k, c)| (*t, *k, (*c).to_owned())));
    let (mut out, mut ids): (Vec<Object>, Vec<String>) = (Vec::new(), Vec::new());
    for (i, (ty, sk, content)) in events.into_iter().enumerate() {
        let prev = ids.last().map(|p| format!(r#""{p}""#)).unwrap_or_default();
        let text = format!(
            r#"{{"type":"{ty}","state_key":"{sk}","room_id":"!new:x","sender":"{ME}","content":{content},"depth":{},"origin_server_ts":{NOW},"prev_events":[{prev}],"auth_events":[]}}"#,
            i + 1
        );
        let o = from_str(&text).expect("pdu").into_object().expect("object");
        let id = cryptoid_protocol::event::prepare(o.clone(), &RV)
            .expect("prepare")
            .event_id()
            .expect("id")
            .to_owned();
        out.push(o);
        ids.push(id);
    }
    (out, ids)
}

fn judge_batch(events: &[Object], ids: &[String], intent: Option<&Value>, room: &RoomFacts<'_>) -> Decision {
    let pdus: Vec<&Object> = events.iter().collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let batch = create_room::Batch {
        pdus: &pdus,
        event_ids: &ids,
        intent,
        room_version: &RV,
        binds_creator: true,
        key_user: None,
    };
    evaluate_batch(&batch, &trusted(), room, RateFacts::default(), &claimed(), NOW)
}

#[test]
fn create_room_batches_against_their_intent() {
    let power = format!(
        r#"{{"ban":50,"events":{{"m.room.avatar":50,"m.room.canonical_alias":50,"m.room.encryption":100,"m.room.history_visibility":100,"m.room.name":50,"m.room.power_levels":100,"m.room.server_acl":100,"m.room.tombstone":100}},"events_default":0,"invite":0,"kick":50,"redact":50,"state_default":50,"users":{{"{ME}":100}},"users_default":0}}"#
    );
    let private: [(&str, &str, &str); 3] = [
        ("m.room.join_rules", "", r#"{"join_rule":"invite"}"#),
        ("m.room.history_visibility", "", r#"{"history_visibility":"shared"}"#),
        ("m.room.guest_access", "", r#"{"guest_access":"can_join"}"#),
    ];
    let intent = |body: &str| from_str(&format!(r#"{{"create_room":{body}}}"#)).expect("intent");
    let asked = intent(r#"{"preset":"private_chat"}"#);
    let with = |i: usize, content: &'static str| {
        let mut e = private;
        e[i].2 = content;
        e
    };
    /// (what, power levels, extra state, intent, verdict, reason contains)
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str, &'a str)>, Value, Action, &'a str);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("as asked", power.clone(), private.to_vec(), asked.clone(), Action::Allow, ""),
        ("public", power.clone(), with(0, r#"{"join_rule":"public"}"#).to_vec(), asked.clone(), Action::Deny, "m.room.join_rules"),
        ("world readable", power.clone(), with(1, r#"{"history_visibility":"world_readable"}"#).to_vec(), asked.clone(), Action::Deny, "m.room.history_visibility"),
        ("guests forbidden", power.clone(), with(2, r#"{"guest_access":"forbidden"}"#).to_vec(), asked.clone(), Action::Deny, "m.room.guest_access"),
        ("no guest access", power.clone(), private[..2].to_vec(), asked.clone(), Action::Deny, "lacks m.room.guest_access"),
        ("public preset", power.replace(r#""invite":0"#, r#""invite":50"#), vec![("m.room.join_rules", "", r#"{"join_rule":"public"}"#), ("m.room.history_visibility", "", r#"{"history_visibility":"shared"}"#)], intent(r#"{"preset":"public_chat"}"#), Action::Allow, ""),
        ("visibility public", power.replace(r#""invite":0"#, r#""invite":50"#), vec![("m.room.join_rules", "", r#"{"join_rule":"public"}"#), ("m.room.history_visibility", "", r#"{"history_visibility":"shared"}"#)], intent(r#"{"visibility":"public"}"#), Action::Allow, ""),
        ("ACL unasked", power.clone(), [private.to_vec(), vec![("m.room.server_acl", "", r#"{"allow":["*"]}"#)]].concat(), asked.clone(), Action::Deny, "m.room.server_acl"),
        // Asked for, it matches the intent, and still asks like any ACL.
        ("ACL asked", power.clone(), [private.to_vec(), vec![("m.room.server_acl", "", r#"{"allow":["*"]}"#)]].concat(), intent(r#"{"initial_state":[{"type":"m.room.server_acl","content":{"allow":["*"]}}]}"#), Action::Confirm, "security-relevant"),
        ("server's encryption", power.clone(), [private.to_vec(), vec![("m.room.encryption", "", r#"{"algorithm":"m.megolm.v1.aes-sha2"}"#)]].concat(), asked.clone(), Action::Allow, ""),
        ("odd encryption", power.clone(), [private.to_vec(), vec![("m.room.encryption", "", r#"{"algorithm":"x.none"}"#)]].concat(), asked.clone(), Action::Deny, "m.room.encryption"),
        ("name as asked", power.clone(), [private.to_vec(), vec![("m.room.name", "", r#"{"name":"Team"}"#)]].concat(), intent(r#"{"name":"Team"}"#), Action::Allow, ""),
        ("name changed", power.clone(), [private.to_vec(), vec![("m.room.name", "", r#"{"name":"Evil"}"#)]].concat(), intent(r#"{"name":"Team"}"#), Action::Deny, "m.room.name"),
        ("invite unasked", power.clone(), [private.to_vec(), vec![("m.room.member", OTHER, r#"{"membership":"invite"}"#)]].concat(), asked.clone(), Action::Deny, "does not invite"),
        ("users_default", power.replace(r#""users_default":0"#, r#""users_default":50"#), private.to_vec(), asked.clone(), Action::Deny, "users_default 0 → 50"),
        ("state_default", power.replace(r#""state_default":50"#, r#""state_default":0"#), private.to_vec(), asked.clone(), Action::Deny, "state_default"),
        ("raised levels", power.replace(r#""kick":50"#, r#""kick":100"#), private.to_vec(), asked.clone(), Action::Allow, ""),
        ("creator demoted", power.replace(&format!(r#""{ME}":100"#), &format!(r#""{ME}":10"#)), private.to_vec(), asked.clone(), Action::Deny, "users[XGX0JRS2Af3b…]"),
        ("override honoured", power.replace(r#""ban":50"#, r#""ban":0"#), private.to_vec(), intent(r#"{"power_level_content_override":{"ban":0}}"#), Action::Allow, ""),
        ("override ignored", power.clone(), private.to_vec(), intent(r#"{"power_level_content_override":{"ban":0}}"#), Action::Deny, "power_level_content_override.ban"),
        ("unknown preset", power.clone(), private.to_vec(), intent(r#"{"preset":"evil_chat"}"#), Action::Deny, "unknown preset"),
        ("bad intent", power.clone(), private.to_vec(), from_str(r#"{"type":"m.room.create"}"#).expect("i"), Action::Deny, "create_room"),
    ];
    for (what, power, extra, intent, want, needle) in cases {
        let (events, ids) = room_batch(&power, &extra);
        let d = judge_batch(&events, &ids, Some(&intent), &RoomFacts::unknown());
        assert_eq!(d.action, want, "{what}: {:?}", d.reasons());
        if !needle.is_empty() {
            assert!(
                d.decisive_reasons().iter().any(|r| r.contains(needle)),
                "{what}: {needle} in {:?}",
                d.reasons()
            );
        }
    }
    // Without an intent: the defaults sign; power beyond the creator's asks.
    let (events, ids) = room_batch(&power, &private);
    assert_eq!(judge_batch(&events, &ids, None, &RoomFacts::unknown()).action, Action::Allow);
    let (events, ids) = room_batch(&power.replace(r#""users_default":0"#, r#""users_default":1"#), &private);
    assert_eq!(judge_batch(&events, &ids, None, &RoomFacts::unknown()).action, Action::Confirm);
    // A room the agent knows is no createRoom.
    let known = RoomFacts { exists: true, ..RoomFacts::unknown() };
    let (events, ids) = room_batch(&power, &private);
    assert_eq!(judge_batch(&events, &ids, Some(&asked), &known).action, Action::Deny);
}

/// Verified auth events of a cryptoID room: the creator ME (joined, 100)
/// and OTHER (joined, 0).
fn held_auth(id: &str) -> Option<Object> {
    let text = match id {
        "$c" => format!(
            r#"{{"type":"m.room.create","state_key":"","sender":"{ME}","room_id":"!r:x","content":{{"room_version":"org.matrix.msc4080"}},"depth":1,"prev_events":[],"auth_events":[]}}"#
        ),
        "$me" => format!(
            r#"{{"type":"m.room.member","state_key":"{ME}","sender":"{ME}","room_id":"!r:x","content":{{"membership":"join"}},"depth":2,"prev_events":["$c"],"auth_events":["$c"]}}"#
        ),
        "$other" => format!(
            r#"{{"type":"m.room.member","state_key":"{OTHER}","sender":"{OTHER}","room_id":"!r:x","content":{{"membership":"join"}},"depth":4,"prev_events":["$pl"],"auth_events":["$c","$pl"]}}"#
        ),
        "$pl" => format!(
            r#"{{"type":"m.room.power_levels","state_key":"","sender":"{ME}","room_id":"!r:x","content":{{"users":{{"{ME}":100}}}},"depth":3,"prev_events":["$me"],"auth_events":["$c","$me"]}}"#
        ),
        _ => return None,
    };
    from_str(&text).ok()?.into_object()
}

fn with_auth(mut p: Object, auth: &[&str]) -> Object {
    p.insert("auth_events".into(), Value::Array(auth.iter().map(|a| Value::from(*a)).collect()));
    p
}

#[test]
fn verified_baseline_is_the_pdu_s_own_auth_events_not_a_claimed_view() {
    // Attack: power levels fed as a claim already give OTHER 100, so a PDU
    // that "keeps" the grant would show no change against them.
    let forged = levels(&format!(r#"{{"users":{{"{ME}":100,"{OTHER}":100}}}}"#));
    let room = RoomFacts {
        claimed_power_levels: Some(&forged),
        auth_event: &held_auth,
        holds_verified: true,
        ..RoomFacts::unknown()
    };
    let keep = with_auth(
        pdu("m.room.power_levels", Some(""), &format!(r#"{{"users":{{"{ME}":100,"{OTHER}":100}}}}"#)),
        &["$c", "$pl", "$me"],
    );
    let d = decide_with(&keep, &PolicyConfig::default(), &room, false);
    assert_eq!(d.changes, ["users[3TPraTczVkDP…] 0 (default) → 100"], "{:?}", d.reasons());
    assert_eq!(d.action, Action::Confirm);
    assert!(d.reasons().iter().any(|r| r.contains("passes the room version's authorization rules")));
    // Control: an unchanged power levels event changes nothing.
    let same = with_auth(
        pdu("m.room.power_levels", Some(""), &format!(r#"{{"users":{{"{ME}":100}}}}"#)),
        &["$c", "$pl", "$me"],
    );
    assert!(decide_with(&same, &PolicyConfig::default(), &room, false).changes.is_empty());
}

#[test]
fn verified_baseline_unheld_auth_events_are_asked_about_and_hide_no_change() {
    // The PDU cites a power levels event the agent does not hold verified
    // ($fake, fed as a claim that OTHER is at 100).
    let claimed_pl = levels(&format!(r#"{{"users":{{"{ME}":100,"{OTHER}":100}}}}"#));
    let room = RoomFacts {
        claimed_power_levels: Some(&claimed_pl),
        auth_event: &held_auth,
        holds_verified: true,
        ..RoomFacts::unknown()
    };
    let keep = with_auth(
        pdu("m.room.power_levels", Some(""), &format!(r#"{{"users":{{"{ME}":100,"{OTHER}":100}}}}"#)),
        &["$c", "$fake", "$me"],
    );
    let cfg = PolicyConfig {
        rules: vec![config::Rule {
            room: "*".into(),
            event_type: "*".into(),
            state: None,
            action: Action::Allow,
        }],
        ..PolicyConfig::default()
    };
    let d = decide_with(&keep, &cfg, &room, false);
    assert_eq!(d.action, Action::Confirm);
    assert!(d.changes.iter().any(|c| c == "users[3TPraTczVkDP…] 0 (default) → 100"), "{:?}", d.changes);
    assert!(
        d.reasons().iter().any(|r| r.contains("has not verified the room's power levels")),
        "{:?}",
        d.reasons()
    );
    // A message citing an unheld event in a room held verified is asked about too.
    let msg = with_auth(pdu("m.room.message", None, r#"{"body":"hi"}"#), &["$c", "$fake", "$me"]);
    assert_eq!(decide_with(&msg, &PolicyConfig::default(), &room, false).action, Action::Confirm);
    // Control: a message citing held events is allowed.
    let msg = with_auth(pdu("m.room.message", None, r#"{"body":"hi"}"#), &["$c", "$pl", "$me"]);
    let d = decide_with(&msg, &PolicyConfig::default(), &room, false);
    assert_eq!(d.action, Action::Allow, "{:?}", d.reasons());
}

#[test]
fn verified_baseline_a_pdu_the_federation_would_reject_is_denied() {
    let room = RoomFacts { auth_event: &held_auth, holds_verified: true, ..RoomFacts::unknown() };
    // OTHER (level 0) raising itself: servers reject it.
    let mut grab = with_auth(
        pdu("m.room.power_levels", Some(""), &format!(r#"{{"users":{{"{ME}":100,"{OTHER}":100}}}}"#)),
        &["$c", "$pl", "$other"],
    );
    grab.insert("sender".into(), OTHER.into());
    let d = decide_with(&grab, &PolicyConfig::default(), &room, false);
    assert_eq!(d.action, Action::Deny);
    assert!(
        d.decisive_reasons().iter().any(|r| r.contains("servers would reject this event")),
        "{:?}",
        d.reasons()
    );
    // A message by a sender whose membership is not among the auth events.
    let msg = with_auth(pdu("m.room.message", None, r#"{"body":"hi"}"#), &["$c", "$pl"]);
    assert_eq!(decide_with(&msg, &PolicyConfig::default(), &room, false).action, Action::Deny);
}

#[test]
fn verified_baseline_a_pdu_citing_no_power_levels_is_diffed_against_the_room_s() {
    // The room's verified power levels: ME 100, OTHER 50, ban 100. The PDU
    // cites only the create and ME's join (the creator may then change
    // anything), demoting OTHER and lowering ban.
    let real = levels(&format!(r#"{{"users":{{"{ME}":100,"{OTHER}":50}},"ban":100}}"#));
    let room = RoomFacts {
        power_levels: Some(&real),
        auth_event: &held_auth,
        holds_verified: true,
        ..RoomFacts::unknown()
    };
    let demote = with_auth(
        pdu("m.room.power_levels", Some(""), &format!(r#"{{"users":{{"{ME}":100}}}}"#)),
        &["$c", "$me"],
    );
    let d = decide_with(&demote, &PolicyConfig::default(), &room, false);
    assert_eq!(d.action, Action::Confirm);
    assert!(d.changes.iter().any(|c| c.contains("users[3TPraTczVkDP…] 50 → ")), "{:?}", d.changes);
    assert!(d.changes.iter().any(|c| c.starts_with("ban 100 → 50")), "{:?}", d.changes);
    assert!(d.reasons().iter().any(|r| r.contains("cite no power levels")), "{:?}", d.reasons());
    // Control: citing the room's power levels, an unchanged event changes nothing.
    let room = RoomFacts { power_levels: None, ..room };
    let same = with_auth(
        pdu("m.room.power_levels", Some(""), &format!(r#"{{"users":{{"{ME}":100}}}}"#)),
        &["$c", "$pl", "$me"],
    );
    assert!(decide_with(&same, &PolicyConfig::default(), &room, false).changes.is_empty());
}
