//! An account's alias domains: billing's requests, recorded and queued for the account's
//! server.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drover_core::AccountId;
use drover_store::Alias;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::extract::{Json, path_id};
use super::middleware::Caller;
use super::shared::{Reply, WithStatus};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_aliases, create_alias))
        .routes(routes!(delete_alias))
}

#[utoipa::path(get, path = "/api/v1/accounts/{id}/aliases", tag = "aliases",
    responses((status = 200, body = [Alias]), (status = 404, body = ErrorBody)))]
async fn list_aliases(State(app): State<AppState>, Path(id): Path<String>) -> Reply<Vec<Alias>> {
    let id: AccountId = path_id("account", &id)?;
    app.store.account(id).await?;
    Ok(axum::Json(app.store.aliases(id).await?))
}

/// A new alias domain, serving the account's site and mail.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAlias {
    #[schema(example = "example.com")]
    domain: String,
}

#[utoipa::path(post, path = "/api/v1/accounts/{id}/aliases", tag = "aliases",
    request_body = NewAlias,
    responses((status = 201, body = Alias), (status = 404, body = ErrorBody),
        (status = 409, description = "the plan's limit is reached (`over_limit`), the domain is hosted already (`duplicate_domain`) or the account is deleted", body = ErrorBody),
        (status = 422, description = "an invalid domain, or one under the account's own", body = ErrorBody)))]
async fn create_alias(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(new): Json<NewAlias>,
) -> WithStatus<Alias> {
    let id: AccountId = path_id("account", &id)?;
    let alias =
        crate::commands::create_alias(&*app.store, &caller.context(), id, &new.domain).await?;
    Ok((StatusCode::CREATED, axum::Json(alias)))
}

/// The alias domain, repeated.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAliasRequest {
    confirm_domain: String,
}

#[utoipa::path(post, path = "/api/v1/accounts/{id}/aliases/{domain}/delete", tag = "aliases",
    request_body = DeleteAliasRequest,
    responses((status = 200, description = "marked for deletion; the account's converge removes it and its zone", body = Alias),
        (status = 404, body = ErrorBody),
        (status = 422, description = "the domain was not repeated", body = ErrorBody)))]
async fn delete_alias(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, domain)): Path<(String, String)>,
    Json(request): Json<DeleteAliasRequest>,
) -> Reply<Alias> {
    let id: AccountId = path_id("account", &id)?;
    let ctx = caller.context();
    let alias =
        crate::commands::delete_alias(&*app.store, &ctx, id, &domain, &request.confirm_domain)
            .await?;
    Ok(axum::Json(alias))
}
