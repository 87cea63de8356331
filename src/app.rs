//! Everything a running node needs, built once from the settings.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::accounts::Accounts;
use crate::config::{IpNet, Settings};
use crate::crypto::jwt::TokenKeys;
use crate::crypto::ownid_signature::OwnIdVerifier;
use crate::crypto::passwords::{HashParams, PasswordHasher};
use crate::crypto::refresh::RefreshKey;
use crate::crypto::tag::TagKey;
use crate::domain::Secret;
use crate::lifecycle::Lifecycle;
use crate::lockout::LoginLimit;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::oidc::provider::{Provider, ProviderPolicy};
use crate::sessions::{AccountKeys, SessionPolicy, Sessions};
use crate::signin::flow::{FlowRules, SignInFlow};
use crate::signin::ownid::OwnId;
use crate::signin::passkeys::Passkeys;
use crate::signin::password::PasswordSignIn;
use crate::signin::second_factor::SecondFactor;
use crate::signin::siwe::{Origin, Policy};
use crate::signin::social::{Provider as SocialProvider, Social};
use crate::signing_keys::{KeyPolicy, KeyPurpose, SigningKeys};
use crate::store::{self, DynStore};
use crate::ui::Pages;

pub struct App {
    pub settings: Settings,
    pub store: DynStore,
    pub tokens: Arc<TokenKeys>,
    pub accounts: Accounts,
    pub sessions: Arc<Sessions>,
    /// Where every sign-in method ends: the only starter of a person's session.
    pub flow: Arc<SignInFlow>,
    /// Email and password sign-in.
    pub passwords: PasswordSignIn,
    /// TOTP, recovery codes, and the second step of a pending sign-in.
    pub second_factor: SecondFactor,
    /// The keys of asymmetric account tokens; `None` with HS512.
    pub signing_keys: Option<Arc<SigningKeys>>,
    /// The OpenID Connect provider; `None` unless `oidc.enabled`.
    pub oidc: Option<Arc<Provider>>,
    /// Parsed `http.trusted_proxies`.
    pub proxies: Vec<IpNet>,
    /// Checks OwnID's signed requests; holds no secret when OwnID is off.
    pub ownid_verifier: OwnIdVerifier,
    /// What OwnID's calls read and change.
    pub ownid: OwnId,
    /// Password reset and the other mails; `None` when `mail.enabled` is off.
    pub lifecycle: Option<Lifecycle>,
    pub passkeys: Passkeys,
    /// What a SIWE message must satisfy.
    pub siwe: Policy,
    /// The upstream sign-in providers; `None` when none is configured.
    pub social: Option<Arc<Social>>,
    pub metrics: Arc<Metrics>,
    /// The hosted pages' templates and catalogue; `None` when `ui.enabled` is off.
    pub pages: Option<Arc<Pages>>,
    /// Set on SIGTERM/SIGINT: `/ready` answers 503 so the load balancer moves on.
    pub draining: std::sync::atomic::AtomicBool,
}

