//! OpenID Connect clients: what a registration holds, its checks, and client secrets.
//!
//! Secrets are 32 random bytes, so a fast hash is as strong as a slow one: SHA-256 is
//! stored, compared in constant time (a guess has 2^-256 odds either way; argon2 here
//! would only make the token endpoint as slow as the peers that use bcrypt).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use super::redirect::{RedirectUri, RedirectUriError};
use crate::domain::Secret;
pub use crate::domain::client::{
    AuthMethod, Client, GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_REFRESH_TOKEN,
    ID_TOKEN_ALGORITHMS, hash_secret,
};

/// A new random client secret (43 characters, 256 bits) and its stored hash.
pub fn new_secret() -> (Secret<String>, String) {
    let secret = B64.encode(crate::crypto::random_bytes::<32>());
    let hash = hash_secret(&secret);
    (Secret::new(secret), hash)
}

/// A registration as asked for, before its checks.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub public: bool,
    pub first_party: bool,
    /// Extra grants: `client_credentials`. `authorization_code` and `refresh_token`
    /// come with a redirect URI.
    pub grants: Vec<String>,
    pub auth_method: Option<String>,
    pub jwks: Option<String>,
    pub id_token_alg: Option<String>,
    pub backchannel_logout_uri: Option<String>,
}

/// Why a registration is refused; each names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    #[error("name: must be 1 to 100 characters")]
    Name,
    #[error("redirect_uri {uri}: {why}")]
    RedirectUri { uri: String, why: RedirectUriError },
    #[error("post_logout_redirect_uri {uri}: {why}")]
    PostLogoutRedirectUri { uri: String, why: RedirectUriError },
    #[error("backchannel_logout_uri {uri}: {why}")]
    BackchannelLogoutUri { uri: String, why: RedirectUriError },
    #[error("grant {0}: unknown (only client_credentials may be added)")]
    Grant(String),
    #[error(
        "a client needs a redirect URI (for the authorization code flow) or the \
         client_credentials grant"
    )]
    NoGrant,
    #[error("a public client cannot use client_credentials: it holds no secret")]
    PublicMachine,
    #[error(
        "token_endpoint_auth_method {0}: one of client_secret_basic, client_secret_post, private_key_jwt (none for --public)"
    )]
    AuthMethod(String),
    #[error("jwks: private_key_jwt needs the client's JWK Set (a JSON object with keys)")]
    Jwks,
    #[error("id_token_signed_response_alg {0}: one of RS256, ES256, EdDSA")]
    IdTokenAlg(String),
}

impl Registration {
    /// The client this registration makes (without its secret), or what is wrong.
    pub fn check(self, id: String, now: i64) -> Result<Client, RegistrationError> {
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(RegistrationError::Name);
        }
        for uri in &self.redirect_uris {
            RedirectUri::parse(uri).map_err(|why| RegistrationError::RedirectUri {
                uri: uri.clone(),
                why,
            })?;
        }
        for uri in &self.post_logout_redirect_uris {
            RedirectUri::parse(uri).map_err(|why| RegistrationError::PostLogoutRedirectUri {
                uri: uri.clone(),
                why,
            })?;
        }
        if let Some(uri) = &self.backchannel_logout_uri {
            RedirectUri::parse(uri).map_err(|why| RegistrationError::BackchannelLogoutUri {
                uri: uri.clone(),
                why,
            })?;
        }
        let mut grant_types = Vec::new();
        if !self.redirect_uris.is_empty() {
            grant_types.push(GRANT_AUTHORIZATION_CODE.to_owned());
            grant_types.push(GRANT_REFRESH_TOKEN.to_owned());
        }
        for grant in &self.grants {
            if grant != GRANT_CLIENT_CREDENTIALS {
                return Err(RegistrationError::Grant(grant.clone()));
            }
            if self.public {
                return Err(RegistrationError::PublicMachine);
            }
            if !grant_types.contains(grant) {
                grant_types.push(grant.clone());
            }
        }
        if grant_types.is_empty() {
            return Err(RegistrationError::NoGrant);
        }
        let auth_method = match (self.public, self.auth_method.as_deref()) {
            (true, None | Some("none")) => AuthMethod::None,
            (false, None) => AuthMethod::ClientSecretBasic,
            (false, Some(m)) => match AuthMethod::parse(m) {
                Some(AuthMethod::None) | None => {
                    return Err(RegistrationError::AuthMethod(m.to_owned()));
                }
                Some(m) => m,
            },
            (true, Some(m)) => return Err(RegistrationError::AuthMethod(m.to_owned())),
        };
        let jwks = match (auth_method, self.jwks) {
            (AuthMethod::PrivateKeyJwt, Some(jwks)) => {
                let set: serde_json::Value =
                    serde_json::from_str(&jwks).map_err(|_| RegistrationError::Jwks)?;
                if set["keys"].as_array().is_none_or(|k| k.is_empty()) {
                    return Err(RegistrationError::Jwks);
                }
                Some(set.to_string())
            }
            (AuthMethod::PrivateKeyJwt, None) => return Err(RegistrationError::Jwks),
            (_, jwks) => jwks,
        };
        let id_token_alg = self.id_token_alg.unwrap_or_else(|| "RS256".to_owned());
        if !ID_TOKEN_ALGORITHMS.contains(&id_token_alg.as_str()) {
            return Err(RegistrationError::IdTokenAlg(id_token_alg));
        }
        Ok(Client {
            id,
            name,
            secret_hash: None,
            public: self.public,
            first_party: self.first_party,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            grant_types,
            auth_method,
            jwks,
            id_token_alg,
            backchannel_logout_uri: self.backchannel_logout_uri,
            source: "cli".to_owned(),
            created_at: now,
            updated_at: now,
        })
    }
}

