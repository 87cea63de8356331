//! Scenario 19: a social sign-in's callback (issue 27). A small OpenID Connect
//! upstream runs in this process on a thread of its own (so its CPU time is its own):
//! discovery, JWKS, and a token endpoint that checks the client's secret, the redirect
//! URI and PKCE and signs an ES256 ID token. A server of its own is started with it as
//! `[[social.providers]]` `bench`. Each sign-in needs a fresh pending sign-in: the
//! begin request (`GET /auth/social/bench`, its `state`, `nonce`, PKCE challenge and
//! binding cookie), then the upstream "authorizes" (a code bound to the nonce, minted
//! in-process as its authorization endpoint would after the person consents), then the
//! callback: the server exchanges the code, checks the ID token and opens a session.
//!
//! Measured three ways: the callback alone (begins and authorizations made before the
//! window, each client sends only callbacks inside it), the whole flow (begin,
//! authorize, callback), and the upstream's token endpoint alone (the driver redeems
//! codes directly), with the upstream thread's CPU time per request.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use p256::ecdsa::signature::Signer;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{self, Failure, Link};
use crate::load::{Flow, Window, closed_loop};
use crate::server::{Server, ServerConfig, random_hex, usage_of};
use crate::stats::Tally;

const PROVIDER: &str = "bench";
const CLIENT_ID: &str = "gatehouse-bench";
const KID: &str = "bench-es256";
/// Where the browser goes after the callback (the hosted pages' account page).
const RETURN_TO: &str = "/ui/account";

/// What the upstream's authorization endpoint bound a code to.
struct Grant {
    nonce: String,
    challenge: String,
    redirect_uri: String,
    subject: String,
}

struct Shared {
    issuer: String,
    key: p256::ecdsa::SigningKey,
    secret: String,
    discovery: Vec<u8>,
    jwks: Vec<u8>,
    codes: Mutex<HashMap<String, Grant>>,
    /// The upstream thread's id, for its CPU time.
    tid: OnceLock<u32>,
}

/// The upstream provider, on loopback.
pub struct Upstream {
    shared: Arc<Shared>,
}

impl Upstream {
    /// Starts it on a thread of its own with a one-thread runtime.
    pub fn start() -> anyhow::Result<Upstream> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let issuer = format!("http://{}", listener.local_addr()?);
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("random: {e}"))?;
        let key = p256::ecdsa::SigningKey::from_slice(&seed)?;
        let point = key.verifying_key().to_sec1_bytes();
        let (x, y) = point[1..].split_at(32);
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": B64.encode(x),
            "y": B64.encode(y), "kid": KID, "alg": "ES256", "use": "sig"}]});
        let discovery = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        });
        let shared = Arc::new(Shared {
            issuer,
            key,
            secret: random_hex(24),
            discovery: reply(200, discovery.to_string().as_bytes()),
            jwks: reply(200, jwks.to_string().as_bytes()),
            codes: Mutex::new(HashMap::new()),
            tid: OnceLock::new(),
        });
        let serving = shared.clone();
        std::thread::Builder::new()
            .name("bench-upstream".into())
            .spawn(move || {
                let _ = serving.tid.set(thread_id());
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the upstream's runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("the upstream's listener");
                    while let Ok((stream, _)) = listener.accept().await {
                        tokio::spawn(serve(serving.clone(), stream));
                    }
                });
            })?;
        while shared.tid.get().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(Upstream { shared })
    }

    /// The server's settings for this upstream as provider `bench` (generic OIDC,
    /// its email trusted).
    fn provider_env(&self) -> (String, String) {
        (
            "GATEHOUSE_SOCIAL__PROVIDERS".into(),
            format!(
                r#"[{{id="{PROVIDER}",kind="oidc",issuer="{}",client_id="{CLIENT_ID}",client_secret="{}",trust_email_verified=true}}]"#,
                self.shared.issuer, self.shared.secret
            ),
        )
    }

    /// The upstream thread's CPU time so far, seconds.
    pub fn cpu_secs(&self) -> f64 {
        let tid = self.shared.tid.get().copied().unwrap_or_default();
        std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0.0, |ns| ns as f64 / 1e9)
    }

    /// The authorization endpoint after the person consents: a code for `subject`,
    /// bound to the request's nonce, PKCE challenge and redirect URI. Returns the
    /// callback's path and query (as the browser would follow the redirect).
    fn authorize(&self, authorization_url: &str, subject: &str) -> Result<String, Failure> {
        let url = url::Url::parse(authorization_url).map_err(|_| Failure::Body("location"))?;
        let q: HashMap<_, _> = url.query_pairs().into_owned().collect();
        let (Some(state), Some(nonce), Some(challenge), Some(redirect_uri)) = (
            q.get("state"),
            q.get("nonce"),
            q.get("code_challenge"),
            q.get("redirect_uri"),
        ) else {
            return Err(Failure::Body("authorization request"));
        };
        if q.get("client_id").map(String::as_str) != Some(CLIENT_ID)
            || q.get("code_challenge_method").map(String::as_str) != Some("S256")
        {
            return Err(Failure::Body("authorization request"));
        }
        let code = random_hex(16);
        let callback = url::Url::parse(redirect_uri).map_err(|_| Failure::Body("redirect_uri"))?;
        self.shared.codes.lock().expect("codes").insert(
            code.clone(),
            Grant {
                nonce: nonce.clone(),
                challenge: challenge.clone(),
                redirect_uri: redirect_uri.clone(),
                subject: subject.to_owned(),
            },
        );
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &code)
            .append_pair("state", state)
            .finish();
        Ok(format!("{}?{query}", callback.path()))
    }
}

