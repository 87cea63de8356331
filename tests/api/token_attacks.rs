//! Forged, tampered, foreign and malformed tokens on `/auth/me`: every one is refused
//! with 401 and the same JSON body; `WWW-Authenticate` says `Bearer` with no token,
//! `error="invalid_token"` with one, and only a genuine expired token is called expired
//! (RFC 6750 §3.1), so a page knows when a refresh helps. Forgeries are signed
//! for real (with our secret where the attack calls for it), and each group has a
//! control that the same construction with the right parameters is accepted, so a
//! refusal is the defence at work and not a broken forgery.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use gatehouse::crypto::jwt::{MAX_TOKEN_LEN, TokenKind};
use gatehouse::domain::unix_now;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, JWT_SECRET, TestApp, email, jwt_parts, read};

crate::on_every_backend!(
    missing_and_non_bearer_credentials_are_refused,
    other_algorithms_are_refused_even_when_signed_with_our_secret,
    stripped_and_altered_signatures_are_refused,
    altered_payloads_are_refused,
    expired_premature_and_foreign_issuer_tokens_are_refused,
    tokens_of_other_kinds_and_other_secrets_are_refused,
    oversized_tokens_are_refused,
    garbage_in_each_part_is_refused,
);

const HS512: &str = r#"{"alg":"HS512","typ":"JWT"}"#;

fn b64(bytes: impl AsRef<[u8]>) -> String {
    B64.encode(bytes)
}

/// The HMAC hash: HS256, HS384 or HS512.
#[derive(Clone, Copy)]
enum HmacHash {
    Sha256,
    Sha384,
    Sha512,
}
use HmacHash::{Sha256, Sha384, Sha512};

/// An HMAC of `input` with our secret.
fn hmac(hash: HmacHash, input: &str) -> Vec<u8> {
    macro_rules! tag {
        ($digest:ty) => {{
            let mut mac = Hmac::<$digest>::new_from_slice(JWT_SECRET.as_bytes()).unwrap();
            mac.update(input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }};
    }
    match hash {
        Sha256 => tag!(sha2::Sha256),
        Sha384 => tag!(sha2::Sha384),
        Sha512 => tag!(sha2::Sha512),
    }
}

/// `header.payload.signature`, the signature an HMAC with our secret over the first
/// two (encoded) parts.
fn signed(hash: HmacHash, header: &str, payload: &str) -> String {
    let input = format!("{header}.{payload}");
    let tag = hmac(hash, &input);
    format!("{input}.{}", b64(tag))
}

/// Our secret, HS512, over JSON values: how a valid token is made.
fn hs512(header: &str, claims: &Value) -> String {
    signed(Sha512, &b64(header), &b64(claims.to_string()))
}

/// A registered account and the claims of its token.
async fn account(app: &TestApp) -> (String, Value) {
    let token = app.registered(&email(), "password123").await;
    let claims = jwt_parts(&token).1;
    (token, claims)
}

/// `WWW-Authenticate` of a refused token that is not a genuine expired one.
const INVALID: &str =
    r#"Bearer error="invalid_token", error_description="The access token is invalid""#;
/// `WWW-Authenticate` of a genuine token past its `exp`.
const EXPIRED: &str =
    r#"Bearer error="invalid_token", error_description="The access token expired""#;

async fn assert_refused(app: &TestApp, what: &str, token: &str) {
    assert_refused_with(app, what, token, INVALID).await;
}

async fn assert_refused_with(app: &TestApp, what: &str, token: &str, expected: &str) {
    let res = app.get("/auth/me", Some(token)).await;
    let challenge = res.headers().get("www-authenticate").cloned();
    let (status, body) = read(res).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "{what} was accepted: {token}"
    );
    assert_eq!(challenge.unwrap(), expected, "{what}");
    assert_eq!(
        body,
        json!({"message": "A valid bearer token is required."}),
        "{what}"
    );
}

async fn assert_accepted(app: &TestApp, what: &str, token: &str, claims: &Value) {
    let (status, me) = app.me(token).await;
    assert_eq!(status, StatusCode::OK, "control {what}: {me}");
    assert_eq!(me["id"], claims["sub"], "control {what}");
}

async fn missing_and_non_bearer_credentials_are_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (token, claims) = account(&app).await;
    assert_accepted(&app, "genuine", &token, &claims).await;
    for header in [
        None,
        Some(String::new()),
        Some("Bearer".to_string()),
        Some("Bearer ".to_string()),
        Some(format!("Basic {token}")),
        Some(format!("Token {token}")),
        Some(token.clone()),
    ] {
        let mut req = app.client.get(app.url("/auth/me"));
        if let Some(h) = &header {
            req = req.header("authorization", h);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.headers()["www-authenticate"], "Bearer", "{header:?}");
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header:?}");
        assert_eq!(
            body,
            json!({"message": "A valid bearer token is required."})
        );
    }
    // A bearer token was sent, and it is not one: refused as a token.
    assert_refused(&app, "two tokens", &format!("{token} {token}")).await;
}

