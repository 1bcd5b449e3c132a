//! `drover doctor`: what stands between this installation and working, each with its fix. The
//! configuration, the database and the operator key are read here; servers are reached the way
//! all remote work is, by a health-check job that a worker runs, so a missing worker is itself
//! a finding.

use std::time::Duration;

use crate::commands::Requested;
use drover_core::CredentialRef;
use drover_store::{Page, RequestContext, Store};
use serde::Serialize;
use serde_json::Value;

use crate::config::Config;

/// How long a queued job may wait untaken before the doctor says no worker runs.
const UNTAKEN: Duration = Duration::from_secs(30);
/// How long the health check may take once taken.
const CHECK_LIMIT: Duration = Duration::from_secs(90);
/// Jobs waiting longer than this mean no worker works the queue.
const STALE_JOB: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One thing checked: what was found and, when it is wrong, what to do.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub level: Level,
    pub check: String,
    pub found: String,
    pub fix: Option<String>,
}

#[derive(Default)]
struct Report(Vec<Finding>);

impl Report {
    fn add(&mut self, level: Level, check: impl Into<String>, found: impl Into<String>) {
        self.0.push(Finding {
            level,
            check: check.into(),
            found: found.into(),
            fix: None,
        });
    }

    fn fix(&mut self, level: Level, check: impl Into<String>, found: impl Into<String>, fix: &str) {
        self.add(level, check, found);
        if let Some(last) = self.0.last_mut() {
            last.fix = Some(fix.to_owned());
        }
    }
}

/// Runs every check; `applied` is what opening the database did to its schema.
pub async fn examine(
    store: &dyn Store,
    ctx: &RequestContext,
    config: &Config,
    applied: &drover_store::migrations::Applied,
    live: bool,
) -> anyhow::Result<Vec<Finding>> {
    let mut report = Report::default();
    let env = std::env::vars().collect();
    let unknown = crate::config::unknown_settings(&env, &config.secret_sources.env_prefix);
    for warning in &unknown {
        report.fix(
            Level::Warn,
            "configuration",
            warning,
            "rename or remove the variable",
        );
    }
    if unknown.is_empty() {
        report.add(
            Level::Ok,
            "configuration",
            format!(
                "listens on {}, secrets below {}",
                config.listen,
                config.secret_sources.dir.display()
            ),
        );
    }
    let database = drover_store::redact_url(&config.database_url);
    if applied
        .drover
        .first()
        .is_some_and(|m| m.starts_with("0001_"))
    {
        report.fix(
            Level::Warn,
            "database",
            format!("{database} was created just now, empty"),
            "if drover's data is elsewhere, set DATABASE_URL (or run where drover.db is)",
        );
    } else {
        report.add(Level::Ok, "database", format!("{database}: {applied}"));
    }
    // Only looked at: the doctor makes no key and records none.
    match crate::engine::seal::look_at_operator_key(store, &config.seal_key).await {
        Ok(Some(sealer)) => report.add(Level::Ok, "operator key", sealer.id().to_owned()),
        Ok(None) => report.add(
            Level::Ok,
            "operator key",
            "none yet: the first process that needs one makes it",
        ),
        Err(e) => report.fix(
            Level::Fail,
            "operator key",
            e.to_string(),
            "give every drover process the key the database records",
        ),
    }
    waiting_jobs(store, &mut report).await?;
    let fleet = servers(store, config, live, &mut report).await?;
    dns_providers(store, config, &mut report).await?;
    if live && fleet > 0 {
        health_check(store, ctx, &mut report).await?;
    }
    Ok(report.0)
}

