//! The card: PIV state and one APDU at a time. What a YubiKey 5.7 does for
//! the commands the agent (and the `yubikey` crate under it) sends; no more.

use super::state::{CardState, SlotKey};
use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use cryptoid_agent::keystore::piv::{alg, ins, slot, sw, tlv, AID};
use ed25519_dalek::Signer;
use rand_core::{OsRng, RngCore};
use std::time::{Duration, Instant};

/// Most command data the card takes in one chained command (a YubiKey's
/// buffer is about this size).
pub const MAX_COMMAND: usize = 3072;

/// The object that holds a PIN-protected management key.
const PRINTED: u32 = 0x5f_c109;

pub struct Card {
    pub state: CardState,
    /// What the last command changed must be saved.
    pub dirty: bool,
    selected: bool,
    pin_verified: bool,
    mgm_authenticated: bool,
    /// The witness of a management-key authentication under way.
    witness: Option<Vec<u8>>,
    /// Data of a chained command so far: (INS, P1, P2, data).
    chain: Option<(u8, u8, u8, Vec<u8>)>,
    /// The rest of a response too long for one APDU.
    pending: Vec<u8>,
    /// When a "cached" touch was last given.
    touched: Option<Instant>,
}

fn status(sw: u16) -> Vec<u8> {
    sw.to_be_bytes().to_vec()
}

fn ok(mut data: Vec<u8>) -> Vec<u8> {
    data.extend_from_slice(&sw::OK.to_be_bytes());
    data
}

impl Card {
    pub fn new(state: CardState) -> Card {
        Card {
            state,
            dirty: false,
            selected: false,
            pin_verified: false,
            mgm_authenticated: false,
            witness: None,
            chain: None,
            pending: Vec::new(),
            touched: None,
        }
    }

    /// A power cycle or reset: the session's security state is gone.
    pub fn reset(&mut self) {
        *self = Card::new(std::mem::take(&mut self.state));
    }

    /// Answers one command APDU.
    pub fn apdu(&mut self, apdu: &[u8]) -> Vec<u8> {
        let Some((cla, ins, p1, p2, data)) = parse(apdu) else {
            return status(sw::WRONG_LENGTH);
        };
        if ins != ins::GET_RESPONSE {
            self.pending.clear();
        }
        if cla & 0x10 != 0 {
            let chain = self.chain.get_or_insert((ins, p1, p2, Vec::new()));
            if (chain.0, chain.1, chain.2) != (ins, p1, p2) {
                self.chain = None;
                return status(sw::CONDITIONS);
            }
            chain.3.extend_from_slice(data);
            if chain.3.len() > MAX_COMMAND {
                self.chain = None;
                return status(sw::WRONG_LENGTH);
            }
            return status(sw::OK);
        }
        let data = match self.chain.take() {
            Some((i, a, b, mut buf)) if (i, a, b) == (ins, p1, p2) => {
                buf.extend_from_slice(data);
                buf
            }
            Some(_) => return status(sw::CONDITIONS),
            None => data.to_vec(),
        };
        if data.len() > MAX_COMMAND {
            return status(sw::WRONG_LENGTH);
        }
        let reply = self.command(ins, p1, p2, &data);
        self.chunk(reply)
    }

    /// Sends at most 256 bytes of a reply; the rest waits for GET RESPONSE.
    fn chunk(&mut self, reply: Vec<u8>) -> Vec<u8> {
        let (body, sw) = reply.split_at(reply.len() - 2);
        if body.len() <= 256 {
            return reply;
        }
        let (now, later) = body.split_at(256);
        let mut out = now.to_vec();
        self.pending = later.to_vec();
        self.pending.extend_from_slice(sw);
        out.extend_from_slice(&[0x61, later.len().min(255) as u8]);
        out
    }

