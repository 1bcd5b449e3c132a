//! Webhook endpoints: where drover's events go (operators manage them; a secret is shown only
//! when it is made), each delivery's tries, and sending again.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drover_core::{DeliveryId, WebhookEndpointId};
use drover_store::{Delivery, DeliveryFilter, Page, WebhookEndpoint};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::extract::{Json, Query, path_id};
use super::middleware::Caller;
use super::shared::{PageQuery, Reply, WithStatus};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookRequest {
    /// `https://…`; `http://` only to this machine, with `allow_http`.
    url: String,
    /// The event types to send (see `WebhookEvent`); none or empty: every type.
    #[serde(default)]
    event_types: Vec<String>,
    /// Accept an `http://` URL to this machine (localhost, 127.0.0.1, [::1]).
    #[serde(default)]
    allow_http: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    endpoint: WebhookEndpoint,
    /// Shown once: each delivery's `Drover-Signature` is its HMAC-SHA256. drover keeps it
    /// sealed.
    secret: String,
}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = NewWebhookRequest,
    responses((status = 201, body = WebhookWithSecret), (status = 422, body = ErrorBody)))]
async fn create_webhook(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(request): Json<NewWebhookRequest>,
) -> WithStatus<WebhookWithSecret> {
    let new = crate::commands::NewEndpoint {
        url: &request.url,
        event_types: &request.event_types,
        allow_http: request.allow_http,
    };
    let (endpoint, secret) =
        crate::commands::create_webhook_endpoint(&*app.store, &app.sealer, &caller.context(), &new)
            .await?;
    let secret = secret.expose_secret().to_owned();
    Ok((
        StatusCode::CREATED,
        axum::Json(WebhookWithSecret { endpoint, secret }),
    ))
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", params(PageQuery),
    responses((status = 200, description = "the endpoints, by id", body = [WebhookEndpoint])))]
async fn list_webhooks(
    State(app): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Reply<Vec<WebhookEndpoint>> {
    Ok(axum::Json(app.store.webhook_endpoints(query.page()).await?))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    responses((status = 200, body = WebhookEndpoint), (status = 404, body = ErrorBody)))]
