//! The hosted pages under `/ui/`: server-rendered forms on the same domain code as the
//! JSON API (the sign-in flow, password sign-in, the lifecycle, sessions). One module
//! per group of pages; here what they share: the browser (language, form nonce,
//! session cookie), the CSRF checks, the page's headers, and [`signed_in`], where every
//! sign-in through the pages ends.
//!
//! Every password flow is a plain form that works with JavaScript off. Every page is
//! `no-store` (it carries form tokens bound to this browser), framed by nobody, and
//! loads nothing but this origin's stylesheet and scripts.

mod account;
mod authorize;
mod logout;
mod pages;
mod passkeys;
mod second_factor;
mod selfkey;
mod wallets;

/// The social callback's ends, through the pages (`crate::http::social`).
pub(in crate::http) use social::{social_refused, social_signed_in};
mod social;

use std::collections::HashMap;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::Value;

use super::AppState;
use super::client::{public_base, secure_cookies};
use crate::app::App;
use crate::sessions::{Authenticated, SignIn};
use crate::signin::flow::Finished;
use crate::ui::{Lang, Pages};

/// The routes of the pages, when `ui.enabled` (`app.pages`); none otherwise.
pub fn router(app: &App) -> Router<AppState> {
    if app.pages.is_none() {
        return Router::new();
    }
    Router::new()
        .route("/ui/assets/style.css", get(style))
        .route("/ui/assets/theme.css", get(theme))
        .route("/ui/assets/link.js", get(link_js))
        .route("/ui/assets/passkeys.js", get(passkey_js))
        .route("/ui/assets/siwe.js", get(siwe_js))
        .route("/ui/assets/selfkey.js", get(selfkey_js))
        .route("/ui/assets/form_post.js", get(form_post_js))
        .merge(pages::router(app))
        .merge(account::router())
        .merge(passkeys::router(app))
        .merge(second_factor::router())
        .merge(wallets::router(app))
        .merge(selfkey::router(app))
}

/// The OpenID Connect provider's browser routes (`/oauth/authorize`, its consent and
/// `/oauth/logout`): always mounted, for the API document; each answers 404 unless
/// both the provider and the pages are on.
pub fn oidc_router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    authorize::router().merge(logout::router())
}

/// The pages' state: present whenever the routes are mounted.
fn pages(app: &App) -> &Pages {
    app.pages
        .as_deref()
        .expect("the /ui routes are mounted only with the pages")
}

/// The browser session cookie's name: `__Host-` on https, so no other host can set
/// or shadow it.
fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-gatehouse-ui"
    } else {
        "gatehouse-ui"
    }
}

/// The cookie holding this browser's form nonce.
/// The cookie that holds a pending sign-in's `mfa_token` between the first factor and
/// the second-factor page (never in a URL).
fn pending_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-gatehouse-ui-mfa"
    } else {
        "gatehouse-ui-mfa"
    }
}

