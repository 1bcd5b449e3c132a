//! Several `drover worker` processes on one PostgreSQL and three simulators: every domain is
//! created exactly once, none is lost, through crashes and through a flaky fleet.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_core::{CustomerSpec, DomainName, Transition};
use drover_store::{NewService, PgStore, RequestContext, Store};
use drover_testkit::TestPostgres;
use drover_testkit::virtualmin::{Fault, SimConfig, VirtualminSim};
use tokio::process::{Child, Command};

const DROVER: &str = env!("CARGO_BIN_EXE_drover");

struct Cluster {
    db: TestPostgres,
    store: Arc<PgStore>,
    sims: Vec<VirtualminSim>,
    dir: tempfile::TempDir,
    workers: Vec<Child>,
    extra_env: Vec<(&'static str, &'static str)>,
    /// Held while the cluster lives (dropped last, after its workers).
    _one_at_a_time: tokio::sync::MutexGuard<'static, ()>,
}

/// One cluster at a time: three worker processes with 16 connections each, twice over, with the
/// other PostgreSQL tests beside them, would pass PostgreSQL's 100 connections and time out.
static CLUSTERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn ctx() -> RequestContext {
    RequestContext {
        actor: "test".into(),
        correlation_id: "scale".into(),
    }
}

impl Cluster {
    async fn new(
        sims: usize,
        sim_config: SimConfig,
        rate_qps: f64,
        extra_env: Vec<(&'static str, &'static str)>,
    ) -> Self {
        let one_at_a_time = CLUSTERS.lock().await;
        let db = TestPostgres::create().await.expect("PostgreSQL for tests");
        let store = Arc::new(PgStore::open(db.url()).await.unwrap());
        let dir = tempfile::tempdir().unwrap();
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, &sim_config.password).unwrap();
        let plan = serde_json::json!({"name": "Web", "features": ["dir", "web"]});
        drover::commands::create_plan(&*store, &ctx(), serde_json::from_value(plan).unwrap())
            .await
            .unwrap();
        let mut started = Vec::new();
        for i in 0..sims {
            let sim = VirtualminSim::start(SimConfig {
                tls: true,
                ..sim_config.clone()
            })
            .await
            .unwrap();
            sim.with_state(|s| s.plans.push("Web".into()));
            let extra = serde_json::json!({"capacity": 5000, "rate_qps": rate_qps});
            let server = sim.server_record(&format!("vm{i}"), &password_file, extra);
            drover::commands::create_server(
                &*store,
                &ctx(),
                serde_json::from_value(server).unwrap(),
            )
            .await
            .unwrap();
            started.push(sim);
        }
        Self {
            db,
            store,
            sims: started,
            dir,
            workers: Vec::new(),
            extra_env,
            _one_at_a_time: one_at_a_time,
        }
    }

    fn spawn_worker(&mut self) {
        let mut command = Command::new(DROVER);
        command
            .arg("worker")
            .current_dir(self.dir.path())
            .env("DATABASE_URL", self.db.url())
            .env("DROVER_SECRETS_DIR", self.dir.path())
            .env("DROVER_SEAL_KEY", "42".repeat(32))
            .env("DROVER_WORKERS", "10")
            .env("DROVER_JOB_TIMEOUT", "4")
            .env("DROVER_JOB_RETRY_MAX_DELAY", "2")
            .env("RUST_LOG", "error")
            // These proofs count provisioning jobs and calls: no periodic fleet work beside them.
            .env("DROVER_HEALTH_INTERVAL", "0")
            .env("DROVER_DRIFT_INTERVAL", "0")
            .env("DROVER_USAGE_INTERVAL", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        for (name, value) in &self.extra_env {
            command.env(name, value);
        }
        self.workers.push(command.spawn().unwrap());
    }

    /// `count` services, each activated: billing's work, as fast as the database allows.
    async fn sell(&self, count: usize) {
        let customer = drover::commands::create_customer(
            &*self.store,
            &ctx(),
            CustomerSpec::new("Bulk", None, None).unwrap(),
        )
        .await
        .unwrap();
        for i in 0..count {
            let new = NewService {
                customer_id: customer.id,
                plan_id: drover_core::PlanId(1),
                domain: DomainName::parse(&format!("site-{i:05}.example.ro")).unwrap(),
            };
            let service = crate::create_service(&*self.store, &ctx(), new)
                .await
                .unwrap();
            crate::transition_service(&*self.store, &ctx(), service.id, Transition::Activate, None)
                .await
                .unwrap();
        }
    }

    /// Waits until no job is left to run; returns (completed, discarded).
    async fn settle(&self, within: Duration) -> (i64, i64) {
        let deadline = Instant::now() + within;
        loop {
            let (open, completed, discarded): (i64, i64, i64) = sqlx::query_as(
                "SELECT COUNT(*) FILTER (WHERE state NOT IN ('completed', 'discarded', 'cancelled')), \
                 COUNT(*) FILTER (WHERE state = 'completed'), COUNT(*) FILTER (WHERE state = 'discarded') \
                 FROM river_job",
            )
            .fetch_one(self.store.pool())
            .await
            .unwrap();
            if open == 0 {
                return (completed, discarded);
            }
            assert!(
                Instant::now() < deadline,
                "{open} jobs still open after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every domain is on exactly one server, and `create-domain` reached a server once for
    /// it: a second try would show even though the server refuses it.
    fn assert_each_created_once(&self, count: usize) {
        let mut seen = std::collections::BTreeMap::new();
        let mut creates = std::collections::BTreeMap::new();
        for sim in &self.sims {
            for name in sim.domain_names() {
                *seen.entry(name).or_insert(0) += 1;
            }
            for (domain, programs) in sim.stats().calls_by_domain {
                *creates.entry(domain).or_insert(0) +=
                    programs.get("create-domain").copied().unwrap_or(0);
            }
        }
        assert_eq!(seen.len(), count, "every account's domain exists");
        assert!(seen.values().all(|n| *n == 1), "no domain on two servers");
        let twice: Vec<_> = creates.iter().filter(|(_, n)| **n != 1).collect();
        assert!(twice.is_empty(), "created other than once: {twice:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_provision_a_thousand_accounts_once_each() {
    let mut cluster = Cluster::new(3, SimConfig::default(), 200.0, Vec::new()).await;
    for _ in 0..3 {
        cluster.spawn_worker();
    }
    cluster.sell(1000).await;
    let (completed, discarded) = cluster.settle(Duration::from_secs(240)).await;
    assert_eq!((completed, discarded), (1000, 0));
    cluster.assert_each_created_once(1000);
    let per_server: Vec<usize> = cluster
        .sims
        .iter()
        .map(|s| s.domain_names().len())
        .collect();
    assert!(
        per_server.iter().all(|n| *n > 250),
        "placement spreads the load: {per_server:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_lose_nothing_and_create_nothing_twice() {
    // Slow enough that kills land in the middle of calls.
    let sims = SimConfig {
        latency_scale: 0.1,
        ..SimConfig::default()
    };
    let mut cluster = Cluster::new(3, sims, 200.0, Vec::new()).await;
    for _ in 0..3 {
        cluster.spawn_worker();
    }
    cluster.sell(200).await;
    for round in 0..12 {
        tokio::time::sleep(Duration::from_millis(200 + 97 * (round % 7))).await;
        let victim = rand::random_range(0..cluster.workers.len());
        cluster.workers[victim].kill().await.unwrap();
        cluster.workers.remove(victim);
        cluster.spawn_worker();
    }
    let (completed, discarded) = cluster.settle(Duration::from_secs(180)).await;
    assert_eq!((completed, discarded), (200, 0));
    cluster.assert_each_created_once(200);
    let rescued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM river_job WHERE attempt > 1")
        .fetch_one(cluster.store.pool())
        .await
        .unwrap();
    assert!(rescued > 0, "the kills should have caught jobs mid-run");
    println!("{rescued} jobs were run again after a worker was killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_fleet_ends_with_every_job_done_or_refused_and_no_rate_exceeded() {
    let env = vec![
        // A job stops at its time: one whose calls hang and are retried needs longer than the
        // 4 s the other proofs give.
        ("DROVER_JOB_TIMEOUT", "60"),
        ("VIRTUALMIN_API_REQUEST_TIMEOUT", "1"),
        ("VIRTUALMIN_PROVISIONING_TIMEOUT", "2"),
        ("VIRTUALMIN_RETRY_DELAY", "0.05"),
    ];
    // A modest rate: calls 200 ms apart leave the simulators' own scheduling (they share this
    // process and two cores with the workers) no room to bunch arrivals into a false excess.
    let mut cluster = Cluster::new(3, SimConfig::default(), 5.0, env).await;
    for sim in &cluster.sims {
        sim.set_fault_rate(
            0.3,
            vec![
                Fault::Status(500),
                Fault::Status(502),
                Fault::Drop,
                Fault::Hang,
                Fault::Garble,
            ],
        );
    }
    for _ in 0..3 {
        cluster.spawn_worker();
    }
    cluster.sell(90).await;
    let (completed, discarded) = cluster.settle(Duration::from_secs(300)).await;
    assert_eq!(completed + discarded, 90, "every job ended");
    // A discarded job says why.
    let filter = drover_store::JobFilter {
        states: vec![drover_store::JobState::Discarded],
        account_id: None,
        limit: Some(1000),
    };
    for job in cluster.store.jobs(filter).await.unwrap() {
        let reason = job
            .output
            .as_ref()
            .and_then(|o| o["discarded"].as_str())
            .unwrap_or_default();
        let errors = job.errors.join("; ");
        assert!(
            !reason.is_empty() || !errors.is_empty(),
            "a discarded job without a reason: {job:?}"
        );
    }
    // Every completed account exists once, created once; a discarded one is marked failed.
    let failed = cluster
        .store
        .accounts(drover_store::AccountFilter {
            failed: true,
            ..drover_store::AccountFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), usize::try_from(discarded).unwrap());
    // (A job discarded after its create landed leaves its domain too.)
    let on_servers: usize = cluster.sims.iter().map(|s| s.domain_names().len()).sum();
    assert!(
        on_servers >= usize::try_from(completed).unwrap() && on_servers <= 90,
        "every completed account is on a server: {on_servers} domains, {completed} completed"
    );
    assert!(
        completed >= 80,
        "faults on 30 % of calls, retried: most accounts get through ({completed} of 90)"
    );
    for sim in &cluster.sims {
        let stats = sim.stats();
        // 5 calls a second on average, and at most two more in a window for arrivals the
        // shared cores delayed into the next second.
        let span = (stats.last_arrival.unwrap() - stats.first_arrival.unwrap()).as_secs_f64();
        let average = (stats.requests - 1) as f64 / span;
        assert!(
            average <= 5.0 * 1.05,
            "rate exceeded: {average:.2} a second"
        );
        assert!(
            stats.max_calls_per_second <= 7,
            "rate exceeded: {} in one second",
            stats.max_calls_per_second
        );
        let twice: Vec<_> = stats
            .calls_by_domain
            .iter()
            .filter(|(_, p)| p.get("create-domain").copied().unwrap_or(0) > 1)
            .collect();
        assert!(twice.is_empty(), "created more than once: {twice:?}");
    }
    println!("flaky fleet: {completed} completed, {discarded} discarded");
}
