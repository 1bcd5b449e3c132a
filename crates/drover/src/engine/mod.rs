//! The workers: River clients that work drover's jobs against the fleet.

mod account_job;
mod content;
mod converge;
pub mod dns;
pub mod drift;
mod fleet;
pub mod health;
mod jobs;
pub mod seal;
mod secrets;
pub(crate) mod ssh_host;
pub mod usage;
pub mod webhooks;

use std::sync::Arc;

use drover_core::PlacementPolicy;
use drover_store::Store;
use riverqueue::{QueueConfig, RunHandle, Workers};

pub use dns::{Dns, DnsSettings};
pub use fleet::{Fleet, FleetError};
pub(crate) use jobs::bootstrap_server::archives as local_virtualmin_sources;
pub use seal::Sealer;
pub use secrets::Secrets;
pub use webhooks::{WebhookPolicy, Webhooks};

/// What the jobs share.
#[derive(Debug)]
pub struct Engine {
    pub store: Arc<dyn Store>,
    pub fleet: Fleet,
    pub dns: Dns,
    pub sealer: Arc<Sealer>,
    pub placement: PlacementPolicy,
    /// `VIRTUALMIN_AUTO_PROVISIONING_ENABLED`: off makes converge jobs wait.
    pub auto_provisioning: bool,
    /// The longest a job may run; a job held longer by a crashed worker is rescued after it.
    pub job_timeout: std::time::Duration,
    /// The longest wait between two tries of a failing job.
    pub retry_max_delay: std::time::Duration,
    /// Health checks, drift scans and usage syncs: what they judge and how often they run.
    pub fleet_policy: FleetPolicy,
    /// Where events are sent from, and how a failing receiver is tried again.
    pub webhooks: Webhooks,
    /// `DROVER_VIRTUALMIN_SOURCES`: the folder of Webmin's and Virtualmin's archives a
    /// bootstrap installs from (with their SHA256SUMS).
    pub virtualmin_sources: Option<std::path::PathBuf>,
}

impl Default for FleetPolicy {
    /// Thresholds at their defaults, no periodic work (engines built by hand choose theirs).
    fn default() -> Self {
        Self {
            health: Default::default(),
            health_interval: None,
            drift: Default::default(),
            drift_interval: None,
            usage_interval: None,
            backup_interval: None,
            failed_retry_interval: None,
            migration_grace: std::time::Duration::from_secs(7 * 86_400),
            failover: false,
        }
    }
}

/// The periodic fleet work and its thresholds.
#[derive(Debug, Clone)]
pub struct FleetPolicy {
    pub health: drover_core::HealthPolicy,
    /// How often the elected leader checks the fleet's health (`None`: never).
    pub health_interval: Option<std::time::Duration>,
    pub drift: drover_core::DriftPolicy,
    /// How often the elected leader scans every server for drift and repairs it by policy
    /// (`None`: only when an operator asks).
    pub drift_interval: Option<std::time::Duration>,
    /// How often the elected leader pulls usage figures from every server (`None`: only when
    /// an operator asks).
    pub usage_interval: Option<std::time::Duration>,
    /// How often each account is backed up to the default destination (`None`: only when
    /// asked). The elected leader looks for accounts due every quarter of an hour at most.
    pub backup_interval: Option<std::time::Duration>,
    /// How often the elected leader tries the failed accounts again (`None`: never).
    pub failed_retry_interval: Option<std::time::Duration>,
    /// How long a moved account's old copy is kept (disabled) unless an operator confirms.
    pub migration_grace: std::time::Duration,
    /// When a server becomes unavailable, recreate its accounts elsewhere at once.
    pub failover: bool,
}

/// Retries after 1 s, 2 s, 4 s, … up to a ceiling, with jitter: a flaky server is tried again
/// soon, and a failing job still gets through its attempts in hours, not the days of River's
/// quartic default.
#[derive(Debug, Clone, Copy)]
pub struct CappedBackoff {
    pub max_delay: std::time::Duration,
}

impl riverqueue::RetryPolicy for CappedBackoff {
    fn next_retry(
        &self,
        job: &riverqueue::JobRow,
        _error: &riverqueue::WorkError,
        _now: jiff::Timestamp,
    ) -> std::time::Duration {
        let exponent = u32::try_from(job.attempt.max(1) - 1).unwrap_or(0).min(20);
        let delay = std::time::Duration::from_secs(1 << exponent).min(self.max_delay);
        delay.mul_f64(0.8 + 0.4 * rand::random::<f64>())
    }
}

