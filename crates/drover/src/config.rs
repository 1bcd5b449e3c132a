//! drover's settings, from (first wins) command-line flags, the environment, an optional TOML
//! file, and defaults. Every value is parsed when drover starts: a bad one stops the start with
//! a message that names the setting, where it came from, and what is accepted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_core::{
    CertFingerprint, DriftAction, DriftPolicy, HealthPolicy, PlacementPolicy, SafetyLimits,
    SecretSources, ZoneTemplate,
};
use drover_virtualmin::{Timeouts, VirtualminSettings};

use crate::engine::FleetPolicy;
use crate::engine::dns::{DnsSettings, TerminatedZones};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://drover.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    /// PostgreSQL connections this process keeps at most (jobs and requests share them).
    pub db_pool: u32,
    /// `DROVER_SECRETS_DIR`, `DROVER_SECRET_ENV_PREFIX`: where credential references may point.
    pub secret_sources: SecretSources,
    pub listen: SocketAddr,
    pub virtualmin: VirtualminSettings,
    /// Where the operator key that seals account passwords comes from.
    pub seal_key: SealKey,
    /// Jobs worked at once by this process.
    pub workers: usize,
    /// `DROVER_REFUSE_CONFUSABLE`: refuse new domains that can pass for others, not only warn.
    pub refuse_confusable: bool,
    /// `DROVER_BILLING_DELETES_UNCONFIRMED`: the billing system may delete an account's
    /// mailboxes, databases, alias domains and sub-servers without repeating their names.
    pub billing_deletes_unconfirmed: bool,
    /// `DROVER_SHUTDOWN_GRACE`: how long running jobs may finish after a stop signal.
    pub shutdown_grace: Duration,
    /// `DROVER_JOB_TIMEOUT`: the longest one job may run.
    pub job_timeout: Duration,
    /// `DROVER_JOB_RETRY_MAX_DELAY`: the longest wait between two tries of a failing job.
    pub retry_max_delay: Duration,
    pub placement: PlacementPolicy,
    pub dns: DnsSettings,
    /// `DROVER_HEALTH_*`, `DROVER_DRIFT_*`, `DROVER_USAGE_INTERVAL`, `DROVER_BACKUP_INTERVAL`:
    /// the periodic fleet work.
    pub fleet: FleetPolicy,
    /// `DROVER_WEBHOOK_TIMEOUT`, `DROVER_WEBHOOK_RETRY_MAX_DELAY`, `DROVER_WEBHOOK_PAUSE_AFTER`.
    pub webhooks: crate::engine::WebhookPolicy,
    /// `DROVER_VIRTUALMIN_SOURCES`: the folder of Webmin's and Virtualmin's archives (with
    /// their SHA256SUMS) that bootstraps install from.
    pub virtualmin_sources: Option<PathBuf>,
}

/// The operator key: given in `DROVER_SEAL_KEY` (64 hex digits), or kept in a file
/// (`DROVER_SEAL_KEY_FILE`, default `drover.key`, created on first start).
#[derive(Clone)]
pub enum SealKey {
    Hex(secrecy::SecretString),
    File(PathBuf),
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hex(_) => f.write_str("SealKey::Hex(***)"),
            Self::File(path) => write!(f, "SealKey::File({})", path.display()),
        }
    }
}

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{setting} = '{value}' (from {origin}): {problem}")]
pub struct ConfigError {
    setting: String,
    value: String,
    origin: String,
    problem: String,
}

impl ConfigError {
    fn file(path: &Path, problem: impl Into<String>) -> Self {
        Self {
            setting: "config file".into(),
            value: path.display().to_string(),
            origin: "--config / DROVER_CONFIG".into(),
            problem: problem.into(),
        }
    }
}

/// What the command line (flag or its environment variable, through clap) already settled.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub database_url: Option<String>,
    pub listen: Option<String>,
}

/// Where each raw value comes from.
struct Sources {
    env: BTreeMap<String, String>,
    file: BTreeMap<String, String>,
    file_name: String,
}

impl Sources {
    /// The raw value of the setting whose environment name is `env_name` (its TOML key is the
    /// same name in lower case, `VIRTUALMIN_` moved into a `[virtualmin]` table).
    fn get(&self, env_name: &str) -> Option<(String, String)> {
        if let Some(value) = self.env.get(env_name) {
            return Some((value.clone(), "the environment".into()));
        }
        self.file
            .get(&toml_key(env_name))
            .map(|v| (v.clone(), self.file_name.clone()))
    }

