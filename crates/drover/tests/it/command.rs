//! The `drover` binary, run as an operator would run it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const DROVER: &str = env!("CARGO_BIN_EXE_drover");

/// `drover` in `dir`, with none of the caller's drover settings leaking in.
pub(crate) fn drover(dir: &Path) -> Command {
    let mut command = Command::new(DROVER);
    command.current_dir(dir).kill_on_drop(true);
    without_drover_settings(&mut command);
    command
}

/// Removes the caller's drover settings from a command's environment.
pub(crate) fn without_drover_settings(command: &mut Command) {
    for (name, _) in std::env::vars() {
        if name.starts_with("VIRTUALMIN_") || name.starts_with("DROVER_") || name == "DATABASE_URL"
        {
            command.env_remove(name);
        }
    }
}

pub(crate) async fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = drover(dir).args(args).output().await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `drover` run to its end: its exit code, stdout and stderr.
pub(crate) async fn exits(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = drover(dir).args(args).output().await.unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `drover worker` on the database in `dir`, working the jobs commands queue until dropped.
/// Its client retries a failed call at once: the tests' servers fail on purpose.
pub(crate) fn worker(dir: &Path) -> Child {
    drover(dir)
        .args(["worker", "--log-format", "text"])
        .env("VIRTUALMIN_RETRY_DELAY", "0.01")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("drover worker starts")
}

/// What a command that must succeed printed.
pub(crate) fn succeeded((success, stdout, stderr): (bool, String, String)) -> String {
    assert!(success, "stdout: {stdout}\nstderr: {stderr}");
    stdout
}

/// A Virtualmin simulator added as server 1 with `drover servers add`, as an operator would:
/// its password in a file, its certificate pinned.
async fn add_simulated_server(d: &Path) -> drover_testkit::virtualmin::VirtualminSim {
    use drover_testkit::virtualmin::{SimConfig, VirtualminSim};
    let sim = VirtualminSim::start(SimConfig {
        tls: true,
        password: "pw".into(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    std::fs::create_dir_all(d.join("secrets")).unwrap();
    std::fs::write(d.join("secrets/vm.password"), "pw").unwrap();
    let credentials = format!("file:{}", d.join("secrets/vm.password").display());
    let (port, pin) = (
        sim.addr().port().to_string(),
        sim.certificate_sha256().unwrap(),
    );
    succeeded(
        run(
            d,
            &[
                "servers",
                "add",
                "--name",
                "vm1",
                "--hostname",
                "127.0.0.1",
                "--port",
                &port,
                "--capacity",
                "10",
                "--credentials",
                &credentials,
                "--pin-sha256",
                &pin,
            ],
        )
        .await,
    );
    sim
}

/// An HTTP client using drover's one TLS provider (ring), like drover itself.
pub(crate) fn http_client() -> reqwest::Client {
    let tls = drover_virtualmin::client_config(&drover_virtualmin::TlsPolicy::default()).unwrap();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap()
}

/// A running `drover serve`, its address and what it printed before listening.
pub(crate) struct Served {
    pub child: Child,
    pub base: String,
    pub printed: Vec<String>,
}

async fn serve(dir: &Path) -> Served {
    serve_with(dir, &[]).await
}

/// `drover serve` with settings in its environment.
pub(crate) async fn serve_with(dir: &Path, settings: &[(&str, &str)]) -> Served {
    serve_logging_to(dir, settings, Stdio::null()).await
}

/// `drover serve` with settings in its environment and its log (stderr) going to `log`.
pub(crate) async fn serve_logging_to(
    dir: &Path,
    settings: &[(&str, &str)],
    log: impl Into<Stdio>,
) -> Served {
    let mut child = drover(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .envs(settings.iter().copied())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let (rest, printed) = printed_until(&mut child, "drover listening on ").await;
    let base = rest.split_whitespace().next().unwrap().to_owned();
    Served {
        child,
        base,
        printed,
    }
}

/// What a started `drover` printed after `prefix` on the line that starts with it, and the
/// lines before; it must print that line within 30 s.
async fn printed_until(child: &mut Child, prefix: &str) -> (String, Vec<String>) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix(prefix) {
                return (rest.to_owned(), printed);
            }
            printed.push(line);
        }
        panic!("drover stopped before printing {prefix:?}: {printed:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("drover did not print {prefix:?} within 30 s"))
}

#[tokio::test]
async fn first_start_needs_no_configuration_and_prints_a_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path()).await;
    assert!(
        dir.path().join("drover.db").exists(),
        "the SQLite file is created in the working directory"
    );
    assert!(
        served.printed[0].starts_with("First start"),
        "{:?}",
        served.printed
    );
    let token = served.printed[1].clone();
    assert!(token.starts_with("drv_"));
    // Kept for its owner alone too: a service's output may go to a journal.
    let kept = dir.path().join("first-operator-token");
    assert_eq!(std::fs::read_to_string(&kept).unwrap().trim(), token);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&kept).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    let http = http_client();
    let api = format!("{}/api/v1", served.base);
    let created = http
        .post(format!("{api}/customers"))
        .bearer_auth(&token)
        .json(&json!({"name": "Ana Pop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let health = http
        .get(format!("{}/healthz", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
    let metrics = http
        .get(format!("{}/metrics", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let metrics = metrics.text().await.unwrap();
    // Each metric explained and typed; durations as histograms an alert can take quantiles of.
    for line in [
        "drover_http_requests_total{method=\"POST\",status=\"201\"} 1",
        "# HELP drover_http_requests_total API requests answered, by method and status",
        "# TYPE drover_http_requests_total counter",
        "# TYPE drover_http_request_duration_seconds histogram",
        "drover_http_request_duration_seconds_bucket{method=\"POST\",le=\"0.005\"}",
        "drover_http_request_duration_seconds_count{method=\"POST\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
    assert!(
        metrics
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .all(|l| l.starts_with("drover_")),
        "every metric is drover's: {metrics}"
    );
    drop(served);

    let again = serve(dir.path()).await;
    assert!(
        again.printed.is_empty(),
        "no new token on a later start: {:?}",
        again.printed
    );
    let customers: Value = http
        .get(format!("{}/api/v1/customers", again.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(customers[0]["name"], "Ana Pop", "data survives a restart");
}

#[tokio::test]
async fn token_create_prints_the_token_as_its_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run(dir.path(), &["token", "create", "--scope", "billing"]).await;
    assert!(ok, "{stderr}");
    let token = stdout.lines().last().unwrap().to_owned();
    assert!(token.starts_with("drv_"), "{stdout}");

    let served = serve(dir.path()).await;
    let http = http_client();
    let api = format!("{}/api/v1", served.base);
    let read = http
        .get(format!("{api}/customers"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let forbidden = http
        .post(format!("{api}/plans"))
        .bearer_auth(&token)
        .json(&json!({"name": "P"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403, "billing may not create plans");

    let (ok, _, stderr) = run(dir.path(), &["token", "create", "--scope", "root"]).await;
    assert!(!ok);
    assert!(
        stderr.contains("one of operator, billing, readonly"),
        "{stderr}"
    );
}

#[tokio::test]
async fn bad_configuration_stops_the_start_and_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
    let cases: [Case; 4] = [
        (
            &[("VIRTUALMIN_SSL_VERIFY", "maybe")],
            &["serve"],
            "VIRTUALMIN_SSL_VERIFY = 'maybe'",
        ),
        (
            &[("VIRTUALMIN_RATE_QPS", "-2")],
            &["migrate"],
            "VIRTUALMIN_RATE_QPS = '-2'",
        ),
        (
            &[],
            &["serve", "--listen", "localhost"],
            "--listen = 'localhost'",
        ),
        (
            &[("DATABASE_URL", "mysql://db/drover")],
            &["migrate"],
            "expected postgres://",
        ),
    ];
    for (env, args, expected) in cases {
        let output = drover(dir.path())
            .envs(env.iter().copied())
            .args(args)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} {env:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    std::fs::write(
        dir.path().join("drover.toml"),
        "[virtualmin]\nrate_qsp = 2\n",
    )
    .unwrap();
    let (ok, _, stderr) = run(dir.path(), &["--config", "drover.toml", "migrate"]).await;
    assert!(!ok);
    assert!(
        stderr.contains("'virtualmin.rate_qsp' is not a drover setting"),
        "{stderr}"
    );
}

/// What an operator meets first: the version names its commit; completions and the manual
/// need no database; `migrate` says what it applied; a PostgreSQL that refuses connections is
/// named by its address; a misspelt setting is named with the one meant, without colour in a
/// pipe.
#[tokio::test]
async fn the_command_line_describes_itself_and_its_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let version = succeeded(run(d, &["--version"]).await);
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let expected = format!(
        "drover {} ({})",
        env!("CARGO_PKG_VERSION"),
        commit.as_deref().unwrap_or("commit unknown")
    );
    assert_eq!(version.trim(), expected);
    let completions = succeeded(run(d, &["completions", "bash"]).await);
    assert!(
        completions.contains("_drover()") && completions.contains("detailed-exitcode"),
        "{completions}"
    );
    // A reader that stops early (`| head`) ends drover quietly, as a shell expects.
    let early = Command::new("bash")
        .args([
            "-c",
            &format!("{DROVER} completions bash | head -c 100 >/dev/null; echo ${{PIPESTATUS[0]}}"),
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&early.stderr);
    assert_eq!(
        String::from_utf8_lossy(&early.stdout).trim(),
        "141",
        "{stderr}"
    );
    assert!(stderr.is_empty(), "{stderr}");
    let man = succeeded(run(d, &["man"]).await);
    assert!(
        man.starts_with(".ie") || man.contains(".TH drover 1"),
        "{man}"
    );
    succeeded(run(d, &["man", "--dir", "pages"]).await);
    assert!(d.join("pages/drover-servers-check.1").is_file());
    assert!(!d.join("drover.db").exists(), "no database for these");

    let first = succeeded(run(d, &["migrate"]).await);
    assert!(
        first.contains("applied 0001_initial, 0002_engine")
            && first.contains("River's 1")
            && first.contains("now at schema version"),
        "{first}"
    );
    let again = succeeded(run(d, &["migrate"]).await);
    assert!(again.contains("up to date at schema version"), "{again}");

    let nobody = "postgres://drover@127.0.0.1:1/drover";
    let (ok, _, stderr) = run(d, &["--database-url", nobody, "migrate"]).await;
    assert!(!ok);
    assert!(
        stderr.contains("cannot connect to PostgreSQL at 127.0.0.1:1")
            && stderr.to_lowercase().contains("connection refused"),
        "{stderr}"
    );

    let output = drover(d)
        .env("DROVER_WORKRES", "2")
        .args(["--log-format", "text", "migrate"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("DROVER_WORKRES is not a drover setting (did you mean DROVER_WORKERS?)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\x1b'),
        "no colour into a pipe: {stderr:?}"
    );
}

/// `drover` run with these settings.
async fn run_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    with_stdin(dir, args, env, "").await
}

/// `drover` with `input` on its stdin and these settings.
pub(crate) async fn with_stdin(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    input: &str,
) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = drover(dir)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A plan, a customer and a service per domain, from the command line.
async fn sell(d: &Path, domains: &[&str]) {
    let plan = [
        "plans",
        "create",
        "--name",
        "Web",
        "--disk-quota-mb",
        "1024",
    ];
    succeeded(run(d, &plan).await);
    succeeded(run(d, &["customers", "create", "--name", "Ana Pop"]).await);
    for domain in domains {
        let service = [
            "services",
            "create",
            "--customer",
            "1",
            "--plan",
            "1",
            "--domain",
            domain,
        ];
        succeeded(run(d, &service).await);
    }
}

/// The database records which operator key seals its passwords: a command run where the key
/// file is not, or with another key, refuses and names the keys, instead of sealing with a
/// new key what no other process could open. A rotation seals every password again.
#[tokio::test]
async fn the_databases_operator_key_is_checked_and_can_be_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sell(d, &["keys.ro"]).await;
    let change = ["services", "password", "1"];
    succeeded(with_stdin(d, &change, &[], "N3w-passw0rd\n").await);
    let key = std::fs::read_to_string(d.join("drover.key")).unwrap();

    // Elsewhere, on the same database: no key there, and none is made.
    let elsewhere = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", d.join("drover.db").display());
    let mut args = vec!["--database-url", &database];
    args.extend(change);
    let (ok, _, stderr) = with_stdin(elsewhere.path(), &args, &[], "N3w-passw0rd\n").await;
    assert!(!ok);
    assert!(
        stderr.contains(
            "drover.key is missing, and this database's passwords are sealed with key key:"
        ),
        "{stderr}"
    );
    assert!(!elsewhere.path().join("drover.key").exists(), "no new key");

    // Another key.
    let other = "11".repeat(32);
    let env = [("DROVER_SEAL_KEY", other.as_str())];
    let (ok, _, stderr) = with_stdin(d, &change, &env, "N3w-passw0rd\n").await;
    assert!(!ok);
    assert!(
        stderr
            .contains("(DROVER_SEAL_KEY) is not the key this database's passwords are sealed with"),
        "{stderr}"
    );
    // A database from before keys had ids: its sealed passwords must open with the key.
    let pool = sqlx::SqlitePool::connect(&database).await.unwrap();
    sqlx::query("DELETE FROM seal_key")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (ok, _, stderr) = with_stdin(d, &change, &env, "N3w-passw0rd\n").await;
    assert!(
        !ok && stderr.contains("sealed with (another key, not recorded)"),
        "{stderr}"
    );
    // The right key given in full works like its file, and is recorded again.
    let env = [("DROVER_SEAL_KEY", key.trim())];
    succeeded(with_stdin(elsewhere.path(), &args, &env, "An0ther-passw0rd\n").await);
    succeeded(with_stdin(d, &change, &[], "N3w-passw0rd\n").await);

    // A webhook endpoint's secrets (its own and the one its rotation replaced, which still
    // signs) are sealed with the same key: a key rotation seals them again too, or the second
    // rotation below could not open them.
    let created = run(
        d,
        &[
            "webhooks",
            "create",
            "http://127.0.0.1:9/in",
            "--allow-http",
        ],
    )
    .await;
    assert!(succeeded(created).contains("whsec_"));
    succeeded(run(d, &["webhooks", "rotate-secret", "1"]).await);

    // Rotation seals every password again with a new key; the old key is refused after it.
    let (ok, rotated, stderr) = run(d, &["key", "rotate", "--new-key-file", "new.key"]).await;
    assert!(ok, "{stderr}");
    let rotated: Value = serde_json::from_str(&rotated).unwrap();
    assert_eq!(rotated["passwords"], 1, "{rotated}");
    assert!(stderr.contains("start every drover process with DROVER_SEAL_KEY_FILE=new.key,"));
    let (ok, _, stderr) = with_stdin(d, &change, &[], "N3w-passw0rd\n").await;
    assert!(!ok && stderr.contains("is not the key this database's passwords are sealed with"));
    let new_key = [("DROVER_SEAL_KEY_FILE", "new.key")];
    let shown: Value =
        serde_json::from_str(&succeeded(run_with(d, &["key", "show"], &new_key).await)).unwrap();
    assert_eq!(shown["key_id"], rotated["key_id"]);
    assert_eq!(shown["recorded"], rotated["key_id"]);
    // Every password opens with the new key: rotating again from it succeeds.
    let (ok, _, stderr) = run_with(
        d,
        &["key", "rotate", "--new-key-file", "newer.key"],
        &new_key,
    )
    .await;
    assert!(ok, "{stderr}");
    let (ok, _, stderr) =
        run_with(d, &["key", "rotate", "--new-key-file", "new.key"], &new_key).await;
    assert!(
        !ok && stderr.contains("not the key this database's passwords are sealed with"),
        "{stderr}"
    );
}

/// `drover doctor` as an operator meets it: every check passes on a working installation
/// (the servers checked live by a worker); a secret file gone or a server that refused the
/// login is a failure with its fix, and the command exits 1.
#[tokio::test]
async fn the_doctor_finds_what_is_wrong_and_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sim = add_simulated_server(d).await;
    // drover's plans: one not on the server yet, one changed there by hand.
    for plan in ["Web", "Gold"] {
        succeeded(run(d, &["plans", "create", "--name", plan]).await);
    }
    sim.with_state(|s| {
        let mut gold = drover_testkit::virtualmin::SimPlan::new("Gold");
        gold.quota_blocks = Some(1024);
        s.plans.push(gold);
    });
    // The doctor only looks: before any process made the key, it makes none.
    let (code, report, _) = exits(d, &["doctor", "--offline"]).await;
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("ok    operator key: none yet"), "{report}");
    assert!(!d.join("drover.key").exists(), "{report}");
    let _worker = worker(d);
    // The worker makes the key as it starts; the doctor looks once it has.
    let key = d.join("drover.key");
    crate::until(
        "the worker made the key",
        Duration::from_secs(30),
        async || key.exists(),
    )
    .await;
    let (code, report, stderr) = exits(d, &["doctor"]).await;
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    for line in [
        "ok    operator key: key:",
        "ok    workers: no job waits untaken",
        "ok    server vm1 now: answers, healthy",
        "ok    server vm1 now: plans: Web not there yet",
        "warn  server vm1 now: plans: Gold differ from drover's",
        "ok    database: sqlite://drover.db: up to date at schema version",
    ] {
        assert!(report.contains(line), "{line}: {report}");
    }
    assert!(!report.contains("FAIL"), "{report}");

    std::fs::remove_file(d.join("secrets/vm.password")).unwrap();
    let (code, report, stderr) = exits(d, &["doctor", "--offline"]).await;
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains("FAIL  server vm1: credentials file:")
            && report.contains("cannot be read")
            && report.contains("fix: provide it, or: drover servers update 1 --credentials"),
        "{report}"
    );
    assert!(stderr.contains("1 checks failed"), "{stderr}");
    let findings: Value =
        serde_json::from_str(&exits(d, &["--json", "doctor", "--offline"]).await.1).unwrap();
    let failed: Vec<&Value> = findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["level"] == "fail")
        .collect();
    assert_eq!(failed.len(), 1, "{findings}");
    assert_eq!(failed[0]["check"], "server vm1");
}

/// The packaged systemd units pass `systemd-analyze verify` (with the binary the tests built)
/// and keep the service's exposure low by systemd's own measure.
#[tokio::test]
async fn the_packaged_systemd_units_verify() {
    let Ok(found) = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .await
    else {
        eprintln!(
            "skipped: systemd-analyze is missing (Debian package systemd; scripts/test installs it)"
        );
        return;
    };
    assert!(found.status.success());
    let units = tempfile::tempdir().unwrap();
    let packaged = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/systemd");
    let mut paths = Vec::new();
    for name in ["drover.service", "drover-worker.service"] {
        let text = std::fs::read_to_string(packaged.join(name)).unwrap();
        let path = units.path().join(name);
        std::fs::write(&path, text.replace("/usr/local/bin/drover", DROVER)).unwrap();
        paths.push(path);
    }
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&verified.stderr);
    assert!(
        verified.status.success() && said.trim().is_empty(),
        "{said}"
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(&paths[0])
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(security.status.success(), "{report}");
}

/// A worker can serve `/metrics` alone: the queue it works, as it stands.
#[tokio::test]
async fn a_worker_serves_its_metrics_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sell(d, &["counted.ro"]).await;
    succeeded(run(d, &["services", "activate", "1"]).await);
    succeeded(run(d, &["databases", "create", "1", "shop"]).await);
    let mut child = drover(d)
        .args(["worker", "--metrics-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (base, _) = printed_until(&mut child, "drover worker serves /metrics on ").await;
    let metrics = http_client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("# TYPE drover_queue_jobs gauge"),
        "{metrics}"
    );
    assert!(
        metrics.contains("drover_queue_jobs{queue=\"converge\""),
        "{metrics}"
    );
    for line in [
        "# TYPE drover_queue_oldest_seconds gauge",
        "drover_queue_oldest_seconds{queue=\"converge\"",
        "drover_resources{kind=\"database\",state=\"recorded\"} 1",
        "drover_resources{kind=\"mailbox\",state=\"recorded\"} 0",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
    drop(child);
}

/// A change to many services is listed first on request, asked for (or `--yes`), and
/// followed without filling a log with carriage returns; waiting can stop while the jobs go on.
#[tokio::test]
async fn a_bulk_change_is_previewed_confirmed_and_followed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sell(d, &["bulk-a.ro", "bulk-b.ro", "bulk-c.ro"]).await;
    for id in ["1", "2", "3"] {
        succeeded(run(d, &["services", "activate", id]).await);
    }
    succeeded(run(d, &["services", "suspend", "3", "--reason", "unpaid"]).await);
    let bulk = [
        "services",
        "bulk",
        "suspend",
        "--customer",
        "1",
        "--reason",
        "audit",
    ];

    let (ok, _, stderr) = run(d, &bulk).await;
    assert!(
        !ok && stderr.contains("3 services are selected: add --yes to go ahead, or --dry-run"),
        "{stderr}"
    );
    let preview = succeeded(run(d, &[&bulk[..], &["--dry-run"]].concat()).await);
    assert!(
        preview.contains("bulk-a.ro") && preview.contains("active → suspended"),
        "{preview}"
    );
    assert!(
        preview.contains("cannot suspend a service that is suspended"),
        "{preview}"
    );
    let shown: Value = serde_json::from_str(&succeeded(
        run(d, &["--json", "services", "show", "1"]).await,
    ))
    .unwrap();
    assert_eq!(shown["status"], "active", "a dry run changes nothing");

    // No worker runs: the jobs wait, and so does the command until its limit.
    let (ok, stdout, stderr) =
        run(d, &[&bulk[..], &["--yes", "--wait-timeout", "1"]].concat()).await;
    assert!(!ok, "jobs left unfinished are not a success: {stderr}");
    assert!(
        stderr.contains("3 services: 2 queued, 1 refused"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\r'),
        "no carriage returns into a pipe: {stderr:?}"
    );
    // The refused one is done at once; the others wait: one line, not one per poll.
    assert_eq!(stderr.matches("/3 done").count(), 1, "{stderr}");
    assert!(stderr.contains("1/3 done"), "{stderr}");
    assert!(
        stderr.contains("stopped waiting after --wait-timeout: 2 jobs go on"),
        "{stderr}"
    );
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        summary["unfinished"].as_array().map(Vec::len),
        Some(2),
        "{summary}"
    );
}

#[tokio::test]
async fn the_command_line_tour_works_on_postgres_too() {
    let db = drover_testkit::TestPostgres::create()
        .await
        .expect("PostgreSQL for tests");
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let mut all = vec!["--database-url", db.url(), "--json"];
        all.extend_from_slice(args);
        let all: Vec<String> = all.into_iter().map(str::to_owned).collect();
        let dir = dir.path().to_owned();
        async move {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            run(&dir, &refs).await
        }
    };
    let json = |text: &str| serde_json::from_str::<Value>(text).unwrap();

    let (ok, _, stderr) = cli(&["migrate"]).await;
    assert!(ok, "{stderr}");
    let (ok, out, err) = cli(&[
        "plans",
        "create",
        "--name",
        "Web",
        "--disk-quota-mb",
        "1024",
        "--feature",
        "web",
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(json(&out)["disk_quota_mb"], 1024);
    let (ok, _, err) = cli(&[
        "servers",
        "add",
        "--name",
        "vm1",
        "--hostname",
        "vm1.example.net",
        "--capacity",
        "50",
        "--credentials",
        "env:DROVER_SECRET_VM1",
    ])
    .await;
    assert!(ok, "{err}");
    let (ok, out, err) = cli(&["customers", "create", "--name", "Ana Pop"]).await;
    assert!(ok, "{err}");
    let customer = json(&out)["id"].to_string();

    let (ok, _, err) = cli(&[
        "services",
        "create",
        "--customer",
        &customer,
        "--plan",
        "1",
        "--domain",
        "exa_mple.ro",
    ])
    .await;
    assert!(!ok);
    assert!(err.contains("invalid domain name 'exa_mple.ro'"), "{err}");
    let (ok, _, err) = cli(&[
        "services",
        "create",
        "--customer",
        &customer,
        "--plan",
        "9",
        "--domain",
        "știri.ro",
    ])
    .await;
    assert!(!ok);
    assert!(err.contains("plan 9 does not exist"), "{err}");

    let (ok, out, err) = cli(&[
        "services",
        "create",
        "--customer",
        &customer,
        "--plan",
        "1",
        "--domain",
        "știri.ro",
    ])
    .await;
    assert!(ok, "{err}");
    let service = json(&out)["id"].to_string();
    let (ok, out, err) = cli(&["services", "activate", &service]).await;
    assert!(ok, "{err}");
    let outcome = json(&out);
    assert_eq!(outcome["service"]["status"], "active");
    let (ok, out, _) = cli(&["jobs", "list", "--status", "available"]).await;
    assert!(ok);
    assert_eq!(json(&out)[0]["id"], outcome["job_id"]);

    let (ok, _, err) = cli(&["services", "activate", &service]).await;
    assert!(!ok);
    assert!(
        err.contains("cannot activate a service that is active"),
        "{err}"
    );

    let (ok, out, err) = cli(&["audit", "verify"]).await;
    assert!(ok, "{err}");
    assert_eq!(json(&out)["intact"], true);
    let (ok, out, _) = cli(&["audit", "list", "--subject", &format!("service:{service}")]).await;
    assert!(ok);
    assert!(json(&out)[0]["actor"].as_str().unwrap().starts_with("cli:"));
}

#[tokio::test]
async fn an_operator_manages_dns_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let _worker = worker(dir.path());
    // Its own PowerDNS: `dns check` lists every zone a server has, and other tests' zones on
    // the shared servers would be extra.
    let pdns = tokio::task::spawn_blocking(drover_testkit::PowerDns::start)
        .await
        .unwrap()
        .expect("PowerDNS for tests");
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/pdns.key"), &pdns.api_key).unwrap();
    let key = format!("file:{}", dir.path().join("secrets/pdns.key").display());
    let dns_address = pdns.dns_addr.to_string();
    let zone = format!("cli-{}.ro", std::process::id());
    let d = dir.path();
    succeeded(
        run(
            d,
            &[
                "dns",
                "providers",
                "add",
                "--name",
                "pdns-a",
                "--kind",
                "powerdns",
                "--api-url",
                &pdns.api_url,
                "--credentials",
                &key,
                "--dns-address",
                &dns_address,
            ],
        )
        .await,
    );
    succeeded(
        run(
            d,
            &["dns", "zones", "create", &zone, "--provider", "pdns-a"],
        )
        .await,
    );
    succeeded(
        run(
            d,
            &[
                "dns",
                "records",
                "set",
                &zone,
                "@",
                "A",
                "192.0.2.80",
                "--ttl",
                "300",
            ],
        )
        .await,
    );
    succeeded(
        run(
            d,
            &[
                "dns",
                "records",
                "set",
                &zone,
                "www",
                "A",
                "192.0.2.80",
                "--ttl",
                "300",
            ],
        )
        .await,
    );
    // The worker's sync jobs carried the zone to PowerDNS (an apply now follows the same job,
    // or finds nothing to change), and a check finds it consistent.
    let applied = succeeded(run(d, &["dns", "apply", &zone, "--wait"]).await);
    assert!(
        applied.contains("pdns-a: applied") || applied.contains("pdns-a: unchanged"),
        "{applied}"
    );
    let check = succeeded(run(d, &["dns", "check", "--wait"]).await);
    assert!(
        check.contains("pdns-a: 1 zones checked, 0 missing, 0 extra, 0 different"),
        "{check}"
    );
    // A record deleted on PowerDNS behind drover's back: the plan puts it back, and so does
    // an apply, with one request.
    let deleted = http_client()
        .patch(format!(
            "{}/api/v1/servers/localhost/zones/{zone}.",
            pdns.api_url
        ))
        .header("X-API-Key", &pdns.api_key)
        .json(&json!({"rrsets": [
            {"name": format!("www.{zone}."), "type": "A", "changetype": "DELETE"}
        ]}))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{deleted:?}");
    let (success, _, stderr) = run(d, &["dns", "check", "--wait"]).await;
    assert!(!success && stderr.contains("not consistent"), "{stderr}");
    let (code, plan, _) = exits(d, &["dns", "plan", &zone, "--wait", "--detailed-exitcode"]).await;
    assert!(
        plan.contains("on pdns-a (update, 1 records served now)")
            && plan.contains(&format!("+ www.{zone} 300 A 192.0.2.80")),
        "{plan}"
    );
    assert_eq!(code, Some(2), "changes, with --detailed-exitcode");
    let applied = succeeded(run(d, &["dns", "apply", &zone, "--wait"]).await);
    assert!(
        applied.contains("pdns-a: applied (1 requests)"),
        "{applied}"
    );
    let (code, plan, _) = exits(d, &["dns", "plan", &zone, "--wait", "--detailed-exitcode"]).await;
    assert!(plan.contains("no changes"), "{plan}");
    assert_eq!(code, Some(0));
    let (code, _, stderr) = exits(d, &["dns", "plan", &zone, "--detailed-exitcode"]).await;
    assert!(
        code == Some(2) && stderr.contains("--wait"),
        "a usage error: {stderr}"
    );
    // Without --wait the job is queued and its id said.
    let queued = succeeded(run(d, &["dns", "plan", &zone]).await);
    assert!(
        queued.starts_with("queued job ") && queued.contains("drover jobs show"),
        "{queued}"
    );
    let queued: Value =
        serde_json::from_str(&succeeded(run(d, &["--json", "dns", "plan", &zone]).await)).unwrap();
    assert!(queued["job_id"].as_i64().is_some(), "{queued}");
    // Bad input is refused with what is accepted.
    let (success, _, stderr) = run(d, &["dns", "records", "set", &zone, "www", "MX", "mail"]).await;
    assert!(!success && stderr.contains("preference"), "{stderr}");
    let (success, _, stderr) = run(
        d,
        &["dns", "zones", "delete", &zone, "--confirm", "other.ro"],
    )
    .await;
    assert!(
        !success && stderr.contains("repeat its zone name cli-"),
        "{stderr}"
    );
    // The failover rewrite, in JSON, and what DNS serves right after.
    let report = succeeded(
        run(
            d,
            &[
                "--json",
                "dns",
                "rewrite",
                "--from",
                "192.0.2.80",
                "--to",
                "203.0.113.80",
                "--wait",
            ],
        )
        .await,
    );
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(
        (report["zones"].as_u64(), report["requests"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );
    let answer = drover_dns::query_served(
        pdns.dns_addr,
        &format!("www.{zone}"),
        drover_core::RecordType::A,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    assert_eq!(answer.records, ["203.0.113.80"]);
    succeeded(run(d, &["dns", "zones", "delete", &zone, "--confirm", &zone]).await);
}

#[tokio::test]
async fn an_operator_checks_servers_and_sets_maintenance() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sim = add_simulated_server(d).await;
    let _worker = worker(dir.path());
    let (success, _, stderr) = run(d, &["servers", "health", "1"]).await;
    assert!(
        !success && stderr.contains("not been checked yet"),
        "{stderr}"
    );
    let (code, checked, _) = exits(d, &["servers", "check", "--wait", "--detailed-exitcode"]).await;
    assert!(
        checked.contains("vm1") && checked.contains("healthy"),
        "{checked}"
    );
    assert_eq!(code, Some(0), "healthy: nothing to see");
    let health: Value = serde_json::from_str(&succeeded(
        run(d, &["--json", "servers", "health", "1"]).await,
    ))
    .unwrap();
    assert_eq!(
        (
            health["verdict"].as_str(),
            health["probe"]["pin_matches"].as_bool()
        ),
        (Some("healthy"), Some(true))
    );
    let on: Value = serde_json::from_str(&succeeded(
        run(d, &["servers", "maintenance", "1", "--on"]).await,
    ))
    .unwrap();
    assert_eq!(on["state"], "maintenance");
    sim.set_down(true);
    for _ in 0..4 {
        let (code, checked, stderr) = exits(d, &["servers", "check", "1", "--wait"]).await;
        assert!(checked.contains("unavailable"), "{checked}");
        assert_eq!(code, Some(1), "an unreachable server is an error");
        assert!(stderr.contains("vm1 could not be reached"), "{stderr}");
    }
    let shown: Value =
        serde_json::from_str(&succeeded(run(d, &["servers", "show", "1"]).await)).unwrap();
    assert_eq!(
        shown["state"], "maintenance",
        "checks never move a server out of maintenance"
    );
    let (success, _, stderr) = run(d, &["servers", "maintenance", "1"]).await;
    assert!(!success && stderr.contains("--on"), "{stderr}");
}

#[tokio::test]
async fn an_operator_scans_drift_and_deletes_an_orphan_only_when_asked() {
    use drover_testkit::virtualmin::SimDomain;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sim = add_simulated_server(d).await;
    let _worker = worker(d);
    sim.with_state(|s| {
        s.domains.insert(
            "stray.ro".into(),
            SimDomain {
                features: vec!["dir".into()],
                ..SimDomain::top_level("stray.ro", "stray")
            },
        )
    });
    let (code, scan, _) = exits(
        d,
        &[
            "drift",
            "scan",
            "--server",
            "1",
            "--wait",
            "--detailed-exitcode",
        ],
    )
    .await;
    assert!(
        scan.contains("orphan") && scan.contains("stray.ro"),
        "{scan}"
    );
    assert_eq!(code, Some(2), "findings, with --detailed-exitcode");
    let scan = succeeded(run(d, &["drift", "scan", "--server", "1", "--wait"]).await);
    assert!(
        scan.contains("stray.ro"),
        "without it, findings are a success: {scan}"
    );
    let plan = succeeded(
        run(
            d,
            &["drift", "repair", "--dry-run", "--server", "1", "--wait"],
        )
        .await,
    );
    assert!(
        plan.contains("would touch 0") && plan.contains("log"),
        "{plan}"
    );
    let (success, _, stderr) = run(
        d,
        &[
            "drift",
            "delete-orphan",
            "--server",
            "1",
            "stray.ro",
            "--confirm",
            "other.ro",
        ],
    )
    .await;
    assert!(!success && stderr.contains("repeat"), "{stderr}");
    assert!(
        sim.domain_names().contains(&"stray.ro".to_owned()),
        "still there"
    );
    // A domain the last scan did not find as an orphan: the job refuses it, and says why.
    let (success, _, stderr) = run(
        d,
        &[
            "drift",
            "delete-orphan",
            "--server",
            "1",
            "elsewhere.ro",
            "--confirm",
            "elsewhere.ro",
            "--wait",
        ],
    )
    .await;
    assert!(
        !success && stderr.contains("was discarded") && stderr.contains("not an orphan found"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("tried again"),
        "a refusal is not retried: {stderr}"
    );
    succeeded(
        run(
            d,
            &[
                "drift",
                "delete-orphan",
                "--server",
                "1",
                "stray.ro",
                "--confirm",
                "stray.ro",
                "--wait",
            ],
        )
        .await,
    );
    assert!(sim.domain_names().is_empty());
    let listed = succeeded(run(d, &["--json", "drift", "list"]).await);
    assert!(
        listed.contains("stray.ro"),
        "the finding stays until the next scan: {listed}"
    );
}

#[tokio::test]
async fn long_work_waits_for_a_worker_and_stops_waiting_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // No worker yet: the job is queued, and waiting stops at the limit without losing it.
    let (success, _, stderr) = run(d, &["usage", "sync", "--wait", "--wait-timeout", "1"]).await;
    assert!(
        !success
            && stderr.contains("is still available after --wait-timeout")
            && stderr.contains("drover jobs show"),
        "{stderr}"
    );
    let (success, _, stderr) = run(d, &["usage", "sync", "--wait-timeout", "1"]).await;
    assert!(
        !success && stderr.contains("--wait"),
        "the limit needs --wait: {stderr}"
    );
    // A worker takes it (and the one asked for now), and the answer comes.
    let _worker = worker(d);
    let synced = succeeded(run(d, &["usage", "sync", "--wait"]).await);
    assert!(
        synced.contains("no healthy or degraded server to sync"),
        "{synced}"
    );
}

#[tokio::test]
async fn an_operator_syncs_usage_and_hears_which_server_failed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sim = add_simulated_server(d).await;
    let _worker = worker(dir.path());
    let synced = succeeded(run(d, &["usage", "sync", "--wait"]).await);
    assert!(
        synced.contains("vm1: figures of 0 accounts recorded"),
        "{synced}"
    );
    assert!(succeeded(run(d, &["usage", "list"]).await).contains("(none)"));
    sim.set_down(true);
    let output = drover(d)
        .args(["usage", "sync", "--server", "1", "--wait"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a failed listing is a failed command"
    );
    assert!(
        stderr.contains("vm1: server vm1 could not be listed")
            && stderr.contains("figures are unchanged"),
        "{stderr}"
    );
}

/// An operator token must not be able to have drover send one of its own files (its key) to a
/// host of the token holder's choosing as a server's password.
#[tokio::test]
async fn credentials_cannot_send_drovers_own_files_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let served = serve_with(d, &[]).await;
    let token = served.printed[1].clone();
    let http = http_client();
    let post = |path: String, body: Value| {
        http.post(format!("{}/api/v1{path}", served.base))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    // The key holder's "server" is a Virtualmin that takes drover's key as its password: it
    // serves a call only if the key was sent.
    let key = std::fs::read_to_string(d.join("drover.key")).unwrap();
    let sim =
        drover_testkit::virtualmin::VirtualminSim::start(drover_testkit::virtualmin::SimConfig {
            tls: true,
            password: key.trim().to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    let server = |credentials: String| {
        let mut record = sim.server_record("evil", Path::new("/unused"), json!({"capacity": 1}));
        record["credentials"] = json!(credentials);
        record
    };
    for credentials in [
        format!("file:{}", d.join("drover.key").display()),
        format!("file:{}/secrets/../drover.key", d.display()),
        "env:DROVER_SEAL_KEY".to_owned(),
    ] {
        let refused = post("/servers".into(), server(credentials.clone()))
            .await
            .unwrap();
        assert_eq!(refused.status(), 422, "{credentials}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["field"], "credentials", "{body}");
    }
    // A link inside the secrets directory is followed no further than the directory.
    std::fs::create_dir_all(d.join("secrets")).unwrap();
    std::os::unix::fs::symlink(d.join("drover.key"), d.join("secrets/vm.password")).unwrap();
    let created = post(
        "/servers".into(),
        server(format!("file:{}/secrets/vm.password", d.display())),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let sync = post(format!("/servers/{id}/usage-sync"), json!({}))
        .await
        .unwrap();
    assert_eq!(sync.status(), 202);
    let job = sync.json::<Value>().await.unwrap()["job_id"]
        .as_i64()
        .unwrap();
    let job_url = format!("{}/api/v1/jobs/{job}", served.base);
    let read_job = || async {
        let answer = http.get(&job_url).bearer_auth(&token).send().await.unwrap();
        answer.json::<Value>().await.unwrap()
    };
    crate::until(
        "the usage sync has ended",
        Duration::from_secs(30),
        async || {
            let job = read_job().await;
            job["state"] == "completed" || job["state"] == "discarded"
        },
    )
    .await;
    let done = read_job().await;
    assert!(
        done.to_string()
            .contains("drover does not read as a secret"),
        "{done}"
    );
    assert!(
        sim.stats().calls_by_program.is_empty(),
        "the key was sent: {:?}",
        sim.stats().calls_by_program
    );
}

/// Sends `signal` (`TERM`, `INT`) to a running drover.
fn send(child: &Child, signal: &str) {
    let pid = child.id().expect("still running").to_string();
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// How long `child` takes to exit, and how it exits; `None` if not within `limit`.
async fn exit_within(
    child: &mut Child,
    limit: Duration,
) -> Option<(Duration, std::process::ExitStatus)> {
    let started = std::time::Instant::now();
    let status = tokio::time::timeout(limit, child.wait()).await.ok()?;
    Some((started.elapsed(), status.unwrap()))
}

#[tokio::test]
async fn a_stop_signal_lets_running_work_finish_within_its_grace_and_a_second_exits_at_once() {
    use drover_testkit::virtualmin::Fault;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sim = add_simulated_server(d).await;
    let job_state = async |job: &str| -> String {
        let shown = succeeded(run(d, &["--json", "jobs", "show", job]).await);
        serde_json::from_str::<Value>(&shown).unwrap()["job"]["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let queued_check = async || -> String {
        let out = succeeded(run(d, &["--json", "servers", "check"]).await);
        serde_json::from_str::<Value>(&out).unwrap()["job_id"].to_string()
    };
    let sim = &sim;
    let called = async |before: u64| {
        crate::until(
            "the job calls the server",
            Duration::from_secs(20),
            async || sim.stats().requests > before,
        )
        .await;
    };

    // Idle: the signal stops it at once, and it says all went well.
    let mut served = serve_with(d, &[("DROVER_SHUTDOWN_GRACE", "20")]).await;
    send(&served.child, "TERM");
    let (took, status) = exit_within(&mut served.child, Duration::from_secs(10))
        .await
        .expect("an idle drover stops at once");
    assert!(status.success(), "{status}");
    println!("idle: stopped in {took:?}");

    // A check under way when the signal comes is finished, then drover exits 0.
    sim.set_fault_rate(1.0, vec![Fault::Slow(Duration::from_secs(2))]);
    let mut served = serve_with(d, &[("DROVER_SHUTDOWN_GRACE", "20")]).await;
    let before = sim.stats().requests;
    let job = queued_check().await;
    called(before).await;
    send(&served.child, "TERM");
    let (took, status) = exit_within(&mut served.child, Duration::from_secs(20))
        .await
        .expect("drover stops once the running check ends");
    assert!(status.success(), "{status}");
    assert_eq!(
        job_state(&job).await,
        "completed",
        "the running job finished"
    );
    println!("a 2 s call under way: stopped in {took:?}");

    // A call that never ends is cancelled when the grace period is over; the job is not lost.
    sim.set_fault_rate(1.0, vec![Fault::Hang]);
    let mut served = serve_with(d, &[("DROVER_SHUTDOWN_GRACE", "1")]).await;
    let before = sim.stats().requests;
    let job = queued_check().await;
    called(before).await;
    send(&served.child, "TERM");
    let (took, status) = exit_within(&mut served.child, Duration::from_secs(8))
        .await
        .expect("drover stops soon after its grace period");
    assert!(status.success(), "{status}");
    let state = job_state(&job).await;
    assert!(
        ["available", "retryable", "scheduled"].contains(&state.as_str()),
        "the cancelled job waits to run again: {state}"
    );
    println!("a hung call, 1 s grace: stopped in {took:?}");

    // A second signal does not wait for the grace period.
    let mut served = serve_with(d, &[("DROVER_SHUTDOWN_GRACE", "60")]).await;
    let before = sim.stats().requests;
    queued_check().await;
    called(before).await;
    send(&served.child, "TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&served.child, "INT");
    let (_, status) = exit_within(&mut served.child, Duration::from_secs(5))
        .await
        .expect("a second signal exits at once");
    assert!(!status.success(), "{status}");
}

#[tokio::test]
async fn a_name_that_can_pass_for_another_is_warned_about_or_refused_at_both_doors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let refusing = [("DROVER_REFUSE_CONFUSABLE", "true")];
    let served = serve_with(d, &refusing).await;
    let token = served.printed[1].clone();
    for args in [
        &["plans", "create", "--name", "Web", "--feature", "web"][..],
        &["customers", "create", "--name", "Ana Pop"],
    ] {
        succeeded(run(d, args).await);
    }
    // A Cyrillic а before "pple".
    let lookalike = "\u{430}pple.com";
    let create = [
        "services",
        "create",
        "--customer",
        "1",
        "--plan",
        "1",
        "--domain",
    ];
    let output = drover(d)
        .args(create)
        .arg(lookalike)
        .envs(refusing)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let cli = String::from_utf8_lossy(&output.stderr);
    let answer = http_client()
        .post(format!("{}/api/v1/services", served.base))
        .bearer_auth(&token)
        .json(&json!({"customer_id": 1, "plan_id": 1, "domain": lookalike}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 422);
    let body: Value = answer.json().await.unwrap();
    let api = body["error"]["message"].as_str().unwrap();
    assert!(api.contains("mixes letters of different scripts"), "{api}");
    assert_eq!(cli.trim_end().strip_prefix("error: "), Some(api));
    // Without the setting it is created, with the warning.
    let mut args = create.to_vec();
    args.push(lookalike);
    let (ok, out, err) = run(d, &args).await;
    assert!(ok, "{err}");
    assert!(err.contains("warning: the label"), "{err}");
    assert!(out.contains("xn--pple-43d.com"), "{out}");
}

/// A server full of accounts drover never made: listed and proposed first (a plan drover lacks
/// refuses the adoption and is named), recorded on --apply with billing's mapping (nothing on
/// the server changes), then drift finds nothing, a second adoption finds nothing new, and the
/// adopted accounts are drover's to manage.
#[tokio::test]
async fn an_operator_adopts_a_server_full_of_accounts() {
    use drover_testkit::virtualmin::{Kind, SimDomain};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sim = add_simulated_server(d).await;
    let _worker = worker(d);
    sim.with_state(|s| {
        let mut add = |name: &str, user: &str, plan: &str, change: &dyn Fn(&mut SimDomain)| {
            let mut domain = SimDomain::top_level(name, user);
            domain.plan = plan.into();
            domain.email = Some(format!("{user}@clients.example.ro"));
            change(&mut domain);
            s.domains.insert(name.into(), domain);
        };
        // Made by hand: a mailbox with its customer's password, the account's own database
        // and one more.
        add("ana.ro", "ana", "Web", &|d| {
            d.mailboxes.insert("sales".into(), "Sales Desk".into());
            d.mailbox_hashes
                .insert("sales".into(), "$y$j9T$customers-own".into());
            d.databases = vec!["ana".into(), "ana_shop".into()];
        });
        add("xn--tiri-pxb.ro", "stiri", "Web", &|d| {
            d.disabled = Some("unpaid invoice".into());
        });
        add("old.ro", "old", "Legacy", &|_| {});
        add("shop.ana.ro", "ana", "Web", &|d| {
            d.kind = Kind::SubServer;
            d.parent = Some("ana.ro".into());
            d.mailboxes.insert("orders".into(), String::new());
            d.mailbox_hashes
                .insert("orders".into(), "$y$j9T$orders".into());
        });
    });
    succeeded(run(d, &["plans", "create", "--name", "Web"]).await);

    let (success, _, stderr) = run(d, &["servers", "adopt", "1", "--apply", "--wait"]).await;
    assert!(
        !success && stderr.contains("no drover plan for 'Legacy'"),
        "{stderr}"
    );
    let proposal = succeeded(run(d, &["servers", "adopt", "1", "--dry-run", "--wait"]).await);
    assert!(
        proposal.contains("adopt ana.ro (user ana) for new customer 'ana@clients.example.ro'")
            && proposal.contains("adopt știri.ro (user stiri)")
            && proposal.contains("suspended (unpaid invoice)")
            && proposal.contains("--apply would be refused: no drover plan for 'Legacy'"),
        "{proposal}"
    );
    assert!(
        !proposal.contains("adopt shop.ana.ro") && !proposal.contains("skip shop.ana.ro"),
        "part of ana.ro: {proposal}"
    );

    // Billing's mapping: its customers, and a drover plan for the legacy one.
    let map = d.join("billing.csv");
    std::fs::write(
        &map,
        "domain,customer,plan,name\n\
         ana.ro,WHMCS-1,,Ana Pop\n\
         știri.ro,WHMCS-2,,\"Știri, SRL\"\n\
         old.ro,WHMCS-1,Web,Ana Pop\n",
    )
    .unwrap();
    let map = map.to_str().unwrap();
    // The server's Web plan has a quota drover's has not: drover's would replace it.
    sim.with_state(|s| {
        let mut web = drover_testkit::virtualmin::SimPlan::new("Web");
        web.quota_blocks = Some(1024);
        s.plans.push(web);
    });
    let adopt = ["servers", "adopt", "1", "--apply", "--map", map, "--wait"];
    let (success, _, stderr) = run(d, &adopt).await;
    assert!(
        !success && stderr.contains("plans 'Web' have other limits or features than drover's"),
        "{stderr}"
    );
    let applied = succeeded(run(d, &[&adopt[..], &["--accept-plan-changes"]].concat()).await);
    assert!(
        applied.contains("3 to adopt (2 new customers)")
            && applied.contains("drift will find plan_mismatch")
            && applied.contains("with mailboxes: sales; databases: ana_shop")
            && applied.contains("leave mailbox orders@shop.ana.ro to the server"),
        "{applied}"
    );
    // Only reads reached the server (the worker's health checks call `info`).
    let programs = sim.stats().calls_by_program;
    assert!(
        programs
            .keys()
            .all(|p| p.starts_with("list-") || p == "info"),
        "adoption changes nothing on the server: {programs:?}"
    );
    let accounts: Value =
        serde_json::from_str(&succeeded(run(d, &["--json", "accounts", "list"]).await)).unwrap();
    let accounts = accounts.as_array().unwrap();
    assert_eq!(accounts.len(), 3, "{accounts:?}");
    for account in accounts {
        assert_eq!(account["server_id"], 1);
        assert_eq!(account["protected_from_deletion"], true);
        assert_eq!(account["has_sealed_password"], false);
    }
    let stiri = accounts
        .iter()
        .find(|a| a["domain_unicode"] == "știri.ro")
        .unwrap();
    assert_eq!(stiri["desired_state"], "disabled");
    assert_eq!(stiri["suspend_reason"], "unpaid invoice");
    let customers = succeeded(run(d, &["--json", "customers", "list"]).await);
    assert!(
        customers.contains("WHMCS-1") && customers.contains("Știri, SRL"),
        "{customers}"
    );

    let again = succeeded(
        run(
            d,
            &["servers", "adopt", "1", "--dry-run", "--map", map, "--wait"],
        )
        .await,
    );
    assert!(
        again.contains("0 to adopt (0 new customers), 0 skipped, 3 drover holds already"),
        "{again}"
    );
    // old.ro is on the server's Legacy plan and drover's Web: the one difference, as foretold.
    let scan = succeeded(run(d, &["--json", "drift", "scan", "--server", "1", "--wait"]).await);
    let findings: Value = serde_json::from_str(&scan).unwrap();
    let kinds: Vec<(&str, &str)> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["domain"].as_str().unwrap(), f["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("old.ro", "plan_mismatch")], "{scan}");

    // Its mailbox and database are drover's records now; a mailbox lost on the server comes
    // back with the customer's own password (the hash the server showed).
    let ana = accounts.iter().find(|a| a["domain"] == "ana.ro").unwrap();
    let ana_id = ana["id"].to_string();
    let mailboxes = succeeded(run(d, &["--json", "mailboxes", "list", &ana_id]).await);
    assert!(
        mailboxes.contains("\"sales\"") && mailboxes.contains("Sales Desk"),
        "{mailboxes}"
    );
    let databases = succeeded(run(d, &["--json", "databases", "list", &ana_id]).await);
    assert!(
        databases.contains("ana_shop") && !databases.contains("\"ana\""),
        "{databases}"
    );
    sim.with_state(|s| {
        let domain = s.domains.get_mut("ana.ro").unwrap();
        domain.mailboxes.remove("sales");
        domain.mailbox_hashes.remove("sales");
    });
    // Two of three accounts differ (old.ro's plan too): more than drift's limit, so forced.
    let repair = ["drift", "repair", "--server", "1", "--force", "--wait"];
    let repair = succeeded(run(d, &repair).await);
    assert!(repair.contains("mailbox_missing"), "{repair}");
    crate::until(
        "sales@ana.ro is made again",
        Duration::from_secs(20),
        async || sim.with_state(|s| s.domains["ana.ro"].mailboxes.contains_key("sales")),
    )
    .await;
    let hash = sim.with_state(|s| s.domains["ana.ro"].mailbox_hashes.get("sales").cloned());
    assert_eq!(
        hash.as_deref(),
        Some("$y$j9T$customers-own"),
        "made with the hash the server showed"
    );

    // Adopted accounts are drover's: billing's unsuspension reaches the server.
    let service = stiri["service_id"].to_string();
    succeeded(run(d, &["services", "unsuspend", &service]).await);
    crate::until(
        "știri.ro is enabled on the server",
        Duration::from_secs(20),
        async || sim.with_state(|s| s.domains["xn--tiri-pxb.ro"].disabled.is_none()),
    )
    .await;
}

/// A stop signal in the middle of a bulk run loses nothing. The worker stopped mid-way finishes
/// what it runs (or hands it back); the bulk command stopped while it waits says which jobs go
/// on; a new worker carries them out, every service ends suspended on its server. A run stopped
/// while it queues leaves each service either changed or as it was, and names the latter.
#[tokio::test]
async fn a_stop_signal_during_a_bulk_run_loses_nothing() {
    use drover_testkit::virtualmin::Fault;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sim = add_simulated_server(d).await;
    let domains: Vec<String> = (1..=6).map(|n| format!("bulk{n}.ro")).collect();
    sell(d, &domains.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let start_worker = || {
        drover(d)
            .args(["worker", "--log-format", "text"])
            .env("VIRTUALMIN_RETRY_DELAY", "0.01")
            .env("DROVER_SHUTDOWN_GRACE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut worker = start_worker();
    for id in 1..=6 {
        succeeded(run(d, &["services", "activate", &id.to_string()]).await);
    }
    let sim = &sim;
    crate::until(
        "every account is created",
        Duration::from_secs(60),
        async || sim.domain_names().len() == 6,
    )
    .await;

    // Each call now takes 3 s, longer than the worker's grace: the run is under way when the
    // signals come, and the worker hands back what it has not finished.
    sim.set_fault_rate(1.0, vec![Fault::Slow(Duration::from_secs(3))]);
    let mut bulk = drover(d)
        .args([
            "services",
            "bulk",
            "suspend",
            "--customer",
            "1",
            "--yes",
            "--reason",
            "audit",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let disables = || {
        domains
            .iter()
            .map(|domain| sim.calls_naming(domain, "disable-domain"))
            .sum::<u64>()
    };
    crate::until(
        "a disable reaches the server",
        Duration::from_secs(30),
        async || disables() > 0,
    )
    .await;
    send(&worker, "TERM");
    let (_, status) = exit_within(&mut worker, Duration::from_secs(10))
        .await
        .expect("the worker stops within its grace");
    assert!(status.success(), "{status}");
    send(&bulk, "TERM");
    let (_, status) = exit_within(&mut bulk, Duration::from_secs(10))
        .await
        .expect("the bulk command stops waiting");
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(bulk.stderr.as_mut().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert!(
        stderr.contains("6 services: 6 queued, 0 refused")
            && stderr.contains("stopped waiting (interrupted):"),
        "{stderr}"
    );

    sim.set_fault_rate(0.0, Vec::new());
    let _worker = start_worker();
    crate::until(
        "every account is disabled",
        Duration::from_secs(60),
        async || sim.with_state(|s| s.domains.values().all(|d| d.disabled.is_some())),
    )
    .await;
    // Every job ended well: none gave up or was lost between the two workers.
    crate::until("every job has ended", Duration::from_secs(30), async || {
        let jobs: Value =
            serde_json::from_str(&succeeded(run(d, &["--json", "jobs", "list"]).await)).unwrap();
        jobs.as_array()
            .unwrap()
            .iter()
            .filter(|j| j["kind"] == "converge_account")
            .all(|j| j["state"] == "completed")
    })
    .await;

    // Stopped before its first change: nothing is changed, and each service is named.
    let store = drover_store::open(&format!("sqlite://{}", d.join("drover.db").display()))
        .await
        .unwrap();
    let stop = drover::bulk::Interrupt::default();
    stop.raise();
    let ids: Vec<drover_core::ServiceId> = (1..=6).map(drover_core::ServiceId).collect();
    let queued = drover::bulk::queue(
        &*store,
        &crate::setup_ctx(),
        &drover::bulk::BulkAction::Unsuspend,
        &ids,
        &stop,
    )
    .await;
    assert!(queued.queued.is_empty() && queued.refused.is_empty());
    assert_eq!(queued.not_changed, ids);
    let still = store.service(ids[0]).await.unwrap();
    assert_eq!(still.status, drover_core::ServiceStatus::Suspended);
}

/// An account's mailboxes from the command line: the password on standard input, the rules
/// with their reasons, the name repeated to delete one.
#[tokio::test]
async fn an_operator_manages_mailboxes_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sell(d, &["posta.ro"]).await;
    let create = ["mailboxes", "create", "1", "ana", "--real-name", "Ana Pop"];
    let created = succeeded(with_stdin(d, &create, &[], "Mail-passw0rd\n").await);
    assert!(created.contains(r#""password_pending": true"#), "{created}");
    for (input, wanted) in [
        ("short\n", "invalid password"),
        ("Mail-passw0rd\n", "has a mailbox named 'ana' already"),
    ] {
        let (ok, _, stderr) = with_stdin(d, &create, &[], input).await;
        assert!(!ok && stderr.contains(wanted), "{stderr}");
    }
    let update = ["mailboxes", "update", "1", "ana", "--real-name", "Ana Popa"];
    let updated = succeeded(run(d, &update).await);
    assert!(updated.contains(r#""real_name": "Ana Popa""#), "{updated}");
    let listed = succeeded(run(d, &["mailboxes", "list", "1"]).await);
    assert!(listed.contains("Ana Popa"), "{listed}");
    // A quota of its own, and back to the plan's.
    let own = succeeded(run(d, &["mailboxes", "update", "1", "ana", "--quota-mb", "50"]).await);
    assert!(own.contains(r#""quota_mb": 50"#), "{own}");
    let plan = succeeded(
        run(
            d,
            &["mailboxes", "update", "1", "ana", "--quota-mb", "plan"],
        )
        .await,
    );
    assert!(plan.contains(r#""quota_mb": null"#), "{plan}");
    let (ok, _, stderr) = run(
        d,
        &["mailboxes", "update", "1", "ana", "--quota-mb", "lots"],
    )
    .await;
    assert!(
        !ok && stderr.contains("'lots' is not a number of MB, nor `plan`"),
        "{stderr}"
    );
    let wrong = ["mailboxes", "delete", "1", "ana", "--confirm", "ion"];
    let (ok, _, stderr) = run(d, &wrong).await;
    assert!(
        !ok && stderr.contains("repeat its mailbox name ana"),
        "{stderr}"
    );
    let deleted = succeeded(run(d, &["mailboxes", "delete", "1", "ana", "--confirm", "ana"]).await);
    assert!(deleted.contains(r#""deleting": true"#), "{deleted}");
}

#[tokio::test]
async fn an_operator_manages_databases_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sell(d, &["baze.ro"]).await;
    let created = succeeded(run(d, &["databases", "create", "1", "shop"]).await);
    assert!(created.contains(r#""name": "baze_shop""#), "{created}");
    assert!(created.contains(r#""type": "mysql""#), "{created}");
    for (args, wanted) in [
        (
            &["databases", "create", "1", "baze_shop"][..],
            "a database named 'baze_shop' is recorded already",
        ),
        (&["databases", "create", "1", "bad-name"], "database name"),
        (
            &["databases", "create", "1", "pg", "--type", "postgres"],
            "feature postgres",
        ),
    ] {
        let (ok, _, stderr) = run(d, args).await;
        assert!(!ok && stderr.contains(wanted), "{args:?}: {stderr}");
    }
    let listed = succeeded(run(d, &["databases", "list", "1"]).await);
    assert!(listed.contains("baze_shop"), "{listed}");
    let (ok, _, stderr) = run(
        d,
        &["databases", "delete", "1", "shop", "--confirm", "shop"],
    )
    .await;
    assert!(
        !ok && stderr.contains("repeat its database name baze_shop"),
        "{stderr}"
    );
    let deleted = succeeded(
        run(
            d,
            &["databases", "delete", "1", "shop", "--confirm", "baze_shop"],
        )
        .await,
    );
    assert!(deleted.contains(r#""deleting": true"#), "{deleted}");
}

#[tokio::test]
async fn an_operator_asks_for_watches_and_forgets_a_certificate_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sell(d, &["sigur.ro"]).await;
    // A pending service's certificate waits for its activation.
    let (ok, asked, said) = run(d, &["certificates", "request", "1"]).await;
    assert!(ok, "{said}");
    assert!(asked.contains(r#""state": "requested""#), "{asked}");
    assert!(
        said.contains("requests it once the account's DNS points at its server"),
        "{said}"
    );
    let listed = succeeded(run(d, &["certificates", "list", "--state", "requested"]).await);
    assert!(
        listed.contains("sigur.ro") && listed.contains("requested"),
        "{listed}"
    );
    let (ok, _, stderr) = run(d, &["certificates", "list", "--state", "valid"]).await;
    assert!(
        !ok && stderr.contains("requested, issued or failed"),
        "{stderr}"
    );
    let none = succeeded(run(d, &["certificates", "list", "--expiring-within-days", "30"]).await);
    assert!(!none.contains("sigur.ro"), "{none}");
    succeeded(run(d, &["certificates", "forget", "1"]).await);
    let (ok, _, stderr) = run(d, &["certificates", "show", "1"]).await;
    assert!(
        !ok && stderr.contains("a certificate request for sigur.ro does not exist"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_operator_sets_up_backup_destinations_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sell(d, &["arhiva.ro"]).await;
    let (ok, _, stderr) = run(
        d,
        &[
            "backups",
            "destinations",
            "add",
            "local",
            "--location",
            "var/backups",
        ],
    )
    .await;
    assert!(
        !ok && stderr.contains("an absolute directory on the server"),
        "{stderr}"
    );
    let added = succeeded(
        run(
            d,
            &[
                "backups",
                "destinations",
                "add",
                "local",
                "--location",
                "/var/backups/",
                "--default",
            ],
        )
        .await,
    );
    assert!(added.contains(r#""location": "/var/backups""#), "{added}");
    let listed = succeeded(run(d, &["backups", "destinations", "list"]).await);
    assert!(
        listed.contains("local") && listed.contains("true"),
        "{listed}"
    );
    let changed = succeeded(
        run(
            d,
            &[
                "backups",
                "destinations",
                "update",
                "1",
                "--keep-daily",
                "2",
                "--default",
                "false",
            ],
        )
        .await,
    );
    assert!(
        changed.contains(r#""keep_daily": 2"#) && changed.contains(r#""default": false"#),
        "{changed}"
    );
    let (ok, _, stderr) = run(
        d,
        &[
            "backups",
            "destinations",
            "update",
            "1",
            "--keep-daily",
            "0",
            "--keep-weekly",
            "0",
        ],
    )
    .await;
    assert!(
        !ok && stderr.contains("at least 1 day or 1 week kept"),
        "{stderr}"
    );
    // A pending service's account is on no server: nothing to back up, nothing queued.
    let (ok, _, stderr) = run(d, &["backups", "run", "1"]).await;
    assert!(
        !ok && stderr.contains("arhiva.ro cannot be backed up: the account is on no server yet"),
        "{stderr}"
    );
    let last = succeeded(run(d, &["backups", "last", "1"]).await);
    assert!(last.contains(r#""last_good": null"#), "{last}");
    let (ok, _, stderr) = run(d, &["backups", "list", "--state", "lost"]).await;
    assert!(
        !ok && stderr.contains("running, succeeded, failed or pruned"),
        "{stderr}"
    );
    succeeded(run(d, &["backups", "destinations", "delete", "1"]).await);
}

#[tokio::test]
async fn an_operator_manages_alias_domains_and_subservers_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sell(d, &["firma.ro", "alta.ro"]).await;
    let created = succeeded(run(d, &["aliases", "create", "1", "știri-firma.ro"]).await);
    assert!(
        created.contains(r#""domain": "xn--tiri-firma-txd.ro""#),
        "{created}"
    );
    for (args, wanted) in [
        (
            &["aliases", "create", "2", "știri-firma.ro"][..],
            "already account 1's alias",
        ),
        (&["aliases", "create", "1", "alta.ro"], "already taken"),
        (&["aliases", "create", "1", "www.firma.ro"], "sub-server"),
    ] {
        let (ok, _, stderr) = run(d, args).await;
        assert!(!ok && stderr.contains(wanted), "{args:?}: {stderr}");
    }
    let listed = succeeded(run(d, &["aliases", "list", "1"]).await);
    assert!(listed.contains("xn--tiri-firma-txd.ro"), "{listed}");
    let wrong = [
        "aliases",
        "delete",
        "1",
        "știri-firma.ro",
        "--confirm",
        "firma.ro",
    ];
    let (ok, _, stderr) = run(d, &wrong).await;
    assert!(!ok && stderr.contains("știri-firma.ro"), "{stderr}");
    let right = [
        "aliases",
        "delete",
        "1",
        "știri-firma.ro",
        "--confirm",
        "xn--tiri-firma-txd.ro",
    ];
    let deleted = succeeded(run(d, &right).await);
    assert!(deleted.contains(r#""deleting": true"#), "{deleted}");
    let created = succeeded(run(d, &["subservers", "create", "1", "shop"]).await);
    assert!(
        created.contains(r#""domain": "shop.firma.ro""#),
        "{created}"
    );
    for (args, wanted) in [
        (
            &["subservers", "create", "1", "alta.ro"][..],
            "a name under firma.ro",
        ),
        (&["subservers", "create", "1", "mail"], "not www or mail"),
        (
            &["aliases", "create", "2", "shop.firma.ro"],
            "already account 1's sub-server",
        ),
        (
            &["aliases", "create", "2", "blog.firma.ro"],
            "under firma.ro, account 1's domain",
        ),
    ] {
        let (ok, _, stderr) = run(d, args).await;
        assert!(!ok && stderr.contains(wanted), "{args:?}: {stderr}");
    }
    let listed = succeeded(run(d, &["subservers", "list", "1"]).await);
    assert!(listed.contains("shop.firma.ro"), "{listed}");
    let delete = [
        "subservers",
        "delete",
        "1",
        "shop",
        "--confirm",
        "shop.firma.ro",
    ];
    let deleted = succeeded(run(d, &delete).await);
    assert!(deleted.contains(r#""deleting": true"#), "{deleted}");
}

#[tokio::test]
async fn an_operator_plans_a_bootstrap_starts_it_and_looks_at_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sources = crate::bootstrap::local_copy(d);
    let sources = sources.display().to_string();
    let env = [("DROVER_VIRTUALMIN_SOURCES", sources.as_str())];
    let key = format!("file:{}", d.join("secrets/vm9.ssh-key").display());
    let host_key = format!("SHA256:{}", "E".repeat(43));
    let bootstrap = |ssh: &'static str, extra: &'static [&'static str]| {
        let mut args = vec![
            "servers",
            "bootstrap",
            "--ssh",
            ssh,
            "--ssh-key",
            &key,
            "--ssh-host-key",
            &host_key,
            "--name",
            "vm9",
            "--capacity",
            "50",
        ];
        args.extend_from_slice(extra);
        args
    };
    let planned = succeeded(
        run_with(
            d,
            &bootstrap(
                "root@127.0.0.1:1",
                &["--allow-from", "198.51.100.7", "--firewall", "--dry-run"],
            ),
            &env,
        )
        .await,
    );
    for shown in [
        "dry run: 10 steps",
        "1. check-system:",
        "upload: webmin-2.660-d16d9ea205a2.tar.xz -> /root/drover-bootstrap/",
        "sha256sum --quiet -c SHA256SUMS",
        "drover:$hash:0::allow 198.51.100.7/32",
        "tcp dport { 1, 10000 } drop",
        "(the Webmin user's password is given on the standard input)",
        "10. first-health-check:",
    ] {
        assert!(planned.contains(shown), "{shown} in:\n{planned}");
    }
    let listed = succeeded(run(d, &["servers", "bootstraps"]).await);
    assert!(listed.ends_with("(none)\n"), "nothing recorded: {listed}");

    let (success, _, stderr) = run_with(d, &bootstrap("vm9.example.net", &[]), &env).await;
    assert!(!success && stderr.contains("USER@HOST"), "{stderr}");
    let (success, _, stderr) =
        run_with(d, &bootstrap("root@127.0.0.1", &["--firewall"]), &env).await;
    assert!(!success && stderr.contains("--allow-from"), "{stderr}");

    // Started with no worker running: recorded, its job waiting, every step waiting.
    let started = succeeded(run_with(d, &bootstrap("root@127.0.0.1:1", &[]), &env).await);
    assert!(
        started.contains("bootstrap 1 of vm9 started (job"),
        "{started}"
    );
    let shown = succeeded(run(d, &["servers", "bootstraps", "1"]).await);
    assert!(
        shown.contains("bootstrap 1 of vm9 (127.0.0.1): running"),
        "{shown}"
    );
    assert!(shown.contains("  check-system: waiting"), "{shown}");
    assert!(shown.contains("commands run (0):"), "{shown}");
    let (success, _, stderr) = run_with(d, &bootstrap("root@127.0.0.1:1", &[]), &env).await;
    assert!(
        !success && stderr.contains("bootstrap 1 of vm9 is under way"),
        "{stderr}"
    );
}
