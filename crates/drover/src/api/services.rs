//! Services: what billing sells, moved through its lifecycle; each move is recorded and the
//! job that makes the server follow is queued in the same transaction.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drover_core::{CustomerId, JobId, PlanId, ServiceId, ServiceStatus, SuspendReason, Transition};
use drover_store::{Page, Service, ServiceFilter, TransitionOutcome};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Query, path_id};
use super::middleware::Caller;
use super::shared::{Accepted, Reply, WithStatus};
use crate::commands::ServiceCreated;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_service, list_services))
        .routes(routes!(bulk_services))
        .routes(routes!(get_service))
        .routes(routes!(move_service))
        .routes(routes!(change_plan))
        .routes(routes!(change_password))
}

/// A new service: the customer, the plan and the domain its account will host.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewServiceRequest {
    #[schema(value_type = i64)]
    customer_id: CustomerId,
    #[schema(value_type = i64)]
    plan_id: PlanId,
    /// Unicode or punycode; stored as punycode. Parsed by the handler, so a bad one gets the
    /// same answer as from the command line.
    #[schema(example = "știri.ro")]
    domain: String,
}

#[utoipa::path(post, path = "/api/v1/services", tag = "services", request_body = NewServiceRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry return the first answer")),
    responses((status = 201, body = ServiceCreated), (status = 409, description = "domain already hosted", body = ErrorBody),
        (status = 422, description = "invalid domain, unknown plan or customer", body = ErrorBody)))]
async fn create_service(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(request): Json<NewServiceRequest>,
) -> WithStatus<ServiceCreated> {
    let created = crate::commands::create_service(
        &*app.store,
        &caller.context(),
        request.customer_id,
        request.plan_id,
        &request.domain,
        app.settings.refuse_confusable,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ServiceQuery {
    #[param(value_type = Option<i64>)]
    customer_id: Option<CustomerId>,
    #[param(value_type = Option<ServiceStatus>)]
    status: Option<ServiceStatus>,
    after: Option<i64>,
    /// At most this many rows: 100 unless said; 0 is taken as 1 and more than 1000 as 1000.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/services", tag = "services", params(ServiceQuery),
    responses((status = 200, body = [Service])))]
async fn list_services(
    State(app): State<AppState>,
    Query(query): Query<ServiceQuery>,
) -> Reply<Vec<Service>> {
    let filter = ServiceFilter {
        customer_id: query.customer_id,
        status: query.status,
        page: Page::new(query.after, query.limit),
    };
    Ok(axum::Json(app.store.services(filter).await?))
}

#[utoipa::path(get, path = "/api/v1/services/{id}", tag = "services",
    responses((status = 200, body = Service), (status = 404, body = ErrorBody)))]
async fn get_service(State(app): State<AppState>, Path(id): Path<String>) -> Reply<Service> {
    let id: ServiceId = path_id("service", &id)?;
    Ok(axum::Json(app.store.service(id).await?))
}

/// Optional details of a lifecycle move.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// Why the service is suspended; kept on the account and shown on the server.
    reason: Option<String>,
}

/// Moves a service through billing's lifecycle. Answers 202: the change is recorded and the
/// job that makes the server follow is queued.
#[utoipa::path(post, path = "/api/v1/services/{id}/{action}", tag = "services",
    params(("action" = String, Path, description = "activate, suspend, unsuspend or terminate"),
        ("Idempotency-Key" = Option<String>, Header, description = "makes a retry return the first answer")),
    request_body(content = Option<MoveRequest>),
    responses((status = 202, body = TransitionOutcome), (status = 404, body = ErrorBody),
        (status = 409, description = "illegal move for the current status", body = ErrorBody)))]
async fn move_service(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> WithStatus<TransitionOutcome> {
    let id: ServiceId = path_id("service", &id)?;
    let transition = Transition::parse(&action).map_err(|_| {
        ApiError::not_found(format!(
            "no action '{action}' on services; use activate, suspend, unsuspend or terminate"
        ))
    })?;
    let request: MoveRequest = if body.iter().all(u8::is_ascii_whitespace) {
        MoveRequest::default()
    } else {
        super::extract::parse_json(&body)?
    };
    let outcome = crate::commands::transition_service(
        &*app.store,
        &caller.context(),
        id,
        transition,
        request.reason.as_deref(),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(outcome)))
}

