//! Login with SelfKey over HTTP, with a test wallet that signs as the SelfKey wallet
//! does (EIP-191 `personal_sign` with secp256k1): every route and error code of the
//! LWS protocol notes, the three account cases, linking, and the page's config.

use gatehouse::config::RequestedAttribute;
use gatehouse::crypto::jwt::TokenKind;
use gatehouse::domain::unix_now;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use secp256k1::SecretKey;
use secp256k1::ecdsa::RecoverableSignature;
use serde_json::{Value, json};
use sha3::{Digest, Keccak256};

use crate::helpers::{Backend, TestApp, email, jwt_parts, read};

crate::on_every_backend!(
    the_protocol_test_vector_signs_in_with_either_v,
    challenges_name_a_key_a_did_or_anyone,
    bad_public_keys_are_refused,
    a_signed_challenge_gives_a_wallet_token,
    did_mode_compares_addresses_and_checks_the_key_id,
    answering_refuses_each_bad_request_with_its_code,
    a_wrong_signature_does_not_burn_the_challenge,
    a_challenge_can_be_answered_once,
    expired_challenges_are_refused,
    concurrent_answers_to_one_challenge_have_one_winner,
    a_new_wallet_signs_up_and_signs_in,
    the_login_token_is_single_use_and_short_lived,
    login_errors_carry_a_redirect,
    tokens_of_one_kind_are_refused_where_another_is_expected,
    sign_up_refuses_bad_attributes_and_changes_nothing,
    multipart_sign_up_resolves_documents,
    multipart_bodies_have_their_own_limit,
    a_wallet_claiming_an_existing_email_must_link_instead,
    a_signed_in_person_links_a_wallet_with_a_link_token,
    an_account_with_a_wallet_adds_another,
    trusting_wallet_emails_links_by_email,
    a_wallet_belongs_to_one_account,
    wallets_are_listed_shown_and_removed_but_never_the_last_sign_in,
    the_page_config_has_absolute_urls,
    the_page_routes_answer_cors_and_serve_the_wallet_origin,
    the_session_cookie_is_secure_behind_https,
    the_mount_is_configurable_and_can_be_off,
    openapi_documents_the_selfkey_routes,
);

pub(crate) const MOUNT: &str = "/api/v1/selfkey";
pub(crate) const EMAIL_SCHEMA: &str = "http://platform.selfkey.org/schema/attribute/email.json";
const PASSPORT_SCHEMA: &str = "http://platform.selfkey.org/schema/attribute/passport.json";

// The test vector of the LWS protocol notes.
const VECTOR_PRIVATE_KEY: &str = "8a35142ef030e2f89185c738b11b5a4fc13fe3663dffea64f00059fdf0b038d4";
const VECTOR_PUBLIC_KEY: &str = "269b4f66ff8f6c8e6478995b2decab8c0bdb3cf0627ca3f8b7b2b134307b0d3248540c0715c6b1ed00d1c259d631af9ef101a484093c11c8f52acfa960349970";
const VECTOR_ADDRESS: &str = "0x2b6a21dc440cebd4bb9b91b27014ace8aa91a0b9";
const VECTOR_CHALLENGE: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f";
const VECTOR_SIGNATURE: &str = "0xb434587639534dd60a25d990f3e515e10961880bcb3a807e35746afe4f4e78fa3059eb330b74f5eee3ff76a445a7c2d63aed07974a16653353d3cbf628c1347d1c";

async fn the_protocol_test_vector_signs_in_with_either_v(b: Backend) {
    let app = TestApp::spawn(b).await;
    let with_01 = format!("{}01", &VECTOR_SIGNATURE[..130]);
    for (sub, signature) in [
        (VECTOR_PUBLIC_KEY.to_string(), json!(VECTOR_SIGNATURE)),
        (VECTOR_PUBLIC_KEY.to_string(), json!(with_01)),
        (
            format!("did:eth:{VECTOR_ADDRESS}"),
            json!({"value": VECTOR_SIGNATURE, "keyId": format!("did:eth:{VECTOR_ADDRESS}#keys-1")}),
        ),
    ] {
        // A challenge with the vector's text, as the server would have issued it.
        let challenge = stored_challenge(&app, &sub, VECTOR_CHALLENGE, 300).await;
        let (status, body) = answer(&app, &challenge, &json!({ "signature": signature })).await;
        assert_eq!(status, StatusCode::CREATED, "{sub} {signature}: {body}");
        let claims = jwt_parts(body["jwt"].as_str().unwrap()).1;
        assert_eq!(claims["sub"], VECTOR_ADDRESS);
        assert_eq!(claims["publicKey"], VECTOR_PUBLIC_KEY);
        assert_eq!(claims["kind"], "wallet");
    }
    // The vector's key is what the test wallet derives from the vector's secret.
    let wallet = TestWallet::from_hex(VECTOR_PRIVATE_KEY);
    assert_eq!(wallet.public_key(), VECTOR_PUBLIC_KEY);
    assert_eq!(wallet.address(), VECTOR_ADDRESS);
    assert_eq!(wallet.sign(VECTOR_CHALLENGE, false), VECTOR_SIGNATURE);
}

async fn challenges_name_a_key_a_did_or_anyone(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = TestWallet::random();
    let key = wallet.public_key();
    for (path_key, sub) in [
        (key.clone(), key.clone()),
        (format!("0x{key}"), key.clone()),
        (key.to_uppercase(), key.clone()),
        (wallet.did(), wallet.did()),
        (
            format!(
                "did:eth:{}",
                wallet.address().to_uppercase().replacen("0X", "0x", 1)
            ),
            wallet.did(),
        ),
        (String::new(), String::new()),
    ] {
        let res = app.get(&challenge_path(&path_key), None).await;
        assert_eq!(res.headers()["cache-control"], "no-store");
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::OK, "{path_key}: {body}");
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        let (header, claims) = jwt_parts(body["jwt"].as_str().unwrap());
        assert_eq!(header["alg"], "HS512");
        assert_eq!(claims["sub"], sub, "{path_key}");
        assert_eq!(claims["kind"], "challenge");
        let challenge = claims["challenge"].as_str().unwrap();
        assert_eq!(challenge.len(), 96, "48 random bytes as hex");
        assert!(challenge.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            300
        );
    }
    // Two challenges never share their text.
    let (_, one) = get_challenge(&app, &key).await;
    let (_, two) = get_challenge(&app, &key).await;
    assert_ne!(challenge_text(&one), challenge_text(&two));
}

async fn bad_public_keys_are_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    let key = TestWallet::random().public_key();
    let mut off_curve = key.clone();
    let last = if key.ends_with('0') { "1" } else { "0" };
    off_curve.replace_range(127.., last);
    for bad in [
        key[..126].to_string(),
        format!("{key}00"),
        format!("04{key}"),
        "z".repeat(128),
        off_curve,
        "did:eth:0x1234".to_string(),
        format!("did:selfkey:0x{}", "ab".repeat(20)),
        "%FF%FE".to_string(),
    ] {
        let (status, body) = read(app.get(&challenge_path(&bad), None).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            body,
            json!({"code": "invalid_public_key", "message": "Invalid public key provided"}),
            "{bad}"
        );
    }
}

