//! Starts the real server on port 0 with its own database (a fresh SQLite file, or a
//! fresh schema in the test PostgreSQL), and talks to it over HTTP.

use std::time::Duration;

use gatehouse::config::Settings;
use gatehouse::http::{AppState, Server};
use reqwest::StatusCode;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL to test against, if any. With `GATEHOUSE_TEST_REQUIRE_POSTGRES`
/// set (CI sets it), a missing URL fails the test instead of skipping it.
pub fn postgres_url() -> Option<String> {
    match std::env::var("GATEHOUSE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("GATEHOUSE_TEST_REQUIRE_POSTGRES").is_none(),
                "GATEHOUSE_TEST_REQUIRE_POSTGRES is set but GATEHOUSE_TEST_POSTGRES_URL is not"
            );
            None
        }
    }
}

/// Runs each listed `async fn(Backend)` once per backend: `sqlite::name` always,
/// `postgres::name` when a test PostgreSQL is configured.
#[macro_export]
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if $crate::helpers::postgres_url().is_none() {
                        eprintln!("skipped: GATEHOUSE_TEST_POSTGRES_URL is not set");
                        return;
                    }
                    super::$test($crate::helpers::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// A 32+ byte secret the tests know, so they can verify and forge tokens.
pub const JWT_SECRET: &str = "test-secret-0123456789-0123456789-0123456789";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub app: AppState,
    /// The separate metrics listener (`metrics.listen`), when configured.
    pub metrics_base: Option<String>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Settings for a test server: port 0, a known secret, cheap argon2 parameters.
pub fn test_settings(dir: &std::path::Path) -> Settings {
    let mut s = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        jwt_secret: Some(gatehouse::domain::Secret::new(JWT_SECRET.to_string())),
        database_max_connections: 4,
        ..Settings::default()
    };
    s.argon2.memory_kib = 256;
    s.argon2.iterations = 1;
    // The passkey and SIWE tests sign for the site of a server on 8080, the embedded
    // default's; this one listens on a port of its own, which the defaults would follow.
    s.passkeys.origins = vec!["http://localhost:8080".into()];
    s.siwe.domains = vec!["http://localhost:8080".into()];
    s
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("test.db").display()),
            Backend::Postgres => fresh_postgres_schema().await,
        };
        let mut settings = test_settings(dir.path());
        settings.database_url = Some(database_url);
        configure(&mut settings);
        Self::start(settings, dir).await
    }

    /// A second node on the same database (PostgreSQL: the same schema) and secret.
    pub async fn spawn_beside(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        Self::spawn_on(&self.app.settings.database_url(), configure).await
    }

    /// A node on an existing database (another node's), configured by `configure`.
    pub async fn spawn_on(database_url: &str, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = test_settings(dir.path());
        settings.database_url = Some(database_url.to_owned());
        configure(&mut settings);
        Self::start(settings, dir).await
    }

    async fn start(settings: Settings, dir: tempfile::TempDir) -> TestApp {
        let server = Server::build(settings).await.expect("server starts");
        let base = format!("http://{}", server.local_addr());
        let app = server.app();
        let metrics_base = server.metrics_addr().map(|a| format!("http://{a}"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        let client = client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        TestApp {
            base,
            client,
            app,
            metrics_base,
            _dir: dir,
            _stop: stop,
        }
    }

    /// A second node on this node's database (same settings, its own data directory
    /// and port), as behind a load balancer.
    pub async fn another_node(&self) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = self.app.settings.clone();
        settings.database_url = Some(self.app.settings.database_url());
        settings.data_dir = dir.path().to_path_buf();
        settings.listen = "127.0.0.1:0".parse().unwrap();
        Self::start(settings, dir).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POSTs a JSON body; returns the status and the parsed body (`Null` if empty).
    pub async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let res = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        read(res).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let res = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        read(res).await
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    /// Sends only the headers of a JSON POST that declares `content_length` bytes and
    /// reads the answer: an oversized body must be refused without waiting for it.
    pub async fn post_declaring(&self, path: &str, content_length: usize) -> (StatusCode, Value) {
        self.send_raw(&format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n"
        ))
        .await
    }

    /// Writes `request` as is on a new connection and reads the answer up to the
    /// connection's end (send `Connection: close` when the server would keep it open).
    pub async fn send_raw(&self, request: &str) -> (StatusCode, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = self.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response));
        read.await.expect("the server answers at once").unwrap();
        let text = String::from_utf8(response).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        (
            StatusCode::from_u16(status).unwrap(),
            serde_json::from_str(body).unwrap(),
        )
    }

    pub async fn register(&self, email: &str, password: &str) -> (StatusCode, Value) {
        self.post_json(
            "/auth/register",
            &serde_json::json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> (StatusCode, Value) {
        self.post_json(
            "/auth/login",
            &serde_json::json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers and returns the account token.
    pub async fn registered(&self, email: &str, password: &str) -> String {
        let (status, body) = self.register(email, password).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// Registers a passwordless (OwnID) account and returns its account token.
    pub async fn registered_passwordless(&self, email: &str, own_id_data: &str) -> String {
        let body = serde_json::json!({"email": email, "ownIdData": own_id_data});
        let (status, body) = self.post_json("/auth/register", &body).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    pub async fn me(&self, token: &str) -> (StatusCode, Value) {
        read(self.get("/auth/me", Some(token)).await).await
    }

    /// Registers and returns the whole sign-in answer (token, refresh_token, …).
    pub async fn signed_up(&self, email: &str, password: &str) -> Value {
        let (status, body) = self.register(email, password).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        self.post_json(
            "/auth/refresh",
            &serde_json::json!({"refresh_token": refresh_token}),
        )
        .await
    }

    /// `POST /auth/logout` with the token and, if given, a scope.
    pub async fn logout(&self, token: &str, scope: Option<&str>) -> (StatusCode, Value) {
        let mut req = self
            .client
            .post(self.url("/auth/logout"))
            .bearer_auth(token);
        if let Some(scope) = scope {
            req = req.json(&serde_json::json!({"scope": scope}));
        }
        read(req.send().await.unwrap()).await
    }
}

/// The status and JSON body (`Null` when empty) of a response.
pub async fn read(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let bytes = res.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, body)
}

/// A new, empty schema in the test database, as a URL whose connections use it.
pub async fn fresh_postgres_schema() -> String {
    let base = postgres_url().expect("postgres configured");
    let schema = format!("t_{}", uuid_like());
    let admin = sqlx::PgPool::connect(&base)
        .await
        .expect("test PostgreSQL reachable");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

fn uuid_like() -> String {
    gatehouse::crypto::random_id()
}

/// A random email address no other test uses.
pub fn email() -> String {
    format!("user-{}@example.com", &gatehouse::crypto::random_id()[..12])
}

/// Decodes a JWT's header and claims without verifying it.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let header = serde_json::from_slice(&b64.decode(parts.next().unwrap()).unwrap()).unwrap();
    let claims = serde_json::from_slice(&b64.decode(parts.next().unwrap()).unwrap()).unwrap();
    (header, claims)
}

/// A client builder for the tests' requests. The library's HTTP client (social
/// sign-in's) turns on reqwest's `rustls-no-provider`, which every client in this
/// process shares: the TLS provider is installed first, as the server does.
pub fn client_builder() -> reqwest::ClientBuilder {
    gatehouse::app::install_tls_provider();
    reqwest::Client::builder()
}

/// A default client, as `reqwest::Client::new()` makes it.
pub fn client() -> reqwest::Client {
    client_builder().build().unwrap()
}
