//! The routes of API v1 and their handlers: parse, call the store, shape the answer.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Router};
use drover_core::{
    AccountId, AccountPassword, CustomerId, CustomerSpec, DomainName, DomainWarning, JobId, PlanId,
    PlanPatch, PlanSpec, Scope, ServerId, ServerPatch, ServerSpec, ServiceId, ServiceStatus,
    SuspendReason, TokenId, Transition,
};
use drover_store::{
    Account, AccountFilter, ApiToken, AuditFilter, AuditReport, Customer, DriftRecord, JobAttempt,
    JobCall, JobFilter, JobState, JobSummary, Migration, NewService, Page, Plan, Server,
    ServerHealth, Service, ServiceFilter, TransitionOutcome, UsageFilter,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Query, path_id};
use super::middleware::Caller;

type Reply<T> = Result<axum::Json<T>, ApiError>;
type Created<T> = Result<(StatusCode, axum::Json<T>), ApiError>;

pub fn probes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

pub fn v1() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route(
            "/api/v1/customers",
            post(create_customer).get(list_customers),
        )
        .route("/api/v1/customers/{id}", get(get_customer))
        .route("/api/v1/plans", post(create_plan).get(list_plans))
        .route("/api/v1/plans/{id}", get(get_plan).patch(update_plan))
        .route("/api/v1/servers", post(create_server).get(list_servers))
        .route("/api/v1/servers/{id}", get(get_server).patch(update_server))
        .route("/api/v1/servers/{id}/health", get(server_health))
        .route("/api/v1/servers/{id}/maintenance", post(set_maintenance))
        .route("/api/v1/servers/{id}/allow-login", post(allow_login))
        .route("/api/v1/servers/{id}/drain", post(drain_server))
        .route(
            "/api/v1/servers/{id}/decommission",
            post(decommission_server),
        )
        .route("/api/v1/servers/{id}/rebuild", post(rebuild_server))
        .route("/api/v1/servers/{id}/drift-scan", post(scan_drift))
        .route("/api/v1/drift", get(list_drift))
        .route("/api/v1/servers/{id}/usage-sync", post(sync_usage))
        .route("/api/v1/usage", get(list_usage))
        .route("/api/v1/services/{id}/usage", get(service_usage))
        .route("/api/v1/services", post(create_service).get(list_services))
        .route("/api/v1/services/bulk", post(bulk_services))
        .route("/api/v1/services/{id}", get(get_service))
        .route("/api/v1/services/{id}/change-plan", post(change_plan))
        .route("/api/v1/services/{id}/password", post(change_password))
        .route("/api/v1/services/{id}/{action}", post(move_service))
        .route("/api/v1/accounts", get(list_accounts))
        .route("/api/v1/accounts/{id}", get(get_account))
        .route("/api/v1/accounts/{id}/protect", post(protect_account))
        .route("/api/v1/accounts/{id}/unprotect", post(unprotect_account))
        .route("/api/v1/accounts/{id}/migrate", post(migrate_account))
        .route("/api/v1/accounts/{id}/migration", get(get_migration))
        .route(
            "/api/v1/accounts/{id}/migration/confirm",
            post(confirm_migration),
        )
        .route("/api/v1/jobs", get(list_jobs))
        .route("/api/v1/jobs/{id}", get(get_job))
        .route("/api/v1/jobs/{id}/retry", post(retry_job))
        .route("/api/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/api/v1/provisioning", get(provisioning_status))
        .route("/api/v1/provisioning/pause", post(pause_provisioning))
        .route("/api/v1/provisioning/resume", post(resume_provisioning))
        .route("/api/v1/audit", get(list_audit))
        .route("/api/v1/audit/verify", get(verify_audit))
        .route("/api/v1/tokens", post(create_token).get(list_tokens))
        .route("/api/v1/tokens/{id}", axum::routing::delete(revoke_token))
}

pub async fn no_such_route(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route {}; the API is described at /api/v1/openapi.json",
        uri.path()
    ))
}

pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not allowed on {}; see /api/v1/openapi.json",
            uri.path()
        ),
    )
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "probes", security(()),
    responses((status = 200, description = "drover is running", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "probes", security(()),
    responses((status = 200, body = String), (status = 503, body = ErrorBody)))]
async fn readyz(State(app): State<AppState>) -> Result<&'static str, ApiError> {
    app.store
        .customers(Page::new(None, Some(1)))
        .await
        .map(|_| "ready")
        .map_err(|e| {
            tracing::warn!(error = %e, "not ready");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the database does not answer",
            )
        })
}

async fn openapi() -> impl IntoResponse {
    axum::Json(<super::ApiDoc as utoipa::OpenApi>::openapi())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    /// Return rows with an id above this one.
    after: Option<i64>,
    /// At most this many rows (default 100, at most 1000).
    limit: Option<u32>,
}

impl PageQuery {
    fn page(&self) -> Page {
        Page::new(self.after, self.limit)
    }
}

#[utoipa::path(post, path = "/api/v1/customers", tag = "customers", request_body = CustomerSpec,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry return the first answer")),
    responses((status = 201, body = Customer), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_customer(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(spec): Json<CustomerSpec>,
) -> Created<Customer> {
    let customer = app.store.create_customer(&caller.context(), spec).await?;
    Ok((StatusCode::CREATED, axum::Json(customer)))
}

#[utoipa::path(get, path = "/api/v1/customers", tag = "customers", params(PageQuery),
    responses((status = 200, body = [Customer])))]
async fn list_customers(
    State(app): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Reply<Vec<Customer>> {
    Ok(axum::Json(app.store.customers(query.page()).await?))
}

#[utoipa::path(get, path = "/api/v1/customers/{id}", tag = "customers",
    responses((status = 200, body = Customer), (status = 404, body = ErrorBody)))]
async fn get_customer(State(app): State<AppState>, Path(id): Path<String>) -> Reply<Customer> {
    let id: CustomerId = path_id("customer", &id)?;
    Ok(axum::Json(app.store.customer(id).await?))
}

