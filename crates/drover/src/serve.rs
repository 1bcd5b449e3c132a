//! `drover serve` and `drover worker` until a stop signal: on the first (SIGTERM or Ctrl-C)
//! they stop taking requests and jobs, let running ones finish within the grace period
//! (`DROVER_SHUTDOWN_GRACE`), cancel what is still running after it (its job runs again
//! elsewhere or later) and exit 0; a second signal exits at once.

use std::sync::Arc;

use anyhow::{Context, bail};
use drover_core::Scope;
use drover_store::{RequestContext, Store};
use secrecy::ExposeSecret;

use crate::config::Config;
use crate::engine::Engine;

pub async fn serve(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<()> {
    // Listened to before anything is announced: a signal from then on is a stop, not a kill.
    let mut signals = StopSignals::new()?;
    // Before anything counts, so nothing counted is lost.
    let metrics = crate::metrics::install().map_err(anyhow::Error::msg)?;
    if store.tokens().await?.is_empty() {
        let ctx = RequestContext {
            actor: "drover".into(),
            correlation_id: "first-start".into(),
        };
        let (token, secret) =
            crate::commands::create_token(&*store, &ctx, "first operator", Scope::Operator).await?;
        let file = config.first_token_file();
        let written = write_private(&file, secret.expose_secret());
        let kept = match &written {
            Ok(()) => format!(
                "and kept in {} for its owner alone: delete the file once the token is stored \
                 safely",
                file.display()
            ),
            // The token is printed all the same: failing here would lose it for good.
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot keep the first token");
                "keep it safe".to_owned()
            }
        };
        let shown = announce(format_args!(
            "First start: created operator token {} (shown once, {kept}):\n{}",
            token.id,
            secret.expose_secret()
        ));
        // Neither kept nor shown, it would be lost: the start stops (`drover tokens create`
        // makes another).
        if let (Err(e), false) = (written, shown) {
            bail!(
                "the first operator token {} could neither be kept in {} ({e}) nor printed",
                token.id,
                file.display()
            );
        }
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
    // The key and the engine exist before drover says it listens: a caller may rely on both.
    let engine = Arc::new(Engine::from_config(Arc::clone(&store), config).await?);
    announce(format_args!(
        "drover listening on http://{address} (database: {}, {})",
        drover_store::redact_url(&config.database_url),
        store.backend().as_str()
    ));
    let vm = &config.virtualmin;
    tracing::info!(
        %address,
        backend = store.backend().as_str(),
        virtualmin_rate_qps = vm.rate_qps,
        virtualmin_ssl_verify = vm.ssl_verify,
        virtualmin_auto_provisioning = vm.auto_provisioning_enabled,
        "serving"
    );
    let sealer = Arc::clone(&engine.sealer);
    let hand_back = crate::engine::HandBack::new();
    let mut workers = crate::engine::start_handing_back(engine, config.workers, hand_back.clone())
        .context("cannot start the job workers")?;
    let settings = crate::api::ApiSettings {
        migration_grace: config.fleet.migration_grace,
        placement: config.placement,
        virtualmin_rate_qps: vm.rate_qps,
        secret_sources: config.secret_sources.clone(),
        refuse_confusable: config.refuse_confusable,
        billing_deletes_unconfirmed: config.billing_deletes_unconfirmed,
        virtualmin_sources: config.virtualmin_sources.clone(),
    };
    let app = crate::api::router_with(Arc::clone(&store), sealer, settings)
        .merge(crate::metrics::routes(metrics, store));
    let (stopping, stop_requested) = tokio::sync::watch::channel(false);
    let http = tokio::spawn(async move {
        let mut stop_requested = stop_requested;
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_requested.wait_for(|stop| *stop).await;
            })
            .await
    });
    signals.next().await;
    tracing::info!(
        grace_seconds = config.shutdown_grace.as_secs_f64(),
        "stopping"
    );
    let _ = stopping.send(true);
    let stopper = workers.stopper();
    stopper.stop();
    let stopped = async { (http.await, workers.wait().await) };
    let (served, worked) = finish_within(
        config.shutdown_grace,
        stopped,
        &stopper,
        &hand_back,
        &mut signals,
    )
    .await;
    served
        .context("the HTTP server task failed")?
        .context("the HTTP server failed")?;
    worked.context("stopping the job workers")?;
    tracing::info!("stopped");
    Ok(())
}

/// `drover worker`: works jobs until a stop signal, serving only `/metrics` when asked.
pub async fn work(
    config: &Config,
    store: Arc<dyn Store>,
    metrics_listen: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    let mut signals = StopSignals::new()?;
    // Ready before it answers: a scrape never meets a start-up still writing to the database
    // (the operator key's first record), nor a process about to exit because start-up failed.
    let engine = Engine::from_config(store.clone(), config).await?;
    if let Some(address) = metrics_listen {
        let metrics = crate::metrics::install().map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} (--metrics-listen)"))?;
        let app = crate::metrics::routes(metrics, Arc::clone(&store));
        announce(format_args!(
            "drover worker serves /metrics on http://{}",
            listener.local_addr()?
        ));
        // It ends with the process: metrics have nothing to finish.
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    let hand_back = crate::engine::HandBack::new();
    let mut workers =
        crate::engine::start_handing_back(Arc::new(engine), config.workers, hand_back.clone())
            .context("cannot start the job workers")?;
    announce(format_args!(
        "drover worker working {} jobs at a time",
        config.workers
    ));
    signals.next().await;
    tracing::info!(
        grace_seconds = config.shutdown_grace.as_secs_f64(),
        "stopping"
    );
    let stopper = workers.stopper();
    stopper.stop();
    let stopped = workers.wait();
    finish_within(
        config.shutdown_grace,
        stopped,
        &stopper,
        &hand_back,
        &mut signals,
    )
    .await
    .context("stopping the job workers")?;
    Ok(())
}

/// Waits for `stopped` for `grace`, then cancels the jobs still running and waits for them to
/// hand their work back (River makes a cancelled job available again); a second stop signal
/// meanwhile exits at once.
async fn finish_within<T>(
    grace: std::time::Duration,
    stopped: impl Future<Output = T>,
    stopper: &riverqueue::Stopper,
    hand_back: &crate::engine::HandBack,
    signals: &mut StopSignals,
) -> T {
    let mut stopped = std::pin::pin!(stopped);
    tokio::select! {
        done = &mut stopped => return done,
        () = tokio::time::sleep(grace) => {
            tracing::warn!("the grace period is over: cancelling the jobs still running");
            hand_back.cancel();
            stopper.stop_and_cancel();
        }
        () = signals.next() => exit_at_once(),
    }
    tokio::select! {
        done = &mut stopped => done,
        () = signals.next() => exit_at_once(),
    }
}

fn exit_at_once() -> ! {
    tracing::warn!("a second stop signal: exiting at once");
    std::process::exit(1)
}

/// SIGTERM and SIGINT (Ctrl-C), listened to from start to exit so that none is missed.
struct StopSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

/// Writes `text` to a new file readable by its owner alone; one left from before (or a link
/// planted there) is removed first, never written through.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(format!("{text}\n").as_bytes())
}

/// Says how the process stands on stdout, for whoever started it; whether it was written. A
/// reader that went away (a closed pipe) must not stop a server and its jobs.
fn announce(line: std::fmt::Arguments<'_>) -> bool {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
}
