// The Store on one SQL backend. Included by `postgres.rs` and `sqlite.rs`, which each define the
// dialect seam first: `Db`, `SqlStore`, `BACKEND`, `begin` (a write transaction), `begin_read`
// (one snapshot), `FOR_UPDATE` (row locks) and `serialize` (one transaction of a kind at a
// time). One body of SQL, compiled once per backend, so the two cannot drift apart; it sticks to
// what both databases understand and never asks which one it runs on.

use async_trait::async_trait;
use drover_core::{
    AccountId, AuditEntry, AuditEventId, CustomerId, DatabaseName, DomainName, Hash, JobId,
    MailboxName, PlanId, PlanSpec, ServerId, ServerSpec, ServiceId, TokenId, UnixUsername,
    verify_chain,
};
use serde_json::json;
use sqlx::Transaction;

use crate::error::{Conflict, UniqueKey, unique_violation};
use crate::model::*;
use crate::rows::*;
use crate::store::Store;
use crate::{Backend, Result, Serialized, StoreError};

type Tx = Transaction<'static, Db>;

/// Runs the block in a write transaction (bound to `$tx`, a `&mut Tx`) and commits it when
/// the block returns `Ok`; any error rolls it back. Evaluates to the block's `Result`.
macro_rules! write_tx {
    ($store:expr, $tx:ident, { $($body:tt)* }) => {{
        let mut transaction = begin(&$store.pool).await?;
        let $tx = &mut transaction;
        let result: Result<_> = async { $($body)* }.await;
        let value = result?;
        transaction.commit().await?;
        Result::<_>::Ok(value)
    }};
}

/// Runs reads in one snapshot so they see one state: REPEATABLE READ on PostgreSQL (its
/// default, READ COMMITTED, takes a new snapshot per statement); SQLite's read transaction
/// keeps the snapshot of its first read.
macro_rules! read_tx {
    ($store:expr, $tx:ident, { $($body:tt)* }) => {{
        let mut transaction: Tx = begin_read(&$store.pool).await?;
        let $tx = &mut transaction;
        let result: Result<_> = async { $($body)* }.await;
        let value = result?;
        transaction.rollback().await?;
        Result::<_>::Ok(value)
    }};
}

macro_rules! select_plan {
    () => {
        "SELECT id, name, template, disk_quota_mb, bandwidth_mb, max_mailboxes, max_databases, \
         max_subservers, max_aliases, mailbox_quota_mb, backup_interval_hours, features, \
         required_tags, created_at, updated_at FROM plans"
    };
}

macro_rules! server_columns {
    () => {
        "id, name, hostname, port, ipv4, ipv6, capacity, tags, api_user, credentials, \
         tls_verify, pinned_cert_sha256, rate_qps, state, login_refused, login_refused_at, \
         login_refused_secret, ssh, break_glass, break_glass_by, break_glass_at, created_at, \
         updated_at"
    };
}

macro_rules! select_server {
    () => {
        concat!("SELECT ", server_columns!(), " FROM servers")
    };
}

macro_rules! select_service {
    () => {
        "SELECT s.id, s.customer_id, s.plan_id, s.status, a.id AS account_id, a.domain, \
         s.created_at, s.updated_at FROM services s JOIN accounts a ON a.service_id = s.id"
    };
}

macro_rules! select_account {
    () => {
        "SELECT id, service_id, domain, unix_username, server_id, desired_state, \
         desired_generation, observed_state, protected_from_deletion, suspend_reason, \
         (sealed_password IS NOT NULL) AS has_sealed_password, last_sync_at, failure, failed_at, \
         over_limit, created_at, updated_at FROM accounts"
    };
}

macro_rules! select_audit {
    () => {
        "SELECT id, at, actor, action, subject, correlation_id, details, prev_hash, hash \
         FROM audit_events"
    };
}