    fn parse<T>(
        &self,
        env_name: &str,
        default: T,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        match self.get(env_name) {
            None => Ok(default),
            Some((value, source)) => parse(value.trim()).ok_or_else(|| ConfigError {
                setting: env_name.into(),
                value,
                origin: source,
                problem: format!("expected {expected}"),
            }),
        }
    }

    fn seconds(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        self.parse(
            name,
            default,
            "a number of seconds above 0, like 30 or 2.5",
            |v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
                    .map(Duration::from_secs_f64)
            },
        )
    }

    fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        self.parse(name, default, "true or false", |v| {
            match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Some(true),
                "false" | "0" | "no" | "off" => Some(false),
                _ => None,
            }
        })
    }
}

fn toml_key(env_name: &str) -> String {
    match env_name.strip_prefix("VIRTUALMIN_") {
        Some(rest) => format!("virtualmin.{}", rest.to_ascii_lowercase()),
        None => env_name
            .strip_prefix("DROVER_")
            .unwrap_or(env_name)
            .to_ascii_lowercase(),
    }
}

/// `secrets` beside an SQLite database; in the working directory otherwise.
fn default_secrets_dir(database_url: &str) -> PathBuf {
    state_dir(database_url).join("secrets")
}

/// Where drover keeps its files: beside an SQLite database; the working directory otherwise
/// (a service's state directory).
fn state_dir(database_url: &str) -> PathBuf {
    sqlite_path(database_url)
        .and_then(|db| db.parent().map(Path::to_path_buf))
        .unwrap_or_default()
}

/// The file of an SQLite `DATABASE_URL`, if that is what it names.
fn sqlite_path(database_url: &str) -> Option<PathBuf> {
    let rest = database_url.strip_prefix("sqlite:")?;
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// `path` from the working directory when relative: a secret's reference names it whole.
fn absolute(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        return path;
    }
    std::env::current_dir().map_or(path.clone(), |cwd| cwd.join(&path))
}

/// Every setting drover reads, by environment name.
const SETTINGS: &[&str] = &[
    "DATABASE_URL",
    "DROVER_DB_POOL",
    "DROVER_SECRETS_DIR",
    "DROVER_SECRET_ENV_PREFIX",
    "DROVER_LISTEN",
    "DROVER_SEAL_KEY",
    "DROVER_SEAL_KEY_FILE",
    "DROVER_WORKERS",
    "DROVER_SHUTDOWN_GRACE",
    "DROVER_REFUSE_CONFUSABLE",
    "DROVER_BILLING_DELETES_UNCONFIRMED",
    "DROVER_JOB_TIMEOUT",
    "DROVER_JOB_RETRY_MAX_DELAY",
    "DROVER_WEBHOOK_TIMEOUT",
    "DROVER_WEBHOOK_RETRY_MAX_DELAY",
    "DROVER_WEBHOOK_PAUSE_AFTER",
    "DROVER_VIRTUALMIN_SOURCES",
    "DROVER_PLACEMENT_FILL_LIMIT",
    "DROVER_PLACEMENT_ALLOW_DEGRADED",
    "DROVER_HEALTH_INTERVAL",
    "DROVER_HEALTH_FAIL_AFTER",
    "DROVER_HEALTH_SLOW_MS",
    "DROVER_HEALTH_CERT_WARN_DAYS",
    "DROVER_DRIFT_INTERVAL",
    "DROVER_DRIFT_MISSING",
    "DROVER_DRIFT_ORPHAN",
    "DROVER_DRIFT_STATE_MISMATCH",
    "DROVER_DRIFT_PLAN_MISMATCH",
    "DROVER_DRIFT_FEATURE_MISSING",
    "DROVER_DRIFT_MAILBOXES",
    "DROVER_DRIFT_DATABASES",
    "DROVER_DRIFT_ALIASES",
    "DROVER_DRIFT_SUBSERVERS",
    "DROVER_DRIFT_MAX_PERCENT",
    "DROVER_DRIFT_MAX_ACCOUNTS",
    "DROVER_USAGE_INTERVAL",
    "DROVER_BACKUP_INTERVAL",
    "DROVER_FAILED_RETRY_INTERVAL",
    "DROVER_MIGRATION_GRACE",
    "DROVER_FAILOVER",
    "DROVER_DNS_NAMESERVERS",
    "DROVER_DNS_ADDRESS_TTL",
    "DROVER_DNS_TTL",
    "DROVER_DNS_MAX_CHANGE_PERCENT",
    "DROVER_DNS_MIN_ZONE_RECORDS",
    "DROVER_DNS_ON_TERMINATE",
    "DROVER_DNS_PUSH_CONCURRENCY",
    "VIRTUALMIN_REQUEST_TIMEOUT",
    "VIRTUALMIN_MAX_RETRIES",
    "VIRTUALMIN_RETRY_DELAY",
    "VIRTUALMIN_RATE_QPS",
    "VIRTUALMIN_SSL_VERIFY",
    "VIRTUALMIN_PINNED_CERT_SHA256",
    "VIRTUALMIN_AUTO_PROVISIONING_ENABLED",
    "VIRTUALMIN_API_REQUEST_TIMEOUT",
    "VIRTUALMIN_API_HEALTH_CHECK_TIMEOUT",
    "VIRTUALMIN_API_BACKUP_TIMEOUT",
    "VIRTUALMIN_API_BULK_TIMEOUT",
    "VIRTUALMIN_CONNECTION_TIMEOUT",
    "VIRTUALMIN_PROVISIONING_TIMEOUT",
    "VIRTUALMIN_DOMAIN_SYNC_TIMEOUT",
    "VIRTUALMIN_USAGE_SYNC_TIMEOUT",
];

