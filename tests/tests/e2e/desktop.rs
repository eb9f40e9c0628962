//! A person at a desktop is asked in the desktop's own dialog: real
//! pinentry programs (pinentry-tty in a tmux terminal, pinentry-gtk-2 on an
//! Xvfb display), answered by typing and clicking as a person would, and a
//! real notification daemon (dunst) on a private session bus.

use super::agent_sign::create;
use cryptoid_protocol::json;
use cryptoid_protocol::wire::keys::{Get, KeyRef, KeyState};
use cryptoid_tests::agent::{Agent, Bus};
use cryptoid_tests::desktop::{self, client_command, client_script, wait_for, Tmux, Xvfb};
use cryptoid_tests::pdus;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const POLICY: &str = "[policy]\nunknown_clients = \"allow\"\nconfirm_delete = true\nconfirm_timeout_secs = 30\n[policy.rate]\nper_room = 0\nper_client = 0\n";

/// The answer line a client wrote, once it is there.
fn answer_of(path: &Path) -> serde_json::Value {
    let text = wait_for(40, "the client's answer", || {
        std::fs::read_to_string(path).ok().filter(|t| t.ends_with('\n'))
    });
    serde_json::from_str(&text).expect("answer JSON")
}

fn delete_request(dir: &Path, name: &str, cryptoid: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    let line = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "keys.delete", "params": {"cryptoid": cryptoid}});
    std::fs::write(&p, line.to_string()).expect("request");
    p
}

#[test]
fn pinentry_tty_asks_in_the_client_s_terminal_and_takes_yes_and_no() {
    if !desktop::available(&["tmux", "pinentry-tty", "python3"]) {
        return;
    }
    let agent = Agent::start_with_env(Some(POLICY), &[("CRYPTOID_PINENTRY", "/usr/bin/pinentry-tty")]);
    let mut c = agent.unlocked();
    let yes = create(&mut c, Some("!tty:example.org"));
    let no = create(&mut c, Some("!tty2:example.org"));
    let dir = tempfile::tempdir().expect("tempdir");
    let script = client_script(dir.path());

    // Yes: the question appears in the terminal the client runs in.
    let answer = dir.path().join("yes.answer");
    let cmd = client_command(&script, &agent.socket(), &delete_request(dir.path(), "yes", &yes), &answer);
    let term = Tmux::start(&cmd, &[]);
    let screen = term.wait_for_text("[ad]?");
    assert!(
        screen.contains("delete cryptoID") && screen.contains("Allow") && screen.contains("Deny"),
        "{screen}"
    );
    assert!(screen.contains("(pid "), "who asks is shown: {screen}");
    term.keys(&["a", "Enter"]);
    let a = answer_of(&answer);
    assert_eq!(a["result"]["state"], "retired", "{a}");
    drop(term);

    // No.
    let answer = dir.path().join("no.answer");
    let cmd = client_command(&script, &agent.socket(), &delete_request(dir.path(), "no", &no), &answer);
    let term = Tmux::start(&cmd, &[]);
    term.wait_for_text("[ad]?");
    term.keys(&["d", "Enter"]);
    let a = answer_of(&answer);
    assert_eq!(a["error"]["data"]["kind"], "confirmation_denied", "{a}");
    assert_eq!(c.call::<Get>(&KeyRef { cryptoid: no }).expect("get").state, KeyState::Bound);
    // The journal says who answered, and on which terminal.
    let tail = agent.ctl(&["--json", "journal", "tail", "-n", "10"], b"");
    let tail = cryptoid_tests::stdout(&tail);
    assert!(tail.contains("pinentry /usr/bin/pinentry-tty on tty /dev/pts/"), "{tail}");
}

