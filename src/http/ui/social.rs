//! Where a social callback ends through the pages: the session (or the second-factor
//! step) as every page sign-in ends, or a page that says what went wrong and links
//! back to the sign-in page, never to the provider again (no loop).

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use minijinja::context;

use super::{Browser, Kind, page, signed_in};
use crate::http::AppState;
use crate::signin::flow::Finished;

/// The session of a social sign-in, as [`signed_in`] sets it.
pub(in crate::http) async fn social_signed_in(
    app: &AppState,
    parts: &mut Parts,
    finished: &Finished,
    return_to: Option<&str>,
) -> Response {
    let Ok(b) = Browser::from_request_parts(parts, app).await;
    signed_in(app, &b, finished, return_to)
}

/// A refused social sign-in: the message of `code` (`social-<code>`), with `status`.
pub(in crate::http) async fn social_refused(
    app: &AppState,
    parts: &mut Parts,
    status: StatusCode,
    code: &str,
) -> Response {
    let Ok(b) = Browser::from_request_parts(parts, app).await;
    let message = match code {
        "internal" => b.message(app, "error-internal"),
        code => b.message(app, &format!("social-{code}")),
    };
    let context = context! { title => "sign-in", error => message, code => code };
    page(app, &b, status, "message.html", Kind::Plain, context)
}
