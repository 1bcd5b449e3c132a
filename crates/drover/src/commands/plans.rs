//! Plans: what a service may use on its server. A change reaches every server that carries the
//! plan through its sync job, queued with the change.

use drover_core::{PlanId, PlanPatch, PlanSpec};
use drover_store::jobs::SyncPlan;
use drover_store::{Job, Plan, RequestContext, Store};
use serde_json::json;

use super::Result;

/// Records a plan (checked whole by core's rules first).
pub async fn create_plan(store: &dyn Store, ctx: &RequestContext, spec: PlanSpec) -> Result<Plan> {
    let spec = spec.validated()?;
    let mut tx = store.write().await?;
    let plan = tx.insert_plan(&spec).await?;
    tx.audit(
        ctx,
        "plan.create",
        format!("plan:{}", plan.id),
        json!({ "plan": plan.spec }),
    )
    .await?;
    tx.commit().await?;
    Ok(plan)
}

/// Patches the plan (the whole new spec is checked by core's rules) and queues its sync to the
/// servers as it now is. A new plan reaches a server with its first account there.
pub async fn update_plan(
    store: &dyn Store,
    ctx: &RequestContext,
    id: PlanId,
    patch: PlanPatch,
) -> Result<Plan> {
    let mut tx = store.write().await?;
    let before = tx.plan(id).await?;
    let spec = before.spec.clone().patched(patch).validated()?;
    let plan = tx.update_plan(id, &spec).await?;
    let args = SyncPlan { plan_id: id.get() };
    tx.enqueue(ctx, Job::SyncPlan(args)).await?;
    tx.audit(
        ctx,
        "plan.update",
        format!("plan:{id}"),
        json!({ "before": before.spec, "after": plan.spec }),
    )
    .await?;
    tx.commit().await?;
    Ok(plan)
}
