//! The second factor's routes: the second step of a pending sign-in
//! (`POST /auth/mfa/verify`), TOTP enrolment, recovery codes and the account's
//! factors. The rules are in [`crate::signin::second_factor`].
//!
//! Every change takes a [`RecentSession`]: a recent sign-in and, once the account has a
//! second factor, one that gave it. With `accounts.require_mfa`, a pending sign-in that
//! may only enroll (`enroll_totp`) enrolls with its `mfa_token` instead, and the
//! confirmation signs in.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::client::SecureCookies;
use super::error::{ApiError, ErrorBody};
use super::json::JsonBody;
use super::reply::{TokenResponse, no_store, required, signed_in, signed_in_as};
use super::session::{RecentSession, Session, bearer_token};
use crate::app::App;
use crate::sessions::Device;
use crate::signin::second_factor::{Enrollment, FactorError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(verify))
        .routes(routes!(verify_passkey))
        .routes(routes!(enroll, remove))
        .routes(routes!(confirm))
        .routes(routes!(recovery_codes))
        .routes(routes!(status))
}

#[derive(Deserialize, ToSchema)]
pub struct VerifyRequest {
    /// The `mfa_token` a sign-in answered with `mfa_required`.
    #[schema(value_type = String, required)]
    mfa_token: Option<String>,
    /// A code of the account's authenticator app (6 digits), or one of its recovery
    /// codes.
    #[schema(value_type = String, required, example = "123456")]
    code: Option<String>,
}

