//! The client of an upstream provider: its discovery document and JWKS (cached, the
//! keys fetched again on an unknown `kid` at most every [`JWKS_REFETCH_SECS`]), the
//! token endpoint, the ID token's checks, and GitHub's user API. Everything here
//! talks to the provider; nothing knows HTTP servers or SQL.
//!
//! The ID token is checked in full, by `jsonwebtoken` on our verifiers
//! ([`crate::crypto::signing::install_provider`]): the signature with the provider's
//! key its `kid` names (RS256, ES256 or EdDSA; never `none` or an HMAC), `iss`, `aud`,
//! `azp`, `exp`, `iat` and `nonce`.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm as Jose, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::domain::Secret;

/// The least time between two fetches of a provider's keys for an unknown `kid`.
pub const JWKS_REFETCH_SECS: u64 = 5;
/// How far a token's `iat` may be ahead of our clock, and `exp` behind it, seconds.
const LEEWAY_SECS: i64 = 60;
/// An ID token issued longer ago than this is refused, seconds.
const MAX_AGE_SECS: i64 = 600;
/// The largest answer read from a provider.
const MAX_BODY: usize = 256 * 1024;
/// The largest ID token looked at.
const MAX_ID_TOKEN: usize = 16 * 1024;

/// Why talking to the provider failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The provider could not be reached, or answered what it should not.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The token endpoint refused the code (used, expired, or not for us).
    #[error("the provider refused the code: {0}")]
    CodeRefused(String),
    /// The ID token failed a check; says which.
    #[error("the ID token was refused: {0}")]
    BadIdToken(&'static str),
    /// The UserInfo answer failed a check (OpenID Connect Core §5.3.2); says which.
    #[error("the provider's UserInfo answer was refused: {0}")]
    BadUserInfo(&'static str),
}

/// What a provider's discovery document says that we use.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    /// Where the person's claims are read when the ID token leaves them out.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// How the token endpoint is told who we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic (RFC 6749 §2.3.1), the default.
    Basic,
    /// `client_id` and `client_secret` in the form.
    Post,
}

/// What an ID token must say, besides its signature.
pub struct Expected<'a> {
    /// `iss` exactly; for Microsoft's multi-tenant endpoints, a template with
    /// `{tenantid}`, which the token's `tid` fills.
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub now: i64,
}

/// The person an upstream sign-in proved, as the provider describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamIdentity {
    pub subject: String,
    pub email: Option<String>,
    /// What the provider said of the email; `None`: it said nothing.
    pub email_verified: Option<bool>,
    pub name: Option<String>,
}

impl UpstreamIdentity {
    /// Whether the email and what is known of it are all the ID token gave: no
    /// `email`, or no `email_verified` for it. The provider's UserInfo may say more.
    pub fn email_incomplete(&self) -> bool {
        self.email.is_none() || self.email_verified.is_none()
    }
}

#[derive(Deserialize)]
struct IdClaims {
    sub: String,
    iss: String,
    #[serde(default)]
    azp: Option<String>,
    iat: i64,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    tid: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<BoolOrText>,
    #[serde(default)]
    name: Option<String>,
    aud: Audience,
}

/// Apple sends `email_verified` as the text `"true"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum BoolOrText {
    Bool(bool),
    Text(String),
}

