//! `sign.pdu`, `sign.batch` and `policy.check` request lines through the
//! agent's real method table (`rpc::handle_line`) on a real `Service` with a
//! software key, a room view and a journal in a temp dir.
//!
//! Inputs are request lines; `@SELF@` in them is replaced by the held key's
//! cryptoID and `@ROOM@` by its room, so seeds reach the signing path.
//! Oracles: no panic; whatever is signed is by the held key, verifies, and
//! was allowed by the policy.
#![no_main]

use cryptoid_agent::clock::ManualClock;
use cryptoid_agent::config::Config;
use cryptoid_agent::policy::{Action, PolicyConfig};
use cryptoid_agent::rpc;
use cryptoid_agent::service::{Audit, ClientInfo, Service};
use cryptoid_protocol::json::{self, Value};
use cryptoid_protocol::keys::PublicKey;
use cryptoid_protocol::room_version::RoomVersion;
use cryptoid_protocol::wire::keys::CreateParams;
use cryptoid_protocol::wire::policy::Verdict;
use cryptoid_protocol::wire::rooms::{ObserveParams, ObservedEvent};
use cryptoid_protocol::wire::sign::SignPdu;
use cryptoid_protocol::{event, wire};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

/// The fixed clock: seeds carry this `origin_server_ts`.
const NOW: u64 = 1_800_000_000_000;
const ROOM: &str = "!fuzz:example.org";

struct World {
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
        let key = svc
            .keys_create(
                &CreateParams { room_id: Some(ROOM.into()), ..Default::default() },
                &mut Audit::default(),
            )
            .expect("key");
        let frontier = ObservedEvent {
            event_id: format!("${}", "f".repeat(43)),
            depth: 100,
            prev_events: vec![],
            event_type: None,
            state_key: None,
            content: None,
        };
        svc.rooms_observe(&ObserveParams { room_id: ROOM.into(), room_version: None, events: vec![frontier] })
            .expect("observe");
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
        let client = ClientInfo { uid: 0, pid: Some(1), exe: Some("/usr/bin/fuzz-client".into()) };
        World { rt, svc: Arc::new(svc), cryptoid: key.cryptoid, client, _dir: dir }
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
    // What the policy says before the call; a signature needs an `allow`.
    let verdict = (method == "sign.pdu")
        .then(|| req.clone().params::<SignPdu>().ok())
        .flatten()
        .map(|p| w.svc.policy_check(&w.client, p, &mut Audit::default()).decision);
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
            assert_eq!(verdict, Some(Verdict::Allow), "signed what the policy did not allow");
            check_signed(w, &version, field(result, "pdu"));
        }
        "sign.batch" => {
            let version = rv(&params).expect("signed with a room version");
            for item in field(result, "pdus").as_array().expect("pdus") {
                check_signed(w, &version, field(item, "pdu"));
            }
        }
        _ => {}
    }
});