/// Whether the client is given a secret: a confidential client that authenticates
/// with one.
pub fn needs_secret(client: &Client) -> bool {
    matches!(
        client.auth_method,
        AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> Registration {
        Registration {
            name: "Wiki".into(),
            redirect_uris: vec!["https://wiki.example/oidc/callback".into()],
            ..Registration::default()
        }
    }

    #[test]
    fn a_confidential_web_client_gets_the_code_grants_and_a_secret() {
        let c = web().check("c1".into(), 10).unwrap();
        assert_eq!(c.grant_types, ["authorization_code", "refresh_token"]);
        assert_eq!(c.auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(c.id_token_alg, "RS256");
        assert!(needs_secret(&c));
        let (secret, hash) = new_secret();
        assert_eq!(secret.expose().len(), 43);
        let c = Client {
            secret_hash: Some(hash),
            ..c
        };
        assert!(c.secret_is(secret.expose()));
        assert!(!c.secret_is(&secret.expose()[1..]));
        assert!(!c.secret_is(""));
        assert!(!format!("{c:?}").contains(secret.expose()));
    }

    #[test]
    fn refusals_name_the_field() {
        let mut r = web();
        r.redirect_uris.push("http://wiki.example/cb".into());
        assert!(matches!(
            r.check("c".into(), 0),
            Err(RegistrationError::RedirectUri {
                why: RedirectUriError::Scheme,
                ..
            })
        ));
        let r = Registration {
            name: " ".into(),
            ..web()
        };
        assert_eq!(r.check("c".into(), 0), Err(RegistrationError::Name));
        let r = Registration {
            redirect_uris: vec![],
            ..web()
        };
        assert_eq!(r.check("c".into(), 0), Err(RegistrationError::NoGrant));
        let r = Registration {
            public: true,
            grants: vec!["client_credentials".into()],
            ..web()
        };
        assert_eq!(
            r.check("c".into(), 0),
            Err(RegistrationError::PublicMachine)
        );
        let r = Registration {
            grants: vec!["password".into()],
            ..web()
        };
        assert_eq!(
            r.check("c".into(), 0),
            Err(RegistrationError::Grant("password".into()))
        );
        let r = Registration {
            auth_method: Some("none".into()),
            ..web()
        };
        assert_eq!(
            r.check("c".into(), 0),
            Err(RegistrationError::AuthMethod("none".into()))
        );
        let r = Registration {
            auth_method: Some("private_key_jwt".into()),
            ..web()
        };
        assert_eq!(r.check("c".into(), 0), Err(RegistrationError::Jwks));
        let r = Registration {
            id_token_alg: Some("HS256".into()),
            ..web()
        };
        assert_eq!(
            r.check("c".into(), 0),
            Err(RegistrationError::IdTokenAlg("HS256".into()))
        );
        let r = Registration {
            post_logout_redirect_uris: vec!["https://wiki.example/#bye".into()],
            ..web()
        };
        assert!(matches!(
            r.check("c".into(), 0),
            Err(RegistrationError::PostLogoutRedirectUri {
                why: RedirectUriError::Fragment,
                ..
            })
        ));
    }

    #[test]
    fn a_public_client_and_a_machine_client() {
        let public = Registration {
            public: true,
            ..web()
        }
        .check("p".into(), 0)
        .unwrap();
        assert_eq!(public.auth_method, AuthMethod::None);
        assert!(!needs_secret(&public));
        let machine = Registration {
            redirect_uris: vec![],
            grants: vec!["client_credentials".into()],
            ..web()
        }
        .check("m".into(), 0)
        .unwrap();
        assert_eq!(machine.grant_types, ["client_credentials"]);
        assert!(machine.may_use(GRANT_CLIENT_CREDENTIALS));
        assert!(!machine.may_use(GRANT_AUTHORIZATION_CODE));
    }
}
