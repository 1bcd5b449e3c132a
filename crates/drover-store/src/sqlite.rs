//! The store on SQLite: the embedded default, one drover process per database file.

use std::str::FromStr;
use std::time::Duration;

use riverqueue::migrate::SqliteMigrator;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

type Db = sqlx::Sqlite;
type SqlStore = SqliteStore;
const BACKEND: Backend = Backend::Sqlite;

/// drover's store in an SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    queue: riverqueue::Client,
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
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Config(format!("cannot open SQLite database '{url}': {e}")))?;
        crate::migrations::sqlite().run(&pool).await?;
        SqliteMigrator::new(pool.clone())
            .migrate_up()
            .await
            .map_err(|e| StoreError::Config(format!("River's SQLite migrations failed: {e}")))?;
        let queue = riverqueue::Client::builder(pool.clone()).build()?;
        Ok(Self { pool, queue })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

async fn begin(pool: &SqlitePool) -> Result<Transaction<'static, Db>, sqlx::Error> {
    // BEGIN IMMEDIATE: take the write lock up front, so a transaction that reads before it
    // writes cannot fail half-way when another writer commits.
    riverqueue::database::begin_sqlite_write(pool).await
}

include!("sql_store.rs");
include!("sql_dns.rs");
include!("sql_fleet.rs");