impl BoolOrText {
    fn is_true(&self) -> bool {
        match self {
            BoolOrText::Bool(b) => *b,
            BoolOrText::Text(t) => t == "true",
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    // In this order: an array is `Many`; anything else, one.
    Many(Vec<serde::de::IgnoredAny>),
    One(serde::de::IgnoredAny),
}

impl Audience {
    fn len(&self) -> usize {
        match self {
            Audience::One(_) => 1,
            Audience::Many(v) => v.len(),
        }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

struct Keys {
    set: JwkSet,
    fetched: Instant,
}

/// One provider's client: its metadata and keys, fetched when first needed.
pub struct Upstream {
    http: reqwest::Client,
    metadata: Mutex<Option<Metadata>>,
    keys: Mutex<Option<Keys>>,
}

impl Upstream {
    pub fn new(http: reqwest::Client) -> Upstream {
        Upstream {
            http,
            metadata: Mutex::new(None),
            keys: Mutex::new(None),
        }
    }

    /// The discovery document of `issuer`, fetched once and kept. Its `issuer` must be
    /// `expected_issuer` (OpenID Connect Discovery §4.3), unless that is a template.
    pub async fn metadata(
        &self,
        discovery_url: &str,
        expected_issuer: &str,
    ) -> Result<Metadata, UpstreamError> {
        let mut held = self.metadata.lock().await;
        if let Some(m) = held.as_ref() {
            return Ok(m.clone());
        }
        let m: Metadata = self.get_json(discovery_url, None).await?;
        if !expected_issuer.contains("{tenantid}") && m.issuer != expected_issuer {
            return Err(UpstreamError::Unavailable(format!(
                "the discovery document names the issuer {:?}, not {expected_issuer:?}",
                m.issuer
            )));
        }
        *held = Some(m.clone());
        Ok(m)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<T, UpstreamError> {
        let mut req = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.map_err(unavailable)?;
        let status = res.status();
        let body = read_body(res).await?;
        if !status.is_success() {
            return Err(UpstreamError::Unavailable(format!(
                "{url} answered {status}"
            )));
        }
        serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Unavailable(format!("{url} answered no valid JSON: {e}")))
    }

    /// Exchanges an authorization code at `token_endpoint`: the ID token (OpenID
    /// Connect) or the access token (GitHub). The upstream's tokens are used once here
    /// and never kept.
    #[allow(clippy::too_many_arguments)]
    pub async fn exchange(
        &self,
        token_endpoint: &str,
        auth: ClientAuth,
        client_id: &str,
        secret: Option<&Secret<String>>,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<(Option<String>, Option<String>), UpstreamError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        let mut req = self
            .http
            .post(token_endpoint)
            .header(reqwest::header::ACCEPT, "application/json");
        match (auth, secret) {
            (ClientAuth::Basic, Some(secret)) => {
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let pair = format!("{}:{}", enc(client_id), enc(secret.expose()));
                req = req.header(
                    reqwest::header::AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode(pair)),
                );
            }
            (_, secret) => {
                form.push(("client_id", client_id));
                if let Some(secret) = secret {
                    form.push(("client_secret", secret.expose()));
                }
            }
        }
        let res = req.form(&form).send().await.map_err(unavailable)?;
        let status = res.status();
        let body = read_body(res).await?;
        let answer: Option<TokenAnswer> = serde_json::from_slice(&body).ok();
        match answer {
            Some(a) if status.is_success() && a.error.is_none() => Ok((a.id_token, a.access_token)),
            Some(a) if status.is_client_error() || a.error.is_some() => Err(
                UpstreamError::CodeRefused(a.error.unwrap_or_else(|| status.to_string())),
            ),
            _ => Err(UpstreamError::Unavailable(format!(
                "the token endpoint answered {status}"
            ))),
        }
    }

    /// Checks an ID token against the provider's keys (at `jwks_uri`) and `expected`.
    pub async fn verify_id_token(
        &self,
        id_token: &str,
        jwks_uri: &str,
        expected: &Expected<'_>,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        crate::crypto::signing::install_provider();
        if id_token.len() > MAX_ID_TOKEN {
            return Err(UpstreamError::BadIdToken("it is too large"));
        }
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|_| UpstreamError::BadIdToken("it is not a JWT"))?;
        if !matches!(header.alg, Jose::RS256 | Jose::ES256 | Jose::EdDSA) {
            return Err(UpstreamError::BadIdToken("its algorithm is not allowed"));
        }
        if header.crit.is_some()
            || header.jwk.is_some()
            || header.jku.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
        {
            return Err(UpstreamError::BadIdToken(
                "its header names keys or extensions",
            ));
        }
        let jwk = self.key(jwks_uri, header.kid.as_deref()).await?;
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|_| UpstreamError::BadIdToken("the provider's key is unusable"))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS as u64;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_audience(&[expected.client_id]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // The issuer is compared below, where Microsoft's template is filled.
        let claims = jsonwebtoken::decode::<IdClaims>(id_token, &key, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                UpstreamError::BadIdToken(match e.kind() {
                    K::InvalidSignature => "its signature does not verify",
                    K::ExpiredSignature => "it has expired",
                    K::ImmatureSignature => "it is not valid yet",
                    K::InvalidAudience => "it is for another audience",
                    K::InvalidAlgorithm => "its algorithm does not match the key",
                    _ => "its claims are malformed",
                })
            })?
            .claims;
        let issuer = match (&claims.tid, expected.issuer.contains("{tenantid}")) {
            (Some(tid), true) => expected.issuer.replace("{tenantid}", tid),
            (None, true) => return Err(UpstreamError::BadIdToken("it names no tenant")),
            (_, false) => expected.issuer.to_owned(),
        };
        if claims.iss != issuer {
            return Err(UpstreamError::BadIdToken("it is from another issuer"));
        }
        // OpenID Connect Core §3.1.3.7: azp, when present (and required with several
        // audiences), is our client id.
        match &claims.azp {
            Some(azp) if azp != expected.client_id => {
                return Err(UpstreamError::BadIdToken("it was issued to another party"));
            }
            None if claims.aud.len() > 1 => {
                return Err(UpstreamError::BadIdToken(
                    "it has several audiences and no azp",
                ));
            }
            _ => {}
        }
        if claims.iat > expected.now + LEEWAY_SECS || claims.iat < expected.now - MAX_AGE_SECS {
            return Err(UpstreamError::BadIdToken(
                "its issued-at time is out of range",
            ));
        }
        let nonce_ok = claims.nonce.as_deref().is_some_and(|n| {
            use subtle::ConstantTimeEq;
            bool::from(n.as_bytes().ct_eq(expected.nonce.as_bytes()))
        });
        if !nonce_ok {
            return Err(UpstreamError::BadIdToken("its nonce is not the sign-in's"));
        }
        if claims.sub.is_empty() || claims.sub.len() > 255 {
            return Err(UpstreamError::BadIdToken(
                "its subject is empty or too long",
            ));
        }
        Ok(UpstreamIdentity {
            subject: claims.sub,
            email: claims.email.filter(|e| !e.is_empty()),
            email_verified: claims.email_verified.map(|v| v.is_true()),
            name: claims.name.filter(|n| !n.trim().is_empty()),
        })
    }

    /// The person's email (and name) from the provider's UserInfo endpoint, called
    /// with the access token of the same exchange, for an ID token that left them out
    /// (OpenID Connect Core §5.4: the code flow's scope claims may be given there
    /// only). Its `sub` must be the ID token's (§5.3.2), else nothing of it is taken
    /// and the sign-in fails. Its `email` and `email_verified` replace the ID token's
    /// together, never one without the other.
    pub async fn fill_from_userinfo(
        &self,
        endpoint: &str,
        access_token: &str,
        identity: &mut UpstreamIdentity,
    ) -> Result<(), UpstreamError> {
        #[derive(Deserialize)]
        struct UserInfo {
            #[serde(default)]
            sub: Option<String>,
            #[serde(default)]
            email: Option<String>,
            #[serde(default)]
            email_verified: Option<BoolOrText>,
            #[serde(default)]
            name: Option<String>,
        }
        let info: UserInfo = self.get_json(endpoint, Some(access_token)).await?;
        if info.sub.as_deref() != Some(identity.subject.as_str()) {
            return Err(UpstreamError::BadUserInfo(
                "its subject is not the ID token's",
            ));
        }
        if let Some(email) = info.email.filter(|e| !e.is_empty()) {
            identity.email = Some(email);
            identity.email_verified = info.email_verified.map(|v| v.is_true());
        }
        if identity.name.is_none() {
            identity.name = info.name.filter(|n| !n.trim().is_empty());
        }
        Ok(())
    }

    /// The key `kid` names (or the only key, when the token names none): from the
    /// cache, else from the provider, fetched again at most every few seconds.
    async fn key(&self, jwks_uri: &str, kid: Option<&str>) -> Result<Jwk, UpstreamError> {
        let mut held = self.keys.lock().await;
        if let Some(found) = held.as_ref().and_then(|k| find_key(&k.set, kid)) {
            return Ok(found);
        }
        let recent = held
            .as_ref()
            .is_some_and(|k| k.fetched.elapsed() < Duration::from_secs(JWKS_REFETCH_SECS));
        if recent {
            return Err(UpstreamError::BadIdToken(
                "it is signed with an unknown key",
            ));
        }
        let set: JwkSet = self.get_json(jwks_uri, None).await?;
        let found = find_key(&set, kid);
        *held = Some(Keys {
            set,
            fetched: Instant::now(),
        });
        found.ok_or(UpstreamError::BadIdToken(
            "it is signed with an unknown key",
        ))
    }

    /// GitHub's user (`GET /user`) and its primary verified email (`GET /user/emails`):
    /// the identity is the numeric user id, never the login or the email.
    pub async fn github_user(
        &self,
        api_base: &str,
        access_token: &str,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        #[derive(Deserialize)]
        struct User {
            id: u64,
            #[serde(default)]
            name: Option<String>,
            #[serde(default)]
            login: Option<String>,
        }
        #[derive(Deserialize)]
        struct Address {
            email: String,
            #[serde(default)]
            primary: bool,
            #[serde(default)]
            verified: bool,
        }
        let user: User = self
            .get_json(&format!("{api_base}/user"), Some(access_token))
            .await?;
        let emails: Vec<Address> = self
            .get_json(&format!("{api_base}/user/emails"), Some(access_token))
            .await?;
        let primary = emails.into_iter().find(|a| a.primary && a.verified);
        Ok(UpstreamIdentity {
            subject: user.id.to_string(),
            email_verified: Some(primary.is_some()),
            email: primary.map(|a| a.email),
            name: user.name.or(user.login),
        })
    }
}

fn find_key(set: &JwkSet, kid: Option<&str>) -> Option<Jwk> {
    let signing = |k: &&Jwk| {
        k.common
            .public_key_use
            .as_ref()
            .is_none_or(|u| *u == jsonwebtoken::jwk::PublicKeyUse::Signature)
    };
    match kid {
        Some(kid) => set
            .keys
            .iter()
            .filter(signing)
            .find(|k| k.common.key_id.as_deref() == Some(kid))
            .cloned(),
        None => {
            let mut keys = set.keys.iter().filter(signing);
            match (keys.next(), keys.next()) {
                (Some(only), None) => Some(only.clone()),
                _ => None,
            }
        }
    }
}

fn unavailable(e: reqwest::Error) -> UpstreamError {
    // reqwest's message names the URL; it carries no secret of ours (the code and
    // the client secret are in the body or a header).
    UpstreamError::Unavailable(e.without_url().to_string())
}

async fn read_body(res: reqwest::Response) -> Result<Vec<u8>, UpstreamError> {
    if res.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(UpstreamError::Unavailable("the answer is too large".into()));
    }
    let body = res.bytes().await.map_err(unavailable)?;
    if body.len() > MAX_BODY {
        return Err(UpstreamError::Unavailable("the answer is too large".into()));
    }
    Ok(body.to_vec())
}
