//! The strict JSON parser and the canonical serializer.
//!
//! Oracles: no panic or stack overflow on any input; whatever the strict
//! parser accepts, the permissive serde_json accepts too (strictness only
//! removes); the canonical form of an accepted value parses back to the same
//! value and is a fixed point.
#![no_main]

use cryptoid_protocol::json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = json::from_slice(data) else { return };
    assert!(
        serde_json::from_slice::<serde_json::Value>(data).is_ok(),
        "the strict parser accepted what serde_json refuses"
    );
    let canonical = json::to_canonical_vec(&value);
    let again = json::from_slice(&canonical).expect("canonical JSON must parse");
    assert_eq!(again, value, "canonical form changed the value");
    assert_eq!(json::to_canonical_vec(&again), canonical, "canonical form is not a fixed point");
});
