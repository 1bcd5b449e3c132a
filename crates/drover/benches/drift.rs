//! A drift scan of a server holding 10,000 accounts. `cargo bench -p drover --bench drift [-- ACCOUNTS]`
//!
//! The real `drover serve` (SQLite) adopts a simulator's ACCOUNTS domains (default 10,000, one
//! in ten suspended, each with a mailbox; answering at once), then scans it for drift through its job
//! (`POST /servers/1/drift-scan`, timed from the request until the job has completed), against
//! a bare client making the scan's two listings (`list-domains` and `list-users` of every
//! domain, parsed) through drover's gateway: interleaved (A B A B A B), a ratio of medians.
//! What drover does beyond the listings (reading its records, comparing, recording the
//! findings) is its overhead. Printed too: `serve`'s memory after the scans.

#[path = "common/serve.rs"]
mod serve;

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_testkit::virtualmin::{SimConfig, SimDomain, SimPlan, VirtualminSim};
use drover_virtualmin::{BreakerConfig, Endpoint, TlsPolicy, VirtualminClient, VirtualminSettings};
use serde_json::{Value, json};

const ROUNDS: usize = 3;

/// A simulator holding `accounts` domains of the plan "Web", made by hand.
async fn simulator(accounts: usize) -> VirtualminSim {
    let sim = VirtualminSim::start(SimConfig {
        tls: true,
        password: "pw".into(),
        latency_scale: 0.0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    sim.with_state(|s| {
        s.plans.push(SimPlan::new("Web"));
        for i in 0..accounts {
            let name = format!("customer-{i:05}.example.ro");
            let mut domain = SimDomain::top_level(&name, &format!("cust{i:05}"));
            domain.plan = "Web".into();
            domain.email = Some("owner@clients.example.ro".into());
            domain.mailboxes.insert("info".into(), "Front desk".into());
            // With its password's hash listed, the mailbox is adopted with its account.
            let hash = format!("$6$bench${i:05}");
            domain.mailbox_hashes.insert("info".into(), hash);
            domain.disabled = (i % 10 == 0).then(|| "Suspended for non-payment".to_owned());
            s.domains.insert(name, domain);
        }
    });
    sim
}

/// drover's API on a running `drover serve`.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.unwrap();
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Waits for a job to complete, and returns it.
    async fn completed(&self, job: &Value) -> Value {
        let path = format!("/jobs/{}", job["job_id"]);
        loop {
            let job = self.call(reqwest::Method::GET, &path, None).await;
            match job["state"].as_str() {
                Some("completed") => return job,
                Some("discarded" | "cancelled") => panic!("{job:#}"),
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }
}

fn tls() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(drover_virtualmin::client_config(&TlsPolicy::default()).unwrap())
        .build()
        .unwrap()
}

/// The bare client: drover's gateway to the simulator, as drover builds it.
fn bare_client(sim: &VirtualminSim) -> VirtualminClient {
    let endpoint = Endpoint {
        name: "bare".into(),
        base_url: format!("https://127.0.0.1:{}", sim.addr().port()),
        user: "root".into(),
        password: secrecy::SecretString::from("pw".to_owned()),
        tls: TlsPolicy {
            verify: true,
            pinned_sha256: Some(
                drover_core::CertFingerprint::parse(&sim.certificate_sha256().unwrap()).unwrap(),
            ),
            extra_roots: Vec::new(),
        },
        rate_qps: 1_000.0,
        max_concurrency: 4,
    };
    VirtualminClient::new(
        endpoint,
        &VirtualminSettings::default(),
        BreakerConfig::default(),
    )
    .unwrap()
}

fn resident_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let accounts: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let sim = simulator(accounts).await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let password = secrets.join("vm.password");
    std::fs::write(&password, "pw").unwrap();
    let mut served = serve::start(
        dir.path(),
        // Only the scans asked for here: no periodic work beside them.
        &[
            ("DROVER_DRIFT_INTERVAL", "0"),
            ("DROVER_USAGE_INTERVAL", "0"),
            ("DROVER_HEALTH_INTERVAL", "0"),
        ],
    )
    .await;
    let api = Api {
        http: tls(),
        base: served.base.clone(),
        token: served.printed[1].clone(),
    };
    let record = json!({"capacity": accounts * 2, "rate_qps": 1_000});
    api.post("/servers", sim.server_record("vm1", &password, record))
        .await;
    api.post("/plans", json!({"name": "Web", "features": ["dir", "web"]}))
        .await;
    let started = Instant::now();
    let adoption = api
        .post(
            "/servers/1/adopt",
            json!({"apply": true, "accept_plan_changes": true}),
        )
        .await;
    api.completed(&adoption).await;
    let pid = served.child.id().unwrap();
    println!(
        "{accounts} accounts adopted in {:.1} s ({:.0} MB resident after); drift scans, \
         {ROUNDS} rounds:",
        started.elapsed().as_secs_f64(),
        resident_mb(pid)
    );

    let bare = Arc::new(bare_client(&sim));
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let started = Instant::now();
        let scan = api.post("/servers/1/drift-scan", json!({})).await;
        let job = api.completed(&scan).await;
        ours.push(started.elapsed().as_secs_f64());
        // The server matches what was adopted: a scan that finds anything measured other work.
        let found = &job["output"]["servers"][0]["findings"];
        assert_eq!(found.as_array().map(Vec::len), Some(0), "{job:#}");

        let started = Instant::now();
        let domains = bare.list_domains().await.unwrap();
        let users = bare.list_all_users().await.unwrap();
        theirs.push(started.elapsed().as_secs_f64());
        assert_eq!(domains.len(), accounts);
        assert!(users.len() >= accounts);
        println!(
            "  round {round}: drover {:.2} s, bare client {:.2} s",
            ours[round - 1],
            theirs[round - 1]
        );
    }
    let (ours, theirs) = (median(&mut ours), median(&mut theirs));
    println!(
        "drift scan of {accounts} accounts: drover {ours:.2} s, bare client's two listings \
         {theirs:.2} s, {:.2}x (medians of {ROUNDS} rounds)",
        ours / theirs
    );
    println!(
        "serve's memory after the scans: {:.0} MB resident",
        resident_mb(pid)
    );
    let _ = served.child.kill().await;
}
