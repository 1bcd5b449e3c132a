//! Health checks as the scheduler runs them: a live simulator, a server nobody answers for, a
//! server going down and coming back, and one in maintenance, with every state move audited.

use std::sync::Arc;
use std::time::Duration;

use drover::engine::FleetPolicy;
use drover_core::{ServerId, ServerState};
use drover_store::{AuditFilter, RequestContext, Store};

use crate::until;

fn ctx() -> RequestContext {
    RequestContext {
        actor: "test".into(),
        correlation_id: "health-1".into(),
    }
}

async fn state_of(store: &dyn Store, id: ServerId) -> ServerState {
    store.server(id).await.unwrap().state
}

async fn until_state(store: &dyn Store, id: ServerId, wanted: ServerState) {
    for _ in 0..100 {
        if state_of(store, id).await == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = store.server_health(id).await.unwrap();
    panic!("server {id} never became {wanted}; last check: {health:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_checks_the_fleet_and_states_follow_consecutive_results() {
    let fleet = crate::TestFleet::new().await;
    let store = Arc::clone(&fleet.store);
    let (sim, live) = fleet
        .add_server("vm-live", serde_json::json!({"capacity": 10}))
        .await;
    let password = fleet.dir.path().join("vm.password");
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = serde_json::json!({"name": "vm-dead", "hostname": "127.0.0.1", "port": closed_port,
        "capacity": 10, "credentials": format!("file:{}", password.display())});
    let dead =
        drover::commands::create_server(&*store, &ctx(), serde_json::from_value(dead).unwrap())
            .await
            .unwrap();
    let engine = fleet.engine(
        drover_virtualmin::VirtualminSettings::default(),
        FleetPolicy {
            health_interval: Some(Duration::from_millis(300)),
            ..FleetPolicy::default()
        },
    );
    let mut workers = drover::engine::start(Arc::new(engine), 4).unwrap();

    // Nobody answers for vm-dead: unavailable after three checks; vm-live stays healthy.
    until_state(&*store, dead.id, ServerState::Unavailable).await;
    let dead_health = store.server_health(dead.id).await.unwrap().unwrap();
    assert!(dead_health.streak.failures >= 3, "{dead_health:?}");
    assert!(
        !dead_health.probe.api_ok && dead_health.reasons[0].contains("API"),
        "{dead_health:?}"
    );
    assert_eq!(state_of(&*store, live.id).await, ServerState::Healthy);
    let live_health = store.server_health(live.id).await.unwrap().unwrap();
    assert!(live_health.probe.api_ok, "{live_health:?}");
    assert_eq!(live_health.probe.pin_matches, Some(true));
    assert!(
        live_health
            .probe
            .certificate_days_left
            .is_some_and(|d| d > 0)
    );

    // vm-live goes down and comes back.
    sim.set_down(true);
    until_state(&*store, live.id, ServerState::Unavailable).await;
    sim.set_down(false);
    until_state(&*store, live.id, ServerState::Healthy).await;
    let events = store
        .audit_events(AuditFilter {
            subject: Some(format!("server:{}", live.id)),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let moves: Vec<String> = events
        .iter()
        .filter(|e| e.action == "server.health")
        .map(|e| {
            let d: serde_json::Value = serde_json::from_str(&e.details).unwrap();
            format!(
                "{}→{}",
                d["from"].as_str().unwrap(),
                d["to"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            "healthy→degraded",
            "degraded→unavailable",
            "unavailable→healthy"
        ]
    );

    // Maintenance is the operator's: vm-dead stays in it, checked or not.
    drover::commands::set_maintenance(&*store, &ctx(), dead.id, true)
        .await
        .unwrap();
    let in_maintenance = store.server_health(dead.id).await.unwrap().unwrap();
    until(
        "checks go on in maintenance",
        Duration::from_secs(10),
        async || {
            store
                .server_health(dead.id)
                .await
                .unwrap()
                .is_some_and(|h| h.checked_at > in_maintenance.checked_at)
        },
    )
    .await;
    assert_eq!(state_of(&*store, dead.id).await, ServerState::Maintenance);
    workers.stop().await.unwrap();
}
