//! `schedule_backups`: queues a backup, to the default destination, of every account on a
//! server that has none started within its plan's interval (the fleet's unless the plan sets
//! its own). Enqueued periodically on the leader.

use std::sync::Arc;

use drover_store::StoreError;
use jiff::{SignedDuration, Timestamp};
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use super::job_context;
use crate::engine::Engine;

/// The most accounts queued by one look; the rest are due at the next.
const PER_LOOK: u32 = 5_000;

pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::ScheduleBackups>,
) -> Result<WorkOutcome, StoreError> {
    let store = &engine.store;
    let Some(destination) = store.default_backup_destination().await? else {
        let _ = context.record_output(json!({
            "queued": 0,
            "why": "no backup destination is the default: scheduled backups wait for one",
        }));
        return Ok(WorkOutcome::Complete);
    };
    let every = i64::try_from(job.args.every_seconds).unwrap_or(i64::MAX);
    let fleet = SignedDuration::from_secs(every);
    let ctx = job_context(job.id());
    let mut queued = 0;
    for plan in all_plans(store).await? {
        let Some(interval) = plan.spec.backup_interval(fleet) else {
            continue;
        };
        let since = Timestamp::now() - interval;
        let due = store
            .accounts_due_for_backup(plan.id, since, PER_LOOK)
            .await?;
        for account in &due {
            store
                .request_backup(&ctx, *account, destination.id, None)
                .await?;
        }
        queued += due.len();
    }
    let _ = context.record_output(json!({
        "queued": queued,
        "destination": destination.spec.name,
    }));
    Ok(WorkOutcome::Complete)
}

/// Every plan, page by page.
pub(crate) async fn all_plans(
    store: &Arc<dyn drover_store::Store>,
) -> Result<Vec<drover_store::Plan>, StoreError> {
    let mut plans = Vec::new();
    let mut page = drover_store::Page::new(None, Some(drover_store::Page::MAX_LIMIT));
    loop {
        let batch = store.plans(page).await?;
        let full = batch.len() == page.limit as usize;
        page.after = batch.last().map(|p| p.id.get());
        plans.extend(batch);
        if !full {
            return Ok(plans);
        }
    }
}
