//! The store contract: every test here runs once on PostgreSQL and once on SQLite, against
//! real databases, so the two backends keep the same behaviour.

use std::sync::Arc;

use drover_core::{
    AuditChainBreak, AuditEventId, CustomerId, CustomerSpec, DesiredState, DomainName, PlanId,
    PlanPatch, PlanSpec, Scope, ServerPatch, ServerSpec, ServiceStatus, Transition,
};
use drover_store::jobs::ConvergeAccount;
use drover_store::{
    AccountFilter, AuditFilter, Conflict, Customer, IdempotencyStart, Job, JobFilter, NewService,
    Page, Plan, Reference, RequestContext, Server, ServiceFilter, Store, StoreError,
    TransitionOutcome, UniqueKey,
};
use secrecy::ExposeSecret;

mod dns;
mod fleet;
mod webhooks;
use dns::*;
use fleet::*;
use webhooks::*;

/// A store under test, with a way around it to play the part of someone editing the database.
struct Harness {
    store: Arc<dyn Store>,
    raw: Raw,
    _keep: Box<dyn std::any::Any + Send>,
}

enum Raw {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Raw {
    async fn exec(&self, sql: &str) -> Result<u64, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Self::Postgres(pool) => sqlx::raw_sql(sql)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
            Self::Sqlite(pool) => sqlx::raw_sql(sql)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
        }
    }

    fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// How the database would run `sql` with `binds`, one line per step. PostgreSQL is told
    /// to avoid full scans (a test's few rows make one the cheapest), so the plan shows
    /// whether an index can serve the query at all.
    async fn explain(&self, sql: &str, binds: &[drover_store::listing::Bind]) -> String {
        use drover_store::listing::Bind;
        match self {
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query("SET LOCAL enable_seqscan = off")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                let explain = format!("EXPLAIN {sql}");
                let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(explain));
                for bind in binds {
                    query = match bind {
                        Bind::Int(v) => query.bind(*v),
                        Bind::Text(v) => query.bind(v.clone()),
                    };
                }
                let lines = query.fetch_all(&mut *tx).await.unwrap();
                tx.rollback().await.unwrap();
                lines.join("\n")
            }
            Self::Sqlite(pool) => {
                let explain = format!("EXPLAIN QUERY PLAN {sql}");
                let mut query = sqlx::query(sqlx::AssertSqlSafe(explain));
                for bind in binds {
                    query = match bind {
                        Bind::Int(v) => query.bind(*v),
                        Bind::Text(v) => query.bind(v.clone()),
                    };
                }
                let rows = query.fetch_all(pool).await.unwrap();
                rows.iter()
                    .map(|row| sqlx::Row::get::<String, _>(row, "detail"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
    }
}

async fn postgres() -> Harness {
    let db = drover_testkit::TestPostgres::create()
        .await
        .expect("PostgreSQL for tests");
    let store = drover_store::PgStore::open(db.url())
        .await
        .expect("open PostgreSQL store");
    Harness {
        raw: Raw::Postgres(store.pool().clone()),
        store: Arc::new(store),
        _keep: Box::new(db),
    }
}

async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("drover.db").display());
    let store = drover_store::SqliteStore::open(&url)
        .await
        .expect("open SQLite store");
    Harness {
        raw: Raw::Sqlite(store.pool().clone()),
        store: Arc::new(store),
        _keep: Box::new(dir),
    }
}

drover_testkit::on_both_databases!(
    postgres: postgres,
    sqlite: sqlite;
    mailboxes_are_kept_by_name_and_their_passwords_by_generation,
    database_names_are_one_namespace_and_deletions_are_forgotten,
    a_certificate_keeps_its_last_failures_its_expiry_and_one_job,
    backups_keep_their_destinations_outcomes_and_who_is_due,
    a_domain_is_an_account_an_alias_or_a_subserver_and_an_aliass_zone_follows_its_account,
    customers_are_stored_and_listed,
    plans_are_created_and_patched,
    servers_are_created_and_patched,
    a_service_reserves_its_domain_and_a_unix_user,
    refused_writes_change_nothing,
    a_write_moves_a_generation_and_joins_a_waiting_job,
    retrying_a_job_while_another_waits_for_its_account_names_the_waiting_one,
    tokens_authenticate_until_revoked,
    ui_sessions_last_until_ended_expired_or_their_token_revoked,
    the_latest_audit_events_come_newest_first,
    the_first_operator_key_recorded_stays_until_rotated,
    jobs_are_counted_by_queue_and_state,
    idempotency_keys_replay_the_first_answer,
    the_audit_chain_detects_edits_and_removals,
    concurrent_changes_keep_the_audit_chain_intact,
    one_job_at_a_time_holds_an_account,
    call_slots_are_spaced_for_every_caller,
    placement_sees_each_servers_load,
    concurrent_placements_never_overfill_a_server,
    an_account_placed_twice_at_once_is_placed_once,
    dns_providers_are_stored_and_refuse_bad_settings,
    zones_keep_their_rrsets_and_their_sync_is_one_job,
    provider_sync_state_and_record_ids_are_kept,
    an_address_rewrite_changes_only_zones_pointing_at_it,
    health_checks_move_a_server_after_consecutive_results,
    a_servers_moves_are_listed_until_done,
    a_bootstrap_keeps_its_progress_and_registers_its_server_once,
    listings_filtered_by_an_indexed_column_use_its_index,
    events_go_to_the_endpoints_that_want_them_in_order,
    drift_scans_replace_findings_and_keep_what_repairs_did,
    a_provider_call_budget_is_shared_through_the_database,
    usage_is_replaced_by_each_sync_for_accounts_still_on_the_server,
    a_username_a_server_refused_is_replaced_by_the_next_free_one,
    each_attempt_of_a_job_is_kept_apart,
    a_jobs_calls_are_kept_in_order_across_its_attempts,
    a_refused_login_is_kept_until_lifted,
);

fn ctx() -> RequestContext {
    RequestContext {
        actor: "test".into(),
        correlation_id: "corr-1".into(),
    }
}

pub fn plan_spec(name: &str) -> PlanSpec {
    serde_json::from_value(serde_json::json!({
        "name": name, "disk_quota_mb": 1024, "features": ["web", "dns", "mail"],
        "required_tags": ["region-eu"]
    }))
    .unwrap()
}

pub fn server_spec(name: &str) -> ServerSpec {
    serde_json::from_value(serde_json::json!({
        "name": name, "hostname": format!("{name}.example.net"), "capacity": 100,
        "credentials": "env:VM_PASSWORD", "ipv4": "192.0.2.10", "tags": ["region-eu"]
    }))
    .unwrap()
}

pub async fn customer(store: &dyn Store) -> CustomerId {
    let spec = CustomerSpec::new("Ana Pop", Some("ana@example.ro"), None).unwrap();
    new_customer(store, spec).await.unwrap().id
}

/// The rows the command layer creates, each in a write of its own.
pub async fn new_customer(store: &dyn Store, spec: CustomerSpec) -> Result<Customer, StoreError> {
    let mut tx = store.write().await?;
    let customer = tx.insert_customer(&spec).await?;
    tx.commit().await?;
    Ok(customer)
}

pub async fn new_plan(store: &dyn Store, spec: PlanSpec) -> Result<Plan, StoreError> {
    let mut tx = store.write().await?;
    let plan = tx.insert_plan(&spec).await?;
    tx.commit().await?;
    Ok(plan)
}

pub async fn new_server(store: &dyn Store, spec: ServerSpec) -> Result<Server, StoreError> {
    let mut tx = store.write().await?;
    let server = tx.insert_server(&spec).await?;
    tx.commit().await?;
    Ok(server)
}

pub async fn new_token(
    store: &dyn Store,
    name: &str,
    scope: Scope,
) -> Result<(drover_store::ApiToken, secrecy::SecretString), StoreError> {
    let mut tx = store.write().await?;
    let token = tx.insert_token(name, scope).await?;
    tx.commit().await?;
    Ok(token)
}

/// A server patched and kept through the write primitives.
async fn patch_server(
    store: &dyn Store,
    id: drover_core::ServerId,
    patch: ServerPatch,
) -> Result<Server, StoreError> {
    let mut tx = store.write().await?;
    let spec = tx.server(id).await?.spec.patched(patch)?;
    let server = tx.update_server(id, &spec).await?;
    tx.commit().await?;
    Ok(server)
}

async fn service(store: &dyn Store, domain: &str) -> drover_store::Service {
    let customer_id = customer(store).await;
    let plan_id = match store.plans(Page::default()).await.unwrap().first() {
        Some(plan) => plan.id,
        None => new_plan(store, plan_spec("Web")).await.unwrap().id,
    };
    let new = NewService {
        customer_id,
        plan_id,
        domain: DomainName::parse(domain).unwrap(),
    };
    record_service(store, new).await
}

/// Records a pending service through the write primitives, as the command layer does.
pub async fn record_service(store: &dyn Store, new: NewService) -> drover_store::Service {
    let mut tx = store.write().await.unwrap();
    let username = tx.free_username(&new.domain).await.unwrap();
    let service = tx.insert_service(&new, &username).await.unwrap();
    tx.commit().await.unwrap();
    service
}

/// The writes of a lifecycle move, through the write primitives: the service's status, the
/// account's desired state, a new generation and its converge job.
pub async fn move_service(
    store: &dyn Store,
    id: drover_core::ServiceId,
    transition: Transition,
    reason: Option<&str>,
) -> TransitionOutcome {
    let mut tx = store.write().await.unwrap();
    let service = tx.service(id).await.unwrap();
    let status = service.status.apply(transition).unwrap();
    tx.update_service_status(id, service.status, status)
        .await
        .unwrap();
    tx.update_account_desired(service.account_id, status.desired_account_state(), reason)
        .await
        .unwrap();
    let generation = tx.next_generation(service.account_id).await.unwrap();
    let args = ConvergeAccount {
        account_id: service.account_id.get(),
        after_job: generation.converge_ended_by,
    };
    let job = tx.enqueue(&ctx(), Job::Converge(args)).await.unwrap();
    let outcome = TransitionOutcome {
        service: tx.service(id).await.unwrap(),
        account: tx.account(service.account_id).await.unwrap(),
        job_id: job.id,
        joined_waiting_job: job.joined,
    };
    tx.commit().await.unwrap();
    outcome
}

