//! Authentication as an extractor: a handler that takes [`Session`] runs only for a
//! request with a valid account token.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::accounts::AccountClaims;
use crate::crypto::jwt::Claims;
use crate::domain::AccountId;

/// The signed-in account, from `Authorization: Bearer <account token>`.
pub struct Session {
    pub account: AccountId,
    pub claims: Claims<AccountClaims>,
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or(ApiError::Unauthorized)?;
        let claims = app.accounts.verify_session(token).map_err(|e| {
            tracing::debug!(reason = %e, "account token refused");
            ApiError::Unauthorized
        })?;
        Ok(Session {
            account: AccountId(claims.sub.clone()),
            claims,
        })
    }
}

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive).
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
