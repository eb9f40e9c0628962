//! The method table shared by every transport: [`call`] runs a method by
//! name on untyped params, journals the outcome and returns a [`Reply`] the
//! transport encodes its own way (a JSON-RPC line, a D-Bus reply). Every
//! request that reaches the agent is journaled, malformed ones included, and
//! no result is released unless its journal entry was written.

use crate::error::{Error, Result};
use crate::service::{Audit, ClientInfo, Service};
use cryptoid_protocol::json::Value;
use cryptoid_protocol::wire::{
    self, agent, backend, confirm, journal, keys, otk, policy, rooms, sign, ErrorKind, Method,
};
use std::sync::Arc;

/// Handles one request line (without its newline); returns the response line.
pub async fn handle_line(svc: &Arc<Service>, client: &ClientInfo, line: &[u8]) -> Vec<u8> {
    let req = match wire::decode_request(line) {
        Ok(r) => r,
        Err(bad) => {
            let err = Error::from(bad.error.clone());
            if let Err(e) = svc.journal_request("(invalid)", client, &Audit::default(), Err(&err)) {
                tracing::error!(error = %e, "cannot journal an invalid request");
            }
            return wire::encode_error(&bad.id, &bad.error);
        }
    };
    let id = req.id.clone();
    match call(svc, client, req).await {
        Ok(reply) => reply.line(&id),
        Err(e) => wire::encode_error(&id, &e),
    }
}

/// A method's result, encodable by any transport.
pub trait Reply: Send {
    /// A JSON-RPC response line.
    fn line(&self, id: &Value) -> Vec<u8>;
    /// The result as JSON text.
    fn json(&self) -> String;
}

impl<T: serde::Serialize + Send> Reply for T {
    fn line(&self, id: &Value) -> Vec<u8> {
        wire::encode_result(id, self)
    }

    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"cannot encode: {e}\"}}"))
    }
}

/// Runs one request and journals it.
pub async fn call(
    svc: &Arc<Service>,
    client: &ClientInfo,
    req: wire::Request,
) -> Result<Box<dyn Reply>, wire::RpcError> {
    let method = req.method.clone();
    let mut audit = Audit::default();
    let result = dispatch(svc, client, req, &mut audit).await;
    let journaled = svc.journal_request(&method, client, &audit, result.as_ref().map(|_| ()));
    match (result, journaled) {
        (Ok(reply), Ok(())) => {
            svc.notify_after(&method);
            Ok(reply)
        }
        (Err(e), _) => Err(e.to_rpc()),
        // The change was made and its intent is on record: withholding the
        // result now would hide a change from the client that asked for it.
        (Ok(reply), Err(e)) if audit.intended => {
            tracing::error!(error = %e, method, "the outcome of a journaled change could not be journaled");
            svc.notify_after(&method);
            Ok(reply)
        }
        (Ok(_), Err(e)) => {
            tracing::error!(error = %e, "journal write failed; withholding the result");
            Err(e.to_rpc())
        }
    }
}

/// Runs a call that changes what the agent keeps, after journaling its
/// intent: nothing changes unless the journal has it, even across a full
/// disk or a `kill -9` between the change and its outcome entry.
async fn change<T: Send + 'static>(
    svc: &Arc<Service>,
    client: &ClientInfo,
    method: &str,
    audit: &mut Audit,
    f: impl FnOnce(&Service, &mut Audit) -> Result<T> + Send + 'static,
) -> Result<T> {
    svc.journal_intent(method, client, audit)?;
    audit.intended = true;
    blocking(svc, audit, f).await
}

/// Runs a slow or disk-bound call off the async workers.
async fn blocking<T: Send + 'static>(
    svc: &Arc<Service>,
    audit: &mut Audit,
    f: impl FnOnce(&Service, &mut Audit) -> Result<T> + Send + 'static,
) -> Result<T> {
    let svc = svc.clone();
    let mut a = std::mem::take(audit);
    let (r, a) = tokio::task::spawn_blocking(move || {
        let r = f(&svc, &mut a);
        (r, a)
    })
    .await
    .map_err(|e| Error::new(ErrorKind::InternalError, format!("worker failed: {e}")))?;
    *audit = a;
    r
}

