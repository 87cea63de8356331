//! The provider's token rules: client authentication, authorization codes, the token
//! grants, introspection, revocation and UserInfo. Knows nothing of HTTP or SQL.
//!
//! An OIDC session is a session row ([`crate::sessions`]): a code exchange starts it,
//! its refresh tokens rotate with the same rules (reuse detection, grace) in the same
//! conditional UPDATE, and ending it — sign-out, revocation, a replayed code, a
//! disabled account — refuses every token of it at once, on every node. Its refresh
//! tokens are keyed apart from account refresh tokens (and its access tokens signed by
//! keys apart from account keys), so neither kind can be spent as the other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::clients::{
    AuthMethod, Client, GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_REFRESH_TOKEN,
};
use crate::crypto::jwt::{Claims, TokenError};
use crate::crypto::random_id;
use crate::crypto::refresh::RefreshKey;
use crate::crypto::signing::Algorithm;
use crate::domain::{AccountId, Secret, unix_now};
use crate::sessions::verified::VerifiedTokens;
use crate::sessions::{SessionPolicy, keep_per_account};
use crate::signing_keys::SigningKeys;
use crate::store::sessions::{NewSession, OidcBinding, Refresh, RefreshRules};
use crate::store::{CodeUse, DynStore, StoreError, StoredCode};

/// How long an authorization code lives (RFC 6749 §4.1.2 recommends at most 10 min).
pub const CODE_TTL_SECS: i64 = 60;

/// The scopes we know; others are dropped (RFC 6749 §3.3 lets a server grant fewer).
pub const SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// An OAuth error (RFC 6749 §5.2, RFC 7009, RFC 7662), its code and a description.
#[derive(Debug)]
pub struct OAuthError {
    pub code: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            code,
            description: description.into(),
        }
    }

    fn grant(description: &str) -> OAuthError {
        OAuthError::new("invalid_grant", description)
    }

    fn client() -> OAuthError {
        OAuthError::new("invalid_client", "Client authentication failed.")
    }
}

/// A store failure: logged by the HTTP layer as a 500, never shown.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{}: {}", .0.code, .0.description)]
    OAuth(OAuthError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<OAuthError> for ProviderError {
    fn from(e: OAuthError) -> Self {
        ProviderError::OAuth(e)
    }
}

impl From<StoreError> for ProviderError {
    fn from(e: StoreError) -> Self {
        ProviderError::Internal(e.into())
    }
}

pub type ProviderResult<T> = Result<T, ProviderError>;

/// What a client presented to prove itself, as the HTTP layer found it.
#[derive(Debug, Default)]
pub struct ClientProof {
    pub client_id: Option<String>,
    /// From the `Authorization: Basic` header.
    pub basic_secret: Option<Secret<String>>,
    /// From the form (`client_secret_post`).
    pub post_secret: Option<Secret<String>>,
    /// `client_assertion` (`private_key_jwt`, RFC 7523), with its type.
    pub assertion: Option<(String, Secret<String>)>,
}

/// The token endpoint's answer (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3).
#[derive(Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// An access token's claims (RFC 9068 §2.2), `sub`/`iss`/`exp`/`iat`/`jti` in
/// [`Claims`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub aud: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// The OIDC session, for tokens of a person; none for `client_credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

/// What introspection says of a token (RFC 7662 §2.2): `active` and, while the token
/// is active, its claims. The claims are the verified token's own, shared with the
/// node's cache of verified tokens and written straight from there (no copy of each
/// string per request).
#[derive(Debug, Clone)]
pub struct Introspection {
    pub active: bool,
    pub details: Option<Arc<Claims<AccessClaims>>>,
}

impl Serialize for Introspection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("active", &self.active)?;
        if let Some(c) = &self.details {
            map.serialize_entry("scope", &c.extra.scope)?;
            map.serialize_entry("client_id", &c.extra.client_id)?;
            map.serialize_entry("token_type", "Bearer")?;
            map.serialize_entry("exp", &c.exp)?;
            map.serialize_entry("iat", &c.iat)?;
            map.serialize_entry("sub", &c.sub)?;
            map.serialize_entry("aud", &c.extra.aud)?;
            map.serialize_entry("iss", &c.iss)?;
            map.serialize_entry("jti", &c.jti)?;
            if let Some(sid) = &c.extra.sid {
                map.serialize_entry("sid", sid)?;
            }
        }
        map.end()
    }
}

