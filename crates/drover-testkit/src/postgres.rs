use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, PgConnection};

/// Where tests find a PostgreSQL server they may create databases on.
pub const SERVER_URL_VAR: &str = "DROVER_TEST_POSTGRES_URL";
const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of its own for one test, on the server `DROVER_TEST_POSTGRES_URL` names (default:
/// the local server, user postgres). Dropped, with any open connections, when this is dropped.
#[derive(Debug)]
pub struct TestPostgres {
    admin_url: String,
    name: String,
    url: String,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "no PostgreSQL server for tests at {url}: {source}. Start one (the CI script does) or set \
     {SERVER_URL_VAR} to a server where this user may create databases"
)]
pub struct NoPostgres {
    url: String,
    source: sqlx::Error,
}

impl TestPostgres {
    pub async fn create() -> Result<Self, NoPostgres> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let admin_url =
            std::env::var(SERVER_URL_VAR).unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned());
        let name = format!(
            "drover_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let fail = |source| NoPostgres {
            url: admin_url.clone(),
            source,
        };
        let mut admin = PgConnection::connect(&admin_url).await.map_err(fail)?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .map_err(fail)?;
        admin.close().await.ok();
        let url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => format!("{admin_url}/{name}"),
        };
        Ok(Self {
            admin_url,
            name,
            url,
        })
    }

    /// The test database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run inside a runtime that is shutting down: use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("note: test database {} was not dropped", self.name);
        }
    }
}
