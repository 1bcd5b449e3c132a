//! DNS as an operator meets it: providers on two real PowerDNS servers and the Cloudflare fake,
//! plan and apply with the safety limits, the consistency check, the failover rewrite seen over
//! DNS right after it returns, and accounts getting (and losing) their zones through the jobs.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use drover::engine::dns::{DnsSettings, TerminatedZones};
use drover::engine::{Dns, Engine, Fleet, Sealer};
use drover_core::{
    AddressMove, ApplyResult, CustomerSpec, DomainName, OwnerName, PlacementPolicy, RecordType,
    RrSet, Transition, ZoneAction, ZoneTemplate, account_zone,
};
use drover_dns::query_served;
use drover_store::{DnsProviderRecord, DnsProviderSpec, NewService, RequestContext, Store};
use drover_testkit::{CloudflareFake, FakeConfig, PowerDns};

fn ctx() -> RequestContext {
    RequestContext {
        actor: "test".into(),
        correlation_id: "dns-1".into(),
    }
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A store with three providers: both PowerDNS servers and a Cloudflare fake.
struct World {
    store: Arc<dyn Store>,
    cf: CloudflareFake,
    providers: Vec<DnsProviderRecord>,
    _keep: tempfile::TempDir,
}

async fn world(serves_new_zones: bool) -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("drover.db").display());
    world_on(
        drover_store::open(&url).await.unwrap(),
        dir,
        serves_new_zones,
    )
    .await
}

async fn world_on(store: Arc<dyn Store>, dir: tempfile::TempDir, serves_new_zones: bool) -> World {
    let cf = CloudflareFake::start(FakeConfig::default()).await;
    let mut providers = crate::add_shared_powerdns(&*store, dir.path(), serves_new_zones).await;
    let token = dir.path().join("cf.token");
    std::fs::write(&token, "cf-test-token").unwrap();
    let spec = DnsProviderSpec {
        name: "cloudflare".into(),
        credentials: drover_core::CredentialRef::parse(&format!("file:{}", token.display()))
            .unwrap(),
        serves_new_zones,
        settings: drover_dns::ProviderSettings::Cloudflare {
            api_url: cf.api_url(),
            account_id: Some(cf.account_id()),
            batch_size: Some(200),
        },
    };
    providers.push(
        drover::commands::create_dns_provider(&*store, &ctx(), spec)
            .await
            .unwrap(),
    );
    World {
        store,
        cf,
        providers,
        _keep: dir,
    }
}

impl World {
    fn dns(&self) -> Dns {
        Dns::new(
            Arc::clone(&self.store),
            DnsSettings::default(),
            crate::secrets_in(self._keep.path()),
        )
    }

    fn provider_ids(&self) -> Vec<drover_core::DnsProviderId> {
        self.providers.iter().map(|p| p.id).collect()
    }

    async fn zone_with_template(&self, name: &DomainName, ip: &str) -> drover_store::Zone {
        let template = ZoneTemplate {
            nameservers: vec!["ns1.drover-test.net.".into()],
            ..Default::default()
        };
        let rrsets = account_zone(name, Some(ip.parse().unwrap()), None, &template).unwrap();
        drover::commands::create_zone(
            &*self.store,
            &ctx(),
            name,
            None,
            rrsets,
            &self.provider_ids(),
        )
        .await
        .unwrap()
    }
}

