//! The OpenID Connect authorization endpoint (`/oauth/authorize`), its resumption after
//! the sign-in pages (`/oauth/authorize/resume`) and the consent form
//! (`/oauth/authorize/consent`). The rules are [`crate::oidc::authorize`]'s; here the
//! browser, the pages and the database's pending requests.
//!
//! The endpoint never starts a session: a browser that must sign in goes to
//! `/ui/sign-in` with a same-origin `return_to` naming the pending request, which the
//! database holds (single use, [`REQUEST_TTL_SECS`]), so the sign-in may finish on any
//! node. A request is taken once at every step and stored again under a new id when it
//! needs another, so a replayed resume or consent finds nothing. A resume that ends in
//! the code takes the request in the write that stores the code (one write, and no
//! code unless that write took the request).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{Browser, Fields, Kind, csrf_refusal, field, page, redirect};
use crate::app::App;
use crate::domain::unix_now;
use crate::http::AppState;
use crate::oidc::authorize::{
    self, AuthorizationRequest, BrowserSession, Next, PageError, REQUEST_TTL_SECS, Reply,
};
use crate::oidc::clients::Client;
use crate::oidc::provider::{CodeRequest, OAuthError, Provider};
use crate::sessions::Authenticated;

/// The parameters of `GET /oauth/authorize` (OpenID Connect Core §3.1.2.1).
#[derive(Deserialize, IntoParams, ToSchema)]
#[allow(dead_code)]
pub struct AuthorizeParams {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    /// `code`.
    response_type: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    /// `S256`.
    code_challenge_method: Option<String>,
    /// `query` (the default) or `form_post`.
    response_mode: Option<String>,
    /// `none`, `login`, `consent`.
    prompt: Option<String>,
    max_age: Option<String>,
    login_hint: Option<String>,
    ui_locales: Option<String>,
    acr_values: Option<String>,
}

/// The parameters of `GET /oauth/authorize/resume`.
#[derive(Deserialize, IntoParams)]
#[allow(dead_code)]
pub struct ResumeParams {
    /// The pending request.
    request: Option<String>,
}

/// The consent form.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ConsentForm {
    csrf: String,
    /// The pending request.
    request: String,
    /// `allow` or `deny`.
    decision: String,
}

/// The provider, when both it and the pages are on.
pub(super) fn provider(app: &App) -> Option<&Provider> {
    app.oidc.as_deref().filter(|_| app.pages.is_some())
}

/// The answer of every route here while the provider or the pages are off.
pub(super) fn off() -> Response {
    crate::http::error::ApiError::NotFound(
        "The OpenID Connect provider is off (oidc.enabled, ui.enabled).".into(),
    )
    .into_response()
}

/// The parameters of a query or form, in order, duplicates kept.
pub(super) fn params_of(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

/// Whether the body of a POST is a form.
pub(super) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// An error page: the request cannot be answered at the client.
pub(super) fn error_page(app: &App, b: &Browser, message: &str) -> Response {
    let context = context! { title => "authorize-title", error => b.message(app, message) };
    page(
        app,
        b,
        StatusCode::BAD_REQUEST,
        "message.html",
        Kind::Plain,
        context,
    )
}

/// The authorization endpoint (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2): the
/// code flow with PKCE. An unknown client or a redirect URI not registered exactly is
/// an error page; every other error goes to the redirect URI with `state` and `iss`.
/// A browser not signed in (or whose sign-in the request finds too old) goes to the
/// sign-in page and comes back; one that has not consented sees the consent page.
#[utoipa::path(get, path = "/oauth/authorize", tag = "oidc", params(AuthorizeParams),
    responses(
        (status = 200, description = "The consent page, or the form_post page that carries the answer to the client", content_type = "text/html", body = String),
        (status = 303, description = "To the client's redirect URI (code or error, state, iss), or to the sign-in page"),
        (status = 400, description = "An error page: unknown client_id, or redirect_uri not registered", content_type = "text/html", body = String),
        (status = 404, description = "oidc.enabled or ui.enabled is off", body = crate::http::error::ErrorBody)))]
