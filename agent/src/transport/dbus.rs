//! The D-Bus transport: `org.cryptoid.Agent1` at `/org/cryptoid/Agent1` on
//! the session bus. Every method translates its arguments into the wire
//! params and goes through [`rpc::call`], exactly like the socket; PDUs
//! travel as JSON text to keep them byte-exact.
//!
//! Callers are identified by the bus daemon (`GetConnectionCredentials`:
//! uid, pid → `/proc/<pid>/exe`); another uid is refused. A desktop UI can
//! export `org.cryptoid.Prompter1` and call `RegisterPrompter(o path)`; it
//! is asked first for confirmations and dropped when it leaves the bus.

use crate::prompt::{Prompter, PrompterAnswer, Question};
use crate::rpc::{self, table::Handler};
use crate::service::{ClientInfo, Event, Service};
use crate::sync::MutexExt;
use cryptoid_protocol::json::{self, Object, Value};
use cryptoid_protocol::wire::{
    agent, confirm, journal, keys, otk, policy, rooms, share, sign, ErrorKind, RpcError,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use zbus::message::Header;
use zbus::names::{OwnedUniqueName, UniqueName};
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue};
use zbus::{fdo, interface, Connection};

pub const BUS_NAME: &str = "org.cryptoid.Agent1";
pub const OBJECT_PATH: &str = "/org/cryptoid/Agent1";
pub const PROMPTER_INTERFACE: &str = "org.cryptoid.Prompter1";

/// D-Bus errors `org.cryptoid.Agent1.Error.<Kind>`, one per wire kind.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.cryptoid.Agent1.Error")]
pub enum AgentError {
    #[zbus(error)]
    ZBus(zbus::Error),
    ParseError(String),
    InvalidRequest(String),
    MethodNotFound(String),
    InvalidParams(String),
    InternalError(String),
    Locked(String),
    BadPassphrase(String),
    PolicyDenied(String),
    ConfirmationDenied(String),
    ConfirmationTimeout(String),
    UnknownKey(String),
    KeyNotUsable(String),
    BadPdu(String),
    HashMismatch(String),
    EventIdMismatch(String),
    UnsupportedRoomVersion(String),
    BackendUnavailable(String),
    PinRequired(String),
    MessageTooLarge(String),
    NotPermitted(String),
    StorageError(String),
    Unknown(String),
}

impl From<RpcError> for AgentError {
    fn from(e: RpcError) -> AgentError {
        let m = e.message;
        match e.data.kind {
            ErrorKind::ParseError => AgentError::ParseError(m),
            ErrorKind::InvalidRequest => AgentError::InvalidRequest(m),
            ErrorKind::MethodNotFound => AgentError::MethodNotFound(m),
            ErrorKind::InvalidParams => AgentError::InvalidParams(m),
            ErrorKind::InternalError => AgentError::InternalError(m),
            ErrorKind::Locked => AgentError::Locked(m),
            ErrorKind::BadPassphrase => AgentError::BadPassphrase(m),
            ErrorKind::PolicyDenied => AgentError::PolicyDenied(m),
            ErrorKind::ConfirmationDenied => AgentError::ConfirmationDenied(m),
            ErrorKind::ConfirmationTimeout => AgentError::ConfirmationTimeout(m),
            ErrorKind::UnknownKey => AgentError::UnknownKey(m),
            ErrorKind::KeyNotUsable => AgentError::KeyNotUsable(m),
            ErrorKind::BadPdu => AgentError::BadPdu(m),
            ErrorKind::HashMismatch => AgentError::HashMismatch(m),
            ErrorKind::EventIdMismatch => AgentError::EventIdMismatch(m),
            ErrorKind::UnsupportedRoomVersion => AgentError::UnsupportedRoomVersion(m),
            ErrorKind::BackendUnavailable => AgentError::BackendUnavailable(m),
            ErrorKind::PinRequired => AgentError::PinRequired(m),
            ErrorKind::MessageTooLarge => AgentError::MessageTooLarge(m),
            ErrorKind::NotPermitted => AgentError::NotPermitted(m),
            ErrorKind::StorageError => AgentError::StorageError(m),
            ErrorKind::Unknown => AgentError::Unknown(m),
        }
    }
}

impl From<fdo::Error> for AgentError {
    fn from(e: fdo::Error) -> AgentError {
        AgentError::ZBus(e.into())
    }
}

