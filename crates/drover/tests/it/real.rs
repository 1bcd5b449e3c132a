//! The real tier: `drover serve` against a real Webmin + Virtualmin (`scripts/real-virtualmin
//! start`), driven over the API as billing and an operator would, and the real server checked
//! after each step with its own command line, never with drover's client.
//!
//! These tests are ignored in the fast tier (they need the real server and take minutes);
//! `scripts/test` runs them one at a time with `--ignored` when `DROVER_REAL_VIRTUALMIN=1` or
//! under CI, passing the server's address and credentials in `DROVER_REAL_VIRTUALMIN_URL`,
//! `…_USER`, `…_PASS` and `…_PIN`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::{Value, json};

use super::command::{Served, http_client, run, serve_logging_to};
use super::until;

const REASON: &str = "real tier: needs a real Virtualmin (scripts/real-virtualmin start); \
                      scripts/test runs it with DROVER_REAL_VIRTUALMIN=1 and under CI";

/// How long one real job may take: `create-domain` alone takes 5 to 15 s on two cores, and a
/// slower machine's calls queue behind each other's locks on the server.
const JOB_LIMIT: Duration = Duration::from_secs(300);

/// The real server, as `scripts/real-virtualmin start` described it.
pub(crate) struct RealServer {
    pub port: u16,
    pub user: String,
    pub pass: String,
    pub pin: String,
}

impl RealServer {
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run the real tier through scripts/test ({REASON})")
            })
        };
        let url = var("DROVER_REAL_VIRTUALMIN_URL");
        let port = url
            .trim_start_matches("https://127.0.0.1:")
            .split('/')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("not a loopback remote.cgi address: {url}"));
        Self {
            port,
            user: var("DROVER_REAL_VIRTUALMIN_USER"),
            pass: var("DROVER_REAL_VIRTUALMIN_PASS"),
            pin: var("DROVER_REAL_VIRTUALMIN_PIN"),
        }
    }
}

