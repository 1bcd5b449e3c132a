//! The store on SQLite: the embedded default, one drover process per database file.

use std::str::FromStr;
use std::time::Duration;

use riverqueue::migrate::SqliteMigrator;
use sqlx::SqlitePool;

use crate::migrations::Applied;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

type Db = sqlx::Sqlite;
type SqlStore = SqliteStore;
const BACKEND: Backend = Backend::Sqlite;

/// drover's store in an SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    queue: riverqueue::Client,
    applied: Applied,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it if needed) the database file and brings drover's and River's schemas
    /// up to date.
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("DATABASE_URL '{url}' is not valid: {e}")))?
            .create_if_missing(true)
            .foreign_keys(true)
            // WAL and a busy timeout let readers work beside the one writer; River needs both.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let path = options.get_filename().to_owned();
        create_private(&path)?;
        let migrating = migration_lock(&path).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Config(format!("cannot open SQLite database '{url}': {e}")))?;
        let migrator = crate::migrations::sqlite();
        let before: Vec<i64> = sqlx::query_scalar(crate::migrations::APPLIED_VERSIONS)
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
        migrator.run(&pool).await?;
        let river = SqliteMigrator::new(pool.clone())
            .migrate_up()
            .await
            .map_err(|e| StoreError::Config(format!("River's SQLite migrations failed: {e}")))?;
        drop(migrating);
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

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// An exclusive lock on `<database>.lock`, held while the schema is brought up to date: two
/// processes starting on a new database (a `serve` and a `worker`, say) would otherwise apply
/// the same migration twice. `None` for an in-memory database.
async fn migration_lock(path: &std::path::Path) -> Result<Option<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
        return Ok(None);
    }
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = std::path::PathBuf::from(lock_path);
    let locked = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| StoreError::Config(format!("waiting for the schema lock failed: {e}")))?
    .map_err(|e| {
        StoreError::Config(format!(
            "cannot lock {}.lock to update the schema: {e}",
            path.display()
        ))
    })?;
    Ok(Some(locked))
}

/// Creates a new database file readable by its owner alone: it holds sealed passwords and the
/// audit trail. SQLite gives its WAL and shared-memory files the database file's mode.
fn create_private(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" || path.exists() {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Config(format!(
            "cannot create the SQLite database {}: {e}",
            path.display()
        ))),
    }
}

// The dialect seam of the shared SQL body (see `sql_store.rs`).

async fn begin(pool: &SqlitePool) -> Result<Transaction<'static, Db>, sqlx::Error> {
    // BEGIN IMMEDIATE: take the write lock up front, so a transaction that reads before it
    // writes cannot fail half-way when another writer commits.
    riverqueue::database::begin_sqlite_write(pool).await
}

/// A read transaction keeps the snapshot of its first read (WAL mode).
async fn begin_read(pool: &SqlitePool) -> Result<Transaction<'static, Db>> {
    Ok(pool.begin().await?)
}

/// SQLite has one writer at a time: what a transaction reads stays as it was until it ends.
const FOR_UPDATE: &str = "";

/// Over a group of River's jobs: seconds since the earliest was due (River keeps UTC text).
const SECONDS_SINCE_EARLIEST_SCHEDULED: &str =
    "(julianday('now') - julianday(MIN(scheduled_at))) * 86400.0";

/// Write transactions are serial already.
async fn serialize(
    _tx: &mut Transaction<'static, Db>,
    _kind: Serialized,
) -> Result<(), sqlx::Error> {
    Ok(())
}

include!("sql_store.rs");
include!("sql_dns.rs");
include!("sql_fleet.rs");
include!("sql_certificates.rs");
include!("sql_backups.rs");
include!("sql_webhooks.rs");
include!("sql_bootstraps.rs");
include!("sql_write.rs");
