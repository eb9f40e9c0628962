//! One YubiKey on PC/SC: found by serial among the readers, reconnected
//! after it was pulled out or reset, one short transaction per operation.

use super::holders;
use crate::keystore::piv::{self, alg, ins, slot, sw, Command, Response, AID};
use crate::keystore::KeystoreError;

/// The longest message the backend sends to be signed. A YubiKey's command
/// buffer holds about 3 KiB; chaining carries any length up to it, and the
/// card's "wrong length" past it becomes `message_too_large`.
pub const MAX_MESSAGE: usize = 3_000;

/// What a card said about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub serial: u32,
    pub version: [u8; 3],
}

pub struct CardLink {
    serial: u32,
    open: Option<(pcsc::Card, Found)>,
}

fn pcsc_error(serial: u32, e: pcsc::Error) -> KeystoreError {
    match e {
        pcsc::Error::SharingViolation => KeystoreError::Unavailable(format!(
            "YubiKey {serial} is held exclusively by another program{}",
            holders::describe()
        )),
        pcsc::Error::NoService | pcsc::Error::ServiceStopped => KeystoreError::Unavailable(format!(
            "the PC/SC service is not running, so YubiKey {serial} cannot be reached: start pcscd \
             (`systemctl start pcscd.socket`)"
        )),
        other => {
            KeystoreError::Unavailable(format!("YubiKey {serial} is not reachable ({other}); plug it in"))
        }
    }
}

/// Whether an error means "the card went away or was reset": reconnect.
fn gone(e: pcsc::Error) -> bool {
    matches!(
        e,
        pcsc::Error::RemovedCard
            | pcsc::Error::ResetCard
            | pcsc::Error::NoSmartcard
            | pcsc::Error::ReaderUnavailable
            | pcsc::Error::UnknownReader
            | pcsc::Error::InvalidHandle
            | pcsc::Error::UnpoweredCard
            | pcsc::Error::UnresponsiveCard
            | pcsc::Error::CommError
    )
}

/// Runs one command on `card`.
fn run(card: &pcsc::Card, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Result<Response, pcsc::Error> {
    let mut buf = vec![0u8; 258];
    Command { ins, p1, p2, data }.collect(|apdu| card.transmit(apdu, &mut buf).map(<[u8]>::to_vec))
}

fn select(card: &pcsc::Card) -> Result<bool, pcsc::Error> {
    Ok(run(card, ins::SELECT, 0x04, 0x00, AID)?.sw == sw::OK)
}

/// SELECT, GET VERSION, GET SERIAL: who is in this reader?
fn identify(card: &pcsc::Card) -> Result<Option<Found>, pcsc::Error> {
    if !select(card)? {
        return Ok(None);
    }
    let v = run(card, ins::GET_VERSION, 0, 0, &[])?;
    let s = run(card, ins::GET_SERIAL, 0, 0, &[])?;
    let (Ok(version), Ok(serial)) =
        (<[u8; 3]>::try_from(v.data.get(..3).unwrap_or_default()), <[u8; 4]>::try_from(s.data.as_slice()))
    else {
        return Ok(None);
    };
    Ok(Some(Found { serial: u32::from_be_bytes(serial), version }))
}

/// The serial of the card to use: `serial` if given, else the only card
/// plugged in (several: an error listing them).
pub fn pick(serial: Option<u32>) -> Result<u32, KeystoreError> {
    if let Some(s) = serial {
        return Ok(s);
    }
    match list()?.as_slice() {
        [one] => Ok(one.serial),
        [] => Err(KeystoreError::Unavailable(
            "no YubiKey found: plug one in (and check that pcscd is running)".into(),
        )),
        many => Err(KeystoreError::SeveralCards(many.iter().map(|c| c.serial).collect())),
    }
}

/// Every PIV card present, by serial (for `backend init` without one).
pub fn list() -> Result<Vec<Found>, KeystoreError> {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).map_err(|e| pcsc_error(0, e))?;
    let readers = match ctx.list_readers_owned() {
        Ok(r) => r,
        Err(pcsc::Error::NoReadersAvailable) => return Ok(Vec::new()),
        Err(e) => return Err(pcsc_error(0, e)),
    };
    let mut out = Vec::new();
    for r in readers {
        let Ok(mut card) = ctx.connect(&r, pcsc::ShareMode::Shared, pcsc::Protocols::ANY) else { continue };
        if let Ok(tx) = card.transaction() {
            if let Ok(Some(found)) = identify(&tx) {
                out.push(found);
            }
        }
        let _ = card.disconnect(pcsc::Disposition::LeaveCard);
    }
    Ok(out)
}

