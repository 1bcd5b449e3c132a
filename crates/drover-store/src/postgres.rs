//! The store on PostgreSQL, for production: several drover processes share one database.

use std::time::Duration;

use riverqueue::migrate::PostgresMigrator;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::migrations::Applied;
use crate::redact_url;

type Db = sqlx::Postgres;
type SqlStore = PgStore;
const BACKEND: Backend = Backend::Postgres;

/// drover's store on PostgreSQL.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    queue: riverqueue::Client,
    applied: Applied,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects and brings drover's and River's schemas up to date.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with_pool(url, crate::DEFAULT_POOL_SIZE).await
    }

    /// As [`PgStore::open`], keeping at most `pool_size` connections.
    pub async fn open_with_pool(url: &str, pool_size: u32) -> Result<Self> {
        let options: PgConnectOptions = url.parse().map_err(|e| {
            StoreError::Config(format!(
                "DATABASE_URL '{}' is not valid: {e}",
                redact_url(url)
            ))
        })?;
        let unreachable = |e: sqlx::Error| {
            StoreError::Config(format!(
                "cannot connect to PostgreSQL at {}:{} ('{}'): {e}",
                options.get_host(),
                options.get_port(),
                redact_url(url)
            ))
        };
        // One connection first: a pool retries until its timeout and then reports only that
        // it timed out, hiding "connection refused" or a wrong password.
        sqlx::Connection::close(
            <sqlx::PgConnection as sqlx::Connection>::connect_with(&options)
                .await
                .map_err(unreachable)?,
        )
        .await
        .map_err(unreachable)?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(unreachable)?;
        Self::from_pool(pool).await
    }

    /// Uses an existing pool; migrates it first.
    pub async fn from_pool(pool: PgPool) -> Result<Self> {
        let migrator = crate::migrations::postgres();
        let before: Vec<i64> = sqlx::query_scalar(crate::migrations::APPLIED_VERSIONS)
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
        migrator.run(&pool).await?;
        let river = PostgresMigrator::new(pool.clone())
            .migrate_up()
            .await
            .map_err(|e| {
                StoreError::Config(format!("River's PostgreSQL migrations failed: {e}"))
            })?;
        let applied = Applied::new(&migrator, &before, river);
        let queue = riverqueue::Client::builder(pool.clone()).build()?;
        Ok(Self {
            pool,
            queue,
            applied,
        })
    }

    /// What opening it applied to the schema.
    pub fn applied(&self) -> &Applied {
        &self.applied
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

// The dialect seam of the shared SQL body (see `sql_store.rs`).

async fn begin(pool: &PgPool) -> Result<Transaction<'static, Db>, sqlx::Error> {
    riverqueue::database::begin_postgres(pool).await
}

/// One snapshot for every read of the transaction: PostgreSQL's default, READ COMMITTED, takes
/// a new one per statement.
async fn begin_read(pool: &PgPool) -> Result<Transaction<'static, Db>> {
    let mut transaction = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *transaction)
        .await?;
    Ok(transaction)
}

/// Rows read with this suffix stay locked until the transaction ends.
const FOR_UPDATE: &str = " FOR UPDATE";

/// Over a group of River's jobs: seconds since the earliest was due.
const SECONDS_SINCE_EARLIEST_SCHEDULED: &str =
    "CAST(EXTRACT(EPOCH FROM now() - MIN(scheduled_at)) AS DOUBLE PRECISION)";

/// Waits until no other transaction of the kind runs, and holds that until `tx` ends.
async fn serialize(tx: &mut Transaction<'static, Db>, kind: Serialized) -> Result<(), sqlx::Error> {
    let key: i64 = match kind {
        Serialized::Placement => 7201,
    };
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(&mut **tx)
        .await
        .map(drop)
}

include!("sql_store.rs");
include!("sql_dns.rs");
include!("sql_fleet.rs");
include!("sql_certificates.rs");
include!("sql_backups.rs");
include!("sql_webhooks.rs");
include!("sql_bootstraps.rs");
include!("sql_write.rs");