/// Runs one of Virtualmin's programs on the server's own command line.
pub(crate) fn virtualmin(args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new("virtualmin")
        .args(args)
        .output()
        .expect("the virtualmin command of the real server");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// A domain as the server's own `list-domains --multiline` shows it, or `None`.
pub(crate) fn server_domain(domain: &str) -> Option<BTreeMap<String, String>> {
    let (ok, text) = virtualmin(&["list-domains", "--domain", domain, "--multiline"]);
    if !ok {
        assert!(
            text.contains("does not exist"),
            "list-domains failed: {text}"
        );
        return None;
    }
    let fields: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect();
    (!fields.is_empty()).then_some(fields)
}

/// The features the server lists for a domain.
pub(crate) fn server_features(domain: &str) -> Vec<String> {
    server_domain(domain)
        .and_then(|d| d.get("Features").cloned())
        .map(|f| f.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Whether `password` is the unix user's password, by the server's own shadow entry.
fn password_is(user: &str, password: &str) -> bool {
    let shadow =
        std::fs::read_to_string("/etc/shadow").expect("/etc/shadow (the tier runs as root)");
    let hash = shadow
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{user}:")))
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("no unix user {user} on the server"));
    let output = std::process::Command::new("perl")
        .args([
            "-e",
            "print crypt($ARGV[0], $ARGV[1]) eq $ARGV[1] ? 'yes' : 'no'",
        ])
        .args([password, hash])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout) == "yes"
}

/// drover's requests in Webmin's own access log, from a point on (Webmin logs no request it
/// refused while the client was blocked).
struct FailedLogins(u64);

impl FailedLogins {
    const LOG: &str = "/var/webmin/miniserv.log";

    fn from_now() -> Self {
        Self(std::fs::metadata(Self::LOG).map_or(0, |m| m.len()))
    }

    fn count(&self) -> usize {
        self.posts(|l| l.contains("\" 401 ") || l.contains("\" 403 "))
    }

    /// drover's requests (POSTs; the tests' own probes are GETs) matching `pick`.
    fn posts(&self, pick: impl Fn(&str) -> bool) -> usize {
        let log = std::fs::read(Self::LOG).unwrap();
        let since = usize::try_from(self.0).unwrap().min(log.len());
        String::from_utf8_lossy(&log[since..])
            .lines()
            .filter(|l| l.contains("\"POST /virtual-server/remote.cgi"))
            .filter(|l| pick(l))
            .count()
    }
}

/// A name no earlier run left on the server.
pub(crate) fn unique(stem: &str) -> String {
    let tag: String = (0..5)
        .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
        .collect();
    format!("{stem}{tag}")
}

/// `drover serve` on its own SQLite file, its API, and the real server added to it.
pub(crate) struct Drover {
    _served: Served,
    pub dir: tempfile::TempDir,
    pub api: String,
    token: String,
    http: reqwest::Client,
}

impl Drover {
    /// Where `serve` logs, in its directory.
    const LOG: &str = "serve.log";

    /// The last lines `serve` logged: what a failed wait prints to say what drover was doing.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join(Self::LOG)).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub async fn start(settings: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut all = vec![
            // The real server is slow; the client's default pace (2 calls/s) would make the
            // tier slower without testing more.
            ("VIRTUALMIN_RATE_QPS", "10"),
            ("DROVER_LOG_FORMAT", "text"),
        ];
        all.extend_from_slice(settings);
        let log = std::fs::File::create(dir.path().join(Self::LOG)).unwrap();
        let served = serve_logging_to(dir.path(), &all, log).await;
        let token = served.printed[1].clone();
        Self {
            api: format!("{}/api/v1", served.base),
            _served: served,
            dir,
            token,
            http: http_client(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A POST that must be accepted (2xx).
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!(
            (200..300).contains(&status),
            "POST {path}: {status} {answer}"
        );
        answer
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, answer) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {answer}");
        answer
    }

    /// The file holding the server's password, as an operator keeps it.
    pub fn password_file(&self) -> PathBuf {
        let secrets = self.dir.path().join("secrets");
        std::fs::create_dir_all(&secrets).unwrap();
        secrets.join("vm.password")
    }

    /// Adds the real server, its password in a file and its certificate pinned.
    pub async fn add_real_server(&self, real: &RealServer) -> i64 {
        std::fs::write(self.password_file(), &real.pass).unwrap();
        let server = self
            .post(
                "/servers",
                json!({"name": "real", "hostname": "127.0.0.1", "port": real.port,
                       "capacity": 50, "api_user": real.user, "ipv4": "127.0.0.1",
                       "credentials": format!("file:{}", self.password_file().display()),
                       "pinned_cert_sha256": real.pin}),
            )
            .await;
        server["id"].as_i64().unwrap()
    }

    pub async fn plan(&self, name: &str, extra: Value) -> i64 {
        let mut body = json!({"name": name, "features": ["web", "dns", "mail", "mysql"]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self.post("/plans", body).await["id"].as_i64().unwrap()
    }

    /// A customer's service for `domain` on `plan`, activated: (service, account, its job).
    pub async fn order(&self, plan: i64, domain: &str) -> (i64, i64, i64) {
        let customer = self
            .post(
                "/customers",
                json!({"name": format!("Customer of {domain}")}),
            )
            .await;
        let service = self
            .post(
                "/services",
                json!({"customer_id": customer["id"], "plan_id": plan, "domain": domain}),
            )
            .await;
        let id = service["id"].as_i64().unwrap();
        let moved = self
            .post(&format!("/services/{id}/activate"), json!({}))
            .await;
        (
            id,
            service["account_id"].as_i64().unwrap(),
            moved["job_id"].as_i64().unwrap(),
        )
    }

    /// `order`, waiting for the account to be created; returns (service, account).
    pub async fn sell(&self, plan: i64, domain: &str) -> (i64, i64) {
        let (service, account, job) = self.order(plan, domain).await;
        self.job_completed(job).await;
        (service, account)
    }

    /// Waits for a job to end; returns it with its calls.
    pub async fn job_ends(&self, id: i64) -> Value {
        let deadline = std::time::Instant::now() + JOB_LIMIT;
        loop {
            let job = self.get(&format!("/jobs/{id}")).await;
            if matches!(
                job["state"].as_str(),
                Some("completed" | "discarded" | "cancelled")
            ) {
                return job;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "job {id} did not end: {job:#}\n{}",
                server_diagnosis()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn job_completed(&self, id: i64) -> Value {
        let job = self.job_ends(id).await;
        assert_eq!(job["state"], "completed", "job {id}: {job:#}");
        job
    }

    /// Moves a service (`suspend`, `terminate`…) and waits for its job to end.
    /// Waits until none of the account's jobs is waiting or running: a change by hand made
    /// after it is not undone by a job that was still on its way.
    pub async fn settled(&self, account: i64) {
        let open = "available,scheduled,running,retryable,pending";
        until("the account's jobs have ended", JOB_LIMIT, async || {
            let jobs = self
                .get(&format!("/jobs?account_id={account}&status={open}"))
                .await;
            jobs.as_array().is_some_and(Vec::is_empty)
        })
        .await;
    }

    pub async fn mv(&self, service: i64, action: &str, body: Value) -> Value {
        let moved = self
            .post(&format!("/services/{service}/{action}"), body)
            .await;
        self.job_ends(moved["job_id"].as_i64().unwrap()).await
    }

    /// Terminates an account for good: unprotected with its domain typed, then gone from the
    /// server.
    pub async fn remove(&self, service: i64, account: i64, domain: &str) {
        let (_, current) = self
            .call(reqwest::Method::GET, &format!("/services/{service}"), None)
            .await;
        if current["status"] != "terminated" {
            self.mv(service, "terminate", json!({})).await;
        }
        self.post(
            &format!("/accounts/{account}/unprotect"),
            json!({"confirm_domain": domain}),
        )
        .await;
        let ascii = ascii(domain);
        until(&format!("{domain} is deleted"), JOB_LIMIT, async || {
            server_domain(&ascii).is_none()
        })
        .await;
    }
}

/// Polls `fetch` until it returns something, for at most `limit`.
async fn eventually<T>(what: &str, limit: Duration, fetch: impl AsyncFn() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(found) = fetch().await {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A domain in the form servers know it (punycode).
pub(crate) fn ascii(domain: &str) -> String {
    drover_core::DomainName::parse(domain)
        .unwrap()
        .as_str()
        .to_owned()
}

fn assert_has_features(domain: &str, wanted: &[&str]) {
    let features = server_features(domain);
    for f in wanted {
        assert!(
            features.iter().any(|have| have == f),
            "{domain} lacks {f}: {features:?}"
        );
    }
}

#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn billing_and_an_operator_run_an_account_through_its_life() {
    let real = RealServer::from_env();
    let drover = Drover::start(&[]).await;
    drover.add_real_server(&real).await;
    // The README's plan: web, dns, mail and mysql. The server must be given the plan and the
    // administration user, or it refuses mail.
    let web10 = unique("Web 10GB ");
    let web20 = unique("Web 20GB ");
    let small = drover.plan(&web10, json!({"disk_quota_mb": 10240})).await;
    let big = drover
        .plan(&web20, json!({"disk_quota_mb": 20480, "max_mailboxes": 20}))
        .await;
    let domain = format!("{}.ro", unique("life-"));

    let (service, account) = drover.sell(small, &domain).await;
    let seen = server_domain(&domain).expect("created on the server");
    assert_eq!(seen["Plan"], web10);
    assert_eq!(seen["Description"], format!("drover account {account}"));
    assert_has_features(&domain, &["unix", "dir", "web", "dns", "mail", "mysql"]);
    let (_, plans) = virtualmin(&["list-plans", "--name", &web10, "--multiline"]);
    assert!(plans.contains("Server block quota: 10485760"), "{plans}");

    let job = drover
        .mv(service, "suspend", json!({"reason": "unpaid invoice 17"}))
        .await;
    assert_eq!(job["state"], "completed", "{job:#}");
    let seen = server_domain(&domain).unwrap();
    assert!(
        seen.get("Disabled")
            .is_some_and(|d| d.contains("unpaid invoice 17")),
        "{seen:?}"
    );

    let job = drover.mv(service, "unsuspend", json!({})).await;
    assert_eq!(job["state"], "completed", "{job:#}");
    assert!(!server_domain(&domain).unwrap().contains_key("Disabled"));

    let job = drover
        .mv(service, "change-plan", json!({"plan_id": big}))
        .await;
    assert_eq!(job["state"], "completed", "{job:#}");
    let seen = server_domain(&domain).unwrap();
    assert_eq!(seen["Plan"], web20);
    assert_eq!(
        seen["Maximum mailboxes"], "20",
        "the plan's limits are applied"
    );

    let user = seen["Username"].clone();
    assert!(!password_is(&user, "N3w-pass-word"));
    let changed = drover
        .post(
            &format!("/services/{service}/password"),
            json!({"password": "N3w-pass-word"}),
        )
        .await;
    drover
        .job_completed(changed["job_id"].as_i64().unwrap())
        .await;
    assert!(
        password_is(&user, "N3w-pass-word"),
        "the new password logs in"
    );

    // Protected by default: termination stops with the reason, and the domain stays.
    let job = drover.mv(service, "terminate", json!({})).await;
    assert_eq!(job["state"], "discarded", "{job:#}");
    assert!(
        job["output"]
            .to_string()
            .contains("protected from deletion"),
        "{job:#}"
    );
    assert!(
        server_domain(&domain).is_some(),
        "a protected account stays"
    );
    let (status, wrong) = drover
        .call(
            reqwest::Method::POST,
            &format!("/accounts/{account}/unprotect"),
            Some(json!({"confirm_domain": "another.ro"})),
        )
        .await;
    assert_eq!(status, 422, "{wrong}");
    drover.remove(service, account, &domain).await;
}

#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn an_accounts_mailboxes_are_created_changed_and_deleted_on_the_server() {
    let real = RealServer::from_env();
    let drover = Drover::start(&[]).await;
    let server = drover.add_real_server(&real).await;
    // Each mailbox gets the plan's quota: this server keeps no quotas, so it takes the quota
    // at creation and drover never asks it to change one.
    let plan = drover
        .plan(
            &unique("Mail "),
            json!({"max_mailboxes": 2, "mailbox_quota_mb": 200}),
        )
        .await;
    let domain = format!("{}.ro", unique("mail-"));
    let (service, account) = drover.sell(plan, &domain).await;
    let mailboxes = format!("/accounts/{account}/mailboxes");
    let users = || virtualmin(&["list-users", "--domain", &domain, "--multiline"]).1;
    let created = drover
        .post(
            &mailboxes,
            json!({"name": "ana", "real_name": "Ana Pop", "password": "Mail-passw0rd"}),
        )
        .await;
    assert_eq!(created["password_pending"], true, "{created}");
    until("ana is on the server", JOB_LIMIT, async || {
        users().contains("Real name: Ana Pop")
    })
    .await;
    let listed = users();
    let unix = listed
        .lines()
        .find_map(|l| l.trim().strip_prefix("Unix username: "))
        .expect("the mailbox's unix user is listed")
        .to_owned();
    assert!(unix.starts_with("ana."), "{listed}");
    assert!(password_is(&unix, "Mail-passw0rd"), "its password logs in");
    until(
        "drover knows the password reached the server",
        JOB_LIMIT,
        async || drover.get(&mailboxes).await[0]["password_pending"] == false,
    )
    .await;

    // The plan's limit: a second mailbox, and no third.
    drover
        .post(
            &mailboxes,
            json!({"name": "ion", "password": "Mail-passw0rd"}),
        )
        .await;
    let (status, refused) = drover
        .call(
            reqwest::Method::POST,
            &mailboxes,
            Some(json!({"name": "eva", "password": "Mail-passw0rd"})),
        )
        .await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (409, &json!("over_limit")),
        "{refused}"
    );
    let (status, refused) = drover
        .call(
            reqwest::Method::POST,
            &mailboxes,
            Some(json!({"name": "postmaster", "password": "Mail-passw0rd"})),
        )
        .await;
    assert_eq!(status, 422, "a name the server's aliases hold: {refused}");
    until("ion is on the server", JOB_LIMIT, async || {
        users().contains("User: ion")
    })
    .await;
    drover.settled(account).await;

    // Drift by hand: ion deleted, ana renamed, a stranger's mailbox added. The scan finds each,
    // and its repair makes drover's two as its records say and leaves the stranger's.
    for args in [
        vec!["delete-user", "--domain", &domain, "--user", "ion"],
        vec![
            "modify-user",
            "--domain",
            &domain,
            "--user",
            "ana",
            "--real",
            "By Hand",
        ],
        vec![
            "create-user",
            "--domain",
            &domain,
            "--user",
            "stranger",
            "--pass",
            "Str4nger-pass",
        ],
    ] {
        let (ok, text) = virtualmin(&args);
        assert!(ok, "{args:?}: {text}");
    }
    let scan = drover
        .post(&format!("/servers/{server}/drift-scan"), json!({}))
        .await;
    drover.job_completed(scan["job_id"].as_i64().unwrap()).await;
    let findings = drover.get(&format!("/drift?server_id={server}")).await;
    let mut found: Vec<(String, String)> = findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["domain"] == json!(domain))
        .map(|f| (f["kind"].to_string(), f["resource"].to_string()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            (r#""mailbox_mismatch""#.to_owned(), r#""ana""#.to_owned()),
            (r#""mailbox_missing""#.to_owned(), r#""ion""#.to_owned()),
            (r#""mailbox_orphan""#.to_owned(), r#""stranger""#.to_owned()),
        ],
        "{findings:#}"
    );
    until(
        "the scan's repair puts drover's mailboxes back",
        JOB_LIMIT,
        async || {
            let listed = users();
            listed.contains("User: ion") && listed.contains("Real name: Ana Pop")
        },
    )
    .await;
    assert!(
        users().contains("User: stranger"),
        "a stranger's mailbox stays"
    );

    // A new real name and password are one change each on the server.
    let (status, changed) = drover
        .call(
            reqwest::Method::PATCH,
            &format!("{mailboxes}/ana"),
            Some(json!({"real_name": "Ana Popescu", "password": "New-passw0rd"})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    until(
        "the new real name is on the server",
        JOB_LIMIT,
        async || users().contains("Real name: Ana Popescu"),
    )
    .await;
    until("the new password logs in", JOB_LIMIT, async || {
        password_is(&unix, "New-passw0rd")
    })
    .await;
    // A quota of its own, within the plan's: recorded; the server, without quotas, is left
    // alone and its account's converge ends well.
    let (status, changed) = drover
        .call(
            reqwest::Method::PATCH,
            &format!("{mailboxes}/ana"),
            Some(json!({"quota_mb": 100})),
        )
        .await;
    assert_eq!(
        (status, &changed["quota_mb"]),
        (200, &json!(100)),
        "{changed}"
    );
    drover.settled(account).await;
    let record = drover.get(&format!("/accounts/{account}")).await;
    assert_eq!(record["failure"], Value::Null, "{record:#}");
    let (status, refused) = drover
        .call(
            reqwest::Method::PATCH,
            &format!("{mailboxes}/ana"),
            Some(json!({"quota_mb": 201})),
        )
        .await;
    assert_eq!(status, 422, "above the plan's mailbox quota: {refused}");

    // Deleting needs the name repeated; then the server loses it and drover forgets it.
    let (status, wrong) = drover
        .call(
            reqwest::Method::POST,
            &format!("{mailboxes}/ion/delete"),
            Some(json!({"confirm_name": "ana"})),
        )
        .await;
    assert_eq!(status, 422, "{wrong}");
    drover
        .post(
            &format!("{mailboxes}/ion/delete"),
            json!({"confirm_name": "ion"}),
        )
        .await;
    until(
        "ion is gone from the server and from drover",
        JOB_LIMIT,
        async || {
            !users().contains("User: ion")
                && drover.get(&mailboxes).await.as_array().map(Vec::len) == Some(1)
        },
    )
    .await;
    assert!(users().contains("User: ana"), "ana stays");
    drover.remove(service, account, &domain).await;
}

#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn an_accounts_databases_are_created_repaired_and_deleted_on_the_server() {
    let real = RealServer::from_env();
    let drover = Drover::start(&[]).await;
    let server = drover.add_real_server(&real).await;
    let plan = drover
        .plan(&unique("Db "), json!({"max_databases": 2}))
        .await;
    let domain = format!("{}.ro", unique("db-"));
    let (service, account) = drover.sell(plan, &domain).await;
    let user = drover.get(&format!("/accounts/{account}")).await["unix_username"]
        .as_str()
        .unwrap()
        .to_owned();
    let prefix = user.replace('-', "_");
    let databases = format!("/accounts/{account}/databases");
    let listed = || {
        let (ok, text) = virtualmin(&["list-databases", "--domain", &domain, "--name-only"]);
        assert!(ok, "{text}");
        let mut names: Vec<String> = text.lines().map(str::to_owned).collect();
        names.sort();
        names
    };
    let with_prefix = |names: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = names.iter().map(|n| format!("{prefix}_{n}")).collect();
        all.push(prefix.clone());
        all.sort();
        all
    };
    let created = drover.post(&databases, json!({"name": "shop"})).await;
    assert_eq!(
        created["name"],
        json!(format!("{prefix}_shop")),
        "{created}"
    );
    drover.post(&databases, json!({"name": "blog"})).await;
    for (body, code) in [
        (json!({"name": "wiki"}), "over_limit"),
        (json!({"name": "shop"}), "database_exists"),
        (json!({"name": "bad name!"}), "invalid_value"),
    ] {
        let (status, refused) = drover
            .call(reqwest::Method::POST, &databases, Some(body.clone()))
            .await;
        assert_eq!(
            refused["error"]["code"],
            json!(code),
            "{body}: {status} {refused}"
        );
    }
    until("both databases are on the server", JOB_LIMIT, async || {
        listed() == with_prefix(&["blog", "shop"])
    })
    .await;
    drover.settled(account).await;

    // Drift by hand: blog dropped, a stranger's database made. The scan finds both, and its
    // repair makes blog again and leaves the stranger's.
    let blog = format!("{prefix}_blog");
    let stranger = format!("{prefix}_stranger");
    for args in [
        [
            "delete-database",
            "--domain",
            &domain,
            "--name",
            &blog,
            "--type",
            "mysql",
        ],
        [
            "create-database",
            "--domain",
            &domain,
            "--name",
            &stranger,
            "--type",
            "mysql",
        ],
    ] {
        let (ok, text) = virtualmin(&args);
        assert!(ok, "{args:?}: {text}");
    }
    let scan = drover
        .post(&format!("/servers/{server}/drift-scan"), json!({}))
        .await;
    drover.job_completed(scan["job_id"].as_i64().unwrap()).await;
    let findings = drover.get(&format!("/drift?server_id={server}")).await;
    let mut found: Vec<(String, String)> = findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["domain"] == json!(domain))
        .map(|f| (f["kind"].to_string(), f["resource"].to_string()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            (r#""database_missing""#.to_owned(), format!("{blog:?}")),
            (r#""database_orphan""#.to_owned(), format!("{stranger:?}")),
        ],
        "{findings:#}"
    );
    until("the repair makes blog again", JOB_LIMIT, async || {
        listed() == with_prefix(&["blog", "shop", "stranger"])
    })
    .await;

    // Deleting needs the full name repeated; then the server drops it and drover forgets it.
    let (status, wrong) = drover
        .call(
            reqwest::Method::POST,
            &format!("{databases}/shop/delete"),
            Some(json!({"confirm_name": "shop"})),
        )
        .await;
    assert_eq!(status, 422, "{wrong}");
    drover
        .post(
            &format!("{databases}/shop/delete"),
            json!({"confirm_name": format!("{prefix}_shop")}),
        )
        .await;
    until(
        "shop is gone from the server and from drover",
        JOB_LIMIT,
        async || {
            listed() == with_prefix(&["blog", "stranger"])
                && drover.get(&databases).await.as_array().map(Vec::len) == Some(1)
        },
    )
    .await;
    drover.remove(service, account, &domain).await;
}

#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn an_accounts_alias_domains_are_created_repaired_and_deleted_on_the_server() {
    let real = RealServer::from_env();
    let drover = Drover::start(&[]).await;
    let server = drover.add_real_server(&real).await;
    let plan = drover
        .plan(&unique("Alias "), json!({"max_aliases": 2}))
        .await;
    let stem = unique("al-");
    let domain = format!("{stem}.ro");
    let (service, account) = drover.sell(plan, &domain).await;
    let aliases = format!("/accounts/{account}/aliases");
    let listed = || {
        let (ok, text) = virtualmin(&["list-domains", "--alias", &domain, "--name-only"]);
        assert!(ok, "{text}");
        let mut names: Vec<String> = text.lines().map(str::to_owned).collect();
        names.sort();
        names
    };
    let (com, net, stranger) = (
        format!("{stem}.com"),
        format!("{stem}.net"),
        format!("{stem}.eu"),
    );
    for alias in [&com, &net] {
        let created = drover.post(&aliases, json!({ "domain": alias })).await;
        assert_eq!(created["domain"], json!(alias), "{created}");
    }
    for (alias, code) in [
        (format!("{stem}.org"), "over_limit"),
        (com.clone(), "duplicate_domain"),
        (format!("www.{domain}"), "invalid_value"),
    ] {
        let (status, refused) = drover
            .call(
                reqwest::Method::POST,
                &aliases,
                Some(json!({ "domain": alias })),
            )
            .await;
        assert_eq!(
            refused["error"]["code"],
            json!(code),
            "{alias}: {status} {refused}"
        );
    }
    until("both aliases are on the server", JOB_LIMIT, async || {
        listed() == [com.clone(), net.clone()]
    })
    .await;
    drover.settled(account).await;
    let zones = drover.get("/dns/zones").await;
    for alias in [&com, &net] {
        assert!(
            zones
                .as_array()
                .unwrap()
                .iter()
                .any(|z| z["name"] == json!(alias) && z["account_id"] == json!(account)),
            "{alias} has a zone of its own: {zones:#}"
        );
    }

    // Drift by hand: one alias deleted, a stranger's made. The scan finds both, and its repair
    // makes the alias again and leaves the stranger's.
    for args in [
        vec!["delete-domain", "--domain", &net],
        vec![
            "create-domain",
            "--domain",
            &stranger,
            "--alias",
            &domain,
            "--default-features",
        ],
    ] {
        let (ok, text) = virtualmin(&args);
        assert!(ok, "{args:?}: {text}");
    }
    let scan = drover
        .post(&format!("/servers/{server}/drift-scan"), json!({}))
        .await;
    drover.job_completed(scan["job_id"].as_i64().unwrap()).await;
    let findings = drover.get(&format!("/drift?server_id={server}")).await;
    let mut found: Vec<(String, String)> = findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["domain"] == json!(domain))
        .map(|f| (f["kind"].to_string(), f["resource"].to_string()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            (r#""alias_missing""#.to_owned(), format!("{net:?}")),
            (r#""alias_orphan""#.to_owned(), format!("{stranger:?}")),
        ],
        "{findings:#}"
    );
    until("the repair makes the alias again", JOB_LIMIT, async || {
        listed() == [com.clone(), stranger.clone(), net.clone()]
    })
    .await;

    // Deleting repeats the domain; then the server loses it and drover forgets it.
    let (status, wrong) = drover
        .call(
            reqwest::Method::POST,
            &format!("{aliases}/{com}/delete"),
            Some(json!({"confirm_domain": domain})),
        )
        .await;
    assert_eq!(status, 422, "{wrong}");
    drover
        .post(
            &format!("{aliases}/{com}/delete"),
            json!({ "confirm_domain": com }),
        )
        .await;
    until(
        "the alias is gone from the server and from drover",
        JOB_LIMIT,
        async || {
            listed() == [stranger.clone(), net.clone()]
                && drover.get(&aliases).await.as_array().map(Vec::len) == Some(1)
        },
    )
    .await;
    let (ok, text) = virtualmin(&["delete-domain", "--domain", &stranger]);
    assert!(ok, "{text}");
    drover.remove(service, account, &domain).await;
}

#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn an_accounts_subservers_are_created_repaired_and_deleted_on_the_server() {
    let real = RealServer::from_env();
    let drover = Drover::start(&[]).await;
    let server = drover.add_real_server(&real).await;
    let plan = drover
        .plan(&unique("Sub "), json!({"max_subservers": 2}))
        .await;
    let domain = format!("{}.ro", unique("sub-"));
    let (service, account) = drover.sell(plan, &domain).await;
    let subservers = format!("/accounts/{account}/subservers");
    let listed = || {
        let (ok, text) = virtualmin(&[
            "list-domains",
            "--parent",
            &domain,
            "--no-alias",
            "--name-only",
        ]);
        assert!(ok, "{text}");
        let mut names: Vec<String> = text.lines().map(str::to_owned).collect();
        names.sort();
        names
    };
    let (blog, shop, stranger) = (
        format!("blog.{domain}"),
        format!("shop.{domain}"),
        format!("x.{domain}"),
    );
    let created = drover.post(&subservers, json!({"name": "shop"})).await;
    assert_eq!(created["domain"], json!(shop), "{created}");
    drover.post(&subservers, json!({ "name": blog })).await;
    for (name, code) in [
        ("wiki".to_owned(), "over_limit"),
        ("shop".to_owned(), "duplicate_domain"),
        ("other.ro".to_owned(), "invalid_value"),
    ] {
        let (status, refused) = drover
            .call(
                reqwest::Method::POST,
                &subservers,
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(
            refused["error"]["code"],
            json!(code),
            "{name}: {status} {refused}"
        );
    }
    until(
        "both sub-servers are on the server",
        JOB_LIMIT,
        async || listed() == [blog.clone(), shop.clone()],
    )
    .await;
    drover.settled(account).await;
    let on_server = server_domain(&shop).expect("the sub-server is listed");
    assert_eq!(on_server["Parent domain"], domain, "{on_server:?}");
    assert_eq!(
        on_server["Username"],
        server_domain(&domain).unwrap()["Username"],
        "it shares its parent's user"
    );

    // Drift by hand: one deleted, a stranger's made. The scan finds both, and its repair makes
    // the sub-server again and leaves the stranger's.
    for args in [
        vec!["delete-domain", "--domain", &blog],
        vec![
            "create-domain",
            "--domain",
            &stranger,
            "--parent",
            &domain,
            "--dir",
            "--web",
        ],
    ] {
        let (ok, text) = virtualmin(&args);
        assert!(ok, "{args:?}: {text}");
    }
    let scan = drover
        .post(&format!("/servers/{server}/drift-scan"), json!({}))
        .await;
    drover.job_completed(scan["job_id"].as_i64().unwrap()).await;
    let findings = drover.get(&format!("/drift?server_id={server}")).await;
    let mut found: Vec<(String, String)> = findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["domain"] == json!(domain))
        .map(|f| (f["kind"].to_string(), f["resource"].to_string()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            (r#""subserver_missing""#.to_owned(), format!("{blog:?}")),
            (r#""subserver_orphan""#.to_owned(), format!("{stranger:?}")),
        ],
        "{findings:#}"
    );
    until(
        "the repair makes the sub-server again",
        JOB_LIMIT,
        async || listed() == [blog.clone(), shop.clone(), stranger.clone()],
    )
    .await;

    // Deleting repeats the full name; then the server loses it and drover forgets it.
    let (status, wrong) = drover
        .call(
            reqwest::Method::POST,
            &format!("{subservers}/shop/delete"),
            Some(json!({"confirm_domain": "shop"})),
        )
        .await;
    assert_eq!(status, 422, "{wrong}");
    drover
        .post(
            &format!("{subservers}/shop/delete"),
            json!({ "confirm_domain": shop }),
        )
        .await;
    until(
        "the sub-server is gone from the server and from drover",
        JOB_LIMIT,
        async || {
            listed() == [blog.clone(), stranger.clone()]
                && drover.get(&subservers).await.as_array().map(Vec::len) == Some(1)
        },
    )
    .await;
    let (ok, text) = virtualmin(&["delete-domain", "--domain", &stranger]);
    assert!(ok, "{text}");
    drover.remove(service, account, &domain).await;
}

#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn a_login_link_comes_from_the_server_and_is_handed_out_once() {
    let real = RealServer::from_env();
    let drover = Drover::start(&[]).await;
    drover.add_real_server(&real).await;
    let without = drover
        .plan(&unique("No panel "), json!({"features": ["web", "mail"]}))
        .await;
    let panel = json!({"features": ["web", "dns", "mail", "mysql", "webmin"]});
    let plan = drover.plan(&unique("Link "), panel).await;
    let domain = format!("{}.ro", unique("link-"));
    let (service, account) = drover.sell(plan, &domain).await;
    // A plan without the webmin feature gives no panel login: refused before any job.
    let moved = drover
        .post(
            &format!("/services/{service}/change-plan"),
            json!({ "plan_id": without }),
        )
        .await;
    drover
        .job_completed(moved["job_id"].as_i64().unwrap())
        .await;
    let (status, refused) = drover
        .call(
            reqwest::Method::POST,
            &format!("/accounts/{account}/login-link"),
            None,
        )
        .await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (409, &json!("feature_missing")),
        "{refused}"
    );
    let back = drover
        .post(
            &format!("/services/{service}/change-plan"),
            json!({ "plan_id": plan }),
        )
        .await;
    drover.job_completed(back["job_id"].as_i64().unwrap()).await;
    let asked = drover
        .post(&format!("/accounts/{account}/login-link"), json!({}))
        .await;
    let job = asked["job_id"].as_i64().unwrap();
    let done = drover.job_completed(job).await;
    assert!(
        !done.to_string().contains("session="),
        "the job does not show the link: {done}"
    );
    let take = format!("/accounts/{account}/login-link/{job}/take");
    let link = drover.post(&take, json!({})).await;
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!(
            "https://{domain}:10000/session_login.cgi?session="
        )),
        "{link}"
    );
    let (status, again) = drover.call(reqwest::Method::POST, &take, None).await;
    assert_eq!(
        (status, &again["error"]["code"]),
        (410, &json!("login_link_gone")),
        "{again}"
    );
    drover.remove(service, account, &domain).await;
}

/// The real server has no internet: Let's Encrypt cannot be reached, which is the failure
/// path drover must handle (the server's own cause kept, a wait before the next try, never a
/// sixth failure within the hour).
#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn a_certificate_request_fails_with_the_servers_cause_and_waits() {
    let real = RealServer::from_env();
    let drover = Drover::start(&[]).await;
    drover.add_real_server(&real).await;
    let plan = drover.plan(&unique("Cert "), json!({})).await;
    let domain = format!("{}.ro", unique("cert-"));
    let (service, account) = drover.sell(plan, &domain).await;
    // A sub-server has a certificate of its own, asked for with the account's.
    let shop = format!("shop.{domain}");
    drover
        .post(
            &format!("/accounts/{account}/subservers"),
            json!({"name": "shop"}),
        )
        .await;
    let path = format!("/accounts/{account}/certificate");
    let asked = drover.call(reqwest::Method::POST, &path, None).await;
    assert_eq!(asked.0, 202, "{}", asked.1);
    assert_eq!(asked.1["certificate"]["state"], "requested");
    for failures in 1..=2 {
        let failed = eventually("the request to fail", JOB_LIMIT, async || {
            let c = drover.get(&path).await;
            (c["failures"] == failures).then_some(c)
        })
        .await;
        assert_eq!(failed["state"], "failed", "{failed:#}");
        let cause = failed["last_error"].as_str().unwrap();
        // The real cause, not the first line of the program's output.
        assert!(
            !cause.starts_with("Checking certificate names") && cause.contains("failed"),
            "{failed:#}"
        );
        // Each name was asked (the sub-server once it was on the server) and keeps the
        // server's own message.
        let names = failed["names"].as_array().unwrap();
        let asked: Vec<&str> = names
            .iter()
            .map(|n| n["domain"].as_str().unwrap())
            .collect();
        assert_eq!(asked, [domain.as_str(), shop.as_str()], "{failed:#}");
        for name in names {
            let own = name["last_error"].as_str().unwrap_or_default();
            assert!(
                own.contains("failed") && name["issued_at"].is_null(),
                "{failed:#}"
            );
            assert!(cause.contains(&format!("{}: {own}", name["domain"].as_str().unwrap())));
        }
        let next: jiff::Timestamp = failed["next_attempt_at"].as_str().unwrap().parse().unwrap();
        let wait = next.duration_since(jiff::Timestamp::now());
        assert!(
            wait > jiff::SignedDuration::from_mins(3),
            "five minutes, then more, before drover asks again: {failed:#}"
        );
        if failures == 1 {
            // An operator asks again: the waiting job goes now.
            let again = drover.call(reqwest::Method::POST, &path, None).await;
            assert_eq!(again.0, 202, "{}", again.1);
        }
    }
    let listed = drover.get("/certificates?state=failed").await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["account_id"] == account),
        "{listed:#}"
    );
    // drover stops asking; nothing is left waiting for the account.
    let (status, _) = drover.call(reqwest::Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    drover.settled(account).await;
    drover.remove(service, account, &domain).await;
}

/// An account backed up to a directory on its server: the archive there, its size as the
/// server printed it, the file written into its web root inside; the older archive deleted
/// by retention; a destination the server lacks named in the failure.
#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn an_account_is_backed_up_to_its_server_and_old_archives_are_deleted() {
    let real = RealServer::from_env();
    let drover = Drover::start(&[]).await;
    drover.add_real_server(&real).await;
    let location = format!("/var/backups/{}", unique("drover-real-"));
    // The operator makes the destination's directory; the server makes each account's in it.
    std::fs::create_dir_all(&location).unwrap();
    let local = drover
        .post(
            "/backup-destinations",
            json!({"name": unique("local-"), "location": location, "keep_daily": 1,
                   "keep_weekly": 0}),
        )
        .await;
    let plan = drover.plan(&unique("Backup "), json!({})).await;
    let domain = format!("{}.ro", unique("arhiva-"));
    let (service, account) = drover.sell(plan, &domain).await;
    let home = server_domain(&domain).expect("on the server")["Home directory"].clone();
    let marker = format!("{home}/public_html/drover-marker.txt");
    std::fs::write(&marker, "written before the backup\n").unwrap();

    let path = format!("/accounts/{account}/backups");
    let backup = async |destination: &Value| {
        let asked = drover
            .post(&path, json!({"destination_id": destination["id"]}))
            .await;
        drover
            .job_completed(asked["job_id"].as_i64().unwrap())
            .await
    };
    let job = backup(&local).await;
    let first = drover.get(&path).await["last_good"].clone();
    assert_eq!(first["state"], "succeeded", "{job:#}");
    let archive = first["archive"].as_str().unwrap().to_owned();
    assert!(
        archive.starts_with(&format!("{location}/{domain}/{domain}-")),
        "{first:#}"
    );
    let on_disk = std::fs::metadata(&archive)
        .expect("the archive on the server")
        .len();
    let printed = first["size_bytes"].as_u64().unwrap();
    assert!(
        on_disk.abs_diff(printed) <= 1024 + on_disk / 100,
        "the server printed {printed} bytes, wrote {on_disk}"
    );
    // Virtualmin's archive holds each feature's part; the home directory's tar holds the file.
    let listing = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar xzOf '{archive}' './{domain}_dir.tar' | tar tf -"
        ))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("public_html/drover-marker.txt"),
        "the archive's home directory: {listing}"
    );

    // One a day is kept: the next backup deletes the first from the server.
    backup(&local).await;
    let history = drover.get(&path).await;
    let states: Vec<&str> = history["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["succeeded", "pruned"], "{history:#}");
    assert!(!std::path::Path::new(&archive).exists());
    assert!(!std::path::Path::new(&format!("{archive}.info")).exists());
    let newest = history["last_good"]["archive"].as_str().unwrap().to_owned();
    assert!(std::path::Path::new(&newest).exists());

    // A destination whose directory the server lacks: the failure is the server's own.
    let nowhere = drover
        .post(
            "/backup-destinations",
            json!({"name": unique("nowhere-"), "location": format!("{location}-missing")}),
        )
        .await;
    let job = backup(&nowhere).await;
    let error = job["output"]["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with(&format!(
            "Failed to create directory {location}-missing/{domain}"
        )),
        "{job:#}"
    );
    let failed = drover
        .get(&format!("/backups?account_id={account}&state=failed"))
        .await;
    assert_eq!(failed[0]["error"], error);

    drover.settled(account).await;
    drover.remove(service, account, &domain).await;
    std::fs::remove_dir_all(&location).unwrap();
}

