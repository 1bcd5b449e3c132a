//! The fleet operations end to end, in one fleet: three simulators and two real PowerDNS
//! servers. Accounts are provisioned; drift made by hand is found, held by the limit and
//! repaired; one server is drained and retired; another is killed and its accounts come back on
//! the last one with both PowerDNS servers answering the new address; then that one is lost too
//! and rebuilt onto a fresh, empty simulator from drover's records alone.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover::engine::{Engine, FleetPolicy};
use drover_core::{
    DesiredState, DomainName, DriftAction, DriftKind, DriftPolicy, HealthPolicy, PlacementPolicy,
    ServerId, ServerState, Transition,
};
use drover_store::{NewService, RequestContext, Store};
use drover_testkit::virtualmin::{SimDomain, VirtualminSim};

fn ctx() -> RequestContext {
    RequestContext {
        actor: "test".into(),
        correlation_id: "fleet-e2e".into(),
    }
}

const ACCOUNTS: usize = 12;

fn address(server: i64) -> String {
    format!("198.51.100.{}", 10 + server)
}

/// Every domain of drover's accounts on `server` answers that server's address on both PowerDNS
/// servers.
async fn dns_follows(store: &dyn Store, server: ServerId) -> bool {
    if !crate::zone_syncs_done(store).await {
        return false;
    }
    let accounts = store
        .accounts(drover_store::AccountFilter {
            server_id: Some(server),
            ..Default::default()
        })
        .await
        .unwrap();
    for account in accounts {
        if crate::served_a(account.domain.as_str()).await != Some(address(server.get())) {
            return false;
        }
    }
    true
}

fn engine(fleet: &crate::TestFleet, failover: bool) -> Arc<Engine> {
    Arc::new(fleet.engine(
        drover_virtualmin::VirtualminSettings {
            max_retries: 0,
            rate_qps: 50.0,
            ..crate::quick_retries()
        },
        FleetPolicy {
            health: HealthPolicy::default(),
            health_interval: Some(Duration::from_millis(250)),
            drift: DriftPolicy {
                orphan: DriftAction::Quarantine,
                ..DriftPolicy::default()
            },
            migration_grace: Duration::ZERO,
            failover,
            ..FleetPolicy::default()
        },
    ))
}

/// The domains a simulator holds, as a set.
fn held(sim: &VirtualminSim) -> BTreeSet<String> {
    sim.domain_names().into_iter().collect()
}

