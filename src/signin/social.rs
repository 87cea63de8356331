//! Social sign-in: upstream OpenID Connect providers (any, by issuer, and the Google,
//! Microsoft, Apple and GitLab presets) and GitHub's OAuth 2. One more way in to the
//! one account model, with linking only by proof, as wallets have it. Knows nothing of
//! HTTP servers or SQL; the upstream's client is [`upstream`].
//!
//! - An identity is (provider, upstream subject), never an email; one identity
//!   belongs to one account.
//! - A sign-in sent to a provider is a row ([`StoredPending`]): single use, short-lived,
//!   bound to the browser by a cookie whose digest it holds, so a `state` taken from a
//!   URL is useless elsewhere, and the callback may reach any node. PKCE (S256) and a
//!   nonce always.
//! - A new identity whose email belongs to an account signs in to nothing: the person
//!   is told to sign in to that account and link the provider there (what the sign-up
//!   form already tells of an address). A new email makes a new account, its address
//!   verified only when the provider is trusted for it and says `email_verified`.
//! - A disabled or removed provider signs no one in and links nothing, whatever is in
//!   flight: it is looked up again at the callback and at the API's code exchange.
//! - What comes back is the account and [`super::flow::Proof::Social`]: the sign-in
//!   flow decides the rest (the second factor applies).

pub mod upstream;

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::{Digest, Sha256};

use crate::config::{ProviderKind, SocialProviderSettings};
use crate::crypto::signing::KeyPair;
use crate::crypto::{digest_hex, random_bytes, random_id};
use crate::domain::return_to::ReturnOrigins;
use crate::domain::{Account, AccountId, Email, Secret};
use crate::store::social::{
    IdentityAdded, IdentityRemoval, IdentitySummary, NewIdentity, StoredPending,
};
use crate::store::{DynStore, NewAccount, StoreError, Unique};
use upstream::{ClientAuth, Expected, Upstream, UpstreamError, UpstreamIdentity};

/// How long an API-mode exchange code lives, seconds.
pub const CODE_TTL_SECS: i64 = 60;

/// Why a social sign-in or link failed. Each is a clear answer, never a 500, except
/// `Internal`.
#[derive(Debug, thiserror::Error)]
pub enum SocialError {
    #[error("no such sign-in provider")]
    UnknownProvider,
    #[error("this sign-in provider is disabled")]
    ProviderDisabled,
    #[error("the sign-in expired, was used already, or was started in another browser")]
    InvalidState,
    #[error("the provider did not sign you in ({0})")]
    Denied(String),
    #[error("the callback carries no code")]
    MissingCode,
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// A new identity's email belongs to an account: sign in to it and link.
    #[error(
        "an account with this email already exists; sign in to it, then link this provider from your account page"
    )]
    LinkFirst,
    /// Linking: the identity is linked to another account.
    #[error("this provider's account is linked to another account")]
    IdentityTaken,
    /// Linking: the session that asked has ended.
    #[error("the session that asked for the link has ended")]
    SessionEnded,
    #[error("the exchange code is unknown, used or expired")]
    InvalidCode,
    #[error("return_to is not a page of this site or of an allowed origin")]
    InvalidReturnTo,
    #[error("no such identity on this account")]
    NotFound,
    #[error("this is the account's last way to sign in; add another first")]
    LastWayIn,
    #[error("the account is disabled")]
    Disabled,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for SocialError {
    fn from(e: StoreError) -> Self {
        SocialError::Internal(e.into())
    }
}

/// What a callback is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// A browser sign-in: the session cookie, then `return_to`.
    Browser { return_to: Option<String> },
    /// A single-page app's: a code for `POST /auth/social/exchange` at `return_to`.
    Api { return_to: Option<String> },
    /// Link the identity to this signed-in account (its session must still live).
    Link {
        account: AccountId,
        session: String,
        return_to: Option<String>,
    },
}

impl Intent {
    fn mode(&self) -> &'static str {
        match self {
            Intent::Browser { .. } => "browser",
            Intent::Api { .. } => "api",
            Intent::Link { .. } => "link",
        }
    }

    pub fn return_to(&self) -> Option<&str> {
        match self {
            Intent::Browser { return_to }
            | Intent::Api { return_to }
            | Intent::Link { return_to, .. } => return_to.as_deref(),
        }
    }

    fn of(p: &StoredPending) -> Option<Intent> {
        let return_to = p.return_to.clone();
        Some(match p.mode.as_str() {
            "browser" => Intent::Browser { return_to },
            "api" => Intent::Api { return_to },
            "link" => Intent::Link {
                account: p.link_account.clone()?,
                session: p.link_session.clone()?,
                return_to,
            },
            _ => return None,
        })
    }
}

