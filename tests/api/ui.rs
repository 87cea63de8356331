//! The hosted pages under `/ui/`, driven as a browser without JavaScript would: every
//! page's status, headers and body, the forms' CSRF refusals, `return_to`, the
//! browser session's cookie ended by every revocation, and the mailed links. The real
//! browser runs are in tests/browser/ui.test.mjs.

use std::collections::HashMap;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::helpers::{Backend, TestApp, email, read};
use crate::mail::{PUBLIC_URL, with_mail};
use crate::on_every_backend;
use crate::smtp::SmtpServer;

on_every_backend!(
    the_sign_in_page_is_a_plain_form_with_the_security_headers,
    the_pages_speak_the_browsers_language,
    sign_up_signs_in_and_the_account_page_shows_the_account,
    a_wrong_password_comes_back_as_the_form_with_the_message_at_its_field,
    cross_site_and_tokenless_posts_are_refused_and_change_nothing,
    return_to_goes_only_to_the_site_and_listed_origins,
    every_revocation_ends_the_browser_session,
    the_account_page_ends_sessions_and_changes_the_password,
    deleting_the_account_needs_the_box_and_a_recent_sign_in,
    a_forgotten_password_through_the_mailed_link,
    a_wallets_last_way_in_stays_and_a_second_wallet_unlinks,
    a_password_sign_in_owes_the_second_factor_on_its_own_page,
    enrolling_on_the_account_page_makes_the_next_sign_in_owe_the_code,
    new_codes_and_removal_need_a_sign_in_that_gave_the_second_factor,
    a_recovery_code_on_the_second_factor_page_signs_in_once,
    a_passkey_is_the_second_factor_on_the_page,
    under_require_mfa_the_second_factor_page_is_the_enrolment,
    the_browser_cookie_lives_on_across_a_jwt_secret_rotation,
    the_rate_limit_answers_a_pages_form_with_a_page,
    sign_in_with_ethereum_on_the_page_ends_in_the_session_cookie,
    login_with_selfkey_on_the_page_ends_in_the_session_cookie,
    a_selfkey_login_on_the_page_owes_the_second_factor,
    the_prepared_sign_in_page_is_each_browsers_own,
);

const PASSWORD: &str = "password-123";

/// A browser without JavaScript: keeps the cookies it is given, sends its origin with
/// every form, follows nothing by itself.
pub(crate) struct Browser<'a> {
    app: &'a TestApp,
    pub(crate) cookies: HashMap<String, String>,
    origin: String,
    pub(crate) language: Option<&'static str>,
}

pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn location(&self) -> &str {
        self.headers
            .get("location")
            .map_or("", |l| l.to_str().unwrap())
    }
}

impl<'a> Browser<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Browser<'a> {
        let origin = app
            .app
            .settings
            .http
            .public_url
            .clone()
            .unwrap_or_else(|| app.base.clone());
        Browser {
            app,
            cookies: HashMap::new(),
            origin,
            language: None,
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, res: reqwest::Response) -> Page {
        for set in res.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: res.status(),
            headers: res.headers().clone(),
            body: res.text().await.unwrap(),
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let mut req = self
            .app
            .client
            .get(self.app.url(path))
            .header("cookie", self.cookie_header());
        if let Some(lang) = self.language {
            req = req.header("accept-language", lang);
        }
        let res = req.send().await.unwrap();
        self.keep(res).await
    }

    pub(crate) async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut req = self
            .app
            .client
            .post(self.app.url(path))
            .header("cookie", self.cookie_header())
            .header("origin", &self.origin)
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(lang) = self.language {
            req = req.header("accept-language", lang);
        }
        let res = req.body(body).send().await.unwrap();
        self.keep(res).await
    }

    /// Opens `page`, fills the form that posts to `action` with `fields` and its CSRF
    /// token, and sends it.
    pub(crate) async fn submit(
        &mut self,
        page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> Page {
        let opened = self.get(page).await;
        assert_eq!(opened.status, StatusCode::OK, "{page}: {}", opened.body);
        let token = csrf_of(&opened.body, action);
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }

    async fn sign_up(&mut self, address: &str) -> Page {
        self.submit(
            "/ui/sign-up",
            "/ui/sign-up",
            &[("email", address), ("password", PASSWORD)],
        )
        .await
    }

    /// Fills the form of `html` that posts to `action` with `fields` and its CSRF
    /// token, and sends it.
    pub(crate) async fn fill(&mut self, html: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let token = csrf_of(html, action);
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }

    async fn password_sign_in(&mut self, address: &str) -> Page {
        self.submit(
            "/ui/sign-in",
            "/ui/sign-in",
            &[("email", address), ("password", PASSWORD)],
        )
        .await
    }

    pub(crate) fn session_cookie(&self) -> Option<&String> {
        self.cookies
            .get("gatehouse-ui")
            .or_else(|| self.cookies.get("__Host-gatehouse-ui"))
    }
}

/// The CSRF token of the form posting to `action`.
pub(crate) fn csrf_of(html: &str, action: &str) -> String {
    let form = html
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form to {action}: {html}"));
    let marker = "name=\"csrf\" value=\"";
    let start = form + html[form..].find(marker).unwrap() + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

async fn the_sign_in_page_is_a_plain_form_with_the_security_headers(b: Backend) {
    let app = TestApp::spawn(b).await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/ui/sign-in").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let h = &page.headers;
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let nonce = h["set-cookie"].to_str().unwrap();
    assert!(
        nonce.starts_with("gatehouse-ui-nonce=")
            && nonce.contains("HttpOnly")
            && nonce.contains("SameSite=Lax"),
        "{nonce}"
    );
    let html = &page.body;
    assert!(
        html.starts_with("<!doctype html>\n<html lang=\"en\">"),
        "{html}"
    );
    assert!(
        html.contains("<form method=\"post\" action=\"/ui/sign-in\""),
        "{html}"
    );
    assert!(
        html.contains("autocomplete=\"username webauthn\""),
        "{html}"
    );
    assert!(html.contains("autocomplete=\"current-password\""), "{html}");
    assert!(
        html.contains("<label for=\"email\">Email</label>")
            && html.contains("<label for=\"password\">Password</label>"),
        "{html}"
    );
    assert!(
        html.contains("href=\"/ui/forgot-password\"") == app.app.lifecycle.is_some()
            || html.contains("/ui/forgot-password")
    );
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "nothing inline: {html}"
    );

    let css = app
        .client
        .get(app.url("/ui/assets/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(
        css.text()
            .await
            .unwrap()
            .contains("prefers-color-scheme:dark")
    );
    let theme = app
        .client
        .get(app.url("/ui/assets/theme.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(theme.status(), StatusCode::OK);
    assert_eq!(theme.text().await.unwrap(), ":root{--primary:#2f5bd3}\n");

    // Off: no pages at all.
    let off = TestApp::spawn_with(b, |s| s.ui.enabled = false).await;
    let (status, body) = read(off.get("/ui/sign-in", None).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["message"], "No such route.");
}

async fn the_pages_speak_the_browsers_language(b: Backend) {
    let app = TestApp::spawn(b).await;
    let mut browser = Browser::new(&app);
    browser.language = Some("de-DE,de;q=0.9,en;q=0.5");
    let page = browser.get("/ui/sign-in").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<html lang=\"de\">"), "{}", page.body);
    assert!(page.body.contains("<h1>Anmelden</h1>"), "{}", page.body);
    assert!(
        page.body
            .contains("<label for=\"password\">Passwort</label>"),
        "{}",
        page.body
    );
    browser.language = Some("fr-FR, fr;q=0.9");
    let page = browser.get("/ui/sign-up").await;
    assert!(page.body.contains("<html lang=\"en\">"), "{}", page.body);
    assert!(
        page.body.contains("<h1>Create an account</h1>"),
        "{}",
        page.body
    );

    let german = TestApp::spawn_with(b, |s| s.ui.default_language = "de".into()).await;
    let page = Browser::new(&german).get("/ui/sign-in").await;
    assert!(page.body.contains("<html lang=\"de\">"), "{}", page.body);
}

async fn sign_up_signs_in_and_the_account_page_shows_the_account(b: Backend) {
    let app = TestApp::spawn(b).await;
    let mut browser = Browser::new(&app);
    let signed_out = browser.get("/ui/account").await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        signed_out.location(),
        "/ui/sign-in?return_to=%2Fui%2Faccount"
    );

    let address = email();
    let done = browser.sign_up(&address).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/ui/account");
    let cookie = done.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("gatehouse-ui="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");

    let page = browser.get("/ui/account").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.headers["cache-control"], "no-store");
    assert!(
        page.body.contains(&format!(
            "<p>{address} <span class=\"badge\">not verified</span></p>"
        )),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<strong>This session</strong>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("Signed in with: password"),
        "{}",
        page.body
    );

    // The same account through the JSON API.
    let (status, body) = app.login(&address, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Taken: the form again, the message at the email field.
    let mut other = Browser::new(&app);
    let taken = other.sign_up(&address).await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.body);
    assert!(
        taken
            .body
            .contains("An account with this email already exists."),
        "{}",
        taken.body
    );
    assert!(
        taken
            .body
            .contains("aria-invalid=\"true\" aria-describedby=\"form-error\""),
        "{}",
        taken.body
    );

    let out = browser.submit("/ui/account", "/ui/sign-out", &[]).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert!(out.body.contains("You are signed out."), "{}", out.body);
    assert!(browser.session_cookie().is_none(), "the cookie is cleared");
    let again = browser.get("/ui/account").await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
}

