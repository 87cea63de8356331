//! Login with SelfKey (LWS), as the SelfKey wallet, browser extension and page
//! library speak it, mounted at `selfkey.mount`; plus the routes a signed-in person
//! uses to link, list and remove wallets, and the page's `lws.init` configuration.

pub mod error;
mod extract;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use super::reply;
use super::reply::no_store;
use super::session::{RecentSession, Session, bearer_token};
use crate::app::App;
use crate::config::Settings;
use crate::crypto::eth::{Address, Did, PublicKey, Signature};
use crate::crypto::jwt::TokenKind;
use crate::domain::WalletSummary;
use crate::domain::lenient::{JsonField, JsonText};
use crate::metrics::{Outcome, SignInMethod};
use crate::sessions::Device;
use crate::signin::flow::{Finished, Proof, Refused};
use crate::signin::selfkey::{
    Answer, Attributes, Registration, SelfKey, SelfKeyError, Signer, Submitted,
};
pub use error::{SelfKeyApiError, SelfKeyErrorBody};
use extract::{Body, PublicBase, SecureCookies, WalletSession};

/// The routes under `selfkey.mount`; none when `selfkey.enabled` is off.
pub fn router(settings: &Settings) -> OpenApiRouter<AppState> {
    let s = &settings.selfkey;
    if !s.enabled {
        return OpenApiRouter::new();
    }
    let routes = OpenApiRouter::new()
        .routes(routes!(challenge, answer_challenge))
        .routes(routes!(challenge_for))
        .routes(routes!(create_user).layer(DefaultBodyLimit::max(s.multipart_limit_bytes)))
        .routes(routes!(auth_token))
        .routes(routes!(users_token))
        .routes(routes!(login))
        .routes(routes!(page_config))
        .routes(routes!(create_link_token))
        .routes(routes!(list_wallets))
        .routes(routes!(wallet_details, remove_wallet));
    OpenApiRouter::new().nest(&s.mount, routes)
}

fn service(app: &App) -> SelfKey<'_> {
    SelfKey::new(app.store.as_ref(), &app.tokens, &app.settings.selfkey)
}

fn created(body: impl Serialize) -> Response {
    let mut res = (StatusCode::CREATED, axum::Json(body)).into_response();
    no_store(&mut res);
    res
}

/// `{"jwt": …}`: a challenge token (from `GET`) or a wallet token (from `POST`).
#[derive(Serialize, ToSchema)]
pub struct JwtResponse {
    jwt: String,
}

/// A challenge anyone may answer: the key is learnt from the signature (the seed's
/// form of the route).
#[utoipa::path(get, path = "/auth/challenge", tag = "selfkey",
    responses((status = 200, description = "A challenge token; its `challenge` claim is what the wallet signs", body = JwtResponse),
        (status = 500, description = "Internal error", body = SelfKeyErrorBody)))]
async fn challenge(State(app): State<AppState>) -> Result<Response, SelfKeyApiError> {
    issue_challenge(&app, Signer::Anyone).await
}

/// A challenge for one wallet: its public key (128 hex digits, `0x` optional) or its
/// `did:eth:0x<address>`.
#[utoipa::path(get, path = "/auth/challenge/{publicKey}", tag = "selfkey",
    params(("publicKey" = String, Path, description = "Uncompressed secp256k1 key without the 04 byte, or did:eth:0x…")),
    responses((status = 200, description = "A challenge token for this key", body = JwtResponse),
        (status = 400, description = "`invalid_public_key`", body = SelfKeyErrorBody)))]
