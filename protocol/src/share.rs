//! The cryptoIDs a user shares between their devices (MSC4080: "shared
//! between devices using secret storage"), as secret-storage secrets.
//!
//! One JSON document, versioned, in the secret [`SECRET_NAME`] (the
//! unstable prefix of MSC4080). A document too large for one secret (over
//! 64 KiB once encrypted) is split into parts: part 0 is [`SECRET_NAME`]
//! and names the others (`<SECRET_NAME>.1`, `.2`, …). Every part carries
//! the export's random `export_id` and its index, so parts of two exports
//! (an old part replayed by the homeserver under the same name) are never
//! mixed.
//!
//! Part 0 also carries the export's time (`exported_at`, ms since the
//! epoch), so a device can refuse an export older than one it took before
//! (a rollback by the homeserver), and the cryptoIDs deleted on the
//! exporting device (`retired`), so an old copy of a deleted key is never
//! brought back.
//!
//! ```json
//! {"version": 1, "export_id": "…", "exported_at": 1764662400000, "part": 0,
//!  "parts": ["org.matrix.msc4080.cryptoids.1"], "retired": ["…"],
//!  "keys": [{"kind": "room", "cryptoid": "…", "seed": "…", "room_id": "!r:x", "user_id": "@a:x"},
//!           {"kind": "one_time", "cryptoid": "…", "seed": "…", "key_id": "ed25519:AAAAAAAAAAA"}]}
//! ```

use crate::wire::keys::KeyKind;
use serde::{Deserialize, Serialize};

/// The secret's name (account-data type), part 0.
pub const SECRET_NAME: &str = "org.matrix.msc4080.cryptoids";
/// The document format this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Most plaintext bytes in one part: Base64 (×4/3) and the JSON around
/// it stay under 64 KiB of account data.
pub const MAX_PART_BYTES: usize = 46 * 1024;
/// Most parts read: 10,000 rooms take about 50.
pub const MAX_PARTS: usize = 1000;

/// The secret name of part `i`.
pub fn part_name(i: usize) -> String {
    if i == 0 {
        SECRET_NAME.to_owned()
    } else {
        format!("{SECRET_NAME}.{i}")
    }
}

/// One shared key. The seed is wiped when dropped.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedKey {
    pub kind: KeyKind,
    pub cryptoid: String,
    /// The Ed25519 seed, unpadded Base64.
    pub seed: String,
    /// The room a room key (or a claimed one-time key) is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// A one-time key's ID as published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl Drop for SharedKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.seed);
    }
}

impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKey")
            .field("kind", &self.kind)
            .field("cryptoid", &self.cryptoid)
            .field("room_id", &self.room_id)
            .finish_non_exhaustive()
    }
}

/// One part of the document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    pub version: u32,
    pub export_id: String,
    /// When the export was made (ms since the epoch; part 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_at: Option<u64>,
    pub part: usize,
    /// In part 0 only: the names of the other parts, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<String>,
    /// In part 0 only: cryptoIDs deleted on the exporting device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
    pub keys: Vec<SharedKey>,
}

/// Why a document does not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShareError {
    #[error(
        "the shared cryptoIDs are format version {0}; this agent reads version {FORMAT_VERSION}: update it"
    )]
    Version(u32),
    #[error("part {index} belongs to another export than part 0 (an old part left in account data, or replayed): push again from the device that has the keys")]
    MixedExports { index: usize },
    #[error("part {found} was stored as part {expected}")]
    Misnumbered { expected: usize, found: usize },
    #[error("part 0 names {0} parts; at most {MAX_PARTS} are read")]
    TooManyParts(usize),
    #[error("part 0 names the part {0:?}, which is not one of this document's names")]
    BadPartName(String),
    #[error("the document is not valid JSON of the expected shape: {0}")]
    Malformed(String),
}

/// Splits `keys` into parts of at most [`MAX_PART_BYTES`] each (a key
/// larger than that alone is impossible: they are a few hundred bytes).
/// Part 0 gets the names of the others; the caller adds `exported_at` and
/// `retired` to it.
pub fn split(export_id: &str, keys: Vec<SharedKey>) -> Vec<Part> {
    let mut parts: Vec<Part> = Vec::new();
    let mut current = Vec::new();
    let mut size = 0;
    for k in keys {
        let len = serde_json::to_vec(&k).map_or(0, |v| v.len()) + 1;
        if size + len > MAX_PART_BYTES && !current.is_empty() {
            parts.push(part(export_id, parts.len(), std::mem::take(&mut current)));
            size = 0;
        }
        size += len;
        current.push(k);
    }
    parts.push(part(export_id, parts.len(), current));
    let names: Vec<String> = (1..parts.len()).map(part_name).collect();
    parts[0].parts = names;
    parts
}