/// A sign-in sent to its provider: where to send the browser, and the value of the
/// binding cookie to set (only its digest is stored).
pub struct Begun {
    pub authorize_url: String,
    pub binding: Secret<String>,
}

/// What a callback came to.
#[derive(Debug)]
pub enum Landed {
    /// The identity's account (known, or made just now): the sign-in flow's turn.
    SignIn {
        account: Account,
        provider: String,
        intent: Intent,
        /// A new account whose address is not verified: its verification mail is owed.
        needs_verification: bool,
    },
    /// Linked to the signed-in account.
    Linked { intent: Intent },
}

/// What the callback carries.
#[derive(Debug, Default)]
pub struct Callback {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    /// Apple's `user` form field, on the first sign-in only: the name.
    pub user: Option<String>,
}

/// A configured provider.
pub struct Provider {
    pub id: String,
    pub kind: ProviderKind,
    pub name: String,
    pub enabled: bool,
    client_id: String,
    secret: Option<Secret<String>>,
    scopes: String,
    trust_email_verified: bool,
    endpoints: Endpoints,
    upstream: Upstream,
    /// Apple: the team and key its client secret is signed with.
    apple: Option<AppleKey>,
}

/// What Apple's client secret (an ES256 JWT) is signed with.
pub struct AppleKey {
    pub team_id: String,
    pub key: KeyPair,
}

enum Endpoints {
    /// Discovery at `discovery`; ID tokens from `issuer` (Microsoft: a template).
    Oidc { discovery: String, issuer: String },
    /// GitHub: fixed endpoints, no ID token.
    Github { web: String, api: String },
}

impl Provider {
    /// The provider of `settings`, its secret `secret` (read from the file already).
    pub fn new(
        s: &SocialProviderSettings,
        secret: Option<Secret<String>>,
        apple: Option<AppleKey>,
        http: reqwest::Client,
    ) -> anyhow::Result<Provider> {
        let base = s
            .base_url
            .as_deref()
            .map(|b| b.trim_end_matches('/').to_owned());
        let oidc = |issuer: String, template: Option<String>| {
            let discovery = format!("{issuer}/.well-known/openid-configuration");
            Endpoints::Oidc {
                discovery,
                issuer: template.unwrap_or(issuer),
            }
        };
        let (endpoints, default_name, trusted, scopes) = match s.kind {
            ProviderKind::Oidc => {
                let issuer = s
                    .issuer
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("issuer is required for kind oidc"))?;
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                (
                    Endpoints::Oidc { discovery, issuer },
                    s.id.clone(),
                    false,
                    "openid email profile",
                )
            }
            ProviderKind::Google => (
                oidc(
                    base.unwrap_or_else(|| "https://accounts.google.com".into()),
                    None,
                ),
                "Google".into(),
                true,
                "openid email profile",
            ),
            ProviderKind::Gitlab => (
                oidc(base.unwrap_or_else(|| "https://gitlab.com".into()), None),
                "GitLab".into(),
                false,
                "openid email profile",
            ),
            ProviderKind::Apple => (
                oidc(
                    base.unwrap_or_else(|| "https://appleid.apple.com".into()),
                    None,
                ),
                "Apple".into(),
                true,
                "openid email name",
            ),
            ProviderKind::Microsoft => {
                // Microsoft documents the multi-tenant endpoints' issuer as a template:
                // the token's `tid` fills `{tenantid}`.
                let login = base.unwrap_or_else(|| "https://login.microsoftonline.com".into());
                let tenant = s.tenant.clone().unwrap_or_else(|| "common".into());
                let multi = matches!(tenant.as_str(), "common" | "organizations" | "consumers");
                let template = multi.then(|| format!("{login}/{{tenantid}}/v2.0"));
                let mut e = oidc(format!("{login}/{tenant}/v2.0"), template);
                if let (Endpoints::Oidc { issuer, .. }, false) = (&mut e, multi) {
                    *issuer = format!("{login}/{tenant}/v2.0");
                }
                (e, "Microsoft".into(), false, "openid email profile")
            }
            ProviderKind::Github => {
                let (web, api) = match base {
                    Some(b) => (b.clone(), format!("{b}/api/v3")),
                    None => ("https://github.com".into(), "https://api.github.com".into()),
                };
                (
                    Endpoints::Github { web, api },
                    "GitHub".into(),
                    true,
                    "read:user user:email",
                )
            }
        };
        let mut scopes = match &s.scopes {
            Some(list) => list.join(" "),
            None => scopes.to_owned(),
        };
        if matches!(endpoints, Endpoints::Oidc { .. })
            && !scopes.split(' ').any(|sc| sc == "openid")
        {
            scopes = format!("openid {scopes}").trim().to_owned();
        }
        Ok(Provider {
            id: s.id.clone(),
            kind: s.kind,
            name: s.name.clone().unwrap_or(default_name),
            enabled: s.enabled,
            client_id: s.client_id.clone(),
            secret,
            scopes,
            trust_email_verified: s.trust_email_verified.unwrap_or(trusted),
            endpoints,
            upstream: Upstream::new(http),
            apple,
        })
    }

    /// Where the browser is sent, and how the token endpoint is called.
    async fn endpoints(&self) -> Result<(String, String, ClientAuth), SocialError> {
        match &self.endpoints {
            Endpoints::Oidc { discovery, issuer } => {
                let m = self.upstream.metadata(discovery, issuer).await?;
                let auth = match &m.token_endpoint_auth_methods_supported {
                    Some(methods)
                        if !methods.iter().any(|m| m == "client_secret_basic")
                            && methods.iter().any(|m| m == "client_secret_post") =>
                    {
                        ClientAuth::Post
                    }
                    _ if self.kind == ProviderKind::Apple => ClientAuth::Post,
                    _ => ClientAuth::Basic,
                };
                Ok((m.authorization_endpoint, m.token_endpoint, auth))
            }
            Endpoints::Github { web, .. } => Ok((
                format!("{web}/login/oauth/authorize"),
                format!("{web}/login/oauth/access_token"),
                ClientAuth::Post,
            )),
        }
    }
}

