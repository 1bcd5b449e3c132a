//! `rewrite_addresses`: the failover rewrite asked for through the API.

use std::sync::Arc;

use riverqueue::{Job, WorkContext, WorkOutcome};

use crate::engine::dns::DnsWorkError;

/// `rewrite_addresses`: the failover rewrite asked for through the API; its report is the
/// job's output.
pub async fn run(
    engine: Arc<super::Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::RewriteAddresses>,
) -> Result<WorkOutcome, DnsWorkError> {
    let ctx = super::job_context(job.id());
    let report = engine.dns.rewrite(&ctx, &job.args.moved).await?;
    let _ = context.record_output(&report);
    Ok(WorkOutcome::Complete)
}
