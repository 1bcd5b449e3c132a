//! Servers: the fleet, its health, maintenance, and the moves off a server (drain, rebuild,
//! decommission). Moves are recorded here and carried out by jobs.

use crate::commands::DrainPlan;
use crate::commands::RebuildPlan;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drover_core::{ServerId, ServerPatch, ServerSpec};
use drover_store::{Server, ServerHealth};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Query, path_id};
use super::middleware::Caller;
use super::shared::{Accepted, PageQuery, Reply, WithStatus, queue};
use crate::commands::Requested;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_server, list_servers))
        .routes(routes!(get_server, update_server))
        .routes(routes!(server_health))
        .routes(routes!(set_maintenance))
        .routes(routes!(allow_login))
        .routes(routes!(drain_server))
        .routes(routes!(rebuild_server))
        .routes(routes!(decommission_server))
        .routes(routes!(adopt_server))
        .routes(routes!(mark_break_glass, lift_break_glass))
        .routes(routes!(run_over_ssh))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassRequest {
    /// Why the server is worked on over SSH (remote.cgi not answering…), for the audit log and
    /// the other operators.
    reason: String,
}

/// Marks the server as worked on over SSH: the break-glass path may reach it, and its
/// accounts' jobs wait until the mark is lifted.
#[utoipa::path(post, path = "/api/v1/servers/{id}/break-glass", tag = "servers",
    request_body = BreakGlassRequest,
    responses((status = 200, body = Server), (status = 404, body = ErrorBody),
        (status = 409, description = "the server has no SSH access (`no_ssh_access`)", body = ErrorBody)))]
async fn mark_break_glass(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<BreakGlassRequest>,
) -> Reply<Server> {
    let id: ServerId = path_id("server", &id)?;
    let ctx = caller.context();
    let server =
        crate::commands::set_break_glass(&*app.store, &ctx, id, Some(&request.reason)).await?;
    Ok(axum::Json(server))
}

/// Lifts the mark: the server's jobs carry on through remote.cgi.
#[utoipa::path(delete, path = "/api/v1/servers/{id}/break-glass", tag = "servers",
    responses((status = 200, body = Server), (status = 404, body = ErrorBody)))]
async fn lift_break_glass(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Reply<Server> {
    let id: ServerId = path_id("server", &id)?;
    let server = crate::commands::set_break_glass(&*app.store, &caller.context(), id, None).await?;
    Ok(axum::Json(server))
}

/// Runs one of Virtualmin's programs with its own `virtualmin` command over SSH, on a server
/// marked for the break-glass path: `list-domains` and `info` to look, `disable-domain` and
/// `enable-domain` to suspend and unsuspend. The answer, parsed as remote.cgi's, is the job's
/// output.
#[utoipa::path(post, path = "/api/v1/servers/{id}/over-ssh", tag = "servers",
    request_body = drover_store::jobs::SshProgram,
    responses((status = 202, description = "the job that runs it", body = Accepted),
        (status = 404, body = ErrorBody),
        (status = 409, description = "no SSH access (`no_ssh_access`), or the server is not \
            marked (`not_in_break_glass`)", body = ErrorBody)))]
async fn run_over_ssh(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(program): Json<drover_store::jobs::SshProgram>,
) -> WithStatus<Accepted> {
    let server: ServerId = path_id("server", &id)?;
    queue(&app, &caller, Requested::OverSsh { server, program }).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdoptRequest {
    /// Record the adoption; without it, the job's output only says what would be recorded.
    #[serde(default)]
    apply: bool,
    /// Billing's mapping of domains to customers (by billing's id) and plans. Without it,
    /// customers are found by the owner's contact address and plans by the server's names.
    #[serde(default)]
    mapping: Option<Vec<drover_core::Mapping>>,
    /// Where the server carries a plan otherwise than drover, let drover's replace it.
    #[serde(default)]
    accept_plan_changes: bool,
}

/// Brings a server's existing accounts under drover, changing nothing on the server: the job
/// lists them and proposes drover's records (its output), and with `apply` records them in one
/// transaction, protected and without known passwords.
#[utoipa::path(post, path = "/api/v1/servers/{id}/adopt", tag = "servers", request_body = AdoptRequest,
    responses((status = 202, description = "the adoption's job", body = Accepted), (status = 404, body = ErrorBody)))]
async fn adopt_server(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<AdoptRequest>,
) -> WithStatus<Accepted> {
    let id: ServerId = path_id("server", &id)?;
    let mapping = request
        .mapping
        .map(drover_core::check_mapping)
        .transpose()?;
    let request = Requested::Adoption {
        server: id,
        apply: request.apply,
        mapping,
        accept_plan_changes: request.accept_plan_changes,
    };
    queue(&app, &caller, request).await
}

#[utoipa::path(post, path = "/api/v1/servers", tag = "servers", request_body = ServerSpec,
    responses((status = 201, body = Server), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_server(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(spec): Json<ServerSpec>,
) -> WithStatus<Server> {
    app.settings.secret_sources.check(&spec.credentials)?;
    if let Some(ssh) = &spec.ssh {
        app.settings.secret_sources.check(&ssh.key)?;
    }
    let server = crate::commands::create_server(&*app.store, &caller.context(), spec).await?;
    Ok((StatusCode::CREATED, axum::Json(server)))
}

#[utoipa::path(get, path = "/api/v1/servers", tag = "servers", params(PageQuery),
    responses((status = 200, body = [Server])))]
