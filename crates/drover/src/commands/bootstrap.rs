//! Bringing a bare server into the fleet: planned first (a dry run lists every step with the
//! commands it runs), then recorded and carried out by a job, which an operator follows
//! step by step.

use std::path::Path;

use drover_core::{BootstrapProgress, BootstrapSpec, InstallSource, PlannedStep, SecretSources};
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
        InstallSource::LocalCopy => Some(
            crate::engine::local_virtualmin_sources(virtualmin_sources).map_err(|e| {
                drover_core::Error::InvalidValue {
                    what: "local copy of Webmin and Virtualmin",
                    input: virtualmin_sources
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    expected: e,
                }
            })?,
        ),
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
    let progress = BootstrapProgress::new(&steps);
    let bootstrap = store.start_bootstrap(ctx, &spec, &progress).await?;
    Ok(BootstrapPlan {
        dry_run,
        steps,
        bootstrap: Some(bootstrap),
    })
}