async fn a_signed_challenge_gives_a_wallet_token(b: Backend) {
    let app = TestApp::spawn(b).await;
    for raw_v in [false, true] {
        let wallet = TestWallet::random();
        let (_, challenge) = get_challenge(&app, &format!("0x{}", wallet.public_key())).await;
        let signature = wallet.sign(&challenge_text(&challenge), raw_v);
        let res = app
            .client
            .post(app.url(&format!("{MOUNT}/auth/challenge")))
            .bearer_auth(challenge["jwt"].as_str().unwrap())
            .header("origin", "IDW")
            .header("user-agent", "SelfKeyIDW/1.4.0")
            .json(&json!({ "signature": signature }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["cache-control"], "no-store");
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::CREATED, "v 0/1: {raw_v}: {body}");
        assert_eq!(body.as_object().unwrap().len(), 1);
        let claims = jwt_parts(body["jwt"].as_str().unwrap()).1;
        assert_eq!(claims["sub"], wallet.address());
        assert_eq!(claims["publicKey"], wallet.public_key());
        assert_eq!(claims["kind"], "wallet");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            300
        );
    }
    // The seed's bare challenge: the key is learnt from the signature.
    let wallet = TestWallet::random();
    let (_, challenge) = get_challenge(&app, "").await;
    let signature = wallet.sign(&challenge_text(&challenge), false);
    let (status, body) = answer(
        &app,
        challenge["jwt"].as_str().unwrap(),
        &json!({ "signature": signature }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        jwt_parts(body["jwt"].as_str().unwrap()).1["sub"],
        wallet.address()
    );
}

async fn did_mode_compares_addresses_and_checks_the_key_id(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = TestWallet::random();
    let other = TestWallet::random();
    let key_id = format!("{}#keys-1", wallet.did());
    let cases = [
        // The wallet's own signature, DID form and plain form: accepted.
        (
            &wallet,
            json!({"value": "SIG", "keyId": key_id}),
            StatusCode::CREATED,
        ),
        (&wallet, json!("SIG"), StatusCode::CREATED),
        (&wallet, json!({"value": "SIG"}), StatusCode::CREATED),
        // A key id of another DID, or another wallet's signature: refused.
        (
            &wallet,
            json!({"value": "SIG", "keyId": format!("{}#keys-1", other.did())}),
            StatusCode::BAD_REQUEST,
        ),
        (
            &other,
            json!({"value": "SIG", "keyId": key_id}),
            StatusCode::BAD_REQUEST,
        ),
        (&other, json!("SIG"), StatusCode::BAD_REQUEST),
        (
            &wallet,
            json!({"value": "SIG", "keyId": wallet.did()}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (signer, template, expected) in cases {
        let (_, challenge) = get_challenge(&app, &wallet.did()).await;
        let signature = signer.sign(&challenge_text(&challenge), false);
        let filled: Value =
            serde_json::from_str(&template.to_string().replace("SIG", &signature)).unwrap();
        let (status, body) = answer(
            &app,
            challenge["jwt"].as_str().unwrap(),
            &json!({ "signature": filled }),
        )
        .await;
        assert_eq!(status, expected, "{template}: {body}");
        if expected == StatusCode::CREATED {
            let claims = jwt_parts(body["jwt"].as_str().unwrap()).1;
            assert_eq!(claims["sub"], wallet.address());
            assert_eq!(claims["publicKey"], wallet.public_key());
        } else {
            assert_eq!(
                body,
                json!({"code": "invalid_signature", "message": "Invalid Signature"})
            );
        }
    }
}

async fn answering_refuses_each_bad_request_with_its_code(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = TestWallet::random();
    let (_, challenge) = get_challenge(&app, &wallet.public_key()).await;
    let token = challenge["jwt"].as_str().unwrap();
    let good = wallet.sign(&challenge_text(&challenge), false);
    let url = app.url(&format!("{MOUNT}/auth/challenge"));

    // No token at all, or another scheme.
    for auth in [None, Some(format!("Basic {token}")), Some("Bearer ".into())] {
        let mut req = app.client.post(&url).json(&json!({ "signature": good }));
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let (status, body) = read(req.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"code": "no_auth_token", "message": "No auth token provided"})
        );
    }

    // Tokens that are not challenge tokens at all: 400.
    let account = app.registered(&email(), "password123").await;
    let wallet_token = wallet_token(&app, &TestWallet::random()).await;
    for not_a_challenge in ["garbage", "a.b.c", account.as_str(), wallet_token.as_str()] {
        let (status, body) = answer(&app, not_a_challenge, &json!({ "signature": good })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{not_a_challenge}");
        assert_eq!(
            body,
            json!({"code": "invalid_auth_token", "message": "Invalid token: not a token of the expected kind"})
        );
    }
    // A challenge token signed with another secret: 401.
    let (_, claims) = jwt_parts(token);
    let forged = gatehouse::crypto::jwt::TokenKeys::new(
        b"another-secret-another-secret-another",
        "gatehouse",
    )
    .sign(TokenKind::Challenge, &claims);
    let res = app
        .client
        .post(&url)
        .bearer_auth(&forged)
        .json(&json!({ "signature": good }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"code": "invalid_auth_token", "message": "Invalid token: forged, expired or already used"})
    );

    // No signature.
    for body in [
        json!({}),
        json!({"signature": null}),
        json!({"signature": {"keyId": "did:eth:0x00"}}),
    ] {
        let (status, res) = answer(&app, token, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            res,
            json!({"code": "no_signature", "message": "No signature provided"})
        );
    }
    // Malformed signatures.
    let v5 = format!("{}05", &good[..130]);
    for signature in [
        json!("0x1234"),
        json!(good.trim_start_matches("0x")),
        json!(v5),
        json!(12),
        json!(["0x"]),
        json!({"value": 5}),
        json!({"value": good, "keyId": "not-a-did"}),
        json!({"value": good, "keyId": 7}),
    ] {
        let (status, res) = answer(&app, token, &json!({ "signature": signature })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{signature}");
        assert_eq!(
            res,
            json!({"code": "invalid_signature", "message": "Invalid Signature"})
        );
    }
    // A body that is not JSON.
    let res = app
        .client
        .post(&url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body("{signature")
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"code": "invalid_request", "message": "The request body is not valid JSON."})
    );
    // After all that, the challenge is still good.
    let (status, _) = answer(&app, token, &json!({ "signature": good })).await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn a_wrong_signature_does_not_burn_the_challenge(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = TestWallet::random();
    let (_, challenge) = get_challenge(&app, &wallet.public_key()).await;
    let token = challenge["jwt"].as_str().unwrap();
    let text = challenge_text(&challenge);
    for wrong in [
        TestWallet::random().sign(&text, false),
        wallet.sign("another text", false),
        // The right signature with the other recovery id: recovers another key.
        {
            let right = wallet.sign(&text, false);
            let v = if right.ends_with("1b") { "1c" } else { "1b" };
            format!("{}{v}", &right[..130])
        },
    ] {
        let (status, body) = answer(&app, token, &json!({ "signature": wrong })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"code": "invalid_signature", "message": "Invalid Signature"})
        );
    }
    let (status, body) = answer(&app, token, &json!({"signature": wallet.sign(&text, true)})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn a_challenge_can_be_answered_once(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = TestWallet::random();
    let (_, challenge) = get_challenge(&app, &wallet.public_key()).await;
    let token = challenge["jwt"].as_str().unwrap();
    let text = challenge_text(&challenge);
    let (status, _) = answer(
        &app,
        token,
        &json!({"signature": wallet.sign(&text, false)}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // Replayed: the same answer, or the other v form of it.
    for signature in [wallet.sign(&text, false), wallet.sign(&text, true)] {
        let (status, body) = answer(&app, token, &json!({ "signature": signature })).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            json!({"code": "invalid_auth_token", "message": "The challenge was already answered or has expired"})
        );
    }
}

async fn expired_challenges_are_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = TestWallet::random();
    let text = "expired challenge text";
    let signature = wallet.sign(text, false);
    // The token itself has expired (its stored row is still live).
    let now = unix_now();
    let (live, jti) = app.app.tokens.issue(
        TokenKind::Challenge,
        &wallet.public_key(),
        now,
        300,
        json!({"challenge": text}),
    );
    app.app
        .store
        .put_one_time(&jti, "selfkey-challenge", &wallet.public_key(), now + 300)
        .await
        .unwrap();
    let mut claims = jwt_parts(&live).1;
    claims["iat"] = json!(now - 600);
    claims["exp"] = json!(now - 300);
    let expired = app.app.tokens.sign(TokenKind::Challenge, &claims);
    let (status, body) = answer(&app, &expired, &json!({ "signature": signature })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"code": "invalid_auth_token", "message": "Invalid token: forged, expired or already used"})
    );
    // The token is live but its stored row has expired: refused all the same.
    let stale = stored_challenge(&app, &wallet.public_key(), text, -1).await;
    let (status, body) = answer(&app, &stale, &json!({ "signature": signature })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "invalid_auth_token");
    // The live one still works.
    let (status, _) = answer(&app, &live, &json!({ "signature": signature })).await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn concurrent_answers_to_one_challenge_have_one_winner(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = TestWallet::random();
    let (_, challenge) = get_challenge(&app, &wallet.public_key()).await;
    let token = challenge["jwt"].as_str().unwrap();
    let body = json!({"signature": wallet.sign(&challenge_text(&challenge), false)});
    let answers = (0..8).map(|_| answer(&app, token, &body));
    let results = futures::future::join_all(answers).await;
    let winners = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert_eq!(winners, 1, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(*status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], "invalid_auth_token");
    }
}

