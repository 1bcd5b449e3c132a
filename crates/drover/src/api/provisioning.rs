//! The emergency stop for provisioning.

use axum::Extension;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::middleware::Caller;
use super::shared::Reply;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(provisioning_status))
        .routes(routes!(pause_provisioning))
        .routes(routes!(resume_provisioning))
}

/// Whether provisioning runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProvisioningStatus {
    /// `null` before any worker has run.
    paused: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/provisioning", tag = "provisioning",
    responses((status = 200, body = ProvisioningStatus)))]
async fn provisioning_status(State(app): State<AppState>) -> Reply<ProvisioningStatus> {
    Ok(axum::Json(ProvisioningStatus {
        paused: app.store.provisioning_paused().await?,
    }))
}

/// The emergency stop: provisioning jobs wait until resumed.
#[utoipa::path(post, path = "/api/v1/provisioning/pause", tag = "provisioning",
    responses((status = 200, body = ProvisioningStatus), (status = 409, body = ErrorBody)))]
async fn pause_provisioning(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Reply<ProvisioningStatus> {
    crate::commands::set_provisioning_paused(&*app.store, &caller.context(), true).await?;
    provisioning_status(State(app)).await
}

#[utoipa::path(post, path = "/api/v1/provisioning/resume", tag = "provisioning",
    responses((status = 200, body = ProvisioningStatus), (status = 409, body = ErrorBody)))]
async fn resume_provisioning(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Reply<ProvisioningStatus> {
    crate::commands::set_provisioning_paused(&*app.store, &caller.context(), false).await?;
    provisioning_status(State(app)).await
}
