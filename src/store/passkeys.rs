//! Storage of passkeys (WebAuthn credentials): their own narrow trait, implemented by
//! each backend. The credential itself is stored in the verifier's serialised form
//! (versioned by `format`); the values that change with use (signature counter,
//! backup state, last use) and those the API lists are columns of their own.

use async_trait::async_trait;

use super::{NewAccount, StoreResult};
use crate::domain::AccountId;

/// The stored form of [`NewPasskey::credential`]: webauthn-rs 0.6's `Passkey` as JSON.
pub const FORMAT_WEBAUTHN_RS_0_6: i64 = 1;

/// A passkey about to be stored.
#[derive(Debug, Clone)]
pub struct NewPasskey {
    pub id: String,
    /// base64url, as the authenticator made it.
    pub credential_id: String,
    pub name: String,
    pub credential: String,
    pub format: i64,
    pub aaguid: String,
    /// JSON array of transport hints.
    pub transports: String,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub sign_count: i64,
    pub created_at: i64,
}

/// What a sign-in needs of a stored passkey.
#[derive(Debug, Clone)]
pub struct StoredPasskey {
    pub id: String,
    pub account: AccountId,
    pub credential: String,
    pub format: i64,
    pub backup_state: bool,
    pub sign_count: i64,
}

/// A passkey as the account's owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeySummary {
    pub id: String,
    pub credential_id: String,
    pub name: String,
    pub aaguid: String,
    pub transports: String,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// What a sign-in changed on a passkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasskeyUse {
    pub sign_count: i64,
    pub backup_state: bool,
    pub at: i64,
}

/// What removing a passkey did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyRemoval {
    Removed,
    NotFound,
    /// Refused: the passkey is the account's last way to sign in.
    LastSignInMethod,
}

#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// Creates an account whose only way in is this passkey, in one transaction.
    async fn create_account_with_passkey(
        &self,
        account: &NewAccount,
        passkey: &NewPasskey,
    ) -> StoreResult<()>;
    /// Adds a passkey to an existing account; `Conflict(Passkey)` if its credential id
    /// is stored already (on any account).
    async fn add_passkey(&self, account: &AccountId, passkey: &NewPasskey) -> StoreResult<()>;
    async fn passkey_by_credential_id(
        &self,
        credential_id: &str,
    ) -> StoreResult<Option<StoredPasskey>>;
    async fn passkeys(&self, account: &AccountId) -> StoreResult<Vec<PasskeySummary>>;
    /// Records a sign-in's use if its counter is above the stored one, or both are 0,
    /// in one statement (a compare-and-set); false when it is not (a concurrent use
    /// took that counter first: a possible clone), or the passkey is gone.
    async fn record_passkey_use(&self, id: &str, used: PasskeyUse) -> StoreResult<bool>;
    /// Renames a passkey of this account; false if it has none with this id.
    async fn rename_passkey(&self, account: &AccountId, id: &str, name: &str) -> StoreResult<bool>;
    /// Removes a passkey unless it is the account's last way to sign in; atomic
    /// against concurrent removals (of passkeys or wallets).
    async fn remove_passkey(&self, account: &AccountId, id: &str) -> StoreResult<PasskeyRemoval>;
}
