//! What a drift repair decided, recorded: each finding's action, and a converge for each
//! account whose record is enforced on its server, in one transaction.

use drover_core::{AccountId, DriftAction, JobId, ServerId};
use drover_store::{RequestContext, Store};
use serde_json::json;

use super::Result;

/// Records `actions` (finding id, action) for `server`'s last scan and queues a converge for
/// each account in `enforce`.
pub async fn record_drift_repair(
    store: &dyn Store,
    ctx: &RequestContext,
    server: ServerId,
    actions: &[(i64, DriftAction)],
    enforce: &[AccountId],
) -> Result<Vec<JobId>> {
    let mut tx = store.write().await?;
    for (finding, action) in actions {
        tx.update_drift_action(server, *finding, *action).await?;
    }
    let mut jobs = Vec::with_capacity(enforce.len());
    for account in enforce {
        jobs.push(super::services::converge(&mut *tx, ctx, *account).await?.id);
    }
    let count = |a: DriftAction| actions.iter().filter(|(_, x)| *x == a).count();
    tx.audit(
        ctx,
        "drift.repair",
        format!("server:{server}"),
        json!({
            "logged": count(DriftAction::Log),
            "enforced": count(DriftAction::Enforce),
            "quarantined": count(DriftAction::Quarantine),
            "jobs": jobs,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(jobs)
}
