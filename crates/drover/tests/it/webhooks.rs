//! Signed webhooks to a billing system's receiver written apart from drover (Python's own
//! `hmac`): every event arrives once per id, each account's in order, across a receiver that
//! is down for 30 s while 200 accounts are activated.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use drover::engine::{FleetPolicy, WebhookPolicy, Webhooks};
use drover_core::{DomainName, Transition};
use drover_store::{DeliveryFilter, NewService};
use secrecy::ExposeSecret;

struct Receiver {
    child: Child,
}

impl Receiver {
    fn start(port: u16, secret: &str, log: &std::path::Path) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/webhook_receiver.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(log)
            .env("WEBHOOK_SECRET", secret)
            .spawn()
            .expect("python3 runs the receiver (Debian package python3)");
        Self { child }
    }

    async fn answering(port: u16) {
        crate::until(
            "the receiver listens",
            Duration::from_secs(10),
            async || {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
            },
        )
        .await;
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, serde::Deserialize)]
struct Received {
    header_id: Option<String>,
    id: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    account_id: Option<i64>,
    data: Option<serde_json::Value>,
    valid: bool,
}

fn received(log: &std::path::Path) -> Vec<Received> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fleet of one simulated server that takes `capacity` accounts, the plan and customer to
/// sell them, and the engine that sends webhooks by `policy`.
struct Fleet {
    fleet: crate::TestFleet,
    sim: drover_testkit::virtualmin::VirtualminSim,
    plan_id: drover_core::PlanId,
    customer_id: drover_core::CustomerId,
    engine: Arc<drover::engine::Engine>,
}

