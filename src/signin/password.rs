//! Password sign-in: an email and password checked (against a dummy hash for unknown
//! accounts, so every failure looks and times the same), the lockout that admits each
//! attempt, and the device tokens that keep a device's owner from being locked out by
//! others' failures. A right password hands the account to the sign-in flow. Knows
//! nothing of HTTP or SQL.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::flow::{Finished, Proof, SignInFlow};
use crate::accounts::AccountError;
use crate::crypto::jwt::{TokenKeys, TokenKind};
use crate::crypto::passwords::{PasswordHasher, Verified};
use crate::domain::{Account, AccountId, Email, Password, unix_now};
use crate::lockout::{Attempt, Client, Lockout, LoginLimit, Refusal, Subject};
use crate::metrics::{Metrics, Outcome, SignInMethod};
use crate::sessions::Device;
use crate::store::DynStore;

/// Who is signing in: the client's address key and the device token it presents.
#[derive(Debug, Clone)]
pub struct LoginClient {
    pub address: String,
    pub device_token: Option<String>,
}

/// A password sign-in: the session (or the pending sign-in that owes a second factor),
/// and a device token that this client presents on its next logins so that others'
/// failures do not lock it out.
#[derive(Debug)]
pub struct SignedIn {
    pub finished: Finished,
    pub device_token: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct DeviceClaims {}

pub struct PasswordSignIn {
    store: DynStore,
    hasher: PasswordHasher,
    tokens: Arc<TokenKeys>,
    flow: Arc<SignInFlow>,
    lockout: Option<Lockout>,
    device_ttl_secs: i64,
    metrics: Arc<Metrics>,
}

impl PasswordSignIn {
    pub fn new(
        store: DynStore,
        hasher: PasswordHasher,
        tokens: Arc<TokenKeys>,
        flow: Arc<SignInFlow>,
        login_limit: Option<LoginLimit>,
        device_ttl_secs: i64,
        metrics: Arc<Metrics>,
    ) -> Self {
        PasswordSignIn {
            lockout: login_limit.map(|limit| Lockout::new(Arc::clone(&store), limit)),
            store,
            hasher,
            tokens,
            flow,
            device_ttl_secs,
            metrics,
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
            (Verified::Yes { rehash }, Some(account)) => {
                if let (Some(new), Some(old)) = (rehash, stored) {
                    self.store
                        .replace_password_hash(&account.id, old, &new)
                        .await?;
                    tracing::info!(account = %account.id.0, "password rehashed at current parameters");
                }
                Ok(SignedIn {
                    finished: self.flow.finish(account, Proof::Password, device).await?,
                    device_token: self.device_token(&account.id),
                })
            }
            _ => Err(AccountError::InvalidCredentials),
        }
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
}
