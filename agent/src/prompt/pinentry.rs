//! pinentry as a provider: the dialog program every Linux desktop already
//! has (pinentry-gnome3, -qt, -gtk2, -curses, -tty), spoken to in Assuan
//! (`cryptoid_protocol::assuan`). Used for confirmations and for token
//! PINs.
//!
//! A dialog needs a display: the requesting client's `DISPLAY`,
//! `WAYLAND_DISPLAY`, `XAUTHORITY` and terminal (from `/proc/<pid>`; the
//! client is the same user), else the agent's own. Every failure (not
//! installed, no display, killed, cancelled, timed out) ends the dialog
//! with an error, never a hang: the conversation has a deadline, and the
//! program is killed when the request stops waiting.

use cryptoid_protocol::assuan::{Dialog, Outcome, Request, Step};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The variables a dialog needs to find the person's screen.
const DISPLAY_VARS: [&str; 3] = ["DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY"];
/// Longest line read from pinentry.
const MAX_LINE: usize = 8 * 1024;

/// Where the dialog appears, and where that was learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Display {
    pub vars: Vec<(String, String)>,
    pub tty: Option<String>,
    /// `client pid N` or `agent`, for the journal.
    pub source: String,
}

impl Display {
    /// Whether there is anywhere to show a dialog: a display or a terminal.
    /// Without one a pinentry cannot ask, and some answer "cancelled",
    /// which must not count as the person's "no".
    pub fn is_usable(&self) -> bool {
        self.vars.iter().any(|(k, _)| k == "DISPLAY" || k == "WAYLAND_DISPLAY") || self.tty.is_some()
    }

    /// Says where the dialog went, e.g. `DISPLAY=:0 of client pid 42`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> =
            self.vars.iter().filter(|(k, _)| k != "XAUTHORITY").map(|(k, v)| format!("{k}={v}")).collect();
        if let Some(t) = &self.tty {
            parts.push(format!("tty {t}"));
        }
        if parts.is_empty() {
            parts.push("no display".into());
        }
        format!("{} of {}", parts.join(", "), self.source)
    }
}

/// The display of the client `pid` if it has one, else the agent's.
pub fn display_for(pid: Option<i32>) -> Display {
    if let Some(pid) = pid {
        if let Some(d) = client_display(pid) {
            return d;
        }
    }
    agent_display()
}

/// The agent's own display (its session's, as systemd or the desktop gave
/// it): the only one for questions the client must not be able to answer
/// itself. A client chooses its own `DISPLAY` and terminal, so a dialog
/// there may be one it runs (an Xvfb, a pty) and answers.
pub fn agent_display() -> Display {
    let vars = DISPLAY_VARS
        .iter()
        .filter_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()).map(|v| ((*k).to_owned(), v)))
        .collect();
    Display { vars, tty: tty_of("self"), source: "agent".into() }
}

fn client_display(pid: i32) -> Option<Display> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let vars: Vec<(String, String)> = environ
        .split(|b| *b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok()?.split_once('='))
        .filter(|(k, v)| DISPLAY_VARS.contains(k) && !v.is_empty() && v.len() < 4096)
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let tty = tty_of(&pid.to_string());
    if vars.is_empty() && tty.is_none() {
        return None;
    }
    Some(Display { vars, tty, source: format!("client pid {pid}") })
}

/// The terminal on a process's standard input, if it is one.
fn tty_of(pid: &str) -> Option<String> {
    let target = std::fs::read_link(format!("/proc/{pid}/fd/0")).ok()?;
    let s = target.to_str()?;
    (s.starts_with("/dev/pts/") || (s.starts_with("/dev/tty") && s.len() > "/dev/tty".len()))
        .then(|| s.to_owned())
}

/// The pinentry program: `CRYPTOID_PINENTRY`, else the configured one,
/// else `pinentry` on `PATH` (as gpg-agent does). `none` turns it off.
pub fn program(configured: Option<&str>) -> Option<PathBuf> {
    let chosen = std::env::var("CRYPTOID_PINENTRY").ok().or_else(|| configured.map(str::to_owned));
    match chosen.as_deref() {
        Some("none") | Some("") => None,
        Some(p) => Some(PathBuf::from(p)),
        None => std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|d| Path::new(d).join("pinentry"))
            .find(|p| p.is_file()),
    }
}

/// Why a dialog gave no answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PinentryError {
    #[error("pinentry {0} cannot be run ({1}): install a pinentry (e.g. pinentry-gnome3) or set `pinentry` in config.toml")]
    NotInstalled(String, String),
    #[error("pinentry {0} exited before answering (no display? {1})")]
    Died(String, String),
    #[error("pinentry {0} did not answer within {1} s")]
    Hung(String, u64),
    #[error("{0}")]
    Failed(String),
}

