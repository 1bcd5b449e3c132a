//! One-time login links into an account's panel: asked for (a job makes it on the account's
//! server), then taken once by whoever asked.

use axum::Extension;
use axum::extract::{Path, State};
use drover_core::{AccountId, JobId};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::extract::path_id;
use super::middleware::Caller;
use super::shared::{Accepted, Reply, WithStatus, queue};
use crate::commands::Requested;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_login_link))
        .routes(routes!(take_login_link))
}

#[utoipa::path(post, path = "/api/v1/accounts/{id}/login-link", tag = "accounts",
    responses((status = 202, description = "a job asks the account's server for the link; take it from `/api/v1/accounts/{id}/login-link/{job_id}/take` once the job completed", body = Accepted),
        (status = 404, body = ErrorBody)))]
async fn request_login_link(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> WithStatus<Accepted> {
    let account: AccountId = path_id("account", &id)?;
    queue(&app, &caller, Requested::LoginLink { account }).await
}

/// A login link, handed out once: following it logs the account's owner into the panel.
#[derive(Serialize, ToSchema)]
pub struct LoginLink {
    #[schema(example = "https://example.ro:10000/session_login.cgi?session=0716555d6cd2")]
    url: String,
    #[schema(value_type = String, format = DateTime)]
    expires_at: jiff::Timestamp,
}

#[utoipa::path(post, path = "/api/v1/accounts/{id}/login-link/{job_id}/take", tag = "accounts",
    responses((status = 200, body = LoginLink), (status = 404, body = ErrorBody),
        (status = 410, description = "not made (yet), taken already, or expired (`login_link_gone`)", body = ErrorBody)))]
async fn take_login_link(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, job)): Path<(String, String)>,
) -> Reply<LoginLink> {
    let account: AccountId = path_id("account", &id)?;
    let job: JobId = path_id("job", &job)?;
    let ctx = caller.context();
    let link =
        crate::commands::take_login_link(&*app.store, &ctx, &app.sealer, account, job).await?;
    Ok(axum::Json(LoginLink {
        url: link.reveal().to_owned(),
        expires_at: link.expires_at,
    }))
}
