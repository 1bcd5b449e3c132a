//! drover as its users meet it: the HTTP API (through the real router, on both databases) and
//! the `drover` command itself.

mod api;
mod bootstrap;
mod break_glass;
mod command;
mod commands;
mod dns;
mod drift;
mod failover;
mod fleet_e2e;
mod fleet_scale;
mod front_doors;
mod health;
mod migrate;
mod provisioning;
mod readme;
mod real;
mod server_faults;
mod usage;
mod web;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use drover::engine::{Dns, Engine, Fleet, FleetPolicy, Sealer};
use drover_store::{RequestContext, Server, Store};
use drover_testkit::virtualmin::{SimConfig, VirtualminSim};

/// A fleet for the engine's tests: an SQLite store in a temporary folder, and Virtualmin
/// simulators (TLS, password `pw`, plan `Web`) added to it as servers.
#[derive(Debug)]
pub struct TestFleet {
    pub store: Arc<dyn Store>,
    pub dir: tempfile::TempDir,
}

pub fn setup_ctx() -> RequestContext {
    RequestContext {
        actor: "test".into(),
        correlation_id: "fleet-setup".into(),
    }
}

/// Records a pending service as billing's request does (through the command layer).
pub async fn create_service(
    store: &dyn Store,
    ctx: &RequestContext,
    new: drover_store::NewService,
) -> drover::commands::Result<drover_store::Service> {
    let created = drover::commands::create_service(
        store,
        ctx,
        new.customer_id,
        new.plan_id,
        new.domain.as_str(),
        false,
    )
    .await?;
    Ok(created.service)
}

/// Moves a service through its lifecycle as billing's request does.
pub async fn transition_service(
    store: &dyn Store,
    ctx: &RequestContext,
    id: drover_core::ServiceId,
    transition: drover_core::Transition,
    reason: Option<String>,
) -> drover::commands::Result<drover_store::TransitionOutcome> {
    drover::commands::transition_service(store, ctx, id, transition, reason.as_deref()).await
}

/// Secrets read from files in `dir` and `DROVER_SECRET_…` variables, as `drover serve` reads
/// them from its secrets directory.
pub fn secrets_in(dir: &std::path::Path) -> Arc<drover::engine::Secrets> {
    Arc::new(drover::engine::Secrets::new(
        drover_core::SecretSources {
            dir: dir.to_owned(),
            env_prefix: drover_core::SecretSources::DEFAULT_ENV_PREFIX.into(),
        },
        Vec::new(),
    ))
}

/// A simulated server's content, put and read over its test-only HTTP endpoint (as a test
/// of a separate simulator process would), not through its state.
#[derive(Debug)]
pub struct SimContent {
    http: reqwest::Client,
    base: String,
}

