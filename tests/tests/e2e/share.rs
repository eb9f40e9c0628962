//! A user's second device gets their cryptoIDs through secret storage
//! (MSC4080): export and import between two agents (two data directories),
//! through files, through matrix-js-sdk, and through a real Synapse. Each
//! attack (a wrong key, an altered or mixed-up secret, a conflicting key)
//! has its control beside it.

use super::agent_sign::{assert_verifies, create, sign};
use cryptoid_protocol::base64;
use cryptoid_protocol::client::blocking::Client;
use cryptoid_protocol::json;
use cryptoid_protocol::keys::KeyPair;
use cryptoid_protocol::secret_storage::{self as ssss, recovery_key, KeyDescription, SecretKey};
use cryptoid_protocol::share::{self, SharedKey, SECRET_NAME};
use cryptoid_protocol::wire::confirm::{Answer, AnswerParams, Pending};
use cryptoid_protocol::wire::keys::{Get, KeyKind, KeyRef, KeyState, List, ListParams};
use cryptoid_protocol::wire::otk::{
    Claim, ClaimParams, Generate, GenerateParams, MarkPublished, MarkPublishedParams,
};
use cryptoid_protocol::wire::share::{AccountData, Export, Import, ImportParams, ImportReport, StorageKey};
use cryptoid_protocol::wire::{ErrorKind, NoParams};
use cryptoid_tests::agent::Agent;
use cryptoid_tests::interop::{self, field, Synapse};
use cryptoid_tests::{assert_refused, pdus, stderr, stdout};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const USER: &str = "@alice:example.org";

/// An agent whose askpass answers every confirmation (yes or no) and logs
/// what it was asked.
fn agent(allow: bool) -> (Agent, PathBuf) {
    agent_asking(allow, 0)
}

/// As [`agent`], the askpass answering after `delay` seconds.
fn agent_asking(allow: bool, delay: u32) -> (Agent, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let log = dir.join("asked");
    let script = dir.join("askpass");
    let exit = if allow { 0 } else { 1 };
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s\\n' \"$1\" >> {}\nsleep {delay}\nexit {exit}\n", log.display()),
    )
    .expect("askpass");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let a = Agent::start_with_env(Some("[policy]\nunknown_clients = \"allow\"\nconfirm_delete = false\n[policy.rate]\nper_room = 0\nper_client = 0\n"), &[(
        "CRYPTOID_ASKPASS",
        script.to_str().expect("utf-8"),
    )]);
    (a, log)
}

/// A secret-storage key, its description and its recovery key.
fn storage(seed: u8) -> (SecretKey, KeyDescription, String) {
    let key = SecretKey::from_bytes([seed; 32]);
    let desc = KeyDescription::new(&key, [seed ^ 0x5a; 16], None);
    let text = recovery_key::encode(&key).to_string();
    (key, desc, text)
}

fn by_recovery_key(desc: &KeyDescription, recovery: &str) -> StorageKey {
    StorageKey {
        recovery_key: Some(recovery.into()),
        passphrase: None,
        key_id: "k1".into(),
        key_description: desc.clone(),
    }
}

fn room_key(c: &mut Client, room: &str) -> String {
    c.call::<cryptoid_protocol::wire::keys::Create>(&cryptoid_protocol::wire::keys::CreateParams {
        room_id: Some(room.into()),
        user_id: Some(USER.into()),
        backend: None,
    })
    .expect("keys.create")
    .cryptoid
}

fn import(
    c: &mut Client,
    desc: &KeyDescription,
    recovery: &str,
    data: Vec<AccountData>,
    replace: bool,
) -> ImportReport {
    import_with(c, desc, recovery, data, replace).expect("share.import")
}

fn import_result(
    c: &mut Client,
    desc: &KeyDescription,
    recovery: &str,
    data: Vec<AccountData>,
) -> Result<ImportReport, cryptoid_protocol::client::ClientError> {
    import_with(c, desc, recovery, data, false)
}

fn import_with(
    c: &mut Client,
    desc: &KeyDescription,
    recovery: &str,
    data: Vec<AccountData>,
    replace: bool,
) -> Result<ImportReport, cryptoid_protocol::client::ClientError> {
    c.call::<Import>(&ImportParams {
        key: StorageKey {
            recovery_key: Some(recovery.into()),
            passphrase: None,
            key_id: "k1".into(),
            key_description: desc.clone(),
        },
        account_data: data,
        replace,
    })
}

