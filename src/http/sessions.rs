//! Sessions over HTTP: the answer every sign-in gives, `/auth/refresh`, `/auth/logout`
//! and `/auth/sessions`; in cookie mode, the refresh cookie and its CSRF defence.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::client::SecureCookies;
use super::error::{ApiError, ErrorBody};
use super::json;
use super::reply::{
    TokenResponse, no_store, refresh_cookie, refresh_cookie_name, rfc3339, signed_in,
};
use super::session::Session;
use crate::config::Settings;
use crate::domain::Invalid;
use crate::sessions::{Scope, SessionError};

/// The header a browser must send with a cookie refresh: a page on another site cannot
/// add it without a CORS preflight that only listed origins pass.
pub const CSRF_HEADER: &str = "x-gatehouse-csrf";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(list_sessions))
        .routes(routes!(end_session))
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The CSRF defence of a cookie refresh: the browser's `Origin` is `http.public_url`'s
/// or one of `http.cors_origins`, and the custom header is there.
fn csrf_checked(settings: &Settings, headers: &HeaderMap) -> bool {
    let has_header = headers
        .get(CSRF_HEADER)
        .is_some_and(|v| !v.as_bytes().is_empty());
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let public = settings.http.public_url.as_deref().and_then(origin_of);
    let listed = public
        .iter()
        .map(String::as_str)
        .chain(
            settings
                .http
                .cors_origins
                .iter()
                .map(|o| o.trim_end_matches('/')),
        )
        .any(|allowed| allowed.eq_ignore_ascii_case(origin));
    has_header && listed
}

/// `scheme://host[:port]` of an absolute URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// The refresh token of the last answer. In cookie mode it may instead come as the
    /// cookie, from a listed origin with the `X-Gatehouse-CSRF` header.
    #[schema(value_type = String)]
    refresh_token: Option<String>,
}