    fn command(&mut self, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
        if ins == ins::SELECT {
            return self.select(p1, data);
        }
        if ins == ins::GET_RESPONSE {
            let rest = std::mem::take(&mut self.pending);
            return if rest.len() >= 2 { self.chunk(rest) } else { status(sw::CONDITIONS) };
        }
        if !self.selected {
            return status(sw::INS_NOT_SUPPORTED);
        }
        match ins {
            ins::GET_VERSION => ok(self.state.version.to_vec()),
            ins::GET_SERIAL => ok(self.state.serial.to_be_bytes().to_vec()),
            ins::VERIFY if p2 == slot::PIN => self.verify(data),
            ins::GET_METADATA => self.metadata(p2),
            ins::GENERAL_AUTHENTICATE if p2 == slot::MANAGEMENT => self.mgm_auth(p1, data),
            ins::GENERAL_AUTHENTICATE => self.private_key_op(p1, p2, data),
            ins::GENERATE => self.generate(p2, data),
            ins::GET_DATA => self.get_data(data),
            ins::PUT_DATA => self.put_data(data),
            _ => status(sw::INS_NOT_SUPPORTED),
        }
    }

    fn select(&mut self, p1: u8, data: &[u8]) -> Vec<u8> {
        if p1 != 0x04 || !data.starts_with(AID) {
            self.selected = false;
            return status(sw::NOT_FOUND);
        }
        // Selecting PIV again drops a verified PIN, as a YubiKey does.
        self.selected = true;
        self.pin_verified = false;
        // Application property template: the PIV AID.
        ok(tlv::tlv(&[0x61], &tlv::tlv(&[0x4f], AID)))
    }

    fn verify(&mut self, data: &[u8]) -> Vec<u8> {
        if self.state.pin_retries == 0 {
            return status(sw::AUTH_BLOCKED);
        }
        if data.is_empty() {
            return if self.pin_verified {
                status(sw::OK)
            } else {
                status(sw::VERIFY_FAIL | u16::from(self.state.pin_retries))
            };
        }
        let pin: Vec<u8> = data.iter().copied().take_while(|&b| b != 0xff).collect();
        if data.len() == 8 && pin == self.state.pin.as_bytes() {
            self.state.pin_retries = self.state.pin_max;
            self.pin_verified = true;
            self.dirty = true;
            return status(sw::OK);
        }
        self.pin_verified = false;
        self.state.pin_retries -= 1;
        self.dirty = true;
        if self.state.pin_retries == 0 {
            status(sw::AUTH_BLOCKED)
        } else {
            status(sw::VERIFY_FAIL | u16::from(self.state.pin_retries))
        }
    }

    fn metadata(&self, p2: u8) -> Vec<u8> {
        let mut out = Vec::new();
        match p2 {
            slot::PIN => {
                tlv::put(&mut out, &[0x01], &[0xff]);
                tlv::put(&mut out, &[0x05], &[u8::from(self.state.pin == "123456")]);
                tlv::put(&mut out, &[0x06], &[self.state.pin_max, self.state.pin_retries]);
            }
            slot::MANAGEMENT => {
                tlv::put(&mut out, &[0x01], &[self.state.mgm_alg]);
                tlv::put(&mut out, &[0x02], &[0x00, 0x01]);
                tlv::put(&mut out, &[0x05], &[u8::from(self.state.mgm_key == DEFAULT_MGM)]);
            }
            s => {
                let Some(key) = self.state.slots.get(&s) else {
                    return status(sw::REF_NOT_FOUND);
                };
                tlv::put(&mut out, &[0x01], &[key.alg]);
                tlv::put(&mut out, &[0x02], &[key.pin_policy, key.touch_policy]);
                tlv::put(&mut out, &[0x03], &[0x01]);
                tlv::put(&mut out, &[0x04], &tlv::tlv(&[0x86], &key.public()));
            }
        }
        ok(out)
    }

