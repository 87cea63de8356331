//! The second-factor step of a sign-in through the pages: after a first factor (a
//! password, a reset, a passkey-less sign-in) of an account that has a second factor,
//! the browser holds the pending sign-in's `mfa_token` in an HttpOnly cookie and this
//! page takes a code from the authenticator app, a recovery code, or (when the account
//! has one) a passkey. It finishes the sign-in through [`SecondFactor::verify`] and
//! [`SecondFactor::verify_passkey`], as `POST /auth/mfa/verify` and `/auth/mfa/passkey`
//! do: the same attempts, limits and single-use steps.
//!
//! Under `accounts.require_mfa`, a sign-in of an account without a factor may only
//! enroll one: the page shows the enrolment (QR code, key, code field) instead, and
//! the confirmation shows the recovery codes once and starts the session, through
//! [`SecondFactor::enrolling`] and [`SecondFactor::complete_enrollment`] as
//! `POST /auth/mfa/totp/confirm` with an `mfa_token` does.
//!
//! [`SecondFactor::verify`]: crate::signin::second_factor::SecondFactor::verify
//! [`SecondFactor::verify_passkey`]: crate::signin::second_factor::SecondFactor::verify_passkey
//! [`SecondFactor::enrolling`]: crate::signin::second_factor::SecondFactor::enrolling
//! [`SecondFactor::complete_enrollment`]: crate::signin::second_factor::SecondFactor::complete_enrollment

use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::context;
use webauthn_rs_proto::PublicKeyCredential;

use super::account::{EnrolmentForms, codes_page, enrollment_page, factor_shown, shown};
use super::{
    Browser, Fields, Kind, csrf_refusal, field, page, pending_cookie_name, session_cookies,
    session_started, set_cookie,
};
use crate::app::App;
use crate::http::AppState;
use crate::signin::second_factor::FactorError;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/second-factor", get(step_page).post(step))
        .route("/ui/second-factor/passkey/options", post(passkey_options))
        .route("/ui/second-factor/passkey", post(passkey))
        .route("/ui/second-factor/enroll", post(enroll))
        .route("/ui/second-factor/confirm", post(confirm))
}

/// The enrolment forms of a sign-in that must enroll.
const SIGN_IN_ENROLMENT: EnrolmentForms = EnrolmentForms {
    confirm: ("/ui/second-factor/confirm", "second_factor_confirm"),
    restart: ("/ui/second-factor/enroll", "second_factor_enroll"),
    back: ("/ui/sign-in", "sign-in-again"),
};

fn fields(form: Result<Form<Fields>, FormRejection>) -> Fields {
    form.map(|Form(f)| f).unwrap_or_default()
}

/// The step's page for what the pending sign-in may do (`methods`): the code form
/// (and the passkey button when `passkey` is among them), or, for `enroll_totp`, the
/// button that starts the enrolment.
async fn form(
    app: &App,
    b: &Browser,
    status: StatusCode,
    methods: &[&str],
    return_to: Option<&str>,
    error: Option<&str>,
) -> Response {
    let return_to = checked(app, return_to);
    let enroll = methods.contains(&"enroll_totp");
    let context = context! {
        title => if enroll { "totp-enroll-title" } else { "second-factor-title" },
        enroll => enroll,
        passkey => app.settings.passkeys.enabled && methods.contains(&"passkey"),
        return_to => return_to.as_deref().unwrap_or_default(),
        error => error.map(|id| b.message(app, id)),
    };
    let res = page(app, b, status, "second_factor.html", Kind::Plain, context);
    super::for_client(app, return_to.as_deref(), res).await
}

/// `return_to` when it is allowed.
fn checked(app: &App, return_to: Option<&str>) -> Option<String> {
    return_to.and_then(|r| super::pages(app).return_origins().check(r))
}

/// The pending sign-in is gone (expired, used, out of tries) or never was: start over.
fn start_over(app: &App, b: &Browser, status: StatusCode) -> Response {
    let context = context! {
        title => "second-factor-title",
        error => b.message(app, "error-second-factor-expired"),
    };
    let mut res = page(app, b, status, "message.html", Kind::Plain, context);
    if b.pending.is_some() {
        res.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(pending_cookie_name(b.secure), None, 0, b.secure),
        );
    }
    res
}

