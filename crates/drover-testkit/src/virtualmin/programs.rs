//! The simulated server's state and the programs that act on it, with the messages of
//! Virtualmin 8.1 (see the captures).

use std::collections::{BTreeMap, BTreeSet};

use super::disk::SimDisk;
use super::plans::SimPlan;
use super::render::{Answer, Entry, table};
use super::ssh_host::{ScpRefusal, SimSshHost, SshUrl, connection_refused};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    TopLevel,
    SubServer,
    Alias,
}

/// A domain on the simulated server.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SimDomain {
    pub name: String,
    pub id: u64,
    pub kind: Kind,
    pub parent: Option<String>,
    pub unix_user: String,
    pub description: String,
    /// The contact address given at creation (`--email`).
    pub email: Option<String>,
    pub plan: String,
    pub template: String,
    pub features: Vec<String>,
    /// `Some(reason)` when disabled (an empty reason when none was given).
    pub disabled: Option<String>,
    pub password: String,
    pub quota_blocks: Option<u64>,
    pub created_unix: u64,
    pub mailboxes: BTreeMap<String, String>,
    /// Each mailbox's quota in 1 kB blocks (0: none), kept only with home quotas on.
    pub mailbox_quotas: BTreeMap<String, u64>,
    /// Each mailbox's password as the server keeps it (`--encpass` as given; a stand-in hash
    /// of `--pass`), shown by `list-users` as "Encrypted password".
    #[serde(default)]
    pub mailbox_hashes: BTreeMap<String, String>,
    pub databases: Vec<String>,
    pub usage: SimUsage,
    /// The id of the plan it was created on (kept when the plan is deleted, as the real
    /// server keeps it).
    pub plan_id: u64,
    /// Its limits, from its plan (`--limits-from-plan`) or the `--max-*` flags.
    pub max_mailboxes: Option<u64>,
    pub max_databases: Option<u64>,
    /// When its Let's Encrypt certificate expires (Unix seconds), once one was issued.
    pub certificate_expiry: Option<u64>,
    /// The server renews its certificate (`generate-letsencrypt-cert --renew`).
    pub certificate_renew: bool,
    /// The names its certificate was issued for (its alias domains' among them).
    #[serde(default)]
    pub certificate_hosts: Vec<String>,
    /// The customer's content: files under its home directory (path → text), which backups
    /// carry and restores bring back. A test puts and reads them with `VirtualminSim::files`.
    pub files: BTreeMap<String, String>,
    /// Letters in each mailbox (by its local part), carried by backups like files.
    pub mail: BTreeMap<String, Vec<String>>,
    /// Rows in each database (by its name), carried by backups like files.
    pub rows: BTreeMap<String, Vec<String>>,
}

/// What a domain uses, as a test sets it; the server reports it only where the real one would
/// (disk with quotas on, bandwidth with monitoring on, database size with databases).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SimUsage {
    /// Home and mail files, in bytes.
    pub disk_bytes: u64,
    /// Transferred since the start of the bandwidth period.
    pub bandwidth_bytes: u64,
    pub database_bytes: u64,
}

impl State {
    /// A customer's file put into a domain's home directory (`None` when the server lacks
    /// the domain).
    pub fn put_file(&mut self, domain: &str, path: &str, text: &str) -> Option<()> {
        let d = self.domains.get_mut(domain)?;
        d.files.insert(path.to_owned(), text.to_owned());
        Some(())
    }

    pub fn file(&self, domain: &str, path: &str) -> Option<String> {
        self.domains.get(domain)?.files.get(path).cloned()
    }

    /// A letter delivered to a mailbox of a domain (`None` when the server lacks either).
    pub fn put_mail(&mut self, domain: &str, mailbox: &str, letter: &str) -> Option<()> {
        let d = self.domains.get_mut(domain)?;
        d.mailboxes.contains_key(mailbox).then_some(())?;
        d.mail
            .entry(mailbox.to_owned())
            .or_default()
            .push(letter.to_owned());
        Some(())
    }

    pub fn mail(&self, domain: &str, mailbox: &str) -> Vec<String> {
        self.domains
            .get(domain)
            .and_then(|d| d.mail.get(mailbox).cloned())
            .unwrap_or_default()
    }

    /// A row inserted into a database of a domain (`None` when the server lacks either).
    pub fn put_row(&mut self, domain: &str, database: &str, row: &str) -> Option<()> {
        let d = self.domains.get_mut(domain)?;
        d.databases.iter().any(|db| db == database).then_some(())?;
        d.rows
            .entry(database.to_owned())
            .or_default()
            .push(row.to_owned());
        Some(())
    }

    pub fn rows(&self, domain: &str, database: &str) -> Vec<String> {
        self.domains
            .get(domain)
            .and_then(|d| d.rows.get(database).cloned())
            .unwrap_or_default()
    }
}

impl SimDomain {
    /// A top-level domain as `create-domain` with default features makes it, for tests that
    /// put a domain on the server behind drover's back.
    pub fn top_level(name: &str, unix_user: &str) -> Self {
        Self {
            name: name.to_owned(),
            id: 1,
            kind: Kind::TopLevel,
            parent: None,
            unix_user: unix_user.to_owned(),
            description: name.to_owned(),
            email: None,
            plan: "Default Plan".to_owned(),
            template: "Default Settings".to_owned(),
            features: DEFAULT_FEATURES.iter().map(|f| (*f).to_owned()).collect(),
            disabled: None,
            password: "x".to_owned(),
            quota_blocks: None,
            created_unix: 0,
            mailboxes: BTreeMap::new(),
            mailbox_quotas: BTreeMap::new(),
            mailbox_hashes: BTreeMap::new(),
            databases: Vec::new(),
            usage: SimUsage::default(),
            plan_id: 0,
            max_mailboxes: None,
            max_databases: None,
            certificate_expiry: None,
            certificate_renew: false,
            certificate_hosts: Vec::new(),
            files: BTreeMap::new(),
            mail: BTreeMap::new(),
            rows: BTreeMap::new(),
        }
    }

    /// Takes the plan's limits, as `--limits-from-plan` and `modify-plan --apply` do.
    pub fn limits_from(&mut self, plan: &SimPlan) {
        self.plan_id = plan.id;
        self.quota_blocks = plan.quota_blocks;
        self.max_mailboxes = plan.limit("mailbox");
        self.max_databases = plan.limit("dbs");
    }
}

#[derive(Debug, Clone)]
pub struct State {
    pub domains: BTreeMap<String, SimDomain>,
    /// The server's account plans. A test seeds one with `plans.push("Web".into())`.
    pub plans: Vec<SimPlan>,
    pub templates: Vec<String>,
    pub(super) next_id: u64,
    pub ip: String,
    /// The server's host name (in contact addresses of domains without mail).
    pub hostname: String,
    /// Disk quotas on (the captured server had them off: no quota fields are listed).
    pub home_quotas: bool,
    /// Bandwidth monitoring on (off on the captured server: no bandwidth fields).
    pub bandwidth_monitoring: bool,
    /// Virtualmin's MariaDB server is down: programs that need it fail or skip their
    /// database steps as the real server does (see the `*mariadb-down*` captures).
    pub database_down: bool,
    /// The server's own unix users and groups (a Debian install's): `create-domain` refuses
    /// them as a domain's administration user or group.
    pub system_users: BTreeSet<String>,
    pub system_groups: BTreeSet<String>,
    /// What Let's Encrypt does with the server's requests.
    pub acme: Acme,
    /// Failed validations Let's Encrypt counted, per domain (Unix seconds), for its limit of
    /// 5 per name and hour.
    pub acme_failures: BTreeMap<String, Vec<u64>>,
    /// Requests Let's Encrypt refused for that limit: a client that respects it makes none.
    pub acme_rate_limited: u64,
    /// The server's own disk: its directories, and the backup archives written there.
    pub disk: SimDisk,
    /// The disk takes no more archives: a backup fails writing, as on a full disk.
    pub backup_disk_full: bool,
    /// Restores bring back none of the home directory's files and still say they succeeded:
    /// a restore cut short without a word, what the size check after a move is for.
    pub restores_come_back_short: bool,
    /// SSH hosts the server reaches for backups (none listens elsewhere).
    pub ssh_hosts: Vec<SimSshHost>,
    /// Features turned off in the server's configuration (`mysql` without a MariaDB, say).
    pub unsupported_features: BTreeSet<String>,
}

/// What Let's Encrypt answers the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Acme {
    /// Issues a certificate valid 90 days, as Let's Encrypt does.
    #[default]
    Issues,
    /// Cannot be reached: the server has no internet, as the captured one (its very output).
    Unreachable,
    /// Refuses the validation with this message (the site does not answer, say).
    Refuses(String),
}

impl Default for State {
    fn default() -> Self {
        Self {
            domains: BTreeMap::new(),
            plans: vec![SimPlan::default_plan()],
            templates: vec![
                "Default Settings".to_owned(),
                "Settings For Sub-Servers".to_owned(),
            ],
            next_id: 179_531_872_723_975,
            ip: "192.0.2.2".to_owned(),
            hostname: "vm".to_owned(),
            home_quotas: false,
            bandwidth_monitoring: false,
            database_down: false,
            system_users: SYSTEM_USERS.iter().map(|u| (*u).to_owned()).collect(),
            system_groups: SYSTEM_GROUPS.iter().map(|g| (*g).to_owned()).collect(),
            acme: Acme::default(),
            acme_failures: BTreeMap::new(),
            acme_rate_limited: 0,
            disk: SimDisk::default(),
            backup_disk_full: false,
            restores_come_back_short: false,
            ssh_hosts: Vec::new(),
            unsupported_features: BTreeSet::new(),
        }
    }
}

/// Users and groups of the Debian install the real tier runs (Virtualmin's stack on Debian 12).
const SYSTEM_USERS: &[&str] = &[
    "_apt",
    "backup",
    "bin",
    "bind",
    "daemon",
    "games",
    "irc",
    "list",
    "lp",
    "mail",
    "man",
    "messagebus",
    "mysql",
    "news",
    "nobody",
    "postfix",
    "proxy",
    "root",
    "sync",
    "sys",
    "systemd-network",
    "systemd-timesync",
    "uucp",
    "www-data",
];
const SYSTEM_GROUPS: &[&str] = &[
    "adm",
    "audio",
    "backup",
    "bin",
    "bind",
    "cdrom",
    "daemon",
    "dialout",
    "dip",
    "disk",
    "fax",
    "floppy",
    "games",
    "irc",
    "kmem",
    "list",
    "lp",
    "mail",
    "man",
    "messagebus",
    "mysql",
    "news",
    "nogroup",
    "operator",
    "plugdev",
    "postdrop",
    "postfix",
    "proxy",
    "root",
    "sasl",
    "shadow",
    "src",
    "ssl-cert",
    "staff",
    "sudo",
    "sys",
    "tape",
    "tty",
    "users",
    "utmp",
    "uucp",
    "video",
    "voice",
    "www-data",
];

