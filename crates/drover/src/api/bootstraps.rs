//! Bootstraps: bare servers brought into the fleet over SSH. A dry run answers with every
//! step and its commands; a started one is carried out by a job and followed here.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drover_core::BootstrapSpec;
use drover_store::ServerBootstrap;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::extract::{Json, Query, path_id};
use super::middleware::Caller;
use super::shared::{PageQuery, Reply, WithStatus};
use crate::commands::BootstrapPlan;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_bootstrap, list_bootstraps))
        .routes(routes!(get_bootstrap))
        .routes(routes!(resume_bootstrap))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BootstrapQuery {
    /// Only list the steps and their commands: nothing is recorded or run.
    #[serde(default)]
    dry_run: bool,
}

#[utoipa::path(post, path = "/api/v1/bootstraps", tag = "servers", params(BootstrapQuery),
    request_body = BootstrapSpec,
    responses((status = 200, description = "the steps a bootstrap would take (dry run)", body = BootstrapPlan),
              (status = 202, description = "the bootstrap started: follow it at /api/v1/bootstraps/{id}", body = BootstrapPlan),
              (status = 409, description = "a server or a running bootstrap has the name", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn start_bootstrap(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<BootstrapQuery>,
    Json(spec): Json<BootstrapSpec>,
) -> WithStatus<BootstrapPlan> {
    let plan = crate::commands::bootstrap_server(
        &*app.store,
        &caller.context(),
        &app.settings.secret_sources,
        app.settings.virtualmin_sources.as_deref(),
        spec,
        query.dry_run,
    )
    .await?;
    let status = if plan.dry_run {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, axum::Json(plan)))
}

#[utoipa::path(get, path = "/api/v1/bootstraps", tag = "servers", params(PageQuery),
    responses((status = 200, description = "oldest first", body = [ServerBootstrap])))]
async fn list_bootstraps(
    State(app): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Reply<Vec<ServerBootstrap>> {
    Ok(axum::Json(app.store.bootstraps(query.page()).await?))
}

#[utoipa::path(get, path = "/api/v1/bootstraps/{id}", tag = "servers",
    responses((status = 200, description = "each step's state and every command run", body = ServerBootstrap),
              (status = 404, body = ErrorBody)))]
async fn get_bootstrap(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Reply<ServerBootstrap> {
    let id: i64 = path_id("bootstrap", &id)?;
    Ok(axum::Json(app.store.bootstrap(id).await?))
}

/// Starts a failed bootstrap again where it stopped (once its cause is fixed): the steps
/// done stay done.
#[utoipa::path(post, path = "/api/v1/bootstraps/{id}/resume", tag = "servers",
    responses((status = 202, description = "running again, by a new job", body = ServerBootstrap),
              (status = 404, body = ErrorBody),
              (status = 409, description = "it has not failed", body = ErrorBody)))]
async fn resume_bootstrap(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> WithStatus<ServerBootstrap> {
    let id: i64 = path_id("bootstrap", &id)?;
    let resumed = crate::commands::resume_bootstrap(&*app.store, &caller.context(), id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(resumed)))
}
