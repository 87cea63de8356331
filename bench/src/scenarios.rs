//! The six scenarios of issue 6, each against the running server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde_json::json;

use crate::client::{self, Conn, Failure, Link};
use crate::load::{Flow, Window, closed_loop};
use crate::ownid;
use crate::server::{Server, Usage, random_hex, usage_of};
use crate::stats::Tally;
use crate::wallet::{Wallet, challenge_claim};
use softpasskey::Authenticator;

pub const SELFKEY_MOUNT: &str = "/api/v1/selfkey";
pub const OWNID_SESSION: &str = "/ownid/getSessionByLoginId";
const PASSKEY_LOGIN_OPTIONS: &str = "/auth/passkeys/login/options";
/// The server's default passkey origin.
const PASSKEY_ORIGIN: &str = "http://localhost:8080";
const SIWE_NONCE: &str = "/auth/siwe/nonce";
const PASSWORD: &str = "bench-password-0123";

/// What a timed scenario measured.
pub struct Measured {
    pub tally: Tally,
    pub seconds: f64,
    pub unit: &'static str,
    /// Server CPU time inside the window, seconds.
    pub server_cpu: f64,
    /// The load generator's own CPU time inside the window, seconds.
    pub driver_cpu: f64,
    /// VmHWM after the scenario: the server's peak so far, not this scenario's alone.
    pub server_peak_kib: u64,
}

impl Measured {
    pub fn throughput(&self) -> f64 {
        self.tally.successes() as f64 / self.seconds
    }
}

/// The 1,000-login burst.
pub struct Burst {
    pub requests: usize,
    /// By status ("200", "401", …) or failure ("timeout", "transport: …").
    pub outcomes: BTreeMap<String, u64>,
    /// Latency of every answered request, whatever its status.
    pub answered: Tally,
    pub wall: Duration,
    /// Highest VmRSS seen while the burst ran, sampled every 10 ms.
    pub sampled_peak_kib: u64,
    pub server_peak_kib: u64,
    pub server_cpu: f64,
}

/// How the load driver's one thread waits for answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// In epoll_wait, as a real client does.
    Sleeps,
    /// Polling its sockets without blocking, on a core of its own. On loopback, a
    /// server's write to a sleeping client's socket wakes the client inside the
    /// server's own system call (the wakeup and its inter-processor interrupt are
    /// charged to the server), and the slower the route, the more often the client
    /// sleeps: the cost of the client's wakeups grows with the cost of the route.
    /// A client on another machine costs the server nothing of the kind.
    Polls,
}

pub enum Outcome<T> {
    Done(T),
    /// The route answered 404: not merged on this branch yet.
    Skipped,
}

/// A prepared password account.
pub struct Account {
    pub email: String,
    pub token: String,
}

pub struct Bench {
    pub server: Server,
    pub window: Window,
    pub clients: usize,
    pub me_connections: usize,
    pub burst: usize,
    pub ownid_accounts: usize,
    pub ownid_key: Arc<Vec<u8>>,
    /// Codes seeded per client of the load in scenario 16 (each request spends one).
    pub codes_per_client: usize,
    /// Makes this run's emails unique even on a reused PostgreSQL.
    pub run_id: String,
    accounts: Vec<Account>,
}

