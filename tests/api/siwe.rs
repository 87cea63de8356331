//! Sign-In with Ethereum over HTTP, with a test wallet that signs as an EOA does
//! (EIP-191 `personal_sign`): the nonce, every check with its own code, the one
//! wallet an address is for SelfKey and SIWE alike, linking, and one winner among
//! concurrent submissions of one signed message, on one node and on two.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, email, jwt_parts, read};
use crate::selfkey::{TestWallet, link_token, sign_in as selfkey_sign_in, signed_up};

crate::on_every_backend!(
    a_nonce_is_issued_without_an_address,
    a_new_address_signs_up_and_signs_in_again,
    each_check_refuses_with_its_own_code_and_keeps_the_nonce,
    bad_requests_are_refused_with_a_code,
    a_nonce_is_single_use,
    the_host_header_is_never_the_domain,
    one_address_is_one_wallet_for_selfkey_and_siwe,
    a_signed_in_person_links_an_address_with_a_link_token,
    concurrent_submissions_of_one_message_make_one_session,
    siwe_can_be_off,
    with_no_domains_the_site_is_localhost_on_the_listening_port,
    the_siwe_routes_are_rate_limited_per_address,
);

/// The site of the test server's default configuration.
const SITE: &str = "localhost:8080";

/// The message a page builds for `wallet` with `nonce`; `edit` changes lines.
pub(crate) fn message(
    wallet: &TestWallet,
    nonce: &str,
    edit: impl FnOnce(String) -> String,
) -> String {
    edit(message_for(SITE, wallet, nonce))
}

/// The message a page on `site` (`host:port`) builds for `wallet` with `nonce`.
fn message_for(site: &str, wallet: &TestWallet, nonce: &str) -> String {
    let issued_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    format!(
        "{site} wants you to sign in with your Ethereum account:\n{}\n\n\
         Sign in to Gatehouse\n\nURI: http://{site}/login\nVersion: 1\nChain ID: 1\n\
         Nonce: {nonce}\nIssued At: {issued_at}",
        eip55(&wallet.address())
    )
}

/// The EIP-55 form of a lower-case `0x` address.
fn eip55(address: &str) -> String {
    gatehouse::crypto::eth::Address::parse(address)
        .unwrap()
        .to_eip55()
}

