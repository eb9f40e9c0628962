//! `config.toml`. Every setting has a default; unknown keys are an error (a
//! typo in a security setting must not be silently ignored).

use cryptoid_protocol::{MemberRedaction, RoomVersion};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub journal: JournalConfig,
    pub socket: SocketConfig,
    pub policy: crate::policy::PolicyConfig,
    pub pkcs11: Pkcs11Config,
    /// Per room version: which `m.room.member` content keys survive
    /// redaction (`spec`, `keep-mxid-mapping`, `gomatrixserverlib`), e.g.
    /// `[member_redaction] "org.matrix.msc4080" = "gomatrixserverlib"`.
    pub member_redaction: BTreeMap<String, String>,
    pub notifications: NotificationsConfig,
    pub tpm: TpmConfig,
}

/// The TPM of the TPM wrap mode.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TpmConfig {
    /// Which TPM, as a TCTI: the kernel's resource manager by default,
    /// `"swtpm:host=127.0.0.1,port=2321"` for a software TPM.
    pub tcti: String,
}

impl Default for TpmConfig {
    fn default() -> Self {
        TpmConfig { tcti: crate::keystore::tpm::DEFAULT_TCTI.into() }
    }
}

/// Desktop notifications (`org.freedesktop.Notifications`, if a daemon runs).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    /// A notification after each state event signed (power levels, bans,
    /// names…). "Touch your YubiKey" is always shown while a touch is
    /// awaited.
    pub notify_signed: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// Rotate to a new segment at this size.
    pub max_segment_bytes: u64,
    /// Group-commit interval: entries are written before each answer and
    /// fsynced at most this long after.
    pub fsync_interval_ms: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig { max_segment_bytes: 8 << 20, fsync_interval_ms: 20 }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pkcs11Config {
    /// Directories PKCS#11 modules may be loaded from (like `ssh-agent -P`).
    pub module_dirs: Vec<std::path::PathBuf>,
}

impl Default for Pkcs11Config {
    fn default() -> Self {
        Pkcs11Config {
            module_dirs: crate::keystore::pkcs11::DEFAULT_MODULE_DIRS.iter().map(Into::into).collect(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocketConfig {
    /// Close a connection that sends nothing for this long.
    pub idle_timeout_secs: u64,
    /// Close a connection that leaves a request line unfinished this long.
    pub line_timeout_secs: u64,
    /// Accept root as a client of a non-root agent.
    pub allow_root: bool,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig { idle_timeout_secs: 600, line_timeout_secs: 10, allow_root: false }
    }
}

impl SocketConfig {
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    pub fn line_timeout(&self) -> Duration {
        Duration::from_secs(self.line_timeout_secs)
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: String, source: toml::de::Error },
    #[error("{path}: {0}", path = .1)]
    Invalid(String, String),
}

impl Config {
    /// Loads `path`; a missing file is the defaults when `required` is false.
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        let p = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(Config::default()),
            Err(source) => return Err(ConfigError::Read { path: p, source }),
        };
        let cfg: Config =
            toml::from_str(&text).map_err(|source| ConfigError::Parse { path: p.clone(), source })?;
        for (rv, variant) in &cfg.member_redaction {
            RoomVersion::from_id(rv)
                .map_err(|e| ConfigError::Invalid(format!("member_redaction: {e}"), p.clone()))?;
            MemberRedaction::from_name(variant).ok_or_else(|| {
                ConfigError::Invalid(
                    format!("member_redaction.{rv:?} = {variant:?}: use spec, keep-mxid-mapping or gomatrixserverlib"),
                    p.clone(),
                )
            })?;
        }
        Ok(cfg)
    }

    /// The room version with the configured member-redaction variant.
    pub fn room_version(&self, rv: RoomVersion) -> RoomVersion {
        match self.member_redaction.get(rv.id()).and_then(|v| MemberRedaction::from_name(v)) {
            Some(m) => rv.with_member_redaction(m),
            None => rv,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("config.toml");
        assert_eq!(Config::load(&p, false).expect("missing is default").journal.fsync_interval_ms, 20);
        assert!(Config::load(&p, true).is_err());
        std::fs::write(&p, "[journal]\nmax_segment_bytes = 1000\n[member_redaction]\n\"org.matrix.msc4080\" = \"gomatrixserverlib\"\n").expect("write");
        let c = Config::load(&p, true).expect("load");
        assert_eq!(c.journal.max_segment_bytes, 1000);
        assert_eq!(
            c.room_version(RoomVersion::MSC4080).member_redaction(),
            MemberRedaction::Gomatrixserverlib
        );
        assert_eq!(c.room_version(RoomVersion::V11).member_redaction(), MemberRedaction::Spec);
    }

    #[test]
    fn the_shipped_example_is_valid_and_says_the_defaults() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/config.example.toml");
        let c = Config::load(&p, true).expect("example parses");
        assert_eq!(c.policy, crate::policy::PolicyConfig::default());
        assert_eq!(c.journal.max_segment_bytes, JournalConfig::default().max_segment_bytes);
        assert_eq!(c.tpm.tcti, TpmConfig::default().tcti);
    }

    #[test]
    fn the_tpm_is_the_kernel_resource_manager_unless_named() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("config.toml");
        assert_eq!(Config::load(&p, false).expect("default").tpm.tcti, "device:/dev/tpmrm0");
        std::fs::write(&p, "[tpm]\ntcti = \"swtpm:host=127.0.0.1,port=2321\"\n").expect("write");
        assert_eq!(Config::load(&p, true).expect("load").tpm.tcti, "swtpm:host=127.0.0.1,port=2321");
        std::fs::write(&p, "[tpm]\ndevice = \"/dev/tpm0\"\n").expect("write");
        assert!(matches!(Config::load(&p, true), Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("config.toml");
        type Is = fn(&ConfigError) -> bool;
        let cases: [(&str, Is); 3] = [
            // A typo is a parse error, not a silently ignored key.
            ("[journal]\nmax_segment_byte = 1\n", |e| matches!(e, ConfigError::Parse { .. })),
            ("[member_redaction]\n\"13\" = \"spec\"\n", |e| matches!(e, ConfigError::Invalid(..))),
            ("[member_redaction]\n\"11\" = \"nope\"\n", |e| matches!(e, ConfigError::Invalid(..))),
        ];
        for (text, is) in cases {
            std::fs::write(&p, text).expect("write");
            let e = Config::load(&p, true).expect_err(text);
            assert!(is(&e), "{text}: {e}");
        }
    }
}