impl App {
    /// Opens (and migrates) the database, loads the signing secret and sets up hashing.
    ///
    /// What can refuse the configuration comes first (a secret file, the mail
    /// templates, OwnID's secrets): nothing is created, not the database nor the
    /// generated secret, before all of it passed.
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        let metrics = Arc::new(Metrics::new());
        let existing_secret = existing_jwt_secret(&settings)?;
        let o = &settings.ownid;
        let ownid_verifier = OwnIdVerifier::new(&o.shared_secrets, o.timestamp_tolerance_secs)
            .context("ownid.shared_secrets")?;
        let mailer = Mailer::build(&settings)?;
        let pages = match settings.ui.enabled {
            true => Some(Pages::load(&settings)?),
            false => None,
        };
        let social_providers = social_providers(&settings)?;
        let store = store::connect(
            &settings.database_url(),
            settings.database_max_connections,
            metrics.database(),
        )
        .await
        .context("database_url: could not open the database")?;
        let secret = match existing_secret {
            Some(secret) => secret,
            None => generate_jwt_secret(&settings)?,
        };
        let previous = || {
            let secrets = &settings.jwt.previous_secrets;
            secrets.iter().map(|s| s.expose().as_bytes())
        };
        if !settings.jwt.previous_secrets.is_empty() {
            tracing::info!(
                count = settings.jwt.previous_secrets.len(),
                "JWT signing secret: tokens of jwt.previous_secrets still verify"
            );
        }
        let tokens = Arc::new(
            TokenKeys::new(secret.expose().as_bytes(), &settings.issuer)
                .accepting_previous(previous()),
        );
        let se = &settings.session;
        let policy = SessionPolicy {
            access_ttl_secs: settings.token_lifetime_secs,
            idle_secs: se.idle_timeout_secs,
            absolute_secs: se.absolute_lifetime_secs,
            reuse_grace_secs: se.refresh_reuse_grace_secs,
            max_replays: se.refresh_reuse_limit,
            max_per_account: se.max_per_account,
        };
        let signing_keys = match settings.jwt.asymmetric() {
            Some(algorithm) => {
                let policy = key_policy(&settings, algorithm);
                let keys = SigningKeys::open(
                    Arc::clone(&store),
                    secret.expose().as_bytes(),
                    policy,
                    crate::domain::unix_now(),
                )
                .await
                .context("jwt.algorithm: the signing keys")?;
                tracing::info!(
                    algorithm = algorithm.as_str(),
                    "account tokens: signed with the keys in the database, published at /.well-known/jwks.json"
                );
                Some(Arc::new(keys))
            }
            None => None,
        };
        let oidc = match oidc_key_policy(&settings) {
            Some(key_policy) => {
                let keys = SigningKeys::open(
                    Arc::clone(&store),
                    secret.expose().as_bytes(),
                    key_policy.clone(),
                    crate::domain::unix_now(),
                )
                .await
                .context("oidc.enabled: the OpenID Connect signing keys")?;
                sync_config_clients(&store, &settings.oidc.clients).await?;
                let o = &settings.oidc;
                let provider_policy = ProviderPolicy {
                    issuer: key_policy.issuer.clone(),
                    access_ttl_secs: o.access_token_ttl_secs,
                    id_ttl_secs: o.id_token_ttl_secs,
                    require_pkce_for_confidential: o.require_pkce_for_confidential,
                    access_algorithm: crate::crypto::signing::Algorithm::EdDSA,
                    sessions: policy,
                };
                tracing::info!(issuer = %provider_policy.issuer, "OpenID Connect provider: on");
                Some(Arc::new(Provider::new(
                    Arc::clone(&store),
                    Arc::new(keys),
                    secret.expose().as_bytes(),
                    provider_policy,
                )))
            }
            None => None,
        };
        let account_keys = match &signing_keys {
            Some(keys) => AccountKeys::Asymmetric(Arc::clone(keys)),
            None => AccountKeys::Hs512(Arc::clone(&tokens)),
        };
        let sessions = Arc::new(Sessions::new(
            Arc::clone(&store),
            account_keys,
            RefreshKey::new(secret.expose().as_bytes()).accepting_previous(previous()),
            TagKey::derive(secret.expose().as_bytes(), "gatehouse browser session")
                .accepting_previous(previous()),
            policy,
        ));
        let a = &settings.argon2;
        let params = HashParams {
            memory_kib: a.memory_kib,
            iterations: a.iterations,
            parallelism: a.parallelism,
        };
        let hasher = PasswordHasher::new(params, settings.hash_concurrency())?
            .observed_by(metrics.hash_queue());
        // Three quarters of the request timeout: room left for the rest of the request.
        hasher.refuse_waits_over(Duration::from_secs(settings.http.request_timeout_secs) * 3 / 4);
        let login_limit = settings.rate_limit.enabled.then_some(LoginLimit {
            max_failures: settings.rate_limit.login_failures,
            window_secs: settings.rate_limit.login_window_secs,
            account_burst: settings.rate_limit.account_burst,
            account_interval_secs: settings.rate_limit.account_interval_secs,
            in_flight_secs: settings.http.request_timeout_secs as i64,
        });
        let flow = Arc::new(SignInFlow::new(
            Arc::clone(&sessions),
            Arc::clone(&store),
            FlowRules {
                require_verified_email: settings.accounts.require_verified_email,
                require_mfa: settings.accounts.require_mfa,
            },
        ));
        let second_factor = SecondFactor::new(
            Arc::clone(&store),
            secret.expose().as_bytes(),
            previous(),
            Arc::clone(&flow),
            &settings.issuer,
        );
        let passwords = PasswordSignIn::new(
            Arc::clone(&store),
            hasher.clone(),
            Arc::clone(&tokens),
            Arc::clone(&flow),
            login_limit,
            settings.rate_limit.device_token_ttl_secs,
            Arc::clone(&metrics),
        );
        let accounts = Accounts::new(Arc::clone(&store), hasher);
        let proxies = settings.trusted_proxies();
        match ownid_verifier.key_count() {
            0 => tracing::info!("OwnID: off (no ownid.shared_secrets), its routes answer 404"),
            n => tracing::info!(base = %o.base, secrets = n, "OwnID: on"),
        }
        let ownid = OwnId::new(
            Arc::clone(&store),
            Arc::clone(&flow),
            Arc::clone(&metrics),
            (ownid_verifier.key_count() > 0).then_some(o.max_data_bytes),
        );
        let lifecycle = mailer.map(|mailer| {
            Lifecycle::new(
                Arc::clone(&store),
                mailer,
                secret.expose().as_bytes(),
                &settings.mail,
            )
        });
        let passkeys_in_force = settings.passkeys_in_force();
        let passkeys = Passkeys::new(&passkeys_in_force, Arc::clone(&store))?;
        if settings.passkeys.enabled {
            let p = &passkeys_in_force;
            tracing::info!(rp_id = %p.rp_id, origins = ?p.origins, "passkeys: on");
        }
        let siwe = Policy {
            origins: siwe_origins(&settings),
            chain_ids: settings.siwe.chain_ids.clone(),
            nonce_ttl_secs: settings.siwe.nonce_ttl_secs,
            issued_at_skew_secs: Some(settings.siwe.issued_at_skew_secs),
        };
        if settings.siwe.enabled {
            let origins: Vec<String> = siwe.origins.iter().map(ToString::to_string).collect();
            tracing::info!(origins = ?origins, chain_ids = ?siwe.chain_ids, "SIWE: on");
        }
        let social = (!social_providers.is_empty()).then(|| {
            let enabled: Vec<&str> = social_providers
                .iter()
                .filter(|p| p.enabled)
                .map(|p| p.id.as_str())
                .collect();
            tracing::info!(providers = ?enabled, "social sign-in: on");
            Arc::new(Social::new(
                social_providers,
                Arc::clone(&store),
                settings.social.pending_ttl_secs,
                &public_base(&settings),
                crate::domain::return_to::ReturnOrigins::new(
                    settings
                        .http
                        .public_url
                        .as_deref()
                        .into_iter()
                        .chain(settings.ui.return_origins.iter().map(String::as_str)),
                ),
            ))
        });
        Ok(App {
            social,
            lifecycle,
            settings,
            store,
            tokens,
            accounts,
            sessions,
            flow,
            passwords,
            second_factor,
            signing_keys,
            oidc,
            proxies,
            ownid_verifier,
            ownid,
            passkeys,
            siwe,
            metrics,
            pages: pages.map(|p| Arc::new(p.keyed(secret.expose().as_bytes()))),
            draining: Default::default(),
        })
    }
}

