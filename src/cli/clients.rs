//! `gatehouse clients …`: the OpenID Connect clients, registered by the operator
//! straight in the database the configuration names, on any node, while the servers
//! run. A confidential client's secret is printed once, when made (`add`,
//! `rotate-secret`); only its SHA-256 is stored.
//!
//! Exit status: 0 done, 1 no such client (or the database failed), 2 bad usage (the
//! message names the field). `--json` prints one JSON document on stdout.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::crypto::random_id;
use crate::domain::unix_now;
use crate::http::reply::rfc3339;
use crate::oidc::clients::{Registration, needs_secret, new_secret};
use crate::oidc::{Client, RegistrationError};
use crate::store::{DynStore, StoreError};

#[derive(Args)]
pub(super) struct ClientsArgs {
    #[command(subcommand)]
    command: ClientsCommand,
    #[command(flatten)]
    pub(super) database: super::DatabaseArgs,
}

#[derive(Args, Default)]
struct Fields {
    /// Where the authorization code may be sent; exact (https, or http on 127.0.0.1 or
    /// [::1], any port there). Repeat for several.
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to; exact. Repeat for several.
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    post_logout_redirect_uris: Vec<String>,
    /// An extra grant: client_credentials (tokens for the client itself, no user).
    #[arg(long = "grant", value_name = "GRANT")]
    grants: Vec<String>,
    /// client_secret_basic (the default), client_secret_post or private_key_jwt.
    #[arg(long, value_name = "METHOD")]
    token_endpoint_auth_method: Option<String>,
    /// The client's JWK Set (JSON), for private_key_jwt.
    #[arg(long, value_name = "JSON")]
    jwks: Option<String>,
    /// RS256 (the default), ES256 or EdDSA.
    #[arg(long, value_name = "ALG")]
    id_token_signed_response_alg: Option<String>,
    /// Where a logout token is POSTed when a session of this client ends.
    #[arg(long, value_name = "URI")]
    backchannel_logout_uri: Option<String>,
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// Register a client; prints its client_id and, for a confidential client, its
    /// secret (once: it is not stored).
    Add {
        #[arg(long)]
        name: String,
        /// A public client (a browser or native app): no secret, PKCE required.
        #[arg(long)]
        public: bool,
        /// Ours: no consent page.
        #[arg(long)]
        first_party: bool,
        #[command(flatten)]
        fields: Fields,
        #[arg(long)]
        json: bool,
    },
    /// Every client, by name.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One client's registration.
    Show(Target),
    /// Change a client: each option given replaces that field (the lists whole).
    Update {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        name: Option<String>,
        /// Ours (true) or not (false): whether consent is skipped.
        #[arg(long, value_name = "BOOL")]
        first_party: Option<bool>,
        #[command(flatten)]
        fields: Fields,
    },
    /// Remove a client; its codes go with it.
    Remove(Target),
    /// Give a confidential client a new secret (printed once); the old one stops
    /// working at once.
    RotateSecret(Target),
}

#[derive(Args)]
struct Target {
    #[arg(value_name = "CLIENT_ID")]
    client_id: String,
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(store: &DynStore, args: ClientsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ClientsCommand::Add {
            name,
            public,
            first_party,
            fields,
            json,
        } => {
            let registration = Registration {
                name,
                public,
                first_party,
                ..registration(fields)
            };
            add(store, registration, json).await
        }
        ClientsCommand::List { json } => list(store, json).await,
        ClientsCommand::Show(t) => show(store, &t).await,
        ClientsCommand::Update {
            target,
            name,
            first_party,
            fields,
        } => update(store, &target, name, first_party, fields).await,
        ClientsCommand::Remove(t) => remove(store, &t).await,
        ClientsCommand::RotateSecret(t) => rotate_secret(store, &t).await,
    }
}

fn registration(f: Fields) -> Registration {
    Registration {
        redirect_uris: f.redirect_uris,
        post_logout_redirect_uris: f.post_logout_redirect_uris,
        grants: f.grants,
        auth_method: f.token_endpoint_auth_method,
        jwks: f.jwks,
        id_token_alg: f.id_token_signed_response_alg,
        backchannel_logout_uri: f.backchannel_logout_uri,
        ..Registration::default()
    }
}

