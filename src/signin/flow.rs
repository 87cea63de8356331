//! The sign-in flow: the one path from "a first factor was proven for this account" to
//! "a session exists". Every door (the JSON API of each method, and later the hosted
//! pages, `/authorize` and the social callbacks) hands it the account and a typed
//! [`Proof`]; none starts a session on its own. Knows nothing of HTTP or SQL.
//!
//! What an account still owes before it gets a session is decided here, in one place:
//! a verified email (`accounts.require_verified_email`, asked of password sign-ins),
//! an account an operator disabled is refused, and the second factor: an account with
//! one (or, with `accounts.require_mfa`, without one yet) gets a pending sign-in kept
//! in the database instead of a session ([`Finished::SecondFactor`]), whatever the
//! first factor was; only a passkey with user verification is two factors by itself.
//! The second step ([`super::second_factor`]) ends in [`SignInFlow::complete`].

use std::sync::Arc;

use crate::accounts::AccountError;
use crate::crypto::{digest_hex, random_id};
use crate::domain::{Account, AccountId, unix_now};
use crate::sessions::{AMR_MFA, Device, Sessions, SignIn, Via};
use crate::store::DynStore;
use crate::store::mfa::{NewPending, PendingAttempt};
use crate::store::sessions::NewSession;

/// How long a pending sign-in waits for its second factor.
pub const PENDING_TTL_SECS: i64 = 300;
/// Codes a pending sign-in takes, right or wrong; then it is void.
pub const PENDING_MAX_ATTEMPTS: i64 = 5;

/// What a proven first factor led to.
#[derive(Debug)]
pub enum Finished {
    /// A session: the account owed nothing more.
    Session(SignIn),
    /// No session yet: the account owes a second factor (or, with
    /// `accounts.require_mfa`, must enroll one).
    SecondFactor(Pending),
}

/// A sign-in that waits for its second factor, as its client holds it.
pub struct Pending {
    /// The `mfa_token`: what the second step presents. Only its digest is stored.
    pub token: String,
    /// What the second step may be: `totp` and `recovery_code` (and `passkey` when the
    /// account has one), or `enroll_totp` alone.
    pub methods: Vec<&'static str>,
    /// Seconds it waits.
    pub expires_in: i64,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("token", &"<hidden>")
            .field("methods", &self.methods)
            .finish()
    }
}

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
    /// An upstream provider signed in the identity linked to the account (its ID
    /// token checked, or GitHub's API asked): one factor, whatever the provider asked.
    Social,
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
            Proof::Social => Via::Social,
        }
    }
}

impl Proof {
    /// The factors it proved, as RFC 8176 `amr` values: a password (or the new one a
    /// reset link set) is `pwd`; a wallet's or OwnID's key is `swk`; a passkey with
    /// user verification is `hwk` and, being two factors by itself, `mfa`; an upstream
    /// provider's sign-in is `fed` (federated), one factor: what the provider checked
    /// is not ours to vouch for.
    pub fn amr(self) -> &'static str {
        match self {
            Proof::Password | Proof::RegisteredWithPassword | Proof::PasswordReset => "pwd",
            Proof::RegisteredWithOwnId | Proof::Ownid | Proof::Selfkey | Proof::Siwe => "swk",
            Proof::Passkey => "hwk mfa",
            Proof::Social => "fed",
        }
    }

    /// Whether it is two factors by itself (a passkey with user verification).
    fn is_multi_factor(self) -> bool {
        self.amr().split(' ').any(|m| m == AMR_MFA)
    }

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

/// What the flow asks of every account, from `accounts.*`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlowRules {
    /// `accounts.require_verified_email`.
    pub require_verified_email: bool,
    /// `accounts.require_mfa`.
    pub require_mfa: bool,
}

pub struct SignInFlow {
    sessions: Arc<Sessions>,
    store: DynStore,
    rules: FlowRules,
}

