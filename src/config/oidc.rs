//! The OpenID Connect provider (`oidc`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The OpenID Connect provider: discovery, the token endpoint, UserInfo,
/// introspection and revocation under `/oauth/`. Clients are registered with
/// `gatehouse clients add`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OidcSettings {
    /// Serve the provider; needs `http.public_url` (the issuer).
    pub enabled: bool,
    /// Lifetime of access tokens, seconds (60 to 86400).
    pub access_token_ttl_secs: i64,
    /// Lifetime of ID tokens, seconds (60 to 86400).
    pub id_token_ttl_secs: i64,
    /// A confidential client must use PKCE too (public clients always must).
    pub require_pkce_for_confidential: bool,
    /// Back-channel logout: the wait before the second attempt to deliver a logout
    /// token to a client that did not take it, seconds (1 to 3600); doubled after each
    /// failure. A token not delivered within a day is dropped.
    pub backchannel_logout_retry_base_secs: i64,
    /// The longest wait between two attempts, seconds (the base to 86400).
    pub backchannel_logout_retry_max_secs: i64,
    /// Clients declared here (`[[oidc.clients]]`), for operators who keep their
    /// configuration in git: written to the database at every start, and removed from
    /// it when no longer listed. `gatehouse clients update`, `remove` and
    /// `rotate-secret` leave them alone.
    pub clients: Vec<OidcClientSettings>,
}

/// A client declared in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcClientSettings {
    /// Its client_id: 1 to 64 letters, digits, `-`, `_` or `.`.
    pub client_id: String,
    /// Its name, as the consent page shows it.
    pub name: String,
    /// A file holding its secret (the file's exact bytes, at least 32), for
    /// `client_secret_basic` and `client_secret_post`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub client_secret_file: Option<PathBuf>,
    /// Where codes may be sent (exact: https, or http on a loopback address).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to (exact).
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client (no secret; PKCE always).
    #[serde(default)]
    pub public: bool,
    /// Ours: no consent page.
    #[serde(default)]
    pub first_party: bool,
    /// Extra grants: `client_credentials`.
    #[serde(default)]
    pub grants: Vec<String>,
    /// `client_secret_basic` (unset), `client_secret_post` or `private_key_jwt`.
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    /// A file holding its JWK Set, for `private_key_jwt`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub jwks_file: Option<PathBuf>,
    /// `RS256` (unset), `ES256` or `EdDSA`.
    #[serde(default)]
    pub id_token_signed_response_alg: Option<String>,
    /// Where a logout token is POSTed when a session of this client ends.
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
}

impl Default for OidcSettings {
    fn default() -> Self {
        OidcSettings {
            enabled: false,
            access_token_ttl_secs: 600,
            id_token_ttl_secs: 600,
            require_pkce_for_confidential: true,
            backchannel_logout_retry_base_secs: 5,
            backchannel_logout_retry_max_secs: 900,
            clients: Vec::new(),
        }
    }
}