pub(crate) async fn nonce(app: &TestApp) -> String {
    let (status, body) = read(app.get("/auth/siwe/nonce", None).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["nonce"].as_str().unwrap().to_string()
}

async fn submit(app: &TestApp, body: &Value) -> (StatusCode, Value) {
    app.post_json("/auth/siwe", body).await
}

/// Signs `text` with `wallet` and submits it.
pub(crate) async fn signed(app: &TestApp, wallet: &TestWallet, text: &str) -> (StatusCode, Value) {
    submit(
        app,
        &json!({"message": text, "signature": wallet.sign(text, false)}),
    )
    .await
}

/// A whole sign-in of `wallet`, with a fresh nonce: the answer.
pub(crate) async fn signed_in_as(app: &TestApp, wallet: &TestWallet) -> (StatusCode, Value) {
    let text = message(wallet, &nonce(app).await, |t| t);
    signed(app, wallet, &text).await
}

/// A whole sign-in; returns the account token's `sub`.
async fn signed_in(app: &TestApp, wallet: &TestWallet) -> String {
    let text = message(wallet, &nonce(app).await, |t| t);
    let (status, body) = signed(app, wallet, &text).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    jwt_parts(body["token"].as_str().unwrap()).1["sub"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn a_nonce_is_issued_without_an_address(b: Backend) {
    let app = TestApp::spawn(b).await;
    let res = app.get("/auth/siwe/nonce", None).await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK);
    let first = body["nonce"].as_str().unwrap();
    assert_eq!(first.len(), 32, "{body}");
    assert!(first.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert_ne!(nonce(&app).await, first);
}

async fn a_new_address_signs_up_and_signs_in_again(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = TestWallet::random();
    let text = message(&wallet, &nonce(&app).await, |t| t);
    let res = app
        .client
        .post(app.url("/auth/siwe"))
        .json(&json!({"message": text, "signature": wallet.sign(&text, true)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap();
    let (header, claims) = jwt_parts(token);
    assert_eq!(header["alg"], "HS512");
    assert_eq!(
        claims["kind"],
        Value::Null,
        "an account token has no kind claim"
    );
    assert_eq!(claims["email"], Value::Null);

    let (status, me) = app.me(token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["id"], claims["sub"]);
    assert_eq!(me["email"], Value::Null);
    let methods = me["sign_in_methods"].as_array().unwrap();
    assert_eq!(methods.len(), 1, "{me}");
    assert_eq!(methods[0]["address"], wallet.address());

    // The same address again: the same account, no second one.
    assert_eq!(
        signed_in(&app, &wallet).await,
        claims["sub"].as_str().unwrap()
    );
    // Another address: another account.
    assert_ne!(
        signed_in(&app, &TestWallet::random()).await,
        claims["sub"].as_str().unwrap()
    );
}

async fn each_check_refuses_with_its_own_code_and_keeps_the_nonce(b: Backend) {
    let app = TestApp::spawn_with(b, |s| s.siwe.chain_ids = vec![1, 10]).await;
    let wallet = TestWallet::random();
    let other = TestWallet::random();
    let n = nonce(&app).await;
    let later = |secs: i64| {
        (time::OffsetDateTime::now_utc() + time::Duration::seconds(secs))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let (past, future, far_future) = (later(-1), later(3600), later(120));
    let issued = |t: &str| t.split("Issued At: ").nth(1).unwrap().to_string();
    let cases: Vec<(&str, StatusCode, String, Option<String>)> = vec![
        (
            "domain_mismatch",
            StatusCode::UNAUTHORIZED,
            message(&wallet, &n, |t| {
                t.replace("localhost:8080 wants", "evil.example wants")
            }),
            None,
        ),
        (
            "domain_mismatch",
            StatusCode::UNAUTHORIZED,
            message(&wallet, &n, |t| {
                t.replace("localhost:8080 wants", "localhost:8081 wants")
            }),
            None,
        ),
        (
            "scheme_mismatch",
            StatusCode::UNAUTHORIZED,
            message(&wallet, &n, |t| {
                t.replace("localhost:8080 wants", "https://localhost:8080 wants")
            }),
            None,
        ),
        (
            "uri_mismatch",
            StatusCode::UNAUTHORIZED,
            message(&wallet, &n, |t| {
                t.replace(
                    "URI: http://localhost:8080/login",
                    "URI: http://evil.example/login",
                )
            }),
            None,
        ),
        (
            "chain_not_allowed",
            StatusCode::UNAUTHORIZED,
            message(&wallet, &n, |t| {
                t.replace("Chain ID: 1\n", "Chain ID: 137\n")
            }),
            None,
        ),
        (
            "issued_at_out_of_range",
            StatusCode::UNAUTHORIZED,
            message(&wallet, &n, |t| {
                let i = issued(&t);
                t.replace(&i, &far_future)
            }),
            None,
        ),
        (
            "expired",
            StatusCode::UNAUTHORIZED,
            message(&wallet, &n, |t| format!("{t}\nExpiration Time: {past}")),
            None,
        ),
        (
            "not_yet_valid",
            StatusCode::UNAUTHORIZED,
            message(&wallet, &n, |t| format!("{t}\nNot Before: {future}")),
            None,
        ),
        (
            "signature_mismatch",
            StatusCode::UNAUTHORIZED,
            message(&wallet, &n, |t| t),
            Some(other.sign(&message(&wallet, &n, |t| t), false)),
        ),
        (
            "invalid_message",
            StatusCode::BAD_REQUEST,
            message(&wallet, &n, |t| t.replace("Version: 1", "Version: 2")),
            None,
        ),
        (
            "invalid_message",
            StatusCode::BAD_REQUEST,
            message(&wallet, &n, |t| {
                t.replace(&eip55(&wallet.address()), &wallet.address())
            }),
            None,
        ),
        (
            "invalid_signature",
            StatusCode::BAD_REQUEST,
            message(&wallet, &n, |t| t),
            Some("0x1234".into()),
        ),
        (
            "invalid_signature",
            StatusCode::BAD_REQUEST,
            message(&wallet, &n, |t| t),
            Some("not hex".into()),
        ),
        (
            "contract_wallet_unsupported",
            StatusCode::BAD_REQUEST,
            message(&wallet, &n, |t| t),
            Some(format!("0x{}{}", "ab".repeat(100), "6492".repeat(16))),
        ),
    ];
    for (code, status, text, signature) in cases {
        let signature = signature.unwrap_or_else(|| wallet.sign(&text, false));
        let (got, body) = submit(&app, &json!({"message": text, "signature": signature})).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{text}\n{body}"
        );
        assert!(!body["message"].as_str().unwrap().is_empty(), "{body}");
    }
    // A nonce nobody issued.
    let (status, body) = signed(&app, &wallet, &message(&wallet, "abcdefgh12345678", |t| t)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_nonce")),
        "{body}"
    );
    // None of the refusals consumed the nonce or made an account.
    let (status, body) = signed(&app, &wallet, &message(&wallet, &n, |t| t)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, me) = app.me(body["token"].as_str().unwrap()).await;
    assert_eq!(me["sign_in_methods"].as_array().unwrap().len(), 1, "{me}");
    // An allowed chain other than 1, and a message valid until later.
    let text = message(&wallet, &nonce(&app).await, |t| {
        format!(
            "{}\nExpiration Time: {future}\nNot Before: {past}",
            t.replace("Chain ID: 1\n", "Chain ID: 10\n")
        )
    });
    let (status, body) = signed(&app, &wallet, &text).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn bad_requests_are_refused_with_a_code(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = TestWallet::random();
    let text = message(&wallet, &nonce(&app).await, |t| t);
    let signature = wallet.sign(&text, false);
    for body in [
        json!({"signature": signature}),
        json!({"message": text}),
        json!({"message": 5, "signature": signature}),
        json!([text, signature]),
    ] {
        let (status, got) = submit(&app, &body).await;
        assert_eq!(
            (status, got["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{body}: {got}"
        );
    }
    let (status, got) = app.post_raw("/auth/siwe", "text/plain", text.clone()).await;
    assert_eq!(
        (status, got["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "{got}"
    );
    // A message far over any real one is refused before anything else is done.
    let long = format!("{text}\nResources:\n- https://x/{}", "a".repeat(20_000));
    let (status, got) = submit(&app, &json!({"message": long, "signature": signature})).await;
    assert_eq!(
        (status, got["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_message")),
        "{got}"
    );
    // The well-formed request still works: nothing above touched the nonce.
    let (status, got) = submit(&app, &json!({"message": text, "signature": signature})).await;
    assert_eq!(status, StatusCode::OK, "{got}");
}

async fn a_nonce_is_single_use(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = TestWallet::random();
    let n = nonce(&app).await;
    let text = message(&wallet, &n, |t| t);
    let (status, body) = signed(&app, &wallet, &text).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The same signed message again, and a new message with the used nonce.
    let (status, body) = signed(&app, &wallet, &text).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_nonce")),
        "{body}"
    );
    let text = message(&wallet, &n, |t| t.replace("Sign in to Gatehouse", "Again"));
    let (status, body) = signed(&app, &wallet, &text).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_nonce")),
        "{body}"
    );
}

async fn the_host_header_is_never_the_domain(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wallet = TestWallet::random();
    let host = app.base.trim_start_matches("http://").to_string();
    let text = message(&wallet, &nonce(&app).await, |t| {
        t.replace(&format!("{SITE} wants"), &format!("{host} wants"))
            .replace(
                &format!("http://{SITE}/login"),
                &format!("http://{host}/login"),
            )
    });
    for forwarded in [None, Some(host.as_str())] {
        let mut req = app
            .client
            .post(app.url("/auth/siwe"))
            .header("host", &host)
            .json(&json!({"message": text, "signature": wallet.sign(&text, false)}));
        if let Some(h) = forwarded {
            req = req.header("x-forwarded-host", h);
        }
        let (status, body) = read(req.send().await.unwrap()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("domain_mismatch")),
            "{body}"
        );
    }
    // The configured domain is the one: here an https site behind a proxy.
    let app = TestApp::spawn_with(b, |s| s.siwe.domains = vec!["https://app.example".into()]).await;
    let text = message(&wallet, &nonce(&app).await, |t| {
        t.replace(&format!("{SITE} wants"), "https://app.example wants")
            .replace(&format!("http://{SITE}/login"), "https://app.example/login")
    });
    let (status, body) = signed(&app, &wallet, &text).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn one_address_is_one_wallet_for_selfkey_and_siwe(b: Backend) {
    let app = TestApp::spawn(b).await;
    // Signed up through Login with SelfKey, then in through SIWE: the same account.
    let wallet = TestWallet::random();
    let address = email();
    signed_up(&app, &wallet, &address).await;
    let (_, selfkey_claims) = selfkey_sign_in(&app, &wallet).await;
    let sub = signed_in(&app, &wallet).await;
    assert_eq!(sub, selfkey_claims["sub"].as_str().unwrap());
    // The SIWE session's claims are the SelfKey one's (a wallet's email attribute is
    // not the account's email).
    let text = message(&wallet, &nonce(&app).await, |t| t);
    let (_, body) = signed(&app, &wallet, &text).await;
    let claims = jwt_parts(body["token"].as_str().unwrap()).1;
    for claim in ["sub", "email", "email_verified", "iss"] {
        assert_eq!(claims[claim], selfkey_claims[claim], "{claim}");
    }

    // Signed up through SIWE, then in through SelfKey: the same account, one wallet.
    let wallet = TestWallet::random();
    let sub = signed_in(&app, &wallet).await;
    let (token, claims) = selfkey_sign_in(&app, &wallet).await;
    assert_eq!(claims["sub"].as_str().unwrap(), sub);
    let (status, wallets) = read(app.get("/api/v1/selfkey/wallets", Some(&token)).await).await;
    assert_eq!(status, StatusCode::OK, "{wallets}");
    let listed: Vec<&str> = wallets["wallets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["address"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [wallet.address()], "{wallets}");
    // The only way in: it cannot be unlinked.
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/selfkey/wallets/{}", wallet.address())))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("last_sign_in_method")),
        "{body}"
    );
}

async fn a_signed_in_person_links_an_address_with_a_link_token(b: Backend) {
    let app = TestApp::spawn(b).await;
    let address = email();
    let account_token = app.registered(&address, "password123").await;
    let account = jwt_parts(&account_token).1["sub"].clone();
    let wallet = TestWallet::random();

    let link = link_token(&app, &account_token).await;
    let text = message(&wallet, &nonce(&app).await, |t| t);
    let body = json!({"message": text, "signature": wallet.sign(&text, false), "linkToken": link});
    let (status, got) = submit(&app, &body).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let claims = jwt_parts(got["token"].as_str().unwrap()).1;
    assert_eq!(
        (&claims["sub"], claims["email"].as_str()),
        (&account, Some(address.as_str()))
    );
    let (_, me) = app.me(&account_token).await;
    let methods: Vec<&str> = me["sign_in_methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["password", "wallet"], "{me}");
    assert_eq!(me["sign_in_methods"][1]["address"], wallet.address());
    // From now on the address alone signs in to that account.
    assert_eq!(signed_in(&app, &wallet).await, account.as_str().unwrap());

    // A link token is single use.
    let other = TestWallet::random();
    let text = message(&other, &nonce(&app).await, |t| t);
    let body = json!({"message": text, "signature": other.sign(&text, false), "linkToken": link});
    let (status, got) = submit(&app, &body).await;
    assert_eq!(
        (status, got["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_link_token")),
        "{got}"
    );

    // An address of another account is refused, and the link token is kept.
    let elsewhere = TestWallet::random();
    signed_in(&app, &elsewhere).await;
    let link = link_token(&app, &account_token).await;
    let text = message(&elsewhere, &nonce(&app).await, |t| t);
    let body =
        json!({"message": text, "signature": elsewhere.sign(&text, false), "linkToken": link});
    let (status, got) = submit(&app, &body).await;
    assert_eq!(
        (status, got["code"].as_str()),
        (StatusCode::CONFLICT, Some("wallet_linked")),
        "{got}"
    );
    let text = message(&other, &nonce(&app).await, |t| t);
    let body = json!({"message": text, "signature": other.sign(&text, false), "linkToken": link});
    let (status, got) = submit(&app, &body).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(jwt_parts(got["token"].as_str().unwrap()).1["sub"], account);
    // Garbage is not a link token.
    let text = message(&TestWallet::random(), &nonce(&app).await, |t| t);
    let (status, got) = submit(
        &app,
        &json!({"message": text, "signature": "0x", "linkToken": "nope"}),
    )
    .await;
    assert_eq!(
        (status, got["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_link_token")),
        "{got}"
    );
}

/// 50 submissions of one signed message at once: one session, 49 `invalid_nonce`.
/// On PostgreSQL, half of them go to a second node on the same database.
async fn concurrent_submissions_of_one_message_make_one_session(b: Backend) {
    let app = TestApp::spawn(b).await;
    let second = match b {
        Backend::Postgres => Some(app.another_node().await),
        Backend::Sqlite => None,
    };
    let nodes: Vec<&TestApp> = std::iter::once(&app).chain(second.as_ref()).collect();
    let wallet = TestWallet::random();
    let text = message(&wallet, &nonce(&app).await, |t| t);
    let body = json!({"message": text, "signature": wallet.sign(&text, false)});
    let results =
        futures::future::join_all((0..50).map(|i| submit(nodes[i % nodes.len()], &body))).await;
    let ok: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    for (status, body) in &results {
        if *status != StatusCode::OK {
            assert_eq!(
                (*status, body["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("invalid_nonce")),
                "{body}"
            );
        }
    }
    // One account, with the wallet, visible on every node.
    let token = ok[0]["token"].as_str().unwrap();
    for node in &nodes {
        let (status, me) = node.me(token).await;
        assert_eq!(status, StatusCode::OK, "{me}");
        assert_eq!(me["sign_in_methods"][0]["address"], wallet.address());
    }
    // A nonce from one node is good on the other.
    if let Some(second) = &second {
        let text = message(&wallet, &nonce(&app).await, |t| t);
        let (status, body) = signed(second, &wallet, &text).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            jwt_parts(body["token"].as_str().unwrap()).1["sub"],
            jwt_parts(token).1["sub"]
        );
    }
}

async fn siwe_can_be_off(b: Backend) {
    let app = TestApp::spawn_with(b, |s| s.siwe.enabled = false).await;
    let (status, _) = read(app.get("/auth/siwe/nonce", None).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = submit(&app, &json!({"message": "", "signature": ""})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// No `siwe.domains` and no `http.public_url`: the site is `localhost` on the port the
/// server listens on (here one the system chose), not 8080.
async fn with_no_domains_the_site_is_localhost_on_the_listening_port(b: Backend) {
    let app = TestApp::spawn_with(b, |s| s.siwe.domains = vec![]).await;
    let port = app.base.rsplit(':').next().unwrap();
    assert_ne!(port, "8080");
    let wallet = TestWallet::random();
    let text = message_for(&format!("localhost:{port}"), &wallet, &nonce(&app).await);
    let (status, body) = signed(&app, &wallet, &text).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let text = message_for("localhost:8080", &wallet, &nonce(&app).await);
    let (status, body) = signed(&app, &wallet, &text).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "domain_mismatch", "{body}");
}

async fn the_siwe_routes_are_rate_limited_per_address(b: Backend) {
    let app = TestApp::spawn_with(b, |s| s.rate_limit.per_address = 2).await;
    nonce(&app).await;
    let (status, body) = submit(&app, &json!({"message": "x", "signature": "0x"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_message")),
        "{body}"
    );
    let res = app.get("/auth/siwe/nonce", None).await;
    assert!(res.headers().contains_key("retry-after"));
    let (status, body) = read(res).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_requests")),
        "{body}"
    );
}
