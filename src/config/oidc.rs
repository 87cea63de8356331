//! The OpenID Connect provider (`oidc`).

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
}

impl Default for OidcSettings {
    fn default() -> Self {
        OidcSettings {
            enabled: false,
            access_token_ttl_secs: 600,
            id_token_ttl_secs: 600,
            require_pkce_for_confidential: true,
        }
    }
}
