//! The command line. Resource commands work on the database directly (the same store calls the
//! HTTP API makes, audited as `cli:$USER`), so they work whether or not `drover serve` runs.
//! Long work (health checks, drift scans, usage syncs, DNS plans and applies) is queued as a
//! job for a worker, as the API does; `--wait` follows it (see `follow.rs`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use drover_core::{
    AccountId, CustomerId, CustomerSpec, DomainName, JobId, PlanId, PlanPatch, PlanSpec, Scope,
    ServerId, ServerPatch, ServerSpec, ServiceId, ServiceStatus, SuspendReason, TokenId,
    Transition,
};
use drover_store::{
    AccountFilter, AuditFilter, JobFilter, Page, RequestContext, ServiceFilter, Store,
};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::commands;
use crate::config::{Config, Overrides};

mod backups;
mod bootstrap;
mod certificates;
mod databases;
mod dns;
mod doctor;
mod follow;
mod mailboxes;
mod other_domains;
mod usage;
mod webhooks;

use commands::Requested;
use drover_store::jobs::DriftRepair;
use follow::{WaitFlag, ask};

#[derive(Debug, Parser)]
#[command(
    name = "drover",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("DROVER_COMMIT"), ")"),
    about = "The provisioning control plane of a web-hosting business."
)]
pub struct Args {
    /// The database: sqlite://FILE (default sqlite://drover.db) or postgres://…
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,

    /// A TOML file with settings (environment variables and flags win over it).
    #[arg(long, global = true, env = "DROVER_CONFIG")]
    config: Option<PathBuf>,

    /// Print results as JSON instead of text.
    #[arg(long, global = true)]
    json: bool,

