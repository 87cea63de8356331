//! Layered configuration: built-in defaults, then an optional TOML file, then
//! `GATEHOUSE_*` environment variables (nested keys joined with `__`), then flags.
//! Everything is validated once at start; a bad value stops the start with a message
//! that names the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use self::serde_helpers::opt_secret;
use crate::domain::Secret;

mod http;
mod mail;
mod metrics;
mod oidc;
mod ownid;
mod passkeys;
pub mod reference;
mod selfkey;
mod serde_helpers;
mod siwe;
mod social;
mod tokens;
mod ui;

pub use self::http::{HttpSettings, IpNet, RateLimitSettings};
pub use self::mail::{MailLinks, MailSettings};
pub use self::metrics::MetricsSettings;
pub use self::oidc::{OidcClientSettings, OidcSettings};
pub use self::ownid::OwnIdSettings;
pub use self::passkeys::PasskeySettings;
pub use self::selfkey::{RequestedAttribute, SelfKeySettings, Website};
pub use self::siwe::SiweSettings;
pub use self::social::{ProviderKind, SocialProviderSettings, SocialSettings};
pub use self::tokens::{AccountsSettings, Argon2Settings, JwtSettings, SessionSettings};
pub use self::ui::UiSettings;

/// Every setting. Each field's doc comment is its entry in the configuration reference
/// (`gatehouse config --defaults`, [`reference`]): a field without one fails the tests.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    #[schema(value_type = String)]
    pub listen: SocketAddr,
    /// Where the embedded database and the generated JWT secret live.
    #[schema(value_type = String)]
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`; unset: SQLite in
    /// `data_dir` (gatehouse.db).
    pub database_url: Option<String>,
    /// PostgreSQL: how many connections a node opens at most, half for single
    /// statements and half for transactions (at least one each). SQLite: how many
    /// read-only connections (writes go through one connection of their own).
    pub database_max_connections: u32,
    /// SQLite: how often the server refreshes the query planner's statistics with
    /// `PRAGMA optimize` (at start, then every this many seconds), as SQLite recommends;
    /// it analyzes only tables that changed enough, in milliseconds. 0: never.
    /// PostgreSQL: unused (autovacuum analyzes).
    pub database_optimize_every_secs: u64,
    /// The HS512 signing secret, used as given (its UTF-8 bytes); at least 32 bytes.
    /// Unset, and no `jwt_secret_file`: `data_dir`/jwt-secret, generated on first start.
    #[serde(deserialize_with = "opt_secret")]
    #[schema(value_type = Option<String>)]
    pub jwt_secret: Option<Secret<String>>,
    /// A file holding the signing secret: its exact bytes, at least 32; a file that
    /// begins or ends with whitespace (a newline) is refused.
    #[schema(value_type = Option<String>)]
    pub jwt_secret_file: Option<PathBuf>,
    /// Lifetime of account tokens, seconds (60 to 2592000).
    pub token_lifetime_secs: i64,
    /// The `iss` claim of every token.
    pub issuer: String,
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info,gatehouse=debug`).
    pub log: String,
    /// `text` (human-readable) or `json` (one JSON object a line, for log shippers).
    pub log_format: LogFormat,
    /// Password hashing (argon2id). Hashes are stored as PHC strings; a change of
    /// parameters rehashes each password at its next login.
    pub argon2: Argon2Settings,
    /// The HTTP server.
    pub http: HttpSettings,
    /// Login with SelfKey (wallet sign-in).
    pub selfkey: SelfKeySettings,
    /// OwnID (passwordless); off until `shared_secrets` is set.
    pub ownid: OwnIdSettings,
    /// Failed-login lockout and the per-address limit on the auth routes.
    pub rate_limit: RateLimitSettings,
    /// Mail (password reset); off until `enabled`, and then `http.public_url` is needed.
    pub mail: MailSettings,
    /// Passkeys (WebAuthn): the relying party and the ceremonies.
    pub passkeys: PasskeySettings,
    /// Sign-In with Ethereum (EIP-4361).
    pub siwe: SiweSettings,
    /// Sessions: how long they last, refresh-token rotation, browser cookies.
    pub session: SessionSettings,
    /// Rules of accounts.
    pub accounts: AccountsSettings,
    /// `GET /metrics`, for Prometheus.
    pub metrics: MetricsSettings,
    /// How account tokens are signed.
    pub jwt: JwtSettings,
    /// The hosted pages under `/ui/`: sign-in, sign-up, recovery, the account page.
    pub ui: UiSettings,
    /// The OpenID Connect provider.
    pub oidc: OidcSettings,
    /// Sign-in with upstream providers (Google, GitHub, any OpenID Connect provider).
    pub social: SocialSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("gatehouse-data"),
            database_url: None,
            database_max_connections: 16,
            database_optimize_every_secs: 3 * 3600,
            jwt_secret: None,
            jwt_secret_file: None,
            token_lifetime_secs: 900,
            issuer: "gatehouse".into(),
            log: "info".into(),
            log_format: LogFormat::Text,
            argon2: Argon2Settings::default(),
            http: HttpSettings::default(),
            selfkey: SelfKeySettings::default(),
            ownid: OwnIdSettings::default(),
            rate_limit: RateLimitSettings::default(),
            mail: MailSettings::default(),
            passkeys: PasskeySettings::default(),
            session: SessionSettings::default(),
            siwe: SiweSettings::default(),
            accounts: AccountsSettings::default(),
            metrics: MetricsSettings::default(),
            jwt: JwtSettings::default(),
            ui: UiSettings::default(),
            oidc: OidcSettings::default(),
            social: SocialSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_lifetime_secs: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub argon2: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub http: serde_json::Map<String, serde_json::Value>,
}

