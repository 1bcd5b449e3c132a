//! Adopting a server full of accounts drover never made: what the server holds, read as
//! drover's records (customers, plans, accounts with their state), proposed before anything is
//! recorded. Nothing here changes the server: adoption only writes drover's side.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{
    AccountId, CustomerId, CustomerSpec, DatabaseName, DatabaseType, DesiredState, DomainName,
    DriftFinding, DriftKind, Error, Expected, Feature, Listed, MailboxName, PlanId, PlanName, Tag,
    UnixUsername, find_drift,
};

/// The server being adopted, as adoption needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// drover's name for it.
    pub name: String,
    pub tags: Vec<Tag>,
    /// drover's plans the server carries with other limits or features than drover's.
    pub differing_plans: BTreeSet<String>,
}

/// A top-level domain (or a sub-server or alias, which belong to their parent) as the server
/// listed it, with what adoption reads beyond drift's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub listed: Listed,
    pub unix_user: Option<String>,
    /// The account owner's contact address as the server shows it.
    pub contact_email: Option<String>,
    /// Why it was disabled, when the server says.
    pub disabled_reason: Option<String>,
    /// Its mailboxes and databases as the server lists them (the database the server makes
    /// with the account among them, or not).
    pub mailboxes: Vec<FoundMailbox>,
    pub databases: Vec<FoundDatabase>,
}

/// A mailbox as the server lists it for adoption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundMailbox {
    pub name: String,
    pub real_name: String,
    /// Its quota in bytes (0: none), where the server keeps quotas.
    pub quota_bytes: Option<u64>,
    /// The server showed its password's hash, which drover keeps (sealed) to make the mailbox
    /// again with the customer's own password.
    pub has_password_hash: bool,
    /// Its login is disabled on the server.
    pub disabled: bool,
}

/// A database as the server lists it for adoption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundDatabase {
    pub name: String,
    /// The server's type name (`mysql`, `postgres`).
    pub kind: String,
}

/// A mailbox recorded with its adopted account; its password is the hash the server showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptedMailbox {
    pub name: MailboxName,
    pub real_name: String,
    /// Its own quota (MB) as the server keeps it; `None`: none there, or no quotas kept.
    pub quota_mb: Option<u64>,
}

/// A database recorded with its adopted account, by the name the server gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptedDatabase {
    pub name: DatabaseName,
    #[serde(rename = "type")]
    pub kind: DatabaseType,
}

/// One line of billing's mapping file: the domain, billing's customer id, and optionally the
/// drover plan, the customer's name and address (for a customer drover does not know yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "știri.ro"))]
    pub domain: DomainName,
    /// Billing's id for the customer (a customer's `external_ref`).
    pub customer: String,
    /// The drover plan, when not the plan of the server's name.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub plan: Option<PlanName>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// A plan drover has, as adoption matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownPlan {
    pub id: PlanId,
    pub name: PlanName,
    pub features: Vec<Feature>,
    pub required_tags: Vec<Tag>,
}

/// A customer drover has, as adoption matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownCustomer {
    pub id: CustomerId,
    pub email: Option<String>,
    pub external_ref: Option<String>,
}

/// An account drover has (on any server), which adoption must not take twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownAccount {
    pub id: AccountId,
    pub domain: DomainName,
    pub unix_username: UnixUsername,
    /// The name of its server, if it has one.
    pub server: Option<String>,
}

/// What drover already holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub plans: Vec<KnownPlan>,
    pub customers: Vec<KnownCustomer>,
    pub accounts: Vec<KnownAccount>,
}

/// Who an adopted account belongs to: a customer drover has, or one of the adoption's new ones
/// (by its index in [`Adoption::new_customers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    Existing(CustomerId),
    New(usize),
}

/// An account as it would be recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adopted {
    pub domain: DomainName,
    pub unix_username: UnixUsername,
    pub owner: Owner,
    pub plan: PlanId,
    pub plan_name: PlanName,
    /// Enabled (its service active) or disabled (suspended, with the server's reason).
    pub state: DesiredState,
    pub suspend_reason: Option<String>,
    /// What drift will report about it once adopted (a plan or features unlike drover's plan).
    pub differences: Vec<DriftFinding>,
    /// Its alias domains and sub-servers on the server, recorded with it.
    #[serde(default)]
    pub aliases: Vec<DomainName>,
    #[serde(default)]
    pub subservers: Vec<DomainName>,
    /// Its mailboxes and databases on the server (not the database the server made with it).
    #[serde(default)]
    pub mailboxes: Vec<AdoptedMailbox>,
    #[serde(default)]
    pub databases: Vec<AdoptedDatabase>,
}

