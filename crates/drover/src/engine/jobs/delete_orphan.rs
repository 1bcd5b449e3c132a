//! `delete_orphan`: a domain drover does not hold, deleted from a server once an operator
//! repeated its name.

use std::sync::Arc;

use drover_core::{DomainName, ServerId};
use drover_store::StoreError;
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use crate::engine::Engine;
use crate::engine::drift::{DriftError, delete_orphan};

/// Refused (discarded, with the reason as its output) unless the server's last scan found the
/// domain as an orphan.
pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::DeleteOrphan>,
) -> Result<WorkOutcome, DriftError> {
    let ctx = super::job_context(job.id());
    let server = engine.store.server(ServerId(job.args.server_id)).await?;
    let domain = DomainName::parse(&job.args.domain).map_err(StoreError::from)?;
    match delete_orphan(&engine, &ctx, &server, &domain).await {
        Ok(()) => {
            let _ = context.record_output(json!({ "deleted": domain, "server": server.spec.name }));
            Ok(WorkOutcome::Complete)
        }
        Err(DriftError::Refused(reason)) => {
            let _ = context.record_output(json!({ "refused": reason }));
            Ok(WorkOutcome::Discard)
        }
        Err(e) => Err(e),
    }
}
