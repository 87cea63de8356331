//! `GET /.well-known/jwks.json`: the public keys of asymmetric account tokens
//! (`jwt.algorithm` `EdDSA` or `ES256`), for integrators who verify tokens themselves.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(jwks))
}

/// A JSON Web Key Set (RFC 7517).
#[derive(Serialize, ToSchema)]
pub struct KeySet {
    /// Every published key: `{"kty","crv","x"(,"y"),"kid","alg","use":"sig"}`.
    #[schema(value_type = Vec<Object>)]
    keys: Vec<serde_json::Value>,
}

/// The keys account tokens are signed with: the one signing now, the next one (published
/// `jwt.jwks_max_age_secs` before it signs), and those whose tokens have not all expired.
/// Cache it for its `max-age`.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "tokens",
    responses(
        (status = 200, description = "The published keys", body = KeySet),
        (status = 404, description = "Account tokens are HS512 (jwt.algorithm): there is no public key", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn jwks(State(app): State<AppState>) -> Result<Response, ApiError> {
    let oidc_keys = app.oidc.as_ref().map(|p| p.keys());
    let Some(keys) = app.signing_keys.as_ref().or(oidc_keys) else {
        return Err(ApiError::NotFound(
            "Account tokens are HS512 (jwt.algorithm): there is no key set.".into(),
        ));
    };
    let set = keys
        .jwks(crate::domain::unix_now())
        .await
        .map_err(ApiError::Internal)?;
    let keys = set
        .keys
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::Internal(e.into()))?;
    let mut res = axum::Json(KeySet { keys }).into_response();
    let max_age = format!("public, max-age={}", keys_max_age(&app));
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&max_age).expect("a number is header-safe"),
    );
    Ok(res)
}

fn keys_max_age(app: &AppState) -> i64 {
    app.settings.jwt.jwks_max_age_secs
}
