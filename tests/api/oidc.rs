//! The OpenID Connect provider: clients registered with `gatehouse clients`, and the
//! provider's endpoints, on every backend.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use gatehouse::crypto::signing::{Algorithm, KeyPair};
use gatehouse::domain::unix_now;
use gatehouse::oidc::Client;
use gatehouse::oidc::clients::{Registration, needs_secret, new_secret};
use gatehouse::oidc::provider::{CodeRequest, Provider};
use gatehouse::signing_keys;
use gatehouse::store::StoredCode;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::admin::cli;
use crate::helpers::{Backend, TestApp, jwt_parts, read};

crate::on_every_backend!(
    clients_are_added_listed_shown_updated_rotated_and_removed,
    discovery_names_the_issuer_and_every_endpoint_on_it,
    client_credentials_tokens_introspect_until_the_client_is_removed,
    a_code_is_exchanged_once_with_pkce_for_tokens_that_verify,
    code_exchanges_are_refused_with_the_specs_error_codes,
    a_code_is_spent_in_the_write_that_starts_its_session,
    refresh_tokens_rotate_and_stay_with_their_client_and_kind,
    revocation_ends_the_session_and_every_token_of_it,
    private_key_jwt_assertions_verify_once,
    clients_of_the_configuration_are_written_at_start_and_removed_when_gone,
    a_client_changed_by_another_process_counts_at_its_next_request,
    an_introspected_token_is_inactive_once_its_key_retires,
);

/// The issuer the tests configure: `http.public_url` with a trailing slash, which the
/// issuer must not keep.
const PUBLIC_URL: &str = "https://id.example.test/";
pub(crate) const ISSUER: &str = "https://id.example.test";

async fn spawn(b: Backend) -> TestApp {
    TestApp::spawn_with(b, |s| {
        s.oidc.enabled = true;
        s.http.public_url = Some(PUBLIC_URL.into());
    })
    .await
}

fn provider(app: &TestApp) -> &Arc<Provider> {
    app.app.oidc.as_ref().expect("oidc is enabled")
}

/// Registers a client straight in the store; its secret, if it has one.
pub(crate) async fn register(app: &TestApp, r: Registration) -> (Client, Option<String>) {
    let mut client = r.check(gatehouse::crypto::random_id(), 1).unwrap();
    let mut secret = None;
    if needs_secret(&client) {
        let (s, hash) = new_secret();
        client.secret_hash = Some(hash);
        secret = Some(s.expose().clone());
    }
    app.app.store.oidc().add_client(&client).await.unwrap();
    (client, secret)
}

pub(crate) fn web_client() -> Registration {
    Registration {
        name: "Wiki".into(),
        redirect_uris: vec!["https://wiki.example/cb".into()],
        ..Registration::default()
    }
}

fn machine_client() -> Registration {
    Registration {
        name: "Cron".into(),
        grants: vec!["client_credentials".into()],
        ..Registration::default()
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut f = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        f.append_pair(k, v);
    }
    f.finish()
}

