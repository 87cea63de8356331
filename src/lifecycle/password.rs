//! A signed-in password change: with the current password, or, for an account without
//! one (a wallet's, OwnID's), a first password after a recent sign-in.

use serde_json::json;

use super::{EMAIL_CHANGE, Lifecycle, PASSWORD_RESET, notice};
use crate::accounts::{AccountError, Accounts};
use crate::domain::{Password, unix_now};
use crate::mail::MailKind;
use crate::sessions::{Authenticated, StepUp};
use crate::signin::password::{LoginClient, PasswordSignIn};
use crate::store::DynStore;
use crate::store::mail::{AccountChange, EndSessions};

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The account has a password and this is not it (or none was given).
    #[error("the current password is wrong")]
    WrongPassword,
    /// A first password needs a sign-in within the re-authentication window.
    #[error("the sign-in is not recent enough")]
    SignInAgain,
    /// The password changed between the check and the change: nothing was changed.
    #[error("the password changed meanwhile")]
    Raced,
    #[error(transparent)]
    Account(#[from] AccountError),
}

/// The rules of a password change.
pub struct PasswordChange<'a> {
    pub store: &'a DynStore,
    pub accounts: &'a Accounts,
    /// Checks the current password, under the login lockout.
    pub passwords: &'a PasswordSignIn,
    /// For the notice mail, when mail is on.
    pub lifecycle: Option<&'a Lifecycle>,
    /// Who may set a first password.
    pub step_up: StepUp,
}

impl PasswordChange<'_> {
    /// Sets `new` as the password of the signed-in account. An account with a password
    /// must give it as `current`, checked under the login lockout as from `client`
    /// (`LockedOut` once over it, even for the right one); one without may set a first
    /// password within
    /// the re-authentication window of its sign-in. The other sessions of the account
    /// end and its reset links and pending email changes are voided, in the same
    /// transaction, and only if the password is still the one checked.
    pub async fn change(
        &self,
        session: &Authenticated,
        client: &LoginClient,
        current: Option<&Password>,
        new: &Password,
    ) -> Result<(), ChangeError> {
        let profile = self
            .accounts
            .profile(&session.account)
            .await?
            .ok_or(AccountError::NoSuchAccount)?;
        let stored = profile.account.password_hash.as_deref();
        match (stored, current) {
            (Some(_), Some(current)) => {
                if !self
                    .passwords
                    .password_matches(&profile.account, current, client)
                    .await?
                {
                    return Err(ChangeError::WrongPassword);
                }
            }
            (Some(_), None) => return Err(ChangeError::WrongPassword),
            (None, _) => {
                if !self.step_up.allows(session, unix_now()) {
                    return Err(ChangeError::SignInAgain);
                }
            }
        }
        let password_hash = self.accounts.hash_password(new).await?;
        let mails = match self.lifecycle {
            Some(_) => vec![notice(MailKind::PasswordChanged, None, json!({}))],
            None => Vec::new(),
        };
        let change = AccountChange {
            password_hash: Some(password_hash),
            void: vec![PASSWORD_RESET, EMAIL_CHANGE],
            end_sessions: EndSessions::Others(session.session.clone()),
            mails,
            ..AccountChange::default()
        };
        let changed = self
            .store
            .mail()
            .change_account(&session.account, stored, &change)
            .await
            .map_err(AccountError::from)?;
        if !changed {
            return Err(ChangeError::Raced);
        }
        if let Some(lifecycle) = self.lifecycle {
            lifecycle.mailer.queued();
        }
        tracing::info!(account = %session.account.0, session = %session.session,
            first = stored.is_none(), "password changed; the other sessions ended");
        Ok(())
    }
}
