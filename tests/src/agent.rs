//! A real `cryptoid-agent` process on a temp directory.

use cryptoid_protocol::client::blocking::Client;
use cryptoid_protocol::wire::agent::{Unlock, UnlockParams};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The passphrase tests use.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// The policy of agents in tests that are not about the policy: the test
/// client is trusted, bursts and deletions need no confirmation.
pub const TEST_POLICY: &str = "[policy]\nunknown_clients = \"allow\"\nconfirm_delete = false\n[policy.rate]\nper_room = 0\nper_client = 0\n";

/// A running agent; killed when dropped.
pub struct Agent {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    extra_args: Vec<String>,
    /// The session bus the agent uses; `None` runs it with `--no-dbus`.
    bus: Option<String>,
    /// Extra environment (e.g. `SOFTHSM2_CONF`).
    pub env: Vec<(String, String)>,
}

impl Agent {
    /// Starts an agent on a fresh temp directory.
    pub fn start() -> Agent {
        Agent::start_with(&[], None)
    }

    /// Starts an agent with extra arguments and config file text; a config
    /// without a `[policy]` section gets [`TEST_POLICY`].
    pub fn start_with(args: &[&str], config: Option<&str>) -> Agent {
        Agent::start_full(args, config, None)
    }

    /// Starts an agent with extra environment variables.
    pub fn start_with_env(config: Option<&str>, env: &[(&str, &str)]) -> Agent {
        let mut a = Agent::start_with(&[], config);
        a.kill9();
        a.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        a.spawn().expect("agent starts");
        a
    }

    /// Starts an agent that also serves D-Bus on the bus at `address`.
    pub fn start_on_bus(address: &str, config: Option<&str>) -> Agent {
        Agent::start_full(&[], config, Some(address.to_owned()))
    }

    fn start_full(args: &[&str], config: Option<&str>, bus: Option<String>) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut extra_args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let text = config.unwrap_or("");
        let text = if text.contains("[policy") { text.to_owned() } else { format!("{TEST_POLICY}{text}") };
        let p = dir.path().join("config.toml");
        std::fs::write(&p, text).expect("config");
        extra_args.push("--config".into());
        extra_args.push(p.display().to_string());
        if bus.is_none() {
            extra_args.push("--no-dbus".into());
        }
        let mut a = Agent { dir, child: None, extra_args, bus, env: Vec::new() };
        a.spawn().expect("agent starts");
        a
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run").join("agent.sock")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// The command line of this agent (for tests that start a second one).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(crate::bin("cryptoid-agent"));
        cmd.arg("--socket").arg(self.socket()).arg("--data-dir").arg(self.data_dir()).args(&self.extra_args);
        match &self.bus {
            Some(a) => cmd.env("DBUS_SESSION_BUS_ADDRESS", a),
            None => cmd.env_remove("DBUS_SESSION_BUS_ADDRESS"),
        };
        // No dialog pops up on the desktop of whoever runs the tests; the
        // pinentry tests give their own.
        cmd.env("CRYPTOID_PINENTRY", "none");
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    /// Spawns the process and waits for `CRYPTOID_AUTH_SOCK=` on stdout.
    /// Returns the agent's stderr when it exits before that.
    pub fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .expect("log file");
        let mut child = self
            .command()
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn cryptoid-agent");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.starts_with("CRYPTOID_AUTH_SOCK=") => {
                assert_eq!(line.trim_end(), format!("CRYPTOID_AUTH_SOCK={}", self.socket().display()));
                self.child = Some(child);
                Ok(())
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(self.log())
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).expect("running")
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; waits for a clean exit and returns its status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let pid = rustix::process::Pid::from_raw(c.id() as i32)?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).ok()?;
        c.wait().ok()?.code()
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn().expect("agent restarts");
    }

    /// Runs `cryptoidctl` against this agent with `args`, feeding `stdin`.
    pub fn ctl(&self, args: &[&str], stdin: &[u8]) -> std::process::Output {
        crate::run(
            Command::new(crate::bin("cryptoidctl")).env("CRYPTOID_AUTH_SOCK", self.socket()).args(args),
            stdin,
        )
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.socket()).expect("connect to the agent")
    }

    /// A client on an unlocked agent (the first unlock sets the passphrase).
    pub fn unlocked(&self) -> Client {
        let mut c = self.client();
        c.call::<Unlock>(&UnlockParams { passphrase: Some(PASSPHRASE.into()), backend: None, pin: None })
            .expect("unlock");
        c
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- agent log ---\n{}", self.log());
        }
    }
}

/// Whether `path` exists (for socket checks).
pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// A private `dbus-daemon --session` on a temp socket; killed when dropped.
pub struct Bus {
    child: Child,
    pub address: String,
    _dir: tempfile::TempDir,
}

impl Bus {
    pub fn start() -> Bus {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new("dbus-daemon")
            .arg("--session")
            .arg("--nofork")
            .arg(format!("--address=unix:path={}", dir.path().join("bus").display()))
            .arg("--print-address=1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (package dbus-daemon) must be installed");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("bus address");
        Bus { child, address: line.trim().to_owned(), _dir: dir }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
