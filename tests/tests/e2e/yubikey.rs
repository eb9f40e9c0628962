//! The YubiKey PIV backend against a virtual PIV card (`virtual-piv`)
//! plugged into the real pcscd through the vsmartcard-vpcd reader driver
//! (`tests/pcscd.sh`, started by `tests/run.sh`). The tests share the two
//! virtual readers, so nextest runs them one at a time (test group `pcsc`).

use super::agent_sign::{assert_verifies, sign, try_sign};
use cryptoid_agent::keystore::yubikey::{Hooks, YubiKeyBackend};
use cryptoid_agent::keystore::{Backend, KeystoreError, UnlockSecret, YubiKeySettings};
use cryptoid_protocol::client::blocking::Client;
use cryptoid_protocol::client::ClientError;
use cryptoid_protocol::wire::agent::{Hello, Unlock, UnlockParams};
use cryptoid_protocol::wire::backend::{Init, InitParams};
use cryptoid_protocol::wire::keys::{Create, CreateParams};
use cryptoid_protocol::wire::{ErrorKind, NoParams};
use cryptoid_tests::agent::Agent;
use cryptoid_tests::pdus;
use cryptoid_tests::vcard::{self, VirtualCard};
use std::sync::Arc;

const PIN: &str = "123456";

/// Skips (passing) where the virtual readers are not up; `tests/run.sh`
/// always starts them, so CI runs every test here.
macro_rules! need_readers {
    () => {
        if !vcard::readers_up() {
            eprintln!("SKIPPED: no virtual PC/SC readers (run tests/run.sh, which starts pcscd)");
            return;
        }
    };
}

fn init(
    c: &mut Client,
    serial: Option<u32>,
    touch: Option<&str>,
) -> Result<cryptoid_protocol::wire::agent::BackendInfo, ClientError> {
    c.call::<Init>(&InitParams {
        backend: "yubikey".into(),
        module: String::new(),
        token: serial.map(|s| s.to_string()).unwrap_or_default(),
        pin: Some(PIN.into()),
        wrap_with: None,
        touch: touch.map(str::to_owned),
        pcrs: None,
        recovery_passphrase: None,
        current: None,
    })
}

/// A card plugged into reader 0, an unlocked agent, and the YubiKey
/// backend set up on the card with the PIN (as `backend init yubikey`).
fn card_and_agent(serial: u32, args: &[&str]) -> (tempfile::TempDir, VirtualCard, Agent, Client) {
    let dir = tempfile::tempdir().expect("tempdir");
    let card = VirtualCard::insert(dir.path(), 0, serial, args);
    let agent = Agent::start();
    let mut c = agent.unlocked();
    init(&mut c, None, None).expect("backend init yubikey finds the only card");
    (dir, card, agent, c)
}

fn card_key(c: &mut Client, room: &str) -> Result<String, ClientError> {
    c.call::<Create>(&CreateParams {
        room_id: Some(room.into()),
        backend: Some("yubikey".into()),
        ..Default::default()
    })
    .map(|k| k.cryptoid)
}

fn unlock_pin(c: &mut Client, pin: &str) -> Result<(), ClientError> {
    c.call::<Unlock>(&UnlockParams {
        passphrase: None,
        backend: Some("yubikey".into()),
        pin: Some(pin.into()),
    })
    .map(|_| ())
}