/// A domain the server holds that is not adopted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub domain: String,
    pub why: String,
}

/// What adopting a server would record. Applied only when nothing [`Adoption::refusal`] names
/// stands in the way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adoption {
    pub accounts: Vec<Adopted>,
    pub new_customers: Vec<CustomerSpec>,
    /// Plans on the server (or in the mapping) with no drover plan of that name.
    pub unmapped_plans: Vec<String>,
    /// drover plans of adopted accounts that the server carries with other limits or features:
    /// drover puts its own there once it manages them.
    pub differing_plans: Vec<String>,
    pub skipped: Vec<Skipped>,
    /// Mailboxes and databases of adopted accounts drover cannot keep (drift logs them), and
    /// why.
    #[serde(default)]
    pub left_to_server: Vec<Skipped>,
    /// Domains of the mapping this server does not hold.
    pub not_on_server: Vec<String>,
    /// Domains drover holds on this server already (a second adoption finds nothing new).
    pub already_adopted: usize,
}

impl Adoption {
    /// Why the adoption cannot be applied as it stands, with what to do. Plans the server
    /// carries otherwise than drover refuse it unless the operator accepts that drover's win.
    pub fn refusal(&self, accept_plan_changes: bool) -> Option<String> {
        let quoted = |names: &[String]| {
            names
                .iter()
                .map(|p| format!("'{p}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.unmapped_plans.is_empty() {
            return Some(format!(
                "no drover plan for {}: create plans of these names (drover plans create), or \
                 name a drover plan per domain in the mapping file's plan column",
                quoted(&self.unmapped_plans)
            ));
        }
        (!self.differing_plans.is_empty() && !accept_plan_changes).then(|| {
            format!(
                "the server's plans {} have other limits or features than drover's: once \
                 adopted, drover puts its own there, and on every domain of those plans; make \
                 drover's plans match (drover plans update), or accept that drover's win \
                 (--accept-plan-changes)",
                quoted(&self.differing_plans)
            )
        })
    }
}

impl std::fmt::Display for Adoption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for a in &self.accounts {
            let owner = match a.owner {
                Owner::Existing(id) => format!("customer {id}"),
                Owner::New(i) => {
                    let c = &self.new_customers[i];
                    format!("new customer '{}'", c.name)
                }
            };
            let state = match a.state {
                DesiredState::Disabled => format!(
                    "suspended ({})",
                    a.suspend_reason.as_deref().unwrap_or("no reason")
                ),
                _ => "active".to_owned(),
            };
            writeln!(
                f,
                "  adopt {} (user {}) for {owner} on plan '{}', {state}",
                a.domain.to_unicode(),
                a.unix_username.as_str(),
                a.plan_name,
            )?;
            if !a.mailboxes.is_empty() || !a.databases.is_empty() {
                let names = |names: Vec<&str>| match names.is_empty() {
                    true => "none".to_owned(),
                    false => names.join(", "),
                };
                writeln!(
                    f,
                    "    with mailboxes: {}; databases: {}",
                    names(a.mailboxes.iter().map(|m| m.name.as_str()).collect()),
                    names(a.databases.iter().map(|d| d.name.as_str()).collect()),
                )?;
            }
            for d in &a.differences {
                writeln!(
                    f,
                    "    drift will find {} (its policy may put drover's record on the server): \
                     drover's plan says {}, the server has {}",
                    d.kind.as_str(),
                    d.expected.as_deref().unwrap_or("-"),
                    d.found.as_deref().unwrap_or("-"),
                )?;
            }
        }
        for s in &self.skipped {
            writeln!(f, "  skip {}: {}", s.domain, s.why)?;
        }
        for l in &self.left_to_server {
            writeln!(f, "  leave {} to the server: {}", l.domain, l.why)?;
        }
        for d in &self.not_on_server {
            writeln!(f, "  {d} is in the mapping but not on this server")?;
        }
        write!(
            f,
            "{} to adopt ({} new customers), {} skipped, {} drover holds already",
            self.accounts.len(),
            self.new_customers.len(),
            self.skipped.len(),
            self.already_adopted,
        )?;
        Ok(())
    }
}

/// The domains `found` lists as parts of `domain`'s account, by `of` (an alias's target, a
/// sub-server's parent); a name that does not parse is left to drift.
fn parts_of(
    found: &[Found],
    domain: &str,
    of: impl Fn(&Listed) -> Option<&str>,
) -> Vec<DomainName> {
    found
        .iter()
        .filter(|f| of(&f.listed) == Some(domain))
        .filter_map(|f| DomainName::parse(&f.listed.domain).ok())
        .collect()
}

