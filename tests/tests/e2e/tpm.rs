//! The TPM wrap mode against a real TPM 2.0 emulator (swtpm, one fresh TPM
//! per test): the software keystore's data key sealed by the TPM behind a
//! PIN. Each refusal has its control beside it: the same step that must
//! still work.

use super::agent_sign::{assert_verifies, create, sign, soft_protection};
use cryptoid_protocol::client::blocking::Client;
use cryptoid_protocol::client::ClientError;
use cryptoid_protocol::wire::agent::{Protection, Unlock, UnlockParams};
use cryptoid_protocol::wire::backend::{TpmChangePin, TpmChangePinParams};
use cryptoid_protocol::wire::ErrorKind;
use cryptoid_tests::agent::{Agent, PASSPHRASE};
use cryptoid_tests::swtpm::Swtpm;
use cryptoid_tests::{assert_names, assert_refused, pdus, stderr, stdout};
use std::process::Output;

/// swtpm's lockout authorization is empty: PINs need 8 characters.
const PIN: &str = "27182818";
const RECOVERY: &str = "a recovery passphrase kept on paper";

fn tpm_agent(tpm: &Swtpm) -> Agent {
    Agent::start_with(&[], Some(&tpm.config()))
}

/// `cryptoidctl backend init soft --wrap-with tpm`, the keystore's current
/// secret (if it has one), the PIN and the recovery passphrase on standard
/// input.
fn seal(agent: &Agent, current: Option<&str>, pin: &str, recovery: Option<&str>, extra: &[&str]) -> Output {
    let mut args = vec!["backend", "init", "soft", "--wrap-with", "tpm", "--pin-file", "-"];
    let mut input = String::new();
    if let Some(c) = current {
        args.extend(["--current-file", "-"]);
        input.push_str(&format!("{c}\n"));
    }
    input.push_str(&format!("{pin}\n"));
    if let Some(r) = recovery {
        args.extend(["--recovery-passphrase-file", "-"]);
        input.push_str(&format!("{r}\n"));
    }
    args.extend(extra);
    agent.ctl(&args, input.as_bytes())
}