fn nonce_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-gatehouse-ui-nonce"
    } else {
        "gatehouse-ui-nonce"
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for one of the pages' cookies: `HttpOnly`, `SameSite=Lax`, `Path=/`,
/// `Secure` on https; `None` clears it.
fn set_cookie(name: &str, value: Option<&str>, max_age: i64, secure: bool) -> HeaderValue {
    let (value, max_age) = match value {
        Some(v) => (v, max_age),
        None => ("", 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    let cookie =
        format!("{name}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&cookie).expect("cookie values are header-safe")
}

/// What the pages know of the browser asking.
pub(super) struct Browser {
    lang: Lang,
    /// The form nonce: the browser's cookie, or a new one set with the answer.
    nonce: String,
    new_nonce: bool,
    pub(in crate::http) secure: bool,
    session_cookie: Option<String>,
    /// A pending sign-in's `mfa_token`, when a first factor asked for the second.
    pending: Option<String>,
    /// The request came from this site, as far as the browser says: `Sec-Fetch-Site`
    /// (when sent) is `same-origin`, and `Origin` (when sent, and not the `null` a
    /// no-referrer page makes) is the site's own.
    same_origin: bool,
    /// The `User-Agent` and address, for a session started here.
    device: crate::sessions::Device,
    /// The client's address bucket, for the login lockout.
    address: String,
}

impl FromRequestParts<AppState> for Browser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        let secure = secure_cookies(parts, app);
        let accept = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        let lang = pages(app).language(accept);
        let (nonce, new_nonce) = match cookie(headers, nonce_cookie_name(secure))
            .filter(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            Some(n) => (n.to_owned(), false),
            None => (crate::crypto::random_id(), true),
        };
        let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let own = public_base(parts, app);
        let same_origin = fetch_site.is_none_or(|s| s == "same-origin")
            && origin.is_none_or(|o| {
                o == "null"
                    || own
                        .as_deref()
                        .is_some_and(|own| own.eq_ignore_ascii_case(o))
            });
        let session_cookie = cookie(headers, session_cookie_name(secure)).map(str::to_owned);
        let pending = cookie(headers, pending_cookie_name(secure))
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .map(str::to_owned);
        let device = crate::sessions::Device::from_request_parts(parts, app).await?;
        let ip =
            super::client::client_of(parts, app).unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        Ok(Browser {
            lang,
            nonce,
            new_nonce,
            secure,
            session_cookie,
            pending,
            same_origin,
            device,
            address: super::client::bucket(ip),
        })
    }
}

impl Browser {
    /// The signed-in session of this browser, if its cookie names a live one.
    async fn session(&self, app: &App) -> Option<Authenticated> {
        let cookie = self.session_cookie.as_deref()?;
        app.sessions.browser(cookie).await.ok()
    }

    fn message(&self, app: &App, id: &str) -> String {
        pages(app).message(self.lang, id)
    }
}

/// How a page is answered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A page whose address holds no secret.
    Plain,
    /// A page an emailed link opens: its address holds a token, so it sends no
    /// referrer.
    Token,
}

/// A page: `template` rendered with `context`, and the headers every page carries.
fn page(
    app: &App,
    browser: &Browser,
    status: StatusCode,
    template: &str,
    kind: Kind,
    context: Value,
) -> Response {
    let pages = pages(app);
    let html = match pages.render(template, browser.lang, &browser.nonce, context) {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(error = %e, template, "a page failed to render");
            return (StatusCode::INTERNAL_SERVER_ERROR, "Internal error").into_response();
        }
    };
    page_of(app, browser, status, kind, html)
}

/// A page already rendered, with the headers every page carries (and the browser's
/// new nonce cookie).
fn page_of(app: &App, browser: &Browser, status: StatusCode, kind: Kind, html: String) -> Response {
    let mut res = (status, html).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    page_headers(app, h, kind);
    if browser.new_nonce {
        let name = nonce_cookie_name(browser.secure);
        h.append(
            header::SET_COOKIE,
            set_cookie(name, Some(&browser.nonce), 400 * 24 * 3600, browser.secure),
        );
    }
    res
}

/// The security headers of every page and redirect: no framing, no inline script, no
/// caching, no sniffing; no referrer from a token's page.
fn page_headers(app: &App, h: &mut HeaderMap, kind: Kind) {
    if let Ok(csp) = HeaderValue::from_str(pages(app).csp()) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let referrer = match kind {
        Kind::Plain => "same-origin",
        Kind::Token => "no-referrer",
    };
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static(referrer));
}

/// Adds `origin` to the page's `form-action`: its forms' answers are redirects that end
/// there (browsers hold every hop of a form's redirects to the page's form-action, and
/// Chromium stops the navigation at the first that is not allowed).
fn allow_form_target(res: &mut Response, origin: &str) {
    let csp = res
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.replacen(
                "form-action 'self'",
                &format!("form-action 'self' {origin}"),
                1,
            )
        });
    if let Some(Ok(csp)) = csp.map(|v| HeaderValue::from_str(&v)) {
        res.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
}

/// `res`, a page whose forms end at `return_to`, with the client's origin in its
/// `form-action` when `return_to` resumes an OpenID Connect authorization request (the
/// forms' redirects then end at the client's redirect URI).
async fn for_client(app: &App, return_to: Option<&str>, mut res: Response) -> Response {
    if let Some(origin) = authorize::client_origin(app, return_to.filter(|r| !r.is_empty())).await {
        allow_form_target(&mut res, &origin);
    }
    res
}

/// A `303 See Other` to `to`, with the pages' headers.
fn redirect(app: &App, to: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    let h = res.headers_mut();
    if let Ok(location) = HeaderValue::from_str(to) {
        h.insert(header::LOCATION, location);
    }
    page_headers(app, h, Kind::Plain);
    res
}

/// A form's fields (an unreadable body gives none: the CSRF check then refuses it).
type Fields = HashMap<String, String>;

fn field<'f>(fields: &'f Fields, name: &str) -> Option<&'f str> {
    fields.get(name).map(String::as_str)
}

