//! Layered configuration: built-in defaults, then an optional TOML file, then
//! `GATEHOUSE_*` environment variables (nested keys joined with `__`), then flags.
//! Everything is validated once at start; a bad value stops the start with a message
//! that names the key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::Secret;

pub mod reference;

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
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    /// `HS512` (with the secret, as `jwt-simple` verifies), or `EdDSA` (Ed25519) or
    /// `ES256` (P-256): signed with keys kept in the database, private halves encrypted
    /// under a key derived from the secret, published at `/.well-known/jwks.json`.
    pub algorithm: String,
    /// The JWKS's `Cache-Control: max-age`, seconds; `gatehouse keys rotate` publishes
    /// the next key this long before it signs.
    pub jwks_max_age_secs: i64,
    /// Secrets that signed before `jwt_secret` (each at least 32 bytes), for rotating
    /// it without ending every session: what they signed (account, refresh and device
    /// tokens) still verifies until it expires; nothing new is signed with them. Put the
    /// old secret here when you set a new one, on every node, and remove it once
    /// `session.absolute_lifetime_secs` has passed. Emailed links and, with EdDSA/ES256,
    /// the signing keys do not carry over (README, Rotating the JWT secret).
    #[serde(deserialize_with = "secret_list")]
    #[schema(value_type = Vec<String>)]
    pub previous_secrets: Vec<Secret<String>>,
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            algorithm: "HS512".into(),
            jwks_max_age_secs: 300,
            previous_secrets: Vec::new(),
        }
    }
}

