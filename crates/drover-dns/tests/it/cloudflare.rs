use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_core::{RecordType, diff_zone};
use drover_dns::{
    CallBudgets, CloudflareClient, CloudflareSettings, DnsError, DnsProvider, RecordIds, ZoneRef,
};
use drover_testkit::{CloudflareFake, FakeConfig};
use secrecy::SecretString;
use serde_json::{Value, json};

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
        .filter(|(key, ..)| key.key().name() == "drover_dns_requests_total")
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

/// Plain calls to the fake, as any HTTP client makes them.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(fake: &CloudflareFake) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            http: reqwest::Client::new(),
            base: fake.api_url(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, text) = self.text(method, path, body).await;
        (status, serde_json::from_str(&text).expect("a JSON body"))
    }

    async fn text(&self, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth("cf-test-token");
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.call(method, path, body).await;
        assert_eq!(
            (status, &answer["success"]),
            (200, &json!(true)),
            "{answer}"
        );
        answer["result"].clone()
    }

    async fn names(&self, path: &str) -> Vec<String> {
        let result = self.ok("GET", path, None).await;
        let mut names: Vec<String> = result
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r["name"].as_str().unwrap(),
                    r["type"].as_str().unwrap(),
                    r["content"].as_str().unwrap()
                )
            })
            .collect();
        names.sort();
        names
    }
}

