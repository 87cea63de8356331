//! Social sign-in over HTTP: `GET /auth/social/{provider}` sends the browser to the
//! provider, `GET|POST /auth/social/{provider}/callback` brings it back, and
//! `POST /auth/social/exchange` turns an API-mode code into tokens. Linking:
//! `POST /auth/social/{provider}/link`, `GET /auth/social/identities`,
//! `DELETE /auth/social/identities/{id}`. The rules are [`crate::signin::social`]'s;
//! every sign-in ends in the sign-in flow.
//!
//! The browser that began a sign-in holds its binding in an `HttpOnly` cookie; the
//! callback consumes the pending sign-in only with it. Errors end on a page (with the
//! hosted pages on) or a JSON error, 4xx or 502, never a 500 of the provider's making,
//! in API mode as in browser mode.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::client::{SecureCookies, secure_cookies};
use super::error::{ApiError, ErrorBody};
use super::json::JsonBody;
use super::reply::{self, no_store, rfc3339};
use super::session::{RecentSession, Session};
use crate::app::App;
use crate::domain::unix_now;
use crate::metrics::{Outcome, SignInMethod};
use crate::sessions::Device;
use crate::signin::flow::{Proof, Refused};
use crate::signin::social::{Callback, Intent, Landed, Social, SocialError};

/// The social routes; none when no provider is configured.
pub fn router(app: &App) -> OpenApiRouter<AppState> {
    if app.social.is_none() {
        return OpenApiRouter::new();
    }
    OpenApiRouter::new()
        .routes(routes!(identities))
        .routes(routes!(unlink))
        .routes(routes!(exchange))
        .routes(routes!(begin))
        .routes(routes!(callback_get, callback_post))
        .routes(routes!(link))
}

fn social(app: &App) -> &Social {
    app.social
        .as_deref()
        .expect("the social routes are mounted only with providers")
}