fn sealed(agent: &Agent, current: Option<&str>, pin: &str, recovery: Option<&str>, extra: &[&str]) {
    let out = seal(agent, current, pin, recovery, extra);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The agent restarted (locked, as after a reboot), and a client of it.
fn restarted(agent: &mut Agent) -> Client {
    agent.restart();
    agent.client()
}

fn unlock_pin(c: &mut Client, pin: &str) -> Result<(), ClientError> {
    c.call::<Unlock>(&UnlockParams { passphrase: None, backend: None, pin: Some(pin.into()) }).map(|_| ())
}

fn unlock_recovery(c: &mut Client, passphrase: &str) -> Result<(), ClientError> {
    c.call::<Unlock>(&UnlockParams { passphrase: Some(passphrase.into()), backend: None, pin: None })
        .map(|_| ())
}

/// A cryptoID and its room.
struct Key {
    id: String,
    room: String,
}

/// A key made now (for a room of its own), and a PDU it signs that verifies.
fn key_that_signs(c: &mut Client) -> Key {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let room = format!("!tpm{}:example.org", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let k = Key { id: create(c, Some(&room)), room };
    signs(c, &k);
    k
}

fn signs(c: &mut Client, k: &Key) {
    let s = sign(c, pdus::message(&k.id, &k.room, "sealed by the TPM"));
    assert_verifies(&s.pdu, &k.id);
}

#[test]
fn a_keystore_sealed_by_the_tpm_unlocks_with_its_pin_and_signs() {
    let tpm = Swtpm::start();
    let mut agent = tpm_agent(&tpm);
    // A keystore with a passphrase and a key, then sealed: the key stays.
    let mut c = agent.unlocked();
    let k = key_that_signs(&mut c);
    // The attack: a client allowed to manage keys, on the unlocked agent,
    // seals the keystore behind a PIN of its own (with this TPM, that PIN
    // and a copy of keystore.json, it would have every key). Refused
    // without the keystore's current secret, and with a wrong one.
    let e = c
        .call::<cryptoid_protocol::wire::backend::Init>(&cryptoid_protocol::wire::backend::InitParams {
            backend: "soft".into(),
            module: String::new(),
            token: String::new(),
            pin: Some("the-thief-s-pin".into()),
            wrap_with: Some("tpm".into()),
            touch: None,
            pcrs: None,
            recovery_passphrase: None,
            current: None,
        })
        .expect_err("no current secret");
    assert_refused(&e, ErrorKind::InvalidParams, "passphrase_required");
    let out = seal(&agent, Some("a guess"), "the-thief-s-pin", None, &[]);
    assert!(stderr(&out).contains("bad_passphrase"), "{}", stderr(&out));
    assert_eq!(soft_protection(&mut c).0, Protection::Passphrase, "nothing was sealed");
    // Control: with the current passphrase, it is sealed.
    sealed(&agent, Some(PASSPHRASE), PIN, None, &[]);
    assert_eq!(soft_protection(&mut c), (Protection::TpmPin, true));
    let list = agent.ctl(&["backend", "list"], b"");
    assert!(stdout(&list).contains("tpm+pin"), "{}", stdout(&list));
    // The file holds nothing the passphrase or the PIN could open alone.
    let file = std::fs::read_to_string(agent.data_dir().join("keystore.json")).expect("keystore");
    assert!(file.contains("\"mode\":\"tpm_wrapped\"") && !file.contains("\"kdf\""), "{file}");

    let mut c = restarted(&mut agent);
    let locked = c
        .call::<cryptoid_protocol::wire::agent::Hello>(&cryptoid_protocol::wire::NoParams {})
        .expect("hello");
    assert!(locked.locked);
    // The old passphrase no longer opens it; the PIN does.
    let e = unlock_recovery(&mut c, PASSPHRASE).expect_err("no recovery copy: the passphrase is gone");
    assert_refused(&e, ErrorKind::InvalidParams, "no_recovery_passphrase");
    let out = agent.ctl(&["unlock", "--pin-file", "-"], format!("{PIN}\n").as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    signs(&mut c, &k);
    // New keys after the seal are sealed under the same data key.
    let k2 = key_that_signs(&mut c);
    let mut c = restarted(&mut agent);
    unlock_pin(&mut c, PIN).expect("unlock");
    signs(&mut c, &k2);
}

#[test]
fn wrong_pins_count_down_then_the_lockout_is_reported_with_the_wait() {
    let tpm = Swtpm::start();
    let max = tpm.property("TPM2_PT_MAX_AUTH_FAIL");
    assert!(max >= 2, "swtpm allows {max} tries");
    let mut agent = tpm_agent(&tpm);
    sealed(&agent, None, PIN, None, &[]); // a new keystore
    let mut c = restarted(&mut agent);
    for left in (1..max).rev() {
        let e = unlock_pin(&mut c, "0000").expect_err("a wrong PIN");
        assert_refused(&e, ErrorKind::BadPassphrase, "bad_pin");
        assert_names(&e, &format!("{left} tr"));
        assert_eq!(tpm.property("TPM2_PT_LOCKOUT_COUNTER"), max - left, "the TPM counted it");
    }
    // The last try locks the TPM out: told so, with the time to wait.
    let e = unlock_pin(&mut c, "0000").expect_err("the last wrong PIN");
    assert_refused(&e, ErrorKind::BadPassphrase, "pin_blocked");
    assert_names(&e, "try again in at most");
    // Locked out, even the right PIN is refused, and not tried.
    let e = unlock_pin(&mut c, PIN).expect_err("locked out");
    assert_refused(&e, ErrorKind::BadPassphrase, "pin_blocked");
    assert_names(&e, "not tried");
    assert_eq!(tpm.property("TPM2_PT_LOCKOUT_COUNTER"), max);
    // Control: once the lockout owner clears it, the right PIN unlocks.
    tpm.tool("tpm2_dictionarylockout", &["--clear-lockout"]);
    unlock_pin(&mut c, PIN).expect("the PIN after the lockout is cleared");
}

#[test]
fn a_keystore_copied_to_another_tpm_is_refused_then_recovered_and_sealed_there() {
    let first = Swtpm::start();
    let agent = tpm_agent(&first);
    let mut c = agent.unlocked();
    let k = key_that_signs(&mut c);
    sealed(&agent, Some(PASSPHRASE), PIN, Some(RECOVERY), &[]);

    // The data directory copied to a machine with another TPM.
    let second = Swtpm::start();
    let mut moved = tpm_agent(&second);
    moved.kill9();
    std::fs::copy(agent.data_dir().join("keystore.json"), moved.data_dir().join("keystore.json"))
        .expect("copy");
    copy_dir(&agent.data_dir().join("keys"), &moved.data_dir().join("keys"));
    moved.spawn().expect("agent starts");
    let mut m = moved.client();
    let e = unlock_pin(&mut m, PIN).expect_err("another TPM");
    assert_refused(&e, ErrorKind::BackendUnavailable, "tpm_mismatch");
    assert_names(&e, "cryptoidctl unlock --recovery");
    assert_eq!(second.property("TPM2_PT_LOCKOUT_COUNTER"), 0, "no PIN was tried on the other TPM");
    // Recovery: a wrong passphrase is refused, the right one unlocks.
    let e = unlock_recovery(&mut m, "not it").expect_err("wrong recovery passphrase");
    assert_refused(&e, ErrorKind::BadPassphrase, "bad_recovery_passphrase");
    let out =
        moved.ctl(&["unlock", "--recovery", "--passphrase-file", "-"], format!("{RECOVERY}\n").as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    signs(&mut m, &k);
    // Sealed to this TPM with a new PIN; the recovery copy is kept.
    sealed(&moved, Some(RECOVERY), "31415926", None, &[]);
    let mut m = restarted(&mut moved);
    unlock_pin(&mut m, "31415926").expect("the new PIN on the new TPM");
    signs(&mut m, &k);
    let mut m = restarted(&mut moved);
    unlock_recovery(&mut m, RECOVERY).expect("the recovery copy survived sealing again");

    // Control on the first machine: its own TPM still opens it, until it
    // is cleared (`tpm2_clear`), after which it is another TPM too.
    let mut agent = agent;
    let mut c = restarted(&mut agent);
    unlock_pin(&mut c, PIN).expect("the first TPM");
    first.tool("tpm2_clear", &[]);
    let mut c = restarted(&mut agent);
    let e = unlock_pin(&mut c, PIN).expect_err("a cleared TPM");
    assert_refused(&e, ErrorKind::BackendUnavailable, "tpm_mismatch");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

#[test]
fn a_seal_bound_to_pcr_7_is_refused_once_the_pcr_changes() {
    let tpm = Swtpm::start();
    let mut agent = tpm_agent(&tpm);
    let mut c = agent.unlocked();
    let k = key_that_signs(&mut c);
    sealed(&agent, Some(PASSPHRASE), PIN, Some(RECOVERY), &["--pcrs", "7"]);
    assert_eq!(soft_protection(&mut c).0, Protection::TpmPinPcr);
    // Control: the PCR unchanged, the PIN unlocks.
    let mut c = restarted(&mut agent);
    unlock_pin(&mut c, PIN).expect("PCR 7 as sealed");
    // A PCR 16 change is not bound: still unlocks.
    tpm.tool("tpm2_pcrextend", &[&format!("16:sha256={}", "11".repeat(32))]);
    let mut c = restarted(&mut agent);
    unlock_pin(&mut c, PIN).expect("an unbound PCR changed");
    // The attack: the boot state changes (PCR 7 extended).
    tpm.tool("tpm2_pcrextend", &[&format!("7:sha256={}", "ab".repeat(32))]);
    let mut c = restarted(&mut agent);
    let e = unlock_pin(&mut c, PIN).expect_err("PCR 7 changed");
    assert_refused(&e, ErrorKind::BackendUnavailable, "tpm_pcr_changed");
    assert_names(&e, "PCR 7");
    assert_eq!(tpm.property("TPM2_PT_LOCKOUT_COUNTER"), 0, "the PIN was not spent");
    // Recovered, then sealed again to today's PCR 7.
    unlock_recovery(&mut c, RECOVERY).expect("recovery");
    signs(&mut c, &k);
    sealed(&agent, Some(RECOVERY), PIN, None, &["--pcrs", "7"]);
    let mut c = restarted(&mut agent);
    unlock_pin(&mut c, PIN).expect("sealed to the new PCR 7");
    signs(&mut c, &k);
}

#[test]
fn change_pin_replaces_the_pin_and_a_wrong_current_pin_changes_nothing() {
    let tpm = Swtpm::start();
    let mut agent = tpm_agent(&tpm);
    let mut c = agent.unlocked();
    let k = key_that_signs(&mut c);
    sealed(&agent, Some(PASSPHRASE), PIN, None, &[]);
    let before = std::fs::read(agent.data_dir().join("keystore.json")).expect("keystore");
    let e = c
        .call::<TpmChangePin>(&TpmChangePinParams { pin: "9999".into(), new_pin: "44444444".into() })
        .expect_err("a wrong current PIN");
    assert_refused(&e, ErrorKind::BadPassphrase, "bad_pin");
    assert_eq!(std::fs::read(agent.data_dir().join("keystore.json")).expect("keystore"), before);
    let out = agent
        .ctl(&["backend", "tpm", "change-pin", "--pin-file", "-"], format!("{PIN}\n44444444\n").as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let mut c = restarted(&mut agent);
    let e = unlock_pin(&mut c, PIN).expect_err("the old PIN");
    assert_refused(&e, ErrorKind::BadPassphrase, "bad_pin");
    unlock_pin(&mut c, "44444444").expect("the new PIN");
    signs(&mut c, &k);
}

#[test]
fn no_tpm_is_a_clear_error_and_the_keystore_keeps_its_passphrase() {
    let agent = Agent::start_with(&[], Some("[tpm]\ntcti = \"device:/nonexistent/tpmrm0\"\n"));
    let mut c = agent.unlocked();
    let k = key_that_signs(&mut c);
    let out = seal(&agent, Some(PASSPHRASE), PIN, None, &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("backend_unavailable") && err.contains("no TPM at /nonexistent/tpmrm0"), "{err}");
    // Nothing changed: the passphrase still unlocks after a restart.
    let mut agent = agent;
    let mut c = restarted(&mut agent);
    unlock_recovery(&mut c, PASSPHRASE).expect("the passphrase, as before");
    signs(&mut c, &k);
    // A TPM that is not listening is told apart.
    let agent = Agent::start_with(&[], Some("[tpm]\ntcti = \"swtpm:host=127.0.0.1,port=9\"\n"));
    agent.unlocked();
    let out = seal(&agent, Some(PASSPHRASE), PIN, None, &[]);
    assert!(stderr(&out).contains("cannot reach the TPM"), "{}", stderr(&out));
}

/// `kill -9` while a keystore is sealed (a passphrase keystore being
/// moved to the TPM) and while its PIN changes: after each kill, the old
/// secret or the new one unlocks, never neither, and the key still signs.
#[test]
fn kill9_during_seal_and_pin_change_leaves_the_old_or_the_new_state() {
    let mut tpm = Swtpm::start();
    // Many wrong tries below are expected (the old PIN after a change).
    tpm.tool("tpm2_dictionarylockout", &["--setup-parameters", "--max-tries=1000", "--recovery-time=1"]);
    let mut agent = tpm_agent(&tpm);
    let mut c = agent.unlocked();
    let k = key_that_signs(&mut c);
    let mut seen = std::collections::BTreeMap::<String, u32>::new();
    let mut pin = None::<String>; // None: the passphrase still protects it
    let seed = pdus::now_ms();
    eprintln!("kill9 seed {seed}");
    let mut rng = seed;
    let (mut seal_tries, mut changes) = (0u64, 0u64);
    for round in 0..16u32 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Sealing an existing keystore checks its passphrase first (Argon2id,
        // about 130 ms here) then talks to the TPM (about 50 ms): the kills
        // of that phase step through it, the last one late enough that it
        // ends. A PIN change (an unseal, then a seal) takes about 80 ms: kills
        // step through it the same way, with a random jitter.
        let delay = std::time::Duration::from_millis(match pin {
            None => {
                seal_tries += 1;
                [0, 60, 120, 150, 170, 190, 210, 240, 1500][(seal_tries as usize - 1).min(8)]
            }
            Some(_) => {
                changes += 1;
                // The first one ends (a slow machine too), the second is cut
                // at once: both outcomes are seen whatever the load.
                [2000, 0, 20, 40, 60, 80, 100, 150][(changes as usize - 1) % 8] + rng % 20
            }
        });
        let new_pin = format!("pin-{}", 5000 + round);
        let mut cmd = std::process::Command::new(cryptoid_tests::bin("cryptoidctl"));
        cmd.env("CRYPTOID_AUTH_SOCK", agent.socket()).stdin(std::process::Stdio::piped());
        let input = match &pin {
            None => {
                cmd.args([
                    "backend",
                    "init",
                    "soft",
                    "--wrap-with",
                    "tpm",
                    "--current-file",
                    "-",
                    "--pin-file",
                    "-",
                ]);
                format!("{PASSPHRASE}\n{new_pin}\n")
            }
            Some(old) => {
                cmd.args(["backend", "tpm", "change-pin", "--pin-file", "-"]);
                format!("{old}\n{new_pin}\n")
            }
        };
        let mut child =
            cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().expect("ctl");
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("input");
        std::thread::sleep(delay);
        agent.kill9();
        let _ = child.wait();
        // What the kernel's resource manager does for a killed process.
        tpm.reboot();
        agent.spawn().expect("agent restarts");
        let mut c = agent.client();
        let old_ok = match &pin {
            None => unlock_recovery(&mut c, PASSPHRASE).is_ok(),
            Some(old) => unlock_pin(&mut c, old).is_ok(),
        };
        let new_ok = !old_ok && unlock_pin(&mut c, &new_pin).is_ok();
        assert!(
            old_ok || new_ok,
            "round {round} (killed after {delay:?}): neither the old nor the new secret unlocks"
        );
        signs(&mut c, &k);
        let phase = if pin.is_none() { "seal" } else { "change-pin" };
        *seen.entry(format!("{phase}: {}", if new_ok { "new" } else { "old" })).or_default() += 1;
        if new_ok {
            pin = Some(new_pin);
        }
        // Left unlocked: sealing the next round needs the keystore unlocked.
    }
    eprintln!("outcomes: {seen:?}");
    // The test reached both operations (a seal that ended, PIN changes).
    assert_eq!(seen.get("seal: new"), Some(&1), "{seen:?}");
    assert!(seen.contains_key("change-pin: new") && seen.contains_key("change-pin: old"), "{seen:?}");
}

/// A sealed, locked agent with a key, for the tests of how the PIN is asked.
fn sealed_and_locked(tpm: &Swtpm) -> (Agent, Key) {
    let mut agent = tpm_agent(tpm);
    let mut c = agent.unlocked();
    let k = key_that_signs(&mut c);
    sealed(&agent, Some(PASSPHRASE), PIN, None, &[]);
    agent.restart();
    (agent, k)
}

/// In a terminal, `cryptoidctl unlock` knows the keystore is sealed by the
/// TPM and asks for the TPM PIN, not a passphrase; typed there, it unlocks.
#[test]
fn cryptoidctl_unlock_asks_the_tpm_pin_in_the_terminal() {
    use cryptoid_tests::desktop::{self, Tmux};
    if !desktop::available(&["tmux"]) {
        return;
    }
    let tpm = Swtpm::start();
    let (agent, k) = sealed_and_locked(&tpm);
    let ctl = cryptoid_tests::bin("cryptoidctl");
    let socket = agent.socket();
    let term = Tmux::start(
        &format!("{} unlock; sleep 60", ctl.display()),
        &[("CRYPTOID_AUTH_SOCK", socket.to_str().expect("utf-8")), ("CRYPTOID_PINENTRY", "none")],
    );
    term.wait_for_text("TPM PIN:");
    for ch in PIN.chars() {
        term.keys(&[&ch.to_string()]);
    }
    term.keys(&["Enter"]);
    let screen = term.wait_for_text("unlocked");
    assert!(!screen.contains(PIN), "the PIN was echoed:\n{screen}");
    signs(&mut agent.client(), &k);
}

/// With no terminal (a launcher, a desktop session), the TPM PIN is asked
/// in pinentry on the desktop, like the other PINs and the passphrase.
#[test]
fn cryptoidctl_unlock_asks_the_tpm_pin_in_pinentry_on_the_desktop() {
    use cryptoid_tests::desktop::{self, wait_for, Xvfb};
    if !desktop::available(&["Xvfb", "xdotool", "pinentry-gtk-2", "setsid", "import"]) {
        return;
    }
    let tpm = Swtpm::start();
    let (agent, k) = sealed_and_locked(&tpm);
    let x = Xvfb::start();
    let mut unlock = std::process::Command::new("setsid") // no controlling terminal
        .arg(cryptoid_tests::bin("cryptoidctl"))
        .args(["--socket", agent.socket().to_str().expect("utf-8"), "unlock"])
        .env("DISPLAY", &x.display)
        .env("CRYPTOID_PINENTRY", "/usr/bin/pinentry-gtk-2")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cryptoidctl");
    let window = x.wait_for_window("cryptoidctl");
    std::thread::sleep(std::time::Duration::from_millis(500));
    // What the person sees: kept beside the test's output for a look.
    let shot = std::env::temp_dir().join(format!("cryptoid-tpm-pinentry-{}.png", std::process::id()));
    x.screenshot(&shot);
    eprintln!("pinentry asking the TPM PIN: {}", shot.display());
    x.xdotool(&["windowfocus", &window]);
    x.xdotool(&["type", PIN]).expect("type");
    x.xdotool(&["key", "Return"]).expect("enter");
    let status = wait_for(30, "cryptoidctl to finish", || unlock.try_wait().ok().flatten());
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut unlock.stdout.take().expect("stdout"), &mut out);
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut unlock.stderr.take().expect("stderr"), &mut err);
    assert!(status.success(), "{out}{err}");
    assert!(out.contains("unlocked"), "{out}");
    signs(&mut agent.client(), &k);
}

/// `cryptoidctl setup` on a new agent seals the new keystore by the TPM
/// (with a recovery passphrase and PCR 7), then makes one-time cryptoIDs
/// under it; a restarted agent unlocks with the PIN alone.
#[test]
fn setup_seals_a_new_keystore_by_the_tpm() {
    let tpm = Swtpm::start();
    let mut agent = tpm_agent(&tpm);
    let out = agent.ctl(
        &[
            "setup",
            "--backend",
            "soft-sealed-tpm",
            "--pin-file",
            "-",
            "--recovery-passphrase-file",
            "-",
            "--pcrs",
            "7",
            "--one-time-keys",
            "3",
            "--yes",
        ],
        format!("{PIN}\n{RECOVERY}\n").as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("made 3 one-time cryptoIDs"), "{}", stdout(&out));
    let mut c = agent.client();
    assert_eq!(soft_protection(&mut c), (Protection::TpmPinPcr, true));
    let mut c = restarted(&mut agent);
    unlock_pin(&mut c, PIN).expect("the PIN set by setup");
    let otks = c.call::<cryptoid_protocol::wire::keys::List>(&Default::default()).expect("list");
    assert_eq!(otks.keys.len(), 3);
    let mut c = restarted(&mut agent);
    unlock_recovery(&mut c, RECOVERY).expect("the recovery passphrase set by setup");
}

/// A TPM device this user may not open (not in the `tss` group, or a unit
/// without `DeviceAllow`): the error names both fixes. The agent and the
/// CLI run as uid 65534; the "device" is a file only root may open.
#[test]
fn a_tpm_this_user_may_not_open_names_the_tss_group_and_device_allow() {
    use std::os::unix::fs::PermissionsExt;
    if !rustix::process::getuid().is_root() {
        eprintln!("skipped: needs root to run the agent as uid 65534 (setpriv --reuid 65534)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let device = dir.path().join("tpmrm0");
    std::fs::write(&device, b"").expect("device");
    std::fs::set_permissions(&device, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("home");
    let config = home.join("config.toml");
    std::fs::write(
        &config,
        format!("{}[tpm]\ntcti = \"device:{}\"\n", cryptoid_tests::agent::TEST_POLICY, device.display()),
    )
    .expect("config");
    // The checkout may not be readable by uid 65534: run copies.
    for b in ["cryptoid-agent", "cryptoidctl"] {
        std::fs::copy(cryptoid_tests::bin(b), home.join(b)).expect("copy");
        std::fs::set_permissions(home.join(b), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let chown =
        std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(&home).status().expect("chown");
    assert!(chown.success());
    let as_nobody = |program: &str| {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"]).arg(home.join(program));
        c
    };
    let socket = home.join("agent.sock");
    let mut agent = as_nobody("cryptoid-agent")
        .arg("--socket")
        .arg(&socket)
        .arg("--data-dir")
        .arg(home.join("data"))
        .arg("--config")
        .arg(&config)
        .arg("--no-dbus")
        .env("HOME", &home)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("agent");
    cryptoid_tests::desktop::wait_for(20, "the agent's socket", || socket.exists().then_some(()));
    let out = cryptoid_tests::run(
        as_nobody("cryptoidctl").arg("--socket").arg(&socket).args([
            "backend",
            "init",
            "soft",
            "--wrap-with",
            "tpm",
            "--pin-file",
            "-",
        ]),
        b"12345678\n",
    );
    let _ = agent.kill();
    let _ = agent.wait();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    for fix in ["`tss` group", "DeviceAllow=", "backend_unavailable"] {
        assert!(err.contains(fix), "{fix:?} not in: {err}");
    }
    // Control: root, who may open it, gets past the permission (the file
    // is no TPM, so the TSS fails next, with another message).
    let root = Agent::start_with(&[], Some(&format!("[tpm]\ntcti = \"device:{}\"\n", device.display())));
    let out = seal(&root, None, PIN, None, &[]);
    assert!(!stderr(&out).contains("`tss` group"), "{}", stderr(&out));
}

/// While the TPM's lockout authorization is empty, anyone who reaches the
/// TPM can reset its counter: a short PIN is refused then, and taken once
/// the TPM has a lockout authorization. A recovery passphrase equal to the
/// PIN (guessed offline, without the lockout) is refused too.
#[test]
fn a_short_pin_is_refused_while_anyone_can_reset_the_lockout() {
    let tpm = Swtpm::start();
    let mut agent = tpm_agent(&tpm);
    let mut c = agent.unlocked();
    let k = key_that_signs(&mut c);
    let out = seal(&agent, Some(PASSPHRASE), "1234", None, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("lockout authorization is empty"), "{}", stderr(&out));
    let out = seal(&agent, Some(PASSPHRASE), PIN, Some(PIN), &[]);
    assert!(stderr(&out).contains("must not be the PIN"), "{}", stderr(&out));
    assert_eq!(soft_protection(&mut c).0, Protection::Passphrase, "nothing was sealed");
    // Control: with a lockout authorization, a 4-digit PIN is taken.
    tpm.tool("tpm2_changeauth", &["-c", "lockout", "kept-offline"]);
    sealed(&agent, Some(PASSPHRASE), "1234", None, &[]);
    let mut c = restarted(&mut agent);
    unlock_pin(&mut c, "1234").expect("the short PIN");
    signs(&mut c, &k);
}

/// The other way back from a lost machine: the secret-storage export of
/// the sharing feature. The keys of a TPM-sealed keystore are exported (the
/// export is always asked: an askpass says yes here), and a new machine
/// with its own TPM seals a new keystore, imports them, and signs as the
/// user, after a restart too, with its own PIN.
#[test]
fn a_lost_machine_s_keys_come_back_from_the_secret_storage_export() {
    use cryptoid_protocol::secret_storage::{recovery_key, KeyDescription, SecretKey};
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let askpass = dir.path().join("askpass");
    std::fs::write(&askpass, "#!/bin/sh\nexit 0\n").expect("askpass");
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let env = [("CRYPTOID_ASKPASS", askpass.to_str().expect("utf-8"))];
    let first = Swtpm::start();
    let a = Agent::start_with_env(Some(&first.config()), &env);
    let mut ca = a.unlocked();
    let room = "!lost:example.org";
    let k = Key {
        id: ca
            .call::<cryptoid_protocol::wire::keys::Create>(&cryptoid_protocol::wire::keys::CreateParams {
                room_id: Some(room.into()),
                user_id: Some("@alice:example.org".into()),
                backend: None,
            })
            .expect("create")
            .cryptoid,
        room: room.into(),
    };
    signs(&mut ca, &k);
    sealed(&a, Some(PASSPHRASE), PIN, None, &[]);
    let key = SecretKey::from_bytes([9; 32]);
    let desc = KeyDescription::new(&key, [3; 16], None);
    let recovery = recovery_key::encode(&key).to_string();
    let kf = dir.path().join("key.json");
    std::fs::write(&kf, serde_json::json!({"key_id": "k1", "key_description": desc}).to_string())
        .expect("key");
    let file = dir.path().join("shared.json");
    let (f, kfs) = (file.to_str().expect("p"), kf.to_str().expect("p"));
    let out = a.ctl(
        &["share", "export", f, "--key-file", kfs, "--secret-file", "-"],
        format!("{recovery}\n").as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    drop(a);

    let second = Swtpm::start();
    let mut b = Agent::start_with_env(Some(&second.config()), &env);
    sealed(&b, None, "another-pin", None, &[]); // a new keystore, sealed at once
    let out = b.ctl(
        &["share", "import", f, "--key-file", kfs, "--secret-file", "-"],
        format!("{recovery}\n").as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut cb = b.client();
    signs(&mut cb, &k);
    let mut cb = restarted(&mut b);
    unlock_pin(&mut cb, "another-pin").expect("the new machine's PIN");
    signs(&mut cb, &k);
}

/// Whoever can write `keystore.json` (a sync folder, a backup restored)
/// but has no PIN: dropping the PCR binding from the file does not drop it
/// from the TPM, and a sealed object's public part swapped for another's is
/// named as an altered file; neither spends a try. The controls: the file
/// as written unlocks.
#[test]
fn an_edited_keystore_file_drops_no_binding_and_spends_no_try() {
    let tpm = Swtpm::start();
    let mut agent = tpm_agent(&tpm);
    let mut c = agent.unlocked();
    let k = key_that_signs(&mut c);
    let path = agent.data_dir().join("keystore.json");
    sealed(&agent, Some(PASSPHRASE), PIN, None, &["--pcrs", "7"]);
    let first: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = first.clone();
        f(&mut v);
        std::fs::write(&path, v.to_string()).expect("write");
    };
    // The PCR binding taken out of the file: the TPM still asks for it.
    edit(&|v| {
        v.as_object_mut().expect("object").remove("pcrs");
    });
    let mut c = restarted(&mut agent);
    unlock_pin(&mut c, PIN).expect_err("the TPM's policy still binds PCR 7");
    assert_eq!(tpm.property("TPM2_PT_LOCKOUT_COUNTER"), 0, "no try was spent");
    // Control: the file as sealed unlocks.
    edit(&|_| {});
    let mut c = restarted(&mut agent);
    unlock_pin(&mut c, PIN).expect("the file as sealed");
    // Sealed again (a new object): its file with the first object's public
    // part is refused as altered, before any PIN is tried.
    sealed(&agent, Some(PIN), "16180339", None, &[]);
    let second: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    let mut swapped = second.clone();
    swapped["public"] = first["public"].clone();
    std::fs::write(&path, swapped.to_string()).expect("write");
    let mut c = restarted(&mut agent);
    let e = unlock_pin(&mut c, "16180339").expect_err("an altered file");
    assert_refused(&e, ErrorKind::BackendUnavailable, "tpm_unavailable");
    assert_names(&e, "altered");
    assert_eq!(tpm.property("TPM2_PT_LOCKOUT_COUNTER"), 0, "no try was spent");
    std::fs::write(&path, second.to_string()).expect("write");
    let mut c = restarted(&mut agent);
    unlock_pin(&mut c, "16180339").expect("the file as sealed");
    signs(&mut c, &k);
}
