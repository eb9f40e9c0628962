//! The TPM's dictionary-attack protection, as the user sees it. Every wrong
//! PIN for a protected object raises one TPM-wide counter; at its maximum the
//! TPM refuses every protected object until the counter has gone down (one
//! step per recovery interval) or the lockout owner clears it. The counter is
//! the TPM's, shared with anything else on this machine that uses it.

use crate::keystore::KeystoreError;
use tss_esapi::constants::PropertyTag;
use tss_esapi::Context;

struct DaState {
    counter: u32,
    max: u32,
    /// Seconds for the counter to go down by one (0: never by itself).
    interval: u32,
}

fn read(ctx: &mut Context) -> Option<DaState> {
    let mut get = |tag| ctx.get_tpm_property(tag).ok().flatten();
    Some(DaState {
        counter: get(PropertyTag::LockoutCounter)?,
        max: get(PropertyTag::MaxAuthFail)?,
        interval: get(PropertyTag::LockoutInterval)?,
    })
}

fn duration(secs: u32) -> String {
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs.div_ceil(60)),
        _ => format!("{} h", secs.div_ceil(3600)),
    }
}

/// `tried`: whether this PIN was the one that locked the TPM out.
fn blocked(da: &DaState, tried: bool) -> KeystoreError {
    let wait = if da.interval == 0 {
        "it stays so until the TPM's lockout owner clears it".to_owned()
    } else {
        format!("try again in at most {}", duration(da.interval))
    };
    KeystoreError::PinBlocked(format!(
        "the TPM is locked out after {} wrong PINs (its dictionary-attack protection): {wait} \
         (the lockout owner can end it early: `tpm2_dictionarylockout --clear-lockout`){}",
        da.max,
        if tried { "" } else { "; the PIN was not tried" }
    ))
}

/// Refuses before trying a PIN when the TPM is locked out: the answer would
/// be the same, and the user learns how long to wait.
pub fn refuse_if_locked_out(ctx: &mut Context) -> Result<(), KeystoreError> {
    match read(ctx) {
        Some(da) if da.counter >= da.max => Err(blocked(&da, false)),
        _ => Ok(()),
    }
}

/// After the TPM refused a PIN: how many tries are left, or the lockout.
/// `ctx` should be a new context: swtpm was seen to answer the context that
/// failed with the counter as it was before the failure.
pub fn after_wrong_pin(ctx: &mut Context) -> KeystoreError {
    match read(ctx) {
        Some(da) if da.counter >= da.max => blocked(&da, true),
        Some(da) => {
            let left = da.max - da.counter;
            KeystoreError::BadPin(format!(
                " for the TPM: {left} {} left before it locks out{}",
                if left == 1 { "try" } else { "tries" },
                if da.interval == 0 {
                    String::new()
                } else {
                    format!(" (for up to {})", duration(da.interval))
                }
            ))
        }
        None => KeystoreError::BadPin(" for the TPM".into()),
    }
}

/// The TPM answered "locked out" to a try.
pub fn locked_out(ctx: &mut Context) -> KeystoreError {
    match read(ctx) {
        Some(da) => blocked(&da, false),
        None => KeystoreError::PinBlocked("the TPM is locked out after too many wrong PINs".into()),
    }
}
