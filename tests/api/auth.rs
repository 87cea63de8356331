//! `/auth/register`, `/auth/login`, `/auth/me`, health, errors: the seed's shapes.

use gatehouse::domain::unix_now;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, email, jwt_parts, read};

crate::on_every_backend!(
    an_internationalized_domain_and_its_a_label_are_one_account,
    register_returns_an_hs512_token_with_the_documented_claims,
    register_refuses_a_taken_email_case_insensitively,
    register_reports_each_missing_or_invalid_field,
    unparsable_bodies_get_a_json_400,
    an_undeclared_body_over_the_limit_is_cut_off,
    failed_registrations_leave_nothing_behind,
    an_address_the_mailer_cannot_take_is_refused_at_the_door,
    concurrent_registrations_of_one_email_create_one_account,
    login_returns_a_token_for_the_right_password,
    login_failures_are_indistinguishable,
    login_reports_missing_fields,
    login_rehashes_passwords_made_with_old_parameters,
    a_password_is_one_password_however_its_accents_were_typed,
    an_account_hashed_before_normalization_signs_in_as_typed_then_either_way,
    me_returns_the_account_and_its_sign_in_methods,
    health_ready_and_unknown_routes,
    openapi_documents_every_route,
    unexpected_failures_get_an_opaque_500,
);

