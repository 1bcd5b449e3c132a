//! Rows as both databases return them, and their conversion into the store's types. Shared by
//! both backends: the derives are generic over the database.

use drover_core::{
    AccountId, AuditEntry, AuditEventId, CertFingerprint, CredentialRef, CustomerId, CustomerSpec,
    DesiredState, DomainName, Feature, Hash, Hostname, PlanId, PlanName, PlanSpec, Scope, ServerId,
    ServerName, ServerSpec, ServerState, ServiceId, ServiceStatus, Tag, TokenId, UnixUsername,
};
use jiff_sqlx::Timestamp as SqlTimestamp;
use serde::de::DeserializeOwned;

use crate::model::{Account, ApiToken, Customer, LoginRefused, Plan, Server, Service, UiSession};
use crate::{Result, StoreError};

/// Now, to the microsecond: what both databases keep, so a value reads back exactly as written
/// (the audit hash depends on it).
pub(crate) fn now() -> jiff::Timestamp {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now)
}

pub(crate) fn sql_now() -> SqlTimestamp {
    SqlTimestamp::from(now())
}

pub(crate) fn corrupt(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {err}"))
}

pub(crate) fn parse<T>(
    what: &str,
    value: &str,
    f: impl FnOnce(&str) -> Result<T, drover_core::Error>,
) -> Result<T> {
    f(value).map_err(|e| corrupt(what, e))
}

pub(crate) fn json_list<T: DeserializeOwned>(what: &str, text: &str) -> Result<Vec<T>> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e))
}

pub(crate) fn to_json_list<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

fn address<T: std::str::FromStr>(what: &str, value: Option<String>) -> Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    value
        .map(|a| a.parse().map_err(|e| corrupt(what, e)))
        .transpose()
}

fn count<T: TryFrom<i64>>(what: &str, value: Option<i64>) -> Result<Option<T>> {
    value
        .map(|v| T::try_from(v).map_err(|_| corrupt(what, format!("{v} is out of range"))))
        .transpose()
}

#[derive(sqlx::FromRow)]
pub(crate) struct CustomerRow {
    id: i64,
    name: String,
    email: Option<String>,
    external_ref: Option<String>,
    created_at: SqlTimestamp,
    updated_at: SqlTimestamp,
}