impl Bench {
    pub fn new(server: Server, window: Window, ownid_key: Vec<u8>) -> Bench {
        Bench {
            server,
            window,
            clients: 64,
            me_connections: 64,
            burst: 1000,
            ownid_accounts: 2000,
            ownid_key: Arc::new(ownid_key),
            codes_per_client: 2000,
            run_id: random_hex(4),
            accounts: Vec::new(),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    fn email(&self, tag: &str, n: usize) -> String {
        format!("bench-{}-{tag}-{n}@example.com", self.run_id)
    }

    /// [`Bench::measure_with`] the driver sleeping between answers.
    async fn measure<F: Flow>(&self, flows: Vec<F>, unit: &'static str) -> Measured {
        self.measure_with(flows, unit, Driver::Sleeps).await
    }

    /// Runs `flows` in a closed loop, the driver waiting for answers as `driver` says,
    /// and samples the server around the window.
    async fn measure_with<F: Flow>(
        &self,
        flows: Vec<F>,
        unit: &'static str,
        driver: Driver,
    ) -> Measured {
        // A task that only yields keeps the driver's one thread runnable, so it polls
        // its sockets without blocking instead of sleeping in epoll_wait.
        let poller = (driver == Driver::Polls).then(|| {
            tokio::spawn(async {
                loop {
                    tokio::task::yield_now().await;
                }
            })
        });
        let pid = self.server.pid();
        let me = std::process::id();
        let mut marks: Vec<(Usage, Usage)> = Vec::with_capacity(2);
        let tally = closed_loop(flows, &self.window, || {
            marks.push((
                usage_of(pid).unwrap_or_default(),
                usage_of(me).unwrap_or_default(),
            ));
        })
        .await;
        if let Some(poller) = poller {
            poller.abort();
        }
        let (server_start, driver_start) = marks[0];
        let (server_end, driver_end) = marks[1];
        Measured {
            tally,
            seconds: self.window.duration.as_secs_f64(),
            unit,
            server_cpu: server_end.cpu_secs - server_start.cpu_secs,
            driver_cpu: driver_end.cpu_secs - driver_start.cpu_secs,
            server_peak_kib: self.server.usage().peak_kib,
        }
    }

    /// Scenario 1: registration with a password, a new email each time.
    pub async fn register(&self) -> Measured {
        let flows = (0..self.clients)
            .map(|client| RegisterFlow {
                link: Link::new(self.addr()),
                prefix: format!("bench-{}-reg{client}", self.run_id),
                n: 0,
            })
            .collect();
        self.measure(flows, "req/s").await
    }

    /// One password account per client, registered before the login scenarios.
    pub async fn prepare_accounts(&mut self) -> anyhow::Result<()> {
        if !self.accounts.is_empty() {
            return Ok(());
        }
        self.accounts = self.register_accounts("acct", self.clients).await?;
        Ok(())
    }

    /// Registers `count` accounts named after `prefix`, `clients` at a time.
    async fn register_accounts(&self, prefix: &str, count: usize) -> anyhow::Result<Vec<Account>> {
        let emails: Vec<String> = (0..count).map(|i| self.email(prefix, i)).collect();
        let bodies = emails
            .iter()
            .map(|e| {
                client::post_json(
                    "/auth/register",
                    &[],
                    &json!({"email": e, "password": PASSWORD}),
                )
            })
            .collect();
        let tokens = call_all(self.addr(), bodies, self.clients, 200, "token")
            .await
            .with_context(|| format!("registering the {prefix} accounts"))?;
        Ok(emails
            .into_iter()
            .zip(tokens)
            .map(|(email, token)| Account { email, token })
            .collect())
    }

    /// Scenario 11's accounts: `per_client` for each client, registered and enrolled
    /// (see [`crate::mfa`]), as the flows that sign them in.
    pub async fn enroll_mfa_accounts(
        &self,
        per_client: usize,
    ) -> anyhow::Result<Outcome<Vec<crate::mfa::MfaSignInFlow>>> {
        let accounts = self
            .register_accounts("mfa", self.clients * per_client.max(1))
            .await?;
        let addr = self.addr();
        let lanes: Vec<Vec<Account>> = {
            let mut lanes: Vec<Vec<Account>> = (0..self.clients).map(|_| Vec::new()).collect();
            for (i, a) in accounts.into_iter().enumerate() {
                lanes[i % self.clients].push(a);
            }
            lanes
        };
        let tasks: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                tokio::spawn(async move {
                    let mut link = Link::new(addr);
                    let mut enrolled = Vec::new();
                    for a in lane {
                        enrolled.push(crate::mfa::enroll(&mut link, a.email, &a.token).await?);
                    }
                    Ok::<_, anyhow::Error>(enrolled)
                })
            })
            .collect();
        let mut flows = Vec::new();
        for task in tasks {
            match task.await? {
                Ok(enrolled) => {
                    flows.push(crate::mfa::MfaSignInFlow::new(addr, enrolled, PASSWORD))
                }
                Err(e) if e.to_string().contains("404") => return Ok(Outcome::Skipped),
                Err(e) => bail!("enrolling the accounts: {e}"),
            }
        }
        Ok(Outcome::Done(flows))
    }

    /// Scenario 11: password + TOTP sign-in, each client over the accounts of its own
    /// that [`Bench::enroll_mfa_accounts`] enrolled.
    pub async fn mfa_sign_in(&self, flows: Vec<crate::mfa::MfaSignInFlow>) -> Measured {
        self.measure(flows, "sign-ins/s").await
    }

    /// Scenario 18: `POST /auth/mfa/verify` alone with TOTP codes, on `accounts`
    /// accounts with an authenticator and `pending` pending sign-ins each, written
    /// straight into the SQLite file first (see [`crate::mfa_verify`]); each client
    /// rotates over accounts of its own. Skipped on PostgreSQL.
    pub async fn mfa_verify(
        &self,
        jwt_secret: &str,
        accounts: usize,
        pending: usize,
    ) -> anyhow::Result<Outcome<Measured>> {
        let Some(path) = self.server.database_url.strip_prefix("sqlite://") else {
            return Ok(Outcome::Skipped);
        };
        let path = path.split('?').next().unwrap_or(path).to_owned();
        let run_id = self.run_id.clone();
        let secret = jwt_secret.to_owned();
        let seeded = tokio::task::spawn_blocking(move || {
            crate::mfa_verify::seed_sqlite(
                std::path::Path::new(&path),
                &secret,
                accounts,
                pending,
                &run_id,
            )
        })
        .await??;
        let mut lanes: Vec<Vec<_>> = (0..self.clients).map(|_| Vec::new()).collect();
        for (i, a) in seeded.into_iter().enumerate() {
            lanes[i % self.clients].push(a);
        }
        let flows = lanes
            .into_iter()
            .map(|lane| crate::mfa_verify::VerifyFlow::new(self.addr(), lane))
            .collect();
        Ok(Outcome::Done(self.measure(flows, "verifies/s").await))
    }

    /// Scenario 2: password login, each client on its own prepared account.
    pub async fn login(&self) -> Measured {
        let flows = self
            .accounts
            .iter()
            .map(|a| LoginFlow {
                link: Link::new(self.addr()),
                request: login_request(&a.email),
            })
            .collect();
        self.measure(flows, "req/s").await
    }

