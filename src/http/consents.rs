//! The signed-in account's consents to OpenID Connect clients, over the API:
//! `GET /auth/oidc/consents` and `DELETE /auth/oidc/consents/{client_id}`, as the
//! account page's "Connected apps" lists and revokes them. 404 unless `oidc.enabled`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::reply::{no_store, rfc3339};
use super::session::Session;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_consents))
        .routes(routes!(revoke_consent))
}

#[derive(Serialize, ToSchema)]
pub struct ConsentItem {
    client_id: String,
    client_name: String,
    /// The scopes granted.
    scopes: Vec<String>,
    granted_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct ConsentList {
    consents: Vec<ConsentItem>,
}

fn off(app: &AppState) -> Result<(), ApiError> {
    match app.oidc {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(
            "The OpenID Connect provider is off (oidc.enabled).".into(),
        )),
    }
}

/// The clients the signed-in account consented to, with the scopes granted.
#[utoipa::path(get, path = "/auth/oidc/consents", tag = "oidc",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The consents", body = ConsentList),
        (status = 401, description = "Missing, invalid or expired token, or an ended session", body = ErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled", body = ErrorBody),
        (status = 404, description = "oidc.enabled is off", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn list_consents(
    State(app): State<AppState>,
    session: Session,
) -> Result<Response, ApiError> {
    off(&app)?;
    let consents = app
        .store
        .authorize()
        .consents(&session.account)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .into_iter()
        .map(|c| ConsentItem {
            client_id: c.client_id,
            client_name: c.client_name,
            scopes: c.scopes.split(' ').map(str::to_owned).collect(),
            granted_at: rfc3339(c.granted_at),
        })
        .collect();
    let mut res = axum::Json(ConsentList { consents }).into_response();
    no_store(&mut res);
    Ok(res)
}

/// Revokes the account's consent to a client and ends the client's sessions of the
/// account: its refresh and access tokens are refused from then on.
#[utoipa::path(delete, path = "/auth/oidc/consents/{client_id}", tag = "oidc",
    security(("bearer" = [])),
    params(("client_id" = String, Path, description = "A client_id from GET /auth/oidc/consents")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Missing, invalid or expired token, or an ended session", body = ErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled", body = ErrorBody),
        (status = 404, description = "No consent or session of this client, or oidc.enabled is off", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn revoke_consent(
    State(app): State<AppState>,
    session: Session,
    client: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    off(&app)?;
    let not_found = || ApiError::NotFound("No consent to this client.".into());
    let Path(client) = client.map_err(|_| not_found())?;
    let revoked = app
        .store
        .authorize()
        .revoke_consent(&session.account, &client)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    if !revoked {
        return Err(not_found());
    }
    tracing::info!(account = %session.account.0, client = %client, "consent revoked");
    Ok(StatusCode::NO_CONTENT)
}
