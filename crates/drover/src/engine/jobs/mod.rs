//! Every kind of job drover works, one module each: what its `run` does with its arguments.
//! The arguments live in `drover_store::jobs`, where the store inserts them in the transaction
//! of the change that needs them. A kind is worked once it is in the table of [`register`].

mod adopt_server;
mod backup_account;
pub(super) mod bootstrap_server;
mod check_fleet_health;
mod check_zones;
mod converge_account;
mod create_login_link;
mod delete_orphan;
mod deliver_webhooks;
mod migrate_account;
mod plan_zone;
mod request_certificate;
mod restore_account;
mod retry_failed_accounts;
mod rewrite_addresses;
mod run_over_ssh;
mod scan_drift;
mod schedule_backups;
mod set_account_password;
mod sync_plan;
mod sync_usage;
mod sync_zone;

pub(crate) use schedule_backups::all_plans;

use std::future::Future;
use std::sync::Arc;

use drover_store::RequestContext;
use riverqueue::{
    BoxError, Job, JobArgs, WorkCancelled, WorkContext, WorkOutcome, Worker, WorkerTimeout, Workers,
};

use super::Engine;

/// The table of job kinds and the `run` that works each.
pub(super) fn register(
    workers: &mut Workers,
    engine: &Arc<Engine>,
    hand_back: &super::HandBack,
) -> Result<(), riverqueue::Error> {
    add(workers, engine, hand_back, converge_account::run)?;
    add(workers, engine, hand_back, set_account_password::run)?;
    add(workers, engine, hand_back, migrate_account::run)?;
    add(workers, engine, hand_back, sync_plan::run)?;
    add(workers, engine, hand_back, retry_failed_accounts::run)?;
    add(workers, engine, hand_back, sync_zone::run)?;
    add(workers, engine, hand_back, rewrite_addresses::run)?;
    add(workers, engine, hand_back, check_fleet_health::run)?;
    add(workers, engine, hand_back, scan_drift::run)?;
    add(workers, engine, hand_back, delete_orphan::run)?;
    add(workers, engine, hand_back, plan_zone::run)?;
    add(workers, engine, hand_back, check_zones::run)?;
    add(workers, engine, hand_back, sync_usage::run)?;
    add(workers, engine, hand_back, adopt_server::run)?;
    add(workers, engine, hand_back, create_login_link::run)?;
    add(workers, engine, hand_back, request_certificate::run)?;
    add(workers, engine, hand_back, backup_account::run)?;
    add(workers, engine, hand_back, schedule_backups::run)?;
    add(workers, engine, hand_back, restore_account::run)?;
    add(workers, engine, hand_back, deliver_webhooks::run)?;
    add(workers, engine, hand_back, run_over_ssh::run)?;
    // Installing a server's packages and Webmin takes longer than any other job.
    let two_hours = WorkerTimeout::After(std::time::Duration::from_secs(2 * 3600));
    add_timed(workers, engine, hand_back, bootstrap_server::run, two_hours)?;
    Ok(())
}

fn add<A, E, F, Fut>(
    workers: &mut Workers,
    engine: &Arc<Engine>,
    hand_back: &super::HandBack,
    run: F,
) -> Result<(), riverqueue::Error>
where
    A: JobArgs,
    E: Into<BoxError>,
    F: Fn(Arc<Engine>, WorkContext, Job<A>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<WorkOutcome, E>> + Send,
{
    add_timed(
        workers,
        engine,
        hand_back,
        run,
        WorkerTimeout::ClientDefault,
    )
}

/// As [`add`], the kind's jobs allowed `timeout` instead of `DROVER_JOB_TIMEOUT`.
fn add_timed<A, E, F, Fut>(
    workers: &mut Workers,
    engine: &Arc<Engine>,
    hand_back: &super::HandBack,
    run: F,
    timeout: WorkerTimeout,
) -> Result<(), riverqueue::Error>
where
    A: JobArgs,
    E: Into<BoxError>,
    F: Fn(Arc<Engine>, WorkContext, Job<A>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<WorkOutcome, E>> + Send,
{
    workers.add(Worked {
        engine: Arc::clone(engine),
        hand_back: hand_back.clone(),
        run,
        timeout,
    })?;
    Ok(())
}

/// One kind's `run`, worked by River.
struct Worked<F> {
    engine: Arc<Engine>,
    hand_back: super::HandBack,
    run: F,
    timeout: WorkerTimeout,
}

impl<A, E, F, Fut> Worker<A> for Worked<F>
where
    A: JobArgs,
    E: Into<BoxError>,
    F: Fn(Arc<Engine>, WorkContext, Job<A>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<WorkOutcome, E>> + Send,
{
    type Error = BoxError;

    fn timeout(&self, _job: &Job<A>) -> WorkerTimeout {
        self.timeout
    }

    fn work(
        &self,
        context: WorkContext,
        job: Job<A>,
    ) -> impl Future<Output = Result<WorkOutcome, BoxError>> + Send {
        let hand_back = self.hand_back.clone();
        let work = (self.run)(Arc::clone(&self.engine), context, job);
        async move {
            // The process stops past its grace period: the job hands its work back, to run
            // again (a job holding an account's lease takes it again, being the same job).
            // River's own cancellation (a job over its time) is left to the job's timeouts.
            let result = tokio::select! {
                result = work => result.map_err(Into::into),
                () = hand_back.cancelled() => Err(BoxError::from(WorkCancelled)),
            };
            let outcome = match &result {
                Ok(WorkOutcome::Complete) => "completed",
                Ok(WorkOutcome::Snooze(_)) => "snoozed",
                Ok(WorkOutcome::Discard) => "discarded",
                Ok(WorkOutcome::Cancel) => "cancelled",
                Ok(_) => "other",
                Err(_) => "failed",
            };
            metrics::counter!("drover_jobs_total", "kind" => A::KIND, "outcome" => outcome)
                .increment(1);
            result
        }
    }
}

/// Who a job's changes are recorded as, correlated by the job's id.
fn job_context(job_id: i64) -> RequestContext {
    RequestContext {
        actor: "drover".into(),
        correlation_id: format!("job-{job_id}"),
    }
}
