//! `cryptoidctl bench` against peers, with the same threads, clock and
//! tally as the agent's load: OpenSSH's ssh-agent (its agent protocol,
//! RFC draft-miller-ssh-agent: `REQUEST_IDENTITIES`, `SIGN_REQUEST` with an
//! Ed25519 key) and the agent's own no-crypto round trip (`agent.hello`),
//! so a report compares like with like on one machine in one run.

use crate::bench::{merge, record, LoadResult, Tally};
use crate::Ctx;
use anyhow::{bail, Context, Result};
use cryptoid_protocol::wire::agent::Hello;
use cryptoid_protocol::wire::NoParams;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
const SIGN_REQUEST: u8 = 13;
const SIGN_RESPONSE: u8 = 14;

/// What is asked of ssh-agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SshOp {
    /// `REQUEST_IDENTITIES`: its no-crypto round trip.
    Identities,
    /// `SIGN_REQUEST` of a 1 KB message with the first Ed25519 key.
    Sign,
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// One request and its answer (type byte and payload).
fn roundtrip(s: &mut UnixStream, msg: &[u8], answer: &mut Vec<u8>) -> Result<u8> {
    let mut framed = Vec::with_capacity(msg.len() + 4);
    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    framed.extend_from_slice(msg);
    s.write_all(&framed)?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let n = u32::from_be_bytes(len) as usize;
    if n == 0 || n > 256 * 1024 {
        bail!("ssh-agent sent a frame of {n} bytes");
    }
    answer.resize(n, 0);
    s.read_exact(answer)?;
    Ok(answer[0])
}

/// The blob of the agent's first Ed25519 key.
fn ed25519_blob(s: &mut UnixStream) -> Result<Vec<u8>> {
    let mut answer = Vec::new();
    if roundtrip(s, &[REQUEST_IDENTITIES], &mut answer)? != IDENTITIES_ANSWER {
        bail!("ssh-agent did not list its keys");
    }
    let mut p = &answer[1..];
    let mut take = |n: usize| -> Result<&[u8]> {
        if p.len() < n {
            bail!("a truncated key list");
        }
        let (a, b) = p.split_at(n);
        p = b;
        Ok(a)
    };
    let count = u32::from_be_bytes(take(4)?.try_into()?);
    for _ in 0..count {
        let n = u32::from_be_bytes(take(4)?.try_into()?) as usize;
        let blob = take(n)?.to_vec();
        let c = u32::from_be_bytes(take(4)?.try_into()?) as usize;
        take(c)?;
        if blob.get(4..15) == Some(b"ssh-ed25519") {
            return Ok(blob);
        }
    }
    bail!("ssh-agent holds no Ed25519 key (ssh-add one)")
}

/// Loads ssh-agent at `sock` from `connections` threads for `seconds`.
pub fn ssh_agent(sock: &Path, op: SshOp, connections: usize, seconds: u64) -> Result<LoadResult> {
    let mut first = UnixStream::connect(sock)
        .with_context(|| format!("cannot connect to ssh-agent at {}", sock.display()))?;
    let blob = ed25519_blob(&mut first)?;
    let message = match op {
        SshOp::Identities => vec![REQUEST_IDENTITIES],
        SshOp::Sign => {
            let mut m = vec![SIGN_REQUEST];
            put_string(&mut m, &blob);
            put_string(&mut m, &[0x5a; 1024]);
            m.extend_from_slice(&0u32.to_be_bytes());
            m
        }
    };
    let expected = match op {
        SshOp::Identities => IDENTITIES_ANSWER,
        SshOp::Sign => SIGN_RESPONSE,
    };
    threads(connections, seconds, |deadline| {
        let mut s = UnixStream::connect(sock)?;
        let mut tally: Tally = (0, 0, Vec::with_capacity(1 << 16), None);
        let mut answer = Vec::with_capacity(512);
        while Instant::now() < deadline {
            let t0 = Instant::now();
            let r = roundtrip(&mut s, &message, &mut answer).and_then(|t| {
                if t == expected {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("ssh-agent answered with message type {t}"))
                }
            });
            record(&mut tally, t0, r);
        }
        Ok(tally)
    })
}

/// `agent.hello` round trips: the agent's request path without signing.
pub fn hello(ctx: &Ctx, connections: usize, seconds: u64) -> Result<LoadResult> {
    threads(connections, seconds, |deadline| {
        let mut c = ctx.connect()?;
        let mut tally: Tally = (0, 0, Vec::with_capacity(1 << 16), None);
        while Instant::now() < deadline {
            let t0 = Instant::now();
            let r = c.call::<Hello>(&NoParams {});
            record(&mut tally, t0, r);
        }
        Ok(tally)
    })
}

/// Runs `work` on `connections` threads until the deadline; the tallies
/// merged.
pub(crate) fn threads(
    connections: usize,
    seconds: u64,
    work: impl Fn(Instant) -> Result<Tally> + Sync,
) -> Result<LoadResult> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let results: Vec<Result<Tally>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..connections).map(|_| s.spawn(|| work(deadline))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a bench thread panicked"))))
            .collect()
    });
    let elapsed = start.elapsed();
    let mut all: Tally = (0, 0, Vec::new(), None);
    for r in results {
        merge(&mut all, r?);
    }
    Ok((all.0, all.1, elapsed, all.2, all.3))
}