#[utoipa::path(post, path = "/api/v1/plans", tag = "plans", request_body = PlanSpec,
    responses((status = 201, body = Plan), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_plan(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(spec): Json<PlanSpec>,
) -> Created<Plan> {
    let plan = app.store.create_plan(&caller.context(), spec).await?;
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

#[utoipa::path(patch, path = "/api/v1/plans/{id}", tag = "plans", request_body = PlanPatch,
    responses((status = 200, body = Plan), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_plan(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(patch): Json<PlanPatch>,
) -> Reply<Plan> {
    let id: PlanId = path_id("plan", &id)?;
    Ok(axum::Json(
        app.store.update_plan(&caller.context(), id, patch).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/servers", tag = "servers", request_body = ServerSpec,
    responses((status = 201, body = Server), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_server(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(spec): Json<ServerSpec>,
) -> Created<Server> {
    let server = app.store.create_server(&caller.context(), spec).await?;
    Ok((StatusCode::CREATED, axum::Json(server)))
}

#[utoipa::path(get, path = "/api/v1/servers", tag = "servers", params(PageQuery),
    responses((status = 200, body = [Server])))]
async fn list_servers(
    State(app): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Reply<Vec<Server>> {
    Ok(axum::Json(app.store.servers(query.page()).await?))
}

#[utoipa::path(get, path = "/api/v1/servers/{id}", tag = "servers",
    responses((status = 200, body = Server), (status = 404, body = ErrorBody)))]
async fn get_server(State(app): State<AppState>, Path(id): Path<String>) -> Reply<Server> {
    let id: ServerId = path_id("server", &id)?;
    Ok(axum::Json(app.store.server(id).await?))
}

#[utoipa::path(patch, path = "/api/v1/servers/{id}", tag = "servers", request_body = ServerPatch,
    responses((status = 200, body = Server), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_server(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(patch): Json<ServerPatch>,
) -> Reply<Server> {
    let id: ServerId = path_id("server", &id)?;
    Ok(axum::Json(
        app.store
            .update_server(&caller.context(), id, patch)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/servers/{id}/health", tag = "servers",
    responses((status = 200, body = ServerHealth), (status = 404, description = "no such server, or not checked yet", body = ErrorBody)))]
async fn server_health(State(app): State<AppState>, Path(id): Path<String>) -> Reply<ServerHealth> {
    let id: ServerId = path_id("server", &id)?;
    app.store.server(id).await?;
    match app.store.server_health(id).await? {
        Some(health) => Ok(axum::Json(health)),
        None => Err(ApiError::not_found(format!(
            "server {id} has not been checked yet; checks run every DROVER_HEALTH_INTERVAL"
        ))),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct DriftQuery {
    #[param(value_type = Option<i64>)]
    server_id: Option<ServerId>,
}

#[utoipa::path(get, path = "/api/v1/drift", tag = "servers", params(DriftQuery),
    responses((status = 200, description = "the findings of each server's last scan", body = [DriftRecord])))]
async fn list_drift(
    State(app): State<AppState>,
    Query(query): Query<DriftQuery>,
) -> Reply<Vec<DriftRecord>> {
    Ok(axum::Json(app.store.drift_findings(query.server_id).await?))
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/drift-scan", tag = "servers",
    responses((status = 202, description = "the scan-and-repair job", body = Accepted), (status = 404, body = ErrorBody)))]
async fn scan_drift(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Created<Accepted> {
    let id: ServerId = path_id("server", &id)?;
    let job_id = app
        .store
        .enqueue_drift_scan(&caller.context(), Some(id))
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(Accepted::new(job_id))))
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
) -> Created<Accepted> {
    let id: ServerId = path_id("server", &id)?;
    let job_id = app
        .store
        .enqueue_usage_sync(&caller.context(), Some(id))
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(Accepted::new(job_id))))
}

/// Where to move an account, and how long to keep its old copy unless confirmed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateRequest {
    #[schema(value_type = i64)]
    to_server: ServerId,
    /// Seconds [default: DROVER_MIGRATION_GRACE].
    grace_seconds: Option<u64>,
}

#[utoipa::path(post, path = "/api/v1/accounts/{id}/migrate", tag = "accounts", request_body = MigrateRequest,
    responses((status = 202, description = "the move's job", body = Accepted), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn migrate_account(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<MigrateRequest>,
) -> Created<Accepted> {
    let id: AccountId = path_id("account", &id)?;
    let grace = request
        .grace_seconds
        .map_or(app.migration_grace, std::time::Duration::from_secs);
    let (_, job_id) = app
        .store
        .start_migration(&caller.context(), id, request.to_server, grace)
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
) -> Created<Accepted> {
    let id: AccountId = path_id("account", &id)?;
    let job_id = app
        .store
        .confirm_migration(&caller.context(), id, &request.confirm_domain)
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(Accepted::new(job_id))))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// Only say what would move.
    #[serde(default)]
    dry_run: bool,
    /// Seconds to keep each old copy unless confirmed [default: DROVER_MIGRATION_GRACE].
    grace_seconds: Option<u64>,
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/drain", tag = "servers", request_body = DrainRequest,
    responses((status = 200, description = "the moves started (or that would be), and accounts no server can take now"),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn drain_server(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<DrainRequest>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let id: ServerId = path_id("server", &id)?;
    let server = app.store.server(id).await?;
    let grace = request
        .grace_seconds
        .map_or(app.migration_grace, std::time::Duration::from_secs);
    // Placement and the migrations' records only: the moves are carried out by jobs.
    let planner = crate::engine::drain::Planner {
        store: &*app.store,
        placement: app.placement,
    };
    let plan = planner
        .drain(&caller.context(), &server, grace, request.dry_run)
        .await?;
    Ok(axum::Json(serde_json::to_value(plan).unwrap_or_default()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RebuildRequest {
    /// The fresh server the accounts are recreated on.
    #[schema(value_type = i64)]
    onto: ServerId,
    /// Check and plan only.
    #[serde(default)]
    dry_run: bool,
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/rebuild", tag = "servers", request_body = RebuildRequest,
    responses((status = 200, description = "the checks and the plan; started unless a dry run or a problem"),
              (status = 404, body = ErrorBody), (status = 422, description = "accounts lack what recreation needs", body = ErrorBody)))]
async fn rebuild_server(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<RebuildRequest>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let id: ServerId = path_id("server", &id)?;
    let lost = app.store.server(id).await?;
    // drover's records only: the accounts are recreated by jobs.
    let plan = crate::engine::rebuild::rebuild(
        &*app.store,
        &caller.context(),
        &lost,
        request.onto,
        drover_virtualmin::VirtualminSettings::default().rate_qps,
        request.dry_run,
    )
    .await?;
    if !plan.problems.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rebuild_blocked",
            format!("the rebuild was not started: {}", plan.problems.join("; ")),
        ));
    }
    Ok(axum::Json(serde_json::to_value(plan).unwrap_or_default()))
}

/// The server's name, repeated.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecommissionRequest {
    confirm_name: String,
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/decommission", tag = "servers", request_body = DecommissionRequest,
    responses((status = 200, body = Server), (status = 409, description = "accounts remain on it", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn decommission_server(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<DecommissionRequest>,
) -> Reply<Server> {
    let id: ServerId = path_id("server", &id)?;
    let server = app.store.server(id).await?;
    if request.confirm_name != server.spec.name.to_string() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "confirmation_mismatch",
            format!(
                "confirm_name must repeat the server's name ({})",
                server.spec.name
            ),
        )
        .with_field("confirm_name"));
    }
    Ok(axum::Json(
        app.store.decommission(&caller.context(), id).await?,
    ))
}

