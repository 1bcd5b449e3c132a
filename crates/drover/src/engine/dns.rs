//! DNS work: plan and apply a zone on its providers, the zone-sync job, the failover address
//! rewrite, the consistency check, and the zone an account gets when it is placed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use drover_core::{
    AccountId, AddressMove, ApplyResult, DnsProviderId, DomainName, ProviderChange, RecordIds,
    RecordType, RrSet, SafetyLimits, SafetyRefusal, ZoneAction, ZoneDiff, ZoneTemplate,
    account_zone, diff_zone, plan_provider_change, subserver_owners, subserver_records,
};
use drover_dns::{
    CallBudgets, DnsError, DnsProvider, ProviderKind, SharedBudget, SharedBudgetScope, ZoneRef,
    query_served,
};
use drover_store::{
    Account, DnsProviderRecord, RequestContext, Server, Store, StoreError, SyncAudit, UniqueKey,
    Zone, ZoneFilter, ZoneProvider, ZoneRewrite, ZoneSyncOutcome,
};
use serde::Serialize;
use serde_json::json;

use crate::commands;

/// What happens to an account's zone when the account is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TerminatedZones {
    /// Removed from every provider, then from drover.
    Delete,
    /// Left as it is (the domain may move to another host that keeps its DNS here).
    Keep,
}

/// Cloudflare batches at once in a failover: its edge takes many writes at once, and the call
/// budget, not concurrency, is what limits a large failover there.
const CLOUDFLARE_CONCURRENCY: usize = 4;

#[derive(Debug, Clone)]
pub struct DnsSettings {
    pub template: ZoneTemplate,
    pub limits: SafetyLimits,
    pub on_terminate: TerminatedZones,
    /// Requests sent at once to one PowerDNS server during a failover rewrite. One is fastest
    /// on the gsqlite3 backend: it serialises writes, and concurrent PATCHes meet "database is
    /// locked" and retries (benches/dns.rs: 1.04x the bare client at 1, 1.6x at 2, 2.6x at 4).
    pub push_concurrency: usize,
}

impl Default for DnsSettings {
    fn default() -> Self {
        Self {
            template: ZoneTemplate::default(),
            limits: SafetyLimits::default(),
            on_terminate: TerminatedZones::Delete,
            push_concurrency: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DnsWorkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Command(#[from] crate::commands::Error),
    /// The provider's error is in the message (not a source: the chain would say it twice).
    #[error("DNS provider {provider}: {error}")]
    Provider { provider: String, error: DnsError },
    #[error("DNS provider {provider} cannot be used: {message}")]
    Unusable { provider: String, message: String },
    #[error("zone {zone}: {message}")]
    Refused { zone: String, message: String },
}

/// What applying one zone on one provider would do.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderPlan {
    pub provider_id: DnsProviderId,
    pub provider: String,
    /// Whether the provider has the zone now.
    pub exists: bool,
    /// Records the provider serves now.
    pub records: usize,
    pub action: ZoneAction,
    pub diff: ZoneDiff,
    /// Why applying needs `--force`.
    pub refusals: Vec<SafetyRefusal>,
    #[serde(skip)]
    record_ids: RecordIds,
    #[serde(skip)]
    provider_zone_id: Option<String>,
}

impl ProviderPlan {
    pub fn is_noop(&self) -> bool {
        self.action == ZoneAction::None
    }
}

/// The plan for a zone on each of its providers.
#[derive(Debug, Clone, Serialize)]
pub struct ZonePlan {
    pub zone: String,
    pub generation: i64,
    pub providers: Vec<ProviderPlan>,
}

impl ZonePlan {
    /// Whether applying would change anything on any provider.
    pub fn has_changes(&self) -> bool {
        self.providers.iter().any(|p| p.action != ZoneAction::None)
    }
}

impl std::fmt::Display for ZonePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.providers {
            writeln!(
                f,
                "zone {} on {} ({}, {} records served now):",
                self.zone, p.provider, p.action, p.records
            )?;
            match p.action {
                ZoneAction::Create => {
                    writeln!(f, "  create the zone with {} rrsets", p.diff.creates.len())?;
                }
                ZoneAction::Delete => writeln!(f, "  delete the zone")?,
                ZoneAction::Update | ZoneAction::None => write!(f, "{}", p.diff)?,
            }
            for refusal in &p.refusals {
                writeln!(f, "  refused without --force: {refusal}")?;
            }
        }
        Ok(())
    }
}

