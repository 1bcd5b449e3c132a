//! An account's mailboxes: billing's requests, recorded and queued for the account's server.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drover_core::AccountId;
use drover_store::Mailbox;
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
        .routes(routes!(list_mailboxes, create_mailbox))
        .routes(routes!(update_mailbox))
        .routes(routes!(delete_mailbox))
}

#[utoipa::path(get, path = "/api/v1/accounts/{id}/mailboxes", tag = "mailboxes",
    responses((status = 200, body = [Mailbox]), (status = 404, body = ErrorBody)))]
async fn list_mailboxes(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Reply<Vec<Mailbox>> {
    let id: AccountId = path_id("account", &id)?;
    app.store.account(id).await?;
    Ok(axum::Json(app.store.mailboxes(id).await?))
}

/// A new mailbox: its name (the local part of its address), its owner's real name and its
/// password (sealed at once, never stored in clear, never returned).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMailbox {
    #[schema(example = "ana")]
    name: String,
    #[serde(default)]
    real_name: String,
    #[schema(value_type = String, format = Password)]
    password: secrecy::SecretString,
    /// Its disk quota (MB), at most the plan's mailbox quota; left out: the plan's.
    #[serde(default)]
    quota_mb: Option<u64>,
}

#[utoipa::path(post, path = "/api/v1/accounts/{id}/mailboxes", tag = "mailboxes",
    request_body = NewMailbox,
    responses((status = 201, body = Mailbox), (status = 404, body = ErrorBody),
        (status = 409, description = "the plan's limit is reached (`over_limit`), the name is taken (`mailbox_exists`) or the account is deleted", body = ErrorBody),
        (status = 422, description = "an invalid name, real name, password or quota (above the plan's mailbox quota)", body = ErrorBody)))]
async fn create_mailbox(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(new): Json<NewMailbox>,
) -> WithStatus<Mailbox> {
    let id: AccountId = path_id("account", &id)?;
    let mailbox = crate::commands::create_mailbox(
        &*app.store,
        &caller.context(),
        &app.sealer,
        id,
        &new.name,
        &new.real_name,
        new.password,
        new.quota_mb,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(mailbox)))
}

/// What changes: the real name, the password, the quota, or several.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailboxChange {
    real_name: Option<String>,
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<secrecy::SecretString>,
    /// Its own disk quota (MB), at most the plan's mailbox quota; `null`: back to the plan's.
    #[serde(default, deserialize_with = "drover_core::nullable")]
    #[schema(value_type = Option<u64>)]
    quota_mb: Option<Option<u64>>,
}

#[utoipa::path(patch, path = "/api/v1/accounts/{id}/mailboxes/{name}", tag = "mailboxes",
    request_body = MailboxChange,
    responses((status = 200, body = Mailbox), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_mailbox(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
    Json(change): Json<MailboxChange>,
) -> Reply<Mailbox> {
    let id: AccountId = path_id("account", &id)?;
    let mailbox = crate::commands::update_mailbox(
        &*app.store,
        &caller.context(),
        &app.sealer,
        id,
        &name,
        change.real_name.as_deref(),
        change.password,
        change.quota_mb,
    )
    .await?;
    Ok(axum::Json(mailbox))
}

/// The mailbox's name, repeated: its mail is deleted with it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteMailboxRequest {
    /// Left out only by the billing system, when an operator allows its cleanup without
    /// (`DROVER_BILLING_DELETES_UNCONFIRMED`).
    #[serde(default)]
    confirm_name: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/accounts/{id}/mailboxes/{name}/delete", tag = "mailboxes",
    request_body = DeleteMailboxRequest,
    responses((status = 200, description = "marked for deletion; the account's converge removes it", body = Mailbox),
        (status = 404, body = ErrorBody),
        (status = 422, description = "the name was not repeated", body = ErrorBody)))]
async fn delete_mailbox(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
    Json(request): Json<DeleteMailboxRequest>,
) -> Reply<Mailbox> {
    let id: AccountId = path_id("account", &id)?;
    let ctx = caller.context();
    let mailbox = crate::commands::delete_mailbox(
        &*app.store,
        &ctx,
        id,
        &name,
        &confirmation(&app, &caller, request.confirm_name),
    )
    .await?;
    Ok(axum::Json(mailbox))
}
