//! Email/password (and passwordless) accounts and the account tokens every sign-in
//! method ends in. Knows nothing of HTTP or SQL.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::crypto::jwt::{TokenKeys, TokenKind};
use crate::crypto::passwords::{HashError, PasswordHasher, Verified};
use crate::domain::{Account, AccountId, Email, Password, unix_now};
use crate::lockout::{Attempt, Client, Lockout, LoginLimit, Refusal, Subject};
use crate::metrics::{Metrics, Outcome, SignInMethod};
use crate::sessions::{Device, SessionError, Sessions, SignIn, Via};
use crate::store::{AccountProfile, DynStore, NewAccount, StoreError, Unique};

/// The claims an account token carries besides the registered ones. As in OpenID
/// Connect, `email` comes with `email_verified`: whether the account's owner proved
/// they receive mail there. An account without an email (a wallet's) carries neither.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccountClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// The session the token belongs to; the token is refused once it has ended.
    pub sid: String,
    /// When the person signed in (Unix seconds); refreshes keep it.
    pub auth_time: i64,
}

/// The claims of an account token of session `sid`, signed in at `auth_time`.
pub fn account_claims(account: &Account, sid: &str, auth_time: i64) -> AccountClaims {
    let email = TokenEmail::of(account);
    AccountClaims {
        email: email.map(|e| e.address.to_owned()),
        email_verified: email.map(|e| e.verified),
        sid: sid.to_owned(),
        auth_time,
    }
}

/// The email an account token names, and whether it is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenEmail<'a> {
    pub address: &'a str,
    pub verified: bool,
}

impl<'a> TokenEmail<'a> {
    /// The account's email, if it has one.
    pub fn of(account: &'a Account) -> Option<TokenEmail<'a>> {
        account.email.as_deref().map(|address| TokenEmail {
            address,
            verified: account.email_verified,
        })
    }
}

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

impl From<SessionError> for AccountError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::AccountDisabled => AccountError::Disabled,
            other => AccountError::Internal(other.into()),
        }
    }
}

/// Who is signing in: the client's address key and the device token it presents.
#[derive(Debug, Clone)]
pub struct LoginClient {
    pub address: String,
    pub device_token: Option<String>,
}

/// A password sign-in: the account token, and a device token that this client
/// presents on its next logins so that others' failures do not lock it out.
#[derive(Debug)]
pub struct SignedIn {
    pub sign_in: SignIn,
    pub device_token: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct DeviceClaims {}

pub struct Accounts {
    store: DynStore,
    hasher: PasswordHasher,
    tokens: Arc<TokenKeys>,
    sessions: Arc<Sessions>,
    lockout: Option<Lockout>,
    device_ttl_secs: i64,
    metrics: Arc<Metrics>,
    require_verified_email: bool,
}

impl Accounts {
    pub fn new(
        store: DynStore,
        hasher: PasswordHasher,
        tokens: Arc<TokenKeys>,
        sessions: Arc<Sessions>,
        login_limit: Option<LoginLimit>,
        device_ttl_secs: i64,
        metrics: Arc<Metrics>,
    ) -> Self {
        Accounts {
            lockout: login_limit.map(|limit| Lockout::new(Arc::clone(&store), limit)),
            store,
            hasher,
            tokens,
            sessions,
            device_ttl_secs,
            metrics,
            require_verified_email: false,
        }
    }

    /// Password sign-ins of accounts whose email is not verified are refused
    /// (`accounts.require_verified_email`).
    pub fn requiring_verified_email(mut self, require: bool) -> Self {
        self.require_verified_email = require;
        self
    }

    /// Password hashes waiting for a slot or running.
    pub fn hash_queue_depth(&self) -> usize {
        self.hasher.queue_depth()
    }