#[test]
fn keys_on_the_card_sign_verify_and_survive_a_restart() {
    need_readers!();
    let dir = tempfile::tempdir().expect("tempdir");
    let card = VirtualCard::insert(dir.path(), 0, 1001, &[]);
    let mut agent = Agent::start();
    let mut c = agent.unlocked();
    let info = init(&mut c, None, None).expect("backend init yubikey finds the only card");
    assert!(info.available && !info.locked, "{info:?}");
    assert_eq!(info.capacity, Some(20));
    let k = card_key(&mut c, "!yk:example.org").expect("key on the card");
    let signed = sign(&mut c, pdus::message(&k, "!yk:example.org", "signed on the card"));
    assert_verifies(&signed.pdu, &k);
    // The key is in the first retired slot, generated on the card.
    let state = card.state();
    let slot = state.slots.get(&0x82).expect("slot 82 holds the key");
    assert_eq!(slot.alg, 0xe0, "Ed25519");

    // After a restart the card needs its PIN again; then the key signs.
    agent.restart();
    let mut c = agent.unlocked();
    let err =
        try_sign(&mut c, pdus::message(&k, "!yk:example.org", "no PIN yet")).expect_err("needs the PIN");
    cryptoid_tests::assert_refused(&err, ErrorKind::PinRequired, "pin_required");
    unlock_pin(&mut c, PIN).expect("unlock with the PIN");
    let signed = sign(&mut c, pdus::message(&k, "!yk:example.org", "after a restart"));
    assert_verifies(&signed.pdu, &k);
    // A second key takes the next slot.
    card_key(&mut c, "!yk2:example.org").expect("second key");
    assert!(card.state().slots.contains_key(&0x83));
}

#[test]
fn a_wrong_pin_counts_down_and_a_blocked_pin_says_how_to_unblock() {
    need_readers!();
    let dir = tempfile::tempdir().expect("tempdir");
    let card = VirtualCard::insert(dir.path(), 0, 1002, &[]);
    let agent = Agent::start();
    let mut c = agent.unlocked();
    init(&mut c, Some(1002), None).expect("init");
    for left in [2, 1] {
        let err = unlock_pin(&mut c, "654321").expect_err("wrong PIN");
        cryptoid_tests::assert_refused(&err, ErrorKind::BadPassphrase, "bad_pin");
        cryptoid_tests::assert_names(&err, &format!("{left} tries left"));
        assert_eq!(card.state().pin_retries, left);
    }
    // The right PIN resets the counter.
    unlock_pin(&mut c, PIN).expect("right PIN");
    assert_eq!(card.state().pin_retries, 3);
    for _ in 0..2 {
        unlock_pin(&mut c, "000000").expect_err("wrong PIN");
    }
    let err = unlock_pin(&mut c, "000000").expect_err("third wrong PIN blocks");
    cryptoid_tests::assert_refused(&err, ErrorKind::BadPassphrase, "pin_blocked");
    let err = unlock_pin(&mut c, PIN).expect_err("blocked even for the right PIN");
    cryptoid_tests::assert_refused(&err, ErrorKind::BadPassphrase, "pin_blocked");
}

#[test]
fn a_removed_card_is_unavailable_and_signs_again_when_reinserted() {
    need_readers!();
    let (_dir, mut card, _agent, mut c) = card_and_agent(1003, &[]);
    let k = card_key(&mut c, "!rm:example.org").expect("key");
    sign(&mut c, pdus::message(&k, "!rm:example.org", "before"));
    card.remove();
    let err = try_sign(&mut c, pdus::message(&k, "!rm:example.org", "card out")).expect_err("no card");
    cryptoid_tests::assert_refused(&err, ErrorKind::BackendUnavailable, "token_unavailable");
    cryptoid_tests::assert_names(&err, "1003");
    let hello = c.call::<Hello>(&NoParams {}).expect("hello");
    let yk = hello.backends.iter().find(|b| b.name == "yubikey").expect("listed");
    assert!(!yk.available, "{yk:?}");
    // The software keystore is not affected.
    let soft = super::agent_sign::create(&mut c, Some("!soft:example.org"));
    sign(&mut c, pdus::message(&soft, "!soft:example.org", "soft still signs"));
    card.reinsert();
    let signed = sign(&mut c, pdus::message(&k, "!rm:example.org", "card back"));
    assert_verifies(&signed.pdu, &k);
}

#[test]
fn two_cards_are_told_apart_by_serial() {
    need_readers!();
    let dir = tempfile::tempdir().expect("tempdir");
    let first = VirtualCard::insert(dir.path(), 0, 2001, &[]);
    let second = VirtualCard::insert(dir.path(), 1, 2002, &[]);
    let agent = Agent::start();
    let mut c = agent.unlocked();
    let err = init(&mut c, None, None).expect_err("which one?");
    cryptoid_tests::assert_refused(&err, ErrorKind::InvalidParams, "several_cards");
    cryptoid_tests::assert_names(&err, "2001, 2002");
    init(&mut c, Some(2002), None).expect("init by serial");
    let k = card_key(&mut c, "!two:example.org").expect("key");
    sign(&mut c, pdus::message(&k, "!two:example.org", "on the second card"));
    assert!(second.state().slots.contains_key(&0x82), "the key is on 2002");
    assert!(first.state().slots.is_empty(), "2001 untouched");
    let err = init(&mut c, Some(2999), None).expect_err("no such card");
    assert_eq!(err.kind(), Some(ErrorKind::BackendUnavailable), "{err}");
}

