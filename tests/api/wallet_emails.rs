//! A wallet's email is what its owner typed in: it stays an attribute of the wallet
//! and never becomes an account's identity until verified. Tokens carry `email` with
//! `email_verified`, as OpenID Connect does; accounts created the old way are let go
//! of their unverified email by the migration.

use gatehouse::accounts::AccountError;
use gatehouse::domain::{AccountId, Email};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, email, fresh_postgres_schema, jwt_parts, read};
use crate::ownid::{self, GET, SESSION, SET};
use crate::selfkey::{EMAIL_SCHEMA, MOUNT, TestWallet, sign_in, signed_up};

crate::on_every_backend!(
    a_wallets_email_is_no_identity_and_its_owner_can_still_claim_it,
    ownid_cannot_reach_a_wallet_account_through_its_typed_email,
    a_verified_email_is_marked_in_the_account_and_its_tokens,
    the_migration_lets_wallet_accounts_go_of_their_typed_emails,
);

async fn a_wallets_email_is_no_identity_and_its_owner_can_still_claim_it(b: Backend) {
    let app = TestApp::spawn(b).await;
    let victim = email();
    let wallet = TestWallet::random();
    signed_up(&app, &wallet, &victim).await;
    let (session, claims) = sign_in(&app, &wallet).await;
    // No `email` claim at all: an integrator cannot mistake it for the address's owner.
    assert!(claims.get("email").is_none(), "{claims}");
    assert!(claims.get("email_verified").is_none(), "{claims}");
    let (status, me) = app.me(&session).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        (&me["email"], &me["email_verified"]),
        (&Value::Null, &json!(false))
    );
    // The address stays what the wallet shared.
    let (status, details) = read(
        app.get(
            &format!("{MOUNT}/wallets/{}", wallet.address()),
            Some(&session),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{details}");
    assert_eq!(
        details["attributes"],
        json!([{"key": "email", "schema": EMAIL_SCHEMA, "data": victim}])
    );

    // The address's real owner registers it: no 409, and their token says the address
    // is not verified yet.
    let (status, body) = app.register(&victim, "password123").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = jwt_parts(body["token"].as_str().unwrap()).1;
    assert_eq!(claims["email"], victim);
    assert_eq!(claims["email_verified"], false);
    let (status, me) = app.me(body["token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        (&me["email"], &me["email_verified"]),
        (&json!(victim), &json!(false))
    );
    let (status, body) = app.login(&victim, "password123").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        jwt_parts(body["token"].as_str().unwrap()).1["email_verified"],
        false
    );

    // A second wallet claiming the address now meets an account and must link.
    let other = TestWallet::random();
    let token = crate::selfkey::wallet_token(&app, &other).await;
    let (status, body) =
        crate::selfkey::sign_up(&app, &token, &crate::selfkey::email_attributes(&victim)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "account_exists");
}

async fn ownid_cannot_reach_a_wallet_account_through_its_typed_email(b: Backend) {
    let app = ownid::spawn(b).await;
    let victim = email();
    let wallet = TestWallet::random();
    signed_up(&app, &wallet, &victim).await;
    let (_, wallet_claims) = sign_in(&app, &wallet).await;
    // OwnID's cloud, acting for the address's real owner, finds no account there:
    // nothing binds the owner's device to the wallet's account, and no session for it.
    let set = json!({"loginId": victim, "ownIdData": "the owner's device"});
    ownid::call(&app, SET, set.clone())
        .await
        .assert_empty(StatusCode::NOT_FOUND, "set");
    ownid::call(&app, GET, json!({"loginId": victim}))
        .await
        .assert_empty(StatusCode::NOT_FOUND, "get");
    ownid::call(&app, SESSION, json!({"loginId": victim}))
        .await
        .assert_empty(StatusCode::NOT_FOUND, "session");

    // The owner registers with OwnID; OwnID's calls then reach their account only.
    let (status, body) = app
        .post_json(
            "/auth/register",
            &json!({"email": victim, "ownIdData": "the owner's device"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let owner = jwt_parts(body["token"].as_str().unwrap()).1["sub"].clone();
    assert_ne!(owner, wallet_claims["sub"]);
    ownid::call(
        &app,
        SET,
        json!({"loginId": victim, "ownIdData": "a second device"}),
    )
    .await
    .assert_empty(StatusCode::NO_CONTENT, "set");
    let reply = ownid::call(&app, SESSION, json!({"loginId": victim})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let claims = jwt_parts(reply.json()["token"].as_str().unwrap()).1;
    assert_eq!(claims["sub"], owner);
    assert_eq!(
        (&claims["email"], &claims["email_verified"]),
        (&json!(victim), &json!(false))
    );
    // The wallet still signs in to its own account, which never got the device.
    let (session, claims) = sign_in(&app, &wallet).await;
    assert_eq!(claims["sub"], wallet_claims["sub"]);
    let (_, me) = app.me(&session).await;
    let methods = me["sign_in_methods"].as_array().unwrap();
    assert_eq!(methods.len(), 1, "{me}");
    assert_eq!(methods[0]["method"], "wallet");
}

fn parsed(address: &str) -> Email {
    Email::parse(address, "email").unwrap()
}

async fn a_verified_email_is_marked_in_the_account_and_its_tokens(b: Backend) {
    let app = TestApp::spawn(b).await;
    let accounts = &app.app.accounts;
    // A password account.
    let address = email();
    let token = app.registered(&address, "password123").await;
    let id = AccountId(jwt_parts(&token).1["sub"].as_str().unwrap().to_string());
    accounts
        .mark_email_verified(&id, &parsed(&address))
        .await
        .unwrap();
    let (status, me) = app.me(&token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        (&me["email"], &me["email_verified"]),
        (&json!(address), &json!(true))
    );
    let (_, body) = app.login(&address, "password123").await;
    let claims = jwt_parts(body["token"].as_str().unwrap()).1;
    assert_eq!(
        (&claims["email"], &claims["email_verified"]),
        (&json!(address), &json!(true))
    );

    // A wallet account whose owner verified the address it shared: it becomes the
    // account's email, and its tokens name it.
    let shared = email();
    let wallet = TestWallet::random();
    signed_up(&app, &wallet, &shared).await;
    let (_, claims) = sign_in(&app, &wallet).await;
    let wallet_account = AccountId(claims["sub"].as_str().unwrap().to_string());
    accounts
        .mark_email_verified(&wallet_account, &parsed(&shared.to_uppercase()))
        .await
        .unwrap();
    let (session, claims) = sign_in(&app, &wallet).await;
    assert_eq!(
        (&claims["email"], &claims["email_verified"]),
        (&json!(shared.to_uppercase()), &json!(true))
    );
    let (_, me) = app.me(&session).await;
    assert_eq!(me["email_verified"], true);
    // The address now belongs to an account.
    let (status, body) = app.register(&shared, "password123").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // An address another account holds is not taken over; an unknown account is none.
    let err = accounts
        .mark_email_verified(&wallet_account, &parsed(&address))
        .await
        .unwrap_err();
    assert!(matches!(err, AccountError::EmailTaken), "{err}");
    let err = accounts
        .mark_email_verified(&AccountId("nobody".into()), &parsed(&email()))
        .await
        .unwrap_err();
    assert!(matches!(err, AccountError::NoSuchAccount), "{err}");
    let (_, me) = app.me(&session).await;
    assert_eq!(me["email"], json!(shared.to_uppercase()));
}

/// Accounts as Gatehouse 0.1 stored them (schema version 1), one of each kind.
const OLD_ROWS: &str = "
    INSERT INTO accounts (id, email, email_key, password_hash, ownid_data, created_at) VALUES
        ('by-wallet', 'Victim@Example.com', 'victim@example.com', NULL, NULL, 100),
        ('by-wallet-then-ownid', 'ceo@bigcorp.example', 'ceo@bigcorp.example', NULL, 'device', 100),
        ('by-password', 'pw@example.com', 'pw@example.com', 'hash', NULL, 100),
        ('by-ownid', 'own@example.com', 'own@example.com', NULL, 'device', 100),
        ('wallet-no-email', NULL, NULL, NULL, NULL, 100);
    INSERT INTO wallets (address, public_key, account_id, attributes, created_at, updated_at) VALUES
        ('0x1111111111111111111111111111111111111111', 'k1', 'by-wallet',
         '[{\"key\":\"email\",\"data\":\"Victim@Example.com\"}]', 100, 100),
        ('0x2222222222222222222222222222222222222222', 'k2', 'by-wallet-then-ownid', '[]', 100, 100),
        ('0x3333333333333333333333333333333333333333', 'k3', 'by-password', '[]', 200, 200),
        ('0x4444444444444444444444444444444444444444', 'k4', 'by-ownid', '[]', 300, 300),
        ('0x5555555555555555555555555555555555555555', 'k5', 'wallet-no-email', '[]', 100, 100);
";

/// A database at schema version 1 holding [`OLD_ROWS`]; its URL.
async fn old_database(b: Backend, dir: &std::path::Path) -> String {
    match b {
        Backend::Sqlite => {
            let path = dir.join("old.db");
            let conn = rusqlite::Connection::open(&path).unwrap();
            let init = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/sqlite/0001_init.sql"
            );
            conn.execute_batch(&std::fs::read_to_string(init).unwrap())
                .unwrap();
            conn.execute_batch(OLD_ROWS).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            format!("sqlite://{}", path.display())
        }
        Backend::Postgres => {
            let url = fresh_postgres_schema().await;
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::migrate!("./migrations/postgres")
                .run_to(1, &pool)
                .await
                .unwrap();
            sqlx::raw_sql(OLD_ROWS).execute(&pool).await.unwrap();
            pool.close().await;
            url
        }
    }
}

async fn the_migration_lets_wallet_accounts_go_of_their_typed_emails(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = old_database(b, dir.path()).await;
    let app = TestApp::spawn_with(b, move |s| s.database_url = Some(url)).await;
    let store = &app.app.store;
    let email_of = |id: &'static str| async move {
        let profile = store.account_profile(&AccountId(id.into())).await.unwrap();
        let account = profile.expect("the account is kept").account;
        (account.email, account.email_verified)
    };
    // Accounts a wallet created let go of the address; the others keep theirs,
    // unverified; nobody's wallets or attributes change.
    assert_eq!(email_of("by-wallet").await, (None, false));
    assert_eq!(email_of("by-wallet-then-ownid").await, (None, false));
    assert_eq!(email_of("wallet-no-email").await, (None, false));
    assert_eq!(
        email_of("by-password").await,
        (Some("pw@example.com".into()), false)
    );
    assert_eq!(
        email_of("by-ownid").await,
        (Some("own@example.com".into()), false)
    );
    let record = store
        .wallet_record(
            &AccountId("by-wallet".into()),
            "0x1111111111111111111111111111111111111111",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.attributes,
        r#"[{"key":"email","data":"Victim@Example.com"}]"#
    );
    for (id, wallets) in [
        ("by-password", 1),
        ("by-ownid", 1),
        ("by-wallet-then-ownid", 1),
    ] {
        let profile = store.account_profile(&AccountId(id.into())).await.unwrap();
        assert_eq!(profile.unwrap().wallets.len(), wallets, "{id}");
    }
    // The freed addresses can be registered by their owners; the kept ones cannot.
    for (address, status) in [
        ("victim@example.com", StatusCode::OK),
        ("ceo@bigcorp.example", StatusCode::OK),
        ("pw@example.com", StatusCode::CONFLICT),
        ("own@example.com", StatusCode::CONFLICT),
    ] {
        let (got, body) = app.register(address, "password123").await;
        assert_eq!(got, status, "{address}: {body}");
    }
}
