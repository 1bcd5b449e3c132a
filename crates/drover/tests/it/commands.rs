//! The command layer on both databases: billing's and operators' changes, the rules they are
//! held to, and what they write together (the change, its job, its audit event) or not at all.

use std::sync::Arc;

use drover::commands;
use drover_core::{CustomerSpec, DesiredState, PlanId, PlanSpec, ServiceStatus, Transition};
use drover_store::{
    AccountFilter, AuditFilter, JobFilter, JobState, Page, Reference, RequestContext, Store,
    StoreError,
};

/// A store on one database, kept alive with whatever holds it.
pub struct Store_(
    Arc<dyn Store>,
    #[allow(dead_code)] Box<dyn std::any::Any + Send>,
);

async fn sqlite() -> Store_ {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("drover.db").display());
    Store_(drover_store::open(&url).await.unwrap(), Box::new(dir))
}

async fn postgres() -> Store_ {
    let db = drover_testkit::TestPostgres::create()
        .await
        .expect("PostgreSQL for tests");
    Store_(drover_store::open(db.url()).await.unwrap(), Box::new(db))
}

drover_testkit::on_both_databases!(
    postgres: postgres,
    sqlite: sqlite;
    lifecycle_moves_set_the_account_and_enqueue_one_job,
    an_illegal_move_changes_nothing,
    protection_changes_need_the_domain_repeated,
    plan_changes_queue_a_converge,
    a_change_after_a_converge_gave_up_gets_a_job_of_its_own,
    refused_input_changes_nothing,
    an_operator_moves_a_server_until_it_is_retired,
    a_migration_is_checked_stepped_and_confirmed,
    failed_accounts_are_listed_retried_and_cleared,
    the_last_operator_token_is_never_revoked,
    a_changed_plan_queues_its_sync_to_the_servers,
    a_zone_changes_whole_and_refuses_what_would_break_it,
    a_drift_repair_records_its_actions_and_converges_what_it_enforces,
    work_an_operator_asks_for_names_what_exists_and_is_audited,
    an_adoption_records_accounts_as_found_all_or_nothing,
    what_an_operator_creates_is_audited_and_a_zone_queues_its_sync,
    mailboxes_are_held_to_their_rules_and_each_change_queues_a_converge,
    databases_are_held_to_their_rules_and_each_change_is_audited,
    a_plan_change_past_what_the_account_holds_is_refused_unless_forced,
    a_narrower_plan_is_refused_while_its_accounts_hold_more_unless_forced,
    a_waiting_restore_or_backup_elsewhere_is_not_joined_by_another,
);

fn ctx() -> RequestContext {
    RequestContext {
        actor: "test".into(),
        correlation_id: "corr-1".into(),
    }
}

fn plan_spec(name: &str) -> PlanSpec {
    serde_json::from_value(serde_json::json!({"name": name, "features": ["web", "dns"]})).unwrap()
}

/// A pending service for `domain`, with the first plan (made if there is none).
async fn service(store: &dyn Store, domain: &str) -> drover_store::Service {
    let customer = commands::create_customer(
        store,
        &ctx(),
        CustomerSpec::new("Ana Pop", None, None).unwrap(),
    )
    .await
    .unwrap();
    let plan = match store.plans(Page::default()).await.unwrap().first() {
        Some(plan) => plan.id,
        None => {
            commands::create_plan(store, &ctx(), plan_spec("Web"))
                .await
                .unwrap()
                .id
        }
    };
    commands::create_service(store, &ctx(), customer.id, plan, domain, false)
        .await
        .unwrap()
        .service
}

fn server_spec(name: &str) -> drover_core::ServerSpec {
    serde_json::from_value(serde_json::json!({
        "name": name, "hostname": format!("{name}.example.net"), "capacity": 100,
        "credentials": "env:VM_PASSWORD", "ipv4": "192.0.2.10"
    }))
    .unwrap()
}

/// The actions audited about `subject`, in order.
async fn audited(store: &dyn Store, subject: impl Into<String>) -> Vec<String> {
    let filter = AuditFilter {
        subject: Some(subject.into()),
        page: Page::default(),
    };
    let events = store.audit_events(filter).await.unwrap();
    events.into_iter().map(|e| e.action).collect()
}

async fn audit_count(store: &dyn Store) -> usize {
    let filter = AuditFilter {
        subject: None,
        page: Page::new(None, Some(1000)),
    };
    store.audit_events(filter).await.unwrap().len()
}

async fn lifecycle_moves_set_the_account_and_enqueue_one_job(store: Store_) {
    let store = &*store.0;
    let svc = service(store, "example.ro").await;

    let activated = commands::transition_service(store, &ctx(), svc.id, Transition::Activate, None)
        .await
        .unwrap();
    assert_eq!(activated.service.status, ServiceStatus::Active);
    assert_eq!(activated.account.desired_state, DesiredState::Enabled);
    assert_eq!(activated.account.desired_generation, 2);
    assert!(!activated.joined_waiting_job);

    let job = store.job(activated.job_id).await.unwrap();
    assert_eq!(job.kind, "converge_account");
    assert_eq!(job.state, "available");
    assert_eq!(job.account_id, Some(svc.account_id));
    assert_eq!(job.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(job.args["account_id"], svc.account_id.get());

    // While that job waits, a second move joins it instead of queueing another.
    let suspended = commands::transition_service(
        store,
        &ctx(),
        svc.id,
        Transition::Suspend,
        Some("unpaid invoice"),
    )
    .await
    .unwrap();
    assert_eq!(suspended.job_id, activated.job_id);
    assert!(suspended.joined_waiting_job);
    assert_eq!(suspended.account.desired_state, DesiredState::Disabled);
    assert_eq!(
        suspended.account.suspend_reason.as_deref(),
        Some("unpaid invoice")
    );
    assert_eq!(suspended.account.desired_generation, 3);

    let for_account = store
        .jobs(JobFilter {
            account_id: Some(svc.account_id),
            states: vec![JobState::Available],
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(for_account.len(), 1);

    let unsuspended =
        commands::transition_service(store, &ctx(), svc.id, Transition::Unsuspend, None)
            .await
            .unwrap();
    assert_eq!(unsuspended.account.suspend_reason, None);
    let terminated =
        commands::transition_service(store, &ctx(), svc.id, Transition::Terminate, None)
            .await
            .unwrap();
    assert_eq!(terminated.service.status, ServiceStatus::Terminated);
    assert_eq!(terminated.account.desired_state, DesiredState::Absent);
    assert!(terminated.account.protected_from_deletion);

    let actions = audited(store, format!("service:{}", svc.id)).await;
    assert_eq!(
        actions,
        [
            "service.create",
            "service.activate",
            "service.suspend",
            "service.unsuspend",
            "service.terminate"
        ]
    );
}

async fn an_illegal_move_changes_nothing(store: Store_) {
    let store = &*store.0;
    let svc = service(store, "example.ro").await;
    let audit_before = audit_count(store).await;
    let err = commands::transition_service(store, &ctx(), svc.id, Transition::Suspend, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            commands::Error::Rule(drover_core::Error::IllegalTransition {
                from: ServiceStatus::Pending,
                action: Transition::Suspend
            })
        ),
        "{err:?}"
    );
    assert_eq!(store.service(svc.id).await.unwrap(), svc);
    assert_eq!(
        store
            .account(svc.account_id)
            .await
            .unwrap()
            .desired_generation,
        1
    );
    assert!(
        store.jobs(JobFilter::default()).await.unwrap().is_empty(),
        "no job without a change"
    );
    assert_eq!(audit_count(store).await, audit_before);
    assert!(matches!(
        commands::transition_service(
            store,
            &ctx(),
            drover_core::ServiceId(999),
            Transition::Activate,
            None
        )
        .await,
        Err(commands::Error::Store(StoreError::NotFound {
            what: "service",
            ..
        }))
    ));
}

async fn protection_changes_need_the_domain_repeated(store: Store_) {
    let store = &*store.0;
    let svc = service(store, "știri.ro").await;
    let err = commands::set_protection(store, &ctx(), svc.account_id, false, "stiri.ro")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            commands::Error::Rule(drover_core::Error::ConfirmationMismatch { .. })
        ),
        "{err:?}"
    );
    assert!(
        store
            .account(svc.account_id)
            .await
            .unwrap()
            .protected_from_deletion
    );
    let account = commands::set_protection(store, &ctx(), svc.account_id, false, "XN--TIRI-PXB.RO")
        .await
        .unwrap();
    assert!(
        !account.protected_from_deletion,
        "punycode or Unicode, any case"
    );
    let jobs = store
        .jobs(JobFilter {
            account_id: Some(svc.account_id),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "lifting protection queues a converge");
    commands::set_protection(store, &ctx(), svc.account_id, true, "știri.ro")
        .await
        .unwrap();
    let actions = audited(store, format!("account:{}", svc.account_id)).await;
    assert_eq!(actions, ["account.unprotect", "account.protect"]);
}

async fn plan_changes_queue_a_converge(store: Store_) {
    let store = &*store.0;
    let svc = service(store, "example.ro").await;
    let other = commands::create_plan(store, &ctx(), plan_spec("Other"))
        .await
        .unwrap();
    let moved = commands::change_plan(store, &ctx(), svc.id, other.id, false)
        .await
        .unwrap();
    assert_eq!(moved.service.plan_id, other.id);
    assert_eq!(moved.account.desired_generation, 2);
    assert_eq!(
        store.job(moved.job_id).await.unwrap().kind,
        "converge_account"
    );
    let err = commands::change_plan(store, &ctx(), svc.id, PlanId(404), false)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        commands::Error::Store(StoreError::UnknownReference {
            reference: Reference::Plan,
            ..
        })
    ));
}

