//! Changing the account's email: a link to the new address confirms it; once
//! confirmed, the old address is told, with a link that for `mail.revert_ttl_secs`
//! (7 days) puts it back and ends every session. The new address proves its owner
//! reads it before anything changes; the old one can undo a change made from a stolen
//! session.
//!
//! Nothing at the request says whether the new address has an account: the link is
//! mailed either way, and confirming it answers that the address is taken.

use serde_json::json;

use super::{
    EMAIL_CHANGE, EMAIL_REVERT, Lifecycle, LinkError, PASSWORD_RESET, VERIFY_EMAIL, notice,
    removal_notice,
};
use crate::accounts::AccountError;
use crate::domain::{Account, AccountId, Email, unix_now};
use crate::mail::{LinkPage, MailKind};
use crate::store::mail::{AccountChange, EndSessions, NewLinkToken, NewMail, Proof, Unproven};

#[derive(Debug, thiserror::Error)]
pub enum EmailChangeError {
    /// The new address is the account's already.
    #[error("that is the account's address already")]
    Unchanged,
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl Lifecycle {
    /// Mails the link that confirms `new` as the account's address, within the new
    /// address's and the account's sending limits; voids the older ones.
    pub async fn request_email_change(
        &self,
        account: &Account,
        new: &Email,
    ) -> Result<(), EmailChangeError> {
        let current = account
            .email
            .as_deref()
            .and_then(|e| Email::parse(e, "email").ok());
        if current.is_some_and(|c| c.key() == new.key()) {
            return Err(EmailChangeError::Unchanged);
        }
        let name = self.key.name_of("address", new.key());
        if !self
            .within_limit(&format!("mail:change:address:{name}"))
            .await?
            || !self
                .within_limit(&format!("mail:change:account:{}", account.id.0))
                .await?
        {
            tracing::info!(account = %account.id.0, "email change: over the mail limit; nothing sent");
            return Ok(());
        }
        let now = unix_now();
        let ttl = self.verify_ttl_secs;
        let (token, hash) = self.key.generate(EMAIL_CHANGE);
        let mail = NewMail {
            id: crate::crypto::random_id(),
            account: Some(account.id.clone()),
            recipient: Some(new.as_str().to_owned()),
            kind: MailKind::EmailChange.name().into(),
            context: crate::mail::values_in_language(json!({
                "link": self.mailer.link(LinkPage::ConfirmEmail, &token),
                "expires_in_hours": ttl / 3600,
            })),
            created_at: now,
            expires_at: now + ttl,
        };
        let token = NewLinkToken {
            hash,
            purpose: EMAIL_CHANGE.into(),
            account: account.id.clone(),
            detail: Some(new.as_str().to_owned()),
            expires_at: now + ttl,
        };
        self.store
            .mail()
            .issue_link(&token, &mail)
            .await
            .map_err(AccountError::from)?;
        self.mailer.queued();
        tracing::info!(account = %account.id.0, "email change: confirmation link queued");
        Ok(())
    }

    /// Confirms an email change with the token mailed to the new address. In one
    /// transaction: the new address becomes the account's, verified; its other
    /// pending changes, reset links and verification links are voided; the old address
    /// (if any) gets a notice with a revert link. `EmailTaken` when another account
    /// has the new address (the token stays unused).
    pub async fn confirm_email_change(&self, token: &str) -> Result<AccountId, LinkError> {
        let (hash, account, new, _) = self.peek(EMAIL_CHANGE, token).await?;
        let old = self
            .store
            .account_profile(&account)
            .await?
            .and_then(|p| p.account.email);
        let now = unix_now();
        let mut change = AccountChange {
            email: Some((new.as_str().to_owned(), new.key().to_owned())),
            proof: Proof::Set(Some(now)),
            void: vec![EMAIL_CHANGE, PASSWORD_RESET, VERIFY_EMAIL],
            ..AccountChange::default()
        };
        if let Some(old) = old {
            let (revert, revert_hash) = self.key.generate(EMAIL_REVERT);
            let ttl = self.revert_ttl_secs;
            change.issue = Some(NewLinkToken {
                hash: revert_hash,
                purpose: EMAIL_REVERT.into(),
                account: account.clone(),
                detail: Some(old.clone()),
                expires_at: now + ttl,
            });
            change.mails.push(NewMail {
                expires_at: now + ttl,
                ..notice(
                    MailKind::EmailChanged,
                    Some(old),
                    json!({
                        "link": self.mailer.link(LinkPage::RevertEmail, &revert),
                        "new_email": new.as_str(),
                        "expires_in_days": ttl / 86400,
                    }),
                )
            });
        }
        let account = self.use_link(&hash, EMAIL_CHANGE, &change).await?;
        tracing::info!(account = %account.0, "email change: confirmed");
        Ok(account)
    }

    /// Reverts an email change with the token mailed to the old address: the old
    /// address is the account's again, with the verification it had (the revert link
    /// recorded when it was last proven); every session ends; every way in added since
    /// then is removed and the owner told; pending changes, reset links (which went to
    /// the new address), the other revert links and wallet link tokens are voided.
    /// `EmailTaken` when another account has the old address now.
    pub async fn revert_email_change(&self, token: &str) -> Result<AccountId, LinkError> {
        let (hash, _, old, proven_at) = self.peek(EMAIL_REVERT, token).await?;
        let change = AccountChange {
            email: Some((old.as_str().to_owned(), old.key().to_owned())),
            proof: Proof::Set(proven_at),
            void: vec![EMAIL_CHANGE, EMAIL_REVERT, PASSWORD_RESET, VERIFY_EMAIL],
            void_one_time: vec![crate::signin::selfkey::LINK_PURPOSE],
            end_sessions: EndSessions::All,
            remove: Unproven::Since(proven_at),
            removal_notice: Some(removal_notice()),
            ..AccountChange::default()
        };
        let account = self.use_link(&hash, EMAIL_REVERT, &change).await?;
        tracing::warn!(account = %account.0, "email change: reverted by the old address; every session ended");
        Ok(account)
    }
}