impl JwtSettings {
    /// The asymmetric algorithm in force; `None` for HS512.
    pub fn asymmetric(&self) -> Option<crate::crypto::signing::Algorithm> {
        crate::crypto::signing::Algorithm::parse(&self.algorithm)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// A session not refreshed for this long ends, seconds.
    pub idle_timeout_secs: i64,
    /// A session ends this long after its sign-in, refreshed or not, seconds.
    pub absolute_lifetime_secs: i64,
    /// How long a rotated refresh token still gets the session's current tokens
    /// (tabs refreshing at once, a retry after a lost answer), seconds; after that,
    /// presenting it ends the session.
    pub refresh_reuse_grace_secs: i64,
    /// How many times, at most, a rotated refresh token is answered within the grace.
    pub refresh_reuse_limit: i64,
    /// The most sessions one account keeps. A sign-in beyond it ends the account's
    /// least recently used sessions (by their last refresh, or their sign-in if never
    /// refreshed), in the write that starts the new one; their tokens are refused
    /// from then on.
    pub max_per_account: i64,
    /// Also send the refresh token as an HttpOnly cookie, which `/auth/refresh`
    /// accepts from `http.public_url`'s origin or one of `http.cors_origins` with an
    /// `X-Gatehouse-CSRF` header; `/auth/logout` clears it.
    pub cookie: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AccountsSettings {
    /// How recent a sign-in must be, seconds (the session's `auth_time`), for every
    /// change to how the account is reached: adding or removing a passkey or a wallet,
    /// a wallet link token, a first password, an email change, deleting the account.
    pub reauth_window_secs: i64,
    /// Registration answers `202 {"message"}` alike for a new and a registered email
    /// (the owner of the registered one is mailed that someone tried), and a password
    /// login of an account whose email is unverified answers 403. Needs mail.
    pub require_verified_email: bool,
}

impl Default for AccountsSettings {
    fn default() -> Self {
        AccountsSettings {
            reauth_window_secs: 600,
            require_verified_email: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `GET /metrics` (Prometheus text format).
    pub enabled: bool,
    /// A separate address for `/metrics` (e.g. a private interface); then the main
    /// listener does not serve it. Default: unset, `/metrics` on the main listener,
    /// which listens on loopback unless told otherwise. The metrics hold no account
    /// data, but they tell how the service is used: give them their own address
    /// before the main listener faces the internet.
    #[schema(value_type = Option<String>)]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Argon2Settings {
    /// Memory per hash, KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes per hash.
    pub parallelism: u32,
    /// Hashes in flight at once; unset: the number of cores.
    pub max_in_flight: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Largest request body, bytes (the wallet's multipart upload has its own limit).
    pub body_limit_bytes: usize,
    /// Longest a request may take before it is answered 408.
    pub request_timeout_secs: u64,
    /// How long a client may take to send a request's headers, and how long an idle
    /// keep-alive connection stays open.
    pub header_read_timeout_secs: u64,
    /// Largest request line and headers, bytes; more gets 431 and a closed connection.
    pub max_header_bytes: usize,
    /// How long in-flight requests may run on after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
    /// After SIGTERM/SIGINT, how long to go on accepting requests while `/ready`
    /// answers 503, so a load balancer health-checking `/ready` stops sending before
    /// the node stops listening (a few of its check intervals); then in-flight
    /// requests get `shutdown_grace_secs`. 0: stop accepting at once.
    pub drain_secs: u64,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-*` headers are trusted.
    #[serde(deserialize_with = "list")]
    pub trusted_proxies: Vec<String>,
    /// The public base URL (`https://example.com`), for absolute URLs and cookies;
    /// unset: taken from the request's host.
    pub public_url: Option<String>,
    /// Browser origins allowed to call every route (CORS, preflights included), with
    /// credentials; others get no CORS headers.
    #[serde(deserialize_with = "list")]
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SelfKeySettings {
    /// Serve the Login with SelfKey routes.
    pub enabled: bool,
    /// Where the LWS routes are mounted.
    pub mount: String,
    /// How long a wallet has to sign a challenge, seconds.
    pub challenge_ttl_secs: i64,
    /// Lifetime of the token a wallet gets for a signed challenge, seconds.
    pub wallet_token_ttl_secs: i64,
    /// Lifetime of the single-use login token the page exchanges at `/login`, seconds.
    pub login_token_ttl_secs: i64,
    /// Lifetime of the single-use link token a signed-in page asks for, seconds.
    pub link_token_ttl_secs: i64,
    /// Where `/login` sends the page after a successful sign-in.
    pub redirect_to: String,
    /// Where `/login` sends the page after a failed one.
    pub error_redirect_to: String,
    /// Largest multipart `/users` body, bytes.
    pub multipart_limit_bytes: usize,
    /// Trust a wallet's email attribute to link it to an existing account with that
    /// email. Off: anyone can put any email in a wallet.
    pub trust_wallet_email: bool,
    /// The cookie `/login` sets (holding the account token).
    pub cookie_name: String,
    /// The site as the wallet shows it.
    pub website: Website,
    /// What the site asks wallets to share (a list of tables).
    pub attributes: Vec<RequestedAttribute>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Website {
    /// The site's name, shown by the wallet.
    pub name: String,
    /// Absolute, or relative to the public URL.
    pub url: String,
    /// The terms of service: absolute, or relative to the public URL.
    pub terms_url: String,
    /// The privacy policy: absolute, or relative to the public URL.
    pub policy_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedAttribute {
    /// The attribute's key in the wallet's answer (`email` becomes the account's email).
    pub key: String,
    /// What the wallet shows the person.
    pub label: String,
    /// The attribute's schema URL, e.g. `http://platform.selfkey.org/schema/attribute/email.json`.
    pub schema: String,
    /// A sign-up without it is refused (`400 missing_attribute`).
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OwnIdSettings {
    /// Where the OwnID routes are mounted; the base URL to enter in OwnID's console.
    pub base: String,
    /// Base64 shared secrets from OwnID's console; several while rotating. Empty: the
    /// OwnID routes are off.
    #[serde(deserialize_with = "secret_list")]
    #[schema(value_type = Vec<String>)]
    pub shared_secrets: Vec<Secret<String>>,
    /// Accepted distance of `ownid-timestamp` from now, seconds.
    pub timestamp_tolerance_secs: i64,
    /// Answer as OwnID's older samples did (200 with an error object).
    pub legacy_responses: bool,
    /// Largest `ownIdData`, bytes.
    pub max_data_bytes: usize,
}

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

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Both limits below; off only for benchmarks.
    pub enabled: bool,
    /// Failed password logins for one account from one client (its device token, or
    /// else its address) before that client is refused for the window.
    pub login_failures: i64,
    /// The lockout window, seconds.
    pub login_window_secs: i64,
    /// The account's ceiling for clients without a device token, whatever their
    /// address: this many failures at once, then one per `account_interval_secs`.
    pub account_burst: i64,
    /// Seconds per failure of the account's ceiling once its burst is spent
    /// (45: 80 guesses an hour).
    pub account_interval_secs: i64,
    /// How long the device token a password login returns is valid, seconds.
    pub device_token_ttl_secs: i64,
    /// Requests one client address may make to the auth routes per window.
    pub per_address: i64,
    /// The per-address window, seconds.
    pub per_address_window_secs: i64,
}

/// Mail: password reset and the other account mails, their links and their outbox.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// Send mail: the password-reset routes answer, and mails are queued. Needs
    /// `http.public_url`, which every link is built from.
    pub enabled: bool,
    /// The SMTP server: `smtp://host[:port]` (STARTTLS, required; port 587 by default),
    /// `smtps://host[:port]` (TLS from the start; port 465), or `smtp://…?tls=none` (no
    /// TLS: a relay on this machine only). Credentials in the URL (`user:pass@`) or in
    /// `smtp_username`/`smtp_password`. Unset: every mail is written as an `.eml` file
    /// in `DATA_DIR/outbox/`.
    #[serde(deserialize_with = "opt_secret")]
    #[schema(value_type = Option<String>)]
    pub smtp_url: Option<Secret<String>>,
    /// The SMTP user, when the URL names none.
    pub smtp_username: Option<String>,
    /// The SMTP password, when the URL has none.
    #[serde(deserialize_with = "opt_secret")]
    #[schema(value_type = Option<String>)]
    pub smtp_password: Option<Secret<String>>,
    /// Connections kept open to the SMTP server.
    pub smtp_pool_size: u32,
    /// How long one SMTP command may take, seconds.
    pub smtp_timeout_secs: u64,
    /// The `From:` of every mail, e.g. `Example <no-reply@example.com>`.
    pub from: String,
    /// The name mails sign with.
    pub site_name: String,
    /// A directory whose `<kind>.subject.txt`, `<kind>.txt` and `<kind>.html` files
    /// replace the built-in templates of that kind of mail (minijinja syntax).
    #[schema(value_type = Option<String>)]
    pub templates_dir: Option<PathBuf>,
    /// How long a password-reset link works, seconds.
    pub reset_ttl_secs: i64,
    /// How long an email-verification link works, seconds; also the link that
    /// confirms a new address in an email change.
    pub verify_ttl_secs: i64,
    /// How long the link mailed to the old address after an email change can revert
    /// it (and end every session), seconds.
    pub revert_ttl_secs: i64,
    /// Mails sent to one address (or for one account) per minute.
    pub per_minute: i64,
    /// Mails sent to one address (or for one account) per hour.
    pub per_hour: i64,
    /// `POST /auth/password/forgot` answers no sooner than this, milliseconds, whatever
    /// it found: the time says nothing of whether the address has an account.
    pub forgot_floor_ms: u64,
    /// First retry after a failed send, seconds; doubled after each further failure.
    pub retry_base_secs: i64,
    /// The longest wait between two attempts, seconds.
    pub retry_max_secs: i64,
    /// Mails sent at once.
    pub send_concurrency: usize,
    /// Links to the site's own pages instead of Gatehouse's.
    pub links: MailLinks,
}

/// URL templates of the emailed links, for sites that host their own pages; `{token}`
/// stands for the token. Unset: Gatehouse's own pages under `http.public_url`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MailLinks {
    /// The password-reset link, e.g. `https://example.com/reset?token={token}`. Unset:
    /// `http.public_url`/auth/pages/reset-password?token=….
    pub reset_password: Option<String>,
    /// The email-verification link, e.g. `https://example.com/verify?token={token}`.
    /// Unset: `http.public_url`/auth/pages/verify-email?token=….
    pub verify_email: Option<String>,
    /// The link mailed to a new address to confirm an email change. Unset:
    /// `http.public_url`/auth/pages/confirm-email?token=….
    pub confirm_email: Option<String>,
    /// The link mailed to the old address to revert an email change. Unset:
    /// `http.public_url`/auth/pages/revert-email?token=….
    pub revert_email: Option<String>,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            enabled: false,
            smtp_url: None,
            smtp_username: None,
            smtp_password: None,
            smtp_pool_size: 4,
            smtp_timeout_secs: 30,
            from: "Gatehouse <no-reply@localhost>".into(),
            site_name: "Gatehouse".into(),
            templates_dir: None,
            reset_ttl_secs: 30 * 60,
            verify_ttl_secs: 24 * 3600,
            revert_ttl_secs: 7 * 24 * 3600,
            per_minute: 1,
            per_hour: 5,
            forgot_floor_ms: 250,
            retry_base_secs: 2,
            retry_max_secs: 600,
            send_concurrency: 8,
            links: MailLinks::default(),
        }
    }
}

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

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("gatehouse-data"),
            database_url: None,
            database_max_connections: 16,
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
        }
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            idle_timeout_secs: 7 * 24 * 3600,
            absolute_lifetime_secs: 30 * 24 * 3600,
            refresh_reuse_grace_secs: 30,
            refresh_reuse_limit: 100,
            max_per_account: 100,
            cookie: false,
        }
    }
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

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            enabled: true,
            listen: None,
        }
    }
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Argon2Settings {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
            max_in_flight: None,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            header_read_timeout_secs: 10,
            max_header_bytes: 32 * 1024,
            shutdown_grace_secs: 10,
            drain_secs: 0,
            trusted_proxies: Vec::new(),
            public_url: None,
            cors_origins: Vec::new(),
        }
    }
}