/// The ID token's claims (OpenID Connect Core §2).
#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    sid: &'a str,
    azp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    /// The factors of the sign-in (RFC 8176), as the account tokens carry them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    amr: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    acr: Option<String>,
}

/// The provider's rules, from the configuration.
#[derive(Debug, Clone)]
pub struct ProviderPolicy {
    /// `http.public_url`, without a trailing slash.
    pub issuer: String,
    pub access_ttl_secs: i64,
    pub id_ttl_secs: i64,
    pub require_pkce_for_confidential: bool,
    /// What access tokens are signed with.
    pub access_algorithm: Algorithm,
    /// The sessions' lifetimes and refresh rules, as for every session.
    pub sessions: SessionPolicy,
}

impl ProviderPolicy {
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth/token", self.issuer)
    }
}

/// A code about to be issued by `/authorize`, once the person signed in and consented.
#[derive(Debug, Clone)]
pub struct CodeRequest<'a> {
    pub account: &'a AccountId,
    /// When the person signed in (the browser session's `auth_time`).
    pub auth_time: i64,
    /// The factors that sign-in proved (RFC 8176, space-separated, as the browser's
    /// session records them): the ID token and the OIDC session carry them unchanged.
    pub amr: &'a str,
    pub client: &'a Client,
    pub redirect_uri: &'a str,
    pub scopes: &'a [String],
    pub nonce: Option<&'a str>,
    /// The PKCE `S256` challenge.
    pub challenge: Option<&'a str>,
}

pub struct Provider {
    store: DynStore,
    keys: Arc<SigningKeys>,
    refresh: RefreshKey,
    policy: ProviderPolicy,
    /// Access tokens whose signature this node checked already, as `/auth/me` keeps
    /// account tokens ([`crate::sessions::verified`]): a resource server introspects
    /// the same token at every request it serves. Only the signature's verdict is
    /// kept; the session (or the client) is read from the database every time.
    /// Each with the `kid` of its key, so that a hit checks the key without decoding
    /// the token's header again.
    verified: VerifiedTokens<(Arc<str>, Arc<Claims<AccessClaims>>)>,
    /// Clients as last read, each with the revision of its row then. A client is used
    /// only after a read of its current revision matched (one small read by key), so
    /// an update, a new secret or a removal on any node counts at the next request;
    /// what is saved is decoding the row and its JSON lists at every request.
    clients: Mutex<HashMap<String, (String, Arc<Client>)>>,
}

/// The most clients kept parsed (clients are registered by the operator; this only
/// bounds the map against a store with very many).
const CLIENTS_KEPT: usize = 10_000;

/// The scopes a request names that we know, in our order, space-separated.
pub fn known_scopes(requested: &str) -> Vec<String> {
    let asked: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
    SCOPES
        .iter()
        .filter(|s| asked.contains(s))
        .map(|s| s.to_string())
        .collect()
}

/// Whether `verifier` is a PKCE verifier (RFC 7636 §4.1) whose S256 is `challenge`.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = B64.encode(Sha256::digest(verifier.as_bytes()));
    well_formed && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// Whether `challenge` can be an S256 challenge (43 base64url characters).
pub fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// A new code for `request` at `now`, and its row.
fn new_code(request: &CodeRequest<'_>, now: i64) -> (String, StoredCode) {
    let code = B64.encode(crate::crypto::random_bytes::<32>());
    let stored = StoredCode {
        code_hash: hash(&code),
        client_id: request.client.id.clone(),
        account_id: request.account.0.clone(),
        session_id: random_id(),
        redirect_uri: request.redirect_uri.to_owned(),
        scopes: request.scopes.join(" "),
        nonce: request.nonce.map(str::to_owned),
        code_challenge: request.challenge.map(str::to_owned),
        auth_time: request.auth_time,
        amr: request.amr.to_owned(),
        expires_at: now + CODE_TTL_SECS,
    };
    (code, stored)
}

