//! The method table: every method's declaration, next to its wire type
//! (`cryptoid_protocol::wire`). A declaration says once
//!
//! - its [`Class`], which decides the client rule the generic path applies;
//! - whether it changes what the agent keeps (`CHANGES`: an `intended`
//!   journal entry is written before it runs);
//! - whether it runs off the async workers (`BLOCKING`: slow crypto, disk);
//! - how it describes itself for prompts and the journal ([`Handler::describe`]);
//! - the service call ([`Handler::run`]).
//!
//! `route` in `rpc` lists every method; adding one means its wire type, an
//! `impl Handler` here and a line there. Nothing else can skip the
//! authorization or the journal: both happen in `serve`.

use super::Class;
use crate::error::Result;
use crate::policy::Stakes;
use crate::service::{Announce, Audit, ClientInfo, Service};
use cryptoid_protocol::json::Value;
use cryptoid_protocol::wire::{
    self, agent, backend, confirm, journal, keys, otk, policy, rooms, share, sign, Method,
};
use std::future::{ready, Future};

/// What a method's service call gets.
pub struct Call<'a, P> {
    pub svc: &'a Service,
    pub client: &'a ClientInfo,
    pub params: P,
    pub audit: &'a mut Audit,
}

/// The future of a service call.
pub trait Fut<'a, T>: Future<Output = Result<T>> + Send + 'a {}
impl<'a, T, F: Future<Output = Result<T>> + Send + 'a> Fut<'a, T> for F {}

/// A method's declaration and its service call.
pub trait Handler:
    Method<Params: Send + 'static, Result: serde::Serialize + Send + 'static> + 'static
{
    const CLASS: Class;
    /// Changes what the agent keeps: its intent is journaled first.
    const CHANGES: bool = false;
    /// Runs on a blocking thread (Argon2, PKCS#11 set-up, journal reads).
    const BLOCKING: bool = false;
    /// What a management method puts at stake: destroying a secret asks
    /// even a trusted client (`confirm_delete`), moving secrets always asks.
    const STAKES: Stakes = Stakes::Ordinary;
    /// What transports announce after it succeeds (D-Bus signals).
    const ANNOUNCES: Announce = Announce::Nothing;
    /// What did not happen when the person says no or does not answer,
    /// for the error message ("no cryptoID was created").
    const UNDONE: &'static str = "nothing was changed";

    /// What the request asks, for prompts and the journal; records what it
    /// names (room, cryptoID, count) in `audit` before anything runs.
    fn describe(_p: &Self::Params, _audit: &mut Audit) -> String {
        String::new()
    }

    /// The service call.
    fn run(call: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result>;
}

impl Handler for agent::Hello {
    const CLASS: Class = Class::Read;
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(Ok(c.svc.hello()))
    }
}

impl Handler for agent::Lock {
    const CLASS: Class = Class::Lock;
    const ANNOUNCES: Announce = Announce::LockState;
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(Ok(c.svc.lock()))
    }
}

impl Handler for agent::Unlock {
    const CLASS: Class = Class::Lock;
    const ANNOUNCES: Announce = Announce::LockState;
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(c.svc.unlock(&c.params))
    }
}

impl Handler for agent::Passwd {
    const CLASS: Class = Class::Manage;
    const UNDONE: &'static str = "the passphrase was not changed";
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    fn describe(_: &Self::Params, _: &mut Audit) -> String {
        "change the keystore passphrase".into()
    }
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(c.svc.passwd(&c.params).map(|()| wire::NoParams {}))
    }
}

impl Handler for backend::Init {
    const CLASS: Class = Class::Manage;
    const UNDONE: &'static str = "no backend was set up";
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    fn describe(p: &Self::Params, _: &mut Audit) -> String {
        format!("set up {} token {:?}", p.backend, p.token)
    }
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(c.svc.backend_init(&c.params))
    }
}

impl Handler for backend::TpmChangePin {
    const CLASS: Class = Class::Manage;
    const UNDONE: &'static str = "the TPM PIN was not changed";
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    fn describe(_: &Self::Params, _: &mut Audit) -> String {
        "change the TPM PIN of the keystore".into()
    }
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(c.svc.tpm_change_pin(&c.params))
    }
}