impl Default for SelfKeySettings {
    fn default() -> Self {
        SelfKeySettings {
            enabled: true,
            mount: "/api/v1/selfkey".into(),
            challenge_ttl_secs: 300,
            wallet_token_ttl_secs: 300,
            login_token_ttl_secs: 60,
            link_token_ttl_secs: 600,
            redirect_to: "/".into(),
            error_redirect_to: "/login".into(),
            multipart_limit_bytes: 10 * 1024 * 1024,
            trust_wallet_email: false,
            cookie_name: "gatehouse_session".into(),
            website: Website::default(),
            attributes: vec![RequestedAttribute {
                key: "email".into(),
                label: "Email".into(),
                schema: "http://platform.selfkey.org/schema/attribute/email.json".into(),
                required: true,
            }],
        }
    }
}

impl Default for Website {
    fn default() -> Self {
        Website {
            name: "Gatehouse".into(),
            url: "/".into(),
            terms_url: "/terms".into(),
            policy_url: "/privacy".into(),
        }
    }
}

impl Default for OwnIdSettings {
    fn default() -> Self {
        OwnIdSettings {
            base: "/ownid".into(),
            shared_secrets: Vec::new(),
            timestamp_tolerance_secs: 60,
            legacy_responses: false,
            max_data_bytes: 64 * 1024,
        }
    }
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            enabled: true,
            login_failures: 5,
            login_window_secs: 15 * 60,
            account_burst: 20,
            account_interval_secs: 45,
            device_token_ttl_secs: 90 * 24 * 3600,
            per_address: 300,
            per_address_window_secs: 60,
        }
    }
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

/// An IP address or CIDR range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Option<IpNet> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A list given as a sequence (TOML) or as one comma-separated string (environment).
fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
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
fn u64_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
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

fn secret_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Secret<String>>, D::Error> {
    Ok(list(d)?.into_iter().map(Secret::new).collect())
}

/// A secret given as a string; also accepts a value the environment layer read as a
/// number, so an all-digit secret still works.
fn opt_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret<String>>, D::Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_ranges() {
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(
            IpNet::parse("127.0.0.1")
                .unwrap()
                .contains("127.0.0.1".parse().unwrap())
        );
        assert!(
            IpNet::parse("::1/128")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert!(
            IpNet::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        for bad in ["", "10.0.0.0/33", "nope", "10.0.0/8"] {
            assert!(IpNet::parse(bad).is_none(), "{bad}");
        }
    }
}
