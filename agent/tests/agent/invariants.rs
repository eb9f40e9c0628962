//! Safety invariants as property tests over a real `Service`:
//! - what is signed is judged against [`must_refuse`], a table of the rules
//!   written here independently of the policy code: a PDU the table refuses
//!   is never signed (no confirmation provider answers here), and one it
//!   allows is signed (an agent that refuses everything fails too);
//! - a PDU whose sender is not a held key is never signed;
//! - a signed PDU differs from its input only in `signatures` and `hashes`.
//!
//! The fourth, a one-time cryptoID never bound to two rooms, is in `otk_binding`.

use cryptoid_agent::clock::ManualClock;
use cryptoid_agent::config::Config;
use cryptoid_agent::policy::{config::ClientRule, Action, PolicyConfig, RoomViewMode};
use cryptoid_agent::service::{ClientInfo, Service};
use cryptoid_protocol::json::{self, Object, Value};
use cryptoid_protocol::wire::keys::CreateParams;
use cryptoid_protocol::wire::rooms::{ObserveParams, ObservedEvent};
use cryptoid_protocol::wire::sign::SignPduParams;
use cryptoid_protocol::wire::ErrorKind;
use proptest::prelude::*;
use std::sync::Arc;

const NOW: u64 = 1_800_000_000_000;
const ROOM: &str = "!prop:x";
const OTHER: &str = "3TPraTczVkDPTRaX4K+AfUuyx7Mzq1UafTXypnl0t2k";
const TYPES: [(&str, Option<&str>, &str); 8] = [
    ("m.room.message", None, r#"{"body":"hi","msgtype":"m.text"}"#),
    ("m.reaction", None, "{}"),
    ("m.room.name", Some(""), r#"{"name":"n"}"#),
    ("m.room.power_levels", Some(""), "{}"),
    ("m.room.join_rules", Some(""), r#"{"join_rule":"invite"}"#),
    ("m.room.member", Some("SELF"), r#"{"membership":"join"}"#),
    ("m.room.member", Some("OTHER"), r#"{"membership":"ban"}"#),
    ("org.example.state", Some(""), "{}"),
];

#[derive(Debug, Clone)]
struct Case {
    ty: usize,
    depth: i64,
    /// `prev_events` names the observed frontier (depth 100), else an event
    /// the agent never saw.
    prev_known: bool,
    ts_offset_s: i64,
    client_action: Option<Action>,
    intent: Option<bool>,
    stranger: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        0..TYPES.len(),
        prop_oneof![0i64..200, Just(101)],
        proptest::bool::ANY,
        -600i64..600,
        prop_oneof![
            Just(None),
            Just(Some(Action::Allow)),
            Just(Some(Action::Confirm)),
            Just(Some(Action::Deny))
        ],
        prop_oneof![Just(None), Just(Some(true)), Just(Some(false))],
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(ty, depth, prev_known, ts_offset_s, client_action, intent, stranger)| Case {
            ty,
            depth,
            prev_known,
            ts_offset_s,
            client_action,
            intent,
            stranger,
        })
}

fn service(dir: &std::path::Path, client_action: Option<Action>) -> Service {
    // The world's frontier is a summary: a fact under `room_view = "claimed"`.
    let mut policy = PolicyConfig {
        confirm_timeout_secs: 0,
        unknown_clients: Action::Allow,
        room_view: RoomViewMode::Claimed,
        ..Default::default()
    };
    if let Some(a) = client_action {
        policy.clients.push(ClientRule {
            exe: "/usr/bin/prop-client".into(),
            sign: a,
            manage: Action::Allow,
        });
    }
    let config = Config { policy, ..Default::default() };
    Service::open(dir, config, true, Arc::new(ManualClock::new(NOW))).expect("service")
}

fn pdu(c: &Case, sender: &str) -> Object {
    let (ty, sk, content) = TYPES[c.ty];
    let sk = match sk {
        Some("SELF") => format!(r#","state_key":"{sender}""#),
        Some("OTHER") => format!(r#","state_key":"{OTHER}""#),
        Some(k) => format!(r#","state_key":"{k}""#),
        None => String::new(),
    };
    let ts = NOW as i64 + c.ts_offset_s * 1000;
    let text = format!(
        r#"{{"type":"{ty}","room_id":"{ROOM}","sender":"{sender}","content":{content},"depth":{},"origin_server_ts":{ts},"prev_events":["${}"],"auth_events":[]{sk}}}"#,
        c.depth,
        if c.prev_known { "f" } else { "b" }.repeat(43)
    );
    json::from_str(&text).expect("pdu").into_object().expect("object")
}

/// The rules, stated on their own: why a case must not be signed without a
/// person's yes, or `None` when it must be signed. The world: a key bound to
/// ROOM, the room observed with one event at depth 100, no power levels
/// known, default policy, no confirmation provider.
fn must_refuse(c: &Case) -> Option<&'static str> {
    let (ty, sk, _) = TYPES[c.ty];
    let state = sk.is_some();
    #[rustfmt::skip]
    let rules: &[(bool, &'static str)] = &[
        (c.stranger, "the sender is not a key the agent holds"),
        (matches!(c.client_action, Some(Action::Deny | Action::Confirm)), "the client rule denies or asks"),
        (c.ts_offset_s.abs() > 300, "origin_server_ts more than 5 minutes off"),
        (c.intent == Some(false), "the PDU differs from the intent"),
        (c.depth < 50, "more than 50 below the newest known depth"),
        (c.prev_known && c.depth != 101, "the depth rule: one above the known prev_event"),
        (state && !c.prev_known, "a state event in an observed room on an unknown prev_event"),
        (matches!(ty, "m.room.power_levels" | "m.room.join_rules" | "org.example.state"), "security-relevant or unknown state asks"),
        (sk == Some("OTHER"), "acting on someone else asks"),
    ];
    rules.iter().find(|(hit, _)| *hit).map(|(_, why)| *why)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn signs_exactly_what_the_independent_rules_allow(c in case()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let svc = service(dir.path(), c.client_action);
        let client = ClientInfo { uid: 0, pid: Some(1), exe: Some("/usr/bin/prop-client".into()) };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        let key = svc
            .keys_create(&CreateParams { room_id: Some(ROOM.into()), ..Default::default() })
            .expect("key");
        // The room's frontier is at depth 100.
        let frontier = ObservedEvent { event_id: format!("${}", "f".repeat(43)), depth: 100, prev_events: vec![], event_type: None, state_key: None, content: None };
        svc.rooms_observe(ObserveParams { room_id: ROOM.into(), room_version: None, events: vec![frontier], server_keys: Default::default(), pdus: Vec::new() }).expect("observe");

        let sender = if c.stranger { OTHER.to_owned() } else { key.cryptoid.clone() };
        let input = pdu(&c, &sender);
        let intent = c.intent.map(|ok| {
            let ty = input["type"].clone();
            let content = if ok { input["content"].clone() } else { json::from_str(r#"{"x":1}"#).expect("c") };
            let mut o = Object::new();
            o.insert("type".into(), ty);
            o.insert("content".into(), content);
            if let Some(sk) = input.get("state_key") { o.insert("state_key".into(), sk.clone()); }
            Value::Object(o)
        });
        let params = SignPduParams { room_version: "org.matrix.msc4080".into(), pdu: Value::Object(input.clone()), event_id: None, intent };
        let result = rt.block_on(svc.sign_pdu(&client, params)).1;
        match (must_refuse(&c), &result) {
            (None, Ok(signed)) => {
                // Only signatures and hashes were added.
                let out = signed.pdu.as_object().expect("object");
                for (k, v) in &input { prop_assert_eq!(out.get(k), Some(v)); }
                prop_assert_eq!(out.len(), input.len() + 2);
                prop_assert_eq!(&out["sender"], &Value::String(key.cryptoid.clone()));
            }
            (Some(_), Err(e)) => prop_assert!(
                matches!(e.kind(), ErrorKind::PolicyDenied | ErrorKind::UnknownKey | ErrorKind::ConfirmationTimeout),
                "refused with {:?}", e.kind()
            ),
            (Some(why), Ok(_)) => prop_assert!(false, "signed although {}", why),
            (None, Err(e)) => prop_assert!(false, "refused a PDU the rules allow: {}", e),
        }
        if c.stranger {
            prop_assert!(result.is_err(), "a PDU by a key the agent does not hold was signed");
        }
    }
}
