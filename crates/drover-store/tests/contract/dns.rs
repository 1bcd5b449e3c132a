//! The DNS part of the store contract.

use drover_core::{
    AddressMove, DomainName, OwnerName, RecordIds, RecordKey, RecordType, RrSet, ZoneTemplate,
    account_zone,
};
use drover_store::{
    AuditFilter, DnsProviderSpec, JobFilter, Reference, Store, StoreError, SyncAudit, UniqueKey,
    Zone, ZoneFilter, ZoneSyncOutcome,
};

use drover_dns::{ProviderKind, ProviderSettings};

use crate::{Harness, ctx};

fn provider(name: &str, kind: ProviderKind) -> DnsProviderSpec {
    let settings = match kind {
        ProviderKind::PowerDns => serde_json::json!({
            "kind": kind, "api_url": "http://127.0.0.1:8081/", "server_id": "localhost",
            "dns_address": "127.0.0.1:5301",
        }),
        ProviderKind::Cloudflare => serde_json::json!({
            "kind": kind, "api_url": "http://127.0.0.1:8082/", "account_id": "acc-1", "batch_size": 200,
        }),
    };
    serde_json::from_value(serde_json::json!({
        "name": name, "credentials": "env:PDNS_KEY", "serves_new_zones": true, "settings": settings,
    }))
    .unwrap()
}

/// A provider checked and recorded in a write of its own, as the command layer does.
pub async fn new_provider(
    store: &dyn Store,
    spec: DnsProviderSpec,
) -> Result<drover_store::DnsProviderRecord, StoreError> {
    let spec = spec.validated()?;
    let mut tx = store.write().await?;
    let provider = tx.insert_dns_provider(&spec).await?;
    tx.commit().await?;
    Ok(provider)
}

/// A zone recorded in a write of its own (no sync queued: that is the command's).
pub async fn new_zone(
    store: &dyn Store,
    name: &DomainName,
    account: Option<drover_core::AccountId>,
    rrsets: Vec<RrSet>,
    providers: &[drover_core::DnsProviderId],
) -> Result<Zone, StoreError> {
    let mut tx = store.write().await?;
    let zone = tx.insert_zone(name, account, &rrsets, providers).await?;
    tx.commit().await?;
    Ok(zone)
}

fn zone_records(zone: &DomainName, ip: &str) -> Vec<RrSet> {
    account_zone(
        zone,
        Some(ip.parse().unwrap()),
        None,
        &ZoneTemplate::default(),
    )
    .unwrap()
}

