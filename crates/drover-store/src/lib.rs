//! drover's source of truth. The [`Store`] trait is everything the rest of drover may ask of the
//! database; [`PgStore`] and [`SqliteStore`] carry it out with the same SQL (see `sql_store.rs`)
//! and are held to the same contract tests.
//!
//! It holds data: drover's command layer decides what a change may do and writes it through a
//! [`Write`] (`store.write()`), one transaction that also appends the change's audit event and,
//! where the fleet must follow, inserts the River job that makes it so: the job exists exactly
//! when the change does. (The store's own writes that remain, listed in the command layer's
//! module, are kept to the same transaction rule; an adoption still checks its proposal here.)

mod backup_store;
mod bootstrap_store;
mod certificate_store;
mod dns_store;
mod error;
mod fleet_store;
pub mod jobs;
pub mod listing;
#[doc(hidden)]
pub mod migrations;
mod model;
mod postgres;
mod rows;
mod sqlite;
mod store;
mod webhook_store;
mod write;

use std::sync::Arc;

pub use backup_store::{
    Backup, BackupAge, BackupDestination, BackupFilter, BackupOutcome, BackupStore,
};
pub use bootstrap_store::{BootstrapStore, ServerBootstrap};
pub use certificate_store::{
    Certificate, CertificateFilter, CertificateName, CertificateOutcome, CertificateStore,
    NameAnswer,
};
pub use dns_store::{
    DnsProviderRecord, DnsProviderSpec, DnsStore, RewriteBatch, SyncAudit, Zone, ZoneFilter,
    ZoneProvider, ZoneRewrite, ZoneSyncOutcome,
};
pub use error::{Conflict, Reference, StoreError, UniqueKey};
pub use fleet_store::{
    AccountUsage, DriftRecord, FleetStore, HealthChange, Migration, NewMigration, ServerHealth,
    UsageFilter,
};
pub use model::{
    Account, AccountFilter, ApiToken, AuditFilter, AuditReport, BreakGlass, ConvergeCompletion,
    ConvergeTarget, Customer, Database, IdempotencyStart, JobAttempt, JobCall, JobFilter,
    JobSummary, LoginRefused, Mailbox, NewService, OtherDomain, OtherDomainKind, Page, Plan,
    QueueCount, RequestContext, ResourceCount, SealedMailboxPassword, Server, Service,
    ServiceFilter, TransitionOutcome, UiSession,
};
pub use postgres::PgStore;
pub use riverqueue::JobState;
pub use sqlite::SqliteStore;
pub use store::Store;
pub use webhook_store::{
    Delivery, DeliveryAttempt, DeliveryFilter, NewEvent, NewWebhookEndpoint, PendingDelivery,
    SealedWebhookSecrets, WebhookBacklog, WebhookEndpoint, WebhookEndpointPatch, WebhookStore,
};
pub use write::{Enqueued, Generation, Job, Write};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

/// Kinds of write transaction that run one at a time across every drover process.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Serialized {
    /// A placement reads every server's load and adds one account to it.
    Placement,
}

/// PostgreSQL connections a process keeps at most unless told: three processes (a `serve` and
/// two workers) fit PostgreSQL's default of 100 connections with room for its tools.
pub const DEFAULT_POOL_SIZE: u32 = 16;

/// Opens the store a `DATABASE_URL` names (`postgres://…`, `postgresql://…` or `sqlite://…`),
/// bringing its schema (drover's and River's) up to date.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    open_with_pool(url, DEFAULT_POOL_SIZE).await
}

/// As [`open`], with at most `pool_size` PostgreSQL connections (SQLite has one writer
/// whatever the pool, so its own size stays).
pub async fn open_with_pool(url: &str, pool_size: u32) -> Result<Arc<dyn Store>> {
    Ok(open_reporting(url, pool_size).await?.0)
}

/// As [`open_with_pool`], saying what it applied to the schema.
pub async fn open_reporting(
    url: &str,
    pool_size: u32,
) -> Result<(Arc<dyn Store>, migrations::Applied)> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PgStore::open_with_pool(url, pool_size).await?;
        let applied = store.applied().clone();
        Ok((Arc::new(store), applied))
    } else if url.starts_with("sqlite:") {
        let store = SqliteStore::open(url).await?;
        let applied = store.applied().clone();
        Ok((Arc::new(store), applied))
    } else {
        Err(StoreError::Config(format!(
            "DATABASE_URL '{}' names no supported database; expected postgres://… or sqlite://…",
            redact_url(url)
        )))
    }
}

/// A URL fit for messages: any password replaced.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            super::redact_url("postgres://drover:s3cret@db:5432/drover"),
            "postgres://drover:***@db:5432/drover"
        );
        assert_eq!(
            super::redact_url("sqlite://drover.db"),
            "sqlite://drover.db"
        );
    }
}