async fn challenge_for(
    State(app): State<AppState>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Response, SelfKeyApiError> {
    let signer = key
        .ok()
        .and_then(|Path(key)| {
            if key.starts_with("did:") {
                Did::parse(&key).ok().map(Signer::Did)
            } else {
                PublicKey::parse(&key).ok().map(Signer::Key)
            }
        })
        .ok_or_else(|| {
            SelfKeyApiError::bad_request("invalid_public_key", "Invalid public key provided")
        })?;
    issue_challenge(&app, signer).await
}

async fn issue_challenge(app: &App, signer: Signer) -> Result<Response, SelfKeyApiError> {
    let jwt = service(app).issue_challenge(signer).await?;
    let mut res = axum::Json(JwtResponse { jwt }).into_response();
    no_store(&mut res);
    Ok(res)
}

#[derive(Deserialize, ToSchema)]
pub struct AnswerRequest {
    /// `"0x<r><s><v>"` (130 hex digits), or in the DID form
    /// `{"value": "0x…", "keyId": "did:eth:0x…#keys-1"}`.
    #[schema(value_type = Object, example = "0xb434…1c")]
    signature: Option<JsonField>,
}

/// Answers a challenge with the wallet's signature of it; each challenge can be
/// answered once.
#[utoipa::path(post, path = "/auth/challenge", tag = "selfkey", request_body = AnswerRequest,
    security(("wallet" = [])),
    responses((status = 201, description = "A wallet token", body = JwtResponse),
        (status = 400, description = "`no_auth_token`, `invalid_auth_token` (not a challenge token), `no_signature`, `invalid_signature`, `invalid_request`", body = SelfKeyErrorBody),
        (status = 401, description = "`invalid_auth_token`: forged, expired or already answered", body = SelfKeyErrorBody)))]
async fn answer_challenge(
    State(app): State<AppState>,
    req: Request,
) -> Result<Response, SelfKeyApiError> {
    // The challenge token is checked before a byte of the body is read: without one,
    // the body costs nothing.
    let (parts, body) = req.into_parts();
    let token = bearer_token(&parts).ok_or_else(SelfKeyApiError::no_auth_token)?;
    let service = service(&app);
    let challenge = service.open_challenge(token).map_err(|e| match e {
        SelfKeyError::Token(e) => {
            SelfKeyApiError::token_refused("invalid_auth_token", TokenKind::Challenge, token, e)
        }
        other => other.into(),
    })?;
    let req = Request::from_parts(parts, body);
    let Body(body) = Body::<AnswerRequest>::from_request(req, &app).await?;
    let answer = parse_answer(body.signature)?;
    let jwt = service.answer(challenge, &answer).await?;
    Ok(created(JwtResponse { jwt }))
}

fn parse_answer(signature: Option<JsonField>) -> Result<Answer, SelfKeyApiError> {
    let invalid = || SelfKeyApiError::bad_request("invalid_signature", "Invalid Signature");
    let none = || SelfKeyApiError::bad_request("no_signature", "No signature provided");
    let (value, key_id) = match &signature {
        None | Some(JsonField::Null) => return Err(none()),
        Some(JsonField::Text(value)) => (value.as_str(), None),
        Some(object @ JsonField::Object(_)) => {
            let key_id = match object.member("keyId") {
                None | Some(JsonText::Null) => None,
                Some(JsonText::Text(key_id)) => Some(key_id.as_str()),
                Some(JsonText::Other) => return Err(invalid()),
            };
            match object.member("value") {
                None | Some(JsonText::Null) => return Err(none()),
                Some(JsonText::Text(value)) => (value.as_str(), key_id),
                Some(JsonText::Other) => return Err(invalid()),
            }
        }
        Some(JsonField::Other) => return Err(invalid()),
    };
    Ok(Answer {
        signature: Signature::parse(value).map_err(|_| invalid())?,
        key_id: key_id
            .map(Did::parse_key_id)
            .transpose()
            .map_err(|_| invalid())?,
    })
}

/// The JSON form of a sign-up (later wallets).
#[derive(Deserialize, ToSchema)]
pub struct UsersJson {
    /// `[{"id": <schema URL or key>, "schemaId"?, "schema"?: {"$id"}, "data": <value> | {"value": …}}]`
    #[schema(value_type = Vec<Object>)]
    attributes: Option<Submitted>,
    /// Passed through from the page's `lws.init`; `linkToken` links the wallet to
    /// the account that asked for it.
    #[schema(value_type = Object)]
    meta: Option<JsonField>,
}

/// The multipart form of a sign-up (the January 2019 wallet).
#[derive(ToSchema)]
#[allow(dead_code)] // describes the wire format for the OpenAPI document only
pub struct UsersMultipart {
    /// The attributes as JSON, as in the JSON form; data may contain `$document-<n>`
    /// strings naming file parts.
    attributes: String,
    /// JSON, as in the JSON form.
    meta: Option<String>,
    /// One file part per document, named `$document-<n>`.
    #[schema(rename = "$document-1", value_type = Option<String>, format = Binary)]
    document: Option<String>,
}

/// What the sign-up did.
#[derive(Serialize, ToSchema)]
pub struct UserCreated {
    /// The wallet's address.
    address: String,
    /// `created` (new account), `linked` (joined an existing account) or `updated`
    /// (known wallet, attributes replaced).
    result: &'static str,
}

