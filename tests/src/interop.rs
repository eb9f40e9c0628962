//! Real peers for the sharing tests: matrix-js-sdk (through
//! `tests/interop/js/ssss.mjs` on node) and a Synapse homeserver (through
//! `tests/synapse.sh`). `tests/run.sh` installs both and sets
//! `CRYPTOID_TEST_JS=1` and `CRYPTOID_TEST_SYNAPSE=1`, which make them
//! required; run alone, a test without them says SKIPPED and returns.

use cryptoid_protocol::json::{self, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// Whether matrix-js-sdk can be run; panics when it is required and cannot.
pub fn js_available() -> bool {
    let installed = root().join("tests/interop/js/node_modules/matrix-js-sdk/package.json").exists()
        && Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !installed && required("CRYPTOID_TEST_JS") {
        panic!("CRYPTOID_TEST_JS=1 but matrix-js-sdk is not installed (npm ci --prefix tests/interop/js)");
    }
    if !installed {
        eprintln!(
            "SKIPPED: matrix-js-sdk is not installed (run tests/run.sh, or npm ci --prefix tests/interop/js)"
        );
    }
    installed
}

/// One request to matrix-js-sdk; its answer, or its error text.
pub fn js(request: &str) -> Result<Value, String> {
    let mut child = Command::new("node")
        .arg(root().join("tests/interop/js/ssss.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run node: {e}"))?;
    child.stdin.take().map(|mut s| s.write_all(request.as_bytes())).transpose().map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v =
        json::from_str(&text).map_err(|e| format!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)))?;
    match v.as_object().and_then(|o| o.get("error")) {
        Some(e) => Err(e.as_str().unwrap_or("?").to_owned()),
        None if out.status.success() => Ok(v),
        None => Err(format!("exit {:?}", out.status.code())),
    }
}

/// A string field of a JSON answer.
pub fn field(v: &Value, k: &str) -> String {
    v.as_object()
        .and_then(|o| o.get(k))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {k} in {v}"))
        .to_owned()
}

/// A Synapse homeserver on 127.0.0.1, in its own directory; stopped when
/// dropped.
pub struct Synapse {
    pub dir: tempfile::TempDir,
    pub url: String,
}

fn script(args: &[&str]) -> Result<String, String> {
    let out = Command::new(root().join("tests/synapse.sh"))
        .args(args)
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run tests/synapse.sh: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Synapse {
    /// Starts one, if the venv is installed; panics when it is required
    /// and does not start.
    pub fn start() -> Option<Synapse> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_str().expect("utf-8").to_owned();
        match script(&["start", &path]) {
            Ok(url) => Some(Synapse { dir, url }),
            Err(e) if required("CRYPTOID_TEST_SYNAPSE") => {
                panic!("CRYPTOID_TEST_SYNAPSE=1 but Synapse does not start: {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED: no Synapse (run tests/run.sh, or tests/synapse.sh install): {e}");
                None
            }
        }
    }

    /// Registers `@name:localhost`; its user ID and the file holding its
    /// access token.
    pub fn user(&self, name: &str) -> (String, PathBuf) {
        let path = self.dir.path().to_str().expect("utf-8");
        let id = script(&["user", path, name]).unwrap_or_else(|e| panic!("register {name}: {e}"));
        (id, self.dir.path().join(format!("{name}.token")))
    }
}

impl Synapse {
    /// A room of `room_version` built by `tests/interop/synapse_room.py`
    /// (Alice and Bob, a power change, a topic, messages), read back with
    /// an `event_format: federation` filter: the room ID, Alice's /sync
    /// file and the server's key file.
    pub fn room_history(&self, alice: &Path, bob: &Path, room_version: &str) -> (String, PathBuf, PathBuf) {
        let venv = std::env::var("CRYPTOID_SYNAPSE_VENV").map(PathBuf::from).unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/cryptoid-tests/synapse-venv")
        });
        let out = self.dir.path().join(format!("history-{room_version}"));
        std::fs::create_dir_all(&out).expect("history dir");
        let run = Command::new(venv.join("bin/python"))
            .arg(root().join("tests/interop/synapse_room.py"))
            .args([self.url.as_str(), path_str(alice), path_str(bob), room_version, path_str(&out)])
            .output()
            .expect("run synapse_room.py");
        assert!(run.status.success(), "synapse_room.py: {}", String::from_utf8_lossy(&run.stderr));
        let room = String::from_utf8_lossy(&run.stdout).trim().to_owned();
        (room, out.join("sync.json"), out.join("keys.json"))
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

impl Drop for Synapse {
    fn drop(&mut self) {
        let _ = script(&["stop", self.dir.path().to_str().unwrap_or("")]);
    }
}