async fn other_algorithms_are_refused_even_when_signed_with_our_secret(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, claims) = account(&app).await;
    // Control: our own construction, with the right algorithm and key, is accepted,
    // including jwt-simple's key order in the header.
    assert_accepted(&app, "HS512", &hs512(HS512, &claims), &claims).await;
    let reordered = hs512(r#"{"typ":"JWT","alg":"HS512"}"#, &claims);
    assert_accepted(&app, "reordered header", &reordered, &claims).await;

    let payload = b64(claims.to_string());
    let header = |alg: &str| b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
    let mut forged = vec![];
    for alg in ["none", "None", "NONE", "nOnE"] {
        forged.push((
            format!("alg {alg}, no signature part"),
            format!("{}.{payload}", header(alg)),
        ));
        forged.push((
            format!("alg {alg}, empty signature"),
            format!("{}.{payload}.", header(alg)),
        ));
        let with_tag = format!(
            "{}.{payload}.{}",
            header(alg),
            b64(hmac(Sha512, &format!("{}.{payload}", header(alg))))
        );
        forged.push((format!("alg {alg}, HS512 tag"), with_tag));
    }
    forged.push((
        "HS256 with our secret".into(),
        signed(Sha256, &header("HS256"), &payload),
    ));
    forged.push((
        "HS384 with our secret".into(),
        signed(Sha384, &header("HS384"), &payload),
    ));
    for alg in ["RS256", "ES256", "PS256", "EdDSA"] {
        // The classic confusion: a public-key algorithm, "verified" with the secret as
        // an HMAC key.
        forged.push((
            format!("{alg}, HMAC-SHA256 with our secret"),
            signed(Sha256, &header(alg), &payload),
        ));
        // And the exact HMAC-SHA512 tag we would compute: only the pin refuses it.
        forged.push((
            format!("{alg}, HMAC-SHA512 with our secret"),
            signed(Sha512, &header(alg), &payload),
        ));
    }
    for alg in ["hs512", "HS512 ", "HS5120"] {
        forged.push((
            format!("alg {alg:?}"),
            signed(Sha512, &header(alg), &payload),
        ));
    }
    let crit = b64(r#"{"alg":"HS512","crit":["b64"],"b64":false}"#);
    forged.push(("critical extension".into(), signed(Sha512, &crit, &payload)));
    for (what, token) in forged {
        assert_refused(&app, &what, &token).await;
    }
}

/// The genuine token, re-signed until its signature contains a URL-safe-only character,
/// so that re-encoding it in the standard alphabet changes the text.
fn token_with_url_safe_signature(claims: &Value) -> String {
    (0..)
        .map(|n| {
            let mut c = claims.clone();
            c["jti"] = json!(format!("{n:032x}"));
            hs512(HS512, &c)
        })
        .find(|t| t.rsplit('.').next().unwrap().contains(['-', '_']))
        .unwrap()
}

async fn stripped_and_altered_signatures_are_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (token, claims) = account(&app).await;
    let variant = token_with_url_safe_signature(&claims);
    assert_accepted(&app, "re-signed", &variant, &claims).await;

    let (input, signature) = variant.rsplit_once('.').unwrap();
    let tag = B64.decode(signature).unwrap();
    let flip = |i: usize| {
        let mut chars: Vec<char> = signature.chars().collect();
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect::<String>()
    };
    // 64 bytes fill 86 characters with 2 bits to spare: a last character that differs
    // only in those bits decodes to the same bytes in a lenient decoder.
    let last = signature.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = alphabet.find(last).unwrap();
    let sloppy_last = alphabet.chars().nth(index ^ 1).unwrap();
    let sloppy = format!("{}{sloppy_last}", &signature[..signature.len() - 1]);
    let mut zeroed = tag.clone();
    zeroed.iter_mut().for_each(|b| *b = 0);
    let cases = [
        ("stripped, no signature part", input.to_string()),
        ("stripped, empty signature", format!("{input}.")),
        ("first character changed", format!("{input}.{}", flip(0))),
        ("middle character changed", format!("{input}.{}", flip(40))),
        ("unused trailing bits changed", format!("{input}.{sloppy}")),
        ("padded", format!("{input}.{signature}==")),
        (
            "standard base64 alphabet",
            format!("{input}.{}", STANDARD.encode(&tag)),
        ),
        (
            "truncated to 32 bytes",
            format!("{input}.{}", b64(&tag[..32])),
        ),
        (
            "doubled",
            format!("{input}.{}", b64([tag.clone(), tag.clone()].concat())),
        ),
        ("all zero", format!("{input}.{}", b64(zeroed))),
        (
            "signature of another token",
            format!("{input}.{}", token.rsplit('.').next().unwrap()),
        ),
    ];
    for (what, forged) in cases {
        assert_refused(&app, what, &forged).await;
    }
}

