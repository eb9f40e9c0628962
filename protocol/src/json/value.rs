//! The canonical JSON value type.
//!
//! Only what Matrix canonical JSON allows can be represented: no floats, and
//! integers restricted to ±(2^53−1) by the [`Int`] newtype. Objects are
//! `BTreeMap<String, _>`, whose byte order on UTF-8 keys equals the code-point
//! order canonical JSON requires, so serialization never has to sort.

use std::collections::BTreeMap;
use std::fmt;

/// A JSON object with keys in canonical (code point) order.
pub type Object = BTreeMap<String, Value>;

/// The largest integer canonical JSON allows: 2^53 − 1.
pub const MAX_SAFE_INT: i64 = (1 << 53) - 1;
/// The smallest integer canonical JSON allows: −(2^53 − 1).
pub const MIN_SAFE_INT: i64 = -MAX_SAFE_INT;

/// An integer inside the canonical JSON range ±(2^53−1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Int(i64);

impl Int {
    /// `None` when `v` is outside ±(2^53−1).
    pub const fn new(v: i64) -> Option<Int> {
        if v >= MIN_SAFE_INT && v <= MAX_SAFE_INT {
            Some(Int(v))
        } else {
            None
        }
    }

    pub const fn get(self) -> i64 {
        self.0
    }
}

impl From<i32> for Int {
    fn from(v: i32) -> Int {
        Int(i64::from(v))
    }
}

impl From<u32> for Int {
    fn from(v: u32) -> Int {
        Int(i64::from(v))
    }
}

impl fmt::Display for Int {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A JSON value that is guaranteed to have a canonical encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(Int),
    String(String),
    Array(Vec<Value>),
    Object(Object),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(i.get()),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_object_mut(&mut self) -> Option<&mut Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn into_object(self) -> Option<Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// A short name of the JSON type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<Int> for Value {
    fn from(i: Int) -> Value {
        Value::Int(i)
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Value {
        Value::Object(o)
    }
}

impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Value {
        Value::Array(a)
    }
}

/// `Display` prints canonical JSON.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = super::to_canonical_vec(self);
        // The serializer only ever emits UTF-8.
        f.write_str(&String::from_utf8_lossy(&bytes))
    }
}
