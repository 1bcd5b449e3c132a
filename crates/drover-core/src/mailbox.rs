//! Mailboxes: an account's mail users, kept in drover's records and made to exist on the
//! account's server by its converge job, like the account itself.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Feature, PlanSpec};

/// A mailbox's name: the local part of its address, the short user name Virtualmin lists
/// (it keeps the unix user as `name.prefix`). Lower-case letters, digits, `.`, `_` and `-`,
/// starting with a letter, at most 64 characters (an address's local part).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MailboxName(String);

/// Names a Virtualmin server keeps for itself: its own (`domains`, `virtualmin-backup`) and
/// the aliases its default template gives every domain, which a mailbox would collide with.
const RESERVED: &[&str] = &[
    "abuse",
    "domains",
    "hostmaster",
    "postmaster",
    "virtualmin-backup",
    "webmaster",
];

impl MailboxName {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let expected = "1 to 64 characters: a lower-case letter, then lower-case letters, \
                        digits, '.', '_' or '-', not ending in '.' and without '..'";
        let mut chars = input.chars();
        let ok = input.len() <= 64
            && chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
            && !input.ends_with('.')
            && !input.contains("..");
        if !ok {
            return Err(Error::invalid("mailbox name", input, expected));
        }
        if RESERVED.contains(&input) {
            return Err(Error::invalid(
                "mailbox name",
                input,
                format!(
                    "a name the server keeps for itself or for a domain's aliases is refused: {}",
                    RESERVED.join(", ")
                ),
            ));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MailboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for MailboxName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MailboxName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A mailbox owner's real name as the server keeps it (a passwd field): one line of at most
/// 100 characters, without ':'.
pub fn real_name(input: &str) -> Result<&str, Error> {
    let name = input.trim();
    if name.chars().count() > 100 || name.contains(':') || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "real name",
            input,
            "at most 100 characters on one line, without ':'",
        ));
    }
    Ok(name)
}

/// Whether an account on `plan` may have one more mailbox, having `count` (not being
/// deleted): its plan must give it mail (a server makes a user without it, but no mailbox),
/// and not limit it to `count`.
pub fn check_mailbox_limit(plan: &PlanSpec, count: usize) -> Result<(), Error> {
    if !plan.features.is_empty() && !plan.features.contains(&Feature::Mail) {
        return Err(Error::FeatureMissing {
            plan: plan.name.to_string(),
            feature: Feature::Mail,
            what: "mailboxes",
        });
    }
    match plan.max_mailboxes {
        Some(limit) if count >= limit as usize => Err(Error::OverLimit {
            what: "mailboxes",
            plan: plan.name.to_string(),
            limit,
        }),
        _ => Ok(()),
    }
}

/// The quota a mailbox is held to (MB): its own, else its plan's; `None` is no limit.
pub fn effective_mailbox_quota(own_mb: Option<u64>, plan_mb: Option<u64>) -> Option<u64> {
    own_mb.or(plan_mb)
}

/// Checks a mailbox's own quota (MB) against its plan's mailbox quota, which bounds it; returns
/// the quota it is held to.
pub fn mailbox_quota(plan: &PlanSpec, own_mb: Option<u64>) -> Result<Option<u64>, Error> {
    match (own_mb, plan.mailbox_quota_mb) {
        (Some(0), _) => Err(Error::invalid(
            "mailbox quota (MB)",
            "0",
            "at least 1 MB; leave it out for the plan's",
        )),
        (Some(own), Some(limit)) if own > limit => Err(Error::invalid(
            "mailbox quota (MB)",
            &own.to_string(),
            format!(
                "at most {limit} MB, the mailbox quota of plan '{}'",
                plan.name
            ),
        )),
        (Some(own), _) if own > PlanSpec::MAX_MB => Err(Error::invalid(
            "mailbox quota (MB)",
            &own.to_string(),
            format!("at most {} MB", PlanSpec::MAX_MB),
        )),
        (own, plan_quota) => Ok(effective_mailbox_quota(own, plan_quota)),
    }
}

impl MailboxName {
    /// Accepts `typed` as confirming the mailbox's deletion (its mail is lost) when it is
    /// this name.
    pub fn confirm(&self, typed: &str) -> Result<(), Error> {
        if typed.trim() == self.0 {
            return Ok(());
        }
        Err(Error::ConfirmationMismatch {
            what: "mailbox name",
            purpose: format!("delete mailbox {} and its mail", self.0),
            expected: self.0.clone(),
            got: crate::error::shown(typed),
        })
    }
}

/// A change of a mailbox must change something: its real name, its password, its quota.
pub fn check_mailbox_change(real_name: bool, password: bool, quota: bool) -> Result<(), Error> {
    if real_name || password || quota {
        return Ok(());
    }
    Err(Error::invalid(
        "mailbox change",
        "nothing",
        "a real name, a password or a quota",
    ))
}

