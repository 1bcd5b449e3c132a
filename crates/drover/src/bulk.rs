//! Bulk lifecycle moves: one change per service, each queued in its own transaction; the
//! servers' call rates pace the work. A summary says what succeeded and why the rest did not.

use std::time::Duration;

use drover_core::{JobId, PlanId, ServiceId, SuspendReason, Transition};
use drover_store::{RequestContext, Store};

use crate::commands;
use serde::Serialize;

#[derive(Debug, Clone)]
pub enum BulkAction {
    Suspend { reason: Option<SuspendReason> },
    Unsuspend,
    ChangePlan { plan: PlanId },
}

/// What was queued and what was refused at once.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BulkQueued {
    pub total: usize,
    pub queued: Vec<(ServiceId, JobId)>,
    pub refused: Vec<(ServiceId, String)>,
    /// Services left as they were: the run was interrupted before their turn.
    pub not_changed: Vec<ServiceId>,
}

/// An operator's stop (SIGINT or SIGTERM) while a bulk run queues or waits: queueing stops
/// between two services, so each service is either changed (its job queued, to be carried out)
/// or left as it was; waiting stops and the jobs go on.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Interrupt {
    /// Listens for SIGINT and SIGTERM from now on: the first is noted, a second ends the
    /// process at once (a store call that hangs must not keep it).
    pub fn on_signals() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = Self::default();
        let mut terminate = signal(SignalKind::terminate())?;
        let mut ctrl_c = signal(SignalKind::interrupt())?;
        let flag = interrupt.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = ctrl_c.recv() => {}
                }
                if flag.happened() {
                    eprintln!("stopped at once");
                    std::process::exit(130);
                }
                flag.raise();
            }
        });
        Ok(interrupt)
    }

    pub fn raise(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn happened(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// How it all ended, or where it stood when waiting stopped.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BulkSummary {
    pub total: usize,
    pub succeeded: usize,
    pub failed: Vec<(ServiceId, String)>,
    /// Jobs still under way when waiting stopped; they go on.
    pub unfinished: Vec<(ServiceId, JobId)>,
}

/// What the action would do to one service, or why it would be refused.
#[derive(Debug, Clone, Serialize)]
pub struct BulkPreview {
    pub service: ServiceId,
    pub domain: String,
    pub change: Option<String>,
    pub refused: Option<String>,
}

/// What `queue` would do, changing nothing: each service's move by the lifecycle's rules.
pub async fn preview(
    store: &dyn Store,
    action: &BulkAction,
    services: &[ServiceId],
) -> Result<Vec<BulkPreview>, drover_store::StoreError> {
    if let BulkAction::ChangePlan { plan } = action {
        store.plan(*plan).await?;
    }
    let mut previews = Vec::with_capacity(services.len());
    for &id in services {
        let service = match store.service(id).await {
            Ok(service) => service,
            Err(e) => {
                previews.push(BulkPreview {
                    service: id,
                    domain: String::new(),
                    change: None,
                    refused: Some(e.to_string()),
                });
                continue;
            }
        };
        let status = service.status;
        let change = match action {
            BulkAction::Suspend { .. } => status.apply(Transition::Suspend),
            BulkAction::Unsuspend => status.apply(Transition::Unsuspend),
            BulkAction::ChangePlan { .. } => status.check_plan_change(id).map(|()| status),
        }
        .map(|to| match action {
            BulkAction::ChangePlan { plan } if service.plan_id == *plan => {
                format!("stays on plan {plan} (converged again)")
            }
            BulkAction::ChangePlan { plan } => format!("plan {} → {plan}", service.plan_id),
            _ => format!("{} → {}", status.as_str(), to.as_str()),
        })
        .map_err(|e| e.to_string());
        previews.push(BulkPreview {
            service: id,
            domain: service.domain_unicode,
            change: change.as_ref().ok().cloned(),
            refused: change.err(),
        });
    }
    Ok(previews)
}

/// Queues each service's move in its own transaction, until done or interrupted.
pub async fn queue(
    store: &dyn Store,
    ctx: &RequestContext,
    action: &BulkAction,
    services: &[ServiceId],
    interrupt: &Interrupt,
) -> BulkQueued {
    let mut result = BulkQueued {
        total: services.len(),
        ..BulkQueued::default()
    };
    for (n, &id) in services.iter().enumerate() {
        if interrupt.happened() {
            result.not_changed = services[n..].to_vec();
            break;
        }
        let outcome = match action {
            BulkAction::Suspend { reason } => {
                let reason = reason.as_ref().map(SuspendReason::as_str);
                commands::transition_service(store, ctx, id, Transition::Suspend, reason).await
            }
            BulkAction::Unsuspend => {
                commands::transition_service(store, ctx, id, Transition::Unsuspend, None).await
            }
            // A bulk change is never forced: an account past the plan is reported, unchanged.
            BulkAction::ChangePlan { plan } => {
                commands::change_plan(store, ctx, id, *plan, false).await
            }
        };
        match outcome {
            Ok(moved) => result.queued.push((id, moved.job_id)),
            Err(e) => result.refused.push((id, e.to_string())),
        }
    }
    result
}

/// Waits for the queued jobs, reporting (finished, total) as they end, for at most `limit` or
/// until interrupted.
pub async fn wait(
    store: &dyn Store,
    queued: &BulkQueued,
    limit: Option<Duration>,
    interrupt: &Interrupt,
    mut progress: impl FnMut(usize, usize),
) -> Result<BulkSummary, drover_store::StoreError> {
    let started = tokio::time::Instant::now();
    let mut summary = BulkSummary {
        total: queued.queued.len() + queued.refused.len(),
        failed: queued.refused.clone(),
        ..BulkSummary::default()
    };
    let mut pending: Vec<(ServiceId, JobId)> = queued.queued.clone();
    // Jobs joined by several services of one account are counted once per service.
    while !pending.is_empty() {
        let mut still = Vec::new();
        for (service, job) in pending {
            if interrupt.happened() {
                still.push((service, job));
                continue;
            }
            let summary_job = store.job(job).await?;
            match summary_job.state.as_str() {
                "completed" => summary.succeeded += 1,
                "discarded" | "cancelled" => {
                    let reason = summary_job
                        .output
                        .as_ref()
                        .and_then(|o| o["discarded"].as_str().map(str::to_owned))
                        .or_else(|| summary_job.errors.last().cloned())
                        .unwrap_or_else(|| format!("job {job} was {}", summary_job.state));
                    summary.failed.push((service, reason));
                }
                _ => still.push((service, job)),
            }
        }
        pending = still;
        progress(summary.total - pending.len(), summary.total);
        if interrupt.happened() || limit.is_some_and(|limit| started.elapsed() >= limit) {
            summary.unfinished = pending;
            break;
        }
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(summary)
}
