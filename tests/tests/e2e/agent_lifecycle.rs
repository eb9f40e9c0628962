//! Start, restart, lock, shutdown, file modes, other users.

use super::agent_sign::{assert_verifies, create, sign, soft_protection, try_sign};
use cryptoid_protocol::wire::agent::{Hello, Passwd, PasswdParams, Protection, Unlock, UnlockParams};
use cryptoid_protocol::wire::journal::{Tail, TailParams, Verify};
use cryptoid_protocol::wire::keys::{List, ListParams};
use cryptoid_protocol::wire::{ErrorKind, NoParams};
use cryptoid_tests::agent::{exists, Agent, PASSPHRASE};
use cryptoid_tests::pdus;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn unlock(
    c: &mut cryptoid_protocol::client::blocking::Client,
    p: &str,
) -> Result<(), cryptoid_protocol::client::ClientError> {
    c.call::<Unlock>(&UnlockParams { passphrase: Some(p.into()), backend: None, pin: None }).map(|_| ())
}

#[test]
fn restart_keeps_keys_and_starts_locked() {
    let mut agent = Agent::start();
    let mut c = agent.client();
    assert!(!c.call::<Hello>(&NoParams {}).expect("hello").passphrase_set);
    let err = c.call::<cryptoid_protocol::wire::keys::Create>(&Default::default()).expect_err("locked");
    assert_eq!(err.kind(), Some(ErrorKind::Locked));
    unlock(&mut c, PASSPHRASE).expect("first unlock sets the passphrase");
    assert_eq!(soft_protection(&mut c), (Protection::Passphrase, true), "hello knows at once");
    let k = create(&mut c, Some("!r:x"));
    let before = sign(&mut c, pdus::message(&k, "!r:x", "before"));

    agent.restart();
    let mut c = agent.client();
    let hello = c.call::<Hello>(&NoParams {}).expect("hello");
    assert!(hello.locked && hello.passphrase_set);
    // Public data is readable while locked; signing is not.
    let listed = c.call::<List>(&ListParams::default()).expect("list while locked");
    assert_eq!(listed.keys.len(), 1);
    let err = try_sign(&mut c, pdus::message(&k, "!r:x", "x")).expect_err("locked");
    assert_eq!(err.kind(), Some(ErrorKind::Locked));
    assert_eq!(unlock(&mut c, "wrong").expect_err("wrong passphrase").kind(), Some(ErrorKind::BadPassphrase));
    unlock(&mut c, PASSPHRASE).expect("unlock");
    let after = sign(&mut c, pdus::message(&k, "!r:x", "after"));
    assert_verifies(&after.pdu, &k);
    assert_ne!(before.event_id, after.event_id);

    // Lock again: signing stops.
    c.call::<cryptoid_protocol::wire::agent::Lock>(&NoParams {}).expect("lock");
    let err = try_sign(&mut c, pdus::message(&k, "!r:x", "y")).expect_err("locked");
    assert_eq!(err.kind(), Some(ErrorKind::Locked));
}

#[test]
fn passwd_changes_the_passphrase() {
    let mut agent = Agent::start();
    let mut c = agent.unlocked();
    let k = create(&mut c, Some("!r:x"));
    let err = c
        .call::<Passwd>(&PasswdParams { passphrase: "nope".into(), new_passphrase: "new one".into() })
        .expect_err("wrong old passphrase");
    assert_eq!(err.kind(), Some(ErrorKind::BadPassphrase));
    c.call::<Passwd>(&PasswdParams { passphrase: PASSPHRASE.into(), new_passphrase: "new one".into() })
        .expect("passwd");
    agent.restart();
    let mut c = agent.client();
    assert_eq!(unlock(&mut c, PASSPHRASE).expect_err("old").kind(), Some(ErrorKind::BadPassphrase));
    unlock(&mut c, "new one").expect("new passphrase");
    assert_verifies(&sign(&mut c, pdus::message(&k, "!r:x", "x")).pdu, &k);
}

#[test]
fn sigterm_removes_socket_and_journals_the_stop() {
    let mut agent = Agent::start();
    let mut c = agent.unlocked();
    create(&mut c, Some("!r:x"));
    drop(c);
    assert_eq!(agent.terminate(), Some(0));
    assert!(!exists(&agent.socket()), "socket removed");
    agent.spawn().expect("restart");
    let mut c = agent.client();
    let v = c.call::<Verify>(&NoParams {}).expect("verify");
    assert!(v.ok, "{:?}", v.error);
    let tail = c.call::<Tail>(&TailParams { limit: Some(50), room_id: None }).expect("tail");
    let events: Vec<&str> =
        tail.entries.iter().filter_map(|e| e.as_object()?.get("event")?.as_str()).collect();
    assert_eq!(events, ["agent.started", "agent.stopped", "agent.started"]);
}

#[test]
fn sigterm_right_after_the_announcement_stops_cleanly() {
    // Regression: the signal handlers were installed only when the server
    // first polled its shutdown future, so a SIGTERM in between met the
    // default action (death by signal, socket left behind).
    let mut agent = Agent::start();
    for round in 0..20 {
        assert_eq!(agent.terminate(), Some(0), "round {round}\n{}", agent.log());
        assert!(!exists(&agent.socket()), "socket removed");
        agent.spawn().expect("restart");
    }
}

