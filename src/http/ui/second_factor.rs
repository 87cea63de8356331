//! The second-factor step of a sign-in through the pages: after a first factor (a
//! password, a reset, a passkey-less sign-in) of an account that has a second factor,
//! the browser holds the pending sign-in's `mfa_token` in an HttpOnly cookie and this
//! page takes a code from the authenticator app or a recovery code. It finishes the
//! sign-in through [`SecondFactor::verify`], as `POST /auth/mfa/verify` does: the same
//! attempts, limits and single-use steps.
//!
//! [`SecondFactor::verify`]: crate::signin::second_factor::SecondFactor::verify

use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use minijinja::context;

use super::{
    Browser, Fields, Kind, csrf_refusal, field, page, pending_cookie_name, session_started,
    set_cookie,
};
use crate::app::App;
use crate::http::AppState;
use crate::signin::second_factor::FactorError;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/ui/second-factor", get(step_page).post(step))
}

fn form(
    app: &App,
    b: &Browser,
    status: StatusCode,
    return_to: Option<&str>,
    error: Option<&str>,
) -> Response {
    let return_to = return_to.and_then(|r| super::pages(app).return_origins().check(r));
    let context = context! {
        title => "second-factor-title",
        return_to => return_to.as_deref().unwrap_or_default(),
        error => error.map(|id| b.message(app, id)),
    };
    page(app, b, status, "second_factor.html", Kind::Plain, context)
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

async fn step_page(
    State(app): State<AppState>,
    b: Browser,
    q: Result<Query<Fields>, QueryRejection>,
) -> Response {
    let q = q.map(|Query(f)| f).unwrap_or_default();
    if b.pending.is_none() {
        return start_over(&app, &b, StatusCode::BAD_REQUEST);
    }
    form(&app, &b, StatusCode::OK, field(&q, "return_to"), None)
}

async fn step(
    State(app): State<AppState>,
    b: Browser,
    f: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = f.map(|Form(f)| f).unwrap_or_default();
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
        return form(
            &app,
            &b,
            StatusCode::BAD_REQUEST,
            return_to,
            Some("error-code-missing"),
        );
    }
    match app.second_factor.verify(token, &code, &b.device).await {
        Ok(verified) => {
            if let Some(left) = verified.recovery_code_used {
                crate::http::mfa::tell_owner(&app, &verified.account, "recovery_code_used", left)
                    .await;
            }
            session_started(&app, &b, &verified.sign_in, return_to)
        }
        Err(FactorError::WrongCode) => form(
            &app,
            &b,
            StatusCode::UNAUTHORIZED,
            return_to,
            Some("error-code-wrong"),
        ),
        Err(FactorError::TooManyFailures { .. }) => form(
            &app,
            &b,
            StatusCode::TOO_MANY_REQUESTS,
            return_to,
            Some("error-code-too-many"),
        ),
        Err(FactorError::EnrollFirst) => form(
            &app,
            &b,
            StatusCode::FORBIDDEN,
            return_to,
            Some("error-enroll-first"),
        ),
        Err(FactorError::Disabled) => form(
            &app,
            &b,
            StatusCode::FORBIDDEN,
            return_to,
            Some("error-disabled"),
        ),
        Err(FactorError::Internal(e)) => {
            tracing::error!(error = %e, "the second-factor page failed");
            form(
                &app,
                &b,
                StatusCode::INTERNAL_SERVER_ERROR,
                return_to,
                Some("error-internal"),
            )
        }
        Err(_) => start_over(&app, &b, StatusCode::UNAUTHORIZED),
    }
}
