//! Signed-in changes: `POST /auth/password/change`, `POST /auth/email/change`, and
//! the links an email change mails (`/auth/email/confirm`, `/auth/email/revert`, and
//! their pages under `/auth/pages/`). The password change is always mounted; the
//! email change needs mail.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::json::JsonBody;
use super::lifecycle::{
    ButtonLink, LinkTokenRequest, MessageResponse, PageQuery, TokenForm, button_form, button_json,
    button_page, lifecycle,
};
use super::reply::{account_error, no_store, required};
use super::session::{RecentSession, Session};
use crate::app::App;
use crate::domain::{Email, Password};
use crate::lifecycle::email_change::EmailChangeError;
use crate::lifecycle::password::{ChangeError, PasswordChange};
use crate::signin::password::LoginClient;

pub fn router(app: &App) -> OpenApiRouter<AppState> {
    let always = OpenApiRouter::new().routes(routes!(change_password));
    if app.lifecycle.is_none() {
        return always;
    }
    always
        .routes(routes!(change_email))
        .routes(routes!(confirm_email))
        .routes(routes!(revert_email))
        .routes(routes!(confirm_page, confirm_form))
        .routes(routes!(revert_page, revert_form))
}

const EMAIL_CHANGE_SENT: &str =
    "A link to confirm the new address is on its way to it. Nothing changes until it is followed.";

#[derive(Deserialize, ToSchema)]
pub struct PasswordChangeRequest {
    /// The password now; left out only by an account that has none yet.
    #[schema(value_type = String, required = false)]
    current_password: Option<String>,
    /// 8 characters to 1,024 bytes.
    #[schema(example = "new-password-123", value_type = String, required, min_length = 8, max_length = 1024)]
    new_password: Option<String>,
}

