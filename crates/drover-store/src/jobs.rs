//! The jobs drover inserts. Their workers arrive with the provisioning engine; the arguments
//! live here because a job is inserted in the same transaction as the change that needs it.

use riverqueue::JobArgs;
use serde::{Deserialize, Serialize};

/// Make the account's server match the account's record. At most one waits or runs per
/// account: a change made while one runs joins it, and is picked up because the job finishes
/// only at the latest generation (see `Store::complete_converge` and `Store::end_converge`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(
    kind = "converge_account",
    queue = "converge",
    unique(by_args, by_state(available, pending, running, scheduled, retryable))
)]
pub struct ConvergeAccount {
    #[river(unique)]
    pub account_id: i64,
    /// Set when a converge job of the account gave up at the generation it read: this job,
    /// enqueued by a later change, cannot join that one while River finishes it.
    #[river(unique)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_job: Option<i64>,
}

/// The queue converge jobs wait in.
pub const CONVERGE_QUEUE: &str = "converge";

/// Set the account's password on its server to the sealed one drover holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(
    kind = "set_account_password",
    queue = "converge",
    unique(by_args, by_state(available, pending, running, scheduled, retryable))
)]
pub struct SetAccountPassword {
    #[river(unique)]
    pub account_id: i64,
}

/// Make every provider of a zone serve what drover holds for it (or remove it, if the zone is
/// being deleted). At most one waits or runs per zone: a change made while one runs is picked up
/// because the job re-reads the zone's generation before it finishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(
    kind = "sync_zone",
    queue = "dns",
    unique(by_args, by_state(available, pending, running, scheduled, retryable))
)]
pub struct SyncZone {
    #[river(unique)]
    pub zone_id: i64,
    /// Apply even what the safety limits refuse (an operator's explicit choice).
    #[serde(default)]
    pub force: bool,
}

/// The queue DNS jobs wait in: DNS work never waits behind provisioning.
pub const DNS_QUEUE: &str = "dns";

/// Read a zone's providers and say what applying it would change; the plan is the job's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(kind = "plan_zone", queue = "dns")]
pub struct PlanZone {
    pub zone_id: i64,
}

/// Compare what each provider (or one) serves with drover's zones; the report is the job's
/// output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(kind = "check_zones", queue = "dns")]
pub struct CheckZones {
    pub provider_id: Option<i64>,
}

/// The job of work an operator asked for (see the command layer's `request`): tried a few
/// times only, as someone may be waiting on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestedJob {
    HealthCheck(CheckFleetHealth),
    DriftScan(ScanDrift),
    OrphanDeletion(DeleteOrphan),
    UsageSync(SyncUsage),
    ZonePlan(PlanZone),
    ZoneCheck(CheckZones),
    Adoption(AdoptServer),
    LoginLink(CreateLoginLink),
    OverSsh(RunOverSsh),
}

impl RequestedJob {
    /// What was asked: the job's arguments.
    pub fn asked(&self) -> serde_json::Value {
        let asked = match self {
            Self::HealthCheck(args) => serde_json::to_value(args),
            Self::DriftScan(args) => serde_json::to_value(args),
            Self::OrphanDeletion(args) => serde_json::to_value(args),
            Self::UsageSync(args) => serde_json::to_value(args),
            Self::ZonePlan(args) => serde_json::to_value(args),
            Self::ZoneCheck(args) => serde_json::to_value(args),
            Self::Adoption(args) => serde_json::to_value(args),
            Self::LoginLink(args) => serde_json::to_value(args),
            Self::OverSsh(args) => serde_json::to_value(args),
        };
        asked.unwrap_or_default()
    }
}

/// Move every record pointing at old addresses to new ones, on every provider (the failover
/// rewrite, when asked for through the API). Its report is the job's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(kind = "rewrite_addresses", queue = "dns")]
pub struct RewriteAddresses {
    pub moved: drover_core::AddressMove,
}

