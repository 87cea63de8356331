//! Passkeys (`passkeys`).

use serde::{Deserialize, Serialize};

use super::serde_helpers::list;

/// Passkeys (WebAuthn). The relying party is pinned here and never derived from a
/// request's `Host` or `X-Forwarded-*` headers.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PasskeySettings {
    /// Serve the `/auth/passkeys` routes (off: they answer 404).
    pub enabled: bool,
    /// The relying party ID: the domain passkeys are bound to (`example.com`); each
    /// origin's host must be it or a subdomain of it.
    pub rp_id: String,
    /// The name authenticators show beside the passkey.
    pub rp_name: String,
    /// The web origins allowed to run ceremonies (`https://example.com`); a port is
    /// part of an origin. Empty: `http://localhost:<the port of listen>`.
    #[serde(deserialize_with = "list")]
    pub origins: Vec<String>,
    /// How long a begun ceremony can be finished, seconds.
    pub ceremony_ttl_secs: i64,
    /// Deprecated alias: when set and shorter than `accounts.reauth_window_secs`, it
    /// is the one window of every change to how an account is reached (unset: that
    /// window alone).
    pub recent_sign_in_secs: Option<i64>,
}

impl Default for PasskeySettings {
    fn default() -> Self {
        PasskeySettings {
            enabled: true,
            rp_id: "localhost".into(),
            rp_name: "Gatehouse".into(),
            origins: Vec::new(),
            ceremony_ttl_secs: 300,
            recent_sign_in_secs: None,
        }
    }
}