impl SimContent {
    pub fn of(sim: &drover_testkit::virtualmin::VirtualminSim) -> Self {
        // The simulator's own certificate, pinned as drover pins it.
        let mut http = reqwest::Client::builder();
        if let Some(pin) = sim.certificate_sha256() {
            let pinned = drover_virtualmin::TlsPolicy {
                verify: true,
                pinned_sha256: Some(drover_core::CertFingerprint::parse(&pin).unwrap()),
                extra_roots: Vec::new(),
            };
            http =
                http.tls_backend_preconfigured(drover_virtualmin::client_config(&pinned).unwrap());
        }
        let http = http.build().unwrap();
        let base = format!(
            "{}{}",
            sim.url(),
            drover_testkit::virtualmin::content::PREFIX
        );
        Self { http, base }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: &str) -> (u16, String) {
        let answer = self
            .http
            .request(method, format!("{}{path}", self.base))
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.text().await.unwrap())
    }

    pub async fn put_file(&self, domain: &str, path: &str, text: &str) {
        let path = format!("{domain}/files/{path}");
        assert_eq!(
            self.send(reqwest::Method::PUT, &path, text).await.0,
            204,
            "{path}"
        );
    }

    pub async fn file(&self, domain: &str, path: &str) -> Option<String> {
        match self
            .send(reqwest::Method::GET, &format!("{domain}/files/{path}"), "")
            .await
        {
            (200, text) => Some(text),
            (404, _) => None,
            other => panic!("{domain}/{path}: {other:?}"),
        }
    }

    pub async fn add(&self, domain: &str, kind: &str, name: &str, item: &str) {
        let path = format!("{domain}/{kind}/{name}");
        assert_eq!(
            self.send(reqwest::Method::POST, &path, item).await.0,
            204,
            "{path}"
        );
    }

    /// The letters of a mailbox (`kind` "mail") or rows of a database ("rows").
    pub async fn items(&self, domain: &str, kind: &str, name: &str) -> Vec<String> {
        let (status, body) = self
            .send(reqwest::Method::GET, &format!("{domain}/{kind}/{name}"), "")
            .await;
        assert_eq!(status, 200, "{domain}/{kind}/{name}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// An SSH backup host for simulated servers: a real sshd, whose key drover checks against the
/// pin and through which the servers' archives travel into one of its user's directories,
/// where the servers log in with one password.
#[derive(Debug)]
pub struct Vault {
    pub sshd: drover_testkit::TestSshd,
    pub host: drover_testkit::virtualmin::SimSshHost,
    pub dir: String,
    pub password: &'static str,
}

impl Vault {
    /// A vault whose directory is named after `name` (and the sshd's port).
    pub async fn start(name: &'static str, password: &'static str) -> Self {
        let mut sshd = tokio::task::spawn_blocking(drover_testkit::TestSshd::start)
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("sshd: {e}"));
        let dir = sshd.directory(name).unwrap();
        let host = drover_testkit::virtualmin::SimSshHost::on(&mut sshd, password, &[&dir])
            .unwrap_or_else(|e| panic!("the vault's transfer key: {e}"));
        Self {
            sshd,
            host,
            dir,
            password,
        }
    }

    /// Where the servers write: `ssh://drover-backup@127.0.0.1:PORT:DIR`.
    pub fn location(&self) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}:{}",
            self.sshd.user, self.sshd.port, self.dir
        )
    }

    /// Records it as the default destination `vault`, its password in a file in `secrets`.
    pub async fn make_default(
        &self,
        store: &dyn Store,
        secrets: &std::path::Path,
    ) -> drover_store::BackupDestination {
        let password_file = secrets.join("vault.password");
        std::fs::write(&password_file, format!("{}\n", self.password)).unwrap();
        let spec = serde_json::json!({
            "name": "vault",
            "location": self.location(),
            "credentials": format!("file:{}", password_file.display()),
            "host_key": self.sshd.host_key,
            "default": true,
        });
        let sources = drover_core::SecretSources {
            dir: secrets.to_owned(),
            env_prefix: drover_core::SecretSources::DEFAULT_ENV_PREFIX.into(),
        };
        drover::commands::create_backup_destination(
            store,
            &setup_ctx(),
            &sources,
            serde_json::from_value(spec).unwrap(),
        )
        .await
        .unwrap()
    }
}

/// Where no secret may be read from: for commands that check a reference and never read it.
pub fn no_secrets() -> drover_core::SecretSources {
    drover_core::SecretSources {
        dir: "/nonexistent/drover-secrets".into(),
        env_prefix: drover_core::SecretSources::DEFAULT_ENV_PREFIX.into(),
    }
}

/// Client settings for tests: retries after 20 ms, not seconds.
pub fn quick_retries() -> drover_virtualmin::VirtualminSettings {
    drover_virtualmin::VirtualminSettings {
        retry_delay: Duration::from_millis(20),
        ..Default::default()
    }
}

impl TestFleet {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("drover.db").display());
        let store = drover_store::open(&url).await.unwrap();
        std::fs::write(dir.path().join("vm.password"), "pw").unwrap();
        Self { store, dir }
    }

    /// Starts a simulator and adds it as server `name`, with `extra` fields (capacity, ipv4…).
    pub async fn add_server(
        &self,
        name: &str,
        extra: serde_json::Value,
    ) -> (VirtualminSim, Server) {
        let sim = VirtualminSim::start(SimConfig {
            tls: true,
            password: "pw".into(),
            ..SimConfig::default()
        })
        .await
        .unwrap();
        sim.with_state(|s| s.plans.push("Web".into()));
        let record = sim.server_record(name, &self.dir.path().join("vm.password"), extra);
        let server = drover::commands::create_server(
            &*self.store,
            &setup_ctx(),
            serde_json::from_value(record).unwrap(),
        )
        .await
        .unwrap();
        (sim, server)
    }

    /// The plan `Web` and a customer, as billing needs them to sell.
    pub async fn plan_and_customer(&self) -> (drover_core::PlanId, drover_core::CustomerId) {
        let plan = serde_json::json!({"name": "Web", "features": ["dir", "web", "dns"]});
        let plan = drover::commands::create_plan(
            &*self.store,
            &setup_ctx(),
            serde_json::from_value(plan).unwrap(),
        )
        .await
        .unwrap();
        let customer = drover::commands::create_customer(
            &*self.store,
            &setup_ctx(),
            drover_core::CustomerSpec::new("Ana", None, None).unwrap(),
        )
        .await
        .unwrap();
        (plan.id, customer.id)
    }

    /// The engine the workers run, with these client settings and this periodic work.
    pub fn engine(
        &self,
        settings: drover_virtualmin::VirtualminSettings,
        fleet_policy: FleetPolicy,
    ) -> Engine {
        Engine {
            store: Arc::clone(&self.store),
            fleet: Fleet::new(settings, secrets_in(self.dir.path())),
            dns: Dns::new(
                Arc::clone(&self.store),
                Default::default(),
                secrets_in(self.dir.path()),
            ),
            sealer: Arc::new(Sealer::from_hex(&"42".repeat(32)).unwrap()),
            placement: drover_core::PlacementPolicy::default(),
            auto_provisioning: true,
            job_timeout: Duration::from_secs(30),
            retry_max_delay: Duration::from_secs(1),
            fleet_policy,
            webhooks: drover::engine::Webhooks::new(Default::default()).unwrap(),
            virtualmin_sources: None,
        }
    }
}

