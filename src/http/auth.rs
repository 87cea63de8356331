//! The seed's Auth Service: `/auth/register`, `/auth/login`, and `/auth/me`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::client::{SecureCookies, client_of};
use super::error::{ApiError, ErrorBody};
use super::json::JsonBody;
use super::reply::{
    MfaRequiredResponse, TokenResponse, account_error, finished, no_store, required, rfc3339,
    signed_in_as,
};
use super::session::SessionWithProfile;
use crate::accounts::AccountError;
use crate::domain::{Email, Invalid, Password, SignInMethod};
use crate::sessions::Device;
use crate::signin::flow::{Finished, Proof};
use crate::signin::password::LoginClient;
use crate::store::AccountProfile;

/// Documents the `bearer` scheme that `/auth/me` (and every route taking an account
/// token) names in its `security`, and the `wallet` scheme of the SelfKey wallet's own
/// tokens.
pub struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(description))
                    .build(),
            )
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        // Every route under `bearer` answers 403 `account_disabled` for a disabled
        // account; the wallet's tokens prove a key, not an account, so they have a
        // scheme of their own.
        components.add_security_scheme(
            "bearer",
            bearer("An account token (a JWT signed as `jwt.algorithm` says)"),
        );
        components.add_security_scheme(
            "wallet",
            bearer(
                "A SelfKey challenge token (answering it) or wallet token, as the wallet sends it",
            ),
        );
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(me))
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    // Optional in Rust so that a missing field gets the seed's message, but
    // documented as it must be sent.
    #[schema(example = "joebloggs@gmail.com", value_type = String, required, format = Email)]
    email: Option<String>,
    /// 8 characters to 1,024 bytes. Optional when `ownIdData` is given.
    #[schema(example = "password123", value_type = String, required = false, min_length = 8, max_length = 1024)]
    password: Option<String>,
    /// OwnID registration data: creates a passwordless account when no password is given.
    #[serde(rename = "ownIdData")]
    #[schema(value_type = String, required = false, min_length = 1)]
    own_id_data: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(example = "joebloggs@gmail.com", value_type = String, required, format = Email)]
    email: Option<String>,
    /// 8 characters to 1,024 bytes.
    #[schema(example = "password123", value_type = String, required, min_length = 8, max_length = 1024)]
    password: Option<String>,
    /// The `device_token` an earlier login on this device returned: failed logins
    /// from elsewhere do not lock this device out.
    #[schema(value_type = String, required = false)]
    device_token: Option<String>,
}

/// A password sign-in.
#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// The session's tokens, as every sign-in gives them.
    #[serde(flatten)]
    pub tokens: TokenResponse,
    /// Send it back as `device_token` on this device's next logins (valid
    /// `rate_limit.device_token_ttl_secs`, 90 days; each login returns a fresh one).
    pub device_token: String,
}

/// The signed-in account.
#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    id: String,
    email: Option<String>,
    /// The account's owner proved they receive mail at `email`. Until then the
    /// address is only what was typed in: do not trust it as an identity.
    email_verified: bool,
    /// RFC 3339, UTC.
    created_at: String,
    sign_in_methods: Vec<SignInMethod>,
    /// The account's second factors (never their secrets): a sign-in of any first
    /// factor but a passkey owes one of them.
    second_factors: super::mfa::SecondFactors,
}

/// The answer to every registration with `accounts.require_verified_email`.
pub const REGISTER_MESSAGE: &str =
    "Check your mailbox: we sent a mail to this address. Follow its link to go on.";