async fn a_change_after_a_converge_gave_up_gets_a_job_of_its_own(store: Store_) {
    let store = &*store.0;
    let sold = service(store, "giving-up.ro").await;
    let moved = commands::transition_service(store, &ctx(), sold.id, Transition::Activate, None)
        .await
        .unwrap();
    let generation = moved.account.desired_generation;
    // The job read an older generation: a change joined it, it must run again.
    assert!(
        !store
            .end_converge(moved.account.id, generation - 1, moved.job_id)
            .await
            .unwrap()
    );
    assert!(
        store
            .end_converge(moved.account.id, generation, moved.job_id)
            .await
            .unwrap()
    );
    // The job is still running in River's eyes: the next change must not join it.
    let next =
        commands::transition_service(store, &ctx(), sold.id, Transition::Suspend, Some("unpaid"))
            .await
            .unwrap();
    assert_ne!(next.job_id, moved.job_id);
    let job = store.job(next.job_id).await.unwrap();
    assert_eq!(job.args["after_job"], moved.job_id.get());
}

async fn refused_input_changes_nothing(store: Store_) {
    let store = &*store.0;
    let svc = service(store, "example.ro").await;
    let plan = svc.plan_id;
    let audit_before = audit_count(store).await;
    let customer = svc.customer_id;
    let refusals = [
        commands::create_service(store, &ctx(), customer, plan, "not a domain", false)
            .await
            .map(drop),
        // Cyrillic "а" in place of the Latin one: warned about, refused when so configured.
        commands::create_service(store, &ctx(), customer, plan, "pаypal.com", true)
            .await
            .map(drop),
        commands::create_service(store, &ctx(), customer, PlanId(404), "new.ro", false)
            .await
            .map(drop),
        commands::transition_service(
            store,
            &ctx(),
            svc.id,
            Transition::Activate,
            Some("two\nlines"),
        )
        .await
        .map(drop),
        commands::change_password(
            store,
            &ctx(),
            &drover::engine::Sealer::from_hex(&"42".repeat(32)).unwrap(),
            svc.id,
            secrecy::SecretString::from("short".to_owned()),
        )
        .await
        .map(drop),
    ];
    let kinds: Vec<String> = refusals
        .into_iter()
        .map(|r| match r.unwrap_err() {
            commands::Error::Rule(drover_core::Error::InvalidDomain { .. }) => "domain".into(),
            commands::Error::Rule(drover_core::Error::InvalidValue { what, .. }) => what.into(),
            commands::Error::Rule(drover_core::Error::InvalidSecret { what, .. }) => what.into(),
            commands::Error::Store(StoreError::UnknownReference { reference, .. }) => {
                format!("{reference:?}")
            }
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["domain", "domain", "Plan", "reason", "password"]);
    let warned = commands::create_service(store, &ctx(), customer, plan, "pаypal.com", false)
        .await
        .unwrap();
    assert!(
        !warned.warnings.is_empty(),
        "a confusable name is warned about"
    );
    assert_eq!(
        store.service(svc.id).await.unwrap().status,
        ServiceStatus::Pending
    );
    assert!(store.jobs(JobFilter::default()).await.unwrap().is_empty());
    assert_eq!(
        audit_count(store).await,
        audit_before + 1,
        "only the warned one"
    );
    // A terminated service keeps its plan.
    commands::transition_service(store, &ctx(), svc.id, Transition::Terminate, None)
        .await
        .unwrap();
    let other = commands::create_plan(store, &ctx(), plan_spec("Other"))
        .await
        .unwrap();
    let err = commands::change_plan(store, &ctx(), svc.id, other.id, false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            commands::Error::Rule(drover_core::Error::PlanFixed { service }) if service == svc.id
        ),
        "{err:?}"
    );
    assert_eq!(store.service(svc.id).await.unwrap().plan_id, plan);
}

async fn an_operator_moves_a_server_until_it_is_retired(store: Store_) {
    use drover_core::ServerState::*;
    let store = &*store.0;
    let spec = serde_json::from_value(serde_json::json!({
        "name": "vm1", "hostname": "vm1.example.net", "capacity": 10,
        "credentials": "env:VM_PASSWORD"
    }))
    .unwrap();
    let server = commands::create_server(store, &ctx(), spec).await.unwrap();
    let id = server.id;
    let on = commands::set_maintenance(store, &ctx(), id, true)
        .await
        .unwrap();
    assert_eq!(on.state, Maintenance);
    let off = commands::set_maintenance(store, &ctx(), id, false)
        .await
        .unwrap();
    assert_eq!(off.state, Healthy);
    // A server holding an account is not retired, and a wrong name retires nothing.
    let svc = service(store, "kept.ro").await;
    commands::transition_service(store, &ctx(), svc.id, Transition::Activate, None)
        .await
        .unwrap();
    store
        .assign_server(&ctx(), svc.account_id, id)
        .await
        .unwrap();
    let wrong = commands::decommission(store, &ctx(), id, "vm2")
        .await
        .unwrap_err();
    assert!(
        matches!(
            wrong,
            commands::Error::Rule(drover_core::Error::ConfirmationMismatch { what: "name", .. })
        ),
        "{wrong:?}"
    );
    let holding = commands::decommission(store, &ctx(), id, "vm1")
        .await
        .unwrap_err();
    assert_eq!(
        holding.to_string(),
        format!("server vm1 still holds 1 accounts; drain it first (drover servers drain {id})")
    );
    assert_eq!(store.server(id).await.unwrap().state, Healthy);
    // Once its account is gone, it is retired and changes no more.
    commands::transition_service(store, &ctx(), svc.id, Transition::Terminate, None)
        .await
        .unwrap();
    let retired = commands::decommission(store, &ctx(), id, "vm1")
        .await
        .unwrap();
    assert_eq!(retired.state, Decommissioned);
    let placement = drover_core::PlacementPolicy::default();
    let refused = [
        commands::set_maintenance(store, &ctx(), id, true)
            .await
            .map(drop),
        commands::drain(
            store,
            &ctx(),
            &placement,
            id,
            Default::default(),
            false,
            commands::WithoutContent::Allowed,
        )
        .await
        .map(drop),
    ];
    for err in refused {
        assert_eq!(
            err.unwrap_err().to_string(),
            "server vm1 is decommissioned: it no longer changes state"
        );
    }
    let actions = audited(store, format!("server:{id}")).await;
    assert_eq!(
        actions,
        [
            "server.create",
            "server.maintenance",
            "server.maintenance",
            "server.decommission"
        ]
    );
}