/// Read by the command line itself rather than by [`Config`].
const COMMAND_LINE_SETTINGS: &[&str] = &[
    "DROVER_CONFIG",
    "DROVER_LOG_FORMAT",
    "DROVER_METRICS_LISTEN",
    // The build's (build.rs); `cargo run` also sets it for the program it runs.
    "DROVER_COMMIT",
];

/// Variables named like drover's settings that are none, each with the setting it may have
/// meant: a misspelt one would otherwise be ignored without a word. Secrets (named with the
/// secrets' prefix) are not settings and are left alone.
pub fn unknown_settings(env: &BTreeMap<String, String>, secret_prefix: &str) -> Vec<String> {
    let known = || SETTINGS.iter().chain(COMMAND_LINE_SETTINGS).copied();
    env.keys()
        .filter(|name| name.starts_with("DROVER_") || name.starts_with("VIRTUALMIN_"))
        .filter(|name| !name.starts_with(secret_prefix) && !known().any(|k| k == *name))
        .map(|name| {
            let nearest = known()
                .map(|k| (edit_distance(name, k), k))
                .min()
                .filter(|(distance, _)| *distance <= 3);
            match nearest {
                Some((_, meant)) => {
                    format!("{name} is not a drover setting (did you mean {meant}?)")
                }
                None => format!("{name} is not a drover setting; it is ignored"),
            }
        })
        .collect()
}

/// Levenshtein distance: single-character insertions, deletions and substitutions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substituted = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

impl Config {
    /// The file the first start leaves the first operator token in, readable by its owner
    /// alone: a service's standard output may be kept in a journal.
    pub fn first_token_file(&self) -> PathBuf {
        state_dir(&self.database_url).join("first-operator-token")
    }

    /// Where secrets are read from, and drover's own files that never are.
    pub fn secrets(&self) -> std::sync::Arc<crate::engine::Secrets> {
        let mut own = Vec::new();
        if let SealKey::File(path) = &self.seal_key {
            own.push(path.clone());
        }
        own.extend(sqlite_path(&self.database_url));
        std::sync::Arc::new(crate::engine::Secrets::new(
            self.secret_sources.clone(),
            own,
        ))
    }

    /// Loads from the process environment.
    pub fn load(overrides: Overrides) -> Result<Self, ConfigError> {
        Self::load_from(overrides, std::env::vars().collect())
    }