/// A mailbox as drover's records say it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedMailbox {
    pub name: MailboxName,
    pub real_name: String,
    /// Its quota (MB), its own or its plan's; `None` is no limit.
    pub quota_mb: Option<u64>,
    /// Its password changed since the server last took one.
    pub password_pending: bool,
    /// Deleted in drover: to go from the server.
    pub deleting: bool,
}

/// A mailbox as the server lists it (`list-users`, by its short name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMailbox {
    pub name: String,
    pub real_name: String,
    /// Its quota in bytes (0: none), when the server keeps quotas; `None` when it does not
    /// (it then takes a quota at creation and ignores it, and refuses one in a change).
    pub quota_bytes: Option<u64>,
}

impl ListedMailbox {
    /// Whether the server holds the mailbox to another quota than `quota_mb`.
    pub fn quota_differs(&self, quota_mb: Option<u64>) -> bool {
        self.quota_bytes
            .is_some_and(|bytes| bytes != quota_mb.map_or(0, |mb| mb * 1024 * 1024))
    }
}

/// One change to an account's mailboxes on its server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mailbox_action", rename_all = "snake_case")]
pub enum MailboxAction {
    /// Created with its real name, password and quota.
    Create {
        name: MailboxName,
        real_name: String,
        quota_mb: Option<u64>,
    },
    SetRealName {
        name: MailboxName,
        real_name: String,
    },
    SetPassword {
        name: MailboxName,
    },
    /// Only on a server that keeps quotas.
    SetQuota {
        name: MailboxName,
        quota_mb: Option<u64>,
    },
    Delete {
        name: MailboxName,
    },
}

