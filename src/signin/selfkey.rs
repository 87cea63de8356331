//! Login with SelfKey: the challenges a wallet signs, the wallet's short session, the
//! wallet's account, and the single-use tokens that turn a wallet sign-in into an
//! account session. Knows nothing of HTTP or SQL.
//!
//! Every single-use value (challenge, login token, link token) is a JWT of its own
//! kind whose `jti` is also stored with [`Store::put_one_time`]; it counts only when
//! [`Store::take_one_time`] removes that row, which exactly one caller can do, on any
//! node.

pub mod attributes;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::config::SelfKeySettings;
use crate::crypto::eth::{self, Address, Did, PublicKey, Signature};
use crate::crypto::jwt::{TokenError, TokenKeys, TokenKind};
use crate::domain::{Account, AccountId, WalletSummary, unix_now};
use crate::store::{
    NewAccount, NewWallet, Store, StoreError, Unique, WalletAdded, WalletRecord, WalletRemoval,
};

pub use attributes::{AttributeError, Attributes, Document, Submitted};

const CHALLENGE_PURPOSE: &str = "selfkey-challenge";
const LOGIN_PURPOSE: &str = "selfkey-login";
/// The purpose of wallet link tokens among the single-use values; a reset or a revert
/// voids the account's.
pub const LINK_PURPOSE: &str = "selfkey-link";

/// Who may answer a challenge: the holder of one key, of a `did:eth` address, or
/// (the seed's bare `GET /auth/challenge`) whoever signs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    Key(PublicKey),
    Did(Did),
    Anyone,
}

impl Signer {
    /// The challenge token's `sub`.
    fn subject(&self) -> String {
        match self {
            Signer::Key(key) => key.to_string(),
            Signer::Did(did) => did.to_string(),
            Signer::Anyone => String::new(),
        }
    }

    fn from_subject(subject: &str) -> Option<Signer> {
        if subject.is_empty() {
            Some(Signer::Anyone)
        } else if let Ok(did) = Did::parse(subject) {
            Some(Signer::Did(did))
        } else {
            PublicKey::parse(subject).ok().map(Signer::Key)
        }
    }

    fn accepts(&self, key: &PublicKey) -> bool {
        match self {
            Signer::Key(expected) => expected.as_bytes().ct_eq(key.as_bytes()).into(),
            Signer::Did(did) => did.address() == key.address(),
            Signer::Anyone => true,
        }
    }
}

/// A wallet's answer to a challenge.
#[derive(Debug, Clone)]
pub struct Answer {
    pub signature: Signature,
    /// The DID form's `keyId`: the signing key must be this DID's.
    pub key_id: Option<Did>,
}

/// A challenge token that verified and is waiting for its answer.
#[derive(Debug)]
pub struct OpenChallenge {
    jti: String,
    subject: String,
    signer: Signer,
    text: String,
}

/// The wallet a wallet token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wallet {
    pub address: Address,
    pub public_key: PublicKey,
}

/// What `POST /users` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// A new account with this wallet.
    Created,
    /// The wallet joined an existing account.
    Linked,
    /// The wallet was known; its attributes were replaced.
    Updated,
}