async fn a_new_wallet_signs_up_and_signs_in(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = TestWallet::random();
    let token = wallet_token(&app, &wallet).await;
    let (status, body) = login_token(&app, &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"code": "user_does_not_exist", "message": "User with provided public key does not exist"})
    );
    let address = email();
    let (status, body) = sign_up(&app, &token, &email_attributes(&address)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body,
        json!({"address": wallet.address(), "result": "created"})
    );

    for route in ["/auth/token", "/users/token"] {
        let res = app
            .client
            .get(app.url(&format!("{MOUNT}{route}")))
            .bearer_auth(&token)
            .header("origin", "IDW")
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["cache-control"], "no-store");
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::OK, "{route}: {body}");
        assert_eq!(body["token"], body["user"]);
        assert_eq!(body.as_object().unwrap().len(), 2);
    }
    let (_, body) = login_token(&app, &token, None).await;
    let res = app
        .client
        .post(app.url(&format!("{MOUNT}/login")))
        .json(&json!({"token": body["token"]}))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["redirectTo"], "/");
    assert_eq!(body["redirectUrl"], "/");
    assert_eq!(body.as_object().unwrap().len(), 6, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["refresh_token"].is_string());
    let session = body["token"].as_str().unwrap();
    assert_eq!(
        cookie,
        format!("gatehouse_session={session}; HttpOnly; SameSite=Lax; Path=/; Max-Age=900")
    );
    // The account token is an ordinary one: /auth/me shows the wallet. The email the
    // wallet shared is unverified: not the account's, and not in its token.
    let (header, claims) = jwt_parts(session);
    assert_eq!(header, json!({"alg": "HS512", "typ": "JWT"}));
    assert!(claims.get("email").is_none(), "{claims}");
    assert!(claims.get("email_verified").is_none(), "{claims}");
    assert!(claims.get("kind").is_none());
    let (status, me) = app.me(session).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], claims["sub"]);
    assert_eq!(me["email"], Value::Null);
    assert_eq!(me["email_verified"], false);
    let methods = me["sign_in_methods"].as_array().unwrap();
    assert_eq!(methods.len(), 1);
    assert_eq!(methods[0]["method"], "wallet");
    assert_eq!(methods[0]["address"], wallet.address());
    // Signing up again replaces the attributes of the same account.
    let (status, body) = sign_up(&app, &token, &email_attributes(&email())).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        body,
        json!({"address": wallet.address(), "result": "updated"})
    );
    assert_eq!(sign_in(&app, &wallet).await.1["sub"], claims["sub"]);
}

async fn the_login_token_is_single_use_and_short_lived(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = TestWallet::random();
    let token = signed_up(&app, &wallet, &email()).await;
    let (_, body) = login_token(&app, &token, None).await;
    let login = body["token"].as_str().unwrap();
    let claims = jwt_parts(login).1;
    assert_eq!(claims["kind"], "login");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );
    let (status, _) = post_login(&app, &json!({ "token": login })).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = post_login(&app, &json!({ "token": login })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"code": "invalid_token", "message": "Invalid token: forged, expired or already used", "redirectTo": "/login"})
    );
    // Concurrent exchanges of one login token: one session.
    let (_, body) = login_token(&app, &token, None).await;
    let body = json!({"token": body["token"]});
    let results = futures::future::join_all((0..6).map(|_| post_login(&app, &body))).await;
    let winners = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(winners, 1, "{results:?}");
    // An expired one.
    let (_, body) = login_token(&app, &token, None).await;
    let mut claims = jwt_parts(body["token"].as_str().unwrap()).1;
    claims["exp"] = json!(unix_now() - 1);
    let expired = app.app.tokens.sign(TokenKind::Login, &claims);
    let (status, body) = post_login(&app, &json!({ "token": expired })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "invalid_token");
}

async fn login_errors_carry_a_redirect(b: Backend) {
    let app = TestApp::spawn_with(b, |s| {
        s.selfkey.error_redirect_to = "/signin?failed=1".into()
    })
    .await;
    let cases = [
        (
            json!({}),
            StatusCode::BAD_REQUEST,
            "no_token",
            "No token provided",
        ),
        (
            json!({"token": ""}),
            StatusCode::BAD_REQUEST,
            "no_token",
            "No token provided",
        ),
        (
            json!({"token": "garbage"}),
            StatusCode::BAD_REQUEST,
            "invalid_token",
            "Invalid token: not a token of the expected kind",
        ),
    ];
    for (body, status, code, message) in cases {
        let (got, res) = post_login(&app, &body).await;
        assert_eq!(got, status, "{body}");
        assert_eq!(
            res,
            json!({"code": code, "message": message, "redirectTo": "/signin?failed=1"}),
            "{body}"
        );
    }
    let (status, body) = post_login(&app, &json!({"token": 5})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_request");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("invalid type: integer `5`"),
        "{body}"
    );
    assert_eq!(body["redirectTo"], "/signin?failed=1");
    let res = app
        .client
        .post(app.url(&format!("{MOUNT}/login")))
        .header("content-type", "text/plain")
        .body("token=x")
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_request");
    assert_eq!(body["redirectTo"], "/signin?failed=1");
    // A login token for an account that does not exist (any more): 404.
    let now = unix_now();
    let ghost = gatehouse::domain::AccountId::generate();
    let (token, jti) = app
        .app
        .tokens
        .issue(TokenKind::Login, &ghost.0, now, 60, json!({}));
    app.app
        .store
        .put_one_time(&jti, "selfkey-login", &ghost.0, now + 60)
        .await
        .unwrap();
    let (status, body) = post_login(&app, &json!({ "token": token })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"code": "user_does_not_exist", "message": "The account of this token no longer exists", "redirectTo": "/signin?failed=1"})
    );
    // GET is not a route here.
    let (status, body) = read(app.get(&format!("{MOUNT}/login"), None).await).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        body,
        json!({"message": "Method not allowed on this route."})
    );
}