    pub fn load_from(
        overrides: Overrides,
        env: BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let (file, file_name) = match &overrides.config_file {
            Some(path) => (read_toml(path)?, path.display().to_string()),
            None => (BTreeMap::new(), String::new()),
        };
        let sources = Sources {
            env,
            file,
            file_name,
        };
        let database_url = match overrides.database_url {
            Some(url) => url,
            None => sources
                .get("DATABASE_URL")
                .map_or_else(|| DEFAULT_DATABASE_URL.to_owned(), |(v, _)| v),
        };
        let listen = match overrides.listen {
            Some(raw) => raw.parse().map_err(|_| ConfigError {
                setting: "--listen".into(),
                value: raw,
                origin: "the command line or DROVER_LISTEN".into(),
                problem: "expected an address and port, like 127.0.0.1:8080 or [::]:8080".into(),
            })?,
            None => sources.parse(
                "DROVER_LISTEN",
                DEFAULT_LISTEN.parse().expect("default listen address"),
                "an address and port, like 127.0.0.1:8080 or [::]:8080",
                |v| v.parse().ok(),
            )?,
        };
        let defaults = VirtualminSettings::default();
        let t = defaults.timeouts;
        let virtualmin = VirtualminSettings {
            request_timeout: sources
                .seconds("VIRTUALMIN_REQUEST_TIMEOUT", defaults.request_timeout)?,
            max_retries: sources.parse(
                "VIRTUALMIN_MAX_RETRIES",
                defaults.max_retries,
                "a whole number from 0 to 20",
                |v| v.parse().ok().filter(|n| *n <= 20),
            )?,
            retry_delay: sources.seconds("VIRTUALMIN_RETRY_DELAY", defaults.retry_delay)?,
            rate_qps: sources.parse(
                "VIRTUALMIN_RATE_QPS",
                defaults.rate_qps,
                "calls per second per server, above 0 and at most 1000, like 2 or 0.5",
                |v| {
                    v.parse::<f64>()
                        .ok()
                        .filter(|q| q.is_finite() && *q > 0.0 && *q <= 1000.0)
                },
            )?,
            ssl_verify: sources.flag("VIRTUALMIN_SSL_VERIFY", defaults.ssl_verify)?,
            pinned_cert_sha256: sources.parse(
                "VIRTUALMIN_PINNED_CERT_SHA256",
                None,
                "64 hex digits (a SHA-256 fingerprint), optionally with colons between bytes",
                |v| CertFingerprint::parse(v).ok().map(Some),
            )?,
            auto_provisioning_enabled: sources.flag(
                "VIRTUALMIN_AUTO_PROVISIONING_ENABLED",
                defaults.auto_provisioning_enabled,
            )?,
            timeouts: Timeouts {
                api_request: sources.seconds("VIRTUALMIN_API_REQUEST_TIMEOUT", t.api_request)?,
                health_check: sources
                    .seconds("VIRTUALMIN_API_HEALTH_CHECK_TIMEOUT", t.health_check)?,
                backup: sources.seconds("VIRTUALMIN_API_BACKUP_TIMEOUT", t.backup)?,
                bulk: sources.seconds("VIRTUALMIN_API_BULK_TIMEOUT", t.bulk)?,
                connection: sources.seconds("VIRTUALMIN_CONNECTION_TIMEOUT", t.connection)?,
                provisioning: sources.seconds("VIRTUALMIN_PROVISIONING_TIMEOUT", t.provisioning)?,
                domain_sync: sources.seconds("VIRTUALMIN_DOMAIN_SYNC_TIMEOUT", t.domain_sync)?,
                usage_sync: sources.seconds("VIRTUALMIN_USAGE_SYNC_TIMEOUT", t.usage_sync)?,
            },
        };
        let seal_key = match sources.get("DROVER_SEAL_KEY") {
            Some((hex_key, origin)) => {
                let valid = hex_key.trim().len() == 64 && hex::decode(hex_key.trim()).is_ok();
                if !valid {
                    return Err(ConfigError {
                        setting: "DROVER_SEAL_KEY".into(),
                        value: "***".into(),
                        origin,
                        problem: "expected 64 hex digits (a 256-bit key)".into(),
                    });
                }
                SealKey::Hex(secrecy::SecretString::from(hex_key.trim().to_owned()))
            }
            None => SealKey::File(PathBuf::from(
                sources
                    .get("DROVER_SEAL_KEY_FILE")
                    .map_or_else(|| "drover.key".to_owned(), |(v, _)| v),
            )),
        };
        let db_pool = sources.parse(
            "DROVER_DB_POOL",
            drover_store::DEFAULT_POOL_SIZE,
            "a whole number of connections from 2 to 500 (PostgreSQL allows 100 in all unless \
             configured otherwise)",
            |v| v.parse().ok().filter(|n| (2..=500).contains(n)),
        )?;
        let secret_sources = SecretSources {
            dir: absolute(
                sources
                    .get("DROVER_SECRETS_DIR")
                    .map_or_else(|| default_secrets_dir(&database_url), |(v, _)| v.into()),
            ),
            env_prefix: sources.parse(
                "DROVER_SECRET_ENV_PREFIX",
                SecretSources::DEFAULT_ENV_PREFIX.to_owned(),
                "letters, digits and '_', like DROVER_SECRET_",
                |v| {
                    Some(v.to_owned()).filter(|p| {
                        !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    })
                },
            )?,
        };
        let workers = sources.parse(
            "DROVER_WORKERS",
            10,
            "a whole number of jobs from 1 to 256",
            |v| v.parse().ok().filter(|n| (1..=256).contains(n)),
        )?;
        let refuse_confusable = sources.flag("DROVER_REFUSE_CONFUSABLE", false)?;
        let billing_deletes_unconfirmed =
            sources.flag("DROVER_BILLING_DELETES_UNCONFIRMED", false)?;
        let shutdown_grace = sources.seconds("DROVER_SHUTDOWN_GRACE", Duration::from_secs(30))?;
        let job_timeout = sources.seconds("DROVER_JOB_TIMEOUT", Duration::from_secs(600))?;
        let retry_max_delay =
            sources.seconds("DROVER_JOB_RETRY_MAX_DELAY", Duration::from_secs(300))?;
        let default_webhooks = crate::engine::WebhookPolicy::default();
        let webhooks = crate::engine::WebhookPolicy {
            timeout: sources.seconds("DROVER_WEBHOOK_TIMEOUT", default_webhooks.timeout)?,
            retry_max_delay: sources.seconds(
                "DROVER_WEBHOOK_RETRY_MAX_DELAY",
                default_webhooks.retry_max_delay,
            )?,
            pause_after: sources
                .seconds("DROVER_WEBHOOK_PAUSE_AFTER", default_webhooks.pause_after)?,
        };
        let virtualmin_sources = sources
            .get("DROVER_VIRTUALMIN_SOURCES")
            .map(|(v, _)| absolute(v.into()));
        let default_placement = PlacementPolicy::default();
        let placement = PlacementPolicy {
            fill_limit: sources.parse(
                "DROVER_PLACEMENT_FILL_LIMIT",
                default_placement.fill_limit,
                "a share of capacity above 0 and at most 1, like 0.9",
                |v| v.parse::<f64>().ok().filter(|f| *f > 0.0 && *f <= 1.0),
            )?,
            allow_degraded: sources.flag(
                "DROVER_PLACEMENT_ALLOW_DEGRADED",
                default_placement.allow_degraded,
            )?,
        };
        let dns = dns_settings(&sources)?;
        let default_health = HealthPolicy::default();
        let health = HealthPolicy {
            fail_after: sources.parse(
                "DROVER_HEALTH_FAIL_AFTER",
                default_health.fail_after,
                "a whole number of consecutive failed checks from 1 to 100",
                |v| v.parse().ok().filter(|n| (1..=100).contains(n)),
            )?,
            slow_ms: sources.parse(
                "DROVER_HEALTH_SLOW_MS",
                default_health.slow_ms,
                "milliseconds, at least 1",
                |v| v.parse().ok().filter(|n| *n >= 1),
            )?,
            certificate_warn_days: sources.parse(
                "DROVER_HEALTH_CERT_WARN_DAYS",
                default_health.certificate_warn_days,
                "a whole number of days from 0 to 365",
                |v| v.parse().ok().filter(|n| (0..=365).contains(n)),
            )?,
            ..default_health
        };
        let health_interval = interval(&sources, "DROVER_HEALTH_INTERVAL", 60.0)?;
        let fleet = FleetPolicy {
            health,
            health_interval,
            drift: drift_policy(&sources)?,
            drift_interval: interval(&sources, "DROVER_DRIFT_INTERVAL", 3600.0)?,
            usage_interval: interval(&sources, "DROVER_USAGE_INTERVAL", 3600.0)?,
            backup_interval: interval(&sources, "DROVER_BACKUP_INTERVAL", 86_400.0)?,
            failed_retry_interval: interval(&sources, "DROVER_FAILED_RETRY_INTERVAL", 900.0)?,
            failover: sources.flag("DROVER_FAILOVER", false)?,
            migration_grace: sources.parse(
                "DROVER_MIGRATION_GRACE",
                Duration::from_secs(7 * 86_400),
                "seconds a moved account's old copy is kept, from 0 to 7776000 (90 days)",
                |v| {
                    v.parse::<u64>()
                        .ok()
                        .filter(|s| *s <= 90 * 86_400)
                        .map(Duration::from_secs)
                },
            )?,
        };
        Ok(Self {
            database_url,
            db_pool,
            secret_sources,
            listen,
            virtualmin,
            seal_key,
            workers,
            shutdown_grace,
            refuse_confusable,
            billing_deletes_unconfirmed,
            job_timeout,
            retry_max_delay,
            placement,
            dns,
            fleet,
            webhooks,
            virtualmin_sources,
        })
    }
}