type Options = HashMap<String, OwnedValue>;
type DResult<T> = std::result::Result<T, AgentError>;
// The interface macro recognizes fallible methods by the name `Result`.
type Result<T> = DResult<T>;

fn invalid(msg: impl Into<String>) -> AgentError {
    AgentError::InvalidParams(msg.into())
}

/// A string option from `a{sv}`.
fn opt_str(opts: &Options, key: &str) -> DResult<Option<String>> {
    match opts.get(key) {
        None => Ok(None),
        Some(v) => <&str>::try_from(&**v)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| invalid(format!("option {key:?} must be a string (s)"))),
    }
}

/// Refuses options the method does not know (a typo must not be ignored).
fn only(opts: &Options, allowed: &[&str]) -> DResult<()> {
    match opts.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(invalid(format!("unknown option {k:?} (allowed: {})", allowed.join(", ")))),
        None => Ok(()),
    }
}

/// Strict JSON text (a PDU, an intent, observed events).
fn parse_json(what: &str, text: &str) -> DResult<Value> {
    json::from_str(text).map_err(|e| AgentError::ParseError(format!("{what}: {e}")))
}

fn params(pairs: Vec<(&str, Option<Value>)>) -> Value {
    let mut o = Object::new();
    for (k, v) in pairs {
        if let Some(v) = v {
            o.insert(k.to_owned(), v);
        }
    }
    Value::Object(o)
}

fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

fn int(n: u64) -> Value {
    Value::Int(json::Int::new(i64::try_from(n).unwrap_or(i64::MAX)).unwrap_or(json::Int::from(0u32)))
}

/// The object behind `/org/cryptoid/Agent1`.
pub struct AgentObject {
    svc: Arc<Service>,
    /// Credentials per unique name (never reused while the bus runs).
    callers: Mutex<HashMap<OwnedUniqueName, ClientInfo>>,
    prompter: Arc<Mutex<Option<(OwnedUniqueName, OwnedObjectPath)>>>,
}

impl AgentObject {
    async fn caller(&self, hdr: &Header<'_>, conn: &Connection) -> DResult<ClientInfo> {
        let sender =
            hdr.sender().ok_or_else(|| AgentError::NotPermitted("message without a sender".into()))?;
        let owned = OwnedUniqueName::from(sender.to_owned());
        if let Some(c) = self.callers.locked().get(&owned) {
            return Ok(c.clone());
        }
        let creds =
            fdo::DBusProxy::new(conn).await?.get_connection_credentials(sender.clone().into()).await?;
        let uid =
            creds.unix_user_id().ok_or_else(|| AgentError::NotPermitted("the bus gave no uid".into()))?;
        let pid = creds.process_id().map(|p| p as i32);
        let exe = pid.and_then(ClientInfo::exe_of_pid);
        let client = ClientInfo { uid, pid, exe };
        let own = rustix::process::getuid().as_raw();
        if uid != own && !(uid == 0 && self.svc.config().socket.allow_root) {
            return Err(self.svc.refuse_other_user(&client, own).to_rpc().into());
        }
        self.callers.locked().insert(owned, client.clone());
        Ok(client)
    }

    /// Runs method `M` for a D-Bus caller through the method table (its
    /// class rule and journal, as on the socket); the result stays typed.
    async fn call<M: Handler>(
        &self,
        hdr: &Header<'_>,
        conn: &Connection,
        params: Value,
    ) -> DResult<M::Result> {
        let client = self.caller(hdr, conn).await?;
        Ok(rpc::call_typed::<M>(&self.svc, &client, params).await?)
    }
}

fn text(v: &Value) -> String {
    json::to_canonical_string(v)
}

/// A typed result as canonical JSON text (for the methods that answer with
/// JSON; the signing methods answer with the PDU they already hold).
fn json_text<T: serde::Serialize>(v: &T) -> DResult<String> {
    let value: Value = serde_json::to_value(v)
        .and_then(serde_json::from_value)
        .map_err(|e| AgentError::InternalError(format!("cannot encode the result: {e}")))?;
    Ok(text(&value))
}

