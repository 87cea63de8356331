//! Account tokens and sessions: how tokens are signed (`jwt`), how long sessions last
//! (`session`), the rules of accounts (`accounts`) and password hashing (`argon2`).

use serde::{Deserialize, Serialize};

use super::serde_helpers::secret_list;
use crate::domain::Secret;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    /// `HS512` (with the secret, as `jwt-simple` verifies), or `EdDSA` (Ed25519) or
    /// `ES256` (P-256): signed with keys kept in the database, private halves encrypted
    /// under a key derived from the secret, published at `/.well-known/jwks.json`.
    pub algorithm: String,
    /// The JWKS's `Cache-Control: max-age`, seconds; `gatehouse keys rotate` publishes
    /// the next key this long before it signs.
    pub jwks_max_age_secs: i64,
    /// Secrets that signed before `jwt_secret` (each at least 32 bytes), for rotating
    /// it without ending every session: what they signed (account, refresh and device
    /// tokens) still verifies until it expires; nothing new is signed with them. Put the
    /// old secret here when you set a new one, on every node, and remove it once
    /// `session.absolute_lifetime_secs` has passed. Emailed links and, with EdDSA/ES256,
    /// the signing keys do not carry over (README, Rotating the JWT secret).
    #[serde(deserialize_with = "secret_list")]
    #[schema(value_type = Vec<String>)]
    pub previous_secrets: Vec<Secret<String>>,
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            algorithm: "HS512".into(),
            jwks_max_age_secs: 300,
            previous_secrets: Vec::new(),
        }
    }
}

impl JwtSettings {
    /// The asymmetric algorithm in force; `None` for HS512.
    pub fn asymmetric(&self) -> Option<crate::crypto::signing::Algorithm> {
        use crate::crypto::signing::Algorithm;
        Algorithm::parse(&self.algorithm).filter(|a| *a != Algorithm::RS256)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// A session not refreshed for this long ends, seconds.
    pub idle_timeout_secs: i64,
    /// A session ends this long after its sign-in, refreshed or not, seconds.
    pub absolute_lifetime_secs: i64,
    /// How long a rotated refresh token still gets the session's current tokens
    /// (tabs refreshing at once, a retry after a lost answer), seconds; after that,
    /// presenting it ends the session.
    pub refresh_reuse_grace_secs: i64,
    /// How many times, at most, a rotated refresh token is answered within the grace.
    pub refresh_reuse_limit: i64,
    /// The most sessions one account keeps. A sign-in beyond it ends the account's
    /// least recently used sessions (by their last refresh, or their sign-in if never
    /// refreshed) down to nine tenths of it (the cap less a tenth, rounded down), in
    /// the write that starts the new one; their tokens are refused from then on.
    pub max_per_account: i64,
    /// Also send the refresh token as an HttpOnly cookie, which `/auth/refresh`
    /// accepts from `http.public_url`'s origin or one of `http.cors_origins` with an
    /// `X-Gatehouse-CSRF` header; `/auth/logout` clears it.
    pub cookie: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            idle_timeout_secs: 7 * 24 * 3600,
            absolute_lifetime_secs: 30 * 24 * 3600,
            refresh_reuse_grace_secs: 30,
            refresh_reuse_limit: 100,
            max_per_account: 100,
            cookie: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AccountsSettings {
    /// How recent a sign-in must be, seconds (the session's `auth_time`), for every
    /// change to how the account is reached: adding or removing a passkey or a wallet,
    /// a wallet link token, a first password, an email change, deleting the account.
    pub reauth_window_secs: i64,
    /// Registration answers `202 {"message"}` alike for a new and a registered email
    /// (the owner of the registered one is mailed that someone tried), and a password
    /// login of an account whose email is unverified answers 403. Needs mail.
    pub require_verified_email: bool,
    /// Every account must have a second factor: a sign-in of an account without one
    /// answers `mfa_required` with `"methods": ["enroll_totp"]`, and its `mfa_token`
    /// can only enroll a TOTP authenticator (`POST /auth/mfa/totp`,
    /// `/auth/mfa/totp/confirm`), whose confirmation signs in. An account with a factor
    /// always owes it at sign-in, whatever this says.
    pub require_mfa: bool,
}

impl Default for AccountsSettings {
    fn default() -> Self {
        AccountsSettings {
            reauth_window_secs: 600,
            require_verified_email: false,
            require_mfa: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Argon2Settings {
    /// Memory per hash, KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes per hash.
    pub parallelism: u32,
    /// Hashes in flight at once; unset: the number of cores.
    pub max_in_flight: Option<usize>,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Argon2Settings {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
            max_in_flight: None,
        }
    }
}
