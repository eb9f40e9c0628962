//! Strict JSON parser.
//!
//! Accepts RFC 8259 JSON (whitespace allowed between tokens) and refuses
//! everything Matrix canonical JSON cannot represent or that would let two
//! parsers disagree about a signed document: duplicate keys at any depth,
//! fractions and exponents, integers outside ±(2^53−1), invalid UTF-8, lone
//! UTF-16 surrogates and trailing data. It never recurses: containers live on
//! an explicit stack, so 100,000 nested `[` give [`ParseErrorKind::TooDeep`],
//! not a stack overflow.

use super::value::{Int, Object, Value, MAX_SAFE_INT};
use std::fmt;

/// Default nesting limit: 128 levels of arrays/objects. Real events nest a
/// handful of levels; the limit bounds recursion in the serializer and `Drop`.
pub const DEFAULT_MAX_DEPTH: usize = 128;

/// Parser settings.
#[derive(Clone, Copy, Debug)]
pub struct ParseOptions {
    /// Maximum nesting of arrays and objects (the top-level container is 1).
    pub max_depth: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions { max_depth: DEFAULT_MAX_DEPTH }
    }
}

/// What is wrong with the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("duplicate key {0:?}")]
    DuplicateKey(String),
    #[error("non-integer number (fractions and exponents are not allowed in canonical JSON)")]
    Float,
    #[error("integer outside the canonical JSON range ±(2^53−1)")]
    IntegerOutOfRange,
    #[error("lone UTF-16 surrogate \\u{0:04x} in string")]
    LoneSurrogate(u16),
    #[error("invalid UTF-8 in string")]
    InvalidUtf8,
    #[error("trailing data after the JSON value")]
    TrailingData,
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
    #[error("unexpected end of input")]
    UnexpectedEnd,
    #[error("unexpected {0}")]
    Unexpected(String),
    #[error("invalid escape sequence in string")]
    InvalidEscape,
    #[error("unescaped control character in string")]
    ControlCharacter,
    #[error("number with a leading zero")]
    LeadingZero,
}

impl ParseErrorKind {
    /// A stable snake_case name (the wire's `data.cause`).
    pub fn name(&self) -> &'static str {
        match self {
            ParseErrorKind::DuplicateKey(_) => "duplicate_key",
            ParseErrorKind::Float => "float",
            ParseErrorKind::IntegerOutOfRange => "integer_out_of_range",
            ParseErrorKind::LoneSurrogate(_) => "lone_surrogate",
            ParseErrorKind::InvalidUtf8 => "invalid_utf8",
            ParseErrorKind::TrailingData => "trailing_data",
            ParseErrorKind::TooDeep(_) => "too_deep",
            ParseErrorKind::UnexpectedEnd => "unexpected_end",
            ParseErrorKind::Unexpected(_) => "unexpected_token",
            ParseErrorKind::InvalidEscape => "invalid_escape",
            ParseErrorKind::ControlCharacter => "control_character",
            ParseErrorKind::LeadingZero => "leading_zero",
        }
    }
}

/// A parse failure: the problem, the JSON path of the value concerned
/// (`$.content.body`, `$.prev_events[2]`) and the byte offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub kind: ParseErrorKind,
    pub path: String,
    pub offset: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {} (byte {})", self.kind, self.path, self.offset)
    }
}

impl std::error::Error for ParseError {}

/// Parses strict JSON with the default options.
pub fn from_slice(input: &[u8]) -> Result<Value, ParseError> {
    from_slice_with(input, ParseOptions::default())
}

/// Parses strict JSON text.
pub fn from_str(input: &str) -> Result<Value, ParseError> {
    from_slice(input.as_bytes())
}