/// Reads the TOML file into `key` / `table.key` → text, refusing keys drover does not know.
fn read_toml(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::file(path, format!("cannot be read: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| ConfigError::file(path, format!("is not valid TOML: {e}")))?;
    let known: Vec<String> = SETTINGS.iter().map(|s| toml_key(s)).collect();
    let mut values = BTreeMap::new();
    let mut flatten = |key: String, value: &toml::Value| -> Result<(), ConfigError> {
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                value.to_string()
            }
            _ => {
                return Err(ConfigError::file(
                    path,
                    format!("'{key}' must be a string, number or boolean"),
                ));
            }
        };
        if !known.contains(&key) {
            return Err(ConfigError::file(
                path,
                format!(
                    "'{key}' is not a drover setting; known: {}",
                    known.join(", ")
                ),
            ));
        }
        values.insert(key, text);
        Ok(())
    };
    for (key, value) in &table {
        match value {
            toml::Value::Table(inner) => {
                for (inner_key, inner_value) in inner {
                    flatten(format!("{key}.{inner_key}"), inner_value)?;
                }
            }
            other => flatten(key.clone(), other)?,
        }
    }
    Ok(values)
}

/// A period in seconds where 0 turns the periodic work off.
fn interval(
    sources: &Sources,
    name: &str,
    default_seconds: f64,
) -> Result<Option<Duration>, ConfigError> {
    sources.parse(
        name,
        Some(Duration::from_secs_f64(default_seconds)),
        "seconds between runs, like 60; 0 turns them off",
        |v| {
            let seconds = v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && (0.0..=7.0 * 86_400.0).contains(s))?;
            Some((seconds > 0.0).then(|| Duration::from_secs_f64(seconds)))
        },
    )
}