pub(crate) fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| form(&[("x", s)])[2..].to_owned();
    let pair = format!("{}:{}", enc(id), enc(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// POSTs a form to `path`, with `authorization` if given.
pub(crate) async fn post_form(
    app: &TestApp,
    path: &str,
    authorization: Option<&str>,
    pairs: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    read(req.send().await.unwrap()).await
}

fn oauth_error(code: &str) -> impl Fn(&Value) -> bool + '_ {
    move |body: &Value| body["error"] == code && body["error_description"].is_string()
}

async fn introspect(app: &TestApp, auth: &str, token: &str) -> Value {
    let (status, body) = post_form(app, "/oauth/introspect", Some(auth), &[("token", token)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// An account registered over the API: its id.
async fn account(app: &TestApp) -> (String, String) {
    let email = crate::helpers::email();
    let (status, body) = app.register(&email, "password123").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap();
    (
        jwt_parts(token).1["sub"].as_str().unwrap().to_owned(),
        email,
    )
}

pub(crate) const VERIFIER: &str = "a-pkce-verifier-of-enough-length-0123456789abcdefghijk";

pub(crate) fn challenge(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

/// A code for `client`, issued as `/authorize` will issue it.
pub(crate) async fn code(
    app: &TestApp,
    account: &str,
    client: &Client,
    scopes: &[&str],
    challenge: Option<&str>,
) -> String {
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    let id = gatehouse::domain::AccountId(account.to_owned());
    provider(app)
        .issue_code(&CodeRequest {
            account: &id,
            auth_time: gatehouse::domain::unix_now() - 5,
            amr: "pwd",
            client,
            redirect_uri: "https://wiki.example/cb",
            scopes: &scopes,
            nonce: Some("n-0S6_WzA2Mj"),
            challenge,
        })
        .await
        .unwrap()
}

pub(crate) async fn exchange(
    app: &TestApp,
    auth: &str,
    code: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> (StatusCode, Value) {
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
    ];
    if let Some(v) = verifier {
        pairs.push(("code_verifier", v));
    }
    post_form(app, "/oauth/token", Some(auth), &pairs).await
}

/// Verifies a JWT with the key of the published JWKS its `kid` names.
pub(crate) async fn verify_with_jwks(app: &TestApp, token: &str, audience: &str) -> Value {
    let (header, _) = jwt_parts(token);
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
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[audience]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap_or_else(|e| panic!("{e}: {token}"))
        .claims
}

async fn clients_are_added_listed_shown_updated_rotated_and_removed(b: Backend) {
    let app = TestApp::spawn(b).await;
    let run = cli(
        &app,
        &[
            "clients",
            "add",
            "--name",
            "Wiki",
            "--redirect-uri",
            "https://wiki.example/cb",
            "--redirect-uri",
            "http://127.0.0.1/cb",
            "--post-logout-redirect-uri",
            "https://wiki.example/bye",
            "--json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let wiki = run.json();
    let id = wiki["client_id"].as_str().unwrap().to_owned();
    let secret = wiki["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(secret.len(), 43);
    assert_eq!(wiki["client_type"], "confidential");
    assert_eq!(wiki["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(
        wiki["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(
        wiki["redirect_uris"],
        json!(["https://wiki.example/cb", "http://127.0.0.1/cb"])
    );
    assert_eq!(
        wiki["post_logout_redirect_uris"],
        json!(["https://wiki.example/bye"])
    );
    assert_eq!(wiki["has_secret"], true);

    // Stored only as a hash: never shown again.
    let run = cli(&app, &["clients", "show", &id, "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains(&secret), "{}", run.stdout);
    assert_eq!(run.json()["client_name"], "Wiki");
    let stored = app.app.store.oidc().client(&id).await.unwrap().unwrap();
    assert!(stored.secret_is(&secret));
    assert_ne!(stored.secret_hash.as_deref(), Some(secret.as_str()));

    // A public first-party app: no secret; a machine client.
    let run = cli(
        &app,
        &[
            "clients",
            "add",
            "--name",
            "Mobile",
            "--public",
            "--first-party",
            "--redirect-uri",
            "https://app.example/cb",
            "--json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mobile = run.json();
    assert_eq!(mobile["client_type"], "public");
    assert_eq!(mobile["first_party"], true);
    assert_eq!(mobile["token_endpoint_auth_method"], "none");
    assert_eq!(mobile.get("client_secret"), None);
    let run = cli(
        &app,
        &[
            "clients",
            "add",
            "--name",
            "Cron",
            "--grant",
            "client_credentials",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("client_secret: "), "{}", run.stdout);

    let run = cli(&app, &["clients", "list", "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let names: Vec<Value> = run
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_name"].clone())
        .collect();
    assert_eq!(names, [json!("Cron"), json!("Mobile"), json!("Wiki")]);

    // Bad registrations name the field, exit 2, and store nothing.
    for (args, says) in [
        (
            vec!["--redirect-uri", "http://wiki.example/cb"],
            "redirect_uri http://wiki.example/cb: only https",
        ),
        (
            vec!["--redirect-uri", "https://*.wiki.example/cb"],
            "wildcards",
        ),
        (
            vec!["--redirect-uri", "https://wiki.example/cb#x"],
            "fragment",
        ),
        (
            vec!["--redirect-uri", "https://Wiki.example/cb"],
            "write it as https://wiki.example/cb",
        ),
        (vec!["--grant", "password"], "grant password"),
        (
            vec!["--public", "--grant", "client_credentials"],
            "public client cannot",
        ),
        (vec![], "needs a redirect URI"),
    ] {
        let mut all = vec!["clients", "add", "--name", "Bad"];
        all.extend(args);
        let run = cli(&app, &all).await;
        assert_eq!(run.code, 2, "{all:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{all:?}: {}", run.stderr);
    }
    assert_eq!(app.app.store.oidc().clients().await.unwrap().len(), 3);

    // Update replaces what is given, and checks it as add does.
    let run = cli(
        &app,
        &[
            "clients",
            "update",
            &id,
            "--redirect-uri",
            "https://wiki.example/new",
            "--json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.json()["redirect_uris"],
        json!(["https://wiki.example/new"])
    );
    assert_eq!(run.json()["client_name"], "Wiki");
    let run = cli(
        &app,
        &[
            "clients",
            "update",
            &id,
            "--redirect-uri",
            "http://evil.example/",
        ],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let stored = app.app.store.oidc().client(&id).await.unwrap().unwrap();
    assert_eq!(stored.redirect_uris, ["https://wiki.example/new"]);
    assert!(stored.secret_is(&secret), "an update keeps the secret");

    // A new secret: the old one stops working.
    let run = cli(&app, &["clients", "rotate-secret", &id, "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rotated = run.json()["client_secret"].as_str().unwrap().to_owned();
    let stored = app.app.store.oidc().client(&id).await.unwrap().unwrap();
    assert!(stored.secret_is(&rotated));
    assert!(!stored.secret_is(&secret));
    let public_id = mobile["client_id"].as_str().unwrap();
    let run = cli(&app, &["clients", "rotate-secret", public_id]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("has no secret"), "{}", run.stderr);

    let run = cli(&app, &["clients", "remove", &id, "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json(), json!({"removed": id}));
    for args in [
        &["clients", "show", &id, "--json"][..],
        &["clients", "remove", &id, "--json"],
        &["clients", "rotate-secret", &id, "--json"],
        &["clients", "update", &id, "--name", "X", "--json"],
    ] {
        let run = cli(&app, args).await;
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert_eq!(
            run.json(),
            json!({"error": "not_found", "client_id": id}),
            "{args:?}"
        );
    }
}

async fn discovery_names_the_issuer_and_every_endpoint_on_it(b: Backend) {
    let app = spawn(b).await;
    let (status, doc) = read(app.get("/.well-known/openid-configuration", None).await).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["issuer"], ISSUER);
    for (key, path) in [
        ("authorization_endpoint", "/oauth/authorize"),
        ("token_endpoint", "/oauth/token"),
        ("userinfo_endpoint", "/oauth/userinfo"),
        ("jwks_uri", "/.well-known/jwks.json"),
        ("revocation_endpoint", "/oauth/revoke"),
        ("introspection_endpoint", "/oauth/introspect"),
    ] {
        assert_eq!(doc[key], format!("{ISSUER}{path}"), "{key}");
    }
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        doc["grant_types_supported"],
        json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256", "ES256", "EdDSA"])
    );
    assert_eq!(
        doc["scopes_supported"],
        json!(["openid", "profile", "email", "offline_access"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none"
        ])
    );
    let (status, rfc8414) = read(
        app.get("/.well-known/oauth-authorization-server", None)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rfc8414}");
    assert_eq!(rfc8414, doc);

    // The JWKS publishes the provider's RS256, ES256 and EdDSA keys, though account
    // tokens are HS512 here.
    let (status, set) = read(app.get("/.well-known/jwks.json", None).await).await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let mut algs: Vec<&str> = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    algs.sort();
    assert_eq!(algs, ["ES256", "EdDSA", "RS256"]);

    let off = TestApp::spawn(b).await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let (status, body) = read(off.get(path, None).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(
            body["message"],
            "The OpenID Connect provider is off (oidc.enabled)."
        );
    }
}

async fn client_credentials_tokens_introspect_until_the_client_is_removed(b: Backend) {
    let app = spawn(b).await;
    let (cron, secret) = register(&app, machine_client()).await;
    let secret = secret.unwrap();
    let auth = basic(&cron.id, &secret);
    let (status, body) = post_form(
        &app,
        "/oauth/token",
        Some(&auth),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body.get("refresh_token"), None);
    assert_eq!(body.get("id_token"), None);
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (header, claims) = jwt_parts(&token);
    assert_eq!(header["typ"], "at+jwt", "RFC 9068");
    assert_eq!(claims["sub"], cron.id.as_str());
    assert_eq!(claims["client_id"], cron.id.as_str());
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims.get("sid"), None, "no person, no session");
    verify_with_jwks(&app, &token, &cron.id).await;

    let active = introspect(&app, &auth, &token).await;
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["client_id"], cron.id.as_str());
    assert_eq!(active["token_type"], "Bearer");
    assert_eq!(active["iss"], ISSUER);

    // client_secret_post is not this client's method; a wrong secret; no credentials.
    let post = [
        ("grant_type", "client_credentials"),
        ("client_id", cron.id.as_str()),
        ("client_secret", secret.as_str()),
    ];
    for (auth, pairs) in [
        (None, &post[..]),
        (Some(basic(&cron.id, "wrong")), &post[..1]),
        (Some(basic("no-such-client", &secret)), &post[..1]),
        (None, &post[..1]),
    ] {
        let (status, body) = post_form(&app, "/oauth/token", auth.as_deref(), pairs).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(oauth_error("invalid_client")(&body), "{body}");
    }
    let (status, body) = post_form(&app, "/oauth/introspect", None, &[("token", &token)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(oauth_error("invalid_client")(&body), "{body}");

    // Grants that are not ours, or not this client's; malformed requests.
    let (status, body) = post_form(
        &app,
        "/oauth/token",
        Some(&auth),
        &[("grant_type", "password")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(oauth_error("unsupported_grant_type")(&body), "{body}");
    let (status, body) = post_form(
        &app,
        "/oauth/token",
        Some(&auth),
        &[
            ("grant_type", "client_credentials"),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(oauth_error("invalid_request")(&body), "{body}");
    let (wiki, wiki_secret) = register(&app, web_client()).await;
    let wiki_auth = basic(&wiki.id, &wiki_secret.unwrap());
    let (status, body) = post_form(
        &app,
        "/oauth/token",
        Some(&wiki_auth),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(oauth_error("unauthorized_client")(&body), "{body}");
    let res = app
        .client
        .post(app.url("/oauth/token"))
        .header("authorization", &auth)
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(oauth_error("invalid_request")(&body), "{body}");

    // Not ours, tampered, or an ID-token-shaped JWT: inactive.
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    for other in ["", "not-a-token", tampered.as_str()] {
        assert_eq!(
            introspect(&app, &auth, other).await,
            json!({"active": false}),
            "{other}"
        );
    }
    // Another client may introspect it (a resource server); once its client is
    // removed, it is inactive at once.
    assert_eq!(introspect(&app, &wiki_auth, &token).await["active"], true);
    assert!(app.app.store.oidc().remove_client(&cron.id).await.unwrap());
    assert_eq!(
        introspect(&app, &wiki_auth, &token).await,
        json!({"active": false})
    );
}

async fn a_code_is_exchanged_once_with_pkce_for_tokens_that_verify(b: Backend) {
    let app = spawn(b).await;
    let (wiki, secret) = register(&app, web_client()).await;
    let auth = basic(&wiki.id, &secret.unwrap());
    let (account, email) = account(&app).await;
    let first = code(
        &app,
        &account,
        &wiki,
        &["openid", "email", "offline_access"],
        Some(&challenge(VERIFIER)),
    )
    .await;
    let (status, body) = exchange(
        &app,
        &auth,
        &first,
        "https://wiki.example/cb",
        Some(VERIFIER),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "openid email offline_access");
    assert!(body["refresh_token"].is_string(), "offline_access: {body}");
    let id_token = body["id_token"].as_str().unwrap();
    let (header, _) = jwt_parts(id_token);
    assert_eq!(header["alg"], "RS256", "the default");
    let claims = verify_with_jwks(&app, id_token, &wiki.id).await;
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], account.as_str());
    assert_eq!(claims["aud"], wiki.id.as_str());
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["email"], email.as_str());
    assert_eq!(claims["email_verified"], false);
    assert_eq!(
        claims["amr"],
        serde_json::json!(["pwd"]),
        "the sign-in's factors"
    );
    assert_eq!(claims["acr"], "aal1");
    assert!(
        claims["auth_time"].is_i64() && claims["sid"].is_string(),
        "{claims}"
    );

    let access = body["access_token"].as_str().unwrap();
    let active = introspect(&app, &auth, access).await;
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["sub"], account.as_str());
    assert_eq!(active["scope"], "openid email offline_access");
    assert_eq!(active["sid"], claims["sid"]);

    let (status, info) = read(app.get("/oauth/userinfo", Some(access)).await).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(
        info,
        json!({"sub": account, "email": email, "email_verified": false})
    );
    let res = app
        .client
        .post(app.url("/oauth/userinfo"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("access_token", access)]))
        .send()
        .await
        .unwrap();
    let (status, by_post) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{by_post}");
    assert_eq!(by_post, info);

    // Neither token is an account token.
    for token in [access, id_token] {
        let (status, body) = app.me(token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["message"], "A valid bearer token is required.");
    }
    // An ID token is not an access token.
    assert_eq!(
        introspect(&app, &auth, id_token).await,
        json!({"active": false})
    );
    let (status, body) = read(app.get("/oauth/userinfo", Some(id_token)).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(oauth_error("invalid_token")(&body), "{body}");

    // The code again: refused, and the session its tokens belong to ends (RFC 6749
    // §4.1.2), so the access token issued from it is inactive at once.
    let (status, body) = exchange(
        &app,
        &auth,
        &first,
        "https://wiki.example/cb",
        Some(VERIFIER),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(oauth_error("invalid_grant")(&body), "{body}");
    assert_eq!(
        introspect(&app, &auth, access).await,
        json!({"active": false})
    );
    let refresh = body_refresh(&app, &auth, &first).await;
    assert!(refresh.is_none());

    // A client registered for ES256 ID tokens gets them; without openid, no ID token.
    let (es, es_secret) = register(
        &app,
        Registration {
            id_token_alg: Some("ES256".into()),
            ..web_client()
        },
    )
    .await;
    let es_auth = basic(&es.id, &es_secret.unwrap());
    let c = code(&app, &account, &es, &["openid"], Some(&challenge(VERIFIER))).await;
    let (status, body) = exchange(
        &app,
        &es_auth,
        &c,
        "https://wiki.example/cb",
        Some(VERIFIER),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id_token = body["id_token"].as_str().unwrap();
    assert_eq!(jwt_parts(id_token).0["alg"], "ES256");
    let claims = verify_with_jwks(&app, id_token, &es.id).await;
    assert_eq!(claims.get("email"), None, "no email scope");
    assert_eq!(body.get("refresh_token"), None, "no offline_access");
    let c = code(&app, &account, &es, &["email"], Some(&challenge(VERIFIER))).await;
    let (status, body) = exchange(
        &app,
        &es_auth,
        &c,
        "https://wiki.example/cb",
        Some(VERIFIER),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.get("id_token"), None, "no openid scope");
    let (status, info) = read(
        app.get("/oauth/userinfo", body["access_token"].as_str())
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{info}");
    assert!(oauth_error("insufficient_scope")(&info), "{info}");
}

/// Whether a replayed code yielded a refresh token anyway (it must not).
async fn body_refresh(app: &TestApp, auth: &str, code: &str) -> Option<String> {
    let (_, body) = exchange(app, auth, code, "https://wiki.example/cb", Some(VERIFIER)).await;
    body["refresh_token"].as_str().map(str::to_owned)
}

async fn code_exchanges_are_refused_with_the_specs_error_codes(b: Backend) {
    let app = spawn(b).await;
    let (wiki, secret) = register(&app, web_client()).await;
    let auth = basic(&wiki.id, &secret.unwrap());
    let (other, other_secret) = register(&app, web_client()).await;
    let other_auth = basic(&other.id, &other_secret.unwrap());
    let (account, _) = account(&app).await;
    let s256 = challenge(VERIFIER);
    let cb = "https://wiki.example/cb";

    type Case<'a> = (&'a str, Option<&'a str>, &'a str, Option<&'a str>, &'a str);
    let cases: [Case; 7] = [
        (
            "a redirect URI with an extra slash",
            Some(&s256),
            "https://wiki.example/cb/",
            Some(VERIFIER),
            "invalid_grant",
        ),
        (
            "a redirect URI differing in case",
            Some(&s256),
            "https://wiki.example/CB",
            Some(VERIFIER),
            "invalid_grant",
        ),
        ("no verifier", Some(&s256), cb, None, "invalid_grant"),
        (
            "a wrong verifier",
            Some(&s256),
            cb,
            Some("another-pkce-verifier-of-enough-length-0123456789abc"),
            "invalid_grant",
        ),
        (
            "the challenge as the verifier (plain)",
            Some(&s256),
            cb,
            Some(&s256),
            "invalid_grant",
        ),
        (
            "a verifier for an authorization without a challenge",
            None,
            cb,
            Some(VERIFIER),
            "invalid_grant",
        ),
        ("no PKCE at all", None, cb, None, "invalid_grant"),
    ];
    for (why, challenge, redirect_uri, verifier, error) in cases {
        let c = code(&app, &account, &wiki, &["openid"], challenge).await;
        let (status, body) = exchange(&app, &auth, &c, redirect_uri, verifier).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {body}");
        assert!(oauth_error(error)(&body), "{why}: {body}");
        // Refused once, the code is spent: the right request fails too.
        let (status, body) = exchange(&app, &auth, &c, cb, Some(VERIFIER)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}, then right: {body}");
    }

    // A code for another client.
    let c = code(&app, &account, &wiki, &["openid"], Some(&s256)).await;
    let (status, body) = exchange(&app, &other_auth, &c, cb, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(oauth_error("invalid_grant")(&body), "{body}");
    // An unknown code; an expired one.
    let (status, body) = exchange(&app, &auth, "no-such-code", cb, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(oauth_error("invalid_grant")(&body), "{body}");
    let expired = "an-expired-code";
    app.app
        .store
        .oidc()
        .add_code(&StoredCode {
            code_hash: hex::encode(Sha256::digest(expired.as_bytes())),
            client_id: wiki.id.clone(),
            account_id: account.clone(),
            session_id: gatehouse::crypto::random_id(),
            redirect_uri: cb.into(),
            scopes: "openid".into(),
            nonce: None,
            code_challenge: Some(s256.clone()),
            auth_time: 1,
            amr: "pwd".into(),
            expires_at: gatehouse::domain::unix_now() - 1,
        })
        .await
        .unwrap();
    let (status, body) = exchange(&app, &auth, expired, cb, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(oauth_error("invalid_grant")(&body), "{body}");
    let (status, body) = post_form(
        &app,
        "/oauth/token",
        Some(&auth),
        &[("grant_type", "authorization_code")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(oauth_error("invalid_request")(&body), "{body}");

    // A disabled account's code.
    let c = code(&app, &account, &wiki, &["openid"], Some(&s256)).await;
    let run = cli(&app, &["users", "disable", &account]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (status, body) = exchange(&app, &auth, &c, cb, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(oauth_error("invalid_grant")(&body), "{body}");

    // A public client: no secret, PKCE always.
    let (public, _) = register(
        &app,
        Registration {
            public: true,
            ..web_client()
        },
    )
    .await;
    let (account, _) = crate::oidc::account(&app).await;
    let c = code(&app, &account, &public, &["openid"], Some(&s256)).await;
    let (status, body) = post_form(
        &app,
        "/oauth/token",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", cb),
            ("code_verifier", VERIFIER),
            ("client_id", &public.id),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let c = code(&app, &account, &public, &["openid"], None).await;
    let (status, body) = post_form(
        &app,
        "/oauth/token",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", cb),
            ("client_id", &public.id),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(oauth_error("invalid_grant")(&body), "{body}");
}

/// The store's writes behind `/authorize` and the code exchange: the code is stored in
/// the write that takes its pending request, and spent in the write that starts its
/// session; each only once, and neither half without the other.
async fn a_code_is_spent_in_the_write_that_starts_its_session(b: Backend) {
    use gatehouse::store::CodeUse;
    use gatehouse::store::sessions::{NewSession, OidcBinding};

    let app = spawn(b).await;
    let (wiki, _) = register(&app, web_client()).await;
    let (account, _) = account(&app).await;
    let id = gatehouse::domain::AccountId(account.clone());
    let store = &app.app.store;
    let now = unix_now();
    let stored = |n: &str| StoredCode {
        code_hash: format!("code-{n}"),
        client_id: wiki.id.clone(),
        account_id: account.clone(),
        session_id: format!("session-{n}"),
        redirect_uri: "https://wiki.example/cb".into(),
        scopes: "openid".into(),
        nonce: None,
        code_challenge: None,
        auth_time: now,
        amr: "pwd".into(),
        expires_at: now + 60,
    };
    let session = |n: &str| NewSession {
        id: format!("session-{n}"),
        account: id.clone(),
        method: "oidc".into(),
        amr: "pwd".into(),
        user_agent: None,
        ip: None,
        now,
        idle_expires_at: now + 600,
        expires_at: now + 600,
        max_per_account: 100,
        oidc: Some(OidcBinding {
            client_id: wiki.id.clone(),
            scopes: "openid".into(),
        }),
        keep_per_account: 100,
    };
    let live = |n: &str| {
        let (store, id, session) = (store.clone(), id.clone(), format!("session-{n}"));
        async move {
            store
                .sessions()
                .session_is_live(&session, &id, now)
                .await
                .unwrap()
        }
    };

    // The request is taken by the first code's write; a second finds it gone and
    // stores no code.
    let request = gatehouse::crypto::random_id();
    store
        .authorize()
        .add_request(&request, &wiki.id, "{}", now + 600)
        .await
        .unwrap();
    assert!(
        store
            .oidc()
            .add_code_taking(&stored("a"), &request, now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .oidc()
            .add_code_taking(&stored("b"), &request, now)
            .await
            .unwrap()
    );
    assert_eq!(
        store.authorize().peek_request(&request, now).await.unwrap(),
        None
    );
    assert_eq!(store.oidc().peek_code("code-b", now).await.unwrap(), None);
    assert_eq!(
        store.oidc().peek_code("code-a", now).await.unwrap(),
        Some(stored("a"))
    );

    // Redeemed once: spent, and its session started.
    let first = store
        .oidc()
        .redeem_code("code-a", now, &session("a"))
        .await
        .unwrap();
    assert_eq!(first, CodeUse::Fresh(Box::new(stored("a"))));
    assert!(live("a").await);
    assert_eq!(store.oidc().peek_code("code-a", now).await.unwrap(), None);
    // Again: a replay, which starts nothing and ends the first's session.
    let again = store
        .oidc()
        .redeem_code("code-a", now, &session("a2"))
        .await
        .unwrap();
    assert_eq!(again, CodeUse::Replayed);
    assert!(!live("a").await);
    assert!(!live("a2").await);

    // A code spent already (a refused exchange spends it) starts no session.
    store.oidc().add_code(&stored("c")).await.unwrap();
    let spent = store.oidc().use_code("code-c", now).await.unwrap();
    assert_eq!(spent, CodeUse::Fresh(Box::new(stored("c"))));
    let late = store
        .oidc()
        .redeem_code("code-c", now, &session("c"))
        .await
        .unwrap();
    assert_eq!(late, CodeUse::Replayed);
    assert!(!live("c").await);
    let unknown = store
        .oidc()
        .redeem_code("code-z", now, &session("z"))
        .await
        .unwrap();
    assert_eq!(unknown, CodeUse::Unknown);
    assert!(!live("z").await);
}

async fn refresh_tokens_rotate_and_stay_with_their_client_and_kind(b: Backend) {
    let app = TestApp::spawn_with(b, |s| {
        s.oidc.enabled = true;
        s.http.public_url = Some(PUBLIC_URL.into());
        s.session.refresh_reuse_grace_secs = 0;
    })
    .await;
    let (wiki, secret) = register(&app, web_client()).await;
    let auth = basic(&wiki.id, &secret.unwrap());
    let (other, other_secret) = register(&app, web_client()).await;
    let other_auth = basic(&other.id, &other_secret.unwrap());
    let (account, _) = account(&app).await;
    let c = code(
        &app,
        &account,
        &wiki,
        &["openid", "offline_access"],
        Some(&challenge(VERIFIER)),
    )
    .await;
    let (status, body) = exchange(&app, &auth, &c, "https://wiki.example/cb", Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = body["refresh_token"].as_str().unwrap().to_owned();
    let sid = jwt_parts(body["id_token"].as_str().unwrap()).1["sid"].clone();

    let refresh = |auth: String, token: String| {
        let app = &app;
        async move {
            post_form(
                app,
                "/oauth/token",
                Some(&auth),
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
            )
            .await
        }
    };
    // Another client cannot spend it; it is not an account refresh token either.
    let (status, body) = refresh(other_auth.clone(), first.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(oauth_error("invalid_grant")(&body), "{body}");
    let (status, body) = app.refresh(&first).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // Nor is an account refresh token one of ours.
    let signed_up = app.signed_up(&crate::helpers::email(), "password123").await;
    let (status, body) = refresh(
        auth.clone(),
        signed_up["refresh_token"].as_str().unwrap().to_owned(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(oauth_error("invalid_grant")(&body), "{body}");

    let (status, body) = refresh(auth.clone(), first.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first, "rotated");
    assert_eq!(body["scope"], "openid offline_access");
    let claims = verify_with_jwks(&app, body["id_token"].as_str().unwrap(), &wiki.id).await;
    assert_eq!(claims["sid"], sid, "the same session");
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(&app, &auth, &access).await["active"], true);

    // The first token again, after the grace (0 here): a copy; the session ends.
    let (status, body) = refresh(auth.clone(), first).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(oauth_error("invalid_grant")(&body), "{body}");
    assert_eq!(
        introspect(&app, &auth, &access).await,
        json!({"active": false})
    );
    let (status, body) = refresh(auth, second).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(oauth_error("invalid_grant")(&body), "{body}");
}

async fn revocation_ends_the_session_and_every_token_of_it(b: Backend) {
    let app = spawn(b).await;
    let (wiki, secret) = register(&app, web_client()).await;
    let auth = basic(&wiki.id, &secret.unwrap());
    let (other, other_secret) = register(&app, web_client()).await;
    let other_auth = basic(&other.id, &other_secret.unwrap());
    let (account, _) = account(&app).await;
    let scopes = ["openid", "offline_access"];
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let c = code(&app, &account, &wiki, &scopes, Some(&challenge(VERIFIER))).await;
        let (status, body) =
            exchange(&app, &auth, &c, "https://wiki.example/cb", Some(VERIFIER)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        tokens.push(body);
    }
    let access = |i: usize| tokens[i]["access_token"].as_str().unwrap().to_owned();
    let refresh = |i: usize| tokens[i]["refresh_token"].as_str().unwrap().to_owned();

    // Another client's revocation changes nothing, and answers the same.
    for token in [refresh(0), access(1)] {
        let (status, body) = post_form(
            &app,
            "/oauth/revoke",
            Some(&other_auth),
            &[("token", &token)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({}));
    }
    assert_eq!(introspect(&app, &auth, &access(0)).await["active"], true);
    assert_eq!(introspect(&app, &auth, &access(1)).await["active"], true);

    // Revoking the refresh token ends its session: its access token is inactive at
    // once, its refresh refused; the other session lives.
    let (status, body) = post_form(
        &app,
        "/oauth/revoke",
        Some(&auth),
        &[("token", &refresh(0)), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        introspect(&app, &auth, &access(0)).await,
        json!({"active": false})
    );
    let (status, body) = read(app.get("/oauth/userinfo", Some(&access(0))).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(oauth_error("invalid_token")(&body), "{body}");
    let (status, body) = post_form(
        &app,
        "/oauth/token",
        Some(&auth),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh(0)),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(oauth_error("invalid_grant")(&body), "{body}");
    assert_eq!(introspect(&app, &auth, &access(1)).await["active"], true);

    // Revoking an access token ends its session too; an unknown token is fine.
    let (status, body) =
        post_form(&app, "/oauth/revoke", Some(&auth), &[("token", &access(1))]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        introspect(&app, &auth, &access(1)).await,
        json!({"active": false})
    );
    let (status, body) =
        post_form(&app, "/oauth/revoke", Some(&auth), &[("token", "whatever")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post_form(&app, "/oauth/revoke", Some(&auth), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(oauth_error("invalid_request")(&body), "{body}");
    let (status, body) = post_form(
        &app,
        "/oauth/revoke",
        Some(&basic(&wiki.id, "wrong")),
        &[("token", "x")],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(oauth_error("invalid_client")(&body), "{body}");

    // A disabled account's tokens are inactive at once.
    let c = code(&app, &account, &wiki, &scopes, Some(&challenge(VERIFIER))).await;
    let (status, body) = exchange(&app, &auth, &c, "https://wiki.example/cb", Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let live = body["access_token"].as_str().unwrap();
    assert_eq!(introspect(&app, &auth, live).await["active"], true);
    let run = cli(&app, &["users", "disable", &account]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        introspect(&app, &auth, live).await,
        json!({"active": false})
    );
}

async fn private_key_jwt_assertions_verify_once(b: Backend) {
    let app = spawn(b).await;
    let now = gatehouse::domain::unix_now();
    let keys = [
        KeyPair::generate(Algorithm::EdDSA, "ed", "unused"),
        KeyPair::generate(Algorithm::ES256, "es", "unused"),
        KeyPair::generate(Algorithm::RS256, "rs", "unused"),
    ];
    let jwks = json!({"keys": keys.iter().map(|k| serde_json::to_value(k.jwk()).unwrap()).collect::<Vec<_>>()});
    let (client, secret) = register(
        &app,
        Registration {
            auth_method: Some("private_key_jwt".into()),
            jwks: Some(jwks.to_string()),
            ..machine_client()
        },
    )
    .await;
    assert_eq!(secret, None);
    let assertion = |key: &KeyPair, aud: &str, exp: i64, jti: &str| {
        key.sign(&json!({"iss": client.id, "sub": client.id, "aud": aud, "exp": exp, "iat": now, "jti": jti}))
    };
    let grant = |assertion: String| {
        let app = &app;
        async move {
            post_form(
                app,
                "/oauth/token",
                None,
                &[
                    ("grant_type", "client_credentials"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &assertion),
                ],
            )
            .await
        }
    };
    let endpoint = format!("{ISSUER}/oauth/token");
    for (i, key) in keys.iter().enumerate() {
        let a = assertion(key, &endpoint, now + 60, &format!("jti-{i}"));
        let (status, body) = grant(a.clone()).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", key.kid());
        assert!(body["access_token"].is_string());
        // The same assertion again: its jti is spent.
        let (status, body) = grant(a).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{}: {body}", key.kid());
        assert!(oauth_error("invalid_client")(&body), "{body}");
    }
    let stranger = KeyPair::generate(Algorithm::EdDSA, "ed", "unused");
    for (why, a) in [
        (
            "another audience",
            assertion(&keys[0], "https://elsewhere.example/token", now + 60, "a"),
        ),
        ("expired", assertion(&keys[0], &endpoint, now - 1, "b")),
        (
            "living too long",
            assertion(&keys[0], &endpoint, now + 3600, "c"),
        ),
        (
            "a key not registered",
            assertion(&stranger, &endpoint, now + 60, "d"),
        ),
    ] {
        let (status, body) = grant(a).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
        assert!(oauth_error("invalid_client")(&body), "{why}: {body}");
    }
    // Its client cannot fall back to a secret.
    let (status, body) = post_form(
        &app,
        "/oauth/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client.id),
            ("client_secret", "x"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(oauth_error("invalid_client")(&body), "{body}");
}

async fn clients_of_the_configuration_are_written_at_start_and_removed_when_gone(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let secret = "a-configured-client-secret-of-enough-length";
    let secret_file = dir.path().join("cron-secret");
    std::fs::write(&secret_file, secret).unwrap();
    let declared = gatehouse::config::OidcClientSettings {
        client_id: "cron".into(),
        name: "Cron".into(),
        client_secret_file: Some(secret_file.clone()),
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        public: false,
        first_party: false,
        grants: vec!["client_credentials".into()],
        token_endpoint_auth_method: None,
        jwks_file: None,
        id_token_signed_response_alg: None,
        backchannel_logout_uri: None,
    };
    let listed = declared.clone();
    let app = TestApp::spawn_with(b, move |s| {
        s.oidc.enabled = true;
        s.http.public_url = Some(PUBLIC_URL.into());
        s.oidc.clients = vec![listed];
    })
    .await;
    let (status, body) = post_form(
        &app,
        "/oauth/token",
        Some(&basic("cron", secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let run = cli(&app, &["clients", "show", "cron", "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["source"], "config");
    for args in [
        &["clients", "remove", "cron"][..],
        &["clients", "rotate-secret", "cron"],
        &["clients", "update", "cron", "--name", "Other"],
    ] {
        let run = cli(&app, args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("[[oidc.clients]]"), "{}", run.stderr);
    }
    // A bad declaration stops the start, naming the entry.
    let mut bad = declared.clone();
    bad.redirect_uris = vec!["http://wiki.example/cb".into()];
    let settings = {
        let mut s = app.app.settings.clone();
        s.listen = "127.0.0.1:0".parse().unwrap();
        s.oidc.clients = vec![bad];
        s
    };
    let refused = gatehouse::http::Server::build(settings)
        .await
        .err()
        .unwrap();
    assert!(
        format!("{refused:#}")
            .contains("oidc.clients[0] (cron): redirect_uri http://wiki.example/cb"),
        "{refused:#}"
    );
    // Another start without it removes it; a client of the CLI stays.
    let (kept, _) = register(&app, machine_client()).await;
    let again = app
        .spawn_beside(|s| {
            s.oidc.enabled = true;
            s.http.public_url = Some(PUBLIC_URL.into());
        })
        .await;
    assert_eq!(again.app.store.oidc().client("cron").await.unwrap(), None);
    assert!(
        again
            .app
            .store
            .oidc()
            .client(&kept.id)
            .await
            .unwrap()
            .is_some()
    );
}

/// The provider keeps parsed clients; a change made elsewhere (here by `gatehouse
/// clients`, another process on the same database, as another node would be) counts
/// at the client's very next request.
async fn a_client_changed_by_another_process_counts_at_its_next_request(b: Backend) {
    let app = spawn(b).await;
    let run = cli(
        &app,
        &[
            "clients",
            "add",
            "--name",
            "Cron",
            "--grant",
            "client_credentials",
            "--json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let id = run.json()["client_id"].as_str().unwrap().to_owned();
    let secret = run.json()["client_secret"].as_str().unwrap().to_owned();
    let grant = [("grant_type", "client_credentials")];
    let token = |body: &Value| body["access_token"].as_str().map(str::to_owned);
    for _ in 0..2 {
        let (status, body) =
            post_form(&app, "/oauth/token", Some(&basic(&id, &secret)), &grant).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(token(&body).is_some(), "{body}");
    }

    // A new secret: the kept client's old secret is refused at once.
    let run = cli(&app, &["clients", "rotate-secret", &id, "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rotated = run.json()["client_secret"].as_str().unwrap().to_owned();
    let (status, body) = post_form(&app, "/oauth/token", Some(&basic(&id, &secret)), &grant).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(oauth_error("invalid_client")(&body), "{body}");
    let (status, body) = post_form(&app, "/oauth/token", Some(&basic(&id, &rotated)), &grant).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Another authentication method: Basic is refused, the form's secret taken.
    let run = cli(
        &app,
        &[
            "clients",
            "update",
            &id,
            "--token-endpoint-auth-method",
            "client_secret_post",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (status, body) = post_form(&app, "/oauth/token", Some(&basic(&id, &rotated)), &grant).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(oauth_error("invalid_client")(&body), "{body}");
    let posted = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", rotated.as_str()),
    ];
    let (status, body) = post_form(&app, "/oauth/token", None, &posted).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let live = token(&body).unwrap();
    let (status, body) = post_form(
        &app,
        "/oauth/introspect",
        None,
        &[
            ("token", live.as_str()),
            ("client_id", id.as_str()),
            ("client_secret", rotated.as_str()),
        ],
    )
    .await;
    assert_eq!(
        (status, body["active"].clone()),
        (StatusCode::OK, json!(true)),
        "{body}"
    );

    // Removed: refused at once.
    let run = cli(&app, &["clients", "remove", &id]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (status, body) = post_form(&app, "/oauth/token", None, &posted).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(oauth_error("invalid_client")(&body), "{body}");
}

/// A node keeps the access tokens it verified (with the key that signed them), and
/// still refuses one at its next use once that key retired.
async fn an_introspected_token_is_inactive_once_its_key_retires(b: Backend) {
    let app = spawn(b).await;
    let (cron, secret) = register(&app, machine_client()).await;
    let auth = basic(&cron.id, &secret.unwrap());
    let grant = [("grant_type", "client_credentials")];
    let (status, body) = post_form(&app, "/oauth/token", Some(&auth), &grant).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let old = body["access_token"].as_str().unwrap().to_owned();
    let active = introspect(&app, &auth, &old).await;
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["client_id"], cron.id.as_str());

    // A rotation made long enough ago that the old key has retired.
    let keys = provider(&app).keys();
    let policy = keys.policy();
    let past = unix_now()
        - policy.jwks_max_age_secs
        - 1
        - policy.token_ttl_secs
        - signing_keys::CLOCK_MARGIN_SECS
        - 1;
    signing_keys::rotate(&app.app.store, keys.sealer(), policy, past)
        .await
        .unwrap();
    keys.reload(unix_now()).await.unwrap();
    assert_eq!(
        introspect(&app, &auth, &old).await,
        json!({"active": false}),
        "the token of the retired key, verified before"
    );
    let (status, body) = post_form(&app, "/oauth/token", Some(&auth), &grant).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = body["access_token"].as_str().unwrap();
    let active = introspect(&app, &auth, new).await;
    assert_eq!(active["active"], true, "the new key's token: {active}");
}