/// The CSRF defence of every form: the browser says the post came from this site,
/// and the form carries the token of form `form` for this browser's nonce. A refusal
/// is a `403` page.
fn csrf_refusal(app: &App, browser: &Browser, form: &str, fields: &Fields) -> Option<Response> {
    let token_ok = !browser.new_nonce
        && field(fields, "csrf").is_some_and(|t| pages(app).form_token_ok(form, &browser.nonce, t));
    if browser.same_origin && token_ok {
        return None;
    }
    tracing::info!(
        form,
        same_origin = browser.same_origin,
        "a page's form was refused: CSRF"
    );
    let context =
        minijinja::context! { title => "sign-in", error => browser.message(app, "error-csrf") };
    Some(page(
        app,
        browser,
        StatusCode::FORBIDDEN,
        "message.html",
        Kind::Plain,
        context,
    ))
}

/// Every sign-in through the pages ends here. A session: the browser gets its session
/// cookie (on the session the sign-in started) and goes to `return_to` when that is
/// allowed, else to the account page. A sign-in that owes a second factor: the browser
/// keeps the pending sign-in's `mfa_token` in an HttpOnly cookie and goes to the
/// second-factor page, which finishes it through the same [`SignInFlow`] as the API.
///
/// [`SignInFlow`]: crate::signin::flow::SignInFlow
fn signed_in(
    app: &App,
    browser: &Browser,
    finished: &Finished,
    return_to: Option<&str>,
) -> Response {
    match finished {
        Finished::Session(sign_in) => session_started(app, browser, sign_in, return_to),
        Finished::SecondFactor(pending) => {
            let checked = return_to.and_then(|r| pages(app).return_origins().check(r));
            let target = match checked {
                Some(r) => format!(
                    "/ui/second-factor?return_to={}",
                    url::form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()
                ),
                None => "/ui/second-factor".to_owned(),
            };
            let mut res = redirect(app, &target);
            res.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    pending_cookie_name(browser.secure),
                    Some(&pending.token),
                    pending.expires_in,
                    browser.secure,
                ),
            );
            res
        }
    }
}

/// A session started: its cookie set, the browser sent on (and any pending sign-in's
/// cookie cleared).
fn session_started(
    app: &App,
    browser: &Browser,
    sign_in: &SignIn,
    return_to: Option<&str>,
) -> Response {
    let target = pages(app).return_origins().or_fallback(return_to);
    let mut res = redirect(app, &target);
    session_cookies(app, browser, sign_in, &mut res);
    res
}

/// Sets the session cookie of `sign_in` on `res`, and clears any pending sign-in's.
fn session_cookies(app: &App, browser: &Browser, sign_in: &SignIn, res: &mut Response) {
    let cookie = app.sessions.browser_cookie(sign_in);
    let max_age = app.settings.session.absolute_lifetime_secs;
    let name = session_cookie_name(browser.secure);
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(name, Some(&cookie), max_age, browser.secure),
    );
    if browser.pending.is_some() {
        res.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(pending_cookie_name(browser.secure), None, 0, browser.secure),
        );
    }
}

/// Clears the browser's session cookie on `res`.
fn clear_session(browser: &Browser, res: &mut Response) {
    let name = session_cookie_name(browser.secure);
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(name, None, 0, browser.secure),
    );
}

/// The per-address limit's `429` for a page's form: the page that says so, in the
/// browser's language, with `Retry-After`, instead of the API's JSON.
pub async fn too_many(app: &AppState, parts: &mut Parts, retry_after_secs: i64) -> Response {
    let Ok(browser) = Browser::from_request_parts(parts, app).await;
    let context = minijinja::context! {
        title => "sign-in",
        error => browser.message(app, "error-too-many"),
    };
    let mut res = page(
        app,
        &browser,
        StatusCode::TOO_MANY_REQUESTS,
        "message.html",
        Kind::Plain,
        context,
    );
    if let Ok(value) = HeaderValue::from_str(&retry_after_secs.max(1).to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, value);
    }
    res
}

fn asset(content_type: &'static str, body: impl Into<axum::body::Body>) -> Response {
    let mut res = (StatusCode::OK, body.into()).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", crate::ui::STYLE)
}

async fn passkey_js() -> Response {
    asset("text/javascript; charset=utf-8", crate::ui::PASSKEY_JS)
}

async fn siwe_js() -> Response {
    asset("text/javascript; charset=utf-8", crate::ui::SIWE_JS)
}

async fn selfkey_js() -> Response {
    asset("text/javascript; charset=utf-8", crate::ui::SELFKEY_JS)
}

async fn form_post_js() -> Response {
    asset("text/javascript; charset=utf-8", crate::ui::FORM_POST_JS)
}

async fn link_js() -> Response {
    asset("text/javascript; charset=utf-8", crate::ui::LINK_JS)
}

