//! An account's other domains: alias domains (serving its site and mail, each with a DNS zone
//! of its own) and sub-servers (names under its domain with a web root of their own, whose
//! addresses live in its zone). Recorded first, then made on the account's server by its
//! converge job (one listing per kind, then a call per difference).

use drover_core::{
    AccountId, Confirmation, DomainName, PlanSpec, check_alias, check_alias_limit,
    check_resources_change, check_subserver_limit, subserver_domain,
};
use drover_store::{
    Account, OtherDomain, OtherDomainKind, RequestContext, Store, StoreError, Write,
};
use serde_json::json;

use super::Result;
use super::certificates::{Renew, certificate_follows};
use super::services::{converge, lock_service_of, refresh_over_limit};

/// Records a new alias domain of the account, within its plan's limit, and queues its
/// creation. A domain hosted already, as an account, an alias or a sub-server, is refused.
pub async fn create_alias(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    domain: &str,
) -> Result<OtherDomain> {
    let alias = DomainName::parse(domain)?;
    let domain_of = |record: &Account| check_alias(&alias, &record.domain).map(|()| alias.clone());
    let kind = OtherDomainKind::Alias;
    create(store, ctx, account, kind, domain_of, check_alias_limit).await
}

/// Records a new sub-server of the account (`shop`, or a name under the account's domain),
/// within its plan's limit, and queues its creation.
pub async fn create_subserver(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    name: &str,
) -> Result<OtherDomain> {
    let domain_of = |record: &Account| subserver_domain(name, &record.domain);
    let kind = OtherDomainKind::Subserver;
    create(store, ctx, account, kind, domain_of, check_subserver_limit).await
}

/// Deletes an alias domain or a sub-server once `confirm` repeats it; the account's converge
/// removes it from the server and from DNS, then drover forgets it.
pub async fn delete_other_domain(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    kind: OtherDomainKind,
    domain: &str,
    confirm: &Confirmation,
) -> Result<OtherDomain> {
    let mut tx = store.write().await?;
    lock_service_of(store, &mut *tx, account).await?;
    let record = tx.account(account).await?;
    let domain = match kind {
        OtherDomainKind::Alias => DomainName::parse(domain)?,
        OtherDomainKind::Subserver => subserver_domain(domain, &record.domain)?,
    };
    let service = tx.service(record.service_id).await?;
    check_resources_change(service.status, &record.domain, what(kind))?;
    find(&mut *tx, account, kind, &domain).await?;
    confirm.check(|typed| {
        domain.confirm(typed, || {
            format!("delete the {} {}", kind.as_str(), domain.to_unicode())
        })
    })?;
    tx.mark_other_domain_deleting(account, kind, &domain)
        .await?;
    refresh_over_limit(&mut *tx, account).await?;
    let deleted = find(&mut *tx, account, kind, &domain).await?;
    let job = converge(&mut *tx, ctx, account).await?;
    let details = json!({ "domain": domain, "confirmed": confirm.as_str(), "job_id": job.id });
    let action = format!("{}.delete", event(kind));
    tx.audit(ctx, &action, format!("account:{account}"), details)
        .await?;
    let what = (event(kind), domain.as_str(), "deleted");
    super::resource_event(&mut *tx, ctx, account, what, job.id).await?;
    tx.commit().await?;
    certificate_follows(store, ctx, account, renew_after(kind)).await;
    Ok(deleted)
}

/// Records one: `domain_of` turns the request into the domain for the account, `limit` holds
/// it to the plan's number of the kind.
async fn create(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    kind: OtherDomainKind,
    domain_of: impl FnOnce(&Account) -> Result<DomainName, drover_core::Error>,
    limit: impl FnOnce(&PlanSpec, usize) -> Result<(), drover_core::Error>,
) -> Result<OtherDomain> {
    let mut tx = store.write().await?;
    lock_service_of(store, &mut *tx, account).await?;
    let record = tx.account(account).await?;
    let service = tx.service(record.service_id).await?;
    check_resources_change(service.status, &record.domain, what(kind))?;
    let domain = domain_of(&record)?;
    let all = tx.other_domains(account, kind).await?;
    if all.iter().any(|d| d.domain == domain && d.deleting) {
        return Err(drover_core::Error::ResourceDeleting {
            what: kind.as_str(),
            name: domain.to_string(),
        }
        .into());
    }
    // A domain taken is said before a limit reached (nothing is committed when refused).
    let created = tx.insert_other_domain(account, kind, &domain).await?;
    let plan = tx.plan(service.plan_id).await?;
    limit(&plan.spec, all.iter().filter(|d| !d.deleting).count())?;
    let job = converge(&mut *tx, ctx, account).await?;
    let details = json!({ "domain": domain, "job_id": job.id });
    let action = format!("{}.create", event(kind));
    tx.audit(ctx, &action, format!("account:{account}"), details)
        .await?;
    let what = (event(kind), domain.as_str(), "created");
    super::resource_event(&mut *tx, ctx, account, what, job.id).await?;
    tx.commit().await?;
    certificate_follows(store, ctx, account, renew_after(kind)).await;
    Ok(created)
}

/// What an account's certificate asks for again after an alias or a sub-server came or went:
/// the domain's certificate covers its aliases, each sub-server has its own.
fn renew_after(kind: OtherDomainKind) -> Renew {
    match kind {
        OtherDomainKind::Alias => Renew::Domain,
        OtherDomainKind::Subserver => Renew::New,
    }
}

/// How a refusal names the kind in the plural.
fn what(kind: OtherDomainKind) -> &'static str {
    match kind {
        OtherDomainKind::Alias => "alias domains",
        OtherDomainKind::Subserver => "sub-servers",
    }
}

/// The audit events' prefix.
fn event(kind: OtherDomainKind) -> &'static str {
    match kind {
        OtherDomainKind::Alias => "alias",
        OtherDomainKind::Subserver => "subserver",
    }
}

async fn find(
    tx: &mut dyn Write,
    account: AccountId,
    kind: OtherDomainKind,
    domain: &DomainName,
) -> Result<OtherDomain> {
    tx.other_domains(account, kind)
        .await?
        .into_iter()
        .find(|d| &d.domain == domain)
        .ok_or_else(|| {
            StoreError::NotFound {
                what: kind.as_str(),
                id: format!("{domain} of account {account}"),
            }
            .into()
        })
}