async fn authorize_get(State(app): State<AppState>, b: Browser, uri: Uri) -> Response {
    let params = params_of(uri.query().unwrap_or_default().as_bytes());
    authorize(&app, &b, &params).await
}

/// The authorization endpoint by POST, its parameters form-encoded (OpenID Connect
/// Core §3.1.2.1).
#[utoipa::path(post, path = "/oauth/authorize", tag = "oidc",
    request_body(content = AuthorizeParams, content_type = "application/x-www-form-urlencoded",
        description = "The parameters of GET /oauth/authorize"),
    responses(
        (status = 200, description = "The consent page, or the form_post page that carries the answer to the client", content_type = "text/html", body = String),
        (status = 303, description = "To the client's redirect URI (code or error, state, iss), or to the sign-in page"),
        (status = 400, description = "An error page: unknown client_id, redirect_uri not registered, or a body that is not a form", content_type = "text/html", body = String),
        (status = 404, description = "oidc.enabled or ui.enabled is off", body = crate::http::error::ErrorBody)))]
async fn authorize_post(
    State(app): State<AppState>,
    b: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_form(&headers) {
        if provider(&app).is_none() {
            return off();
        }
        return error_page(&app, &b, PageError::Duplicated.message());
    }
    authorize(&app, &b, &params_of(&body)).await
}

async fn authorize(app: &App, b: &Browser, params: &[(String, String)]) -> Response {
    let Some(p) = provider(app) else {
        return off();
    };
    let ids: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "client_id")
        .map(|(_, v)| v.as_str())
        .collect();
    let client = match ids.as_slice() {
        [id] if !id.is_empty() && id.len() <= 128 => match app.store.oidc().client(id).await {
            Ok(c) => c,
            Err(e) => return internal(app, b, &e.into()),
        },
        _ => None,
    };
    let (client, redirect_uri) = match authorize::client_and_redirect(params, client.as_ref()) {
        Ok(checked) => checked,
        Err(e) => {
            tracing::info!(error = ?e, "an authorization request was refused with a page");
            return error_page(app, b, e.message());
        }
    };
    let session = b.session(app).await;
    let checked = authorize::check(
        params,
        client,
        redirect_uri,
        p.policy().require_pkce_for_confidential,
        session.as_ref().map(|s| s.session.clone()),
        unix_now(),
    );
    match checked {
        Ok(request) => proceed(app, b, request, client, session, None).await,
        Err(refused) => answer(app, b, &refused.reply, Err(&refused.error)),
    }
}

/// Where the browser comes back after signing in: the pending request, taken once.
#[utoipa::path(get, path = "/oauth/authorize/resume", tag = "oidc", params(ResumeParams),
    responses(
        (status = 200, description = "The consent page, or the form_post page", content_type = "text/html", body = String),
        (status = 303, description = "To the client's redirect URI, or to the sign-in page"),
        (status = 400, description = "An error page: the request is unknown, expired or used", content_type = "text/html", body = String),
        (status = 404, description = "oidc.enabled or ui.enabled is off", body = crate::http::error::ErrorBody)))]
async fn resume(State(app): State<AppState>, b: Browser, uri: Uri) -> Response {
    if provider(&app).is_none() {
        return off();
    }
    let params = params_of(uri.query().unwrap_or_default().as_bytes());
    let id = params
        .iter()
        .find(|(k, _)| k == "request")
        .map(|(_, v)| v.as_str());
    // Read, not taken: each way on takes it (the code's write, or a take of its own).
    let (id, request) = match peeked(&app, id).await {
        Ok(Some(found)) => found,
        Ok(None) => return error_page(&app, &b, "authorize-expired"),
        Err(e) => return internal(&app, &b, &e),
    };
    let client = match registered(&app, &b, &request).await {
        Ok(client) => client,
        Err(page) => return page,
    };
    let session = b.session(&app).await;
    proceed(&app, &b, request, &client, session, Some(&id)).await
}

