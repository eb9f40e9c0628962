//! Reading JSON documents from a file argument or standard input.

use anyhow::{bail, Context, Result};
use cryptoid_protocol::json::{self, Object, Value};
use std::io::Read;
use std::path::Path;

/// Inputs larger than this are refused rather than read into memory: a PDU
/// is at most 64 KiB, and even a `/sync` batch is far below it.
const MAX_INPUT: u64 = 64 * 1024 * 1024;

/// Reads all of `path`, or standard input when `path` is `None` or `-`.
pub fn read(path: Option<&Path>) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    match path {
        Some(p) if p != Path::new("-") => {
            let f = std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            f.take(MAX_INPUT + 1)
                .read_to_end(&mut buf)
                .with_context(|| format!("cannot read {}", p.display()))?;
        }
        _ => {
            std::io::stdin()
                .take(MAX_INPUT + 1)
                .read_to_end(&mut buf)
                .context("cannot read standard input")?;
        }
    }
    if buf.len() as u64 > MAX_INPUT {
        bail!("input is larger than {} MiB", MAX_INPUT / (1024 * 1024));
    }
    Ok(buf)
}

fn describe(path: Option<&Path>) -> String {
    match path {
        Some(p) if p != Path::new("-") => p.display().to_string(),
        _ => "standard input".to_owned(),
    }
}

/// Reads and strictly parses one JSON document.
pub fn read_json(path: Option<&Path>) -> Result<Value> {
    let bytes = read(path)?;
    json::from_slice(&bytes).with_context(|| format!("cannot parse {}", describe(path)))
}

/// A JSON argument: inline when it starts with `{`, else a file to read.
pub fn json_arg(arg: &str) -> Result<Value> {
    if arg.trim_start().starts_with('{') {
        json::from_str(arg).context("cannot parse the inline JSON")
    } else {
        read_json(Some(Path::new(arg)))
    }
}

/// Reads a JSON document that must be an object (an event).
pub fn read_object(path: Option<&Path>) -> Result<Object> {
    match read_json(path)? {
        Value::Object(o) => Ok(o),
        other => bail!("{}: expected a JSON object (an event), found {}", describe(path), other.type_name()),
    }
}
