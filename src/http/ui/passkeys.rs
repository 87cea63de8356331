//! Passkeys on the pages: sign-in (the button and conditional UI), passkey-only
//! sign-up, and adding one from the account page. The script (`/ui/assets/
//! passkeys.js`) asks for a ceremony's options here, runs it in the browser, and
//! submits the credential with the page's form; the ceremonies are the passkey
//! sign-in's own ([`crate::signin::passkeys`]), kept in the database as for the API.

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use webauthn_rs_proto::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::pages::sign_in_refused;
use super::{Browser, Fields, csrf_refusal, field, redirect, signed_in};
use crate::app::App;
use crate::domain::AccountId;
use crate::http::AppState;
use crate::metrics::{Outcome, SignInMethod};
use crate::signin::flow::Proof;
use crate::signin::passkeys::{Begun, PasskeyError};

pub(super) fn router(app: &App) -> Router<AppState> {
    if !app.settings.passkeys.enabled {
        return Router::new();
    }
    Router::new()
        .route("/ui/passkey/options", post(sign_in_options))
        .route("/ui/passkey", post(sign_in))
        .route("/ui/sign-up/passkey/options", post(sign_up_options))
        .route("/ui/sign-up/passkey", post(sign_up))
        .route("/ui/account/passkeys/options", post(add_options))
        .route("/ui/account/passkeys/add", post(add))
}

fn fields(form: Result<Form<Fields>, FormRejection>) -> Fields {
    form.map(|Form(f)| f).unwrap_or_default()
}

