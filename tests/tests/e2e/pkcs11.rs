//! The PKCS#11 backend against a real SoftHSM2 token (a fresh token per
//! test, `SOFTHSM2_CONF` pointing into a temp dir).

use super::agent_sign::{assert_verifies, create, sign, soft_protection, try_sign};
use cryptoid_protocol::client::blocking::Client;
use cryptoid_protocol::wire::agent::{Hello, Protection, Unlock, UnlockParams};
use cryptoid_protocol::wire::backend::{Init, InitParams};
use cryptoid_protocol::wire::keys::{Create, CreateParams, List, ListParams};
use cryptoid_protocol::wire::otk::{Generate, GenerateParams};
use cryptoid_protocol::wire::{ErrorKind, NoParams};
use cryptoid_tests::agent::Agent;
use cryptoid_tests::pdus;
use std::path::{Path, PathBuf};
use std::process::Command;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "123456";

/// A SoftHSM2 configuration with one initialised token labelled `cryptoid`.
struct Token {
    dir: tempfile::TempDir,
}

impl Token {
    fn new() -> Token {
        assert!(Path::new(MODULE).exists(), "SoftHSM2 is not installed (package softhsm2)");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("tokens")).expect("tokens dir");
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .expect("conf");
        let t = Token { dir };
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", t.conf())
            .args(["--init-token", "--free", "--label", "cryptoid", "--pin", PIN, "--so-pin", "87654321"])
            .output()
            .expect("softhsm2-util");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        t
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    fn tokens(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }

    fn agent(&self) -> Agent {
        let conf = self.conf().display().to_string();
        Agent::start_with_env(None, &[("SOFTHSM2_CONF", &conf)])
    }
}

fn init(
    c: &mut Client,
    module: &str,
    pin: &str,
) -> Result<cryptoid_protocol::wire::agent::BackendInfo, cryptoid_protocol::client::ClientError> {
    c.call::<Init>(&InitParams {
        backend: "pkcs11".into(),
        module: module.into(),
        token: "cryptoid".into(),
        pin: Some(pin.into()),
        wrap_with: None,
        touch: None,
        pcrs: None,
        recovery_passphrase: None,
        current: None,
    })
}

fn pkcs11_key(c: &mut Client, room: &str) -> String {
    c.call::<Create>(&CreateParams {
        room_id: Some(room.into()),
        backend: Some("pkcs11".into()),
        ..Default::default()
    })
    .expect("key on the token")
    .cryptoid
}

fn unlock_pin(c: &mut Client, pin: &str) -> Result<(), cryptoid_protocol::client::ClientError> {
    c.call::<Unlock>(&UnlockParams {
        passphrase: None,
        backend: Some("pkcs11".into()),
        pin: Some(pin.into()),
    })
    .map(|_| ())
}

#[test]
fn keys_on_the_token_sign_verify_and_survive_a_restart() {
    let token = Token::new();
    let mut agent = token.agent();
    let mut c = agent.unlocked();
    let info = init(&mut c, MODULE, PIN).expect("backend.init");
    assert!(info.available && !info.locked);
    let k = pkcs11_key(&mut c, "!hsm:x");
    assert_verifies(&sign(&mut c, pdus::message(&k, "!hsm:x", "signed on a token")).pdu, &k);
    let otks = c
        .call::<Generate>(&GenerateParams { count: 3, backend: Some("pkcs11".into()) })
        .expect("otks on the token");
    assert!(otks.keys.iter().all(|k| k.backend == "pkcs11"));

    // The private key is on the token, sensitive and never extractable.
    let out = Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", token.conf())
        .args(["--module", MODULE, "--login", "--pin", PIN, "--list-objects", "--type", "privkey"])
        .output()
        .expect("pkcs11-tool (package opensc)");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listing.matches("Private Key Object; EC_EDWARDS").count(), 4, "{listing}");
    assert!(listing.contains("sensitive, always sensitive, never extractable, local"), "{listing}");

    // A restarted agent finds the backend and its keys; the PIN is needed again.
    agent.restart();
    let mut c = agent.unlocked();
    let hello = c.call::<Hello>(&NoParams {}).expect("hello");
    let pkcs11 = hello.backends.iter().find(|b| b.name == "pkcs11").expect("pkcs11 listed");
    assert!(pkcs11.available && pkcs11.locked && pkcs11.keys == 4, "{pkcs11:?}");
    let err = try_sign(&mut c, pdus::message(&k, "!hsm:x", "before the PIN")).expect_err("PIN needed");
    assert_eq!(err.kind(), Some(ErrorKind::PinRequired), "{err}");
    unlock_pin(&mut c, PIN).expect("PIN");
    assert_verifies(&sign(&mut c, pdus::message(&k, "!hsm:x", "after restart")).pdu, &k);
}

