//! Serde helpers of the settings: lists and secrets as TOML gives them and as the
//! environment layer does (one comma-separated string, a number).

use serde::{Deserialize, Deserializer};

use crate::domain::Secret;

/// A list given as a sequence (TOML) or as one comma-separated string (environment).
pub(super) fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

/// Numbers given as a sequence (TOML), one number, or a comma-separated string
/// (environment).
pub(super) fn u64_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(u64),
        Text(String),
        Many(Vec<u64>),
    }
    match OneOrMany::deserialize(d)? {
        OneOrMany::One(n) => Ok(vec![n]),
        OneOrMany::Many(v) => Ok(v),
        OneOrMany::Text(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|n| {
                n.parse()
                    .map_err(|_| serde::de::Error::custom(format!("{n:?} is not a chain id")))
            })
            .collect(),
    }
}

pub(super) fn secret_list<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<Secret<String>>, D::Error> {
    Ok(list(d)?.into_iter().map(Secret::new).collect())
}

/// A secret given as a string; also accepts a value the environment layer read as a
/// number, so an all-digit secret still works.
pub(super) fn opt_secret<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Secret<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        U(u128),
        I(i128),
    }
    Ok(Option::<Raw>::deserialize(d)?.map(|r| {
        Secret::new(match r {
            Raw::S(s) => s,
            Raw::U(n) => n.to_string(),
            Raw::I(n) => n.to_string(),
        })
    }))
}
