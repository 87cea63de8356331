//! The signed-out pages: sign-in, sign-up, sign-out, the forgotten password, and the
//! pages the emailed links open (reset, verification, an email change's confirmation
//! and revert).

use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use minijinja::context;

use super::{Browser, Fields, Kind, clear_session, csrf_refusal, field, page, redirect, signed_in};
use crate::accounts::AccountError;
use crate::app::App;
use crate::domain::{Email, Password};
use crate::http::AppState;
use crate::lifecycle::LinkError;
use crate::sessions::Scope;
use crate::signin::flow::Proof;
use crate::signin::password::LoginClient;

pub(super) fn router(app: &App) -> Router<AppState> {
    let router = Router::new()
        .route(
            "/ui",
            get(|State(app): State<AppState>| async move { redirect(&app, "/ui/account") }),
        )
        .route(
            "/ui/",
            get(|State(app): State<AppState>| async move { redirect(&app, "/ui/account") }),
        )
        .route("/ui/sign-in", get(sign_in_page).post(sign_in))
        .route("/ui/sign-up", get(sign_up_page).post(sign_up))
        .route("/ui/sign-out", axum::routing::post(sign_out));
    if app.lifecycle.is_none() {
        return router;
    }
    router
        .route("/ui/forgot-password", get(forgot_page).post(forgot))
        .route("/ui/reset-password", get(reset_page).post(reset))
        .route("/ui/verify-email", get(verify_page).post(verify))
        .route("/ui/confirm-email", get(confirm_page).post(confirm))
        .route("/ui/revert-email", get(revert_page).post(revert))
}

fn fields(form: Result<Form<Fields>, FormRejection>) -> Fields {
    form.map(|Form(f)| f).unwrap_or_default()
}

fn query(q: Result<Query<Fields>, QueryRejection>) -> Fields {
    q.map(|Query(f)| f).unwrap_or_default()
}

/// `?return_to=…` for the links between sign-in and sign-up, kept only when allowed.
fn return_query(app: &App, return_to: Option<&str>) -> String {
    let checked = return_to.and_then(|r| super::pages(app).return_origins().check(r));
    match checked {
        Some(r) => format!(
            "?return_to={}",
            url::form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()
        ),
        None => String::new(),
    }
}

/// The sign-in form, with `error` next to `field` when a try failed.
pub(super) async fn sign_in_form(
    app: &App,
    b: &Browser,
    status: StatusCode,
    fields: &Fields,
    error: Option<(&str, &str)>,
    notice: Option<&str>,
) -> Response {
    let pages = super::pages(app);
    let return_to = field(fields, "return_to").and_then(|r| pages.return_origins().check(r));
    let return_to = return_to.as_deref().unwrap_or_default();
    let return_query = return_query(app, Some(return_to).filter(|r| !r.is_empty()));
    let email = field(fields, "email").unwrap_or_default();
    // The page as most browsers get it (no message, no email typed): prepared once per
    // language, the browser's form tokens and `return_to` spliced in.
    if status == StatusCode::OK && error.is_none() && notice.is_none() && email.is_empty() {
        let none: Option<&str> = None;
        let prepared = pages.prepared_sign_in(b.lang, SIGN_IN_SLOTS, |lang| {
            context! { email => "", field => none, error => none, notice => none,
            ..sign_in_context(app, lang) }
        });
        if let Some(prepared) = prepared {
            let html = prepared.fill(pages, &b.nonce, &[return_to, &return_query]);
            let res = super::page_of(app, b, status, Kind::Plain, html);
            return super::for_client(app, Some(return_to), res).await;
        }
    }
    let context = context! {
        email => email,
        return_to => return_to,
        return_query => return_query,
        field => error.map(|(f, _)| f),
        error => error.map(|(_, id)| b.message(app, id)),
        notice => notice.map(|id| b.message(app, id)),
        ..sign_in_context(app, b.lang)
    };
    let res = page(app, b, status, "sign_in.html", Kind::Plain, context);
    super::for_client(app, Some(return_to), res).await
}