/// Signs the wallet up (or links it, or updates its attributes) with the requested
/// attributes it shares.
#[utoipa::path(post, path = "/users", tag = "selfkey",
    security(("wallet" = [])),
    request_body(content(
        (UsersJson = "application/json"),
        (UsersMultipart = "multipart/form-data"))),
    responses((status = 201, description = "Signed up", body = UserCreated),
        (status = 400, description = "`no_auth_token`, `invalid_token` (e.g. a challenge token), `invalid_attributes`, `no_attributes`, `missing_attribute`, `invalid_meta`, `invalid_link_token`", body = SelfKeyErrorBody),
        (status = 401, description = "`invalid_token`: forged or expired", body = SelfKeyErrorBody),
        (status = 409, description = "`account_exists` (sign in and link instead), `wallet_linked`", body = SelfKeyErrorBody),
        (status = 413, description = "`request_too_large`", body = SelfKeyErrorBody)))]
async fn create_user(
    State(app): State<AppState>,
    WalletSession(wallet): WalletSession,
    req: Request,
) -> Result<Response, SelfKeyApiError> {
    let submission = extract::read_submission(req, app.settings.http.body_limit_bytes).await?;
    let attributes = Attributes::parse(
        &submission.attributes,
        &submission.documents,
        &app.settings.selfkey.attributes,
    )
    .map_err(SelfKeyError::from)?;
    let outcome = service(&app)
        .register(&wallet, &attributes, submission.link_token.as_deref())
        .await?;
    Ok(created(UserCreated {
        address: wallet.address.to_string(),
        result: match outcome {
            Registration::Created => "created",
            Registration::Linked => "linked",
            Registration::Updated => "updated",
        },
    }))
}

#[derive(Deserialize)]
struct TokenQuery {
    meta: Option<String>,
}

/// `{"token"}` and the same as `user`, the seed's name for it.
#[derive(Serialize, ToSchema)]
pub struct LoginTokenResponse {
    /// Single-use, short-lived: `POST /login` exchanges it for an account session.
    token: String,
    user: String,
}

/// A login token for the wallet's account.
#[utoipa::path(get, path = "/auth/token", tag = "selfkey",
    security(("wallet" = [])),
    params(("meta" = Option<String>, Query, description = "JSON from the page's lws.init; a `linkToken` must be for the wallet's account")),
    responses((status = 200, description = "A login token", body = LoginTokenResponse),
        (status = 400, description = "`no_auth_token`, `invalid_token`, `invalid_meta`, `invalid_link_token`", body = SelfKeyErrorBody),
        (status = 401, description = "`invalid_token`", body = SelfKeyErrorBody),
        (status = 404, description = "`user_does_not_exist`: sign up first", body = SelfKeyErrorBody),
        (status = 409, description = "`wallet_linked`: the link token is for another account", body = SelfKeyErrorBody)))]
async fn auth_token(
    State(app): State<AppState>,
    WalletSession(wallet): WalletSession,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Result<Response, SelfKeyApiError> {
    login_token(&app, &wallet, query).await
}

/// The same as `GET /auth/token`, where later wallets look for it.
#[utoipa::path(get, path = "/users/token", tag = "selfkey",
    security(("wallet" = [])),
    params(("meta" = Option<String>, Query, description = "JSON from the page's lws.init; a `linkToken` must be for the wallet's account")),
    responses((status = 200, description = "A login token", body = LoginTokenResponse),
        (status = 400, description = "`no_auth_token`, `invalid_token`, `invalid_meta`, `invalid_link_token`", body = SelfKeyErrorBody),
        (status = 401, description = "`invalid_token`", body = SelfKeyErrorBody),
        (status = 404, description = "`user_does_not_exist`: sign up first", body = SelfKeyErrorBody),
        (status = 409, description = "`wallet_linked`: the link token is for another account", body = SelfKeyErrorBody)))]