async fn a_migration_is_checked_stepped_and_confirmed(store: Store_) {
    use drover_core::ServerId;
    let store = &*store.0;
    let vm1 = commands::create_server(store, &ctx(), server_spec("vm1"))
        .await
        .unwrap();
    let vm2 = commands::create_server(store, &ctx(), server_spec("vm2"))
        .await
        .unwrap();
    let service = service(store, "ana.ro").await;
    let account = service.account_id;
    let grace = std::time::Duration::from_secs(60);
    // The refusal's name: which rule refused, as data.
    let code = |e: commands::Error| match e {
        commands::Error::Rule(drover_core::Error::MoveRefused(refusal)) => {
            let name = format!("{refusal:?}");
            name.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        }
        commands::Error::Rule(drover_core::Error::ConfirmationMismatch { .. }) => {
            "ConfirmationMismatch".to_owned()
        }
        other => panic!("unexpected {other}"),
    };
    assert_eq!(
        code(
            commands::start_migration(
                store,
                &ctx(),
                account,
                vm2.id,
                grace,
                commands::WithoutContent::Allowed
            )
            .await
            .unwrap_err()
        ),
        "NotPlaced"
    );
    store.assign_server(&ctx(), account, vm1.id).await.unwrap();
    assert_eq!(
        code(
            commands::start_migration(
                store,
                &ctx(),
                account,
                vm2.id,
                grace,
                commands::WithoutContent::Allowed
            )
            .await
            .unwrap_err()
        ),
        "NotActive"
    );
    commands::transition_service(store, &ctx(), service.id, Transition::Activate, None)
        .await
        .unwrap();
    assert_eq!(
        code(
            commands::start_migration(
                store,
                &ctx(),
                account,
                vm1.id,
                grace,
                commands::WithoutContent::Allowed
            )
            .await
            .unwrap_err()
        ),
        "SameServer"
    );
    assert_eq!(
        code(
            commands::start_migration(
                store,
                &ctx(),
                account,
                vm2.id,
                grace,
                commands::WithoutContent::Allowed
            )
            .await
            .unwrap_err()
        ),
        "NoPassword"
    );
    store
        .store_sealed_password(account, b"sealed", "key:any")
        .await
        .unwrap();
    commands::set_maintenance(store, &ctx(), vm2.id, true)
        .await
        .unwrap();
    assert_eq!(
        code(
            commands::start_migration(
                store,
                &ctx(),
                account,
                vm2.id,
                grace,
                commands::WithoutContent::Allowed
            )
            .await
            .unwrap_err()
        ),
        "TargetUnusable"
    );
    commands::set_maintenance(store, &ctx(), vm2.id, false)
        .await
        .unwrap();
    let (migration, _job) = commands::start_migration(
        store,
        &ctx(),
        account,
        vm2.id,
        grace,
        commands::WithoutContent::Allowed,
    )
    .await
    .unwrap();
    assert_eq!(
        (
            migration.from_server,
            migration.to_server,
            migration.state.as_str()
        ),
        (vm1.id, vm2.id, "creating")
    );
    assert!(!migration.confirmed);
    assert_eq!(
        code(
            commands::start_migration(
                store,
                &ctx(),
                account,
                vm2.id,
                grace,
                commands::WithoutContent::Allowed
            )
            .await
            .unwrap_err()
        ),
        "UnderWay"
    );
    let switched =
        commands::advance_migration(store, &ctx(), account, drover_core::MoveState::Switched)
            .await
            .unwrap();
    assert_eq!(switched.state, drover_core::MoveState::Switched);
    assert_eq!(
        store.account(account).await.unwrap().server_id,
        Some(vm2.id)
    );
    assert_eq!(
        code(
            commands::confirm_migration(store, &ctx(), account, "alt.ro")
                .await
                .unwrap_err()
        ),
        "ConfirmationMismatch"
    );
    commands::confirm_migration(store, &ctx(), account, "ANA.ro")
        .await
        .unwrap();
    assert!(store.migration(account).await.unwrap().unwrap().confirmed);
    commands::schedule_migration(store, &ctx(), account, jiff::Timestamp::now())
        .await
        .unwrap();
    commands::advance_migration(store, &ctx(), account, drover_core::MoveState::Done)
        .await
        .unwrap();
    assert_eq!(
        code(
            commands::confirm_migration(store, &ctx(), account, "ana.ro")
                .await
                .unwrap_err()
        ),
        "NotMoving"
    );
    // A finished move allows the next one.
    assert!(
        commands::start_migration(
            store,
            &ctx(),
            account,
            ServerId(vm1.id.get()),
            grace,
            commands::WithoutContent::Allowed
        )
        .await
        .is_ok()
    );
}

async fn failed_accounts_are_listed_retried_and_cleared(store: Store_) {
    let store = &*store.0;
    let failing = service(store, "failing.ro").await;
    let protected = service(store, "kept.ro").await;
    service(store, "fine.ro").await;
    let failed = |failed| AccountFilter {
        failed,
        ..AccountFilter::default()
    };
    assert!(store.accounts(failed(true)).await.unwrap().is_empty());
    commands::transition_service(store, &ctx(), failing.id, Transition::Activate, None)
        .await
        .unwrap();
    store
        .mark_account_failed(
            &ctx(),
            failing.account_id,
            "the server refused: invalid: x",
            drover_core::EventType::AccountFailed,
        )
        .await
        .unwrap();
    // A protected account waiting to be deleted needs an operator, not another try.
    commands::transition_service(store, &ctx(), protected.id, Transition::Terminate, None)
        .await
        .unwrap();
    store
        .mark_account_failed(
            &ctx(),
            protected.account_id,
            "protected from deletion",
            drover_core::EventType::AccountProtectedDeletionHeld,
        )
        .await
        .unwrap();
    let listed = store.accounts(failed(true)).await.unwrap();
    assert_eq!(
        listed.iter().map(|a| a.id).collect::<Vec<_>>(),
        [failing.account_id, protected.account_id]
    );
    assert_eq!(
        listed[0].failure.as_deref(),
        Some("the server refused: invalid: x")
    );
    assert!(listed[0].failed_at.is_some());
    assert_eq!(store.accounts(failed(false)).await.unwrap().len(), 3);
    let before = store.account(failing.account_id).await.unwrap();
    let jobs = commands::retry_failed_accounts(store, &ctx())
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "only the account a try may fix");
    let job = store.job(jobs[0]).await.unwrap();
    assert_eq!(
        (job.kind.as_str(), job.account_id),
        ("converge_account", Some(failing.account_id))
    );
    let after = store.account(failing.account_id).await.unwrap();
    assert_eq!(after.desired_generation, before.desired_generation + 1);
    // A converge that matches the server clears the failure.
    store
        .record_observation(failing.account_id, "enabled", after.desired_generation)
        .await
        .unwrap();
    let cleared = store.account(failing.account_id).await.unwrap();
    assert_eq!((cleared.failure, cleared.failed_at), (None, None));
    let audited = store
        .audit_events(AuditFilter {
            subject: Some(format!("account:{}", failing.account_id)),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(audited.iter().any(|e| e.action == "account.failed"));
}

async fn the_last_operator_token_is_never_revoked(store: Store_) {
    use drover_core::Scope;
    let store = &*store.0;
    // The last working operator token stays: without it nobody could use the API as operator.
    let (first, _) = commands::create_token(store, &ctx(), "ops-1", Scope::Operator)
        .await
        .unwrap();
    let (second, _) = commands::create_token(store, &ctx(), "ops-2", Scope::Operator)
        .await
        .unwrap();
    commands::revoke_token(store, &ctx(), first.id)
        .await
        .unwrap();
    let refused = commands::revoke_token(store, &ctx(), second.id)
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            commands::Error::Rule(drover_core::Error::LastOperatorToken { token })
                if token == second.id
        ),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("create another"), "{refused}");
    let still = store.tokens().await.unwrap();
    assert!(
        still
            .iter()
            .any(|t| t.id == second.id && t.revoked_at.is_none()),
        "{still:?}"
    );
}

