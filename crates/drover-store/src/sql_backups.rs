// The BackupStore on one SQL backend, included after `sql_store.rs` by `postgres.rs` and
// `sqlite.rs` (it uses that file's transaction macros and helpers).

mod backup_sql {
    use async_trait::async_trait;
    use drover_core::{
        AccountId, BackupDestinationId, BackupDestinationSpec, BackupId, BackupLocation,
        BackupState, CredentialRef, PlanId, ServerId, ServerName, SshHostKey, SshKeyFile,
    };
    use jiff::Timestamp;
    use jiff_sqlx::Timestamp as SqlTimestamp;
    use serde_json::json;

    use super::{SqlStore, Tx, append_audit, append_event, begin, begin_read, insert_job};
    use crate::backup_store::*;
    use crate::error::{Conflict, UniqueKey, unique_violation};
    use crate::jobs::BackupAccount;
    use crate::rows::{parse, sql_now};
    use crate::{Enqueued, RequestContext, Result, StoreError};

    const DESTINATION_COLUMNS: &str = "id, name, location, credentials, key_file, host_key, keep_daily, keep_weekly, is_default, created_at \
         FROM backup_destinations";

    const BACKUP_COLUMNS: &str = "b.id, b.account_id, a.domain, b.destination_id, b.server_id, \
         b.archive, b.state, b.size_bytes, b.started_at, b.finished_at, b.error, b.log \
         FROM backups b JOIN accounts a ON a.id = b.account_id";

    #[derive(sqlx::FromRow)]
    struct DestinationRow {
        id: i64,
        name: String,
        location: String,
        credentials: Option<String>,
        key_file: Option<String>,
        host_key: Option<String>,
        keep_daily: i32,
        keep_weekly: i32,
        is_default: bool,
        created_at: SqlTimestamp,
    }

    impl DestinationRow {
        fn into_model(self) -> Result<BackupDestination> {
            let keep = |n: i32| u32::try_from(n).unwrap_or(0);
            Ok(BackupDestination {
                id: BackupDestinationId(self.id),
                spec: BackupDestinationSpec {
                    name: parse("backup destination name", &self.name, ServerName::parse)?,
                    location: parse("backup location", &self.location, BackupLocation::parse)?,
                    credentials: self
                        .credentials
                        .as_deref()
                        .map(|c| parse("credentials", c, CredentialRef::parse))
                        .transpose()?,
                    key_file: self
                        .key_file
                        .as_deref()
                        .map(|k| parse("key file", k, SshKeyFile::parse))
                        .transpose()?,
                    host_key: self
                        .host_key
                        .as_deref()
                        .map(|k| parse("host key", k, SshHostKey::parse))
                        .transpose()?,
                    keep_daily: keep(self.keep_daily),
                    keep_weekly: keep(self.keep_weekly),
                    default: self.is_default,
                },
                created_at: self.created_at.to_jiff(),
            })
        }
    }

    #[derive(sqlx::FromRow)]
    struct BackupRow {
        id: i64,
        account_id: i64,
        domain: String,
        destination_id: i64,
        server_id: Option<i64>,
        archive: String,
        state: String,
        size_bytes: Option<i64>,
        started_at: SqlTimestamp,
        finished_at: Option<SqlTimestamp>,
        error: Option<String>,
        log: Option<String>,
    }

    impl BackupRow {
        fn into_model(self) -> Result<Backup> {
            Ok(Backup {
                id: BackupId(self.id),
                account_id: AccountId(self.account_id),
                domain: parse(
                    "backup domain",
                    &self.domain,
                    drover_core::DomainName::parse,
                )?,
                destination_id: BackupDestinationId(self.destination_id),
                server_id: self.server_id.map(ServerId),
                archive: self.archive,
                state: parse("backup state", &self.state, BackupState::parse)?,
                size_bytes: self.size_bytes.and_then(|n| u64::try_from(n).ok()),
                started_at: self.started_at.to_jiff(),
                finished_at: self.finished_at.map(|t| t.to_jiff()),
                error: self.error,
                log: self.log,
            })
        }
    }