async fn users_token(
    State(app): State<AppState>,
    WalletSession(wallet): WalletSession,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Result<Response, SelfKeyApiError> {
    login_token(&app, &wallet, query).await
}

async fn login_token(
    app: &App,
    wallet: &crate::signin::selfkey::Wallet,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Result<Response, SelfKeyApiError> {
    let meta = query
        .map_err(|_| {
            SelfKeyApiError::bad_request("invalid_meta", "The query string could not be read.")
        })?
        .0
        .meta;
    let link_token = extract::link_token_from_query(meta.as_deref())?;
    let token = service(app)
        .login_token(wallet, link_token.as_deref())
        .await?;
    let mut res = axum::Json(LoginTokenResponse {
        user: token.clone(),
        token,
    })
    .into_response();
    no_store(&mut res);
    Ok(res)
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    /// The login token from `GET /auth/token`.
    token: Option<String>,
}

/// Where the page goes, and the account session.
#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    #[serde(rename = "redirectTo")]
    redirect_to: String,
    /// The seed's name for `redirectTo`.
    #[serde(rename = "redirectUrl")]
    redirect_url: String,
    /// An account token, as `/auth/login` gives.
    token: String,
    /// As `/auth/login` gives.
    refresh_token: String,
    /// The account token's lifetime, seconds.
    expires_in: i64,
    /// Always `Bearer`.
    token_type: &'static str,
}

/// Exchanges a login token, once, for the account's session: an account token in
/// the body and an HttpOnly cookie.
#[utoipa::path(post, path = "/login", tag = "selfkey", request_body = LoginRequest,
    responses((status = 201, description = "Signed in; `Set-Cookie` carries the session too", body = LoginResponse),
        (status = 400, description = "`no_token`, `invalid_request`, `invalid_token` (not a login token); with `redirectTo`", body = SelfKeyErrorBody),
        (status = 401, description = "`invalid_token`: forged, expired or already used; with `redirectTo`", body = SelfKeyErrorBody),
        (status = 404, description = "`user_does_not_exist`; with `redirectTo`", body = SelfKeyErrorBody)))]
async fn login(
    State(app): State<AppState>,
    SecureCookies(secure): SecureCookies,
    device: Device,
    body: Result<Body<LoginRequest>, SelfKeyApiError>,
) -> Result<Response, SelfKeyApiError> {
    let settings = &app.settings.selfkey;
    let fail = |e: SelfKeyApiError| e.redirecting(&settings.error_redirect_to);
    let Body(body) = body.map_err(fail)?;
    let token = body.token.filter(|t| !t.is_empty()).ok_or_else(|| {
        fail(SelfKeyApiError::bad_request(
            "no_token",
            "No token provided",
        ))
    })?;
    let started = match service(&app).redeem_login_token(&token).await {
        Ok(account) => app
            .flow
            .finish(&account, Proof::Selfkey, &device)
            .await
            .map_err(Started::Session),
        Err(e) => Err(Started::Redeem(e)),
    };
    let outcome = match &started {
        Ok(_) => Outcome::Success,
        Err(
            Started::Redeem(SelfKeyError::Internal(_))
            | Started::Session(Refused::Internal(_) | Refused::EmailNotVerified),
        ) => Outcome::Error,
        Err(Started::Session(Refused::Disabled)) => Outcome::Disabled,
        Err(_) => Outcome::Failure,
    };
    app.metrics.sign_in(SignInMethod::Selfkey, outcome);
    let sign_in = started.map_err(|e| {
        fail(match e {
            Started::Redeem(SelfKeyError::Token(e)) => {
                SelfKeyApiError::token_refused("invalid_token", TokenKind::Login, &token, e)
            }
            Started::Redeem(other) => other.into(),
            Started::Session(Refused::Disabled) => SelfKeyApiError::account_disabled(),
            Started::Session(e) => SelfKeyApiError::internal(e.into()),
        })
    })?;
    // An account with a second factor: no session and no cookie, whatever the wallet's
    // protocol expects (a client that waits for `201` and its cookie fails closed); the
    // page goes on with `POST /auth/mfa/verify`.
    let sign_in = match sign_in {
        Finished::Session(sign_in) => sign_in,
        Finished::SecondFactor(pending) => return Ok(reply::mfa_required(pending)),
    };
    let cookie = session_cookie(&app.settings, &sign_in.token, secure)
        .map_err(|e| fail(SelfKeyApiError::internal(e)))?;
    let refresh_cookie = app
        .settings
        .session
        .cookie
        .then(|| reply::refresh_cookie(&app.settings, secure, Some(&sign_in.refresh_token)));
    let mut res = created(LoginResponse {
        redirect_to: settings.redirect_to.clone(),
        redirect_url: settings.redirect_to.clone(),
        token: sign_in.token,
        refresh_token: sign_in.refresh_token,
        expires_in: sign_in.expires_in,
        token_type: "Bearer",
    });
    res.headers_mut().append(header::SET_COOKIE, cookie);
    if let Some(refresh_cookie) = refresh_cookie {
        res.headers_mut().append(header::SET_COOKIE, refresh_cookie);
    }
    Ok(res)
}

