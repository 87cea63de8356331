//! Rotating the HS512 secret (`jwt.previous_secrets`): a node started with a new secret
//! and the old one as previous still accepts what the old one signed (account and
//! refresh tokens) and signs only with the new one; without it, it refuses them.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, JWT_SECRET, TestApp, email, jwt_parts};
use gatehouse::crypto::jwt::{TokenKeys, TokenKind};
use gatehouse::domain::{Secret, unix_now};

crate::on_every_backend!(tokens_of_the_previous_secret_live_on_across_a_rotation);

const NEW_SECRET: &str = "the-new-secret-0123456789-0123456789-0123456789";

fn bearer_refused() -> Value {
    json!({"message": "A valid bearer token is required."})
}

/// Whether `token` is an account token signed with `secret`.
fn signed_with(secret: &str, token: &str) -> bool {
    TokenKeys::new(secret.as_bytes(), "gatehouse")
        .verify::<Value>(TokenKind::Account, token, unix_now())
        .is_ok()
}

async fn tokens_of_the_previous_secret_live_on_across_a_rotation(b: Backend) {
    // Secret A (the tests' JWT_SECRET) signs a sign-in.
    let before = TestApp::spawn(b).await;
    let address = email();
    let signed_in = before.signed_up(&address, "password123").await;
    let token = signed_in["token"].as_str().unwrap().to_owned();
    let refresh = signed_in["refresh_token"].as_str().unwrap().to_owned();
    assert!(signed_with(JWT_SECRET, &token));

    // Restarted with secret B and no previous secret: A's tokens are refused.
    let url = before.app.settings.database_url();
    let without = TestApp::spawn_on(&url, |s| {
        s.jwt_secret = Some(Secret::new(NEW_SECRET.into()));
    })
    .await;
    let (status, body) = without.me(&token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body, bearer_refused());
    let (status, body) = without.refresh(&refresh).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        body,
        json!({"message": "The refresh token is invalid, expired or revoked."})
    );

    // With B and previous [A]: A's account token and refresh token are accepted, and
    // what it signs now is B's.
    let rotated = TestApp::spawn_on(&url, |s| {
        s.jwt_secret = Some(Secret::new(NEW_SECRET.into()));
        s.jwt.previous_secrets = vec![Secret::new(JWT_SECRET.into())];
    })
    .await;
    let (status, me) = rotated.me(&token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], address.as_str());
    let (status, refreshed) = rotated.refresh(&refresh).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let new_token = refreshed["token"].as_str().unwrap();
    assert!(signed_with(NEW_SECRET, new_token), "{refreshed}");
    assert!(!signed_with(JWT_SECRET, new_token), "{refreshed}");
    assert_eq!(jwt_parts(new_token).1["sub"], jwt_parts(&token).1["sub"]);
    let new_refresh = refreshed["refresh_token"].as_str().unwrap();
    let login = rotated.login(&address, "password123").await;
    assert_eq!(login.0, StatusCode::OK, "{}", login.1);
    assert!(signed_with(NEW_SECRET, login.1["token"].as_str().unwrap()));

    // The node that knows only B accepts what the rotated node signed.
    let (status, me) = without.me(new_token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], address.as_str());
    let (status, again) = without.refresh(new_refresh).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert!(signed_with(NEW_SECRET, again["token"].as_str().unwrap()));
}

/// A previous secret shorter than 32 bytes stops the start, naming the key.
#[test]
fn a_short_previous_secret_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::process::gatehouse(dir.path())
        .arg("serve")
        .env("GATEHOUSE_JWT_SECRET", NEW_SECRET)
        .env(
            "GATEHOUSE_JWT__PREVIOUS_SECRETS",
            format!("{JWT_SECRET},too-short"),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("jwt.previous_secrets") && stderr.contains("one has 9"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("too-short") && !stderr.contains(JWT_SECRET),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing created"
    );
}
