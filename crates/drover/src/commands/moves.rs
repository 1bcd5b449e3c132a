//! Moving an account to another server: started by an operator (a migration), by a drain or by
//! failover off a lost server; stepped by its job (`migrate_account`); confirmed by an operator
//! to delete the old copy before its grace period ends.

use drover_core::{AccountId, JobId, MoveRefusal, MoveRequest, MoveState, ServerId, check_move};
use drover_store::jobs::MigrateAccount;
use drover_store::{Job, Migration, RequestContext, Store, StoreError, Write};
use serde_json::json;

use super::Result;

/// Starts moving the account to server `to`; its old copy is kept for `grace` unless an
/// operator confirms earlier. Refused when its content could not be carried, unless moving
/// `without` it is allowed.
pub async fn start_migration(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    to: ServerId,
    grace: std::time::Duration,
    without: WithoutContent,
) -> Result<(Migration, JobId)> {
    if let (Err(why), WithoutContent::Refused) = (content_carrier(store).await?, without) {
        let domain = store.account(account).await?.domain_unicode;
        return Err(drover_core::Error::ContentWouldStay {
            what: format!("moving {domain}"),
            why,
        }
        .into());
    }
    begin_move(store, ctx, account, to, grace, Kind::Planned(without)).await
}

/// Whether a planned move may go ahead when it cannot carry the account's content (the
/// accounts then start empty on their new servers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WithoutContent {
    #[default]
    Refused,
    Allowed,
}

impl WithoutContent {
    pub fn allowed(allowed: bool) -> Self {
        if allowed {
            Self::Allowed
        } else {
            Self::Refused
        }
    }
}

/// Through which destination planned moves carry content (its name), or why they cannot: it
/// must be the default, and an SSH host every server reaches.
pub(crate) async fn content_carrier(
    store: &dyn Store,
) -> drover_store::Result<std::result::Result<String, String>> {
    Ok(match store.default_backup_destination().await? {
        Some(d) if d.spec.location.shared() => Ok(d.spec.name.to_string()),
        Some(d) => Err(format!(
            "the default backup destination {} is on each server's own disk",
            d.spec.name
        )),
        None => Err("no backup destination is the default".to_owned()),
    })
}

/// Starts moving the account to server `to` with the content of `backup` (a restore onto
/// another server); its old copy is kept for `grace` unless an operator confirms earlier.
pub(crate) async fn start_restore_move(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    to: ServerId,
    grace: std::time::Duration,
    backup: drover_core::BackupId,
) -> Result<(Migration, JobId)> {
    begin_move(store, ctx, account, to, grace, Kind::Restore(backup)).await
}

/// Starts recreating the account of a lost server on server `to`; nothing is done to the lost
/// copy.
pub async fn start_failover(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    to: ServerId,
) -> Result<(Migration, JobId)> {
    begin_move(
        store,
        ctx,
        account,
        to,
        std::time::Duration::ZERO,
        Kind::Failover,
    )
    .await
}

/// Where a move's content comes from.
#[derive(Clone, Copy)]
enum Kind {
    /// A backup taken on the source as it begins (or none, where the operator allowed it).
    Planned(WithoutContent),
    /// The last good backup: the source is lost.
    Failover,
    /// This backup.
    Restore(drover_core::BackupId),
}