fn pin_result(r: &Response) -> Result<(), KeystoreError> {
    match r.sw {
        sw::OK => Ok(()),
        sw::AUTH_BLOCKED => Err(KeystoreError::PinBlocked(
            "the YubiKey's PIN is blocked after too many wrong tries: unblock it with the PUK \
             (`ykman piv access unblock-pin`), then unlock again"
                .into(),
        )),
        s if s & 0xfff0 == sw::VERIFY_FAIL => {
            let left = s & 0x0f;
            Err(KeystoreError::BadPin(format!(" for the YubiKey: {left} tries left before it blocks")))
        }
        s => Err(KeystoreError::Unavailable(format!("the YubiKey refused the PIN check (status {s:04x})"))),
    }
}

impl CardLink {
    pub fn new(serial: u32) -> CardLink {
        CardLink { serial, open: None }
    }

    /// Connects to the card with our serial if not connected.
    fn connect(&mut self) -> Result<&mut (pcsc::Card, Found), KeystoreError> {
        if self.open.is_none() {
            let ctx = pcsc::Context::establish(pcsc::Scope::User).map_err(|e| pcsc_error(self.serial, e))?;
            let readers = ctx.list_readers_owned().map_err(|e| pcsc_error(self.serial, e))?;
            let mut refused = None;
            for r in readers {
                let mut card = match ctx.connect(&r, pcsc::ShareMode::Shared, pcsc::Protocols::ANY) {
                    Ok(c) => c,
                    Err(pcsc::Error::SharingViolation) => {
                        refused = Some(pcsc::Error::SharingViolation);
                        continue;
                    }
                    Err(_) => continue,
                };
                let found = card.transaction().ok().and_then(|tx| identify(&tx).ok().flatten());
                match found {
                    Some(f) if f.serial == self.serial => {
                        self.open = Some((card, f));
                        break;
                    }
                    _ => {
                        let _ = card.disconnect(pcsc::Disposition::LeaveCard);
                    }
                }
            }
            if self.open.is_none() {
                return Err(match refused {
                    Some(e) => pcsc_error(self.serial, e),
                    None => KeystoreError::Unavailable(format!(
                        "YubiKey {} is not plugged in (or its PIV application is disabled)",
                        self.serial
                    )),
                });
            }
        }
        self.open.as_mut().ok_or_else(|| KeystoreError::Unavailable("no card".into()))
    }

    /// The card, connecting if needed.
    pub fn card(&mut self) -> Result<Found, KeystoreError> {
        Ok(self.connect()?.1.clone())
    }