/// Puts the server in `state` with a new run of health checks, as maintenance does.
pub async fn set_server_state(
    store: &dyn Store,
    id: drover_core::ServerId,
    state: drover_core::ServerState,
) -> drover_store::Server {
    let mut tx = store.write().await.unwrap();
    tx.update_server_state(id, state).await.unwrap();
    tx.reset_health_streak(id).await.unwrap();
    let server = tx.server(id).await.unwrap();
    tx.commit().await.unwrap();
    server
}

/// Keeps a sealed password for the account in a write of its own.
async fn seal_password(
    store: &dyn Store,
    account: drover_core::AccountId,
    sealed: &[u8],
    key_id: &str,
) -> Result<(), StoreError> {
    let mut tx = store.write().await?;
    tx.update_sealed_password(account, sealed, key_id).await?;
    tx.commit().await
}

async fn audit_count(store: &dyn Store) -> usize {
    let filter = AuditFilter {
        subject: None,
        page: Page::new(None, Some(1000)),
    };
    store.audit_events(filter).await.unwrap().len()
}

async fn customers_are_stored_and_listed(h: Harness) {
    let store = &*h.store;
    let spec = CustomerSpec::new("Ana Pop", Some("ana@example.ro"), Some("BILL-1")).unwrap();
    let created = new_customer(store, spec.clone()).await.unwrap();
    assert_eq!(created.spec, spec);
    assert_eq!(store.customer(created.id).await.unwrap(), created);
    let second = new_customer(store, CustomerSpec::new("Ion", None, None).unwrap())
        .await
        .unwrap();
    let all = store.customers(Page::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![created.id, second.id]
    );
    let after_first = store
        .customers(Page::new(Some(created.id.get()), Some(10)))
        .await
        .unwrap();
    assert_eq!(after_first.len(), 1);
    assert_eq!(after_first[0].id, second.id);

    let duplicate = new_customer(store, spec).await.unwrap_err();
    assert!(
        matches!(
            duplicate,
            StoreError::Duplicate {
                key: UniqueKey::CustomerExternalRef,
                ..
            }
        ),
        "{duplicate:?}"
    );
    assert!(matches!(
        store.customer(CustomerId(999)).await,
        Err(StoreError::NotFound {
            what: "customer",
            ..
        })
    ));
}

async fn plans_are_created_and_patched(h: Harness) {
    let store = &*h.store;
    let plan = new_plan(store, plan_spec("Web")).await.unwrap();
    assert_eq!(store.plan(plan.id).await.unwrap(), plan);
    let err = new_plan(store, plan_spec("Web")).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Duplicate {
                key: UniqueKey::Name,
                ..
            }
        ),
        "{err:?}"
    );
    // Virtualmin's servers would take "WEB" for the same plan; renaming a plan to its own name
    // in another case is its own business.
    let err = new_plan(store, plan_spec("WEB")).await.unwrap_err();
    assert!(err.to_string().contains("without case"), "{err}");
    let other = new_plan(store, plan_spec("Mail")).await.unwrap();
    let rename = |name: &str| {
        serde_json::from_value::<PlanPatch>(serde_json::json!({"name": name})).unwrap()
    };
    assert!(update_plan(store, other.id, rename("web")).await.is_err());
    update_plan(store, other.id, rename("MAIL")).await.unwrap();

    let patch: PlanPatch =
        serde_json::from_str(r#"{"disk_quota_mb": null, "max_mailboxes": 25}"#).unwrap();
    let patched = update_plan(store, plan.id, patch).await.unwrap();
    assert_eq!(patched.spec.disk_quota_mb, None);
    assert_eq!(patched.spec.max_mailboxes, Some(25));
    assert_eq!(patched.spec.features, plan.spec.features);
    assert_eq!(store.plan(plan.id).await.unwrap().spec, patched.spec);
    assert!(matches!(
        update_plan(store, PlanId(404), PlanPatch::default()).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A plan patched and kept through the write primitives.
async fn update_plan(
    store: &dyn Store,
    id: PlanId,
    patch: PlanPatch,
) -> Result<drover_store::Plan, StoreError> {
    let mut tx = store.write().await?;
    let spec = tx.plan(id).await?.spec.patched(patch).validated()?;
    let plan = tx.update_plan(id, &spec).await?;
    tx.commit().await?;
    Ok(plan)
}

/// A token revoked through the write primitives.
async fn revoke_token(store: &dyn Store, id: drover_core::TokenId) -> drover_store::ApiToken {
    let mut tx = store.write().await.unwrap();
    let token = tx.revoke_token(id).await.unwrap();
    tx.commit().await.unwrap();
    token
}

async fn servers_are_created_and_patched(h: Harness) {
    let store = &*h.store;
    let server = new_server(store, server_spec("vm1")).await.unwrap();
    assert_eq!(server.state, drover_core::ServerState::Healthy);
    assert_eq!(store.server(server.id).await.unwrap(), server);

    let mut same_address = server_spec("vm2");
    same_address.hostname = server.spec.hostname.clone();
    let err = new_server(store, same_address).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Duplicate {
                key: UniqueKey::ServerAddress,
                ..
            }
        ),
        "{err:?}"
    );

    let patch: ServerPatch =
        serde_json::from_str(r#"{"capacity": 250, "ipv4": null, "rate_qps": 1.5}"#).unwrap();
    let patched = patch_server(store, server.id, patch).await.unwrap();
    assert_eq!((patched.spec.capacity, patched.spec.ipv4), (250, None));
    assert_eq!(patched.spec.rate_qps, Some(1.5));
    let bad: ServerPatch = serde_json::from_str(r#"{"capacity": 0}"#).unwrap();
    assert!(matches!(
        patch_server(store, server.id, bad).await,
        Err(StoreError::Rule(_))
    ));
    assert_eq!(store.server(server.id).await.unwrap().spec.capacity, 250);
    assert_eq!(store.servers(Page::default()).await.unwrap().len(), 1);
}

async fn a_service_reserves_its_domain_and_a_unix_user(h: Harness) {
    let store = &*h.store;
    let first = service(store, "știri.ro").await;
    assert_eq!(first.status, ServiceStatus::Pending);
    assert_eq!(first.domain.as_str(), "xn--tiri-pxb.ro");
    let account = store.account(first.account_id).await.unwrap();
    assert_eq!(account.desired_state, DesiredState::Absent);
    assert!(
        account.protected_from_deletion,
        "protection is on by default"
    );
    assert!(!account.has_sealed_password);
    assert_eq!(account.server_id, None);

    // Same first label, different domain: the unix user must differ.
    let second = service(store, "știri.com").await;
    let second_account = store.account(second.account_id).await.unwrap();
    assert_ne!(second_account.unix_username, account.unix_username);

    let found = store
        .accounts(AccountFilter {
            domain: Some(DomainName::parse("XN--TIRI-PXB.RO").unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, account.id);

    // The database itself refuses a second account for the domain, whatever the code does.
    let bypass = h
        .raw
        .exec(&format!(
            "INSERT INTO accounts (service_id, domain, unix_username, desired_state, \
             desired_generation, created_at, updated_at) VALUES ({}, 'xn--tiri-pxb.ro', \
             'other', 'absent', 1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            second.id
        ))
        .await;
    assert!(
        bypass.is_err(),
        "a duplicate domain must violate a database constraint"
    );
}

async fn refused_writes_change_nothing(h: Harness) {
    let store = &*h.store;
    let existing = service(store, "example.ro").await;
    let services_before = store.services(ServiceFilter::default()).await.unwrap();
    let audit_before = audit_count(store).await;

    let attempt = |customer_id, plan_id, domain: &str| NewService {
        customer_id,
        plan_id,
        domain: DomainName::parse(domain).unwrap(),
    };
    // Each write appends an event first: a refusal after it must take that back too.
    let refused = |new: NewService| async move {
        let mut tx = store.write().await.unwrap();
        tx.audit(&ctx(), "test.before", "test".into(), serde_json::json!({}))
            .await
            .unwrap();
        let username = tx.free_username(&new.domain).await.unwrap();
        tx.insert_service(&new, &username).await.unwrap_err()
    };
    let err = refused(attempt(
        existing.customer_id,
        existing.plan_id,
        "Example.RO.",
    ))
    .await;
    match &err {
        StoreError::Duplicate { key, message } => {
            assert_eq!(*key, UniqueKey::Domain);
            assert!(
                message.contains("example.ro") && message.contains("by service"),
                "{message}"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let err = refused(attempt(existing.customer_id, PlanId(999), "new.ro")).await;
    assert!(
        matches!(
            err,
            StoreError::UnknownReference {
                reference: Reference::Plan,
                ..
            }
        ),
        "{err:?}"
    );
    let err = refused(attempt(CustomerId(999), existing.plan_id, "new.ro")).await;
    assert!(
        matches!(
            err,
            StoreError::UnknownReference {
                reference: Reference::Customer,
                ..
            }
        ),
        "{err:?}"
    );
    let mut tx = store.write().await.unwrap();
    let err = tx
        .update_service_plan(existing.id, PlanId(404))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::UnknownReference {
                reference: Reference::Plan,
                ..
            }
        ),
        "{err:?}"
    );
    // A status that moved since it was read is a concurrent change.
    let err = tx
        .update_service_status(existing.id, ServiceStatus::Active, ServiceStatus::Suspended)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                conflict: Conflict::ConcurrentChange,
                ..
            }
        ),
        "{err:?}"
    );
    // Changes made and never committed are gone with the transaction.
    tx.update_service_status(existing.id, ServiceStatus::Pending, ServiceStatus::Active)
        .await
        .unwrap();
    tx.next_generation(existing.account_id).await.unwrap();
    let args = ConvergeAccount {
        account_id: existing.account_id.get(),
        after_job: None,
    };
    tx.enqueue(&ctx(), Job::Converge(args)).await.unwrap();
    drop(tx);

    assert_eq!(
        store.services(ServiceFilter::default()).await.unwrap(),
        services_before
    );
    assert_eq!(
        store
            .account(existing.account_id)
            .await
            .unwrap()
            .desired_generation,
        1
    );
    assert!(store.jobs(JobFilter::default()).await.unwrap().is_empty());
    assert_eq!(audit_count(store).await, audit_before);
}

async fn a_write_moves_a_generation_and_joins_a_waiting_job(h: Harness) {
    let store = &*h.store;
    let svc = service(store, "example.ro").await;
    let activated = move_service(store, svc.id, Transition::Activate, None).await;
    assert_eq!(activated.service.status, ServiceStatus::Active);
    assert_eq!(activated.account.desired_state, DesiredState::Enabled);
    assert_eq!(activated.account.desired_generation, 2);
    assert!(!activated.joined_waiting_job);
    let job = store.job(activated.job_id).await.unwrap();
    assert_eq!(
        (job.kind.as_str(), job.state.as_str(), job.account_id),
        ("converge_account", "available", Some(svc.account_id))
    );
    assert_eq!(job.correlation_id.as_deref(), Some("corr-1"));
    // A second change while the job waits joins it.
    let suspended = move_service(store, svc.id, Transition::Suspend, Some("unpaid")).await;
    assert_eq!(
        (suspended.job_id, suspended.joined_waiting_job),
        (activated.job_id, true)
    );
    assert_eq!(suspended.account.desired_generation, 3);
    assert_eq!(suspended.account.suspend_reason.as_deref(), Some("unpaid"));
    // Protection and a password are kept as written.
    let mut tx = store.write().await.unwrap();
    tx.update_account_protection(svc.account_id, false)
        .await
        .unwrap();
    tx.update_sealed_password(svc.account_id, b"sealed", "key:any")
        .await
        .unwrap();
    let account = tx.account(svc.account_id).await.unwrap();
    tx.commit().await.unwrap();
    assert!(!account.protected_from_deletion && account.has_sealed_password);
    assert_eq!(store.account(svc.account_id).await.unwrap(), account);
    // A job that ended without reaching the generation is never joined again.
    assert!(
        store
            .end_converge(svc.account_id, 3, activated.job_id)
            .await
            .unwrap()
    );
    let mut tx = store.write().await.unwrap();
    let generation = tx.next_generation(svc.account_id).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (generation.generation, generation.converge_ended_by),
        (4, Some(activated.job_id.get()))
    );
}

async fn retrying_a_job_while_another_waits_for_its_account_names_the_waiting_one(h: Harness) {
    let store = &*h.store;
    let svc = service(store, "example.ro").await;
    let first = move_service(store, svc.id, Transition::Activate, None)
        .await
        .job_id;
    store.cancel_job(first).await.unwrap();
    let waiting = move_service(store, svc.id, Transition::Suspend, None)
        .await
        .job_id;
    assert_ne!(waiting, first);
    let err = store.retry_job(first).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                conflict: Conflict::JobWaiting,
                ..
            }
        ) && err.to_string().contains(&format!("job {waiting}")),
        "{err:?}"
    );
    assert_eq!(store.job(first).await.unwrap().state, "cancelled");
    // Once the waiting job is gone, the retry goes through.
    store.cancel_job(waiting).await.unwrap();
    store.retry_job(first).await.unwrap();
    assert_eq!(store.job(first).await.unwrap().state, "available");
    let unknown = store.cancel_job(drover_core::JobId(999_999)).await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound { what: "job", .. })),
        "{unknown:?}"
    );
}

