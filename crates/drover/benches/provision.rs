//! Provisioning throughput. `cargo bench -p drover --bench provision [-- ACCOUNTS]`
//!
//! 1. ACCOUNTS accounts (default 1,000) over 10 simulators, each limited by drover to 2 calls/s
//!    (VIRTUALMIN_RATE_QPS's default), simulator latency scaled to 1 %: achieved Virtualmin calls
//!    per second against the limit (the sum of the servers' rates), as a ratio.
//! 2. The queue's own overhead: 1,000 new accounts on 8 simulators answering at once, with
//!    rate limits far above what is reached, worked by drover's jobs (the engine `serve`
//!    starts, 50 at a time) and, interleaved round by round, by a bare client making the same
//!    calls per account (look, create, look again) 50 at a time through the same gateway,
//!    without queue or store. Accounts per second, medians of 3 rounds and their ratio, on
//!    SQLite and on PostgreSQL.

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

/// `count` simulators holding the plan "Web", each recorded in `store` as a server.
async fn servers_in(
    store: &dyn Store,
    count: usize,
    qps: f64,
    latency_scale: f64,
    password: &std::path::Path,
) -> Vec<VirtualminSim> {
    let mut sims = Vec::new();
    for i in 0..count {
        let sim = VirtualminSim::start(SimConfig {
            tls: true,
            latency_scale,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        sim.with_state(|s| s.plans.push("Web".into()));
        let extra = serde_json::json!({"capacity": 100_000, "rate_qps": qps});
        let server = sim.server_record(&format!("vm{i}"), password, extra);
        drover::commands::create_server(store, &ctx(), serde_json::from_value(server).unwrap())
            .await
            .unwrap();
        sims.push(sim);
    }
    sims
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
    let sims = servers_in(&*store, servers, qps, latency_scale, &password).await;
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
    let mut workers = drover::engine::start(Arc::new(engine), WORKERS).unwrap();
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

const OVERHEAD_ACCOUNTS: usize = 1_000;
const OVERHEAD_SERVERS: usize = 8;
// The most a server record allows: far above what one server reaches here.
const OVERHEAD_QPS: f64 = 1_000.0;
const ROUNDS: usize = 3;

/// The same accounts' calls without drover's queue and store: per account, the look, the
/// create and the second look a converge job makes, through clients built as drover builds
/// them, `WORKERS` accounts at a time. Returns (seconds, calls).
async fn bare(servers: usize, accounts: usize) -> (f64, u64) {
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
    // Only to turn each simulator into the server record drover builds its client from.
    let records = drover_store::open(&format!(
        "sqlite://{}",
        dir.path().join("records.db").display()
    ))
    .await
    .unwrap();
    let sims = servers_in(&*records, servers, OVERHEAD_QPS, 0.0, &password).await;
    let fleet = Fleet::new(VirtualminSettings::default(), secrets);
    let clients: Vec<_> = records
        .servers(drover_store::Page::default())
        .await
        .unwrap()
        .iter()
        .map(|server| fleet.client(server).unwrap())
        .collect();
    let plan = drover_virtualmin::ServerPlan {
        name: "Web".into(),
        quota_blocks: None,
        max_mailboxes: None,
        max_databases: None,
        max_domains: None,
        max_bandwidth_bytes: None,
        features: vec!["dir".into(), "unix".into(), "web".into()],
    };
    let permits = Arc::new(tokio::sync::Semaphore::new(WORKERS));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..accounts {
        let client = Arc::clone(&clients[i % clients.len()]);
        let permit = Arc::clone(&permits).acquire_owned().await.unwrap();
        let plan = plan.clone();
        tasks.spawn(async move {
            let domain = format!("bare-{i:05}.example.ro");
            assert!(client.get_domain(&domain).await.unwrap().is_none());
            client.ensure_plan(&plan).await.unwrap();
            client
                .create_domain(&drover_virtualmin::NewDomain {
                    domain: domain.clone(),
                    password: "Bare-password-1".to_owned().into(),
                    unix_user: Some(format!("bare{i}")),
                    plan: Some("Web".into()),
                    template: None,
                    // The plan's features and the two every account has, as drover sends.
                    features: vec!["dir".into(), "unix".into(), "web".into()],
                    description: None,
                    placement: drover_virtualmin::Placement::TopLevel,
                    skip_warnings: false,
                })
                .await
                .unwrap();
            assert!(client.get_domain(&domain).await.unwrap().is_some());
            drop(permit);
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("every bare account is made");
    }
    let seconds = started.elapsed().as_secs_f64();
    (seconds, sims.iter().map(|s| s.stats().requests).sum())
}

/// The jobs drover's engine works at once in this bench, and the bare client's tasks.
const WORKERS: usize = 50;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Drover's jobs and the bare client in turn, `ROUNDS` times; prints each round and the
/// ratio of medians.
async fn overhead(
    database: &str,
    open: impl AsyncFn() -> (Arc<dyn Store>, Box<dyn std::any::Any>),
) {
    let (mut drover_rates, mut bare_rates) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let (store, _keep) = open().await;
        let run = provision(
            store,
            OVERHEAD_SERVERS,
            OVERHEAD_QPS,
            0.0,
            OVERHEAD_ACCOUNTS,
        )
        .await;
        let drover_rate = OVERHEAD_ACCOUNTS as f64 / run.seconds;
        let (seconds, calls) = bare(OVERHEAD_SERVERS, OVERHEAD_ACCOUNTS).await;
        let bare_rate = OVERHEAD_ACCOUNTS as f64 / seconds;
        println!(
            "  {database} round {round}: drover {drover_rate:.0} accounts/s ({:.1} calls each), \
             bare {bare_rate:.0} accounts/s ({:.1} calls each)",
            run.calls as f64 / OVERHEAD_ACCOUNTS as f64,
            calls as f64 / OVERHEAD_ACCOUNTS as f64,
        );
        drover_rates.push(drover_rate);
        bare_rates.push(bare_rate);
    }
    let (drover_rate, bare_rate) = (median(drover_rates), median(bare_rates));
    println!(
        "queue overhead, {database}: drover {drover_rate:.0} jobs/s, bare client {bare_rate:.0} \
         accounts/s, drover's time {:.2}x the bare client's (medians of {ROUNDS} rounds)",
        bare_rate / drover_rate
    );
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

    println!(
        "queue overhead: {OVERHEAD_ACCOUNTS} new accounts on {OVERHEAD_SERVERS} servers \
         answering at once, {WORKERS} at a time"
    );
    overhead("SQLite", async || {
        let (store, dir) = sqlite().await;
        (store, Box::new(dir) as Box<dyn std::any::Any>)
    })
    .await;
    if let Err(e) = drover_testkit::TestPostgres::create().await {
        println!("queue overhead, PostgreSQL: not measured ({e})");
        return;
    }
    overhead("PostgreSQL", async || {
        let db = drover_testkit::TestPostgres::create().await.unwrap();
        let store = drover_store::open(db.url()).await.unwrap();
        (store, Box::new(db) as Box<dyn std::any::Any>)
    })
    .await;
}
