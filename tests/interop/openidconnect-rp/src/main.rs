//! Gatehouse's OpenID Connect provider through the Rust `openidconnect` crate as a
//! relying party. Run by scripts/openidconnect-rp.sh against a server it starts
//! (GATEHOUSE_PUBLIC_URL, its issuer; GATEHOUSE_BIN and GATEHOUSE_DATA_DIR, for
//! `gatehouse clients add`).
//!
//! For a client whose ID tokens are signed RS256 and one signed ES256: discovery
//! (the crate checks the issuer), the authorization URL with PKCE S256, state and
//! nonce, the sign-in as a browser without JavaScript makes it (a cookie jar:
//! `/oauth/authorize` → `/ui/sign-in`, the form posted with its CSRF token, back to
//! the pending request, the consent form), the code read from the redirect (with
//! `state` and RFC 9207's `iss`), the code exchange and the crate's own ID token checks
//! (signature against the JWKS, issuer, audience, expiry, nonce, the algorithm
//! registered), UserInfo, refresh with rotation, introspection; a replayed code refused
//! and ending the session; a second authorization answered at once (consent
//! remembered) and revocation ending that session. Every step asserts the status and
//! the body; any failure panics, so the exit status is not 0.

use std::process::Command;

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreErrorResponseType, CoreGrantType, CoreJsonWebKey, CoreJsonWebKeyType,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret,
    CsrfToken, IntrospectionUrl, IssuerUrl, JsonWebKey, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, ProviderMetadata, RedirectUrl, RequestTokenError, RevocationUrl, Scope,
    SubjectIdentifier, TokenIntrospectionResponse, TokenResponse, UserInfoError,
};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

const PASSWORD: &str = "correct horse battery staple";
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// The endpoints of the discovery document that `openidconnect`'s core metadata
/// leaves out.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct Extra {
    revocation_endpoint: String,
    introspection_endpoint: String,
    end_session_endpoint: String,
    code_challenge_methods_supported: Vec<String>,
    authorization_response_iss_parameter_supported: bool,
}
impl AdditionalProviderMetadata for Extra {}

type Metadata = ProviderMetadata<
    Extra,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

struct Server {
    issuer: String,
    bin: String,
    data: String,
    /// For the crate's requests: no redirects followed (as the crate's docs ask).
    http: reqwest::Client,
}

