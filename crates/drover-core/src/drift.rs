//! Drift: how a server's domains differ from drover's accounts on it, what to do about each
//! finding, and when a repair pass is too large to run without an operator's say-so.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{AccountId, DesiredState, DomainName, Feature};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// drover's account is not on its server.
    Missing,
    /// A top-level domain on the server that no account of drover's is.
    Orphan,
    /// Enabled where it should be disabled, or the reverse, or present where it should be gone.
    StateMismatch,
    /// On another plan than the account's.
    PlanMismatch,
    /// Lacking a feature its plan gives it.
    FeatureMissing,
    /// One of the account's mailboxes is not on the server.
    MailboxMissing,
    /// A mailbox on the server that drover's records of the account do not hold (logged only:
    /// it may hold mail).
    MailboxOrphan,
    /// A mailbox whose real name differs from drover's.
    MailboxMismatch,
    /// One of the account's databases is not on the server.
    DatabaseMissing,
    /// A database on the server that drover's records of the account do not hold, other than
    /// the one the server makes with the account (logged only: it may hold tables).
    DatabaseOrphan,
    /// One of the account's alias domains is not on the server.
    AliasMissing,
    /// An alias of the account's domain on the server that drover's records do not hold
    /// (logged only: an operator may have made it for the customer).
    AliasOrphan,
    /// One of the account's sub-servers is not on the server.
    SubserverMissing,
    /// A sub-server of the account's domain on the server that drover's records do not hold
    /// (logged only: it may hold a website).
    SubserverOrphan,
}

impl DriftKind {
    pub const ALL: [Self; 14] = [
        Self::Missing,
        Self::Orphan,
        Self::StateMismatch,
        Self::PlanMismatch,
        Self::FeatureMissing,
        Self::MailboxMissing,
        Self::MailboxOrphan,
        Self::MailboxMismatch,
        Self::DatabaseMissing,
        Self::DatabaseOrphan,
        Self::AliasMissing,
        Self::AliasOrphan,
        Self::SubserverMissing,
        Self::SubserverOrphan,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Orphan => "orphan",
            Self::StateMismatch => "state_mismatch",
            Self::PlanMismatch => "plan_mismatch",
            Self::FeatureMissing => "feature_missing",
            Self::MailboxMissing => "mailbox_missing",
            Self::MailboxOrphan => "mailbox_orphan",
            Self::MailboxMismatch => "mailbox_mismatch",
            Self::DatabaseMissing => "database_missing",
            Self::DatabaseOrphan => "database_orphan",
            Self::AliasMissing => "alias_missing",
            Self::AliasOrphan => "alias_orphan",
            Self::SubserverMissing => "subserver_missing",
            Self::SubserverOrphan => "subserver_orphan",
        }
    }

    pub fn parse(input: &str) -> Result<Self, crate::Error> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == input.trim())
            .ok_or_else(|| {
                crate::Error::invalid(
                    "drift kind",
                    input,
                    "missing, orphan, state_mismatch, plan_mismatch, feature_missing, \
                     mailbox_missing, mailbox_orphan, mailbox_mismatch, database_missing, \
                     database_orphan, alias_missing, alias_orphan, subserver_missing or \
                     subserver_orphan",
                )
            })
    }
}

/// What drover expects on a server: one of its accounts there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub account: AccountId,
    pub domain: DomainName,
    pub state: DesiredState,
    pub plan: String,
    /// The features its plan gives it on the server (empty: the server's defaults, unchecked).
    pub features: Vec<Feature>,
    /// Its mailboxes, those being deleted included (the next converge removes them; drift
    /// neither misses nor reports them).
    pub mailboxes: Vec<ExpectedMailbox>,
    /// The name of the database the server makes with the account (not one of drover's).
    pub own_database: String,
    /// Its databases, those being deleted included.
    pub databases: Vec<ExpectedDatabase>,
    /// Its alias domains: the name, and whether it is being deleted.
    pub aliases: Vec<(String, bool)>,
    /// Its sub-servers: the name, and whether it is being deleted.
    pub subservers: Vec<(String, bool)>,
}

/// One of an account's databases as drift compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedDatabase {
    pub name: String,
    pub kind: String,
    pub deleting: bool,
}