/// The second step of a sign-in that answered `mfa_required`: a TOTP code or a
/// recovery code. The `mfa_token` takes five codes, right or wrong, then it is void.
#[utoipa::path(post, path = "/auth/mfa/verify", tag = "mfa", request_body = VerifyRequest,
    responses(
        (status = 200, description = "Signed in: the tokens carry `amr` (the factors) and `acr` `aal2`", body = TokenResponse),
        (status = 400, description = "Missing field or unparsable body", body = ErrorBody),
        (status = 401, description = "`invalid_code` (wrong, or its time step used already); or `invalid_mfa_token` (unknown, expired, used, or out of tries)", body = ErrorBody),
        (status = 403, description = "`enrollment_required`: the sign-in may only enroll a factor (accounts.require_mfa); or `account_disabled`", body = ErrorBody),
        (status = 429, description = "Too many wrong codes for this account lately; see Retry-After", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn verify(
    State(app): State<AppState>,
    SecureCookies(secure): SecureCookies,
    device: Device,
    JsonBody(req): JsonBody<VerifyRequest>,
) -> Result<Response, ApiError> {
    let token = required(req.mfa_token, "mfa_token")?;
    let code = required(req.code, "code")?;
    let verified = app
        .second_factor
        .verify(&token, &code, &device)
        .await
        .map_err(factor_error)?;
    if let Some(left) = verified.recovery_code_used {
        tell_owner(&app, &verified.account, "recovery_code_used", left).await;
    }
    Ok(signed_in(&app.settings, secure, verified.sign_in))
}

#[derive(Deserialize, ToSchema)]
pub struct PasskeyVerifyRequest {
    /// The `mfa_token` a sign-in answered with `mfa_required` (`methods` has `passkey`).
    #[schema(value_type = String, required)]
    mfa_token: Option<String>,
    /// A ceremony of `POST /auth/passkeys/login/options`.
    #[schema(value_type = String, required)]
    ceremony: Option<String>,
    /// What `navigator.credentials.get` returned, in its JSON form.
    #[schema(value_type = Object, required)]
    credential: Option<webauthn_rs_proto::PublicKeyCredential>,
}

/// The second step with a passkey of the account (its ceremony begun at
/// `POST /auth/passkeys/login/options`): after a password, a passkey is the second
/// factor. A passkey of another account counts as a wrong attempt.
#[utoipa::path(post, path = "/auth/mfa/passkey", tag = "mfa", request_body = PasskeyVerifyRequest,
    responses(
        (status = 200, description = "Signed in: `amr` has `hwk` and `mfa`", body = TokenResponse),
        (status = 400, description = "Missing field or unparsable body", body = ErrorBody),
        (status = 401, description = "`passkey_refused` (the assertion did not verify, or is another account's passkey); or `invalid_mfa_token`", body = ErrorBody),
        (status = 403, description = "`enrollment_required`; or `account_disabled`", body = ErrorBody),
        (status = 429, description = "Too many wrong attempts for this account lately; see Retry-After", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn verify_passkey(
    State(app): State<AppState>,
    SecureCookies(secure): SecureCookies,
    device: Device,
    JsonBody(req): JsonBody<PasskeyVerifyRequest>,
) -> Result<Response, ApiError> {
    let token = required(req.mfa_token, "mfa_token")?;
    let ceremony = required(req.ceremony, "ceremony")?;
    let credential = req
        .credential
        .ok_or_else(|| crate::domain::Invalid::missing("credential"))?;
    let proven = match app.passkeys.finish_login(&ceremony, &credential).await {
        Ok(account) => Some(account),
        Err(crate::signin::passkeys::PasskeyError::Internal(e)) => {
            return Err(ApiError::Internal(e));
        }
        Err(e) => {
            tracing::info!(error = %e, "second factor: a passkey assertion was refused");
            None
        }
    };
    let verified = app
        .second_factor
        .verify_passkey(&token, proven.as_ref(), &device)
        .await
        .map_err(factor_error)?;
    Ok(signed_in(&app.settings, secure, verified.sign_in))
}

/// Mails the owner about their second factor, when mail is on; a failure to queue it
/// is logged, not the request's.
pub async fn tell_owner(app: &App, account: &crate::domain::AccountId, event: &str, left: i64) {
    if let Some(lifecycle) = &app.lifecycle
        && let Err(e) = lifecycle
            .send_second_factor_notice(account, event, left)
            .await
    {
        tracing::warn!(account = %account.0, error = %e, "second factor: the notice was not queued");
    }
}

#[derive(Deserialize, ToSchema, Default)]
pub struct EnrollRequest {
    /// Only for a sign-in that must enroll (`enroll_totp`), instead of a Bearer token.
    #[schema(value_type = String, required = false)]
    mfa_token: Option<String>,
}

/// A new enrolment: shown once.
#[derive(Serialize, ToSchema)]
pub struct EnrollResponse {
    /// Base32, to type into an authenticator app.
    secret: String,
    /// `otpauth://totp/…`: SHA-1, 6 digits, 30 s.
    otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    qr_svg: String,
}

impl From<Enrollment> for EnrollResponse {
    fn from(e: Enrollment) -> Self {
        EnrollResponse {
            secret: e.secret,
            otpauth_uri: e.otpauth_uri,
            qr_svg: e.qr_svg,
        }
    }
}

/// The account a change acts for: the Bearer session's (recent, and with the second
/// factor when the account has one), or, without an `Authorization` header, the
/// account of a pending sign-in that must enroll (`mfa_token`).
enum Actor {
    Session(RecentSession),
    Enrolling(crate::store::mfa::PendingAttempt, String),
}

impl Actor {
    fn account(&self) -> &crate::domain::AccountId {
        match self {
            Actor::Session(s) => &s.account,
            Actor::Enrolling(p, _) => &p.account,
        }
    }
}

async fn actor(
    app: &AppState,
    parts: &axum::http::request::Parts,
    mfa_token: Option<String>,
) -> Result<Actor, ApiError> {
    if bearer_token(parts).is_some() || mfa_token.is_none() {
        let mut parts = parts.clone();
        let session = <Session as axum::extract::FromRequestParts<AppState>>::from_request_parts(
            &mut parts, app,
        )
        .await?;
        return Ok(Actor::Session(RecentSession::check(app, session).await?));
    }
    let token = mfa_token.unwrap_or_default();
    let attempt = app
        .second_factor
        .enrolling(&token)
        .await
        .map_err(factor_error)?;
    Ok(Actor::Enrolling(attempt, token))
}

/// Starts a TOTP enrolment (replacing one not confirmed yet). It counts only once
/// confirmed.
#[utoipa::path(post, path = "/auth/mfa/totp", tag = "mfa", request_body = EnrollRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The secret, its URI and QR code, shown once", body = EnrollResponse),
        (status = 400, description = "An unparsable body (a pending sign-in's enrolment sends `{\"mfa_token\"}`, a Bearer one none)", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token; or `invalid_mfa_token`", body = ErrorBody),
        (status = 403, description = "`recent_sign_in_required`, `second_factor_required`, `account_disabled`", body = ErrorBody),
        (status = 409, description = "`already_enrolled`: remove the authenticator first", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn enroll(
    State(app): State<AppState>,
    parts: axum::http::request::Parts,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // A Bearer enrolment needs no body; a pending sign-in's sends its `mfa_token`.
    let req: EnrollRequest = if body.iter().all(u8::is_ascii_whitespace) {
        EnrollRequest::default()
    } else {
        super::json::parse(&body)?
    };
    let actor = actor(&app, &parts, req.mfa_token).await?;
    let account = app
        .accounts
        .profile(actor.account())
        .await
        .map_err(super::reply::account_error)?
        .ok_or(ApiError::Unauthorized)?
        .account;
    let enrollment = app
        .second_factor
        .enroll(&account)
        .await
        .map_err(factor_error)?;
    let mut res = axum::Json(EnrollResponse::from(enrollment)).into_response();
    no_store(&mut res);
    Ok(res)
}

#[derive(Deserialize, ToSchema)]
pub struct ConfirmRequest {
    /// A code the authenticator app shows now.
    #[schema(value_type = String, required, example = "123456")]
    code: Option<String>,
    /// Only for a sign-in that must enroll (`enroll_totp`), instead of a Bearer token.
    #[schema(value_type = String, required = false)]
    mfa_token: Option<String>,
}

/// The recovery codes: shown once.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesResponse {
    /// Ten single-use codes, each a way in when the authenticator is lost.
    recovery_codes: Vec<String>,
    /// With an `mfa_token`: the session the enrolment completes.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    session: Option<TokenResponse>,
}

/// Confirms the enrolment with a code: from then on every sign-in owes the factor.
/// The code's time step is used up (it will not also sign in).
#[utoipa::path(post, path = "/auth/mfa/totp/confirm", tag = "mfa", request_body = ConfirmRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Confirmed: the recovery codes, shown once (and, with an `mfa_token`, the session's tokens)", body = RecoveryCodesResponse),
        (status = 400, description = "Missing field or unparsable body", body = ErrorBody),
        (status = 401, description = "`invalid_code`; missing, invalid or expired token; or `invalid_mfa_token`", body = ErrorBody),
        (status = 403, description = "`recent_sign_in_required`, `second_factor_required`, `account_disabled`", body = ErrorBody),
        (status = 404, description = "`not_enrolled`: no enrolment to confirm", body = ErrorBody),
        (status = 409, description = "`already_enrolled`", body = ErrorBody),
        (status = 429, description = "Too many wrong codes for this account lately", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn confirm(
    State(app): State<AppState>,
    parts: axum::http::request::Parts,
    SecureCookies(secure): SecureCookies,
    device: Device,
    JsonBody(req): JsonBody<ConfirmRequest>,
) -> Result<Response, ApiError> {
    let actor = actor(&app, &parts, req.mfa_token).await?;
    let code = required(req.code, "code")?;
    let recovery_codes = app
        .second_factor
        .confirm(actor.account(), &code)
        .await
        .map_err(factor_error)?;
    let Actor::Enrolling(attempt, token) = actor else {
        let mut res = axum::Json(RecoveryCodesResponse {
            recovery_codes,
            session: None,
        })
        .into_response();
        no_store(&mut res);
        return Ok(res);
    };
    let sign_in = app
        .second_factor
        .complete_enrollment(&attempt, &token, &device)
        .await
        .map_err(factor_error)?;
    let cookie = sign_in.refresh_token.clone();
    let body = RecoveryCodesResponse {
        recovery_codes,
        session: Some(sign_in.into()),
    };
    Ok(signed_in_as(&app.settings, secure, &cookie, body))
}

/// Removes the authenticator and the recovery codes.
#[utoipa::path(delete, path = "/auth/mfa/totp", tag = "mfa",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "`recent_sign_in_required`, `second_factor_required`, `account_disabled`", body = ErrorBody),
        (status = 404, description = "`not_enrolled`", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn remove(
    State(app): State<AppState>,
    session: RecentSession,
) -> Result<StatusCode, ApiError> {
    app.second_factor
        .remove(&session.account)
        .await
        .map_err(factor_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new set of recovery codes; the old set stops working.
#[utoipa::path(post, path = "/auth/mfa/recovery-codes", tag = "mfa",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new codes, shown once", body = RecoveryCodesResponse),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "`recent_sign_in_required`, `second_factor_required`, `account_disabled`", body = ErrorBody),
        (status = 404, description = "`not_enrolled`: no confirmed authenticator", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn recovery_codes(
    State(app): State<AppState>,
    session: RecentSession,
) -> Result<Response, ApiError> {
    let recovery_codes = app
        .second_factor
        .regenerate_codes(&session.account)
        .await
        .map_err(factor_error)?;
    let mut res = axum::Json(RecoveryCodesResponse {
        recovery_codes,
        session: None,
    })
    .into_response();
    no_store(&mut res);
    Ok(res)
}

/// The second factors `/auth/me` lists.
#[derive(Serialize, ToSchema)]
pub struct SecondFactors {
    /// A confirmed TOTP authenticator.
    pub totp: bool,
    pub recovery_codes_left: i64,
}

/// The account's second factors (never their secrets).
#[derive(Serialize, ToSchema)]
pub struct FactorsResponse {
    /// A confirmed TOTP authenticator.
    pub totp: bool,
    pub recovery_codes_left: i64,
    /// Passkeys registered (each a sign-in of two factors by itself).
    pub passkeys: usize,
}

#[utoipa::path(get, path = "/auth/mfa", tag = "mfa",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account's factors", body = FactorsResponse),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "`account_disabled`", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn status(
    State(app): State<AppState>,
    session: super::session::SessionWithProfile,
) -> Result<axum::Json<FactorsResponse>, ApiError> {
    let super::session::SessionWithProfile(session, profile) = session;
    let summary = app
        .second_factor
        .summary(&session.account)
        .await
        .map_err(factor_error)?;
    Ok(axum::Json(FactorsResponse {
        totp: summary.totp,
        recovery_codes_left: summary.recovery_codes_left,
        passkeys: profile.passkeys.len(),
    }))
}

pub fn factor_error(e: FactorError) -> ApiError {
    let coded = |status, code, message: &str| ApiError::Coded(status, code, message.to_owned());
    match e {
        FactorError::NotPending => coded(
            StatusCode::UNAUTHORIZED,
            "invalid_mfa_token",
            "This sign-in is no longer pending: sign in again.",
        ),
        FactorError::EnrollFirst => coded(
            StatusCode::FORBIDDEN,
            "enrollment_required",
            "Enroll an authenticator first: POST /auth/mfa/totp with this mfa_token.",
        ),
        FactorError::WrongCode => coded(
            StatusCode::UNAUTHORIZED,
            "invalid_code",
            "The code is wrong or was used already.",
        ),
        FactorError::WrongPasskey => coded(
            StatusCode::UNAUTHORIZED,
            "passkey_refused",
            "The passkey was refused.",
        ),
        FactorError::TooManyFailures { retry_after_secs } => {
            ApiError::TooManyRequests { retry_after_secs }
        }
        FactorError::NotEnrolled => coded(
            StatusCode::NOT_FOUND,
            "not_enrolled",
            "The account has no such authenticator.",
        ),
        FactorError::AlreadyEnrolled => coded(
            StatusCode::CONFLICT,
            "already_enrolled",
            "The account has an authenticator: remove it first.",
        ),
        FactorError::Disabled => ApiError::AccountDisabled,
        FactorError::Internal(e) => ApiError::Internal(e),
    }
}
