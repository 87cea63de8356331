//! Social sign-in over HTTP, against upstreams run in the test on loopback: a small
//! OpenID Connect provider (discovery, JWKS, an authorization endpoint that consents at
//! once, a token endpoint that checks the client's secret, the redirect URI and PKCE,
//! and ID tokens signed with a real key), which a test can tell to misbehave; and a
//! GitHub-shaped one (`/login/oauth/*`, `/user`, `/user/emails`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use gatehouse::config::{ProviderKind, Settings, SocialProviderSettings};
use gatehouse::crypto::signing::{Algorithm, KeyPair};
use gatehouse::domain::Secret;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest;

use crate::helpers::{Backend, TestApp, email, read};

crate::on_every_backend!(
    a_new_identity_signs_up_and_then_signs_in_to_the_same_account,
    the_browser_gets_a_session_cookie_and_goes_to_return_to,
    the_api_code_is_single_use_and_lives_sixty_seconds,
    a_replayed_state_is_refused,
    a_state_from_another_browser_is_refused_and_left_to_its_own,
    id_tokens_that_fail_a_check_sign_in_no_one,
    an_unknown_key_is_fetched_once_and_then_refused,
    an_email_of_an_existing_account_signs_in_only_after_linking,
    an_unverified_or_untrusted_email_makes_an_unverified_account,
    a_provider_disabled_mid_flow_signs_in_no_one,
    the_last_identity_cannot_be_unlinked,
    an_account_with_a_second_factor_owes_it_after_a_social_sign_in,
    upstream_errors_end_on_a_clear_answer,
    github_signs_in_by_user_id_with_the_primary_verified_email,
    a_reset_removes_a_provider_linked_since_the_address_was_proven,
    apple_posts_its_answer_and_takes_a_client_secret_signed_with_the_team_key,
    microsoft_multi_tenant_tokens_carry_their_tenant_in_the_issuer,
    an_email_only_at_userinfo_is_taken_from_there_for_the_same_subject,
);

const CLIENT_ID: &str = "gatehouse-test-client";
const CLIENT_SECRET: &str = "upstream-client-secret";
const APP_ORIGIN: &str = "https://app.example.com";

/// Who the upstream signs in next, and how it misbehaves.
#[derive(Clone)]
struct Next {
    subject: String,
    email: Option<String>,
    email_verified: bool,
    /// Claims to replace in the next ID token (`aud`, `iss`, `exp`, `nonce`, …).
    overrides: Vec<(&'static str, Value)>,
    /// Sign with a key the JWKS does not publish.
    unknown_key: bool,
    /// Sign with another key under the published key's id: a forged signature.
    forged: bool,
    /// The authorization endpoint answers `error=` instead of a code.
    deny: bool,
    /// `email` and `email_verified` only at UserInfo, not in the ID token.
    email_at_userinfo: bool,
    /// UserInfo answers this `sub` instead of the person's.
    userinfo_subject: Option<String>,
}

impl Next {
    fn person(subject: &str, email: Option<&str>, verified: bool) -> Next {
        Next {
            subject: subject.into(),
            email: email.map(Into::into),
            email_verified: verified,
            overrides: Vec::new(),
            unknown_key: false,
            forged: false,
            deny: false,
            email_at_userinfo: false,
            userinfo_subject: None,
        }
    }
}

struct Grant {
    nonce: Option<String>,
    challenge: String,
    redirect_uri: String,
    who: Next,
}

struct Up {
    base: String,
    key: KeyPair,
    stranger: KeyPair,
    /// Another key with the published key's id.
    forger: KeyPair,
    next: Mutex<Next>,
    grants: Mutex<HashMap<String, Grant>>,
    jwks_fetches: Mutex<u32>,
    /// The token endpoint answers 503.
    down: Mutex<bool>,
    /// Who each access token was issued for, for UserInfo.
    access: Mutex<HashMap<String, Next>>,
    userinfo_calls: Mutex<u32>,
    /// Apple-shaped: the client secret must be an ES256 JWT of this team, signed by
    /// this key (its id, the public key).
    apple: Mutex<Option<(String, String, p256::ecdsa::VerifyingKey)>>,
}

/// An upstream provider on loopback.
#[derive(Clone)]
struct Upstream(Arc<Up>);

impl Upstream {
    async fn start() -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let up = Upstream(Arc::new(Up {
            key: KeyPair::generate(Algorithm::ES256, "up-1", &base),
            stranger: KeyPair::generate(Algorithm::ES256, "up-2", &base),
            forger: KeyPair::generate(Algorithm::ES256, "up-1", &base),
            base,
            next: Mutex::new(Next::person("subject-1", None, false)),
            grants: Mutex::new(HashMap::new()),
            jwks_fetches: Mutex::new(0),
            down: Mutex::new(false),
            access: Mutex::new(HashMap::new()),
            userinfo_calls: Mutex::new(0),
            apple: Mutex::new(None),
        }));
        let router = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route(
                "/common/v2.0/.well-known/openid-configuration",
                get(microsoft_discovery),
            )
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(token))
            .route("/api/v3/user", get(github_user))
            .route("/api/v3/user/emails", get(github_emails))
            .with_state(up.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        up
    }

    fn next(&self, next: Next) {
        *self.0.next.lock().unwrap() = next;
    }

    fn jwks_fetches(&self) -> u32 {
        *self.0.jwks_fetches.lock().unwrap()
    }

    /// A provider of kind `oidc` on this upstream.
    fn provider(&self, id: &str) -> SocialProviderSettings {
        SocialProviderSettings {
            id: id.into(),
            kind: ProviderKind::Oidc,
            name: Some("Test IdP".into()),
            client_id: CLIENT_ID.into(),
            client_secret: Some(Secret::new(CLIENT_SECRET.into())),
            client_secret_file: None,
            scopes: None,
            issuer: Some(self.0.base.clone()),
            trust_email_verified: Some(true),
            enabled: true,
            base_url: None,
            tenant: None,
            team_id: None,
            key_id: None,
            private_key_file: None,
        }
    }
}