/// Changes the signed-in account's password, and ends its other sessions. An account
/// without a password (a wallet's, OwnID's) sets a first one with a sign-in within
/// `accounts.reauth_window_secs`.
#[utoipa::path(post, path = "/auth/password/change", tag = "password",
    security(("bearer" = [])), request_body = PasswordChangeRequest,
    responses(
        (status = 200, description = "Changed; the other sessions ended", body = MessageResponse),
        (status = 400, description = "Missing or invalid password, or unparsable body", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token, or an ended session", body = ErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled; or the current password is wrong; or (a first password) `recent_sign_in_required`; or `second_factor_required` (the account has one, the session's sign-in did not give it)", body = ErrorBody),
        (status = 409, description = "The password changed meanwhile; nothing was changed", body = ErrorBody),
        (status = 429, description = "Too many wrong current passwords (the login lockout, as /auth/login: then even the right one is refused until Retry-After), too many requests from this address, or too many passwords being hashed; see Retry-After", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn change_password(
    State(app): State<AppState>,
    parts: axum::http::request::Parts,
    session: Session,
    JsonBody(req): JsonBody<PasswordChangeRequest>,
) -> Result<Response, ApiError> {
    let new = Password::parse(required(req.new_password, "new_password")?)?;
    super::session::second_factor_given(&app, &session).await?;
    // Not parsed as a new password: an old one may predate today's rules.
    let current = req
        .current_password
        .map(|p| Password::parse(p).map_err(|_| wrong_password()))
        .transpose()?;
    let change = PasswordChange {
        store: &app.store,
        accounts: &app.accounts,
        passwords: &app.passwords,
        lifecycle: app.lifecycle.as_ref(),
        step_up: crate::sessions::StepUp::of(&app.settings),
    };
    // Counted by the lockout as a login from this client's address would be.
    let ip =
        super::client::client_of(&parts, &app).unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
    let client = LoginClient {
        address: super::client::bucket(ip),
        device_token: None,
    };
    change
        .change(&session, &client, current.as_ref(), &new)
        .await
        .map_err(|e| match e {
            ChangeError::WrongPassword => wrong_password(),
            ChangeError::SignInAgain => ApiError::SignInAgain,
            ChangeError::Raced => ApiError::Conflict(
                "The password was changed meanwhile. Sign in again and retry.".into(),
            ),
            ChangeError::Account(e) => account_error(e),
        })?;
    let mut res = axum::Json(MessageResponse {
        message: "Your password is changed; every other session is signed out.".into(),
    })
    .into_response();
    no_store(&mut res);
    Ok(res)
}

fn wrong_password() -> ApiError {
    ApiError::Forbidden("The current password is wrong.".into())
}

#[derive(Deserialize, ToSchema)]
pub struct EmailChangeRequest {
    #[schema(example = "joe.bloggs@example.com", value_type = String, required, format = Email)]
    new_email: Option<String>,
}

/// Mails a link to the new address that makes it the account's. Needs a sign-in
/// within `accounts.reauth_window_secs`. Answers the same whether or not the address
/// has an account.
#[utoipa::path(post, path = "/auth/email/change", tag = "password",
    security(("bearer" = [])), request_body = EmailChangeRequest,
    responses(
        (status = 202, description = "A confirmation link is on its way to the new address", body = MessageResponse),
        (status = 400, description = "Missing or invalid email, the account's address already, or unparsable body", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token, or an ended session", body = ErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled; or `recent_sign_in_required`: the sign-in is older than accounts.reauth_window_secs", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn change_email(
    State(app): State<AppState>,
    session: RecentSession,
    JsonBody(req): JsonBody<EmailChangeRequest>,
) -> Result<Response, ApiError> {
    let new = Email::parse(&required(req.new_email, "new_email")?, "new_email")?;
    let profile = app
        .accounts
        .profile(&session.account)
        .await
        .map_err(account_error)?
        .ok_or(ApiError::Unauthorized)?;
    lifecycle(&app)?
        .request_email_change(&profile.account, &new)
        .await
        .map_err(|e| match e {
            EmailChangeError::Unchanged => {
                ApiError::BadRequest("That is the account's address already.".into())
            }
            EmailChangeError::Account(e) => account_error(e),
        })?;
    let body = MessageResponse {
        message: EMAIL_CHANGE_SENT.into(),
    };
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

/// Confirms an email change with the token mailed to the new address; the old
/// address is mailed a link that reverts it.
#[utoipa::path(post, path = "/auth/email/confirm", tag = "password", request_body = LinkTokenRequest,
    responses(
        (status = 200, description = "The new address is the account's", body = MessageResponse),
        (status = 400, description = "Invalid, used or expired token, or unparsable body", body = ErrorBody),
        (status = 409, description = "Another account has this address now", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn confirm_email(
    State(app): State<AppState>,
    JsonBody(req): JsonBody<LinkTokenRequest>,
) -> Result<Response, ApiError> {
    button_json(&app, req.token, ButtonLink::ConfirmChange).await
}

/// Reverts an email change with the token mailed to the old address, and ends every
/// session of the account.
#[utoipa::path(post, path = "/auth/email/revert", tag = "password", request_body = LinkTokenRequest,
    responses(
        (status = 200, description = "The old address is back; every session ended", body = MessageResponse),
        (status = 400, description = "Invalid, used or expired token, or unparsable body", body = ErrorBody),
        (status = 409, description = "Another account has the old address now", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn revert_email(
    State(app): State<AppState>,
    JsonBody(req): JsonBody<LinkTokenRequest>,
) -> Result<Response, ApiError> {
    button_json(&app, req.token, ButtonLink::RevertChange).await
}

/// The page the confirmation link opens: a button that confirms. Changes nothing.
#[utoipa::path(get, path = "/auth/pages/confirm-email", tag = "pages", params(PageQuery),
    responses(
        (status = 200, description = "The form", content_type = "text/html", body = String),
        (status = 400, description = "The address holds no well-formed token", content_type = "text/html", body = String)))]
async fn confirm_page(
    State(app): State<AppState>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    button_page(&app, query, ButtonLink::ConfirmChange)
}

/// The confirmation page's submission.
#[utoipa::path(post, path = "/auth/pages/confirm-email", tag = "pages",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Confirmed", content_type = "text/html", body = String),
        (status = 400, description = "Invalid, used or expired token", content_type = "text/html", body = String),
        (status = 409, description = "Another account has this address now", content_type = "text/html", body = String),
        (status = 500, description = "Internal error", content_type = "text/html", body = String)))]
async fn confirm_form(State(app): State<AppState>, req: Request) -> Response {
    button_form(&app, req, ButtonLink::ConfirmChange).await
}

/// The page the revert link opens: a button that reverts. Changes nothing.
#[utoipa::path(get, path = "/auth/pages/revert-email", tag = "pages", params(PageQuery),
    responses(
        (status = 200, description = "The form", content_type = "text/html", body = String),
        (status = 400, description = "The address holds no well-formed token", content_type = "text/html", body = String)))]
async fn revert_page(
    State(app): State<AppState>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    button_page(&app, query, ButtonLink::RevertChange)
}

/// The revert page's submission.
#[utoipa::path(post, path = "/auth/pages/revert-email", tag = "pages",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Reverted; every session ended", content_type = "text/html", body = String),
        (status = 400, description = "Invalid, used or expired token", content_type = "text/html", body = String),
        (status = 409, description = "Another account has the old address now", content_type = "text/html", body = String),
        (status = 500, description = "Internal error", content_type = "text/html", body = String)))]
async fn revert_form(State(app): State<AppState>, req: Request) -> Response {
    button_form(&app, req, ButtonLink::RevertChange).await
}
