//! Drift made by hand on a simulator (an extra domain, a deleted one, a disabled one): found,
//! limited, repaired by policy; an orphan quarantined, then deleted only when an operator asks.

use std::sync::Arc;
use std::time::Duration;

use drover::engine::drift::{delete_orphan, repair_server, scan_server};
use drover::engine::{Engine, FleetPolicy};
use drover_core::{DomainName, DriftAction, DriftKind, DriftPolicy, Transition};
use drover_store::{NewService, RequestContext, Store};
use drover_testkit::virtualmin::VirtualminSim;

fn ctx() -> RequestContext {
    RequestContext {
        actor: "test".into(),
        correlation_id: "drift-1".into(),
    }
}

struct Setup {
    store: Arc<dyn Store>,
    sim: VirtualminSim,
    engine: Arc<Engine>,
    workers: riverqueue::RunHandle,
    server: drover_store::Server,
    _fleet: crate::TestFleet,
}

async fn setup(accounts: usize) -> Setup {
    let fleet = crate::TestFleet::new().await;
    let store = Arc::clone(&fleet.store);
    let (sim, server) = fleet
        .add_server("vm1", serde_json::json!({"capacity": 100}))
        .await;
    let (plan_id, customer_id) = fleet.plan_and_customer().await;
    let engine = Arc::new(fleet.engine(
        drover_virtualmin::VirtualminSettings {
            rate_qps: 50.0,
            ..crate::quick_retries()
        },
        FleetPolicy {
            drift: DriftPolicy {
                orphan: DriftAction::Quarantine,
                ..DriftPolicy::default()
            },
            ..FleetPolicy::default()
        },
    ));
    let workers = drover::engine::start(Arc::clone(&engine), 4).unwrap();
    for i in 0..accounts {
        let new = NewService {
            customer_id,
            plan_id,
            domain: DomainName::parse(&format!("site{i}.ro")).unwrap(),
        };
        let service = crate::create_service(&*store, &ctx(), new).await.unwrap();
        crate::transition_service(&*store, &ctx(), service.id, Transition::Activate, None)
            .await
            .unwrap();
    }
    let setup = Setup {
        store,
        sim,
        engine,
        workers,
        server,
        _fleet: fleet,
    };
    setup
        .until("every account is on the server", |s| {
            s.sim.domain_names().len() == accounts
        })
        .await;
    setup
        .until("every job is done", |s| {
            let _ = s;
            true
        })
        .await;
    setup
}

