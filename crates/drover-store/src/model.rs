//! What the store returns and the inputs that are not plain domain specs.

use drover_core::{
    AccountId, AuditChainBreak, CustomerId, CustomerSpec, DesiredState, DomainName, JobId, PlanId,
    PlanSpec, Scope, ServerId, ServerSpec, ServerState, ServiceId, ServiceStatus, TokenId,
    UnixUsername,
};
use jiff::Timestamp;
use serde::Serialize;

/// One of an account's mailboxes, as drover's records say it must be on the account's server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Mailbox {
    pub account_id: AccountId,
    /// The local part of its address (`ana` for `ana@example.ro`).
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "ana"))]
    pub name: drover_core::MailboxName,
    pub real_name: String,
    /// Its own quota (MB); `None`: its plan's mailbox quota.
    pub quota_mb: Option<u64>,
    /// A password set in drover that has not reached the server yet.
    pub password_pending: bool,
    /// Deleted in drover: the account's next converge removes it from the server.
    pub deleting: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// A mailbox's password as drover keeps it, sealed, for the job that gives it to a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedMailboxPassword {
    pub sealed: Vec<u8>,
    /// Moves with each password set in drover; the server has it once it took this one.
    pub generation: i64,
    /// What is sealed is the hash a server showed when the mailbox was adopted (made again
    /// with `--encpass`), not the password itself.
    pub is_hash: bool,
}

/// One of an account's databases, as drover's records say it must be on the account's server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Database {
    pub account_id: AccountId,
    /// Its name on the server, the account's prefix first (`ana_shop`).
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "ana_shop"))]
    pub name: drover_core::DatabaseName,
    #[serde(rename = "type")]
    pub kind: drover_core::DatabaseType,
    /// Deleted in drover: the account's next converge removes it from the server.
    pub deleting: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// What an account's other domain is to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherDomainKind {
    /// An alias domain: serves the account's site and mail.
    Alias,
    /// A sub-server: a name under the account's domain with a web root of its own.
    Subserver,
}

impl OtherDomainKind {
    pub(crate) fn table(self) -> &'static str {
        match self {
            Self::Alias => "aliases",
            Self::Subserver => "subservers",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alias => "alias",
            Self::Subserver => "sub-server",
        }
    }
}

/// One of an account's alias domains or sub-servers, as drover's records say it must be on
/// the account's server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OtherDomain {
    pub account_id: AccountId,
    /// The domain (ASCII; Unicode names are kept as punycode).
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "example.com"))]
    pub domain: DomainName,
    /// Deleted in drover: the account's next converge removes it from the server.
    pub deleting: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// Who asks for a change and under which request, recorded with every audit event and job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// `token:ID (name)` for API calls, `cli:USER` for the command line, `drover` for itself.
    pub actor: String,
    pub correlation_id: String,
}

/// Keyset pagination: rows with an id above `after`, at most `limit` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub after: Option<i64>,
    pub limit: u32,
}

impl Page {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 1000;

    pub fn new(after: Option<i64>, limit: Option<u32>) -> Self {
        Self {
            after,
            limit: limit
                .unwrap_or(Self::DEFAULT_LIMIT)
                .clamp(1, Self::MAX_LIMIT),
        }
    }
}

impl Default for Page {
    fn default() -> Self {
        Self::new(None, None)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Customer {
    pub id: CustomerId,
    #[serde(flatten)]
    pub spec: CustomerSpec,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Plan {
    pub id: PlanId,
    #[serde(flatten)]
    pub spec: PlanSpec,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Server {
    pub id: ServerId,
    #[serde(flatten)]
    pub spec: ServerSpec,
    pub state: ServerState,
    /// Set when the server refused drover's login: drover calls it no more until its
    /// credentials change or an operator lets it try again.
    pub login_refused: Option<LoginRefused>,
    /// Set while an operator works on the server over SSH (remote.cgi not answering): its
    /// jobs wait until it is lifted.
    pub break_glass: Option<BreakGlass>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// An operator's mark that a server is worked on over SSH, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreakGlass {
    pub reason: String,
    /// Who set it.
    pub by: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub since: Timestamp,
}

/// Why and when a server refused drover's login.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRefused {
    pub reason: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// A short fingerprint (SHA-256, first 4 bytes) of the secret that was refused: a
    /// different one may be tried.
    #[serde(skip)]
    pub secret_sha256: String,
}

impl std::fmt::Debug for LoginRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRefused")
            .field("reason", &self.reason)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// A new service: its account is created with it, holding the domain (unique across drover).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewService {
    pub customer_id: CustomerId,
    pub plan_id: PlanId,
    pub domain: DomainName,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Service {
    pub id: ServiceId,
    pub customer_id: CustomerId,
    pub plan_id: PlanId,
    pub status: ServiceStatus,
    pub account_id: AccountId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "xn--tiri-pxb.ro"))]
    pub domain: DomainName,
    /// The domain as people read it (`știri.ro`).
    #[cfg_attr(feature = "openapi", schema(example = "știri.ro"))]
    pub domain_unicode: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ServiceFilter {
    pub customer_id: Option<CustomerId>,
    pub status: Option<ServiceStatus>,
    pub page: Page,
}

/// The hosting account that carries out a service on a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Account {
    pub id: AccountId,
    pub service_id: ServiceId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "xn--tiri-pxb.ro"))]
    pub domain: DomainName,
    /// The domain as people read it (`știri.ro`).
    #[cfg_attr(feature = "openapi", schema(example = "știri.ro"))]
    pub domain_unicode: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub unix_username: UnixUsername,
    pub server_id: Option<ServerId>,
    pub desired_state: DesiredState,
    pub desired_generation: i64,
    /// What the server showed at the last sync (`enabled`, `disabled`, `absent`), if ever.
    pub observed_state: Option<String>,
    pub protected_from_deletion: bool,
    pub suspend_reason: Option<String>,
    /// Whether a sealed copy of the account password is held (needed to rebuild). The copy
    /// itself never leaves the store.
    pub has_sealed_password: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_sync_at: Option<Timestamp>,
    /// Why the last converge job gave up (refused, or out of retries): the server does not
    /// match this record. Cleared when a later one succeeds; drover tries again on its own.
    pub failure: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub failed_at: Option<Timestamp>,
    /// Set when a plan change was forced past what the account holds: what is over its plan.
    /// Nothing was deleted; new resources are refused until it fits, and the flag goes once
    /// it does.
    pub over_limit: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AccountFilter {
    pub domain: Option<DomainName>,
    pub server_id: Option<ServerId>,
    /// Only accounts whose last converge job gave up.
    pub failed: bool,
    pub page: Page,
}

