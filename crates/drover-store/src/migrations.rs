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
    migrations!("postgres": 1 => "0001_initial", 2 => "0002_engine", 3 => "0003_dns", 4 => "0004_health", 5 => "0005_drift", 6 => "0006_provider_calls", 7 => "0007_migrations", 8 => "0008_failover", 9 => "0009_usage", 10 => "0010_real_server", 11 => "0011_converge_endings", 12 => "0012_dns_provider_settings")
}

pub fn sqlite() -> Migrator {
    migrations!("sqlite": 1 => "0001_initial", 2 => "0002_engine", 3 => "0003_dns", 4 => "0004_health", 5 => "0005_drift", 6 => "0006_provider_calls", 7 => "0007_migrations", 8 => "0008_failover", 9 => "0009_usage", 10 => "0010_real_server", 11 => "0011_converge_endings", 12 => "0012_dns_provider_settings")
}
