//! The method table enforces each class's client rule and journals every
//! call, for every method: a method added to the table without a sample
//! request here fails this test, so none can go unchecked.

use cryptoid_agent::clock::ManualClock;
use cryptoid_agent::config::Config;
use cryptoid_agent::policy::{Action, PolicyConfig};
use cryptoid_agent::rpc::{self, Class, METHODS};
use cryptoid_agent::service::{ClientInfo, Service};
use cryptoid_protocol::json::{self, Value};
use cryptoid_protocol::wire::{self, ErrorKind};
use std::sync::Arc;

const NOW: u64 = 1_800_000_000_000;

/// A well-formed request for each method (what it names need not exist).
fn sample(method: &str) -> &'static str {
    match method {
        "agent.hello" | "agent.lock" | "otk.upload_body" | "policy.show" | "confirm.pending"
        | "confirm.ask_here" | "journal.verify" => "{}",
        "agent.unlock" => r#"{"passphrase":"correct horse"}"#,
        "agent.passwd" => r#"{"passphrase":"a","new_passphrase":"b"}"#,
        "backend.init" => r#"{"backend":"pkcs11","module":"/nonexistent.so","token":"t"}"#,
        "backend.tpm_change_pin" => r#"{"pin":"12345678","new_pin":"87654321"}"#,
        "keys.create" => r#"{"room_id":"!r:x"}"#,
        "keys.list" => "{}",
        "keys.get" | "keys.delete" => r#"{"cryptoid":"3TPraTczVkDPTRaX4K+AfUuyx7Mzq1UafTXypnl0t2k"}"#,
        "otk.generate" => r#"{"count":1}"#,
        "otk.mark_published" => r#"{"cryptoids":[]}"#,
        "otk.claim" => r#"{"cryptoid":"3TPraTczVkDPTRaX4K+AfUuyx7Mzq1UafTXypnl0t2k","room_id":"!r:x"}"#,
        "sign.pdu" | "policy.check" => r#"{"room_version":"org.matrix.msc4080","pdu":{}}"#,
        "sign.batch" => r#"{"room_version":"org.matrix.msc4080","pdus":[{}]}"#,
        "rooms.observe" => r#"{"room_id":"!r:x","events":[]}"#,
        "confirm.answer" => r#"{"id":1,"allow":true}"#,
        "journal.tail" => r#"{"limit":1}"#,
        "share.export" => {
            r#"{"recovery_key":"EsSz ykH7","key_id":"k","key_description":{"algorithm":"m.secret_storage.v1.aes-hmac-sha2"}}"#
        }
        "share.import" => {
            r#"{"key":{"recovery_key":"EsSz ykH7","key_id":"k","key_description":{"algorithm":"m.secret_storage.v1.aes-hmac-sha2"}},"account_data":[]}"#
        }
        other => panic!("{other} is in the method table but has no sample here: add one"),
    }
}

fn request(method: &str) -> wire::Request {
    wire::Request {
        id: Value::Null,
        method: method.into(),
        params: json::from_str(sample(method)).expect("sample"),
    }
}

#[test]
fn every_method_meets_its_class_rule_and_is_journaled() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A client the rules deny outright, and no confirmations over the socket.
    let policy = PolicyConfig {
        unknown_clients: Action::Deny,
        socket_confirm: false,
        confirm_timeout_secs: 0,
        ..Default::default()
    };
    let config = Config { policy, ..Default::default() };
    let svc =
        Arc::new(Service::open(dir.path(), config, true, Arc::new(ManualClock::new(NOW))).expect("service"));
    let client = ClientInfo { uid: 0, pid: Some(1), exe: Some("/usr/bin/untrusted".into()) };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
    assert_eq!(METHODS.len(), 26, "a method was added or removed: review its class here and in the README");
    for (name, class) in METHODS {
        let before = svc.journal_verify().expect("verify").entries;
        let result = rt.block_on(rpc::call(&svc, &client, request(name)));
        let kind = result.as_ref().err().map(|e| e.kind());
        match class {
            // The client rule refuses before anything runs.
            Class::Manage => assert_eq!(kind, Some(ErrorKind::PolicyDenied), "{name}"),
            Class::Confirm => assert_eq!(kind, Some(ErrorKind::NotPermitted), "{name}"),
            // The policy judges each PDU (these samples fail its hard
            // checks first); reads and locking meet no client rule.
            Class::Sign | Class::Read | Class::Lock => {
                assert_ne!(
                    kind,
                    Some(ErrorKind::PolicyDenied),
                    "{name}: {result:?}",
                    result = result.as_ref().err()
                )
            }
        }
        let after = svc.journal_verify().expect("verify").entries;
        assert!(after > before, "{name} was not journaled");
    }
}