/// Registers both shared PowerDNS servers as DNS providers, their API keys in files in `dir`.
pub async fn add_shared_powerdns(
    store: &dyn Store,
    dir: &std::path::Path,
    serves_new_zones: bool,
) -> Vec<drover_store::DnsProviderRecord> {
    let mut providers = Vec::new();
    for (i, pdns) in drover_testkit::PowerDns::shared().iter().enumerate() {
        let key = dir.join(format!("pdns{i}.key"));
        std::fs::write(&key, format!("{}\n", pdns.api_key)).unwrap();
        let spec = drover_store::DnsProviderSpec {
            name: format!("pdns-{i}"),
            credentials: drover_core::CredentialRef::parse(&format!("file:{}", key.display()))
                .unwrap(),
            serves_new_zones,
            settings: drover_dns::ProviderSettings::PowerDns {
                api_url: pdns.api_url.clone(),
                server_id: None,
                dns_address: Some(pdns.dns_addr),
            },
        };
        providers.push(
            drover::commands::create_dns_provider(store, &setup_ctx(), spec)
                .await
                .unwrap(),
        );
    }
    providers
}

/// No zone sync is waiting or running. Asking PowerDNS about a name before its zone exists
/// can leave a cached refusal served for the packet cache's 20 s, so the tests ask after.
pub async fn zone_syncs_done(store: &dyn Store) -> bool {
    use riverqueue::JobState::*;
    let open = store
        .jobs(drover_store::JobFilter {
            states: vec![Available, Pending, Running, Retryable, Scheduled],
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    !open.iter().any(|j| j.kind == "sync_zone")
}

/// The A address both shared PowerDNS servers answer for `domain`, if they agree on one.
pub async fn served_a(domain: &str) -> Option<String> {
    let mut answers = std::collections::BTreeSet::new();
    for pdns in drover_testkit::PowerDns::shared() {
        let answer = drover_dns::query_served(
            pdns.dns_addr,
            domain,
            drover_core::RecordType::A,
            Duration::from_secs(2),
        )
        .await
        .map(|a| a.records)
        .unwrap_or_default();
        answers.insert(answer);
    }
    match answers.into_iter().collect::<Vec<_>>().as_slice() {
        [one] if one.len() == 1 => Some(one[0].clone()),
        _ => None,
    }
}

/// Waits until `check` holds, at most `limit`.
/// Waits for a job to end (completed, discarded or cancelled), and returns it.
pub async fn finished(
    store: &dyn drover_store::Store,
    id: drover_core::JobId,
) -> drover_store::JobSummary {
    until("the job ends", Duration::from_secs(30), async || {
        let job = store.job(id).await.unwrap();
        ["completed", "discarded", "cancelled"].contains(&job.state.as_str())
    })
    .await;
    store.job(id).await.unwrap()
}

pub async fn until(what: &str, limit: Duration, check: impl AsyncFn() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Waits until none of the account's jobs waits or runs: a change made by hand on its server
/// after that is not undone by a converge still on its way.
pub async fn settled(store: &dyn drover_store::Store, account: drover_core::AccountId) {
    use drover_store::JobState::*;
    let open = drover_store::JobFilter {
        states: vec![Available, Pending, Running, Retryable, Scheduled],
        account_id: Some(account),
        limit: None,
    };
    for _ in 0..400 {
        if store.jobs(open.clone()).await.unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "account {account}'s jobs did not end: {:?}",
        store.jobs(open).await.unwrap()
    );
}
