//! `check_fleet_health`: servers probed and their states moved by their streaks.

use std::sync::Arc;

use drover_store::StoreError;
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use crate::engine::Engine;
use crate::engine::health::check_fleet;

/// One server, or every one (the scheduler's, on the elected leader). The output has a row per
/// server checked and the state moves.
pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::CheckFleetHealth>,
) -> Result<WorkOutcome, StoreError> {
    let ctx = super::job_context(job.id());
    let only = job.args.server_id.map(drover_core::ServerId);
    let changes = check_fleet(&engine, &ctx, only).await?;
    let rows: Vec<_> = changes
        .iter()
        .map(|c| {
            json!({
                "id": c.server.id, "name": c.server.spec.name, "state": c.server.state,
                "was": c.before, "verdict": c.health.verdict,
                "latency_ms": c.health.probe.latency_ms,
                "certificate_days_left": c.health.probe.certificate_days_left,
                "reasons": c.health.reasons.join("; "),
            })
        })
        .collect();
    let moved: Vec<String> = changes
        .iter()
        .filter(|c| c.moved())
        .map(|c| format!("{}: {} → {}", c.server.spec.name, c.before, c.server.state))
        .collect();
    let _ = context.record_output(json!({ "servers": rows, "moved": moved }));
    Ok(WorkOutcome::Complete)
}