/// A ceremony's options, as the API's `CeremonyResponse`.
fn options(begun: Result<Begun, PasskeyError>) -> Response {
    match begun {
        Ok(begun) => {
            let body =
                serde_json::json!({ "ceremony": begun.ceremony, "publicKey": begun.public_key });
            let mut res = axum::Json(body).into_response();
            crate::http::reply::no_store(&mut res);
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "a passkey ceremony of the pages could not begin");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The ceremony and credential a passkey form carries.
fn credential<C: serde::de::DeserializeOwned>(fields: &Fields) -> Option<(String, C)> {
    let ceremony = field(fields, "ceremony").filter(|c| !c.is_empty())?;
    let credential = serde_json::from_str(field(fields, "credential")?).ok()?;
    Some((ceremony.to_owned(), credential))
}

async fn sign_in_options(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    if let Some(refusal) = csrf_refusal(&app, &b, "passkey", &fields(form)) {
        return refusal;
    }
    options(app.passkeys.begin_login().await)
}

/// Starts the session of `account`, proven by a passkey, through the sign-in flow.
async fn start(app: &App, b: &Browser, account: &AccountId, return_to: Option<&str>) -> Response {
    let profile = match app.accounts.profile(account).await {
        Ok(Some(profile)) => profile,
        _ => {
            return sign_in_refused(
                app,
                b,
                return_to,
                StatusCode::INTERNAL_SERVER_ERROR,
                "error-internal",
            )
            .await;
        }
    };
    match app
        .flow
        .finish(&profile.account, Proof::Passkey, &b.device)
        .await
    {
        Ok(sign_in) => {
            app.metrics.sign_in(SignInMethod::Passkey, Outcome::Success);
            signed_in(app, b, &sign_in, return_to)
        }
        Err(crate::signin::flow::Refused::Disabled) => {
            app.metrics
                .sign_in(SignInMethod::Passkey, Outcome::Disabled);
            sign_in_refused(app, b, return_to, StatusCode::FORBIDDEN, "error-disabled").await
        }
        Err(e) => {
            tracing::error!(error = %e, "a passkey sign-in of the pages failed");
            sign_in_refused(
                app,
                b,
                return_to,
                StatusCode::INTERNAL_SERVER_ERROR,
                "error-internal",
            )
            .await
        }
    }
}

async fn sign_in(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    let return_to = field(&f, "return_to");
    let refused = |status, id| sign_in_refused(&app, &b, return_to, status, id);
    if let Some(refusal) = csrf_refusal(&app, &b, "passkey", &f) {
        return refusal;
    }
    let Some((ceremony, credential)) = credential::<PublicKeyCredential>(&f) else {
        return refused(StatusCode::BAD_REQUEST, "error-passkey").await;
    };
    match app.passkeys.finish_login(&ceremony, &credential).await {
        Ok(account) => start(&app, &b, &account, field(&f, "return_to")).await,
        Err(e) => {
            tracing::info!(error = %e, "a passkey sign-in of the pages was refused");
            app.metrics.sign_in(SignInMethod::Passkey, Outcome::Failure);
            refused(StatusCode::UNAUTHORIZED, "error-passkey").await
        }
    }
}

async fn sign_up_options(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    if let Some(refusal) = csrf_refusal(&app, &b, "passkey_sign_up", &fields(form)) {
        return refusal;
    }
    options(
        app.passkeys
            .begin_registration(None, "Gatehouse account")
            .await,
    )
}

/// Passkey-only sign-up: the ceremony creates an account whose only way in is the
/// passkey, signed in at once.
async fn sign_up(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    if let Some(refusal) = csrf_refusal(&app, &b, "passkey_sign_up", &f) {
        return refusal;
    }
    let (app_, b_) = (&app, &b);
    let fail = |status| {
        let mut kept = Fields::new();
        if let Some(r) = field(&f, "return_to") {
            kept.insert("return_to".into(), r.to_owned());
        }
        async move {
            super::pages::sign_up_form(app_, b_, status, &kept, Some(("", "error-passkey")), None)
                .await
        }
    };
    let Some((ceremony, credential)) = credential::<RegisterPublicKeyCredential>(&f) else {
        return fail(StatusCode::BAD_REQUEST).await;
    };
    match app
        .passkeys
        .finish_registration(&ceremony, &credential, None, None)
        .await
    {
        Ok(registered) => match registered.new_account {
            Some(account) => start(&app, &b, &account, field(&f, "return_to")).await,
            None => fail(StatusCode::BAD_REQUEST).await,
        },
        Err(e) => {
            tracing::info!(error = %e, "a passkey sign-up of the pages was refused");
            fail(StatusCode::BAD_REQUEST).await
        }
    }
}

/// The signed-in session, if it may add a way in (the step-up rule).
async fn recent(app: &App, b: &Browser) -> Result<crate::sessions::Authenticated, Response> {
    let Some(session) = b.session(app).await else {
        return Err(redirect(app, "/ui/sign-in?return_to=%2Fui%2Faccount"));
    };
    if let Err(message) = super::account::step_up(app, &session).await {
        return Err(super::account::again(app, b, &session, message).await);
    }
    Ok(session)
}

async fn add_options(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    if let Some(refusal) = csrf_refusal(&app, &b, "add_passkey", &fields(form)) {
        return refusal;
    }
    let session = match recent(&app, &b).await {
        Ok(s) => s,
        Err(_) => return StatusCode::FORBIDDEN.into_response(),
    };
    let name = match app.accounts.profile(&session.account).await {
        Ok(Some(p)) => p
            .account
            .email
            .unwrap_or_else(|| "Gatehouse account".into()),
        _ => "Gatehouse account".into(),
    };
    options(
        app.passkeys
            .begin_registration(Some(&session.account), &name)
            .await,
    )
}

async fn add(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    if let Some(refusal) = csrf_refusal(&app, &b, "add_passkey", &f) {
        return refusal;
    }
    let session = match recent(&app, &b).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    let Some((ceremony, credential)) = credential::<RegisterPublicKeyCredential>(&f) else {
        return super::account::passkey_failed(&app, &b, &session).await;
    };
    match app
        .passkeys
        .finish_registration(&ceremony, &credential, None, Some(&session.account))
        .await
    {
        Ok(_) => redirect(&app, "/ui/account?done=passkey-added"),
        Err(e) => {
            tracing::info!(error = %e, "adding a passkey from the pages was refused");
            super::account::passkey_failed(&app, &b, &session).await
        }
    }
}
