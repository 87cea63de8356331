//! Accounts: creating one (with a password, OwnID data, or both), its profile, its
//! verified email, and hashing its passwords. Signing in is `signin`'s; knows nothing
//! of HTTP or SQL.

use crate::crypto::passwords::{HashError, PasswordHasher};
use crate::domain::{Account, AccountId, Email, Password, unix_now};
use crate::store::{AccountProfile, DynStore, NewAccount, StoreError, Unique};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("no such account")]
    NoSuchAccount,
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The right password, but `accounts.require_verified_email` is on and the
    /// account's address is not verified yet.
    #[error("the account's email is not verified")]
    EmailNotVerified,
    #[error("too many failed logins")]
    LockedOut { retry_after_secs: i64 },
    /// The credentials were right, but an operator disabled the account.
    #[error("the account is disabled")]
    Disabled,
    /// Too many password hashes queued to serve this one in time.
    #[error("too busy hashing passwords")]
    Busy { retry_after_secs: i64 },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<HashError> for AccountError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy { retry_after_secs } => AccountError::Busy { retry_after_secs },
            HashError::Failed(e) => AccountError::Internal(e),
        }
    }
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        AccountError::Internal(e.into())
    }
}

pub struct Accounts {
    store: DynStore,
    hasher: PasswordHasher,
}

impl Accounts {
    pub fn new(store: DynStore, hasher: PasswordHasher) -> Self {
        Accounts { store, hasher }
    }

    /// Password hashes waiting for a slot or running.
    pub fn hash_queue_depth(&self) -> usize {
        self.hasher.queue_depth()
    }

    /// Creates an account with a password, OwnID data, or both; its email unverified.
    /// The password is hashed first, so a taken email costs the same time.
    pub async fn create(
        &self,
        email: &Email,
        password: Option<&Password>,
        ownid_data: Option<String>,
    ) -> Result<Account, AccountError> {
        let password_hash = match password {
            Some(p) => Some(self.hasher.hash(p).await?),
            None => None,
        };
        let account = NewAccount {
            id: AccountId::generate(),
            email: Some((email.as_str().to_string(), email.key().to_string())),
            password_hash,
            ownid_data,
            created_at: unix_now(),
        };
        match self.store.create_account(&account).await {
            Ok(()) => {}
            Err(StoreError::Conflict(Unique::Email)) => return Err(AccountError::EmailTaken),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(account = %account.id.0, "account registered");
        // Verified only once its owner follows the mail sent there.
        Ok(Account {
            id: account.id,
            email: Some(email.as_str().to_owned()),
            email_verified: false,
            has_ownid: account.ownid_data.is_some(),
            password_hash: account.password_hash,
            created_at: account.created_at,
            disabled: false,
        })
    }

    /// A new password's hash at the current parameters.
    pub async fn hash_password(&self, password: &Password) -> Result<String, AccountError> {
        Ok(self.hasher.hash(password).await?)
    }

    pub async fn profile(&self, id: &AccountId) -> Result<Option<AccountProfile>, AccountError> {
        Ok(self.store.account_profile(id).await?)
    }

    /// Records that the account's owner proved they receive mail at `email` (they
    /// followed a link sent there): it becomes the account's email, verified. The one
    /// way an email becomes verified, and the one way a wallet's typed-in address
    /// becomes its account's. `EmailTaken` when another account has the address.
    pub async fn mark_email_verified(
        &self,
        id: &AccountId,
        email: &Email,
    ) -> Result<(), AccountError> {
        match self
            .store
            .set_verified_email(id, email.as_str(), email.key(), crate::domain::unix_now())
            .await
        {
            Ok(true) => {
                tracing::info!(account = %id.0, "email verified");
                Ok(())
            }
            Ok(false) => Err(AccountError::NoSuchAccount),
            Err(StoreError::Conflict(Unique::Email)) => Err(AccountError::EmailTaken),
            Err(e) => Err(e.into()),
        }
    }
}
