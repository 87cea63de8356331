//! The per-address rate limit on the routes that authenticate someone or issue
//! tokens. Counts live in the database ([`Store::hit`](crate::store::Store::hit)), so
//! every node behind a load balancer sees the same count.
//!
//! Counted: every `POST` under `/ui` (the hosted pages' forms), not their `GET`s.
//! Not counted: `GET /auth/me` and the other token checks (there is no secret to
//! guess, and `GET /auth/me` is the hot path; `DELETE /auth/me`, which wipes an
//! account, is counted like the other lifecycle routes), `/health`, `/ready`,
//! `/openapi.json`, and the OwnID routes (called only by OwnID's servers, and every
//! request must carry a valid HMAC).

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::client::{bucket, client_of};
use super::error::ApiError;
use super::selfkey::error::SelfKeyApiError;
use crate::config::Settings;
use crate::domain::unix_now;

/// Counts the request against its client's address when it goes to a limited route,
/// and answers 429 with `Retry-After` once the address is over the limit.
pub async fn per_address(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let limits = &app.settings.rate_limit;
    if !limits.enabled || !is_limited(req.method(), req.uri().path(), &app.settings) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let client = client_of(&parts, &app);
    let req = Request::from_parts(parts, body);
    let Ok(ip) = client else {
        return unreadable_client(req.uri().path(), &app.settings);
    };
    let now = unix_now();
    let window = limits.per_address_window_secs;
    match app.store.hit(&bucket(ip), now, window).await {
        Ok(c) if c.count > limits.per_address => {
            app.metrics.refused(crate::metrics::Limit::Address);
            let retry_after_secs = c.window_start + window - now;
            if under(req.uri().path(), "/ui") {
                // A browser's form: a page, not JSON.
                let (mut parts, _) = req.into_parts();
                return super::ui::too_many(&app, &mut parts, retry_after_secs).await;
            }
            too_many(req.uri().path(), &app.settings, retry_after_secs)
        }
        Ok(_) => next.run(req).await,
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// A 429 in the wire format of the surface it answers for: SelfKey's and SIWE's errors
/// carry a `code` (the wallet and the page read it), the others the seed's `{"message"}`
/// (the hosted pages' forms get a page: [`super::ui::too_many`]).
fn too_many(path: &str, settings: &Settings, retry_after_secs: i64) -> Response {
    let mut res = ApiError::TooManyRequests { retry_after_secs }.into_response();
    if under(path, &settings.selfkey.mount) || under(path, SIWE) {
        let retry_after = res.headers_mut().remove(header::RETRY_AFTER);
        res = SelfKeyApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Too many requests; try again later.",
        )
        .into_response();
        if let Some(value) = retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    res
}

/// A 400 for a request whose client address the trusted proxy wrote unreadably.
fn unreadable_client(path: &str, settings: &Settings) -> Response {
    const MESSAGE: &str = "The proxy's X-Forwarded-For names a client that is not an address.";
    if under(path, &settings.selfkey.mount) {
        SelfKeyApiError::bad_request("invalid_forwarded_for", MESSAGE).into_response()
    } else {
        ApiError::BadRequest(MESSAGE.into()).into_response()
    }
}

fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The SIWE routes (nonce and sign-in), which answer in SelfKey's coded format.
const SIWE: &str = "/auth/siwe";

/// The password, passkey, SIWE, social and lifecycle routes (account deletion among them),
/// the second factor's changes and codes, and everything under the SelfKey mount, so
/// that SelfKey routes added there are limited without further wiring.
fn is_limited(method: &Method, path: &str, settings: &Settings) -> bool {
    if path == "/auth/me" {
        return method == Method::DELETE;
    }
    if under(path, "/auth/mfa") {
        return method != Method::GET;
    }
    // The hosted pages' forms (sign-in, sign-up, resets, the account's changes); their
    // GETs hold no secret to guess.
    if under(path, "/ui") {
        return method == Method::POST;
    }
    [
        "/auth/register",
        "/auth/login",
        "/auth/password",
        "/auth/pages",
        "/auth/passkeys",
        SIWE,
        "/auth/verify-email",
        "/auth/email",
        // Each sign-in begun writes a row, each callback calls the provider, and an
        // exchange code is a secret to guess.
        "/auth/social",
        &settings.selfkey.mount,
    ]
    .iter()
    .any(|prefix| under(path, prefix))
}

/// Declares in the OpenAPI document the answers the middleware gives on top of each
/// handler's own: `408` on every route (`http.request_timeout_secs`), and `429` on
/// every route this limit counts. Done here, once, so a new route gets them too.
pub fn document(api: &mut utoipa::openapi::OpenApi, settings: &Settings) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let answer = |description: &str, schema: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(schema)))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in api.paths.paths.iter_mut() {
        let selfkey = under(path, &settings.selfkey.mount) || under(path, SIWE);
        let operations = [
            (Method::GET, &mut item.get),
            (Method::PUT, &mut item.put),
            (Method::POST, &mut item.post),
            (Method::DELETE, &mut item.delete),
            (Method::PATCH, &mut item.patch),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let limited = is_limited(&method, path, settings);
            let responses = &mut operation.responses.responses;
            responses.entry("408".into()).or_insert_with(|| {
                answer(
                    "The request took longer than `http.request_timeout_secs`",
                    "ErrorBody",
                )
            });
            if limited {
                let (description, schema) = if selfkey {
                    (
                        "`too_many_requests`: too many requests from this address; see Retry-After",
                        "SelfKeyErrorBody",
                    )
                } else {
                    (
                        "Too many requests from this address; see Retry-After",
                        "ErrorBody",
                    )
                };
                responses
                    .entry("429".into())
                    .or_insert_with(|| answer(description, schema));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    #[test]
    fn limits_the_auth_routes_and_the_selfkey_mount_only() {
        let settings = Settings::default();
        assert!(is_limited(&Method::DELETE, "/auth/me", &settings));
        assert!(!is_limited(&Method::GET, "/auth/me", &settings));
        for path in [
            "/auth/register",
            "/auth/login",
            "/auth/password/forgot",
            "/auth/password/reset",
            "/auth/pages/reset-password",
            "/api/v1/selfkey",
            "/api/v1/selfkey/auth/challenge",
            "/api/v1/selfkey/users/token",
            "/auth/passkeys/login/options",
            "/auth/mfa/verify",
            "/auth/mfa/totp/confirm",
            "/auth/social/exchange",
            "/auth/social/google/callback",
        ] {
            assert!(is_limited(&Method::POST, path, &settings), "{path}");
        }
        assert!(is_limited(&Method::GET, "/auth/social/google", &settings));
        assert!(!is_limited(&Method::GET, "/auth/mfa", &settings));
        for path in [
            "/auth/me",
            "/auth/loginx",
            "/health",
            "/ready",
            "/openapi.json",
            "/ownid/getSessionByLoginId",
            "/api/v1/selfkeyx",
            "/",
        ] {
            assert!(!is_limited(&Method::GET, path, &settings), "{path}");
        }
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(bucket(a), bucket(b));
        assert_eq!(bucket(a), "address:2001:db8:1:2::/64");
        assert_ne!(bucket(a), bucket(other));
        let mapped: IpAddr = "::ffff:203.0.113.9".parse().unwrap();
        assert_eq!(bucket(mapped), "address:203.0.113.9");
    }
}
