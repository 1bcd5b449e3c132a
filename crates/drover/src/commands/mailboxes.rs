//! An account's mailboxes: recorded first, then made to exist on the account's server by its
//! converge job, queued with each change (one listing of the account's mailboxes, then one
//! call per difference).

use drover_core::{
    AccountId, AccountPassword, Confirmation, MailboxName, check_mailbox_change,
    check_mailbox_limit, check_resources_change, mailbox_quota, real_name,
};
use drover_store::{Mailbox, RequestContext, Store, StoreError, Write};
use secrecy::SecretString;
use serde_json::json;

use super::Result;
use super::services::{converge, lock_service_of, refresh_over_limit};
use crate::engine::seal::Sealer;

/// Records a new mailbox of the account, within its plan's limits (how many, and each one's
/// quota: its own `quota_mb`, else the plan's), and queues its creation.
#[allow(clippy::too_many_arguments)]
pub async fn create_mailbox(
    store: &dyn Store,
    ctx: &RequestContext,
    sealer: &Sealer,
    account: AccountId,
    name: &str,
    real: &str,
    password: SecretString,
    quota_mb: Option<u64>,
) -> Result<Mailbox> {
    let name = MailboxName::parse(name)?;
    let real = real_name(real)?;
    let password = AccountPassword::parse(password)?;
    let sealed = sealer.seal(password.secret());
    let mut tx = store.write().await?;
    lock_service_of(store, &mut *tx, account).await?;
    // The key's row before the account's, as a rotation locks them: the insert checks the key.
    let mailbox = match tx
        .insert_mailbox(account, &name, real, &sealed, sealer.id())
        .await
    {
        Ok(mailbox) => mailbox,
        Err(taken @ StoreError::Duplicate { .. }) => {
            drop(tx);
            let all = store.mailboxes(account).await?;
            if all.iter().any(|m| m.name == name && m.deleting) {
                return Err(drover_core::Error::ResourceDeleting {
                    what: "mailbox",
                    name: name.to_string(),
                }
                .into());
            }
            return Err(taken.into());
        }
        Err(e) => return Err(e.into()),
    };
    let record = tx.account(account).await?;
    let service = tx.service(record.service_id).await?;
    check_resources_change(service.status, &record.domain, "mailboxes")?;
    let plan = tx.plan(service.plan_id).await?;
    let others = kept(&mut *tx, account).await? - 1;
    check_mailbox_limit(&plan.spec, others)?;
    mailbox_quota(&plan.spec, quota_mb)?;
    let mailbox = match quota_mb {
        Some(_) => {
            tx.set_mailbox_quota(account, &name, quota_mb).await?;
            find(&mut *tx, account, &name).await?
        }
        None => mailbox,
    };
    let job = converge(&mut *tx, ctx, account).await?;
    let details = json!({
        "mailbox": name, "real_name": real, "quota_mb": quota_mb, "job_id": job.id
    });
    tx.audit(ctx, "mailbox.create", format!("account:{account}"), details)
        .await?;
    let what = ("mailbox", name.as_str(), "created");
    super::resource_event(&mut *tx, ctx, account, what, job.id).await?;
    tx.commit().await?;
    Ok(mailbox)
}

/// Changes a mailbox's real name, its password, its quota (`Some(None)`: back to its plan's),
/// and queues the change.
#[allow(clippy::too_many_arguments)]
pub async fn update_mailbox(
    store: &dyn Store,
    ctx: &RequestContext,
    sealer: &Sealer,
    account: AccountId,
    name: &str,
    real: Option<&str>,
    password: Option<SecretString>,
    quota_mb: Option<Option<u64>>,
) -> Result<Mailbox> {
    let name = MailboxName::parse(name)?;
    let real = real.map(real_name).transpose()?;
    let password = password.map(AccountPassword::parse).transpose()?;
    check_mailbox_change(real.is_some(), password.is_some(), quota_mb.is_some())?;
    let mut tx = store.write().await?;
    lock_service_of(store, &mut *tx, account).await?;
    // The key's row, then the account's, then the mailbox's (as a rotation locks them).
    if let Some(password) = &password {
        let sealed = sealer.seal(password.secret());
        tx.update_mailbox_password(account, &name, &sealed, sealer.id())
            .await?;
    }
    check_open(&mut *tx, account).await?;
    if find(&mut *tx, account, &name).await?.deleting {
        return Err(drover_core::Error::ResourceDeleting {
            what: "mailbox",
            name: name.to_string(),
        }
        .into());
    }
    if let Some(real) = real {
        tx.update_mailbox_real_name(account, &name, real).await?;
    }
    if let Some(quota_mb) = quota_mb {
        let record = tx.account(account).await?;
        let service = tx.service(record.service_id).await?;
        let plan = tx.plan(service.plan_id).await?;
        mailbox_quota(&plan.spec, quota_mb)?;
        tx.set_mailbox_quota(account, &name, quota_mb).await?;
    }
    let mailbox = find(&mut *tx, account, &name).await?;
    let job = converge(&mut *tx, ctx, account).await?;
    let details = json!({
        "mailbox": name,
        "real_name": real,
        "password": password.is_some(),
        "quota_mb": quota_mb,
        "job_id": job.id,
    });
    tx.audit(ctx, "mailbox.update", format!("account:{account}"), details)
        .await?;
    tx.commit().await?;
    Ok(mailbox)
}

/// Deletes a mailbox and its mail once `confirm` repeats its name; the account's converge
/// removes it from the server, then drover forgets it.
pub async fn delete_mailbox(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    name: &str,
    confirm: &Confirmation,
) -> Result<Mailbox> {
    let name = MailboxName::parse(name)?;
    let mut tx = store.write().await?;
    lock_service_of(store, &mut *tx, account).await?;
    check_open(&mut *tx, account).await?;
    find(&mut *tx, account, &name).await?;
    confirm.check(|typed| name.confirm(typed))?;
    tx.mark_mailbox_deleting(account, &name).await?;
    refresh_over_limit(&mut *tx, account).await?;
    let mailbox = find(&mut *tx, account, &name).await?;
    let job = converge(&mut *tx, ctx, account).await?;
    let details = json!({ "mailbox": name, "confirmed": confirm.as_str(), "job_id": job.id });
    tx.audit(ctx, "mailbox.delete", format!("account:{account}"), details)
        .await?;
    let what = ("mailbox", name.as_str(), "deleted");
    super::resource_event(&mut *tx, ctx, account, what, job.id).await?;
    tx.commit().await?;
    Ok(mailbox)
}

/// Refuses a change to a terminated service's mailboxes.
async fn check_open(tx: &mut dyn Write, account: AccountId) -> Result<()> {
    let record = tx.account(account).await?;
    let service = tx.service(record.service_id).await?;
    Ok(check_resources_change(
        service.status,
        &record.domain,
        "mailboxes",
    )?)
}

/// How many of the account's mailboxes stay (those being deleted do not count).
async fn kept(tx: &mut dyn Write, account: AccountId) -> Result<usize> {
    let all = tx.mailboxes(account).await?;
    Ok(all.iter().filter(|m| !m.deleting).count())
}

async fn find(tx: &mut dyn Write, account: AccountId, name: &MailboxName) -> Result<Mailbox> {
    tx.mailboxes(account)
        .await?
        .into_iter()
        .find(|m| &m.name == name)
        .ok_or_else(|| {
            drover_store::StoreError::NotFound {
                what: "mailbox",
                id: format!("{name} of account {account}"),
            }
            .into()
        })
}