async fn the_first_operator_key_recorded_stays_until_rotated(h: Harness) {
    let store = &*h.store;
    assert_eq!(store.seal_key_id().await.unwrap(), None);
    assert_eq!(store.any_sealed_password().await.unwrap(), None);
    assert_eq!(
        store.record_seal_key_id("key:aaaa").await.unwrap(),
        "key:aaaa"
    );
    assert_eq!(
        store.record_seal_key_id("key:bbbb").await.unwrap(),
        "key:aaaa",
        "a second key does not replace the first"
    );
    assert_eq!(
        store.seal_key_id().await.unwrap().as_deref(),
        Some("key:aaaa")
    );

    let account = service(store, "sealed.ro").await.account_id;
    seal_password(store, account, b"old:pw", "key:aaaa")
        .await
        .unwrap();
    let mailbox = drover_core::MailboxName::parse("ana").unwrap();
    let mut tx = store.write().await.unwrap();
    tx.insert_mailbox(account, &mailbox, "", b"old:mb", "key:aaaa")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let reseal = |sealed: &[u8]| match sealed.strip_prefix(b"old:") {
        Some(password) => Ok([b"new:".as_slice(), password].concat()),
        None => Err("not sealed with the old key".to_owned()),
    };
    let refused = store
        .reseal_passwords(&ctx(), &reseal, "key:bbbb", "key:cccc")
        .await;
    assert!(refused.is_err(), "only from the recorded key");
    let audited = audit_count(store).await;
    let count = store
        .reseal_passwords(&ctx(), &reseal, "key:aaaa", "key:cccc")
        .await
        .unwrap();
    assert_eq!(count, 2, "the account's and its mailbox's");
    assert_eq!(
        store
            .mailbox_password(account, &mailbox)
            .await
            .unwrap()
            .sealed,
        b"new:mb",
        "a mailbox's password opens with the new key"
    );
    assert_eq!(
        store.any_sealed_password().await.unwrap().as_deref(),
        Some(&b"new:pw"[..])
    );
    assert_eq!(
        store.seal_key_id().await.unwrap().as_deref(),
        Some("key:cccc")
    );
    assert_eq!(audit_count(store).await, audited + 1);
    // A process still holding the old key seals nothing more: its passwords could not be opened.
    for refused in [
        seal_password(store, account, b"old:pw2", "key:aaaa").await,
        store
            .store_sealed_password(account, b"old:pw2", "key:aaaa")
            .await,
    ] {
        let err = refused.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Conflict {
                    conflict: Conflict::KeyRotated,
                    ..
                }
            ) && err.to_string().contains("rotated to key:cccc"),
            "{err}"
        );
    }
    assert_eq!(
        store.any_sealed_password().await.unwrap().as_deref(),
        Some(&b"new:pw"[..])
    );
    // A password that does not open stops the whole rotation.
    let failed = store
        .reseal_passwords(&ctx(), &reseal, "key:cccc", "key:dddd")
        .await;
    assert!(failed.is_err());
    assert_eq!(
        store.seal_key_id().await.unwrap().as_deref(),
        Some("key:cccc")
    );
}

async fn jobs_are_counted_by_queue_and_state(h: Harness) {
    let store = &*h.store;
    assert_eq!(store.job_counts().await.unwrap(), vec![]);
    let service = service(store, "counted.ro").await;
    move_service(store, service.id, Transition::Activate, None).await;
    let counts = store.job_counts().await.unwrap();
    let seen: Vec<(&str, &str, i64)> = counts
        .iter()
        .map(|c| (c.queue.as_str(), c.state.as_str(), c.count))
        .collect();
    assert_eq!(seen, [("converge", "available", 1)]);
    // Due now, so not late yet: a few seconds at most, never hours (time zones) or negative.
    assert!(
        (-1.0..60.0).contains(&counts[0].oldest_seconds),
        "{counts:?}"
    );
}

async fn tokens_authenticate_until_revoked(h: Harness) {
    let store = &*h.store;
    let (token, secret) = new_token(store, "billing", Scope::Billing).await.unwrap();
    assert!(secret.expose_secret().starts_with("drv_"));
    let found = store
        .authenticate(secret.expose_secret())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id, found.scope), (token.id, Scope::Billing));
    assert_eq!(store.authenticate("drv_wrong").await.unwrap(), None);
    revoke_token(store, token.id).await;
    assert_eq!(
        store.authenticate(secret.expose_secret()).await.unwrap(),
        None
    );
    assert!(store.tokens().await.unwrap()[0].revoked_at.is_some());
    // Only operator tokens not yet revoked are counted as working.
    let (first, _) = new_token(store, "ops-1", Scope::Operator).await.unwrap();
    let mut tx = store.write().await.unwrap();
    assert_eq!(tx.active_operator_tokens().await.unwrap(), [first.id]);
    tx.revoke_token(first.id).await.unwrap();
    assert!(tx.active_operator_tokens().await.unwrap().is_empty());
    drop(tx);
    let still = store.tokens().await.unwrap();
    assert!(
        still
            .iter()
            .any(|t| t.id == first.id && t.revoked_at.is_none()),
        "a revocation never committed is gone: {still:?}"
    );
}

async fn the_latest_audit_events_come_newest_first(h: Harness) {
    let store = &*h.store;
    let ctx = RequestContext {
        actor: "test".into(),
        correlation_id: "c".into(),
    };
    for i in 0..5 {
        let subject = if i % 2 == 0 { "server:1" } else { "server:2" };
        store
            .audit(
                &ctx,
                &format!("step.{i}"),
                subject.into(),
                serde_json::json!({}),
            )
            .await
            .unwrap();
    }
    let actions = |events: Vec<drover_core::AuditEntry>| {
        events.into_iter().map(|e| e.action).collect::<Vec<_>>()
    };
    let newest = store.latest_audit_events(None, None, 2).await.unwrap();
    let before = newest.last().unwrap().id.get();
    assert_eq!(actions(newest), ["step.4", "step.3"]);
    assert_eq!(
        actions(
            store
                .latest_audit_events(None, Some(before), 10)
                .await
                .unwrap()
        ),
        ["step.2", "step.1", "step.0"]
    );
    assert_eq!(
        actions(
            store
                .latest_audit_events(Some("server:1"), None, 2)
                .await
                .unwrap()
        ),
        ["step.4", "step.2"]
    );
}

