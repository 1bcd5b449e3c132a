//! An account's databases: recorded first, then made to exist on the account's server by its
//! converge job, queued with each change (one listing of the account's databases, then one
//! call per difference).

use drover_core::{
    AccountId, Confirmation, DatabaseName, DatabaseType, check_database_limit,
    check_resources_change,
};
use drover_store::{Database, RequestContext, Store, StoreError, Write};
use serde_json::json;

use super::Result;
use super::services::{converge, lock_service_of, refresh_over_limit};

/// Records a new database of the account (its name gets the account's prefix when it lacks
/// it), within its plan's limit, and queues its creation.
pub async fn create_database(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    name: &str,
    kind: &str,
) -> Result<Database> {
    let kind = DatabaseType::parse(kind)?;
    let mut tx = store.write().await?;
    lock_service_of(store, &mut *tx, account).await?;
    let record = tx.account(account).await?;
    let name = DatabaseName::parse(name, &record.unix_username)?;
    let service = tx.service(record.service_id).await?;
    check_resources_change(service.status, &record.domain, "databases")?;
    let all = tx.databases(account).await?;
    if let Some(leaving) = all.iter().find(|d| d.name == name && d.deleting) {
        return Err(drover_core::Error::ResourceDeleting {
            what: "database",
            name: leaving.name.to_string(),
        }
        .into());
    }
    // A name taken is said before a limit reached (the write is not committed when refused).
    let database = tx.insert_database(account, &name, kind).await?;
    let plan = tx.plan(service.plan_id).await?;
    check_database_limit(&plan.spec, kind, all.iter().filter(|d| !d.deleting).count())?;
    let job = converge(&mut *tx, ctx, account).await?;
    let details = json!({ "database": name, "type": kind, "job_id": job.id });
    tx.audit(
        ctx,
        "database.create",
        format!("account:{account}"),
        details,
    )
    .await?;
    let what = ("database", name.as_str(), "created");
    super::resource_event(&mut *tx, ctx, account, what, job.id).await?;
    tx.commit().await?;
    Ok(database)
}

/// Deletes a database and its tables once `confirm` repeats its full name; the account's
/// converge removes it from the server, then drover forgets it.
pub async fn delete_database(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    name: &str,
    confirm: &Confirmation,
) -> Result<Database> {
    let mut tx = store.write().await?;
    lock_service_of(store, &mut *tx, account).await?;
    let record = tx.account(account).await?;
    let name = DatabaseName::parse(name, &record.unix_username)?;
    let service = tx.service(record.service_id).await?;
    check_resources_change(service.status, &record.domain, "databases")?;
    find(&mut *tx, account, &name).await?;
    confirm.check(|typed| name.confirm(typed))?;
    tx.mark_database_deleting(account, &name).await?;
    refresh_over_limit(&mut *tx, account).await?;
    let database = find(&mut *tx, account, &name).await?;
    let job = converge(&mut *tx, ctx, account).await?;
    let details = json!({ "database": name, "confirmed": confirm.as_str(), "job_id": job.id });
    tx.audit(
        ctx,
        "database.delete",
        format!("account:{account}"),
        details,
    )
    .await?;
    let what = ("database", name.as_str(), "deleted");
    super::resource_event(&mut *tx, ctx, account, what, job.id).await?;
    tx.commit().await?;
    Ok(database)
}

async fn find(tx: &mut dyn Write, account: AccountId, name: &DatabaseName) -> Result<Database> {
    tx.databases(account)
        .await?
        .into_iter()
        .find(|d| &d.name == name)
        .ok_or_else(|| {
            StoreError::NotFound {
                what: "database",
                id: format!("{name} of account {account}"),
            }
            .into()
        })
}
