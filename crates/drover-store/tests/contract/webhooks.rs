//! The webhook part of the store contract: endpoints, the events written with changes, and
//! each delivery's tries.

use drover_core::{EventType, ServerState, WebhookUrl};
use drover_store::{
    DeliveryAttempt, DeliveryFilter, NewEvent, NewWebhookEndpoint, WebhookEndpointPatch,
};

use crate::{Harness, ctx, new_server, server_spec};

fn endpoint(url: &str, types: &[EventType]) -> NewWebhookEndpoint {
    NewWebhookEndpoint {
        url: WebhookUrl::parse(url, true).unwrap(),
        event_types: types.to_vec(),
        sealed_secret: b"sealed-one".to_vec(),
        key_id: "key:test".into(),
    }
}

fn attempt(delivered: bool) -> DeliveryAttempt {
    DeliveryAttempt {
        delivered,
        status: Some(if delivered { 200 } else { 503 }),
        error: (!delivered).then(|| "answered 503".to_owned()),
        duration_ms: 12,
        response: "x".repeat(10),
    }
}

async fn backlog(
    store: &dyn drover_store::Store,
    id: drover_core::WebhookEndpointId,
) -> (i64, Vec<drover_store::PendingDelivery>) {
    let backlog = store.webhook_backlog(id, 100).await.unwrap().unwrap();
    (backlog.seen, backlog.deliveries)
}

pub async fn events_go_to_the_endpoints_that_want_them_in_order(h: Harness) {
    let store = &*h.store;
    let billing = store
        .create_webhook_endpoint(
            &ctx(),
            &endpoint(
                "https://billing.example/in",
                &[EventType::ServerStateChanged],
            ),
        )
        .await
        .unwrap();
    let monitoring = store
        .create_webhook_endpoint(&ctx(), &endpoint("http://127.0.0.1:9/all", &[]))
        .await
        .unwrap();
    assert_eq!(billing.event_types, ["server.state_changed"]);
    assert!(monitoring.event_types.is_empty(), "every type");

    // A health check that moves a server writes its event with the move.
    let server = new_server(store, server_spec("vm1")).await.unwrap();
    let probe = drover_core::HealthProbe {
        api_ok: false,
        latency_ms: 5,
        error: Some("connection refused".into()),
        certificate_days_left: None,
        pin_matches: None,
        breaker_open: false,
        login_refused: false,
    };
    for _ in 0..2 {
        store
            .record_health(&ctx(), server.id, &probe, &Default::default())
            .await
            .unwrap();
    }
    assert_eq!(
        store.server(server.id).await.unwrap().state,
        ServerState::Degraded
    );
    let drift = NewEvent {
        event_type: EventType::DriftFound,
        account: None,
        subject: "server:1".into(),
        data: serde_json::json!({ "server_id": 1, "findings": {"missing": 1} }),
    };
    store.record_event(&ctx(), &drift).await.unwrap();

    let (seen, pending) = backlog(store, billing.id).await;
    let kinds: Vec<&str> = pending.iter().map(|p| p.event_type.as_str()).collect();
    assert_eq!(kinds, ["server.state_changed"], "billing wants only these");
    assert_eq!(seen, 1);
    assert_eq!(pending[0].data["from"], "healthy");
    assert_eq!(pending[0].data["to"], "degraded");
    let (seen, pending) = backlog(store, monitoring.id).await;
    let kinds: Vec<&str> = pending.iter().map(|p| p.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        ["server.state_changed", "drift.found"],
        "oldest first"
    );
    assert_eq!(seen, 2);

    // A failed try marks the endpoint failing since then; one that gets through clears it.
    let first = pending[0].id;
    let since = store
        .record_webhook_attempt(monitoring.id, first, &attempt(false))
        .await
        .unwrap();
    assert!(since.is_some());
    let again = store
        .record_webhook_attempt(monitoring.id, first, &attempt(false))
        .await
        .unwrap();
    assert_eq!(again, since, "failing since the first failure");
    let failed = DeliveryFilter {
        endpoint: Some(monitoring.id),
        failed: true,
        ..DeliveryFilter::default()
    };
    let listed = store.webhook_deliveries(&failed).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].attempts,
            listed[0].failures,
            listed[0].last_status
        ),
        (2, 2, Some(503))
    );
    assert_eq!(
        store
            .record_webhook_attempt(monitoring.id, first, &attempt(true))
            .await
            .unwrap(),
        None
    );
    let (_, pending) = backlog(store, monitoring.id).await;
    assert_eq!(pending.len(), 1, "the delivered one is done");
    assert!(store.webhook_deliveries(&failed).await.unwrap().is_empty());

    // Sent again on request: it waits once more.
    let count = store
        .redeliver_webhooks(&ctx(), monitoring.id, Some(first), None)
        .await
        .unwrap();
    assert_eq!(count, 1);
    let (seen, pending) = backlog(store, monitoring.id).await;
    assert_eq!(pending.len(), 2);
    assert_eq!(seen, 3, "a redelivery wakes the job like an event");

    // Paused: events still wait for it; resumed, it is told.
    let patch = WebhookEndpointPatch {
        paused: Some(true),
        ..WebhookEndpointPatch::default()
    };
    let paused = store
        .update_webhook_endpoint(&ctx(), billing.id, &patch)
        .await
        .unwrap();
    assert!(paused.paused);
    let refused = store
        .redeliver_webhooks(&ctx(), billing.id, None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            drover_store::StoreError::Conflict {
                conflict: drover_store::Conflict::Paused,
                ..
            }
        ),
        "{refused}"
    );
    store.record_event(&ctx(), &drift).await.unwrap();
    let patch = WebhookEndpointPatch {
        paused: Some(false),
        event_types: Some(vec![EventType::DriftFound]),
        ..WebhookEndpointPatch::default()
    };
    let resumed = store
        .update_webhook_endpoint(&ctx(), billing.id, &patch)
        .await
        .unwrap();
    assert!(!resumed.paused && resumed.paused_reason.is_none());
    assert_eq!(resumed.event_types, ["drift.found"]);

    // A rotated secret: both sign until the old one's time is up.
    store.record_seal_key_id("key:test").await.unwrap();
    // Whole seconds: PostgreSQL keeps microseconds.
    let until = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 3600).unwrap();
    let rotated = store
        .rotate_webhook_secret(&ctx(), billing.id, b"sealed-two", "key:test", until)
        .await
        .unwrap();
    assert_eq!(rotated.previous_secret_valid_until, Some(until));
    let secrets = store.webhook_secrets(billing.id).await.unwrap();
    assert_eq!(
        (secrets.current.as_slice(), secrets.previous.as_deref()),
        (&b"sealed-two"[..], Some(&b"sealed-one"[..]))
    );

    store
        .delete_webhook_endpoint(&ctx(), billing.id)
        .await
        .unwrap();
    assert!(store.webhook_endpoint(billing.id).await.is_err());
    let everyone = store.webhook_endpoints(Default::default()).await.unwrap();
    assert_eq!(everyone.len(), 1);

    // An event no endpoint wants is not kept.
    let narrow = WebhookEndpointPatch {
        event_types: Some(vec![EventType::BackupFailed]),
        ..WebhookEndpointPatch::default()
    };
    store
        .update_webhook_endpoint(&ctx(), monitoring.id, &narrow)
        .await
        .unwrap();
    assert_eq!(store.record_event(&ctx(), &drift).await.unwrap(), None);
}