impl Handler for keys::Create {
    const CLASS: Class = Class::Manage;
    const UNDONE: &'static str = "no cryptoID was created";
    const ANNOUNCES: Announce = Announce::Keys;
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    fn describe(p: &Self::Params, audit: &mut Audit) -> String {
        audit.room_id = p.room_id.clone();
        let where_ = p.room_id.as_deref().map_or("for a new room".to_owned(), |r| format!("for room {r}"));
        format!("create a cryptoID {where_}")
    }
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        let r = c.svc.keys_create(&c.params);
        if let Ok(k) = &r {
            c.audit.cryptoid = Some(k.cryptoid.clone());
        }
        ready(r)
    }
}

impl Handler for keys::List {
    const CLASS: Class = Class::Read;
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(Ok(c.svc.keys_list(&c.params)))
    }
}

impl Handler for keys::Get {
    const CLASS: Class = Class::Read;
    fn describe(p: &Self::Params, audit: &mut Audit) -> String {
        audit.cryptoid = Some(p.cryptoid.clone());
        String::new()
    }
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(c.svc.keys_get(&c.params))
    }
}

impl Handler for keys::Delete {
    const CLASS: Class = Class::Manage;
    const UNDONE: &'static str = "the cryptoID was not deleted";
    const ANNOUNCES: Announce = Announce::Keys;
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    const STAKES: Stakes = Stakes::Destroys;
    fn describe(p: &Self::Params, audit: &mut Audit) -> String {
        audit.cryptoid = Some(p.cryptoid.clone());
        format!("delete cryptoID {} for good", p.cryptoid)
    }
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        let r = c.svc.keys_delete(&c.params);
        if let Ok(k) = &r {
            c.audit.room_id = k.room_id.clone();
        }
        ready(r)
    }
}

impl Handler for otk::Generate {
    const CLASS: Class = Class::Manage;
    const UNDONE: &'static str = "no one-time cryptoIDs were generated";
    const ANNOUNCES: Announce = Announce::Keys;
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    fn describe(p: &Self::Params, audit: &mut Audit) -> String {
        audit.count = Some(u64::from(p.count));
        format!("generate {} one-time cryptoIDs", p.count)
    }
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(c.svc.otk_generate(&c.params))
    }
}

impl Handler for otk::UploadBody {
    const CLASS: Class = Class::Read;
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        let body = c.svc.otk_upload_body();
        let n = body
            .as_object()
            .and_then(|b| b.get("one_time_cryptoids"))
            .and_then(Value::as_object)
            .map(|o| o.len());
        c.audit.count = n.map(|n| n as u64);
        ready(Ok(body))
    }
}

impl Handler for otk::MarkPublished {
    const CLASS: Class = Class::Manage;
    const UNDONE: &'static str = "nothing was marked published";
    const ANNOUNCES: Announce = Announce::Keys;
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    fn describe(p: &Self::Params, audit: &mut Audit) -> String {
        audit.count = Some(p.cryptoids.len() as u64);
        format!("mark {} one-time cryptoIDs published", p.cryptoids.len())
    }
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(c.svc.otk_mark_published(&c.params))
    }
}

impl Handler for otk::Claim {
    const CLASS: Class = Class::Manage;
    const UNDONE: &'static str = "no one-time cryptoID was claimed";
    const ANNOUNCES: Announce = Announce::Keys;
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    fn describe(p: &Self::Params, audit: &mut Audit) -> String {
        audit.cryptoid = Some(p.cryptoid.clone());
        audit.room_id = Some(p.room_id.clone());
        format!("bind one-time cryptoID {} to room {}", p.cryptoid, p.room_id)
    }
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(c.svc.otk_claim(&c.params))
    }
}

impl Handler for sign::SignPdu {
    /// The policy judges every PDU inside the service (`policy::evaluate`).
    const CLASS: Class = Class::Sign;
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        async move {
            let (audit, r) = c.svc.sign_pdu(c.client, c.params).await;
            *c.audit = audit;
            r
        }
    }
}

