//! Honest room histories of a cryptoID room, signed event by event as
//! members' clients sign them: each event cites the auth events a server
//! picks (create, power levels, the sender's membership, and for
//! memberships the join rules and the target's), the previous event, and
//! depth one above it. The agent verifies these as any server would.

use cryptoid_protocol::json::{self, Object, Value};
use cryptoid_protocol::keys::{KeyPair, CRYPTOID_KEY_ID};
use cryptoid_protocol::{event, RoomVersion};
use std::collections::HashMap;

pub const RV: RoomVersion = RoomVersion::MSC4080;

pub struct History {
    pub room: String,
    /// Signed events, oldest first.
    pub events: Vec<Object>,
    pub ids: Vec<String>,
    /// Current state: (type, state key) → event ID.
    pub state: HashMap<(String, String), String>,
}

impl History {
    /// A room created by `creator`: create, join, `power` (JSON content),
    /// `m.room.join_rules` invite.
    pub fn new(creator: &KeyPair, room: &str, power: &str) -> History {
        let c = creator.cryptoid();
        let mut h =
            History { room: room.to_owned(), events: Vec::new(), ids: Vec::new(), state: HashMap::new() };
        h.add(creator, "m.room.create", Some(""), r#"{"room_version":"org.matrix.msc4080"}"#);
        h.add(creator, "m.room.member", Some(&c), r#"{"membership":"join"}"#);
        h.add(creator, "m.room.power_levels", Some(""), power);
        h.add(creator, "m.room.join_rules", Some(""), r#"{"join_rule":"invite"}"#);
        h
    }

    /// The auth events a server picks for an event of `ty` by `sender`.
    pub fn auth_for(&self, sender: &str, ty: &str, state_key: Option<&str>, content: &str) -> Vec<String> {
        if ty == "m.room.create" {
            return Vec::new();
        }
        let mut keys = vec![
            ("m.room.create".to_owned(), String::new()),
            ("m.room.power_levels".to_owned(), String::new()),
            ("m.room.member".to_owned(), sender.to_owned()),
        ];
        if ty == "m.room.member" {
            let m = json::from_str(content).ok().and_then(|c| {
                c.as_object().and_then(|o| o.get("membership")).and_then(Value::as_str).map(str::to_owned)
            });
            if matches!(m.as_deref(), Some("join" | "invite" | "knock")) {
                keys.push(("m.room.join_rules".to_owned(), String::new()));
            }
            keys.push(("m.room.member".to_owned(), state_key.unwrap_or("").to_owned()));
        }
        let mut out: Vec<String> = Vec::new();
        for k in keys {
            if let Some(id) = self.state.get(&k) {
                if !out.contains(id) {
                    out.push(id.clone());
                }
            }
        }
        out
    }

    /// An unsigned PDU on top of the history, as the homeserver would
    /// return it to `sender`'s client; `auth` overrides the auth events.
    pub fn next(
        &self,
        sender: &str,
        ty: &str,
        state_key: Option<&str>,
        content: &str,
        auth: Option<Vec<String>>,
    ) -> Object {
        let auth = auth.unwrap_or_else(|| self.auth_for(sender, ty, state_key, content));
        let mut o = Object::new();
        o.insert("type".into(), ty.into());
        o.insert("room_id".into(), self.room.as_str().into());
        o.insert("sender".into(), sender.into());
        if let Some(sk) = state_key {
            o.insert("state_key".into(), sk.into());
        }
        o.insert("content".into(), json::from_str(content).expect("content"));
        o.insert("depth".into(), Value::Int(json::Int::new(self.events.len() as i64 + 1).expect("depth")));
        o.insert(
            "origin_server_ts".into(),
            Value::Int(json::Int::new(crate::pdus::now_ms() as i64).expect("ts")),
        );
        o.insert(
            "prev_events".into(),
            Value::Array(self.ids.last().map(|p| vec![Value::from(p.as_str())]).unwrap_or_default()),
        );
        o.insert("auth_events".into(), Value::Array(auth.iter().map(|a| Value::from(a.as_str())).collect()));
        o
    }

    /// Signs the next event with `key` and appends it; returns its ID.
    pub fn add(&mut self, key: &KeyPair, ty: &str, state_key: Option<&str>, content: &str) -> String {
        let pdu = self.next(&key.cryptoid(), ty, state_key, content, None);
        let signed = event::hash_and_sign(pdu, &RV, &key.cryptoid(), CRYPTOID_KEY_ID, key).expect("sign");
        self.push(signed.event)
    }

    /// Appends an event signed elsewhere (by the agent); returns its ID.
    pub fn push(&mut self, e: Object) -> String {
        let id = event::event_id(&e, &RV).expect("event id");
        if let (Some(ty), Some(sk)) =
            (e.get("type").and_then(Value::as_str), e.get("state_key").and_then(Value::as_str))
        {
            self.state.insert((ty.to_owned(), sk.to_owned()), id.clone());
        }
        self.events.push(e);
        self.ids.push(id.clone());
        id
    }

    /// The events as `rooms.observe` takes them (`pdus`).
    pub fn pdus(&self) -> Vec<Value> {
        self.events.iter().cloned().map(Value::Object).collect()
    }

    pub fn id_of(&self, ty: &str, state_key: &str) -> String {
        self.state.get(&(ty.to_owned(), state_key.to_owned())).cloned().expect("state event")
    }
}