/// A move may start when core's [`check_move`] says so; it is recorded with its job and audit
/// event in one transaction.
async fn begin_move(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    to: ServerId,
    grace: std::time::Duration,
    kind: Kind,
) -> Result<(Migration, JobId)> {
    let failover = matches!(kind, Kind::Failover);
    let restore_from = match kind {
        Kind::Restore(backup) => Some(backup),
        Kind::Planned(_) | Kind::Failover => None,
    };
    let without_content = matches!(kind, Kind::Planned(WithoutContent::Allowed));
    let mut tx = store.write().await?;
    let moved = tx.account(account).await?;
    let target = tx.server(to).await?;
    let moving = tx
        .migration(account)
        .await?
        .is_some_and(|m| m.state.under_way());
    let from = check_move(&MoveRequest {
        account,
        from: moved.server_id,
        desired: moved.desired_state,
        has_sealed_password: moved.has_sealed_password,
        moving,
        to,
        target_name: target.spec.name.as_str(),
        target_state: target.state,
    })
    .map_err(drover_core::Error::from)?;
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX / 2);
    let delete_after = jiff::Timestamp::from_millisecond(
        jiff::Timestamp::now()
            .as_millisecond()
            .saturating_add(grace_ms),
    )
    .unwrap_or(jiff::Timestamp::MAX);
    tx.insert_migration(&drover_store::NewMigration {
        account,
        from,
        to,
        delete_after,
        failover,
        restore_from,
        without_content,
    })
    .await?;
    let job = migrate(&mut *tx, ctx, account, None).await?;
    let action = if failover {
        "account.failover"
    } else {
        "account.migrate"
    };
    tx.audit(
        ctx,
        action,
        format!("account:{account}"),
        json!({
            "from": from, "to": to, "grace_seconds": grace.as_secs(), "job": job,
            "restore_from": restore_from, "without_content": without_content,
        }),
    )
    .await?;
    let migration = recorded(&mut *tx, account).await?;
    tx.commit().await?;
    Ok((migration, job))
}

/// Lets the move delete the old copy now, once `confirm_domain` repeats the account's domain.
pub async fn confirm_migration(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    confirm_domain: &str,
) -> Result<JobId> {
    let mut tx = store.write().await?;
    let moved = tx.account(account).await?;
    moved.domain.confirm(confirm_domain, || {
        format!("delete the old copy of account {account}")
    })?;
    let Some(migration) = tx.migration(account).await?.filter(|m| m.state.under_way()) else {
        return Err(drover_core::Error::from(MoveRefusal::NotMoving { account }).into());
    };
    tx.update_migration_confirmed(account).await?;
    let job = migrate(&mut *tx, ctx, account, None).await?;
    tx.audit(
        ctx,
        "account.migrate.confirm",
        format!("account:{account}"),
        json!({ "from_server": migration.from_server, "job": job }),
    )
    .await?;
    tx.commit().await?;
    Ok(job)
}

/// Records the move's next state; once switched, the account lives on the target.
pub async fn advance_migration(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    state: MoveState,
) -> Result<Migration> {
    let mut tx = store.write().await?;
    let before = recorded(&mut *tx, account).await?;
    tx.update_migration_state(account, state).await?;
    if state == MoveState::Switched {
        tx.update_account_server(account, before.to_server).await?;
    }
    tx.audit(
        ctx,
        "account.migrate.step",
        format!("account:{account}"),
        json!({ "from_state": before.state, "to_state": state, "to_server": before.to_server }),
    )
    .await?;
    let after = recorded(&mut *tx, account).await?;
    tx.commit().await?;
    Ok(after)
}

/// Runs the move's job again at `at` (the end of the grace period, say).
pub async fn schedule_migration(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    at: jiff::Timestamp,
) -> Result<JobId> {
    let mut tx = store.write().await?;
    let job = migrate(&mut *tx, ctx, account, Some(at)).await?;
    tx.commit().await?;
    Ok(job)
}

async fn migrate(
    tx: &mut dyn Write,
    ctx: &RequestContext,
    account: AccountId,
    at: Option<jiff::Timestamp>,
) -> Result<JobId> {
    let args = MigrateAccount {
        account_id: account.get(),
    };
    Ok(tx.enqueue(ctx, Job::Migrate { args, at }).await?.id)
}

async fn recorded(tx: &mut dyn Write, account: AccountId) -> Result<Migration> {
    Ok(tx
        .migration(account)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "migration",
            id: account.to_string(),
        })?)
}
