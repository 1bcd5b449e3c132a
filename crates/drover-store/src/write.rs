//! One write transaction, as drover's command layer sees it: the rows a command reads and
//! changes, the jobs it queues and the audit events it appends, committed together or not at
//! all. It holds data only: what a change may do is decided by the command that calls it, with
//! `drover-core`'s rules.

use async_trait::async_trait;
use drover_core::{
    AccountId, Adopted, AdoptedMailbox, CustomerId, CustomerSpec, DatabaseName, DatabaseType,
    DesiredState, DnsProviderId, DomainName, DriftAction, JobId, MailboxName, MoveState, PlanId,
    PlanSpec, RrSet, Scope, ServerId, ServerSpec, ServerState, ServiceId, ServiceStatus, TokenId,
    UnixUsername, ZoneDiff, ZoneId,
};
use secrecy::SecretString;

use crate::Migration;
use crate::Result;
use crate::jobs::{
    ConvergeAccount, MigrateAccount, RequestedJob, RewriteAddresses, SetAccountPassword, SyncPlan,
    SyncZone,
};
use crate::model::{
    Account, ApiToken, Customer, Database, Mailbox, NewService, OtherDomain, OtherDomainKind, Plan,
    RequestContext, Server, Service,
};
use crate::{DnsProviderRecord, DnsProviderSpec, Zone};

/// A job a command queues with its change. Kinds unique per account join the one already
/// waiting instead of adding another ([`Enqueued::joined`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    Converge(ConvergeAccount),
    SetPassword(SetAccountPassword),
    SyncPlan(SyncPlan),
    /// A sync of the zone to its providers (one per zone), recorded as about its account.
    SyncZone {
        args: SyncZone,
        account: Option<AccountId>,
    },
    /// Work an operator asked for, tried at most `attempts` times.
    Requested {
        job: RequestedJob,
        attempts: i32,
    },
    /// Every record pointing at old addresses moved to new ones, on every provider.
    RewriteAddresses(RewriteAddresses),
    /// The account restored from a backup, tried once.
    Restore(crate::jobs::RestoreAccount),
    /// The account's move, to run now or at `at`.
    Migrate {
        args: MigrateAccount,
        at: Option<jiff::Timestamp>,
    },
}

/// What queueing a job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub id: JobId,
    /// The same job was waiting already; it will do this change's work too.
    pub joined: bool,
}

/// An account's record after [`Write::next_generation`]: the generation its converge jobs must
/// reach, and the converge job that last ended without reaching one (a new job must not be
/// merged into it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation {
    pub generation: i64,
    pub converge_ended_by: Option<i64>,
}

/// A write transaction. Dropped without [`Write::commit`], it is rolled back: an error returned
/// half-way through a command leaves nothing behind.
///
/// A read of one row by its id (a service, an account, a plan, a server, a zone) locks it until
/// the end on PostgreSQL, so two commands changing the same row run one after the other;
/// SQLite's write transactions run one at a time already.
#[async_trait]
pub trait Write: Send {
    async fn service(&mut self, id: ServiceId) -> Result<Service>;
    async fn account(&mut self, id: AccountId) -> Result<Account>;
    async fn plan(&mut self, id: PlanId) -> Result<Plan>;
    async fn server(&mut self, id: ServerId) -> Result<Server>;
    /// The first unix user name derived from `domain` that no account holds.
    async fn free_username(&mut self, domain: &DomainName) -> Result<UnixUsername>;
    async fn zone(&mut self, id: ZoneId) -> Result<Zone>;
    async fn dns_provider(&mut self, id: DnsProviderId) -> Result<DnsProviderRecord>;
    /// The account's move, under way or the last one done.
    async fn migration(&mut self, account: AccountId) -> Result<Option<Migration>>;
    /// The operator tokens not revoked, by id (locked until the end on PostgreSQL, so that two
    /// revocations cannot each leave the other's token as the last).
    async fn active_operator_tokens(&mut self) -> Result<Vec<TokenId>>;
    /// Accounts whose last converge gave up, by id.
    async fn failed_accounts(&mut self) -> Result<Vec<Account>>;
    /// Accounts assigned to `server` that must still exist somewhere.
    async fn accounts_kept_on(&mut self, server: ServerId) -> Result<i64>;
    /// The accounts of the plan's services not terminated, by id.
    async fn accounts_on_plan(&mut self, plan: PlanId) -> Result<Vec<Account>>;

