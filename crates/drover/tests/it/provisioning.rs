//! The fleet follows billing: lifecycle moves made through the store are carried out on a
//! Virtualmin simulator (over TLS with a pinned certificate) by the job workers, on both
//! databases.

use std::sync::Arc;
use std::time::Duration;

use drover::engine::{Engine, Fleet, FleetPolicy, Sealer};
use drover_core::{CustomerSpec, DomainName, JobId, PlacementPolicy, Transition};
use drover_store::{JobFilter, NewService, RequestContext, Store};
use drover_testkit::virtualmin::{SimConfig, VirtualminSim};
use drover_virtualmin::VirtualminSettings;

struct Fleetwork {
    store: Arc<dyn Store>,
    sim: VirtualminSim,
    workers: riverqueue::RunHandle,
    /// Where the engine reads secrets: files here.
    secrets: drover_core::SecretSources,
    _keep: Vec<Box<dyn std::any::Any + Send>>,
}

fn ctx() -> RequestContext {
    RequestContext {
        actor: "test".into(),
        correlation_id: "prov-1".into(),
    }
}

async fn setup(store: Arc<dyn Store>, keep: Box<dyn std::any::Any + Send>) -> Fleetwork {
    setup_with(store, keep, FleetPolicy::default()).await
}

async fn setup_with(
    store: Arc<dyn Store>,
    keep: Box<dyn std::any::Any + Send>,
    fleet_policy: FleetPolicy,
) -> Fleetwork {
    let sim = VirtualminSim::start(SimConfig {
        tls: true,
        password: "sim-secret".into(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    sim.with_state(|s| s.plans.push("Web".into()));
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("vm1.password");
    std::fs::write(&password_file, "sim-secret\n").unwrap();

    let plan = serde_json::json!({"name": "Web", "features": ["dir", "web", "dns"]});
    drover::commands::create_plan(&*store, &ctx(), serde_json::from_value(plan).unwrap())
        .await
        .unwrap();
    let server = sim.server_record("vm1", &password_file, serde_json::json!({"capacity": 100}));
    drover::commands::create_server(&*store, &ctx(), serde_json::from_value(server).unwrap())
        .await
        .unwrap();

    let engine = Engine {
        store: Arc::clone(&store),
        fleet: Fleet::new(
            VirtualminSettings {
                retry_delay: Duration::from_millis(20),
                ..VirtualminSettings::default()
            },
            crate::secrets_in(dir.path()),
        ),
        dns: drover::engine::Dns::new(
            Arc::clone(&store),
            Default::default(),
            crate::secrets_in(dir.path()),
        ),
        sealer: Arc::new(Sealer::from_hex(&"42".repeat(32)).unwrap()),
        placement: PlacementPolicy::default(),
        auto_provisioning: true,
        job_timeout: Duration::from_secs(30),
        retry_max_delay: Duration::from_secs(1),
        fleet_policy,
        webhooks: drover::engine::Webhooks::new(Default::default()).unwrap(),
        virtualmin_sources: None,
    };
    let workers = drover::engine::start(Arc::new(engine), 4).unwrap();
    Fleetwork {
        store,
        sim,
        workers,
        secrets: drover_core::SecretSources {
            dir: dir.path().to_owned(),
            env_prefix: drover_core::SecretSources::DEFAULT_ENV_PREFIX.into(),
        },
        _keep: vec![keep, Box::new(dir)],
    }
}

async fn sqlite() -> Fleetwork {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("drover.db").display());
    setup(drover_store::open(&url).await.unwrap(), Box::new(dir)).await
}

async fn postgres() -> Fleetwork {
    let db = drover_testkit::TestPostgres::create()
        .await
        .expect("PostgreSQL for tests");
    setup(drover_store::open(db.url()).await.unwrap(), Box::new(db)).await
}

drover_testkit::on_both_databases!(
    postgres: postgres,
    sqlite: sqlite;
    billing_moves_are_carried_out_on_the_server,
    jobs_wait_with_a_reason_and_the_emergency_stop_holds_them,
    a_bulk_suspension_reports_every_outcome,
    a_change_made_while_a_job_runs_is_applied_by_that_job,
    a_password_changed_while_its_job_runs_is_the_one_set,
    mailboxes_reach_the_server_with_one_listing_and_a_call_per_change,
    databases_reach_the_server_with_one_listing_and_a_call_per_change,
    aliases_reach_the_server_and_get_zones_that_follow_the_account,
    subservers_reach_the_server_with_their_addresses_in_the_accounts_zone,
    a_login_link_is_made_by_the_server_kept_sealed_and_handed_out_once,
    a_certificate_waits_for_dns_and_its_failures_for_lets_encrypts_limits,
    a_certificate_forgotten_while_its_job_asks_ends_the_job,
    subservers_get_certificates_of_their_own_and_aliases_join_the_domains,
    mailbox_quotas_come_from_the_plan_and_reach_a_server_that_keeps_them,
    an_account_is_backed_up_its_failures_kept_and_old_archives_pruned,
    an_account_is_restored_from_its_backup_once_its_domain_is_repeated,
    backups_go_to_an_ssh_host_whose_key_is_pinned_and_password_kept_out_of_sight,
);

/// Fleets whose engine backs accounts up on a schedule.
mod scheduled {
    use super::*;

    drover_testkit::on_both_databases!(
        postgres: scheduled_postgres,
        sqlite: scheduled_sqlite;
        scheduled_backups_go_to_the_default_destination_and_late_ones_are_named,
    );
}

/// Backups every second: an account is late after two.
fn backing_up() -> FleetPolicy {
    FleetPolicy {
        backup_interval: Some(Duration::from_secs(1)),
        ..FleetPolicy::default()
    }
}

async fn scheduled_sqlite() -> Fleetwork {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("drover.db").display());
    setup_with(
        drover_store::open(&url).await.unwrap(),
        Box::new(dir),
        backing_up(),
    )
    .await
}

async fn scheduled_postgres() -> Fleetwork {
    let db = drover_testkit::TestPostgres::create()
        .await
        .expect("PostgreSQL for tests");
    let store = drover_store::open(db.url()).await.unwrap();
    setup_with(store, Box::new(db), backing_up()).await
}

async fn billing_moves_are_carried_out_on_the_server(mut f: Fleetwork) {
    let store = &*f.store;
    let service = service_on(store, drover_core::PlanId(1), "știri.ro").await;
    let domain = "xn--tiri-pxb.ro";
    let on_server = |f: &Fleetwork| f.sim.with_state(|s| s.domains.get(domain).cloned());

    let moved = crate::transition_service(store, &ctx(), service, Transition::Activate, None)
        .await
        .unwrap();
    let job = crate::finished(store, moved.job_id).await;
    assert_eq!(job.state, "completed", "{job:?}");
    let created = on_server(&f).expect("the domain exists on the server");
    assert_eq!(created.plan, "Web");
    assert_eq!(created.unix_user, moved.account.unix_username.as_str());
    // The plan's features and the administration user they need (the server refuses them alone).
    assert_eq!(created.features, ["unix", "dir", "dns", "web"]);
    let account = store.account(moved.account.id).await.unwrap();
    assert_eq!(
        account.server_id,
        Some(drover_core::ServerId(1)),
        "placed on the only server"
    );
    assert_eq!(account.observed_state.as_deref(), Some("enabled"));
    assert!(
        account.has_sealed_password,
        "sealed before the create, for rebuilds"
    );
    let calls = store.job_calls(moved.job_id).await.unwrap();
    let programs: Vec<&str> = calls
        .iter()
        .map(|c| c.call.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        programs,
        [
            "list-domains",
            "list-plans",
            "modify-plan",
            "create-domain",
            "list-domains"
        ],
        "observe once; give the server's plan drover's limits (the seeded one had others); \
         create; look again"
    );
    assert!(calls[3].call.contains("--pass ***") && !calls[3].call.contains(&created.password));

    let moved = crate::transition_service(
        store,
        &ctx(),
        service,
        Transition::Suspend,
        Some("unpaid invoice".into()),
    )
    .await
    .unwrap();
    assert_eq!(
        crate::finished(store, moved.job_id).await.state,
        "completed"
    );
    assert_eq!(
        on_server(&f).unwrap().disabled.as_deref(),
        Some("unpaid invoice")
    );

    let moved = crate::transition_service(store, &ctx(), service, Transition::Unsuspend, None)
        .await
        .unwrap();
    assert_eq!(
        crate::finished(store, moved.job_id).await.state,
        "completed"
    );
    assert_eq!(on_server(&f).unwrap().disabled, None);

    // A plan change applies the plan on the server.
    f.sim.with_state(|s| s.plans.push("Web Plus".into()));
    let plus = serde_json::json!({"name": "Web Plus", "features": ["dir", "web", "dns"]});
    let plus = drover::commands::create_plan(store, &ctx(), serde_json::from_value(plus).unwrap())
        .await
        .unwrap();
    let moved = drover::commands::change_plan(store, &ctx(), service, plus.id, false)
        .await
        .unwrap();
    assert_eq!(
        crate::finished(store, moved.job_id).await.state,
        "completed"
    );
    assert_eq!(on_server(&f).unwrap().plan, "Web Plus");
    let calls = store.job_calls(moved.job_id).await.unwrap();
    assert!(
        calls
            .iter()
            .any(|c| c.call.starts_with("modify-domain")
                && c.call.contains("--apply-plan \"Web Plus\"")),
        "{calls:?}"
    );

    // A new password is sealed, then set on the server by its own job.
    let sealer = Sealer::from_hex(&"42".repeat(32)).unwrap();
    let password = secrecy::SecretString::from("N3w-passw0rd".to_owned());
    let job = drover::commands::change_password(store, &ctx(), &sealer, service, password)
        .await
        .unwrap();
    assert_eq!(crate::finished(store, job).await.state, "completed");
    assert_eq!(on_server(&f).unwrap().password, "N3w-passw0rd");
    let calls = store.job_calls(job).await.unwrap();
    assert!(
        calls.iter().all(|c| !c.call.contains("N3w-passw0rd")),
        "never recorded in clear"
    );

    // Terminating a protected account is refused, with its reason, and audited.
    let moved = crate::transition_service(store, &ctx(), service, Transition::Terminate, None)
        .await
        .unwrap();
    let refused = crate::finished(store, moved.job_id).await;
    assert_eq!(refused.state, "discarded");
    let reason = refused.output.unwrap()["discarded"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reason.contains("protected from deletion"), "{reason}");
    assert!(on_server(&f).is_some(), "a protected domain stays");
    let audit = store
        .audit_events(drover_store::AuditFilter {
            subject: Some(format!("account:{}", moved.account.id)),
            page: drover_store::Page::default(),
        })
        .await
        .unwrap();
    assert!(audit.iter().any(|e| e.action == "account.job_refused"));

    // Lifting protection needs the domain repeated; then the termination goes through.
    let wrong =
        drover::commands::set_protection(store, &ctx(), moved.account.id, false, "other.ro").await;
    assert!(wrong.is_err());
    drover::commands::set_protection(store, &ctx(), moved.account.id, false, "știri.ro")
        .await
        .unwrap();
    let jobs = store
        .jobs(JobFilter {
            account_id: Some(moved.account.id),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    let latest = jobs.iter().map(|j| j.id).max().unwrap();
    assert_eq!(crate::finished(store, latest).await.state, "completed");
    assert!(
        on_server(&f).is_none(),
        "terminated and unprotected: gone from the server"
    );
    assert_eq!(
        f.sim.stats().creates_by_domain.get(domain),
        Some(&1),
        "created exactly once"
    );
    assert!(store.verify_audit().await.unwrap().intact);
    f.workers.stop().await.unwrap();
}

async fn service_on(
    store: &dyn Store,
    plan: drover_core::PlanId,
    domain: &str,
) -> drover_core::ServiceId {
    let customer = drover::commands::create_customer(
        store,
        &ctx(),
        CustomerSpec::new("Ion", None, None).unwrap(),
    )
    .await
    .unwrap();
    let new = NewService {
        customer_id: customer.id,
        plan_id: plan,
        domain: DomainName::parse(domain).unwrap(),
    };
    crate::create_service(store, &ctx(), new).await.unwrap().id
}

async fn jobs_wait_with_a_reason_and_the_emergency_stop_holds_them(mut f: Fleetwork) {
    let store = &*f.store;
    let tagged = serde_json::json!({"name": "US", "required_tags": ["region-us"]});
    let tagged =
        drover::commands::create_plan(store, &ctx(), serde_json::from_value(tagged).unwrap())
            .await
            .unwrap();
    f.sim.with_state(|s| s.plans.push("US".into()));
    let service = service_on(store, tagged.id, "far-away.com").await;
    let moved = crate::transition_service(store, &ctx(), service, Transition::Activate, None)
        .await
        .unwrap();
    let mut waiting = store.job(moved.job_id).await.unwrap();
    for _ in 0..100 {
        if waiting.output.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        waiting = store.job(moved.job_id).await.unwrap();
    }
    assert_eq!(waiting.state, "scheduled", "{waiting:?}");
    assert_eq!(
        waiting.output.unwrap()["waiting"],
        "no healthy server with tag region-us under 90 % of its capacity"
    );
    assert!(f.sim.domain_names().is_empty());

    // Tag the server; the waiting job, run again now, places the account there.
    let patch = serde_json::json!({"tags": ["region-us"]});
    drover::commands::update_server(
        store,
        &ctx(),
        drover_core::ServerId(1),
        serde_json::from_value(patch).unwrap(),
    )
    .await
    .unwrap();
    drover::commands::retry_job(store, &ctx(), moved.job_id)
        .await
        .unwrap();
    let placed = crate::finished(store, moved.job_id).await;
    assert_eq!(placed.state, "completed", "{placed:?}");
    assert_eq!(f.sim.domain_names(), ["far-away.com"]);

    // The emergency stop: a paused queue holds new jobs until resumed.
    drover::commands::set_provisioning_paused(store, &ctx(), true)
        .await
        .unwrap();
    assert_eq!(store.provisioning_paused().await.unwrap(), Some(true));
    let second = service_on(store, tagged.id, "second.com").await;
    let held = crate::transition_service(store, &ctx(), second, Transition::Activate, None)
        .await
        .unwrap();
    // A job queued after it on another queue gets done: the workers fetch, and pass it by.
    let later = drover::commands::request(
        store,
        &ctx(),
        drover::commands::Requested::UsageSync {
            server: Some(drover_core::ServerId(1)),
        },
    )
    .await
    .unwrap();
    assert_eq!(crate::finished(store, later).await.state, "completed");
    assert_eq!(
        store.job(held.job_id).await.unwrap().state,
        "available",
        "held while paused"
    );
    drover::commands::set_provisioning_paused(store, &ctx(), false)
        .await
        .unwrap();
    assert_eq!(crate::finished(store, held.job_id).await.state, "completed");
    assert!(f.sim.domain_names().contains(&"second.com".to_owned()));
    f.workers.stop().await.unwrap();
}

async fn a_bulk_suspension_reports_every_outcome(mut f: Fleetwork) {
    let store = &*f.store;
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = service_on(store, drover_core::PlanId(1), &format!("bulk-{i}.ro")).await;
        let moved = crate::transition_service(store, &ctx(), id, Transition::Activate, None)
            .await
            .unwrap();
        assert_eq!(
            crate::finished(store, moved.job_id).await.state,
            "completed"
        );
        ids.push(id);
    }
    let never_activated = service_on(store, drover_core::PlanId(1), "pending.ro").await;
    ids.push(never_activated);

    let action = drover::bulk::BulkAction::Suspend {
        reason: Some(drover_core::SuspendReason::parse("audit").unwrap()),
    };
    let never = drover::bulk::Interrupt::default();
    let queued = drover::bulk::queue(store, &ctx(), &action, &ids, &never).await;
    assert_eq!(
        (queued.total, queued.queued.len(), queued.refused.len()),
        (4, 3, 1)
    );
    let mut seen = Vec::new();
    let summary = drover::bulk::wait(store, &queued, None, &never, |done, total| {
        seen.push((done, total))
    })
    .await
    .unwrap();
    assert_eq!(summary.succeeded, 3);
    assert_eq!(summary.failed.len(), 1);
    assert_eq!(summary.failed[0].0, never_activated);
    assert!(
        summary.failed[0]
            .1
            .contains("cannot suspend a service that is pending"),
        "{:?}",
        summary.failed
    );
    assert_eq!(seen.last(), Some(&(4, 4)), "progress reaches the total");
    for i in 0..3 {
        let domain = format!("bulk-{i}.ro");
        let reason = f.sim.with_state(|s| s.domains[&domain].disabled.clone());
        assert_eq!(reason.as_deref(), Some("audit"));
    }
    f.workers.stop().await.unwrap();
}

async fn a_change_made_while_a_job_runs_is_applied_by_that_job(mut f: Fleetwork) {
    let store = &*f.store;
    let id = service_on(store, drover_core::PlanId(1), "midway.ro").await;
    // The job's first call (its observation) answers slowly: billing acts meanwhile.
    f.sim.fail_next(drover_testkit::virtualmin::Fault::Slow(
        Duration::from_millis(1500),
    ));
    let activated = crate::transition_service(store, &ctx(), id, Transition::Activate, None)
        .await
        .unwrap();
    for _ in 0..200 {
        if store.job(activated.job_id).await.unwrap().state == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.job(activated.job_id).await.unwrap().state, "running");
    let suspended = crate::transition_service(
        store,
        &ctx(),
        id,
        Transition::Suspend,
        Some("changed midway".into()),
    )
    .await
    .unwrap();
    assert_eq!(
        suspended.job_id, activated.job_id,
        "the running job takes the change"
    );
    assert!(suspended.joined_waiting_job);
    assert_eq!(
        crate::finished(store, activated.job_id).await.state,
        "completed"
    );
    let on_server = f
        .sim
        .with_state(|s| s.domains.get("midway.ro").cloned())
        .unwrap();
    assert_eq!(
        on_server.disabled.as_deref(),
        Some("changed midway"),
        "not lost"
    );
    let account = store.account(activated.account.id).await.unwrap();
    assert_eq!(account.observed_state.as_deref(), Some("disabled"));
    f.workers.stop().await.unwrap();
}

async fn a_password_changed_while_its_job_runs_is_the_one_set(mut f: Fleetwork) {
    let store = &*f.store;
    let id = service_on(store, drover_core::PlanId(1), "parola.ro").await;
    let activated = crate::transition_service(store, &ctx(), id, Transition::Activate, None)
        .await
        .unwrap();
    assert_eq!(
        crate::finished(store, activated.job_id).await.state,
        "completed"
    );
    let sealer = Sealer::from_hex(&"42".repeat(32)).unwrap();
    let billing = ctx();
    let change = |password: &str| {
        let password = secrecy::SecretString::from(password.to_owned());
        drover::commands::change_password(store, &billing, &sealer, id, password)
    };
    // The job's call answers slowly: billing sets another password meanwhile.
    f.sim.fail_next(drover_testkit::virtualmin::Fault::Slow(
        Duration::from_millis(1500),
    ));
    let first = change("First-passw0rd").await.unwrap();
    for _ in 0..200 {
        if store.job(first).await.unwrap().state == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.job(first).await.unwrap().state, "running");
    let second = change("Second-passw0rd").await.unwrap();
    assert_eq!(second, first, "the running job takes the change");
    assert_eq!(crate::finished(store, first).await.state, "completed");
    let on_server = f
        .sim
        .with_state(|s| s.domains.get("parola.ro").cloned())
        .unwrap();
    assert_eq!(on_server.password, "Second-passw0rd", "not lost");
    f.workers.stop().await.unwrap();
}

/// A process still running with the key from before a rotation says so when a password does
/// not open, rather than calling the data altered.
#[tokio::test]
async fn a_password_sealed_after_a_rotation_names_the_restart_it_needs() {
    let fleet = crate::TestFleet::new().await;
    let engine = fleet.engine(VirtualminSettings::default(), Default::default());
    let rotated = Sealer::from_hex(&"43".repeat(32)).unwrap();
    let sealed = rotated.seal(&secrecy::SecretString::from("pw".to_owned()));
    let altered = engine.open_sealed(&sealed).await.unwrap_err();
    assert!(
        altered.contains("does not open with this operator key"),
        "{altered}"
    );
    fleet.store.record_seal_key_id(rotated.id()).await.unwrap();
    let message = engine.open_sealed(&sealed).await.unwrap_err();
    assert_eq!(
        message,
        format!(
            "the operator key was rotated to {} while this process runs with {}: restart it \
             with the new key",
            rotated.id(),
            engine.sealer.id()
        )
    );
    let own = engine
        .sealer
        .seal(&secrecy::SecretString::from("pw".to_owned()));
    assert!(engine.open_sealed(&own).await.is_ok());
}

async fn mailboxes_reach_the_server_with_one_listing_and_a_call_per_change(f: Fleetwork) {
    let store = &*f.store;
    let mail = serde_json::json!({"name": "Mail", "features": ["dir", "web", "dns", "mail"]});
    let mail = drover::commands::create_plan(store, &ctx(), serde_json::from_value(mail).unwrap())
        .await
        .unwrap();
    let id = service_on(store, mail.id, "posta.ro").await;
    let activated = crate::transition_service(store, &ctx(), id, Transition::Activate, None)
        .await
        .unwrap();
    assert_eq!(
        crate::finished(store, activated.job_id).await.state,
        "completed"
    );
    let account = activated.account.id;
    let sealer = Sealer::from_hex(&"42".repeat(32)).unwrap();
    let secret = |p: &str| secrecy::SecretString::from(p.to_owned());
    let on_server = || {
        f.sim
            .with_state(|s| s.domains.get("posta.ro").map(|d| d.mailboxes.clone()))
            .unwrap()
    };
    let held = hold_jobs(store).await;
    for (name, real) in [("ana", "Ana Pop"), ("ion", "")] {
        drover::commands::create_mailbox(
            store,
            &ctx(),
            &sealer,
            account,
            name,
            real,
            secret("Mail-passw0rd"),
            None,
        )
        .await
        .unwrap();
    }
    held.release().await;
    let job = last_converge(store, account).await;
    let ended = crate::finished(store, job).await;
    assert_eq!(ended.state, "completed", "{ended:?}");
    let mailboxes = on_server();
    assert_eq!(mailboxes.get("ana").map(String::as_str), Some("Ana Pop"));
    assert!(mailboxes.contains_key("ion"), "{mailboxes:?}");
    let called = programs_called(store, job).await;
    assert_eq!(
        called,
        [
            "list-domains",
            "list-users",
            "create-user",
            "create-user",
            "list-domains",
            "list-users"
        ],
        "one listing, a create each, then a look that finds nothing left to do"
    );
    let listed = store.mailboxes(account).await.unwrap();
    assert!(listed.iter().all(|m| !m.password_pending), "{listed:?}");

    // A real name and a password change are one modify-user each; a deletion is one call.
    drover::commands::update_mailbox(
        store,
        &ctx(),
        &sealer,
        account,
        "ana",
        Some("Ana Popescu"),
        Some(secret("New-passw0rd")),
        None,
    )
    .await
    .unwrap();
    drover::commands::delete_mailbox(
        store,
        &ctx(),
        account,
        "ion",
        &drover_core::Confirmation::Typed("ion".to_string()),
    )
    .await
    .unwrap();
    let job = last_converge(store, account).await;
    let ended = crate::finished(store, job).await;
    assert_eq!(ended.state, "completed", "{ended:?}");
    let mailboxes = on_server();
    assert_eq!(
        mailboxes.get("ana").map(String::as_str),
        Some("Ana Popescu")
    );
    assert!(!mailboxes.contains_key("ion"), "{mailboxes:?}");
    let called = programs_called(store, job).await;
    assert_eq!(
        called.iter().filter(|p| **p == "modify-user").count(),
        2,
        "{called:?}"
    );
    assert_eq!(called.iter().filter(|p| **p == "delete-user").count(), 1);
    let names: Vec<String> = store
        .mailboxes(account)
        .await
        .unwrap()
        .iter()
        .map(|m| m.name.to_string())
        .collect();
    assert_eq!(
        names,
        ["ana"],
        "a deleted mailbox is forgotten once it is gone"
    );
    // Past the plan's limit, nothing is recorded.
    let plan = serde_json::from_value(serde_json::json!({"max_mailboxes": 1})).unwrap();
    drover::commands::update_plan(store, &ctx(), mail.id, plan, false)
        .await
        .unwrap();
    let err = drover::commands::create_mailbox(
        store,
        &ctx(),
        &sealer,
        account,
        "eva",
        "",
        secret("Mail-passw0rd"),
        None,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("allows 1 mailboxes"), "{err}");
    assert_eq!(store.mailboxes(account).await.unwrap().len(), 1);
}

async fn mailbox_quotas_come_from_the_plan_and_reach_a_server_that_keeps_them(f: Fleetwork) {
    let store = &*f.store;
    f.sim.with_state(|s| s.home_quotas = true);
    let spec = serde_json::json!({
        "name": "Quota", "features": ["dir", "web", "dns", "mail"], "mailbox_quota_mb": 500
    });
    let plan = drover::commands::create_plan(store, &ctx(), serde_json::from_value(spec).unwrap())
        .await
        .unwrap();
    let id = service_on(store, plan.id, "cote.ro").await;
    let activated = crate::transition_service(store, &ctx(), id, Transition::Activate, None)
        .await
        .unwrap();
    assert_eq!(
        crate::finished(store, activated.job_id).await.state,
        "completed"
    );
    let account = activated.account.id;
    let sealer = Sealer::from_hex(&"42".repeat(32)).unwrap();
    let secret = || secrecy::SecretString::from("Mail-passw0rd".to_owned());
    let quotas = || {
        f.sim
            .with_state(|s| s.domains.get("cote.ro").map(|d| d.mailbox_quotas.clone()))
            .unwrap()
    };
    let create = |name: &'static str, quota: Option<u64>| {
        let sealer = &sealer;
        async move {
            drover::commands::create_mailbox(
                store,
                &ctx(),
                sealer,
                account,
                name,
                "",
                secret(),
                quota,
            )
            .await
        }
    };
    // The plan's quota, or a mailbox's own below it; above it, refused with the plan's.
    create("ana", None).await.unwrap();
    let ion = create("ion", Some(100)).await.unwrap();
    assert_eq!(ion.quota_mb, Some(100));
    let err = create("eva", Some(501)).await.unwrap_err().to_string();
    assert!(
        err.contains("at most 500 MB, the mailbox quota of plan 'Quota'"),
        "{err}"
    );
    let job = last_converge(store, account).await;
    assert_eq!(crate::finished(store, job).await.state, "completed");
    let kept = quotas();
    assert_eq!(
        (kept["ana"], kept["ion"]),
        (500 * 1024, 100 * 1024),
        "1 kB blocks"
    );

    // Changed by hand on the server: drift says so, and a converge sets it back.
    f.sim.with_state(|s| {
        s.domains
            .get_mut("cote.ro")
            .unwrap()
            .mailbox_quotas
            .insert("ana".into(), 1024);
    });
    let scan = drover::commands::request(
        store,
        &ctx(),
        drover::commands::Requested::DriftScan {
            server: None,
            repair: drover_store::jobs::DriftRepair::ScanOnly,
        },
    )
    .await
    .unwrap();
    let scanned = crate::finished(store, scan).await;
    assert_eq!(scanned.state, "completed", "{scanned:?}");
    let findings = store
        .drift_findings(Some(drover_core::ServerId(1)))
        .await
        .unwrap();
    let quota = findings
        .iter()
        .find(|d| d.finding.resource.as_deref() == Some("ana"))
        .unwrap_or_else(|| panic!("{findings:?}"));
    assert_eq!(quota.finding.expected.as_deref(), Some("quota 500 MB"));
    assert_eq!(quota.finding.found.as_deref(), Some("quota 1 MB"));
    // A mailbox's own quota changed, and ana's set back: one modify-user each.
    drover::commands::update_mailbox(
        store,
        &ctx(),
        &sealer,
        account,
        "ion",
        None,
        None,
        Some(Some(200)),
    )
    .await
    .unwrap();
    let job = last_converge(store, account).await;
    assert_eq!(crate::finished(store, job).await.state, "completed");
    let kept = quotas();
    assert_eq!((kept["ana"], kept["ion"]), (500 * 1024, 200 * 1024));
    let called = programs_called(store, job).await;
    assert_eq!(
        called.iter().filter(|p| **p == "modify-user").count(),
        2,
        "{called:?}"
    );
    // A plan whose mailbox quota is below a mailbox's own is refused unless forced.
    let smaller = serde_json::json!({"name": "Small", "features": ["dir", "web", "dns", "mail"], "mailbox_quota_mb": 150});
    let smaller =
        drover::commands::create_plan(store, &ctx(), serde_json::from_value(smaller).unwrap())
            .await
            .unwrap();
    let err = drover::commands::change_plan(store, &ctx(), id, smaller.id, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a mailbox of 200 MB, at most 150 MB each"),
        "{err}"
    );
}

async fn databases_reach_the_server_with_one_listing_and_a_call_per_change(f: Fleetwork) {
    let store = &*f.store;
    let spec = serde_json::json!({"name": "Db", "features": ["dir", "web", "dns", "mysql"]});
    let plan = drover::commands::create_plan(store, &ctx(), serde_json::from_value(spec).unwrap())
        .await
        .unwrap();
    let id = service_on(store, plan.id, "baze.ro").await;
    let activated = crate::transition_service(store, &ctx(), id, Transition::Activate, None)
        .await
        .unwrap();
    assert_eq!(
        crate::finished(store, activated.job_id).await.state,
        "completed"
    );
    let account = activated.account.id;
    let on_server = || {
        f.sim
            .with_state(|s| s.domains.get("baze.ro").map(|d| d.databases.clone()))
            .unwrap()
    };
    assert_eq!(
        on_server(),
        ["baze"],
        "the server's own database, made with it"
    );
    let held = hold_jobs(store).await;
    for name in ["shop", "baze_wiki"] {
        drover::commands::create_database(store, &ctx(), account, name, "mysql")
            .await
            .unwrap();
    }
    held.release().await;
    let job = last_converge(store, account).await;
    let ended = crate::finished(store, job).await;
    assert_eq!(ended.state, "completed", "{ended:?}");
    assert_eq!(on_server(), ["baze", "baze_shop", "baze_wiki"]);
    assert_eq!(
        programs_called(store, job).await,
        [
            "list-domains",
            "list-databases",
            "create-database",
            "create-database",
            "list-domains",
            "list-databases",
        ],
        "one listing, a create each, then a look that finds nothing left to do"
    );

    // A deletion repeats the full name, then is one call; drover forgets it once it is gone.
    let err = drover::commands::delete_database(
        store,
        &ctx(),
        account,
        "shop",
        &drover_core::Confirmation::Typed("shop".to_string()),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("baze_shop"), "{err}");
    drover::commands::delete_database(
        store,
        &ctx(),
        account,
        "shop",
        &drover_core::Confirmation::Typed("baze_shop".to_string()),
    )
    .await
    .unwrap();
    let job = last_converge(store, account).await;
    assert_eq!(crate::finished(store, job).await.state, "completed");
    assert_eq!(on_server(), ["baze", "baze_wiki"]);
    let called = programs_called(store, job).await;
    assert_eq!(
        called.iter().filter(|p| **p == "delete-database").count(),
        1,
        "{called:?}"
    );
    let names: Vec<String> = store
        .databases(account)
        .await
        .unwrap()
        .iter()
        .map(|d| d.name.to_string())
        .collect();
    assert_eq!(
        names,
        ["baze_wiki"],
        "a deleted database is forgotten once it is gone"
    );

    // Past the plan's limit, of a type the plan lacks, or a name the account's own: refused,
    // nothing recorded.
    let limit = serde_json::from_value(serde_json::json!({"max_databases": 1})).unwrap();
    drover::commands::update_plan(store, &ctx(), plan.id, limit, false)
        .await
        .unwrap();
    for (name, kind, says) in [
        ("blog", "mysql", "allows 1 databases"),
        ("pg", "postgres", "feature postgres"),
        ("baze", "mysql", "the server makes with the account"),
        ("Bad name!", "mysql", "database name"),
        ("blog", "oracle", "mysql or postgres"),
    ] {
        let err = drover::commands::create_database(store, &ctx(), account, name, kind)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(says), "{name} {kind}: {err}");
    }
    assert_eq!(store.databases(account).await.unwrap().len(), 1);
}

