//! Signing-key files for `pdu sign`.
//!
//! Two formats: a bare Base64 Ed25519 seed (a cryptoID's secret), or one
//! Synapse-style line `ed25519 <version> <seed>` whose key ID becomes
//! `ed25519:<version>`.

use anyhow::{bail, Context, Result};
use cryptoid_protocol::keys::KeyPair;
use std::path::Path;
use zeroize::Zeroizing;

pub struct KeyFile {
    pub key: KeyPair,
    /// The key ID named in a Synapse-style file.
    pub key_id: Option<String>,
}

pub fn load(path: &Path) -> Result<KeyFile> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read key file {}", path.display()))?,
    );
    warn_if_readable_by_others(path);
    parse(&text).with_context(|| format!("key file {}", path.display()))
}

fn parse(text: &str) -> Result<KeyFile> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let Some(line) = lines.next() else { bail!("the file is empty") };
    if lines.next().is_some() {
        bail!("expected one key, found several lines");
    }
    let fields: Vec<&str> = line.split_whitespace().collect();
    match fields.as_slice() {
        [seed] => Ok(KeyFile { key: seed_to_key(seed)?, key_id: None }),
        ["ed25519", version, seed] => {
            Ok(KeyFile { key: seed_to_key(seed)?, key_id: Some(format!("ed25519:{version}")) })
        }
        [alg, _, _] => bail!("unsupported key algorithm {alg:?}: only ed25519 is supported"),
        _ => bail!("expected a Base64 seed or a line `ed25519 <version> <seed>`"),
    }
}

fn seed_to_key(seed: &str) -> Result<KeyPair> {
    // The error names no part of the secret.
    KeyPair::from_base64_seed(seed).map_err(|_| anyhow::anyhow!("the seed is not Base64 of 32 bytes"))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            eprintln!(
                "cryptoidctl: warning: key file {} is accessible by other users; run chmod 600 on it",
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
    const PUBLIC: &str = "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI";

    #[test]
    fn bare_seed() {
        let kf = parse(&format!("{SEED}\n")).expect("bare seed");
        assert_eq!(kf.key.cryptoid(), PUBLIC);
        assert_eq!(kf.key_id, None);
    }

    #[test]
    fn synapse_line() {
        let kf = parse(&format!("ed25519 a_Abcd {SEED}\n")).expect("synapse");
        assert_eq!(kf.key.cryptoid(), PUBLIC);
        assert_eq!(kf.key_id.as_deref(), Some("ed25519:a_Abcd"));
    }

    #[test]
    fn errors_never_echo_the_secret() {
        for bad in ["", "x y", "rsa 1 AAAA", "ed25519 1 notbase64!!", "a\nb", "Zm9v"] {
            let e = format!("{:#}", parse(bad).err().expect("rejected"));
            assert!(!e.contains("notbase64"), "{e}");
        }
    }
}
