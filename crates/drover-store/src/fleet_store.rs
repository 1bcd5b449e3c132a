//! What drover keeps about the fleet's condition: each server's last health check and the
//! streak of results that moves its state.

use async_trait::async_trait;
use drover_core::{HealthPolicy, HealthProbe, HealthStreak, ServerId, ServerState, Verdict};
use jiff::Timestamp;
use serde::Serialize;

use crate::{RequestContext, Result, Server};

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

#[async_trait]
pub trait FleetStore: Send + Sync {
    /// Puts a server in maintenance (health checks go on, but never move it; nothing is placed
    /// on it and its jobs wait) or takes it out, back to healthy with a fresh streak so the
    /// next checks judge it. Audited.
    async fn set_maintenance(
        &self,
        ctx: &RequestContext,
        server: ServerId,
        on: bool,
    ) -> Result<Server>;
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