/// Runs SQL in one of Virtualmin's own MariaDB databases, as its root; the output's rows.
fn sql(database: &str, statement: &str) -> String {
    let output = std::process::Command::new("mariadb")
        .args([
            "--socket=/run/mysqld-vm/mysqld.sock",
            "-N",
            "-B",
            database,
            "-e",
            statement,
        ])
        .output()
        .expect("the real server's MariaDB client");
    assert!(
        output.status.success(),
        "{statement}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A real sshd on a loopback port, for backups to an SSH host.
async fn test_sshd() -> drover_testkit::TestSshd {
    tokio::task::spawn_blocking(drover_testkit::TestSshd::start)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("sshd: {e}"))
}

/// The backup archives in one of the sshd user's directories.
fn archives_in(sshd: &drover_testkit::TestSshd, dir: &str) -> Vec<String> {
    sshd.files(dir)
        .into_iter()
        .filter(|f| f.ends_with(".tar.gz"))
        .collect()
}

/// Content written through the server's own filesystem and MariaDB, backed up, the account
/// deleted on the server by hand, restored by drover: the web file, a mailbox's mail and a
/// database row are all back, and drover's records were applied on top.
#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn an_account_deleted_by_hand_comes_back_from_its_backup_with_its_content() {
    let location = format!("/var/backups/{}", unique("drover-real-"));
    std::fs::create_dir_all(&location).unwrap();
    let destination = json!({"name": unique("local-"), "location": location, "default": true});
    content_comes_back(&[], destination).await;
    std::fs::remove_dir_all(&location).unwrap();
}

