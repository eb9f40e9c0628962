//! The redaction algorithm, per room version.
//!
//! One decision table ([`keep_top_level`], [`content_action`]) drives both the
//! owned [`redact`] and the allocation-free [`write_signing_bytes`] used on
//! the signing hot path, so the two cannot disagree.

use crate::json::{write_member, write_str, Object, Value};
use crate::room_version::{MemberRedaction, RedactionAlgorithm, RoomVersion};

/// What happens to one key of `content` when an event is redacted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ContentAction {
    Keep,
    Drop,
    /// v11 `m.room.member` `third_party_invite`: keep only its `signed` member.
    KeepSignedOnly,
}

/// Whether a top-level key survives redaction.
fn keep_top_level(alg: RedactionAlgorithm, key: &str) -> bool {
    match key {
        "event_id" | "type" | "room_id" | "sender" | "state_key" | "content" | "hashes" | "signatures"
        | "depth" | "prev_events" | "auth_events" | "origin_server_ts" => true,
        "origin" | "membership" | "prev_state" => alg < RedactionAlgorithm::V11,
        _ => false,
    }
}

fn content_action(rv: &RoomVersion, event_type: Option<&str>, key: &str) -> ContentAction {
    use ContentAction::{Drop, Keep, KeepSignedOnly};
    let alg = rv.redaction();
    let v11 = alg >= RedactionAlgorithm::V11;
    let keep = |cond: bool| if cond { Keep } else { Drop };
    match (event_type.unwrap_or(""), key) {
        ("m.room.member", "membership") => Keep,
        ("m.room.member", "join_authorised_via_users_server") => keep(alg >= RedactionAlgorithm::V9),
        ("m.room.member", "third_party_invite") => match rv.member_redaction() {
            MemberRedaction::Gomatrixserverlib => Drop,
            _ if v11 => KeepSignedOnly,
            _ => Drop,
        },
        ("m.room.member", "mxid_mapping") => keep(rv.member_redaction() == MemberRedaction::KeepMxidMapping),
        ("m.room.create", "creator") => Keep,
        ("m.room.create", _) => keep(v11),
        ("m.room.join_rules", "join_rule") => Keep,
        ("m.room.join_rules", "allow") => keep(alg >= RedactionAlgorithm::V8),
        (
            "m.room.power_levels",
            "ban" | "events" | "events_default" | "kick" | "redact" | "state_default" | "users"
            | "users_default",
        ) => Keep,
        ("m.room.power_levels", "invite") => keep(v11),
        ("m.room.aliases", "aliases") => keep(alg < RedactionAlgorithm::V6),
        ("m.room.history_visibility", "history_visibility") => Keep,
        ("m.room.redaction", "redacts") => keep(v11),
        _ => Drop,
    }
}

fn event_type(event: &Object) -> Option<&str> {
    event.get("type").and_then(Value::as_str)
}

/// The redacted content of `third_party_invite` (Synapse's behaviour, which
/// the vectors follow): an object keeps only `signed`; anything else goes.
fn signed_only(v: &Value) -> Option<Value> {
    let obj = v.as_object()?;
    let mut out = Object::new();
    if let Some(signed) = obj.get("signed") {
        out.insert("signed".to_owned(), signed.clone());
    }
    Some(Value::Object(out))
}

/// Redacts `content` for an event of type `event_type`.
pub fn redact_content(rv: &RoomVersion, event_type: Option<&str>, content: &Object) -> Object {
    let mut out = Object::new();
    for (k, v) in content {
        match content_action(rv, event_type, k) {
            ContentAction::Keep => {
                out.insert(k.clone(), v.clone());
            }
            ContentAction::KeepSignedOnly => {
                if let Some(sub) = signed_only(v) {
                    out.insert(k.clone(), sub);
                }
            }
            ContentAction::Drop => {}
        }
    }
    out
}