/// Check the health of one server, or of every one (the scheduler enqueues one per interval,
/// on the leader).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(
    kind = "check_fleet_health",
    queue = "fleet",
    unique(by_args, by_state(available, pending, running, scheduled, retryable))
)]
pub struct CheckFleetHealth {
    #[river(unique)]
    #[serde(default)]
    pub server_id: Option<i64>,
    /// Also compare each answering server's plans with drover's (one `list-plans` each), as
    /// the doctor asks; the scheduler's checks do not.
    #[river(unique)]
    #[serde(default)]
    pub plans: bool,
}

/// Put a plan, as drover defines it, on every server that may host its accounts. Not unique: a
/// change made while one runs must not join it (it may have read the plan before), and a
/// repeat costs one listing per server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(kind = "sync_plan", queue = "fleet")]
pub struct SyncPlan {
    pub plan_id: i64,
}

/// Try the accounts whose converge job gave up once more (periodic, on the elected leader).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(
    kind = "retry_failed_accounts",
    queue = "fleet",
    unique(by_args, by_state(available, pending, running, scheduled, retryable))
)]
pub struct RetryFailedAccounts {}

/// The queue of periodic fleet work: never behind provisioning or DNS.
pub const FLEET_QUEUE: &str = "fleet";

/// The queue backups wait in: a server's backups take minutes each, and the fleet's own work
/// (health checks, drift scans, login links) never waits behind them.
pub const BACKUP_QUEUE: &str = "backup";

/// Run one of Virtualmin's programs with its own `virtualmin` command over SSH (the
/// break-glass path, while remote.cgi does not answer): only on a server an operator marked,
/// only the programs to look (`list-domains`, `info`) and to suspend or unsuspend
/// (`disable-domain`, `enable-domain`). The answer is the job's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(kind = "run_over_ssh", queue = "fleet")]
pub struct RunOverSsh {
    pub server_id: i64,
    pub program: SshProgram,
}

/// The programs the break-glass path runs: `{"program": "disable-domain", "domain": …,
/// "why": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "program", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SshProgram {
    ListDomains,
    Info,
    DisableDomain {
        domain: String,
        /// Shown to the owner, as a suspension's reason is.
        why: Option<String>,
    },
    EnableDomain {
        domain: String,
    },
}

/// The queue bootstraps run in: each takes minutes, and the fleet's own work never waits
/// behind them.
pub const BOOTSTRAP_QUEUE: &str = "bootstrap";

/// Bring a bare server into the fleet over SSH, step by step (see drover-core's bootstrap):
/// a retry resumes it, as every step checks first whether it is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(
    kind = "bootstrap_server",
    queue = "bootstrap",
    unique(by_args, by_state(available, pending, running, scheduled, retryable))
)]
pub struct BootstrapServer {
    #[river(unique)]
    pub bootstrap_id: i64,
}

/// The queue webhook deliveries wait in: a slow receiver never holds up the fleet's work.
pub const WEBHOOK_QUEUE: &str = "webhooks";

/// Send an endpoint's waiting events, oldest first, until none is left (one job per
/// endpoint at a time keeps them in order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(
    kind = "deliver_webhooks",
    queue = "webhooks",
    unique(by_args, by_state(available, pending, running, scheduled, retryable))
)]
pub struct DeliverWebhooks {
    #[river(unique)]
    pub endpoint_id: i64,
}

/// Scan servers for drift (one, or every healthy or degraded one), and repair as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(
    kind = "scan_drift",
    queue = "fleet",
    unique(by_args, by_state(available, pending, running, scheduled, retryable))
)]
pub struct ScanDrift {
    #[river(unique)]
    pub server_id: Option<i64>,
    #[river(unique)]
    #[serde(default)]
    pub repair: DriftRepair,
}

