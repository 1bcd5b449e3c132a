//! `sync_usage`: each account's disk and bandwidth figures pulled from its server.

use std::sync::Arc;

use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use crate::engine::Engine;
use crate::engine::observable_servers;
use crate::engine::usage::{UsageError, sync_server};
use std::collections::BTreeMap;

/// `sync_usage`: one server, or every healthy or degraded one. A server that cannot be listed
/// is skipped with its reason in the job's output; the others are still synced.
pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::SyncUsage>,
) -> Result<WorkOutcome, UsageError> {
    let only = job.args.server_id.map(drover_core::ServerId);
    let mut report: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for server in observable_servers(&*engine.store, only).await? {
        let line = match sync_server(&engine, &server).await {
            Ok(r) => json!({ "accounts": r.accounts, "not_listed": r.not_listed }),
            Err(UsageError::Store(e)) => return Err(e.into()),
            Err(e) => json!({ "error": e.to_string() }),
        };
        report.insert(server.spec.name.to_string(), line);
    }
    let _ = context.record_output(json!({ "servers": report }));
    Ok(WorkOutcome::Complete)
}
