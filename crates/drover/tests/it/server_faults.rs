//! What the real server showed, on the simulator (the real tier proves the same against the real
//! server): a refused login stops every call until the secret changes, the lock-out is read as
//! one, a database outage is waited out, a failed account is tried again on its own, a unix
//! name the server keeps is replaced, and a feature removed by hand comes back.

use std::sync::Arc;
use std::time::Duration;

use drover::engine::{Engine, Fleet, FleetPolicy};
use drover_core::{DomainName, Transition};
use drover_store::{AccountFilter, JobFilter, NewService, Page, Store};
use drover_testkit::virtualmin::{Fault, Gate, SimConfig, SimDomain, VirtualminSim};
use serde_json::json;

use crate::{TestFleet, quick_retries, setup_ctx as ctx, until};

/// The engine `drover serve` runs: calls paced, and refused logins recorded, through the store.
fn engine(fleet: &TestFleet, policy: FleetPolicy) -> Arc<Engine> {
    let mut engine = fleet.engine(quick_retries(), policy);
    engine.fleet = Fleet::shared(
        quick_retries(),
        Arc::clone(&fleet.store),
        crate::secrets_in(fleet.dir.path()),
    );
    Arc::new(engine)
}

/// The plan with a database and its customer, and the engine `drover serve` runs, working.
async fn working(
    fleet: &TestFleet,
    policy: FleetPolicy,
) -> (
    (drover_core::PlanId, drover_core::CustomerId),
    Arc<Engine>,
    riverqueue::RunHandle,
) {
    let plan = mysql_plan(&*fleet.store).await;
    let engine = engine(fleet, policy);
    let workers = drover::engine::start(Arc::clone(&engine), 4).unwrap();
    (plan, engine, workers)
}

/// Waits until the job has completed.
async fn completed(store: &dyn Store, job: drover_core::JobId) {
    until(
        &format!("job {job} completes"),
        Duration::from_secs(20),
        async || job_state(store, job).await == "completed",
    )
    .await;
}

/// A plan with a database, and a customer.
async fn mysql_plan(store: &dyn Store) -> (drover_core::PlanId, drover_core::CustomerId) {
    let plan = json!({"name": "Web", "features": ["web", "dns", "mail", "mysql"]});
    let plan = drover::commands::create_plan(store, &ctx(), serde_json::from_value(plan).unwrap())
        .await
        .unwrap();
    let customer = json!({"name": "Ana Pop"});
    let customer =
        drover::commands::create_customer(store, &ctx(), serde_json::from_value(customer).unwrap())
            .await
            .unwrap();
    (plan.id, customer.id)
}

/// Sells and activates a service for `domain`; returns the account and its converge job.
async fn activate(
    store: &dyn Store,
    (plan_id, customer_id): (drover_core::PlanId, drover_core::CustomerId),
    domain: &str,
) -> (drover_core::AccountId, drover_core::JobId) {
    let new = NewService {
        customer_id,
        plan_id,
        domain: DomainName::parse(domain).unwrap(),
    };
    let service = crate::create_service(store, &ctx(), new).await.unwrap();
    let moved = crate::transition_service(store, &ctx(), service.id, Transition::Activate, None)
        .await
        .unwrap();
    (moved.account.id, moved.job_id)
}

async fn job_state(store: &dyn Store, job: drover_core::JobId) -> String {
    store.job(job).await.unwrap().state
}

