//! The probes a load balancer or supervisor asks, without a token.

use axum::extract::State;
use axum::http::StatusCode;
use drover_store::Page;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "probes", security(()),
    responses((status = 200, description = "drover is running", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "probes", security(()),
    responses((status = 200, description = "the database answers", body = String),
        (status = 503, description = "the database does not answer", body = ErrorBody)))]
async fn readyz(State(app): State<AppState>) -> Result<&'static str, ApiError> {
    app.store
        .customers(Page::new(None, Some(1)))
        .await
        .map(|_| "ready")
        .map_err(|e| {
            tracing::warn!(error = %e, "not ready");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the database does not answer",
            )
        })
}
