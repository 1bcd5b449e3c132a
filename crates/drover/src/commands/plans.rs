//! Plans: what a service may use on its server. A change reaches every server that carries the
//! plan through its sync job, queued with the change.

use drover_core::{PlanId, PlanPatch, PlanSpec};
use drover_store::jobs::SyncPlan;
use drover_store::{Job, Plan, RequestContext, Store};
use serde_json::json;

use super::Result;
use super::services::resource_counts;

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
///
/// A narrower plan must still hold what its accounts have: refused when it would not, unless
/// forced; then nothing is deleted and those accounts are flagged over their limits. Accounts
/// flagged before lose the flag once the plan fits them.
pub async fn update_plan(
    store: &dyn Store,
    ctx: &RequestContext,
    id: PlanId,
    patch: PlanPatch,
    force: bool,
) -> Result<Plan> {
    let mut tx = store.write().await?;
    let before = tx.plan(id).await?;
    let spec = before.spec.clone().patched(patch).validated()?;
    let narrower = spec.narrower_than(&before.spec);
    let mut flags = Vec::new();
    for account in tx.accounts_on_plan(id).await? {
        if !narrower && account.over_limit.is_none() {
            continue;
        }
        let overruns = spec.overruns(&resource_counts(&mut *tx, account.id).await?);
        let over = (!overruns.is_empty()).then(|| overruns.join("; "));
        if over != account.over_limit {
            flags.push((account, over));
        }
    }
    let newly_over: Vec<_> = flags
        .iter()
        .filter(|(account, over)| over.is_some() && account.over_limit.is_none())
        .collect();
    if !newly_over.is_empty() && !force {
        let examples: Vec<_> = newly_over
            .iter()
            .take(5)
            .map(|(account, over)| format!("{}: {}", account.domain, over.as_deref().unwrap_or("")))
            .collect();
        let more = newly_over.len().saturating_sub(examples.len());
        let mut examples = examples.join("; ");
        if more > 0 {
            examples.push_str(&format!("; and {more} more"));
        }
        return Err(drover_core::Error::PlanEditTooSmall {
            plan: spec.name.to_string(),
            accounts: newly_over.len(),
            examples,
        }
        .into());
    }
    for (account, over) in &flags {
        tx.set_over_limit(account.id, over.as_deref()).await?;
    }
    let plan = tx.update_plan(id, &spec).await?;
    let args = SyncPlan { plan_id: id.get() };
    tx.enqueue(ctx, Job::SyncPlan(args)).await?;
    let flagged: Vec<_> = flags
        .iter()
        .map(|(account, over)| json!({ "account_id": account.id, "over_limit": over }))
        .collect();
    tx.audit(
        ctx,
        "plan.update",
        format!("plan:{id}"),
        json!({
            "before": before.spec, "after": plan.spec, "forced": force,
            "over_limit_changed": flagged,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(plan)
}