fn internal(app: &App, b: &Browser, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "the second-factor page failed");
    let context = context! {
        title => "second-factor-title",
        error => b.message(app, "error-internal"),
    };
    page(
        app,
        b,
        StatusCode::INTERNAL_SERVER_ERROR,
        "message.html",
        Kind::Plain,
        context,
    )
}

/// What the browser's pending sign-in may do next, or the page that says to start
/// over (none, or no longer pending).
async fn pending_methods(app: &App, b: &Browser) -> Result<Vec<&'static str>, Response> {
    let Some(token) = b.pending.as_deref() else {
        return Err(start_over(app, b, StatusCode::BAD_REQUEST));
    };
    match app.second_factor.pending_methods(token).await {
        Ok(Some(methods)) => Ok(methods),
        Ok(None) => Err(start_over(app, b, StatusCode::UNAUTHORIZED)),
        Err(e) => Err(internal(app, b, e)),
    }
}

async fn step_page(
    State(app): State<AppState>,
    b: Browser,
    q: Result<Query<Fields>, QueryRejection>,
) -> Response {
    let q = q.map(|Query(f)| f).unwrap_or_default();
    match pending_methods(&app, &b).await {
        Ok(methods) => {
            form(
                &app,
                &b,
                StatusCode::OK,
                &methods,
                field(&q, "return_to"),
                None,
            )
            .await
        }
        Err(res) => res,
    }
}

/// The page of a refused code or passkey, `error` at the field, with the methods the
/// pending sign-in still offers (or the page to start over, once it is void).
async fn refused_step(app: &App, b: &Browser, e: FactorError, return_to: Option<&str>) -> Response {
    let (status, id) = match e {
        FactorError::WrongCode => (StatusCode::UNAUTHORIZED, "error-code-wrong"),
        FactorError::WrongPasskey => (StatusCode::UNAUTHORIZED, "error-passkey"),
        FactorError::TooManyFailures { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, "error-code-too-many")
        }
        FactorError::EnrollFirst => (StatusCode::FORBIDDEN, "error-enroll-first"),
        FactorError::Disabled => (StatusCode::FORBIDDEN, "error-disabled"),
        FactorError::Internal(e) => return internal(app, b, e),
        _ => return start_over(app, b, StatusCode::UNAUTHORIZED),
    };
    match pending_methods(app, b).await {
        Ok(methods) => form(app, b, status, &methods, return_to, Some(id)).await,
        Err(res) => res,
    }
}

async fn step(
    State(app): State<AppState>,
    b: Browser,
    f: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(f);
    if let Some(refusal) = csrf_refusal(&app, &b, "second_factor", &f) {
        return refusal;
    }
    let return_to = field(&f, "return_to");
    let Some(token) = b.pending.as_deref() else {
        return start_over(&app, &b, StatusCode::BAD_REQUEST);
    };
    let code: String = field(&f, "code")
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if code.is_empty() {
        return match pending_methods(&app, &b).await {
            Ok(methods) => {
                form(
                    &app,
                    &b,
                    StatusCode::BAD_REQUEST,
                    &methods,
                    return_to,
                    Some("error-code-missing"),
                )
                .await
            }
            Err(res) => res,
        };
    }
    match app.second_factor.verify(token, &code, &b.device).await {
        Ok(verified) => {
            if let Some(left) = verified.recovery_code_used {
                crate::http::mfa::tell_owner(&app, &verified.account, "recovery_code_used", left)
                    .await;
            }
            session_started(&app, &b, &verified.sign_in, return_to)
        }
        Err(e) => refused_step(&app, &b, e, return_to).await,
    }
}

/// The passkey ceremony's options, for a browser with a pending sign-in: the passkey
/// sign-in's own (`POST /auth/passkeys/login/options`).
async fn passkey_options(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    if let Some(refusal) = csrf_refusal(&app, &b, "second_factor_passkey", &fields(form)) {
        return refusal;
    }
    if let Err(res) = pending_methods(&app, &b).await {
        return res;
    }
    match app.passkeys.begin_login().await {
        Ok(begun) => {
            let body =
                serde_json::json!({ "ceremony": begun.ceremony, "publicKey": begun.public_key });
            let mut res = axum::Json(body).into_response();
            crate::http::reply::no_store(&mut res);
            res
        }
        Err(e) => internal(&app, &b, e),
    }
}

