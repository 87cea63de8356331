//! The OpenID Connect provider: clients registered with `gatehouse clients`, and the
//! provider's endpoints, on every backend.


use serde_json::{Value, json};

use crate::admin::cli;
use crate::helpers::{Backend, TestApp};

crate::on_every_backend!(clients_are_added_listed_shown_updated_rotated_and_removed,);

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