/// Why `client` may not exchange `stored` with `redirect_uri` and `verifier`, if it
/// may not: the code is another client's, the redirect URI differs, or PKCE fails.
fn code_refusal(
    client: &Client,
    stored: &StoredCode,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
    policy: &ProviderPolicy,
) -> Option<OAuthError> {
    if stored.client_id != client.id {
        return Some(OAuthError::grant("The code was issued to another client."));
    }
    if redirect_uri != Some(stored.redirect_uri.as_str()) {
        return Some(OAuthError::grant(
            "redirect_uri differs from the authorization request's.",
        ));
    }
    match (&stored.code_challenge, verifier) {
        (Some(challenge), Some(verifier)) if pkce_matches(verifier, challenge) => None,
        (Some(_), Some(_)) => Some(OAuthError::grant("code_verifier does not match.")),
        (Some(_), None) => Some(OAuthError::grant("code_verifier is required.")),
        // A verifier for an authorization without a challenge: a downgrade attempt
        // (Authentik CVE-2024-23647).
        (None, Some(_)) => Some(OAuthError::grant(
            "code_verifier given, but the authorization had no code_challenge.",
        )),
        (None, None) if client.public || policy.require_pkce_for_confidential => {
            Some(OAuthError::grant("PKCE is required."))
        }
        (None, None) => None,
    }
}

/// The refusal of a code that was not live to exchange: used before (its session
/// ended), or unknown or expired.
fn spent(client: &Client, used: &CodeUse) -> OAuthError {
    if *used == CodeUse::Replayed {
        tracing::warn!(client = %client.id, "an authorization code was used twice: its session ended");
        return OAuthError::grant("The code was used already.");
    }
    OAuthError::grant("The code is unknown or expired.")
}

impl Provider {
    /// `secret`: the JWT secret; OIDC refresh tokens are keyed with a key derived from
    /// it for this use alone.
    pub fn new(
        store: DynStore,
        keys: Arc<SigningKeys>,
        secret: &[u8],
        policy: ProviderPolicy,
    ) -> Provider {
        let mut refresh_secret = secret.to_vec();
        refresh_secret.extend_from_slice(b"\x00gatehouse oidc refresh tokens");
        Provider {
            store,
            keys,
            refresh: RefreshKey::new(&refresh_secret),
            policy,
            verified: VerifiedTokens::default(),
            clients: Mutex::default(),
        }
    }

    /// The client registered as `id`, as its row is now.
    async fn client(&self, id: &str) -> ProviderResult<Option<Arc<Client>>> {
        let oidc = self.store.oidc();
        let Some(revision) = oidc.client_revision(id).await? else {
            return Ok(None);
        };
        let kept = match self.kept_clients().get(id) {
            Some((kept_revision, client)) if *kept_revision == revision => Some(Arc::clone(client)),
            _ => None,
        };
        if let Some(client) = kept {
            return Ok(Some(client));
        }
        // Read after the revision: the row is that revision's or a newer one, so a
        // client is never kept under a revision newer than its content.
        let Some(client) = oidc.client(id).await? else {
            return Ok(None);
        };
        let client = Arc::new(client);
        let mut kept = self.kept_clients();
        if kept.len() >= CLIENTS_KEPT {
            kept.clear();
        }
        kept.insert(id.to_owned(), (revision, Arc::clone(&client)));
        Ok(Some(client))
    }