impl App {
    /// `GET /metrics`: every counter, with the gauges read now.
    /// The mail outbox's depth is read from the database at each scrape (every node
    /// shows the one shared outbox).
    pub async fn render_metrics(&self) -> String {
        let outbox = self
            .store
            .mail()
            .outbox_depth(crate::domain::unix_now())
            .await;
        match outbox {
            Ok(depth) => {
                self.metrics.mail_outbox_depth().set(depth);
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the mail outbox's depth"),
        }
        self.metrics.render(self.accounts.hash_queue_depth())
    }
}

/// The settings' values that only their part can parse, checked as the configuration's
/// own are (`Settings::load`), with the same messages: the configuration is plain data
/// and depends on none of the parts that read it.
pub fn check_parts(settings: &Settings) -> anyhow::Result<()> {
    let bad = |key: &str, why: &str| Err(anyhow::anyhow!("configuration: {key}: {why}"));
    if let Some(d) = settings
        .siwe
        .domains
        .iter()
        .find(|d| Origin::parse(d).is_none())
    {
        return bad(
            "siwe.domains",
            &format!("{d:?} is not an origin such as https://app.example.com"),
        );
    }
    if settings.passkeys.enabled
        && let Err(e) = crate::signin::passkeys::relying_party(&settings.passkeys_in_force())
    {
        return bad("passkeys", &e);
    }
    if settings.mail.enabled
        && let Some(url) = &settings.mail.smtp_url
        && let Err(e) = crate::mail::transport::SmtpTarget::parse(url.expose())
    {
        return bad("mail.smtp_url", &e.to_string());
    }
    Ok(())
}

/// The origins SIWE messages may be for (`siwe.domains`, else `http.public_url`'s).
fn siwe_origins(settings: &Settings) -> Vec<Origin> {
    let public_origin = settings.http.public_url.as_deref().and_then(|url| {
        let (scheme, rest) = url.split_once("://")?;
        Origin::parse(&format!("{scheme}://{}", rest.split('/').next()?))
    });
    match (&settings.siwe.domains[..], public_origin) {
        ([], Some(origin)) => vec![origin],
        ([], None) => Origin::parse(&settings.local_origin())
            .into_iter()
            .collect(),
        (domains, _) => domains.iter().filter_map(|d| Origin::parse(d)).collect(),
    }
}

/// The rules of the signing keys, from the settings.
pub fn key_policy(settings: &Settings, algorithm: crate::crypto::signing::Algorithm) -> KeyPolicy {
    KeyPolicy {
        purpose: KeyPurpose::Account,
        algorithm,
        also: Vec::new(),
        jwks_max_age_secs: settings.jwt.jwks_max_age_secs,
        token_ttl_secs: settings.token_lifetime_secs,
        issuer: settings.issuer.clone(),
    }
}

/// The rules of the OpenID Connect provider's keys: RS256 (Discovery's default), ES256
/// and EdDSA side by side, their tokens living at most as long as ID and access
/// tokens; `None` unless `oidc.enabled`.
pub fn oidc_key_policy(settings: &Settings) -> Option<KeyPolicy> {
    use crate::crypto::signing::Algorithm;
    let o = &settings.oidc;
    let issuer = settings.http.public_url.as_deref()?.trim_end_matches('/');
    o.enabled.then(|| KeyPolicy {
        purpose: KeyPurpose::Oidc,
        algorithm: Algorithm::RS256,
        also: vec![Algorithm::ES256, Algorithm::EdDSA],
        jwks_max_age_secs: settings.jwt.jwks_max_age_secs,
        token_ttl_secs: o.access_token_ttl_secs.max(o.id_token_ttl_secs),
        issuer: issuer.to_owned(),
    })
}

/// Writes `[[oidc.clients]]` to the database (and removes the configuration's clients
/// no longer listed), each checked as `gatehouse clients add` checks a registration.
async fn sync_config_clients(
    store: &DynStore,
    declared: &[crate::config::OidcClientSettings],
) -> anyhow::Result<()> {
    use crate::oidc::clients::{Registration, hash_secret, needs_secret};
    let now = crate::domain::unix_now();
    let mut clients = Vec::with_capacity(declared.len());
    for (i, c) in declared.iter().enumerate() {
        let at = format!("oidc.clients[{i}] ({})", c.client_id);
        let id_ok = (1..=64).contains(&c.client_id.len())
            && c.client_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        anyhow::ensure!(
            id_ok,
            "{at}: client_id must be 1 to 64 letters, digits, '-', '_' or '.'"
        );
        let jwks = match &c.jwks_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("{at}: jwks_file {}", path.display()))?,
            ),
            None => None,
        };
        let registration = Registration {
            name: c.name.clone(),
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            public: c.public,
            first_party: c.first_party,
            grants: c.grants.clone(),
            auth_method: c.token_endpoint_auth_method.clone(),
            jwks,
            id_token_alg: c.id_token_signed_response_alg.clone(),
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
        };
        let mut client = registration
            .check(c.client_id.clone(), now)
            .map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        client.source = "config".to_owned();
        match (&c.client_secret_file, needs_secret(&client)) {
            (Some(path), true) => {
                let secret = read_secret_file(path)
                    .with_context(|| format!("{at}: client_secret_file {}", path.display()))?;
                client.secret_hash = Some(hash_secret(secret.expose()));
            }
            (None, true) => anyhow::bail!(
                "{at}: client_secret_file is required for {}",
                client.auth_method.as_str()
            ),
            (Some(_), false) => anyhow::bail!(
                "{at}: client_secret_file is set, but the client authenticates with {}",
                client.auth_method.as_str()
            ),
            (None, false) => {}
        }
        if let Some(existing) = store.oidc().client(&client.id).await?
            && existing.source != "config"
        {
            anyhow::bail!(
                "{at}: a client with this client_id was added with `gatehouse clients add`"
            );
        }
        clients.push(client);
    }
    store.oidc().sync_config_clients(&clients).await?;
    if !clients.is_empty() {
        tracing::info!(
            clients = clients.len(),
            "OpenID Connect clients of the configuration written"
        );
    }
    Ok(())
}