async fn ui_sessions_last_until_ended_expired_or_their_token_revoked(h: Harness) {
    let store = &*h.store;
    let (token, _) = new_token(store, "support", Scope::Readonly).await.unwrap();
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    store
        .open_session("s-1", token.id, "form-1", later)
        .await
        .unwrap();
    let open = store.session("s-1").await.unwrap().expect("open");
    assert_eq!(
        (open.token.id, open.token.scope, open.form_token.as_str()),
        (token.id, Scope::Readonly, "form-1")
    );
    assert_eq!(open.language, None);
    store.set_session_language("s-1", "ro").await.unwrap();
    assert_eq!(
        store
            .session("s-1")
            .await
            .unwrap()
            .unwrap()
            .language
            .as_deref(),
        Some("ro")
    );
    assert_eq!(store.session("s-2").await.unwrap(), None, "unknown");
    // Signing out ends it.
    store.end_session("s-1").await.unwrap();
    assert_eq!(store.session("s-1").await.unwrap(), None);
    // An expired one is no session, and is dropped when the next opens.
    let past = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
    store
        .open_session("old", token.id, "f", past)
        .await
        .unwrap();
    assert_eq!(store.session("old").await.unwrap(), None);
    // Revoking the token ends every session opened with it.
    store
        .open_session("s-3", token.id, "f3", later)
        .await
        .unwrap();
    assert!(store.session("s-3").await.unwrap().is_some());
    revoke_token(store, token.id).await;
    assert_eq!(store.session("s-3").await.unwrap(), None);
}

async fn idempotency_keys_replay_the_first_answer(h: Harness) {
    let store = &*h.store;
    let (token, _) = new_token(store, "billing", Scope::Billing).await.unwrap();
    assert_eq!(
        store.start_idempotent(token.id, "k1", "h1").await.unwrap(),
        IdempotencyStart::Proceed
    );
    let running = store
        .start_idempotent(token.id, "k1", "h1")
        .await
        .unwrap_err();
    assert!(matches!(
        running,
        StoreError::Conflict {
            conflict: Conflict::IdempotentRequestInProgress,
            ..
        }
    ));
    store
        .finish_idempotent(token.id, "k1", 201, r#"{"id":1}"#)
        .await
        .unwrap();
    assert_eq!(
        store.start_idempotent(token.id, "k1", "h1").await.unwrap(),
        IdempotencyStart::Replay {
            status: 201,
            body: r#"{"id":1}"#.into()
        }
    );
    let reused = store
        .start_idempotent(token.id, "k1", "other")
        .await
        .unwrap_err();
    assert!(matches!(
        reused,
        StoreError::Conflict {
            conflict: Conflict::IdempotencyKeyReused,
            ..
        }
    ));

    // An abandoned claim frees the key for a retry; a finished one stays.
    assert_eq!(
        store.start_idempotent(token.id, "k2", "h").await.unwrap(),
        IdempotencyStart::Proceed
    );
    store.abandon_idempotent(token.id, "k2").await.unwrap();
    assert_eq!(
        store.start_idempotent(token.id, "k2", "h").await.unwrap(),
        IdempotencyStart::Proceed
    );
    store.abandon_idempotent(token.id, "k1").await.unwrap();
    assert!(matches!(
        store.start_idempotent(token.id, "k1", "h1").await.unwrap(),
        IdempotencyStart::Replay { .. }
    ));
}

async fn the_audit_chain_detects_edits_and_removals(h: Harness) {
    let store = &*h.store;
    for name in ["a", "b", "c", "d"] {
        let subject = format!("customer:{name}");
        store
            .audit(&ctx(), "customer.create", subject, serde_json::json!({}))
            .await
            .unwrap();
    }
    let report = store.verify_audit().await.unwrap();
    assert!(report.intact, "{report:?}");
    assert_eq!(report.events_checked, 4);

    // The append-only guard refuses a casual edit...
    assert!(
        h.raw
            .exec("UPDATE audit_events SET actor = 'x' WHERE id = 2")
            .await
            .is_err()
    );
    assert!(
        h.raw
            .exec("DELETE FROM audit_events WHERE id = 2")
            .await
            .is_err()
    );

    // ...and someone who removes the guard is caught by the chain.
    let unguard = if h.raw.is_postgres() {
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"
    } else {
        "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete"
    };
    h.raw.exec(unguard).await.unwrap();
    assert_eq!(
        h.raw
            .exec("UPDATE audit_events SET actor = 'someone' WHERE id = 2")
            .await
            .unwrap(),
        1
    );
    let report = store.verify_audit().await.unwrap();
    assert!(!report.intact);
    assert_eq!(
        report.problem,
        Some(AuditChainBreak::Altered {
            id: AuditEventId(2)
        })
    );

    h.raw
        .exec("UPDATE audit_events SET actor = 'test' WHERE id = 2")
        .await
        .unwrap();
    assert!(
        store.verify_audit().await.unwrap().intact,
        "restoring the row restores the chain"
    );

    h.raw
        .exec("DELETE FROM audit_events WHERE id = 3")
        .await
        .unwrap();
    let problem = store.verify_audit().await.unwrap().problem;
    assert!(
        matches!(
            problem,
            Some(AuditChainBreak::Unlinked {
                id: AuditEventId(4),
                ..
            })
        ),
        "{problem:?}"
    );

    h.raw
        .exec("DELETE FROM audit_events WHERE id >= 3")
        .await
        .unwrap();
    let problem = store.verify_audit().await.unwrap().problem;
    assert!(
        matches!(problem, Some(AuditChainBreak::Truncated { .. })),
        "{problem:?}"
    );
}

async fn concurrent_changes_keep_the_audit_chain_intact(h: Harness) {
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = Arc::clone(&h.store);
            tokio::spawn(async move {
                // Each write appends to the chain as a command does, with its change.
                let spec = CustomerSpec::new(&format!("customer {i}"), None, None).unwrap();
                let mut tx = store.write().await?;
                let customer = tx.insert_customer(&spec).await?;
                let subject = format!("customer:{}", customer.id);
                tx.audit(&ctx(), "customer.create", subject, serde_json::json!({}))
                    .await?;
                tx.commit().await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let report = h.store.verify_audit().await.unwrap();
    assert!(report.intact, "{report:?}");
    assert_eq!(report.events_checked, 24);
}

async fn one_job_at_a_time_holds_an_account(h: Harness) {
    let store = &*h.store;
    let svc = service(store, "example.ro").await;
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60);
    let job = |n| drover_core::JobId(n);
    assert!(
        store
            .lease_account(svc.account_id, job(1), later)
            .await
            .unwrap()
    );
    assert!(
        !store
            .lease_account(svc.account_id, job(2), later)
            .await
            .unwrap(),
        "held by job 1"
    );
    assert!(
        store
            .lease_account(svc.account_id, job(1), later)
            .await
            .unwrap(),
        "job 1 may renew"
    );
    store.release_account(svc.account_id, job(2)).await.unwrap();
    assert!(
        !store
            .lease_account(svc.account_id, job(2), later)
            .await
            .unwrap(),
        "only the holder releases"
    );
    store.release_account(svc.account_id, job(1)).await.unwrap();
    assert!(
        store
            .lease_account(svc.account_id, job(2), later)
            .await
            .unwrap()
    );
    // An expired lease (a crashed worker's) can be taken.
    let past = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
    assert!(
        store
            .lease_account(svc.account_id, job(2), past)
            .await
            .unwrap()
    );
    assert!(
        store
            .lease_account(svc.account_id, job(3), later)
            .await
            .unwrap()
    );
}

async fn call_slots_are_spaced_for_every_caller(h: Harness) {
    let server = new_server(&*h.store, server_spec("vm1")).await.unwrap().id;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = Arc::clone(&h.store);
            tokio::spawn(async move { store.reserve_call_slot(server, 500).await.unwrap() })
        })
        .collect();
    let mut slots = Vec::new();
    for task in tasks {
        slots.push(task.await.unwrap());
    }
    slots.sort_unstable();
    for pair in slots.windows(2) {
        assert_eq!(pair[1] - pair[0], 500, "{slots:?}");
    }
    let other = new_server(&*h.store, server_spec("vm2")).await.unwrap().id;
    let first = h.store.reserve_call_slot(other, 500).await.unwrap();
    assert!(first < slots[9], "each server has its own slots");
}

async fn placement_sees_each_servers_load(h: Harness) {
    let store = &*h.store;
    let vm1 = new_server(store, server_spec("vm1")).await.unwrap().id;
    new_server(store, server_spec("vm2")).await.unwrap();
    for domain in ["a.ro", "b.ro"] {
        let svc = service(store, domain).await;
        move_service(store, svc.id, Transition::Activate, None).await;
        store
            .assign_server(&ctx(), svc.account_id, vm1)
            .await
            .unwrap();
    }
    // A pending account placed nowhere yet, and one that is absent, count for nothing.
    service(store, "c.ro").await;
    let candidates = store.placement_candidates().await.unwrap();
    let load: Vec<(String, u32)> = candidates
        .iter()
        .map(|c| (c.name.clone(), c.accounts))
        .collect();
    assert_eq!(load, [("vm1".to_owned(), 2), ("vm2".to_owned(), 0)]);
    let placed = store.account(drover_core::AccountId(1)).await.unwrap();
    let again = store
        .assign_server(&ctx(), placed.id, vm1)
        .await
        .unwrap_err();
    assert!(matches!(
        again,
        StoreError::Conflict {
            conflict: Conflict::AlreadyPlaced,
            ..
        }
    ));
}

/// Placements made at the same moment (as concurrent converge jobs make them) never put more on
/// a server than it has room for: each sees the load the ones before it added.
async fn concurrent_placements_never_overfill_a_server(h: Harness) {
    let store = &*h.store;
    for name in ["vm1", "vm2"] {
        let mut spec = server_spec(name);
        spec.capacity = 10;
        new_server(store, spec).await.unwrap();
    }
    let mut accounts = Vec::new();
    for i in 0..24 {
        let svc = service(store, &format!("site{i}.ro")).await;
        move_service(store, svc.id, Transition::Activate, None).await;
        accounts.push(svc.account_id);
    }
    let mut placing = tokio::task::JoinSet::new();
    for account in accounts {
        let store = Arc::clone(&h.store);
        placing.spawn(async move {
            let policy = drover_core::PlacementPolicy::default();
            store.place_account(&ctx(), account, &[], &policy).await
        });
    }
    let mut per_server = std::collections::BTreeMap::<String, usize>::new();
    let mut refused = Vec::new();
    for result in placing.join_all().await {
        match result.unwrap() {
            Ok(server) => *per_server.entry(server.spec.name.to_string()).or_default() += 1,
            Err(reason) => refused.push(reason),
        }
    }
    // 90 % of 10 on each server; the rest wait with the reason.
    assert_eq!(
        per_server.into_iter().collect::<Vec<_>>(),
        [("vm1".to_owned(), 9), ("vm2".to_owned(), 9)]
    );
    assert_eq!(refused.len(), 6);
    assert!(
        refused[0].contains("under 90 % of its capacity"),
        "{}",
        refused[0]
    );
}

