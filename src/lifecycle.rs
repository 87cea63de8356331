//! The account lifecycle over email: forgotten passwords now. Knows nothing of HTTP
//! or SQL; mails go through the outbox ([`crate::mail`]), tokens are stored hashed
//! ([`crate::crypto::link_token`]).
//!
//! Rules taken from the peers' bug reports: a request answers the same, in the same
//! time, for every address (no enumeration); a token is consumed only once the new
//! password was accepted, atomically, and consuming it voids every other of its
//! purpose; a new request voids the older tokens; links come from the configuration.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::accounts::{AccountError, Accounts};
use crate::config::MailSettings;
use crate::crypto::link_token::LinkTokenKey;
use crate::domain::{AccountId, Email, Password, unix_now};
use crate::mail::{LinkPage, MailKind, Mailer};
use crate::store::DynStore;
use crate::store::mail::{LinkUse, NewLinkToken, NewMail};

/// The purpose of password-reset tokens.
pub const PASSWORD_RESET: &str = "password-reset";

/// How long a notice (no token in it) is worth sending.
const NOTICE_TTL_SECS: i64 = 7 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Not a token we issued, or used, voided or expired: all look the same.
    #[error("the link is invalid or has expired")]
    InvalidToken,
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl From<crate::store::StoreError> for LinkError {
    fn from(e: crate::store::StoreError) -> Self {
        LinkError::Account(e.into())
    }
}

pub struct Lifecycle {
    store: DynStore,
    mailer: Arc<Mailer>,
    key: LinkTokenKey,
    reset_ttl_secs: i64,
    per_minute: i64,
    per_hour: i64,
    forgot_floor: Duration,
}

impl Lifecycle {
    pub fn new(store: DynStore, mailer: Arc<Mailer>, secret: &[u8], m: &MailSettings) -> Self {
        Lifecycle {
            store,
            mailer,
            key: LinkTokenKey::derive(secret),
            reset_ttl_secs: m.reset_ttl_secs,
            per_minute: m.per_minute,
            per_hour: m.per_hour,
            forgot_floor: Duration::from_millis(m.forgot_floor_ms),
        }
    }

    pub fn mailer(&self) -> &Arc<Mailer> {
        &self.mailer
    }

    /// Mails a reset link to the address if it has an account with a password, within
    /// the address's sending limit. Returns no sooner than the floor, and the same for
    /// every address: whether it has an account shows neither in the answer nor in
    /// its time. Store errors are logged, not returned, for the same reason.
    pub async fn forgot_password(&self, email: &Email) {
        let floor = tokio::time::Instant::now() + self.forgot_floor;
        if let Err(e) = self.send_reset(email).await {
            tracing::error!(error = %e, "password reset: queueing the mail failed");
        }
        tokio::time::sleep_until(floor).await;
    }

    async fn send_reset(&self, email: &Email) -> Result<(), AccountError> {
        let address = self.key.name_of("address", email.key());
        if !self
            .within_limit(&format!("mail:address:{address}"))
            .await?
        {
            tracing::info!("password reset: address over its mail limit; nothing sent");
            return Ok(());
        }
        let Some(account) = self.store.account_by_email(email.key()).await? else {
            return Ok(());
        };
        if account.password_hash.is_none() {
            // A passwordless account sets a first password after signing in.
            return Ok(());
        }
        if !self
            .within_limit(&format!("mail:account:{}", account.id.0))
            .await?
        {
            return Ok(());
        }
        let now = unix_now();
        let (token, hash) = self.key.generate(PASSWORD_RESET);
        let link = self.mailer.link(LinkPage::ResetPassword, &token);
        let to = account
            .email
            .clone()
            .unwrap_or_else(|| email.as_str().to_owned());
        let mail = NewMail {
            id: crate::crypto::random_id(),
            account: Some(account.id.clone()),
            recipient: Some(to.clone()),
            kind: MailKind::PasswordReset.name().into(),
            context: json!({
                "link": link,
                "expires_in_minutes": self.reset_ttl_secs / 60,
            })
            .to_string(),
            created_at: now,
            expires_at: now + self.reset_ttl_secs,
        };
        let token = NewLinkToken {
            hash,
            purpose: PASSWORD_RESET.into(),
            account: account.id.clone(),
            detail: None,
            expires_at: now + self.reset_ttl_secs,
        };
        self.store.mail().issue_link(&token, &mail).await?;
        self.mailer.queued();
        tracing::info!(account = %account.id.0, "password reset: link queued");
        Ok(())
    }

    /// Sets a new password with a reset token. The password is checked and hashed
    /// first, so a refused password leaves the link usable; then one transaction
    /// consumes the token, sets the hash, voids the account's other reset tokens and
    /// queues a notice to the owner.
    pub async fn reset_password(
        &self,
        accounts: &Accounts,
        token: &str,
        password: &Password,
    ) -> Result<AccountId, LinkError> {
        let hash = self
            .key
            .hash_of(PASSWORD_RESET, token)
            .ok_or(LinkError::InvalidToken)?;
        let password_hash = accounts.hash_password(password).await?;
        let now = unix_now();
        let notice = NewMail {
            id: crate::crypto::random_id(),
            account: None, // the token's account, set in the transaction
            recipient: None,
            kind: MailKind::PasswordChanged.name().into(),
            context: json!({}).to_string(),
            created_at: now,
            expires_at: now + NOTICE_TTL_SECS,
        };
        match self
            .store
            .mail()
            .reset_password(&hash, now, &password_hash, &notice)
            .await?
        {
            LinkUse::Refused => Err(LinkError::InvalidToken),
            LinkUse::Done { account } => {
                self.mailer.queued();
                tracing::info!(account = %account.0, "password reset: password changed");
                Ok(account)
            }
        }
    }

    /// Counts one mail against `key`; false when the minute's or the hour's limit is
    /// spent.
    async fn within_limit(&self, key: &str) -> Result<bool, AccountError> {
        let now = unix_now();
        let minute = self.store.hit(&format!("{key}:m"), now, 60).await?;
        let hour = self.store.hit(&format!("{key}:h"), now, 3600).await?;
        Ok(minute.count <= self.per_minute && hour.count <= self.per_hour)
    }
}