    /// Refused as a collision when another customer has its `external_ref`.
    async fn insert_customer(&mut self, spec: &CustomerSpec) -> Result<Customer>;
    /// A name another plan has (in any case: Virtualmin compares plan names without case) is
    /// refused as a collision.
    async fn insert_plan(&mut self, spec: &PlanSpec) -> Result<Plan>;
    /// A new server, healthy. A name or an address (hostname and port) another server has is
    /// refused as a collision.
    async fn insert_server(&mut self, spec: &ServerSpec) -> Result<Server>;
    /// Keeps the server's new spec, with the collisions of [`Write::insert_server`].
    async fn update_server(&mut self, id: ServerId, spec: &ServerSpec) -> Result<Server>;
    /// Lets drover log in to the server again; `false` when its login was not refused.
    async fn clear_login_refused(&mut self, id: ServerId) -> Result<bool>;
    /// A new token with a fresh secret, returned this once: only its hash is kept.
    async fn insert_token(&mut self, name: &str, scope: Scope) -> Result<(ApiToken, SecretString)>;
    /// Refused as a collision when another provider has its name.
    async fn insert_dns_provider(&mut self, spec: &DnsProviderSpec) -> Result<DnsProviderRecord>;
    /// A new zone at generation 1 with its records, on `providers` (none synced yet). Refused as
    /// a collision when drover holds a zone of that name or the account has one, and as an
    /// unknown reference when a provider does not exist.
    async fn insert_zone(
        &mut self,
        name: &DomainName,
        account: Option<AccountId>,
        rrsets: &[RrSet],
        providers: &[DnsProviderId],
    ) -> Result<Zone>;
    /// An account found on `server`, and its service, recorded as the server shows it: its
    /// state applied (no job), protected from deletion, with no sealed password. Refused as a
    /// collision when its domain or unix user name is taken.
    async fn insert_adopted_account(
        &mut self,
        customer: CustomerId,
        server: ServerId,
        account: &Adopted,
    ) -> Result<(ServiceId, AccountId)>;
    /// The account's mailboxes, those being deleted included, by name.
    async fn mailboxes(&mut self, account: AccountId) -> Result<Vec<Mailbox>>;
    /// A new mailbox whose password is sealed with `key_id` (refused as `key_rotated` as for an
    /// account's); its name taken in the account is refused as a collision. Locks the key's
    /// row, then the account's.
    async fn insert_mailbox(
        &mut self,
        account: AccountId,
        name: &MailboxName,
        real_name: &str,
        sealed_password: &[u8],
        key_id: &str,
    ) -> Result<Mailbox>;
    /// A mailbox found on the account's server at its adoption, with the password's hash the
    /// server showed, sealed with `key_id`: nothing is pending for the server. As
    /// [`Write::insert_mailbox`] otherwise.
    async fn insert_adopted_mailbox(
        &mut self,
        account: AccountId,
        mailbox: &AdoptedMailbox,
        sealed_hash: &[u8],
        key_id: &str,
    ) -> Result<Mailbox>;
    async fn update_mailbox_real_name(
        &mut self,
        account: AccountId,
        name: &MailboxName,
        real_name: &str,
    ) -> Result<()>;
    /// Keeps a new sealed password: the server must take it again. Locks the key's row, then
    /// the account's.
    async fn update_mailbox_password(
        &mut self,
        account: AccountId,
        name: &MailboxName,
        sealed_password: &[u8],
        key_id: &str,
    ) -> Result<()>;
    /// Gives the mailbox a quota of its own (MB), or takes it away (`None`: its plan's).
    async fn set_mailbox_quota(
        &mut self,
        account: AccountId,
        name: &MailboxName,
        quota_mb: Option<u64>,
    ) -> Result<()>;
    async fn mark_mailbox_deleting(&mut self, account: AccountId, name: &MailboxName)
    -> Result<()>;
    /// The account's databases, those being deleted included, by name. Locks the account's
    /// row.
    async fn databases(&mut self, account: AccountId) -> Result<Vec<Database>>;
    /// A new database of the account; a name recorded already (for any account) is refused as
    /// a collision.
    async fn insert_database(
        &mut self,
        account: AccountId,
        name: &DatabaseName,
        kind: DatabaseType,
    ) -> Result<Database>;
    async fn mark_database_deleting(
        &mut self,
        account: AccountId,
        name: &DatabaseName,
    ) -> Result<()>;
    /// Flags the account over its plan's limits (what is over), or clears the flag.
    async fn set_over_limit(&mut self, account: AccountId, over: Option<&str>) -> Result<()>;
    /// The account's alias domains or sub-servers, those being deleted included. Locks the
    /// account's row.
    async fn other_domains(
        &mut self,
        account: AccountId,
        kind: OtherDomainKind,
    ) -> Result<Vec<OtherDomain>>;
    /// A new alias domain or sub-server of the account; a domain hosted already (an account's,
    /// an alias, a sub-server) is refused as a collision on the domain.
    async fn insert_other_domain(
        &mut self,
        account: AccountId,
        kind: OtherDomainKind,
        domain: &DomainName,
    ) -> Result<OtherDomain>;
    async fn mark_other_domain_deleting(
        &mut self,
        account: AccountId,
        kind: OtherDomainKind,
        domain: &DomainName,
    ) -> Result<()>;
    /// A new pending service and its account (absent, generation 1). Refused as an unknown
    /// reference when the customer or plan does not exist, as a collision when the domain is
    /// hosted already (by a concurrent request too), and as a concurrent change when another
    /// request took the unix user name a moment before.
    async fn insert_service(
        &mut self,
        new: &NewService,
        username: &UnixUsername,
    ) -> Result<Service>;
    /// Moves the service from `from` to `to`; refused as a concurrent change when it is no
    /// longer `from`.
    async fn update_service_status(
        &mut self,
        id: ServiceId,
        from: ServiceStatus,
        to: ServiceStatus,
    ) -> Result<()>;
    /// Keeps the plan's new spec; a name another plan has (in any case: Virtualmin compares plan
    /// names without case) is refused as a collision.
    async fn update_plan(&mut self, id: PlanId, spec: &PlanSpec) -> Result<Plan>;
    /// Revokes the token (a revoked one stays revoked as it was).
    async fn revoke_token(&mut self, id: TokenId) -> Result<ApiToken>;
    /// Refused as an unknown reference when the plan does not exist.
    async fn update_service_plan(&mut self, id: ServiceId, plan: PlanId) -> Result<()>;
    async fn update_account_desired(
        &mut self,
        id: AccountId,
        desired: DesiredState,
        suspend_reason: Option<&str>,
    ) -> Result<()>;
    async fn update_account_protection(&mut self, id: AccountId, protected: bool) -> Result<()>;
    /// Keeps the account's password sealed with the key `key_id`; refused (`key_rotated`) when
    /// the database records another key: no process could open it.
    async fn update_sealed_password(
        &mut self,
        id: AccountId,
        sealed: &[u8],
        key_id: &str,
    ) -> Result<()>;
    async fn update_server_state(&mut self, id: ServerId, state: ServerState) -> Result<()>;
    /// Marks the server as worked on over SSH (`Some(reason)`), or lifts the mark.
    async fn update_break_glass(
        &mut self,
        id: ServerId,
        mark: Option<(&str, &RequestContext)>,
    ) -> Result<()>;
    async fn update_account_server(&mut self, id: AccountId, server: ServerId) -> Result<()>;
    /// A new move of the account (replacing the record of its last one), in its first state,
    /// unconfirmed.
    async fn insert_migration(&mut self, new: &crate::NewMigration) -> Result<()>;
    async fn update_migration_state(&mut self, account: AccountId, state: MoveState) -> Result<()>;
    async fn update_migration_confirmed(&mut self, account: AccountId) -> Result<()>;
    /// Applies `diff` to the zone's records (deletes first, then creates and updates).
    async fn update_rrsets(&mut self, zone: ZoneId, diff: &ZoneDiff) -> Result<()>;
    /// Makes the zone's records a new generation: every provider must sync it again.
    async fn next_zone_generation(&mut self, zone: ZoneId) -> Result<()>;
    async fn update_zone_safety(
        &mut self,
        zone: ZoneId,
        max_change_percent: Option<u8>,
    ) -> Result<()>;
    /// Marks the zone for removal from its providers.
    async fn mark_zone_deleting(&mut self, zone: ZoneId) -> Result<()>;
    /// What a repair did with a finding of `server`'s last drift scan.
    async fn update_drift_action(
        &mut self,
        server: ServerId,
        finding: i64,
        action: DriftAction,
    ) -> Result<()>;
    /// Forgets the server's run of health checks: the next ones start a new streak.
    async fn reset_health_streak(&mut self, id: ServerId) -> Result<()>;
    /// Makes the account's record a new generation: a converge job that finishes without having
    /// seen it runs again, so no change is lost to a job that was just finishing.
    async fn next_generation(&mut self, id: AccountId) -> Result<Generation>;

    /// Queues `job` in this transaction (it exists exactly when the change does), recording the
    /// request behind it.
    async fn enqueue(&mut self, ctx: &RequestContext, job: Job) -> Result<Enqueued>;
    /// Appends an event to the audit chain.
    async fn audit(
        &mut self,
        ctx: &RequestContext,
        action: &str,
        subject: String,
        details: serde_json::Value,
    ) -> Result<()>;

    /// Records an event for webhooks with this change (the outbox): it is sent exactly when
    /// the change commits. None when no endpoint wants it.
    async fn event(
        &mut self,
        ctx: &RequestContext,
        event: &crate::NewEvent,
    ) -> Result<Option<drover_core::EventId>>;

    async fn commit(self: Box<Self>) -> Result<()>;
}
