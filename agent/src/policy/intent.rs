//! Intent: what the user asked for (`{type, state_key?, content?}`), which
//! the PDU the homeserver built must match exactly.

use cryptoid_protocol::json::{Object, Value};

/// Why a PDU does not match the intent: the differing field, named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch(pub String);

/// Checks `pdu` against `intent`. Only the fields the intent names are
/// compared; `content` is compared whole (canonical equality).
pub fn check(intent: &Value, pdu: &Object) -> Result<(), Mismatch> {
    let Value::Object(intent) = intent else {
        return Err(Mismatch("intent must be an object {type, state_key?, content?}".into()));
    };
    if let Some(k) = intent.keys().find(|k| !matches!(k.as_str(), "type" | "state_key" | "content")) {
        return Err(Mismatch(format!("intent has unknown field {k:?} (allowed: type, state_key, content)")));
    }
    if !intent.contains_key("type") {
        return Err(Mismatch("intent must name the event `type`".into()));
    }
    for field in ["type", "state_key", "content"] {
        if let Some(want) = intent.get(field) {
            match pdu.get(field) {
                Some(got) if got == want => {}
                Some(got) => {
                    return Err(Mismatch(format!("PDU {field} is {got} but the client asked for {want}")));
                }
                None => return Err(Mismatch(format!("PDU has no {field} but the client asked for {want}"))),
            }
        }
    }
    Ok(())
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
    }
}