#[test]
fn old_firmware_refuses_ed25519_and_points_to_the_software_keystore() {
    need_readers!();
    let (_dir, _card, agent, mut c) = card_and_agent(1004, &["--version", "5.4.3"]);
    let err = card_key(&mut c, "!old:example.org").expect_err("no Ed25519 before 5.7");
    cryptoid_tests::assert_refused(&err, ErrorKind::BackendUnavailable, "firmware_too_old");
    cryptoid_tests::assert_names(&err, "5.4.3");
    // What it proposes works on that card: P-256 key agreement in slot 9d.
    let out = agent.ctl(
        &["backend", "init", "soft", "--wrap-with", "yubikey", "--current-file", "-", "--pin-file", "-"],
        format!("{}\n{PIN}\n", cryptoid_tests::agent::PASSPHRASE).as_bytes(),
    );
    assert!(out.status.success(), "{}", cryptoid_tests::stderr(&out));
    let k = super::agent_sign::create(&mut c, Some("!old:example.org"));
    sign(&mut c, pdus::message(&k, "!old:example.org", "soft key, wrapped by an old card"));
}

#[test]
fn touch_policy_announces_the_touch_before_signing() {
    need_readers!();
    let dir = tempfile::tempdir().expect("tempdir");
    let card = VirtualCard::insert(dir.path(), 0, 1005, &["--touch-ms", "100"]);
    let agent = Agent::start();
    let mut c = agent.unlocked();
    let info = init(&mut c, None, Some("always")).expect("init");
    assert_eq!(info.protection, cryptoid_protocol::wire::agent::Protection::PinAndTouch);
    let k = card_key(&mut c, "!touch:example.org").expect("key");
    assert_eq!(card.state().slots.get(&0x82).map(|s| s.touch_policy), Some(0x02), "touch: always");
    let signed = sign(&mut c, pdus::message(&k, "!touch:example.org", "touched"));
    assert_verifies(&signed.pdu, &k);
    let log = agent.log();
    assert!(log.contains("touch your YubiKey 1005") && log.contains(&k), "{log}");
    // cryptoidctl says it too.
    let pdu =
        cryptoid_protocol::json::to_canonical_string(&pdus::message(&k, "!touch:example.org", "by the CLI"));
    let out = agent.ctl(&["sign", "--room-version", super::agent_sign::RV], pdu.as_bytes());
    assert!(out.status.success(), "{}", cryptoid_tests::stderr(&out));
    assert!(cryptoid_tests::stderr(&out).contains("touch your YubiKey"), "{}", cryptoid_tests::stderr(&out));
}

/// Every message length from 1 to 2,048 bytes (the crate under us panics
/// at 255 and refuses from 1,016) signs and verifies; past the card's
/// buffer the answer is `message_too_large`, never a panic.
#[test]
fn every_message_length_signs_and_past_the_card_buffer_is_message_too_large() {
    need_readers!();
    let dir = tempfile::tempdir().expect("tempdir");
    let _card = VirtualCard::insert(dir.path(), 0, 1006, &[]);
    let hooks = Hooks { touch: Arc::new(|_| {}), slots: Arc::new(|| (Vec::new(), Vec::new())) };
    let b =
        YubiKeyBackend::open(YubiKeySettings { serial: 1006, touch: "never".into() }, hooks).expect("open");
    b.unlock(&UnlockSecret { passphrase: None, pin: Some(PIN) }).expect("PIN");
    let key = b.generate().expect("generate");
    for len in 1..=2048usize {
        let msg: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let sig = b.sign(&key.public, &key.handle, &msg).unwrap_or_else(|e| panic!("length {len}: {e}"));
        key.public.verify(&msg, &sig).unwrap_or_else(|_| panic!("length {len}: bad signature"));
    }
    for len in [3_001, 70_000] {
        match b.sign(&key.public, &key.handle, &vec![1u8; len]) {
            Err(e @ KeystoreError::MessageTooLarge(_)) => cryptoid_tests::assert_names(&e, "3000"),
            other => panic!("length {len}: {other:?}"),
        }
    }
}

