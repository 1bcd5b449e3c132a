//! Accounts: what carries a service out on a server; protection and moves between servers.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drover_core::{AccountId, DomainName, ServerId};
use drover_store::{Account, AccountFilter, Migration, Page};
use serde::Deserialize;
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
        .routes(routes!(list_accounts))
        .routes(routes!(get_account))
        .routes(routes!(protect_account))
        .routes(routes!(unprotect_account))
        .routes(routes!(migrate_account))
        .routes(routes!(get_migration))
        .routes(routes!(confirm_migration))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct AccountQuery {
    /// Unicode or punycode.
    #[param(min_length = 1, max_length = 253)]
    domain: Option<String>,
    #[param(value_type = Option<i64>)]
    server_id: Option<ServerId>,
    /// Only accounts whose last converge job gave up (the server does not match them).
    #[serde(default)]
    failed: bool,
    after: Option<i64>,
    /// At most this many rows: 100 unless said; 0 is taken as 1 and more than 1000 as 1000.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts", params(AccountQuery),
    responses((status = 200, body = [Account]),
        (status = 422, description = "the domain is not a domain name", body = ErrorBody)))]
async fn list_accounts(
    State(app): State<AppState>,
    Query(query): Query<AccountQuery>,
) -> Reply<Vec<Account>> {
    let filter = AccountFilter {
        domain: query.domain.as_deref().map(DomainName::parse).transpose()?,
        server_id: query.server_id,
        failed: query.failed,
        page: Page::new(query.after, query.limit),
    };
    Ok(axum::Json(app.store.accounts(filter).await?))
}

#[utoipa::path(get, path = "/api/v1/accounts/{id}", tag = "accounts",
    responses((status = 200, body = Account), (status = 404, body = ErrorBody)))]
async fn get_account(State(app): State<AppState>, Path(id): Path<String>) -> Reply<Account> {
    let id: AccountId = path_id("account", &id)?;
    Ok(axum::Json(app.store.account(id).await?))
}

/// The domain of the account, repeated, to confirm a change of its protection.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtectionRequest {
    confirm_domain: String,
}

#[utoipa::path(post, path = "/api/v1/accounts/{id}/protect", tag = "accounts",
    request_body = ProtectionRequest,
    responses((status = 200, body = Account), (status = 422, description = "the domain was not repeated", body = ErrorBody)))]
async fn protect_account(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<ProtectionRequest>,
) -> Reply<Account> {
    set_protection(&app, &caller, &id, true, &request).await
}

/// Lifts deletion protection; a terminated account is then deleted by its converge job.
#[utoipa::path(post, path = "/api/v1/accounts/{id}/unprotect", tag = "accounts",
    request_body = ProtectionRequest,
    responses((status = 200, body = Account), (status = 422, description = "the domain was not repeated", body = ErrorBody)))]
async fn unprotect_account(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<ProtectionRequest>,
) -> Reply<Account> {
    set_protection(&app, &caller, &id, false, &request).await
}

async fn set_protection(
    app: &AppState,
    caller: &Caller,
    id: &str,
    protected: bool,
    request: &ProtectionRequest,
) -> Reply<Account> {
    let id: AccountId = path_id("account", id)?;
    let account = crate::commands::set_protection(
        &*app.store,
        &caller.context(),
        id,
        protected,
        &request.confirm_domain,
    )
    .await?;
    Ok(axum::Json(account))
}

/// Where to move an account, and how long to keep its old copy unless confirmed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateRequest {
    #[schema(value_type = i64)]
    to_server: ServerId,
    /// Seconds [default: DROVER_MIGRATION_GRACE].
    grace_seconds: Option<u64>,
    /// Move the account even though its content cannot be carried (no SSH host is the
    /// default backup destination): it starts empty on its new server.
    #[serde(default)]
    without_content: bool,
}

#[utoipa::path(post, path = "/api/v1/accounts/{id}/migrate", tag = "accounts", request_body = MigrateRequest,
    responses((status = 202, description = "the move's job", body = Accepted), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn migrate_account(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<MigrateRequest>,
) -> WithStatus<Accepted> {
    let id: AccountId = path_id("account", &id)?;
    let grace = request
        .grace_seconds
        .map_or(app.settings.migration_grace, std::time::Duration::from_secs);
    let (_, job_id) = crate::commands::start_migration(
        &*app.store,
        &caller.context(),
        id,
        request.to_server,
        grace,
        crate::commands::WithoutContent::allowed(request.without_content),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(Accepted::new(job_id))))
}

#[utoipa::path(get, path = "/api/v1/accounts/{id}/migration", tag = "accounts",
    responses((status = 200, body = Migration), (status = 404, body = ErrorBody)))]
async fn get_migration(State(app): State<AppState>, Path(id): Path<String>) -> Reply<Migration> {
    let id: AccountId = path_id("account", &id)?;
    match app.store.migration(id).await? {
        Some(migration) => Ok(axum::Json(migration)),
        None => Err(ApiError::not_found(format!(
            "account {id} has never been moved"
        ))),
    }
}

#[utoipa::path(post, path = "/api/v1/accounts/{id}/migration/confirm", tag = "accounts",
    request_body = ProtectionRequest,
    responses((status = 202, body = Accepted), (status = 422, body = ErrorBody)))]
async fn confirm_migration(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<ProtectionRequest>,
) -> WithStatus<Accepted> {
    let id: AccountId = path_id("account", &id)?;
    let job_id = crate::commands::confirm_migration(
        &*app.store,
        &caller.context(),
        id,
        &request.confirm_domain,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(Accepted::new(job_id))))
}
