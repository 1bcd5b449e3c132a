//! `drover serve`: the HTTP API until a shutdown signal.

use std::sync::Arc;

use anyhow::Context;
use drover_core::Scope;
use drover_store::{RequestContext, Store};
use secrecy::ExposeSecret;

use crate::config::Config;
use crate::engine::Engine;

pub async fn serve(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<()> {
    // Before anything counts, so nothing counted is lost.
    let metrics = crate::metrics::install().map_err(anyhow::Error::msg)?;
    if store.tokens().await?.is_empty() {
        let ctx = RequestContext {
            actor: "drover".into(),
            correlation_id: "first-start".into(),
        };
        let (token, secret) = store
            .create_token(&ctx, "first operator", Scope::Operator)
            .await?;
        println!(
            "First start: created operator token {} (shown once, keep it safe):\n{}",
            token.id,
            secret.expose_secret()
        );
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (--listen / DROVER_LISTEN)",
                config.listen
            )
        })?;
    let address = listener.local_addr()?;
    println!(
        "drover listening on http://{address} (database: {}, {})",
        drover_store::redact_url(&config.database_url),
        store.backend().as_str()
    );
    let vm = &config.virtualmin;
    tracing::info!(
        %address,
        backend = store.backend().as_str(),
        virtualmin_rate_qps = vm.rate_qps,
        virtualmin_ssl_verify = vm.ssl_verify,
        virtualmin_auto_provisioning = vm.auto_provisioning_enabled,
        "serving"
    );
    let engine = Arc::new(Engine::from_config(Arc::clone(&store), config)?);
    let sealer = Arc::clone(&engine.sealer);
    let mut workers =
        crate::engine::start(engine, config.workers).context("cannot start the job workers")?;
    let settings = crate::api::ApiSettings {
        migration_grace: config.fleet.migration_grace,
        placement: config.placement,
        virtualmin_rate_qps: vm.rate_qps,
        secret_sources: config.secret_sources.clone(),
    };
    let app =
        crate::api::router_with(store, sealer, settings).merge(crate::metrics::routes(metrics));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    tracing::info!("stopping: letting running jobs finish");
    workers.stop().await.context("stopping the job workers")?;
    tracing::info!("stopped");
    Ok(())
}

/// `drover worker`: works jobs, serves nothing, until a shutdown signal.
pub async fn work(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<()> {
    let engine = Engine::from_config(store, config)?;
    let mut workers = crate::engine::start(Arc::new(engine), config.workers)
        .context("cannot start the job workers")?;
    println!("drover worker working {} jobs at a time", config.workers);
    shutdown_signal().await;
    tracing::info!("stopping: letting running jobs finish");
    workers.stop().await.context("stopping the job workers")?;
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    interrupt.await.ok();
}
