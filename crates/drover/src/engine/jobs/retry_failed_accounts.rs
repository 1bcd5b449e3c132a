//! Accounts whose converge job gave up (refused, or out of retries) are tried again on a slower
//! schedule of their own: an outage that outlasted a job's retries heals without an operator.

use std::sync::Arc;

use drover_store::{AccountFilter, Page, RequestContext};
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use crate::engine::Engine;

/// `retry_failed_accounts`: a converge job for every failed account that may succeed now.
pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::RetryFailedAccounts>,
) -> crate::commands::Result<WorkOutcome> {
    let ctx = RequestContext {
        actor: format!("job:{}", job.id()),
        correlation_id: format!("retry-failed-{}", job.id()),
    };
    let failed = engine
        .store
        .accounts(AccountFilter {
            failed: true,
            page: Page::new(None, Some(Page::MAX_LIMIT)),
            ..AccountFilter::default()
        })
        .await?
        .len();
    metrics::gauge!("drover_accounts_failed").set(failed as f64);
    let jobs = crate::commands::retry_failed_accounts(&*engine.store, &ctx).await?;
    let _ = context.record_output(json!({ "failed": failed, "converge_jobs": jobs }));
    Ok(WorkOutcome::Complete)
}