/// The sign-in page again after a wallet's, SelfKey's or passkey's refusal (`id`, a
/// message), keeping the form's `return_to` (and with it the client an authorization
/// request came from).
pub(super) async fn sign_in_refused(
    app: &App,
    b: &Browser,
    return_to: Option<&str>,
    status: StatusCode,
    id: &str,
) -> Response {
    let kept: Fields = return_to
        .map(|r| [("return_to".to_owned(), r.to_owned())].into())
        .unwrap_or_default();
    sign_in_form(app, b, status, &kept, Some(("", id)), None).await
}

/// The per-request values of the prepared sign-in page, by [`Prepared::fill`]'s index.
///
/// [`Prepared::fill`]: crate::ui::Prepared::fill
const SIGN_IN_SLOTS: &[&str] = &["return_to", "return_query"];

/// What the sign-in page shows in `lang` whoever asks: the methods this server offers.
fn sign_in_context(app: &App, lang: crate::ui::Lang) -> minijinja::Value {
    let social: Vec<_> = app
        .social
        .as_ref()
        .map(|s| s.enabled())
        .unwrap_or_default()
        .into_iter()
        .map(|(id, name)| {
            let label = super::pages(app).message_with(lang, "social-continue", "name", &name);
            context! { id => id, label => label }
        })
        .collect();
    context! {
        title => "sign-in",
        social => social,
        passkeys => app.settings.passkeys.enabled,
        siwe => app.settings.siwe.enabled,
        selfkey => app.settings.selfkey.enabled.then_some(app.settings.selfkey.mount.as_str()),
    }
}

async fn sign_in_page(
    State(app): State<AppState>,
    b: Browser,
    q: Result<Query<Fields>, QueryRejection>,
) -> Response {
    let q = query(q);
    // `prompt=login` (from /oauth/authorize): a new sign-in even with a session.
    if let Some(return_to) = field(&q, "return_to")
        && field(&q, "prompt") != Some("login")
        && b.session(&app).await.is_some()
        && let Some(target) = super::pages(&app).return_origins().check(return_to)
    {
        return redirect(&app, &target);
    }
    // An OpenID Connect `ui_locales` wins over Accept-Language.
    let mut b = b;
    if let Some(lang) =
        field(&q, "ui_locales").and_then(|l| super::pages(&app).language_of_locales(l))
    {
        b.lang = lang;
    }
    sign_in_form(&app, &b, StatusCode::OK, &q, None, None).await
}

/// The message id and field of a refused sign-in or sign-up.
fn account_refusal(e: &AccountError) -> (StatusCode, &'static str, &'static str) {
    match e {
        AccountError::InvalidCredentials | AccountError::NoSuchAccount => (
            StatusCode::UNAUTHORIZED,
            "password",
            "error-invalid-credentials",
        ),
        AccountError::EmailTaken => (StatusCode::CONFLICT, "email", "error-email-taken"),
        AccountError::LockedOut { .. } | AccountError::Busy { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, "email", "error-too-many")
        }
        AccountError::Disabled => (StatusCode::FORBIDDEN, "email", "error-disabled"),
        AccountError::EmailNotVerified => (StatusCode::FORBIDDEN, "email", "error-not-verified"),
        AccountError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "", "error-internal"),
    }
}

async fn sign_in(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let mut f = fields(form);
    if let Some(refusal) = csrf_refusal(&app, &b, "sign_in", &f) {
        return refusal;
    }
    let Ok(email) = Email::parse(field(&f, "email").unwrap_or_default(), "email") else {
        return sign_in_form(
            &app,
            &b,
            StatusCode::BAD_REQUEST,
            &f,
            Some(("email", "error-email-invalid")),
            None,
        )
        .await;
    };
    // Not parsed as a new password: an old one may predate today's rules.
    let password = f.remove("password").map(Password::parse);
    let Some(Ok(password)) = password else {
        return sign_in_form(
            &app,
            &b,
            StatusCode::UNAUTHORIZED,
            &f,
            Some(("password", "error-invalid-credentials")),
            None,
        )
        .await;
    };
    let client = LoginClient {
        address: b.address.clone(),
        device_token: None,
    };
    match app
        .passwords
        .login(&email, &password, &client, &b.device)
        .await
    {
        Ok(done) => signed_in(&app, &b, &done.finished, field(&f, "return_to")),
        Err(e) => {
            if let AccountError::Internal(e) = &e {
                tracing::error!(error = %e, "a sign-in page failed");
            }
            let (status, fld, id) = account_refusal(&e);
            sign_in_form(&app, &b, status, &f, Some((fld, id)), None).await
        }
    }
}

