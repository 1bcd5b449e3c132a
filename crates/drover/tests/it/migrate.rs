//! Moving one account between two simulators: created on the target, DNS switched to the
//! target's address, the source copy disabled, and deleted on confirmation or after the grace.

use std::sync::Arc;
use std::time::Duration;

use drover::engine::FleetPolicy;
use drover_core::{DomainName, MoveRefusal, PlacementPolicy, RecordType, ServerId, Transition};
use drover_store::{NewService, RequestContext, StoreError};

/// Gives the plan these features (mail and databases, say, for accounts that hold them).
async fn give_plan(store: &dyn drover_store::Store, plan: drover_core::PlanId, features: &[&str]) {
    let spec = serde_json::json!({ "features": features });
    drover::commands::update_plan(
        store,
        &ctx(),
        plan,
        serde_json::from_value(spec).unwrap(),
        false,
    )
    .await
    .unwrap();
}

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
    give_plan(&*store, plan_id, &["dir", "web", "dns", "mail", "mysql"]).await;
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
    let err = drover::commands::start_migration(
        &*store,
        &ctx(),
        accounts[1],
        ServerId(1),
        grace,
        drover::commands::WithoutContent::Allowed,
    )
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
        drover::commands::start_migration(
            &*store,
            &ctx(),
            accounts[1],
            ServerId(9),
            grace,
            drover::commands::WithoutContent::Allowed
        )
        .await,
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

    // move.ro: refused while its content would stay behind; then allowed to move without it,
    // confirmed by the operator, deleted from vm1 at once.
    let err = drover::commands::start_migration(
        &*store,
        &ctx(),
        accounts[1],
        ServerId(2),
        grace,
        drover::commands::WithoutContent::Refused,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            drover::commands::Error::Rule(drover_core::Error::ContentWouldStay { .. })
        ),
        "{err}"
    );
    assert!(store.migration(accounts[1]).await.unwrap().is_none());
    drover::commands::start_migration(
        &*store,
        &ctx(),
        accounts[1],
        ServerId(2),
        grace,
        drover::commands::WithoutContent::Allowed,
    )
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
    let err = drover::commands::start_migration(
        &*store,
        &ctx(),
        accounts[1],
        ServerId(1),
        grace,
        drover::commands::WithoutContent::Allowed,
    )
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
    drover::commands::start_migration(
        &*store,
        &ctx(),
        accounts[2],
        ServerId(2),
        Duration::ZERO,
        drover::commands::WithoutContent::Allowed,
    )
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
    let dry = drover::commands::drain(
        &*store,
        &ctx(),
        &placement,
        vm1.id,
        Duration::ZERO,
        true,
        drover::commands::WithoutContent::Allowed,
    )
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
    // No SSH host carries content: the drain is refused, nothing changed, until the operator
    // says the accounts may move without it.
    let drain = async |without| {
        drover::commands::drain(
            &*store,
            &ctx(),
            &placement,
            vm1.id,
            Duration::ZERO,
            false,
            without,
        )
        .await
    };
    let err = drain(drover::commands::WithoutContent::Refused)
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "draining vm1 would leave the customers' files, mail and databases behind (no backup \
             destination is the default); nothing was changed"
        ),
        "{err}"
    );
    assert_eq!(
        store.server(ServerId(1)).await.unwrap().state,
        drover_core::ServerState::Healthy
    );
    assert!(
        store
            .migration(drover_core::AccountId(1))
            .await
            .unwrap()
            .is_none()
    );
    let plan = drain(drover::commands::WithoutContent::Allowed)
        .await
        .unwrap();
    assert_eq!(plan.moves.len(), 6);
    assert_eq!(
        plan.content,
        "not carried: no backup destination is the default; moved without it, as allowed: the \
         accounts start empty on their new servers"
    );
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