/// Reads what `server` holds as drover's records. With a mapping, it says each domain's
/// customer (billing's id) and may say its plan; a domain missing from it is skipped. Without
/// one, customers are found by the owner's contact address. Every account is protected from
/// deletion (the store's default) and has no password drover knows.
pub fn propose(
    server: &Target,
    found: &[Found],
    mapping: Option<&[Mapping]>,
    known: &Known,
) -> Adoption {
    let mut adoption = Adoption {
        accounts: Vec::new(),
        new_customers: Vec::new(),
        unmapped_plans: Vec::new(),
        differing_plans: Vec::new(),
        skipped: Vec::new(),
        left_to_server: Vec::new(),
        not_on_server: Vec::new(),
        already_adopted: 0,
    };
    let mut differing = BTreeSet::new();
    let mapped: Option<BTreeMap<&str, &Mapping>> =
        mapping.map(|rows| rows.iter().map(|m| (m.domain.as_str(), m)).collect());
    let accounts_by_domain: BTreeMap<&str, &KnownAccount> = known
        .accounts
        .iter()
        .map(|a| (a.domain.as_str(), a))
        .collect();
    let mut users_taken: BTreeSet<String> = known
        .accounts
        .iter()
        .map(|a| a.unix_username.as_str().to_owned())
        .collect();
    let mut unmapped = BTreeSet::new();
    let mut new_by_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut skip = |domain: &str, why: String| {
        adoption.skipped.push(Skipped {
            domain: domain.to_owned(),
            why,
        });
    };
    let mut listed_names = BTreeSet::new();
    for f in found {
        let shown = f.listed.domain.as_str();
        listed_names.insert(shown.to_ascii_lowercase());
        if let Some(parent) = &f.listed.parent {
            // Sub-servers and aliases are part of their parent's account; their own mailboxes
            // are not drover's to keep.
            for m in &f.mailboxes {
                adoption.left_to_server.push(Skipped {
                    domain: format!("mailbox {}@{shown}", m.name),
                    why: format!(
                        "a mailbox of {parent}'s sub-server: drover keeps the mailboxes of an \
                         account's own domain"
                    ),
                });
            }
            if !found.iter().any(|p| &p.listed.domain == parent) {
                skip(shown, format!("belongs to {parent}, which is not listed"));
            } else if mapped.as_ref().is_some_and(|rows| rows.contains_key(shown)) {
                skip(
                    shown,
                    format!("mapped, but part of {parent}'s account: map {parent} instead"),
                );
            }
            continue;
        }
        let domain = match DomainName::parse(shown) {
            Ok(d) => d,
            Err(e) => {
                skip(shown, e.to_string());
                continue;
            }
        };
        if let Some(have) = accounts_by_domain.get(domain.as_str()) {
            match &have.server {
                Some(s) if *s == server.name => adoption.already_adopted += 1,
                Some(s) => skip(
                    shown,
                    format!("drover holds it on server {s} (account {})", have.id),
                ),
                None => skip(
                    shown,
                    format!("drover holds it, not yet placed (account {})", have.id),
                ),
            }
            continue;
        }
        let entry = match &mapped {
            Some(rows) => match rows.get(domain.as_str()) {
                Some(row) => Some(*row),
                None => {
                    skip(shown, "not in the mapping file".into());
                    continue;
                }
            },
            None => None,
        };
        let username = match f.unix_user.as_deref().map(UnixUsername::parse) {
            Some(Ok(u)) => u,
            Some(Err(e)) => {
                skip(shown, e.to_string());
                continue;
            }
            None => {
                skip(shown, "the server lists no unix user for it".into());
                continue;
            }
        };
        if !users_taken.insert(username.as_str().to_owned()) {
            skip(
                shown,
                format!(
                    "its unix user {} is another account's in drover",
                    username.as_str()
                ),
            );
            continue;
        }
        let Some(plan_name) = entry
            .and_then(|m| m.plan.as_ref().map(|p| p.as_str().to_owned()))
            .or_else(|| f.listed.plan.clone())
        else {
            skip(
                shown,
                "the server lists no plan for it: name a drover plan in the mapping file's plan \
                 column"
                    .into(),
            );
            continue;
        };
        let Some(plan) = known.plans.iter().find(|p| p.name.as_str() == plan_name) else {
            unmapped.insert(plan_name);
            continue;
        };
        if let Some(tag) = plan.required_tags.iter().find(|t| !server.tags.contains(t)) {
            skip(
                shown,
                format!(
                    "drover's plan '{}' needs servers tagged {}, which {} is not",
                    plan.name,
                    tag.as_str(),
                    server.name
                ),
            );
            continue;
        }
        if server.differing_plans.contains(plan.name.as_str()) {
            differing.insert(plan.name.to_string());
        }
        let owner = match owner(
            entry,
            f,
            known,
            &mut adoption.new_customers,
            &mut new_by_key,
        ) {
            Ok(owner) => owner,
            Err(why) => {
                skip(shown, why);
                continue;
            }
        };
        let state = if f.listed.disabled {
            DesiredState::Disabled
        } else {
            DesiredState::Enabled
        };
        let expected = Expected {
            account: AccountId(0),
            domain: domain.clone(),
            state,
            plan: plan.name.as_str().to_owned(),
            features: plan.features.clone(),
            // Its mailboxes and databases are the server's: drover keeps none of them yet.
            mailboxes: Vec::new(),
            own_database: String::new(),
            databases: Vec::new(),
            aliases: Vec::new(),
            subservers: Vec::new(),
        };
        let differences = find_drift(&[expected], std::slice::from_ref(&f.listed))
            .into_iter()
            .filter(|d| d.kind != DriftKind::Orphan)
            .map(|d| DriftFinding {
                account_id: None,
                ..d
            })
            .collect();
        // A sub-server named outside the domain (Virtualmin allows it) is not drover's shape
        // of one: it is left to drift rather than recorded.
        let aliases = parts_of(found, domain.as_str(), |l| l.alias_of.as_deref());
        let mut subservers = parts_of(found, domain.as_str(), |l| {
            l.alias_of
                .is_none()
                .then_some(l.parent.as_deref())
                .flatten()
        });
        subservers.retain(|s| crate::subserver::is_under(s, &domain));
        let (mailboxes, databases) =
            resources_of(f, &domain, &username, &mut adoption.left_to_server);
        adoption.accounts.push(Adopted {
            domain,
            unix_username: username,
            owner,
            plan: plan.id,
            plan_name: plan.name.clone(),
            state,
            suspend_reason: f.listed.disabled.then(|| {
                f.disabled_reason
                    .clone()
                    .unwrap_or_else(|| "disabled on the server before adoption".to_owned())
            }),
            differences,
            aliases,
            subservers,
            mailboxes,
            databases,
        });
    }
    adoption.unmapped_plans = unmapped.into_iter().collect();
    adoption.differing_plans = differing.into_iter().collect();
    if let Some(rows) = mapping {
        adoption.not_on_server = rows
            .iter()
            .filter(|m| !listed_names.contains(m.domain.as_str()))
            .map(|m| m.domain.to_unicode())
            .collect();
    }
    adoption
}

