//! The OpenID Connect authorization endpoint through the real pages, as a browser
//! without JavaScript drives it: `/oauth/authorize`, the sign-in form, the second
//! factor, consent, the code's exchange, the redirect URI tricks of the peers' CVEs,
//! `prompt`, `max_age`, `form_post`, consents revoked from the account page, and
//! RP-initiated logout. On every backend.

use std::collections::HashMap;

use gatehouse::oidc::{Client, Registration};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, email, read};
use crate::oidc::{
    ISSUER, VERIFIER, basic, challenge, exchange, post_form, register, verify_with_jwks, web_client,
};
use crate::ui::{Browser, Page};

crate::on_every_backend!(
    the_code_flow_goes_through_the_sign_in_form_and_consent_to_tokens_that_verify,
    redirect_uri_tricks_are_error_pages_that_never_redirect,
    request_errors_go_back_to_the_client_with_state_and_iss,
    prompt_none_answers_login_required_and_consent_required,
    prompt_login_and_max_age_ask_for_a_fresh_sign_in,
    form_post_answers_with_a_page_that_posts_to_the_client,
    a_disabled_account_gets_no_code,
    an_account_with_a_second_factor_gives_it_before_the_code,
    a_consent_revoked_on_the_account_page_ends_the_clients_tokens,
    consents_are_listed_and_revoked_over_the_api,
    logout_with_an_id_token_hint_ends_the_sessions_and_returns_to_the_client,
    logout_without_a_hint_asks_first_and_never_redirects_elsewhere,
);

const PASSWORD: &str = "password-123";
const CALLBACK: &str = "https://wiki.example/cb";

async fn spawn(b: Backend) -> TestApp {
    TestApp::spawn_with(b, |s| {
        s.oidc.enabled = true;
        s.http.public_url = Some(ISSUER.into());
    })
    .await
}

/// A confidential client (`first_party` as asked) and its Basic authorization.
async fn wiki(app: &TestApp, first_party: bool) -> (Client, String) {
    let (client, secret) = register(
        app,
        Registration {
            first_party,
            post_logout_redirect_uris: vec!["https://wiki.example/bye".into()],
            ..web_client()
        },
    )
    .await;
    let auth = basic(&client.id, &secret.unwrap());
    (client, auth)
}

