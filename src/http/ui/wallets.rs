//! Sign-In with Ethereum on the sign-in page. The script (`/ui/assets/siwe.js`) asks
//! the browser's wallet (EIP-1193, `window.ethereum`) for its address, asks here for
//! the EIP-4361 message to sign (built by the server, so it is exactly what the SIWE
//! checks expect: the configured site, chain, a new nonce, the EIP-55 address), has
//! the wallet `personal_sign` it, and submits the page's form with the message and the
//! signature. The form's route checks them through the same [`Siwe::sign_in`] as
//! `POST /auth/siwe` and ends in [`signed_in`]: the session cookie (or the second
//! factor), never tokens in the page's storage.
//!
//! [`Siwe::sign_in`]: crate::signin::siwe::Siwe::sign_in

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use time::OffsetDateTime;

use super::pages::sign_in_refused;
use super::{Browser, Fields, csrf_refusal, field, signed_in};
use crate::app::App;
use crate::http::AppState;
use crate::metrics::{Outcome, SignInMethod};
use crate::signin::flow::{Proof, Refused};
use crate::signin::siwe::{Siwe, SiweError};

pub(super) fn router(app: &App) -> Router<AppState> {
    if !app.settings.siwe.enabled {
        return Router::new();
    }
    Router::new()
        .route("/ui/sign-in/siwe/message", post(message))
        .route("/ui/sign-in/siwe", post(sign_in))
}

fn fields(form: Result<Form<Fields>, FormRejection>) -> Fields {
    form.map(|Form(f)| f).unwrap_or_default()
}

fn service(app: &App) -> Siwe<'_> {
    Siwe::new(app.store.as_ref(), &app.tokens, &app.siwe)
}

/// The message for the wallet's `address` to sign: `{"message"}`.
async fn message(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    if let Some(refusal) = csrf_refusal(&app, &b, "siwe", &f) {
        return refusal;
    }
    let site = app.settings.http.public_url.as_deref().and_then(|u| {
        let url = url::Url::parse(u).ok()?;
        Some(url.origin().ascii_serialization())
    });
    let address = field(&f, "address").unwrap_or_default();
    match service(&app)
        .page_message(
            address,
            site.as_deref(),
            "/ui/sign-in",
            OffsetDateTime::now_utc(),
        )
        .await
    {
        Ok(message) => {
            let mut res = axum::Json(serde_json::json!({ "message": message })).into_response();
            crate::http::reply::no_store(&mut res);
            res
        }
        Err(SiweError::Grammar(_)) => StatusCode::BAD_REQUEST.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the sign-in page's SIWE message failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
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
    if let Some(refusal) = csrf_refusal(&app, &b, "siwe", &f) {
        return refusal;
    }
    let (Some(text), Some(signature)) = (field(&f, "message"), field(&f, "signature")) else {
        return refused(StatusCode::BAD_REQUEST, "error-siwe").await;
    };
    // A form post sends its line breaks as CRLF (HTML's form encoding); the wallet
    // signed the message with LF, which EIP-4361 uses and no message holds a CR of.
    let text = text.replace("\r\n", "\n");
    let verified = service(&app)
        .sign_in(&text, signature, None, OffsetDateTime::now_utc())
        .await;
    let signed = match verified {
        Ok(signed) => signed,
        Err(SiweError::AccountDisabled) => {
            app.metrics.sign_in(SignInMethod::Siwe, Outcome::Disabled);
            return refused(StatusCode::FORBIDDEN, "error-disabled").await;
        }
        Err(SiweError::Internal(e)) => {
            tracing::error!(error = %e, "a SIWE sign-in of the pages failed");
            app.metrics.sign_in(SignInMethod::Siwe, Outcome::Error);
            return refused(StatusCode::INTERNAL_SERVER_ERROR, "error-internal").await;
        }
        Err(e) => {
            tracing::info!(error = %e, "a SIWE sign-in of the pages was refused");
            app.metrics.sign_in(SignInMethod::Siwe, Outcome::Failure);
            let status = match e {
                SiweError::Grammar(_) | SiweError::MalformedSignature => StatusCode::BAD_REQUEST,
                _ => StatusCode::UNAUTHORIZED,
            };
            return refused(status, "error-siwe").await;
        }
    };
    match app
        .flow
        .finish(&signed.account, Proof::Siwe, &b.device)
        .await
    {
        Ok(finished) => {
            app.metrics.sign_in(SignInMethod::Siwe, Outcome::Success);
            signed_in(&app, &b, &finished, return_to)
        }
        Err(Refused::Disabled) => {
            app.metrics.sign_in(SignInMethod::Siwe, Outcome::Disabled);
            refused(StatusCode::FORBIDDEN, "error-disabled").await
        }
        Err(e) => {
            tracing::error!(error = %e, "a SIWE sign-in of the pages failed");
            refused(StatusCode::INTERNAL_SERVER_ERROR, "error-internal").await
        }
    }
}
