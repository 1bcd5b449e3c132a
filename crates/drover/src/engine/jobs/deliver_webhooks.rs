//! `deliver_webhooks`: one endpoint's waiting events, sent oldest first. A failing receiver
//! holds the rest back (each account's events arrive in order) and is tried again after a
//! growing wait; one failing for the policy's `pause_after` is paused and an operator told.

use std::sync::Arc;

use drover_core::{WebhookEndpointId, delivery_retry_delay, should_pause_endpoint};
use drover_store::StoreError;
use riverqueue::{Job, WorkContext, WorkOutcome};
use secrecy::SecretString;

use super::job_context;
use crate::engine::Engine;

/// Deliveries read at a time.
const BATCH: u32 = 100;

pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::DeliverWebhooks>,
) -> Result<WorkOutcome, StoreError> {
    let id = WebhookEndpointId(job.args.endpoint_id);
    let store = &*engine.store;
    let policy = &engine.webhooks.policy;
    loop {
        let endpoint = match store.webhook_endpoint(id).await {
            Ok(endpoint) => endpoint,
            Err(StoreError::NotFound { .. }) => return Ok(WorkOutcome::Complete),
            Err(e) => return Err(e),
        };
        // Resuming it wakes a new job.
        if endpoint.paused {
            return Ok(WorkOutcome::Complete);
        }
        let (seen, pending) = store.pending_webhook_deliveries(id, BATCH).await?;
        if pending.is_empty() {
            if store.end_webhook_job(id, seen, &context).await? {
                return Ok(WorkOutcome::Complete);
            }
            continue;
        }
        let secrets = secrets(&engine, id).await?;
        for delivery in &pending {
            let attempt = engine
                .webhooks
                .send(&endpoint.url, &secrets, delivery)
                .await;
            let outcome = if attempt.delivered {
                "delivered"
            } else {
                "failed"
            };
            metrics::counter!("drover_webhook_deliveries_total", "outcome" => outcome).increment(1);
            let failing_since = store
                .record_webhook_attempt(id, delivery.id, &attempt)
                .await?;
            if attempt.delivered {
                continue;
            }
            if should_pause_endpoint(failing_since, jiff::Timestamp::now(), policy.pause_after) {
                let reason = format!(
                    "failing since {} (last: {}); resume it once the receiver answers",
                    failing_since.map(|t| t.to_string()).unwrap_or_default(),
                    attempt.error.as_deref().unwrap_or("no answer"),
                );
                store
                    .pause_webhook_endpoint(&job_context(job.id()), id, &reason)
                    .await?;
                tracing::warn!(endpoint = %id, %reason, "webhook endpoint paused");
                return Ok(WorkOutcome::Complete);
            }
            let wait = delivery_retry_delay(delivery.failures + 1, policy.retry_max_delay);
            let _ = context.record_output(serde_json::json!({
                "waiting_for": delivery.event_id,
                "error": attempt.error,
                "retry_in_seconds": wait.as_secs(),
            }));
            return Ok(WorkOutcome::Snooze(wait));
        }
    }
}

/// The secrets that sign now, opened: the current one first.
async fn secrets(engine: &Engine, id: WebhookEndpointId) -> Result<Vec<SecretString>, StoreError> {
    let sealed = engine.store.webhook_secrets(id).await?;
    let mut open = Vec::with_capacity(2);
    for sealed in std::iter::once(&sealed.current).chain(sealed.previous.as_ref()) {
        let secret = engine
            .open_sealed(sealed)
            .await
            .map_err(|e| StoreError::Corrupt(format!("webhook endpoint {id}'s secret: {e}")))?;
        open.push(secret);
    }
    Ok(open)
}