/// The signing secret: from `jwt_secret`, else `jwt_secret_file`, else the file
/// `jwt-secret` in the data directory, generated (64 random bytes, hex) on first start
/// with mode 0600. Logs where it came from, never what it is.
pub fn load_jwt_secret(settings: &Settings) -> anyhow::Result<Secret<String>> {
    match existing_jwt_secret(settings)? {
        Some(secret) => Ok(secret),
        None => generate_jwt_secret(settings),
    }
}

/// The signing secret the configuration names or the data directory holds; `None`
/// when it is to be generated. Reads, creates nothing.
fn existing_jwt_secret(settings: &Settings) -> anyhow::Result<Option<Secret<String>>> {
    if let Some(secret) = &settings.jwt_secret {
        tracing::info!("JWT signing secret: from the configuration (jwt_secret)");
        return Ok(Some(secret.clone()));
    }
    if let Some(path) = &settings.jwt_secret_file {
        let secret = read_secret_file(path)
            .with_context(|| format!("jwt_secret_file: {}", path.display()))?;
        tracing::info!(path = %path.display(), "JWT signing secret: loaded from file");
        return Ok(Some(secret));
    }
    let path = settings.data_dir.join("jwt-secret");
    if path.exists() {
        let secret = read_secret_file(&path)
            .with_context(|| format!("the JWT secret {}", path.display()))?;
        tracing::info!(path = %path.display(), "JWT signing secret: loaded from file");
        return Ok(Some(secret));
    }
    Ok(None)
}