/// One of an account's mailboxes as drift compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedMailbox {
    pub name: String,
    pub real_name: String,
    /// Its quota (MB), its own or its plan's; `None` is no limit.
    pub quota_mb: Option<u64>,
    pub deleting: bool,
}

impl Expected {
    /// Whether the account is meant to exist: a terminated one still on its server is not
    /// part of the server's size.
    pub fn is_live(&self) -> bool {
        self.state != DesiredState::Absent
    }
}

/// A domain as the server listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub domain: String,
    pub disabled: bool,
    pub plan: Option<String>,
    pub features: Vec<Feature>,
    /// Set for sub-servers and aliases: they belong to their parent's account.
    pub parent: Option<String>,
    /// Set for aliases: the domain whose site and mail they serve.
    pub alias_of: Option<String>,
}

/// One difference between a server and drover's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DriftFinding {
    pub kind: DriftKind,
    pub domain: String,
    pub account_id: Option<AccountId>,
    /// What drover's records say (`enabled`, a plan name…).
    pub expected: Option<String>,
    /// What the server has.
    pub found: Option<String>,
    /// The mailbox, database, alias domain or sub-server a finding about one is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

fn state_name(state: DesiredState) -> &'static str {
    match state {
        DesiredState::Enabled => "enabled",
        DesiredState::Disabled => "disabled",
        DesiredState::Absent => "absent",
    }
}

/// Compares one complete listing of a server with drover's accounts on it. (An incomplete or
/// failed listing must never reach here: no drift is derived from a failed observation.)
pub fn find_drift(expected: &[Expected], listed: &[Listed]) -> Vec<DriftFinding> {
    let on_server: BTreeMap<&str, &Listed> = listed
        .iter()
        .filter(|l| l.parent.is_none())
        .map(|l| (l.domain.as_str(), l))
        .collect();
    let mut findings = Vec::new();
    for want in expected {
        let domain = want.domain.as_str();
        let finding = |kind, expected: &str, found: Option<String>| DriftFinding {
            kind,
            domain: domain.to_owned(),
            account_id: Some(want.account),
            expected: Some(expected.to_owned()),
            found,
            resource: None,
        };
        match (on_server.get(domain), want.state) {
            (None, DesiredState::Absent) => {}
            (None, state) => findings.push(finding(DriftKind::Missing, state_name(state), None)),
            (Some(_), DesiredState::Absent) => findings.push(finding(
                DriftKind::StateMismatch,
                "absent",
                Some("present".into()),
            )),
            (Some(have), state) => {
                let found_state = if have.disabled { "disabled" } else { "enabled" };
                if found_state != state_name(state) {
                    findings.push(finding(
                        DriftKind::StateMismatch,
                        state_name(state),
                        Some(found_state.into()),
                    ));
                }
                if have.plan.as_deref().is_some_and(|p| p != want.plan) {
                    findings.push(finding(
                        DriftKind::PlanMismatch,
                        &want.plan,
                        have.plan.clone(),
                    ));
                }
                let missing: Vec<&str> = want
                    .features
                    .iter()
                    .filter(|f| !have.features.contains(f))
                    .map(|f| f.as_str())
                    .collect();
                // A disabled domain's features are off by design; they are checked enabled.
                if !missing.is_empty() && !have.disabled {
                    let listed: Vec<&str> = have.features.iter().map(|f| f.as_str()).collect();
                    findings.push(finding(
                        DriftKind::FeatureMissing,
                        &missing.join(" "),
                        Some(listed.join(" ")),
                    ));
                }
            }
        }
    }
    let ours: std::collections::BTreeSet<&str> =
        expected.iter().map(|e| e.domain.as_str()).collect();
    for (domain, have) in on_server {
        if !ours.contains(domain) {
            findings.push(DriftFinding {
                kind: DriftKind::Orphan,
                domain: domain.to_owned(),
                account_id: None,
                expected: None,
                found: Some(if have.disabled { "disabled" } else { "enabled" }.to_owned()),
                resource: None,
            });
        }
    }
    findings
}

/// A mailbox as a server-wide listing shows it: its domain, its short name, its real name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUser {
    pub domain: String,
    pub name: String,
    pub real_name: String,
    /// In bytes (0: none), when the server keeps quotas.
    pub quota_bytes: Option<u64>,
}

