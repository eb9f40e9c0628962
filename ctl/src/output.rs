//! Printing: JSON for scripts, aligned tables and short lines for people.

use anyhow::{Context, Result};
use cryptoid_protocol::wire::keys::KeyInfo;
use serde::Serialize;
use std::io::Write;

pub fn json<T: Serialize>(v: &T) -> Result<()> {
    let mut out = serde_json::to_vec(v).context("cannot encode JSON")?;
    out.push(b'\n');
    write(&out)
}

/// Text from the agent (which may quote the homeserver) made safe for a
/// terminal: control characters and bidi overrides escaped, long text cut.
pub fn shown(s: &str) -> String {
    cryptoid_protocol::text::sanitize(s, 2000).into_owned()
}

pub fn line(s: &str) -> Result<()> {
    write(format!("{s}\n").as_bytes())
}

pub fn write(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes).and_then(|()| stdout.flush()).context("cannot write to standard output")
}

/// A table with a header row, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    push_row(header.to_vec());
    for row in rows {
        push_row(row.iter().map(String::as_str).collect());
    }
    write(out.as_bytes())
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02}")
}

pub fn keys_table(keys: &[KeyInfo]) -> Result<()> {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.cryptoid.clone(),
                match k.kind {
                    cryptoid_protocol::wire::keys::KeyKind::Room => "room".into(),
                    cryptoid_protocol::wire::keys::KeyKind::OneTime => "one-time".into(),
                },
                k.state.as_str().into(),
                k.room_id.clone().or_else(|| k.key_id.clone()).unwrap_or_else(|| "-".into()),
                k.backend.clone(),
                time(k.created_at),
            ]
        })
        .collect();
    table(&["CRYPTOID", "KIND", "STATE", "ROOM / KEY ID", "BACKEND", "CREATED (UTC)"], &rows)
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_formats_utc() {
        assert_eq!(super::time(0), "1970-01-01 00:00:00");
        assert_eq!(super::time(1_700_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(super::time(951_782_400_000), "2000-02-29 00:00:00");
    }
}
