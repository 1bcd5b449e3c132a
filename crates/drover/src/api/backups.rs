//! Backups: the destinations operators set up, a backup of an account asked for now (the
//! schedule asks for the rest), and each account's backups with its last good one, for
//! billing and operators to see.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drover_core::{
    AccountId, BackupDestinationId, BackupDestinationPatch, BackupDestinationSpec, BackupState,
};
use drover_store::{Backup, BackupDestination, BackupFilter, Page};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Query, path_id};
use super::middleware::Caller;
use super::shared::{Accepted, Reply, WithStatus};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_destination, list_destinations))
        .routes(routes!(
            get_destination,
            update_destination,
            delete_destination
        ))
        .routes(routes!(backup_account, account_backups))
        .routes(routes!(restore_account))
        .routes(routes!(list_backups))
}

#[utoipa::path(post, path = "/api/v1/backup-destinations", tag = "backups",
    request_body = BackupDestinationSpec,
    responses((status = 201, body = BackupDestination),
        (status = 409, description = "the name is taken (`duplicate_name`)", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_destination(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(spec): Json<BackupDestinationSpec>,
) -> WithStatus<BackupDestination> {
    let created = crate::commands::create_backup_destination(
        &*app.store,
        &caller.context(),
        &app.settings.secret_sources,
        spec,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

#[utoipa::path(get, path = "/api/v1/backup-destinations", tag = "backups",
    responses((status = 200, body = [BackupDestination])))]
async fn list_destinations(State(app): State<AppState>) -> Reply<Vec<BackupDestination>> {
    Ok(axum::Json(app.store.backup_destinations().await?))
}

#[utoipa::path(get, path = "/api/v1/backup-destinations/{id}", tag = "backups",
    responses((status = 200, body = BackupDestination), (status = 404, body = ErrorBody)))]
async fn get_destination(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Reply<BackupDestination> {
    let id: BackupDestinationId = path_id("backup destination", &id)?;
    Ok(axum::Json(app.store.backup_destination(id).await?))
}

#[utoipa::path(patch, path = "/api/v1/backup-destinations/{id}", tag = "backups",
    request_body = BackupDestinationPatch,
    responses((status = 200, body = BackupDestination), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update_destination(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(patch): Json<BackupDestinationPatch>,
) -> Reply<BackupDestination> {
    let id: BackupDestinationId = path_id("backup destination", &id)?;
    let context = caller.context();
    let updated = crate::commands::update_backup_destination(
        &*app.store,
        &context,
        &app.settings.secret_sources,
        id,
        patch,
    )
    .await?;
    Ok(axum::Json(updated))
}

#[utoipa::path(delete, path = "/api/v1/backup-destinations/{id}", tag = "backups",
    responses((status = 204, description = "forgotten"), (status = 404, body = ErrorBody),
        (status = 409, description = "backups were written to it (`in_use`): they are the accounts' history", body = ErrorBody)))]
async fn delete_destination(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: BackupDestinationId = path_id("backup destination", &id)?;
    crate::commands::delete_backup_destination(&*app.store, &caller.context(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Where a backup asked for now goes: the default destination unless one is named.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    #[schema(value_type = Option<i64>)]
    #[serde(default)]
    destination_id: Option<BackupDestinationId>,
}

#[utoipa::path(post, path = "/api/v1/accounts/{id}/backups", tag = "backups",
    request_body = BackupRequest,
    responses((status = 202, description = "the backup job (joined if one waits)", body = Accepted),
        (status = 404, body = ErrorBody),
        (status = 409, description = "the account is deleted or on no server, or no destination is named and none is the default (`backup_refused`)", body = ErrorBody)))]
async fn backup_account(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<BackupRequest>,
) -> WithStatus<Accepted> {
    let id: AccountId = path_id("account", &id)?;
    let job =
        crate::commands::backup_account(&*app.store, &caller.context(), id, request.destination_id)
            .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(Accepted::new(job))))
}

/// An account's backups, newest first, with its last good one and that one's age.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountBackups {
    last_good: Option<Backup>,
    /// Seconds since the last good backup finished.
    last_good_age_seconds: Option<i64>,
    backups: Vec<Backup>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct PageOfBackups {
    /// Older than this backup id.
    after: Option<i64>,
    /// At most this many rows: 100 unless said; 0 is taken as 1 and more than 1000 as 1000.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/accounts/{id}/backups", tag = "backups",
    params(PageOfBackups),
    responses((status = 200, body = AccountBackups), (status = 404, body = ErrorBody)))]
