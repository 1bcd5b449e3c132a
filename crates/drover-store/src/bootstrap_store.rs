//! Bootstraps: bare servers brought into the fleet over SSH, each step and command kept as it
//! runs so that an operator can follow it and a retried job resumes it.

use async_trait::async_trait;
use drover_core::{BootstrapProgress, BootstrapSpec, BootstrapState, JobId, ServerId, ServerSpec};
use jiff::Timestamp;
use serde::Serialize;

use crate::{Page, RequestContext, Result, Server};

/// A bootstrap as far as it went.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerBootstrap {
    pub id: i64,
    pub spec: BootstrapSpec,
    pub state: BootstrapState,
    pub progress: BootstrapProgress,
    /// Why it stopped, when it failed.
    pub error: Option<String>,
    /// The server it registered.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub server_id: Option<ServerId>,
    /// The job that runs it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub job_id: Option<JobId>,
    pub created_by: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

#[async_trait]
pub trait BootstrapStore {
    /// Records a bootstrap and queues its job, audited. Refused while a server or another
    /// running bootstrap has its name.
    async fn start_bootstrap(
        &self,
        ctx: &RequestContext,
        spec: &BootstrapSpec,
        progress: &BootstrapProgress,
    ) -> Result<ServerBootstrap>;

    /// Starts a failed bootstrap again where it stopped (its done steps stay done), with a
    /// new job, audited. Refused unless it failed.
    async fn resume_bootstrap(&self, ctx: &RequestContext, id: i64) -> Result<ServerBootstrap>;

    async fn bootstrap(&self, id: i64) -> Result<ServerBootstrap>;

    /// Those under way (few: one per machine at most).
    async fn running_bootstraps(&self) -> Result<Vec<ServerBootstrap>>;

    /// Oldest first, by id.
    async fn bootstraps(&self, page: Page) -> Result<Vec<ServerBootstrap>>;

    /// Keeps how far it went (after each command, so it can be followed).
    async fn save_bootstrap_progress(
        &self,
        id: i64,
        state: BootstrapState,
        progress: &BootstrapProgress,
        error: Option<&str>,
    ) -> Result<()>;

    /// Records the server the bootstrap brought in, in maintenance, audited; the server it
    /// registered before when it did (a resumed run registers once).
    async fn register_bootstrapped_server(
        &self,
        ctx: &RequestContext,
        id: i64,
        spec: &ServerSpec,
    ) -> Result<Server>;
}
