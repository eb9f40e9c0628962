//! The PIV card commands the YubiKey backend sends itself, and the
//! constants both it and the test suite's virtual card use. Pure: no PC/SC.
//!
//! Why not let the `yubikey` crate sign: its 0.9.0-rc.0 panics on a
//! 255-byte message and refuses 1,016 bytes or more, and a Matrix signing
//! input (the whole redacted event) is often that long. [`Command::apdus`]
//! splits any command into short APDUs with command chaining (ISO 7816-4
//! CLA bit 0x10) and [`Command::collect`] follows `61xx` response chaining.

pub mod tlv;

/// The PIV application identifier (prefix; the card accepts it in SELECT).
pub const AID: &[u8] = &[0xa0, 0x00, 0x00, 0x03, 0x08];

pub mod ins {
    pub const SELECT: u8 = 0xa4;
    pub const VERIFY: u8 = 0x20;
    pub const GENERAL_AUTHENTICATE: u8 = 0x87;
    pub const GENERATE: u8 = 0x47;
    pub const GET_RESPONSE: u8 = 0xc0;
    pub const GET_DATA: u8 = 0xcb;
    pub const PUT_DATA: u8 = 0xdb;
    pub const GET_VERSION: u8 = 0xfd;
    pub const GET_SERIAL: u8 = 0xf8;
    pub const GET_METADATA: u8 = 0xf7;
}

/// PIV algorithm identifiers.
pub mod alg {
    pub const TDES: u8 = 0x03;
    pub const AES128: u8 = 0x08;
    pub const AES192: u8 = 0x0a;
    pub const AES256: u8 = 0x0c;
    pub const P256: u8 = 0x11;
    pub const ED25519: u8 = 0xe0;
}

/// Key references.
pub mod slot {
    pub const PIN: u8 = 0x80;
    pub const MANAGEMENT: u8 = 0x9b;
    /// Key management (key agreement): wrap mode's ECDH key.
    pub const KEY_MANAGEMENT: u8 = 0x9d;
    /// The twenty retired key-management slots, 0x82..=0x95: the cryptoIDs.
    pub const RETIRED: std::ops::RangeInclusive<u8> = 0x82..=0x95;
}

/// Status words.
pub mod sw {
    pub const OK: u16 = 0x9000;
    pub const WRONG_LENGTH: u16 = 0x6700;
    pub const SECURITY_STATUS: u16 = 0x6982;
    pub const AUTH_BLOCKED: u16 = 0x6983;
    pub const CONDITIONS: u16 = 0x6985;
    pub const WRONG_DATA: u16 = 0x6a80;
    pub const NOT_FOUND: u16 = 0x6a82;
    pub const INCORRECT_P1P2: u16 = 0x6a86;
    pub const REF_NOT_FOUND: u16 = 0x6a88;
    pub const INS_NOT_SUPPORTED: u16 = 0x6d00;
    /// Low byte = retries left (`63Cx`).
    pub const VERIFY_FAIL: u16 = 0x63c0;
}

/// Most command data one short APDU carries.
pub const CHUNK: usize = 255;

/// One command, before it is split into APDUs.
pub struct Command<'a> {
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: &'a [u8],
}

/// A card's answer, reassembled.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub sw: u16,
}

impl Command<'_> {
    /// The short APDUs that carry this command: every chunk but the last
    /// has the chaining bit set; the last asks for up to 256 bytes back.
    pub fn apdus(&self) -> Vec<Vec<u8>> {
        let mut chunks: Vec<&[u8]> = self.data.chunks(CHUNK).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let last = chunks.len() - 1;
        chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| {
                let cla = if i < last { 0x10 } else { 0x00 };
                let mut apdu = Vec::with_capacity(chunk.len() + 6);
                apdu.extend_from_slice(&[cla, self.ins, self.p1, self.p2]);
                if !chunk.is_empty() {
                    apdu.push(chunk.len() as u8);
                    apdu.extend_from_slice(chunk);
                }
                if i == last {
                    apdu.push(0x00);
                }
                apdu
            })
            .collect()
    }

    /// Sends the command through `transmit` (one APDU in, one response
    /// out) and reassembles the answer, following `61xx` with GET RESPONSE.
    /// An intermediate chunk that is refused ends the exchange with its
    /// status word.
    pub fn collect<E>(&self, mut transmit: impl FnMut(&[u8]) -> Result<Vec<u8>, E>) -> Result<Response, E> {
        let apdus = self.apdus();
        let last = apdus.len() - 1;
        let mut reply = Vec::new();
        for (i, apdu) in apdus.iter().enumerate() {
            reply = transmit(apdu)?;
            if i < last {
                let (_, sw) = split_sw(&reply);
                if sw != sw::OK {
                    return Ok(Response { data: Vec::new(), sw });
                }
            }
        }
        let mut data = Vec::new();
        loop {
            let (body, sw) = split_sw(&reply);
            data.extend_from_slice(body);
            if sw >> 8 != 0x61 {
                return Ok(Response { data, sw });
            }
            // A card that never stops chaining is broken: stop at 64 KiB.
            if data.len() > 65_536 {
                return Ok(Response { data: Vec::new(), sw: sw::WRONG_LENGTH });
            }
            reply = transmit(&[0x00, ins::GET_RESPONSE, 0x00, 0x00, sw as u8])?;
        }
    }
}

