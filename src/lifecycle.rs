//! The account lifecycle: forgotten passwords, verified addresses, password and email
//! changes ([`password`], [`email_change`]), and deletion. Knows nothing of HTTP or
//! SQL; mails go through the outbox ([`crate::mail`]), tokens are stored hashed
//! ([`crate::crypto::link_token`]).
//!
//! Rules taken from the peers' bug reports: a request answers the same, in the same
//! time, for every address (no enumeration); a token is consumed only once the new
//! value was accepted, atomically with every change it makes; a new request, a reset,
//! or a password or email change voids the older tokens of that purpose; a reset and
//! a revert end every session; links come from the configuration.
//!
//! A reset or a revert also removes every way in (wallet, passkey, OwnID data) added
//! since the address was last proven — a verification, a reset link, or an email
//! change's confirmation followed; never, for an address registered and not verified
//! — voids the account's wallet link tokens, and mails the owner what went: whoever
//! held a stolen session, or registered the address before its owner, keeps nothing.

pub mod email_change;
pub mod password;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::accounts::{AccountError, Accounts};
use crate::config::MailSettings;
use crate::crypto::link_token::LinkTokenKey;
use crate::domain::{Account, AccountId, Email, Password, unix_now};
use crate::mail::{LinkPage, MailKind, Mailer};
use crate::store::DynStore;
use crate::store::StoreError;
use crate::store::mail::{
    AccountChange, EndSessions, LinkUse, NewLinkToken, NewMail, Proof, Unproven,
};

/// The purpose of password-reset tokens.
pub const PASSWORD_RESET: &str = "password-reset";

/// The purpose of email-verification tokens; their detail is the address verified.
pub const VERIFY_EMAIL: &str = "verify-email";

/// The purpose of the tokens that confirm an email change; their detail is the new
/// address.
pub const EMAIL_CHANGE: &str = "email-change";

/// The purpose of the tokens that revert an email change; their detail is the old
/// address.
pub const EMAIL_REVERT: &str = "email-revert";

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

impl From<StoreError> for LinkError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(crate::store::Unique::Email) => {
                LinkError::Account(AccountError::EmailTaken)
            }
            e => LinkError::Account(e.into()),
        }
    }
}

/// The notice that lists the ways in a reset or a revert removed (the store adds the
/// list as `removed`), to the account's address once the change is made.
fn removal_notice() -> NewMail {
    notice(MailKind::WaysInRemoved, None, json!({}))
}

/// A notice (no token in it) about the change's account, to `recipient` (`None`: the
/// account's address when the mail is queued).
fn notice(kind: MailKind, recipient: Option<String>, context: serde_json::Value) -> NewMail {
    let now = unix_now();
    NewMail {
        id: crate::crypto::random_id(),
        account: None, // the change's account, set in the transaction
        recipient,
        kind: kind.name().into(),
        context: crate::mail::values_in_language(context),
        created_at: now,
        expires_at: now + NOTICE_TTL_SECS,
    }
}

/// The notice to an account's owner about its second factor (`event`:
/// `recovery_code_used` or `factors_reset`), for the outbox.
pub fn second_factor_notice(account: &AccountId, event: &str, recovery_codes_left: i64) -> NewMail {
    let context = json!({"event": event, "recovery_codes_left": recovery_codes_left});
    NewMail {
        account: Some(account.clone()),
        ..notice(MailKind::SecondFactor, None, context)
    }
}