async fn get_webhook(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Reply<WebhookEndpoint> {
    let id: WebhookEndpointId = path_id("webhook endpoint", &id)?;
    Ok(axum::Json(app.store.webhook_endpoint(id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    url: Option<String>,
    /// With `url`: accept `http://` to this machine.
    #[serde(default)]
    allow_http: bool,
    /// Empty: every type.
    event_types: Option<Vec<String>>,
    /// Resuming sends what waited, oldest first.
    paused: Option<bool>,
}

#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", request_body = WebhookPatch,
    responses((status = 200, body = WebhookEndpoint), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update_webhook(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(patch): Json<WebhookPatch>,
) -> Reply<WebhookEndpoint> {
    let id: WebhookEndpointId = path_id("webhook endpoint", &id)?;
    Ok(axum::Json(
        crate::commands::update_webhook_endpoint(
            &*app.store,
            &caller.context(),
            id,
            patch.url.as_deref().map(|u| (u, patch.allow_http)),
            patch.event_types.as_deref(),
            patch.paused,
        )
        .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    responses((status = 204, description = "the endpoint and its deliveries are gone"),
        (status = 404, body = ErrorBody)))]
async fn delete_webhook(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, super::error::ApiError> {
    let id: WebhookEndpointId = path_id("webhook endpoint", &id)?;
    app.store
        .delete_webhook_endpoint(&caller.context(), id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the old secret still signs beside the new one: a day unless said.
    #[schema(minimum = 0)]
    previous_valid_seconds: Option<u64>,
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    request_body = RotateRequest,
    responses((status = 200, description = "the new secret, shown once; until \
        `previous_secret_valid_until` each delivery is signed with both", body = WebhookWithSecret),
        (status = 404, body = ErrorBody)))]
async fn rotate_secret(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<RotateRequest>,
) -> Reply<WebhookWithSecret> {
    let id: WebhookEndpointId = path_id("webhook endpoint", &id)?;
    let valid_for = request.previous_valid_seconds.map_or(
        crate::commands::PREVIOUS_SECRET_VALID_FOR,
        std::time::Duration::from_secs,
    );
    let (endpoint, secret) = crate::commands::rotate_webhook_secret(
        &*app.store,
        &app.sealer,
        &caller.context(),
        id,
        valid_for,
    )
    .await?;
    let secret = secret.expose_secret().to_owned();
    Ok(axum::Json(WebhookWithSecret { endpoint, secret }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct DeliveryQuery {
    /// Only those not delivered whose last try failed.
    #[serde(default)]
    failed: bool,
    /// A delivery id: the page starts after it.
    after: Option<i64>,
    /// At most this many rows: 100 unless said; 0 is taken as 1 and more than 1000 as 1000.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(DeliveryQuery),
    responses((status = 200, description = "the endpoint's deliveries by id, each with its last \
        try: status, error, time taken and the first kilobyte of the answer", body = [Delivery]),
        (status = 404, body = ErrorBody)))]
async fn list_deliveries(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<DeliveryQuery>,
) -> Reply<Vec<Delivery>> {
    let id: WebhookEndpointId = path_id("webhook endpoint", &id)?;
    app.store.webhook_endpoint(id).await?;
    let filter = DeliveryFilter {
        endpoint: Some(id),
        failed: query.failed,
        page: Page::new(query.after, query.limit),
    };
    Ok(axum::Json(app.store.webhook_deliveries(&filter).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeliverRequest {
    /// Send this delivery again (even one that got through).
    #[schema(value_type = Option<i64>)]
    delivery_id: Option<DeliveryId>,
    /// Or: try now those whose last try failed since this time (RFC 3339); neither: all that
    /// failed.
    #[schema(value_type = Option<String>, format = DateTime)]
    failed_since: Option<jiff::Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivered {
    /// How many deliveries are sent again.
    count: u64,
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/redeliver", tag = "webhooks",
    request_body = RedeliverRequest,
    responses((status = 202, body = Redelivered), (status = 404, body = ErrorBody)))]
async fn redeliver(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(request): Json<RedeliverRequest>,
) -> WithStatus<Redelivered> {
    let id: WebhookEndpointId = path_id("webhook endpoint", &id)?;
    let count = crate::commands::redeliver_webhooks(
        &*app.store,
        &caller.context(),
        id,
        request.delivery_id,
        request.failed_since,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(Redelivered { count })))
}

/// The events' shapes, published in the OpenAPI document. Described, never built: events are
/// written as JSON with the change that causes them (`drover_store::NewEvent`), and the
/// webhook test holds what receivers get to these fields.
#[allow(dead_code)]
pub mod events {
    use serde::Serialize;
    use utoipa::ToSchema;

    /// What a receiver gets: `POST` with this body, `Content-Type: application/json`,
    /// `Drover-Event-Id` (the same on every try: de-duplicate by it), `Drover-Event-Type` and
    /// `Drover-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (a second `v1`
    /// while a rotated secret still signs). Any 2xx answer is a delivery; anything else is tried
    /// again with a growing wait, each account's events in order.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct WebhookEvent {
        /// The event's id.
        id: i64,
        #[serde(rename = "type")]
        #[schema(value_type = String, example = "account.suspended")]
        event_type: String,
        #[schema(value_type = String, format = DateTime)]
        created_at: jiff::Timestamp,
        account_id: Option<i64>,
        data: EventData,
    }

    /// An event's own fields, by its type.
    #[derive(Debug, Serialize, ToSchema)]
    #[serde(untagged)]
    pub enum EventData {
        Account(AccountEvent),
        Server(ServerStateChanged),
        Drift(DriftFound),
        Failover(ServerFailover),
        Usage(UsageUpdated),
    }

    /// `account.provisioned`, `.suspended`, `.unsuspended`, `.deleted` (with `state` and
    /// `generation`: the server reached them), `account.failed` and
    /// `account.protected_deletion_held` (with `reason`), `account.resource_changed` (with
    /// `kind`, `name`, `change` and the `job_id` that carries it to the server),
    /// `backup.failed` (with `backup_id`, `archive` and `message`).
    #[derive(Debug, Serialize, ToSchema)]
    pub struct AccountEvent {
        account_id: i64,
        service_id: i64,
        /// In punycode.
        domain: String,
        server_id: Option<i64>,
        /// `enabled`, `disabled` or `absent`.
        state: Option<String>,
        generation: Option<i64>,
        reason: Option<String>,
        backup_id: Option<i64>,
        archive: Option<String>,
        message: Option<String>,
        /// `mailbox`, `database`, `alias` or `subserver`.
        kind: Option<String>,
        name: Option<String>,
        /// `created` or `deleted`.
        change: Option<String>,
        job_id: Option<i64>,
    }

    /// `server.state_changed`.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct ServerStateChanged {
        server_id: i64,
        name: String,
        from: String,
        to: String,
        reasons: Vec<String>,
    }

    /// `drift.found`: the findings of one scan, counted by kind.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct DriftFound {
        server_id: i64,
        findings: std::collections::BTreeMap<String, u64>,
    }

    /// `server.failover_started` (with `accounts` being recreated elsewhere and `unplaced`
    /// ones no server can take yet) and `server.failover_complete` (with
    /// `seconds_since_unavailable`: the time to recovery).
    #[derive(Debug, Serialize, ToSchema)]
    pub struct ServerFailover {
        server_id: i64,
        name: String,
        accounts: Option<u64>,
        unplaced: Option<u64>,
        seconds_since_unavailable: Option<f64>,
    }

    /// `usage.updated`: a sync refreshed this many accounts' figures on the server.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct UsageUpdated {
        server_id: i64,
        accounts: u64,
    }
}