/// The result of a lifecycle move: the service and account as they now are, and the converge
/// job that will make the server follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransitionOutcome {
    pub service: Service,
    pub account: Account,
    pub job_id: JobId,
    /// The account already had a converge job waiting; it will apply this change too.
    pub joined_waiting_job: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiToken {
    pub id: TokenId,
    pub name: String,
    pub scope: Scope,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub revoked_at: Option<Timestamp>,
}

/// A signed-in web UI session: the token it was opened with, which limits what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSession {
    pub token: ApiToken,
    /// What every form of the session posts back (CSRF).
    pub form_token: String,
    /// The language its operator chose, over the browser's.
    pub language: Option<String>,
    pub expires_at: Timestamp,
}

/// How a request carrying an `Idempotency-Key` should proceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyStart {
    /// First time: run it, then record its answer.
    Proceed,
    /// Seen and finished: send back the recorded answer.
    Replay { status: u16, body: String },
}

/// The jobs of one queue in one state.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct QueueCount {
    pub queue: String,
    pub state: String,
    pub count: i64,
    /// Seconds since the earliest of them was due (negative when all are due later).
    pub oldest_seconds: f64,
}

/// The resources of one kind in one state: `recorded` (made, or to be made, on their server)
/// or `deleting`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ResourceCount {
    /// mailbox, database, alias or subserver.
    pub kind: String,
    pub state: String,
    pub count: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub states: Vec<riverqueue::JobState>,
    pub account_id: Option<AccountId>,
    pub limit: Option<u32>,
}

/// A River job with drover's record of what it is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobSummary {
    pub id: JobId,
    pub kind: String,
    pub state: String,
    pub queue: String,
    pub attempt: i32,
    pub max_attempts: i32,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub args: serde_json::Value,
    pub errors: Vec<String>,
    /// What the job reported: why it waits, why it was discarded.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub output: Option<serde_json::Value>,
    pub account_id: Option<AccountId>,
    pub correlation_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub scheduled_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finalized_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub subject: Option<String>,
    pub page: Page,
}

/// The outcome of checking the whole audit chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditReport {
    pub events_checked: u64,
    pub intact: bool,
    pub problem: Option<AuditChainBreak>,
}

/// Everything a converge job needs about one account, read in one go.
#[derive(Debug, Clone)]
pub struct ConvergeTarget {
    pub account: Account,
    pub plan: Plan,
    pub server: Option<Server>,
    /// The account password sealed with the operator key, if one was stored.
    pub sealed_password: Option<Vec<u8>>,
}

/// How one attempt of a job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobAttempt {
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub job_id: JobId,
    pub attempt: i64,
    /// `completed`, `snoozed` (waits, or runs again), `retried` (failed, tried again later) or
    /// `discarded`.
    pub outcome: String,
    pub message: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub started_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub finished_at: Timestamp,
}

/// What a converge job's completion writes with it (`Store::complete_converge`).
#[derive(Debug)]
pub struct ConvergeCompletion<'a> {
    pub attempt: &'a JobAttempt,
    /// The calls of this attempt, not yet kept.
    pub calls: &'a [JobCall],
    /// The audit event saying what the job made match, and who it acted for.
    pub ctx: &'a crate::RequestContext,
    pub action: &'a str,
    pub subject: String,
    pub details: serde_json::Value,
}

/// One Virtualmin call a job made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobCall {
    pub seq: i64,
    pub server: String,
    /// The program and its parameters, secrets shown as `***`.
    pub call: String,
    pub outcome: String,
    pub message: Option<String>,
    pub duration_ms: i64,
    /// When the call started.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
}
