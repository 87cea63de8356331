//! The account lifecycle: forgotten passwords (`POST /auth/password/forgot`,
//! `POST /auth/password/reset`), email verification (`POST /auth/verify-email/send`,
//! `POST /auth/verify-email`), the pages emailed links open (`/auth/pages/…`), all
//! mounted only when mail is on; and `DELETE /auth/me`, always.
//!
//! Mail scanners open links: a `GET` or `HEAD` of the page changes nothing. It shows a
//! form that POSTs the token with the new password. The page is plain HTML with no
//! third-party resource, sends no referrer, is never cached, and takes the token out
//! of the address bar as it loads.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::client::SecureCookies;
use super::error::{ApiError, ErrorBody};
use super::json::{JsonBody, read_body};
use super::reply::{account_error, no_store, required};
use super::session::{RecentSession, Session};
use crate::accounts::AccountError;
use crate::app::App;
use crate::domain::{Email, Password};
use crate::lifecycle::{Lifecycle, LinkError};
use crate::sessions::Device;
use crate::signin::flow::Proof;

pub fn router(app: &App) -> OpenApiRouter<AppState> {
    let always = OpenApiRouter::new().routes(routes!(delete_me));
    if app.lifecycle.is_none() {
        return always;
    }
    always
        .routes(routes!(forgot))
        .routes(routes!(reset))
        .routes(routes!(reset_page, reset_form))
        .routes(routes!(send_verification))
        .routes(routes!(verify_email))
        .routes(routes!(verify_page, verify_form))
}

const VERIFY_SENT: &str =
    "If the account's address is not verified yet, a link to verify it is on its way.";
const VERIFIED: &str = "Your email address is verified.";

/// After a registration: the verification mail, when mail is on. A failure is logged;
/// the account exists either way and its owner can ask again.
pub async fn after_registration(app: &App, email: &Email) {
    let Some(lifecycle) = &app.lifecycle else {
        return;
    };
    let account = match app.store.account_by_email(email.key()).await {
        Ok(Some(account)) => account,
        Ok(None) => return,
        Err(e) => return tracing::error!(error = %e, "verification: reading the account failed"),
    };
    if let Err(e) = lifecycle.send_verification(&account).await {
        tracing::error!(error = %e, "verification: queueing the mail failed");
    }
}

