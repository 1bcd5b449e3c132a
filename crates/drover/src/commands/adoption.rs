//! Adoption: a server's existing domains recorded as drover's accounts, as the server shows
//! them. Nothing changes on the server; the proposal is core's (`drover_core::propose`).

use drover_core::{AccountId, Adoption, Owner, ServerId};
use drover_store::{Conflict, OtherDomainKind, RequestContext, Store, StoreError};
use serde_json::json;

use super::{Error, Result};

/// Records `adoption` on `server` in one transaction: its new customers, then each account
/// with its service (active, or suspended with the server's reason), on the server with no
/// job, protected from deletion and with no sealed password; each audited. Refused whole when
/// it names plans drover lacks, when the server is decommissioned, or when a domain, unix user
/// or customer reference was taken since it was proposed. Returns the new accounts' ids.
pub async fn adopt(
    store: &dyn Store,
    ctx: &RequestContext,
    server: ServerId,
    adoption: &Adoption,
) -> Result<Vec<AccountId>> {
    // Plans the server carries otherwise are the operator's call, made before this.
    if let Some(reason) = adoption.refusal(true) {
        return Err(drover_core::Error::AdoptionRefused { reason }.into());
    }
    let mut tx = store.write().await?;
    let on = tx.server(server).await?;
    on.state.accepts_adoption(&on.spec.name)?;
    let mut customers = Vec::with_capacity(adoption.new_customers.len());
    for spec in &adoption.new_customers {
        let customer = tx.insert_customer(spec).await.map_err(taken_since)?;
        tx.audit(
            ctx,
            "customer.create",
            format!("customer:{}", customer.id),
            json!({
                "name": spec.name,
                "external_ref": spec.external_ref,
                "adopted_from": on.spec.name,
            }),
        )
        .await?;
        customers.push(customer.id);
    }
    let mut adopted = Vec::with_capacity(adoption.accounts.len());
    for account in &adoption.accounts {
        let customer = match account.owner {
            Owner::Existing(id) => id,
            Owner::New(i) => customers[i],
        };
        let (service, id) = tx
            .insert_adopted_account(customer, server, account)
            .await
            .map_err(taken_since)?;
        // Its aliases and sub-servers on the server are drover's from now on too.
        for (kind, domains) in [
            (OtherDomainKind::Alias, &account.aliases),
            (OtherDomainKind::Subserver, &account.subservers),
        ] {
            for domain in domains {
                tx.insert_other_domain(id, kind, domain)
                    .await
                    .map_err(taken_since)?;
            }
        }
        tx.audit(
            ctx,
            "account.adopt",
            format!("account:{id}"),
            json!({
                "domain": account.domain,
                "server": on.spec.name,
                "service_id": service,
                "customer_id": customer,
                "plan": account.plan_name,
                "state": account.state.as_str(),
            }),
        )
        .await?;
        adopted.push(id);
    }
    tx.audit(
        ctx,
        "server.adopt",
        format!("server:{server}"),
        json!({
            "accounts": adopted.len(),
            "new_customers": customers.len(),
            "skipped": adoption.skipped.len(),
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(adopted)
}

/// A domain, unix user or customer reference taken between the proposal and now: a new
/// proposal would see it.
fn taken_since(error: StoreError) -> Error {
    match error {
        StoreError::Duplicate { message, .. } => StoreError::Conflict {
            conflict: Conflict::ConcurrentChange,
            message: format!("{message}: it was taken since the adoption was planned; adopt again"),
        }
        .into(),
        other => other.into(),
    }
}
