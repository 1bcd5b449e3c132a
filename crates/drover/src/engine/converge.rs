//! The converge job: observe the account's domain on its server with one call, decide with
//! `drover_core::converge`, apply the smallest set of calls, record what was seen. A change to
//! the account made while the job runs is picked up before it finishes.

use std::sync::Arc;
use std::time::Duration;

use drover_core::{
    AccountId, Action, Blocked, DesiredState, Feature, JobId, MoveStep, Observed, Wanted, converge,
};
use drover_store::{ConvergeTarget, JobCall, RequestContext};
use drover_virtualmin::{
    CallScope, ErrorKind, NewDomain, Placement, ServerPlan, VirtualminClient, VirtualminError,
    in_scope,
};
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use super::Engine;
use super::seal::new_password;

/// How long a job waits when nothing can be done yet (no server fits, provisioning is off).
const WAIT: Duration = Duration::from_secs(30);
/// Rounds of re-reading the record before leaving further changes to a follow-up job.
const MAX_ROUNDS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    #[error(transparent)]
    Store(#[from] drover_store::StoreError),
    #[error("virtualmin: {0}")]
    Virtualmin(#[from] VirtualminError),
    #[error(transparent)]
    Dns(#[from] super::dns::DnsWorkError),
    /// The server reported success but still does not show the change: tried again later,
    /// and the account is marked failed if it never does.
    #[error("the server does not show what was applied: {0}")]
    NotApplied(String),
}

/// What a round ended with.
enum Round {
    /// The server matches the record of this generation.
    Done {
        generation: i64,
        actions: Vec<Action>,
    },
    /// Nothing can be done now; try later.
    Wait(String),
    /// A person must act; retrying cannot help.
    Refused(String),
}

pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::ConvergeAccount>,
) -> Result<WorkOutcome, ConvergeError> {
    let account = AccountId(job.args.account_id);
    let engine = &*engine;
    run_for_account(
        engine,
        &context,
        &job.row,
        account,
        Finish::AtLatestGeneration,
        |ctx| async move { rounds(engine, &ctx, account).await },
    )
    .await
}

/// `set_account_password`: sets the sealed password on the account's server.
pub async fn set_password(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::SetAccountPassword>,
) -> Result<WorkOutcome, ConvergeError> {
    let account = AccountId(job.args.account_id);
    let engine = &*engine;
    run_for_account(
        engine,
        &context,
        &job.row,
        account,
        Finish::Always,
        |_| async move {
            let target = engine.store.converge_target(account).await?;
            let generation = target.account.desired_generation;
            let (Some(server), Some(sealed)) = (&target.server, &target.sealed_password) else {
                // Not on a server yet: the create will use the new password.
                return Ok(Round::Done {
                    generation,
                    actions: Vec::new(),
                });
            };
            if target.account.desired_state == DesiredState::Absent {
                return Ok(Round::Done {
                    generation,
                    actions: Vec::new(),
                });
            }
            let client = match engine.fleet.client(server) {
                Ok(client) => client,
                Err(e) => return Ok(Round::Refused(e.to_string())),
            };
            let password = match engine.sealer.open(sealed) {
                Ok(password) => password,
                Err(e) => return Ok(Round::Refused(e.to_string())),
            };
            let change = drover_virtualmin::DomainChange {
                password: Some(password),
                ..Default::default()
            };
            client
                .modify_domain(target.account.domain.as_str(), &change)
                .await?;
            Ok(Round::Done {
                generation,
                actions: Vec::new(),
            })
        },
    )
    .await
}

/// `migrate_account`: one account moved to another server, a step per state of its
/// migration: created on the target (with the sealed password), then the account and its DNS
/// switched to the target, then the source copy disabled, then deleted once an operator
/// confirms or the grace period ends (a later run is scheduled to look again).
pub async fn migrate(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::MigrateAccount>,
) -> Result<WorkOutcome, ConvergeError> {
    let account = AccountId(job.args.account_id);
    let engine = &*engine;
    run_for_account(
        engine,
        &context,
        &job.row,
        account,
        Finish::Always,
        |ctx| async move { migrate_steps(engine, &ctx, account).await },
    )
    .await
}

/// The last failover move off a lost server is done: the time since the server was found
/// unavailable is its time to recovery, audited and exported.
async fn record_recovery(
    engine: &Engine,
    ctx: &RequestContext,
    lost: &drover_store::Server,
) -> Result<(), ConvergeError> {
    let seconds = jiff::Timestamp::now()
        .duration_since(lost.updated_at)
        .as_secs_f64();
    metrics::gauge!("failover_recovery_seconds", "server" => lost.spec.name.to_string())
        .set(seconds);
    tracing::warn!(server = %lost.spec.name, seconds, "failover complete");
    engine
        .store
        .audit(
            ctx,
            "server.failover_complete",
            format!("server:{}", lost.id),
            json!({ "seconds_since_unavailable": seconds }),
        )
        .await?;
    Ok(())
}

/// Takes a move through its steps (see [`drover_core::MoveState`]) as far as it can go now.
async fn migrate_steps(
    engine: &Engine,
    ctx: &RequestContext,
    account: AccountId,
) -> Result<Round, ConvergeError> {
    let Some(mut migration) = engine.store.migration(account).await? else {
        return Ok(Round::Refused(format!(
            "account {account} is not being moved"
        )));
    };
    let target = engine.store.converge_target(account).await?;
    let domain = target.account.domain.as_str();
    let to = engine.store.server(migration.to_server).await?;
    let from = engine.store.server(migration.from_server).await?;
    let client_for =
        |server: &drover_store::Server| engine.fleet.client(server).map_err(|e| e.to_string());
    let mut actions = Vec::new();
    loop {
        let step = migration.state.next_step(
            migration.failover,
            migration.confirmed,
            migration.delete_after,
            jiff::Timestamp::now(),
        );
        match step {
            MoveStep::CreateOnTarget => {
                let client = match client_for(&to) {
                    Ok(client) => client,
                    Err(e) => return Ok(Round::Refused(e)),
                };
                match observe(&client, domain).await? {
                    None => {
                        apply(engine, ctx, &client, &target, &Action::Create).await?;
                        actions.push(Action::Create);
                    }
                    Some(seen)
                        if seen.unix_user.as_deref()
                            != Some(target.account.unix_username.as_str()) =>
                    {
                        return Ok(Round::Refused(format!(
                            "{domain} exists on {} and is not drover's account (its unix user differs)",
                            to.spec.name
                        )));
                    }
                    Some(_) => {}
                }
                if target.account.desired_state == DesiredState::Disabled {
                    let reason = target.account.suspend_reason.clone();
                    apply(engine, ctx, &client, &target, &Action::Disable { reason }).await?;
                }
                // Traffic follows the account: its zone points at the target's addresses.
                engine
                    .dns
                    .move_account_zone(ctx, account, &from, &to)
                    .await?;
            }
            MoveStep::EndFailover => {}
            MoveStep::DisableSource => {
                let client = match client_for(&from) {
                    Ok(client) => client,
                    Err(e) => return Ok(Round::Refused(e)),
                };
                let reason = format!("drover: moved to {}", to.spec.name);
                match client.disable_domain(domain, Some(&reason)).await {
                    Ok(()) => {}
                    Err(e) if e.kind == ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            MoveStep::DeleteSource => {
                let client = match client_for(&from) {
                    Ok(client) => client,
                    Err(e) => return Ok(Round::Refused(e)),
                };
                match client.delete_domain(domain).await {
                    Ok(()) => {}
                    Err(e) if e.kind == ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            MoveStep::WaitUntil(next) => {
                engine.store.schedule_migration(ctx, account, next).await?;
            }
            MoveStep::Nothing => {}
        }
        let Some(next) = step.leads_to() else {
            break;
        };
        migration = engine.store.advance_migration(ctx, account, next).await?;
        if step == MoveStep::EndFailover && engine.store.failovers_remaining(from.id).await? == 0 {
            record_recovery(engine, ctx, &from).await?;
        }
    }
    Ok(Round::Done {
        generation: target.account.desired_generation,
        actions,
    })
}

/// How a job that did its work finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    /// It brought the account to a generation: it finishes only if that is still the latest,
    /// since a change made meanwhile may have joined it (converge jobs are unique per account).
    AtLatestGeneration,
    /// Its work stands on its own (a move, a password): it finishes.
    Always,
}

/// Runs a job's work on one account with its calls recorded and correlated, and turns how it
/// ended into River's outcome: done, wait (snooze), refused (discard, audited) or retry. Each
/// attempt's ending is kept; an account whose job gives up (refused, or out of retries) is
/// marked failed with the reason until a later job succeeds.
async fn run_for_account<F, Fut>(
    engine: &Engine,
    context: &WorkContext,
    row: &riverqueue::JobRow,
    account: AccountId,
    finish: Finish,
    work: F,
) -> Result<WorkOutcome, ConvergeError>
where
    F: FnOnce(RequestContext) -> Fut,
    Fut: Future<Output = Result<Round, ConvergeError>>,
{
    let job_id = JobId(row.id);
    let started_at = jiff::Timestamp::now();
    let correlation_id = engine
        .store
        .job(job_id)
        .await?
        .correlation_id
        .unwrap_or_else(|| format!("job-{job_id}"));
    let ctx = RequestContext {
        actor: format!("job:{job_id}"),
        correlation_id: correlation_id.clone(),
    };
    // The per-account guard: one job at a time works an account, whatever its kind.
    let timeout_ms = i64::try_from(engine.job_timeout.as_millis()).unwrap_or(i64::MAX);
    let until =
        jiff::Timestamp::from_millisecond(jiff::Timestamp::now().as_millisecond() + timeout_ms)
            .unwrap_or_else(|_| jiff::Timestamp::now());
    if !engine.store.lease_account(account, job_id, until).await? {
        let _ =
            context.record_output(json!({ "waiting": "another job is working on this account" }));
        return Ok(WorkOutcome::Snooze(Duration::from_secs(2)));
    }
    // What the work will read at the earliest: a job that gives up checks nothing changed
    // since, or runs again (a change made meanwhile may have joined it).
    let read_generation = engine.store.account(account).await?.desired_generation;
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let scope = CallScope {
        correlation_id,
        log: Some(Arc::clone(&log)),
    };
    let outcome = in_scope(scope, work(ctx.clone())).await;
    // The lease is held until this attempt's ending is recorded: a job that starts after it
    // finds this one's failure mark (and clears it), never the other way round.
    let ended = async {
        // Keep every call made, whatever the outcome.
        let calls = std::mem::take(
            &mut *log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for call in calls {
            let record = JobCall {
                seq: 0,
                server: call.server,
                call: call.call,
                outcome: call.outcome,
                message: call.message,
                duration_ms: i64::try_from(call.duration.as_millis()).unwrap_or(i64::MAX),
                at: jiff::Timestamp::try_from(call.started_at)
                    .and_then(|t| t.round(jiff::Unit::Microsecond))
                    .unwrap_or(started_at),
            };
            engine.store.record_job_call(job_id, &record).await?;
        }
        let subject = format!("account:{account}");
        let last_try = row.attempt >= row.max_attempts;
        let (ended, why) = decide(
            engine,
            &ctx,
            context,
            job_id,
            account,
            finish,
            read_generation,
            outcome,
            &subject,
        )
        .await?;
        let (ended, why) = match ended {
            // Out of retries: River discards the job, unless a change joined it meanwhile.
            Err(e) if last_try && finish == Finish::AtLatestGeneration => {
                if engine
                    .store
                    .end_converge(account, read_generation, job_id)
                    .await?
                {
                    let reason = format!("gave up after {} attempts: {e}", row.attempt);
                    engine
                        .store
                        .mark_account_failed(&ctx, account, &reason)
                        .await?;
                    (Err(e), why)
                } else {
                    (
                        Ok(WorkOutcome::Snooze(Duration::ZERO)),
                        Some(format!(
                            "the account changed meanwhile: running again ({e})"
                        )),
                    )
                }
            }
            other => (other, why),
        };
        let (outcome, message) = match &ended {
            Ok(WorkOutcome::Complete) => ("completed", why),
            Ok(WorkOutcome::Snooze(_)) => ("snoozed", why),
            Ok(WorkOutcome::Discard) => ("discarded", why),
            Ok(_) => ("ended", why),
            Err(e) if last_try => ("discarded", Some(e.to_string())),
            Err(e) => ("retried", Some(e.to_string())),
        };
        // A job that waits is woken every half minute: only a change of why it waits is kept.
        let repeated_wait = outcome == "snoozed"
            && engine
                .store
                .job_attempts(job_id)
                .await?
                .last()
                .is_some_and(|a| a.outcome == outcome && a.message == message);
        if !repeated_wait {
            let micros = |t: jiff::Timestamp| t.round(jiff::Unit::Microsecond).unwrap_or(t);
            engine
                .store
                .record_job_attempt(&drover_store::JobAttempt {
                    job_id,
                    attempt: i64::from(row.attempt),
                    outcome: outcome.to_owned(),
                    message,
                    started_at: micros(started_at),
                    finished_at: micros(jiff::Timestamp::now()),
                })
                .await?;
        }
        ended
    }
    .await;
    engine.store.release_account(account, job_id).await?;
    ended
}

/// How a job's work ended, as River's outcome, and why when it did not complete.
#[allow(clippy::too_many_arguments)]
async fn decide(
    engine: &Engine,
    ctx: &RequestContext,
    context: &WorkContext,
    job_id: JobId,
    account: AccountId,
    finish: Finish,
    read_generation: i64,
    outcome: Result<Round, ConvergeError>,
    subject: &str,
) -> Result<(Result<WorkOutcome, ConvergeError>, Option<String>), ConvergeError> {
    let outcome = match outcome {
        // The server refused drover's login: nothing can be done until its credentials are
        // fixed, and trying again would only lengthen a lock-out. The job waits (the server
        // is not called meanwhile) and carries on once they are.
        Err(ConvergeError::Virtualmin(e))
            if matches!(e.kind, ErrorKind::Auth | ErrorKind::LockedOut) =>
        {
            Ok(Round::Wait(format!(
                "the server refused drover's login: {e}"
            )))
        }
        other => other,
    };
    let refused = match outcome {
        Ok(Round::Refused(ref reason)) => Some(reason.clone()),
        Err(ConvergeError::Virtualmin(ref e))
            if !e.kind.is_retryable() && e.kind != ErrorKind::Protocol =>
        {
            Some(format!("the server refused: {e}"))
        }
        _ => None,
    };
    if let Some(reason) = refused {
        if finish == Finish::AtLatestGeneration
            && !engine
                .store
                .end_converge(account, read_generation, job_id)
                .await?
        {
            // A change that joined this job may lift the refusal (an unprotect, say).
            return Ok((
                Ok(WorkOutcome::Snooze(Duration::ZERO)),
                Some(format!(
                    "the account changed meanwhile: running again ({reason})"
                )),
            ));
        }
        tracing::warn!(%account, %reason, "job refused");
        let _ = context.record_output(json!({ "discarded": reason }));
        engine
            .store
            .audit(
                ctx,
                "account.job_refused",
                subject.to_owned(),
                json!({ "job_id": job_id, "reason": reason }),
            )
            .await?;
        // The account's own converge gave up: it does not match its record. (A move or a
        // password job that is refused says so in its own record.)
        if finish == Finish::AtLatestGeneration {
            engine
                .store
                .mark_account_failed(ctx, account, &reason)
                .await?;
        }
        return Ok((Ok(WorkOutcome::Discard), Some(reason)));
    }
    Ok(match outcome {
        Ok(Round::Done {
            generation,
            actions,
        }) => {
            engine
                .store
                .audit(
                    ctx,
                    "account.converged",
                    subject.to_owned(),
                    json!({ "job_id": job_id, "generation": generation, "actions": actions }),
                )
                .await?;
            // This attempt's own output, not an earlier one's.
            let _ = context.record_output(json!({ "actions": actions }));
            if finish == Finish::Always
                || engine
                    .store
                    .complete_converge(account, generation, context)
                    .await?
            {
                (Ok(WorkOutcome::Complete), None)
            } else {
                // A change that arrived after the last round's check joined this job: run again.
                (
                    Ok(WorkOutcome::Snooze(Duration::ZERO)),
                    Some("the account changed meanwhile: running again".into()),
                )
            }
        }
        Ok(Round::Wait(reason)) => {
            tracing::info!(%account, %reason, "job waits");
            let _ = context.record_output(json!({ "waiting": reason }));
            (Ok(WorkOutcome::Snooze(WAIT)), Some(reason))
        }
        Ok(Round::Refused(reason)) => (Ok(WorkOutcome::Discard), Some(reason)),
        // Transient trouble: River retries with backoff.
        Err(e) => (Err(e), None),
    })
}

async fn rounds(
    engine: &Engine,
    ctx: &RequestContext,
    account: AccountId,
) -> Result<Round, ConvergeError> {
    let mut all_actions = Vec::new();
    let mut last_actions = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let target = engine.store.converge_target(account).await?;
        let generation = target.account.desired_generation;
        match round(engine, ctx, &target).await? {
            Round::Done { actions, .. } => {
                all_actions.extend(actions.iter().cloned());
                last_actions = actions;
            }
            other => return Ok(other),
        }
        // A change that arrived while this round ran is applied by the next one; a round
        // that changed the server is followed by one that looks again, since a server can
        // report success and leave part of it undone (a feature it dropped).
        let now = engine.store.converge_target(account).await?;
        if now.account.desired_generation == generation && last_actions.is_empty() {
            return Ok(Round::Done {
                generation,
                actions: all_actions,
            });
        }
    }
    if last_actions.is_empty() {
        Ok(Round::Wait(
            "the account kept changing while it was converged; trying again".into(),
        ))
    } else {
        Err(ConvergeError::NotApplied(
            serde_json::to_string(&last_actions).unwrap_or_default(),
        ))
    }
}

async fn round(
    engine: &Engine,
    ctx: &RequestContext,
    target: &ConvergeTarget,
) -> Result<Round, ConvergeError> {
    let account = &target.account;
    if !engine.auto_provisioning {
        return Ok(Round::Wait(
            "automatic provisioning is switched off (VIRTUALMIN_AUTO_PROVISIONING_ENABLED=false)"
                .into(),
        ));
    }
    let server = match (&target.server, account.desired_state) {
        (Some(server), _) => server.clone(),
        (None, DesiredState::Absent) => {
            // Never placed: nothing exists anywhere.
            engine
                .store
                .record_observation(account.id, "absent", account.desired_generation)
                .await?;
            return Ok(Round::Done {
                generation: account.desired_generation,
                actions: Vec::new(),
            });
        }
        (None, _) => {
            let placed = engine
                .store
                .place_account(
                    ctx,
                    account.id,
                    &target.plan.spec.required_tags,
                    &engine.placement,
                )
                .await?;
            match placed {
                Ok(server) => server,
                Err(reason) => return Ok(Round::Wait(reason)),
            }
        }
    };
    if matches!(
        server.state,
        drover_core::ServerState::Maintenance | drover_core::ServerState::Decommissioned
    ) {
        return Ok(Round::Wait(format!(
            "server {} is in {}",
            server.spec.name, server.state
        )));
    }
    let client = match engine.fleet.client(&server) {
        Ok(client) => client,
        Err(e) if e.login_refused => return Ok(Round::Wait(e.to_string())),
        Err(e) => return Ok(Round::Refused(e.to_string())),
    };
    let wanted = Wanted {
        domain: account.domain.clone(),
        unix_user: account.unix_username.clone(),
        state: account.desired_state,
        plan: target.plan.spec.name.to_string(),
        suspend_reason: account.suspend_reason.clone(),
        protected: account.protected_from_deletion,
        features: target.plan.spec.server_features(),
    };
    let observed = observe(&client, account.domain.as_str()).await?;
    let actions = match converge(&wanted, observed.as_ref()) {
        Ok(actions) => actions,
        Err(blocked @ (Blocked::NotOurs { .. } | Blocked::Protected { .. })) => {
            return Ok(Round::Refused(blocked.to_string()));
        }
    };
    for action in &actions {
        apply(engine, ctx, &client, target, action).await?;
    }
    if !actions.is_empty() {
        // Recorded only once a look at the server shows it matches (the next round).
        return Ok(Round::Done {
            generation: account.desired_generation,
            actions,
        });
    }
    // The account's DNS follows where it lives: a zone once it exists on its server, removed
    // (or kept, as configured) once it is deleted.
    match account.desired_state {
        DesiredState::Absent => engine.dns.retire_account_zone(ctx, account.id).await?,
        _ => {
            engine
                .dns
                .ensure_account_zone(ctx, account, &server)
                .await?
        }
    }
    let state = match account.desired_state {
        DesiredState::Enabled => "enabled",
        DesiredState::Disabled => "disabled",
        DesiredState::Absent => "absent",
    };
    engine
        .store
        .record_observation(account.id, state, account.desired_generation)
        .await?;
    Ok(Round::Done {
        generation: account.desired_generation,
        actions,
    })
}

/// The domain as the server has it: one `list-domains` call.
async fn observe(
    client: &VirtualminClient,
    domain: &str,
) -> Result<Option<Observed>, VirtualminError> {
    Ok(client.get_domain(domain).await?.map(|d| Observed {
        unix_user: d.unix_user.clone(),
        disabled: d.is_disabled(),
        plan: d.plan.clone(),
        features: known_features(&d.features),
    }))
}

/// A plan missing on the server since the client checked it (removed by hand): the check is
/// forgotten and the call tried again, which puts the plan back first.
fn plan_gone(client: &VirtualminClient, error: VirtualminError) -> VirtualminError {
    let plan_missing = error.kind == ErrorKind::NotFound
        && (error.message.contains("plan") || error.message.contains("Plan"));
    if !plan_missing {
        return error;
    }
    client.forget_plans();
    VirtualminError::new(
        ErrorKind::Transient,
        format!("{} (the plan is put on the server again)", error.message),
    )
}

/// The features drover knows among those a server lists (plugins and the like are skipped).
pub(crate) fn known_features(listed: &[String]) -> Vec<Feature> {
    listed
        .iter()
        .filter_map(|f| Feature::parse(f).ok())
        .collect()
}

/// The plan as drover puts it on its servers: its limits in Virtualmin's units and the
/// features its accounts are created with.
pub(crate) fn server_plan(plan: &drover_core::PlanSpec) -> ServerPlan {
    const MIB: u64 = 1024 * 1024;
    ServerPlan {
        name: plan.name.to_string(),
        quota_blocks: plan.disk_quota_mb.map(|mb| mb * 1024),
        max_mailboxes: plan.max_mailboxes.map(u64::from),
        max_databases: plan.max_databases.map(u64::from),
        max_domains: plan.max_subservers.map(u64::from),
        max_bandwidth_bytes: plan.bandwidth_mb.map(|mb| mb * MIB),
        features: plan
            .server_features()
            .iter()
            .map(ToString::to_string)
            .collect(),
    }
}

/// How many unix user names a create tries when the server keeps names for itself.
const USERNAME_TRIES: usize = 5;

async fn apply(
    engine: &Engine,
    ctx: &RequestContext,
    client: &VirtualminClient,
    target: &ConvergeTarget,
    action: &Action,
) -> Result<(), ConvergeError> {
    let account = &target.account;
    let domain = account.domain.as_str();
    match action {
        Action::Create => {
            // The password is kept sealed before the domain exists, so a rebuild can recreate it.
            let password = match &target.sealed_password {
                Some(sealed) => engine.sealer.open(sealed).map_err(|e| {
                    VirtualminError::new(ErrorKind::Invalid, format!("account {}: {e}", account.id))
                })?,
                None => {
                    let password = new_password();
                    engine
                        .store
                        .store_sealed_password(account.id, &engine.sealer.seal(&password))
                        .await?;
                    password
                }
            };
            let plan = &target.plan.spec;
            // The account is created from the plan's limits: the server must have the plan as
            // drover defines it.
            client.ensure_plan(&server_plan(plan)).await?;
            let mut new = NewDomain {
                domain: domain.to_owned(),
                password,
                unix_user: Some(account.unix_username.to_string()),
                plan: Some(plan.name.to_string()),
                template: plan.template.as_ref().map(ToString::to_string),
                features: plan
                    .server_features()
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                description: Some(format!("drover account {}", account.id)),
                placement: Placement::TopLevel,
                skip_warnings: false,
            };
            let mut username = account.unix_username.clone();
            for tried in 1..=USERNAME_TRIES {
                match client.create_domain(&new).await {
                    Ok(_) => return Ok(()),
                    // Created by an earlier try whose answer was lost: the next round looks
                    // again and checks it is ours.
                    Err(e)
                        if e.kind == ErrorKind::AlreadyExists
                            && e.message.contains("already hosting this domain") =>
                    {
                        return Ok(());
                    }
                    // The server keeps that name for itself. Nothing was created, and an
                    // account that exists nowhere else may take another name; a moving one
                    // keeps its name (its source server has it).
                    Err(e)
                        if e.username_taken()
                            && tried < USERNAME_TRIES
                            && engine
                                .store
                                .migration(account.id)
                                .await?
                                .is_none_or(|m| !m.state.under_way()) =>
                    {
                        // An earlier create whose answer was lost may have made the user: if
                        // the domain is there now, the next round checks it is ours.
                        if observe(client, domain).await?.is_some() {
                            return Ok(());
                        }
                        username = engine
                            .store
                            .reassign_username(ctx, account.id, &username)
                            .await?;
                        tracing::info!(%domain, %username, reason = %e.message, "unix user name changed");
                        new.unix_user = Some(username.to_string());
                    }
                    // Anything else that exists (a database of that name) is a refusal.
                    Err(e) => return Err(plan_gone(client, e).into()),
                }
            }
            return Err(VirtualminError::new(
                ErrorKind::Invalid,
                format!("{domain}: the server refused {USERNAME_TRIES} unix user names, the last {username}"),
            )
            .into());
        }
        Action::Enable => client.enable_domain(domain).await?,
        Action::Disable { reason } => client.disable_domain(domain, reason.as_deref()).await?,
        Action::EnableFeatures { features } => {
            let flags: Vec<String> = features.iter().map(ToString::to_string).collect();
            client.enable_features(domain, &flags).await?;
        }
        Action::ApplyPlan { plan } => {
            client.ensure_plan(&server_plan(&target.plan.spec)).await?;
            let change = drover_virtualmin::DomainChange {
                apply_plan: Some(plan.clone()),
                ..Default::default()
            };
            client
                .modify_domain(domain, &change)
                .await
                .map_err(|e| plan_gone(client, e))?;
        }
        Action::Delete => client.delete_domain(domain).await?,
    }
    Ok(())
}
