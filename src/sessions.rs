//! Sessions: what every sign-in method ends in, and what every account token names.
//! Knows nothing of HTTP or SQL.
//!
//! A sign-in starts a session ([`Sessions::start`]) and gets a short-lived account token
//! (the `sid` claim names the session) and a refresh token. Every request with an
//! account token checks that its session still lives ([`Sessions::authenticate`]), so
//! ending a session refuses all its tokens at once, on every node.
//!
//! Refresh tokens rotate: each refresh returns the next one. The previous token,
//! presented again within the grace (another tab, a retry after a lost answer), gets the
//! session's current tokens, a bounded number of times. An older token, or the previous
//! one after the grace, can only come from a copy: the whole session ends, with
//! whatever successor a concurrent refresh issued, because ending is by session.

pub mod verified;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::crypto::jwt::{Claims, TokenError, TokenKeys, TokenKind};
use crate::crypto::random_id;
use crate::crypto::refresh::RefreshKey;
use crate::crypto::tag::TagKey;
use crate::domain::{Account, AccountId, unix_now};
use crate::signing_keys::SigningKeys;
use crate::store::sessions::{NewSession, Refresh, RefreshRules, SessionRecord};
use crate::store::{AccountProfile, DynStore, StoreError};
use verified::VerifiedTokens;

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
    /// How the person signed in (RFC 8176 values: `pwd`, `otp`, `hwk`, `swk`, `mfa`);
    /// refreshes keep them exactly. Absent from tokens of sessions that predate it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// The assurance level the factors reach: `aal2` with two factors, else `aal1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
}

impl AccountClaims {
    /// Whether the sign-in proved two factors.
    pub fn multi_factor(&self) -> bool {
        self.amr.iter().any(|m| m == AMR_MFA)
    }
}

/// RFC 8176's `mfa`: the sign-in proved more than one factor.
pub const AMR_MFA: &str = "mfa";

/// The `acr` of a session whose sign-in proved the factors `amr` (space-separated).
pub fn acr_of(amr: &[String]) -> Option<String> {
    if amr.is_empty() {
        return None;
    }
    let level = if amr.iter().any(|m| m == AMR_MFA) {
        "aal2"
    } else {
        "aal1"
    };
    Some(level.to_owned())
}

/// The claims of an account token of session `sid`, signed in at `auth_time` with the
/// factors `amr` (space-separated, as the session's record keeps them).
pub fn account_claims(account: &Account, sid: &str, auth_time: i64, amr: &str) -> AccountClaims {
    let email = TokenEmail::of(account);
    let amr: Vec<String> = amr.split_whitespace().map(str::to_owned).collect();
    AccountClaims {
        email: email.map(|e| e.address.to_owned()),
        email_verified: email.map(|e| e.verified),
        sid: sid.to_owned(),
        auth_time,
        acr: acr_of(&amr),
        amr,
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

/// How long sessions and their tokens live.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// Account tokens' lifetime.
    pub access_ttl_secs: i64,
    /// A session not refreshed for this long ends.
    pub idle_secs: i64,
    /// A session ends this long after its sign-in, refreshed or not.
    pub absolute_secs: i64,
    /// How long a rotated refresh token still gets the session's current tokens.
    pub reuse_grace_secs: i64,
    /// How many times, at most, per rotation.
    pub max_replays: i64,
    /// The most sessions an account keeps; a sign-in beyond ends the least recently
    /// used.
    pub max_per_account: i64,
}

/// How a session began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Password,
    Selfkey,
    Ownid,
    Passkey,
    Siwe,
    Social,
}

impl Via {
    /// The method a pending sign-in recorded ([`Via::as_str`]).
    pub fn parse(method: &str) -> Option<Via> {
        [
            Via::Password,
            Via::Selfkey,
            Via::Ownid,
            Via::Passkey,
            Via::Siwe,
            Via::Social,
        ]
        .into_iter()
        .find(|v| v.as_str() == method)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Via::Password => "password",
            Via::Selfkey => "selfkey",
            Via::Ownid => "ownid",
            Via::Passkey => "passkey",
            Via::Siwe => "siwe",
            Via::Social => "social",
        }
    }
}