async fn list_servers(
    State(app): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Reply<Vec<Server>> {
    Ok(axum::Json(app.store.servers(query.page()).await?))
}

#[utoipa::path(get, path = "/api/v1/servers/{id}", tag = "servers",
    responses((status = 200, body = Server), (status = 404, body = ErrorBody)))]
async fn get_server(State(app): State<AppState>, Path(id): Path<String>) -> Reply<Server> {
    let id: ServerId = path_id("server", &id)?;
    Ok(axum::Json(app.store.server(id).await?))
}

#[utoipa::path(patch, path = "/api/v1/servers/{id}", tag = "servers", request_body = ServerPatch,
    responses((status = 200, body = Server), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_server(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(patch): Json<ServerPatch>,
) -> Reply<Server> {
    let id: ServerId = path_id("server", &id)?;
    if let Some(credentials) = &patch.credentials {
        app.settings.secret_sources.check(credentials)?;
    }
    if let Some(Some(ssh)) = &patch.ssh {
        app.settings.secret_sources.check(&ssh.key)?;
    }
    Ok(axum::Json(
        crate::commands::update_server(&*app.store, &caller.context(), id, patch).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/servers/{id}/health", tag = "servers",
    responses((status = 200, body = ServerHealth), (status = 404, description = "no such server, or not checked yet", body = ErrorBody)))]
async fn server_health(State(app): State<AppState>, Path(id): Path<String>) -> Reply<ServerHealth> {
    let id: ServerId = path_id("server", &id)?;
    app.store.server(id).await?;
    match app.store.server_health(id).await? {
        Some(health) => Ok(axum::Json(health)),
        None => Err(ApiError::not_found(format!(
            "server {id} has not been checked yet; checks run every DROVER_HEALTH_INTERVAL"
        ))),
    }
}

/// Maintenance on (`true`) or off.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    on: bool,
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/maintenance", tag = "servers",
    request_body = MaintenanceRequest,
    responses((status = 200, body = Server), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn set_maintenance(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<MaintenanceRequest>,
) -> Reply<Server> {
    let id: ServerId = path_id("server", &id)?;
    let server =
        crate::commands::set_maintenance(&*app.store, &caller.context(), id, request.on).await?;
    Ok(axum::Json(server))
}

/// Lets drover try to log in to a server that refused it (after fixing its credentials on the
/// server's side, or once a lock-out has passed).
#[utoipa::path(post, path = "/api/v1/servers/{id}/allow-login", tag = "servers",
    responses((status = 200, body = Server), (status = 404, body = ErrorBody)))]
async fn allow_login(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Reply<Server> {
    let id: ServerId = path_id("server", &id)?;
    Ok(axum::Json(
        crate::commands::allow_login(&*app.store, &caller.context(), id).await?,
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// Only say what would move.
    #[serde(default)]
    dry_run: bool,
    /// Seconds to keep each old copy unless confirmed [default: DROVER_MIGRATION_GRACE].
    grace_seconds: Option<u64>,
    /// Move the accounts even though their content cannot be carried (no SSH host is the
    /// default backup destination): they start empty on their new servers.
    #[serde(default)]
    without_content: bool,
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/drain", tag = "servers", request_body = DrainRequest,
    responses((status = 200, description = "the moves started (or that would be), and accounts no server can take now", body = DrainPlan),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn drain_server(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<DrainRequest>,
) -> Reply<DrainPlan> {
    let id: ServerId = path_id("server", &id)?;
    let grace = request
        .grace_seconds
        .map_or(app.settings.migration_grace, std::time::Duration::from_secs);
    // Placement and the migrations' records only: the moves are carried out by jobs.
    let plan = crate::commands::drain(
        &*app.store,
        &caller.context(),
        &app.settings.placement,
        id,
        grace,
        request.dry_run,
        crate::commands::WithoutContent::allowed(request.without_content),
    )
    .await?;
    Ok(axum::Json(plan))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RebuildRequest {
    /// The fresh server the accounts are recreated on.
    #[schema(value_type = i64)]
    onto: ServerId,
    /// Check and plan only.
    #[serde(default)]
    dry_run: bool,
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/rebuild", tag = "servers", request_body = RebuildRequest,
    responses((status = 200, description = "the checks and the plan; started unless a dry run", body = RebuildPlan),
              (status = 404, body = ErrorBody), (status = 422, description = "accounts lack what recreation needs", body = ErrorBody)))]
async fn rebuild_server(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<RebuildRequest>,
) -> Reply<RebuildPlan> {
    let id: ServerId = path_id("server", &id)?;
    let lost = app.store.server(id).await?;
    // drover's records only: the accounts are recreated by jobs.
    let plan = crate::commands::rebuild(
        &*app.store,
        &caller.context(),
        &lost,
        request.onto,
        app.settings.virtualmin_rate_qps,
        request.dry_run,
    )
    .await?;
    if !plan.problems.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rebuild_blocked",
            format!("the rebuild was not started: {}", plan.problems.join("; ")),
        ));
    }
    Ok(axum::Json(plan))
}

/// The server's name, repeated.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecommissionRequest {
    confirm_name: String,
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/decommission", tag = "servers", request_body = DecommissionRequest,
    responses((status = 200, body = Server), (status = 409, description = "accounts remain on it", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn decommission_server(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<DecommissionRequest>,
) -> Reply<Server> {
    let id: ServerId = path_id("server", &id)?;
    let server =
        crate::commands::decommission(&*app.store, &caller.context(), id, &request.confirm_name)
            .await?;
    Ok(axum::Json(server))
}
