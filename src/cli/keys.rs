//! `gatehouse keys rotate` and `gatehouse keys list`: the signing keys of asymmetric
//! account tokens, on the database the configuration names (every node shares it, so
//! the nodes pick a rotation up by themselves, running or not).

use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

use super::DatabaseArgs;

use crate::app::{key_policy, load_jwt_secret, oidc_key_policy};
use crate::config::Settings;
use crate::crypto::signing::Sealer;
use crate::domain::unix_now;
use crate::http::reply::rfc3339;
use crate::signing_keys::{self, KeyInfo};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Publish the next signing key: it signs after `jwt.jwks_max_age_secs` (once every
    /// cached JWKS holds it); the keys it replaces stay published until their tokens
    /// have expired.
    Rotate(DatabaseArgs),
    /// List the signing keys and their state (next, signing, retiring, retired).
    List(DatabaseArgs),
}

impl KeysCommand {
    pub(crate) fn database(&self) -> &DatabaseArgs {
        match self {
            KeysCommand::Rotate(d) | KeysCommand::List(d) => d,
        }
    }
}

pub async fn run(settings: Settings, command: KeysCommand) -> anyhow::Result<()> {
    let account = settings.jwt.asymmetric();
    let policies: Vec<_> = account
        .map(|algorithm| key_policy(&settings, algorithm))
        .into_iter()
        .chain(oidc_key_policy(&settings))
        .collect();
    if policies.is_empty() {
        anyhow::bail!(
            "jwt.algorithm is HS512 and oidc.enabled is false: account tokens are signed \
             with the JWT secret, there are no keys; set jwt.algorithm to EdDSA or ES256, \
             or enable the OpenID Connect provider"
        );
    }
    let store = crate::store::connect(&settings.database_url(), 1, Default::default())
        .await
        .context("database_url: could not open the database")?;
    let now = unix_now();
    let result = match command {
        KeysCommand::Rotate(_) => rotate(&settings, &store, &policies, now).await,
        KeysCommand::List(_) => store
            .signing_keys()
            .signing_keys(None)
            .await
            .map(|rows| print!("{}", table(&signing_keys::describe(&rows, account, now))))
            .map_err(Into::into),
    };
    Arc::clone(&store).close().await;
    result
}

async fn rotate(
    settings: &Settings,
    store: &crate::store::DynStore,
    policies: &[crate::signing_keys::KeyPolicy],
    now: i64,
) -> anyhow::Result<()> {
    let secret = load_jwt_secret(settings)?;
    let sealer = Sealer::new(secret.expose().as_bytes());
    for policy in policies {
        for key in signing_keys::rotate(store, &sealer, policy, now).await? {
            println!(
                "published {} ({}, {}): signs from {} (in {} s); the keys it replaces \
                 stay published until {}",
                key.kid,
                key.purpose,
                key.algorithm,
                rfc3339(key.signs_from),
                key.signs_from - now,
                rfc3339(key.signs_from + policy.token_ttl_secs + signing_keys::CLOCK_MARGIN_SECS),
            );
        }
    }
    Ok(())
}

/// One line per key under a header, columns separated by two spaces.
fn table(keys: &[KeyInfo]) -> String {
    let mut out = String::from(
        "kid                               purpose  algorithm  state     published             signs from            retires\n",
    );
    for k in keys {
        out.push_str(&format!(
            "{:<32}  {:<7}  {:<9}  {:<8}  {:<20}  {:<20}  {}\n",
            k.kid,
            k.purpose,
            k.algorithm,
            k.state.as_str(),
            rfc3339(k.created_at),
            rfc3339(k.signs_from),
            k.retires_at.map(rfc3339).unwrap_or_else(|| "-".into()),
        ));
    }
    out
}