async fn a_wrong_password_comes_back_as_the_form_with_the_message_at_its_field(b: Backend) {
    let app = TestApp::spawn(b).await;
    let address = email();
    app.registered(&address, PASSWORD).await;
    let mut browser = Browser::new(&app);
    let page = browser
        .submit(
            "/ui/sign-in",
            "/ui/sign-in",
            &[("email", &address), ("password", "wrong-password")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert!(page.body.contains("<p class=\"error\" role=\"alert\" id=\"form-error\">The email or password is wrong.</p>"), "{}", page.body);
    assert!(page.body.contains("autocomplete=\"current-password\" required aria-invalid=\"true\" aria-describedby=\"form-error\""), "{}", page.body);
    assert!(
        page.body.contains(&format!("value=\"{address}\"")),
        "the address is kept: {}",
        page.body
    );
    assert!(browser.session_cookie().is_none());

    let page = browser
        .submit(
            "/ui/sign-in",
            "/ui/sign-in",
            &[("email", "not-an-address"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(
        page.body.contains("Enter a valid email address."),
        "{}",
        page.body
    );

    let page = browser
        .submit(
            "/ui/sign-in",
            "/ui/sign-in",
            &[("email", &address), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/ui/account");
    assert!(browser.session_cookie().is_some());
}

async fn cross_site_and_tokenless_posts_are_refused_and_change_nothing(b: Backend) {
    let app = TestApp::spawn(b).await;
    let address = email();
    let mut browser = Browser::new(&app);
    let page = browser.get("/ui/sign-up").await;
    let token = csrf_of(&page.body, "/ui/sign-up");
    let fields = [("email", address.as_str()), ("password", PASSWORD)];

    // From another origin, with a good token.
    browser.origin = "https://evil.example".into();
    let mut with_token = vec![("csrf", token.as_str())];
    with_token.extend_from_slice(&fields);
    let refused = browser.post("/ui/sign-up", &with_token).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("This form has expired or came from another site."),
        "{}",
        refused.body
    );
    browser.origin = app.base.clone();
    // No token; another form's token; this form's token of another browser.
    let refused = browser.post("/ui/sign-up", &fields).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let sign_in_token = csrf_of(&browser.get("/ui/sign-in").await.body, "/ui/sign-in");
    let mut other_form = vec![("csrf", sign_in_token.as_str())];
    other_form.extend_from_slice(&fields);
    assert_eq!(
        browser.post("/ui/sign-up", &other_form).await.status,
        StatusCode::FORBIDDEN
    );
    let mut stranger = Browser::new(&app);
    stranger.get("/ui/sign-up").await;
    assert_eq!(
        stranger.post("/ui/sign-up", &with_token).await.status,
        StatusCode::FORBIDDEN
    );
    // A cross-site fetch that the browser marks so.
    let res = app
        .client
        .post(app.url("/ui/sign-up"))
        .header("cookie", browser.cookie_header())
        .header("sec-fetch-site", "cross-site")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&with_token)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let (status, body) = app.login(&address, PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "no account was made: {body}"
    );
    // The same post, from the site: made.
    let made = browser.post("/ui/sign-up", &with_token).await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
}

async fn return_to_goes_only_to_the_site_and_listed_origins(b: Backend) {
    let app = TestApp::spawn_with(b, |s| {
        s.ui.return_origins = vec!["https://app.example.com".into()]
    })
    .await;
    let address = email();
    app.registered(&address, PASSWORD).await;
    let cases = [
        ("/ui/account?x=1", "/ui/account?x=1"),
        ("/somewhere/else", "/somewhere/else"),
        (
            "https://app.example.com/home",
            "https://app.example.com/home",
        ),
        ("https://evil.example/", "/ui/account"),
        ("//evil.example", "/ui/account"),
        ("/\\evil.example", "/ui/account"),
        ("/%2F%2Fevil.example", "/ui/account"),
        ("javascript:alert(1)", "/ui/account"),
        ("https://app.example.com@evil.example/", "/ui/account"),
        ("https://app.example.com.evil.example/", "/ui/account"),
        ("http://app.example.com/", "/ui/account"),
    ];
    for (return_to, expected) in cases {
        let mut browser = Browser::new(&app);
        let page = browser
            .submit(
                "/ui/sign-in",
                "/ui/sign-in",
                &[
                    ("email", &address),
                    ("password", PASSWORD),
                    ("return_to", return_to),
                ],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "{return_to}: {}",
            page.body
        );
        assert_eq!(page.location(), expected, "{return_to}");
    }
    // The sign-in page keeps an allowed return_to in its form, and drops another.
    let mut browser = Browser::new(&app);
    let page = browser
        .get("/ui/sign-in?return_to=%2Fui%2Faccount%3Fa%3Db")
        .await;
    assert!(
        page.body
            .contains("name=\"return_to\" value=\"&#x2f;ui&#x2f;account?a=b\""),
        "{}",
        page.body
    );
    let page = browser
        .get("/ui/sign-in?return_to=%2F%2Fevil.example")
        .await;
    assert!(
        page.body.contains("name=\"return_to\" value=\"\""),
        "{}",
        page.body
    );
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("form-action 'self' https://app.example.com;"),
        "{csp}"
    );
}

async fn every_revocation_ends_the_browser_session(b: Backend) {
    let app = TestApp::spawn(b).await;
    let address = email();
    let mut browser = Browser::new(&app);
    assert_eq!(
        browser.sign_up(&address).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(browser.get("/ui/account").await.status, StatusCode::OK);

    // Signing out everywhere from the API ends the page's session too.
    let (_, body) = app.login(&address, PASSWORD).await;
    let (status, body) = app
        .logout(body["token"].as_str().unwrap(), Some("global"))
        .await;
    assert!(status.is_success(), "{body}");
    let page = browser.get("/ui/account").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/ui/sign-in?return_to=%2Fui%2Faccount");
    assert!(
        browser.session_cookie().is_none(),
        "an ended session's cookie is cleared"
    );

    // A disabled account: refused.
    let signed_in = browser
        .submit(
            "/ui/sign-in",
            "/ui/sign-in",
            &[("email", &address), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    let cookie = browser.session_cookie().unwrap().clone();
    let key = gatehouse::domain::Email::parse(&address, "email").unwrap();
    let account = app
        .app
        .store
        .account_by_email(key.key())
        .await
        .unwrap()
        .unwrap();
    let now = gatehouse::domain::unix_now();
    app.app
        .store
        .admin()
        .disable_account(&account.id, now)
        .await
        .unwrap();
    assert_eq!(
        browser.get("/ui/account").await.status,
        StatusCode::SEE_OTHER
    );
    // A forged or altered cookie: refused.
    let mut forged = Browser::new(&app);
    let altered = format!("{}x", &cookie[..cookie.len() - 1]);
    forged.cookies.insert("gatehouse-ui".into(), altered);
    assert_eq!(
        forged.get("/ui/account").await.status,
        StatusCode::SEE_OTHER
    );
}

async fn the_account_page_ends_sessions_and_changes_the_password(b: Backend) {
    let app = TestApp::spawn(b).await;
    let address = email();
    let mut browser = Browser::new(&app);
    browser.sign_up(&address).await;
    let (_, api) = app.login(&address, PASSWORD).await;
    let api_token = api["token"].as_str().unwrap().to_owned();
    let page = browser.get("/ui/account").await;
    assert!(
        page.body.contains("Sign out everywhere else"),
        "{}",
        page.body
    );

    // End the API's session by its button.
    let sid = crate::helpers::jwt_parts(&api_token).1["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = csrf_of(&page.body, "/ui/account/sessions/end");
    let ended = browser
        .post(
            "/ui/account/sessions/end",
            &[("csrf", &token), ("session", &sid)],
        )
        .await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER, "{}", ended.body);
    assert_eq!(ended.location(), "/ui/account?done=session-ended");
    let (status, _) = app.me(&api_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let page = browser.get("/ui/account?done=session-ended").await;
    assert!(
        page.body
            .contains("<p class=\"notice\" role=\"status\">The session is signed out.</p>"),
        "{}",
        page.body
    );

    // A wrong current password: the form again, the message at that field.
    let wrong = browser
        .submit(
            "/ui/account",
            "/ui/account/password",
            &[
                ("current_password", "not-the-password"),
                ("new_password", "new-password-456"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{}", wrong.body);
    assert!(
        wrong.body.contains("The current password is wrong."),
        "{}",
        wrong.body
    );
    assert!(
        wrong
            .body
            .contains("autocomplete=\"current-password\" required aria-invalid=\"true\""),
        "{}",
        wrong.body
    );

    let (_, api) = app.login(&address, PASSWORD).await;
    let changed = browser
        .submit(
            "/ui/account",
            "/ui/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "new-password-456"),
            ],
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
    assert_eq!(changed.location(), "/ui/account?done=password-changed");
    assert_eq!(
        browser.get("/ui/account").await.status,
        StatusCode::OK,
        "this session lives on"
    );
    let (status, _) = app.me(api["token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the others ended");
    let (status, body) = app.login(&address, "new-password-456").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let others = browser
        .submit("/ui/account", "/ui/account/sessions/end-others", &[])
        .await;
    assert_eq!(others.location(), "/ui/account?done=others-ended");
    let (status, _) = app.me(body["token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn deleting_the_account_needs_the_box_and_a_recent_sign_in(b: Backend) {
    let app = TestApp::spawn_with(b, |s| s.accounts.reauth_window_secs = 2).await;
    let address = email();
    let mut browser = Browser::new(&app);
    browser.sign_up(&address).await;
    let unticked = browser
        .submit("/ui/account", "/ui/account/delete", &[])
        .await;
    assert_eq!(
        unticked.status,
        StatusCode::BAD_REQUEST,
        "{}",
        unticked.body
    );
    assert!(
        unticked.body.contains("Tick the box to confirm."),
        "{}",
        unticked.body
    );
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let stale = browser
        .submit("/ui/account", "/ui/account/delete", &[("confirm", "yes")])
        .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN, "{}", stale.body);
    assert!(
        stale.body.contains("For this change, sign in again first."),
        "{}",
        stale.body
    );
    let (status, _) = app.login(&address, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "still there");

    browser
        .submit(
            "/ui/sign-in",
            "/ui/sign-in",
            &[("email", &address), ("password", PASSWORD)],
        )
        .await;
    let deleted = browser
        .submit("/ui/account", "/ui/account/delete", &[("confirm", "yes")])
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert!(
        deleted.body.contains("The account is deleted."),
        "{}",
        deleted.body
    );
    assert!(browser.session_cookie().is_none());
    let (status, _) = app.login(&address, PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "gone");
}

async fn a_forgotten_password_through_the_mailed_link(b: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(b, |s| {
        with_mail(&smtp)(s);
        s.ui.enabled = true;
    })
    .await;
    let address = email();
    app.registered(&address, PASSWORD).await;
    let (_, api) = app.login(&address, PASSWORD).await;
    let mut browser = Browser::new(&app);
    let sent = browser
        .submit(
            "/ui/forgot-password",
            "/ui/forgot-password",
            &[("email", &address)],
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert!(
        sent.body
            .contains("If an account with a password exists for this address"),
        "{}",
        sent.body
    );
    let unknown = Browser::new(&app)
        .submit(
            "/ui/forgot-password",
            "/ui/forgot-password",
            &[("email", &email())],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert!(
        !unknown.body.contains("<form"),
        "the same answer, no form: {}",
        unknown.body
    );

    let prefix = format!("{PUBLIC_URL}/ui/reset-password?token=");
    let link = crate::mail::links(&smtp, &prefix, 1).await.remove(0);
    let path = link.strip_prefix(PUBLIC_URL).unwrap();
    let opened = browser.get(path).await;
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.body);
    assert_eq!(opened.headers["referrer-policy"], "no-referrer");
    assert_eq!(opened.headers["cache-control"], "no-store");
    assert!(
        opened
            .body
            .contains("<script src=\"/ui/assets/link.js\" defer></script>"),
        "{}",
        opened.body
    );
    let token = link.strip_prefix(&prefix).unwrap();
    let csrf = csrf_of(&opened.body, "/ui/reset-password");
    // A page with no referrer posts with `Origin: null`; the form token still decides.
    browser.origin = "null".into();
    let short = browser
        .post(
            "/ui/reset-password",
            &[("csrf", &csrf), ("token", token), ("password", "short")],
        )
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST, "{}", short.body);
    assert!(
        short
            .body
            .contains("Choose a password of 8 characters to 1,024 bytes."),
        "{}",
        short.body
    );
    let reset = browser
        .post(
            "/ui/reset-password",
            &[
                ("csrf", &csrf),
                ("token", token),
                ("password", "new-password-789"),
            ],
        )
        .await;
    assert_eq!(reset.status, StatusCode::SEE_OTHER, "{}", reset.body);
    assert_eq!(reset.location(), "/ui/account");
    let cookie = reset.headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("__Host-gatehouse-ui=") && cookie.contains("; Secure"),
        "https public URL: {cookie}"
    );
    let (status, _) = app.me(api["token"].as_str().unwrap()).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the reset ended the other sessions"
    );
    let again = browser
        .post(
            "/ui/reset-password",
            &[
                ("csrf", &csrf),
                ("token", token),
                ("password", "new-password-000"),
            ],
        )
        .await;
    assert_eq!(
        again.status,
        StatusCode::BAD_REQUEST,
        "single use: {}",
        again.body
    );
    assert!(
        again.body.contains("This link is invalid or has expired."),
        "{}",
        again.body
    );
    let (status, body) = app.login(&address, "new-password-789").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A browser holding the page cookie of the session an API sign-in (`body`) started,
/// as `Sessions::browser_cookie` makes it.
fn browser_of<'a>(app: &'a TestApp, body: &serde_json::Value) -> Browser<'a> {
    let claims = crate::helpers::jwt_parts(body["token"].as_str().unwrap()).1;
    let sign_in = gatehouse::sessions::SignIn {
        token: String::new(),
        refresh_token: String::new(),
        expires_in: 0,
        session: claims["sid"].as_str().unwrap().to_owned(),
        account: gatehouse::domain::AccountId(claims["sub"].as_str().unwrap().to_owned()),
        auth_time: claims["auth_time"].as_i64().unwrap(),
        multi_factor: claims["amr"]
            .as_array()
            .is_some_and(|amr| amr.iter().any(|m| m == "mfa")),
    };
    let mut browser = Browser::new(app);
    browser.cookies.insert(
        "gatehouse-ui".into(),
        app.app.sessions.browser_cookie(&sign_in),
    );
    browser
}

async fn a_wallets_last_way_in_stays_and_a_second_wallet_unlinks(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = crate::selfkey::TestWallet::random();
    let (status, body) = crate::siwe::signed_in_as(&app, &wallet).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut browser = browser_of(&app, &body);
    let page = browser.get("/ui/account").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let address = page
        .body
        .split("<code>")
        .nth(1)
        .unwrap()
        .split("</code>")
        .next()
        .unwrap()
        .to_owned();
    assert!(
        address.starts_with("0x") && address.len() == 42,
        "{address}"
    );
    assert!(page.body.contains("Signed in with: siwe"), "{}", page.body);
    // No email: no username for a password manager to save (not the word "none").
    assert!(!page.body.contains(r#"name="username""#), "{}", page.body);
    assert!(
        !page.body.to_lowercase().contains(r#"value="none""#),
        "{}",
        page.body
    );

    let refused = browser
        .submit(
            "/ui/account",
            "/ui/account/wallets/unlink",
            &[("address", &address)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("That is the account&#x27;s last way in: add another first."),
        "{}",
        refused.body
    );
    let page = browser.get("/ui/account").await;
    assert!(
        page.body.contains(&format!("<code>{address}</code>")),
        "still linked: {}",
        page.body
    );

    // With a password too, the wallet unlinks.
    let changed = browser
        .submit(
            "/ui/account",
            "/ui/account/password",
            &[("new_password", "a first password")],
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
    let unlinked = browser
        .submit(
            "/ui/account",
            "/ui/account/wallets/unlink",
            &[("address", &address)],
        )
        .await;
    assert_eq!(unlinked.status, StatusCode::SEE_OTHER, "{}", unlinked.body);
    assert_eq!(unlinked.location(), "/ui/account?done=wallet-unlinked");
    let page = browser.get("/ui/account?done=wallet-unlinked").await;
    assert!(
        page.body.contains("The wallet is unlinked."),
        "{}",
        page.body
    );
    assert!(page.body.contains("No wallet linked."), "{}", page.body);
}

/// An account with an authenticator signs in through the form: the password alone sets
/// no session cookie, only the pending sign-in's; the second-factor page refuses a
/// wrong code with the form and its message, and the right code starts the session
/// and goes on to `return_to`. The code's step is then used: a second browser that
/// knows the password cannot sign in with the same code.
async fn a_password_sign_in_owes_the_second_factor_on_its_own_page(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (address, secret) = crate::mfa::enrolled_account(&app).await;
    let mut browser = Browser::new(&app);
    let first = browser
        .submit(
            "/ui/sign-in",
            "/ui/sign-in",
            &[
                ("email", address.as_str()),
                ("password", crate::mfa::PASSWORD),
                ("return_to", "/ui/account"),
            ],
        )
        .await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    assert_eq!(
        first.location(),
        "/ui/second-factor?return_to=%2Fui%2Faccount"
    );
    assert!(browser.session_cookie().is_none(), "{:?}", browser.cookies);
    let pending = browser.cookies.get("gatehouse-ui-mfa").cloned();
    assert!(pending.is_some(), "{:?}", browser.cookies);
    let pending_again = pending.clone().unwrap();
    let account = browser.get("/ui/account").await;
    assert_eq!(account.status, StatusCode::SEE_OTHER, "{}", account.body);

    let wrong = browser
        .submit(
            "/ui/second-factor",
            "/ui/second-factor",
            &[("code", "000000"), ("return_to", "/ui/account")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    assert!(
        wrong
            .body
            .contains("The code is wrong or was used already."),
        "{}",
        wrong.body
    );
    assert!(
        wrong.body.contains("autocomplete=\"one-time-code\""),
        "{}",
        wrong.body
    );
    assert!(browser.session_cookie().is_none());

    let now = crate::mfa::clear_of_a_step_end().await;
    let code = crate::mfa::oath_code(&secret, now);
    let right = browser
        .submit(
            "/ui/second-factor",
            "/ui/second-factor",
            &[("code", code.as_str()), ("return_to", "/ui/account")],
        )
        .await;
    assert_eq!(right.status, StatusCode::SEE_OTHER, "{}", right.body);
    assert_eq!(right.location(), "/ui/account");
    assert!(browser.session_cookie().is_some(), "{:?}", browser.cookies);
    assert!(!browser.cookies.contains_key("gatehouse-ui-mfa"));
    let page = browser.get("/ui/account").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(&address), "{}", page.body);

    // The pending sign-in is used up: its cookie replayed is refused, on the page and
    // on a post of the code.
    let mut replay = Browser::new(&app);
    replay
        .cookies
        .insert("gatehouse-ui-mfa".into(), pending.unwrap());
    let page = replay.get("/ui/second-factor").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    let sign_in = replay.get("/ui/sign-in").await;
    replay
        .cookies
        .insert("gatehouse-ui-mfa".into(), pending_again);
    let token = app
        .app
        .pages
        .as_ref()
        .unwrap()
        .form_token("second_factor", &replay.cookies["gatehouse-ui-nonce"]);
    assert_eq!(sign_in.status, StatusCode::OK);
    let again = replay
        .post(
            "/ui/second-factor",
            &[("csrf", token.as_str()), ("code", code.as_str())],
        )
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}", again.body);
    assert!(
        again
            .body
            .contains("This sign-in has expired or took too many codes."),
        "{}",
        again.body
    );
    assert!(replay.session_cookie().is_none());
}

/// The text between `start` and the next `end` after it.
fn between<'h>(html: &'h str, start: &str, end: &str) -> &'h str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start}: {html}"))
        + start.len();
    &html[from..from + html[from..].find(end).unwrap()]
}

/// The recovery codes a page shows.
fn recovery_codes_of(html: &str) -> Vec<String> {
    between(html, "data-recovery-codes>", "</ul>")
        .split("<code>")
        .skip(1)
        .map(|c| c.split("</code>").next().unwrap().to_owned())
        .collect()
}

/// Enrolls an authenticator through the account page of a signed-in `browser`: the
/// enrolment page (QR code, key, code field), a wrong code refused at its field, then
/// the right one (of the step now) and the recovery codes, once. The key and codes.
async fn enroll_on_the_page(browser: &mut Browser<'_>) -> (String, Vec<String>) {
    let account = browser.get("/ui/account").await;
    assert!(
        account
            .body
            .contains("No authenticator app yet: your password alone signs in."),
        "{}",
        account.body
    );
    let enrolment = browser
        .fill(&account.body, "/ui/account/second-factor/enroll", &[])
        .await;
    assert_eq!(enrolment.status, StatusCode::OK, "{}", enrolment.body);
    assert_eq!(enrolment.headers["cache-control"], "no-store");
    assert!(
        enrolment.body.contains("<figure class=\"qr\" role=\"img\"")
            && enrolment.body.contains("<svg")
            && !enrolment.body.contains("<?xml")
            && !enrolment.body.contains("<script")
            && !enrolment.body.contains("style="),
        "{}",
        enrolment.body
    );
    assert!(
        enrolment.body.contains("autocomplete=\"one-time-code\""),
        "{}",
        enrolment.body
    );
    let secret = between(&enrolment.body, "<code id=\"secret\">", "</code>").to_owned();
    assert!(
        secret.len() >= 16 && secret.bytes().all(|c| c.is_ascii_alphanumeric()),
        "{secret}"
    );

    let wrong = browser
        .fill(
            &enrolment.body,
            "/ui/account/second-factor/confirm",
            &[("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    assert!(
        wrong
            .body
            .contains("The code is wrong or was used already.")
            && wrong
                .body
                .contains("aria-invalid=\"true\" aria-describedby=\"form-error\""),
        "{}",
        wrong.body
    );
    assert!(!wrong.body.contains(&secret), "the key is shown once");

    let now = crate::mfa::clear_of_a_step_end().await;
    let code = crate::mfa::oath_code(&secret, now);
    let confirmed = browser
        .fill(
            &wrong.body,
            "/ui/account/second-factor/confirm",
            &[("code", code.as_str())],
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(confirmed.headers["cache-control"], "no-store");
    let codes = recovery_codes_of(&confirmed.body);
    assert_eq!(codes.len(), 10, "{}", confirmed.body);

    let account = browser.get("/ui/account").await;
    assert!(
        account.body.contains("An authenticator app is on")
            && account
                .body
                .contains("Recovery codes left: <strong data-codes-left>10</strong>"),
        "{}",
        account.body
    );
    assert!(!account.body.contains(&secret) && !account.body.contains(&codes[0]));
    (secret, codes)
}

/// A browser's password sign-in of an account with a factor, through the second-factor
/// page with `code`: the page's answer.
async fn sign_in_with(browser: &mut Browser<'_>, address: &str, code: &str) -> Page {
    let first = browser.password_sign_in(address).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    assert_eq!(first.location(), "/ui/second-factor");
    assert!(browser.session_cookie().is_none(), "{:?}", browser.cookies);
    browser
        .submit("/ui/second-factor", "/ui/second-factor", &[("code", code)])
        .await
}

/// Enrolment through the pages takes effect: a password sign-in afterwards owes the
/// code (no session cookie until it is given), and the code of the step after the
/// confirmation's signs in.
async fn enrolling_on_the_account_page_makes_the_next_sign_in_owe_the_code(b: Backend) {
    let app = TestApp::spawn(b).await;
    let address = email();
    let mut browser = Browser::new(&app);
    browser.sign_up(&address).await;
    let (secret, _) = enroll_on_the_page(&mut browser).await;

    let mut other = Browser::new(&app);
    let next = crate::mfa::oath_code(&secret, gatehouse::domain::unix_now() + 30);
    let signed_in = sign_in_with(&mut other, &address, &next).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    assert_eq!(signed_in.location(), "/ui/account");
    assert!(other.session_cookie().is_some(), "{:?}", other.cookies);
    let page = other.get("/ui/account").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("An authenticator app is on"),
        "{}",
        page.body
    );
}

/// The session that enrolled came from a password alone: it can neither replace the
/// recovery codes, nor remove the authenticator, nor change the password (refused on
/// the page, nothing changed: the password still signs in below).
/// A session from a sign-in with the code can: new codes void the old ones, and
/// removal makes the password sign in alone again.
async fn new_codes_and_removal_need_a_sign_in_that_gave_the_second_factor(b: Backend) {
    let app = TestApp::spawn(b).await;
    let address = email();
    let mut first_factor_only = Browser::new(&app);
    first_factor_only.sign_up(&address).await;
    let (secret, old_codes) = enroll_on_the_page(&mut first_factor_only).await;

    let new_password = [
        ("current_password", PASSWORD),
        ("new_password", "another password"),
    ];
    for (action, fields) in [
        ("/ui/account/second-factor/recovery-codes", &[][..]),
        ("/ui/account/second-factor/remove", &[][..]),
        ("/ui/account/password", &new_password[..]),
    ] {
        let refused = first_factor_only
            .submit("/ui/account", action, fields)
            .await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{action}: {}",
            refused.body
        );
        assert!(
            refused
                .body
                .contains("For this change, sign in again with your second factor first.")
                && refused
                    .body
                    .contains("Recovery codes left: <strong data-codes-left>10</strong>"),
            "{action}: {}",
            refused.body
        );
        assert!(
            !refused.body.contains("data-recovery-codes"),
            "{}",
            refused.body
        );
    }

    let mut two_factors = Browser::new(&app);
    let next = crate::mfa::oath_code(&secret, gatehouse::domain::unix_now() + 30);
    let signed_in = sign_in_with(&mut two_factors, &address, &next).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );

    let renewed = two_factors
        .submit(
            "/ui/account",
            "/ui/account/second-factor/recovery-codes",
            &[],
        )
        .await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    assert_eq!(renewed.headers["cache-control"], "no-store");
    let new_codes = recovery_codes_of(&renewed.body);
    assert_eq!(new_codes.len(), 10, "{}", renewed.body);
    assert!(old_codes.iter().all(|c| !new_codes.contains(c)));
    let mut with_an_old_code = Browser::new(&app);
    let refused = sign_in_with(&mut with_an_old_code, &address, &old_codes[0]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("The code is wrong or was used already."),
        "{}",
        refused.body
    );
    assert!(with_an_old_code.session_cookie().is_none());

    let removed = two_factors
        .submit("/ui/account", "/ui/account/second-factor/remove", &[])
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
    assert_eq!(removed.location(), "/ui/account?done=totp-removed");
    let page = two_factors.get("/ui/account?done=totp-removed").await;
    assert!(
        page.body.contains("The authenticator is removed.")
            && page
                .body
                .contains("No authenticator app yet: your password alone signs in."),
        "{}",
        page.body
    );
    let mut password_alone = Browser::new(&app);
    let signed_in = password_alone.password_sign_in(&address).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    assert_eq!(signed_in.location(), "/ui/account");
    assert!(password_alone.session_cookie().is_some());
}

/// A recovery code finishes a page sign-in in place of the app's code, once: the
/// account page then counts one fewer, and the same code in another browser is refused.
async fn a_recovery_code_on_the_second_factor_page_signs_in_once(b: Backend) {
    let app = TestApp::spawn(b).await;
    let address = email();
    let mut browser = Browser::new(&app);
    browser.sign_up(&address).await;
    let (_, codes) = enroll_on_the_page(&mut browser).await;

    let mut first = Browser::new(&app);
    let signed_in = sign_in_with(&mut first, &address, &codes[3]).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    assert_eq!(signed_in.location(), "/ui/account");
    let page = first.get("/ui/account").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("Recovery codes left: <strong data-codes-left>9</strong>"),
        "{}",
        page.body
    );

    let mut second = Browser::new(&app);
    let refused = sign_in_with(&mut second, &address, &codes[3]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("The code is wrong or was used already."),
        "{}",
        refused.body
    );
    assert!(second.session_cookie().is_none(), "{:?}", second.cookies);
}

/// The ceremony's options from the second-factor page's form, and `authenticator`'s
/// assertion for them: the form's fields.
async fn page_passkey_assertion(
    browser: &mut Browser<'_>,
    html: &str,
    authenticator: &mut softpasskey::Authenticator,
) -> (String, String) {
    // The options take the passkey form's own token.
    let token = csrf_of(html, "/ui/second-factor/passkey");
    let options = browser
        .post("/ui/second-factor/passkey/options", &[("csrf", &token)])
        .await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    let options: serde_json::Value = serde_json::from_str(&options.body).unwrap();
    let credential = authenticator.get(&options["publicKey"]);
    (
        options["ceremony"].as_str().unwrap().to_owned(),
        credential.to_string(),
    )
}

/// The second-factor page of an account with a passkey offers it ("Use a passkey");
/// another account's passkey is refused at the page (no session), the account's own
/// signs in through the same step as `/auth/mfa/passkey`: the session cookie, the
/// factors `pwd hwk mfa`, the pending sign-in used up.
async fn a_passkey_is_the_second_factor_on_the_page(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, both, _) = crate::mfa::sessions_with_and_without_the_factor(&app).await;
    let address = crate::helpers::jwt_parts(&both).1["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut authenticator = softpasskey::Authenticator::new(crate::passkeys::ORIGIN);
    let (status, body) = app
        .register_passkey(&mut authenticator, Some(&both), Some("Laptop"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut stranger = softpasskey::Authenticator::new(crate::passkeys::ORIGIN);
    app.passkey_account(&mut stranger).await;

    let mut browser = Browser::new(&app);
    let first = browser
        .submit(
            "/ui/sign-in",
            "/ui/sign-in",
            &[
                ("email", address.as_str()),
                ("password", crate::mfa::PASSWORD),
            ],
        )
        .await;
    assert_eq!(first.location(), "/ui/second-factor", "{}", first.body);
    let step = browser.get("/ui/second-factor").await;
    assert_eq!(step.status, StatusCode::OK, "{}", step.body);
    assert!(
        step.body.contains("Use a passkey")
            && step.body.contains("data-passkey=\"second-factor\"")
            && step.body.contains("/ui/assets/passkeys.js")
            && step.body.contains("autocomplete=\"one-time-code\""),
        "{}",
        step.body
    );

    let (ceremony, credential) =
        page_passkey_assertion(&mut browser, &step.body, &mut stranger).await;
    let refused = browser
        .fill(
            &step.body,
            "/ui/second-factor/passkey",
            &[("ceremony", &ceremony), ("credential", &credential)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert!(
        refused.body.contains("The passkey could not be used."),
        "{}",
        refused.body
    );
    assert!(browser.session_cookie().is_none(), "{:?}", browser.cookies);

    let (ceremony, credential) =
        page_passkey_assertion(&mut browser, &refused.body, &mut authenticator).await;
    let pending = browser.cookies.get("gatehouse-ui-mfa").cloned().unwrap();
    let done = browser
        .fill(
            &refused.body,
            "/ui/second-factor/passkey",
            &[("ceremony", &ceremony), ("credential", &credential)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/ui/account");
    assert!(!browser.cookies.contains_key("gatehouse-ui-mfa"));
    let account = browser.get("/ui/account").await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    assert!(account.body.contains(&address), "{}", account.body);

    // The pending sign-in is used: the same ceremony's cookie replayed starts over.
    let mut replay = Browser::new(&app);
    replay.cookies.insert("gatehouse-ui-mfa".into(), pending);
    let again = replay.get("/ui/second-factor").await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}", again.body);
    assert!(
        again
            .body
            .contains("This sign-in has expired or took too many codes."),
        "{}",
        again.body
    );
}

/// Under `accounts.require_mfa`, a sign-up through the pages gets no session: the
/// second-factor page offers only the enrolment (a code is refused), which shows the
/// QR code and the key once, refuses a wrong code at its field, and on the right one
/// shows the ten recovery codes on the page that sets the session cookie.
async fn under_require_mfa_the_second_factor_page_is_the_enrolment(b: Backend) {
    let app = TestApp::spawn_with(b, |s| s.accounts.require_mfa = true).await;
    let address = email();
    let mut browser = Browser::new(&app);
    let signed_up = browser.sign_up(&address).await;
    assert_eq!(
        signed_up.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_up.body
    );
    assert_eq!(signed_up.location(), "/ui/second-factor");
    assert!(browser.session_cookie().is_none(), "{:?}", browser.cookies);

    let step = browser.get("/ui/second-factor").await;
    assert_eq!(step.status, StatusCode::OK, "{}", step.body);
    assert!(
        step.body
            .contains("This site asks for a second factor on every account.")
            && step.body.contains("action=\"/ui/second-factor/enroll\"")
            && !step.body.contains("action=\"/ui/second-factor\""),
        "{}",
        step.body
    );
    // A code is not what this sign-in may give (the page has no form for one: the
    // form's token is made as the page would).
    let nonce = browser.cookies["gatehouse-ui-nonce"].clone();
    let code_form_token = app
        .app
        .pages
        .as_ref()
        .unwrap()
        .form_token("second_factor", &nonce);
    let code = browser
        .post(
            "/ui/second-factor",
            &[("csrf", &code_form_token), ("code", "123456")],
        )
        .await;
    assert_eq!(code.status, StatusCode::FORBIDDEN, "{}", code.body);
    assert!(
        code.body.contains("action=\"/ui/second-factor/enroll\""),
        "{}",
        code.body
    );
    assert!(browser.session_cookie().is_none());

    let enrolment = browser
        .fill(&step.body, "/ui/second-factor/enroll", &[])
        .await;
    assert_eq!(enrolment.status, StatusCode::OK, "{}", enrolment.body);
    assert!(
        enrolment.body.contains("<figure class=\"qr\" role=\"img\"")
            && enrolment.body.contains("<svg")
            && enrolment
                .body
                .contains("action=\"/ui/second-factor/confirm\""),
        "{}",
        enrolment.body
    );
    let secret = between(&enrolment.body, "<code id=\"secret\">", "</code>").to_owned();
    let wrong = browser
        .fill(
            &enrolment.body,
            "/ui/second-factor/confirm",
            &[("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    assert!(
        wrong
            .body
            .contains("The code is wrong or was used already.")
            && !wrong.body.contains(&secret),
        "{}",
        wrong.body
    );
    assert!(browser.session_cookie().is_none());

    let now = crate::mfa::clear_of_a_step_end().await;
    let code = crate::mfa::oath_code(&secret, now);
    let confirmed = browser
        .fill(
            &wrong.body,
            "/ui/second-factor/confirm",
            &[("code", code.as_str())],
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(confirmed.headers["cache-control"], "no-store");
    assert_eq!(
        recovery_codes_of(&confirmed.body).len(),
        10,
        "{}",
        confirmed.body
    );
    assert!(
        // (minijinja escapes the slashes of the address.)
        confirmed
            .body
            .contains("<a href=\"&#x2f;ui&#x2f;account\">Continue</a>"),
        "{}",
        confirmed.body
    );
    assert!(browser.session_cookie().is_some(), "{:?}", browser.cookies);
    assert!(!browser.cookies.contains_key("gatehouse-ui-mfa"));
    let account = browser.get("/ui/account").await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    assert!(
        account.body.contains("An authenticator app is on"),
        "{}",
        account.body
    );

    // From then on the account owes its code like any other.
    let mut other = Browser::new(&app);
    let next = crate::mfa::oath_code(&secret, now + 30);
    let signed_in = sign_in_with(&mut other, &address, &next).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    assert!(other.session_cookie().is_some());
}

/// The browser session cookie is tagged under the JWT secret: a node restarted with a
/// new secret and the old one in `jwt.previous_secrets` still takes it (as it takes the
/// account tokens), one without the old secret refuses it, and a cookie the rotated node
/// gives out is tagged under the new secret alone.
async fn the_browser_cookie_lives_on_across_a_jwt_secret_rotation(b: Backend) {
    use gatehouse::domain::Secret;
    const NEW_SECRET: &str = "the-new-secret-0123456789-0123456789-0123456789";
    let before = TestApp::spawn(b).await;
    let address = email();
    let mut browser = Browser::new(&before);
    let signed_up = browser.sign_up(&address).await;
    assert_eq!(
        signed_up.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_up.body
    );
    let cookie = browser.session_cookie().cloned().unwrap();

    let url = before.app.settings.database_url();
    let without = TestApp::spawn_on(&url, |s| {
        s.jwt_secret = Some(Secret::new(NEW_SECRET.into()));
    })
    .await;
    let mut there = Browser::new(&without);
    there.cookies.insert("gatehouse-ui".into(), cookie.clone());
    let refused = there.get("/ui/account").await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER, "{}", refused.body);
    assert_eq!(refused.location(), "/ui/sign-in?return_to=%2Fui%2Faccount");

    let rotated = TestApp::spawn_on(&url, |s| {
        s.jwt_secret = Some(Secret::new(NEW_SECRET.into()));
        s.jwt.previous_secrets = vec![Secret::new(crate::helpers::JWT_SECRET.into())];
    })
    .await;
    let mut here = Browser::new(&rotated);
    here.cookies.insert("gatehouse-ui".into(), cookie);
    let account = here.get("/ui/account").await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    assert!(account.body.contains(&address), "{}", account.body);

    // What the rotated node tags now, the node that knows only the new secret takes.
    let mut fresh = Browser::new(&rotated);
    let signed_in = fresh.password_sign_in(&address).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    let mut there = Browser::new(&without);
    there.cookies.insert(
        "gatehouse-ui".into(),
        fresh.session_cookie().cloned().unwrap(),
    );
    let account = there.get("/ui/account").await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    assert!(account.body.contains(&address), "{}", account.body);
}

/// Over the per-address limit, a page's form gets a `429` page (HTML, in the browser's
/// language, `Retry-After`, the pages' headers) and changes nothing; an API route from
/// the same address keeps its JSON `429`.
async fn the_rate_limit_answers_a_pages_form_with_a_page(b: Backend) {
    let app = TestApp::spawn_with(b, |s| {
        s.rate_limit.enabled = true;
        s.rate_limit.per_address = 2;
        s.rate_limit.per_address_window_secs = 60;
    })
    .await;
    let mut browser = Browser::new(&app);
    browser.language = Some("de");
    let address = email();
    let wrong = browser
        .submit(
            "/ui/sign-in",
            "/ui/sign-in",
            &[("email", address.as_str()), ("password", "wrong-password")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    let again = browser
        .submit(
            "/ui/sign-in",
            "/ui/sign-in",
            &[("email", address.as_str()), ("password", "wrong-password")],
        )
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}", again.body);
    let late = email();
    let refused = browser
        .submit(
            "/ui/sign-up",
            "/ui/sign-up",
            &[("email", late.as_str()), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert_eq!(
        refused.headers["content-type"], "text/html; charset=utf-8",
        "{}",
        refused.body
    );
    let retry: i64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(refused.headers["x-frame-options"], "DENY");
    assert!(
        app.app
            .store
            .account_by_email(&late)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        refused.body.contains("<html lang=\"de\">")
            && refused
                .body
                .contains("Zu viele Versuche. Versuchen Sie es später noch einmal."),
        "{}",
        refused.body
    );
    let res = app
        .client
        .post(app.url("/auth/login"))
        .json(&serde_json::json!({"email": address, "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    let (_, body) = read(res).await;
    assert_eq!(
        body,
        serde_json::json!({"message": "Too many requests; try again later."})
    );
}

/// The sign-in page's Sign-In with Ethereum: the server gives the EIP-4361 message for
/// the wallet's address (its site and chain, a new nonce, the EIP-55 address), a real
/// secp256k1 `personal_sign` of it through the page's form starts the session cookie
/// (no token in the answer's body); a signature of another key is the page with its
/// error and no cookie; the nonce is single use.
async fn sign_in_with_ethereum_on_the_page_ends_in_the_session_cookie(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = crate::selfkey::TestWallet::random();
    let other = crate::selfkey::TestWallet::random();
    let mut browser = Browser::new(&app);
    let page = browser.get("/ui/sign-in").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("action=\"/ui/sign-in/siwe\" data-siwe")
            && page.body.contains("/ui/assets/siwe.js"),
        "{}",
        page.body
    );
    let csrf = csrf_of(&page.body, "/ui/sign-in/siwe");
    let asked = browser
        .post(
            "/ui/sign-in/siwe/message",
            &[("csrf", csrf.as_str()), ("address", &wallet.address())],
        )
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    assert_eq!(asked.headers["cache-control"], "no-store");
    let message = serde_json::from_str::<serde_json::Value>(&asked.body).unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    let eip55 = gatehouse::crypto::eth::Address::parse(&wallet.address())
        .unwrap()
        .to_eip55();
    assert!(
        message.starts_with(&format!(
            "localhost:8080 wants you to sign in with your Ethereum account:\n{eip55}\n\n"
        )) && message
            .contains("\nURI: http://localhost:8080/ui/sign-in\nVersion: 1\nChain ID: 1\nNonce: "),
        "{message}"
    );

    let forged = browser
        .post(
            "/ui/sign-in/siwe",
            &[
                ("csrf", csrf.as_str()),
                ("message", &message),
                ("signature", &other.sign(&message, false)),
                ("return_to", "/ui/account"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{}", forged.body);
    assert!(
        forged
            .body
            .contains("The wallet&#x27;s signature could not be used."),
        "{}",
        forged.body
    );
    assert!(
        forged
            .body
            .contains(r#"name="return_to" value="&#x2f;ui&#x2f;account""#),
        "the page again keeps where the sign-in was going: {}",
        forged.body
    );
    assert!(browser.session_cookie().is_none());

    let signed = browser
        .post(
            "/ui/sign-in/siwe",
            &[
                ("csrf", csrf.as_str()),
                ("message", &message),
                ("signature", &wallet.sign(&message, false)),
                ("return_to", "/ui/account"),
            ],
        )
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(signed.location(), "/ui/account");
    assert!(
        signed.body.is_empty(),
        "no token in the answer: {}",
        signed.body
    );
    assert!(browser.session_cookie().is_some(), "{:?}", browser.cookies);
    let account = browser.get("/ui/account").await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    assert!(
        account.body.to_lowercase().contains(&wallet.address()),
        "{}",
        account.body
    );

    // The nonce was used: the same signed message again is refused.
    let mut again = Browser::new(&app);
    let page = again.get("/ui/sign-in").await;
    let csrf = csrf_of(&page.body, "/ui/sign-in/siwe");
    let replay = again
        .post(
            "/ui/sign-in/siwe",
            &[
                ("csrf", csrf.as_str()),
                ("message", &message),
                ("signature", &wallet.sign(&message, false)),
            ],
        )
        .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED, "{}", replay.body);
    assert!(again.session_cookie().is_none());
}

/// The wallet's login token (steps 1-3 of LWS, played with a real secp256k1 key) for a
/// wallet signed up with `address`.
async fn selfkey_login_token(app: &TestApp, wallet: &crate::selfkey::TestWallet) -> String {
    let wallet_token = crate::selfkey::wallet_token(app, wallet).await;
    let (status, body) = crate::selfkey::login_token(app, &wallet_token, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

const SELFKEY_ERROR: &str = "The SelfKey wallet&#x27;s login could not be used.";

/// Login with SelfKey on the sign-in page: the button's form (and its script) is on the
/// page; the wallet's login token posted with the form's CSRF token starts the session
/// cookie and goes to `return_to` (no token in the answer). Refused, each as the page
/// with its message and no cookie, changing nothing: a post without the form's token
/// (the login token stays good), no token, a token that is no JWT, a wallet token in
/// its place, an expired one, and the used one again.
async fn login_with_selfkey_on_the_page_ends_in_the_session_cookie(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = crate::selfkey::TestWallet::random();
    let address = email();
    let wallet_token = crate::selfkey::signed_up(&app, &wallet, &address).await;
    let token = selfkey_login_token(&app, &wallet).await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/ui/sign-in").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains(
            "action=\"/ui/sign-in/selfkey\" data-selfkey data-lws-config=\"&#x2f;api&#x2f;v1&#x2f;selfkey/config\""
        ) && page.body.contains("<script src=\"/ui/assets/selfkey.js\" defer></script>"),
        "{}",
        page.body
    );
    let script = app
        .client
        .get(app.url("/ui/assets/selfkey.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(script.text().await.unwrap().contains("wp_init"));
    let csrf = csrf_of(&page.body, "/ui/sign-in/selfkey");

    let tokenless = browser
        .post("/ui/sign-in/selfkey", &[("token", token.as_str())])
        .await;
    assert_eq!(
        tokenless.status,
        StatusCode::FORBIDDEN,
        "{}",
        tokenless.body
    );
    assert!(
        tokenless.body.contains("class=\"error\""),
        "{}",
        tokenless.body
    );
    assert!(browser.session_cookie().is_none());

    let mut claims = crate::helpers::jwt_parts(&token).1;
    claims["exp"] = serde_json::json!(gatehouse::domain::unix_now() - 1);
    let expired = app
        .app
        .tokens
        .sign(gatehouse::crypto::jwt::TokenKind::Login, &claims);
    for (bad, status) in [
        ("", StatusCode::BAD_REQUEST),
        ("not-a-jwt", StatusCode::BAD_REQUEST),
        // Signed for another kind: it does not verify as a login token.
        (wallet_token.as_str(), StatusCode::UNAUTHORIZED),
        (expired.as_str(), StatusCode::UNAUTHORIZED),
    ] {
        let refused = browser
            .post(
                "/ui/sign-in/selfkey",
                &[
                    ("csrf", csrf.as_str()),
                    ("token", bad),
                    ("return_to", "/ui/account"),
                ],
            )
            .await;
        assert_eq!(refused.status, status, "{bad}: {}", refused.body);
        assert!(refused.body.contains(SELFKEY_ERROR), "{}", refused.body);
        assert!(
            refused
                .body
                .contains(r#"name="return_to" value="&#x2f;ui&#x2f;account""#),
            "the page again keeps where the sign-in was going: {}",
            refused.body
        );
        assert!(
            refused.body.contains("action=\"/ui/sign-in/selfkey\""),
            "the sign-in page again: {}",
            refused.body
        );
        assert!(browser.session_cookie().is_none(), "{:?}", browser.cookies);
    }

    let signed = browser
        .post(
            "/ui/sign-in/selfkey",
            &[
                ("csrf", csrf.as_str()),
                ("token", token.as_str()),
                ("return_to", "/ui/account"),
            ],
        )
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(signed.location(), "/ui/account");
    assert!(
        signed.body.is_empty(),
        "no token in the answer: {}",
        signed.body
    );
    assert!(browser.session_cookie().is_some(), "{:?}", browser.cookies);
    let account = browser.get("/ui/account").await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    assert!(
        account.body.to_lowercase().contains(&wallet.address()),
        "the wallet's account: {}",
        account.body
    );
    assert!(
        account.body.contains("Signed in with: selfkey"),
        "{}",
        account.body
    );

    // The token was used: another browser posting it again is refused.
    let mut again = Browser::new(&app);
    let page = again.get("/ui/sign-in").await;
    let csrf = csrf_of(&page.body, "/ui/sign-in/selfkey");
    let replay = again
        .post(
            "/ui/sign-in/selfkey",
            &[("csrf", csrf.as_str()), ("token", token.as_str())],
        )
        .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED, "{}", replay.body);
    assert!(replay.body.contains(SELFKEY_ERROR), "{}", replay.body);
    assert!(again.session_cookie().is_none());
}

/// A wallet whose account has an authenticator app: the page's SelfKey login is the
/// first factor only; the browser goes to the second-factor page with the pending
/// sign-in's cookie and no session, and the code finishes it.
async fn a_selfkey_login_on_the_page_owes_the_second_factor(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = crate::selfkey::TestWallet::random();
    let address = email();
    crate::selfkey::signed_up(&app, &wallet, &address).await;
    let (account_token, _) = crate::selfkey::sign_in(&app, &wallet).await;
    let (secret, _) = crate::mfa::enrolled(&app, &account_token).await;
    let token = selfkey_login_token(&app, &wallet).await;
    let mut browser = Browser::new(&app);
    let first = browser
        .submit(
            "/ui/sign-in",
            "/ui/sign-in/selfkey",
            &[("token", token.as_str()), ("return_to", "/ui/account")],
        )
        .await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    assert_eq!(
        first.location(),
        "/ui/second-factor?return_to=%2Fui%2Faccount"
    );
    assert!(browser.session_cookie().is_none(), "{:?}", browser.cookies);
    assert!(
        browser.cookies.contains_key("gatehouse-ui-mfa"),
        "{:?}",
        browser.cookies
    );
    let page = browser
        .get("/ui/second-factor?return_to=%2Fui%2Faccount")
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("autocomplete=\"one-time-code\""),
        "{}",
        page.body
    );

    let now = crate::mfa::clear_of_a_step_end().await;
    let code = crate::mfa::oath_code(&secret, now);
    let right = browser
        .fill(
            &page.body,
            "/ui/second-factor",
            &[("code", code.as_str()), ("return_to", "/ui/account")],
        )
        .await;
    assert_eq!(right.status, StatusCode::SEE_OTHER, "{}", right.body);
    assert_eq!(right.location(), "/ui/account");
    assert!(browser.session_cookie().is_some(), "{:?}", browser.cookies);
    let account = browser.get("/ui/account").await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    assert!(
        account.body.to_lowercase().contains(&wallet.address()),
        "the wallet's account: {}",
        account.body
    );
}

/// The sign-in page as most browsers get it is prepared once per language, but each
/// browser still gets its own form tokens (the ones its nonce verifies, and no other
/// browser's), its `return_to` escaped into every form, and its language.
async fn the_prepared_sign_in_page_is_each_browsers_own(b: Backend) {
    let app = TestApp::spawn(b).await;
    let pages = app.app.pages.as_ref().unwrap();
    let mut one = Browser::new(&app);
    let mut two = Browser::new(&app);
    two.language = Some("de");
    let first = one
        .get("/ui/sign-in?return_to=%2Fui%2Faccount%3Fa%3D1%26b%3D2")
        .await;
    let second = two.get("/ui/sign-in").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(first.headers["cache-control"], "no-store");
    assert!(first.body.contains("<html lang=\"en\">"), "{}", first.body);
    assert!(
        second.body.contains("<html lang=\"de\">"),
        "{}",
        second.body
    );
    let nonce_one = one.cookies["gatehouse-ui-nonce"].clone();
    let nonce_two = two.cookies["gatehouse-ui-nonce"].clone();
    assert_ne!(nonce_one, nonce_two);
    for (form, action) in [
        ("sign_in", "/ui/sign-in"),
        ("passkey", "/ui/passkey"),
        ("siwe", "/ui/sign-in/siwe"),
        ("selfkey", "/ui/sign-in/selfkey"),
    ] {
        let token = csrf_of(&first.body, action);
        assert!(pages.form_token_ok(form, &nonce_one, &token), "{form}");
        assert!(!pages.form_token_ok(form, &nonce_two, &token), "{form}");
        assert!(pages.form_token_ok(form, &nonce_two, &csrf_of(&second.body, action)));
    }
    assert_eq!(
        first
            .body
            .matches("name=\"return_to\" value=\"&#x2f;ui&#x2f;account?a=1&amp;b=2\"")
            .count(),
        4,
        "{}",
        first.body
    );
    assert!(
        first
            .body
            .contains("href=\"/ui/sign-up?return_to=%2Fui%2Faccount%3Fa%3D1%26b%3D2\""),
        "{}",
        first.body
    );
    assert_eq!(
        second.body.matches("name=\"return_to\" value=\"\"").count(),
        4
    );
}