/// How applying went on one provider.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderOutcome {
    pub provider: String,
    pub action: ZoneAction,
    pub requests: usize,
    pub result: ApplyResult,
    pub message: Option<String>,
}

/// What a sync did: the last plan it applied and how each provider took it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Synced {
    pub plan: Option<ZonePlan>,
    pub outcomes: Vec<ProviderOutcome>,
}

/// What a failover rewrite did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RewriteReport {
    pub zones: usize,
    pub requests: usize,
    /// Zone/provider pairs written directly.
    pub pushed: usize,
    /// Pairs left to a sync job (the provider had not caught up, or the write failed).
    pub deferred: usize,
    pub failures: Vec<String>,
    pub database_ms: u128,
    pub elapsed_ms: u128,
}

/// One provider's consistency with drover's data.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProviderCheck {
    pub provider: String,
    pub zones_checked: usize,
    /// Zones drover says the provider serves, which it does not have.
    pub missing: Vec<String>,
    /// Zones the provider has that drover does not hold for it.
    pub extra: Vec<String>,
    /// Zones whose records differ, with what would change.
    pub different: BTreeMap<String, ZoneDiff>,
    /// Answers over DNS that differ from drover's data (`zone name type: expected / served`).
    pub served_mismatches: Vec<String>,
    pub queries: usize,
    pub error: Option<String>,
}

impl ProviderCheck {
    pub fn is_consistent(&self) -> bool {
        self.missing.is_empty()
            && self.extra.is_empty()
            && self.different.is_empty()
            && self.served_mismatches.is_empty()
            && self.error.is_none()
    }
}

impl std::fmt::Display for ProviderCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {} zones checked, {} missing, {} extra, {} different, {} DNS answers wrong ({} queries){}",
            self.provider,
            self.zones_checked,
            self.missing.len(),
            self.extra.len(),
            self.different.len(),
            self.served_mismatches.len(),
            self.queries,
            self.error
                .as_deref()
                .map(|e| format!("; error: {e}"))
                .unwrap_or_default(),
        )?;
        for z in &self.missing {
            writeln!(f, "  missing {z}")?;
        }
        for z in &self.extra {
            writeln!(f, "  extra   {z}")?;
        }
        for (z, diff) in &self.different {
            writeln!(f, "  differs {z}:\n{diff}")?;
        }
        for m in &self.served_mismatches {
            writeln!(f, "  served  {m}")?;
        }
        Ok(())
    }
}

/// A Cloudflare token's call budget kept in drover's database, shared by every process.
#[derive(Debug)]
pub struct StoreBudget {
    pub store: Arc<dyn Store>,
    /// `cloudflare:` and the SHA-256 of the token: the token itself is never stored.
    pub key: String,
    pub limit: u32,
    pub window_ms: i64,
}

#[async_trait::async_trait]
impl drover_dns::SharedBudget for StoreBudget {
    async fn reserve(&self) -> Result<Option<Duration>, String> {
        self.store
            .reserve_provider_call(&self.key, self.limit, self.window_ms)
            .await
            .map(|wait| wait.map(|ms| Duration::from_millis(ms.unsigned_abs())))
            .map_err(|e| e.to_string())
    }
}

/// drover's DNS gateway: one client per provider, built on first use from the provider's
/// record, sharing Cloudflare call budgets per token.
#[derive(Debug)]
pub struct Dns {
    store: Arc<dyn Store>,
    pub settings: DnsSettings,
    secrets: Arc<super::Secrets>,
    budgets: CallBudgets,
    clients: Mutex<HashMap<i64, Arc<dyn DnsProvider>>>,
}

fn provider_error(provider: &str) -> impl Fn(DnsError) -> DnsWorkError + '_ {
    move |error| DnsWorkError::Provider {
        provider: provider.to_owned(),
        error,
    }
}

