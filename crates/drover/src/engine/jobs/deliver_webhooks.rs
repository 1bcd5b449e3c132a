//! `deliver_webhooks`: one endpoint's waiting events, sent oldest first. A failing receiver
//! holds the rest back (each account's events arrive in order) and is tried again after a
//! growing wait; one failing for the policy's `pause_after` is paused and an operator told.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
    // A long backlog is handed back before the job's time is up (a snooze spends no attempt).
    let started = Instant::now();
    let budget = engine.job_timeout / 2;
    loop {
        let Some(backlog) = store.webhook_backlog(id, BATCH).await? else {
            // Deleted: nothing is left to send.
            return Ok(WorkOutcome::Complete);
        };
        // Paused, or nothing left: done, unless an event came (or it was resumed) meanwhile.
        if backlog.paused || backlog.deliveries.is_empty() {
            if store.end_webhook_job(id, backlog.seen, &context).await? {
                return Ok(WorkOutcome::Complete);
            }
            continue;
        }
        let secrets = secrets(&engine, id).await?;
        for delivery in &backlog.deliveries {
            if started.elapsed() > budget {
                return Ok(WorkOutcome::Snooze(Duration::ZERO));
            }
            let attempt = engine.webhooks.send(&backlog.url, &secrets, delivery).await;
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
                metrics::counter!("drover_webhook_endpoints_paused_total").increment(1);
                tracing::warn!(endpoint = %id, %reason, "webhook endpoint paused");
                // Ends through the check above: a resume meanwhile is not missed.
                break;
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