async fn tokens_of_one_kind_are_refused_where_another_is_expected(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = TestWallet::random();
    let wallet_jwt = signed_up(&app, &wallet, &email()).await;
    let (_, challenge) = get_challenge(&app, &wallet.public_key()).await;
    let challenge_jwt = challenge["jwt"].as_str().unwrap().to_string();
    let (_, body) = login_token(&app, &wallet_jwt, None).await;
    let login_jwt = body["token"].as_str().unwrap().to_string();
    let account_jwt = app.registered(&email(), "password123").await;
    let link_jwt = link_token(&app, &account_jwt).await;
    let not_kind = |code: &str| json!({"code": code, "message": "Invalid token: not a token of the expected kind"});

    // Where a wallet token is expected: /users, /auth/token.
    for other in [&challenge_jwt, &account_jwt, &login_jwt, &link_jwt] {
        let (status, body) = sign_up(&app, other, &email_attributes(&email())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, not_kind("invalid_token"));
        let (status, body) = login_token(&app, other, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, not_kind("invalid_token"));
    }
    // Where a login token is expected: /login.
    for other in [&challenge_jwt, &account_jwt, &wallet_jwt, &link_jwt] {
        let (status, body) = post_login(&app, &json!({ "token": other })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], "invalid_token");
    }
    // Where an account token is expected: /auth/me and the account's SelfKey routes.
    for other in [&challenge_jwt, &wallet_jwt, &login_jwt, &link_jwt] {
        let (status, body) = app.me(other).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            json!({"message": "A valid bearer token is required."})
        );
        let res = app
            .client
            .post(app.url(&format!("{MOUNT}/link-token")))
            .bearer_auth(other)
            .send()
            .await
            .unwrap();
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            json!({"code": "invalid_token", "message": "A valid account token is required."})
        );
    }
    // A wallet token forged with another secret, and an expired one: 401.
    let claims = jwt_parts(&wallet_jwt).1;
    let forged = gatehouse::crypto::jwt::TokenKeys::new(
        b"another-secret-another-secret-another",
        "gatehouse",
    )
    .sign(TokenKind::Wallet, &claims);
    let mut old = claims.clone();
    old["exp"] = json!(unix_now() - 1);
    let expired = app.app.tokens.sign(TokenKind::Wallet, &old);
    for bad in [forged, expired] {
        let (status, body) = login_token(&app, &bad, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            json!({"code": "invalid_token", "message": "Invalid token: forged, expired or already used"})
        );
    }
    // A wallet token whose key does not match its address is refused.
    let mut mismatched = claims.clone();
    mismatched["publicKey"] = json!(TestWallet::random().public_key());
    let mismatched = app.app.tokens.sign(TokenKind::Wallet, &mismatched);
    let (status, _) = login_token(&app, &mismatched, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // No token.
    let (status, body) = read(app.get(&format!("{MOUNT}/auth/token"), None).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"code": "no_auth_token", "message": "No auth token provided"})
    );
}