/// Maintenance on (`true`) or off.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    on: bool,
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/maintenance", tag = "servers",
    request_body = MaintenanceRequest,
    responses((status = 200, body = Server), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn set_maintenance(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<MaintenanceRequest>,
) -> Reply<Server> {
    let id: ServerId = path_id("server", &id)?;
    Ok(axum::Json(
        app.store
            .set_maintenance(&caller.context(), id, request.on)
            .await?,
    ))
}

/// Lets drover try to log in to a server that refused it (after fixing its credentials on the
/// server's side, or once a lock-out has passed).
#[utoipa::path(post, path = "/api/v1/servers/{id}/allow-login", tag = "servers",
    responses((status = 200, body = Server), (status = 404, body = ErrorBody)))]
async fn allow_login(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Reply<Server> {
    let id: ServerId = path_id("server", &id)?;
    Ok(axum::Json(
        app.store.clear_login_refused(&caller.context(), id).await?,
    ))
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

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceCreated {
    #[serde(flatten)]
    service: Service,
    /// Things about the domain that are legal but may be a mistake.
    warnings: Vec<DomainWarning>,
}

#[utoipa::path(post, path = "/api/v1/services", tag = "services", request_body = NewServiceRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry return the first answer")),
    responses((status = 201, body = ServiceCreated), (status = 409, description = "domain already hosted", body = ErrorBody),
        (status = 422, description = "invalid domain, unknown plan or customer", body = ErrorBody)))]
async fn create_service(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(request): Json<NewServiceRequest>,
) -> Created<ServiceCreated> {
    let domain = DomainName::parse(&request.domain)?;
    let warnings = domain.warnings();
    let new = NewService {
        customer_id: request.customer_id,
        plan_id: request.plan_id,
        domain,
    };
    let service = app.store.create_service(&caller.context(), new).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ServiceCreated { service, warnings }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ServiceQuery {
    #[param(value_type = Option<i64>)]
    customer_id: Option<CustomerId>,
    #[param(value_type = Option<String>)]
    status: Option<ServiceStatus>,
    after: Option<i64>,
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
) -> Created<TransitionOutcome> {
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
    let reason = request
        .reason
        .as_deref()
        .map(SuspendReason::parse)
        .transpose()?;
    let outcome = app
        .store
        .transition_service(
            &caller.context(),
            id,
            transition,
            reason.map(SuspendReason::into_string),
        )
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(outcome)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct AccountQuery {
    /// Unicode or punycode.
    domain: Option<String>,
    #[param(value_type = Option<i64>)]
    server_id: Option<ServerId>,
    /// Only accounts whose last converge job gave up (the server does not match them).
    #[serde(default)]
    failed: bool,
    after: Option<i64>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts", params(AccountQuery),
    responses((status = 200, body = [Account]), (status = 422, body = ErrorBody)))]
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct JobQuery {
    /// Comma-separated River states: available, scheduled, running, retryable, completed,
    /// discarded, cancelled, pending.
    status: Option<String>,
    #[param(value_type = Option<i64>)]
    account_id: Option<AccountId>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobQuery),
    responses((status = 200, body = [JobSummary]), (status = 400, body = ErrorBody)))]
