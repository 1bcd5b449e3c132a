//! The fleet part of the store contract: health checks and the states they move.

use drover_core::{HealthPolicy, HealthProbe, ServerState, Verdict};
use drover_store::AuditFilter;

use crate::{Harness, ctx, server_spec};

fn probe(api_ok: bool) -> HealthProbe {
    HealthProbe {
        api_ok,
        latency_ms: 12,
        error: (!api_ok).then(|| "connection refused".to_owned()),
        certificate_days_left: Some(60),
        pin_matches: None,
        breaker_open: false,
    }
}

pub async fn health_checks_move_a_server_after_consecutive_results(h: Harness) {
    let store = &h.store;
    let server = store
        .create_server(&ctx(), server_spec("vm1"))
        .await
        .unwrap();
    assert_eq!(store.server_health(server.id).await.unwrap(), None);
    let policy = HealthPolicy::default();
    let mut states = Vec::new();
    for ok in [false, false, false, true, true] {
        let change = store
            .record_health(&ctx(), server.id, &probe(ok), &policy)
            .await
            .unwrap();
        states.push((change.before, change.server.state, change.moved()));
    }
    use ServerState::*;
    assert_eq!(
        states,
        [
            (Healthy, Healthy, false),
            (Healthy, Degraded, true),
            (Degraded, Unavailable, true),
            (Unavailable, Unavailable, false),
            (Unavailable, Healthy, true),
        ]
    );
    let health = store.server_health(server.id).await.unwrap().unwrap();
    assert_eq!(
        (health.verdict, health.streak.healthy, health.state),
        (Verdict::Healthy, 2, Healthy)
    );
    let events = store
        .audit_events(AuditFilter {
            subject: Some(format!("server:{}", server.id)),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let moves: Vec<_> = events
        .iter()
        .filter(|e| e.action == "server.health")
        .collect();
    assert_eq!(moves.len(), 3, "one event per move, none per check");
    assert!(
        moves[1].details.contains("connection refused"),
        "{}",
        moves[1].details
    );
    // Maintenance is the operator's: checks are kept but never move it.
    let server = store
        .set_maintenance(&ctx(), server.id, true)
        .await
        .unwrap();
    assert_eq!(server.state, Maintenance);
    for _ in 0..4 {
        let change = store
            .record_health(&ctx(), server.id, &probe(false), &policy)
            .await
            .unwrap();
        assert_eq!(change.server.state, Maintenance);
    }
    let health = store.server_health(server.id).await.unwrap().unwrap();
    assert_eq!(
        (health.verdict, health.streak.failures),
        (Verdict::Unavailable, 4)
    );
}