async fn aliases_reach_the_server_and_get_zones_that_follow_the_account(f: Fleetwork) {
    use drover_store::OtherDomainKind::Alias;
    let store = &*f.store;
    let spec = serde_json::json!({"name": "Alias", "max_aliases": 2});
    let plan = drover::commands::create_plan(store, &ctx(), serde_json::from_value(spec).unwrap())
        .await
        .unwrap();
    let id = service_on(store, plan.id, "firma.ro").await;
    let activated = crate::transition_service(store, &ctx(), id, Transition::Activate, None)
        .await
        .unwrap();
    assert_eq!(
        crate::finished(store, activated.job_id).await.state,
        "completed"
    );
    let account = activated.account.id;
    let aliases_on_server = || {
        let mut names: Vec<String> = f.sim.with_state(|s| {
            s.domains
                .values()
                .filter(|d| d.parent.as_deref() == Some("firma.ro"))
                .map(|d| d.name.clone())
                .collect()
        });
        names.sort();
        names
    };
    let held = hold_jobs(store).await;
    for alias in ["firma.com", "știri-firma.ro"] {
        drover::commands::create_alias(store, &ctx(), account, alias)
            .await
            .unwrap();
    }
    held.release().await;
    let job = last_converge(store, account).await;
    let ended = crate::finished(store, job).await;
    assert_eq!(ended.state, "completed", "{ended:?}");
    assert_eq!(aliases_on_server(), ["firma.com", "xn--tiri-firma-txd.ro"]);
    assert_eq!(
        programs_called(store, job).await,
        [
            "list-domains",
            "list-domains",
            "create-domain",
            "create-domain",
            "list-domains",
            "list-domains",
        ],
        "the domain, one listing of its aliases, a create each, then a look that finds \
         nothing left to do"
    );
    // Each alias has a zone of its own, made as the account's, that follows the account.
    let zones: Vec<String> = store
        .account_zones(account)
        .await
        .unwrap()
        .iter()
        .map(|z| z.name.to_string())
        .collect();
    assert_eq!(zones, ["firma.ro", "firma.com", "xn--tiri-firma-txd.ro"]);

    // Refusals, each saying what was wrong; nothing recorded.
    for (alias, says) in [
        ("firma.net", "allows 2 alias domains"),
        ("firma.com", "s alias; a domain can be hosted only once"),
        ("firma.ro", "alias domain"),
        ("shop.firma.ro", "sub-server"),
        ("not a domain", "domain"),
    ] {
        let err = drover::commands::create_alias(store, &ctx(), account, alias)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(says), "{alias}: {err}");
    }
    // A deletion repeats the domain, then is one call; its zone goes, then drover forgets it.
    let err = drover::commands::delete_other_domain(
        store,
        &ctx(),
        account,
        Alias,
        "firma.com",
        &drover_core::Confirmation::Typed("firma.ro".to_string()),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("firma.com"), "{err}");
    drover::commands::delete_other_domain(
        store,
        &ctx(),
        account,
        Alias,
        "firma.com",
        &drover_core::Confirmation::Typed("firma.com".to_string()),
    )
    .await
    .unwrap();
    let job = last_converge(store, account).await;
    assert_eq!(crate::finished(store, job).await.state, "completed");
    assert_eq!(aliases_on_server(), ["xn--tiri-firma-txd.ro"]);
    let called = programs_called(store, job).await;
    assert_eq!(
        called.iter().filter(|p| **p == "delete-domain").count(),
        1,
        "{called:?}"
    );
    let left: Vec<String> = store
        .other_domains(account, Alias)
        .await
        .unwrap()
        .iter()
        .map(|a| a.domain.to_string())
        .collect();
    assert_eq!(left, ["xn--tiri-firma-txd.ro"]);
    // Removed from DNS (no provider serves it here, so its removal forgets it at once).
    crate::until(
        "the alias's zone is gone",
        std::time::Duration::from_secs(10),
        || async {
            let zones = store.account_zones(account).await.unwrap();
            zones.len() == 2 && zones.iter().all(|z| z.name.as_str() != "firma.com")
        },
    )
    .await;
}

