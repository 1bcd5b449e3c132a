//! `converge_account`: makes the account's server match drover's record of it.

use std::sync::Arc;

use drover_core::AccountId;
use riverqueue::{Job, WorkContext, WorkOutcome};

use crate::engine::Engine;
use crate::engine::account_job::{ConvergeError, Finish, run_for_account};
use crate::engine::converge::rounds;

pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::ConvergeAccount>,
) -> Result<WorkOutcome, ConvergeError> {
    let account = AccountId(job.args.account_id);
    let engine = &*engine;
    run_for_account(
        engine,
        &context,
        &job.row,
        account,
        Finish::AtLatestGeneration,
        |ctx| async move { rounds(engine, &ctx, account).await },
    )
    .await
}