    /// Log lines as JSON (for collectors) or text (for people) [default: text at a terminal,
    /// JSON otherwise].
    #[arg(long, global = true, env = "DROVER_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (creating the database on first start).
    Serve {
        /// Address and port to listen on [default: 127.0.0.1:8080].
        #[arg(long, env = "DROVER_LISTEN")]
        listen: Option<String>,
    },
    /// Work jobs (as `serve` does too), without serving the API: add these to scale out.
    Worker {
        /// Serve `/metrics` (and nothing else) on this address and port.
        #[arg(long, env = "DROVER_METRICS_LISTEN")]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Customers.
    #[command(subcommand)]
    Customers(CustomerCommand),
    /// Hosting plans.
    #[command(subcommand)]
    Plans(PlanCommand),
    /// Virtualmin servers of the fleet.
    #[command(subcommand)]
    Servers(ServerCommand),
    /// Services and their lifecycle.
    #[command(subcommand)]
    Services(ServiceCommand),
    /// Hosting accounts.
    #[command(subcommand)]
    Accounts(AccountCommand),
    /// Hosting accounts' mailboxes.
    #[command(subcommand)]
    Mailboxes(mailboxes::MailboxCommand),
    /// Hosting accounts' databases.
    #[command(subcommand)]
    Databases(databases::DatabaseCommand),
    /// Hosting accounts' Let's Encrypt certificates.
    #[command(subcommand)]
    Certificates(certificates::CertificateCommand),
    /// Backups of hosting accounts: destinations, backups now, their outcomes.
    #[command(subcommand)]
    Backups(backups::BackupCommand),
    /// Hosting accounts' alias domains.
    #[command(subcommand)]
    Aliases(other_domains::AliasCommand),
    /// Hosting accounts' sub-servers.
    #[command(subcommand)]
    Subservers(other_domains::SubserverCommand),
    /// Jobs that make the fleet follow the database.
    #[command(subcommand)]
    Jobs(JobCommand),
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The emergency stop for all provisioning.
    #[command(subcommand)]
    Provisioning(ProvisioningCommand),
    /// DNS zones, records and providers.
    #[command(subcommand)]
    Dns(dns::DnsCommand),
    /// Differences between servers and drover's records, and their repair.
    #[command(subcommand)]
    Drift(DriftCommand),
    /// What each account uses (disk, bandwidth, mailboxes, databases), as billing reads it.
    #[command(subcommand)]
    Usage(usage::UsageCommand),
    /// Where drover's events go (signed webhooks to billing and monitoring).
    #[command(subcommand)]
    Webhooks(webhooks::WebhookCommand),
    /// The operator key that seals account passwords.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Check the configuration, the database, the operator key, the workers, every server and
    /// DNS provider, and say what is wrong with its fix; exits 1 when a check fails.
    Doctor {
        /// Skip the live health check (it needs a worker: `drover serve` or `drover worker`).
        #[arg(long)]
        offline: bool,
    },
    /// Print a shell's completion script, e.g. `drover completions bash >
    /// /etc/bash_completion.d/drover`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (`drover man | man -l -`), or write one page per command.
    Man {
        /// Write drover.1, drover-servers.1, drover-servers-add.1, … into this directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DriftCommand {
    /// List each server's domains once and record what differs from drover's accounts.
    /// Exits 1 when a server could not be listed.
    Scan {
        /// Only this server [default: every healthy or degraded one].
        #[arg(long)]
        server: Option<ServerId>,
        #[command(flatten)]
        wait: WaitFlag,
        #[command(flatten)]
        exit: DetailedExitcode,
    },
    /// Scan, then repair by policy: converge jobs for accounts, disabling quarantined orphans.
    Repair {
        /// Only this server [default: every healthy or degraded one].
        #[arg(long)]
        server: Option<ServerId>,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Repair even a pass larger than the limit.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitFlag,
    },
    /// The findings of the last scans.
    List {
        /// Only this server's.
        #[arg(long)]
        server: Option<ServerId>,
    },
    /// Delete an orphan from its server (never done automatically); --confirm repeats it.
    DeleteOrphan {
        /// The server that holds it.
        #[arg(long)]
        server: ServerId,
        /// The orphan's domain.
        domain: String,
        /// The domain, repeated.
        #[arg(long)]
        confirm: String,
        #[command(flatten)]
        wait: WaitFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// This process's key id and the one the database records.
    Show,
    /// Seal every account password again with a new key, in one transaction, and record it.
    /// Stop every drover process first (one still running would seal new passwords with the
    /// old key), then start them with the new key (one on the old key refuses to start).
    Rotate {
        /// The new key's file, created (readable by its owner alone) when it does not exist.
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProvisioningCommand {
    /// Pause: provisioning jobs wait until resumed.
    Pause,
    /// Resume: waiting provisioning jobs run.
    Resume,
    /// Whether provisioning is paused.
    Status,
}

impl Command {
    /// Whether this command runs until stopped (and so logs at info by default).
    pub fn is_service(&self) -> bool {
        matches!(self, Self::Serve { .. } | Self::Worker { .. })
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once, as the last line.
    Create {
        /// operator (everything), billing (customers, services, lifecycle) or readonly.
        #[arg(long)]
        scope: String,
        /// Who uses it [default: the scope's name].
        #[arg(long)]
        name: Option<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token (not the last operator token).
    Revoke {
        /// The token's id (drover token list).
        id: TokenId,
    },
}

#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Add a customer.
    Create {
        /// The customer's name, as billing knows it.
        #[arg(long)]
        name: String,
        /// Where the customer is reached.
        #[arg(long)]
        email: Option<String>,
        /// Billing's id for the customer.
        #[arg(long)]
        external_ref: Option<String>,
    },
    /// List customers, by id.
    List(PageArgs),
    /// One customer.
    Show {
        /// The customer's id.
        id: CustomerId,
    },
}

#[derive(Debug, ClapArgs)]
pub struct PageArgs {
    /// Rows with an id above this one.
    #[arg(long)]
    after: Option<i64>,
    /// At most this many rows.
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

impl PageArgs {
    fn page(&self) -> Page {
        Page::new(self.after, Some(self.limit))
    }
}

/// A plan's fields as flags; on `update`, only the flags given change.
#[derive(Debug, ClapArgs)]
pub struct PlanFields {
    /// Virtualmin server template [default: the server's].
    #[arg(long)]
    template: Option<String>,
    /// Disk quota in MB, or `unlimited`.
    #[arg(long)]
    disk_quota_mb: Option<Limit>,
    /// Monthly bandwidth in MB, or `unlimited`.
    #[arg(long)]
    bandwidth_mb: Option<Limit>,
    /// Mailboxes an account may have, or `unlimited`.
    #[arg(long)]
    max_mailboxes: Option<Limit>,
    /// Each mailbox's disk quota in MB (the default, and the most one may be given), or
    /// `unlimited`.
    #[arg(long)]
    mailbox_quota_mb: Option<Limit>,
    /// Databases an account may have, or `unlimited`.
    #[arg(long)]
    max_databases: Option<Limit>,
    /// Sub-servers an account may have, or `unlimited`.
    #[arg(long)]
    max_subservers: Option<Limit>,
    /// Alias domains an account may have, or `unlimited`.
    #[arg(long)]
    max_aliases: Option<Limit>,
    /// Hours between each account's scheduled backups, 0 for none, or `default` for the
    /// fleet's interval (DROVER_BACKUP_INTERVAL).
    #[arg(long, value_parser = parse_backup_hours)]
    backup_interval_hours: Option<Option<u64>>,
    /// A Virtualmin feature (web, ssl, dns, mail, mysql, …); repeat for more.
    #[arg(long = "feature")]
    features: Vec<String>,
    /// A tag servers must carry to host the plan; repeat for more.
    #[arg(long = "tag")]
    tags: Vec<String>,
}

/// Whole hours, or `default` (none of the plan's own).
fn parse_backup_hours(input: &str) -> Result<Option<u64>, String> {
    if input == "default" {
        return Ok(None);
    }
    input
        .parse()
        .map(Some)
        .map_err(|_| format!("'{input}' is not a whole number of hours or 'default'"))
}

/// A number, or `unlimited`.
#[derive(Debug, Clone, Copy)]
pub struct Limit(Option<u64>);

impl std::str::FromStr for Limit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "unlimited" {
            return Ok(Self(None));
        }
        s.parse()
            .map(|n| Self(Some(n)))
            .map_err(|_| format!("'{s}' is not a whole number or 'unlimited'"))
    }
}

impl PlanFields {
    fn into_json(self, name: Option<String>) -> Value {
        let mut object = Map::new();
        let mut set = |key: &str, value: Value| {
            object.insert(key.to_owned(), value);
        };
        if let Some(name) = name {
            set("name", json!(name));
        }
        if let Some(template) = self.template {
            set("template", json!(template));
        }
        for (key, limit) in [
            ("disk_quota_mb", self.disk_quota_mb),
            ("bandwidth_mb", self.bandwidth_mb),
            ("max_mailboxes", self.max_mailboxes),
            ("mailbox_quota_mb", self.mailbox_quota_mb),
            ("max_databases", self.max_databases),
            ("max_subservers", self.max_subservers),
            ("max_aliases", self.max_aliases),
        ] {
            if let Some(Limit(value)) = limit {
                set(key, json!(value));
            }
        }
        if let Some(hours) = self.backup_interval_hours {
            set("backup_interval_hours", json!(hours));
        }
        if !self.features.is_empty() {
            set("features", json!(self.features));
        }
        if !self.tags.is_empty() {
            set("required_tags", json!(self.tags));
        }
        Value::Object(object)
    }
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Add a plan.
    Create {
        /// The plan's name, also the Virtualmin account plan applied.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        fields: PlanFields,
    },
    /// List plans, by id.
    List(PageArgs),
    /// One plan.
    Show {
        /// The plan's id.
        id: PlanId,
    },
    /// Change a plan; only the flags given change.
    Update {
        /// The plan's id.
        id: PlanId,
        /// A new name (the Virtualmin account plan of that name is applied).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: PlanFields,
        /// Narrow the plan even if accounts on it hold more than it would allow: nothing is
        /// deleted, and those accounts are flagged over their limits.
        #[arg(long)]
        force: bool,
    },
}

/// A server's fields as flags; on `update`, only the flags given change.
#[derive(Debug, ClapArgs)]
pub struct ServerFields {
    /// Where Virtualmin's API answers.
    #[arg(long)]
    hostname: Option<String>,
    /// Webmin's port [default: 10000].
    #[arg(long)]
    port: Option<u16>,
    /// Public IPv4 address, written into DNS.
    #[arg(long)]
    ipv4: Option<String>,
    /// Public IPv6 address, written into DNS.
    #[arg(long)]
    ipv6: Option<String>,
    /// The most accounts it may hold.
    #[arg(long)]
    capacity: Option<u32>,
    /// A placement tag such as region-eu; repeat for more.
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// The Webmin user [default: root].
    #[arg(long)]
    api_user: Option<String>,
    /// Where its password is: env:NAME or file:/path (never the password itself).
    #[arg(long)]
    credentials: Option<String>,
    /// Skip TLS certificate verification (only for a test server with a self-signed certificate).
    #[arg(long)]
    insecure_skip_tls_verify: bool,
    /// SHA-256 fingerprint of the server's certificate to pin.
    #[arg(long)]
    pin_sha256: Option<String>,
    /// Calls per second for this server [default: VIRTUALMIN_RATE_QPS].
    #[arg(long)]
    rate_qps: Option<f64>,
    /// SSH for the break-glass path: where its private key is (env:NAME or file:/path; an
    /// unencrypted Ed25519 or ECDSA key). Given with --ssh-host-key.
    #[arg(long, requires = "ssh_host_key")]
    ssh_key: Option<String>,
    /// The server's SSH host key to pin, as `ssh-keygen -lf` prints it (SHA256:…).
    #[arg(long, requires = "ssh_key")]
    ssh_host_key: Option<String>,
    /// Who logs in over SSH [default: root].
    #[arg(long, requires = "ssh_key")]
    ssh_user: Option<String>,
    /// The SSH port [default: 22].
    #[arg(long, requires = "ssh_key")]
    ssh_port: Option<u16>,
}

impl ServerFields {
    fn into_json(self, name: Option<String>) -> Value {
        let mut object = Map::new();
        let values = [
            ("name", name.map(Value::from)),
            ("hostname", self.hostname.map(Value::from)),
            ("port", self.port.map(Value::from)),
            ("ipv4", self.ipv4.map(Value::from)),
            ("ipv6", self.ipv6.map(Value::from)),
            ("capacity", self.capacity.map(Value::from)),
            ("api_user", self.api_user.map(Value::from)),
            ("credentials", self.credentials.map(Value::from)),
            ("pinned_cert_sha256", self.pin_sha256.map(Value::from)),
            ("rate_qps", self.rate_qps.map(Value::from)),
            (
                "tls_verify",
                self.insecure_skip_tls_verify.then_some(Value::Bool(false)),
            ),
            ("tags", (!self.tags.is_empty()).then(|| json!(self.tags))),
            (
                "ssh",
                self.ssh_key.map(|key| {
                    let mut ssh = json!({ "key": key, "host_key": self.ssh_host_key });
                    if let Some(user) = self.ssh_user {
                        ssh["user"] = user.into();
                    }
                    if let Some(port) = self.ssh_port {
                        ssh["port"] = port.into();
                    }
                    ssh
                }),
            ),
        ];
        for (key, value) in values {
            if let Some(value) = value {
                object.insert(key.to_owned(), value);
            }
        }
        Value::Object(object)
    }
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Add a server to the fleet.
    Add {
        /// drover's name for the server, unique in the fleet.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        fields: ServerFields,
    },
    /// List servers, by id, with their state and load.
    List(PageArgs),
    /// One server.
    Show {
        /// The server's id.
        id: ServerId,
    },
    /// Change a server; only the flags given change.
    Update {
        /// The server's id.
        id: ServerId,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: ServerFields,
    },
    /// Check servers' health now (all, or the one given) and record the results, as the
    /// scheduler does.
    /// Exits 1 when a server could not be reached.
    Check {
        /// Only this server [default: all].
        id: Option<ServerId>,
        #[command(flatten)]
        wait: WaitFlag,
        #[command(flatten)]
        exit: DetailedExitcode,
    },
    /// The last health check of a server, with its reasons.
    Health {
        /// The server's id.
        id: ServerId,
    },
    /// Put a server in maintenance (nothing is placed on it, its jobs wait, health checks never
    /// move it) or take it out.
    Maintenance {
        /// The server's id.
        id: ServerId,
        /// Into maintenance.
        #[arg(long, conflicts_with = "off", required_unless_present = "off")]
        on: bool,
        /// Out of maintenance: back to what health checks say.
        #[arg(long)]
        off: bool,
    },
    /// Let drover try to log in to a server that refused it (its credentials were fixed on
    /// the server's side, or a lock-out has passed). New credentials in drover need no command.
    AllowLogin {
        /// The server's id.
        id: ServerId,
    },
    /// Move every account off a server by placement (each a migration); nothing new lands on it.
    Drain {
        /// The server to empty.
        id: ServerId,
        /// Print the moves and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Seconds to keep each old copy unless confirmed [default: DROVER_MIGRATION_GRACE].
        #[arg(long)]
        grace: Option<u64>,
        /// Move the accounts even though their content cannot be carried (no SSH host is the
        /// default backup destination): they start empty on their new servers.
        #[arg(long)]
        without_content: bool,
    },
    /// Recreate a lost server's accounts on a fresh server from drover's data alone: checks
    /// first, then the plan, then the jobs.
    Rebuild {
        /// The lost server.
        id: ServerId,
        /// The fresh server that receives its accounts.
        #[arg(long)]
        onto: ServerId,
        /// Check and plan only.
        #[arg(long)]
        dry_run: bool,
        /// Show progress until every account is rebuilt.
        #[arg(long)]
        wait: bool,
    },
    /// Bring a server's existing accounts under drover: --dry-run lists what it holds and the
    /// records drover would keep (customers, plans, accounts, suspensions); --apply records them
    /// in one transaction. Nothing changes on the server; adopted accounts are protected from
    /// deletion and have no password drover knows (set one with `drover services password`).
    Adopt {
        /// The server's id.
        id: ServerId,
        /// Only say what would be recorded.
        #[arg(long, conflicts_with = "apply", required_unless_present = "apply")]
        dry_run: bool,
        /// Record it.
        #[arg(long)]
        apply: bool,
        /// Billing's mapping, CSV with a header: domain,customer[,plan,name,email] (customer is
        /// billing's customer id). Without it, customers are found by the owner's contact
        /// address and plans by the server's plan names.
        #[arg(long, value_name = "FILE.csv")]
        map: Option<PathBuf>,
        /// Where the server carries a plan with other limits or features than drover's, let
        /// drover's replace it (on every domain of the plan there) once it manages them.
        #[arg(long)]
        accept_plan_changes: bool,
        #[command(flatten)]
        wait: WaitFlag,
    },
    /// Retire an empty server; --confirm repeats its name.
    Decommission {
        /// The server's id.
        id: ServerId,
        /// The server's name, repeated.
        #[arg(long)]
        confirm: String,
    },
    /// Mark a server as worked on over SSH (its remote.cgi not answering): the break-glass
    /// path may reach it, and its accounts' jobs wait until the mark is lifted.
    BreakGlass {
        /// The server's id.
        id: ServerId,
        /// Why, for the audit log and the other operators.
        #[arg(long, required_unless_present = "lift", conflicts_with = "lift")]
        reason: Option<String>,
        /// Lift the mark: jobs carry on through remote.cgi.
        #[arg(long)]
        lift: bool,
    },
    /// Run one of Virtualmin's programs with its own `virtualmin` command over SSH, on a
    /// server marked with break-glass; its answer is read as remote.cgi's.
    OverSsh {
        /// The server's id.
        id: ServerId,
        #[command(subcommand)]
        program: OverSshCommand,
    },
    /// Bring a bare server into the fleet over SSH: checks the system, installs Webmin and
    /// Virtualmin, makes a Webmin user for drover (remote calls only), optionally hardens it,
    /// pins its certificate and registers it, in maintenance until its first good health
    /// check. Every step checks first whether it is done, so running it again resumes it.
    /// Try --dry-run first: it prints every command.
    Bootstrap(Box<bootstrap::BootstrapArgs>),
    /// The bootstraps, or one with each step and every command run.
    Bootstraps {
        /// A bootstrap's id.
        id: Option<i64>,
        /// Start this failed bootstrap again where it stopped (its done steps stay done).
        #[arg(long, requires = "id")]
        resume: bool,
        /// With --resume: follow it until it ends.
        #[arg(long, requires = "resume")]
        wait: bool,
        #[command(flatten)]
        page: PageArgs,
    },
}

/// The programs the break-glass path runs.
#[derive(Debug, Subcommand)]
pub enum OverSshCommand {
    /// Every domain on the server, and whether it is disabled.
    ListDomains {
        #[command(flatten)]
        wait: WaitFlag,
    },
    /// The server's own description.
    Info {
        #[command(flatten)]
        wait: WaitFlag,
    },
    /// Suspend a domain (its owner sees the reason).
    DisableDomain {
        /// The domain (Unicode or punycode).
        domain: String,
        /// The reason shown to its owner.
        #[arg(long)]
        why: Option<String>,
        #[command(flatten)]
        wait: WaitFlag,
    },
    /// Unsuspend a domain.
    EnableDomain {
        /// The domain (Unicode or punycode).
        domain: String,
        #[command(flatten)]
        wait: WaitFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Add a pending service and reserve its domain.
    Create {
        /// The customer's id.
        #[arg(long)]
        customer: CustomerId,
        /// The plan's id.
        #[arg(long)]
        plan: PlanId,
        /// The domain, Unicode or punycode.
        #[arg(long)]
        domain: String,
    },
    /// List services, by id.
    List {
        /// Only this customer's.
        #[arg(long)]
        customer: Option<CustomerId>,
        /// pending, active, suspended or terminated.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One service.
    Show {
        /// The service's id.
        id: ServiceId,
    },
    /// pending → active: the account is created on a server.
    Activate {
        /// The service's id.
        id: ServiceId,
    },
    /// active → suspended: the account is disabled.
    Suspend {
        /// The service's id.
        id: ServiceId,
        /// Why; kept on the account.
        #[arg(long)]
        reason: Option<String>,
    },
    /// suspended → active.
    Unsuspend {
        /// The service's id.
        id: ServiceId,
    },
    /// → terminated: the account is deleted unless protected.
    Terminate {
        /// The service's id.
        id: ServiceId,
    },
    /// Move to another plan; its limits are applied on the server.
    ChangePlan {
        /// The service's id.
        id: ServiceId,
        /// The new plan's id.
        #[arg(long)]
        plan: PlanId,
        /// Change even if the account holds more than the plan allows: nothing is deleted,
        /// and the account is flagged over its limits.
        #[arg(long)]
        force: bool,
    },
    /// Set a new account password, read from standard input (never from the command line).
    Password {
        /// The service's id.
        id: ServiceId,
    },
    /// Suspend, unsuspend or change the plan of many services, with progress and a summary.
    Bulk {
        /// suspend, unsuspend or change-plan.
        action: String,
        /// Services by id, comma-separated; or leave out and select with --status/--customer.
        #[arg(long, value_delimiter = ',')]
        ids: Vec<ServiceId>,
        /// Select services in this status (pending, active, suspended).
        #[arg(long)]
        status: Option<String>,
        /// Select this customer's services.
        #[arg(long)]
        customer: Option<CustomerId>,
        /// For suspend: the reason kept on each account.
        #[arg(long)]
        reason: Option<String>,
        /// For change-plan: the new plan.
        #[arg(long)]
        plan: Option<PlanId>,
        /// Return once queued instead of waiting for the fleet.
        #[arg(long)]
        no_wait: bool,
        /// Stop waiting after this many seconds (the jobs go on) [default: no limit].
        #[arg(long, value_name = "SECONDS", conflicts_with = "no_wait")]
        wait_timeout: Option<u64>,
        /// List what each service would become, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Go ahead without asking when more than one service is selected.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// List accounts, by id.
    List {
        /// Unicode or punycode.
        #[arg(long)]
        domain: Option<String>,
        /// Only those placed on this server.
        #[arg(long)]
        server: Option<ServerId>,
        /// Only accounts whose last converge job gave up, with why.
        #[arg(long)]
        failed: bool,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One account, with where it is and what it should be.
    Show {
        /// The account's id.
        id: AccountId,
    },
    /// Turn deletion protection on.
    Protect {
        /// The account's id.
        id: AccountId,
        /// The account's domain, repeated.
        #[arg(long)]
        confirm: String,
    },
    /// Lift deletion protection (a terminated account is then deleted).
    Unprotect {
        /// The account's id.
        id: AccountId,
        /// The account's domain, repeated.
        #[arg(long)]
        confirm: String,
    },
    /// Restore an account's files, mail and databases from one of its backups on its server;
    /// drover's records are applied on top. Without --confirm, prints what it would replace.
    Restore {
        /// The account's id.
        id: AccountId,
        /// The backup's id [default: the account's last good backup].
        #[arg(long)]
        from: Option<drover_core::BackupId>,
        /// The account's domain, repeated: the restore replaces its content.
        #[arg(long)]
        confirm: Option<String>,
        /// Restore it onto this server instead: the account moves there with the backup's
        /// content (the backup must be on an SSH host), its old copy kept for --grace.
        #[arg(long)]
        to: Option<ServerId>,
        /// Seconds to keep the old copy after --to unless confirmed [default:
        /// DROVER_MIGRATION_GRACE].
        #[arg(long, requires = "to")]
        grace: Option<u64>,
        #[command(flatten)]
        wait: WaitFlag,
    },
    /// A one-time link into the account's panel for its owner, valid for five minutes: asked
    /// of its server by a job (a worker must be running) and printed once.
    LoginLink {
        /// The account's id.
        id: AccountId,
    },
    /// Move an account to another server: created there, DNS switched, the old copy disabled
    /// and deleted after confirmation or the grace period (DROVER_MIGRATION_GRACE).
    Migrate {
        /// The account's id.
        id: AccountId,
        /// The server it moves to.
        #[arg(long)]
        to: ServerId,
        /// Seconds to keep the old copy unless confirmed [default: DROVER_MIGRATION_GRACE].
        #[arg(long)]
        grace: Option<u64>,
        /// Move it even though its content cannot be carried (no SSH host is the default
        /// backup destination): it starts empty on its new server.
        #[arg(long)]
        without_content: bool,
    },
    /// Where an account's move stands.
    Migration {
        /// The account's id.
        id: AccountId,
    },
    /// Let a moved account's old copy be deleted now; --confirm repeats the domain.
    ConfirmMigration {
        /// The account's id.
        id: AccountId,
        /// The account's domain, repeated.
        #[arg(long)]
        confirm: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// List jobs, newest first.
    List {
        /// Comma-separated states: available, scheduled, running, retryable, completed,
        /// discarded, cancelled, pending.
        #[arg(long)]
        status: Option<String>,
        /// Only this account's.
        #[arg(long)]
        account: Option<AccountId>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// A job with the Virtualmin calls it made.
    Show {
        /// The job's id.
        id: JobId,
    },
    /// Run a discarded, cancelled or completed job again.
    Retry {
        /// The job's id.
        id: JobId,
    },
    /// Cancel a job that has not finished.
    Cancel {
        /// The job's id.
        id: JobId,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole hash chain; exits non-zero when it is broken.
    Verify,
    /// List events, oldest first.
    List {
        /// Like service:7.
        #[arg(long)]
        subject: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
}

/// `--detailed-exitcode`'s "there is something to see" (exit 2, as terraform's): not a failure,
/// so nothing is printed for it.
#[derive(Debug, thiserror::Error)]
#[error("changes or findings")]
pub struct ChangesFound;

/// Exit codes: 0 done, 1 an error, 2 a usage error, or with this flag, changes or findings.
#[derive(Debug, Clone, Copy, ClapArgs)]
pub struct DetailedExitcode {
    /// With --wait: exit 2 when there are changes (a DNS plan), findings (a drift scan) or a
    /// server that is not healthy (a check); 0 when there are none, 1 on an error.
    #[arg(long, requires = "wait")]
    detailed_exitcode: bool,
}

impl DetailedExitcode {
    fn report(self, found: bool) -> anyhow::Result<()> {
        if self.detailed_exitcode && found {
            Err(ChangesFound.into())
        } else {
            Ok(())
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // These describe drover itself: no configuration, no database.
    match &args.command {
        Command::Completions { shell } => {
            let mut command = <Args as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "drover", &mut std::io::stdout());
            return Ok(());
        }
        Command::Man { dir } => {
            let command = <Args as clap::CommandFactory>::command();
            match dir {
                Some(dir) => std::fs::create_dir_all(dir)
                    .and_then(|()| clap_mangen::generate_to(command, dir))
                    .with_context(|| format!("writing manual pages to {}", dir.display()))?,
                None => clap_mangen::Man::new(command).render(&mut std::io::stdout())?,
            }
            return Ok(());
        }
        _ => {}
    }
    let listen = match &args.command {
        Command::Serve { listen } => listen.clone(),
        _ => None,
    };
    let config = Config::load(Overrides {
        config_file: args.config.clone(),
        database_url: args.database_url.clone(),
        listen,
    })?;
    let env = std::env::vars().collect();
    for unknown in crate::config::unknown_settings(&env, &config.secret_sources.env_prefix) {
        tracing::warn!("{unknown}");
    }
    let (store, applied) =
        drover_store::open_reporting(&config.database_url, config.db_pool).await?;
    let database = drover_store::redact_url(&config.database_url);
    if !applied.is_empty() && !matches!(args.command, Command::Migrate) {
        tracing::info!(%database, "schema {applied}");
    }
    let out = Output { json: args.json };
    let ctx = cli_context();
    match args.command {
        Command::Serve { .. } => crate::serve::serve(&config, store).await,
        Command::Worker { metrics_listen } => {
            crate::serve::work(&config, store, metrics_listen).await
        }
        Command::Migrate => {
            println!("database {database}: {applied}");
            Ok(())
        }
        Command::Token(command) => token(command, &*store, &ctx, out).await,
        Command::Customers(command) => customers(command, &*store, &ctx, out).await,
        Command::Plans(command) => plans(command, &*store, &ctx, out).await,
        Command::Servers(command) => servers(command, &store, &ctx, &config, out).await,
        Command::Services(command) => services(command, &store, &ctx, &config, out).await,
        Command::Accounts(command) => accounts(command, &*store, &ctx, &config, out).await,
        Command::Jobs(command) => jobs(command, &*store, &ctx, out).await,
        Command::Audit(command) => audit(command, &*store, out).await,
        Command::Dns(command) => dns::run(command, &store, &ctx, &config, out).await,
        Command::Drift(command) => drift(command, &store, &ctx, out).await,
        Command::Usage(command) => usage::run(command, &store, &ctx, out).await,
        Command::Webhooks(command) => webhooks::run(command, &*store, &ctx, &config, out).await,
        Command::Mailboxes(command) => mailboxes::run(command, &*store, &ctx, &config, out).await,
        Command::Databases(command) => databases::run(command, &*store, &ctx, out).await,
        Command::Certificates(command) => certificates::run(command, &*store, &ctx, out).await,
        Command::Backups(command) => backups::run(command, &*store, &ctx, &config, out).await,
        Command::Aliases(command) => other_domains::run_aliases(command, &*store, &ctx, out).await,
        Command::Subservers(command) => {
            other_domains::run_subservers(command, &*store, &ctx, out).await
        }
        Command::Key(command) => key(command, &*store, &ctx, &config, out).await,
        Command::Doctor { offline } => {
            let findings = doctor::examine(&*store, &ctx, &config, &applied, !offline).await?;
            doctor::print(&findings, out)
        }
        Command::Completions { .. } | Command::Man { .. } => {
            unreachable!("answered above, before the database is opened")
        }
        Command::Provisioning(command) => {
            match command {
                ProvisioningCommand::Pause => {
                    commands::set_provisioning_paused(&*store, &ctx, true).await?
                }
                ProvisioningCommand::Resume => {
                    commands::set_provisioning_paused(&*store, &ctx, false).await?
                }
                ProvisioningCommand::Status => {}
            }
            let paused = store.provisioning_paused().await?;
            out.one(&json!({ "paused": paused }))
        }
    }
}

async fn key(
    command: KeyCommand,
    store: &dyn Store,
    ctx: &RequestContext,
    config: &Config,
    out: Output,
) -> anyhow::Result<()> {
    use crate::engine::seal::{Sealer, look_at_operator_key, operator_key};
    match command {
        KeyCommand::Show => {
            let recorded = store.seal_key_id().await?;
            let key = look_at_operator_key(store, &config.seal_key).await?;
            out.one(&json!({ "key_id": key.as_ref().map(Sealer::id), "recorded": recorded }))
        }
        KeyCommand::Rotate { new_key_file } => {
            let old = operator_key(store, &config.seal_key).await?;
            let new = Sealer::from_file(&new_key_file)?;
            if new.id() == old.id() {
                bail!(
                    "{} holds the key in use ({}): name a new file",
                    new_key_file.display(),
                    old.id()
                );
            }
            let reseal = |sealed: &[u8]| {
                old.open(sealed)
                    .map(|password| new.seal(&password))
                    .map_err(|e| e.to_string())
            };
            let count = store
                .reseal_passwords(ctx, &reseal, old.id(), new.id())
                .await?;
            let unset = match config.seal_key {
                crate::config::SealKey::Hex(_) => " (and without DROVER_SEAL_KEY)",
                crate::config::SealKey::File(_) => "",
            };
            eprintln!(
                "{count} passwords are sealed with {} now: start every drover process with \
                 DROVER_SEAL_KEY_FILE={}{unset}, and keep a copy of the key apart from the \
                 database's backups",
                new.id(),
                new_key_file.display()
            );
            out.one(&json!({ "passwords": count, "from": old.id(), "key_id": new.id() }))
        }
    }
}

/// Asks before a change to many services: at a terminal, the operator types the count; from a
/// script, `--yes` says it.
fn confirm_bulk(count: usize) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        bail!("{count} services are selected: add --yes to go ahead, or --dry-run to list them");
    }
    eprint!("{count} services are selected; type {count} to go ahead: ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() != count.to_string() {
        bail!("nothing changed: the answer was not {count}");
    }
    Ok(())
}

fn cli_context() -> RequestContext {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    RequestContext {
        actor: format!("cli:{user}"),
        correlation_id: crate::api::new_correlation_id(),
    }
}

/// Prints one record or a list, as JSON or as text.
#[derive(Debug, Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    fn one<T: Serialize>(self, value: &T) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(value)?);
        Ok(())
    }

    /// A list: JSON, or a table of the named columns.
    /// A table of `rows`, one column per field; `a.b` names a field of an object field and is
    /// headed by its last part.
    fn list<T: Serialize>(self, rows: &[T], columns: &[&str]) -> anyhow::Result<()> {
        if self.json {
            return self.one(&rows);
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|row| {
                let value = serde_json::to_value(row).unwrap_or_default();
                columns
                    .iter()
                    .map(|c| {
                        cell(
                            &value
                                .pointer(&format!("/{}", c.replace('.', "/")))
                                .cloned()
                                .unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .collect();
        let widths: Vec<usize> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                cells
                    .iter()
                    .map(|r| r[i].len())
                    .chain([c.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |values: Vec<String>| {
            let padded: Vec<String> = values
                .iter()
                .zip(&widths)
                .map(|(v, w)| format!("{v:w$}"))
                .collect();
            println!("{}", padded.join("  ").trim_end());
        };
        line(
            columns
                .iter()
                .map(|c| c.rsplit('.').next().unwrap_or(c).to_uppercase())
                .collect(),
        );
        for row in cells {
            line(row);
        }
        if rows.is_empty() {
            println!("(none)");
        }
        Ok(())
    }
}

pub(crate) fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Parses flags gathered as JSON the same way the API parses a body, so both give the same
/// messages for the same mistakes.
pub(crate) fn from_flags<T: serde::de::DeserializeOwned>(value: Value) -> anyhow::Result<T> {
    let bytes = serde_json::to_vec(&value)?;
    crate::api::parse_json(&bytes).map_err(|e| anyhow::anyhow!(e.message))
}

async fn token(
    command: TokenCommand,
    store: &dyn Store,
    ctx: &RequestContext,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { scope, name } => {
            let scope = Scope::parse(&scope)?;
            let name = name.unwrap_or_else(|| scope.as_str().to_owned());
            let (token, secret) = commands::create_token(store, ctx, &name, scope).await?;
            if out.json {
                out.one(&json!({ "token": token, "secret": secret.expose_secret() }))
            } else {
                eprintln!(
                    "created token {} '{}' with scope {} (shown once):",
                    token.id, token.name, token.scope
                );
                println!("{}", secret.expose_secret());
                Ok(())
            }
        }
        TokenCommand::List => out.list(
            &store.tokens().await?,
            &["id", "name", "scope", "created_at", "revoked_at"],
        ),
        TokenCommand::Revoke { id } => out.one(&commands::revoke_token(store, ctx, id).await?),
    }
}

async fn customers(
    command: CustomerCommand,
    store: &dyn Store,
    ctx: &RequestContext,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        CustomerCommand::Create {
            name,
            email,
            external_ref,
        } => {
            let spec = CustomerSpec::new(&name, email.as_deref(), external_ref.as_deref())?;
            out.one(&commands::create_customer(store, ctx, spec).await?)
        }
        CustomerCommand::List(page) => out.list(
            &store.customers(page.page()).await?,
            &["id", "name", "email", "external_ref", "created_at"],
        ),
        CustomerCommand::Show { id } => out.one(&store.customer(id).await?),
    }
}

async fn plans(
    command: PlanCommand,
    store: &dyn Store,
    ctx: &RequestContext,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        PlanCommand::Create { name, fields } => {
            let spec: PlanSpec = from_flags(fields.into_json(Some(name)))?;
            out.one(&commands::create_plan(store, ctx, spec).await?)
        }
        PlanCommand::List(page) => out.list(
            &store.plans(page.page()).await?,
            &[
                "id",
                "name",
                "disk_quota_mb",
                "max_mailboxes",
                "features",
                "required_tags",
            ],
        ),
        PlanCommand::Show { id } => out.one(&store.plan(id).await?),
        PlanCommand::Update {
            id,
            name,
            fields,
            force,
        } => {
            let patch: PlanPatch = from_flags(fields.into_json(name))?;
            out.one(&commands::update_plan(store, ctx, id, patch, force).await?)
        }
    }
}

async fn servers(
    command: ServerCommand,
    store: &Arc<dyn Store>,
    ctx: &RequestContext,
    config: &Config,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        ServerCommand::Add { name, fields } => {
            let spec: ServerSpec = from_flags(fields.into_json(Some(name)))?;
            config.secret_sources.check(&spec.credentials)?;
            if let Some(ssh) = &spec.ssh {
                config.secret_sources.check(&ssh.key)?;
            }
            out.one(&commands::create_server(&**store, ctx, spec).await?)
        }
        ServerCommand::List(page) => out.list(
            &store.servers(page.page()).await?,
            &[
                "id", "name", "hostname", "port", "capacity", "tags", "state",
            ],
        ),
        ServerCommand::Show { id } => out.one(&store.server(id).await?),
        ServerCommand::Update { id, name, fields } => {
            let patch: ServerPatch = from_flags(fields.into_json(name))?;
            if let Some(credentials) = &patch.credentials {
                config.secret_sources.check(credentials)?;
            }
            if let Some(Some(ssh)) = &patch.ssh {
                config.secret_sources.check(&ssh.key)?;
            }
            out.one(&commands::update_server(&**store, ctx, id, patch).await?)
        }
        ServerCommand::Check { id, wait, exit } => {
            let Some(output) = ask(
                &**store,
                ctx,
                Requested::HealthCheck {
                    server: id,
                    plans: false,
                },
                wait,
                out,
            )
            .await?
            else {
                return Ok(());
            };
            let checked = output["servers"].as_array().map_or(&[][..], Vec::as_slice);
            out.list(
                checked,
                &[
                    "id",
                    "name",
                    "state",
                    "was",
                    "verdict",
                    "latency_ms",
                    "certificate_days_left",
                    "reasons",
                ],
            )?;
            let with =
                |verdict: &'static str| checked.iter().filter(move |s| s["verdict"] == verdict);
            let unreached: Vec<String> = with("unavailable").map(|s| cell(&s["name"])).collect();
            if !unreached.is_empty() {
                bail!("{} could not be reached", unreached.join(", "));
            }
            exit.report(with("degraded").next().is_some())
        }
        ServerCommand::Health { id } => match store.server_health(id).await? {
            Some(health) => out.one(&health),
            None => bail!("server {id} has not been checked yet (drover servers check {id})"),
        },
        ServerCommand::Drain {
            id,
            dry_run,
            grace,
            without_content,
        } => {
            let grace = grace.map_or(config.fleet.migration_grace, std::time::Duration::from_secs);
            let without = commands::WithoutContent::allowed(without_content);
            let plan = commands::drain(
                &**store,
                ctx,
                &config.placement,
                id,
                grace,
                dry_run,
                without,
            )
            .await?;
            if out.json {
                return out.one(&plan);
            }
            let verb = if dry_run { "would move" } else { "moving" };
            println!("{}: {verb} {} accounts", plan.server, plan.moves.len());
            for m in &plan.moves {
                println!("  {} (account {}) → {}", m.domain, m.account_id, m.to_name);
            }
            for (account, domain, reason) in &plan.unplaced {
                println!("  {domain} (account {account}) stays: {reason}");
            }
            if !plan.under_way.is_empty() {
                println!("  {} accounts already being moved", plan.under_way.len());
            }
            println!("  content: {}", plan.content);
            Ok(())
        }
        ServerCommand::Rebuild {
            id,
            onto,
            dry_run,
            wait,
        } => {
            let lost = store.server(id).await?;
            let plan = commands::rebuild(
                &**store,
                ctx,
                &lost,
                onto,
                config.virtualmin.rate_qps,
                dry_run,
            )
            .await?;
            if out.json {
                out.one(&plan)?;
            } else {
                println!(
                    "rebuild {} onto {}: {} accounts, {} calls, about {:.0} s at the new server's rate",
                    plan.lost,
                    plan.onto,
                    plan.steps.len(),
                    plan.calls,
                    plan.estimated_seconds
                );
                for step in &plan.steps {
                    let content = match (step.restore_from, step.backup_age_seconds) {
                        (Some(backup), Some(age)) => {
                            format!("restored from backup {backup}, {} h old", age / 3600)
                        }
                        _ => "no backup: made empty".to_owned(),
                    };
                    println!(
                        "  {} (account {}, plan {}): {} calls, {content}",
                        step.domain, step.account_id, step.plan, step.calls
                    );
                }
                for problem in &plan.problems {
                    println!("  problem: {problem}");
                }
            }
            if !plan.problems.is_empty() {
                bail!(
                    "the rebuild was not started: {} accounts lack what recreation needs",
                    plan.problems.len()
                );
            }
            if wait && plan.started {
                let total = plan.steps.len();
                loop {
                    let remaining =
                        usize::try_from(store.failovers_remaining(id).await?).unwrap_or(0);
                    eprintln!("rebuilt {} of {total}", total - remaining.min(total));
                    if remaining == 0 {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
            Ok(())
        }
        ServerCommand::Adopt {
            id,
            dry_run: _,
            apply,
            map,
            accept_plan_changes,
            wait,
        } => {
            let mapping = match map {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).with_context(|| {
                        format!("cannot read the mapping file {}", path.display())
                    })?;
                    Some(drover_core::parse_mapping(&text)?)
                }
                None => None,
            };
            let request = Requested::Adoption {
                server: id,
                apply,
                mapping,
                accept_plan_changes,
            };
            let Some(output) = ask(&**store, ctx, request, wait, out).await? else {
                return Ok(());
            };
            if out.json {
                return out.one(&output);
            }
            println!("{}", output["text"].as_str().unwrap_or_default());
            Ok(())
        }
        ServerCommand::Decommission { id, confirm } => {
            out.one(&commands::decommission(&**store, ctx, id, &confirm).await?)
        }
        ServerCommand::Maintenance { id, on, off: _ } => {
            out.one(&commands::set_maintenance(&**store, ctx, id, on).await?)
        }
        ServerCommand::AllowLogin { id } => {
            out.one(&commands::allow_login(&**store, ctx, id).await?)
        }
        ServerCommand::BreakGlass {
            id,
            reason,
            lift: _,
        } => out.one(&commands::set_break_glass(&**store, ctx, id, reason.as_deref()).await?),
        ServerCommand::Bootstrap(args) => bootstrap::start(*args, &**store, ctx, config, out).await,
        ServerCommand::Bootstraps {
            id: Some(id),
            resume: true,
            wait,
            ..
        } => bootstrap::resume(id, wait, &**store, ctx, out).await,
        ServerCommand::Bootstraps { id, page, .. } => {
            bootstrap::show(id, page, &**store, out).await
        }
        ServerCommand::OverSsh { id, program } => {
            use drover_store::jobs::SshProgram;
            let (program, wait) = match program {
                OverSshCommand::ListDomains { wait } => (SshProgram::ListDomains, wait),
                OverSshCommand::Info { wait } => (SshProgram::Info, wait),
                OverSshCommand::DisableDomain { domain, why, wait } => {
                    (SshProgram::DisableDomain { domain, why }, wait)
                }
                OverSshCommand::EnableDomain { domain, wait } => {
                    (SshProgram::EnableDomain { domain }, wait)
                }
            };
            let request = Requested::OverSsh {
                server: id,
                program,
            };
            let Some(output) = ask(&**store, ctx, request, wait, out).await? else {
                return Ok(());
            };
            out.one(&output)
        }
    }
}

async fn services(
    command: ServiceCommand,
    store: &Arc<dyn Store>,
    ctx: &RequestContext,
    config: &Config,
    out: Output,
) -> anyhow::Result<()> {
    let transition = |id, transition, reason: Option<String>| async move {
        let outcome =
            commands::transition_service(&**store, ctx, id, transition, reason.as_deref()).await?;
        if out.json {
            return out.one(&outcome);
        }
        println!(
            "service {} is {}; account {} ({}) must be {}; converge job {}{}",
            outcome.service.id,
            outcome.service.status,
            outcome.account.id,
            outcome.account.domain.to_unicode(),
            outcome.account.desired_state,
            outcome.job_id,
            if outcome.joined_waiting_job {
                " (already queued)"
            } else {
                ""
            }
        );
        Ok(())
    };
    match command {
        ServiceCommand::Create {
            customer,
            plan,
            domain,
        } => {
            let created = commands::create_service(
                &**store,
                ctx,
                customer,
                plan,
                &domain,
                config.refuse_confusable,
            )
            .await?;
            for warning in &created.warnings {
                eprintln!("warning: {}", warning.message);
            }
            out.one(&created.service)
        }
        ServiceCommand::List {
            customer,
            status,
            page,
        } => {
            let filter = ServiceFilter {
                customer_id: customer,
                status: status.as_deref().map(ServiceStatus::parse).transpose()?,
                page: page.page(),
            };
            out.list(
                &store.services(filter).await?,
                &[
                    "id",
                    "customer_id",
                    "plan_id",
                    "domain",
                    "status",
                    "account_id",
                ],
            )
        }
        ServiceCommand::Show { id } => out.one(&store.service(id).await?),
        ServiceCommand::Activate { id } => transition(id, Transition::Activate, None).await,
        ServiceCommand::Suspend { id, reason } => transition(id, Transition::Suspend, reason).await,
        ServiceCommand::Unsuspend { id } => transition(id, Transition::Unsuspend, None).await,
        ServiceCommand::Terminate { id } => transition(id, Transition::Terminate, None).await,
        ServiceCommand::Bulk {
            action,
            ids,
            status,
            customer,
            reason,
            plan,
            no_wait,
            wait_timeout,
            dry_run,
            yes,
        } => {
            let action = match (action.as_str(), plan) {
                ("suspend", _) => crate::bulk::BulkAction::Suspend {
                    reason: reason.as_deref().map(SuspendReason::parse).transpose()?,
                },
                ("unsuspend", _) => crate::bulk::BulkAction::Unsuspend,
                ("change-plan", Some(plan)) => crate::bulk::BulkAction::ChangePlan { plan },
                ("change-plan", None) => bail!("change-plan needs --plan"),
                (other, _) => {
                    bail!("'{other}' is not a bulk action; use suspend, unsuspend or change-plan")
                }
            };
            let ids = if ids.is_empty() {
                if status.is_none() && customer.is_none() {
                    bail!("select services with --ids, or with --status and/or --customer");
                }
                let mut selected = Vec::new();
                let mut after = None;
                loop {
                    let filter = ServiceFilter {
                        customer_id: customer,
                        status: status.as_deref().map(ServiceStatus::parse).transpose()?,
                        page: Page::new(after, Some(Page::MAX_LIMIT)),
                    };
                    let page = store.services(filter).await?;
                    let Some(last) = page.last() else { break };
                    after = Some(last.id.get());
                    selected.extend(page.iter().map(|s| s.id));
                }
                selected
            } else {
                ids
            };
            if dry_run {
                let previews = crate::bulk::preview(&**store, &action, &ids).await?;
                let rows: Vec<Value> = previews.iter().map(|p| json!(p)).collect();
                return out.list(&rows, &["service", "domain", "change", "refused"]);
            }
            if ids.len() > 1 && !yes {
                confirm_bulk(ids.len())?;
            }
            let interrupt = crate::bulk::Interrupt::on_signals()?;
            let queued = crate::bulk::queue(&**store, ctx, &action, &ids, &interrupt).await;
            eprintln!(
                "{} services: {} queued, {} refused",
                queued.total,
                queued.queued.len(),
                queued.refused.len()
            );
            if !queued.not_changed.is_empty() {
                out.one(&queued)?;
                let left: Vec<String> =
                    queued.not_changed.iter().map(ToString::to_string).collect();
                bail!(
                    "interrupted: {} services were queued and their jobs go on; {} were not \
                     changed (--ids {}): run the command again for them",
                    queued.queued.len(),
                    left.len(),
                    left.join(",")
                );
            }
            if no_wait {
                return out.one(&queued);
            }
            // A terminal gets a progress bar; a pipe or a file a line per change.
            let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let bar = if terminal {
                indicatif::ProgressBar::new(queued.total as u64).with_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:40} {pos}/{len} done, {elapsed} so far",
                    )?,
                )
            } else {
                indicatif::ProgressBar::hidden()
            };
            let mut shown = None;
            let limit = wait_timeout.map(std::time::Duration::from_secs);
            let summary = crate::bulk::wait(&**store, &queued, limit, &interrupt, |done, total| {
                if terminal {
                    bar.set_position(done as u64);
                } else if shown != Some(done) {
                    eprintln!("{done}/{total} done");
                }
                shown = Some(done);
            })
            .await?;
            bar.finish();
            out.one(&summary)?;
            // As for one job: waiting that stopped short is not a success.
            if !summary.unfinished.is_empty() {
                let why = if interrupt.happened() {
                    "stopped waiting (interrupted)"
                } else {
                    "stopped waiting after --wait-timeout"
                };
                bail!(
                    "{why}: {} jobs go on (drover jobs list)",
                    summary.unfinished.len()
                );
            }
            Ok(())
        }
        ServiceCommand::ChangePlan { id, plan, force } => {
            out.one(&commands::change_plan(&**store, ctx, id, plan, force).await?)
        }
        ServiceCommand::Password { id } => {
            let password = read_password()?;
            let sealer = crate::engine::seal::operator_key(&**store, &config.seal_key).await?;
            let job = commands::change_password(&**store, ctx, &sealer, id, password).await?;
            out.one(&json!({ "job_id": job }))
        }
    }
}

async fn accounts(
    command: AccountCommand,
    store: &dyn Store,
    ctx: &RequestContext,
    config: &Config,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        AccountCommand::List {
            domain,
            server,
            failed,
            page,
        } => {
            let filter = AccountFilter {
                domain: domain.as_deref().map(DomainName::parse).transpose()?,
                server_id: server,
                failed,
                page: page.page(),
            };
            out.list(
                &store.accounts(filter).await?,
                &[
                    "id",
                    "domain",
                    "unix_username",
                    "server_id",
                    "desired_state",
                    "observed_state",
                    "protected_from_deletion",
                    "failure",
                ],
            )
        }
        AccountCommand::Show { id } => out.one(&store.account(id).await?),
        AccountCommand::LoginLink { id } => {
            let request = commands::Requested::LoginLink { account: id };
            let job = commands::request(store, ctx, request).await?;
            let wait = follow::WaitFlag {
                wait: true,
                wait_timeout: None,
            };
            follow::follow(store, job, wait, out).await?;
            let sealer = crate::engine::seal::operator_key(store, &config.seal_key).await?;
            let link = commands::take_login_link(store, ctx, &sealer, id, job).await?;
            if out.json {
                out.one(&json!({ "url": link.reveal(), "expires_at": link.expires_at }))
            } else {
                println!("{}", link.reveal());
                Ok(())
            }
        }
        AccountCommand::Protect { id, confirm } => {
            out.one(&commands::set_protection(store, ctx, id, true, &confirm).await?)
        }
        AccountCommand::Unprotect { id, confirm } => {
            out.one(&commands::set_protection(store, ctx, id, false, &confirm).await?)
        }
        AccountCommand::Restore {
            id,
            from,
            confirm,
            to,
            grace,
            wait,
        } => {
            let Some(confirm) = confirm else {
                let plan = commands::plan_restore(store, id, from, to).await?;
                out.one(&plan)?;
                if !out.json {
                    eprintln!(
                        "nothing was changed: repeat the domain with --confirm {} to restore",
                        plan.domain
                    );
                }
                return Ok(());
            };
            let onto = match to {
                Some(id) => commands::RestoreOnto::Server {
                    id,
                    grace: grace
                        .map_or(config.fleet.migration_grace, std::time::Duration::from_secs),
                },
                None => commands::RestoreOnto::ItsServer,
            };
            let (plan, job) =
                commands::restore_account(store, ctx, id, from, onto, &confirm).await?;
            if !out.json {
                eprintln!("restoring: {}", plan.replaces);
            }
            if let Some(output) = follow::follow(store, job, wait, out).await? {
                out.one(&output)?;
            }
            Ok(())
        }
        AccountCommand::Migrate {
            id,
            to,
            grace,
            without_content,
        } => {
            let grace = grace.map_or(config.fleet.migration_grace, std::time::Duration::from_secs);
            let without = commands::WithoutContent::allowed(without_content);
            let (migration, job) =
                commands::start_migration(store, ctx, id, to, grace, without).await?;
            out.one(&json!({ "migration": migration, "job_id": job }))
        }
        AccountCommand::Migration { id } => match store.migration(id).await? {
            Some(migration) => out.one(&migration),
            None => bail!("account {id} has never been moved"),
        },
        AccountCommand::ConfirmMigration { id, confirm } => {
            let job = commands::confirm_migration(store, ctx, id, &confirm).await?;
            out.one(&json!({ "job_id": job }))
        }
    }
}

async fn jobs(
    command: JobCommand,
    store: &dyn Store,
    ctx: &RequestContext,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        JobCommand::List {
            status,
            account,
            limit,
        } => {
            let states = match status {
                Some(list) => {
                    crate::api::parse_job_states(&list).map_err(|e| anyhow::anyhow!(e.message))?
                }
                None => Vec::new(),
            };
            let filter = JobFilter {
                states,
                account_id: account,
                limit: Some(limit),
            };
            out.list(
                &store.jobs(filter).await?,
                &[
                    "id",
                    "kind",
                    "state",
                    "attempt",
                    "account_id",
                    "correlation_id",
                    "created_at",
                ],
            )
        }
        JobCommand::Show { id } => {
            let job = store.job(id).await?;
            let attempts = store.job_attempts(id).await?;
            let calls = store.job_calls(id).await?;
            out.one(&json!({ "job": job, "attempts": attempts, "calls": calls }))
        }
        JobCommand::Retry { id } => out.one(&commands::retry_job(store, ctx, id).await?),
        JobCommand::Cancel { id } => out.one(&commands::cancel_job(store, ctx, id).await?),
    }
}

async fn audit(command: AuditCommand, store: &dyn Store, out: Output) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify => {
            let report = store.verify_audit().await?;
            if out.json {
                out.one(&report)?;
            } else if report.intact {
                println!(
                    "audit chain intact: {} events verified",
                    report.events_checked
                );
            }
            match report.problem {
                Some(problem) => bail!("audit chain broken: {problem}"),
                None => Ok(()),
            }
        }
        AuditCommand::List { subject, page } => {
            let filter = AuditFilter {
                subject,
                page: page.page(),
            };
            out.list(
                &store.audit_events(filter).await?,
                &["id", "at", "actor", "action", "subject", "correlation_id"],
            )
        }
    }
    .context("audit")
}

/// Says which servers of a scan job's output could not be listed; returns how many.
fn say_unlisted(output: &Value) -> usize {
    let unlisted: Vec<&Value> = output["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s.get("error").is_some())
        .collect();
    for server in &unlisted {
        eprintln!("{}: {}", cell(&server["server"]), cell(&server["error"]));
    }
    unlisted.len()
}

/// One server's repair pass, from the scan job's output.
fn print_repair(outcome: &Value) {
    let dry_run = outcome["dry_run"].as_bool().unwrap_or(false);
    let plan = &outcome["plan"];
    let count = |value: &Value| value.as_array().map_or(0, Vec::len);
    let verb = if dry_run { "would touch" } else { "touches" };
    println!(
        "{}: {} findings; the pass {verb} {} of at most {} domains",
        cell(&outcome["server"]),
        count(&outcome["findings"]),
        cell(&plan["touches"]),
        cell(&plan["limit"])
    );
    for step in plan["steps"].as_array().into_iter().flatten() {
        println!(
            "  {:<9} {:<14} {}",
            cell(&step[1]),
            cell(&step[0]["kind"]),
            cell(&step[0]["domain"])
        );
    }
    let held = plan["held"].as_str();
    if let Some(held) = held {
        println!("  held: {held}");
    }
    if !dry_run && held.is_none() {
        println!(
            "  {} converge jobs enqueued, {} orphans quarantined",
            count(&outcome["jobs"]),
            count(&outcome["quarantined"])
        );
    }
    for failure in outcome["failures"].as_array().into_iter().flatten() {
        println!("  failed: {}", cell(failure));
    }
}

fn finding_rows(records: &[drover_store::DriftRecord]) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            json!({
                "server": r.server_id, "kind": r.finding.kind.as_str(), "domain": r.finding.domain,
                "account": r.finding.account_id, "expected": r.finding.expected,
                "found": r.finding.found, "action": r.action,
            })
        })
        .collect()
}

const FINDING_COLUMNS: &[&str] = &[
    "server", "kind", "domain", "account", "expected", "found", "action",
];

async fn drift(
    command: DriftCommand,
    store: &Arc<dyn Store>,
    ctx: &RequestContext,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        DriftCommand::Scan { server, wait, exit } => {
            let repair = DriftRepair::ScanOnly;
            let Some(output) = ask(
                &**store,
                ctx,
                Requested::DriftScan { server, repair },
                wait,
                out,
            )
            .await?
            else {
                return Ok(());
            };
            let unlisted = say_unlisted(&output);
            // The findings of the servers this scan listed; the others keep their last ones.
            let scanned: Vec<i64> = output["servers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["server_id"].as_i64())
                .collect();
            let mut findings = store.drift_findings(server).await?;
            findings.retain(|r| scanned.contains(&r.server_id.get()));
            out.list(&finding_rows(&findings), FINDING_COLUMNS)?;
            if unlisted > 0 {
                bail!("{unlisted} servers could not be listed; their findings are unchanged");
            }
            exit.report(!findings.is_empty())
        }
        DriftCommand::Repair {
            server,
            dry_run,
            force,
            wait,
        } => {
            let repair = match (dry_run, force) {
                (true, _) => DriftRepair::DryRun,
                (false, true) => DriftRepair::Forced,
                (false, false) => DriftRepair::ByPolicy,
            };
            let Some(output) = ask(
                &**store,
                ctx,
                Requested::DriftScan { server, repair },
                wait,
                out,
            )
            .await?
            else {
                return Ok(());
            };
            let unlisted = say_unlisted(&output);
            let outcomes: Vec<&Value> = output["servers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|o| o.get("error").is_none())
                .collect();
            if out.json {
                out.one(&outcomes)?;
            } else {
                for o in outcomes {
                    print_repair(o);
                }
            }
            if unlisted > 0 {
                bail!("{unlisted} servers could not be listed and were not repaired");
            }
            Ok(())
        }
        DriftCommand::List { server } => out.list(
            &finding_rows(&store.drift_findings(server).await?),
            FINDING_COLUMNS,
        ),
        DriftCommand::DeleteOrphan {
            server,
            domain,
            confirm,
            wait,
        } => {
            let domain = DomainName::parse(&domain)?;
            if DomainName::parse(&confirm).ok().as_ref() != Some(&domain) {
                bail!("--confirm must repeat the orphan's domain ({domain}) to delete it");
            }
            match ask(
                &**store,
                ctx,
                Requested::OrphanDeletion { server, domain },
                wait,
                out,
            )
            .await?
            {
                Some(output) => out.one(&output),
                None => Ok(()),
            }
        }
    }
}

/// A password: one line of standard input, without its line ending (never an argument, which
/// other users of the machine could read).
fn read_password() -> anyhow::Result<secrecy::SecretString> {
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    Ok(secrecy::SecretString::from(
        password.trim_end_matches(['\n', '\r']).to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command and option says what it is for, in `--help` and in the manual.
    #[test]
    fn every_command_and_option_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if !arg.is_hide_set() && id != "help" && id != "version" && arg.get_help().is_none()
                {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(name.clone());
                }
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Args::command(), "drover", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:#?}");
    }
}