pub(super) async fn sign_up_form(
    app: &App,
    b: &Browser,
    status: StatusCode,
    fields: &Fields,
    error: Option<(&str, &str)>,
    done: Option<&str>,
) -> Response {
    let return_to =
        field(fields, "return_to").and_then(|r| super::pages(app).return_origins().check(r));
    let context = context! {
        title => "sign-up",
        passkeys => app.settings.passkeys.enabled,
        email => field(fields, "email").unwrap_or_default(),
        return_to => return_to.as_deref().unwrap_or_default(),
        return_query => return_query(app, return_to.as_deref()),
        field => error.map(|(f, _)| f),
        error => error.map(|(_, id)| b.message(app, id)),
        done => done.is_some(),
        notice => done.map(|id| b.message(app, id)),
    };
    let res = page(app, b, status, "sign_up.html", Kind::Plain, context);
    super::for_client(app, return_to.as_deref(), res).await
}

async fn sign_up_page(
    State(app): State<AppState>,
    b: Browser,
    q: Result<Query<Fields>, QueryRejection>,
) -> Response {
    sign_up_form(&app, &b, StatusCode::OK, &query(q), None, None).await
}

/// Registration as `POST /auth/register` does it: with `accounts.require_verified_email`
/// a mail and the same answer for a new and a taken address; else the account and its
/// first session.
async fn sign_up(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let mut f = fields(form);
    if let Some(refusal) = csrf_refusal(&app, &b, "sign_up", &f) {
        return refusal;
    }
    let Ok(email) = Email::parse(field(&f, "email").unwrap_or_default(), "email") else {
        return sign_up_form(
            &app,
            &b,
            StatusCode::BAD_REQUEST,
            &f,
            Some(("email", "error-email-invalid")),
            None,
        )
        .await;
    };
    let Ok(password) = Password::parse(f.remove("password").unwrap_or_default()) else {
        return sign_up_form(
            &app,
            &b,
            StatusCode::BAD_REQUEST,
            &f,
            Some(("password", "error-password-invalid")),
            None,
        )
        .await;
    };
    let (app_, b_, f_) = (&app, &b, &f);
    let refused = |e: AccountError| {
        if let AccountError::Internal(e) = &e {
            tracing::error!(error = %e, "the sign-up page failed");
        }
        let (status, fld, id) = account_refusal(&e);
        async move { sign_up_form(app_, b_, status, f_, Some((fld, id)), None).await }
    };
    if app.settings.accounts.require_verified_email {
        let Some(lifecycle) = &app.lifecycle else {
            return refused(AccountError::Internal(anyhow::anyhow!("no mail"))).await;
        };
        return match lifecycle
            .register_unverified(&app.accounts, &email, Some(&password), None)
            .await
        {
            Ok(()) => {
                sign_up_form(
                    &app,
                    &b,
                    StatusCode::ACCEPTED,
                    &f,
                    None,
                    Some("register-check-mail"),
                )
                .await
            }
            Err(e) => refused(e).await,
        };
    }
    let created = match app.accounts.create(&email, Some(&password), None).await {
        Ok(created) => created,
        Err(e) => return refused(e).await,
    };
    let sign_in = match app
        .flow
        .finish(&created, Proof::RegisteredWithPassword, &b.device)
        .await
    {
        Ok(sign_in) => sign_in,
        Err(e) => return refused(e.into()).await,
    };
    crate::http::lifecycle::after_registration(&app, &email).await;
    signed_in(&app, &b, &sign_in, field(&f, "return_to"))
}

/// Ends this browser's session (and clears its cookie), then shows the sign-in form.
async fn sign_out(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    if let Some(refusal) = csrf_refusal(&app, &b, "sign_out", &f) {
        return refusal;
    }
    if let Some(session) = b.session(&app).await
        && let Err(e) = app.sessions.sign_out(&session, Scope::Local).await
    {
        tracing::error!(error = %e, "signing out from the pages failed");
    }
    let mut res = sign_in_form(
        &app,
        &b,
        StatusCode::OK,
        &Fields::new(),
        None,
        Some("signed-out"),
    )
    .await;
    clear_session(&b, &mut res);
    res
}

