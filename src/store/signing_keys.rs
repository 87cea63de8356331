//! Signing keys in the database: the narrow interface the key rules
//! ([`crate::signing_keys`]) need, and its SQL, written once for both backends (as in
//! [`super::queries`]). Every node reads the same rows, so a key rotated anywhere is
//! published, used and accepted everywhere.

use async_trait::async_trait;

use super::StoreResult;

/// A signing key as stored: its private half sealed ([`crate::crypto::signing`]).
#[derive(Clone)]
pub struct StoredKey {
    pub kid: String,
    /// `EdDSA`, `ES256` or `RS256`.
    pub algorithm: String,
    /// `account` or `oidc` ([`crate::signing_keys::KeyPurpose`]).
    pub purpose: String,
    /// The public JWK, as the JWKS publishes it.
    pub public_jwk: String,
    /// The private key, encrypted.
    pub private_key: String,
    /// Published from then on.
    pub created_at: i64,
    /// Signs from then on (the newest such key of the algorithm in force).
    pub signs_from: i64,
    /// Leaves the JWKS then; `None` until a successor is published.
    pub retires_at: Option<i64>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("purpose", &self.purpose)
            .field("private_key", &"<hidden>")
            .field("created_at", &self.created_at)
            .field("signs_from", &self.signs_from)
            .field("retires_at", &self.retires_at)
            .finish()
    }
}

#[async_trait]
pub trait SigningKeyStore: Send + Sync + 'static {
    /// The keys still published at `now` (every key with `None`), by `signs_from`.
    async fn signing_keys(&self, now: Option<i64>) -> StoreResult<Vec<StoredKey>>;
    /// Publishes `key`; with `retire_others_at`, in the same transaction, every other
    /// key of its purpose not yet retiring retires then (for `oidc` keys, only those of
    /// its algorithm: the three algorithms sign side by side).
    async fn add_signing_key(
        &self,
        key: &StoredKey,
        retire_others_at: Option<i64>,
    ) -> StoreResult<()>;
    /// Deletes the keys retired before `now`.
    async fn purge_signing_keys(&self, now: i64) -> StoreResult<u64>;
}

pub(super) mod sql {
    pub const INSERT: &str = "INSERT INTO signing_keys
        (kid, algorithm, public_jwk, private_key, created_at, signs_from, retires_at, purpose)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

    pub const RETIRE_OTHERS: &str = "UPDATE signing_keys SET retires_at = $1
     WHERE retires_at IS NULL AND kid <> $2 AND purpose = $3
       AND (purpose = 'account' OR algorithm = $4)";

    pub const PUBLISHED: &str = "SELECT kid, algorithm, public_jwk, private_key, created_at,
        signs_from, retires_at, purpose FROM signing_keys
     WHERE retires_at IS NULL OR retires_at > $1 ORDER BY signs_from, created_at, kid";

    pub const EVERY_KEY: &str = "SELECT kid, algorithm, public_jwk, private_key, created_at,
        signs_from, retires_at, purpose FROM signing_keys ORDER BY signs_from, created_at, kid";

    pub const PURGE: &str = "DELETE FROM signing_keys WHERE retires_at <= $1";

    /// Every statement above, for the tests that prepare each on each backend.
    #[cfg(test)]
    pub const ALL: &[&str] = &[INSERT, RETIRE_OTHERS, PUBLISHED, EVERY_KEY, PURGE];
}
