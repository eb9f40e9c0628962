//! `cryptoidctl` against a real agent: commands, JSON output, exit codes.

use super::agent_sign::assert_verifies;
use cryptoid_protocol::json::{self, Value};
use cryptoid_tests::agent::{Agent, PASSPHRASE};
use cryptoid_tests::{pdus, run, stderr, stdout};
use std::process::{Command, Output};

fn json_out(o: &Output) -> Value {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), stderr(o));
    json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

fn field<'a>(v: &'a Value, k: &str) -> &'a Value {
    v.as_object().and_then(|o| o.get(k)).unwrap_or_else(|| panic!("no {k} in {v}"))
}

#[test]
fn key_management_and_signing_from_the_command_line() {
    let agent = Agent::start();
    let status = json_out(&agent.ctl(&["status", "--json"], b""));
    assert_eq!(field(&status, "locked"), &Value::Bool(true));

    let out = agent.ctl(&["keys", "create", "--room", "!r:x"], b"");
    assert_eq!(out.status.code(), Some(4), "locked: {}", stderr(&out));
    assert!(stderr(&out).contains("[locked]"));

    let out = agent.ctl(&["unlock", "--passphrase-file", "-"], format!("{PASSPHRASE}\n").as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "passphrase set; unlocked");

    let key = json_out(&agent.ctl(&["--json", "keys", "create", "--room", "!r:x"], b""));
    let cryptoid = field(&key, "cryptoid").as_str().expect("cryptoid").to_owned();
    let table = stdout(&agent.ctl(&["keys", "list"], b""));
    assert!(table.starts_with("CRYPTOID") && table.contains(&cryptoid) && table.contains("!r:x"), "{table}");

    let pdu = json::to_canonical_string(&pdus::message(&cryptoid, "!r:x", "from the CLI"));
    let out = agent.ctl(&["sign", "--room-version", "org.matrix.msc4080"], pdu.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_verifies(&json::from_str(&stdout(&out)).expect("signed PDU"), &cryptoid);

    // --intent: inline JSON or a file; a PDU that differs is refused.
    let asked =
        r#"{"room_id":"!r:x","type":"m.room.message","content":{"body":"from the CLI","msgtype":"m.text"}}"#;
    let out = agent.ctl(&["sign", "--room-version", "org.matrix.msc4080", "--intent", asked], pdu.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let other = pdus::message(&cryptoid, "!r:x", "something else");
    let out = agent.ctl(
        &["sign", "--room-version", "org.matrix.msc4080", "--intent", asked],
        json::to_canonical_string(&other).as_bytes(),
    );
    assert!(!out.status.success() && stderr(&out).ends_with("[policy_denied]\n"), "{}", stderr(&out));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("intent.json");
    std::fs::write(&file, asked).expect("write");
    let out = agent.ctl(
        &["sign", "--room-version", "org.matrix.msc4080", "--intent", file.to_str().expect("path")],
        pdu.as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let otks = json_out(&agent.ctl(&["--json", "otk", "generate", "60"], b""));
    assert_eq!(field(&otks, "keys").as_array().map(Vec::len), Some(60));
    let body = json_out(&agent.ctl(&["otk", "upload-body"], b""));
    assert_eq!(field(&body, "one_time_cryptoids").as_object().map(|o| o.len()), Some(60));
    let first = field(&otks, "keys").as_array().and_then(|a| a.first()).cloned().expect("one key");
    let otk = field(&first, "cryptoid").as_str().expect("cryptoid").to_owned();
    let claimed = json_out(&agent.ctl(&["--json", "otk", "claim", "--room", "!inv:x", &otk], b""));
    assert_eq!(field(&claimed, "state").as_str(), Some("bound"));

    let out = agent.ctl(&["journal", "verify"], b"");
    assert!(out.status.success() && stdout(&out).starts_with("ok:"), "{}", stderr(&out));
    let tail = stdout(&agent.ctl(&["journal", "tail", "-n", "3"], b""));
    assert_eq!(tail.lines().count(), 3, "{tail}");
    assert!(tail.contains("otk.claim ok"), "{tail}");

    let out = agent.ctl(&["keys", "delete", &cryptoid], b"");
    assert!(out.status.success() && stdout(&out).contains("retired"), "{}", stdout(&out));
    let out = agent.ctl(&["lock"], b"");
    assert!(out.status.success());
    let out = agent.ctl(&["sign", "--room-version", "org.matrix.msc4080"], pdu.as_bytes());
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn unreachable_agent_is_exit_3() {
    let out = run(
        Command::new(cryptoid_tests::bin("cryptoidctl")).args([
            "--socket",
            "/nonexistent/agent.sock",
            "status",
        ]),
        b"",
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("cannot connect to the agent at /nonexistent/agent.sock"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn wrong_passphrase_is_exit_6_with_the_kind() {
    let agent = Agent::start();
    agent.unlocked();
    let out = agent.ctl(&["unlock", "--passphrase-file", "-"], b"wrong\n");
    assert_eq!(out.status.code(), Some(6));
    assert!(stderr(&out).ends_with("[bad_passphrase]\n"), "{}", stderr(&out));
}

#[test]
fn bench_reports_rates_and_floor() {
    let agent = Agent::start();
    agent.unlocked();
    let out = agent.ctl(&["bench", "--connections", "2", "--seconds", "1", "--json"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    // Rates are floats: read with serde_json, not the canonical parser.
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("bench JSON");
    for k in ["sigs_per_sec", "p50_us", "p99_us", "floor_sigs_per_sec"] {
        assert!(v[k].as_f64().is_some_and(|x| x > 0.0), "{k} in {v}");
    }
    assert_eq!(v["errors"].as_u64(), Some(0));
    assert_eq!(v["connections"].as_u64(), Some(2));
    // The throwaway key is retired afterwards.
    let keys = json_out(&agent.ctl(&["--json", "keys", "list", "--room", "!bench:localhost"], b""));
    let states: Vec<&str> = field(&keys, "keys")
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k.as_object()?.get("state")?.as_str())
        .collect();
    assert_eq!(states, ["retired"]);
}

/// The peers of the performance figures, measured by the same client:
/// OpenSSH's ssh-agent (a real one, with an Ed25519 key) and the agent's
/// own round trip. Rates are not asserted (no timed assertions in tests).
#[test]
fn bench_measures_ssh_agent_and_the_agent_round_trip_beside_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("ssh.sock");
    let mut ssh_agent = Command::new("ssh-agent")
        .arg("-a")
        .arg(&sock)
        .arg("-D")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ssh-agent (package openssh-client)");
    let key = dir.path().join("id");
    assert!(run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key), b"")
        .status
        .success());
    cryptoid_tests::desktop::wait_for(10, "ssh-agent's socket", || sock.exists().then_some(()));
    assert!(run(Command::new("ssh-add").arg("-q").arg(&key).env("SSH_AUTH_SOCK", &sock), b"")
        .status
        .success());
    let agent = Agent::start();
    agent.unlocked();
    for (args, peer, op) in [
        (vec!["--ssh-agent", sock.to_str().expect("p"), "--ssh-op", "sign"], "ssh-agent", "sign"),
        (
            vec!["--ssh-agent", sock.to_str().expect("p"), "--ssh-op", "identities"],
            "ssh-agent",
            "request_identities",
        ),
        (vec!["--op", "hello"], "cryptoid-agent", "agent.hello"),
    ] {
        let out = agent.ctl(&[&["bench", "--seconds", "1", "--json"][..], &args].concat(), b"");
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("bench JSON");
        assert_eq!((v["peer"].as_str(), v["op"].as_str()), (Some(peer), Some(op)), "{v}");
        assert!(v["ops"].as_u64().is_some_and(|n| n > 0) && v["errors"] == 0, "{v}");
    }
    // Pipelined signing: 8 requests in flight, every answer matched.
    let out = agent.ctl(&["bench", "--seconds", "1", "--json", "--pipeline", "8"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("bench JSON");
    assert_eq!((v["pipeline"].as_u64(), v["errors"].as_u64()), (Some(8), Some(0)), "{v}");
    assert!(v["signatures"].as_u64().is_some_and(|n| n >= 8), "{v}");
    let _ = ssh_agent.kill();
    let _ = ssh_agent.wait();
}

#[test]
fn setup_runs_without_questions_for_scripts() {
    let agent = Agent::start();
    let out = agent.ctl(
        &["setup", "--backend", "soft", "--passphrase-file", "-", "--one-time-keys", "60", "--yes"],
        format!("{PASSPHRASE}\n").as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("made 60 one-time cryptoIDs"), "{text}");
    assert!(text.contains(&format!("export CRYPTOID_AUTH_SOCK={}", agent.socket().display())), "{text}");
    assert!(text.contains("systemctl --user enable --now cryptoid-agent.socket"), "{text}");
    let status = json_out(&agent.ctl(&["status", "--json"], b""));
    assert_eq!(field(&status, "locked"), &Value::Bool(false));
    let otks = json_out(&agent.ctl(&["--json", "otk", "list"], b""));
    assert_eq!(field(&otks, "keys").as_array().map(Vec::len), Some(60));
    // Run again on the locked agent: it unlocks with the same passphrase.
    agent.ctl(&["lock"], b"");
    let out = agent.ctl(
        &["setup", "--passphrase-file", "-", "--one-time-keys", "0", "--yes"],
        format!("{PASSPHRASE}\n").as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // A YubiKey that is not there is named in the error.
    let out = agent.ctl(
        &["setup", "--backend", "yubikey", "--serial", "999999", "--pin-file", "-", "--yes"],
        b"123456\n",
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("999999"), "{}", stderr(&out));
}

#[test]
fn setup_without_an_agent_says_how_to_start_it() {
    let out = run(
        Command::new(cryptoid_tests::bin("cryptoidctl")).args([
            "--socket",
            "/nonexistent/agent.sock",
            "setup",
            "--yes",
        ]),
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("systemctl --user enable --now cryptoid-agent.socket"), "{}", stderr(&out));
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(Command::new(cryptoid_tests::bin("cryptoidctl")).args(["completions", shell]), b"");
        assert!(out.status.success());
        assert!(stdout(&out).contains("cryptoidctl"), "{shell}");
    }
    let out = run(Command::new(cryptoid_tests::bin("cryptoidctl")).arg("man-page"), b"");
    assert!(stdout(&out).starts_with(".ie") && stdout(&out).contains(".TH cryptoidctl 1"));
    let out = run(Command::new(cryptoid_tests::bin("cryptoid-agent")).arg("--print-man-page"), b"");
    assert!(stdout(&out).contains(".TH cryptoid-agent 1"));
}

/// Regression: a `keys.create` nobody confirmed said "nothing was signed",
/// which is not what did not happen. Each method's refusal names its own
/// undone work; a signature's still says nothing was signed (control).
#[test]
fn a_refusal_names_what_did_not_happen_for_the_method_at_hand() {
    let ctl = cryptoid_tests::bin("cryptoidctl");
    let config = format!(
        "[policy]\nunknown_clients = \"confirm\"\nconfirm_timeout_secs = 1\n\
         [[policy.clients]]\nexe = {:?}\nsign = \"confirm\"\nmanage = \"confirm\"\n\
         [[policy.clients]]\nexe = {:?}\nsign = \"allow\"\nmanage = \"allow\"\n",
        ctl.display().to_string(),
        std::env::current_exe().expect("exe").display().to_string(),
    );
    let agent = Agent::start_with(&[], Some(&config));
    let mut c = agent.unlocked();
    let out = agent.ctl(&["keys", "create", "--room", "!r:x"], b"");
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("no cryptoID was created") && !err.contains("signed"), "{err}");
    assert!(err.ends_with("[confirmation_timeout]\n"), "{err}");
    let key = super::agent_sign::create(&mut c, Some("!r:x"));
    let pdu = json::to_canonical_string(&pdus::message(&key, "!r:x", "unconfirmed"));
    let out = agent.ctl(&["sign", "--room-version", "org.matrix.msc4080"], pdu.as_bytes());
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing was signed"), "{}", stderr(&out));
    // `pdu example` checks its sender.
    let out = agent.ctl(&["pdu", "example", "--room", "!r:x", "--sender", "not a key"], b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--sender must be a cryptoID"), "{}", stderr(&out));
}
