//! DNS at scale on a real PowerDNS. `cargo bench -p drover --bench dns [-- ZONES]`
//!
//! ZONES zones (default 1,000) of 10 records each, held by drover (SQLite, the embedded
//! default), on a fresh `pdns_server`: the initial sync, a no-change consistency check, and a
//! failover rewrite of every zone. Each is printed with its wall time and requests next to a
//! bare baseline measured in the same run: a minimal sequential client sending the same requests
//! (built beforehand) for an identical second set of zones on the same server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover::engine::Dns;
use drover::engine::dns::DnsSettings;
use drover_core::{AddressMove, DomainName, RrSet, ZoneTemplate, account_zone};
use drover_dns::ProviderSettings;
use drover_store::{DnsProviderSpec, RequestContext, Store};
use drover_testkit::PowerDns;
use serde_json::{Value, json};

fn ctx() -> RequestContext {
    RequestContext {
        actor: "bench".into(),
        correlation_id: "bench".into(),
    }
}

const OLD_V4: &str = "192.0.2.10";
const OLD_V6: &str = "2001:db8::10";
const NEW_V4: &str = "203.0.113.10";
const NEW_V6: &str = "2001:db8:1::10";

fn zone_rrsets(name: &DomainName) -> Vec<RrSet> {
    let template = ZoneTemplate {
        nameservers: vec!["ns1.example.net.".into(), "ns2.example.net.".into()],
        ..ZoneTemplate::default()
    };
    account_zone(name, OLD_V4.parse().ok(), OLD_V6.parse().ok(), &template).unwrap()
}

fn rrset_json(r: &RrSet, changetype: Option<&str>) -> Value {
    let mut v = json!({
        "name": r.name.absolute(), "type": r.rtype.as_str(), "ttl": r.ttl,
        "records": r.records.iter().map(|c| json!({"content": c, "disabled": false})).collect::<Vec<_>>(),
    });
    if let Some(changetype) = changetype {
        v["changetype"] = json!(changetype);
    }
    v
}

/// The bare client: one reqwest call at a time, bodies built before the clock starts.
struct Bare {
    http: reqwest::Client,
    base: String,
    key: String,
    requests: usize,
}

impl Bare {
    async fn send(&mut self, method: reqwest::Method, path: &str, body: Option<String>) -> u16 {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-API-Key", &self.key);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        self.requests += 1;
        let response = request.send().await.expect("PowerDNS answers");
        let status = response.status().as_u16();
        let _ = response.bytes().await;
        status
    }
}

struct Figure {
    what: &'static str,
    drover: Duration,
    drover_requests: usize,
    bare: Duration,
    bare_requests: usize,
}

fn main() {
    let zones: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(zones));
}

