//! Known answers computed by matrix-js-sdk 43.0.0 (tests/interop/js), so
//! these tests hold without node; the interop tests run both directions
//! against the SDK itself.

use super::*;

fn key_0_to_31() -> SecretKey {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = i as u8;
    }
    SecretKey::from_bytes(k)
}

fn b64(s: &str) -> Vec<u8> {
    base64::decode(s).expect("base64")
}

#[test]
fn recovery_key_matches_the_sdk_and_reads_back() {
    let key = key_0_to_31();
    let text = recovery_key::encode(&key);
    assert_eq!(text.as_str(), "EsSz ykH7 LCZx 7Cae cmKD wcmY JRXi Ybtu 8iQ3 t8Ez nRwK pUY1");
    let back = recovery_key::decode(&text).expect("decode");
    assert_eq!(back.as_bytes(), key.as_bytes());
    // Spaces, tabs and newlines anywhere are ignored.
    let messy = "EsSzykH7\tLCZx 7Cae\ncmKDwcmYJRXiYbtu8iQ3t8EznRwKpUY1 ";
    assert_eq!(recovery_key::decode(messy).expect("messy").as_bytes(), key.as_bytes());
}

#[test]
fn a_mistyped_recovery_key_is_refused_with_its_reason() {
    use recovery_key::{decode, RecoveryKeyError as E};
    // One character changed: the parity byte catches it.
    assert_eq!(decode("EsSz ykH7 LCZx 7Cae cmKD wcmY JRXi Ybtu 8iQ3 t8Ez nRwK pUY2").err(), Some(E::Parity));
    assert_eq!(
        decode("EsSz ykH7 LCZx 7Cae cmKD wcmY JRXi Ybtu 8iQ3 t8Ez nRwK pUY0").err(),
        Some(E::NotBase58)
    );
    assert_eq!(decode("EsSz ykH7 LCZx 7Cae cmKD wcmY JRXi Ybtu 8iQ3 t8Ez nRwK").err(), Some(E::Length(32)));
    // Right length, right parity, wrong prefix.
    let mut bytes = vec![0x8cu8, 0x01];
    bytes.extend([7u8; 32]);
    bytes.push(bytes.iter().fold(0, |a, b| a ^ b));
    assert_eq!(decode(&bs58::encode(&bytes).into_string()).err(), Some(E::Prefix));
}

#[test]
fn passphrase_key_matches_the_sdk() {
    let p =
        PassphraseInfo { algorithm: PBKDF2.into(), salt: "saltsalt".into(), iterations: 1000, bits: None };
    let key = SecretKey::from_passphrase("correct horse", &p).expect("derive");
    assert_eq!(key.as_bytes().as_slice(), b64("+sUSD8jw4f8ns7m9b7kj8PeJLe8lJXO8Am09BLgO79k"));
}

#[test]
fn absurd_passphrase_parameters_are_refused() {
    let p = |algorithm: &str, iterations, bits| PassphraseInfo {
        algorithm: algorithm.into(),
        salt: "s".into(),
        iterations,
        bits,
    };
    use SecretStorageError as E;
    assert_eq!(
        SecretKey::from_passphrase("x", &p("m.argon2", 1, None)).err(),
        Some(E::UnsupportedPassphrase("m.argon2".into()))
    );
    assert_eq!(SecretKey::from_passphrase("x", &p(PBKDF2, 0, None)).err(), Some(E::Iterations(0)));
    assert_eq!(
        SecretKey::from_passphrase("x", &p(PBKDF2, MAX_PBKDF2_ITERATIONS + 1, None)).err(),
        Some(E::Iterations(MAX_PBKDF2_ITERATIONS + 1))
    );
    assert!(matches!(
        SecretKey::from_passphrase("x", &p(PBKDF2, 1, Some(128))),
        Err(E::UnsupportedPassphrase(_))
    ));
}

