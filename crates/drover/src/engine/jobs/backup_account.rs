//! `backup_account`: one `backup-domain` of the account, with all features, to an archive of
//! its own in the destination; the outcome recorded (size, or the server's message and log
//! lines); then each destination's retention applied to the account's archives there. Works
//! under the account's lease: no restore reads an archive retention is deleting, and no
//! converge changes the account while it is copied.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use drover_core::{
    AccountId, BackupDestinationId, BackupLocation, BackupState, JobId, backup_refusal,
    explained_failure, failure_lines, final_size_bytes, to_prune,
};
use drover_store::{Backup, BackupFilter, BackupOutcome, Page, RequestContext, StoreError};
use drover_virtualmin::{CallScope, SshLogin, VirtualminClient, VirtualminError, in_scope};
use jiff::Timestamp;
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use super::job_context;
use crate::engine::Engine;
use crate::engine::account_job::taken_calls;
use crate::engine::ssh_host::archive_login;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Command(#[from] crate::commands::Error),
    /// The server could not be reached: tried again.
    #[error("the account's server could not be asked for the backup: {0}")]
    Server(#[from] VirtualminError),
}

pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::BackupAccount>,
) -> Result<WorkOutcome, BackupError> {
    let account = AccountId(job.args.account_id);
    let job_id = JobId(job.id());
    let until = Timestamp::now()
        + jiff::SignedDuration::try_from(engine.job_timeout).unwrap_or(jiff::SignedDuration::MAX);
    if !engine.store.lease_account(account, job_id, until).await? {
        let _ =
            context.record_output(json!({ "waiting": "another job is working on this account" }));
        return Ok(WorkOutcome::Snooze(Duration::from_secs(5)));
    }
    // The calls made are kept as the job's, as an account job's are.
    let started_at = Timestamp::now();
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let scope = CallScope {
        correlation_id: format!("job-{job_id}"),
        log: Some(Arc::clone(&log)),
    };
    let outcome = in_scope(scope, back_up(&engine, &context, &job)).await;
    engine.store.release_account(account, job_id).await?;
    let calls = taken_calls(&log, started_at);
    if let Err(e) = engine.store.record_job_calls(job_id, &calls).await {
        tracing::warn!(job = %job_id, error = %e, "a backup's calls could not be kept");
    }
    outcome
}

