//! BER-TLV as PIV uses it: one- or two-byte tags, definite lengths in the
//! short form or `81 xx` / `82 xx xx`.

/// Appends `tag`, the BER length of `value`, and `value` to `out`.
pub fn put(out: &mut Vec<u8>, tag: &[u8], value: &[u8]) {
    out.extend_from_slice(tag);
    put_len(out, value.len());
    out.extend_from_slice(value);
}

/// One TLV as a new buffer.
pub fn tlv(tag: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    put(&mut out, tag, value);
    out
}

pub fn put_len(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
        _ => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
    }
}

/// Splits the first TLV (one-byte tag) off `buf`: `(tag, value, rest)`.
/// `None` on a truncated or malformed TLV.
pub fn split(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (len, rest) = match *rest.first()? {
        n @ 0..=0x7f => (usize::from(n), &rest[1..]),
        0x81 => (usize::from(*rest.get(1)?), &rest[2..]),
        0x82 => ((usize::from(*rest.get(1)?) << 8) | usize::from(*rest.get(2)?), &rest[3..]),
        _ => return None,
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Every TLV in `buf`, in order; `None` if any is malformed.
pub fn all(mut buf: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (tag, value, rest) = split(buf)?;
        out.push((tag, value));
        buf = rest;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip_in_every_form() {
        for len in [0usize, 1, 127, 128, 255, 256, 3000] {
            let value = vec![7u8; len];
            let enc = tlv(&[0x81], &value);
            let (tag, v, rest) = split(&enc).expect("parses");
            assert_eq!((tag, v.len(), rest.len()), (0x81, len, 0));
        }
        assert!(split(&[0x81, 0x82, 0x01]).is_none(), "truncated length");
        assert!(split(&[0x81, 0x05, 1, 2]).is_none(), "truncated value");
    }
}