impl Dns {
    pub fn new(store: Arc<dyn Store>, settings: DnsSettings, secrets: Arc<super::Secrets>) -> Self {
        Self {
            store,
            settings,
            secrets,
            budgets: CallBudgets::default(),
            clients: Mutex::default(),
        }
    }

    /// The client for a provider.
    pub fn provider(
        &self,
        record: &DnsProviderRecord,
    ) -> Result<Arc<dyn DnsProvider>, DnsWorkError> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(&record.id.get()) {
            return Ok(Arc::clone(client));
        }
        let unusable = |message: String| DnsWorkError::Unusable {
            provider: record.spec.name.clone(),
            message,
        };
        let secret = self
            .secrets
            .read(&record.spec.credentials)
            .map_err(unusable)?;
        let shared = |scope: SharedBudgetScope| -> Arc<dyn SharedBudget> {
            Arc::new(StoreBudget {
                store: Arc::clone(&self.store),
                key: scope.key,
                limit: scope.limit,
                window_ms: i64::try_from(scope.window.as_millis()).unwrap_or(i64::MAX),
            })
        };
        let client = record
            .spec
            .settings
            .connect(secret, &self.budgets, &shared)
            .map_err(|e| unusable(e.to_string()))?;
        clients.insert(record.id.get(), Arc::clone(&client));
        Ok(client)
    }

    /// The client for a provider by its id; its record is read only the first time (a
    /// provider's settings do not change, and a sync of a thousand zones asks a thousand times).
    async fn provider_by_id(
        &self,
        id: DnsProviderId,
    ) -> Result<Arc<dyn DnsProvider>, DnsWorkError> {
        let known = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id.get())
            .cloned();
        match known {
            Some(client) => Ok(client),
            None => self.provider(&self.store.dns_provider(id).await?),
        }
    }

    fn limits_for(&self, zone: &Zone) -> SafetyLimits {
        SafetyLimits {
            max_change_percent: zone
                .max_change_percent
                .unwrap_or(self.settings.limits.max_change_percent),
            ..self.settings.limits
        }
    }

    /// Reads each provider of the zone and says what applying would do.
    pub async fn plan(&self, zone: &Zone) -> Result<ZonePlan, DnsWorkError> {
        let mut providers = Vec::new();
        for zp in &zone.providers {
            providers.push(self.plan_one(zone, zp).await?);
        }
        Ok(ZonePlan {
            zone: zone.name.to_string(),
            generation: zone.generation,
            providers,
        })
    }

    async fn plan_one(&self, zone: &Zone, zp: &ZoneProvider) -> Result<ProviderPlan, DnsWorkError> {
        let client = self.provider_by_id(zp.provider_id).await?;
        let stored_ids = RecordIds::new();
        let zref = ZoneRef {
            name: &zone.name,
            provider_zone_id: zp.provider_zone_id.as_deref(),
            record_ids: &stored_ids,
        };
        let served = client
            .read_zone(zref)
            .await
            .map_err(provider_error(&zp.provider_name))?;
        let (exists, records, actual, record_ids) = match served {
            Some(served) => (
                true,
                served.record_count(),
                served.rrsets,
                served.record_ids,
            ),
            None => (false, 0, Vec::new(), RecordIds::new()),
        };
        let ProviderChange {
            action,
            diff,
            refusals,
        } = plan_provider_change(
            &zone.name,
            &zone.rrsets,
            zone.deleting,
            exists.then_some((actual.as_slice(), records)),
            self.limits_for(zone),
        );
        Ok(ProviderPlan {
            provider_id: zp.provider_id,
            provider: zp.provider_name.clone(),
            exists,
            records,
            action,
            diff,
            refusals,
            record_ids,
            provider_zone_id: zp.provider_zone_id.clone(),
        })
    }

    /// Carries out a plan (refused parts only with `force`) and records each provider's state.
    pub async fn apply(
        &self,
        ctx: &RequestContext,
        zone: &Zone,
        plan: &ZonePlan,
        force: bool,
    ) -> Result<Vec<ProviderOutcome>, DnsWorkError> {
        let mut outcomes = Vec::new();
        let mut records = Vec::new();
        let mut audits = Vec::new();
        for p in &plan.providers {
            let client = self.provider_by_id(p.provider_id).await?;
            let zref = ZoneRef {
                name: &zone.name,
                provider_zone_id: p.provider_zone_id.as_deref(),
                record_ids: &p.record_ids,
            };
            let outcome = |result, requests, message: Option<String>| ProviderOutcome {
                provider: p.provider.clone(),
                action: p.action,
                requests,
                result,
                message,
            };
            if !p.refusals.is_empty() && !force {
                let message = p
                    .refusals
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                audits.push(SyncAudit {
                    ctx,
                    action: "dns.apply.refused",
                    subject: format!("zone:{}", zone.name),
                    details: json!({
                        "provider": p.provider, "refusals": p.refusals,
                    }),
                });
                records.push((
                    zone.id,
                    p.provider_id,
                    ZoneSyncOutcome {
                        generation: None,
                        provider_zone_id: None,
                        record_ids: None,
                        error: Some(format!("refused by the safety limits: {message}")),
                    },
                ));
                outcomes.push(outcome(ApplyResult::Refused, 0, Some(message)));
                continue;
            }
            let result = match p.action {
                ZoneAction::None => Ok(drover_dns::Applied {
                    record_ids: (!p.record_ids.is_empty()).then(|| p.record_ids.clone()),
                    ..Default::default()
                }),
                ZoneAction::Create => client.create_zone(&zone.name, &zone.rrsets).await,
                ZoneAction::Delete => client.delete_zone(zref).await,
                ZoneAction::Update => client.apply(zref, &p.diff).await,
            };
            match result {
                Ok(applied) => {
                    records.push((
                        zone.id,
                        p.provider_id,
                        ZoneSyncOutcome {
                            generation: Some(plan.generation),
                            provider_zone_id: applied.provider_zone_id,
                            record_ids: applied.record_ids,
                            error: None,
                        },
                    ));
                    let result = if p.is_noop() {
                        ApplyResult::Unchanged
                    } else {
                        ApplyResult::Applied
                    };
                    outcomes.push(outcome(result, applied.requests, None));
                }
                Err(e) => {
                    records.push((
                        zone.id,
                        p.provider_id,
                        ZoneSyncOutcome {
                            generation: None,
                            provider_zone_id: None,
                            record_ids: None,
                            error: Some(e.to_string()),
                        },
                    ));
                    outcomes.push(outcome(ApplyResult::Failed, 0, Some(e.to_string())));
                }
            }
        }
        if outcomes.iter().any(|o| o.result == ApplyResult::Applied) {
            audits.push(SyncAudit {
                ctx,
                action: "dns.apply",
                subject: format!("zone:{}", zone.name),
                details: json!({
                    "generation": plan.generation, "force": force, "outcomes": outcomes,
                }),
            });
        }
        self.store.record_zone_syncs(&records, audits).await?;
        for o in &outcomes {
            count_zone_write(&o.provider, o.result.as_str());
        }
        Ok(outcomes)
    }

    /// The sync job's work: plan and apply until the zone stops changing. A removed zone is
    /// forgotten once no provider has it.
    pub async fn sync(
        &self,
        ctx: &RequestContext,
        zone: drover_core::ZoneId,
        force: bool,
    ) -> Result<Synced, DnsWorkError> {
        let mut synced = Synced::default();
        for _ in 0..5 {
            let current = match self.store.zone(zone).await {
                Ok(zone) => zone,
                Err(StoreError::NotFound { .. }) => return Ok(synced),
                Err(e) => return Err(e.into()),
            };
            let plan = self.plan(&current).await?;
            let outcomes = self.apply(ctx, &current, &plan, force).await?;
            if let Some(failed) = outcomes.iter().find(|o| o.result == ApplyResult::Failed) {
                return Err(DnsWorkError::Refused {
                    zone: current.name.to_string(),
                    message: format!(
                        "{}: {}",
                        failed.provider,
                        failed.message.clone().unwrap_or_default()
                    ),
                });
            }
            let forget =
                current.deleting && outcomes.iter().all(|o| o.result != ApplyResult::Refused);
            synced = Synced {
                plan: Some(plan),
                outcomes,
            };
            if forget {
                self.store.forget_zone(ctx, current.id).await?;
                return Ok(synced);
            }
            if self.store.zone(zone).await?.generation == current.generation {
                return Ok(synced);
            }
        }
        Ok(synced)
    }

    /// Moves every record pointing at `moved.from` to `moved.to` in drover's data, then writes
    /// each changed zone to each of its providers with one request, reading nothing first.
    /// Zones are rewritten in batches, and each batch is pushed while the next is written.
    pub async fn rewrite(
        &self,
        ctx: &RequestContext,
        moved: &AddressMove,
    ) -> Result<RewriteReport, DnsWorkError> {
        const BATCH: u32 = 100;
        let started = Instant::now();
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<ZoneRewrite>>(2);
        let write = async move {
            let mut after = None;
            let mut database = Duration::ZERO;
            loop {
                let batch_started = Instant::now();
                let batch = self
                    .store
                    .rewrite_addresses(ctx, moved, after, BATCH)
                    .await?;
                database += batch_started.elapsed();
                let Some(last) = batch.scanned_to else { break };
                after = Some(last);
                if !batch.rewrites.is_empty() && sender.send(batch.rewrites).await.is_err() {
                    break;
                }
            }
            Ok::<_, DnsWorkError>(database)
        };
        let push = async {
            let mut report = RewriteReport::default();
            while let Some(rewrites) = receiver.recv().await {
                report.zones += rewrites.len();
                self.push_rewrites(ctx, &rewrites, &mut report).await?;
            }
            Ok::<_, DnsWorkError>(report)
        };
        let (database, report) = tokio::join!(write, push);
        let mut report = report?;
        report.database_ms = database?.as_millis();
        report.elapsed_ms = started.elapsed().as_millis();
        Ok(report)
    }

    /// Writes one batch of rewritten zones to their providers (each provider on its own, at
    /// most `push_concurrency` requests at a time) and records how far each got. A provider
    /// that had not caught up with the zone, or failed, is left to a sync job.
    async fn push_rewrites(
        &self,
        ctx: &RequestContext,
        rewrites: &[ZoneRewrite],
        report: &mut RewriteReport,
    ) -> Result<(), DnsWorkError> {
        let mut by_provider: BTreeMap<DnsProviderId, Vec<(&ZoneRewrite, &ZoneProvider)>> =
            BTreeMap::new();
        let provider_names: BTreeMap<DnsProviderId, String> = rewrites
            .iter()
            .flat_map(|r| &r.zone.providers)
            .map(|zp| (zp.provider_id, zp.provider_name.clone()))
            .collect();
        for rewrite in rewrites {
            for zp in &rewrite.zone.providers {
                by_provider
                    .entry(zp.provider_id)
                    .or_default()
                    .push((rewrite, zp));
            }
        }
        let pushes = by_provider.into_iter().map(|(provider_id, pairs)| async move {
            let client = self.provider_by_id(provider_id).await;
            let kind = pairs.first().map(|(_, zp)| zp.kind);
            let concurrency = match kind {
                Some(ProviderKind::Cloudflare) => CLOUDFLARE_CONCURRENCY,
                _ => self.settings.push_concurrency.max(1),
            };
            let semaphore = tokio::sync::Semaphore::new(concurrency);
            let pushes = pairs.into_iter().map(|(rewrite, zp)| {
                let (client, semaphore) = (&client, &semaphore);
                async move {
                    let zone = &rewrite.zone;
                    let result = match client {
                        Ok(client) if zp.synced_generation == zone.generation - 1 && zp.last_error.is_none() => {
                            let _permit = semaphore.acquire().await;
                            self.push_one(client.as_ref(), rewrite, zp).await
                        }
                        Ok(_) => Err(format!(
                            "{} {}: the provider had not caught up; a sync job will write the whole zone",
                            zone.name, zp.provider_name
                        )),
                        Err(e) => Err(e.to_string()),
                    };
                    (zone.id, zp.provider_id, zone.generation, result)
                }
            });
            futures_util::future::join_all(pushes).await
        });
        let mut deferred: BTreeSet<drover_core::ZoneId> = BTreeSet::new();
        let mut records = Vec::new();
        for results in futures_util::future::join_all(pushes).await {
            for (zone, provider, generation, result) in results {
                count_zone_write(
                    &provider_names[&provider],
                    if result.is_ok() {
                        "applied"
                    } else {
                        "deferred"
                    },
                );
                let outcome = match result {
                    Ok(applied) => {
                        report.pushed += 1;
                        report.requests += applied.requests;
                        ZoneSyncOutcome {
                            generation: Some(generation),
                            provider_zone_id: applied.provider_zone_id,
                            record_ids: applied.record_ids,
                            error: None,
                        }
                    }
                    Err(message) => {
                        report.deferred += 1;
                        report.failures.push(message.clone());
                        deferred.insert(zone);
                        ZoneSyncOutcome {
                            generation: None,
                            provider_zone_id: None,
                            record_ids: None,
                            error: Some(message),
                        }
                    }
                };
                records.push((zone, provider, outcome));
            }
        }
        self.store.record_zone_syncs(&records, Vec::new()).await?;
        for zone in deferred {
            crate::commands::sync_zone(&*self.store, ctx, zone, false).await?;
        }
        Ok(())
    }

    async fn push_one(
        &self,
        client: &dyn DnsProvider,
        rewrite: &ZoneRewrite,
        zp: &ZoneProvider,
    ) -> Result<drover_dns::Applied, String> {
        let zone = &rewrite.zone;
        let ids = if zp.kind == ProviderKind::Cloudflare {
            self.store
                .record_ids(zone.id, zp.provider_id)
                .await
                .map_err(|e| e.to_string())?
        } else {
            RecordIds::new()
        };
        let zref = ZoneRef {
            name: &zone.name,
            provider_zone_id: zp.provider_zone_id.as_deref(),
            record_ids: &ids,
        };
        client
            .apply(zref, &rewrite.diff)
            .await
            .map_err(|e| format!("{} {}: {e}", zone.name, zp.provider_name))
    }

    /// Compares each provider (or the one named) with drover's data, and asks each PowerDNS
    /// server with a DNS address what it serves for every zone's apex and `www`.
    pub async fn check(
        &self,
        only: Option<DnsProviderId>,
    ) -> Result<Vec<ProviderCheck>, DnsWorkError> {
        let mut checks = Vec::new();
        for record in self.store.dns_providers().await? {
            if only.is_some_and(|id| id != record.id) {
                continue;
            }
            let mut check = ProviderCheck {
                provider: record.spec.name.clone(),
                ..ProviderCheck::default()
            };
            if let Err(e) = self.check_one(&record, &mut check).await {
                check.error = Some(e.to_string());
            }
            checks.push(check);
        }
        Ok(checks)
    }

    async fn check_one(
        &self,
        record: &DnsProviderRecord,
        check: &mut ProviderCheck,
    ) -> Result<(), DnsWorkError> {
        let client = self.provider(record)?;
        let name = record.spec.name.as_str();
        let zones = self
            .store
            .zones(ZoneFilter {
                provider: Some(record.id),
                ..ZoneFilter::default()
            })
            .await?;
        let listed = client.list_zones().await.map_err(provider_error(name))?;
        let listed: BTreeSet<String> = listed.into_iter().map(|z| z.name).collect();
        let held: BTreeSet<String> = zones
            .iter()
            .filter(|z| !z.deleting)
            .map(|z| z.name.to_string())
            .collect();
        check.extra = listed.difference(&held).cloned().collect();
        for zone in zones.iter().filter(|z| !z.deleting) {
            check.zones_checked += 1;
            if !listed.contains(zone.name.as_str()) {
                check.missing.push(zone.name.to_string());
                continue;
            }
            let zp = zone.providers.iter().find(|p| p.provider_id == record.id);
            let no_ids = RecordIds::new();
            let zref = ZoneRef {
                name: &zone.name,
                provider_zone_id: zp.and_then(|p| p.provider_zone_id.as_deref()),
                record_ids: &no_ids,
            };
            let served = client.read_zone(zref).await.map_err(provider_error(name))?;
            let actual = served.map(|s| s.rrsets).unwrap_or_default();
            let diff = diff_zone(&zone.rrsets, &actual);
            if !diff.is_empty() {
                check.different.insert(zone.name.to_string(), diff);
            }
            if let Some(address) = record.spec.settings.dns_address() {
                self.check_served(address, zone, check).await;
            }
        }
        Ok(())
    }

    async fn check_served(
        &self,
        address: std::net::SocketAddr,
        zone: &Zone,
        check: &mut ProviderCheck,
    ) {
        let apex = zone.name.to_string();
        let www = format!("www.{apex}");
        let wanted: Vec<&RrSet> = zone
            .rrsets
            .iter()
            .filter(|r| matches!(r.rtype, RecordType::A | RecordType::Aaaa))
            .filter(|r| r.name.as_str() == apex || r.name.as_str() == www)
            .collect();
        for rrset in wanted {
            check.queries += 1;
            let served = query_served(
                address,
                rrset.name.as_str(),
                rrset.rtype,
                Duration::from_secs(3),
            )
            .await;
            let mismatch = match served {
                Ok(answer) if answer.records == rrset.records => None,
                Ok(answer) => Some(format!(
                    "{} / {} {}",
                    rrset.records.join(","),
                    answer.code,
                    answer.records.join(",")
                )),
                Err(e) => Some(format!("{} / no answer: {e}", rrset.records.join(","))),
            };
            if let Some(detail) = mismatch {
                check.served_mismatches.push(format!(
                    "{} {} {}: {detail}",
                    zone.name, rrset.name, rrset.rtype
                ));
            }
        }
    }

    /// Gives a placed account its zone from the template, on the providers that serve new
    /// zones; nothing if it has one.
    pub async fn ensure_account_zone(
        &self,
        ctx: &RequestContext,
        account: &Account,
        server: &Server,
    ) -> Result<(), DnsWorkError> {
        if self.store.account_zone(account.id).await?.is_some() {
            return Ok(());
        }
        self.create_account_zone(ctx, account, &account.domain, server)
            .await
    }

    /// Gives each of the account's alias domains a zone of its own, made as the account's is,
    /// that follows the account from then on.
    pub async fn ensure_alias_zones(
        &self,
        ctx: &RequestContext,
        account: &Account,
        server: &Server,
        aliases: &[DomainName],
    ) -> Result<(), DnsWorkError> {
        if aliases.is_empty() {
            return Ok(());
        }
        let held = self.store.account_zones(account.id).await?;
        for alias in aliases {
            if !held.iter().any(|z| &z.name == alias) {
                self.create_account_zone(ctx, account, alias, server)
                    .await?;
            }
        }
        Ok(())
    }

    /// A zone for `name` from the account zone template, at `server`'s addresses, on the
    /// providers that serve new zones.
    async fn create_account_zone(
        &self,
        ctx: &RequestContext,
        account: &Account,
        name: &DomainName,
        server: &Server,
    ) -> Result<(), DnsWorkError> {
        let providers: Vec<DnsProviderId> = self
            .store
            .dns_providers()
            .await?
            .into_iter()
            .filter(|p| p.spec.serves_new_zones)
            .map(|p| p.id)
            .collect();
        let rrsets = account_zone(
            name,
            server.spec.ipv4,
            server.spec.ipv6,
            &self.settings.template,
        )
        .map_err(StoreError::from)?;
        let zone = Some(account.id);
        match commands::create_zone(&*self.store, ctx, name, zone, rrsets, &providers).await {
            // Held already (an operator created it, or another job gave the account its zone
            // meanwhile): leave it as it is.
            Ok(_)
            | Err(commands::Error::Store(StoreError::Duplicate {
                key: UniqueKey::ZoneName,
                ..
            })) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Puts each sub-server's addresses (its name and its `www`) in the account's zone where
    /// the zone has no record of that name and type yet (an operator's own are kept).
    pub async fn ensure_subserver_records(
        &self,
        ctx: &RequestContext,
        account: &Account,
        server: &Server,
        subservers: &[DomainName],
    ) -> Result<(), DnsWorkError> {
        if subservers.is_empty() {
            return Ok(());
        }
        let Some(zone) = self.store.account_zone(account.id).await? else {
            return Ok(());
        };
        for sub in subservers {
            let wanted = subserver_records(
                sub,
                &account.domain,
                server.spec.ipv4,
                server.spec.ipv6,
                self.settings.template.address_ttl,
            )
            .map_err(StoreError::from)?;
            for rrset in wanted {
                if !zone.rrsets.iter().any(|r| r.key() == rrset.key()) {
                    commands::set_rrset(&*self.store, ctx, zone.id, rrset).await?;
                }
            }
        }
        Ok(())
    }

    /// After a sub-server is gone from its server: its addresses leave the account's zone.
    pub async fn retire_subserver_records(
        &self,
        ctx: &RequestContext,
        account: &Account,
        subserver: &DomainName,
    ) -> Result<(), DnsWorkError> {
        let Some(zone) = self.store.account_zone(account.id).await? else {
            return Ok(());
        };
        for relative in subserver_owners(subserver, &account.domain)
            .into_iter()
            .flatten()
        {
            let owner = drover_core::OwnerName::parse(&relative, &account.domain)
                .map_err(StoreError::from)?;
            for rrset in zone.rrsets.iter().filter(|r| r.name == owner) {
                if matches!(rrset.rtype, RecordType::A | RecordType::Aaaa) {
                    commands::delete_rrset(&*self.store, ctx, zone.id, &owner, rrset.rtype).await?;
                }
            }
        }
        Ok(())
    }

    /// After an alias domain is gone from its server: its zone is removed or kept, as an
    /// account's is.
    pub async fn retire_alias_zone(
        &self,
        ctx: &RequestContext,
        account: AccountId,
        alias: &DomainName,
    ) -> Result<(), DnsWorkError> {
        let zones = self.store.account_zones(account).await?;
        let zone = zones.iter().find(|z| &z.name == alias);
        self.retire(ctx, zone).await
    }

    async fn retire(&self, ctx: &RequestContext, zone: Option<&Zone>) -> Result<(), DnsWorkError> {
        if self.settings.on_terminate == TerminatedZones::Keep {
            return Ok(());
        }
        match zone {
            Some(zone) if !zone.deleting => {
                let name = zone.name.to_string();
                crate::commands::remove_zone(&*self.store, ctx, zone.id, &name).await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Points an account's zones (its own and its aliases') at another server: every record at
    /// the old server's addresses moves to the new one's (a sync job carries it to the
    /// providers).
    pub async fn move_account_zone(
        &self,
        ctx: &RequestContext,
        account: AccountId,
        from: &Server,
        to: &Server,
    ) -> Result<(), DnsWorkError> {
        let addresses = |s: &Server| -> Vec<std::net::IpAddr> {
            s.spec
                .ipv4
                .map(Into::into)
                .into_iter()
                .chain(s.spec.ipv6.map(Into::into))
                .collect()
        };
        let moved = AddressMove {
            from: addresses(from),
            to: addresses(to),
        };
        for zone in self.store.account_zones(account).await? {
            let diff = drover_core::rewrite_addresses(&zone.rrsets, &moved);
            for rrset in &diff.deletes {
                crate::commands::delete_rrset(&*self.store, ctx, zone.id, &rrset.name, rrset.rtype)
                    .await?;
            }
            for rrset in diff.upserts() {
                crate::commands::set_rrset(&*self.store, ctx, zone.id, rrset.clone()).await?;
            }
        }
        Ok(())
    }

    /// After an account is deleted: its zones (its own and its aliases') are removed or kept,
    /// as configured.
    pub async fn retire_account_zone(
        &self,
        ctx: &RequestContext,
        account: AccountId,
    ) -> Result<(), DnsWorkError> {
        for zone in self.store.account_zones(account).await? {
            self.retire(ctx, Some(&zone)).await?;
        }
        Ok(())
    }
}

/// `dns_zone_writes_total`: what happened to each zone on each provider (applied, unchanged,
/// refused by the safety limits, failed, or deferred to a sync job).
fn count_zone_write(provider: &str, result: &str) {
    metrics::counter!("drover_dns_zone_writes_total", "provider" => provider.to_owned(), "result" => result.to_owned())
        .increment(1);
}
