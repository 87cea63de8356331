//! `gatehouse keys rotate` and `gatehouse keys list`: the signing keys of asymmetric
//! account tokens, on the database the configuration names (every node shares it, so
//! the nodes pick a rotation up by themselves, running or not).

use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

use super::DatabaseArgs;

use crate::app::{key_policy, load_jwt_secret};
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
    let Some(algorithm) = settings.jwt.asymmetric() else {
        anyhow::bail!(
            "jwt.algorithm is HS512: account tokens are signed with the JWT secret, there \
             are no keys; set jwt.algorithm to EdDSA or ES256"
        );
    };
    let store = crate::store::connect(&settings.database_url(), 1, Default::default())
        .await
        .context("database_url: could not open the database")?;
    let policy = key_policy(&settings, algorithm);
    let now = unix_now();
    let result = match command {
        KeysCommand::Rotate(_) => {
            let secret = load_jwt_secret(&settings)?;
            let sealer = Sealer::new(secret.expose().as_bytes());
            signing_keys::rotate(&store, &sealer, &policy, now)
                .await
                .map(|key| {
                    println!(
                        "published {} ({}): signs from {} (in {} s); the keys it replaces \
                         stay published until {}",
                        key.kid,
                        key.algorithm,
                        rfc3339(key.signs_from),
                        key.signs_from - now,
                        rfc3339(
                            key.signs_from
                                + policy.token_ttl_secs
                                + signing_keys::CLOCK_MARGIN_SECS
                        ),
                    );
                })
        }
        KeysCommand::List(_) => store
            .signing_keys()
            .signing_keys(None)
            .await
            .map(|rows| print!("{}", table(&signing_keys::describe(&rows, algorithm, now))))
            .map_err(Into::into),
    };
    Arc::clone(&store).close().await;
    result
}

/// One line per key under a header, columns separated by two spaces.
fn table(keys: &[KeyInfo]) -> String {
    let mut out = String::from(
        "kid                               algorithm  state     published             signs from            retires\n",
    );
    for k in keys {
        out.push_str(&format!(
            "{:<32}  {:<9}  {:<8}  {:<20}  {:<20}  {}\n",
            k.kid,
            k.algorithm,
            k.state.as_str(),
            rfc3339(k.created_at),
            rfc3339(k.signs_from),
            k.retires_at.map(rfc3339).unwrap_or_else(|| "-".into()),
        ));
    }
    out
}
