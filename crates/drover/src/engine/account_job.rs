//! What the jobs that work on one account share (converge, password, move): the account is
//! leased to the job, its calls are recorded under the job, and how the work ended becomes
//! River's outcome, with a failure mark kept until a later job succeeds.

use std::sync::Arc;
use std::time::Duration;

use drover_core::{AccountId, Action, EventType, JobId};
use drover_store::{ConvergeCompletion, JobCall, RequestContext};
use drover_virtualmin::{CallScope, ErrorKind, VirtualminError, in_scope};
use riverqueue::{WorkContext, WorkOutcome};
use serde_json::json;
use tracing::Instrument;

use super::Engine;

/// How long a job waits when nothing can be done yet (no server fits, provisioning is off).
const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    #[error(transparent)]
    Store(#[from] drover_store::StoreError),
    #[error(transparent)]
    Command(#[from] crate::commands::Error),
    #[error("virtualmin: {0}")]
    Virtualmin(#[from] VirtualminError),
    #[error(transparent)]
    Dns(#[from] super::dns::DnsWorkError),
    /// The server reported success but still does not show the change: tried again later,
    /// and the account is marked failed if it never does.
    #[error("the server does not show what was applied: {0}")]
    NotApplied(String),
    /// The job ran past its time (`DROVER_JOB_TIMEOUT`) or was cancelled: tried again later.
    #[error("stopped before it finished: it ran past DROVER_JOB_TIMEOUT or was cancelled")]
    Stopped,
}

/// What a round ended with.
pub(super) enum Round {
    /// The server matches the record of this generation.
    Done {
        generation: i64,
        actions: Vec<Action>,
    },
    /// Nothing can be done now; try later.
    Wait(String),
    /// A person must act; retrying cannot help.
    Refused(String),
    /// A protected account's deletion is held until an operator lifts the protection.
    Held(String),
}

/// How a job that did its work finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Finish {
    /// It brought the account to a generation: it finishes only if that is still the latest,
    /// since a change made meanwhile may have joined it (converge jobs are unique per account).
    AtLatestGeneration,
    /// It applied the latest record of one thing (a password): it finishes only if the
    /// account's record is unchanged since, or runs again, as a change made meanwhile may have
    /// joined it; it never marks the account failed (the account itself may match).
    AtLatestRecord,
    /// Its work stands on its own (a move): it finishes.
    Always,
}

/// Runs a job's work on one account with its calls recorded and correlated, and turns how it
/// ended into River's outcome: done, wait (snooze), refused (discard, audited) or retry. Each
/// attempt's ending is kept; an account whose job gives up (refused, or out of retries) is
/// marked failed with the reason until a later job succeeds.
pub(super) async fn run_for_account<F, Fut>(
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
    // River cancels a job that runs past its time: the work stops at its next wait and the
    // attempt ends as failed, recorded and its lease released like any other, so that no later
    // run (in this process or another) overlaps one that ran on.
    let cancelled = context.cancellation_token().clone();
    // Every line the work logs names the job and the request that caused it.
    let span = tracing::info_span!("job", %job_id, %account, correlation_id = %ctx.correlation_id);
    let outcome = tokio::select! {
        outcome = in_scope(scope, work(ctx.clone())).instrument(span) => outcome,
        () = cancelled.cancelled() => Err(ConvergeError::Stopped),
    };
    // The lease is held until this attempt's ending is recorded: a job that starts after it
    // finds this one's failure mark (and clears it), never the other way round.
    let ended = async {
        // Every call made is kept, whatever the outcome: with the completion when the job
        // completes, otherwise now.
        let calls = taken_calls(&log, started_at);
        let completing = finish != Finish::Always && matches!(outcome, Ok(Round::Done { .. }));
        if !completing {
            engine.store.record_job_calls(job_id, &calls).await?;
        }
        let subject = format!("account:{account}");
        let last_try = row.attempt >= row.max_attempts;
        let attempt = AttemptStart {
            job_id,
            number: i64::from(row.attempt),
            started_at,
        };
        let (ended, why) = decide(
            engine,
            &ctx,
            context,
            &attempt,
            account,
            finish,
            read_generation,
            outcome,
            &subject,
            if completing { &calls } else { &[] },
        )
        .await?;
        let (ended, why) = match ended {
            // Out of retries: River discards the job, unless a change joined it meanwhile.
            Err(e) if last_try && finish != Finish::Always => {
                if engine
                    .store
                    .end_converge(account, read_generation, job_id)
                    .await?
                {
                    if finish == Finish::AtLatestGeneration {
                        let reason = format!("gave up after {} attempts: {e}", row.attempt);
                        engine
                            .store
                            .mark_account_failed(&ctx, account, &reason, EventType::AccountFailed)
                            .await?;
                    }
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
        // A converge that completed recorded its attempt (and let the account go) as it
        // completed.
        let recorded = outcome == "completed" && finish != Finish::Always;
        // A job that waits is woken every half minute: only a change of why it waits is kept.
        let repeated_wait = outcome == "snoozed"
            && engine
                .store
                .job_attempts(job_id)
                .await?
                .last()
                .is_some_and(|a| a.outcome == outcome && a.message == message);
        if !recorded && !repeated_wait {
            engine
                .store
                .record_job_attempt(&attempt.ended(outcome, message))
                .await?;
        }
        Ok::<_, ConvergeError>((ended, recorded))
    }
    .await;
    match ended {
        Ok((ended, true)) => ended,
        Ok((ended, false)) => {
            engine.store.release_account(account, job_id).await?;
            ended
        }
        Err(e) => {
            engine.store.release_account(account, job_id).await?;
            Err(e)
        }
    }
}

/// An attempt of a job, as it started.
struct AttemptStart {
    job_id: JobId,
    number: i64,
    started_at: jiff::Timestamp,
}

impl AttemptStart {
    /// The attempt's record, ending now.
    fn ended(&self, outcome: &str, message: Option<String>) -> drover_store::JobAttempt {
        let micros = |t: jiff::Timestamp| t.round(jiff::Unit::Microsecond).unwrap_or(t);
        drover_store::JobAttempt {
            job_id: self.job_id,
            attempt: self.number,
            outcome: outcome.to_owned(),
            message,
            started_at: micros(self.started_at),
            finished_at: micros(jiff::Timestamp::now()),
        }
    }
}

/// How a job's work ended, as River's outcome, and why when it did not complete.
#[allow(clippy::too_many_arguments)]
async fn decide(
    engine: &Engine,
    ctx: &RequestContext,
    context: &WorkContext,
    attempt: &AttemptStart,
    account: AccountId,
    finish: Finish,
    read_generation: i64,
    outcome: Result<Round, ConvergeError>,
    subject: &str,
    // The calls of a converge that completes, kept with its completion.
    calls: &[JobCall],
) -> Result<(Result<WorkOutcome, ConvergeError>, Option<String>), ConvergeError> {
    let job_id = attempt.job_id;
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
    let (refused, event) = match outcome {
        Ok(Round::Refused(ref reason)) => (Some(reason.clone()), EventType::AccountFailed),
        Ok(Round::Held(ref reason)) => (
            Some(reason.clone()),
            EventType::AccountProtectedDeletionHeld,
        ),
        Err(ConvergeError::Virtualmin(ref e))
            if !e.kind.is_retryable() && e.kind != ErrorKind::Protocol =>
        {
            (
                Some(format!("the server refused: {e}")),
                EventType::AccountFailed,
            )
        }
        _ => (None, EventType::AccountFailed),
    };
    if let Some(reason) = refused {
        if finish != Finish::Always
            && !engine
                .store
                .end_converge(account, read_generation, job_id)
                .await?
        {
            // A change that joined this job may lift the refusal (an unprotect, a password
            // the server takes).
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
                .mark_account_failed(ctx, account, &reason, event)
                .await?;
        }
        return Ok((Ok(WorkOutcome::Discard), Some(reason)));
    }
    Ok(match outcome {
        Ok(Round::Done {
            generation,
            actions,
        }) => {
            let details = json!({ "job_id": job_id, "generation": generation, "actions": actions });
            // This attempt's own output, not an earlier one's.
            let _ = context.record_output(json!({ "actions": actions }));
            let completion = ConvergeCompletion {
                attempt: &attempt.ended("completed", None),
                calls,
                ctx,
                action: "account.converged",
                subject: subject.to_owned(),
                details: details.clone(),
            };
            let completed = finish != Finish::Always
                && match engine
                    .store
                    .complete_converge(account, generation, context, &completion)
                    .await
                {
                    Ok(completed) => completed,
                    Err(e) => {
                        // Rolled back: what it would have kept is kept on its own if it can be.
                        let _ = engine.store.record_job_calls(job_id, calls).await;
                        let _ = engine
                            .store
                            .audit(ctx, "account.converged", subject.to_owned(), details)
                            .await;
                        return Err(e.into());
                    }
                };
            if !completed {
                engine.store.record_job_calls(job_id, calls).await?;
                engine
                    .store
                    .audit(ctx, "account.converged", subject.to_owned(), details)
                    .await?;
            }
            if completed || finish == Finish::Always {
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
        Ok(Round::Refused(reason) | Round::Held(reason)) => {
            (Ok(WorkOutcome::Discard), Some(reason))
        }
        // Transient trouble: River retries with backoff.
        Err(e) => (Err(e), None),
    })
}

/// The calls a job's work made (collected in `log` by its call scope), as the job's records.
pub(super) fn taken_calls(
    log: &std::sync::Mutex<Vec<drover_virtualmin::CallRecord>>,
    started_at: jiff::Timestamp,
) -> Vec<JobCall> {
    let calls = std::mem::take(
        &mut *log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    calls
        .into_iter()
        .map(|call| JobCall {
            seq: 0,
            server: call.server,
            call: call.call,
            outcome: call.outcome,
            message: call.message,
            duration_ms: i64::try_from(call.duration.as_millis()).unwrap_or(i64::MAX),
            at: jiff::Timestamp::try_from(call.started_at)
                .and_then(|t| t.round(jiff::Unit::Microsecond))
                .unwrap_or(started_at),
        })
        .collect()
}