impl SignInFlow {
    pub fn new(sessions: Arc<Sessions>, store: DynStore, rules: FlowRules) -> SignInFlow {
        SignInFlow {
            sessions,
            store,
            rules,
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
    ) -> Result<Finished, Refused> {
        if proof.asks_verified_email()
            && self.rules.require_verified_email
            && !account.email_verified
        {
            return Err(Refused::EmailNotVerified);
        }
        if account.disabled {
            tracing::info!(account = %account.id.0, method = Via::from(proof).as_str(), "sign-in refused: the account is disabled");
            return Err(Refused::Disabled);
        }
        if !proof.is_multi_factor() {
            let has_factor = self
                .store
                .mfa()
                .has_second_factor(&account.id)
                .await
                .map_err(|e| Refused::Internal(e.into()))?;
            if has_factor || self.rules.require_mfa {
                let pending = self.pend(account, proof, !has_factor).await?;
                return Ok(Finished::SecondFactor(pending));
            }
        }
        let sign_in = self
            .sessions
            .start(account, Via::from(proof), proof.amr(), device)
            .await
            .map_err(|e| Refused::Internal(e.into()))?;
        Ok(Finished::Session(sign_in))
    }

    /// Keeps a pending sign-in of `account` in the database: the first factor `proof`
    /// was proven, the second (`enroll_only`: an enrolment) is owed.
    async fn pend(
        &self,
        account: &Account,
        proof: Proof,
        enroll_only: bool,
    ) -> Result<Pending, Refused> {
        let token = random_id();
        let pending = NewPending {
            id_hash: digest_hex(&token),
            account: account.id.clone(),
            amr: proof.amr().to_owned(),
            method: Via::from(proof).as_str().to_owned(),
            enroll_only,
            expires_at: unix_now() + PENDING_TTL_SECS,
        };
        self.store
            .mfa()
            .put_pending(&pending)
            .await
            .map_err(|e| Refused::Internal(e.into()))?;
        tracing::info!(account = %account.id.0, method = %pending.method, enroll_only, "sign-in waits for its second factor");
        let methods = self.methods(&account.id, enroll_only).await?;
        Ok(Pending {
            token,
            methods,
            expires_in: PENDING_TTL_SECS,
        })
    }

    /// What the second step of a pending sign-in of `account` may be: `enroll_totp`
    /// alone when it must enroll, else `totp`, `recovery_code` and, when the account
    /// has a passkey, `passkey`.
    pub async fn methods(
        &self,
        account: &AccountId,
        enroll_only: bool,
    ) -> Result<Vec<&'static str>, Refused> {
        if enroll_only {
            return Ok(vec!["enroll_totp"]);
        }
        let passkeys = self
            .store
            .passkeys(account)
            .await
            .map_err(|e| Refused::Internal(e.into()))?;
        Ok(if passkeys.is_empty() {
            vec!["totp", "recovery_code"]
        } else {
            vec!["totp", "recovery_code", "passkey"]
        })
    }

    /// The second factor of a pending sign-in (`attempt`, consumed already) was proven
    /// as `second` (RFC 8176 values): its session, with the first factor's `amr`, the
    /// second's and `mfa`. The account is read again: one disabled meanwhile is refused.
    pub async fn complete(
        &self,
        attempt: &PendingAttempt,
        second: &str,
        device: &Device,
    ) -> Result<SignIn, Refused> {
        let (account, session) = self.second_session(attempt, second, device).await?;
        let ended = self
            .store
            .sessions()
            .create_session(&session)
            .await
            .map_err(|e| Refused::Internal(e.into()))?;
        self.started(&account, &session, ended)
    }

    /// The session a pending sign-in (`attempt`, as read) starts once its second factor
    /// `second` is accepted, for a store write that accepts the factor, consumes the
    /// pending sign-in and starts the session in one commit
    /// ([`crate::store::MfaStore::spend_attempt`]); [`SignInFlow::started`] issues its
    /// tokens after. The account is read first: a disabled one is refused (and one
    /// disabled after this read has no live session: a disabled account's sessions
    /// never are).
    pub async fn second_session(
        &self,
        attempt: &PendingAttempt,
        second: &str,
        device: &Device,
    ) -> Result<(Account, NewSession), Refused> {
        let internal = |e: crate::store::StoreError| Refused::Internal(e.into());
        let account = self
            .store
            .account_profile(&attempt.account)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                Refused::Internal(anyhow::anyhow!("a pending sign-in's account is gone"))
            })?
            .account;
        if account.disabled {
            tracing::info!(account = %account.id.0, "second factor refused: the account is disabled");
            return Err(Refused::Disabled);
        }
        let via = Via::parse(&attempt.method).unwrap_or(Via::Password);
        let amr = format!("{} {second} {AMR_MFA}", attempt.amr);
        let session = self.sessions.new_session(&account.id, via, &amr, device);
        Ok((account, session))
    }

    /// The tokens of a session [`SignInFlow::second_session`] prepared, once written.
    pub fn started(
        &self,
        account: &Account,
        session: &NewSession,
        ended: u64,
    ) -> Result<SignIn, Refused> {
        self.sessions
            .started(account, session, ended)
            .map_err(|e| Refused::Internal(e.into()))
    }
}