/// Compares one complete listing of a server's mailboxes with the mailboxes of drover's
/// accounts there. Only accounts that must exist and that the server has are compared (a
/// missing domain is a finding of its own); a mailbox drover is deleting is not compared.
pub fn find_mailbox_drift(
    expected: &[Expected],
    domains: &[Listed],
    users: &[ListedUser],
) -> Vec<DriftFinding> {
    // Indexed once: a server holds thousands of accounts.
    let on_the_server: BTreeSet<&str> = domains.iter().map(|l| l.domain.as_str()).collect();
    let mut users_of: BTreeMap<&str, Vec<&ListedUser>> = BTreeMap::new();
    for user in users {
        users_of.entry(user.domain.as_str()).or_default().push(user);
    }
    let mut findings = Vec::new();
    for want in expected.iter().filter(|e| e.is_live()) {
        let domain = want.domain.as_str();
        if !on_the_server.contains(domain) {
            continue;
        }
        let finding =
            |kind, mailbox: &str, expected: Option<&str>, found: Option<&str>| DriftFinding {
                kind,
                domain: domain.to_owned(),
                account_id: Some(want.account),
                expected: expected.map(str::to_owned),
                found: found.map(str::to_owned),
                resource: Some(mailbox.to_owned()),
            };
        let on_server = users_of.get(domain).map_or(&[][..], Vec::as_slice);
        for mailbox in want.mailboxes.iter().filter(|m| !m.deleting) {
            let (name, real_name) = (&mailbox.name, &mailbox.real_name);
            match on_server.iter().find(|u| &u.name == name) {
                None => findings.push(finding(
                    DriftKind::MailboxMissing,
                    name,
                    Some(real_name),
                    None,
                )),
                Some(have) if &have.real_name != real_name => findings.push(finding(
                    DriftKind::MailboxMismatch,
                    name,
                    Some(real_name),
                    Some(&have.real_name),
                )),
                Some(have) => {
                    let listed = crate::ListedMailbox {
                        name: have.name.clone(),
                        real_name: have.real_name.clone(),
                        quota_bytes: have.quota_bytes,
                    };
                    if listed.quota_differs(mailbox.quota_mb) {
                        let quota = |mb: Option<u64>| match mb {
                            Some(mb) => format!("quota {mb} MB"),
                            None => "no quota".to_owned(),
                        };
                        let found = have
                            .quota_bytes
                            .map(|b| b / (1024 * 1024))
                            .filter(|mb| *mb > 0);
                        findings.push(finding(
                            DriftKind::MailboxMismatch,
                            name,
                            Some(&quota(mailbox.quota_mb)),
                            Some(&quota(found)),
                        ));
                    }
                }
            }
        }
        for have in on_server {
            if !want.mailboxes.iter().any(|m| m.name == have.name) {
                findings.push(finding(
                    DriftKind::MailboxOrphan,
                    &have.name,
                    None,
                    Some(&have.real_name),
                ));
            }
        }
    }
    findings
}

/// Compares the databases listed for some of a server's domains (`listed`, by domain: the
/// server has no server-wide listing, so drift lists only where there is something to compare)
/// with the databases of drover's accounts there.
pub fn find_database_drift(
    expected: &[Expected],
    listed: &BTreeMap<String, Vec<crate::ListedDatabase>>,
) -> Vec<DriftFinding> {
    let mut findings = Vec::new();
    for want in expected.iter().filter(|e| e.is_live()) {
        let domain = want.domain.as_str();
        let Some(on_server) = listed.get(domain) else {
            continue;
        };
        let finding =
            |kind, name: &str, expected: Option<&str>, found: Option<&str>| DriftFinding {
                kind,
                domain: domain.to_owned(),
                account_id: Some(want.account),
                expected: expected.map(str::to_owned),
                found: found.map(str::to_owned),
                resource: Some(name.to_owned()),
            };
        for db in want.databases.iter().filter(|d| !d.deleting) {
            let there = on_server
                .iter()
                .any(|l| l.name == db.name && l.kind == db.kind);
            if !there {
                findings.push(finding(
                    DriftKind::DatabaseMissing,
                    &db.name,
                    Some(&db.kind),
                    None,
                ));
            }
        }
        for have in on_server {
            let ours = have.name == want.own_database
                || want.databases.iter().any(|d| d.name == have.name);
            if !ours {
                findings.push(finding(
                    DriftKind::DatabaseOrphan,
                    &have.name,
                    None,
                    Some(&have.kind),
                ));
            }
        }
    }
    findings
}

