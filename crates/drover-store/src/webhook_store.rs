//! Events for billing and monitoring: the outbox every change writes to, the endpoints they
//! are sent to, and each delivery's tries.

use async_trait::async_trait;
use drover_core::{AccountId, DeliveryId, EventId, EventType, WebhookEndpointId, WebhookUrl};
use jiff::Timestamp;
use serde::Serialize;

use crate::{Page, RequestContext, Result};

/// A receiver of drover's events. Its secrets are never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookEndpoint {
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub id: WebhookEndpointId,
    pub url: String,
    /// The event types sent; empty: every type.
    pub event_types: Vec<String>,
    /// Nothing is sent while paused; events are kept and sent once it is resumed.
    pub paused: bool,
    pub paused_reason: Option<String>,
    /// The first failed try since the last delivery that got through.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub failing_since: Option<Timestamp>,
    /// Until when the secret replaced by the last rotation still signs, beside the new one.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub previous_secret_valid_until: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// An endpoint as it is recorded, its secret sealed with drover's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhookEndpoint {
    pub url: WebhookUrl,
    pub event_types: Vec<EventType>,
    pub sealed_secret: Vec<u8>,
    pub key_id: String,
}

/// What an operator changes on an endpoint; `None` keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookEndpointPatch {
    pub url: Option<WebhookUrl>,
    pub event_types: Option<Vec<EventType>>,
    /// Resuming clears the failure and sends what waited.
    pub paused: Option<bool>,
}

/// The sealed secrets that sign a delivery now: the current one, and the one it replaced
/// while that is still valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedWebhookSecrets {
    pub current: Vec<u8>,
    pub previous: Option<Vec<u8>>,
}

/// An event to record with the change that causes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: EventType,
    /// The account it is about: events of one account reach each endpoint in order.
    pub account: Option<AccountId>,
    /// What it is about, as the audit log names it (`account:7`, `server:2`).
    pub subject: String,
    /// The event's own fields.
    pub data: serde_json::Value,
}

impl NewEvent {
    /// A server moved from the state it had (`before`) to `to`, for these reasons.
    pub fn server_state_changed(
        before: &crate::Server,
        to: drover_core::ServerState,
        reasons: &[String],
    ) -> Self {
        Self {
            event_type: EventType::ServerStateChanged,
            account: None,
            subject: format!("server:{}", before.id),
            data: serde_json::json!({
                "server_id": before.id,
                "name": before.spec.name,
                "from": before.state,
                "to": to,
                "reasons": reasons,
            }),
        }
    }

    /// Something happened to an account: `details` joins its identity.
    pub fn account(
        event_type: EventType,
        account: &crate::Account,
        details: serde_json::Value,
    ) -> Self {
        let mut data = serde_json::json!({
            "account_id": account.id,
            "service_id": account.service_id,
            "domain": account.domain.as_str(),
            "server_id": account.server_id,
        });
        if let (Some(data), serde_json::Value::Object(details)) = (data.as_object_mut(), details) {
            data.extend(details);
        }
        Self {
            event_type,
            account: Some(account.id),
            subject: format!("account:{}", account.id),
            data,
        }
    }
}

/// One event's delivery to one endpoint, with its last try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub id: DeliveryId,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub endpoint_id: WebhookEndpointId,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub event_id: EventId,
    pub event_type: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub account_id: Option<AccountId>,
    pub delivered: bool,
    pub attempts: u32,
    pub failures: u32,
    /// The receiver's HTTP status on the last try (none: no answer).
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_duration_ms: Option<u64>,
    /// The first kilobyte of the receiver's last answer.
    pub last_response: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_attempt_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub delivered_at: Option<Timestamp>,
    /// When the event happened.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// A delivery waiting to be sent, with its event.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingDelivery {
    pub id: DeliveryId,
    pub event_id: EventId,
    pub event_type: String,
    pub account_id: Option<AccountId>,
    pub data: serde_json::Value,
    pub created_at: Timestamp,
    pub failures: u32,
}

