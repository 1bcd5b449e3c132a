//! `plan_zone`: what applying a zone would change on each of its providers, read from them.

use std::sync::Arc;

use drover_core::ZoneId;
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use crate::engine::Engine;
use crate::engine::dns::DnsWorkError;

/// The plan is the job's output, as data and as text.
pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::PlanZone>,
) -> Result<WorkOutcome, DnsWorkError> {
    let zone = engine.store.zone(ZoneId(job.args.zone_id)).await?;
    let plan = engine.dns.plan(&zone).await?;
    let _ = context.record_output(json!({
        "plan": plan, "text": plan.to_string(), "changes": plan.has_changes(),
    }));
    Ok(WorkOutcome::Complete)
}
