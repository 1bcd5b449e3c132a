//! Hosting accounts: their protection from deletion, and another try for those that failed.

use drover_core::{AccountId, JobId};
use drover_store::{Account, RequestContext, Store};
use serde_json::json;

use super::Result;

/// Protects the account from deletion, or lifts its protection, once `confirmation` repeats its
/// domain. Lifting it converges the account again: a deletion held back by the protection goes
/// ahead.
pub async fn set_protection(
    store: &dyn Store,
    ctx: &RequestContext,
    id: AccountId,
    protected: bool,
    confirmation: &str,
) -> Result<Account> {
    let mut tx = store.write().await?;
    let account = tx.account(id).await?;
    account.domain.confirm(confirmation, || {
        format!("change the protection of account {id}")
    })?;
    tx.update_account_protection(id, protected).await?;
    let action = if protected {
        "account.protect"
    } else {
        super::services::converge(&mut *tx, ctx, id).await?;
        "account.unprotect"
    };
    tx.audit(
        ctx,
        action,
        format!("account:{id}"),
        json!({ "domain": account.domain }),
    )
    .await?;
    let account = tx.account(id).await?;
    tx.commit().await?;
    Ok(account)
}

/// Queues a converge for every failed account another try may fix (core's
/// [`drover_core::DesiredState::retry_may_fix`]), each a new generation.
pub async fn retry_failed_accounts(store: &dyn Store, ctx: &RequestContext) -> Result<Vec<JobId>> {
    let mut tx = store.write().await?;
    let mut jobs = Vec::new();
    for account in tx.failed_accounts().await? {
        if account
            .desired_state
            .retry_may_fix(account.protected_from_deletion)
        {
            jobs.push(
                super::services::converge(&mut *tx, ctx, account.id)
                    .await?
                    .id,
            );
        }
    }
    tx.commit().await?;
    Ok(jobs)
}