/// The consent form's answer: `allow` records the consent and issues the code, `deny`
/// answers `access_denied` to the client.
#[utoipa::path(post, path = "/oauth/authorize/consent", tag = "oidc",
    request_body(content = ConsentForm, content_type = "application/x-www-form-urlencoded",
        description = "csrf, request, decision (allow or deny)"),
    responses(
        (status = 200, description = "The form_post page", content_type = "text/html", body = String),
        (status = 303, description = "To the client's redirect URI (code, or error=access_denied), or to the sign-in page"),
        (status = 400, description = "An error page: the request is unknown, expired or used", content_type = "text/html", body = String),
        (status = 403, description = "The form did not come from this site (CSRF)", content_type = "text/html", body = String),
        (status = 404, description = "oidc.enabled or ui.enabled is off", body = crate::http::error::ErrorBody)))]
async fn consent(
    State(app): State<AppState>,
    b: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if provider(&app).is_none() {
        return off();
    }
    let fields: Fields = if is_form(&headers) {
        params_of(&body).into_iter().collect()
    } else {
        Fields::new()
    };
    if let Some(refusal) = csrf_refusal(&app, &b, "consent", &fields) {
        return refusal;
    }
    let request = match taken(&app, field(&fields, "request")).await {
        Ok(Some(request)) => request,
        Ok(None) => return error_page(&app, &b, "authorize-expired"),
        Err(e) => return internal(&app, &b, &e),
    };
    let client = match registered(&app, &b, &request).await {
        Ok(client) => client,
        Err(page) => return page,
    };
    let Some(session) = b.session(&app).await else {
        // Signed out meanwhile: the request starts over at the sign-in page.
        return proceed(&app, &b, request, &client, None, None).await;
    };
    if field(&fields, "decision") != Some("allow") {
        tracing::info!(client = %request.client_id, "consent denied");
        let denied = OAuthError::new("access_denied", "The person declined.");
        return answer(&app, &b, &request.reply, Err(&denied));
    }
    let store = app.store.authorize();
    let granted = match store.consent(&session.account, &request.client_id).await {
        Ok(granted) => authorize::union(granted.as_deref(), &request.scopes),
        Err(e) => return internal(&app, &b, &e.into()),
    };
    if let Err(e) = store
        .grant_consent(&session.account, &request.client_id, &granted, unix_now())
        .await
    {
        return internal(&app, &b, &e.into());
    }
    tracing::info!(account = %session.account.0, client = %request.client_id, scopes = %granted, "consent given");
    issue(&app, &b, &request, &client, &session, None).await
}

/// Whether `id` can name a pending request.
fn is_request_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The request stored under `id`, taken (deleted) by this read alone.
async fn taken(app: &App, id: Option<&str>) -> anyhow::Result<Option<AuthorizationRequest>> {
    let Some(id) = id.filter(|id| is_request_id(id)) else {
        return Ok(None);
    };
    let Some(text) = app.store.authorize().take_request(id, unix_now()).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_str(&text).ok())
}

/// The request stored under `id`, and its id, read and left in place: whatever comes
/// next takes it ([`proceed`]).
async fn peeked(
    app: &App,
    id: Option<&str>,
) -> anyhow::Result<Option<(String, AuthorizationRequest)>> {
    let Some(id) = id.filter(|id| is_request_id(id)) else {
        return Ok(None);
    };
    let Some(text) = app.store.authorize().peek_request(id, unix_now()).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_str(&text).ok().map(|r| (id.to_owned(), r)))
}

/// The client of a stored request, or the page to answer with.
async fn registered(
    app: &App,
    b: &Browser,
    request: &AuthorizationRequest,
) -> Result<Client, Response> {
    match app.store.oidc().client(&request.client_id).await {
        Ok(Some(client)) => Ok(client),
        Ok(None) => Err(error_page(app, b, PageError::UnknownClient.message())),
        Err(e) => Err(internal(app, b, &e.into())),
    }
}

