//! `create_login_link`: a one-time login link into the panel for an account's owner, asked of
//! the account's server and kept sealed until the one who asked takes it. The link never
//! appears in the job's output, its calls or the logs.

use std::sync::Arc;

use drover_core::{AccountId, JobId};
use drover_store::StoreError;
use drover_virtualmin::VirtualminError;
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use crate::engine::Engine;

#[derive(Debug, thiserror::Error)]
pub enum LoginLinkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the account's server refused the login link: {0}")]
    Server(#[from] VirtualminError),
}

/// Refused (discarded, with the reason as its output) when the account has no server to log
/// into; a server's failure is retried as a requested job's are.
pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::CreateLoginLink>,
) -> Result<WorkOutcome, LoginLinkError> {
    let account = engine.store.account(AccountId(job.args.account_id)).await?;
    let refuse = |reason: String| {
        let _ = context.record_output(json!({ "refused": reason }));
        Ok(WorkOutcome::Discard)
    };
    let Some(server) = account.server_id else {
        return refuse(format!("{} is on no server yet", account.domain));
    };
    if account.desired_state == drover_core::DesiredState::Absent {
        return refuse(format!(
            "{} is deleted: there is no panel to log into",
            account.domain
        ));
    }
    let server = engine.store.server(server).await?;
    let client = match engine.fleet.client(&server) {
        Ok(client) => client,
        Err(e) => return refuse(e.to_string()),
    };
    let lifetime = job.args.lifetime_seconds;
    let link = match client
        .create_login_link(account.domain.as_str(), lifetime)
        .await
    {
        Ok(link) => link,
        // The server says no for good (the account has no panel login): trying again changes
        // nothing.
        Err(e) if e.kind == drover_virtualmin::ErrorKind::Invalid => return refuse(e.message),
        Err(e) => return Err(e.into()),
    };
    let sealed = engine.sealer.seal(&link);
    let expires_at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(i64::from(lifetime));
    engine
        .store
        .keep_login_link(JobId(job.id()), account.id, &sealed, expires_at)
        .await?;
    let _ = context.record_output(json!({
        "account_id": account.id,
        "expires_at": expires_at.to_string(),
        "take": format!("/api/v1/accounts/{}/login-link/{}/take", account.id, job.id()),
    }));
    Ok(WorkOutcome::Complete)
}
