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
use crate::service::{Audit, ClientInfo, Service};
use cryptoid_protocol::wire::{
    self, agent, backend, confirm, journal, keys, otk, policy, rooms, sign, Method,
};
use std::future::{ready, Future};

/// A method's declaration and its service call.
pub trait Handler:
    Method<Params: Send + 'static, Result: serde::Serialize + Send + 'static> + 'static
{
    const CLASS: Class;
    /// Changes what the agent keeps: its intent is journaled first.
    const CHANGES: bool = false;
    /// Runs on a blocking thread (Argon2, PKCS#11 set-up, journal reads).
    const BLOCKING: bool = false;
    /// Destroys a secret: asks even a trusted client (`confirm_delete`).
    const DESTROYS: bool = false;

    /// What the request asks, for prompts and the journal; records what it
    /// names (room, cryptoID, count) in `audit` before anything runs.
    fn describe(_p: &Self::Params, _audit: &mut Audit) -> String {
        String::new()
    }

    fn run<'a>(
        svc: &'a Service,
        client: &'a ClientInfo,
        p: Self::Params,
        audit: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a;
}

impl Handler for agent::Hello {
    const CLASS: Class = Class::Read;
    fn run<'a>(
        svc: &'a Service,
        _: &'a ClientInfo,
        _: Self::Params,
        _: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(Ok(svc.hello()))
    }
}

impl Handler for agent::Lock {
    const CLASS: Class = Class::Lock;
    fn run<'a>(
        svc: &'a Service,
        _: &'a ClientInfo,
        _: Self::Params,
        _: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(Ok(svc.lock()))
    }
}

impl Handler for agent::Unlock {
    const CLASS: Class = Class::Lock;
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    fn run<'a>(
        svc: &'a Service,
        _: &'a ClientInfo,
        p: Self::Params,
        _: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(svc.unlock(&p))
    }
}

impl Handler for agent::Passwd {
    const CLASS: Class = Class::Manage;
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    fn describe(_: &Self::Params, _: &mut Audit) -> String {
        "change the keystore passphrase".into()
    }
    fn run<'a>(
        svc: &'a Service,
        _: &'a ClientInfo,
        p: Self::Params,
        _: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(svc.passwd(&p).map(|()| wire::NoParams {}))
    }
}

impl Handler for backend::Init {
    const CLASS: Class = Class::Manage;
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    fn describe(p: &Self::Params, _: &mut Audit) -> String {
        format!("set up {} token {:?}", p.backend, p.token)
    }
    fn run<'a>(
        svc: &'a Service,
        _: &'a ClientInfo,
        p: Self::Params,
        _: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(svc.backend_init(&p))
    }
}

impl Handler for keys::Create {
    const CLASS: Class = Class::Manage;
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    fn describe(p: &Self::Params, audit: &mut Audit) -> String {
        audit.room_id = p.room_id.clone();
        let where_ = p.room_id.as_deref().map_or("for a new room".to_owned(), |r| format!("for room {r}"));
        format!("create a cryptoID {where_}")
    }
    fn run<'a>(
        svc: &'a Service,
        _: &'a ClientInfo,
        p: Self::Params,
        audit: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(svc.keys_create(&p, audit))
    }
}

impl Handler for keys::List {
    const CLASS: Class = Class::Read;
    fn run<'a>(
        svc: &'a Service,
        _: &'a ClientInfo,
        p: Self::Params,
        _: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(Ok(svc.keys_list(&p)))
    }
}

impl Handler for keys::Get {
    const CLASS: Class = Class::Read;
    fn run<'a>(
        svc: &'a Service,
        _: &'a ClientInfo,
        p: Self::Params,
        audit: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(svc.keys_get(&p, audit))
    }
}

impl Handler for keys::Delete {
    const CLASS: Class = Class::Manage;
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    const DESTROYS: bool = true;
    fn describe(p: &Self::Params, audit: &mut Audit) -> String {
        audit.cryptoid = Some(p.cryptoid.clone());
        format!("delete cryptoID {} for good", p.cryptoid)
    }
    fn run<'a>(
        svc: &'a Service,
        _: &'a ClientInfo,
        p: Self::Params,
        audit: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(svc.keys_delete(&p, audit))
    }
}

impl Handler for otk::Generate {
    const CLASS: Class = Class::Manage;
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    fn describe(p: &Self::Params, audit: &mut Audit) -> String {
        audit.count = Some(u64::from(p.count));
        format!("generate {} one-time cryptoIDs", p.count)
    }
    fn run<'a>(
        svc: &'a Service,
        _: &'a ClientInfo,
        p: Self::Params,
        _: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(svc.otk_generate(&p))
    }
}