#[test]
fn stale_socket_is_replaced_but_a_live_agent_is_not() {
    let mut agent = Agent::start();
    // A second agent on the same socket (other data dir) is refused.
    let other = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(cryptoid_tests::bin("cryptoid-agent"))
        .arg("--socket")
        .arg(agent.socket())
        .arg("--data-dir")
        .arg(other.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another agent is serving"), "{out:?}");
    // A second agent on the same data dir is refused too.
    let out = std::process::Command::new(cryptoid_tests::bin("cryptoid-agent"))
        .arg("--socket")
        .arg(other.path().join("s.sock"))
        .arg("--data-dir")
        .arg(agent.data_dir())
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another cryptoid-agent is using"), "{out:?}");
    // A crash leaves the socket file; the next start replaces it.
    agent.kill9();
    assert!(exists(&agent.socket()));
    agent.spawn().expect("starts over a stale socket");
    agent.client().call::<Hello>(&NoParams {}).expect("serving");
}

#[test]
fn files_are_private() {
    let agent = Agent::start();
    let mut c = agent.unlocked();
    create(&mut c, Some("!r:x"));
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&agent.socket()), 0o600);
    assert_eq!(mode(agent.socket().parent().expect("dir")), 0o700);
    let data = agent.data_dir();
    for dir in [data.clone(), data.join("keys"), data.join("journal")] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    for dir in [data.join("keys"), data.join("journal")] {
        for f in std::fs::read_dir(&dir).expect("read dir") {
            let p = f.expect("entry").path();
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
    assert_eq!(mode(&data.join("keystore.json")), 0o600);
    // The passphrase never reaches the disk or the log.
    for f in [data.join("keystore.json"), data.join("journal").join("journal-000001.jsonl")] {
        assert!(!std::fs::read_to_string(&f).expect("read").contains(PASSPHRASE));
    }
    assert!(!agent.log().contains(PASSPHRASE));
}

#[test]
fn no_passphrase_mode_starts_unlocked() {
    let mut agent = Agent::start_with(&["--no-passphrase"], None);
    let mut c = agent.client();
    assert!(!c.call::<Hello>(&NoParams {}).expect("hello").locked);
    assert_eq!(soft_protection(&mut c), (Protection::None, true));
    let k = create(&mut c, Some("!r:x"));
    agent.restart();
    let mut c = agent.client();
    assert_verifies(&sign(&mut c, pdus::message(&k, "!r:x", "x")).pdu, &k);
}

#[test]
fn another_uid_is_refused_and_journaled() {
    if !rustix::process::getuid().is_root() {
        eprintln!("skipped: needs root to run a client as uid 65534 (setpriv --reuid 65534)");
        return;
    }
    if std::process::Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: setpriv (util-linux) is not installed");
        return;
    }
    let agent = Agent::start();
    // Open the way to the socket, as a misconfigured system might: the
    // agent must still refuse by peer credentials.
    for p in [agent.dir.path().to_path_buf(), agent.socket().parent().expect("dir").to_path_buf()] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::set_permissions(agent.socket(), std::fs::Permissions::from_mode(0o666)).expect("chmod");
    // The checkout may not be readable by uid 65534: run a copy of the CLI.
    let ctl = agent.dir.path().join("cryptoidctl");
    std::fs::copy(cryptoid_tests::bin("cryptoidctl"), &ctl).expect("copy cryptoidctl");
    std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(&ctl)
        .arg("--socket")
        .arg(agent.socket())
        .arg("status")
        .output()
        .expect("setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.ends_with("[not_permitted]\n"), "{err}");
    let tail = agent.client().call::<Tail>(&TailParams { limit: Some(5), room_id: None }).expect("tail");
    assert!(
        tail.entries.iter().any(|e| e.as_object().and_then(|o| o.get("outcome")).and_then(|v| v.as_str())
            == Some("not_permitted")),
        "{tail:?}"
    );
}

#[test]
fn systemd_socket_activation() {
    // Like systemd: the launcher binds and listens, passes the socket as fd 3
    // with LISTEN_FDS=1 and LISTEN_PID set to the agent's pid.
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("activated.sock");
    let launcher = r#"
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(16)
os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"#;
    // The system interpreter: a wrapper (pyenv's shim) may run python as its
    // child, and then the pid we signal would not be the agent's.
    let python = if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
    let mut child = std::process::Command::new(python)
        .arg("-c")
        .arg(launcher)
        .arg(&sock)
        .arg(cryptoid_tests::bin("cryptoid-agent"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--socket")
        .arg(dir.path().join("unused.sock"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("agent.log")).expect("log"))
        .spawn()
        .expect("python3 launcher");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("read");
    assert_eq!(line.trim_end(), format!("CRYPTOID_AUTH_SOCK={}", sock.display()));
    let mut c = cryptoid_protocol::client::blocking::Client::connect(&sock).expect("connect");
    assert!(c.call::<Hello>(&NoParams {}).expect("hello").locked);
    assert!(!exists(&dir.path().join("unused.sock")), "--socket is ignored under activation");
    // A SIGTERM right after start-up stops it cleanly (regression: the
    // handlers were installed only when the shutdown future was first
    // polled, and a SIGTERM before that met the default action).
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let status = child.wait().expect("wait");
    let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(exists(&sock), "systemd's socket is left for systemd");
}