    fn kept_clients(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Arc<Client>)>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An access token of ours (`typ: at+jwt`, an OIDC key), its signature checked once
    /// per node; expiry, not-before and the key (still published, not retired) are
    /// checked at every call.
    async fn verify_access(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Arc<Claims<AccessClaims>>, TokenError> {
        let known = self
            .verified
            .get(token, now)
            .filter(|(kid, _)| self.keys.kid_still_verifies(kid, now));
        if let Some((_, claims)) = known {
            return Ok(claims);
        }
        let claims = Arc::new(
            self.keys
                .verify_typed(crate::crypto::signing::ACCESS_TOKEN_TYP, token, now)
                .await?,
        );
        let kid = crate::crypto::signing::kid_of(token).ok_or(TokenError::Malformed)?;
        let kept = (Arc::from(kid), Arc::clone(&claims));
        self.verified
            .insert(token, kept, claims.exp, claims.nbf, now);
        Ok(claims)
    }

    pub fn policy(&self) -> &ProviderPolicy {
        &self.policy
    }

    pub fn keys(&self) -> &Arc<SigningKeys> {
        &self.keys
    }

    /// The client `proof` proves, by the one method it registered.
    pub async fn authenticate_client(&self, proof: &ClientProof) -> ProviderResult<Arc<Client>> {
        let now = unix_now();
        let asserted = match &proof.assertion {
            Some((kind, assertion)) => {
                if kind != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
                    return Err(OAuthError::new(
                        "invalid_request",
                        "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
                    )
                    .into());
                }
                Some(super::assertion::subject(assertion.expose()).ok_or_else(OAuthError::client)?)
            }
            None => None,
        };
        let id = match (&proof.client_id, &asserted) {
            (Some(id), Some(sub)) if id != sub => return Err(OAuthError::client().into()),
            (Some(id), _) => id.clone(),
            (None, Some(sub)) => sub.clone(),
            (None, None) => return Err(OAuthError::client().into()),
        };
        let presented = [
            proof.basic_secret.is_some(),
            proof.post_secret.is_some(),
            proof.assertion.is_some(),
        ];
        if presented.iter().filter(|p| **p).count() > 1 {
            return Err(OAuthError::new(
                "invalid_request",
                "Use one client authentication method.",
            )
            .into());
        }
        let Some(client) = self.client(&id).await? else {
            // The same work as a known client's secret check, so that timing does not
            // tell which client ids exist.
            let _ = hash(proof.basic_secret.as_ref().map_or("", |s| s.expose()));
            return Err(OAuthError::client().into());
        };
        let ok = match client.auth_method {
            AuthMethod::ClientSecretBasic => proof
                .basic_secret
                .as_ref()
                .is_some_and(|s| client.secret_is(s.expose())),
            AuthMethod::ClientSecretPost => proof
                .post_secret
                .as_ref()
                .is_some_and(|s| client.secret_is(s.expose())),
            AuthMethod::PrivateKeyJwt => match (&proof.assertion, &client.jwks) {
                (Some((_, assertion)), Some(jwks)) => {
                    match super::assertion::verify(
                        assertion.expose(),
                        jwks,
                        &client.id,
                        &[&self.policy.token_endpoint(), &self.policy.issuer],
                        now,
                    ) {
                        Some((jti, exp)) => {
                            self.store
                                .oidc()
                                .use_assertion(&client.id, &jti, exp, now)
                                .await?
                        }
                        None => false,
                    }
                }
                _ => false,
            },
            AuthMethod::None => {
                proof.basic_secret.is_none()
                    && proof.post_secret.is_none()
                    && proof.assertion.is_none()
            }
        };
        if !ok {
            return Err(OAuthError::client().into());
        }
        Ok(client)
    }