fn session_cookie(settings: &Settings, token: &str, secure: bool) -> anyhow::Result<HeaderValue> {
    let cookie = format!(
        "{}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{}",
        settings.selfkey.cookie_name,
        settings.token_lifetime_secs,
        if secure { "; Secure" } else { "" }
    );
    Ok(HeaderValue::from_str(&cookie)?)
}

/// The object the page passes to `lws.init`.
#[derive(Serialize, ToSchema)]
pub struct PageConfig {
    website: PageWebsite,
    /// Absolute: the wallet is not in the page and cannot resolve a relative URL.
    #[serde(rename = "rootEndpoint")]
    root_endpoint: String,
    /// Absolute URLs of single routes, under the names the wallet looks up.
    /// `/users/file` is `false`: documents come inline in the multipart `/users`.
    #[schema(value_type = Object)]
    endpoints: Map<String, Value>,
    attributes: Vec<PageAttribute>,
}

#[derive(Serialize, ToSchema)]
pub struct PageWebsite {
    name: String,
    url: String,
    #[serde(rename = "termsUrl")]
    terms_url: String,
    #[serde(rename = "policyUrl")]
    policy_url: String,
}

#[derive(Serialize, ToSchema)]
pub struct PageAttribute {
    key: String,
    label: String,
    /// The schema URL.
    attribute: String,
}

/// The page's `lws.init` configuration, with absolute URLs.
#[utoipa::path(get, path = "/config", tag = "selfkey",
    responses((status = 200, description = "The lws.init object (add `meta` and `onAuthResponse` in the page)", body = PageConfig),
        (status = 400, description = "`invalid_host`", body = SelfKeyErrorBody)))]
async fn page_config(State(app): State<AppState>, PublicBase(base): PublicBase) -> Response {
    let s = &app.settings.selfkey;
    let absolute = |url: &str| {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_string()
        } else {
            format!("{base}/{}", url.trim_start_matches('/'))
        }
    };
    let root = absolute(&s.mount);
    let mut endpoints = Map::new();
    for route in [
        "/auth/challenge",
        "/auth/token",
        "/users",
        "/users/token",
        "/login",
    ] {
        endpoints.insert(route.into(), json!(format!("{root}{route}")));
    }
    endpoints.insert("/users/file".into(), json!(false));
    // Built from the request's host when no public URL is set: a shared cache must
    // never hand one visitor's answer to another.
    let mut res = axum::Json(PageConfig {
        website: PageWebsite {
            name: s.website.name.clone(),
            url: absolute(&s.website.url),
            terms_url: absolute(&s.website.terms_url),
            policy_url: absolute(&s.website.policy_url),
        },
        root_endpoint: root,
        endpoints,
        attributes: s
            .attributes
            .iter()
            .map(|a| PageAttribute {
                key: a.key.clone(),
                label: a.label.clone(),
                attribute: a.schema.clone(),
            })
            .collect(),
    })
    .into_response();
    no_store(&mut res);
    res
}

#[derive(Serialize, ToSchema)]
pub struct LinkTokenResponse {
    /// Single-use: put it in the LWS `meta` as `linkToken`.
    #[serde(rename = "linkToken")]
    link_token: String,
    /// Seconds.
    #[serde(rename = "expiresIn")]
    expires_in: i64,
}

