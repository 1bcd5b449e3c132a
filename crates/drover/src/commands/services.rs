//! What billing sells: services and their lifecycle. Each change records the account's new
//! desired state and queues the job that makes its server follow, in one transaction.

use drover_core::{
    AccountId, AccountPassword, CustomerId, DatabaseType, DomainName, DomainWarning, JobId, PlanId,
    ResourceCounts, ServiceId, SuspendReason, Transition,
};
use drover_store::{
    Job, NewService, OtherDomainKind, RequestContext, Service, Store, TransitionOutcome, Write,
    jobs::ConvergeAccount, jobs::SetAccountPassword,
};
use serde::Serialize;
use serde_json::json;

use super::Result;
use crate::engine::seal::Sealer;

/// A new service, and what its domain may be mistaken for.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServiceCreated {
    #[serde(flatten)]
    pub service: Service,
    /// Things about the domain that are legal but may be a mistake.
    pub warnings: Vec<DomainWarning>,
}

/// Records a pending service for `domain` (Unicode or punycode) and its account, which gets the
/// first free unix user name derived from the domain. Nothing reaches a server until the
/// service is activated. A domain that can pass for another is refused when
/// `refuse_confusable`, and otherwise warned about.
pub async fn create_service(
    store: &dyn Store,
    ctx: &RequestContext,
    customer: CustomerId,
    plan: PlanId,
    domain: &str,
    refuse_confusable: bool,
) -> Result<ServiceCreated> {
    let domain = DomainName::parse(domain)?;
    if refuse_confusable {
        domain.refuse_confusable()?;
    }
    let warnings = domain.warnings();
    let mut tx = store.write().await?;
    let username = tx.free_username(&domain).await?;
    let new = NewService {
        customer_id: customer,
        plan_id: plan,
        domain,
    };
    let service = tx.insert_service(&new, &username).await?;
    tx.audit(
        ctx,
        "service.create",
        format!("service:{}", service.id),
        json!({
            "customer_id": customer,
            "plan_id": plan,
            "domain": new.domain,
            "account_id": service.account_id,
            "unix_username": username,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(ServiceCreated { service, warnings })
}

/// Moves the service through its lifecycle (core's state machine decides whether it may) and
/// queues the converge job that makes its account follow. A reason is kept with a suspension
/// only; it is checked whatever the move.
pub async fn transition_service(
    store: &dyn Store,
    ctx: &RequestContext,
    id: ServiceId,
    transition: Transition,
    reason: Option<&str>,
) -> Result<TransitionOutcome> {
    let reason = reason.map(SuspendReason::parse).transpose()?;
    let mut tx = store.write().await?;
    let service = tx.service(id).await?;
    let status = service.status.apply(transition)?;
    let desired = status.desired_account_state();
    let reason = status.kept_reason(reason);
    tx.update_service_status(id, service.status, status).await?;
    tx.update_account_desired(
        service.account_id,
        desired,
        reason.as_ref().map(SuspendReason::as_str),
    )
    .await?;
    let job = converge(&mut *tx, ctx, service.account_id).await?;
    tx.audit(
        ctx,
        &format!("service.{}", transition.verb()),
        format!("service:{id}"),
        json!({
            "from": service.status,
            "to": status,
            "account_id": service.account_id,
            "desired_state": desired,
            "reason": reason.as_ref().map(SuspendReason::as_str),
            "job_id": job.id,
        }),
    )
    .await?;
    outcome(tx, id, service.account_id, job).await
}

/// Puts the service on another plan; its account is converged to the plan's limits.
pub async fn change_plan(
    store: &dyn Store,
    ctx: &RequestContext,
    id: ServiceId,
    plan: PlanId,
    force: bool,
) -> Result<TransitionOutcome> {
    let mut tx = store.write().await?;
    let service = tx.service(id).await?;
    service.status.check_plan_change(id)?;
    // Every command locks a service's rows in one order: the service, the account, the plan.
    tx.account(service.account_id).await?;
    tx.update_service_plan(id, plan).await?;
    // What the account holds must fit the new plan; forced, nothing is deleted and the
    // account is flagged over its limits instead.
    let spec = tx.plan(plan).await?.spec;
    let overruns = spec.overruns(&resource_counts(&mut *tx, service.account_id).await?);
    if !overruns.is_empty() && !force {
        return Err(drover_core::Error::PlanTooSmall {
            plan: spec.name.to_string(),
            overruns: overruns.join("; "),
        }
        .into());
    }
    let over = (!overruns.is_empty()).then(|| overruns.join("; "));
    tx.set_over_limit(service.account_id, over.as_deref())
        .await?;
    let job = converge(&mut *tx, ctx, service.account_id).await?;
    let details = json!({
        "from": service.plan_id, "to": plan, "job_id": job.id, "forced": force,
        "over_limit": over,
    });
    tx.audit(ctx, "service.change_plan", format!("service:{id}"), details)
        .await?;
    outcome(tx, id, service.account_id, job).await
}

/// Locks the account's service row first, as every command that changes an account's
/// resources does (then the operator key, the account, the plan), so that none waits on
/// another in the opposite order.
pub(super) async fn lock_service_of(
    store: &dyn Store,
    tx: &mut dyn Write,
    account: AccountId,
) -> Result<()> {
    let record = store.account(account).await?;
    tx.service(record.service_id).await?;
    Ok(())
}

/// What the account holds, as its plan's limits count it (those being deleted left out).
pub(super) async fn resource_counts(
    tx: &mut dyn Write,
    account: AccountId,
) -> Result<ResourceCounts> {
    Ok(counted(
        &tx.mailboxes(account).await?,
        &tx.databases(account).await?,
        &tx.other_domains(account, OtherDomainKind::Alias).await?,
        &tx.other_domains(account, OtherDomainKind::Subserver)
            .await?,
    ))
}

/// The resources as a plan's limits count them: those being deleted left out.
pub(super) fn counted(
    mailboxes: &[drover_store::Mailbox],
    databases: &[drover_store::Database],
    aliases: &[drover_store::OtherDomain],
    subservers: &[drover_store::OtherDomain],
) -> ResourceCounts {
    let mailboxes = mailboxes.iter().filter(|m| !m.deleting);
    let databases = databases.iter().filter(|d| !d.deleting);
    let kept = |all: &[drover_store::OtherDomain]| all.iter().filter(|d| !d.deleting).count();
    ResourceCounts {
        mailboxes: mailboxes.clone().count(),
        mysql_databases: databases
            .clone()
            .filter(|d| d.kind == DatabaseType::Mysql)
            .count(),
        postgres_databases: databases
            .filter(|d| d.kind == DatabaseType::Postgres)
            .count(),
        aliases: kept(aliases),
        subservers: kept(subservers),
        largest_mailbox_quota_mb: mailboxes.filter_map(|m| m.quota_mb).max(),
    }
}

/// After a deletion, an account flagged over its limits loses the flag once it fits (or
/// keeps what is still over).
pub(super) async fn refresh_over_limit(tx: &mut dyn Write, account: AccountId) -> Result<()> {
    let record = tx.account(account).await?;
    if record.over_limit.is_none() {
        return Ok(());
    }
    let service = tx.service(record.service_id).await?;
    let spec = tx.plan(service.plan_id).await?.spec;
    let overruns = spec.overruns(&resource_counts(tx, account).await?);
    let over = (!overruns.is_empty()).then(|| overruns.join("; "));
    tx.set_over_limit(account, over.as_deref()).await?;
    Ok(())
}

/// Keeps a new password for the service's account, sealed with the operator key, and queues
/// the job that sets it on the server. The account's record becomes a new generation: a
/// password job already running, which this one joins, then runs again with it.
pub async fn change_password(
    store: &dyn Store,
    ctx: &RequestContext,
    sealer: &Sealer,
    id: ServiceId,
    password: secrecy::SecretString,
) -> Result<JobId> {
    let password = AccountPassword::parse(password)?;
    let sealed = sealer.seal(password.secret());
    let mut tx = store.write().await?;
    let service = tx.service(id).await?;
    // The key's row first, then the account's: a rotation locks them in this order too.
    tx.update_sealed_password(service.account_id, &sealed, sealer.id())
        .await?;
    let account = tx.account(service.account_id).await?;
    tx.next_generation(account.id).await?;
    let args = SetAccountPassword {
        account_id: account.id.get(),
    };
    let job = tx.enqueue(ctx, Job::SetPassword(args)).await?;
    tx.audit(
        ctx,
        "account.change_password",
        format!("account:{}", account.id),
        json!({ "domain": account.domain, "job_id": job.id }),
    )
    .await?;
    tx.commit().await?;
    Ok(job.id)
}

/// Makes the account's record a new generation and queues its converge job, or joins the one
/// already waiting (a job that ended without reaching the generation is never joined).
pub(super) async fn converge(
    tx: &mut dyn Write,
    ctx: &RequestContext,
    account: drover_core::AccountId,
) -> Result<drover_store::Enqueued> {
    let generation = tx.next_generation(account).await?;
    let args = ConvergeAccount {
        account_id: account.get(),
        after_job: generation.converge_ended_by,
    };
    Ok(tx.enqueue(ctx, Job::Converge(args)).await?)
}

async fn outcome(
    mut tx: Box<dyn Write>,
    id: ServiceId,
    account: drover_core::AccountId,
    job: drover_store::Enqueued,
) -> Result<TransitionOutcome> {
    let outcome = TransitionOutcome {
        service: tx.service(id).await?,
        account: tx.account(account).await?,
        job_id: job.id,
        joined_waiting_job: job.joined,
    };
    tx.commit().await?;
    Ok(outcome)
}
