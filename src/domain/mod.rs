//! Domain types and rules. Nothing here knows about HTTP or SQL: values are parsed
//! once at the edge into these types, and the rest of the code trusts them.

pub mod account;
pub mod client;
pub mod email;
pub mod lenient;
pub mod password;
pub mod return_to;
pub mod secret;

pub use account::{Account, AccountId, SignInMethod, WalletSummary};
pub use email::Email;
pub use password::Password;
pub use secret::Secret;

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The wait before the next attempt of an outbox's delivery (a mail, a back-channel
/// logout) after `attempts` failed ones: `base`, doubled each time, at most `max`.
pub fn backoff_secs(base: i64, max: i64, attempts: i64) -> i64 {
    let factor = 1i64
        .checked_shl(attempts.clamp(0, 30) as u32)
        .unwrap_or(i64::MAX);
    base.saturating_mul(factor).min(max)
}

/// Milliseconds since the Unix epoch (OwnID's timestamps).
pub fn unix_now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Why a value from outside was refused; the message names the field and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn missing(field: &str) -> Self {
        Invalid(format!(
            "The '{field}' field is required and was not provided."
        ))
    }
}
