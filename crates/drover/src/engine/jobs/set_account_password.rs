//! `set_account_password`: the sealed password a billing system or an operator set, put on
//! the account's server.

use std::sync::Arc;

use drover_core::{AccountId, DesiredState};
use riverqueue::{Job, WorkContext, WorkOutcome};

use crate::engine::Engine;
use crate::engine::account_job::{ConvergeError, Finish, Round, run_for_account};

/// `set_account_password`: sets the sealed password on the account's server. A new password
/// kept while it runs joins it and makes it run again (see `commands::change_password`).
pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::SetAccountPassword>,
) -> Result<WorkOutcome, ConvergeError> {
    let account = AccountId(job.args.account_id);
    let engine = &*engine;
    run_for_account(
        engine,
        &context,
        &job.row,
        account,
        Finish::AtLatestRecord,
        |_| async move {
            let target = engine.store.converge_target(account).await?;
            let generation = target.account.desired_generation;
            let (Some(server), Some(sealed)) = (&target.server, &target.sealed_password) else {
                // Not on a server yet: the create will use the new password.
                return Ok(Round::Done {
                    generation,
                    actions: Vec::new(),
                });
            };
            if target.account.desired_state == DesiredState::Absent {
                return Ok(Round::Done {
                    generation,
                    actions: Vec::new(),
                });
            }
            let client = match engine.fleet.client(server) {
                Ok(client) => client,
                Err(e) if e.waits => return Ok(Round::Wait(e.to_string())),
                Err(e) => return Ok(Round::Refused(e.to_string())),
            };
            let password = match engine.open_sealed(sealed).await {
                Ok(password) => password,
                Err(e) => return Ok(Round::Refused(e)),
            };
            let change = drover_virtualmin::DomainChange {
                password: Some(password),
                ..Default::default()
            };
            client
                .modify_domain(target.account.domain.as_str(), &change)
                .await?;
            Ok(Round::Done {
                generation,
                actions: Vec::new(),
            })
        },
    )
    .await
}
