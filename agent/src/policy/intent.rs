//! Intent: what the user asked for (`{type, room_id?, state_key?,
//! membership?, redacts?, content?}`), which the PDU the homeserver built
//! must match exactly. A createRoom intent (`{create_room: …}`) is for `sign.batch` and
//! is judged by [`super::create_room`].

use cryptoid_protocol::json::{Object, Value};

/// Why a PDU does not match the intent: the differing field, named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch(pub String);

const FIELDS: [&str; 6] = ["type", "room_id", "state_key", "membership", "redacts", "content"];

/// Checks `pdu` against `intent`. Only the fields the intent names are
/// compared; `content` is compared whole (canonical equality) and
/// `membership` against `content.membership` (a join's content carries the
/// server's `mxid_mapping`, which the client cannot know in advance), and
/// `redacts` against every target field the PDU carries (top-level in room
/// versions 1–10, `content.redacts` from 11; both when both are there).
pub fn check(intent: &Value, pdu: &Object) -> Result<(), Mismatch> {
    let Value::Object(intent) = intent else {
        return Err(Mismatch(
            "intent must be an object {type, room_id?, state_key?, membership?, content?}".into(),
        ));
    };
    if intent.contains_key("create_room") {
        return Err(Mismatch("a create_room intent is for sign.batch, not sign.pdu".into()));
    }
    if let Some(k) = intent.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Mismatch(format!("intent has unknown field {k:?} (allowed: {})", FIELDS.join(", "))));
    }
    if !intent.contains_key("type") {
        return Err(Mismatch("intent must name the event `type`".into()));
    }
    let membership = pdu.get("content").and_then(Value::as_object).and_then(|c| c.get("membership"));
    // A redaction's target: both fields where both are present (they must
    // agree with each other too, see `power`), else whichever is there.
    if let Some(want) = intent.get("redacts") {
        let inner = pdu.get("content").and_then(Value::as_object).and_then(|c| c.get("redacts"));
        let targets: Vec<&Value> = [pdu.get("redacts"), inner].into_iter().flatten().collect();
        if targets.is_empty() {
            return Err(Mismatch(format!("PDU has no redacts but the client asked for {want}")));
        }
        if let Some(got) = targets.iter().find(|t| **t != want) {
            return Err(Mismatch(format!("PDU redacts {got} but the client asked for {want}")));
        }
    }
    for field in FIELDS.iter().copied().filter(|f| *f != "redacts") {
        let Some(want) = intent.get(field) else { continue };
        let got = if field == "membership" { membership } else { pdu.get(field) };
        match got {
            Some(got) if got == want => {}
            Some(got) => {
                return Err(Mismatch(format!("PDU {field} is {got} but the client asked for {want}")))
            }
            None => return Err(Mismatch(format!("PDU has no {field} but the client asked for {want}"))),
        }
    }
    Ok(())
}

/// Whether `intent` asks for exactly this join: the room, `m.room.member`,
/// the sender's own state key and `membership: join` (named directly or in
/// `content`). A join that binds a one-time cryptoID needs this or a
/// confirmation: otherwise a homeserver could join the user to any room.
pub fn names_own_join(intent: Option<&Value>, pdu: &Object) -> bool {
    let Some(Value::Object(i)) = intent else { return false };
    let s = |o: &Object, k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
    let join = i.get("membership").and_then(Value::as_str) == Some("join")
        || i.get("content")
            .and_then(Value::as_object)
            .and_then(|c| c.get("membership"))
            .and_then(Value::as_str)
            == Some("join");
    join && s(i, "type").as_deref() == Some("m.room.member")
        && s(i, "room_id").is_some()
        && s(i, "room_id") == s(pdu, "room_id")
        && s(i, "state_key").is_some()
        && s(i, "state_key") == s(pdu, "sender")
        && check(&Value::Object(i.clone()), pdu).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoid_protocol::json::from_str;

    fn obj(s: &str) -> Object {
        from_str(s).expect("json").into_object().expect("object")
    }

    #[test]
    fn matches_and_mismatches() {
        let pdu = obj(r#"{"type":"m.room.message","content":{"body":"hi","msgtype":"m.text"}}"#);
        let ok = from_str(r#"{"type":"m.room.message","content":{"msgtype":"m.text","body":"hi"}}"#)
            .expect("json");
        assert_eq!(check(&ok, &pdu), Ok(()));
        let bad = from_str(r#"{"type":"m.room.message","content":{"body":"bye","msgtype":"m.text"}}"#)
            .expect("json");
        assert!(check(&bad, &pdu).expect_err("content").0.starts_with("PDU content is"));
        let ty = from_str(r#"{"type":"m.room.power_levels"}"#).expect("json");
        assert!(check(&ty, &pdu).expect_err("type").0.starts_with("PDU type is \"m.room.message\""));
        let sk = from_str(r#"{"type":"m.room.message","state_key":""}"#).expect("json");
        assert!(check(&sk, &pdu).expect_err("state_key").0.starts_with("PDU has no state_key"));
        assert!(check(&from_str(r#"{"content":{}}"#).expect("json"), &pdu).is_err());
        assert!(check(&from_str(r#"{"type":"x","extra":1}"#).expect("json"), &pdu).is_err());
        let room = from_str(r#"{"type":"m.room.message","room_id":"!other:x"}"#).expect("json");
        assert!(check(&room, &pdu).expect_err("room").0.starts_with("PDU has no room_id"));
        // v1–10 redactions: the top-level target is pinned too.
        let redaction = obj(r#"{"type":"m.room.redaction","redacts":"$theirs","content":{}}"#);
        let mine = from_str(r#"{"type":"m.room.redaction","redacts":"$mine"}"#).expect("json");
        assert!(check(&mine, &redaction).expect_err("target").0.starts_with("PDU redacts \"$theirs\""));
        // v11+: the target is in content; an intent naming it matches, and
        // a second, different top-level field does not.
        let v11 = obj(r#"{"type":"m.room.redaction","content":{"redacts":"$mine"}}"#);
        assert_eq!(check(&mine, &v11), Ok(()));
        let both = obj(r#"{"type":"m.room.redaction","redacts":"$theirs","content":{"redacts":"$mine"}}"#);
        assert!(check(&mine, &both).is_err());
        let same = from_str(r#"{"type":"m.room.redaction","redacts":"$theirs"}"#).expect("json");
        assert_eq!(check(&same, &redaction), Ok(()));
    }

    #[test]
    fn a_join_intent_names_room_key_and_membership() {
        let join = obj(
            r#"{"type":"m.room.member","room_id":"!r:x","sender":"K","state_key":"K","content":{"membership":"join","mxid_mapping":{}}}"#,
        );
        let ok = from_str(r#"{"type":"m.room.member","room_id":"!r:x","state_key":"K","membership":"join"}"#)
            .expect("json");
        assert_eq!(check(&ok, &join), Ok(()));
        assert!(names_own_join(Some(&ok), &join));
        for bad in [
            r#"{"type":"m.room.member","room_id":"!elsewhere:x","state_key":"K","membership":"join"}"#,
            r#"{"type":"m.room.member","state_key":"K","membership":"join"}"#,
            r#"{"type":"m.room.member","room_id":"!r:x","state_key":"K"}"#,
            r#"{"type":"m.room.member","room_id":"!r:x","state_key":"Other","membership":"join"}"#,
        ] {
            assert!(!names_own_join(Some(&from_str(bad).expect("json")), &join), "{bad}");
        }
        assert!(!names_own_join(None, &join));
    }
}