/// Parses strict JSON with explicit options.
pub fn from_slice_with(input: &[u8], opts: ParseOptions) -> Result<Value, ParseError> {
    let mut p = Parser { b: input, pos: 0, stack: Vec::new(), max_depth: opts.max_depth };
    let v = p.parse_root()?;
    p.skip_ws();
    if p.pos < p.b.len() {
        return Err(p.err(ParseErrorKind::TrailingData, true));
    }
    Ok(v)
}

enum Frame {
    Array(Vec<Value>),
    /// The object so far and the key whose value is being parsed.
    Object(Object, String),
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    stack: Vec<Frame>,
    max_depth: usize,
}

impl Parser<'_> {
    fn err(&self, kind: ParseErrorKind, include_pending: bool) -> ParseError {
        ParseError { kind, path: self.path(include_pending), offset: self.pos }
    }

    /// The JSON path of the value being parsed; without the innermost pending
    /// key or index when `include_pending` is false (errors about an object
    /// itself, such as a duplicate key).
    fn path(&self, include_pending: bool) -> String {
        let mut path = String::from("$");
        let n = self.stack.len();
        for (i, frame) in self.stack.iter().enumerate() {
            if i + 1 == n && !include_pending {
                break;
            }
            match frame {
                Frame::Array(items) => {
                    path.push('[');
                    path.push_str(&items.len().to_string());
                    path.push(']');
                }
                Frame::Object(_, key) => push_key(&mut path, key),
            }
        }
        path
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn unexpected(&self) -> ParseError {
        match self.peek() {
            None => self.err(ParseErrorKind::UnexpectedEnd, true),
            Some(b) => self.err(ParseErrorKind::Unexpected(describe_byte(&self.b[self.pos..], b)), true),
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), ParseError> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    /// Called at an opening bracket: empty containers count as a level too.
    fn check_depth(&self) -> Result<(), ParseError> {
        if self.stack.len() >= self.max_depth {
            return Err(self.err(ParseErrorKind::TooDeep(self.max_depth), true));
        }
        Ok(())
    }

    /// Reads an object key and the `:` after it, refusing a key already in
    /// the innermost object.
    fn parse_key(&mut self) -> Result<String, ParseError> {
        self.skip_ws();
        if self.peek() != Some(b'"') {
            return Err(self.unexpected());
        }
        let key_start = self.pos;
        let key = self.parse_string()?;
        if let Some(Frame::Object(map, _)) = self.stack.last() {
            if map.contains_key(&key) {
                let mut e = self.err(ParseErrorKind::DuplicateKey(key), false);
                e.offset = key_start;
                return Err(e);
            }
        }
        self.expect(b':')?;
        Ok(key)
    }

    fn parse_root(&mut self) -> Result<Value, ParseError> {
        'value: loop {
            self.skip_ws();
            let mut value = match self.peek() {
                None => return Err(self.err(ParseErrorKind::UnexpectedEnd, true)),
                Some(b'{') => {
                    self.check_depth()?;
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        Value::Object(Object::new())
                    } else {
                        self.stack.push(Frame::Object(Object::new(), String::new()));
                        let key = self.parse_key()?;
                        if let Some(Frame::Object(_, pending)) = self.stack.last_mut() {
                            *pending = key;
                        }
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    self.check_depth()?;
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                        Value::Array(Vec::new())
                    } else {
                        self.stack.push(Frame::Array(Vec::new()));
                        continue 'value;
                    }
                }
                Some(b'"') => Value::String(self.parse_string()?),
                Some(b't') => self.literal(b"true", Value::Bool(true))?,
                Some(b'f') => self.literal(b"false", Value::Bool(false))?,
                Some(b'n') => self.literal(b"null", Value::Null)?,
                Some(b'-' | b'0'..=b'9') => Value::Int(self.parse_int()?),
                Some(_) => return Err(self.unexpected()),
            };
            // A value is complete: hand it to its container, closing every
            // container that ends right after it.
            loop {
                let Some(frame) = self.stack.last_mut() else {
                    return Ok(value);
                };
                match frame {
                    Frame::Array(items) => {
                        items.push(value);
                        self.skip_ws();
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                continue 'value;
                            }
                            Some(b']') => {
                                self.pos += 1;
                                let Some(Frame::Array(items)) = self.stack.pop() else {
                                    unreachable!("top frame is an array")
                                };
                                value = Value::Array(items);
                            }
                            _ => return Err(self.unexpected()),
                        }
                    }
                    Frame::Object(map, key) => {
                        map.insert(std::mem::take(key), value);
                        self.skip_ws();
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                let key = self.parse_key()?;
                                if let Some(Frame::Object(_, pending)) = self.stack.last_mut() {
                                    *pending = key;
                                }
                                continue 'value;
                            }
                            Some(b'}') => {
                                self.pos += 1;
                                let Some(Frame::Object(map, _)) = self.stack.pop() else {
                                    unreachable!("top frame is an object")
                                };
                                value = Value::Object(map);
                            }
                            _ => return Err(self.unexpected()),
                        }
                    }
                }
            }
        }
    }

    fn literal(&mut self, word: &[u8], v: Value) -> Result<Value, ParseError> {
        if self.b[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.unexpected())
        }
    }

    fn parse_int(&mut self) -> Result<Int, ParseError> {
        let start = self.pos;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.pos += 1;
        }
        let digits_start = self.pos;
        let mut magnitude: u64 = 0;
        let mut overflow = false;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            magnitude = match magnitude.checked_mul(10).and_then(|m| m.checked_add(u64::from(d - b'0'))) {
                Some(m) if m <= MAX_SAFE_INT as u64 => m,
                _ => {
                    overflow = true;
                    0
                }
            };
            self.pos += 1;
        }
        let ndigits = self.pos - digits_start;
        if ndigits == 0 {
            return Err(self.unexpected());
        }
        if ndigits > 1 && self.b[digits_start] == b'0' {
            self.pos = start;
            return Err(self.err(ParseErrorKind::LeadingZero, true));
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            self.pos = start;
            return Err(self.err(ParseErrorKind::Float, true));
        }
        if overflow {
            self.pos = start;
            return Err(self.err(ParseErrorKind::IntegerOutOfRange, true));
        }
        // `magnitude` ≤ 2^53−1, so the cast and negation are exact; -0 is 0.
        let v = if neg { -(magnitude as i64) } else { magnitude as i64 };
        Int::new(v).ok_or_else(|| self.err(ParseErrorKind::IntegerOutOfRange, true))
    }

    /// Parses a string starting at its opening quote.
    fn parse_string(&mut self) -> Result<String, ParseError> {
        let bytes = self.b;
        self.pos += 1; // opening quote
        let mut out: Option<String> = None;
        let mut run_start = self.pos;
        loop {
            // Scan a run of bytes that need no decoding.
            while let Some(&b) = bytes.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            let run = &bytes[run_start..self.pos];
            let run = std::str::from_utf8(run).map_err(|e| {
                let mut err = self.err(ParseErrorKind::InvalidUtf8, true);
                err.offset = run_start + e.valid_up_to();
                err
            })?;
            match self.peek() {
                None => return Err(self.err(ParseErrorKind::UnexpectedEnd, true)),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(match out {
                        Some(mut s) => {
                            s.push_str(run);
                            s
                        }
                        None => run.to_owned(),
                    });
                }
                Some(b'\\') => {
                    let mut s = out.take().unwrap_or_default();
                    s.push_str(run);
                    self.pos += 1;
                    s.push(self.parse_escape()?);
                    out = Some(s);
                    run_start = self.pos;
                }
                Some(_) => return Err(self.err(ParseErrorKind::ControlCharacter, true)),
            }
        }
    }

    /// Decodes the escape after a backslash.
    fn parse_escape(&mut self) -> Result<char, ParseError> {
        let Some(b) = self.peek() else {
            return Err(self.err(ParseErrorKind::UnexpectedEnd, true));
        };
        self.pos += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let escape_start = self.pos - 2;
                let hi = self.hex4()?;
                match hi {
                    0xD800..=0xDBFF => {
                        if self.b[self.pos..].starts_with(b"\\u") {
                            self.pos += 2;
                            let lo = self.hex4()?;
                            if !(0xDC00..=0xDFFF).contains(&lo) {
                                return Err(self.lone_surrogate(hi, escape_start));
                            }
                            let c = 0x10000 + ((u32::from(hi) - 0xD800) << 10) + (u32::from(lo) - 0xDC00);
                            char::from_u32(c).ok_or_else(|| self.lone_surrogate(hi, escape_start))?
                        } else {
                            return Err(self.lone_surrogate(hi, escape_start));
                        }
                    }
                    0xDC00..=0xDFFF => return Err(self.lone_surrogate(hi, escape_start)),
                    _ => {
                        char::from_u32(u32::from(hi)).ok_or_else(|| self.lone_surrogate(hi, escape_start))?
                    }
                }
            }
            _ => {
                self.pos -= 2;
                return Err(self.err(ParseErrorKind::InvalidEscape, true));
            }
        })
    }

    fn lone_surrogate(&self, unit: u16, at: usize) -> ParseError {
        let mut e = self.err(ParseErrorKind::LoneSurrogate(unit), true);
        e.offset = at;
        e
    }

    fn hex4(&mut self) -> Result<u16, ParseError> {
        let Some(digits) = self.b.get(self.pos..self.pos + 4) else {
            return Err(self.err(ParseErrorKind::InvalidEscape, true));
        };
        let mut v: u16 = 0;
        for &d in digits {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(self.err(ParseErrorKind::InvalidEscape, true)),
            };
            v = (v << 4) | u16::from(n);
        }
        self.pos += 4;
        Ok(v)
    }
}

