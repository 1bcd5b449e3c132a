//! Bringing a bare server into the fleet: planned first (a dry run lists every step with the
//! commands it runs), then recorded and carried out by a job, which an operator follows
//! step by step.

use std::path::Path;

use drover_core::{
    BootstrapProgress, BootstrapSpec, BootstrapState, InstallSource, PlannedStep, SecretSources,
};
use drover_store::{RequestContext, ServerBootstrap, Store};
use serde::Serialize;

use super::Result;

/// A bootstrap's steps, and the bootstrap once started.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BootstrapPlan {
    pub dry_run: bool,
    pub steps: Vec<PlannedStep>,
    /// The bootstrap started, to follow (none on a dry run).
    pub bootstrap: Option<ServerBootstrap>,
}

/// Plans the bootstrap of `spec` and, unless `dry_run`, records it and queues its job.
/// Refused, with nothing recorded, when the spec, its credential references or the local
/// copy to install are wrong, or the name is taken.
pub async fn bootstrap_server(
    store: &dyn Store,
    ctx: &RequestContext,
    secrets: &SecretSources,
    virtualmin_sources: Option<&Path>,
    spec: BootstrapSpec,
    dry_run: bool,
) -> Result<BootstrapPlan> {
    let spec = spec.validated()?;
    secrets.check(&spec.ssh.key)?;
    secrets.check(&spec.api_credentials)?;
    let local = match spec.install {
        InstallSource::LocalCopy => {
            // Hashing the archives (tens of MB) is no work for the async runtime.
            let dir = virtualmin_sources.map(Path::to_path_buf);
            let found = tokio::task::spawn_blocking(move || {
                crate::engine::local_virtualmin_sources(dir.as_deref())
            })
            .await
            .unwrap_or_else(|e| Err(format!("the archives could not be checked: {e}")));
            Some(found.map_err(|e| {
                drover_core::Error::InvalidValue {
                    what: "local copy of Webmin and Virtualmin",
                    input: virtualmin_sources
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    expected: e,
                }
            })?)
        }
        InstallSource::Online => None,
    };
    let steps = drover_core::plan_bootstrap(&spec, local.as_ref());
    if dry_run {
        return Ok(BootstrapPlan {
            dry_run,
            steps,
            bootstrap: None,
        });
    }
    under_way_elsewhere(store, &spec, None).await?;
    let progress = BootstrapProgress::new(&steps);
    let bootstrap = store.start_bootstrap(ctx, &spec, &progress).await?;
    Ok(BootstrapPlan {
        dry_run,
        steps,
        bootstrap: Some(bootstrap),
    })
}

/// Starts a failed bootstrap again where it stopped: its done steps stay done (a server it
/// registered stays registered), the others run again, by a new job.
pub async fn resume_bootstrap(
    store: &dyn Store,
    ctx: &RequestContext,
    id: i64,
) -> Result<ServerBootstrap> {
    let bootstrap = store.bootstrap(id).await?;
    under_way_elsewhere(store, &bootstrap.spec, Some(id)).await?;
    Ok(store.resume_bootstrap(ctx, id).await?)
}

/// Refuses a bootstrap of a machine another one is working on (the same SSH host key, under
/// any name or address: two at once would install over each other). A bootstrap whose job
/// ended without ending it (cancelled, or stopped past its time) is marked failed first, so
/// that it holds nothing.
async fn under_way_elsewhere(
    store: &dyn Store,
    spec: &BootstrapSpec,
    itself: Option<i64>,
) -> Result<()> {
    let running = store
        .running_bootstraps()
        .await?
        .into_iter()
        .filter(|b| Some(b.id) != itself);
    for bootstrap in running {
        let job = match bootstrap.job_id {
            Some(job) => Some(store.job(job).await?),
            None => None,
        };
        if let Some(job) = job
            && matches!(job.state.as_str(), "completed" | "discarded" | "cancelled")
        {
            let why = format!(
                "its job {} ended ({}) before the bootstrap did; start it again",
                job.id, job.state
            );
            store
                .save_bootstrap_progress(
                    bootstrap.id,
                    BootstrapState::Failed,
                    &bootstrap.progress,
                    Some(&why),
                )
                .await?;
            continue;
        }
        if bootstrap.spec.ssh.host_key == spec.ssh.host_key {
            return Err(drover_core::Error::InvalidValue {
                what: "ssh.host_key",
                input: spec.ssh.host_key.to_string(),
                expected: format!(
                    "a machine no other bootstrap works on: bootstrap {} of {} is under way on \
                     the machine with this host key",
                    bootstrap.id, bootstrap.spec.name
                ),
            }
            .into());
        }
    }
    Ok(())
}