fn refused(e: RegistrationError) -> anyhow::Result<ExitCode> {
    eprintln!("gatehouse: {e}");
    Ok(ExitCode::from(2))
}

fn not_found(target: &Target) -> anyhow::Result<ExitCode> {
    eprintln!("gatehouse: no client {}", target.client_id);
    if target.json {
        println!(
            "{}",
            json!({"error": "not_found", "client_id": target.client_id})
        );
    }
    Ok(ExitCode::from(1))
}

async fn add(store: &DynStore, r: Registration, as_json: bool) -> anyhow::Result<ExitCode> {
    let now = unix_now();
    let mut client = match r.check(random_id(), now) {
        Ok(c) => c,
        Err(e) => return refused(e),
    };
    let secret = needs_secret(&client)
        .then(new_secret)
        .map(|(secret, hash)| {
            client.secret_hash = Some(hash);
            secret
        });
    store.oidc().add_client(&client).await?;
    if as_json {
        let mut v = client_json(&client);
        if let Some(secret) = &secret {
            v["client_secret"] = json!(secret.expose());
        }
        println!("{v}");
    } else {
        println!("client_id: {}", client.id);
        if let Some(secret) = &secret {
            println!("client_secret: {}", secret.expose());
            println!("(the secret is shown once: it is not stored)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(store: &DynStore, as_json: bool) -> anyhow::Result<ExitCode> {
    let clients = store.oidc().clients().await?;
    if as_json {
        println!(
            "{}",
            Value::Array(clients.iter().map(client_json).collect())
        );
    } else {
        println!("{:<32}  {:<12}  {:<7}  name", "client_id", "type", "source");
        for c in &clients {
            println!("{:<32}  {:<12}  {:<7}  {}", c.id, kind(c), c.source, c.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(store: &DynStore, target: &Target) -> anyhow::Result<ExitCode> {
    let Some(c) = store.oidc().client(&target.client_id).await? else {
        return not_found(target);
    };
    if target.json {
        println!("{}", client_json(&c));
    } else {
        print_client(&c);
    }
    Ok(ExitCode::SUCCESS)
}

async fn update(
    store: &DynStore,
    target: &Target,
    name: Option<String>,
    first_party: Option<bool>,
    fields: Fields,
) -> anyhow::Result<ExitCode> {
    let Some(old) = store.oidc().client(&target.client_id).await? else {
        return not_found(target);
    };
    if let Some(refused) = from_config(&old) {
        return refused;
    }
    let keep = |new: Vec<String>, old: &[String]| {
        if new.is_empty() { old.to_vec() } else { new }
    };
    let extra_grants: Vec<String> = old
        .grant_types
        .iter()
        .filter(|g| *g == crate::oidc::clients::GRANT_CLIENT_CREDENTIALS)
        .cloned()
        .collect();
    let r = Registration {
        name: name.unwrap_or_else(|| old.name.clone()),
        redirect_uris: keep(fields.redirect_uris, &old.redirect_uris),
        post_logout_redirect_uris: keep(
            fields.post_logout_redirect_uris,
            &old.post_logout_redirect_uris,
        ),
        public: old.public,
        first_party: first_party.unwrap_or(old.first_party),
        grants: keep(fields.grants, &extra_grants),
        auth_method: Some(
            fields
                .token_endpoint_auth_method
                .unwrap_or_else(|| old.auth_method.as_str().to_owned()),
        ),
        jwks: fields.jwks.or_else(|| old.jwks.clone()),
        id_token_alg: Some(
            fields
                .id_token_signed_response_alg
                .unwrap_or_else(|| old.id_token_alg.clone()),
        ),
        backchannel_logout_uri: fields
            .backchannel_logout_uri
            .or_else(|| old.backchannel_logout_uri.clone()),
    };
    let now = unix_now();
    let client = match r.check(old.id.clone(), now) {
        Ok(c) => Client {
            secret_hash: old.secret_hash.clone(),
            created_at: old.created_at,
            ..c
        },
        Err(e) => return refused(e),
    };
    if !store.oidc().update_client(&client).await? {
        return not_found(target);
    }
    let mut note = None;
    if needs_secret(&client) && client.secret_hash.is_none() {
        note = Some("it has no secret yet: run `gatehouse clients rotate-secret`");
    }
    if target.json {
        println!("{}", client_json(&client));
    } else {
        print_client(&client);
    }
    if let Some(note) = note {
        eprintln!("gatehouse: {note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A client of the configuration is changed there, not here: exit status 2.
fn from_config(client: &Client) -> Option<anyhow::Result<ExitCode>> {
    (client.source == "config").then(|| {
        eprintln!(
            "gatehouse: client {} comes from the configuration ([[oidc.clients]]): change it there",
            client.id
        );
        Ok(ExitCode::from(2))
    })
}

async fn remove(store: &DynStore, target: &Target) -> anyhow::Result<ExitCode> {
    if let Some(client) = store.oidc().client(&target.client_id).await?
        && let Some(refused) = from_config(&client)
    {
        return refused;
    }
    if !store.oidc().remove_client(&target.client_id).await? {
        return not_found(target);
    }
    if target.json {
        println!("{}", json!({"removed": target.client_id}));
    } else {
        println!("removed {}", target.client_id);
    }
    Ok(ExitCode::SUCCESS)
}

async fn rotate_secret(store: &DynStore, target: &Target) -> anyhow::Result<ExitCode> {
    let Some(client) = store.oidc().client(&target.client_id).await? else {
        return not_found(target);
    };
    if let Some(refused) = from_config(&client) {
        return refused;
    }
    if !needs_secret(&client) {
        eprintln!(
            "gatehouse: client {} authenticates with {}: it has no secret",
            client.id,
            client.auth_method.as_str()
        );
        return Ok(ExitCode::from(2));
    }
    let (secret, hash) = new_secret();
    let set = store
        .oidc()
        .set_client_secret(&client.id, &hash, unix_now())
        .await;
    match set {
        Ok(true) => {}
        Ok(false) => return not_found(target),
        Err(StoreError::Closed) => anyhow::bail!("the database is closed"),
        Err(e) => return Err(e.into()),
    }
    if target.json {
        println!(
            "{}",
            json!({"client_id": client.id, "client_secret": secret.expose()})
        );
    } else {
        println!("client_id: {}", client.id);
        println!("client_secret: {}", secret.expose());
        println!("(the secret is shown once: it is not stored; the old one no longer works)");
    }
    Ok(ExitCode::SUCCESS)
}

fn kind(c: &Client) -> &'static str {
    if c.public { "public" } else { "confidential" }
}

/// A client's registration, as OpenID Connect Dynamic Client Registration names its
/// fields (never its secret or the secret's hash).
pub fn client_json(c: &Client) -> Value {
    json!({
        "client_id": c.id,
        "client_name": c.name,
        "client_type": kind(c),
        "first_party": c.first_party,
        "redirect_uris": c.redirect_uris,
        "post_logout_redirect_uris": c.post_logout_redirect_uris,
        "grant_types": c.grant_types,
        "token_endpoint_auth_method": c.auth_method.as_str(),
        "has_secret": c.secret_hash.is_some(),
        "jwks": c.jwks.as_deref().and_then(|j| serde_json::from_str::<Value>(j).ok()),
        "id_token_signed_response_alg": c.id_token_alg,
        "backchannel_logout_uri": c.backchannel_logout_uri,
        "source": c.source,
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
    })
}

fn print_client(c: &Client) {
    println!("client_id:                  {}", c.id);
    println!("name:                       {}", c.name);
    println!("type:                       {}", kind(c));
    println!("first party:                {}", c.first_party);
    println!("redirect URIs:              {}", c.redirect_uris.join(" "));
    println!(
        "post-logout redirect URIs:  {}",
        c.post_logout_redirect_uris.join(" ")
    );
    println!("grants:                     {}", c.grant_types.join(" "));
    println!("token endpoint auth:        {}", c.auth_method.as_str());
    println!("ID token algorithm:         {}", c.id_token_alg);
    println!("source:                     {}", c.source);
    println!("created:                    {}", rfc3339(c.created_at));
}
