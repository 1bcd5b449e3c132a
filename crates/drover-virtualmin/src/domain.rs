//! A domain as `list-domains --multiline` describes it, typed.

use secrecy::{ExposeSecret, SecretString};

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
    /// The owner's contact address (the one given at creation, else one the server derives:
    /// `user@domain` with mail, `user@host` without).
    pub contact_email: Option<String>,
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
    /// When the domain's certificate expires (Unix seconds), when it has one.
    pub ssl_expiry_unix_time: Option<i64>,
    /// Its certificate came from an ACME provider (Let's Encrypt), not the server's own
    /// self-signed one.
    pub acme_certificate: bool,
    /// Everything the server reported, known or not.
    pub fields: Record,
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
    /// Bytes transferred since `bandwidth_start` (only when the server monitors bandwidth).
    pub bandwidth_byte_usage: Option<u64>,
    pub bandwidth_start: Option<String>,
    /// Absent in a multiline listing when the domain has no databases.
    pub databases_count: Option<u64>,
    pub databases_byte_size: Option<u64>,
}

impl DomainInfo {
    pub fn from_record(record: Record) -> Self {
        // One pass over the fields (the first value of a key wins): lists of thousands of
        // domains are read in one go.
        let mut f: [Option<&str>; KEYS.len()] = [None; KEYS.len()];
        for (key, value) in record.fields() {
            if let Some(i) = key_index(key)
                && f[i].is_none()
            {
                f[i] = Some(value);
            }
        }
        let value = |key: &str| key_index(key).and_then(|i| f[i]);
        let text = |key: &str| value(key).filter(|v| !v.is_empty()).map(str::to_owned);
        let count = |key: &str| value(key).and_then(|v| v.trim().parse::<u64>().ok());
        let kind = value("type").map(|t| match t {
            "Sub-server" => DomainKind::SubServer,
            "Alias" => DomainKind::Alias,
            _ => DomainKind::TopLevel,
        });
        // "Manually (Suspended for non-payment)", "Manually", or absent.
        let disabled = value("disabled").map(|d| Disabled {
            reason: d
                .split_once('(')
                .map(|(_, rest)| rest.trim_end_matches(')').to_owned())
                .filter(|r| !r.is_empty()),
            at: text("disabled_at"),
        });
        let info = Self {
            domain: record.name.clone(),
            id: text("id"),
            kind,
            unix_user: text("username"),
            created_by: text("created_by"),
            description: text("description"),
            contact_email: text("contact_email"),
            disabled,
            plan: text("plan"),
            template: text("template"),
            parent: text("parent_domain"),
            alias_of: (kind == Some(DomainKind::Alias))
                .then(|| text("real_domain"))
                .flatten(),
            created_unix_time: value("created_unix_time").and_then(|v| v.trim().parse().ok()),
            ssl_expiry_unix_time: value("ssl_cert_expiry_time").and_then(|v| v.trim().parse().ok()),
            acme_certificate: value("ssl_provider_cert_issued").is_some(),
            ip_address: value("ip_address")
                .and_then(|ip| ip.split_whitespace().next())
                .map(str::to_owned),
            features: value("features")
                .map(|f| f.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            quota: Quota {
                server_quota: text("server_quota"),
                server_block_quota: count("server_block_quota"),
                server_quota_used: text("server_quota_used"),
                server_byte_quota_used: count("server_byte_quota_used"),
                bandwidth_limit: text("bandwidth_limit"),
                bandwidth_usage: text("bandwidth_usage"),
                bandwidth_byte_usage: count("bandwidth_byte_usage"),
                bandwidth_start: text("bandwidth_start"),
                databases_count: count("databases_count"),
                databases_byte_size: count("databases_byte_size"),
            },
            fields: Record::default(),
        };
        Self {
            fields: record,
            ..info
        }
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled.is_some()
    }
}

/// The fields `from_record` types.
const KEYS: [&str; 27] = [
    "id",
    "type",
    "username",
    "created_by",
    "description",
    "disabled",
    "disabled_at",
    "plan",
    "template",
    "parent_domain",
    "real_domain",
    "created_unix_time",
    "ip_address",
    "features",
    "server_quota",
    "server_block_quota",
    "server_quota_used",
    "server_byte_quota_used",
    "bandwidth_limit",
    "bandwidth_usage",
    "databases_count",
    "databases_byte_size",
    "bandwidth_byte_usage",
    "bandwidth_start",
    "contact_email",
    "ssl_cert_expiry_time",
    "ssl_provider_cert_issued",
];

/// A key's place in `KEYS`; a `match` compiles to a length switch, far cheaper than a scan.
fn key_index(key: &str) -> Option<usize> {
    Some(match key {
        "id" => 0,
        "type" => 1,
        "username" => 2,
        "created_by" => 3,
        "description" => 4,
        "disabled" => 5,
        "disabled_at" => 6,
        "plan" => 7,
        "template" => 8,
        "parent_domain" => 9,
        "real_domain" => 10,
        "created_unix_time" => 11,
        "ip_address" => 12,
        "features" => 13,
        "server_quota" => 14,
        "server_block_quota" => 15,
        "server_quota_used" => 16,
        "server_byte_quota_used" => 17,
        "bandwidth_limit" => 18,
        "bandwidth_usage" => 19,
        "databases_count" => 20,
        "databases_byte_size" => 21,
        "bandwidth_byte_usage" => 22,
        "bandwidth_start" => 23,
        "contact_email" => 24,
        "ssl_cert_expiry_time" => 25,
        "ssl_provider_cert_issued" => 26,
        _ => return None,
    })
}

/// A mail, FTP or database user of a domain, as `list-users multiline=` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainUser {
    /// The short name (`alice`).
    pub user: String,
    pub domain: String,
    /// Set for users that receive mail: a mailbox.
    pub email: Option<String>,
    pub real_name: String,
    /// Its quota in bytes (0: none), listed only by a server that keeps quotas.
    pub quota_bytes: Option<u64>,
    /// Its password as the server keeps it (the shadow hash), shown to a master administrator
    /// only; `create-user --encpass` takes it back.
    pub password_hash: Option<PasswordHash>,
    /// Its login is disabled (the server's listing shows the hash without its `!`).
    pub disabled: bool,
}

