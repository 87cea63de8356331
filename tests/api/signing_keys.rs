//! Asymmetric account tokens (`jwt.algorithm` EdDSA / ES256): the `kid` header, the
//! JWKS and its caching, keys stored encrypted, unknown keys refused, and rotation that
//! every node sharing the database follows (two nodes on one database).

use std::time::Duration;

use gatehouse::crypto::jwt::Claims;
use gatehouse::crypto::signing::{Algorithm, KeyPair, Sealer};
use gatehouse::domain::unix_now;
use gatehouse::signing_keys::{self, KeyState};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, JWT_SECRET, TestApp, email, jwt_parts, read};

crate::on_every_backend!(
    eddsa_tokens_name_a_key_the_jwks_publishes,
    es256_tokens_name_a_key_the_jwks_publishes,
    hs512_has_no_key_set,
    tokens_of_unknown_keys_and_other_algorithms_are_refused,
    private_keys_are_stored_sealed_under_the_secret,
    a_rotation_is_followed_by_every_node_without_a_failed_verification,
    a_retired_key_leaves_the_jwks_and_its_tokens_are_refused,
    a_new_algorithm_signs_at_once_and_the_old_keys_tokens_still_verify,
);

fn bearer_refused() -> Value {
    json!({"message": "A valid bearer token is required."})
}

async fn spawn(b: Backend, algorithm: &str) -> TestApp {
    let algorithm = algorithm.to_owned();
    TestApp::spawn_with(b, move |s| {
        s.jwt.algorithm = algorithm;
        s.jwt.jwks_max_age_secs = 2;
    })
    .await
}

async fn jwks(app: &TestApp) -> (reqwest::header::HeaderMap, Value) {
    let res = app.get("/.well-known/jwks.json", None).await;
    let headers = res.headers().clone();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (headers, body)
}

