//! A real TPM 2.0 emulator: `swtpm` in socket mode on a fresh state
//! directory (one per test that needs a fresh TPM), reached by the agent
//! through the TSS's `swtpm` TCTI and by the tests through tpm2-tools.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Swtpm {
    state: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
}

/// Two free consecutive ports (swtpm's server and control channels).
fn free_pair() -> u16 {
    for _ in 0..200 {
        let Ok(a) = TcpListener::bind("127.0.0.1:0") else { continue };
        let Ok(port) = a.local_addr().map(|a| a.port()) else { continue };
        drop(a);
        if port < 65535 && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two free consecutive ports for swtpm");
}

impl Swtpm {
    /// A fresh TPM.
    pub fn start() -> Swtpm {
        assert!(
            Command::new("swtpm").arg("--version").output().is_ok_and(|o| o.status.success()),
            "swtpm is not installed (packages swtpm swtpm-tools tpm2-tools)"
        );
        let mut t = Swtpm { state: tempfile::tempdir().expect("tempdir"), child: None, port: 0 };
        t.spawn(None);
        t
    }

    /// Starts swtpm on `port` (its clients' config names it), or on a free
    /// pair of ports.
    fn spawn(&mut self, port: Option<u16>) {
        for _ in 0..10 {
            let port = port.unwrap_or_else(free_pair);
            let child = Command::new("swtpm")
                .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
                .arg("--server")
                .arg(format!("type=tcp,bindaddr=127.0.0.1,port={port}"))
                .arg("--ctrl")
                .arg(format!("type=tcp,bindaddr=127.0.0.1,port={}", port + 1))
                .arg("--tpmstate")
                .arg(format!("dir={}", self.state.path().display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn swtpm");
            let mut child = child;
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken meanwhile: another pair
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    self.child = Some(child);
                    self.port = port;
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("swtpm did not start");
    }

    /// The TCTI the agent's `[tpm] tcti` takes.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// The agent's config section for this TPM.
    pub fn config(&self) -> String {
        format!("[tpm]\ntcti = \"{}\"\n", self.tcti())
    }

    /// A tpm2-tools command on this TPM (`tpm2_pcrextend`, `tpm2_clear`…).
    pub fn tool(&self, program: &str, args: &[&str]) -> Output {
        let out = Command::new(program)
            .args(args)
            .env("TPM2TOOLS_TCTI", self.tcti())
            .env("TSS2_LOG", "all+NONE")
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// One TPM property from `tpm2_getcap properties-variable`
    /// (`TPM2_PT_LOCKOUT_COUNTER`…).
    pub fn property(&self, name: &str) -> u32 {
        let out = self.tool("tpm2_getcap", &["properties-variable"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.trim_start().starts_with(&format!("{name}:"))).expect(name);
        let v = line.split(':').nth(1).expect("value").trim();
        u32::from_str_radix(v.trim_start_matches("0x"), 16).expect("hex")
    }

    /// Stops and starts the emulator on the same state, as a reboot does:
    /// what was loaded (a killed agent's objects) is gone; keys persist.
    pub fn reboot(&mut self) {
        self.stop();
        self.spawn(Some(self.port));
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}
