//! A virtual PIV card (YubiKey 5.7 as the agent uses it) for the YubiKey
//! tests: [`card`] answers APDUs, [`state`] keeps keys across removals, and
//! [`serve`] plugs the card into a real `pcscd` through the `vsmartcard-vpcd`
//! reader driver, which listens on a TCP port per reader slot.
//!
//! vpcd's framing: a two-byte big-endian length, then either a one-byte
//! control message (power off / on, reset, get ATR) or a command APDU, which
//! gets a response APDU the same way.

pub mod card;
pub mod state;

use card::Card;
use state::CardState;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The first vpcd port of the test readers (`tests/pcscd.sh`); two slots.
pub const FIRST_PORT: u16 = 40000;

/// A YubiKey-like ATR announcing T=1, with its check byte.
pub fn atr() -> Vec<u8> {
    let mut atr = vec![0x3b, 0xf8, 0x13, 0x00, 0x00, 0x81, 0x31, 0xfe, 0x15];
    atr.extend_from_slice(b"Yubikey4");
    let tck = atr[1..].iter().fold(0u8, |x, b| x ^ b);
    atr.push(tck);
    atr
}

/// Connects the card to vpcd on `port` and serves it until killed: when
/// vpcd hangs up (it does, around a removal it noticed late), the card
/// connects again, as a card left in its reader would be seen again. The
/// state is saved to `state_path` after every command that changed it.
pub fn serve(port: u16, state_path: &Path) -> std::io::Result<()> {
    let mut card = Card::new(CardState::load(state_path)?);
    let mut deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => {
                serve_connection(&mut card, stream, state_path)?;
                card.reset();
                deadline = Instant::now() + Duration::from_secs(10);
            }
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One vpcd connection, until it ends.
fn serve_connection(card: &mut Card, mut stream: TcpStream, state_path: &Path) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    loop {
        // Delayed ACKs would hold each answer ~40 ms: re-arm quick ACKs
        // before every read (Linux clears the flag on its own).
        let _ = rustix::net::sockopt::set_tcp_quickack(&stream, true);
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).is_err() {
            return Ok(());
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut msg).is_err() {
            return Ok(());
        }
        let reply = match msg.as_slice() {
            [0x00] | [0x01] | [0x02] => {
                card.reset();
                continue;
            }
            [0x04] => atr(),
            [_] => continue,
            apdu => card.apdu(apdu),
        };
        if card.dirty {
            card.state.save(state_path)?;
            card.dirty = false;
        }
        let mut out = (reply.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&reply);
        if stream.write_all(&out).is_err() {
            return Ok(());
        }
    }
}

/// A virtual card plugged into one of the test readers, for a test: the
/// `virtual-piv` process, its state file, and its vpcd port.
pub struct VirtualCard {
    child: Option<std::process::Child>,
    pub port: u16,
    pub state: std::path::PathBuf,
    pub serial: u32,
    args: Vec<String>,
}

/// Whether `tests/pcscd.sh` (run by `tests/run.sh`) started pcscd with the
/// virtual readers; the YubiKey tests say SKIPPED and pass without it.
pub fn readers_up() -> bool {
    std::env::var_os("CRYPTOID_TEST_PCSCD").is_some()
}

/// Whether the reader on `port` holds a card that answers as `serial`
/// (`Err` says why not).
fn card_answers(port: u16, serial: u32) -> Result<bool, String> {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).map_err(|e| format!("establish: {e}"))?;
    let suffix = format!("00 {:02}", port - FIRST_PORT);
    let readers = ctx.list_readers_owned().map_err(|e| format!("list: {e}"))?;
    let reader = readers
        .iter()
        .find(|r| r.to_string_lossy().ends_with(&suffix))
        .ok_or_else(|| format!("no reader ending in {suffix:?} among {readers:?}"))?;
    let card = match ctx.connect(reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY) {
        Ok(c) => c,
        Err(pcsc::Error::NoSmartcard | pcsc::Error::RemovedCard) => return Ok(false),
        Err(e) => return Err(format!("connect: {e}")),
    };
    let mut buf = [0u8; 258];
    let mut ask =
        |apdu: &[u8]| card.transmit(apdu, &mut buf).map(<[u8]>::to_vec).map_err(|e| format!("transmit: {e}"));
    ask(&[0x00, 0xa4, 0x04, 0x00, 0x05, 0xa0, 0x00, 0x00, 0x03, 0x08, 0x00])?;
    let r = ask(&[0x00, 0xf8, 0x00, 0x00, 0x00])?;
    let answered = r.len() == 6 && u32::from_be_bytes([r[0], r[1], r[2], r[3]]) == serial;
    let _ = card.disconnect(pcsc::Disposition::LeaveCard);
    Ok(answered)
}

fn wait_for(port: u16, serial: u32, present: bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = card_answers(port, serial);
        if r == Ok(present) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "card {serial} on port {port} never {}: {r:?}",
            if present { "answered" } else { "went away" }
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl VirtualCard {
    /// Plugs a new card with `serial` into reader `n` (0 or 1); `args` go
    /// to `virtual-piv` (e.g. `--version 5.4.3`).
    pub fn insert(dir: &Path, n: u16, serial: u32, args: &[&str]) -> VirtualCard {
        let mut card = VirtualCard {
            child: None,
            port: FIRST_PORT + n,
            state: dir.join(format!("card-{serial}.json")),
            serial,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        card.reinsert();
        card
    }

    /// Pulls the card out (its process ends; its keys stay in the state file).
    pub fn remove(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Let pcscd's 400 ms poll see the removal before asking: talking to
        // vpcd while its card is going confuses it (the next card inserted
        // there then fails its first APDU).
        std::thread::sleep(Duration::from_millis(1500));
        wait_for(self.port, self.serial, false);
    }

    /// Puts it back.
    pub fn reinsert(&mut self) {
        let child = std::process::Command::new(crate::bin("virtual-piv"))
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--state")
            .arg(&self.state)
            .arg("--serial")
            .arg(self.serial.to_string())
            .args(&self.args)
            .spawn()
            .expect("spawn virtual-piv");
        self.child = Some(child);
        wait_for(self.port, self.serial, true);
    }

    /// What the card keeps (PIN tries left, slots, ...).
    pub fn state(&self) -> CardState {
        CardState::load(&self.state).expect("card state")
    }
}

impl Drop for VirtualCard {
    /// Pulls the card out and waits until pcscd saw it go, so the next
    /// test's card is not mistaken for this one.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            // pcscd polls the reader every 400 ms: let it see the removal.
            std::thread::sleep(Duration::from_millis(1500));
        }
    }
}