fn cookie<'h>(parts: &'h Parts, name: &str) -> Option<&'h str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The stable `error` code of each refusal, and its status.
fn code_of(e: &SocialError) -> (StatusCode, &'static str) {
    use SocialError as E;
    match e {
        E::UnknownProvider => (StatusCode::NOT_FOUND, "unknown_provider"),
        E::ProviderDisabled => (StatusCode::FORBIDDEN, "provider_disabled"),
        E::InvalidState => (StatusCode::BAD_REQUEST, "invalid_state"),
        E::InvalidReturnTo => (StatusCode::BAD_REQUEST, "invalid_return_to"),
        E::Denied(_) => (StatusCode::FORBIDDEN, "access_denied"),
        E::MissingCode => (StatusCode::BAD_REQUEST, "invalid_request"),
        E::Upstream(crate::signin::social::upstream::UpstreamError::BadIdToken(_)) => {
            (StatusCode::BAD_GATEWAY, "invalid_id_token")
        }
        E::Upstream(crate::signin::social::upstream::UpstreamError::CodeRefused(_)) => {
            (StatusCode::BAD_GATEWAY, "code_refused")
        }
        E::Upstream(crate::signin::social::upstream::UpstreamError::BadUserInfo(_)) => {
            (StatusCode::BAD_GATEWAY, "invalid_userinfo")
        }
        E::Upstream(_) => (StatusCode::BAD_GATEWAY, "provider_unavailable"),
        E::LinkFirst => (StatusCode::CONFLICT, "link_required"),
        E::IdentityTaken => (StatusCode::CONFLICT, "identity_linked_elsewhere"),
        E::SessionEnded => (StatusCode::UNAUTHORIZED, "session_ended"),
        E::InvalidCode => (StatusCode::BAD_REQUEST, "invalid_code"),
        E::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        E::LastWayIn => (StatusCode::CONFLICT, "last_sign_in_method"),
        E::Disabled => (StatusCode::FORBIDDEN, "account_disabled"),
        E::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

fn api_error(e: SocialError) -> ApiError {
    match e {
        SocialError::Internal(cause) => ApiError::Internal(cause),
        SocialError::Disabled => ApiError::AccountDisabled,
        e => {
            let (status, code) = code_of(&e);
            if matches!(e, SocialError::Upstream(_)) {
                tracing::warn!(error = %e, "social sign-in: the provider failed");
            }
            ApiError::Coded(status, code, e.to_string())
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BeginQuery {
    /// Where the browser goes once signed in: a path on this site, or a URL on
    /// `http.public_url` or one of `ui.return_origins` (exact origin). Unset: the
    /// account page.
    return_to: Option<String>,
    /// `api`: a single-page app's sign-in; the callback sends the browser to
    /// `return_to` with a `code` for `POST /auth/social/exchange`, never tokens.
    mode: Option<String>,
}

/// Sends the browser to the provider (state, nonce, PKCE S256), the pending sign-in
/// bound to it by an `HttpOnly` cookie.
#[utoipa::path(get, path = "/auth/social/{provider}", tag = "social",
    params(("provider" = String, Path, description = "A configured provider's id"), BeginQuery),
    responses((status = 302, description = "To the provider's authorization endpoint; sets the binding cookie"),
        (status = 400, description = "`invalid_request` (mode), `invalid_return_to` (not allowed), `browser_mode_unavailable` (the hosted pages are off: use `mode=api`)", body = ErrorBody),
        (status = 403, description = "`provider_disabled`", body = ErrorBody),
        (status = 404, description = "`unknown_provider`", body = ErrorBody),
        (status = 502, description = "`provider_unavailable`: its discovery document could not be read", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn begin(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    SecureCookies(secure): SecureCookies,
    query: Result<axum::extract::Query<BeginQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let axum::extract::Query(q) =
        query.map_err(|_| ApiError::BadRequest("The query string is malformed.".into()))?;
    let return_to = q.return_to.filter(|r| !r.is_empty());
    let intent = match q.mode.as_deref() {
        None | Some("") | Some("browser") => {
            if app.pages.is_none() {
                return Err(ApiError::Coded(
                    StatusCode::BAD_REQUEST,
                    "browser_mode_unavailable",
                    "The hosted pages are off (ui.enabled): start a single-page app's sign-in with mode=api.".into(),
                ));
            }
            Intent::Browser { return_to }
        }
        Some("api") => Intent::Api { return_to },
        Some(_) => {
            return Err(ApiError::Coded(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "mode must be api, or left out.".into(),
            ));
        }
    };
    let begun = social(&app)
        .begin(&provider, intent, unix_now())
        .await
        .map_err(api_error)?;
    Ok(reply::to_provider(&app.settings, secure, begun))
}

/// The callback's fields, as the OpenAPI document describes them (the handlers read
/// them from the query or the form by name, leaving the rest alone).
#[derive(IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CallbackFields {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    /// Apple's, on a person's first sign-in: their name, as JSON.
    user: Option<String>,
}

/// The provider's answer, as a redirect (`GET`): the code is exchanged and the ID
/// token checked, then the sign-in flow: a session (browser), a code (API mode), or
/// the link.
#[utoipa::path(get, path = "/auth/social/{provider}/callback", tag = "social",
    params(("provider" = String, Path, description = "A configured provider's id"), CallbackFields),
    responses((status = 303, description = "Signed in (session cookie) to `return_to`, or to the second-factor page; API mode: to `return_to` with `code`; linked: to `return_to` with `linked`"),
        (status = 400, description = "`invalid_state` (unknown, used, expired, or from another browser), `invalid_request` (no code)", body = ErrorBody),
        (status = 401, description = "`session_ended`: the session that asked for a link has ended", body = ErrorBody),
        (status = 403, description = "`access_denied` (the provider's answer), `provider_disabled`, `account_disabled`", body = ErrorBody),
        (status = 404, description = "`unknown_provider`", body = ErrorBody),
        (status = 409, description = "`link_required`: the email has an account; sign in to it and link the provider. `identity_linked_elsewhere`: linking an identity of another account", body = ErrorBody),
        (status = 502, description = "`provider_unavailable`, `code_refused`, `invalid_id_token`, `invalid_userinfo` (the UserInfo answer, asked for an email the ID token left out, is of another subject)", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn callback_get(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    req: Request,
) -> Response {
    let (mut parts, _) = req.into_parts();
    let fields: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    landed(&app, &provider, &mut parts, fields).await
}

/// The provider's answer as a form (`response_mode=form_post`, Apple's).
#[utoipa::path(post, path = "/auth/social/{provider}/callback", tag = "social",
    params(("provider" = String, Path, description = "A configured provider's id")),
    request_body(content = CallbackFields, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "As the GET callback"),
        (status = 400, description = "`invalid_state`, `invalid_request`", body = ErrorBody),
        (status = 401, description = "`session_ended`", body = ErrorBody),
        (status = 403, description = "`access_denied`, `provider_disabled`, `account_disabled`", body = ErrorBody),
        (status = 404, description = "`unknown_provider`", body = ErrorBody),
        (status = 409, description = "`link_required`, `identity_linked_elsewhere`", body = ErrorBody),
        (status = 502, description = "`provider_unavailable`, `code_refused`, `invalid_id_token`, `invalid_userinfo` (the UserInfo answer, asked for an email the ID token left out, is of another subject)", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn callback_post(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    req: Request,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let limit = app.settings.http.body_limit_bytes;
    let fields: HashMap<String, String> = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => url::form_urlencoded::parse(&bytes).into_owned().collect(),
        Err(_) => HashMap::new(),
    };
    landed(&app, &provider, &mut parts, fields).await
}

async fn landed(
    app: &AppState,
    provider: &str,
    parts: &mut Parts,
    mut fields: HashMap<String, String>,
) -> Response {
    let secure = secure_cookies(parts, app);
    let device = Device::from_request_parts(parts, app)
        .await
        .unwrap_or_default();
    let cb = Callback {
        state: fields.remove("state"),
        code: fields.remove("code"),
        error: fields.remove("error"),
        user: fields.remove("user"),
    };
    let binding = cookie(parts, reply::binding_cookie_name(secure)).map(str::to_owned);
    let now = unix_now();
    let result = social(app)
        .callback(provider, cb, binding.as_deref(), now)
        .await;
    let mut res = match result {
        Ok(Landed::Linked { intent }) => {
            let to = allowed(app, intent.return_to()).unwrap_or_else(|| "/ui/account".into());
            see_other(&with_query(&to, "linked", provider))
        }
        Ok(Landed::SignIn {
            account,
            provider: provider_id,
            intent,
            needs_verification,
        }) => {
            if needs_verification && let Some(lifecycle) = &app.lifecycle {
                // The person is signing in now; a mail that cannot go out is logged,
                // and the account page offers it again.
                if let Err(e) = lifecycle.send_verification(&account).await {
                    tracing::warn!(error = %e, "social sign-in: the verification mail failed");
                }
            }
            match intent {
                Intent::Api { return_to } => {
                    let to = allowed(app, return_to.as_deref());
                    match (
                        to,
                        social(app).issue_code(&account.id, &provider_id, now).await,
                    ) {
                        (Some(to), Ok(code)) => see_other(&with_query(&to, "code", &code)),
                        (None, _) => refusal(app, parts, SocialError::InvalidReturnTo).await,
                        (_, Err(e)) => refusal(app, parts, e).await,
                    }
                }
                // A browser sign-in begun on a node with the pages, come back to one
                // without them: no browser session to give.
                _ if app.pages.is_none() => refusal(app, parts, SocialError::InvalidState).await,
                intent => {
                    let done = app.flow.finish(&account, Proof::Social, &device).await;
                    let outcome = match &done {
                        Ok(_) => Outcome::Success,
                        Err(Refused::Disabled) => Outcome::Disabled,
                        Err(_) => Outcome::Error,
                    };
                    app.metrics.sign_in(SignInMethod::Social, outcome);
                    match done {
                        Ok(finished) => {
                            super::ui::social_signed_in(app, parts, &finished, intent.return_to())
                                .await
                        }
                        Err(Refused::Disabled) => refusal(app, parts, SocialError::Disabled).await,
                        Err(e) => refusal(app, parts, SocialError::Internal(e.into())).await,
                    }
                }
            }
        }
        Err(e) => {
            if !matches!(e, SocialError::Internal(_)) {
                app.metrics.sign_in(SignInMethod::Social, Outcome::Failure);
            }
            refusal(app, parts, e).await
        }
    };
    res.headers_mut()
        .append(header::SET_COOKIE, reply::binding_cookie(secure, None, 0));
    res
}

/// `return_to` if it is allowed (exactly as the pages allow it).
fn allowed(app: &App, return_to: Option<&str>) -> Option<String> {
    return_to.and_then(|r| social(app).return_origins().check(r))
}

fn with_query(to: &str, key: &str, value: &str) -> String {
    let (base, fragment) = to.split_once('#').map_or((to, None), |(b, f)| (b, Some(f)));
    let sep = if base.contains('?') { '&' } else { '?' };
    let value: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    match fragment {
        Some(f) => format!("{base}{sep}{key}={value}#{f}"),
        None => format!("{base}{sep}{key}={value}"),
    }
}

fn see_other(to: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, location);
    }
    res.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    no_store(&mut res);
    res
}

/// A refused callback: a page when the hosted pages are on, else the JSON error.
async fn refusal(app: &AppState, parts: &mut Parts, e: SocialError) -> Response {
    if let SocialError::Internal(cause) = &e {
        tracing::error!(error = %cause, "social sign-in failed");
    }
    if app.pages.is_some() {
        let (status, code) = code_of(&e);
        return super::ui::social_refused(app, parts, status, code).await;
    }
    api_error(e).into_response()
}

#[derive(Deserialize, ToSchema)]
pub struct ExchangeRequest {
    /// The `code` the callback put on `return_to`: single use, 60 seconds.
    #[schema(value_type = String, required)]
    code: Option<String>,
}

/// Turns an API-mode code into the sign-in's tokens (or, when the account owes a
/// second factor, the `mfa_required` answer), as `POST /auth/login` answers.
#[utoipa::path(post, path = "/auth/social/exchange", tag = "social", request_body = ExchangeRequest,
    responses((status = 200, description = "Signed in: the tokens, or `mfa_required` with an `mfa_token`", body = super::reply::TokenResponse),
        (status = 400, description = "`invalid_code` (unknown, used or expired), or a malformed body", body = ErrorBody),
        (status = 403, description = "`provider_disabled` since the code was issued; `account_disabled`", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn exchange(
    State(app): State<AppState>,
    SecureCookies(secure): SecureCookies,
    device: Device,
    body: Result<JsonBody<ExchangeRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let JsonBody(req) = body?;
    let code = reply::required(req.code, "code")?;
    let account = social(&app)
        .redeem_code(&code, unix_now())
        .await
        .map_err(api_error)?;
    let done = app.flow.finish(&account, Proof::Social, &device).await;
    let outcome = match &done {
        Ok(_) => Outcome::Success,
        Err(Refused::Disabled) => Outcome::Disabled,
        Err(_) => Outcome::Error,
    };
    app.metrics.sign_in(SignInMethod::Social, outcome);
    match done {
        Ok(finished) => Ok(reply::finished(&app.settings, secure, finished)),
        Err(Refused::Disabled) => Err(ApiError::AccountDisabled),
        Err(e) => Err(ApiError::Internal(e.into())),
    }
}

#[derive(Deserialize, ToSchema, Default)]
pub struct LinkRequest {
    /// Where the browser goes once linked (allowed as for sign-in). Unset: the
    /// account page.
    return_to: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LinkResponse {
    /// Send the browser here (a top-level navigation, with this response's binding
    /// cookie): the provider's sign-in, which comes back linked.
    authorization_url: String,
}

/// Starts linking a provider to the signed-in account (a recent sign-in required):
/// the provider's URL; the callback links the identity it proves to this account,
/// while this session lives.
#[utoipa::path(post, path = "/auth/social/{provider}/link", tag = "social",
    params(("provider" = String, Path, description = "A configured provider's id")),
    request_body(content = LinkRequest, description = "Optional"),
    security(("bearer" = [])),
    responses((status = 200, description = "The provider's authorization URL; sets the binding cookie", body = LinkResponse),
        (status = 400, description = "`invalid_return_to`, or a malformed body", body = ErrorBody),
        (status = 401, description = "No valid account token", body = ErrorBody),
        (status = 403, description = "`recent_sign_in_required`, `second_factor_required`, `provider_disabled`", body = ErrorBody),
        (status = 404, description = "`unknown_provider`", body = ErrorBody),
        (status = 502, description = "`provider_unavailable`", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn link(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    SecureCookies(secure): SecureCookies,
    session: RecentSession,
    body: Result<JsonBody<LinkRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let req = match body {
        Ok(JsonBody(req)) => req,
        Err(ApiError::Unparsable(_)) if true => LinkRequest::default(),
        Err(e) => return Err(e),
    };
    let intent = Intent::Link {
        account: session.account.clone(),
        session: session.session.clone(),
        return_to: req.return_to.filter(|r| !r.is_empty()),
    };
    let begun = social(&app)
        .begin(&provider, intent, unix_now())
        .await
        .map_err(api_error)?;
    let mut res = axum::Json(LinkResponse {
        authorization_url: begun.authorize_url.clone(),
    })
    .into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        reply::binding_cookie(
            secure,
            Some(begun.binding.expose()),
            app.settings.social.pending_ttl_secs,
        ),
    );
    no_store(&mut res);
    Ok(res)
}

#[derive(Serialize, ToSchema)]
pub struct IdentityView {
    /// For `DELETE /auth/social/identities/{id}`.
    id: String,
    /// The provider's id.
    provider: String,
    /// The provider's name.
    name: String,
    /// The email the provider gave when it was linked.
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    /// The person's name as the provider gave it (Apple: on the first sign-in only,
    /// kept since).
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    /// RFC 3339.
    linked_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct IdentitiesResponse {
    identities: Vec<IdentityView>,
}

/// The upstream identities linked to the signed-in account.
#[utoipa::path(get, path = "/auth/social/identities", tag = "social", security(("bearer" = [])),
    responses((status = 200, description = "The linked identities, oldest first", body = IdentitiesResponse),
        (status = 401, description = "No valid account token", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn identities(State(app): State<AppState>, session: Session) -> Result<Response, ApiError> {
    let s = social(&app);
    let list = s.identities(&session.account).await.map_err(api_error)?;
    let identities = list
        .into_iter()
        .map(|i| IdentityView {
            name: s.name_of(&i.provider),
            id: i.id,
            provider: i.provider,
            email: i.email,
            display_name: i.display_name,
            linked_at: rfc3339(i.linked_at),
        })
        .collect();
    let mut res = axum::Json(IdentitiesResponse { identities }).into_response();
    no_store(&mut res);
    Ok(res)
}

/// Unlinks an identity (a recent sign-in required); never the account's last way in.
#[utoipa::path(delete, path = "/auth/social/identities/{id}", tag = "social",
    params(("id" = String, Path, description = "The identity's id, from GET /auth/social/identities")),
    security(("bearer" = [])),
    responses((status = 204, description = "Unlinked"),
        (status = 401, description = "No valid account token", body = ErrorBody),
        (status = 403, description = "`recent_sign_in_required`, `second_factor_required`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such identity on this account", body = ErrorBody),
        (status = 409, description = "`last_sign_in_method`: it is the account's last way in", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn unlink(
    State(app): State<AppState>,
    Path(id): Path<String>,
    session: RecentSession,
) -> Result<Response, ApiError> {
    social(&app)
        .unlink(&session.account, &id)
        .await
        .map_err(api_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