/// What is known of the device signing in, shown in its account's list of sessions.
#[derive(Debug, Clone, Default)]
pub struct Device {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// What a sign-in or a refresh hands the client.
#[derive(Clone)]
pub struct SignIn {
    /// The account token (a JWT).
    pub token: String,
    pub refresh_token: String,
    /// The account token's lifetime, seconds.
    pub expires_in: i64,
    /// The session's id: the token's `sid`.
    pub session: String,
    /// The account signed in.
    pub account: AccountId,
    /// When the person signed in (Unix seconds): the tokens' `auth_time`.
    pub auth_time: i64,
    /// Whether the sign-in proved two factors (the tokens' `amr` holds `mfa`).
    pub multi_factor: bool,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("token", &"<hidden>")
            .field("refresh_token", &"<hidden>")
            .field("session", &self.session)
            .finish()
    }
}

/// A verified account token (or browser session cookie) whose session lives.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub account: AccountId,
    /// The session id (`sid`).
    pub session: String,
    /// When the person signed in (Unix seconds): the token's `auth_time`.
    pub auth_time: i64,
    /// Whether that sign-in proved two factors (`amr` holds `mfa`); a refresh keeps it.
    pub multi_factor: bool,
}

impl Authenticated {
    /// True if the person signed in (not refreshed: authenticated) within `secs`
    /// seconds of `now`: for actions that want a fresh sign-in.
    pub fn signed_in_within(&self, secs: i64, now: i64) -> bool {
        signed_in_recently(self.auth_time, secs, now)
    }
}

/// The one rule for every change to how an account is reached — adding or removing a
/// way in (a passkey, a wallet, a link token that adds one, a first password), changing
/// its address, deleting it: the session must come from a sign-in (not a refresh)
/// within the window. A stale stolen session can use the account, not take it over.
/// An account with a second factor also needs a session whose sign-in gave it
/// ([`StepUp::owes_second_factor`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepUp {
    pub window_secs: i64,
}

impl StepUp {
    /// `accounts.reauth_window_secs`, or the older `passkeys.recent_sign_in_secs` when
    /// that is set and shorter (kept as an alias: one window for every route).
    pub fn of(settings: &crate::config::Settings) -> StepUp {
        let window = settings.accounts.reauth_window_secs;
        StepUp {
            window_secs: settings
                .passkeys
                .recent_sign_in_secs
                .map_or(window, |alias| alias.min(window)),
        }
    }

    /// True if `session` may change how its account is reached at `now`.
    pub fn allows(&self, session: &Authenticated, now: i64) -> bool {
        session.signed_in_within(self.window_secs, now)
    }

    /// True if the session's sign-in gave no second factor: then, for an account that
    /// has one, no change to how it is reached is allowed (a stolen password's session
    /// from before the factor was enrolled cannot remove or replace it).
    pub fn owes_second_factor(session: &Authenticated) -> bool {
        !session.multi_factor
    }
}

/// How many sessions an account over `session.max_per_account` keeps: a tenth fewer
/// (rounded down), so that an account that keeps signing in sorts its sessions to
/// pick the least recently used once in every tenth sign-in, not on each.
pub fn keep_per_account(max_per_account: i64) -> i64 {
    (max_per_account - max_per_account / 10).max(1)
}

/// True if a sign-in at `auth_time` was within `secs` seconds of `now` (and not in the
/// future, which no honest clock gives).
pub fn signed_in_recently(auth_time: i64, secs: i64, now: i64) -> bool {
    auth_time <= now && now - auth_time <= secs
}