async fn run(zones: usize) {
    let pdns =
        PowerDns::start().expect("PowerDNS (Debian packages pdns-server, pdns-backend-sqlite3)");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("drover.db").display());
    let store: Arc<dyn Store> = drover_store::open(&url).await.unwrap();
    std::fs::write(dir.path().join("pdns.key"), &pdns.api_key).unwrap();
    let provider = drover::commands::create_dns_provider(
        &*store,
        &ctx(),
        DnsProviderSpec {
            name: "pdns".into(),
            credentials: drover_core::CredentialRef::parse(&format!(
                "file:{}",
                dir.path().join("pdns.key").display()
            ))
            .unwrap(),
            serves_new_zones: false,
            settings: ProviderSettings::PowerDns {
                api_url: pdns.api_url.clone(),
                server_id: None,
                dns_address: None,
            },
        },
    )
    .await
    .unwrap();
    // DROVER_DNS_PUSH_CONCURRENCY, as drover reads it, to compare settings.
    let mut settings = DnsSettings::default();
    if let Some(n) = std::env::var("DROVER_DNS_PUSH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.push_concurrency = n;
    }
    let secrets = drover::engine::Secrets::new(
        drover_core::SecretSources {
            dir: dir.path().to_owned(),
            env_prefix: drover_core::SecretSources::DEFAULT_ENV_PREFIX.into(),
        },
        Vec::new(),
    );
    let dns = Arc::new(Dns::new(Arc::clone(&store), settings, Arc::new(secrets)));
    let names = |set: &str| -> Vec<DomainName> {
        (0..zones)
            .map(|i| DomainName::parse(&format!("{set}{i:05}.ro")).unwrap())
            .collect()
    };
    let (ours, theirs) = (names("drover"), names("bare"));
    let mut zone_ids = Vec::new();
    for name in &ours {
        let zone = drover::commands::create_zone(
            &*store,
            &ctx(),
            name,
            None,
            zone_rrsets(name),
            &[provider.id],
        )
        .await
        .unwrap();
        zone_ids.push(zone.id);
    }
    let records: usize = zone_rrsets(&ours[0]).iter().map(|r| r.records.len()).sum();
    println!(
        "{zones} zones of {records} records on PowerDNS {} (one pdns_server, gsqlite3)",
        pdns.api_url
    );
    let mut bare = Bare {
        http: reqwest::Client::builder()
            .tls_backend_preconfigured(
                drover_virtualmin::client_config(&drover_virtualmin::TlsPolicy::default()).unwrap(),
            )
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
        base: format!("{}/api/v1/servers/localhost", pdns.api_url),
        key: pdns.api_key.clone(),
        requests: 0,
    };
    let mut figures = Vec::new();

    // 1. Initial sync: read each zone (absent), create it with its records.
    let started = Instant::now();
    // Zone syncs run as jobs, four at a time on the DNS queue.
    let semaphore = Arc::new(tokio::sync::Semaphore::new(4));
    let mut tasks = Vec::new();
    for id in &zone_ids {
        let (dns, id, semaphore) = (Arc::clone(&dns), *id, Arc::clone(&semaphore));
        tasks.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await;
            dns.sync(&ctx(), id, false).await.unwrap().outcomes
        }));
    }
    let mut drover_requests = 0;
    for task in tasks {
        drover_requests += 1 + task
            .await
            .unwrap()
            .iter()
            .map(|o| o.requests)
            .sum::<usize>();
    }
    let drover_time = started.elapsed();
    let bodies: Vec<(String, String)> = theirs
        .iter()
        .map(|name| {
            let rrsets: Vec<Value> = zone_rrsets(name).iter().map(|r| rrset_json(r, None)).collect();
            let body = json!({"name": format!("{name}."), "kind": "Native", "nameservers": [], "rrsets": rrsets});
            (format!("/zones/{name}."), body.to_string())
        })
        .collect();
    let started = Instant::now();
    for (path, body) in &bodies {
        assert_eq!(bare.send(reqwest::Method::GET, path, None).await, 404);
        assert_eq!(
            bare.send(reqwest::Method::POST, "/zones", Some(body.clone()))
                .await,
            201
        );
    }
    figures.push(Figure {
        what: "initial sync",
        drover: drover_time,
        drover_requests,
        bare: started.elapsed(),
        bare_requests: std::mem::take(&mut bare.requests),
    });

    // 2. No-change check: list the zones, read each, compare.
    let started = Instant::now();
    let checks = dns.check(Some(provider.id)).await.unwrap();
    let drover_time = started.elapsed();
    let check = &checks[0];
    assert!(
        check.missing.is_empty() && check.different.is_empty(),
        "{check:?}"
    );
    let started = Instant::now();
    bare.send(reqwest::Method::GET, "/zones", None).await;
    for (path, _) in &bodies {
        bare.send(reqwest::Method::GET, path, None).await;
    }
    figures.push(Figure {
        what: "no-change check",
        drover: drover_time,
        drover_requests: 1 + check.zones_checked,
        bare: started.elapsed(),
        bare_requests: std::mem::take(&mut bare.requests),
    });

    // 3. Failover: every record at the old addresses moves to the new ones.
    let moved = AddressMove {
        from: vec![OLD_V4.parse().unwrap(), OLD_V6.parse().unwrap()],
        to: vec![NEW_V4.parse().unwrap(), NEW_V6.parse().unwrap()],
    };
    let started = Instant::now();
    let report = dns.rewrite(&ctx(), &moved).await.unwrap();
    let drover_time = started.elapsed();
    assert_eq!((report.zones, report.deferred), (zones, 0), "{report:?}");
    let patches: Vec<(String, String)> = theirs
        .iter()
        .map(|name| {
            let diff = drover_core::rewrite_addresses(&zone_rrsets(name), &moved);
            let changes: Vec<Value> = diff
                .upserts()
                .map(|r| rrset_json(r, Some("REPLACE")))
                .collect();
            (
                format!("/zones/{name}."),
                json!({"rrsets": changes}).to_string(),
            )
        })
        .collect();
    let started = Instant::now();
    for (path, body) in &patches {
        assert_eq!(
            bare.send(reqwest::Method::PATCH, path, Some(body.clone()))
                .await,
            204
        );
    }
    figures.push(Figure {
        what: "failover rewrite",
        drover: drover_time,
        drover_requests: report.requests,
        bare: started.elapsed(),
        bare_requests: std::mem::take(&mut bare.requests),
    });
    println!(
        "failover: {} ms in drover's database (rewrite of {zones} zones, overlapped with the pushes), {} requests at {} at a time",
        report.database_ms, report.requests, dns.settings.push_concurrency
    );

    println!(
        "{:<18} {:>12} {:>9} {:>12} {:>9} {:>7}",
        "", "drover", "requests", "bare", "requests", "ratio"
    );
    for f in &figures {
        println!(
            "{:<18} {:>10.0}ms {:>9} {:>10.0}ms {:>9} {:>6.2}x",
            f.what,
            f.drover.as_secs_f64() * 1000.0,
            f.drover_requests,
            f.bare.as_secs_f64() * 1000.0,
            f.bare_requests,
            f.drover.as_secs_f64() / f.bare.as_secs_f64()
        );
    }
    let failover = &figures[2];
    let ratio = failover.drover.as_secs_f64() / failover.bare.as_secs_f64();
    println!(
        "target: failover within 1.3x of the bare client: {}",
        if ratio <= 1.3 { "met" } else { "NOT met" }
    );
}
