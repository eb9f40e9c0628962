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

/// The cryptoID versions' three differences from v11, each beside v11's
/// own verdict on the same event.
#[test]
fn cryptoid_versions_differ_from_v11_where_a_cryptoid_names_no_server() {
    let k = crate::keys::KeyPair::from_seed(&[3; 32]).cryptoid();
    let other = crate::keys::KeyPair::from_seed(&[4; 32]).cryptoid();
    let create = obj(&format!(
        r#"{{"type":"m.room.create","state_key":"","sender":"{k}","room_id":"!r:hs.example","content":{{"m.federate":false}},"prev_events":[],"auth_events":[],"depth":1}}"#
    ));
    // The create: the room ID's server is not the sender's (a key has none).
    check(&RoomVersion::MSC4080, "$c", &create, &[]).expect("a cryptoID creates a room on its homeserver");
    assert!(
        check(&RoomVersion::V11, "$c", &create, &[]).is_err(),
        "v11: the room ID's server must be the sender's"
    );
    // m.federate false: a cryptoID has no server to compare.
    let join = |who: &str| {
        obj(&format!(
            r#"{{"type":"m.room.member","state_key":"{who}","sender":"{who}","room_id":"!r:hs.example","content":{{"membership":"join"}},"prev_events":["$c"],"auth_events":["$c"],"depth":2}}"#
        ))
    };
    check(&RoomVersion::MSC4080, "$j", &join(&k), &[("$c", &create)]).expect("the creator joins");
    let public = obj(&format!(
        r#"{{"type":"m.room.join_rules","state_key":"","sender":"{k}","room_id":"!r:hs.example","content":{{"join_rule":"public"}},"prev_events":["$j"],"auth_events":["$c"],"depth":3}}"#
    ));
    let mut theirs = join(&other);
    theirs.insert("auth_events".into(), crate::json::from_str(r#"["$c","$jr"]"#).expect("json"));
    theirs.insert("prev_events".into(), crate::json::from_str(r#"["$jr"]"#).expect("json"));
    check(&RoomVersion::MSC4080, "$o", &theirs, &[("$c", &create), ("$jr", &public)])
        .expect("m.federate is not applied to cryptoIDs");
    // Power levels keyed by cryptoID.
    let me = join(&k);
    let mut pl = obj(&format!(
        r#"{{"type":"m.room.power_levels","state_key":"","sender":"{k}","room_id":"!r:hs.example","content":{{"users":{{"{k}":100,"{other}":50}}}},"prev_events":["$j"],"auth_events":["$c","$j"],"depth":3}}"#
    ));
    check(&RoomVersion::MSC4080, "$pl", &pl, &[("$c", &create), ("$j", &me)])
        .expect("users keyed by cryptoID");
    pl.insert("sender".into(), "@k:hs.example".into());
    let v11_create = obj(
        r#"{"type":"m.room.create","state_key":"","sender":"@k:hs.example","room_id":"!r:hs.example","content":{},"prev_events":[],"auth_events":[],"depth":1}"#,
    );
    let v11_join = obj(
        r#"{"type":"m.room.member","state_key":"@k:hs.example","sender":"@k:hs.example","room_id":"!r:hs.example","content":{"membership":"join"},"prev_events":["$c"],"auth_events":["$c"],"depth":2}"#,
    );
    assert!(
        matches!(
            check(&RoomVersion::V11, "$pl", &pl, &[("$c", &v11_create), ("$j", &v11_join)]),
            Err(AuthError::PowerLevels(_))
        ),
        "v11: users keys must be user IDs"
    );
}
