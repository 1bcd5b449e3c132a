//! drover's own zones as operators and the engine change them: each change keeps the whole
//! zone valid (core's [`validate_zone`]), makes it a new generation and queues its sync to the
//! providers, in one transaction.

use drover_core::{
    AccountId, DnsProviderId, DomainName, JobId, OwnerName, RecordType, RrSet, ZoneId,
    check_change_percent, check_zone_change, diff_zone, validate_zone,
};
use drover_store::jobs::SyncZone;
use drover_store::{
    Conflict, DnsProviderRecord, DnsProviderSpec, Job, RequestContext, Store, StoreError, Write,
    Zone,
};
use serde_json::json;

use super::Result;

/// Records a DNS provider (its name and its kind's settings checked first).
pub async fn create_dns_provider(
    store: &dyn Store,
    ctx: &RequestContext,
    spec: DnsProviderSpec,
) -> Result<DnsProviderRecord> {
    let spec = spec.validated()?;
    let mut tx = store.write().await?;
    let provider = tx.insert_dns_provider(&spec).await?;
    tx.audit(
        ctx,
        "dns.provider.create",
        format!("dns_provider:{}", provider.id),
        json!({ "provider": spec }),
    )
    .await?;
    tx.commit().await?;
    Ok(provider)
}

/// Records a zone with its records (valid as a whole) on `providers`, and queues its first
/// sync to them; `account` makes it that account's zone, which follows the account's moves.
pub async fn create_zone(
    store: &dyn Store,
    ctx: &RequestContext,
    name: &DomainName,
    account: Option<AccountId>,
    rrsets: Vec<RrSet>,
    providers: &[DnsProviderId],
) -> Result<Zone> {
    validate_zone(name, &rrsets)?;
    let mut tx = store.write().await?;
    let zone = tx.insert_zone(name, account, &rrsets, providers).await?;
    tx.audit(
        ctx,
        "dns.zone.create",
        format!("zone:{name}"),
        json!({ "rrsets": rrsets.len(), "providers": providers, "account": account }),
    )
    .await?;
    if !providers.is_empty() {
        queue_sync(&mut *tx, ctx, &zone, false).await?;
    }
    tx.commit().await?;
    Ok(zone)
}

/// Sets one rrset of the zone (replacing the one of the same name and type).
pub async fn set_rrset(
    store: &dyn Store,
    ctx: &RequestContext,
    zone: ZoneId,
    rrset: RrSet,
) -> Result<Zone> {
    let details = json!({ "rrset": rrset });
    change_zone(store, ctx, zone, "dns.rrset.set", details, |rrsets| {
        rrsets.retain(|r| r.key() != rrset.key());
        rrsets.push(rrset);
        Ok(())
    })
    .await
}

/// Removes one rrset of the zone.
pub async fn delete_rrset(
    store: &dyn Store,
    ctx: &RequestContext,
    zone: ZoneId,
    name: &OwnerName,
    rtype: RecordType,
) -> Result<Zone> {
    let details = json!({ "name": name, "type": rtype });
    change_zone(store, ctx, zone, "dns.rrset.delete", details, |rrsets| {
        let before = rrsets.len();
        rrsets.retain(|r| r.key() != (name, rtype));
        if rrsets.len() == before {
            return Err(StoreError::NotFound {
                what: "rrset",
                id: format!("{name} {rtype}"),
            }
            .into());
        }
        Ok(())
    })
    .await
}

/// Sets the zone's own limit on the share of its records one sync may change (`None`: the
/// default limits).
pub async fn set_zone_safety(
    store: &dyn Store,
    ctx: &RequestContext,
    zone: ZoneId,
    max_change_percent: Option<u8>,
) -> Result<Zone> {
    check_change_percent(max_change_percent)?;
    let mut tx = store.write().await?;
    let before = tx.zone(zone).await?;
    tx.update_zone_safety(zone, max_change_percent).await?;
    tx.audit(
        ctx,
        "dns.zone.safety",
        format!("zone:{}", before.name),
        json!({ "before": before.max_change_percent, "after": max_change_percent }),
    )
    .await?;
    let zone = tx.zone(zone).await?;
    tx.commit().await?;
    Ok(zone)
}

/// Removes the zone from its providers (by its sync job) once `confirm` repeats its name;
/// drover forgets it once they are done.
pub async fn remove_zone(
    store: &dyn Store,
    ctx: &RequestContext,
    zone: ZoneId,
    confirm: &str,
) -> Result<Zone> {
    let mut tx = store.write().await?;
    let before = tx.zone(zone).await?;
    before.name.confirm_as("zone name", confirm, || {
        format!("delete zone {}", before.name)
    })?;
    tx.mark_zone_deleting(zone).await?;
    tx.next_zone_generation(zone).await?;
    tx.audit(
        ctx,
        "dns.zone.remove",
        format!("zone:{}", before.name),
        json!({}),
    )
    .await?;
    let zone = tx.zone(zone).await?;
    queue_sync(&mut *tx, ctx, &zone, false).await?;
    tx.commit().await?;
    Ok(zone)
}

/// Queues the zone's sync to its providers; `force` lets it pass the safety limits.
pub async fn sync_zone(
    store: &dyn Store,
    ctx: &RequestContext,
    zone: ZoneId,
    force: bool,
) -> Result<JobId> {
    let mut tx = store.write().await?;
    let zone = tx.zone(zone).await?;
    let job = queue_sync(&mut *tx, ctx, &zone, force).await?;
    tx.commit().await?;
    Ok(job)
}

/// Changes the zone's rrsets by `change`, if the zone may change and holds together after it.
async fn change_zone(
    store: &dyn Store,
    ctx: &RequestContext,
    id: ZoneId,
    action: &str,
    details: serde_json::Value,
    change: impl FnOnce(&mut Vec<RrSet>) -> Result<()>,
) -> Result<Zone> {
    let mut tx = store.write().await?;
    let before = tx.zone(id).await?;
    check_zone_change(&before.name, before.deleting)?;
    let mut rrsets = before.rrsets.clone();
    change(&mut rrsets)?;
    validate_zone(&before.name, &rrsets)?;
    tx.update_rrsets(id, &diff_zone(&rrsets, &before.rrsets))
        .await?;
    tx.next_zone_generation(id).await?;
    tx.audit(ctx, action, format!("zone:{}", before.name), details)
        .await?;
    let zone = tx.zone(id).await?;
    queue_sync(&mut *tx, ctx, &zone, false).await?;
    tx.commit().await?;
    Ok(zone)
}

/// Syncs are one per zone: a change joins the one waiting; a forced one must not, since the
/// one waiting keeps to the safety limits.
async fn queue_sync(
    tx: &mut dyn Write,
    ctx: &RequestContext,
    zone: &Zone,
    force: bool,
) -> Result<JobId> {
    let args = SyncZone {
        zone_id: zone.id.get(),
        force,
    };
    let account = zone.account_id;
    let job = tx.enqueue(ctx, Job::SyncZone { args, account }).await?;
    if force && job.joined {
        return Err(StoreError::Conflict {
            conflict: Conflict::SyncUnderWay,
            message: format!(
                "a sync of zone {} is waiting or running already (job {}); apply with force \
                 again once it has finished",
                zone.name, job.id
            ),
        }
        .into());
    }
    Ok(job.id)
}
