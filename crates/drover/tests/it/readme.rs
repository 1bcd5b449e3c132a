//! The README's tours, run as written by bash against the real `drover` binary: the HTTP tour
//! with the "mistakes" that follow it, the command-line tour, and the one with the simulator.
//! Only what a reader fills in is filled in: the token `serve` printed, its address, the
//! certificate's SHA-256, and the simulator's port (another test may hold 10443 here).

use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_testkit::virtualmin::{SimConfig, VirtualminSim};
use serde_json::Value;

use crate::command::{Served, serve_with, without_drover_settings};
use crate::until;

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    std::fs::read_to_string(path).unwrap()
}

/// The README's `sh` block that holds `marker`.
fn block(readme: &str, marker: &str) -> String {
    readme
        .split("```sh\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .find(|b| b.contains(marker))
        .unwrap_or_else(|| panic!("the README has no sh block with {marker:?}"))
        .to_owned()
}

/// The directory of the `drover` binary the tests build, for `PATH`.
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_drover"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Runs `script` with bash in `dir`, `drover` on the PATH and no drover settings inherited.
async fn bash(dir: &Path, script: &str) -> (bool, String, String) {
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = tokio::process::Command::new("bash");
    command
        .args(["-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .kill_on_drop(true);
    without_drover_settings(&mut command);
    let output = command.output().await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every `curl` of a script reports its status and body on one line of its own.
const CURL_REPORTS: &str = r#"curl() {
  local out
  out=$(command curl -sS -w '\n%{http_code}' "$@") || return 1
  printf '@@ %s %s\n' "${out##*$'\n'}" "$(printf '%s' "${out%$'\n'*}" | tr -d '\n')"
}
"#;

/// `(status, body)` of each curl, in order.
fn curl_reports(stdout: &str) -> Vec<(u16, Value)> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("@@ "))
        .map(|rest| {
            let (status, body) = rest.split_once(' ').unwrap_or((rest, ""));
            (
                status.parse().unwrap(),
                serde_json::from_str(body).unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// The first two lines `serve` prints on a first start end with the token.
fn token(served: &Served) -> String {
    served
        .printed
        .iter()
        .find(|l| l.starts_with("drv_"))
        .expect("a first start prints a token")
        .clone()
}

#[tokio::test]
async fn the_http_tour_and_its_mistakes_run_as_written() {
    let readme = readme();
    let tour = block(&readme, "T=drv_");
    let mistakes = block(&readme, "exa_mple.ro");
    let dir = tempfile::tempdir().unwrap();
    let served = serve_with(dir.path(), &[]).await;
    let tour = tour
        .replace("T=drv_…", &format!("T={}", token(&served)))
        .replace("http://127.0.0.1:8080", &served.base);
    let script = format!("set -e\n{CURL_REPORTS}{tour}{mistakes}");
    let (ok, stdout, stderr) = bash(dir.path(), &script).await;
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    let reports = curl_reports(&stdout);
    let tour_calls = tour.lines().filter(|l| l.starts_with("curl ")).count();
    assert_eq!(
        reports.len(),
        tour_calls + mistakes.lines().filter(|l| l.starts_with("curl ")).count()
    );
    for (n, (status, body)) in reports[..tour_calls].iter().enumerate() {
        assert!(
            (200..300).contains(status),
            "the tour's curl {}: {status} {body}",
            n + 1
        );
    }
    // Each mistake answers what the README's comment under it says.
    let expected: Vec<(u16, Value)> = mistakes
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .map(|said| {
            let (status, body) = said.split_once(' ').unwrap();
            (status.parse().unwrap(), serde_json::from_str(body).unwrap())
        })
        .collect();
    assert_eq!(reports[tour_calls..], expected[..]);
}

#[tokio::test]
async fn the_command_line_tour_runs_as_written() {
    let readme = readme();
    let tour = block(&readme, "drover audit verify");
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = bash(dir.path(), &format!("set -e\n{tour}")).await;
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("intact"),
        "the audit chain checks: {stdout}"
    );
}

#[tokio::test]
async fn the_tour_with_the_simulator_runs_as_written() {
    let readme = readme();
    let tour = block(&readme, "virtualmin-sim");
    let mut lines = tour.lines().peekable();
    // The simulator as its first command starts it (here in-process, on a free port).
    let start: String =
        std::iter::from_fn(|| lines.next_if(|l| l.starts_with("cargo run") || l.starts_with("  ")))
            .collect::<Vec<_>>()
            .join("\n");
    assert!(
        start.contains("--pass secret") && start.contains("--plan \"Web 10GB\""),
        "{start}"
    );
    let sim = VirtualminSim::start(SimConfig {
        tls: true,
        password: "secret".into(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    sim.with_state(|s| s.plans.push("Web 10GB".into()));
    let rest = lines
        .collect::<Vec<_>>()
        .join("\n")
        .replace("<the printed SHA-256>", &sim.certificate_sha256().unwrap())
        .replace("--port 10443", &format!("--port {}", sim.addr().port()));
    let dir = tempfile::tempdir().unwrap();
    // "with drover serve running": started before the commands, on the same database.
    let served = serve_with(dir.path(), &[]).await;
    let (ok, stdout, stderr) = bash(dir.path(), &format!("set -e\n{rest}")).await;
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    until(
        "the account is created on the simulator",
        Duration::from_secs(30),
        async || sim.with_state(|s| s.domains.contains_key("xn--tiri-pxb.ro")),
    )
    .await;
    // The job that did it is counted by kind and outcome.
    let metrics_url = format!("{}/metrics", served.base);
    until(
        "the converge job is counted",
        Duration::from_secs(10),
        async || {
            let metrics = crate::command::http_client()
                .get(&metrics_url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            metrics.contains("drover_jobs_total{kind=\"converge_account\",outcome=\"completed\"} 1")
                && metrics.contains("drover_queue_jobs{queue=\"converge\",state=\"completed\"} 1")
        },
    )
    .await;
}