async fn dispatch(
    svc: &Arc<Service>,
    client: &ClientInfo,
    req: wire::Request,
    audit: &mut Audit,
) -> Result<Box<dyn Reply>> {
    fn ok<T: serde::Serialize + Send + 'static>(v: T) -> Result<Box<dyn Reply>> {
        Ok(Box::new(v))
    }
    // Key management is judged by the client rules first. What a request
    // asks for goes into `audit` before anything runs, so that the intent
    // entry of a change names it.
    let method = req.method.clone();
    match method.as_str() {
        agent::Hello::NAME => {
            req.params::<agent::Hello>()?;
            ok(svc.hello())
        }
        agent::Lock::NAME => {
            req.params::<agent::Lock>()?;
            ok(svc.lock())
        }
        agent::Unlock::NAME => {
            let p = req.params::<agent::Unlock>()?;
            ok(change(svc, client, &method, audit, move |s, _| s.unlock(&p)).await?)
        }
        agent::Passwd::NAME => {
            let p = req.params::<agent::Passwd>()?;
            svc.authorize_management(client, &method, "change the keystore passphrase".into(), false, audit)
                .await?;
            change(svc, client, &method, audit, move |s, _| s.passwd(&p)).await?;
            ok(wire::NoParams {})
        }
        backend::Init::NAME => {
            let p = req.params::<backend::Init>()?;
            svc.authorize_management(
                client,
                &method,
                format!("set up {} token {:?}", p.backend, p.token),
                false,
                audit,
            )
            .await?;
            ok(change(svc, client, &method, audit, move |s, _| s.backend_init(&p)).await?)
        }
        keys::Create::NAME => {
            let p = req.params::<keys::Create>()?;
            audit.room_id = p.room_id.clone();
            let where_ =
                p.room_id.as_deref().map_or("for a new room".to_owned(), |r| format!("for room {r}"));
            svc.authorize_management(client, &method, format!("create a cryptoID {where_}"), false, audit)
                .await?;
            ok(change(svc, client, &method, audit, move |s, a| s.keys_create(&p, a)).await?)
        }
        keys::List::NAME => {
            let p = req.params::<keys::List>()?;
            ok(svc.keys_list(&p))
        }
        keys::Get::NAME => {
            let p = req.params::<keys::Get>()?;
            ok(svc.keys_get(&p, audit)?)
        }
        keys::Delete::NAME => {
            let p = req.params::<keys::Delete>()?;
            audit.cryptoid = Some(p.cryptoid.clone());
            svc.authorize_management(
                client,
                keys::Delete::NAME,
                format!("delete cryptoID {} for good", p.cryptoid),
                true,
                audit,
            )
            .await?;
            ok(change(svc, client, &method, audit, move |s, a| s.keys_delete(&p, a)).await?)
        }
        otk::Generate::NAME => {
            let p = req.params::<otk::Generate>()?;
            audit.count = Some(u64::from(p.count));
            svc.authorize_management(
                client,
                &method,
                format!("generate {} one-time cryptoIDs", p.count),
                false,
                audit,
            )
            .await?;
            ok(change(svc, client, &method, audit, move |s, _| s.otk_generate(&p)).await?)
        }
        otk::UploadBody::NAME => {
            req.params::<otk::UploadBody>()?;
            ok(svc.otk_upload_body(audit))
        }
        otk::MarkPublished::NAME => {
            let p = req.params::<otk::MarkPublished>()?;
            audit.count = Some(p.cryptoids.len() as u64);
            svc.authorize_management(
                client,
                &method,
                format!("mark {} one-time cryptoIDs published", p.cryptoids.len()),
                false,
                audit,
            )
            .await?;
            ok(change(svc, client, &method, audit, move |s, _| s.otk_mark_published(&p)).await?)
        }
        otk::Claim::NAME => {
            let p = req.params::<otk::Claim>()?;
            audit.cryptoid = Some(p.cryptoid.clone());
            audit.room_id = Some(p.room_id.clone());
            svc.authorize_management(
                client,
                &method,
                format!("bind one-time cryptoID {} to room {}", p.cryptoid, p.room_id),
                false,
                audit,
            )
            .await?;
            ok(change(svc, client, &method, audit, move |s, _| s.otk_claim(&p)).await?)
        }
        sign::SignPdu::NAME => {
            let p = req.params::<sign::SignPdu>()?;
            ok(svc.sign_pdu(client, p, audit).await?)
        }
        sign::SignBatch::NAME => {
            let p = req.params::<sign::SignBatch>()?;
            ok(svc.sign_batch(client, p, audit).await?)
        }
        policy::Check::NAME => {
            let p = req.params::<policy::Check>()?;
            ok(svc.policy_check(client, p, audit))
        }
        policy::Show::NAME => {
            req.params::<policy::Show>()?;
            ok(svc.policy_show()?)
        }
        rooms::Observe::NAME => {
            let p = req.params::<rooms::Observe>()?;
            audit.room_id = Some(p.room_id.clone());
            audit.count = Some(p.events.len() as u64);
            svc.authorize_management(
                client,
                &method,
                format!("feed {} events of room {} to the room view", p.events.len(), p.room_id),
                false,
                audit,
            )
            .await?;
            ok(change(svc, client, &method, audit, move |s, _| s.rooms_observe(&p)).await?)
        }
        confirm::Pending::NAME => {
            req.params::<confirm::Pending>()?;
            ok(svc.confirm_pending())
        }
        confirm::Answer::NAME => {
            let p = req.params::<confirm::Answer>()?;
            svc.confirm_answer(client, &p)?;
            ok(wire::NoParams {})
        }
        journal::Tail::NAME => {
            let p = req.params::<journal::Tail>()?;
            ok(blocking(svc, audit, move |s, _| s.journal_tail(&p)).await?)
        }
        journal::Verify::NAME => {
            req.params::<journal::Verify>()?;
            ok(blocking(svc, audit, move |s, _| s.journal_verify()).await?)
        }
        other => {
            Err(Error::new(ErrorKind::MethodNotFound, format!("unknown method {other:?}; see agent.hello")))
        }
    }
}