#[test]
fn a_wrong_pin_is_a_clear_error_and_locks_the_token() {
    let token = Token::new();
    let agent = token.agent();
    let mut c = agent.unlocked();
    let err = init(&mut c, MODULE, "000000").expect_err("wrong PIN");
    cryptoid_tests::assert_refused(&err, ErrorKind::BadPassphrase, "bad_pin");
    init(&mut c, MODULE, PIN).expect("right PIN");
    let k = pkcs11_key(&mut c, "!pin:x");
    // A wrong PIN while unlocked is refused and leaves the token locked.
    let err = unlock_pin(&mut c, "999999").expect_err("wrong PIN");
    cryptoid_tests::assert_refused(&err, ErrorKind::BadPassphrase, "bad_pin");
    let err = try_sign(&mut c, pdus::message(&k, "!pin:x", "x")).expect_err("locked");
    assert_eq!(err.kind(), Some(ErrorKind::PinRequired));
}

#[test]
fn a_vanished_token_makes_only_its_keys_unavailable() {
    let token = Token::new();
    let agent = token.agent();
    let mut c = agent.unlocked();
    init(&mut c, MODULE, PIN).expect("init");
    let hsm = pkcs11_key(&mut c, "!gone:x");
    let soft = create(&mut c, Some("!soft:x"));
    let away = token.dir.path().join("tokens.away");
    std::fs::rename(token.tokens(), &away).expect("remove the token");
    let err = try_sign(&mut c, pdus::message(&hsm, "!gone:x", "x")).expect_err("token gone");
    assert_eq!(err.kind(), Some(ErrorKind::BackendUnavailable), "{err}");
    assert_verifies(&sign(&mut c, pdus::message(&soft, "!soft:x", "soft still works")).pdu, &soft);
    // Back again: the next unlock reopens it.
    std::fs::rename(&away, token.tokens()).expect("restore the token");
    unlock_pin(&mut c, PIN).expect("PIN after return");
    assert_verifies(&sign(&mut c, pdus::message(&hsm, "!gone:x", "back")).pdu, &hsm);
}

#[test]
fn modules_outside_the_allowed_directories_are_refused() {
    let token = Token::new();
    let agent = token.agent();
    let mut c = agent.unlocked();
    let copy = token.dir.path().join("libsofthsm2.so");
    std::fs::copy(MODULE, &copy).expect("copy module");
    let err = init(&mut c, copy.to_str().expect("utf-8"), PIN).expect_err("not allowed");
    cryptoid_tests::assert_refused(&err, ErrorKind::BackendUnavailable, "module_not_allowed");
    let err = c
        .call::<Create>(&CreateParams {
            room_id: Some("!x:x".into()),
            backend: Some("pkcs11".into()),
            ..Default::default()
        })
        .expect_err("not set up");
    cryptoid_tests::assert_refused(&err, ErrorKind::BackendUnavailable, "not_set_up");
}

#[test]
fn bench_against_the_token_reports_the_token_floor() {
    let token = Token::new();
    let agent = token.agent();
    let mut c = agent.unlocked();
    init(&mut c, MODULE, PIN).expect("init");
    let out = cryptoid_tests::run(
        Command::new(cryptoid_tests::bin("cryptoidctl"))
            .env("CRYPTOID_AUTH_SOCK", agent.socket())
            .env("SOFTHSM2_CONF", token.conf())
            .args([
                "bench",
                "--backend",
                "pkcs11",
                "--module",
                MODULE,
                "--token",
                "cryptoid",
                "--pin-file",
                "-",
            ])
            .args(["--seconds", "1", "--json"]),
        format!("{PIN}\n").as_bytes(),
    );
    assert!(out.status.success(), "{}", cryptoid_tests::stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&cryptoid_tests::stdout(&out)).expect("bench JSON");
    assert_eq!(v["backend"], "pkcs11");
    assert_eq!(v["errors"].as_u64(), Some(0), "{v}");
    assert!(v["floor_sigs_per_sec"].as_f64().unwrap_or(0.0) > 0.0, "{v}");
    // It signed with a key on the token (regression: it used to make its
    // key in the software keystore and compare that with the token floor).
    let used = c
        .call::<List>(&ListParams { room_id: Some("!bench:localhost".into()), ..Default::default() })
        .expect("list")
        .keys;
    assert!(!used.is_empty() && used.iter().all(|k| k.backend == "pkcs11"), "{used:?}");
}

