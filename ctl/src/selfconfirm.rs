//! When a command runs on a terminal and the agent holds one of *this*
//! process's requests for confirmation, ask the user right here (on
//! /dev/tty) and answer it, instead of leaving them to find `cryptoidctl
//! confirm`. It is the same answer path as `cryptoidctl confirm`, so the
//! agent's `socket_confirm = false` turns it off too.

use crate::Ctx;
use cryptoid_protocol::wire::confirm::{Answer, AnswerParams, Pending};
use cryptoid_protocol::wire::NoParams;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::time::Duration;

/// Starts the helper thread if there is a terminal to ask on.
pub fn start(ctx: &Ctx) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let Ok(tty) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty") else { return };
    let Ok(mut client) = ctx.connect() else { return };
    let me = std::process::id() as i32;
    let spawned = std::thread::Builder::new().name("self-confirm".into()).spawn(move || {
        let mut answered = std::collections::HashSet::new();
        let mut reader = BufReader::new(match tty.try_clone() {
            Ok(t) => t,
            Err(_) => return,
        });
        let mut tty = tty;
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let Ok(list) = client.call::<Pending>(&NoParams {}) else { return };
            for p in list.pending.into_iter().filter(|p| p.client_pid == Some(me) && answered.insert(p.id)) {
                let _ = write!(tty, "\nThe agent asks: {}\n", crate::output::shown(&p.prompt));
                for r in &p.reasons {
                    let _ = writeln!(tty, "  why: {}", crate::output::shown(r));
                }
                let _ = write!(tty, "Allow? [y/N] ");
                let _ = tty.flush();
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let allow = matches!(line.trim(), "y" | "Y" | "yes");
                if let Err(e) = client.call::<Answer>(&AnswerParams { id: p.id, allow, remember_secs: None })
                {
                    let _ = writeln!(tty, "could not answer: {e}");
                }
            }
        }
    });
    drop(spawned);
}
