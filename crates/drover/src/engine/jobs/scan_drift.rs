//! `scan_drift`: servers listed and compared with drover's records, then repaired as asked.

use std::sync::Arc;

use drover_store::jobs::DriftRepair;
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use crate::engine::Engine;
use crate::engine::drift::{DriftError, repair_server, scan_server};
use crate::engine::observable_servers;

/// One server, or every healthy or degraded one. Scheduled scans repair by policy, within the
/// drift limits; an operator may ask for the findings only, a dry run, or a forced repair. A
/// server that cannot be listed is skipped with its reason in the job's output.
pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::ScanDrift>,
) -> Result<WorkOutcome, DriftError> {
    let ctx = super::job_context(job.id());
    let only = job.args.server_id.map(drover_core::ServerId);
    let servers = observable_servers(&*engine.store, only).await?;
    let mut report = Vec::new();
    for server in &servers {
        let name = &server.spec.name;
        let line = match job.args.repair {
            DriftRepair::ScanOnly => scan_server(&engine, &ctx, server).await.map(
                |found| json!({ "server": name, "server_id": server.id, "findings": found.len() }),
            ),
            repair => {
                let (force, dry_run) = match repair {
                    DriftRepair::Forced => (true, false),
                    DriftRepair::DryRun => (false, true),
                    DriftRepair::ByPolicy | DriftRepair::ScanOnly => (false, false),
                };
                repair_server(&engine, &ctx, server, force, dry_run)
                    .await
                    .map(|outcome| json!(outcome))
            }
        };
        report.push(line.unwrap_or_else(|e| json!({ "server": name, "error": e.to_string() })));
    }
    let _ = context.record_output(json!({ "servers": report }));
    Ok(WorkOutcome::Complete)
}
