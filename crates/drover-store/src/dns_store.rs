//! What drover keeps about DNS: providers, zones with their rrsets, which providers serve which
//! zone and how far each has caught up, and Cloudflare's record ids.

use async_trait::async_trait;
use drover_core::{
    AccountId, AddressMove, CredentialRef, DnsProviderId, DomainName, RecordIds, RrSet, ZoneDiff,
    ZoneId,
};
use drover_dns::{ProviderKind, ProviderSettings};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{RequestContext, Result};

/// What an operator says about a DNS provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DnsProviderSpec {
    pub name: String,
    /// Where the API key or token is read from: `env:NAME` or `file:/path`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub credentials: CredentialRef,
    /// New account zones are put on this provider.
    #[serde(default)]
    pub serves_new_zones: bool,
    /// The provider's kind and how to reach it; kept as JSON, read by `drover-dns`.
    pub settings: ProviderSettings,
}

impl DnsProviderSpec {
    /// Checks what the types cannot: the name, and the settings of its kind.
    pub fn validated(self) -> Result<Self, drover_core::Error> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 63
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(drover_core::Error::InvalidValue {
                what: "DNS provider name",
                input: self.name,
                expected: "1 to 63 letters, digits, '-' or '_'".to_owned(),
            });
        }
        Ok(Self {
            settings: self.settings.validated()?,
            ..self
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DnsProviderRecord {
    pub id: DnsProviderId,
    #[serde(flatten)]
    pub spec: DnsProviderSpec,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// How far one provider of a zone has caught up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZoneProvider {
    pub provider_id: DnsProviderId,
    pub provider_name: String,
    pub kind: ProviderKind,
    pub provider_zone_id: Option<String>,
    pub synced_generation: i64,
    pub last_error: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_sync_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Zone {
    pub id: ZoneId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: DomainName,
    pub account_id: Option<AccountId>,
    pub generation: i64,
    pub max_change_percent: Option<u8>,
    pub deleting: bool,
    pub rrsets: Vec<RrSet>,
    pub providers: Vec<ZoneProvider>,
}

impl Zone {
    pub fn in_sync(&self) -> bool {
        self.providers
            .iter()
            .all(|p| p.synced_generation == self.generation && p.last_error.is_none())
    }
}

/// What a provider did for a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSyncOutcome {
    /// The zone generation the provider now matches (unchanged on error).
    pub generation: Option<i64>,
    pub provider_zone_id: Option<String>,
    /// Every record id of the zone on the provider, where it has ids.
    pub record_ids: Option<RecordIds>,
    pub error: Option<String>,
}

/// An audit event written with a sync's outcomes.
#[derive(Debug, Clone)]
pub struct SyncAudit<'a> {
    pub ctx: &'a RequestContext,
    pub action: &'a str,
    pub subject: String,
    pub details: serde_json::Value,
}

/// A zone an address rewrite changed: its new state and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRewrite {
    pub zone: Zone,
    pub diff: ZoneDiff,
}

/// One batch of an address rewrite.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewriteBatch {
    pub rewrites: Vec<ZoneRewrite>,
    /// The last zone looked at; `None` when no zone was left to look at.
    pub scanned_to: Option<ZoneId>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZoneFilter {
    pub provider: Option<DnsProviderId>,
    pub after: Option<ZoneId>,
    pub limit: Option<u32>,
}

#[async_trait]
pub trait DnsStore: Send + Sync {
    async fn dns_providers(&self) -> Result<Vec<DnsProviderRecord>>;
    async fn dns_provider(&self, id: DnsProviderId) -> Result<DnsProviderRecord>;
    async fn dns_provider_by_name(&self, name: &str) -> Result<DnsProviderRecord>;

    async fn zone(&self, id: ZoneId) -> Result<Zone>;
    async fn zone_by_name(&self, name: &DomainName) -> Result<Zone>;
    async fn zones(&self, filter: ZoneFilter) -> Result<Vec<Zone>>;
    /// The account's own zone: the one named as its domain.
    async fn account_zone(&self, account: AccountId) -> Result<Option<Zone>>;
    /// Every zone that follows the account: its own and its alias domains'.
    async fn account_zones(&self, account: AccountId) -> Result<Vec<Zone>>;
    /// Drops a removed zone's rows once no provider serves it.
    async fn forget_zone(&self, ctx: &RequestContext, zone: ZoneId) -> Result<()>;
    /// Counts one call against a budget shared by every drover process: `None` if it may go
    /// now (and is counted), or how long (milliseconds) until one leaves the window.
    async fn reserve_provider_call(
        &self,
        key: &str,
        limit: u32,
        window_ms: i64,
    ) -> Result<Option<i64>>;
    async fn record_ids(&self, zone: ZoneId, provider: DnsProviderId) -> Result<RecordIds>;
    /// Records what providers did for zones, all in one transaction (a failover records a
    /// thousand at once), with the audit events saying what was applied or refused: a
    /// zone's sync commits once.
    async fn record_zone_syncs(
        &self,
        outcomes: &[(ZoneId, DnsProviderId, ZoneSyncOutcome)],
        audits: Vec<SyncAudit<'_>>,
    ) -> Result<()>;
    /// Rewrites the records pointing at a moved address in the next `limit` zones that may
    /// hold one (ids above `after`), in one transaction with its audit event; the caller pushes
    /// the changes to the providers. Batches let pushing start while later zones are written.
    async fn rewrite_addresses(
        &self,
        ctx: &RequestContext,
        moved: &AddressMove,
        after: Option<ZoneId>,
        limit: u32,
    ) -> Result<RewriteBatch>;
}
