//! The README's tour, pasted into bash top to bottom as a newcomer would, against the real
//! `drover` binary: its HTTP calls succeed, its mistakes answer what the README says, and the
//! account reaches the simulator. Only what cannot run here as written is filled in: the build,
//! the simulator's process and the two ports.

use std::path::{Path, PathBuf};

use drover_testkit::virtualmin::{SimConfig, VirtualminSim};
use serde_json::Value;

use crate::command::without_drover_settings;

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
  out=$(command curl -sS "$@" -w '\n%{http_code}') || return 1
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
/// The sh blocks of the README's section `heading`, in order, as one script.
fn section_script(readme: &str, heading: &str) -> String {
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("the README has no section {heading:?}"));
    let section = &readme[start + 1..];
    let section = &section[..section[1..]
        .find("\n## ")
        .map_or(section.len(), |end| end + 1)];
    section
        .split("```sh\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect()
}

/// The tour pasted into bash top to bottom, as a newcomer would. Filled in: the build (the
/// tests built drover), the simulator (started here, in-process; its stand-in prints what it
/// prints), and free ports for both (another test may hold 8080 or 10443).
#[tokio::test]
async fn the_tour_runs_top_to_bottom_as_written() {
    let readme = readme();
    let tour = section_script(&readme, "## A short tour");
    let sim = VirtualminSim::start(SimConfig {
        tls: true,
        password: "secret".into(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let drover_addr = listen.local_addr().unwrap().to_string();
    drop(listen);
    let mut script = String::new();
    for line in tour.lines() {
        if line.starts_with("cargo build ") {
            continue;
        }
        if line.starts_with("virtualmin-sim --pass secret --tls") {
            script.push_str(&format!(
                "printf 'virtualmin-sim listening on {}/virtual-server/remote.cgi\\ncertificate \
                 SHA-256: {}\\n' > sim.out; sleep 600 &\n",
                sim.url(),
                sim.certificate_sha256().unwrap()
            ));
            continue;
        }
        script.push_str(
            &line
                .replace("127.0.0.1:8080", &drover_addr)
                .replace("--port 10443", &format!("--port {}", sim.addr().port())),
        );
        script.push('\n');
    }
    let mistakes = block(&readme, "exa_mple.ro");
    let dir = tempfile::tempdir().unwrap();
    let script =
        format!("set -e\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{CURL_REPORTS}{script}");
    let (ok, stdout, stderr) = bash(dir.path(), &script).await;
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");

    let reports = curl_reports(&stdout);
    let expected: Vec<(u16, Value)> = mistakes
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .map(|said| {
            let (status, body) = said.split_once(' ').unwrap();
            (status.parse().unwrap(), serde_json::from_str(body).unwrap())
        })
        .collect();
    let (tour_calls, mistake_calls) = reports.split_at(reports.len() - expected.len());
    for (n, (status, body)) in tour_calls.iter().enumerate() {
        assert!(
            (200..300).contains(status),
            "the tour's curl {}: {status} {body}",
            n + 1
        );
    }
    // Each mistake answers what the README's comment under it says.
    assert_eq!(mistake_calls, &expected[..]);
    assert!(
        stdout.contains("intact"),
        "the audit chain checks: {stdout}"
    );
    // The tour waited for the first account's job: it is on the server. (Later moves may be
    // under way when the tour stops drover; they resume with the next start.)
    assert!(sim.with_state(|s| s.domains.contains_key("xn--tiri-pxb.ro")));
}

/// The README's bootstrap dry run, pasted into bash as written, with only the folder of the
/// archives filled in (a local copy made here: the archives are not in the checkout).
#[tokio::test]
async fn the_bootstrap_dry_run_runs_as_written() {
    let readme = readme();
    let shown = block(&readme, "servers bootstrap --dry-run");
    let dir = tempfile::tempdir().unwrap();
    let sources = crate::bootstrap::local_copy(dir.path());
    let script = format!(
        "set -e\n{}",
        shown.replace("../shared/real-virtualmin", &sources.display().to_string())
    );
    let (ok, stdout, stderr) = bash(dir.path(), &script).await;
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.starts_with("dry run: 11 steps"), "{stdout}");
    for step in [
        "1. check-system:",
        "6. firewall:",
        "7. fail2ban:",
        "11. first-health-check:",
    ] {
        assert!(stdout.contains(step), "{step} in {stdout}");
    }
    let (_, listed, _) = bash(dir.path(), "drover servers bootstraps").await;
    assert!(listed.ends_with("(none)\n"), "nothing recorded: {listed}");
}
