//! Moving one account between two simulators: created on the target, DNS switched to the
//! target's address, the source copy disabled, and deleted on confirmation or after the grace.

use std::sync::Arc;
use std::time::Duration;

use drover::engine::FleetPolicy;
use drover_core::{DomainName, MoveRefusal, PlacementPolicy, RecordType, ServerId, Transition};
use drover_store::{NewService, RequestContext, StoreError};

fn ctx() -> RequestContext {
    RequestContext {
        actor: "test".into(),
        correlation_id: "migrate-1".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_moves_to_another_server_with_its_dns() {
    let fleet = crate::TestFleet::new().await;
    let store = Arc::clone(&fleet.store);
    let mut sims = Vec::new();
    for (i, ip) in ["192.0.2.31", "192.0.2.32"].iter().enumerate() {
        let (sim, _) = fleet
            .add_server(
                &format!("vm{}", i + 1),
                serde_json::json!({"capacity": 10, "ipv4": ip}),
            )
            .await;
        sims.push(sim);
    }
    // Only vm1 takes new accounts at first.
    drover::commands::set_maintenance(&*store, &ctx(), ServerId(2), true)
        .await
        .unwrap();
    let (plan_id, customer_id) = fleet.plan_and_customer().await;
    // Its accounts have mail, so they can have mailboxes.
    let mail = serde_json::json!({"features": ["dir", "web", "dns", "mail", "mysql"]});
    drover::commands::update_plan(
        &*store,
        &ctx(),
        plan_id,
        serde_json::from_value(mail).unwrap(),
        false,
    )
    .await
    .unwrap();
    let engine = fleet.engine(crate::quick_retries(), FleetPolicy::default());
    let mut workers = drover::engine::start(Arc::new(engine), 4).unwrap();
    let mut accounts = Vec::new();
    for name in ["stay.ro", "move.ro", "wait.ro"] {
        let new = NewService {
            customer_id,
            plan_id,
            domain: DomainName::parse(name).unwrap(),
        };
        let service = crate::create_service(&*store, &ctx(), new).await.unwrap();
        crate::transition_service(&*store, &ctx(), service.id, Transition::Activate, None)
            .await
            .unwrap();
        accounts.push(service.account_id);
    }
    crate::until(
        "all three are on vm1 with their zones",
        Duration::from_secs(10),
        || async {
            sims[0].domain_names().len() == 3
                && store.account_zone(accounts[2]).await.unwrap().is_some()
        },
    )
    .await;
    drover::commands::set_maintenance(&*store, &ctx(), ServerId(2), false)
        .await
        .unwrap();

    // Refusals first: same server, unknown server, a target in maintenance.
    let grace = Duration::from_secs(3600);
    let err = drover::commands::start_migration(&*store, &ctx(), accounts[1], ServerId(1), grace)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            drover::commands::Error::Rule(drover_core::Error::MoveRefused(
                MoveRefusal::SameServer { .. }
            ))
        ),
        "{err}"
    );
    assert!(matches!(
        drover::commands::start_migration(&*store, &ctx(), accounts[1], ServerId(9), grace).await,
        Err(drover::commands::Error::Store(StoreError::NotFound { .. }))
    ));

    // Tried as an operator would: move.ro gets three mailboxes, two databases, an alias and a
    // sub-server from billing's requests; some are damaged by hand on its server and repaired
    // by drift; then the move makes them all on vm2, and the alias's zone and the sub-server's
    // addresses follow the account.
    let sealer = drover::engine::Sealer::from_hex(&"42".repeat(32)).unwrap();
    for (name, real) in [("ana", "Ana"), ("ion", "Ion"), ("eva", "Eva")] {
        let password = secrecy::SecretString::from("Mail-passw0rd".to_owned());
        drover::commands::create_mailbox(
            &*store,
            &ctx(),
            &sealer,
            accounts[1],
            name,
            real,
            password,
            None,
        )
        .await
        .unwrap();
    }
    let mailboxes_on = |sim: &drover_testkit::virtualmin::VirtualminSim| {
        sim.with_state(|s| s.domains.get("move.ro").map(|d| d.mailboxes.clone()))
    };
    for name in ["shop", "blog"] {
        drover::commands::create_database(&*store, &ctx(), accounts[1], name, "mysql")
            .await
            .unwrap();
    }
    let databases_on = |sim: &drover_testkit::virtualmin::VirtualminSim| {
        sim.with_state(|s| s.domains.get("move.ro").map(|d| d.databases.clone()))
            .unwrap_or_default()
    };
    drover::commands::create_alias(&*store, &ctx(), accounts[1], "move.com")
        .await
        .unwrap();
    drover::commands::create_subserver(&*store, &ctx(), accounts[1], "shop")
        .await
        .unwrap();
    let subserver_on = |sim: &drover_testkit::virtualmin::VirtualminSim| {
        sim.with_state(|s| {
            s.domains
                .get("shop.move.ro")
                .is_some_and(|d| d.parent.as_deref() == Some("move.ro"))
        })
    };
    let alias_on = |sim: &drover_testkit::virtualmin::VirtualminSim| {
        sim.with_state(|s| {
            s.domains
                .get("move.com")
                .is_some_and(|d| d.parent.as_deref() == Some("move.ro"))
        })
    };
    let all_on = |sim: &drover_testkit::virtualmin::VirtualminSim| {
        let mailboxes = mailboxes_on(sim).unwrap_or_default();
        let names: Vec<&str> = mailboxes.keys().map(String::as_str).collect();
        names == ["ana", "eva", "ion"]
            && mailboxes["eva"] == "Eva"
            && {
                let mut databases = databases_on(sim);
                databases.sort();
                databases == ["move", "move_blog", "move_shop"]
            }
            && alias_on(sim)
            && subserver_on(sim)
    };
    crate::until(
        "everything of move.ro is on vm1, move.com with its zone",
        Duration::from_secs(10),
        || async { all_on(&sims[0]) && store.account_zones(accounts[1]).await.unwrap().len() == 2 },
    )
    .await;
    crate::settled(&*store, accounts[1]).await;
    // Damaged by hand: a mailbox and a database deleted, a real name changed. A scan finds it
    // and its repair (by the default policy) puts drover's records back.
    sims[0].with_state(|s| {
        let domain = s.domains.get_mut("move.ro").unwrap();
        domain.mailboxes.remove("ion");
        domain.mailboxes.insert("eva".into(), "By Hand".into());
        domain.databases.retain(|d| d != "move_blog");
    });
    let scan = drover::commands::request(
        &*store,
        &ctx(),
        drover::commands::Requested::DriftScan {
            server: Some(ServerId(1)),
            repair: drover_store::jobs::DriftRepair::ByPolicy,
        },
    )
    .await
    .unwrap();
    crate::until(
        "the scan's repair puts move.ro back",
        Duration::from_secs(15),
        || async { store.job(scan).await.unwrap().state == "completed" && all_on(&sims[0]) },
    )
    .await;
    let findings = store.drift_findings(Some(ServerId(1))).await.unwrap();
    let mut kinds: Vec<String> = findings
        .iter()
        .filter(|f| f.finding.domain == "move.ro")
        .map(|f| f.finding.kind.as_str().to_owned())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["database_missing", "mailbox_mismatch", "mailbox_missing"],
        "{findings:?}"
    );

    // move.ro has a certificate on vm1; the move asks for one on vm2, once its DNS is there.
    drover::commands::request_certificate(&*store, &ctx(), accounts[1])
        .await
        .unwrap();
    let certified = |sim: &drover_testkit::virtualmin::VirtualminSim| {
        sim.with_state(|s| {
            s.domains
                .get("move.ro")
                .is_some_and(|d| d.certificate_expiry.is_some())
        })
    };
    crate::until(
        "move.ro has its certificate on vm1",
        Duration::from_secs(10),
        || async { certified(&sims[0]) },
    )
    .await;

    // move.ro: confirmed by the operator, deleted from vm1 at once.
    drover::commands::start_migration(&*store, &ctx(), accounts[1], ServerId(2), grace)
        .await
        .unwrap();
    crate::until(
        "move.ro is on vm2 and disabled on vm1",
        Duration::from_secs(30),
        || async {
            store
                .migration(accounts[1])
                .await
                .unwrap()
                .is_some_and(|m| m.state == drover_core::MoveState::SourceDisabled)
        },
    )
    .await;
    assert!(sims[1].domain_names().contains(&"move.ro".to_owned()));
    let moved = mailboxes_on(&sims[1]).unwrap();
    assert_eq!(
        moved.get("ana").map(String::as_str),
        Some("Ana"),
        "{moved:?}"
    );
    assert!(all_on(&sims[1]), "everything of move.ro is made on vm2");
    assert!(alias_on(&sims[1]), "the alias is made on vm2");
    assert!(subserver_on(&sims[1]), "the sub-server is made on vm2");
    crate::until(
        "move.ro has a certificate on vm2",
        Duration::from_secs(10),
        || async {
            certified(&sims[1])
                && store
                    .certificate(accounts[1])
                    .await
                    .unwrap()
                    .is_some_and(|c| c.state == drover_core::CertificateState::Issued)
        },
    )
    .await;
    let alias_zone = store
        .account_zones(accounts[1])
        .await
        .unwrap()
        .into_iter()
        .find(|z| z.name.as_str() == "move.com")
        .unwrap();
    let alias_a = alias_zone
        .rrsets
        .iter()
        .find(|r| r.rtype == RecordType::A && r.name.as_str() == "move.com")
        .unwrap();
    assert_eq!(
        alias_a.records,
        ["192.0.2.32"],
        "DNS follows the account's alias too"
    );
    assert!(sims[0].with_state(|s| s.domains["move.ro"].disabled.is_some()));
    assert_eq!(
        store.account(accounts[1]).await.unwrap().server_id,
        Some(ServerId(2))
    );
    let zone = store.account_zone(accounts[1]).await.unwrap().unwrap();
    let apex_a = zone
        .rrsets
        .iter()
        .find(|r| r.rtype == RecordType::A && r.name.as_str() == "move.ro")
        .unwrap();
    assert_eq!(apex_a.records, ["192.0.2.32"], "DNS follows the account");
    let shop_a = zone
        .rrsets
        .iter()
        .find(|r| r.rtype == RecordType::A && r.name.as_str() == "shop.move.ro")
        .unwrap();
    assert_eq!(
        shop_a.records,
        ["192.0.2.32"],
        "and its sub-server's addresses"
    );
    let err = drover::commands::start_migration(&*store, &ctx(), accounts[1], ServerId(1), grace)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            drover::commands::Error::Rule(drover_core::Error::MoveRefused(
                MoveRefusal::UnderWay { .. }
            ))
        ),
        "{err}"
    );
    // Unconfirmed, it waits: a later look is scheduled within the grace period.
    let scheduled = store
        .jobs(drover_store::JobFilter {
            states: vec![drover_store::JobState::Scheduled],
            account_id: Some(accounts[1]),
            limit: None,
        })
        .await
        .unwrap();
    assert!(
        scheduled.iter().any(|j| j.kind == "migrate_account"),
        "{scheduled:?}"
    );
    assert!(
        sims[0].domain_names().contains(&"move.ro".to_owned()),
        "not deleted before the grace or a confirmation"
    );
    assert!(
        drover::commands::confirm_migration(&*store, &ctx(), accounts[1], "other.ro")
            .await
            .is_err()
    );
    drover::commands::confirm_migration(&*store, &ctx(), accounts[1], "move.ro")
        .await
        .unwrap();
    crate::until(
        "move.ro is gone from vm1",
        Duration::from_secs(10),
        || async { !sims[0].domain_names().contains(&"move.ro".to_owned()) },
    )
    .await;
    crate::until("the move is done", Duration::from_secs(10), || async {
        store
            .migration(accounts[1])
            .await
            .unwrap()
            .is_some_and(|m| m.state == drover_core::MoveState::Done)
    })
    .await;

    // wait.ro: no confirmation; a zero grace period deletes the old copy on its own.
    drover::commands::start_migration(&*store, &ctx(), accounts[2], ServerId(2), Duration::ZERO)
        .await
        .unwrap();
    crate::until(
        "wait.ro is moved and its old copy gone",
        Duration::from_secs(10),
        || async {
            store
                .migration(accounts[2])
                .await
                .unwrap()
                .is_some_and(|m| m.state == drover_core::MoveState::Done)
        },
    )
    .await;
    assert!(!sims[0].domain_names().contains(&"wait.ro".to_owned()));
    assert!(sims[1].domain_names().contains(&"wait.ro".to_owned()));
    assert_eq!(sims[0].domain_names(), ["stay.ro"]);
    workers.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_server_empties_by_placement_and_is_retired() {
    let fleet = crate::TestFleet::new().await;
    let store = Arc::clone(&fleet.store);
    let mut sims = Vec::new();
    for i in 1..=3 {
        let (sim, _) = fleet
            .add_server(
                &format!("vm{i}"),
                serde_json::json!({"capacity": 10, "ipv4": format!("192.0.2.4{i}")}),
            )
            .await;
        sims.push(sim);
    }
    for id in [2, 3] {
        drover::commands::set_maintenance(&*store, &ctx(), ServerId(id), true)
            .await
            .unwrap();
    }
    let (plan_id, customer_id) = fleet.plan_and_customer().await;
    let engine = fleet.engine(crate::quick_retries(), FleetPolicy::default());
    let mut workers = drover::engine::start(Arc::new(engine), 4).unwrap();
    for i in 0..6 {
        let new = NewService {
            customer_id,
            plan_id,
            domain: DomainName::parse(&format!("d{i}.ro")).unwrap(),
        };
        let service = crate::create_service(&*store, &ctx(), new).await.unwrap();
        crate::transition_service(&*store, &ctx(), service.id, Transition::Activate, None)
            .await
            .unwrap();
    }
    crate::until("six accounts on vm1", Duration::from_secs(10), || async {
        sims[0].domain_names().len() == 6
    })
    .await;
    for id in [2, 3] {
        drover::commands::set_maintenance(&*store, &ctx(), ServerId(id), false)
            .await
            .unwrap();
    }
    let vm1 = store.server(ServerId(1)).await.unwrap();
    let placement = PlacementPolicy::default();
    let dry = drover::commands::drain(&*store, &ctx(), &placement, vm1.id, Duration::ZERO, true)
        .await
        .unwrap();
    assert_eq!(dry.moves.len(), 6);
    let to_vm2 = dry
        .moves
        .iter()
        .filter(|m| m.to_server == ServerId(2))
        .count();
    assert_eq!(to_vm2, 3, "placement spreads the moves: {:?}", dry.moves);
    assert_eq!(
        store.server(ServerId(1)).await.unwrap().state,
        drover_core::ServerState::Healthy,
        "a dry run changes nothing"
    );
    let err = drover::commands::decommission(&*store, &ctx(), ServerId(1), "vm1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            drover::commands::Error::Rule(drover_core::Error::ServerRefused(
                drover_core::ServerRefusal::NotEmpty { holding: 6, .. }
            ))
        ),
        "{err}"
    );
    let plan = drover::commands::drain(&*store, &ctx(), &placement, vm1.id, Duration::ZERO, false)
        .await
        .unwrap();
    assert_eq!(plan.moves.len(), 6);
    assert_eq!(
        store.server(ServerId(1)).await.unwrap().state,
        drover_core::ServerState::Draining
    );
    crate::until(
        "vm1 is empty and the others hold everything",
        Duration::from_secs(10),
        || async {
            sims[0].domain_names().is_empty()
                && sims[1].domain_names().len() + sims[2].domain_names().len() == 6
        },
    )
    .await;
    crate::until("every move is done", Duration::from_secs(10), || async {
        let mut done = true;
        for m in &plan.moves {
            done &= store
                .migration(m.account_id)
                .await
                .unwrap()
                .is_some_and(|m| m.state == drover_core::MoveState::Done);
        }
        done
    })
    .await;
    let retired = drover::commands::decommission(&*store, &ctx(), ServerId(1), "vm1")
        .await
        .unwrap();
    assert_eq!(retired.state, drover_core::ServerState::Decommissioned);
    workers.stop().await.unwrap();
}