/// Runs one dialog; gives up (and kills pinentry) after `limit`.
pub async fn run(
    program: &Path,
    req: &Request,
    display: &Display,
    limit: Duration,
) -> Result<Outcome, PinentryError> {
    let name = program.display().to_string();
    let mut cmd = tokio::process::Command::new(program);
    for k in DISPLAY_VARS {
        cmd.env_remove(k);
    }
    cmd.envs(display.vars.iter().map(|(k, v)| (k, v)));
    if let Some(tty) = &display.tty {
        // Terminal pinentries read the terminal type from the environment.
        cmd.env("GPG_TTY", tty);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| PinentryError::NotInstalled(name.clone(), e.to_string()))?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(PinentryError::Failed("pinentry's pipes were not set up".into()));
    };
    let mut req = req.clone();
    if req.tty.is_none() {
        req.tty = display.tty.clone();
    }
    let converse = async {
        let mut reader = BufReader::new(stdout);
        let mut dialog = Dialog::new(&req);
        let mut line = zeroize::Zeroizing::new(Vec::with_capacity(256));
        loop {
            line.clear();
            let n = (&mut reader).take(MAX_LINE as u64).read_until(b'\n', &mut line).await;
            match n {
                Ok(0) | Err(_) => return Err(PinentryError::Died(name.clone(), display.describe())),
                Ok(_) => {}
            }
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            match dialog.next(text) {
                Step::Send(s) if s.is_empty() => {}
                Step::Send(s) => {
                    if stdin.write_all(s.as_bytes()).await.is_err() {
                        return Err(PinentryError::Died(name.clone(), display.describe()));
                    }
                }
                Step::Done(outcome) => {
                    let _ = stdin.write_all(b"BYE\n").await;
                    return Ok(outcome);
                }
            }
        }
    };
    let r = tokio::time::timeout(limit, converse).await;
    let _ = child.start_kill();
    match r {
        Ok(r) => r,
        Err(_) => Err(PinentryError::Hung(program.display().to_string(), limit.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_display_is_described_for_the_journal() {
        let d = Display {
            vars: vec![("DISPLAY".into(), ":99".into()), ("XAUTHORITY".into(), "/x".into())],
            tty: None,
            source: "client pid 7".into(),
        };
        assert_eq!(d.describe(), "DISPLAY=:99 of client pid 7");
    }

    #[test]
    fn a_client_s_display_comes_from_its_environment() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .env("DISPLAY", ":42")
            .env("WAYLAND_DISPLAY", "wayland-7")
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep");
        // Right after exec the kernel may not have laid out the new
        // environment yet (a real client has long been running).
        let environ = format!("/proc/{}/environ", child.id());
        for _ in 0..100 {
            if std::fs::read(&environ).is_ok_and(|e| !e.is_empty()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let d = display_for(Some(child.id() as i32));
        let _ = child.kill();
        let _ = child.wait();
        assert!(d.vars.contains(&("DISPLAY".into(), ":42".into())), "{d:?}");
        assert!(d.vars.contains(&("WAYLAND_DISPLAY".into(), "wayland-7".into())), "{d:?}");
        assert!(d.source.starts_with("client pid"), "{d:?}");
    }

    #[tokio::test]
    async fn a_missing_pinentry_is_an_error_not_a_hang() {
        let d = display_for(None);
        let r =
            run(Path::new("/nonexistent/pinentry"), &Request::default(), &d, Duration::from_secs(5)).await;
        assert!(matches!(r, Err(PinentryError::NotInstalled(..))), "{r:?}");
    }

    #[tokio::test]
    async fn a_pinentry_that_dies_or_hangs_is_an_error_not_a_hang() {
        let d = display_for(None);
        let r = run(Path::new("/bin/true"), &Request::default(), &d, Duration::from_secs(5)).await;
        assert!(matches!(r, Err(PinentryError::Died(..))), "{r:?}");
        // One that never greets: given up on at the deadline, and killed.
        let dir = tempfile::tempdir().expect("tempdir");
        let silent = dir.path().join("silent");
        std::fs::write(&silent, "#!/bin/sh\nexec sleep 30\n").expect("script");
        std::fs::set_permissions(&silent, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let r = run(&silent, &Request::default(), &d, Duration::from_millis(300)).await;
        assert!(matches!(r, Err(PinentryError::Hung(..))), "{r:?}");
    }
}