pub async fn dns_providers_are_stored_and_refuse_bad_settings(h: Harness) {
    let store = &h.store;
    let pdns = new_provider(&**store, provider("pdns-1", ProviderKind::PowerDns))
        .await
        .unwrap();
    assert_eq!(
        pdns.spec.settings,
        ProviderSettings::PowerDns {
            api_url: "http://127.0.0.1:8081".into(),
            server_id: Some("localhost".into()),
            dns_address: Some("127.0.0.1:5301".parse().unwrap()),
        },
        "kept as given, the trailing slash dropped"
    );
    let cf = new_provider(&**store, provider("cf", ProviderKind::Cloudflare))
        .await
        .unwrap();
    assert_eq!(store.dns_providers().await.unwrap(), [pdns.clone(), cf]);
    assert_eq!(store.dns_provider_by_name("pdns-1").await.unwrap(), pdns);
    let err = new_provider(&**store, provider("pdns-1", ProviderKind::PowerDns))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Duplicate {
                key: UniqueKey::DnsProviderName,
                ..
            }
        ),
        "{err}"
    );
    let mut bad = provider("bad name!", ProviderKind::PowerDns);
    // Checked before anything is written (the command layer calls it).
    let err = bad.clone().validated().unwrap_err().to_string();
    assert!(err.contains("letters, digits"), "{err}");
    bad.name = "ok".into();
    bad.settings = ProviderSettings::PowerDns {
        api_url: "ftp://x".into(),
        server_id: None,
        dns_address: None,
    };
    let err = bad.validated().unwrap_err().to_string();
    assert!(err.contains("http://"), "{err}");
    assert!(matches!(
        store.dns_provider_by_name("nope").await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn zones_keep_their_rrsets_and_their_sync_is_one_job(h: Harness) {
    let store = &h.store;
    let p = new_provider(&**store, provider("pdns-1", ProviderKind::PowerDns))
        .await
        .unwrap();
    let name = DomainName::parse("exemplu.ro").unwrap();
    let rrsets = zone_records(&name, "192.0.2.10");
    let zone = new_zone(&**store, &name, None, rrsets.clone(), &[p.id])
        .await
        .unwrap();
    assert_eq!(zone.generation, 1);
    let mut sorted = rrsets.clone();
    sorted.sort_by(|a, b| a.key().cmp(&b.key()));
    assert_eq!(zone.rrsets, sorted);
    assert_eq!(zone.providers.len(), 1);
    assert_eq!(
        (zone.providers[0].synced_generation, zone.in_sync()),
        (0, false)
    );
    assert_eq!(store.zone_by_name(&name).await.unwrap(), zone);
    // A sync waits (no worker here): another one for the zone joins it.
    let sync = || drover_store::Job::SyncZone {
        args: drover_store::jobs::SyncZone {
            zone_id: zone.id.get(),
            force: false,
        },
        account: None,
    };
    let mut tx = store.write().await.unwrap();
    let first = tx.enqueue(&ctx(), sync()).await.unwrap();
    let joined = tx.enqueue(&ctx(), sync()).await.unwrap();
    tx.commit().await.unwrap();
    assert!(!first.joined && joined.joined, "{first:?} {joined:?}");
    assert_eq!(joined.id, first.id);
    let jobs = store.jobs(JobFilter::default()).await.unwrap();
    assert!(
        jobs.iter()
            .any(|j| j.kind == "sync_zone" && j.args["zone_id"] == zone.id.get()),
        "{jobs:?}"
    );
    // Refusals: the same name, an unknown provider.
    let err = new_zone(&**store, &name, None, vec![], &[])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Duplicate {
                key: drover_store::UniqueKey::ZoneName,
                ..
            }
        ),
        "{err}"
    );
    let other = DomainName::parse("altul.ro").unwrap();
    let err = new_zone(
        &**store,
        &other,
        None,
        vec![],
        &[drover_core::DnsProviderId(999)],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::UnknownReference {
                reference: Reference::DnsProvider,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        matches!(
            store.zone_by_name(&other).await,
            Err(StoreError::NotFound { .. })
        ),
        "nothing kept"
    );
    // Changed rrsets are a new generation.
    let www = OwnerName::parse("www", &name).unwrap();
    let shop = RrSet::new(
        OwnerName::parse("shop", &name).unwrap(),
        RecordType::A,
        300,
        ["192.0.2.50"],
    )
    .unwrap();
    let zone = edit_zone(&**store, zone.id, |rrsets| rrsets.push(shop.clone())).await;
    assert_eq!(zone.generation, 2);
    assert!(zone.rrsets.contains(&shop));
    let zone = edit_zone(&**store, zone.id, |rrsets| {
        rrsets.retain(|r| r.key() != (&www, RecordType::A));
    })
    .await;
    assert_eq!(zone.generation, 3);
    assert!(!zone.rrsets.iter().any(|r| r.key() == (&www, RecordType::A)));
    let mut tx = store.write().await.unwrap();
    tx.update_zone_safety(zone.id, Some(40)).await.unwrap();
    let zone = tx.zone(zone.id).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(zone.max_change_percent, Some(40));
    let listed = store
        .zones(ZoneFilter {
            provider: Some(p.id),
            ..ZoneFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(listed, std::slice::from_ref(&zone));
    let events = store
        .audit_events(AuditFilter {
            subject: Some("zone:exemplu.ro".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(
        events.is_empty(),
        "a write audits what its command says: {events:?}"
    );
}

pub async fn provider_sync_state_and_record_ids_are_kept(h: Harness) {
    let store = &h.store;
    let p = new_provider(&**store, provider("cf", ProviderKind::Cloudflare))
        .await
        .unwrap();
    let name = DomainName::parse("ids.ro").unwrap();
    let zone = new_zone(
        &**store,
        &name,
        None,
        zone_records(&name, "192.0.2.10"),
        &[p.id],
    )
    .await
    .unwrap();
    let ids: RecordIds = [(
        RecordKey {
            name: "ids.ro".into(),
            rtype: RecordType::A,
            content: "192.0.2.10".into(),
        },
        "abc".to_owned(),
    )]
    .into();
    let outcome = ZoneSyncOutcome {
        generation: Some(1),
        provider_zone_id: Some("zone-1".into()),
        record_ids: Some(ids.clone()),
        error: None,
    };
    let applying = ctx();
    let applied = SyncAudit {
        ctx: &applying,
        action: "dns.apply",
        subject: "zone:ids.ro".into(),
        details: serde_json::json!({"generation": 1}),
    };
    store
        .record_zone_syncs(&[(zone.id, p.id, outcome)], vec![applied])
        .await
        .unwrap();
    assert_eq!(store.record_ids(zone.id, p.id).await.unwrap(), ids);
    let zone = store.zone(zone.id).await.unwrap();
    assert!(zone.in_sync());
    assert_eq!(
        zone.providers[0].provider_zone_id.as_deref(),
        Some("zone-1")
    );
    // A failure keeps the generation and zone id, and says why.
    let failed = ZoneSyncOutcome {
        generation: None,
        provider_zone_id: None,
        record_ids: None,
        error: Some("HTTP 500".into()),
    };
    store
        .record_zone_syncs(&[(zone.id, p.id, failed)], Vec::new())
        .await
        .unwrap();
    // The apply's audit event was written with its outcome, and only with it.
    let events = store
        .audit_events(AuditFilter {
            subject: Some("zone:ids.ro".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["dns.apply"], "{events:?}");
    let details: serde_json::Value = serde_json::from_str(&events[0].details).unwrap();
    assert_eq!(details["generation"], 1);
    let zone = store.zone(zone.id).await.unwrap();
    assert_eq!(zone.providers[0].synced_generation, 1);
    assert_eq!(
        zone.providers[0].provider_zone_id.as_deref(),
        Some("zone-1")
    );
    assert_eq!(zone.providers[0].last_error.as_deref(), Some("HTTP 500"));
    assert!(!zone.in_sync());
    assert_eq!(
        store.record_ids(zone.id, p.id).await.unwrap(),
        ids,
        "ids kept"
    );
    // Removal: marked, then forgotten.
    let mut tx = store.write().await.unwrap();
    tx.mark_zone_deleting(zone.id).await.unwrap();
    let removed = tx.zone(zone.id).await.unwrap();
    tx.commit().await.unwrap();
    assert!(removed.deleting);
    store.forget_zone(&ctx(), zone.id).await.unwrap();
    assert!(matches!(
        store.zone(zone.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(store.record_ids(zone.id, p.id).await.unwrap().is_empty());
}

pub async fn an_address_rewrite_changes_only_zones_pointing_at_it(h: Harness) {
    let store = &h.store;
    let mut moved_zones = Vec::new();
    for i in 0..5 {
        let name = DomainName::parse(&format!("old{i}.ro")).unwrap();
        moved_zones.push(
            new_zone(
                &**store,
                &name,
                None,
                zone_records(&name, "192.0.2.10"),
                &[],
            )
            .await
            .unwrap(),
        );
    }
    let keep = DomainName::parse("keep.ro").unwrap();
    // 192.0.2.100 contains 192.0.2.10 as text: it must not be touched.
    let kept = new_zone(
        &**store,
        &keep,
        None,
        zone_records(&keep, "192.0.2.100"),
        &[],
    )
    .await
    .unwrap();
    let moved = AddressMove {
        from: vec!["192.0.2.10".parse().unwrap()],
        to: vec!["203.0.113.9".parse().unwrap()],
    };
    // In batches of two: three batches change the five zones; `keep` is looked at (its SPF
    // text matches) and left alone.
    let mut rewrites = Vec::new();
    let mut after = None;
    let mut batches = 0;
    loop {
        let batch = store
            .rewrite_addresses(&ctx(), &moved, after, 2)
            .await
            .unwrap();
        let Some(last) = batch.scanned_to else { break };
        assert!(batch.rewrites.len() <= 2);
        rewrites.extend(batch.rewrites);
        after = Some(last);
        batches += 1;
    }
    assert_eq!(batches, 3);
    assert_eq!(rewrites.len(), 5);
    for rewrite in &rewrites {
        assert_eq!(
            &store.zone(rewrite.zone.id).await.unwrap(),
            &rewrite.zone,
            "the batch shows the zone as stored"
        );
        assert_eq!(rewrite.zone.generation, 2);
        assert_eq!(rewrite.diff.updates.len(), 4, "apex, www, mail A and SPF");
        assert!(
            rewrite
                .zone
                .rrsets
                .iter()
                .filter(|r| r.rtype == RecordType::A)
                .all(|r| r.records == ["203.0.113.9"])
        );
    }
    assert_eq!(store.zone(kept.id).await.unwrap(), kept);
    let again = store
        .rewrite_addresses(&ctx(), &moved, None, 100)
        .await
        .unwrap();
    assert!(again.rewrites.is_empty(), "nothing left to move");
    assert_eq!(
        again.scanned_to,
        Some(kept.id),
        "only the look-alike is looked at"
    );
    let events = store
        .audit_events(AuditFilter {
            subject: Some("dns".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        events.len(),
        3,
        "one event per batch that changed something"
    );
    assert!(events.iter().all(|e| e.action == "dns.rewrite"));
}

pub async fn a_provider_call_budget_is_shared_through_the_database(h: Harness) {
    let store = &h.store;
    for _ in 0..3 {
        assert_eq!(
            store
                .reserve_provider_call("cf:token-a", 3, 300)
                .await
                .unwrap(),
            None
        );
    }
    let wait = store
        .reserve_provider_call("cf:token-a", 3, 300)
        .await
        .unwrap();
    assert!(wait.is_some_and(|w| (1..=300).contains(&w)), "{wait:?}");
    // Another key has its own budget.
    assert_eq!(
        store
            .reserve_provider_call("cf:token-b", 3, 300)
            .await
            .unwrap(),
        None
    );
    tokio::time::sleep(std::time::Duration::from_millis(wait.unwrap() as u64 + 20)).await;
    assert_eq!(
        store
            .reserve_provider_call("cf:token-a", 3, 300)
            .await
            .unwrap(),
        None,
        "the window moved on"
    );
    // Concurrent reservations never exceed the limit.
    let attempts = (0..20).map(|_| {
        let store = std::sync::Arc::clone(store);
        tokio::spawn(async move {
            store
                .reserve_provider_call("cf:token-c", 5, 60_000)
                .await
                .unwrap()
        })
    });
    let mut granted = 0;
    for attempt in attempts {
        if attempt.await.unwrap().is_none() {
            granted += 1;
        }
    }
    assert_eq!(granted, 5);
}

/// Providers written before their settings became one JSON document keep every setting.
const OLD_PROVIDERS: &str = "INSERT INTO dns_providers (id, name, kind, api_url, credentials, \
    server_id, account_id, dns_address, batch_size, serves_new_zones, created_at) VALUES \
    (1, 'pdns-1', 'powerdns', 'http://127.0.0.1:8081', 'env:PDNS_KEY', 'localhost', NULL, \
     '127.0.0.1:5301', NULL, TRUE, '2026-01-01T00:00:00Z'), \
    (2, 'cf', 'cloudflare', 'https://api.cloudflare.com/client/v4', 'file:/etc/cf.token', NULL, \
     'acc-1', NULL, 200, FALSE, '2026-01-01T00:00:00Z')";

fn settings_of(providers: &[drover_store::DnsProviderRecord]) -> Vec<(String, ProviderSettings)> {
    providers
        .iter()
        .map(|p| (p.spec.name.clone(), p.spec.settings.clone()))
        .collect()
}

fn old_settings() -> Vec<(String, ProviderSettings)> {
    vec![
        (
            "pdns-1".into(),
            ProviderSettings::PowerDns {
                api_url: "http://127.0.0.1:8081".into(),
                server_id: Some("localhost".into()),
                dns_address: Some("127.0.0.1:5301".parse().unwrap()),
            },
        ),
        (
            "cf".into(),
            ProviderSettings::Cloudflare {
                api_url: "https://api.cloudflare.com/client/v4".into(),
                account_id: Some("acc-1".into()),
                batch_size: Some(200),
            },
        ),
    ]
}

#[tokio::test]
async fn sqlite_providers_of_the_column_schema_keep_their_settings() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("drover.db").display());
    {
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
        let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
            .await
            .unwrap();
        drover_store::migrations::sqlite()
            .run_to(11, &pool)
            .await
            .unwrap();
        sqlx::raw_sql(OLD_PROVIDERS).execute(&pool).await.unwrap();
        pool.close().await;
    }
    let store = drover_store::SqliteStore::open(&url).await.unwrap();
    let providers = drover_store::DnsStore::dns_providers(&store).await.unwrap();
    assert_eq!(settings_of(&providers), old_settings());
    assert!(providers[0].spec.serves_new_zones && !providers[1].spec.serves_new_zones);
}

#[tokio::test]
async fn postgres_providers_of_the_column_schema_keep_their_settings() {
    let db = drover_testkit::TestPostgres::create()
        .await
        .expect("PostgreSQL for tests");
    {
        let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
        drover_store::migrations::postgres()
            .run_to(11, &pool)
            .await
            .unwrap();
        sqlx::raw_sql(OLD_PROVIDERS).execute(&pool).await.unwrap();
        pool.close().await;
    }
    let store = drover_store::PgStore::open(db.url()).await.unwrap();
    let providers = drover_store::DnsStore::dns_providers(&store).await.unwrap();
    assert_eq!(settings_of(&providers), old_settings());
    assert!(providers[0].spec.serves_new_zones && !providers[1].spec.serves_new_zones);
}

/// Changes a zone's rrsets through the write primitives: the diff, then a new generation.
async fn edit_zone(
    store: &dyn drover_store::Store,
    id: drover_core::ZoneId,
    change: impl FnOnce(&mut Vec<RrSet>),
) -> drover_store::Zone {
    let mut tx = store.write().await.unwrap();
    let before = tx.zone(id).await.unwrap();
    let mut rrsets = before.rrsets.clone();
    change(&mut rrsets);
    let diff = drover_core::diff_zone(&rrsets, &before.rrsets);
    tx.update_rrsets(id, &diff).await.unwrap();
    tx.next_zone_generation(id).await.unwrap();
    let zone = tx.zone(id).await.unwrap();
    tx.commit().await.unwrap();
    zone
}