#[test]
fn wrap_mode_binds_the_software_keystore_to_the_token() {
    let token = Token::new();
    let mut agent = token.agent();
    let mut c = agent.unlocked();
    let k = create(&mut c, Some("!wrap:x"));
    assert_eq!(soft_protection(&mut c), (Protection::Passphrase, true));
    let out = agent.ctl(
        &[
            "backend",
            "init",
            "soft",
            "--wrap-with",
            "pkcs11",
            "--module",
            MODULE,
            "--token",
            "cryptoid",
            "--current-file",
            "-",
            "--pin-file",
            "-",
        ],
        format!("{}\n{PIN}\n", cryptoid_tests::agent::PASSPHRASE).as_bytes(),
    );
    assert!(out.status.success(), "{}", cryptoid_tests::stderr(&out));
    // hello tells the new protection at once (the agent keeps it in memory)…
    assert_eq!(soft_protection(&mut c), (Protection::Pin, true));
    let keystore = std::fs::read_to_string(agent.data_dir().join("keystore.json")).expect("keystore");
    assert!(
        keystore.contains("\"mode\":\"pkcs11_wrapped\"") && !keystore.contains("passphrase"),
        "{keystore}"
    );
    // The AES wrapping key is on the token, sensitive and never extractable.
    let listing = Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", token.conf())
        .args(["--module", MODULE, "--login", "--pin", PIN, "--list-objects", "--type", "secrkey"])
        .output()
        .expect("pkcs11-tool");
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("cryptoid-agent wrap") && listing.contains("never extractable"), "{listing}");

    // After a restart the passphrase no longer unlocks; the PIN does, and
    // the keys made before wrapping still sign.
    agent.restart();
    let mut c = agent.client();
    // …and after a restart, from the file.
    assert_eq!(soft_protection(&mut c), (Protection::Pin, true));
    let err = c
        .call::<Unlock>(&UnlockParams {
            passphrase: Some(cryptoid_tests::agent::PASSPHRASE.into()),
            backend: None,
            pin: None,
        })
        .expect_err("passphrase no longer works");
    cryptoid_tests::assert_refused(&err, ErrorKind::InvalidParams, "keystore_wrapped");
    let err = c
        .call::<Unlock>(&UnlockParams { passphrase: None, backend: None, pin: Some("000000".into()) })
        .expect_err("wrong PIN");
    cryptoid_tests::assert_refused(&err, ErrorKind::BadPassphrase, "bad_pin");
    c.call::<Unlock>(&UnlockParams { passphrase: None, backend: None, pin: Some(PIN.into()) })
        .expect("PIN unlocks");
    assert_verifies(&sign(&mut c, pdus::message(&k, "!wrap:x", "still mine")).pdu, &k);

    // Without the token the keystore cannot be unlocked.
    agent.restart();
    let away = token.dir.path().join("tokens.away");
    std::fs::rename(token.tokens(), &away).expect("remove the token");
    let mut c = agent.client();
    let err = c
        .call::<Unlock>(&UnlockParams { passphrase: None, backend: None, pin: Some(PIN.into()) })
        .expect_err("no token");
    assert_eq!(err.kind(), Some(ErrorKind::BackendUnavailable), "{err}");
}

#[test]
fn askpass_supplies_the_pin_when_a_locked_token_must_sign() {
    use std::os::unix::fs::PermissionsExt;
    let token = Token::new();
    let askpass = token.dir.path().join("askpass");
    let log = token.dir.path().join("asked");
    std::fs::write(
        &askpass,
        format!("#!/bin/sh\necho \"$CRYPTOID_ASKPASS_PROMPT|$1\" > {}\necho {PIN}\n", log.display()),
    )
    .expect("script");
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let conf = token.conf().display().to_string();
    let policy = format!(
        "[policy]\nunknown_clients = \"allow\"\naskpass = \"{}\"\n[policy.rate]\nper_room = 0\nper_client = 0\n",
        askpass.display()
    );
    let mut agent = Agent::start_with_env(Some(&policy), &[("SOFTHSM2_CONF", &conf)]);
    let mut c = agent.unlocked();
    init(&mut c, MODULE, PIN).expect("init");
    let k = pkcs11_key(&mut c, "!ask:x");
    agent.restart();
    let mut c = agent.unlocked(); // the token is locked again
    assert_verifies(&sign(&mut c, pdus::message(&k, "!ask:x", "PIN from askpass")).pdu, &k);
    let asked = std::fs::read_to_string(&log).expect("askpass ran");
    assert!(asked.starts_with("pin|PIN of the PKCS#11 token to sign m.room.message in !ask:x"), "{asked}");
}