async fn subservers_reach_the_server_with_their_addresses_in_the_accounts_zone(f: Fleetwork) {
    use drover_store::OtherDomainKind::Subserver;
    let store = &*f.store;
    let spec = serde_json::json!({
        "name": "Sub", "max_subservers": 2, "features": ["web", "dns", "mail", "mysql"]
    });
    let plan = drover::commands::create_plan(store, &ctx(), serde_json::from_value(spec).unwrap())
        .await
        .unwrap();
    let id = service_on(store, plan.id, "magazin.ro").await;
    let activated = crate::transition_service(store, &ctx(), id, Transition::Activate, None)
        .await
        .unwrap();
    assert_eq!(
        crate::finished(store, activated.job_id).await.state,
        "completed"
    );
    let account = activated.account.id;
    // Its server has an address for the zone to point at.
    let server = store.account(account).await.unwrap().server_id.unwrap();
    let address = serde_json::from_value(serde_json::json!({"ipv4": "192.0.2.7"})).unwrap();
    drover::commands::update_server(store, &ctx(), server, address)
        .await
        .unwrap();
    let on_server = || {
        let mut subs: Vec<(String, Vec<String>)> = f.sim.with_state(|s| {
            s.domains
                .values()
                .filter(|d| d.parent.as_deref() == Some("magazin.ro"))
                .map(|d| (d.name.clone(), d.features.clone()))
                .collect()
        });
        subs.sort();
        subs
    };
    let held = hold_jobs(store).await;
    for name in ["shop", "blog.magazin.ro"] {
        drover::commands::create_subserver(store, &ctx(), account, name)
            .await
            .unwrap();
    }
    held.release().await;
    let job = last_converge(store, account).await;
    let ended = crate::finished(store, job).await;
    assert_eq!(ended.state, "completed", "{ended:?}");
    let web = |f: &[&str]| f.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        on_server(),
        [
            (
                "blog.magazin.ro".to_owned(),
                web(&["dir", "dns", "mail", "web"])
            ),
            (
                "shop.magazin.ro".to_owned(),
                web(&["dir", "dns", "mail", "web"])
            ),
        ],
        "a web root of their own, never a user nor the plan's databases"
    );
    let called = programs_called(store, job).await;
    assert_eq!(
        called,
        [
            "list-domains",
            "list-domains",
            "create-domain",
            "create-domain",
            "list-domains",
            "list-domains",
        ],
        "the domain, one listing of its sub-servers, a create each, then a look that finds \
         nothing left to do"
    );
    let calls = store.job_calls(job).await.unwrap();
    let creates: Vec<&str> = calls
        .iter()
        .map(|c| c.call.as_str())
        .filter(|c| c.starts_with("create-domain"))
        .collect();
    assert!(
        creates.len() == 2
            && creates
                .iter()
                .all(|c| !c.contains("--unix") && c.contains("--parent \"magazin.ro\"")),
        "{creates:?}"
    );
    // Their addresses are in the account's zone, at its server's.
    let zone = store.account_zone(account).await.unwrap().unwrap();
    for owner in ["shop.magazin.ro", "www.shop.magazin.ro", "blog.magazin.ro"] {
        assert!(
            zone.rrsets.iter().any(|r| r.name.as_str() == owner
                && r.rtype == drover_core::RecordType::A
                && r.records == ["192.0.2.7"]),
            "{owner}: {:?}",
            zone.rrsets
        );
    }

    // Refusals, each saying what was wrong; nothing recorded.
    for (name, says) in [
        ("wiki", "allows 2 sub-servers"),
        ("shop", "already account"),
        ("magazin.com", "a name under magazin.ro"),
        ("www", "not www or mail"),
        ("bad name", "sub-server"),
    ] {
        let err = drover::commands::create_subserver(store, &ctx(), account, name)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(says), "{name}: {err}");
    }
    // A deletion repeats the full name; then the server loses it, and its addresses go.
    let kind = Subserver;
    let err = drover::commands::delete_other_domain(
        store,
        &ctx(),
        account,
        kind,
        "shop",
        &drover_core::Confirmation::Typed("shop".to_string()),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("shop.magazin.ro"), "{err}");
    drover::commands::delete_other_domain(
        store,
        &ctx(),
        account,
        kind,
        "shop",
        &drover_core::Confirmation::Typed("shop.magazin.ro".to_string()),
    )
    .await
    .unwrap();
    let job = last_converge(store, account).await;
    assert_eq!(crate::finished(store, job).await.state, "completed");
    assert_eq!(on_server().len(), 1);
    let zone = store.account_zone(account).await.unwrap().unwrap();
    assert!(
        !zone
            .rrsets
            .iter()
            .any(|r| r.name.as_str().ends_with("shop.magazin.ro")),
        "{:?}",
        zone.rrsets
    );
    assert_eq!(store.other_domains(account, kind).await.unwrap().len(), 1);
}

