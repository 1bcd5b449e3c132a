//! A server dies: health checks find it unavailable, its accounts are recreated on the other
//! servers by placement, and both real PowerDNS servers answer the new addresses. The time to
//! recovery (from the kill to the last answer) is printed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover::engine::{Dns, Engine, Fleet, FleetPolicy, Sealer};
use drover_core::{DomainName, HealthPolicy, PlacementPolicy, ServerId, ServerState, Transition};
use drover_store::{AuditFilter, NewService, RequestContext};

fn ctx() -> RequestContext {
    RequestContext {
        actor: "test".into(),
        correlation_id: "failover-1".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_servers_accounts_come_back_elsewhere_with_dns_answering_the_new_address() {
    let fleet = crate::TestFleet::new().await;
    let store = Arc::clone(&fleet.store);
    let mut sims = Vec::new();
    for i in 1..=3 {
        let (sim, _) = fleet
            .add_server(
                &format!("vm{i}"),
                serde_json::json!({"capacity": 20, "ipv4": format!("198.51.100.{i}")}),
            )
            .await;
        sims.push(sim);
    }
    crate::add_shared_powerdns(&*store, fleet.dir.path(), true).await;
    // Everything starts on vm1.
    for id in [2, 3] {
        drover::commands::set_maintenance(&*store, &ctx(), ServerId(id), true)
            .await
            .unwrap();
    }
    let (plan_id, customer_id) = fleet.plan_and_customer().await;
    // Health checks every 250 ms are 4 calls a second per server: at the default 2 calls a
    // second they would take every call, and provisioning would crawl.
    let engine = fleet.engine(
        drover_virtualmin::VirtualminSettings {
            max_retries: 0,
            rate_qps: 10.0,
            ..crate::quick_retries()
        },
        FleetPolicy {
            health: HealthPolicy::default(),
            health_interval: Some(Duration::from_millis(250)),
            failover: true,
            ..FleetPolicy::default()
        },
    );
    let mut workers = drover::engine::start(Arc::new(engine), 8).unwrap();
    let domains: Vec<String> = (0..8)
        .map(|i| format!("fo{i}-{}.ro", std::process::id()))
        .collect();
    for domain in &domains {
        let new = NewService {
            customer_id,
            plan_id,
            domain: DomainName::parse(domain).unwrap(),
        };
        let service = crate::create_service(&*store, &ctx(), new).await.unwrap();
        crate::transition_service(&*store, &ctx(), service.id, Transition::Activate, None)
            .await
            .unwrap();
    }
    crate::until(
        "every account is on vm1 and served by both PowerDNS servers",
        Duration::from_secs(30),
        || async {
            let mut ok = sims[0].domain_names().len() == domains.len()
                && crate::zone_syncs_done(&*store).await;
            for domain in &domains {
                ok = ok && crate::served_a(domain).await.as_deref() == Some("198.51.100.1");
            }
            ok
        },
    )
    .await;
    for id in [2, 3] {
        drover::commands::set_maintenance(&*store, &ctx(), ServerId(id), false)
            .await
            .unwrap();
    }

    // vm1 dies.
    let killed = Instant::now();
    sims[0].set_down(true);
    crate::until(
        "every domain answers a new address on both PowerDNS servers",
        Duration::from_secs(60),
        || async {
            let mut ok = true;
            for domain in &domains {
                let answer = crate::served_a(domain).await;
                ok = ok && matches!(answer.as_deref(), Some("198.51.100.2" | "198.51.100.3"));
            }
            ok
        },
    )
    .await;
    let recovery = killed.elapsed();
    println!(
        "time to recovery: {recovery:?} for {} accounts (kill to both PowerDNS servers answering the new addresses)",
        domains.len()
    );
    assert_eq!(
        store.server(ServerId(1)).await.unwrap().state,
        ServerState::Unavailable
    );
    let on_others = sims[1].domain_names().len() + sims[2].domain_names().len();
    assert_eq!(on_others, domains.len(), "every account recreated once");
    assert!(
        !sims[1].domain_names().is_empty() && !sims[2].domain_names().is_empty(),
        "placement spread them"
    );
    for domain in &domains {
        let account = store
            .accounts(drover_store::AccountFilter {
                domain: Some(DomainName::parse(domain).unwrap()),
                ..Default::default()
            })
            .await
            .unwrap()
            .remove(0);
        assert_ne!(account.server_id, Some(ServerId(1)));
    }
    crate::until(
        "the failover is recorded as complete",
        Duration::from_secs(10),
        || async {
            let events = store
                .audit_events(AuditFilter {
                    subject: Some("server:1".into()),
                    ..AuditFilter::default()
                })
                .await
                .unwrap();
            events
                .iter()
                .any(|e| e.action == "server.failover_complete")
        },
    )
    .await;
    workers.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_server_is_rebuilt_onto_a_fresh_one_from_drovers_records() {
    use drover::commands::rebuild;
    let fleet = crate::TestFleet::new().await;
    let store = Arc::clone(&fleet.store);
    let (lost_sim, lost) = fleet
        .add_server("vm1", serde_json::json!({"capacity": 20}))
        .await;
    let (plan_id, customer_id) = fleet.plan_and_customer().await;
    let mut services = Vec::new();
    for name in ["r1.ro", "r2.ro", "r3.ro", "r4.ro"] {
        let new = NewService {
            customer_id,
            plan_id,
            domain: DomainName::parse(name).unwrap(),
        };
        let service = crate::create_service(&*store, &ctx(), new).await.unwrap();
        crate::transition_service(&*store, &ctx(), service.id, Transition::Activate, None)
            .await
            .unwrap();
        services.push(service);
    }
    // Before any job ran: r4 is on vm1 in drover's records but has no sealed password yet.
    store
        .assign_server(&ctx(), services[3].account_id, lost.id)
        .await
        .unwrap();
    let dry = rebuild(&*store, &ctx(), &lost, lost.id, 2.0, true)
        .await
        .unwrap();
    assert!(
        dry.problems
            .iter()
            .any(|p| p.contains("r4.ro") && p.contains("sealed password")),
        "{:?}",
        dry.problems
    );
    assert!(dry.problems.iter().any(|p| p.contains("onto itself")));
    let sealer = Arc::new(Sealer::from_hex(&"42".repeat(32)).unwrap());
    let password = secrecy::SecretString::from("r4-password".to_owned());
    store
        .store_sealed_password(services[3].account_id, &sealer.seal(&password), sealer.id())
        .await
        .unwrap();

    let engine = Engine {
        store: Arc::clone(&store),
        fleet: Fleet::new(
            drover_virtualmin::VirtualminSettings {
                retry_delay: Duration::from_millis(20),
                max_retries: 0,
                ..Default::default()
            },
            crate::secrets_in(fleet.dir.path()),
        ),
        dns: Dns::new(
            Arc::clone(&store),
            Default::default(),
            crate::secrets_in(fleet.dir.path()),
        ),
        sealer,
        placement: PlacementPolicy::default(),
        auto_provisioning: true,
        job_timeout: Duration::from_secs(30),
        retry_max_delay: Duration::from_secs(1),
        fleet_policy: FleetPolicy::default(),
        webhooks: drover::engine::Webhooks::new(Default::default()).unwrap(),
        virtualmin_sources: None,
    };
    let mut workers = drover::engine::start(Arc::new(engine), 4).unwrap();
    crate::until(
        "every account is on vm1",
        Duration::from_secs(20),
        || async { lost_sim.domain_names().len() == 4 },
    )
    .await;
    crate::transition_service(
        &*store,
        &ctx(),
        services[1].id,
        Transition::Suspend,
        Some("unpaid".into()),
    )
    .await
    .unwrap();
    crate::until(
        "r2 is suspended on vm1",
        Duration::from_secs(20),
        || async {
            lost_sim.with_state(|s| s.domains.get("r2.ro").is_some_and(|d| d.disabled.is_some()))
        },
    )
    .await;

    // vm1 is lost; a fresh, empty server takes its place.
    lost_sim.set_down(true);
    let failed = drover_core::HealthProbe {
        api_ok: false,
        latency_ms: 5,
        error: Some("connection refused".into()),
        certificate_days_left: None,
        pin_matches: None,
        breaker_open: false,
        login_refused: false,
    };
    for _ in 0..3 {
        store
            .record_health(&ctx(), lost.id, &failed, &HealthPolicy::default())
            .await
            .unwrap();
    }
    let (fresh_sim, fresh) = fleet
        .add_server("vm2", serde_json::json!({"capacity": 20}))
        .await;
    let lost = store.server(lost.id).await.unwrap();
    let dry = rebuild(&*store, &ctx(), &lost, fresh.id, 2.0, true)
        .await
        .unwrap();
    assert!(dry.problems.is_empty(), "{:?}", dry.problems);
    assert_eq!(
        (dry.steps.len(), dry.calls),
        (4, 9),
        "2 calls each, 1 more for the suspended one"
    );
    assert!((dry.estimated_seconds - 4.5).abs() < 1e-9);
    assert!(
        fresh_sim.domain_names().is_empty(),
        "a dry run changes nothing"
    );
    let started = Instant::now();
    let plan = rebuild(&*store, &ctx(), &lost, fresh.id, 2.0, false)
        .await
        .unwrap();
    assert!(plan.started);
    crate::until("the rebuild is done", Duration::from_secs(30), || async {
        store.failovers_remaining(lost.id).await.unwrap() == 0
    })
    .await;
    println!(
        "rebuilt {} accounts in {:?}",
        plan.steps.len(),
        started.elapsed()
    );

    // The fresh server holds exactly what drover's records say.
    for service in &services {
        let account = store.account(service.account_id).await.unwrap();
        assert_eq!(account.server_id, Some(fresh.id));
        let on_server = fresh_sim
            .with_state(|s| s.domains.get(account.domain.as_str()).cloned())
            .unwrap();
        assert_eq!(on_server.unix_user, account.unix_username.as_str());
        assert_eq!(on_server.plan, "Web");
        assert_eq!(
            on_server.disabled.is_some(),
            account.desired_state == drover_core::DesiredState::Disabled,
            "{}",
            account.domain
        );
    }
    assert_eq!(fresh_sim.domain_names().len(), 4);
    workers.stop().await.unwrap();
}
