//! The OpenID Connect provider's HTTP surface: discovery (`/.well-known/
//! openid-configuration`, RFC 8414's `/.well-known/oauth-authorization-server`), and
//! under `/oauth/`: the token endpoint, introspection (RFC 7662), revocation (RFC 7009)
//! and UserInfo. `/oauth/authorize` and `/oauth/logout` come with the hosted pages
//! (`crate::http::ui`).
//!
//! Requests are `application/x-www-form-urlencoded` (RFC 6749 §3.2); a parameter given
//! twice is refused. Errors are RFC 6749 §5.2's `{"error","error_description"}`; token
//! answers carry `Cache-Control: no-store`. Every route answers 404 unless
//! `oidc.enabled`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::domain::Secret;
use crate::oidc::provider::{ClientProof, OAuthError, Provider, ProviderError, SCOPES};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(openid_configuration))
        .routes(routes!(authorization_server))
        .routes(routes!(token))
        .routes(routes!(introspect))
        .routes(routes!(revoke))
        .routes(routes!(userinfo_get, userinfo_post))
}

/// An OAuth error body (RFC 6749 §5.2).
/// The form of `POST /oauth/token`, for the OpenAPI document (the handler reads the
/// form itself, by the grant's rules).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenForm {
    /// `authorization_code`, `refresh_token` or `client_credentials`.
    grant_type: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// The form of introspection (RFC 7662) and revocation (RFC 7009).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenHintForm {
    token: String,
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// The form of `POST /oauth/userinfo` (RFC 6750 §2.2).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserinfoForm {
    access_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_token`, …
    error: String,
    error_description: String,
}

/// What a route answers on failure.
enum Failure {
    OAuth(OAuthError),
    Off,
    Internal(anyhow::Error),
}

impl From<ProviderError> for Failure {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::OAuth(e) => Failure::OAuth(e),
            ProviderError::Internal(e) => Failure::Internal(e),
        }
    }
}

impl From<OAuthError> for Failure {
    fn from(e: OAuthError) -> Self {
        Failure::OAuth(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let e = match self {
            Failure::OAuth(e) => e,
            Failure::Off => {
                return super::error::ApiError::NotFound(
                    "The OpenID Connect provider is off (oidc.enabled).".into(),
                )
                .into_response();
            }
            Failure::Internal(e) => return super::error::ApiError::Internal(e).into_response(),
        };
        let status = match e.code {
            "invalid_client" | "invalid_token" => StatusCode::UNAUTHORIZED,
            "insufficient_scope" => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = OAuthErrorBody {
            error: e.code.to_owned(),
            error_description: e.description,
        };
        let mut res = (status, axum::Json(body)).into_response();
        let h = res.headers_mut();
        no_store(h);
        match e.code {
            "invalid_client" => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Basic realm="gatehouse""#),
                );
            }
            "invalid_token" | "insufficient_scope" => {
                let challenge = format!(r#"Bearer error="{}""#, e.code);
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_str(&challenge).expect("a code is header-safe"),
                );
            }
            _ => {}
        }
        res
    }
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn provider(app: &AppState) -> Result<&Arc<Provider>, Failure> {
    app.oidc.as_ref().ok_or(Failure::Off)
}

fn invalid_request(description: &str) -> Failure {
    Failure::OAuth(OAuthError::new("invalid_request", description))
}

/// The form's parameters; a parameter given twice, or a body of another type, is
/// refused (RFC 6749 §3.2).
fn form(headers: &HeaderMap, body: &Bytes) -> Result<HashMap<String, String>, Failure> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(invalid_request(
            "The body must be application/x-www-form-urlencoded.",
        ));
    }
    let mut params = HashMap::new();
    for (key, value) in form_pairs(body) {
        if params
            .insert(key.into_owned(), value.into_owned())
            .is_some()
        {
            return Err(invalid_request("A parameter is given more than once."));
        }
    }
    Ok(params)
}

/// The pairs of a form body, as `form_urlencoded::parse` reads them; a pair with
/// nothing to decode (no `%`, no `+`, valid UTF-8: tokens, ids, grant types) is taken
/// as it is, since decoding it byte by byte cost a tenth of an introspection.
fn form_pairs(body: &[u8]) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    body.split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let plain = !pair.iter().any(|b| matches!(b, b'%' | b'+'));
            match std::str::from_utf8(pair) {
                Ok(text) if plain => {
                    let (key, value) = text.split_once('=').unwrap_or((text, ""));
                    Some((Cow::Borrowed(key), Cow::Borrowed(value)))
                }
                _ => url::form_urlencoded::parse(pair).next(),
            }
        })
}

/// The client's credentials: `Authorization: Basic` (its parts form-encoded, RFC 6749
/// §2.3.1), `client_id`/`client_secret` in the form, or a client assertion.
fn client_proof(
    headers: &HeaderMap,
    params: &mut HashMap<String, String>,
) -> Result<ClientProof, Failure> {
    let mut proof = ClientProof::default();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or("");
        let Some(encoded) = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
        else {
            return Err(OAuthError::new("invalid_client", "Client authentication failed.").into());
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| OAuthError::new("invalid_client", "Client authentication failed."))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| OAuthError::new("invalid_client", "Client authentication failed."))?;
        let unform = |s: &str| -> String {
            // Nothing to decode in the common case (ids and generated secrets are
            // plain): the part as it is.
            if !s.contains(['%', '+', '&']) {
                return s.to_owned();
            }
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        proof.client_id = Some(unform(id));
        proof.basic_secret = Some(Secret::new(unform(secret)));
    }
    if let Some(id) = params.remove("client_id") {
        if proof.client_id.as_ref().is_some_and(|basic| *basic != id) {
            return Err(invalid_request(
                "client_id differs from the Authorization header's.",
            ));
        }
        proof.client_id = Some(id);
    }
    proof.post_secret = params.remove("client_secret").map(Secret::new);
    let assertion = params.remove("client_assertion");
    let kind = params.remove("client_assertion_type");
    proof.assertion = match (kind, assertion) {
        (Some(kind), Some(assertion)) => Some((kind, Secret::new(assertion))),
        (None, None) => None,
        _ => {
            return Err(invalid_request(
                "client_assertion and client_assertion_type go together.",
            ));
        }
    };
    Ok(proof)
}

fn discovery(app: &AppState) -> Result<Value, Failure> {
    let p = provider(app)?;
    let issuer = &p.policy().issuer;
    let at = |path: &str| format!("{issuer}{path}");
    let auth_methods = json!([
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none"
    ]);
    let algs = json!(["RS256", "ES256", "EdDSA"]);
    Ok(json!({
        "issuer": issuer,
        "authorization_endpoint": at("/oauth/authorize"),
        "token_endpoint": at("/oauth/token"),
        "userinfo_endpoint": at("/oauth/userinfo"),
        "jwks_uri": at("/.well-known/jwks.json"),
        "revocation_endpoint": at("/oauth/revoke"),
        "introspection_endpoint": at("/oauth/introspect"),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "prompt_values_supported": ["none", "login", "consent"],
        "acr_values_supported": ["aal1", "aal2"],
        "ui_locales_supported": crate::ui::LANGUAGES,
        "end_session_endpoint": at("/oauth/logout"),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": algs,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid",
            "azp", "email", "email_verified"],
        "authorization_response_iss_parameter_supported": true,
        // Back-channel logout (src/oidc/logout.rs): every logout token carries `sid`,
        // so a client that registers backchannel_logout_session_required gets it.
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
    }))
}

fn discovery_response(app: &AppState) -> Result<Response, Failure> {
    let doc = discovery(app)?;
    let mut res = axum::Json(doc).into_response();
    let max_age = format!("public, max-age={}", app.settings.jwt.jwks_max_age_secs);
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&max_age).expect("a number is header-safe"),
    );
    Ok(res)
}

/// OpenID Connect Discovery 1.0: the provider's metadata. `issuer` is
/// `http.public_url` exactly; every endpoint is absolute on it.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oidc",
    responses(
        (status = 200, description = "The provider's metadata", body = Object),
        (status = 404, description = "oidc.enabled is off", body = super::error::ErrorBody)))]
async fn openid_configuration(State(app): State<AppState>) -> Result<Response, Failure> {
    discovery_response(&app)
}

/// RFC 8414: the same metadata, for OAuth clients.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oidc",
    responses(
        (status = 200, description = "The provider's metadata", body = Object),
        (status = 404, description = "oidc.enabled is off", body = super::error::ErrorBody)))]
async fn authorization_server(State(app): State<AppState>) -> Result<Response, Failure> {
    discovery_response(&app)
}

/// The token endpoint (RFC 6749 §3.2): `authorization_code` (with PKCE),
/// `refresh_token` and `client_credentials`; the client authenticates by the method it
/// registered.
#[utoipa::path(post, path = "/oauth/token", tag = "oidc",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded",
        description = "grant_type, and code/redirect_uri/code_verifier, refresh_token; client credentials"),
    responses(
        (status = 200, description = "Tokens: access_token, token_type, expires_in, id_token, refresh_token, scope", body = Object),
        (status = 400, description = "invalid_request, invalid_grant, unauthorized_client, unsupported_grant_type", body = OAuthErrorBody),
        (status = 401, description = "invalid_client", body = OAuthErrorBody),
        (status = 404, description = "oidc.enabled is off", body = super::error::ErrorBody)))]
async fn token(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let p = provider(&app)?;
    let mut params = form(&headers, &body)?;
    let proof = client_proof(&headers, &mut params)?;
    let grant = params
        .get("grant_type")
        .cloned()
        .ok_or_else(|| invalid_request("grant_type is required."))?;
    let known = ["authorization_code", "refresh_token", "client_credentials"];
    if !known.contains(&grant.as_str()) {
        return Err(OAuthError::new(
            "unsupported_grant_type",
            "grant_type must be authorization_code, refresh_token or client_credentials.",
        )
        .into());
    }
    let client = p.authenticate_client(&proof).await?;
    let tokens = match grant.as_str() {
        "client_credentials" => p.client_credentials(&client).await?,
        "authorization_code" => {
            let code = params
                .get("code")
                .ok_or_else(|| invalid_request("code is required."))?;
            p.exchange_code(
                &client,
                code,
                params.get("redirect_uri").map(String::as_str),
                params.get("code_verifier").map(String::as_str),
            )
            .await?
        }
        _ => {
            let refresh_token = params
                .get("refresh_token")
                .ok_or_else(|| invalid_request("refresh_token is required."))?;
            p.refresh(&client, refresh_token).await?
        }
    };
    let mut res = axum::Json(tokens).into_response();
    no_store(res.headers_mut());
    Ok(res)
}

/// The form of introspection and revocation: the client, authenticated, and the
/// `token` it asks about (checked for presence before the client's secret is).
async fn client_and_token(
    p: &Provider,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Arc<crate::domain::client::Client>, String), Failure> {
    let mut params = form(headers, body)?;
    let proof = client_proof(headers, &mut params)?;
    let token = params
        .get("token")
        .cloned()
        .ok_or_else(|| invalid_request("token is required."))?;
    let client = p.authenticate_client(&proof).await?;
    Ok((client, token))
}

/// Token introspection (RFC 7662), for a registered client: `active` and, while the
/// token is active, its claims. A token whose session ended answers `active: false`
/// at once, on every node.
#[utoipa::path(post, path = "/oauth/introspect", tag = "oidc",
    request_body(content = TokenHintForm, content_type = "application/x-www-form-urlencoded",
        description = "token (token_type_hint is ignored); client credentials"),
    responses(
        (status = 200, description = "{\"active\": …} and the token's claims", body = Object),
        (status = 400, description = "invalid_request", body = OAuthErrorBody),
        (status = 401, description = "invalid_client", body = OAuthErrorBody),
        (status = 404, description = "oidc.enabled is off", body = super::error::ErrorBody)))]
async fn introspect(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let p = provider(&app)?;
    let (client, token) = client_and_token(p, &headers, &body).await?;
    let answer = p.introspect(&client, &token).await?;
    let mut res = axum::Json(answer).into_response();
    no_store(res.headers_mut());
    Ok(res)
}

/// Token revocation (RFC 7009): a refresh or access token of the client ends its
/// session, and with it every token of it. The answer is the same for any token.
#[utoipa::path(post, path = "/oauth/revoke", tag = "oidc",
    request_body(content = TokenHintForm, content_type = "application/x-www-form-urlencoded",
        description = "token (token_type_hint is ignored); client credentials"),
    responses(
        (status = 200, description = "Done (or nothing to do)", body = Object),
        (status = 400, description = "invalid_request", body = OAuthErrorBody),
        (status = 401, description = "invalid_client", body = OAuthErrorBody),
        (status = 404, description = "oidc.enabled is off", body = super::error::ErrorBody)))]
async fn revoke(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let p = provider(&app)?;
    let (client, token) = client_and_token(p, &headers, &body).await?;
    p.revoke(&client, &token).await?;
    let mut res = axum::Json(json!({})).into_response();
    no_store(res.headers_mut());
    Ok(res)
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(|t| t.trim().to_owned())
}

async fn userinfo(app: &AppState, token: Option<String>) -> Result<Response, Failure> {
    let p = provider(app)?;
    let Some(token) = token else {
        let mut res = (
            StatusCode::UNAUTHORIZED,
            axum::Json(OAuthErrorBody {
                error: "invalid_request".into(),
                error_description: "An access token is required.".into(),
            }),
        )
            .into_response();
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Ok(res);
    };
    let claims = p.userinfo(&token).await?;
    let mut res = axum::Json(claims).into_response();
    no_store(res.headers_mut());
    Ok(res)
}

/// UserInfo (OpenID Connect Core §5.3): the person's claims the access token's scopes
/// allow (`sub`; `email`, `email_verified` with `email`), while its session lives.
#[utoipa::path(get, path = "/oauth/userinfo", tag = "oidc",
    responses(
        (status = 200, description = "The claims", body = Object),
        (status = 401, description = "invalid_token", body = OAuthErrorBody),
        (status = 403, description = "insufficient_scope", body = OAuthErrorBody),
        (status = 404, description = "oidc.enabled is off", body = super::error::ErrorBody)))]
async fn userinfo_get(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    userinfo(&app, bearer(&headers)).await
}

/// UserInfo by POST: the token in the `Authorization` header or, form-encoded, as
/// `access_token` (RFC 6750 §2.2).
#[utoipa::path(post, path = "/oauth/userinfo", tag = "oidc",
    request_body(content = UserinfoForm, content_type = "application/x-www-form-urlencoded",
        description = "access_token, unless in the Authorization header"),
    responses(
        (status = 200, description = "The claims", body = Object),
        (status = 400, description = "invalid_request: a parameter given twice, or the token both in the header and the form", body = OAuthErrorBody),
        (status = 401, description = "invalid_token", body = OAuthErrorBody),
        (status = 403, description = "insufficient_scope", body = OAuthErrorBody),
        (status = 404, description = "oidc.enabled is off", body = super::error::ErrorBody)))]
async fn userinfo_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let token = match bearer(&headers) {
        Some(token) => Some(token),
        None if !body.is_empty() => form(&headers, &body)?.remove("access_token"),
        None => None,
    };
    userinfo(&app, token).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Pairs = Vec<(String, String)>;

    /// The pairs of `body` by [`form_pairs`] and by `form_urlencoded::parse`.
    fn both(body: &[u8]) -> (Pairs, Pairs) {
        let owned = |(k, v): (Cow<'_, str>, Cow<'_, str>)| (k.into_owned(), v.into_owned());
        (
            form_pairs(body).map(owned).collect(),
            url::form_urlencoded::parse(body).map(owned).collect(),
        )
    }

    #[test]
    fn form_pairs_read_forms_as_form_urlencoded_does() {
        for body in [
            &b"token=a.b-c_d&client_id=x"[..],
            b"",
            b"&&a=1&&b&=c&d==e=",
            b"a+b=c%20d&e=%zz&f=%41",
            b"scope=openid+email",
            b"k=\xff\xfe&v=ok",
        ] {
            let (ours, theirs) = both(body);
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(body));
        }
    }

    proptest! {
        #[test]
        fn form_pairs_agree_with_form_urlencoded_on_any_body(
            body in proptest::collection::vec(
                prop_oneof![
                    Just(b'&'), Just(b'='), Just(b'%'), Just(b'+'), Just(b'a'), Just(b'4'),
                    Just(b'1'), Just(0xc3u8), Just(0xa9u8), Just(0xffu8),
                ],
                0..40,
            )
        ) {
            let (ours, theirs) = both(&body);
            prop_assert_eq!(ours, theirs);
        }
    }
}
