//! Provisioning throughput. `cargo bench -p drover --bench provision [-- ACCOUNTS]`
//!
//! 1. ACCOUNTS accounts (default 1,000) over 10 simulators, each limited by drover to 2 calls/s
//!    (VIRTUALMIN_RATE_QPS's default), simulator latency scaled to 1 %: achieved Virtualmin calls
//!    per second against the limit (the sum of the servers' rates), as a ratio.
//! 2. The queue's own overhead: simulators answering at once and no rate limit to speak of,
//!    jobs per second on SQLite and on PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover::engine::{Engine, Fleet, Sealer};
use drover_core::{CustomerSpec, DomainName, PlacementPolicy, Transition};
use drover_store::{NewService, RequestContext, Store};
use drover_testkit::virtualmin::{SimConfig, VirtualminSim};
use drover_virtualmin::VirtualminSettings;

fn ctx() -> RequestContext {
    RequestContext {
        actor: "bench".into(),
        correlation_id: "bench".into(),
    }
}

struct Run {
    seconds: f64,
    calls: u64,
    /// Calls per second while calls flowed: per server, the intervals between its first and
    /// last call over that span, summed.
    steady_rate: f64,
    max_per_second: Vec<u32>,
}

async fn provision(
    store: Arc<dyn Store>,
    servers: usize,
    qps: f64,
    latency_scale: f64,
    accounts: usize,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "secret").unwrap();
    let secrets = Arc::new(drover::engine::Secrets::new(
        drover_core::SecretSources {
            dir: dir.path().to_owned(),
            env_prefix: drover_core::SecretSources::DEFAULT_ENV_PREFIX.into(),
        },
        Vec::new(),
    ));
    let plan = serde_json::json!({"name": "Web", "features": ["dir", "web"]});
    drover::commands::create_plan(&*store, &ctx(), serde_json::from_value(plan).unwrap())
        .await
        .unwrap();
    let mut sims = Vec::new();
    for i in 0..servers {
        let sim = VirtualminSim::start(SimConfig {
            tls: true,
            latency_scale,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        sim.with_state(|s| s.plans.push("Web".into()));
        let extra = serde_json::json!({"capacity": 100_000, "rate_qps": qps});
        let server = sim.server_record(&format!("vm{i}"), &password, extra);
        drover::commands::create_server(&*store, &ctx(), serde_json::from_value(server).unwrap())
            .await
            .unwrap();
        sims.push(sim);
    }
    let customer = drover::commands::create_customer(
        &*store,
        &ctx(),
        CustomerSpec::new("Bench", None, None).unwrap(),
    )
    .await
    .unwrap();
    for i in 0..accounts {
        let new = NewService {
            customer_id: customer.id,
            plan_id: drover_core::PlanId(1),
            domain: DomainName::parse(&format!("bench-{i:05}.example.ro")).unwrap(),
        };
        let service = drover::commands::create_service(
            &*store,
            &ctx(),
            new.customer_id,
            new.plan_id,
            new.domain.as_str(),
            false,
        )
        .await
        .unwrap()
        .service;
        drover::commands::transition_service(
            &*store,
            &ctx(),
            service.id,
            Transition::Activate,
            None,
        )
        .await
        .unwrap();
    }
    let engine = Engine {
        store: Arc::clone(&store),
        fleet: Fleet::shared(
            VirtualminSettings::default(),
            Arc::clone(&store),
            secrets.clone(),
        ),
        dns: drover::engine::Dns::new(Arc::clone(&store), Default::default(), secrets),
        sealer: Arc::new(Sealer::from_hex(&"42".repeat(32)).unwrap()),
        placement: PlacementPolicy::default(),
        auto_provisioning: true,
        job_timeout: Duration::from_secs(600),
        retry_max_delay: Duration::from_secs(5),
        fleet_policy: Default::default(),
        webhooks: drover::engine::Webhooks::new(Default::default()).unwrap(),
        virtualmin_sources: None,
    };
    let started = Instant::now();
    let mut workers = drover::engine::start(Arc::new(engine), 50).unwrap();
    loop {
        let done: usize = sims.iter().map(|s| s.domain_names().len()).sum();
        if done >= accounts {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    workers.stop().await.unwrap();
    let steady_rate = sims
        .iter()
        .map(|s| s.stats())
        .filter_map(|st| {
            let span = st
                .last_arrival?
                .duration_since(st.first_arrival?)
                .as_secs_f64();
            (span > 0.0).then(|| (st.requests - 1) as f64 / span)
        })
        .sum();
    Run {
        seconds,
        calls: sims.iter().map(|s| s.stats().requests).sum(),
        steady_rate,
        max_per_second: sims
            .iter()
            .map(|s| s.stats().max_calls_per_second)
            .collect(),
    }
}

async fn sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    (drover_store::open(&url).await.unwrap(), dir)
}

#[tokio::main]
async fn main() {
    let accounts: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let (store, _dir) = sqlite().await;
    let limit = 10.0 * 2.0;
    let run = provision(store, 10, 2.0, 0.01, accounts).await;
    let rate = run.calls as f64 / run.seconds;
    println!("{accounts} accounts over 10 servers at 2 calls/s each (limit {limit} calls/s):");
    println!(
        "  {} calls in {:.1} s = {rate:.2} calls/s = {:.3} of the limit, start-up included",
        run.calls,
        run.seconds,
        rate / limit
    );
    println!(
        "  while calls flowed: {:.2} calls/s = {:.3} of the limit; busiest second per server: {:?}",
        run.steady_rate,
        run.steady_rate / limit,
        run.max_per_second
    );

    let jobs = 500;
    let (store, _dir) = sqlite().await;
    let run = provision(store, 2, 1000.0, 0.0, jobs).await;
    println!(
        "queue overhead, SQLite: {jobs} jobs in {:.2} s = {:.0} jobs/s",
        run.seconds,
        jobs as f64 / run.seconds
    );
    match drover_testkit::TestPostgres::create().await {
        Ok(db) => {
            let store = drover_store::open(db.url()).await.unwrap();
            let run = provision(store, 2, 1000.0, 0.0, jobs).await;
            println!(
                "queue overhead, PostgreSQL: {jobs} jobs in {:.2} s = {:.0} jobs/s",
                run.seconds,
                jobs as f64 / run.seconds
            );
        }
        Err(e) => println!("queue overhead, PostgreSQL: not measured ({e})"),
    }
}
