//! Matrix canonical JSON: a value type that can only hold what canonical JSON
//! allows, a strict parser and a byte-exact serializer.

mod parse;
mod serde_impl;
mod serialize;
mod value;

pub use parse::{
    from_slice, from_slice_with, from_str, ParseError, ParseErrorKind, ParseOptions, DEFAULT_MAX_DEPTH,
};
pub use serde_impl::DeError;
pub(crate) use serialize::write_member;
pub use serialize::{write_object_filtered, write_str, write_value};
pub use value::{Int, Object, Value, MAX_SAFE_INT, MIN_SAFE_INT};

/// The canonical JSON encoding of `value`.
pub fn to_canonical_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value);
    out
}

/// The canonical JSON encoding of `value` as text.
pub fn to_canonical_string(value: &Value) -> String {
    // The serializer writes only valid UTF-8 (every string is a `String`), so
    // the lossy branch is never taken; it just avoids a panic path.
    match String::from_utf8(to_canonical_vec(value)) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}
