//! Rebuilding a lost server onto a fresh one from drover's data alone: an integrity check
//! (every account has what recreation needs), a plan (accounts, order, calls, the backup each
//! account's content comes back from), then one failover move per account, carried out by
//! jobs (each restores the account's last good backup on an SSH host, then applies drover's
//! records on top).

use drover_core::{AccountId, BackupId, Recreated, ResourceCounts, ServerId, check_rebuild};
use drover_store::{OtherDomainKind, RequestContext, Server, Store};
use jiff::Timestamp;
use serde::Serialize;

use super::Result;
use super::services::counted;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RebuildStep {
    #[schema(value_type = i64)]
    pub account_id: AccountId,
    pub domain: String,
    pub plan: String,
    /// Virtualmin calls the step makes on the new server.
    pub calls: u32,
    /// The backup its content is restored from (its last good one, kept on an SSH host); none:
    /// the account is recreated empty.
    #[schema(value_type = Option<i64>)]
    pub restore_from: Option<BackupId>,
    /// How old that backup is, in seconds.
    pub backup_age_seconds: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RebuildPlan {
    pub lost: String,
    pub onto: String,
    /// In order: by account id, the order they were created.
    pub steps: Vec<RebuildStep>,
    pub calls: u32,
    /// At the new server's call rate.
    pub estimated_seconds: f64,
    /// What stops the rebuild: an account lacking what recreation needs.
    pub problems: Vec<String>,
    /// Accounts with no good backup on an SSH host: recreated empty.
    pub without_backup: Vec<String>,
    pub started: bool,
}

/// Checks and plans, and unless `dry_run` (or a problem was found) starts the moves.
pub async fn rebuild(
    store: &dyn Store,
    ctx: &RequestContext,
    lost: &Server,
    onto: ServerId,
    default_rate_qps: f64,
    dry_run: bool,
) -> Result<RebuildPlan> {
    let target = store.server(onto).await?;
    let accounts = crate::engine::accounts_on(store, lost.id).await?;
    let mut recreated = Vec::with_capacity(accounts.len());
    for a in &accounts {
        recreated.push(Recreated {
            account: a.id,
            domain: a.domain.to_string(),
            state: a.desired_state,
            has_sealed_password: a.has_sealed_password,
            resources: held_by(store, a.id).await?,
        });
    }
    let rate = target.spec.rate_qps.unwrap_or(default_rate_qps);
    let check = check_rebuild(lost.id, onto, &recreated, rate);
    let mut steps = Vec::with_capacity(check.steps.len());
    let mut without_backup = Vec::new();
    for (account, calls) in check.steps {
        let details = store.converge_target(account).await?;
        // The copy on the lost server is gone: only a backup on an SSH host can be restored.
        let backup = super::last_good_shared_backup(store, account).await?;
        if backup.is_none() {
            without_backup.push(details.account.domain.to_string());
        }
        steps.push(RebuildStep {
            account_id: account,
            domain: details.account.domain.to_string(),
            plan: details.plan.spec.name.to_string(),
            calls,
            restore_from: backup.as_ref().map(|b| b.id),
            backup_age_seconds: backup.as_ref().map(|b| {
                Timestamp::now()
                    .duration_since(b.finished_at.unwrap_or(b.started_at))
                    .as_secs()
            }),
        });
    }
    let mut plan = RebuildPlan {
        lost: lost.spec.name.to_string(),
        onto: target.spec.name.to_string(),
        steps,
        calls: check.calls,
        estimated_seconds: check.estimated_seconds,
        problems: check.problems,
        without_backup,
        started: false,
    };
    if dry_run || !plan.problems.is_empty() {
        return Ok(plan);
    }
    store
        .audit(
            ctx,
            "server.rebuild",
            format!("server:{}", lost.id),
            serde_json::json!({ "onto": onto, "accounts": plan.steps.len(), "calls": plan.calls }),
        )
        .await?;
    for step in &plan.steps {
        // A rebuild started again leaves the moves under way to their jobs.
        if store
            .migration(step.account_id)
            .await?
            .is_some_and(|m| m.state.under_way())
        {
            continue;
        }
        super::start_failover(store, ctx, step.account_id, onto).await?;
    }
    plan.started = true;
    Ok(plan)
}

/// What the account holds that a rebuild recreates (those being deleted left out).
async fn held_by(store: &dyn Store, account: AccountId) -> Result<ResourceCounts> {
    Ok(counted(
        &store.mailboxes(account).await?,
        &store.databases(account).await?,
        &store.other_domains(account, OtherDomainKind::Alias).await?,
        &store
            .other_domains(account, OtherDomainKind::Subserver)
            .await?,
    ))
}