/// Compares the aliases a server's domain listing shows with the alias domains of drover's
/// accounts there.
pub fn find_alias_drift(expected: &[Expected], listed: &[Listed]) -> Vec<DriftFinding> {
    find_nested_drift(
        expected,
        listed,
        |e| &e.aliases,
        |l| l.alias_of.as_deref(),
        (DriftKind::AliasMissing, DriftKind::AliasOrphan),
    )
}

/// Compares the sub-servers a server's domain listing shows with the sub-servers of drover's
/// accounts there.
pub fn find_subserver_drift(expected: &[Expected], listed: &[Listed]) -> Vec<DriftFinding> {
    find_nested_drift(
        expected,
        listed,
        |e| &e.subservers,
        |l| match l.alias_of {
            None => l.parent.as_deref(),
            Some(_) => None,
        },
        (DriftKind::SubserverMissing, DriftKind::SubserverOrphan),
    )
}

/// Domains the listing shows under an account's (`under`: the domain a listed one belongs
/// to, if of this kind), against those drover's records hold for it (`records`): each missing
/// one, and each drover does not know.
fn find_nested_drift(
    expected: &[Expected],
    listed: &[Listed],
    records: impl Fn(&Expected) -> &[(String, bool)],
    under: impl Fn(&Listed) -> Option<&str>,
    (missing, orphan): (DriftKind, DriftKind),
) -> Vec<DriftFinding> {
    // Indexed once: a server holds thousands of accounts.
    let on_the_server: BTreeSet<&str> = listed.iter().map(|l| l.domain.as_str()).collect();
    let mut nested: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for l in listed {
        if let Some(owner) = under(l) {
            nested.entry(owner).or_default().push(l.domain.as_str());
        }
    }
    let mut findings = Vec::new();
    for want in expected.iter().filter(|e| e.is_live()) {
        let domain = want.domain.as_str();
        if !on_the_server.contains(domain) {
            continue;
        }
        let finding = |kind, name: &str| DriftFinding {
            kind,
            domain: domain.to_owned(),
            account_id: Some(want.account),
            expected: None,
            found: None,
            resource: Some(name.to_owned()),
        };
        let on_server = nested.get(domain).map_or(&[][..], Vec::as_slice);
        let ours = records(want);
        for (name, deleting) in ours {
            if !deleting && !on_server.contains(&name.as_str()) {
                findings.push(finding(missing, name));
            }
        }
        for &have in on_server {
            if !ours.iter().any(|(n, _)| n == have) {
                findings.push(finding(orphan, have));
            }
        }
    }
    findings
}

/// What a repair pass does with each kind of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DriftAction {
    /// Record it, change nothing.
    Log,
    /// Make the server match drover (a converge job for the account).
    Enforce,
    /// Disable an orphan on its server (it is deleted only by an operator's explicit action).
    Quarantine,
}

/// The action per kind, and how much one pass may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftPolicy {
    pub missing: DriftAction,
    pub orphan: DriftAction,
    pub state_mismatch: DriftAction,
    pub plan_mismatch: DriftAction,
    pub feature_missing: DriftAction,
    /// For a mailbox missing or unlike drover's (a mailbox orphan is only ever logged).
    pub mailboxes: DriftAction,
    /// For a database missing (a database orphan is only ever logged).
    pub databases: DriftAction,
    /// For an alias domain missing (an alias orphan is only ever logged).
    pub aliases: DriftAction,
    /// For a sub-server missing (a sub-server orphan is only ever logged).
    pub subservers: DriftAction,
    /// A pass touching more than this share of the server's accounts enforces nothing…
    pub max_percent: u8,
    /// …nor one touching more than this many accounts.
    pub max_accounts: usize,
}

impl Default for DriftPolicy {
    fn default() -> Self {
        Self {
            missing: DriftAction::Enforce,
            orphan: DriftAction::Log,
            state_mismatch: DriftAction::Enforce,
            plan_mismatch: DriftAction::Enforce,
            feature_missing: DriftAction::Enforce,
            mailboxes: DriftAction::Enforce,
            databases: DriftAction::Enforce,
            aliases: DriftAction::Enforce,
            subservers: DriftAction::Enforce,
            max_percent: 10,
            max_accounts: 25,
        }
    }
}

