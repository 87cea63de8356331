//! Browser mode (`session.cookie = true`): the refresh token also travels as an
//! HttpOnly cookie; `/auth/refresh` takes it only with the CSRF defence (an allowed
//! `Origin` and the `X-Gatehouse-CSRF` header); logout clears it; a refused refresh
//! never clears it (the loser of a race must not sign the winner's tab out).

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, email, jwt_parts, read};

crate::on_every_backend!(
    sign_ins_set_an_httponly_strict_cookie_scoped_to_auth_on_http,
    on_https_the_cookie_is_host_prefixed_and_secure,
    without_cookie_mode_no_cookie_is_set,
    a_refresh_by_cookie_needs_an_allowed_origin_and_the_csrf_header,
    a_cookie_refresh_without_the_cookie_is_refused_naming_it,
    a_page_on_a_listed_origin_may_send_the_csrf_header,
    a_refresh_token_in_the_body_needs_no_csrf_defence_and_wins_over_the_cookie,
    logout_clears_the_cookie_and_the_cleared_session_refreshes_no_more,
    concurrent_cookie_refreshes_all_get_the_current_cookie,
    a_refused_refresh_never_clears_the_cookie,
);

const PUBLIC: &str = "https://auth.example";
const PAGE: &str = "https://app.example";
const HTTPS_NAME: &str = "__Host-gatehouse-refresh";
const HTTP_NAME: &str = "gatehouse-refresh";
const CSRF_REFUSED: &str =
    "A refresh by cookie needs an allowed Origin and the X-Gatehouse-CSRF header.";
const REFUSED: &str = "The refresh token is invalid, expired or revoked.";

/// Cookie mode behind https (`http.public_url`), one other page origin allowed.
async fn https_app(b: Backend) -> TestApp {
    TestApp::spawn_with(b, |s| {
        s.session.cookie = true;
        s.http.public_url = Some(PUBLIC.into());
        s.http.cors_origins = vec![PAGE.into()];
    })
    .await
}

fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The one `Set-Cookie` of the refresh cookie `name` in a response.
fn refresh_set_cookie(res: &reqwest::Response, name: &str) -> String {
    let prefix = format!("{name}=");
    let cookies: Vec<String> = set_cookies(res)
        .into_iter()
        .filter(|c| c.starts_with(&prefix))
        .collect();
    assert_eq!(cookies.len(), 1, "{:?}", set_cookies(res));
    cookies.into_iter().next().unwrap()
}

/// The cookie's value and its attributes, sorted.
fn parse_cookie(set_cookie: &str) -> (String, Vec<String>) {
    let mut parts = set_cookie.split(';').map(str::trim);
    let value = parts.next().unwrap().split_once('=').unwrap().1.to_owned();
    let mut attributes: Vec<String> = parts.map(str::to_owned).collect();
    attributes.sort();
    (value, attributes)
}

async fn register(app: &TestApp) -> (reqwest::Response, String) {
    let address = email();
    let res = app
        .client
        .post(app.url("/auth/register"))
        .json(&json!({"email": address, "password": "password123"}))
        .send()
        .await
        .unwrap();
    (res, address)
}

/// Signs up; the body and the refresh cookie's value.
async fn signed_up(app: &TestApp, name: &str) -> (Value, String) {
    let (res, _) = register(app).await;
    let (value, _) = parse_cookie(&refresh_set_cookie(&res, name));
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (body, value)
}