async fn list_jobs(
    State(app): State<AppState>,
    Query(query): Query<JobQuery>,
) -> Reply<Vec<JobSummary>> {
    let states = match &query.status {
        None => Vec::new(),
        Some(list) => parse_job_states(list)?,
    };
    let filter = JobFilter {
        states,
        account_id: query.account_id,
        limit: query.limit,
    };
    Ok(axum::Json(app.store.jobs(filter).await?))
}

pub fn parse_job_states(list: &str) -> Result<Vec<JobState>, ApiError> {
    list.split(',')
        .map(|s| {
            s.trim().parse::<JobState>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!(
                        "status '{s}' is not a job state; use available, scheduled, running, \
                         retryable, completed, discarded, cancelled or pending"
                    ),
                )
                .with_field("status")
            })
        })
        .collect()
}

/// A job with the Virtualmin calls it made (secrets masked).
#[derive(Debug, Serialize, ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    job: JobSummary,
    /// How each attempt ended, oldest first.
    attempts: Vec<JobAttempt>,
    calls: Vec<JobCall>,
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    responses((status = 200, body = JobDetail), (status = 404, body = ErrorBody)))]
async fn get_job(State(app): State<AppState>, Path(id): Path<String>) -> Reply<JobDetail> {
    let id: JobId = path_id("job", &id)?;
    let job = app.store.job(id).await?;
    let attempts = app.store.job_attempts(id).await?;
    let calls = app.store.job_calls(id).await?;
    Ok(axum::Json(JobDetail {
        job,
        attempts,
        calls,
    }))
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs",
    responses((status = 200, body = JobSummary), (status = 404, body = ErrorBody)))]
async fn retry_job(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Reply<JobSummary> {
    let id: JobId = path_id("job", &id)?;
    Ok(axum::Json(
        app.store.retry_job(&caller.context(), id).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    responses((status = 200, body = JobSummary), (status = 404, body = ErrorBody)))]
async fn cancel_job(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Reply<JobSummary> {
    let id: JobId = path_id("job", &id)?;
    Ok(axum::Json(
        app.store.cancel_job(&caller.context(), id).await?,
    ))
}

/// A new plan for a service.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePlanRequest {
    #[schema(value_type = i64)]
    plan_id: PlanId,
}

#[utoipa::path(post, path = "/api/v1/services/{id}/change-plan", tag = "services",
    request_body = ChangePlanRequest,
    responses((status = 202, body = TransitionOutcome), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn change_plan(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<ChangePlanRequest>,
) -> Created<TransitionOutcome> {
    let id: ServiceId = path_id("service", &id)?;
    let outcome = app
        .store
        .change_plan(&caller.context(), id, request.plan_id)
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

/// The job that sets it on the server.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    #[schema(value_type = i64)]
    job_id: JobId,
}

impl Accepted {
    pub fn new(job_id: JobId) -> Self {
        Self { job_id }
    }
}

#[utoipa::path(post, path = "/api/v1/services/{id}/password", tag = "services",
    request_body = PasswordRequest,
    responses((status = 202, body = Accepted), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn change_password(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<PasswordRequest>,
) -> Created<Accepted> {
    let id: ServiceId = path_id("service", &id)?;
    let password = AccountPassword::parse(request.password)?;
    let service = app.store.service(id).await?;
    let sealed = app.sealer.seal(password.secret());
    let job_id = app
        .store
        .change_password(&caller.context(), service.account_id, &sealed)
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(Accepted { job_id })))
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
    let id: AccountId = path_id("account", &id)?;
    let account = app
        .store
        .set_protection(&caller.context(), id, true, &request.confirm_domain)
        .await?;
    Ok(axum::Json(account))
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
    let id: AccountId = path_id("account", &id)?;
    let account = app
        .store
        .set_protection(&caller.context(), id, false, &request.confirm_domain)
        .await?;
    Ok(axum::Json(account))
}

/// Whether provisioning runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProvisioningStatus {
    /// `null` before any worker has run.
    paused: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/provisioning", tag = "provisioning",
    responses((status = 200, body = ProvisioningStatus)))]