/// Mails a link that verifies the account's email address.
#[utoipa::path(post, path = "/auth/verify-email/send", tag = "password",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Accepted; no mail when the address is verified already or over its mail limit", body = MessageResponse),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn send_verification(
    State(app): State<AppState>,
    session: Session,
) -> Result<Response, ApiError> {
    let profile = app
        .accounts
        .profile(&session.account)
        .await
        .map_err(account_error)?
        .ok_or(ApiError::Unauthorized)?;
    lifecycle(&app)?
        .send_verification(&profile.account)
        .await
        .map_err(account_error)?;
    let body = MessageResponse {
        message: VERIFY_SENT.into(),
    };
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

/// The body that follows an emailed link (verifying an address, confirming or
/// reverting a change): the link's token.
#[derive(Deserialize, ToSchema)]
pub struct LinkTokenRequest {
    /// The token of the emailed link.
    #[schema(value_type = String, required)]
    pub(super) token: Option<String>,
}

/// Verifies the address a verification link was sent to.
#[utoipa::path(post, path = "/auth/verify-email", tag = "password", request_body = LinkTokenRequest,
    responses(
        (status = 200, description = "Verified", body = MessageResponse),
        (status = 400, description = "Invalid, used or expired token, or unparsable body", body = ErrorBody),
        (status = 409, description = "Another account has this address now", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn verify_email(
    State(app): State<AppState>,
    JsonBody(req): JsonBody<LinkTokenRequest>,
) -> Result<Response, ApiError> {
    button_json(&app, req.token, ButtonLink::Verify).await
}

/// The form of a one-button link page.
#[derive(ToSchema)]
pub struct TokenForm {
    /// The token of the emailed link.
    #[allow(dead_code)] // read by `form_fields`; here for the OpenAPI document
    token: String,
}

/// A link whose page is one button: confirming an address, or reverting a change.
#[derive(Debug, Clone, Copy)]
pub(super) enum ButtonLink {
    /// Verifies the account's address.
    Verify,
    /// Confirms an email change, from the new address.
    ConfirmChange,
    /// Reverts an email change, from the old address.
    RevertChange,
}

impl ButtonLink {
    /// The page's heading, its button, and the message once done.
    fn words(self) -> (&'static str, &'static str, &'static str) {
        match self {
            ButtonLink::Verify => ("Confirm your email address", "Confirm my address", VERIFIED),
            ButtonLink::ConfirmChange => (
                "Confirm your new email address",
                "Make it my address",
                "Your new email address is confirmed: it is the account's address now.",
            ),
            ButtonLink::RevertChange => (
                "Undo the change of your email address",
                "Undo the change and sign out everywhere",
                "Your email address is restored and every session is signed out. \
                 Sign in again, and reset your password if someone else knew it.",
            ),
        }
    }

    /// The page's path relative to `/auth/pages/`, where its form posts.
    fn action(self) -> &'static str {
        match self {
            ButtonLink::Verify => "verify-email",
            ButtonLink::ConfirmChange => "confirm-email",
            ButtonLink::RevertChange => "revert-email",
        }
    }

    async fn press(self, lifecycle: &Lifecycle, token: &str) -> Result<(), LinkError> {
        match self {
            ButtonLink::Verify => lifecycle.verify_email(token).await,
            ButtonLink::ConfirmChange => lifecycle.confirm_email_change(token).await,
            ButtonLink::RevertChange => lifecycle.revert_email_change(token).await,
        }
        .map(|_| ())
    }
}

const EMAIL_TAKEN: &str = "Another account has this address now.";

/// The JSON form of a button link: `{"token"}` → `200 {"message"}`.
pub(super) async fn button_json(
    app: &App,
    token: Option<String>,
    link: ButtonLink,
) -> Result<Response, ApiError> {
    let token = required(token, "token")?;
    match link.press(lifecycle(app)?, &token).await {
        Ok(()) => {}
        Err(LinkError::Account(AccountError::EmailTaken)) => {
            return Err(ApiError::Conflict(EMAIL_TAKEN.into()));
        }
        Err(e) => return Err(link_error(e)),
    }
    let mut res = axum::Json(MessageResponse {
        message: link.words().2.into(),
    })
    .into_response();
    no_store(&mut res);
    Ok(res)
}

/// The page a button link opens. Changes nothing.
pub(super) fn button_page(
    app: &App,
    query: Result<Query<PageQuery>, QueryRejection>,
    link: ButtonLink,
) -> Response {
    let token = query.ok().and_then(|Query(q)| q.token);
    match token.filter(|t| crate::crypto::link_token::is_well_formed(t)) {
        Some(token) => page(StatusCode::OK, app, &button_form_html(&token, link)),
        None => page(StatusCode::BAD_REQUEST, app, &message_html(INVALID_LINK)),
    }
}

/// The submission of a button link's page: does what the link does, answers a page.
pub(super) async fn button_form(app: &App, req: Request, link: ButtonLink) -> Response {
    let limit = app.settings.http.body_limit_bytes;
    let token = match read_body(req, limit).await {
        Ok(body) => form_fields(&body).token,
        Err(_) => None,
    };
    let Some(token) = token.filter(|t| crate::crypto::link_token::is_well_formed(t)) else {
        return page(StatusCode::BAD_REQUEST, app, &message_html(INVALID_LINK));
    };
    let Ok(lifecycle) = lifecycle(app) else {
        return page(StatusCode::NOT_FOUND, app, &message_html(INVALID_LINK));
    };
    match link.press(lifecycle, &token).await {
        Ok(()) => page(StatusCode::OK, app, &message_html(link.words().2)),
        Err(LinkError::InvalidToken) => {
            page(StatusCode::BAD_REQUEST, app, &message_html(INVALID_LINK))
        }
        Err(LinkError::Account(AccountError::EmailTaken)) => {
            page(StatusCode::CONFLICT, app, &message_html(EMAIL_TAKEN))
        }
        Err(LinkError::Account(AccountError::Disabled)) => page(
            StatusCode::FORBIDDEN,
            app,
            &message_html(super::error::ACCOUNT_DISABLED),
        ),
        Err(e) => {
            tracing::error!(error = %e, ?link, "a link's page failed");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                app,
                &message_html("Something went wrong. Please try again later."),
            )
        }
    }
}

/// The page a verification link opens: a button that confirms. Changes nothing.
#[utoipa::path(get, path = "/auth/pages/verify-email", tag = "pages", params(PageQuery),
    responses(
        (status = 200, description = "The form", content_type = "text/html", body = String),
        (status = 400, description = "The address holds no well-formed token", content_type = "text/html", body = String)))]