async fn discovery(State(up): State<Upstream>) -> axum::Json<Value> {
    let b = &up.0.base;
    axum::Json(json!({
        "issuer": b,
        "authorization_endpoint": format!("{b}/authorize"),
        "token_endpoint": format!("{b}/token"),
        "jwks_uri": format!("{b}/jwks"),
        "userinfo_endpoint": format!("{b}/userinfo"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    }))
}

/// Microsoft's multi-tenant discovery: its issuer is a template.
async fn microsoft_discovery(State(up): State<Upstream>) -> axum::Json<Value> {
    let b = &up.0.base;
    axum::Json(json!({
        "issuer": format!("{b}/{{tenantid}}/v2.0"),
        "authorization_endpoint": format!("{b}/authorize"),
        "token_endpoint": format!("{b}/token"),
        "jwks_uri": format!("{b}/jwks"),
    }))
}

async fn jwks(State(up): State<Upstream>) -> axum::Json<Value> {
    *up.0.jwks_fetches.lock().unwrap() += 1;
    axum::Json(json!({"keys": [up.0.key.jwk()]}))
}

/// Consents at once: back to the client with a code (or the error it was told to give).
async fn authorize(
    State(up): State<Upstream>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    let who = up.0.next.lock().unwrap().clone();
    let redirect_uri = q["redirect_uri"].clone();
    let state = url::form_urlencoded::byte_serialize(q["state"].as_bytes()).collect::<String>();
    if who.deny {
        return Redirect::to(&format!("{redirect_uri}?error=access_denied&state={state}"))
            .into_response();
    }
    let code = gatehouse::crypto::random_id();
    up.0.grants.lock().unwrap().insert(
        code.clone(),
        Grant {
            nonce: q.get("nonce").cloned(),
            challenge: q["code_challenge"].clone(),
            redirect_uri: redirect_uri.clone(),
            who,
        },
    );
    if q.get("response_mode").map(String::as_str) == Some("form_post") {
        // Apple's: the page that posts the answer (here, what it would post).
        return axum::Json(json!({
            "action": redirect_uri,
            "fields": {"code": code, "state": q["state"], "user": r#"{"name":{"firstName":"Ada","lastName":"Lovelace"},"email":"ada@example.com"}"#},
        }))
        .into_response();
    }
    Redirect::to(&format!("{redirect_uri}?code={code}&state={state}")).into_response()
}

/// The token endpoint: the client's secret (Basic, or in the form), the code once,
/// its redirect URI and PKCE verifier; an ID token (and an access token).
async fn token(
    State(up): State<Upstream>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> axum::response::Response {
    if *up.0.down.lock().unwrap() {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(|b| {
            let raw = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
            String::from_utf8(raw).unwrap()
        });
    let apple = up.0.apple.lock().unwrap().clone();
    let client_ok = match (basic, apple) {
        (None, Some((team, kid, key))) => {
            form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                && apple_secret_ok(&form["client_secret"], &team, &kid, &key, &up.0.base)
        }
        (basic, _) => match basic {
            Some(pair) => pair == format!("{CLIENT_ID}:{CLIENT_SECRET}"),
            None => {
                form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                    && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
            }
        },
    };
    let refuse = |error: &str| {
        (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": error})),
        )
            .into_response()
    };
    if !client_ok {
        return refuse("invalid_client");
    }
    let Some(grant) = up.0.grants.lock().unwrap().remove(&form["code"]) else {
        return refuse("invalid_grant");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if B64.encode(sha2::Sha256::digest(verifier.as_bytes())) != grant.challenge
        || form.get("redirect_uri") != Some(&grant.redirect_uri)
    {
        return refuse("invalid_grant");
    }
    let now = gatehouse::domain::unix_now();
    let who = grant.who;
    let mut claims = json!({
        "iss": up.0.base,
        "sub": who.subject,
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 300,
        "nonce": grant.nonce,
        "email": who.email,
        "email_verified": who.email_verified,
    });
    if who.email_at_userinfo {
        let claims = claims.as_object_mut().unwrap();
        claims.remove("email");
        claims.remove("email_verified");
    }
    for (claim, value) in &who.overrides {
        claims[*claim] = value.clone();
    }
    let key = if who.unknown_key {
        &up.0.stranger
    } else if who.forged {
        &up.0.forger
    } else {
        &up.0.key
    };
    // GitHub's access token names the person it was issued for.
    let access_token = format!("gho_{}", who.subject);
    up.0.access
        .lock()
        .unwrap()
        .insert(access_token.clone(), who.clone());
    axum::Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "id_token": key.sign(&claims),
    }))
    .into_response()
}

/// UserInfo (OpenID Connect Core §5.3): the claims of the access token's person (or
/// another `sub`, when told to).
async fn userinfo(State(up): State<Upstream>, headers: HeaderMap) -> axum::response::Response {
    *up.0.userinfo_calls.lock().unwrap() += 1;
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Some(who) = up.0.access.lock().unwrap().get(token).cloned() else {
        return (axum::http::StatusCode::UNAUTHORIZED, "invalid_token").into_response();
    };
    axum::Json(json!({
        "sub": who.userinfo_subject.unwrap_or(who.subject),
        "email": who.email,
        "email_verified": who.email_verified,
        "name": "Userinfo Person",
    }))
    .into_response()
}

/// Apple's check of a client secret: an ES256 JWT whose header names the key, signed
/// by it, from the team (`iss`) for this client (`sub`) to Apple (`aud`), live.
fn apple_secret_ok(
    jwt: &str,
    team: &str,
    kid: &str,
    key: &p256::ecdsa::VerifyingKey,
    audience: &str,
) -> bool {
    use p256::ecdsa::signature::Verifier;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return false;
    };
    let decode = |p: &str| serde_json::from_slice::<Value>(&B64.decode(p).unwrap()).unwrap();
    let (header, claims) = (decode(header), decode(claims));
    let signature = p256::ecdsa::Signature::from_slice(&B64.decode(signature).unwrap()).unwrap();
    let now = gatehouse::domain::unix_now();
    header["alg"] == "ES256"
        && header["kid"] == kid
        && claims["iss"] == team
        && claims["sub"] == CLIENT_ID
        && claims["aud"] == audience
        && claims["exp"].as_i64().unwrap() > now
        && key
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .is_ok()
}

fn github_person(headers: &HeaderMap) -> String {
    let auth = headers["authorization"].to_str().unwrap();
    auth.strip_prefix("Bearer gho_").unwrap().to_owned()
}

/// GitHub's `GET /user`: the numeric id is the identity.
async fn github_user(headers: HeaderMap) -> axum::Json<Value> {
    let who = github_person(&headers);
    axum::Json(
        json!({"id": who.parse::<u64>().unwrap(), "login": format!("octo{who}"), "name": null}),
    )
}

/// GitHub's `GET /user/emails`: person 1 has a verified primary, person 2 only an
/// unverified primary and a verified secondary.
async fn github_emails(headers: HeaderMap) -> axum::Json<Value> {
    let who = github_person(&headers);
    axum::Json(match who.as_str() {
        "1" => json!([
            {"email": "old-1@example.com", "primary": false, "verified": true, "visibility": null},
            {"email": "octo-1@example.com", "primary": true, "verified": true, "visibility": "public"},
        ]),
        _ => json!([
            {"email": format!("octo-{who}@example.com"), "primary": true, "verified": false, "visibility": null},
            {"email": format!("other-{who}@example.com"), "primary": false, "verified": true, "visibility": null},
        ]),
    })
}

/// A server with `up`'s provider as `test`, return_to allowed on [`APP_ORIGIN`].
async fn server(b: Backend, up: &Upstream, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let provider = up.provider("test");
    TestApp::spawn_with(b, |s| {
        s.social.providers = vec![provider];
        s.ui.return_origins = vec![APP_ORIGIN.into()];
        configure(s);
    })
    .await
}

/// One browser: its cookies, as a browser keeps them (name → value).
#[derive(Default)]
struct Jar(HashMap<String, String>);

impl Jar {
    fn take(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attrs.contains("Max-Age=0") {
                self.0.remove(name);
            } else {
                self.0.insert(name.into(), value.into());
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, app: &TestApp, url: &str) -> reqwest::Response {
        let res = app
            .client
            .get(url)
            .header("cookie", self.header())
            .send()
            .await
            .unwrap();
        self.take(&res);
        res
    }
}

fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// The path and query of a URL, on the test server.
fn on(app: &TestApp, url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    app.url(&format!("{}?{}", u.path(), u.query().unwrap_or_default()))
}

fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// Begins a sign-in at `/auth/social/test?…` in `jar`: the provider's URL.
async fn begin(app: &TestApp, jar: &mut Jar, query: &str) -> String {
    let res = jar
        .get(app, &app.url(&format!("/auth/social/test?{query}")))
        .await;
    assert_eq!(res.status(), StatusCode::FOUND, "{:?}", res.text().await);
    location(&res)
}

/// Follows the provider's consent: the callback URL it sends the browser to.
async fn consent(app: &TestApp, authorize_url: &str) -> String {
    let res = app.client.get(authorize_url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    on(app, &location(&res))
}

/// A whole API-mode sign-in of whoever the upstream signs in next: the callback's
/// answer.
async fn api_callback(app: &TestApp) -> reqwest::Response {
    let mut jar = Jar::default();
    let to = format!("{APP_ORIGIN}/done");
    let q = format!("mode=api&return_to={}", urlencode(&to));
    let authorize = begin(app, &mut jar, &q).await;
    let callback = consent(app, &authorize).await;
    jar.get(app, &callback).await
}

/// The `code` an API-mode callback put on `return_to`.
fn code_of(res: &reqwest::Response) -> String {
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = location(res);
    assert!(to.starts_with(&format!("{APP_ORIGIN}/done?code=")), "{to}");
    query_of(&to)["code"].clone()
}

async fn exchange(app: &TestApp, code: &str) -> (StatusCode, Value) {
    app.post_json("/auth/social/exchange", &json!({"code": code}))
        .await
}

/// An API-mode sign-in that gets tokens: the account token.
async fn api_sign_in(app: &TestApp) -> String {
    let res = api_callback(app).await;
    let (status, body) = exchange(app, &code_of(&res)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An error page (the hosted pages are on by default): its status and text.
async fn page(res: reqwest::Response) -> (StatusCode, String) {
    (res.status(), res.text().await.unwrap())
}

async fn a_new_identity_signs_up_and_then_signs_in_to_the_same_account(b: Backend) {
    let up = Upstream::start().await;
    let app = server(b, &up, |_| {}).await;
    let address = email();
    up.next(Next::person("subject-a", Some(&address), true));
    let mut jar = Jar::default();
    let authorize = begin(&app, &mut jar, "mode=api&return_to=%2Fdone").await;
    let q = query_of(&authorize);
    assert!(authorize.starts_with(&format!("{}/authorize?", up.0.base)));
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert_eq!(q["scope"], "openid email profile");
    assert!(q["state"].len() >= 32 && q["nonce"].len() >= 32);
    assert!(jar.0.contains_key("gatehouse-social"), "the binding cookie");
    let callback = consent(&app, &authorize).await;
    let res = jar.get(&app, &callback).await;
    let code = code_of_path(&res);
    assert!(!jar.0.contains_key("gatehouse-social"), "cleared after use");
    let (status, body) = exchange(&app, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let (claims_header, claims) = crate::helpers::jwt_parts(&token);
    assert_eq!(claims_header["alg"], "HS512");
    assert_eq!(claims["amr"], json!(["fed"]), "{claims}");
    let (status, me) = app.me(&token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], json!(address));
    assert_eq!(
        me["email_verified"],
        json!(true),
        "trusted and verified upstream"
    );
    let methods = me["sign_in_methods"].as_array().unwrap();
    assert_eq!(methods.len(), 1, "{me}");
    assert_eq!(methods[0]["method"], "social");
    assert_eq!(methods[0]["provider"], "test");
    assert_eq!(methods[0]["email"], json!(address));
    assert!(methods[0]["linked_at"].as_i64().unwrap() > 0);
    // Again, with another email upstream: the same account, by its subject.
    up.next(Next::person("subject-a", Some(&email()), true));
    let again = api_sign_in(&app).await;
    let (_, me_again) = app.me(&again).await;
    assert_eq!(me_again["id"], me["id"], "{me_again}");
    assert_eq!(me_again["email"], json!(address));
}

/// `code_of` for a return_to that is a path.
fn code_of_path(res: &reqwest::Response) -> String {
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = location(res);
    assert!(to.starts_with("/done?code="), "{to}");
    to.split_once("code=").unwrap().1.to_owned()
}

async fn the_browser_gets_a_session_cookie_and_goes_to_return_to(b: Backend) {
    let up = Upstream::start().await;
    let app = server(b, &up, |_| {}).await;
    up.next(Next::person("subject-b", Some(&email()), true));
    let mut jar = Jar::default();
    let page = jar.get(&app, &app.url("/ui/sign-in")).await;
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"href="/auth/social/test">Continue with Test IdP</a>"#),
        "{html}"
    );
    let to = format!("{APP_ORIGIN}/home");
    let authorize = begin(&app, &mut jar, &format!("return_to={}", urlencode(&to))).await;
    let callback = consent(&app, &authorize).await;
    let res = jar.get(&app, &callback).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), to);
    assert!(jar.0.contains_key("gatehouse-ui"), "{:?}", jar.0);
    let account = jar.get(&app, &app.url("/ui/account")).await;
    assert_eq!(account.status(), StatusCode::OK);
    let html = account.text().await.unwrap();
    assert!(
        html.contains("Sign-in providers") && html.contains("Test IdP"),
        "{html}"
    );
    // Link a second identity of the provider from the account page's form.
    let csrf = html
        .split(r#"action="/ui/account/social/link"><input type="hidden" name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    up.next(Next::person("subject-b2", None, true));
    let res = app
        .client
        .post(app.url("/ui/account/social/link"))
        .header("cookie", jar.header())
        .form(&[("csrf", csrf.as_str()), ("provider", "test")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    jar.take(&res);
    let callback = consent(&app, &location(&res)).await;
    let res = jar.get(&app, &callback).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        "/ui/account?done=provider-linked&linked=test"
    );
    let page = jar
        .get(&app, &app.url("/ui/account?done=provider-linked"))
        .await;
    let html = page.text().await.unwrap();
    assert!(html.contains("The provider is linked."), "{html}");
    let unlinks = html
        .matches(r#"action="/ui/account/social/unlink""#)
        .count();
    assert_eq!(unlinks, 2, "{html}");
    // A return_to that is not allowed is refused before the provider is asked.
    let res = jar
        .get(
            &app,
            &app.url("/auth/social/test?return_to=https%3A%2F%2Fevil.example%2F"),
        )
        .await;
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_return_to", "{body}");
}

async fn the_api_code_is_single_use_and_lives_sixty_seconds(b: Backend) {
    let up = Upstream::start().await;
    let app = server(b, &up, |_| {}).await;
    up.next(Next::person("subject-c", Some(&email()), true));
    let code = code_of(&api_callback(&app).await);
    // Sixty seconds from now the code is gone: the store will not give it up then.
    let now = gatehouse::domain::unix_now();
    let hash = gatehouse::crypto::digest_hex(&code);
    let later = app
        .app
        .store
        .social()
        .take_social_code(&hash, now + 61)
        .await;
    assert!(later.unwrap().is_none(), "a code outlives 60 seconds");
    let (status, body) = exchange(&app, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["refresh_token"].is_string(), "{body}");
    let (status, body) = exchange(&app, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_code", "{body}");
    let (status, body) = exchange(&app, "not-a-code").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_code", "{body}");
    let (status, body) = app.post_json("/auth/social/exchange", &json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

async fn a_replayed_state_is_refused(b: Backend) {
    let up = Upstream::start().await;
    let app = server(b, &up, |s| s.ui.enabled = false).await;
    up.next(Next::person("subject-d", Some(&email()), true));
    let mut jar = Jar::default();
    let authorize = begin(&app, &mut jar, "mode=api&return_to=%2Fdone").await;
    let binding = jar.0.clone();
    let callback = consent(&app, &authorize).await;
    let res = jar.get(&app, &callback).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // The same callback again, with the binding cookie it had.
    let mut replay = Jar(binding);
    let (status, body) = read(replay.get(&app, &callback).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_state", "{body}");
}

async fn a_state_from_another_browser_is_refused_and_left_to_its_own(b: Backend) {
    let up = Upstream::start().await;
    let app = server(b, &up, |_| {}).await;
    up.next(Next::person("subject-e", Some(&email()), true));
    let mut victim = Jar::default();
    let authorize = begin(&app, &mut victim, "mode=api&return_to=%2Fdone").await;
    let callback = consent(&app, &authorize).await;
    // Another browser (one that began a sign-in of its own, and one with no cookie).
    let mut other = Jar::default();
    begin(&app, &mut other, "mode=api&return_to=%2Fdone").await;
    let (status, html) = page(other.get(&app, &callback).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("started in another browser"), "{html}");
    let (status, _) = page(Jar::default().get(&app, &callback).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The browser that began it still finishes it.
    let res = victim.get(&app, &callback).await;
    let (status, body) = exchange(&app, &code_of_path(&res)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn id_tokens_that_fail_a_check_sign_in_no_one(b: Backend) {
    let up = Upstream::start().await;
    let app = server(b, &up, |s| s.ui.enabled = false).await;
    let now = gatehouse::domain::unix_now();
    let cases: Vec<(&str, Vec<(&'static str, Value)>)> = vec![
        ("wrong nonce", vec![("nonce", json!("another-nonce"))]),
        ("no nonce", vec![("nonce", Value::Null)]),
        ("another audience", vec![("aud", json!("another-client"))]),
        (
            "several audiences, no azp",
            vec![("aud", json!([CLIENT_ID, "another-client"]))],
        ),
        ("another party", vec![("azp", json!("another-client"))]),
        (
            "another issuer",
            vec![("iss", json!("https://evil.example"))],
        ),
        ("expired", vec![("exp", json!(now - 120))]),
        ("issued long ago", vec![("iat", json!(now - 3600))]),
        ("issued in the future", vec![("iat", json!(now + 3600))]),
    ];
    let address = email();
    for (what, overrides) in cases {
        let mut next = Next::person("subject-f", Some(&address), true);
        next.overrides = overrides;
        up.next(next);
        let (status, body) = read(api_callback(&app).await).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{what}: {body}");
        assert_eq!(body["error"], "invalid_id_token", "{what}: {body}");
    }
    // Signed with a key the provider does not publish.
    let mut next = Next::person("subject-f", Some(&address), true);
    next.unknown_key = true;
    up.next(next);
    let (status, body) = read(api_callback(&app).await).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"], "invalid_id_token", "{body}");
    // Signed by another key under the published key's id: the signature fails.
    let mut next = Next::person("subject-f", Some(&address), true);
    next.forged = true;
    up.next(next);
    let (status, body) = read(api_callback(&app).await).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"], "invalid_id_token", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("signature does not verify")),
        "{body}"
    );
    // None of them made the account: the address is still free for this identity.
    up.next(Next::person("subject-f", Some(&address), true));
    let token = api_sign_in(&app).await;
    let (_, me) = app.me(&token).await;
    assert_eq!(me["email"], json!(address), "{me}");
}

async fn an_unknown_key_is_fetched_once_and_then_refused(b: Backend) {
    let up = Upstream::start().await;
    let app = server(b, &up, |s| s.ui.enabled = false).await;
    up.next(Next::person("subject-g", Some(&email()), true));
    api_sign_in(&app).await;
    assert_eq!(up.jwks_fetches(), 1);
    api_sign_in(&app).await;
    assert_eq!(up.jwks_fetches(), 1, "the keys are cached");
    let mut next = Next::person("subject-g", None, true);
    next.unknown_key = true;
    up.next(next.clone());
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let (status, body) = read(api_callback(&app).await).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(
        up.jwks_fetches(),
        2,
        "an unknown kid fetches the keys again"
    );
    let (status, body) = read(api_callback(&app).await).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"], "invalid_id_token", "{body}");
    assert_eq!(up.jwks_fetches(), 2, "but not again within a few seconds");
}

async fn an_email_of_an_existing_account_signs_in_only_after_linking(b: Backend) {
    let up = Upstream::start().await;
    let app = server(b, &up, |s| s.ui.enabled = false).await;
    let address = email();
    let password_token = app.registered(&address, "password123").await;
    for verified in [false, true] {
        up.next(Next::person("subject-h", Some(&address), verified));
        let (status, body) = read(api_callback(&app).await).await;
        assert_eq!(status, StatusCode::CONFLICT, "verified {verified}: {body}");
        assert_eq!(body["error"], "link_required", "{body}");
    }
    let (_, me) = app.me(&password_token).await;
    assert_eq!(
        me["sign_in_methods"],
        json!([{"method": "password"}]),
        "{me}"
    );
    // The owner links it from their account, by proof: a sign-in at the provider.
    let res = app
        .client
        .post(app.url("/auth/social/test/link"))
        .bearer_auth(&password_token)
        .json(&json!({"return_to": format!("{APP_ORIGIN}/linked")}))
        .send()
        .await
        .unwrap();
    let mut jar = Jar::default();
    jar.take(&res);
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let callback = consent(&app, body["authorization_url"].as_str().unwrap()).await;
    let res = jar.get(&app, &callback).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("{APP_ORIGIN}/linked?linked=test"));
    // Now the identity signs in, to that account.
    let token = api_sign_in(&app).await;
    let (_, me_social) = app.me(&token).await;
    assert_eq!(me_social["id"], me["id"], "{me_social}");
    let (status, list) = read(app.get("/auth/social/identities", Some(&token)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["identities"][0]["provider"], "test", "{list}");
    assert_eq!(list["identities"][0]["name"], "Test IdP", "{list}");
    // Another account cannot link the same identity.
    let other = app.registered(&email(), "password123").await;
    let res = app
        .client
        .post(app.url("/auth/social/test/link"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    let mut jar = Jar::default();
    jar.take(&res);
    let (_, body) = read(res).await;
    let callback = consent(&app, body["authorization_url"].as_str().unwrap()).await;
    let (status, body) = read(jar.get(&app, &callback).await).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "identity_linked_elsewhere", "{body}");
}

async fn an_unverified_or_untrusted_email_makes_an_unverified_account(b: Backend) {
    let up = Upstream::start().await;
    let mut untrusted = up.provider("plain");
    untrusted.trust_email_verified = Some(false);
    let app = server(b, &up, |s| s.social.providers.push(untrusted)).await;
    let address = email();
    up.next(Next::person("subject-i", Some(&address), false));
    let token = api_sign_in(&app).await;
    let (_, me) = app.me(&token).await;
    assert_eq!(me["email"], json!(address));
    assert_eq!(me["email_verified"], json!(false), "{me}");
    // A provider not trusted for emails: verified upstream, unverified here.
    let address = email();
    up.next(Next::person("subject-j", Some(&address), true));
    let mut jar = Jar::default();
    let res = jar
        .get(
            &app,
            &app.url("/auth/social/plain?mode=api&return_to=%2Fdone"),
        )
        .await;
    let callback = consent(&app, &location(&res)).await;
    let res = jar.get(&app, &callback).await;
    let (_, body) = exchange(&app, &code_of_path(&res)).await;
    let (_, me) = app.me(body["token"].as_str().unwrap()).await;
    assert_eq!(me["email"], json!(address));
    assert_eq!(me["email_verified"], json!(false), "{me}");
}

async fn a_provider_disabled_mid_flow_signs_in_no_one(b: Backend) {
    let up = Upstream::start().await;
    let app = server(b, &up, |s| s.ui.enabled = false).await;
    // The same database behind a node whose configuration turned the provider off.
    let mut off = up.provider("test");
    off.enabled = false;
    let off_node = app
        .spawn_beside(|s| {
            s.social.providers = vec![off];
            s.ui.enabled = false;
        })
        .await;
    up.next(Next::person("subject-k", Some(&email()), true));
    let mut jar = Jar::default();
    let authorize = begin(&app, &mut jar, "mode=api&return_to=%2Fdone").await;
    let callback = consent(&app, &authorize).await;
    let path = callback.strip_prefix(&app.base).unwrap();
    let (status, body) = read(jar.get(&off_node, &off_node.url(path)).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "provider_disabled", "{body}");
    // A code issued before the provider was turned off is not exchanged after.
    let code = code_of(&api_callback(&app).await);
    let (status, body) = exchange(&off_node, &code).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "provider_disabled", "{body}");
    // Nor is a sign-in begun there.
    let (status, body) = read(off_node.get("/auth/social/test?mode=api", None).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "provider_disabled", "{body}");
}

async fn the_last_identity_cannot_be_unlinked(b: Backend) {
    let up = Upstream::start().await;
    let app = server(b, &up, |s| s.ui.enabled = false).await;
    up.next(Next::person("subject-l", None, true));
    let token = api_sign_in(&app).await;
    let (status, list) = read(app.get("/auth/social/identities", Some(&token)).await).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let id = list["identities"][0]["id"].as_str().unwrap().to_owned();
    let res = app
        .client
        .delete(app.url(&format!("/auth/social/identities/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "last_sign_in_method", "{body}");
    let res = app
        .client
        .delete(app.url("/auth/social/identities/no-such-id"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, list) = read(app.get("/auth/social/identities", Some(&token)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["identities"].as_array().unwrap().len(), 1, "{list}");
    // With a password as well, it can go.
    let address = email();
    let password_token = app.registered(&address, "password123").await;
    let mut jar = Jar::default();
    let res = app
        .client
        .post(app.url("/auth/social/test/link"))
        .bearer_auth(&password_token)
        .send()
        .await
        .unwrap();
    jar.take(&res);
    let (_, body) = read(res).await;
    up.next(Next::person("subject-l2", None, true));
    let callback = consent(&app, body["authorization_url"].as_str().unwrap()).await;
    assert_eq!(
        jar.get(&app, &callback).await.status(),
        StatusCode::SEE_OTHER
    );
    let (_, list) = read(
        app.get("/auth/social/identities", Some(&password_token))
            .await,
    )
    .await;
    let id = list["identities"][0]["id"].as_str().unwrap().to_owned();
    let res = app
        .client
        .delete(app.url(&format!("/auth/social/identities/{id}")))
        .bearer_auth(&password_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (_, me) = app.me(&password_token).await;
    assert_eq!(
        me["sign_in_methods"],
        json!([{"method": "password"}]),
        "{me}"
    );
}

async fn an_account_with_a_second_factor_owes_it_after_a_social_sign_in(b: Backend) {
    let up = Upstream::start().await;
    let app = server(b, &up, |_| {}).await;
    up.next(Next::person("subject-m", Some(&email()), true));
    let token = api_sign_in(&app).await;
    crate::mfa::enrolled(&app, &token).await;
    let code = code_of(&api_callback(&app).await);
    let (status, body) = exchange(&app, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["mfa_required"], json!(true), "{body}");
    assert!(body.get("token").is_none(), "{body}");
    // In the browser: the second-factor page, no session cookie.
    let mut jar = Jar::default();
    let authorize = begin(&app, &mut jar, "return_to=%2Fui%2Faccount").await;
    let callback = consent(&app, &authorize).await;
    let res = jar.get(&app, &callback).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        "/ui/second-factor?return_to=%2Fui%2Faccount"
    );
    assert!(jar.0.contains_key("gatehouse-ui-mfa"), "{:?}", jar.0);
    assert!(!jar.0.contains_key("gatehouse-ui"), "{:?}", jar.0);
}

async fn upstream_errors_end_on_a_clear_answer(b: Backend) {
    let up = Upstream::start().await;
    let app = server(b, &up, |_| {}).await;
    // access_denied: a page that says so, linking to the sign-in page, not the provider.
    let mut next = Next::person("subject-n", None, true);
    next.deny = true;
    up.next(next);
    let mut jar = Jar::default();
    let authorize = begin(&app, &mut jar, "").await;
    let callback = consent(&app, &authorize).await;
    let (status, html) = page(jar.get(&app, &callback).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("The provider did not sign you in."), "{html}");
    assert!(
        html.contains(r#"href="/ui/sign-in""#) && !html.contains("/auth/social"),
        "{html}"
    );
    // The token endpoint down: 502.
    up.next(Next::person("subject-n", None, true));
    *up.0.down.lock().unwrap() = true;
    let authorize = begin(&app, &mut jar, "").await;
    let callback = consent(&app, &authorize).await;
    let (status, html) = page(jar.get(&app, &callback).await).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(html.contains("cannot be reached"), "{html}");
    // A callback with no state at all, and an unknown provider.
    let (status, _) = page(jar.get(&app, &app.url("/auth/social/test/callback")).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = read(app.get("/auth/social/nope?mode=api", None).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "unknown_provider", "{body}");
    // A provider that cannot be reached at all.
    let mut gone = up.provider("gone");
    gone.issuer = Some("http://127.0.0.1:9".into());
    let app = TestApp::spawn_with(b, |s| s.social.providers = vec![gone]).await;
    let (status, body) = read(app.get("/auth/social/gone?mode=api", None).await).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["error"], "provider_unavailable", "{body}");
}

async fn github_signs_in_by_user_id_with_the_primary_verified_email(b: Backend) {
    let up = Upstream::start().await;
    let github = SocialProviderSettings {
        id: "github".into(),
        kind: ProviderKind::Github,
        issuer: None,
        trust_email_verified: None,
        name: None,
        base_url: Some(up.0.base.clone()),
        ..up.provider("github")
    };
    let app = TestApp::spawn_with(b, |s| s.social.providers = vec![github]).await;
    let me = github_sign_in(&app, &up, "1").await;
    assert_eq!(
        me["email"], "octo-1@example.com",
        "the primary, not the other: {me}"
    );
    assert_eq!(me["email_verified"], json!(true), "{me}");
    assert_eq!(me["sign_in_methods"][0]["provider"], "github", "{me}");
    // A primary address GitHub has not verified counts for nothing.
    let me = github_sign_in(&app, &up, "2").await;
    assert_eq!(me["email"], Value::Null, "{me}");
    assert_eq!(me["email_verified"], json!(false), "{me}");
    let again = github_sign_in(&app, &up, "1").await;
    assert_eq!(again["id"], github_sign_in(&app, &up, "1").await["id"]);
}

/// A GitHub sign-in of person `subject` in API mode: `/auth/me` of its account.
async fn github_sign_in(app: &TestApp, up: &Upstream, subject: &str) -> Value {
    up.next(Next::person(subject, None, false));
    let mut jar = Jar::default();
    let res = jar
        .get(
            app,
            &app.url("/auth/social/github?mode=api&return_to=%2Fdone"),
        )
        .await;
    let authorize = location(&res);
    assert!(authorize.starts_with(&format!("{}/login/oauth/authorize?", up.0.base)));
    assert_eq!(query_of(&authorize)["scope"], "read:user user:email");
    let callback = consent(app, &authorize).await;
    let res = jar.get(app, &callback).await;
    let (status, body) = exchange(app, &code_of_path(&res)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.me(body["token"].as_str().unwrap()).await.1
}

/// Starts a link of provider `test` with the session `token`, consents and comes back
/// through the callback: its answer.
async fn linked(app: &TestApp, token: &str) -> reqwest::Response {
    let res = app
        .client
        .post(app.url("/auth/social/test/link"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let mut jar = Jar::default();
    jar.take(&res);
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let callback = consent(app, body["authorization_url"].as_str().unwrap()).await;
    jar.get(app, &callback).await
}

async fn a_reset_removes_a_provider_linked_since_the_address_was_proven(b: Backend) {
    use crate::mail::{RESET_PAGE, forgot, links, token_of, with_mail};
    let smtp = crate::smtp::SmtpServer::start().await;
    let up = Upstream::start().await;
    let app = server(b, &up, with_mail(&smtp)).await;
    let address = email();
    let token = app.registered(&address, "password123").await;
    // Someone holding this session links their own provider account…
    up.next(Next::person("intruder", None, true));
    assert_eq!(linked(&app, &token).await.status(), StatusCode::SEE_OTHER);
    let (_, me) = app.me(&token).await;
    assert_eq!(me["sign_in_methods"][1]["method"], "social", "{me}");
    // …and the owner takes the account back through its mailbox.
    forgot(&app, &address).await;
    let reset = token_of(&links(&smtp, RESET_PAGE, 1).await[0]);
    let (status, body) = app
        .post_json(
            "/auth/password/reset",
            &json!({"token": reset, "password": "new-password-2"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, me) = app.me(body["token"].as_str().unwrap()).await;
    assert_eq!(
        me["sign_in_methods"],
        json!([{"method": "password"}]),
        "{me}"
    );
    let (status, body) = read(api_callback(&app).await).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the intruder's identity is a stranger again: {body}"
    );
}

async fn apple_posts_its_answer_and_takes_a_client_secret_signed_with_the_team_key(b: Backend) {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let up = Upstream::start().await;
    let key = p256::SecretKey::from_slice(&gatehouse::crypto::random_bytes::<32>()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p8 = dir.path().join("AuthKey_KEY123.p8");
    std::fs::write(&p8, key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    *up.0.apple.lock().unwrap() = Some((
        "TEAM123".into(),
        "KEY123".into(),
        p256::ecdsa::VerifyingKey::from(key.public_key()),
    ));
    let apple = SocialProviderSettings {
        id: "apple".into(),
        kind: ProviderKind::Apple,
        name: None,
        client_secret: None,
        issuer: None,
        trust_email_verified: None,
        base_url: Some(up.0.base.clone()),
        team_id: Some("TEAM123".into()),
        key_id: Some("KEY123".into()),
        private_key_file: Some(p8),
        ..up.provider("apple")
    };
    let app = TestApp::spawn_with(b, |s| s.social.providers = vec![apple]).await;
    let address = email();
    let mut next = Next::person("001234.apple-subject", Some(&address), false);
    // Apple writes email_verified as a string.
    next.overrides = vec![("email_verified", json!("true"))];
    up.next(next);
    let mut jar = Jar::default();
    let res = jar
        .get(
            &app,
            &app.url("/auth/social/apple?mode=api&return_to=%2Fdone"),
        )
        .await;
    let authorize = location(&res);
    let q = query_of(&authorize);
    assert_eq!(q["response_mode"], "form_post");
    assert_eq!(q["scope"], "openid email name");
    // The browser posts Apple's form to the callback, cross-site.
    let (_, form) = read(app.client.get(&authorize).send().await.unwrap()).await;
    let action = on(&app, form["action"].as_str().unwrap());
    let fields: HashMap<String, String> = serde_json::from_value(form["fields"].clone()).unwrap();
    let res = app
        .client
        .post(action.trim_end_matches('?'))
        .header("cookie", jar.header())
        .form(&fields)
        .send()
        .await
        .unwrap();
    let (status, body) = exchange(&app, &code_of_path(&res)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, me) = app.me(body["token"].as_str().unwrap()).await;
    // The ID token's email, not the one in Apple's `user` field.
    assert_eq!(me["email"], json!(address), "{me}");
    assert_eq!(me["email_verified"], json!(true), "{me}");
    assert_eq!(me["sign_in_methods"][0]["provider"], "apple", "{me}");
    assert_eq!(
        me["sign_in_methods"][0]["display_name"], "Ada Lovelace",
        "the name of the first sign-in's `user`: {me}"
    );
    // Apple sends `user` on the first sign-in only: the name is kept.
    let res = apple_form_post(&app, |f| {
        f.remove("user");
    })
    .await;
    let (status, body) = exchange(&app, &code_of_path(&res)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let (_, again) = app.me(&token).await;
    assert_eq!(again["id"], me["id"], "{again}");
    assert_eq!(
        again["sign_in_methods"][0]["display_name"], "Ada Lovelace",
        "{again}"
    );
    let res = app
        .client
        .get(app.url("/auth/social/identities"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, list) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        list["identities"][0]["display_name"], "Ada Lovelace",
        "{list}"
    );
    assert_eq!(list["identities"][0]["name"], "Apple", "{list}");
    // A different name given later replaces the kept one.
    let res = apple_form_post(&app, |f| {
        f.insert(
            "user".into(),
            r#"{"name":{"firstName":"Ada","lastName":"King"}}"#.into(),
        );
    })
    .await;
    let (status, body) = exchange(&app, &code_of_path(&res)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, renamed) = app.me(body["token"].as_str().unwrap()).await;
    assert_eq!(renamed["id"], me["id"], "{renamed}");
    assert_eq!(
        renamed["sign_in_methods"][0]["display_name"], "Ada King",
        "{renamed}"
    );
    // A client secret signed by another key is refused by Apple: no sign-in.
    let other = p256::SecretKey::from_slice(&gatehouse::crypto::random_bytes::<32>()).unwrap();
    *up.0.apple.lock().unwrap() = Some((
        "TEAM123".into(),
        "KEY123".into(),
        p256::ecdsa::VerifyingKey::from(other.public_key()),
    ));
    let res = apple_form_post(&app, |_| {}).await;
    let (status, html) = page(res).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{html}");
    assert!(html.contains("refused to finish the sign-in"), "{html}");
}

/// An API sign-in with Apple up to its callback: the form Apple's page posts, its fields
/// changed by `edit`, posted cross-site to the callback with the browser's cookie.
async fn apple_form_post(
    app: &TestApp,
    edit: impl FnOnce(&mut HashMap<String, String>),
) -> reqwest::Response {
    let mut jar = Jar::default();
    let res = jar
        .get(
            app,
            &app.url("/auth/social/apple?mode=api&return_to=%2Fdone"),
        )
        .await;
    let (_, form) = read(app.client.get(location(&res)).send().await.unwrap()).await;
    let mut fields: HashMap<String, String> =
        serde_json::from_value(form["fields"].clone()).unwrap();
    edit(&mut fields);
    app.client
        .post(on(app, form["action"].as_str().unwrap()).trim_end_matches('?'))
        .header("cookie", jar.header())
        .form(&fields)
        .send()
        .await
        .unwrap()
}

async fn microsoft_multi_tenant_tokens_carry_their_tenant_in_the_issuer(b: Backend) {
    let up = Upstream::start().await;
    let microsoft = SocialProviderSettings {
        id: "microsoft".into(),
        kind: ProviderKind::Microsoft,
        issuer: None,
        trust_email_verified: None,
        base_url: Some(up.0.base.clone()),
        ..up.provider("microsoft")
    };
    let app = TestApp::spawn_with(b, |s| {
        s.social.providers = vec![microsoft];
        s.ui.enabled = false;
    })
    .await;
    let sign_in = |iss: String, tid: &str| {
        let mut next = Next::person("ms-subject", Some("someone@contoso.example"), true);
        next.overrides = vec![("iss", json!(iss)), ("tid", json!(tid))];
        up.next(next);
    };
    let callback = async |app: &TestApp| {
        let mut jar = Jar::default();
        let res = jar
            .get(
                app,
                &app.url("/auth/social/microsoft?mode=api&return_to=%2Fdone"),
            )
            .await;
        let callback = consent(app, &location(&res)).await;
        jar.get(app, &callback).await
    };
    let base = up.0.base.clone();
    // Another tenant's issuer than the token's tid: refused.
    sign_in(format!("{base}/tenant-b/v2.0"), "tenant-a");
    let (status, body) = read(callback(&app).await).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"], "invalid_id_token", "{body}");
    // The template filled with the token's own tid.
    sign_in(format!("{base}/tenant-a/v2.0"), "tenant-a");
    let res = callback(&app).await;
    let (status, body) = exchange(&app, &code_of_path(&res)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, me) = app.me(body["token"].as_str().unwrap()).await;
    assert_eq!(
        me["email_verified"],
        json!(false),
        "Microsoft is not trusted for it: {me}"
    );
}

/// An ID token without `email` (oidc-provider's default for the code flow): the email
/// and `email_verified` are read from UserInfo with the exchange's access token, under
/// the same trust; a UserInfo answer of another `sub` signs no one in.
async fn an_email_only_at_userinfo_is_taken_from_there_for_the_same_subject(b: Backend) {
    let up = Upstream::start().await;
    let app = server(b, &up, |s| s.ui.enabled = false).await;
    // With the email in the ID token, UserInfo is not asked.
    up.next(Next::person("subject-id-token", Some(&email()), true));
    api_sign_in(&app).await;
    assert_eq!(*up.0.userinfo_calls.lock().unwrap(), 0);

    let address = email();
    let mut next = Next::person("subject-u", Some(&address), true);
    next.email_at_userinfo = true;
    up.next(next.clone());
    let token = api_sign_in(&app).await;
    assert_eq!(*up.0.userinfo_calls.lock().unwrap(), 1);
    let (status, me) = app.me(&token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], json!(address), "{me}");
    assert_eq!(
        me["email_verified"],
        json!(true),
        "trusted, and verified at UserInfo"
    );
    assert_eq!(me["sign_in_methods"][0]["email"], json!(address), "{me}");

    // UserInfo of another subject: refused, and no account takes its address.
    let stolen = email();
    let mut next = Next::person("subject-v", Some(&stolen), true);
    next.email_at_userinfo = true;
    next.userinfo_subject = Some("subject-u".into());
    up.next(next);
    let (status, body) = read(api_callback(&app).await).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"], "invalid_userinfo", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("subject is not the ID token's")),
        "{body}"
    );
    let mut next = Next::person("subject-w", Some(&stolen), true);
    next.email_at_userinfo = true;
    up.next(next);
    let token = api_sign_in(&app).await;
    let (_, me) = app.me(&token).await;
    assert_eq!(
        me["email"],
        json!(stolen),
        "the address was still free: {me}"
    );

    // An untrusted provider: the address is kept unverified.
    let untrusted = server(b, &up, |s| {
        s.ui.enabled = false;
        s.social.providers[0].trust_email_verified = Some(false);
    })
    .await;
    let address = email();
    let mut next = Next::person("subject-x", Some(&address), true);
    next.email_at_userinfo = true;
    up.next(next);
    let token = api_sign_in(&untrusted).await;
    let (_, me) = untrusted.me(&token).await;
    assert_eq!(me["email"], json!(address), "{me}");
    assert_eq!(me["email_verified"], json!(false), "{me}");
}