/// The least time between two fetches of one queue.
const FETCH_COOLDOWN: std::time::Duration = std::time::Duration::from_millis(2);

/// Starts working jobs with `concurrency` at a time; stop through the returned handle.
pub fn start(engine: Arc<Engine>, concurrency: usize) -> Result<RunHandle, riverqueue::Error> {
    start_handing_back(engine, concurrency, HandBack::new())
}

/// Cancelled when a stopping process's grace period is over: the jobs still running hand
/// their work back (River makes them available again) instead of finishing.
pub type HandBack = riverqueue::tokio_util::sync::CancellationToken;

/// As [`start`], with running jobs handing their work back once `hand_back` is cancelled.
pub fn start_handing_back(
    engine: Arc<Engine>,
    concurrency: usize,
    hand_back: HandBack,
) -> Result<RunHandle, riverqueue::Error> {
    let mut workers = Workers::new();
    jobs::register(&mut workers, &engine, &hand_back)?;
    // A crashed worker's jobs are rescued once they have run half as long again as allowed.
    let rescue_after =
        engine.job_timeout + (engine.job_timeout / 2).max(std::time::Duration::from_secs(2));
    let maintenance = riverqueue::MaintenanceConfig::default()
        .with_rescue_after(rescue_after)
        .with_rescuer_interval((rescue_after / 2).min(std::time::Duration::from_secs(30)));
    let mut builder = engine.store.job_client_builder();
    // Periodic work, enqueued by whichever process River elects leader.
    if let Some(interval) = engine.fleet_policy.health_interval {
        builder = builder.periodic_job(riverqueue::PeriodicJob::with_options(
            riverqueue::IntervalSchedule::new(interval)?,
            || drover_store::jobs::CheckFleetHealth {
                server_id: None,
                plans: false,
            },
            riverqueue::PeriodicJobOpts::new()
                .with_id("fleet-health")
                .with_run_on_start(true),
        ));
    }
    if let Some(interval) = engine.fleet_policy.drift_interval {
        builder = builder.periodic_job(riverqueue::PeriodicJob::with_options(
            riverqueue::IntervalSchedule::new(interval)?,
            || drover_store::jobs::ScanDrift {
                server_id: None,
                repair: drover_store::jobs::DriftRepair::ByPolicy,
            },
            riverqueue::PeriodicJobOpts::new().with_id("drift-scan"),
        ));
    }
    if let Some(interval) = engine.fleet_policy.usage_interval {
        builder = builder.periodic_job(riverqueue::PeriodicJob::with_options(
            riverqueue::IntervalSchedule::new(interval)?,
            || drover_store::jobs::SyncUsage { server_id: None },
            riverqueue::PeriodicJobOpts::new().with_id("usage-sync"),
        ));
    }
    if let Some(every) = engine.fleet_policy.backup_interval {
        let look = every.min(std::time::Duration::from_secs(900));
        let every_seconds = every.as_secs().max(1);
        builder = builder.periodic_job(riverqueue::PeriodicJob::with_options(
            riverqueue::IntervalSchedule::new(look)?,
            move || drover_store::jobs::ScheduleBackups { every_seconds },
            riverqueue::PeriodicJobOpts::new().with_id("backup-schedule"),
        ));
    }
    if let Some(interval) = engine.fleet_policy.failed_retry_interval {
        builder = builder.periodic_job(riverqueue::PeriodicJob::with_options(
            riverqueue::IntervalSchedule::new(interval)?,
            || drover_store::jobs::RetryFailedAccounts {},
            riverqueue::PeriodicJobOpts::new().with_id("retry-failed-accounts"),
        ));
    }
    let client = builder
        // A job's end fetches the next at once while work is waiting (River's default waits
        // 100 ms between fetches, which held every queue near ten fetches a second); idle
        // queues still wait on inserts or the poll.
        .fetch_cooldown(FETCH_COOLDOWN)
        .job_timeout(engine.job_timeout)
        .retry_policy(CappedBackoff {
            max_delay: engine.retry_max_delay,
        })
        .maintenance(maintenance)
        .workers(workers)
        .queue(
            drover_store::jobs::CONVERGE_QUEUE,
            QueueConfig::new(concurrency.max(1)),
        )
        .queue(
            drover_store::jobs::DNS_QUEUE,
            QueueConfig::new(concurrency.clamp(1, 4)),
        )
        .queue(drover_store::jobs::FLEET_QUEUE, QueueConfig::new(2))
        .queue(
            drover_store::jobs::BACKUP_QUEUE,
            QueueConfig::new(concurrency.clamp(1, 4)),
        )
        .queue(drover_store::jobs::BOOTSTRAP_QUEUE, QueueConfig::new(2))
        .queue(
            drover_store::jobs::WEBHOOK_QUEUE,
            QueueConfig::new(concurrency.clamp(1, 4)),
        )
        .build()?;
    client.start()
}

