//! drover's domain, free of IO: the types every other crate speaks in, the state machines that
//! say which changes are legal, and the pure decisions built on them.
//!
//! Everything here parses at the boundary: a value of a type from this crate is valid by
//! construction, so the layers above never re-check it.

mod account;
mod adopt;
mod alias;
mod audit;
mod backup;
mod bootstrap;
mod certificate;
mod confirmation;
mod converge;
mod customer;
mod database;
mod dns;
mod domain;
mod drift;
mod error;
mod health;
mod ids;
mod mailbox;
mod moves;
mod names;
mod other_domain;
mod patch;
mod placement;
mod plan;
mod scope;
mod server;
mod service;
mod subserver;
mod usage;
mod webhook;

pub use account::{AccountPassword, SuspendReason};
pub use adopt::{
    Adopted, AdoptedDatabase, AdoptedMailbox, Adoption, Found, FoundDatabase, FoundMailbox, Known,
    KnownAccount, KnownCustomer, KnownPlan, Mapping, Owner, Skipped, Target, check_mapping,
    parse_mapping, propose,
};
pub use alias::{check_alias, check_alias_limit};
pub use audit::{AuditChainBreak, AuditEntry, Hash, verify_chain};
pub use backup::{
    BackupDestinationPatch, BackupDestinationSpec, BackupFacts, BackupLocation, BackupState,
    RestoreFacts, SshHostKey, SshKeyFile, SshLocation, backup_refusal, explained_failure,
    failure_lines, final_size_bytes, is_progress_meter, overdue_before, restore_refusal,
    size_shortfall, to_prune,
};
pub use bootstrap::{
    AllowedSource, BootstrapProgress, BootstrapSpec, BootstrapState, BootstrapStep, CommandRecord,
    InstallSource, PlannedStep, SourceArchives, StepProgress, StepState, UPLOAD_DIR,
    certificate_read, firewall_rules, output_tail, plan as plan_bootstrap,
};
pub use certificate::{
    CertificateFacts, CertificateState, CertificateTurn, FAILED_VALIDATIONS_PER_HOUR,
    certificate_names, certificate_turn, check_certificate_request, days_left, dns_points_at,
    earliest_attempt, expiring_within, gives_website, next_attempt,
};
pub use confirmation::Confirmation;
pub use converge::{Action, Blocked, Observed, Wanted, converge};
pub use customer::CustomerSpec;
pub use database::{
    DatabaseAction, DatabaseName, DatabaseType, ListedDatabase, WantedDatabase,
    check_database_limit, converge_databases,
};
pub use dns::{
    AddressMove, ApplyResult, CaaData, MAX_TTL, OwnerName, ProviderChange, RecordIds, RecordKey,
    RecordType, RrSet, RrSetUpdate, SafetyLimits, SafetyRefusal, SrvData, ZoneAction, ZoneDiff,
    ZoneTemplate, account_zone, canonical_content, check_change_percent, check_safety,
    check_zone_change, diff_zone, plan_provider_change, rewrite_addresses, txt_text, validate_zone,
};
pub use domain::{DomainName, DomainWarning};
pub use drift::{
    DriftAction, DriftFinding, DriftKind, DriftPolicy, Expected, ExpectedDatabase, ExpectedMailbox,
    Listed, ListedUser, RepairPlan, find_alias_drift, find_database_drift, find_drift,
    find_mailbox_drift, find_subserver_drift, plan_repair,
};
pub use error::Error;
pub use health::{HealthPolicy, HealthProbe, HealthStreak, Verdict, next_health};
pub use ids::{
    AccountId, AuditEventId, BackupDestinationId, BackupId, CustomerId, DeliveryId, DnsProviderId,
    EventId, JobId, PlanId, ServerId, ServiceId, TokenId, WebhookEndpointId, ZoneId,
};
pub use mailbox::{
    ListedMailbox, MailboxAction, MailboxName, WantedMailbox, check_mailbox_change,
    check_mailbox_limit, converge_mailboxes, effective_mailbox_quota, mailbox_quota, real_name,
};
pub use moves::{
    GRACE_CHECK, MoveRefusal, MoveRequest, MoveState, MoveStep, RebuildCheck, Recreated,
    check_move, check_rebuild,
};
pub use names::{PlanName, ServerName, Tag, UnixUsername};
pub use other_domain::{DomainAction, WantedDomain, converge_domains};
pub use patch::nullable;
pub use placement::{Candidate, Leaving, MovePlan, PlacementPolicy, place, plan_moves};
pub use plan::{Feature, PlanPatch, PlanSpec, ResourceCounts};
pub use scope::{Access, Scope, check_revocation, token_name};
pub use server::{
    CertFingerprint, CredentialRef, Hostname, SecretSources, ServerPatch, ServerRefusal,
    ServerSpec, ServerSsh, ServerState,
};
pub use service::{DesiredState, ServiceStatus, Transition, check_resources_change};
pub use subserver::{
    check_subserver_limit, subserver_domain, subserver_features, subserver_owners,
    subserver_records,
};
pub use usage::{ListedUsage, Usage, usage_by_domain};
pub use webhook::{
    EventType, WebhookUrl, account_state_events, delivery_retry_delay, should_pause_endpoint,
};