#[tokio::test]
async fn a_refused_login_stops_every_call_until_the_secret_changes() {
    let fleet = TestFleet::new().await;
    let store = &*fleet.store;
    let (sim, server) = fleet.add_server("vm1", json!({"capacity": 10})).await;
    let password = fleet.dir.path().join("vm.password");
    std::fs::write(&password, "not-the-password").unwrap();
    let (plan, engine, mut workers) = working(&fleet, FleetPolicy::default()).await;

    let (_, job) = activate(store, plan, "login.ro").await;
    until(
        "the server shows the refused login",
        Duration::from_secs(10),
        async || {
            store
                .server(server.id)
                .await
                .unwrap()
                .login_refused
                .is_some()
        },
    )
    .await;
    until("the job waits", Duration::from_secs(10), async || {
        job_state(store, job).await == "scheduled"
    })
    .await;
    let refused = store
        .server(server.id)
        .await
        .unwrap()
        .login_refused
        .unwrap();
    assert!(refused.reason.contains("auth"), "{refused:?}");
    // A health check does not call it either, and says why it is degraded.
    let probe =
        drover::engine::health::probe_server(&engine, &store.server(server.id).await.unwrap())
            .await;
    assert!(probe.login_refused, "{probe:?}");
    let (verdict, reasons) = probe.assess(&Default::default());
    assert_eq!(verdict, drover_core::Verdict::Degraded);
    assert!(reasons[0].contains("login is refused"), "{reasons:?}");
    assert_eq!(sim.stats().requests, 1, "one failed login in all");

    // An operator lets drover try again with the same secret: one more refused login, no more.
    drover::commands::allow_login(store, &ctx(), server.id)
        .await
        .unwrap();
    drover::commands::retry_job(store, &ctx(), job)
        .await
        .unwrap();
    until("refused again", Duration::from_secs(10), async || {
        store
            .server(server.id)
            .await
            .unwrap()
            .login_refused
            .is_some()
    })
    .await;
    assert_eq!(sim.stats().requests, 2, "tried once more after allow-login");
    // (A job can be run again once it has ended its attempt: it waits again.)
    until("the job waits again", Duration::from_secs(10), async || {
        job_state(store, job).await == "scheduled"
    })
    .await;

    // The secret is fixed in its file: picked up on the next use, no record change needed.
    std::fs::write(&password, "pw").unwrap();
    drover::commands::retry_job(store, &ctx(), job)
        .await
        .unwrap();
    completed(store, job).await;
    assert!(sim.domain_names().contains(&"login.ro".to_owned()));
    let attempts = store.job_attempts(job).await.unwrap();
    assert_eq!(
        attempts.first().map(|a| a.outcome.as_str()),
        Some("snoozed"),
        "{attempts:?}"
    );
    assert_eq!(
        attempts.last().map(|a| a.outcome.as_str()),
        Some("completed"),
        "{attempts:?}"
    );
    workers.stop().await.unwrap();
}

#[tokio::test]
async fn the_lock_out_is_read_from_the_status_line_and_never_retried_into() {
    let fleet = TestFleet::new().await;
    let store = &*fleet.store;
    let sim = VirtualminSim::start(SimConfig {
        tls: true,
        password: "pw".into(),
        block_after: 2,
        pass_delay: Duration::ZERO,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    // Someone else's failed logins get this address blocked.
    let pinned = drover_virtualmin::TlsPolicy {
        verify: true,
        pinned_sha256: Some(
            drover_core::CertFingerprint::parse(&sim.certificate_sha256().unwrap()).unwrap(),
        ),
        extra_roots: Vec::new(),
    };
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(drover_virtualmin::client_config(&pinned).unwrap())
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let answer = http
            .post(format!("{}/virtual-server/remote.cgi", sim.url()))
            .basic_auth("root", Some("wrong"))
            .body("program=info")
            .send()
            .await
            .unwrap();
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(statuses, [401, 403], "blocked after two failures");
    let before = sim.stats().requests;
    let record = sim.server_record(
        "vm1",
        &fleet.dir.path().join("vm.password"),
        json!({"capacity": 10}),
    );
    let server =
        drover::commands::create_server(store, &ctx(), serde_json::from_value(record).unwrap())
            .await
            .unwrap();
    let (plan, _engine, mut workers) = working(&fleet, FleetPolicy::default()).await;
    let (_, job) = activate(store, plan, "locked.ro").await;
    until("the job waits", Duration::from_secs(10), async || {
        job_state(store, job).await == "scheduled"
    })
    .await;
    let calls = store.job_calls(job).await.unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].outcome, "locked_out", "{calls:?}");
    let refused = store.server(server.id).await.unwrap().login_refused;
    assert!(refused.is_some_and(|r| r.reason.contains("locked_out")));
    assert_eq!(
        sim.stats().requests,
        before + 1,
        "never retried into the block"
    );
    workers.stop().await.unwrap();
}

