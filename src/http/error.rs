//! The HTTP error of the password-auth and account surface, mapped to responses in
//! one place. 5xx bodies carry only an id; the cause goes to the log under that id.
//! (The SelfKey and OwnID surfaces have wire formats of their own.)

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::Invalid;

/// The JSON body of every error on this surface.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub const UNPARSABLE: &str = "Unable to parse JSON request";

/// The one answer to a disabled account, whatever it tried (`error`: `account_disabled`).
pub const ACCOUNT_DISABLED: &str = "This account is disabled.";

/// The answer to a change to how the account is reached from a session whose sign-in
/// is too old, on every surface (`error` or, on the SelfKey routes, `code`).
pub const RECENT_SIGN_IN_REQUIRED: &str = "recent_sign_in_required";
pub const SIGN_IN_AGAIN: &str = "Sign in again to do this: your last sign-in is too long ago.";

/// The answer to such a change from a session without the second factor, for an
/// account that has one (`error` or, on the SelfKey routes, `code`).
pub const SECOND_FACTOR_REQUIRED: &str = "second_factor_required";
pub const SIGN_IN_WITH_SECOND_FACTOR: &str =
    "Sign in again with your second factor to do this: this session was signed in without it.";

/// The message of every unknown route.
pub const NO_ROUTE: &str = "No such route.";

/// `WWW-Authenticate` of an expired account token (RFC 6750 §3.1).
pub const EXPIRED_CHALLENGE: &str =
    r#"Bearer error="invalid_token", error_description="The access token expired""#;

/// `WWW-Authenticate` of any other refused account token.
pub const INVALID_CHALLENGE: &str =
    r#"Bearer error="invalid_token", error_description="The access token is invalid""#;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field is missing or invalid.
    #[error("{0}")]
    BadRequest(String),
    /// The body is not JSON of the right shape, has the wrong type, or is too large.
    #[error("{0}")]
    Unparsable(String),
    #[error("Invalid credentials")]
    InvalidCredentials,
    /// No account token (`WWW-Authenticate: Bearer`, RFC 6750 §3.1: no error code).
    #[error("unauthorized")]
    Unauthorized,
    /// An account token was sent and refused: `error="invalid_token"`, its
    /// description saying whether it expired (then a refresh gets a fresh one).
    #[error("invalid token")]
    InvalidToken { expired: bool },
    /// A credential other than a bearer token (a refresh token) was refused: 401.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Forbidden(String),
    /// The session's sign-in is too old for a change to how the account is reached
    /// ([`crate::sessions::StepUp`]): `403`, `error`: `recent_sign_in_required`.
    #[error("a recent sign-in is required")]
    SignInAgain,
    /// The account has a second factor and the session's sign-in did not give it
    /// ([`crate::sessions::StepUp`]): `403`, `error`: `second_factor_required`.
    #[error("a sign-in with the second factor is required")]
    SecondFactorRequired,
    /// Any other refusal with a stable `error` code.
    #[error("{2}")]
    Coded(StatusCode, &'static str, String),
    /// The account is disabled: its sign-ins, refreshes and tokens are refused.
    #[error("the account is disabled")]
    AccountDisabled,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: i64 },
    #[error("request timed out")]
    Timeout,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::BadRequest(e.0)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message, error) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m, None),
            ApiError::Unparsable(m) => (StatusCode::BAD_REQUEST, m, Some(UNPARSABLE.to_string())),
            ApiError::InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "Invalid credentials".to_string(),
                None,
            ),
            ApiError::Unauthorized => return bearer_challenge("Bearer"),
            ApiError::InvalidToken { expired: true } => return bearer_challenge(EXPIRED_CHALLENGE),
            ApiError::InvalidToken { expired: false } => {
                return bearer_challenge(INVALID_CHALLENGE);
            }
            ApiError::Refused(m) => (StatusCode::UNAUTHORIZED, m, None),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m, None),
            ApiError::SignInAgain => (
                StatusCode::FORBIDDEN,
                SIGN_IN_AGAIN.to_string(),
                Some(RECENT_SIGN_IN_REQUIRED.to_string()),
            ),
            ApiError::SecondFactorRequired => (
                StatusCode::FORBIDDEN,
                SIGN_IN_WITH_SECOND_FACTOR.to_string(),
                Some(SECOND_FACTOR_REQUIRED.to_string()),
            ),
            ApiError::Coded(status, code, message) => (status, message, Some(code.to_string())),
            ApiError::AccountDisabled => (
                StatusCode::FORBIDDEN,
                ACCOUNT_DISABLED.to_string(),
                Some("account_disabled".to_string()),
            ),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m, None),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m, None),
            ApiError::TooManyRequests { retry_after_secs } => {
                let body = ErrorBody {
                    message: "Too many requests; try again later.".into(),
                    error: None,
                };
                let mut res = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
                res.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs.max(1)),
                );
                return res;
            }
            ApiError::Timeout => (
                StatusCode::REQUEST_TIMEOUT,
                "The request took too long.".to_string(),
                None,
            ),
            ApiError::Internal(cause) => {
                let id = crate::crypto::random_id();
                tracing::error!(error_id = %id, cause = ?cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal server error".to_string(),
                    Some(id),
                )
            }
        };
        (status, axum::Json(ErrorBody { message, error })).into_response()
    }
}

/// 401 with `challenge` as `WWW-Authenticate`; the body is the same whatever the reason.
fn bearer_challenge(challenge: &'static str) -> Response {
    let body = ErrorBody {
        message: "A valid bearer token is required.".into(),
        error: None,
    };
    let mut res = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    res
}
