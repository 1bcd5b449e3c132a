//! `check_zones`: what each provider serves, compared with drover's zones.

use std::sync::Arc;

use drover_core::DnsProviderId;
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use crate::engine::Engine;
use crate::engine::dns::DnsWorkError;

/// The report is the job's output, as data and as text; an inconsistency is a finding, not a
/// failure of the job.
pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::CheckZones>,
) -> Result<WorkOutcome, DnsWorkError> {
    let checks = engine
        .dns
        .check(job.args.provider_id.map(DnsProviderId))
        .await?;
    let text: String = checks.iter().map(ToString::to_string).collect();
    let consistent = checks.iter().all(|c| c.is_consistent());
    let _ = context.record_output(json!({
        "checks": checks, "consistent": consistent, "text": text,
    }));
    Ok(WorkOutcome::Complete)
}