/// The same from an SSH host: a real sshd on a loopback port, its host key pinned, its user's
/// password in drover's environment; the real server's `scp` carries the archive both ways.
#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn an_account_deleted_by_hand_comes_back_from_an_ssh_host_with_its_content() {
    let mut sshd = test_sshd().await;
    let password = sshd.login().unwrap();
    let vault = sshd.directory(&unique("vault-")).unwrap();
    let destination = json!({
        "name": unique("vault-"),
        "location": format!("ssh://{}@127.0.0.1:{}:{vault}", sshd.user, sshd.port),
        "credentials": "env:DROVER_SECRET_VAULT",
        "host_key": sshd.host_key,
        "default": true,
    });
    content_comes_back(&[("DROVER_SECRET_VAULT", &password)], destination).await;
    // Every archive written went to the host (and retention left the newest).
    let archives = archives_in(&sshd, &vault);
    assert_eq!(archives.len(), 1, "{archives:?}");
}

/// The same with a key: the server's `scp` logs in with a private key file on the server
/// (drover knows only its path), the host's key pinned as before.
#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn an_account_comes_back_from_an_ssh_host_reached_with_a_key_file() {
    let mut sshd = test_sshd().await;
    let key_file = sshd.authorize_key().unwrap();
    let vault = sshd.directory(&unique("vault-")).unwrap();
    let destination = json!({
        "name": unique("vault-"),
        "location": format!("ssh://{}@127.0.0.1:{}:{vault}", sshd.user, sshd.port),
        "key_file": key_file,
        "host_key": sshd.host_key,
        "default": true,
    });
    content_comes_back(&[], destination).await;
    let archives = archives_in(&sshd, &vault);
    assert_eq!(archives.len(), 1, "{archives:?}");
}

/// An SSH host that refuses the password: the real server's `scp` fails, and drover records
/// the backup as failed with ssh's own words, the password in none of its records, and the
/// server's breaker closed (the host's trouble, not the server's).
#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn a_backup_host_that_refuses_the_login_is_named_with_its_own_words() {
    let mut sshd = test_sshd().await;
    sshd.login().unwrap();
    let vault = sshd.directory(&unique("vault-")).unwrap();
    let wrong = "not-the-Passw0rd-of-it";
    let real = RealServer::from_env();
    let drover = Drover::start(&[("DROVER_SECRET_VAULT", wrong)]).await;
    drover.add_real_server(&real).await;
    drover
        .post(
            "/backup-destinations",
            json!({
                "name": unique("vault-"),
                "location": format!("ssh://{}@127.0.0.1:{}:{vault}", sshd.user, sshd.port),
                "credentials": "env:DROVER_SECRET_VAULT",
                "host_key": sshd.host_key,
                "default": true,
            }),
        )
        .await;
    let plan = drover.plan(&unique("Refused "), json!({})).await;
    let domain = format!("{}.ro", unique("refuzat-"));
    let (service, account) = drover.sell(plan, &domain).await;
    let path = format!("/accounts/{account}/backups");
    let asked = drover.post(&path, json!({})).await;
    let job = drover
        .job_completed(asked["job_id"].as_i64().unwrap())
        .await;
    let error = job["output"]["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("Failed to connect to SSH server : ")
            && error.contains("Permission denied (publickey,password)"),
        "{job:#}"
    );
    let history = drover.get(&path).await;
    assert_eq!(history["backups"][0]["state"], "failed", "{history:#}");
    assert!(
        !format!("{job} {history}").contains(wrong),
        "{job:#} {history:#}"
    );
    assert!(sshd.files(&vault).is_empty(), "nothing was written");
    // The server itself is fine: it takes the next account's work at once.
    drover.settled(account).await;
    drover.remove(service, account, &domain).await;
}

/// Content written through the server's own filesystem and MariaDB, backed up to
/// `destination`, broken and restored, then the account deleted by hand and restored.
async fn content_comes_back(settings: &[(&str, &str)], destination: serde_json::Value) {
    let real = RealServer::from_env();
    let drover = Drover::start(settings).await;
    drover.add_real_server(&real).await;
    drover.post("/backup-destinations", destination).await;
    let plan = drover.plan(&unique("Restore "), json!({})).await;
    let domain = format!("{}.ro", unique("refacut-"));
    let (service, account) = drover.sell(plan, &domain).await;
    let mailbox = json!({"name": "ana", "password": "Mail-passw0rd"});
    drover
        .post(&format!("/accounts/{account}/mailboxes"), mailbox)
        .await;
    // A sub-server: its directory is left out of the domain's own backup.
    drover
        .post(
            &format!("/accounts/{account}/subservers"),
            json!({"name": "shop"}),
        )
        .await;
    drover.settled(account).await;

    // The customer's content, written as the customer's site, mail and application would.
    let home = server_domain(&domain).expect("on the server")["Home directory"].clone();
    let page = format!("{home}/public_html/index.html");
    std::fs::write(&page, "the customer's page\n").unwrap();
    let shop = format!("shop.{domain}");
    let shop_home = server_domain(&shop).expect("the sub-server")["Home directory"].clone();
    let shop_page = format!("{shop_home}/public_html/index.html");
    std::fs::write(&shop_page, "the shop's page\n").unwrap();
    let (ok, users) = virtualmin(&["list-users", "--domain", &domain, "--multiline"]);
    assert!(ok, "{users}");
    let mut user = "";
    let mut mail_location = None;
    for line in users.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("User: ") {
            user = name;
        } else if let Some(at) = line.strip_prefix("Mail location: ")
            && user == "ana"
        {
            mail_location = Some(at.to_owned());
        }
    }
    let maildir = format!("{}/new", mail_location.expect("ana's mail location"));
    std::fs::create_dir_all(&maildir).unwrap();
    let letter = format!("{maildir}/1733400000.drover.test");
    std::fs::write(
        &letter,
        "Subject: kept\n\nA letter kept across a restore.\n",
    )
    .unwrap();
    let (ok, databases) = virtualmin(&["list-databases", "--domain", &domain, "--name-only"]);
    assert!(ok, "{databases}");
    let database = databases
        .lines()
        .next()
        .expect("the account's database")
        .trim()
        .to_owned();
    sql(
        &database,
        "CREATE TABLE orders (id INT PRIMARY KEY, item TEXT)",
    );
    sql(
        &database,
        "INSERT INTO orders VALUES (7, 'kept across a restore')",
    );

    let asked = drover
        .post(&format!("/accounts/{account}/backups"), json!({}))
        .await;
    let job = drover
        .job_completed(asked["job_id"].as_i64().unwrap())
        .await;
    assert!(job["output"]["error"].is_null(), "{job:#}");

    // Broken in place: the page overwritten, a file added. A restore onto the domain brings
    // the page back and deletes the file made since.
    let path = format!("/accounts/{account}/restore");
    std::fs::write(&page, "broken\n").unwrap();
    let extra = format!("{home}/public_html/extra.html");
    std::fs::write(&extra, "made after the backup\n").unwrap();
    let restored = drover.post(&path, json!({"confirm_domain": domain})).await;
    drover
        .job_completed(restored["job_id"].as_i64().unwrap())
        .await;
    assert_eq!(
        std::fs::read_to_string(&page).unwrap(),
        "the customer's page\n"
    );
    assert!(
        !std::path::Path::new(&extra).exists(),
        "files made since are deleted"
    );
    drover.settled(account).await;

    // Deleted by hand on the server; drover's plan names what it would bring back.
    let (ok, text) = virtualmin(&["delete-domain", "--domain", &domain]);
    assert!(ok, "{text}");
    assert!(server_domain(&domain).is_none());
    let plan = drover.post(&path, json!({"dry_run": true})).await;
    assert!(
        plan["replaces"]
            .as_str()
            .unwrap()
            .contains("as they are now"),
        "{plan:#}"
    );
    let (status, refused) = drover
        .call(
            reqwest::Method::POST,
            &path,
            Some(json!({"confirm_domain": "another.ro"})),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(server_domain(&domain).is_none());
    let restored = drover.post(&path, json!({"confirm_domain": domain})).await;
    let job = drover
        .job_completed(restored["job_id"].as_i64().unwrap())
        .await;
    assert_eq!(job["output"]["restored"], domain.as_str(), "{job:#}");

    assert_eq!(
        std::fs::read_to_string(&page).unwrap(),
        "the customer's page\n"
    );
    assert_eq!(
        std::fs::read_to_string(&shop_page).unwrap(),
        "the shop's page\n"
    );
    assert!(
        std::fs::read_to_string(&letter)
            .unwrap()
            .contains("A letter kept across a restore."),
    );
    assert_eq!(
        sql(&database, "SELECT item FROM orders WHERE id = 7"),
        "kept across a restore"
    );
    // drover's records applied on top: the account as drover holds it, its mailbox there.
    drover.settled(account).await;
    assert_has_features(&domain, &["unix", "dir", "web", "dns", "mail", "mysql"]);
    let (ok, users) = virtualmin(&["list-users", "--domain", &domain, "--name-only"]);
    assert!(
        ok && users.lines().any(|u| u.trim().starts_with("ana")),
        "{users}"
    );

    drover.remove(service, account, &domain).await;
}

#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn an_idn_domain_and_domains_whose_usernames_collide() {
    let real = RealServer::from_env();
    let drover = Drover::start(&[]).await;
    drover.add_real_server(&real).await;
    let plan = drover.plan(&unique("Names "), json!({})).await;
    let stem = unique("shop");
    let idn = format!("știri-{stem}.ro");
    let first = format!("{stem}.ro");
    let second = format!("{stem}.com");
    let mut sold = Vec::new();
    for domain in [&idn, &first, &second] {
        sold.push((drover.sell(plan, domain).await, domain.clone()));
    }
    let ascii = ascii(&idn);
    assert!(ascii.starts_with("xn--"), "{ascii}");
    let user_of = |d: &str| server_domain(d).expect("on the server")["Username"].clone();
    assert_eq!(user_of(&first), stem);
    assert_eq!(
        user_of(&second),
        format!("{stem}1"),
        "the second gets a free name"
    );
    assert_has_features(&ascii, &["unix", "dir", "web", "dns", "mail", "mysql"]);
    // Names the server keeps for its own services: a user, and a group with no user.
    let kept = SystemNames::add(&[("useradd", unique("svc")), ("groupadd", unique("grp"))]);
    for name in &kept.0 {
        let domain = format!("{name}.ro");
        let (service, account) = drover.sell(plan, &domain).await;
        assert_eq!(user_of(&domain), format!("{name}1"), "the next free name");
        let record = drover.get(&format!("/accounts/{account}")).await;
        assert_eq!(record["unix_username"], format!("{name}1"));
        sold.push(((service, account), domain));
    }
    for ((service, account), domain) in sold {
        drover.remove(service, account, &domain).await;
    }
}

/// Users and groups made on the server for a test, removed when it ends.
struct SystemNames(Vec<String>);

impl SystemNames {
    fn add(names: &[(&str, String)]) -> Self {
        let mut made = Self(Vec::new());
        for (program, name) in names {
            let status = std::process::Command::new(program)
                .args(["--system", name])
                .status()
                .unwrap();
            assert!(status.success(), "{program} {name}");
            made.0.push(name.clone());
        }
        made
    }
}

