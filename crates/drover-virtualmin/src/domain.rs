//! A domain as `list-domains --multiline` describes it, typed.

use std::collections::BTreeMap;

use crate::reply::Record;

/// How Virtualmin hosts a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainKind {
    TopLevel,
    SubServer,
    Alias,
}

/// One domain on a server. Known fields are typed; every field the server reported, known or
/// not, is kept in `fields` (with passwords masked in Debug).
#[derive(Clone, PartialEq, Eq)]
pub struct DomainInfo {
    pub domain: String,
    pub id: Option<String>,
    pub kind: Option<DomainKind>,
    /// The unix user that owns the domain's files (a sub-server's is its parent's).
    pub unix_user: Option<String>,
    /// Who created it (`root`, a reseller).
    pub created_by: Option<String>,
    pub description: Option<String>,
    /// `Some` when disabled, with the reason when one was given.
    pub disabled: Option<Disabled>,
    pub plan: Option<String>,
    pub template: Option<String>,
    /// The top-level domain a sub-server belongs to.
    pub parent: Option<String>,
    /// The domain an alias points at.
    pub alias_of: Option<String>,
    pub created_unix_time: Option<i64>,
    pub ip_address: Option<String>,
    pub features: Vec<String>,
    /// Quota and usage as the server reports them, when quotas are on (human text such as
    /// `1 GiB`, block counts, bytes).
    pub quota: Quota,
    pub fields: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disabled {
    pub reason: Option<String>,
    pub at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quota {
    pub server_quota: Option<String>,
    pub server_block_quota: Option<u64>,
    pub server_quota_used: Option<String>,
    pub server_byte_quota_used: Option<u64>,
    pub bandwidth_limit: Option<String>,
    pub bandwidth_usage: Option<String>,
    pub databases_count: Option<u64>,
    pub databases_byte_size: Option<u64>,
}

impl DomainInfo {
    pub fn from_record(record: &Record) -> Self {
        let text = |key: &str| record.get(key).map(str::to_owned).filter(|v| !v.is_empty());
        let count = |key: &str| record.get(key).and_then(|v| v.trim().parse::<u64>().ok());
        let kind = record.get("type").map(|t| match t {
            "Sub-server" => DomainKind::SubServer,
            "Alias" => DomainKind::Alias,
            _ => DomainKind::TopLevel,
        });
        // "Manually (Suspended for non-payment)", "Manually", or absent.
        let disabled = record.get("disabled").map(|d| Disabled {
            reason: d
                .split_once('(')
                .map(|(_, rest)| rest.trim_end_matches(')').to_owned())
                .filter(|r| !r.is_empty()),
            at: text("disabled_at"),
        });
        Self {
            domain: record.name.clone(),
            id: text("id"),
            kind,
            unix_user: text("username"),
            created_by: text("created_by"),
            description: text("description"),
            disabled,
            plan: text("plan"),
            template: text("template"),
            parent: text("parent_domain"),
            alias_of: (kind == Some(DomainKind::Alias))
                .then(|| text("real_domain"))
                .flatten(),
            created_unix_time: record
                .get("created_unix_time")
                .and_then(|v| v.trim().parse().ok()),
            ip_address: record
                .get("ip_address")
                .and_then(|ip| ip.split_whitespace().next())
                .map(str::to_owned),
            features: record
                .get("features")
                .map(|f| f.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            quota: Quota {
                server_quota: text("server_quota"),
                server_block_quota: count("server_block_quota"),
                server_quota_used: text("server_quota_used"),
                server_byte_quota_used: count("server_byte_quota_used"),
                bandwidth_limit: text("bandwidth_limit"),
                bandwidth_usage: text("bandwidth_usage"),
                databases_count: count("databases_count"),
                databases_byte_size: count("databases_byte_size"),
            },
            fields: record.values.clone(),
        }
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled.is_some()
    }
}

/// Whether a field holds a secret (a password, even hashed) that must not reach logs.
pub(crate) fn is_secret_field(key: &str) -> bool {
    key.contains("password") || key.contains("pass_") || key == "pass"
}

impl std::fmt::Debug for DomainInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DomainInfo")
            .field("domain", &self.domain)
            .field("kind", &self.kind)
            .field("unix_user", &self.unix_user)
            .field("disabled", &self.disabled)
            .field("plan", &self.plan)
            .field("parent", &self.parent)
            .field("alias_of", &self.alias_of)
            .field("features", &self.features)
            .field("fields", &crate::reply::MaskedFields(&self.fields))
            .finish_non_exhaustive()
    }
}
