//! The simulated server's state and the programs that act on it, with the messages of
//! Virtualmin 8.1 (see the captures).

use std::collections::BTreeMap;

use super::render::{Answer, Entry, table};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    TopLevel,
    SubServer,
    Alias,
}

/// A domain on the simulated server.
#[derive(Debug, Clone)]
pub struct SimDomain {
    pub name: String,
    pub id: u64,
    pub kind: Kind,
    pub parent: Option<String>,
    pub unix_user: String,
    pub description: String,
    pub plan: String,
    pub template: String,
    pub features: Vec<String>,
    /// `Some(reason)` when disabled (an empty reason when none was given).
    pub disabled: Option<String>,
    pub password: String,
    pub quota_blocks: Option<u64>,
    pub created_unix: u64,
    pub mailboxes: BTreeMap<String, String>,
    pub databases: Vec<String>,
    pub usage: SimUsage,
}

/// What a domain uses, as a test sets it; the server reports it only where the real one would
/// (disk with quotas on, bandwidth with monitoring on, database size with databases).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimUsage {
    /// Home and mail files, in bytes.
    pub disk_bytes: u64,
    /// Transferred since the start of the bandwidth period.
    pub bandwidth_bytes: u64,
    pub database_bytes: u64,
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
            plan: "Default Plan".to_owned(),
            template: "Default Settings".to_owned(),
            features: DEFAULT_FEATURES.iter().map(|f| (*f).to_owned()).collect(),
            disabled: None,
            password: "x".to_owned(),
            quota_blocks: None,
            created_unix: 0,
            mailboxes: BTreeMap::new(),
            databases: Vec::new(),
            usage: SimUsage::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct State {
    pub domains: BTreeMap<String, SimDomain>,
    pub plans: Vec<String>,
    pub templates: Vec<String>,
    next_id: u64,
    pub ip: String,
    /// Disk quotas on (the captured server had them off: no quota fields are listed).
    pub home_quotas: bool,
    /// Bandwidth monitoring on (off on the captured server: no bandwidth fields).
    pub bandwidth_monitoring: bool,
}

impl Default for State {
    fn default() -> Self {
        Self {
            domains: BTreeMap::new(),
            plans: vec!["Default Plan".to_owned()],
            templates: vec![
                "Default Settings".to_owned(),
                "Settings For Sub-Servers".to_owned(),
            ],
            next_id: 179_531_872_723_975,
            ip: "192.0.2.2".to_owned(),
            home_quotas: false,
            bandwidth_monitoring: false,
        }
    }
}

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
const KNOWN_FEATURES: &[&str] = &[
    "unix",
    "dir",
    "dns",
    "mail",
    "web",
    "logrotate",
    "mysql",
    "webmin",
    "ssl",
    "spam",
    "virus",
    "postgres",
    "webalizer",
];

/// Parameters as remote.cgi passes them on: `--name value`, repeatable, value may be empty.
#[derive(Debug)]
pub(super) struct Params(pub Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
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

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// The first parameter outside `allowed` (the output-format ones are remote.cgi's own).
    fn unknown(&self, allowed: &[&str]) -> Option<&str> {
        self.0
            .iter()
            .map(|(n, _)| n.as_str())
            .find(|n| !allowed.contains(n) && !["json", "xml", "program"].contains(n))
    }
}

