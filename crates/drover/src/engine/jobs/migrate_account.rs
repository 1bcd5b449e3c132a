//! `migrate_account`: an account moved to another server, step by step (see
//! [`drover_core::MoveState`]).

use std::sync::Arc;

use drover_core::{AccountId, Action, DesiredState, MoveStep, Observed};
use drover_store::RequestContext;
use drover_virtualmin::ErrorKind;
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use crate::engine::Engine;
use crate::engine::account_job::{ConvergeError, Finish, Round, run_for_account};
use crate::engine::content::{self, Content, NotMoved};
use crate::engine::converge::{apply, certify_again, observe, resources_on};

/// `migrate_account`: one account moved to another server, a step per state of its
/// migration: created on the target (with the sealed password), then the account and its DNS
/// switched to the target, then the source copy disabled, then deleted once an operator
/// confirms or the grace period ends (a later run is scheduled to look again).
pub async fn run(
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
    metrics::gauge!("drover_failover_recovery_seconds", "server" => lost.spec.name.to_string())
        .set(seconds);
    tracing::warn!(server = %lost.spec.name, seconds, "failover complete");
    let details = json!({
        "server_id": lost.id,
        "name": lost.spec.name,
        "seconds_since_unavailable": seconds,
    });
    let mut tx = engine.store.write().await?;
    tx.audit(
        ctx,
        "server.failover_complete",
        format!("server:{}", lost.id),
        details.clone(),
    )
    .await?;
    let event = drover_store::NewEvent {
        event_type: drover_core::EventType::ServerFailoverComplete,
        account: None,
        subject: format!("server:{}", lost.id),
        data: details,
    };
    tx.event(ctx, &event).await?;
    tx.commit().await?;
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
                let ours = |seen: &Observed| {
                    seen.unix_user.as_deref() == Some(target.account.unix_username.as_str())
                };
                let before = observe(&client, domain).await?;
                if before.as_ref().is_some_and(|seen| !ours(seen)) {
                    return Ok(Round::Refused(format!(
                        "{domain} exists on {} and is not drover's account (its unix user differs)",
                        to.spec.name
                    )));
                }
                // Content first. A planned move restores on every try, onto what an earlier
                // try left (replacing it) and checks it again: nothing an interrupted try left
                // is trusted. A failover restores once, onto a target without the domain.
                let content = match (migration.failover, migration.restore_from) {
                    (true, _) if before.is_some() => None,
                    (true, _) => {
                        let restored =
                            content::restore_last(engine, account, (&to, &client)).await?;
                        // A restore that failed half way: made afresh instead, empty.
                        if matches!(restored, Content::NotCarried { .. })
                            && observe(&client, domain).await?.is_some_and(|s| ours(&s))
                        {
                            client.delete_domain(domain).await?;
                        }
                        Some(restored)
                    }
                    (false, from_backup) => {
                        let carried = match from_backup {
                            Some(backup) => {
                                content::restore_chosen(engine, backup, (&to, &client)).await?
                            }
                            None => {
                                let source = match client_for(&from) {
                                    Ok(source) => source,
                                    Err(e) => return Ok(Round::Refused(e)),
                                };
                                content::carry(
                                    engine,
                                    ctx,
                                    account,
                                    (&from, &source),
                                    (&to, &client),
                                    migration.without_content,
                                )
                                .await?
                            }
                        };
                        match carried {
                            Ok(carried) => Some(carried),
                            Err(NotMoved(why)) => {
                                // What the restore left on the target goes, when this try made
                                // it there: the account lives on its source.
                                if before.is_none()
                                    && observe(&client, domain).await?.is_some_and(|s| ours(&s))
                                {
                                    client.delete_domain(domain).await?;
                                }
                                return Ok(Round::Refused(why));
                            }
                        }
                    }
                };
                if let Some(content) = &content {
                    let action = match content {
                        Content::NotCarried { .. } => "account.content_not_carried",
                        _ => "account.content_carried",
                    };
                    let details = json!({
                        "to_server": to.spec.name, "from_server": from.spec.name,
                        "carried": content,
                    });
                    engine
                        .store
                        .audit(ctx, action, format!("account:{account}"), details)
                        .await?;
                    // Restored from an older backup: drover's records win once the move is
                    // done (a converge and the sealed passwords, waiting for this job).
                    if matches!(content, Content::Restored { .. }) {
                        crate::commands::after_restore(&*engine.store, ctx, account).await?;
                    }
                }
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
                // Its mailboxes and databases exist there before its traffic does (restored
                // with their content when it was carried, made empty otherwise).
                actions.extend(resources_on(engine, ctx, &client, &target).await?);
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
                crate::commands::schedule_migration(&*engine.store, ctx, account, next).await?;
            }
            MoveStep::Nothing => {}
        }
        let Some(next) = step.leads_to() else {
            break;
        };
        migration = crate::commands::advance_migration(&*engine.store, ctx, account, next).await?;
        if step == MoveStep::CreateOnTarget {
            // Switched: a certificate is asked for on the new server (the waiting job goes).
            certify_again(engine, ctx, account).await?;
        }
        if step == MoveStep::EndFailover && engine.store.failovers_remaining(from.id).await? == 0 {
            record_recovery(engine, ctx, &from).await?;
        }
    }
    Ok(Round::Done {
        generation: target.account.desired_generation,
        actions,
    })
}