async fn a_changed_plan_queues_its_sync_to_the_servers(store: Store_) {
    let store = &*store.0;
    let plan = commands::create_plan(store, &ctx(), plan_spec("Web"))
        .await
        .unwrap();
    let syncs = |jobs: Vec<drover_store::JobSummary>| {
        jobs.into_iter()
            .filter(|j| j.kind == "sync_plan")
            .map(|j| j.args["plan_id"].clone())
            .collect::<Vec<_>>()
    };
    let all = || store.jobs(JobFilter::default());
    assert!(
        syncs(all().await.unwrap()).is_empty(),
        "a new plan reaches a server with its first account"
    );
    let patch: drover_core::PlanPatch =
        serde_json::from_value(serde_json::json!({"max_mailboxes": 5})).unwrap();
    commands::update_plan(store, &ctx(), plan.id, patch, false)
        .await
        .unwrap();
    assert_eq!(
        syncs(all().await.unwrap()),
        [serde_json::json!(plan.id.get())]
    );
    // Features that cannot work together are refused, and nothing is queued.
    let bad: drover_core::PlanPatch =
        serde_json::from_value(serde_json::json!({"features": ["ssl"]})).unwrap();
    let err = commands::update_plan(store, &ctx(), plan.id, bad, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ssl needs web"), "{err}");
    assert_eq!(syncs(all().await.unwrap()).len(), 1);
}

async fn a_zone_changes_whole_and_refuses_what_would_break_it(store: Store_) {
    use drover_core::{OwnerName, RecordType, RrSet, ZoneTemplate, account_zone};
    let store = &*store.0;
    let provider = serde_json::from_value(serde_json::json!({
        "name": "pdns-1", "credentials": "env:PDNS_KEY", "serves_new_zones": true,
        "settings": {"kind": "powerdns", "api_url": "http://127.0.0.1:8081/"},
    }))
    .unwrap();
    let provider = commands::create_dns_provider(store, &ctx(), provider)
        .await
        .unwrap();
    let name = drover_core::DomainName::parse("exemplu.ro").unwrap();
    let address = Some("192.0.2.10".parse().unwrap());
    let rrsets = account_zone(&name, address, None, &ZoneTemplate::default()).unwrap();
    let zone = commands::create_zone(store, &ctx(), &name, None, rrsets, &[provider.id])
        .await
        .unwrap();
    let syncs = || async {
        store
            .jobs(JobFilter::default())
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.kind == "sync_zone")
            .count()
    };
    assert_eq!(syncs().await, 1);
    let audited_before = audit_count(store).await;

    // A change is a new generation, its sync joining the one waiting.
    let shop = RrSet::new(
        OwnerName::parse("shop", &name).unwrap(),
        RecordType::A,
        300,
        ["192.0.2.50"],
    )
    .unwrap();
    let changed = commands::set_rrset(store, &ctx(), zone.id, shop.clone())
        .await
        .unwrap();
    assert_eq!(changed.generation, 2);
    assert!(changed.rrsets.contains(&shop));
    assert_eq!(syncs().await, 1);
    // What would break the zone changes nothing.
    let www = OwnerName::parse("www", &name).unwrap();
    let clash = RrSet::new(
        www.clone(),
        RecordType::Cname,
        300,
        ["elsewhere.example.net"],
    )
    .unwrap();
    let err = commands::set_rrset(store, &ctx(), zone.id, clash)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("beside the CNAME"), "{err}");
    let shop_aaaa = OwnerName::parse("shop", &name).unwrap();
    let missing = commands::delete_rrset(store, &ctx(), zone.id, &shop_aaaa, RecordType::Aaaa)
        .await
        .unwrap_err();
    assert!(
        matches!(
            missing,
            commands::Error::Store(StoreError::NotFound { what: "rrset", .. })
        ),
        "{missing:?}"
    );
    let too_much = commands::set_zone_safety(store, &ctx(), zone.id, Some(101))
        .await
        .unwrap_err();
    assert!(too_much.to_string().contains("0 to 100"), "{too_much}");
    assert_eq!(store.zone(zone.id).await.unwrap(), changed);
    assert_eq!(audit_count(store).await, audited_before + 1);
    // Its own limit, and a removed rrset: each a new generation but the limit.
    let limited = commands::set_zone_safety(store, &ctx(), zone.id, Some(40))
        .await
        .unwrap();
    assert_eq!(
        (limited.max_change_percent, limited.generation),
        (Some(40), 2)
    );
    let shop_a = OwnerName::parse("shop", &name).unwrap();
    let without = commands::delete_rrset(store, &ctx(), zone.id, &shop_a, RecordType::A)
        .await
        .unwrap();
    assert_eq!(without.generation, 3);
    assert!(!without.rrsets.contains(&shop));
    // A forced sync may not join the one waiting: that one keeps to the safety limits.
    let waiting = commands::sync_zone(store, &ctx(), zone.id, false)
        .await
        .unwrap();
    let forced = commands::sync_zone(store, &ctx(), zone.id, true)
        .await
        .unwrap_err();
    assert!(
        matches!(
            forced,
            commands::Error::Store(StoreError::Conflict {
                conflict: drover_store::Conflict::SyncUnderWay,
                ..
            })
        ) && forced.to_string().contains(&format!("job {waiting}")),
        "{forced:?}"
    );
    // Removal needs the name repeated; a zone being removed changes no more.
    let wrong = commands::remove_zone(store, &ctx(), zone.id, "exemplu.com")
        .await
        .unwrap_err();
    assert_eq!(
        wrong.to_string(),
        "to delete zone exemplu.ro, repeat its zone name exemplu.ro exactly; got 'exemplu.com'"
    );
    let removed = commands::remove_zone(store, &ctx(), zone.id, "EXEMPLU.ro")
        .await
        .unwrap();
    assert!(removed.deleting && removed.generation == 4);
    let err = commands::set_rrset(store, &ctx(), zone.id, shop)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            commands::Error::Rule(drover_core::Error::ZoneDeleting { .. })
        ),
        "{err:?}"
    );
    let actions = audited(store, "zone:exemplu.ro").await;
    assert_eq!(
        actions,
        [
            "dns.zone.create",
            "dns.rrset.set",
            "dns.zone.safety",
            "dns.rrset.delete",
            "dns.zone.remove"
        ]
    );
}