/// A move carries the account's content through the default destination when it is an SSH
/// host both servers reach (a real sshd checks the pin; the simulators' `scp` reaches a
/// shared host): backed up on the source, restored on the target, checked, then switched. A
/// restore that fails keeps the account and its traffic on the source, with nothing left on
/// the target; tried again, it moves. A failover (the source gone) restores the last good
/// backup on its new server and says how old it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_carries_the_content_and_a_failover_restores_the_last_backup() {
    let vault = crate::Vault::start("moves", "vault-Passw0rd-1").await;
    let host = vault.host.clone();
    let fleet = crate::TestFleet::new().await;
    let store = Arc::clone(&fleet.store);
    let mut sims = Vec::new();
    for i in 1..=3 {
        let (sim, _) = fleet
            .add_server(
                &format!("vm{i}"),
                serde_json::json!({"capacity": 10, "ipv4": format!("192.0.2.5{i}")}),
            )
            .await;
        sims.push(sim);
    }
    // vm2 cannot reach the host at first.
    for sim in [&sims[0], &sims[2]] {
        sim.with_state(|s| s.ssh_hosts.push(host.clone()));
    }
    for id in [2, 3] {
        drover::commands::set_maintenance(&*store, &ctx(), ServerId(id), true)
            .await
            .unwrap();
    }
    let (plan_id, customer_id) = fleet.plan_and_customer().await;
    give_plan(&*store, plan_id, &["dir", "web", "dns", "mysql"]).await;
    let engine = fleet.engine(crate::quick_retries(), FleetPolicy::default());
    let mut workers = drover::engine::start(Arc::new(engine), 4).unwrap();
    let new = NewService {
        customer_id,
        plan_id,
        domain: DomainName::parse("continut.ro").unwrap(),
    };
    let service = crate::create_service(&*store, &ctx(), new).await.unwrap();
    crate::transition_service(&*store, &ctx(), service.id, Transition::Activate, None)
        .await
        .unwrap();
    let account = service.account_id;
    drover::commands::create_database(&*store, &ctx(), account, "shop", "mysql")
        .await
        .unwrap();
    let database = |sim: &drover_testkit::virtualmin::VirtualminSim| {
        sim.with_state(|s| {
            s.domains
                .get("continut.ro")
                .and_then(|d| d.databases.first().cloned())
        })
    };
    crate::until(
        "continut.ro and its database are on vm1",
        Duration::from_secs(10),
        || async { database(&sims[0]).is_some() },
    )
    .await;
    let shop = database(&sims[0]).unwrap();
    sims[0].put_row("continut.ro", &shop, "order 7").unwrap();
    drover::commands::set_maintenance(&*store, &ctx(), ServerId(2), false)
        .await
        .unwrap();
    let vault_destination = vault.make_default(&*store, fleet.dir.path()).await;
    sims[0]
        .put_file(
            "continut.ro",
            "public_html/index.html",
            "the customer's page",
        )
        .unwrap();
    let apex = async || {
        let zone = store.account_zone(account).await.unwrap().unwrap();
        zone.rrsets
            .iter()
            .find(|r| r.rtype == RecordType::A && r.name.as_str() == "continut.ro")
            .unwrap()
            .records
            .clone()
    };

    // The restore on vm2 fails: the move stops, the account serves from vm1 as before.
    let (_, job) = drover::commands::start_migration(
        &*store,
        &ctx(),
        account,
        ServerId(2),
        Duration::ZERO,
        drover::commands::WithoutContent::Refused,
    )
    .await
    .unwrap();
    let ended = crate::finished(&*store, job).await;
    assert_eq!(ended.state, "discarded", "{ended:?}");
    let why = format!("{ended:?}");
    assert!(
        why.contains("continut.ro's content could not be carried from vm1 to vm2: its restore on vm2 failed: Failed to read backup file : ssh: connect to host 127.0.0.1"),
        "{why}"
    );
    assert!(sims[1].domain_names().is_empty(), "nothing is left on vm2");
    assert_eq!(apex().await, ["192.0.2.51"]);
    assert_eq!(
        sims[0]
            .file("continut.ro", "public_html/index.html")
            .as_deref(),
        Some("the customer's page")
    );
    // The backup it took is kept as the account's.
    assert!(store.last_good_backup(account).await.unwrap().is_some());

    // vm2 reaches the host, but has no database feature: the restore leaves the database
    // out, the check finds it missing, and the account stays.
    sims[1].with_state(|s| {
        s.ssh_hosts.push(host.clone());
        s.unsupported_features.insert("mysql".into());
    });
    drover::commands::retry_job(&*store, &ctx(), job)
        .await
        .unwrap();
    let ended = crate::finished(&*store, job).await;
    assert_eq!(ended.state, "discarded", "{ended:?}");
    assert!(
        format!("{ended:?}").contains(&format!(
            "continut.ro's content could not be carried from vm1 to vm2: after its restore vm2 \
             lacks the feature mysql, database {shop}"
        )),
        "{ended:?}"
    );
    assert!(sims[1].domain_names().is_empty(), "nothing is left on vm2");
    assert_eq!(apex().await, ["192.0.2.51"]);

    // vm2 has databases now, and both servers measure disk use: a restore that comes back
    // without the site's files (and says it succeeded) is found by its size, and the account
    // stays.
    for sim in &sims {
        sim.with_state(|s| {
            s.home_quotas = true;
            s.unsupported_features.clear();
        });
    }
    sims[0].with_state(|s| s.domains.get_mut("continut.ro").unwrap().usage.disk_bytes = 50 << 20);
    sims[1].with_state(|s| s.restores_come_back_short = true);
    drover::commands::retry_job(&*store, &ctx(), job)
        .await
        .unwrap();
    let ended = crate::finished(&*store, job).await;
    assert_eq!(ended.state, "discarded", "{ended:?}");
    assert!(
        format!("{ended:?}").contains(
            "continut.ro's content could not be carried from vm1 to vm2: after its restore vm2 \
             measures disk use of 0 bytes where the source has 52428800"
        ),
        "{ended:?}"
    );
    assert!(sims[1].domain_names().is_empty(), "nothing is left on vm2");
    assert_eq!(apex().await, ["192.0.2.51"]);

    // The default destination is now each server's own disk: the move was not allowed to go
    // without content, so it stops rather than make the account empty.
    let local = serde_json::json!({"name": "local", "location": "/var/backups", "default": true});
    drover::commands::create_backup_destination(
        &*store,
        &ctx(),
        &crate::no_secrets(),
        serde_json::from_value(local).unwrap(),
    )
    .await
    .unwrap();
    drover::commands::retry_job(&*store, &ctx(), job)
        .await
        .unwrap();
    let ended = crate::finished(&*store, job).await;
    assert_eq!(ended.state, "discarded", "{ended:?}");
    assert!(
        format!("{ended:?}").contains(
            "the default backup destination local is on each server's own disk, not an SSH host \
             both servers reach (move it without its content, --without-content, to make it \
             empty there); it stays on vm1"
        ),
        "{ended:?}"
    );
    assert!(sims[1].domain_names().is_empty(), "nothing is left on vm2");
    let default_again = drover_core::BackupDestinationPatch {
        default: Some(true),
        ..Default::default()
    };
    let sources = drover_core::SecretSources {
        dir: fleet.dir.path().to_owned(),
        env_prefix: drover_core::SecretSources::DEFAULT_ENV_PREFIX.into(),
    };
    drover::commands::update_backup_destination(
        &*store,
        &ctx(),
        &sources,
        vault_destination.id,
        default_again,
    )
    .await
    .unwrap();

    // Restores whole again: tried again, the account moves with its content.
    sims[1].with_state(|s| s.restores_come_back_short = false);
    drover::commands::retry_job(&*store, &ctx(), job)
        .await
        .unwrap();
    crate::until(
        "continut.ro moved to vm2",
        Duration::from_secs(20),
        || async {
            store
                .migration(account)
                .await
                .unwrap()
                .is_some_and(|m| m.state == drover_core::MoveState::Done)
        },
    )
    .await;
    assert!(
        sims[0].domain_names().is_empty(),
        "deleted from vm1 after the grace"
    );
    assert_eq!(
        sims[1]
            .file("continut.ro", "public_html/index.html")
            .as_deref(),
        Some("the customer's page")
    );
    assert_eq!(apex().await, ["192.0.2.52"]);
    assert_eq!(sims[1].rows("continut.ro", &shop), ["order 7"]);
    let carried = content_events(&*store, account, "account.content_carried").await;
    assert_eq!(carried.len(), 1, "{carried:?}");
    assert_eq!(carried[0]["carried"]["content"], "carried");
    assert_eq!(host.archives().len(), 4, "one backup per try");

    // An account never backed up, on vm2 too.
    drover::commands::set_maintenance(&*store, &ctx(), ServerId(1), true)
        .await
        .unwrap();
    let new = NewService {
        customer_id,
        plan_id,
        domain: DomainName::parse("gol.ro").unwrap(),
    };
    let bare = crate::create_service(&*store, &ctx(), new).await.unwrap();
    crate::transition_service(&*store, &ctx(), bare.id, Transition::Activate, None)
        .await
        .unwrap();
    crate::until("gol.ro is on vm2", Duration::from_secs(10), || async {
        sims[1].domain_names().contains(&"gol.ro".to_owned())
    })
    .await;
    sims[1]
        .put_file("gol.ro", "public_html/index.html", "never backed up")
        .unwrap();

    // vm2 is lost: the failover to vm3 restores the last good backup there; the account
    // without one comes back empty, and each says so.
    sims[1]
        .put_file(
            "continut.ro",
            "public_html/index.html",
            "newer, lost with vm2",
        )
        .unwrap();
    drover::commands::set_maintenance(&*store, &ctx(), ServerId(3), false)
        .await
        .unwrap();
    sims[1].set_down(true);
    let lost = store.server(ServerId(2)).await.unwrap();
    let plan = drover::commands::rebuild(&*store, &ctx(), &lost, ServerId(3), 50.0, false)
        .await
        .unwrap();
    assert!(plan.started, "{plan:?}");
    assert_eq!(plan.without_backup, ["gol.ro"]);
    let step = plan.steps.iter().find(|s| s.account_id == account).unwrap();
    assert!(
        step.restore_from.is_some() && step.backup_age_seconds.is_some(),
        "{step:?}"
    );
    crate::until(
        "both accounts are on vm3",
        Duration::from_secs(20),
        || async { store.failovers_remaining(lost.id).await.unwrap() == 0 },
    )
    .await;
    assert!(sims[2].domain_names().contains(&"gol.ro".to_owned()));
    assert_eq!(sims[2].file("gol.ro", "public_html/index.html"), None);
    let empty = content_events(&*store, bare.account_id, "account.content_not_carried").await;
    assert_eq!(empty.len(), 1, "{empty:?}");
    let why = empty[0]["carried"]["why"].as_str().unwrap();
    assert_eq!(
        why,
        "it has no good backup on an SSH host: the account is made empty on its new server"
    );
    assert_eq!(
        sims[2]
            .file("continut.ro", "public_html/index.html")
            .as_deref(),
        Some("the customer's page"),
        "as it was at the last good backup"
    );
    assert_eq!(apex().await, ["192.0.2.53"]);
    let restored = content_events(&*store, account, "account.content_carried").await;
    let last = restored
        .iter()
        .find(|e| e["carried"]["content"] == "restored");
    assert!(
        last.is_some_and(|e| e["carried"]["age_seconds"].as_i64().is_some()),
        "{restored:?}"
    );
    workers.stop().await.unwrap();
}

