//! A full disk: the agent's data directory on a small tmpfs. Requests that
//! need to write get a clear `storage_error`; nothing already acknowledged
//! is lost, across a restart on the full disk; once space is back, the agent
//! signs again and the journal verifies (a line cut short by the full disk
//! must not break the chain). Mounting needs root (CI runs as
//! root); elsewhere the test says so and passes without running.

use super::agent_sign::{assert_verifies, create, sign, try_sign};
use cryptoid_protocol::client::blocking::Client;
use cryptoid_protocol::client::ClientError;
use cryptoid_protocol::wire::agent::{Unlock, UnlockParams};
use cryptoid_protocol::wire::journal::Verify;
use cryptoid_protocol::wire::keys::{Create, CreateParams, Get, KeyRef};
use cryptoid_protocol::wire::{ErrorKind, NoParams};
use cryptoid_tests::agent::{Agent, PASSPHRASE};
use cryptoid_tests::pdus;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a directory; lazily unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("mount point");
        mount(&["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs", &dir.display().to_string()]);
        Tmpfs(dir.to_owned())
    }

    fn resize(&self, size: &str) {
        mount(&["-o", &format!("remount,size={size}"), &self.0.display().to_string()]);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount(args: &[&str]) {
    let out = Command::new("mount").args(args).output().expect("run mount");
    assert!(out.status.success(), "mount {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn storage_error(r: Result<impl std::fmt::Debug, ClientError>) -> String {
    match r {
        Err(e) if e.kind() == Some(ErrorKind::StorageError) => e.to_string(),
        other => panic!("expected storage_error, got {other:?}"),
    }
}

#[test]
fn full_disk_gives_storage_errors_and_loses_nothing_acknowledged() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    }
    let mut agent = Agent::start();
    agent.kill9();
    let fs = Tmpfs::mount(&agent.data_dir(), "256k");
    agent.spawn().expect("agent starts on the tmpfs");
    let mut c = agent.unlocked();

    // Fill the disk with keys until the agent says it cannot write.
    let mut acked = Vec::new();
    fill(&mut c, &mut acked);
    // Signing needs a journal entry: withheld, clearly.
    let pdu = pdus::message(&acked[0], &room(0), "on a full disk");
    let msg = storage_error(try_sign(&mut c, pdu));
    assert!(msg.contains("No space left on device"), "{msg}");

    // Some space comes back, without a restart: the agent signs again, and
    // the line the full disk cut short did not break the journal.
    fs.resize("384k");
    signs_and_verifies(&mut c, &acked);

    // Full again, then a restart on the full disk: the agent starts; an
    // unlock is journaled, so it works if its entry fits and is refused
    // with `storage_error` if not (fail closed).
    fill(&mut c, &mut acked);
    agent.restart();
    let unlock = UnlockParams { passphrase: Some(PASSPHRASE.into()), backend: None, pin: None };
    if let Err(e) = agent.client().call::<Unlock>(&unlock) {
        storage_error(Err::<(), _>(e));
    }

    // Space is back: every acknowledged key is there and signs.
    fs.resize("8m");
    let mut c = agent.unlocked();
    for k in &acked {
        c.call::<Get>(&KeyRef { cryptoid: k.clone() }).expect("an acknowledged key survived");
    }
    signs_and_verifies(&mut c, &acked);
    create(&mut c, Some("!after:example.org"));
}

fn room(i: usize) -> String {
    format!("!full{i}:example.org")
}

/// Creates keys until `storage_error`; pushes each acknowledged one.
fn fill(c: &mut Client, acked: &mut Vec<String>) {
    let before = acked.len();
    let msg = loop {
        let r = c.call::<Create>(&CreateParams { room_id: Some(room(acked.len())), ..Default::default() });
        match r {
            Ok(k) => acked.push(k.cryptoid),
            Err(_) if acked.len() > before + 5000 => panic!("the disk never filled"),
            Err(e) => break storage_error(Err::<(), _>(e)),
        }
    };
    assert!(msg.contains("No space left on device"), "{msg}");
    assert!(acked.len() > before, "not one key fitted");
}

/// A sample of the keys sign, and the journal verifies.
fn signs_and_verifies(c: &mut Client, acked: &[String]) {
    for (i, k) in acked.iter().enumerate().step_by(acked.len().div_ceil(8)) {
        let signed = sign(c, pdus::message(k, &room(i), "space is back"));
        assert_verifies(&signed.pdu, k);
    }
    let v = c.call::<Verify>(&NoParams {}).expect("journal.verify");
    assert!(v.ok, "journal after a full disk: {v:?}");
}
