// The BootstrapStore on one SQL backend, included after `sql_store.rs` by `postgres.rs` and
// `sqlite.rs` (it uses that file's transaction macros and helpers).

mod bootstrap_sql {
    use async_trait::async_trait;
    use drover_core::{
        BootstrapProgress, BootstrapSpec, BootstrapState, JobId, ServerId, ServerSpec, ServerState,
    };
    use jiff_sqlx::Timestamp as SqlTimestamp;
    use serde_json::json;

    use super::{FOR_UPDATE, SqlStore, append_audit, begin, insert_job};
    use crate::bootstrap_store::*;
    use crate::error::Conflict;
    use crate::jobs::BootstrapServer;
    use crate::rows::{corrupt, sql_now};
    use crate::{Page, RequestContext, Result, Server, Store, StoreError};

    const COLUMNS: &str = "id, spec, state, progress, error, server_id, job_id, created_by, \
         created_at, updated_at FROM server_bootstraps";

    /// A bootstrap is tried this often: transient failures (the host not answering, the
    /// first health check not passing yet) are retried with the queue's backoff.
    const ATTEMPTS: i32 = 10;

    #[derive(sqlx::FromRow)]
    struct BootstrapRow {
        id: i64,
        spec: String,
        state: String,
        progress: String,
        error: Option<String>,
        server_id: Option<i64>,
        job_id: Option<i64>,
        created_by: String,
        created_at: SqlTimestamp,
        updated_at: SqlTimestamp,
    }

    impl BootstrapRow {
        fn into_model(self) -> Result<ServerBootstrap> {
            Ok(ServerBootstrap {
                id: self.id,
                spec: serde_json::from_str(&self.spec).map_err(|e| corrupt("bootstrap spec", e))?,
                state: BootstrapState::parse(&self.state)
                    .ok_or_else(|| corrupt("bootstrap state", &self.state))?,
                progress: serde_json::from_str(&self.progress)
                    .map_err(|e| corrupt("bootstrap progress", e))?,
                error: self.error,
                server_id: self.server_id.map(ServerId),
                job_id: self.job_id.map(JobId),
                created_by: self.created_by,
                created_at: self.created_at.to_jiff(),
                updated_at: self.updated_at.to_jiff(),
            })
        }
    }

    /// A bootstrap of the name or of the machine started by someone else at the same time.
    fn started_meanwhile(error: sqlx::Error, what: &str) -> StoreError {
        if crate::error::unique_violation(&error).is_some() {
            return StoreError::conflict(
                Conflict::InUse,
                format!("another bootstrap of {what} or of its machine started meanwhile"),
            );
        }
        error.into()
    }

    fn to_json<T: serde::Serialize>(value: &T) -> String {
        serde_json::to_string(value).unwrap_or_default()
    }

