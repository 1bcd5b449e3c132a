//! Backups of accounts' content: the destinations they go to, and a backup asked for now (the
//! schedule asks for the rest). The server writes the archive; a job asks it and records
//! the outcome.

use drover_core::{
    AccountId, BackupDestinationId, BackupDestinationPatch, BackupDestinationSpec, BackupFacts,
    BackupId, DesiredState, JobId, RestoreFacts, SecretSources, ServerId, ServiceStatus,
    backup_refusal, restore_refusal,
};
use drover_store::jobs::{BackupAccount, RestoreAccount, SetAccountPassword};
use drover_store::{
    Account, Backup, BackupDestination, BackupFilter, Job, JobFilter, RequestContext, Store,
};
use riverqueue::JobArgs;
use serde::Serialize;
use serde_json::json;

use super::Result;

/// Records a destination (checked by core's rules first, its credentials against where
/// secrets may be read from).
pub async fn create_backup_destination(
    store: &dyn Store,
    ctx: &RequestContext,
    sources: &SecretSources,
    spec: BackupDestinationSpec,
) -> Result<BackupDestination> {
    let spec = spec.validated()?;
    if let Some(credentials) = &spec.credentials {
        sources.check(credentials)?;
    }
    Ok(store.create_backup_destination(ctx, &spec).await?)
}

/// Changes a destination (the whole new spec checked by core's rules); its name stays.
pub async fn update_backup_destination(
    store: &dyn Store,
    ctx: &RequestContext,
    sources: &SecretSources,
    id: BackupDestinationId,
    patch: BackupDestinationPatch,
) -> Result<BackupDestination> {
    let before = store.backup_destination(id).await?.spec;
    let spec = before.clone().patched(patch).validated()?;
    if let Some(credentials) = &spec.credentials {
        sources.check(credentials)?;
    }
    let held = BackupFilter {
        destination: Some(id),
        state: Some(drover_core::BackupState::Succeeded),
        page: drover_store::Page::new(None, Some(1)),
        ..BackupFilter::default()
    };
    let holds_backups = !store.backups(held).await?.is_empty();
    if let Some(refused) = before.change_refusal(&spec, holds_backups) {
        return Err(refused.into());
    }
    Ok(store.update_backup_destination(ctx, id, &spec).await?)
}

/// Forgets a destination no backup was written to.
pub async fn delete_backup_destination(
    store: &dyn Store,
    ctx: &RequestContext,
    id: BackupDestinationId,
) -> Result<()> {
    Ok(store.delete_backup_destination(ctx, id).await?)
}

/// Queues a backup of the account now, to `destination` or the default one: refused when core's
/// rules say it cannot be backed up now (deleted, on no server yet, its server taking no work),
/// or when no destination is named and none is the default. A backup of the account to the same
/// destination waiting already is joined; one to another destination is refused until it ran.
pub async fn backup_account(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    destination: Option<BackupDestinationId>,
) -> Result<JobId> {
    let record = store.account(account).await?;
    let refused = |why: &str| drover_core::Error::BackupRefused {
        domain: record.domain_unicode.clone(),
        why: why.to_owned(),
    };
    if let Some(why) = backup_refusal(&backup_facts(store, &record).await?) {
        return Err(refused(&why).into());
    }
    let destination = match destination {
        Some(id) => store.backup_destination(id).await?,
        None => store.default_backup_destination().await?.ok_or_else(|| {
            refused(
                "no destination was named and none is the default (add one with \
                 `drover backups destinations add NAME --location DIR --default`)",
            )
        })?,
    };
    // A backup of the account waiting or running is joined: only if it goes where this one
    // would.
    if let Some(other) = open_job(store, account, BackupAccount::KIND).await?
        && other.args["destination_id"] != json!(destination.id)
    {
        return Err(refused(&format!(
            "a backup to another destination waits or runs already (job {}): ask again once \
             it ended",
            other.id
        ))
        .into());
    }
    let queued = store
        .request_backup(ctx, account, destination.id, Some("backup.requested"))
        .await?;
    Ok(queued.id)
}

