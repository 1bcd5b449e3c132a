use async_trait::async_trait;
use drover_core::{DomainName, RecordIds, RrSet, ZoneDiff};

use crate::Result;

/// A zone as one provider serves it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderZone {
    /// Canonical rrsets, SOA left out (each provider keeps its own).
    pub rrsets: Vec<RrSet>,
    pub record_ids: RecordIds,
}

impl ProviderZone {
    pub fn record_count(&self) -> usize {
        self.rrsets.iter().map(|r| r.records.len()).sum()
    }
}

/// Which zone on the provider, and what drover knows of it there.
#[derive(Debug, Clone, Copy)]
pub struct ZoneRef<'a> {
    pub name: &'a DomainName,
    /// Cloudflare's zone id; PowerDNS needs none.
    pub provider_zone_id: Option<&'a str>,
    pub record_ids: &'a RecordIds,
}

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub requests: usize,
    /// The provider's zone id after the write (set by a Cloudflare zone creation).
    pub provider_zone_id: Option<String>,
    /// Every record id of the zone after the write, where the provider has ids.
    pub record_ids: Option<RecordIds>,
}

/// A zone listed by a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedZone {
    pub name: String,
    pub provider_zone_id: Option<String>,
}

/// One DNS provider. Names and contents cross this boundary in drover's canonical form; each
/// implementation translates to its API.
#[async_trait]
pub trait DnsProvider: Send + Sync + std::fmt::Debug {
    async fn list_zones(&self) -> Result<Vec<ListedZone>>;
    /// The zone as served, or `None` if the provider does not have it.
    async fn read_zone(&self, zone: ZoneRef<'_>) -> Result<Option<ProviderZone>>;
    /// Creates the zone holding `rrsets`.
    async fn create_zone(&self, zone: &DomainName, rrsets: &[RrSet]) -> Result<Applied>;
    /// Applies a diff to an existing zone, deletes first.
    async fn apply(&self, zone: ZoneRef<'_>, diff: &ZoneDiff) -> Result<Applied>;
    /// Removes the zone; a zone already gone is not an error.
    async fn delete_zone(&self, zone: ZoneRef<'_>) -> Result<Applied>;
}
