//! Byte-exact round trips of request and response lines.

use super::*;

#[test]
fn request_round_trip_is_byte_exact() {
    let params = keys::CreateParams { room_id: Some("!r:x".into()), ..Default::default() };
    let line = encode_request(7, keys::Create::NAME, &params).expect("encode");
    assert_eq!(
        line,
        b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"keys.create\",\"params\":{\"room_id\":\"!r:x\"}}\n"
    );
    let req = decode_request(&line[..line.len() - 1]).expect("decode");
    assert_eq!(req.method, "keys.create");
    assert_eq!(req.id, Value::Int(crate::json::Int::from(7)));
    assert_eq!(req.params::<keys::Create>().expect("params"), params);
}

#[test]
fn error_response_round_trip() {
    let e = RpcError::new(ErrorKind::Locked, "the agent is locked: run `cryptoidctl unlock`");
    let line = encode_error(&Value::from("a"), &e);
    assert_eq!(
        line,
        b"{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"error\":{\"code\":-32001,\"message\":\"the agent is locked: run `cryptoidctl unlock`\",\"data\":{\"kind\":\"locked\"}}}\n"
    );
    let r = decode_response(&line[..line.len() - 1]).expect("decode");
    assert_eq!(r.outcome, Err(e));
}

#[test]
fn unknown_error_kind_from_newer_agent() {
    let r = decode_response(
        br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32050,"message":"m","data":{"kind":"brand_new"}}}"#,
    )
    .expect("decode");
    assert_eq!(r.outcome.expect_err("error").kind(), ErrorKind::Unknown);
}

#[test]
fn bad_requests() {
    let kind = |line: &str| decode_request(line.as_bytes()).expect_err("bad").error.kind();
    assert_eq!(kind("{"), ErrorKind::ParseError);
    assert_eq!(kind(r#"{"jsonrpc":"2.0","id":1,"method":"x","method":"y"}"#), ErrorKind::ParseError);
    assert_eq!(kind(r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#), ErrorKind::ParseError);
    assert_eq!(kind("[]"), ErrorKind::InvalidRequest);
    assert_eq!(kind(r#"{"id":1,"method":"x"}"#), ErrorKind::InvalidRequest);
    assert_eq!(kind(r#"{"jsonrpc":"2.0","id":1}"#), ErrorKind::InvalidRequest);
    assert_eq!(kind(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#), ErrorKind::InvalidParams);
    assert_eq!(kind(r#"{"jsonrpc":"2.0","id":1,"method":"x","extra":1}"#), ErrorKind::InvalidRequest);
    let bad = decode_request(br#"{"jsonrpc":"1.0","id":"q","method":"x"}"#).expect_err("bad");
    assert_eq!(bad.id, Value::from("q"));
}

#[test]
fn every_kind_has_a_distinct_code_and_round_trips() {
    use std::collections::HashSet;
    let all = [
        ErrorKind::ParseError,
        ErrorKind::InvalidRequest,
        ErrorKind::MethodNotFound,
        ErrorKind::InvalidParams,
        ErrorKind::InternalError,
        ErrorKind::Locked,
        ErrorKind::BadPassphrase,
        ErrorKind::PolicyDenied,
        ErrorKind::ConfirmationDenied,
        ErrorKind::ConfirmationTimeout,
        ErrorKind::UnknownKey,
        ErrorKind::KeyNotUsable,
        ErrorKind::BadPdu,
        ErrorKind::HashMismatch,
        ErrorKind::EventIdMismatch,
        ErrorKind::UnsupportedRoomVersion,
        ErrorKind::BackendUnavailable,
        ErrorKind::PinRequired,
        ErrorKind::MessageTooLarge,
        ErrorKind::NotPermitted,
        ErrorKind::StorageError,
    ];
    let codes: HashSet<i32> = all.iter().map(|k| k.code()).collect();
    assert_eq!(codes.len(), all.len());
    for k in all {
        let text = serde_json::to_string(&k).expect("ser");
        assert_eq!(text, format!("\"{}\"", k.as_str()));
        assert_eq!(serde_json::from_str::<ErrorKind>(&text).expect("de"), k);
    }
}