/// Wrap mode: the software keystore's data key sealed under ECDH with the
/// card's slot 9d key. The passphrase no longer unlocks; the card and its
/// PIN do; without the card nothing does.
#[test]
fn wrap_mode_binds_the_software_keystore_to_the_yubikey() {
    need_readers!();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut card = VirtualCard::insert(dir.path(), 0, 1007, &[]);
    let mut agent = Agent::start();
    let mut c = agent.unlocked();
    let k = super::agent_sign::create(&mut c, Some("!wrap:example.org"));
    let out = agent.ctl(
        &["backend", "init", "soft", "--wrap-with", "yubikey", "--current-file", "-", "--pin-file", "-"],
        format!("{}\n{PIN}\n", cryptoid_tests::agent::PASSPHRASE).as_bytes(),
    );
    assert!(out.status.success(), "{}", cryptoid_tests::stderr(&out));
    let keystore = std::fs::read_to_string(agent.data_dir().join("keystore.json")).expect("keystore");
    assert!(
        keystore.contains("\"mode\":\"yubikey_wrapped\"") && keystore.contains("\"serial\":1007"),
        "{keystore}"
    );
    assert!(!keystore.contains("kdf"), "no passphrase wrapping left: {keystore}");
    // The key agreement key was generated on the card, in slot 9d.
    assert_eq!(card.state().slots.get(&0x9d).map(|s| s.alg), Some(0x11), "P-256 in 9d");
    // Signing goes on without a new unlock.
    sign(&mut c, pdus::message(&k, "!wrap:example.org", "just wrapped"));

    agent.restart();
    let mut c = agent.client();
    let passphrase =
        UnlockParams { passphrase: Some(cryptoid_tests::agent::PASSPHRASE.into()), backend: None, pin: None };
    let err = c.call::<Unlock>(&passphrase).expect_err("the passphrase no longer unlocks");
    cryptoid_tests::assert_refused(&err, ErrorKind::InvalidParams, "keystore_wrapped");
    let err = c
        .call::<Unlock>(&UnlockParams { passphrase: None, backend: None, pin: Some("000000".into()) })
        .expect_err("wrong PIN");
    cryptoid_tests::assert_refused(&err, ErrorKind::BadPassphrase, "bad_pin");
    cryptoid_tests::assert_names(&err, "2 tries left");
    c.call::<Unlock>(&UnlockParams { passphrase: None, backend: None, pin: Some(PIN.into()) })
        .expect("PIN unlocks");
    assert_verifies(&sign(&mut c, pdus::message(&k, "!wrap:example.org", "still mine")).pdu, &k);

    // Without the card the keystore stays locked, clearly.
    agent.restart();
    card.remove();
    let mut c = agent.client();
    let err = c
        .call::<Unlock>(&UnlockParams { passphrase: None, backend: None, pin: Some(PIN.into()) })
        .expect_err("no card");
    cryptoid_tests::assert_refused(&err, ErrorKind::BackendUnavailable, "token_unavailable");
    cryptoid_tests::assert_names(&err, "1007");
    card.reinsert();
    c.call::<Unlock>(&UnlockParams { passphrase: None, backend: None, pin: Some(PIN.into()) })
        .expect("card back");
}