impl DriftPolicy {
    pub fn action(&self, kind: DriftKind) -> DriftAction {
        let action = match kind {
            DriftKind::Missing => self.missing,
            DriftKind::Orphan => self.orphan,
            DriftKind::StateMismatch => self.state_mismatch,
            DriftKind::PlanMismatch => self.plan_mismatch,
            DriftKind::FeatureMissing => self.feature_missing,
            DriftKind::MailboxMissing | DriftKind::MailboxMismatch => self.mailboxes,
            DriftKind::DatabaseMissing => self.databases,
            DriftKind::AliasMissing => self.aliases,
            DriftKind::SubserverMissing => self.subservers,
            // They may hold data, or be an operator's: only an operator decides about them.
            DriftKind::MailboxOrphan
            | DriftKind::DatabaseOrphan
            | DriftKind::AliasOrphan
            | DriftKind::SubserverOrphan => DriftAction::Log,
        };
        // An orphan is never "enforced" (that would mean deleting it); a kept account is
        // never quarantined.
        match (kind, action) {
            (DriftKind::Orphan, DriftAction::Enforce) => DriftAction::Quarantine,
            (DriftKind::Orphan, other) => other,
            (_, DriftAction::Quarantine) => DriftAction::Enforce,
            (_, other) => other,
        }
    }

    /// The most domains one pass may touch on a server holding `accounts`: the smaller of the
    /// share and the count, and never less than one.
    pub fn limit(&self, accounts: usize) -> usize {
        let share = (accounts * usize::from(self.max_percent)).div_ceil(100);
        share.min(self.max_accounts).max(1)
    }
}

/// A repair pass planned: each finding with its action, and whether the pass may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepairPlan {
    pub steps: Vec<(DriftFinding, DriftAction)>,
    /// Domains the pass would touch (enforce or quarantine).
    pub touches: usize,
    pub limit: usize,
    /// Why the pass enforces nothing, when it does not.
    pub held: Option<String>,
}