#[test]
fn setup_wizard_puts_keys_on_the_token_or_wraps_the_keystore() {
    let token_args =
        ["--module", MODULE, "--token", "cryptoid", "--pin-file", "-", "--yes", "--one-time-keys"];
    // Keys on the token.
    let token = Token::new();
    let agent = token.agent();
    let args = [&["--json", "setup", "--backend", "pkcs11"][..], &token_args, &["3"]].concat();
    let out = agent.ctl(&args, format!("{PIN}\n").as_bytes());
    assert!(out.status.success(), "{}", cryptoid_tests::stderr(&out));
    let done = cryptoid_tests::stdout(&out);
    assert!(done.contains("\"backend\":\"pkcs11\"") && done.contains("\"one_time_keys\":3"), "{done}");
    let otks = agent.client().call::<List>(&ListParams::default()).expect("list").keys;
    assert_eq!(otks.iter().filter(|k| k.backend == "pkcs11").count(), 3, "{otks:?}");

    // Wrap mode on a fresh agent: the keystore is made wrapped, no passphrase.
    let token = Token::new();
    let mut agent = token.agent();
    let args = [&["setup", "--backend", "soft-wrapped-pkcs11"][..], &token_args, &["2"]].concat();
    let out = agent.ctl(&args, format!("{PIN}\n").as_bytes());
    assert!(out.status.success(), "{}", cryptoid_tests::stderr(&out));
    let keystore = std::fs::read_to_string(agent.data_dir().join("keystore.json")).expect("keystore");
    assert!(keystore.contains("\"mode\":\"pkcs11_wrapped\""), "{keystore}");
    // After a restart the PIN unlocks it and the keys are there.
    agent.restart();
    let out = agent.ctl(&["unlock", "--pin-file", "-"], format!("{PIN}\n").as_bytes());
    assert!(out.status.success(), "{}", cryptoid_tests::stderr(&out));
    let otks = agent.client().call::<List>(&ListParams::default()).expect("list").keys;
    assert_eq!(otks.iter().filter(|k| k.backend == "soft").count(), 2, "{otks:?}");

    // Without the module the wizard says what it needs.
    let out = agent.ctl(&["setup", "--backend", "pkcs11", "--yes"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(cryptoid_tests::stderr(&out).contains("--module is needed"), "{}", cryptoid_tests::stderr(&out));
}

#[test]
fn concurrent_signatures_on_the_token_verify_and_survive_a_lock() {
    let token = Token::new();
    let agent = token.agent();
    let mut c = agent.unlocked();
    init(&mut c, MODULE, PIN).expect("init");
    let keys: Vec<(String, String)> = (0..6)
        .map(|i| {
            let room = format!("!par{i}:x");
            (pkcs11_key(&mut c, &room), room)
        })
        .collect();
    // More clients than the agent has token sessions: every signature verifies.
    let sign_all = |label: &str| {
        std::thread::scope(|s| {
            for (k, room) in &keys {
                let agent = &agent;
                s.spawn(move || {
                    let mut c = agent.client();
                    for n in 0..10 {
                        let pdu = pdus::message(k, room, &format!("{label} {n}"));
                        assert_verifies(&sign(&mut c, pdu).pdu, k);
                    }
                });
            }
        });
    };
    sign_all("before the lock");
    // Locked, nothing signs; the PIN brings every session back.
    c.call::<cryptoid_protocol::wire::agent::Lock>(&NoParams {}).expect("lock");
    let (k, room) = &keys[0];
    assert!(try_sign(&mut c, pdus::message(k, room, "locked")).is_err());
    unlock_pin(&mut c, PIN).expect("unlock with the PIN");
    sign_all("after the lock");
}

/// The token's PIN typed into pinentry-tty, in the terminal of the client
/// that asked to sign; a second time cancelled (Ctrl-D): `pin_required`,
/// nothing signed, no hang.
#[test]
fn pinentry_tty_takes_the_pin_in_the_client_s_terminal_or_a_cancel() {
    use cryptoid_tests::desktop::{self, client_command, client_script, wait_for, Tmux};
    if !desktop::available(&["tmux", "pinentry-tty", "python3"]) {
        return;
    }
    let token = Token::new();
    let conf = token.conf().display().to_string();
    let policy = "[policy]\nunknown_clients = \"allow\"\n[policy.rate]\nper_room = 0\nper_client = 0\n";
    let mut agent = Agent::start_with_env(
        Some(policy),
        &[("SOFTHSM2_CONF", &conf), ("CRYPTOID_PINENTRY", "/usr/bin/pinentry-tty")],
    );
    let mut c = agent.unlocked();
    init(&mut c, MODULE, PIN).expect("init");
    let room = "!pin:x";
    let k = pkcs11_key(&mut c, room);
    agent.restart();
    agent.unlocked(); // the keystore; the token is locked again
    let dir = tempfile::tempdir().expect("tempdir");
    let script = client_script(dir.path());
    let socket = agent.socket();
    let run = |name: &str, body: &str| {
        let request = dir.path().join(name);
        let pdu = cryptoid_protocol::json::to_canonical_string(&pdus::message(&k, room, body));
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"sign.pdu","params":{{"room_version":"{}","pdu":{pdu}}}}}"#,
            super::agent_sign::RV
        );
        std::fs::write(&request, line).expect("request");
        let answer = dir.path().join(format!("{name}.answer"));
        (Tmux::start(&client_command(&script, &socket, &request, &answer), &[]), answer)
    };
    let read = |p: &Path| -> serde_json::Value {
        let text =
            wait_for(30, "the answer", || std::fs::read_to_string(p).ok().filter(|t| t.ends_with('\n')));
        serde_json::from_str(&text).expect("json")
    };

    let (term, answer) = run("typed", "PIN typed in pinentry");
    let screen = term.wait_for_text("PIN:");
    assert!(screen.contains("PIN of the PKCS#11 token to sign m.room.message in !pin:x"), "{screen}");
    assert!(!screen.contains(PIN));
    term.keys(&[PIN, "Enter"]);
    let a = read(&answer);
    let signed = a["result"]["pdu"].to_string();
    let signed = cryptoid_protocol::json::from_str(&signed).expect("pdu");
    assert_verifies(&signed, &k);
    assert!(!term.screen().contains(PIN), "the PIN is never echoed");
    assert!(!agent.log().contains(PIN), "the PIN never reaches the log");
    drop(term);

    agent.restart();
    agent.unlocked();
    let (term, answer) = run("cancelled", "cancelled");
    term.wait_for_text("PIN:");
    term.keys(&["C-d"]);
    let a = read(&answer);
    assert_eq!(a["error"]["data"]["kind"], "pin_required", "{a}");
}