#[test]
fn key_check_matches_the_sdk_and_tells_a_wrong_key() {
    let key = key_0_to_31();
    let d = KeyDescription::new(&key, [0; 16], None);
    assert_eq!(d.iv.as_deref(), Some("AAAAAAAAAAAAAAAAAAAAAA"));
    assert_eq!(
        b64(d.mac.as_deref().unwrap_or_default()),
        b64("Gv+0yDqPNdj9zSgvL1FUew0ODALBHY/PO5cLnkGX55w=")
    );
    d.check(&key).expect("the right key");
    assert_eq!(d.check(&SecretKey::from_bytes([9; 32])), Err(SecretStorageError::WrongKey));
    // The SDK's padded Base64 reads the same.
    let sdk = KeyDescription {
        iv: Some("AAAAAAAAAAAAAAAAAAAAAA==".into()),
        mac: Some("Gv+0yDqPNdj9zSgvL1FUew0ODALBHY/PO5cLnkGX55w=".into()),
        ..d.clone()
    };
    sdk.check(&key).expect("padded");
    let unchecked = KeyDescription { iv: None, ..d.clone() };
    assert_eq!(unchecked.check(&key), Err(SecretStorageError::NoKeyCheck));
    let other = KeyDescription { algorithm: "m.secret_storage.v2".into(), ..d };
    assert!(matches!(other.check(&key), Err(SecretStorageError::UnsupportedAlgorithm(_))));
}

#[test]
fn encryption_matches_the_sdk() {
    let key = key_0_to_31();
    let name = "org.matrix.msc4080.cryptoids";
    let e = encrypt(&key, name, b"hello", [0; 16]);
    assert_eq!(b64(&e.ciphertext), b64("97signE="));
    assert_eq!(b64(&e.mac), b64("EVL4cfjG2ZxgKGSQexipCDy0a59EDbRRD1B9XjRUb/M="));
    assert_eq!(decrypt_text(&key, name, &e).expect("decrypt").as_str(), "hello");
}

#[test]
fn the_counter_is_64_bits_as_in_the_sdk() {
    // An IV whose low 64 bits roll over after one block: the SDK (WebCrypto
    // with a 64-bit counter) wraps them without carrying into the high half.
    let key = key_0_to_31();
    let stored = EncryptedSecret {
        iv: "AAAAAAAAAAD//////////w==".into(),
        ciphertext: "WoMuVmELtWFPl81ZHKSUOa/vfN0q7mRY03TRr7scUPrRU+ihUZcNDVJ/".into(),
        mac: "gabKEEcFqPh+XEbbEsNUqy4jv53OiQDeTzTBl0s66hk=".into(),
    };
    let name = "org.matrix.msc4080.cryptoids";
    let plain = decrypt_text(&key, name, &stored).expect("decrypt");
    assert_eq!(plain.as_str(), "0123456789abcdef0123456789abcdef0123456789");
}

#[test]
fn iv_bit_63_is_cleared() {
    let e = encrypt(&key_0_to_31(), "n", b"x", [0xff; 16]);
    assert_eq!(b64(&e.iv)[8], 0x7f);
}

#[test]
fn a_secret_under_another_name_or_key_or_altered_fails_its_mac() {
    let key = key_0_to_31();
    let e = encrypt(&key, "a", b"secret", [3; 16]);
    assert_eq!(decrypt(&key, "b", &e).err(), Some(SecretStorageError::BadMac));
    assert_eq!(decrypt(&SecretKey::from_bytes([1; 32]), "a", &e).err(), Some(SecretStorageError::BadMac));
    let mut ct = b64(&e.ciphertext);
    ct[0] ^= 1;
    let altered = EncryptedSecret { ciphertext: base64::encode(&ct), ..e.clone() };
    assert_eq!(decrypt(&key, "a", &altered).err(), Some(SecretStorageError::BadMac));
    let short_iv = EncryptedSecret { iv: "AAAA".into(), ..e };
    assert_eq!(decrypt(&key, "a", &short_iv).err(), Some(SecretStorageError::Malformed("iv")));
}
