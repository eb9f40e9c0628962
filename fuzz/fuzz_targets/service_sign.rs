//! `sign.pdu`, `sign.batch` and `policy.check` request lines through the
//! agent's real method table (`rpc::handle_line`) on a real `Service` with a
//! software key, a room view and a journal in a temp dir.
//!
//! Inputs are request lines; `@SELF@` in them is replaced by the held key's
//! cryptoID and `@ROOM@` by its room, so seeds reach the signing path.
//! Oracles: no panic; whatever is signed is by the held key, verifies, and
//! breaks none of the rules in [`violation`], stated here independently of
//! the policy code (no confirmation provider exists, so nothing that needs a
//! person's yes may be signed).
#![no_main]

use cryptoid_agent::clock::ManualClock;
use cryptoid_agent::config::Config;
use cryptoid_agent::policy::{Action, PolicyConfig};
use cryptoid_agent::rpc;
use cryptoid_agent::service::{ClientInfo, Service};
use cryptoid_protocol::json::{self, Value};
use cryptoid_protocol::keys::PublicKey;
use cryptoid_protocol::room_version::RoomVersion;
use cryptoid_protocol::wire::keys::CreateParams;
use cryptoid_protocol::wire::rooms::{ObserveParams, ObservedEvent};
use cryptoid_protocol::{event, wire};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

/// The fixed clock: seeds carry this `origin_server_ts`.
const NOW: u64 = 1_800_000_000_000;
const ROOM: &str = "!fuzz:example.org";

struct World {
    /// Highest depth signed or observed, and the events signed so far.
    seen: std::sync::Mutex<(i64, std::collections::HashSet<String>)>,
    rt: tokio::runtime::Runtime,
    svc: Arc<Service>,
    cryptoid: String,
    client: ClientInfo,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        // In RAM: the journal fsyncs every group.
        let dir = tempfile::Builder::new().prefix("cryptoid-fuzz").tempdir_in("/dev/shm").expect("tempdir");
        let policy =
            PolicyConfig { confirm_timeout_secs: 0, unknown_clients: Action::Allow, ..Default::default() };
        let config = Config { policy, ..Default::default() };
        let svc = Service::open(dir.path(), config, true, Arc::new(ManualClock::new(NOW))).expect("service");
        let key =
            svc.keys_create(&CreateParams { room_id: Some(ROOM.into()), ..Default::default() }).expect("key");
        let frontier = ObservedEvent {
            event_id: format!("${}", "f".repeat(43)),
            depth: 100,
            prev_events: vec![],
            event_type: None,
            state_key: None,
            content: None,
        };
        svc.rooms_observe(ObserveParams {
            room_id: ROOM.into(),
            room_version: None,
            events: vec![frontier],
            server_keys: Default::default(),
            pdus: Vec::new(),
        })
        .expect("observe");
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
        let client = ClientInfo { uid: 0, pid: Some(1), exe: Some("/usr/bin/fuzz-client".into()) };
        World {
            seen: std::sync::Mutex::new((100, Default::default())),
            rt,
            svc: Arc::new(svc),
            cryptoid: key.cryptoid,
            client,
            _dir: dir,
        }
    })
}