async fn theme(axum::extract::State(app): axum::extract::State<AppState>) -> Response {
    asset(
        "text/css; charset=utf-8",
        pages(&app).theme_css().to_owned(),
    )
}

/// What a route of the pages answers with, for the OpenAPI document.
#[derive(Clone, Copy)]
enum Answer {
    /// A page (`text/html`), or a redirect.
    Page,
    /// A page, or JSON for the page's script (passkey and wallet ceremonies).
    PageOrJson,
    /// A file of `/ui/assets/` with its content type.
    Asset(&'static str),
}

/// A route of the pages in the document: method, path, query parameters, form
/// fields, statuses, answer.
type Route = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [u16],
    Answer,
);

/// Every route of the pages: method, path, query parameters, form fields (every
/// field optional: a missing one answers the page with its message), the statuses it
/// answers, and with what.
#[rustfmt::skip]
const ROUTES: &[Route] = {
    const PAGE: &[u16] = &[200, 202, 303, 400, 401, 403, 404, 409, 429, 500];
    const ACCOUNT: &[u16] = &[200, 303, 400, 401, 403, 404, 409, 429, 500];
    const CEREMONY: &[u16] = &[200, 303, 400, 401, 403, 429, 500];
    const ASSET: &[u16] = &[200];
    const TOKEN: &[&str] = &["csrf", "token"];
    use Answer::{Asset, Page, PageOrJson};
    &[
        ("get", "/ui/assets/style.css", &[], &[], ASSET, Asset("text/css")),
        ("get", "/ui/assets/theme.css", &[], &[], ASSET, Asset("text/css")),
        ("get", "/ui/assets/link.js", &[], &[], ASSET, Asset("text/javascript")),
        ("get", "/ui/assets/passkeys.js", &[], &[], ASSET, Asset("text/javascript")),
        ("get", "/ui/assets/siwe.js", &[], &[], ASSET, Asset("text/javascript")),
        ("get", "/ui/assets/selfkey.js", &[], &[], ASSET, Asset("text/javascript")),
        ("get", "/ui/sign-in", &["return_to"], &[], PAGE, Page),
        ("post", "/ui/sign-in", &[], &["csrf", "email", "password", "return_to"], PAGE, Page),
        ("get", "/ui/sign-up", &["return_to"], &[], PAGE, Page),
        ("post", "/ui/sign-up", &[], &["csrf", "email", "password", "return_to"], PAGE, Page),
        ("post", "/ui/sign-out", &[], &["csrf"], PAGE, Page),
        ("get", "/ui/forgot-password", &[], &[], PAGE, Page),
        ("post", "/ui/forgot-password", &[], &["csrf", "email"], PAGE, Page),
        ("get", "/ui/reset-password", &["token"], &[], PAGE, Page),
        ("post", "/ui/reset-password", &[], &["csrf", "token", "password"], PAGE, Page),
        ("get", "/ui/verify-email", &["token"], &[], PAGE, Page),
        ("post", "/ui/verify-email", &[], TOKEN, PAGE, Page),
        ("get", "/ui/confirm-email", &["token"], &[], PAGE, Page),
        ("post", "/ui/confirm-email", &[], TOKEN, PAGE, Page),
        ("get", "/ui/revert-email", &["token"], &[], PAGE, Page),
        ("post", "/ui/revert-email", &[], TOKEN, PAGE, Page),
        ("get", "/ui/account", &["done"], &[], ACCOUNT, Page),
        ("post", "/ui/account/resend-verification", &[], &["csrf"], ACCOUNT, Page),
        ("post", "/ui/account/email", &[], &["csrf", "new_email"], ACCOUNT, Page),
        ("post", "/ui/account/password", &[], &["csrf", "current_password", "new_password"], ACCOUNT, Page),
        ("post", "/ui/account/sessions/end", &[], &["csrf", "session"], ACCOUNT, Page),
        ("post", "/ui/account/sessions/end-others", &[], &["csrf"], ACCOUNT, Page),
        ("post", "/ui/account/passkeys/rename", &[], &["csrf", "passkey", "name"], ACCOUNT, Page),
        ("post", "/ui/account/passkeys/remove", &[], &["csrf", "passkey"], ACCOUNT, Page),
        ("post", "/ui/account/wallets/unlink", &[], &["csrf", "address"], ACCOUNT, Page),
        ("post", "/ui/account/delete", &[], &["csrf", "confirm"], ACCOUNT, Page),
        ("post", "/ui/account/second-factor/enroll", &[], &["csrf"], ACCOUNT, Page),
        ("post", "/ui/account/second-factor/confirm", &[], &["csrf", "code"], ACCOUNT, Page),
        ("post", "/ui/account/second-factor/recovery-codes", &[], &["csrf"], ACCOUNT, Page),
        ("post", "/ui/account/second-factor/remove", &[], &["csrf"], ACCOUNT, Page),
        ("post", "/ui/passkey/options", &[], &["csrf"], CEREMONY, PageOrJson),
        ("post", "/ui/passkey", &[], &["csrf", "ceremony", "credential", "return_to"], CEREMONY, PageOrJson),
        ("post", "/ui/sign-up/passkey/options", &[], &["csrf", "email"], CEREMONY, PageOrJson),
        ("post", "/ui/sign-up/passkey", &[], &["csrf", "ceremony", "credential", "return_to"], CEREMONY, PageOrJson),
        ("post", "/ui/account/passkeys/options", &[], &["csrf"], CEREMONY, PageOrJson),
        ("post", "/ui/account/passkeys/add", &[], &["csrf", "ceremony", "credential", "name"], CEREMONY, PageOrJson),
        ("get", "/ui/second-factor", &["return_to"], &[], CEREMONY, Page),
        ("post", "/ui/second-factor", &[], &["csrf", "code", "return_to"], CEREMONY, Page),
        ("post", "/ui/second-factor/passkey/options", &[], &["csrf"], CEREMONY, PageOrJson),
        ("post", "/ui/second-factor/passkey", &[], &["csrf", "ceremony", "credential", "return_to"], CEREMONY, PageOrJson),
        ("post", "/ui/second-factor/enroll", &[], &["csrf", "return_to"], CEREMONY, Page),
        ("post", "/ui/second-factor/confirm", &[], &["csrf", "code", "return_to"], CEREMONY, Page),
        ("post", "/ui/sign-in/siwe/message", &[], &["csrf", "address"], CEREMONY, PageOrJson),
        ("post", "/ui/sign-in/siwe", &[], &["csrf", "message", "signature", "return_to"], CEREMONY, PageOrJson),
        ("post", "/ui/sign-in/selfkey", &[], &["csrf", "token", "return_to"], CEREMONY, Page),
    ]
};