async fn verify_page(
    State(app): State<AppState>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    button_page(&app, query, ButtonLink::Verify)
}

/// The form's submission: verifies the address and answers with a page.
#[utoipa::path(post, path = "/auth/pages/verify-email", tag = "pages",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Verified", content_type = "text/html", body = String),
        (status = 400, description = "Invalid, used or expired token", content_type = "text/html", body = String),
        (status = 409, description = "Another account has this address now", content_type = "text/html", body = String),
        (status = 500, description = "Internal error", content_type = "text/html", body = String)))]
async fn verify_form(State(app): State<AppState>, req: Request) -> Response {
    button_form(&app, req, ButtonLink::Verify).await
}

/// Deletes the signed-in account and everything of it. Needs a recent sign-in.
#[utoipa::path(delete, path = "/auth/me", tag = "password",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled; or `recent_sign_in_required`: the sign-in is older than accounts.reauth_window_secs", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn delete_me(
    State(app): State<AppState>,
    session: RecentSession,
) -> Result<Response, ApiError> {
    let profile = app
        .accounts
        .profile(&session.account)
        .await
        .map_err(account_error)?
        .ok_or(ApiError::Unauthorized)?;
    let deleted =
        crate::lifecycle::delete_account(&app.store, app.lifecycle.as_ref(), &profile.account)
            .await
            .map_err(account_error)?;
    if !deleted {
        return Err(ApiError::Unauthorized);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The answer to every forgot-password request, whatever the address.
pub const FORGOT_MESSAGE: &str =
    "If an account with a password exists for this address, a link to reset it is on its way.";

const INVALID_LINK: &str = "This link is invalid or has expired. Ask for a new one.";

#[derive(Deserialize, ToSchema)]
pub struct ForgotRequest {
    #[schema(example = "joebloggs@gmail.com", value_type = String, required, format = Email)]
    email: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct ResetRequest {
    /// The token of the emailed link.
    #[schema(value_type = String, required)]
    token: Option<String>,
    /// 8 characters to 1,024 bytes.
    #[schema(example = "new-password-123", value_type = String, required, min_length = 8, max_length = 1024)]
    password: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageResponse {
    pub message: String,
}

pub(super) fn lifecycle(app: &App) -> Result<&Lifecycle, ApiError> {
    app.lifecycle
        .as_ref()
        .ok_or_else(|| ApiError::NotFound(super::error::NO_ROUTE.into()))
}

/// Mails a password-reset link. Answers the same, no sooner than
/// `mail.forgot_floor_ms`, for every address: known, unknown, passwordless or over
/// its mail limit.
#[utoipa::path(post, path = "/auth/password/forgot", tag = "password", request_body = ForgotRequest,
    responses(
        (status = 202, description = "Accepted (whether or not the address has an account)", body = MessageResponse),
        (status = 400, description = "Missing or invalid email, or unparsable body", body = ErrorBody),
        (status = 429, description = "Too many requests from this address; see Retry-After", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn forgot(
    State(app): State<AppState>,
    JsonBody(req): JsonBody<ForgotRequest>,
) -> Result<Response, ApiError> {
    let email = Email::parse(&required(req.email, "email")?, "email")?;
    lifecycle(&app)?.forgot_password(&email).await;
    let body = MessageResponse {
        message: FORGOT_MESSAGE.into(),
    };
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

/// Sets a new password with the token of a reset link, and signs in. The token works
/// once; a refused password leaves it usable.
#[utoipa::path(post, path = "/auth/password/reset", tag = "password", request_body = ResetRequest,
    responses(
        (status = 200, description = "Password changed; signed in, or (an account with a second factor) `mfa_required`", body = super::reply::TokenResponse),
        (status = 400, description = "Invalid, used or expired token; missing or invalid password; unparsable body", body = ErrorBody),
        (status = 429, description = "Too many requests from this address, or too many passwords being hashed; see Retry-After", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn reset(
    State(app): State<AppState>,
    SecureCookies(secure): SecureCookies,
    device: Device,
    JsonBody(req): JsonBody<ResetRequest>,
) -> Result<Response, ApiError> {
    let token = required(req.token, "token")?;
    let password = Password::parse(required(req.password, "password")?)?;
    let account = lifecycle(&app)?
        .reset_password(&app.accounts, &token, &password)
        .await
        .map_err(link_error)?;
    let profile = app
        .accounts
        .profile(&account)
        .await
        .map_err(account_error)?
        .ok_or_else(|| ApiError::BadRequest(INVALID_LINK.into()))?;
    // An account with a second factor keeps it: the reset answers `mfa_required`.
    let done = app
        .flow
        .finish(&profile.account, Proof::PasswordReset, &device)
        .await
        .map_err(|e| account_error(e.into()))?;
    Ok(super::reply::finished(&app.settings, secure, done))
}

pub(super) fn link_error(e: LinkError) -> ApiError {
    match e {
        LinkError::InvalidToken => ApiError::BadRequest(INVALID_LINK.into()),
        LinkError::Account(e) => account_error(e),
    }
}

#[derive(Deserialize, IntoParams)]
pub struct PageQuery {
    /// The token of the emailed link.
    token: Option<String>,
}

/// The page a reset link opens: a form for the new password. Changes nothing.
#[utoipa::path(get, path = "/auth/pages/reset-password", tag = "pages", params(PageQuery),
    responses(
        (status = 200, description = "The form", content_type = "text/html", body = String),
        (status = 400, description = "The address holds no well-formed token", content_type = "text/html", body = String),
        (status = 429, description = "Too many requests from this address; see Retry-After", body = ErrorBody)))]
async fn reset_page(
    State(app): State<AppState>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let token = query.ok().and_then(|Query(q)| q.token);
    match token.filter(|t| crate::crypto::link_token::is_well_formed(t)) {
        Some(token) => page(StatusCode::OK, &app, &reset_form_html(&token, None)),
        None => page(StatusCode::BAD_REQUEST, &app, &message_html(INVALID_LINK)),
    }
}

/// The form's submission: sets the new password and answers with a page.
#[utoipa::path(post, path = "/auth/pages/reset-password", tag = "pages",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`token` and `password`"),
    responses(
        (status = 200, description = "Password changed", content_type = "text/html", body = String),
        (status = 400, description = "Invalid, used or expired token, or a refused password", content_type = "text/html", body = String),
        (status = 429, description = "Too many requests from this address, or too many passwords being hashed; see Retry-After", body = ErrorBody),
        (status = 500, description = "Internal error", content_type = "text/html", body = String)))]
async fn reset_form(State(app): State<AppState>, req: Request) -> Response {
    let limit = app.settings.http.body_limit_bytes;
    let fields = match read_body(req, limit).await {
        Ok(body) => form_fields(&body),
        Err(_) => return page(StatusCode::BAD_REQUEST, &app, &message_html(INVALID_LINK)),
    };
    let (Some(token), password) = (fields.token, fields.password) else {
        return page(StatusCode::BAD_REQUEST, &app, &message_html(INVALID_LINK));
    };
    if !crate::crypto::link_token::is_well_formed(&token) {
        return page(StatusCode::BAD_REQUEST, &app, &message_html(INVALID_LINK));
    }
    let password = match Password::parse(password.unwrap_or_default()) {
        Ok(p) => p,
        Err(e) => {
            let form = reset_form_html(&token, Some(&e.0));
            return page(StatusCode::BAD_REQUEST, &app, &form);
        }
    };
    let Ok(lifecycle) = lifecycle(&app) else {
        return page(StatusCode::NOT_FOUND, &app, &message_html(INVALID_LINK));
    };
    match lifecycle
        .reset_password(&app.accounts, &token, &password)
        .await
    {
        Ok(_) => page(
            StatusCode::OK,
            &app,
            &message_html("Your password has been changed. You can sign in with it now."),
        ),
        Err(LinkError::InvalidToken) => {
            page(StatusCode::BAD_REQUEST, &app, &message_html(INVALID_LINK))
        }
        Err(e) => {
            let mut res = link_error(e).into_response();
            if res.status().is_server_error() {
                res = page(
                    res.status(),
                    &app,
                    &message_html("Something went wrong. Please try again later."),
                );
            }
            res
        }
    }
}

struct FormFields {
    token: Option<String>,
    password: Option<String>,
}

fn form_fields(body: &[u8]) -> FormFields {
    let mut fields = FormFields {
        token: None,
        password: None,
    };
    for (name, value) in url::form_urlencoded::parse(body) {
        match name.as_ref() {
            "token" => fields.token = Some(value.into_owned()),
            "password" => fields.password = Some(value.into_owned()),
            _ => {}
        }
    }
    fields
}

/// Takes the token out of the address bar (and so out of the history) as the page
/// loads; the form still holds it.
const SCRIPT: &str = "history.replaceState(null, \"\", location.pathname);";
const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;line-height:1.5}label,input,button{display:block;width:100%;margin:.5rem 0}input,button{padding:.5rem;font-size:1rem}.error{color:#b00020}";

fn reset_form_html(token: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    format!(
        "<h1>Choose a new password</h1>{error}\
         <form method=\"post\" action=\"reset-password\">\
         <input type=\"hidden\" name=\"token\" value=\"{}\">\
         <label for=\"password\">New password</label>\
         <input id=\"password\" type=\"password\" name=\"password\" autocomplete=\"new-password\" minlength=\"8\" maxlength=\"1024\" required>\
         <button type=\"submit\">Set the new password</button></form>",
        escape(token)
    )
}

fn button_form_html(token: &str, link: ButtonLink) -> String {
    let (heading, button, _) = link.words();
    format!(
        "<h1>{heading}</h1>\
         <form method=\"post\" action=\"{}\">\
         <input type=\"hidden\" name=\"token\" value=\"{}\">\
         <button type=\"submit\">{button}</button></form>",
        link.action(),
        escape(token)
    )
}

fn message_html(message: &str) -> String {
    format!("<p>{}</p>", escape(message))
}

/// A whole page around `main`, with the headers every link page carries.
fn page(status: StatusCode, app: &App, main: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{}</title><style>{STYLE}</style></head>\
         <body><main>{main}</main><script>{SCRIPT}</script></body></html>",
        escape(&app.settings.mail.site_name)
    );
    let mut res = (status, html).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy()) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    no_store(&mut res);
    res
}

/// Nothing but the page's own inline style and script, and forms to this origin.
fn content_security_policy() -> String {
    use base64::Engine;
    use sha2::Digest;
    let hash = |s: &str| base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(s));
    format!(
        "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        hash(STYLE),
        hash(SCRIPT)
    )
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