/// The second step with a passkey, as `POST /auth/mfa/passkey`: the assertion must be
/// of the pending sign-in's own account, and counts as one of its attempts.
async fn passkey(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    if let Some(refusal) = csrf_refusal(&app, &b, "second_factor_passkey", &f) {
        return refusal;
    }
    let return_to = field(&f, "return_to");
    let Some(token) = b.pending.as_deref() else {
        return start_over(&app, &b, StatusCode::BAD_REQUEST);
    };
    let ceremony = field(&f, "ceremony").filter(|c| !c.is_empty());
    let credential =
        field(&f, "credential").and_then(|c| serde_json::from_str::<PublicKeyCredential>(c).ok());
    let proven = match (ceremony, credential) {
        (Some(ceremony), Some(credential)) => {
            match app.passkeys.finish_login(ceremony, &credential).await {
                Ok(account) => Some(account),
                Err(crate::signin::passkeys::PasskeyError::Internal(e)) => {
                    return internal(&app, &b, e);
                }
                Err(e) => {
                    tracing::info!(error = %e, "second factor (pages): a passkey assertion was refused");
                    None
                }
            }
        }
        _ => None,
    };
    match app
        .second_factor
        .verify_passkey(token, proven.as_ref(), &b.device)
        .await
    {
        Ok(verified) => session_started(&app, &b, &verified.sign_in, return_to),
        Err(e) => refused_step(&app, &b, e, return_to).await,
    }
}

/// A sign-in that must enroll starts (or restarts) its enrolment: the QR code and the
/// key, once, and the code field.
async fn enroll(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    if let Some(refusal) = csrf_refusal(&app, &b, "second_factor_enroll", &f) {
        return refusal;
    }
    let return_to = field(&f, "return_to");
    let Some(token) = b.pending.as_deref() else {
        return start_over(&app, &b, StatusCode::BAD_REQUEST);
    };
    let attempt = match app.second_factor.enrolling(token).await {
        Ok(attempt) => attempt,
        Err(e) => return refused_step(&app, &b, e, return_to).await,
    };
    let account = match app.accounts.profile(&attempt.account).await {
        Ok(Some(profile)) => profile.account,
        Ok(None) => return start_over(&app, &b, StatusCode::UNAUTHORIZED),
        Err(e) => return internal(&app, &b, e),
    };
    match app.second_factor.enroll(&account).await {
        Ok(enrollment) => enrollment_page(
            &app,
            &b,
            &SIGN_IN_ENROLMENT,
            Some(&enrollment),
            checked(&app, return_to).as_deref(),
            None,
        ),
        Err(e) => refused_step(&app, &b, e, return_to).await,
    }
}

/// The enrolment's confirmation: the recovery codes, once, on the page that also
/// starts the session (its cookie set, the pending sign-in's cleared).
async fn confirm(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    if let Some(refusal) = csrf_refusal(&app, &b, "second_factor_confirm", &f) {
        return refusal;
    }
    let return_to = field(&f, "return_to");
    let Some(token) = b.pending.as_deref() else {
        return start_over(&app, &b, StatusCode::BAD_REQUEST);
    };
    let code: String = field(&f, "code")
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let kept = checked(&app, return_to);
    let again = |error| {
        enrollment_page(
            &app,
            &b,
            &SIGN_IN_ENROLMENT,
            None,
            kept.as_deref(),
            Some(error),
        )
    };
    if code.is_empty() {
        let error = shown(StatusCode::BAD_REQUEST, "code", "error-code-missing");
        return again(error);
    }
    let attempt = match app.second_factor.enrolling(token).await {
        Ok(attempt) => attempt,
        Err(e) => return refused_step(&app, &b, e, return_to).await,
    };
    let codes = match app.second_factor.confirm(&attempt.account, &code).await {
        Ok(codes) => codes,
        Err(e @ (FactorError::Internal(_) | FactorError::Disabled)) => {
            return refused_step(&app, &b, e, return_to).await;
        }
        Err(e) => return again(factor_shown("code", e)),
    };
    let sign_in = match app
        .second_factor
        .complete_enrollment(&attempt, token, &b.device)
        .await
    {
        Ok(sign_in) => sign_in,
        Err(e) => return refused_step(&app, &b, e, return_to).await,
    };
    let next = super::pages(&app).return_origins().or_fallback(return_to);
    let mut res = codes_page(&app, &b, &codes, Some(&next));
    session_cookies(&app, &b, &sign_in, &mut res);
    res
}
