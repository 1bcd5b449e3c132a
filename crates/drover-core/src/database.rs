//! Databases: an account's MySQL (or PostgreSQL) databases, kept in drover's records and made
//! to exist on the account's server by its converge job, like its mailboxes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, Feature, PlanSpec, UnixUsername};

/// The database servers a Virtualmin account can have databases on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DatabaseType {
    Mysql,
    Postgres,
}

impl DatabaseType {
    pub fn parse(input: &str) -> Result<Self, Error> {
        match input.trim() {
            "mysql" => Ok(Self::Mysql),
            "postgres" => Ok(Self::Postgres),
            _ => Err(Error::invalid("database type", input, "mysql or postgres")),
        }
    }

    /// The name the server gives this type (`--type`, and its listing's `type`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mysql => "mysql",
            Self::Postgres => "postgres",
        }
    }

    /// The plan feature an account needs for databases of this type.
    pub fn feature(self) -> Feature {
        match self {
            Self::Mysql => Feature::Mysql,
            Self::Postgres => Feature::Postgres,
        }
    }
}

impl fmt::Display for DatabaseType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A database's name as the server keeps it: the account's prefix (its unix user name, with
/// `-` as `_`, which is also the name of the database the server makes with the account), `_`,
/// then lower-case letters, digits and `_`; at most 64 characters (MySQL's limit).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DatabaseName(String);

/// The longest database name MySQL keeps.
const MAX_LEN: usize = 64;

impl DatabaseName {
    /// The account's prefix: its databases' names start with it and `_`.
    pub fn prefix(user: &UnixUsername) -> String {
        user.as_str().replace('-', "_")
    }

    /// Parses a name for an account of `user`: a name without the account's prefix gets it (as
    /// the server's own template would add it), so `shop` and `ana_shop` are one name for `ana`.
    pub fn parse(input: &str, user: &UnixUsername) -> Result<Self, Error> {
        let prefix = Self::prefix(user);
        let input = input.trim();
        let expected = || {
            format!(
                "lower-case letters, digits and '_', starting with a letter; the account's \
                 prefix {prefix}_ is added when missing, and the whole name is at most \
                 {MAX_LEN} characters"
            )
        };
        let ok = input.starts_with(|c: char| c.is_ascii_lowercase())
            && input
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            return Err(Error::invalid("database name", input, expected()));
        }
        if input == prefix {
            return Err(Error::invalid(
                "database name",
                input,
                format!(
                    "another name: {prefix} is the database the server makes with the account \
                     itself"
                ),
            ));
        }
        let name = if input.starts_with(&format!("{prefix}_")) {
            input.to_owned()
        } else {
            format!("{prefix}_{input}")
        };
        if name.len() > MAX_LEN {
            return Err(Error::invalid("database name", &name, expected()));
        }
        Ok(Self(name))
    }

    /// A name as a server lists it, for an adopted account: kept as the server has it, which
    /// may lack the account's prefix or hold `-` (the server takes both when an operator makes
    /// a database by hand); at most 64 characters, as MySQL keeps.
    pub fn listed(input: &str) -> Result<Self, Error> {
        let ok = !input.is_empty()
            && input.len() <= MAX_LEN
            && input
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
        if !ok {
            return Err(Error::invalid(
                "database name",
                input,
                format!("lower-case letters, digits, '_' and '-', at most {MAX_LEN} characters"),
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// A name read back from drover's own records (checked when it was recorded).
    pub fn from_record(name: String) -> Self {
        Self(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Accepts `typed` as confirming the database's deletion (its tables are lost) when it is
    /// this name.
    pub fn confirm(&self, typed: &str) -> Result<(), Error> {
        if typed.trim() == self.0 {
            return Ok(());
        }
        Err(Error::ConfirmationMismatch {
            what: "database name",
            purpose: format!("delete database {} and its tables", self.0),
            expected: self.0.clone(),
            got: crate::error::shown(typed),
        })
    }
}

/// Read back as a listed name (the loosest of the rules a recorded name met).
impl<'de> Deserialize<'de> for DatabaseName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::listed(&raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for DatabaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether an account on `plan` may have one more database of `kind`, having `count` (not
/// being deleted): the plan must give the account that database server (a plan without
/// features gets the server's defaults, which include MySQL but not PostgreSQL) and not limit
/// it to `count`.
pub fn check_database_limit(
    plan: &PlanSpec,
    kind: DatabaseType,
    count: usize,
) -> Result<(), Error> {
    let feature = kind.feature();
    let given = if plan.features.is_empty() {
        kind == DatabaseType::Mysql
    } else {
        plan.features.contains(&feature)
    };
    if !given {
        return Err(Error::FeatureMissing {
            plan: plan.name.to_string(),
            feature,
            what: match kind {
                DatabaseType::Mysql => "MySQL databases",
                DatabaseType::Postgres => "PostgreSQL databases",
            },
        });
    }
    match plan.max_databases {
        Some(limit) if count >= limit as usize => Err(Error::OverLimit {
            what: "databases",
            plan: plan.name.to_string(),
            limit,
        }),
        _ => Ok(()),
    }
}

/// A database as drover's records say it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedDatabase {
    pub name: DatabaseName,
    pub kind: DatabaseType,
    /// Deleted in drover: to go from the server.
    pub deleting: bool,
}

/// A database as the server lists it (`list-databases`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDatabase {
    pub name: String,
    pub kind: String,
}

/// One change to an account's databases on its server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "database_action", rename_all = "snake_case")]
pub enum DatabaseAction {
    Create {
        name: DatabaseName,
        kind: DatabaseType,
    },
    Delete {
        name: DatabaseName,
        kind: DatabaseType,
    },
}

/// The changes that make the server's databases of an account match drover's, deletions
/// first. Databases the server has and drover does not know (its own default one among them)
/// are left alone; drift reports those that are not the server's own.
pub fn converge_databases(
    wanted: &[WantedDatabase],
    listed: &[ListedDatabase],
) -> Vec<DatabaseAction> {
    let (leaving, staying): (Vec<&WantedDatabase>, Vec<&WantedDatabase>) =
        wanted.iter().partition(|d| d.deleting);
    let mut actions = Vec::new();
    for db in leaving.into_iter().chain(staying) {
        let on_server = listed
            .iter()
            .any(|l| l.name == db.name.as_str() && l.kind == db.kind.as_str());
        let (name, kind) = (db.name.clone(), db.kind);
        match (on_server, db.deleting) {
            (true, true) => actions.push(DatabaseAction::Delete { name, kind }),
            (false, false) => actions.push(DatabaseAction::Create { name, kind }),
            _ => {}
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UnixUsername {
        UnixUsername::parse(name).unwrap()
    }

    #[test]
    fn database_names_carry_the_accounts_prefix() {
        let ana = user("ana");
        assert_eq!(
            DatabaseName::parse("shop", &ana).unwrap().as_str(),
            "ana_shop"
        );
        assert_eq!(
            DatabaseName::parse(" ana_shop ", &ana).unwrap().as_str(),
            "ana_shop"
        );
        let dashed = user("my-site");
        assert_eq!(
            DatabaseName::parse("wiki", &dashed).unwrap().as_str(),
            "my_site_wiki"
        );
        for bad in ["", "Shop", "9lives", "bad name!", "shop-2", "ș"] {
            let err = DatabaseName::parse(bad, &ana).unwrap_err().to_string();
            assert!(err.contains("database name"), "{bad}: {err}");
        }
        let err = DatabaseName::parse("ana", &ana).unwrap_err().to_string();
        assert!(err.contains("the server makes with the account"), "{err}");
        // 64 characters in all, the prefix counted.
        assert!(DatabaseName::parse(&"x".repeat(60), &ana).is_ok());
        let err = DatabaseName::parse(&"x".repeat(61), &ana).unwrap_err();
        assert!(err.to_string().contains("at most 64"), "{err}");
        let name = DatabaseName::parse("shop", &ana).unwrap();
        assert_eq!(name.confirm(" ana_shop "), Ok(()));
        assert!(name.confirm("shop").is_err());
    }

    #[test]
    fn a_plan_gives_database_servers_and_limits_how_many_databases_an_account_has() {
        let plan = |features: serde_json::Value, max: Option<u32>| -> PlanSpec {
            serde_json::from_value(serde_json::json!({
                "name": "Web", "features": features, "max_databases": max
            }))
            .unwrap()
        };
        let none = serde_json::json!([]);
        assert_eq!(
            check_database_limit(&plan(none.clone(), None), DatabaseType::Mysql, 99),
            Ok(())
        );
        // The server's defaults give MySQL only.
        let err = check_database_limit(&plan(none, None), DatabaseType::Postgres, 0).unwrap_err();
        assert!(err.to_string().contains("feature postgres"), "{err}");
        let both = serde_json::json!(["web", "mysql", "postgres"]);
        assert_eq!(
            check_database_limit(&plan(both.clone(), Some(2)), DatabaseType::Postgres, 1),
            Ok(())
        );
        let err = check_database_limit(&plan(both, Some(2)), DatabaseType::Mysql, 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plan 'Web' allows 2 databases per account, and the account has them all"
        );
        let web = serde_json::json!(["web"]);
        assert!(check_database_limit(&plan(web, None), DatabaseType::Mysql, 0).is_err());
    }

    #[test]
    fn databases_converge_with_the_fewest_changes() {
        let ana = user("ana");
        let want = |name: &str, deleting| WantedDatabase {
            name: DatabaseName::parse(name, &ana).unwrap(),
            kind: DatabaseType::Mysql,
            deleting,
        };
        let listed = |name: &str| ListedDatabase {
            name: name.into(),
            kind: "mysql".into(),
        };
        let wanted = [want("shop", false), want("blog", false), want("old", true)];
        let on_server = [
            listed("ana"),
            listed("ana_blog"),
            listed("ana_old"),
            listed("x"),
        ];
        let name = |n: &str| DatabaseName::parse(n, &ana).unwrap();
        assert_eq!(
            converge_databases(&wanted, &on_server),
            [
                DatabaseAction::Delete {
                    name: name("old"),
                    kind: DatabaseType::Mysql
                },
                DatabaseAction::Create {
                    name: name("shop"),
                    kind: DatabaseType::Mysql
                },
            ]
        );
        let done = [listed("ana"), listed("ana_blog"), listed("ana_shop")];
        assert_eq!(converge_databases(&wanted, &done), []);
    }
}
