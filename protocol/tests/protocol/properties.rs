//! Property tests of the canonical JSON layer.

use cryptoid_protocol::json::{self, Int, Object, Value, MAX_SAFE_INT, MIN_SAFE_INT};
use proptest::prelude::*;

fn arb_string() -> impl Strategy<Value = String> {
    // Mix ASCII (with control characters, quotes, backslashes) and any char.
    prop_oneof![
        proptest::collection::vec(0u8..0x80, 0..12).prop_map(|b| b.into_iter().map(char::from).collect()),
        any::<String>(),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (MIN_SAFE_INT..=MAX_SAFE_INT).prop_map(|i| Value::Int(Int::new(i).expect("in range"))),
        prop_oneof![Just(0i64), Just(-1), Just(MAX_SAFE_INT), Just(MIN_SAFE_INT)]
            .prop_map(|i| Value::Int(Int::new(i).expect("in range"))),
        arb_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map(arb_string(), inner, 0..8).prop_map(Value::Object),
        ]
    })
}

/// A deliberately non-canonical rendering of `v`: whitespace everywhere,
/// keys in reverse order, every character escaped as `\uXXXX` when `escape`.
fn messy(v: &Value, escape: bool, out: &mut String) {
    match v {
        Value::Null => out.push_str(" null "),
        Value::Bool(b) => out.push_str(if *b { "\ttrue" } else { "false\n" }),
        Value::Int(i) => out.push_str(&format!(" {} ", i.get())),
        Value::String(s) => messy_str(s, escape, out),
        Value::Array(items) => {
            out.push_str("[ ");
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push_str(" ,\r\n");
                }
                messy(item, escape, out);
            }
            out.push_str(" ]");
        }
        Value::Object(o) => {
            out.push_str("{\n");
            for (n, (k, item)) in o.iter().rev().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                messy_str(k, escape, out);
                out.push_str(" : ");
                messy(item, escape, out);
            }
            out.push_str("\n}");
        }
    }
}

fn messy_str(s: &str, escape: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        if escape || c < ' ' || c == '"' || c == '\\' {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{:04X}", u));
            }
        } else {
            out.push(c);
        }
    }
    out.push('"');
}

fn to_serde(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(i.get()),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_serde).collect()),
        Value::Object(o) => {
            serde_json::Value::Object(o.iter().map(|(k, v)| (k.clone(), to_serde(v))).collect())
        }
    }
}

fn has_float(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) => n.is_f64(),
        serde_json::Value::Array(a) => a.iter().any(has_float),
        serde_json::Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}

/// The keys of every object in `v`, in serialized order, must be sorted by
/// code point (checked on `char`s, independently of `BTreeMap`).
fn keys_in_code_point_order(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.iter().all(keys_in_code_point_order),
        Value::Object(o) => {
            let keys: Vec<Vec<char>> = o.keys().map(|k| k.chars().collect()).collect();
            keys.windows(2).all(|w| w[0] < w[1]) && o.values().all(keys_in_code_point_order)
        }
        _ => true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_of_serialize_is_identity(v in arb_value()) {
        let bytes = json::to_canonical_vec(&v);
        let back = json::from_slice(&bytes).expect("canonical output parses");
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(json::to_canonical_vec(&back), bytes);
    }

    #[test]
    fn any_rendering_canonicalizes_to_the_same_bytes(v in arb_value(), escape in any::<bool>()) {
        let mut text = String::new();
        messy(&v, escape, &mut text);
        let parsed = json::from_str(&text).expect("messy rendering parses");
        prop_assert_eq!(json::to_canonical_vec(&parsed), json::to_canonical_vec(&v));
    }

    #[test]
    fn agrees_with_serde_json_sorted_compact_output(v in arb_value()) {
        // serde_json's default map is sorted and its escapes are the shortest
        // form, so its compact output is canonical JSON for this value space.
        let ours = json::to_canonical_vec(&v);
        let theirs = serde_json::to_vec(&to_serde(&v)).expect("serialize");
        prop_assert_eq!(ours, theirs);
    }

    #[test]
    fn serialized_keys_are_in_code_point_order(map in proptest::collection::btree_map(any::<String>(), Just(Value::Null), 0..16)) {
        let v = Value::Object(map.clone().into_iter().collect::<Object>());
        prop_assert!(keys_in_code_point_order(&v));
        // And the text itself lists them in that order.
        let text = json::to_canonical_string(&v);
        let reparsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let mut expected: Vec<Vec<char>> = map.keys().map(|k| k.chars().collect()).collect();
        expected.sort();
        let got: Vec<Vec<char>> = reparsed.as_object().expect("object").keys().map(|k| k.chars().collect()).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn parser_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = json::from_slice(&bytes);
    }

    #[test]
    fn parser_accepts_exactly_what_serde_json_accepts_modulo_strictness(text in "[\\[\\]{}\",:0-9a-z \\\\.-]{0,24}") {
        // Where serde_json accepts a document and it holds no float, big
        // integer or duplicate key, we must accept it and agree on the value.
        if let Ok(theirs) = serde_json::from_str::<serde_json::Value>(&text) {
            // serde_json reads `-0` as the float -0.0; canonical JSON has no
            // floats and we read it as the integer 0.
            if let (Ok(ours), false) = (json::from_str(&text), has_float(&theirs)) {
                prop_assert_eq!(to_serde(&ours), theirs);
            }
        } else {
            prop_assert!(json::from_str(&text).is_err(), "we accepted {:?}", text);
        }
    }
}
