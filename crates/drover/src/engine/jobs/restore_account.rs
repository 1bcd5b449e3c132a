//! `restore_account`: the account's content brought back from one of its backups, by its
//! server (`restore-domain`), then drover's records applied on top (a converge and its
//! password, queued). Works under the account's lease, as every account job does.

use std::sync::Arc;

use drover_core::{AccountId, BackupId, BackupLocation};
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use crate::engine::Engine;
use crate::engine::account_job::{ConvergeError, Finish, Round, run_for_account};
use crate::engine::content::{names, restored_domains};
use crate::engine::ssh_host::archive_login;

pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::RestoreAccount>,
) -> Result<WorkOutcome, ConvergeError> {
    let account = AccountId(job.args.account_id);
    let backup = BackupId(job.args.backup_id);
    let engine = &*engine;
    // What was restored: the job's output once it completed (the account job's own output
    // is its actions, none here).
    let restored = std::sync::Mutex::new(None);
    let restored_ref = &restored;
    let outcome = run_for_account(
        engine,
        &context,
        &job.row,
        account,
        Finish::Always,
        |ctx| async move {
            // Checked again now: the account may have moved, or the archive been pruned.
            let plan =
                match crate::commands::plan_restore(&*engine.store, account, Some(backup), None)
                    .await
                {
                    Ok(plan) => plan,
                    Err(crate::commands::Error::Rule(refused)) => {
                        return Ok(Round::Refused(refused.to_string()));
                    }
                    Err(e) => return Err(e.into()),
                };
            let server = engine.store.server(plan.server_id).await?;
            let client = match engine.fleet.client(&server) {
                Ok(client) => client,
                Err(e) if e.waits => return Ok(Round::Wait(e.to_string())),
                Err(e) => return Ok(Round::Refused(e.to_string())),
            };
            let domain = engine.store.account(account).await?.domain;
            let subject = format!("account:{account}");
            let destination = engine
                .store
                .backup_destination(plan.backup.destination_id)
                .await?;
            let archive = match BackupLocation::parse(&plan.backup.archive) {
                Ok(archive) => archive,
                Err(e) => return Ok(Round::Refused(e.to_string())),
            };
            // An SSH host's login (password or key file), once its key is the pinned one; without
            // it the server is not asked (and the account is left as it is).
            let login = match archive_login(&engine.fleet, &destination.spec, &archive).await {
                Ok(login) => login,
                Err(why) => return Ok(Round::Refused(why)),
            };
            let domains = restored_domains(&*engine.store, account).await?;
            if let Err(e) = client
                .restore_domain(&archive, login.as_ref(), &names(&domains))
                .await
            {
                let failed = json!({ "backup_id": backup, "message": e.message });
                engine
                    .store
                    .audit(&ctx, "account.restore_failed", subject, failed)
                    .await?;
                // The server may hold it half restored: drover's records are applied again.
                crate::commands::after_restore(&*engine.store, &ctx, account).await?;
                return Err(e.into());
            }
            // The server says it restored: the domain must be there to say so.
            if client.get_domain(domain.as_str()).await?.is_none() {
                return Err(ConvergeError::NotApplied(format!(
                    "{domain} is not on {} after its restore",
                    server.spec.name
                )));
            }
            engine
                .store
                .audit(
                    &ctx,
                    "account.restored",
                    subject,
                    json!({ "backup_id": backup, "archive": plan.backup.archive }),
                )
                .await?;
            crate::commands::after_restore(&*engine.store, &ctx, account).await?;
            *restored_ref
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(json!({
                "restored": domain,
                "backup_id": backup,
                "archive": plan.backup.archive,
                "backed_up_at": plan.backup.finished_at,
            }));
            let generation = engine.store.account(account).await?.desired_generation;
            Ok(Round::Done {
                generation,
                actions: Vec::new(),
            })
        },
    )
    .await?;
    if let (WorkOutcome::Complete, Some(output)) = (
        &outcome,
        restored
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    ) {
        let _ = context.record_output(output);
    }
    Ok(outcome)
}