    /// Scenario 9: `POST /auth/refresh`, each client on a session of its own, presenting
    /// the refresh token the last answer gave (a rotation every time).
    pub async fn refresh(&self) -> anyhow::Result<Measured> {
        let logins = self
            .accounts
            .iter()
            .map(|a| login_request(&a.email))
            .collect();
        let tokens = call_all(self.addr(), logins, self.clients, 200, "refresh_token")
            .await
            .context("signing the refresh sessions in")?;
        let flows = tokens
            .into_iter()
            .map(|token| RefreshFlow {
                link: Link::new(self.addr()),
                token,
            })
            .collect();
        Ok(self.measure(flows, "req/s").await)
    }

    /// The HTTP bound that scenario 3 is compared with: `GET /health` (no token, no
    /// database) on the same number of connections.
    pub async fn health(&self, driver: Driver) -> Measured {
        let flows = (0..self.me_connections)
            .map(|_| GetFlow {
                link: Link::new(self.addr()),
                request: client::get("/health", None),
                field: "status",
            })
            .collect();
        self.measure_with(flows, "req/s", driver).await
    }

    /// Scenario 3: `GET /auth/me` with a valid token, on `me_connections` connections.
    pub async fn me(&self, driver: Driver) -> Measured {
        let flows = (0..self.me_connections)
            .map(|i| GetFlow {
                link: Link::new(self.addr()),
                request: client::get(
                    "/auth/me",
                    Some(&self.accounts[i % self.accounts.len()].token),
                ),
                field: "id",
            })
            .collect();
        self.measure_with(flows, "req/s", driver).await
    }

    /// Scenario 12: `GET /ui/sign-in`, the hosted sign-in page, on `me_connections`
    /// keep-alive connections (each a browser with its form nonce cookie).
    pub async fn sign_in_page(&self) -> Measured {
        let flows = (0..self.me_connections)
            .map(|_| PageFlow {
                link: Link::new(self.addr()),
                request: client::request("GET", "/ui/sign-in", &[("cookie", &nonce_cookie())], b""),
            })
            .collect();
        self.measure(flows, "pages/s").await
    }

