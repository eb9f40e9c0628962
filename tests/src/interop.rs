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

impl Drop for Synapse {
    fn drop(&mut self) {
        let _ = script(&["stop", self.dir.path().to_str().unwrap_or("")]);
    }
}
