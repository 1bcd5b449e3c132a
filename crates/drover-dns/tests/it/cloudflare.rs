use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_core::{RecordType, diff_zone};
use drover_dns::{
    CallBudgets, CloudflareClient, CloudflareSettings, DnsError, DnsProvider, RecordIds, ZoneRef,
};
use drover_testkit::{CloudflareFake, FakeConfig};
use secrecy::SecretString;

use crate::{rr, sample_zone, sorted, unique_zone};

fn settings(fake: &CloudflareFake) -> CloudflareSettings {
    let mut settings = CloudflareSettings::new(SecretString::from("cf-test-token"));
    settings.api_url = fake.api_url();
    settings.account_id = Some(fake.account_id());
    settings.retry_delay = Duration::from_millis(5);
    settings
}

fn client(settings: CloudflareSettings) -> CloudflareClient {
    CloudflareClient::new(settings, &CallBudgets::default()).unwrap()
}

#[tokio::test]
async fn zones_are_created_read_by_pages_and_changed_by_id_in_one_batch() {
    let fake = CloudflareFake::start(FakeConfig::default()).await;
    let mut s = settings(&fake);
    s.per_page = 3;
    let cf = client(s);
    let zone = unique_zone("cf");
    let rrsets = sample_zone(&zone, "192.0.2.10");
    let applied = cf.create_zone(&zone, &rrsets).await.unwrap();
    let zone_id = applied.provider_zone_id.clone().unwrap();
    assert_eq!(
        fake.zone_id(zone.as_str()).as_deref(),
        Some(zone_id.as_str())
    );
    let ids = applied.record_ids.unwrap();
    assert_eq!(ids.len(), fake.records(zone.as_str()).len());
    assert_eq!(applied.requests, 2, "one zone creation, one batch");
    // Read back through pages of three.
    let before = fake.stats().requests;
    let read = cf
        .read_zone(ZoneRef {
            name: &zone,
            provider_zone_id: Some(&zone_id),
            record_ids: &ids,
        })
        .await
        .unwrap()
        .unwrap();
    let pages = fake.stats().requests - before;
    assert_eq!(pages, ids.len().div_ceil(3));
    assert_eq!(sorted(read.rrsets), sorted(rrsets.clone()));
    assert_eq!(read.record_ids, ids);
    // Moving the addresses is one batch, patches by stored id, no read first.
    let moved = drover_core::rewrite_addresses(
        &rrsets,
        &drover_core::AddressMove {
            from: vec!["192.0.2.10".parse().unwrap()],
            to: vec!["203.0.113.7".parse().unwrap()],
        },
    );
    let before = fake.stats();
    let applied = cf
        .apply(
            ZoneRef {
                name: &zone,
                provider_zone_id: Some(&zone_id),
                record_ids: &ids,
            },
            &moved,
        )
        .await
        .unwrap();
    let after = fake.stats();
    assert_eq!((applied.requests, after.requests - before.requests), (1, 1));
    let new_ids = applied.record_ids.unwrap();
    assert_eq!(new_ids.len(), ids.len(), "patches keep the ids");
    let served = fake.records(zone.as_str());
    assert!(
        served
            .iter()
            .filter(|r| r["type"] == "A")
            .all(|r| r["content"] == "203.0.113.7")
    );
    assert!(
        served
            .iter()
            .any(|r| r["type"] == "TXT"
                && r["content"].as_str().unwrap().contains("ip4:203.0.113.7"))
    );
    // Delete the zone; again is fine.
    let zref = ZoneRef {
        name: &zone,
        provider_zone_id: Some(&zone_id),
        record_ids: &new_ids,
    };
    cf.delete_zone(zref).await.unwrap();
    assert_eq!(fake.zone_id(zone.as_str()), None);
    cf.delete_zone(zref).await.unwrap();
    assert_eq!(
        cf.read_zone(ZoneRef {
            provider_zone_id: None,
            ..zref
        })
        .await
        .unwrap(),
        None
    );
}

#[tokio::test]
async fn batches_hold_at_most_the_configured_records() {
    let fake = CloudflareFake::start(FakeConfig {
        max_batch: 4,
        ..FakeConfig::default()
    })
    .await;
    let mut s = settings(&fake);
    s.batch_size = 4;
    let cf = client(s);
    let zone = unique_zone("batch");
    let rrsets: Vec<_> = (0..10)
        .map(|i| rr(&zone, &format!("h{i}"), RecordType::A, 300, &["192.0.2.1"]))
        .collect();
    let applied = cf.create_zone(&zone, &rrsets).await.unwrap();
    assert_eq!(applied.requests, 1 + 3, "10 records in batches of 4");
    assert_eq!(
        fake.stats().by_endpoint["POST /zones/:id/dns_records/batch"],
        3
    );
    // A client that thinks batches are bigger than the account allows gets the fake's refusal.
    let mut s = settings(&fake);
    s.batch_size = 200;
    let zone2 = unique_zone("batch");
    let err = client(s).create_zone(&zone2, &rrsets).await.unwrap_err();
    match err {
        DnsError::Rejected { message, codes } => {
            assert_eq!(codes, [1004]);
            assert!(message.contains("at most 4"), "{message}");
        }
        other => panic!("expected a rejection, got {other}"),
    }
}