impl Server {
    /// `gatehouse … --json --data-dir DATA`, with none of the caller's GATEHOUSE_*
    /// settings (they would be read as configuration); its JSON.
    fn cli(&self, args: &[&str]) -> Value {
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .args(["--json", "--data-dir", &self.data]);
        for (key, _) in std::env::vars() {
            if key.starts_with("GATEHOUSE_") {
                command.env_remove(key);
            }
        }
        let out = command.output().expect("gatehouse runs");
        assert!(
            out.status.success(),
            "gatehouse {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("gatehouse --json prints JSON")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}

/// A person with a password: the account's id and address.
async fn person(server: &Server) -> (String, String) {
    let suffix: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let email = format!("openidconnect-rs-{suffix:x}@example.com");
    let res = server
        .http
        .post(server.url("/auth/register"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .expect("POST /auth/register");
    let status = res.status();
    let body: Value = res.json().await.expect("a JSON body");
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().expect("a token");
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims = decode_segment(payload);
    (claims["sub"].as_str().expect("sub").to_owned(), email)
}

/// A JWT segment's JSON (base64url without padding).
fn decode_segment(segment: &str) -> Value {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in segment.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64url") as u32;
        bits = (bits << 6) | v;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    serde_json::from_slice(&out).expect("a JSON segment")
}

/// The pairs of a URL's query.
fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The HTML of the page's form posting to `action`.
fn form<'h>(html: &'h str, action: &str) -> &'h str {
    let marker = format!("action=\"{action}\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no form to {action}: {html}"));
    let end = start + html[start..].find("</form>").expect("the form ends");
    &html[start..end]
}

/// The value of the form's hidden input `name`, its HTML escapes undone.
fn hidden(form: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = form
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name}: {form}"))
        + marker.len();
    let raw = &form[start..start + form[start..].find('"').expect("the value ends")];
    raw.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A browser without JavaScript: a cookie jar, redirects seen one by one, forms
/// posted with the Origin a browser sends.
struct Browser<'s> {
    server: &'s Server,
    http: reqwest::Client,
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl<'s> Browser<'s> {
    fn new(server: &'s Server) -> Self {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client");
        Browser { server, http }
    }

    async fn read(res: reqwest::Response) -> Answer {
        let status = res.status();
        let location = res
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|v| v.to_str().expect("an ASCII Location").to_owned());
        let body = res.text().await.expect("a body");
        Answer {
            status,
            location,
            body,
        }
    }

    /// GET `url` (absolute, or a path on the server).
    async fn get(&self, url: &str) -> Answer {
        let url = if url.starts_with('/') {
            self.server.url(url)
        } else {
            url.to_owned()
        };
        Self::read(self.http.get(url).send().await.expect("GET")).await
    }

    /// POSTs `fields` to `action`, a path on the server.
    async fn post(&self, action: &str, fields: &[(&str, &str)]) -> Answer {
        let res = self
            .http
            .post(self.server.url(action))
            .header(reqwest::header::ORIGIN, &self.server.issuer)
            .form(fields)
            .send()
            .await
            .expect("POST");
        Self::read(res).await
    }
}

/// Where a `303` answer sends the browser.
fn see_other(answer: &Answer) -> &str {
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    answer.location.as_deref().expect("a Location")
}

/// The callback's code, after checking the redirect is the registered URI with the
/// state sent and the issuer (RFC 9207).
fn code_at_callback(server: &Server, answer: &Answer, state: &CsrfToken) -> AuthorizationCode {
    let location = Url::parse(see_other(answer)).expect("an absolute redirect");
    assert_eq!(
        format!(
            "{}://{}{}",
            location.scheme(),
            location.authority(),
            location.path()
        ),
        REDIRECT_URI,
        "{location}"
    );
    assert_eq!(query(&location, "error"), None, "{location}");
    assert_eq!(
        query(&location, "state").as_deref(),
        Some(state.secret().as_str())
    );
    assert_eq!(
        query(&location, "iss").as_deref(),
        Some(server.issuer.as_str())
    );
    AuthorizationCode::new(query(&location, "code").expect("a code"))
}

async fn discover(server: &Server) -> Metadata {
    let issuer = IssuerUrl::new(server.issuer.clone()).expect("an issuer URL");
    // The crate refuses a document whose issuer is not the one asked for.
    let metadata = Metadata::discover_async(issuer, &server.http)
        .await
        .expect("discovery");
    assert_eq!(metadata.issuer().as_str(), server.issuer);
    assert_eq!(
        metadata.authorization_endpoint().as_str(),
        server.url("/oauth/authorize")
    );
    assert_eq!(
        metadata.token_endpoint().map(|u| u.as_str().to_owned()),
        Some(server.url("/oauth/token"))
    );
    assert_eq!(
        metadata.userinfo_endpoint().map(|u| u.as_str().to_owned()),
        Some(server.url("/oauth/userinfo"))
    );
    assert_eq!(
        metadata.jwks_uri().as_str(),
        server.url("/.well-known/jwks.json")
    );
    let extra = metadata.additional_metadata();
    assert_eq!(extra.code_challenge_methods_supported, ["S256"]);
    assert!(extra.authorization_response_iss_parameter_supported);
    assert_eq!(extra.end_session_endpoint, server.url("/oauth/logout"));
    let algs = metadata.id_token_signing_alg_values_supported();
    assert!(
        algs.contains(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256),
        "{algs:?}"
    );
    assert!(
        algs.contains(&CoreJwsSigningAlgorithm::EcdsaP256Sha256),
        "{algs:?}"
    );
    // The keys came with the document: RSA and P-256 among them.
    let keys = metadata.jwks().keys();
    let has = |kty: CoreJsonWebKeyType| keys.iter().any(|k| k.key_type() == &kty);
    assert!(has(CoreJsonWebKeyType::RSA), "{keys:?}");
    assert!(has(CoreJsonWebKeyType::EllipticCurve), "{keys:?}");
    metadata
}

/// The code flow for a client whose ID tokens are signed with `alg`.
async fn code_flow(
    server: &Server,
    metadata: &Metadata,
    alg: CoreJwsSigningAlgorithm,
    name: &str,
    (account, email): (&str, &str),
) {
    println!("== {name}: a confidential client, ID tokens {name}");
    let registered = server.cli(&[
        "clients",
        "add",
        "--name",
        &format!("openidconnect-rs {name}"),
        "--redirect-uri",
        REDIRECT_URI,
        "--id-token-signed-response-alg",
        name,
    ]);
    let id = registered["client_id"]
        .as_str()
        .expect("client_id")
        .to_owned();
    let secret = registered["client_secret"]
        .as_str()
        .expect("client_secret")
        .to_owned();
    let extra = metadata.additional_metadata();
    let client = CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(id.clone()),
        Some(ClientSecret::new(secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap())
    .set_revocation_url(RevocationUrl::new(extra.revocation_endpoint.clone()).unwrap())
    .set_introspection_url(IntrospectionUrl::new(extra.introspection_endpoint.clone()).unwrap());
    let verifier = client.id_token_verifier().set_allowed_algs([alg.clone()]);

    // The authorization URL, PKCE S256, state and nonce.
    let (challenge, pkce) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    assert_eq!(
        query(&auth_url, "code_challenge_method").as_deref(),
        Some("S256")
    );

    // The browser: not signed in, so to the sign-in page and back.
    let browser = Browser::new(server);
    let to_sign_in = browser.get(auth_url.as_str()).await;
    let sign_in_url = see_other(&to_sign_in).to_owned();
    assert!(sign_in_url.starts_with("/ui/sign-in?"), "{sign_in_url}");
    let return_to =
        query(&Url::parse(&server.url(&sign_in_url)).unwrap(), "return_to").expect("return_to");
    assert!(
        return_to.starts_with("/oauth/authorize/resume?request="),
        "{return_to}"
    );
    let page = browser.get(&sign_in_url).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let sign_in = form(&page.body, "/ui/sign-in");
    assert_eq!(hidden(sign_in, "return_to"), return_to);
    let csrf = hidden(sign_in, "csrf");
    // A wrong password first: the form again, with its error, and no way on.
    let wrong = browser
        .post(
            "/ui/sign-in",
            &[
                ("csrf", &csrf),
                ("return_to", &return_to),
                ("email", email),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    assert!(
        wrong.body.contains("action=\"/ui/sign-in\""),
        "{}",
        wrong.body
    );
    let signed_in = browser
        .post(
            "/ui/sign-in",
            &[
                ("csrf", &csrf),
                ("return_to", &return_to),
                ("email", email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(see_other(&signed_in), return_to);

    // Back at the pending request: the consent page names the client and the scopes.
    let consent = browser.get(&return_to).await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    assert!(
        consent.body.contains(&format!("openidconnect-rs {name}")),
        "{}",
        consent.body
    );
    let consent_form = form(&consent.body, "/oauth/authorize/consent");
    let allowed = browser
        .post(
            "/oauth/authorize/consent",
            &[
                ("csrf", &hidden(consent_form, "csrf")),
                ("request", &hidden(consent_form, "request")),
                ("decision", "allow"),
            ],
        )
        .await;
    let code = code_at_callback(server, &allowed, &state);
    println!("signed in on the hosted form, consented, code at the callback");

    // The exchange, and the crate's own checks of the ID token.
    let tokens = client
        .exchange_code(code.clone())
        .expect("a token endpoint")
        .set_pkce_verifier(pkce)
        .request_async(&server.http)
        .await
        .expect("the code exchange");
    let id_token = tokens.id_token().expect("an ID token");
    assert_eq!(id_token.signing_alg().expect("an alg"), &alg);
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("the ID token verifies");
    assert_eq!(claims.issuer().as_str(), server.issuer);
    assert_eq!(claims.subject().as_str(), account);
    assert_eq!(
        claims
            .audiences()
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>(),
        [id.as_str()]
    );
    assert_eq!(claims.nonce().map(|n| n.secret()), Some(nonce.secret()));
    assert_eq!(claims.email().map(|e| e.as_str()), Some(email));
    assert!(claims.auth_time().is_some());
    // at_hash, when sent, binds the access token to the ID token.
    if let Some(expected) = claims.access_token_hash() {
        let actual = openidconnect::AccessTokenHash::from_token(
            tokens.access_token(),
            id_token.signing_alg().unwrap(),
            id_token.signing_key(&verifier).expect("the signing key"),
        )
        .expect("at_hash computes");
        assert_eq!(&actual, expected);
    }
    // A verifier that allows only the other algorithm refuses the token.
    let other = if alg == CoreJwsSigningAlgorithm::EcdsaP256Sha256 {
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256
    } else {
        CoreJwsSigningAlgorithm::EcdsaP256Sha256
    };
    assert!(
        id_token
            .claims(
                &client.id_token_verifier().set_allowed_algs([other]),
                &nonce
            )
            .is_err()
    );
    // And a wrong nonce is refused.
    assert!(
        id_token
            .claims(&verifier, &Nonce::new("another".into()))
            .is_err()
    );
    let refresh = tokens
        .refresh_token()
        .expect("a refresh token (offline_access)")
        .clone();
    println!("code exchanged with PKCE; ID token verified ({name}, iss, aud, nonce, email)");

    // UserInfo, the subject checked against the ID token's.
    let info: openidconnect::core::CoreUserInfoClaims = client
        .user_info(
            tokens.access_token().clone(),
            Some(SubjectIdentifier::new(account.into())),
        )
        .expect("a userinfo endpoint")
        .request_async(&server.http)
        .await
        .expect("UserInfo");
    assert_eq!(info.subject().as_str(), account);
    assert_eq!(info.email().map(|e| e.as_str()), Some(email));
    println!("UserInfo: sub and email");

    // Refresh: a new refresh token (rotation); the new access token is active.
    let refreshed = client
        .exchange_refresh_token(&refresh)
        .expect("a token endpoint")
        .request_async(&server.http)
        .await
        .expect("the refresh");
    let new_refresh = refreshed.refresh_token().expect("a rotated refresh token");
    assert_ne!(new_refresh.secret(), refresh.secret());
    if let Some(id_token) = refreshed.id_token() {
        let claims = id_token
            .claims(&verifier, |_: Option<&Nonce>| Ok(()))
            .expect("the refreshed ID token verifies");
        assert_eq!(claims.subject().as_str(), account);
    }
    let intro = client
        .introspect(refreshed.access_token())
        .request_async(&server.http)
        .await
        .expect("introspection");
    assert!(intro.active());
    assert_eq!(intro.client_id().map(|c| c.as_str()), Some(id.as_str()));
    assert_eq!(intro.sub(), Some(account));
    println!("refreshed (rotated); the new access token introspects active");

    // The code again: invalid_grant, and the session its tokens belong to is over.
    let replay = client
        .exchange_code(code)
        .expect("a token endpoint")
        .set_pkce_verifier(openidconnect::PkceCodeVerifier::new("x".repeat(43)))
        .request_async(&server.http)
        .await;
    expect_invalid_grant(replay.map(|_| ()), "a replayed code");
    let again = client
        .exchange_refresh_token(new_refresh)
        .expect("a token endpoint")
        .request_async(&server.http)
        .await;
    expect_invalid_grant(
        again.map(|_| ()),
        "a refresh token of the replayed code's session",
    );
    let intro = client
        .introspect(refreshed.access_token())
        .request_async(&server.http)
        .await
        .expect("introspection");
    assert!(!intro.active(), "{intro:?}");
    println!("the replayed code: invalid_grant, its session ended (refresh refused, inactive)");

    // A second authorization in the same browser: signed in and consented, so the
    // code comes at once.
    let (challenge, pkce) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let code = code_at_callback(server, &browser.get(auth_url.as_str()).await, &state);
    let tokens = client
        .exchange_code(code)
        .expect("a token endpoint")
        .set_pkce_verifier(pkce)
        .request_async(&server.http)
        .await
        .expect("the second code exchange");
    tokens
        .id_token()
        .expect("an ID token")
        .claims(&verifier, &nonce)
        .expect("the second ID token verifies");
    let refresh = tokens.refresh_token().expect("a refresh token").clone();
    // Revocation (RFC 7009) of the refresh token ends the session at once. The crate
    // revokes only at an https endpoint (oauth2's InsecureUrl), so on this loopback
    // issuer the request is RFC 7009's own, as the crate would send it.
    assert!(matches!(
        client.revoke_token(CoreRevocableToken::from(refresh.clone())),
        Err(openidconnect::ConfigurationError::InsecureUrl("revocation"))
    ));
    let res = server
        .http
        .post(&extra.revocation_endpoint)
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("token", refresh.secret().as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .expect("POST /oauth/revoke");
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("a JSON body");
    assert_eq!(body, json!({}));
    let intro = client
        .introspect(tokens.access_token())
        .request_async(&server.http)
        .await
        .expect("introspection");
    assert!(!intro.active(), "{intro:?}");
    let after = client
        .exchange_refresh_token(&refresh)
        .expect("a token endpoint")
        .request_async(&server.http)
        .await;
    expect_invalid_grant(after.map(|_| ()), "a revoked session's refresh token");
    let info: Result<openidconnect::core::CoreUserInfoClaims, _> = client
        .user_info(tokens.access_token().clone(), None)
        .expect("a userinfo endpoint")
        .request_async(&server.http)
        .await;
    match info {
        Err(UserInfoError::Response(status, body, _)) => {
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            let body: Value = serde_json::from_slice(&body).expect("a JSON error");
            assert_eq!(body["error"], "invalid_token", "{body}");
        }
        other => panic!("UserInfo with a revoked session's token: {other:?}"),
    }
    println!(
        "second authorization without a page (consent remembered); revoked: inactive, refresh and UserInfo refused"
    );
}

/// Asserts the token endpoint refused with `invalid_grant`.
fn expect_invalid_grant<RE: std::error::Error>(
    result: Result<
        (),
        RequestTokenError<RE, openidconnect::StandardErrorResponse<CoreErrorResponseType>>,
    >,
    what: &str,
) {
    match result {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(
                e.error(),
                &CoreErrorResponseType::InvalidGrant,
                "{what}: {e:?}"
            );
            assert!(e.error_description().is_some(), "{what}: {e:?}");
        }
        Err(e) => panic!("{what}: not the spec's error: {e:?}"),
        Ok(()) => panic!("{what} was accepted"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let var = |name: &str| {
        std::env::var(name)
            .unwrap_or_else(|_| panic!("{name} must be set (scripts/openidconnect-rp.sh sets it)"))
    };
    let server = Server {
        issuer: var("GATEHOUSE_PUBLIC_URL"),
        bin: var("GATEHOUSE_BIN"),
        data: var("GATEHOUSE_DATA_DIR"),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client"),
    };
    let metadata = discover(&server).await;
    println!("discovery: issuer, endpoints, S256, RS256 and ES256, the JWKS");
    let (account, email) = person(&server).await;
    code_flow(
        &server,
        &metadata,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        "RS256",
        (&account, &email),
    )
    .await;
    code_flow(
        &server,
        &metadata,
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        "ES256",
        (&account, &email),
    )
    .await;
    println!("openidconnect-rs: all passed");
}