async fn served(pdns: &PowerDns, name: &str, rtype: RecordType) -> Vec<String> {
    query_served(pdns.dns_addr, name, rtype, Duration::from_secs(2))
        .await
        .unwrap()
        .records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_apply_respect_the_safety_limits_on_every_provider() {
    let w = world(false).await;
    let dns = w.dns();
    let name = DomainName::parse(&format!("{}.ro", unique("plan"))).unwrap();
    let zone = w.zone_with_template(&name, "192.0.2.10").await;
    // Nothing anywhere yet: a create on each provider.
    let plan = dns.plan(&zone).await.unwrap();
    assert_eq!(
        plan.providers.iter().map(|p| p.action).collect::<Vec<_>>(),
        [ZoneAction::Create; 3]
    );
    let text = plan.to_string();
    assert!(
        text.contains("on pdns-0 (create, 0 records served now)"),
        "{text}"
    );
    let outcomes = dns.apply(&ctx(), &zone, &plan, false).await.unwrap();
    assert!(
        outcomes.iter().all(|o| o.result == ApplyResult::Applied),
        "{outcomes:?}"
    );
    let zone = w.store.zone(zone.id).await.unwrap();
    assert!(zone.in_sync(), "{:?}", zone.providers);
    for pdns in PowerDns::shared() {
        assert_eq!(
            served(pdns, &format!("www.{name}"), RecordType::A).await,
            ["192.0.2.10"]
        );
    }
    assert_eq!(
        w.cf.records(name.as_str()).len(),
        6,
        "apex, www and mail A, MX, SPF, NS"
    );
    // Applied: the next plan is empty everywhere.
    let plan = dns.plan(&zone).await.unwrap();
    assert!(plan.providers.iter().all(|p| p.is_noop()), "{plan}");

    // Ten more names, then a plan deleting most of them is refused until forced.
    for i in 0..10 {
        let rrset = RrSet::new(
            OwnerName::parse(&format!("h{i}"), &name).unwrap(),
            RecordType::A,
            300,
            ["192.0.2.77"],
        )
        .unwrap();
        drover::commands::set_rrset(&*w.store, &ctx(), zone.id, rrset)
            .await
            .unwrap();
    }
    let zone = w.store.zone(zone.id).await.unwrap();
    let plan = dns.plan(&zone).await.unwrap();
    dns.apply(&ctx(), &zone, &plan, false).await.unwrap();
    for i in 0..8 {
        let owner = OwnerName::parse(&format!("h{i}"), &name).unwrap();
        drover::commands::delete_rrset(&*w.store, &ctx(), zone.id, &owner, RecordType::A)
            .await
            .unwrap();
    }
    let zone = w.store.zone(zone.id).await.unwrap();
    let plan = dns.plan(&zone).await.unwrap();
    for p in &plan.providers {
        assert_eq!((p.action, p.diff.deletes.len()), (ZoneAction::Update, 8));
        assert!(
            matches!(
                p.refusals.as_slice(),
                [drover_core::SafetyRefusal::TooManyChanges {
                    changed: 8,
                    total: 16,
                    max_percent: 25
                }]
            ),
            "{:?}",
            p.refusals
        );
    }
    let outcomes = dns.apply(&ctx(), &zone, &plan, false).await.unwrap();
    assert!(
        outcomes.iter().all(|o| o.result == ApplyResult::Refused),
        "{outcomes:?}"
    );
    assert_eq!(
        served(&PowerDns::shared()[0], &format!("h0.{name}"), RecordType::A).await,
        ["192.0.2.77"],
        "nothing changed"
    );
    let zone_now = w.store.zone(zone.id).await.unwrap();
    assert!(zone_now.providers.iter().all(|p| {
        p.last_error
            .as_deref()
            .is_some_and(|e| e.contains("safety limits"))
    }));
    // The zone's own limit lets this plan through.
    let zone = drover::commands::set_zone_safety(&*w.store, &ctx(), zone.id, Some(50))
        .await
        .unwrap();
    let plan = dns.plan(&zone).await.unwrap();
    assert!(plan.providers.iter().all(|p| p.refusals.is_empty()));
    // The apex NS is refused whatever the share, and forced through.
    let ns = RrSet::new(
        OwnerName::apex(&name),
        RecordType::Ns,
        3600,
        ["ns9.elsewhere.net"],
    )
    .unwrap();
    let zone = drover::commands::set_rrset(&*w.store, &ctx(), zone.id, ns)
        .await
        .unwrap();
    let plan = dns.plan(&zone).await.unwrap();
    assert!(plan.providers.iter().all(|p| {
        p.refusals
            .contains(&drover_core::SafetyRefusal::ApexNameservers)
    }));
    let outcomes = dns.apply(&ctx(), &zone, &plan, true).await.unwrap();
    assert!(
        outcomes.iter().all(|o| o.result == ApplyResult::Applied),
        "{outcomes:?}"
    );
    for pdns in PowerDns::shared() {
        assert!(
            served(pdns, &format!("h0.{name}"), RecordType::A)
                .await
                .is_empty()
        );
        assert_eq!(
            served(pdns, name.as_str(), RecordType::Ns).await,
            ["ns9.elsewhere.net."]
        );
    }
    assert!(w.store.zone(zone.id).await.unwrap().in_sync());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_finds_missing_extra_different_and_wrongly_served_zones() {
    let w = world(false).await;
    let dns = w.dns();
    let good = DomainName::parse(&format!("{}.ro", unique("good"))).unwrap();
    let zone = w.zone_with_template(&good, "192.0.2.10").await;
    dns.apply(&ctx(), &zone, &dns.plan(&zone).await.unwrap(), false)
        .await
        .unwrap();
    let checks = dns.check(None).await.unwrap();
    let mine = |checks: &[drover::engine::dns::ProviderCheck], i: usize| checks[i].clone();
    // Other tests share the PowerDNS servers: look only at this test's zones.
    for c in &checks {
        assert!(
            c.missing.is_empty() && c.different.is_empty() && c.served_mismatches.is_empty(),
            "{c:?}"
        );
    }
    assert!(checks[0].queries >= 2, "apex and www asked over DNS");
    // Missing: a zone never applied. Different: a record changed behind drover's back, on one
    // PowerDNS server and on Cloudflare. Extra: a zone only the provider has.
    let missing = DomainName::parse(&format!("{}.ro", unique("missing"))).unwrap();
    w.zone_with_template(&missing, "192.0.2.11").await;
    let pdns0 = drover_dns::PowerDnsClient::new(drover_dns::PowerDnsSettings::new(
        &PowerDns::shared()[0].api_url,
        secrecy::SecretString::from(PowerDns::shared()[0].api_key.clone()),
    ))
    .unwrap();
    use drover_dns::DnsProvider;
    let www = RrSet::new(
        OwnerName::parse("www", &good).unwrap(),
        RecordType::A,
        300,
        ["198.51.100.66"],
    )
    .unwrap();
    let before = zone
        .rrsets
        .iter()
        .find(|r| r.key() == www.key())
        .unwrap()
        .clone();
    let ids = drover_core::RecordIds::new();
    let zref = drover_dns::ZoneRef {
        name: &good,
        provider_zone_id: None,
        record_ids: &ids,
    };
    pdns0
        .apply(
            zref,
            &drover_core::ZoneDiff {
                updates: vec![drover_core::RrSetUpdate { before, after: www }],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(w.cf.set_content(good.as_str(), &format!("www.{good}"), "A", "198.51.100.67"));
    let extra = DomainName::parse(&format!("{}.ro", unique("extra"))).unwrap();
    pdns0.create_zone(&extra, &[]).await.unwrap();
    let checks = dns.check(None).await.unwrap();
    let (p0, p1, cf) = (mine(&checks, 0), mine(&checks, 1), mine(&checks, 2));
    assert!(p0.missing.contains(&missing.to_string()) && cf.missing.contains(&missing.to_string()));
    assert!(p0.extra.contains(&extra.to_string()));
    assert!(!p1.extra.contains(&extra.to_string()));
    assert_eq!(p0.different[good.as_str()].updates.len(), 1);
    assert!(!p1.different.contains_key(good.as_str()));
    assert_eq!(
        cf.different[good.as_str()].updates[0].before.records,
        ["198.51.100.67"]
    );
    assert!(
        p0.served_mismatches
            .iter()
            .any(|m| m.contains(&format!("www.{good}")) && m.contains("198.51.100.66")),
        "{:?}",
        p0.served_mismatches
    );
    assert!(!p0.is_consistent() && !cf.is_consistent());
    // Applying the zone repairs both.
    let zone = w.store.zone(zone.id).await.unwrap();
    dns.apply(&ctx(), &zone, &dns.plan(&zone).await.unwrap(), false)
        .await
        .unwrap();
    let checks = dns.check(None).await.unwrap();
    assert!(
        !checks[0].different.contains_key(good.as_str())
            && !checks[2].different.contains_key(good.as_str())
    );
    pdns0
        .delete_zone(drover_dns::ZoneRef {
            name: &extra,
            provider_zone_id: None,
            record_ids: &ids,
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_rewrite_is_one_request_per_zone_and_provider_and_served_at_once() {
    let w = world(false).await;
    let dns = w.dns();
    let old_ip = format!("192.0.2.{}", 100 + std::process::id() % 100);
    let mut zones = Vec::new();
    for _ in 0..20 {
        let name = DomainName::parse(&format!("{}.ro", unique("failover"))).unwrap();
        let zone = w.zone_with_template(&name, &old_ip).await;
        dns.apply(&ctx(), &zone, &dns.plan(&zone).await.unwrap(), false)
            .await
            .unwrap();
        zones.push(name);
    }
    let before = w.cf.stats();
    let moved = AddressMove {
        from: vec![old_ip.parse::<IpAddr>().unwrap()],
        to: vec!["203.0.113.50".parse().unwrap()],
    };
    let report = dns.rewrite(&ctx(), &moved).await.unwrap();
    assert_eq!(
        (
            report.zones,
            report.pushed,
            report.requests,
            report.deferred
        ),
        (20, 60, 60, 0),
        "{report:?}"
    );
    // Cloudflare: 20 batches and not one read.
    let after = w.cf.stats();
    assert_eq!(after.requests - before.requests, 20);
    assert_eq!(
        after.by_endpoint.get("GET /zones/:id/dns_records"),
        before.by_endpoint.get("GET /zones/:id/dns_records"),
    );
    // Served by both PowerDNS servers the moment the rewrite returned.
    for name in &zones {
        for pdns in PowerDns::shared() {
            assert_eq!(
                served(pdns, name.as_str(), RecordType::A).await,
                ["203.0.113.50"]
            );
            assert_eq!(
                served(pdns, &format!("mail.{name}"), RecordType::A).await,
                ["203.0.113.50"]
            );
        }
        assert!(
            w.cf.records(name.as_str())
                .iter()
                .filter(|r| r["type"] == "A")
                .all(|r| r["content"] == "203.0.113.50")
        );
    }
    for name in &zones {
        assert!(w.store.zone_by_name(name).await.unwrap().in_sync());
    }
    // A provider that had not caught up is left to a sync job rather than patched blindly.
    let lagging = &zones[0];
    let zone = w.store.zone_by_name(lagging).await.unwrap();
    let extra = RrSet::new(
        OwnerName::parse("new", lagging).unwrap(),
        RecordType::A,
        300,
        ["203.0.113.50"],
    )
    .unwrap();
    drover::commands::set_rrset(&*w.store, &ctx(), zone.id, extra)
        .await
        .unwrap();
    let back = AddressMove {
        from: vec!["203.0.113.50".parse().unwrap()],
        to: vec![old_ip.parse().unwrap()],
    };
    let report = dns.rewrite(&ctx(), &back).await.unwrap();
    assert_eq!((report.zones, report.deferred), (20, 3), "{report:?}");
    let jobs = w
        .store
        .jobs(drover_store::JobFilter::default())
        .await
        .unwrap();
    assert!(
        jobs.iter()
            .any(|j| j.kind == "sync_zone" && j.args["zone_id"] == zone.id.get())
    );
}

struct Hosting {
    store: Arc<dyn Store>,
    sim: drover_testkit::virtualmin::VirtualminSim,
    workers: riverqueue::RunHandle,
    world: World,
    _database: Option<Box<dyn std::any::Any + Send>>,
}

async fn hosting(
    store: Arc<dyn Store>,
    dir: tempfile::TempDir,
    database: Option<Box<dyn std::any::Any + Send>>,
) -> Hosting {
    use drover_testkit::virtualmin::{SimConfig, VirtualminSim};
    let sim = VirtualminSim::start(SimConfig {
        tls: true,
        password: "sim-secret".into(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    sim.with_state(|s| s.plans.push("Web".into()));
    let password_file = dir.path().join("vm.password");
    std::fs::write(&password_file, "sim-secret\n").unwrap();
    let plan = serde_json::json!({"name": "Web", "features": ["dir", "web", "dns"]});
    drover::commands::create_plan(&*store, &ctx(), serde_json::from_value(plan).unwrap())
        .await
        .unwrap();
    let server = sim.server_record(
        "vm1",
        &password_file,
        serde_json::json!({"capacity": 100, "ipv4": "192.0.2.44"}),
    );
    drover::commands::create_server(&*store, &ctx(), serde_json::from_value(server).unwrap())
        .await
        .unwrap();
    let world = world_on(Arc::clone(&store), dir, true).await;
    let engine = Engine {
        store: Arc::clone(&store),
        fleet: Fleet::new(
            drover_virtualmin::VirtualminSettings::default(),
            crate::secrets_in(world._keep.path()),
        ),
        dns: Dns::new(
            Arc::clone(&store),
            DnsSettings {
                on_terminate: TerminatedZones::Delete,
                ..DnsSettings::default()
            },
            crate::secrets_in(world._keep.path()),
        ),
        sealer: Arc::new(Sealer::from_hex(&"42".repeat(32)).unwrap()),
        placement: PlacementPolicy::default(),
        auto_provisioning: true,
        job_timeout: Duration::from_secs(30),
        retry_max_delay: Duration::from_secs(1),
        fleet_policy: Default::default(),
        webhooks: drover::engine::Webhooks::new(Default::default()).unwrap(),
        virtualmin_sources: None,
    };
    let workers = drover::engine::start(Arc::new(engine), 4).unwrap();
    Hosting {
        store,
        sim,
        workers,
        world,
        _database: database,
    }
}

async fn sqlite_hosting() -> Hosting {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("drover.db").display());
    hosting(drover_store::open(&url).await.unwrap(), dir, None).await
}

async fn postgres_hosting() -> Hosting {
    let db = drover_testkit::TestPostgres::create()
        .await
        .expect("PostgreSQL for tests");
    let store = drover_store::open(db.url()).await.unwrap();
    hosting(store, tempfile::tempdir().unwrap(), Some(Box::new(db))).await
}

drover_testkit::on_both_databases!(
    postgres: postgres_hosting,
    sqlite: sqlite_hosting;
    an_account_gets_its_zone_everywhere_and_loses_it_when_deleted,
);

/// Waits for `check`; on timeout shows the jobs, which say why.
async fn until<F: AsyncFn() -> bool>(store: &dyn Store, what: &str, check: F) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let jobs = store
        .jobs(drover_store::JobFilter::default())
        .await
        .unwrap();
    panic!("timed out waiting until {what}; jobs: {jobs:#?}");
}

async fn an_account_gets_its_zone_everywhere_and_loses_it_when_deleted(mut h: Hosting) {
    let store = &*h.store;
    let domain = format!("{}.ro", unique("acct"));
    let customer = drover::commands::create_customer(
        store,
        &ctx(),
        CustomerSpec::new("Ana", None, None).unwrap(),
    )
    .await
    .unwrap();
    let new = NewService {
        customer_id: customer.id,
        plan_id: drover_core::PlanId(1),
        domain: DomainName::parse(&domain).unwrap(),
    };
    let service = crate::create_service(store, &ctx(), new).await.unwrap();
    let account = service.account_id;
    crate::transition_service(store, &ctx(), service.id, Transition::Activate, None)
        .await
        .unwrap();
    until(store, "the account's zone is on every provider", || async {
        store
            .account_zone(account)
            .await
            .unwrap()
            .is_some_and(|z| z.in_sync() && z.providers.len() == 3)
    })
    .await;
    for pdns in PowerDns::shared() {
        assert_eq!(served(pdns, &domain, RecordType::A).await, ["192.0.2.44"]);
        assert_eq!(
            served(pdns, &domain, RecordType::Mx).await,
            [format!("10 mail.{domain}.")]
        );
    }
    assert!(h.sim.with_state(|s| s.domains.contains_key(&domain)));
    crate::transition_service(store, &ctx(), service.id, Transition::Terminate, None)
        .await
        .unwrap();
    // Accounts are protected from deletion until an operator lifts it, repeating the domain.
    drover::commands::set_protection(store, &ctx(), account, false, &domain)
        .await
        .unwrap();
    until(store, "the zone is removed everywhere", || async {
        store.account_zone(account).await.unwrap().is_none()
    })
    .await;
    for pdns in PowerDns::shared() {
        let answer = query_served(
            pdns.dns_addr,
            &domain,
            RecordType::A,
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        assert_eq!(answer.code, "REFUSED");
    }
    assert_eq!(h.world.cf.zone_id(&domain), None);
    let events = store
        .audit_events(drover_store::AuditFilter {
            subject: Some(format!("zone:{domain}")),
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "dns.zone.create",
            "dns.apply",
            "dns.zone.remove",
            "dns.apply",
            "dns.zone.forget"
        ]
    );
    h.workers.stop().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_accounts_zone_is_removed_or_kept_as_configured() {
    let w = world(false).await;
    let store = &*w.store;
    let plan = serde_json::json!({"name": "Web", "features": ["web", "dns"]});
    let plan = drover::commands::create_plan(store, &ctx(), serde_json::from_value(plan).unwrap())
        .await
        .unwrap();
    let customer = drover::commands::create_customer(
        store,
        &ctx(),
        CustomerSpec::new("Ion", None, None).unwrap(),
    )
    .await
    .unwrap();
    let mut accounts = Vec::new();
    for policy in [TerminatedZones::Keep, TerminatedZones::Delete] {
        let domain = DomainName::parse(&format!("{}.ro", unique("policy"))).unwrap();
        let new = NewService {
            customer_id: customer.id,
            plan_id: plan.id,
            domain: domain.clone(),
        };
        let account = crate::create_service(store, &ctx(), new)
            .await
            .unwrap()
            .account_id;
        let rrsets = account_zone(
            &domain,
            Some("192.0.2.9".parse().unwrap()),
            None,
            &ZoneTemplate::default(),
        )
        .unwrap();
        drover::commands::create_zone(store, &ctx(), &domain, Some(account), rrsets, &[])
            .await
            .unwrap();
        let dns = Dns::new(
            Arc::clone(&w.store),
            DnsSettings {
                on_terminate: policy,
                ..DnsSettings::default()
            },
            crate::secrets_in(w._keep.path()),
        );
        dns.retire_account_zone(&ctx(), account).await.unwrap();
        accounts.push(account);
    }
    let kept = store.account_zone(accounts[0]).await.unwrap().unwrap();
    assert!(!kept.deleting, "keep leaves the zone served");
    let removed = store.account_zone(accounts[1]).await.unwrap().unwrap();
    assert!(
        removed.deleting,
        "delete marks it for removal; its sync job empties the providers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_with_one_token_share_its_budget_through_the_database() {
    use drover::engine::dns::StoreBudget;
    use drover_dns::{CallBudgets, CloudflareClient, CloudflareSettings, DnsProvider, budget_key};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("drover.db").display());
    let store: Arc<dyn Store> = drover_store::open(&url).await.unwrap();
    let window = Duration::from_secs(1);
    let cf = CloudflareFake::start(FakeConfig {
        limit: 20,
        window,
        block: Duration::from_secs(2),
        ..FakeConfig::default()
    })
    .await;
    // Two "processes": each its own in-process budget (generous), one budget in the database.
    let client = || {
        let mut settings = CloudflareSettings::new(secrecy::SecretString::from("cf-test-token"));
        settings.api_url = cf.api_url();
        (settings.budget_calls, settings.budget_window) = (100, window);
        let shared = StoreBudget {
            store: Arc::clone(&store),
            key: budget_key(&settings.token),
            limit: 10,
            window_ms: 1000,
        };
        Arc::new(
            CloudflareClient::new(settings, &CallBudgets::default())
                .unwrap()
                .with_shared_budget(Arc::new(shared)),
        )
    };
    let (a, b) = (client(), client());
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..30)
        .map(|i| {
            let c = if i % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            tokio::spawn(async move { c.list_zones().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let stats = cf.stats();
    assert_eq!(stats.rate_limited, 0);
    assert!(
        stats.max_in_window <= 20,
        "{} in one window",
        stats.max_in_window
    );
    assert!(
        started.elapsed() >= 2 * window,
        "30 calls at 10 a second: {:?}",
        started.elapsed()
    );
    assert!(!budget_key(&secrecy::SecretString::from("cf-test-token")).contains("cf-test-token"));
}