/// An endpoint's deliveries not yet through, oldest event first, with what the job needs to
/// know of the endpoint at the same moment.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookBacklog {
    /// The endpoint's count of events (see [`WebhookStore::end_webhook_job`]).
    pub seen: i64,
    pub paused: bool,
    pub url: String,
    pub deliveries: Vec<PendingDelivery>,
}

/// How one try went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// A 2xx answer: delivered.
    pub delivered: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
    /// At most a kilobyte of the answer.
    pub response: String,
}

/// Which deliveries to list, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub endpoint: Option<WebhookEndpointId>,
    /// Only those whose last try failed.
    pub failed: bool,
    pub page: Page,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn create_webhook_endpoint(
        &self,
        ctx: &RequestContext,
        new: &NewWebhookEndpoint,
    ) -> Result<WebhookEndpoint>;
    async fn webhook_endpoint(&self, id: WebhookEndpointId) -> Result<WebhookEndpoint>;
    async fn webhook_endpoints(&self, page: Page) -> Result<Vec<WebhookEndpoint>>;
    /// Changes an endpoint; resuming a paused one sends what waited.
    async fn update_webhook_endpoint(
        &self,
        ctx: &RequestContext,
        id: WebhookEndpointId,
        patch: &WebhookEndpointPatch,
    ) -> Result<WebhookEndpoint>;
    /// A new secret; the one it replaces still signs until `previous_valid_until`.
    async fn rotate_webhook_secret(
        &self,
        ctx: &RequestContext,
        id: WebhookEndpointId,
        sealed_secret: &[u8],
        key_id: &str,
        previous_valid_until: Timestamp,
    ) -> Result<WebhookEndpoint>;
    /// Removes an endpoint and its deliveries.
    async fn delete_webhook_endpoint(
        &self,
        ctx: &RequestContext,
        id: WebhookEndpointId,
    ) -> Result<()>;
    async fn webhook_secrets(&self, id: WebhookEndpointId) -> Result<SealedWebhookSecrets>;
    /// Records an event outside any other change (the others write theirs with the change);
    /// none when no endpoint wants it.
    async fn record_event(&self, ctx: &RequestContext, event: &NewEvent)
    -> Result<Option<EventId>>;
    async fn webhook_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>>;
    /// What an endpoint's delivery job has to do, as of one moment: none when the endpoint
    /// is gone.
    async fn webhook_backlog(
        &self,
        endpoint: WebhookEndpointId,
        limit: u32,
    ) -> Result<Option<WebhookBacklog>>;
    /// Keeps a try's outcome; returns since when the endpoint has been failing (none: it got
    /// through).
    async fn record_webhook_attempt(
        &self,
        endpoint: WebhookEndpointId,
        delivery: DeliveryId,
        attempt: &DeliveryAttempt,
    ) -> Result<Option<Timestamp>>;
    async fn pause_webhook_endpoint(
        &self,
        ctx: &RequestContext,
        id: WebhookEndpointId,
        reason: &str,
    ) -> Result<()>;
    /// Completes the endpoint's delivery job if no event came (and it was not resumed) since
    /// its count was `seen`, in one transaction with the job's completion; `false`: look
    /// again.
    async fn end_webhook_job(
        &self,
        endpoint: WebhookEndpointId,
        seen: i64,
        context: &riverqueue::WorkContext,
    ) -> Result<bool>;
    /// Sends again one delivery (even one that got through), or tries now those not yet
    /// through whose last try failed (since a time); returns how many. Refused while the
    /// endpoint is paused (resume it). A delivered event sent again may arrive after newer
    /// ones: receivers de-duplicate by its id.
    async fn redeliver_webhooks(
        &self,
        ctx: &RequestContext,
        endpoint: WebhookEndpointId,
        delivery: Option<DeliveryId>,
        failed_since: Option<Timestamp>,
    ) -> Result<u64>;
}