    /// Scenario 13: the sign-in form posted, each client a browser on its own prepared
    /// account (its nonce cookie and the form's token read once from the page).
    pub async fn form_login(&self) -> anyhow::Result<Measured> {
        let mut flows = Vec::with_capacity(self.accounts.len());
        for a in &self.accounts {
            let cookie = nonce_cookie();
            let mut conn = Conn::connect(self.addr()).await?;
            let page = conn
                .call(&client::request(
                    "GET",
                    "/ui/sign-in",
                    &[("cookie", &cookie)],
                    b"",
                ))
                .await?;
            let html = String::from_utf8_lossy(&page.body);
            let token = csrf_of(&html).context("the sign-in page's form token")?;
            let body = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("csrf", &token)
                .append_pair("email", &a.email)
                .append_pair("password", PASSWORD)
                .finish();
            let request = client::request(
                "POST",
                "/ui/sign-in",
                &[
                    ("cookie", &cookie),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                body.as_bytes(),
            );
            flows.push(FormLoginFlow {
                link: Link::new(self.addr()),
                request,
            });
        }
        Ok(self.measure(flows, "req/s").await)
    }

    /// Registers a `client_credentials` client with `gatehouse clients add` on the
    /// server's database: its id and secret.
    fn machine_client(&self, n: usize) -> anyhow::Result<(String, String)> {
        let out = std::process::Command::new(&self.server.binary)
            .args(["clients", "add", "--name", &format!("bench-{n}")])
            .args(["--grant", "client_credentials", "--json"])
            .env("GATEHOUSE_DATABASE_URL", &self.server.database_url)
            .output()
            .context("running gatehouse clients add")?;
        if !out.status.success() {
            bail!(
                "gatehouse clients add: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let field = |name: &str| {
            v[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("clients add --json: no {name}"))
        };
        Ok((field("client_id")?, field("client_secret")?))
    }

    /// One machine client per client of the load, each with its `Authorization: Basic`.
    fn machine_clients(&self) -> anyhow::Result<Vec<String>> {
        use base64::Engine;
        (0..self.clients)
            .map(|n| {
                let (id, secret) = self.machine_client(n)?;
                let pair = format!("{id}:{secret}");
                Ok(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            })
            .collect()
    }

    /// Scenario 14: `client_credentials` at `POST /oauth/token`, each load client as a
    /// registered machine client of its own (secret checked, an EdDSA access token
    /// signed every time).
    pub async fn client_credentials(&self) -> anyhow::Result<Outcome<Measured>> {
        if !self.oidc_is_on().await? {
            return Ok(Outcome::Skipped);
        }
        let flows = self
            .machine_clients()?
            .into_iter()
            .map(|auth| FormFlow {
                link: Link::new(self.addr()),
                request: form_request("/oauth/token", &auth, "grant_type=client_credentials"),
                expect: FormAnswer::Field("access_token"),
            })
            .collect();
        Ok(Outcome::Done(self.measure(flows, "req/s").await))
    }

    /// Scenario 15: `POST /oauth/introspect` of a live access token, each load client
    /// as a machine client introspecting its own (client secret, token signature, and
    /// the client still registered: a read by key).
    pub async fn introspection(&self) -> anyhow::Result<Outcome<Measured>> {
        if !self.oidc_is_on().await? {
            return Ok(Outcome::Skipped);
        }
        let auths = self.machine_clients()?;
        let grants = auths
            .iter()
            .map(|auth| form_request("/oauth/token", auth, "grant_type=client_credentials"))
            .collect();
        let tokens = call_all(self.addr(), grants, self.clients, 200, "access_token")
            .await
            .context("getting the tokens to introspect")?;
        let flows = auths
            .iter()
            .zip(tokens)
            .map(|(auth, token)| FormFlow {
                link: Link::new(self.addr()),
                request: form_request("/oauth/introspect", auth, &format!("token={token}")),
                expect: FormAnswer::Active,
            })
            .collect();
        Ok(Outcome::Done(self.measure(flows, "req/s").await))
    }

    /// A web client of the code flow whose ID tokens are signed with `alg`: its
    /// `Authorization: Basic`.
    fn web_client(&self, alg: &str) -> anyhow::Result<(String, String)> {
        use base64::Engine;
        let out = std::process::Command::new(&self.server.binary)
            .args(["clients", "add", "--name", &format!("bench-web-{alg}")])
            .args(["--redirect-uri", crate::codes::REDIRECT_URI])
            .args(["--id-token-signed-response-alg", alg, "--json"])
            .env("GATEHOUSE_DATABASE_URL", &self.server.database_url)
            .output()
            .context("running gatehouse clients add")?;
        if !out.status.success() {
            bail!(
                "gatehouse clients add: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let (Some(id), Some(secret)) = (v["client_id"].as_str(), v["client_secret"].as_str())
        else {
            bail!("clients add --json: no client_id or client_secret");
        };
        let pair = format!("{id}:{secret}");
        Ok((
            id.to_owned(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ),
        ))
    }

    /// Scenario 16: the code exchange (`authorization_code` at `POST /oauth/token`,
    /// client_secret_basic, PKCE S256, scopes `openid email`), each request with a code
    /// of its own, seeded into the database just before (see [`crate::codes`]): the
    /// code consumed, the session started, an access token and an ID token signed with
    /// `alg` (RS256 or ES256).
    pub async fn code_exchange(&self, alg: &str) -> anyhow::Result<Outcome<Measured>> {
        if !self.oidc_is_on().await? {
            return Ok(Outcome::Skipped);
        }
        let Some(path) = crate::codes::sqlite_path(&self.server.database_url) else {
            return Ok(Outcome::Skipped);
        };
        crate::codes::seed_accounts(path, &self.run_id)?;
        let (client_id, auth) = self.web_client(alg)?;
        let per_flow = self.codes_per_client;
        let mut codes =
            crate::codes::seed_codes(path, &self.run_id, &client_id, per_flow * self.clients)?;
        let redirect: String =
            url::form_urlencoded::byte_serialize(crate::codes::REDIRECT_URI.as_bytes()).collect();
        let flows = (0..self.clients)
            .map(|_| CodeFlow {
                link: Link::new(self.addr()),
                auth: auth.clone(),
                redirect: redirect.clone(),
                codes: codes.split_off(codes.len() - per_flow),
            })
            .collect();
        Ok(Outcome::Done(self.measure(flows, "req/s").await))
    }

    /// Scenario 17: a whole sign-in through `/oauth/authorize`, as a browser and a
    /// relying party make it: `/authorize` without a session (to the sign-in page),
    /// the page, the password form (a session and its cookie), `/authorize` again
    /// (a first-party client: no consent; the code), and the code's exchange with PKCE
    /// at `/oauth/token` (an RS256 ID token). Each load client signs its own prepared
    /// account in, again and again.
    pub async fn authorize_sign_in(&self) -> anyhow::Result<Outcome<Measured>> {
        if !self.oidc_is_on().await? {
            return Ok(Outcome::Skipped);
        }
        let out = std::process::Command::new(&self.server.binary)
            .args(["clients", "add", "--name", "bench-authorize", "--public"])
            .args([
                "--first-party",
                "--redirect-uri",
                AUTHORIZE_CALLBACK,
                "--json",
            ])
            .env("GATEHOUSE_DATABASE_URL", &self.server.database_url)
            .output()
            .context("running gatehouse clients add")?;
        if !out.status.success() {
            bail!(
                "gatehouse clients add: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let client = v["client_id"]
            .as_str()
            .context("clients add --json: no client_id")?
            .to_owned();
        let flows = self
            .accounts
            .iter()
            .map(|a| AuthorizeFlow {
                link: Link::new(self.addr()),
                client: client.clone(),
                email: a.email.clone(),
            })
            .collect();
        Ok(Outcome::Done(self.measure(flows, "flows/s").await))
    }

    async fn oidc_is_on(&self) -> anyhow::Result<bool> {
        let mut link = Link::new(self.addr());
        let res = link
            .call(&client::get("/.well-known/openid-configuration", None))
            .await
            .map_err(|e| anyhow::anyhow!("GET /.well-known/openid-configuration: {e}"))?;
        Ok(res.status == 200)
    }

    /// Scenario 4: the whole wallet login, after signing each client's wallet up once.
    pub async fn wallet(&self) -> anyhow::Result<Outcome<Measured>> {
        let probe = Wallet::random();
        let mut link = Link::new(self.addr());
        let res = link
            .call(&challenge_request(&probe))
            .await
            .map_err(|e| anyhow::anyhow!("GET challenge: {e}"))?;
        if res.status == 404 {
            return Ok(Outcome::Skipped);
        }
        let mut setups = Vec::new();
        for i in 0..self.clients {
            let addr = self.addr();
            let email = self.email("wallet", i);
            setups.push(tokio::spawn(async move {
                let wallet = Wallet::random();
                let mut link = Link::new(addr);
                let w = answer_challenge(&mut link, &wallet).await?;
                let auth = format!("Bearer {w}");
                let users = client::post_json(
                    &format!("{SELFKEY_MOUNT}/users"),
                    &[("authorization", &auth)],
                    &json!({"attributes": [{
                        "id": "http://platform.selfkey.org/schema/attribute/email.json",
                        "data": {"value": email},
                    }]}),
                );
                let res = link.call(&users).await?;
                if res.status != 201 {
                    return Err(Failure::Status(res.status));
                }
                Ok(WalletFlow { link, wallet })
            }));
        }
        let mut flows = Vec::with_capacity(setups.len());
        for setup in setups {
            match setup.await? {
                Ok(flow) => flows.push(flow),
                Err(e) => bail!("signing a wallet up: {e}"),
            }
        }
        Ok(Outcome::Done(self.measure(flows, "flows/s").await))
    }

    /// Scenario 7: passkey sign-in (options, the authenticator's signature, finish),
    /// after registering one passkey-only account per client. The server runs with RP ID
    /// localhost and origin http://localhost:8080 (set by `Server::start`), as the
    /// software authenticator reports it.
    pub async fn passkey(&self) -> anyhow::Result<Outcome<Measured>> {
        let mut link = Link::new(self.addr());
        let probe = link
            .call(&client::post_json(PASSKEY_LOGIN_OPTIONS, &[], &json!({})))
            .await
            .map_err(|e| anyhow::anyhow!("POST {PASSKEY_LOGIN_OPTIONS}: {e}"))?;
        if probe.status == 404 {
            return Ok(Outcome::Skipped);
        }
        let mut flows = Vec::with_capacity(self.clients);
        for _ in 0..self.clients {
            let mut link = Link::new(self.addr());
            let mut authenticator = Authenticator::new(PASSKEY_ORIGIN);
            let options = client::post_json("/auth/passkeys/register/options", &[], &json!({}));
            let begun = link
                .call(&options)
                .await
                .and_then(|r| r.json(200))
                .map_err(|e| anyhow::anyhow!("registration options: {e}"))?;
            let credential = authenticator.create(&begun["publicKey"]);
            let finish = client::post_json(
                "/auth/passkeys/register",
                &[],
                &json!({"ceremony": begun["ceremony"], "credential": credential}),
            );
            link.call(&finish)
                .await
                .and_then(|r| r.json(201))
                .map_err(|e| anyhow::anyhow!("registering a passkey: {e}"))?;
            flows.push(PasskeyFlow {
                link,
                authenticator,
            });
        }
        Ok(Outcome::Done(self.measure(flows, "ceremonies/s").await))
    }

    /// Scenario 8: the whole SIWE sign-in: a nonce, the EIP-4361 message signed
    /// (EIP-191), the session; each client's address signed in once before, so the
    /// measured flows sign in to an existing account. The server runs with the site
    /// http://localhost:8080 (set by `Server::start`) and chain 1.
    pub async fn siwe(&self) -> anyhow::Result<Outcome<Measured>> {
        let mut link = Link::new(self.addr());
        let probe = link
            .call(&client::get(SIWE_NONCE, None))
            .await
            .map_err(|e| anyhow::anyhow!("GET {SIWE_NONCE}: {e}"))?;
        if probe.status == 404 {
            return Ok(Outcome::Skipped);
        }
        let mut flows = Vec::with_capacity(self.clients);
        for _ in 0..self.clients {
            let mut flow = SiweFlow {
                link: Link::new(self.addr()),
                wallet: Wallet::random(),
            };
            flow.run()
                .await
                .map_err(|e| anyhow::anyhow!("a first SIWE sign-in: {e}"))?;
            flows.push(flow);
        }
        Ok(Outcome::Done(self.measure(flows, "flows/s").await))
    }

    /// Scenario 5: OwnID `getSessionByLoginId`, rotating over `ownid_accounts` passwordless
    /// accounts so that no (body, timestamp) pair is ever sent twice.
    pub async fn ownid(&self) -> anyhow::Result<Outcome<Measured>> {
        let count = self.ownid_accounts.max(self.clients);
        let emails: Vec<String> = (0..count).map(|i| self.email("ownid", i)).collect();
        let register = |e: &String| {
            client::post_json(
                "/auth/register",
                &[],
                &json!({"email": e, "ownIdData": "bench-ownid-data"}),
            )
        };
        call_all(self.addr(), vec![register(&emails[0])], 1, 200, "token").await?;
        let mut probe = OwnIdFlow::new(self.addr(), vec![emails[0].clone()], &self.ownid_key);
        match probe.run().await {
            Err(Failure::Status(404)) => return Ok(Outcome::Skipped),
            Err(e) => bail!("the first signed OwnID request failed: {e}"),
            Ok(()) => {}
        }
        let bodies = emails[1..].iter().map(register).collect();
        call_all(self.addr(), bodies, self.clients, 200, "token")
            .await
            .context("registering the OwnID accounts")?;
        let mut shares: Vec<Vec<String>> = vec![Vec::new(); self.clients];
        for (i, email) in emails.into_iter().enumerate() {
            shares[i % self.clients].push(email);
        }
        let flows = shares
            .into_iter()
            .map(|share| OwnIdFlow::new(self.addr(), share, &self.ownid_key))
            .collect();
        Ok(Outcome::Done(self.measure(flows, "req/s").await))
    }

    /// Scenario 6: `burst` password logins, each on its own connection, sent at once,
    /// each for an account of its own, as when many users come back after an outage.
    /// (Concurrent logins to one account are counted by its lockout before their
    /// password is checked, so beyond five at once they get 429.)
    pub async fn burst(&self) -> anyhow::Result<Burst> {
        let accounts = self.register_accounts("burst", self.burst).await?;
        let pid = self.server.pid();
        let mut connecting = Vec::with_capacity(self.burst);
        for _ in 0..self.burst {
            connecting.push(tokio::spawn(Conn::connect(self.addr())));
        }
        let mut conns = Vec::with_capacity(self.burst);
        for c in connecting {
            conns.push(c.await?.context("opening the burst's connections")?);
        }
        let before = usage_of(pid)?;
        let started = Instant::now();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let sampler = tokio::spawn(async move {
            let mut peak = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tokio::select! {
                    _ = tick.tick() => peak = peak.max(usage_of(pid).map_or(0, |u| u.rss_kib)),
                    _ = &mut stop_rx => return peak,
                }
            }
        });
        let tasks: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, mut conn)| {
                let request = login_request(&accounts[i].email);
                tokio::spawn(async move {
                    let began = Instant::now();
                    let res =
                        tokio::time::timeout(Duration::from_secs(60), conn.call(&request)).await;
                    (res, began.elapsed())
                })
            })
            .collect();
        let mut outcomes = BTreeMap::new();
        let mut answered = Tally::default();
        for task in tasks {
            let (res, latency) = task.await?;
            let key = match res {
                Ok(Ok(res)) => {
                    answered.ok(latency);
                    res.status.to_string()
                }
                Ok(Err(e)) => Failure::from(e).to_string(),
                Err(_) => Failure::Timeout.to_string(),
            };
            *outcomes.entry(key).or_insert(0) += 1;
        }
        let wall = started.elapsed();
        let _ = stop_tx.send(());
        let sampled_peak_kib = sampler.await?;
        let after = usage_of(pid)?;
        Ok(Burst {
            requests: self.burst,
            outcomes,
            answered,
            wall,
            sampled_peak_kib,
            server_peak_kib: after.peak_kib,
            server_cpu: after.cpu_secs - before.cpu_secs,
        })
    }
}

/// Sends every request with `concurrency` connections, each expecting `status` and a
/// string field `field`; returns the fields in the requests' order.
async fn call_all(
    addr: SocketAddr,
    requests: Vec<Vec<u8>>,
    concurrency: usize,
    status: u16,
    field: &'static str,
) -> anyhow::Result<Vec<String>> {
    let requests = Arc::new(requests);
    let lanes = concurrency.clamp(1, requests.len().max(1));
    let tasks: Vec<_> = (0..lanes)
        .map(|lane| {
            let requests = Arc::clone(&requests);
            tokio::spawn(async move {
                let mut link = Link::new(addr);
                let mut out = Vec::new();
                for i in (lane..requests.len()).step_by(lanes) {
                    let value = link.call(&requests[i]).await?.field(status, field)?;
                    out.push((i, value));
                }
                Ok::<_, Failure>(out)
            })
        })
        .collect();
    let mut values = vec![String::new(); requests.len()];
    for task in tasks {
        for (i, v) in task.await?.map_err(|e| anyhow::anyhow!("{e}"))? {
            values[i] = v;
        }
    }
    Ok(values)
}

fn login_request(email: &str) -> Vec<u8> {
    client::post_json(
        "/auth/login",
        &[],
        &json!({"email": email, "password": PASSWORD}),
    )
}

fn challenge_request(wallet: &Wallet) -> Vec<u8> {
    client::get(
        &format!("{SELFKEY_MOUNT}/auth/challenge/{}", wallet.public_key),
        None,
    )
}

/// Challenge, signature, answer: the wallet JWT.
async fn answer_challenge(link: &mut Link, wallet: &Wallet) -> Result<String, Failure> {
    let c = link
        .call(&challenge_request(wallet))
        .await?
        .field(200, "jwt")?;
    let challenge = challenge_claim(&c).ok_or(Failure::Body("no challenge claim"))?;
    let signature = wallet.personal_sign(&challenge);
    let auth = format!("Bearer {c}");
    let answer = client::post_json(
        &format!("{SELFKEY_MOUNT}/auth/challenge"),
        &[("authorization", &auth)],
        &json!({"signature": signature}),
    );
    link.call(&answer).await?.field(201, "jwt")
}

struct RegisterFlow {
    link: Link,
    prefix: String,
    n: u64,
}

impl Flow for RegisterFlow {
    async fn run(&mut self) -> Result<(), Failure> {
        self.n += 1;
        let email = format!("{}-{}@example.com", self.prefix, self.n);
        let req = client::post_json(
            "/auth/register",
            &[],
            &json!({"email": email, "password": PASSWORD}),
        );
        self.link.call(&req).await?.field(200, "token").map(drop)
    }
}

struct LoginFlow {
    link: Link,
    request: Vec<u8>,
}

impl Flow for LoginFlow {
    async fn run(&mut self) -> Result<(), Failure> {
        self.link
            .call(&self.request)
            .await?
            .field(200, "token")
            .map(drop)
    }
}

/// One refresh with the session's current token; the answer's token is the next one.
struct RefreshFlow {
    link: Link,
    token: String,
}

impl Flow for RefreshFlow {
    async fn run(&mut self) -> Result<(), Failure> {
        let request =
            client::post_json("/auth/refresh", &[], &json!({"refresh_token": self.token}));
        self.token = self
            .link
            .call(&request)
            .await?
            .field(200, "refresh_token")?;
        Ok(())
    }
}

/// One GET, answered 200 with a string field `field`.
/// A form POST with HTTP Basic client authentication.
fn form_request(path: &str, auth: &str, body: &str) -> Vec<u8> {
    client::request(
        "POST",
        path,
        &[
            ("authorization", auth),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    )
}

/// What a form answer must hold.
enum FormAnswer {
    /// A string field.
    Field(&'static str),
    /// `"active": true`.
    Active,
}

struct FormFlow {
    link: Link,
    request: Vec<u8>,
    expect: FormAnswer,
}

impl Flow for FormFlow {
    async fn run(&mut self) -> Result<(), Failure> {
        let res = self.link.call(&self.request).await?;
        match self.expect {
            FormAnswer::Field(name) => res.field(200, name).map(drop),
            FormAnswer::Active => match res.json(200)?.get("active") {
                Some(serde_json::Value::Bool(true)) => Ok(()),
                _ => Err(Failure::Body("active")),
            },
        }
    }
}

/// A relying party exchanging its codes, one per request.
struct CodeFlow {
    link: Link,
    auth: String,
    /// The redirect URI, form-encoded.
    redirect: String,
    codes: Vec<String>,
}

impl Flow for CodeFlow {
    async fn run(&mut self) -> Result<(), Failure> {
        let code = self
            .codes
            .pop()
            .ok_or(Failure::Body("out of seeded codes"))?;
        let body = format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={}",
            self.redirect,
            crate::codes::VERIFIER
        );
        let request = form_request("/oauth/token", &self.auth, &body);
        self.link
            .call(&request)
            .await?
            .field(200, "id_token")
            .map(drop)
    }
}

struct GetFlow {
    link: Link,
    request: Vec<u8>,
    field: &'static str,
}

impl Flow for GetFlow {
    async fn run(&mut self) -> Result<(), Failure> {
        self.link
            .call(&self.request)
            .await?
            .field(200, self.field)
            .map(drop)
    }
}

struct WalletFlow {
    link: Link,
    wallet: Wallet,
}

impl Flow for WalletFlow {
    async fn run(&mut self) -> Result<(), Failure> {
        let w = answer_challenge(&mut self.link, &self.wallet).await?;
        let token = client::get(&format!("{SELFKEY_MOUNT}/auth/token"), Some(&w));
        let login_token = self.link.call(&token).await?.field(200, "token")?;
        let login = client::post_json(
            &format!("{SELFKEY_MOUNT}/login"),
            &[],
            &json!({"token": login_token}),
        );
        let body = self.link.call(&login).await?.json(201)?;
        for field in ["redirectTo", "token"] {
            if !body.get(field).is_some_and(serde_json::Value::is_string) {
                return Err(Failure::Body(field));
            }
        }
        Ok(())
    }
}

struct SiweFlow {
    link: Link,
    wallet: Wallet,
}

impl Flow for SiweFlow {
    async fn run(&mut self) -> Result<(), Failure> {
        let nonce = self
            .link
            .call(&client::get(SIWE_NONCE, None))
            .await?
            .field(200, "nonce")?;
        let issued_at = rfc3339_now();
        let message = format!(
            "localhost:8080 wants you to sign in with your Ethereum account:\n{}\n\n\
             Sign in to the benchmark\n\nURI: http://localhost:8080/\nVersion: 1\n\
             Chain ID: 1\nNonce: {nonce}\nIssued At: {issued_at}",
            self.wallet.eip55_address()
        );
        let signature = self.wallet.personal_sign(&message);
        let req = client::post_json(
            "/auth/siwe",
            &[],
            &json!({"message": message, "signature": signature}),
        );
        self.link.call(&req).await?.field(200, "token").map(drop)
    }
}

/// Now as an RFC 3339 UTC date-time to the second, from the civil calendar of the
/// Unix time (the bench has no date crate).
fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

struct PasskeyFlow {
    link: Link,
    authenticator: Authenticator,
}

impl Flow for PasskeyFlow {
    async fn run(&mut self) -> Result<(), Failure> {
        let options = client::post_json(PASSKEY_LOGIN_OPTIONS, &[], &json!({}));
        let begun = self.link.call(&options).await?.json(200)?;
        let credential = self.authenticator.get(&begun["publicKey"]);
        let finish = client::post_json(
            "/auth/passkeys/login",
            &[],
            &json!({"ceremony": begun["ceremony"], "credential": credential}),
        );
        self.link.call(&finish).await?.field(200, "token").map(drop)
    }
}

struct OwnIdFlow {
    link: Link,
    emails: Vec<String>,
    /// The last timestamp sent for each email: the next is always later, so the
    /// server's replay guard never sees a request twice.
    last_ms: Vec<u64>,
    next: usize,
    key: Arc<Vec<u8>>,
}

impl OwnIdFlow {
    fn new(addr: SocketAddr, emails: Vec<String>, key: &Arc<Vec<u8>>) -> OwnIdFlow {
        OwnIdFlow {
            link: Link::new(addr),
            last_ms: vec![0; emails.len()],
            emails,
            next: 0,
            key: Arc::clone(key),
        }
    }
}

impl Flow for OwnIdFlow {
    async fn run(&mut self) -> Result<(), Failure> {
        let i = self.next;
        self.next = (i + 1) % self.emails.len();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let timestamp = now.max(self.last_ms[i] + 1);
        self.last_ms[i] = timestamp;
        let timestamp = timestamp.to_string();
        let body = json!({"loginId": self.emails[i]}).to_string();
        let signature = ownid::signature(&self.key, body.as_bytes(), &timestamp);
        let req = client::request(
            "POST",
            OWNID_SESSION,
            &[
                ("content-type", "application/json"),
                ("ownid-timestamp", &timestamp),
                ("ownid-signature", &signature),
            ],
            body.as_bytes(),
        );
        self.link.call(&req).await?.field(200, "token").map(drop)
    }
}

/// A browser's form nonce cookie (the pages take any 32 hex digits they did not set).
fn nonce_cookie() -> String {
    format!("gatehouse-ui-nonce={}", random_hex(16))
}

/// The value of the page's first `csrf` field.
fn csrf_of(html: &str) -> Option<String> {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker)? + marker.len();
    Some(html[start..start + html[start..].find('"')?].to_owned())
}

/// One GET of a page, answered 200 with a form.
struct PageFlow {
    link: Link,
    request: Vec<u8>,
}

impl Flow for PageFlow {
    async fn run(&mut self) -> Result<(), Failure> {
        let res = self.link.call(&self.request).await?;
        if res.status != 200 {
            return Err(Failure::Status(res.status));
        }
        if !res.body.windows(5).any(|w| w == b"<form") {
            return Err(Failure::Body("no form"));
        }
        Ok(())
    }
}

/// Scenario 17's client: a first-party public client on the loopback.
const AUTHORIZE_CALLBACK: &str = "http://127.0.0.1/cb";
/// Its PKCE verifier and that verifier's S256 challenge.
const AUTHORIZE_VERIFIER: &str = "dBjftJeZ4CVP-mJ0L2qTuEN1X5Sd8fc2q0s0a3gtB4I";
const AUTHORIZE_CHALLENGE: &str = "Q1l-jP9YrdnCNu-6nz_eIseapNaaOJH_CrFnETGcCKk";

struct AuthorizeFlow {
    link: Link,
    client: String,
    email: String,
}

impl AuthorizeFlow {
    /// A `303` and its `Location`.
    fn see_other(res: &client::Response) -> Result<String, Failure> {
        if res.status != 303 {
            return Err(Failure::Status(res.status));
        }
        res.location.clone().ok_or(Failure::Body("no Location"))
    }
}

impl Flow for AuthorizeFlow {
    async fn run(&mut self) -> Result<(), Failure> {
        let nonce = nonce_cookie();
        let authorize = format!(
            "/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid+email&state=s&nonce=n&code_challenge={AUTHORIZE_CHALLENGE}&code_challenge_method=S256",
            self.client,
            url::form_urlencoded::byte_serialize(AUTHORIZE_CALLBACK.as_bytes()).collect::<String>()
        );
        let res = self
            .link
            .call(&client::request(
                "GET",
                &authorize,
                &[("cookie", &nonce)],
                b"",
            ))
            .await?;
        let sign_in = Self::see_other(&res)?;
        let return_to = url::Url::parse(&format!("http://x{sign_in}"))
            .ok()
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "return_to")
                    .map(|(_, v)| v.into_owned())
            })
            .ok_or(Failure::Body("no return_to"))?;
        let page = self
            .link
            .call(&client::request(
                "GET",
                &sign_in,
                &[("cookie", &nonce)],
                b"",
            ))
            .await?;
        if page.status != 200 {
            return Err(Failure::Status(page.status));
        }
        let token =
            csrf_of(&String::from_utf8_lossy(&page.body)).ok_or(Failure::Body("no form"))?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("csrf", &token)
            .append_pair("email", &self.email)
            .append_pair("password", PASSWORD)
            .append_pair("return_to", &return_to)
            .finish();
        let res = self
            .link
            .call(&client::request(
                "POST",
                "/ui/sign-in",
                &[
                    ("cookie", &nonce),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                form.as_bytes(),
            ))
            .await?;
        let resume = Self::see_other(&res)?;
        let session = res
            .cookies
            .iter()
            .find(|c| c.starts_with("gatehouse-ui="))
            .ok_or(Failure::Body("no session cookie"))?;
        let cookies = format!("{nonce}; {session}");
        let res = self
            .link
            .call(&client::request(
                "GET",
                &resume,
                &[("cookie", &cookies)],
                b"",
            ))
            .await?;
        let callback = Self::see_other(&res)?;
        let code = url::Url::parse(&callback)
            .ok()
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
            })
            .ok_or(Failure::Body("no code"))?;
        let exchange = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", &code)
            .append_pair("redirect_uri", AUTHORIZE_CALLBACK)
            .append_pair("client_id", &self.client)
            .append_pair("code_verifier", AUTHORIZE_VERIFIER)
            .finish();
        let res = self
            .link
            .call(&client::request(
                "POST",
                "/oauth/token",
                &[("content-type", "application/x-www-form-urlencoded")],
                exchange.as_bytes(),
            ))
            .await?;
        res.field(200, "id_token").map(drop)
    }
}

/// One sign-in through the form: a 303 to the account page.
struct FormLoginFlow {
    link: Link,
    request: Vec<u8>,
}

impl Flow for FormLoginFlow {
    async fn run(&mut self) -> Result<(), Failure> {
        let res = self.link.call(&self.request).await?;
        if res.status != 303 {
            return Err(Failure::Status(res.status));
        }
        Ok(())
    }
}