/// The providers, and what a sign-in through them reads and writes.
pub struct Social {
    providers: HashMap<String, Arc<Provider>>,
    /// In configuration order, for the sign-in page's buttons.
    order: Vec<String>,
    store: DynStore,
    pending_ttl_secs: i64,
    /// `<public base>/auth/social/`: each provider's callback is under it.
    callback_base: String,
    /// Where a browser may be sent back to.
    return_origins: ReturnOrigins,
}

impl Social {
    pub fn new(
        providers: Vec<Provider>,
        store: DynStore,
        pending_ttl_secs: i64,
        public_base: &str,
        return_origins: ReturnOrigins,
    ) -> Social {
        let order = providers.iter().map(|p| p.id.clone()).collect();
        Social {
            providers: providers
                .into_iter()
                .map(|p| (p.id.clone(), Arc::new(p)))
                .collect(),
            order,
            store,
            pending_ttl_secs,
            callback_base: format!("{}/auth/social/", public_base.trim_end_matches('/')),
            return_origins,
        }
    }

    /// The enabled providers, in configuration order: (id, name).
    pub fn enabled(&self) -> Vec<(String, String)> {
        self.order
            .iter()
            .filter_map(|id| self.providers.get(id))
            .filter(|p| p.enabled)
            .map(|p| (p.id.clone(), p.name.clone()))
            .collect()
    }

    /// The name a provider's identities are shown with (its id, when it is gone).
    pub fn name_of(&self, id: &str) -> String {
        self.providers
            .get(id)
            .map_or_else(|| id.to_owned(), |p| p.name.clone())
    }

    fn provider(&self, id: &str) -> Result<&Arc<Provider>, SocialError> {
        let p = self.providers.get(id).ok_or(SocialError::UnknownProvider)?;
        if !p.enabled {
            return Err(SocialError::ProviderDisabled);
        }
        Ok(p)
    }

    /// Where a browser may be sent back to (as the hosted pages allow it).
    pub fn return_origins(&self) -> &ReturnOrigins {
        &self.return_origins
    }

    /// Whether `id` names an enabled provider.
    pub fn check_provider(&self, id: &str) -> Result<(), SocialError> {
        self.provider(id).map(|_| ())
    }