#[tokio::test]
async fn a_database_outage_on_the_server_is_waited_out() {
    let fleet = TestFleet::new().await;
    let store = &*fleet.store;
    let (sim, _) = fleet.add_server("vm1", json!({"capacity": 10})).await;
    let (plan, _engine, mut workers) = working(&fleet, FleetPolicy::default()).await;

    sim.set_database_down(true);
    let (account, job) = activate(store, plan, "outage.ro").await;
    until("the job is retried", Duration::from_secs(10), async || {
        store
            .job_attempts(job)
            .await
            .unwrap()
            .iter()
            .any(|a| a.outcome == "retried")
    })
    .await;
    assert_ne!(job_state(store, job).await, "discarded");
    assert!(store.account(account).await.unwrap().failure.is_none());
    sim.set_database_down(false);
    completed(store, job).await;
    let created = sim
        .with_state(|s| s.domains.get("outage.ro").cloned())
        .unwrap();
    assert!(
        created.features.contains(&"mysql".to_owned()),
        "{:?}",
        created.features
    );
    workers.stop().await.unwrap();
}

/// The race behind a lost update, made on purpose: a termination's job reads the account while
/// it is protected, and the protection is lifted while the job waits for the server's answer.
/// The lift joins the running job (one converge job per account); the job must not give up at
/// the generation it read, or nothing would ever delete the account. Fifty accounts at once.
#[tokio::test]
async fn a_change_that_joins_a_job_about_to_refuse_is_applied() {
    const ACCOUNTS: usize = 50;
    let fleet = TestFleet::new().await;
    let store = &*fleet.store;
    let (sim, _) = fleet
        .add_server("vm1", json!({"capacity": 100, "rate_qps": 200.0}))
        .await;
    let (plan, _engine, mut workers) = working(&fleet, FleetPolicy::default()).await;
    let mut accounts = Vec::new();
    for n in 0..ACCOUNTS {
        let domain = format!("race{n}.ro");
        let (account, job) = activate(store, plan, &domain).await;
        accounts.push((domain, account, job));
    }
    for (_, account, job) in &accounts {
        completed(store, *job).await;
        assert!(
            store
                .account(*account)
                .await
                .unwrap()
                .protected_from_deletion
        );
    }
    // Every answer is held until the test lets it go: the program has run, the job waits for
    // what it said.
    let gate = Gate::default();
    sim.set_fault_rate(1.0, vec![Fault::AnswerWhenReleased(gate.clone())]);
    let calls = |domain: &str| sim.calls_naming(domain, "list-domains");
    let before: Vec<u64> = accounts
        .iter()
        .map(|(domain, _, _)| calls(domain))
        .collect();
    let mut terminations = Vec::new();
    for (domain, account, _) in &accounts {
        let service = store.account(*account).await.unwrap().service_id;
        let moved = crate::transition_service(store, &ctx(), service, Transition::Terminate, None)
            .await
            .unwrap();
        terminations.push((domain.clone(), *account, moved.job_id));
    }
    // Each protection is lifted as soon as its job has asked the server about the domain: the
    // job read the account before, and has not seen the answer yet.
    let (calls, gate) = (&calls, &gate);
    let lifts = terminations
        .iter()
        .zip(before)
        .map(|((domain, account, _), called)| async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while calls(domain) <= called {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{domain}: the job never called the server"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            drover::commands::set_protection(&*store, &ctx(), *account, false, domain)
                .await
                .unwrap();
            gate.release(domain);
        });
    futures_util::future::join_all(lifts).await;
    // Each lift joined the running job, which then ran again instead of giving up. (One that
    // comes just after a job gave up enqueues a job of its own: the store's contract suite.)
    let (mut joined, mut followed) = (0, 0);
    for (domain, account, job) in &terminations {
        // Every job of the account has ended (the lift may have queued one beside the running
        // job, which then finds the work done), the last one completed.
        until(
            &format!("{domain}: deleted and all its jobs ended"),
            Duration::from_secs(60),
            async || {
                let jobs = store
                    .jobs(JobFilter {
                        account_id: Some(*account),
                        ..JobFilter::default()
                    })
                    .await
                    .unwrap();
                let ended = jobs
                    .iter()
                    .all(|j| ["completed", "discarded", "cancelled"].contains(&j.state.as_str()));
                let last = jobs.iter().max_by_key(|j| j.id).unwrap();
                ended
                    && last.state == "completed"
                    && sim.with_state(|s| !s.domains.contains_key(domain))
            },
        )
        .await;
        let attempts = store.job_attempts(*job).await.unwrap();
        let ran_again = attempts.iter().any(|a| {
            a.message
                .as_deref()
                .is_some_and(|m| m.contains("changed meanwhile"))
        });
        match job_state(store, *job).await.as_str() {
            "completed" if ran_again => joined += 1,
            "discarded" => followed += 1,
            other => panic!("{domain}: job {job} is {other}: {attempts:?}"),
        }
    }
    println!(
        "of {ACCOUNTS} lifts, {joined} joined the running job and {followed} came after it gave up"
    );
    assert_eq!(
        (joined, followed),
        (ACCOUNTS, 0),
        "every lift came while its job waited for the server"
    );
    workers.stop().await.unwrap();
}