/// The changes that make the server's mailboxes of an account match drover's, deletions
/// first (the server holds an account to its plan's number of mailboxes). Mailboxes the server
/// has and drover does not know are left alone (drift reports them).
pub fn converge_mailboxes(
    wanted: &[WantedMailbox],
    listed: &[ListedMailbox],
) -> Vec<MailboxAction> {
    let mut actions = Vec::new();
    let (leaving, staying): (Vec<&WantedMailbox>, Vec<&WantedMailbox>) =
        wanted.iter().partition(|m| m.deleting);
    for mailbox in leaving.into_iter().chain(staying) {
        let on_server = listed.iter().find(|l| l.name == mailbox.name.as_str());
        let name = mailbox.name.clone();
        match (on_server, mailbox.deleting) {
            (None, true) => {}
            (Some(_), true) => actions.push(MailboxAction::Delete { name }),
            (None, false) => actions.push(MailboxAction::Create {
                name,
                real_name: mailbox.real_name.clone(),
                quota_mb: mailbox.quota_mb,
            }),
            (Some(listed), false) => {
                if listed.real_name != mailbox.real_name {
                    actions.push(MailboxAction::SetRealName {
                        name: name.clone(),
                        real_name: mailbox.real_name.clone(),
                    });
                }
                if listed.quota_differs(mailbox.quota_mb) {
                    actions.push(MailboxAction::SetQuota {
                        name: name.clone(),
                        quota_mb: mailbox.quota_mb,
                    });
                }
                if mailbox.password_pending {
                    actions.push(MailboxAction::SetPassword { name });
                }
            }
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DomainName, ServiceStatus, check_resources_change};

    fn record(name: &str, real: &str) -> WantedMailbox {
        WantedMailbox {
            name: MailboxName::parse(name).unwrap(),
            real_name: real.into(),
            quota_mb: None,
            password_pending: false,
            deleting: false,
        }
    }

    fn on_server(name: &str, real: &str) -> ListedMailbox {
        ListedMailbox {
            name: name.into(),
            real_name: real.into(),
            quota_bytes: None,
        }
    }

    #[test]
    fn mailbox_names_are_local_parts_the_server_takes() {
        for ok in ["ana", "ana.pop", "a-b_c9", &"a".repeat(64)] {
            assert!(MailboxName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Ana",
            "9lives",
            "ana..pop",
            "ana.",
            "bad user!",
            "a:b",
            "ana@x.ro",
            &"a".repeat(65),
        ] {
            let err = MailboxName::parse(bad).unwrap_err().to_string();
            assert!(err.contains("mailbox name"), "{bad}: {err}");
        }
        let err = MailboxName::parse("postmaster").unwrap_err().to_string();
        assert!(err.contains("keeps for itself"), "{err}");
    }

    #[test]
    fn real_names_are_one_line_without_colons() {
        assert_eq!(real_name("  Ana Pop "), Ok("Ana Pop"));
        assert_eq!(real_name("Ștefan Țuțu"), Ok("Ștefan Țuțu"));
        for bad in ["a:b", "two\nlines", &"x".repeat(101)] {
            assert!(real_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_terminated_services_mailboxes_no_longer_change() {
        let domain = DomainName::parse("posta.ro").unwrap();
        for open in [
            ServiceStatus::Pending,
            ServiceStatus::Active,
            ServiceStatus::Suspended,
        ] {
            assert_eq!(
                check_resources_change(open, &domain, "mailboxes"),
                Ok(()),
                "{open:?}"
            );
        }
        assert!(check_resources_change(ServiceStatus::Terminated, &domain, "mailboxes").is_err());
        let name = MailboxName::parse("ana").unwrap();
        assert_eq!(name.confirm(" ana "), Ok(()));
        let err = name.confirm("ion").unwrap_err().to_string();
        assert!(err.contains("repeat its mailbox name ana exactly"), "{err}");
    }

    #[test]
    fn a_plan_gives_mail_and_limits_how_many_mailboxes_an_account_has() {
        let plan = |features: serde_json::Value, max: Option<u32>| -> PlanSpec {
            serde_json::from_value(serde_json::json!({
                "name": "Web", "features": features, "max_mailboxes": max
            }))
            .unwrap()
        };
        let mail = serde_json::json!(["web", "mail"]);
        assert_eq!(check_mailbox_limit(&plan(mail.clone(), None), 1000), Ok(()));
        assert_eq!(check_mailbox_limit(&plan(mail.clone(), Some(3)), 2), Ok(()));
        let err = check_mailbox_limit(&plan(mail.clone(), Some(3)), 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plan 'Web' allows 3 mailboxes per account, and the account has them all"
        );
        assert!(check_mailbox_limit(&plan(mail, Some(0)), 0).is_err());
        // The server's default features include mail; a plan that names its own must say so.
        assert_eq!(
            check_mailbox_limit(&plan(serde_json::json!([]), None), 0),
            Ok(())
        );
        let err = check_mailbox_limit(&plan(serde_json::json!(["web"]), None), 0).unwrap_err();
        assert!(
            err.to_string()
                .contains("does not give its accounts the feature mail"),
            "{err}"
        );
    }

    #[test]
    fn mailboxes_converge_with_the_fewest_changes() {
        let mut gone = record("old", "");
        gone.deleting = true;
        let mut fresh_password = record("ana", "Ana Pop");
        fresh_password.password_pending = true;
        let wanted = [
            fresh_password,
            record("ion", "Ion"),
            record("eva", "Eva"),
            gone.clone(),
        ];
        let listed = [
            on_server("ana", "Ana"),
            on_server("eva", "Eva"),
            on_server("old", ""),
            on_server("stranger", ""),
        ];
        let name = |n: &str| MailboxName::parse(n).unwrap();
        assert_eq!(
            converge_mailboxes(&wanted, &listed),
            [
                MailboxAction::Delete { name: name("old") },
                MailboxAction::SetRealName {
                    name: name("ana"),
                    real_name: "Ana Pop".into()
                },
                MailboxAction::SetPassword { name: name("ana") },
                MailboxAction::Create {
                    name: name("ion"),
                    real_name: "Ion".into(),
                    quota_mb: None,
                },
            ]
        );
        // Once the server matches, nothing is asked again; a deleted one already gone stays so.
        let done = [
            on_server("ana", "Ana Pop"),
            on_server("ion", "Ion"),
            on_server("eva", "Eva"),
        ];
        let mut settled = wanted.to_vec();
        settled[0].password_pending = false;
        assert_eq!(converge_mailboxes(&settled, &done), []);
    }

    #[test]
    fn a_quota_is_the_mailboxs_own_within_its_plans_and_changed_only_where_kept() {
        let plan = |quota: Option<u64>| -> PlanSpec {
            serde_json::from_value(serde_json::json!({"name": "Mail", "mailbox_quota_mb": quota}))
                .unwrap()
        };
        assert_eq!(mailbox_quota(&plan(Some(500)), None), Ok(Some(500)));
        assert_eq!(mailbox_quota(&plan(Some(500)), Some(200)), Ok(Some(200)));
        assert_eq!(mailbox_quota(&plan(None), Some(200)), Ok(Some(200)));
        assert_eq!(mailbox_quota(&plan(None), None), Ok(None));
        let err = mailbox_quota(&plan(Some(500)), Some(501))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid mailbox quota (MB) '501': at most 500 MB, the mailbox quota of plan 'Mail'"
        );
        assert!(mailbox_quota(&plan(None), Some(0)).is_err());
        // The server keeps quotas: a different one is set; without quotas nothing is asked.
        let mut ana = record("ana", "Ana");
        ana.quota_mb = Some(100);
        let kept = ListedMailbox {
            quota_bytes: Some(50 * 1024 * 1024),
            ..on_server("ana", "Ana")
        };
        let name = MailboxName::parse("ana").unwrap();
        assert_eq!(
            converge_mailboxes(std::slice::from_ref(&ana), std::slice::from_ref(&kept)),
            [MailboxAction::SetQuota {
                name,
                quota_mb: Some(100)
            }]
        );
        let same = ListedMailbox {
            quota_bytes: Some(100 * 1024 * 1024),
            ..kept
        };
        assert_eq!(converge_mailboxes(std::slice::from_ref(&ana), &[same]), []);
        assert_eq!(converge_mailboxes(&[ana], &[on_server("ana", "Ana")]), []);
    }
}