/// Which sessions a sign-out ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// This session only.
    #[default]
    Local,
    /// Every other session of the account.
    Others,
    /// Every session of the account, this one included.
    Global,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The token is not one we issued, has expired, or its session has ended.
    #[error("the token was refused: {0}")]
    Refused(&'static str),
    /// The account is disabled: no session starts, no token or refresh of it is
    /// accepted.
    #[error("the account is disabled")]
    AccountDisabled,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for SessionError {
    fn from(e: StoreError) -> Self {
        SessionError::Internal(e.into())
    }
}

/// The reason of [`SessionError::Refused`] for a genuine token past its `exp` (only a
/// token whose signature verified can be called expired).
pub const EXPIRED: &str = "expired";

impl From<TokenError> for SessionError {
    fn from(e: TokenError) -> Self {
        SessionError::Refused(match e {
            TokenError::Malformed => "malformed",
            TokenError::Algorithm => "algorithm",
            TokenError::Signature => "signature",
            TokenError::Expired => EXPIRED,
            TokenError::NotYetValid => "not yet valid",
            TokenError::Issuer => "issuer",
            TokenError::Kind => "kind",
        })
    }
}

/// What account tokens are signed with (`jwt.algorithm`).
pub enum AccountKeys {
    /// HS512 with the secret itself, as `jwt-simple` verifies.
    Hs512(Arc<TokenKeys>),
    /// EdDSA or ES256, with the keys in the database (see [`SigningKeys`]).
    Asymmetric(Arc<SigningKeys>),
}

impl AccountKeys {
    fn issue(
        &self,
        sub: &str,
        now: i64,
        ttl: i64,
        claims: AccountClaims,
    ) -> Result<String, SessionError> {
        match self {
            AccountKeys::Hs512(keys) => Ok(keys.issue(TokenKind::Account, sub, now, ttl, claims).0),
            AccountKeys::Asymmetric(keys) => {
                let signer = keys.signer(now).ok_or_else(|| {
                    SessionError::Internal(anyhow::anyhow!("no signing key can sign now"))
                })?;
                Ok(signer.sign(&Claims {
                    sub: sub.to_owned(),
                    iat: now,
                    exp: now + ttl,
                    nbf: None,
                    iss: keys.policy().issuer.clone(),
                    jti: random_id(),
                    kind: None,
                    extra: claims,
                }))
            }
        }
    }

    async fn verify(&self, token: &str, now: i64) -> Result<Claims<AccountClaims>, TokenError> {
        match self {
            AccountKeys::Hs512(keys) => keys.verify(TokenKind::Account, token, now),
            AccountKeys::Asymmetric(keys) => keys.verify(token, now).await,
        }
    }

    /// Whether a token that verified before still would: with HS512 always (the
    /// secret does not change while the server runs), asymmetric while its key is
    /// published and not retired.
    fn still_verifies(&self, token: &str, now: i64) -> bool {
        match self {
            AccountKeys::Hs512(_) => true,
            AccountKeys::Asymmetric(keys) => keys.still_verifies(token, now),
        }
    }
}

pub struct Sessions {
    store: DynStore,
    tokens: AccountKeys,
    /// Tags the browser session cookies of the hosted pages.
    browser: TagKey,
    /// Account tokens whose signature was checked already (see [`verified`]).
    verified: VerifiedTokens<Arc<Claims<AccountClaims>>>,
    refresh: RefreshKey,
    policy: SessionPolicy,
}

impl Sessions {
    pub fn new(
        store: DynStore,
        tokens: AccountKeys,
        refresh: RefreshKey,
        browser: TagKey,
        policy: SessionPolicy,
    ) -> Self {
        Sessions {
            store,
            tokens,
            browser,
            verified: VerifiedTokens::default(),
            refresh,
            policy,
        }
    }

    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
    }

    /// Starts a session for `account`, signed in just now by `method` with the factors
    /// `amr` (RFC 8176 values, space-separated). Called by the sign-in flow
    /// ([`crate::signin::flow`]) only, which refused a disabled account already; a
    /// session started as the account is disabled is refused by every check.
    pub async fn start(
        &self,
        account: &Account,
        method: Via,
        amr: &str,
        device: &Device,
    ) -> Result<SignIn, SessionError> {
        let session = self.new_session(&account.id, method, amr, device);
        let ended = self.store.sessions().create_session(&session).await?;
        self.started(account, &session, ended)
    }

    /// The row of a session about to start for `account`, under the session policy:
    /// for a store write that starts it together with another change
    /// ([`crate::store::MfaStore::spend_attempt`]); [`Sessions::started`] then issues
    /// its tokens.
    pub fn new_session(
        &self,
        account: &AccountId,
        method: Via,
        amr: &str,
        device: &Device,
    ) -> NewSession {
        let now = unix_now();
        let p = &self.policy;
        let expires_at = now + p.absolute_secs;
        NewSession {
            id: random_id(),
            account: account.clone(),
            method: method.as_str().to_owned(),
            amr: amr.to_owned(),
            user_agent: device.user_agent.clone(),
            ip: device.ip.clone(),
            now,
            idle_expires_at: (now + p.idle_secs).min(expires_at),
            expires_at,
            max_per_account: p.max_per_account,
            oidc: None,
            keep_per_account: keep_per_account(p.max_per_account),
        }
    }

    /// The first tokens of `session`, written (with `ended` of the account's older
    /// sessions ended over `session.max_per_account`).
    pub fn started(
        &self,
        account: &Account,
        session: &NewSession,
        ended: u64,
    ) -> Result<SignIn, SessionError> {
        tracing::info!(account = %account.id.0, session = %session.id, method = %session.method, "session started");
        if ended > 0 {
            tracing::info!(account = %account.id.0, ended, "sessions over session.max_per_account ended, least recently used first");
        }
        let now = session.now;
        self.sign_in(account, &session.id, 0, now, &session.amr, now)
    }

    /// The tokens of generation `generation` of a session.
    fn sign_in(
        &self,
        account: &Account,
        session: &str,
        generation: i64,
        auth_time: i64,
        amr: &str,
        now: i64,
    ) -> Result<SignIn, SessionError> {
        let claims = account_claims(account, session, auth_time, amr);
        let multi_factor = claims.multi_factor();
        let ttl = self.policy.access_ttl_secs;
        let token = self.tokens.issue(&account.id.0, now, ttl, claims)?;
        Ok(SignIn {
            token,
            refresh_token: self.refresh.token(session, generation),
            expires_in: ttl,
            session: session.to_owned(),
            account: account.id.clone(),
            auth_time,
            multi_factor,
        })
    }

    /// Exchanges a refresh token for the session's next tokens (or, for the previous
    /// token within the grace, its current ones).
    pub async fn refresh(&self, refresh_token: &str) -> Result<SignIn, SessionError> {
        let claim = self
            .refresh
            .open(refresh_token)
            .ok_or(SessionError::Refused("not a refresh token"))?;
        let now = unix_now();
        let p = &self.policy;
        let rules = RefreshRules {
            now,
            idle_secs: p.idle_secs,
            grace_secs: p.reuse_grace_secs,
            max_replays: p.max_replays,
        };
        let outcome = self
            .store
            .sessions()
            .refresh_session(&claim.session, claim.generation, rules)
            .await?;
        match outcome {
            Refresh::Rotated(s) | Refresh::Replayed(s) if s.account.disabled => {
                tracing::info!(account = %s.account.id.0, "refresh refused: the account is disabled");
                Err(SessionError::AccountDisabled)
            }
            Refresh::Rotated(s) | Refresh::Replayed(s) => {
                self.sign_in(&s.account, &s.id, s.generation, s.auth_time, &s.amr, now)
            }
            Refresh::Revoked => {
                tracing::warn!(session = %claim.session, generation = claim.generation,
                    "a rotated refresh token was reused after its grace: session ended");
                Err(SessionError::Refused("reused refresh token"))
            }
            Refresh::Refused => Err(SessionError::Refused("no live session")),
        }
    }

    /// Verifies an account token and checks that its session lives.
    pub async fn authenticate(&self, token: &str) -> Result<Authenticated, SessionError> {
        let (authenticated, now) = self.verify(token).await?;
        let live = self
            .store
            .sessions()
            .session_is_live(&authenticated.session, &authenticated.account, now)
            .await?;
        if !live {
            return Err(self.not_live(&authenticated.account).await);
        }
        Ok(authenticated)
    }

    /// The value of the browser session cookie of the hosted pages for a sign-in:
    /// `<session>.<auth_time>.<mfa>.<account>.<tag>` (`mfa` is `1` when the sign-in proved
    /// two factors, else `0`). It names the same session row as the
    /// sign-in's tokens, so whatever ends that session (signing out, everywhere or
    /// here; a password reset; a disabled or deleted account) ends the cookie too.
    pub fn browser_cookie(&self, sign_in: &SignIn) -> String {
        let body = format!(
            "{}.{}.{}.{}",
            sign_in.session,
            sign_in.auth_time,
            u8::from(sign_in.multi_factor),
            sign_in.account.0
        );
        let tag = self.browser.tag(&body);
        format!("{body}.{tag}")
    }

    /// Which account a browser's session cookie belongs to, and when it signed in: the
    /// one question the pages (and an OpenID Connect `/authorize`) ask of a browser.
    /// Refused unless the cookie is one [`Sessions::browser_cookie`] made and its
    /// session still lives.
    pub async fn browser(&self, cookie: &str) -> Result<Authenticated, SessionError> {
        const MAX_LEN: usize = 160;
        if cookie.len() > MAX_LEN {
            return Err(SessionError::Refused("malformed"));
        }
        let (body, tag) = cookie
            .rsplit_once('.')
            .ok_or(SessionError::Refused("malformed"))?;
        let mut parts = body.splitn(4, '.');
        let (Some(session), Some(auth_time), Some(mfa), Some(account)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SessionError::Refused("malformed"));
        };
        if !self.browser.verifies(body, tag) {
            return Err(SessionError::Refused("signature"));
        }
        let auth_time = auth_time
            .parse::<i64>()
            .map_err(|_| SessionError::Refused("malformed"))?;
        let multi_factor = match mfa {
            "1" => true,
            "0" => false,
            _ => return Err(SessionError::Refused("malformed")),
        };
        let authenticated = Authenticated {
            account: AccountId(account.to_owned()),
            session: session.to_owned(),
            auth_time,
            multi_factor,
        };
        let live = self
            .store
            .sessions()
            .session_is_live(session, &authenticated.account, unix_now())
            .await?;
        if !live {
            return Err(self.not_live(&authenticated.account).await);
        }
        Ok(authenticated)
    }

    /// [`Sessions::authenticate`], and the account's profile read in the same statement
    /// as the session check: `/auth/me` in one database call.
    pub async fn authenticate_with_profile(
        &self,
        token: &str,
    ) -> Result<(Authenticated, AccountProfile), SessionError> {
        let (authenticated, now) = self.verify(token).await?;
        let profile = self
            .store
            .sessions()
            .live_profile(&authenticated.session, &authenticated.account, now)
            .await?;
        match profile {
            Some(profile) => Ok((authenticated, profile)),
            None => Err(self.not_live(&authenticated.account).await),
        }
    }

    /// The token's claims, verified at the returned time; its session not yet checked.
    async fn verify(&self, token: &str) -> Result<(Authenticated, i64), SessionError> {
        let now = unix_now();
        let known = self
            .verified
            .get(token, now)
            .filter(|_| self.tokens.still_verifies(token, now));
        let claims = match known {
            Some(claims) => claims,
            None => {
                let claims = Arc::new(self.tokens.verify(token, now).await?);
                self.verified
                    .insert(token, Arc::clone(&claims), claims.exp, claims.nbf, now);
                claims
            }
        };
        let authenticated = Authenticated {
            account: AccountId(claims.sub.clone()),
            session: claims.extra.sid.clone(),
            auth_time: claims.extra.auth_time,
            multi_factor: claims.extra.multi_factor(),
        };
        Ok((authenticated, now))
    }

    /// Why a verified token's session does not live, read only when refusing: a
    /// disabled account says so (the token proves who is asking), any other says the
    /// session ended.
    async fn not_live(&self, account: &AccountId) -> SessionError {
        match self.store.admin().account_disabled(account).await {
            Ok(true) => SessionError::AccountDisabled,
            Ok(false) => SessionError::Refused("session ended"),
            Err(e) => e.into(),
        }
    }

    /// The account's live sessions, oldest first.
    pub async fn list(&self, account: &AccountId) -> Result<Vec<SessionRecord>, SessionError> {
        Ok(self
            .store
            .sessions()
            .sessions_of(account, unix_now())
            .await?)
    }

    /// Ends one session of the account; false if it has none with this id.
    pub async fn end(&self, account: &AccountId, session: &str) -> Result<bool, SessionError> {
        let ended = self.store.sessions().end_session(account, session).await?;
        if ended {
            tracing::info!(account = %account.0, session, "session ended");
        }
        Ok(ended)
    }

    /// Signs out of the sessions `scope` names, from session `current`.
    pub async fn sign_out(
        &self,
        current: &Authenticated,
        scope: Scope,
    ) -> Result<(), SessionError> {
        let store = self.store.sessions();
        let account = &current.account;
        let ended = match scope {
            Scope::Local => u64::from(store.end_session(account, &current.session).await?),
            Scope::Others => store.end_sessions(account, Some(&current.session)).await?,
            Scope::Global => store.end_sessions(account, None).await?,
        };
        tracing::info!(account = %account.0, session = %current.session, ?scope, ended, "signed out");
        Ok(())
    }

    /// Ends every session of an account (a password reset, a disabled account): every
    /// token of theirs is refused from now on, on every node. How many ended.
    pub async fn revoke_all(&self, account: &AccountId) -> Result<u64, SessionError> {
        let ended = self.store.sessions().end_sessions(account, None).await?;
        tracing::info!(account = %account.0, ended, "every session of the account ended");
        Ok(ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_over_the_cap_keeps_nine_tenths() {
        assert_eq!(keep_per_account(100), 90);
        assert_eq!(keep_per_account(3), 3);
        assert_eq!(keep_per_account(15), 14);
        assert_eq!(keep_per_account(1), 1);
    }

    #[test]
    fn recent_sign_in() {
        assert!(signed_in_recently(1000, 300, 1000));
        assert!(signed_in_recently(1000, 300, 1300));
        assert!(!signed_in_recently(1000, 300, 1301));
        assert!(
            !signed_in_recently(1001, 300, 1000),
            "a sign-in in the future"
        );
    }
}