#[tokio::test]
async fn a_unix_name_the_server_keeps_for_itself_is_replaced() {
    let fleet = TestFleet::new().await;
    let store = &*fleet.store;
    let (sim, _) = fleet.add_server("vm1", json!({"capacity": 10})).await;
    // A service of the server's own with a user and one with only a group, by the names
    // drover would choose.
    sim.with_state(|s| {
        s.system_users.insert("redis".into());
        s.system_groups.insert("tomcat".into());
    });
    let (plan, _engine, mut workers) = working(&fleet, FleetPolicy::default()).await;
    for (domain, chosen) in [("redis.ro", "redis1"), ("tomcat.ro", "tomcat1")] {
        let (account, job) = activate(store, plan, domain).await;
        completed(store, job).await;
        let on_server = sim
            .with_state(|s| s.domains.get(domain).map(|d| d.unix_user.clone()))
            .expect("created");
        assert_eq!(on_server, chosen, "{domain}");
        let record = store.account(account).await.unwrap();
        assert_eq!(record.unix_username.as_str(), chosen, "{domain}");
        assert!(record.failure.is_none());
    }
    workers.stop().await.unwrap();
}

#[tokio::test]
async fn a_failed_account_is_tried_again_on_its_own() {
    let fleet = TestFleet::new().await;
    let store = &*fleet.store;
    let (sim, _) = fleet.add_server("vm1", json!({"capacity": 10})).await;
    // Someone else's domain of the same name is on the server: drover will not touch it.
    sim.with_state(|s| {
        s.domains.insert(
            "taken.ro".into(),
            SimDomain::top_level("taken.ro", "someone"),
        )
    });
    let policy = FleetPolicy {
        failed_retry_interval: Some(Duration::from_secs(1)),
        ..FleetPolicy::default()
    };
    let (plan, _engine, mut workers) = working(&fleet, policy).await;
    let (account, job) = activate(store, plan, "taken.ro").await;
    until("the job is refused", Duration::from_secs(10), async || {
        job_state(store, job).await == "discarded"
    })
    .await;
    let failed = store
        .accounts(AccountFilter {
            failed: true,
            page: Page::default(),
            ..AccountFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, account);
    assert!(
        failed[0]
            .failure
            .as_deref()
            .unwrap()
            .contains("someone else's domain"),
        "{:?}",
        failed[0].failure
    );

    // The operator removes the stray domain; drover carries on by itself.
    sim.with_state(|s| s.domains.remove("taken.ro"));
    until(
        "the account is created and not failed",
        Duration::from_secs(20),
        async || {
            store.account(account).await.unwrap().failure.is_none()
                && sim.domain_names().contains(&"taken.ro".to_owned())
        },
    )
    .await;
    workers.stop().await.unwrap();
}

#[tokio::test]
async fn a_feature_removed_by_hand_is_found_and_turned_on_again() {
    let fleet = TestFleet::new().await;
    let store = &*fleet.store;
    let (sim, server) = fleet.add_server("vm1", json!({"capacity": 10})).await;
    let (plan, engine, mut workers) = working(&fleet, FleetPolicy::default()).await;
    let (_, job) = activate(store, plan, "nodb.ro").await;
    completed(store, job).await;
    let has_mysql =
        || sim.with_state(|s| s.domains["nodb.ro"].features.contains(&"mysql".to_owned()));
    assert!(has_mysql());
    sim.with_state(|s| {
        s.domains
            .get_mut("nodb.ro")
            .unwrap()
            .features
            .retain(|f| f != "mysql")
    });
    let server = store.server(server.id).await.unwrap();
    let outcome = drover::engine::drift::repair_server(&engine, &ctx(), &server, false, false)
        .await
        .unwrap();
    let kinds: Vec<_> = outcome.findings.iter().map(|f| f.finding.kind).collect();
    assert_eq!(kinds, [drover_core::DriftKind::FeatureMissing]);
    assert_eq!(
        outcome.findings[0].finding.expected.as_deref(),
        Some("mysql")
    );
    until("mysql is back", Duration::from_secs(10), async || {
        has_mysql()
    })
    .await;
    workers.stop().await.unwrap();
}

#[tokio::test]
async fn a_changed_plan_is_put_on_the_servers_that_host_it() {
    let fleet = TestFleet::new().await;
    let store = &*fleet.store;
    let (sim, _) = fleet.add_server("vm1", json!({"capacity": 10})).await;
    let (plan, _engine, mut workers) = working(&fleet, FleetPolicy::default()).await;
    let (_, job) = activate(store, plan, "planned.ro").await;
    completed(store, job).await;
    let quota = || {
        sim.with_state(|s| {
            s.plans
                .iter()
                .find(|p| p.name == "Web")
                .and_then(|p| p.quota_blocks)
        })
    };
    assert_eq!(quota(), None);
    let patch = serde_json::from_value(json!({"disk_quota_mb": 2048})).unwrap();
    drover::commands::update_plan(store, &ctx(), plan.0, patch, false)
        .await
        .unwrap();
    until(
        "the server's plan has the new quota",
        Duration::from_secs(10),
        async || quota() == Some(2048 * 1024),
    )
    .await;
    workers.stop().await.unwrap();
}

#[tokio::test]
async fn terminated_accounts_do_not_count_in_the_drift_limit() {
    let fleet = TestFleet::new().await;
    let store = &*fleet.store;
    let (sim, server) = fleet
        .add_server("vm1", json!({"capacity": 30, "rate_qps": 200.0}))
        .await;
    let (plan, engine, mut workers) = working(&fleet, FleetPolicy::default()).await;
    let mut accounts = Vec::new();
    for i in 0..20 {
        accounts.push(activate(store, plan, &format!("site{i}.ro")).await);
    }
    until("all created", Duration::from_secs(30), async || {
        sim.domain_names().len() == 20
    })
    .await;
    // Eighteen are terminated and deleted: the server holds two live accounts.
    for (account, _) in &accounts[2..] {
        let service = store.account(*account).await.unwrap().service_id;
        crate::transition_service(store, &ctx(), service, Transition::Terminate, None)
            .await
            .unwrap();
        let domain = store.account(*account).await.unwrap().domain;
        drover::commands::set_protection(store, &ctx(), *account, false, domain.as_str())
            .await
            .unwrap();
    }
    until(
        "the terminated are deleted",
        Duration::from_secs(30),
        async || sim.domain_names().len() == 2,
    )
    .await;
    // Both live ones are disabled by hand: two of a server of two, over the limit of one.
    sim.with_state(|s| {
        for d in ["site0.ro", "site1.ro"] {
            s.domains.get_mut(d).unwrap().disabled = Some("by hand".into());
        }
    });
    let server = store.server(server.id).await.unwrap();
    let outcome = drover::engine::drift::repair_server(&engine, &ctx(), &server, false, true)
        .await
        .unwrap();
    assert_eq!((outcome.plan.touches, outcome.plan.limit), (2, 1));
    assert!(outcome.plan.held.is_some(), "{:?}", outcome.plan);
    workers.stop().await.unwrap();
}
