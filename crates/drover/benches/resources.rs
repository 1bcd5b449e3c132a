//! An account's resources through drover's converge job. `cargo bench -p drover --bench resources`
//!
//! An account with 50 mailboxes and 20 databases, recorded while provisioning is paused, then
//! made on a simulator by the converge job its records queued: the calls the job made, by
//! program (the goal: one listing per kind plus one call per change), and its time against a
//! bare client making the same 70 calls after the same listings, interleaved (A B A B A B),
//! as a ratio of medians.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover::engine::{Engine, Fleet, Sealer};
use drover_core::{CustomerSpec, PlacementPolicy, Transition};
use drover_store::{JobFilter, RequestContext, Store};
use drover_testkit::virtualmin::{SimConfig, VirtualminSim};
use drover_virtualmin::{BreakerConfig, Endpoint, TlsPolicy, VirtualminClient, VirtualminSettings};

const MAILBOXES: usize = 50;
const DATABASES: usize = 20;
const ROUNDS: usize = 3;

fn ctx() -> RequestContext {
    RequestContext {
        actor: "bench".into(),
        correlation_id: "bench".into(),
    }
}

fn secret(s: &str) -> secrecy::SecretString {
    secrecy::SecretString::from(s.to_owned())
}

/// One account's resources made by drover: seconds from unpausing to its job's end, and the
/// programs the job called.
async fn through_drover(
    store: &Arc<dyn Store>,
    sim: &VirtualminSim,
    round: usize,
) -> (f64, BTreeMap<String, usize>) {
    let domain = format!("res{round}.example.ro");
    let created = drover::commands::create_service(
        &**store,
        &ctx(),
        drover_core::CustomerId(1),
        drover_core::PlanId(1),
        &domain,
        false,
    )
    .await
    .unwrap()
    .service;
    drover::commands::transition_service(&**store, &ctx(), created.id, Transition::Activate, None)
        .await
        .unwrap();
    while !sim.domain_names().contains(&domain) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Wait for the account's own converge to end, then record everything at once.
    let account = created.account_id;
    settle(&**store, account).await;
    drover::commands::set_provisioning_paused(&**store, &ctx(), true)
        .await
        .unwrap();
    let sealer = Sealer::from_hex(&"42".repeat(32)).unwrap();
    for i in 0..MAILBOXES {
        drover::commands::create_mailbox(
            &**store,
            &ctx(),
            &sealer,
            account,
            &format!("m{i}"),
            "",
            secret("Mail-passw0rd"),
            None,
        )
        .await
        .unwrap();
    }
    for i in 0..DATABASES {
        drover::commands::create_database(&**store, &ctx(), account, &format!("db{i}"), "mysql")
            .await
            .unwrap();
    }
    let started = Instant::now();
    drover::commands::set_provisioning_paused(&**store, &ctx(), false)
        .await
        .unwrap();
    let job = settle(&**store, account).await;
    let seconds = started.elapsed().as_secs_f64();
    let mut programs = BTreeMap::new();
    for call in store.job_calls(job).await.unwrap() {
        let program = call.call.split_whitespace().next().unwrap_or("").to_owned();
        *programs.entry(program).or_insert(0) += 1;
    }
    (seconds, programs)
}