async fn a_login_link_is_made_by_the_server_kept_sealed_and_handed_out_once(f: Fleetwork) {
    use drover::commands::{Requested, request, take_login_link};
    let store = &*f.store;
    let plan = drover::commands::create_plan(
        store,
        &ctx(),
        serde_json::from_value(serde_json::json!({"name": "Link"})).unwrap(),
    )
    .await
    .unwrap();
    let id = service_on(store, plan.id, "intra.ro").await;
    let sealer = Sealer::from_hex(&"42".repeat(32)).unwrap();
    // Not on a server yet: refused, with the reason.
    let pending = store.service(id).await.unwrap().account_id;
    let job = request(store, &ctx(), Requested::LoginLink { account: pending })
        .await
        .unwrap();
    let ended = crate::finished(store, job).await;
    assert_eq!(ended.state, "discarded", "{ended:?}");
    assert!(
        ended.output.unwrap()["refused"]
            .as_str()
            .unwrap()
            .contains("on no server yet")
    );
    let activated = crate::transition_service(store, &ctx(), id, Transition::Activate, None)
        .await
        .unwrap();
    assert_eq!(
        crate::finished(store, activated.job_id).await.state,
        "completed"
    );
    let account = activated.account.id;
    let job = request(store, &ctx(), Requested::LoginLink { account })
        .await
        .unwrap();
    let ended = crate::finished(store, job).await;
    assert_eq!(ended.state, "completed", "{ended:?}");
    // Neither the job's output nor its call record holds the link.
    let output = ended.output.unwrap().to_string();
    assert!(!output.contains("session"), "{output}");
    let calls = store.job_calls(job).await.unwrap();
    assert!(
        calls.iter().all(|c| !c.call.contains("session")
            && !c.message.as_deref().unwrap_or("").contains("session")),
        "{calls:?}"
    );
    let link = take_login_link(store, &ctx(), &sealer, account, job)
        .await
        .unwrap();
    assert!(
        link.reveal()
            .starts_with("https://intra.ro:10000/session_login.cgi?session="),
        "{}",
        link.reveal()
    );
    let lifetime = link.expires_at - jiff::Timestamp::now();
    assert!(
        lifetime.get_seconds() <= 300 && lifetime.get_seconds() > 200,
        "{lifetime:?}"
    );
    // Once only; and not to another account.
    let again = take_login_link(store, &ctx(), &sealer, account, job)
        .await
        .unwrap_err();
    assert!(again.to_string().contains("taken already"), "{again}");
    // An expired one is not handed out.
    let sealed = sealer.seal(&secrecy::SecretString::from("https://old".to_owned()));
    let past = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
    store
        .keep_login_link(JobId(9_999_999), account, &sealed, past)
        .await
        .unwrap();
    let expired = take_login_link(store, &ctx(), &sealer, account, JobId(9_999_999))
        .await
        .unwrap_err();
    assert!(expired.to_string().contains("expired"), "{expired}");
    // A plan without the webmin feature gives no panel login: refused before any job.
    let web = serde_json::json!({"features": ["web"]});
    drover::commands::update_plan(
        store,
        &ctx(),
        plan.id,
        serde_json::from_value(web).unwrap(),
        false,
    )
    .await
    .unwrap();
    let err = request(store, &ctx(), Requested::LoginLink { account })
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("does not give its accounts the feature webmin: they have no panel logins"),
        "{err}"
    );
}