impl Settings {
    /// Reads every layer and validates the result.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Settings> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            if !file.is_file() {
                anyhow::bail!("--config: no such file: {}", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        let settings: Settings = figment
            .merge(
                Env::prefixed("GATEHOUSE_")
                    .split("__")
                    .filter(|key| !key.as_str().to_ascii_lowercase().starts_with("test_")),
            )
            .merge(Serialized::globals(overrides))
            .extract()
            .map_err(|e| anyhow::anyhow!("configuration: {}", describe(e, file)))?;
        settings.validate()?;
        Ok(settings)
    }

    /// The database URL, defaulting to SQLite in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("gatehouse.db").display()),
        }
    }

    pub fn hash_concurrency(&self) -> usize {
        self.argon2.max_in_flight.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    /// `passkeys`, its origins filled in when none are configured: the origin of a
    /// browser on this machine, `http://localhost:<the port of listen>`.
    pub fn passkeys_in_force(&self) -> PasskeySettings {
        let mut p = self.passkeys.clone();
        if p.origins.is_empty() {
            p.origins = vec![self.local_origin()];
        }
        p
    }

    /// `http://localhost:<the port of listen>`: the embedded default site of passkeys
    /// and SIWE, so they work out of the box on whatever port the server listens on.
    pub fn local_origin(&self) -> String {
        format!("http://localhost:{}", self.listen.port())
    }

    /// Parsed trusted proxy ranges (validated at load).
    pub fn trusted_proxies(&self) -> Vec<IpNet> {
        self.http
            .trusted_proxies
            .iter()
            .filter_map(|s| IpNet::parse(s))
            .collect()
    }

    /// The checks of values only their part can parse (SIWE origins, the passkeys'
    /// relying party, the SMTP URL) are that part's: see `app::check_parts`, which runs
    /// right after this.
    fn validate(&self) -> anyhow::Result<()> {
        let bad = |key: &str, why: &str| Err(anyhow::anyhow!("configuration: {key}: {why}"));
        let url = self.database_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            return bad("database_url", "must start with sqlite:// or postgres://");
        }
        if url.starts_with("sqlite:") && crate::store::sqlite_file(&url).is_none() {
            return bad("database_url", crate::store::SQLITE_NEEDS_A_FILE);
        }
        if self.database_max_connections == 0 {
            return bad("database_max_connections", "must be at least 1");
        }
        if let Some(secret) = &self.jwt_secret
            && secret.expose().len() < 32
        {
            return bad(
                "jwt_secret (GATEHOUSE_JWT_SECRET, or jwt_secret in --config)",
                &format!(
                    "must be at least 32 bytes long, it has {}; e.g. openssl rand -hex 32",
                    secret.expose().len()
                ),
            );
        }
        if !(60..=30 * 24 * 3600).contains(&self.token_lifetime_secs) {
            return bad(
                "token_lifetime_secs",
                "must be between 60 and 2592000 (30 days)",
            );
        }
        if self.issuer.trim().is_empty() {
            return bad("issuer", "must not be empty");
        }
        let a = &self.argon2;
        let params = crate::crypto::passwords::HashParams {
            memory_kib: a.memory_kib,
            iterations: a.iterations,
            parallelism: a.parallelism,
        };
        if let Err(e) = params.argon2() {
            return bad(
                "argon2",
                &format!("invalid parameters (memory_kib, iterations, parallelism): {e}"),
            );
        }
        if a.max_in_flight == Some(0) {
            return bad("argon2.max_in_flight", "must be at least 1");
        }
        if self.http.body_limit_bytes < 1024 {
            return bad("http.body_limit_bytes", "must be at least 1024");
        }
        if self.http.request_timeout_secs == 0 {
            return bad("http.request_timeout_secs", "must be at least 1");
        }
        if self.http.header_read_timeout_secs == 0 {
            return bad("http.header_read_timeout_secs", "must be at least 1");
        }
        if self.http.max_header_bytes < 1024 {
            return bad("http.max_header_bytes", "must be at least 1024");
        }
        if let Some(p) = self
            .http
            .trusted_proxies
            .iter()
            .find(|p| IpNet::parse(p).is_none())
        {
            return bad(
                "http.trusted_proxies",
                &format!("{p:?} is not an IP address or CIDR range"),
            );
        }
        if let Some(url) = &self.http.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return bad(
                "http.public_url",
                "must be an absolute http:// or https:// URL",
            );
        }
        let s = &self.selfkey;
        if !s.mount.starts_with('/') || s.mount.ends_with('/') {
            return bad("selfkey.mount", "must start with '/' and not end with '/'");
        }
        let cookie_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if s.cookie_name.is_empty() || !s.cookie_name.bytes().all(cookie_char) {
            return bad(
                "selfkey.cookie_name",
                "must be letters, digits and !#$%&'*+-.^_`|~ only",
            );
        }
        if let Some(o) = self.http.cors_origins.iter().find(|o| {
            !(o.starts_with("http://") || o.starts_with("https://"))
                || !o.bytes().all(|b| b.is_ascii_graphic())
        }) {
            return bad(
                "http.cors_origins",
                &format!("{o:?} is not an origin such as https://example.com"),
            );
        }
        for (key, ttl) in [
            ("selfkey.challenge_ttl_secs", s.challenge_ttl_secs),
            ("selfkey.wallet_token_ttl_secs", s.wallet_token_ttl_secs),
            ("selfkey.login_token_ttl_secs", s.login_token_ttl_secs),
            ("selfkey.link_token_ttl_secs", s.link_token_ttl_secs),
        ] {
            if !(1..=24 * 3600).contains(&ttl) {
                return bad(key, "must be between 1 and 86400 seconds");
            }
        }
        let o = &self.ownid;
        if !o.base.starts_with('/') || o.base.ends_with('/') {
            return bad("ownid.base", "must start with '/' and not end with '/'");
        }
        if let Err(e) = crate::crypto::ownid_signature::decode_secrets(&o.shared_secrets) {
            return bad("ownid.shared_secrets", &e.to_string());
        }
        if o.timestamp_tolerance_secs < 1 {
            return bad("ownid.timestamp_tolerance_secs", "must be at least 1");
        }
        let se = &self.session;
        if !(1..=365 * 24 * 3600).contains(&se.absolute_lifetime_secs) {
            return bad(
                "session.absolute_lifetime_secs",
                "must be between 1 and 31536000 (a year)",
            );
        }
        if !(1..=se.absolute_lifetime_secs).contains(&se.idle_timeout_secs) {
            return bad(
                "session.idle_timeout_secs",
                "must be at least 1 and at most session.absolute_lifetime_secs",
            );
        }
        if !(0..=300).contains(&se.refresh_reuse_grace_secs) {
            return bad(
                "session.refresh_reuse_grace_secs",
                "must be between 0 and 300",
            );
        }
        if !(1..=1000).contains(&se.refresh_reuse_limit) {
            return bad("session.refresh_reuse_limit", "must be between 1 and 1000");
        }
        if !(1..=100_000).contains(&se.max_per_account) {
            return bad("session.max_per_account", "must be between 1 and 100000");
        }
        let o = &self.oidc;
        if !(60..=86400).contains(&o.access_token_ttl_secs) {
            return bad("oidc.access_token_ttl_secs", "must be between 60 and 86400");
        }
        if !(60..=86400).contains(&o.id_token_ttl_secs) {
            return bad("oidc.id_token_ttl_secs", "must be between 60 and 86400");
        }
        if !(1..=3600).contains(&o.backchannel_logout_retry_base_secs) {
            return bad(
                "oidc.backchannel_logout_retry_base_secs",
                "must be between 1 and 3600",
            );
        }
        if !(o.backchannel_logout_retry_base_secs..=86400)
            .contains(&o.backchannel_logout_retry_max_secs)
        {
            return bad(
                "oidc.backchannel_logout_retry_max_secs",
                "must be between oidc.backchannel_logout_retry_base_secs and 86400",
            );
        }
        if o.enabled && self.http.public_url.is_none() {
            return bad(
                "oidc.enabled",
                "needs http.public_url: it is the issuer, and every endpoint is on it",
            );
        }
        let w = &self.siwe;
        if w.chain_ids.is_empty() {
            return bad("siwe.chain_ids", "must name at least one chain");
        }
        if !(1..=3600).contains(&w.nonce_ttl_secs) {
            return bad("siwe.nonce_ttl_secs", "must be between 1 and 3600 seconds");
        }
        if !(0..=3600).contains(&w.issued_at_skew_secs) {
            return bad(
                "siwe.issued_at_skew_secs",
                "must be between 0 and 3600 seconds",
            );
        }
        let j = &self.jwt;
        if j.algorithm != "HS512" && j.asymmetric().is_none() {
            return bad("jwt.algorithm", "must be HS512, EdDSA or ES256");
        }
        if let Some(short) = j.previous_secrets.iter().find(|s| s.expose().len() < 32) {
            return bad(
                "jwt.previous_secrets (GATEHOUSE_JWT__PREVIOUS_SECRETS)",
                &format!(
                    "each must be at least 32 bytes long, one has {}",
                    short.expose().len()
                ),
            );
        }
        if !(1..=24 * 3600).contains(&j.jwks_max_age_secs) {
            return bad(
                "jwt.jwks_max_age_secs",
                "must be between 1 and 86400 seconds",
            );
        }
        let r = &self.rate_limit;
        if r.login_failures < 1
            || r.login_window_secs < 1
            || r.account_burst < 1
            || r.account_interval_secs < 1
            || r.device_token_ttl_secs < 1
            || r.per_address < 1
            || r.per_address_window_secs < 1
        {
            return bad("rate_limit", "limits and windows must be at least 1");
        }
        if self.accounts.reauth_window_secs < 1 {
            return bad("accounts.reauth_window_secs", "must be at least 1");
        }
        if self.accounts.require_verified_email && !self.mail.enabled {
            return bad(
                "accounts.require_verified_email",
                "needs mail.enabled: addresses are verified by mail",
            );
        }
        self.validate_mail()?;
        self.ui.validate()?;
        self.social.validate()?;
        self.validate_passkeys()
    }

    fn validate_passkeys(&self) -> anyhow::Result<()> {
        let bad = |key: &str, why: &str| Err(anyhow::anyhow!("configuration: {key}: {why}"));
        let p = &self.passkeys;
        if !p.enabled {
            return Ok(());
        }
        let alias = p
            .recent_sign_in_secs
            .map(|s| ("passkeys.recent_sign_in_secs", s));
        for (key, secs) in [("passkeys.ceremony_ttl_secs", p.ceremony_ttl_secs)]
            .into_iter()
            .chain(alias)
        {
            if !(1..=24 * 3600).contains(&secs) {
                return bad(key, "must be between 1 and 86400 seconds");
            }
        }
        Ok(())
    }

    fn validate_mail(&self) -> anyhow::Result<()> {
        let bad = |key: &str, why: &str| Err(anyhow::anyhow!("configuration: {key}: {why}"));
        let m = &self.mail;
        if !m.enabled {
            return Ok(());
        }
        if self.http.public_url.is_none() {
            return bad(
                "http.public_url",
                "must be set when mail.enabled is true: every emailed link is built from it",
            );
        }
        if let Err(e) = m.from.parse::<lettre::message::Mailbox>() {
            return bad(
                "mail.from",
                &format!("not a mailbox such as Name <a@example.com>: {e}"),
            );
        }
        if let Some(dir) = &m.templates_dir
            && !dir.is_dir()
        {
            return bad(
                "mail.templates_dir",
                &format!("no such directory: {}", dir.display()),
            );
        }
        for (key, link) in [
            ("mail.links.reset_password", &m.links.reset_password),
            ("mail.links.verify_email", &m.links.verify_email),
            ("mail.links.confirm_email", &m.links.confirm_email),
            ("mail.links.revert_email", &m.links.revert_email),
        ] {
            if let Some(link) = link
                && !(link.contains("{token}")
                    && (link.starts_with("https://") || link.starts_with("http://")))
            {
                return bad(
                    key,
                    "must be an absolute http(s) URL with a {token} placeholder",
                );
            }
        }
        if !(3600..=30 * 24 * 3600).contains(&m.revert_ttl_secs) {
            return bad(
                "mail.revert_ttl_secs",
                "must be between 3600 and 2592000 seconds",
            );
        }
        if !(60..=7 * 24 * 3600).contains(&m.verify_ttl_secs) {
            return bad(
                "mail.verify_ttl_secs",
                "must be between 60 and 604800 seconds",
            );
        }
        if !(60..=24 * 3600).contains(&m.reset_ttl_secs) {
            return bad(
                "mail.reset_ttl_secs",
                "must be between 60 and 86400 seconds",
            );
        }
        if m.per_minute < 1 || m.per_hour < 1 {
            return bad(
                "mail.per_minute",
                "mail.per_minute and mail.per_hour must be at least 1",
            );
        }
        if m.smtp_pool_size == 0 || m.send_concurrency == 0 || m.smtp_timeout_secs == 0 {
            return bad(
                "mail.smtp_pool_size",
                "mail.smtp_pool_size, mail.send_concurrency and mail.smtp_timeout_secs must be at least 1",
            );
        }
        if m.retry_base_secs < 1 || m.retry_max_secs < m.retry_base_secs {
            return bad(
                "mail.retry_base_secs",
                "must be at least 1, and mail.retry_max_secs at least as large",
            );
        }
        Ok(())
    }
}

/// Figment's error, with the key path and the source it came from.
fn describe(e: figment::Error, file: Option<&Path>) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| match (&m.source, file) {
                    (Some(source), _) => format!("{}: {source}", m.name),
                    (None, Some(file)) if m.name.contains("TOML") => {
                        format!("{}: {}", m.name, file.display())
                    }
                    (None, _) => m.name.to_string(),
                })
                .unwrap_or_default();
            let msg = match &e.kind {
                figment::error::Kind::Message(m) => m.clone(),
                kind => kind.to_string(),
            };
            if key.is_empty() {
                format!("{msg} ({source})")
            } else {
                format!("{key}: {msg} ({source})")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}
