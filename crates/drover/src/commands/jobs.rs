//! An operator's hand on the job queue: a job run again or cancelled, and the emergency stop
//! of provisioning. River does the work; the command audits it.

use drover_core::JobId;
use drover_store::{JobSummary, RequestContext, Store};
use serde_json::json;

use super::Result;

/// Runs a finished job again now (refused while a job of its kind waits for the same account).
pub async fn retry_job(store: &dyn Store, ctx: &RequestContext, id: JobId) -> Result<JobSummary> {
    store.retry_job(id).await?;
    store
        .audit(ctx, "job.retry", format!("job:{id}"), json!({}))
        .await?;
    Ok(store.job(id).await?)
}

/// Cancels a job that has not finished.
pub async fn cancel_job(store: &dyn Store, ctx: &RequestContext, id: JobId) -> Result<JobSummary> {
    store.cancel_job(id).await?;
    store
        .audit(ctx, "job.cancel", format!("job:{id}"), json!({}))
        .await?;
    Ok(store.job(id).await?)
}

/// The emergency stop: provisioning jobs wait while it is paused, and go on when resumed.
pub async fn set_provisioning_paused(
    store: &dyn Store,
    ctx: &RequestContext,
    paused: bool,
) -> Result<()> {
    store.set_provisioning_paused(paused).await?;
    let action = if paused {
        "provisioning.pause"
    } else {
        "provisioning.resume"
    };
    store
        .audit(ctx, action, "provisioning".into(), json!({}))
        .await?;
    Ok(())
}
