//! Harness for the end-to-end tests: finds the real binaries built by
//! `cargo build --workspace --bins` and runs them.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The path of a workspace binary next to the test executable
/// (`target/<profile>/<name>`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build the binaries first with `cargo build --workspace --bins`",
        path.display()
    );
    path
}

/// Runs `cryptoidctl` with `args`, feeding `stdin`.
pub fn ctl(args: &[&str], stdin: &[u8]) -> Output {
    run(Command::new(bin("cryptoidctl")).args(args), stdin)
}

/// Runs a prepared command to completion with `stdin` as its input.
pub fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    // A child that exits early closes its stdin; that is not a test failure.
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin);
    }
    child.wait_with_output().expect("wait")
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The shared public vectors, as copied into the protocol crate.
/// Asserts an agent error's identity: `data.kind` and `data.cause`.
#[track_caller]
pub fn assert_refused(
    err: &cryptoid_protocol::client::ClientError,
    kind: cryptoid_protocol::wire::ErrorKind,
    cause: &str,
) {
    assert_eq!((err.kind(), err.cause()), (Some(kind), Some(cause)), "{err}");
}

/// Asserts a denial by the policy whose decisive reasons name `rule` (a
/// rule, a field, a depth): `data.reasons` are what the policy decided on.
#[track_caller]
pub fn assert_denied(err: &cryptoid_protocol::client::ClientError, rule: &str) {
    assert_eq!(err.kind(), Some(cryptoid_protocol::wire::ErrorKind::PolicyDenied), "{err}");
    assert!(err.reasons().iter().any(|r| r.contains(rule)), "{rule:?} not in the reasons of {err:?}");
}

/// Asserts that an error's message names `fact`: a serial number or a count
/// the person needs and no field carries. The identity of an error is
/// checked with [`assert_refused`], never with its text.
#[track_caller]
pub fn assert_names(err: &impl std::fmt::Display, fact: &str) {
    assert!(err.to_string().contains(fact), "{fact:?} not named in: {err}");
}

pub mod vectors {
    pub const SPEC: &str = include_str!("../../protocol/tests/vectors/spec.json");
    pub const MSC4080: &str = include_str!("../../protocol/tests/vectors/msc4080.json");
    pub const SPEC_SEED: &str = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
    pub const SPEC_PUBLIC: &str = "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI";
}

pub mod agent;
pub mod desktop;
pub mod history;
pub mod interop;
pub mod raw;
pub mod swtpm;
pub mod vcard;

/// PDUs as a homeserver would build them.
pub mod pdus {
    use cryptoid_protocol::json::{self, Value};

    /// A fake but well-formed event ID for `prev_events`/`auth_events`.
    pub fn event_id(c: char) -> String {
        format!("${}", std::iter::repeat_n(c, 43).collect::<String>())
    }

    /// The wall clock in milliseconds, as a homeserver stamps events.
    pub fn now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// An unsigned `m.room.message` proto-PDU (no hashes, like a client
    /// building one; the agent adds them).
    pub fn message(sender: &str, room: &str, body: &str) -> Value {
        let text = format!(
            r#"{{"auth_events":["{a}"],"content":{{"body":{body},"msgtype":"m.text"}},"depth":7,"origin":"{sender}","origin_server_ts":{ts},"prev_events":["{p}"],"room_id":"{room}","sender":"{sender}","type":"m.room.message","unsigned":{{}}}}"#,
            a = event_id('a'),
            p = event_id('b'),
            body = json::Value::from(body),
            ts = now_ms(),
        );
        json::from_str(&text).expect("test PDU")
    }

    /// Chains `events` as a homeserver chains a createRoom batch: depth 1,
    /// 2, …, each `prev_events` naming exactly the event before it (the
    /// first none), and `auth_events` the batch's create, creator's join and
    /// power levels before it (as a server picks them; an event whose own
    /// `auth_events` are set keeps them). Returns the events and their IDs.
    pub fn chain(events: Vec<Value>, rv: &cryptoid_protocol::RoomVersion) -> (Vec<Value>, Vec<String>) {
        let mut out = Vec::with_capacity(events.len());
        let mut ids: Vec<String> = Vec::with_capacity(events.len());
        let mut auth: Vec<Value> = Vec::new();
        for (i, e) in events.into_iter().enumerate() {
            let mut o = e.into_object().expect("an event object");
            o.insert("depth".into(), Value::Int(json::Int::new(i as i64 + 1).expect("depth")));
            let prev = ids.last().map(|p| vec![Value::from(p.as_str())]).unwrap_or_default();
            o.insert("prev_events".into(), Value::Array(prev));
            if o.get("auth_events").and_then(Value::as_array).is_some_and(Vec::is_empty) {
                o.insert("auth_events".into(), Value::Array(auth.clone()));
            }
            let ty = o.get("type").and_then(Value::as_str).unwrap_or("").to_owned();
            let creator_join = ty == "m.room.member" && o.get("state_key") == o.get("sender");
            let id = cryptoid_protocol::event::prepare(o.clone(), rv)
                .expect("prepare")
                .event_id()
                .expect("event id")
                .to_owned();
            if i == 0 || (creator_join && auth.len() == 1) || (ty == "m.room.power_levels" && auth.len() == 2)
            {
                auth.push(Value::from(id.as_str()));
            }
            ids.push(id);
            out.push(Value::Object(o));
        }
        (out, ids)
    }

    /// A createRoom batch for `room` by `creator`: create, the creator's
    /// join, power levels (`power`, JSON) and `extra` state
    /// `(type, state_key, content)`, chained.
    pub fn create_room(
        creator: &str,
        room: &str,
        power: &str,
        extra: &[(&str, &str, &str)],
    ) -> (Vec<Value>, Vec<String>) {
        let rv = cryptoid_protocol::RoomVersion::MSC4080;
        let mut events = vec![
            state(
                creator,
                room,
                "m.room.create",
                "",
                &format!(r#"{{"creator":"{creator}","room_version":"{}"}}"#, rv.id()),
                "",
            ),
            state(creator, room, "m.room.member", creator, r#"{"membership":"join"}"#, ""),
            state(creator, room, "m.room.power_levels", "", power, ""),
        ];
        for (ty, sk, content) in extra {
            events.push(state(creator, room, ty, sk, content, ""));
        }
        chain(events, &rv)
    }

    /// The power levels a homeserver's createRoom gives a new room of room
    /// version 1–11 (Synapse's defaults, private presets): `creator` at 100.
    pub fn default_power(creator: &str) -> String {
        format!(
            r#"{{"ban":50,"events":{{"m.room.avatar":50,"m.room.canonical_alias":50,"m.room.encryption":100,"m.room.history_visibility":100,"m.room.name":50,"m.room.power_levels":100,"m.room.server_acl":100,"m.room.tombstone":100}},"events_default":0,"historical":100,"invite":0,"kick":50,"redact":50,"state_default":50,"users":{{"{creator}":100}},"users_default":0}}"#
        )
    }

    /// A state event of `ty` with `state_key` and `content`.
    pub fn state(sender: &str, room: &str, ty: &str, state_key: &str, content: &str, prev: &str) -> Value {
        let text = format!(
            r#"{{"auth_events":[],"content":{content},"depth":1,"origin_server_ts":{ts},"prev_events":[{prev}],"room_id":"{room}","sender":"{sender}","state_key":"{state_key}","type":"{ty}"}}"#,
            ts = now_ms(),
            prev = if prev.is_empty() { String::new() } else { format!("\"{prev}\"") },
        );
        json::from_str(&text).expect("test PDU")
    }
}