    /// `client_credentials` (RFC 6749 §4.4): an access token for the client itself.
    pub async fn client_credentials(&self, client: &Client) -> ProviderResult<TokenResponse> {
        if !client.may_use(GRANT_CLIENT_CREDENTIALS) {
            return Err(OAuthError::new(
                "unauthorized_client",
                "This client may not use client_credentials.",
            )
            .into());
        }
        let now = unix_now();
        let claims = AccessClaims {
            aud: client.id.clone(),
            client_id: client.id.clone(),
            scope: String::new(),
            sid: None,
            auth_time: None,
        };
        let access_token = self.access_token(&client.id, claims, now)?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.policy.access_ttl_secs,
            refresh_token: None,
            id_token: None,
            scope: None,
        })
    }

    fn access_token(&self, sub: &str, extra: AccessClaims, now: i64) -> ProviderResult<String> {
        let signer = self
            .keys
            .signer_for(self.policy.access_algorithm, now)
            .ok_or_else(|| anyhow::anyhow!("no OIDC key signs now"))?;
        Ok(signer.sign_typed(
            crate::crypto::signing::ACCESS_TOKEN_TYP,
            &Claims {
                sub: sub.to_owned(),
                iat: now,
                exp: now + self.policy.access_ttl_secs,
                nbf: None,
                iss: self.policy.issuer.clone(),
                jti: random_id(),
                kind: None,
                extra,
            },
        ))
    }

    /// Issues an authorization code for a person who signed in and consented, bound to
    /// the client, the redirect URI, the scopes, the nonce and the PKCE challenge;
    /// single use, for [`CODE_TTL_SECS`]. Called by `/authorize`, which checked the
    /// client, the redirect URI and the challenge's form already.
    pub async fn issue_code(&self, request: &CodeRequest<'_>) -> ProviderResult<String> {
        let (code, stored) = new_code(request, unix_now());
        self.store.oidc().add_code(&stored).await?;
        Ok(code)
    }

    /// [`Provider::issue_code`] for the pending authorization request `pending`, which
    /// the same write takes: one write for the take and the code, and no code unless
    /// this took the request. `None`: the request was taken already, or expired.
    pub async fn issue_code_taking(
        &self,
        request: &CodeRequest<'_>,
        pending: &str,
    ) -> ProviderResult<Option<String>> {
        let now = unix_now();
        let (code, stored) = new_code(request, now);
        let added = self
            .store
            .oidc()
            .add_code_taking(&stored, pending, now)
            .await?;
        Ok(added.then_some(code))
    }

    /// `authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.6): the code's tokens, once.
    ///
    /// The code is read first and checked; it is spent in the same write that starts
    /// its session ([`OidcStore::redeem_code`]), so an exchange costs one write and a
    /// session never starts for a code another use spent meanwhile. A refused exchange
    /// spends the code all the same.
    ///
    /// [`OidcStore::redeem_code`]: crate::store::OidcStore::redeem_code
    pub async fn exchange_code(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> ProviderResult<TokenResponse> {
        if !client.may_use(GRANT_AUTHORIZATION_CODE) {
            return Err(OAuthError::new(
                "unauthorized_client",
                "This client may not use authorization_code.",
            )
            .into());
        }
        let now = unix_now();
        let code_hash = hash(code);
        let oidc = self.store.oidc();
        let Some(stored) = oidc.peek_code(&code_hash, now).await? else {
            // Used before (its session ends now) or unknown.
            let used = oidc.use_code(&code_hash, now).await?;
            return Err(spent(client, &used).into());
        };
        let checked = match code_refusal(client, &stored, redirect_uri, verifier, &self.policy) {
            Some(refusal) => Err(refusal),
            None => self.live_account(&stored).await?,
        };
        let account = match checked {
            Ok(account) => account,
            Err(refusal) => {
                oidc.use_code(&code_hash, now).await?;
                return Err(refusal.into());
            }
        };
        let p = &self.policy.sessions;
        let expires_at = now + p.absolute_secs;
        let session = NewSession {
            id: stored.session_id.clone(),
            account: account.id.clone(),
            method: "oidc".to_owned(),
            amr: stored.amr.clone(),
            user_agent: Some(format!("{} (OpenID Connect)", client.name)),
            ip: None,
            now,
            idle_expires_at: (now + p.idle_secs).min(expires_at),
            expires_at,
            max_per_account: p.max_per_account,
            oidc: Some(OidcBinding {
                client_id: client.id.clone(),
                scopes: stored.scopes.clone(),
            }),
            keep_per_account: keep_per_account(p.max_per_account),
        };
        match oidc.redeem_code(&code_hash, now, &session).await? {
            CodeUse::Fresh(_) => {}
            used => return Err(spent(client, &used).into()),
        }
        tracing::info!(account = %account.id.0, session = %session.id, client = %client.id, "OIDC session started");
        let scopes: Vec<String> = stored.scopes.split(' ').map(str::to_owned).collect();
        self.tokens(
            client,
            &account,
            &session.id,
            0,
            stored.auth_time,
            &stored.amr,
            &scopes,
            stored.nonce.as_deref(),
            now,
        )
    }

    /// The account a code was issued for, if it may still have tokens.
    async fn live_account(
        &self,
        stored: &StoredCode,
    ) -> ProviderResult<Result<crate::domain::Account, OAuthError>> {
        let account = AccountId(stored.account_id.clone());
        Ok(match self.store.account_profile(&account).await? {
            None => Err(OAuthError::grant("The account is gone.")),
            Some(profile) if profile.account.disabled => {
                Err(OAuthError::grant("The account is disabled."))
            }
            Some(profile) => Ok(profile.account),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn tokens(
        &self,
        client: &Client,
        account: &crate::domain::Account,
        session: &str,
        generation: i64,
        auth_time: i64,
        amr: &str,
        scopes: &[String],
        nonce: Option<&str>,
        now: i64,
    ) -> ProviderResult<TokenResponse> {
        let has = |s: &str| scopes.iter().any(|x| x == s);
        let scope = scopes.join(" ");
        let access_token = self.access_token(
            &account.id.0,
            AccessClaims {
                aud: client.id.clone(),
                client_id: client.id.clone(),
                scope: scope.clone(),
                sid: Some(session.to_owned()),
                auth_time: Some(auth_time),
            },
            now,
        )?;
        let id_token = if has("openid") {
            let algorithm = Algorithm::parse(&client.id_token_alg).unwrap_or(Algorithm::RS256);
            let signer = self
                .keys
                .signer_for(algorithm, now)
                .ok_or_else(|| anyhow::anyhow!("no OIDC key signs {algorithm:?} now"))?;
            let email = has("email").then_some(()).and(account.email.as_deref());
            let claims = IdClaims {
                iss: &self.policy.issuer,
                sub: &account.id.0,
                aud: &client.id,
                exp: now + self.policy.id_ttl_secs,
                iat: now,
                auth_time,
                nonce,
                sid: session,
                azp: &client.id,
                email,
                amr: amr.split_whitespace().map(str::to_owned).collect(),
                acr: crate::sessions::acr_of(
                    &amr.split_whitespace()
                        .map(str::to_owned)
                        .collect::<Vec<_>>(),
                ),
                email_verified: email.map(|_| account.email_verified),
            };
            Some(signer.sign(&claims))
        } else {
            None
        };
        let refresh_token = (has("offline_access") && client.may_use(GRANT_REFRESH_TOKEN))
            .then(|| self.refresh.token(session, generation));
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.policy.access_ttl_secs,
            refresh_token,
            id_token,
            scope: Some(scope),
        })
    }

    /// `refresh_token` (RFC 6749 §6): the session's next tokens, rotated by the rules
    /// of every session; the token must be this client's.
    pub async fn refresh(
        &self,
        client: &Client,
        refresh_token: &str,
    ) -> ProviderResult<TokenResponse> {
        if !client.may_use(GRANT_REFRESH_TOKEN) {
            return Err(OAuthError::new(
                "unauthorized_client",
                "This client may not use refresh_token.",
            )
            .into());
        }
        let claim = self
            .refresh
            .open(refresh_token)
            .ok_or_else(|| OAuthError::grant("Not a refresh token."))?;
        let granted = match self.store.oidc().oidc_session(&claim.session).await? {
            Some((bound, scopes)) if bound == client.id => known_scopes(&scopes),
            Some(_) => {
                return Err(OAuthError::grant("The refresh token is not this client's.").into());
            }
            None => return Err(OAuthError::grant("The session has ended.").into()),
        };
        let now = unix_now();
        let p = &self.policy.sessions;
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
                Err(OAuthError::grant("The account is disabled.").into())
            }
            Refresh::Rotated(s) | Refresh::Replayed(s) => self.tokens(
                client,
                &s.account,
                &s.id,
                s.generation,
                s.auth_time,
                &s.amr,
                &granted,
                None,
                now,
            ),
            Refresh::Revoked => {
                tracing::warn!(session = %claim.session, "a rotated OIDC refresh token was reused after its grace: session ended");
                Err(OAuthError::grant("The refresh token was used already.").into())
            }
            Refresh::Refused => Err(OAuthError::grant("The session has ended.").into()),
        }
    }

    /// An access token of ours, verified, and whether it is active now: signed by an
    /// OIDC key, unexpired, its session live (or, with no session, its client still
    /// registered). `asking`: the client that authenticated for this request, read
    /// from the database just now, which answers for its own machine tokens.
    pub async fn introspect(&self, asking: &Client, token: &str) -> ProviderResult<Introspection> {
        let now = unix_now();
        let inactive = Introspection {
            active: false,
            details: None,
        };
        let Ok(claims) = self.verify_access(token, now).await else {
            return Ok(inactive);
        };
        let live = match &claims.extra.sid {
            Some(sid) => {
                self.store
                    .sessions()
                    .session_is_live(sid, &AccountId(claims.sub.clone()), now)
                    .await?
            }
            None if claims.extra.client_id == asking.id => true,
            None => self.client(&claims.extra.client_id).await?.is_some(),
        };
        if !live {
            return Ok(inactive);
        }
        Ok(Introspection {
            active: true,
            details: Some(claims),
        })
    }

    /// Revocation (RFC 7009): a refresh token or an access token of this client ends
    /// its session (so every token of it is refused at once); anything else, a token
    /// of another client included, changes nothing, and the answer is the same.
    pub async fn revoke(&self, client: &Client, token: &str) -> ProviderResult<()> {
        let now = unix_now();
        let session = match self.refresh.open(token) {
            Some(claim) => Some(claim.session),
            None => match self.verify_access(token, now).await {
                Ok(c) if c.extra.client_id == client.id => c.extra.sid.clone(),
                _ => None,
            },
        };
        if let Some(session) = session {
            let bound = self.store.oidc().oidc_session(&session).await?;
            if bound.is_some_and(|(c, _)| c == client.id) {
                self.store.oidc().end_oidc_session(&session).await?;
                tracing::info!(session = %session, client = %client.id, "OIDC session revoked");
            }
        }
        Ok(())
    }

    /// UserInfo (OpenID Connect Core §5.3): the claims the access token's scopes
    /// allow, while its session lives.
    pub async fn userinfo(&self, token: &str) -> ProviderResult<serde_json::Value> {
        let now = unix_now();
        let claims = self
            .verify_access(token, now)
            .await
            .map_err(|_: TokenError| {
                OAuthError::new("invalid_token", "The access token is invalid.")
            })?;
        let invalid = || OAuthError::new("invalid_token", "The access token is not active.");
        let sid = claims.extra.sid.as_deref().ok_or_else(invalid)?;
        let scopes: Vec<&str> = claims.extra.scope.split(' ').collect();
        if !scopes.contains(&"openid") {
            return Err(
                OAuthError::new("insufficient_scope", "The token lacks the openid scope.").into(),
            );
        }
        let account = AccountId(claims.sub.clone());
        let Some(profile) = self
            .store
            .sessions()
            .live_profile(sid, &account, now)
            .await?
        else {
            return Err(invalid().into());
        };
        let mut info = serde_json::json!({"sub": claims.sub});
        if scopes.contains(&"email")
            && let Some(email) = &profile.account.email
        {
            info["email"] = email.clone().into();
            info["email_verified"] = profile.account.email_verified.into();
        }
        Ok(info)
    }
}

/// What a verified `id_token_hint` says (RP-Initiated Logout §2).
#[derive(Debug, Clone, Deserialize)]
pub struct IdTokenHint {
    /// The account.
    pub sub: String,
    /// The client it was issued to.
    pub aud: String,
    /// The OIDC session it belongs to.
    #[serde(default)]
    pub sid: Option<String>,
}

impl Provider {
    /// An ID token of ours, handed back by a client: signed by a loaded OIDC key, our
    /// issuer, expired or not. An access token (`typ: at+jwt`) is not one.
    pub fn id_token_hint(&self, token: &str) -> Option<IdTokenHint> {
        if crate::crypto::signing::typ_of(token).as_deref() == Some("at+jwt") {
            return None;
        }
        self.keys.verify_ignoring_expiry(token).ok()
    }
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("policy", &self.policy)
            .finish()
    }
}