impl CustomerRow {
    pub(crate) fn into_model(self) -> Customer {
        Customer {
            id: CustomerId(self.id),
            spec: CustomerSpec {
                name: self.name,
                email: self.email,
                external_ref: self.external_ref,
            },
            created_at: self.created_at.to_jiff(),
            updated_at: self.updated_at.to_jiff(),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PlanRow {
    id: i64,
    name: String,
    template: Option<String>,
    disk_quota_mb: Option<i64>,
    bandwidth_mb: Option<i64>,
    max_mailboxes: Option<i64>,
    max_databases: Option<i64>,
    max_subservers: Option<i64>,
    max_aliases: Option<i64>,
    mailbox_quota_mb: Option<i64>,
    backup_interval_hours: Option<i64>,
    features: String,
    required_tags: String,
    created_at: SqlTimestamp,
    updated_at: SqlTimestamp,
}

impl PlanRow {
    pub(crate) fn into_model(self) -> Result<Plan> {
        Ok(Plan {
            id: PlanId(self.id),
            spec: PlanSpec {
                name: parse("plan name", &self.name, PlanName::parse)?,
                template: self
                    .template
                    .map(|t| parse("plan template", &t, PlanName::parse))
                    .transpose()?,
                disk_quota_mb: count("disk_quota_mb", self.disk_quota_mb)?,
                bandwidth_mb: count("bandwidth_mb", self.bandwidth_mb)?,
                max_mailboxes: count("max_mailboxes", self.max_mailboxes)?,
                max_databases: count("max_databases", self.max_databases)?,
                max_subservers: count("max_subservers", self.max_subservers)?,
                max_aliases: count("max_aliases", self.max_aliases)?,
                mailbox_quota_mb: count("mailbox_quota_mb", self.mailbox_quota_mb)?,
                backup_interval_hours: count("backup_interval_hours", self.backup_interval_hours)?,
                features: json_list::<Feature>("plan features", &self.features)?,
                required_tags: json_list::<Tag>("plan tags", &self.required_tags)?,
            },
            created_at: self.created_at.to_jiff(),
            updated_at: self.updated_at.to_jiff(),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ServerRow {
    id: i64,
    name: String,
    hostname: String,
    port: i64,
    ipv4: Option<String>,
    ipv6: Option<String>,
    capacity: i64,
    tags: String,
    api_user: String,
    credentials: String,
    tls_verify: bool,
    pinned_cert_sha256: Option<String>,
    rate_qps: Option<f64>,
    state: String,
    login_refused: Option<String>,
    login_refused_at: Option<SqlTimestamp>,
    login_refused_secret: Option<String>,
    ssh: Option<String>,
    break_glass: Option<String>,
    break_glass_by: Option<String>,
    break_glass_at: Option<SqlTimestamp>,
    created_at: SqlTimestamp,
    updated_at: SqlTimestamp,
}

impl ServerRow {
    pub(crate) fn into_model(self) -> Result<Server> {
        Ok(Server {
            id: ServerId(self.id),
            spec: ServerSpec {
                name: parse("server name", &self.name, ServerName::parse)?,
                hostname: parse("server hostname", &self.hostname, Hostname::parse)?,
                port: u16::try_from(self.port).map_err(|e| corrupt("server port", e))?,
                ipv4: address("server ipv4", self.ipv4)?,
                ipv6: address("server ipv6", self.ipv6)?,
                capacity: u32::try_from(self.capacity).map_err(|e| corrupt("capacity", e))?,
                tags: json_list::<Tag>("server tags", &self.tags)?,
                api_user: self.api_user,
                credentials: parse(
                    "server credentials",
                    &self.credentials,
                    CredentialRef::parse,
                )?,
                tls_verify: self.tls_verify,
                pinned_cert_sha256: self
                    .pinned_cert_sha256
                    .map(|p| parse("server pin", &p, CertFingerprint::parse))
                    .transpose()?,
                rate_qps: self.rate_qps,
                ssh: self
                    .ssh
                    .map(|s| serde_json::from_str(&s).map_err(|e| corrupt("server ssh", e)))
                    .transpose()?,
            },
            state: parse("server state", &self.state, ServerState::parse)?,
            break_glass: match (self.break_glass, self.break_glass_by, self.break_glass_at) {
                (Some(reason), Some(by), Some(at)) => Some(crate::BreakGlass {
                    reason,
                    by,
                    since: at.to_jiff(),
                }),
                _ => None,
            },
            login_refused: match (self.login_refused, self.login_refused_at) {
                (Some(reason), Some(at)) => Some(LoginRefused {
                    reason,
                    at: at.to_jiff(),
                    secret_sha256: self.login_refused_secret.unwrap_or_default(),
                }),
                _ => None,
            },
            created_at: self.created_at.to_jiff(),
            updated_at: self.updated_at.to_jiff(),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ServiceRow {
    id: i64,
    customer_id: i64,
    plan_id: i64,
    status: String,
    account_id: i64,
    domain: String,
    created_at: SqlTimestamp,
    updated_at: SqlTimestamp,
}

impl ServiceRow {
    pub(crate) fn into_model(self) -> Result<Service> {
        let domain = parse("domain", &self.domain, DomainName::parse)?;
        Ok(Service {
            id: ServiceId(self.id),
            customer_id: CustomerId(self.customer_id),
            plan_id: PlanId(self.plan_id),
            status: parse("service status", &self.status, ServiceStatus::parse)?,
            account_id: AccountId(self.account_id),
            domain_unicode: domain.to_unicode(),
            domain,
            created_at: self.created_at.to_jiff(),
            updated_at: self.updated_at.to_jiff(),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    id: i64,
    service_id: i64,
    domain: String,
    unix_username: String,
    server_id: Option<i64>,
    desired_state: String,
    desired_generation: i64,
    observed_state: Option<String>,
    protected_from_deletion: bool,
    suspend_reason: Option<String>,
    has_sealed_password: bool,
    last_sync_at: Option<SqlTimestamp>,
    failure: Option<String>,
    failed_at: Option<SqlTimestamp>,
    over_limit: Option<String>,
    created_at: SqlTimestamp,
    updated_at: SqlTimestamp,
}

impl AccountRow {
    pub(crate) fn into_model(self) -> Result<Account> {
        let domain = parse("domain", &self.domain, DomainName::parse)?;
        Ok(Account {
            id: AccountId(self.id),
            service_id: ServiceId(self.service_id),
            domain_unicode: domain.to_unicode(),
            domain,
            unix_username: parse("unix username", &self.unix_username, UnixUsername::parse)?,
            server_id: self.server_id.map(ServerId),
            desired_state: parse("desired state", &self.desired_state, DesiredState::parse)?,
            desired_generation: self.desired_generation,
            observed_state: self.observed_state,
            protected_from_deletion: self.protected_from_deletion,
            suspend_reason: self.suspend_reason,
            has_sealed_password: self.has_sealed_password,
            last_sync_at: self.last_sync_at.map(|t| t.to_jiff()),
            failure: self.failure,
            failed_at: self.failed_at.map(|t| t.to_jiff()),
            over_limit: self.over_limit,
            created_at: self.created_at.to_jiff(),
            updated_at: self.updated_at.to_jiff(),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    id: i64,
    name: String,
    scope: String,
    created_at: SqlTimestamp,
    revoked_at: Option<SqlTimestamp>,
}

impl TokenRow {
    pub(crate) fn into_model(self) -> Result<ApiToken> {
        Ok(ApiToken {
            id: TokenId(self.id),
            name: self.name,
            scope: parse("token scope", &self.scope, Scope::parse)?,
            created_at: self.created_at.to_jiff(),
            revoked_at: self.revoked_at.map(|t| t.to_jiff()),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    #[sqlx(flatten)]
    token: TokenRow,
    form_token: String,
    language: Option<String>,
    expires_at: SqlTimestamp,
}

impl SessionRow {
    pub(crate) fn into_model(self) -> Result<UiSession> {
        Ok(UiSession {
            token: self.token.into_model()?,
            form_token: self.form_token,
            language: self.language,
            expires_at: self.expires_at.to_jiff(),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: i64,
    at: SqlTimestamp,
    actor: String,
    action: String,
    subject: String,
    correlation_id: String,
    details: String,
    prev_hash: String,
    hash: String,
}

pub(crate) fn parse_hash(what: &str, hex: &str) -> Result<Hash> {
    Hash::from_hex(hex).ok_or_else(|| corrupt(what, format!("'{hex}' is not a SHA-256 hex digest")))
}

impl AuditRow {
    pub(crate) fn into_model(self) -> Result<AuditEntry> {
        Ok(AuditEntry {
            id: AuditEventId(self.id),
            at: self.at.to_jiff(),
            actor: self.actor,
            action: self.action,
            subject: self.subject,
            correlation_id: self.correlation_id,
            details: self.details,
            prev_hash: parse_hash("audit prev_hash", &self.prev_hash)?,
            hash: parse_hash("audit hash", &self.hash)?,
        })
    }
}

/// Token secrets are random, so a fast hash is enough to keep them unreadable at rest.
pub(crate) fn token_hash(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[derive(sqlx::FromRow)]
pub(crate) struct MailboxRow {
    account_id: i64,
    name: String,
    real_name: String,
    quota_mb: Option<i64>,
    password_pending: bool,
    deleting: bool,
    created_at: SqlTimestamp,
    updated_at: SqlTimestamp,
}

impl MailboxRow {
    pub(crate) fn into_model(self) -> Result<crate::Mailbox> {
        Ok(crate::Mailbox {
            account_id: drover_core::AccountId(self.account_id),
            name: parse("mailbox name", &self.name, drover_core::MailboxName::parse)?,
            real_name: self.real_name,
            quota_mb: count("mailbox quota_mb", self.quota_mb)?,
            password_pending: self.password_pending,
            deleting: self.deleting,
            created_at: self.created_at.to_jiff(),
            updated_at: self.updated_at.to_jiff(),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DatabaseRow {
    account_id: i64,
    name: String,
    #[sqlx(rename = "type")]
    kind: String,
    deleting: bool,
    created_at: SqlTimestamp,
    updated_at: SqlTimestamp,
}

impl DatabaseRow {
    pub(crate) fn into_model(self) -> Result<crate::Database> {
        Ok(crate::Database {
            account_id: drover_core::AccountId(self.account_id),
            name: drover_core::DatabaseName::from_record(self.name),
            kind: parse(
                "database type",
                &self.kind,
                drover_core::DatabaseType::parse,
            )?,
            deleting: self.deleting,
            created_at: self.created_at.to_jiff(),
            updated_at: self.updated_at.to_jiff(),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OtherDomainRow {
    account_id: i64,
    domain: String,
    deleting: bool,
    created_at: SqlTimestamp,
    updated_at: SqlTimestamp,
}

impl OtherDomainRow {
    pub(crate) fn into_model(self) -> Result<crate::OtherDomain> {
        Ok(crate::OtherDomain {
            account_id: drover_core::AccountId(self.account_id),
            domain: parse("domain", &self.domain, drover_core::DomainName::parse)?,
            deleting: self.deleting,
            created_at: self.created_at.to_jiff(),
            updated_at: self.updated_at.to_jiff(),
        })
    }
}

/// The columns of [`OtherDomainRow`], after `SELECT`; its table follows.
pub(crate) const OTHER_DOMAIN_COLUMNS: &str =
    "account_id, domain, deleting, created_at, updated_at FROM";

/// The columns of [`DatabaseRow`], after `SELECT`.
pub(crate) const DATABASE_COLUMNS: &str =
    "account_id, name, type, deleting, created_at, updated_at FROM databases";

/// The columns of [`MailboxRow`], after `SELECT`.
pub(crate) const MAILBOX_COLUMNS: &str = "account_id, name, real_name, quota_mb, \
     password_generation > password_applied AS password_pending, deleting, created_at, updated_at \
     FROM mailboxes";