/// Stores `request` for its next step: the id the browser carries there.
async fn pending_request(app: &App, request: &AuthorizationRequest) -> anyhow::Result<String> {
    let id = crate::crypto::random_id();
    let text = serde_json::to_string(request)?;
    app.store
        .authorize()
        .add_request(
            &id,
            &request.client_id,
            &text,
            unix_now() + REQUEST_TTL_SECS,
        )
        .await?;
    Ok(id)
}

/// The next step of a checked request of `client` for a browser with `session`.
/// `pending`: the id the request waits under (at a resume), which this step takes.
async fn proceed(
    app: &App,
    b: &Browser,
    request: AuthorizationRequest,
    client: &Client,
    session: Option<Authenticated>,
    pending: Option<&str>,
) -> Response {
    // A first-party client is never asked: its consent is not read.
    let consented = match &session {
        Some(s) if !client.first_party => {
            match app.store.authorize().consent(&s.account, &client.id).await {
                Ok(c) => c,
                Err(e) => return internal(app, b, &e.into()),
            }
        }
        _ => None,
    };
    let facts = session.as_ref().map(|s| BrowserSession {
        session: &s.session,
        auth_time: s.auth_time,
        multi_factor: s.multi_factor,
    });
    let next = request.next(
        facts.as_ref(),
        client.first_party,
        consented.as_deref(),
        unix_now(),
    );
    if let (Next::Issue, Some(session)) = (&next, &session) {
        return issue(app, b, &request, client, session, pending).await;
    }
    // Every other way on ends this request here: it is taken first.
    if let Some(id) = pending {
        match app.store.authorize().take_request(id, unix_now()).await {
            Ok(Some(_)) => {}
            Ok(None) => return error_page(app, b, "authorize-expired"),
            Err(e) => return internal(app, b, &e.into()),
        }
    }
    match (next, session) {
        (Next::Refuse(code, description), _) => answer(
            app,
            b,
            &request.reply,
            Err(&OAuthError::new(code, description)),
        ),
        (Next::Consent, Some(_)) => match pending_request(app, &request).await {
            Ok(id) => consent_page(app, b, &client.name, &request, &id),
            Err(e) => internal(app, b, &e),
        },
        (next, _) => {
            let fresh = next == Next::SignIn { fresh: true };
            let id = match pending_request(app, &request).await {
                Ok(id) => id,
                Err(e) => return internal(app, b, &e),
            };
            let resume = format!("/oauth/authorize/resume?request={id}");
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("return_to", &resume);
            if let Some(hint) = &request.login_hint {
                query.append_pair("email", hint);
            }
            if let Some(locales) = &request.ui_locales {
                query.append_pair("ui_locales", locales);
            }
            if fresh {
                query.append_pair("prompt", "login");
            }
            redirect(app, &format!("/ui/sign-in?{}", query.finish()))
        }
    }
}

/// Issues the code for the browser's session and sends it to the client; with
/// `pending`, only if the write that stores the code takes that request.
async fn issue(
    app: &App,
    b: &Browser,
    request: &AuthorizationRequest,
    client: &Client,
    session: &Authenticated,
    pending: Option<&str>,
) -> Response {
    let Some(p) = provider(app) else {
        return error_page(app, b, "authorize-bad-request");
    };
    let amr = match app.store.authorize().session_amr(&session.session).await {
        Ok(Some(amr)) => amr,
        Ok(None) => String::new(),
        Err(e) => return internal(app, b, &e.into()),
    };
    let code_request = CodeRequest {
        account: &session.account,
        auth_time: session.auth_time,
        amr: &amr,
        client,
        redirect_uri: &request.reply.redirect_uri,
        scopes: &request.scopes,
        nonce: request.nonce.as_deref(),
        challenge: request.challenge.as_deref(),
    };
    let code = match pending {
        Some(id) => p.issue_code_taking(&code_request, id).await,
        None => p.issue_code(&code_request).await.map(Some),
    };
    match code {
        Ok(Some(code)) => {
            tracing::info!(account = %session.account.0, client = %client.id, "authorization code issued");
            answer(app, b, &request.reply, Ok(&code))
        }
        // Taken meanwhile (a resume replayed, or raced): that one answers.
        Ok(None) => error_page(app, b, "authorize-expired"),
        Err(e) => internal(app, b, &anyhow::anyhow!("{e}")),
    }
}