/// `cryptoidctl setup --backend yubikey` and `soft-wrapped-yubikey`.
#[test]
fn setup_wizard_puts_keys_on_the_yubikey_or_wraps_the_keystore() {
    need_readers!();
    let dir = tempfile::tempdir().expect("tempdir");
    let card = VirtualCard::insert(dir.path(), 0, 1008, &[]);
    let agent = Agent::start();
    let args = ["--json", "setup", "--backend", "yubikey", "--serial", "1008", "--pin-file", "-", "--yes"];
    let out = agent.ctl(&args, format!("{PIN}\n").as_bytes());
    assert!(out.status.success(), "{}", cryptoid_tests::stderr(&out));
    let done = cryptoid_tests::stdout(&out);
    assert!(done.contains("\"backend\":\"yubikey\"") && done.contains("\"one_time_keys\":5"), "{done}");
    assert_eq!(card.state().slots.len(), 5, "five one-time cryptoIDs on the card");

    let agent = Agent::start();
    let args =
        ["setup", "--backend", "soft-wrapped-yubikey", "--pin-file", "-", "--yes", "--one-time-keys", "2"];
    let out = agent.ctl(&args, format!("{PIN}\n").as_bytes());
    assert!(out.status.success(), "{}", cryptoid_tests::stderr(&out));
    let keystore = std::fs::read_to_string(agent.data_dir().join("keystore.json")).expect("keystore");
    assert!(keystore.contains("\"mode\":\"yubikey_wrapped\""), "{keystore}");
}

/// Against a real YubiKey 5.7+, only when `CRYPTOID_TEST_YUBIKEY_SERIAL`
/// names one (its PIN in `CRYPTOID_TEST_YUBIKEY_PIN`, default 123456).
/// It generates a key in a free retired slot of that card (a slot that is
/// empty: never another program's key) and signs with it.
#[test]
fn real_yubikey_when_one_is_named() {
    let Some(serial) = std::env::var("CRYPTOID_TEST_YUBIKEY_SERIAL").ok().and_then(|s| s.parse::<u32>().ok())
    else {
        eprintln!("SKIPPED: set CRYPTOID_TEST_YUBIKEY_SERIAL to test a real YubiKey");
        return;
    };
    let pin = std::env::var("CRYPTOID_TEST_YUBIKEY_PIN").unwrap_or_else(|_| PIN.into());
    let agent = Agent::start();
    let mut c = agent.unlocked();
    c.call::<Init>(&InitParams {
        backend: "yubikey".into(),
        module: String::new(),
        token: serial.to_string(),
        pin: Some(pin.clone()),
        wrap_with: None,
        touch: None,
        pcrs: None,
        recovery_passphrase: None,
        current: None,
    })
    .expect("init the real card");
    let k = card_key(&mut c, "!real:example.org").expect("key on the real card");
    let signed = sign(&mut c, pdus::message(&k, "!real:example.org", "signed by real hardware"));
    assert_verifies(&signed.pdu, &k);
    // The lengths the crate under us gets wrong, through the backend, with
    // the key the agent made (its handle is in the key record).
    let hooks = Hooks { touch: Arc::new(|_| {}), slots: Arc::new(|| (Vec::new(), Vec::new())) };
    let b = YubiKeyBackend::open(YubiKeySettings { serial, touch: "never".into() }, hooks).expect("open");
    b.unlock(&UnlockSecret { passphrase: None, pin: Some(&pin) }).expect("PIN");
    let record = std::fs::read_dir(agent.data_dir().join("keys"))
        .expect("keys dir")
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .find(|text| text.contains(&k))
        .expect("the key's record");
    let record = cryptoid_protocol::json::from_str(&record).expect("record JSON");
    let handle = record.as_object().and_then(|o| o.get("handle")).expect("handle").clone();
    let public = cryptoid_protocol::keys::PublicKey::from_base64(&k).expect("cryptoID");
    for len in [1usize, 254, 255, 256, 1015, 1016, 2048] {
        let msg = vec![0x5au8; len];
        let sig = b.sign(&public, &handle, &msg).unwrap_or_else(|e| panic!("length {len}: {e}"));
        public.verify(&msg, &sig).unwrap_or_else(|_| panic!("length {len}: bad signature"));
    }
}

