//! `cryptoidctl pdu ...` on valid and invalid input.

use cryptoid_protocol::json::{self, Object, Value};
use cryptoid_tests::{ctl, stderr, stdout, vectors};
use std::io::Write;

fn msc4080_case(label: &str) -> Object {
    let v = json::from_str(vectors::MSC4080).expect("vectors").into_object().expect("object");
    v["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter_map(Value::as_object)
        .find(|c| c["label"].as_str() == Some(label))
        .cloned()
        .expect("case")
}

fn canonical(v: &Value) -> String {
    format!("{}\n", json::to_canonical_string(v))
}

fn key_file(contents: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(contents.as_bytes()).expect("write key");
    f
}

/// A failing invocation: exit 2 and one line on stderr, no panic text.
fn assert_invalid(out: &std::process::Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn canonical_matches_spec_examples() {
    let v = json::from_str(vectors::SPEC).expect("spec").into_object().expect("object");
    for case in v["canonical_json"].as_array().expect("array") {
        let case = case.as_object().expect("case");
        let out = ctl(&["pdu", "canonical"], case["input"].as_str().expect("input").as_bytes());
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("{}\n", case["canonical"].as_str().expect("canonical")));
    }
}

#[test]
fn sign_reproduces_msc4080_vectors_from_a_file() {
    let key = key_file(vectors::SPEC_SEED);
    for label in ["message", "join with mxid_mapping", "power levels", "unicode and escapes"] {
        let case = msc4080_case(label);
        let mut pdu = tempfile::NamedTempFile::new().expect("temp");
        pdu.write_all(json::to_canonical_string(&case["input_pdu"]).as_bytes()).expect("write");
        let key_path = key.path().to_str().expect("path");
        let pdu_path = pdu.path().to_str().expect("path");
        let out = ctl(
            &["pdu", "sign", "--room-version", "org.matrix.msc4080", "--key-file", key_path, pdu_path],
            b"",
        );
        assert!(out.status.success(), "{label}: {}", stderr(&out));
        assert_eq!(stdout(&out), canonical(&case["signed_pdu"]), "{label}");

        let out = ctl(&["pdu", "event-id", "--room-version", "org.matrix.msc4080", pdu_path], b"");
        assert_eq!(stdout(&out).trim(), case["event_id"].as_str().expect("id"), "{label}");
        let out = ctl(&["pdu", "hash", pdu_path], b"");
        assert_eq!(stdout(&out).trim(), case["content_hash"].as_str().expect("hash"), "{label}");
    }
}

#[test]
fn sign_with_synapse_key_file_and_entity() {
    let spec = json::from_str(vectors::SPEC).expect("spec").into_object().expect("object");
    let case = spec["sign_event"].as_array().expect("cases")[0].as_object().expect("case").clone();
    let key = key_file(&format!("ed25519 1 {}\n", vectors::SPEC_SEED));
    let input = json::to_canonical_string(&case["input"]);
    let out = ctl(
        &[
            "pdu",
            "sign",
            "--room-version",
            "1",
            "--key-file",
            key.path().to_str().expect("path"),
            "--entity",
            "domain",
        ],
        input.as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let signed = json::from_str(&stdout(&out)).expect("output JSON").into_object().expect("object");
    let sig = signed["signatures"].as_object().expect("sigs")["domain"].as_object().expect("domain")
        ["ed25519:1"]
        .as_str()
        .expect("sig");
    assert_eq!(sig, case["signature"].as_str().expect("expected sig"));
    assert_eq!(signed["unsigned"], case["input"].as_object().expect("input")["unsigned"], "unsigned kept");
}

#[test]
fn redact_honours_member_redaction_variant() {
    let case = msc4080_case("join with mxid_mapping");
    let input = json::to_canonical_string(&case["input_pdu"]);
    let content_of = |variant: &str| {
        let out = ctl(
            &["pdu", "redact", "--room-version", "org.matrix.msc4080", "--member-redaction", variant],
            input.as_bytes(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let r = json::from_str(&stdout(&out)).expect("json").into_object().expect("object");
        assert!(!r.contains_key("origin") && !r.contains_key("prev_state") && !r.contains_key("unsigned"));
        json::to_canonical_string(&r["content"])
    };
    assert_eq!(content_of("spec"), r#"{"membership":"join"}"#);
    assert!(content_of("keep-mxid-mapping").contains("\"mxid_mapping\""));
    assert_eq!(content_of("gomatrixserverlib"), r#"{"membership":"join"}"#);
    let out =
        ctl(&["pdu", "redact", "--room-version", "11", "--member-redaction", "bogus"], input.as_bytes());
    assert_invalid(&out, "unknown --member-redaction \"bogus\"");
}

#[test]
fn verify_exit_codes() {
    let case = msc4080_case("message");
    let signed = json::to_canonical_string(&case["signed_pdu"]);
    let args =
        ["pdu", "verify", "--room-version", "org.matrix.msc4080", "--public-key", vectors::SPEC_PUBLIC];
    let out = ctl(&args, signed.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("ok:"));

    // A changed body: the content hash no longer matches.
    let tampered = signed.replace("\"hello\"", "\"HELLO\"");
    let out = ctl(&args, tampered.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("content hash mismatch"), "{}", stderr(&out));

    // Another key: the signature does not verify.
    let other = [
        "pdu",
        "verify",
        "--room-version",
        "org.matrix.msc4080",
        "--public-key",
        "3TPraTczVkDPTRaX4K+AfUuyx7Mzq1UafTXypnl0t2k",
        "--entity",
        vectors::SPEC_PUBLIC,
    ];
    let out = ctl(&other, signed.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("signature does not verify"), "{}", stderr(&out));

    // Wrong room version rules (v10 keeps `origin`): the signature breaks.
    let v10 = ["pdu", "verify", "--room-version", "10", "--public-key", vectors::SPEC_PUBLIC];
    assert_eq!(ctl(&v10, signed.as_bytes()).status.code(), Some(1));

    // No signature by that entity.
    let out = ctl(&args, json::to_canonical_string(&case["input_pdu"]).as_bytes());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no signature by"), "{}", stderr(&out));
}

#[test]
fn invalid_input_is_exit_2_with_one_line() {
    let key = key_file(vectors::SPEC_SEED);
    let kp = key.path().to_str().expect("path");
    let sign = ["pdu", "sign", "--room-version", "org.matrix.msc4080", "--key-file", kp];
    let msg = msc4080_case("message");
    let valid = json::to_canonical_string(&msg["input_pdu"]);

    assert_invalid(&ctl(&sign, b"{\"a\":1,"), "unexpected end of input");
    assert_invalid(&ctl(&sign, b"{\"a\":1,\"a\":2}"), "duplicate key \"a\" at $");
    assert_invalid(&ctl(&sign, b"{\"content\":{\"x\":1.5}}"), "non-integer number");
    assert_invalid(&ctl(&sign, b"{\"depth\":9007199254740992}"), "outside the canonical JSON range");
    assert_invalid(&ctl(&sign, b"{\"a\":\"\\ud800\"}"), "lone UTF-16 surrogate");
    assert_invalid(&ctl(&sign, b"[1,2]"), "expected a JSON object");
    assert_invalid(&ctl(&sign, "[".repeat(100_000).as_bytes()), "nesting deeper than");
    assert_invalid(&ctl(&sign, b"{}\xff"), "trailing data");
    assert_invalid(
        &ctl(&["pdu", "sign", "--room-version", "13", "--key-file", kp], valid.as_bytes()),
        "unsupported room version \"13\"",
    );
    let tampered = valid.replacen('{', "{\"hashes\":{\"sha256\":\"AAAA\"},", 1);
    assert_invalid(&ctl(&sign, tampered.as_bytes()), "hashes.sha256 is AAAA but the content hashes to");
    assert_invalid(
        &ctl(&["pdu", "sign", "--room-version", "11", "--key-file", "/nonexistent/key"], valid.as_bytes()),
        "cannot read key file /nonexistent/key",
    );
    let bad_key = key_file("ed25519 1 not-a-seed");
    let out = ctl(
        &["pdu", "sign", "--room-version", "11", "--key-file", bad_key.path().to_str().expect("path")],
        valid.as_bytes(),
    );
    assert_invalid(&out, "seed is not Base64 of 32 bytes");
    assert_invalid(&ctl(&["pdu", "event-id", "--room-version", "2"], b"{}"), "carries the event ID");
    assert_invalid(
        &ctl(&["pdu", "verify", "--room-version", "11", "--public-key", "short"], valid.as_bytes()),
        "invalid Ed25519 public key",
    );
    assert_invalid(&ctl(&["pdu", "hash", "/nonexistent/pdu.json"], b""), "cannot open /nonexistent/pdu.json");
}