#[tokio::test]
async fn zones_are_got_and_patched_as_the_full_zone_object() {
    let fake = CloudflareFake::start(FakeConfig::default()).await;
    let api = Api::new(&fake);
    let body =
        json!({"name": "zone-object.ro", "account": {"id": fake.account_id()}, "type": "full"});
    let created = api.ok("POST", "/zones", Some(body)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let zone = api.ok("GET", &format!("/zones/{id}"), None).await;
    assert_eq!(zone, created);
    for (field, expected) in [
        ("name", json!("zone-object.ro")),
        ("status", json!("pending")),
        ("paused", json!(false)),
        ("type", json!("full")),
    ] {
        assert_eq!(zone[field], expected, "{field}");
    }
    assert_eq!(zone["name_servers"].as_array().unwrap().len(), 2);
    assert!(
        zone["name_servers"][0]
            .as_str()
            .unwrap()
            .ends_with(".ns.cloudflare.com")
    );
    assert_eq!(zone["plan"]["legacy_id"], "free");
    let created_on = zone["created_on"].as_str().unwrap();
    assert!(
        created_on.contains('T') && created_on.ends_with('Z'),
        "{created_on}"
    );
    assert_eq!(zone["account"]["id"], fake.account_id());
    // PATCH changes one property at a time.
    let paused = api
        .ok(
            "PATCH",
            &format!("/zones/{id}"),
            Some(json!({"paused": true})),
        )
        .await;
    assert_eq!(paused["paused"], true);
    assert_eq!(
        api.ok("GET", &format!("/zones/{id}"), None).await["paused"],
        true
    );
    let (status, answer) = api
        .call(
            "PATCH",
            &format!("/zones/{id}"),
            Some(json!({"paused": false, "type": "partial"})),
        )
        .await;
    assert_eq!(
        (status, answer["errors"][0]["code"].as_u64()),
        (400, Some(1004))
    );
    let pro = api
        .ok(
            "PATCH",
            &format!("/zones/{id}"),
            Some(json!({"plan": {"id": "94f3b7b768b0458b56d2cac4fe5ec0f9"}})),
        )
        .await;
    assert_eq!(pro["plan"]["legacy_id"], "pro");
    // The list answers the same object, 20 a page by default, at most 50.
    let listed = api.ok("GET", "/zones?name=zone-object.ro", None).await;
    assert_eq!(listed[0]["paused"], true);
    for i in 0..55 {
        fake.add_zone(&format!("many-{i:02}.ro"));
    }
    let (_, answer) = api.call("GET", "/zones", None).await;
    assert_eq!(answer["result"].as_array().unwrap().len(), 20);
    let (_, answer) = api.call("GET", "/zones?per_page=500&page=1", None).await;
    assert_eq!(answer["result"].as_array().unwrap().len(), 50);
    assert_eq!(answer["result_info"]["total_count"], 56);
    assert_eq!(
        api.ok("GET", "/zones?name=starts_with:many-5", None)
            .await
            .as_array()
            .unwrap()
            .len(),
        5
    );
    // Unknown zones are 404 for GET and PATCH alike.
    let unknown = "f".repeat(32);
    assert_eq!(
        api.call("GET", &format!("/zones/{unknown}"), None).await.0,
        404
    );
    assert_eq!(
        api.call(
            "PATCH",
            &format!("/zones/{unknown}"),
            Some(json!({"paused": true}))
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn record_lists_filter_exactly_and_export_is_a_bind_file() {
    let fake = CloudflareFake::start(FakeConfig::default()).await;
    let api = Api::new(&fake);
    let id = fake.add_zone("filters.ro");
    let records = format!("/zones/{id}/dns_records");
    for body in [
        json!({"type": "A", "name": "filters.ro", "content": "192.0.2.1", "ttl": 300}),
        json!({"type": "A", "name": "www.filters.ro", "content": "192.0.2.1", "ttl": 300}),
        json!({"type": "A", "name": "www2.filters.ro", "content": "192.0.2.2", "ttl": 300}),
        json!({"type": "TXT", "name": "www.filters.ro", "content": "\"hello\""}),
        // Host names with the trailing dot, as octoDNS sends them.
        json!({"type": "MX", "name": "filters.ro.", "content": "mail.filters.ro.", "priority": 10}),
        json!({"type": "CNAME", "name": "shop", "content": "shops.example.net."}),
    ] {
        api.ok("POST", &records, Some(body)).await;
    }
    assert_eq!(
        api.names(&format!("{records}?name.exact=www.filters.ro"))
            .await,
        ["www.filters.ro A 192.0.2.1", "www.filters.ro TXT \"hello\""]
    );
    assert_eq!(
        api.names(&format!("{records}?content.exact=192.0.2.1"))
            .await,
        ["filters.ro A 192.0.2.1", "www.filters.ro A 192.0.2.1"]
    );
    assert_eq!(
        api.names(&format!("{records}?name.exact=www.filters.ro&type=A"))
            .await,
        ["www.filters.ro A 192.0.2.1"]
    );
    assert_eq!(
        api.names(&format!("{records}?name=filters.ro&type=MX"))
            .await,
        ["filters.ro MX mail.filters.ro"]
    );
    assert_eq!(
        api.names(&format!(
            "{records}?match=any&name.exact=shop.filters.ro&content.exact=192.0.2.2"
        ))
        .await,
        [
            "shop.filters.ro CNAME shops.example.net",
            "www2.filters.ro A 192.0.2.2"
        ]
    );
    assert_eq!(
        api.names(&format!(
            "{records}?name.startswith=www&content.contains=0.2.2"
        ))
        .await
        .len(),
        1
    );
    assert!(
        api.names(&format!("{records}?name.exact=nothing.filters.ro"))
            .await
            .is_empty()
    );
    // Pages of the filtered list.
    let (_, answer) = api
        .call("GET", &format!("{records}?type=A&per_page=2&page=2"), None)
        .await;
    assert_eq!(answer["result"].as_array().unwrap().len(), 1);
    assert_eq!(answer["result_info"]["total_count"], 3);
    // Export is the zone file, not a record id.
    let (status, text) = api.text("GET", &format!("{records}/export"), None).await;
    assert_eq!(status, 200, "{text}");
    for line in [
        "filters.ro.\t3600\tIN\tSOA\t",
        "www.filters.ro.\t300\tIN\tA\t192.0.2.1",
        "filters.ro.\t1\tIN\tMX\t10 mail.filters.ro.",
        "shop.filters.ro.\t1\tIN\tCNAME\tshops.example.net.",
        "www.filters.ro.\t1\tIN\tTXT\t\"hello\"",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

#[tokio::test]
async fn caa_and_srv_are_set_through_data() {
    let fake = CloudflareFake::start(FakeConfig::default()).await;
    let api = Api::new(&fake);
    let id = fake.add_zone("data.ro");
    let records = format!("/zones/{id}/dns_records");
    let caa = api
        .ok(
            "POST",
            &records,
            Some(json!({"type": "CAA", "name": "data.ro", "ttl": 3600,
                "data": {"flags": 0, "tag": "issue", "value": "letsencrypt.org"}})),
        )
        .await;
    assert_eq!(caa["content"], "0 issue \"letsencrypt.org\"");
    assert_eq!(
        caa["data"],
        json!({"flags": 0, "tag": "issue", "value": "letsencrypt.org"})
    );
    let srv = api
        .ok(
            "POST",
            &records,
            Some(
                json!({"type": "SRV", "name": "_submission._tcp.data.ro", "ttl": 3600,
                "data": {"priority": 0, "weight": 1, "port": 587, "target": "mail.data.ro."}}),
            ),
        )
        .await;
    assert_eq!(srv["content"], "0 1 587 mail.data.ro");
    assert_eq!(srv["data"]["target"], "mail.data.ro");
    // The older form names the record from service, protocol and name.
    let old = api
        .ok(
            "POST",
            &records,
            Some(
                json!({"type": "SRV", "data": {"service": "_imaps", "proto": "_tcp", "name": "mail",
                "priority": 0, "weight": 1, "port": 993, "target": "mail.data.ro"}}),
            ),
        )
        .await;
    assert_eq!(old["name"], "_imaps._tcp.mail.data.ro");
    // The same again is the identical-record error; a change of port is a new record.
    let (status, answer) = api
        .call(
            "POST",
            &records,
            Some(json!({"type": "CAA", "name": "data.ro",
                "data": {"flags": 0, "tag": "issue", "value": "letsencrypt.org"}})),
        )
        .await;
    assert_eq!(
        (status, answer["errors"][0]["code"].as_u64()),
        (400, Some(81058))
    );
    let patched = api
        .ok(
            "PATCH",
            &format!("{records}/{}", srv["id"].as_str().unwrap()),
            Some(json!({"data": {"priority": 0, "weight": 1, "port": 465, "target": "mail.data.ro"}})),
        )
        .await;
    assert_eq!(
        (patched["content"].as_str(), &patched["id"]),
        (Some("0 1 465 mail.data.ro"), &srv["id"])
    );
    for (body, says) in [
        (
            json!({"type": "CAA", "name": "data.ro", "content": "0 issue \"x\""}),
            "data",
        ),
        (
            json!({"type": "CAA", "name": "data.ro", "data": {"flags": 300, "tag": "issue", "value": "x"}}),
            "flags",
        ),
        (
            json!({"type": "SRV", "name": "sip.data.ro", "data": {"priority": 0, "weight": 0, "port": 5060, "target": "x.ro"}}),
            "_service._proto",
        ),
        (
            json!({"type": "SRV", "name": "_sip._tcp.data.ro", "data": {"priority": 0, "weight": 0, "port": 70000, "target": "x.ro"}}),
            "port",
        ),
    ] {
        let (status, answer) = api.call("POST", &records, Some(body)).await;
        let message = answer["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert_eq!(status, 400, "{answer}");
        assert!(message.contains(says), "{says}: {message}");
    }
    let (_, text) = api.text("GET", &format!("{records}/export"), None).await;
    assert!(
        text.contains("data.ro.\t3600\tIN\tCAA\t0 issue \"letsencrypt.org\""),
        "{text}"
    );
    assert!(
        text.contains("_submission._tcp.data.ro.\t3600\tIN\tSRV\t0 1 465 mail.data.ro."),
        "{text}"
    );
}

#[tokio::test]
async fn drover_keeps_caa_and_srv_on_cloudflare() {
    let fake = CloudflareFake::start(FakeConfig::default()).await;
    let cf = client(settings(&fake));
    let zone = unique_zone("cf-caa");
    let mut rrsets = sample_zone(&zone, "192.0.2.10");
    rrsets.push(rr(
        &zone,
        "@",
        RecordType::Caa,
        3600,
        &[
            "0 issue \"letsencrypt.org\"",
            "0 iodef \"mailto:ca@example.ro\"",
        ],
    ));
    rrsets.push(rr(
        &zone,
        "_submission._tcp",
        RecordType::Srv,
        3600,
        &[&format!("0 1 587 mail.{zone}.")],
    ));
    rrsets.push(rr(
        &zone,
        "_imaps._tcp",
        RecordType::Srv,
        3600,
        &["0 0 0 ."],
    ));
    let applied = cf.create_zone(&zone, &rrsets).await.unwrap();
    let zone_id = applied.provider_zone_id.unwrap();
    let ids = applied.record_ids.unwrap();
    assert_eq!(ids.len(), fake.records(zone.as_str()).len());
    let served = fake.records(zone.as_str());
    let srv = served
        .iter()
        .find(|r| r["name"] == format!("_submission._tcp.{zone}"))
        .unwrap();
    assert_eq!(
        srv["data"],
        json!({"priority": 0, "weight": 1, "port": 587, "target": format!("mail.{zone}")})
    );
    let zref = ZoneRef {
        name: &zone,
        provider_zone_id: Some(&zone_id),
        record_ids: &ids,
    };
    let read = cf.read_zone(zref).await.unwrap().unwrap();
    assert_eq!(sorted(read.rrsets.clone()), sorted(rrsets.clone()));
    assert_eq!(read.record_ids, ids);
    // A new port is one patch that keeps the record's id.
    let mut wanted: Vec<_> = rrsets
        .iter()
        .filter(|r| r.rtype != RecordType::Srv || r.name.as_str().starts_with("_imaps"))
        .cloned()
        .collect();
    wanted.push(rr(
        &zone,
        "_submission._tcp",
        RecordType::Srv,
        3600,
        &[&format!("0 1 465 mail.{zone}")],
    ));
    let diff = diff_zone(&wanted, &read.rrsets);
    let applied = cf.apply(zref, &diff).await.unwrap();
    assert_eq!(applied.requests, 1);
    let new_ids = applied.record_ids.unwrap();
    assert_eq!(new_ids.len(), ids.len());
    let read = cf
        .read_zone(ZoneRef {
            record_ids: &new_ids,
            ..zref
        })
        .await
        .unwrap()
        .unwrap();
    assert!(diff_zone(&wanted, &read.rrsets).is_empty());
}