/// A password as the server keeps it, hashed: still a secret (it can be attacked offline), so
/// masked in `Debug` and kept sealed by drover.
#[derive(Clone)]
pub struct PasswordHash(pub SecretString);

impl PasswordHash {
    pub fn new(hash: impl Into<String>) -> Self {
        Self(SecretString::from(hash.into()))
    }
}

impl PartialEq for PasswordHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.expose_secret() == other.0.expose_secret()
    }
}

impl Eq for PasswordHash {}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

impl DomainUser {
    /// `None` for a record without the domain it belongs to (not a multiline user record).
    pub fn from_record(record: &Record) -> Option<Self> {
        Some(Self {
            user: record.get("user").unwrap_or(&record.name).to_owned(),
            domain: record.get("domain").filter(|d| !d.is_empty())?.to_owned(),
            email: record
                .get("email_address")
                .filter(|e| !e.is_empty())
                .map(str::to_owned),
            real_name: record.get("real_name").unwrap_or_default().to_owned(),
            quota_bytes: record
                .get("home_byte_quota")
                .and_then(|q| q.trim().parse().ok()),
            // `*` (no password accepted) and an empty field are no password to take back.
            password_hash: record
                .get("encrypted_password")
                .map(str::trim)
                .filter(|h| !h.is_empty() && *h != "*")
                .map(PasswordHash::new),
            disabled: record.get("disabled") == Some("Yes"),
        })
    }

    pub fn is_mailbox(&self) -> bool {
        self.email.is_some()
    }
}

/// A database of a domain, as `list-databases multiline=` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainDatabase {
    pub name: String,
    /// `mysql` or `postgres`.
    pub kind: String,
}

impl DomainDatabase {
    pub fn from_record(record: &Record) -> Self {
        Self {
            name: record.name.clone(),
            kind: record.get("type").unwrap_or("mysql").to_owned(),
        }
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

#[cfg(test)]
mod tests {
    #[test]
    fn every_typed_key_has_its_place() {
        for (i, key) in super::KEYS.iter().enumerate() {
            assert_eq!(super::key_index(key), Some(i), "{key}");
        }
        assert_eq!(super::key_index("php_execution_mode"), None);
    }
}