/// Exchanges a refresh token for the session's next tokens. The previous token,
/// presented again within `session.refresh_reuse_grace_secs`, gets the current ones;
/// after that it ends the session.
#[utoipa::path(post, path = "/auth/refresh", tag = "sessions", request_body = RefreshRequest,
    responses(
        (status = 200, description = "The next tokens", body = TokenResponse),
        (status = 400, description = "No refresh token (without session.cookie), or an unparsable body", body = ErrorBody),
        (status = 401, description = "Unknown, expired or revoked refresh token; in cookie mode, no body and no refresh cookie", body = ErrorBody),
        (status = 403, description = "A cookie refresh without the CSRF defence", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn refresh(
    State(app): State<AppState>,
    SecureCookies(secure): SecureCookies,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, ApiError> {
    let settings = &app.settings;
    let token = match body_token(req, settings).await? {
        Some(token) => token,
        None if settings.session.cookie => {
            let name = refresh_cookie_name(secure);
            let token = cookie(&headers, name).ok_or_else(|| no_refresh_cookie(name))?;
            if !csrf_checked(settings, &headers) {
                return Err(ApiError::Forbidden(
                    "A refresh by cookie needs an allowed Origin and the X-Gatehouse-CSRF header."
                        .into(),
                ));
            }
            token.to_owned()
        }
        None => return Err(Invalid::missing("refresh_token").into()),
    };
    match app.sessions.refresh(&token).await {
        Ok(sign_in) => Ok(signed_in(settings, secure, sign_in)),
        Err(SessionError::Refused(reason)) => {
            tracing::debug!(reason, "refresh refused");
            Err(ApiError::Refused(
                "The refresh token is invalid, expired or revoked.".into(),
            ))
        }
        Err(SessionError::AccountDisabled) => Err(ApiError::AccountDisabled),
        Err(SessionError::Internal(e)) => Err(ApiError::Internal(e)),
    }
}

/// A cookie refresh that came without the cookie: a `401` that names it, and why a
/// browser may not have sent it (`SameSite=Strict`: only on same-site requests; on
/// plain http only under `/auth`).
fn no_refresh_cookie(name: &str) -> ApiError {
    ApiError::Refused(format!(
        "No refresh token: the request has no {name} cookie and no refresh_token in its \
         body. Browsers send the cookie (SameSite=Strict) only with requests from the \
         same site as this server, with credentials: 'include'."
    ))
}

/// The body's `refresh_token`; `None` for an empty body (a cookie refresh) or none given.
async fn body_token(req: Request, settings: &Settings) -> Result<Option<String>, ApiError> {
    let is_json = json::is_json(&req);
    let bytes = json::read_body(req, settings.http.body_limit_bytes).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !is_json {
        return Err(ApiError::Unparsable(
            "The request body must be JSON, sent with Content-Type: application/json.".into(),
        ));
    }
    let body: RefreshRequest = json::parse(&bytes)?;
    Ok(body.refresh_token.filter(|t| !t.is_empty()))
}

#[derive(Deserialize, ToSchema, Default)]
pub struct LogoutRequest {
    /// `local` (this session, the default), `others` (every other session of the
    /// account) or `global` (all of them).
    #[serde(default)]
    scope: Scope,
}

/// Signs out: ends this session, the account's other sessions, or all of them. In
/// cookie mode the refresh cookie is cleared.
#[utoipa::path(post, path = "/auth/logout", tag = "sessions",
    security(("bearer" = [])),
    request_body(content = Option<LogoutRequest>, description = "Optional; an empty body signs out locally"),
    responses(
        (status = 204, description = "Signed out"),
        (status = 400, description = "An unknown scope, or an unparsable body", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token, or an ended session", body = ErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn logout(
    State(app): State<AppState>,
    SecureCookies(secure): SecureCookies,
    session: Session,
    req: Request,
) -> Result<Response, ApiError> {
    let is_json = json::is_json(&req);
    let bytes = json::read_body(req, app.settings.http.body_limit_bytes).await?;
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        LogoutRequest::default()
    } else if is_json {
        json::parse(&bytes)?
    } else {
        return Err(ApiError::Unparsable(
            "The request body must be JSON, sent with Content-Type: application/json.".into(),
        ));
    };
    app.sessions
        .sign_out(&session, body.scope)
        .await
        .map_err(session_error)?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    if app.settings.session.cookie {
        res.headers_mut().append(
            header::SET_COOKIE,
            refresh_cookie(&app.settings, secure, None),
        );
    }
    no_store(&mut res);
    Ok(res)
}

/// One session, as its account sees it.
#[derive(Serialize, ToSchema)]
pub struct SessionItem {
    id: String,
    /// RFC 3339, UTC.
    created_at: String,
    /// The last refresh (or the sign-in), RFC 3339, UTC.
    last_used_at: String,
    /// How the session began: `password`, `selfkey`, `ownid`, …
    method: String,
    user_agent: Option<String>,
    ip: Option<String>,
    /// The session of the token that asked.
    current: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    sessions: Vec<SessionItem>,
}

/// The signed-in account's live sessions, oldest first.
#[utoipa::path(get, path = "/auth/sessions", tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The sessions", body = SessionList),
        (status = 401, description = "Missing, invalid or expired token, or an ended session", body = ErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn list_sessions(
    State(app): State<AppState>,
    session: Session,
) -> Result<Response, ApiError> {
    let records = app
        .sessions
        .list(&session.account)
        .await
        .map_err(session_error)?;
    let sessions = records
        .into_iter()
        .map(|r| SessionItem {
            current: r.id == session.session,
            id: r.id,
            created_at: rfc3339(r.created_at),
            last_used_at: rfc3339(r.last_used_at),
            method: r.method,
            user_agent: r.user_agent,
            ip: r.ip,
        })
        .collect();
    let mut res = axum::Json(SessionList { sessions }).into_response();
    no_store(&mut res);
    Ok(res)
}

/// Ends one session of the signed-in account (this one included).
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "sessions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "A session id from GET /auth/sessions")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "Missing, invalid or expired token, or an ended session", body = ErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled", body = ErrorBody),
        (status = 404, description = "The account has no such session", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn end_session(
    State(app): State<AppState>,
    session: Session,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::NotFound("No such session.".into());
    let Path(id) = id.map_err(|_| not_found())?;
    let ended = app
        .sessions
        .end(&session.account, &id)
        .await
        .map_err(session_error)?;
    if ended {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

/// A session error as this surface answers it.
pub(super) fn session_error(e: SessionError) -> ApiError {
    match e {
        SessionError::Refused(reason) => ApiError::InvalidToken {
            expired: reason == crate::sessions::EXPIRED,
        },
        SessionError::AccountDisabled => ApiError::AccountDisabled,
        SessionError::Internal(e) => ApiError::Internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_of_urls() {
        assert_eq!(
            origin_of("https://auth.example.com/base/").as_deref(),
            Some("https://auth.example.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("nope"), None);
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; gatehouse-refresh=xyz".parse().unwrap(),
        );
        h.append(header::COOKIE, "x-gatehouse-refresh=evil".parse().unwrap());
        assert_eq!(cookie(&h, "gatehouse-refresh"), Some("xyz"));
        assert_eq!(cookie(&h, "refresh"), None);
    }
}