async fn account_backups(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<PageOfBackups>,
) -> Reply<AccountBackups> {
    let id: AccountId = path_id("account", &id)?;
    app.store.account(id).await?;
    let last_good = app.store.last_good_backup(id).await?;
    let age = last_good
        .as_ref()
        .and_then(|b| b.finished_at)
        .map(|t| jiff::Timestamp::now().duration_since(t).as_secs());
    let filter = BackupFilter {
        account: Some(id),
        page: Page::new(query.after, query.limit),
        ..BackupFilter::default()
    };
    Ok(axum::Json(AccountBackups {
        last_good,
        last_good_age_seconds: age,
        backups: app.store.backups(filter).await?,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct BackupQuery {
    #[param(value_type = Option<i64>)]
    account_id: Option<AccountId>,
    #[param(value_type = Option<i64>)]
    destination_id: Option<BackupDestinationId>,
    state: Option<BackupState>,
    /// Older than this backup id.
    after: Option<i64>,
    /// At most this many rows: 100 unless said; 0 is taken as 1 and more than 1000 as 1000.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/backups", tag = "backups", params(BackupQuery),
    responses((status = 200, description = "newest first", body = [Backup])))]
async fn list_backups(
    State(app): State<AppState>,
    Query(query): Query<BackupQuery>,
) -> Reply<Vec<Backup>> {
    let filter = BackupFilter {
        account: query.account_id,
        destination: query.destination_id,
        state: query.state,
        page: Page::new(query.after, query.limit),
    };
    Ok(axum::Json(app.store.backups(filter).await?))
}

/// A restore: its plan alone (`dry_run`), or the restore with the account's domain repeated.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The backup [default: the account's last good one].
    #[schema(value_type = Option<i64>)]
    #[serde(default)]
    backup_id: Option<drover_core::BackupId>,
    #[serde(default)]
    dry_run: bool,
    /// The account's domain, repeated: the restore replaces its content.
    #[serde(default)]
    confirm_domain: Option<String>,
    /// Another server to restore it onto: the account moves there with the backup's content
    /// (its old copy kept for `grace_seconds`) [default: its own server].
    #[schema(value_type = Option<i64>)]
    #[serde(default)]
    to_server: Option<drover_core::ServerId>,
    /// Seconds to keep the old copy of an account restored onto another server unless
    /// confirmed [default: DROVER_MIGRATION_GRACE].
    #[serde(default)]
    grace_seconds: Option<u64>,
}

/// A restore queued, with what it replaces.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestoreQueued {
    plan: crate::commands::RestorePlan,
    #[schema(value_type = i64)]
    job_id: drover_core::JobId,
}

#[utoipa::path(post, path = "/api/v1/accounts/{id}/restore", tag = "backups",
    request_body = RestoreRequest,
    responses((status = 200, description = "the plan (`dry_run`)", body = crate::commands::RestorePlan),
        (status = 202, description = "the restore job, then drover's records applied on top", body = RestoreQueued),
        (status = 404, body = ErrorBody),
        (status = 409, description = "no good backup of the account on its server, or the account deleted or moving (`restore_refused`)", body = ErrorBody),
        (status = 422, description = "`confirm_domain` is not the account's domain (`confirmation_mismatch`)", body = ErrorBody)))]
async fn restore_account(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<RestoreRequest>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let id: AccountId = path_id("account", &id)?;
    if request.dry_run {
        let plan =
            crate::commands::plan_restore(&*app.store, id, request.backup_id, request.to_server)
                .await?;
        return Ok(axum::Json(plan).into_response());
    }
    let onto = match request.to_server {
        Some(id) => crate::commands::RestoreOnto::Server {
            id,
            grace: request
                .grace_seconds
                .map_or(app.settings.migration_grace, std::time::Duration::from_secs),
        },
        None => crate::commands::RestoreOnto::ItsServer,
    };
    let (plan, job_id) = crate::commands::restore_account(
        &*app.store,
        &caller.context(),
        id,
        request.backup_id,
        onto,
        request.confirm_domain.as_deref().unwrap_or_default(),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(RestoreQueued { plan, job_id }),
    )
        .into_response())
}
