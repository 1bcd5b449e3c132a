//! `/metrics`: everything drover counts (Virtualmin and DNS requests, zone writes…) in
//! Prometheus' text format. Unauthenticated, like the health probes: serve it on an address
//! only the monitoring can reach.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::routing::get;
use drover_store::Store;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Bucket bounds of every duration, in seconds: from a quick API answer to a slow
/// `create-domain`.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0,
];

/// Installs the process's metrics recorder (once) and returns the handle that renders it.
pub fn install() -> Result<PrometheusHandle, String> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .map_err(|e| format!("metrics buckets: {e}"))?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder)
                .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
            describe();
            Ok(handle)
        })
        .clone()
}

/// What each metric means, shown as its HELP line.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "drover_http_requests_total",
        "API requests answered, by method and status"
    );
    describe_histogram!(
        "drover_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an API request, by method"
    );
    describe_counter!(
        "drover_jobs_total",
        "Jobs worked by this process, by kind and outcome (completed, snoozed, failed, …)"
    );
    describe_gauge!(
        "drover_queue_jobs",
        "Jobs in the database, by queue and state, when /metrics was read"
    );
    describe_gauge!(
        "drover_queue_oldest_seconds",
        Unit::Seconds,
        "How long the earliest job of each queue and state has been due"
    );
    describe_counter!(
        "drover_virtualmin_requests_total",
        "Calls to Virtualmin servers, by server, program and outcome"
    );
    describe_histogram!(
        "drover_virtualmin_request_duration_seconds",
        Unit::Seconds,
        "Time a Virtualmin server took to answer, by server and program"
    );
    describe_gauge!(
        "drover_virtualmin_circuit_state",
        "Each server's circuit breaker: 0 closed, 1 half open, 2 open"
    );
    describe_counter!(
        "drover_dns_requests_total",
        "Calls to DNS providers, by provider, method and outcome"
    );
    describe_histogram!(
        "drover_dns_request_duration_seconds",
        Unit::Seconds,
        "Time a DNS provider took to answer, by provider"
    );
    describe_counter!(
        "drover_dns_zone_writes_total",
        "Zone changes sent to DNS providers, by provider and result"
    );
    describe_gauge!(
        "drover_server_state",
        "1 for each server's current state (healthy, degraded, unavailable, …)"
    );
    describe_gauge!(
        "drover_server_check_latency_seconds",
        Unit::Seconds,
        "How long each server's last health check took"
    );
    describe_gauge!(
        "drover_accounts_failed",
        "Accounts whose last converge job gave up"
    );
    describe_gauge!(
        "drover_drift_findings",
        "Differences between servers and drover's records, by server and kind"
    );
    describe_gauge!(
        "drover_resources",
        "Account resources drover records (mailboxes, databases, aliases, sub-servers, \
         certificates), by kind and state (recorded, deleting; a certificate's requested, \
         issued, failed)"
    );
    describe_gauge!(
        "drover_certificates_renewal_overdue",
        "Issued certificates that expire within the warning days: their server did not renew \
         them"
    );
    describe_gauge!(
        "drover_backups_overdue",
        "Accounts without a good backup within twice DROVER_BACKUP_INTERVAL"
    );
    describe_gauge!(
        "drover_usage_synced_accounts",
        "Accounts whose usage the last sync recorded, by server"
    );
    describe_gauge!(
        "drover_failover_recovery_seconds",
        Unit::Seconds,
        "How long the last failover of a server took to move its accounts"
    );
    describe_counter!(
        "drover_webhook_deliveries_total",
        "Tries to deliver an event to a webhook endpoint, by outcome (delivered, failed)"
    );
    describe_counter!(
        "drover_webhook_endpoints_paused_total",
        "Webhook endpoints paused after failing for DROVER_WEBHOOK_PAUSE_AFTER: an operator resumes them"
    );
}

pub fn routes(handle: PrometheusHandle, store: Arc<dyn Store>) -> Router {
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    Router::new().route(
        "/metrics",
        get(move || {
            let (handle, store, seen) = (handle.clone(), Arc::clone(&store), Arc::clone(&seen));
            async move {
                count_jobs(&*store, &seen).await;
                count_resources(&*store).await;
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    handle.render(),
                )
            }
        }),
    )
}

/// The accounts and their resources drover records, by kind and state, as they stand when read.
async fn count_resources(store: &dyn Store) {
    let counts = match store.resource_counts().await {
        Ok(counts) => counts,
        Err(e) => {
            tracing::warn!(error = %e, "cannot count the resources for /metrics");
            return;
        }
    };
    let kinds = [
        ("mailbox", &["recorded", "deleting"][..]),
        ("database", &["recorded", "deleting"]),
        ("alias", &["recorded", "deleting"]),
        ("subserver", &["recorded", "deleting"]),
        ("certificate", &["requested", "issued", "failed"]),
        ("account", &["enabled", "disabled", "absent"]),
    ];
    for (kind, states) in kinds {
        for &state in states {
            let count = counts
                .iter()
                .find(|c| c.kind == kind && c.state == state)
                .map_or(0, |c| c.count);
            metrics::gauge!("drover_resources", "kind" => kind, "state" => state).set(count as f64);
        }
    }
}

/// The queue as it stands when read: a series seen before and gone now reads 0, not its
/// last count.
async fn count_jobs(store: &dyn Store, seen: &Mutex<BTreeSet<(String, String)>>) {
    let counts = match store.job_counts().await {
        Ok(counts) => counts,
        Err(e) => {
            tracing::warn!(error = %e, "cannot count the jobs for /metrics");
            return;
        }
    };
    let mut seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let now: BTreeSet<(String, String)> = counts
        .iter()
        .map(|c| (c.queue.clone(), c.state.clone()))
        .collect();
    for (queue, state) in seen.difference(&now) {
        let labels = [("queue", queue.clone()), ("state", state.clone())];
        metrics::gauge!("drover_queue_jobs", &labels).set(0.0);
        metrics::gauge!("drover_queue_oldest_seconds", &labels).set(0.0);
    }
    for c in counts {
        let labels = [("queue", c.queue), ("state", c.state)];
        metrics::gauge!("drover_queue_jobs", &labels).set(c.count as f64);
        // Jobs due later are not late.
        metrics::gauge!("drover_queue_oldest_seconds", &labels).set(c.oldest_seconds.max(0.0));
    }
    seen.extend(now);
}
