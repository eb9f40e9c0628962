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

fn trusted() -> ClientFacts<'static> {
    ClientFacts { exe: Some("/usr/bin/client"), approved_this_session: true }
}

fn decide_with(p: &Object, cfg: &PolicyConfig, room: &RoomFacts<'_>, initial: bool) -> Decision {
    let req = SignRequest { pdu: p, intent: None, initial_state: initial };
    evaluate(&req, &trusted(), room, RateFacts::default(), cfg, NOW)
}

fn decide(p: &Object) -> Decision {
    decide_with(p, &PolicyConfig::default(), &RoomFacts::unknown(), false)
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
        (r#"{"membership":"ban"}"#, "ban 3TPraTcz…"),
        (r#"{"membership":"leave"}"#, "kick (or unban) 3TPraTcz…"),
        (r#"{"membership":"invite"}"#, "invite 3TPraTcz…"),
    ];
    for (content, change) in cases {
        let d = decide(&pdu("m.room.member", Some(OTHER), content));
        assert_eq!(d.action, Action::Confirm, "{content}");
        assert_eq!(d.changes, [change]);
        assert!(d.reasons().iter().any(|r| r.contains("affects someone else")), "{:?}", d.reasons());
    }
    // power_over_others = deny turns them into denials.
    let cfg = PolicyConfig { power_over_others: Action::Deny, ..Default::default() };
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
    let d = decide_with(&grant, &PolicyConfig::default(), &room, false);
    assert_eq!(d.action, Action::Confirm);
    assert_eq!(d.changes, ["power level of 3TPraTcz… 0 → 100"]);
    // Even with a rule allowing power_levels, power over others confirms.
    let cfg = PolicyConfig {
        rules: vec![config::Rule {
            room: "*".into(),
            event_type: "m.room.power_levels".into(),
            state: None,
            action: Action::Allow,
        }],
        ..Default::default()
    };
    assert_eq!(decide_with(&grant, &cfg, &room, false).action, Action::Confirm);
    let unchanged =
        pdu("m.room.power_levels", Some(""), &format!(r#"{{"users":{{"{ME}":100}},"users_default":0}}"#));
    let d = decide_with(&unchanged, &cfg, &room, false);
    assert_eq!((d.action, d.changes.len()), (Action::Allow, 0), "{:?}", d.reasons());
}

#[test]
fn create_room_initial_state() {
    let own_power = pdu("m.room.power_levels", Some(""), &format!(r#"{{"users":{{"{ME}":100}}}}"#));
    assert_eq!(
        decide_with(&own_power, &PolicyConfig::default(), &RoomFacts::unknown(), true).action,
        Action::Allow
    );
    let extra = pdu("m.room.power_levels", Some(""), &format!(r#"{{"users":{{"{ME}":100,"{OTHER}":100}}}}"#));
    let d = decide_with(&extra, &PolicyConfig::default(), &RoomFacts::unknown(), true);
    assert_eq!(d.action, Action::Confirm);
    assert_eq!(d.changes, ["power level of 3TPraTcz… → 100", "own power level of XGX0JRS2… → 100"]);
    let acl = pdu("m.room.server_acl", Some(""), "{}");
    assert_eq!(
        decide_with(&acl, &PolicyConfig::default(), &RoomFacts::unknown(), true).action,
        Action::Confirm
    );
    let stranger = pdu("m.room.member", Some(OTHER), r#"{"membership":"invite"}"#);
    assert_eq!(
        decide_with(&stranger, &PolicyConfig::default(), &RoomFacts::unknown(), true).action,
        Action::Confirm
    );
}

#[test]
fn redactions_of_own_and_others_events() {
    let own = |id: &str| id == "$mine";
    let room = RoomFacts { is_own: &own, ..RoomFacts::unknown() };
    let mine = pdu("m.room.redaction", None, r#"{"redacts":"$mine"}"#);
    assert_eq!(decide_with(&mine, &PolicyConfig::default(), &room, false).action, Action::Allow);
    let theirs = pdu("m.room.redaction", None, r#"{"redacts":"$theirs"}"#);
    let d = decide_with(&theirs, &PolicyConfig::default(), &room, false);
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
        ..Default::default()
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
    let cfg = PolicyConfig::default();
    let room = RoomFacts::unknown();
    let run = |intent: Option<&Value>, cfg: &PolicyConfig| {
        evaluate(
            &SignRequest { pdu: &p, intent, initial_state: false },
            &trusted(),
            &room,
            RateFacts::default(),
            cfg,
            NOW,
        )
    };
    assert_eq!(run(Some(&good), &cfg).action, Action::Allow);
    let d = run(Some(&bad), &cfg);
    assert_eq!(d.action, Action::Deny);
    assert!(d.decisive_reasons()[0].starts_with("PDU content is"), "{:?}", d.reasons());
    let strict = PolicyConfig { require_intent: true, ..Default::default() };
    assert_eq!(run(None, &strict).action, Action::Deny);
    assert_eq!(run(Some(&good), &strict).action, Action::Allow);
}

#[test]
fn anti_replay_modes() {
    let known = |id: &str| id == "$p1";
    let unknown_prev = |_: &str| false;
    let at_200 = RoomFacts { max_depth: Some(200), is_known: &known, ..RoomFacts::unknown() };
    let msg = pdu("m.room.message", None, "{}"); // depth 100, prev $p1
                                                 // window (default): 100 below a frontier of 200 with window 50 → deny.
    let d = decide_with(&msg, &PolicyConfig::default(), &at_200, false);
    assert_eq!(d.action, Action::Deny);
    assert!(d.decisive_reasons()[0].contains("100 below the newest depth 200"), "{:?}", d.reasons());
    let at_140 = RoomFacts { max_depth: Some(140), ..RoomFacts::unknown() };
    assert_eq!(decide_with(&msg, &PolicyConfig::default(), &at_140, false).action, Action::Allow);
    // Nothing known: nothing to compare.
    assert_eq!(decide(&msg).action, Action::Allow);
    // strict: the prev_event must be known.
    let strict = PolicyConfig { anti_replay: ReplayMode::Strict, ..Default::default() };
    let knows = RoomFacts { is_known: &known, ..RoomFacts::unknown() };
    assert_eq!(decide_with(&msg, &strict, &knows, false).action, Action::Allow);
    let blind = RoomFacts { is_known: &unknown_prev, ..RoomFacts::unknown() };
    let d = decide_with(&msg, &strict, &blind, false);
    assert_eq!(d.action, Action::Deny);
    assert!(d.decisive_reasons()[0].contains("$p1 never seen"), "{:?}", d.reasons());
    // window mode, state event, observed room: strict for it.
    let observed = RoomFacts { observed: true, is_known: &unknown_prev, ..RoomFacts::unknown() };
    let name = pdu("m.room.name", Some(""), r#"{"name":"x"}"#);
    assert_eq!(decide_with(&name, &PolicyConfig::default(), &observed, false).action, Action::Deny);
    assert_eq!(decide_with(&msg, &PolicyConfig::default(), &observed, false).action, Action::Allow);
    // off.
    let off = PolicyConfig { anti_replay: ReplayMode::Off, ..Default::default() };
    assert_eq!(decide_with(&msg, &off, &at_200, false).action, Action::Allow);
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
        ..Default::default()
    };
    let p = pdu("m.room.message", None, "{}");
    let run = |exe: Option<&str>, approved: bool| {
        let c = ClientFacts { exe, approved_this_session: approved };
        evaluate(
            &SignRequest { pdu: &p, intent: None, initial_state: false },
            &c,
            &RoomFacts::unknown(),
            RateFacts::default(),
            &cfg,
            NOW,
        )
        .action
    };
    assert_eq!(run(Some("/usr/bin/good-client"), false), Action::Allow);
    assert_eq!(run(Some("/tmp/evil"), true), Action::Deny);
    assert_eq!(run(Some("/usr/bin/other"), false), Action::Confirm);
    assert_eq!(run(Some("/usr/bin/other"), true), Action::Allow);
    assert_eq!(run(None, false), Action::Confirm);
    let good = ClientFacts { exe: Some("/usr/bin/good"), approved_this_session: false };
    assert_eq!(evaluate_management(&good, &cfg, false).action, Action::Confirm);
    let approved = ClientFacts { exe: Some("/usr/bin/good"), approved_this_session: true };
    assert_eq!(evaluate_management(&approved, &cfg, false).action, Action::Allow);
    assert_eq!(evaluate_management(&approved, &cfg, true).action, Action::Confirm);
    let no_confirm = PolicyConfig { confirm_delete: false, ..cfg.clone() };
    assert_eq!(evaluate_management(&approved, &no_confirm, true).action, Action::Allow);
}

#[test]
fn bursts_beyond_the_rate_confirm() {
    let p = pdu("m.room.message", None, "{}");
    let cfg = PolicyConfig::default();
    let run = |room, client, cfg: &PolicyConfig| {
        evaluate(
            &SignRequest { pdu: &p, intent: None, initial_state: false },
            &trusted(),
            &RoomFacts::unknown(),
            RateFacts { room, client },
            cfg,
            NOW,
        )
    };
    assert_eq!(run(59, 0, &cfg).action, Action::Allow);
    let d = run(60, 0, &cfg);
    assert_eq!(d.action, Action::Confirm);
    assert!(d.decisive_reasons()[0].contains("60 signatures in !r:x"), "{:?}", d.reasons());
    assert_eq!(run(0, 600, &cfg).action, Action::Confirm);
    let off = PolicyConfig {
        rate: config::RateConfig { per_room: 0, per_client: 0, window_secs: 60 },
        ..Default::default()
    };
    assert_eq!(run(10_000, 10_000, &off).action, Action::Allow);
}
