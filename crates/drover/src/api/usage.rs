//! Usage: the disk and bandwidth figures servers report for each account.

use crate::commands::Requested;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drover_core::{ServerId, ServiceId};
use drover_store::{Page, UsageFilter};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{Query, path_id};
use super::middleware::Caller;
use super::shared::{Accepted, Reply, WithStatus, queue};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_usage))
        .routes(routes!(service_usage))
        .routes(routes!(sync_usage))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    /// The server the figures came from.
    #[param(value_type = Option<i64>)]
    server_id: Option<ServerId>,
    #[param(value_type = Option<i64>)]
    service_id: Option<ServiceId>,
    /// An account id: the page starts after it.
    after: Option<i64>,
    /// At most this many rows: 100 unless said; 0 is taken as 1 and more than 1000 as 1000.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/usage", tag = "usage", params(UsageQuery),
    responses((status = 200, description = "each account's last figures, by account id; a null \
               figure is one its server does not measure", body = [drover_store::AccountUsage])))]
async fn list_usage(
    State(app): State<AppState>,
    Query(query): Query<UsageQuery>,
) -> Reply<Vec<drover_store::AccountUsage>> {
    let filter = UsageFilter {
        server_id: query.server_id,
        service_id: query.service_id,
        page: Page::new(query.after, query.limit),
    };
    Ok(axum::Json(app.store.usage(filter).await?))
}

#[utoipa::path(get, path = "/api/v1/services/{id}/usage", tag = "usage",
    responses((status = 200, body = drover_store::AccountUsage),
              (status = 404, description = "no such service, or not measured yet", body = ErrorBody)))]
async fn service_usage(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Reply<drover_store::AccountUsage> {
    let id: ServiceId = path_id("service", &id)?;
    let service = app.store.service(id).await?;
    let filter = UsageFilter {
        service_id: Some(id),
        ..UsageFilter::default()
    };
    match app.store.usage(filter).await?.pop() {
        Some(usage) => Ok(axum::Json(usage)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_measured",
            format!(
                "no usage measured yet for service {id} ({}): figures arrive with the next \
                 usage sync of its server (every DROVER_USAGE_INTERVAL, or POST \
                 /api/v1/servers/{{id}}/usage-sync)",
                service.domain
            ),
        )),
    }
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/usage-sync", tag = "usage",
    responses((status = 202, description = "the sync's job", body = Accepted), (status = 404, body = ErrorBody)))]
async fn sync_usage(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> WithStatus<Accepted> {
    let id: ServerId = path_id("server", &id)?;
    queue(&app, &caller, Requested::UsageSync { server: Some(id) }).await
}