/// Generates the secret into `data_dir`/jwt-secret (see [`load_jwt_secret`]).
fn generate_jwt_secret(settings: &Settings) -> anyhow::Result<Secret<String>> {
    let path = settings.data_dir.join("jwt-secret");
    crate::files::create_private_dir(&settings.data_dir)
        .with_context(|| format!("data_dir: cannot create {}", settings.data_dir.display()))?;
    let secret = hex::encode(crate::crypto::random_bytes::<64>());
    crate::files::write_private(&path, secret.as_bytes())
        .with_context(|| format!("cannot write the JWT secret {}", path.display()))?;
    tracing::info!(path = %path.display(), "JWT signing secret: generated and stored (mode 0600)");
    Ok(Secret::new(secret))
}

/// The site's own base URL, from the configuration: `http.public_url`, else
/// `http://localhost:<the port of listen>` (what the SIWE and passkey defaults take).
pub fn public_base(settings: &Settings) -> String {
    match &settings.http.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("http://localhost:{}", settings.listen.port()),
    }
}

pub use crate::outbound::install_tls_provider;

/// The social providers of the configuration, their secrets read from their files
/// (and Apple's key opened) before anything is created.
fn social_providers(settings: &Settings) -> anyhow::Result<Vec<SocialProvider>> {
    use crate::config::ProviderKind;
    use crate::crypto::signing::{Algorithm, KeyPair};
    use crate::signin::social::AppleKey;
    install_tls_provider();
    if settings.social.providers.is_empty() {
        return Ok(Vec::new());
    }
    let http = crate::outbound::client(Duration::from_secs(10))
        .context("social sign-in: the HTTP client")?;
    let mut providers = Vec::new();
    for (i, p) in settings.social.providers.iter().enumerate() {
        let at = format!("social.providers[{i}]");
        let secret = match (&p.client_secret, &p.client_secret_file) {
            (Some(secret), _) => Some(secret.clone()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("{at}.client_secret_file {}", path.display()))?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                anyhow::ensure!(
                    !text.is_empty(),
                    "{at}.client_secret_file: the file is empty"
                );
                Some(Secret::new(text.to_owned()))
            }
            (None, None) => None,
        };
        let apple = match (p.kind, &p.private_key_file) {
            (ProviderKind::Apple, Some(path)) => {
                use p256::pkcs8::DecodePrivateKey;
                let pem = std::fs::read_to_string(path)
                    .with_context(|| format!("{at}.private_key_file {}", path.display()))?;
                let key = p256::SecretKey::from_pkcs8_pem(&pem).map_err(|_| {
                    anyhow::anyhow!("{at}.private_key_file: not a PKCS#8 P-256 key (.p8)")
                })?;
                let key_id = p.key_id.clone().unwrap_or_default();
                let pair = KeyPair::from_private(Algorithm::ES256, &key_id, &key.to_bytes(), "")
                    .map_err(|_| anyhow::anyhow!("{at}.private_key_file: unusable key"))?;
                Some(AppleKey {
                    team_id: p.team_id.clone().unwrap_or_default(),
                    key: pair,
                })
            }
            _ => None,
        };
        providers.push(SocialProvider::new(p, secret, apple, http.clone()).context(at)?);
    }
    Ok(providers)
}

/// The file's exact bytes are the secret, as they are for an integrator who reads the
/// same file (`fs.readFileSync(path)`, `open(path, "rb").read()`). A file that begins
/// or ends with whitespace — typically the newline `echo` adds — is refused rather
/// than trimmed: one reader would trim it and another not, and the tokens of one
/// would fail to verify with the other.
fn read_secret_file(path: &Path) -> anyhow::Result<Secret<String>> {
    let secret = std::fs::read_to_string(path)?;
    anyhow::ensure!(
        secret.trim() == secret,
        "the file begins or ends with whitespace (a newline?); the secret is the file's \
         exact bytes, so write it without one, e.g. printf '%s' \"$SECRET\" > FILE"
    );
    anyhow::ensure!(
        secret.len() >= 32,
        "the secret must be at least 32 bytes long"
    );
    Ok(Secret::new(secret))
}
