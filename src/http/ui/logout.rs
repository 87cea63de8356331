//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): `/oauth/logout`, the
//! provider's `end_session_endpoint`.
//!
//! With a valid `id_token_hint` (ours, expired or not) for the browser's own account,
//! the browser's session ends at once, with the OIDC session the token names (`sid`).
//! Without one, the person is asked first (a page with a button), so that a link on a
//! third-party page cannot sign anyone out. The browser is then sent to
//! `post_logout_redirect_uri` only when it is registered, exactly, for the client;
//! otherwise it sees a "signed out" page. A URI that is not registered is an error
//! page: it never redirects.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::authorize::{error_page, is_form, off, params_of, provider};
use super::{Browser, Fields, Kind, clear_session, csrf_refusal, field, page, redirect};
use crate::app::App;
use crate::http::AppState;
use crate::oidc::provider::IdTokenHint;
use crate::oidc::redirect::{RedirectUri, is_registered};
use crate::sessions::Scope;

/// The parameters of `/oauth/logout`.
#[derive(Deserialize, IntoParams, ToSchema)]
#[allow(dead_code)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    ui_locales: Option<String>,
    /// The confirmation page's form: its CSRF token and `confirm=yes`.
    csrf: Option<String>,
    confirm: Option<String>,
}

/// RP-initiated logout by GET.
#[utoipa::path(get, path = "/oauth/logout", tag = "oidc", params(LogoutParams),
    responses(
        (status = 200, description = "The confirmation page, or the signed-out page", content_type = "text/html", body = String),
        (status = 303, description = "Signed out: to the registered post_logout_redirect_uri, with state"),
        (status = 400, description = "An error page: an invalid id_token_hint, an unknown client, or a post_logout_redirect_uri not registered", content_type = "text/html", body = String),
        (status = 404, description = "oidc.enabled or ui.enabled is off", body = crate::http::error::ErrorBody)))]
async fn logout_get(State(app): State<AppState>, b: Browser, uri: Uri) -> Response {
    let params: Fields = params_of(uri.query().unwrap_or_default().as_bytes())
        .into_iter()
        .collect();
    logout(&app, &b, &params, false).await
}

/// RP-initiated logout by POST (the parameters form-encoded), and the confirmation
/// page's form.
#[utoipa::path(post, path = "/oauth/logout", tag = "oidc",
    request_body(content = LogoutParams, content_type = "application/x-www-form-urlencoded",
        description = "The parameters of GET /oauth/logout; the confirmation adds csrf and confirm=yes"),
    responses(
        (status = 200, description = "The confirmation page, or the signed-out page", content_type = "text/html", body = String),
        (status = 303, description = "Signed out: to the registered post_logout_redirect_uri, with state"),
        (status = 400, description = "An error page: an invalid id_token_hint, an unknown client, or a post_logout_redirect_uri not registered", content_type = "text/html", body = String),
        (status = 403, description = "A confirmation that did not come from this site (CSRF)", content_type = "text/html", body = String),
        (status = 404, description = "oidc.enabled or ui.enabled is off", body = crate::http::error::ErrorBody)))]
async fn logout_post(
    State(app): State<AppState>,
    b: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: Fields = if is_form(&headers) {
        params_of(&body).into_iter().collect()
    } else {
        Fields::new()
    };
    let confirmed = field(&params, "confirm") == Some("yes");
    if confirmed && let Some(refusal) = csrf_refusal(&app, &b, "logout", &params) {
        return refusal;
    }
    logout(&app, &b, &params, confirmed).await
}

async fn logout(app: &App, b: &Browser, params: &Fields, confirmed: bool) -> Response {
    let Some(p) = provider(app) else {
        return off();
    };
    let hint: Option<IdTokenHint> = match field(params, "id_token_hint") {
        Some(token) => match p.id_token_hint(token) {
            Some(hint) => Some(hint),
            None => return error_page(app, b, "logout-bad-hint"),
        },
        None => None,
    };
    let client_id = match (field(params, "client_id"), &hint) {
        (Some(id), Some(h)) if id != h.aud => return error_page(app, b, "logout-bad-hint"),
        (Some(id), _) => Some(id.to_owned()),
        (None, Some(h)) => Some(h.aud.clone()),
        (None, None) => None,
    };
    let target = match field(params, "post_logout_redirect_uri") {
        None => None,
        Some(asked) => {
            let client = match &client_id {
                Some(id) => match app.store.oidc().client(id).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(error = %e, "logout failed");
                        return error_page(app, b, "error-internal");
                    }
                },
                None => None,
            };
            let Some(client) = client else {
                return error_page(app, b, "logout-bad-redirect");
            };
            let registered: Vec<RedirectUri> = client
                .post_logout_redirect_uris
                .iter()
                .filter_map(|u| RedirectUri::parse(u).ok())
                .collect();
            if !is_registered(&registered, asked) {
                tracing::info!(client = %client.id, "a logout named an unregistered post_logout_redirect_uri");
                return error_page(app, b, "logout-bad-redirect");
            }
            Some(asked.to_owned())
        }
    };
    let session = b.session(app).await;
    // Without a hint for this browser's own account, a link could sign anyone out:
    // the person confirms.
    let hint_is_theirs = hint
        .as_ref()
        .is_some_and(|h| session.as_ref().is_none_or(|s| s.account.0 == h.sub));
    if !confirmed && !hint_is_theirs && session.is_some() {
        let keep = |name: &str| field(params, name).unwrap_or_default().to_owned();
        let context = context! {
            title => "logout-title",
            id_token_hint => keep("id_token_hint"),
            client_id => keep("client_id"),
            post_logout_redirect_uri => keep("post_logout_redirect_uri"),
            state => keep("state"),
        };
        return page(app, b, StatusCode::OK, "logout.html", Kind::Plain, context);
    }
    if let Some(s) = &session
        && let Err(e) = app.sessions.sign_out(s, Scope::Local).await
    {
        tracing::error!(error = %e, "ending the browser session at logout failed");
    }
    if let Some(h) = &hint
        && let Some(sid) = &h.sid
        && let Err(e) = app
            .sessions
            .end(&crate::domain::AccountId(h.sub.clone()), sid)
            .await
    {
        tracing::error!(error = %e, "ending the ID token's session at logout failed");
    }
    tracing::info!(
        client = client_id.as_deref().unwrap_or(""),
        "RP-initiated logout"
    );
    let mut res = match target {
        Some(uri) => {
            let mut url = url::Url::parse(&uri).expect("a registered URI parses");
            if let Some(state) = field(params, "state") {
                url.query_pairs_mut().append_pair("state", state);
            }
            redirect(app, url.as_str())
        }
        None => {
            let context =
                context! { title => "logout-title", notice => b.message(app, "logout-done") };
            page(app, b, StatusCode::OK, "message.html", Kind::Plain, context)
        }
    };
    clear_session(b, &mut res);
    res
}

pub(super) fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new().routes(routes!(logout_get, logout_post))
}