/// An account's certificate covers its names: its domain's certificate (which the server makes
/// for its aliases too) and each sub-server's own. A new alias asks for the domain's again
/// once the alias is on the server; a new sub-server asks for its own only; a sub-server gone
/// leaves the request.
async fn subservers_get_certificates_of_their_own_and_aliases_join_the_domains(f: Fleetwork) {
    use drover_core::CertificateState;
    let store = &*f.store;
    let account = active_on_addressed_server(store, "certs.ro").await;
    drover::commands::create_subserver(store, &ctx(), account, "shop")
        .await
        .unwrap();
    let (_, job) = drover::commands::request_certificate(store, &ctx(), account)
        .await
        .unwrap();
    let ended = crate::finished(store, job).await;
    assert_eq!(ended.state, "completed", "{ended:?}");
    let asked = |domain: &str| f.sim.calls_naming(domain, "generate-letsencrypt-cert");
    let names = || async {
        let c = store.certificate(account).await.unwrap().unwrap();
        let names: Vec<(String, bool)> = c
            .names
            .iter()
            .map(|n| (n.domain.to_string(), n.issued_at.is_some()))
            .collect();
        (c.state, names)
    };
    let issued = |list: &[&str]| -> (CertificateState, Vec<(String, bool)>) {
        let names = list.iter().map(|d| ((*d).to_owned(), true)).collect();
        (CertificateState::Issued, names)
    };
    assert_eq!(names().await, issued(&["certs.ro", "shop.certs.ro"]));
    assert_eq!((asked("certs.ro"), asked("shop.certs.ro")), (1, 1));
    let on_server = f
        .sim
        .with_state(|s| s.domains["shop.certs.ro"].certificate_expiry);
    assert!(on_server.is_some(), "the sub-server's own certificate");

    // An alias: the domain's certificate is asked for again (after the alias is on the
    // server), the sub-server's is not.
    drover::commands::create_alias(store, &ctx(), account, "certs-alias.com")
        .await
        .unwrap();
    wait_for(|| async { (asked("certs.ro") == 2).then_some(()) }).await;
    wait_for(|| async { (names().await.0 == CertificateState::Issued).then_some(()) }).await;
    // Asked once the alias was on the server: the server's certificate covers it.
    let hosts = f
        .sim
        .with_state(|s| s.domains["certs.ro"].certificate_hosts.clone());
    assert!(hosts.contains(&"certs-alias.com".to_owned()), "{hosts:?}");
    assert_eq!(asked("shop.certs.ro"), 1);
    // A new sub-server: its own only.
    drover::commands::create_subserver(store, &ctx(), account, "blog")
        .await
        .unwrap();
    wait_for(|| async { (asked("blog.certs.ro") == 1).then_some(()) }).await;
    wait_for(|| async {
        (names().await == issued(&["certs.ro", "blog.certs.ro", "shop.certs.ro"])).then_some(())
    })
    .await;
    assert_eq!((asked("certs.ro"), asked("shop.certs.ro")), (2, 1));
    // A sub-server deleted: no longer among the names, nothing asked.
    let confirm = drover_core::Confirmation::Typed("shop.certs.ro".into());
    drover::commands::delete_other_domain(
        store,
        &ctx(),
        account,
        drover_store::OtherDomainKind::Subserver,
        "shop",
        &confirm,
    )
    .await
    .unwrap();
    assert_eq!(
        names().await,
        issued(&["certs.ro", "blog.certs.ro"]),
        "still issued, without shop"
    );
    let waiting = store
        .jobs(drover_store::JobFilter {
            states: vec![
                drover_store::JobState::Available,
                drover_store::JobState::Scheduled,
            ],
            account_id: Some(account),
            limit: None,
        })
        .await
        .unwrap();
    assert!(
        waiting.iter().all(|j| j.kind != "request_certificate"),
        "nothing new to ask: {waiting:?}"
    );
}