async fn register_returns_an_hs512_token_with_the_documented_claims(b: Backend) {
    let app = TestApp::spawn(b).await;
    let res = app
        .client
        .post(app.url("/auth/register"))
        .json(&json!({"email": "  Joe.Bloggs@Example.com ", "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["expires_in", "refresh_token", "token", "token_type"],
        "{body}"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let token = body["token"].as_str().unwrap();
    let (header, claims) = jwt_parts(token);
    assert_eq!(header, json!({"alg": "HS512", "typ": "JWT"}));
    assert_eq!(claims["email"], "Joe.Bloggs@Example.com");
    assert_eq!(claims["iss"], "gatehouse");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert_eq!(claims["sid"].as_str().unwrap().len(), 32);
    assert_eq!(claims["auth_time"], claims["iat"]);
    assert!((claims["iat"].as_i64().unwrap() - unix_now()).abs() < 30);
    assert_eq!(claims["jti"].as_str().unwrap().len(), 32);
    assert!(claims.get("kind").is_none());
    // The token verifies with the configured secret and names the new account.
    let verified = app.app.sessions.authenticate(token).await.unwrap();
    let profile = app
        .app
        .store
        .account_by_email("joe.bloggs@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(verified.account, profile.id);
    assert_eq!(verified.session, claims["sid"].as_str().unwrap());
    assert!(
        profile
            .password_hash
            .unwrap()
            .starts_with("$argon2id$v=19$m=256,t=1,p=1,data=bmZrYw$")
    );
}

async fn register_refuses_a_taken_email_case_insensitively(b: Backend) {
    let app = TestApp::spawn(b).await;
    let addr = email();
    app.registered(&addr, "first-password").await;
    let (status, body) = app.register(&addr.to_uppercase(), "second-password").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body,
        json!({"message": "An account with this email already exists."})
    );
    // Nothing changed: the first password still works, the second does not.
    assert_eq!(app.login(&addr, "first-password").await.0, StatusCode::OK);
    assert_eq!(
        app.login(&addr, "second-password").await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn register_reports_each_missing_or_invalid_field(b: Backend) {
    let app = TestApp::spawn(b).await;
    let cases = [
        (
            json!({"password": "password123"}),
            "The 'email' field is required and was not provided.",
        ),
        (
            json!({"email": email()}),
            "The 'password' field is required and was not provided.",
        ),
        (
            json!({}),
            "The 'email' field is required and was not provided.",
        ),
        (
            json!({"email": "not-an-email", "password": "password123"}),
            "The 'email' field must be a valid email address.",
        ),
        (
            json!({"email": email(), "password": "short"}),
            "The 'password' field must be at least 8 characters long.",
        ),
        (
            json!({"email": email(), "password": "x".repeat(1025)}),
            "The 'password' field must be at most 1024 bytes long.",
        ),
    ];
    for (req, message) in cases {
        let (status, body) = app.post_json("/auth/register", &req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{req}");
        assert_eq!(body, json!({ "message": message }), "{req}");
    }
    // The longest allowed password is fine.
    assert_eq!(
        app.register(&email(), &"x".repeat(1024)).await.0,
        StatusCode::OK
    );
}

async fn unparsable_bodies_get_a_json_400(b: Backend) {
    let app = TestApp::spawn(b).await;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "application/json",
            "{not json".into(),
            "The request body is not valid JSON.",
        ),
        (
            "application/json",
            String::new(),
            "The request body is not valid JSON.",
        ),
        (
            "text/plain",
            r#"{"email":"a@example.com","password":"password123"}"#.into(),
            "The request body must be JSON, sent with Content-Type: application/json.",
        ),
        (
            "application/x-www-form-urlencoded",
            "email=a%40example.com".into(),
            "The request body must be JSON, sent with Content-Type: application/json.",
        ),
    ];
    for path in ["/auth/register", "/auth/login"] {
        for (content_type, body, message) in &cases {
            let (status, res) = app.post_raw(path, content_type, body.clone()).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{path} {content_type} {message}"
            );
            assert_eq!(
                res,
                json!({"message": message, "error": "Unable to parse JSON request"})
            );
        }
        let (status, res) = app
            .post_json(path, &json!({"email": 5, "password": "password123"}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(res["error"], "Unable to parse JSON request");
        assert!(
            res["message"]
                .as_str()
                .unwrap()
                .contains("invalid type: integer `5`"),
            "{res}"
        );
        // Declared too large: refused before the body is sent.
        let (status, res) = app.post_declaring(path, 2 * 1024 * 1024).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            res,
            json!({"message": "The request body is too large.", "error": "Unable to parse JSON request"})
        );
        let (status, res) = app.post_json(path, &json!(["email", "password"])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            res,
            json!({"message": "The request body must be a JSON object.", "error": "Unable to parse JSON request"})
        );
    }
    // A missing content type is refused the same way.
    let res = app
        .client
        .post(app.url("/auth/login"))
        .body("{}")
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "Unable to parse JSON request");
}

async fn an_undeclared_body_over_the_limit_is_cut_off(b: Backend) {
    let app = TestApp::spawn_with(b, |s| s.http.body_limit_bytes = 1024).await;
    let body = format!(
        r#"{{"email":"{}","password":"{}"}}"#,
        email(),
        "x".repeat(1500)
    );
    let chunked = format!(
        "POST /auth/register HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let (status, res) = app.send_raw(&chunked).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        res,
        json!({"message": "The request body is too large.", "error": "Unable to parse JSON request"})
    );
    // Under the limit, the same route works.
    assert_eq!(
        app.register(&email(), "password123").await.0,
        StatusCode::OK
    );
}

/// A quoted local part is a valid address, but the mailer refuses it: a mail to it
/// would be retried until it expired. It is refused when it is typed.
async fn an_address_the_mailer_cannot_take_is_refused_at_the_door(b: Backend) {
    let app = TestApp::spawn(b).await;
    let message = "The 'email' field must be a plain email address: the part before the @ \
                   may hold letters, digits and !#$%&'*+-/=?^_`{|}~ with single dots between \
                   them (no quotes, commas, spaces or brackets).";
    for addr in [
        "\"a,b\"@example.com",
        "\"joe\"@example.com",
        "a,b@example.com",
    ] {
        let (status, body) = app.register(addr, "password123").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{addr}: {body}");
        assert_eq!(body, json!({ "message": message }), "{addr}");
        let (status, body) = app.login(addr, "password123").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{addr}: {body}");
        assert_eq!(body, json!({ "message": message }), "{addr}");
    }
    let accounts = crate::mail::row_counts(&app)
        .await
        .into_iter()
        .find(|(table, _)| table == "accounts");
    assert_eq!(
        accounts,
        Some(("accounts".to_owned(), 0)),
        "no account created"
    );
}

async fn failed_registrations_leave_nothing_behind(b: Backend) {
    let app = TestApp::spawn(b).await;
    let addr = email();
    for req in [
        json!({"email": addr, "password": "short"}),
        json!({"email": addr}),
        json!({"email": addr, "password": 12345678}),
    ] {
        assert_eq!(
            app.post_json("/auth/register", &req).await.0,
            StatusCode::BAD_REQUEST
        );
    }
    assert!(
        app.app
            .store
            .account_by_email(&addr)
            .await
            .unwrap()
            .is_none()
    );
    // The address is still free.
    assert_eq!(app.register(&addr, "password123").await.0, StatusCode::OK);
}

async fn concurrent_registrations_of_one_email_create_one_account(b: Backend) {
    let app = TestApp::spawn(b).await;
    let addr = email();
    let attempts = (0..12).map(|i| {
        let app = &app;
        let addr = if i % 2 == 0 {
            addr.clone()
        } else {
            addr.to_uppercase()
        };
        async move { app.register(&addr, &format!("password-{i}")).await }
    });
    let results = futures::future::join_all(attempts).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let conflicts = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CONFLICT)
        .count();
    assert_eq!((ok, conflicts), (1, 11), "{results:?}");
    for (status, body) in &results {
        if *status == StatusCode::CONFLICT {
            assert_eq!(
                body["message"],
                "An account with this email already exists."
            );
        }
    }
}

async fn login_returns_a_token_for_the_right_password(b: Backend) {
    let app = TestApp::spawn(b).await;
    let addr = email();
    let registered = app.registered(&addr, "password123").await;
    let res = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({"email": format!("  {} ", addr.to_uppercase()), "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK);
    // The seed's `token`, the session's, and the lockout's device token (SECURITY.md).
    let mut fields: Vec<&String> = body.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "device_token",
            "expires_in",
            "refresh_token",
            "token",
            "token_type"
        ]
    );
    assert_eq!(body["token_type"], "Bearer");
    let token = body["token"].as_str().unwrap();
    assert_ne!(token, registered, "each token has its own jti");
    assert_ne!(
        jwt_parts(token).1["sid"],
        jwt_parts(&registered).1["sid"],
        "each sign-in its own session"
    );
    assert_eq!(jwt_parts(token).1["sub"], jwt_parts(&registered).1["sub"]);
    let (status, me) = app.me(token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], addr);
}

async fn login_failures_are_indistinguishable(b: Backend) {
    let app = crate::ownid::spawn(b).await;
    let known = email();
    app.registered(&known, "password123").await;
    let passwordless = email();
    app.registered_passwordless(&passwordless, "device-credential")
        .await;
    for (addr, password) in [
        (known.as_str(), "wrong-password"),
        (&email(), "password123"),
        (&passwordless, "password123"),
    ] {
        let res = app
            .client
            .post(app.url("/auth/login"))
            .json(&json!({"email": addr, "password": password}))
            .send()
            .await
            .unwrap();
        let headers = res.headers().clone();
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{addr}");
        assert_eq!(body, json!({"message": "Invalid credentials"}), "{addr}");
        assert!(headers.get("www-authenticate").is_none());
    }
}

async fn login_reports_missing_fields(b: Backend) {
    let app = TestApp::spawn(b).await;
    for (req, message) in [
        (
            json!({"password": "password123"}),
            "The 'email' field is required and was not provided.",
        ),
        (
            json!({"email": email()}),
            "The 'password' field is required and was not provided.",
        ),
        (
            json!({"email": "nope", "password": "password123"}),
            "The 'email' field must be a valid email address.",
        ),
    ] {
        let (status, body) = app.post_json("/auth/login", &req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, json!({ "message": message }));
    }
}

async fn login_rehashes_passwords_made_with_old_parameters(b: Backend) {
    let app = TestApp::spawn(b).await;
    let addr = email();
    // A hash made at other (older) parameters than the server's.
    let old = gatehouse::crypto::passwords::HashParams {
        memory_kib: 128,
        iterations: 1,
        parallelism: 1,
    };
    let hasher = gatehouse::crypto::passwords::PasswordHasher::new(old, 1).unwrap();
    let password = gatehouse::domain::Password::parse("password123".into()).unwrap();
    let hash = hasher.hash(&password).await.unwrap();
    app.app
        .store
        .create_account(&gatehouse::store::NewAccount {
            id: gatehouse::domain::AccountId::generate(),
            email: Some((addr.clone(), addr.clone())),
            password_hash: Some(hash.clone()),
            ownid_data: None,
            created_at: unix_now(),
        })
        .await
        .unwrap();
    let (status, _) = app.login(&addr, "password123").await;
    assert_eq!(status, StatusCode::OK);
    let stored = app
        .app
        .store
        .account_by_email(&addr)
        .await
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=256,t=1,p=1,data=bmZrYw$"),
        "{stored}"
    );
    assert_eq!(app.login(&addr, "password123").await.0, StatusCode::OK);
}