async fn sign_up_refuses_bad_attributes_and_changes_nothing(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = TestWallet::random();
    let token = wallet_token(&app, &wallet).await;
    let cases = [
        (json!({}), "no_attributes", "No attributes were provided."),
        (
            json!({"attributes": []}),
            "no_attributes",
            "No attributes were provided.",
        ),
        (
            json!({"attributes": "email"}),
            "invalid_attributes",
            "The 'attributes' field must be a JSON array of attribute objects.",
        ),
        (
            json!({"attributes": [{"id": "first_name", "data": "Joe"}]}),
            "missing_attribute",
            "The 'email' attribute is required and was not provided.",
        ),
        (
            json!({"attributes": [{"id": EMAIL_SCHEMA, "data": {"value": "not-an-email"}}]}),
            "invalid_attributes",
            "The 'email' attribute must be a valid email address.",
        ),
        (
            json!({"attributes": [{"id": EMAIL_SCHEMA, "data": "a@example.com"}], "meta": "x"}),
            "invalid_meta",
            "The 'meta' field must be a JSON object; its 'linkToken', if any, a string.",
        ),
        (
            json!({"attributes": [{"id": EMAIL_SCHEMA, "data": "a@example.com"}], "meta": {"linkToken": "garbage"}}),
            "invalid_link_token",
            "The link token is invalid, expired or already used.",
        ),
    ];
    for (body, code, message) in cases {
        let (status, res) = sign_up(&app, &token, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(res, json!({"code": code, "message": message}), "{body}");
    }
    for (content_type, body, message) in [
        (
            "application/json",
            "[1,",
            "The request body is not valid JSON.",
        ),
        (
            "text/plain",
            "attributes",
            "Send the attributes as JSON (application/json) or as multipart/form-data.",
        ),
        (
            "multipart/form-data",
            "no boundary",
            "The multipart body could not be read.",
        ),
    ] {
        let res = app
            .client
            .post(app.url(&format!("{MOUNT}/users")))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, res) = read(res).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{content_type}");
        assert_eq!(
            res,
            json!({"code": "invalid_attributes", "message": message})
        );
    }
    let (status, res) = sign_up(&app, "", &email_attributes(&email())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(res["code"], "no_auth_token");
    // None of it created anything.
    let (status, _) = login_token(&app, &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn multipart_sign_up_resolves_documents(b: Backend) {
    let app = TestApp::spawn_with(b, with_passport).await;
    let wallet = TestWallet::random();
    let token = wallet_token(&app, &wallet).await;
    let address = email();
    let png = vec![0x89, b'P', b'N', b'G', 0, 1, 2, 3];
    // As the January 2019 wallet builds it: attributes and meta as JSON parts, and
    // the documents as file parts named after their references.
    let attributes = json!([
        {"id": EMAIL_SCHEMA, "schemaId": EMAIL_SCHEMA, "data": {"value": address}, "documents": []},
        {"id": PASSPORT_SCHEMA, "schema": {"$id": PASSPORT_SCHEMA}, "data": {"value": {"number": "X123", "image": "$document-1"}}, "documents": [1]},
        {"id": "http://platform.selfkey.org/schema/attribute/first_name.json", "data": {"value": "Joe"}},
    ]);
    let form = Form::new()
        .part(
            "attributes",
            Part::text(attributes.to_string())
                .mime_str("application/json")
                .unwrap(),
        )
        .part(
            "meta",
            Part::text("{}").mime_str("application/json").unwrap(),
        )
        .part(
            "$document-1",
            Part::bytes(png.clone())
                .file_name("passport.png")
                .mime_str("image/png")
                .unwrap(),
        );
    let (status, body) = post_multipart(&app, &token, form).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body,
        json!({"address": wallet.address(), "result": "created"})
    );

    let (session, claims) = sign_in(&app, &wallet).await;
    assert!(claims.get("email").is_none(), "{claims}");
    let (status, details) = read(
        app.get(
            &format!("{MOUNT}/wallets/{}", wallet.address()),
            Some(&session),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{details}");
    assert_eq!(details["address"], wallet.address());
    assert_eq!(details["public_key"], wallet.public_key());
    assert_eq!(
        details["attributes"],
        json!([
            {"key": "email", "schema": EMAIL_SCHEMA, "data": address},
            {"key": "passport", "schema": PASSPORT_SCHEMA, "data": {"number": "X123", "image": {
                "mimeType": "image/png", "size": 8, "content": "iVBORwABAgM="}}},
        ])
    );

    // A reference to a part that is not there.
    let other = TestWallet::random();
    let token = wallet_token(&app, &other).await;
    let attributes = json!([
        {"id": EMAIL_SCHEMA, "data": {"value": email()}},
        {"id": PASSPORT_SCHEMA, "data": {"value": {"image": "$document-2"}}},
    ]);
    let form = Form::new()
        .text("attributes", attributes.to_string())
        .part("$document-1", Part::bytes(png).file_name("passport.png"));
    let (status, body) = post_multipart(&app, &token, form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"code": "invalid_attributes", "message": "The attributes refer to '$document-2', which is not a file of this request."})
    );
    // Attributes that are not JSON, or no attributes part.
    for (form, code, message) in [
        (
            Form::new().text("attributes", "[{"),
            "invalid_attributes",
            "The 'attributes' part is not valid JSON.",
        ),
        (
            Form::new().text("other", "x"),
            "no_attributes",
            "No attributes were provided.",
        ),
        (
            Form::new()
                .text(
                    "attributes",
                    json!([{"id": "email", "data": "a@example.com"}]).to_string(),
                )
                .text("meta", "not json"),
            "invalid_meta",
            "The 'meta' field must be a JSON object; its 'linkToken', if any, a string.",
        ),
    ] {
        let (status, body) = post_multipart(&app, &token, form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, json!({"code": code, "message": message}));
    }
    let (status, _) = login_token(&app, &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn multipart_bodies_have_their_own_limit(b: Backend) {
    // The general limit is 1 MiB; the sign-up route's own is larger.
    let app = TestApp::spawn_with(b, |s| {
        with_passport(s);
        s.selfkey.multipart_limit_bytes = 3 * 1024 * 1024;
    })
    .await;
    let form = |size: usize| {
        let attributes = json!([
            {"id": "email", "data": email()},
            {"id": "passport", "data": {"image": "$document-1"}},
        ]);
        Form::new().text("attributes", attributes.to_string()).part(
            "$document-1",
            Part::bytes(vec![7u8; size])
                .file_name("scan.jpg")
                .mime_str("image/jpeg")
                .unwrap(),
        )
    };
    let token = wallet_token(&app, &TestWallet::random()).await;
    let (status, body) = post_multipart(&app, &token, form(2 * 1024 * 1024)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = wallet_token(&app, &TestWallet::random()).await;
    let res = app
        .client
        .post(app.url(&format!("{MOUNT}/users")))
        .bearer_auth(&token)
        .multipart(form(4 * 1024 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["connection"], "close");
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        body,
        json!({"code": "request_too_large", "message": "The request body is too large."})
    );
    let (status, _) = login_token(&app, &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn a_wallet_claiming_an_existing_email_must_link_instead(b: Backend) {
    let app = TestApp::spawn(b).await;
    let address = email();
    let password_token = app.registered(&address, "password123").await;
    let wallet = TestWallet::random();
    let token = wallet_token(&app, &wallet).await;
    for claimed in [address.clone(), address.to_uppercase()] {
        let (status, body) = sign_up(&app, &token, &email_attributes(&claimed)).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            body,
            json!({"code": "account_exists", "message": "An account with this email exists: sign in and link your wallet from your account."})
        );
    }
    // Nothing was linked: the wallet has no account, the password account no wallet.
    let (status, _) = login_token(&app, &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, me) = app.me(&password_token).await;
    assert_eq!(me["sign_in_methods"], json!([{"method": "password"}]));
}

async fn a_signed_in_person_links_a_wallet_with_a_link_token(b: Backend) {
    let app = TestApp::spawn(b).await;
    let address = email();
    let password_token = app.registered(&address, "password123").await;
    let account_id = jwt_parts(&password_token).1["sub"].clone();
    let res = app
        .client
        .post(app.url(&format!("{MOUNT}/link-token")))
        .bearer_auth(&password_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["expiresIn"], 600);
    assert_eq!(body.as_object().unwrap().len(), 2);
    let link = body["linkToken"].as_str().unwrap().to_string();
    assert_eq!(jwt_parts(&link).1["kind"], "link");

    // The wallet claims the same email, but the link token is the proof.
    let wallet = TestWallet::random();
    let token = wallet_token(&app, &wallet).await;
    let mut body = email_attributes(&address);
    body["meta"] = json!({ "linkToken": link });
    let (status, res) = sign_up(&app, &token, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{res}");
    assert_eq!(
        res,
        json!({"address": wallet.address(), "result": "linked"})
    );
    let (session, claims) = sign_in(&app, &wallet).await;
    assert_eq!(claims["sub"], account_id);
    assert_eq!(claims["email"], address);
    let (_, me) = app.me(&session).await;
    let methods: Vec<&str> = me["sign_in_methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["password", "wallet"]);
    // The password still signs in to the same account.
    let (_, login) = app.login(&address, "password123").await;
    assert_eq!(
        jwt_parts(login["token"].as_str().unwrap()).1["sub"],
        account_id
    );

    // The link token was used up: another wallet cannot use it.
    let other = TestWallet::random();
    let token = wallet_token(&app, &other).await;
    let mut body = email_attributes(&email());
    body["meta"] = json!({ "linkToken": link });
    let (status, res) = sign_up(&app, &token, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        res,
        json!({"code": "invalid_link_token", "message": "The link token is invalid, expired or already used."})
    );
    // An expired link token is refused too.
    let mut claims = jwt_parts(&link_token(&app, &password_token).await).1;
    claims["exp"] = json!(unix_now() - 1);
    body["meta"] = json!({"linkToken": app.app.tokens.sign(TokenKind::Link, &claims)});
    let (status, res) = sign_up(&app, &token, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(res["code"], "invalid_link_token");
    let (status, _) = login_token(&app, &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn an_account_with_a_wallet_adds_another(b: Backend) {
    let app = TestApp::spawn(b).await;
    let first = TestWallet::random();
    signed_up(&app, &first, &email()).await;
    let (session, claims) = sign_in(&app, &first).await;
    // The second wallet shares another email; the account keeps its own.
    let link = link_token(&app, &session).await;
    let second = TestWallet::random();
    let token = wallet_token(&app, &second).await;
    let body =
        json!({"attributes": [{"id": EMAIL_SCHEMA, "data": email()}], "meta": {"linkToken": link}});
    let (status, res) = sign_up(&app, &token, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{res}");
    assert_eq!(res["result"], "linked");
    // Either wallet signs in to the same account; the link did not change its email.
    for wallet in [&first, &second] {
        let (_, again) = sign_in(&app, wallet).await;
        assert_eq!(again["sub"], claims["sub"]);
        assert_eq!(again["email"], claims["email"]);
    }
    let (status, list) = read(app.get(&format!("{MOUNT}/wallets"), Some(&session)).await).await;
    assert_eq!(status, StatusCode::OK);
    let addresses: Vec<&str> = list["wallets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["address"].as_str().unwrap())
        .collect();
    assert_eq!(addresses.len(), 2);
    assert!(addresses.contains(&first.address().as_str()));
    assert!(addresses.contains(&second.address().as_str()));
}

async fn trusting_wallet_emails_links_by_email(b: Backend) {
    let app = TestApp::spawn_with(b, |s| s.selfkey.trust_wallet_email = true).await;
    let address = email();
    let password_token = app.registered(&address, "password123").await;
    let wallet = TestWallet::random();
    let token = wallet_token(&app, &wallet).await;
    let (status, body) = sign_up(&app, &token, &email_attributes(&address.to_uppercase())).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["result"], "linked");
    let (_, claims) = sign_in(&app, &wallet).await;
    assert_eq!(claims["sub"], jwt_parts(&password_token).1["sub"]);
}

async fn a_wallet_belongs_to_one_account(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = TestWallet::random();
    let token = signed_up(&app, &wallet, &email()).await;
    let (own_session, own) = sign_in(&app, &wallet).await;
    let other_session = app.registered(&email(), "password123").await;
    let other_link = link_token(&app, &other_session).await;

    // Signing up again with another account's link token.
    let mut body = email_attributes(&email());
    body["meta"] = json!({ "linkToken": other_link });
    let (status, res) = sign_up(&app, &token, &body).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        res,
        json!({"code": "wallet_linked", "message": "This wallet belongs to another account."})
    );
    // Signing in while the page holds another account's link token.
    let meta = json!({ "linkToken": other_link }).to_string();
    let (status, res) = login_token(&app, &token, Some(&meta)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(res["code"], "wallet_linked");
    // Its own account's link token, or a meta without one, is fine.
    let own_link = link_token(&app, &own_session).await;
    for meta in [json!({ "linkToken": own_link }), json!({"other": 1})] {
        let (status, body) = login_token(&app, &token, Some(&meta.to_string())).await;
        assert_eq!(status, StatusCode::OK, "{meta}");
        let (_, session) = post_login(&app, &json!({"token": body["token"]})).await;
        assert_eq!(
            jwt_parts(session["token"].as_str().unwrap()).1["sub"],
            own["sub"]
        );
    }
    for meta in ["not json", "\"x\"", r#"{"linkToken": 3}"#] {
        let (status, body) = login_token(&app, &token, Some(meta)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{meta}");
        assert_eq!(body["code"], "invalid_meta");
    }
    // The other account's link token was not used up by the refusals.
    let second = TestWallet::random();
    let token = wallet_token(&app, &second).await;
    let mut body = email_attributes(&email());
    body["meta"] = json!({ "linkToken": other_link });
    let (status, res) = sign_up(&app, &token, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{res}");
    assert_eq!(res["result"], "linked");
}

async fn wallets_are_listed_shown_and_removed_but_never_the_last_sign_in(b: Backend) {
    let app = TestApp::spawn(b).await;
    // A wallet-only account with two wallets.
    let first = TestWallet::random();
    signed_up(&app, &first, &email()).await;
    let (session, _) = sign_in(&app, &first).await;
    let second = TestWallet::random();
    let token = wallet_token(&app, &second).await;
    let mut body = email_attributes(&email());
    body["meta"] = json!({"linkToken": link_token(&app, &session).await});
    assert_eq!(sign_up(&app, &token, &body).await.0, StatusCode::CREATED);

    let remove = |address: String, bearer: Option<String>| {
        let mut req = app
            .client
            .delete(app.url(&format!("{MOUNT}/wallets/{address}")));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        async move { read(req.send().await.unwrap()).await }
    };
    let (status, body) = remove(
        second.address().to_uppercase().replacen("0X", "0x", 1),
        Some(session.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let left = body["wallets"].as_array().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["address"], first.address());
    assert!(left[0]["linked_at"].is_i64());
    // The removed wallet no longer signs in.
    let (status, _) = login_token(&app, &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Again: not found, here or through the details route.
    let (status, body) = remove(second.address(), Some(session.clone())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"code": "wallet_not_found", "message": "This account has no such wallet."})
    );
    let (status, body) = read(
        app.get(
            &format!("{MOUNT}/wallets/{}", second.address()),
            Some(&session),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "wallet_not_found");
    // The last wallet of a wallet-only account stays.
    let (status, body) = remove(first.address(), Some(session.clone())).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body,
        json!({"code": "last_sign_in_method", "message": "This wallet is the account's last way to sign in: set a password first (POST /auth/password/change, right after signing in) or add a passkey or another wallet."})
    );
    let (status, list) = read(app.get(&format!("{MOUNT}/wallets"), Some(&session)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["wallets"].as_array().unwrap().len(), 1);
    // Another account's wallet is not this account's to remove or read.
    let stranger = app.registered(&email(), "password123").await;
    let (status, body) = remove(first.address(), Some(stranger.clone())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "wallet_not_found");
    let (status, _) = read(
        app.get(
            &format!("{MOUNT}/wallets/{}", first.address()),
            Some(&stranger),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, list) = read(app.get(&format!("{MOUNT}/wallets"), Some(&stranger)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!({"wallets": []}));
    // Bad addresses, and no session.
    for bad in ["0x1234", "nope", &first.address()[2..]] {
        let (status, body) = remove(bad.to_string(), Some(session.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            body,
            json!({"code": "invalid_address", "message": "The address must be 0x and 40 hex digits."})
        );
    }
    let (status, body) = remove(first.address(), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"code": "invalid_token", "message": "A valid account token is required."})
    );
    let (status, _) = read(app.get(&format!("{MOUNT}/wallets"), None).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A password account may remove its only wallet: the password remains.
    let address = email();
    let password_session = app.registered(&address, "password123").await;
    let wallet = TestWallet::random();
    let token = wallet_token(&app, &wallet).await;
    let mut body = email_attributes(&address);
    body["meta"] = json!({"linkToken": link_token(&app, &password_session).await});
    assert_eq!(sign_up(&app, &token, &body).await.0, StatusCode::CREATED);
    let (status, body) = remove(wallet.address(), Some(password_session.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"wallets": []}));
    let (_, me) = app.me(&password_session).await;
    assert_eq!(me["sign_in_methods"], json!([{"method": "password"}]));
}

async fn the_page_config_has_absolute_urls(b: Backend) {
    let app = TestApp::spawn_with(b, |s| {
        with_passport(s);
        s.selfkey.website.name = "Shop".into();
        s.selfkey.website.policy_url = "https://legal.example/privacy".into();
    })
    .await;
    let config = |host: &str, forwarded: bool| {
        let mut req = app
            .client
            .get(app.url(&format!("{MOUNT}/config")))
            .header("host", host);
        if forwarded {
            req = req
                .header("x-forwarded-host", "shop.example")
                .header("x-forwarded-proto", "https");
        }
        async move { read(req.send().await.unwrap()).await }
    };
    let (status, body) = config("site.example:8080", false).await;
    assert_eq!(status, StatusCode::OK);
    let root = "http://site.example:8080/api/v1/selfkey";
    assert_eq!(
        body,
        json!({
            "website": {
                "name": "Shop",
                "url": "http://site.example:8080/",
                "termsUrl": "http://site.example:8080/terms",
                "policyUrl": "https://legal.example/privacy",
            },
            "rootEndpoint": root,
            "endpoints": {
                "/auth/challenge": format!("{root}/auth/challenge"),
                "/auth/token": format!("{root}/auth/token"),
                "/users": format!("{root}/users"),
                "/users/token": format!("{root}/users/token"),
                "/login": format!("{root}/login"),
                "/users/file": false,
            },
            "attributes": [
                {"key": "email", "label": "Email", "attribute": EMAIL_SCHEMA},
                {"key": "passport", "label": "Passport", "attribute": PASSPORT_SCHEMA},
            ],
        })
    );
    // Forwarded headers from a client that is not a trusted proxy are ignored.
    let (_, body) = config("site.example", true).await;
    assert_eq!(body["rootEndpoint"], "http://site.example/api/v1/selfkey");
    // A Host that would break out of the URL is refused.
    let (status, body) = config("evil.example/path?", false).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"code": "invalid_host", "message": "The request's Host header is missing or invalid."})
    );

    // Behind a trusted proxy, its forwarded host and scheme are used.
    let proxied =
        TestApp::spawn_with(b, |s| s.http.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let res = proxied
        .client
        .get(proxied.url(&format!("{MOUNT}/config")))
        .header("x-forwarded-host", "shop.example")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["rootEndpoint"], "https://shop.example/api/v1/selfkey");
    assert_eq!(body["website"]["url"], "https://shop.example/");

    // A configured public URL wins over everything.
    let public = TestApp::spawn_with(b, |s| {
        s.http.public_url = Some("https://auth.example/".into());
    })
    .await;
    let res = public
        .client
        .get(public.url(&format!("{MOUNT}/config")))
        .header("host", "other.example")
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["rootEndpoint"], "https://auth.example/api/v1/selfkey");
    assert_eq!(body["website"]["termsUrl"], "https://auth.example/terms");
}

async fn the_page_routes_answer_cors_and_serve_the_wallet_origin(b: Backend) {
    let app = TestApp::spawn_with(b, |s| {
        s.http.cors_origins = vec!["http://site.example".into()]
    })
    .await;
    for path in ["/login", "/config"] {
        let url = app.url(&format!("{MOUNT}{path}"));
        let res = app
            .client
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", "http://site.example")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap();
        let headers = res.headers().clone();
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body, Value::Null);
        assert_eq!(
            headers["access-control-allow-origin"],
            "http://site.example"
        );
        assert_eq!(headers["access-control-allow-credentials"], "true");
        let methods = headers["access-control-allow-methods"].to_str().unwrap();
        assert!(
            methods.contains("POST") && methods.contains("GET"),
            "{methods}"
        );
        // Another origin gets no permission.
        let res = app
            .client
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", "http://evil.example")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert!(
            res.headers().get("access-control-allow-origin").is_none(),
            "{path}"
        );
        // Any OPTIONS is answered, not refused as a method the route lacks.
        let res = app
            .client
            .request(reqwest::Method::OPTIONS, &url)
            .send()
            .await
            .unwrap();
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body, Value::Null);
    }
    // The page's own call carries the CORS header...
    let res = app
        .client
        .get(app.url(&format!("{MOUNT}/config")))
        .header("origin", "http://site.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://site.example"
    );
    assert_eq!(read(res).await.0, StatusCode::OK);
    // ...and the wallet's `Origin: IDW` is served normally, without one.
    let wallet = TestWallet::random();
    let token = signed_up(&app, &wallet, &email()).await;
    let (_, body) = login_token(&app, &token, None).await;
    let res = app
        .client
        .post(app.url(&format!("{MOUNT}/login")))
        .header("origin", "IDW")
        .header("user-agent", "SelfKeyIDW/1.4.0")
        .json(&json!({"token": body["token"]}))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["redirectTo"], "/");
}

async fn the_session_cookie_is_secure_behind_https(b: Backend) {
    let app = TestApp::spawn_with(b, |s| {
        s.http.public_url = Some("https://auth.example".into());
        s.selfkey.cookie_name = "sk".into();
        s.selfkey.redirect_to = "/welcome".into();
        s.token_lifetime_secs = 900;
    })
    .await;
    let wallet = TestWallet::random();
    let token = signed_up(&app, &wallet, &email()).await;
    let (_, body) = login_token(&app, &token, None).await;
    let res = app
        .client
        .post(app.url(&format!("{MOUNT}/login")))
        .json(&json!({"token": body["token"]}))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["redirectTo"], "/welcome");
    assert_eq!(body["redirectUrl"], "/welcome");
    let session = body["token"].as_str().unwrap();
    assert_eq!(
        cookie,
        format!("sk={session}; HttpOnly; SameSite=Lax; Path=/; Max-Age=900; Secure")
    );
}

async fn the_mount_is_configurable_and_can_be_off(b: Backend) {
    let app = TestApp::spawn_with(b, |s| s.selfkey.mount = "/lws".into()).await;
    let (status, body) = read(app.get("/lws/auth/challenge", None).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["jwt"].is_string());
    let (status, _) = read(app.get(&format!("{MOUNT}/auth/challenge"), None).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let off = TestApp::spawn_with(b, |s| s.selfkey.enabled = false).await;
    for path in ["/auth/challenge", "/config"] {
        let (status, body) = read(off.get(&format!("{MOUNT}{path}"), None).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, json!({"message": "No such route."}));
    }
    let (_, doc) = read(off.get("/openapi.json", None).await).await;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.keys().all(|p| !p.starts_with(MOUNT)), "{paths:?}");
}

async fn openapi_documents_the_selfkey_routes(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (status, doc) = read(app.get("/openapi.json", None).await).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/auth/challenge", "get"),
        ("/auth/challenge", "post"),
        ("/auth/challenge/{publicKey}", "get"),
        ("/users", "post"),
        ("/auth/token", "get"),
        ("/users/token", "get"),
        ("/login", "post"),
        ("/config", "get"),
        ("/link-token", "post"),
        ("/wallets", "get"),
        ("/wallets/{address}", "get"),
        ("/wallets/{address}", "delete"),
    ] {
        let full = format!("{MOUNT}{path}");
        assert!(
            paths.get(&full).and_then(|p| p.get(method)).is_some(),
            "{method} {full} missing"
        );
    }
    let users = &paths[&format!("{MOUNT}/users")]["post"]["requestBody"]["content"];
    assert!(users.get("application/json").is_some(), "{users}");
    let multipart = &users["multipart/form-data"]["schema"];
    assert!(
        multipart.to_string().contains("UsersMultipart"),
        "{multipart}"
    );
    let schema = &doc["components"]["schemas"]["UsersMultipart"]["properties"];
    assert!(
        schema.get("attributes").is_some() && schema.get("$document-1").is_some(),
        "{schema}"
    );
}

// ---- the test wallet and the protocol's calls ----

/// Plays the SelfKey wallet: a secp256k1 key that signs as `personal_sign` does.
pub(crate) struct TestWallet {
    secret: SecretKey,
}

impl TestWallet {
    pub(crate) fn random() -> Self {
        loop {
            if let Ok(secret) =
                SecretKey::from_secret_bytes(gatehouse::crypto::random_bytes::<32>())
            {
                return TestWallet { secret };
            }
        }
    }

    fn from_hex(key: &str) -> Self {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(key, &mut bytes).unwrap();
        TestWallet {
            secret: SecretKey::from_secret_bytes(bytes).unwrap(),
        }
    }

    fn public_bytes(&self) -> [u8; 65] {
        secp256k1::PublicKey::from_secret_key(&self.secret).serialize_uncompressed()
    }

    /// 128 hex digits, no `0x`, no `04`.
    fn public_key(&self) -> String {
        hex::encode(&self.public_bytes()[1..])
    }

    pub(crate) fn address(&self) -> String {
        let hash = Keccak256::digest(&self.public_bytes()[1..]);
        format!("0x{}", hex::encode(&hash[12..]))
    }

    fn did(&self) -> String {
        format!("did:eth:{}", self.address())
    }

    /// `personal_sign(message)`: `0x` r s v, v as 27/28, or as 0/1 with `raw_v`.
    pub(crate) fn sign(&self, message: &str, raw_v: bool) -> String {
        let mut hasher = Keccak256::new();
        hasher.update(format!("\x19Ethereum Signed Message:\n{}", message.len()));
        hasher.update(message);
        let digest: [u8; 32] = hasher.finalize().into();
        let signature = RecoverableSignature::sign_ecdsa_recoverable(
            secp256k1::Message::from_digest(digest),
            &self.secret,
        );
        let (recovery_id, rs) = signature.serialize_compact();
        let v = u8::from(recovery_id) + if raw_v { 0 } else { 27 };
        format!("0x{}{v:02x}", hex::encode(rs))
    }
}

pub(crate) fn challenge_path(key: &str) -> String {
    if key.is_empty() {
        format!("{MOUNT}/auth/challenge")
    } else {
        format!("{MOUNT}/auth/challenge/{key}")
    }
}

pub(crate) async fn get_challenge(app: &TestApp, key: &str) -> (StatusCode, Value) {
    let res = app
        .client
        .get(app.url(&challenge_path(key)))
        .header("origin", "IDW")
        .header("user-agent", "SelfKeyIDW/1.4.0")
        .send()
        .await
        .unwrap();
    read(res).await
}

/// The text the wallet signs, read from the challenge token without verifying it.
pub(crate) fn challenge_text(challenge: &Value) -> String {
    jwt_parts(challenge["jwt"].as_str().unwrap()).1["challenge"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A challenge token with a chosen text, stored as the server stores its own;
/// its stored row expires `ttl` seconds from now.
async fn stored_challenge(app: &TestApp, sub: &str, text: &str, ttl: i64) -> String {
    let now = unix_now();
    let (token, jti) = app.app.tokens.issue(
        TokenKind::Challenge,
        sub,
        now,
        300,
        json!({ "challenge": text }),
    );
    app.app
        .store
        .put_one_time(&jti, "selfkey-challenge", sub, now + ttl)
        .await
        .unwrap();
    token
}

pub(crate) async fn answer(app: &TestApp, challenge: &str, body: &Value) -> (StatusCode, Value) {
    let res = app
        .client
        .post(app.url(&format!("{MOUNT}/auth/challenge")))
        .bearer_auth(challenge)
        .json(body)
        .send()
        .await
        .unwrap();
    read(res).await
}

/// A wallet token for `wallet`, by the protocol's challenge and answer.
pub(crate) async fn wallet_token(app: &TestApp, wallet: &TestWallet) -> String {
    let (status, challenge) = get_challenge(app, &wallet.public_key()).await;
    assert_eq!(status, StatusCode::OK, "{challenge}");
    let signature = wallet.sign(&challenge_text(&challenge), false);
    let (status, body) = answer(
        app,
        challenge["jwt"].as_str().unwrap(),
        &json!({ "signature": signature }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["jwt"].as_str().unwrap().to_string()
}

pub(crate) fn email_attributes(address: &str) -> Value {
    json!({"attributes": [{"id": EMAIL_SCHEMA, "schemaId": EMAIL_SCHEMA, "data": {"value": address}}], "meta": {}})
}

fn with_passport(s: &mut gatehouse::config::Settings) {
    s.selfkey.attributes.push(RequestedAttribute {
        key: "passport".into(),
        label: "Passport".into(),
        schema: PASSPORT_SCHEMA.into(),
        required: false,
    });
}

pub(crate) async fn sign_up(
    app: &TestApp,
    wallet_token: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(app.url(&format!("{MOUNT}/users")))
        .header("origin", "IDW")
        .json(body);
    if !wallet_token.is_empty() {
        req = req.bearer_auth(wallet_token);
    }
    read(req.send().await.unwrap()).await
}

async fn post_multipart(app: &TestApp, wallet_token: &str, form: Form) -> (StatusCode, Value) {
    let res = app
        .client
        .post(app.url(&format!("{MOUNT}/users")))
        .bearer_auth(wallet_token)
        .header("origin", "IDW")
        .header("user-agent", "SelfKeyIDW/1.4.0")
        .multipart(form)
        .send()
        .await
        .unwrap();
    read(res).await
}

/// Signs a new wallet up with an email; returns its wallet token.
pub(crate) async fn signed_up(app: &TestApp, wallet: &TestWallet, address: &str) -> String {
    let token = wallet_token(app, wallet).await;
    let (status, body) = sign_up(app, &token, &email_attributes(address)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    token
}

pub(crate) async fn login_token(
    app: &TestApp,
    wallet_token: &str,
    meta: Option<&str>,
) -> (StatusCode, Value) {
    let mut url = reqwest::Url::parse(&app.url(&format!("{MOUNT}/auth/token"))).unwrap();
    if let Some(meta) = meta {
        url.query_pairs_mut().append_pair("meta", meta);
    }
    let res = app
        .client
        .get(url)
        .bearer_auth(wallet_token)
        .send()
        .await
        .unwrap();
    read(res).await
}

pub(crate) async fn post_login(app: &TestApp, body: &Value) -> (StatusCode, Value) {
    let res = app
        .client
        .post(app.url(&format!("{MOUNT}/login")))
        .json(body)
        .send()
        .await
        .unwrap();
    read(res).await
}

/// The whole sign-in of a known wallet: challenge, answer, login token, `/login`.
/// Returns the account token and its claims.
pub(crate) async fn sign_in(app: &TestApp, wallet: &TestWallet) -> (String, Value) {
    let token = wallet_token(app, wallet).await;
    let (status, body) = login_token(app, &token, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post_login(app, &json!({"token": body["token"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let session = body["token"].as_str().unwrap().to_string();
    let claims = jwt_parts(&session).1;
    (session, claims)
}

pub(crate) async fn link_token(app: &TestApp, account_token: &str) -> String {
    let res = app
        .client
        .post(app.url(&format!("{MOUNT}/link-token")))
        .bearer_auth(account_token)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["linkToken"].as_str().unwrap().to_string()
}

/// Through the binary (`migrate` loads and checks the configuration, then exits), as
/// an operator would start it: the README's example loads; bad values are named.
#[test]
fn the_readme_configuration_loads_and_bad_selfkey_values_are_named() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let wiring = readme.split("### Wiring it into a site").nth(1).unwrap();
    let example = wiring
        .split("```toml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gatehouse.toml");
    let migrate = |toml: &str| {
        std::fs::write(&file, toml).unwrap();
        crate::process::gatehouse(dir.path())
            .args(["--config", file.to_str().unwrap(), "migrate"])
            .output()
            .unwrap()
    };
    let out = migrate(example);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (toml, key) in [
        (
            "[selfkey]\ncookie_name = \"my session\"\n",
            "selfkey.cookie_name",
        ),
        (
            "[http]\ncors_origins = [\"shop.example\"]\n",
            "http.cors_origins",
        ),
        (
            "[[selfkey.attributes]]\nkey = \"email\"\n",
            "selfkey.attributes",
        ),
    ] {
        let out = migrate(toml);
        assert_eq!(out.status.code(), Some(2), "{toml}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{key}: {stderr}");
    }
}