const DEFAULT_FEATURES: &[&str] = &[
    "unix",
    "dir",
    "dns",
    "mail",
    "web",
    "logrotate",
    "mysql",
    "webmin",
];
/// Virtualmin's features in its own order (`@features`), which is also the order of a
/// domain's `Features:` line and of the dependency checks.
pub(super) const KNOWN_FEATURES: &[&str] = &[
    "unix",
    "dir",
    "dns",
    "mail",
    "web",
    "webalizer",
    "ssl",
    "logrotate",
    "mysql",
    "postgres",
    "spam",
    "virus",
    "webmin",
];

/// Features an alias may have (`@opt_alias_features`).
const ALIAS_FEATURES: &[&str] = &["dir", "mail", "dns", "web"];

/// Puts features in Virtualmin's order, once each.
fn in_feature_order<'a>(features: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let features: Vec<&str> = features.into_iter().collect();
    KNOWN_FEATURES
        .iter()
        .filter(|f| features.contains(f))
        .map(|f| (*f).to_owned())
        .collect()
}

/// The two warnings Webmin prints on stderr once it fails to reach MariaDB, as the captures
/// show them (they land in the program's output).
pub(super) fn database_warnings() -> String {
    let stamp = jiff::Timestamp::now().strftime("%d/%b/%Y:%H:%M:%S +0000");
    format!(
        "[{stamp}] [127.0.0.1] Failed to get MySQL/MariaDB version for user size map : Failed to get version\n[{stamp}] [127.0.0.1] Failed to detect MySQL/MariaDB user name length : {DBI_ERROR_SPACED} \n"
    )
}

/// The connection error of the captures (the second warning has two spaces after ':').
pub(super) const DBI_ERROR: &str = "DBI connect failed : Can't connect to local server through socket '/run/mysqld-vm/mysqld.sock' (2)";
const DBI_ERROR_SPACED: &str = "DBI connect failed :  Can't connect to local server through socket '/run/mysqld-vm/mysqld.sock' (2)";

/// How a program run ends when MariaDB cannot be reached: the error logged, then Webmin's
/// error block.
fn database_error_block() -> String {
    let stamp = jiff::Timestamp::now().strftime("%d/%b/%Y:%H:%M:%S +0000");
    format!("[{stamp}] [127.0.0.1] {DBI_ERROR}\nError\n-----\n{DBI_ERROR}\n-----\n")
}

/// The name Virtualmin gives a domain's own database: its first label.
fn default_database_name(domain: &str) -> String {
    domain
        .split('.')
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Parameters as remote.cgi passes them on: `--name value`, repeatable, value may be empty.
#[derive(Debug)]
pub(super) struct Params(pub Vec<(String, String)>);

impl Params {
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// The first parameter outside `allowed` (the output-format ones are remote.cgi's own).
    pub(super) fn unknown(&self, allowed: &[&str]) -> Option<&str> {
        self.0
            .iter()
            .map(|(n, _)| n.as_str())
            .find(|n| !allowed.contains(n) && !["json", "xml", "program"].contains(n))
    }
}

/// Sizes as Webmin's own `nice_size` writes them (binary units, truncated to two decimals),
/// as backups print their final size.
pub(super) fn webmin_nice_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64;
    let mut unit = "bytes";
    for next in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    let truncated = (value * 100.0).floor() / 100.0;
    format!("{truncated} {unit}")
}