impl Drop for SystemNames {
    fn drop(&mut self) {
        for name in &self.0 {
            // userdel takes the user's own group with it; groupdel the group made alone.
            for program in ["userdel", "groupdel"] {
                let _ = std::process::Command::new(program)
                    .arg(name)
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn drift_made_by_hand_is_found_and_repaired() {
    let real = RealServer::from_env();
    let drover = Drover::start(&[]).await;
    let server = drover.add_real_server(&real).await;
    let plan_name = unique("Drift ");
    let plan = drover.plan(&plan_name, json!({})).await;
    let stem = unique("drift");
    let names = ["off", "gone", "plan", "nodb"].map(|n| format!("{n}-{stem}.ro"));
    let mut sold = Vec::new();
    for domain in &names {
        sold.push(drover.sell(plan, domain).await);
    }
    let [off, gone, replanned, nodb] = &names;
    // An operator's hands on the server, behind drover's back.
    let orphan = format!("stray-{stem}.ro");
    let other_plan = unique("Other ");
    for args in [
        vec![
            "create-domain",
            "--domain",
            &orphan,
            "--pass",
            "Stray-pass-1",
            "--unix",
            "--dir",
            "--web",
            "--dns",
        ],
        vec!["disable-domain", "--domain", off],
        vec!["delete-domain", "--domain", gone],
        vec!["create-plan", "--name", &other_plan],
        vec![
            "modify-domain",
            "--domain",
            replanned,
            "--apply-plan",
            &other_plan,
        ],
        vec!["disable-feature", "--domain", nodb, "--mysql"],
    ] {
        let (ok, text) = virtualmin(&args);
        assert!(ok, "{args:?}: {text}");
    }
    assert!(!server_features(nodb).contains(&"mysql".to_owned()));

    // The scheduled scan (here asked for) finds every kind, and holds a repair this large.
    let scan = drover
        .post(&format!("/servers/{server}/drift-scan"), json!({}))
        .await;
    let job = drover.job_completed(scan["job_id"].as_i64().unwrap()).await;
    assert!(
        job["output"].to_string().contains("more than the limit"),
        "{job:#}"
    );
    let findings = drover.get(&format!("/drift?server_id={server}")).await;
    let found: Vec<(String, String)> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["domain"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (kind, domain) in [
        ("state_mismatch", off),
        ("missing", gone),
        ("plan_mismatch", replanned),
        ("feature_missing", nodb),
        ("orphan", &orphan),
    ] {
        assert!(
            found.contains(&(kind.to_owned(), domain.clone())),
            "{kind} {domain} in {found:?}"
        );
    }

    // The operator forces the repair; each account is made to match drover again.
    let repaired = super::command::succeeded(
        run(
            drover.dir.path(),
            &[
                "drift",
                "repair",
                "--server",
                &server.to_string(),
                "--force",
                "--wait",
            ],
        )
        .await,
    );
    assert!(
        repaired.contains("the pass touches 4 of at most")
            && repaired.contains("4 converge jobs enqueued"),
        "{repaired}"
    );
    until("the accounts match drover again", JOB_LIMIT, async || {
        server_domain(off).is_some_and(|d| !d.contains_key("Disabled"))
            && server_domain(gone).is_some()
            && server_domain(replanned).is_some_and(|d| d["Plan"] == plan_name)
            && server_features(nodb).contains(&"mysql".to_owned())
    })
    .await;
    // The orphan is only logged, and deleted only when the operator repeats its name.
    assert!(server_domain(&orphan).is_some());
    super::command::succeeded(
        run(
            drover.dir.path(),
            &[
                "drift",
                "delete-orphan",
                "--server",
                &server.to_string(),
                &orphan,
                "--confirm",
                &orphan,
                "--wait",
            ],
        )
        .await,
    );
    assert!(server_domain(&orphan).is_none());
    for ((service, account), domain) in sold.into_iter().zip(&names) {
        drover.remove(service, account, domain).await;
    }
}

/// Accounts an operator made by hand on the real server, adopted with billing's mapping: the
/// records match the server (drift finds nothing), a disabled one is suspended with the
/// server's reason, and drover manages them from then on.
#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn accounts_made_by_hand_are_adopted_and_then_managed() {
    let real = RealServer::from_env();
    let drover = Drover::start(&[]).await;
    let server = drover.add_real_server(&real).await;
    let plan_name = unique("Adopted ");
    drover
        .plan(
            &plan_name,
            json!({"features": ["web", "dns", "mail", "mysql"]}),
        )
        .await;
    let stem = unique("adopt");
    let (open, closed) = (format!("open-{stem}.ro"), format!("closed-{stem}.ro"));
    let (ok, text) = virtualmin(&["create-plan", "--name", &plan_name]);
    assert!(ok, "{text}");
    for domain in [&open, &closed] {
        let owner = format!("owner@{domain}");
        let args = [
            "create-domain",
            "--domain",
            domain,
            "--pass",
            "Made-by-hand-1",
            "--unix",
            "--dir",
            "--web",
            "--dns",
            "--mail",
            "--mysql",
            "--plan",
            &plan_name,
            "--email",
            &owner,
        ];
        let (ok, text) = virtualmin(&args);
        assert!(ok, "{args:?}: {text}");
    }
    // The open one's customer made a mailbox and a database of their own.
    let prefix = server_domain(&open).unwrap()["Username"].replace('-', "_");
    let shop = format!("{prefix}_shop");
    for args in [
        vec![
            "create-user",
            "--domain",
            &open,
            "--user",
            "sales",
            "--pass",
            "Customers-0wn",
            "--real",
            "Sales Desk",
        ],
        vec![
            "create-database",
            "--domain",
            &open,
            "--name",
            &shop,
            "--type",
            "mysql",
        ],
    ] {
        let (ok, text) = virtualmin(&args);
        assert!(ok, "{args:?}: {text}");
    }
    let sales_hash = || {
        let (ok, text) = virtualmin(&["list-users", "--domain", &open, "--multiline"]);
        assert!(ok, "{text}");
        // One block per user, headed by its unix user name.
        text.split("\n    User: ")
            .find(|block| block.starts_with("sales\n"))
            .and_then(|block| {
                block.lines().find_map(|l| {
                    l.trim()
                        .strip_prefix("Encrypted password: ")
                        .map(str::to_owned)
                })
            })
    };
    let made_by_hand = sales_hash().expect("the mailbox's hash");
    let (ok, text) = virtualmin(&[
        "disable-domain",
        "--domain",
        &closed,
        "--why",
        "Unpaid invoice",
    ]);
    assert!(ok, "{text}");

    // Only these two: the server may hold other tests' domains, which the mapping leaves out.
    let map = drover.dir.path().join("billing.csv");
    std::fs::write(
        &map,
        format!("domain,customer,name\n{open},B-{stem},Open Ltd\n{closed},B-{stem},Open Ltd\n"),
    )
    .unwrap();
    let d = drover.dir.path();
    let adopt = |flags: &'static [&'static str]| {
        let server = server.to_string();
        let map = map.display().to_string();
        async move {
            let mut args = vec!["servers", "adopt", &server, "--map", &map, "--wait"];
            args.extend_from_slice(flags);
            super::command::succeeded(run(d, &args).await)
        }
    };
    // The plan made by hand leaves features to the server; drover's names them: the operator
    // is told drover's would replace it, and accepts.
    let proposal = adopt(&["--dry-run"]).await;
    assert!(
        proposal.contains(&format!("adopt {open}"))
            && proposal.contains("suspended (Unpaid invoice)")
            && proposal.contains(&format!(
                "plans '{plan_name}' have other limits or features"
            )),
        "{proposal}"
    );
    let applied = adopt(&["--apply", "--accept-plan-changes"]).await;
    assert!(
        applied.contains("2 to adopt (1 new customers)")
            && applied.contains(&format!("with mailboxes: sales; databases: {shop}")),
        "{applied}"
    );
    assert!(
        adopt(&["--dry-run"]).await.contains("0 to adopt"),
        "a second adoption finds nothing new"
    );

    let scan = drover
        .post(&format!("/servers/{server}/drift-scan"), json!({}))
        .await;
    drover.job_completed(scan["job_id"].as_i64().unwrap()).await;
    let findings = drover.get(&format!("/drift?server_id={server}")).await;
    let ours: Vec<&Value> = findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            [&open, &closed].contains(&&f["domain"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    assert!(
        ours.is_empty(),
        "drift finds nothing on adopted accounts: {ours:?}"
    );

    // The mailbox lost on the server: drift's repair makes it again with the customer's own
    // password, from the hash the server showed at adoption.
    let (ok, text) = virtualmin(&["delete-user", "--domain", &open, "--user", "sales"]);
    assert!(ok, "{text}");
    let scan = drover
        .post(&format!("/servers/{server}/drift-scan"), json!({}))
        .await;
    drover.job_completed(scan["job_id"].as_i64().unwrap()).await;
    until("drift's repair makes sales again", JOB_LIMIT, async || {
        sales_hash().is_some()
    })
    .await;
    assert_eq!(sales_hash(), Some(made_by_hand), "the customer's password");
    let open_account = &drover.get(&format!("/accounts?domain={open}")).await[0];
    let id = open_account["id"].as_i64().unwrap();
    let databases = drover.get(&format!("/accounts/{id}/databases")).await;
    assert_eq!(databases[0]["name"], json!(shop), "{databases}");

    let accounts = drover.get(&format!("/accounts?domain={closed}")).await;
    let account = &accounts[0];
    assert_eq!(account["desired_state"], "disabled");
    assert_eq!(account["suspend_reason"], "Unpaid invoice");
    assert_eq!(account["has_sealed_password"], false);
    let service = account["service_id"].as_i64().unwrap();
    let job = drover.mv(service, "unsuspend", json!({})).await;
    assert_eq!(job["state"], "completed", "{job:#}");
    assert!(server_domain(&closed).is_some_and(|d| !d.contains_key("Disabled")));

    for domain in [&open, &closed] {
        let accounts = drover.get(&format!("/accounts?domain={domain}")).await;
        let (service, account) = (
            accounts[0]["service_id"].as_i64().unwrap(),
            accounts[0]["id"].as_i64().unwrap(),
        );
        drover.remove(service, account, domain).await;
    }
    let (ok, text) = virtualmin(&["delete-plan", "--name", &plan_name]);
    assert!(ok, "{text}");
}

#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn usage_and_health_come_from_the_real_server() {
    let real = RealServer::from_env();
    let drover = Drover::start(&[("DROVER_HEALTH_INTERVAL", "1")]).await;
    let server = drover.add_real_server(&real).await;
    let plan = drover.plan(&unique("Usage "), json!({})).await;
    let stem = unique("use");
    let (live, domain) = (format!("live-{stem}.ro"), format!("done-{stem}.ro"));
    let (service, account) = drover.sell(plan, &live).await;
    let (ended, ended_account) = drover.sell(plan, &domain).await;
    drover.remove(ended, ended_account, &domain).await;

    let sync = drover
        .post(&format!("/servers/{server}/usage-sync"), json!({}))
        .await;
    let job = drover.job_completed(sync["job_id"].as_i64().unwrap()).await;
    assert_eq!(
        job["output"]["servers"]["real"]["not_listed"],
        json!([]),
        "a terminated account is not missing: {job:#}"
    );
    let usage = drover.get(&format!("/services/{service}/usage")).await;
    assert_eq!(usage["account_id"], account, "{usage}");
    assert_eq!(usage["databases"], 1, "the account's own database: {usage}");
    assert_eq!(usage["mailboxes"], 0, "{usage}");
    assert!(
        usage["disk_bytes"].is_null(),
        "quotas are off on this server: {usage}"
    );

    let health = eventually(
        "the server is checked",
        Duration::from_secs(30),
        async || {
            let (status, answer) = drover
                .call(
                    reqwest::Method::GET,
                    &format!("/servers/{server}/health"),
                    None,
                )
                .await;
            (status == 200).then_some(answer)
        },
    )
    .await;
    assert_eq!(health["probe"]["api_ok"], true, "{health:#}");
    assert_eq!(health["probe"]["pin_matches"], true, "{health:#}");
    assert!(
        health["probe"]["certificate_days_left"].as_i64().unwrap() > 300,
        "{health:#}"
    );
    drover.remove(service, account, &live).await;
}

#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn a_database_outage_on_the_server_loses_nothing() {
    let real = RealServer::from_env();
    // No periodic health checks: two of them during the outage mark the server degraded, and
    // an account ordered after that waits to be placed instead of trying the server (waiting
    // the outage out as well, but not the path this test follows).
    let drover = Drover::start(&[
        ("DROVER_JOB_RETRY_MAX_DELAY", "2"),
        ("DROVER_HEALTH_INTERVAL", "0"),
    ])
    .await;
    let server = drover.add_real_server(&real).await;
    let plan = drover.plan(&unique("Outage "), json!({})).await;
    let stem = unique("out");
    let (up, later) = (format!("up-{stem}.ro"), format!("later-{stem}.ro"));
    let (service, account) = drover.sell(plan, &up).await;

    real_virtualmin("db-stop");
    let outage = async {
        // A scan and a usage sync during the outage record nothing from a failed listing.
        let scan = drover
            .post(&format!("/servers/{server}/drift-scan"), json!({}))
            .await;
        let job = drover.job_completed(scan["job_id"].as_i64().unwrap()).await;
        let scanned = job["output"]["servers"][0]["error"].to_string();
        assert!(
            scanned.contains("DBI connect failed"),
            "the real cause: {job:#}"
        );
        let findings = drover.get(&format!("/drift?server_id={server}")).await;
        assert_eq!(findings, json!([]), "no drift from a failed listing");
        let sync = drover
            .post(&format!("/servers/{server}/usage-sync"), json!({}))
            .await;
        let job = drover.job_completed(sync["job_id"].as_i64().unwrap()).await;
        let synced = job["output"]["servers"]["real"]["error"].to_string();
        assert!(
            synced.contains("DBI connect failed"),
            "the real cause: {job:#}"
        );

        // A suspension and an activation wait the outage out: not discarded, not failed.
        let suspended = drover
            .post(
                &format!("/services/{service}/suspend"),
                json!({"reason": "outage test"}),
            )
            .await;
        let (later_service, later_account, activated) = drover.order(plan, &later).await;
        let jobs = [suspended["job_id"].as_i64().unwrap(), activated];
        for id in jobs {
            // On a timeout the job as last seen says where it stood.
            let deadline = std::time::Instant::now() + JOB_LIMIT;
            loop {
                let job = drover.get(&format!("/jobs/{id}")).await;
                assert_ne!(job["state"], "discarded", "{job:#}");
                let attempts = job["attempts"].as_array();
                if attempts.is_some_and(|a| a.iter().any(|t| t["outcome"] == "retried")) {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "job {id} was not retried in time: {job:#}\n{}",
                    drover.log_tail(60)
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let failed = drover.get("/accounts?failed=true").await;
        assert_eq!(failed, json!([]), "waiting out an outage is not a failure");
        (jobs, later_service, later_account)
    };
    let outcome = std::panic::AssertUnwindSafe(outage).catch_unwind().await;
    real_virtualmin("db-start");
    let (jobs, later_service, later_account) = match outcome {
        Ok(done) => done,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    for id in jobs {
        drover.job_completed(id).await;
    }
    assert!(server_domain(&up).unwrap()["Disabled"].contains("outage test"));
    assert_has_features(&later, &["unix", "dir", "web", "dns", "mail", "mysql"]);
    drover.remove(service, account, &up).await;
    drover.remove(later_service, later_account, &later).await;
}

#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn a_refused_login_stops_the_calls_until_the_credentials_change() {
    let real = RealServer::from_env();
    let drover = Drover::start(&[("DROVER_HEALTH_INTERVAL", "1")]).await;
    let log = FailedLogins::from_now();
    let server = drover.add_real_server(&real).await;
    std::fs::write(drover.password_file(), "not-the-password").unwrap();
    let plan = drover.plan(&unique("Login "), json!({})).await;
    let domain = format!("{}.ro", unique("login-"));
    let (id, account, job_id) = drover.order(plan, &domain).await;

    let refused = eventually(
        "the server shows the refused login",
        JOB_LIMIT,
        async || {
            let server = drover.get(&format!("/servers/{server}")).await;
            (!server["login_refused"].is_null()).then_some(server)
        },
    )
    .await;
    assert!(
        refused["login_refused"]["reason"]
            .to_string()
            .contains("auth"),
        "{refused:#}"
    );
    // From then on health checks and the job wait without calling: no more failed logins
    // (those already on their way when the first refusal came back are all there is).
    let after_refusal = {
        tokio::time::sleep(Duration::from_secs(15)).await;
        log.count()
    };
    assert!(after_refusal <= 2, "{after_refusal} failed logins");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        log.count(),
        after_refusal,
        "no login tried after the refusal"
    );
    let job = drover.get(&format!("/jobs/{job_id}")).await;
    assert_eq!(job["state"], "scheduled", "the job waits: {job:#}");
    assert!(job["calls"].as_array().unwrap().len() <= 1, "{job:#}");
    eventually(
        "health shows the refused login",
        Duration::from_secs(30),
        async || {
            let health = drover.get(&format!("/servers/{server}/health")).await;
            health
                .to_string()
                .contains("login is refused")
                .then_some(())
        },
    )
    .await;

    // The operator fixes the secret in its file: drover picks it up and carries on.
    std::fs::write(drover.password_file(), &real.pass).unwrap();
    drover.job_completed(job_id).await;
    assert!(server_domain(&domain).is_some());
    until(
        "the refusal is lifted",
        Duration::from_secs(30),
        async || drover.get(&format!("/servers/{server}")).await["login_refused"].is_null(),
    )
    .await;
    drover.remove(id, account, &domain).await;
}

#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn the_lock_out_is_read_as_a_lock_out_and_never_retried_into() {
    let real = RealServer::from_env();
    let url = format!(
        "https://127.0.0.1:{}/virtual-server/remote.cgi?program=info&json=1",
        real.port
    );
    let login = |password: &str| {
        let output = std::process::Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-u"])
            .arg(format!("{}:{password}", real.user))
            .arg(&url)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // Someone else's failed logins get this address blocked.
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(login("wrong-password"));
    }
    assert_eq!(codes.last().map(String::as_str), Some("403"), "{codes:?}");

    let log = FailedLogins::from_now();
    // No health checks: the job is the one to meet the block here.
    let drover = Drover::start(&[("DROVER_HEALTH_INTERVAL", "0")]).await;
    let server = drover.add_real_server(&real).await;
    let plan = drover.plan(&unique("Locked "), json!({})).await;
    let domain = format!("{}.ro", unique("locked-"));
    let (id, account, job_id) = drover.order(plan, &domain).await;
    // Miniserv refuses a blocked address as soon as it connects, before reading the request:
    // when its 403 arrives before the request is written, the client sees only a connection
    // that spoke first, a transient failure, and tries again, which is answered 403 (a
    // blocked request counts as no failure). What must never happen is a call after that.
    let early = |call: &Value| {
        call["outcome"] == "transient"
            && call["message"]
                .as_str()
                .is_some_and(|m| m.contains("received unexpected message from connection"))
    };
    let job = eventually("the job meets the lock-out", JOB_LIMIT, async || {
        let job = drover.get(&format!("/jobs/{job_id}")).await;
        job["calls"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["outcome"] == "locked_out"))
            .then_some(job)
    })
    .await;
    let calls = job["calls"].as_array().unwrap().clone();
    let (last, before) = calls.split_last().unwrap();
    assert_eq!(last["outcome"], "locked_out", "{job:#}");
    assert!(before.iter().all(early), "{job:#}");
    let refused = drover.get(&format!("/servers/{server}")).await;
    assert!(
        refused["login_refused"]["reason"]
            .to_string()
            .contains("locked_out"),
        "{refused:#}"
    );

    // The block passes (the correct password is not counted while blocked)…
    until("the block expires", Duration::from_secs(150), async || {
        login(&real.pass) == "200"
    })
    .await;
    // …and drover has not called again on its own: the operator lets it.
    let job = drover.get(&format!("/jobs/{job_id}")).await;
    assert_eq!(
        job["calls"].as_array().unwrap().len(),
        calls.len(),
        "{job:#}"
    );
    assert_eq!(
        log.posts(|_| true),
        0,
        "drover's one call met the block (Webmin logs no blocked request) and it has not \
         called again on its own"
    );
    drover
        .post(&format!("/servers/{server}/allow-login"), json!({}))
        .await;
    drover.job_completed(job_id).await;
    assert!(server_domain(&domain).is_some());
    drover.remove(id, account, &domain).await;
}

/// A filled tmpfs in an SSH user's directory (`archive` is a path in it), unmounted when
/// dropped; `None`, said why, where this machine lets the tests mount nothing.
struct FullDisk {
    dir: String,
    archive: String,
}

impl FullDisk {
    fn mount(dir: &str, owner: &str) -> Option<Self> {
        let run = |program: &str, args: &[&str]| {
            std::process::Command::new(program)
                .args(args)
                .output()
                .map_err(|e| e.to_string())
                .and_then(|o| match o.status.success() {
                    true => Ok(()),
                    false => Err(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
                })
        };
        std::fs::create_dir_all(dir).unwrap();
        if let Err(why) = run("mount", &["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir]) {
            eprintln!("the full SSH host case is left out: mounting a tmpfs failed: {why}");
            return None;
        }
        let disk = Self {
            dir: dir.to_owned(),
            archive: format!("{dir}/a.tar.gz"),
        };
        run("chown", &[owner, dir]).unwrap();
        // Filled to the last block: dd stops at "No space left on device".
        let _ = run(
            "dd",
            &["if=/dev/zero", &format!("of={dir}/filler"), "bs=4k"],
        );
        Some(disk)
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let umount = |args: &[&str]| {
            std::process::Command::new("umount")
                .args(args)
                .arg(&self.dir)
                .status()
                .is_ok_and(|s| s.success())
        };
        // Busy (a transfer's file still open): detached now, gone once let go.
        if !umount(&[]) && !umount(&["-l"]) {
            eprintln!("the tmpfs at {} could not be unmounted", self.dir);
        }
    }
}

/// One scenario through drover's client against the real server and against the simulator:
/// their answers, normalised (names the scenario chose, ids and times aside), must agree field
/// by field on everything drover reads, and the simulator may send no field the real server
/// does not.
#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn the_simulator_answers_as_the_real_server_does() {
    use drover_testkit::virtualmin::{SimConfig, VirtualminSim};
    use drover_virtualmin::{
        BreakerConfig, DomainChange, Endpoint, NewDomain, Placement, ServerPlan, TlsPolicy,
        VirtualminClient, VirtualminSettings,
    };

    let real = RealServer::from_env();
    let sim = VirtualminSim::start(SimConfig {
        tls: true,
        password: real.pass.clone(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    // The real server has no internet.
    sim.with_state(|s| s.acme = drover_testkit::virtualmin::Acme::Unreachable);
    let stem = unique("diff");
    // The backups' directory, on each server.
    std::fs::create_dir_all(format!("/var/backups/{stem}")).unwrap();
    sim.with_state(|s| s.disk.make_directories(&format!("/var/backups/{stem}")));
    // An SSH host both reach: a real sshd, whose user logs in with a password or a key file.
    let mut sshd = test_sshd().await;
    let ssh_password = sshd.login().unwrap();
    let key_file = sshd.authorize_key().unwrap();
    let vault = sshd.directory(&stem).unwrap();
    let host =
        drover_testkit::virtualmin::SimSshHost::on(&mut sshd, &ssh_password, &[&vault]).unwrap();
    host.authorize_key_file(&key_file);
    sim.with_state(|s| s.ssh_hosts.push(host));
    // A full disk on the host: a small tmpfs, filled up.
    let full = FullDisk::mount(&format!("{vault}/full"), sshd.user);
    let nothing_listens = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = |name: &str, port: u16, pin: &str| {
        let endpoint = Endpoint {
            name: name.into(),
            base_url: format!("https://127.0.0.1:{port}"),
            user: real.user.clone(),
            password: real.pass.clone().into(),
            tls: TlsPolicy {
                verify: true,
                pinned_sha256: Some(drover_core::CertFingerprint::parse(pin).unwrap()),
                extra_roots: Vec::new(),
            },
            rate_qps: 20.0,
            max_concurrency: 1,
        };
        VirtualminClient::new(
            endpoint,
            &VirtualminSettings::default(),
            BreakerConfig::default(),
        )
        .unwrap()
    };
    let servers = [
        client("real", real.port, &real.pin),
        client("sim", sim.addr().port(), &sim.certificate_sha256().unwrap()),
    ];
    let plan = ServerPlan {
        name: format!("Diff {stem}"),
        quota_blocks: Some(1_048_576),
        max_mailboxes: Some(7),
        max_databases: Some(3),
        max_domains: None,
        max_bandwidth_bytes: None,
        features: ["unix", "dir", "web", "dns", "mail", "mysql"]
            .map(String::from)
            .to_vec(),
    };
    let domain = format!("{stem}.ro");
    let mut seen = Vec::new();
    for (which, server) in ["real", "sim"].into_iter().zip(&servers) {
        server.ensure_plan(&plan).await.unwrap();
        server
            .create_domain(&NewDomain {
                domain: domain.clone(),
                password: "Diff-pass-1".to_owned().into(),
                unix_user: Some(stem.clone()),
                plan: Some(plan.name.clone()),
                template: None,
                features: plan.features.clone(),
                description: Some("drover account 1".into()),
                placement: Placement::TopLevel,
                skip_warnings: false,
            })
            .await
            .unwrap();
        let created = server.get_domain(&domain).await.unwrap().unwrap();
        server
            .disable_domain(&domain, Some("unpaid invoice 9"))
            .await
            .unwrap();
        let disabled = server.get_domain(&domain).await.unwrap().unwrap();
        server.enable_domain(&domain).await.unwrap();
        server
            .modify_domain(
                &domain,
                &DomainChange {
                    description: Some("changed".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let plans = server.list_plans().await.unwrap();
        let plan_record = plans
            .into_iter()
            .find(|p| p.get("name") == Some(plan.name.as_str()))
            .expect("the plan is listed");
        let databases = server.list_databases(&domain).await.unwrap();
        // A mailbox's life, and the refusals drover decides on.
        let mut mail = Vec::new();
        let secret = |p: &str| secrecy::SecretString::from(p.to_owned());
        let outcome = |r: Result<(), drover_virtualmin::VirtualminError>| match r {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("{:?}: {}", e.kind, e.message),
        };
        for (user, real_name) in [
            ("ana", "Ana Pop"),
            ("ana", ""),
            ("bad user!", ""),
            ("9lives", ""),
        ] {
            let created = server
                .create_mailbox(
                    &domain,
                    user,
                    drover_virtualmin::MailboxPassword::Plain(secret("Mail-passw0rd")),
                    Some(real_name).filter(|r| !r.is_empty()),
                    None,
                )
                .await;
            mail.push(format!("create {user}: {}", outcome(created)));
        }
        for user in ["ana", "nobody"] {
            let changed = server
                .modify_mailbox(
                    &domain,
                    user,
                    Some("Ana Popescu"),
                    Some(secret("New-passw0rd")),
                )
                .await;
            mail.push(format!("modify {user}: {}", outcome(changed)));
        }
        // A quota: taken at creation where quotas are off (and not kept), refused in a change.
        let quota = server
            .create_mailbox(
                &domain,
                "quota",
                drover_virtualmin::MailboxPassword::Plain(secret("Mail-passw0rd")),
                None,
                Some(10),
            )
            .await;
        mail.push(format!("create with a quota: {}", outcome(quota)));
        let quota = server.set_mailbox_quota(&domain, "quota", Some(20)).await;
        mail.push(format!("set a quota: {}", outcome(quota)));
        // A mailbox made from another's hash (as drover makes an adopted one again) keeps it.
        let hash_of = |listed: Vec<drover_virtualmin::DomainUser>, user: &str| {
            listed
                .into_iter()
                .find(|u| u.user == user)
                .and_then(|u| u.password_hash)
        };
        let ana_hash = hash_of(server.mailboxes(&domain).await.unwrap(), "ana")
            .expect("the master admin is shown the hash");
        let copied = server
            .create_mailbox(
                &domain,
                "copy",
                drover_virtualmin::MailboxPassword::Hashed(ana_hash.clone()),
                None,
                None,
            )
            .await;
        let same = hash_of(server.mailboxes(&domain).await.unwrap(), "copy") == Some(ana_hash);
        mail.push(format!(
            "create from a hash: {} (the hash kept: {same})",
            outcome(copied)
        ));
        // By name: the real server lists in the order they were made, the simulator by name,
        // and drover reads listings as sets.
        let mut listed = server.mailboxes(&domain).await.unwrap();
        listed.sort_by(|a, b| a.user.cmp(&b.user));
        mail.push(format!("listed: {listed:?}"));
        let mut users = server.list_mailboxes(&domain).await.unwrap();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        for user in ["ana", "quota", "copy", "nobody"] {
            let deleted = server.delete_mailbox(&domain, user).await;
            mail.push(format!("delete {user}: {}", outcome(deleted)));
        }
        // A database's life: names the server lower-cases or refuses, a type it lacks.
        let shop = format!("{stem}_shop");
        for (name, kind) in [
            (shop.as_str(), "mysql"),
            (shop.as_str(), "mysql"),
            ("bad name!", "mysql"),
            (&format!("{stem}_Upper"), "mysql"),
            (&format!("{stem}_pg"), "postgres"),
            (&format!("{stem}_{}", "x".repeat(60)), "mysql"),
        ] {
            let created = server.create_database(&domain, name, kind).await;
            mail.push(format!("create database {name}: {}", outcome(created)));
        }
        let listed = server.databases(&domain).await.unwrap();
        mail.push(format!("databases: {listed:?}"));
        for name in [shop.as_str(), shop.as_str()] {
            let deleted = server.delete_database(&domain, name, "mysql").await;
            mail.push(format!("delete database {name}: {}", outcome(deleted)));
        }
        // An alias's life: made, made again, of a domain the server lacks, listed, deleted.
        let alias = format!("{stem}-alias.com");
        for target in [domain.as_str(), domain.as_str(), "nosuch-diff.ro"] {
            let created = server.create_alias(&alias, target, "Alias").await;
            mail.push(format!("create alias of {target}: {}", outcome(created)));
        }
        mail.push(format!("aliases: {:?}", server.aliases_of(&domain).await));
        let listed = server.get_domain(&alias).await.unwrap().unwrap();
        mail.push(format!(
            "alias listed: {:?} {:?} {:?}",
            listed.kind, listed.alias_of, listed.parent
        ));
        for _ in 0..2 {
            let deleted = server.delete_domain(&alias).await;
            mail.push(format!("delete alias: {}", outcome(deleted)));
        }
        // A sub-server's life, with the features drover gives one, and with a user of its own.
        let sub = format!("shop.{domain}");
        let features = ["dir", "web", "dns", "mail"].map(String::from);
        for _ in 0..2 {
            let created = server
                .create_subserver(&sub, &domain, &features, "Shop")
                .await;
            mail.push(format!("create sub-server: {}", outcome(created)));
        }
        let with_user = ["dir", "web", "unix"].map(String::from);
        let refused = server
            .create_subserver(&format!("blog.{domain}"), &domain, &with_user, "Blog")
            .await;
        mail.push(format!("create sub-server with unix: {}", outcome(refused)));
        mail.push(format!(
            "sub-servers: {:?}",
            server.subservers_of(&domain).await
        ));
        let listed = server.get_domain(&sub).await.unwrap().unwrap();
        let mut features = listed.features.clone();
        features.sort();
        mail.push(format!(
            "sub-server listed: {:?} {:?} {:?} {features:?}",
            listed.kind, listed.parent, listed.alias_of
        ));
        // A certificate without internet (the account's, a sub-server's own), and for a
        // domain the server lacks.
        for name in [domain.as_str(), sub.as_str(), "nosuch-diff.ro"] {
            let asked = server.generate_letsencrypt_cert(name).await;
            let counted = asked.as_ref().is_err_and(|e| e.program_failed);
            mail.push(format!(
                "certificate for {name}: {} {counted}",
                outcome(asked)
            ));
        }
        let deleted = server.delete_domain(&sub).await;
        mail.push(format!("delete sub-server: {}", outcome(deleted)));
        // A backup: made (its size printed), into a directory whose parent the server lacks,
        // of a domain it lacks; deleted, and deleted again.
        let archive = format!("/var/backups/{stem}/{domain}/a.tar.gz");
        for (name, dest) in [
            (domain.as_str(), archive.clone()),
            (
                domain.as_str(),
                format!("/var/backups/{stem}-none/{domain}/a.tar.gz"),
            ),
            ("nosuch-diff.ro", archive.clone()),
        ] {
            let dest = drover_core::BackupLocation::parse(&dest).unwrap();
            let made = server.backup_domain(name, &dest, None).await;
            let size = made
                .as_ref()
                .ok()
                .map(|log| drover_core::final_size_bytes(log).is_some());
            let made = made.map(drop);
            mail.push(format!(
                "backup of {name} to {dest}: {} {size:?}",
                outcome(made)
            ));
        }
        for _ in 0..2 {
            let archive = drover_core::BackupLocation::parse(&archive).unwrap();
            let deleted = server.delete_backup(&archive, None).await;
            mail.push(format!("delete backup: {}", outcome(deleted)));
        }
        // The same to the SSH host: with the password, a wrong one, the key file; into a
        // directory the host lacks; at a port nothing listens on; restored; deleted twice.
        let ssh = |login: &str, port: u16, path: &str| {
            let at = format!("ssh://{}@127.0.0.1:{port}:{path}", sshd.user);
            let login = match login.strip_prefix("key:") {
                Some(key) => drover_virtualmin::SshLogin::KeyFile(
                    drover_core::SshKeyFile::parse(key).unwrap(),
                ),
                None => drover_virtualmin::SshLogin::Password(secret(login)),
            };
            (drover_core::BackupLocation::parse(&at).unwrap(), login)
        };
        // One archive per server: each restores its own (the simulator's are not tar files).
        let on_host = format!("{vault}/{domain}-{which}.tar.gz");
        let key = format!("key:{key_file}");
        for (login, port, path) in [
            (ssh_password.as_str(), sshd.port, on_host.as_str()),
            ("not-the-Passw0rd", sshd.port, on_host.as_str()),
            (key.as_str(), sshd.port, on_host.as_str()),
            (
                ssh_password.as_str(),
                sshd.port,
                &format!("{vault}/none/a.tar.gz"),
            ),
            (ssh_password.as_str(), nothing_listens, on_host.as_str()),
        ]
        .into_iter()
        .chain(
            full.as_ref()
                .map(|full| (key.as_str(), sshd.port, full.archive.as_str())),
        ) {
            let (dest, login) = ssh(login, port, path);
            let made = server.backup_domain(&domain, &dest, Some(&login)).await;
            let size = made
                .as_ref()
                .ok()
                .map(|log| drover_core::final_size_bytes(log).is_some());
            // The server's temporary copy is named as it likes: only scp's own words count.
            let made = outcome(made.map(drop));
            let made = made
                .split("; scp: failed to upload file")
                .next()
                .unwrap_or_default();
            let made = made.replace(which, "SERVER");
            mail.push(format!("backup over ssh: {made} {size:?}"));
        }
        let (archive, login) = ssh(&ssh_password, sshd.port, &on_host);
        let restored = server
            .restore_domain(&archive, Some(&login), &[domain.as_str()])
            .await;
        mail.push(format!("restore over ssh: {}", outcome(restored.map(drop))));
        for _ in 0..2 {
            let deleted = server.delete_backup(&archive, Some(&login)).await;
            mail.push(format!("delete backup over ssh: {}", outcome(deleted)));
        }
        let mail = mail.join("\n");
        let template = server
            .list_templates()
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.get("name") == Some("Default Settings"))
            .expect("the default template is listed");
        let missing_plan = server
            .create_domain(&NewDomain {
                domain: format!("other-{domain}"),
                plan: Some(format!("No plan {stem}")),
                password: "Diff-pass-1".to_owned().into(),
                unix_user: None,
                template: None,
                features: plan.features.clone(),
                description: None,
                placement: Placement::TopLevel,
                skip_warnings: false,
            })
            .await
            .unwrap_err();
        let again = NewDomain {
            domain: domain.clone(),
            password: "Diff-pass-1".to_owned().into(),
            unix_user: None,
            plan: None,
            template: None,
            features: vec![],
            description: None,
            placement: Placement::TopLevel,
            skip_warnings: false,
        };
        let duplicate = server.create_domain(&again).await.unwrap_err();
        server.delete_domain(&domain).await.unwrap();
        let gone = server.get_domain(&domain).await.unwrap();
        seen.push((
            created,
            disabled,
            plan_record,
            databases,
            missing_plan,
            duplicate,
            gone,
            (users, template, mail),
        ));
    }
    let (real_seen, sim_seen) = (&seen[0], &seen[1]);
    let sorted = |f: &[String]| {
        let mut f = f.to_vec();
        f.sort();
        f
    };
    for (what, real_value, sim_value) in [
        (
            "user",
            format!("{:?}", real_seen.0.unix_user),
            format!("{:?}", sim_seen.0.unix_user),
        ),
        (
            "plan",
            format!("{:?}", real_seen.0.plan),
            format!("{:?}", sim_seen.0.plan),
        ),
        (
            "kind",
            format!("{:?}", real_seen.0.kind),
            format!("{:?}", sim_seen.0.kind),
        ),
        (
            "description",
            format!("{:?}", real_seen.0.description),
            format!("{:?}", sim_seen.0.description),
        ),
        (
            "features",
            format!("{:?}", sorted(&real_seen.0.features)),
            format!("{:?}", sorted(&sim_seen.0.features)),
        ),
        (
            "enabled",
            format!("{:?}", real_seen.0.disabled),
            format!("{:?}", sim_seen.0.disabled),
        ),
        (
            "disabled reason",
            format!("{:?}", real_seen.1.disabled.as_ref().map(|d| &d.reason)),
            format!("{:?}", sim_seen.1.disabled.as_ref().map(|d| &d.reason)),
        ),
        (
            "databases",
            format!(
                "{:?}",
                real_seen
                    .3
                    .iter()
                    .map(|d| d.name.clone())
                    .collect::<Vec<_>>()
            ),
            format!(
                "{:?}",
                sim_seen
                    .3
                    .iter()
                    .map(|d| d.name.clone())
                    .collect::<Vec<_>>()
            ),
        ),
        (
            "plan matches",
            plan.matches(&real_seen.2).to_string(),
            plan.matches(&sim_seen.2).to_string(),
        ),
        (
            "missing plan",
            format!("{:?}", real_seen.4.kind),
            format!("{:?}", sim_seen.4.kind),
        ),
        (
            "duplicate",
            format!("{:?}", real_seen.5.kind),
            format!("{:?}", sim_seen.5.kind),
        ),
        (
            "deleted",
            format!("{:?}", real_seen.6.is_none()),
            format!("{:?}", sim_seen.6.is_none()),
        ),
        ("mailboxes", real_seen.7.2.clone(), sim_seen.7.2.clone()),
    ] {
        assert_eq!(
            real_value, sim_value,
            "{what}: the real server and the simulator differ"
        );
    }
    assert!(
        plan.matches(&real_seen.2),
        "the plan as drover put it on the real server"
    );
    // Fields: the simulator sends the real server's, by the real server's names, and no other.
    let (real_users, sim_users) = (&real_seen.7.0, &sim_seen.7.0);
    assert_eq!(
        real_users.iter().map(|u| &u.name).collect::<Vec<_>>(),
        sim_users.iter().map(|u| &u.name).collect::<Vec<_>>(),
        "list-users: the real server and the simulator list other users"
    );
    let mut compared = vec![
        ("list-domains", &real_seen.0.fields, &sim_seen.0.fields),
        ("list-plans", &real_seen.2, &sim_seen.2),
        ("list-templates", &real_seen.7.1, &sim_seen.7.1),
    ];
    compared.extend(
        real_users
            .iter()
            .zip(sim_users)
            .map(|(r, s)| ("list-users", r, s)),
    );
    compared.extend(
        real_seen
            .3
            .iter()
            .zip(&sim_seen.3)
            .map(|(r, s)| ("list-databases", r, s)),
    );
    for (name, real_record, sim_record) in compared {
        let keys = |record: &drover_virtualmin::Record| -> std::collections::BTreeSet<String> {
            record.fields().map(|(k, _)| k.to_owned()).collect()
        };
        let (real_keys, sim_keys) = (keys(real_record), keys(sim_record));
        let invented: Vec<&String> = sim_keys.difference(&real_keys).collect();
        let not_simulated: Vec<&String> = real_keys.difference(&sim_keys).collect();
        assert!(
            invented.is_empty() && not_simulated.is_empty(),
            "{name}: the simulator sends fields the real server does not: {invented:?}; \
             the real server sends fields the simulator does not: {not_simulated:?}"
        );
    }
    virtualmin(&["delete-plan", "--name", &plan.name]);
    let _ = std::fs::remove_dir_all(format!("/var/backups/{stem}"));
}

/// The repository's `scripts/real-virtualmin`, for tests that stop and start the server's
/// database.
/// What the real server is doing, for a failure's message: a call that never answers is
/// explained by the program still running there (or what it waits for).
fn server_diagnosis() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/real-virtualmin");
    match std::process::Command::new(script).arg("diagnose").output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => format!("no diagnosis: {e}"),
    }
}

pub(crate) fn real_virtualmin(command: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/real-virtualmin");
    let status = std::process::Command::new(script)
        .arg(command)
        .status()
        .unwrap();
    assert!(status.success(), "scripts/real-virtualmin {command}");
}

/// The break-glass path on the real server: its own `virtualmin` command over a real sshd
/// (root, with a key), reached only once an operator marked the server; a host presenting
/// another key than the pinned one is refused before drover's key is offered.
#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn the_emergency_programs_run_over_ssh_on_the_real_server() {
    let real = RealServer::from_env();
    let drover = Drover::start(&[]).await;
    let server = drover.add_real_server(&real).await;
    let plan = drover.plan(&unique("Glass "), json!({})).await;
    let domain = format!("{}.ro", unique("glass-"));
    let (service, account) = drover.sell(plan, &domain).await;

    let mut sshd = test_sshd_as_root().await;
    let key = sshd.authorize_key().unwrap();
    let kept = drover.password_file().with_file_name("real.ssh-key");
    std::fs::copy(&key, &kept).unwrap();
    let ssh = |host_key: &str| {
        json!({"ssh": {"user": "root", "port": sshd.port,
                       "key": format!("file:{}", kept.display()), "host_key": host_key}})
    };
    let (status, _) = drover
        .call(
            reqwest::Method::PATCH,
            &format!("/servers/{server}"),
            Some(ssh(&sshd.host_key)),
        )
        .await;
    assert_eq!(status, 200);
    let path = format!("/servers/{server}/over-ssh");
    let post = reqwest::Method::POST;
    let (status, refused) = drover
        .call(
            post.clone(),
            &path,
            Some(json!({"program": "list-domains"})),
        )
        .await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (409, &json!("not_in_break_glass")),
        "{refused}"
    );
    drover
        .post(
            &format!("/servers/{server}/break-glass"),
            json!({"reason": "the real tier's own test"}),
        )
        .await;

    let (status, asked) = drover
        .call(
            post.clone(),
            &path,
            Some(json!({"program": "list-domains"})),
        )
        .await;
    assert_eq!(status, 202, "{asked}");
    let listed = drover
        .job_completed(asked["job_id"].as_i64().unwrap())
        .await;
    let domains = listed["output"]["answer"]["domains"].to_string();
    assert!(domains.contains(&format!("\"{domain}\"")), "{domains}");

    let disable = json!({"program": "disable-domain", "domain": domain, "why": "unpaid"});
    let (_, asked) = drover.call(post.clone(), &path, Some(disable)).await;
    drover
        .job_completed(asked["job_id"].as_i64().unwrap())
        .await;
    let seen = server_domain(&domain).unwrap();
    assert!(
        seen.get("Disabled").is_some_and(|d| !d.is_empty()),
        "disabled, as the server's own command line shows: {seen:?}"
    );
    let (_, asked) = drover
        .call(
            post.clone(),
            &path,
            Some(json!({"program": "enable-domain", "domain": domain})),
        )
        .await;
    drover
        .job_completed(asked["job_id"].as_i64().unwrap())
        .await;
    assert!(!server_domain(&domain).unwrap().contains_key("Disabled"));
    let (_, asked) = drover
        .call(post.clone(), &path, Some(json!({"program": "info"})))
        .await;
    let info = drover
        .job_completed(asked["job_id"].as_i64().unwrap())
        .await;
    assert!(
        !info["output"]["answer"]["info"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{info}"
    );

    // Another host key pinned: refused before authentication, saying what was presented.
    let other = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    drover
        .call(
            reqwest::Method::PATCH,
            &format!("/servers/{server}"),
            Some(ssh(other)),
        )
        .await;
    let (_, asked) = drover
        .call(
            post.clone(),
            &path,
            Some(json!({"program": "list-domains"})),
        )
        .await;
    let wrong = drover.job_ends(asked["job_id"].as_i64().unwrap()).await;
    assert_eq!(wrong["state"], "discarded", "{wrong}");
    let why = wrong["output"]["refused"].as_str().unwrap_or_default();
    assert!(
        why.contains(&sshd.host_key) && why.contains("not the pinned"),
        "{why}"
    );

    let (status, _) = drover
        .call(
            reqwest::Method::DELETE,
            &format!("/servers/{server}/break-glass"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let audit = drover
        .get(&format!("/audit?subject=server%3A{server}"))
        .await;
    let audit = audit.to_string();
    assert!(
        audit.contains("server.break_glass_call") && audit.contains("server.break_glass_lifted")
    );
    drover.remove(service, account, &domain).await;
}

/// Bringing a server into the fleet, run on this machine (the real tier's own server) over a
/// real sshd as root: the dry run changes nothing; the run finds Debian's packages and
/// Webmin with Virtualmin installed (so it installs nothing: this machine is not bare), sets
/// drover's settings, makes a Webmin user for drover that may only make remote calls, reads
/// and pins the certificate over SSH, registers the server in maintenance and takes it out
/// once the first health check passes as that user. A second run finds every step on the
/// server done and runs none of them.
#[tokio::test]
#[ignore = "real tier: needs a real Virtualmin (scripts/real-virtualmin start)"]
async fn a_server_is_bootstrapped_into_the_fleet_with_a_non_root_webmin_user() {
    let real = RealServer::from_env();
    let sources = std::env::var("DROVER_REAL_VIRTUALMIN_SOURCES").unwrap_or_else(|_| {
        format!(
            "{}/../../../shared/real-virtualmin",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let drover = Drover::start(&[
        ("DROVER_VIRTUALMIN_SOURCES", &sources),
        ("DROVER_HEALTH_INTERVAL", "2"),
    ])
    .await;
    let mut sshd = test_sshd_as_root().await;
    let key = sshd.authorize_key().unwrap();
    let secrets = drover.password_file().parent().unwrap().to_owned();
    let kept = secrets.join("bootstrap.ssh-key");
    std::fs::copy(&key, &kept).unwrap();
    let password = secrets.join("bootstrap.webmin-password");
    let name = unique("boot-");
    let spec = |name: &str, host: &str| {
        json!({
            "name": name,
            "host": host,
            "webmin_port": real.port,
            "ssh": {"user": "root", "port": sshd.port,
                    "key": format!("file:{}", kept.display()), "host_key": sshd.host_key},
            "api_credentials": format!("file:{}", password.display()),
            "capacity": 20,
            "ipv4": "127.0.0.1",
            "allow_from": ["127.0.0.1"],
        })
    };

    let (status, plan) = drover
        .call(
            reqwest::Method::POST,
            "/bootstraps?dry_run=true",
            Some(spec(&name, "127.0.0.1")),
        )
        .await;
    assert_eq!(status, 200, "{plan}");
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "check-system",
            "install-packages",
            "install-virtualmin",
            "configure-virtualmin",
            "api-user",
            "start-webmin",
            "read-certificate",
            "register",
            "first-health-check"
        ]
    );
    assert_eq!(drover.get("/bootstraps").await, json!([]));
    assert!(!password.exists(), "nothing made on a dry run");

    let bootstrapped = |name: String, host: &str| {
        let drover = &drover;
        let spec = spec(&name, host);
        async move {
            let (status, started) = drover
                .call(reqwest::Method::POST, "/bootstraps", Some(spec))
                .await;
            assert_eq!(status, 202, "{started}");
            let id = started["bootstrap"]["id"].as_i64().unwrap();
            let deadline = std::time::Instant::now() + JOB_LIMIT;
            loop {
                let now = drover.get(&format!("/bootstraps/{id}")).await;
                if now["state"] != "running" {
                    return now;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the bootstrap did not end: {now:#}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let first = bootstrapped(name.clone(), "127.0.0.1").await;
    assert_eq!(first["state"], "done", "{first:#}");
    let state_of = |run: &Value, step: &str| {
        run["progress"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == step)
            .map(|s| (s["state"].as_str().unwrap().to_owned(), s["detail"].clone()))
            .unwrap()
    };
    // This machine is not bare: what scripts/real-virtualmin installed is found, not redone.
    assert_eq!(state_of(&first, "install-packages").0, "already_done");
    let (installed, found) = state_of(&first, "install-virtualmin");
    assert_eq!(installed, "already_done");
    assert!(
        found
            .as_str()
            .unwrap()
            .contains("Webmin 2.660 with Virtualmin"),
        "{found}"
    );
    assert_eq!(state_of(&first, "api-user").0, "done");
    let (_, pin) = state_of(&first, "read-certificate");
    assert_eq!(
        pin,
        json!(real.pin),
        "the pin read over SSH is the served one"
    );
    // Every command run is recorded with its end; the password never in one.
    let commands = first["progress"]["commands"].as_array().unwrap();
    assert!(commands.iter().all(|c| !c["exit_status"].is_null()));
    let secret = std::fs::read_to_string(&password).unwrap();
    assert!(
        !first.to_string().contains(secret.trim()),
        "the password is given on standard input only"
    );

    let server = first["server_id"].as_i64().unwrap();
    let registered = drover.get(&format!("/servers/{server}")).await;
    assert_eq!(registered["api_user"], "drover");
    assert_eq!(registered["pinned_cert_sha256"], json!(real.pin));
    assert_ne!(registered["state"], "maintenance", "{registered}");
    // The scheduler's health checks pass as the new user too.
    let health = eventually("a health check", JOB_LIMIT, async || {
        let (status, health) = drover
            .call(
                reqwest::Method::GET,
                &format!("/servers/{server}/health"),
                None,
            )
            .await;
        (status == 200).then_some(health)
    })
    .await;
    assert_eq!(health["probe"]["api_ok"], true, "{health}");
    assert_eq!(health["probe"]["pin_matches"], true, "{health}");
    // The user may call remote.cgi, and nothing else of Webmin.
    // Signed in as a person would be (the login form, then a page with its session):
    // Webmin refuses the pages, as the user is for remote calls only.
    let jar = drover.dir.path().join("webmin-cookies");
    let base = format!("https://127.0.0.1:{}", real.port);
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-sk", "-b", "testing=1", "-c"])
            .arg(&jar)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let form = format!("user=drover&pass={}", secret.trim());
    curl(&["-d", &form, &format!("{base}/session_login.cgi")]);
    let jar_arg = jar.display().to_string();
    let page = curl(&["-b", &jar_arg, &format!("{base}/virtual-server/index.cgi")]);
    assert!(page.contains("RPC calls only"), "{page}");
    let webmin_acl = std::fs::read_to_string("/etc/webmin/webmin.acl").unwrap();
    assert!(webmin_acl.lines().any(|l| l == "drover: virtual-server"));

    // The same address again is refused: it is in the fleet.
    let (status, refused) = drover
        .call(
            reqwest::Method::POST,
            "/bootstraps",
            Some(spec(&unique("boot-"), "127.0.0.1")),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    // Run again (another name and address, the same machine): every step on the server is
    // found done.
    let again = bootstrapped(unique("boot-again-"), "localhost").await;
    assert_eq!(again["state"], "done", "{again:#}");
    for step in [
        "install-packages",
        "install-virtualmin",
        "configure-virtualmin",
        "api-user",
        "start-webmin",
    ] {
        assert_eq!(state_of(&again, step).0, "already_done", "{step}");
    }
    let ran: Vec<&Value> = again["progress"]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "run")
        .collect();
    let ran_steps: Vec<&str> = ran.iter().map(|c| c["step"].as_str().unwrap()).collect();
    assert_eq!(
        ran_steps,
        ["check-system", "read-certificate"],
        "only reads"
    );
}

async fn test_sshd_as_root() -> drover_testkit::TestSshd {
    tokio::task::spawn_blocking(|| drover_testkit::TestSshd::start_as("root", None))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("sshd: {e}"))
}