// `spawn = true` (zbus's default, stated because it matters): every call
// runs in a task of its own, so calls in flight on one bus connection, or
// from many clients (all arrive on the agent's one connection to the bus),
// do not wait for each other: a sign waiting for a confirmation holds up
// nothing else. The in-flight test fails without it.
#[interface(name = "org.cryptoid.Agent1", spawn = true)]
impl AgentObject {
    /// Protocol version, agent version, backends, lock state (JSON).
    #[zbus(out_args("hello_json"))]
    async fn hello(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        json_text(&self.call::<agent::Hello>(&hdr, conn, params(vec![])).await?)
    }

    #[zbus(out_args("locked"))]
    async fn lock(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool> {
        Ok(self.call::<agent::Lock>(&hdr, conn, params(vec![])).await?.locked)
    }

    /// Options: `passphrase`, `backend`, `pin` (s).
    #[zbus(out_args("locked"))]
    async fn unlock(
        &self,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool> {
        only(&options, &["passphrase", "backend", "pin"])?;
        let p = params(vec![
            ("passphrase", opt_str(&options, "passphrase")?.map(string)),
            ("backend", opt_str(&options, "backend")?.map(string)),
            ("pin", opt_str(&options, "pin")?.map(string)),
        ]);
        Ok(self.call::<agent::Unlock>(&hdr, conn, p).await?.locked)
    }

    /// A new cryptoID for `room_id` ("" for createRoom). Options: `user_id`, `backend`.
    #[zbus(out_args("cryptoid"))]
    async fn create_key(
        &self,
        room_id: &str,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        only(&options, &["user_id", "backend"])?;
        let p = params(vec![
            ("room_id", (!room_id.is_empty()).then(|| string(room_id))),
            ("user_id", opt_str(&options, "user_id")?.map(string)),
            ("backend", opt_str(&options, "backend")?.map(string)),
        ]);
        Ok(self.call::<keys::Create>(&hdr, conn, p).await?.cryptoid)
    }

    /// Keys as JSON. Options: `room_id`, `kind`, `state`, `backend`.
    #[zbus(out_args("keys_json"))]
    async fn list_keys(
        &self,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        only(&options, &["room_id", "kind", "state", "backend"])?;
        let p = params(vec![
            ("room_id", opt_str(&options, "room_id")?.map(string)),
            ("kind", opt_str(&options, "kind")?.map(string)),
            ("state", opt_str(&options, "state")?.map(string)),
            ("backend", opt_str(&options, "backend")?.map(string)),
        ]);
        json_text(&self.call::<keys::List>(&hdr, conn, p).await?.keys)
    }

    #[zbus(out_args("key_json"))]
    async fn get_key(
        &self,
        cryptoid: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        json_text(
            &self.call::<keys::Get>(&hdr, conn, params(vec![("cryptoid", Some(string(cryptoid)))])).await?,
        )
    }

    #[zbus(out_args("key_json"))]
    async fn delete_key(
        &self,
        cryptoid: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        json_text(
            &self
                .call::<keys::Delete>(&hdr, conn, params(vec![("cryptoid", Some(string(cryptoid)))]))
                .await?,
        )
    }

    /// New one-time cryptoIDs. Options: `backend`.
    #[zbus(out_args("cryptoids"))]
    async fn generate_one_time_keys(
        &self,
        count: u32,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<String>> {
        only(&options, &["backend"])?;
        let p = params(vec![
            ("count", Some(int(u64::from(count)))),
            ("backend", opt_str(&options, "backend")?.map(string)),
        ]);
        Ok(self.call::<otk::Generate>(&hdr, conn, p).await?.keys.into_iter().map(|k| k.cryptoid).collect())
    }

    /// `{"one_time_cryptoids": …}` for /keys/upload (JSON).
    #[zbus(out_args("body_json"))]
    async fn one_time_keys_upload_body(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        json_text(&self.call::<otk::UploadBody>(&hdr, conn, params(vec![])).await?)
    }

    #[zbus(out_args("published"))]
    async fn mark_one_time_keys_published(
        &self,
        cryptoids: Vec<String>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32> {
        let list = Value::Array(cryptoids.into_iter().map(string).collect());
        let marked =
            self.call::<otk::MarkPublished>(&hdr, conn, params(vec![("cryptoids", Some(list))])).await?;
        Ok(u32::try_from(marked.keys.len()).unwrap_or(u32::MAX))
    }

    #[zbus(out_args("key_json"))]
    async fn claim_one_time_key(
        &self,
        cryptoid: &str,
        room_id: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        let p = params(vec![("cryptoid", Some(string(cryptoid))), ("room_id", Some(string(room_id)))]);
        json_text(&self.call::<otk::Claim>(&hdr, conn, p).await?)
    }

    /// Feeds the room view; `events_json` is `[{event_id, depth, prev_events?, …}]`
    /// (summaries: claims). Options: `room_version` (s), `pdus` (s, a JSON
    /// array of full events in federation format: verified),
    /// `server_keys` (s, JSON `{server: {key_id: key}}`).
    #[zbus(out_args("view_json"))]
    async fn observe_room(
        &self,
        room_id: &str,
        events_json: &str,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        only(&options, &["room_version", "pdus", "server_keys"])?;
        let json_opt = |name: &str| -> Result<Option<Value>> {
            opt_str(&options, name)?.map(|t| parse_json(name, &t)).transpose()
        };
        let p = params(vec![
            ("room_id", Some(string(room_id))),
            ("room_version", opt_str(&options, "room_version")?.map(string)),
            ("events", Some(parse_json("events_json", events_json)?)),
            ("pdus", json_opt("pdus")?),
            ("server_keys", json_opt("server_keys")?),
        ]);
        json_text(&self.call::<rooms::Observe>(&hdr, conn, p).await?)
    }

    /// Checks and signs a PDU; returns the signed PDU as canonical JSON.
    /// Options: `event_id` (s), `intent` (s, JSON).
    #[zbus(out_args("signed_pdu_json"))]
    async fn sign_pdu(
        &self,
        room_version: &str,
        pdu_json: &str,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        let p = sign_params(room_version, pdu_json, &options)?;
        Ok(text(&self.call::<sign::SignPdu>(&hdr, conn, p).await?.pdu))
    }

    /// A createRoom batch; returns the signed PDUs. Options: `event_ids`
    /// (as), `intent` (s, JSON `{"create_room": <the /createRoom body>}`).
    #[zbus(out_args("signed_pdus_json"))]
    async fn sign_batch(
        &self,
        room_version: &str,
        pdus_json: Vec<String>,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<String>> {
        only(&options, &["event_ids", "intent"])?;
        let intent = opt_str(&options, "intent")?.map(|t| parse_json("intent", &t)).transpose()?;
        let pdus = pdus_json.iter().map(|t| parse_json("pdu", t)).collect::<DResult<Vec<_>>>()?;
        let event_ids = match options.get("event_ids") {
            Some(v) => Some(Value::Array(
                <Vec<String>>::try_from(v.try_clone().map_err(|e| invalid(e.to_string()))?)
                    .map_err(|_| invalid("option \"event_ids\" must be an array of strings (as)"))?
                    .into_iter()
                    .map(string)
                    .collect(),
            )),
            None => None,
        };
        let p = params(vec![
            ("room_version", Some(string(room_version))),
            ("pdus", Some(Value::Array(pdus))),
            ("event_ids", event_ids),
            ("intent", intent),
        ]);
        Ok(self.call::<sign::SignBatch>(&hdr, conn, p).await?.pdus.iter().map(|s| text(&s.pdu)).collect())
    }

    /// What the policy would decide (JSON `{decision, reasons, changes}`).
    #[zbus(out_args("check_json"))]
    async fn check_policy(
        &self,
        room_version: &str,
        pdu_json: &str,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        let p = sign_params(room_version, pdu_json, &options)?;
        json_text(&self.call::<policy::Check>(&hdr, conn, p).await?)
    }

    #[zbus(out_args("pending_json"))]
    async fn pending_confirmations(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        json_text(&self.call::<confirm::Pending>(&hdr, conn, params(vec![])).await?.pending)
    }

    async fn answer_confirmation(
        &self,
        id: u64,
        allow: bool,
        remember_secs: u32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let p = params(vec![
            ("id", Some(int(id))),
            ("allow", Some(Value::Bool(allow))),
            ("remember_secs", (remember_secs > 0).then(|| int(u64::from(remember_secs)))),
        ]);
        self.call::<confirm::Answer>(&hdr, conn, p).await?;
        Ok(())
    }

    /// The newest entries (JSON). Options: `room_id`.
    #[zbus(out_args("entries_json"))]
    async fn journal_tail(
        &self,
        limit: u32,
        options: Options,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        only(&options, &["room_id"])?;
        let p = params(vec![
            ("limit", Some(int(u64::from(limit)))),
            ("room_id", opt_str(&options, "room_id")?.map(string)),
        ]);
        json_text(&self.call::<journal::Tail>(&hdr, conn, p).await?.entries)
    }

    /// `(ok, entries, error)`.
    #[zbus(out_args("ok", "entries", "error"))]
    async fn journal_verify(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(bool, u64, String)> {
        let v = self.call::<journal::Verify>(&hdr, conn, params(vec![])).await?;
        Ok((v.ok, v.entries, v.error.unwrap_or_default()))
    }

    /// `share.export`: the request as JSON text (`{recovery_key | passphrase,
    /// key_id, key_description}`); the result as JSON text.
    #[zbus(out_args("result_json"))]
    async fn share_export(
        &self,
        request_json: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        let p = parse_json("request_json", request_json)?;
        json_text(&self.call::<share::Export>(&hdr, conn, p).await?)
    }

    /// `share.import`: the request as JSON text (`{key: {recovery_key |
    /// passphrase, key_id, key_description}, account_data, replace?}`); the
    /// report as JSON text.
    #[zbus(out_args("report_json"))]
    async fn share_import(
        &self,
        request_json: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        let p = parse_json("request_json", request_json)?;
        json_text(&self.call::<share::Import>(&hdr, conn, p).await?)
    }

    /// Registers the caller's `org.cryptoid.Prompter1` object at `path`.
    async fn register_prompter(
        &self,
        path: ObjectPath<'_>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let client = self.caller(&hdr, conn).await?;
        // A prompter answers confirmations: the same trust as
        // `confirm.answer` over the socket, so the same switch closes it,
        // and every registration is on record.
        let method = "dbus.register_prompter";
        let audit = crate::service::Audit::default();
        if let Err(err) = self.svc.require_socket_confirm() {
            if let Err(e) = self.svc.journal_request(method, &client, &audit, Err(&err)) {
                tracing::error!(error = %e, "cannot journal a refused prompter");
            }
            return Err(AgentError::NotPermitted(err.to_string()));
        }
        self.svc
            .journal_request(method, &client, &audit, Ok(()))
            .map_err(|e| AgentError::StorageError(format!("cannot journal the registration: {e}")))?;
        let sender = hdr.sender().ok_or_else(|| AgentError::NotPermitted("no sender".into()))?;
        let name = OwnedUniqueName::from(sender.to_owned());
        *self.prompter.locked() = Some((name.clone(), path.clone().into()));
        self.svc.prompts().set_prompter(Some(Arc::new(BusPrompter {
            conn: conn.clone(),
            name,
            path: path.clone().into(),
        })));
        tracing::info!(exe = ?client.exe, path = %path, "D-Bus prompter registered");
        Ok(())
    }

    #[zbus(signal)]
    async fn confirmation_requested(emitter: &SignalEmitter<'_>, id: u64, prompt: &str) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn keys_changed(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn lock_changed(emitter: &SignalEmitter<'_>, locked: bool) -> zbus::Result<()>;

    /// Emitted when a YubiKey key with a touch policy is about to sign:
    /// the text names the card, the cryptoID and the policy.
    #[zbus(signal)]
    async fn touch_requested(emitter: &SignalEmitter<'_>, why: &str) -> zbus::Result<()>;

    #[zbus(property)]
    async fn locked(&self) -> bool {
        self.svc.is_locked()
    }

    #[zbus(property)]
    async fn version(&self) -> String {
        crate::VERSION.to_owned()
    }
}

fn sign_params(room_version: &str, pdu_json: &str, options: &Options) -> DResult<Value> {
    only(options, &["event_id", "intent"])?;
    let intent = opt_str(options, "intent")?.map(|t| parse_json("intent", &t)).transpose()?;
    Ok(params(vec![
        ("room_version", Some(string(room_version))),
        ("pdu", Some(parse_json("pdu_json", pdu_json)?)),
        ("event_id", opt_str(options, "event_id")?.map(string)),
        ("intent", intent),
    ]))
}

/// The registered prompter, called as `org.cryptoid.Prompter1.Confirm`.
struct BusPrompter {
    conn: Connection,
    name: OwnedUniqueName,
    path: OwnedObjectPath,
}

impl Prompter for BusPrompter {
    fn confirm(&self, id: u64, q: &Question) -> PrompterAnswer {
        let conn = self.conn.clone();
        let name = self.name.clone();
        let path = self.path.clone();
        let mut request: HashMap<String, zbus::zvariant::Value<'static>> = HashMap::new();
        request.insert("id".into(), id.into());
        request.insert("prompt".into(), q.prompt.clone().into());
        request.insert("method".into(), q.method.clone().into());
        for (k, v) in [
            ("client_exe", &q.client_exe),
            ("room_id", &q.room_id),
            ("event_type", &q.event_type),
            ("cryptoid", &q.cryptoid),
        ] {
            if let Some(v) = v {
                request.insert(k.into(), v.clone().into());
            }
        }
        if let Some(pid) = q.client_pid {
            request.insert("client_pid".into(), pid.into());
        }
        request.insert("changes".into(), q.changes.clone().into());
        request.insert("reasons".into(), q.reasons.clone().into());
        Box::pin(async move {
            let reply = conn
                .call_method(
                    Some(name.as_ref()),
                    path.as_ref(),
                    Some(PROMPTER_INTERFACE),
                    "Confirm",
                    &(request,),
                )
                .await;
            match reply.and_then(|m| m.body().deserialize::<(bool, u32)>()) {
                Ok(answer) => Some(answer),
                Err(e) => {
                    tracing::warn!(error = %e, "the D-Bus prompter did not answer");
                    None
                }
            }
        })
    }
}

/// A running D-Bus service; dropping it leaves the bus.
pub struct DbusService {
    pub conn: Connection,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for DbusService {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Connects to the session bus (or `address`), serves the object, takes
/// the name, and relays service events as signals.
pub async fn start(svc: Arc<Service>, address: Option<&str>) -> zbus::Result<DbusService> {
    let prompter = Arc::new(Mutex::new(None));
    let object =
        AgentObject { svc: svc.clone(), callers: Mutex::new(HashMap::new()), prompter: prompter.clone() };
    let builder = match address {
        Some(a) => zbus::connection::Builder::address(a)?,
        None => zbus::connection::Builder::session()?,
    };
    let conn = builder.serve_at(OBJECT_PATH, object)?.name(BUS_NAME)?.build().await?;
    let iface = conn.object_server().interface::<_, AgentObject>(OBJECT_PATH).await?;
    let mut tasks = Vec::new();

    let mut events = svc.subscribe();
    let iface2 = iface.clone();
    tasks.push(tokio::spawn(async move {
        while let Ok(ev) = events.recv().await {
            let e = iface2.signal_emitter();
            let r = match ev {
                Event::LockChanged(locked) => {
                    let _ = iface2.get().await.locked_changed(e).await;
                    AgentObject::lock_changed(e, locked).await
                }
                Event::KeysChanged => AgentObject::keys_changed(e).await,
                Event::TouchRequested(why) => AgentObject::touch_requested(e, &why).await,
                Event::TouchDone | Event::StateSigned(_) => Ok(()),
            };
            if let Err(err) = r {
                tracing::warn!(error = %err, "cannot emit a D-Bus signal");
            }
        }
    }));

    let mut requested = svc.prompts().subscribe();
    let iface3 = iface.clone();
    tasks.push(tokio::spawn(async move {
        while let Ok((id, prompt)) = requested.recv().await {
            if let Err(err) = AgentObject::confirmation_requested(iface3.signal_emitter(), id, &prompt).await
            {
                tracing::warn!(error = %err, "cannot emit ConfirmationRequested");
            }
        }
    }));

    // Drop the prompter when it leaves the bus.
    let dbus = fdo::DBusProxy::new(&conn).await?;
    let mut owners = dbus.receive_name_owner_changed().await?;
    let svc2 = svc.clone();
    tasks.push(tokio::spawn(async move {
        use futures_util::StreamExt;
        while let Some(sig) = owners.next().await {
            let Ok(args) = sig.args() else { continue };
            if args.new_owner().is_some() {
                continue;
            }
            let gone: &str = args.name().as_str();
            let mut slot = prompter.locked();
            if slot.as_ref().is_some_and(|(n, _)| UniqueName::from(n).as_str() == gone) {
                *slot = None;
                svc2.prompts().set_prompter(None);
                tracing::info!(name = gone, "D-Bus prompter left the bus");
            }
        }
    }));
    tasks.push(tokio::spawn(super::notify::run(svc.clone(), conn.clone())));
    Ok(DbusService { conn, tasks })
}
