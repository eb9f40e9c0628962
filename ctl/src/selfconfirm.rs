//! When a command runs on a terminal and the agent holds one of *this*
//! process's requests for confirmation, ask the user right here (on
//! /dev/tty) and answer it, instead of leaving them to find `cryptoidctl
//! confirm`. It is the same answer path as `cryptoidctl confirm`, so the
//! agent's `socket_confirm = false` turns it off too.
//!
//! One asker per terminal: before the command sends its request, it tells
//! the agent (`confirm.ask_here`) that it asks here, and the agent starts
//! no pinentry on this terminal for it. Two programs reading one terminal
//! split the person's keystrokes between them. Questions only the agent's
//! own dialog may answer (`person_only`) are left to that dialog; and
//! where the agent refuses `ask_here`, nothing is asked here at all.

use crate::Ctx;
use cryptoid_protocol::wire::confirm::{Answer, AnswerParams, AskHere, Pending};
use cryptoid_protocol::wire::NoParams;
use std::io::{IsTerminal, Read, Write};
use std::time::Duration;

/// Longest answer line read.
const MAX_ANSWER: usize = 64;

/// Tells the agent this process asks on its terminal, then starts the
/// helper thread. Does nothing without a terminal, or when the agent
/// refuses (its dialog asks then).
pub fn start(ctx: &Ctx) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let Ok(tty) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty") else { return };
    let Ok(mut client) = ctx.connect() else { return };
    // Before the command's own request, so the agent knows before it asks.
    if client.call::<AskHere>(&NoParams {}).is_err() {
        return;
    }
    let me = std::process::id() as i32;
    let spawned = std::thread::Builder::new().name("self-confirm".into()).spawn(move || {
        let mut answered = std::collections::HashSet::new();
        let mut tty = tty;
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let Ok(list) = client.call::<Pending>(&NoParams {}) else { return };
            let mine = list.pending.into_iter().filter(|p| p.client_pid == Some(me) && !p.person_only);
            for p in mine.filter(|p| answered.insert(p.id)) {
                let _ = write!(tty, "\nThe agent asks: {}\n", crate::output::shown(&p.prompt));
                for r in &p.reasons {
                    let _ = writeln!(tty, "  why: {}", crate::output::shown(r));
                }
                let _ = write!(tty, "Allow? [y/N] ");
                let _ = tty.flush();
                let Some(line) = read_answer(&mut tty) else { return };
                let allow = matches!(line.trim(), "y" | "Y" | "yes" | "Yes" | "YES");
                if let Err(e) = client.call::<Answer>(&AnswerParams { id: p.id, allow, remember_secs: None })
                {
                    let _ = writeln!(tty, "could not answer: {e}");
                }
            }
        }
    });
    drop(spawned);
}

/// One answer line: ends at `\n` or `\r` (a terminal left in raw mode
/// sends Enter as `\r`); `None` at the end of input.
fn read_answer(tty: &mut impl Read) -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match tty.read(&mut byte) {
            Ok(0) | Err(_) => return (!line.is_empty()).then(|| String::from_utf8_lossy(&line).into_owned()),
            Ok(_) if byte[0] == b'\n' || byte[0] == b'\r' => {
                return Some(String::from_utf8_lossy(&line).into_owned())
            }
            Ok(_) if line.len() < MAX_ANSWER => line.push(byte[0]),
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read_answer;

    #[test]
    fn an_answer_ends_at_a_newline_or_a_carriage_return() {
        assert_eq!(read_answer(&mut &b"y\n"[..]).as_deref(), Some("y"));
        assert_eq!(read_answer(&mut &b"yes\rrest"[..]).as_deref(), Some("yes"));
        assert_eq!(read_answer(&mut &b""[..]), None);
        let long = [b'y'; 1000];
        assert_eq!(read_answer(&mut &long[..]).map(|s| s.len()), Some(super::MAX_ANSWER));
    }
}
