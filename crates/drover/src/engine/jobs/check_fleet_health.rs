//! `check_fleet_health`: servers probed and their states moved by their streaks.

use std::sync::Arc;

use drover_core::Verdict;
use drover_store::{Page, Plan, Server};
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use crate::engine::Engine;
use crate::engine::health::{backups_overdue, certificates_not_renewed, check_fleet};

/// One server, or every one (the scheduler's, on the elected leader). The output has a row per
/// server checked and the state moves; across the fleet, the accounts' certificates their
/// servers did not renew.
pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::CheckFleetHealth>,
) -> crate::commands::Result<WorkOutcome> {
    let ctx = super::job_context(job.id());
    let only = job.args.server_id.map(drover_core::ServerId);
    let changes = check_fleet(&engine, &ctx, only).await?;
    let plans = if job.args.plans {
        engine
            .store
            .plans(Page::new(None, Some(Page::MAX_LIMIT)))
            .await?
    } else {
        Vec::new()
    };
    let mut rows = Vec::with_capacity(changes.len());
    for c in &changes {
        let mut row = json!({
            "id": c.server.id, "name": c.server.spec.name, "state": c.server.state,
            "was": c.before, "verdict": c.health.verdict,
            "latency_ms": c.health.probe.latency_ms,
            "certificate_days_left": c.health.probe.certificate_days_left,
            "reasons": c.health.reasons.join("; "),
        });
        if job.args.plans && c.health.verdict != Verdict::Unavailable {
            row["plans"] = plan_presence(&engine, &c.server, &plans).await;
        }
        rows.push(row);
    }
    let moved: Vec<String> = changes
        .iter()
        .filter(|c| c.moved())
        .map(|c| format!("{}: {} → {}", c.server.spec.name, c.before, c.server.state))
        .collect();
    let mut output = json!({ "servers": rows, "moved": moved });
    // Across the fleet only: the accounts' certificates their servers did not renew.
    // The servers' results are recorded: a failure here is reported, not retried (a retry
    // would check the servers again at once).
    if only.is_none() {
        match certificates_not_renewed(&engine).await {
            Ok(overdue) => {
                output["certificates_not_renewed"] = overdue
                    .iter()
                    .take(100)
                    .map(|c| {
                        json!({
                            "account_id": c.account_id,
                            "domain": c.domain,
                            "expires_at": c.expires_at,
                        })
                    })
                    .collect();
                output["certificates_not_renewed_count"] = overdue.len().into();
            }
            Err(e) => output["certificates_not_renewed_error"] = e.to_string().into(),
        }
        match backups_overdue(&engine).await {
            Ok(overdue) => {
                output["backups_overdue"] = overdue.iter().take(100).map(|b| json!(b)).collect();
                output["backups_overdue_count"] = overdue.len().into();
            }
            Err(e) => output["backups_overdue_error"] = e.to_string().into(),
        }
    }
    let _ = context.record_output(output);
    Ok(WorkOutcome::Complete)
}

/// Which of drover's plans the server may host (by their tags) it lacks, or carries with other
/// limits or features than drover's; or why its plans could not be read.
async fn plan_presence(engine: &Engine, server: &Server, plans: &[Plan]) -> serde_json::Value {
    let listed = match engine.fleet.probe_client(server) {
        Ok(client) => client.list_plans().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let listed = match listed {
        Ok(listed) => listed,
        Err(error) => return json!({ "error": error }),
    };
    let (missing, differing) =
        crate::engine::converge::plans_unlike_drovers(plans, server, &listed);
    json!({ "missing": missing, "differing": differing })
}
