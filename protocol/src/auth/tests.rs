//! Unit checks of the rules; the differential test against Synapse
//! (`tests/interop/auth_diff.py`) covers them at random.

use super::*;
use crate::json::from_str;

fn obj(s: &str) -> Object {
    from_str(s).expect("json").into_object().expect("object")
}

const ROOM: &str = "!r:a.example";

fn create() -> Object {
    obj(
        r#"{"type":"m.room.create","state_key":"","sender":"@alice:a.example","room_id":"!r:a.example","content":{"room_version":"11"},"prev_events":[],"auth_events":[],"depth":1}"#,
    )
}

fn state(ty: &str, sk: &str, sender: &str, content: &str) -> Object {
    obj(&format!(
        r#"{{"type":"{ty}","state_key":"{sk}","sender":"{sender}","room_id":"{ROOM}","content":{content},"prev_events":["$x"],"auth_events":[],"depth":5}}"#
    ))
}

#[test]
fn a_power_change_by_a_member_without_power_fails_and_the_creator_s_passes() {
    let rv = RoomVersion::V11;
    let c = create();
    let pl = state("m.room.power_levels", "", "@alice:a.example", r#"{"users":{"@alice:a.example":100}}"#);
    let bob = state("m.room.member", "@bob:b.example", "@bob:b.example", r#"{"membership":"join"}"#);
    let alice = state("m.room.member", "@alice:a.example", "@alice:a.example", r#"{"membership":"join"}"#);
    let auth_bob = [("$c", &c), ("$pl", &pl), ("$bob", &bob)];
    let grab = state(
        "m.room.power_levels",
        "",
        "@bob:b.example",
        r#"{"users":{"@alice:a.example":100,"@bob:b.example":100}}"#,
    );
    let mut e = grab.clone();
    e.insert("auth_events".into(), from_str(r#"["$c","$pl","$bob"]"#).expect("json"));
    assert!(matches!(check(&rv, "$e", &e, &auth_bob), Err(AuthError::InsufficientPower { .. })));
    let mut ok = state(
        "m.room.power_levels",
        "",
        "@alice:a.example",
        r#"{"users":{"@alice:a.example":100,"@bob:b.example":100}}"#,
    );
    ok.insert("auth_events".into(), from_str(r#"["$c","$pl","$alice"]"#).expect("json"));
    check(&rv, "$ok", &ok, &[("$c", &c), ("$pl", &pl), ("$alice", &alice)]).expect("the creator may grant");
}

#[test]
fn an_unknown_or_unexpected_auth_event_fails() {
    let rv = RoomVersion::V11;
    let c = create();
    let mut msg = state("m.room.message", "", "@alice:a.example", "{}");
    msg.remove("state_key");
    msg.insert("auth_events".into(), from_str(r#"["$c","$missing"]"#).expect("json"));
    assert_eq!(check(&rv, "$m", &msg, &[("$c", &c)]), Err(AuthError::UnknownAuthEvent("$missing".into())));
    let topic = state("m.room.topic", "", "@alice:a.example", r#"{"topic":"x"}"#);
    msg.insert("auth_events".into(), from_str(r#"["$c","$t"]"#).expect("json"));
    assert!(matches!(
        check(&rv, "$m", &msg, &[("$c", &c), ("$t", &topic)]),
        Err(AuthError::UnexpectedAuthEvent { .. })
    ));
}

#[test]
fn python_int_reads_levels_as_synapse_does() {
    assert_eq!(power::python_int(" 50 "), Some(50));
    assert_eq!(power::python_int("-1_0"), Some(-10));
    assert_eq!(power::python_int("1__0"), None);
    assert_eq!(power::python_int(""), None);
    assert_eq!(power::python_int("5a"), None);
}