/// An account with a password: its address and id.
async fn person(app: &TestApp) -> (String, String) {
    let address = email();
    let (status, body) = app.register(&address, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap();
    let id = crate::helpers::jwt_parts(token).1["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    (address, id)
}

/// `/oauth/authorize?…` for `client`: the code flow with PKCE, `extra` replacing or
/// adding parameters (an empty value leaves one out).
fn authorize(client: &str, extra: &[(&str, &str)]) -> String {
    let pkce = challenge(VERIFIER);
    let mut params: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", CALLBACK),
        ("scope", "openid email offline_access"),
        ("state", "st-1 &x"),
        ("nonce", "n-1"),
        ("code_challenge", &pkce),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        params.retain(|(p, _)| p != k);
        if !v.is_empty() {
            params.push((k, v));
        }
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("/oauth/authorize?{query}")
}

/// The query of a URL or path, decoded.
fn query_of(location: &str) -> HashMap<String, String> {
    let query = location.split_once('?').map_or("", |(_, q)| q);
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// Asserts `page` sends the browser to the client's callback; the callback's query.
fn at_callback(page: &Page) -> HashMap<String, String> {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let location = page.location();
    assert!(location.starts_with(&format!("{CALLBACK}?")), "{location}");
    let q = query_of(location);
    assert_eq!(q["iss"], ISSUER, "RFC 9207: {location}");
    assert_eq!(q["state"], "st-1 &x", "{location}");
    q
}

/// Asserts `page` sends the browser to the sign-in page; the `return_to` it carries.
fn at_sign_in(page: &Page) -> String {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let location = page.location();
    assert!(location.starts_with("/ui/sign-in?"), "{location}");
    let return_to = query_of(location)["return_to"].clone();
    assert!(
        return_to.starts_with("/oauth/authorize/resume?request="),
        "{location}"
    );
    return_to
}

/// Signs in with the form at `page` (the sign-in redirect), back to `/authorize`.
async fn sign_in_there(browser: &mut Browser<'_>, sign_in: &Page, address: &str) -> Page {
    let return_to = at_sign_in(sign_in);
    let form = browser.get(sign_in.location()).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let done = browser
        .fill(
            &form.body,
            "/ui/sign-in",
            &[
                ("email", address),
                ("password", PASSWORD),
                ("return_to", &return_to),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), return_to);
    done
}

/// The value of the hidden input `name` of a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name}: {html}"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

async fn allow(browser: &mut Browser<'_>, consent: &Page) -> Page {
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    let request = hidden(&consent.body, "request");
    browser
        .fill(
            &consent.body,
            "/oauth/authorize/consent",
            &[("request", &request), ("decision", "allow")],
        )
        .await
}

/// A browser signed in with the form (no `/authorize` in between).
async fn signed_in<'a>(app: &'a TestApp, address: &str) -> Browser<'a> {
    let mut browser = Browser::new(app);
    let done = browser
        .submit(
            "/ui/sign-in",
            "/ui/sign-in",
            &[("email", address), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert!(browser.session_cookie().is_some());
    browser
}

async fn the_code_flow_goes_through_the_sign_in_form_and_consent_to_tokens_that_verify(b: Backend) {
    let app = spawn(b).await;
    let (client, auth) = wiki(&app, false).await;
    let (address, account) = person(&app).await;
    let mut browser = Browser::new(&app);

    let (status, discovery) = read(app.get("/.well-known/openid-configuration", None).await).await;
    assert_eq!(status, StatusCode::OK, "{discovery}");
    assert_eq!(
        discovery["authorization_response_iss_parameter_supported"],
        true
    );
    assert_eq!(
        discovery["response_modes_supported"],
        json!(["query", "form_post"])
    );
    assert_eq!(
        discovery["prompt_values_supported"],
        json!(["none", "login", "consent"])
    );
    assert_eq!(
        discovery["end_session_endpoint"],
        format!("{ISSUER}/oauth/logout")
    );

    // Not signed in: to the sign-in page, the hint in its email field, in German.
    let start = browser
        .get(&authorize(
            &client.id,
            &[("login_hint", &address), ("ui_locales", "de-CH en")],
        ))
        .await;
    let return_to = at_sign_in(&start);
    assert!(browser.session_cookie().is_none());
    let form = browser.get(start.location()).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert!(form.body.contains("<html lang=\"de\">"), "{}", form.body);
    // The form's answer ends at the client (the resume, then its redirect URI), and
    // browsers hold a form's redirects to the page's form-action: the client's origin
    // is allowed on the sign-in page that works for it, prepared or rendered, and kept
    // on the page a wrong password answers; a page for no pending request allows none.
    let with_client = "form-action 'self' https://wiki.example ";
    let csp = |page: &Page| {
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert!(csp(&form).contains(with_client), "{}", csp(&form));
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", &return_to)
        .finish();
    let prepared = browser.get(&format!("/ui/sign-in?{query}")).await;
    assert_eq!(prepared.status, StatusCode::OK, "{}", prepared.body);
    assert!(csp(&prepared).contains(with_client), "{}", csp(&prepared));
    let wrong = browser
        .fill(
            &form.body,
            "/ui/sign-in",
            &[
                ("email", &address),
                ("password", "not the password"),
                ("return_to", &return_to),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    assert!(csp(&wrong).contains(with_client), "{}", csp(&wrong));
    let unknown = browser
        .get("/ui/sign-in?return_to=%2Foauth%2Fauthorize%2Fresume%3Frequest%3D00000000000000000000000000000000")
        .await;
    assert_eq!(unknown.status, StatusCode::OK, "{}", unknown.body);
    assert!(!csp(&unknown).contains("wiki.example"), "{}", csp(&unknown));
    assert!(
        form.body.contains(&format!("value=\"{address}\"")),
        "{}",
        form.body
    );
    let back = browser
        .fill(
            &form.body,
            "/ui/sign-in",
            &[
                ("email", &address),
                ("password", PASSWORD),
                ("return_to", &return_to),
            ],
        )
        .await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert_eq!(back.location(), return_to);

    // Back at /authorize: the consent page names the client and the scopes.
    let consent = browser.get(&return_to).await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    for text in [
        "<strong>Wiki</strong>",
        "See your email address",
        "Keep access while you are away",
        "value=\"allow\"",
        "value=\"deny\"",
    ] {
        assert!(consent.body.contains(text), "{text}: {}", consent.body);
    }
    // Allow's answer redirects to the client, and browsers hold a form's redirects to
    // the page's form-action: the client's origin is allowed beside the site's own.
    let csp = consent.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains(&format!(
            "form-action 'self' https://wiki.example {ISSUER}; "
        )),
        "{csp}"
    );
    // The request was taken: resuming it again finds nothing, and never redirects.
    let replay = browser.get(&return_to).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST, "{}", replay.body);
    assert!(
        replay.body.contains("expired or was used already"),
        "{}",
        replay.body
    );
    assert!(replay.headers.get("location").is_none());

    let answer = allow(&mut browser, &consent).await;
    let q = at_callback(&answer);
    let (status, tokens) = exchange(&app, &auth, &q["code"], CALLBACK, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(
        tokens["refresh_token"].is_string(),
        "offline_access: {tokens}"
    );
    assert_eq!(tokens["scope"], "openid email offline_access");
    let id = verify_with_jwks(&app, tokens["id_token"].as_str().unwrap(), &client.id).await;
    assert_eq!(id["sub"], account.as_str());
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["email"], address.as_str());
    assert_eq!(id["amr"], json!(["pwd"]));
    assert_eq!(id["acr"], "aal1");

    // Consent remembered: the same or fewer scopes go straight back with a code.
    let again = browser
        .get(&authorize(&client.id, &[("scope", "openid")]))
        .await;
    let q = at_callback(&again);
    let (status, tokens) = exchange(&app, &auth, &q["code"], CALLBACK, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(
        tokens.get("refresh_token").is_none(),
        "no offline_access: {tokens}"
    );
    // More scopes ask again; prompt=consent always asks.
    for extra in [("scope", "openid email profile"), ("prompt", "consent")] {
        let more = browser.get(&authorize(&client.id, &[extra])).await;
        assert_eq!(more.status, StatusCode::OK, "{extra:?}: {}", more.body);
        assert!(
            more.body.contains("action=\"/oauth/authorize/consent\""),
            "{}",
            more.body
        );
    }
    // Deny: access_denied to the client.
    let asked = browser
        .get(&authorize(&client.id, &[("scope", "openid profile")]))
        .await;
    let request = hidden(&asked.body, "request");
    let denied = browser
        .fill(
            &asked.body,
            "/oauth/authorize/consent",
            &[("request", &request), ("decision", "deny")],
        )
        .await;
    assert_eq!(at_callback(&denied)["error"], "access_denied");
    // A consent form from another site is refused, and consumes nothing.
    let asked = browser
        .get(&authorize(&client.id, &[("scope", "openid profile")]))
        .await;
    let request = hidden(&asked.body, "request");
    let forged = browser
        .post(
            "/oauth/authorize/consent",
            &[("request", &request), ("decision", "allow"), ("csrf", "x")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    assert!(forged.headers.get("location").is_none());
    let answer = allow(&mut browser, &asked).await;
    assert!(at_callback(&answer).contains_key("code"));
}

async fn redirect_uri_tricks_are_error_pages_that_never_redirect(b: Backend) {
    let app = spawn(b).await;
    let (client, _) = register(
        &app,
        Registration {
            redirect_uris: vec![CALLBACK.into(), "http://127.0.0.1:8080/cb".into()],
            ..web_client()
        },
    )
    .await;
    let mut browser = Browser::new(&app);
    for trick in [
        // Keycloak #47718, #49109: doubled and trailing slashes, a path suffix.
        "https://wiki.example//cb",
        "https://wiki.example/cb/",
        "https://wiki.example/cb/evil",
        "https://wiki.example/cbx",
        // fosite CVE-2020-15233: case folding.
        "https://WIKI.example/cb",
        "https://wiki.example/CB",
        "HTTPS://wiki.example/cb",
        // Keycloak CVE-2024-8883: user-info and lookalike hosts.
        "https://wiki.example@evil.example/cb",
        "https://wiki.example:443@evil.example/cb",
        "https://wiki.example.evil.example/cb",
        "http://127.0.0.1:8080@evil.example/cb",
        "http://localhost:8080/cb",
        // Another port (only loopback http may change it), a query, a fragment.
        "https://wiki.example:8443/cb",
        "https://wiki.example/cb?next=https://evil.example",
        "https://wiki.example/cb#frag",
        // Keycloak #48430, #50347: encoded characters and dot segments.
        "https://wiki.example/%63b",
        "https://wiki.example/cb%2F..%2Fevil",
        "https://wiki.example/x/../cb",
        "https://wiki.example\\cb",
        "http://127.0.0.1:8080/cb/..%2Fevil",
        "https://evil.example/cb",
    ] {
        let page = browser
            .get(&authorize(&client.id, &[("redirect_uri", trick)]))
            .await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{trick}: {}",
            page.body
        );
        assert!(page.headers.get("location").is_none(), "{trick}");
        assert!(
            page.body.contains("an address it has not registered"),
            "{trick}: {}",
            page.body
        );
    }
    // Unknown, missing or doubled client_id: a page too.
    for path in [
        authorize("no-such-client", &[]),
        authorize("", &[]),
        format!("{}&client_id={}", authorize(&client.id, &[]), client.id),
        format!(
            "{}&redirect_uri=https%3A%2F%2Fevil.example%2F",
            authorize(&client.id, &[])
        ),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            page.body
        );
        assert!(page.headers.get("location").is_none(), "{path}");
        assert!(
            page.body.contains("class=\"error\""),
            "{path}: {}",
            page.body
        );
    }
    // The loopback URI on another port is the registered one (RFC 8252 §7.3).
    let loopback = browser
        .get(&authorize(
            &client.id,
            &[("redirect_uri", "http://127.0.0.1:53121/cb")],
        ))
        .await;
    at_sign_in(&loopback);
}

async fn request_errors_go_back_to_the_client_with_state_and_iss(b: Backend) {
    let app = spawn(b).await;
    let (confidential, _) = wiki(&app, true).await;
    let (public, _) = register(
        &app,
        Registration {
            public: true,
            ..web_client()
        },
    )
    .await;
    let mut browser = Browser::new(&app);
    for (client, extra, error) in [
        (
            &public.id,
            vec![("code_challenge", ""), ("code_challenge_method", "")],
            "invalid_request",
        ),
        (
            &confidential.id,
            vec![("code_challenge", ""), ("code_challenge_method", "")],
            "invalid_request",
        ),
        (
            &public.id,
            vec![("code_challenge_method", "plain")],
            "invalid_request",
        ),
        (
            &public.id,
            vec![("code_challenge", "too-short")],
            "invalid_request",
        ),
        (
            &public.id,
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (
            &public.id,
            vec![("response_type", "code id_token")],
            "unsupported_response_type",
        ),
        (
            &public.id,
            vec![("prompt", "none login")],
            "invalid_request",
        ),
        (
            &public.id,
            vec![("request", "eyJhbGciOiJub25lIn0.e30.")],
            "request_not_supported",
        ),
    ] {
        let page = browser.get(&authorize(client, &extra)).await;
        let q = at_callback(&page);
        assert_eq!(q["error"], error, "{extra:?}");
        assert!(!q["error_description"].is_empty());
        assert!(!q.contains_key("code"));
    }
    // By POST, as a form: the same.
    let path = authorize(&public.id, &[("code_challenge_method", "plain")]);
    let form: Vec<(String, String)> = query_of(&path).into_iter().collect();
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let page = browser.post("/oauth/authorize", &fields).await;
    assert_eq!(at_callback(&page)["error"], "invalid_request");
}

async fn prompt_none_answers_login_required_and_consent_required(b: Backend) {
    let app = spawn(b).await;
    let (client, auth) = wiki(&app, false).await;
    let (address, _) = person(&app).await;
    let mut browser = Browser::new(&app);
    let none = browser
        .get(&authorize(&client.id, &[("prompt", "none")]))
        .await;
    assert_eq!(at_callback(&none)["error"], "login_required");

    let mut browser = signed_in(&app, &address).await;
    let none = browser
        .get(&authorize(&client.id, &[("prompt", "none")]))
        .await;
    assert_eq!(at_callback(&none)["error"], "consent_required");

    let consent = browser.get(&authorize(&client.id, &[])).await;
    at_callback(&allow(&mut browser, &consent).await);
    let none = browser
        .get(&authorize(&client.id, &[("prompt", "none")]))
        .await;
    let q = at_callback(&none);
    let (status, tokens) = exchange(&app, &auth, &q["code"], CALLBACK, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    // A second factor asked for that the session lacks: interaction_required.
    let none = browser
        .get(&authorize(
            &client.id,
            &[("prompt", "none"), ("acr_values", "aal2")],
        ))
        .await;
    assert_eq!(at_callback(&none)["error"], "interaction_required");
}

async fn prompt_login_and_max_age_ask_for_a_fresh_sign_in(b: Backend) {
    let app = spawn(b).await;
    let (client, auth) = wiki(&app, true).await;
    let (address, _) = person(&app).await;
    let mut browser = signed_in(&app, &address).await;
    // First party, signed in: the code at once, no page.
    let direct = browser.get(&authorize(&client.id, &[])).await;
    at_callback(&direct);

    let old_cookie = browser.session_cookie().cloned();
    let start = gatehouse::domain::unix_now();
    let login = browser
        .get(&authorize(&client.id, &[("prompt", "login")]))
        .await;
    at_sign_in(&login);
    assert!(
        login.location().contains("prompt=login"),
        "{}",
        login.location()
    );
    // The sign-in page shows its form though a session exists (no loop back).
    let back = sign_in_there(&mut browser, &login, &address).await;
    assert_ne!(browser.session_cookie().cloned(), old_cookie);
    let q = at_callback(&browser.get(back.location()).await);
    let (status, tokens) = exchange(&app, &auth, &q["code"], CALLBACK, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let id = verify_with_jwks(&app, tokens["id_token"].as_str().unwrap(), &client.id).await;
    assert!(id["auth_time"].as_i64().unwrap() >= start, "{id}");

    // max_age: a sign-in older than it is done again; a younger one is not.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let young = browser
        .get(&authorize(&client.id, &[("max_age", "600")]))
        .await;
    at_callback(&young);
    let aged = browser
        .get(&authorize(&client.id, &[("max_age", "1")]))
        .await;
    let back = sign_in_there(&mut browser, &aged, &address).await;
    let q = at_callback(&browser.get(back.location()).await);
    assert!(q.contains_key("code"), "{q:?}");
}

async fn form_post_answers_with_a_page_that_posts_to_the_client(b: Backend) {
    let app = spawn(b).await;
    let (client, auth) = wiki(&app, true).await;
    let (address, _) = person(&app).await;
    let mut browser = signed_in(&app, &address).await;
    let page = browser
        .get(&authorize(&client.id, &[("response_mode", "form_post")]))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.headers.get("location").is_none());
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("form-action https://wiki.example;"), "{csp}");
    assert!(!csp.contains("'unsafe-inline'"), "{csp}");
    for text in [
        "method=\"post\" action=\"https:&#x2f;&#x2f;wiki.example&#x2f;cb\"",
        "name=\"state\" value=\"st-1 &amp;x\"",
        "name=\"iss\" value=\"https:&#x2f;&#x2f;id.example.test\"",
        "<button type=\"submit\">",
        "src=\"/ui/assets/form_post.js\"",
    ] {
        assert!(page.body.contains(text), "{text}: {}", page.body);
    }
    let code = hidden(&page.body, "code");
    let (status, tokens) = exchange(&app, &auth, &code, CALLBACK, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    // An error goes the same way.
    let page = browser
        .get(&authorize(
            &client.id,
            &[("response_mode", "form_post"), ("response_type", "token")],
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("name=\"error\" value=\"unsupported_response_type\""),
        "{}",
        page.body
    );
}

async fn a_disabled_account_gets_no_code(b: Backend) {
    let app = spawn(b).await;
    let (client, _) = wiki(&app, true).await;
    let (address, account) = person(&app).await;
    let mut browser = signed_in(&app, &address).await;
    at_callback(&browser.get(&authorize(&client.id, &[])).await);
    let run = crate::admin::cli(&app, &["users", "disable", &account, "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    let none = browser
        .get(&authorize(&client.id, &[("prompt", "none")]))
        .await;
    assert_eq!(at_callback(&none)["error"], "login_required");
    let start = browser.get(&authorize(&client.id, &[])).await;
    let return_to = at_sign_in(&start);
    let form = browser.get(start.location()).await;
    let refused = browser
        .fill(
            &form.body,
            "/ui/sign-in",
            &[
                ("email", &address),
                ("password", PASSWORD),
                ("return_to", &return_to),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("disabled"), "{}", refused.body);
    assert!(refused.headers.get("location").is_none());
}

async fn an_account_with_a_second_factor_gives_it_before_the_code(b: Backend) {
    let app = spawn(b).await;
    let (client, auth) = wiki(&app, true).await;
    let (address, secret) = crate::mfa::enrolled_account(&app).await;
    let mut browser = Browser::new(&app);
    let start = browser.get(&authorize(&client.id, &[])).await;
    let return_to = at_sign_in(&start);
    let form = browser.get(start.location()).await;
    let first = browser
        .fill(
            &form.body,
            "/ui/sign-in",
            &[
                ("email", &address),
                ("password", crate::mfa::PASSWORD),
                ("return_to", &return_to),
            ],
        )
        .await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    assert!(
        first.location().starts_with("/ui/second-factor?return_to="),
        "{}",
        first.location()
    );
    assert!(browser.session_cookie().is_none());
    // Before the second factor, /authorize still sends to the sign-in page.
    at_sign_in(&browser.get(&authorize(&client.id, &[])).await);

    let now = crate::mfa::clear_of_a_step_end().await;
    let page = browser.get(first.location()).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let code = crate::mfa::oath_code(&secret, now);
    let second = browser
        .fill(
            &page.body,
            "/ui/second-factor",
            &[("code", &code), ("return_to", &return_to)],
        )
        .await;
    assert_eq!(second.status, StatusCode::SEE_OTHER, "{}", second.body);
    assert_eq!(second.location(), return_to);
    let q = at_callback(&browser.get(&return_to).await);
    let (status, tokens) = exchange(&app, &auth, &q["code"], CALLBACK, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let id = verify_with_jwks(&app, tokens["id_token"].as_str().unwrap(), &client.id).await;
    assert_eq!(id["acr"], "aal2", "{id}");
    assert!(
        id["amr"].as_array().unwrap().contains(&json!("mfa")),
        "{id}"
    );
}

/// A browser signed in that consented to `client` and the client's tokens (with a
/// refresh token).
async fn consented<'a>(
    app: &'a TestApp,
    client: &Client,
    auth: &str,
    address: &str,
) -> (Browser<'a>, serde_json::Value) {
    let mut browser = signed_in(app, address).await;
    let consent = browser.get(&authorize(&client.id, &[])).await;
    let q = at_callback(&allow(&mut browser, &consent).await);
    let (status, tokens) = exchange(app, auth, &q["code"], CALLBACK, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    (browser, tokens)
}

async fn refreshed(
    app: &TestApp,
    auth: &str,
    tokens: &serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    post_form(
        app,
        "/oauth/token",
        Some(auth),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await
}

async fn a_consent_revoked_on_the_account_page_ends_the_clients_tokens(b: Backend) {
    let app = spawn(b).await;
    let (client, auth) = wiki(&app, false).await;
    let (address, _) = person(&app).await;
    let (mut browser, tokens) = consented(&app, &client, &auth, &address).await;

    let account = browser.get("/ui/account").await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    for text in [
        "Connected apps",
        "<strong>Wiki</strong>",
        "See your email address",
        "Revoke access",
    ] {
        assert!(account.body.contains(text), "{text}: {}", account.body);
    }
    let revoked = browser
        .fill(
            &account.body,
            "/ui/account/apps/revoke",
            &[("client", &client.id)],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    assert_eq!(revoked.location(), "/ui/account?done=app-revoked");
    let account = browser.get(revoked.location()).await;
    assert!(
        account.body.contains("access is revoked"),
        "{}",
        account.body
    );
    assert!(
        account.body.contains("No app has access"),
        "{}",
        account.body
    );
    // The browser's own session lives on; the client's tokens are refused.
    assert!(browser.session_cookie().is_some());
    let (status, body) = refreshed(&app, &auth, &tokens).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    let (status, body) = post_form(
        &app,
        "/oauth/introspect",
        Some(&auth),
        &[("token", tokens["access_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(
        (status, &body["active"]),
        (StatusCode::OK, &json!(false)),
        "{body}"
    );
    // The next authorization asks again.
    let again = browser.get(&authorize(&client.id, &[])).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert!(
        again.body.contains("action=\"/oauth/authorize/consent\""),
        "{}",
        again.body
    );
}

async fn consents_are_listed_and_revoked_over_the_api(b: Backend) {
    let app = spawn(b).await;
    let (client, auth) = wiki(&app, false).await;
    let (address, _) = person(&app).await;
    let (_, tokens) = consented(&app, &client, &auth, &address).await;
    let (status, body) = app.login(&address, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bearer = body["token"].as_str().unwrap().to_owned();
    let (status, list) = read(app.get("/auth/oidc/consents", Some(&bearer)).await).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["consents"][0]["client_id"], client.id.as_str());
    assert_eq!(list["consents"][0]["client_name"], "Wiki");
    assert_eq!(
        list["consents"][0]["scopes"],
        json!(["openid", "email", "offline_access"])
    );
    let delete = |path: String| {
        app.client
            .delete(app.url(&path))
            .bearer_auth(&bearer)
            .send()
    };
    let res = delete(format!("/auth/oidc/consents/{}", client.id))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (status, body) = refreshed(&app, &auth, &tokens).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_grant")),
        "{body}"
    );
    let (status, body) = read(
        delete(format!("/auth/oidc/consents/{}", client.id))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["message"], "No consent to this client.");
    let (status, list) = read(app.get("/auth/oidc/consents", Some(&bearer)).await).await;
    assert_eq!((status, list), (StatusCode::OK, json!({"consents": []})));
}

async fn logout_with_an_id_token_hint_ends_the_sessions_and_returns_to_the_client(b: Backend) {
    let app = spawn(b).await;
    let (client, auth) = wiki(&app, false).await;
    let (address, _) = person(&app).await;
    let (mut browser, tokens) = consented(&app, &client, &auth, &address).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", hint)
        .append_pair("post_logout_redirect_uri", "https://wiki.example/bye")
        .append_pair("state", "bye 1")
        .finish();
    let out = browser.get(&format!("/oauth/logout?{query}")).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    assert_eq!(out.location(), "https://wiki.example/bye?state=bye+1");
    assert!(browser.session_cookie().is_none(), "the cookie is cleared");
    // The browser's session and the ID token's (sid) both ended.
    let account = browser.get("/ui/account").await;
    assert_eq!(account.status, StatusCode::SEE_OTHER, "{}", account.body);
    let (status, body) = refreshed(&app, &auth, &tokens).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_grant")),
        "{body}"
    );

    // Without post_logout_redirect_uri: the signed-out page.
    let mut browser = signed_in(&app, &address).await;
    let out = browser
        .get(&format!("/oauth/logout?id_token_hint={hint}"))
        .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert!(out.body.contains("You are signed out."), "{}", out.body);
    assert!(browser.session_cookie().is_none());
    // A token that is not one of our ID tokens: an error page.
    let out = browser
        .get("/oauth/logout?id_token_hint=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
        .await;
    assert_eq!(out.status, StatusCode::BAD_REQUEST, "{}", out.body);
    assert!(out.headers.get("location").is_none());
    assert!(
        out.body.contains("sign-out request is not valid"),
        "{}",
        out.body
    );
}

async fn logout_without_a_hint_asks_first_and_never_redirects_elsewhere(b: Backend) {
    let app = spawn(b).await;
    let (client, auth) = wiki(&app, false).await;
    let (address, _) = person(&app).await;
    let (mut browser, tokens) = consented(&app, &client, &auth, &address).await;
    let hint = tokens["id_token"].as_str().unwrap();
    for uri in [
        "https://evil.example/bye",
        "https://wiki.example/bye/",
        "https://wiki.example/BYE",
        "https://wiki.example/bye?x=1",
        "https://wiki.example@evil.example/bye",
        "https://wiki.example/cb",
    ] {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("id_token_hint", hint)
            .append_pair("post_logout_redirect_uri", uri)
            .finish();
        let out = browser.get(&format!("/oauth/logout?{query}")).await;
        assert_eq!(out.status, StatusCode::BAD_REQUEST, "{uri}: {}", out.body);
        assert!(out.headers.get("location").is_none(), "{uri}");
        assert!(
            out.body.contains("has not registered"),
            "{uri}: {}",
            out.body
        );
    }
    assert!(browser.session_cookie().is_some(), "nothing ended");

    // A link without a hint: a page asks, and nothing ends until its button.
    let query = format!(
        "client_id={}&post_logout_redirect_uri=https%3A%2F%2Fwiki.example%2Fbye&state=s2",
        client.id
    );
    let ask = browser.get(&format!("/oauth/logout?{query}")).await;
    assert_eq!(ask.status, StatusCode::OK, "{}", ask.body);
    assert!(
        ask.body.contains("An app asks to sign you out."),
        "{}",
        ask.body
    );
    assert!(ask.headers.get("location").is_none());
    let account = browser.get("/ui/account").await;
    assert_eq!(
        account.status,
        StatusCode::OK,
        "still signed in: {}",
        account.body
    );
    // The confirmation from another site is refused.
    let forged = browser
        .post("/oauth/logout", &[("confirm", "yes"), ("csrf", "x")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    let out = browser
        .fill(
            &ask.body,
            "/oauth/logout",
            &[
                ("confirm", "yes"),
                ("client_id", &client.id),
                ("post_logout_redirect_uri", "https://wiki.example/bye"),
                ("state", "s2"),
            ],
        )
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    assert_eq!(out.location(), "https://wiki.example/bye?state=s2");
    assert!(browser.session_cookie().is_none());
    let account = browser.get("/ui/account").await;
    assert_eq!(account.status, StatusCode::SEE_OTHER, "{}", account.body);
}