#[derive(Debug, Serialize, Deserialize)]
struct ChallengeClaims {
    /// What the wallet signs.
    challenge: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct WalletClaims {
    #[serde(rename = "publicKey")]
    public_key: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct NoClaims {}

/// A link token's: the session that asked for it, which must still live when it is
/// used.
#[derive(Debug, Serialize, Deserialize)]
struct LinkClaims {
    sid: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SelfKeyError {
    /// A challenge, wallet or login token did not verify as its kind.
    #[error("token refused: {0}")]
    Token(#[from] TokenError),
    #[error("the challenge was already answered or has expired")]
    ChallengeSpent,
    #[error("the signature was not made by the challenge's key")]
    SignatureMismatch,
    #[error("the login token was already used or has expired")]
    LoginTokenSpent,
    #[error("no account has this wallet")]
    UnknownWallet,
    #[error("the account no longer exists")]
    AccountGone,
    #[error("an account with the wallet's email exists")]
    AccountExists,
    #[error("the wallet belongs to another account")]
    WalletTaken,
    #[error("the wallet changed during the request")]
    WalletChanged,
    #[error("the link token is invalid, expired or already used")]
    InvalidLinkToken,
    #[error("the account has no such wallet")]
    WalletNotFound,
    #[error("the wallet is the account's last way to sign in")]
    LastSignInMethod,
    #[error("the account is disabled")]
    AccountDisabled,
    #[error(transparent)]
    Attributes(#[from] AttributeError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for SelfKeyError {
    fn from(e: StoreError) -> Self {
        SelfKeyError::Internal(e.into())
    }
}

/// A verified link token, not yet consumed.
pub struct Link {
    jti: String,
    /// The signed-in account the token was issued to.
    pub account: AccountId,
    /// The session that asked for it: the link holds only while it lives.
    pub session: String,
}

/// Verifies a link token as such, not whether it was used already: that is decided
/// atomically by [`consume_link`]. Sign-in methods other than SelfKey (SIWE) link
/// addresses with the same tokens.
pub fn verify_link(tokens: &TokenKeys, token: &str) -> Result<Link, SelfKeyError> {
    let claims = tokens
        .verify::<LinkClaims>(TokenKind::Link, token, unix_now())
        .map_err(|_| SelfKeyError::InvalidLinkToken)?;
    Ok(Link {
        jti: claims.jti,
        account: AccountId(claims.sub),
        session: claims.extra.sid,
    })
}

/// Consumes a verified link token and links `wallet` to its account: of concurrent
/// callers exactly one gets the token, and the wallet joins only an enabled account
/// whose asking session still lives (checked in the write that links it). The account.
pub async fn link_with(
    store: &dyn Store,
    link: Link,
    wallet: &NewWallet,
) -> Result<AccountId, SelfKeyError> {
    match store
        .take_one_time(&link.jti, LINK_PURPOSE, unix_now())
        .await?
    {
        Some(account) if account == link.account.0 => {}
        _ => return Err(SelfKeyError::InvalidLinkToken),
    }
    match store
        .add_wallet(&link.account, wallet, Some(&link.session))
        .await
    {
        Ok(WalletAdded::Added) => Ok(link.account),
        Ok(WalletAdded::AccountDisabled) => Err(SelfKeyError::AccountDisabled),
        Ok(WalletAdded::SessionEnded) => Err(SelfKeyError::InvalidLinkToken),
        Err(StoreError::Conflict(Unique::Wallet)) => Err(SelfKeyError::WalletTaken),
        Err(e) => Err(e.into()),
    }
}

/// The service; cheap to build per request from the node's parts.
pub struct SelfKey<'a> {
    store: &'a dyn Store,
    tokens: &'a TokenKeys,
    settings: &'a SelfKeySettings,
}

impl<'a> SelfKey<'a> {
    pub fn new(store: &'a dyn Store, tokens: &'a TokenKeys, settings: &'a SelfKeySettings) -> Self {
        SelfKey {
            store,
            tokens,
            settings,
        }
    }

    /// A challenge token for `signer`: 48 random bytes as 96 hex digits in its
    /// `challenge` claim, answerable once until it expires.
    pub async fn issue_challenge(&self, signer: Signer) -> Result<String, SelfKeyError> {
        let now = unix_now();
        let ttl = self.settings.challenge_ttl_secs;
        let challenge = hex::encode(crate::crypto::random_bytes::<48>());
        let subject = signer.subject();
        let (token, jti) = self.tokens.issue(
            TokenKind::Challenge,
            &subject,
            now,
            ttl,
            ChallengeClaims { challenge },
        );
        self.store
            .put_one_time(&jti, CHALLENGE_PURPOSE, &subject, now + ttl)
            .await?;
        Ok(token)
    }

    /// Verifies a challenge token (not whether it was answered already: that is
    /// decided atomically by [`SelfKey::answer`]).
    pub fn open_challenge(&self, token: &str) -> Result<OpenChallenge, SelfKeyError> {
        let claims =
            self.tokens
                .verify::<ChallengeClaims>(TokenKind::Challenge, token, unix_now())?;
        let signer = Signer::from_subject(&claims.sub).ok_or(TokenError::Malformed)?;
        Ok(OpenChallenge {
            jti: claims.jti,
            subject: claims.sub,
            signer,
            text: claims.extra.challenge,
        })
    }

    /// Checks the wallet's EIP-191 signature of the challenge and, if it was made by
    /// the challenge's key (or DID), consumes the challenge and returns a wallet token.
    pub async fn answer(
        &self,
        challenge: OpenChallenge,
        answer: &Answer,
    ) -> Result<String, SelfKeyError> {
        let hash = eth::personal_sign_hash(challenge.text.as_bytes());
        let key =
            eth::recover(&hash, &answer.signature).map_err(|_| SelfKeyError::SignatureMismatch)?;
        let key_id_matches = answer
            .key_id
            .is_none_or(|did| did.address() == key.address());
        if !challenge.signer.accepts(&key) || !key_id_matches {
            return Err(SelfKeyError::SignatureMismatch);
        }
        // Consumed only once the signature checks out, so whoever sees a challenge
        // token in flight cannot burn it with a bad answer.
        let now = unix_now();
        match self
            .store
            .take_one_time(&challenge.jti, CHALLENGE_PURPOSE, now)
            .await?
        {
            Some(subject) if subject == challenge.subject => {}
            _ => return Err(SelfKeyError::ChallengeSpent),
        }
        let (token, _) = self.tokens.issue(
            TokenKind::Wallet,
            &key.address().to_string(),
            now,
            self.settings.wallet_token_ttl_secs,
            WalletClaims {
                public_key: key.to_string(),
            },
        );
        Ok(token)
    }

    /// The wallet a wallet token was issued to.
    pub fn wallet(&self, token: &str) -> Result<Wallet, SelfKeyError> {
        let claims = self
            .tokens
            .verify::<WalletClaims>(TokenKind::Wallet, token, unix_now())?;
        let address = Address::parse(&claims.sub).map_err(|_| TokenError::Malformed)?;
        let public_key =
            PublicKey::parse(&claims.extra.public_key).map_err(|_| TokenError::Malformed)?;
        if public_key.address() != address {
            return Err(TokenError::Malformed.into());
        }
        Ok(Wallet {
            address,
            public_key,
        })
    }

    /// Signs a wallet up, or links it, or updates its attributes:
    /// - a known wallet keeps its account and gets the new attributes (a link token
    ///   for another account is refused: a wallet belongs to one account);
    /// - with a link token (proof the person is signed in to that account), the
    ///   wallet joins that account;
    /// - else, if an account has the wallet's email, the wallet joins it only when
    ///   `trust_wallet_email` is on; otherwise the person must sign in and link;
    /// - else a new account is created with the wallet, without an email: a wallet's
    ///   email is unverified, and must not become anyone's identity.
    pub async fn register(
        &self,
        wallet: &Wallet,
        attributes: &Attributes,
        link_token: Option<&str>,
    ) -> Result<Registration, SelfKeyError> {
        let link = link_token
            .map(|t| verify_link(self.tokens, t))
            .transpose()?;
        let now = unix_now();
        let new_wallet = NewWallet {
            address: wallet.address.to_string(),
            public_key: wallet.public_key.to_string(),
            attributes: attributes.to_json(),
            now,
        };
        if let Some(owner) = self.store.wallet_account(&new_wallet.address).await? {
            if link.as_ref().is_some_and(|link| link.account != owner) {
                return Err(SelfKeyError::WalletTaken);
            }
            let updated = self
                .store
                .update_wallet_attributes(&owner, &new_wallet.address, &new_wallet.attributes, now)
                .await?;
            return if updated {
                Ok(Registration::Updated)
            } else {
                Err(SelfKeyError::WalletChanged)
            };
        }
        if let Some(link) = link {
            let account = link_with(self.store, link, &new_wallet).await?;
            tracing::info!(account = %account.0, wallet = %new_wallet.address, "wallet linked with a link token");
            return Ok(Registration::Linked);
        }
        if let Some(email) = attributes.email()
            && let Some(existing) = self.store.account_by_email(email.key()).await?
        {
            if !self.settings.trust_wallet_email {
                return Err(SelfKeyError::AccountExists);
            }
            match self.store.add_wallet(&existing.id, &new_wallet, None).await {
                Ok(WalletAdded::Added) => {}
                Ok(_) => return Err(SelfKeyError::AccountDisabled),
                Err(StoreError::Conflict(Unique::Wallet)) => return Err(SelfKeyError::WalletTaken),
                Err(e) => return Err(e.into()),
            }
            tracing::info!(account = %existing.id.0, wallet = %new_wallet.address, "wallet linked by its email attribute (trust_wallet_email)");
            return Ok(Registration::Linked);
        }
        // The wallet's email is what its owner typed in: it stays an attribute of the
        // wallet, and becomes the account's only once verified
        // ([`Accounts::mark_email_verified`](crate::accounts::Accounts::mark_email_verified)).
        let account = NewAccount {
            id: AccountId::generate(),
            email: None,
            password_hash: None,
            ownid_data: None,
            created_at: now,
        };
        match self
            .store
            .create_account_with_wallet(&account, &new_wallet)
            .await
        {
            Ok(()) => {
                tracing::info!(account = %account.id.0, wallet = %new_wallet.address, "account created for a wallet");
                Ok(Registration::Created)
            }
            Err(StoreError::Conflict(Unique::Email)) => Err(SelfKeyError::AccountExists),
            Err(StoreError::Conflict(Unique::Wallet)) => Err(SelfKeyError::WalletTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// A single-use login token for the wallet's account. A link token, if the page
    /// passed one, must be for that same account: a wallet of another account does
    /// not sign the person in somewhere they did not expect.
    pub async fn login_token(
        &self,
        wallet: &Wallet,
        link_token: Option<&str>,
    ) -> Result<String, SelfKeyError> {
        let owner = self
            .store
            .wallet_account(&wallet.address.to_string())
            .await?
            .ok_or(SelfKeyError::UnknownWallet)?;
        if let Some(token) = link_token
            && verify_link(self.tokens, token)?.account != owner
        {
            return Err(SelfKeyError::WalletTaken);
        }
        self.single_use(
            TokenKind::Login,
            LOGIN_PURPOSE,
            &owner,
            self.settings.login_token_ttl_secs,
        )
        .await
    }

    /// Exchanges a login token, once, for its account.
    pub async fn redeem_login_token(&self, token: &str) -> Result<Account, SelfKeyError> {
        let now = unix_now();
        let claims = self
            .tokens
            .verify::<NoClaims>(TokenKind::Login, token, now)?;
        match self
            .store
            .take_one_time(&claims.jti, LOGIN_PURPOSE, now)
            .await?
        {
            Some(account) if account == claims.sub => {}
            _ => return Err(SelfKeyError::LoginTokenSpent),
        }
        let profile = self
            .store
            .account_profile(&AccountId(claims.sub))
            .await?
            .ok_or(SelfKeyError::AccountGone)?;
        Ok(profile.account)
    }

    /// A single-use token proving the holder is signed in to `account` in `session`,
    /// for the page to pass through the wallet (`meta.linkToken`); it dies with the
    /// session. Returns it and its lifetime.
    pub async fn link_token(
        &self,
        account: &AccountId,
        session: &str,
    ) -> Result<(String, i64), SelfKeyError> {
        let ttl = self.settings.link_token_ttl_secs;
        let now = unix_now();
        let claims = LinkClaims {
            sid: session.to_owned(),
        };
        let (token, jti) = self
            .tokens
            .issue(TokenKind::Link, &account.0, now, ttl, claims);
        self.store
            .put_one_time(&jti, LINK_PURPOSE, &account.0, now + ttl)
            .await?;
        Ok((token, ttl))
    }

    pub async fn wallets(&self, account: &AccountId) -> Result<Vec<WalletSummary>, SelfKeyError> {
        Ok(self.store.wallets(account).await?)
    }

    /// One of the account's wallets, with what it shared.
    pub async fn wallet_record(
        &self,
        account: &AccountId,
        address: &Address,
    ) -> Result<WalletRecord, SelfKeyError> {
        self.store
            .wallet_record(account, &address.to_string())
            .await?
            .ok_or(SelfKeyError::WalletNotFound)
    }

    /// Unlinks a wallet, unless it is the account's last way to sign in.
    pub async fn remove_wallet(
        &self,
        account: &AccountId,
        address: &Address,
    ) -> Result<(), SelfKeyError> {
        match self
            .store
            .remove_wallet(account, &address.to_string())
            .await?
        {
            WalletRemoval::Removed => {
                tracing::info!(account = %account.0, wallet = %address, "wallet unlinked");
                Ok(())
            }
            WalletRemoval::NotFound => Err(SelfKeyError::WalletNotFound),
            WalletRemoval::LastSignInMethod => Err(SelfKeyError::LastSignInMethod),
        }
    }

    async fn single_use(
        &self,
        kind: TokenKind,
        purpose: &str,
        account: &AccountId,
        ttl: i64,
    ) -> Result<String, SelfKeyError> {
        let now = unix_now();
        let (token, jti) = self.tokens.issue(kind, &account.0, now, ttl, NoClaims {});
        self.store
            .put_one_time(&jti, purpose, &account.0, now + ttl)
            .await?;
        Ok(token)
    }
}