/// Placements asked for at the same moment (a job and its rescued twin): an account asked for
/// twice is placed (and audited) once, the other asks refused as already placed, the rest placed.
async fn an_account_placed_twice_at_once_is_placed_once(h: Harness) {
    let store = &*h.store;
    new_server(store, server_spec("vm1")).await.unwrap();
    let mut accounts = Vec::new();
    for i in 0..3 {
        let svc = service(store, &format!("twice{i}.ro")).await;
        move_service(store, svc.id, Transition::Activate, None).await;
        accounts.push(svc.account_id);
    }
    let asks = [
        accounts[0],
        accounts[1],
        accounts[0],
        accounts[2],
        accounts[0],
    ];
    let mut placing = tokio::task::JoinSet::new();
    for account in asks {
        let store = Arc::clone(&h.store);
        placing.spawn(async move {
            let policy = drover_core::PlacementPolicy::default();
            (
                account,
                store.place_account(&ctx(), account, &[], &policy).await,
            )
        });
    }
    let (mut placed, mut refused) = (Vec::new(), Vec::new());
    for (account, result) in placing.join_all().await {
        match result {
            Ok(Ok(server)) => placed.push((account, server.spec.name.to_string())),
            Ok(Err(reason)) => panic!("{account}: no server: {reason}"),
            Err(e) => refused.push((account, e)),
        }
    }
    placed.sort_by_key(|(account, _)| *account);
    assert_eq!(
        placed,
        accounts
            .iter()
            .map(|a| (*a, "vm1".to_owned()))
            .collect::<Vec<_>>()
    );
    assert_eq!(refused.len(), 2, "{refused:?}");
    for (account, e) in refused {
        assert_eq!(account, accounts[0]);
        assert!(
            matches!(
                e,
                StoreError::Conflict {
                    conflict: Conflict::AlreadyPlaced,
                    ..
                }
            ),
            "{e}"
        );
    }
    for account in accounts {
        let audit = store
            .audit_events(AuditFilter {
                subject: Some(format!("account:{account}")),
                page: Page::new(None, Some(1000)),
            })
            .await
            .unwrap();
        let placements = audit.iter().filter(|e| e.action == "account.place");
        assert_eq!(placements.count(), 1, "{account}");
    }
}

async fn a_username_a_server_refused_is_replaced_by_the_next_free_one(h: Harness) {
    let store = &*h.store;
    // A server's own user is never the first choice.
    let mail = service(store, "mail.ro").await;
    let taken = service(store, "mail.com").await;
    let first = store.account(mail.account_id).await.unwrap().unix_username;
    assert_eq!(first.as_str(), "mail1");
    assert_eq!(
        store
            .account(taken.account_id)
            .await
            .unwrap()
            .unix_username
            .as_str(),
        "mail2"
    );
    // The server refused mail1: the next candidate no account holds is mail3.
    let chosen = store
        .reassign_username(&ctx(), mail.account_id, &first)
        .await
        .unwrap();
    assert_eq!(chosen.as_str(), "mail3");
    assert_eq!(
        store.account(mail.account_id).await.unwrap().unix_username,
        chosen
    );
    // A second try that saw the old refusal keeps what the first chose.
    assert_eq!(
        store
            .reassign_username(&ctx(), mail.account_id, &first)
            .await
            .unwrap(),
        chosen
    );
    let audit = store
        .audit_events(AuditFilter {
            subject: Some(format!("account:{}", mail.account_id)),
            page: Page::new(None, Some(1000)),
        })
        .await
        .unwrap();
    let changes: Vec<serde_json::Value> = audit
        .iter()
        .filter(|e| e.action == "account.username_changed")
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect();
    assert_eq!(
        changes,
        [serde_json::json!({ "from": "mail1", "to": "mail3" })],
        "one change, audited once"
    );
}

async fn a_jobs_calls_are_kept_in_order_across_its_attempts(h: Harness) {
    let store = &*h.store;
    let job = drover_core::JobId(41);
    let call = |name: &str, outcome: &str| drover_store::JobCall {
        seq: 0,
        server: "vm1".into(),
        call: name.into(),
        outcome: outcome.into(),
        message: (outcome != "ok").then(|| "timed out".to_owned()),
        duration_ms: 12,
        at: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
    };
    store
        .record_job_calls(
            job,
            &[call("list-domains", "ok"), call("create-domain", "error")],
        )
        .await
        .unwrap();
    store.record_job_calls(job, &[]).await.unwrap();
    store
        .record_job_calls(job, &[call("create-domain", "ok")])
        .await
        .unwrap();
    let kept: Vec<_> = store
        .job_calls(job)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.seq, c.call, c.outcome, c.message.is_some()))
        .collect();
    assert_eq!(
        kept,
        [
            (1, "list-domains".into(), "ok".into(), false),
            (2, "create-domain".into(), "error".into(), true),
            (3, "create-domain".into(), "ok".into(), false),
        ]
    );
    assert!(
        store
            .job_calls(drover_core::JobId(42))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn each_attempt_of_a_job_is_kept_apart(h: Harness) {
    let store = &*h.store;
    let svc = service(store, "tries.ro").await;
    let moved = move_service(store, svc.id, Transition::Activate, None).await;
    let at = |s: i64| jiff::Timestamp::from_microsecond(1_800_000_000_000_000 + s).unwrap();
    for (attempt, outcome, message, started) in [
        (1, "retried", Some("transient: DBI connect failed"), 0),
        (2, "snoozed", Some("the server refused drover's login"), 10),
        (2, "completed", None, 20),
    ] {
        store
            .record_job_attempt(&drover_store::JobAttempt {
                job_id: moved.job_id,
                attempt,
                outcome: outcome.into(),
                message: message.map(Into::into),
                started_at: at(started),
                finished_at: at(started + 5),
            })
            .await
            .unwrap();
    }
    let attempts = store.job_attempts(moved.job_id).await.unwrap();
    let seen: Vec<_> = attempts
        .iter()
        .map(|a| {
            (
                a.attempt,
                a.outcome.as_str(),
                a.message.is_some(),
                a.started_at,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, "retried", true, at(0)),
            (2, "snoozed", true, at(10)),
            (2, "completed", false, at(20)),
        ]
    );
    assert!(
        store
            .job_attempts(drover_core::JobId(999))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_refused_login_is_kept_until_lifted(h: Harness) {
    let store = &*h.store;
    let server = new_server(store, server_spec("vm1")).await.unwrap();
    assert!(server.login_refused.is_none());
    store
        .mark_login_refused(
            &ctx(),
            server.id,
            "auth: wrong user name or password",
            "0a1b2c3d",
        )
        .await
        .unwrap();
    let refused = store.server(server.id).await.unwrap();
    let mark = refused.login_refused.clone().expect("kept");
    assert_eq!(mark.reason, "auth: wrong user name or password");
    assert_eq!(mark.secret_sha256, "0a1b2c3d");
    assert_eq!(
        refused.updated_at, server.updated_at,
        "the record itself is unchanged"
    );
    // The same secret refused again (another process) is the same refusal: audited once.
    store
        .mark_login_refused(&ctx(), server.id, "auth: again", "0a1b2c3d")
        .await
        .unwrap();
    assert_eq!(
        store.server(server.id).await.unwrap().login_refused,
        Some(mark)
    );
    let listed = store.servers(Page::default()).await.unwrap();
    assert!(listed[0].login_refused.is_some(), "listed with it");
    let mut tx = store.write().await.unwrap();
    assert!(tx.clear_login_refused(server.id).await.unwrap());
    assert!(
        !tx.clear_login_refused(server.id).await.unwrap(),
        "lifted once"
    );
    tx.commit().await.unwrap();
    let lifted = store.server(server.id).await.unwrap();
    assert!(lifted.login_refused.is_none());
    assert!(
        lifted.updated_at > server.updated_at,
        "clients are built afresh"
    );
    let audited = store
        .audit_events(AuditFilter {
            subject: Some(format!("server:{}", server.id)),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = audited.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "server.login_refused")
            .count(),
        1,
        "{actions:?}"
    );
}

#[tokio::test]
async fn a_new_sqlite_database_and_its_wal_are_readable_by_their_owner_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drover.db");
    let store = drover_store::SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    customer(&store).await;
    for name in ["drover.db", "drover.db-wal", "drover.db-shm"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} is {:o}", mode & 0o777);
    }
}

#[tokio::test]
async fn a_postgres_store_keeps_at_most_the_connections_it_is_given() {
    let db = drover_testkit::TestPostgres::create()
        .await
        .expect("PostgreSQL for tests");
    let store = drover_store::PgStore::open_with_pool(db.url(), 3)
        .await
        .unwrap();
    assert_eq!(store.pool().options().get_max_connections(), 3);
    let held: Vec<_> = acquire_all(store.pool(), 3).await;
    assert!(
        tokio::time::timeout(
            std::time::Duration::from_millis(200),
            store.pool().acquire()
        )
        .await
        .is_err(),
        "a fourth connection waits"
    );
    drop(held);
}

async fn acquire_all(
    pool: &sqlx::PgPool,
    n: usize,
) -> Vec<sqlx::pool::PoolConnection<sqlx::Postgres>> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(pool.acquire().await.unwrap());
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_starting_at_once_on_a_new_sqlite_database_all_open_it() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("drover.db").display());
        let starting: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { drover_store::SqliteStore::open(&url).await })
            })
            .collect();
        for process in starting {
            process
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
}