async fn fleet(capacity: u32, policy: WebhookPolicy) -> Fleet {
    let fleet = crate::TestFleet::new().await;
    let (sim, _) = fleet
        .add_server(
            "vm1",
            serde_json::json!({"capacity": capacity, "rate_qps": 500}),
        )
        .await;
    let (plan_id, customer_id) = fleet.plan_and_customer().await;
    let mut engine = fleet.engine(crate::quick_retries(), FleetPolicy::default());
    engine.webhooks = Webhooks::new(policy).unwrap();
    Fleet {
        fleet,
        sim,
        plan_id,
        customer_id,
        engine: Arc::new(engine),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_30_s_gets_every_event_once_in_order_per_account() {
    // Tried again every 2 s at most: the outage is over soon after the receiver is back.
    let policy = WebhookPolicy {
        retry_max_delay: Duration::from_secs(2),
        ..WebhookPolicy::default()
    };
    let Fleet {
        fleet,
        sim,
        plan_id,
        customer_id,
        engine,
    } = fleet(400, policy).await;
    let store = Arc::clone(&fleet.store);
    let ctx = crate::setup_ctx();

    // An https-only rule with its one exception: http to this machine, when allowed.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/drover");
    let types = [
        "account.provisioned",
        "account.suspended",
        "account.unsuspended",
    ]
    .map(String::from);
    let refused = drover::commands::create_webhook_endpoint(
        &*store,
        &engine.sealer,
        &ctx,
        &drover::commands::NewEndpoint {
            url: &url,
            event_types: &types,
            allow_http: false,
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(refused.contains("allow_http"), "{refused}");
    let (endpoint, secret) = drover::commands::create_webhook_endpoint(
        &*store,
        &engine.sealer,
        &ctx,
        &drover::commands::NewEndpoint {
            url: &url,
            event_types: &types,
            allow_http: true,
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("received.jsonl");
    let receiver = Receiver::start(port, secret.expose_secret(), &log);
    Receiver::answering(port).await;
    let mut workers = drover::engine::start(Arc::clone(&engine), 8).unwrap();

    let mut services = Vec::new();
    let mut outage = None;
    let mut receiver = Some(receiver);
    for n in 0..200 {
        let new = NewService {
            customer_id,
            plan_id,
            domain: DomainName::parse(&format!("client-{n:03}.ro")).unwrap(),
        };
        let service = crate::create_service(&*store, &ctx, new).await.unwrap();
        crate::transition_service(&*store, &ctx, service.id, Transition::Activate, None)
            .await
            .unwrap();
        services.push(service);
        // A third of the way in, the receiver goes down for 30 s.
        if n == 66 {
            receiver.take().unwrap().stop();
            outage = Some(std::time::Instant::now());
        }
    }
    // While it is down, ten accounts are suspended and unsuspended, each once its server has
    // done the step before: their three events must arrive in that order.
    for service in &services[..10] {
        let account = service.account_id;
        let observed = async |state: &str| {
            let store = Arc::clone(&store);
            let state = state.to_owned();
            crate::until(
                "the server follows",
                Duration::from_secs(60),
                async move || {
                    store
                        .account(account)
                        .await
                        .unwrap()
                        .observed_state
                        .as_deref()
                        == Some(&state)
                },
            )
            .await;
        };
        observed("enabled").await;
        crate::transition_service(
            &*store,
            &ctx,
            service.id,
            Transition::Suspend,
            Some("unpaid".into()),
        )
        .await
        .unwrap();
        observed("disabled").await;
        crate::transition_service(&*store, &ctx, service.id, Transition::Unsuspend, None)
            .await
            .unwrap();
        observed("enabled").await;
    }
    let down = outage.unwrap();
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down.elapsed())).await;
    let failed = store
        .webhook_deliveries(&DeliveryFilter {
            endpoint: Some(endpoint.id),
            failed: true,
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    assert!(!failed.is_empty(), "the outage was seen");
    assert!(failed[0].last_error.is_some(), "{:?}", failed[0]);
    let receiver = Receiver::start(port, secret.expose_secret(), &log);

    crate::until(
        "every event arrives",
        Duration::from_secs(120),
        async || {
            let ids: BTreeSet<i64> = received(&log).iter().filter_map(|r| r.id).collect();
            ids.len() == 220
        },
    )
    .await;
    receiver.stop();
    workers.stop().await.unwrap();
    assert_eq!(sim.domain_names().len(), 200);

    let got = received(&log);
    assert!(got.iter().all(|r| r.valid), "every signature checks out");
    assert!(
        got.iter()
            .all(|r| r.header_id.as_deref() == r.id.map(|i| i.to_string()).as_deref()),
        "Drover-Event-Id is the event's id"
    );
    // At least once: only the request in flight as the receiver died may come twice.
    let unique: BTreeSet<i64> = got.iter().filter_map(|r| r.id).collect();
    assert!(
        got.len() - unique.len() <= 1,
        "{} duplicates",
        got.len() - unique.len()
    );
    let mut per_account: BTreeMap<i64, Vec<(i64, String)>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for r in &got {
        if seen.insert(r.id.unwrap()) {
            per_account
                .entry(r.account_id.unwrap())
                .or_default()
                .push((r.id.unwrap(), r.kind.clone().unwrap()));
        }
    }
    assert_eq!(per_account.len(), 200);
    for (account, events) in &per_account {
        let ids: Vec<i64> = events.iter().map(|(id, _)| *id).collect();
        assert!(ids.is_sorted(), "account {account}: {events:?}");
    }
    let first = services[0].account_id.get();
    let kinds: Vec<&str> = per_account[&first]
        .iter()
        .map(|(_, k)| k.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "account.provisioned",
            "account.suspended",
            "account.unsuspended"
        ]
    );
    let sample = got.iter().find(|r| r.account_id == Some(first)).unwrap();
    let data = sample.data.as_ref().unwrap();
    assert_eq!(data["domain"], "client-000.ro");
    assert_eq!(data["state"], "enabled");
    assert_eq!(data["service_id"], services[0].id.get());
    let endpoint = store.webhook_endpoint(endpoint.id).await.unwrap();
    assert!(
        !endpoint.paused && endpoint.failing_since.is_none(),
        "{endpoint:?}"
    );
}

/// A rotated secret signs beside the new one while it is valid; an endpoint failing longer
/// than the policy allows is paused, audited, and sends what waited once resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_still_signs_and_a_failing_endpoint_is_paused_until_resumed() {
    let policy = WebhookPolicy {
        retry_max_delay: Duration::from_secs(1),
        pause_after: Duration::from_secs(2),
        ..WebhookPolicy::default()
    };
    // The simulator is kept: dropped, the server it plays stops.
    let Fleet {
        fleet,
        sim: _sim,
        plan_id,
        customer_id,
        engine,
    } = fleet(10, policy).await;
    let store = Arc::clone(&fleet.store);
    let ctx = crate::setup_ctx();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/drover");
    let types = ["account.provisioned".to_owned()];
    let new = drover::commands::NewEndpoint {
        url: &url,
        event_types: &types,
        allow_http: true,
    };
    let (endpoint, old) =
        drover::commands::create_webhook_endpoint(&*store, &engine.sealer, &ctx, &new)
            .await
            .unwrap();
    let mut workers = drover::engine::start(Arc::clone(&engine), 4).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("received.jsonl");
    let activate = async |domain: &str| {
        let new = NewService {
            customer_id,
            plan_id,
            domain: DomainName::parse(domain).unwrap(),
        };
        let service = crate::create_service(&*store, &ctx, new).await.unwrap();
        crate::transition_service(&*store, &ctx, service.id, Transition::Activate, None)
            .await
            .unwrap();
        service.account_id.get()
    };
    let arrived = async |account: i64| {
        crate::until("the event arrives", Duration::from_secs(30), async || {
            received(&log).iter().any(|r| r.account_id == Some(account))
        })
        .await;
        received(&log)
            .into_iter()
            .find(|r| r.account_id == Some(account))
            .unwrap()
    };

    // Rotated: a receiver that has only the new secret and one that has only the old both
    // check what comes next.
    let (_, new_secret) = drover::commands::rotate_webhook_secret(
        &*store,
        &engine.sealer,
        &ctx,
        endpoint.id,
        Duration::from_secs(600),
    )
    .await
    .unwrap();
    for secret in [new_secret.expose_secret(), old.expose_secret()] {
        let receiver = Receiver::start(port, secret, &log);
        Receiver::answering(port).await;
        let account = activate(&format!("r{}.ro", &secret[6..12])).await;
        assert!(arrived(account).await.valid, "signed with this secret too");
        receiver.stop();
    }

    // Down for longer than the policy allows: paused, and said why.
    let account = activate("paused.ro").await;
    crate::until(
        "the endpoint is paused",
        Duration::from_secs(30),
        async || store.webhook_endpoint(endpoint.id).await.unwrap().paused,
    )
    .await;
    let paused = store.webhook_endpoint(endpoint.id).await.unwrap();
    assert!(
        paused
            .paused_reason
            .as_deref()
            .is_some_and(|r| r.contains("failing since")),
        "{paused:?}"
    );
    let receiver = Receiver::start(port, new_secret.expose_secret(), &log);
    Receiver::answering(port).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !received(&log).iter().any(|r| r.account_id == Some(account)),
        "nothing is sent while paused"
    );
    drover::commands::update_webhook_endpoint(&*store, &ctx, endpoint.id, None, None, Some(false))
        .await
        .unwrap();
    assert!(arrived(account).await.valid);
    receiver.stop();
    workers.stop().await.unwrap();
    let audit = store
        .latest_audit_events(Some(&format!("webhook:{}", endpoint.id)), None, 100)
        .await
        .unwrap();
    assert!(audit.iter().any(|e| e.action == "webhook.paused"));
}