    fn redirect_uri(&self, provider: &str) -> String {
        format!("{}{provider}/callback", self.callback_base)
    }

    /// Sends a sign-in (or a link) to `provider`: the pending row, and the provider's
    /// authorization URL with `state`, `nonce` and PKCE S256.
    pub async fn begin(
        &self,
        provider: &str,
        intent: Intent,
        now: i64,
    ) -> Result<Begun, SocialError> {
        let p = self.provider(provider)?;
        if intent
            .return_to()
            .is_some_and(|r| self.return_origins.check(r).is_none())
        {
            return Err(SocialError::InvalidReturnTo);
        }
        let (authorize, _, _) = p.endpoints().await?;
        let state = random_id();
        let nonce = random_id();
        let verifier = B64.encode(random_bytes::<32>());
        let binding = random_id();
        let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
        let (link_account, link_session) = match &intent {
            Intent::Link {
                account, session, ..
            } => (Some(account.clone()), Some(session.clone())),
            _ => (None, None),
        };
        self.store
            .social()
            .put_social_pending(&StoredPending {
                state_hash: digest_hex(&state),
                binding_hash: digest_hex(&binding),
                provider: p.id.clone(),
                nonce: nonce.clone(),
                verifier,
                mode: intent.mode().to_owned(),
                return_to: intent.return_to().map(str::to_owned),
                link_account,
                link_session,
                expires_at: now + self.pending_ttl_secs,
            })
            .await?;
        let mut url = url::Url::parse(&authorize).map_err(|_| {
            SocialError::Upstream(UpstreamError::Unavailable(
                "the authorization endpoint is not a URL".into(),
            ))
        })?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &p.client_id)
                .append_pair("redirect_uri", &self.redirect_uri(&p.id))
                .append_pair("scope", &p.scopes)
                .append_pair("state", &state)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if matches!(p.endpoints, Endpoints::Oidc { .. }) {
                q.append_pair("nonce", &nonce);
            }
            if p.kind == ProviderKind::Apple {
                // Apple posts the answer (and the name, when asked) as a form.
                q.append_pair("response_mode", "form_post");
            }
        }
        Ok(Begun {
            authorize_url: url.into(),
            binding: Secret::new(binding),
        })
    }

    /// The provider came back: the pending sign-in is consumed (only with this
    /// browser's binding), the code exchanged and the identity checked; then the
    /// account it signs in to, or the link.
    pub async fn callback(
        &self,
        provider: &str,
        cb: Callback,
        binding: Option<&str>,
        now: i64,
    ) -> Result<Landed, SocialError> {
        let state = cb.state.as_deref().ok_or(SocialError::InvalidState)?;
        let binding = binding.ok_or(SocialError::InvalidState)?;
        if state.len() > 128 || binding.len() > 128 {
            return Err(SocialError::InvalidState);
        }
        let pending = self
            .store
            .social()
            .take_social_pending(&digest_hex(state), &digest_hex(binding), now)
            .await?
            .ok_or(SocialError::InvalidState)?;
        if pending.provider != provider {
            return Err(SocialError::InvalidState);
        }
        let intent = Intent::of(&pending).ok_or(SocialError::InvalidState)?;
        // Looked up again: a provider disabled since the sign-in began stops it here.
        let p = self.provider(provider)?;
        if let Some(error) = cb.error {
            let error: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(SocialError::Denied(error));
        }
        let code = cb.code.as_deref().ok_or(SocialError::MissingCode)?;
        let identity = self
            .identity(p, code, &pending, cb.user.as_deref(), now)
            .await?;
        match intent {
            Intent::Link {
                ref account,
                ref session,
                ..
            } => {
                let new = new_identity(p, &identity, now);
                match self
                    .store
                    .social()
                    .add_identity(account, &new, session, now)
                    .await
                {
                    Ok(IdentityAdded::Added | IdentityAdded::AlreadyLinked) => {
                        tracing::info!(account = %account.0, provider = %p.id, "social identity linked");
                        Ok(Landed::Linked { intent })
                    }
                    Ok(IdentityAdded::SessionEnded) => Err(SocialError::SessionEnded),
                    Err(StoreError::Conflict(_)) => Err(SocialError::IdentityTaken),
                    Err(e) => Err(e.into()),
                }
            }
            intent => self.sign_in(p, identity, intent, now).await,
        }
    }

    /// The identity a code proves, checked.
    async fn identity(
        &self,
        p: &Provider,
        code: &str,
        pending: &StoredPending,
        apple_user: Option<&str>,
        now: i64,
    ) -> Result<UpstreamIdentity, SocialError> {
        if code.is_empty() || code.len() > 2048 {
            return Err(SocialError::MissingCode);
        }
        let (_, token_endpoint, auth) = p.endpoints().await?;
        let apple_secret = p.apple.as_ref().map(|apple| apple.client_secret(p, now));
        let secret = apple_secret.as_ref().or(p.secret.as_ref());
        let (id_token, access_token) = p
            .upstream
            .exchange(
                &token_endpoint,
                auth,
                &p.client_id,
                secret,
                code,
                &self.redirect_uri(&p.id),
                &pending.verifier,
            )
            .await?;
        match &p.endpoints {
            Endpoints::Oidc { discovery, issuer } => {
                let id_token = id_token.ok_or(UpstreamError::BadIdToken(
                    "the token endpoint answered none",
                ))?;
                let m = p.upstream.metadata(discovery, issuer).await?;
                let expected = Expected {
                    issuer,
                    client_id: &p.client_id,
                    nonce: &pending.nonce,
                    now,
                };
                let mut identity = p
                    .upstream
                    .verify_id_token(&id_token, &m.jwks_uri, &expected)
                    .await?;
                // Apple's name, posted beside the code on the first sign-in only; its
                // `email` is never taken (the ID token's is the one Apple signed).
                if p.kind == ProviderKind::Apple
                    && let Some(name) = apple_user.and_then(apple_name)
                {
                    identity.name = Some(name);
                }
                // The email only at UserInfo (OpenID Connect Core §5.4, the code
                // flow's default): asked there, with the same exchange's access token.
                // A missing `email_verified` matters only to a provider trusted for it.
                let wanted = identity.email.is_none()
                    || (identity.email_incomplete() && p.trust_email_verified);
                if wanted
                    && let (Some(endpoint), Some(token)) =
                        (m.userinfo_endpoint.as_deref(), access_token.as_deref())
                {
                    p.upstream
                        .fill_from_userinfo(endpoint, token, &mut identity)
                        .await?;
                }
                Ok(identity)
            }
            Endpoints::Github { api, .. } => {
                let token = access_token.ok_or(UpstreamError::CodeRefused(
                    "the token endpoint answered no access token".into(),
                ))?;
                Ok(p.upstream.github_user(api, &token).await?)
            }
        }
    }

    /// A proven identity signs in: to its account; else, when its email has an
    /// account, to nothing ([`SocialError::LinkFirst`]); else to a new account.
    async fn sign_in(
        &self,
        p: &Provider,
        identity: UpstreamIdentity,
        intent: Intent,
        now: i64,
    ) -> Result<Landed, SocialError> {
        let social = self.store.social();
        if let Some(known) = social.identity_account(&p.id, &identity.subject).await? {
            // A name the provider gave now replaces the one kept; none keeps it.
            if let Some(name) = display_name(&identity)
                && known.display_name.as_deref() != Some(name.as_str())
            {
                social
                    .set_identity_name(&p.id, &identity.subject, &name)
                    .await?;
            }
            let account = self.account(&known.account).await?;
            return Ok(Landed::SignIn {
                account,
                provider: p.id.clone(),
                intent,
                needs_verification: false,
            });
        }
        let email = identity
            .email
            .as_deref()
            .and_then(|e| Email::parse(e, "email").ok());
        if let Some(email) = &email
            && self.store.account_by_email(email.key()).await?.is_some()
        {
            tracing::info!(provider = %p.id, "social sign-in refused: a new identity's email has an account; link it first");
            return Err(SocialError::LinkFirst);
        }
        let verified =
            email.is_some() && p.trust_email_verified && identity.email_verified == Some(true);
        let new = NewAccount {
            id: AccountId::generate(),
            email: email
                .as_ref()
                .map(|e| (e.as_str().to_owned(), e.key().to_owned())),
            password_hash: None,
            ownid_data: None,
            created_at: now,
        };
        let link = new_identity(p, &identity, now);
        match social
            .create_account_with_identity(&new, &link, verified)
            .await
        {
            Ok(()) => {}
            // A concurrent callback made it first: the address, or this identity.
            Err(StoreError::Conflict(Unique::Email)) => return Err(SocialError::LinkFirst),
            Err(StoreError::Conflict(_)) => return Err(SocialError::InvalidState),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(account = %new.id.0, provider = %p.id, verified, "account created by social sign-in");
        let account = self.account(&new.id).await?;
        Ok(Landed::SignIn {
            needs_verification: account.email.is_some() && !verified,
            account,
            provider: p.id.clone(),
            intent,
        })
    }

    async fn account(&self, id: &AccountId) -> Result<Account, SocialError> {
        Ok(self
            .store
            .account_profile(id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("a social identity's account is gone"))?
            .account)
    }

    /// Stores an API-mode exchange code for `account`: the code to hand back.
    pub async fn issue_code(
        &self,
        account: &AccountId,
        provider: &str,
        now: i64,
    ) -> Result<String, SocialError> {
        let code = random_id();
        self.store
            .social()
            .put_social_code(&digest_hex(&code), account, provider, now + CODE_TTL_SECS)
            .await?;
        Ok(code)
    }

    /// Consumes an exchange code: its account, if its provider is still enabled.
    pub async fn redeem_code(&self, code: &str, now: i64) -> Result<Account, SocialError> {
        if code.is_empty() || code.len() > 128 {
            return Err(SocialError::InvalidCode);
        }
        let (account, provider) = self
            .store
            .social()
            .take_social_code(&digest_hex(code), now)
            .await?
            .ok_or(SocialError::InvalidCode)?;
        self.provider(&provider)?;
        self.account(&account).await
    }

    /// Unlinks an identity of `account`, unless it is its last way in.
    pub async fn unlink(&self, account: &AccountId, id: &str) -> Result<(), SocialError> {
        if id.is_empty() || id.len() > 64 {
            return Err(SocialError::NotFound);
        }
        match self.store.social().remove_identity(account, id).await? {
            IdentityRemoval::Removed => {
                tracing::info!(account = %account.0, "social identity unlinked");
                Ok(())
            }
            IdentityRemoval::NotFound => Err(SocialError::NotFound),
            IdentityRemoval::LastSignInMethod => Err(SocialError::LastWayIn),
        }
    }

    /// The account's identities.
    pub async fn identities(
        &self,
        account: &AccountId,
    ) -> Result<Vec<IdentitySummary>, SocialError> {
        Ok(self.store.social().identities(account).await?)
    }
}

