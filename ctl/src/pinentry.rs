//! Secrets asked in the desktop's own dialog when there is no terminal
//! (`cryptoidctl unlock` started from a launcher or a desktop session):
//! pinentry, as gpg does, over its Assuan protocol
//! (`cryptoid_protocol::assuan`).

use anyhow::{bail, Context, Result};
use cryptoid_protocol::assuan::{Dialog, Outcome, Request, Step};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use zeroize::Zeroizing;

/// `CRYPTOID_PINENTRY`, else `pinentry` on `PATH`; `none` turns it off.
fn program() -> Option<PathBuf> {
    match std::env::var("CRYPTOID_PINENTRY").ok().as_deref() {
        Some("none") | Some("") => None,
        Some(p) => Some(PathBuf::from(p)),
        None => std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|d| Path::new(d).join("pinentry"))
            .find(|p| p.is_file()),
    }
}

/// Seconds the dialog may take in all.
const DEADLINE_SECS: u64 = 130;

/// Asks for one secret; `prompt` is the line a terminal would show.
pub fn ask(prompt: &str) -> Result<Zeroizing<String>> {
    let Some(program) = program() else {
        bail!("no terminal to ask on and no pinentry (install one, or use --passphrase-file F|-)");
    };
    let mut child = Command::new(&program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run pinentry {}", program.display()))?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        bail!("pinentry's pipes were not set up");
    };
    let req = Request {
        title: "cryptoidctl".into(),
        description: prompt.trim_end_matches([':', ' ']).to_owned(),
        prompt: Some(prompt.trim_end().to_owned()),
        timeout_secs: DEADLINE_SECS - 10,
        wants_pin: true,
        ..Default::default()
    };
    // A deadline of our own: a pinentry that ignores SETTIMEOUT is killed,
    // and so the read below ends.
    let child = std::sync::Arc::new(std::sync::Mutex::new(child));
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watched = child.clone();
    std::thread::spawn(move || {
        if finished.recv_timeout(std::time::Duration::from_secs(DEADLINE_SECS)).is_err() {
            if let Ok(mut c) = watched.lock() {
                let _ = c.kill();
            }
        }
    });
    let mut dialog = Dialog::new(&req);
    let mut reader = BufReader::new(stdout.take(64 * 1024));
    let mut line = Zeroizing::new(Vec::with_capacity(8 * 1024));
    let outcome = (|| -> Result<Outcome> {
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(Outcome::Failed(format!(
                    "pinentry {} exited without answering (no display? or it timed out)",
                    program.display()
                )));
            }
            match dialog.next(line.strip_suffix(b"\n").unwrap_or(&line)) {
                Step::Send(s) if s.is_empty() => {}
                Step::Send(s) => stdin.write_all(s.as_bytes())?,
                Step::Done(o) => {
                    let _ = stdin.write_all(b"BYE\n");
                    return Ok(o);
                }
            }
        }
    })();
    drop(stdin);
    let _ = done.send(());
    if let Ok(mut c) = child.lock() {
        let _ = c.kill();
        let _ = c.wait();
    }
    let outcome = outcome?;
    match outcome {
        Outcome::Pin(p) if !p.is_empty() => Ok(p),
        Outcome::Pin(_) => bail!("nothing was entered"),
        Outcome::Cancelled => bail!("cancelled in pinentry"),
        Outcome::TimedOut => bail!("pinentry timed out"),
        Outcome::Confirmed => bail!("pinentry confirmed instead of giving a secret"),
        Outcome::Failed(why) => bail!("{why}"),
    }
}
