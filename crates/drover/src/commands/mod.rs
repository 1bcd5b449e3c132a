//! The command layer: the changes billing, an operator or drover itself asks for that rules
//! decide or jobs carry out, in one place. A command checks its input with `drover-core`'s
//! types and rules, then writes in one transaction ([`drover_store::Write`]) with the jobs that
//! carry it out and its audit events, and returns a typed outcome. The HTTP API, the command
//! line and the jobs call these and only adapt their input and output; no command calls a
//! server: long work is always a job.
//!
//! What a job records of its own progress (a lease, a call, an observation, a health check,
//! a drift scan's findings) is the job's bookkeeping and stays with the store.

mod accounts;
mod adoption;
mod backups;
mod bootstrap;
mod certificates;
mod customers;
mod databases;
mod dns;
mod drift;
mod jobs;
mod login_links;
mod mailboxes;
mod moves;
mod other_domains;
mod plans;
mod rebuild;
mod requests;
mod servers;
mod services;
mod tokens;
mod webhooks;

pub use accounts::{retry_failed_accounts, set_protection};
pub use adoption::{MailboxHashes, adopt};
pub(crate) use backups::backup_facts;
pub use backups::{
    RestoreOnto, RestorePlan, after_restore, backup_account, create_backup_destination,
    delete_backup_destination, last_good_shared_backup, plan_restore, restore_account,
    update_backup_destination,
};
pub use bootstrap::{BootstrapPlan, bootstrap_server, resume_bootstrap};
pub use certificates::{
    ask_again as ask_certificate_again, certificate, forget_certificate, request_certificate,
};
pub use customers::create_customer;
pub use databases::{create_database, delete_database};
pub use dns::{
    create_dns_provider, create_zone, delete_rrset, remove_zone, set_rrset, set_zone_safety,
    sync_zone,
};
pub use drift::record_drift_repair;
pub use jobs::{cancel_job, retry_job, set_provisioning_paused};
pub use login_links::{TakenLoginLink, take_login_link};
pub use mailboxes::{create_mailbox, delete_mailbox, update_mailbox};
pub use moves::{
    WithoutContent, advance_migration, confirm_migration, schedule_migration, start_failover,
    start_migration,
};
pub use other_domains::{create_alias, create_subserver, delete_other_domain};
pub use plans::{create_plan, update_plan};
pub use rebuild::{RebuildPlan, RebuildStep, rebuild};
pub use requests::{Requested, request, rewrite_addresses};
pub use servers::{
    DrainMove, DrainPlan, allow_login, create_server, decommission, drain, failover,
    set_break_glass, set_maintenance, update_server,
};
pub use services::{
    ServiceCreated, change_password, change_plan, create_service, transition_service,
};
pub use tokens::{create_token, revoke_token};
pub use webhooks::{
    NewEndpoint, PREVIOUS_SECRET_VALID_FOR, create_webhook_endpoint, redeliver_webhooks,
    rotate_webhook_secret, update_webhook_endpoint,
};

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

/// Tells webhooks of a resource (`kind`: mailbox, database, alias, subserver) recorded for an
/// account or removed from it (`change`: created, deleted), in the change's transaction; `job`
/// carries it to the server.
async fn resource_event(
    tx: &mut dyn drover_store::Write,
    ctx: &drover_store::RequestContext,
    account: drover_core::AccountId,
    (kind, name, change): (&str, &str, &str),
    job: drover_core::JobId,
) -> Result<()> {
    let record = tx.account(account).await?;
    let event = drover_store::NewEvent::account(
        drover_core::EventType::AccountResourceChanged,
        &record,
        serde_json::json!({ "kind": kind, "name": name, "change": change, "job_id": job }),
    );
    tx.event(ctx, &event).await?;
    Ok(())
}