async fn a_drift_repair_records_its_actions_and_converges_what_it_enforces(store: Store_) {
    use drover_core::{DriftAction, DriftFinding, DriftKind};
    let store = &*store.0;
    let server = commands::create_server(store, &ctx(), server_spec("vm1"))
        .await
        .unwrap();
    let svc = service(store, "ana.ro").await;
    store
        .assign_server(&ctx(), svc.account_id, server.id)
        .await
        .unwrap();
    let findings = [
        DriftFinding {
            kind: DriftKind::Missing,
            domain: "ana.ro".into(),
            account_id: Some(svc.account_id),
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
    ];
    let records = store
        .record_drift(&ctx(), server.id, &findings)
        .await
        .unwrap();
    let actions = [
        (records[0].id, DriftAction::Enforce),
        (records[1].id, DriftAction::Log),
    ];
    let jobs = commands::record_drift_repair(store, &ctx(), server.id, &actions, &[svc.account_id])
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    let job = store.job(jobs[0]).await.unwrap();
    assert_eq!(
        (job.kind.as_str(), job.account_id),
        ("converge_account", Some(svc.account_id))
    );
    // Enforcing is a new generation: a converge job just finishing runs again for it.
    assert_eq!(
        store
            .account(svc.account_id)
            .await
            .unwrap()
            .desired_generation,
        2
    );
    let after = store.drift_findings(Some(server.id)).await.unwrap();
    assert_eq!(
        after.iter().map(|r| r.action).collect::<Vec<_>>(),
        [Some(DriftAction::Enforce), Some(DriftAction::Log)]
    );
    let repair = store
        .audit_events(AuditFilter {
            subject: Some(format!("server:{}", server.id)),
            page: Page::default(),
        })
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.action == "drift.repair")
        .unwrap();
    let details: serde_json::Value = serde_json::from_str(&repair.details).unwrap();
    assert_eq!(
        details,
        serde_json::json!({"logged": 1, "enforced": 1, "quarantined": 0, "jobs": [jobs[0]]})
    );
}

async fn work_an_operator_asks_for_names_what_exists_and_is_audited(store: Store_) {
    use commands::Requested;
    let store = &*store.0;
    let vm1 = commands::create_server(store, &ctx(), server_spec("vm1"))
        .await
        .unwrap();
    // An operator's request for a sync is a job, audited, tried a few times; an unknown
    // server is refused.
    commands::request(
        store,
        &ctx(),
        Requested::UsageSync {
            server: Some(vm1.id),
        },
    )
    .await
    .unwrap();
    let missing = commands::request(
        store,
        &ctx(),
        Requested::UsageSync {
            server: Some(drover_core::ServerId(999)),
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(
        missing,
        commands::Error::Store(StoreError::NotFound { .. })
    ));

    // Every kind of request is queued and audited; what it names must exist.
    let domain = drover_core::DomainName::parse("stray.ro").unwrap();
    for (request, action) in [
        (
            Requested::HealthCheck {
                server: None,
                plans: false,
            },
            "health.check_requested",
        ),
        (
            Requested::DriftScan {
                server: Some(vm1.id),
                repair: drover_store::jobs::DriftRepair::DryRun,
            },
            "drift.scan_requested",
        ),
        (
            Requested::OrphanDeletion {
                server: vm1.id,
                domain: domain.clone(),
            },
            "drift.orphan_deletion_requested",
        ),
        (
            Requested::ZoneCheck { provider: None },
            "dns.check_requested",
        ),
    ] {
        let job = commands::request(store, &ctx(), request).await.unwrap();
        let audited = store
            .audit_events(AuditFilter::default())
            .await
            .unwrap()
            .into_iter()
            .any(|e| {
                e.action == action
                    && serde_json::from_str::<serde_json::Value>(&e.details).unwrap()["job"]
                        == job.get()
            });
        assert!(audited, "{action}");
    }
    for request in [
        Requested::ZonePlan {
            zone: drover_core::ZoneId(999),
        },
        Requested::ZoneCheck {
            provider: Some(drover_core::DnsProviderId(999)),
        },
        Requested::OrphanDeletion {
            server: drover_core::ServerId(999),
            domain: domain.clone(),
        },
    ] {
        let refused = commands::request(store, &ctx(), request).await.unwrap_err();
        assert!(
            matches!(refused, commands::Error::Store(StoreError::NotFound { .. })),
            "{refused}"
        );
    }
}

async fn an_adoption_records_accounts_as_found_all_or_nothing(store: Store_) {
    use drover_core::{
        Adopted, Adoption, CustomerSpec, DesiredState, DomainName, Owner, UnixUsername,
    };
    let store = &*store.0;
    let vm1 = commands::create_server(store, &ctx(), server_spec("vm1"))
        .await
        .unwrap();
    let plan = commands::create_plan(store, &ctx(), plan_spec("Web"))
        .await
        .unwrap();
    let spec = CustomerSpec::new("Ana Pop", Some("ana@example.ro"), None).unwrap();
    let known = commands::create_customer(store, &ctx(), spec)
        .await
        .unwrap()
        .id;
    let adopted = |domain: &str, user: &str, owner, state| Adopted {
        domain: DomainName::parse(domain).unwrap(),
        unix_username: UnixUsername::parse(user).unwrap(),
        owner,
        plan: plan.id,
        plan_name: plan.spec.name.clone(),
        state,
        suspend_reason: (state == DesiredState::Disabled).then(|| "unpaid".to_owned()),
        differences: Vec::new(),
        aliases: Vec::new(),
        subservers: Vec::new(),
        mailboxes: Vec::new(),
        databases: Vec::new(),
    };
    let mut adoption = Adoption {
        accounts: vec![
            adopted(
                "ana.ro",
                "ana",
                Owner::Existing(known),
                DesiredState::Enabled,
            ),
            adopted("ion.ro", "ion", Owner::New(0), DesiredState::Disabled),
        ],
        new_customers: vec![CustomerSpec::new("Ion", Some("ion@x.ro"), Some("B-2")).unwrap()],
        unmapped_plans: Vec::new(),
        differing_plans: Vec::new(),
        skipped: Vec::new(),
        left_to_server: Vec::new(),
        not_on_server: Vec::new(),
        already_adopted: 0,
    };
    // ana.ro comes with mailboxes (their passwords' hashes as the server showed them) and a
    // database its plan gives no feature for: kept, and the account flagged.
    let ana_domain = DomainName::parse("ana.ro").unwrap();
    let mailbox = |name: &str| drover_core::AdoptedMailbox {
        name: drover_core::MailboxName::parse(name).unwrap(),
        real_name: format!("{name} desk"),
        quota_mb: None,
    };
    adoption.accounts[0].mailboxes = vec![mailbox("sales"), mailbox("info")];
    adoption.accounts[0].databases = vec![drover_core::AdoptedDatabase {
        name: drover_core::DatabaseName::listed("ana_shop").unwrap(),
        kind: drover_core::DatabaseType::Mysql,
    }];
    let mut hashes = commands::MailboxHashes::new();
    hashes.insert(
        (ana_domain.clone(), mailbox("sales").name),
        "$y$sales-hash".to_owned().into(),
    );
    let sealer = drover::engine::Sealer::from_hex(&"42".repeat(32)).unwrap();
    let err = commands::adopt(store, &ctx(), &sealer, vm1.id, &adoption, &hashes)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no password hash was read for mailbox info@ana.ro"),
        "{err}"
    );
    assert!(store.adoption_known().await.unwrap().accounts.is_empty());
    hashes.insert(
        (ana_domain.clone(), mailbox("info").name),
        "$y$info-hash".to_owned().into(),
    );
    let ids = commands::adopt(store, &ctx(), &sealer, vm1.id, &adoption, &hashes)
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    let ana = store.account(ids[0]).await.unwrap();
    assert_eq!(
        ana.over_limit.as_deref(),
        Some("2 mailboxes without the feature mail; 1 MySQL databases without the feature mysql"),
        "kept, and flagged"
    );
    let kept = store
        .mailbox_password(ids[0], &mailbox("sales").name)
        .await
        .unwrap();
    assert!(kept.is_hash);
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&sealer.open(&kept.sealed).unwrap()),
        "$y$sales-hash"
    );
    let databases = store.databases(ids[0]).await.unwrap();
    assert_eq!(databases.len(), 1);
    assert_eq!(databases[0].name.as_str(), "ana_shop");
    let ion = store.account(ids[1]).await.unwrap();
    assert_eq!(ion.server_id, Some(vm1.id));
    assert_eq!(ion.desired_state, DesiredState::Disabled);
    assert_eq!(ion.observed_state.as_deref(), Some("disabled"));
    assert_eq!(ion.suspend_reason.as_deref(), Some("unpaid"));
    assert!(ion.protected_from_deletion && !ion.has_sealed_password);
    let service = store.service(ion.service_id).await.unwrap();
    assert_eq!(service.status, drover_core::ServiceStatus::Suspended);
    // Nothing to converge: the records say what the server has.
    let jobs = store
        .jobs(drover_store::JobFilter::default())
        .await
        .unwrap();
    assert!(jobs.is_empty(), "{jobs:?}");

    let on_server = audited(store, format!("server:{}", vm1.id)).await;
    assert_eq!(on_server, ["server.create", "server.adopt"]);
    assert_eq!(
        audited(store, format!("account:{}", ids[1])).await,
        ["account.adopt"]
    );
    let seen = store.adoption_known().await.unwrap();
    assert_eq!(seen.accounts.len(), 2);
    assert_eq!(seen.accounts[0].server.as_deref(), Some("vm1"));
    assert!(
        seen.customers
            .iter()
            .any(|c| c.external_ref.as_deref() == Some("B-2"))
    );

    // A domain taken since the proposal: nothing of the adoption is recorded.
    adoption.accounts = vec![
        adopted("eva.ro", "eva", Owner::New(0), DesiredState::Enabled),
        adopted(
            "ana.ro",
            "ana2",
            Owner::Existing(known),
            DesiredState::Enabled,
        ),
    ];
    adoption.new_customers[0] = CustomerSpec::new("Eva", None, Some("B-3")).unwrap();
    let err = commands::adopt(store, &ctx(), &sealer, vm1.id, &adoption, &hashes)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ana.ro"), "{err}");
    let after = store.adoption_known().await.unwrap();
    assert_eq!(after.accounts.len(), 2, "eva.ro was not kept");
    assert!(
        !after
            .customers
            .iter()
            .any(|c| c.external_ref.as_deref() == Some("B-3"))
    );
    // An adoption with plans drover lacks is refused whole.
    adoption.unmapped_plans = vec!["Gold".into()];
    let err = commands::adopt(store, &ctx(), &sealer, vm1.id, &adoption, &hashes)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("'Gold'"), "{err}");
    // Nothing is adopted onto a retired server (an empty one retires without a drain).
    adoption.unmapped_plans.clear();
    adoption.accounts.truncate(1);
    let vm2 = commands::create_server(store, &ctx(), server_spec("vm2"))
        .await
        .unwrap();
    commands::decommission(store, &ctx(), vm2.id, "vm2")
        .await
        .unwrap();
    let err = commands::adopt(store, &ctx(), &sealer, vm2.id, &adoption, &hashes)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("decommissioned"), "{err}");
}