/// Records an event inside `tx`, the change's own transaction (the outbox), with a delivery
/// for every endpoint that wants its type, and wakes their delivery jobs; none when no
/// endpoint wants it (nothing is kept). Paused endpoints keep theirs until resumed.
///
/// Each wanting endpoint's row is locked (by id, as every writer does) before the event takes
/// its id: events for one endpoint are numbered in the order they commit, which is the order
/// its job sends them in. Locks are taken after the change's audit event, as everywhere.
async fn append_event(
    tx: &mut Tx,
    queue: &riverqueue::Client,
    ctx: &RequestContext,
    event: &crate::NewEvent,
) -> Result<Option<drover_core::EventId>> {
    let kind = event.event_type.as_str();
    let wants = |types: &str| -> Result<bool> {
        let types: Vec<String> = crate::rows::json_list("webhook event types", types)?;
        Ok(types.is_empty() || types.iter().any(|t| t == kind))
    };
    let endpoints: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, event_types FROM webhook_endpoints ORDER BY id")
            .fetch_all(&mut **tx)
            .await?;
    let mut wanting = Vec::new();
    for (endpoint, types) in endpoints {
        if !wants(&types)? {
            continue;
        }
        // Moving the count locks the row and reads it as it is now: a delivery job ending
        // now waits for this transaction, then sees the count moved and looks again (see
        // `end_webhook_job`). Gone or changed meanwhile: left out.
        let now: Option<(String, bool)> = sqlx::query_as(
            "UPDATE webhook_endpoints SET wanted = wanted + 1 WHERE id = $1 \
             RETURNING event_types, paused",
        )
        .bind(endpoint)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some((types, paused)) = now
            && wants(&types)?
        {
            wanting.push((endpoint, paused));
        }
    }
    if wanting.is_empty() {
        return Ok(None);
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO events (event_type, account_id, subject, data, created_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(kind)
    .bind(event.account.map(AccountId::get))
    .bind(&event.subject)
    .bind(event.data.to_string())
    .bind(sql_now())
    .fetch_one(&mut **tx)
    .await?;
    for (endpoint, paused) in wanting {
        sqlx::query("INSERT INTO webhook_deliveries (endpoint_id, event_id) VALUES ($1, $2)")
            .bind(endpoint)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        if !paused {
            let args = crate::jobs::DeliverWebhooks {
                endpoint_id: endpoint,
            };
            insert_job(queue, tx, ctx, None, args, webhook_job_opts()).await?;
        }
    }
    Ok(Some(drover_core::EventId(id)))
}

/// Delivery jobs wait out a failing receiver by snoozing, not by failing, and hand back long
/// runs before their time is up: attempts are only spent on drover's own errors (its
/// database).
fn webhook_job_opts() -> riverqueue::InsertOpts {
    riverqueue::InsertOpts::default().with_max_attempts(25)
}

/// Adds `calls` to the job's, in order after those kept before.
async fn insert_job_calls(tx: &mut Tx, job: JobId, calls: &[JobCall]) -> Result<()> {
    if calls.is_empty() {
        return Ok(());
    }
    let last: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM job_calls WHERE job_id = $1")
            .bind(job.get())
            .fetch_one(&mut **tx)
            .await?;
    for (seq, call) in (last + 1..).zip(calls) {
        sqlx::query(
            "INSERT INTO job_calls (job_id, seq, server, call, outcome, message, duration_ms, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(job.get())
        .bind(seq)
        .bind(&call.server)
        .bind(&call.call)
        .bind(&call.outcome)
        .bind(&call.message)
        .bind(call.duration_ms)
        .bind(jiff_sqlx::Timestamp::from(call.at))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Appends one event to the audit chain inside `tx`. Updating the head row first takes its
/// lock, so concurrent appenders queue up and each links to the one before.
async fn append_audit(
    tx: &mut Tx,
    ctx: &RequestContext,
    action: &str,
    subject: String,
    details: serde_json::Value,
) -> Result<()> {
    let (id, prev_hash): (i64, String) = sqlx::query_as(
        "UPDATE audit_head SET last_id = last_id + 1 WHERE singleton RETURNING last_id, last_hash",
    )
    .fetch_one(&mut **tx)
    .await?;
    let mut entry = AuditEntry {
        id: AuditEventId(id),
        at: now(),
        actor: ctx.actor.clone(),
        action: action.to_owned(),
        subject,
        correlation_id: ctx.correlation_id.clone(),
        details: details.to_string(),
        prev_hash: parse_hash("audit head", &prev_hash)?,
        hash: Hash::GENESIS,
    };
    entry.hash = entry.expected_hash();
    sqlx::query(
        "INSERT INTO audit_events (id, at, actor, action, subject, correlation_id, details, \
         prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(jiff_sqlx::Timestamp::from(entry.at))
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(&entry.subject)
    .bind(&entry.correlation_id)
    .bind(&entry.details)
    .bind(entry.prev_hash.to_hex())
    .bind(entry.hash.to_hex())
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE audit_head SET last_hash = $1 WHERE singleton")
        .bind(entry.hash.to_hex())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn opt_i64<T: Into<u64>>(value: Option<T>) -> Option<i64> {
    value.map(|v| i64::try_from(v.into()).unwrap_or(i64::MAX))
}

/// Maps a unique violation on a plan or server name to a conflict that names it.
fn name_taken(err: sqlx::Error, what: &str, name: &str) -> StoreError {
    match unique_violation(&err) {
        Some(constraint) if constraint.contains("hostname") => StoreError::duplicate(
            UniqueKey::ServerAddress,
            format!("another {what} already uses this hostname and port"),
        ),
        Some(_) => StoreError::duplicate(
            UniqueKey::Name,
            format!("a {what} named '{name}' already exists"),
        ),
        None => err.into(),
    }
}

impl SqlStore {
    async fn fetch_plan(tx: &mut Tx, id: PlanId) -> Result<Plan> {
        sqlx::query_as::<_, PlanRow>(concat!(select_plan!(), " WHERE id = $1"))
            .bind(id.get())
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::not_found("plan", id))?
            .into_model()
    }

    async fn save_plan(tx: &mut Tx, id: Option<PlanId>, spec: &PlanSpec) -> Result<Plan> {
        // Virtualmin compares plan names without case: two drover plans named alike would be
        // one plan on every server, each change undoing the other's.
        let alike: Option<String> = sqlx::query_scalar(
            "SELECT name FROM plans WHERE lower(name) = lower($1) AND ($2 IS NULL OR id <> $2)",
        )
        .bind(spec.name.as_str())
        .bind(id.map(PlanId::get))
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(other) = alike {
            return Err(StoreError::duplicate(
                UniqueKey::Name,
                format!(
                    "a plan named '{other}' already exists: Virtualmin compares plan names \
                     without case, so '{}' would be the same plan on its servers",
                    spec.name.as_str()
                ),
            ));
        }
        let now = sql_now();
        let query = match id {
            None => sqlx::query_as::<_, PlanRow>(concat!(
                "INSERT INTO plans (name, template, disk_quota_mb, bandwidth_mb, max_mailboxes, \
                 max_databases, max_subservers, features, required_tags, created_at, updated_at, \
                 max_aliases, mailbox_quota_mb, backup_interval_hours) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $12, $13, $14) RETURNING ",
                "id, name, template, disk_quota_mb, bandwidth_mb, max_mailboxes, max_databases, \
                 max_subservers, max_aliases, mailbox_quota_mb, backup_interval_hours, features, \
                 required_tags, created_at, updated_at"
            )),
            Some(_) => sqlx::query_as::<_, PlanRow>(concat!(
                "UPDATE plans SET name = $1, template = $2, disk_quota_mb = $3, bandwidth_mb = $4, \
                 max_mailboxes = $5, max_databases = $6, max_subservers = $7, features = $8, \
                 required_tags = $9, updated_at = $10, max_aliases = $12, mailbox_quota_mb = $13, \
                 backup_interval_hours = $14 WHERE id = $11 RETURNING ",
                "id, name, template, disk_quota_mb, bandwidth_mb, max_mailboxes, max_databases, \
                 max_subservers, max_aliases, mailbox_quota_mb, backup_interval_hours, features, \
                 required_tags, created_at, updated_at"
            )),
        };
        query
            .bind(spec.name.as_str())
            .bind(spec.template.as_ref().map(|t| t.as_str().to_owned()))
            .bind(opt_i64(spec.disk_quota_mb))
            .bind(opt_i64(spec.bandwidth_mb))
            .bind(opt_i64(spec.max_mailboxes))
            .bind(opt_i64(spec.max_databases))
            .bind(opt_i64(spec.max_subservers))
            .bind(to_json_list(&spec.features))
            .bind(to_json_list(&spec.required_tags))
            .bind(now)
            .bind(id.map(PlanId::get))
            .bind(opt_i64(spec.max_aliases))
            .bind(opt_i64(spec.mailbox_quota_mb))
            .bind(opt_i64(spec.backup_interval_hours))
            .fetch_one(&mut **tx)
            .await
            .map_err(|e| name_taken(e, "plan", spec.name.as_str()))?
            .into_model()
    }

    /// Every server with the number of accounts it holds or is about to hold.
    async fn fetch_candidates(tx: &mut Tx) -> Result<Vec<drover_core::Candidate>> {
        let servers: Vec<Server> =
            sqlx::query_as::<_, ServerRow>(concat!(select_server!(), " ORDER BY id"))
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(ServerRow::into_model)
                .collect::<Result<_>>()?;
        let counts: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT server_id, COUNT(*) FROM accounts \
             WHERE server_id IS NOT NULL AND (desired_state <> 'absent' \
             OR COALESCE(observed_state, 'absent') <> 'absent') GROUP BY server_id",
        )
        .fetch_all(&mut **tx)
        .await?;
        Ok(servers
            .into_iter()
            .map(|server| {
                let accounts = counts
                    .iter()
                    .find(|(id, _)| *id == server.id.get())
                    .map_or(0, |(_, n)| u32::try_from(*n).unwrap_or(u32::MAX));
                drover_core::Candidate {
                    id: server.id,
                    name: server.spec.name.to_string(),
                    // A server worked on over SSH takes nothing new, as in maintenance.
                    state: match server.break_glass {
                        Some(_) => drover_core::ServerState::Maintenance,
                        None => server.state,
                    },
                    tags: server.spec.tags,
                    capacity: server.spec.capacity,
                    accounts,
                }
            })
            .collect())
    }

    /// Puts an account without a server on `server`, audited.
    async fn assign_in(
        tx: &mut Tx,
        ctx: &RequestContext,
        account: AccountId,
        server: ServerId,
    ) -> Result<()> {
        let placed = sqlx::query(
            "UPDATE accounts SET server_id = $1, updated_at = $2 \
             WHERE id = $3 AND server_id IS NULL",
        )
        .bind(server.get())
        .bind(sql_now())
        .bind(account.get())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if placed == 0 {
            return Err(StoreError::conflict(
                Conflict::AlreadyPlaced,
                format!("account {account} is already on a server"),
            ));
        }
        append_audit(
            tx,
            ctx,
            "account.place",
            format!("account:{account}"),
            json!({ "server_id": server }),
        )
        .await
    }

    async fn fetch_server(tx: &mut Tx, id: ServerId) -> Result<Server> {
        sqlx::query_as::<_, ServerRow>(concat!(select_server!(), " WHERE id = $1"))
            .bind(id.get())
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::not_found("server", id))?
            .into_model()
    }

    async fn save_server(tx: &mut Tx, id: Option<ServerId>, spec: &ServerSpec) -> Result<Server> {
        let now = sql_now();
        let query = match id {
            None => sqlx::query_as::<_, ServerRow>(concat!(
                "INSERT INTO servers (name, hostname, port, ipv4, ipv6, capacity, tags, api_user, \
                 credentials, tls_verify, pinned_cert_sha256, rate_qps, state, created_at, \
                 updated_at, ssh) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                 'healthy', $13, $13, $15) RETURNING ",
                server_columns!()
            )),
            Some(_) => sqlx::query_as::<_, ServerRow>(concat!(
                "UPDATE servers SET name = $1, hostname = $2, port = $3, ipv4 = $4, ipv6 = $5, \
                 capacity = $6, tags = $7, api_user = $8, credentials = $9, tls_verify = $10, \
                 pinned_cert_sha256 = $11, rate_qps = $12, updated_at = $13, ssh = $15 \
                 WHERE id = $14 RETURNING ",
                server_columns!()
            )),
        };
        query
            .bind(spec.name.as_str())
            .bind(spec.hostname.as_str())
            .bind(i64::from(spec.port))
            .bind(spec.ipv4.map(|a| a.to_string()))
            .bind(spec.ipv6.map(|a| a.to_string()))
            .bind(i64::from(spec.capacity))
            .bind(to_json_list(&spec.tags))
            .bind(&spec.api_user)
            .bind(spec.credentials.to_string())
            .bind(spec.tls_verify)
            .bind(spec.pinned_cert_sha256.map(|p| p.to_hex()))
            .bind(spec.rate_qps)
            .bind(now)
            .bind(id.map(ServerId::get))
            .bind(
                spec.ssh
                    .as_ref()
                    .map(|s| serde_json::to_string(s).unwrap_or_default()),
            )
            .fetch_one(&mut **tx)
            .await
            .map_err(|e| name_taken(e, "server", spec.name.as_str()))?
            .into_model()
    }

    async fn fetch_service(tx: &mut Tx, id: ServiceId) -> Result<Service> {
        sqlx::query_as::<_, ServiceRow>(concat!(select_service!(), " WHERE s.id = $1"))
            .bind(id.get())
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::not_found("service", id))?
            .into_model()
    }

    /// The account, its row locked on PostgreSQL (SQLite's writes are serial already): what
    /// is read is what the write after it changes.
    async fn locked_account(tx: &mut Tx, id: AccountId) -> Result<Account> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM accounts WHERE id = $1{FOR_UPDATE}"
        )))
        .bind(id.get())
        .execute(&mut **tx)
        .await?;
        Self::fetch_account(tx, id).await
    }

    async fn fetch_account(tx: &mut Tx, id: AccountId) -> Result<Account> {
        sqlx::query_as::<_, AccountRow>(concat!(select_account!(), " WHERE id = $1"))
            .bind(id.get())
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::not_found("account", id))?
            .into_model()
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        BACKEND
    }

    fn queue(&self) -> &riverqueue::Client {
        &self.queue
    }

    async fn write(&self) -> Result<Box<dyn crate::Write>> {
        Ok(Box::new(write_sql::SqlWrite {
            tx: begin(&self.pool).await?,
            queue: self.queue.clone(),
        }))
    }

    async fn customer(&self, id: CustomerId) -> Result<Customer> {
        sqlx::query_as::<_, CustomerRow>(
            "SELECT id, name, email, external_ref, created_at, updated_at FROM customers \
             WHERE id = $1",
        )
        .bind(id.get())
        .fetch_optional(&self.pool)
        .await?
        .map(CustomerRow::into_model)
        .ok_or_else(|| StoreError::not_found("customer", id))
    }

    async fn customers(&self, page: Page) -> Result<Vec<Customer>> {
        let rows = sqlx::query_as::<_, CustomerRow>(
            "SELECT id, name, email, external_ref, created_at, updated_at FROM customers \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(page.after.unwrap_or(0))
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(CustomerRow::into_model).collect())
    }

    async fn plan(&self, id: PlanId) -> Result<Plan> {
        read_tx!(self, tx, { Self::fetch_plan(tx, id).await })
    }

    async fn plans(&self, page: Page) -> Result<Vec<Plan>> {
        sqlx::query_as::<_, PlanRow>(concat!(
            select_plan!(),
            " WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(page.after.unwrap_or(0))
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(PlanRow::into_model)
        .collect()
    }

    async fn server(&self, id: ServerId) -> Result<Server> {
        read_tx!(self, tx, { Self::fetch_server(tx, id).await })
    }

    async fn servers(&self, page: Page) -> Result<Vec<Server>> {
        sqlx::query_as::<_, ServerRow>(concat!(
            select_server!(),
            " WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(page.after.unwrap_or(0))
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(ServerRow::into_model)
        .collect()
    }

    async fn service(&self, id: ServiceId) -> Result<Service> {
        read_tx!(self, tx, { Self::fetch_service(tx, id).await })
    }

    async fn services(&self, filter: ServiceFilter) -> Result<Vec<Service>> {
        let tail = crate::listing::services(&filter);
        let sql = format!("{} {}", select_service!(), tail.sql);
        let mut query = sqlx::query_as::<_, ServiceRow>(sqlx::AssertSqlSafe(sql));
        for bind in tail.binds {
            query = match bind {
                crate::listing::Bind::Int(v) => query.bind(v),
                crate::listing::Bind::Text(v) => query.bind(v),
            };
        }
        query
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(ServiceRow::into_model)
            .collect()
    }

    async fn account(&self, id: AccountId) -> Result<Account> {
        read_tx!(self, tx, { Self::fetch_account(tx, id).await })
    }

    async fn accounts(&self, filter: AccountFilter) -> Result<Vec<Account>> {
        let tail = crate::listing::accounts(&filter);
        let sql = format!("{} {}", select_account!(), tail.sql);
        let mut query = sqlx::query_as::<_, AccountRow>(sqlx::AssertSqlSafe(sql));
        for bind in tail.binds {
            query = match bind {
                crate::listing::Bind::Int(v) => query.bind(v),
                crate::listing::Bind::Text(v) => query.bind(v),
            };
        }
        query
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(AccountRow::into_model)
            .collect()
    }

    async fn job(&self, id: JobId) -> Result<JobSummary> {
        let row = self.queue.jobs().get(id.get()).await.map_err(|e| match e {
            riverqueue::Error::NotFound { .. } => StoreError::not_found("job", id),
            other => other.into(),
        })?;
        let mut summaries = self.summarize(vec![row]).await?;
        summaries
            .pop()
            .ok_or_else(|| StoreError::not_found("job", id))
    }

    async fn jobs(&self, filter: JobFilter) -> Result<Vec<JobSummary>> {
        let limit = filter
            .limit
            .unwrap_or(Page::DEFAULT_LIMIT)
            .clamp(1, Page::MAX_LIMIT);
        let mut params = riverqueue::JobListParams::default()
            .limit(limit)
            .direction(riverqueue::SortDirection::Descending);
        if !filter.states.is_empty() {
            params = params.states(filter.states.iter().copied());
        }
        if let Some(account) = filter.account_id {
            let ids: Vec<i64> = sqlx::query_scalar(
                "SELECT job_id FROM job_subjects WHERE account_id = $1 ORDER BY job_id DESC LIMIT $2",
            )
            .bind(account.get())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            params = params.ids(ids);
        }
        let page = self.queue.jobs().list(params).await?;
        self.summarize(page.jobs).await
    }

    async fn authenticate(&self, secret: &str) -> Result<Option<ApiToken>> {
        sqlx::query_as::<_, TokenRow>(
            "SELECT id, name, scope, created_at, revoked_at FROM api_tokens \
             WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash(secret))
        .fetch_optional(&self.pool)
        .await?
        .map(TokenRow::into_model)
        .transpose()
    }

    async fn open_session(
        &self,
        secret: &str,
        token: TokenId,
        form_token: &str,
        expires_at: jiff::Timestamp,
    ) -> Result<()> {
        write_tx!(self, tx, {
            sqlx::query("DELETE FROM ui_sessions WHERE expires_at < $1")
                .bind(sql_now())
                .execute(&mut **tx)
                .await?;
            sqlx::query(
                "INSERT INTO ui_sessions \
                 (secret_hash, token_id, form_token, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token_hash(secret))
            .bind(token.0)
            .bind(form_token)
            .bind(sql_now())
            .bind(jiff_sqlx::Timestamp::from(expires_at))
            .execute(&mut **tx)
            .await?;
            Ok(())
        })
    }

    async fn session(&self, secret: &str) -> Result<Option<UiSession>> {
        let row: Option<SessionRow> = sqlx::query_as(
            "SELECT t.id, t.name, t.scope, t.created_at, t.revoked_at, \
                    s.form_token, s.language, s.expires_at \
             FROM ui_sessions s JOIN api_tokens t ON t.id = s.token_id \
             WHERE s.secret_hash = $1 AND s.expires_at > $2 AND t.revoked_at IS NULL",
        )
        .bind(token_hash(secret))
        .bind(sql_now())
        .fetch_optional(&self.pool)
        .await?;
        row.map(SessionRow::into_model).transpose()
    }

    async fn end_session(&self, secret: &str) -> Result<()> {
        sqlx::query("DELETE FROM ui_sessions WHERE secret_hash = $1")
            .bind(token_hash(secret))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_session_language(&self, secret: &str, language: &str) -> Result<()> {
        sqlx::query("UPDATE ui_sessions SET language = $1 WHERE secret_hash = $2")
            .bind(language)
            .bind(token_hash(secret))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>> {
        sqlx::query_as::<_, TokenRow>(
            "SELECT id, name, scope, created_at, revoked_at FROM api_tokens ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(TokenRow::into_model)
        .collect()
    }

    async fn keep_login_link(
        &self,
        job: JobId,
        account: AccountId,
        sealed_url: &[u8],
        expires_at: jiff::Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO login_links (job_id, account_id, sealed_url, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(job.get())
        .bind(account.get())
        .bind(sealed_url)
        .bind(jiff_sqlx::Timestamp::from(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn take_login_link(
        &self,
        job: JobId,
        account: AccountId,
    ) -> Result<Option<(Vec<u8>, jiff::Timestamp)>> {
        write_tx!(self, tx, {
            // Deleted as it is read: of two takes at once, one gets it.
            let taken: Option<(Vec<u8>, jiff_sqlx::Timestamp)> = sqlx::query_as(
                "DELETE FROM login_links WHERE job_id = $1 AND account_id = $2 \
                 RETURNING sealed_url, expires_at",
            )
            .bind(job.get())
            .bind(account.get())
            .fetch_optional(&mut **tx)
            .await?;
            sqlx::query("DELETE FROM login_links WHERE expires_at < $1")
                .bind(sql_now())
                .execute(&mut **tx)
                .await?;
            Ok(taken.map(|(sealed, at)| (sealed, at.to_jiff())))
        })
    }

    async fn resource_counts(&self) -> Result<Vec<ResourceCount>> {
        let per_kind = [
            ("mailbox", "mailboxes"),
            ("database", "databases"),
            ("alias", "aliases"),
            ("subserver", "subservers"),
        ]
        .map(|(kind, table)| {
            format!(
                "SELECT '{kind}' AS kind, CASE WHEN deleting THEN 'deleting' ELSE 'recorded' END \
                 AS state, COUNT(*) AS count FROM {table} GROUP BY deleting"
            )
        });
        let certificates = "SELECT 'certificate' AS kind, state, COUNT(*) AS count FROM certificates GROUP BY state";
        let accounts = "SELECT 'account' AS kind, desired_state AS state, COUNT(*) AS count FROM accounts GROUP BY desired_state";
        let query = format!(
            "{} UNION ALL {certificates} UNION ALL {accounts}",
            per_kind.join(" UNION ALL ")
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(query))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn job_counts(&self) -> Result<Vec<QueueCount>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT queue, CAST(state AS TEXT) AS state, COUNT(*) AS count, \
             {SECONDS_SINCE_EARLIEST_SCHEDULED} AS oldest_seconds FROM river_job \
             GROUP BY queue, state ORDER BY queue, state"
        )))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn seal_key_id(&self) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT key_id FROM seal_key WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn record_seal_key_id(&self, key_id: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO seal_key (id, key_id, recorded_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(key_id)
        .bind(sql_now())
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT key_id FROM seal_key WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn any_sealed_password(&self) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(
            "SELECT sealed_password FROM accounts WHERE sealed_password IS NOT NULL \
             UNION ALL SELECT sealed_password FROM mailboxes LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn reseal_passwords(
        &self,
        ctx: &RequestContext,
        reseal: &(dyn for<'p> Fn(&'p [u8]) -> std::result::Result<Vec<u8>, String> + Send + Sync),
        from_key_id: &str,
        to_key_id: &str,
    ) -> Result<usize> {
        write_tx!(self, tx, {
            // Locked on PostgreSQL: two rotations at once would each re-seal from the same key.
            let recorded: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT key_id FROM seal_key WHERE id = 1{FOR_UPDATE}"
            )))
            .fetch_optional(&mut **tx)
            .await?;
            if recorded.as_deref() != Some(from_key_id) {
                return Err(StoreError::Config(format!(
                    "the database's passwords are sealed with {}, not {from_key_id}: nothing was \
                     changed",
                    recorded.as_deref().unwrap_or("a key it has not recorded")
                )));
            }
            // Locked: a password changed meanwhile must not be overwritten by its old value.
            let sealed: Vec<(i64, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT id, sealed_password FROM accounts WHERE sealed_password IS NOT NULL \
                 ORDER BY id{FOR_UPDATE}"
            )))
            .fetch_all(&mut **tx)
            .await?;
            for (id, password) in &sealed {
                let again = reseal(password).map_err(|e| {
                    StoreError::Corrupt(format!("account {id}'s sealed password: {e}"))
                })?;
                sqlx::query("UPDATE accounts SET sealed_password = $1 WHERE id = $2")
                    .bind(again)
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
            }
            // Mailboxes' passwords are sealed with the same key.
            let mailboxes: Vec<(i64, String, Vec<u8>)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT account_id, name, sealed_password FROM mailboxes \
                     ORDER BY account_id, name{FOR_UPDATE}"
                )))
                .fetch_all(&mut **tx)
                .await?;
            for (account, name, password) in &mailboxes {
                let again = reseal(password).map_err(|e| {
                    StoreError::Corrupt(format!(
                        "mailbox {name} of account {account}'s sealed password: {e}"
                    ))
                })?;
                sqlx::query(
                    "UPDATE mailboxes SET sealed_password = $1 WHERE account_id = $2 AND name = $3",
                )
                .bind(again)
                .bind(account)
                .bind(name)
                .execute(&mut **tx)
                .await?;
            }
            // Login links waiting to be taken would not open with the new key; they last
            // minutes, so they are dropped (ask for a new one).
            sqlx::query("DELETE FROM login_links")
                .execute(&mut **tx)
                .await?;
            let count = sealed.len() + mailboxes.len();
            sqlx::query("UPDATE seal_key SET key_id = $1, recorded_at = $2 WHERE id = 1")
                .bind(to_key_id)
                .bind(sql_now())
                .execute(&mut **tx)
                .await?;
            append_audit(
                tx,
                ctx,
                "key.rotate",
                "operator_key".into(),
                json!({ "from": from_key_id, "to": to_key_id, "passwords": count }),
            )
            .await?;
            // So are webhook secrets (the one a rotation replaced too, while it still signs),
            // locked after the audit chain as every writer locks them.
            let webhooks: Vec<(i64, Vec<u8>, Option<Vec<u8>>)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT id, sealed_secret, previous_sealed_secret FROM webhook_endpoints \
                     ORDER BY id{FOR_UPDATE}"
                )))
                .fetch_all(&mut **tx)
                .await?;
            for (id, secret, previous) in &webhooks {
                let again = |sealed: &[u8]| {
                    reseal(sealed).map_err(|e| {
                        StoreError::Corrupt(format!("webhook endpoint {id}'s sealed secret: {e}"))
                    })
                };
                let previous = previous.as_deref().map(again).transpose()?;
                sqlx::query(
                    "UPDATE webhook_endpoints SET sealed_secret = $1, \
                     previous_sealed_secret = $2, seal_key_id = $3 WHERE id = $4",
                )
                .bind(again(secret)?)
                .bind(previous)
                .bind(to_key_id)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            }

            Ok(count)
        })
    }

    async fn start_idempotent(
        &self,
        token: TokenId,
        key: &str,
        request_hash: &str,
    ) -> Result<IdempotencyStart> {
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (token_id, key, request_hash, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (token_id, key) DO NOTHING",
        )
        .bind(token.get())
        .bind(key)
        .bind(request_hash)
        .bind(sql_now())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if claimed == 1 {
            return Ok(IdempotencyStart::Proceed);
        }
        let (stored_hash, status, body): (String, Option<i64>, Option<String>) = sqlx::query_as(
            "SELECT request_hash, response_status, response_body FROM idempotency_keys \
             WHERE token_id = $1 AND key = $2",
        )
        .bind(token.get())
        .bind(key)
        .fetch_one(&self.pool)
        .await?;
        if stored_hash != request_hash {
            return Err(StoreError::conflict(
                Conflict::IdempotencyKeyReused,
                format!(
                    "Idempotency-Key '{key}' was already used for a different request; \
                     use a new key for a new request"
                ),
            ));
        }
        match (status, body) {
            (Some(status), Some(body)) => Ok(IdempotencyStart::Replay {
                status: u16::try_from(status).unwrap_or(500),
                body,
            }),
            _ => Err(StoreError::conflict(
                Conflict::IdempotentRequestInProgress,
                format!("a request with Idempotency-Key '{key}' is still running; retry shortly"),
            )),
        }
    }

    async fn finish_idempotent(
        &self,
        token: TokenId,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET response_status = $1, response_body = $2 \
             WHERE token_id = $3 AND key = $4",
        )
        .bind(i64::from(status))
        .bind(body)
        .bind(token.get())
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn abandon_idempotent(&self, token: TokenId, key: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE token_id = $1 AND key = $2 \
             AND response_status IS NULL",
        )
        .bind(token.get())
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    fn job_client_builder(&self) -> riverqueue::ClientBuilder {
        riverqueue::Client::builder(self.pool.clone())
    }

    async fn converge_target(&self, account: AccountId) -> Result<ConvergeTarget> {
        read_tx!(self, tx, {
            let account = Self::fetch_account(tx, account).await?;
            let plan_id: i64 = sqlx::query_scalar("SELECT plan_id FROM services WHERE id = $1")
                .bind(account.service_id.get())
                .fetch_one(&mut **tx)
                .await?;
            let plan = Self::fetch_plan(tx, PlanId(plan_id)).await?;
            let server = match account.server_id {
                Some(id) => Some(Self::fetch_server(tx, id).await?),
                None => None,
            };
            let sealed_password: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT sealed_password FROM accounts WHERE id = $1")
                    .bind(account.id.get())
                    .fetch_one(&mut **tx)
                    .await?;
            Ok(ConvergeTarget {
                account,
                plan,
                server,
                sealed_password,
            })
        })
    }

    async fn placement_candidates(&self) -> Result<Vec<drover_core::Candidate>> {
        read_tx!(self, tx, { Self::fetch_candidates(tx).await })
    }

    async fn place_account(
        &self,
        ctx: &RequestContext,
        account: AccountId,
        required_tags: &[drover_core::Tag],
        policy: &drover_core::PlacementPolicy,
    ) -> Result<std::result::Result<Server, String>> {
        write_tx!(self, tx, {
            // One placement at a time, so the load each reads includes the one before it
            // (SQLite's write transactions are serial already).
            serialize(tx, Serialized::Placement).await?;
            let candidates = Self::fetch_candidates(tx).await?;
            let server = match drover_core::place(&candidates, required_tags, policy) {
                Ok(server) => server,
                Err(reason) => return Ok(Err(reason)),
            };
            Self::assign_in(tx, ctx, account, server).await?;
            Ok(Ok(Self::fetch_server(tx, server).await?))
        })
    }

    async fn assign_server(
        &self,
        ctx: &RequestContext,
        account: AccountId,
        server: ServerId,
    ) -> Result<Account> {
        write_tx!(self, tx, {
            Self::assign_in(tx, ctx, account, server).await?;
            Self::fetch_account(tx, account).await
        })
    }

    async fn store_sealed_password(
        &self,
        account: AccountId,
        sealed: &[u8],
        key_id: &str,
    ) -> Result<()> {
        write_tx!(self, tx, {
            sealed_with_the_recorded_key(tx, key_id).await?;
            sqlx::query("UPDATE accounts SET sealed_password = $1, updated_at = $2 WHERE id = $3")
                .bind(sealed)
                .bind(sql_now())
                .bind(account.get())
                .execute(&mut **tx)
                .await?;
            Ok(())
        })
    }

    async fn record_observation(
        &self,
        account: AccountId,
        observed_state: &str,
        applied_generation: i64,
    ) -> Result<()> {
        write_tx!(self, tx, {
            let before = Self::locked_account(tx, account).await?;
            sqlx::query(
                "UPDATE accounts SET observed_state = $1, last_sync_at = $2, \
                 applied_generation = CASE WHEN applied_generation > $3 THEN applied_generation \
                 ELSE $3 END, failure = NULL, failed_at = NULL WHERE id = $4",
            )
            .bind(observed_state)
            .bind(sql_now())
            .bind(applied_generation)
            .bind(account.get())
            .execute(&mut **tx)
            .await?;
            // Billing hears of the account's move on its server with the move itself.
            let ctx = RequestContext {
                actor: "drover".into(),
                correlation_id: format!("account-{account}-generation-{applied_generation}"),
            };
            for kind in
                drover_core::account_state_events(before.observed_state.as_deref(), observed_state)
            {
                let event = crate::NewEvent::account(
                    kind,
                    &before,
                    json!({ "state": observed_state, "generation": applied_generation }),
                );
                append_event(tx, &self.queue, &ctx, &event).await?;
            }
            Ok(())
        })
    }

    async fn lease_account(
        &self,
        account: AccountId,
        job: JobId,
        until: jiff::Timestamp,
    ) -> Result<bool> {
        let now = now().as_millisecond();
        let taken = sqlx::query(
            "UPDATE accounts SET lease_owner = $1, lease_until = $2 WHERE id = $3 \
             AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < $4)",
        )
        .bind(job.get())
        .bind(until.as_millisecond())
        .bind(account.get())
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    async fn release_account(&self, account: AccountId, job: JobId) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(account.get())
        .bind(job.get())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn complete_converge(
        &self,
        account: AccountId,
        generation: i64,
        context: &riverqueue::WorkContext,
        completion: &ConvergeCompletion<'_>,
    ) -> Result<bool> {
        write_tx!(self, tx, {
            if locked_generation(tx, account).await? != generation {
                return Ok(false);
            }
            let job = completion.attempt.job_id;
            insert_job_calls(tx, job, completion.calls).await?;
            append_audit(
                tx,
                completion.ctx,
                completion.action,
                completion.subject.clone(),
                completion.details.clone(),
            )
            .await?;
            insert_job_attempt(completion.attempt)
                .execute(&mut **tx)
                .await?;
            context.job_complete_tx(&mut *tx).await?;
            sqlx::query(
                "UPDATE accounts SET lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND lease_owner = $2",
            )
            .bind(account.get())
            .bind(job.get())
            .execute(&mut **tx)
            .await?;
            Ok(true)
        })
    }

    async fn end_converge(&self, account: AccountId, generation: i64, job: JobId) -> Result<bool> {
        write_tx!(self, tx, {
            if locked_generation(tx, account).await? != generation {
                return Ok(false);
            }
            sqlx::query("UPDATE accounts SET converge_ended_by = $1 WHERE id = $2")
                .bind(job.get())
                .bind(account.get())
                .execute(&mut **tx)
                .await?;
            Ok(true)
        })
    }

    async fn reserve_call_slot(&self, server: ServerId, interval_ms: i64) -> Result<i64> {
        let now = now().as_millisecond();
        let slot: i64 = sqlx::query_scalar(
            "INSERT INTO server_call_slots (server_id, next_slot_ms) VALUES ($1, $2 + $3) \
             ON CONFLICT (server_id) DO UPDATE SET next_slot_ms = \
             (CASE WHEN server_call_slots.next_slot_ms > $2 THEN server_call_slots.next_slot_ms \
             ELSE $2 END) + $3 RETURNING next_slot_ms - $3",
        )
        .bind(server.get())
        .bind(now)
        .bind(interval_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(slot)
    }

    async fn record_job_calls(&self, job: JobId, calls: &[JobCall]) -> Result<()> {
        if calls.is_empty() {
            return Ok(());
        }
        write_tx!(self, tx, { insert_job_calls(tx, job, calls).await })
    }

    async fn record_job_attempt(&self, attempt: &JobAttempt) -> Result<()> {
        insert_job_attempt(attempt).execute(&self.pool).await?;
        Ok(())
    }

    async fn job_attempts(&self, job: JobId) -> Result<Vec<JobAttempt>> {
        type Row = (
            i64,
            String,
            Option<String>,
            jiff_sqlx::Timestamp,
            jiff_sqlx::Timestamp,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT attempt, outcome, message, started_at, finished_at FROM job_attempts \
             WHERE job_id = $1 ORDER BY finished_at, attempt",
        )
        .bind(job.get())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(attempt, outcome, message, started_at, finished_at)| JobAttempt {
                    job_id: job,
                    attempt,
                    outcome,
                    message,
                    started_at: started_at.to_jiff(),
                    finished_at: finished_at.to_jiff(),
                },
            )
            .collect())
    }

    async fn mark_account_failed(
        &self,
        ctx: &RequestContext,
        account: AccountId,
        reason: &str,
        event: drover_core::EventType,
    ) -> Result<()> {
        write_tx!(self, tx, {
            // The same refusal again (a retry of a failed account) is not news.
            let before = Self::locked_account(tx, account).await?;
            let news = before.failure.as_deref() != Some(reason);
            sqlx::query("UPDATE accounts SET failure = $1, failed_at = $2 WHERE id = $3")
                .bind(reason)
                .bind(sql_now())
                .bind(account.get())
                .execute(&mut **tx)
                .await?;
            append_audit(
                tx,
                ctx,
                "account.failed",
                format!("account:{account}"),
                json!({ "reason": reason }),
            )
            .await?;
            if news {
                let event = crate::NewEvent::account(event, &before, json!({ "reason": reason }));
                append_event(tx, &self.queue, ctx, &event).await?;
            }
            Ok(())
        })
    }

    async fn reassign_username(
        &self,
        ctx: &RequestContext,
        account: AccountId,
        refused: &UnixUsername,
    ) -> Result<UnixUsername> {
        write_tx!(self, tx, {
            let (domain, current): (String, String) =
                sqlx::query_as("SELECT domain, unix_username FROM accounts WHERE id = $1")
                    .bind(account.get())
                    .fetch_optional(&mut **tx)
                    .await?
                    .ok_or_else(|| StoreError::not_found("account", account))?;
            if current != refused.as_str() {
                // Another try chose already.
                return parse("unix username", &current, UnixUsername::parse);
            }
            let domain = parse("domain", &domain, DomainName::parse)?;
            let chosen = next_free_username(tx, &domain, Some(refused)).await?;
            sqlx::query("UPDATE accounts SET unix_username = $1, updated_at = $2 WHERE id = $3")
                .bind(chosen.as_str())
                .bind(sql_now())
                .bind(account.get())
                .execute(&mut **tx)
                .await?;
            append_audit(
                tx,
                ctx,
                "account.username_changed",
                format!("account:{account}"),
                json!({ "from": refused.as_str(), "to": chosen.as_str() }),
            )
            .await?;
            Ok(chosen)
        })
    }

    async fn mark_login_refused(
        &self,
        ctx: &RequestContext,
        server: ServerId,
        reason: &str,
        secret_sha256: &str,
    ) -> Result<()> {
        write_tx!(self, tx, {
            let changed = sqlx::query(
                "UPDATE servers SET login_refused = $1, login_refused_at = $2, \
                 login_refused_secret = $3 WHERE id = $4 \
                 AND (login_refused_secret IS NULL OR login_refused_secret <> $3)",
            )
            .bind(reason)
            .bind(sql_now())
            .bind(secret_sha256)
            .bind(server.get())
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if changed > 0 {
                append_audit(
                    tx,
                    ctx,
                    "server.login_refused",
                    format!("server:{server}"),
                    json!({ "reason": reason }),
                )
                .await?;
            }
            Ok(())
        })
    }

    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        read_tx!(self, tx, { write_sql::fetch_mailboxes(tx, account).await })
    }

    async fn mailbox_password(
        &self,
        account: AccountId,
        name: &MailboxName,
    ) -> Result<SealedMailboxPassword> {
        let (sealed, generation, is_hash) = sqlx::query_as(
            "SELECT sealed_password, password_generation, password_is_hash FROM mailboxes \
             WHERE account_id = $1 AND name = $2",
        )
        .bind(account.get())
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::not_found("mailbox", format!("{name} of account {account}")))?;
        Ok(SealedMailboxPassword {
            sealed,
            generation,
            is_hash,
        })
    }

    async fn mailbox_password_set(
        &self,
        account: AccountId,
        name: &MailboxName,
        generation: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE mailboxes SET password_applied = $3 \
             WHERE account_id = $1 AND name = $2 AND password_applied < $3",
        )
        .bind(account.get())
        .bind(name.as_str())
        .bind(generation)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn forget_resources(&self, account: AccountId) -> Result<()> {
        write_tx!(self, tx, {
            for table in [
                "mailboxes",
                "databases",
                "aliases",
                "subservers",
                "certificates",
            ] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE account_id = $1"
                )))
                .bind(account.get())
                .execute(&mut **tx)
                .await?;
            }
            Ok(())
        })
    }

    async fn other_domains(
        &self,
        account: AccountId,
        kind: OtherDomainKind,
    ) -> Result<Vec<OtherDomain>> {
        read_tx!(self, tx, {
            write_sql::fetch_other_domains(tx, account, kind).await
        })
    }

    async fn forget_other_domain(
        &self,
        account: AccountId,
        kind: OtherDomainKind,
        domain: &DomainName,
    ) -> Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {} WHERE account_id = $1 AND domain = $2 AND deleting",
            kind.table()
        )))
        .bind(account.get())
        .bind(domain.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn databases(&self, account: AccountId) -> Result<Vec<Database>> {
        read_tx!(self, tx, { write_sql::fetch_databases(tx, account).await })
    }

    async fn forget_database(&self, account: AccountId, name: &DatabaseName) -> Result<()> {
        sqlx::query("DELETE FROM databases WHERE account_id = $1 AND name = $2 AND deleting")
            .bind(account.get())
            .bind(name.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn forget_mailbox(&self, account: AccountId, name: &MailboxName) -> Result<()> {
        sqlx::query("DELETE FROM mailboxes WHERE account_id = $1 AND name = $2 AND deleting")
            .bind(account.get())
            .bind(name.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn job_calls(&self, job: JobId) -> Result<Vec<JobCall>> {
        type Row = (
            i64,
            String,
            String,
            String,
            Option<String>,
            i64,
            jiff_sqlx::Timestamp,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, server, call, outcome, message, duration_ms, at FROM job_calls \
             WHERE job_id = $1 ORDER BY seq",
        )
        .bind(job.get())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(seq, server, call, outcome, message, duration_ms, at)| JobCall {
                    seq,
                    server,
                    call,
                    outcome,
                    message,
                    duration_ms,
                    at: at.to_jiff(),
                },
            )
            .collect())
    }

    async fn audit(
        &self,
        ctx: &RequestContext,
        action: &str,
        subject: String,
        details: serde_json::Value,
    ) -> Result<()> {
        write_tx!(self, tx, {
            append_audit(tx, ctx, action, subject, details).await
        })
    }

    async fn set_provisioning_paused(&self, paused: bool) -> Result<()> {
        let queue = crate::jobs::CONVERGE_QUEUE.to_owned();
        let queues = self.queue.queues();
        let result = if paused {
            queues.pause(riverqueue::QueueSelector::Named(queue)).await
        } else {
            queues.resume(riverqueue::QueueSelector::Named(queue)).await
        };
        result.map_err(|e| match e {
            riverqueue::Error::NotFound { .. } => StoreError::conflict(
                Conflict::NoQueueYet,
                "the provisioning queue appears when a worker first runs; start drover serve \
                 or drover worker, then pause"
                    .into(),
            ),
            other => other.into(),
        })
    }

    async fn provisioning_paused(&self) -> Result<Option<bool>> {
        match self.queue.queues().get(crate::jobs::CONVERGE_QUEUE).await {
            Ok(queue) => Ok(Some(queue.paused_at.is_some())),
            Err(riverqueue::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn retry_job(&self, id: JobId) -> Result<()> {
        match self.queue.jobs().retry(id.get()).await {
            Err(riverqueue::Error::Database(e)) if unique_violation(&e).is_some() => {
                Err(self.job_waiting_instead_of(id).await?)
            }
            done => job_controlled(id, done),
        }
    }

    async fn cancel_job(&self, id: JobId) -> Result<()> {
        job_controlled(id, self.queue.jobs().cancel(id.get()).await)
    }

    async fn latest_audit_events(
        &self,
        subject: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        sqlx::query_as::<_, AuditRow>(concat!(
            select_audit!(),
            " WHERE id < $1 AND ($2 IS NULL OR subject = $2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(before.unwrap_or(i64::MAX))
        .bind(subject)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(AuditRow::into_model)
        .collect()
    }

    async fn audit_events(&self, filter: AuditFilter) -> Result<Vec<AuditEntry>> {
        sqlx::query_as::<_, AuditRow>(concat!(
            select_audit!(),
            " WHERE id > $1 AND ($2 IS NULL OR subject = $2) ORDER BY id LIMIT $3"
        ))
        .bind(filter.page.after.unwrap_or(0))
        .bind(&filter.subject)
        .bind(i64::from(filter.page.limit))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(AuditRow::into_model)
        .collect()
    }

    async fn verify_audit(&self) -> Result<AuditReport> {
        read_tx!(self, tx, {
            let (last_id, last_hash): (i64, String) =
                sqlx::query_as("SELECT last_id, last_hash FROM audit_head WHERE singleton")
                    .fetch_one(&mut **tx)
                    .await?;
            let head = (last_id > 0)
                .then(|| parse_hash("audit head", &last_hash).map(|h| (AuditEventId(last_id), h)))
                .transpose()?;
            let entries = sqlx::query_as::<_, AuditRow>(concat!(select_audit!(), " ORDER BY id"))
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(AuditRow::into_model)
                .collect::<Result<Vec<_>>>()?;
            let checked = entries.len() as u64;
            Ok(match verify_chain(entries, head) {
                Ok(count) => AuditReport {
                    events_checked: count,
                    intact: true,
                    problem: None,
                },
                Err(problem) => AuditReport {
                    events_checked: checked,
                    intact: false,
                    problem: Some(problem),
                },
            })
        })
    }
}

impl SqlStore {
    /// Why job `id` cannot run again: a job of its kind (unique per account) waits or runs for
    /// the same account, and does the same work.
    async fn job_waiting_instead_of(&self, id: JobId) -> Result<StoreError> {
        use riverqueue::JobState::*;
        let job = self.job(id).await?;
        let mut waiting = None;
        if let Some(account) = job.account_id {
            let filter = JobFilter {
                states: vec![Available, Pending, Retryable, Running, Scheduled],
                account_id: Some(account),
                limit: None,
            };
            waiting = self
                .jobs(filter)
                .await?
                .into_iter()
                .find(|j| j.kind == job.kind && j.id != id);
        }
        let message = match waiting {
            Some(other) => format!(
                "job {id} cannot run again while job {} ({}) is {} for the same account; it does \
                 the same work, so follow that one",
                other.id, other.kind, other.state
            ),
            None => format!(
                "job {id} cannot run again while another {} job is waiting for the same subject",
                job.kind
            ),
        };
        Ok(StoreError::conflict(Conflict::JobWaiting, message))
    }

    /// Joins River's rows with drover's record of what each job is about.
    async fn summarize(&self, rows: Vec<riverqueue::JobRow>) -> Result<Vec<JobSummary>> {
        let mut summaries = Vec::with_capacity(rows.len());
        for row in rows {
            let subject: Option<(Option<i64>, String)> = sqlx::query_as(
                "SELECT account_id, correlation_id FROM job_subjects WHERE job_id = $1",
            )
            .bind(row.id)
            .fetch_optional(&self.pool)
            .await?;
            let (account_id, correlation_id) = subject.map_or((None, None), |(a, c)| (a, Some(c)));
            summaries.push(JobSummary {
                id: JobId(row.id),
                kind: row.kind.clone(),
                state: row.state.as_str().to_owned(),
                queue: row.queue.clone(),
                attempt: row.attempt,
                max_attempts: row.max_attempts,
                args: serde_json::from_str(row.encoded_args.get()).unwrap_or_default(),
                errors: row.errors.iter().map(|e| e.error.clone()).collect(),
                output: row
                    .output()
                    .and_then(|raw| serde_json::from_str(raw.get()).ok()),
                account_id: account_id.map(AccountId),
                correlation_id,
                created_at: row.created_at,
                scheduled_at: row.scheduled_at,
                finalized_at: row.finalized_at,
            });
        }
        Ok(summaries)
    }
}

/// Refuses a password sealed with another key than the one the database records. The row is
/// locked as a rotation locks it, so a password sealed before a rotation commits is either
/// re-sealed by it or refused after it.
async fn sealed_with_the_recorded_key(tx: &mut Tx, key_id: &str) -> Result<()> {
    let recorded: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT key_id FROM seal_key WHERE id = 1{FOR_UPDATE}"
    )))
    .fetch_optional(&mut **tx)
    .await?;
    match recorded {
        Some(recorded) if recorded != key_id => Err(StoreError::conflict(
            Conflict::KeyRotated,
            format!(
                "the operator key was rotated to {recorded} since this process started with \
                 {key_id}: restart it with the new key (nothing was sealed)"
            ),
        )),
        _ => Ok(()),
    }
}

fn duplicate_domain(domain: &DomainName, service: Option<i64>) -> StoreError {
    let holder = service.map_or_else(String::new, |s| format!(" by service {s}"));
    StoreError::duplicate(
        UniqueKey::Domain,
        format!(
            "the domain {} ({}) is already taken{holder}; a domain can be hosted only once",
            domain.as_str(),
            domain.to_unicode()
        ),
    )
}

fn insert_job_attempt(
    attempt: &JobAttempt,
) -> sqlx::query::Query<'_, Db, <Db as sqlx::Database>::Arguments> {
    sqlx::query(
        "INSERT INTO job_attempts (job_id, attempt, outcome, message, started_at, finished_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(attempt.job_id.get())
    .bind(attempt.attempt)
    .bind(&attempt.outcome)
    .bind(&attempt.message)
    .bind(jiff_sqlx::Timestamp::from(attempt.started_at))
    .bind(jiff_sqlx::Timestamp::from(attempt.finished_at))
}

/// The account's latest generation, its row locked until `tx` ends on PostgreSQL: a change's
/// update of the same row is ordered before or after (SQLite's write transactions are serial
/// already).
async fn locked_generation(tx: &mut Tx, account: AccountId) -> Result<i64> {
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT desired_generation FROM accounts WHERE id = $1{FOR_UPDATE}"
    )))
    .bind(account.get())
    .fetch_one(&mut **tx)
    .await?)
}