fn replace(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while !rest.is_empty() {
        if rest.starts_with(from) {
            out.extend_from_slice(to);
            rest = &rest[from.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// Every signed PDU in a successful result is by the held key and verifies.
fn check_signed(w: &World, room_version: &str, pdu: &Value) {
    let pdu = pdu.as_object().expect("a signed PDU is an object");
    assert_eq!(
        pdu.get("sender").and_then(Value::as_str),
        Some(w.cryptoid.as_str()),
        "signed for another sender"
    );
    let rv = RoomVersion::from_id(room_version).expect("signed in a known room version");
    let key = PublicKey::from_base64(&w.cryptoid).expect("key");
    event::verify_event(pdu, &rv, &w.cryptoid, "ed25519:1", &key).expect("the signature verifies");
}

/// State a person must approve (everything but presentation and the
/// sender's own membership).
const PLAIN_STATE: [&str; 6] = [
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.pinned_events",
    "m.room.member",
];

/// Why this signed PDU of `sign.pdu` breaks a rule, if it does.
fn violation(w: &World, version: &str, pdu: &Value, intent: Option<&Value>) -> Option<String> {
    let o = pdu.as_object()?;
    let s = |k: &str| o.get(k).and_then(Value::as_str);
    let ts = o.get("origin_server_ts").and_then(Value::as_int).unwrap_or(0);
    let depth = o.get("depth").and_then(Value::as_int).unwrap_or(0);
    let (max, own) = &*w.seen.lock().expect("seen");
    let content = o.get("content").and_then(Value::as_object);
    let membership = content.and_then(|c| c.get("membership")).and_then(Value::as_str);
    let ty = s("type").unwrap_or("");
    if s("room_id") != Some(ROOM) {
        return Some("signed for another room".into());
    }
    if (ts - NOW as i64).abs() > 300_000 {
        return Some(format!("origin_server_ts {ts} is over 5 minutes off"));
    }
    if depth < max - 50 {
        return Some(format!("depth {depth} more than 50 below {max}"));
    }
    if let Some(sk) = s("state_key") {
        if !PLAIN_STATE.contains(&ty) {
            return Some(format!("{ty} needs a person's yes"));
        }
        if ty == "m.room.member" && (sk != w.cryptoid || membership == Some("ban")) {
            return Some("a membership of someone else".into());
        }
        if ty == "m.room.create" {
            return Some("m.room.create outside a batch".into());
        }
    }
    if ty == "m.room.redaction" {
        // v11 moved the target into the content.
        let v11 = RoomVersion::from_id(version).is_ok_and(|rv| rv.redacts_in_content());
        let holder = if v11 { content } else { Some(o) };
        let target = holder.and_then(|c| c.get("redacts")).and_then(Value::as_str).unwrap_or("");
        if !own.contains(target) {
            return Some(format!("redaction of {target}, not an own event"));
        }
    }
    let want = intent.and_then(Value::as_object);
    for k in ["type", "state_key", "content", "room_id"] {
        if let Some(v) = want.and_then(|i| i.get(k)) {
            if o.get(k) != Some(v) {
                return Some(format!("{k} differs from the intent"));
            }
        }
    }
    None
}

fn remember(w: &World, pdu: &Value) {
    let o = pdu.as_object().expect("object");
    let mut seen = w.seen.lock().expect("seen");
    seen.0 = seen.0.max(o.get("depth").and_then(Value::as_int).unwrap_or(0));
    if let Some(id) = o.get("event_id").and_then(Value::as_str) {
        seen.1.insert(id.to_owned());
    }
}

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    v.as_object().and_then(|o| o.get(name)).unwrap_or_else(|| panic!("no `{name}` in a result"))
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let line = replace(&replace(data, b"@SELF@", w.cryptoid.as_bytes()), b"@ROOM@", ROOM.as_bytes());
    // Only the signing family: management methods would change the world.
    let Ok(req) = wire::decode_request(&line) else { return };
    if !matches!(req.method.as_str(), "sign.pdu" | "sign.batch" | "policy.check") {
        return;
    }
    let method = req.method.clone();
    let response = w.rt.block_on(rpc::handle_line(&w.svc, &w.client, &line));
    let body = response.strip_suffix(b"\n").unwrap_or(&response);
    let parsed = json::from_slice(body).expect("the response is strict JSON");
    let Some(result) = parsed.as_object().and_then(|o| o.get("result")) else { return };
    let params = req.params;
    let rv = |p: &Value| {
        p.as_object().and_then(|o| o.get("room_version")).and_then(Value::as_str).map(str::to_owned)
    };
    match method.as_str() {
        "sign.pdu" => {
            let version = rv(&params).expect("signed with a room version");
            let signed = field(result, "pdu");
            let intent = params.as_object().and_then(|o| o.get("intent"));
            if let Some(why) = violation(w, &version, signed, intent) {
                panic!("signed although {why}: {signed}");
            }
            check_signed(w, &version, signed);
            let mut with_id = signed.as_object().expect("object").clone();
            with_id.insert("event_id".into(), field(result, "event_id").clone());
            remember(w, &Value::Object(with_id));
        }
        "sign.batch" => {
            let version = rv(&params).expect("signed with a room version");
            let pdus = field(result, "pdus").as_array().expect("pdus");
            let first = pdus.first().map(|p| field(p, "pdu")).and_then(Value::as_object).expect("a batch");
            assert!(event::is_create(first), "a batch that does not start with m.room.create was signed");
            assert_ne!(
                first.get("room_id").and_then(Value::as_str),
                Some(ROOM),
                "a batch for a known room was signed"
            );
            for item in pdus {
                check_signed(w, &version, field(item, "pdu"));
            }
        }
        _ => {}
    }
});