/// A new plan for a service.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePlanRequest {
    #[schema(value_type = i64)]
    plan_id: PlanId,
    /// Change even if the account holds more than the new plan allows: nothing is deleted,
    /// and the account is flagged over its limits (`over_limit`).
    #[serde(default)]
    force: bool,
}

#[utoipa::path(post, path = "/api/v1/services/{id}/change-plan", tag = "services",
    request_body = ChangePlanRequest,
    responses((status = 202, body = TransitionOutcome), (status = 404, body = ErrorBody),
        (status = 409, description = "the account holds more than the new plan allows (`plan_too_small`), unless forced", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn change_plan(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<ChangePlanRequest>,
) -> WithStatus<TransitionOutcome> {
    let id: ServiceId = path_id("service", &id)?;
    let outcome = crate::commands::change_plan(
        &*app.store,
        &caller.context(),
        id,
        request.plan_id,
        request.force,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(outcome)))
}

/// A new password for the service's account: sealed at once, never stored in clear, never
/// returned.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    #[schema(value_type = String, format = Password)]
    password: secrecy::SecretString,
}

#[utoipa::path(post, path = "/api/v1/services/{id}/password", tag = "services",
    request_body = PasswordRequest,
    responses((status = 202, body = Accepted), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn change_password(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<PasswordRequest>,
) -> WithStatus<Accepted> {
    let id: ServiceId = path_id("service", &id)?;
    let job_id = crate::commands::change_password(
        &*app.store,
        &caller.context(),
        &app.sealer,
        id,
        request.password,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(Accepted::new(job_id))))
}

/// Many services at once: `action` is suspend, unsuspend or change-plan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    action: String,
    #[schema(value_type = Vec<i64>)]
    service_ids: Vec<ServiceId>,
    /// For suspend.
    reason: Option<String>,
    /// For change-plan.
    #[schema(value_type = Option<i64>)]
    plan_id: Option<PlanId>,
}

/// What was queued (service, job) and what was refused at once (service, reason); follow the
/// jobs for the rest.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkAccepted {
    total: usize,
    /// Each as `[service id, job id]`.
    #[schema(value_type = Vec<Vec<i64>>)]
    queued: Vec<(ServiceId, JobId)>,
    /// Each as `[service id, reason]`.
    #[schema(value_type = Vec<Vec<Value>>)]
    refused: Vec<(ServiceId, String)>,
}

#[utoipa::path(post, path = "/api/v1/services/bulk", tag = "services", request_body = BulkRequest,
    responses((status = 202, body = BulkAccepted), (status = 422, body = ErrorBody)))]
async fn bulk_services(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(request): Json<BulkRequest>,
) -> WithStatus<BulkAccepted> {
    use crate::bulk::BulkAction;
    let action = match (request.action.as_str(), request.plan_id) {
        ("suspend", _) => BulkAction::Suspend {
            reason: request
                .reason
                .as_deref()
                .map(SuspendReason::parse)
                .transpose()?,
        },
        ("unsuspend", _) => BulkAction::Unsuspend,
        ("change-plan", Some(plan)) => BulkAction::ChangePlan { plan },
        (action, _) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_value",
                format!("action '{action}': use suspend, unsuspend, or change-plan with plan_id"),
            )
            .with_field("action"));
        }
    };
    if request.service_ids.is_empty() || request.service_ids.len() > 10_000 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
            "service_ids: 1 to 10,000 service ids",
        )
        .with_field("service_ids"));
    }
    let queued = crate::bulk::queue(
        &*app.store,
        &caller.context(),
        &action,
        &request.service_ids,
        // An HTTP request queues every change it names: nothing here interrupts it.
        &crate::bulk::Interrupt::default(),
    )
    .await;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(BulkAccepted {
            total: queued.total,
            queued: queued.queued,
            refused: queued.refused,
        }),
    ))
}
