//! Plans: what a service includes and what a server must offer to host it.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drover_core::{PlanId, PlanPatch, PlanSpec};
use drover_store::Plan;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::extract::{Json, Query, path_id};
use super::middleware::Caller;
use super::shared::{PageQuery, Reply, WithStatus};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_plan, list_plans))
        .routes(routes!(get_plan, update_plan))
}

#[utoipa::path(post, path = "/api/v1/plans", tag = "plans", request_body = PlanSpec,
    responses((status = 201, body = Plan), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_plan(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(spec): Json<PlanSpec>,
) -> WithStatus<Plan> {
    let plan = crate::commands::create_plan(&*app.store, &caller.context(), spec).await?;
    Ok((StatusCode::CREATED, axum::Json(plan)))
}

#[utoipa::path(get, path = "/api/v1/plans", tag = "plans", params(PageQuery),
    responses((status = 200, body = [Plan])))]
async fn list_plans(
    State(app): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Reply<Vec<Plan>> {
    Ok(axum::Json(app.store.plans(query.page()).await?))
}

#[utoipa::path(get, path = "/api/v1/plans/{id}", tag = "plans",
    responses((status = 200, body = Plan), (status = 404, body = ErrorBody)))]
async fn get_plan(State(app): State<AppState>, Path(id): Path<String>) -> Reply<Plan> {
    let id: PlanId = path_id("plan", &id)?;
    Ok(axum::Json(app.store.plan(id).await?))
}

/// How a plan's edit treats accounts it would leave over their limits.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct UpdatePlanQuery {
    /// Change even if accounts on the plan hold more than it would allow: nothing is deleted,
    /// and those accounts are flagged over their limits (`over_limit`).
    #[serde(default)]
    force: bool,
}

#[utoipa::path(patch, path = "/api/v1/plans/{id}", tag = "plans", request_body = PlanPatch,
    params(UpdatePlanQuery),
    responses((status = 200, body = Plan), (status = 404, body = ErrorBody),
        (status = 409, description = "accounts on the plan hold more than it would allow (`plan_too_small`), unless forced", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update_plan(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<UpdatePlanQuery>,
    Json(patch): Json<PlanPatch>,
) -> Reply<Plan> {
    let id: PlanId = path_id("plan", &id)?;
    let context = caller.context();
    let plan = crate::commands::update_plan(&*app.store, &context, id, patch, query.force).await?;
    Ok(axum::Json(plan))
}