async fn what_an_operator_creates_is_audited_and_a_zone_queues_its_sync(store: Store_) {
    use drover_core::{DomainName, Scope};
    let store = &*store.0;
    let before = audit_count(store).await;
    let spec = CustomerSpec::new("Ana Pop", None, Some("B-1")).unwrap();
    let customer = commands::create_customer(store, &ctx(), spec.clone())
        .await
        .unwrap();
    let err = commands::create_customer(store, &ctx(), spec)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("'B-1' already exists"), "{err}");
    let plan = commands::create_plan(store, &ctx(), plan_spec("Web"))
        .await
        .unwrap();
    let server = commands::create_server(store, &ctx(), server_spec("vm1"))
        .await
        .unwrap();
    let patch = serde_json::from_value(serde_json::json!({"capacity": 7})).unwrap();
    let patched = commands::update_server(store, &ctx(), server.id, patch)
        .await
        .unwrap();
    assert_eq!(patched.spec.capacity, 7);
    let (token, _) = commands::create_token(store, &ctx(), " ops ", Scope::Operator)
        .await
        .unwrap();
    assert_eq!(token.name, "ops", "trimmed");
    let err = commands::create_token(store, &ctx(), "a\nb", Scope::Readonly)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("line breaks"), "{err}");
    let provider: drover_store::DnsProviderSpec = serde_json::from_value(serde_json::json!({
        "name": "pdns", "credentials": "env:PDNS_KEY",
        "settings": {"kind": "powerdns", "api_url": "http://127.0.0.1:8081/"},
    }))
    .unwrap();
    let provider = commands::create_dns_provider(store, &ctx(), provider)
        .await
        .unwrap();
    let name = DomainName::parse("exemplu.ro").unwrap();
    let zone = commands::create_zone(store, &ctx(), &name, None, vec![], &[provider.id])
        .await
        .unwrap();
    let subjects = [
        (format!("customer:{}", customer.id), "customer.create"),
        (format!("plan:{}", plan.id), "plan.create"),
        (format!("token:{}", token.id), "token.create"),
        (
            format!("dns_provider:{}", provider.id),
            "dns.provider.create",
        ),
        (format!("zone:{name}"), "dns.zone.create"),
    ];
    for (subject, action) in subjects {
        assert_eq!(audited(store, &subject).await, [action], "{subject}");
    }
    let on_server = audited(store, format!("server:{}", server.id)).await;
    assert_eq!(on_server, ["server.create", "server.update"]);
    assert_eq!(
        audit_count(store).await,
        before + 7,
        "refusals are not audited"
    );
    let jobs = store.jobs(JobFilter::default()).await.unwrap();
    let syncs: Vec<_> = jobs.iter().filter(|j| j.kind == "sync_zone").collect();
    assert_eq!(syncs.len(), 1, "{jobs:?}");
    assert_eq!(syncs[0].args["zone_id"], zone.id.get());
    // A zone on no provider has nothing to sync yet.
    let other = DomainName::parse("altul.ro").unwrap();
    commands::create_zone(store, &ctx(), &other, None, vec![], &[])
        .await
        .unwrap();
    let jobs = store.jobs(JobFilter::default()).await.unwrap();
    assert_eq!(jobs.iter().filter(|j| j.kind == "sync_zone").count(), 1);
    // Letting drover log in again is audited only when a login was refused.
    let allowed = commands::allow_login(store, &ctx(), server.id)
        .await
        .unwrap();
    assert!(allowed.login_refused.is_none());
    store
        .mark_login_refused(&ctx(), server.id, "auth: wrong password", "0a1b")
        .await
        .unwrap();
    let allowed = commands::allow_login(store, &ctx(), server.id)
        .await
        .unwrap();
    assert!(allowed.login_refused.is_none());
    let on_server = audited(store, format!("server:{}", server.id)).await;
    let allowed = on_server
        .iter()
        .filter(|a| *a == "server.login_allowed")
        .count();
    assert_eq!(allowed, 1, "{on_server:?}");
}