/// The `DROVER_DRIFT_*` settings: the action per kind of finding and the limits of one pass.
fn drift_policy(sources: &Sources) -> Result<DriftPolicy, ConfigError> {
    let defaults = DriftPolicy::default();
    let action = |name, default: DriftAction, allowed: &'static [(&'static str, DriftAction)]| {
        let words: Vec<&str> = allowed.iter().map(|(w, _)| *w).collect();
        sources.parse(
            name,
            default,
            &format!("one of {}", words.join(", ")),
            |v| {
                allowed
                    .iter()
                    .find(|(w, _)| *w == v.to_ascii_lowercase())
                    .map(|(_, a)| *a)
            },
        )
    };
    const FOR_ACCOUNTS: &[(&str, DriftAction)] =
        &[("log", DriftAction::Log), ("enforce", DriftAction::Enforce)];
    const FOR_ORPHANS: &[(&str, DriftAction)] = &[
        ("log", DriftAction::Log),
        ("quarantine", DriftAction::Quarantine),
    ];
    Ok(DriftPolicy {
        missing: action("DROVER_DRIFT_MISSING", defaults.missing, FOR_ACCOUNTS)?,
        state_mismatch: action(
            "DROVER_DRIFT_STATE_MISMATCH",
            defaults.state_mismatch,
            FOR_ACCOUNTS,
        )?,
        plan_mismatch: action(
            "DROVER_DRIFT_PLAN_MISMATCH",
            defaults.plan_mismatch,
            FOR_ACCOUNTS,
        )?,
        feature_missing: action(
            "DROVER_DRIFT_FEATURE_MISSING",
            defaults.feature_missing,
            FOR_ACCOUNTS,
        )?,
        mailboxes: action("DROVER_DRIFT_MAILBOXES", defaults.mailboxes, FOR_ACCOUNTS)?,
        databases: action("DROVER_DRIFT_DATABASES", defaults.databases, FOR_ACCOUNTS)?,
        aliases: action("DROVER_DRIFT_ALIASES", defaults.aliases, FOR_ACCOUNTS)?,
        subservers: action("DROVER_DRIFT_SUBSERVERS", defaults.subservers, FOR_ACCOUNTS)?,
        orphan: action("DROVER_DRIFT_ORPHAN", defaults.orphan, FOR_ORPHANS)?,
        max_percent: sources.parse(
            "DROVER_DRIFT_MAX_PERCENT",
            defaults.max_percent,
            "a percentage from 0 to 100",
            |v| v.parse::<u8>().ok().filter(|p| *p <= 100),
        )?,
        max_accounts: sources.parse(
            "DROVER_DRIFT_MAX_ACCOUNTS",
            defaults.max_accounts,
            "a whole number of accounts, at least 1",
            |v| v.parse().ok().filter(|n| *n >= 1),
        )?,
    })
}