async fn altered_payloads_are_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (token, claims) = account(&app).await;
    let (victim_token, victim) = account(&app).await;
    assert_accepted(&app, "victim", &victim_token, &victim).await;
    let parts: Vec<&str> = token.split('.').collect();
    let with_claims = |c: &Value| format!("{}.{}.{}", parts[0], b64(c.to_string()), parts[2]);
    let mut other_sub = claims.clone();
    other_sub["sub"] = victim["sub"].clone();
    let mut longer = claims.clone();
    longer["exp"] = json!(unix_now() + 10 * 365 * 86400);
    let mut admin = claims.clone();
    admin["admin"] = json!(true);
    let reformatted = serde_json::to_string_pretty(&claims).unwrap();
    let cases = [
        ("another account's sub", with_claims(&other_sub)),
        ("a later exp", with_claims(&longer)),
        ("an added claim", with_claims(&admin)),
        (
            "the same claims, re-serialised",
            format!("{}.{}.{}", parts[0], b64(reformatted), parts[2]),
        ),
        (
            "the payload padded",
            format!("{}.{}=.{}", parts[0], parts[1], parts[2]),
        ),
    ];
    for (what, forged) in cases {
        assert_refused(&app, what, &forged).await;
    }
}

async fn expired_premature_and_foreign_issuer_tokens_are_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, claims) = account(&app).await;
    let now = unix_now();
    let with = |changes: Value| {
        let mut c = claims.clone();
        for (k, v) in changes.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    // Control: a token we forge with a later nbf that has passed is fine.
    let fine = with(json!({"nbf": now - 60}));
    assert_accepted(&app, "nbf in the past", &hs512(HS512, &fine), &claims).await;
    let expired = [
        (
            "expired an hour ago",
            json!({"iat": now - 7200, "exp": now - 3600}),
        ),
        ("expired a minute ago", json!({"exp": now - 60})),
    ];
    for (what, changes) in expired {
        assert_refused_with(&app, what, &hs512(HS512, &with(changes)), EXPIRED).await;
    }
    // Expired, but not ours: a forgery is never told it merely expired.
    let forged = signed(
        Sha512,
        &b64(HS512),
        &b64(with(json!({"exp": now - 60})).to_string()),
    );
    let (input, signature) = forged.rsplit_once('.').unwrap();
    let first = if signature.starts_with('A') { 'B' } else { 'A' };
    let forged = format!("{input}.{first}{}", &signature[1..]);
    assert_refused(&app, "expired with a bad signature", &forged).await;
    let cases = [
        (
            "expired by another issuer",
            json!({"iss": "https://evil.example", "exp": now - 60}),
        ),
        ("nbf in an hour", json!({"nbf": now + 3600})),
        ("another issuer", json!({"iss": "https://evil.example"})),
        ("issuer in another case", json!({"iss": "Gatehouse"})),
        ("empty issuer", json!({"iss": ""})),
        ("exp as a string", json!({"exp": (now + 3600).to_string()})),
        ("exp as a float", json!({"exp": (now + 3600) as f64 + 0.5})),
        ("exp as an array", json!({"exp": [now + 3600]})),
        ("nbf as a string", json!({"nbf": (now - 60).to_string()})),
        ("nbf as a float", json!({"nbf": (now - 60) as f64 + 0.5})),
        ("nbf as an array", json!({"nbf": [now - 60]})),
        (
            "auth_time as a string",
            json!({"auth_time": now.to_string()}),
        ),
        ("sid as a number", json!({"sid": 1})),
        (
            "a session that never existed",
            json!({"sid": gatehouse::crypto::random_id()}),
        ),
    ];
    for (what, changes) in cases {
        assert_refused(&app, what, &hs512(HS512, &with(changes))).await;
    }
    for missing in ["exp", "iss", "sub", "iat", "jti", "sid", "auth_time"] {
        let mut c = claims.clone();
        c.as_object_mut().unwrap().remove(missing);
        assert_refused(&app, &format!("no {missing}"), &hs512(HS512, &c)).await;
    }
}