fn forgot_form(
    app: &App,
    b: &Browser,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
    done: bool,
) -> Response {
    let context = context! {
        title => "forgot-title",
        email => email,
        field => error.map(|_| "email"),
        error => error.map(|id| b.message(app, id)),
        done => done,
        notice => done.then(|| b.message(app, "forgot-sent")),
    };
    page(app, b, status, "forgot_password.html", Kind::Plain, context)
}

async fn forgot_page(State(app): State<AppState>, b: Browser) -> Response {
    forgot_form(&app, &b, StatusCode::OK, "", None, false)
}

/// Mails a reset link as `POST /auth/password/forgot` does: the same answer, as late,
/// for every address.
async fn forgot(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    if let Some(refusal) = csrf_refusal(&app, &b, "forgot_password", &f) {
        return refusal;
    }
    let raw = field(&f, "email").unwrap_or_default();
    let Ok(email) = Email::parse(raw, "email") else {
        return forgot_form(
            &app,
            &b,
            StatusCode::BAD_REQUEST,
            raw,
            Some("error-email-invalid"),
            false,
        );
    };
    if let Some(lifecycle) = &app.lifecycle {
        lifecycle.forgot_password(&email).await;
    }
    forgot_form(&app, &b, StatusCode::OK, "", None, true)
}

/// A link's token, when well formed.
fn link_token(fields: &Fields) -> Option<&str> {
    field(fields, "token").filter(|t| crate::crypto::link_token::is_well_formed(t))
}

fn message(
    app: &App,
    b: &Browser,
    status: StatusCode,
    title: &str,
    error: Option<&str>,
    notice: Option<&str>,
) -> Response {
    let context = context! {
        title => title,
        error => error.map(|id| b.message(app, id)),
        notice => notice.map(|id| b.message(app, id)),
    };
    page(app, b, status, "message.html", Kind::Token, context)
}

fn reset_form(
    app: &App,
    b: &Browser,
    status: StatusCode,
    token: Option<&str>,
    error: Option<&str>,
) -> Response {
    let context = context! {
        title => "reset-title",
        token => token,
        field => error.map(|_| "password"),
        error => error.map(|id| b.message(app, id)),
    };
    page(app, b, status, "reset_password.html", Kind::Token, context)
}

/// The page a reset link opens: the form for the new password. Changes nothing.
async fn reset_page(
    State(app): State<AppState>,
    b: Browser,
    q: Result<Query<Fields>, QueryRejection>,
) -> Response {
    let q = query(q);
    match link_token(&q) {
        Some(token) => reset_form(&app, &b, StatusCode::OK, Some(token), None),
        None => reset_form(
            &app,
            &b,
            StatusCode::BAD_REQUEST,
            None,
            Some("invalid-link"),
        ),
    }
}

/// Sets the new password as `POST /auth/password/reset` does (every session of the
/// account ends), and signs this browser in.
async fn reset(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let mut f = fields(form);
    if let Some(refusal) = csrf_refusal(&app, &b, "reset_password", &f) {
        return refusal;
    }
    let Some(token) = link_token(&f).map(str::to_owned) else {
        return reset_form(
            &app,
            &b,
            StatusCode::BAD_REQUEST,
            None,
            Some("invalid-link"),
        );
    };
    let Ok(password) = Password::parse(f.remove("password").unwrap_or_default()) else {
        return reset_form(
            &app,
            &b,
            StatusCode::BAD_REQUEST,
            Some(&token),
            Some("error-password-invalid"),
        );
    };
    let Some(lifecycle) = &app.lifecycle else {
        return reset_form(&app, &b, StatusCode::NOT_FOUND, None, Some("invalid-link"));
    };
    let account = match lifecycle
        .reset_password(&app.accounts, &token, &password)
        .await
    {
        Ok(account) => account,
        Err(LinkError::InvalidToken) => {
            return reset_form(
                &app,
                &b,
                StatusCode::BAD_REQUEST,
                None,
                Some("invalid-link"),
            );
        }
        Err(LinkError::Account(e)) => {
            let (status, _, id) = account_refusal(&e);
            return message(&app, &b, status, "reset-title", Some(id), None);
        }
    };
    let profile = match app.accounts.profile(&account).await {
        Ok(Some(profile)) => profile,
        _ => {
            return message(
                &app,
                &b,
                StatusCode::OK,
                "reset-title",
                None,
                Some("reset-done"),
            );
        }
    };
    match app
        .flow
        .finish(&profile.account, Proof::PasswordReset, &b.device)
        .await
    {
        Ok(sign_in) => signed_in(&app, &b, &sign_in, None),
        // The password is changed; signing in is for later (a disabled account, say).
        Err(_) => message(
            &app,
            &b,
            StatusCode::OK,
            "reset-title",
            None,
            Some("reset-done"),
        ),
    }
}

