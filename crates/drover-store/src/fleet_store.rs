//! What drover keeps about the fleet's condition: each server's last health check and the
//! streak of results that moves its state.

use async_trait::async_trait;
use drover_core::{
    AccountId, DomainName, DriftAction, DriftFinding, Expected, HealthPolicy, HealthProbe,
    HealthStreak, MoveState, ServerId, ServerState, ServiceId, Usage, Verdict,
};
use jiff::Timestamp;
use serde::Serialize;

use crate::{Page, RequestContext, Result, Server};

/// A server's last health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerHealth {
    pub server_id: ServerId,
    pub state: ServerState,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    pub probe: HealthProbe,
    pub streak: HealthStreak,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub checked_at: Timestamp,
}

/// A server's state before and after a check.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthChange {
    pub server: Server,
    pub before: ServerState,
    pub health: ServerHealth,
}

impl HealthChange {
    pub fn moved(&self) -> bool {
        self.before != self.server.state
    }
}

/// An account's move to another server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Migration {
    pub account_id: AccountId,
    pub from_server: ServerId,
    pub to_server: ServerId,
    pub state: MoveState,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub delete_after: Timestamp,
    pub confirmed: bool,
    /// The source is lost: nothing is done to it once the account is switched.
    pub failover: bool,
    /// The backup the account's content comes from (a restore onto another server); none: a
    /// backup taken on the source as the move begins (or the last good one, for a failover).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub restore_from: Option<drover_core::BackupId>,
    /// The operator let it go without the account's content (nothing could carry it).
    pub without_content: bool,
}

/// A move as it is recorded when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMigration {
    pub account: AccountId,
    pub from: ServerId,
    pub to: ServerId,
    /// When the old copy is deleted unless an operator confirms earlier.
    pub delete_after: Timestamp,
    pub failover: bool,
    pub restore_from: Option<drover_core::BackupId>,
    pub without_content: bool,
}

/// A finding of a server's last drift scan, and what the last repair did with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DriftRecord {
    pub id: i64,
    pub server_id: ServerId,
    #[serde(flatten)]
    pub finding: DriftFinding,
    pub action: Option<DriftAction>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub found_at: Timestamp,
}

/// An account's last usage figures, as billing reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountUsage {
    pub account_id: AccountId,
    pub service_id: ServiceId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub domain: DomainName,
    /// The server the figures came from.
    pub server_id: ServerId,
    #[serde(flatten)]
    pub usage: Usage,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub measured_at: Timestamp,
}

/// Which usage figures to read, by account id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UsageFilter {
    pub server_id: Option<ServerId>,
    pub service_id: Option<ServiceId>,
    pub page: Page,
}

#[async_trait]
pub trait FleetStore: Send + Sync {
    /// Failover moves off `server` not finished yet.
    async fn failovers_remaining(&self, server: ServerId) -> Result<i64>;
    async fn migration(&self, account: AccountId) -> Result<Option<Migration>>;
    /// The moves not finished yet that leave or reach `server`, with their accounts' domains,
    /// by account.
    async fn moves_under_way(&self, server: ServerId) -> Result<Vec<(DomainName, Migration)>>;
    /// drover's accounts on a server, as a drift scan compares them.
    async fn server_expectations(&self, server: ServerId) -> Result<Vec<Expected>>;
    /// Replaces a server's open findings with a scan's, audited with their counts.
    async fn record_drift(
        &self,
        ctx: &RequestContext,
        server: ServerId,
        findings: &[DriftFinding],
    ) -> Result<Vec<DriftRecord>>;
    async fn drift_findings(&self, server: Option<ServerId>) -> Result<Vec<DriftRecord>>;
    /// What adopting a server matches its domains against: drover's plans, customers and
    /// accounts (with their servers' names), in one snapshot.
    async fn adoption_known(&self) -> Result<drover_core::Known>;
    /// Replaces the usage figures of the given accounts with a sync's, for those still on
    /// `server` (an account moved meanwhile keeps its figures until its new server's sync).
    /// Returns how many were recorded.
    async fn record_usage(&self, server: ServerId, usage: &[(AccountId, Usage)]) -> Result<usize>;
    /// Accounts' last usage figures, by account id.
    async fn usage(&self, filter: UsageFilter) -> Result<Vec<AccountUsage>>;
    async fn server_health(&self, server: ServerId) -> Result<Option<ServerHealth>>;
    /// Records a check and, if its streak reaches a threshold, moves the server's state,
    /// audited with the reasons, in one transaction.
    async fn record_health(
        &self,
        ctx: &RequestContext,
        server: ServerId,
        probe: &HealthProbe,
        policy: &HealthPolicy,
    ) -> Result<HealthChange>;
}
