//! drover's own schema, one folder per backend, embedded in the binary. Public for the tests
//! that migrate data written by an earlier schema.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// One migration file per step; the version is the file's number.
macro_rules! migrations {
    ($dir:literal: $($version:literal => $name:literal),+ $(,)?) => {
        Migrator::with_migrations(vec![$(
            Migration::new(
                $version,
                Cow::Borrowed($name),
                MigrationType::Simple,
                include_str!(concat!("../migrations/", $dir, "/", $name, ".sql")).into_sql_str(),
                false,
            ),
        )+])
    };
}

pub fn postgres() -> Migrator {
    migrations!("postgres": 1 => "0001_initial", 2 => "0002_engine", 3 => "0003_dns", 4 => "0004_health", 5 => "0005_drift", 6 => "0006_provider_calls", 7 => "0007_migrations", 8 => "0008_failover", 9 => "0009_usage", 10 => "0010_real_server", 11 => "0011_converge_endings", 12 => "0012_dns_provider_settings", 13 => "0013_seal_key", 14 => "0014_mailboxes", 15 => "0015_mailbox_drift", 16 => "0016_databases", 17 => "0017_aliases_and_subservers", 18 => "0018_login_links", 19 => "0019_certificates", 20 => "0020_mailbox_quotas", 21 => "0021_backups", 22 => "0022_ssh_backup_destinations", 23 => "0023_restore_onto_another_server", 24 => "0024_backup_key_files", 25 => "0025_moves_without_content", 26 => "0026_adopted_mailboxes", 27 => "0027_certificate_names", 28 => "0028_ui_sessions", 29 => "0029_webhooks", 30 => "0030_break_glass", 31 => "0031_server_bootstraps")
}

pub fn sqlite() -> Migrator {
    migrations!("sqlite": 1 => "0001_initial", 2 => "0002_engine", 3 => "0003_dns", 4 => "0004_health", 5 => "0005_drift", 6 => "0006_provider_calls", 7 => "0007_migrations", 8 => "0008_failover", 9 => "0009_usage", 10 => "0010_real_server", 11 => "0011_converge_endings", 12 => "0012_dns_provider_settings", 13 => "0013_seal_key", 14 => "0014_mailboxes", 15 => "0015_mailbox_drift", 16 => "0016_databases", 17 => "0017_aliases_and_subservers", 18 => "0018_login_links", 19 => "0019_certificates", 20 => "0020_mailbox_quotas", 21 => "0021_backups", 22 => "0022_ssh_backup_destinations", 23 => "0023_restore_onto_another_server", 24 => "0024_backup_key_files", 25 => "0025_moves_without_content", 26 => "0026_adopted_mailboxes", 27 => "0027_certificate_names", 28 => "0028_ui_sessions", 29 => "0029_webhooks", 30 => "0030_break_glass", 31 => "0031_server_bootstraps")
}

/// The versions of drover's migrations a database has (the table is missing before the first).
pub(crate) const APPLIED_VERSIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success";

/// What bringing a database's schema up to date applied, oldest first; empty when it was
/// up to date already.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// drover's migrations, by name (`0003_dns`).
    pub drover: Vec<String>,
    /// River's, by version.
    pub river: Vec<i64>,
    /// drover's schema version now.
    pub version: i64,
}

impl Applied {
    /// `migrator`'s migrations that `before` (the versions a database had) lacked.
    pub(crate) fn new(migrator: &Migrator, before: &[i64], river: Vec<i64>) -> Self {
        Self {
            drover: migrator
                .iter()
                .filter(|m| !before.contains(&m.version))
                .map(|m| m.description.to_string())
                .collect(),
            river,
            version: migrator.iter().map(|m| m.version).max().unwrap_or(0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.drover.is_empty() && self.river.is_empty()
    }
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return write!(f, "up to date at schema version {}", self.version);
        }
        let mut parts = Vec::new();
        if !self.drover.is_empty() {
            parts.push(self.drover.join(", "));
        }
        if !self.river.is_empty() {
            let versions: Vec<String> = self.river.iter().map(i64::to_string).collect();
            parts.push(format!("River's {}", versions.join(", ")));
        }
        write!(
            f,
            "applied {}; now at schema version {}",
            parts.join("; "),
            self.version
        )
    }
}
