//! The UNIX socket transport: JSON-RPC 2.0, one request per line.
//!
//! One task per connection. Requests on a connection are answered in order
//! (pipelining: a client may send many before reading); the journal
//! entries of the requests read together are written in one write before
//! their answers are sent. A line over 1 MiB,
//! a line left unfinished for `line_timeout`, or a silence of `idle_timeout`
//! closes that connection and no other. Peers are identified with
//! `SO_PEERCRED`; another uid (root too, unless allowed) is refused and
//! journaled.

use crate::rpc;
use crate::service::{ClientInfo, Service};
use cryptoid_protocol::json::Value;
use cryptoid_protocol::wire::{self, ErrorKind, RpcError, MAX_LINE};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};

/// Per-connection limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub line_timeout: Duration,
    pub allow_root: bool,
}

/// Buffer capacity a connection keeps between requests.
const KEPT_BUFFER: usize = 64 * 1024;

/// How long in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Accepts connections until `shutdown` turns true, then lets every
/// connection finish the request it is serving.
pub async fn serve(
    listener: UnixListener,
    svc: Arc<Service>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tasks.spawn(connection(stream, svc.clone(), limits, shutdown.clone()));
                }
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
        while tasks.try_join_next().is_some() {}
    }
    let drain = async { while tasks.join_next().await.is_some() {} };
    if timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::warn!("connections still busy after {SHUTDOWN_GRACE:?}; closing them");
    }
}

fn client_info(stream: &UnixStream) -> Option<ClientInfo> {
    let cred = stream.peer_cred().ok()?;
    let pid = cred.pid();
    let exe = pid.and_then(ClientInfo::exe_of_pid);
    Some(ClientInfo { uid: cred.uid(), pid, exe })
}

async fn connection(
    mut stream: UnixStream,
    svc: Arc<Service>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(client) = client_info(&stream) else {
        tracing::warn!("connection without peer credentials refused");
        return;
    };
    let own_uid = rustix::process::getuid().as_raw();
    if client.uid != own_uid && !(client.uid == 0 && limits.allow_root) {
        let line = wire::encode_error(&Value::Null, &svc.refuse_other_user(&client, own_uid).to_rpc());
        let _ = timeout(limits.line_timeout, stream.write_all(&line)).await;
        return;
    }
    tracing::debug!(pid = ?client.pid, exe = ?client.exe, "client connected");
    let (mut rd, mut wr) = stream.into_split();
    let mut buf: Vec<u8> = Vec::with_capacity(8 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(8 * 1024);
    let mut partial_since: Option<Instant> = None;
    let mut answers: Vec<rpc::Answer> = Vec::new();
    loop {
        // Answer every complete line buffered so far, in order. Their
        // journal entries are written together (one write) before any
        // answer is sent.
        let mut start = 0;
        let mut too_large = false;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + nl];
            if line.len() > MAX_LINE {
                too_large = true;
                break;
            }
            answers.push(rpc::handle_line_queued(&svc, &client, line).await);
            start += nl + 1;
        }
        for a in answers.drain(..) {
            out.extend_from_slice(&a.release(&svc));
        }
        if too_large {
            return close_too_large(&mut wr, &mut out, limits).await;
        }
        buf.drain(..start);
        // A connection that once sent a large request (a /sync feed of
        // megabytes) does not keep its buffer for the rest of its life.
        if buf.is_empty() && buf.capacity() > KEPT_BUFFER {
            buf.shrink_to(KEPT_BUFFER);
        }
        if !out.is_empty() {
            match timeout(limits.line_timeout, wr.write_all(&out)).await {
                Ok(Ok(())) => {
                    out.clear();
                    if out.capacity() > KEPT_BUFFER {
                        out.shrink_to(KEPT_BUFFER);
                    }
                }
                _ => return, // the client stopped reading: drop it
            }
        }
        if buf.len() > MAX_LINE {
            return close_too_large(&mut wr, &mut out, limits).await;
        }
        if *shutdown.borrow() {
            return;
        }
        let deadline = if buf.is_empty() {
            partial_since = None;
            Instant::now() + limits.idle_timeout
        } else {
            *partial_since.get_or_insert_with(Instant::now) + limits.line_timeout
        };
        tokio::select! {
            read = tokio::time::timeout_at(deadline, rd.read_buf(&mut buf)) => match read {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => {}
                Err(_) if buf.is_empty() => return, // idle
                Err(_) => {
                    let e = RpcError::new(
                        ErrorKind::InvalidRequest,
                        format!("request line not finished within {:?}; connection closed", limits.line_timeout),
                    )
                    .with_cause("line_timeout");
                    let _ = timeout(limits.line_timeout, wr.write_all(&wire::encode_error(&Value::Null, &e))).await;
                    return;
                }
            },
            _ = shutdown.changed() => {
                if buf.is_empty() {
                    return;
                }
            }
        }
    }
}

async fn close_too_large(wr: &mut tokio::net::unix::OwnedWriteHalf, out: &mut Vec<u8>, limits: Limits) {
    let e = RpcError::new(
        ErrorKind::MessageTooLarge,
        format!("request line longer than {MAX_LINE} bytes; connection closed"),
    )
    .with_cause("line_too_long");
    out.extend_from_slice(&wire::encode_error(&Value::Null, &e));
    let _ = timeout(limits.line_timeout, wr.write_all(out)).await;
}