/// The account's newest converge job.
async fn a_certificate_waits_for_dns_and_its_failures_for_lets_encrypts_limits(f: Fleetwork) {
    use drover_core::{CertificateState, OwnerName, RecordType, RrSet};
    use drover_testkit::virtualmin::Acme;
    let store = &*f.store;
    let certificate = |account| async move { store.certificate(account).await.unwrap().unwrap() };
    let active = |domain: &'static str| async move {
        let id = service_on(store, drover_core::PlanId(1), domain).await;
        let moved = crate::transition_service(store, &ctx(), id, Transition::Activate, None)
            .await
            .unwrap();
        assert_eq!(
            crate::finished(store, moved.job_id).await.state,
            "completed"
        );
        moved.account.id
    };

    // The server has an address for the accounts' zones to point at.
    let address = serde_json::from_value(serde_json::json!({"ipv4": "192.0.2.7"})).unwrap();
    drover::commands::update_server(store, &ctx(), drover_core::ServerId(1), address)
        .await
        .unwrap();
    // The account's www still points elsewhere: the job waits, asking nothing of the server.
    let account = active("cert.ro").await;
    let domain = DomainName::parse("cert.ro").unwrap();
    let zone = store.account_zone(account).await.unwrap().unwrap();
    let www = OwnerName::parse("www", &domain).unwrap();
    let elsewhere = RrSet::new(www.clone(), RecordType::A, 300, ["198.51.100.9"]).unwrap();
    drover::commands::set_rrset(store, &ctx(), zone.id, elsewhere)
        .await
        .unwrap();
    let (requested, job) = drover::commands::request_certificate(store, &ctx(), account)
        .await
        .unwrap();
    assert_eq!(requested.state, CertificateState::Requested);
    let scheduled = || async { store.job(job).await.unwrap().state == "scheduled" };
    let waiting = wait_for(|| async {
        let c = certificate(account).await;
        (c.waiting_for.is_some() && scheduled().await).then_some(c)
    })
    .await;
    assert!(
        waiting
            .waiting_for
            .as_deref()
            .unwrap()
            .contains("DNS of cert.ro to point at vm1"),
        "{waiting:?}"
    );
    assert_eq!(
        f.sim.calls_naming("cert.ro", "generate-letsencrypt-cert"),
        0
    );
    // Pointed at the server, asked again: issued, installed, renewed by the server.
    let home = RrSet::new(www, RecordType::A, 300, ["192.0.2.7"]).unwrap();
    drover::commands::set_rrset(store, &ctx(), zone.id, home)
        .await
        .unwrap();
    let (_, again) = drover::commands::request_certificate(store, &ctx(), account)
        .await
        .unwrap();
    assert_eq!(again, job, "the waiting job is the one brought forward");
    let ended = crate::finished(store, job).await;
    assert_eq!(ended.state, "completed", "{ended:?}");
    let issued = certificate(account).await;
    assert_eq!(issued.state, CertificateState::Issued, "{issued:?}");
    let days = drover_core::days_left(issued.expires_at.unwrap(), jiff::Timestamp::now());
    assert!((88..=90).contains(&days), "{issued:?}");
    let on_server = f.sim.with_state(|s| s.domains["cert.ro"].clone());
    assert!(on_server.certificate_expiry.is_some() && on_server.certificate_renew);
    assert_eq!(
        f.sim.calls_naming("cert.ro", "generate-letsencrypt-cert"),
        1
    );

    // The server renews it; drover watches that it did, from the usage sync's listing.
    use drover::commands::{Requested, request};
    let sim = &f.sim;
    let not_renewed = |expiry_days: u64| async move {
        let now = jiff::Timestamp::now().as_second().unsigned_abs();
        sim.with_state(|s| {
            s.domains.get_mut("cert.ro").unwrap().certificate_expiry =
                Some(now + expiry_days * 86_400);
        });
        let sync = request(store, &ctx(), Requested::UsageSync { server: None })
            .await
            .unwrap();
        assert_eq!(crate::finished(store, sync).await.state, "completed");
        let seen = certificate(account).await.expires_at.unwrap();
        assert_eq!(
            drover_core::days_left(seen, jiff::Timestamp::now()),
            expiry_days as i64 - 1
        );
        let check = Requested::HealthCheck {
            server: None,
            plans: false,
        };
        let health = crate::finished(store, request(store, &ctx(), check).await.unwrap()).await;
        let output = health.output.unwrap();
        let overdue: Vec<String> = output["certificates_not_renewed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["domain"].as_str().unwrap().to_owned())
            .collect();
        overdue
    };
    assert_eq!(
        not_renewed(10).await,
        ["cert.ro"],
        "10 days left: a renewal was missed"
    );
    assert!(not_renewed(80).await.is_empty(), "renewed");

    // Let's Encrypt cannot be reached: failed, with the server's own cause, tried again later.
    f.sim.with_state(|s| s.acme = Acme::Unreachable);
    let account = active("nocert.ro").await;
    let (_, job) = drover::commands::request_certificate(store, &ctx(), account)
        .await
        .unwrap();
    let mut failed = Vec::new();
    for n in 1..=5 {
        let c = wait_for(|| async {
            let c = certificate(account).await;
            let scheduled = store.job(job).await.unwrap().state == "scheduled";
            (c.failures == n && scheduled).then_some(c)
        })
        .await;
        assert_eq!(c.state, CertificateState::Failed);
        assert!(
            c.last_error
                .as_deref()
                .unwrap()
                .contains("Name or service not known"),
            "{c:?}"
        );
        failed.push(c);
        if n < 5 {
            // An operator asks again at once: the waiting job goes now, not after its wait.
            let (_, again) = drover::commands::request_certificate(store, &ctx(), account)
                .await
                .unwrap();
            assert_eq!(again, job);
        }
    }
    let first_wait = failed[0].next_attempt_at.unwrap() - failed[0].updated_at;
    assert!(
        (298..=300).contains(&first_wait.get_seconds()),
        "five minutes after the first failure: {:?}",
        failed[0]
    );
    // A sixth request within the hour is refused before anything is asked.
    let err = drover::commands::request_certificate(store, &ctx(), account)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("5 failed validations per name and hour"),
        "{err}"
    );
    let last = certificate(account).await;
    let hour_after_first = failed[0].updated_at + jiff::SignedDuration::from_hours(1);
    assert!(
        last.next_attempt_at.unwrap() >= hour_after_first,
        "drover waits for the hour to pass too: {last:?}"
    );
    assert_eq!(store.job(job).await.unwrap().state, "scheduled");
    assert_eq!(
        f.sim.calls_naming("nocert.ro", "generate-letsencrypt-cert"),
        5
    );
    assert_eq!(f.sim.with_state(|s| s.acme_rate_limited), 0);

    // Suspended or without a website, there is nothing Let's Encrypt could validate.
    let suspended = active("pauza.ro").await;
    let service = store.account(suspended).await.unwrap().service_id;
    let moved = crate::transition_service(
        store,
        &ctx(),
        service,
        Transition::Suspend,
        Some("unpaid".into()),
    )
    .await
    .unwrap();
    crate::finished(store, moved.job_id).await;
    let err = drover::commands::request_certificate(store, &ctx(), suspended)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("suspended"), "{err}");
    let mail_only = serde_json::json!({"name": "Mail only", "features": ["dir", "mail"]});
    let plan =
        drover::commands::create_plan(store, &ctx(), serde_json::from_value(mail_only).unwrap())
            .await
            .unwrap();
    let id = service_on(store, plan.id, "posta.ro").await;
    let pending = store.service(id).await.unwrap().account_id;
    let err = drover::commands::request_certificate(store, &ctx(), pending)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("feature web"), "{err}");

    // Forgotten: drover stops asking; the job finds nothing to do.
    drover::commands::forget_certificate(store, &ctx(), account)
        .await
        .unwrap();
    assert!(store.certificate(account).await.unwrap().is_none());
    assert_eq!(store.job(job).await.unwrap().state, "cancelled");
}

/// An operator forgets a certificate request while its job is asking the server: the job is
/// cancelled, not left waiting to ask again (it may have recorded a failure and be about to
/// wait minutes).
async fn a_certificate_forgotten_while_its_job_asks_ends_the_job(f: Fleetwork) {
    use drover_testkit::virtualmin::{Fault, Gate};
    let store = &*f.store;
    let account = active_on_addressed_server(store, "held.ro").await;
    // The server runs the request and holds its answer until the test lets it go.
    let gate = Gate::default();
    f.sim
        .set_fault_rate(1.0, vec![Fault::AnswerWhenReleased(gate.clone())]);
    let (_, job) = drover::commands::request_certificate(store, &ctx(), account)
        .await
        .unwrap();
    wait_for(|| async {
        (f.sim.calls_naming("held.ro", "generate-letsencrypt-cert") > 0).then_some(())
    })
    .await;
    assert_eq!(store.job(job).await.unwrap().state, "running");
    drover::commands::forget_certificate(store, &ctx(), account)
        .await
        .unwrap();
    f.sim.set_fault_rate(0.0, Vec::new());
    gate.release("held.ro");
    let ended = crate::finished(store, job).await;
    assert_eq!(ended.state, "cancelled", "{ended:?}");
    assert!(store.certificate(account).await.unwrap().is_none());
}

/// An account made active on vm1, given an address first for the account's zone to point at.
async fn active_on_addressed_server(store: &dyn Store, domain: &str) -> drover_core::AccountId {
    let address = serde_json::from_value(serde_json::json!({"ipv4": "192.0.2.7"})).unwrap();
    drover::commands::update_server(store, &ctx(), drover_core::ServerId(1), address)
        .await
        .unwrap();
    let id = service_on(store, drover_core::PlanId(1), domain).await;
    let moved = crate::transition_service(store, &ctx(), id, Transition::Activate, None)
        .await
        .unwrap();
    assert_eq!(
        crate::finished(store, moved.job_id).await.state,
        "completed"
    );
    moved.account.id
}

/// Polls `check` until it gives a value.
async fn wait_for<T, F, Fut>(check: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    // Long enough for the leader's periodic work to start on a loaded machine.
    for _ in 0..600 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the awaited state never came");
}

/// Holds new jobs (the emergency stop) so that changes recorded meanwhile join one converge,
/// as they do when made faster than a worker picks the job up.
async fn hold_jobs(store: &dyn Store) -> HeldJobs<'_> {
    drover::commands::set_provisioning_paused(store, &ctx(), true)
        .await
        .unwrap();
    HeldJobs(store)
}

struct HeldJobs<'a>(&'a dyn Store);

impl HeldJobs<'_> {
    async fn release(self) {
        drover::commands::set_provisioning_paused(self.0, &ctx(), false)
            .await
            .unwrap();
    }
}

async fn last_converge(store: &dyn Store, account: drover_core::AccountId) -> JobId {
    let filter = JobFilter {
        account_id: Some(account),
        ..JobFilter::default()
    };
    let jobs = store.jobs(filter).await.unwrap();
    jobs.iter()
        .filter(|j| j.kind == "converge_account")
        .map(|j| j.id)
        .max()
        .expect("a converge job")
}

