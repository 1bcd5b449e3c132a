//! `sync_zone`: one zone made to match on all its providers.

use std::sync::Arc;

use drover_core::ApplyResult;
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use crate::engine::dns::DnsWorkError;

/// `sync_zone`: one zone on all its providers. Safety refusals are recorded on the zone and
/// end the job (an operator decides); provider failures are retried. What each provider did
/// is the job's output, with the last plan applied.
pub async fn run(
    engine: Arc<super::Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::SyncZone>,
) -> Result<WorkOutcome, DnsWorkError> {
    let ctx = super::job_context(job.id());
    let zone = drover_core::ZoneId(job.args.zone_id);
    let synced = engine.dns.sync(&ctx, zone, job.args.force).await?;
    let text = synced.plan.as_ref().map(ToString::to_string);
    let _ = context.record_output(json!({
        "plan": synced.plan, "text": text, "outcomes": synced.outcomes,
    }));
    if synced
        .outcomes
        .iter()
        .any(|o| o.result == ApplyResult::Refused)
    {
        tracing::warn!(
            zone = zone.get(),
            "zone sync refused by the safety limits; an operator must apply it with --force"
        );
    }
    Ok(WorkOutcome::Complete)
}