/// The mailboxes and databases of a found account drover keeps with it; any it cannot keep
/// is left to the server (drift logs it) and named with why. A mailbox is kept only with its
/// password's hash, or drover could not make it again as the customer knows it.
fn resources_of(
    found: &Found,
    domain: &DomainName,
    user: &UnixUsername,
    left: &mut Vec<Skipped>,
) -> (Vec<AdoptedMailbox>, Vec<AdoptedDatabase>) {
    let shown = domain.to_unicode();
    let mut skip = |what: &str, why: String| {
        left.push(Skipped {
            domain: what.to_owned(),
            why,
        });
    };
    let mut mailboxes = Vec::new();
    for m in &found.mailboxes {
        let what = format!("mailbox {}@{shown}", m.name);
        let name = match MailboxName::parse(&m.name) {
            Ok(name) => name,
            Err(e) => {
                skip(&what, e.to_string());
                continue;
            }
        };
        if !m.has_password_hash {
            skip(
                &what,
                "the server shows no hash of its password (none is set, or drover's login there \
                 is not a master administrator), so drover could not make it again"
                    .into(),
            );
            continue;
        }
        // A suspended account's mailboxes are all disabled, and come back with it; one
        // disabled alone would come back enabled if drover made it again.
        if m.disabled && !found.listed.disabled {
            skip(
                &what,
                "its login is disabled on the server, and drover keeps no disabled mailbox of an \
                 active account"
                    .into(),
            );
            continue;
        }
        mailboxes.push(AdoptedMailbox {
            name,
            real_name: m.real_name.clone(),
            quota_mb: m
                .quota_bytes
                .filter(|bytes| *bytes > 0)
                .map(|bytes| bytes.div_ceil(1024 * 1024)),
        });
    }
    let own = DatabaseName::prefix(user);
    let mut databases = Vec::new();
    for d in found.databases.iter().filter(|d| d.name != own) {
        let what = format!("database {} of {shown}", d.name);
        let kept = DatabaseType::parse(&d.kind)
            .and_then(|kind| Ok((DatabaseName::listed(&d.name)?, kind)));
        match kept {
            Ok((name, kind)) => databases.push(AdoptedDatabase { name, kind }),
            Err(e) => skip(&what, e.to_string()),
        }
    }
    (mailboxes, databases)
}