impl Engine {
    /// The engine a configured drover process runs.
    pub async fn from_config(
        store: Arc<dyn Store>,
        config: &crate::config::Config,
    ) -> Result<Self, StartError> {
        let sealer = Arc::new(seal::operator_key(&*store, &config.seal_key).await?);
        let webhooks = Webhooks::new(config.webhooks.clone()).map_err(StartError::Webhooks)?;
        Ok(Self {
            store: Arc::clone(&store),
            fleet: Fleet::shared(
                config.virtualmin.clone(),
                Arc::clone(&store),
                config.secrets(),
            ),
            dns: Dns::new(Arc::clone(&store), config.dns.clone(), config.secrets()),
            sealer,
            placement: config.placement,
            auto_provisioning: config.virtualmin.auto_provisioning_enabled,
            job_timeout: config.job_timeout,
            retry_max_delay: config.retry_max_delay,
            fleet_policy: config.fleet.clone(),
            webhooks,
            virtualmin_sources: config.virtualmin_sources.clone(),
        })
    }
}

/// Why the engine of a configured process could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Seal(#[from] seal::SealError),
    #[error("the webhook client cannot be made: {0}")]
    Webhooks(String),
}

impl Engine {
    /// Opens a sealed account password; when it does not open because the key was rotated
    /// since this process started, says so: the process must restart with the new key.
    pub async fn open_sealed(&self, sealed: &[u8]) -> Result<secrecy::SecretString, String> {
        let error = match self.sealer.open(sealed) {
            Ok(password) => return Ok(password),
            Err(e) => e,
        };
        match self.store.seal_key_id().await {
            Ok(Some(recorded)) if recorded != self.sealer.id() => Err(format!(
                "the operator key was rotated to {recorded} while this process runs with {}: \
                 restart it with the new key",
                self.sealer.id()
            )),
            _ => Err(error.to_string()),
        }
    }
}

/// The servers a drift scan or usage sync covers: the one named, or every healthy or degraded
/// one (a server in trouble cannot be observed exactly; one in maintenance or draining is the
/// operator's).
pub async fn observable_servers(
    store: &dyn Store,
    only: Option<drover_core::ServerId>,
) -> Result<Vec<drover_store::Server>, drover_store::StoreError> {
    use drover_core::ServerState;
    Ok(match only {
        Some(id) => vec![store.server(id).await?],
        None => store
            .servers(drover_store::Page::new(
                None,
                Some(drover_store::Page::MAX_LIMIT),
            ))
            .await?
            .into_iter()
            .filter(|s| matches!(s.state, ServerState::Healthy | ServerState::Degraded))
            .collect(),
    })
}

/// Every account on a server, all pages of them.
pub async fn accounts_on(
    store: &dyn Store,
    server: drover_core::ServerId,
) -> Result<Vec<drover_store::Account>, drover_store::StoreError> {
    use drover_store::{AccountFilter, Page};
    let mut accounts: Vec<drover_store::Account> = Vec::new();
    loop {
        let page = store
            .accounts(AccountFilter {
                domain: None,
                server_id: Some(server),
                failed: false,
                page: Page::new(accounts.last().map(|a| a.id.get()), Some(Page::MAX_LIMIT)),
            })
            .await?;
        let full = page.len() == Page::MAX_LIMIT as usize;
        accounts.extend(page);
        if !full {
            return Ok(accounts);
        }
    }
}
