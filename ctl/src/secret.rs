//! Reading secrets (passphrases, PINs): from a file, standard input, the
//! terminal without echo, or, with no terminal, pinentry.

use anyhow::{bail, Context, Result};
use std::io::BufRead;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Lines of a secret source: a file, `-` (standard input) or the terminal.
pub fn read_secret_lines(file: Option<&PathBuf>, prompts: &[&str]) -> Result<Vec<Zeroizing<String>>> {
    let mut out = Vec::new();
    match file {
        Some(p) => {
            let text = Zeroizing::new(if p.as_os_str() == "-" {
                let mut s = String::new();
                for _ in prompts {
                    std::io::stdin().lock().read_line(&mut s).context("cannot read standard input")?;
                }
                s
            } else {
                std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?
            });
            for line in text.lines().take(prompts.len()) {
                out.push(Zeroizing::new(line.to_owned()));
            }
            if out.len() < prompts.len() {
                bail!("expected {} line(s) of passphrase input", prompts.len());
            }
        }
        None => {
            for prompt in prompts {
                // No terminal (a launcher, a desktop session): the
                // desktop's own dialog, pinentry, as gpg does.
                let secret = match rpassword::prompt_password(prompt) {
                    Ok(s) => Zeroizing::new(s),
                    Err(_) => crate::pinentry::ask(prompt).context(
                        "cannot read the secret from a terminal or pinentry (use --passphrase-file)",
                    )?,
                };
                out.push(secret);
            }
        }
    }
    Ok(out)
}

/// A new secret: from `file` (first line), or asked twice.
pub fn new_secret(file: Option<&PathBuf>, what: &str) -> Result<Zeroizing<String>> {
    if file.is_some() {
        return Ok(read_secret_lines(file, &[what])?.remove(0));
    }
    let l = read_secret_lines(None, &[&format!("{what}: "), "Repeat it: "])?;
    if l[0] != l[1] {
        bail!("the two entries differ; nothing was changed");
    }
    Ok(l[0].clone())
}