async fn mailboxes_are_kept_by_name_and_their_passwords_by_generation(h: Harness) {
    let store = &*h.store;
    let account = service(store, "posta.ro").await.account_id;
    let name = |n: &str| drover_core::MailboxName::parse(n).unwrap();
    let mut tx = store.write().await.unwrap();
    for n in ["zed", "a-b", "a.b", "a_b"] {
        tx.insert_mailbox(account, &name(n), "", b"sealed", "key:aaaa")
            .await
            .unwrap();
    }
    let taken = tx
        .insert_mailbox(account, &name("zed"), "", b"sealed", "key:aaaa")
        .await
        .unwrap_err();
    assert!(
        matches!(
            taken,
            StoreError::Duplicate {
                key: UniqueKey::MailboxName,
                ..
            }
        ),
        "{taken:?}"
    );
    drop(tx);
    let mut tx = store.write().await.unwrap();
    let missing = tx
        .insert_mailbox(
            drover_core::AccountId(999),
            &name("ana"),
            "",
            b"s",
            "key:aaaa",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            missing,
            StoreError::NotFound {
                what: "account",
                ..
            }
        ),
        "{missing:?}"
    );
    drop(tx);
    let mut tx = store.write().await.unwrap();
    for n in ["zed", "a-b", "a.b", "a_b"] {
        tx.insert_mailbox(account, &name(n), "", b"sealed", "key:aaaa")
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let names: Vec<String> = store
        .mailboxes(account)
        .await
        .unwrap()
        .iter()
        .map(|m| m.name.to_string())
        .collect();
    assert_eq!(
        names,
        ["a-b", "a.b", "a_b", "zed"],
        "by name, alike on both databases"
    );
    // A password set by a job of generation 1 while a newer one was kept stays pending.
    let zed = name("zed");
    let mut tx = store.write().await.unwrap();
    tx.update_mailbox_password(account, &zed, b"newer", "key:aaaa")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.mailbox_password(account, &zed).await.unwrap(),
        drover_store::SealedMailboxPassword {
            sealed: b"newer".to_vec(),
            generation: 2,
            is_hash: false,
        }
    );
    store.mailbox_password_set(account, &zed, 2).await.unwrap();
    store.mailbox_password_set(account, &zed, 1).await.unwrap();
    let pending = |all: Vec<drover_store::Mailbox>| {
        all.into_iter()
            .find(|m| m.name == zed)
            .unwrap()
            .password_pending
    };
    assert!(
        !pending(store.mailboxes(account).await.unwrap()),
        "an older job does not undo it"
    );
    // An adopted mailbox keeps the server's hash of its password, with its own quota, and
    // nothing pending; a password set in drover replaces the hash.
    let adopted = drover_core::AdoptedMailbox {
        name: name("sales"),
        real_name: "Sales".into(),
        quota_mb: Some(50),
    };
    let mut tx = store.write().await.unwrap();
    let recorded = tx
        .insert_adopted_mailbox(account, &adopted, b"sealed-hash", "key:aaaa")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (
            recorded.real_name.as_str(),
            recorded.quota_mb,
            recorded.password_pending
        ),
        ("Sales", Some(50), false)
    );
    let kept = store
        .mailbox_password(account, &adopted.name)
        .await
        .unwrap();
    assert!(kept.is_hash && kept.sealed == b"sealed-hash", "{kept:?}");
    let mut tx = store.write().await.unwrap();
    tx.update_mailbox_password(account, &adopted.name, b"plain", "key:aaaa")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let kept = store
        .mailbox_password(account, &adopted.name)
        .await
        .unwrap();
    assert!(!kept.is_hash && kept.sealed == b"plain", "{kept:?}");
    let mut tx = store.write().await.unwrap();
    tx.mark_mailbox_deleting(account, &adopted.name)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    store.forget_mailbox(account, &adopted.name).await.unwrap();

    // Only a mailbox being deleted is forgotten one by one; an account's all at once.
    store.forget_mailbox(account, &zed).await.unwrap();
    assert_eq!(store.mailboxes(account).await.unwrap().len(), 4);
    let mut tx = store.write().await.unwrap();
    tx.mark_mailbox_deleting(account, &zed).await.unwrap();
    tx.commit().await.unwrap();
    store.forget_mailbox(account, &zed).await.unwrap();
    assert_eq!(store.mailboxes(account).await.unwrap().len(), 3);
    store.forget_resources(account).await.unwrap();
    assert!(store.mailboxes(account).await.unwrap().is_empty());
}

async fn database_names_are_one_namespace_and_deletions_are_forgotten(h: Harness) {
    let store = &*h.store;
    let shop = service(store, "magazin.ro").await;
    let shop = store.account(shop.account_id).await.unwrap();
    let blog = service(store, "jurnal.ro").await;
    let name = |n: &str| drover_core::DatabaseName::parse(n, &shop.unix_username).unwrap();
    let mysql = drover_core::DatabaseType::Mysql;
    let mut tx = store.write().await.unwrap();
    for n in ["zed", "a_b", "a1"] {
        tx.insert_database(shop.id, &name(n), mysql).await.unwrap();
    }
    tx.commit().await.unwrap();
    // Another account cannot record a name held already: the server's names are one namespace.
    let mut tx = store.write().await.unwrap();
    let taken = tx
        .insert_database(blog.account_id, &name("zed"), mysql)
        .await
        .unwrap_err();
    assert!(
        matches!(
            taken,
            StoreError::Duplicate {
                key: UniqueKey::DatabaseName,
                ..
            }
        ),
        "{taken:?}"
    );
    drop(tx);
    let listed = store.databases(shop.id).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|d| d.name.as_str()).collect();
    let prefix = drover_core::DatabaseName::prefix(&shop.unix_username);
    assert_eq!(
        names,
        [
            format!("{prefix}_a1"),
            format!("{prefix}_a_b"),
            format!("{prefix}_zed")
        ],
        "by name, alike on both databases"
    );
    assert!(listed.iter().all(|d| d.kind == mysql && !d.deleting));
    assert!(store.databases(blog.account_id).await.unwrap().is_empty());
    // Only a database being deleted is forgotten one by one; an account's all at once.
    let zed = name("zed");
    store.forget_database(shop.id, &zed).await.unwrap();
    assert_eq!(store.databases(shop.id).await.unwrap().len(), 3);
    let mut tx = store.write().await.unwrap();
    tx.mark_database_deleting(shop.id, &zed).await.unwrap();
    let unknown = tx
        .mark_database_deleting(blog.account_id, &zed)
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, StoreError::NotFound { .. }),
        "{unknown:?}"
    );
    drop(tx);
    let mut tx = store.write().await.unwrap();
    tx.mark_database_deleting(shop.id, &zed).await.unwrap();
    tx.commit().await.unwrap();
    assert!(store.databases(shop.id).await.unwrap()[2].deleting);
    store.forget_database(shop.id, &zed).await.unwrap();
    assert_eq!(store.databases(shop.id).await.unwrap().len(), 2);
    store.forget_resources(shop.id).await.unwrap();
    assert!(store.databases(shop.id).await.unwrap().is_empty());
}