pub fn plan_repair(
    findings: &[DriftFinding],
    accounts: usize,
    policy: &DriftPolicy,
    force: bool,
) -> RepairPlan {
    let steps: Vec<(DriftFinding, DriftAction)> = findings
        .iter()
        .map(|f| (f.clone(), policy.action(f.kind)))
        .collect();
    let touched: std::collections::BTreeSet<&str> = steps
        .iter()
        .filter(|(_, a)| *a != DriftAction::Log)
        .map(|(f, _)| f.domain.as_str())
        .collect();
    let touches = touched.len();
    let limit = policy.limit(accounts);
    let held = (touches > limit && !force).then(|| {
        format!(
            "the pass would touch {touches} domains, more than the limit of {limit} for a server \
             of {accounts} accounts ({} % or {} accounts); nothing was enforced — repeat with \
             --force if this is intended",
            policy.max_percent, policy.max_accounts
        )
    });
    RepairPlan {
        steps,
        touches,
        limit,
        held,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_stored_by_name() {
        for kind in DriftKind::ALL {
            assert_eq!(DriftKind::parse(kind.as_str()).unwrap(), kind);
        }
        assert!(DriftKind::parse("orphans").is_err());
    }

    fn expected(n: i64, domain: &str, state: DesiredState, plan: &str) -> Expected {
        Expected {
            account: AccountId(n),
            domain: DomainName::parse(domain).unwrap(),
            state,
            plan: plan.into(),
            features: vec![Feature::Unix, Feature::Dir, Feature::Mysql],
            mailboxes: Vec::new(),
            own_database: domain.split('.').next().unwrap().to_owned(),
            databases: Vec::new(),
            aliases: Vec::new(),
            subservers: Vec::new(),
        }
    }

    fn listed(domain: &str, disabled: bool, plan: &str, parent: Option<&str>) -> Listed {
        Listed {
            domain: domain.into(),
            disabled,
            plan: Some(plan.into()),
            features: vec![Feature::Unix, Feature::Dir, Feature::Mysql],
            parent: parent.map(Into::into),
            alias_of: None,
        }
    }

    #[test]
    fn every_kind_is_found_and_sub_servers_belong_to_their_parent() {
        use DesiredState::*;
        let expected = [
            expected(1, "ok.ro", Enabled, "Web"),
            expected(2, "gone.ro", Enabled, "Web"),
            expected(3, "off.ro", Disabled, "Web"),
            expected(4, "plan.ro", Enabled, "Web"),
            expected(5, "deleted.ro", Absent, "Web"),
            expected(6, "still.ro", Absent, "Web"),
            expected(7, "nodb.ro", Enabled, "Web"),
            expected(8, "nodb-off.ro", Disabled, "Web"),
            expected(9, "both.ro", Disabled, "Web"),
        ];
        let without_mysql = |mut l: Listed| {
            l.features.retain(|f| *f != Feature::Mysql);
            l
        };
        let listed = [
            listed("ok.ro", false, "Web", None),
            listed("shop.ok.ro", false, "Web", Some("ok.ro")),
            listed("off.ro", false, "Web", None),
            listed("plan.ro", false, "Big", None),
            listed("still.ro", true, "Web", None),
            listed("stray.ro", false, "Web", None),
            without_mysql(listed("nodb.ro", false, "Web", None)),
            without_mysql(listed("nodb-off.ro", true, "Web", None)),
            listed("both.ro", false, "Big", None),
        ];
        let found: Vec<String> = find_drift(&expected, &listed)
            .iter()
            .map(|f| {
                format!(
                    "{} {} {:?} {:?}",
                    f.kind.as_str(),
                    f.domain,
                    f.expected,
                    f.found
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                r#"missing gone.ro Some("enabled") None"#,
                r#"state_mismatch off.ro Some("disabled") Some("enabled")"#,
                r#"plan_mismatch plan.ro Some("Web") Some("Big")"#,
                r#"state_mismatch still.ro Some("absent") Some("present")"#,
                r#"feature_missing nodb.ro Some("mysql") Some("unix dir")"#,
                // A wrong state does not hide a wrong plan.
                r#"state_mismatch both.ro Some("disabled") Some("enabled")"#,
                r#"plan_mismatch both.ro Some("Web") Some("Big")"#,
                r#"orphan stray.ro None Some("enabled")"#,
            ]
        );
        assert!(find_drift(&expected[..1], &listed[..2]).is_empty());
        assert_eq!(expected.iter().filter(|e| e.is_live()).count(), 7);
    }

    #[test]
    fn the_limit_is_the_smaller_of_share_and_count_and_at_least_one() {
        let policy = DriftPolicy::default();
        assert_eq!(policy.limit(0), 1);
        assert_eq!(policy.limit(10), 1);
        assert_eq!(policy.limit(100), 10);
        assert_eq!(policy.limit(1000), 25);
    }

    fn finding(kind: DriftKind, domain: &str) -> DriftFinding {
        DriftFinding {
            kind,
            domain: domain.into(),
            account_id: None,
            expected: None,
            found: None,
            resource: None,
        }
    }

    #[test]
    fn a_pass_over_the_limit_is_held_unless_forced() {
        let policy = DriftPolicy::default();
        let findings: Vec<_> = (0..3)
            .map(|i| finding(DriftKind::Missing, &format!("d{i}.ro")))
            .collect();
        let plan = plan_repair(&findings, 20, &policy, false);
        assert_eq!((plan.touches, plan.limit), (3, 2));
        assert!(
            plan.held
                .as_deref()
                .is_some_and(|h| h.contains("more than the limit of 2"))
        );
        assert!(plan_repair(&findings, 20, &policy, true).held.is_none());
        assert!(plan_repair(&findings, 30, &policy, false).held.is_none());
        // Logged findings touch nothing.
        let orphans: Vec<_> = (0..5)
            .map(|i| finding(DriftKind::Orphan, &format!("o{i}.ro")))
            .collect();
        let plan = plan_repair(&orphans, 20, &policy, false);
        assert_eq!((plan.touches, plan.held), (0, None));
        assert!(plan.steps.iter().all(|(_, a)| *a == DriftAction::Log));
    }

    #[test]
    fn orphans_are_never_enforced_and_accounts_never_quarantined() {
        let policy = DriftPolicy {
            orphan: DriftAction::Enforce,
            missing: DriftAction::Quarantine,
            ..DriftPolicy::default()
        };
        assert_eq!(policy.action(DriftKind::Orphan), DriftAction::Quarantine);
        assert_eq!(policy.action(DriftKind::Missing), DriftAction::Enforce);
    }

    #[test]
    fn mailboxes_drift_missing_unlike_or_unknown_only_where_the_domain_is() {
        let mailbox = |name: &str, real: &str, deleting| ExpectedMailbox {
            name: name.into(),
            real_name: real.into(),
            quota_mb: None,
            deleting,
        };
        let mut ana = expected(1, "ana.ro", DesiredState::Enabled, "Web");
        ana.mailboxes = vec![
            mailbox("info", "Info", false),
            mailbox("sales", "Sales", false),
            mailbox("gone", "", false),
            // Being deleted: on the server until the next converge, or gone already.
            mailbox("leaving", "", true),
            mailbox("left", "", true),
        ];
        let mut ion = expected(2, "ion.ro", DesiredState::Enabled, "Web");
        ion.mailboxes = vec![mailbox("info", "", false)];
        let mut old = expected(3, "old.ro", DesiredState::Absent, "Web");
        old.mailboxes = vec![mailbox("x", "", false)];
        let listed = |domain: &str| Listed {
            domain: domain.into(),
            disabled: false,
            plan: Some("Web".into()),
            features: Vec::new(),
            parent: None,
            alias_of: None,
        };
        let user = |domain: &str, name: &str, real: &str| ListedUser {
            domain: domain.into(),
            name: name.into(),
            real_name: real.into(),
            quota_bytes: None,
        };
        let domains = [listed("ana.ro"), listed("old.ro")];
        let users = [
            user("ana.ro", "info", "Info"),
            user("ana.ro", "sales", "Sales Team"),
            user("ana.ro", "bob", "Bob"),
            user("ana.ro", "leaving", ""),
            user("old.ro", "y", ""),
        ];
        let found = find_mailbox_drift(&[ana, ion, old], &domains, &users);
        let seen: Vec<(DriftKind, &str, Option<&str>, Option<&str>)> = found
            .iter()
            .map(|f| {
                (
                    f.kind,
                    f.resource.as_deref().unwrap(),
                    f.expected.as_deref(),
                    f.found.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    DriftKind::MailboxMismatch,
                    "sales",
                    Some("Sales"),
                    Some("Sales Team")
                ),
                (DriftKind::MailboxMissing, "gone", Some(""), None),
                (DriftKind::MailboxOrphan, "bob", None, Some("Bob")),
            ],
            "ion.ro is missing whole (a finding of its own); old.ro is being deleted"
        );
        assert!(found.iter().all(|f| f.domain == "ana.ro"));
        let policy = DriftPolicy::default();
        assert_eq!(
            policy.action(DriftKind::MailboxMissing),
            DriftAction::Enforce
        );
        let enforced = DriftPolicy {
            orphan: DriftAction::Quarantine,
            ..policy
        };
        assert_eq!(
            enforced.action(DriftKind::MailboxOrphan),
            DriftAction::Log,
            "a mailbox that may hold mail is never touched by a repair"
        );
    }

    #[test]
    fn databases_drift_missing_or_unknown_where_they_were_listed() {
        let db = |name: &str, deleting| ExpectedDatabase {
            name: name.into(),
            kind: "mysql".into(),
            deleting,
        };
        let mut ana = expected(1, "ana.ro", DesiredState::Enabled, "Web");
        ana.databases = vec![
            db("ana_shop", false),
            db("ana_blog", false),
            db("ana_old", true),
        ];
        // Not listed: nothing to compare there, so nothing found.
        let mut ion = expected(2, "ion.ro", DesiredState::Enabled, "Web");
        ion.databases = vec![db("ion_x", false)];
        let listed = |name: &str| crate::ListedDatabase {
            name: name.into(),
            kind: "mysql".into(),
        };
        let on_server = BTreeMap::from([(
            "ana.ro".to_owned(),
            vec![
                listed("ana"),
                listed("ana_shop"),
                listed("ana_old"),
                listed("ana_tmp"),
            ],
        )]);
        let found = find_database_drift(&[ana, ion], &on_server);
        let seen: Vec<(DriftKind, &str)> = found
            .iter()
            .map(|f| (f.kind, f.resource.as_deref().unwrap()))
            .collect();
        assert_eq!(
            seen,
            [
                (DriftKind::DatabaseMissing, "ana_blog"),
                (DriftKind::DatabaseOrphan, "ana_tmp"),
            ],
            "the account's own database and one being deleted are not findings"
        );
        let policy = DriftPolicy {
            orphan: DriftAction::Quarantine,
            ..DriftPolicy::default()
        };
        assert_eq!(
            policy.action(DriftKind::DatabaseMissing),
            DriftAction::Enforce
        );
        assert_eq!(policy.action(DriftKind::DatabaseOrphan), DriftAction::Log);
    }

    #[test]
    fn aliases_drift_missing_or_unknown_from_the_domain_listing() {
        let mut ana = expected(1, "ana.ro", DesiredState::Enabled, "Web");
        ana.aliases = vec![
            ("ana.com".into(), false),
            ("ana.net".into(), false),
            ("ana.org".into(), true),
        ];
        let mut ion = expected(2, "ion.ro", DesiredState::Enabled, "Web");
        ion.aliases = vec![("ion.com".into(), false)];
        let alias = |domain: &str, of: &str| Listed {
            alias_of: Some(of.into()),
            parent: Some(of.into()),
            ..listed(domain, false, "Web", None)
        };
        let on_server = [
            listed("ana.ro", false, "Web", None),
            alias("ana.com", "ana.ro"),
            alias("ana.org", "ana.ro"),
            alias("ana.eu", "ana.ro"),
        ];
        let found = find_alias_drift(&[ana, ion], &on_server);
        let seen: Vec<(DriftKind, &str)> = found
            .iter()
            .map(|f| (f.kind, f.resource.as_deref().unwrap()))
            .collect();
        assert_eq!(
            seen,
            [
                (DriftKind::AliasMissing, "ana.net"),
                (DriftKind::AliasOrphan, "ana.eu"),
            ],
            "ion.ro is missing whole; ana.org is being deleted"
        );
        // A sub-server is a domain listed with the account's as its parent and no alias target.
        let mut ana = expected(1, "ana.ro", DesiredState::Enabled, "Web");
        ana.subservers = vec![("shop.ana.ro".into(), false), ("blog.ana.ro".into(), false)];
        let sub = |domain: &str| Listed {
            parent: Some("ana.ro".into()),
            ..listed(domain, false, "Web", None)
        };
        let on_server = [
            listed("ana.ro", false, "Web", None),
            alias("ana.com", "ana.ro"),
            sub("shop.ana.ro"),
            sub("x.ana.ro"),
        ];
        let found = find_subserver_drift(&[ana], &on_server);
        let seen: Vec<(DriftKind, &str)> = found
            .iter()
            .map(|f| (f.kind, f.resource.as_deref().unwrap()))
            .collect();
        assert_eq!(
            seen,
            [
                (DriftKind::SubserverMissing, "blog.ana.ro"),
                (DriftKind::SubserverOrphan, "x.ana.ro"),
            ]
        );
        assert_eq!(
            DriftPolicy::default().action(DriftKind::AliasOrphan),
            DriftAction::Log
        );
    }

    #[test]
    fn a_mailbox_quota_drifts_only_where_the_server_keeps_quotas() {
        let mut ana = expected(1, "ana.ro", DesiredState::Enabled, "Web");
        ana.mailboxes = vec![ExpectedMailbox {
            name: "info".into(),
            real_name: "Info".into(),
            quota_mb: Some(100),
            deleting: false,
        }];
        let domains = [Listed {
            domain: "ana.ro".into(),
            disabled: false,
            plan: Some("Web".into()),
            features: Vec::new(),
            parent: None,
            alias_of: None,
        }];
        let user = |quota_bytes| ListedUser {
            domain: "ana.ro".into(),
            name: "info".into(),
            real_name: "Info".into(),
            quota_bytes,
        };
        let expected = std::slice::from_ref(&ana);
        let found = find_mailbox_drift(expected, &domains, &[user(Some(10 * 1024 * 1024))]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, DriftKind::MailboxMismatch);
        assert_eq!(found[0].expected.as_deref(), Some("quota 100 MB"));
        assert_eq!(found[0].found.as_deref(), Some("quota 10 MB"));
        assert!(
            find_mailbox_drift(expected, &domains, &[user(Some(100 * 1024 * 1024))]).is_empty()
        );
        assert!(find_mailbox_drift(expected, &domains, &[user(None)]).is_empty());
    }
}