impl Handler for otk::UploadBody {
    const CLASS: Class = Class::Read;
    fn run<'a>(
        svc: &'a Service,
        _: &'a ClientInfo,
        _: Self::Params,
        audit: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(Ok(svc.otk_upload_body(audit)))
    }
}

impl Handler for otk::MarkPublished {
    const CLASS: Class = Class::Manage;
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    fn describe(p: &Self::Params, audit: &mut Audit) -> String {
        audit.count = Some(p.cryptoids.len() as u64);
        format!("mark {} one-time cryptoIDs published", p.cryptoids.len())
    }
    fn run<'a>(
        svc: &'a Service,
        _: &'a ClientInfo,
        p: Self::Params,
        _: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(svc.otk_mark_published(&p))
    }
}

impl Handler for otk::Claim {
    const CLASS: Class = Class::Manage;
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    fn describe(p: &Self::Params, audit: &mut Audit) -> String {
        audit.cryptoid = Some(p.cryptoid.clone());
        audit.room_id = Some(p.room_id.clone());
        format!("bind one-time cryptoID {} to room {}", p.cryptoid, p.room_id)
    }
    fn run<'a>(
        svc: &'a Service,
        _: &'a ClientInfo,
        p: Self::Params,
        _: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(svc.otk_claim(&p))
    }
}

impl Handler for sign::SignPdu {
    /// The policy judges every PDU inside the service (`policy::evaluate`).
    const CLASS: Class = Class::Sign;
    fn run<'a>(
        svc: &'a Service,
        client: &'a ClientInfo,
        p: Self::Params,
        audit: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        svc.sign_pdu(client, p, audit)
    }
}

impl Handler for sign::SignBatch {
    const CLASS: Class = Class::Sign;
    fn run<'a>(
        svc: &'a Service,
        client: &'a ClientInfo,
        p: Self::Params,
        audit: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        svc.sign_batch(client, p, audit)
    }
}

impl Handler for policy::Check {
    const CLASS: Class = Class::Sign;
    fn run<'a>(
        svc: &'a Service,
        client: &'a ClientInfo,
        p: Self::Params,
        audit: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(Ok(svc.policy_check(client, p, audit)))
    }
}

impl Handler for policy::Show {
    const CLASS: Class = Class::Read;
    fn run<'a>(
        svc: &'a Service,
        _: &'a ClientInfo,
        _: Self::Params,
        _: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(svc.policy_show())
    }
}

impl Handler for rooms::Observe {
    const CLASS: Class = Class::Manage;
    const CHANGES: bool = true;
    const BLOCKING: bool = true;
    fn describe(p: &Self::Params, audit: &mut Audit) -> String {
        audit.room_id = Some(p.room_id.clone());
        audit.count = Some(p.events.len() as u64);
        format!("feed {} events of room {} to the room view", p.events.len(), p.room_id)
    }
    fn run<'a>(
        svc: &'a Service,
        _: &'a ClientInfo,
        p: Self::Params,
        _: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(svc.rooms_observe(&p))
    }
}

impl Handler for confirm::Pending {
    const CLASS: Class = Class::Confirm;
    fn run<'a>(
        svc: &'a Service,
        _: &'a ClientInfo,
        _: Self::Params,
        _: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(Ok(svc.confirm_pending()))
    }
}

impl Handler for confirm::Answer {
    const CLASS: Class = Class::Confirm;
    fn run<'a>(
        svc: &'a Service,
        client: &'a ClientInfo,
        p: Self::Params,
        _: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(svc.confirm_answer(client, &p).map(|()| wire::NoParams {}))
    }
}

impl Handler for journal::Tail {
    /// The journal tells which rooms the user is in and who asked what.
    const CLASS: Class = Class::Manage;
    const BLOCKING: bool = true;
    fn describe(p: &Self::Params, _: &mut Audit) -> String {
        match &p.room_id {
            Some(r) => format!("read the journal of room {r}"),
            None => "read the journal".into(),
        }
    }
    fn run<'a>(
        svc: &'a Service,
        _: &'a ClientInfo,
        p: Self::Params,
        _: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(svc.journal_tail(&p))
    }
}

impl Handler for journal::Verify {
    const CLASS: Class = Class::Manage;
    const BLOCKING: bool = true;
    fn describe(_: &Self::Params, _: &mut Audit) -> String {
        "check the journal's hash chain".into()
    }
    fn run<'a>(
        svc: &'a Service,
        _: &'a ClientInfo,
        _: Self::Params,
        _: &'a mut Audit,
    ) -> impl Future<Output = Result<Self::Result>> + Send + 'a {
        ready(svc.journal_verify())
    }
}
