//! Liveness and readiness, for load balancers and orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

#[derive(Serialize, ToSchema)]
pub struct Status {
    /// `ok`; `unavailable` when the database does not answer; `draining` when the
    /// node is shutting down.
    status: &'static str,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
}

/// The process is alive.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Alive", body = Status)))]
async fn health() -> axum::Json<Status> {
    axum::Json(Status { status: "ok" })
}

/// The node can serve: its database answers, and it is not shutting down.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "The database does not answer, or the node is draining", body = Status)))]
async fn ready(State(app): State<AppState>) -> impl IntoResponse {
    if app.draining.load(std::sync::atomic::Ordering::Relaxed) {
        let status = Status { status: "draining" };
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(status));
    }
    match app.store.ping().await {
        Ok(()) => (StatusCode::OK, axum::Json(Status { status: "ok" })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(Status {
                    status: "unavailable",
                }),
            )
        }
    }
}