pub struct Lifecycle {
    store: DynStore,
    mailer: Arc<Mailer>,
    key: LinkTokenKey,
    reset_ttl_secs: i64,
    verify_ttl_secs: i64,
    revert_ttl_secs: i64,
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
            verify_ttl_secs: m.verify_ttl_secs,
            revert_ttl_secs: m.revert_ttl_secs,
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
            .within_limit(&format!("mail:reset:address:{address}"))
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
            .within_limit(&format!("mail:reset:account:{}", account.id.0))
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
            context: crate::mail::values_in_language(json!({
                "link": link,
                "expires_in_minutes": self.reset_ttl_secs / 60,
            })),
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
    /// consumes the token, sets the hash, ends every session of the account (every
    /// token issued before is refused from then on), removes the ways in added since
    /// the address was last proven, records it proven now (and so verified), voids its
    /// other reset tokens, pending email changes and wallet link tokens, and queues
    /// notices to the owner. A disabled account is refused and nothing changes.
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
        let change = AccountChange {
            password_hash: Some(password_hash),
            proof: Proof::Set(Some(unix_now())),
            void: vec![PASSWORD_RESET, EMAIL_CHANGE],
            void_one_time: vec![crate::signin::selfkey::LINK_PURPOSE],
            end_sessions: EndSessions::All,
            remove: Unproven::SinceProof,
            removal_notice: Some(removal_notice()),
            mails: vec![notice(MailKind::PasswordChanged, None, json!({}))],
            ..AccountChange::default()
        };
        let account = self.use_link(&hash, PASSWORD_RESET, &change).await?;
        tracing::info!(account = %account.0, "password reset: password changed, every session ended");
        Ok(account)
    }

    /// Consumes a token of `purpose` with `change`: the token's account.
    async fn use_link(
        &self,
        hash: &str,
        purpose: &str,
        change: &AccountChange,
    ) -> Result<AccountId, LinkError> {
        match self
            .store
            .mail()
            .use_link(hash, purpose, unix_now(), change)
            .await?
        {
            LinkUse::Refused => Err(LinkError::InvalidToken),
            LinkUse::AccountDisabled => Err(AccountError::Disabled.into()),
            LinkUse::Done { account } => {
                if !change.mails.is_empty() || change.removal_notice.is_some() {
                    self.mailer.queued();
                }
                Ok(account)
            }
        }
    }

    /// The account, detail and recorded proof time of a live token, not used yet.
    async fn peek(
        &self,
        purpose: &str,
        token: &str,
    ) -> Result<(String, AccountId, Email, Option<i64>), LinkError> {
        let hash = self
            .key
            .hash_of(purpose, token)
            .ok_or(LinkError::InvalidToken)?;
        let (account, detail, proven_at) = self
            .store
            .mail()
            .peek_link(&hash, purpose, unix_now())
            .await?
            .ok_or(LinkError::InvalidToken)?;
        let email = detail
            .as_deref()
            .and_then(|d| Email::parse(d, "email").ok())
            .ok_or(LinkError::InvalidToken)?;
        Ok((hash, account, email, proven_at))
    }

    /// A registration when `accounts.require_verified_email` is on: creates the account
    /// and mails its verification link, or, when the address has an account, mails
    /// its owner that someone tried. The same for both, no sooner than the floor, and
    /// without signing in: only the mailbox's owner learns which it was.
    pub async fn register_unverified(
        &self,
        accounts: &Accounts,
        email: &Email,
        password: Option<&Password>,
        ownid_data: Option<String>,
    ) -> Result<(), AccountError> {
        let floor = tokio::time::Instant::now() + self.forgot_floor;
        let done = match accounts.create(email, password, ownid_data).await {
            Ok(account) => self.send_verification(&account).await,
            Err(AccountError::EmailTaken) => self.send_register_attempt(email).await,
            Err(e) => Err(e),
        };
        tokio::time::sleep_until(floor).await;
        done
    }

    /// Tells the account's owner about its second factor (`event`:
    /// `recovery_code_used` or `factors_reset`, with `context`'s values).
    pub async fn send_second_factor_notice(
        &self,
        account: &AccountId,
        event: &str,
        recovery_codes_left: i64,
    ) -> Result<(), AccountError> {
        let mail = second_factor_notice(account, event, recovery_codes_left);
        self.store.mail().queue_mail(&mail).await?;
        self.mailer.queued();
        tracing::info!(account = %account.0, event, "second factor: its owner is told");
        Ok(())
    }

    async fn send_register_attempt(&self, email: &Email) -> Result<(), AccountError> {
        let name = self.key.name_of("address", email.key());
        if !self
            .within_limit(&format!("mail:attempt:address:{name}"))
            .await?
        {
            return Ok(());
        }
        let Some(account) = self.store.account_by_email(email.key()).await? else {
            return Ok(());
        };
        let mail = NewMail {
            account: Some(account.id.clone()),
            ..notice(MailKind::RegisterAttempt, None, json!({}))
        };
        self.store.mail().queue_mail(&mail).await?;
        self.mailer.queued();
        tracing::info!(account = %account.id.0, "registration: the address has an account; its owner is told");
        Ok(())
    }

    /// Mails a verification link to the account's email, within the address's and the
    /// account's sending limits; nothing when it has no email or it is verified.
    pub async fn send_verification(&self, account: &Account) -> Result<(), AccountError> {
        let Some(address) = account.email.as_deref() else {
            return Ok(());
        };
        if account.email_verified {
            return Ok(());
        }
        let Ok(email) = Email::parse(address, "email") else {
            return Ok(());
        };
        let name = self.key.name_of("address", email.key());
        if !self
            .within_limit(&format!("mail:verify:address:{name}"))
            .await?
            || !self
                .within_limit(&format!("mail:verify:account:{}", account.id.0))
                .await?
        {
            tracing::info!(account = %account.id.0, "verification: over the mail limit; nothing sent");
            return Ok(());
        }
        let now = unix_now();
        let (token, hash) = self.key.generate(VERIFY_EMAIL);
        let link = self.mailer.link(LinkPage::VerifyEmail, &token);
        let mail = NewMail {
            id: crate::crypto::random_id(),
            account: Some(account.id.clone()),
            recipient: Some(email.as_str().to_owned()),
            kind: MailKind::VerifyEmail.name().into(),
            context: crate::mail::values_in_language(json!({
                "link": link,
                "expires_in_hours": self.verify_ttl_secs / 3600,
            })),
            created_at: now,
            expires_at: now + self.verify_ttl_secs,
        };
        let token = NewLinkToken {
            hash,
            purpose: VERIFY_EMAIL.into(),
            account: account.id.clone(),
            detail: Some(email.as_str().to_owned()),
            expires_at: now + self.verify_ttl_secs,
        };
        self.store.mail().issue_link(&token, &mail).await?;
        self.mailer.queued();
        tracing::info!(account = %account.id.0, "verification: link queued");
        Ok(())
    }

    /// Consumes a verification token and marks the address it was sent to as the
    /// account's verified email (atomically: an address another account has taken
    /// meanwhile leaves the token unused).
    pub async fn verify_email(&self, token: &str) -> Result<AccountId, LinkError> {
        let (hash, _, email, _) = self.peek(VERIFY_EMAIL, token).await?;
        let change = AccountChange {
            email: Some((email.as_str().to_owned(), email.key().to_owned())),
            proof: Proof::Set(Some(unix_now())),
            void: vec![VERIFY_EMAIL],
            ..AccountChange::default()
        };
        let account = self.use_link(&hash, VERIFY_EMAIL, &change).await?;
        tracing::info!(account = %account.0, "email verified");
        Ok(account)
    }

    /// The mail counters kept for the account itself. Those kept for an address (under
    /// its keyed hash) are not among them: they outlive any account that named it and
    /// expire with their own windows, or deleting an account that named someone
    /// else's address (a pending email change) would reset that person's limit.
    fn mail_counters(&self, account: &Account) -> Vec<String> {
        ["reset", "verify", "change", "attempt"]
            .iter()
            .flat_map(|purpose| {
                let key = format!("mail:{purpose}:account:{}", account.id.0);
                [format!("{key}:m"), format!("{key}:h")]
            })
            .collect()
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

/// Deletes the account and everything of it: sessions, passkeys, wallets, OwnID data,
/// link tokens, queued mail, the single-use values issued to it, and the counters kept
/// for it (its login lockout, and, when mail is on, its own mail limits). The mail
/// limits of addresses, its own included, stay until their windows pass: they belong
/// to the address, not to the account (an account that named another person's address
/// must not be able to reset that person's limit by going). Every token of its
/// sessions is refused from then on. False if it was already gone.
pub async fn delete_account(
    store: &DynStore,
    lifecycle: Option<&Lifecycle>,
    account: &Account,
) -> Result<bool, AccountError> {
    let mut counters = lifecycle
        .map(|l| l.mail_counters(account))
        .unwrap_or_default();
    // Its lockout's counters: by its email, or by the account when it has none.
    let own = crate::lockout::Subject::account(account).ceiling_key();
    // The per-client counters are `<ceiling key>|<client>`.
    let prefixes = [format!("{own}|"), format!("pending:{own}|")];
    counters.extend([format!("pending:{own}"), own]);
    let deleted = store
        .mail()
        .delete_account(&account.id, &counters, &prefixes)
        .await?;
    if deleted {
        tracing::info!(account = %account.id.0, "account deleted");
    }
    Ok(deleted)
}