#[test]
fn a_pinentry_with_nowhere_to_show_is_not_taken_for_a_no() {
    // Attack on the person's intent: pinentry-tty with no terminal answers
    // "cancelled" at once. It is not run where there is no display and no
    // terminal; askpass answers, yes.
    if !desktop::available(&["pinentry-tty"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let askpass = dir.path().join("askpass");
    std::fs::write(&askpass, "#!/bin/sh\nsleep 1\nexit 0\n").expect("askpass");
    std::fs::set_permissions(&askpass, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let agent = Agent::start_with_env(
        Some(POLICY),
        &[("CRYPTOID_PINENTRY", "/usr/bin/pinentry-tty"), ("CRYPTOID_ASKPASS", askpass.to_str().expect("p"))],
    );
    let mut c = agent.unlocked();
    let k = create(&mut c, Some("!x:example.org"));
    let deleted =
        c.call::<cryptoid_protocol::wire::keys::Delete>(&KeyRef { cryptoid: k }).expect("askpass answers");
    assert_eq!(deleted.state, KeyState::Retired);
    assert!(agent.log().contains("no display or terminal to show pinentry on"), "{}", agent.log());
}

/// Clicks the "Allow" button of a pinentry-gtk-2 dialog (bottom right; the
/// focus is on "Deny", so Enter would deny), as a person would.
fn click_allow(x: &Xvfb, window: &str) {
    let geometry = x.xdotool(&["getwindowgeometry", "--shell", window]).expect("geometry");
    let dim = |k: &str| -> i64 {
        geometry.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.parse().ok()).expect("dimension")
    };
    let (w, h) = (dim("WIDTH="), dim("HEIGHT="));
    let (bx, by) = ((w - 55).to_string(), (h - 26).to_string());
    x.xdotool(&["mousemove", "--window", window, &bx, &by]).expect("move");
    x.xdotool(&["click", "1"]).expect("click");
}

/// Attack: a client that wants every seed asks for `share.export` from a
/// display it runs itself (its own Xvfb, its own `DISPLAY`), to click
/// "Allow" there. The question goes to the agent's display, the person's;
/// nothing appears on the client's. Control: the person allows it there.
#[test]
fn a_share_is_asked_on_the_agent_s_display_never_the_client_s() {
    use cryptoid_protocol::secret_storage::{recovery_key, KeyDescription, SecretKey};
    if !desktop::available(&["Xvfb", "xdotool", "pinentry-gtk-2", "python3"]) {
        return;
    }
    let person = Xvfb::start();
    let attacker = Xvfb::start();
    let agent = Agent::start_with_env(
        Some(POLICY),
        &[("CRYPTOID_PINENTRY", "/usr/bin/pinentry-gtk-2"), ("DISPLAY", &person.display)],
    );
    let mut c = agent.unlocked();
    create(&mut c, Some("!seeds:example.org"));
    let key = SecretKey::from_bytes([3; 32]);
    let request = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "share.export", "params": {
        "recovery_key": recovery_key::encode(&key).as_str(), "key_id": "mine",
        "key_description": KeyDescription::new(&key, [1; 16], None)}});
    let dir = tempfile::tempdir().expect("tempdir");
    let (req, answer) = (dir.path().join("request"), dir.path().join("answer"));
    std::fs::write(&req, request.to_string()).expect("request");
    let script = client_script(dir.path());
    let mut client = desktop::spawn_client_on(&attacker.display, &script, &agent.socket(), &req, &answer);
    let window = person.wait_for_window("cryptoid-agent");
    assert!(
        attacker.xdotool(&["search", "--onlyvisible", "--name", "cryptoid-agent"]).is_none(),
        "the dialog must not appear on the client's display"
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    click_allow(&person, &window);
    let a = answer_of(&answer);
    let _ = client.kill();
    let _ = client.wait();
    assert!(a["result"]["account_data"].is_array(), "{a}");
}

fn start_dunst(x: &Xvfb, bus: &Bus) -> Child {
    let child = Command::new("dunst")
        .env("DISPLAY", &x.display)
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dunst");
    wait_for(20, "dunst on the bus", || dunstctl(bus, &["count", "displayed"]));
    child
}

fn dunstctl(bus: &Bus, args: &[&str]) -> Option<String> {
    let out =
        Command::new("dunstctl").args(args).env("DBUS_SESSION_BUS_ADDRESS", &bus.address).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn pinentry_gtk_on_the_desktop_confirms_a_power_levels_change_and_dunst_tells_what_was_signed() {
    if !desktop::available(&["Xvfb", "xdotool", "import", "pinentry-gtk-2", "dunst", "dunstctl", "python3"]) {
        return;
    }
    let x = Xvfb::start();
    let bus = Bus::start();
    let mut dunst = start_dunst(&x, &bus);
    let config = format!("{POLICY}[notifications]\nnotify_signed = true\n");
    let mut agent = Agent::start_on_bus(&bus.address, Some(&config));
    agent.kill9();
    agent.env = vec![("CRYPTOID_PINENTRY".into(), "/usr/bin/pinentry-gtk-2".into())];
    agent.spawn().expect("restart with pinentry");
    let mut c = agent.unlocked();
    let room = "!desk:example.org";
    let k = create(&mut c, Some(room));
    // A power-levels change that gives @bob 100: the policy asks.
    let pdu = pdus::state(
        &k,
        room,
        "m.room.power_levels",
        "",
        &format!(r#"{{"users":{{"{k}":100,"@bob:example.org":100}},"users_default":0}}"#),
        &pdus::event_id('p'),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let request = dir.path().join("request");
    let line = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "sign.pdu",
        "params": {"room_version": super::agent_sign::RV, "pdu": serde_json::from_str::<serde_json::Value>(&json::to_canonical_string(&pdu)).expect("pdu")}});
    std::fs::write(&request, line.to_string()).expect("request");
    let answer = dir.path().join("answer");
    // The client runs on the desktop (its DISPLAY), in the background.
    let script = client_script(dir.path());
    let mut client = desktop::spawn_client_on(&x.display, &script, &agent.socket(), &request, &answer);
    let window = x.wait_for_window("cryptoid-agent");
    std::thread::sleep(std::time::Duration::from_millis(700)); // drawn
    let shot =
        std::env::var_os("CRYPTOID_SCREENSHOT").map_or_else(|| dir.path().join("dialog.png"), Into::into);
    x.screenshot(Path::new(&shot));
    assert!(std::fs::metadata(&shot).expect("screenshot").len() > 1000);
    // The person reads it and clicks "Allow".
    click_allow(&x, &window);
    let a = answer_of(&answer);
    let _ = client.kill();
    let _ = client.wait();
    assert!(a["result"]["signature"].is_string(), "{a}");
    // dunst was told.
    // Shown ones move to the history when closed.
    let history = wait_for(10, "the notification", || {
        dunstctl(&bus, &["close-all"]);
        dunstctl(&bus, &["history"]).filter(|h| h.contains("signed m.room.power_levels"))
    });
    assert!(history.contains("cryptoid-agent"), "{history}");
    let _ = dunst.kill();
    let _ = dunst.wait();
}

/// `cryptoidctl unlock` with no controlling terminal, on display `x` with
/// pinentry-gtk-2.
fn unlock_with_no_terminal(agent: &Agent, x: &Xvfb) -> Child {
    Command::new("setsid") // no controlling terminal
        .arg(cryptoid_tests::bin("cryptoidctl"))
        .args(["--socket", agent.socket().to_str().expect("utf-8"), "unlock"])
        .env("DISPLAY", &x.display)
        .env("CRYPTOID_PINENTRY", "/usr/bin/pinentry-gtk-2")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cryptoidctl")
}

/// `cryptoidctl unlock` started with no terminal (a launcher, a desktop
/// session) asks for the passphrase in pinentry on the desktop; the person
/// types it there.
#[test]
fn cryptoidctl_unlock_with_no_terminal_asks_in_pinentry_on_the_desktop() {
    if !desktop::available(&["Xvfb", "xdotool", "pinentry-gtk-2", "setsid"]) {
        return;
    }
    let x = Xvfb::start();
    let mut agent = Agent::start_with(&[], Some(POLICY));
    agent.unlocked(); // the passphrase is set
    agent.restart(); // and the agent locked again
    let mut unlock = unlock_with_no_terminal(&agent, &x);
    let window = x.wait_for_window("cryptoidctl");
    std::thread::sleep(std::time::Duration::from_millis(500));
    // Typed as a person does: into the focused dialog (it grabs the
    // keyboard).
    x.xdotool(&["windowfocus", &window]);
    x.xdotool(&["type", cryptoid_tests::agent::PASSPHRASE]).expect("type");
    x.xdotool(&["key", "Return"]).expect("enter");
    let out = wait_for(30, "cryptoidctl to finish", || unlock.try_wait().ok().flatten());
    let mut stdout = String::new();
    let _ = std::io::Read::read_to_string(&mut unlock.stdout.take().expect("stdout"), &mut stdout);
    assert!(out.success(), "{stdout}");
    assert!(stdout.contains("unlocked"), "{stdout}");
    assert!(
        !agent
            .client()
            .call::<cryptoid_protocol::wire::agent::Hello>(&cryptoid_protocol::wire::NoParams {})
            .expect("hello")
            .locked
    );
}

/// Regression: pinentry sends a passphrase longer than one Assuan line in
/// several `D` lines, and only the last was kept: the first `cryptoidctl
/// unlock` set a cut passphrase and the person was locked out. Typed into
/// pinentry-gtk-2 twice (set, repeat), then the whole passphrase unlocks
/// the restarted agent and a cut one does not.
#[test]
fn a_long_passphrase_typed_into_pinentry_unlocks() {
    use cryptoid_protocol::wire::agent::{Unlock, UnlockParams};
    if !desktop::available(&["Xvfb", "xdotool", "pinentry-gtk-2", "setsid"]) {
        return;
    }
    let x = Xvfb::start();
    let mut agent = Agent::start_with(&[], Some(POLICY));
    let long: String = (0..1500).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    let mut unlock = unlock_with_no_terminal(&agent, &x);
    for round in 0..2 {
        // The dialog, or cryptoidctl's own word on why there is none.
        let window = wait_for(20, &format!("pinentry's dialog {round}"), || {
            if let Ok(Some(status)) = unlock.try_wait() {
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(&mut unlock.stderr.take().expect("stderr"), &mut err);
                panic!("cryptoidctl ended ({status}) before dialog {round}: {err}");
            }
            x.xdotool(&["search", "--onlyvisible", "--name", "cryptoidctl"])
                .and_then(|s| s.lines().next().map(str::to_owned))
        });
        std::thread::sleep(std::time::Duration::from_millis(500));
        x.xdotool(&["windowfocus", &window]);
        // In chunks, letting the dialog keep up: an X server starved of CPU
        // drops keystrokes sent faster than the client reads them.
        for chunk in long.as_bytes().chunks(150) {
            x.xdotool(&["type", "--delay", "1", std::str::from_utf8(chunk).expect("ascii")]).expect("type");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        x.xdotool(&["key", "Return"]).expect("enter");
        // This dialog closes; the next ("Repeat it") may already be open
        // under the same name, so it is this window that must be gone. A
        // loaded machine takes its time over 1,500 keystrokes.
        wait_for(60, &format!("dialog {round} to close"), || {
            let open = x.xdotool(&["search", "--onlyvisible", "--name", "cryptoidctl"]).unwrap_or_default();
            (!open.lines().any(|w| w == window)).then_some(())
        });
    }
    let out = wait_for(30, "cryptoidctl to finish", || unlock.try_wait().ok().flatten());
    let mut stderr = String::new();
    let _ = std::io::Read::read_to_string(&mut unlock.stderr.take().expect("stderr"), &mut stderr);
    assert!(out.success(), "{stderr}");
    agent.restart();
    let mut c = agent.client();
    let cut = UnlockParams { passphrase: Some(long[..1000].to_owned()), backend: None, pin: None };
    assert!(c.call::<Unlock>(&cut).is_err(), "a cut passphrase must not unlock");
    let whole = UnlockParams { passphrase: Some(long), backend: None, pin: None };
    assert!(!c.call::<Unlock>(&whole).expect("the whole passphrase unlocks").locked);
}