async fn back_up(
    engine: &Engine,
    context: &WorkContext,
    job: &Job<drover_store::jobs::BackupAccount>,
) -> Result<WorkOutcome, BackupError> {
    let store = &engine.store;
    let ctx = job_context(job.id());
    let account = store.account(AccountId(job.args.account_id)).await?;
    // Under the lease none of the account's backups can still be running.
    store.interrupt_backups(account.id).await?;
    let destination = store
        .backup_destination(BackupDestinationId(job.args.destination_id))
        .await?;
    let facts = crate::commands::backup_facts(&**store, &account).await?;
    let refuse = |reason: String| {
        let _ = context.record_output(json!({ "refused": reason }));
        Ok(WorkOutcome::Discard)
    };
    if let Some(why) = backup_refusal(&facts) {
        return refuse(format!("{} cannot be backed up now: {why}", account.domain));
    }
    let server = store
        .server(
            account
                .server_id
                .expect("a backup that may run has a server"),
        )
        .await?;
    let client = match engine.fleet.client(&server) {
        Ok(client) => client,
        Err(e) => return refuse(e.to_string()),
    };
    let archive = destination
        .spec
        .location
        .archive(&account.domain, Timestamp::now());
    let started = store
        .start_backup(account.id, destination.id, server.id, &archive.to_string())
        .await?;
    // An SSH host's login (password or key file), once its key is the pinned one: without it
    // nothing is asked of the server, and the backup is recorded as failed with the reason.
    let login = match archive_login(&engine.fleet, &destination.spec, &archive).await {
        Ok(login) => login,
        Err(error) => {
            let failed = BackupOutcome::Failed {
                error,
                log: String::new(),
            };
            let done = store.finish_backup(&ctx, started.id, &failed).await?;
            let _ = context.record_output(json!({
                "backup_id": done.id, "archive": done.archive, "state": done.state,
                "error": done.error,
            }));
            return Ok(WorkOutcome::Complete);
        }
    };
    let outcome = match client
        .backup_domain(account.domain.as_str(), &archive, login.as_ref())
        .await
    {
        Ok(log) => BackupOutcome::Succeeded {
            size_bytes: final_size_bytes(&log),
        },
        // The server ran the backup and said it failed: its own message and log lines are
        // the record; trying the same again at once would fail the same way.
        Err(e) if e.program_failed => BackupOutcome::Failed {
            log: failure_lines(e.output.as_deref().unwrap_or(&e.message)),
            error: explained_failure(&e.message),
        },
        // Asked and not answered in time: the server may still be writing it, so it is not
        // asked again now (the schedule's next turn does).
        Err(e) if e.unanswered => BackupOutcome::Failed {
            error: format!(
                "{} (the server may still be writing {archive}; VIRTUALMIN_API_BACKUP_TIMEOUT \
                 bounds the wait)",
                e.message
            ),
            log: String::new(),
        },
        // Not reached: recorded as failed, and the job is tried again.
        Err(e) => {
            let failed = BackupOutcome::Failed {
                error: e.message.clone(),
                log: String::new(),
            };
            store.finish_backup(&ctx, started.id, &failed).await?;
            return Err(e.into());
        }
    };
    let done = store.finish_backup(&ctx, started.id, &outcome).await?;
    let mut output = json!({
        "backup_id": done.id,
        "archive": done.archive,
        "state": done.state,
        "size_bytes": done.size_bytes,
    });
    if let BackupOutcome::Failed { error, .. } = &outcome {
        output["error"] = json!(error);
        let _ = context.record_output(output);
        // A failed backup is an outcome, recorded and alerted on; the job itself is done.
        return Ok(WorkOutcome::Complete);
    }
    let pruned = prune(engine, &ctx, &client, &done).await?;
    output["pruned"] = json!(pruned.ids);
    if !pruned.skipped.is_empty() {
        output["kept_for_now"] = json!(pruned.skipped);
    }
    let _ = context.record_output(output);
    Ok(WorkOutcome::Complete)
}