    async fn destination(tx: &mut Tx, id: BackupDestinationId) -> Result<BackupDestination> {
        let row: Option<DestinationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DESTINATION_COLUMNS} WHERE id = $1"
        )))
        .bind(id.get())
        .fetch_optional(&mut **tx)
        .await?;
        row.ok_or_else(|| StoreError::not_found("backup destination", id))?
            .into_model()
    }

    async fn backup(tx: &mut Tx, id: BackupId) -> Result<Backup> {
        let row: Option<BackupRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {BACKUP_COLUMNS} WHERE b.id = $1"
        )))
        .bind(id.get())
        .fetch_optional(&mut **tx)
        .await?;
        row.ok_or_else(|| StoreError::not_found("backup", id))?
            .into_model()
    }

    fn at(t: Timestamp) -> SqlTimestamp {
        SqlTimestamp::from(t)
    }

    #[async_trait]
    impl BackupStore for SqlStore {
        async fn create_backup_destination(
            &self,
            ctx: &RequestContext,
            spec: &BackupDestinationSpec,
        ) -> Result<BackupDestination> {
            write_tx!(self, tx, {
                let now = sql_now();
                if spec.default {
                    sqlx::query(
                        "UPDATE backup_destinations SET is_default = FALSE, updated_at = $1 \
                         WHERE is_default",
                    )
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                }
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO backup_destinations (name, location, keep_daily, keep_weekly, \
                     is_default, created_at, updated_at, credentials, host_key, key_file) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9) RETURNING id",
                )
                .bind(spec.name.as_str())
                .bind(spec.location.to_string())
                .bind(i32::try_from(spec.keep_daily).unwrap_or(i32::MAX))
                .bind(i32::try_from(spec.keep_weekly).unwrap_or(i32::MAX))
                .bind(spec.default)
                .bind(now)
                .bind(spec.credentials.as_ref().map(ToString::to_string))
                .bind(spec.host_key.as_ref().map(ToString::to_string))
                .bind(spec.key_file.as_ref().map(ToString::to_string))
                .fetch_one(&mut **tx)
                .await
                .map_err(|e| match unique_violation(&e) {
                    Some(_) => StoreError::duplicate(
                        UniqueKey::Name,
                        format!("a backup destination named {} exists already", spec.name),
                    ),
                    None => e.into(),
                })?;
                let id = BackupDestinationId(id);
                append_audit(
                    tx,
                    ctx,
                    "backup_destination.create",
                    format!("backup_destination:{id}"),
                    json!({ "destination": spec }),
                )
                .await?;
                destination(tx, id).await
            })
        }

        async fn update_backup_destination(
            &self,
            ctx: &RequestContext,
            id: BackupDestinationId,
            spec: &BackupDestinationSpec,
        ) -> Result<BackupDestination> {
            write_tx!(self, tx, {
                let before = destination(tx, id).await?;
                let now = sql_now();
                if spec.default {
                    sqlx::query(
                        "UPDATE backup_destinations SET is_default = FALSE, updated_at = $1 \
                         WHERE is_default AND id <> $2",
                    )
                    .bind(now)
                    .bind(id.get())
                    .execute(&mut **tx)
                    .await?;
                }
                sqlx::query(
                    "UPDATE backup_destinations SET location = $2, keep_daily = $3, \
                     keep_weekly = $4, is_default = $5, updated_at = $6, credentials = $7, \
                     host_key = $8, key_file = $9 WHERE id = $1",
                )
                .bind(id.get())
                .bind(spec.location.to_string())
                .bind(i32::try_from(spec.keep_daily).unwrap_or(i32::MAX))
                .bind(i32::try_from(spec.keep_weekly).unwrap_or(i32::MAX))
                .bind(spec.default)
                .bind(now)
                .bind(spec.credentials.as_ref().map(ToString::to_string))
                .bind(spec.host_key.as_ref().map(ToString::to_string))
                .bind(spec.key_file.as_ref().map(ToString::to_string))
                .execute(&mut **tx)
                .await?;
                append_audit(
                    tx,
                    ctx,
                    "backup_destination.update",
                    format!("backup_destination:{id}"),
                    json!({ "before": before.spec, "after": spec }),
                )
                .await?;
                destination(tx, id).await
            })
        }

        async fn backup_destinations(&self) -> Result<Vec<BackupDestination>> {
            read_tx!(self, tx, {
                let rows: Vec<DestinationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {DESTINATION_COLUMNS} ORDER BY id"
                )))
                .fetch_all(&mut **tx)
                .await?;
                rows.into_iter().map(DestinationRow::into_model).collect()
            })
        }

        async fn backup_destination(&self, id: BackupDestinationId) -> Result<BackupDestination> {
            read_tx!(self, tx, { destination(tx, id).await })
        }

        async fn default_backup_destination(&self) -> Result<Option<BackupDestination>> {
            read_tx!(self, tx, {
                let row: Option<DestinationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {DESTINATION_COLUMNS} WHERE is_default"
                )))
                .fetch_optional(&mut **tx)
                .await?;
                row.map(DestinationRow::into_model).transpose()
            })
        }

        async fn delete_backup_destination(
            &self,
            ctx: &RequestContext,
            id: BackupDestinationId,
        ) -> Result<()> {
            write_tx!(self, tx, {
                let gone = destination(tx, id).await?;
                let held: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM backups WHERE destination_id = $1")
                        .bind(id.get())
                        .fetch_one(&mut **tx)
                        .await?;
                if held > 0 {
                    return Err(StoreError::conflict(
                        Conflict::InUse,
                        format!(
                            "backup destination {} holds the record of {held} backups: they are \
                             the accounts' history and may still be restored; nothing was deleted",
                            gone.spec.name
                        ),
                    ));
                }
                sqlx::query("DELETE FROM backup_destinations WHERE id = $1")
                    .bind(id.get())
                    .execute(&mut **tx)
                    .await?;
                append_audit(
                    tx,
                    ctx,
                    "backup_destination.delete",
                    format!("backup_destination:{id}"),
                    json!({ "destination": gone.spec }),
                )
                .await?;
                Ok(())
            })
        }

        async fn request_backup(
            &self,
            ctx: &RequestContext,
            account: AccountId,
            destination_id: BackupDestinationId,
            action: Option<&str>,
        ) -> Result<Enqueued> {
            write_tx!(self, tx, {
                destination(tx, destination_id).await?;
                let args = BackupAccount {
                    account_id: account.get(),
                    destination_id: destination_id.get(),
                };
                let opts = riverqueue::InsertOpts::default().with_max_attempts(3);
                let (id, joined) =
                    insert_job(&self.queue, tx, ctx, Some(account), args, opts).await?;
                if let Some(action) = action {
                    append_audit(
                        tx,
                        ctx,
                        action,
                        format!("account:{account}"),
                        json!({ "job": id, "joined": joined, "destination_id": destination_id }),
                    )
                    .await?;
                }
                Ok(Enqueued { id, joined })
            })
        }

        async fn start_backup(
            &self,
            account: AccountId,
            destination: BackupDestinationId,
            server: ServerId,
            archive: &str,
        ) -> Result<Backup> {
            write_tx!(self, tx, {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO backups (account_id, destination_id, server_id, archive, state, \
                     started_at) VALUES ($1, $2, $3, $4, 'running', $5) RETURNING id",
                )
                .bind(account.get())
                .bind(destination.get())
                .bind(server.get())
                .bind(archive)
                .bind(sql_now())
                .fetch_one(&mut **tx)
                .await?;
                backup(tx, BackupId(id)).await
            })
        }

        async fn interrupt_backups(&self, account: AccountId) -> Result<u64> {
            write_tx!(self, tx, {
                Ok(sqlx::query(
                    "UPDATE backups SET state = 'failed', finished_at = $2, error = $3 \
                     WHERE account_id = $1 AND state = 'running'",
                )
                .bind(account.get())
                .bind(sql_now())
                .bind(
                    "interrupted before the server answered (drover stopped, or the job ran past \
                     DROVER_JOB_TIMEOUT): the archive may be partial",
                )
                .execute(&mut **tx)
                .await?
                .rows_affected())
            })
        }

        async fn finish_backup(
            &self,
            ctx: &RequestContext,
            id: BackupId,
            outcome: &BackupOutcome,
        ) -> Result<Backup> {
            write_tx!(self, tx, {
                let now = sql_now();
                match outcome {
                    BackupOutcome::Succeeded { size_bytes } => {
                        sqlx::query(
                            "UPDATE backups SET state = 'succeeded', size_bytes = $2, \
                             finished_at = $3 WHERE id = $1",
                        )
                        .bind(id.get())
                        .bind(size_bytes.and_then(|n| i64::try_from(n).ok()))
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                    }
                    BackupOutcome::Failed { error, log } => {
                        sqlx::query(
                            "UPDATE backups SET state = 'failed', error = $2, log = $3, \
                             finished_at = $4 WHERE id = $1",
                        )
                        .bind(id.get())
                        .bind(error)
                        .bind(log)
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                    }
                }
                let done = backup(tx, id).await?;
                if let BackupOutcome::Failed { error, .. } = outcome {
                    append_audit(
                        tx,
                        ctx,
                        "backup.failed",
                        format!("account:{}", done.account_id),
                        json!({ "backup_id": id, "archive": done.archive, "message": error }),
                    )
                    .await?;
                    let account = SqlStore::fetch_account(tx, done.account_id).await?;
                    let event = crate::NewEvent::account(
                        drover_core::EventType::BackupFailed,
                        &account,
                        json!({ "backup_id": id, "archive": done.archive, "message": error }),
                    );
                    append_event(tx, &self.queue, ctx, &event).await?;
                }
                Ok(done)
            })
        }

        async fn mark_pruned(
            &self,
            ctx: &RequestContext,
            account: AccountId,
            ids: &[BackupId],
        ) -> Result<()> {
            if ids.is_empty() {
                return Ok(());
            }
            write_tx!(self, tx, {
                let mut archives = Vec::new();
                for id in ids {
                    let archive: Option<String> = sqlx::query_scalar(
                        "UPDATE backups SET state = 'pruned' WHERE id = $1 AND account_id = $2 \
                         RETURNING archive",
                    )
                    .bind(id.get())
                    .bind(account.get())
                    .fetch_optional(&mut **tx)
                    .await?;
                    archives.extend(archive);
                }
                append_audit(
                    tx,
                    ctx,
                    "backup.pruned",
                    format!("account:{account}"),
                    json!({ "backup_ids": ids, "archives": archives }),
                )
                .await?;
                Ok(())
            })
        }

        async fn backup(&self, id: BackupId) -> Result<Backup> {
            read_tx!(self, tx, { backup(tx, id).await })
        }

        async fn backups(&self, filter: BackupFilter) -> Result<Vec<Backup>> {
            read_tx!(self, tx, {
                let rows: Vec<BackupRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {BACKUP_COLUMNS} WHERE ($1 IS NULL OR b.id < $1) \
                     AND ($2 IS NULL OR b.account_id = $2) \
                     AND ($3 IS NULL OR b.destination_id = $3) \
                     AND ($4 IS NULL OR b.state = $4) ORDER BY b.id DESC LIMIT $5"
                )))
                .bind(filter.page.after)
                .bind(filter.account.map(AccountId::get))
                .bind(filter.destination.map(BackupDestinationId::get))
                .bind(filter.state.map(BackupState::as_str))
                .bind(i64::from(filter.page.limit))
                .fetch_all(&mut **tx)
                .await?;
                rows.into_iter().map(BackupRow::into_model).collect()
            })
        }

        async fn last_good_backup(&self, account: AccountId) -> Result<Option<Backup>> {
            read_tx!(self, tx, {
                let row: Option<BackupRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {BACKUP_COLUMNS} WHERE b.account_id = $1 AND b.state = 'succeeded' \
                     ORDER BY b.finished_at DESC, b.id DESC LIMIT 1"
                )))
                .bind(account.get())
                .fetch_optional(&mut **tx)
                .await?;
                row.map(BackupRow::into_model).transpose()
            })
        }

        async fn accounts_due_for_backup(
            &self,
            plan: PlanId,
            since: Timestamp,
            limit: u32,
        ) -> Result<Vec<AccountId>> {
            read_tx!(self, tx, {
                let ids: Vec<i64> = sqlx::query_scalar(
                    "SELECT a.id FROM accounts a WHERE a.server_id IS NOT NULL \
                     AND a.desired_state <> 'absent' AND a.observed_state IS NOT NULL \
                     AND NOT EXISTS (SELECT 1 FROM account_migrations m WHERE m.account_id = a.id \
                         AND m.state = 'creating') \
                     AND NOT EXISTS (SELECT 1 FROM backups b WHERE b.account_id = a.id \
                         AND b.started_at > $1) \
                     AND a.service_id IN (SELECT id FROM services WHERE plan_id = $3) \
                     ORDER BY a.id LIMIT $2",
                )
                .bind(at(since))
                .bind(i64::from(limit))
                .bind(plan.get())
                .fetch_all(&mut **tx)
                .await?;
                Ok(ids.into_iter().map(AccountId).collect())
            })
        }

        async fn backups_older_than(
            &self,
            plan: PlanId,
            since: Timestamp,
        ) -> Result<Vec<BackupAge>> {
            read_tx!(self, tx, {
                let rows: Vec<(i64, String, Option<SqlTimestamp>)> = sqlx::query_as(
                    "SELECT a.id, a.domain, (SELECT MAX(b.finished_at) FROM backups b \
                         WHERE b.account_id = a.id AND b.state IN ('succeeded', 'pruned')) \
                     FROM accounts a WHERE a.server_id IS NOT NULL \
                     AND a.desired_state <> 'absent' AND a.observed_state IS NOT NULL \
                     AND a.created_at < $1 \
                     AND NOT EXISTS (SELECT 1 FROM backups b WHERE b.account_id = a.id \
                         AND b.state = 'succeeded' AND b.finished_at >= $1) \
                     AND a.service_id IN (SELECT id FROM services WHERE plan_id = $2) \
                     ORDER BY a.id",
                )
                .bind(at(since))
                .bind(plan.get())
                .fetch_all(&mut **tx)
                .await?;
                rows.into_iter()
                    .map(|(id, domain, last)| {
                        Ok(BackupAge {
                            account_id: AccountId(id),
                            domain: parse(
                                "account domain",
                                &domain,
                                drover_core::DomainName::parse,
                            )?,
                            last_good_at: last.map(|t| t.to_jiff()),
                        })
                    })
                    .collect()
            })
        }
    }
}