/// What a drift scan does with what it finds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftRepair {
    /// Repair within the drift limits, by the configured policy (the scheduled scan).
    #[default]
    ByPolicy,
    /// Record the findings only.
    ScanOnly,
    /// Say what a repair would do, changing nothing.
    DryRun,
    /// Repair past the drift limits (an operator's explicit choice).
    Forced,
}

/// A one-time login link into the panel for an account's owner, kept sealed until the one who
/// asked takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(kind = "create_login_link", queue = "fleet")]
pub struct CreateLoginLink {
    pub account_id: i64,
    pub lifetime_seconds: u32,
}

/// Ask the account's server for a Let's Encrypt certificate once the account's DNS points at
/// it, and again after a failure when Let's Encrypt's limits allow. At most one waits or runs
/// per account: a request made meanwhile joins it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(
    kind = "request_certificate",
    queue = "fleet",
    unique(by_args, by_state(available, pending, running, scheduled, retryable))
)]
pub struct RequestCertificate {
    #[river(unique)]
    pub account_id: i64,
}

/// Back the account up to a destination: `backup-domain` on its server, the outcome recorded,
/// then the destination's retention applied to the account's archives there. At most one
/// waits or runs per account: a request made meanwhile joins it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(
    kind = "backup_account",
    queue = "backup",
    unique(by_args, by_state(available, pending, running, scheduled, retryable))
)]
pub struct BackupAccount {
    #[river(unique)]
    pub account_id: i64,
    pub destination_id: i64,
}

/// Restore the account from one of its backups on its server (an operator's choice, the
/// account's domain repeated), then converge it so that drover's records win for its
/// configuration. Tried once: a restore replaces the account's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(
    kind = "restore_account",
    queue = "converge",
    unique(by_args, by_state(available, pending, running, scheduled, retryable))
)]
pub struct RestoreAccount {
    #[river(unique)]
    pub account_id: i64,
    pub backup_id: i64,
}

/// Queue the backups that are due: every account on a server without one since the
/// schedule's interval, to the default destination (the scheduler enqueues it on the leader).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(
    kind = "schedule_backups",
    queue = "fleet",
    unique(by_args, by_state(available, pending, running, scheduled, retryable))
)]
pub struct ScheduleBackups {
    /// The interval in seconds: accounts without a backup started since are due.
    pub every_seconds: u64,
}

/// Delete a domain drover does not hold from a server, once an operator repeated its name
/// (the last scan must have found it as an orphan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(
    kind = "delete_orphan",
    queue = "fleet",
    unique(by_args, by_state(available, pending, running, scheduled, retryable))
)]
pub struct DeleteOrphan {
    #[river(unique)]
    pub server_id: i64,
    #[river(unique)]
    pub domain: String,
}

/// Pull usage figures (one server, or every healthy or degraded one) into `account_usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(
    kind = "sync_usage",
    queue = "fleet",
    unique(by_args, by_state(available, pending, running, scheduled, retryable))
)]
pub struct SyncUsage {
    #[river(unique)]
    pub server_id: Option<i64>,
}

/// Read what a server holds as drover's records (see `drover_core::propose`) and, when
/// `apply`, record them; nothing on the server changes. Not unique: a dry run and its apply
/// may be asked for one after the other, and an apply finds what an earlier one recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(kind = "adopt_server", queue = "fleet")]
pub struct AdoptServer {
    pub server_id: i64,
    pub apply: bool,
    /// Billing's mapping (domain → customer, plan), when one was given.
    #[serde(default)]
    pub mapping: Option<Vec<drover_core::Mapping>>,
    /// The operator accepts that drover's plans replace the server's where they differ.
    #[serde(default)]
    pub accept_plan_changes: bool,
}

/// Move an account to the server its migration names, one step at a time (see
/// `account_migrations`). Not unique: each run works under the account's lease and takes the
/// step the migration's state says, so a repeat is harmless, and a confirmation can run at once
/// while a later check waits scheduled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(kind = "migrate_account", queue = "converge")]
pub struct MigrateAccount {
    pub account_id: i64,
}