impl Setup {
    async fn until(&self, what: &str, check: impl Fn(&Self) -> bool) {
        for _ in 0..300 {
            if check(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting until {what}");
    }

    fn disabled(&self, domain: &str) -> bool {
        self.sim
            .with_state(|s| s.domains.get(domain).is_some_and(|d| d.disabled.is_some()))
    }

    /// Drift made by hand, as someone with root on the server would.
    fn make_drift(&self, delete: &[&str], disable: &str, extra: &str) {
        self.sim.with_state(|s| {
            for domain in delete {
                s.domains.remove(*domain);
            }
            s.domains.get_mut(disable).unwrap().disabled = Some("by hand".into());
            let mut orphan = s.domains.values().next().unwrap().clone();
            orphan.name = extra.into();
            orphan.unix_user = "stray".into();
            orphan.id += 1000;
            orphan.disabled = None;
            s.domains.insert(extra.into(), orphan);
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_made_by_hand_is_found_limited_and_repaired() {
    let mut s = setup(20).await;
    s.make_drift(&["site3.ro"], "site5.ro", "stray.ro");
    let findings = scan_server(&s.engine, &ctx(), &s.server).await.unwrap();
    let mut kinds: Vec<(DriftKind, String)> = findings
        .iter()
        .map(|r| (r.finding.kind, r.finding.domain.clone()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            (DriftKind::Missing, "site3.ro".to_owned()),
            (DriftKind::Orphan, "stray.ro".to_owned()),
            (DriftKind::StateMismatch, "site5.ro".to_owned()),
        ]
    );
    // 20 accounts: at most 2 domains per pass (10 %); this pass touches 3 (the orphan too).
    let dry = repair_server(&s.engine, &ctx(), &s.server, false, true)
        .await
        .unwrap();
    assert_eq!((dry.plan.touches, dry.plan.limit), (3, 2));
    assert!(dry.plan.held.is_some());
    let held = repair_server(&s.engine, &ctx(), &s.server, false, false)
        .await
        .unwrap();
    assert!(
        held.jobs.is_empty() && held.quarantined.is_empty(),
        "a held pass changes nothing"
    );
    assert!(!s.sim.domain_names().contains(&"site3.ro".to_owned()));
    // Forced: converge jobs recreate and re-enable; the orphan is disabled, not deleted.
    let forced = repair_server(&s.engine, &ctx(), &s.server, true, false)
        .await
        .unwrap();
    assert_eq!(
        (forced.jobs.len(), forced.quarantined.as_slice()),
        (2, ["stray.ro".to_owned()].as_slice())
    );
    s.until("site3.ro is back and site5.ro enabled", |s| {
        s.sim.domain_names().contains(&"site3.ro".to_owned()) && !s.disabled("site5.ro")
    })
    .await;
    assert!(s.disabled("stray.ro"));
    let after = scan_server(&s.engine, &ctx(), &s.server).await.unwrap();
    assert_eq!(
        after.len(),
        1,
        "only the quarantined orphan is left: {after:?}"
    );
    assert_eq!(
        (after[0].finding.kind, after[0].finding.found.as_deref()),
        (DriftKind::Orphan, Some("disabled"))
    );
    // The orphan goes only when an operator asks (the door checks the repeated name), and
    // only a domain the last scan found as an orphan.
    let name = |domain: &str| drover_core::DomainName::parse(domain).unwrap();
    let ours = delete_orphan(&s.engine, &ctx(), &s.server, &name("site1.ro"))
        .await
        .unwrap_err();
    assert!(ours.to_string().contains("not an orphan"), "{ours}");
    delete_orphan(&s.engine, &ctx(), &s.server, &name("stray.ro"))
        .await
        .unwrap();
    assert!(!s.sim.domain_names().contains(&"stray.ro".to_owned()));
    // Asked again before the next scan: gone already is done.
    delete_orphan(&s.engine, &ctx(), &s.server, &name("stray.ro"))
        .await
        .unwrap();
    assert!(
        scan_server(&s.engine, &ctx(), &s.server)
            .await
            .unwrap()
            .is_empty()
    );
    // A failed listing is a failed observation: no findings replace the last scan's.
    s.sim.set_down(true);
    let err = scan_server(&s.engine, &ctx(), &s.server).await.unwrap_err();
    assert!(err.to_string().contains("no drift was derived"), "{err}");
    s.sim.set_down(false);
    // The scan job (what the scheduler enqueues) repairs by policy on its own.
    s.sim
        .with_state(|st| st.domains.get_mut("site7.ro").unwrap().disabled = Some("by hand".into()));
    let job = drover::commands::request(
        &*s.store,
        &ctx(),
        drover::commands::Requested::DriftScan {
            server: Some(s.server.id),
            repair: drover_store::jobs::DriftRepair::ByPolicy,
        },
    )
    .await
    .unwrap();
    s.until("site7.ro is enabled again", |s| !s.disabled("site7.ro"))
        .await;
    let summary = s.store.job(job).await.unwrap();
    assert_eq!(summary.kind, "scan_drift");
    s.workers.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_changed_by_hand_are_found_and_repaired_but_strangers_kept() {
    let s = setup(0).await;
    let store = &*s.store;
    // The fleet's plan, with mail and MySQL.
    let mail = serde_json::json!({"features": ["dir", "web", "dns", "mail", "mysql"]});
    let plan = drover_core::PlanId(1);
    drover::commands::update_plan(
        store,
        &ctx(),
        plan,
        serde_json::from_value(mail).unwrap(),
        false,
    )
    .await
    .unwrap();
    let customer = store.customers(Default::default()).await.unwrap()[0].id;
    let new = NewService {
        customer_id: customer,
        plan_id: plan,
        domain: DomainName::parse("posta.ro").unwrap(),
    };
    let service = crate::create_service(store, &ctx(), new).await.unwrap();
    crate::transition_service(store, &ctx(), service.id, Transition::Activate, None)
        .await
        .unwrap();
    let account = service.account_id;
    let sealer = drover::engine::Sealer::from_hex(&"42".repeat(32)).unwrap();
    for (name, real) in [("ana", "Ana"), ("ion", "Ion")] {
        let password = secrecy::SecretString::from("Mail-passw0rd".to_owned());
        drover::commands::create_mailbox(
            store,
            &ctx(),
            &sealer,
            account,
            name,
            real,
            password,
            None,
        )
        .await
        .unwrap();
    }
    for name in ["shop", "blog"] {
        drover::commands::create_database(store, &ctx(), account, name, "mysql")
            .await
            .unwrap();
    }
    drover::commands::create_alias(store, &ctx(), account, "posta.com")
        .await
        .unwrap();
    drover::commands::create_subserver(store, &ctx(), account, "shop")
        .await
        .unwrap();
    let held_by_posta = |s: &Setup, alias: &str| {
        s.sim.with_state(|st| {
            st.domains
                .get(alias)
                .is_some_and(|d| d.parent.as_deref() == Some("posta.ro"))
        })
    };
    let mailboxes = |s: &Setup| {
        s.sim
            .with_state(|st| st.domains.get("posta.ro").map(|d| d.mailboxes.clone()))
            .unwrap_or_default()
    };
    let databases = |s: &Setup| {
        s.sim
            .with_state(|st| st.domains.get("posta.ro").map(|d| d.databases.clone()))
            .unwrap_or_default()
    };
    s.until(
        "both mailboxes, both databases and the alias are on the server",
        |s| {
            mailboxes(s).len() == 2
                && databases(s).len() == 3
                && held_by_posta(s, "posta.com")
                && held_by_posta(s, "shop.posta.ro")
        },
    )
    .await;
    // The account's last converge may still be looking again: a change by hand made before it
    // ends would be undone by it, not found by the scan.
    crate::settled(store, account).await;
    assert!(
        scan_server(&s.engine, &ctx(), &s.server)
            .await
            .unwrap()
            .is_empty(),
        "no drift once they are there"
    );
    // By hand: one deleted, one renamed, one added that drover does not know.
    s.sim.with_state(|st| {
        let domain = st.domains.get_mut("posta.ro").unwrap();
        domain.mailboxes.remove("ana");
        domain.mailboxes.insert("ion".into(), "Somebody".into());
        domain.mailboxes.insert("bob".into(), "Bob".into());
        domain.databases.retain(|d| d != "posta_blog");
        domain.databases.push("posta_tmp".into());
    });
    let by_hand = s.engine.fleet.client(&s.server).unwrap();
    by_hand.delete_domain("posta.com").await.unwrap();
    by_hand
        .create_alias("posta.net", "posta.ro", "made by hand")
        .await
        .unwrap();
    by_hand.delete_domain("shop.posta.ro").await.unwrap();
    let web = ["dir".to_owned(), "web".to_owned()];
    by_hand
        .create_subserver("blog.posta.ro", "posta.ro", &web, "made by hand")
        .await
        .unwrap();
    let findings = scan_server(&s.engine, &ctx(), &s.server).await.unwrap();
    let mut seen: Vec<(DriftKind, Option<String>, Option<String>)> = findings
        .iter()
        .map(|r| {
            (
                r.finding.kind,
                r.finding.resource.clone(),
                r.finding.found.clone(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (DriftKind::MailboxMissing, Some("ana".into()), None),
            (
                DriftKind::MailboxOrphan,
                Some("bob".into()),
                Some("Bob".into())
            ),
            (
                DriftKind::MailboxMismatch,
                Some("ion".into()),
                Some("Somebody".into())
            ),
            (DriftKind::DatabaseMissing, Some("posta_blog".into()), None),
            (
                DriftKind::DatabaseOrphan,
                Some("posta_tmp".into()),
                Some("mysql".into())
            ),
            (DriftKind::AliasMissing, Some("posta.com".into()), None),
            (DriftKind::AliasOrphan, Some("posta.net".into()), None),
            (
                DriftKind::SubserverMissing,
                Some("shop.posta.ro".into()),
                None
            ),
            (
                DriftKind::SubserverOrphan,
                Some("blog.posta.ro".into()),
                None
            ),
        ]
    );
    let repaired = repair_server(&s.engine, &ctx(), &s.server, false, false)
        .await
        .unwrap();
    assert_eq!(
        repaired.jobs.len(),
        1,
        "one converge for the account: {repaired:?}"
    );
    s.until(
        "ana is back, ion has its name again, posta_blog is back",
        |s| {
            let m = mailboxes(s);
            m.get("ana").map(String::as_str) == Some("Ana")
                && m.get("ion").map(String::as_str) == Some("Ion")
                && databases(s).contains(&"posta_blog".to_owned())
                && held_by_posta(s, "posta.com")
                && held_by_posta(s, "shop.posta.ro")
        },
    )
    .await;
    assert!(
        held_by_posta(&s, "posta.net"),
        "an alias drover does not know may be an operator's: it is only logged"
    );
    assert!(
        databases(&s).contains(&"posta_tmp".to_owned()),
        "a database drover does not know may hold tables: it is only logged"
    );
    assert_eq!(
        mailboxes(&s).get("bob").map(String::as_str),
        Some("Bob"),
        "a mailbox drover does not know may hold mail: it is only logged"
    );
    let after = scan_server(&s.engine, &ctx(), &s.server).await.unwrap();
    let kinds: Vec<DriftKind> = after.iter().map(|r| r.finding.kind).collect();
    assert_eq!(
        kinds,
        [
            DriftKind::MailboxOrphan,
            DriftKind::DatabaseOrphan,
            DriftKind::AliasOrphan,
            DriftKind::SubserverOrphan
        ]
    );
}
