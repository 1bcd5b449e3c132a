use async_trait::async_trait;
use drover_core::{
    AccountId, AuditEntry, CustomerId, DatabaseName, DomainName, JobId, MailboxName, PlanId,
    ServerId, ServiceId, TokenId, UnixUsername,
};

use crate::model::*;
use crate::{Backend, Result};

/// Everything drover keeps (DNS in [`crate::DnsStore`]). Each method that changes something is one transaction, including
/// its audit event (and its job, where the fleet must follow).
#[async_trait]
pub trait Store:
    crate::DnsStore
    + crate::FleetStore
    + crate::CertificateStore
    + crate::BackupStore
    + crate::WebhookStore
    + crate::BootstrapStore
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    fn backend(&self) -> Backend;

    /// River's client for this database: inserting, listing and managing jobs.
    fn queue(&self) -> &riverqueue::Client;

    /// Begins a write transaction for the command layer (see [`crate::Write`]).
    async fn write(&self) -> Result<Box<dyn crate::Write>>;

    async fn customer(&self, id: CustomerId) -> Result<Customer>;
    async fn customers(&self, page: Page) -> Result<Vec<Customer>>;

    async fn plan(&self, id: PlanId) -> Result<Plan>;
    async fn plans(&self, page: Page) -> Result<Vec<Plan>>;

    async fn server(&self, id: ServerId) -> Result<Server>;
    async fn servers(&self, page: Page) -> Result<Vec<Server>>;

    async fn service(&self, id: ServiceId) -> Result<Service>;
    async fn services(&self, filter: ServiceFilter) -> Result<Vec<Service>>;

    async fn account(&self, id: AccountId) -> Result<Account>;
    async fn accounts(&self, filter: AccountFilter) -> Result<Vec<Account>>;

    async fn job(&self, id: JobId) -> Result<JobSummary>;
    async fn jobs(&self, filter: JobFilter) -> Result<Vec<JobSummary>>;

    /// The live token a presented secret belongs to, if any.
    async fn authenticate(&self, secret: &str) -> Result<Option<ApiToken>>;
    async fn tokens(&self) -> Result<Vec<ApiToken>>;
    /// Opens a web UI session for `token`, known by `secret`'s hash, until `expires_at`;
    /// sessions already expired are dropped.
    async fn open_session(
        &self,
        secret: &str,
        token: TokenId,
        form_token: &str,
        expires_at: jiff::Timestamp,
    ) -> Result<()>;
    /// The live session `secret` opens: not ended, not expired, its token not revoked.
    async fn session(&self, secret: &str) -> Result<Option<UiSession>>;
    /// Ends the session `secret` opens (signing out); nothing if there is none.
    async fn end_session(&self, secret: &str) -> Result<()>;
    /// Keeps the language the session's operator chose.
    async fn set_session_language(&self, secret: &str, language: &str) -> Result<()>;

    /// How many jobs each queue holds in each state, and how long the earliest has been due.
    async fn job_counts(&self) -> Result<Vec<QueueCount>>;
    /// Keeps a login link a job made, sealed, until it is taken or `expires_at`.
    async fn keep_login_link(
        &self,
        job: JobId,
        account: AccountId,
        sealed_url: &[u8],
        expires_at: jiff::Timestamp,
    ) -> Result<()>;
    /// Takes the login link `job` made for `account`: returned once (sealed, with its expiry),
    /// then gone. Links past their expiry are dropped too.
    async fn take_login_link(
        &self,
        job: JobId,
        account: AccountId,
    ) -> Result<Option<(Vec<u8>, jiff::Timestamp)>>;
    /// How many of each kind of account resource drover records, by state (certificates by
    /// theirs).
    async fn resource_counts(&self) -> Result<Vec<ResourceCount>>;

    /// The id of the operator key the database's passwords are sealed with, once recorded.
    async fn seal_key_id(&self) -> Result<Option<String>>;
    /// Records `key_id` unless one is recorded already; returns the recorded one.
    async fn record_seal_key_id(&self, key_id: &str) -> Result<String>;
    /// One sealed account password, if any account has one (to try a key on).
    async fn any_sealed_password(&self) -> Result<Option<Vec<u8>>>;
    /// Replaces every sealed password by what `reseal` makes of it and records `to_key_id`, in
    /// one transaction, audited; refused unless `from_key_id` is the key recorded. Returns how
    /// many passwords were sealed again.
    async fn reseal_passwords(
        &self,
        ctx: &RequestContext,
        reseal: &(dyn for<'p> Fn(&'p [u8]) -> std::result::Result<Vec<u8>, String> + Send + Sync),
        from_key_id: &str,
        to_key_id: &str,
    ) -> Result<usize>;

    /// Claims an idempotency key for a request, or says how to answer a repeat of it.
    async fn start_idempotent(
        &self,
        token: TokenId,
        key: &str,
        request_hash: &str,
    ) -> Result<IdempotencyStart>;
    async fn finish_idempotent(
        &self,
        token: TokenId,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<()>;
    /// Releases a claimed key whose request failed without an answer worth repeating.
    async fn abandon_idempotent(&self, token: TokenId, key: &str) -> Result<()>;

    /// A River client builder on this database, for the processes that work jobs.
    fn job_client_builder(&self) -> riverqueue::ClientBuilder;

    /// The account, its plan, its server and its sealed password, for a converge job.
    async fn converge_target(&self, account: AccountId) -> Result<ConvergeTarget>;
    /// Every server with the number of accounts it holds or is about to hold.
    async fn placement_candidates(&self) -> Result<Vec<drover_core::Candidate>>;
    /// Places an account that has no server yet by `policy`, reading the fleet's load and
    /// assigning in one step so that concurrent placements never overfill a server. `Ok(Err)`
    /// says why no server fits.
    async fn place_account(
        &self,
        ctx: &RequestContext,
        account: AccountId,
        required_tags: &[drover_core::Tag],
        policy: &drover_core::PlacementPolicy,
    ) -> Result<std::result::Result<Server, String>>;
    /// Puts an account that has no server yet on `server`. Refused if it has one already.
    async fn assign_server(
        &self,
        ctx: &RequestContext,
        account: AccountId,
        server: ServerId,
    ) -> Result<Account>;
    /// Keeps the account's sealed password (set once, before the first create). `key_id` is
    /// the key it was sealed with: refused unless it is the key the database records (a
    /// rotation since this process started would leave the password unopenable).
    async fn store_sealed_password(
        &self,
        account: AccountId,
        sealed: &[u8],
        key_id: &str,
    ) -> Result<()>;
    /// Records what the server showed after a converge, and the record generation it matched.
    async fn record_observation(
        &self,
        account: AccountId,
        observed_state: &str,
        applied_generation: i64,
    ) -> Result<()>;
    /// Takes the account for `job` until `until` unless another job holds it; false if held.
    async fn lease_account(
        &self,
        account: AccountId,
        job: JobId,
        until: jiff::Timestamp,
    ) -> Result<bool>;
    async fn release_account(&self, account: AccountId, job: JobId) -> Result<()>;
    /// Completes a converge job that applied `generation`, in the same transaction that checks
    /// it is still the account's latest: a change committed before is seen (`false`: run again,
    /// nothing written), and one committed after finds the job finished and enqueues its own.
    /// The job's bookkeeping is written in that transaction too (whoever sees the job completed
    /// sees how): its attempt, its calls, its audit event, and the account's lease let go.
    async fn complete_converge(
        &self,
        account: AccountId,
        generation: i64,
        context: &riverqueue::WorkContext,
        completion: &ConvergeCompletion<'_>,
    ) -> Result<bool>;
    /// A converge job that read `generation` gives up (refused, or out of retries). `false`
    /// when the account changed since (a change that joined the job: run again); otherwise a
    /// change from now on enqueues a job of its own instead of joining this one, which River
    /// finishes outside this transaction.
    async fn end_converge(&self, account: AccountId, generation: i64, job: JobId) -> Result<bool>;
    /// Reserves the next call slot of a server whose calls must be `interval_ms` apart, for
    /// every process; returns when (unix milliseconds) the call may go.
    async fn reserve_call_slot(&self, server: ServerId, interval_ms: i64) -> Result<i64>;
    /// Keeps the calls one attempt of a job made, in order after the job's earlier calls, in
    /// one transaction.
    async fn record_job_calls(&self, job: JobId, calls: &[JobCall]) -> Result<()>;
    async fn job_calls(&self, job: JobId) -> Result<Vec<JobCall>>;
    /// Keeps how one attempt of a job ended, apart from the attempts before and after it.
    async fn record_job_attempt(&self, attempt: &JobAttempt) -> Result<()>;
    async fn job_attempts(&self, job: JobId) -> Result<Vec<JobAttempt>>;
    /// The account's mailboxes, those being deleted included, by name.
    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>>;
    /// A mailbox's sealed password and its generation, for the job that sets it.
    async fn mailbox_password(
        &self,
        account: AccountId,
        name: &MailboxName,
    ) -> Result<SealedMailboxPassword>;
    /// The server took the mailbox's password of `generation` (a newer one stays pending).
    async fn mailbox_password_set(
        &self,
        account: AccountId,
        name: &MailboxName,
        generation: i64,
    ) -> Result<()>;
    /// Forgets every mailbox, database, alias, sub-server and certificate of an account that
    /// is gone from its server.
    async fn forget_resources(&self, account: AccountId) -> Result<()>;
    /// Forgets a mailbox being deleted once its server no longer has it.
    async fn forget_mailbox(&self, account: AccountId, name: &MailboxName) -> Result<()>;
    /// The account's databases, those being deleted included, by name.
    async fn databases(&self, account: AccountId) -> Result<Vec<Database>>;
    /// Forgets a database being deleted once its server no longer has it.
    async fn forget_database(&self, account: AccountId, name: &DatabaseName) -> Result<()>;
    /// The account's alias domains or sub-servers, those being deleted included.
    async fn other_domains(
        &self,
        account: AccountId,
        kind: OtherDomainKind,
    ) -> Result<Vec<OtherDomain>>;
    /// Forgets an alias or sub-server being deleted once its server no longer has it.
    async fn forget_other_domain(
        &self,
        account: AccountId,
        kind: OtherDomainKind,
        domain: &DomainName,
    ) -> Result<()>;
    /// The account's converge job gave up (refused, or out of retries): its server does not
    /// match the record. Audited; cleared by the next successful converge. Webhooks hear of it
    /// as `event` (a failure, or a protected account's deletion held), once per reason.
    async fn mark_account_failed(
        &self,
        ctx: &RequestContext,
        account: AccountId,
        reason: &str,
        event: drover_core::EventType,
    ) -> Result<()>;
    /// The server refused the account's unix user name as taken (by one of its own users)
    /// before anything was created: the account takes the next free candidate for its domain.
    /// Audited; a name another try chose already is kept.
    async fn reassign_username(
        &self,
        ctx: &RequestContext,
        account: AccountId,
        refused: &UnixUsername,
    ) -> Result<UnixUsername>;
    /// The server refused drover's login with the secret whose SHA-256 is `secret_sha256`.
    async fn mark_login_refused(
        &self,
        ctx: &RequestContext,
        server: ServerId,
        reason: &str,
        secret_sha256: &str,
    ) -> Result<()>;
    /// Appends an audit event outside any other change (a job's outcome, a refusal).
    async fn audit(
        &self,
        ctx: &RequestContext,
        action: &str,
        subject: String,
        details: serde_json::Value,
    ) -> Result<()>;
    /// The emergency stop: provisioning jobs wait while the converge queue is paused.
    /// Refused (`NoQueueYet`) before any worker has run.
    async fn set_provisioning_paused(&self, paused: bool) -> Result<()>;
    /// Whether the converge queue is paused (`None` before any worker has run).
    async fn provisioning_paused(&self) -> Result<Option<bool>>;
    /// Runs a finished (discarded, cancelled, completed) job again now. Refused (`JobWaiting`)
    /// while a job of its kind waits for the same account: that one does the same work.
    async fn retry_job(&self, id: JobId) -> Result<()>;
    /// Cancels a job that has not finished.
    async fn cancel_job(&self, id: JobId) -> Result<()>;

    async fn audit_events(&self, filter: AuditFilter) -> Result<Vec<AuditEntry>>;
    /// The newest events (about `subject`, if given) older than event `before`, newest first,
    /// at most `limit` (1 to 1000).
    async fn latest_audit_events(
        &self,
        subject: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>>;
    /// Walks the whole chain and reports the first break.
    async fn verify_audit(&self) -> Result<AuditReport>;
}