/// Sizes as Virtualmin's `nice_size` writes them.
pub(super) fn nice_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("kiB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes >= size * 2 {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

fn usage(program: &str) -> String {
    format!("virtualmin {program} --domain domain.name [options]\n")
}

/// An argument that is no parameter of the program: a feature flag of a feature the module has
/// switched on passes; anything else is refused as the real program refuses it.
fn refuse_argument(program: &str, name: &str) -> Option<Answer> {
    if !KNOWN_FEATURES.contains(&name) {
        return Some(failure(program, format!("Unknown parameter --{name}")));
    }
    (!DEFAULT_FEATURES.contains(&name)).then(|| {
        failure(
            program,
            format!(
                "The --{name} option cannot be used unless the feature is enabled in the module configuration"
            ),
        )
    })
}

fn failure(program: &str, message: impl Into<String>) -> Answer {
    Answer::Failure {
        message: message.into(),
        usage: usage(program),
    }
}

fn missing(program: &str, domain: &str) -> Answer {
    failure(program, format!("Virtual server {domain} does not exist"))
}

/// The programs the simulator knows, in remote.cgi's sense.
pub const PROGRAMS: &[&str] = &[
    "list-domains",
    "create-domain",
    "delete-domain",
    "enable-domain",
    "disable-domain",
    "modify-domain",
    "list-plans",
    "create-plan",
    "modify-plan",
    "delete-plan",
    "enable-feature",
    "disable-feature",
    "delete-database",
    "list-templates",
    "info",
    "list-features",
    "create-user",
    "modify-user",
    "delete-user",
    "list-users",
    "create-database",
    "list-databases",
    "backup-domain",
    "delete-backup",
    "restore-domain",
    "generate-letsencrypt-cert",
    "create-login-link",
    "modify-limits",
];

impl State {
    /// Runs a program. `None` when the program does not exist.
    pub(super) fn run(&mut self, program: &str, params: &Params, now_unix: u64) -> Option<Answer> {
        if !PROGRAMS.contains(&program) {
            return None;
        }
        // remote.cgi passes values on as command-line words: a line break starts a new one,
        // which the program then refuses as an unknown parameter.
        if let Some((_, value)) = params.0.iter().find(|(_, v)| v.contains('\n')) {
            let extra = value.split('\n').nth(1).unwrap_or_default();
            return Some(failure(program, format!("Unknown parameter {extra}")));
        }
        self.number_plans();
        let answer = match program {
            "list-domains" => self.list_domains(params),
            "create-domain" => self.create_domain(params, now_unix),
            "delete-domain" => self.delete_domain(params),
            "enable-domain" => self.enable_domain(params),
            "disable-domain" => self.disable_domain(params),
            "modify-domain" => self.modify_domain(params),
            "list-plans" => self.list_plans(params),
            "create-plan" => self.create_plan(params),
            "modify-plan" => self.modify_plan(params),
            "delete-plan" => self.delete_plan(params),
            "enable-feature" => self.change_features(params, true),
            "disable-feature" => self.change_features(params, false),
            "delete-database" => self.delete_database(params),
            "list-templates" => self.list_templates(params),
            "info" => Answer::Output(format!(
                "host: \n    virtualmin version: 8.1.0\n    webmin version: 2.660\n    virtualmin edition: GPL\nfcount: \n    doms: {}\n",
                self.domains.len()
            )),
            "list-features" => self.list_features(params),
            "create-user" => self.create_user(params),
            "modify-user" => self.modify_user(params),
            "delete-user" => self.delete_user(params),
            "list-users" => self.list_users(params),
            "create-database" => self.create_database(params),
            "list-databases" => self.list_databases(params),
            "backup-domain" => self.backup_domain(params),
            "delete-backup" => self.delete_backup(params),
            "restore-domain" => self.restore_domain(params),
            "generate-letsencrypt-cert" => self.generate_letsencrypt_cert(params, now_unix),
            // A one-time session at the domain's own name, as the real server gives it.
            "create-login-link" => {
                if params
                    .get("lifetime")
                    .is_some_and(|l| l.parse::<u32>().is_err())
                {
                    return Some(failure(
                        program,
                        "--lifetime must be followed by a number of seconds",
                    ));
                }
                self.with_domain(program, params, |d| {
                    if !d.features.iter().any(|f| f == "webmin") {
                        return failure(
                            program,
                            format!("Virtual server {} has no Webmin login", d.name),
                        );
                    }
                    let session: String = (0..32)
                        .map(|_| char::from_digit(rand::random_range(0..16u32), 16).unwrap_or('0'))
                        .collect();
                    Answer::Output(format!(
                        "https://{}:10000/session_login.cgi?session={session}\n",
                        d.name
                    ))
                })
            }
            "modify-limits" => self.with_domain(program, params, |d| {
                Answer::Output(format!("Updating limits for {} ..\n.. done\n", d.name))
            }),
            _ => return None,
        };
        Some(answer)
    }

    fn with_domain(
        &self,
        program: &str,
        params: &Params,
        f: impl FnOnce(&SimDomain) -> Answer,
    ) -> Answer {
        let Some(name) = params.get("domain") else {
            return failure(program, "Missing --domain parameter");
        };
        match self.domains.get(name) {
            Some(domain) => f(domain),
            None => missing(program, name),
        }
    }

    /// `generate-letsencrypt-cert` (`generate-acme-cert.pl`): the names checked, the request
    /// made, and on success the certificate installed (and renewed, with `--renew`). A failure
    /// is the program's whole output, as the real server's: Let's Encrypt counts it, and
    /// refuses a name past 5 failures within an hour.
    fn generate_letsencrypt_cert(&mut self, params: &Params, now_unix: u64) -> Answer {
        const P: &str = "generate-letsencrypt-cert";
        let Some(name) = params.get("domain") else {
            return failure(P, "Missing --domain parameter");
        };
        // As the real server's get_hostnames_for_ssl: the domain's web names, then those of
        // its alias domains with a website.
        let aliases: Vec<String> = self
            .domains
            .values()
            .filter(|d| d.kind == Kind::Alias && d.parent.as_deref() == Some(name))
            .filter(|d| d.features.iter().any(|f| f == "web"))
            .map(|d| d.name.clone())
            .collect();
        let Some(domain) = self.domains.get_mut(name) else {
            return failure(P, format!("No virtual server named {name} found"));
        };
        let hosts: Vec<String> = std::iter::once(&domain.name)
            .chain(&aliases)
            .flat_map(|d| [d.clone(), format!("www.{d}")])
            .collect();
        let names = hosts.join(" ");
        let mut output = format!(
            "Checking certificate names for resolvability ..\n.. all certificate names are usable\n\n\
             Requesting SSL certificate for {names} ..\n"
        );
        let failures = self.acme_failures.entry(domain.name.clone()).or_default();
        failures.retain(|at| now_unix < at + 3600);
        let rate_limited = failures.len() >= 5;
        let refusal = if rate_limited {
            self.acme_rate_limited += 1;
            Some(format!(
                "Web-based validation failed : Failed to request certificate : \
                 urn:ietf:params:acme:error:rateLimited: Error creating new order :: too many \
                 failed authorizations ({}) for \"{}\" in the last 1h0m0s, retry after {}: see \
                 https://letsencrypt.org/docs/rate-limits/#authorization-failures-per-hostname-per-account",
                failures.len(),
                domain.name,
                failures[0] + 3600,
            ))
        } else {
            match &self.acme {
                Acme::Issues => None,
                Acme::Unreachable => Some(unreachable_acme()),
                Acme::Refuses(message) => Some(format!(
                    "Web-based validation failed : Failed to request certificate : {message}"
                )),
            }
        };
        if let Some(refusal) = refusal {
            // A refusal for the limit is no validation: it is not counted again.
            if !rate_limited {
                failures.push(now_unix);
            }
            output.push_str(&format!(".. failed : {refusal}\n"));
            // Without --web a failed web validation is followed by a DNS one, which only the
            // native ACME client (not the GPL edition's) can do.
            if !params.has("web") {
                output.push_str(
                    "   DNS-based validation failed : Only the native ACME client supports \
                     DNS-based validation\n",
                );
            }
            output.push('\n');
            return Answer::Raw {
                output,
                exit: 256,
                multiline: false,
            };
        }
        // Let's Encrypt counts failures, not streaks: a success keeps the hour's count.
        domain.certificate_expiry = Some(now_unix + 90 * 86_400);
        domain.certificate_renew = params.has("renew");
        domain.certificate_hosts = hosts;
        output.push_str(
            ".. done for all certificate names\n\nCopying to server configuration ..\n.. done\n\n",
        );
        Answer::Raw {
            output,
            exit: 0,
            multiline: false,
        }
    }

    fn list_domains(&self, params: &Params) -> Answer {
        const P: &str = "list-domains";
        let allowed = [
            "domain",
            "multiline",
            "simple-multiline",
            "name-only",
            "id-only",
            "parent",
            "enabled",
            "disabled",
            "user",
            "plan",
            "alias",
            "no-alias",
            "subserver",
            "toplevel",
        ];
        if let Some(flag) = params.unknown(&allowed) {
            return failure(P, format!("Unknown parameter --{flag}"));
        }
        let wanted = params.all("domain");
        for name in &wanted {
            if !self.domains.contains_key(*name) {
                return missing(P, name);
            }
        }
        let plan_id = match params.get("plan") {
            Some(plan) => match self.plan_named(plan) {
                Some(p) => Some(p.id),
                None => return failure(P, format!("No plan with name or ID {plan} found")),
            },
            None => None,
        };
        if let Some(target) = params.get("alias")
            && !self.domains.contains_key(target)
        {
            return failure(P, format!("No alias target named {target} found"));
        }
        let domains: Vec<&SimDomain> = self
            .ordered()
            .into_iter()
            .filter(|d| wanted.is_empty() || wanted.contains(&d.name.as_str()))
            .filter(|d| {
                params
                    .get("parent")
                    .is_none_or(|p| d.parent.as_deref() == Some(p))
            })
            .filter(|d| !params.has("enabled") || d.disabled.is_none())
            .filter(|d| !params.has("disabled") || d.disabled.is_some())
            .filter(|d| params.get("user").is_none_or(|u| d.unix_user == u))
            .filter(|d| plan_id.is_none_or(|id| d.plan_id == id))
            .filter(|d| {
                params
                    .get("alias")
                    .is_none_or(|t| d.kind == Kind::Alias && d.parent.as_deref() == Some(t))
            })
            .filter(|d| !params.has("no-alias") || d.kind != Kind::Alias)
            .filter(|d| !params.has("subserver") || d.kind == Kind::SubServer)
            .filter(|d| !params.has("toplevel") || d.kind == Kind::TopLevel)
            .collect();
        if params.has("multiline") {
            let entries: Vec<Entry> = domains.iter().map(|d| self.domain_entry(d)).collect();
            // With MariaDB down the listing stops inside the first domain with a database
            // feature, with the connection error (see the mariadb-down captures).
            if self.database_down
                && let Some(first) = domains
                    .iter()
                    .position(|d| d.features.iter().any(|f| f == "mysql"))
            {
                let mut output = database_warnings();
                output.push_str(&super::render::entries_text(&entries[..=first]));
                output.push_str(&database_error_block());
                return Answer::Raw {
                    output,
                    exit: 256,
                    multiline: true,
                };
            }
            return Answer::List(entries);
        }
        if params.has("simple-multiline") {
            // Unlike --multiline, the real server sends this as plain output even in JSON.
            let mut text = String::new();
            for d in &domains {
                text.push_str(&d.name);
                text.push('\n');
                for (label, value) in &self.domain_entry(d).fields {
                    text.push_str(&format!("    {label}: {value}\n"));
                }
            }
            return Answer::Output(text);
        }
        if params.has("name-only") {
            return Answer::List(
                domains
                    .iter()
                    .map(|d| Entry {
                        name: d.name.clone(),
                        fields: Vec::new(),
                    })
                    .collect(),
            );
        }
        if params.has("id-only") {
            return Answer::List(
                domains
                    .iter()
                    .map(|d| Entry {
                        name: d.id.to_string(),
                        fields: Vec::new(),
                    })
                    .collect(),
            );
        }
        let rows: Vec<Vec<String>> = domains
            .iter()
            .map(|d| vec![d.name.clone(), d.unix_user.clone(), d.description.clone()])
            .collect();
        Answer::List(table(
            &[("Domain", 30), ("Username", 15), ("Description", 30)],
            &rows,
        ))
    }

    /// Top-level domains, each followed by its sub-servers and aliases, as Virtualmin lists them.
    fn ordered(&self) -> Vec<&SimDomain> {
        let mut by_id: Vec<&SimDomain> = self.domains.values().collect();
        by_id.sort_by_key(|d| d.id);
        let mut out = Vec::new();
        for top in by_id.iter().filter(|d| d.kind == Kind::TopLevel) {
            out.push(*top);
            out.extend(
                by_id
                    .iter()
                    .filter(|d| d.parent.as_deref() == Some(&top.name)),
            );
        }
        out
    }

    /// The contact address as `compute_emailto` derives it: a sub-server's is its parent's;
    /// else the one given at creation, `user@domain` with mail, `user@host` without.
    fn contact_email(&self, d: &SimDomain) -> String {
        if let Some(parent) = d.parent.as_ref().and_then(|p| self.domains.get(p)) {
            return self.contact_email(parent);
        }
        match &d.email {
            Some(email) => email.clone(),
            None if d.features.iter().any(|f| f == "mail") => {
                format!("{}@{}", d.unix_user, d.name)
            }
            None => format!("{}@{}", d.unix_user, self.hostname),
        }
    }

    fn domain_entry(&self, d: &SimDomain) -> Entry {
        let (kind, template) = match d.kind {
            Kind::TopLevel => ("Top-level server", d.template.as_str()),
            Kind::SubServer => ("Sub-server", "Settings For Sub-Servers"),
            Kind::Alias => ("Alias", "Settings For Sub-Servers"),
        };
        let home = match &d.parent {
            Some(parent) => format!(
                "/home/{}/domains/{}",
                d.unix_user,
                d.name.trim_end_matches(&format!(".{parent}"))
            ),
            None => format!("/home/{}", d.unix_user),
        };
        let mut f: Vec<(String, String)> = Vec::new();
        let mut add = |label: &str, value: String| f.push((label.to_owned(), value));
        add("ID", d.id.to_string());
        add(
            "File",
            format!("/etc/webmin/virtual-server/domains/{}", d.id),
        );
        add("Type", kind.to_owned());
        // The real server names a sub-server's parent, and an alias's target as its real domain.
        match (&d.parent, d.kind) {
            (Some(target), Kind::Alias) => {
                add("Real domain", target.clone());
                add("Alias has own DNS records", "No".to_owned());
            }
            (Some(parent), _) => add("Parent domain", parent.clone()),
            (None, _) => {}
        }
        add("URL", format!("http://{}/", d.name));
        add("Description", d.description.clone());
        add("Template ID", "0".to_owned());
        add("Template", template.to_owned());
        add("Plan ID", d.plan_id.to_string());
        add("Plan", d.plan.clone());
        add("Username", d.unix_user.clone());
        add("User ID", "1001".to_owned());
        add("Group name", d.unix_user.clone());
        add("Group ID", "1001".to_owned());
        add("Mailbox username prefix", d.unix_user.clone());
        add("Password storage", "Hashed".to_owned());
        add(
            "Hashed password",
            "$y$j9T$simulated$0000000000000000000000000000000000000000".to_owned(),
        );
        let has = |feature: &str| d.features.iter().any(|f| f == feature);
        let top_level = d.parent.is_none();
        let website = has("web") && d.kind != Kind::Alias;
        if has("mysql") {
            add("Username for mysql", d.unix_user.clone());
            add("Password for mysql", "simulatedMysqlPass0000000".to_owned());
            add("Hostname for mysql", "localhost".to_owned());
            add("Port for mysql", "3306".to_owned());
        }
        add("Home directory", home.clone());
        if has("web") {
            add("HTML directory", format!("{home}/public_html"));
            add("CGI directory", format!("{home}/cgi-bin"));
            add(
                "Access log",
                format!("/var/log/virtualmin/{}_access_log", d.name),
            );
            add(
                "Error log",
                format!("/var/log/virtualmin/{}_error_log", d.name),
            );
        }
        let contact = self.contact_email(d);
        add("Contact email", contact.clone());
        add("Contact address", contact);
        add("Created on", "22/Nov/2026 03:38".to_owned());
        add("Created Unix time", d.created_unix.to_string());
        add("Created by", "root".to_owned());
        if let Some(reason) = &d.disabled {
            let why = if reason.is_empty() {
                "Manually".to_owned()
            } else {
                format!("Manually ({reason})")
            };
            add("Disabled", why);
            add("Disabled at", "22/Nov/2026 03:40".to_owned());
        }
        add("IP address", format!("{} (Shared)", self.ip));
        add("Features", d.features.join(" "));
        add("Plugins", String::new());
        // As list-domains.pl prints them: quotas and bandwidth for top-level servers only,
        // and only when the server measures them; database figures only when there are some.
        if self.home_quotas && top_level {
            let quota = d.quota_blocks.filter(|b| *b > 0);
            add(
                "Server quota",
                quota.map_or("Unlimited".to_owned(), |b| nice_size(b * 1024)),
            );
            add(
                "Server block quota",
                quota.map_or("Unlimited".to_owned(), |b| b.to_string()),
            );
            add("Server quota used", nice_size(d.usage.disk_bytes));
            add(
                "Server block quota used",
                d.usage.disk_bytes.div_ceil(1024).to_string(),
            );
            add("Server byte quota used", d.usage.disk_bytes.to_string());
        }
        if !d.databases.is_empty() {
            add("Databases count", d.databases.len().to_string());
            add("Databases size", nice_size(d.usage.database_bytes));
            add("Databases byte size", d.usage.database_bytes.to_string());
        }
        if self.bandwidth_monitoring && top_level {
            add("Bandwidth limit", "Unlimited".to_owned());
            add("Bandwidth byte limit", "Unlimited".to_owned());
            add("Bandwidth start", "01/Nov/2026".to_owned());
            add("Bandwidth usage", nice_size(d.usage.bandwidth_bytes));
            add("Bandwidth byte usage", d.usage.bandwidth_bytes.to_string());
        }
        // PHP-FPM as the Debian install runs it (list-domains.pl prints these for websites).
        if website {
            add("PHP execution mode", "fpm".to_owned());
            add("Possible PHP execution modes", "none fpm".to_owned());
            add("PHP FPM socket", format!("File /run/php/{}.sock", d.id));
            add(
                "PHP FPM config file",
                format!("/etc/php/8.2/fpm/pool.d/{}.conf", d.id),
            );
            add("CGI script execution mode", "disabled".to_owned());
            add("Possible CGI script execution modes", String::new());
            add("PHP fCGId subprocesses", "None".to_owned());
            add("PHP max execution time", "Unlimited".to_owned());
            add("PHP version", "8.2".to_owned());
            add("PHP error log", format!("{home}/logs/php_log"));
            add("Webmail redirects", "Yes".to_owned());
            add("Match all web sub-domains", "No".to_owned());
            add("Server-side includes", "Global default".to_owned());
        }
        let hostnames = format!("{0} www.{0} mail.{0} webmail.{0} admin.{0}", d.name);
        if has("web") {
            add("Default website for IP", "No".to_owned());
            add("Website hostnames", hostnames);
            add("Proxy hostname", "No".to_owned());
            add(
                "SSL candidate hostnames",
                format!("{0} www.{0} mail.{0} admin.{0} webmail.{0}", d.name),
            );
            add("SSL provider subset mode", "No".to_owned());
            add("SSL cert used by", "webmin".to_owned());
        }
        if let Some(expiry) = d.certificate_expiry {
            // Let's Encrypt's certificates last 90 days: issued 90 days before they expire.
            let date = |unix: u64| {
                jiff::Timestamp::from_second(i64::try_from(unix).unwrap_or(0))
                    .map(|t| t.strftime("%d/%b/%Y %H:%M").to_string())
                    .unwrap_or_default()
            };
            add("SSL cert expiry", date(expiry));
            add("SSL cert expiry time", expiry.to_string());
            let renewal = if d.certificate_renew {
                "Enabled"
            } else {
                "Disabled"
            };
            add("SSL provider renewal", renewal.to_owned());
            add(
                "SSL provider cert issued",
                date(expiry.saturating_sub(90 * 86_400)),
            );
        }
        for provisioned in ["dns", "mysql", "spam", "virus"] {
            add(
                &format!("Provisioning for {provisioned}"),
                "Local".to_owned(),
            );
        }
        if has("dns") {
            add("SPF DNS record", "Enabled".to_owned());
            add("DMARC DNS record", "Disabled".to_owned());
        }
        if top_level {
            let limit = |l: Option<u64>| l.map_or("Unlimited".to_owned(), |v| v.to_string());
            add("Maximum sub-servers", "Cannot create".to_owned());
            add("Maximum alias servers", "*".to_owned());
            add("Maximum non-alias servers", "*".to_owned());
            add("Maximum mailboxes", limit(d.max_mailboxes));
            add("Maximum databases", limit(d.max_databases));
            add("Maximum aliases", "Unlimited".to_owned());
            add("Maximum Mongrel instances", "Unlimited".to_owned());
            for (label, value) in [
                ("Can choose database names", "Yes"),
                ("Can rename servers", "Yes"),
                ("Can migrate backups", "No"),
                ("Sub-servers must be under main domain", "No"),
                ("Sub-servers cannot be under other domains", "No"),
                ("Sub-servers inherit IP address", "No"),
                ("Read-only mode", "No"),
            ] {
                add(label, value.to_owned());
            }
            add("Allowed features", d.features.join(" "));
            add("Edit capabilities", "users aliases passwd".to_owned());
            add("Allowed scripts", "All".to_owned());
            add(
                "Webmin module access",
                "dns=1 mail=1 web=1 webalizer=0 mysql=1 postgres=1 spam=1 filemin=1 passwd=1 \
                 proc=2 cron=1 at=1 systemd=0 xterm=0 updown=0 change-user=1 \
                 htaccess-htpasswd=1 mailboxes=1 custom=0 shell=0 webminlog=1 logviewer=1 phpini=1"
                    .to_owned(),
            );
            add("Shell type", "ssh".to_owned());
            add("Login permissions", "Email, FTP and SSH".to_owned());
            add("Shell command", "/bin/bash".to_owned());
            if has("mysql") {
                add("Allowed mysql hosts", "127.0.0.1 localhost".to_owned());
            }
        }
        add("Last login", "Never".to_owned());
        Entry {
            name: d.name.clone(),
            fields: f,
        }
    }

    fn create_domain(&mut self, params: &Params, now_unix: u64) -> Answer {
        const P: &str = "create-domain";
        let allowed = [
            "domain",
            "pass",
            "passfile",
            "desc",
            "user",
            "plan",
            "template",
            "limits-from-plan",
            "limits-from-template",
            "features-from-plan",
            "features-from-template",
            "default-features",
            "parent",
            "alias",
            "skip-warnings",
            "email",
            "max-mailboxes",
            "max-dbs",
            "max-doms",
            "max-aliases",
        ];
        // As create-domain.pl reads its arguments, in order.
        for (name, _) in &params.0 {
            let name = name.as_str();
            if ["json", "xml", "program"].contains(&name) || allowed.contains(&name) {
                continue;
            }
            if let Some(refused) = refuse_argument(P, name) {
                return refused;
            }
        }
        if let Some(template) = params.get("template")
            && !self.templates.iter().any(|t| t == template)
        {
            return failure(P, "Unknown template name");
        }
        let plan = match params.get("plan") {
            Some(name) => match self.plan_named(name) {
                Some(plan) => plan.clone(),
                None => return failure(P, "Unknown plan name"),
            },
            None => self
                .plans
                .iter()
                .find(|p| p.name == "Default Plan")
                .cloned()
                .unwrap_or_else(SimPlan::default_plan),
        };
        let Some(name) = params.get("domain").map(str::to_lowercase) else {
            return failure(P, "Missing domain name");
        };
        let target = params.get("parent").or_else(|| params.get("alias"));
        let password = params.get("pass").unwrap_or_default();
        if target.is_none() && password.is_empty() {
            return failure(P, "Missing password");
        }
        let requested: Vec<&str> = KNOWN_FEATURES
            .iter()
            .copied()
            .filter(|f| params.has(f))
            .collect();
        if target.is_some() && requested.contains(&"unix") {
            return failure(P, "--unix option makes no sense for sub-servers");
        }
        if params.has("alias")
            && let Some(f) = requested.iter().find(|f| !ALIAS_FEATURES.contains(f))
        {
            return failure(P, format!("--{f} option makes no sense for alias servers"));
        }
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return failure(
                P,
                "Domain names cannot include anything other than letters, numbers, dots, and dashes",
            );
        }
        if self.domains.contains_key(&name) {
            return failure(P, "You are already hosting this domain");
        }
        let parent = match target {
            Some(t) => match self.domains.get(&t.to_lowercase()) {
                Some(p) => Some(p.clone()),
                None => return failure(P, "Parent domain does not exist"),
            },
            None => None,
        };
        // A sub-server takes its parent's plan; an alias hangs under its target's top.
        let plan = match &parent {
            Some(p) => self
                .plans
                .iter()
                .find(|pl| pl.id == p.plan_id)
                .cloned()
                .unwrap_or(plan),
            None => plan,
        };
        let top = parent.as_ref().map(|p| match &p.parent {
            Some(top) => self.domains.get(top).cloned().unwrap_or_else(|| p.clone()),
            None => p.clone(),
        });
        let unix_user = match &top {
            Some(p) => p.unix_user.clone(),
            None => {
                // Every domain's owner is a unix user and group of the server too.
                let taken_user = |u: &str| {
                    self.system_users.contains(u)
                        || self
                            .domains
                            .values()
                            .any(|d| d.kind == Kind::TopLevel && d.unix_user == u)
                };
                match params.get("user").map(str::to_lowercase) {
                    // As create-domain.pl checks a given name: the user, then a group of it.
                    Some(user) => {
                        if taken_user(&user) {
                            return failure(P, "The specified administration user already exists");
                        }
                        if self.system_groups.contains(&user) {
                            return failure(
                                P,
                                format!("An administration group named {user} already exists"),
                            );
                        }
                        user
                    }
                    // Chosen by the server: the domain's first label, numbered when taken.
                    None => {
                        let base: String = name
                            .split('.')
                            .next()
                            .unwrap_or_default()
                            .chars()
                            .take(16)
                            .collect();
                        (0..)
                            .map(|n| match n {
                                0 => base.clone(),
                                n => format!("{base}{n}"),
                            })
                            .find(|u| !taken_user(u) && !self.system_groups.contains(u))
                            .unwrap_or(base)
                    }
                }
            }
        };
        // Features: the flags given replace the defaults; --default-features takes the
        // server's defaults; --features-from-plan the plan's (or the defaults when it has
        // none). Nothing at all is refused.
        let available: Vec<&str> = match (&parent, params.has("alias")) {
            (Some(target), true) => ALIAS_FEATURES
                .iter()
                .copied()
                .filter(|f| target.features.iter().any(|t| t == f))
                .collect(),
            (Some(_), false) => DEFAULT_FEATURES
                .iter()
                .copied()
                .filter(|f| *f != "unix" && *f != "webmin")
                .collect(),
            (None, _) => DEFAULT_FEATURES.to_vec(),
        };
        let from_plan = params.has("features-from-plan") || params.has("features-from-template");
        let mut features: Vec<String> = match &plan.features {
            Some(allowed) if from_plan => {
                if allowed.is_empty() {
                    return failure(P, "Selected plan has no features enabled");
                }
                in_feature_order(
                    available
                        .iter()
                        .copied()
                        .filter(|f| allowed.iter().any(|a| a == f)),
                )
            }
            _ if from_plan || params.has("default-features") => {
                in_feature_order(available.iter().copied())
            }
            _ => in_feature_order(requested.iter().copied()),
        };
        if features.is_empty() {
            return failure(P, "No virtual server features enabled");
        }
        for limit in ["max-mailboxes", "max-dbs", "max-doms", "max-aliases"] {
            if let Some(value) = params.get(limit)
                && (value.is_empty()
                    || value.starts_with('0')
                    || !value.bytes().all(|b| b.is_ascii_digit()))
            {
                let what = match limit {
                    "max-mailboxes" => "mailboxes",
                    "max-dbs" => "databases",
                    "max-doms" => "sub-servers",
                    _ => "aliases",
                };
                return failure(P, format!("Missing or invalid number of {what}"));
            }
        }
        if let Some(error) = feature_dependencies(
            &features,
            parent.as_ref(),
            top.as_ref(),
            params.has("alias"),
        ) {
            return failure(P, error);
        }
        let kind = match (params.has("parent"), params.has("alias")) {
            (true, _) => Kind::SubServer,
            (_, true) => Kind::Alias,
            _ => Kind::TopLevel,
        };
        let template = match (params.get("template"), kind) {
            (Some(t), _) => t.to_owned(),
            (None, Kind::TopLevel) => "Default Settings".to_owned(),
            (None, _) => "Settings For Sub-Servers".to_owned(),
        };
        // With MariaDB down the domain is still made, without its database feature.
        let mut output = String::new();
        let mysql_failed = self.database_down && features.iter().any(|f| f == "mysql");
        if mysql_failed {
            output.push_str(&database_warnings());
            output.push_str(
                "/usr/bin/mysqlshow: Can't connect to local server through socket '/run/mysqld-vm/mysqld.sock' (2)\n",
            );
            features.retain(|f| f != "mysql");
        }
        self.next_id += 7_919;
        let mut domain = SimDomain {
            name: name.clone(),
            id: self.next_id,
            kind,
            parent: top.map(|p| p.name),
            unix_user: unix_user.clone(),
            description: params.get("desc").unwrap_or(&name).to_owned(),
            email: params.get("email").map(str::to_owned),
            plan: plan.name.clone(),
            template,
            features,
            disabled: None,
            password: password.to_owned(),
            quota_blocks: None,
            created_unix: now_unix,
            mailboxes: BTreeMap::new(),
            mailbox_quotas: BTreeMap::new(),
            mailbox_hashes: BTreeMap::new(),
            databases: Vec::new(),
            usage: SimUsage::default(),
            plan_id: plan.id,
            max_mailboxes: None,
            max_databases: None,
            certificate_expiry: None,
            certificate_renew: false,
            certificate_hosts: Vec::new(),
            files: BTreeMap::new(),
            mail: BTreeMap::new(),
            rows: BTreeMap::new(),
        };
        if kind == Kind::Alias {
            domain.parent = parent.as_ref().map(|p| p.name.clone());
        }
        let explicit_limits = ["max-mailboxes", "max-dbs", "max-doms", "max-aliases"]
            .iter()
            .any(|l| params.has(l));
        if domain.parent.is_none() {
            if params.has("limits-from-plan") || !explicit_limits {
                domain.limits_from(&plan);
            }
            if let Some(v) = params.get("max-mailboxes") {
                domain.max_mailboxes = v.parse().ok();
            }
            if let Some(v) = params.get("max-dbs") {
                domain.max_databases = v.parse().ok();
            }
        }
        let has = |f: &str| domain.features.iter().any(|x| x == f);
        if has("mysql") {
            domain.databases.push(default_database_name(&name));
        }
        output.push_str("Beginning server creation ..\n\nSaving server details ..\n.. done\n\n");
        if has("unix") {
            output.push_str(&format!("Creating administration group {unix_user} ..\n.. done\n\nCreating administration user {unix_user} ..\n.. done\n\n"));
        }
        if has("dir") {
            output.push_str("Creating home directory ..\n.. done\n\n");
        }
        if has("dns") {
            output.push_str("Adding new DNS zone ..\n.. done\n\n");
        }
        if has("mail") {
            output.push_str("Adding to email domains list ..\n.. done\n\n");
        }
        if has("web") {
            output.push_str("Adding new virtual website ..\n.. done\n\n");
        }
        if has("logrotate") {
            output.push_str("Setting up log file rotation ..\n.. done\n\n");
        }
        if mysql_failed {
            output.push_str(&format!(
                "Creating MariaDB login ..\n.. MariaDB database failed : mysql::execute_sql_logged failed : {DBI_ERROR_SPACED}\n\n\n\n"
            ));
        } else if has("mysql") {
            output.push_str(&format!(
                "Creating MariaDB login ..\n.. done\n\nCreating MariaDB database {} ..\n.. done\n\n",
                default_database_name(&name)
            ));
        }
        if has("webmin") {
            output.push_str("Creating Webmin login ..\n.. done\n\n");
        }
        output.push_str(&format!(
            "Saving server details ..\n.. done\n\nRe-starting DNS server for {name} ..\n.. done\n\nAll done!\n"
        ));
        self.domains.insert(name, domain);
        Answer::Output(output)
    }

    fn delete_domain(&mut self, params: &Params) -> Answer {
        const P: &str = "delete-domain";
        if let Some(flag) = params.unknown(&["domain", "user", "only", "preserve-remote"]) {
            return failure(P, format!("Unknown parameter --{flag}"));
        }
        let names = params.all("domain");
        if names.is_empty() {
            return failure(P, "No users or domains specified");
        }
        for name in &names {
            if !self.domains.contains_key(*name) {
                return missing(P, name);
            }
        }
        let mut output = String::new();
        for name in names {
            let children: Vec<String> = self
                .domains
                .values()
                .filter(|d| d.parent.as_deref() == Some(name))
                .map(|d| d.name.clone())
                .collect();
            for child in children {
                self.domains.remove(&child);
            }
            self.domains.remove(name);
            output.push_str(&format!("Deleting virtual server {name} ..\n    Deleting DNS zone ..\n    .. done\n\n.. deleted\n\n"));
        }
        Answer::Output(output)
    }

    fn enable_domain(&mut self, params: &Params) -> Answer {
        const P: &str = "enable-domain";
        if let Some(flag) = params.unknown(&["domain", "subservers"]) {
            return failure(P, format!("Unknown parameter --{flag}"));
        }
        let Some(name) = params.get("domain") else {
            return failure(P, "No domain specified");
        };
        match self.domains.get_mut(name) {
            None => missing(P, name),
            Some(d) if d.disabled.is_none() => {
                failure(P, format!("Virtual server {name} is not disabled"))
            }
            Some(d) => {
                d.disabled = None;
                Answer::Output(format!(
                    "Enabling virtual server {name} ..\n\nRestoring administration user's password ..\n.. done\n\n.. done\n"
                ))
            }
        }
    }

    fn disable_domain(&mut self, params: &Params) -> Answer {
        const P: &str = "disable-domain";
        if let Some(flag) = params.unknown(&["domain", "why", "subservers", "feature", "schedule"])
        {
            return failure(P, format!("Unknown parameter --{flag}"));
        }
        let Some(name) = params.get("domain") else {
            return failure(P, "No domain specified");
        };
        let why = params.get("why").unwrap_or_default().to_owned();
        match self.domains.get_mut(name) {
            None => missing(P, name),
            Some(d) if d.disabled.is_some() => {
                failure(P, format!("Virtual server {name} is already disabled"))
            }
            Some(d) => {
                d.disabled = Some(why);
                let has = |f: &str| d.features.iter().any(|x| x == f);
                let mut out = format!("Disabling virtual server {name} ..\n\n");
                if has("unix") {
                    out.push_str("Locking administration user's password ..\n.. done\n\n");
                }
                if has("dns") {
                    out.push_str("Renaming DNS zone to disable it ..\n.. done\n\n");
                }
                if has("mail") {
                    out.push_str("Removing from email domains list ..\n");
                    if self.database_down {
                        out.push_str(&database_warnings());
                    }
                    out.push_str(".. done\n\nLocking mail users' accounts ..\n.. done\n\n");
                }
                if has("web") {
                    out.push_str("Replacing website with error page ..\n.. done\n\n");
                }
                if has("mysql") {
                    // With MariaDB down its user cannot be found, and is left unlocked.
                    out.push_str(if self.database_down {
                        "Locking MariaDB user's password ..\n.. MariaDB user does not exist!\n\n"
                    } else {
                        "Locking MariaDB user's password ..\n.. done\n\n"
                    });
                }
                out.push_str(&format!("Saving server details ..\n.. done\n\nRe-starting DNS server for {name} ..\n.. done\n\nApplying webserver configuration ..\n.. done\n\nAll done!\n"));
                Answer::Output(out)
            }
        }
    }

    fn modify_domain(&mut self, params: &Params) -> Answer {
        const P: &str = "modify-domain";
        if let Some(flag) = params.unknown(&[
            "domain",
            "pass",
            "desc",
            "quota",
            "apply-plan",
            "plan",
            "template",
            "user",
        ]) {
            return failure(P, format!("Unknown parameter --{flag}"));
        }
        let Some(name) = params.get("domain") else {
            return failure(P, "No domain specified");
        };
        // modify-domain.pl looks the plan up and, when there is none by that name or id,
        // silently leaves the plan alone.
        let plan = params
            .get("apply-plan")
            .or_else(|| params.get("plan"))
            .and_then(|p| self.plan_named(p))
            .cloned();
        let Some(d) = self.domains.get_mut(name) else {
            return failure(P, format!("Virtual server {name} does not exist."));
        };
        if let Some(pass) = params.get("pass") {
            d.password = pass.to_owned();
        }
        if let Some(desc) = params.get("desc") {
            d.description = desc.to_owned();
        }
        if let Some(quota) = params.get("quota").and_then(|q| q.parse().ok()) {
            d.quota_blocks = Some(quota);
        }
        if let Some(plan) = plan {
            d.plan = plan.name.clone();
            if params.has("apply-plan") {
                d.limits_from(&plan);
            } else {
                d.plan_id = plan.id;
            }
        }
        Answer::Output(
            "Updating server details ..\n.. done\n\nSaving server details ..\n.. done\n".to_owned(),
        )
    }

    fn list_templates(&self, params: &Params) -> Answer {
        Answer::List(
            self.templates
                .iter()
                .enumerate()
                .map(|(i, t)| Entry {
                    name: i.to_string(),
                    fields: if params.has("multiline") {
                        // As the Debian install lists them: the default template has its
                        // own web settings, every other one inherits them.
                        let web = if i == 0 { "Custom" } else { "Default" };
                        let inherited = if i == 0 { "None" } else { "Default" };
                        vec![
                            ("Name".to_owned(), t.clone()),
                            ("Custom web".to_owned(), web.to_owned()),
                            ("Custom dns".to_owned(), inherited.to_owned()),
                            ("Custom logrotate".to_owned(), inherited.to_owned()),
                            ("Custom mail".to_owned(), "None".to_owned()),
                        ]
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
        )
    }

    fn list_features(&self, params: &Params) -> Answer {
        if params.has("name-only") {
            return Answer::List(
                KNOWN_FEATURES
                    .iter()
                    .map(|f| Entry {
                        name: (*f).to_owned(),
                        fields: Vec::new(),
                    })
                    .collect(),
            );
        }
        let rows: Vec<Vec<String>> = KNOWN_FEATURES
            .iter()
            .map(|f| {
                vec![
                    (*f).to_owned(),
                    format!("{f} feature"),
                    if DEFAULT_FEATURES.contains(f) {
                        "Yes"
                    } else {
                        "No"
                    }
                    .to_owned(),
                ]
            })
            .collect();
        Answer::List(table(
            &[("Code", 20), ("Description", 50), ("Enabled", 8)],
            &rows,
        ))
    }

    fn create_user(&mut self, params: &Params) -> Answer {
        const P: &str = "create-user";
        let (Some(domain), Some(user)) = (params.get("domain"), params.get("user")) else {
            return failure(P, "Missing --domain or --user parameter");
        };
        if ["pass", "encpass", "random-pass", "passfile"]
            .iter()
            .all(|p| !params.has(p))
        {
            return failure(P, "No password specified");
        }
        let Some(d) = self.domains.get_mut(domain) else {
            return missing(P, domain);
        };
        // As the real server: lower-cased, its own suffix taken off, then checked.
        let user = user.to_lowercase();
        let user = short_user(&user, &d.unix_user).to_owned();
        if user.is_empty() || user.contains(INVALID_USER_CHARS) {
            return failure(P, "Missing or invalid username");
        }
        if ["domains", "virtualmin-backup"].contains(&user.as_str()) {
            return failure(
                P,
                format!("The username {user} is reserved for use by Virtualmin"),
            );
        }
        if user.starts_with(|c: char| c.is_ascii_digit()) {
            return failure(P, "Usernames cannot begin with a number");
        }
        let real = params.get("real").unwrap_or_default();
        if real.contains(':') {
            return failure(P, "Invalid real name");
        }
        // The default template's aliases hold these names.
        let aliased = ["postmaster", "webmaster", "abuse", "hostmaster"].contains(&user.as_str());
        if aliased || d.mailboxes.contains_key(&user) {
            return failure(
                P,
                "A user or mail alias with the same name and domain already exists",
            );
        }
        // Taken either way; kept only where the server keeps home quotas (the captured one
        // does not: `create-user__with-quota`).
        let quota = match params.get("quota") {
            Some("UNLIMITED") => Some(0),
            Some(q) => match q.parse::<u64>() {
                Ok(q) => Some(q),
                Err(_) if self.home_quotas => return failure(P, "Quota must be a number"),
                Err(_) => None,
            },
            None => None,
        };
        let full = format!("{user}.{}", d.unix_user);
        if self.home_quotas {
            d.mailbox_quotas.insert(user.clone(), quota.unwrap_or(0));
        }
        let hash = match params.get("encpass") {
            Some(hash) => hash.to_owned(),
            None => sim_hash(params.get("pass").unwrap_or_default()),
        };
        d.mailbox_hashes.insert(user.clone(), hash);
        d.mailboxes.insert(user, real.to_owned());
        Answer::Output(format!("User {full} created successfully\n"))
    }

    fn modify_user(&mut self, params: &Params) -> Answer {
        const P: &str = "modify-user";
        let (Some(domain), Some(user)) = (params.get("domain"), params.get("user")) else {
            return failure(P, "No domain name or username specified");
        };
        let Some(d) = self.domains.get_mut(domain) else {
            return missing(P, domain);
        };
        let short = short_user(user, &d.unix_user).to_owned();
        if !d.mailboxes.contains_key(&short) {
            return failure(
                P,
                format!("No user named {user} was found in the server {domain}"),
            );
        }
        // Refused where home directory quotas are off, as on the real install drover is tried
        // against.
        if let Some(quota) = params.get("quota") {
            if !self.home_quotas {
                return failure(
                    P,
                    "--quota option is not available unless home directory quotas are enabled",
                );
            }
            let blocks = match quota {
                "UNLIMITED" => 0,
                q => match q.parse::<u64>() {
                    Ok(q) => q,
                    Err(_) => {
                        return failure(
                            P,
                            "Home directory quota must be a number of blocks, or UNLIMITED",
                        );
                    }
                },
            };
            d.mailbox_quotas.insert(short.clone(), blocks);
        }
        if let Some(real) = params.get("real") {
            if real.contains(':') {
                return failure(P, "Invalid real name");
            }
            d.mailboxes.insert(short.clone(), real.to_owned());
        }
        if let Some(pass) = params.get("pass") {
            d.mailbox_hashes.insert(short.clone(), sim_hash(pass));
        }
        Answer::Output(format!(
            "User {short}.{} updated successfully\n",
            d.unix_user
        ))
    }

    fn delete_user(&mut self, params: &Params) -> Answer {
        const P: &str = "delete-user";
        let (Some(domain), Some(user)) = (params.get("domain"), params.get("user")) else {
            return failure(P, "Missing --domain or --user parameter");
        };
        let Some(d) = self.domains.get_mut(domain) else {
            return missing(P, domain);
        };
        let user = user.to_lowercase();
        let short = short_user(&user, &d.unix_user).to_owned();
        d.mailbox_quotas.remove(&short);
        d.mailbox_hashes.remove(&short);
        d.mail.remove(&short);
        if d.mailboxes.remove(&short).is_none() {
            return failure(
                P,
                format!("No user named {user} was found in the server {domain}"),
            );
        }
        Answer::Output(format!(
            "User {short}.{} deleted successfully\n",
            d.unix_user
        ))
    }

    fn list_users(&self, params: &Params) -> Answer {
        const P: &str = "list-users";
        let allowed = [
            "domain",
            "all-domains",
            "multiline",
            "name-only",
            "email-only",
            "include-owner",
            "user",
        ];
        if let Some(flag) = params.unknown(&allowed) {
            return failure(P, format!("Unknown parameter --{flag}"));
        }
        let names = params.all("domain");
        if names.is_empty() && !params.has("all-domains") {
            return failure(P, "No domains specified");
        }
        for name in &names {
            if !self.domains.contains_key(*name) {
                return missing(P, name);
            }
        }
        let only_user = params.get("user");
        let mut entries = Vec::new();
        for d in self.ordered() {
            if !names.is_empty() && !names.contains(&d.name.as_str()) {
                continue;
            }
            let has_mail = d.features.iter().any(|f| f == "mail");
            for (user, real) in &d.mailboxes {
                if only_user.is_some_and(|u| u != user) {
                    continue;
                }
                let unix = format!("{user}.{}", d.unix_user);
                let email = has_mail.then(|| format!("{user}@{}", d.name));
                let fields = if params.has("multiline") {
                    let mut f = vec![
                        ("User".to_owned(), user.clone()),
                        ("Domain".to_owned(), d.name.clone()),
                        ("Unix username".to_owned(), unix.clone()),
                        ("Real name".to_owned(), real.clone()),
                        // The shadow hash the real server shows its master admin.
                        (
                            "Encrypted password".to_owned(),
                            d.mailbox_hashes.get(user).cloned().unwrap_or_default(),
                        ),
                        ("Disabled".to_owned(), "No".to_owned()),
                        ("No password accepted".to_owned(), "No".to_owned()),
                        (
                            "Home directory".to_owned(),
                            format!("/home/{}/homes/{user}", d.unix_user),
                        ),
                        ("FTP access".to_owned(), "No".to_owned()),
                        ("Login permissions".to_owned(), "Email only".to_owned()),
                        ("Shell".to_owned(), "/dev/null".to_owned()),
                        ("User type".to_owned(), "Normal user".to_owned()),
                        (
                            "Mail location".to_owned(),
                            format!("/home/{}/homes/{user}/Maildir", d.unix_user),
                        ),
                        ("Mail storage type".to_owned(), "Maildir".to_owned()),
                    ];
                    if let Some(email) = &email {
                        f.push(("Email address".to_owned(), email.clone()));
                    }
                    // list-users.pl shows quotas only where the server keeps them.
                    if self.home_quotas {
                        let blocks = d.mailbox_quotas.get(user).copied().unwrap_or(0);
                        let shown = if blocks == 0 {
                            "Unlimited".to_owned()
                        } else {
                            format!("{} MB", blocks / 1024)
                        };
                        f.push(("Home quota".to_owned(), shown));
                        f.push(("Home quota used".to_owned(), "0 bytes".to_owned()));
                        f.push(("Home byte quota".to_owned(), (blocks * 1024).to_string()));
                        f.push(("Home byte quota used".to_owned(), "0".to_owned()));
                    }
                    f
                } else {
                    Vec::new()
                };
                let name = if params.has("email-only") {
                    match email {
                        Some(email) => email,
                        None => continue,
                    }
                } else {
                    unix
                };
                entries.push(Entry { name, fields });
            }
        }
        Answer::List(entries)
    }

    fn create_database(&mut self, params: &Params) -> Answer {
        const P: &str = "create-database";
        let Some(domain) = params.get("domain") else {
            return failure(P, "Missing --domain parameter");
        };
        if !self.domains.contains_key(domain) {
            return missing(P, domain);
        }
        // The server lower-cases the name, then takes MySQL's letters, digits, `_` and `-`.
        let name = params.get("name").unwrap_or_default().to_lowercase();
        let name = name.as_str();
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if name.is_empty() || !name.chars().all(allowed) {
            return failure(
                P,
                "Missing or invalid database name - only letters, numbers and _ are allowed",
            );
        }
        if name.len() > 64 {
            return failure(
                P,
                "Invalid database name - MariaDB only allows names up to 64 characters",
            );
        }
        let has_mysql = self.domains[domain].features.iter().any(|f| f == "mysql");
        if params.get("type").unwrap_or("mysql") != "mysql" || !has_mysql {
            return failure(
                P,
                "The specified database type is not enabled in this virtual server",
            );
        }
        if self.domains[domain].databases.iter().any(|db| db == name) {
            return failure(
                P,
                "A database with the same name and type is already associated with this server",
            );
        }
        if self
            .domains
            .values()
            .any(|d| d.databases.iter().any(|db| db == name))
        {
            return failure(P, format!("A database called {name} already exists"));
        }
        if self.database_down {
            return Answer::Raw {
                output: format!("{}{}", database_warnings(), database_error_block()),
                exit: 256,
                multiline: false,
            };
        }
        if let Some(d) = self.domains.get_mut(domain) {
            d.databases.push(name.to_owned());
        }
        Answer::Output(format!("Database {name} created successfully\n"))
    }

    fn delete_database(&mut self, params: &Params) -> Answer {
        const P: &str = "delete-database";
        let Some(domain) = params.get("domain") else {
            return failure(P, "Missing --domain parameter");
        };
        let name = params.get("name").unwrap_or_default().to_owned();
        let down = self.database_down;
        let Some(d) = self.domains.get_mut(domain) else {
            return missing(P, domain);
        };
        if !d.databases.contains(&name) {
            return failure(
                P,
                "The specified database is not associated with this server",
            );
        }
        if down {
            return Answer::Raw {
                output: format!("{}{}", database_warnings(), database_error_block()),
                exit: 256,
                multiline: false,
            };
        }
        d.databases.retain(|db| *db != name);
        d.rows.remove(&name);
        Answer::Output(format!("Database {name} deleted successfully\n"))
    }

    fn list_databases(&self, params: &Params) -> Answer {
        let down = self.database_down;
        self.with_domain("list-databases", params, |d| {
            let entries: Vec<Entry> = d
                .databases
                .iter()
                .map(|db| Entry {
                    name: db.clone(),
                    fields: if params.has("multiline") {
                        vec![
                            ("Type".to_owned(), "mysql".to_owned()),
                            ("Files".to_owned(), "1".to_owned()),
                            ("Tables".to_owned(), "0".to_owned()),
                        ]
                    } else {
                        Vec::new()
                    },
                })
                .collect();
            if down {
                // The warnings come first in the output, and the listing still succeeds.
                let mut output = database_warnings();
                output.push_str(&super::render::entries_text(&entries));
                return Answer::Raw {
                    output,
                    exit: 0,
                    multiline: params.has("multiline"),
                };
            }
            Answer::List(entries)
        })
    }

    /// `enable-feature` / `disable-feature --domain D --FEATURE…`.
    fn change_features(&mut self, params: &Params, enable: bool) -> Answer {
        let p = if enable {
            "enable-feature"
        } else {
            "disable-feature"
        };
        for (name, _) in &params.0 {
            let name = name.as_str();
            if [
                "json",
                "xml",
                "program",
                "domain",
                "skip-warnings",
                "associate",
            ]
            .contains(&name)
            {
                continue;
            }
            if let Some(refused) = refuse_argument(p, name) {
                return refused;
            }
        }
        let names = params.all("domain");
        if names.is_empty() {
            return failure(p, "No domains or users specified");
        }
        for name in &names {
            if !self.domains.contains_key(*name) {
                return missing(p, name);
            }
        }
        let wanted: Vec<&str> = KNOWN_FEATURES
            .iter()
            .copied()
            .filter(|f| params.has(f))
            .collect();
        let mut output = String::new();
        let mut failed = false;
        for name in names {
            let d = self.domains[name].clone();
            output.push_str(&format!("Updating server {name} ..\n"));
            let features: Vec<String> = if enable {
                in_feature_order(
                    d.features
                        .iter()
                        .map(String::as_str)
                        .chain(wanted.iter().copied()),
                )
            } else {
                in_feature_order(
                    d.features
                        .iter()
                        .map(String::as_str)
                        .filter(|f| !wanted.contains(f)),
                )
            };
            let parent = d.parent.as_ref().and_then(|p| self.domains.get(p)).cloned();
            let top = parent.as_ref().map(|p| match &p.parent {
                Some(t) => self.domains.get(t).cloned().unwrap_or_else(|| p.clone()),
                None => p.clone(),
            });
            if let Some(error) = feature_dependencies(
                &features,
                parent.as_ref(),
                top.as_ref(),
                d.kind == Kind::Alias,
            ) {
                output.push_str(&format!(".. dependency checks failed : {error}\n"));
                failed = true;
                continue;
            }
            let added_mysql =
                enable && wanted.contains(&"mysql") && !d.features.iter().any(|f| f == "mysql");
            if added_mysql && self.database_down {
                output.push_str(&database_warnings());
                output.push_str(&format!(
                    "    Creating MariaDB login ..\n    .. MariaDB database failed : mysql::execute_sql_logged failed : {DBI_ERROR_SPACED}\n.. failed\n"
                ));
                failed = true;
                continue;
            }
            if let Some(domain) = self.domains.get_mut(name) {
                for f in &wanted {
                    let had = d.features.iter().any(|x| x == f);
                    if enable != had {
                        let verb = if enable { "Enabling" } else { "Disabling" };
                        output.push_str(&format!("    {verb} feature {f} ..\n    .. done\n"));
                    }
                }
                if added_mysql {
                    let db = default_database_name(name);
                    if !domain.databases.contains(&db) {
                        domain.databases.push(db);
                    }
                }
                if !enable && wanted.contains(&"mysql") {
                    domain.databases.clear();
                }
                domain.features = features;
            }
            output.push_str(".. done\n");
        }
        if failed {
            Answer::Raw {
                output,
                exit: 256,
                multiline: false,
            }
        } else {
            Answer::Output(output)
        }
    }

    /// `backup-domain` of one domain to a local file (`backup-domain__local-file*`): the
    /// archive is kept by path with the domain as it was; a missing directory without
    /// `--mkdir`, or a full disk, fails writing as the real server does
    /// (`backup-domain__dest-dir-missing__json`); `--mkdir` makes only the last directory, and
    /// fails before the backup when its parent is missing, as the real server does.
    fn backup_domain(&mut self, params: &Params) -> Answer {
        const P: &str = "backup-domain";
        let Some(dest) = params.get("dest").map(str::to_owned) else {
            return failure(P, "No destination to backup to specified");
        };
        let Some(name) = params.get("domain") else {
            return failure(P, "No virtual servers specified");
        };
        let Some(domain) = self.domains.get(name).cloned() else {
            return missing(P, name);
        };
        // `--parent`: its sub-servers and aliases too, in the same archive.
        let mut domains = vec![domain];
        if params.has("parent") {
            domains.extend(
                self.domains
                    .values()
                    .filter(|d| d.parent.as_deref() == Some(name))
                    .cloned(),
            );
        }
        if let Some(url) = SshUrl::parse(&dest) {
            if params.has("mkdir") {
                return failure(P, "--mkdir option can only be used for local backups");
            }
            return self.backup_over_ssh(&url, &domains);
        }
        let directory = dest.rsplit_once('/').map_or("/", |(dir, _)| dir).to_owned();
        let testing =
            format!("Starting backup..\nTesting backup destination local file {dest} ..\n");
        // `--mkdir` makes the archive's directory, not its parents (a plain mkdir).
        if params.has("mkdir")
            && !self.disk.is_directory(&directory)
            && self.disk.make_directory(&directory).is_err()
        {
            return Answer::Raw {
                output: format!(
                    "{testing}Failed to create directory {directory} : mkdir: cannot create \
                     directory '{directory}': No such file or directory\n\n\nBackup failed!\n\n"
                ),
                exit: 256,
                multiline: false,
            };
        }
        let mut log = format!("{testing}.. done\n\n{}", backup_steps(&domains));
        let unwritable = if !self.disk.is_directory(&directory) {
            Some("No such file or directory")
        } else if self.backup_disk_full {
            Some("No space left on device")
        } else {
            None
        };
        if let Some(cause) = unwritable {
            let message = format!("Failed to open {dest} for writing : {cause}");
            log.push_str(&format!(
                "[03/Dec/2026:08:24:31 +0000] [127.0.0.1] {message}\nError\n-----\n{message}\n\
                 -----\n.. completed in 1 seconds\n\n"
            ));
            return Answer::Raw {
                output: log,
                exit: 256,
                multiline: false,
            };
        }
        if let Err(e) = self.disk.write_archive(&dest, &domains) {
            return failure(P, format!("Failed to open {dest} for writing : {e}"));
        }
        log.push_str(&format!(
            ".. completed in 1 seconds\n\nCreating final backup archive ..\n.. done\n\n{}",
            backed_up(&domains)
        ));
        Answer::Output(log)
    }

    /// `backup-domain` to an SSH host: the login tested first, the archive made, then
    /// uploaded with `scp` (which makes no directory), as the real server does.
    fn backup_over_ssh(&mut self, url: &SshUrl, domains: &[SimDomain]) -> Answer {
        let testing = format!(
            "Starting backup..\nTesting backup destination {} on SSH server {} ..\n",
            url.path, url.host
        );
        let failed = |log: String| Answer::Raw {
            output: format!("{log}\n\nBackup failed!\n\n"),
            exit: 256,
            multiline: false,
        };
        let host = self.ssh_host(url);
        if let Err(ScpRefusal::Connect(text) | ScpRefusal::File(text)) = host
            .as_ref()
            .map_or(Err(connection_refused(url)), |h| h.check_login(url))
        {
            return failed(format!("{testing}Failed to connect to SSH server : {text}"));
        }
        let host = host.expect("a host that took the login");
        let mut log = format!(
            "{testing}.. done\n\n{}.. completed in 1 seconds\n\nCreating final backup archive ..\n\
             .. done\n\nUploading archive to SSH server {} ..\n",
            backup_steps(domains),
            url.host
        );
        if let Err(ScpRefusal::Connect(text) | ScpRefusal::File(text)) = host.upload(url, domains) {
            return failed(format!("{log}.. upload failed : {text}"));
        }
        log.push_str(&format!(".. done\n\n{}", backed_up(domains)));
        Answer::Output(log)
    }

    fn ssh_host(&self, url: &SshUrl) -> Option<SimSshHost> {
        self.ssh_hosts
            .iter()
            .find(|h| h.is_at(&url.host, url.port))
            .cloned()
    }

    /// `restore-domain --source FILE --domain D [--domain SUB…] --option "dir delete 1"`
    /// (`restore-domain__*`): each domain as the archive holds it, re-created when the server
    /// lacks it (new unix ids, as the real server allocates them) or its content restored when
    /// it has it; one the archive lacks is said to be restored and is not
    /// (`restore-domain__domain-not-in-backup__json`); a missing archive fails as captured
    /// (`restore-domain__missing-file__*`).
    fn restore_domain(&mut self, params: &Params) -> Answer {
        const P: &str = "restore-domain";
        let Some(source) = params.get("source").map(str::to_owned) else {
            return failure(P, "Missing --source parameter");
        };
        let names: Vec<String> = params
            .all("domain")
            .into_iter()
            .map(str::to_owned)
            .collect();
        if names.is_empty() {
            return failure(P, "No domains to restore specified");
        }
        let archived = match SshUrl::parse(&source) {
            Some(url) => {
                let fetched = self
                    .ssh_host(&url)
                    .map_or(Err(connection_refused(&url)), |h| h.download(&url));
                match fetched {
                    Ok(archived) => archived,
                    Err(ScpRefusal::Connect(text) | ScpRefusal::File(text)) => {
                        return failure(P, format!("Failed to read backup file : {text}"));
                    }
                }
            }
            None => match self.disk.read_archive(&source) {
                Some(archived) => archived,
                None => return failure(P, format!("Restore file {source} does not exist")),
            },
        };
        // Features the backup has and this server turned off: restored without them, with
        // the real program's warning (`missing_restore_features`: core features are not
        // critical), a database feature's databases left out.
        let mut archived = archived;
        let mut missing: Vec<String> = Vec::new();
        for feature in archived.iter().flat_map(|d| &d.features) {
            if self.unsupported_features.contains(feature) && !missing.contains(feature) {
                missing.push(feature.clone());
            }
        }
        let supported = if missing.is_empty() {
            ".. all features in backup are supported".to_owned()
        } else {
            let described: Vec<&str> = missing.iter().map(|f| feature_description(f)).collect();
            for domain in &mut archived {
                domain.features.retain(|f| !missing.contains(f));
                if missing.iter().any(|f| f == "mysql") {
                    domain.databases.clear();
                    domain.rows.clear();
                }
            }
            format!(
                ".. WARNING - The following features were enabled for one or more\n\
                 domains in the backup, but do not exist on this system. Some\n\
                 functions of the restored domains may not work : {}",
                described.join(", ")
            )
        };
        let mut log = format!(
            "Checking for missing features ..\n{supported}\n\nChecking for errors in backup ..\n\
             .. no errors found\n\nStarting restore..\nExtracting backup archive file ..\n.. done\n\n"
        );
        let mut reloaded = false;
        for name in names {
            let Some(mut archived) = archived.iter().find(|d| d.name == name).cloned() else {
                // Not in the archive: said to be restored, and nothing is.
                log.push_str(&format!(
                    "Restoring backup for virtual server {name} ..\n    Updating Webmin user ..\n    \
                     .. done\n\n"
                ));
                reloaded = true;
                continue;
            };
            if self.restores_come_back_short {
                archived.files.clear();
                archived.usage.disk_bytes = 0;
            }
            match self.domains.get_mut(&name) {
                // Its files as backed up (with `dir delete`, those made since go); the
                // mailboxes and databases backed up come back, those made since stay.
                Some(existing) => {
                    existing.files = archived.files.clone();
                    existing.mail.extend(archived.mail.clone());
                    existing.rows.extend(archived.rows.clone());
                    existing.mailboxes.extend(archived.mailboxes.clone());
                    existing
                        .mailbox_quotas
                        .extend(archived.mailbox_quotas.clone());
                    existing
                        .mailbox_hashes
                        .extend(archived.mailbox_hashes.clone());
                    for database in &archived.databases {
                        if !existing.databases.contains(database) {
                            existing.databases.push(database.clone());
                        }
                    }
                    existing.usage = archived.usage;
                }
                None => {
                    log.push_str(&format!(
                        "Re-creating virtual server {name} ..\n    Re-allocating user and group IDs ..\n    \
                         .. done\n\n"
                    ));
                    archived.id = self.next_id;
                    self.next_id += 1;
                    self.domains.insert(name.clone(), archived);
                }
            }
            log.push_str(&format!(
                "Restoring backup for virtual server {name} ..\n    Extracting TAR file of home directory ..\n    \
                 .. done\n\n    Re-creating mail and FTP users ..\n    .. done\n\n"
            ));
        }
        if reloaded {
            log.push_str("Re-loading Webmin ..\n.. done\n\n");
        }
        log.push_str("Restore completed successfully.\n\n");
        Answer::Output(log)
    }

    /// `delete-backup --dest`: the archive goes; one already gone is no error, as on the real
    /// server (it deletes only files that exist).
    fn delete_backup(&mut self, params: &Params) -> Answer {
        let Some(dest) = params.get("dest") else {
            return failure(
                "delete-backup",
                "One of the --id or --dest flags must be given",
            );
        };
        // The URL is echoed as given, password and all.
        let deleting = format!("Deleting backup at {dest} ..\n");
        let Some(url) = SshUrl::parse(dest) else {
            self.disk.remove_archive(dest);
            return Answer::Output(format!("{deleting}.. backup removed\n"));
        };
        match self
            .ssh_host(&url)
            .map_or(Err(connection_refused(&url)), |h| h.remove(&url))
        {
            Ok(()) => Answer::Output(format!("{deleting}.. backup removed\n")),
            Err(ScpRefusal::Connect(text) | ScpRefusal::File(text)) => {
                Answer::Output(format!("{deleting}.. failed : {text}"))
            }
        }
    }
}

/// A feature as Virtualmin's messages name it (`feature_*` in its `lang/en`).
fn feature_description(feature: &str) -> &str {
    match feature {
        "dns" => "DNS for domain",
        "web" => "Apache website",
        "mysql" => "MySQL database",
        "postgres" => "PostgreSQL database",
        "mail" => "Mail for domain",
        other => other,
    }
}

/// The steps `backup-domain` prints for a domain, by its features and databases.
/// A backup's last lines: how many domains, and the archive's size (a small site's: its
/// configuration, plus what its domains use).
fn backed_up(domains: &[SimDomain]) -> String {
    let size: u64 = 60_000
        + domains
            .iter()
            .map(|d| d.usage.disk_bytes + d.usage.database_bytes)
            .sum::<u64>();
    format!(
        "{} virtual servers backed up successfully\nBackup completed successfully. Final size was \
         {}\n\n",
        domains.len(),
        webmin_nice_size(size)
    )
}

fn backup_steps(domains: &[SimDomain]) -> String {
    domains.iter().map(domain_backup_steps).collect()
}

fn domain_backup_steps(domain: &SimDomain) -> String {
    let mut log = format!("Creating backup for virtual server {} ..\n", domain.name);
    for (step, feature) in [
        ("Copying virtual server configuration", None),
        ("Creating TAR file of home directory", Some("dir")),
        ("Copying records in DNS domain", Some("dns")),
        ("Saving mail aliases", Some("mail")),
        ("Saving mail and FTP users", Some("mail")),
        ("Copying Apache virtual host configuration", Some("web")),
        ("Copying MariaDB user details", Some("mysql")),
    ] {
        if feature.is_none_or(|f| domain.features.iter().any(|x| x == f)) {
            log.push_str(&format!("    {step} ..\n    .. done\n\n"));
        }
    }
    for db in &domain.databases {
        log.push_str(&format!(
            "    Dumping MariaDB database {} ..\n    .. done\n\n",
            db
        ));
    }
    log
}

/// Virtualmin's dependency checks between a new domain's features (`virtual_server_depends`:
/// the `check_depends_*` functions and `%feature_depends`, in feature order), with their
/// texts. `parent` is the domain named by --parent/--alias, `top` its top-level server.
fn feature_dependencies(
    features: &[String],
    parent: Option<&SimDomain>,
    top: Option<&SimDomain>,
    alias: bool,
) -> Option<&'static str> {
    let has = |f: &str| features.iter().any(|x| x == f);
    let sub = parent.is_some();
    for f in features {
        let error = match f.as_str() {
            "unix" if !has("dir") => {
                Some("A domain cannot have an administration user without a home directory")
            }
            "dir" if !sub && !has("unix") => {
                Some("A top-level virtual server with a home directory must have a Unix user")
            }
            "mail" if alias => None,
            "mail" if sub && !top.is_some_and(|t| t.features.iter().any(|x| x == "unix")) => Some(
                "Mail for the domain cannot be enabled unless an administration user is created",
            ),
            "mail" if !sub && !has("unix") => Some(
                "Mail for the domain cannot be enabled unless an administration user is created",
            ),
            "web" if !sub && !has("unix") => {
                Some("A website cannot be enabled without an administration user")
            }
            "web" if !alias && !has("dir") => {
                Some("A website cannot be enabled unless a home directory is created")
            }
            "logrotate" if !has("web") => {
                Some("Log file rotation cannot be enabled unless a website is")
            }
            "mysql" if sub && !top.is_some_and(|t| t.features.iter().any(|x| x == "mysql")) => {
                Some("A sub-server cannot have MySQL enabled unless the parent server does")
            }
            _ => None,
        };
        if error.is_some() {
            return error;
        }
    }
    None
}

/// Characters the real server refuses in a mail user's name.
const INVALID_USER_CHARS: &[char] = &[
    ' ', '\t', ':', '&', '(', ')', '|', ';', '<', '>', '*', '?', '!', '/', '\\',
];

/// A mail user's short name: the full name (`ana.prefix`) with the domain's suffix taken off.
fn short_user<'a>(user: &'a str, prefix: &str) -> &'a str {
    user.strip_suffix(&format!(".{prefix}")).unwrap_or(user)
}

