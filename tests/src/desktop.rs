//! A person at a desktop, played by real programs: a terminal (tmux, read
//! with `capture-pane`, typed into with `send-keys`), an X display (Xvfb,
//! clicked and typed into with xdotool, photographed with ImageMagick's
//! `import`), and a client that talks to the agent from inside them (so the
//! agent finds its terminal and display in `/proc`). `tests/run.sh`
//! installs them and sets `CRYPTOID_TEST_DESKTOP=1`, which makes them
//! required; run alone, a test without them says SKIPPED and returns.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Whether every program in `needed` is installed; panics when the desktop
/// tests are required and one is missing.
pub fn available(needed: &[&str]) -> bool {
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {p}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CRYPTOID_TEST_DESKTOP").is_ok_and(|v| v == "1") {
        panic!("CRYPTOID_TEST_DESKTOP=1 but {missing:?} are not installed");
    }
    eprintln!("SKIPPED: {missing:?} not installed (run tests/run.sh)");
    false
}

/// Polls `f` every 100 ms until it gives `Some`, or panics after `secs`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > end {
            panic!("gave up waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A tmux server of its own with one window running `command`.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(command: &str, env: &[(&str, &str)]) -> Tmux {
        let socket = format!("cryptoid-test-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &socket, "-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "40"]);
        for (k, v) in env {
            cmd.args(["-e", &format!("{k}={v}")]);
        }
        let status = cmd.arg(command).status().expect("tmux");
        assert!(status.success(), "tmux did not start");
        Tmux { socket }
    }

    /// What the window shows now.
    pub fn screen(&self) -> String {
        self.capture(None)
    }

    /// Opens a second window named `name` running `command`, in the
    /// background: keys still go to the first window.
    pub fn open_window(&self, name: &str, command: &str) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "new-window", "-d", "-n", name, command])
            .status()
            .expect("tmux new-window");
        assert!(status.success(), "tmux new-window failed");
    }

    /// What window `name` shows now.
    pub fn screen_of(&self, name: &str) -> String {
        self.capture(Some(name))
    }

    fn capture(&self, window: Option<&str>) -> String {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.socket, "capture-pane", "-p"]);
        if let Some(w) = window {
            cmd.args(["-t", &format!(":{w}")]);
        }
        let out = cmd.output().expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the window shows `text`; returns the screen.
    pub fn wait_for_text(&self, text: &str) -> String {
        self.wait_for_text_within(20, text)
    }

    /// Waits up to `secs` until the window shows `text`; returns the screen.
    /// On failure the panic shows the last screen.
    pub fn wait_for_text_within(&self, secs: u64, text: &str) -> String {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            if Instant::now() > end {
                panic!("gave up waiting for {text:?} in the terminal; it shows:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Types `keys` (tmux key names, e.g. `"a"`, `"Enter"`).
    pub fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys"])
            .args(keys)
            .status()
            .expect("send-keys");
        assert!(status.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).stderr(Stdio::null()).status();
    }
}

/// An X server in memory (Xvfb) on a display of its own.
pub struct Xvfb {
    child: Child,
    pub display: String,
}

impl Xvfb {
    /// Starts Xvfb on a display it picks itself (`-displayfd`): the X
    /// server skips displays in use and clears locks whose owner is dead, so
    /// an Xvfb killed with SIGKILL earlier (a test or session cut short)
    /// cannot use up the displays, as a scan of `/tmp/.X*-lock` could.
    pub fn start() -> Xvfb {
        use std::io::BufRead;
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", "1024x768x24", "-nolisten", "tcp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb");
        let stdout = child.stdout.take().expect("Xvfb's stdout");
        let mut line = String::new();
        // Xvfb writes the display number once it listens; EOF means it died.
        let read = std::io::BufReader::new(stdout).read_line(&mut line);
        let n: u32 = match (read, line.trim().parse()) {
            (Ok(_), Ok(n)) => n,
            _ => {
                let _ = child.kill();
                panic!("Xvfb did not say which display it took (read {line:?})");
            }
        };
        let display = format!(":{n}");
        let socket = format!("/tmp/.X11-unix/X{n}");
        wait_for(20, "Xvfb's socket", || Path::new(&socket).exists().then_some(()));
        Xvfb { child, display }
    }

    /// Runs xdotool with these arguments on this display; its output.
    pub fn xdotool(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("xdotool").args(args).env("DISPLAY", &self.display).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Waits for a window whose name matches `name`; its ID.
    pub fn wait_for_window(&self, name: &str) -> String {
        wait_for(20, &format!("a window named {name:?}"), || {
            self.xdotool(&["search", "--onlyvisible", "--name", name])
                .and_then(|s| s.lines().next().map(str::to_owned))
        })
    }

    /// A PNG of the whole screen.
    pub fn screenshot(&self, path: &Path) {
        let status = Command::new("import")
            .args(["-window", "root", path.to_str().expect("utf-8")])
            .env("DISPLAY", &self.display)
            .status()
            .expect("import");
        assert!(status.success(), "screenshot failed");
    }
}

impl Drop for Xvfb {
    /// SIGTERM, so Xvfb removes its lock and socket; SIGKILL would leave
    /// them behind.
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32);
        if pid.and_then(|p| rustix::process::kill_process(p, rustix::process::Signal::TERM).ok()).is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A JSON-RPC client to run inside a terminal or a display: sends the line
/// in `request`, writes the answer line to `answer` and prints ANSWERED.
/// Being a plain process with the terminal on its standard input, it lets
/// the agent find the terminal and the display it runs on.
pub fn client_script(dir: &Path) -> PathBuf {
    let p = dir.join("client.py");
    std::fs::write(
        &p,
        "import socket, sys\n\
         s = socket.socket(socket.AF_UNIX)\n\
         s.connect(sys.argv[1])\n\
         s.sendall(open(sys.argv[2], 'rb').read().strip() + b'\\n')\n\
         buf = b''\n\
         while not buf.endswith(b'\\n'):\n\
         \x20   d = s.recv(65536)\n\
         \x20   if not d:\n\
         \x20       break\n\
         \x20   buf += d\n\
         open(sys.argv[3], 'wb').write(buf)\n\
         print('ANSWERED')\n\
         import time; time.sleep(600)\n",
    )
    .expect("client script");
    p
}

/// The command line running the client for one request.
/// Starts the client script on an X display (its `DISPLAY`), in the
/// background, as a desktop program would run.
pub fn spawn_client_on(display: &str, script: &Path, socket: &Path, request: &Path, answer: &Path) -> Child {
    Command::new("python3")
        .args([script, socket, request, answer])
        .env("DISPLAY", display)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("client")
}

pub fn client_command(script: &Path, socket: &Path, request: &Path, answer: &Path) -> String {
    format!("python3 {} {} {} {}", script.display(), socket.display(), request.display(), answer.display())
}