fn new_identity(p: &Provider, identity: &UpstreamIdentity, now: i64) -> NewIdentity {
    NewIdentity {
        id: random_id(),
        provider: p.id.clone(),
        subject: identity.subject.clone(),
        email: identity.email.clone().filter(|e| e.len() <= 320),
        display_name: display_name(identity),
        linked_at: now,
    }
}

/// The longest display name kept, in characters.
const MAX_DISPLAY_NAME: usize = 200;

/// The identity's name as kept: trimmed, at most [`MAX_DISPLAY_NAME`] characters.
fn display_name(identity: &UpstreamIdentity) -> Option<String> {
    let name = identity.name.as_deref()?.trim();
    (!name.is_empty()).then(|| name.chars().take(MAX_DISPLAY_NAME).collect())
}

/// The name in Apple's `user` field (`{"name":{"firstName","lastName"},"email"}`).
fn apple_name(user: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(user).ok()?;
    let first = v["name"]["firstName"].as_str().unwrap_or_default().trim();
    let last = v["name"]["lastName"].as_str().unwrap_or_default().trim();
    let name = format!("{first} {last}").trim().to_owned();
    (!name.is_empty()).then_some(name)
}

impl AppleKey {
    /// Apple's client secret: an ES256 JWT of the team (`iss`) for this client
    /// (`sub`), addressed to Apple's issuer (`aud`), living five minutes; signed by
    /// the same signer as our own tokens, the key's id in its header.
    fn client_secret(&self, p: &Provider, now: i64) -> Secret<String> {
        let audience = match &p.endpoints {
            Endpoints::Oidc { issuer, .. } => issuer.clone(),
            Endpoints::Github { .. } => String::new(),
        };
        let claims = serde_json::json!({
            "iss": self.team_id,
            "iat": now,
            "exp": now + 300,
            "aud": audience,
            "sub": p.client_id,
        });
        Secret::new(self.key.sign(&claims))
    }
}
