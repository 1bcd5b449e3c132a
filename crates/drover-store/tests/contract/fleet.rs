//! The fleet part of the store contract: health checks and the states they move.

use drover_core::{HealthPolicy, HealthProbe, ServerState, Verdict};
use drover_store::{AuditFilter, Page};

use crate::{Harness, ctx, new_plan, new_server, server_spec};

fn probe(api_ok: bool) -> HealthProbe {
    HealthProbe {
        api_ok,
        latency_ms: 12,
        error: (!api_ok).then(|| "connection refused".to_owned()),
        certificate_days_left: Some(60),
        pin_matches: None,
        breaker_open: false,
        login_refused: false,
    }
}

pub async fn health_checks_move_a_server_after_consecutive_results(h: Harness) {
    let store = &h.store;
    let server = new_server(&**store, server_spec("vm1")).await.unwrap();
    assert_eq!(store.server_health(server.id).await.unwrap(), None);
    let policy = HealthPolicy::default();
    let mut states = Vec::new();
    for ok in [false, false, false, true, true] {
        let change = store
            .record_health(&ctx(), server.id, &probe(ok), &policy)
            .await
            .unwrap();
        states.push((change.before, change.server.state, change.moved()));
    }
    use ServerState::*;
    assert_eq!(
        states,
        [
            (Healthy, Healthy, false),
            (Healthy, Degraded, true),
            (Degraded, Unavailable, true),
            (Unavailable, Unavailable, false),
            (Unavailable, Healthy, true),
        ]
    );
    let health = store.server_health(server.id).await.unwrap().unwrap();
    assert_eq!(
        (health.verdict, health.streak.healthy, health.state),
        (Verdict::Healthy, 2, Healthy)
    );
    let events = store
        .audit_events(AuditFilter {
            subject: Some(format!("server:{}", server.id)),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let moves: Vec<_> = events
        .iter()
        .filter(|e| e.action == "server.health")
        .collect();
    assert_eq!(moves.len(), 3, "one event per move, none per check");
    assert!(
        moves[1].details.contains("connection refused"),
        "{}",
        moves[1].details
    );
    // Maintenance is the operator's: checks are kept but never move it.
    let server = crate::set_server_state(&**store, server.id, Maintenance).await;
    assert_eq!(server.state, Maintenance);
    for _ in 0..4 {
        let change = store
            .record_health(&ctx(), server.id, &probe(false), &policy)
            .await
            .unwrap();
        assert_eq!(change.server.state, Maintenance);
    }
    let health = store.server_health(server.id).await.unwrap().unwrap();
    assert_eq!(
        (health.verdict, health.streak.failures),
        (Verdict::Unavailable, 4)
    );
}

pub async fn drift_scans_replace_findings_and_keep_what_repairs_did(h: Harness) {
    use drover_core::{DesiredState, DomainName, DriftAction, DriftFinding, DriftKind, Transition};
    use drover_store::{JobFilter, NewService};
    let store = &h.store;
    let server = new_server(&**store, server_spec("vm1")).await.unwrap();
    let plan = new_plan(&**store, crate::plan_spec("Web")).await.unwrap();
    let customer = crate::customer(&**store).await;
    let service = crate::record_service(
        &**store,
        NewService {
            customer_id: customer,
            plan_id: plan.id,
            domain: DomainName::parse("ana.ro").unwrap(),
        },
    )
    .await;
    store
        .assign_server(&ctx(), service.account_id, server.id)
        .await
        .unwrap();
    crate::move_service(&**store, service.id, Transition::Activate, None).await;
    let expected = store.server_expectations(server.id).await.unwrap();
    assert_eq!(expected.len(), 1);
    assert_eq!(
        (
            expected[0].domain.as_str(),
            expected[0].state,
            expected[0].plan.as_str()
        ),
        ("ana.ro", DesiredState::Enabled, "Web")
    );
    let findings = [
        DriftFinding {
            kind: DriftKind::Missing,
            domain: "ana.ro".into(),
            account_id: Some(service.account_id),
            expected: Some("enabled".into()),
            found: None,
            resource: None,
        },
        DriftFinding {
            kind: DriftKind::Orphan,
            domain: "stray.ro".into(),
            account_id: None,
            expected: None,
            found: Some("enabled".into()),
            resource: None,
        },
        DriftFinding {
            kind: DriftKind::MailboxOrphan,
            domain: "ana.ro".into(),
            account_id: Some(service.account_id),
            expected: None,
            found: Some("Bob".into()),
            resource: Some("bob".into()),
        },
    ];
    let records = store
        .record_drift(&ctx(), server.id, &findings)
        .await
        .unwrap();
    assert_eq!(
        records
            .iter()
            .map(|r| r.finding.clone())
            .collect::<Vec<_>>(),
        findings
    );
    assert!(records.iter().all(|r| r.action.is_none()));
    let jobs_before = store.jobs(JobFilter::default()).await.unwrap().len();
    let actions = [
        (records[0].id, DriftAction::Enforce),
        (records[1].id, DriftAction::Log),
    ];
    let generation = |a: drover_store::Account| a.desired_generation;
    let before = generation(store.account(service.account_id).await.unwrap());
    // A repair's writes: each finding's action, and a converge for the enforced account.
    let mut tx = store.write().await.unwrap();
    for (finding, action) in actions {
        tx.update_drift_action(server.id, finding, action)
            .await
            .unwrap();
    }
    let next = tx.next_generation(service.account_id).await.unwrap();
    let args = drover_store::jobs::ConvergeAccount {
        account_id: service.account_id.get(),
        after_job: next.converge_ended_by,
    };
    let job = tx
        .enqueue(&ctx(), drover_store::Job::Converge(args))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(job.joined);
    // Enforcing is a new generation: a converge job just finishing runs again for it.
    assert_eq!(
        generation(store.account(service.account_id).await.unwrap()),
        before + 1
    );
    let after = store.drift_findings(Some(server.id)).await.unwrap();
    assert_eq!(
        after.iter().map(|r| r.action).collect::<Vec<_>>(),
        [Some(DriftAction::Enforce), Some(DriftAction::Log), None]
    );
    // The activation's converge job was still waiting: the repair joined it.
    assert_eq!(
        store.jobs(JobFilter::default()).await.unwrap().len(),
        jobs_before
    );
    // A new scan replaces the open findings.
    let records = store
        .record_drift(&ctx(), server.id, &findings[1..])
        .await
        .unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(store.drift_findings(None).await.unwrap(), records);
    let events = store
        .audit_events(drover_store::AuditFilter {
            subject: Some(format!("server:{}", server.id)),
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e.action.as_str())
        .filter(|a| a.starts_with("drift"))
        .collect();
    assert_eq!(actions, ["drift.scan", "drift.scan"], "one per scan");
}

pub async fn usage_is_replaced_by_each_sync_for_accounts_still_on_the_server(h: Harness) {
    use drover_core::{DomainName, Usage};
    use drover_store::{NewService, Page, UsageFilter};
    let store = &h.store;
    let vm1 = new_server(&**store, server_spec("vm1")).await.unwrap();
    let vm2 = new_server(&**store, server_spec("vm2")).await.unwrap();
    let plan = new_plan(&**store, crate::plan_spec("Web")).await.unwrap();
    let customer = crate::customer(&**store).await;
    let mut services = Vec::new();
    for domain in ["ana.ro", "ion.ro"] {
        let service = crate::record_service(
            &**store,
            NewService {
                customer_id: customer,
                plan_id: plan.id,
                domain: DomainName::parse(domain).unwrap(),
            },
        )
        .await;
        store
            .assign_server(&ctx(), service.account_id, vm1.id)
            .await
            .unwrap();
        services.push(service);
    }
    let figures = |mailboxes: u64| Usage {
        disk_bytes: Some(5 * 1024 * 1024 * 1024),
        bandwidth_bytes: None,
        mailboxes,
        databases: 2,
        database_bytes: 4096,
    };
    let (ana, ion) = (services[0].account_id, services[1].account_id);
    assert_eq!(store.usage(UsageFilter::default()).await.unwrap(), []);
    let recorded = store
        .record_usage(vm1.id, &[(ana, figures(3)), (ion, figures(1))])
        .await
        .unwrap();
    assert_eq!(recorded, 2);
    let all = store.usage(UsageFilter::default()).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (
            all[0].account_id,
            all[0].service_id,
            all[0].domain.as_str(),
            all[0].server_id,
            all[0].usage
        ),
        (ana, services[0].id, "ana.ro", vm1.id, figures(3))
    );
    // A later sync replaces the figures; billing pages through them by account id.
    store
        .record_usage(vm1.id, &[(ana, figures(4))])
        .await
        .unwrap();
    let page = store
        .usage(UsageFilter {
            page: Page::new(None, Some(1)),
            ..UsageFilter::default()
        })
        .await
        .unwrap();
    assert_eq!((page.len(), page[0].usage.mailboxes), (1, 4));
    assert!(page[0].measured_at >= all[0].measured_at);
    let rest = store
        .usage(UsageFilter {
            page: Page::new(Some(ana.get()), None),
            ..UsageFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|u| u.account_id).collect::<Vec<_>>(), [ion]);
    let by_service = store
        .usage(UsageFilter {
            service_id: Some(services[1].id),
            ..UsageFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(by_service.len(), 1);
    assert_eq!(by_service[0].account_id, ion);

    // An account moved off the server is not written from that server's listing any more.
    h.raw
        .exec(&format!(
            "UPDATE accounts SET server_id = {} WHERE id = {ion}",
            vm2.id
        ))
        .await
        .unwrap();
    let recorded = store
        .record_usage(vm1.id, &[(ana, figures(5)), (ion, figures(9))])
        .await
        .unwrap();
    assert_eq!(recorded, 1);
    let on_vm1 = store
        .usage(UsageFilter {
            server_id: Some(vm1.id),
            ..UsageFilter::default()
        })
        .await
        .unwrap();
    let mailboxes: Vec<u64> = on_vm1.iter().map(|u| u.usage.mailboxes).collect();
    assert_eq!(mailboxes, [5, 1], "ion keeps its last figures from vm1");
}

/// A server's page follows the moves leaving or reaching it until each is done.
pub async fn a_servers_moves_are_listed_until_done(h: Harness) {
    let store = &*h.store;
    let vm1 = new_server(store, server_spec("vm1")).await.unwrap().id;
    let vm2 = new_server(store, server_spec("vm2")).await.unwrap().id;
    let vm3 = new_server(store, server_spec("vm3")).await.unwrap().id;
    let mut accounts = Vec::new();
    for (domain, from, to) in [("pleacă.ro", vm1, vm2), ("vine.ro", vm3, vm1)] {
        let svc = crate::service(store, domain).await;
        crate::move_service(store, svc.id, drover_core::Transition::Activate, None).await;
        store
            .assign_server(&ctx(), svc.account_id, from)
            .await
            .unwrap();
        let mut tx = store.write().await.unwrap();
        tx.insert_migration(&drover_store::NewMigration {
            account: svc.account_id,
            from,
            to,
            delete_after: jiff::Timestamp::now(),
            failover: true,
            restore_from: None,
            without_content: false,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        accounts.push(svc.account_id);
    }
    let listed = |moves: Vec<(drover_core::DomainName, drover_store::Migration)>| {
        moves
            .into_iter()
            .map(|(d, m)| (d.to_string(), m.from_server, m.to_server, m.state))
            .collect::<Vec<_>>()
    };
    use drover_core::MoveState::*;
    let leaving = drover_core::DomainName::parse("pleacă.ro")
        .unwrap()
        .to_string();
    assert_eq!(
        listed(store.moves_under_way(vm1).await.unwrap()),
        [
            (leaving, vm1, vm2, Creating),
            ("vine.ro".to_owned(), vm3, vm1, Creating)
        ]
    );
    assert_eq!(listed(store.moves_under_way(vm2).await.unwrap()).len(), 1);
    let mut tx = store.write().await.unwrap();
    tx.update_migration_state(accounts[0], Done).await.unwrap();
    tx.update_migration_state(accounts[1], Switched)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        listed(store.moves_under_way(vm1).await.unwrap()),
        [("vine.ro".to_owned(), vm3, vm1, Switched)]
    );
    assert!(store.moves_under_way(vm2).await.unwrap().is_empty());
}

/// A bootstrap: one under way per name, its progress kept as it runs, and the server it
/// registers recorded once, in maintenance, however often its job resumes.
pub async fn a_bootstrap_keeps_its_progress_and_registers_its_server_once(h: Harness) {
    use drover_core::{BootstrapProgress, BootstrapState, BootstrapStep, StepState};
    let store = &*h.store;
    let spec: drover_core::BootstrapSpec = serde_json::from_value(serde_json::json!({
        "name": "vm-new",
        "host": "203.0.113.9",
        "ssh": {"key": "env:DROVER_SECRET_KEY", "host_key": format!("SHA256:{}", "B".repeat(43))},
        "api_credentials": "env:DROVER_SECRET_VM_NEW",
        "capacity": 10,
    }))
    .unwrap();
    let plan = drover_core::plan_bootstrap(&spec, None);
    let started = store
        .start_bootstrap(&ctx(), &spec, &BootstrapProgress::new(&plan))
        .await
        .unwrap();
    assert_eq!(started.state, BootstrapState::Running);
    assert!(started.job_id.is_some(), "its job is queued with it");
    assert_eq!(started.progress.steps.len(), plan.len());
    let again = store
        .start_bootstrap(&ctx(), &spec, &BootstrapProgress::new(&plan))
        .await
        .unwrap_err();
    assert!(again.to_string().contains("under way"), "{again}");
    // Another name, the same machine (its host key): refused too.
    let mut other_name = spec.clone();
    other_name.name = drover_core::ServerName::parse("vm-alias").unwrap();
    let same_machine = store
        .start_bootstrap(&ctx(), &other_name, &BootstrapProgress::new(&plan))
        .await
        .unwrap_err();
    assert!(
        same_machine.to_string().contains("its machine"),
        "{same_machine}"
    );
    assert_eq!(store.running_bootstraps().await.unwrap().len(), 1);

    let mut progress = started.progress.clone();
    progress.set(
        BootstrapStep::CheckSystem,
        StepState::Done,
        Some("Debian GNU/Linux 12".into()),
    );
    store
        .save_bootstrap_progress(started.id, BootstrapState::Running, &progress, None)
        .await
        .unwrap();
    let read = store.bootstrap(started.id).await.unwrap();
    assert_eq!(
        read.progress.state_of(BootstrapStep::CheckSystem),
        Some(StepState::Done)
    );

    let server_spec = spec.server_spec(None);
    let server = store
        .register_bootstrapped_server(&ctx(), started.id, &server_spec)
        .await
        .unwrap();
    assert_eq!(server.state, ServerState::Maintenance);
    let resumed = store
        .register_bootstrapped_server(&ctx(), started.id, &server_spec)
        .await
        .unwrap();
    assert_eq!(resumed.id, server.id, "registered once");
    assert_eq!(
        store.bootstrap(started.id).await.unwrap().server_id,
        Some(server.id)
    );

    store
        .save_bootstrap_progress(started.id, BootstrapState::Done, &progress, None)
        .await
        .unwrap();
    // The name is the server's now: a new bootstrap of it is refused.
    let taken = store
        .start_bootstrap(&ctx(), &spec, &BootstrapProgress::new(&plan))
        .await
        .unwrap_err();
    assert!(taken.to_string().contains("server named vm-new"), "{taken}");
    assert_eq!(store.bootstraps(Page::default()).await.unwrap().len(), 1);
}

/// The listings an API client pages through are served by an index for each filter that has
/// one (the page's cursor by the primary key), on both databases: never a scan of every row.
pub async fn listings_filtered_by_an_indexed_column_use_its_index(h: Harness) {
    use drover_store::{AccountFilter, ServiceFilter, listing};
    let plan = async |from: &str, tail: listing::Tail| {
        let sql = format!("SELECT * FROM {from} {}", tail.sql);
        h.raw.explain(&sql, &tail.binds).await
    };
    // The index by its name: SQLite's own for a UNIQUE column, PostgreSQL's `…_key`.
    let uses = |plan: &str, sqlite: &str, postgres: &str| {
        plan.contains(&format!("USING INDEX {sqlite}"))
            || plan.contains(&format!("Index Scan using {postgres} "))
            || plan.contains(&format!("Index Scan on {postgres} "))
    };
    let by_domain = AccountFilter {
        domain: Some(drover_core::DomainName::parse("știri.ro").unwrap()),
        ..AccountFilter::default()
    };
    let found = plan("accounts", listing::accounts(&by_domain)).await;
    let sqlite_unique = "sqlite_autoindex_accounts_2 (domain=?";
    assert!(
        uses(&found, sqlite_unique, "accounts_domain_key"),
        "{found}"
    );
    let by_server = AccountFilter {
        server_id: Some(drover_core::ServerId(1)),
        ..AccountFilter::default()
    };
    let found = plan("accounts", listing::accounts(&by_server)).await;
    assert!(
        uses(&found, "accounts_server (server_id=?", "accounts_server"),
        "{found}"
    );
    let paged = plan("accounts", listing::accounts(&AccountFilter::default())).await;
    let by_key = paged.contains("PRIMARY KEY") || paged.contains("accounts_pkey");
    assert!(by_key, "{paged}");
    let by_customer = ServiceFilter {
        customer_id: Some(drover_core::CustomerId(1)),
        ..ServiceFilter::default()
    };
    let joined = "services s JOIN accounts a ON a.service_id = s.id";
    let found = plan(joined, listing::services(&by_customer)).await;
    assert!(
        uses(
            &found,
            "services_customer (customer_id=?",
            "services_customer"
        ),
        "{found}"
    );
}