/// Returns the redacted copy of `event` under the rules of `rv`.
///
/// The result always has `content` (empty if need be): Synapse and
/// gomatrixserverlib both emit it, and the Synapse minimal-event vector only
/// verifies with it.
pub fn redact(event: &Object, rv: &RoomVersion) -> Object {
    let alg = rv.redaction();
    let ty = event_type(event);
    let mut out = Object::new();
    for (k, v) in event {
        if !keep_top_level(alg, k) {
            continue;
        }
        let v = match (k.as_str(), v) {
            ("content", Value::Object(content)) => Value::Object(redact_content(rv, ty, content)),
            ("content", _) => Value::Object(Object::new()),
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    out.entry("content".to_owned()).or_insert_with(|| Value::Object(Object::new()));
    out
}

/// Appends the bytes that are signed and whose SHA-256 is the reference hash:
/// canonical JSON of the redacted event without `signatures` and `unsigned`.
/// Equivalent to serializing [`redact`]'s result minus `signatures`, without
/// copying the event.
pub fn write_signing_bytes(out: &mut Vec<u8>, event: &Object, rv: &RoomVersion) {
    let alg = rv.redaction();
    let ty = event_type(event);
    out.push(b'{');
    let mut first = true;
    let mut content_written = false;
    for (k, v) in event {
        if k == "signatures" || !keep_top_level(alg, k) {
            continue;
        }
        // Keys arrive sorted; an absent `content` goes where it sorts.
        if !content_written && k.as_str() > "content" {
            write_member(out, &mut first, "content", &Value::Object(Object::new()));
            content_written = true;
        }
        if k == "content" {
            content_written = true;
            if !first {
                out.push(b',');
            }
            first = false;
            write_str(out, "content");
            out.push(b':');
            match v {
                Value::Object(content) => write_redacted_content(out, rv, ty, content),
                _ => out.extend_from_slice(b"{}"),
            }
            continue;
        }
        write_member(out, &mut first, k, v);
    }
    if !content_written {
        write_member(out, &mut first, "content", &Value::Object(Object::new()));
    }
    out.push(b'}');
}

fn write_redacted_content(out: &mut Vec<u8>, rv: &RoomVersion, ty: Option<&str>, content: &Object) {
    out.push(b'{');
    let mut first = true;
    for (k, v) in content {
        match content_action(rv, ty, k) {
            ContentAction::Keep => write_member(out, &mut first, k, v),
            ContentAction::KeepSignedOnly => {
                if let Some(sub) = signed_only(v) {
                    write_member(out, &mut first, k, &sub);
                }
            }
            ContentAction::Drop => {}
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    //! One test per redaction generation: each feeds an event carrying every
    //! key any generation treats specially and checks exactly what survives.
    use super::*;
    use crate::json::{from_str, to_canonical_vec as canonical};

    const TOP: &str = r#""auth_events":[],"depth":1,"event_id":"$e:x","hashes":{"sha256":"h"},"membership":"join","origin":"x","origin_server_ts":1,"prev_events":[],"prev_state":[],"redacts":"$r","room_id":"!r:x","sender":"@s:x","signatures":{"x":{"ed25519:1":"s"}},"state_key":"","unsigned":{"age":1},"extra":1"#;

    fn event(ty: &str, content: &str) -> Object {
        let text = format!(r#"{{"type":"{ty}","content":{content},{TOP}}}"#);
        from_str(&text).expect("test event parses").into_object().expect("object")
    }

    /// Redacts and returns (sorted top-level keys, canonical content).
    fn redacted(rv: RoomVersion, ty: &str, content: &str) -> (Vec<String>, String) {
        let ev = event(ty, content);
        let r = redact(&ev, &rv);
        // The streaming writer must agree with the owned redaction.
        let mut without_sigs = r.clone();
        without_sigs.remove("signatures");
        let mut streamed = Vec::new();
        write_signing_bytes(&mut streamed, &ev, &rv);
        assert_eq!(streamed, canonical(&Value::Object(without_sigs)), "{rv} {ty}");
        let keys = r.keys().cloned().collect();
        let content = r.get("content").map(|c| c.to_string()).unwrap_or_default();
        (keys, content)
    }

    const MEMBER: &str = r#"{"membership":"join","displayname":"A","join_authorised_via_users_server":"@u:x","third_party_invite":{"signed":{"mxid":"@a:x"},"display_name":"A"},"mxid_mapping":{"user_id":"@a:x"}}"#;
    const CREATE: &str = r#"{"creator":"@a:x","m.federate":false,"room_version":"1"}"#;
    const JOIN_RULES: &str = r#"{"join_rule":"restricted","allow":[{"type":"m.room_membership"}],"x":1}"#;
    const POWER: &str = r#"{"ban":50,"events":{},"events_default":0,"invite":0,"kick":50,"notifications":{"room":50},"redact":50,"state_default":50,"users":{},"users_default":0}"#;
    const ALIASES: &str = r##"{"aliases":["#a:x"]}"##;
    const HISTORY: &str = r#"{"history_visibility":"shared","x":1}"#;
    const REDACTION: &str = r#"{"redacts":"$r","reason":"spam"}"#;
    const MESSAGE: &str = r#"{"body":"hi","msgtype":"m.text"}"#;

    fn top_v1() -> Vec<&'static str> {
        vec![
            "auth_events",
            "content",
            "depth",
            "event_id",
            "hashes",
            "membership",
            "origin",
            "origin_server_ts",
            "prev_events",
            "prev_state",
            "room_id",
            "sender",
            "signatures",
            "state_key",
            "type",
        ]
    }

    fn top_v11() -> Vec<&'static str> {
        vec![
            "auth_events",
            "content",
            "depth",
            "event_id",
            "hashes",
            "origin_server_ts",
            "prev_events",
            "room_id",
            "sender",
            "signatures",
            "state_key",
            "type",
        ]
    }

    fn check(rv: RoomVersion, top: &[&str], table: &[(&str, &str, &str)]) {
        for (ty, content, expected) in table {
            let (keys, got) = redacted(rv, ty, content);
            assert_eq!(keys, top, "{rv}: top-level keys of {ty}");
            assert_eq!(&got, expected, "{rv}: content of {ty}");
        }
    }

    #[test]
    fn v1_to_v5_redaction() {
        for rv in [RoomVersion::V1, RoomVersion::V2, RoomVersion::V3, RoomVersion::V4, RoomVersion::V5] {
            check(
                rv,
                &top_v1(),
                &[
                    ("m.room.member", MEMBER, r#"{"membership":"join"}"#),
                    ("m.room.create", CREATE, r#"{"creator":"@a:x"}"#),
                    ("m.room.join_rules", JOIN_RULES, r#"{"join_rule":"restricted"}"#),
                    (
                        "m.room.power_levels",
                        POWER,
                        r#"{"ban":50,"events":{},"events_default":0,"kick":50,"redact":50,"state_default":50,"users":{},"users_default":0}"#,
                    ),
                    ("m.room.aliases", ALIASES, r##"{"aliases":["#a:x"]}"##),
                    ("m.room.history_visibility", HISTORY, r#"{"history_visibility":"shared"}"#),
                    ("m.room.redaction", REDACTION, "{}"),
                    ("m.room.message", MESSAGE, "{}"),
                ],
            );
        }
    }

    #[test]
    fn v6_v7_redaction_drops_aliases() {
        for rv in [RoomVersion::V6, RoomVersion::V7] {
            check(
                rv,
                &top_v1(),
                &[
                    ("m.room.aliases", ALIASES, "{}"),
                    ("m.room.join_rules", JOIN_RULES, r#"{"join_rule":"restricted"}"#),
                    ("m.room.member", MEMBER, r#"{"membership":"join"}"#),
                ],
            );
        }
    }

    #[test]
    fn v8_redaction_keeps_join_rules_allow() {
        check(
            RoomVersion::V8,
            &top_v1(),
            &[
                (
                    "m.room.join_rules",
                    JOIN_RULES,
                    r#"{"allow":[{"type":"m.room_membership"}],"join_rule":"restricted"}"#,
                ),
                ("m.room.member", MEMBER, r#"{"membership":"join"}"#),
                ("m.room.aliases", ALIASES, "{}"),
            ],
        );
    }

    #[test]
    fn v9_v10_redaction_keeps_authorising_user() {
        for rv in [RoomVersion::V9, RoomVersion::V10] {
            check(
                rv,
                &top_v1(),
                &[
                    (
                        "m.room.member",
                        MEMBER,
                        r#"{"join_authorised_via_users_server":"@u:x","membership":"join"}"#,
                    ),
                    (
                        "m.room.join_rules",
                        JOIN_RULES,
                        r#"{"allow":[{"type":"m.room_membership"}],"join_rule":"restricted"}"#,
                    ),
                    ("m.room.create", CREATE, r#"{"creator":"@a:x"}"#),
                    (
                        "m.room.power_levels",
                        POWER,
                        r#"{"ban":50,"events":{},"events_default":0,"kick":50,"redact":50,"state_default":50,"users":{},"users_default":0}"#,
                    ),
                    ("m.room.redaction", REDACTION, "{}"),
                ],
            );
        }
    }

    #[test]
    fn v11_and_later_redaction() {
        for rv in [RoomVersion::V11, RoomVersion::V12, RoomVersion::MSC4014, RoomVersion::MSC4080] {
            check(
                rv,
                &top_v11(),
                &[
                    (
                        "m.room.member",
                        MEMBER,
                        r#"{"join_authorised_via_users_server":"@u:x","membership":"join","third_party_invite":{"signed":{"mxid":"@a:x"}}}"#,
                    ),
                    ("m.room.create", CREATE, r#"{"creator":"@a:x","m.federate":false,"room_version":"1"}"#),
                    (
                        "m.room.join_rules",
                        JOIN_RULES,
                        r#"{"allow":[{"type":"m.room_membership"}],"join_rule":"restricted"}"#,
                    ),
                    (
                        "m.room.power_levels",
                        POWER,
                        r#"{"ban":50,"events":{},"events_default":0,"invite":0,"kick":50,"redact":50,"state_default":50,"users":{},"users_default":0}"#,
                    ),
                    ("m.room.aliases", ALIASES, "{}"),
                    ("m.room.history_visibility", HISTORY, r#"{"history_visibility":"shared"}"#),
                    ("m.room.redaction", REDACTION, r#"{"redacts":"$r"}"#),
                    ("m.room.message", MESSAGE, "{}"),
                ],
            );
        }
    }

    #[test]
    fn member_redaction_variants() {
        let rv = RoomVersion::MSC4080.with_member_redaction(MemberRedaction::KeepMxidMapping);
        check(
            rv,
            &top_v11(),
            &[(
                "m.room.member",
                MEMBER,
                r#"{"join_authorised_via_users_server":"@u:x","membership":"join","mxid_mapping":{"user_id":"@a:x"},"third_party_invite":{"signed":{"mxid":"@a:x"}}}"#,
            )],
        );
        let rv = RoomVersion::MSC4080.with_member_redaction(MemberRedaction::Gomatrixserverlib);
        check(
            rv,
            &top_v11(),
            &[(
                "m.room.member",
                MEMBER,
                r#"{"join_authorised_via_users_server":"@u:x","membership":"join"}"#,
            )],
        );
    }

    #[test]
    fn third_party_invite_without_signed_or_not_an_object() {
        let (_, c) = redacted(
            RoomVersion::V11,
            "m.room.member",
            r#"{"membership":"invite","third_party_invite":{"display_name":"A"}}"#,
        );
        assert_eq!(c, r#"{"membership":"invite","third_party_invite":{}}"#);
        let (_, c) = redacted(
            RoomVersion::V11,
            "m.room.member",
            r#"{"membership":"invite","third_party_invite":"x"}"#,
        );
        assert_eq!(c, r#"{"membership":"invite"}"#);
    }

    #[test]
    fn content_is_always_present() {
        for text in [
            r#"{"type":"X","depth":1}"#,
            r#"{"type":"X","content":"oops","sender":"s"}"#,
            r#"{"auth_events":[]}"#,
        ] {
            let ev = from_str(text).expect("parses").into_object().expect("object");
            let r = redact(&ev, &RoomVersion::V1);
            assert_eq!(r.get("content"), Some(&Value::Object(Object::new())), "{text}");
            let mut streamed = Vec::new();
            write_signing_bytes(&mut streamed, &ev, &RoomVersion::V1);
            assert_eq!(streamed, canonical(&Value::Object(r)), "{text}");
        }
    }
}
