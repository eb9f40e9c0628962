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
use cryptoid_protocol::wire::journal::{Tail, TailParams, Verify};
use cryptoid_protocol::wire::keys::{Create, CreateParams, Get, KeyRef, List, ListParams};
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
    // Room for the room view's database (about 2 MiB when new) and a few
    // hundred keys.
    let fs = Tmpfs::mount(&agent.data_dir(), "4m");
    agent.spawn().expect("agent starts on the tmpfs");
    let mut c = agent.unlocked();

    // Fill the disk with keys until the agent says it cannot write.
    let mut acked = Vec::new();
    fill(&mut c, &mut acked);
    // Signing needs a journal entry: once the journal cannot grow, the
    // signature is withheld, clearly. (Keys take whole pages; the journal's
    // last page may still hold a few entries.)
    fill_with_ballast(&agent.data_dir());
    let msg = sign_until_storage_error(&mut c, &acked[0]);
    assert!(msg.contains("No space left on device"), "{msg}");

    // Some space comes back, without a restart: the agent signs again, and
    // the line the full disk cut short did not break the journal.
    fs.resize("5m");
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
    every_key_was_journaled_before_it_was_made(&mut c);
}

/// Each key on disk has a `keys.create` entry naming its room, written
/// before the key was: a full disk must not leave keys the journal lacks.
fn every_key_was_journaled_before_it_was_made(c: &mut Client) {
    let keys = c.call::<List>(&ListParams::default()).expect("keys.list");
    let tail = c.call::<Tail>(&TailParams { limit: Some(10_000), room_id: None }).expect("journal.tail");
    let intended: std::collections::HashSet<&str> = tail
        .entries
        .iter()
        .filter_map(|e| e.as_object())
        .filter(|o| o.get("method").and_then(|v| v.as_str()) == Some("keys.create"))
        .filter(|o| o.get("outcome").and_then(|v| v.as_str()) == Some("intended"))
        .filter_map(|o| o.get("room_id").and_then(|v| v.as_str()))
        .collect();
    for k in &keys.keys {
        let room = k.room_id.as_deref().unwrap_or_default();
        assert!(intended.contains(room), "key {} of {room} has no journaled intent", k.cryptoid);
    }
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

/// Takes what space is left, so that only the journal's slack remains.
fn fill_with_ballast(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("ballast")).expect("ballast");
    let page = [0u8; 4096];
    while f.write_all(&page).is_ok() {}
}

/// Signs with `key` until the journal is full; each signature released
/// before that verifies.
fn sign_until_storage_error(c: &mut Client, key: &str) -> String {
    for i in 0..64 {
        match try_sign(c, pdus::message(key, &room(0), &format!("on a full disk {i}"))) {
            Ok(signed) => assert_verifies(&signed.pdu, key),
            // The room view could not record the last signature: it is
            // unreadable until reopened, and the policy refuses meanwhile.
            Err(e) if e.reasons().iter().any(|r| r.contains("room view cannot be read")) => {
                return "No space left on device (the room view could not record)".into()
            }
            Err(e) => return storage_error(Err::<(), _>(e)),
        }
    }
    panic!("64 signatures fitted on a full disk")
}

/// A sample of the keys sign, and the journal verifies. A room view that a
/// full disk broke is reopened within a second (its journal replayed);
/// until then the policy refuses, and the first signature waits for it.
fn signs_and_verifies(c: &mut Client, acked: &[String]) {
    let first = pdus::message(&acked[0], &room(0), "the view is back");
    for _ in 0..50 {
        match try_sign(c, first.clone()) {
            Err(e) if e.reasons().iter().any(|r| r.contains("room view cannot be read")) => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            other => {
                other.expect("signs once the room view is reopened");
                break;
            }
        }
    }
    for (i, k) in acked.iter().enumerate().step_by(acked.len().div_ceil(8)) {
        let signed = sign(c, pdus::message(k, &room(i), "space is back"));
        assert_verifies(&signed.pdu, k);
    }
    let v = c.call::<Verify>(&NoParams {}).expect("journal.verify");
    assert!(v.ok, "journal after a full disk: {v:?}");
}
