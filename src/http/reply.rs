//! What the surfaces answer alike: a sign-in's tokens (and the refresh cookie), the
//! `no-store` headers, a required field, an account error's status, a date. Each
//! surface uses these; none borrows them from another.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use crate::accounts::AccountError;
use crate::config::Settings;
use crate::domain::Invalid;
use crate::sessions::SignIn;
use crate::signin::flow::{Finished, Pending};

/// A signed-in session: the account token, the refresh token, and how long the
/// account token lives.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// An account token: an HS512 JWT (or EdDSA/ES256 with `jwt.algorithm`) with
    /// `sid` and `auth_time` claims.
    pub token: String,
    /// Exchanges at `POST /auth/refresh` for the next tokens; single-use.
    pub refresh_token: String,
    /// The account token's lifetime, seconds.
    pub expires_in: i64,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
}

impl From<SignIn> for TokenResponse {
    fn from(s: SignIn) -> Self {
        TokenResponse {
            token: s.token,
            refresh_token: s.refresh_token,
            expires_in: s.expires_in,
            token_type: "Bearer",
        }
    }
}

/// A first factor was proven, and the account owes its second: no token (a client
/// written for the tokens' shape finds none, and fails closed). `POST /auth/mfa/verify`
/// with the `mfa_token` and a code answers the tokens.
#[derive(Serialize, ToSchema)]
pub struct MfaRequiredResponse {
    /// Always `true`.
    pub mfa_required: bool,
    /// For `POST /auth/mfa/verify` (or, with `enroll_totp`, the enrolment routes);
    /// single-use, valid `expires_in` seconds and five codes.
    pub mfa_token: String,
    /// `totp` and `recovery_code`; or `enroll_totp` alone (`accounts.require_mfa`, the
    /// account has no factor yet).
    #[schema(example = json!(["totp", "recovery_code"]))]
    pub methods: Vec<&'static str>,
    pub expires_in: i64,
    /// As a password login answers it (`/auth/login` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

impl MfaRequiredResponse {
    pub fn new(pending: Pending, device_token: Option<String>) -> Self {
        MfaRequiredResponse {
            mfa_required: true,
            mfa_token: pending.token,
            methods: pending.methods,
            expires_in: pending.expires_in,
            device_token,
        }
    }
}

/// `200 {"mfa_required": true, …}`, `no-store`.
pub fn mfa_required(pending: Pending) -> Response {
    let mut res = axum::Json(MfaRequiredResponse::new(pending, None)).into_response();
    no_store(&mut res);
    res
}

/// The answer of a browser-facing sign-in: [`signed_in`], or [`mfa_required`].
pub fn finished(settings: &Settings, secure: bool, finished: Finished) -> Response {
    match finished {
        Finished::Session(sign_in) => signed_in(settings, secure, sign_in),
        Finished::SecondFactor(pending) => mfa_required(pending),
    }
}

/// The tokens of a sign-in, `no-store`.
pub fn token_response(sign_in: SignIn) -> Response {
    let mut res = axum::Json(TokenResponse::from(sign_in)).into_response();
    no_store(&mut res);
    res
}

/// The answer of a browser-facing sign-in or refresh: the tokens, and in cookie mode
/// the refresh cookie (`secure`: [`SecureCookies`](super::client::SecureCookies)).
pub fn signed_in(settings: &Settings, secure: bool, sign_in: SignIn) -> Response {
    let refresh_token = sign_in.refresh_token.clone();
    signed_in_as(
        settings,
        secure,
        &refresh_token,
        TokenResponse::from(sign_in),
    )
}

/// [`signed_in`] with a body of the route's own that carries the tokens.
pub fn signed_in_as(
    settings: &Settings,
    secure: bool,
    refresh_token: &str,
    body: impl Serialize,
) -> Response {
    let mut res = axum::Json(body).into_response();
    no_store(&mut res);
    if settings.session.cookie {
        let cookie = refresh_cookie(settings, secure, Some(refresh_token));
        res.headers_mut().append(header::SET_COOKIE, cookie);
    }
    res
}

/// The refresh cookie's name. On https (`secure`, [`SecureCookies`](super::client::SecureCookies)) it is `__Host-`:
/// the browser then holds it to `Secure`, `Path=/` and no `Domain`, so no other host (a
/// sibling subdomain) can set or shadow it. On plain http (development) it is scoped
/// to the `/auth` routes.
pub fn refresh_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-gatehouse-refresh"
    } else {
        "gatehouse-refresh"
    }
}

/// `Set-Cookie` for the refresh token, or (`None`) clearing it.
pub fn refresh_cookie(settings: &Settings, secure: bool, token: Option<&str>) -> HeaderValue {
    let name = refresh_cookie_name(secure);
    let scope = if secure {
        "Path=/; Secure"
    } else {
        "Path=/auth"
    };
    let (value, max_age) = match token {
        Some(token) => (token, settings.session.absolute_lifetime_secs),
        None => ("", 0),
    };
    let cookie = format!("{name}={value}; HttpOnly; SameSite=Strict; {scope}; Max-Age={max_age}");
    HeaderValue::from_str(&cookie).expect("refresh tokens and cookie names are header-safe")
}

pub fn required(value: Option<String>, field: &str) -> Result<String, Invalid> {
    value.ok_or_else(|| Invalid::missing(field))
}

pub fn account_error(e: AccountError) -> ApiError {
    match e {
        AccountError::InvalidCredentials => ApiError::InvalidCredentials,
        AccountError::EmailNotVerified => ApiError::Forbidden(
            "Verify your email address first: follow the link mailed to it.".into(),
        ),
        AccountError::NoSuchAccount => ApiError::Unauthorized,
        AccountError::EmailTaken => {
            ApiError::Conflict("An account with this email already exists.".into())
        }
        AccountError::LockedOut { retry_after_secs } | AccountError::Busy { retry_after_secs } => {
            ApiError::TooManyRequests { retry_after_secs }
        }
        AccountError::Disabled => ApiError::AccountDisabled,
        AccountError::Internal(e) => ApiError::Internal(e),
    }
}

/// The binding cookie's name: `__Host-` on https.
pub fn binding_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-gatehouse-social"
    } else {
        "gatehouse-social"
    }
}

/// `Set-Cookie` for the binding (`None`: cleared). On https it is `SameSite=None` so
/// that a provider's `form_post` (Apple) carries it back; on http (development) `Lax`,
/// which a top-level redirect back carries.
pub fn binding_cookie(secure: bool, value: Option<&str>, max_age: i64) -> HeaderValue {
    let name = binding_cookie_name(secure);
    let (value, max_age) = value.map_or(("", 0), |v| (v, max_age));
    let attributes = if secure {
        "Path=/; Secure; SameSite=None"
    } else {
        "Path=/; SameSite=Lax"
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly; {attributes}; Max-Age={max_age}"
    ))
    .expect("binding values are header-safe")
}

/// A `302` to the provider, the binding cookie set.
pub fn to_provider(
    settings: &Settings,
    secure: bool,
    begun: crate::signin::social::Begun,
) -> Response {
    let mut res = StatusCode::FOUND.into_response();
    let h = res.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&begun.authorize_url) {
        h.insert(header::LOCATION, location);
    }
    h.append(
        header::SET_COOKIE,
        binding_cookie(
            secure,
            Some(begun.binding.expose()),
            settings.social.pending_ttl_secs,
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    no_store(&mut res);
    res
}

pub fn no_store(res: &mut Response) {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