/// The account's job of `kind` waiting or running, if there is one.
async fn open_job(
    store: &dyn Store,
    account: AccountId,
    kind: &str,
) -> Result<Option<drover_store::JobSummary>> {
    use riverqueue::JobState::*;
    let filter = JobFilter {
        states: vec![Available, Scheduled, Retryable, Pending, Running],
        account_id: Some(account),
        limit: None,
    };
    let jobs = store.jobs(filter).await?;
    Ok(jobs.into_iter().find(|j| j.kind == kind))
}

/// What core's backup rule needs to know of the account, as drover's records hold it now.
pub(crate) async fn backup_facts(store: &dyn Store, record: &Account) -> Result<BackupFacts> {
    let service = store.service(record.service_id).await?;
    let server = match record.server_id {
        Some(id) if record.desired_state != DesiredState::Absent => Some(store.server(id).await?),
        _ => None,
    };
    let moving = store
        .migration(record.id)
        .await?
        .is_some_and(|m| Some(m.to_server) != record.server_id);
    Ok(BackupFacts {
        deleted: service.status == ServiceStatus::Terminated,
        made: record.observed_state.is_some(),
        server: server.as_ref().map(|s| s.state),
        login_refused: server.as_ref().is_some_and(|s| s.login_refused.is_some()),
        moving,
    })
}

/// What restoring an account would do, for an operator to read before repeating its domain.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RestorePlan {
    #[schema(value_type = i64)]
    pub account_id: AccountId,
    pub domain: String,
    #[schema(value_type = i64)]
    pub server_id: ServerId,
    pub server: String,
    /// The backup restored from.
    pub backup: Backup,
    /// Seconds since that backup finished.
    pub backup_age_seconds: i64,
    /// What the restore replaces.
    pub replaces: String,
    /// What follows it.
    pub then: String,
}

/// The plan of restoring the account from `from` (its last good backup unless named), on its
/// server or onto server `to`: refused unless the backup is a good one of the account's own
/// that the server restoring it can read (on an SSH host, or on that server's own disk), and
/// the account is there to restore.
pub async fn plan_restore(
    store: &dyn Store,
    account: AccountId,
    from: Option<BackupId>,
    to: Option<ServerId>,
) -> Result<RestorePlan> {
    let record = store.account(account).await?;
    let refused = |why: String| drover_core::Error::RestoreRefused {
        domain: record.domain_unicode.clone(),
        why,
    };
    let backup = match from {
        Some(id) => store.backup(id).await?,
        None => store
            .last_good_backup(account)
            .await?
            .ok_or_else(|| refused("there is no good backup to restore it from".to_owned()))?,
    };
    let service = store.service(record.service_id).await?;
    let moving = store
        .migration(account)
        .await?
        .is_some_and(|m| Some(m.to_server) != record.server_id);
    // Onto another server: a move there, its content from the backup.
    let onto = to.filter(|to| Some(*to) != record.server_id);
    let restoring_on = onto.or(record.server_id);
    let server = match restoring_on {
        Some(id) => Some(store.server(id).await?),
        None => None,
    };
    let facts = RestoreFacts {
        deleted: service.status == ServiceStatus::Terminated
            || record.desired_state == DesiredState::Absent,
        server: restoring_on,
        backup_of_account: backup.account_id == account,
        backup_state: backup.state,
        backup_server: backup.server_id,
        backup_shared: drover_core::BackupLocation::parse(&backup.archive)
            .is_ok_and(|archive| archive.shared()),
        moving,
        server_state: server.as_ref().map(|s| s.state),
        login_refused: server.as_ref().is_some_and(|s| s.login_refused.is_some()),
    };
    if let Some(why) = restore_refusal(&facts) {
        return Err(refused(format!("not from backup {}: {why}", backup.id)).into());
    }
    let server_id = restoring_on.expect("a restore that may run has a server");
    let server = server.map(|s| s.spec.name.to_string()).unwrap_or_default();
    let finished = backup.finished_at.unwrap_or(backup.started_at);
    let domain = &record.domain_unicode;
    let replaces = match onto {
        None => format!(
            "the files, mail and databases of {domain} on {server} as they are now, by those \
             backed up at {finished} (files made since are deleted; mailboxes and databases made \
             since stay)"
        ),
        Some(_) => format!(
            "nothing on {server}: {domain} is made there from the backup taken at {finished}, \
             then moves there (its DNS switched once the restore is checked); its copy on its \
             current server, with anything changed since the backup, is disabled and deleted \
             after the grace period"
        ),
    };
    Ok(RestorePlan {
        account_id: account,
        domain: record.domain_unicode.clone(),
        server_id,
        replaces,
        then: "drover's records are applied on top: the account's state, plan, features and \
               password, and the mailboxes, databases, aliases and sub-servers drover holds \
               (others the backup brings back are left, and drift lists them)"
            .to_owned(),
        backup_age_seconds: jiff::Timestamp::now().duration_since(finished).as_secs(),
        backup,
        server,
    })
}