/// The customer an account goes to: by billing's id from the mapping, else by the contact
/// address; one drover does not know yet is proposed once, however many accounts it has.
fn owner(
    entry: Option<&Mapping>,
    found: &Found,
    known: &Known,
    new_customers: &mut Vec<CustomerSpec>,
    new_by_key: &mut BTreeMap<String, usize>,
) -> Result<Owner, String> {
    let (key, existing, spec) = match entry {
        Some(m) => {
            let existing = known
                .customers
                .iter()
                .find(|c| c.external_ref.as_deref() == Some(m.customer.as_str()));
            let name = m.name.as_deref().unwrap_or(&m.customer);
            let spec = || CustomerSpec::new(name, m.email.as_deref(), Some(&m.customer));
            (format!("ref:{}", m.customer), existing, spec())
        }
        None => {
            let Some(email) = found.contact_email.as_deref() else {
                return Err("the server lists no contact address for its owner, and no \
                            mapping file names its customer"
                    .into());
            };
            let email = email.trim().to_ascii_lowercase();
            if derived_by_the_server(&email, found) {
                return Err(format!(
                    "its contact address {email} is the one Virtualmin makes up for an owner \
                     who gave none: name its customer in a mapping file (--map)"
                ));
            }
            let existing = known.customers.iter().find(|c| {
                c.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(&email))
            });
            (
                format!("email:{email}"),
                existing,
                CustomerSpec::new(&email, Some(&email), None),
            )
        }
    };
    if let Some(c) = existing {
        return Ok(Owner::Existing(c.id));
    }
    if let Some(&i) = new_by_key.get(&key) {
        return Ok(Owner::New(i));
    }
    let spec = spec.map_err(|e| format!("its customer cannot be recorded: {e}"))?;
    new_customers.push(spec);
    new_by_key.insert(key, new_customers.len() - 1);
    Ok(Owner::New(new_customers.len() - 1))
}

/// Whether a contact address is Virtualmin's own (`user@domain`, or `user@host` with the
/// server's short host name) rather than one an owner gave.
fn derived_by_the_server(email: &str, found: &Found) -> bool {
    let Some((local, at)) = email.split_once('@') else {
        return false;
    };
    found
        .unix_user
        .as_deref()
        .is_some_and(|user| user.eq_ignore_ascii_case(local))
        && (at.eq_ignore_ascii_case(&found.listed.domain) || !at.contains('.'))
}

/// Checks a mapping however it came (a file, the API): billing's ids trimmed and present, each
/// domain once.
pub fn check_mapping(rows: Vec<Mapping>) -> Result<Vec<Mapping>, Error> {
    let mut seen = BTreeSet::new();
    rows.into_iter()
        .map(|mut row| {
            row.customer = row.customer.trim().to_owned();
            if row.customer.is_empty() || row.customer.chars().any(char::is_control) {
                return Err(Error::invalid(
                    "mapping",
                    row.domain.as_str(),
                    "a customer for each domain: billing's id for the customer",
                ));
            }
            if !seen.insert(row.domain.clone()) {
                return Err(Error::invalid(
                    "mapping",
                    row.domain.as_str(),
                    "each domain once",
                ));
            }
            Ok(row)
        })
        .collect()
}

