//! An account's alias domains and sub-servers: billing's requests, recorded and queued for the
//! account's server.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drover_core::AccountId;
use drover_store::{OtherDomain, OtherDomainKind};
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
        .routes(routes!(list_aliases, create_alias))
        .routes(routes!(delete_alias))
        .routes(routes!(list_subservers, create_subserver))
        .routes(routes!(delete_subserver))
}

async fn list(app: &AppState, id: &str, kind: OtherDomainKind) -> Reply<Vec<OtherDomain>> {
    let id: AccountId = path_id("account", id)?;
    app.store.account(id).await?;
    Ok(axum::Json(app.store.other_domains(id, kind).await?))
}

/// The domain, repeated: what it serves is deleted with it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteOtherDomainRequest {
    /// Left out only by the billing system, when an operator allows its cleanup without
    /// (`DROVER_BILLING_DELETES_UNCONFIRMED`).
    #[serde(default)]
    confirm_domain: Option<String>,
}

async fn delete(
    app: &AppState,
    caller: &Caller,
    (id, domain): (String, String),
    kind: OtherDomainKind,
    request: DeleteOtherDomainRequest,
) -> Reply<OtherDomain> {
    let id: AccountId = path_id("account", &id)?;
    let ctx = caller.context();
    let confirm = confirmation(app, caller, request.confirm_domain);
    let deleted =
        crate::commands::delete_other_domain(&*app.store, &ctx, id, kind, &domain, &confirm)
            .await?;
    Ok(axum::Json(deleted))
}

#[utoipa::path(get, path = "/api/v1/accounts/{id}/aliases", tag = "aliases",
    responses((status = 200, body = [OtherDomain]), (status = 404, body = ErrorBody)))]
async fn list_aliases(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Reply<Vec<OtherDomain>> {
    list(&app, &id, OtherDomainKind::Alias).await
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
    responses((status = 201, body = OtherDomain), (status = 404, body = ErrorBody),
        (status = 409, description = "the plan's limit is reached (`over_limit`), the domain is hosted already (`duplicate_domain`) or the account is deleted", body = ErrorBody),
        (status = 422, description = "an invalid domain, or one under the account's own", body = ErrorBody)))]
async fn create_alias(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(new): Json<NewAlias>,
) -> WithStatus<OtherDomain> {
    let id: AccountId = path_id("account", &id)?;
    let alias =
        crate::commands::create_alias(&*app.store, &caller.context(), id, &new.domain).await?;
    Ok((StatusCode::CREATED, axum::Json(alias)))
}

#[utoipa::path(post, path = "/api/v1/accounts/{id}/aliases/{domain}/delete", tag = "aliases",
    request_body = DeleteOtherDomainRequest,
    responses((status = 200, description = "marked for deletion; the account's converge removes it and its zone", body = OtherDomain),
        (status = 404, body = ErrorBody),
        (status = 422, description = "the domain was not repeated", body = ErrorBody)))]
async fn delete_alias(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(path): Path<(String, String)>,
    Json(request): Json<DeleteOtherDomainRequest>,
) -> Reply<OtherDomain> {
    delete(&app, &caller, path, OtherDomainKind::Alias, request).await
}

#[utoipa::path(get, path = "/api/v1/accounts/{id}/subservers", tag = "subservers",
    responses((status = 200, body = [OtherDomain]), (status = 404, body = ErrorBody)))]
async fn list_subservers(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Reply<Vec<OtherDomain>> {
    list(&app, &id, OtherDomainKind::Subserver).await
}

/// A new sub-server: a name under the account's domain (`shop.example.ro`), or just its first
/// label (`shop`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubserver {
    #[schema(example = "shop")]
    name: String,
}

#[utoipa::path(post, path = "/api/v1/accounts/{id}/subservers", tag = "subservers",
    request_body = NewSubserver,
    responses((status = 201, body = OtherDomain), (status = 404, body = ErrorBody),
        (status = 409, description = "the plan's limit is reached (`over_limit`), the domain is hosted already (`duplicate_domain`) or the account is deleted", body = ErrorBody),
        (status = 422, description = "a name outside the account's domain, or one its zone uses (www, mail)", body = ErrorBody)))]
async fn create_subserver(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(new): Json<NewSubserver>,
) -> WithStatus<OtherDomain> {
    let id: AccountId = path_id("account", &id)?;
    let sub =
        crate::commands::create_subserver(&*app.store, &caller.context(), id, &new.name).await?;
    Ok((StatusCode::CREATED, axum::Json(sub)))
}

#[utoipa::path(post, path = "/api/v1/accounts/{id}/subservers/{domain}/delete", tag = "subservers",
    request_body = DeleteOtherDomainRequest,
    responses((status = 200, description = "marked for deletion; the account's converge removes it and its addresses", body = OtherDomain),
        (status = 404, body = ErrorBody),
        (status = 422, description = "the full name was not repeated", body = ErrorBody)))]
async fn delete_subserver(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(path): Path<(String, String)>,
    Json(request): Json<DeleteOtherDomainRequest>,
) -> Reply<OtherDomain> {
    delete(&app, &caller, path, OtherDomainKind::Subserver, request).await
}
