//! `bootstrap_server`: a bare server brought into the fleet over SSH, one step after another
//! (drover-core's `plan_bootstrap`). Each step on the server first runs its check: done steps
//! are not done again, so a retried job resumes where the last one stopped. Every command is
//! recorded, with how it ended and the end of what it printed, as it runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_core::{
    BootstrapProgress, BootstrapState, BootstrapStep, CommandRecord, InstallSource, PlannedStep,
    SourceArchives, StepState, UPLOAD_DIR, certificate_read, output_tail, plan_bootstrap,
};
use drover_store::jobs::BootstrapServer;
use drover_store::{ServerBootstrap, StoreError};
use drover_virtualmin::{SshAccess, SshShell, VirtualminError};
use riverqueue::{Job, WorkContext, WorkOutcome};
use secrecy::{ExposeSecret, SecretString};
use sha2::Digest as _;

use crate::engine::Engine;

/// How long a command that installs may take (packages, Webmin's setup).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long any other command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Worth another try: the host did not answer, a step failed in a way that may pass
    /// (a mirror down), the first health check did not pass yet.
    #[error("{0}")]
    Retry(String),
}

/// Why a run stopped short.
enum Stop {
    /// Tried again later (until the job's attempts run out).
    Retry(String),
    /// Nothing will change by trying again: the bootstrap failed.
    Fail(String),
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<VirtualminError> for Stop {
    fn from(e: VirtualminError) -> Self {
        if e.kind.is_retryable() {
            Self::Retry(e.to_string())
        } else {
            Self::Fail(e.to_string())
        }
    }
}

pub async fn run(
    engine: Arc<Engine>,
    _context: WorkContext,
    job: Job<BootstrapServer>,
) -> Result<WorkOutcome, BootstrapError> {
    let id = job.args.bootstrap_id;
    let record = engine.store.bootstrap(id).await?;
    if record.state != BootstrapState::Running {
        return Ok(WorkOutcome::Complete);
    }
    let ctx = super::job_context(job.id());
    let last_attempt = job.row.attempt >= job.row.max_attempts;
    let mut run = Run {
        engine: &engine,
        ctx: &ctx,
        progress: record.progress.clone(),
        record,
    };
    let stopped = run.steps().await;
    let (state, error) = match stopped {
        Ok(()) => (BootstrapState::Done, None),
        Err(Stop::Store(e)) if !last_attempt => return Err(e.into()),
        Err(Stop::Store(e)) => (BootstrapState::Failed, Some(e.to_string())),
        Err(Stop::Retry(why)) if !last_attempt => {
            let note = format!(
                "attempt {} of {} stopped, tried again later: {why}",
                job.row.attempt, job.row.max_attempts
            );
            run.save(BootstrapState::Running, Some(&note)).await?;
            return Err(BootstrapError::Retry(why));
        }
        Err(Stop::Retry(why) | Stop::Fail(why)) => (BootstrapState::Failed, Some(why)),
    };
    run.save(state, error.as_deref()).await?;
    let mut tx = engine.store.write().await?;
    let action = match state {
        BootstrapState::Done => "server.bootstrapped",
        _ => "server.bootstrap_failed",
    };
    tx.audit(
        &ctx,
        action,
        format!("bootstrap:{id}"),
        serde_json::json!({ "server": run.record.server_id, "error": error }),
    )
    .await?;
    tx.commit().await?;
    Ok(match state {
        BootstrapState::Done => WorkOutcome::Complete,
        _ => WorkOutcome::Discard,
    })
}

struct Run<'a> {
    engine: &'a Engine,
    ctx: &'a drover_store::RequestContext,
    record: ServerBootstrap,
    progress: BootstrapProgress,
}

