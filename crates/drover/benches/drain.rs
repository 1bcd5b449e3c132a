//! A drain that carries content. `cargo bench -p drover --bench drain [-- ACCOUNTS]`
//!
//! ACCOUNTS accounts (default 100), each with a file, on one of three simulators (latency
//! scaled to 2 % of the real server's; each server limited to 20 calls/s), the default backup
//! destination an SSH host (a real sshd: drover checks its pin, and the simulators' archives
//! travel through it with OpenSSH's `scp`). The real `drover serve` drains the first server: every account backed up
//! there, restored on one of the other two, checked, switched, its old copy disabled and
//! deleted. Measured from the drain's request to the first server's last deletion, against a
//! bare client making the calls a move cannot do without (per account the backup, the
//! restore, the disabling and the deletion, all at once, bounded by the same per-server
//! limits), interleaved (A B A B A B): a ratio of medians. What drover does beyond that (its
//! checks before DNS moves, the account's converge on the target) is its overhead. Printed
//! too: the drain's time against the sum of the simulated backup and restore times one after
//! another (the servers do several at once, so this may be below 1).

#[path = "common/serve.rs"]
mod serve;

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_testkit::TestSshd;
use drover_testkit::virtualmin::{SimConfig, SimDomain, SimSshHost, VirtualminSim};
use drover_virtualmin::{BreakerConfig, Endpoint, TlsPolicy, VirtualminClient, VirtualminSettings};
use serde_json::{Value, json};

const ROUNDS: usize = 3;
const LATENCY_SCALE: f64 = 0.02;
const RATE_QPS: f64 = 20.0;
const PASSWORD: &str = "vault-Passw0rd-bench";
/// The real server's median times (the simulator's model) for the content's two calls.
const BACKUP_MS: f64 = 2461.0;
const RESTORE_MS: f64 = 9320.0;

async fn simulators(host: &SimSshHost) -> Vec<VirtualminSim> {
    let mut sims = Vec::new();
    for _ in 0..3 {
        let sim = VirtualminSim::start(SimConfig {
            tls: true,
            password: "pw".into(),
            latency_scale: LATENCY_SCALE,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        sim.with_state(|s| {
            s.plans.push("Web".into());
            s.ssh_hosts.push(host.clone());
        });
        sims.push(sim);
    }
    sims
}

fn domain(i: usize) -> String {
    format!("site{i}.ro")
}

/// drover's API on a running `drover serve`.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> Value {
        let answer = self
            .http
            .post(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "POST {path}: {status} {body}");
        body
    }
}

