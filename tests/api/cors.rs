//! CORS on every route a page calls: the preflight of a `fetch` with an
//! `Authorization` header, and the answers themselves, errors included.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, email, read};
use crate::selfkey::MOUNT;

crate::on_every_backend!(
    every_page_route_answers_its_preflight,
    linking_calls_from_a_page_carry_cors_headers,
    without_cors_origins_no_cors_header_is_sent,
    a_page_reads_why_its_token_was_refused,
);

const SITE: &str = "https://shop.example";

async fn spawn(b: Backend) -> TestApp {
    TestApp::spawn_with(b, |s| s.http.cors_origins = vec![SITE.into()]).await
}

async fn preflight(app: &TestApp, path: &str, method: &str, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap()
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .unwrap_or_default()
}

async fn every_page_route_answers_its_preflight(b: Backend) {
    let app = spawn(b).await;
    let wallet = format!("{MOUNT}/wallets/0x{}", "ab".repeat(20));
    for (path, method) in [
        (format!("{MOUNT}/link-token"), "POST"),
        (format!("{MOUNT}/wallets"), "GET"),
        (wallet.clone(), "GET"),
        (wallet, "DELETE"),
        (format!("{MOUNT}/login"), "POST"),
        (format!("{MOUNT}/config"), "GET"),
        ("/auth/me".to_string(), "GET"),
        ("/auth/login".to_string(), "POST"),
        ("/auth/register".to_string(), "POST"),
        ("/auth/refresh".to_string(), "POST"),
        ("/auth/passkeys/some-id".to_string(), "PATCH"),
        ("/auth/passkeys/some-id".to_string(), "DELETE"),
    ] {
        let res = preflight(&app, &path, method, SITE).await;
        let allow_origin = header(&res, "access-control-allow-origin");
        let allow_methods = header(&res, "access-control-allow-methods");
        let allow_headers = header(&res, "access-control-allow-headers");
        let credentials = header(&res, "access-control-allow-credentials");
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}");
        assert_eq!(body, Value::Null, "{method} {path}");
        assert_eq!(allow_origin, SITE, "{method} {path}");
        assert!(
            allow_methods.contains(&method.to_ascii_lowercase()),
            "{method} {path}: {allow_methods}"
        );
        assert!(
            allow_headers.contains("authorization"),
            "{method} {path}: {allow_headers}"
        );
        assert_eq!(credentials, "true", "{method} {path}");
        // Another origin is answered without permission.
        let res = preflight(&app, &path, method, "https://evil.example").await;
        assert_eq!(
            header(&res, "access-control-allow-origin"),
            "",
            "{method} {path}"
        );
        assert_eq!(read(res).await, (StatusCode::OK, Value::Null));
    }
}

async fn linking_calls_from_a_page_carry_cors_headers(b: Backend) {
    let app = spawn(b).await;
    let token = app.registered(&email(), "password123").await;
    let call = |method: Method, path: String, bearer: Option<String>| {
        let mut req = app
            .client
            .request(method, app.url(&path))
            .header("origin", SITE);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let res = call(
        Method::POST,
        format!("{MOUNT}/link-token"),
        Some(token.clone()),
    )
    .await
    .unwrap();
    assert_eq!(header(&res, "access-control-allow-origin"), SITE);
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["linkToken"].is_string(), "{body}");
    assert_eq!(body["expiresIn"], 600);

    let res = call(Method::GET, format!("{MOUNT}/wallets"), Some(token.clone()))
        .await
        .unwrap();
    assert_eq!(header(&res, "access-control-allow-origin"), SITE);
    assert_eq!(read(res).await, (StatusCode::OK, json!({"wallets": []})));

    // A refusal is readable by the page too.
    let res = call(Method::GET, format!("{MOUNT}/wallets"), None)
        .await
        .unwrap();
    assert_eq!(header(&res, "access-control-allow-origin"), SITE);
    assert_eq!(
        read(res).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"code": "invalid_token", "message": "A valid account token is required."})
        )
    );
    let res = call(Method::GET, "/auth/me".into(), Some(token))
        .await
        .unwrap();
    assert_eq!(header(&res, "access-control-allow-origin"), SITE);
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["id"].is_string(), "{body}");
}

/// No `http.cors_origins`: no answer carries a CORS header, and a preflight is the
/// `405` of any `OPTIONS` (`access-control-allow-credentials: true` alone grants
/// nothing, but it says CORS is set up when it is not).
async fn without_cors_origins_no_cors_header_is_sent(b: Backend) {
    let app = TestApp::spawn(b).await;
    let cors_headers = |res: &reqwest::Response| -> Vec<String> {
        res.headers()
            .keys()
            .map(|k| k.as_str().to_owned())
            .filter(|k| k.starts_with("access-control-"))
            .collect()
    };
    let res = preflight(&app, "/auth/me", "GET", SITE).await;
    assert_eq!(cors_headers(&res), Vec::<String>::new());
    assert_eq!(
        read(res).await,
        (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"message": "Method not allowed on this route."})
        )
    );
    let res = app
        .client
        .get(app.url("/auth/me"))
        .header("origin", SITE)
        .send()
        .await
        .unwrap();
    assert_eq!(cors_headers(&res), Vec::<String>::new());
    assert_eq!(
        read(res).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"message": "A valid bearer token is required."})
        )
    );
}

/// A page on a listed origin can read `WWW-Authenticate` (exposed), so it knows an
/// expired token from a bad one without guessing.
async fn a_page_reads_why_its_token_was_refused(b: Backend) {
    let app = spawn(b).await;
    let res = app
        .client
        .get(app.url("/auth/me"))
        .header("origin", SITE)
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&res, "access-control-allow-origin"), SITE);
    let exposed = header(&res, "access-control-expose-headers");
    assert!(exposed.contains("www-authenticate"), "{exposed}");
    assert!(exposed.contains("retry-after"), "{exposed}");
    assert_eq!(
        header(&res, "www-authenticate"),
        r#"bearer error="invalid_token", error_description="the access token is invalid""#
    );
    assert_eq!(
        read(res).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"message": "A valid bearer token is required."})
        )
    );
}
