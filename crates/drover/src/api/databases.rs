//! An account's databases: billing's requests, recorded and queued for the account's server.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drover_core::AccountId;
use drover_store::Database;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::extract::{Json, path_id};
use super::middleware::Caller;
use super::shared::{Reply, WithStatus, confirmation};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_databases, create_database))
        .routes(routes!(delete_database))
}

#[utoipa::path(get, path = "/api/v1/accounts/{id}/databases", tag = "databases",
    responses((status = 200, body = [Database]), (status = 404, body = ErrorBody)))]
async fn list_databases(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Reply<Vec<Database>> {
    let id: AccountId = path_id("account", &id)?;
    app.store.account(id).await?;
    Ok(axum::Json(app.store.databases(id).await?))
}

/// A new database: its name (the account's prefix is added when it lacks it: `shop` becomes
/// `ana_shop` for the account `ana`) and its type.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDatabase {
    #[schema(example = "shop")]
    name: String,
    /// `mysql` (the default) or `postgres` (when the plan gives the feature postgres).
    #[serde(default = "mysql", rename = "type")]
    #[schema(example = "mysql")]
    kind: String,
}

fn mysql() -> String {
    "mysql".into()
}

#[utoipa::path(post, path = "/api/v1/accounts/{id}/databases", tag = "databases",
    request_body = NewDatabase,
    responses((status = 201, body = Database), (status = 404, body = ErrorBody),
        (status = 409, description = "the plan's limit is reached (`over_limit`), the plan lacks the type's feature (`feature_missing`), the name is taken (`database_exists`) or the account is deleted", body = ErrorBody),
        (status = 422, description = "an invalid name or type", body = ErrorBody)))]
async fn create_database(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(new): Json<NewDatabase>,
) -> WithStatus<Database> {
    let id: AccountId = path_id("account", &id)?;
    let database =
        crate::commands::create_database(&*app.store, &caller.context(), id, &new.name, &new.kind)
            .await?;
    Ok((StatusCode::CREATED, axum::Json(database)))
}

/// The database's full name, repeated: its tables are deleted with it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteDatabaseRequest {
    /// Left out only by the billing system, when an operator allows its cleanup without
    /// (`DROVER_BILLING_DELETES_UNCONFIRMED`).
    #[serde(default)]
    confirm_name: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/accounts/{id}/databases/{name}/delete", tag = "databases",
    request_body = DeleteDatabaseRequest,
    responses((status = 200, description = "marked for deletion; the account's converge removes it", body = Database),
        (status = 404, body = ErrorBody),
        (status = 422, description = "the name was not repeated", body = ErrorBody)))]
async fn delete_database(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
    Json(request): Json<DeleteDatabaseRequest>,
) -> Reply<Database> {
    let id: AccountId = path_id("account", &id)?;
    let ctx = caller.context();
    let database = crate::commands::delete_database(
        &*app.store,
        &ctx,
        id,
        &name,
        &confirmation(&app, &caller, request.confirm_name),
    )
    .await?;
    Ok(axum::Json(database))
}
