//! Bulk lifecycle moves: one change per service, each queued in its own transaction; the
//! servers' call rates pace the work. A summary says what succeeded and why the rest did not.

use std::time::Duration;

use drover_core::{JobId, PlanId, ServiceId, SuspendReason, Transition};
use drover_store::{RequestContext, Store};
use serde::Serialize;

#[derive(Debug, Clone)]
pub enum BulkAction {
    Suspend { reason: Option<SuspendReason> },
    Unsuspend,
    ChangePlan { plan: PlanId },
}

/// What was queued and what was refused at once.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BulkQueued {
    pub total: usize,
    pub queued: Vec<(ServiceId, JobId)>,
    pub refused: Vec<(ServiceId, String)>,
}

/// How it all ended.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BulkSummary {
    pub total: usize,
    pub succeeded: usize,
    pub failed: Vec<(ServiceId, String)>,
}

pub async fn queue(
    store: &dyn Store,
    ctx: &RequestContext,
    action: &BulkAction,
    services: &[ServiceId],
) -> BulkQueued {
    let mut result = BulkQueued {
        total: services.len(),
        ..BulkQueued::default()
    };
    for &id in services {
        let outcome = match action {
            BulkAction::Suspend { reason } => {
                store
                    .transition_service(
                        ctx,
                        id,
                        Transition::Suspend,
                        reason.as_ref().map(|r| r.as_str().to_owned()),
                    )
                    .await
            }
            BulkAction::Unsuspend => {
                store
                    .transition_service(ctx, id, Transition::Unsuspend, None)
                    .await
            }
            BulkAction::ChangePlan { plan } => store.change_plan(ctx, id, *plan).await,
        };
        match outcome {
            Ok(moved) => result.queued.push((id, moved.job_id)),
            Err(e) => result.refused.push((id, e.to_string())),
        }
    }
    result
}

/// Waits for the queued jobs, reporting (finished, total) as they end.
pub async fn wait(
    store: &dyn Store,
    queued: &BulkQueued,
    mut progress: impl FnMut(usize, usize),
) -> Result<BulkSummary, drover_store::StoreError> {
    let mut summary = BulkSummary {
        total: queued.total,
        failed: queued.refused.clone(),
        ..BulkSummary::default()
    };
    let mut pending: Vec<(ServiceId, JobId)> = queued.queued.clone();
    // Jobs joined by several services of one account are counted once per service.
    while !pending.is_empty() {
        let mut still = Vec::new();
        for (service, job) in pending {
            let summary_job = store.job(job).await?;
            match summary_job.state.as_str() {
                "completed" => summary.succeeded += 1,
                "discarded" | "cancelled" => {
                    let reason = summary_job
                        .output
                        .as_ref()
                        .and_then(|o| o["discarded"].as_str().map(str::to_owned))
                        .or_else(|| summary_job.errors.last().cloned())
                        .unwrap_or_else(|| format!("job {job} was {}", summary_job.state));
                    summary.failed.push((service, reason));
                }
                _ => still.push((service, job)),
            }
        }
        pending = still;
        progress(summary.total - pending.len(), summary.total);
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(summary)
}