async fn provisioning_status(State(app): State<AppState>) -> Reply<ProvisioningStatus> {
    Ok(axum::Json(ProvisioningStatus {
        paused: app.store.provisioning_paused().await?,
    }))
}

/// The emergency stop: provisioning jobs wait until resumed.
#[utoipa::path(post, path = "/api/v1/provisioning/pause", tag = "provisioning",
    responses((status = 200, body = ProvisioningStatus), (status = 409, body = ErrorBody)))]
async fn pause_provisioning(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Reply<ProvisioningStatus> {
    app.store
        .set_provisioning_paused(&caller.context(), true)
        .await?;
    provisioning_status(State(app)).await
}

#[utoipa::path(post, path = "/api/v1/provisioning/resume", tag = "provisioning",
    responses((status = 200, body = ProvisioningStatus), (status = 409, body = ErrorBody)))]
async fn resume_provisioning(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Reply<ProvisioningStatus> {
    app.store
        .set_provisioning_paused(&caller.context(), false)
        .await?;
    provisioning_status(State(app)).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Like `service:7` or `server:2`.
    subject: Option<String>,
    after: Option<i64>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = [drover_core::AuditEntry])))]
async fn list_audit(
    State(app): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> Reply<Vec<drover_core::AuditEntry>> {
    let filter = AuditFilter {
        subject: query.subject,
        page: Page::new(query.after, query.limit),
    };
    Ok(axum::Json(app.store.audit_events(filter).await?))
}

#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = AuditReport)))]
async fn verify_audit(State(app): State<AppState>) -> Reply<AuditReport> {
    Ok(axum::Json(app.store.verify_audit().await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    /// Who or what uses the token, like `billing`.
    name: String,
    scope: Scope,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated {
    #[serde(flatten)]
    token: ApiToken,
    /// Shown once; drover keeps only its hash.
    secret: String,
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewTokenRequest,
    responses((status = 201, body = TokenCreated), (status = 422, body = ErrorBody)))]
async fn create_token(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(request): Json<NewTokenRequest>,
) -> Created<TokenCreated> {
    use secrecy::ExposeSecret;
    let (token, secret) = app
        .store
        .create_token(&caller.context(), &request.name, request.scope)
        .await?;
    let secret = secret.expose_secret().to_owned();
    Ok((
        StatusCode::CREATED,
        axum::Json(TokenCreated { token, secret }),
    ))
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = [ApiToken])))]
async fn list_tokens(State(app): State<AppState>) -> Reply<Vec<ApiToken>> {
    Ok(axum::Json(app.store.tokens().await?))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    responses((status = 200, body = ApiToken), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Reply<ApiToken> {
    let id: TokenId = path_id("token", &id)?;
    Ok(axum::Json(
        app.store.revoke_token(&caller.context(), id).await?,
    ))
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
    #[schema(value_type = Vec<Vec<i64>>)]
    queued: Vec<(ServiceId, JobId)>,
    #[schema(value_type = Vec<Vec<String>>)]
    refused: Vec<(ServiceId, String)>,
}

#[utoipa::path(post, path = "/api/v1/services/bulk", tag = "services", request_body = BulkRequest,
    responses((status = 202, body = BulkAccepted), (status = 422, body = ErrorBody)))]
async fn bulk_services(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(request): Json<BulkRequest>,
) -> Created<BulkAccepted> {
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
