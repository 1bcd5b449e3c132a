//! An account's alias domains: recorded first, then made on the account's server by its
//! converge job (one listing of the domain's aliases, then a call per difference), each given
//! a DNS zone of its own that follows the account.

use drover_core::{AccountId, DomainName, check_alias, check_alias_limit, check_resources_change};
use drover_store::{Alias, RequestContext, Store, StoreError, Write};
use serde_json::json;

use super::Result;
use super::services::converge;

/// Records a new alias domain of the account, within its plan's limit, and queues its
/// creation. A domain hosted already, as an account or an alias, is refused.
pub async fn create_alias(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    domain: &str,
) -> Result<Alias> {
    let alias = DomainName::parse(domain)?;
    let mut tx = store.write().await?;
    let record = tx.account(account).await?;
    check_alias(&alias, &record.domain)?;
    let service = tx.service(record.service_id).await?;
    check_resources_change(service.status, &record.domain, "alias domains")?;
    let all = tx.aliases(account).await?;
    if all.iter().any(|a| a.domain == alias && a.deleting) {
        return Err(drover_core::Error::ResourceDeleting {
            what: "alias domain",
            name: alias.to_string(),
        }
        .into());
    }
    // A domain taken is said before a limit reached (the write is not committed when refused).
    let created = tx.insert_alias(account, &alias).await?;
    let plan = tx.plan(service.plan_id).await?;
    check_alias_limit(&plan.spec, all.iter().filter(|a| !a.deleting).count())?;
    let job = converge(&mut *tx, ctx, account).await?;
    let details = json!({ "alias": alias, "job_id": job.id });
    tx.audit(ctx, "alias.create", format!("account:{account}"), details)
        .await?;
    tx.commit().await?;
    Ok(created)
}

/// Deletes an alias domain once `confirm` repeats it; the account's converge removes it from
/// the server and its zone from DNS, then drover forgets it.
pub async fn delete_alias(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    domain: &str,
    confirm: &str,
) -> Result<Alias> {
    let alias = DomainName::parse(domain)?;
    let mut tx = store.write().await?;
    let record = tx.account(account).await?;
    let service = tx.service(record.service_id).await?;
    check_resources_change(service.status, &record.domain, "alias domains")?;
    find(&mut *tx, account, &alias).await?;
    alias.confirm(confirm, || {
        format!("delete the alias domain {}", alias.to_unicode())
    })?;
    tx.mark_alias_deleting(account, &alias).await?;
    let deleted = find(&mut *tx, account, &alias).await?;
    let job = converge(&mut *tx, ctx, account).await?;
    let details = json!({ "alias": alias, "job_id": job.id });
    tx.audit(ctx, "alias.delete", format!("account:{account}"), details)
        .await?;
    tx.commit().await?;
    Ok(deleted)
}

async fn find(tx: &mut dyn Write, account: AccountId, domain: &DomainName) -> Result<Alias> {
    tx.aliases(account)
        .await?
        .into_iter()
        .find(|a| &a.domain == domain)
        .ok_or_else(|| {
            StoreError::NotFound {
                what: "alias",
                id: format!("{domain} of account {account}"),
            }
            .into()
        })
}