async fn mailboxes_are_held_to_their_rules_and_each_change_queues_a_converge(store: Store_) {
    use drover::commands::Error;
    let store = &*store.0;
    let svc = service(store, "posta.ro").await;
    let account = svc.account_id;
    let sealer = drover::engine::Sealer::from_hex(&"42".repeat(32)).unwrap();
    let secret = |p: &str| secrecy::SecretString::from(p.to_owned());
    let billing = ctx();
    let create = |name: &'static str, real: &'static str, password: &'static str| {
        commands::create_mailbox(
            store,
            &billing,
            &sealer,
            account,
            name,
            real,
            secret(password),
            None,
        )
    };
    // A plan that names its features must give mail.
    let err = create("ana", "Ana Pop", "Mail-passw0rd").await.unwrap_err();
    assert!(
        matches!(err, Error::Rule(drover_core::Error::FeatureMissing { .. })),
        "{err}"
    );
    let mail = serde_json::json!({"features": ["web", "dns", "mail"]});
    commands::update_plan(
        store,
        &ctx(),
        PlanId(1),
        serde_json::from_value(mail).unwrap(),
        false,
    )
    .await
    .unwrap();
    let ana = create("ana", "Ana Pop", "Mail-passw0rd").await.unwrap();
    assert!(ana.password_pending && !ana.deleting);
    let jobs = store.jobs(JobFilter::default()).await.unwrap();
    assert!(
        jobs.iter().any(|j| j.kind == "converge_account"),
        "{jobs:?}"
    );
    let before = audit_count(store).await;
    // Refused, each naming what was wrong, and nothing recorded.
    for (name, real, password, wanted) in [
        ("Ana", "", "Mail-passw0rd", "mailbox name"),
        ("postmaster", "", "Mail-passw0rd", "keeps for itself"),
        ("eva", "a:b", "Mail-passw0rd", "real name"),
        ("eva", "", "short", "password"),
        ("ana", "", "Mail-passw0rd", "has a mailbox named 'ana'"),
    ] {
        let err = create(name, real, password).await.unwrap_err();
        assert!(err.to_string().contains(wanted), "{name}: {err}");
    }
    let plan = serde_json::from_value(serde_json::json!({"max_mailboxes": 2})).unwrap();
    commands::update_plan(store, &ctx(), PlanId(1), plan, false)
        .await
        .unwrap();
    create("ion", "", "Mail-passw0rd").await.unwrap();
    let err = create("eva", "", "Mail-passw0rd").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Rule(drover_core::Error::OverLimit { limit: 2, .. })
        ),
        "{err}"
    );
    // Deleting needs the name repeated; a mailbox being deleted no longer counts.
    let err = commands::delete_mailbox(
        store,
        &ctx(),
        account,
        "ion",
        &drover_core::Confirmation::Typed("ana".to_string()),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("repeat its mailbox name ion"),
        "{err}"
    );
    let gone = commands::delete_mailbox(
        store,
        &ctx(),
        account,
        "ion",
        &drover_core::Confirmation::Typed("ion".to_string()),
    )
    .await
    .unwrap();
    assert!(gone.deleting);
    // Until its deletion reaches the server, it is neither made again nor changed.
    let err = create("ion", "", "Mail-passw0rd").await.unwrap_err();
    assert!(err.to_string().contains("ion is being deleted"), "{err}");
    let err = commands::update_mailbox(
        store,
        &ctx(),
        &sealer,
        account,
        "ion",
        Some("X"),
        None,
        None,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("ion is being deleted"), "{err}");
    let err = commands::update_mailbox(store, &ctx(), &sealer, account, "ana", None, None, None)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("a real name, a password or a quota"),
        "{err}"
    );
    create("eva", "", "Mail-passw0rd").await.unwrap();
    let changed = commands::update_mailbox(
        store,
        &ctx(),
        &sealer,
        account,
        "ana",
        Some("Ana P"),
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(changed.real_name, "Ana P");
    let err = commands::update_mailbox(
        store,
        &ctx(),
        &sealer,
        account,
        "nobody",
        Some("X"),
        None,
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::Store(StoreError::NotFound { .. })),
        "{err}"
    );
    let actions = audited(store, format!("account:{account}")).await;
    let mailbox_actions: Vec<&str> = actions
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("mailbox."))
        .collect();
    assert_eq!(
        mailbox_actions,
        [
            "mailbox.create",
            "mailbox.create",
            "mailbox.delete",
            "mailbox.create",
            "mailbox.update"
        ]
    );
    // Four mailbox changes and the plan's: refusals are not audited.
    assert_eq!(audit_count(store).await, before + 5);
    // A terminated service's mailboxes no longer change.
    commands::transition_service(store, &ctx(), svc.id, Transition::Activate, None)
        .await
        .unwrap();
    commands::transition_service(store, &ctx(), svc.id, Transition::Terminate, None)
        .await
        .unwrap();
    let err = create("zoe", "", "Mail-passw0rd").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("terminated: its mailboxes no longer change"),
        "{err}"
    );
}

async fn databases_are_held_to_their_rules_and_each_change_is_audited(store: Store_) {
    let store = &*store.0;
    let svc = service(store, "baze.ro").await;
    let account = svc.account_id;
    let billing = ctx();
    let create =
        |name: &'static str| commands::create_database(store, &billing, account, name, "mysql");
    // A plan that names its features must give MySQL.
    let err = create("shop").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("does not give its accounts the feature mysql: they have no MySQL databases"),
        "{err}"
    );
    let mysql = serde_json::json!({"features": ["web", "dns", "mysql"]});
    commands::update_plan(
        store,
        &ctx(),
        PlanId(1),
        serde_json::from_value(mysql).unwrap(),
        false,
    )
    .await
    .unwrap();
    let shop = create("shop").await.unwrap();
    assert_eq!(shop.name.as_str(), "baze_shop");
    let jobs = store.jobs(JobFilter::default()).await.unwrap();
    assert!(
        jobs.iter().any(|j| j.kind == "converge_account"),
        "{jobs:?}"
    );
    // Deleting needs the full name repeated; until the server has dropped it, the name is not
    // recorded again.
    let err = commands::delete_database(
        store,
        &ctx(),
        account,
        "shop",
        &drover_core::Confirmation::Typed("shop".to_string()),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("repeat its database name baze_shop"),
        "{err}"
    );
    let gone = commands::delete_database(
        store,
        &ctx(),
        account,
        "baze_shop",
        &drover_core::Confirmation::Typed("baze_shop".to_string()),
    )
    .await
    .unwrap();
    assert!(gone.deleting);
    let err = create("shop").await.unwrap_err();
    assert!(
        err.to_string().contains("baze_shop is being deleted"),
        "{err}"
    );
    let err = commands::delete_database(
        store,
        &ctx(),
        account,
        "nothing",
        &drover_core::Confirmation::Typed("baze_nothing".to_string()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, commands::Error::Store(StoreError::NotFound { .. })),
        "{err}"
    );
    let actions = audited(store, format!("account:{account}")).await;
    let database_actions: Vec<&str> = actions
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("database."))
        .collect();
    assert_eq!(database_actions, ["database.create", "database.delete"]);
    // A terminated service's databases no longer change.
    commands::transition_service(store, &ctx(), svc.id, Transition::Activate, None)
        .await
        .unwrap();
    commands::transition_service(store, &ctx(), svc.id, Transition::Terminate, None)
        .await
        .unwrap();
    let err = create("wiki").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("terminated: its databases no longer change"),
        "{err}"
    );
}