/// The authorization response (a code, or an error) at the client's redirect URI: a
/// redirect with it in the query, or with `form_post` a page that posts it there.
fn answer(app: &App, b: &Browser, reply: &Reply, outcome: Result<&str, &OAuthError>) -> Response {
    let issuer = app
        .oidc
        .as_ref()
        .map(|p| p.policy().issuer.clone())
        .unwrap_or_default();
    let fields = authorize::response_fields(reply, &issuer, outcome);
    if !reply.form_post {
        return redirect(app, &authorize::redirect_with(&reply.redirect_uri, &fields));
    }
    let context = context! {
        title => "form-post-title",
        action => reply.redirect_uri,
        fields => fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<Vec<_>>(),
    };
    let mut res = page(
        app,
        b,
        StatusCode::OK,
        "form_post.html",
        Kind::Plain,
        context,
    );
    // The one form this page posts goes to the client's origin (the Form Post
    // Response Mode); nothing else is allowed.
    let origin = url::Url::parse(&reply.redirect_uri)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         form-action {origin}; base-uri 'none'; frame-ancestors 'none'"
    );
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        res.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    res
}

fn consent_page(
    app: &App,
    b: &Browser,
    client: &str,
    request: &AuthorizationRequest,
    id: &str,
) -> Response {
    let context = context! {
        title => "consent-title",
        client => client,
        scopes => request.scopes.iter().map(|s| format!("scope-{s}")).collect::<Vec<_>>(),
        request => id,
    };
    let mut res = page(app, b, StatusCode::OK, "consent.html", Kind::Plain, context);
    // The form's answer is a redirect to the client's redirect URI.
    if let Some(origin) = redirect_origin(request) {
        super::allow_form_target(&mut res, &origin);
    }
    res
}

fn redirect_origin(request: &AuthorizationRequest) -> Option<String> {
    let target = url::Url::parse(&request.reply.redirect_uri).ok()?;
    Some(target.origin().ascii_serialization())
}

/// The origin a sign-in page's forms end at when the page works for a client: when
/// `return_to` is the resume of a pending authorization request (as [`authorize`]
/// sends the browser to the sign-in page with), the request's redirect URI's origin,
/// read without taking the request. A sign-in, sign-up or second-factor form answers
/// with redirects that end there (the resume, then the client), and browsers hold
/// every hop of a form's redirects to the page's form-action.
pub(super) async fn client_origin(app: &App, return_to: Option<&str>) -> Option<String> {
    let return_to = return_to?;
    let public = url::Url::parse(&provider(app)?.policy().issuer).ok()?;
    let target = public.join(return_to).ok()?;
    if target.origin() != public.origin() || target.path() != "/oauth/authorize/resume" {
        return None;
    }
    let id = target
        .query_pairs()
        .find(|(k, _)| k == "request")
        .map(|(_, v)| v.into_owned())?;
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let text = match app.store.authorize().peek_request(&id, unix_now()).await {
        Ok(text) => text?,
        Err(e) => {
            tracing::warn!(error = %e, "a pending authorization request could not be read");
            return None;
        }
    };
    let request: AuthorizationRequest = serde_json::from_str(&text).ok()?;
    redirect_origin(&request)
}

fn internal(app: &App, b: &Browser, e: &anyhow::Error) -> Response {
    tracing::error!(error = %e, "the authorization endpoint failed");
    let context =
        context! { title => "authorize-title", error => b.message(app, "error-internal") };
    page(
        app,
        b,
        StatusCode::INTERNAL_SERVER_ERROR,
        "message.html",
        Kind::Plain,
        context,
    )
}

pub(super) fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(authorize_get, authorize_post))
        .routes(routes!(resume))
        .routes(routes!(consent))
}