fn part(export_id: &str, i: usize, keys: Vec<SharedKey>) -> Part {
    Part {
        version: FORMAT_VERSION,
        export_id: export_id.to_owned(),
        exported_at: None,
        part: i,
        parts: Vec::new(),
        retired: Vec::new(),
        keys,
    }
}

impl Part {
    /// Reads one decrypted part.
    pub fn parse(text: &str) -> Result<Part, ShareError> {
        // The version first, so a newer format says so rather than failing
        // on an unknown field.
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let v: Versioned = serde_json::from_str(text).map_err(|e| ShareError::Malformed(e.to_string()))?;
        if v.version != FORMAT_VERSION {
            return Err(ShareError::Version(v.version));
        }
        serde_json::from_str(text).map_err(|e| ShareError::Malformed(e.to_string()))
    }

    /// The names of the parts after part 0, checked.
    pub fn others(&self) -> Result<&[String], ShareError> {
        if self.parts.len() + 1 > MAX_PARTS {
            return Err(ShareError::TooManyParts(self.parts.len() + 1));
        }
        for (i, name) in self.parts.iter().enumerate() {
            if *name != part_name(i + 1) {
                return Err(ShareError::BadPartName(name.clone()));
            }
        }
        Ok(&self.parts)
    }

    /// Checks that `self` is part `index` of the export `first` starts.
    pub fn follows(&self, first: &Part, index: usize) -> Result<(), ShareError> {
        if self.export_id != first.export_id {
            return Err(ShareError::MixedExports { index });
        }
        if self.part != index {
            return Err(ShareError::Misnumbered { expected: index, found: self.part });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> SharedKey {
        SharedKey {
            kind: KeyKind::Room,
            cryptoid: format!("{i:0>43}"),
            seed: format!("{i:9>43}"),
            room_id: Some(format!("!room{i}:example.org")),
            user_id: Some("@alice:example.org".into()),
            key_id: None,
        }
    }

    #[test]
    fn ten_thousand_rooms_split_into_parts_under_64_kib_encrypted() {
        let keys: Vec<SharedKey> = (0..10_000).map(key).collect();
        let parts = split("e1", keys.clone());
        assert!(parts.len() > 1 && parts.len() < MAX_PARTS, "{} parts", parts.len());
        let mut back = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let text = serde_json::to_string(p).expect("json");
            // Base64 of the ciphertext plus the JSON around it.
            assert!(text.len() * 4 / 3 + 200 < 64 * 1024, "part {i}: {} bytes", text.len());
            let read = Part::parse(&text).expect("parse");
            read.follows(&parts[0], i).expect("in order");
            back.extend(read.keys);
        }
        assert_eq!(parts[0].others().expect("names").len(), parts.len() - 1);
        assert_eq!(back, keys);
    }

    #[test]
    fn a_small_export_is_one_part_naming_no_others() {
        let parts = split("e1", vec![key(1)]);
        assert_eq!(parts.len(), 1);
        assert!(parts[0].parts.is_empty());
        let empty = split("e2", Vec::new());
        assert_eq!((empty.len(), empty[0].keys.len()), (1, 0));
    }

    #[test]
    fn parts_of_two_exports_are_never_mixed() {
        let keys: Vec<SharedKey> = (0..1000).map(key).collect();
        let old = split("old", keys.clone());
        let new = split("new", keys);
        assert_eq!(old[1].follows(&new[0], 1), Err(ShareError::MixedExports { index: 1 }));
        assert_eq!(new[2].follows(&new[0], 1), Err(ShareError::Misnumbered { expected: 1, found: 2 }));
    }

    #[test]
    fn a_newer_version_says_so() {
        let text = r#"{"version":2,"export_id":"x","part":0,"keys":[],"future":true}"#;
        assert_eq!(Part::parse(text), Err(ShareError::Version(2)));
    }

    #[test]
    fn part_names_are_checked() {
        let mut p = split("e", vec![key(1)]).remove(0);
        p.parts = vec!["m.cross_signing.master".into()];
        assert_eq!(p.others(), Err(ShareError::BadPartName("m.cross_signing.master".into())));
    }

    #[test]
    fn debug_never_shows_a_seed() {
        let k = key(7);
        assert!(!format!("{k:?}").contains(&k.seed));
    }
}