#[tokio::test]
async fn documented_errors_are_typed() {
    let fake = CloudflareFake::start(FakeConfig::default()).await;
    let cf = client(settings(&fake));
    let zone = unique_zone("errors");
    let rrsets = vec![rr(&zone, "www", RecordType::A, 300, &["192.0.2.1"])];
    let applied = cf.create_zone(&zone, &rrsets).await.unwrap();
    let zone_id = applied.provider_zone_id.unwrap();
    let ids = applied.record_ids.unwrap();
    let zref = ZoneRef {
        name: &zone,
        provider_zone_id: Some(&zone_id),
        record_ids: &ids,
    };
    // A CNAME where an A is: 81053, and the batch changes nothing.
    let conflict = vec![rr(&zone, "www", RecordType::Cname, 300, &["example.net"])];
    let err = cf
        .apply(
            zref,
            &drover_core::ZoneDiff {
                creates: conflict,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DnsError::Rejected { codes, .. } if codes == &[81053]),
        "{err}"
    );
    // The same record again: 81058.
    let err = cf
        .apply(
            zref,
            &drover_core::ZoneDiff {
                creates: rrsets.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DnsError::Rejected { codes, .. } if codes == &[81058]),
        "{err}"
    );
    assert_eq!(fake.records(zone.as_str()).len(), 1);
    // A stale id: 81044.
    let mut stale = ids.clone();
    stale.values_mut().for_each(|id| *id = "0".repeat(32));
    let gone = ZoneRef {
        record_ids: &stale,
        ..zref
    };
    let err = cf.apply(gone, &diff_zone(&[], &rrsets)).await.unwrap_err();
    assert!(err.to_string().contains("81044"), "{err}");
    // An id drover never learnt is named before any call.
    let err = cf
        .apply(
            ZoneRef {
                record_ids: &RecordIds::new(),
                ..zref
            },
            &diff_zone(&[], &rrsets),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DnsError::MissingRecordId { .. }), "{err}");
    // Unknown zone and bad token.
    let err = cf
        .apply(
            ZoneRef {
                provider_zone_id: Some("f".repeat(32).as_str()),
                ..zref
            },
            &diff_zone(&rrsets, &[]),
        )
        .await;
    assert!(matches!(err, Err(DnsError::NotFound { .. })), "{err:?}");
    let mut bad = settings(&fake);
    bad.token = SecretString::from("wrong");
    assert!(matches!(
        client(bad).list_zones().await.unwrap_err(),
        DnsError::Unauthorized { status: 401 }
    ));
    // Creating a zone that exists finds its id instead.
    let again = cf.create_zone(&zone, &[]).await.unwrap();
    assert_eq!(again.provider_zone_id.as_deref(), Some(zone_id.as_str()));
}

#[tokio::test]
async fn a_burst_stays_inside_the_budget_and_never_meets_a_429() {
    let window = Duration::from_secs(1);
    let fake = CloudflareFake::start(FakeConfig {
        limit: 20,
        window,
        block: Duration::from_secs(2),
        ..FakeConfig::default()
    })
    .await;
    let mut s = settings(&fake);
    (s.budget_calls, s.budget_window) = (16, window);
    let budgets = CallBudgets::default();
    // Two clients with the same token share one budget.
    let a = Arc::new(CloudflareClient::new(s.clone(), &budgets).unwrap());
    let b = Arc::new(CloudflareClient::new(s, &budgets).unwrap());
    let started = Instant::now();
    let calls: Vec<_> = (0..48)
        .map(|i| {
            let client = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { client.list_zones().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let stats = fake.stats();
    assert_eq!(stats.rate_limited, 0);
    assert!(
        stats.max_in_window <= 16,
        "{} calls in one window",
        stats.max_in_window
    );
    // 48 calls at 16 per second take at least two full windows.
    assert!(started.elapsed() >= 2 * window, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_429_is_waited_out_as_retry_after_says() {
    let fake = CloudflareFake::start(FakeConfig {
        limit: 5,
        window: Duration::from_secs(10),
        block: Duration::from_secs(1),
        ..FakeConfig::default()
    })
    .await;
    // A budget set above what the account really allows: the provider's 429 must be honoured.
    let mut s = settings(&fake);
    s.budget_calls = 100;
    let cf = client(s);
    let started = Instant::now();
    for _ in 0..6 {
        cf.list_zones().await.unwrap();
    }
    let stats = fake.stats();
    assert_eq!(stats.rate_limited, 1, "one refusal, then the client waited");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Refused with retries exhausted: the typed error.
    let mut s = settings(&fake);
    (s.budget_calls, s.retries) = (100, 0);
    let impatient = CloudflareClient::new(s, &CallBudgets::default()).unwrap();
    let mut limited = None;
    for _ in 0..10 {
        if let Err(e) = impatient.list_zones().await {
            limited = Some(e);
            break;
        }
    }
    assert!(
        matches!(
            limited,
            Some(DnsError::RateLimited {
                retry_after_secs: 1
            })
        ),
        "{limited:?}"
    );
}

#[tokio::test]
async fn every_request_is_counted_by_provider_method_and_outcome() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only metrics recorder of this test binary");
    let fake = CloudflareFake::start(FakeConfig::default()).await;
    let cf = client(settings(&fake));
    cf.list_zones().await.unwrap();
    let mut bad = settings(&fake);
    bad.token = SecretString::from("wrong");
    client(bad).list_zones().await.unwrap_err();
    // Other tests of this binary count too once the recorder is in: look for at least these.
    let counts: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "dns_requests_total")
        .filter_map(|(key, _, _, value)| match value {
            DebugValue::Counter(n) => {
                let labels: Vec<String> = key
                    .key()
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                Some((labels.join(","), n))
            }
            _ => None,
        })
        .collect();
    assert!(
        counts
            .iter()
            .any(|(l, n)| l == "provider=cloudflare,method=GET,outcome=200" && *n >= 1),
        "{counts:?}"
    );
    assert!(
        counts
            .iter()
            .any(|(l, n)| l == "provider=cloudflare,method=GET,outcome=401" && *n >= 1),
        "{counts:?}"
    );
}