/// The details of the account's audit events of `action`, oldest first.
async fn content_events(
    store: &dyn drover_store::Store,
    account: drover_core::AccountId,
    action: &str,
) -> Vec<serde_json::Value> {
    let filter = drover_store::AuditFilter {
        subject: Some(format!("account:{account}")),
        page: drover_store::Page::new(None, Some(drover_store::Page::MAX_LIMIT)),
    };
    let mut events: Vec<_> = store
        .audit_events(filter)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == action)
        .collect();
    events.sort_by_key(|e| e.id);
    events
        .iter()
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect()
}

/// A drain of a server with 20 accounts, each with a file, a mailbox with a letter and a
/// database with a row: every account's content is on its new server, and its DNS was
/// switched only after its restore was checked there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_carries_every_accounts_content_before_its_dns_moves() {
    let vault = crate::Vault::start("drain", "vault-Passw0rd-2").await;
    let fleet = crate::TestFleet::new().await;
    let store = Arc::clone(&fleet.store);
    let mut sims = Vec::new();
    for i in 1..=3 {
        let (sim, _) = fleet
            .add_server(
                &format!("vm{i}"),
                serde_json::json!({
                    "capacity": 30,
                    "ipv4": format!("192.0.2.6{i}"),
                    "rate_qps": 100,
                }),
            )
            .await;
        sim.with_state(|s| s.ssh_hosts.push(vault.host.clone()));
        sims.push(sim);
    }
    for id in [2, 3] {
        drover::commands::set_maintenance(&*store, &ctx(), ServerId(id), true)
            .await
            .unwrap();
    }
    let (plan_id, customer_id) = fleet.plan_and_customer().await;
    give_plan(&*store, plan_id, &["dir", "web", "dns", "mail", "mysql"]).await;
    let engine = fleet.engine(crate::quick_retries(), FleetPolicy::default());
    let mut workers = drover::engine::start(Arc::new(engine), 4).unwrap();
    let sealer = drover::engine::Sealer::from_hex(&"42".repeat(32)).unwrap();
    let mut accounts = Vec::new();
    for i in 0..20 {
        let domain = format!("site{i}.ro");
        let new = NewService {
            customer_id,
            plan_id,
            domain: DomainName::parse(&domain).unwrap(),
        };
        let service = crate::create_service(&*store, &ctx(), new).await.unwrap();
        crate::transition_service(&*store, &ctx(), service.id, Transition::Activate, None)
            .await
            .unwrap();
        let password = secrecy::SecretString::from("Mail-passw0rd".to_owned());
        drover::commands::create_mailbox(
            &*store,
            &ctx(),
            &sealer,
            service.account_id,
            "ana",
            "Ana",
            password,
            None,
        )
        .await
        .unwrap();
        drover::commands::create_database(&*store, &ctx(), service.account_id, "shop", "mysql")
            .await
            .unwrap();
        accounts.push((service.account_id, domain));
    }
    let database = |sim: &drover_testkit::virtualmin::VirtualminSim, domain: &str| {
        sim.with_state(|s| {
            s.domains
                .get(domain)
                .and_then(|d| d.databases.first().cloned())
        })
    };
    crate::until(
        "twenty accounts with a mailbox and a database on vm1",
        Duration::from_secs(60),
        || async {
            accounts.iter().all(|(_, domain)| {
                sims[0].with_state(|s| {
                    s.domains
                        .get(domain.as_str())
                        .is_some_and(|d| d.mailboxes.contains_key("ana") && !d.databases.is_empty())
                })
            })
        },
    )
    .await;
    // The customers' content, through the simulators' own content endpoint.
    let content: Vec<crate::SimContent> = sims.iter().map(crate::SimContent::of).collect();
    for (_, domain) in &accounts {
        let page = format!("the page of {domain}");
        content[0]
            .put_file(domain, "public_html/index.html", &page)
            .await;
        let letter = format!("a letter to {domain}");
        content[0].add(domain, "mail", "ana", &letter).await;
        let db = database(&sims[0], domain).unwrap();
        let order = format!("an order of {domain}");
        content[0].add(domain, "rows", &db, &order).await;
    }
    // What the endpoint says of what a server lacks.
    assert_eq!(
        content[1]
            .file(&accounts[0].1, "public_html/index.html")
            .await,
        None
    );
    vault.make_default(&*store, fleet.dir.path()).await;
    for id in [2, 3] {
        drover::commands::set_maintenance(&*store, &ctx(), ServerId(id), false)
            .await
            .unwrap();
    }

    let plan = drover::commands::drain(
        &*store,
        &ctx(),
        &PlacementPolicy::default(),
        ServerId(1),
        Duration::ZERO,
        false,
        drover::commands::WithoutContent::Refused,
    )
    .await
    .unwrap();
    assert_eq!(plan.moves.len(), 20);
    assert!(
        plan.content
            .starts_with("carried through the backup destination vault"),
        "{}",
        plan.content
    );
    crate::until("every move is done", Duration::from_secs(120), || async {
        let mut done = true;
        for (account, _) in &accounts {
            done &= store
                .migration(*account)
                .await
                .unwrap()
                .is_some_and(|m| m.state == drover_core::MoveState::Done);
        }
        done
    })
    .await;
    assert!(sims[0].domain_names().is_empty(), "vm1 is empty");
    for (account, domain) in &accounts {
        let server = store.account(*account).await.unwrap().server_id.unwrap();
        let sim = &sims[server.get() as usize - 1];
        let there = &content[server.get() as usize - 1];
        assert_ne!(server, ServerId(1));
        assert_eq!(
            there.file(domain, "public_html/index.html").await,
            Some(format!("the page of {domain}"))
        );
        assert_eq!(
            there.items(domain, "mail", "ana").await,
            [format!("a letter to {domain}")]
        );
        let db = database(sim, domain).unwrap();
        assert_eq!(
            there.items(domain, "rows", &db).await,
            [format!("an order of {domain}")]
        );
        let zone = store.account_zone(*account).await.unwrap().unwrap();
        let apex = zone
            .rrsets
            .iter()
            .find(|r| r.rtype == RecordType::A && r.name.as_str() == domain.as_str())
            .unwrap();
        assert_eq!(apex.records, [format!("192.0.2.6{}", server.get())]);
        // The content was checked on the target before the move switched.
        let filter = drover_store::AuditFilter {
            subject: Some(format!("account:{account}")),
            page: drover_store::Page::new(None, Some(drover_store::Page::MAX_LIMIT)),
        };
        let events = store.audit_events(filter).await.unwrap();
        let carried = events
            .iter()
            .find(|e| e.action == "account.content_carried")
            .unwrap_or_else(|| panic!("{domain}: {events:?}"));
        let switched = events
            .iter()
            .find(|e| e.action == "account.migrate.step" && e.details.contains("\"switched\""))
            .unwrap_or_else(|| panic!("{domain}: {events:?}"));
        assert!(carried.id < switched.id, "{domain}: {events:?}");
    }
    workers.stop().await.unwrap();
}