async fn a_certificate_keeps_its_last_failures_its_expiry_and_one_job(h: Harness) {
    use drover_core::CertificateState::{Failed, Issued, Requested};
    use drover_store::{CertificateFilter, CertificateOutcome};
    let store = &*h.store;
    let ana = service(store, "cert-ana.ro").await.account_id;
    let ion = service(store, "cert-ion.ro").await.account_id;
    assert!(store.certificate(ana).await.unwrap().is_none());
    let domain = |d: &str| drover_core::DomainName::parse(d).unwrap();
    let (own, shop) = (domain("cert-ana.ro"), domain("shop.cert-ana.ro"));
    let names = [own.clone(), shop.clone()];
    let missing = store
        .request_certificate(&ctx(), drover_core::AccountId(999), &names, &names)
        .await
        .unwrap_err();
    assert!(
        matches!(missing, StoreError::NotFound { .. }),
        "{missing:?}"
    );
    let (asked, job) = store
        .request_certificate(&ctx(), ana, &names, &names)
        .await
        .unwrap();
    assert_eq!(
        (asked.state, asked.failures, job.joined),
        (Requested, 0, false)
    );
    assert_eq!(asked.domain.as_str(), "cert-ana.ro");
    let wanted = |c: &drover_store::Certificate| -> Vec<String> {
        c.names
            .iter()
            .filter(|n| n.wanted())
            .map(|n| n.domain.to_string())
            .collect()
    };
    assert_eq!(
        wanted(&asked),
        ["cert-ana.ro", "shop.cert-ana.ro"],
        "its domain first"
    );
    // Asked again while its job waits: the same job.
    let (asked, again) = store
        .request_certificate(&ctx(), ana, &names, &names)
        .await
        .unwrap();
    assert_eq!((again.id, again.joined), (job.id, true));
    let now = jiff::Timestamp::now();
    let later = now + jiff::SignedDuration::from_mins(5);
    let waiting = CertificateOutcome::Waiting {
        why: "the DNS".into(),
        until: later,
        answers: Vec::new(),
    };
    let asked_at = asked.requested_at;
    let c = store
        .record_certificate(&ctx(), ana, asked_at, &waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.waiting_for.as_deref(), Some("the DNS"));
    // Failures: each counted, in a row and within the hour.
    for n in 1..=7 {
        let failed = CertificateOutcome::Failed {
            message: format!("refused {n}"),
            next_attempt_at: later,
            answers: Vec::new(),
        };
        let c = store
            .record_certificate(&ctx(), ana, asked_at, &failed)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((c.state, c.failures), (Failed, n));
        assert_eq!(c.recent_failures.len(), n as usize);
        assert!(c.recent_failures.is_sorted());
        assert_eq!(c.waiting_for, None);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    // One an hour old no longer counts.
    h.raw
        .exec(&format!(
            "UPDATE certificate_failures SET failed_at = '2020-01-01T00:00:00Z' \
             WHERE account_id = {ana} AND failed_at = (SELECT MIN(failed_at) \
             FROM certificate_failures WHERE account_id = {ana})"
        ))
        .await
        .unwrap();
    assert_eq!(store.certificate_failures(ana).await.unwrap().len(), 6);
    // A turn that began before the request was asked again records no change (but a failure
    // still counts: Let's Encrypt saw it).
    let stale = asked_at - jiff::SignedDuration::from_secs(1);
    let answer = |d: &drover_core::DomainName, answer| drover_store::NameAnswer {
        domain: d.clone(),
        answer,
    };
    let failed = CertificateOutcome::Failed {
        message: "stale".into(),
        next_attempt_at: later,
        answers: vec![answer(&own, Ok(None)), answer(&shop, Err("stale".into()))],
    };
    let none = store
        .record_certificate(&ctx(), ana, stale, &failed)
        .await
        .unwrap();
    assert!(none.is_none());
    let c = store.certificate(ana).await.unwrap().unwrap();
    assert_eq!(
        wanted(&c),
        ["cert-ana.ro", "shop.cert-ana.ro"],
        "a stale turn's answers are not the request's: its names are asked again"
    );
    assert!(c.names.iter().all(|n| n.last_error.is_none()));
    assert_eq!(store.certificate_failures(ana).await.unwrap().len(), 7);
    let c = store.certificate(ana).await.unwrap().unwrap();
    assert_eq!(c.last_error.as_deref(), Some("refused 7"));
    // PostgreSQL keeps microseconds, SQLite nanoseconds.
    let kept = c.next_attempt_at.unwrap().duration_since(later).abs();
    assert!(kept < jiff::SignedDuration::from_micros(1), "{c:?}");
    // Issued: the failures are gone, the expiry kept.
    let expires = now + jiff::SignedDuration::from_hours(24 * 90);
    // Each name's answer is kept with it: the sub-server refused first, then issued.
    let failed = CertificateOutcome::Failed {
        message: "shop.cert-ana.ro: refused".into(),
        next_attempt_at: later,
        answers: vec![
            answer(&own, Ok(Some(expires))),
            answer(&shop, Err("refused".into())),
        ],
    };
    let c = store
        .record_certificate(&ctx(), ana, asked_at, &failed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(wanted(&c), ["shop.cert-ana.ro"]);
    assert_eq!(c.names[1].last_error.as_deref(), Some("refused"));
    assert_eq!(
        c.names[0].expires_at.map(|t| t.as_second()),
        Some(expires.as_second())
    );
    let issued = CertificateOutcome::Issued {
        expires_at: None,
        answers: vec![answer(&shop, Ok(None))],
    };
    let c = store
        .record_certificate(&ctx(), ana, asked_at, &issued)
        .await
        .unwrap()
        .unwrap();
    assert!(
        wanted(&c).is_empty() && c.names[1].last_error.is_none(),
        "{c:?}"
    );
    let issued = CertificateOutcome::Issued {
        expires_at: Some(expires),
        answers: Vec::new(),
    };
    let c = store
        .record_certificate(&ctx(), ana, asked_at, &issued)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.state, c.failures), (Issued, 0));
    assert!(c.last_error.is_none() && c.issued_at.is_some());
    assert_eq!(
        c.recent_failures.len(),
        8,
        "Let's Encrypt's hour still counts them (the sub-server's too)"
    );
    // Names no longer among the account's are dropped, nothing else changes.
    store
        .keep_certificate_names(ana, std::slice::from_ref(&own))
        .await
        .unwrap();
    let c = store.certificate(ana).await.unwrap().unwrap();
    assert_eq!(c.names.len(), 1);
    assert_eq!(c.state, Issued);
    // A request renews only the names it says; a name no longer among them is dropped.
    let (c, _) = store
        .request_certificate(
            &ctx(),
            ana,
            std::slice::from_ref(&own),
            std::slice::from_ref(&own),
        )
        .await
        .unwrap();
    assert_eq!(wanted(&c), ["cert-ana.ro"]);
    assert_eq!(c.names.len(), 1, "shop is gone");
    let (c, _) = store
        .request_certificate(&ctx(), ana, &names, &[])
        .await
        .unwrap();
    assert_eq!(
        wanted(&c),
        ["cert-ana.ro", "shop.cert-ana.ro"],
        "shop is new"
    );
    let issued = CertificateOutcome::Issued {
        expires_at: None,
        answers: vec![answer(&own, Ok(None)), answer(&shop, Ok(None))],
    };
    store
        .record_certificate(&ctx(), ana, c.requested_at, &issued)
        .await
        .unwrap()
        .unwrap();
    // A listing's expiry replaces it, for issued certificates only.
    let ion_domain = [domain("cert-ion.ro")];
    store
        .request_certificate(&ctx(), ion, &ion_domain, &ion_domain)
        .await
        .unwrap();
    let soon = now + jiff::SignedDuration::from_hours(24 * 3);
    let changed = store
        .record_certificate_expiries(&[
            (ana, own.clone(), soon),
            (ana, shop.clone(), later),
            (ion, domain("cert-ion.ro"), soon),
        ])
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let names = store.certificate(ana).await.unwrap().unwrap().names;
    let seconds = |n: &drover_store::CertificateName| n.expires_at.map(|t| t.as_second());
    assert_eq!(
        names.iter().map(seconds).collect::<Vec<_>>(),
        [Some(soon.as_second()), Some(later.as_second())],
        "each name's own expiry"
    );
    // A sub-server's certificate near its end puts its account among the expiring.
    let shop_soon = CertificateFilter {
        expiring_before: Some(later + jiff::SignedDuration::from_secs(1)),
        ..Default::default()
    };
    assert_eq!(
        store
            .certificates(shop_soon)
            .await
            .unwrap()
            .iter()
            .map(|c| c.account_id)
            .collect::<Vec<_>>(),
        [ana],
        "shop's expiry, not the domain's"
    );
    let expiring = CertificateFilter {
        expiring_before: Some(now + jiff::SignedDuration::from_hours(24 * 14)),
        ..Default::default()
    };
    let listed = store.certificates(expiring).await.unwrap();
    assert_eq!(
        listed.iter().map(|c| c.account_id).collect::<Vec<_>>(),
        [ana]
    );
    let requested = CertificateFilter {
        state: Some(Requested),
        ..Default::default()
    };
    let listed = store.certificates(requested).await.unwrap();
    assert_eq!(
        listed.iter().map(|c| c.account_id).collect::<Vec<_>>(),
        [ion]
    );
    let all = store
        .certificates(CertificateFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    // Counted by state; forgotten one by one, or with the account's resources.
    let counts = store.resource_counts().await.unwrap();
    let count = |state: &str| {
        counts
            .iter()
            .find(|c| c.kind == "certificate" && c.state == state)
            .map_or(0, |c| c.count)
    };
    assert_eq!((count("issued"), count("requested")), (1, 1));
    let accounts: i64 = counts
        .iter()
        .filter(|c| c.kind == "account")
        .map(|c| c.count)
        .sum();
    assert_eq!(
        accounts,
        store
            .accounts(AccountFilter::default())
            .await
            .unwrap()
            .len() as i64
    );
    assert!(store.forget_certificate(&ctx(), ion).await.unwrap());
    assert!(!store.forget_certificate(&ctx(), ion).await.unwrap());
    store.forget_resources(ana).await.unwrap();
    assert!(
        store
            .certificates(CertificateFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.certificate_failures(ana).await.unwrap().len(),
        8,
        "forgetting the record forgets no failure"
    );
}

async fn a_domain_is_an_account_an_alias_or_a_subserver_and_an_aliass_zone_follows_its_account(
    h: Harness,
) {
    use drover_store::OtherDomainKind::{Alias, Subserver};
    let store = &*h.store;
    let ana = service(store, "ana-alias.ro").await;
    let ion = service(store, "ion-alias.ro").await;
    let domain = |d: &str| DomainName::parse(d).unwrap();
    let mut tx = store.write().await.unwrap();
    for alias in ["ana.com", "ana.net"] {
        tx.insert_other_domain(ana.account_id, Alias, &domain(alias))
            .await
            .unwrap();
    }
    // Neither another account's domain nor an alias held already, for any account.
    tx.insert_other_domain(ana.account_id, Subserver, &domain("shop.ana-alias.ro"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    for (account, kind, taken) in [
        (ion.account_id, Alias, "ana.com"),
        (ion.account_id, Subserver, "ana.com"),
        (ion.account_id, Alias, "ana-alias.ro"),
        (ana.account_id, Alias, "ana.net"),
        (ion.account_id, Alias, "shop.ana-alias.ro"),
    ] {
        let mut tx = store.write().await.unwrap();
        let err = tx
            .insert_other_domain(account, kind, &domain(taken))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Duplicate {
                    key: UniqueKey::Domain,
                    ..
                }
            ),
            "{kind:?} {taken}: {err:?}"
        );
    }
    // Nor a new service's domain that is an alias.
    let new = NewService {
        customer_id: ana.customer_id,
        plan_id: ana.plan_id,
        domain: domain("ana.com"),
    };
    let mut tx = store.write().await.unwrap();
    let user = drover_core::UnixUsername::parse("anacom").unwrap();
    let err = tx.insert_service(&new, &user).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("s alias; a domain can be hosted only once"),
        "{err}"
    );
    drop(tx);
    let aliases: Vec<String> = store
        .other_domains(ana.account_id, Alias)
        .await
        .unwrap()
        .iter()
        .map(|a| a.domain.to_string())
        .collect();
    assert_eq!(aliases, ["ana.com", "ana.net"]);
    // The account's own zone is the one named as its domain; every zone of the account follows
    // it.
    for name in ["ana.com", "ana-alias.ro"] {
        new_zone(store, &domain(name), Some(ana.account_id), Vec::new(), &[])
            .await
            .unwrap();
    }
    let own = store.account_zone(ana.account_id).await.unwrap().unwrap();
    assert_eq!(own.name.as_str(), "ana-alias.ro");
    let all: Vec<String> = store
        .account_zones(ana.account_id)
        .await
        .unwrap()
        .iter()
        .map(|z| z.name.to_string())
        .collect();
    assert_eq!(all, ["ana.com", "ana-alias.ro"]);
    assert!(store.account_zone(ion.account_id).await.unwrap().is_none());
    // Only an alias being deleted is forgotten one by one; an account's all at once.
    let com = domain("ana.com");
    store
        .forget_other_domain(ana.account_id, Alias, &com)
        .await
        .unwrap();
    assert_eq!(
        store
            .other_domains(ana.account_id, Alias)
            .await
            .unwrap()
            .len(),
        2
    );
    let mut tx = store.write().await.unwrap();
    tx.mark_other_domain_deleting(ana.account_id, Alias, &com)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    store
        .forget_other_domain(ana.account_id, Alias, &com)
        .await
        .unwrap();
    assert_eq!(
        store
            .other_domains(ana.account_id, Alias)
            .await
            .unwrap()
            .len(),
        1
    );
    store.forget_resources(ana.account_id).await.unwrap();
    for kind in [Alias, Subserver] {
        assert!(
            store
                .other_domains(ana.account_id, kind)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

async fn backups_keep_their_destinations_outcomes_and_who_is_due(h: Harness) {
    use drover_core::{BackupDestinationSpec, BackupId, BackupState};
    use drover_store::{BackupFilter, BackupOutcome, Conflict, UniqueKey};
    let store = &*h.store;
    let spec = |name: &str, default: bool| BackupDestinationSpec {
        name: drover_core::ServerName::parse(name).unwrap(),
        location: drover_core::BackupLocation::parse("/var/backups/drover").unwrap(),
        credentials: None,
        key_file: None,
        host_key: None,
        keep_daily: 7,
        keep_weekly: 4,
        default,
    };
    assert_eq!(store.default_backup_destination().await.unwrap(), None);
    let local = store
        .create_backup_destination(&ctx(), &spec("local", true))
        .await
        .unwrap();
    assert_eq!(local.spec, spec("local", true));
    let twin = store
        .create_backup_destination(&ctx(), &spec("local", false))
        .await
        .unwrap_err();
    assert!(
        matches!(
            twin,
            StoreError::Duplicate {
                key: UniqueKey::Name,
                ..
            }
        ),
        "{twin:?}"
    );
    // A new default replaces the old one.
    let other = store
        .create_backup_destination(&ctx(), &spec("other", true))
        .await
        .unwrap();
    let default = store.default_backup_destination().await.unwrap().unwrap();
    assert_eq!(default.id, other.id);
    assert!(
        !store
            .backup_destination(local.id)
            .await
            .unwrap()
            .spec
            .default
    );
    // A change is the whole spec; made the default again, it takes that from the other.
    let again = drover_core::BackupDestinationSpec {
        keep_daily: 3,
        ..spec("local", true)
    };
    let changed = store
        .update_backup_destination(&ctx(), local.id, &again)
        .await
        .unwrap();
    assert_eq!(changed.spec, again);
    assert!(
        !store
            .backup_destination(other.id)
            .await
            .unwrap()
            .spec
            .default
    );
    let back = spec("other", true);
    store
        .update_backup_destination(&ctx(), other.id, &back)
        .await
        .unwrap();
    // An SSH host's login (a key file on the servers, or a password reference) and pinned
    // key are kept as given.
    let keyed = drover_core::BackupDestinationSpec {
        location: drover_core::BackupLocation::parse("ssh://b@vault.example.net:2222:/srv")
            .unwrap(),
        key_file: Some(drover_core::SshKeyFile::parse("/root/.ssh/backup_ed25519").unwrap()),
        host_key: Some(
            drover_core::SshHostKey::parse("SHA256:D6dVhy6OODf0DHt8bFg67I35TK0pDspxPgfkfADKbzU")
                .unwrap(),
        ),
        ..spec("vault", false)
    };
    let vault = store
        .create_backup_destination(&ctx(), &keyed)
        .await
        .unwrap();
    assert_eq!(
        store.backup_destination(vault.id).await.unwrap().spec,
        keyed
    );
    let with_password = drover_core::BackupDestinationSpec {
        credentials: Some(drover_core::CredentialRef::parse("env:DROVER_SECRET_VAULT").unwrap()),
        key_file: None,
        ..keyed
    };
    store
        .update_backup_destination(&ctx(), vault.id, &with_password)
        .await
        .unwrap();
    assert_eq!(
        store.backup_destination(vault.id).await.unwrap().spec,
        with_password
    );
    assert_eq!(
        store
            .default_backup_destination()
            .await
            .unwrap()
            .unwrap()
            .id,
        other.id
    );

    let vm1 = new_server(store, server_spec("vm1")).await.unwrap().id;
    let mut accounts = Vec::new();
    let mut plan = drover_core::PlanId(0);
    for domain in ["arhiva-ana.ro", "arhiva-ion.ro"] {
        let made = service(store, domain).await;
        plan = made.plan_id;
        move_service(store, made.id, Transition::Activate, None).await;
        accounts.push(made.account_id);
    }
    let (ana, ion) = (accounts[0], accounts[1]);
    let since = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24);
    // Not on a server yet, or not made there: nothing is due.
    assert_eq!(
        store
            .accounts_due_for_backup(plan, since, 10)
            .await
            .unwrap(),
        []
    );
    for account in [ana, ion] {
        store.assign_server(&ctx(), account, vm1).await.unwrap();
        store
            .record_observation(account, "enabled", 1)
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .accounts_due_for_backup(plan, since, 10)
            .await
            .unwrap(),
        [ana, ion]
    );
    assert_eq!(
        store.accounts_due_for_backup(plan, since, 1).await.unwrap(),
        [ana]
    );

    let queued = store
        .request_backup(&ctx(), ana, local.id, Some("backup.requested"))
        .await
        .unwrap();
    let joined = store
        .request_backup(&ctx(), ana, local.id, None)
        .await
        .unwrap();
    assert_eq!((joined.id, joined.joined), (queued.id, true));

    let first = store
        .start_backup(ana, local.id, vm1, "/var/backups/drover/a/1.tar.gz")
        .await
        .unwrap();
    assert_eq!(first.state, BackupState::Running);
    // A backup started is one the schedule does not ask for again.
    assert_eq!(
        store
            .accounts_due_for_backup(plan, since, 10)
            .await
            .unwrap(),
        [ion]
    );
    let size = Some(60_631);
    let done = store
        .finish_backup(
            &ctx(),
            first.id,
            &BackupOutcome::Succeeded { size_bytes: size },
        )
        .await
        .unwrap();
    assert_eq!(
        (done.state, done.size_bytes),
        (BackupState::Succeeded, size)
    );
    assert!(done.finished_at.is_some());
    let second = store
        .start_backup(ana, local.id, vm1, "/var/backups/drover/a/2.tar.gz")
        .await
        .unwrap();
    let failed = BackupOutcome::Failed {
        error:
            "Failed to open /var/backups/drover/a/2.tar.gz for writing : No space left on device"
                .into(),
        log: "Error\n-----".into(),
    };
    let second = store
        .finish_backup(&ctx(), second.id, &failed)
        .await
        .unwrap();
    assert_eq!(second.state, BackupState::Failed);
    assert!(
        second
            .error
            .as_deref()
            .unwrap()
            .ends_with("No space left on device")
    );
    let audited = store
        .audit_events(drover_store::AuditFilter {
            subject: Some(format!("account:{ana}")),
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = audited.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"backup.requested"), "{actions:?}");
    assert!(actions.contains(&"backup.failed"), "{actions:?}");

    // The last good one is the success, not the later failure; lists are newest first.
    let last = store.last_good_backup(ana).await.unwrap().unwrap();
    assert_eq!(last.id, first.id);
    let all = store
        .backups(BackupFilter {
            account: Some(ana),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|b| b.id).collect::<Vec<_>>(),
        [second.id, first.id]
    );
    let failures = store
        .backups(BackupFilter {
            state: Some(BackupState::Failed),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failures.len(), 1);

    // Overdue: none of accounts younger than the deadline; past it, ana's good backup is
    // too old and ion never had one.
    let now = jiff::Timestamp::now();
    let earlier = now - jiff::SignedDuration::from_hours(1);
    assert_eq!(store.backups_older_than(plan, earlier).await.unwrap(), []);
    let later = now + jiff::SignedDuration::from_mins(1);
    let ages = store.backups_older_than(plan, later).await.unwrap();
    let named: Vec<_> = ages
        .iter()
        .map(|a| (a.account_id, a.last_good_at))
        .collect();
    assert_eq!(named, [(ana, done.finished_at), (ion, None)]);

    // A backup left running (its process stopped) is recorded as interrupted.
    let stale = store
        .start_backup(ion, local.id, vm1, "/var/backups/drover/i/1.tar.gz")
        .await
        .unwrap();
    assert_eq!(store.interrupt_backups(ana).await.unwrap(), 0);
    assert_eq!(store.interrupt_backups(ion).await.unwrap(), 1);
    let stale = store.backup(stale.id).await.unwrap();
    assert_eq!(stale.state, BackupState::Failed);
    assert!(
        stale
            .error
            .unwrap()
            .starts_with("interrupted before the server answered")
    );

    // Pruned archives stay in the history, and no longer count as good.
    store.mark_pruned(&ctx(), ana, &[first.id]).await.unwrap();
    assert_eq!(store.last_good_backup(ana).await.unwrap(), None);
    assert_eq!(
        store.backup(first.id).await.unwrap().state,
        BackupState::Pruned
    );
    store
        .mark_pruned(&ctx(), ana, &[BackupId(999)])
        .await
        .unwrap();
    store.mark_pruned(&ctx(), ana, &[]).await.unwrap();

    // A destination that holds backups is kept; an unused one can go.
    let held = store
        .delete_backup_destination(&ctx(), local.id)
        .await
        .unwrap_err();
    assert!(
        matches!(
            held,
            StoreError::Conflict {
                conflict: Conflict::InUse,
                ..
            }
        ),
        "{held:?}"
    );
    store
        .delete_backup_destination(&ctx(), other.id)
        .await
        .unwrap();
    assert_eq!(store.default_backup_destination().await.unwrap(), None);
    let left: Vec<String> = store
        .backup_destinations()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.spec.name.to_string())
        .collect();
    assert_eq!(left, ["local", "vault"]);
}