/// A link whose page is one button.
#[derive(Clone, Copy, Debug)]
enum Button {
    Verify,
    Confirm,
    Revert,
}

impl Button {
    /// The form's name (and the path after `/ui/`), heading, button and done message.
    fn words(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Button::Verify => (
                "verify-email",
                "verify-title",
                "verify-button",
                "verify-done",
            ),
            Button::Confirm => (
                "confirm-email",
                "confirm-title",
                "confirm-button",
                "confirm-done",
            ),
            Button::Revert => (
                "revert-email",
                "revert-title",
                "revert-button",
                "revert-done",
            ),
        }
    }
}

fn button_page(
    app: &App,
    b: &Browser,
    q: Result<Query<Fields>, QueryRejection>,
    button: Button,
) -> Response {
    let q = query(q);
    let (action, title, label, _) = button.words();
    let token = link_token(&q);
    let status = if token.is_some() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let context = context! {
        title => title,
        action => action,
        button => label,
        token => token,
        error => token.is_none().then(|| b.message(app, "invalid-link")),
    };
    page(app, b, status, "link.html", Kind::Token, context)
}

async fn button_form(
    app: &App,
    b: &Browser,
    form: Result<Form<Fields>, FormRejection>,
    button: Button,
) -> Response {
    let f = fields(form);
    let (action, title, _, done) = button.words();
    if let Some(refusal) = csrf_refusal(app, b, action, &f) {
        return refusal;
    }
    let (Some(token), Some(lifecycle)) = (link_token(&f), &app.lifecycle) else {
        return message(
            app,
            b,
            StatusCode::BAD_REQUEST,
            title,
            Some("invalid-link"),
            None,
        );
    };
    let result = match button {
        Button::Verify => lifecycle.verify_email(token).await,
        Button::Confirm => lifecycle.confirm_email_change(token).await,
        Button::Revert => lifecycle.revert_email_change(token).await,
    };
    match result {
        Ok(_) => message(app, b, StatusCode::OK, title, None, Some(done)),
        Err(LinkError::InvalidToken) => message(
            app,
            b,
            StatusCode::BAD_REQUEST,
            title,
            Some("invalid-link"),
            None,
        ),
        Err(LinkError::Account(e)) => {
            if let AccountError::Internal(e) = &e {
                tracing::error!(error = %e, ?button, "a link's page failed");
            }
            let (status, _, id) = account_refusal(&e);
            message(app, b, status, title, Some(id), None)
        }
    }
}

async fn verify_page(
    State(app): State<AppState>,
    b: Browser,
    q: Result<Query<Fields>, QueryRejection>,
) -> Response {
    button_page(&app, &b, q, Button::Verify)
}
async fn verify(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    button_form(&app, &b, form, Button::Verify).await
}
async fn confirm_page(
    State(app): State<AppState>,
    b: Browser,
    q: Result<Query<Fields>, QueryRejection>,
) -> Response {
    button_page(&app, &b, q, Button::Confirm)
}
async fn confirm(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    button_form(&app, &b, form, Button::Confirm).await
}
async fn revert_page(
    State(app): State<AppState>,
    b: Browser,
    q: Result<Query<Fields>, QueryRejection>,
) -> Response {
    button_page(&app, &b, q, Button::Revert)
}
async fn revert(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    button_form(&app, &b, form, Button::Revert).await
}