/// The programs a job called, in order.
async fn programs_called(store: &dyn Store, job: JobId) -> Vec<String> {
    let calls = store.job_calls(job).await.unwrap();
    calls
        .iter()
        .map(|c| c.call.split(' ').next().unwrap().to_owned())
        .collect()
}

fn destination(name: &str, keep_daily: u32, default: bool) -> drover_core::BackupDestinationSpec {
    drover_core::BackupDestinationSpec {
        name: drover_core::ServerName::parse(name).unwrap(),
        location: drover_core::BackupLocation::parse("/var/backups").unwrap(),
        credentials: None,
        key_file: None,
        host_key: None,
        keep_daily,
        keep_weekly: 0,
        default,
    }
}

async fn an_account_is_backed_up_its_failures_kept_and_old_archives_pruned(f: Fleetwork) {
    use drover_core::BackupState;
    let store = &*f.store;
    let id = service_on(store, drover_core::PlanId(1), "arhiva.ro").await;
    // Not on a server yet: refused, nothing queued.
    let pending = store.service(id).await.unwrap().account_id;
    let err = drover::commands::backup_account(store, &ctx(), pending, None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "arhiva.ro cannot be backed up: the account is on no server yet"
    );
    let moved = crate::transition_service(store, &ctx(), id, Transition::Activate, None)
        .await
        .unwrap();
    assert_eq!(
        crate::finished(store, moved.job_id).await.state,
        "completed"
    );
    let account = moved.account.id;
    // No destination named, and none is the default.
    let err = drover::commands::backup_account(store, &ctx(), account, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("none is the default"), "{err}");
    let local = drover::commands::create_backup_destination(
        store,
        &ctx(),
        &f.secrets,
        destination("local", 1, false),
    )
    .await
    .unwrap();
    let backup = async |f: &Fleetwork| {
        let store = &*f.store;
        let job = drover::commands::backup_account(store, &ctx(), account, Some(local.id))
            .await
            .unwrap();
        let ended = crate::finished(store, job).await;
        assert_eq!(ended.state, "completed", "{ended:?}");
        ended.output.unwrap()
    };

    let first = backup(&f).await;
    let recorded = store.last_good_backup(account).await.unwrap().unwrap();
    assert_eq!(first["backup_id"], serde_json::json!(recorded.id));
    assert!(
        recorded
            .archive
            .starts_with("/var/backups/arhiva.ro/arhiva.ro-"),
        "{recorded:?}"
    );
    // The size the server printed (58.59 KiB for the simulator's 60000 bytes).
    assert_eq!(recorded.size_bytes, Some(59_996));
    assert_eq!(recorded.server_id, Some(drover_core::ServerId(1)));
    let on_server = |archive: &str| f.sim.with_state(|s| s.disk.has_archive(archive));
    assert!(on_server(&recorded.archive));

    // A destination whose directory the server lacks: it makes the account's directory in
    // it, not the destination's own; the failure names it.
    let mut missing = destination("missing", 1, false);
    missing.location = drover_core::BackupLocation::parse("/srv/backups").unwrap();
    let missing = drover::commands::create_backup_destination(store, &ctx(), &f.secrets, missing)
        .await
        .unwrap();
    let job = drover::commands::backup_account(store, &ctx(), account, Some(missing.id))
        .await
        .unwrap();
    let output = crate::finished(store, job).await.output.unwrap();
    assert!(
        output["error"]
            .as_str()
            .unwrap()
            .starts_with("Failed to create directory /srv/backups/arhiva.ro : mkdir:"),
        "{output}"
    );

    // A full disk: the backup is recorded as failed with the server's own message and log,
    // the job itself completes (it is an outcome, not a fault), and the archive before stays.
    f.sim.with_state(|s| s.backup_disk_full = true);
    let failed = backup(&f).await;
    let message = failed["error"].as_str().unwrap();
    assert!(
        message.ends_with("for writing : No space left on device"),
        "{failed}"
    );
    let last = &store
        .backups(drover_store::BackupFilter {
            account: Some(account),
            ..Default::default()
        })
        .await
        .unwrap()[0];
    assert_eq!(last.state, BackupState::Failed);
    assert_eq!(last.error.as_deref(), Some(message));
    let log = last.log.as_deref().unwrap();
    assert!(
        log.contains("No space left on device") && log.contains("Error"),
        "{log}"
    );
    assert!(
        !log.contains("Starting backup"),
        "the progress before the failure: {log}"
    );
    assert_eq!(
        store.last_good_backup(account).await.unwrap().unwrap().id,
        recorded.id
    );
    assert!(on_server(&recorded.archive));

    // Room again: the destination keeps one a day, so the older archive is deleted from the
    // server and its record marked pruned.
    f.sim.with_state(|s| s.backup_disk_full = false);
    let second = backup(&f).await;
    assert_eq!(
        second["pruned"],
        serde_json::json!([recorded.id]),
        "{second}"
    );
    // The older archive, and whatever the two failed backups since may have left.
    let deletions = f.sim.stats().calls_by_program.get("delete-backup").copied();
    assert_eq!(deletions, Some(3));
    assert!(!on_server(&recorded.archive));
    let newest = store.last_good_backup(account).await.unwrap().unwrap();
    assert!(on_server(&newest.archive));
    let states: Vec<BackupState> = store
        .backups(drover_store::BackupFilter {
            account: Some(account),
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|b| b.state)
        .collect();
    assert_eq!(
        states,
        [
            BackupState::Succeeded,
            BackupState::Failed,
            BackupState::Failed,
            BackupState::Pruned
        ]
    );

    // A destination holding the history is kept.
    let err = drover::commands::delete_backup_destination(store, &ctx(), local.id)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("the accounts' history"), "{err}");
}

/// The output of a fleet health check an operator asks for, once it ran.
async fn fleet_health(store: &dyn Store) -> serde_json::Value {
    let asked = drover::commands::Requested::HealthCheck {
        server: None,
        plans: false,
    };
    let job = drover::commands::request(store, &ctx(), asked)
        .await
        .unwrap();
    crate::finished(store, job).await.output.unwrap()
}