async fn waiting_jobs(store: &dyn Store, report: &mut Report) -> anyhow::Result<()> {
    let in_state = |state| drover_store::JobFilter {
        states: vec![state],
        account_id: None,
        limit: Some(1000),
    };
    let waiting = store
        .jobs(in_state(riverqueue::JobState::Available))
        .await?;
    let now = jiff::Timestamp::now();
    let stale = waiting
        .iter()
        .filter(|j| now.duration_since(j.scheduled_at).unsigned_abs() > STALE_JOB)
        .count();
    let running = store
        .jobs(in_state(riverqueue::JobState::Running))
        .await?
        .len();
    let waited = format!(
        "{stale} jobs have waited more than {} s",
        STALE_JOB.as_secs()
    );
    if stale > 0 && running > 0 {
        report.fix(
            Level::Warn,
            "workers",
            format!("{waited} while {running} run"),
            "add workers (drover worker, DROVER_WORKERS) if this lasts",
        );
    } else if stale > 0 {
        report.fix(
            Level::Fail,
            "workers",
            format!("{waited} and none runs"),
            "start `drover serve` or `drover worker` on this database",
        );
    } else {
        report.add(Level::Ok, "workers", "no job waits untaken");
    }
    Ok(())
}

/// Checks each server's record; returns how many there are.
/// Each server as drover's records show it; `live`: a health check follows, so a server never
/// checked yet is judged by it.
async fn servers(
    store: &dyn Store,
    config: &Config,
    live: bool,
    report: &mut Report,
) -> anyhow::Result<usize> {
    let secrets = config.secrets();
    let servers = store
        .servers(Page::new(None, Some(Page::MAX_LIMIT)))
        .await?;
    if servers.is_empty() {
        report.fix(
            Level::Warn,
            "servers",
            "no server: nothing can be provisioned",
            "add one: drover servers add --name … --hostname … --credentials …",
        );
    }
    let count = servers.len();
    for server in servers {
        let check = format!("server {}", server.spec.name);
        let mut fine = true;
        if let Some(finding) = credential(&secrets, &server.spec.credentials) {
            let fix = format!(
                "provide it, or: drover servers update {} --credentials …",
                server.id
            );
            report.fix(finding.0, &check, finding.1, &fix);
            fine = false;
        }
        if !server.spec.tls_verify && server.spec.pinned_cert_sha256.is_none() {
            let fix = format!(
                "pin its certificate: drover servers update {} --pin-sha256 …",
                server.id
            );
            report.fix(Level::Warn, &check, "its certificate is not checked", &fix);
            fine = false;
        }
        if let Some(refused) = &server.login_refused {
            let fix = format!(
                "fix the credentials (drover servers update {0} --credentials …) or, once fixed \
                 on the server, drover servers allow-login {0}",
                server.id
            );
            let found = format!("it refused drover's login: {}", refused.reason);
            report.fix(Level::Fail, &check, found, &fix);
            fine = false;
        }
        match store.server_health(server.id).await? {
            None if live => {}
            None => {
                let fix = format!("drover servers check {} --wait", server.id);
                report.fix(Level::Warn, &check, "never checked", &fix);
                fine = false;
            }
            Some(health) if health.verdict != drover_core::Verdict::Healthy => {
                let found = format!(
                    "its last check was {}: {}",
                    serde_json::to_value(health.verdict)?
                        .as_str()
                        .unwrap_or("?"),
                    health.reasons.join("; ")
                );
                let fix = format!("drover servers health {}", server.id);
                report.fix(Level::Warn, &check, found, &fix);
                fine = false;
            }
            Some(_) => {}
        }
        if fine {
            report.add(Level::Ok, check, server.state.as_str());
        }
    }
    Ok(count)
}

async fn dns_providers(
    store: &dyn Store,
    config: &Config,
    report: &mut Report,
) -> anyhow::Result<()> {
    let secrets = config.secrets();
    for provider in store.dns_providers().await? {
        let check = format!("DNS provider {}", provider.spec.name);
        match credential(&secrets, &provider.spec.credentials) {
            Some((level, found)) => report.fix(
                level,
                check,
                found,
                "provide it, or add the provider again with other --credentials",
            ),
            None => report.add(Level::Ok, check, "its credentials are at hand"),
        }
    }
    Ok(())
}

/// What is wrong with a credential reference, as this process sees it. A variable this shell
/// lacks may be set for `drover serve`: a warning, not a failure.
fn credential(
    secrets: &crate::engine::Secrets,
    reference: &CredentialRef,
) -> Option<(Level, String)> {
    let problem = secrets.read(reference).err()?;
    let level = match reference {
        CredentialRef::Env(_) if secrets.sources().check(reference).is_ok() => Level::Warn,
        _ => Level::Fail,
    };
    Some((level, format!("credentials {reference}: {problem}")))
}

