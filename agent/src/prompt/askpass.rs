//! The askpass provider: a program (`askpass` in config or
//! `CRYPTOID_ASKPASS`) run with the prompt as argv[1]. For confirmations
//! `CRYPTOID_ASKPASS_PROMPT=confirm`: exit 0 allows, any other exit denies.
//! For a token PIN `CRYPTOID_ASKPASS_PROMPT=pin`: the PIN is the first line
//! it prints (the ssh-askpass convention), exit 0.

use std::process::Stdio;

/// Runs the program; `None` when it could not be started (other providers
/// may still answer).
pub async fn run(program: &str, prompt: &str) -> Option<bool> {
    let child = tokio::process::Command::new(program)
        .arg(prompt)
        .env("CRYPTOID_ASKPASS_PROMPT", "confirm")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    match child {
        Ok(mut c) => match c.wait().await {
            Ok(status) => Some(status.success()),
            Err(e) => {
                tracing::warn!(program, error = %e, "askpass failed");
                None
            }
        },
        Err(e) => {
            tracing::warn!(program, error = %e, "cannot run askpass");
            None
        }
    }
}

/// Asks the program for a secret (a token PIN); `None` when it fails,
/// exits non-zero or prints nothing.
pub async fn read_secret(program: &str, prompt: &str) -> Option<zeroize::Zeroizing<String>> {
    let out = tokio::process::Command::new(program)
        .arg(prompt)
        .env("CRYPTOID_ASKPASS_PROMPT", "pin")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => {
            let text = zeroize::Zeroizing::new(String::from_utf8_lossy(&o.stdout).into_owned());
            let line = text.lines().next().unwrap_or("").to_owned();
            (!line.is_empty()).then(|| zeroize::Zeroizing::new(line))
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(program, error = %e, "cannot run askpass for a PIN");
            None
        }
    }
}