/// Appends `.key` or `["key"]` to a JSON path.
fn push_key(path: &mut String, key: &str) {
    let simple = !key.is_empty()
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !key.as_bytes()[0].is_ascii_digit();
    if simple {
        path.push('.');
        path.push_str(key);
    } else {
        path.push('[');
        path.push_str(&format!("{key:?}"));
        path.push(']');
    }
}

fn describe_byte(rest: &[u8], b: u8) -> String {
    if b.is_ascii_graphic() {
        return format!("character '{}'", b as char);
    }
    if b >= 0x80 {
        // Name the character when the bytes are valid UTF-8.
        let n = rest.len().min(4);
        for len in (2..=n).rev() {
            if let Ok(s) = std::str::from_utf8(&rest[..len]) {
                if let Some(c) = s.chars().next() {
                    return format!("character {c:?}");
                }
            }
        }
    }
    format!("byte 0x{b:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(input: &str) -> ParseErrorKind {
        from_str(input).expect_err("must be rejected").kind
    }

    #[test]
    fn duplicate_key_names_key_and_path() {
        let e = from_str(r#"{"content":{"a":1,"b":2,"a":3}}"#).expect_err("duplicate");
        assert_eq!(e.kind, ParseErrorKind::DuplicateKey("a".into()));
        assert_eq!(e.path, "$.content");
        assert_eq!(e.to_string(), "duplicate key \"a\" at $.content (byte 24)");
    }

    #[test]
    fn duplicate_key_deep_in_arrays() {
        let e = from_str(r#"{"x":[0,{"m.y":{"k":1,"k":1}}]}"#).expect_err("duplicate");
        assert_eq!(e.path, "$.x[1][\"m.y\"]");
    }

    #[test]
    fn rejects_numbers_outside_canonical_json() {
        assert_eq!(kind("1.5"), ParseErrorKind::Float);
        assert_eq!(kind("1e3"), ParseErrorKind::Float);
        assert_eq!(kind("-1E3"), ParseErrorKind::Float);
        assert_eq!(kind("1.0"), ParseErrorKind::Float);
        assert_eq!(kind("9007199254740992"), ParseErrorKind::IntegerOutOfRange);
        assert_eq!(kind("-9007199254740992"), ParseErrorKind::IntegerOutOfRange);
        assert_eq!(kind("123456789012345678901234567890"), ParseErrorKind::IntegerOutOfRange);
        assert_eq!(kind("01"), ParseErrorKind::LeadingZero);
        assert_eq!(kind("-"), ParseErrorKind::UnexpectedEnd);
        assert_eq!(from_str("-0").expect("-0 is zero"), Value::Int(Int::from(0)));
        assert_eq!(from_str("9007199254740991").expect("max").as_int(), Some(MAX_SAFE_INT));
    }

    #[test]
    fn rejects_bad_strings() {
        assert_eq!(kind(r#""\ud800""#), ParseErrorKind::LoneSurrogate(0xd800));
        assert_eq!(kind(r#""\udc00x""#), ParseErrorKind::LoneSurrogate(0xdc00));
        assert_eq!(kind(r#""\ud800\u0041""#), ParseErrorKind::LoneSurrogate(0xd800));
        assert_eq!(kind(r#""\x""#), ParseErrorKind::InvalidEscape);
        assert_eq!(kind(r#""\u12""#), ParseErrorKind::InvalidEscape);
        assert_eq!(kind("\"a\nb\""), ParseErrorKind::ControlCharacter);
        assert_eq!(kind("\"abc"), ParseErrorKind::UnexpectedEnd);
        assert_eq!(from_slice(b"\"\xff\"").expect_err("utf8").kind, ParseErrorKind::InvalidUtf8);
        assert_eq!(from_slice(b"\"ab\xc3\"").expect_err("utf8").offset, 3);
        assert_eq!(from_str(r#""\ud83d\udd11 \u65E5 \/""#).expect("pair"), Value::from("🔑 日 /"));
    }

    #[test]
    fn rejects_trailing_data_and_garbage() {
        assert_eq!(kind("{} {}"), ParseErrorKind::TrailingData);
        assert_eq!(kind("[1,]"), ParseErrorKind::Unexpected("character ']'".into()));
        assert_eq!(kind("{\"a\" 1}"), ParseErrorKind::Unexpected("character '1'".into()));
        assert_eq!(kind("nul"), ParseErrorKind::Unexpected("character 'n'".into()));
        assert_eq!(kind(""), ParseErrorKind::UnexpectedEnd);
        assert_eq!(kind("é"), ParseErrorKind::Unexpected("character 'é'".into()));
        assert_eq!(kind("\u{feff}{}"), ParseErrorKind::Unexpected("character '\\u{feff}'".into()));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert_eq!(kind(&deep), ParseErrorKind::TooDeep(DEFAULT_MAX_DEPTH));
        let deep_obj = "{\"a\":".repeat(100_000);
        assert_eq!(kind(&deep_obj), ParseErrorKind::TooDeep(DEFAULT_MAX_DEPTH));
        let ok = format!("{}{}", "[".repeat(DEFAULT_MAX_DEPTH), "]".repeat(DEFAULT_MAX_DEPTH));
        assert!(from_str(&ok).is_ok());
        let over = format!("{}{}", "[".repeat(DEFAULT_MAX_DEPTH + 1), "]".repeat(DEFAULT_MAX_DEPTH + 1));
        assert_eq!(kind(&over), ParseErrorKind::TooDeep(DEFAULT_MAX_DEPTH));
    }

    #[test]
    fn whitespace_between_tokens() {
        let v = from_str(" {\n\t\"a\" : [ 1 , true , null ] ,\r\"b\":\"\" } ").expect("valid");
        assert_eq!(v.to_string(), r#"{"a":[1,true,null],"b":""}"#);
    }
}