/// This thread's id (the last part of `/proc/thread-self`, `<pid>/task/<tid>`).
fn thread_id() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or_default()
}

fn reply(status: u16, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncache-control: no-store\r\ncontent-length: {}\r\n\r\n",
        if status == 200 { "OK" } else { "Bad Request" },
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// One keep-alive connection to the upstream.
async fn serve(shared: Arc<Shared>, mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(4096);
    loop {
        let (head, length, post, path, auth) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            if let httparse::Status::Complete(head) = req
                .parse(&buf)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
            {
                let mut length = 0;
                let mut auth = None;
                for h in req.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        length = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                    } else if h.name.eq_ignore_ascii_case("authorization") {
                        auth = Some(String::from_utf8_lossy(h.value).into_owned());
                    }
                }
                let post = req.method == Some("POST");
                break (head, length, post, req.path.unwrap_or("").to_owned(), auth);
            }
            buf.reserve(4096);
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        while buf.len() < head + length {
            buf.reserve(4096);
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
        let body: Vec<u8> = buf.drain(..head + length).skip(head).collect();
        let answer = match (post, path.as_str()) {
            (false, "/.well-known/openid-configuration") => shared.discovery.clone(),
            (false, "/jwks") => shared.jwks.clone(),
            (true, "/token") => match token(&shared, auth.as_deref(), &body) {
                Ok(json) => reply(200, json.as_bytes()),
                Err(error) => reply(400, json!({"error": error}).to_string().as_bytes()),
            },
            _ => reply(404, br#"{"error":"not_found"}"#),
        };
        stream.write_all(&answer).await?;
    }
}

/// The token endpoint: the client (HTTP Basic or the form), the code (once), its
/// redirect URI and PKCE verifier; then an ES256 ID token.
fn token(s: &Shared, auth: Option<&str>, body: &[u8]) -> Result<String, &'static str> {
    let form: HashMap<_, _> = url::form_urlencoded::parse(body).into_owned().collect();
    let basic = auth
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    // The id and secret need no form-encoding (a fixed id, a hex secret).
    let (id, secret) = match &basic {
        Some(pair) => pair.split_once(':').ok_or("invalid_client")?,
        None => (
            form.get("client_id").map_or("", String::as_str),
            form.get("client_secret").map_or("", String::as_str),
        ),
    };
    if id != CLIENT_ID || secret != s.secret {
        return Err("invalid_client");
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return Err("unsupported_grant_type");
    }
    let code = form.get("code").ok_or("invalid_request")?;
    let grant = s
        .codes
        .lock()
        .expect("codes")
        .remove(code)
        .ok_or("invalid_grant")?;
    let verifier = form.get("code_verifier").ok_or("invalid_grant")?;
    if form.get("redirect_uri") != Some(&grant.redirect_uri)
        || B64.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge
    {
        return Err("invalid_grant");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    let header = B64.encode(json!({"alg": "ES256", "typ": "JWT", "kid": KID}).to_string());
    let claims = B64.encode(
        json!({
            "iss": s.issuer, "sub": grant.subject, "aud": CLIENT_ID, "iat": now,
            "exp": now + 300, "nonce": grant.nonce,
            "email": format!("{}@example.com", grant.subject), "email_verified": true,
        })
        .to_string(),
    );
    let input = format!("{header}.{claims}");
    let signature: p256::ecdsa::Signature = s.key.sign(input.as_bytes());
    let id_token = format!("{input}.{}", B64.encode(signature.to_bytes()));
    Ok(
        json!({"access_token": random_hex(16), "token_type": "Bearer", "expires_in": 300,
        "id_token": id_token})
        .to_string(),
    )
}

/// A pending sign-in the upstream has authorized: the callback request, with the
/// browser's binding cookie.
type Callback = Vec<u8>;

/// The begin request, then the upstream's authorization: the callback to send.
async fn prepare(link: &mut Link, upstream: &Upstream, subject: &str) -> Result<Callback, Failure> {
    let begin = client::get(
        &format!("/auth/social/{PROVIDER}?return_to=%2Fui%2Faccount"),
        None,
    );
    let res = link.call(&begin).await?;
    if res.status != 302 {
        return Err(Failure::Status(res.status));
    }
    let location = res.location.as_deref().ok_or(Failure::Body("location"))?;
    let cookie = res
        .cookie("gatehouse-social")
        .ok_or(Failure::Body("binding cookie"))?;
    let callback = upstream.authorize(location, subject)?;
    Ok(client::request(
        "GET",
        &callback,
        &[("cookie", &format!("gatehouse-social={cookie}"))],
        b"",
    ))
}

/// The callback: `303` to return_to with the session cookie.
async fn finish(link: &mut Link, callback: &[u8]) -> Result<(), Failure> {
    let res = link.call(callback).await?;
    if res.status != 303 {
        return Err(Failure::Status(res.status));
    }
    if res.location.as_deref() != Some(RETURN_TO) {
        return Err(Failure::Body("not to return_to"));
    }
    res.cookie("gatehouse-ui")
        .ok_or(Failure::Body("no session cookie"))?;
    Ok(())
}

/// The callback alone, from callbacks prepared before the window.
struct CallbackFlow {
    link: Link,
    ready: VecDeque<Callback>,
}

impl Flow for CallbackFlow {
    async fn run(&mut self) -> Result<(), Failure> {
        let callback = self
            .ready
            .pop_front()
            .ok_or(Failure::Body("out of prepared sign-ins"))?;
        finish(&mut self.link, &callback).await
    }
}

/// Begin, authorize, callback.
struct WholeFlow {
    link: Link,
    upstream: Arc<Upstream>,
    subject: String,
}

impl Flow for WholeFlow {
    async fn run(&mut self) -> Result<(), Failure> {
        let callback = prepare(&mut self.link, &self.upstream, &self.subject).await?;
        finish(&mut self.link, &callback).await
    }
}

/// The upstream's token endpoint alone: a code minted in-process, redeemed by the
/// driver as the server redeems it.
struct TokenFlow {
    link: Link,
    upstream: Arc<Upstream>,
    redirect_uri: String,
}

impl Flow for TokenFlow {
    async fn run(&mut self) -> Result<(), Failure> {
        let verifier = random_hex(32);
        let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
        let authorization = format!(
            "{}/authorize?client_id={CLIENT_ID}&code_challenge_method=S256&code_challenge={challenge}&state=s&nonce={}&redirect_uri={}",
            self.upstream.shared.issuer,
            random_hex(16),
            url::form_urlencoded::byte_serialize(self.redirect_uri.as_bytes()).collect::<String>()
        );
        let callback = self.upstream.authorize(&authorization, "token-only")?;
        let code = callback
            .split_once("code=")
            .and_then(|(_, rest)| rest.split('&').next())
            .ok_or(Failure::Body("code"))?;
        let form: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("code_verifier", &verifier)
            .finish();
        let auth = format!(
            "Basic {}",
            STANDARD.encode(format!("{CLIENT_ID}:{}", self.upstream.shared.secret))
        );
        let req = client::request(
            "POST",
            "/token",
            &[
                ("authorization", &auth),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            form.as_bytes(),
        );
        self.link.call(&req).await?.field(200, "id_token")?;
        Ok(())
    }
}

/// One of the three measurements: rate, latency, and CPU time of the server and the
/// upstream inside the window.
pub struct Part {
    pub tally: Tally,
    pub seconds: f64,
    pub server_cpu: f64,
    pub upstream_cpu: f64,
    pub driver_cpu: f64,
}

impl Part {
    pub fn rate(&self) -> f64 {
        self.tally.successes() as f64 / self.seconds
    }

    /// CPU µs per successful operation.
    pub fn per_op_us(&self, cpu: f64) -> f64 {
        1e6 * cpu / self.tally.successes().max(1) as f64
    }
}

pub struct SocialRun {
    pub callback: Part,
    /// How many sign-ins were prepared for the callback-alone window.
    pub prepared: usize,
    pub whole: Part,
    pub upstream_alone: Part,
}

async fn measure<F: Flow>(
    flows: Vec<F>,
    window: &Window,
    server_pid: u32,
    upstream: &Upstream,
) -> Part {
    let me = std::process::id();
    let mut marks = Vec::with_capacity(2);
    let tally = closed_loop(flows, window, || {
        marks.push((
            usage_of(server_pid).unwrap_or_default().cpu_secs,
            upstream.cpu_secs(),
            usage_of(me).unwrap_or_default().cpu_secs,
        ));
    })
    .await;
    let upstream_cpu = marks[1].1 - marks[0].1;
    Part {
        tally,
        seconds: window.duration.as_secs_f64(),
        server_cpu: marks[1].0 - marks[0].0,
        upstream_cpu,
        // The driver's process includes the upstream's thread.
        driver_cpu: marks[1].2 - marks[0].2 - upstream_cpu,
    }
}

/// Starts the upstream and a server of its own configured with it, and measures.
pub async fn run(
    base: &ServerConfig,
    window: &Window,
    clients: usize,
) -> anyhow::Result<SocialRun> {
    let upstream = Arc::new(Upstream::start()?);
    let mut env = vec![upstream.provider_env()];
    env.extend(base.extra_env.iter().cloned());
    let config = ServerConfig {
        binary: base.binary.clone(),
        postgres: base.postgres.clone(),
        keep_schema: None,
        jwt_secret: base.jwt_secret.clone(),
        ownid_secret: base.ownid_secret.clone(),
        extra_env: env,
        grow: None,
    };
    let server = Server::start(&config).await?;
    let result = measure_all(&server, &upstream, window, clients.max(1)).await;
    server.stop();
    result
}

async fn measure_all(
    server: &Server,
    upstream: &Arc<Upstream>,
    window: &Window,
    clients: usize,
) -> anyhow::Result<SocialRun> {
    let addr = server.addr;
    let subject = |c: usize| format!("bench-person-{c}");
    // Each client's person signs up once; every measured sign-in is a returning one.
    let mut whole = Vec::with_capacity(clients);
    for c in 0..clients {
        let mut flow = WholeFlow {
            link: Link::new(addr),
            upstream: upstream.clone(),
            subject: subject(c),
        };
        flow.run()
            .await
            .map_err(|e| anyhow::anyhow!("a first social sign-in: {e}"))?;
        whole.push(flow);
    }
    let whole = measure(whole, window, server.pid(), upstream).await;
    if whole.tally.successes() == 0 {
        bail!(
            "no social sign-in succeeded: {}",
            whole.tally.describe_errors()
        );
    }

    // Enough prepared sign-ins for the window at three times the whole flow's rate
    // (a callback is about a third of the flow's requests), each client its share.
    let seconds = (window.warmup + window.duration).as_secs_f64();
    let per_client = ((3.0 * whole.rate() * seconds) / clients as f64).ceil() as usize + 1;
    let preparing: Vec<_> = (0..clients)
        .map(|c| {
            let upstream = upstream.clone();
            let who = subject(c);
            tokio::spawn(async move {
                let mut link = Link::new(addr);
                let mut ready = VecDeque::with_capacity(per_client);
                for _ in 0..per_client {
                    ready.push_back(prepare(&mut link, &upstream, &who).await?);
                }
                Ok::<_, Failure>(CallbackFlow {
                    link: Link::new(addr),
                    ready,
                })
            })
        })
        .collect();
    let mut flows = Vec::with_capacity(clients);
    for p in preparing {
        flows.push(
            p.await?
                .map_err(|e| anyhow::anyhow!("preparing sign-ins: {e}"))
                .context("scenario 19")?,
        );
    }
    let callback = measure(flows, window, server.pid(), upstream).await;

    let redirect_uri = format!("http://{addr}/auth/social/{PROVIDER}/callback");
    let upstream_addr: SocketAddr = upstream
        .shared
        .issuer
        .trim_start_matches("http://")
        .parse()?;
    let flows = (0..clients)
        .map(|_| TokenFlow {
            link: Link::new(upstream_addr),
            upstream: upstream.clone(),
            redirect_uri: redirect_uri.clone(),
        })
        .collect();
    let upstream_alone = measure(flows, window, server.pid(), upstream).await;
    Ok(SocialRun {
        callback,
        prepared: per_client * clients,
        whole,
        upstream_alone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token endpoint redeems a code once, for its client, redirect URI and PKCE
    /// verifier, and its ID token verifies with the key the JWKS publishes.
    #[test]
    fn the_token_endpoint_checks_the_grant_and_signs_what_the_jwks_verifies() {
        use p256::ecdsa::signature::Verifier;
        let up = Upstream::start().unwrap();
        let verifier = random_hex(32);
        let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
        let redirect = "http://127.0.0.1:1/auth/social/bench/callback";
        let authorization = format!(
            "{}/authorize?client_id={CLIENT_ID}&code_challenge_method=S256&code_challenge={challenge}&state=st&nonce=n0&redirect_uri={}",
            up.shared.issuer,
            url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
        );
        let callback = up.authorize(&authorization, "person").unwrap();
        assert!(
            callback.starts_with("/auth/social/bench/callback?code="),
            "{callback}"
        );
        assert!(callback.ends_with("&state=st"), "{callback}");
        let code = callback
            .split_once("code=")
            .unwrap()
            .1
            .split('&')
            .next()
            .unwrap();
        let form = |verifier: &str| {
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", redirect)
                .append_pair("code_verifier", verifier)
                .finish()
        };
        let basic = format!(
            "Basic {}",
            STANDARD.encode(format!("{CLIENT_ID}:{}", up.shared.secret))
        );
        let wrong = format!("Basic {}", STANDARD.encode(format!("{CLIENT_ID}:not-it")));
        assert_eq!(
            token(&up.shared, Some(&wrong), form(&verifier).as_bytes()),
            Err("invalid_client")
        );
        assert_eq!(
            token(&up.shared, Some(&basic), form("another").as_bytes()),
            Err("invalid_grant")
        );
        // The failed try consumed the code, as a real provider does.
        assert_eq!(
            token(&up.shared, Some(&basic), form(&verifier).as_bytes()),
            Err("invalid_grant")
        );

        let callback = up.authorize(&authorization, "person").unwrap();
        let code = callback
            .split_once("code=")
            .unwrap()
            .1
            .split('&')
            .next()
            .unwrap()
            .to_owned();
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", &code)
            .append_pair("redirect_uri", redirect)
            .append_pair("code_verifier", &verifier)
            .finish();
        let answer: serde_json::Value =
            serde_json::from_str(&token(&up.shared, Some(&basic), body.as_bytes()).unwrap())
                .unwrap();
        let id_token = answer["id_token"].as_str().unwrap();
        let (input, signature) = id_token.rsplit_once('.').unwrap();
        let signature =
            p256::ecdsa::Signature::from_slice(&B64.decode(signature).unwrap()).unwrap();
        assert!(
            up.shared
                .key
                .verifying_key()
                .verify(input.as_bytes(), &signature)
                .is_ok()
        );
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(input.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(claims["nonce"], "n0");
        assert_eq!(claims["aud"], CLIENT_ID);
        assert_eq!(claims["iss"], json!(up.shared.issuer));
        assert_eq!(
            token(&up.shared, Some(&basic), body.as_bytes()),
            Err("invalid_grant"),
            "once"
        );
    }
}