/// The `DROVER_DNS_*` settings: the account zone template, safety limits, what happens to a
/// deleted account's zone, and how many writes go to one provider at once in a failover.
fn dns_settings(sources: &Sources) -> Result<DnsSettings, ConfigError> {
    let defaults = DnsSettings::default();
    let ttl = |name, default: u32| {
        sources.parse(name, default, "a TTL in seconds from 1 to 86400", |v| {
            v.parse::<u32>().ok().filter(|t| (1..=86_400).contains(t))
        })
    };
    let nameservers = sources.parse(
        "DROVER_DNS_NAMESERVERS",
        Vec::new(),
        "host names separated by commas, like ns1.example.net,ns2.example.net",
        |v| {
            v.split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(|h| drover_core::canonical_content(drover_core::RecordType::Ns, h).ok())
                .collect::<Option<Vec<_>>>()
        },
    )?;
    Ok(DnsSettings {
        template: ZoneTemplate {
            address_ttl: ttl("DROVER_DNS_ADDRESS_TTL", defaults.template.address_ttl)?,
            ttl: ttl("DROVER_DNS_TTL", defaults.template.ttl)?,
            nameservers,
        },
        limits: SafetyLimits {
            max_change_percent: sources.parse(
                "DROVER_DNS_MAX_CHANGE_PERCENT",
                defaults.limits.max_change_percent,
                "a percentage from 0 to 100",
                |v| v.parse::<u8>().ok().filter(|p| *p <= 100),
            )?,
            min_zone_records: sources.parse(
                "DROVER_DNS_MIN_ZONE_RECORDS",
                defaults.limits.min_zone_records,
                "a whole number of records",
                |v| v.parse().ok(),
            )?,
        },
        on_terminate: sources.parse(
            "DROVER_DNS_ON_TERMINATE",
            defaults.on_terminate,
            "delete (remove the zone from every provider) or keep",
            |v| match v.to_ascii_lowercase().as_str() {
                "delete" => Some(TerminatedZones::Delete),
                "keep" => Some(TerminatedZones::Keep),
                _ => None,
            },
        )?,
        push_concurrency: sources.parse(
            "DROVER_DNS_PUSH_CONCURRENCY",
            defaults.push_concurrency,
            "a whole number from 1 to 64",
            |v| v.parse().ok().filter(|n| (1..=64).contains(n)),
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_no_configuration() {
        let config = Config::load_from(Overrides::default(), BTreeMap::new()).unwrap();
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(config.db_pool, 16);
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.virtualmin, VirtualminSettings::default());
    }

    #[test]
    fn flags_beat_environment_which_beats_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drover.toml");
        std::fs::write(
            &path,
            "database_url = \"sqlite://file.db\"\nlisten = \"127.0.0.1:9000\"\n[virtualmin]\nrate_qps = 5\nssl_verify = false\n",
        )
        .unwrap();
        let overrides = Overrides {
            config_file: Some(path),
            database_url: Some("sqlite://flag.db".into()),
            listen: None,
        };
        let config = Config::load_from(overrides, env(&[("VIRTUALMIN_RATE_QPS", "3")])).unwrap();
        assert_eq!(config.database_url, "sqlite://flag.db");
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.virtualmin.rate_qps, 3.0);
        assert!(!config.virtualmin.ssl_verify);
    }

    #[test]
    fn a_bad_value_names_the_setting_its_source_and_what_is_accepted() {
        let err = Config::load_from(
            Overrides::default(),
            env(&[("VIRTUALMIN_RATE_QPS", "fast")]),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "VIRTUALMIN_RATE_QPS = 'fast' (from the environment): expected calls per second per \
             server, above 0 and at most 1000, like 2 or 0.5"
        );
        for (name, value) in [
            ("VIRTUALMIN_SSL_VERIFY", "maybe"),
            ("VIRTUALMIN_PINNED_CERT_SHA256", "abc"),
            ("VIRTUALMIN_API_BULK_TIMEOUT", "-1"),
            ("VIRTUALMIN_MAX_RETRIES", "many"),
            ("DROVER_LISTEN", "localhost"),
            ("DROVER_DNS_NAMESERVERS", "ns1.example.net,bad host"),
            ("DROVER_DNS_ADDRESS_TTL", "0"),
            ("DROVER_DNS_MAX_CHANGE_PERCENT", "120"),
            ("DROVER_DNS_ON_TERMINATE", "archive"),
            ("DROVER_DNS_PUSH_CONCURRENCY", "0"),
            ("DROVER_HEALTH_INTERVAL", "-5"),
            ("DROVER_HEALTH_FAIL_AFTER", "0"),
            ("DROVER_DRIFT_ORPHAN", "enforce"),
            ("DROVER_DRIFT_MISSING", "quarantine"),
        ] {
            let err = Config::load_from(Overrides::default(), env(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("{name} = '{value}'")), "{err}");
        }
    }

    #[test]
    fn dns_settings_are_read() {
        let config = Config::load_from(
            Overrides::default(),
            env(&[
                (
                    "DROVER_DNS_NAMESERVERS",
                    "ns1.example.net, NS2.example.net.",
                ),
                ("DROVER_DNS_ADDRESS_TTL", "60"),
                ("DROVER_DNS_ON_TERMINATE", "keep"),
                ("DROVER_DNS_MAX_CHANGE_PERCENT", "40"),
            ]),
        )
        .unwrap();
        assert_eq!(
            config.dns.template.nameservers,
            ["ns1.example.net.", "ns2.example.net."]
        );
        assert_eq!(config.dns.template.address_ttl, 60);
        assert_eq!(config.dns.on_terminate, TerminatedZones::Keep);
        assert_eq!(config.dns.limits.max_change_percent, 40);
        let defaults = Config::load_from(Overrides::default(), BTreeMap::new()).unwrap();
        assert_eq!(defaults.dns.on_terminate, TerminatedZones::Delete);
        assert_eq!(defaults.dns.limits.max_change_percent, 25);
        assert_eq!(defaults.dns.push_concurrency, 1);
        assert_eq!(
            defaults.fleet.health_interval,
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            defaults.fleet.drift_interval,
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            defaults.fleet.usage_interval,
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            defaults.fleet.backup_interval,
            Some(Duration::from_secs(86_400))
        );
        let off = Config::load_from(
            Overrides::default(),
            env(&[("DROVER_HEALTH_INTERVAL", "0")]),
        )
        .unwrap();
        assert_eq!(off.fleet.health_interval, None);
    }

    #[test]
    fn misspelt_environment_settings_are_named_with_what_was_meant() {
        let env: BTreeMap<String, String> = [
            "DROVER_WORKRES",
            "VIRTUALMIN_RATE_QSP",
            "DROVER_FROBNICATE_EVERYTHING",
            "DROVER_WORKERS",
            "DROVER_LOG_FORMAT",
            "DROVER_SECRET_VM1",
            "DROVER_COMMIT",
            "HOME",
        ]
        .into_iter()
        .map(|n| (n.to_owned(), "1".to_owned()))
        .collect();
        assert_eq!(
            unknown_settings(&env, "DROVER_SECRET_"),
            [
                "DROVER_FROBNICATE_EVERYTHING is not a drover setting; it is ignored",
                "DROVER_WORKRES is not a drover setting (did you mean DROVER_WORKERS?)",
                "VIRTUALMIN_RATE_QSP is not a drover setting (did you mean VIRTUALMIN_RATE_QPS?)",
            ]
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn the_packaged_examples_are_settings_drover_takes() {
        let packaging = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging");
        let overrides = Overrides {
            config_file: Some(packaging.join("drover.toml.example")),
            ..Default::default()
        };
        let config = Config::load_from(overrides, BTreeMap::new()).unwrap();
        assert_eq!(
            config.virtualmin.timeouts.provisioning,
            Duration::from_secs(180)
        );
        let env: BTreeMap<String, String> =
            std::fs::read_to_string(packaging.join("drover.env.example"))
                .unwrap()
                .lines()
                .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
                .map(|line| {
                    let (name, value) = line.split_once('=').unwrap();
                    (name.to_owned(), value.to_owned())
                })
                .collect();
        assert_eq!(
            unknown_settings(&env, "DROVER_SECRET_"),
            Vec::<String>::new()
        );
        let config = Config::load_from(Overrides::default(), env).unwrap();
        assert_eq!(config.database_url, "postgres://drover@db.internal/drover");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drover.toml");
        std::fs::write(&path, "[virtualmin]\nrate_qsp = 2\n").unwrap();
        let overrides = Overrides {
            config_file: Some(path),
            ..Default::default()
        };
        let err = Config::load_from(overrides, BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'virtualmin.rate_qsp' is not a drover setting"),
            "{err}"
        );
    }
}
