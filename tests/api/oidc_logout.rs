//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): a client that
//! registered a `backchannel_logout_uri` is sent a logout token, at a real HTTP
//! receiver started here, whenever one of its sessions ends, whatever ended it; a
//! client without one is sent nothing; a receiver that is down gets it once it is up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::admin::cli;
use crate::helpers::{Backend, TestApp, jwt_parts, read};
use crate::mail::{RESET_PAGE, forgot, links, token_of, with_mail};
use crate::oidc::{VERIFIER, basic, challenge, code, exchange, post_form, register, web_client};
use crate::smtp::SmtpServer;

crate::on_every_backend!(
    every_way_a_session_ends_sends_its_client_a_logout_token,
    a_password_reset_sends_a_logout_token,
    a_client_without_a_backchannel_uri_is_sent_nothing,
    a_receiver_that_is_down_gets_the_token_once_it_is_up,
);

const ISSUER: &str = "https://id.example.test";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// What the receiver was sent: each request's content type and form.
type Received = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

/// A relying party's back-channel logout endpoint on `listener`: records each POST.
fn serve_receiver(listener: TcpListener) -> Received {
    let received: Received = Arc::default();
    async fn logout(
        State(received): State<Received>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> AxumStatus {
        let kind = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let form = url::form_urlencoded::parse(&body).into_owned().collect();
        received.lock().unwrap().push((kind, form));
        AxumStatus::OK
    }
    let router = axum::Router::new()
        .route("/backchannel-logout", axum::routing::post(logout))
        .with_state(Arc::clone(&received));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    received
}

async fn receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!(
        "http://127.0.0.1:{}/backchannel-logout",
        listener.local_addr().unwrap().port()
    );
    (uri, serve_receiver(listener))
}

