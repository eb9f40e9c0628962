//! The askpass provider: a program (`askpass` in config or
//! `CRYPTOID_ASKPASS`) run with the prompt as argv[1] and
//! `CRYPTOID_ASKPASS_PROMPT=confirm`; exit 0 allows, any other exit denies.

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