/// The captured server's answer with no internet: the ACME client cannot fetch Let's
/// Encrypt's directory (`generate-letsencrypt-cert__no-internet__text.http`).
fn unreachable_acme() -> String {
    "Web-based validation failed : Failed to request certificate : Traceback (most recent call last):
  File \"/usr/share/webmin/webmin/acme_tiny.py\", line 199, in <module>
    main(sys.argv[1:])
  File \"/usr/share/webmin/webmin/acme_tiny.py\", line 105, in get_crt
    directory, _, _ = _do_request(directory_url, err_msg=\"Error getting directory\")
  File \"/usr/share/webmin/webmin/acme_tiny.py\", line 46, in _do_request
    raise ValueError(\"{0}:\\nUrl: {1}\\nData: {2}\\nResponse Code: {3}\\nResponse: {4}\".format(err_msg, url, data, code, resp_data))
ValueError: Error getting directory:
Url: https://acme-v02.api.letsencrypt.org/directory
Data: None
Response Code: None
Response: <urlopen error [Errno -2] Name or service not known>"
        .to_owned()
}

/// A stand-in for the server's hash of a password: the same password gives the same hash, and
/// different ones differ, which is all a test compares.
fn sim_hash(password: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    password.hash(&mut hasher);
    format!("$6$sim${:016x}", hasher.finish())
}
