//! serde support for [`Value`]: it serializes as the JSON it holds, it
//! deserializes only what canonical JSON allows (no floats, no big integers,
//! no duplicate keys), and an owned `Value` is itself a `Deserializer`, so
//! typed wire messages are read from a strictly parsed document without
//! going through another JSON parser.

use super::value::{Int, Object, Value};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::Cell;
use std::fmt;

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(i.get()),
            Value::String(v) => s.serialize_str(v),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Object(obj) => {
                let mut map = s.serialize_map(Some(obj.len()))?;
                for (k, v) in obj {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// The newtype name a [`Value`] is deserialized under. A `Value` that is
/// itself the deserializer (a request's params, a response's result) hands
/// itself over whole instead of being rebuilt node by node, so a PDU inside
/// typed params is parsed once and then only moved. Any other deserializer
/// sees a plain newtype and goes on as usual.
const HANDOVER_NAME: &str = "$cryptoid_protocol::json::Value";

thread_local! {
    /// The value being handed over: put by the `Value` deserializer right
    /// before it calls the visitor, taken by that visitor.
    static HANDOVER: Cell<Option<Value>> = const { Cell::new(None) };
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_newtype_struct(HANDOVER_NAME, ValueVisitor)
    }
}

struct ValueVisitor;

fn int<E: de::Error>(v: i128) -> Result<Value, E> {
    i64::try_from(v)
        .ok()
        .and_then(Int::new)
        .map(Value::Int)
        .ok_or_else(|| E::custom("integer outside the canonical JSON range ±(2^53−1)"))
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("canonical JSON")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        int(i128::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        int(i128::from(v))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
        Err(E::custom("non-integer number (not allowed in canonical JSON)"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        // A handed-over value arrives here (see `HANDOVER_NAME`); a real
        // null finds nothing waiting.
        Ok(HANDOVER.take().unwrap_or(Value::Null))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = Object::new();
        while let Some(key) = map.next_key::<String>()? {
            if obj.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let v = map.next_value()?;
            obj.insert(key, v);
        }
        Ok(Value::Object(obj))
    }
}

/// Error of deserializing a typed message out of a [`Value`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeError(String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

impl Value {
    /// Deserializes a typed value out of this JSON value.
    pub fn deserialize_into<T: de::DeserializeOwned>(self) -> Result<T, DeError> {
        T::deserialize(self)
    }
}

impl<'de> IntoDeserializer<'de, DeError> for Value {
    type Deserializer = Value;
    fn into_deserializer(self) -> Value {
        self
    }
}

impl<'de> Deserializer<'de> for Value {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(i) => visitor.visit_i64(i.get()),
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => {
                let len = items.len();
                let mut seq = SeqDeserializer(items.into_iter());
                let v = visitor.visit_seq(&mut seq)?;
                if seq.0.len() != 0 {
                    return Err(de::Error::invalid_length(len, &"fewer elements in array"));
                }
                Ok(v)
            }
            Value::Object(obj) => visitor.visit_map(MapDeserializer { iter: obj.into_iter(), value: None }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name != HANDOVER_NAME {
            return visitor.visit_newtype_struct(self);
        }
        HANDOVER.set(Some(self));
        let r = visitor.visit_unit();
        // Only `ValueVisitor` asks by that name and it takes the value; make
        // sure nothing is left for a later null to pick up.
        drop(HANDOVER.take());
        r
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self {
            // Unit variants are strings.
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            other => Err(de::Error::invalid_type(unexpected(&other), &"a string naming a variant")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Int(i) => de::Unexpected::Signed(i.get()),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

struct SeqDeserializer(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for SeqDeserializer {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        self.0.next().map(|v| seed.deserialize(v)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct MapDeserializer {
    iter: std::collections::btree_map::IntoIter<String, Value>,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for MapDeserializer {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(Value::String(k)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        match self.value.take() {
            Some(v) => seed.deserialize(v),
            None => Err(de::Error::custom("value requested before key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::from_str;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Params {
        room_id: String,
        count: Option<u32>,
        pdu: Value,
        kind: Option<Kind>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Room,
        OneTime,
    }

    #[test]
    fn typed_from_value() {
        let v =
            from_str(r#"{"room_id":"!r","count":3,"pdu":{"a":[1,null]},"kind":"one_time"}"#).expect("json");
        let p: Params = v.deserialize_into().expect("typed");
        assert_eq!(p.room_id, "!r");
        assert_eq!(p.count, Some(3));
        assert_eq!(p.kind, Some(Kind::OneTime));
        assert_eq!(p.pdu.to_string(), r#"{"a":[1,null]}"#);
    }

    #[test]
    fn typed_errors_are_clear() {
        let e = from_str(r#"{"room_id":5,"pdu":{}}"#)
            .expect("json")
            .deserialize_into::<Params>()
            .expect_err("type");
        assert!(e.to_string().contains("invalid type: integer `5`, expected a string"), "{e}");
        let e = from_str(r#"{"pdu":{}}"#).expect("json").deserialize_into::<Params>().expect_err("missing");
        assert_eq!(e.to_string(), "missing field `room_id`");
        let e = from_str(r#"{"room_id":"r","pdu":{},"x":1}"#)
            .expect("json")
            .deserialize_into::<Params>()
            .expect_err("x");
        assert!(e.to_string().starts_with("unknown field `x`"), "{e}");
        let e = from_str(r#"{"room_id":"r","pdu":{},"count":-1}"#)
            .expect("json")
            .deserialize_into::<Params>()
            .expect_err("neg");
        assert!(e.to_string().contains("-1"), "{e}");
    }

    #[test]
    fn serde_json_round_trip_keeps_canonical_rules() {
        let v = from_str(r#"{"b":[true,-5,"\u0001"],"a":{}}"#).expect("json");
        let text = serde_json::to_string(&v).expect("ser");
        assert_eq!(text, v.to_string());
        assert!(serde_json::from_str::<Value>(r#"{"a":1,"a":2}"#).is_err());
        assert!(serde_json::from_str::<Value>(r#"{"a":1.5}"#).is_err());
        assert!(serde_json::from_str::<Value>(r#"{"a":9007199254740992}"#).is_err());
    }

    /// A `Value` field of typed params is the very value that was parsed,
    /// moved (its heap buffers keep their addresses), not rebuilt: a
    /// rebuilt array would have a new buffer.
    #[test]
    fn a_value_inside_typed_params_is_moved_not_rebuilt() {
        let mut v = from_str(r#"{"room_id":"!r","pdu":{"prev_events":["$a","$b"]}}"#).expect("json");
        let buffer = |pdu: &Value| {
            pdu.as_object().and_then(|o| o.get("prev_events")).and_then(Value::as_array).map(|a| a.as_ptr())
        };
        let before = v.as_object().and_then(|o| o.get("pdu")).and_then(buffer);
        let p: Params = std::mem::replace(&mut v, Value::Null).deserialize_into().expect("typed");
        assert!(before.is_some());
        assert_eq!(before, buffer(&p.pdu));
        assert_eq!(p.pdu.to_string(), r#"{"prev_events":["$a","$b"]}"#);
    }

    /// The hand-over leaves nothing behind: a null read afterwards, by any
    /// deserializer, is a null.
    #[test]
    fn a_null_after_a_handover_is_still_null() {
        let p: Params =
            from_str(r#"{"room_id":"!r","pdu":{"x":1}}"#).expect("json").deserialize_into().expect("p");
        assert_eq!(p.pdu.to_string(), r#"{"x":1}"#);
        let n: Value = Value::Null.deserialize_into().expect("null");
        assert_eq!(n, Value::Null);
        let n: Value = serde_json::from_str("null").expect("null");
        assert_eq!(n, Value::Null);
        let nested: Value = serde_json::from_str(r#"{"a":[null,{"b":null}]}"#).expect("nested");
        assert_eq!(nested.to_string(), r#"{"a":[null,{"b":null}]}"#);
        let whole: Value =
            from_str(r#"[1,"x",{"y":null}]"#).expect("json").deserialize_into().expect("whole");
        assert_eq!(whole.to_string(), r#"[1,"x",{"y":null}]"#);
    }
}
