//! A newcomer's first minute, typed as a person types it: the README's
//! first command (`packaging/first-run.sh`) in one terminal, then in
//! another `unlock`, `keys create`, `pdu example` and `sign`, under each
//! pinentry a Debian user may have as `pinentry` (curses, tty, gtk-2 with
//! no display, which falls back to curses) and with none.
//!
//! Guards the regression where the agent's pinentry and `cryptoidctl`'s
//! own "Allow? [y/N]" asked on one terminal at once: each keystroke went to
//! one of them, and the person's first answer decided nothing.

use cryptoid_tests::desktop::{self, Tmux};
use std::path::{Path, PathBuf};

const ROOM: &str = "!room:example.org";
const PASSPHRASE: &str = "first minute passphrase";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Which program is `pinentry` on the agent's `PATH`; `None`: no pinentry.
fn first_minute(pinentry: Option<&str>) {
    let mut needed = vec!["tmux", "python3"];
    needed.extend(pinentry);
    if !desktop::available(&needed) {
        return;
    }
    let root = root();
    let release = root.join("target/release/cryptoid-agent");
    if !release.exists() && std::env::var("CRYPTOID_TEST_DESKTOP").is_err() {
        eprintln!("SKIPPED: no release build (tests/run.sh builds it in its first-run stage)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let bin = d.join("bin");
    std::fs::create_dir(&bin).expect("bin");
    let choice = match pinentry {
        Some(p) => {
            let program = which(p);
            std::os::unix::fs::symlink(&program, bin.join("pinentry")).expect("symlink");
            "-u CRYPTOID_PINENTRY".to_owned()
        }
        // /usr/bin/pinentry may exist here: turn it off as a user would.
        None => "CRYPTOID_PINENTRY=none".to_owned(),
    };
    // The README's commands run from a checkout: `./target/release/…`.
    std::os::unix::fs::symlink(root.join("target"), d.join("target")).expect("target link");
    std::fs::create_dir(d.join("config")).expect("config dir");
    let sock = d.join("agent.sock");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    // No display anywhere: the terminal is all there is.
    let clean = "-u DISPLAY -u WAYLAND_DISPLAY -u XDG_RUNTIME_DIR -u CRYPTOID_AUTH_SOCK -u CRYPTOID_ASKPASS";
    let shell = format!(
        "cd {d} && exec env {clean} -u CRYPTOID_PINENTRY XDG_CONFIG_HOME={d}/config PATH='{path}' \
         CRYPTOID_AUTH_SOCK={sock} PS1='ready$ ' bash --norc --noprofile",
        d = d.display(),
        sock = sock.display(),
    );
    let term = Tmux::start(&shell, &[]);
    let agent_cmd = format!(
        "cd {root} && env {clean} {choice} XDG_CONFIG_HOME={d}/config PATH='{path}' \
         packaging/first-run.sh --no-dbus --socket {sock} --data-dir {d}/data; sleep 600",
        root = root.display(),
        d = d.display(),
        sock = sock.display(),
    );
    term.open_window("agent", &agent_cmd);
    desktop::wait_for(300, "the agent to listen", || {
        term.screen_of("agent").contains("CRYPTOID_AUTH_SOCK=").then_some(())
    });

    // unlock: the first one sets the passphrase, asked twice, no echo.
    term.wait_for_text("ready$");
    term.keys(&["./target/release/cryptoidctl unlock; echo \"step1\" \"rc=$?\"", "Enter"]);
    term.wait_for_text("New keystore passphrase:");
    term.keys(&["-l", PASSPHRASE]);
    term.keys(&["Enter"]);
    term.wait_for_text("Repeat it:");
    term.keys(&["-l", PASSPHRASE]);
    term.keys(&["Enter"]);
    let screen = term.wait_for_text_within(10, "step1 rc=");
    assert!(screen.contains("step1 rc=0") && screen.contains("passphrase set; unlocked"), "{screen}");

    // keys create: an unknown client's first request is confirmed. One
    // question on this terminal, and the first answer decides it.
    term.keys(&[
        &format!("./target/release/cryptoidctl keys create --room '{ROOM}'; echo \"step2\" \"rc=$?\""),
        "Enter",
    ]);
    term.wait_for_text_within(10, "Allow? [y/N]");
    // A pinentry started beside it would be on screen well within this.
    std::thread::sleep(std::time::Duration::from_millis(2000));
    let screen = term.screen();
    assert_one_question(&screen);
    term.keys(&["y", "Enter"]);
    let screen = term.wait_for_text_within(10, "step2 rc=");
    assert!(screen.contains("step2 rc=0"), "the first answer did not decide: {screen}");
    assert!(!screen.contains("could not answer"), "{screen}");

    // An example PDU from the new cryptoID, then sign it.
    let example = format!(
        "C=$(./target/release/cryptoidctl --json keys list --room '{ROOM}' | python3 -c \
         'import json,sys; print(json.load(sys.stdin)[\"keys\"][0][\"cryptoid\"])') && \
         ./target/release/cryptoidctl pdu example --room '{ROOM}' --sender \"$C\" > pdu.json; echo \"step3\" \"rc=$?\""
    );
    term.keys(&[&example, "Enter"]);
    let screen = term.wait_for_text_within(10, "step3 rc=");
    assert!(screen.contains("step3 rc=0"), "{screen}");
    term.keys(&[
        "./target/release/cryptoidctl sign --room-version org.matrix.msc4080 pdu.json > signed.json; echo \"step4\" \"rc=$?\"",
        "Enter",
    ]);
    let screen = term.wait_for_text_within(10, "step4 rc=");
    assert!(screen.contains("step4 rc=0"), "{screen}");
    assert_one_question(&screen);
    let signed = std::fs::read_to_string(d.join("signed.json")).expect("signed.json");
    assert!(signed.contains("\"signatures\""), "{signed}");
    drop(term);
}

/// The screen shows `cryptoidctl`'s question once and no pinentry
/// (pinentry-curses draws its Deny button, pinentry-tty asks `[ad]?`).
fn assert_one_question(screen: &str) {
    assert!(screen.matches("Allow? [y/N]").count() <= 1, "{screen}");
    assert!(!screen.contains("Deny") && !screen.contains("[ad]"), "a second asker on the terminal: {screen}");
}

fn which(program: &str) -> PathBuf {
    let out =
        std::process::Command::new("sh").args(["-c", &format!("command -v {program}")]).output().expect("sh");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

#[test]
fn first_minute_with_pinentry_curses() {
    first_minute(Some("pinentry-curses"));
}

#[test]
fn first_minute_with_pinentry_tty() {
    first_minute(Some("pinentry-tty"));
}

#[test]
fn first_minute_with_pinentry_gtk_2_and_no_display() {
    first_minute(Some("pinentry-gtk-2"));
}

#[test]
fn first_minute_with_no_pinentry() {
    first_minute(None);
}