/// A restore onto another server: the account moves there with a backup's content (the
/// backup on an SSH host), its DNS follows once the restore is checked, and its old copy goes
/// after the grace; a backup on the old server's own disk cannot be restored elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_is_restored_onto_another_server_from_its_backup() {
    let vault = crate::Vault::start("onto", "vault-Passw0rd-3").await;
    let fleet = crate::TestFleet::new().await;
    let store = Arc::clone(&fleet.store);
    let mut sims = Vec::new();
    for i in 1..=2 {
        let (sim, _) = fleet
            .add_server(
                &format!("vm{i}"),
                serde_json::json!({"capacity": 10, "ipv4": format!("192.0.2.7{i}")}),
            )
            .await;
        sim.with_state(|s| s.ssh_hosts.push(vault.host.clone()));
        sims.push(sim);
    }
    drover::commands::set_maintenance(&*store, &ctx(), ServerId(2), true)
        .await
        .unwrap();
    let (plan_id, customer_id) = fleet.plan_and_customer().await;
    let engine = fleet.engine(crate::quick_retries(), FleetPolicy::default());
    let mut workers = drover::engine::start(Arc::new(engine), 4).unwrap();
    let new = NewService {
        customer_id,
        plan_id,
        domain: DomainName::parse("inapoi.ro").unwrap(),
    };
    let service = crate::create_service(&*store, &ctx(), new).await.unwrap();
    crate::transition_service(&*store, &ctx(), service.id, Transition::Activate, None)
        .await
        .unwrap();
    let account = service.account_id;
    crate::until("inapoi.ro is on vm1", Duration::from_secs(10), || async {
        sims[0].domain_names() == ["inapoi.ro"]
    })
    .await;
    // A sub-server: its files are not in the domain's own backup, only in the account's.
    drover::commands::create_subserver(&*store, &ctx(), account, "shop")
        .await
        .unwrap();
    crate::until(
        "shop.inapoi.ro is on vm1",
        Duration::from_secs(10),
        || async {
            sims[0]
                .domain_names()
                .contains(&"shop.inapoi.ro".to_owned())
        },
    )
    .await;
    crate::settled(&*store, account).await;
    sims[0]
        .put_file("shop.inapoi.ro", "public_html/index.html", "the shop")
        .unwrap();
    drover::commands::set_maintenance(&*store, &ctx(), ServerId(2), false)
        .await
        .unwrap();
    let destination = vault.make_default(&*store, fleet.dir.path()).await;
    let backed_up = async |destination| {
        let job = drover::commands::backup_account(&*store, &ctx(), account, Some(destination))
            .await
            .unwrap();
        assert_eq!(crate::finished(&*store, job).await.state, "completed");
        store.last_good_backup(account).await.unwrap().unwrap()
    };
    sims[0]
        .put_file("inapoi.ro", "public_html/index.html", "as backed up")
        .unwrap();
    let good = backed_up(destination.id).await;
    sims[0]
        .put_file("inapoi.ro", "public_html/index.html", "broken since")
        .unwrap();

    // A backup on vm1's own disk cannot be restored onto vm2.
    let local = drover::commands::create_backup_destination(
        &*store,
        &ctx(),
        &crate::no_secrets(),
        serde_json::from_value(serde_json::json!({"name": "local", "location": "/var/backups"}))
            .unwrap(),
    )
    .await
    .unwrap();
    let on_disk = backed_up(local.id).await;
    let err = drover::commands::plan_restore(&*store, account, Some(on_disk.id), Some(ServerId(2)))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the archive is on the disk of the server that wrote it"),
        "{err}"
    );

    let plan = drover::commands::plan_restore(&*store, account, Some(good.id), Some(ServerId(2)))
        .await
        .unwrap();
    assert_eq!(plan.server, "vm2");
    assert!(
        plan.replaces
            .starts_with("nothing on vm2: inapoi.ro is made there"),
        "{plan:?}"
    );
    let onto = drover::commands::RestoreOnto::Server {
        id: ServerId(2),
        grace: Duration::ZERO,
    };
    let err =
        drover::commands::restore_account(&*store, &ctx(), account, Some(good.id), onto, "x.ro")
            .await
            .unwrap_err();
    assert!(
        matches!(
            err,
            drover::commands::Error::Rule(drover_core::Error::ConfirmationMismatch { .. })
        ),
        "{err}"
    );
    assert!(
        store.migration(account).await.unwrap().is_none(),
        "nothing started"
    );
    let (_, job) = drover::commands::restore_account(
        &*store,
        &ctx(),
        account,
        Some(good.id),
        onto,
        "inapoi.ro",
    )
    .await
    .unwrap();
    crate::until(
        "inapoi.ro is on vm2 alone",
        Duration::from_secs(20),
        || async {
            store
                .migration(account)
                .await
                .unwrap()
                .is_some_and(|m| m.state == drover_core::MoveState::Done)
        },
    )
    .await;
    let migration = store.migration(account).await.unwrap().unwrap();
    assert_eq!(migration.restore_from, Some(good.id));
    assert!(sims[0].domain_names().is_empty(), "{job}");
    assert_eq!(
        sims[1]
            .file("inapoi.ro", "public_html/index.html")
            .as_deref(),
        Some("as backed up")
    );
    assert_eq!(
        sims[1]
            .file("shop.inapoi.ro", "public_html/index.html")
            .as_deref(),
        Some("the shop")
    );
    let zone = store.account_zone(account).await.unwrap().unwrap();
    let apex = zone
        .rrsets
        .iter()
        .find(|r| r.rtype == RecordType::A && r.name.as_str() == "inapoi.ro")
        .unwrap();
    assert_eq!(apex.records, ["192.0.2.72"]);
    let events = content_events(&*store, account, "account.content_carried").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["carried"]["content"], "restored");
    assert_eq!(
        events[0]["carried"]["backup_id"],
        serde_json::json!(good.id)
    );
    workers.stop().await.unwrap();
}
