//! Authentication as an extractor: a handler that takes [`Session`] runs only for a
//! request with a valid account token whose session still lives.

use std::ops::Deref;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use super::client;
use super::error::ApiError;
use crate::domain::unix_now;
use crate::sessions::{Authenticated, Device, SessionError, StepUp};
use crate::store::AccountProfile;

/// The signed-in account, from `Authorization: Bearer <account token>`; its fields
/// (`account`, `session`, `claims`) through [`Authenticated`].
#[derive(Debug)]
pub struct Session(pub Authenticated);

impl Deref for Session {
    type Target = Authenticated;

    fn deref(&self) -> &Authenticated {
        &self.0
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or(ApiError::Unauthorized)?;
        match app.sessions.authenticate(token).await {
            Ok(authenticated) => Ok(Session(authenticated)),
            Err(e) => Err(refused(e)),
        }
    }
}

/// A [`Session`] allowed to change how its account is reached (add or remove a way in
/// or a factor, change the address, delete the account): every such route takes this,
/// or calls [`RecentSession::check`], so the rule ([`StepUp`]) is applied in one place.
/// Refused with `403 recent_sign_in_required`, or `403 second_factor_required` when the
/// account has a second factor and the session's sign-in did not give it.
#[derive(Debug)]
pub struct RecentSession(pub Session);

impl RecentSession {
    pub async fn check(app: &AppState, session: Session) -> Result<RecentSession, ApiError> {
        if !StepUp::of(&app.settings).allows(&session, unix_now()) {
            return Err(ApiError::SignInAgain);
        }
        second_factor_given(app, &session).await?;
        Ok(RecentSession(session))
    }
}

/// Refuses a session without the second factor of an account that has one (read only
/// for such a session: one whose sign-in gave it needs no read).
pub async fn second_factor_given(app: &AppState, session: &Authenticated) -> Result<(), ApiError> {
    if !StepUp::owes_second_factor(session) {
        return Ok(());
    }
    if app.store.mfa().has_second_factor(&session.account).await? {
        return Err(ApiError::SecondFactorRequired);
    }
    Ok(())
}

impl Deref for RecentSession {
    type Target = Authenticated;

    fn deref(&self) -> &Authenticated {
        &self.0
    }
}

impl FromRequestParts<AppState> for RecentSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, app).await?;
        RecentSession::check(app, session).await
    }
}

/// The signed-in account with its profile, for `/auth/me`: the session check and the
/// profile's read are one database call.
#[derive(Debug)]
pub struct SessionWithProfile(pub Authenticated, pub AccountProfile);

impl FromRequestParts<AppState> for SessionWithProfile {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or(ApiError::Unauthorized)?;
        match app.sessions.authenticate_with_profile(token).await {
            Ok((authenticated, profile)) => Ok(SessionWithProfile(authenticated, profile)),
            Err(e) => Err(refused(e)),
        }
    }
}

/// The answer to an account token that was refused.
fn refused(e: SessionError) -> ApiError {
    match e {
        SessionError::Refused(reason) => {
            tracing::debug!(reason, "account token refused");
            ApiError::InvalidToken {
                expired: reason == crate::sessions::EXPIRED,
            }
        }
        SessionError::AccountDisabled => ApiError::AccountDisabled,
        SessionError::Internal(e) => ApiError::Internal(e),
    }
}

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive).
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The longest `User-Agent` kept with a session, in characters.
const MAX_USER_AGENT: usize = 256;

/// The device signing in: its `User-Agent` (cut to 256 characters) and address.
impl FromRequestParts<AppState> for Device {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(MAX_USER_AGENT).collect::<String>())
            .filter(|ua| !ua.is_empty());
        Ok(Device {
            user_agent,
            ip: client::client_of(parts, app).ok().map(|ip| ip.to_string()),
        })
    }
}
