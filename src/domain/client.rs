//! An OpenID Connect client as registered: the value the provider's rules
//! ([`crate::oidc`]) check and the store keeps. Its secret is kept as a SHA-256 only.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Grants a client may use.
pub const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
pub const GRANT_REFRESH_TOKEN: &str = "refresh_token";
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";

/// How a client proves itself at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    /// A public client: none.
    None,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 4] = [
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::PrivateKeyJwt,
        AuthMethod::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<AuthMethod> {
        AuthMethod::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// The algorithms an ID token may be signed with.
pub const ID_TOKEN_ALGORITHMS: [&str; 3] = ["RS256", "ES256", "EdDSA"];

/// A registered client.
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub name: String,
    /// SHA-256 of the secret, hex; `None` for a public client (and for a
    /// `private_key_jwt` one).
    pub secret_hash: Option<String>,
    /// A public client (a browser or native app) holds no secret.
    pub public: bool,
    /// Consent is not asked for.
    pub first_party: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub auth_method: AuthMethod,
    /// The JWK Set its `private_key_jwt` assertions are signed with.
    pub jwks: Option<String>,
    pub id_token_alg: String,
    pub backchannel_logout_uri: Option<String>,
    /// `cli` or `config`: a client from the configuration is rewritten at every start.
    pub source: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("public", &self.public)
            .field("auth_method", &self.auth_method)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn may_use(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }

    /// Whether `secret` is this client's secret, in constant time.
    pub fn secret_is(&self, secret: &str) -> bool {
        let Some(stored) = &self.secret_hash else {
            return false;
        };
        let given = hash_secret(secret);
        bool::from(given.as_bytes().ct_eq(stored.as_bytes()))
    }
}

/// SHA-256 of a client secret, hex.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}