/// The agent verifies its cached PIN in every signing transaction; if the
/// PIN was changed meanwhile, that costs the card one try, and the agent
/// forgets the PIN instead of spending the rest.
#[test]
fn a_pin_changed_behind_the_agents_back_costs_one_try_not_all() {
    need_readers!();
    let (_dir, mut card, _agent, mut c) = card_and_agent(1009, &[]);
    let k = card_key(&mut c, "!pin:example.org").expect("key");
    // Another program changes the PIN while the card is out.
    card.remove();
    let mut state = card.state();
    state.pin = "24681357".into();
    state.save(&card.state).expect("save");
    card.reinsert();
    let err = try_sign(&mut c, pdus::message(&k, "!pin:example.org", "old PIN")).expect_err("refused");
    cryptoid_tests::assert_refused(&err, ErrorKind::BadPassphrase, "pin_changed");
    for _ in 0..3 {
        let err = try_sign(&mut c, pdus::message(&k, "!pin:example.org", "again")).expect_err("locked");
        assert_eq!(err.kind(), Some(ErrorKind::PinRequired), "{err}");
    }
    assert_eq!(card.state().pin_retries, 2, "one try spent, not all three");
    unlock_pin(&mut c, "24681357").expect("the new PIN");
    sign(&mut c, pdus::message(&k, "!pin:example.org", "new PIN"));
}

/// The management key, needed to generate: the factory default is used,
/// a PIN-protected one is found on the card, and a key only the user knows
/// is refused with the way to protect it.
#[test]
fn a_pin_protected_management_key_is_used_and_a_private_one_explained() {
    need_readers!();
    let key = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778";
    let (_dir, card, _agent, mut c) = card_and_agent(1010, &["--protected-mgm-key", key]);
    let k = card_key(&mut c, "!mgm:example.org").expect("generated with the protected key");
    assert_verifies(&sign(&mut c, pdus::message(&k, "!mgm:example.org", "x")).pdu, &k);
    assert!(card.state().slots.contains_key(&0x82));
    drop(card);

    let (_dir, _card, _agent, mut c) = card_and_agent(1011, &["--mgm-key", key]);
    let err = card_key(&mut c, "!mgm:example.org").expect_err("cannot generate");
    cryptoid_tests::assert_refused(&err, ErrorKind::BackendUnavailable, "management_key_unusable");
}

/// The D-Bus `TouchRequested` signal goes out while the card waits for the
/// touch, naming the card and the cryptoID.
#[test]
fn touch_requested_is_signalled_on_dbus() {
    use futures_util::StreamExt;
    need_readers!();
    let dir = tempfile::tempdir().expect("tempdir");
    let _card = VirtualCard::insert(dir.path(), 0, 1012, &["--touch-ms", "300"]);
    let bus = cryptoid_tests::agent::Bus::start();
    let agent = Agent::start_on_bus(&bus.address, None);
    let mut c = agent.unlocked();
    init(&mut c, None, Some("cached")).expect("init");
    let k = card_key(&mut c, "!dbus:example.org").expect("key");
    super::dbus::run(async {
        let conn = super::dbus::connect(&bus).await;
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(super::dbus::IFACE)
            .expect("iface")
            .member("TouchRequested")
            .expect("member")
            .build();
        let mut signals = zbus::MessageStream::for_match_rule(rule, &conn, None).await.expect("match");
        let signer = {
            let k = k.clone();
            let mut c = agent.client();
            std::thread::spawn(move || sign(&mut c, pdus::message(&k, "!dbus:example.org", "touch me")))
        };
        let m = tokio::time::timeout(std::time::Duration::from_secs(10), signals.next())
            .await
            .expect("TouchRequested in time")
            .expect("stream")
            .expect("message");
        let why: String = m.body().deserialize().expect("one string");
        assert!(why.contains("YubiKey 1012") && why.contains(&k) && why.contains("cached"), "{why}");
        let signed = signer.join().expect("signer");
        assert_verifies(&signed.pdu, &k);
    });
}

