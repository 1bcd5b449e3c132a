//! Plans are drover's data, and each server that may host a plan's accounts carries it as
//! drover defines it: converge puts a plan on a server before it creates an account on it, and
//! a plan changed in drover is put on every server that may host it at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use drover_core::{PlanId, ServerState};
use drover_store::{Page, StoreError};
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use crate::engine::Engine;

#[derive(Debug, thiserror::Error)]
pub enum PlanSyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the plan could not be put on {0}")]
    Servers(String),
}

/// `sync_plan`: one plan on every server whose tags it may be placed by. A server that cannot
/// be reached now is tried again with the job; the others are done.
pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::SyncPlan>,
) -> Result<WorkOutcome, PlanSyncError> {
    let plan = engine.store.plan(PlanId(job.args.plan_id)).await?;
    let wanted = crate::engine::converge::server_plan(&plan.spec);
    let servers = engine
        .store
        .servers(Page::new(None, Some(Page::MAX_LIMIT)))
        .await?;
    let mut report = BTreeMap::new();
    let mut failed = Vec::new();
    for server in servers.iter().filter(|s| {
        s.state != ServerState::Decommissioned
            && plan
                .spec
                .required_tags
                .iter()
                .all(|t| s.spec.tags.contains(t))
    }) {
        let name = server.spec.name.to_string();
        let outcome = match engine.fleet.client(server) {
            Ok(client) => {
                // Read the server's plans again: this is the plan changing.
                client.forget_plans();
                client.ensure_plan(&wanted).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(done) => report.insert(name, json!(format!("{done:?}").to_lowercase())),
            Err(e) => {
                failed.push(name.clone());
                report.insert(name, json!({ "error": e }))
            }
        };
    }
    let _ = context.record_output(json!({ "plan": plan.spec.name, "servers": report }));
    if failed.is_empty() {
        Ok(WorkOutcome::Complete)
    } else {
        Err(PlanSyncError::Servers(failed.join(", ")))
    }
}