/// The first candidate for `domain` after `after` (from the first when `None`) that no
/// account holds.
async fn next_free_username(
    tx: &mut Tx,
    domain: &DomainName,
    after: Option<&UnixUsername>,
) -> Result<UnixUsername> {
    for candidate in UnixUsername::candidates(domain, after) {
        let taken: Option<i64> =
            sqlx::query_scalar("SELECT id FROM accounts WHERE unix_username = $1")
                .bind(candidate.as_str())
                .fetch_optional(&mut **tx)
                .await?;
        if taken.is_none() {
            return Ok(candidate);
        }
    }
    Err(StoreError::conflict(
        Conflict::NoFreeUsername,
        format!("no free unix user name derived from {domain}"),
    ))
}

/// What River's retry or cancel of job `id` came to.
fn job_controlled<T>(id: JobId, done: std::result::Result<T, riverqueue::Error>) -> Result<()> {
    match done {
        Ok(_) => Ok(()),
        Err(riverqueue::Error::NotFound { .. }) => Err(StoreError::not_found("job", id)),
        Err(e) => Err(e.into()),
    }
}

fn new_token_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    format!("drv_{}", hex::encode(bytes))
}

/// Inserts a River job in `tx` with `opts`, recording the account it is about, if any, and the
/// request behind it. The one place jobs are inserted.
async fn insert_job<A>(
    queue: &riverqueue::Client,
    tx: &mut Tx,
    ctx: &RequestContext,
    account: Option<AccountId>,
    args: A,
    opts: riverqueue::InsertOpts,
) -> Result<(JobId, bool)>
where
    A: riverqueue::JobArgs + Send + Sync + 'static,
{
    let inserted = queue.insert(args).opts(opts).tx(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO job_subjects (job_id, account_id, correlation_id, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (job_id) DO NOTHING",
    )
    .bind(inserted.id())
    .bind(account.map(AccountId::get))
    .bind(&ctx.correlation_id)
    .bind(sql_now())
    .execute(&mut **tx)
    .await?;
    Ok((JobId(inserted.id()), inserted.unique_skipped_as_duplicate))
}