/// The logout tokens received, once there are `n` (waits up to 15 s).
async fn tokens(received: &Received, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let got: Vec<(String, Vec<(String, String)>)> = received.lock().unwrap().clone();
        if got.len() >= n {
            return got
                .into_iter()
                .map(|(kind, form)| {
                    assert_eq!(kind, "application/x-www-form-urlencoded");
                    assert_eq!(form.len(), 1, "{form:?}");
                    assert_eq!(form[0].0, "logout_token");
                    form[0].1.clone()
                })
                .collect();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {n} logout tokens",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn spawn(b: Backend) -> TestApp {
    TestApp::spawn_with(b, |s| {
        s.oidc.enabled = true;
        s.oidc.backchannel_logout_retry_base_secs = 1;
        s.oidc.backchannel_logout_retry_max_secs = 1;
        s.http.public_url = Some(format!("{ISSUER}/"));
    })
    .await
}

/// An account signed in over the API: its id, email and account token.
async fn signed_in(app: &TestApp) -> (String, String, String) {
    let email = crate::helpers::email();
    let (status, body) = app.register(&email, "password123").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let id = jwt_parts(&token).1["sub"].as_str().unwrap().to_owned();
    (id, email, token)
}

/// A client with a back-channel logout URI (`uri`), signing ID tokens with `alg`.
async fn logout_client(
    app: &TestApp,
    uri: Option<&str>,
    alg: &str,
) -> (gatehouse::oidc::Client, String) {
    let (client, secret) = register(
        app,
        gatehouse::oidc::Registration {
            backchannel_logout_uri: uri.map(str::to_owned),
            id_token_alg: Some(alg.to_owned()),
            ..web_client()
        },
    )
    .await;
    let auth = basic(&client.id, &secret.unwrap());
    (client, auth)
}

/// An OIDC session of `account` with `client`: its tokens (`sid` in the ID token).
async fn oidc_session(
    app: &TestApp,
    account: &str,
    client: &gatehouse::oidc::Client,
    auth: &str,
) -> Value {
    let scopes = ["openid", "offline_access"];
    let c = code(app, account, client, &scopes, Some(&challenge(VERIFIER))).await;
    let (status, body) = exchange(app, auth, &c, "https://wiki.example/cb", Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn sid_of(tokens: &Value) -> String {
    let id_token = tokens["id_token"].as_str().unwrap();
    jwt_parts(id_token).1["sid"].as_str().unwrap().to_owned()
}

/// Verifies a logout token against the published JWKS and checks its claims (Back-
/// Channel Logout §2.4): the client's algorithm, `typ` `logout+jwt`, `iss`, `aud`,
/// `sub`, `sid`, the event, `iat`/`exp`/`jti`, and no `nonce`.
async fn check_logout_token(
    app: &TestApp,
    token: &str,
    issuer: &str,
    client: &gatehouse::oidc::Client,
    account: &str,
    sid: &str,
) -> Value {
    let (header, _) = jwt_parts(token);
    assert_eq!(header["typ"], "logout+jwt", "{header}");
    assert_eq!(header["alg"], client.id_token_alg.as_str(), "{header}");
    let (status, set) = read(app.get("/.well-known/jwks.json", None).await).await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(set).unwrap();
    let jwk = set
        .find(header["kid"].as_str().unwrap())
        .expect("the JWKS publishes the token's key");
    gatehouse::crypto::signing::install_provider();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let alg: jsonwebtoken::Algorithm = header["alg"].as_str().unwrap().parse().unwrap();
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[&client.id]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap_or_else(|e| panic!("{e}: {token}"))
        .claims;
    assert_eq!(claims["sub"], account, "{claims}");
    assert_eq!(claims["sid"], sid, "{claims}");
    assert_eq!(claims["events"], json!({ EVENT: {} }), "{claims}");
    assert!(claims.get("nonce").is_none(), "{claims}");
    assert!(
        claims["jti"].as_str().is_some_and(|j| j.len() >= 32),
        "{claims}"
    );
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    let now = gatehouse::domain::unix_now();
    assert!((now - 30..=now + 1).contains(&iat), "{claims}");
    assert!(exp > now && exp <= iat + 300, "{claims}");
    claims
}

async fn every_way_a_session_ends_sends_its_client_a_logout_token(b: Backend) {
    let app = spawn(b).await;
    let (uri, received) = receiver().await;
    let (rs, rs_auth) = logout_client(&app, Some(&uri), "RS256").await;
    let (es, es_auth) = logout_client(&app, Some(&uri), "ES256").await;
    let (account, email, account_token) = signed_in(&app).await;

    // Sign-out everywhere (POST /auth/logout, scope global) from the account's own
    // session: its OIDC sessions of both clients end, each client is told.
    let a = oidc_session(&app, &account, &rs, &rs_auth).await;
    let e = oidc_session(&app, &account, &es, &es_auth).await;
    let res = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(&account_token)
        .json(&json!({"scope": "global"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let mut expected = 2;
    let got = tokens(&received, expected).await;
    let mut by_aud: Vec<(String, String)> = got
        .iter()
        .map(|t| {
            let c = jwt_parts(t).1;
            (c["aud"].as_str().unwrap().to_owned(), t.clone())
        })
        .collect();
    by_aud.sort();
    for (client, tokens) in [(&rs, &a), (&es, &e)] {
        let token = &by_aud.iter().find(|(aud, _)| *aud == client.id).unwrap().1;
        check_logout_token(&app, token, ISSUER, client, &account, &sid_of(tokens)).await;
    }

    // The account's session list: DELETE /auth/sessions/{id} of the OIDC session.
    let (status, body) = app
        .post_json(
            "/auth/login",
            &json!({"email": email, "password": "password123"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let account_token = body["token"].as_str().unwrap().to_owned();
    let s = oidc_session(&app, &account, &rs, &rs_auth).await;
    let res = app
        .client
        .delete(app.url(&format!("/auth/sessions/{}", sid_of(&s))))
        .bearer_auth(&account_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    expected += 1;
    let got = tokens(&received, expected).await;
    check_logout_token(
        &app,
        got.last().unwrap(),
        ISSUER,
        &rs,
        &account,
        &sid_of(&s),
    )
    .await;

    // RFC 7009: the client revokes its refresh token.
    let s = oidc_session(&app, &account, &es, &es_auth).await;
    let (status, body) = post_form(
        &app,
        "/oauth/revoke",
        Some(&es_auth),
        &[("token", s["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    expected += 1;
    let got = tokens(&received, expected).await;
    check_logout_token(
        &app,
        got.last().unwrap(),
        ISSUER,
        &es,
        &account,
        &sid_of(&s),
    )
    .await;

    // A replayed code ends the session its first use started.
    let c = code(&app, &account, &rs, &["openid"], Some(&challenge(VERIFIER))).await;
    let (status, s) = exchange(
        &app,
        &rs_auth,
        &c,
        "https://wiki.example/cb",
        Some(VERIFIER),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    let (status, body) = exchange(
        &app,
        &rs_auth,
        &c,
        "https://wiki.example/cb",
        Some(VERIFIER),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    expected += 1;
    let got = tokens(&received, expected).await;
    check_logout_token(
        &app,
        got.last().unwrap(),
        ISSUER,
        &rs,
        &account,
        &sid_of(&s),
    )
    .await;

    // The operator's commands: sessions revoke, users mfa reset, users disable, users
    // delete (the account's id is still the token's sub once the account is gone).
    for command in [
        &["sessions", "revoke"][..],
        &["users", "mfa", "reset"],
        &["users", "disable"],
        &["users", "delete"],
    ] {
        if command == ["users", "delete"] {
            let run = cli(&app, &["users", "enable", &account]).await;
            assert_eq!(run.code, 0, "{}", run.stderr);
        }
        let s = oidc_session(&app, &account, &rs, &rs_auth).await;
        let mut args = command.to_vec();
        args.push(&account);
        let run = cli(&app, &args).await;
        assert_eq!(run.code, 0, "{command:?}: {}", run.stderr);
        expected += 1;
        let got = tokens(&received, expected).await;
        check_logout_token(
            &app,
            got.last().unwrap(),
            ISSUER,
            &rs,
            &account,
            &sid_of(&s),
        )
        .await;
    }
    // Nothing more was sent than one token per session ended.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(received.lock().unwrap().len(), expected);
}

async fn a_password_reset_sends_a_logout_token(b: Backend) {
    let smtp = SmtpServer::start().await;
    let configure = with_mail(&smtp);
    let app = TestApp::spawn_with(b, |s| {
        configure(s);
        s.oidc.enabled = true;
        s.oidc.backchannel_logout_retry_base_secs = 1;
        s.oidc.backchannel_logout_retry_max_secs = 1;
    })
    .await;
    let (uri, received) = receiver().await;
    let (rs, rs_auth) = logout_client(&app, Some(&uri), "RS256").await;
    let address = crate::helpers::email();
    let token = app.registered(&address, "old-password-1").await;
    let account = jwt_parts(&token).1["sub"].as_str().unwrap().to_owned();
    let s = oidc_session(&app, &account, &rs, &rs_auth).await;
    forgot(&app, &address).await;
    let reset = token_of(&links(&smtp, RESET_PAGE, 1).await[0]);
    let (status, body) = app
        .post_json(
            "/auth/password/reset",
            &json!({"token": reset, "password": "new-password-2"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = tokens(&received, 1).await;
    let issuer = crate::mail::PUBLIC_URL;
    check_logout_token(&app, &got[0], issuer, &rs, &account, &sid_of(&s)).await;
}

async fn a_client_without_a_backchannel_uri_is_sent_nothing(b: Backend) {
    let app = spawn(b).await;
    let (uri, received) = receiver().await;
    let (told, told_auth) = logout_client(&app, Some(&uri), "RS256").await;
    let (silent, silent_auth) = logout_client(&app, None, "RS256").await;
    let (account, _, account_token) = signed_in(&app).await;
    let t = oidc_session(&app, &account, &told, &told_auth).await;
    oidc_session(&app, &account, &silent, &silent_auth).await;
    let res = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(&account_token)
        .json(&json!({"scope": "global"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let got = tokens(&received, 1).await;
    check_logout_token(&app, &got[0], ISSUER, &told, &account, &sid_of(&t)).await;
    // The account's own session (no client) and the silent client's: nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(received.lock().unwrap().len(), 1);
}

async fn a_receiver_that_is_down_gets_the_token_once_it_is_up(b: Backend) {
    let app = spawn(b).await;
    // A port nobody listens on, for now.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let uri = format!("http://127.0.0.1:{port}/backchannel-logout");
    let (rs, rs_auth) = logout_client(&app, Some(&uri), "RS256").await;
    let (account, _, _) = signed_in(&app).await;
    let s = oidc_session(&app, &account, &rs, &rs_auth).await;
    let (status, body) = post_form(
        &app,
        "/oauth/revoke",
        Some(&rs_auth),
        &[("token", s["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    // At least one delivery fails while nothing listens.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let received = serve_receiver(listener);
    let got = tokens(&received, 1).await;
    let claims = check_logout_token(&app, &got[0], ISSUER, &rs, &account, &sid_of(&s)).await;
    assert!(claims["jti"].is_string());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(received.lock().unwrap().len(), 1, "delivered once");
}
