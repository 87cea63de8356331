//! Sign-In with Ethereum (`siwe`).

use serde::{Deserialize, Serialize};

use super::serde_helpers::{list, u64_list};

/// Sign-In with Ethereum (EIP-4361): `GET /auth/siwe/nonce`, `POST /auth/siwe`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SiweSettings {
    /// Serve the SIWE routes.
    pub enabled: bool,
    /// The sites messages may be for, as origins (`https://app.example.com`): a
    /// message's domain (and its scheme, when it names one) must be one of them, and
    /// its URI must be on one of them. Never taken from the request. Empty: the origin
    /// of `http.public_url`, else `http://localhost:<the port of listen>`.
    #[serde(deserialize_with = "list")]
    pub domains: Vec<String>,
    /// The EIP-155 chain ids a message may name.
    #[serde(deserialize_with = "u64_list")]
    pub chain_ids: Vec<u64>,
    /// How long a nonce can be used, seconds.
    pub nonce_ttl_secs: i64,
    /// How far a message's issued-at may be ahead of the server's clock (and before
    /// the oldest nonce still usable), seconds.
    pub issued_at_skew_secs: i64,
}

impl Default for SiweSettings {
    fn default() -> Self {
        SiweSettings {
            enabled: true,
            domains: Vec::new(),
            chain_ids: vec![1],
            nonce_ttl_secs: 300,
            issued_at_skew_secs: 60,
        }
    }
}
