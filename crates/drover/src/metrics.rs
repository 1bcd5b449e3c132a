//! `/metrics`: everything drover counts (Virtualmin and DNS requests, zone writes…) in
//! Prometheus' text format. Unauthenticated, like the health probes: serve it on an address
//! only the monitoring can reach.

use std::sync::OnceLock;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Installs the process's metrics recorder (once) and returns the handle that renders it.
pub fn install() -> Result<PrometheusHandle, String> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder)
                .map(|()| handle)
                .map_err(|e| format!("cannot install the metrics recorder: {e}"))
        })
        .clone()
}

pub fn routes(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    handle.render(),
                )
            }
        }),
    )
}
