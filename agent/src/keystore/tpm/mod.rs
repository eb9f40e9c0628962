//! Wrap mode with a TPM 2.0: the software keystore's data key is sealed
//! under a random key-encryption key (KEK) that only this machine's TPM gives
//! back, and only for the user's PIN.
//!
//! - [`Sealed`], [`seal`], [`unseal`], [`change_pin`]: what the software
//!   keystore calls; in an agent built without the `tpm` feature they say so.
//! - `device`: reaching the TPM (the TCTI), with errors that name the fix.
//! - `seal`: the sealed data object: made, unsealed, its PIN changed.
//! - `lockout`: the TPM's dictionary-attack state, read to tell the user
//!   how many tries are left or how long to wait.
//!
//! The TPM does not sign (Ed25519 is not a TPM algorithm): as with the
//! YubiKey wrap mode, it guards the key that guards the keys.

#[cfg(feature = "tpm")]
mod device;
#[cfg(feature = "tpm")]
mod lockout;
#[cfg(feature = "tpm")]
mod seal;

use super::KeystoreError;
use zeroize::Zeroizing;

/// The kernel's resource manager: shared safely between programs, and it
/// flushes what a crashed program left loaded.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";

/// What `keystore.json` keeps of the sealed object (nothing secret: the
/// private part is encrypted under the TPM's storage key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// Name of the storage key it was sealed under.
    pub srk_name: Vec<u8>,
    /// `TPMT_PUBLIC`, marshalled.
    pub public: Vec<u8>,
    /// `TPM2B_PRIVATE`'s buffer.
    pub private: Vec<u8>,
    /// SHA-256 PCRs the policy binds (ascending), and their values at sealing.
    pub pcrs: Vec<(u8, Vec<u8>)>,
}

#[cfg(not(feature = "tpm"))]
fn not_built() -> KeystoreError {
    KeystoreError::NotBuilt { what: "TPM", feature: "tpm" }
}

/// Seals `kek` under the TPM `tcti` names, behind `pin` and, if `pcrs` is
/// not empty, the current values of those SHA-256 PCRs; checked to unseal.
pub fn seal(tcti: &str, pin: &str, pcrs: &[u8], kek: &[u8; 32]) -> Result<Sealed, KeystoreError> {
    #[cfg(feature = "tpm")]
    return seal::seal(tcti, pin, pcrs, kek);
    #[cfg(not(feature = "tpm"))]
    {
        let _ = (tcti, pin, pcrs, kek);
        Err(not_built())
    }
}

/// The KEK, if this TPM sealed it, `pin` is its PIN and the bound PCRs
/// hold their values at sealing.
pub fn unseal(tcti: &str, sealed: &Sealed, pin: &str) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    #[cfg(feature = "tpm")]
    return seal::unseal(tcti, sealed, pin);
    #[cfg(not(feature = "tpm"))]
    {
        let _ = (tcti, sealed, pin);
        Err(not_built())
    }
}

/// The KEK sealed again behind `new` (after `old` unsealed it).
pub fn change_pin(tcti: &str, sealed: &Sealed, old: &str, new: &str) -> Result<Sealed, KeystoreError> {
    #[cfg(feature = "tpm")]
    return seal::change_pin(tcti, sealed, old, new);
    #[cfg(not(feature = "tpm"))]
    {
        let _ = (tcti, sealed, old, new);
        Err(not_built())
    }
}
