//! Usage pulled on the scheduler's interval from two servers (one with disk quotas and
//! bandwidth monitoring, one without, as captured): per account, sub-servers included, in two
//! listings per server whatever the number of accounts.

use std::sync::Arc;
use std::time::Duration;

use drover::engine::FleetPolicy;
use drover_core::{DomainName, Transition, Usage};
use drover_store::{NewService, UsageFilter};
use drover_testkit::virtualmin::{Kind, SimDomain, SimUsage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_pulled_on_schedule_and_summed_per_account() {
    let fleet = crate::TestFleet::new().await;
    let store = Arc::clone(&fleet.store);
    let (measured, vm1) = fleet
        .add_server("vm1", serde_json::json!({"capacity": 3}))
        .await;
    let (plain, vm2) = fleet
        .add_server("vm2", serde_json::json!({"capacity": 3}))
        .await;
    measured.with_state(|s| {
        s.home_quotas = true;
        s.bandwidth_monitoring = true;
    });
    let (plan_id, customer_id) = fleet.plan_and_customer().await;
    let engine = Arc::new(fleet.engine(
        crate::quick_retries(),
        FleetPolicy {
            usage_interval: Some(Duration::from_millis(300)),
            ..FleetPolicy::default()
        },
    ));
    let mut workers = drover::engine::start(Arc::clone(&engine), 4).unwrap();
    let mut services = Vec::new();
    for domain in ["ana.ro", "ion.ro", "eva.ro", "dan.ro"] {
        let new = NewService {
            customer_id,
            plan_id,
            domain: DomainName::parse(domain).unwrap(),
        };
        let service = crate::create_service(&*store, &crate::setup_ctx(), new)
            .await
            .unwrap();
        crate::transition_service(
            &*store,
            &crate::setup_ctx(),
            service.id,
            Transition::Activate,
            None,
        )
        .await
        .unwrap();
        services.push(service);
    }
    crate::until(
        "every account is on a server",
        Duration::from_secs(20),
        async || measured.domain_names().len() + plain.domain_names().len() == 4,
    )
    .await;

    // What the customers did on their servers since: files, mail, a shop with its database.
    let on_measured = measured.domain_names();
    let (first, second) = (on_measured[0].clone(), on_measured[1].clone());
    measured.with_state(|s| {
        let d = s.domains.get_mut(&first).unwrap();
        d.usage = SimUsage {
            disk_bytes: 3 << 30,
            bandwidth_bytes: 12 << 30,
            database_bytes: 1 << 20,
        };
        d.databases.push("main".into());
        // The plan has no mail: mailboxes count only where mail is on (the shop has it).
        d.mailboxes.insert("ftp-only".into(), String::new());
        let mut shop = SimDomain::top_level(&format!("shop.{first}"), &d.unix_user.clone());
        shop.kind = Kind::SubServer;
        shop.parent = Some(first.clone());
        shop.id = 2;
        shop.databases.push("shop".into());
        shop.usage.database_bytes = 2 << 20;
        for user in ["orders", "support"] {
            shop.mailboxes.insert(user.into(), String::new());
        }
        s.domains.insert(shop.name.clone(), shop);
        s.domains.get_mut(&second).unwrap().usage.disk_bytes = 1 << 30;
        // Someone else's domain: no account, so no figures for anyone.
        let mut stray = SimDomain::top_level("stray.ro", "stray");
        stray.usage.disk_bytes = 9 << 30;
        s.domains.insert("stray.ro".into(), stray);
    });
    let on_plain = plain.domain_names();
    plain.with_state(|s| {
        let d = s.domains.get_mut(&on_plain[0]).unwrap();
        d.usage.disk_bytes = 5 << 30;
        d.features.push("mail".into());
        d.mailboxes.insert("office".into(), String::new());
    });

    let figures = async |domain: &str| {
        store
            .usage(UsageFilter::default())
            .await
            .unwrap()
            .into_iter()
            .find(|u| u.domain.as_str() == domain)
    };
    crate::until(
        "the scheduler's sync sees the new figures",
        Duration::from_secs(20),
        // Every account counted: a sync may run between a domain's creation on its server and
        // drover recording it there, and so miss it until the next one.
        async || {
            store.usage(UsageFilter::default()).await.unwrap().len() >= 4
                && figures(&first)
                    .await
                    .is_some_and(|u| u.usage.mailboxes == 2)
                && figures(&second)
                    .await
                    .is_some_and(|u| u.usage.disk_bytes == Some(1 << 30))
                && figures(&on_plain[0])
                    .await
                    .is_some_and(|u| u.usage.mailboxes == 1)
        },
    )
    .await;
    let all = store.usage(UsageFilter::default()).await.unwrap();
    assert_eq!(
        all.len(),
        4,
        "one entry per account, none for the stray domain"
    );
    let first_usage = figures(&first).await.unwrap();
    assert_eq!(first_usage.server_id, vm1.id);
    assert_eq!(
        first_usage.usage,
        Usage {
            disk_bytes: Some(3 << 30),
            bandwidth_bytes: Some(12 << 30),
            mailboxes: 2,
            databases: 2,
            database_bytes: 3 << 20,
        },
        "the shop's databases and mailboxes count for its account"
    );
    assert_eq!(
        figures(&second).await.unwrap().usage.disk_bytes,
        Some(1 << 30)
    );
    // The server without quotas or bandwidth monitoring: unknown, never a made-up zero.
    let plain_usage = figures(&on_plain[0]).await.unwrap();
    assert_eq!(plain_usage.server_id, vm2.id);
    assert_eq!(
        (
            plain_usage.usage.disk_bytes,
            plain_usage.usage.bandwidth_bytes
        ),
        (None, None)
    );

    workers.stop().await.unwrap();

    // Each sync costs two listings per server, whatever the number of accounts.
    for (sim, server) in [(&measured, &vm1), (&plain, &vm2)] {
        let before = sim.stats().requests;
        let report = drover::engine::usage::sync_server(&engine, server)
            .await
            .unwrap();
        assert_eq!(report.accounts, 2);
        assert!(report.not_listed.is_empty(), "{report:?}");
        assert_eq!(sim.stats().requests - before, 2);
    }
}
