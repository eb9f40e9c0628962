//! Canonical JSON serializer (Matrix spec, appendices "Canonical JSON").
//!
//! No whitespace, keys in code-point order (free, thanks to `BTreeMap`),
//! integers in plain decimal, and the shortest string escapes: `\"`, `\\`,
//! `\b \f \n \r \t`, other C0 controls as lowercase `\u00xx`; everything else,
//! `/` and non-ASCII included, is written as raw UTF-8.

use super::value::{Object, Value};

/// Appends the canonical encoding of `value` to `out`.
///
/// Recursion depth equals nesting depth; values produced by the parser are
/// bounded by its depth limit.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => write_int(out, i.get()),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(obj) => write_object_filtered(out, obj, |_| true),
    }
}

/// Appends an object, keeping only the members whose key passes `keep`.
///
/// Used to hash or sign an event "without `unsigned`/`signatures`/`hashes`"
/// without cloning it first.
pub fn write_object_filtered(out: &mut Vec<u8>, obj: &Object, keep: impl Fn(&str) -> bool) {
    out.push(b'{');
    let mut first = true;
    for (k, v) in obj {
        if !keep(k) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_str(out, k);
        out.push(b':');
        write_value(out, v);
    }
    out.push(b'}');
}

/// Appends one canonical member `"key":value`, preceded by a comma unless it is
/// the first member written.
pub(crate) fn write_member(out: &mut Vec<u8>, first: &mut bool, key: &str, value: &Value) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    write_str(out, key);
    out.push(b':');
    write_value(out, value);
}

fn write_int(out: &mut Vec<u8>, v: i64) {
    // Formatting into a stack buffer avoids `format!`'s allocation.
    let mut buf = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut pos = buf.len();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[pos..]);
}

/// Bytes a JSON string must escape: controls, `"` and `\\`.
const ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Appends a canonically escaped JSON string. Runs without escapes (all of
/// most strings) are copied whole.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !ESCAPED[b as usize] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => &[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]],
        };
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::value::Int;

    fn s(v: &Value) -> String {
        let mut out = Vec::new();
        write_value(&mut out, v);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn shortest_escapes() {
        let v = Value::from("\"\\\u{8}\u{c}\n\r\t\u{0}\u{1f}/é🔑\u{7f}");
        assert_eq!(s(&v), "\"\\\"\\\\\\b\\f\\n\\r\\t\\u0000\\u001f/é🔑\u{7f}\"");
    }

    #[test]
    fn integers_at_the_limits() {
        for (i, text) in [
            (0i64, "0"),
            (-1, "-1"),
            (9_007_199_254_740_991, "9007199254740991"),
            (-9_007_199_254_740_991, "-9007199254740991"),
        ] {
            let v = Value::Int(Int::new(i).expect("in range"));
            assert_eq!(s(&v), text);
        }
        assert!(Int::new(9_007_199_254_740_992).is_none());
        assert!(Int::new(i64::MIN).is_none());
    }

    #[test]
    fn keys_sorted_by_code_point() {
        let mut o = Object::new();
        for k in ["日", "本", "b", "a", "\u{10000}", "\u{ffff}", ""] {
            o.insert(k.to_owned(), Value::Null);
        }
        assert_eq!(
            s(&Value::Object(o)),
            "{\"\":null,\"a\":null,\"b\":null,\"日\":null,\"本\":null,\"\u{ffff}\":null,\"\u{10000}\":null}"
        );
    }
}
