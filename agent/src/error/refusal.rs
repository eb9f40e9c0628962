//! Refusals: by the policy, by the client rules, by the person asked.

/// The policy or a client rule said no, or the person did.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// `reasons` name the rules (and fields) that decided.
    #[error("the policy denies this: {}", .reasons.join("; "))]
    Policy { reasons: Vec<String> },
    /// Approved, but the decision made again after the wait denies it (the
    /// room, the key or the lock changed meanwhile).
    #[error("approved, but judged again after the wait the policy denies it: {}; nothing was signed", .reasons.join("; "))]
    PolicyAfterWait { reasons: Vec<String> },
    /// The connection is another user's.
    #[error("uid {uid} may not use the agent of uid {own}")]
    OtherUser { uid: u32, own: u32 },
    #[error("socket_confirm = false: confirmations are seen and answered by the askpass program only")]
    SocketConfirmOff,
    /// `undone` says what did not happen, for the method at hand ("no
    /// cryptoID was created"), as declared in the method table.
    #[error("the user declined ({by}); {undone}")]
    Declined { by: String, undone: &'static str },
    #[error(
        "no answer within {secs} s; {undone} (answer in the dialog, with `cryptoidctl confirm`, or in an askpass program)"
    )]
    TimedOut { secs: u64, undone: &'static str },
    #[error("no pending confirmation {0} (answered or expired)")]
    NoSuchPending(u64),
    #[error("confirmation {0} moves secret keys: only you answer it, in the agent's dialog (pinentry or askpass), never a client over the socket")]
    PersonOnly(u64),
    #[error("moving secret keys needs a dialog the agent runs itself to ask you in: install pinentry (e.g. pinentry-gnome3 or pinentry-tty) or set `askpass` in config.toml")]
    NoDialog,
    #[error(
        "{} confirmations are waiting already; this one was not asked and {undone}: answer those first",
        crate::prompt::MAX_PENDING
    )]
    Busy { undone: &'static str },
}