async fn tokens_of_other_kinds_and_other_secrets_are_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, claims) = account(&app).await;
    let sub = claims["sub"].as_str().unwrap();
    let keys = &app.app.tokens;
    let extra = json!({"email": claims["email"]});
    for kind in [
        TokenKind::Challenge,
        TokenKind::Wallet,
        TokenKind::Login,
        TokenKind::Link,
    ] {
        let (token, _) = keys.issue(kind, sub, unix_now(), 600, extra.clone());
        assert_refused(&app, &format!("{kind:?} token"), &token).await;
        // The account's claims signed with that kind's key, and an account-key token
        // that claims to be of that kind.
        let other_key = keys.sign(kind, &claims);
        assert_refused(&app, &format!("account claims, {kind:?} key"), &other_key).await;
        let mut labelled = claims.clone();
        labelled["kind"] = json!(kind.name());
        assert_refused(
            &app,
            &format!("kind {}", kind.name()),
            &hs512(HS512, &labelled),
        )
        .await;
    }
    let other_secret = gatehouse::crypto::jwt::TokenKeys::new(
        b"another-secret-another-secret-another",
        "gatehouse",
    );
    let foreign = other_secret.sign(TokenKind::Account, &claims);
    assert_refused(&app, "another secret", &foreign).await;
    let mut nobody = claims.clone();
    nobody["sub"] = json!(gatehouse::domain::AccountId::generate().0);
    assert_refused(
        &app,
        "an account that does not exist",
        &hs512(HS512, &nobody),
    )
    .await;
}

async fn oversized_tokens_are_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, claims) = account(&app).await;
    let padded = |len: usize| {
        let mut c = claims.clone();
        c["pad"] = json!("");
        let base = hs512(HS512, &c).len();
        // Three characters of payload for every two bytes of padding... near enough:
        // grow until the token reaches the length asked for.
        let mut pad = (len.saturating_sub(base)) * 3 / 4;
        loop {
            c["pad"] = json!("x".repeat(pad));
            let t = hs512(HS512, &c);
            if t.len() >= len {
                return t;
            }
            pad += 1;
        }
    };
    let at_limit = padded(MAX_TOKEN_LEN - 3);
    assert!(at_limit.len() <= MAX_TOKEN_LEN);
    assert_accepted(&app, "just under the limit", &at_limit, &claims).await;
    let over = padded(MAX_TOKEN_LEN + 1);
    assert!(over.len() > MAX_TOKEN_LEN);
    assert_refused(&app, "just over the limit", &over).await;
    assert_refused(&app, "16 KiB", &padded(16 * 1024)).await;
}

async fn garbage_in_each_part_is_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (token, claims) = account(&app).await;
    let header = b64(HS512);
    let payload = b64(claims.to_string());
    let sign = |h: &str, p: &str| signed(Sha512, h, p);
    // Control: the parts as they should be, signed by the helper, are accepted.
    assert_accepted(&app, "well-formed", &sign(&header, &payload), &claims).await;

    let garbage = [
        ("invalid base64", "!!not*base64!!".to_string()),
        ("base64 of non-JSON", b64("this is not json")),
        ("base64 of binary", b64([0xff_u8, 0xfe, 0x00, 0x80])),
        ("a JSON array", b64("[1,2,3]")),
        ("a JSON string", b64(r#""HS512""#)),
        ("JSON null", b64("null")),
        ("an empty part", String::new()),
    ];
    let mut cases = vec![];
    for (what, part) in &garbage {
        // Validly signed with our secret: only the part itself can be refused.
        cases.push((format!("header: {what}"), sign(part, &payload)));
        cases.push((format!("payload: {what}"), sign(&header, part)));
        let (input, _) = token.rsplit_once('.').unwrap();
        cases.push((format!("signature: {what}"), format!("{input}.{part}")));
    }
    for (what, wrong) in [
        ("alg a number", r#"{"alg":512}"#),
        ("alg null", r#"{"alg":null}"#),
        ("no alg", r#"{"typ":"JWT"}"#),
        ("alg an array", r#"{"alg":["HS512"]}"#),
    ] {
        cases.push((format!("header: {what}"), sign(&b64(wrong), &payload)));
    }
    for (what, wrong) in [
        ("an empty object", json!({})),
        (
            "sub a number",
            json!({"sub": 7, "iat": 0, "exp": i64::MAX, "iss": "gatehouse", "jti": "x"}),
        ),
        ("claims nested", json!({"claims": claims.clone()})),
    ] {
        cases.push((
            format!("payload: {what}"),
            sign(&header, &b64(wrong.to_string())),
        ));
    }
    let mut duplicate = claims.to_string();
    duplicate.insert_str(1, r#""sub":"someone-else","#);
    cases.push((
        "payload: a duplicate sub".into(),
        sign(&header, &b64(duplicate)),
    ));
    cases.push(("a fourth part".into(), format!("{token}.{}", b64("{}"))));
    cases.push(("an empty fourth part".into(), format!("{token}.")));
    cases.push(("a leading dot".into(), format!(".{token}")));
    cases.push(("only dots".into(), "..".into()));
    cases.push(("one part".into(), header.clone()));
    for (what, forged) in cases {
        assert_refused(&app, &what, &forged).await;
    }
}