/// Splits a response APDU into its data and status word (a response too
/// short to hold one reads as `0x6f00`, "no precise diagnosis").
pub fn split_sw(reply: &[u8]) -> (&[u8], u16) {
    match reply.len() {
        0 | 1 => (&[], 0x6f00),
        n => (&reply[..n - 2], u16::from_be_bytes([reply[n - 2], reply[n - 1]])),
    }
}

/// GENERAL AUTHENTICATE data asking the key to sign `message`
/// (`7C { 82 00, 81 message }`).
pub fn sign_request(message: &[u8]) -> Vec<u8> {
    let mut inner = vec![0x82, 0x00];
    tlv::put(&mut inner, &[0x81], message);
    tlv::tlv(&[0x7c], &inner)
}

/// GENERAL AUTHENTICATE data asking for ECDH with `peer` (an uncompressed
/// point): `7C { 82 00, 85 peer }`.
pub fn ecdh_request(peer: &[u8]) -> Vec<u8> {
    let mut inner = vec![0x82, 0x00];
    tlv::put(&mut inner, &[0x85], peer);
    tlv::tlv(&[0x7c], &inner)
}

/// The `82` value of a GENERAL AUTHENTICATE response (`7C { 82 ... }`).
pub fn auth_response(data: &[u8]) -> Option<&[u8]> {
    let (tag, inner, _) = tlv::split(data)?;
    if tag != 0x7c {
        return None;
    }
    tlv::all(inner)?.into_iter().find(|(t, _)| *t == 0x82).map(|(_, v)| v)
}

/// VERIFY data: the PIN padded with 0xFF to eight bytes.
pub fn pin_block(pin: &[u8]) -> Option<zeroize::Zeroizing<[u8; 8]>> {
    if pin.is_empty() || pin.len() > 8 {
        return None;
    }
    let mut block = zeroize::Zeroizing::new([0xff; 8]);
    block[..pin.len()].copy_from_slice(pin);
    Some(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_chains_into_short_apdus_that_reassemble() {
        for len in 0..=2048usize {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let cmd = Command { ins: ins::GENERAL_AUTHENTICATE, p1: alg::ED25519, p2: 0x82, data: &data };
            let apdus = cmd.apdus();
            let mut joined = Vec::new();
            for (i, apdu) in apdus.iter().enumerate() {
                let last = i + 1 == apdus.len();
                assert_eq!(apdu[0], if last { 0x00 } else { 0x10 }, "length {len}, APDU {i}");
                assert!(apdu.len() <= 4 + 1 + CHUNK + 1, "length {len}: APDU of {} bytes", apdu.len());
                let body = &apdu[4..apdu.len() - usize::from(last)];
                if let Some((&lc, chunk)) = body.split_first() {
                    assert_eq!(usize::from(lc), chunk.len(), "length {len}: Lc");
                    joined.extend_from_slice(chunk);
                }
            }
            assert_eq!(joined, data, "length {len}");
        }
    }

    #[test]
    fn response_chaining_is_followed() {
        let cmd = Command { ins: ins::GET_DATA, p1: 0x3f, p2: 0xff, data: &[1, 2, 3] };
        let mut replies = vec![vec![1, 2, 3, 0x61, 0x02], vec![4, 5, 0x90, 0x00]].into_iter();
        let mut sent = Vec::new();
        let r = cmd
            .collect::<()>(|apdu| {
                sent.push(apdu.to_vec());
                replies.next().ok_or(())
            })
            .expect("collect");
        assert_eq!(r, Response { data: vec![1, 2, 3, 4, 5], sw: sw::OK });
        assert_eq!(sent[1], vec![0x00, ins::GET_RESPONSE, 0, 0, 0x02]);
    }

    #[test]
    fn sign_requests_use_long_ber_lengths() {
        let req = sign_request(&[0u8; 300]);
        assert_eq!(&req[..4], &[0x7c, 0x82, 0x01, 0x32]);
        assert_eq!(&req[4..10], &[0x82, 0x00, 0x81, 0x82, 0x01, 0x2c]);
        assert_eq!(auth_response(&tlv::tlv(&[0x7c], &tlv::tlv(&[0x82], &[9; 64]))), Some(&[9u8; 64][..]));
        assert_eq!(auth_response(&[0x7c, 0x05, 0x82]), None);
    }
}