/// Where a restore puts the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreOnto {
    /// Its own server: its content replaced there.
    ItsServer,
    /// Another server: a move there, its old copy kept for `grace`.
    Server {
        id: ServerId,
        grace: std::time::Duration,
    },
}

/// Restores the account from `from` (its last good backup unless named) once `confirmation`
/// repeats its domain: the plan is checked again, and the restore queued as a job (onto
/// another server: a move with the backup's content), audited.
pub async fn restore_account(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    from: Option<BackupId>,
    onto: RestoreOnto,
    confirmation: &str,
) -> Result<(RestorePlan, JobId)> {
    let to = match onto {
        RestoreOnto::ItsServer => None,
        RestoreOnto::Server { id, .. } => Some(id),
    };
    let plan = plan_restore(store, account, from, to).await?;
    if let Some(other) = open_job(store, account, RestoreAccount::KIND).await? {
        return Err(drover_core::Error::RestoreRefused {
            domain: plan.domain,
            why: format!(
                "a restore waits or runs already (job {}): ask again once it ended",
                other.id
            ),
        }
        .into());
    }
    let record = store.account(account).await?;
    record.domain.confirm(confirmation, || {
        format!(
            "restore account {account} from backup {} on {}",
            plan.backup.id, plan.server
        )
    })?;
    if let RestoreOnto::Server { id, grace } = onto
        && Some(id) != record.server_id
    {
        let (_, job) =
            super::moves::start_restore_move(store, ctx, account, id, grace, plan.backup.id)
                .await?;
        return Ok((plan, job));
    }
    let mut tx = store.write().await?;
    let args = RestoreAccount {
        account_id: account.get(),
        backup_id: plan.backup.id.get(),
    };
    let queued = tx.enqueue(ctx, Job::Restore(args)).await?;
    tx.audit(
        ctx,
        "account.restore_requested",
        format!("account:{account}"),
        json!({
            "job": queued.id, "backup_id": plan.backup.id, "archive": plan.backup.archive,
            "server_id": plan.server_id,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok((plan, queued.id))
}

/// The account's newest good backup on an SSH host: the copy any server can restore, and the
/// only one left when its server is lost.
pub async fn last_good_shared_backup(
    store: &dyn Store,
    account: AccountId,
) -> drover_store::Result<Option<Backup>> {
    let good = BackupFilter {
        account: Some(account),
        state: Some(drover_core::BackupState::Succeeded),
        page: drover_store::Page::new(None, Some(drover_store::Page::MAX_LIMIT)),
        ..BackupFilter::default()
    };
    Ok(store
        .backups(good)
        .await?
        .into_iter()
        .find(|b| drover_core::BackupLocation::parse(&b.archive).is_ok_and(|a| a.shared())))
}

/// After a restore, drover's records win: a converge of the account (a new generation) and
/// its sealed password set again, queued in one transaction.
pub async fn after_restore(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
) -> Result<()> {
    let mut tx = store.write().await?;
    super::services::converge(&mut *tx, ctx, account).await?;
    if tx.account(account).await?.has_sealed_password {
        let args = SetAccountPassword {
            account_id: account.get(),
        };
        tx.enqueue(ctx, Job::SetPassword(args)).await?;
    }
    tx.commit().await?;
    Ok(())
}