async fn a_plan_change_past_what_the_account_holds_is_refused_unless_forced(store: Store_) {
    let store = &*store.0;
    let svc = service(store, "plin.ro").await;
    let account = svc.account_id;
    let sealer = drover::engine::Sealer::from_hex(&"42".repeat(32)).unwrap();
    let mail = serde_json::json!({"features": ["web", "mail", "mysql"]});
    commands::update_plan(
        store,
        &ctx(),
        PlanId(1),
        serde_json::from_value(mail).unwrap(),
        false,
    )
    .await
    .unwrap();
    for name in ["ana", "ion", "eva"] {
        let password = secrecy::SecretString::from("Mail-passw0rd".to_owned());
        commands::create_mailbox(store, &ctx(), &sealer, account, name, "", password, None)
            .await
            .unwrap();
    }
    commands::create_database(store, &ctx(), account, "shop", "mysql")
        .await
        .unwrap();
    let small = serde_json::json!({
        "name": "Small", "features": ["web", "mail"], "max_mailboxes": 1
    });
    let small = commands::create_plan(store, &ctx(), serde_json::from_value(small).unwrap())
        .await
        .unwrap();
    let err = commands::change_plan(store, &ctx(), svc.id, small.id, false)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plan 'Small' is too small for the account (3 mailboxes, at most 1; 1 MySQL databases \
         without the feature mysql); nothing was changed — delete what is over first, or force \
         the change to keep everything and flag the account over its limits"
    );
    assert_eq!(store.service(svc.id).await.unwrap().plan_id, PlanId(1));
    // Forced: nothing is deleted; the account is flagged, and the flag goes once it fits.
    commands::change_plan(store, &ctx(), svc.id, small.id, true)
        .await
        .unwrap();
    assert_eq!(store.service(svc.id).await.unwrap().plan_id, small.id);
    let flagged = store.account(account).await.unwrap().over_limit;
    assert_eq!(
        flagged.as_deref(),
        Some("3 mailboxes, at most 1; 1 MySQL databases without the feature mysql")
    );
    assert_eq!(store.mailboxes(account).await.unwrap().len(), 3);
    let err = commands::create_mailbox(
        store,
        &ctx(),
        &sealer,
        account,
        "zoe",
        "",
        secrecy::SecretString::from("Mail-passw0rd".to_owned()),
        None,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("allows 1 mailboxes"), "{err}");
    for name in ["ion", "eva"] {
        commands::delete_mailbox(
            store,
            &ctx(),
            account,
            name,
            &drover_core::Confirmation::Typed(name.to_string()),
        )
        .await
        .unwrap();
    }
    let still = store.account(account).await.unwrap().over_limit;
    assert_eq!(
        still.as_deref(),
        Some("1 MySQL databases without the feature mysql")
    );
    commands::delete_database(
        store,
        &ctx(),
        account,
        "shop",
        &drover_core::Confirmation::Typed("plin_shop".to_string()),
    )
    .await
    .unwrap();
    assert_eq!(store.account(account).await.unwrap().over_limit, None);
}

async fn a_narrower_plan_is_refused_while_its_accounts_hold_more_unless_forced(store: Store_) {
    let store = &*store.0;
    let sealer = drover::engine::Sealer::from_hex(&"42".repeat(32)).unwrap();
    let mail = serde_json::json!({"features": ["web", "mail"], "max_mailboxes": 5});
    let patch = |value: serde_json::Value| serde_json::from_value(value).unwrap();
    let full = service(store, "plin.ro").await.account_id;
    commands::update_plan(store, &ctx(), PlanId(1), patch(mail), false)
        .await
        .unwrap();
    let light = service(store, "usor.ro").await.account_id;
    for name in ["ana", "ion", "eva"] {
        let password = secrecy::SecretString::from("Mail-passw0rd".to_owned());
        commands::create_mailbox(store, &ctx(), &sealer, full, name, "", password, None)
            .await
            .unwrap();
    }
    let password = secrecy::SecretString::from("Mail-passw0rd".to_owned());
    commands::create_mailbox(store, &ctx(), &sealer, light, "ana", "", password, None)
        .await
        .unwrap();
    let audits = || async {
        let filter = drover_store::AuditFilter {
            subject: Some("plan:1".into()),
            ..Default::default()
        };
        store.audit_events(filter).await.unwrap().len()
    };
    let before = audits().await;

    let two = serde_json::json!({"max_mailboxes": 2});
    let err = commands::update_plan(store, &ctx(), PlanId(1), patch(two.clone()), false)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plan 'Web' would be too small for 1 of its accounts (plin.ro: 3 mailboxes, at most 2); \
         nothing was changed — delete what is over first, or force the change to keep \
         everything and flag those accounts over their limits"
    );
    let plan = store.plan(PlanId(1)).await.unwrap();
    assert_eq!(plan.spec.max_mailboxes, Some(5));
    assert_eq!(audits().await, before);

    // Forced: nothing is deleted, only the account past the plan is flagged.
    commands::update_plan(store, &ctx(), PlanId(1), patch(two), true)
        .await
        .unwrap();
    assert_eq!(
        store.plan(PlanId(1)).await.unwrap().spec.max_mailboxes,
        Some(2)
    );
    assert_eq!(store.mailboxes(full).await.unwrap().len(), 3);
    let flagged = store.account(full).await.unwrap().over_limit;
    assert_eq!(flagged.as_deref(), Some("3 mailboxes, at most 2"));
    assert_eq!(store.account(light).await.unwrap().over_limit, None);
    assert_eq!(audits().await, before + 1);

    // Widening the plan again clears the flag of the accounts it now fits.
    let wide = serde_json::json!({"max_mailboxes": null});
    commands::update_plan(store, &ctx(), PlanId(1), patch(wide), false)
        .await
        .unwrap();
    assert_eq!(store.account(full).await.unwrap().over_limit, None);
}

/// No worker runs here: a job queued stays waiting, as it would behind a long one.
async fn a_waiting_restore_or_backup_elsewhere_is_not_joined_by_another(store: Store_) {
    use drover_store::BackupOutcome;
    let store = &*store.0;
    let svc = service(store, "dublu.ro").await;
    commands::transition_service(store, &ctx(), svc.id, Transition::Activate, None)
        .await
        .unwrap();
    let account = svc.account_id;
    let vm1 = commands::create_server(store, &ctx(), server_spec("vm1"))
        .await
        .unwrap()
        .id;
    store.assign_server(&ctx(), account, vm1).await.unwrap();
    store
        .record_observation(account, "enabled", 1)
        .await
        .unwrap();
    let spec = |name: &str| drover_core::BackupDestinationSpec {
        name: drover_core::ServerName::parse(name).unwrap(),
        location: drover_core::BackupLocation::parse("/var/backups").unwrap(),
        credentials: None,
        key_file: None,
        host_key: None,
        keep_daily: 7,
        keep_weekly: 4,
        default: false,
    };
    let one = commands::create_backup_destination(store, &ctx(), &crate::no_secrets(), spec("one"))
        .await
        .unwrap()
        .id;
    let two = commands::create_backup_destination(store, &ctx(), &crate::no_secrets(), spec("two"))
        .await
        .unwrap()
        .id;
    let mut good = Vec::new();
    for archive in [
        "/var/backups/dublu.ro/a.tar.gz",
        "/var/backups/dublu.ro/b.tar.gz",
    ] {
        let started = store
            .start_backup(account, one, vm1, archive)
            .await
            .unwrap();
        let done = BackupOutcome::Succeeded { size_bytes: None };
        good.push(
            store
                .finish_backup(&ctx(), started.id, &done)
                .await
                .unwrap()
                .id,
        );
    }

    let first = commands::backup_account(store, &ctx(), account, Some(one))
        .await
        .unwrap();
    // The same again joins it; another destination waits for it to end.
    let again = commands::backup_account(store, &ctx(), account, Some(one))
        .await
        .unwrap();
    assert_eq!(again, first);
    let err = commands::backup_account(store, &ctx(), account, Some(two))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "a backup to another destination waits or runs already (job {first})"
        )),
        "{err}"
    );

    let (plan, restoring) = commands::restore_account(
        store,
        &ctx(),
        account,
        Some(good[0]),
        drover::commands::RestoreOnto::ItsServer,
        "dublu.ro",
    )
    .await
    .unwrap();
    assert_eq!(plan.backup.id, good[0]);
    let err = commands::restore_account(
        store,
        &ctx(),
        account,
        Some(good[1]),
        drover::commands::RestoreOnto::ItsServer,
        "dublu.ro",
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "dublu.ro cannot be restored: a restore waits or runs already (job {restoring}): ask \
             again once it ended"
        )
    );
    // A server in maintenance takes no restore.
    commands::set_maintenance(store, &ctx(), vm1, true)
        .await
        .unwrap();
    let err = commands::plan_restore(store, account, Some(good[1]), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().ends_with("its server is in maintenance"),
        "{err}"
    );
}
