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
use std::io::{IsTerminal, Write};
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
    // Questions are matched by the pid the agent sees (in a container it
    // is not ours).
    let Ok(registered) = client.call::<AskHere>(&NoParams {}) else { return };
    let me = registered.pid;
    let spawned = std::thread::Builder::new().name("self-confirm".into()).spawn(move || {
        let mut answered = std::collections::HashSet::new();
        let mut tty = tty;
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let Ok(list) = client.call::<Pending>(&NoParams {}) else { return };
            let mine = list.pending.into_iter().filter(|p| p.client_pid == Some(me) && !p.person_only);
            for p in mine.filter(|p| answered.insert(p.id)) {
                // Keys typed before the question was shown answer nothing.
                let _ = rustix::termios::tcflush(&tty, rustix::termios::QueueSelector::IFlush);
                let _ = write!(tty, "\nThe agent asks: {}\n", crate::output::shown(&p.prompt));
                for r in &p.reasons {
                    let _ = writeln!(tty, "  why: {}", crate::output::shown(r));
                }
                let _ = write!(tty, "Allow? [y/N] ");
                let _ = tty.flush();
                let still_asked = |c: &mut cryptoid_protocol::client::blocking::Client| {
                    c.call::<Pending>(&NoParams {}).is_ok_and(|l| l.pending.iter().any(|q| q.id == p.id))
                };
                let line = match read_answer(&mut tty, || still_asked(&mut client)) {
                    Read::Line(l) => l,
                    Read::AnsweredElsewhere => {
                        let _ = writeln!(tty, "(answered elsewhere)");
                        continue;
                    }
                    // End of input: a no, rather than a question left to
                    // time out; then nothing more is asked here.
                    Read::End => {
                        let _ = client.call::<Answer>(&AnswerParams {
                            id: p.id,
                            allow: false,
                            remember_secs: None,
                        });
                        return;
                    }
                };
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

/// What reading an answer gave.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    Line(String),
    /// The question went away (answered in another dialog, timed out):
    /// the terminal is left alone for whatever reads it next.
    AnsweredElsewhere,
    End,
}

/// One answer line: ends at `\n` or `\r` (a terminal left in raw mode
/// sends Enter as `\r`). While nothing is typed, `still_asked` is checked
/// every half second.
fn read_answer<T: std::io::Read + std::os::fd::AsFd>(
    tty: &mut T,
    mut still_asked: impl FnMut() -> bool,
) -> Read {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let half_second = Timespec { tv_sec: 0, tv_nsec: 500_000_000 };
    loop {
        let ready = {
            let mut fds = [PollFd::new(&*tty, PollFlags::IN)];
            poll(&mut fds, Some(&half_second)).unwrap_or(1)
        };
        if ready == 0 {
            if line.is_empty() && !still_asked() {
                return Read::AnsweredElsewhere;
            }
            continue;
        }
        match tty.read(&mut byte) {
            Ok(0) | Err(_) if line.is_empty() => return Read::End,
            Ok(0) | Err(_) => return Read::Line(String::from_utf8_lossy(&line).into_owned()),
            Ok(_) if byte[0] == b'\n' || byte[0] == b'\r' => {
                return Read::Line(String::from_utf8_lossy(&line).into_owned())
            }
            Ok(_) if line.len() < MAX_ANSWER => line.push(byte[0]),
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{read_answer, Read};
    use std::io::Write;

    fn answer(input: &[u8], close: bool) -> Read {
        let (mut rd, mut wr) = std::io::pipe().expect("pipe");
        wr.write_all(input).expect("write");
        if close {
            drop(wr);
            return read_answer(&mut rd, || true);
        }
        let r = read_answer(&mut rd, || false);
        drop(wr);
        r
    }

    #[test]
    fn an_answer_ends_at_a_newline_or_a_carriage_return() {
        assert_eq!(answer(b"y\n", true), Read::Line("y".into()));
        assert_eq!(answer(b"yes\rrest", true), Read::Line("yes".into()));
        assert_eq!(answer(b"", true), Read::End);
        let long = [b'y'; 1000];
        assert!(matches!(answer(&long, true), Read::Line(l) if l.len() == super::MAX_ANSWER));
        // Nothing typed and the question gone: the terminal is let go.
        assert_eq!(answer(b"", false), Read::AnsweredElsewhere);
    }
}
