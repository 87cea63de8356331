//! Behind a reverse proxy: the client address, host and scheme its `X-Forwarded-*`
//! headers give are read from the right and believed from trusted proxies only, and
//! the same scheme decides the page's URLs and the session cookie's `Secure`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, email, read};
use crate::selfkey::{MOUNT, TestWallet, login_token, signed_up};

crate::on_every_backend!(
    forwarded_for_hops_with_ports_are_their_clients,
    an_unreadable_forwarded_hop_is_refused_not_pooled,
    forwarded_host_is_read_from_the_right_and_config_is_not_cached,
    the_session_cookie_follows_the_scheme_of_the_page_urls,
);

/// Behind a trusted proxy (the test client's loopback address), 2 requests a minute
/// per client address.
fn behind_proxy(s: &mut gatehouse::config::Settings) {
    trusting_loopback(s);
    s.rate_limit.per_address = 2;
}

fn trusting_loopback(s: &mut gatehouse::config::Settings) {
    s.http.trusted_proxies = vec!["127.0.0.1".into()];
}

async fn login_via(app: &TestApp, forwarded_for: &str) -> (StatusCode, Value) {
    let res = app
        .client
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"email": email(), "password": "password123"}))
        .send()
        .await
        .unwrap();
    read(res).await
}

fn invalid_credentials() -> (StatusCode, Value) {
    (
        StatusCode::UNAUTHORIZED,
        json!({"message": "Invalid credentials"}),
    )
}

fn too_many() -> (StatusCode, Value) {
    (
        StatusCode::TOO_MANY_REQUESTS,
        json!({"message": "Too many requests; try again later."}),
    )
}

async fn forwarded_for_hops_with_ports_are_their_clients(b: Backend) {
    let app = TestApp::spawn_with(b, behind_proxy).await;
    // One client, written with and without its port, is one count...
    assert_eq!(
        login_via(&app, "203.0.113.5:1234").await,
        invalid_credentials()
    );
    assert_eq!(login_via(&app, "203.0.113.5").await, invalid_credentials());
    assert_eq!(login_via(&app, "203.0.113.5:999").await, too_many());
    // ...and every other client keeps its own allowance, in either form with a port.
    assert_eq!(
        login_via(&app, "[2001:db8::7]:443").await,
        invalid_credentials()
    );
    assert_eq!(
        login_via(&app, "[2001:db8::7]:80").await,
        invalid_credentials()
    );
    assert_eq!(login_via(&app, "2001:db8::7").await, too_many());
    assert_eq!(
        login_via(&app, "203.0.113.6:1234").await,
        invalid_credentials()
    );
    assert_eq!(
        login_via(&app, "198.51.100.1:5, 127.0.0.1:8080").await,
        invalid_credentials()
    );
}

async fn an_unreadable_forwarded_hop_is_refused_not_pooled(b: Backend) {
    let app = TestApp::spawn_with(b, behind_proxy).await;
    let refused = (
        StatusCode::BAD_REQUEST,
        json!({"message": "The proxy's X-Forwarded-For names a client that is not an address."}),
    );
    for _ in 0..3 {
        assert_eq!(login_via(&app, "unknown").await, refused);
    }
    // Nothing was counted under the proxy's own address: its own requests still pass.
    let res = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({"email": email(), "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(read(res).await, invalid_credentials());
    // The SelfKey routes refuse in their own format.
    let res = app
        .client
        .get(app.url(&format!("{MOUNT}/auth/challenge")))
        .header("x-forwarded-for", "1.2.3.4, _hidden")
        .send()
        .await
        .unwrap();
    assert_eq!(
        read(res).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"code": "invalid_forwarded_for", "message": "The proxy's X-Forwarded-For names a client that is not an address."})
        )
    );
    // A hop left of the client is the client's own business and does not matter.
    assert_eq!(
        login_via(&app, "garbage, 203.0.113.9").await,
        invalid_credentials()
    );
    // Routes without a rate limit do not look at the header.
    let res = app
        .client
        .get(app.url("/health"))
        .header("x-forwarded-for", "unknown")
        .send()
        .await
        .unwrap();
    assert_eq!(read(res).await.0, StatusCode::OK);
}

async fn get_config(app: &TestApp, headers: &[(&str, &str)]) -> (StatusCode, String, Value) {
    let mut req = app.client.get(app.url(&format!("{MOUNT}/config")));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    let cache = res
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let (status, body) = read(res).await;
    (status, cache, body)
}

async fn forwarded_host_is_read_from_the_right_and_config_is_not_cached(b: Backend) {
    let app = TestApp::spawn_with(b, trusting_loopback).await;
    let (status, cache, body) = get_config(
        &app,
        &[
            ("x-forwarded-host", "evil.example, shop.example"),
            ("x-forwarded-proto", "http, https"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cache, "no-store");
    assert_eq!(body["rootEndpoint"], "https://shop.example/api/v1/selfkey");
    assert_eq!(
        body["endpoints"]["/login"],
        "https://shop.example/api/v1/selfkey/login"
    );
    // The client's own `https` on the left does not make a plain-http hop https.
    let (_, _, body) = get_config(
        &app,
        &[
            ("x-forwarded-host", "shop.example"),
            ("x-forwarded-proto", "https, http"),
        ],
    )
    .await;
    assert_eq!(body["rootEndpoint"], "http://shop.example/api/v1/selfkey");

    // A configured public URL wins over every forwarded header.
    let public = TestApp::spawn_with(b, |s| {
        trusting_loopback(s);
        s.http.public_url = Some("https://auth.example".into());
    })
    .await;
    let (status, cache, body) = get_config(
        &public,
        &[
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "http"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cache, "no-store");
    assert_eq!(body["rootEndpoint"], "https://auth.example/api/v1/selfkey");
}

/// The `Set-Cookie` of a whole wallet sign-in, `/login` sent with `headers`.
async fn session_cookie(app: &TestApp, headers: &[(&str, &str)]) -> String {
    let wallet = TestWallet::random();
    let token = signed_up(app, &wallet, &email()).await;
    let (_, body) = login_token(app, &token, None).await;
    let mut req = app
        .client
        .post(app.url(&format!("{MOUNT}/login")))
        .json(&json!({"token": body["token"]}));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        cookie.starts_with(&format!(
            "gatehouse_session={}; HttpOnly",
            body["token"].as_str().unwrap()
        )),
        "{cookie}"
    );
    cookie
}

async fn the_session_cookie_follows_the_scheme_of_the_page_urls(b: Backend) {
    let proxied = TestApp::spawn_with(b, trusting_loopback).await;
    let https = [("x-forwarded-proto", "https")];
    let cookie = session_cookie(&proxied, &https).await;
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    let (_, _, config) = get_config(&proxied, &[("x-forwarded-proto", "https")]).await;
    assert!(
        config["rootEndpoint"]
            .as_str()
            .unwrap()
            .starts_with("https://"),
        "{config}"
    );
    let cookie = session_cookie(&proxied, &[]).await;
    assert!(!cookie.contains("Secure"), "{cookie}");

    // From a client that is not a trusted proxy, the header means nothing.
    let direct = TestApp::spawn(b).await;
    let cookie = session_cookie(&direct, &https).await;
    assert!(!cookie.contains("Secure"), "{cookie}");
    let (_, _, config) = get_config(&direct, &https).await;
    assert!(
        config["rootEndpoint"]
            .as_str()
            .unwrap()
            .starts_with("http://"),
        "{config}"
    );
}