impl Handler for sign::SignBatch {
    const CLASS: Class = Class::Sign;
    const ANNOUNCES: Announce = Announce::Keys;
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        async move {
            let (audit, r) = c.svc.sign_batch(c.client, c.params).await;
            *c.audit = audit;
            r
        }
    }
}

impl Handler for policy::Check {
    const CLASS: Class = Class::Sign;
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        let (audit, r) = c.svc.policy_check(c.client, c.params);
        *c.audit = audit;
        ready(Ok(r))
    }
}

impl Handler for policy::Show {
    const CLASS: Class = Class::Read;
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(c.svc.policy_show())
    }
}

impl Handler for rooms::Observe {
    const CLASS: Class = Class::Manage;
    const UNDONE: &'static str = "the room view was not changed";
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    fn describe(p: &Self::Params, audit: &mut Audit) -> String {
        audit.room_id = Some(p.room_id.clone());
        audit.count = Some((p.events.len() + p.pdus.len()) as u64);
        format!(
            "feed {} full events and {} summaries of room {} to the room view",
            p.pdus.len(),
            p.events.len(),
            p.room_id
        )
    }
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(c.svc.rooms_observe(c.params))
    }
}

impl Handler for confirm::Pending {
    const CLASS: Class = Class::Confirm;
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(Ok(c.svc.confirm_pending()))
    }
}

impl Handler for confirm::AskHere {
    const CLASS: Class = Class::Confirm;
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(c.svc.confirm_ask_here(c.client))
    }
}

impl Handler for confirm::Answer {
    const CLASS: Class = Class::Confirm;
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(c.svc.confirm_answer(c.client, &c.params).map(|()| wire::NoParams {}))
    }
}

impl Handler for journal::Tail {
    /// The journal tells which rooms the user is in and who asked what.
    const CLASS: Class = Class::Manage;
    const UNDONE: &'static str = "no journal entries were shown";
    const BLOCKING: bool = true;
    fn describe(p: &Self::Params, _: &mut Audit) -> String {
        match &p.room_id {
            Some(r) => format!("read the journal of room {r}"),
            None => "read the journal".into(),
        }
    }
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(c.svc.journal_tail(&c.params))
    }
}

impl Handler for journal::Verify {
    const CLASS: Class = Class::Manage;
    const UNDONE: &'static str = "the journal was not checked";
    const BLOCKING: bool = true;
    fn describe(_: &Self::Params, _: &mut Audit) -> String {
        "check the journal's hash chain".into()
    }
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(c.svc.journal_verify())
    }
}

impl Handler for share::Export {
    const CLASS: Class = Class::Manage;
    const UNDONE: &'static str = "no keys were exported";
    const STAKES: Stakes = Stakes::MovesSecrets;
    // PBKDF2 and encrypting every key: off the async workers.
    const BLOCKING: bool = true;
    fn describe(p: &Self::Params, _audit: &mut Audit) -> String {
        format!(
            "have the secret seeds of all your shareable cryptoIDs, encrypted under the secret-storage key {:?} it gives, to store them for your other devices. Allow only if you just ran `cryptoidctl share push` or `share export` yourself: whoever knows that key can sign as you",
            p.key_id
        )
    }
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(c.svc.share_export(&c.params, c.audit))
    }
}

impl Handler for share::Import {
    const CLASS: Class = Class::Manage;
    const UNDONE: &'static str = "no keys were imported";
    const STAKES: Stakes = Stakes::MovesSecrets;
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    const ANNOUNCES: Announce = Announce::Keys;
    fn describe(p: &Self::Params, _audit: &mut Audit) -> String {
        let replace = if p.replace {
            ", replacing (retiring) this device's key wherever a room has another"
        } else {
            ""
        };
        format!(
            "import cryptoIDs from {} secret(s) encrypted under the secret-storage key {:?} it gives, to sign as you in their rooms{replace}. Allow only if you just ran `cryptoidctl share pull` or `share import` yourself",
            p.account_data.len(),
            p.key.key_id
        )
    }
    fn run(c: Call<'_, Self::Params>) -> impl Fut<'_, Self::Result> {
        ready(c.svc.share_import(&c.params, c.audit))
    }
}
