//! The sign-in flow: the one path from "a first factor was proven for this account" to
//! "a session exists". Every door (the JSON API of each method, and later the hosted
//! pages, `/authorize` and the social callbacks) hands it the account and a typed
//! [`Proof`]; none starts a session on its own. Knows nothing of HTTP or SQL.
//!
//! What an account still owes before it gets a session is decided here, in one place:
//! a verified email (`accounts.require_verified_email`, asked of password sign-ins),
//! and an account an operator disabled is refused. The second factor of this round
//! belongs in [`SignInFlow::finish`] too, where the verified-email check is: an account
//! that owes one gets a pending sign-in kept in the database instead of a session.

use std::sync::Arc;

use crate::accounts::AccountError;
use crate::domain::Account;
use crate::sessions::{Device, Sessions, SignIn, Via};

/// The first factor a door proved, as the door checked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The account's email and password (`signin::password`).
    Password,
    /// A new account, registered just now with a password.
    RegisteredWithPassword,
    /// A new passwordless account, registered just now with OwnID data.
    RegisteredWithOwnId,
    /// The owner of the account's mailbox followed a reset link and set a new password.
    PasswordReset,
    /// A SelfKey wallet's login token, redeemed once.
    Selfkey,
    /// OwnID's cloud vouched for the person (its request's signature was checked).
    Ownid,
    /// A passkey's assertion (user verification required), or a new passkey account.
    Passkey,
    /// A signed Sign-In with Ethereum message of the account's wallet.
    Siwe,
}

/// How the session began, as its record names it.
impl From<Proof> for Via {
    fn from(proof: Proof) -> Via {
        match proof {
            Proof::Password | Proof::RegisteredWithPassword | Proof::PasswordReset => Via::Password,
            Proof::RegisteredWithOwnId | Proof::Ownid => Via::Ownid,
            Proof::Selfkey => Via::Selfkey,
            Proof::Passkey => Via::Passkey,
            Proof::Siwe => Via::Siwe,
        }
    }
}

impl Proof {
    /// Whether `accounts.require_verified_email` applies: to a password sign-in, as
    /// README says. A reset link proves the mailbox; the other methods never asked.
    fn asks_verified_email(self) -> bool {
        self == Proof::Password
    }
}

/// Why the flow gave no session.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// An operator disabled the account.
    #[error("the account is disabled")]
    Disabled,
    /// `accounts.require_verified_email` is on and the account's address is not
    /// verified yet.
    #[error("the account's email is not verified")]
    EmailNotVerified,
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl From<Refused> for AccountError {
    fn from(e: Refused) -> Self {
        match e {
            Refused::Disabled => AccountError::Disabled,
            Refused::EmailNotVerified => AccountError::EmailNotVerified,
            Refused::Internal(e) => AccountError::Internal(e),
        }
    }
}

pub struct SignInFlow {
    sessions: Arc<Sessions>,
    require_verified_email: bool,
}

impl SignInFlow {
    /// `require_verified_email` is `accounts.require_verified_email`.
    pub fn new(sessions: Arc<Sessions>, require_verified_email: bool) -> SignInFlow {
        SignInFlow {
            sessions,
            require_verified_email,
        }
    }

    /// A first factor `proof` was proven for `account`: the session, unless the account
    /// still owes something or is refused. The only place a person's sign-in starts a
    /// session ([`Sessions::start`]).
    ///
    /// Called only after the proof was checked, so only someone who proved they hold the
    /// account learns it is disabled or unverified.
    pub async fn finish(
        &self,
        account: &Account,
        proof: Proof,
        device: &Device,
    ) -> Result<SignIn, Refused> {
        if proof.asks_verified_email() && self.require_verified_email && !account.email_verified {
            return Err(Refused::EmailNotVerified);
        }
        if account.disabled {
            tracing::info!(account = %account.id.0, method = Via::from(proof).as_str(), "sign-in refused: the account is disabled");
            return Err(Refused::Disabled);
        }
        // The second factor's seam: an account that owes one gets a pending sign-in here.
        self.sessions
            .start(account, Via::from(proof), device)
            .await
            .map_err(|e| Refused::Internal(e.into()))
    }
}