/// A link token for the signed-in account: a wallet that signs up with it in its
/// `meta` joins this account. Needs a recent sign-in, as any new way in does; the
/// token dies with the session that asked for it.
#[utoipa::path(post, path = "/link-token", tag = "selfkey",
    security(("bearer" = [])),
    responses((status = 201, description = "A link token", body = LinkTokenResponse),
        (status = 401, description = "`invalid_token`: no valid account token", body = SelfKeyErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled; `recent_sign_in_required`: the sign-in is older than accounts.reauth_window_secs", body = SelfKeyErrorBody)))]
async fn create_link_token(
    State(app): State<AppState>,
    session: Result<RecentSession, ApiError>,
) -> Result<Response, SelfKeyApiError> {
    let session = session?;
    let (link_token, expires_in) = service(&app)
        .link_token(&session.account, &session.session)
        .await?;
    Ok(created(LinkTokenResponse {
        link_token,
        expires_in,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct WalletList {
    wallets: Vec<WalletSummary>,
}

/// The signed-in account's wallets.
#[utoipa::path(get, path = "/wallets", tag = "selfkey",
    security(("bearer" = [])),
    responses((status = 200, description = "The wallets", body = WalletList),
        (status = 401, description = "`invalid_token`", body = SelfKeyErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled", body = SelfKeyErrorBody)))]
async fn list_wallets(
    State(app): State<AppState>,
    session: Result<Session, ApiError>,
) -> Result<axum::Json<WalletList>, SelfKeyApiError> {
    let session = session?;
    let wallets = service(&app).wallets(&session.account).await?;
    Ok(axum::Json(WalletList { wallets }))
}

/// A wallet of the signed-in account and the attributes it shared.
#[derive(Serialize, ToSchema)]
pub struct WalletDetails {
    address: String,
    /// 128 hex digits.
    public_key: String,
    /// Unix seconds.
    linked_at: i64,
    /// When the wallet last shared its attributes, Unix seconds.
    updated_at: i64,
    /// `[{"key","schema","data"}]`, the requested attributes the wallet shared;
    /// documents as `{"mimeType","size","content"}` (base64).
    #[schema(value_type = Vec<Object>)]
    attributes: Value,
}

/// One wallet of the signed-in account, with its attributes.
#[utoipa::path(get, path = "/wallets/{address}", tag = "selfkey",
    security(("bearer" = [])),
    params(("address" = String, Path, description = "0x and 40 hex digits")),
    responses((status = 200, description = "The wallet", body = WalletDetails),
        (status = 400, description = "`invalid_address`", body = SelfKeyErrorBody),
        (status = 401, description = "`invalid_token`", body = SelfKeyErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled", body = SelfKeyErrorBody),
        (status = 404, description = "`wallet_not_found`", body = SelfKeyErrorBody)))]
async fn wallet_details(
    State(app): State<AppState>,
    session: Result<Session, ApiError>,
    address: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<WalletDetails>, SelfKeyApiError> {
    let session = session?;
    let address = wallet_address(address)?;
    let record = service(&app)
        .wallet_record(&session.account, &address)
        .await?;
    let attributes = serde_json::from_str(&record.attributes)
        .map_err(|e| SelfKeyApiError::internal(anyhow::anyhow!("stored attributes: {e}")))?;
    Ok(axum::Json(WalletDetails {
        address: record.address,
        public_key: record.public_key,
        linked_at: record.linked_at,
        updated_at: record.updated_at,
        attributes,
    }))
}

fn wallet_address(path: Result<Path<String>, PathRejection>) -> Result<Address, SelfKeyApiError> {
    path.ok()
        .and_then(|Path(a)| Address::parse(&a).ok())
        .ok_or_else(|| {
            SelfKeyApiError::bad_request(
                "invalid_address",
                "The address must be 0x and 40 hex digits.",
            )
        })
}

/// Unlinks a wallet from the signed-in account, unless it is its last way to sign in.
#[utoipa::path(delete, path = "/wallets/{address}", tag = "selfkey",
    security(("bearer" = [])),
    params(("address" = String, Path, description = "0x and 40 hex digits")),
    responses((status = 200, description = "Removed; the wallets left", body = WalletList),
        (status = 400, description = "`invalid_address`", body = SelfKeyErrorBody),
        (status = 401, description = "`invalid_token`", body = SelfKeyErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled; `recent_sign_in_required`: the sign-in is older than accounts.reauth_window_secs", body = SelfKeyErrorBody),
        (status = 404, description = "`wallet_not_found`", body = SelfKeyErrorBody),
        (status = 409, description = "`last_sign_in_method`", body = SelfKeyErrorBody)))]
async fn remove_wallet(
    State(app): State<AppState>,
    session: Result<RecentSession, ApiError>,
    address: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<WalletList>, SelfKeyApiError> {
    let session = session?;
    let address = wallet_address(address)?;
    let service = service(&app);
    service.remove_wallet(&session.account, &address).await?;
    let wallets = service.wallets(&session.account).await?;
    Ok(axum::Json(WalletList { wallets }))
}

/// Where a SelfKey login failed: its login token, or starting the session.
enum Started {
    Redeem(SelfKeyError),
    Session(Refused),
}
