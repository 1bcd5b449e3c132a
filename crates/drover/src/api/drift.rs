//! Drift: what each server's last scan found, and starting a scan.

use crate::commands::Requested;
use axum::Extension;
use axum::extract::{Path, State};
use drover_core::ServerId;
use drover_store::DriftRecord;
use drover_store::jobs::DriftRepair;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::extract::{Query, path_id};
use super::middleware::Caller;
use super::shared::{Accepted, Reply, WithStatus, queue};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_drift))
        .routes(routes!(scan_drift))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct DriftQuery {
    #[param(value_type = Option<i64>)]
    server_id: Option<ServerId>,
}

#[utoipa::path(get, path = "/api/v1/drift", tag = "servers", params(DriftQuery),
    responses((status = 200, description = "the findings of each server's last scan", body = [DriftRecord])))]
async fn list_drift(
    State(app): State<AppState>,
    Query(query): Query<DriftQuery>,
) -> Reply<Vec<DriftRecord>> {
    Ok(axum::Json(app.store.drift_findings(query.server_id).await?))
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/drift-scan", tag = "servers",
    responses((status = 202, description = "the scan-and-repair job", body = Accepted), (status = 404, body = ErrorBody)))]
async fn scan_drift(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> WithStatus<Accepted> {
    let id: ServerId = path_id("server", &id)?;
    let repair = DriftRepair::ByPolicy;
    queue(
        &app,
        &caller,
        Requested::DriftScan {
            server: Some(id),
            repair,
        },
    )
    .await
}