fn kids(set: &Value) -> Vec<String> {
    set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn kid(token: &str) -> String {
    jwt_parts(token).0["kid"].as_str().unwrap().to_owned()
}

fn token(body: &Value) -> &str {
    body["token"].as_str().unwrap()
}

async fn assert_me(app: &TestApp, what: &str, token: &str, expected: StatusCode) {
    let (status, body) = app.me(token).await;
    assert_eq!(status, expected, "{what}: {body}");
    if expected == StatusCode::OK {
        assert!(body["id"].is_string(), "{what}: {body}");
    } else {
        assert_eq!(body, bearer_refused(), "{what}");
    }
}

async fn tokens_name_a_published_key(b: Backend, algorithm: &str) {
    let app = spawn(b, algorithm).await;
    let signed_up = app.signed_up(&email(), "password123").await;
    let (header, claims) = jwt_parts(token(&signed_up));
    assert_eq!(header["alg"], algorithm);
    assert_eq!(header["typ"], "JWT");
    assert!(
        claims["sid"].is_string() && claims["auth_time"].is_i64(),
        "{claims}"
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    let (headers, set) = jwks(&app).await;
    assert_eq!(headers["cache-control"], "public, max-age=2");
    assert_eq!(kids(&set), [kid(token(&signed_up))]);
    let key = &set["keys"][0];
    assert_eq!(key["alg"], algorithm);
    assert_eq!(key["use"], "sig");
    match algorithm {
        "EdDSA" => {
            assert_eq!(
                (&key["kty"], &key["crv"]),
                (&json!("OKP"), &json!("Ed25519"))
            );
            assert!(key.get("d").is_none(), "no private part: {key}");
        }
        _ => {
            assert_eq!((&key["kty"], &key["crv"]), (&json!("EC"), &json!("P-256")));
            assert!(key["y"].is_string() && key.get("d").is_none(), "{key}");
        }
    }
    assert_me(&app, "a fresh token", token(&signed_up), StatusCode::OK).await;
    let (status, next) = app
        .refresh(signed_up["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_eq!(kid(token(&next)), kid(token(&signed_up)));
    assert_me(&app, "a refreshed token", token(&next), StatusCode::OK).await;
}

async fn eddsa_tokens_name_a_key_the_jwks_publishes(b: Backend) {
    tokens_name_a_published_key(b, "EdDSA").await;
}

async fn es256_tokens_name_a_key_the_jwks_publishes(b: Backend) {
    tokens_name_a_published_key(b, "ES256").await;
}

async fn hs512_has_no_key_set(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (status, body) = read(app.get("/.well-known/jwks.json", None).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"message": "Account tokens are HS512 (jwt.algorithm): there is no key set."})
    );
    let signed_up = app.signed_up(&email(), "password123").await;
    let (header, _) = jwt_parts(token(&signed_up));
    assert_eq!(
        header,
        json!({"alg": "HS512", "typ": "JWT"}),
        "the seed's header"
    );
}

async fn tokens_of_unknown_keys_and_other_algorithms_are_refused(b: Backend) {
    let app = spawn(b, "EdDSA").await;
    let signed_up = app.signed_up(&email(), "password123").await;
    let (_, claims) = jwt_parts(token(&signed_up));
    let claims: Claims<Value> = serde_json::from_value(claims).unwrap();
    let known = kid(token(&signed_up));
    let cases = [
        (
            "a key nobody published",
            KeyPair::generate(
                Algorithm::EdDSA,
                "0123456789abcdef0123456789abcdef",
                "gatehouse",
            )
            .sign(&claims),
        ),
        (
            "another key under a published kid",
            KeyPair::generate(Algorithm::EdDSA, &known, "gatehouse").sign(&claims),
        ),
        (
            "ES256 under the published kid",
            KeyPair::generate(Algorithm::ES256, &known, "gatehouse").sign(&claims),
        ),
        (
            "an HS512 token with the secret",
            gatehouse::crypto::jwt::TokenKeys::new(JWT_SECRET.as_bytes(), "gatehouse")
                .sign(gatehouse::crypto::jwt::TokenKind::Account, &claims),
        ),
    ];
    for (what, forged) in &cases {
        assert_me(&app, what, forged, StatusCode::UNAUTHORIZED).await;
    }
    // Bursts of unknown kids cost at most one read of the keys a second.
    let stranger = KeyPair::generate(
        Algorithm::EdDSA,
        "ffffffffffffffffffffffffffffffff",
        "gatehouse",
    )
    .sign(&claims);
    for _ in 0..20 {
        assert_me(
            &app,
            "an unknown kid again",
            &stranger,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    assert_me(&app, "the real token", token(&signed_up), StatusCode::OK).await;
}

async fn private_keys_are_stored_sealed_under_the_secret(b: Backend) {
    let app = spawn(b, "ES256").await;
    let rows = app
        .app
        .store
        .signing_keys()
        .signing_keys(None)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.algorithm, "ES256");
    assert!(row.private_key.starts_with("v1."), "sealed");
    let ours = Sealer::new(JWT_SECRET.as_bytes());
    let private = ours
        .open(&row.kid, Algorithm::ES256, &row.private_key)
        .expect("opens with the secret");
    let pair =
        KeyPair::from_private(Algorithm::ES256, &row.kid, private.expose(), "gatehouse").unwrap();
    assert_eq!(
        serde_json::to_value(pair.jwk()).unwrap(),
        serde_json::from_str::<Value>(&row.public_jwk).unwrap()
    );
    let other = Sealer::new(b"another-secret-another-secret-another-secret");
    assert!(
        other
            .open(&row.kid, Algorithm::ES256, &row.private_key)
            .is_none()
    );
    // The stored text is no key.
    assert!(
        KeyPair::from_private(
            Algorithm::ES256,
            &row.kid,
            row.private_key.as_bytes(),
            "gatehouse"
        )
        .is_err()
    );
}

async fn a_rotation_is_followed_by_every_node_without_a_failed_verification(b: Backend) {
    let a = spawn(b, "EdDSA").await;
    let node_b = a.another_node().await;
    let address = email();
    let on_a = a.signed_up(&address, "password123").await;
    let (_, on_b) = node_b.login(&address, "password123").await;
    let first = kid(token(&on_a));
    assert_eq!(kid(token(&on_b)), first, "both nodes sign with the one key");
    let keys = a.app.signing_keys.as_ref().unwrap();
    let rotated = signing_keys::rotate(&a.app.store, keys.sealer(), keys.policy(), unix_now())
        .await
        .unwrap()
        .remove(0);
    assert_eq!(rotated.state, KeyState::Next);
    // Published at once on both nodes, used by neither yet.
    for node in [&a, &node_b] {
        let (_, set) = jwks(node).await;
        assert_eq!(kids(&set), [first.clone(), rotated.kid.clone()]);
    }
    let (_, early) = node_b.login(&address, "password123").await;
    assert_eq!(
        kid(token(&early)),
        first,
        "the next key waits for the max-age"
    );
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let (_, late_b) = node_b.login(&address, "password123").await;
    let (status, late_a) = a.refresh(on_a["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{late_a}");
    for (what, t) in [("node b", &late_b), ("node a", &late_a)] {
        assert_eq!(kid(token(t)), rotated.kid, "{what} signs with the new key");
    }
    // Every token, old and new, verifies on every node.
    for node in [&a, &node_b] {
        for t in [&on_a, &on_b, &early, &late_a, &late_b] {
            assert_me(node, "across the rotation", token(t), StatusCode::OK).await;
        }
        let (_, set) = jwks(node).await;
        assert_eq!(
            kids(&set),
            [first.clone(), rotated.kid.clone()],
            "the old key stays"
        );
    }
    let rows = a.app.store.signing_keys().signing_keys(None).await.unwrap();
    let states: Vec<_> = signing_keys::describe(&rows, Some(Algorithm::EdDSA), unix_now())
        .into_iter()
        .map(|k| k.state)
        .collect();
    assert_eq!(states, [KeyState::Retiring, KeyState::Signing]);
}

async fn a_retired_key_leaves_the_jwks_and_its_tokens_are_refused(b: Backend) {
    let app = spawn(b, "EdDSA").await;
    let old = app.signed_up(&email(), "password123").await;
    // Used once before its key retires: a token verified before is still refused once
    // its key no longer verifies (the node keeps the tokens it checked already).
    assert_me(
        &app,
        "a token of the key before it retires",
        token(&old),
        StatusCode::OK,
    )
    .await;
    let keys = app.app.signing_keys.as_ref().unwrap();
    // A rotation made long enough ago that the old key's last tokens have expired.
    let policy = keys.policy();
    let past = unix_now()
        - policy.jwks_max_age_secs
        - 1
        - policy.token_ttl_secs
        - signing_keys::CLOCK_MARGIN_SECS
        - 1;
    let rotated = signing_keys::rotate(&app.app.store, keys.sealer(), policy, past)
        .await
        .unwrap()
        .remove(0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, set) = jwks(&app).await;
    assert_eq!(kids(&set), std::slice::from_ref(&rotated.kid));
    assert_me(
        &app,
        "a token of the retired key",
        token(&old),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let (status, next) = app.refresh(old["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "the session lives on: {next}");
    assert_eq!(kid(token(&next)), rotated.kid);
    assert_me(&app, "its successor", token(&next), StatusCode::OK).await;
    let store = app.app.store.signing_keys();
    store.purge_signing_keys(unix_now()).await.unwrap();
    let left: Vec<String> = store
        .signing_keys(None)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(left, [rotated.kid], "the retired key is deleted");
}

async fn a_new_algorithm_signs_at_once_and_the_old_keys_tokens_still_verify(b: Backend) {
    let ed = spawn(b, "EdDSA").await;
    let old = ed.signed_up(&email(), "password123").await;
    let es = ed
        .spawn_beside(|s| {
            s.jwt.algorithm = "ES256".into();
            s.jwt.jwks_max_age_secs = 2;
        })
        .await;
    let address = email();
    let new = es.signed_up(&address, "password123").await;
    assert_eq!(jwt_parts(token(&new)).0["alg"], "ES256");
    assert_me(
        &es,
        "an EdDSA token on the ES256 node",
        token(&old),
        StatusCode::OK,
    )
    .await;
    let (_, set) = jwks(&es).await;
    assert_eq!(set["keys"].as_array().unwrap().len(), 2, "{set}");
}
