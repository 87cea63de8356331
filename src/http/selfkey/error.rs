//! The SelfKey surface's errors, in the LWS wire format: `{"code","message"}`, and
//! `redirectTo` on `/login`, whose page library navigates to whatever it gets back.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::crypto::jwt::{TokenError, TokenKind, peek_claims};
use crate::http::error::ApiError;
use crate::signin::selfkey::SelfKeyError;

/// The body of every error on the SelfKey routes.
#[derive(Debug, Serialize, ToSchema)]
pub struct SelfKeyErrorBody {
    #[schema(example = "invalid_signature")]
    pub code: String,
    #[schema(example = "Invalid Signature")]
    pub message: String,
    /// On `/login` only: where the page goes next.
    #[serde(rename = "redirectTo", skip_serializing_if = "Option::is_none")]
    pub redirect_to: Option<String>,
    /// On a 500 only: the id under which the cause is logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug)]
pub struct SelfKeyApiError {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    redirect_to: Option<String>,
    cause: Option<anyhow::Error>,
    /// `WWW-Authenticate` of a 401.
    challenge: &'static str,
}

impl SelfKeyApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        SelfKeyApiError {
            status,
            code,
            message: message.into(),
            redirect_to: None,
            cause: None,
            challenge: "Bearer",
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn internal(cause: anyhow::Error) -> Self {
        SelfKeyApiError {
            cause: Some(cause),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Internal server error",
            )
        }
    }

    pub fn no_auth_token() -> Self {
        Self::bad_request("no_auth_token", "No auth token provided")
    }

    /// No valid account token on the routes a signed-in person uses.
    pub fn not_signed_in() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "A valid account token is required.",
        )
    }

    /// The account is disabled: the same `403` as every other route says it with.
    pub fn account_disabled() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "account_disabled",
            crate::http::error::ACCOUNT_DISABLED,
        )
    }

    /// A token that did not verify as `expected`, reported under `code`: 400 when it
    /// is not even a token of that kind (malformed, another kind), 401 when it is one
    /// but forged, expired or from elsewhere. The unverified `kind` claim only picks
    /// the status; nothing is granted on it.
    pub fn token_refused(
        code: &'static str,
        expected: TokenKind,
        token: &str,
        error: TokenError,
    ) -> Self {
        let claimed_kind =
            || peek_claims(token).and_then(|claims| claims.get("kind")?.as_str().map(String::from));
        let other_kind = match error {
            TokenError::Malformed | TokenError::Algorithm | TokenError::Kind => true,
            TokenError::Signature => claimed_kind().as_deref() != Some(expected.name()),
            TokenError::Expired | TokenError::NotYetValid | TokenError::Issuer => false,
        };
        tracing::debug!(reason = %error, expected = expected.name(), "token refused");
        if other_kind {
            Self::bad_request(code, "Invalid token: not a token of the expected kind")
        } else {
            Self::new(
                StatusCode::UNAUTHORIZED,
                code,
                "Invalid token: forged, expired or already used",
            )
        }
    }

    /// Adds the `redirectTo` that `/login` answers carry.
    pub fn redirecting(mut self, to: &str) -> Self {
        self.redirect_to = Some(to.to_string());
        self
    }
}

/// The account-token check of the routes a signed-in person uses, in this surface's
/// format: a disabled account is `403 account_disabled` here as on every other route,
/// and a failing database a `500`, not a missing token.
impl From<ApiError> for SelfKeyApiError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::AccountDisabled => Self::account_disabled(),
            ApiError::SignInAgain => Self::new(
                StatusCode::FORBIDDEN,
                crate::http::error::RECENT_SIGN_IN_REQUIRED,
                crate::http::error::SIGN_IN_AGAIN,
            ),
            ApiError::SecondFactorRequired => Self::new(
                StatusCode::FORBIDDEN,
                crate::http::error::SECOND_FACTOR_REQUIRED,
                crate::http::error::SIGN_IN_WITH_SECOND_FACTOR,
            ),
            ApiError::Internal(cause) => Self::internal(cause),
            ApiError::InvalidToken { expired } => SelfKeyApiError {
                challenge: if expired {
                    crate::http::error::EXPIRED_CHALLENGE
                } else {
                    crate::http::error::INVALID_CHALLENGE
                },
                ..Self::not_signed_in()
            },
            _ => Self::not_signed_in(),
        }
    }
}

/// Everything the service can refuse, except token errors: those depend on which
/// token the route expected ([`SelfKeyApiError::token_refused`]).
impl From<SelfKeyError> for SelfKeyApiError {
    fn from(e: SelfKeyError) -> Self {
        use SelfKeyError as E;
        let conflict = |code, message: &'static str| Self::new(StatusCode::CONFLICT, code, message);
        match e {
            E::Token(_) | E::LoginTokenSpent => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "Invalid token: forged, expired or already used",
            ),
            E::ChallengeSpent => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_auth_token",
                "The challenge was already answered or has expired",
            ),
            E::SignatureMismatch => Self::bad_request("invalid_signature", "Invalid Signature"),
            E::UnknownWallet => Self::new(
                StatusCode::NOT_FOUND,
                "user_does_not_exist",
                "User with provided public key does not exist",
            ),
            E::AccountGone => Self::new(
                StatusCode::NOT_FOUND,
                "user_does_not_exist",
                "The account of this token no longer exists",
            ),
            E::AccountExists => conflict(
                "account_exists",
                "An account with this email exists: sign in and link your wallet from your account.",
            ),
            E::WalletTaken => conflict("wallet_linked", "This wallet belongs to another account."),
            E::WalletChanged => conflict(
                "try_again",
                "The wallet changed during this request; try again.",
            ),
            E::InvalidLinkToken => Self::bad_request(
                "invalid_link_token",
                "The link token is invalid, expired or already used.",
            ),
            E::WalletNotFound => Self::new(
                StatusCode::NOT_FOUND,
                "wallet_not_found",
                "This account has no such wallet.",
            ),
            E::LastSignInMethod => conflict(
                "last_sign_in_method",
                "This wallet is the account's last way to sign in: set a password first (POST /auth/password/change, right after signing in) or add a passkey or another wallet.",
            ),
            E::AccountDisabled => Self::account_disabled(),
            E::Attributes(e) => {
                use crate::signin::selfkey::AttributeError as A;
                let code = match e {
                    A::Empty => "no_attributes",
                    A::Missing(_) => "missing_attribute",
                    A::NotAList
                    | A::InvalidEmail(_)
                    | A::MissingDocument(_)
                    | A::DocumentReused(_) => "invalid_attributes",
                };
                Self::bad_request(code, e.to_string())
            }
            E::Internal(cause) => Self::internal(cause),
        }
    }
}

impl IntoResponse for SelfKeyApiError {
    fn into_response(self) -> Response {
        let error = self.cause.map(|cause| {
            let id = crate::crypto::random_id();
            tracing::error!(error_id = %id, cause = ?cause, "internal error");
            id
        });
        let body = SelfKeyErrorBody {
            code: self.code.to_string(),
            message: self.message.into_owned(),
            redirect_to: self.redirect_to,
            error,
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(self.challenge),
            );
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body was never read: the connection cannot carry
            // another request, and the client must not try.
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        res
    }
}