    #[async_trait]
    impl BootstrapStore for SqlStore {
        async fn start_bootstrap(
            &self,
            ctx: &RequestContext,
            spec: &BootstrapSpec,
            progress: &BootstrapProgress,
        ) -> Result<ServerBootstrap> {
            let id = write_tx!(self, tx, {
                let name = spec.name.as_str();
                let server: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM servers WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&mut **tx)
                        .await?;
                if let Some(server) = server {
                    return Err(StoreError::conflict(
                        Conflict::InUse,
                        format!("the fleet has a server named {name} already (server {server})"),
                    ));
                }
                let same_address: Option<String> = sqlx::query_scalar(
                    "SELECT name FROM servers WHERE hostname = $1 AND port = $2",
                )
                .bind(spec.host.as_str())
                .bind(i64::from(spec.webmin_port))
                .fetch_optional(&mut **tx)
                .await?;
                if let Some(other) = same_address {
                    return Err(StoreError::conflict(
                        Conflict::InUse,
                        format!(
                            "the fleet's server {other} answers at {}:{} already",
                            spec.host, spec.webmin_port
                        ),
                    ));
                }
                let running: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM server_bootstraps WHERE name = $1 AND state = 'running'",
                )
                .bind(name)
                .fetch_optional(&mut **tx)
                .await?;
                if let Some(running) = running {
                    return Err(StoreError::conflict(
                        Conflict::InUse,
                        format!("bootstrap {running} of {name} is under way already"),
                    ));
                }
                let now = sql_now();
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO server_bootstraps (name, host_key, spec, state, progress, \
                     created_by, created_at, updated_at) \
                     VALUES ($1, $6, $2, 'running', $3, $4, $5, $5) RETURNING id",
                )
                .bind(name)
                .bind(to_json(spec))
                .bind(to_json(progress))
                .bind(&ctx.actor)
                .bind(now)
                .bind(spec.ssh.host_key.as_str())
                .fetch_one(&mut **tx)
                .await
                .map_err(|e| started_meanwhile(e, name))?;
                let opts = riverqueue::InsertOpts::default().with_max_attempts(ATTEMPTS);
                let args = BootstrapServer { bootstrap_id: id };
                let (job, _) = insert_job(&self.queue, tx, ctx, None, args, opts).await?;
                sqlx::query("UPDATE server_bootstraps SET job_id = $1 WHERE id = $2")
                    .bind(job.get())
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                append_audit(
                    tx,
                    ctx,
                    "server.bootstrap_started",
                    format!("bootstrap:{id}"),
                    json!({ "spec": spec, "job": job }),
                )
                .await?;
                Ok(id)
            })?;
            self.bootstrap(id).await
        }

        async fn resume_bootstrap(&self, ctx: &RequestContext, id: i64) -> Result<ServerBootstrap> {
            write_tx!(self, tx, {
                let state: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT state FROM server_bootstraps WHERE id = $1{FOR_UPDATE}"
                )))
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?;
                match state.as_deref() {
                    None => return Err(StoreError::not_found("bootstrap", id)),
                    Some("failed") => {}
                    Some(other) => {
                        return Err(StoreError::conflict(
                            Conflict::InUse,
                            format!("bootstrap {id} is {other}: only a failed one is resumed"),
                        ));
                    }
                }
                let opts = riverqueue::InsertOpts::default().with_max_attempts(ATTEMPTS);
                let args = BootstrapServer { bootstrap_id: id };
                let (job, _) = insert_job(&self.queue, tx, ctx, None, args, opts).await?;
                // The unique index refuses a second running bootstrap of the name.
                sqlx::query(
                    "UPDATE server_bootstraps SET state = 'running', error = NULL, job_id = $1, \
                     updated_at = $2 WHERE id = $3",
                )
                .bind(job.get())
                .bind(sql_now())
                .bind(id)
                .execute(&mut **tx)
                .await
                .map_err(|e| started_meanwhile(e, &format!("bootstrap {id}")))?;
                append_audit(
                    tx,
                    ctx,
                    "server.bootstrap_resumed",
                    format!("bootstrap:{id}"),
                    json!({ "job": job }),
                )
                .await?;
                Ok(())
            })?;
            self.bootstrap(id).await
        }

        async fn bootstrap(&self, id: i64) -> Result<ServerBootstrap> {
            sqlx::query_as::<_, BootstrapRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("bootstrap", id))?
            .into_model()
        }

        async fn running_bootstraps(&self) -> Result<Vec<ServerBootstrap>> {
            sqlx::query_as::<_, BootstrapRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} WHERE state = 'running' ORDER BY id"
            )))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(BootstrapRow::into_model)
            .collect()
        }

        async fn bootstraps(&self, page: Page) -> Result<Vec<ServerBootstrap>> {
            sqlx::query_as::<_, BootstrapRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} WHERE id > $1 ORDER BY id LIMIT $2"
            )))
            .bind(page.after.unwrap_or(0))
            .bind(i64::from(page.limit))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(BootstrapRow::into_model)
            .collect()
        }

        async fn save_bootstrap_progress(
            &self,
            id: i64,
            state: BootstrapState,
            progress: &BootstrapProgress,
            error: Option<&str>,
        ) -> Result<()> {
            let changed = sqlx::query(
                "UPDATE server_bootstraps SET state = $1, progress = $2, error = $3, \
                 updated_at = $4 WHERE id = $5",
            )
            .bind(state.as_str())
            .bind(to_json(progress))
            .bind(error)
            .bind(sql_now())
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if changed == 0 {
                return Err(StoreError::not_found("bootstrap", id));
            }
            Ok(())
        }

        async fn register_bootstrapped_server(
            &self,
            ctx: &RequestContext,
            id: i64,
            spec: &ServerSpec,
        ) -> Result<Server> {
            let server = write_tx!(self, tx, {
                let registered: Option<Option<i64>> = sqlx::query_scalar(sqlx::AssertSqlSafe(
                    format!("SELECT server_id FROM server_bootstraps WHERE id = $1{FOR_UPDATE}"),
                ))
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?;
                match registered {
                    None => return Err(StoreError::not_found("bootstrap", id)),
                    Some(Some(server)) => return Ok(ServerId(server)),
                    Some(None) => {}
                }
                let server = SqlStore::save_server(tx, None, spec).await?;
                sqlx::query("UPDATE servers SET state = $1 WHERE id = $2")
                    .bind(ServerState::Maintenance.as_str())
                    .bind(server.id.get())
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(
                    "UPDATE server_bootstraps SET server_id = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(server.id.get())
                .bind(sql_now())
                .bind(id)
                .execute(&mut **tx)
                .await?;
                append_audit(
                    tx,
                    ctx,
                    "server.create",
                    format!("server:{}", server.id),
                    json!({ "server": spec, "bootstrap": id, "state": "maintenance" }),
                )
                .await?;
                Ok(server.id)
            })?;
            self.server(server).await
        }
    }
}