    fn mgm_cipher(&self, block: &mut [u8], encrypt: bool) -> Option<()> {
        let key = hex(&self.state.mgm_key)?;
        macro_rules! run {
            ($c:ty) => {{
                let c = <$c>::new_from_slice(&key).ok()?;
                let b = block.try_into().ok()?;
                if encrypt {
                    c.encrypt_block(b)
                } else {
                    c.decrypt_block(b)
                }
            }};
        }
        match self.state.mgm_alg {
            alg::TDES => run!(des::TdesEde3),
            alg::AES128 => run!(aes::Aes128),
            alg::AES192 => run!(aes::Aes192),
            alg::AES256 => run!(aes::Aes256),
            _ => return None,
        }
        Some(())
    }

    /// Mutual authentication with the management key: the card sends a
    /// witness encrypted, the host answers it decrypted along with its own
    /// challenge, which the card returns encrypted.
    fn mgm_auth(&mut self, p1: u8, data: &[u8]) -> Vec<u8> {
        if p1 != self.state.mgm_alg {
            return status(sw::INCORRECT_P1P2);
        }
        let block = if p1 == alg::TDES { 8 } else { 16 };
        let Some(items) = tlv::split(data).and_then(|(t, v, _)| (t == 0x7c).then_some(v)).and_then(tlv::all)
        else {
            return status(sw::WRONG_DATA);
        };
        let get = |tag: u8| items.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v);
        match (get(0x80), get(0x81)) {
            (Some([]), None) => {
                let mut witness = vec![0u8; block];
                OsRng.fill_bytes(&mut witness);
                let mut enc = witness.clone();
                if self.mgm_cipher(&mut enc, true).is_none() {
                    return status(sw::CONDITIONS);
                }
                self.witness = Some(witness);
                ok(tlv::tlv(&[0x7c], &tlv::tlv(&[0x80], &enc)))
            }
            (Some(answer), Some(challenge)) if challenge.len() == block => {
                let expected = self.witness.take();
                if expected.as_deref() != Some(answer) {
                    self.mgm_authenticated = false;
                    return status(sw::SECURITY_STATUS);
                }
                let mut enc = challenge.to_vec();
                if self.mgm_cipher(&mut enc, true).is_none() {
                    return status(sw::CONDITIONS);
                }
                self.mgm_authenticated = true;
                ok(tlv::tlv(&[0x7c], &tlv::tlv(&[0x82], &enc)))
            }
            _ => status(sw::WRONG_DATA),
        }
    }

    /// Signing (Ed25519) and key agreement (P-256) with a slot's key.
    fn private_key_op(&mut self, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
        let Some(key) = self.state.slots.get(&p2) else {
            return status(sw::REF_NOT_FOUND);
        };
        if key.alg != p1 {
            return status(sw::INCORRECT_P1P2);
        }
        if key.pin_policy != 0x01 && !self.pin_verified {
            return status(sw::SECURITY_STATUS);
        }
        let Some(items) = tlv::split(data).and_then(|(t, v, _)| (t == 0x7c).then_some(v)).and_then(tlv::all)
        else {
            return status(sw::WRONG_DATA);
        };
        let get = |tag: u8| items.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v);
        let out = match (key.alg, get(0x81), get(0x85)) {
            (alg::ED25519, Some(message), None) => key.ed25519().map(|k| k.sign(message).to_bytes().to_vec()),
            (alg::P256, None, Some(peer)) => key.p256().and_then(|k| {
                let peer = p256::PublicKey::from_sec1_bytes(peer).ok()?;
                let shared = p256::ecdh::diffie_hellman(k.to_nonzero_scalar(), peer.as_affine());
                Some(shared.raw_secret_bytes().to_vec())
            }),
            _ => None,
        };
        let Some(out) = out else {
            return status(sw::WRONG_DATA);
        };
        let touch = key.touch_policy;
        // A touch policy makes the card wait for a finger; the virtual one
        // waits `touch_ms`, as a quick user would.
        let cached = touch == 0x03 && self.touched.is_some_and(|t| t.elapsed() < Duration::from_secs(15));
        if (touch == 0x02 || touch == 0x03) && !cached {
            std::thread::sleep(Duration::from_millis(self.state.touch_ms));
            self.touched = Some(Instant::now());
        }
        if key.pin_policy == 0x03 {
            self.pin_verified = false;
        }
        ok(tlv::tlv(&[0x7c], &tlv::tlv(&[0x82], &out)))
    }

    fn generate(&mut self, p2: u8, data: &[u8]) -> Vec<u8> {
        if !self.mgm_authenticated {
            return status(sw::SECURITY_STATUS);
        }
        if !(slot::RETIRED.contains(&p2) || matches!(p2, 0x9a | 0x9c | 0x9d | 0x9e)) {
            return status(sw::INCORRECT_P1P2);
        }
        let Some(items) = tlv::split(data).and_then(|(t, v, _)| (t == 0xac).then_some(v)).and_then(tlv::all)
        else {
            return status(sw::WRONG_DATA);
        };
        let get = |tag: u8| items.iter().find(|(t, _)| *t == tag).and_then(|(_, v)| v.first().copied());
        let algorithm = get(0x80).unwrap_or(0);
        let ed25519_ok = self.state.version >= [5, 7, 0];
        if !(algorithm == alg::P256 || (algorithm == alg::ED25519 && ed25519_ok)) {
            return status(sw::WRONG_DATA);
        }
        let pin_policy = match get(0xaa) {
            None | Some(0) => 0x02,
            Some(p @ 1..=3) => p,
            Some(_) => return status(sw::WRONG_DATA),
        };
        let touch_policy = match get(0xab) {
            None | Some(0) => 0x01,
            Some(t @ 1..=3) => t,
            Some(_) => return status(sw::WRONG_DATA),
        };
        let key = SlotKey::generate(algorithm, pin_policy, touch_policy);
        let public = key.public();
        self.state.slots.insert(p2, key);
        self.dirty = true;
        ok(tlv::tlv(&[0x7f, 0x49], &tlv::tlv(&[0x86], &public)))
    }

    fn object_id(data: &[u8]) -> Option<u32> {
        let (tag, id, _) = tlv::split(data)?;
        (tag == 0x5c && id.len() == 3).then(|| u32::from_be_bytes([0, id[0], id[1], id[2]]))
    }

    fn get_data(&self, data: &[u8]) -> Vec<u8> {
        let Some(id) = Self::object_id(data) else {
            return status(sw::WRONG_DATA);
        };
        // PRINTED holds a PIN-protected management key: PIN first.
        if id == PRINTED && !self.pin_verified {
            return status(sw::SECURITY_STATUS);
        }
        match self.state.objects.get(&id).and_then(|h| hex(h)) {
            Some(v) => ok(tlv::tlv(&[0x53], &v)),
            None => status(sw::NOT_FOUND),
        }
    }

    fn put_data(&mut self, data: &[u8]) -> Vec<u8> {
        if !self.mgm_authenticated {
            return status(sw::SECURITY_STATUS);
        }
        let Some(id) = Self::object_id(data) else {
            return status(sw::WRONG_DATA);
        };
        let rest = tlv::split(data).map(|(_, _, rest)| rest).unwrap_or_default();
        let Some((0x53, value, _)) = tlv::split(rest) else {
            return status(sw::WRONG_DATA);
        };
        self.state.objects.insert(id, to_hex(value));
        self.dirty = true;
        status(sw::OK)
    }
}

/// The factory management key (3DES before 5.7, AES-192 from 5.7).
pub const DEFAULT_MGM: &str = "010203040506070801020304050607080102030405060708";

/// Splits a short APDU: `(CLA, INS, P1, P2, data)`; `None` if malformed.
fn parse(apdu: &[u8]) -> Option<(u8, u8, u8, u8, &[u8])> {
    let &[cla, ins, p1, p2] = apdu.first_chunk::<4>()?;
    let body = &apdu[4..];
    let data = match body.len() {
        0 | 1 => &[][..],
        n => {
            let lc = usize::from(body[0]);
            // Lc, data, and an optional Le.
            if n != 1 + lc && n != 2 + lc {
                return None;
            }
            &body[1..=lc]
        }
    };
    Some((cla, ins, p1, p2, data))
}

pub fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