/// Keys on a token never leave it: `share.export` lists them under
/// `stays`, with the reason, and exports the software keys beside them.
#[test]
fn share_export_leaves_token_keys_on_the_token() {
    use cryptoid_protocol::secret_storage::{recovery_key, KeyDescription, SecretKey};
    use cryptoid_protocol::wire::share::{Export, StorageKey};
    use std::os::unix::fs::PermissionsExt;
    let token = Token::new();
    let askpass = token.dir.path().join("askpass");
    std::fs::write(&askpass, "#!/bin/sh\nexit 0\n").expect("askpass");
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let conf = token.conf().display().to_string();
    let agent = Agent::start_with_env(
        None,
        &[("SOFTHSM2_CONF", &conf), ("CRYPTOID_ASKPASS", askpass.to_str().expect("p"))],
    );
    let mut c = agent.unlocked();
    init(&mut c, MODULE, PIN).expect("init");
    let on_token = pkcs11_key(&mut c, "!hw:x");
    let soft = create(&mut c, Some("!sw:x"));
    let key = SecretKey::from_bytes([4; 32]);
    let r = c
        .call::<Export>(&StorageKey {
            recovery_key: Some(recovery_key::encode(&key).to_string()),
            passphrase: None,
            key_id: "k".into(),
            key_description: KeyDescription::new(&key, [0; 16], None),
        })
        .expect("export");
    assert_eq!(r.rooms, 1, "the software key: {r:?}");
    let stays = r.stays.iter().find(|s| s.cryptoid == on_token).expect("the token key stays");
    assert_eq!(stays.backend, "pkcs11");
    assert!(
        stays.reason.contains("never leaves its token") && stays.reason.contains("--wrap-with"),
        "{}",
        stays.reason
    );
    assert!(r.stays.iter().all(|s| s.cryptoid != soft));
}
