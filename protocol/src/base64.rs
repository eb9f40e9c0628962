//! Matrix "unpadded Base64" (spec appendices).
//!
//! Output is always unpadded. Input is accepted padded or unpadded and with
//! non-zero trailing bits, because real keys are written that way: the spec's
//! own test seed `YJDBA9Xn…XA1` has non-canonical trailing bits.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

const fn lenient() -> GeneralPurposeConfig {
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true)
}

const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, lenient());
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, lenient());

/// The input is not Base64.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid base64: {0}")]
pub struct Base64Error(String);

/// Standard alphabet, no padding (keys, signatures, hashes).
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// URL-safe alphabet, no padding (event IDs from room version 4 on).
pub fn encode_url_safe(bytes: &[u8]) -> String {
    URL_SAFE.encode(bytes)
}

/// Decodes standard Base64, padded or not. Like gomatrixserverlib, input
/// containing `-` or `_` is read with the URL-safe alphabet.
pub fn decode(s: &str) -> Result<Vec<u8>, Base64Error> {
    let engine = if s.contains(['-', '_']) { &URL_SAFE } else { &STANDARD };
    engine.decode(s).map_err(|e| Base64Error(e.to_string()))
}

/// Decodes exactly `N` bytes.
pub fn decode_array<const N: usize>(s: &str) -> Result<[u8; N], Base64Error> {
    let v = decode(s)?;
    let len = v.len();
    v.try_into().map_err(|_| Base64Error(format!("expected {N} bytes, found {len}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "Zg");
        assert_eq!(encode(b"fo"), "Zm8");
        assert_eq!(encode(b"foo"), "Zm9v");
        assert_eq!(encode(b"foob"), "Zm9vYg");
        assert_eq!(encode(b"fooba"), "Zm9vYmE");
        assert_eq!(encode(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn accepts_padding_and_trailing_bits() {
        assert_eq!(decode("Zm8=").expect("padded"), b"fo");
        assert_eq!(decode("Zm8").expect("unpadded"), b"fo");
        // "Zm9" has non-zero trailing bits (canonical would be "Zm8").
        assert_eq!(decode("Zm9").expect("trailing bits"), b"fo");
        let seed = decode_array::<32>("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1").expect("spec seed");
        assert_eq!(seed[0], 0x60);
    }

    #[test]
    fn url_safe_alphabet() {
        assert_eq!(encode_url_safe(&[0xfb, 0xff]), "-_8");
        assert_eq!(decode("-_8").expect("url-safe"), [0xfb, 0xff]);
        assert!(decode("a+b-").is_err());
        assert!(decode("!!").is_err());
        assert!(decode_array::<32>("Zm8").is_err());
    }
}
