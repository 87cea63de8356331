//! Login with SelfKey on the sign-in page. The script (`/ui/assets/selfkey.js`) hands
//! the page's `lws.init` object (`GET {selfkey.mount}/config`) to the SelfKey
//! extension (or to lws.js); the wallet answers the server's challenge and fetches its
//! single-use login token itself (`{selfkey.mount}/auth/token`), and the token comes
//! back to the page, which posts it with the form's CSRF token here. The route redeems
//! it through the same [`SelfKey::redeem_login_token`] as `POST {mount}/login`, hands
//! the account to the sign-in flow, and ends in [`signed_in`]: the session cookie (or
//! the second factor), never tokens in the page's storage.
//!
//! [`SelfKey::redeem_login_token`]: crate::signin::selfkey::SelfKey::redeem_login_token

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;

use super::pages::sign_in_refused;
use super::{Browser, Fields, csrf_refusal, field, signed_in};
use crate::app::App;
use crate::crypto::jwt::TokenError;
use crate::http::AppState;
use crate::metrics::{Outcome, SignInMethod};
use crate::signin::flow::{Proof, Refused};
use crate::signin::selfkey::{SelfKey, SelfKeyError};

pub(super) fn router(app: &App) -> Router<AppState> {
    if !app.settings.selfkey.enabled {
        return Router::new();
    }
    Router::new().route("/ui/sign-in/selfkey", post(sign_in))
}

/// The wallet's login token, from the form: redeemed once, then the sign-in flow.
async fn sign_in(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = form.map(|Form(f)| f).unwrap_or_default();
    let return_to = field(&f, "return_to");
    let refused = |status, id| sign_in_refused(&app, &b, return_to, status, id);
    if let Some(refusal) = csrf_refusal(&app, &b, "selfkey", &f) {
        return refusal;
    }
    let Some(token) = field(&f, "token").filter(|t| !t.is_empty()) else {
        return refused(StatusCode::BAD_REQUEST, "error-selfkey").await;
    };
    let service = SelfKey::new(app.store.as_ref(), &app.tokens, &app.settings.selfkey);
    let account = match service.redeem_login_token(token).await {
        Ok(account) => account,
        Err(SelfKeyError::Internal(e)) => {
            tracing::error!(error = %e, "a SelfKey sign-in of the pages failed");
            app.metrics.sign_in(SignInMethod::Selfkey, Outcome::Error);
            return refused(StatusCode::INTERNAL_SERVER_ERROR, "error-internal").await;
        }
        Err(e) => {
            tracing::info!(error = %e, "a SelfKey sign-in of the pages was refused");
            app.metrics.sign_in(SignInMethod::Selfkey, Outcome::Failure);
            let status = match e {
                SelfKeyError::Token(TokenError::Malformed | TokenError::Kind) => {
                    StatusCode::BAD_REQUEST
                }
                _ => StatusCode::UNAUTHORIZED,
            };
            return refused(status, "error-selfkey").await;
        }
    };
    match app.flow.finish(&account, Proof::Selfkey, &b.device).await {
        Ok(finished) => {
            app.metrics.sign_in(SignInMethod::Selfkey, Outcome::Success);
            signed_in(&app, &b, &finished, return_to)
        }
        Err(Refused::Disabled) => {
            app.metrics
                .sign_in(SignInMethod::Selfkey, Outcome::Disabled);
            refused(StatusCode::FORBIDDEN, "error-disabled").await
        }
        Err(e) => {
            tracing::error!(error = %e, "a SelfKey sign-in of the pages failed");
            app.metrics.sign_in(SignInMethod::Selfkey, Outcome::Error);
            refused(StatusCode::INTERNAL_SERVER_ERROR, "error-internal").await
        }
    }
}