/// The drain through the real `drover serve`: seconds from its request until the drained
/// server holds nothing.
async fn through_drover(sshd: &TestSshd, host: &SimSshHost, vault: &str, accounts: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("vm.password"), "pw").unwrap();
    std::fs::write(secrets.join("vault.password"), PASSWORD).unwrap();
    let sims = simulators(host).await;
    let mut served = serve::start(dir.path(), &[]).await;
    let api = Api {
        // drover's one TLS provider (ring) configured, as drover's own clients are.
        http: reqwest::Client::builder()
            .tls_backend_preconfigured(
                drover_virtualmin::client_config(&TlsPolicy::default()).unwrap(),
            )
            .build()
            .unwrap(),
        base: served.base.clone(),
        token: served.printed[1].clone(),
    };
    let server = |i: usize| {
        let extra = json!({"capacity": accounts * 2, "rate_qps": RATE_QPS});
        sims[i].server_record(&format!("vm{}", i + 1), &secrets.join("vm.password"), extra)
    };
    api.post("/servers", server(0)).await;
    let plan = api
        .post("/plans", json!({"name": "Web", "features": ["dir", "web"]}))
        .await;
    let customer = api.post("/customers", json!({"name": "Bench"})).await;
    for i in 0..accounts {
        let service = api
            .post(
                "/services",
                json!({"customer_id": customer["id"], "plan_id": plan["id"], "domain": domain(i)}),
            )
            .await;
        api.post(&format!("/services/{}/activate", service["id"]), json!({}))
            .await;
    }
    until(Duration::from_secs(600), || {
        sims[0].domain_names().len() == accounts
    })
    .await;
    for i in 0..accounts {
        sims[0].put_file(&domain(i), "public_html/index.html", &format!("page {i}"));
    }
    api.post("/servers", server(1)).await;
    api.post("/servers", server(2)).await;
    api.post(
        "/backup-destinations",
        json!({
            "name": "vault",
            "location": format!("ssh://{}@127.0.0.1:{}:{vault}", sshd.user, sshd.port),
            "credentials": format!("file:{}", secrets.join("vault.password").display()),
            "host_key": sshd.host_key,
            "default": true,
        }),
    )
    .await;
    // The drain starts once the converges that made the accounts are recorded as done (read
    // from drover's own database, as an operator's `drover jobs list` would).
    let store = drover_store::open(&format!(
        "sqlite://{}",
        dir.path().join("drover.db").display()
    ))
    .await
    .unwrap();
    loop {
        use drover_store::JobState::*;
        let open = drover_store::JobFilter {
            states: vec![Available, Pending, Running, Retryable],
            account_id: None,
            limit: None,
        };
        let converging = store
            .jobs(open)
            .await
            .unwrap()
            .iter()
            .any(|j| j.kind == "converge_account");
        if !converging {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let started = Instant::now();
    let plan = api
        .post("/servers/1/drain", json!({"grace_seconds": 0}))
        .await;
    assert_eq!(
        plan["moves"].as_array().map(Vec::len),
        Some(accounts),
        "{plan}"
    );
    until(Duration::from_secs(3600), || {
        sims[0].domain_names().is_empty()
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    for i in 0..accounts {
        let page = sims[1..]
            .iter()
            .find_map(|sim| sim.file(&domain(i), "public_html/index.html"));
        assert_eq!(
            page,
            Some(format!("page {i}")),
            "{} lost its page",
            domain(i)
        );
    }
    let _ = served.child.kill().await;
    seconds
}

/// The same content's calls from a bare client per server: each account backed up on the
/// first server, restored on the second or third, then disabled and deleted on the first.
async fn bare(sshd: &TestSshd, host: &SimSshHost, vault: &str, accounts: usize) -> f64 {
    let sims = simulators(host).await;
    sims[0].with_state(|s| {
        for i in 0..accounts {
            let mut made = SimDomain::top_level(&domain(i), &format!("site{i}"));
            made.files
                .insert("public_html/index.html".into(), format!("page {i}"));
            s.domains.insert(domain(i), made);
        }
    });
    let clients: Vec<Arc<VirtualminClient>> = sims
        .iter()
        .map(|sim| {
            let endpoint = Endpoint {
                name: "bare".into(),
                base_url: format!("https://127.0.0.1:{}", sim.addr().port()),
                user: "root".into(),
                password: secrecy::SecretString::from("pw".to_owned()),
                tls: TlsPolicy {
                    verify: true,
                    pinned_sha256: Some(
                        drover_core::CertFingerprint::parse(&sim.certificate_sha256().unwrap())
                            .unwrap(),
                    ),
                    extra_roots: Vec::new(),
                },
                rate_qps: RATE_QPS,
                // As drover's clients: four calls at once per server.
                max_concurrency: 4,
            };
            Arc::new(
                VirtualminClient::new(
                    endpoint,
                    &VirtualminSettings::default(),
                    BreakerConfig::default(),
                )
                .unwrap(),
            )
        })
        .collect();
    let password =
        drover_virtualmin::SshLogin::Password(secrecy::SecretString::from(PASSWORD.to_owned()));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..accounts {
        let (source, target) = (Arc::clone(&clients[0]), Arc::clone(&clients[1 + i % 2]));
        let password = password.clone();
        let vault = format!("ssh://{}@127.0.0.1:{}:{vault}", sshd.user, sshd.port);
        tasks.spawn(async move {
            let archive = drover_core::BackupLocation::parse(&vault).unwrap().archive(
                &drover_core::DomainName::parse(&domain(i)).unwrap(),
                jiff::Timestamp::now(),
            );
            source
                .backup_domain(&domain(i), &archive, Some(&password))
                .await
                .unwrap();
            target
                .restore_domain(&archive, Some(&password), &[domain(i).as_str()])
                .await
                .unwrap();
            source.disable_domain(&domain(i), None).await.unwrap();
            source.delete_domain(&domain(i)).await.unwrap();
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    started.elapsed().as_secs_f64()
}

async fn until(limit: Duration, check: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
        .unwrap_or(100);
    let mut sshd = match tokio::task::spawn_blocking(TestSshd::start).await.unwrap() {
        Ok(sshd) => sshd,
        Err(e) => {
            println!("drain bench not run: it needs a real sshd for drover's pin check: {e}");
            return;
        }
    };
    // The archives travel through the real sshd into one of its user's directories.
    let vault = sshd.directory("drain-bench").unwrap();
    let host = SimSshHost::on(&mut sshd, PASSWORD, &[&vault]).unwrap();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        ours.push(through_drover(&sshd, &host, &vault, accounts).await);
        theirs.push(bare(&sshd, &host, &vault, accounts).await);
        println!(
            "  round {}: drover {:.1} s, bare client {:.1} s",
            round + 1,
            ours[round],
            theirs[round]
        );
    }
    let (ours, theirs) = (median(&mut ours), median(&mut theirs));
    let work = accounts as f64 * (BACKUP_MS + RESTORE_MS) * LATENCY_SCALE / 1000.0;
    println!(
        "a drain of {accounts} accounts with their content (3 servers at {RATE_QPS} calls/s, \
         latency at {:.0} % of the real server's), medians of {ROUNDS}:",
        LATENCY_SCALE * 100.0
    );
    println!(
        "  drover serve: {ours:.1} s; bare client (backup, restore, disable, delete): {theirs:.1} s"
    );
    println!("  drover / bare client: {:.2}", ours / theirs);
    println!(
        "  drover / the sum of the simulated backup and restore times ({work:.1} s): {:.2}",
        ours / work
    );
}