/// `POST /auth/refresh` with no body, the cookie, and the given headers.
async fn refresh_by_cookie(
    app: &TestApp,
    cookie: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/auth/refresh"))
        .header("cookie", cookie);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

fn sid(body: &Value) -> String {
    jwt_parts(body["token"].as_str().unwrap()).1["sid"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn sign_ins_set_an_httponly_strict_cookie_scoped_to_auth_on_http(b: Backend) {
    let app = TestApp::spawn_with(b, |s| s.session.cookie = true).await;
    let (res, address) = register(&app).await;
    let (value, attributes) = parse_cookie(&refresh_set_cookie(&res, HTTP_NAME));
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        value,
        body["refresh_token"].as_str().unwrap(),
        "the body's token"
    );
    assert_eq!(
        attributes,
        [
            "HttpOnly",
            "Max-Age=2592000",
            "Path=/auth",
            "SameSite=Strict"
        ],
        "no Secure on plain http, scoped to the /auth routes"
    );
    let res = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({"email": address, "password": "password123"}))
        .send()
        .await
        .unwrap();
    let (value, attributes) = parse_cookie(&refresh_set_cookie(&res, HTTP_NAME));
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(value, body["refresh_token"].as_str().unwrap());
    assert!(
        attributes.contains(&"HttpOnly".to_owned()),
        "{attributes:?}"
    );
}

async fn on_https_the_cookie_is_host_prefixed_and_secure(b: Backend) {
    let app = https_app(b).await;
    let (res, _) = register(&app).await;
    let (value, attributes) = parse_cookie(&refresh_set_cookie(&res, HTTPS_NAME));
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(value, body["refresh_token"].as_str().unwrap());
    // `__Host-`: Secure, Path=/ and no Domain, so no sibling host can set or shadow it.
    assert_eq!(
        attributes,
        [
            "HttpOnly",
            "Max-Age=2592000",
            "Path=/",
            "SameSite=Strict",
            "Secure"
        ]
    );
}

async fn without_cookie_mode_no_cookie_is_set(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (res, _) = register(&app).await;
    assert!(set_cookies(&res).is_empty(), "{:?}", set_cookies(&res));
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let res = app
        .client
        .post(app.url("/auth/refresh"))
        .json(&json!({"refresh_token": body["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert!(set_cookies(&res).is_empty(), "{:?}", set_cookies(&res));
    let (status, next) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    // And a cookie alone is no refresh token when cookie mode is off.
    let cookie = format!("{HTTP_NAME}={}", next["refresh_token"].as_str().unwrap());
    let res = refresh_by_cookie(
        &app,
        &cookie,
        &[("origin", PAGE), ("x-gatehouse-csrf", "1")],
    )
    .await;
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body,
        json!({"message": "The 'refresh_token' field is required and was not provided."})
    );
}

async fn a_refresh_by_cookie_needs_an_allowed_origin_and_the_csrf_header(b: Backend) {
    let app = https_app(b).await;
    let (first, token) = signed_up(&app, HTTPS_NAME).await;
    let cookie = format!("{HTTPS_NAME}={token}");
    let refused = [
        ("neither", vec![]),
        (
            "the header without an Origin",
            vec![("x-gatehouse-csrf", "1")],
        ),
        (
            "an allowed Origin without the header",
            vec![("origin", PUBLIC)],
        ),
        (
            "another site's Origin",
            vec![
                ("origin", "https://evil.example"),
                ("x-gatehouse-csrf", "1"),
            ],
        ),
        (
            "an Origin that only starts like ours",
            vec![
                ("origin", "https://auth.example.evil"),
                ("x-gatehouse-csrf", "1"),
            ],
        ),
        (
            "the opaque Origin of a sandboxed page",
            vec![("origin", "null"), ("x-gatehouse-csrf", "1")],
        ),
        (
            "an empty header",
            vec![("origin", PUBLIC), ("x-gatehouse-csrf", "")],
        ),
    ];
    for (what, headers) in &refused {
        let res = refresh_by_cookie(&app, &cookie, headers).await;
        assert!(
            set_cookies(&res).is_empty(),
            "{what}: {:?}",
            set_cookies(&res)
        );
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
        assert_eq!(body, json!({"message": CSRF_REFUSED}), "{what}");
    }
    // None of those spent the token: the first defended refresh rotates it.
    let res = refresh_by_cookie(
        &app,
        &cookie,
        &[("origin", PUBLIC), ("x-gatehouse-csrf", "1")],
    )
    .await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (value, attributes) = parse_cookie(&refresh_set_cookie(&res, HTTPS_NAME));
    let (status, second) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["token_type"], "Bearer");
    assert_eq!(value, second["refresh_token"].as_str().unwrap());
    assert!(attributes.contains(&"Secure".to_owned()), "{attributes:?}");
    assert_ne!(value, token, "rotated");
    assert_eq!(sid(&second), sid(&first));
    assert_eq!(value.split('.').nth(1), Some("1"), "the first rotation");
    // From a listed page origin, with the new cookie.
    let res = refresh_by_cookie(
        &app,
        &format!("{HTTPS_NAME}={value}"),
        &[("origin", PAGE), ("x-gatehouse-csrf", "1")],
    )
    .await;
    let (status, third) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    assert_eq!(sid(&third), sid(&first));
    // The cookie under the plain-http name is not the https cookie.
    let res = refresh_by_cookie(
        &app,
        &format!("{HTTP_NAME}={}", third["refresh_token"].as_str().unwrap()),
        &[("origin", PUBLIC), ("x-gatehouse-csrf", "1")],
    )
    .await;
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body, json!({"message": no_cookie(HTTPS_NAME)}));
}

/// The answer to a cookie refresh that came without the cookie named `name`.
fn no_cookie(name: &str) -> String {
    format!(
        "No refresh token: the request has no {name} cookie and no refresh_token in its \
         body. Browsers send the cookie (SameSite=Strict) only with requests from the same \
         site as this server, with credentials: 'include'."
    )
}

/// A cookie refresh whose browser sent no cookie (another site, or no `credentials`):
/// `401` naming the cookie, not a `400` about a JSON field the page never meant to send.
async fn a_cookie_refresh_without_the_cookie_is_refused_naming_it(b: Backend) {
    let app = TestApp::spawn_with(b, |s| {
        s.session.cookie = true;
        s.http.cors_origins = vec![PAGE.into()];
    })
    .await;
    let (_, token) = signed_up(&app, HTTP_NAME).await;
    for (what, cookie) in [
        ("no Cookie header", None),
        ("other cookies only", Some("theme=dark".to_string())),
        (
            "the https cookie on http",
            Some(format!("{HTTPS_NAME}={token}")),
        ),
    ] {
        let mut req = app
            .client
            .post(app.url("/auth/refresh"))
            .header("origin", PAGE)
            .header("x-gatehouse-csrf", "1");
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        let res = req.send().await.unwrap();
        assert!(set_cookies(&res).is_empty(), "{what}");
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body, json!({"message": no_cookie(HTTP_NAME)}), "{what}");
    }
    // The cookie it asked for works.
    let res = refresh_by_cookie(
        &app,
        &format!("{HTTP_NAME}={token}"),
        &[("origin", PAGE), ("x-gatehouse-csrf", "1")],
    )
    .await;
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
}

async fn a_page_on_a_listed_origin_may_send_the_csrf_header(b: Backend) {
    let app = https_app(b).await;
    let res = app
        .client
        .request(Method::OPTIONS, app.url("/auth/refresh"))
        .header("origin", PAGE)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-gatehouse-csrf")
        .send()
        .await
        .unwrap();
    let allowed = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_ascii_lowercase())
            .unwrap_or_default()
    };
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(allowed("access-control-allow-origin"), PAGE);
    assert_eq!(allowed("access-control-allow-credentials"), "true");
    assert!(
        allowed("access-control-allow-headers").contains("x-gatehouse-csrf"),
        "{}",
        allowed("access-control-allow-headers")
    );
    // Another site's preflight is not allowed its origin: its page cannot send the header.
    let res = app
        .client
        .request(Method::OPTIONS, app.url("/auth/refresh"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-gatehouse-csrf")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

async fn a_refresh_token_in_the_body_needs_no_csrf_defence_and_wins_over_the_cookie(b: Backend) {
    let app = https_app(b).await;
    let (first, token) = signed_up(&app, HTTPS_NAME).await;
    let (other, other_token) = signed_up(&app, HTTPS_NAME).await;
    // A body token is no ambient credential: a page elsewhere cannot read it.
    let res = app
        .client
        .post(app.url("/auth/refresh"))
        .header("cookie", format!("{HTTPS_NAME}={other_token}"))
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .unwrap();
    let (value, _) = parse_cookie(&refresh_set_cookie(&res, HTTPS_NAME));
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        sid(&body),
        sid(&first),
        "the body's session, not the cookie's"
    );
    assert_eq!(value, body["refresh_token"].as_str().unwrap());
    // The cookie's session was not touched.
    let (status, body) = app.refresh(&other_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(sid(&body), sid(&other));
}

async fn logout_clears_the_cookie_and_the_cleared_session_refreshes_no_more(b: Backend) {
    let app = TestApp::spawn_with(b, |s| {
        s.session.cookie = true;
        s.http.cors_origins = vec![PAGE.into()];
    })
    .await;
    let (body, token) = signed_up(&app, HTTP_NAME).await;
    let res = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(body["token"].as_str().unwrap())
        .header("cookie", format!("{HTTP_NAME}={token}"))
        .send()
        .await
        .unwrap();
    let (value, attributes) = parse_cookie(&refresh_set_cookie(&res, HTTP_NAME));
    let (status, out) = read(res).await;
    assert_eq!((status, out), (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(value, "", "cleared");
    assert_eq!(
        attributes,
        ["HttpOnly", "Max-Age=0", "Path=/auth", "SameSite=Strict"],
        "the same name and path as the cookie it clears"
    );
    // A browser that kept the old cookie anyway gets a 401, and no new cookie.
    let res = refresh_by_cookie(
        &app,
        &format!("{HTTP_NAME}={token}"),
        &[("origin", PAGE), ("x-gatehouse-csrf", "1")],
    )
    .await;
    assert!(set_cookies(&res).is_empty(), "{:?}", set_cookies(&res));
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body, json!({"message": REFUSED}));
}

async fn concurrent_cookie_refreshes_all_get_the_current_cookie(b: Backend) {
    let app = https_app(b).await;
    let (first, token) = signed_up(&app, HTTPS_NAME).await;
    let cookie = format!("{HTTPS_NAME}={token}");
    let headers = [("origin", PUBLIC), ("x-gatehouse-csrf", "1")];
    let answers = join_all((0..20).map(|_| refresh_by_cookie(&app, &cookie, &headers))).await;
    let mut current = Vec::new();
    for res in answers {
        let (value, _) = parse_cookie(&refresh_set_cookie(&res, HTTPS_NAME));
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(sid(&body), sid(&first));
        assert_eq!(value, body["refresh_token"].as_str().unwrap());
        current.push(value);
    }
    current.sort();
    current.dedup();
    assert_eq!(current.len(), 1, "every tab holds the one current token");
}

async fn a_refused_refresh_never_clears_the_cookie(b: Backend) {
    let app = TestApp::spawn_with(b, |s| {
        s.session.cookie = true;
        s.session.refresh_reuse_grace_secs = 0;
        s.http.public_url = Some(PUBLIC.into());
    })
    .await;
    let headers = [("origin", PUBLIC), ("x-gatehouse-csrf", "1")];
    let (_, token) = signed_up(&app, HTTPS_NAME).await;
    let cookie = format!("{HTTPS_NAME}={token}");
    let res = refresh_by_cookie(&app, &cookie, &headers).await;
    let (status, _) = read(res).await;
    assert_eq!(status, StatusCode::OK);
    // The loser of a race (here: a spent token, no grace) is refused without a
    // cookie deletion: the winner's tab has set the current cookie already.
    let cases = [
        ("a spent token", cookie),
        ("a forged token", format!("{HTTPS_NAME}=0123.0.abc")),
    ];
    for (what, cookie) in cases {
        let res = refresh_by_cookie(&app, &cookie, &headers).await;
        assert!(
            set_cookies(&res).is_empty(),
            "{what}: {:?}",
            set_cookies(&res)
        );
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body, json!({"message": REFUSED}), "{what}");
    }
}