/// Waits until the account's newest converge job ended; returns it.
async fn settle(store: &dyn Store, account: drover_core::AccountId) -> drover_core::JobId {
    loop {
        let filter = JobFilter {
            account_id: Some(account),
            ..JobFilter::default()
        };
        let jobs = store.jobs(filter).await.unwrap();
        let newest = jobs
            .iter()
            .filter(|j| j.kind == "converge_account")
            .max_by_key(|j| j.id);
        if let Some(job) = newest
            && job.state == "completed"
        {
            return job.id;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The same work by a bare client: the listings, then one call per resource.
async fn bare(client: &VirtualminClient, round: usize) -> f64 {
    let domain = format!("bare{round}.example.ro");
    let web = ["unix", "dir", "web", "mail", "mysql"].map(String::from);
    client
        .create_domain(&drover_virtualmin::NewDomain {
            domain: domain.clone(),
            password: secret("Bare-passw0rd"),
            unix_user: Some(format!("bare{round}")),
            plan: None,
            template: None,
            features: web.to_vec(),
            description: None,
            placement: drover_virtualmin::Placement::TopLevel,
            skip_warnings: false,
        })
        .await
        .unwrap();
    let started = Instant::now();
    client.get_domain(&domain).await.unwrap();
    client.mailboxes(&domain).await.unwrap();
    client.databases(&domain).await.unwrap();
    for i in 0..MAILBOXES {
        client
            .create_mailbox(
                &domain,
                &format!("m{i}"),
                drover_virtualmin::MailboxPassword::Plain(secret("Mail-passw0rd")),
                None,
                None,
            )
            .await
            .unwrap();
    }
    for i in 0..DATABASES {
        client
            .create_database(&domain, &format!("bare{round}_db{i}"), "mysql")
            .await
            .unwrap();
    }
    started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = drover_store::open(&url).await.unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "secret").unwrap();
    let secrets = Arc::new(drover::engine::Secrets::new(
        drover_core::SecretSources {
            dir: dir.path().to_owned(),
            env_prefix: drover_core::SecretSources::DEFAULT_ENV_PREFIX.into(),
        },
        Vec::new(),
    ));
    let plan = serde_json::json!({"name": "Web", "features": ["dir", "web", "mail", "mysql"]});
    drover::commands::create_plan(&*store, &ctx(), serde_json::from_value(plan).unwrap())
        .await
        .unwrap();
    let sim = VirtualminSim::start(SimConfig {
        tls: true,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    sim.with_state(|s| s.plans.push("Web".into()));
    // No rate limit to speak of: the calls, not the limiter, are measured.
    let extra = serde_json::json!({"capacity": 1000, "rate_qps": 1000.0});
    let server = sim.server_record("vm", &password, extra);
    drover::commands::create_server(&*store, &ctx(), serde_json::from_value(server).unwrap())
        .await
        .unwrap();
    drover::commands::create_customer(
        &*store,
        &ctx(),
        CustomerSpec::new("Bench", None, None).unwrap(),
    )
    .await
    .unwrap();
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
    let mut workers = drover::engine::start(Arc::new(engine), 10).unwrap();
    // The bare client: the same TLS pinning and one call at a time, as drover's job makes them.
    let endpoint = Endpoint {
        name: "bare".into(),
        base_url: format!("https://127.0.0.1:{}", sim.addr().port()),
        user: "root".into(),
        password: secret("secret"),
        tls: TlsPolicy {
            verify: true,
            pinned_sha256: Some(
                drover_core::CertFingerprint::parse(&sim.certificate_sha256().unwrap()).unwrap(),
            ),
            extra_roots: Vec::new(),
        },
        rate_qps: 1000.0,
        max_concurrency: 1,
    };
    let client = VirtualminClient::new(
        endpoint,
        &VirtualminSettings::default(),
        BreakerConfig::default(),
    )
    .unwrap();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut programs = BTreeMap::new();
    for round in 0..ROUNDS {
        let (seconds, called) = through_drover(&store, &sim, round).await;
        ours.push(seconds);
        programs = called;
        theirs.push(bare(&client, round).await);
    }
    workers.stop().await.unwrap();
    let changes = MAILBOXES + DATABASES;
    let total: usize = programs.values().sum();
    println!(
        "an account with {MAILBOXES} mailboxes and {DATABASES} databases, made by its converge job:"
    );
    println!("  calls by program: {programs:?}");
    println!(
        "  {total} calls: {changes} changes, {} listings (list-domains before and after, one list-users and one list-databases each time)",
        total - changes
    );
    println!(
        "  time, median of {ROUNDS}: drover {:.3} s, bare client {:.3} s (same listings and creates): ratio {:.2}",
        median(ours.clone()),
        median(theirs.clone()),
        median(ours) / median(theirs)
    );
}
