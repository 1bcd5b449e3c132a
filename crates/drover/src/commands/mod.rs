//! The command layer: the changes billing, an operator or drover itself asks for that rules
//! decide or jobs carry out, in one place. A command checks its input with `drover-core`'s
//! types and rules, then writes in one transaction ([`drover_store::Write`]) with the jobs that
//! carry it out and its audit events, and returns a typed outcome. The HTTP API, the command
//! line and the jobs call these and only adapt their input and output; no command calls a
//! server: long work is always a job.
//!
//! Not here yet (the store still writes them, audited, in one transaction each): creating
//! customers, plans, servers, tokens, DNS providers and zones, a server's patch, an adoption's
//! records, and River's own job controls (retry, cancel, pause).

mod accounts;
mod dns;
mod drift;
mod moves;
mod plans;
mod rebuild;
mod requests;
mod servers;
mod services;
mod tokens;

pub use accounts::{retry_failed_accounts, set_protection};
pub use dns::{delete_rrset, remove_zone, set_rrset, set_zone_safety, sync_zone};
pub use drift::record_drift_repair;
pub use moves::{
    advance_migration, confirm_migration, schedule_migration, start_failover, start_migration,
};
pub use plans::update_plan;
pub use rebuild::{RebuildPlan, RebuildStep, rebuild};
pub use requests::{Requested, request, rewrite_addresses};
pub use servers::{DrainMove, DrainPlan, decommission, drain, failover, set_maintenance};
pub use services::{
    ServiceCreated, change_password, change_plan, create_service, transition_service,
};
pub use tokens::revoke_token;

use drover_store::StoreError;

/// Why a command was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule of the domain refused it: the input, or the change for the current state.
    #[error(transparent)]
    Rule(#[from] drover_core::Error),
    /// The store refused or failed it: a missing record, a collision, the database.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<drover_core::ServerRefusal> for Error {
    fn from(refusal: drover_core::ServerRefusal) -> Self {
        Self::Rule(refusal.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