/// Reads billing's mapping file: CSV with a header naming at least `domain` and `customer`
/// (billing's customer id), and optionally `plan`, `name` and `email`; fields may be quoted.
pub fn parse_mapping(text: &str) -> Result<Vec<Mapping>, Error> {
    let bad =
        |line: usize, what: String| Error::invalid("mapping file", &format!("line {line}"), what);
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let Some((line, header)) = lines.next() else {
        return Err(bad(
            1,
            "the file is empty; expected a header: domain,customer[,plan,name,email]".into(),
        ));
    };
    let header: Vec<String> = csv_fields(header)
        .map_err(|e| bad(line, e))?
        .into_iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let column = |name: &str| header.iter().position(|h| h == name);
    let (Some(domain_at), Some(customer_at)) = (column("domain"), column("customer")) else {
        return Err(bad(
            line,
            format!(
                "the header is '{}'; expected it to name the columns domain and customer \
                 (plan, name and email may follow)",
                header.join(",")
            ),
        ));
    };
    if let Some(other) = header
        .iter()
        .find(|h| !["domain", "customer", "plan", "name", "email"].contains(&h.as_str()))
    {
        return Err(bad(
            line,
            format!(
                "unknown column '{other}'; the columns are domain, customer, plan, name and email"
            ),
        ));
    }
    let mut rows: Vec<Mapping> = Vec::new();
    for (line, text) in lines {
        let fields = csv_fields(text).map_err(|e| bad(line, e))?;
        if fields.len() != header.len() {
            return Err(bad(
                line,
                format!(
                    "{} fields where the header has {}",
                    fields.len(),
                    header.len()
                ),
            ));
        }
        let field = |name: &str| {
            column(name)
                .map(|i| fields[i].trim())
                .filter(|v| !v.is_empty())
        };
        let at = |e: Error| bad(line, e.to_string());
        let domain = DomainName::parse(&fields[domain_at]).map_err(at)?;
        let customer = fields[customer_at].clone();
        rows.push(Mapping {
            domain,
            customer,
            plan: field("plan").map(PlanName::parse).transpose().map_err(at)?,
            name: field("name").map(str::to_owned),
            email: field("email").map(str::to_owned),
        });
    }
    check_mapping(rows)
}