/// Adds the pages' routes to the OpenAPI document (when `ui.enabled`): forms as
/// `application/x-www-form-urlencoded` objects of string fields, pages as `text/html`.
pub fn document(api: &mut utoipa::openapi::OpenApi, app: &App) {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
    use utoipa::openapi::request_body::RequestBodyBuilder;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{ContentBuilder, PathItem, Required, ResponseBuilder};
    if app.pages.is_none() {
        return;
    }
    let string = || ObjectBuilder::new().schema_type(Type::String).build();
    for (method, path, query, form, statuses, answer) in ROUTES {
        let mut op = OperationBuilder::new()
            .tag("hosted pages")
            .summary(Some(format!("{} {path}", method.to_uppercase())));
        for name in *query {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .schema(Some(string())),
            );
        }
        if *method == "post" {
            let mut fields = ObjectBuilder::new().schema_type(Type::Object);
            for name in *form {
                fields = fields.property(*name, string());
            }
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/x-www-form-urlencoded",
                        ContentBuilder::new().schema(Some(fields.build())).build(),
                    )
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        // A GET counts against no limit and answers no 429 (see `limits::is_limited`).
        let statuses = statuses
            .iter()
            .filter(|s| !(*method == "get" && **s == 429));
        for status in statuses {
            let mut response = ResponseBuilder::new().description(match status {
                200 => "The page (or the file, or the ceremony's JSON)",
                202 => "The page: done, a mail is on its way",
                303 => "On to another page (`Location`)",
                _ => "The page with the refusal's message",
            });
            if *status != 303 {
                let content = |media: &str| (media.to_owned(), ContentBuilder::new().build());
                let kinds: Vec<(String, utoipa::openapi::Content)> = match answer {
                    Answer::Asset(media) => vec![content(media)],
                    Answer::Page => vec![content("text/html")],
                    Answer::PageOrJson => {
                        vec![content("text/html"), content("application/json")]
                    }
                };
                for (media, c) in kinds {
                    response = response.content(media, c);
                }
            }
            op = op.response(status.to_string(), response.build());
        }
        let method = if *method == "get" {
            HttpMethod::Get
        } else {
            HttpMethod::Post
        };
        let item = PathItem::new(method, op.build());
        match api.paths.paths.get_mut(*path) {
            Some(existing) => existing.merge_operations(item),
            None => {
                api.paths.paths.insert((*path).to_owned(), item);
            }
        }
    }
}