/// Every server checked now by a worker: TLS, the pin, the login, the time to answer.
async fn health_check(
    store: &dyn Store,
    ctx: &RequestContext,
    report: &mut Report,
) -> anyhow::Result<()> {
    let check = Requested::HealthCheck {
        server: None,
        plans: true,
    };
    let job = crate::commands::request(store, ctx, check).await?;
    let started = tokio::time::Instant::now();
    let output: Value = loop {
        let row = store.job(job).await?;
        match row.state.as_str() {
            "completed" => break row.output.unwrap_or(Value::Null),
            "discarded" | "cancelled" => {
                let why = row.errors.last().cloned().unwrap_or_default();
                report.add(
                    Level::Fail,
                    "health check",
                    format!("job {job} was {}: {why}", row.state),
                );
                return Ok(());
            }
            "available" if started.elapsed() > UNTAKEN => {
                report.fix(
                    Level::Fail,
                    "health check",
                    format!("no worker took job {job} within {} s", UNTAKEN.as_secs()),
                    "start `drover serve` or `drover worker` on this database (or pass --offline)",
                );
                return Ok(());
            }
            _ if started.elapsed() > CHECK_LIMIT => {
                report.add(
                    Level::Fail,
                    "health check",
                    format!(
                        "job {job} is still {} after {} s",
                        row.state,
                        CHECK_LIMIT.as_secs()
                    ),
                );
                return Ok(());
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    for server in output["servers"].as_array().into_iter().flatten() {
        let check = format!("server {} now", super::cell(&server["name"]));
        let verdict = super::cell(&server["verdict"]);
        let reasons = super::cell(&server["reasons"]);
        let id = super::cell(&server["id"]);
        let fix = if reasons.contains("is not the pinned one") {
            format!(
                "if its certificate was replaced on purpose, pin the new one: drover servers \
                 update {id} --pin-sha256 <its SHA-256>"
            )
        } else {
            format!("see drover servers health {id} for the probe's details")
        };
        match verdict.as_str() {
            "healthy" => report.add(Level::Ok, &check, "answers, healthy"),
            _ => report.fix(Level::Fail, &check, format!("{verdict}: {reasons}"), &fix),
        }
        plans(&server["plans"], &check, report);
    }
    Ok(())
}

/// drover's plans on one server, as the health check compared them.
fn plans(found: &Value, check: &str, report: &mut Report) {
    let names = |key: &str| -> Vec<String> {
        found[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(super::cell)
            .collect()
    };
    let check = format!("{check}: plans");
    if let Some(error) = found["error"].as_str() {
        report.add(Level::Warn, check, format!("could not be read: {error}"));
        return;
    }
    let (missing, differing) = (names("missing"), names("differing"));
    if !differing.is_empty() {
        report.fix(
            Level::Warn,
            &check,
            format!(
                "{} differ from drover's (changed on the server by hand?)",
                differing.join(", ")
            ),
            "drover puts its plan back before the next account there; to do it now, change \
             the plan in drover (drover plans update ID …)",
        );
    }
    if !missing.is_empty() {
        report.add(
            Level::Ok,
            &check,
            format!(
                "{} not there yet: drover puts each there before its first account",
                missing.join(", ")
            ),
        );
    } else if differing.is_empty() && found.is_object() {
        report.add(
            Level::Ok,
            check,
            "every plan it may host is there, as drover defines it",
        );
    }
}

/// Prints the findings; the error says how many failed.
pub fn print(findings: &[Finding], out: super::Output) -> anyhow::Result<()> {
    if out.json {
        out.one(&findings)?;
    } else {
        for f in findings {
            let level = match f.level {
                Level::Ok => "ok  ",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            println!("{level}  {}: {}", f.check, f.found);
            if let Some(fix) = &f.fix {
                println!("      fix: {fix}");
            }
        }
    }
    let failed = findings.iter().filter(|f| f.level == Level::Fail).count();
    if failed > 0 {
        anyhow::bail!("{failed} checks failed");
    }
    Ok(())
}