/// Retention, after a good backup: in each destination the account has good backups in, the
/// archives beyond what that destination keeps are deleted from the servers that wrote them
/// and marked pruned. A destination no longer written to keeps only its newest in the end.
async fn prune(
    engine: &Engine,
    ctx: &RequestContext,
    client: &Arc<VirtualminClient>,
    done: &Backup,
) -> Result<Pruned, BackupError> {
    let store = &engine.store;
    let filter = BackupFilter {
        account: Some(done.account_id),
        state: Some(BackupState::Succeeded),
        page: Page::new(None, Some(Page::MAX_LIMIT)),
        ..BackupFilter::default()
    };
    let good = store.backups(filter).await?;
    let mut destinations: Vec<BackupDestinationId> =
        good.iter().map(|b| b.destination_id).collect();
    destinations.sort();
    destinations.dedup();
    let mut access = Access::default();
    let mut pruned = Pruned::default();
    for destination in destinations {
        let spec = store.backup_destination(destination).await?.spec;
        let here: Vec<&Backup> = good
            .iter()
            .filter(|b| b.destination_id == destination)
            .collect();
        let dated: Vec<_> = here
            .iter()
            .map(|b| (b.id, b.finished_at.unwrap_or(b.started_at)))
            .collect();
        let doomed = to_prune(&dated, spec.keep_daily, spec.keep_weekly, Timestamp::now());
        for backup in here.into_iter().filter(|b| doomed.contains(&b.id)) {
            let Some(archive) = archive_of(backup) else {
                continue;
            };
            // On an SSH host any server deletes it; on a server's disk only that server,
            // when it is reachable (one written before a move).
            let on = match backup.server_id {
                _ if archive.shared() => Arc::clone(client),
                Some(id) if Some(id) == done.server_id => Arc::clone(client),
                Some(id) => match engine.fleet.client(&store.server(id).await?) {
                    Ok(client) => client,
                    Err(_) => continue,
                },
                None => continue,
            };
            let login = match access.login(engine, destination, &spec, &archive).await {
                Ok(login) => login,
                Err(why) => {
                    pruned.skipped.push(format!("{}: {why}", backup.archive));
                    continue;
                }
            };
            match on.delete_backup(&archive, login.as_ref()).await {
                Ok(()) => pruned.ids.push(backup.id),
                // Kept for the next backup's retention to try again.
                Err(e) => pruned
                    .skipped
                    .push(format!("{}: {}", backup.archive, e.message)),
            }
        }
    }
    store.mark_pruned(ctx, done.account_id, &pruned.ids).await?;
    // A failed backup may have left part of an archive: those since the good backup before
    // this one are deleted too (their records stay, as the account's history).
    let before = good
        .iter()
        .filter(|b| b.id != done.id)
        .filter_map(|b| b.finished_at)
        .max();
    let failed = BackupFilter {
        account: Some(done.account_id),
        state: Some(BackupState::Failed),
        page: Page::new(None, Some(Page::MAX_LIMIT)),
        ..BackupFilter::default()
    };
    for backup in store.backups(failed).await? {
        let Some(archive) = archive_of(&backup) else {
            continue;
        };
        let elsewhere = !archive.shared() && backup.server_id != done.server_id;
        if before.is_some_and(|b| backup.started_at < b) || elsewhere {
            continue;
        }
        let spec = store.backup_destination(backup.destination_id).await?.spec;
        let login = match access
            .login(engine, backup.destination_id, &spec, &archive)
            .await
        {
            Ok(login) => login,
            Err(_) => continue,
        };
        if let Err(e) = client.delete_backup(&archive, login.as_ref()).await {
            tracing::warn!(archive = %backup.archive, error = %e, "deleting a failed backup's archive failed");
        }
    }
    for why in &pruned.skipped {
        tracing::warn!(account = %done.account_id, reason = %why, "an old archive is kept");
    }
    Ok(pruned)
}

/// What retention deleted, and the archives it had to keep (with why).
#[derive(Debug, Default)]
struct Pruned {
    ids: Vec<drover_core::BackupId>,
    skipped: Vec<String>,
}

/// Each SSH host's login once its key was checked: once per destination and host in one
/// job, whatever the number of archives there.
#[derive(Default)]
struct Access(HashMap<(BackupDestinationId, String), Result<Option<SshLogin>, String>>);

impl Access {
    async fn login(
        &mut self,
        engine: &Engine,
        destination: BackupDestinationId,
        spec: &drover_core::BackupDestinationSpec,
        archive: &BackupLocation,
    ) -> Result<Option<SshLogin>, String> {
        let BackupLocation::Ssh(ssh) = archive else {
            return Ok(None);
        };
        let key = (
            destination,
            format!("{}@{}:{}", ssh.user, ssh.host, ssh.port),
        );
        if let Some(known) = self.0.get(&key) {
            return known.clone();
        }
        let found = archive_login(&engine.fleet, spec, archive).await;
        self.0.insert(key, found.clone());
        found
    }
}

/// A recorded archive's place, as drover wrote it.
fn archive_of(backup: &Backup) -> Option<BackupLocation> {
    BackupLocation::parse(&backup.archive)
        .inspect_err(
            |e| tracing::warn!(backup = %backup.id, error = %e, "an unreadable archive is kept"),
        )
        .ok()
}