    /// Creates an account with a password, OwnID data, or both, and signs it in.
    pub async fn register(
        &self,
        email: &Email,
        password: Option<&Password>,
        ownid_data: Option<String>,
        device: &Device,
    ) -> Result<SignIn, AccountError> {
        let created = self.create(email, password, ownid_data).await?;
        let method = if created.password_hash.is_some() {
            Via::Password
        } else {
            Via::Ownid
        };
        Ok(self.sessions.start(&created, method, device).await?)
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

    /// Whether `password` is the signed-in account's, for a change that asks for it:
    /// admitted by the lockout and counted like a login from `client` (by its address,
    /// and against the account's ceiling), so a stolen session cannot guess more than
    /// a login could. `LockedOut` once over the limit, whatever the password.
    pub async fn password_matches(
        &self,
        account: &Account,
        password: &Password,
        client: &LoginClient,
    ) -> Result<bool, AccountError> {
        let stored = account.password_hash.as_deref();
        let attempt = self
            .admit(&Subject::account(account), client, Some(account))
            .await?;
        let verified = self.hasher.verify(password, stored).await?;
        let matches = stored.is_some() && matches!(verified, Verified::Yes { .. });
        if let Some(attempt) = attempt {
            attempt.finish(matches).await?;
        }
        Ok(matches)
    }

    /// An attempt to check `subject`'s password admitted by the lockout (none without
    /// one), or `LockedOut`.
    async fn admit(
        &self,
        subject: &Subject,
        client: &LoginClient,
        account: Option<&Account>,
    ) -> Result<Option<Attempt>, AccountError> {
        let Some(lockout) = &self.lockout else {
            return Ok(None);
        };
        let client = self.lockout_client(client, account);
        match lockout.admit(subject, &client).await {
            Ok(attempt) => Ok(Some(attempt)),
            Err(Refusal::TooMany { retry_after_secs }) => {
                self.metrics.locked_out();
                Err(AccountError::LockedOut { retry_after_secs })
            }
            Err(Refusal::Store(e)) => Err(e.into()),
        }
    }

    /// Checks an email and password. Unknown emails and passwordless accounts are
    /// checked against a dummy hash, so all three failures look and time the same.
    ///
    /// With a lockout, the attempt is admitted by [`Lockout::admit`] first, counted
    /// by the device token when it presents one of this account's, else by its
    /// address and against the account's ceiling. The counts are per email whether
    /// or not an account has it, so a refusal says nothing about who has an account.
    pub async fn login(
        &self,
        email: &Email,
        password: &Password,
        client: &LoginClient,
        device: &Device,
    ) -> Result<SignedIn, AccountError> {
        let result = self.check_password(email, password, client, device).await;
        let outcome = match &result {
            Ok(_) => Outcome::Success,
            Err(AccountError::InvalidCredentials) => Outcome::Failure,
            Err(AccountError::LockedOut { .. }) => Outcome::LockedOut,
            Err(AccountError::Busy { .. }) => Outcome::Busy,
            Err(AccountError::Disabled) => Outcome::Disabled,
            Err(_) => Outcome::Error,
        };
        self.metrics.sign_in(SignInMethod::Password, outcome);
        result
    }

    async fn check_password(
        &self,
        email: &Email,
        password: &Password,
        client: &LoginClient,
        device: &Device,
    ) -> Result<SignedIn, AccountError> {
        let account = self.store.account_by_email(email.key()).await?;
        let attempt = self
            .admit(&Subject::email(email), client, account.as_ref())
            .await?;
        let stored = account.as_ref().and_then(|a| a.password_hash.as_deref());
        let verified = self.hasher.verify(password, stored).await?;
        let succeeded = matches!((&verified, &account), (Verified::Yes { .. }, Some(_)));
        if let Some(attempt) = attempt {
            attempt.finish(succeeded).await?;
        }
        match (verified, &account) {
            (Verified::Yes { .. }, Some(account))
                if self.require_verified_email && !account.email_verified =>
            {
                Err(AccountError::EmailNotVerified)
            }
            (Verified::Yes { rehash }, Some(account)) => {
                if let (Some(new), Some(old)) = (rehash, stored) {
                    self.store
                        .replace_password_hash(&account.id, old, &new)
                        .await?;
                    tracing::info!(account = %account.id.0, "password rehashed at current parameters");
                }
                Ok(SignedIn {
                    sign_in: self.sessions.start(account, Via::Password, device).await?,
                    device_token: self.device_token(&account.id),
                })
            }
            _ => Err(AccountError::InvalidCredentials),
        }
    }

    /// A new password's hash at the current parameters.
    pub async fn hash_password(&self, password: &Password) -> Result<String, AccountError> {
        Ok(self.hasher.hash(password).await?)
    }

    /// The client as the lockout counts it: by its device token when that is one
    /// this account was given, else by its address.
    fn lockout_client(&self, client: &LoginClient, account: Option<&Account>) -> Client {
        let device = client.device_token.as_deref().and_then(|token| {
            let claims = self
                .tokens
                .verify::<DeviceClaims>(TokenKind::Device, token, unix_now())
                .ok()?;
            (Some(claims.sub.as_str()) == account.map(|a| a.id.0.as_str())).then_some(claims.jti)
        });
        match device {
            Some(jti) => Client::Device(jti),
            None => Client::Address(client.address.clone()),
        }
    }

    fn device_token(&self, id: &AccountId) -> String {
        let (token, _) = self.tokens.issue(
            TokenKind::Device,
            &id.0,
            unix_now(),
            self.device_ttl_secs,
            DeviceClaims {},
        );
        token
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