/// Another program resets the card (as a suspend, or `gpg --card-status`,
/// does): the agent's handle is stale; it reconnects on the next use and
/// the signature comes through without an error.
#[test]
fn a_card_reset_by_another_program_costs_nothing() {
    need_readers!();
    let (_dir, _card, agent, mut c) = card_and_agent(1013, &[]);
    let k = card_key(&mut c, "!reset:example.org").expect("key");
    sign(&mut c, pdus::message(&k, "!reset:example.org", "before the reset"));
    let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcsc");
    let readers = ctx.list_readers_owned().expect("readers");
    let reader = readers.iter().find(|r| r.to_string_lossy().ends_with("00 00")).expect("reader 0");
    let other = ctx.connect(reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY).expect("connect");
    other.disconnect(pcsc::Disposition::ResetCard).map_err(|(_, e)| e).expect("reset the card");
    let signed = sign(&mut c, pdus::message(&k, "!reset:example.org", "after the reset"));
    assert_verifies(&signed.pdu, &k);
    let log = agent.log();
    assert!(log.contains("YubiKey was reset or re-plugged; reconnecting"), "the reset was not seen: {log}");
}

/// A locked YubiKey asked to sign: the askpass program is asked for the
/// PIN instead of the client getting `pin_required`.
#[test]
fn askpass_supplies_the_pin_when_a_locked_yubikey_must_sign() {
    use std::os::unix::fs::PermissionsExt;
    need_readers!();
    let dir = tempfile::tempdir().expect("tempdir");
    let _card = VirtualCard::insert(dir.path(), 0, 1014, &[]);
    let askpass = dir.path().join("askpass");
    let log = dir.path().join("asked");
    std::fs::write(
        &askpass,
        format!("#!/bin/sh\necho \"$CRYPTOID_ASKPASS_PROMPT|$1\" > {}\necho {PIN}\n", log.display()),
    )
    .expect("script");
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let policy = format!(
        "[policy]\nunknown_clients = \"allow\"\naskpass = \"{}\"\n[policy.rate]\nper_room = 0\nper_client = 0\n",
        askpass.display()
    );
    let mut agent = Agent::start_with(&[], Some(&policy));
    let mut c = agent.unlocked();
    init(&mut c, None, None).expect("init");
    let k = card_key(&mut c, "!ask:example.org").expect("key");
    agent.restart();
    let mut c = agent.unlocked(); // the YubiKey's PIN is gone with the restart
    assert_verifies(&sign(&mut c, pdus::message(&k, "!ask:example.org", "PIN from askpass")).pdu, &k);
    let asked = std::fs::read_to_string(&log).expect("askpass ran");
    assert!(
        asked.starts_with("pin|PIN of the YubiKey to sign m.room.message in !ask:example.org"),
        "{asked}"
    );
}

/// While the card waits for a touch, the desktop shows "Touch your
/// YubiKey" (a real dunst on a private bus and display); once the card has
/// signed, the notification is withdrawn.
#[test]
fn the_touch_notification_is_shown_while_the_card_waits_and_withdrawn_after() {
    use cryptoid_tests::desktop::{self, wait_for, Xvfb};
    need_readers!();
    if !desktop::available(&["Xvfb", "dunst", "dunstctl"]) {
        return;
    }
    let x = Xvfb::start();
    let bus = cryptoid_tests::agent::Bus::start();
    let dunstctl = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("dunstctl")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let mut dunst = std::process::Command::new("dunst")
        .env("DISPLAY", &x.display)
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dunst");
    wait_for(20, "dunst", || dunstctl(&["count", "displayed"]));
    let dir = tempfile::tempdir().expect("tempdir");
    let _card = VirtualCard::insert(dir.path(), 0, 1013, &["--touch-ms", "2000"]);
    let agent = Agent::start_on_bus(&bus.address, None);
    let mut c = agent.unlocked();
    init(&mut c, None, Some("always")).expect("init");
    let k = card_key(&mut c, "!notify:example.org").expect("key");
    let signing =
        std::thread::spawn(move || sign(&mut c, pdus::message(&k, "!notify:example.org", "touched")));
    // Shown while the card waits.
    wait_for(10, "the touch notification", || dunstctl(&["count", "displayed"]).filter(|n| n == "1"));
    let signed = signing.join().expect("signed");
    assert!(signed.signature.len() > 40);
    // Withdrawn once signed (it never expires by itself).
    wait_for(10, "the notification withdrawn", || dunstctl(&["count", "displayed"]).filter(|n| n == "0"));
    let history = dunstctl(&["history"]).expect("history");
    assert!(history.contains("Touch your YubiKey") && history.contains("1013"), "{history}");
    let _ = dunst.kill();
    let _ = dunst.wait();
}