async fn scheduled_backups_go_to_the_default_destination_and_late_ones_are_named(f: Fleetwork) {
    let store = &*f.store;
    // A plan whose accounts are not backed up on a schedule.
    let never = serde_json::json!({"name": "Never", "features": ["dir", "web", "dns"],
                                   "backup_interval_hours": 0});
    let never =
        drover::commands::create_plan(store, &ctx(), serde_json::from_value(never).unwrap())
            .await
            .unwrap()
            .id;
    f.sim.with_state(|s| s.plans.push("Never".into()));
    let mut accounts = Vec::new();
    for (domain, plan) in [
        ("zi1.ro", drover_core::PlanId(1)),
        ("zi2.ro", drover_core::PlanId(1)),
        ("zi3.ro", never),
    ] {
        let id = service_on(store, plan, domain).await;
        let moved = crate::transition_service(store, &ctx(), id, Transition::Activate, None)
            .await
            .unwrap();
        assert_eq!(
            crate::finished(store, moved.job_id).await.state,
            "completed"
        );
        accounts.push(moved.account.id);
    }
    // Without a default destination, nothing is scheduled and nothing is late.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(f.sim.with_state(|s| s.disk.archives().is_empty()));
    let output = fleet_health(store).await;
    assert_eq!(output["backups_overdue_count"], 0, "{output}");

    drover::commands::create_backup_destination(
        store,
        &ctx(),
        &f.secrets,
        destination("nightly", 7, true),
    )
    .await
    .unwrap();
    // Every account is backed up by the schedule, to the default destination.
    let (scheduled, unscheduled) = (&accounts[..2], accounts[2]);
    let backed_up = wait_for(|| async {
        let mut all = Vec::new();
        for account in scheduled {
            all.push(store.last_good_backup(*account).await.unwrap()?);
        }
        Some(all)
    })
    .await;
    for backup in &backed_up {
        assert!(backup.archive.starts_with("/var/backups/zi"), "{backup:?}");
    }
    assert_eq!(store.last_good_backup(unscheduled).await.unwrap(), None);
    // Backups failing from now on: after twice the interval the accounts are named late.
    f.sim.with_state(|s| s.backup_disk_full = true);
    let late = wait_for(|| async {
        let output = fleet_health(store).await;
        (output["backups_overdue_count"] == 2).then_some(output)
    })
    .await;
    let named: Vec<&str> = late["backups_overdue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["domain"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["zi1.ro", "zi2.ro"]);
    // Late may be named before the schedule's next try; that try fails and is recorded.
    let failed = wait_for(|| async {
        let failed = store
            .backups(drover_store::BackupFilter {
                state: Some(drover_core::BackupState::Failed),
                ..Default::default()
            })
            .await
            .unwrap();
        (!failed.is_empty()).then_some(failed)
    })
    .await;
    assert!(
        failed[0]
            .error
            .as_deref()
            .is_some_and(|e| e.ends_with("No space left on device")),
        "{failed:?}"
    );
}

async fn an_account_is_restored_from_its_backup_once_its_domain_is_repeated(f: Fleetwork) {
    let store = &*f.store;
    let id = service_on(store, drover_core::PlanId(1), "refacut.ro").await;
    let moved = crate::transition_service(store, &ctx(), id, Transition::Activate, None)
        .await
        .unwrap();
    assert_eq!(
        crate::finished(store, moved.job_id).await.state,
        "completed"
    );
    let account = moved.account.id;
    // Nothing to restore from yet.
    let err = drover::commands::plan_restore(store, account, None, None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "refacut.ro cannot be restored: there is no good backup to restore it from"
    );
    let local = drover::commands::create_backup_destination(
        store,
        &ctx(),
        &f.secrets,
        destination("local", 7, true),
    )
    .await
    .unwrap();
    f.sim
        .put_file(
            "refacut.ro",
            "public_html/index.html",
            "the customer's page",
        )
        .unwrap();
    let job = drover::commands::backup_account(store, &ctx(), account, Some(local.id))
        .await
        .unwrap();
    assert_eq!(crate::finished(store, job).await.state, "completed");
    let backup = store.last_good_backup(account).await.unwrap().unwrap();
    // The customer's site is broken afterwards.
    f.sim
        .put_file("refacut.ro", "public_html/index.html", "broken")
        .unwrap();

    let plan = drover::commands::plan_restore(store, account, None, None)
        .await
        .unwrap();
    assert_eq!(plan.backup.id, backup.id);
    assert_eq!(plan.server, "vm1");
    assert!(
        plan.replaces
            .starts_with("the files, mail and databases of refacut.ro on vm1 as they are now"),
        "{plan:?}"
    );
    // The domain must be repeated: refused, nothing queued, nothing changed.
    let jobs_before = store.jobs(JobFilter::default()).await.unwrap().len();
    let err = drover::commands::restore_account(
        store,
        &ctx(),
        account,
        None,
        drover::commands::RestoreOnto::ItsServer,
        "refacut.com",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            drover::commands::Error::Rule(drover_core::Error::ConfirmationMismatch { .. })
        ),
        "{err}"
    );
    assert_eq!(
        store.jobs(JobFilter::default()).await.unwrap().len(),
        jobs_before
    );
    assert_eq!(
        f.sim
            .file("refacut.ro", "public_html/index.html")
            .as_deref(),
        Some("broken")
    );

    let (_, job) = drover::commands::restore_account(
        store,
        &ctx(),
        account,
        None,
        drover::commands::RestoreOnto::ItsServer,
        "REFACUT.ro",
    )
    .await
    .unwrap();
    let ended = crate::finished(store, job).await;
    assert_eq!(ended.state, "completed", "{ended:?}");
    let output = ended.output.unwrap();
    assert_eq!(
        (output["restored"].clone(), output["backup_id"].clone()),
        (
            serde_json::json!("refacut.ro"),
            serde_json::json!(backup.id)
        )
    );
    assert_eq!(
        f.sim
            .file("refacut.ro", "public_html/index.html")
            .as_deref(),
        Some("the customer's page")
    );
    assert_eq!(f.sim.calls_naming("refacut.ro", "restore-domain"), 1);
    // drover's records are applied on top: a converge and the password, both done.
    wait_for(|| async {
        let open = store
            .jobs(JobFilter {
                account_id: Some(account),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .filter(|j| !["completed", "discarded", "cancelled"].contains(&j.state.as_str()))
            .count();
        (open == 0).then_some(())
    })
    .await;
    let kinds: Vec<String> = store
        .jobs(JobFilter {
            account_id: Some(account),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.kind)
        .collect();
    assert!(
        kinds.contains(&"set_account_password".to_owned()),
        "{kinds:?}"
    );
    let audited = store
        .audit_events(drover_store::AuditFilter {
            subject: Some(format!("account:{account}")),
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = audited.iter().map(|e| e.action.as_str()).collect();
    assert!(
        actions.contains(&"account.restore_requested"),
        "{actions:?}"
    );
    assert!(actions.contains(&"account.restored"), "{actions:?}");

    // A backup retention deleted is no longer restorable.
    store
        .mark_pruned(&ctx(), account, &[backup.id])
        .await
        .unwrap();
    let err = drover::commands::plan_restore(store, account, Some(backup.id), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("the backup's archive was deleted by retention"),
        "{err}"
    );
}

/// An SSH host as a destination: a real sshd (drover checks its host key against the pin
/// before each use), and the simulated servers' `scp` to it. An archive there is restored by
/// another server; a changed key stops the backup before the server is asked; a refused
/// login is recorded with ssh's own words; the password is in no record.
async fn backups_go_to_an_ssh_host_whose_key_is_pinned_and_password_kept_out_of_sight(
    f: Fleetwork,
) {
    use drover_core::{BackupState, SshHostKey};
    const PASSWORD: &str = "vault-Passw0rd-1";
    let vault = crate::Vault::start("vault", PASSWORD).await;
    let (sshd, host) = (&vault.sshd, &vault.host);
    f.sim.with_state(|s| s.ssh_hosts.push(host.clone()));
    let store = &*f.store;
    let id = service_on(store, drover_core::PlanId(1), "seif.ro").await;
    let moved = crate::transition_service(store, &ctx(), id, Transition::Activate, None)
        .await
        .unwrap();
    assert_eq!(
        crate::finished(store, moved.job_id).await.state,
        "completed"
    );
    let account = moved.account.id;
    let destination = vault.make_default(store, &f.secrets.dir).await;
    f.sim
        .put_file("seif.ro", "public_html/index.html", "the customer's page")
        .unwrap();
    let backup = async || {
        let job = drover::commands::backup_account(store, &ctx(), account, None)
            .await
            .unwrap();
        let ended = crate::finished(store, job).await;
        assert_eq!(ended.state, "completed", "{ended:?}");
        (job, ended.output.unwrap())
    };

    let (job, output) = backup().await;
    let good = store.last_good_backup(account).await.unwrap().unwrap();
    assert_eq!(output["backup_id"], serde_json::json!(good.id), "{output}");
    let prefix = format!("{}/seif.ro-", vault.location());
    assert!(good.archive.starts_with(&prefix), "{good:?}");
    let path = good
        .archive
        .split_once(&format!(":{}:", sshd.port))
        .unwrap()
        .1;
    assert_eq!(host.archives(), [path]);
    let calls = store.job_calls(job).await.unwrap();
    assert!(
        calls
            .iter()
            .any(|c| c.call.contains(&format!("--dest \"{}\"", good.archive))),
        "{calls:?}"
    );

    // The site breaks; the account comes back from the host.
    f.sim
        .put_file("seif.ro", "public_html/index.html", "broken")
        .unwrap();
    let (_, job) = drover::commands::restore_account(
        store,
        &ctx(),
        account,
        None,
        drover::commands::RestoreOnto::ItsServer,
        "seif.ro",
    )
    .await
    .unwrap();
    assert_eq!(crate::finished(store, job).await.state, "completed");
    assert_eq!(
        f.sim.file("seif.ro", "public_html/index.html").as_deref(),
        Some("the customer's page")
    );

    // Another key pinned (the host replaced, say): nothing is asked of the server.
    let backups_asked = f.sim.calls_naming("seif.ro", "backup-domain");
    let other = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let patch = drover_core::BackupDestinationPatch {
        host_key: Some(SshHostKey::parse(other).unwrap()),
        ..Default::default()
    };
    drover::commands::update_backup_destination(store, &ctx(), &f.secrets, destination.id, patch)
        .await
        .unwrap();
    let (_, output) = backup().await;
    let error = output["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "presented the host key {}, not the pinned {other}",
            sshd.host_key
        )),
        "{output}"
    );
    assert_eq!(
        f.sim.calls_naming("seif.ro", "backup-domain"),
        backups_asked
    );
    // And no restore from it either.
    let (_, job) = drover::commands::restore_account(
        store,
        &ctx(),
        account,
        None,
        drover::commands::RestoreOnto::ItsServer,
        "seif.ro",
    )
    .await
    .unwrap();
    let ended = crate::finished(store, job).await;
    assert!(format!("{ended:?}").contains("not the pinned"), "{ended:?}");
    assert_eq!(f.sim.calls_naming("seif.ro", "restore-domain"), 1);

    // The right key again, and a password the host no longer takes: ssh's own words.
    let patch = drover_core::BackupDestinationPatch {
        host_key: Some(SshHostKey::parse(&sshd.host_key).unwrap()),
        ..Default::default()
    };
    drover::commands::update_backup_destination(store, &ctx(), &f.secrets, destination.id, patch)
        .await
        .unwrap();
    host.set_password("rotated-on-the-host-1");
    let (job, output) = backup().await;
    assert!(
        output["error"]
            .as_str()
            .unwrap()
            .contains("Permission denied (publickey,password)"),
        "{output}"
    );
    let failed = &store
        .backups(drover_store::BackupFilter {
            account: Some(account),
            ..Default::default()
        })
        .await
        .unwrap()[0];
    assert_eq!(failed.state, BackupState::Failed);
    let calls = format!("{:?}", store.job_calls(job).await.unwrap());
    let records = format!("{failed:?} {calls} {output}");
    assert!(!records.contains(PASSWORD), "{records}");
    // The host takes a key instead: a key file on the servers replaces the password, and
    // the servers log in with it (its path, not a secret, in the call's record).
    host.authorize_key_file("/root/.ssh/drover_backup_ed25519");
    let patch = drover_core::BackupDestinationPatch {
        key_file: Some(drover_core::SshKeyFile::parse("/root/.ssh/drover_backup_ed25519").unwrap()),
        ..Default::default()
    };
    let keyed = drover::commands::update_backup_destination(
        store,
        &ctx(),
        &f.secrets,
        destination.id,
        patch,
    )
    .await
    .unwrap();
    assert_eq!(keyed.spec.credentials, None);
    let (job, output) = backup().await;
    let good = store.last_good_backup(account).await.unwrap().unwrap();
    assert_eq!(output["backup_id"], serde_json::json!(good.id), "{output}");
    let calls = format!("{:?}", store.job_calls(job).await.unwrap());
    assert!(
        calls.contains(":|root|.ssh|drover_backup_ed25519@127.0.0.1:"),
        "{calls}"
    );
    // Holding backups, the destination keeps its host: another one is another destination.
    let elsewhere = drover_core::BackupDestinationPatch {
        location: Some(
            drover_core::BackupLocation::parse("ssh://drover-backup@vault.example.net:/srv")
                .unwrap(),
        ),
        ..Default::default()
    };
    let err = drover::commands::update_backup_destination(
        store,
        &ctx(),
        &f.secrets,
        destination.id,
        elsewhere,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            drover::commands::Error::Rule(drover_core::Error::DestinationChangeRefused { .. })
        ),
        "{err}"
    );
    // A location with the password in it is refused, and not echoed.
    let err = drover_core::BackupLocation::parse("ssh://drover-backup:hunter2@vault:/srv")
        .unwrap_err()
        .to_string();
    assert!(
        !err.contains("hunter2") && err.contains("credentials"),
        "{err}"
    );
}