fn keys_of(c: &mut Client) -> Vec<(String, KeyState)> {
    c.call::<List>(&ListParams::default())
        .expect("list")
        .keys
        .into_iter()
        .map(|k| (k.cryptoid, k.state))
        .collect()
}

fn otks(c: &mut Client, n: u32, publish: usize) -> Vec<String> {
    let made: Vec<String> = c
        .call::<Generate>(&GenerateParams { count: n, backend: None })
        .expect("generate")
        .keys
        .into_iter()
        .map(|k| k.cryptoid)
        .collect();
    c.call::<MarkPublished>(&MarkPublishedParams { cryptoids: made[..publish].to_vec() }).expect("publish");
    made
}

fn key_file(dir: &Path, desc: &KeyDescription) -> PathBuf {
    let p = dir.join("key.json");
    let text = serde_json::json!({"key_id": "k1", "key_description": desc});
    std::fs::write(&p, text.to_string()).expect("key file");
    p
}

#[test]
fn a_second_device_gets_the_identities_through_a_file_and_both_sign() {
    let (a, asked_a) = agent(true);
    let mut ca = a.unlocked();
    let room = "!shared:example.org";
    let k = room_key(&mut ca, room);
    assert_verifies(&sign(&mut ca, pdus::message(&k, room, "from A")).pdu, &k);
    let otk = otks(&mut ca, 3, 2);
    let unbound = create(&mut ca, None);
    let (_, desc, recovery) = storage(7);
    let tmp = tempfile::tempdir().expect("tempdir");
    let kf = key_file(tmp.path(), &desc);
    let file = tmp.path().join("shared.json");
    let args = [
        "--json",
        "share",
        "export",
        file.to_str().expect("p"),
        "--key-file",
        kf.to_str().expect("p"),
        "--secret-file",
        "-",
    ];
    let out = a.ctl(&args, format!("{recovery}\n").as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("summary");
    assert_eq!(summary["rooms"].as_u64(), Some(1), "{summary}");
    assert_eq!(summary["one_time"].as_u64(), Some(2), "the published ones: {summary}");
    // The unbound room key and the unpublished one-time key are not shared,
    // and the summary says so.
    let skipped = summary["skipped"].to_string();
    assert!(skipped.contains(&unbound) && skipped.contains(&otk[2]), "{skipped}");
    assert_eq!(std::fs::metadata(&file).expect("file").permissions().mode() & 0o777, 0o600);
    // No seed in the clear in the file.
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(text.contains(SECRET_NAME) && !text.contains("\"seed\""), "{text}");
    let asked = std::fs::read_to_string(&asked_a).expect("asked");
    assert!(asked.contains("the secret seeds of all your shareable cryptoIDs"), "{asked}");

    // The second device.
    let (b, asked_b) = agent(true);
    let mut cb = b.unlocked();
    let args = [
        "--json",
        "share",
        "import",
        file.to_str().expect("p"),
        "--key-file",
        kf.to_str().expect("p"),
        "--secret-file",
        "-",
    ];
    let out = b.ctl(&args, format!("{recovery}\n").as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let report: ImportReport = serde_json::from_str(&stdout(&out)).expect("report");
    assert_eq!(report.added.len(), 3, "{report:?}");
    assert!(report.conflicts.is_empty() && report.skipped.is_empty(), "{report:?}");
    assert!(std::fs::read_to_string(&asked_b).expect("asked").contains("import cryptoIDs from 1 secret(s)"));
    let info = cb.call::<Get>(&KeyRef { cryptoid: k.clone() }).expect("get");
    assert_eq!(
        (info.state, info.room_id.as_deref(), info.user_id.as_deref()),
        (KeyState::Bound, Some(room), Some(USER))
    );
    let o = cb.call::<Get>(&KeyRef { cryptoid: otk[0].clone() }).expect("get otk");
    assert_eq!((o.kind, o.state, o.key_id.is_some()), (KeyKind::OneTime, KeyState::Published, true));
    // Both devices sign in the shared room, with the same identity.
    assert_verifies(&sign(&mut cb, pdus::message(&k, room, "from B")).pdu, &k);
    assert_verifies(&sign(&mut ca, pdus::message(&k, room, "from A again")).pdu, &k);
    // The journal has the import, intent first.
    let tail = b.ctl(&["journal", "tail", "-n", "5"], b"");
    assert!(stdout(&tail).contains("share.import"), "{}", stdout(&tail));

    // The same import again changes nothing.
    let out = b.ctl(&args, format!("{recovery}\n").as_bytes());
    let again: ImportReport = serde_json::from_str(&stdout(&out)).expect("report");
    assert_eq!((again.added.len(), again.same.len()), (0, 3), "{again:?}");
}

#[test]
fn a_wrong_or_mistyped_recovery_key_changes_nothing() {
    let (a, _) = agent(true);
    let mut ca = a.unlocked();
    room_key(&mut ca, "!r:example.org");
    let (_, desc, recovery) = storage(3);
    let (_, _, other) = storage(4);
    // Attack: a key that is not the description's, at export.
    let err = ca.call::<Export>(&by_recovery_key(&desc, &other)).expect_err("wrong key");
    assert_refused(&err, ErrorKind::BadPassphrase, "wrong_storage_key");
    // Control.
    let data = ca.call::<Export>(&by_recovery_key(&desc, &recovery)).expect("export").account_data;

    let (b, _) = agent(true);
    let mut cb = b.unlocked();
    let p = |rk: &str| ImportParams {
        key: StorageKey {
            recovery_key: Some(rk.into()),
            passphrase: None,
            key_id: "k1".into(),
            key_description: desc.clone(),
        },
        account_data: data.clone(),
        replace: false,
    };
    let err = cb.call::<Import>(&p(&other)).expect_err("wrong key");
    assert_refused(&err, ErrorKind::BadPassphrase, "wrong_storage_key");
    let mut typo = recovery.clone();
    typo.replace_range(5..6, if &recovery[5..6] == "a" { "b" } else { "a" });
    let err = cb.call::<Import>(&p(&typo)).expect_err("typo");
    assert_refused(&err, ErrorKind::BadPassphrase, "bad_recovery_key");
    assert!(keys_of(&mut cb).is_empty(), "nothing may be written");
    // Control.
    assert_eq!(cb.call::<Import>(&p(&recovery)).expect("import").added.len(), 1);
}

#[test]
fn altered_swapped_or_mixed_secrets_are_refused() {
    let (a, _) = agent(true);
    let mut ca = a.unlocked();
    for i in 0..250 {
        room_key(&mut ca, &format!("!room{i}:example.org"));
    }
    let (_, desc, recovery) = storage(9);
    let first = ca.call::<Export>(&by_recovery_key(&desc, &recovery)).expect("export").account_data;
    assert!(first.len() >= 2, "250 rooms need more than one part: {}", first.len());
    let second = ca.call::<Export>(&by_recovery_key(&desc, &recovery)).expect("export").account_data;
    let (b, _) = agent(true);
    let mut cb = b.unlocked();
    let try_import = |cb: &mut Client, data: Vec<AccountData>| {
        cb.call::<Import>(&ImportParams {
            key: StorageKey {
                recovery_key: Some(recovery.clone()),
                passphrase: None,
                key_id: "k1".into(),
                key_description: desc.clone(),
            },
            account_data: data,
            replace: false,
        })
    };
    // Attack: part 1 of an older export under the right name (a replay by
    // the homeserver): its MAC is good, but it is another export.
    let mut mixed = second.clone();
    mixed[1] = first[1].clone();
    assert_refused(
        &try_import(&mut cb, mixed).expect_err("mixed"),
        ErrorKind::InvalidParams,
        "mixed_exports",
    );
    // Attack: part 1 stored as part 0 (names are bound by the MAC).
    let mut swapped = second.clone();
    swapped[0].content = second[1].content.clone();
    assert_refused(
        &try_import(&mut cb, swapped).expect_err("swapped"),
        ErrorKind::InvalidParams,
        "secret_altered",
    );
    // Attack: a part left out.
    let short = vec![second[0].clone()];
    assert_refused(&try_import(&mut cb, short).expect_err("short"), ErrorKind::InvalidParams, "part_missing");
    assert!(keys_of(&mut cb).is_empty(), "nothing may be written");
    // Control: the whole second export.
    assert_eq!(try_import(&mut cb, second).expect("import").added.len(), 250);
}

#[test]
fn a_conflicting_room_keeps_the_local_key_unless_replace_is_asked() {
    let room = "!both:example.org";
    let (a, _) = agent(true);
    let mut ca = a.unlocked();
    let remote = room_key(&mut ca, room);
    let (_, desc, recovery) = storage(5);
    let data = ca.call::<Export>(&by_recovery_key(&desc, &recovery)).expect("export").account_data;

    let (b, asked_b) = agent(true);
    let mut cb = b.unlocked();
    let local = room_key(&mut cb, room);
    let report = import(&mut cb, &desc, &recovery, data.clone(), false);
    assert!(report.added.is_empty(), "{report:?}");
    assert_eq!(
        (report.conflicts[0].local.as_str(), report.conflicts[0].remote.as_str()),
        (local.as_str(), remote.as_str())
    );
    // The local key still signs; the remote one is not here.
    assert_verifies(&sign(&mut cb, pdus::message(&local, room, "still mine")).pdu, &local);
    assert!(cb.call::<Get>(&KeyRef { cryptoid: remote.clone() }).is_err());

    let report = import(&mut cb, &desc, &recovery, data, true);
    assert_eq!((report.replaced.len(), report.added.len()), (1, 1), "{report:?}");
    assert!(std::fs::read_to_string(&asked_b)
        .expect("asked")
        .contains("replacing (retiring) this device's key"));
    assert_eq!(cb.call::<Get>(&KeyRef { cryptoid: local.clone() }).expect("get").state, KeyState::Retired);
    assert_verifies(&sign(&mut cb, pdus::message(&remote, room, "now shared")).pdu, &remote);
}

#[test]
fn a_declined_share_releases_and_takes_nothing() {
    let (a, _) = agent(false);
    let mut ca = a.unlocked();
    room_key(&mut ca, "!r:example.org");
    let (_, desc, recovery) = storage(6);
    let err = ca.call::<Export>(&by_recovery_key(&desc, &recovery)).expect_err("declined");
    assert_refused(&err, ErrorKind::ConfirmationDenied, "declined");
    let err = ca
        .call::<Import>(&ImportParams {
            key: StorageKey {
                recovery_key: Some(recovery.clone()),
                passphrase: None,
                key_id: "k1".into(),
                key_description: desc.clone(),
            },
            account_data: vec![],
            replace: false,
        })
        .expect_err("declined");
    assert_refused(&err, ErrorKind::ConfirmationDenied, "declined");
}

/// Attack: the client that asks for the export answers its own
/// confirmation over the socket. Only the agent's own dialog may answer.
#[test]
fn only_a_dialog_answers_a_share_never_the_client_that_asks() {
    let (a, _) = agent_asking(false, 3);
    let mut ca = a.unlocked();
    room_key(&mut ca, "!r:example.org");
    let (_, desc, recovery) = storage(13);
    let asking = std::thread::spawn(move || ca.call::<Export>(&by_recovery_key(&desc, &recovery)));
    let mut other = a.client();
    let id = cryptoid_tests::desktop::wait_for(10, "the pending confirmation", || {
        other.call::<Pending>(&NoParams {}).expect("pending").pending.first().map(|p| p.id)
    });
    let err = other
        .call::<Answer>(&AnswerParams { id, allow: true, remember_secs: None })
        .expect_err("the socket may not answer");
    assert_refused(&err, ErrorKind::NotPermitted, "person_only");
    // Control: the dialog (askpass) answers, and its "no" stands.
    let err = asking.join().expect("thread").expect_err("declined in the dialog");
    assert_refused(&err, ErrorKind::ConfirmationDenied, "declined");
}

#[test]
fn with_no_dialog_to_ask_in_sharing_is_refused_at_once() {
    let a = Agent::start(); // no askpass, and pinentry off
    let mut ca = a.unlocked();
    room_key(&mut ca, "!r:example.org");
    let (_, desc, recovery) = storage(14);
    let err = ca.call::<Export>(&by_recovery_key(&desc, &recovery)).expect_err("no dialog");
    assert_refused(&err, ErrorKind::ConfirmationTimeout, "no_dialog");
}

/// Attack: the homeserver serves an older export again, with a key the
/// user has since deleted. Control: the newer export, whose tombstone
/// keeps the deleted key out.
#[test]
fn an_older_export_served_again_is_refused_and_deleted_keys_stay_deleted() {
    let (a, _) = agent(true);
    let mut ca = a.unlocked();
    let kept = room_key(&mut ca, "!kept:example.org");
    let gone = room_key(&mut ca, "!gone:example.org");
    let (_, desc, recovery) = storage(15);
    let old = ca.call::<Export>(&by_recovery_key(&desc, &recovery)).expect("export").account_data;
    let (b, _) = agent(true);
    let mut cb = b.unlocked();
    assert_eq!(import(&mut cb, &desc, &recovery, old.clone(), false).added.len(), 2);
    // The key is deleted on the first device (compromised, say).
    ca.call::<cryptoid_protocol::wire::keys::Delete>(&KeyRef { cryptoid: gone.clone() }).expect("delete");
    std::thread::sleep(std::time::Duration::from_millis(5));
    let new = ca.call::<Export>(&by_recovery_key(&desc, &recovery)).expect("export").account_data;
    let report = import(&mut cb, &desc, &recovery, new.clone(), false);
    assert!(
        report.skipped.iter().any(|s| s.cryptoid == gone && s.reason.contains("still active here")),
        "{report:?}"
    );
    let err = import_with(&mut cb, &desc, &recovery, old.clone(), false).expect_err("rolled back");
    assert_refused(&err, ErrorKind::InvalidParams, "rolled_back");
    // A new device that sees the new export first never takes the deleted
    // key, and then refuses the old one.
    let (c, _) = agent(true);
    let mut cc = c.unlocked();
    let report = import(&mut cc, &desc, &recovery, new, false);
    assert_eq!(report.added.iter().map(|k| k.cryptoid.as_str()).collect::<Vec<_>>(), [kept.as_str()]);
    let err = import_with(&mut cc, &desc, &recovery, old, false).expect_err("rolled back");
    assert_refused(&err, ErrorKind::InvalidParams, "rolled_back");
    assert!(cc.call::<Get>(&KeyRef { cryptoid: gone }).is_err(), "the deleted key never arrives");
}

#[test]
fn a_shared_one_time_key_binds_once() {
    let (a, _) = agent(true);
    let mut ca = a.unlocked();
    let otk = otks(&mut ca, 1, 1).remove(0);
    let (_, desc, recovery) = storage(8);
    let data = ca.call::<Export>(&by_recovery_key(&desc, &recovery)).expect("export").account_data;
    let (b, _) = agent(true);
    let mut cb = b.unlocked();
    assert_eq!(import(&mut cb, &desc, &recovery, data, false).added.len(), 1);
    let claim = |c: &mut Client, room: &str| {
        c.call::<Claim>(&ClaimParams { cryptoid: otk.clone(), room_id: room.into() })
    };
    claim(&mut cb, "!invited:example.org").expect("first claim binds");
    let err = claim(&mut cb, "!other:example.org").expect_err("bound already");
    assert_refused(&err, ErrorKind::KeyNotUsable, "key_already_bound");
    // The first device claims it for the same room: it binds there too.
    claim(&mut ca, "!invited:example.org").expect("the same room on the other device");
}

/// 10,000 keys in 35 parts, and an import killed (`kill -9`) part-way:
/// the restarted agent has all of them or none, never some.
#[test]
fn ten_thousand_keys_round_trip_and_a_killed_import_lands_whole_or_not_at_all() {
    let (a, _) = agent(true);
    let mut ca = a.unlocked();
    for _ in 0..10 {
        otks(&mut ca, 1000, 1000);
    }
    let (_, desc, recovery) = storage(10);
    let started = std::time::Instant::now();
    let data = ca.call::<Export>(&by_recovery_key(&desc, &recovery)).expect("export").account_data;
    eprintln!("export of 10,000 keys: {} parts in {:?}", data.len(), started.elapsed());
    for d in &data {
        assert!(json::to_canonical_string(&d.content).len() < 64 * 1024, "{} is over 64 KiB", d.event_type);
    }
    let (mut b, _) = agent(true);
    let mut cb = b.unlocked();
    // The import takes a few seconds, most of them writing the records:
    // kill the agent in the middle of it.
    let mut other = b.client();
    let (d2, r2) = (desc.clone(), recovery.clone());
    let data2 = data.clone();
    let killed = std::thread::spawn(move || import_result(&mut other, &d2, &r2, data2));
    std::thread::sleep(std::time::Duration::from_millis(3500));
    b.kill9();
    let _ = killed.join();
    b.spawn().expect("restart");
    let mut cb2 = b.unlocked();
    let after = keys_of(&mut cb2).len();
    let log = b.log();
    let how =
        log.lines().find(|l| l.contains("an import interrupted")).unwrap_or("no import was interrupted");
    eprintln!("after kill -9 during the import: {after} keys ({how})");
    assert!(after == 0 || after == 10_000, "a killed import left {after} keys");
    drop(cb);
    cb = cb2;
    let started = std::time::Instant::now();
    let report = import(&mut cb, &desc, &recovery, data, false);
    eprintln!("import of 10,000 keys in {:?}", started.elapsed());
    assert_eq!(report.added.len() + report.same.len(), 10_000);
    assert_eq!(keys_of(&mut cb).len(), 10_000);
}

#[test]
fn matrix_js_sdk_and_the_agent_read_each_others_secrets() {
    if !interop::js_available() {
        return;
    }
    // Recovery keys both ways.
    let (key, _, ours) = storage(11);
    let sdk =
        interop::js(&format!(r#"{{"op":"decode_recovery_key","recovery_key":"{ours}"}}"#)).expect("decode");
    assert_eq!(base64::decode(&field(&sdk, "key_b64")).expect("b64"), key.as_bytes());
    let theirs = interop::js(
        r#"{"op":"encode_recovery_key","key_b64":"ERERERERERERERERERERERERERERERERERERERERERE"}"#,
    )
    .expect("encode");
    assert_eq!(
        recovery_key::decode(&field(&theirs, "recovery_key")).expect("decode").as_bytes(),
        &[0x11; 32]
    );
    // A passphrase gives the same key.
    let p = ssss::PassphraseInfo {
        algorithm: ssss::PBKDF2.into(),
        salt: "pepper".into(),
        iterations: 5000,
        bits: None,
    };
    let sdk =
        interop::js(r#"{"op":"passphrase_key","passphrase":"tr0ub4dor","salt":"pepper","iterations":5000}"#)
            .expect("passphrase");
    let from_pass = SecretKey::from_passphrase("tr0ub4dor", &p).expect("derive");
    assert_eq!(base64::decode(&field(&sdk, "key_b64")).expect("b64"), from_pass.as_bytes());

    // The SDK's key check, used by the agent; the agent's export, read by
    // the SDK, with the passphrase.
    let key_b64 = base64::encode(from_pass.as_bytes());
    let check = interop::js(&format!(r#"{{"op":"key_check","key_b64":"{key_b64}"}}"#)).expect("key check");
    let desc = KeyDescription {
        name: None,
        algorithm: ssss::ALGORITHM.into(),
        passphrase: Some(p),
        iv: Some(field(&check, "iv")),
        mac: Some(field(&check, "mac")),
    };
    let (a, _) = agent(true);
    let mut ca = a.unlocked();
    let room = "!js:example.org";
    let k = room_key(&mut ca, room);
    let data = ca
        .call::<Export>(&StorageKey {
            recovery_key: None,
            passphrase: Some("tr0ub4dor".into()),
            key_id: "sdk".into(),
            key_description: desc.clone(),
        })
        .expect("export")
        .account_data;
    let content = serde_json::to_value(&data[0].content).expect("json");
    let sealed = &content["encrypted"]["sdk"];
    let req = serde_json::json!({"op": "decrypt", "key_b64": key_b64, "name": SECRET_NAME,
        "iv": sealed["iv"].as_str(), "ciphertext": sealed["ciphertext"].as_str(), "mac": sealed["mac"].as_str()});
    let plain = interop::js(&req.to_string()).expect("the SDK decrypts the agent's secret");
    let part = share::Part::parse(&field(&plain, "secret")).expect("the document");
    let shared = &part.keys[0];
    let seed: [u8; 32] = base64::decode(&shared.seed).expect("seed").try_into().expect("32 bytes");
    assert_eq!((shared.cryptoid.as_str(), KeyPair::from_seed(&seed).cryptoid()), (k.as_str(), k.clone()));
    // Attack: the SDK reads it only under its own name.
    let req = serde_json::json!({"op": "decrypt", "key_b64": key_b64, "name": "m.cross_signing.master",
        "iv": sealed["iv"].as_str(), "ciphertext": sealed["ciphertext"].as_str(), "mac": sealed["mac"].as_str()});
    assert!(interop::js(&req.to_string()).is_err());

    // The SDK encrypts a document; a second agent imports it and signs.
    let pair = KeyPair::from_seed(&[0x42; 32]);
    let doc = share::split(
        "sdk-export",
        vec![SharedKey {
            kind: KeyKind::Room,
            cryptoid: pair.cryptoid(),
            seed: base64::encode(&[0x42; 32]),
            room_id: Some(room.into()),
            user_id: Some(USER.into()),
            key_id: None,
        }],
    );
    let text = serde_json::to_string(&doc[0]).expect("json");
    let sealed = interop::js(
        &serde_json::json!({"op": "encrypt", "key_b64": key_b64, "name": SECRET_NAME, "secret": text})
            .to_string(),
    )
    .expect("the SDK encrypts");
    let content = json::from_str(&format!(
        r#"{{"encrypted":{{"sdk":{{"iv":"{}","ciphertext":"{}","mac":"{}"}}}}}}"#,
        field(&sealed, "iv"),
        field(&sealed, "ciphertext"),
        field(&sealed, "mac")
    ))
    .expect("content");
    let (b, _) = agent(true);
    let mut cb = b.unlocked();
    let report = cb
        .call::<Import>(&ImportParams {
            key: StorageKey {
                recovery_key: None,
                passphrase: Some("tr0ub4dor".into()),
                key_id: "sdk".into(),
                key_description: desc,
            },
            account_data: vec![AccountData { event_type: SECRET_NAME.into(), content }],
            replace: false,
        })
        .expect("the agent imports the SDK's secret");
    assert_eq!(report.added.len(), 1);
    let id = pair.cryptoid();
    assert_verifies(&sign(&mut cb, pdus::message(&id, room, "via the SDK")).pdu, &id);
}

#[test]
fn push_then_pull_through_a_real_synapse_and_both_devices_sign() {
    let Some(hs) = Synapse::start() else { return };
    let (user, token) = hs.user("alice");
    let token = token.to_str().expect("utf-8").to_owned();
    let remote = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["--homeserver", hs.url.as_str(), "--access-token-file", token.as_str()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |agent: &Agent, args: Vec<String>, stdin: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        agent.ctl(&args, stdin.as_bytes())
    };

    let (a, _) = agent(true);
    let mut ca = a.unlocked();
    // Nothing to push to yet: the account has no secret storage.
    let out = run(&a, [vec!["share".into(), "push".into()], remote(&["--secret-file", "-"])].concat(), "x\n");
    assert!(!out.status.success() && stderr(&out).contains("share setup"), "{}", stderr(&out));
    let out = run(&a, [vec!["--json".into(), "share".into(), "setup".into()], remote(&[])].concat(), "");
    assert!(out.status.success(), "{}", stderr(&out));
    let created: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let recovery = created["recovery_key"].as_str().expect("recovery key").to_owned();
    // A second setup would orphan the first key's secrets: refused.
    let out = run(&a, [vec!["share".into(), "setup".into()], remote(&[])].concat(), "");
    assert!(!out.status.success(), "{}", stdout(&out));

    let room = "!synapse:localhost";
    let k = room_key(&mut ca, room);
    for i in 0..300 {
        room_key(&mut ca, &format!("!more{i}:localhost"));
    }
    let out = run(
        &a,
        [vec!["--json".into(), "share".into(), "push".into()], remote(&["--secret-file", "-"])].concat(),
        &format!("{recovery}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let pushed: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(pushed["rooms"].as_u64(), Some(301));
    assert!(pushed["secrets"].as_u64().unwrap_or(0) >= 2, "{pushed}");

    // The second device: a wrong recovery key changes nothing.
    let (b, _) = agent(true);
    let mut cb = b.unlocked();
    let (_, _, wrong) = storage(12);
    let out = run(
        &b,
        [vec!["share".into(), "pull".into()], remote(&["--secret-file", "-"])].concat(),
        &format!("{wrong}\n"),
    );
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("[bad_passphrase]"), "{}", stderr(&out));
    assert!(keys_of(&mut cb).is_empty());
    // Control: the right one.
    let out = run(
        &b,
        [
            vec!["--json".into(), "share".into(), "pull".into()],
            remote(&["--secret-file", "-", "--user-id", &user]),
        ]
        .concat(),
        &format!("{recovery}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: ImportReport = serde_json::from_str(&stdout(&out)).expect("report");
    assert_eq!(report.added.len(), 301, "{report:?}");
    // Both devices sign in the shared room, and both signatures verify.
    let from_a = sign(&mut ca, pdus::message(&k, room, "from A"));
    let from_b = sign(&mut cb, pdus::message(&k, room, "from B"));
    assert_verifies(&from_a.pdu, &k);
    assert_verifies(&from_b.pdu, &k);
}