/// Sizes as Virtualmin's `nice_size` writes them.
fn nice_size(bytes: u64) -> String {
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
    "list-templates",
    "info",
    "list-features",
    "create-user",
    "delete-user",
    "list-users",
    "create-database",
    "list-databases",
    "backup-domain",
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
        let answer = match program {
            "list-domains" => self.list_domains(params),
            "create-domain" => self.create_domain(params, now_unix),
            "delete-domain" => self.delete_domain(params),
            "enable-domain" => self.enable_domain(params),
            "disable-domain" => self.disable_domain(params),
            "modify-domain" => self.modify_domain(params),
            "list-plans" => self.list_plans(params),
            "list-templates" => self.list_templates(params),
            "info" => Answer::Output(format!(
                "host: \n    virtualmin version: 8.1.0\n    webmin version: 2.660\n    virtualmin edition: GPL\nfcount: \n    doms: {}\n",
                self.domains.len()
            )),
            "list-features" => self.list_features(params),
            "create-user" => self.create_user(params),
            "delete-user" => self.delete_user(params),
            "list-users" => self.list_users(params),
            "create-database" => self.create_database(params),
            "list-databases" => self.list_databases(params),
            "backup-domain" => self.backup_domain(params),
            "generate-letsencrypt-cert" => self.with_domain(program, params, |d| {
                Answer::Output(format!(
                    "Requesting a certificate for {} ..\n.. done\n",
                    d.name
                ))
            }),
            "create-login-link" => self.with_domain(program, params, |d| {
                Answer::Output(format!(
                    "https://127.0.0.1:10000/session_login.cgi?login={}&key=0f1e2d3c\n",
                    d.unix_user
                ))
            }),
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
            .collect();
        if params.has("multiline") {
            return Answer::List(domains.iter().map(|d| self.domain_entry(d)).collect());
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
        add("Plan ID", "0".to_owned());
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
        add("Home directory", home.clone());
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
        add("Contact email", format!("{}@{}", d.unix_user, d.name));
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
        if self.home_quotas && d.parent.is_none() {
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
        if self.bandwidth_monitoring && d.parent.is_none() {
            add("Bandwidth limit", "Unlimited".to_owned());
            add("Bandwidth byte limit", "Unlimited".to_owned());
            add("Bandwidth start", "01/Nov/2026".to_owned());
            add("Bandwidth usage", nice_size(d.usage.bandwidth_bytes));
            add("Bandwidth byte usage", d.usage.bandwidth_bytes.to_string());
        }
        add("PHP execution mode", "none".to_owned());
        add("Website hostnames", format!("{0} www.{0}", d.name));
        add("SPF DNS record", "Enabled".to_owned());
        add("Maximum mailboxes", "Unlimited".to_owned());
        add("Maximum databases", "Unlimited".to_owned());
        add("Allowed features", d.features.join(" "));
        add("Login permissions", "Email, FTP and SSH".to_owned());
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
            "features-from-plan",
            "default-features",
            "parent",
            "alias",
            "skip-warnings",
            "email",
        ];
        if let Some(flag) = params.0.iter().map(|(n, _)| n.as_str()).find(|n| {
            !allowed.contains(n)
                && !KNOWN_FEATURES.contains(n)
                && !["json", "xml", "program"].contains(n)
        }) {
            return failure(P, format!("Unknown parameter --{flag}"));
        }
        let Some(name) = params.get("domain").map(str::to_lowercase) else {
            return failure(P, "Missing domain name");
        };
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
        let target = params.get("parent").or_else(|| params.get("alias"));
        let parent = match target {
            Some(t) => match self.domains.get(t) {
                Some(p) => Some(p.clone()),
                None => return failure(P, "Parent domain does not exist"),
            },
            None => None,
        };
        let password = params.get("pass").unwrap_or_default();
        if parent.is_none() && password.is_empty() {
            return failure(P, "Missing password");
        }
        if self.domains.contains_key(&name) {
            return failure(P, "You are already hosting this domain");
        }
        let plan = params.get("plan").unwrap_or("Default Plan").to_owned();
        if !self.plans.contains(&plan) {
            return failure(P, format!("Plan {plan} does not exist"));
        }
        let template = params
            .get("template")
            .unwrap_or("Default Settings")
            .to_owned();
        if !self.templates.contains(&template) {
            return failure(P, format!("Template {template} does not exist"));
        }
        let unix_user = match &parent {
            Some(p) => p.unix_user.clone(),
            None => {
                let user = params.get("user").map(str::to_owned).unwrap_or_else(|| {
                    name.split('.')
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .take(16)
                        .collect()
                });
                if self
                    .domains
                    .values()
                    .any(|d| d.kind == Kind::TopLevel && d.unix_user == user)
                {
                    return failure(P, format!("A Unix user named {user} already exists"));
                }
                user
            }
        };
        let mut features: Vec<String> = KNOWN_FEATURES
            .iter()
            .filter(|f| params.has(f))
            .map(|f| (*f).to_owned())
            .collect();
        if features.is_empty() || params.has("default-features") {
            features = DEFAULT_FEATURES.iter().map(|f| (*f).to_owned()).collect();
            // Sub-servers share their parent's user and login; aliases serve only names.
            let dropped: &[&str] = match (params.has("parent"), params.has("alias")) {
                (true, _) => &["unix", "webmin"],
                (_, true) => &["unix", "webmin", "logrotate", "mysql"],
                _ => &[],
            };
            features.retain(|f| !dropped.contains(&f.as_str()));
        }
        let kind = match (params.has("parent"), params.has("alias")) {
            (true, _) => Kind::SubServer,
            (_, true) => Kind::Alias,
            _ => Kind::TopLevel,
        };
        self.next_id += 7_919;
        let domain = SimDomain {
            name: name.clone(),
            id: self.next_id,
            kind,
            parent: parent.map(|p| p.name),
            unix_user: unix_user.clone(),
            description: params.get("desc").unwrap_or(&name).to_owned(),
            plan,
            template,
            features,
            disabled: None,
            password: password.to_owned(),
            quota_blocks: None,
            created_unix: now_unix,
            mailboxes: BTreeMap::new(),
            databases: Vec::new(),
            usage: SimUsage::default(),
        };
        self.domains.insert(name.clone(), domain);
        Answer::Output(format!(
            "Beginning server creation ..\n\nSaving server details ..\n.. done\n\nCreating administration group {unix_user} ..\n.. done\n\nCreating home directory ..\n.. done\n\nAdding new DNS zone ..\n.. done\n\nAdding new virtual website ..\n.. done\n\nRe-starting DNS server for {name} ..\n.. done\n\nAll done!\n"
        ))
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
                Answer::Output(format!(
                    "Disabling virtual server {name} ..\n\nDisabling administration user ..\n.. done\n\n.. done\n"
                ))
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
        let plan = params
            .get("apply-plan")
            .or_else(|| params.get("plan"))
            .map(str::to_owned);
        if let Some(plan) = &plan
            && !self.plans.contains(plan)
        {
            return failure(P, format!("Plan {plan} does not exist"));
        }
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
            d.plan = plan;
        }
        Answer::Output(
            "Updating server details ..\n.. done\n\nSaving server details ..\n.. done\n".to_owned(),
        )
    }

    fn list_plans(&self, params: &Params) -> Answer {
        let entries = self
            .plans
            .iter()
            .enumerate()
            .map(|(i, plan)| Entry {
                name: i.to_string(),
                fields: if params.has("multiline") {
                    vec![
                        ("Name".to_owned(), plan.clone()),
                        ("Server quota".to_owned(), "Unlimited".to_owned()),
                        ("Maximum dbs".to_owned(), "Unlimited".to_owned()),
                    ]
                } else {
                    Vec::new()
                },
            })
            .collect();
        Answer::List(entries)
    }

    fn list_templates(&self, params: &Params) -> Answer {
        Answer::List(
            self.templates
                .iter()
                .enumerate()
                .map(|(i, t)| Entry {
                    name: i.to_string(),
                    fields: if params.has("multiline") {
                        vec![("Name".to_owned(), t.clone())]
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
        let Some(d) = self.domains.get_mut(domain) else {
            return missing(P, domain);
        };
        if d.mailboxes.contains_key(user) {
            return failure(
                P,
                "A user or mail alias with the same name and domain already exists",
            );
        }
        d.mailboxes.insert(
            user.to_owned(),
            params.get("real").unwrap_or_default().to_owned(),
        );
        Answer::Output(format!(
            "User {user}.{} created successfully\n",
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
        if d.mailboxes.remove(user).is_none() {
            return failure(
                P,
                format!("No user named {user} was found in the server {domain}"),
            );
        }
        Answer::Output(format!("Deleting user {user} ..\n.. done\n"))
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
                        ("Disabled".to_owned(), "No".to_owned()),
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
        let (Some(domain), Some(name)) = (params.get("domain"), params.get("name")) else {
            return failure(P, "Missing --domain or --name parameter");
        };
        let Some(d) = self.domains.get_mut(domain) else {
            return missing(P, domain);
        };
        if params.get("type").unwrap_or("mysql") != "mysql"
            || !d.features.iter().any(|f| f == "mysql")
        {
            return failure(
                P,
                "The specified database type is not enabled in this virtual server",
            );
        }
        if d.databases.iter().any(|db| db == name) {
            return failure(
                P,
                "A database with the same name and type is already associated with this server",
            );
        }
        d.databases.push(name.to_owned());
        Answer::Output(format!("Creating MySQL database {name} ..\n.. done\n"))
    }

    fn list_databases(&self, params: &Params) -> Answer {
        self.with_domain("list-databases", params, |d| {
            Answer::List(
                d.databases
                    .iter()
                    .map(|db| Entry {
                        name: db.clone(),
                        fields: if params.has("multiline") {
                            vec![
                                ("Type".to_owned(), "mysql".to_owned()),
                                ("Tables".to_owned(), "0".to_owned()),
                            ]
                        } else {
                            Vec::new()
                        },
                    })
                    .collect(),
            )
        })
    }

    fn backup_domain(&self, params: &Params) -> Answer {
        let dest = params
            .get("dest")
            .unwrap_or("/backups/backup.tar.gz")
            .to_owned();
        self.with_domain("backup-domain", params, |d| {
            Answer::Output(format!(
                "Starting backup..\nTesting backup destination local file {dest} ..\n.. done\n\nCreating backup for virtual server {} ..\n.. done\n\nBackup is complete. Final size was 12 kB.\n",
                d.name
            ))
        })
    }
}