impl Run<'_> {
    async fn save(&self, state: BootstrapState, error: Option<&str>) -> Result<(), StoreError> {
        self.engine
            .store
            .save_bootstrap_progress(self.record.id, state, &self.progress, error)
            .await
    }

    async fn mark(
        &mut self,
        step: BootstrapStep,
        state: StepState,
        detail: Option<String>,
    ) -> Result<(), StoreError> {
        self.progress.set(step, state, detail);
        self.save(BootstrapState::Running, None).await
    }

    async fn steps(&mut self) -> Result<(), Stop> {
        let spec = self.record.spec.clone();
        let local = match spec.install {
            InstallSource::LocalCopy => {
                Some(local_sources(self.engine.virtualmin_sources.as_deref()).map_err(Stop::Fail)?)
            }
            InstallSource::Online => None,
        };
        let plan = plan_bootstrap(&spec, local.as_ref().map(|l| &l.archives));
        let ssh_key = self
            .engine
            .fleet
            .secret(&spec.ssh.key)
            .map_err(|e| Stop::Fail(format!("the SSH key cannot be read: {e}")))?;
        let password = self
            .engine
            .fleet
            .secret_or_create(&spec.api_credentials)
            .map_err(|e| {
                Stop::Fail(format!(
                    "the password of the Webmin user {} cannot be had: {e}",
                    spec.api_user
                ))
            })?;
        let access = SshAccess {
            host: spec.host.to_string(),
            port: spec.ssh.port,
            user: spec.ssh.user.clone(),
            key: ssh_key,
            host_key: spec.ssh.host_key.to_string(),
            timeout: INSTALL_TIMEOUT,
        };
        let mut shell = None;
        for planned in &plan {
            let done = matches!(
                self.progress.state_of(planned.step),
                Some(StepState::Done | StepState::AlreadyDone)
            );
            if done {
                continue;
            }
            self.mark(planned.step, StepState::Running, None).await?;
            let outcome = match planned.step {
                BootstrapStep::Register => self.register().await,
                BootstrapStep::FirstHealthCheck => self.first_health_check().await,
                _ => {
                    // Connected once, at the first step on the server; a connection that
                    // fails fails that step.
                    if shell.is_none() {
                        match SshShell::connect(&access).await {
                            Ok(open) => shell = Some(open),
                            Err(e) => {
                                let stop = Stop::from(e);
                                self.fail_step(planned.step, &stop).await?;
                                return Err(stop);
                            }
                        }
                    }
                    let Some(open) = &shell else {
                        unreachable!("connected above")
                    };
                    self.on_server(open, planned, &password, local.as_ref())
                        .await
                }
            };
            match outcome {
                Ok((state, detail)) => self.mark(planned.step, state, detail).await?,
                Err(stop) => {
                    self.fail_step(planned.step, &stop).await?;
                    if let Some(shell) = shell {
                        shell.close().await;
                    }
                    return Err(stop);
                }
            }
        }
        if let Some(shell) = shell {
            shell.close().await;
        }
        Ok(())
    }

    async fn fail_step(&mut self, step: BootstrapStep, stop: &Stop) -> Result<(), StoreError> {
        let why = match stop {
            Stop::Retry(why) | Stop::Fail(why) => why.clone(),
            Stop::Store(e) => e.to_string(),
        };
        self.mark(step, StepState::Failed, Some(why)).await
    }

    /// One step on the server: its check, and when that says it is not done, its uploads,
    /// its script, and its check again.
    async fn on_server(
        &mut self,
        shell: &SshShell,
        planned: &PlannedStep,
        password: &SecretString,
        local: Option<&LocalSources>,
    ) -> Result<(StepState, Option<String>), Stop> {
        let stdin = planned
            .reads_password
            .then(|| format!("{}\n", password.expose_secret()));
        let stdin = stdin.as_deref().map(str::as_bytes);
        if let Some(check) = &planned.check {
            let checked = self
                .exec(shell, planned.step, "check", check, stdin)
                .await?;
            if checked.status == 0 {
                return Ok((StepState::AlreadyDone, last_line(&checked.stdout)));
            }
        }
        for name in &planned.uploads {
            let local = local.ok_or_else(|| Stop::Fail("no local copy to upload".into()))?;
            let bytes = local.content(name).await.map_err(Stop::Fail)?;
            let command = format!("install -d -m 700 {UPLOAD_DIR} && cat >{UPLOAD_DIR}/{name}");
            let sent = self
                .exec(shell, planned.step, "upload", &command, Some(&bytes))
                .await?;
            if sent.status != 0 {
                return Err(Stop::Retry(format!(
                    "{name} could not be copied to the server: {}",
                    sent.combined.trim()
                )));
            }
        }
        let script = planned.run.as_deref().unwrap_or_default();
        let ran = self.exec(shell, planned.step, "run", script, stdin).await?;
        if ran.status != 0 {
            let why = format!(
                "{} ended with status {}: {}",
                planned.step,
                ran.status,
                last_lines(&ran.combined)
            );
            // A system drover cannot run on stays so; anything else may pass next time (a
            // mirror that was down, a lock held by an unattended upgrade).
            return Err(if planned.step == BootstrapStep::CheckSystem {
                Stop::Fail(why)
            } else {
                Stop::Retry(why)
            });
        }
        if planned.step == BootstrapStep::ReadCertificate {
            let pin = certificate_read(&ran.stdout).map_err(|e| {
                Stop::Fail(format!("the certificate's SHA-256 could not be read: {e}"))
            })?;
            self.progress.certificate_sha256 = Some(pin.to_hex());
            return Ok((StepState::Done, Some(pin.to_hex())));
        }
        if let Some(check) = &planned.check {
            let checked = self
                .exec(shell, planned.step, "check", check, stdin)
                .await?;
            if checked.status != 0 {
                return Err(Stop::Retry(format!(
                    "{} ran, but its check still says: {}",
                    planned.step,
                    last_lines(&checked.combined)
                )));
            }
        }
        Ok((StepState::Done, last_line(&ran.stdout)))
    }

    /// Runs one command, recorded (and saved) whatever its end.
    async fn exec(
        &mut self,
        shell: &SshShell,
        step: BootstrapStep,
        kind: &str,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<drover_virtualmin::CommandOutput, Stop> {
        let timeout = match step {
            BootstrapStep::InstallPackages
            | BootstrapStep::InstallVirtualmin
            | BootstrapStep::Fail2ban => INSTALL_TIMEOUT,
            _ => COMMAND_TIMEOUT,
        };
        let started_at = jiff::Timestamp::now();
        let started = Instant::now();
        let ran = tokio::time::timeout(timeout, shell.exec(command, stdin)).await;
        let (exit_status, output, result) = match ran {
            Ok(Ok(out)) => (Some(out.status), output_tail(&out.combined), Ok(out)),
            Ok(Err(e)) => (None, e.to_string(), Err(Stop::from(e))),
            Err(_) => {
                let why = format!("{step}: no end within {} s", timeout.as_secs());
                (None, why.clone(), Err(Stop::Retry(why)))
            }
        };
        // An upload's command is recorded, not the archive it carried.
        self.progress.commands.push(CommandRecord {
            step,
            kind: kind.to_owned(),
            command: match (kind, stdin) {
                ("upload", Some(bytes)) => format!("{command}  # {} bytes", bytes.len()),
                _ => command.to_owned(),
            },
            exit_status,
            output,
            started_at,
            seconds: started.elapsed().as_secs_f64(),
        });
        self.save(BootstrapState::Running, None).await?;
        result
    }

    async fn register(&mut self) -> Result<(StepState, Option<String>), Stop> {
        let pin = self
            .progress
            .certificate_sha256
            .as_deref()
            .map(drover_core::CertFingerprint::parse)
            .transpose()
            .map_err(|e| Stop::Fail(e.to_string()))?
            .ok_or_else(|| Stop::Fail("the certificate was not read".into()))?;
        let spec = self.record.spec.server_spec(Some(pin));
        // A name or an address taken since the bootstrap started stays taken.
        let server = self
            .engine
            .store
            .register_bootstrapped_server(self.ctx, self.record.id, &spec)
            .await
            .map_err(|e| match e {
                StoreError::Duplicate { .. } | StoreError::Conflict { .. } => {
                    Stop::Fail(e.to_string())
                }
                e => Stop::Store(e),
            })?;
        // Registered by an earlier run: the pin read now is the one to keep.
        let server = if server.spec.pinned_cert_sha256 == Some(pin) {
            server
        } else {
            let patch = drover_core::ServerPatch {
                pinned_cert_sha256: Some(Some(pin)),
                ..drover_core::ServerPatch::default()
            };
            crate::commands::update_server(&*self.engine.store, self.ctx, server.id, patch)
                .await
                .map_err(|e| Stop::Fail(e.to_string()))?
        };
        self.record.server_id = Some(server.id);
        Ok((
            StepState::Done,
            Some(format!(
                "server {} ({}), in maintenance",
                server.id, server.spec.name
            )),
        ))
    }

    /// The server is checked as health checks check it; it leaves maintenance once it
    /// answers drover's user with the pinned certificate.
    async fn first_health_check(&mut self) -> Result<(StepState, Option<String>), Stop> {
        let id = match self.record.server_id {
            Some(id) => id,
            None => self
                .engine
                .store
                .bootstrap(self.record.id)
                .await?
                .server_id
                .ok_or_else(|| Stop::Fail("the server was not registered".into()))?,
        };
        let server = self.engine.store.server(id).await?;
        let probe = crate::engine::health::probe_server(self.engine, &server).await;
        // The certificate read from Webmin's file is not the one it serves: trying again
        // would read the same file. Once an operator fixed it, a resumed run reads it again
        // and pins what it reads.
        if probe.pin_matches == Some(false) {
            let pinned = self.progress.certificate_sha256.take().unwrap_or_default();
            self.progress
                .set(BootstrapStep::ReadCertificate, StepState::Waiting, None);
            self.progress
                .set(BootstrapStep::Register, StepState::Waiting, None);
            return Err(Stop::Fail(format!(
                "{} serves another certificate than the one its miniserv.conf names (read \
                 {pinned}): fix Webmin's certfile/keyfile, then resume this bootstrap",
                server.spec.name
            )));
        }
        if !probe.api_ok || probe.pin_matches != Some(true) {
            let why = probe
                .error
                .clone()
                .unwrap_or_else(|| "its certificate is not the pinned one".into());
            return Err(Stop::Retry(format!(
                "the first health check of {} did not pass: {why}",
                server.spec.name
            )));
        }
        if server.state == drover_core::ServerState::Maintenance {
            crate::commands::set_maintenance(&*self.engine.store, self.ctx, id, false)
                .await
                .map_err(|e| Stop::Fail(e.to_string()))?;
        }
        Ok((
            StepState::Done,
            Some(format!(
                "{} answered as {} in {} ms with the pinned certificate",
                server.spec.name, server.spec.api_user, probe.latency_ms
            )),
        ))
    }
}