/// The fields of one CSV line (RFC 4180: quoted fields, doubled quotes inside them).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed".into()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => {}
                Some(c) => return Err(format!("'{c}' after a quoted field; expected a comma")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
        }
        fields.push(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(domain: &str, user: &str, plan: &str, email: &str) -> Found {
        Found {
            listed: Listed {
                domain: domain.into(),
                disabled: false,
                plan: Some(plan.into()),
                features: vec![Feature::Unix, Feature::Dir, Feature::Web],
                parent: None,
                alias_of: None,
            },
            unix_user: Some(user.into()),
            contact_email: Some(email.into()),
            disabled_reason: None,
            mailboxes: Vec::new(),
            databases: Vec::new(),
        }
    }

    #[test]
    fn mailboxes_and_databases_come_with_their_account_when_drover_can_keep_them() {
        let mut f = found("shop.com", "shop", "Web", "ana@example.ro");
        let mailbox = |name: &str, quota_bytes, has_password_hash| FoundMailbox {
            name: name.into(),
            real_name: format!("{name} of shop"),
            quota_bytes,
            has_password_hash,
            disabled: false,
        };
        f.mailboxes = vec![
            mailbox("sales", Some(50 * 1024 * 1024), true),
            mailbox("info", Some(0), true),
            mailbox("Bad..Name", None, true),
            mailbox("hidden", None, false),
            FoundMailbox {
                disabled: true,
                ..mailbox("off", None, true)
            },
        ];
        let database = |name: &str, kind: &str| FoundDatabase {
            name: name.into(),
            kind: kind.into(),
        };
        f.databases = vec![
            database("shop", "mysql"),
            database("shop_orders", "mysql"),
            database("by-hand", "mysql"),
            database("shop_cache", "sqlite"),
        ];
        let adoption = propose(&target("vm1"), &[f], None, &known());
        assert_eq!(adoption.accounts.len(), 1, "{adoption:?}");
        let account = &adoption.accounts[0];
        let names: Vec<_> = account.mailboxes.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["sales", "info"]);
        assert_eq!(
            account.mailboxes[0].quota_mb,
            Some(50),
            "the server's own quota"
        );
        assert_eq!(account.mailboxes[1].quota_mb, None, "0 is none");
        assert_eq!(account.mailboxes[0].real_name, "sales of shop");
        // The server's own database is the account's; names made by hand are kept as listed.
        let names: Vec<_> = account.databases.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["shop_orders", "by-hand"]);
        assert!(adoption.skipped.is_empty(), "{:?}", adoption.skipped);
        let skipped: Vec<_> = adoption
            .left_to_server
            .iter()
            .map(|s| (s.domain.as_str(), s.why.as_str()))
            .collect();
        assert_eq!(skipped.len(), 4, "{skipped:?}");
        assert!(
            skipped[0].0 == "mailbox Bad..Name@shop.com" && skipped[0].1.contains("mailbox name")
        );
        assert!(skipped[1].0 == "mailbox hidden@shop.com" && skipped[1].1.contains("hash"));
        assert!(skipped[2].0 == "mailbox off@shop.com" && skipped[2].1.contains("disabled"));
        assert!(
            skipped[3].0 == "database shop_cache of shop.com" && skipped[3].1.contains("mysql")
        );
        let text = adoption.to_string();
        assert!(
            text.contains("with mailboxes: sales, info; databases: shop_orders, by-hand"),
            "{text}"
        );
    }

    fn target(name: &str) -> Target {
        Target {
            name: name.into(),
            ..Target::default()
        }
    }

    fn known() -> Known {
        Known {
            plans: vec![KnownPlan {
                id: PlanId(1),
                name: PlanName::parse("Web").unwrap(),
                features: vec![Feature::Unix, Feature::Web],
                required_tags: Vec::new(),
            }],
            customers: vec![KnownCustomer {
                id: CustomerId(7),
                email: Some("ana@example.ro".into()),
                external_ref: Some("C-7".into()),
            }],
            accounts: vec![KnownAccount {
                id: AccountId(3),
                domain: DomainName::parse("ours.ro").unwrap(),
                unix_username: UnixUsername::parse("ours").unwrap(),
                server: Some("vm1".into()),
            }],
        }
    }

    #[test]
    fn customers_come_from_contact_addresses_and_are_proposed_once() {
        let mut disabled = found("ion.ro", "ion", "Web", "Ion@Mail.ro");
        disabled.listed.disabled = true;
        disabled.disabled_reason = Some("unpaid".into());
        let listing = [
            found("ana.ro", "ana", "Web", "ana@example.ro"),
            disabled,
            found("ion2.ro", "ion2", "Web", "ion@mail.ro"),
            found("ours.ro", "ours", "Web", "x@y.ro"),
        ];
        let a = propose(&target("vm1"), &listing, None, &known());
        assert_eq!(a.accounts.len(), 3, "{a}");
        assert_eq!(a.accounts[0].owner, Owner::Existing(CustomerId(7)));
        assert_eq!(a.accounts[1].owner, Owner::New(0));
        assert_eq!(
            a.accounts[2].owner,
            Owner::New(0),
            "one new customer per address"
        );
        assert_eq!(a.new_customers.len(), 1);
        assert_eq!(a.new_customers[0].email.as_deref(), Some("ion@mail.ro"));
        assert_eq!(a.accounts[1].state, DesiredState::Disabled);
        assert_eq!(a.accounts[1].suspend_reason.as_deref(), Some("unpaid"));
        assert_eq!(a.already_adopted, 1);
        assert!(a.refusal(false).is_none());
        // The server's Dir feature is extra; nothing is missing and the plan matches.
        assert!(a.accounts[0].differences.is_empty());
    }

    #[test]
    fn unmapped_plans_refuse_and_name_every_one() {
        let listing = [
            found("ana.ro", "ana", "Gold", "a@b.ro"),
            found("ion.ro", "ion", "Silver", "a@b.ro"),
            found("eva.ro", "eva", "Gold", "a@b.ro"),
        ];
        let a = propose(&target("vm1"), &listing, None, &known());
        assert_eq!(a.unmapped_plans, ["Gold", "Silver"]);
        let refusal = a.refusal(false).unwrap();
        assert!(refusal.contains("'Gold', 'Silver'"), "{refusal}");
        assert!(a.accounts.is_empty());
    }

    #[test]
    fn conflicts_and_parts_of_accounts_are_not_adopted() {
        let mut sub = found("shop.ana.ro", "ana", "Web", "a@b.ro");
        sub.listed.parent = Some("ana.ro".into());
        let listing = [
            found("ana.ro", "ana", "Web", "a@b.ro"),
            sub,
            found("ours.ro", "ours", "Web", "a@b.ro"),
            found("taken.ro", "ours", "Web", "a@b.ro"),
            found("bad_name.ro", "bad", "Web", "a@b.ro"),
            found("noemail.ro", "noemail", "Web", "a@b.ro"),
        ];
        let mut listing = listing.to_vec();
        listing[5].contact_email = None;
        let a = propose(&target("vm2"), &listing, None, &known());
        assert_eq!(a.accounts.len(), 1, "{a}");
        assert_eq!(
            a.accounts[0].subservers,
            [DomainName::parse("shop.ana.ro").unwrap()],
            "a sub-server is recorded with its parent's account"
        );
        assert!(a.accounts[0].aliases.is_empty());
        let why: Vec<(&str, &str)> = a
            .skipped
            .iter()
            .map(|s| (s.domain.as_str(), s.why.as_str()))
            .collect();
        assert!(
            why[0].0 == "ours.ro" && why[0].1.contains("on server vm1"),
            "{why:?}"
        );
        assert!(
            why[1].0 == "taken.ro" && why[1].1.contains("unix user ours"),
            "{why:?}"
        );
        assert_eq!(why[2].0, "bad_name.ro");
        assert!(why[3].1.contains("no contact address"), "{why:?}");
        assert_eq!(a.already_adopted, 0);
    }

    #[test]
    fn a_mapping_names_customers_and_plans() {
        let map = parse_mapping(
            "Domain,Customer,Plan,Name\n\
             ana.ro,C-7,,\n\
             \"ion.ro\",C-9,Web,\"Pop, Ion\"\n\
             gone.ro,C-9,,\n",
        )
        .unwrap();
        let listing = [
            found("ana.ro", "ana", "Web", "other@x.ro"),
            found("ion.ro", "ion", "Gold", "ion@x.ro"),
            found("eva.ro", "eva", "Web", "eva@x.ro"),
        ];
        let a = propose(&target("vm1"), &listing, Some(&map), &known());
        assert_eq!(a.accounts.len(), 2, "{a}");
        assert_eq!(a.accounts[0].owner, Owner::Existing(CustomerId(7)));
        assert_eq!(a.new_customers[0].name, "Pop, Ion");
        assert_eq!(a.new_customers[0].external_ref.as_deref(), Some("C-9"));
        // ion.ro is on the server's Gold plan and drover's Web plan: drift will say so.
        assert_eq!(a.accounts[1].differences[0].kind, DriftKind::PlanMismatch);
        assert_eq!(a.skipped[0].why, "not in the mapping file");
        assert_eq!(a.not_on_server, ["gone.ro"]);
    }

    #[test]
    fn mapping_files_are_checked_line_by_line() {
        let err = |text: &str| parse_mapping(text).unwrap_err().to_string();
        assert!(err("").contains("empty"));
        assert!(err("domain,plan\n").contains("domain and customer"));
        assert!(err("domain,customer,colour\n").contains("unknown column 'colour'"));
        assert!(err("domain,customer\nana.ro\n").contains("line 2"));
        assert!(err("domain,customer\nana.ro,C\nana.ro,D\n").contains("each domain once"));
        assert!(err("domain,customer\nnot a domain,C\n").contains("line 2"));
        assert!(err("domain,customer\n\"ana.ro,C\n").contains("not closed"));
        assert!(err("domain,customer\nana.ro,\n").contains("a customer for each domain"));
        let rows =
            parse_mapping("# billing export\ndomain,customer\r\nștiri.ro,\"C \"\"1\"\"\"\r\n")
                .unwrap();
        assert_eq!(rows[0].domain.as_str(), "xn--tiri-pxb.ro");
        assert_eq!(rows[0].customer, "C \"1\"");
    }

    #[test]
    fn what_would_be_wrong_to_record_is_skipped_or_refused() {
        let mut known = known();
        known.plans.push(KnownPlan {
            id: PlanId(2),
            name: PlanName::parse("EU").unwrap(),
            features: Vec::new(),
            required_tags: vec![Tag::parse("region-eu").unwrap()],
        });
        let mut planless = found("bare.ro", "bare", "Web", "x@y.ro");
        planless.listed.plan = None;
        let listing = [
            // The address Virtualmin makes up without one: not a customer.
            found("made.ro", "made", "Web", "made@made.ro"),
            found("host.ro", "host", "Web", "host@vm"),
            found("eu.ro", "eu", "EU", "eu@clients.ro"),
            planless,
            found("fine.ro", "fine", "Web", "fine@clients.ro"),
        ];
        let mut server = target("vm1");
        server.differing_plans.insert("Web".into());
        let a = propose(&server, &listing, None, &known);
        let why: Vec<&str> = a.skipped.iter().map(|s| s.why.as_str()).collect();
        assert!(
            why[0].contains("makes up") && why[1].contains("makes up"),
            "{why:?}"
        );
        assert!(why[2].contains("needs servers tagged region-eu"), "{why:?}");
        assert!(why[3].contains("lists no plan"), "{why:?}");
        assert_eq!(a.accounts.len(), 1);
        // The server's Web plan is not drover's: applying needs the operator's word.
        assert_eq!(a.differing_plans, ["Web"]);
        assert!(a.refusal(false).unwrap().contains("--accept-plan-changes"));
        assert!(a.refusal(true).is_none());

        let rows = vec![Mapping {
            domain: DomainName::parse("ana.ro").unwrap(),
            customer: "  C-7 ".into(),
            plan: None,
            name: None,
            email: None,
        }];
        assert_eq!(check_mapping(rows.clone()).unwrap()[0].customer, "C-7");
        let twice = [rows.clone(), rows].concat();
        assert!(
            check_mapping(twice)
                .unwrap_err()
                .to_string()
                .contains("each domain once")
        );
    }
}