/// "crème brûlée", precomposed (as a French keyboard types it) and decomposed (as
/// some phones and pasted text give it).
const COMPOSED: &str = "cr\u{e8}me br\u{fb}l\u{e9}e";
const DECOMPOSED: &str = "cre\u{300}me bru\u{302}le\u{301}e";

async fn a_password_is_one_password_however_its_accents_were_typed(b: Backend) {
    let app = TestApp::spawn(b).await;
    let addr = email();
    assert_eq!(app.register(&addr, DECOMPOSED).await.0, StatusCode::OK);
    let (status, body) = app.login(&addr, COMPOSED).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["token"].is_string(), "{body}");
    // Full-width letters are their ASCII selves in NFKC; case is not folded.
    let addr = email();
    let full_width = "\u{ff50}\u{ff41}\u{ff53}\u{ff53}\u{ff57}\u{ff4f}\u{ff52}\u{ff44}";
    assert_eq!(app.register(&addr, full_width).await.0, StatusCode::OK);
    assert_eq!(app.login(&addr, "password").await.0, StatusCode::OK);
    let (status, body) = app.login(&addr, "PASSWORD").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({ "message": "Invalid credentials" }));
}

async fn an_account_hashed_before_normalization_signs_in_as_typed_then_either_way(b: Backend) {
    use argon2::password_hash::PasswordHasher as _;
    let app = TestApp::spawn(b).await;
    let addr = email();
    // What Gatehouse stored before passwords were normalized: the typed bytes' hash.
    let a = &app.app.settings.argon2;
    let params = gatehouse::crypto::passwords::HashParams {
        memory_kib: a.memory_kib,
        iterations: a.iterations,
        parallelism: a.parallelism,
    };
    let legacy = params
        .argon2()
        .unwrap()
        .hash_password(DECOMPOSED.as_bytes())
        .unwrap()
        .to_string();
    app.app
        .store
        .create_account(&gatehouse::store::NewAccount {
            id: gatehouse::domain::AccountId::generate(),
            email: Some((addr.clone(), addr.clone())),
            password_hash: Some(legacy.clone()),
            ownid_data: None,
            created_at: unix_now(),
        })
        .await
        .unwrap();
    let stored = async || {
        let account = app
            .app
            .store
            .account_by_email(&addr)
            .await
            .unwrap()
            .unwrap();
        account.password_hash.unwrap()
    };
    // The other spelling cannot match a hash of the typed bytes: it is refused, and
    // the hash stays as it was.
    let (status, body) = app.login(&addr, COMPOSED).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({ "message": "Invalid credentials" }));
    assert_eq!(stored().await, legacy);
    // As typed then, it signs in and is rehashed in the normalized form...
    let (status, body) = app.login(&addr, DECOMPOSED).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rehashed = stored().await;
    assert!(rehashed.contains(",data=bmZrYw$"), "{rehashed}");
    // ...after which either spelling signs in, and nothing is rehashed again.
    for typed in [COMPOSED, DECOMPOSED] {
        let (status, body) = app.login(&addr, typed).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(stored().await, rehashed);
}

