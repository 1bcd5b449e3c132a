//! DNS at scale on a real PowerDNS. `cargo bench -p drover --bench dns [-- ZONES]`
//!
//! ZONES zones (default 1,000) of 10 records each, held by drover (SQLite, the embedded
//! default), on a fresh `pdns_server`: the initial sync and a failover rewrite of every zone,
//! both through drover's jobs as `serve` works them (a sync job per new zone, one rewrite job),
//! each next to a bare baseline doing the same for a zone set of its own on the same server: a
//! minimal sequential client sending the same requests, built before the clock starts.
//! Interleaved round by round (drover, bare, drover, bare…), `ROUNDS` rounds, medians compared;
//! then one no-change consistency check.

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

const ROUNDS: usize = 3;

/// Each round's zones at addresses of their own, so that its failover moves only them.
fn moved(round: usize) -> AddressMove {
    AddressMove {
        from: vec![
            format!("192.0.2.{}", 10 + round).parse().unwrap(),
            format!("2001:db8::{}", 10 + round).parse().unwrap(),
        ],
        to: vec![
            format!("203.0.113.{}", 10 + round).parse().unwrap(),
            format!("2001:db8:1::{}", 10 + round).parse().unwrap(),
        ],
    }
}

fn zone_rrsets(name: &DomainName, round: usize) -> Vec<RrSet> {
    let template = ZoneTemplate {
        nameservers: vec!["ns1.example.net.".into(), "ns2.example.net.".into()],
        ..ZoneTemplate::default()
    };
    let v4 = format!("192.0.2.{}", 10 + round).parse().ok();
    let v6 = format!("2001:db8::{}", 10 + round).parse().ok();
    account_zone(name, v4, v6, &template).unwrap()
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

/// One measure's rounds: drover's times and the bare client's.
#[derive(Default)]
struct Figure {
    drover: Vec<Duration>,
    bare: Vec<Duration>,
    bare_requests: usize,
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Waits until no job is waiting or running.
async fn jobs_done(store: &dyn Store) {
    use riverqueue::JobState::*;
    let filter = drover_store::JobFilter {
        states: vec![Available, Pending, Running, Retryable, Scheduled],
        account_id: None,
        limit: Some(1),
    };
    while !store.jobs(filter.clone()).await.unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
    let secrets = Arc::new(secrets);
    let dns = Arc::new(Dns::new(
        Arc::clone(&store),
        settings.clone(),
        Arc::clone(&secrets),
    ));
    let engine = drover::engine::Engine {
        store: Arc::clone(&store),
        fleet: drover::engine::Fleet::new(Default::default(), Arc::clone(&secrets)),
        dns: Dns::new(Arc::clone(&store), settings, Arc::clone(&secrets)),
        sealer: Arc::new(drover::engine::Sealer::from_hex(&"42".repeat(32)).unwrap()),
        placement: Default::default(),
        auto_provisioning: true,
        job_timeout: Duration::from_secs(600),
        retry_max_delay: Duration::from_secs(5),
        fleet_policy: drover::engine::FleetPolicy {
            health_interval: None,
            drift_interval: None,
            usage_interval: None,
            backup_interval: None,
            failed_retry_interval: None,
            ..Default::default()
        },
        webhooks: drover::engine::Webhooks::new(Default::default()).unwrap(),
        virtualmin_sources: None,
    };
    let engine = Arc::new(engine);
    let names = |set: String| -> Vec<DomainName> {
        (0..zones)
            .map(|i| DomainName::parse(&format!("{set}{i:05}.ro")).unwrap())
            .collect()
    };
    let records: usize = zone_rrsets(&names("x".into())[0], 0)
        .iter()
        .map(|r| r.records.len())
        .sum();
    println!(
        "{zones} zones of {records} records on PowerDNS {} (one pdns_server, gsqlite3), \
         {ROUNDS} rounds",
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
    let (mut sync, mut failover) = (Figure::default(), Figure::default());
    let mut last_ours = Vec::new();
    for round in 0..ROUNDS {
        let (ours, theirs) = (
            names(format!("drover{round}-")),
            names(format!("bare{round}-")),
        );
        // 1. Initial sync: each new zone's sync job reads it (absent) and creates it.
        for name in &ours {
            drover::commands::create_zone(
                &*store,
                &ctx(),
                name,
                None,
                zone_rrsets(name, round),
                &[provider.id],
            )
            .await
            .unwrap();
        }
        let started = Instant::now();
        let mut workers = drover::engine::start(Arc::clone(&engine), WORKERS).unwrap();
        jobs_done(&*store).await;
        sync.drover.push(started.elapsed());
        let bodies: Vec<(String, String)> = theirs
            .iter()
            .map(|name| {
                let rrsets: Vec<Value> = zone_rrsets(name, round)
                    .iter()
                    .map(|r| rrset_json(r, None))
                    .collect();
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
        sync.bare.push(started.elapsed());
        sync.bare_requests = std::mem::take(&mut bare.requests);

        // 2. Failover: every record at the round's old addresses moves to its new ones.
        let moved = moved(round);
        let started = Instant::now();
        let job = drover::commands::rewrite_addresses(&*store, &ctx(), &moved)
            .await
            .unwrap();
        jobs_done(&*store).await;
        failover.drover.push(started.elapsed());
        let report = store.job(job).await.unwrap();
        assert_eq!(report.state, "completed", "{report:?}");
        let output = report.output.unwrap_or_default();
        assert_eq!(output["zones"], zones, "{output}");
        assert_eq!(output["deferred"], 0, "{output}");
        let patches: Vec<(String, String)> = theirs
            .iter()
            .map(|name| {
                let diff = drover_core::rewrite_addresses(&zone_rrsets(name, round), &moved);
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
        failover.bare.push(started.elapsed());
        failover.bare_requests = std::mem::take(&mut bare.requests);
        println!(
            "  round {}: sync {:.0} ms vs bare {:.0} ms; failover {:.0} ms vs bare {:.0} ms \
             ({} requests, {} ms in drover's database)",
            round + 1,
            ms(sync.drover[round]),
            ms(sync.bare[round]),
            ms(failover.drover[round]),
            ms(failover.bare[round]),
            output["requests"],
            output["database_ms"],
        );
        workers.stop().await.unwrap();
        last_ours = theirs;
    }

    // 3. No-change check of every zone, once: list the zones, read each, compare.
    let started = Instant::now();
    let checks = dns.check(Some(provider.id)).await.unwrap();
    let check_time = started.elapsed();
    let check = &checks[0];
    assert!(
        check.missing.is_empty() && check.different.is_empty(),
        "{check:?}"
    );
    let started = Instant::now();
    bare.send(reqwest::Method::GET, "/zones", None).await;
    for name in &last_ours {
        bare.send(reqwest::Method::GET, &format!("/zones/{name}."), None)
            .await;
    }
    let bare_check = started.elapsed();
    println!(
        "no-change check of {} zones: {:.0} ms; the bare client reading {zones} of them: {:.0} ms",
        check.zones_checked,
        ms(check_time),
        ms(bare_check)
    );

    println!(
        "{:<18} {:>12} {:>12} {:>9} {:>7}",
        "(medians)", "drover", "bare", "requests", "ratio"
    );
    for (what, f) in [("initial sync", &sync), ("failover rewrite", &failover)] {
        let (drover, bare) = (median(f.drover.clone()), median(f.bare.clone()));
        println!(
            "{what:<18} {:>10.0}ms {:>10.0}ms {:>9} {:>6.2}x",
            ms(drover),
            ms(bare),
            f.bare_requests,
            drover.as_secs_f64() / bare.as_secs_f64()
        );
    }
    for (what, f) in [("initial sync", &sync), ("failover", &failover)] {
        let ratio = median(f.drover.clone()).as_secs_f64() / median(f.bare.clone()).as_secs_f64();
        println!(
            "target: {what} within 1.3x of the bare client: {}",
            if ratio <= 1.3 { "met" } else { "NOT met" }
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The jobs drover works at once, as `serve` does by default.
const WORKERS: usize = 10;