    /// Runs `f` in one transaction with PIV selected; once more on a fresh
    /// connection if the card was pulled out or reset meanwhile.
    fn with_card<R>(
        &mut self,
        f: impl Fn(&pcsc::Card) -> Result<R, pcsc::Error>,
    ) -> Result<R, KeystoreError> {
        for attempt in 0..2 {
            let serial = self.serial;
            let (card, _) = self.connect()?;
            let r = match card.transaction() {
                Ok(tx) => match select(&tx) {
                    Ok(true) => f(&tx),
                    Ok(false) => Err(pcsc::Error::ResetCard),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match r {
                Ok(r) => return Ok(r),
                Err(e) if gone(e) && attempt == 0 => {
                    tracing::info!(serial, error = %e, "YubiKey was reset or re-plugged; reconnecting");
                    self.open = None;
                }
                Err(e) => {
                    if gone(e) {
                        self.open = None;
                    }
                    return Err(pcsc_error(serial, e));
                }
            }
        }
        Err(KeystoreError::Unavailable(format!("YubiKey {} is not plugged in", self.serial)))
    }

    /// Whether the card is there and answers (one short transaction).
    pub fn present(&mut self) -> bool {
        self.with_card(|_| Ok(())).is_ok()
    }

    pub fn verify_pin(&mut self, pin: &str) -> Result<(), KeystoreError> {
        let block = piv::pin_block(pin.as_bytes())
            .ok_or_else(|| KeystoreError::BadPin(": a YubiKey PIN has 6 to 8 characters".into()))?;
        let r = self.with_card(|c| run(c, ins::VERIFY, 0x00, slot::PIN, &block[..]))?;
        pin_result(&r)
    }

    /// Verifies the PIN and runs one GENERAL AUTHENTICATE with `key`.
    fn authenticate(
        &mut self,
        pin: &str,
        algorithm: u8,
        key: u8,
        data: &[u8],
    ) -> Result<Vec<u8>, KeystoreError> {
        let block = piv::pin_block(pin.as_bytes())
            .ok_or_else(|| KeystoreError::BadPin(": a YubiKey PIN has 6 to 8 characters".into()))?;
        let (verify, r) = self.with_card(|c| {
            let verify = run(c, ins::VERIFY, 0x00, slot::PIN, &block[..])?;
            if verify.sw != sw::OK {
                return Ok((verify, None));
            }
            Ok((verify, Some(run(c, ins::GENERAL_AUTHENTICATE, algorithm, key, data)?)))
        })?;
        pin_result(&verify)?;
        let r = r.ok_or_else(|| KeystoreError::Unavailable("no answer".into()))?;
        match r.sw {
            sw::OK => piv::auth_response(&r.data).map(<[u8]>::to_vec).ok_or_else(|| {
                KeystoreError::Unavailable(format!("YubiKey {} sent a malformed answer", self.serial))
            }),
            sw::WRONG_LENGTH => Err(KeystoreError::MessageTooLarge(format!(
                "YubiKey {} cannot sign a message of {} bytes (it takes about {MAX_MESSAGE})",
                self.serial,
                data.len()
            ))),
            sw::REF_NOT_FOUND => Err(KeystoreError::Unavailable(format!(
                "slot {key:02x} of YubiKey {} is empty: the key was deleted or the PIV application reset",
                self.serial
            ))),
            sw::SECURITY_STATUS => Err(KeystoreError::PinRequired("yubikey")),
            s => Err(KeystoreError::Unavailable(format!(
                "YubiKey {} refused the operation (status {s:04x})",
                self.serial
            ))),
        }
    }

    pub fn sign(&mut self, pin: &str, key: u8, message: &[u8]) -> Result<Vec<u8>, KeystoreError> {
        if message.len() > MAX_MESSAGE {
            return Err(KeystoreError::MessageTooLarge(format!(
                "a YubiKey signs messages of at most {MAX_MESSAGE} bytes; this one has {}",
                message.len()
            )));
        }
        self.authenticate(pin, alg::ED25519, key, &piv::sign_request(message))
    }

    /// ECDH with the P-256 key in slot 9d: the shared x coordinate.
    pub fn ecdh(&mut self, pin: &str, peer: &[u8]) -> Result<Vec<u8>, KeystoreError> {
        self.authenticate(pin, alg::P256, slot::KEY_MANAGEMENT, &piv::ecdh_request(peer))
    }

    /// The public key in `key`, or `None` if the slot is empty.
    pub fn slot_public(&mut self, key: u8) -> Result<Option<(u8, Vec<u8>)>, KeystoreError> {
        let r = self.with_card(|c| run(c, ins::GET_METADATA, 0x00, key, &[]))?;
        if r.sw == sw::REF_NOT_FOUND {
            return Ok(None);
        }
        let items = piv::tlv::all(&r.data).filter(|_| r.sw == sw::OK).ok_or_else(|| {
            KeystoreError::Unavailable(format!("cannot read slot {key:02x}: status {:04x}", r.sw))
        })?;
        let get = |t: u8| items.iter().find(|(tag, _)| *tag == t).map(|(_, v)| *v);
        let algorithm = get(0x01).and_then(|v| v.first().copied()).unwrap_or(0);
        let point =
            get(0x04).and_then(|v| piv::tlv::split(v)).map(|(_, p, _)| p.to_vec()).unwrap_or_default();
        Ok(Some((algorithm, point)))
    }

    /// The first retired slot that holds no key, or only a key of ours that
    /// was deleted (`reusable`); never a slot in `active` or another
    /// program's key.
    pub fn free_retired_slot(&mut self, active: &[u8], reusable: &[u8]) -> Result<u8, KeystoreError> {
        for key in slot::RETIRED {
            if active.contains(&key) {
                continue;
            }
            if reusable.contains(&key) || self.slot_public(key)?.is_none() {
                return Ok(key);
            }
        }
        Err(KeystoreError::Unavailable(format!(
            "all 20 retired slots of YubiKey {} are in use: delete a cryptoID on it, or keep further keys in the \
             software keystore wrapped by the YubiKey",
            self.serial
        )))
    }
}

/// Generates a key on the card through the `yubikey` crate: verifies the
/// PIN, authenticates with the management key (PIN-protected if the card
/// has one, else the factory default), generates in `key`.
pub fn generate(serial: u32, pin: &str, key: u8, algorithm: u8, touch: u8) -> Result<Vec<u8>, KeystoreError> {
    use yubikey::piv::{AlgorithmId, SlotId};
    use yubikey::{MgmKey, PinPolicy, TouchPolicy, YubiKey};
    let unavailable =
        |what: &str, e: yubikey::Error| KeystoreError::Unavailable(format!("YubiKey {serial}: {what}: {e}"));
    let mut yk = YubiKey::open_by_serial(yubikey::Serial(serial)).map_err(|e| match e {
        yubikey::Error::PcscError { inner: Some(p) } => pcsc_error(serial, p),
        e => unavailable("cannot open it", e),
    })?;
    let result = (|| {
        yk.verify_pin(pin.as_bytes()).map_err(|e| match e {
            yubikey::Error::WrongPin { tries } => {
                KeystoreError::BadPin(format!(" for the YubiKey: {tries} tries left before it blocks"))
            }
            e => unavailable("PIN check failed", e),
        })?;
        let mgm = match MgmKey::get_protected(&mut yk) {
            Ok(k) => k,
            Err(_) => MgmKey::get_default(&yk).map_err(|e| unavailable("no usable management key", e))?,
        };
        yk.authenticate(&mgm).map_err(|_| KeystoreError::ManagementKeyUnusable(serial))?;
        let slot = SlotId::try_from(key).map_err(|e| unavailable("bad slot", e))?;
        let algorithm = match algorithm {
            alg::P256 => AlgorithmId::EccP256,
            _ => AlgorithmId::Ed25519,
        };
        let touch = match touch {
            0x02 => TouchPolicy::Always,
            0x03 => TouchPolicy::Cached,
            _ => TouchPolicy::Never,
        };
        let spki = yubikey::piv::generate(&mut yk, slot, algorithm, PinPolicy::Once, touch)
            .map_err(|e| unavailable("key generation failed", e))?;
        Ok(spki.subject_public_key.raw_bytes().to_vec())
    })();
    // Leave the card as it is: a reset would log other programs out.
    let _ = yk.disconnect(pcsc::Disposition::LeaveCard);
    result
}