/// Creates an account and signs it in. With `accounts.require_verified_email`, it
/// answers `202` alike for a new and a registered address, and mails either a
/// verification link or a notice to the owner.
#[utoipa::path(post, path = "/auth/register", tag = "password", request_body = RegisterRequest,
    responses(
        (status = 200, description = "Registered; or, with accounts.require_mfa, `mfa_required` (`enroll_totp`)", body = TokenResponse),
        (status = 202, description = "With accounts.require_verified_email: a mail is on its way, whether or not the address had an account", body = super::lifecycle::MessageResponse),
        (status = 400, description = "Missing or invalid field, or unparsable body", body = ErrorBody),
        (status = 409, description = "The email is already registered", body = ErrorBody),
        (status = 429, description = "Too many requests from this address, or too many passwords being hashed; see Retry-After", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn register(
    State(app): State<AppState>,
    SecureCookies(secure): SecureCookies,
    device: Device,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> Result<Response, ApiError> {
    let email = Email::parse(&required(req.email, "email")?, "email")?;
    let ownid_data = match req.own_id_data {
        Some(data) => Some(app.ownid.parse_data(data)?),
        None => None,
    };
    let password = match (req.password, &ownid_data) {
        (Some(p), _) => Some(Password::parse(p)?),
        (None, Some(_)) => None,
        (None, None) => return Err(Invalid::missing("password").into()),
    };
    if app.settings.accounts.require_verified_email {
        let lifecycle = super::lifecycle::lifecycle(&app)?;
        lifecycle
            .register_unverified(&app.accounts, &email, password.as_ref(), ownid_data)
            .await
            .map_err(account_error)?;
        let body = super::lifecycle::MessageResponse {
            message: REGISTER_MESSAGE.into(),
        };
        return Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response());
    }
    let created = app
        .accounts
        .create(&email, password.as_ref(), ownid_data)
        .await
        .map_err(|e| match e {
            AccountError::EmailTaken => {
                ApiError::Conflict("An account with this email already exists.".into())
            }
            other => account_error(other),
        })?;
    let proof = if created.password_hash.is_some() {
        Proof::RegisteredWithPassword
    } else {
        Proof::RegisteredWithOwnId
    };
    let done = app
        .flow
        .finish(&created, proof, &device)
        .await
        .map_err(|e| account_error(e.into()))?;
    super::lifecycle::after_registration(&app, &email).await;
    Ok(finished(&app.settings, secure, done))
}

/// Signs in with email and password.
#[utoipa::path(post, path = "/auth/login", tag = "password", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; or, for an account with a second factor, `mfa_required` (no token: see `/auth/mfa/verify`)", body = LoginResponse),
        (status = 400, description = "Missing or invalid field, or unparsable body", body = ErrorBody),
        (status = 401, description = "Invalid credentials", body = ErrorBody),
        (status = 403, description = "With accounts.require_verified_email: the right password, but the address is not verified yet", body = ErrorBody),
        (status = 429, description = "Too many failed attempts for this account from this client, too many requests from this address, or too many passwords being hashed; see Retry-After", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn login(
    State(app): State<AppState>,
    parts: axum::http::request::Parts,
    SecureCookies(secure): SecureCookies,
    device: Device,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    // An unreadable forwarded address was refused already by the per-address limit;
    // with the limits off, the address is not used.
    let ip = client_of(&parts, &app).unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
    let email = Email::parse(&required(req.email, "email")?, "email")?;
    let password = Password::parse(required(req.password, "password")?)?;
    let client = LoginClient {
        address: super::client::bucket(ip),
        device_token: req.device_token,
    };
    let done = app
        .passwords
        .login(&email, &password, &client, &device)
        .await
        .map_err(account_error)?;
    let sign_in = match done.finished {
        Finished::Session(sign_in) => sign_in,
        Finished::SecondFactor(pending) => {
            let body = MfaRequiredResponse::new(pending, Some(done.device_token));
            let mut res = axum::Json(body).into_response();
            no_store(&mut res);
            return Ok(res);
        }
    };
    let cookie = sign_in.refresh_token.clone();
    let body = LoginResponse {
        tokens: sign_in.into(),
        device_token: done.device_token,
    };
    Ok(signed_in_as(&app.settings, secure, &cookie, body))
}

/// The signed-in account and its ways to sign in.
#[utoipa::path(get, path = "/auth/me", tag = "password",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = MeResponse),
        (status = 401, description = "Missing, invalid or expired token, or an ended session", body = ErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn me(
    State(app): State<AppState>,
    signed_in: SessionWithProfile,
) -> Result<axum::Json<MeResponse>, ApiError> {
    let SessionWithProfile(session, profile) = signed_in;
    let factors = app.store.mfa().factor_summary(&session.account).await?;
    let AccountProfile {
        account,
        wallets,
        passkeys,
    } = profile;
    let mut sign_in_methods = account.sign_in_methods(&wallets);
    sign_in_methods.extend(passkeys.into_iter().map(|p| SignInMethod::Passkey {
        id: p.id,
        name: p.name,
        created_at: p.created_at,
    }));
    if app.social.is_some() {
        let identities = app.store.social().identities(&session.account).await?;
        sign_in_methods.extend(identities.into_iter().map(|i| SignInMethod::Social {
            id: i.id,
            provider: i.provider,
            email: i.email,
            display_name: i.display_name,
            linked_at: i.linked_at,
        }));
    }
    Ok(axum::Json(MeResponse {
        created_at: rfc3339(account.created_at),
        email_verified: account.email_verified,
        id: account.id.0,
        email: account.email,
        sign_in_methods,
        second_factors: super::mfa::SecondFactors {
            totp: factors.totp,
            recovery_codes_left: factors.recovery_codes_left,
        },
    }))
}
