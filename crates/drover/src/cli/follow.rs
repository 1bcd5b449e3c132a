//! Long work from the command line: a command queues its job, as the HTTP API does, and with
//! `--wait` follows it until a worker (`drover serve` or `drover worker` on the same database)
//! has finished it. The command line never talks to a server itself.

use std::time::Duration;

use crate::commands::Requested;
use anyhow::bail;
use drover_core::JobId;
use drover_store::{JobSummary, RequestContext, Store};
use serde_json::Value;

/// `--wait`, shared by every command that queues long work.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct WaitFlag {
    /// Wait for the job and show its result (a worker must be running on this database:
    /// `drover serve` or `drover worker`); without it, the job is queued and its id printed.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: stop waiting after this many seconds (the job goes on) [default: no limit].
    #[arg(long, value_name = "SECONDS", requires = "wait")]
    pub wait_timeout: Option<u64>,
}

/// How often the job's row is read while waiting.
const POLL: Duration = Duration::from_millis(200);
/// How long a job may wait untaken before the command says a worker seems missing.
const UNTAKEN: Duration = Duration::from_secs(5);

/// Queues what an operator asked for and, with `--wait`, follows it (see [`follow`]).
pub async fn ask(
    store: &dyn Store,
    ctx: &RequestContext,
    request: Requested,
    wait: WaitFlag,
    out: super::Output,
) -> anyhow::Result<Option<Value>> {
    let job = crate::commands::request(store, ctx, request).await?;
    follow(store, job, wait, out).await
}

/// The job's output once it completed; `None` without `--wait` (the job's id is printed). A job
/// discarded or cancelled is an error with its reason. Jobs an operator asks for are tried a
/// few times: each failed try is shown, and waiting goes on while tries remain.
pub async fn follow(
    store: &dyn Store,
    job: JobId,
    wait: WaitFlag,
    out: super::Output,
) -> anyhow::Result<Option<Value>> {
    if !wait.wait {
        if out.json {
            out.one(&serde_json::json!({ "job_id": job }))?;
        } else {
            println!(
                "queued job {job}: follow it with `drover jobs show {job}`, or add --wait to wait \
                 for it"
            );
        }
        return Ok(None);
    }
    let started = tokio::time::Instant::now();
    let mut warned = false;
    let mut errors_shown = 0;
    loop {
        let row = store.job(job).await?;
        match row.state.as_str() {
            "completed" => return Ok(Some(row.output.unwrap_or(Value::Null))),
            "discarded" | "cancelled" => {
                bail!("job {job} was {}: {}", row.state, why_not(&row))
            }
            _ => {}
        }
        for error in row.errors.iter().skip(errors_shown) {
            eprintln!(
                "job {job}: try {} of {} failed ({error}); it will be tried again",
                row.attempt, row.max_attempts
            );
        }
        errors_shown = row.errors.len();
        if wait
            .wait_timeout
            .is_some_and(|limit| started.elapsed() >= Duration::from_secs(limit))
        {
            bail!(
                "job {job} is still {} after --wait-timeout; it goes on: follow it with \
                 `drover jobs show {job}`",
                row.state
            );
        }
        if row.state == "available" && !warned && started.elapsed() >= UNTAKEN {
            eprintln!(
                "job {job} is not taken yet: is `drover serve` or `drover worker` running on this \
                 database?"
            );
            warned = true;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Why a job ended without completing: its own word in its output, else its last error.
fn why_not(row: &JobSummary) -> String {
    let output = row.output.as_ref();
    ["refused", "discarded"]
        .into_iter()
        .find_map(|key| output.and_then(|o| o[key].as_str()).map(str::to_owned))
        .or_else(|| row.errors.last().cloned())
        .unwrap_or_else(|| "no reason was recorded".to_owned())
}