fn last_line(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(5)..].join(" / ")
}

/// The archives of a local-copy install, checked against their SHA256SUMS here before
/// they are sent (and there again before they are installed).
struct LocalSources {
    dir: PathBuf,
    archives: SourceArchives,
    /// The SHA256SUMS sent along: the two archives' lines only.
    sums: String,
}

impl LocalSources {
    async fn content(&self, name: &str) -> Result<Vec<u8>, String> {
        if name == "SHA256SUMS" {
            return Ok(self.sums.clone().into_bytes());
        }
        let path = self.dir.join(name);
        tokio::fs::read(&path)
            .await
            .map_err(|e| format!("{} cannot be read: {e}", path.display()))
    }
}

/// The archives of the local copy in `dir`, checked against their SHA256SUMS (for a plan).
pub(crate) fn archives(dir: Option<&Path>) -> Result<SourceArchives, String> {
    local_sources(dir).map(|l| l.archives)
}

/// The folder's Webmin and Virtualmin archives, each matching its line in SHA256SUMS.
fn local_sources(dir: Option<&Path>) -> Result<LocalSources, String> {
    let dir = dir.ok_or(
        "no local copy of Webmin and Virtualmin is configured: set DROVER_VIRTUALMIN_SOURCES \
         to a folder holding webmin-*.tar.xz, virtualmin-gpl-*.tar.xz and their SHA256SUMS, \
         or install online",
    )?;
    let sums_path = dir.join("SHA256SUMS");
    let sums = std::fs::read_to_string(&sums_path)
        .map_err(|e| format!("{} cannot be read: {e}", sums_path.display()))?;
    let listed: Vec<(&str, &str)> = sums
        .lines()
        .filter_map(|l| l.split_once(char::is_whitespace))
        .map(|(sum, name)| (sum, name.trim().trim_start_matches('*')))
        .collect();
    let find = |prefix: &str| {
        listed
            .iter()
            .find(|(_, name)| name.starts_with(prefix) && name.ends_with(".tar.xz"))
            .copied()
            .ok_or_else(|| format!("{} lists no {prefix}*.tar.xz", sums_path.display()))
    };
    let (webmin, virtualmin) = (find("webmin-")?, find("virtualmin-gpl-")?);
    for (sum, name) in [webmin, virtualmin] {
        let path = dir.join(name);
        let bytes =
            std::fs::read(&path).map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
        let actual = hex::encode(sha2::Sha256::digest(&bytes));
        if !actual.eq_ignore_ascii_case(sum) {
            return Err(format!(
                "{} does not match its SHA256SUMS line ({actual}, not {sum}): nothing was sent",
                path.display()
            ));
        }
    }
    let archives = SourceArchives::new(webmin.1, virtualmin.1).map_err(|e| e.to_string())?;
    Ok(LocalSources {
        dir: dir.to_owned(),
        archives,
        sums: format!(
            "{}  {}\n{}  {}\n",
            webmin.0, webmin.1, virtualmin.0, virtualmin.1
        ),
    })
}
