//! Social sign-in (`social`): upstream OpenID Connect and OAuth 2 providers.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::serde_helpers::opt_secret;
use crate::domain::Secret;

/// Sign-in with upstream providers (Google, Microsoft, Apple, GitHub, GitLab, or any
/// OpenID Connect provider): `GET /auth/social/{provider}` and its callback. An
/// upstream identity signs in only to the account it was linked to; an email that
/// matches an account never links it (see README, "Social sign-in").
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SocialSettings {
    /// How long a sign-in sent to a provider may take to come back, seconds (60 to
    /// 3600).
    pub pending_ttl_secs: i64,
    /// The providers, none by default: each a `[[social.providers]]` with `id`, `kind`
    /// (`oidc`, `google`, `microsoft`, `apple`, `github`, `gitlab`), `client_id`,
    /// `client_secret` or `client_secret_file`, and as needed `name`, `scopes`,
    /// `issuer` (oidc), `trust_email_verified`, `enabled`, `base_url`, `tenant`
    /// (microsoft), `team_id`, `key_id` and `private_key_file` (apple). README, "Social
    /// sign-in", says what each does.
    pub providers: Vec<SocialProviderSettings>,
}

impl Default for SocialSettings {
    fn default() -> Self {
        SocialSettings {
            pending_ttl_secs: 600,
            providers: Vec::new(),
        }
    }
}

/// What a provider is: any OpenID Connect provider, or a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Oidc,
    Google,
    Microsoft,
    Apple,
    Github,
    Gitlab,
}

/// One upstream provider.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SocialProviderSettings {
    /// Its id in the routes (`/auth/social/<id>`) and in stored identities: 1 to 32
    /// lower-case letters, digits or `-`. Changing it unlinks every identity of it.
    pub id: String,
    /// `oidc` (any OpenID Connect provider, by `issuer`), `google`, `microsoft`,
    /// `apple`, `github` or `gitlab`.
    pub kind: ProviderKind,
    /// The name its button shows ("Continue with <name>"). Unset: the preset's (or
    /// the id, for `oidc`).
    #[serde(default)]
    pub name: Option<String>,
    /// The client id registered with the provider (Apple: the Services ID).
    pub client_id: String,
    /// The client secret. Prefer `client_secret_file`. Not for `apple`, whose secret
    /// Gatehouse signs itself.
    #[serde(default, deserialize_with = "opt_secret")]
    #[schema(value_type = Option<String>)]
    pub client_secret: Option<Secret<String>>,
    /// A file holding the client secret (its bytes, a final newline dropped).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub client_secret_file: Option<PathBuf>,
    /// The scopes asked. Unset: `openid email profile` (GitHub: `read:user
    /// user:email`; Apple: `openid email name`). `openid` is always asked of an OpenID
    /// Connect provider.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// `oidc`: the issuer, exactly as its discovery document and ID tokens name it
    /// (discovery at `<issuer>/.well-known/openid-configuration`).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Take the provider's `email_verified: true` as proof of the address for a new
    /// account. Unset: on for `google`, `apple` and `github` (its primary verified
    /// email), off for the others. Off: new accounts' addresses are unverified and get
    /// the verification mail.
    #[serde(default)]
    pub trust_email_verified: Option<bool>,
    /// Off: the provider signs no one in and links nothing, even a sign-in already
    /// under way; its identities stay linked.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Presets only: the provider's base URL, for tests and enterprise instances
    /// (GitHub Enterprise `https://github.example.com`, a self-hosted GitLab). Google,
    /// Microsoft, Apple and GitLab: the issuer; GitHub: the web host, whose API is
    /// `<base_url>/api/v3` (unset: `https://github.com` and `https://api.github.com`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// `microsoft`: the tenant, `common` (unset), `organizations`, `consumers` or a
    /// tenant id.
    #[serde(default)]
    pub tenant: Option<String>,
    /// `apple`: the team id the client secret is issued by.
    #[serde(default)]
    pub team_id: Option<String>,
    /// `apple`: the id of the Sign in with Apple key.
    #[serde(default)]
    pub key_id: Option<String>,
    /// `apple`: the key's `.p8` file (PKCS#8 PEM, P-256), which signs the client secret.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub private_key_file: Option<PathBuf>,
}

impl SocialSettings {
    /// Each provider's id is unique and route-safe, and it has what its kind needs.
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let bad = |key: String, why: &str| Err(anyhow::anyhow!("configuration: {key}: {why}"));
        if !(60..=3600).contains(&self.pending_ttl_secs) {
            return bad(
                "social.pending_ttl_secs".into(),
                "must be between 60 and 3600 seconds",
            );
        }
        for (i, p) in self.providers.iter().enumerate() {
            let at = |key: &str| format!("social.providers[{i}].{key}");
            let id_ok = (1..=32).contains(&p.id.len())
                && p.id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !id_ok {
                return bad(at("id"), "1 to 32 lower-case letters, digits or '-'");
            }
            if self.providers[..i].iter().any(|o| o.id == p.id) {
                return bad(at("id"), "another provider has this id");
            }
            if p.client_id.is_empty() {
                return bad(at("client_id"), "is required");
            }
            let secrets = p.client_secret.is_some() as u8 + p.client_secret_file.is_some() as u8;
            match (p.kind, secrets) {
                (ProviderKind::Apple, 0)
                    if p.team_id.is_none()
                        || p.key_id.is_none()
                        || p.private_key_file.is_none() =>
                {
                    return bad(
                        at("kind"),
                        "apple needs team_id, key_id and private_key_file",
                    );
                }
                (ProviderKind::Apple, 0) => {}
                (ProviderKind::Apple, _) => {
                    return bad(
                        at("client_secret"),
                        "apple's client secret is signed by Gatehouse (team_id, key_id, private_key_file)",
                    );
                }
                (_, 2) => {
                    return bad(
                        at("client_secret"),
                        "set client_secret or client_secret_file, not both",
                    );
                }
                _ => {}
            }
            let url_ok =
                |u: &str| url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "https" | "http"));
            match (p.kind, &p.issuer) {
                (ProviderKind::Oidc, Some(issuer)) if url_ok(issuer) => {}
                (ProviderKind::Oidc, _) => {
                    return bad(at("issuer"), "kind oidc needs its issuer's URL");
                }
                (_, Some(_)) => {
                    return bad(at("issuer"), "only for kind oidc (presets: base_url)");
                }
                _ => {}
            }
            if let Some(base) = &p.base_url {
                if p.kind == ProviderKind::Oidc {
                    return bad(at("base_url"), "only for presets (oidc: issuer)");
                }
                if !url_ok(base) {
                    return bad(at("base_url"), "must be an http(s) URL");
                }
            }
        }
        Ok(())
    }
}

fn yes() -> bool {
    true
}
