//! What drover keeps about backups: the destinations they go to, and each backup of each
//! account with its outcome. The rules (archive names, retention, what is overdue) are
//! `drover_core`'s.

use async_trait::async_trait;
use drover_core::{
    AccountId, BackupDestinationId, BackupDestinationSpec, BackupId, BackupState, DomainName,
    PlanId, ServerId,
};
use jiff::Timestamp;
use serde::Serialize;

use crate::{Enqueued, Page, RequestContext, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupDestination {
    pub id: BackupDestinationId,
    #[serde(flatten)]
    pub spec: BackupDestinationSpec,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// One backup of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Backup {
    pub id: BackupId,
    pub account_id: AccountId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "ana.ro"))]
    pub domain: DomainName,
    pub destination_id: BackupDestinationId,
    /// The server that wrote it.
    pub server_id: Option<ServerId>,
    /// The archive's path, as that server sees it.
    pub archive: String,
    pub state: BackupState,
    pub size_bytes: Option<u64>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub started_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
    /// The server's own message, when it failed.
    pub error: Option<String>,
    /// The server's lines about the failure.
    pub log: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupFilter {
    pub account: Option<AccountId>,
    pub destination: Option<BackupDestinationId>,
    pub state: Option<BackupState>,
    /// Newest first, by id.
    pub page: Page,
}

/// What the server answered to a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupOutcome {
    Succeeded { size_bytes: Option<u64> },
    Failed { error: String, log: String },
}

/// An account whose last good backup is older than the schedule allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupAge {
    pub account_id: AccountId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "ana.ro"))]
    pub domain: DomainName,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_good_at: Option<Timestamp>,
}

#[async_trait]
pub trait BackupStore: Send + Sync {
    /// Records a destination, audited. A new default one replaces the old default.
    async fn create_backup_destination(
        &self,
        ctx: &RequestContext,
        spec: &BackupDestinationSpec,
    ) -> Result<BackupDestination>;
    /// Replaces a destination's spec (its name kept), audited with before and after. A new
    /// default replaces the old default.
    async fn update_backup_destination(
        &self,
        ctx: &RequestContext,
        id: BackupDestinationId,
        spec: &BackupDestinationSpec,
    ) -> Result<BackupDestination>;
    async fn backup_destinations(&self) -> Result<Vec<BackupDestination>>;
    async fn backup_destination(&self, id: BackupDestinationId) -> Result<BackupDestination>;
    /// Where scheduled backups go, if an operator chose a place.
    async fn default_backup_destination(&self) -> Result<Option<BackupDestination>>;
    /// Forgets a destination no backup was written to, audited (one with backups is refused:
    /// they are the accounts' history and may still be restored).
    async fn delete_backup_destination(
        &self,
        ctx: &RequestContext,
        id: BackupDestinationId,
    ) -> Result<()>;

    /// Queues the account's backup (joining one that waits), audited as `action` when one is
    /// given (an operator's or billing's request; the schedule's are not).
    async fn request_backup(
        &self,
        ctx: &RequestContext,
        account: AccountId,
        destination: BackupDestinationId,
        action: Option<&str>,
    ) -> Result<Enqueued>;
    /// Records that the server was asked to write `archive`.
    async fn start_backup(
        &self,
        account: AccountId,
        destination: BackupDestinationId,
        server: ServerId,
        archive: &str,
    ) -> Result<Backup>;
    /// Records the account's backups still `running` as failed: called under the account's
    /// lease, where none can be running any more (its process stopped, or its job ran past
    /// its time). Their number.
    async fn interrupt_backups(&self, account: AccountId) -> Result<u64>;
    /// Records the server's answer; a failure is audited with the server's message.
    async fn finish_backup(
        &self,
        ctx: &RequestContext,
        id: BackupId,
        outcome: &BackupOutcome,
    ) -> Result<Backup>;
    /// Records that retention deleted these archives of the account, audited.
    async fn mark_pruned(
        &self,
        ctx: &RequestContext,
        account: AccountId,
        ids: &[BackupId],
    ) -> Result<()>;
    async fn backup(&self, id: BackupId) -> Result<Backup>;
    async fn backups(&self, filter: BackupFilter) -> Result<Vec<Backup>>;
    async fn last_good_backup(&self, account: AccountId) -> Result<Option<Backup>>;
    /// The plan's accounts made on a server (not deleted, not in a move not yet switched) with
    /// no backup started
    /// since `since`, by id, at most `limit`.
    async fn accounts_due_for_backup(
        &self,
        plan: PlanId,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<AccountId>>;
    /// The plan's accounts made on a server (not deleted) created before `since` whose last
    /// good backup is older than `since` (or that have none), by id.
    async fn backups_older_than(&self, plan: PlanId, since: Timestamp) -> Result<Vec<BackupAge>>;
}
