//! Adoption: a server's existing domains recorded as drover's accounts, as the server shows
//! them. Nothing changes on the server; the proposal is core's (`drover_core::propose`).

use std::collections::BTreeMap;

use drover_core::{AccountId, Adoption, DomainName, MailboxName, Owner, ServerId};
use drover_store::{Conflict, OtherDomainKind, RequestContext, Store, StoreError};
use secrecy::SecretString;
use serde_json::json;

use super::services::resource_counts;
use super::{Error, Result};
use crate::engine::seal::Sealer;

/// The password hashes the server showed for the adopted accounts' mailboxes, by domain and
/// mailbox: kept sealed, so drover can make a mailbox again with the customer's password.
pub type MailboxHashes = BTreeMap<(DomainName, MailboxName), SecretString>;

/// Records `adoption` on `server` in one transaction: its new customers, then each account
/// with its service (active, or suspended with the server's reason), on the server with no
/// job, protected from deletion and with no sealed password; each audited. Refused whole when
/// it names plans drover lacks, when the server is decommissioned, or when a domain, unix user
/// or customer reference was taken since it was proposed. Its mailboxes keep the hashes in
/// `hashes`, sealed by `sealer`; an account holding more than its plan allows is flagged over
/// its limits (nothing is deleted). Returns the new accounts' ids.
pub async fn adopt(
    store: &dyn Store,
    ctx: &RequestContext,
    sealer: &Sealer,
    server: ServerId,
    adoption: &Adoption,
    hashes: &MailboxHashes,
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
        for mailbox in &account.mailboxes {
            let key = (account.domain.clone(), mailbox.name.clone());
            let Some(hash) = hashes.get(&key) else {
                return Err(drover_core::Error::AdoptionRefused {
                    reason: format!(
                        "no password hash was read for mailbox {}@{}; adopt again",
                        mailbox.name,
                        account.domain.to_unicode()
                    ),
                }
                .into());
            };
            tx.insert_adopted_mailbox(id, mailbox, &sealer.seal(hash), sealer.id())
                .await?;
        }
        for database in &account.databases {
            tx.insert_database(id, &database.name, database.kind)
                .await
                .map_err(taken_since)?;
        }
        let plan = tx.plan(account.plan).await?.spec;
        let overruns = plan.overruns(&resource_counts(&mut *tx, id).await?);
        let over_limit = (!overruns.is_empty()).then(|| overruns.join("; "));
        if over_limit.is_some() {
            tx.set_over_limit(id, over_limit.as_deref()).await?;
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
                "mailboxes": account.mailboxes.iter().map(|m| &m.name).collect::<Vec<_>>(),
                "databases": account.databases.iter().map(|d| &d.name).collect::<Vec<_>>(),
                "over_limit": over_limit,
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