/// The domains of drover's accounts on a server.
async fn recorded(store: &dyn Store, server: ServerId) -> BTreeSet<String> {
    drover::engine::accounts_on(store, server)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.desired_state != DesiredState::Absent)
        .map(|a| a.domain.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_is_provisioned_repaired_drained_failed_over_and_rebuilt() {
    let fleet = crate::TestFleet::new().await;
    let store = Arc::clone(&fleet.store);
    let mut sims = Vec::new();
    let mut servers = Vec::new();
    for i in 1..=3 {
        let (sim, server) = fleet
            .add_server(
                &format!("vm{i}"),
                serde_json::json!({"capacity": 20, "ipv4": address(i)}),
            )
            .await;
        sims.push(sim);
        servers.push(server);
    }
    crate::add_shared_powerdns(&*store, fleet.dir.path(), true).await;

    // 1. Provisioning: placement spreads the accounts; DNS answers each one's server.
    let (plan_id, customer_id) = fleet.plan_and_customer().await;
    let mut workers = drover::engine::start(engine(&fleet, true), 8).unwrap();
    let mut domains = Vec::new();
    for i in 0..ACCOUNTS {
        let domain = format!("e2e{i}-{}.ro", std::process::id());
        let new = NewService {
            customer_id,
            plan_id,
            domain: DomainName::parse(&domain).unwrap(),
        };
        let service = crate::create_service(&*store, &ctx(), new).await.unwrap();
        crate::transition_service(&*store, &ctx(), service.id, Transition::Activate, None)
            .await
            .unwrap();
        domains.push(domain);
    }
    crate::until(
        "every account is on a server and served by both PowerDNS servers",
        Duration::from_secs(60),
        async || {
            let placed: usize = sims.iter().map(|s| s.domain_names().len()).sum();
            let mut ok = placed == ACCOUNTS;
            for server in &servers {
                ok = ok && dns_follows(&*store, server.id).await;
            }
            ok
        },
    )
    .await;
    for (sim, server) in sims.iter().zip(&servers) {
        assert_eq!(
            held(sim).len(),
            ACCOUNTS / 3,
            "placement spreads them evenly"
        );
        assert_eq!(held(sim), recorded(&*store, server.id).await);
    }

    // 2. Drift made by hand on vm1: a domain deleted, one disabled, an extra one.
    let on_vm1: Vec<String> = sims[0].domain_names();
    let (deleted, disabled) = (on_vm1[0].clone(), on_vm1[1].clone());
    let stray = format!("stray-{}.ro", std::process::id());
    sims[0].with_state(|s| {
        s.domains.remove(&deleted);
        s.domains.get_mut(&disabled).unwrap().disabled = Some("by hand".into());
        s.domains
            .insert(stray.clone(), SimDomain::top_level(&stray, "stray"));
    });
    let drift_engine = engine(&fleet, true);
    let held_pass =
        drover::engine::drift::repair_server(&drift_engine, &ctx(), &servers[0], false, false)
            .await
            .unwrap();
    let mut found: Vec<(DriftKind, String)> = held_pass
        .findings
        .iter()
        .map(|r| (r.finding.kind, r.finding.domain.clone()))
        .collect();
    found.sort();
    let mut expected = vec![
        (DriftKind::Missing, deleted.clone()),
        (DriftKind::Orphan, stray.clone()),
        (DriftKind::StateMismatch, disabled.clone()),
    ];
    expected.sort();
    assert_eq!(found, expected);
    // 4 accounts: a pass may touch 1 (10 %, at least one); this one would touch 3.
    assert_eq!((held_pass.plan.touches, held_pass.plan.limit), (3, 1));
    assert!(held_pass.plan.held.is_some() && held_pass.jobs.is_empty());
    assert!(
        !held(&sims[0]).contains(&deleted),
        "a held pass changes nothing"
    );
    let forced =
        drover::engine::drift::repair_server(&drift_engine, &ctx(), &servers[0], true, false)
            .await
            .unwrap();
    assert_eq!(forced.quarantined, std::slice::from_ref(&stray));
    crate::until(
        "the drift is repaired",
        Duration::from_secs(30),
        async || {
            sims[0].with_state(|s| {
                s.domains
                    .get(&deleted)
                    .is_some_and(|d| d.disabled.is_none())
                    && s.domains
                        .get(&disabled)
                        .is_some_and(|d| d.disabled.is_none())
                    && s.domains.get(&stray).is_some_and(|d| d.disabled.is_some())
            })
        },
    )
    .await;
    let rescan = drover::engine::drift::scan_server(&drift_engine, &ctx(), &servers[0])
        .await
        .unwrap();
    let kinds: Vec<DriftKind> = rescan.iter().map(|r| r.finding.kind).collect();
    assert_eq!(
        kinds,
        [DriftKind::Orphan],
        "only the quarantined orphan is left"
    );
    // Deleted only when an operator asks; then vm1 holds exactly drover's records again.
    let orphan = drover_core::DomainName::parse(&stray).unwrap();
    drover::engine::drift::delete_orphan(&drift_engine, &ctx(), &servers[0], &orphan)
        .await
        .unwrap();
    assert_eq!(held(&sims[0]), recorded(&*store, servers[0].id).await);

    // 3. Drain vm2: its accounts move by placement, DNS follows, it is retired.
    let placement = PlacementPolicy::default();
    let drain = drover::commands::drain(
        &*store,
        &ctx(),
        &placement,
        servers[1].id,
        Duration::ZERO,
        false,
        drover::commands::WithoutContent::Allowed,
    )
    .await
    .unwrap();
    assert_eq!(drain.moves.len(), ACCOUNTS / 3);
    assert!(drain.unplaced.is_empty());
    crate::until(
        "vm2 is empty and every move done",
        Duration::from_secs(60),
        async || {
            let mut done = sims[1].domain_names().is_empty();
            for m in &drain.moves {
                done = done
                    && store
                        .migration(m.account_id)
                        .await
                        .unwrap()
                        .is_some_and(|m| m.state == drover_core::MoveState::Done);
            }
            done && dns_follows(&*store, servers[0].id).await
                && dns_follows(&*store, servers[2].id).await
        },
    )
    .await;
    let name = servers[1].spec.name.to_string();
    let retired = drover::commands::decommission(&*store, &ctx(), servers[1].id, &name)
        .await
        .unwrap();
    assert_eq!(retired.state, ServerState::Decommissioned);
    assert_eq!(
        held(&sims[0]).len() + held(&sims[2]).len(),
        ACCOUNTS,
        "every account once, on vm1 or vm3"
    );

    // 4. vm3 dies: health checks find it unavailable, failover recreates its accounts on vm1
    //    (the only server left) and both PowerDNS servers answer vm1's address.
    let on_vm3 = recorded(&*store, servers[2].id).await;
    assert!(!on_vm3.is_empty());
    let killed = Instant::now();
    sims[2].set_down(true);
    crate::until(
        "vm3's accounts answer vm1's address on both PowerDNS servers",
        Duration::from_secs(60),
        async || {
            let mut ok = true;
            for domain in &on_vm3 {
                ok = ok && crate::served_a(domain).await == Some(address(servers[0].id.get()));
            }
            ok
        },
    )
    .await;
    let recovery = killed.elapsed();
    println!(
        "time to recovery: {recovery:?} for {} accounts (kill to both PowerDNS servers answering the new address)",
        on_vm3.len()
    );
    assert_eq!(
        store.server(servers[2].id).await.unwrap().state,
        ServerState::Unavailable
    );
    crate::until(
        "vm1 holds every account",
        Duration::from_secs(30),
        async || {
            held(&sims[0]).len() == ACCOUNTS
                && recorded(&*store, servers[0].id).await.len() == ACCOUNTS
        },
    )
    .await;
    assert_eq!(held(&sims[0]), recorded(&*store, servers[0].id).await);
    // drover records its own measure: from the server found unavailable to the last switch.
    let subject = format!("server:{}", servers[2].id);
    crate::until(
        "the recovery time is recorded",
        Duration::from_secs(10),
        async || {
            let events = store
                .audit_events(drover_store::AuditFilter {
                    subject: Some(subject.clone()),
                    ..Default::default()
                })
                .await
                .unwrap();
            events.iter().any(|e| {
                e.action == "server.failover_complete"
                    && e.details.contains("seconds_since_unavailable")
            })
        },
    )
    .await;
    workers.stop().await.unwrap();

    // 5. With failover off by policy, vm1 is lost too; an operator rebuilds it onto a fresh,
    //    empty server from drover's records alone.
    let mut workers = drover::engine::start(engine(&fleet, false), 8).unwrap();
    let suspended = store
        .accounts(drover_store::AccountFilter {
            domain: Some(DomainName::parse(&domains[0]).unwrap()),
            ..Default::default()
        })
        .await
        .unwrap()
        .remove(0);
    crate::transition_service(
        &*store,
        &ctx(),
        suspended.service_id,
        Transition::Suspend,
        Some("unpaid".into()),
    )
    .await
    .unwrap();
    crate::until(
        "the suspension reaches vm1",
        Duration::from_secs(20),
        async || {
            sims[0].with_state(|s| {
                s.domains
                    .get(&domains[0])
                    .is_some_and(|d| d.disabled.is_some())
            })
        },
    )
    .await;
    sims[0].set_down(true);
    crate::until(
        "vm1 is found unavailable",
        Duration::from_secs(20),
        async || store.server(servers[0].id).await.unwrap().state == ServerState::Unavailable,
    )
    .await;
    let (fresh_sim, fresh) = fleet
        .add_server(
            "vm4",
            serde_json::json!({"capacity": 20, "ipv4": address(4)}),
        )
        .await;
    let lost = store.server(servers[0].id).await.unwrap();
    let dry = drover::commands::rebuild(&*store, &ctx(), &lost, fresh.id, 50.0, true)
        .await
        .unwrap();
    assert!(dry.problems.is_empty(), "{:?}", dry.problems);
    assert_eq!(dry.steps.len(), ACCOUNTS);
    // No account was backed up: each is made empty, and the plan says which.
    assert_eq!(dry.without_backup.len(), ACCOUNTS);
    assert!(dry.steps.iter().all(|s| s.restore_from.is_none()));
    assert!(held(&fresh_sim).is_empty(), "a dry run changes nothing");
    let started = Instant::now();
    let plan = drover::commands::rebuild(&*store, &ctx(), &lost, fresh.id, 50.0, false)
        .await
        .unwrap();
    assert!(plan.started);
    crate::until("the rebuild is done", Duration::from_secs(60), async || {
        store.failovers_remaining(lost.id).await.unwrap() == 0
            && dns_follows(&*store, fresh.id).await
    })
    .await;
    println!(
        "rebuilt {} accounts onto an empty server in {:?} (plan: {} calls, {:.1} s at 50 calls/s)",
        plan.steps.len(),
        started.elapsed(),
        plan.calls,
        plan.estimated_seconds
    );

    // The fresh server holds exactly drover's records: every domain, its user, plan and state.
    let expected: BTreeSet<String> = domains.iter().cloned().collect();
    assert_eq!(recorded(&*store, fresh.id).await, expected);
    assert_eq!(held(&fresh_sim), expected);
    for account in drover::engine::accounts_on(&*store, fresh.id)
        .await
        .unwrap()
    {
        let on_server = fresh_sim
            .with_state(|s| s.domains.get(account.domain.as_str()).cloned())
            .unwrap();
        assert_eq!(on_server.unix_user, account.unix_username.as_str());
        assert_eq!(on_server.plan, "Web");
        assert_eq!(
            on_server.disabled.is_some(),
            account.desired_state == DesiredState::Disabled,
            "{}",
            account.domain
        );
    }
    assert!(
        fresh_sim.with_state(|s| s.domains[&domains[0]].disabled.is_some()),
        "the suspended account comes back suspended"
    );
    // Billing's figures follow the accounts to their new server.
    let engine = engine(&fleet, false);
    let usage = drover::engine::usage::sync_server(&engine, &fresh)
        .await
        .unwrap();
    assert_eq!((usage.accounts, usage.not_listed.len()), (ACCOUNTS, 0));
    workers.stop().await.unwrap();
}