async fn me_returns_the_account_and_its_sign_in_methods(b: Backend) {
    let app = crate::ownid::spawn(b).await;
    let addr = email();
    let token = app.registered(&addr, "password123").await;
    let (status, me) = app.me(&token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], jwt_parts(&token).1["sub"]);
    assert_eq!(me["email"], addr);
    assert_eq!(me["sign_in_methods"], json!([{"method": "password"}]));
    let created = me["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 20, "{created}");

    let other = email();
    let token = app.registered_passwordless(&other, "opaque").await;
    let (status, me) = app.me(&token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["sign_in_methods"], json!([{"method": "ownid"}]));
}

async fn health_ready_and_unknown_routes(b: Backend) {
    let app = TestApp::spawn(b).await;
    for path in ["/health", "/ready"] {
        let (status, body) = read(app.get(path, None).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"status": "ok"}));
    }
    let (status, body) = read(app.get("/no/such/route", None).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"message": "No such route."}));
    let (status, body) = read(app.get("/auth/login", None).await).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        body,
        json!({"message": "Method not allowed on this route."})
    );
}

async fn openapi_documents_every_route(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (status, doc) = read(app.get("/openapi.json", None).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/auth/register", "post"),
        ("/auth/login", "post"),
        ("/auth/me", "get"),
        ("/health", "get"),
        ("/ready", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    // The scheme `/auth/me` names is defined, and the request bodies say what is required.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["components"]["schemas"]["LoginRequest"]["required"],
        json!(["email", "password"])
    );
    assert_eq!(
        doc["components"]["schemas"]["RegisterRequest"]["required"],
        json!(["email"])
    );
}

async fn unexpected_failures_get_an_opaque_500(b: Backend) {
    let app = TestApp::spawn(b).await;
    let addr = email();
    app.registered(&addr, "password123").await;
    app.app.store.close().await;
    let (status, body) = app.login(&addr, "password123").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["message"], "Internal server error");
    let id = body["error"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(body.as_object().unwrap().len(), 2);
    let (status, body) = read(app.get("/ready", None).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, json!({"status": "unavailable"}));
}

async fn an_internationalized_domain_and_its_a_label_are_one_account(b: Backend) {
    let app = TestApp::spawn(b).await;
    let user = &crate::helpers::email()[..17]; // "user-<12 hex>"
    let unicode = format!("{user}@bücher.example");
    let punycode = format!("{user}@xn--bcher-kva.example");
    let token = app.registered(&unicode, "password123").await;
    let (status, body) = app.register(&punycode, "password123").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body,
        json!({"message": "An account with this email already exists."})
    );
    let (status, body) = app.login(&punycode.to_uppercase(), "password123").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        jwt_parts(body["token"].as_str().unwrap()).1["sub"],
        jwt_parts(&token).1["sub"]
    );
    let (status, body) = app.register("ädä@example.com", "password123").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"message": "The 'email' field must have an ASCII local part (before the @): internationalized local parts are not supported."})
    );
}
