//! `drover backups …`: where backups go, a backup of an account now, and the accounts'
//! backups with their outcomes.

use anyhow::bail;
use clap::Subcommand;
use drover_core::{
    AccountId, BackupDestinationId, BackupDestinationPatch, BackupDestinationSpec, BackupLocation,
    BackupState, CredentialRef, SecretSources, ServerName, SshHostKey, SshKeyFile,
};
use drover_store::{BackupFilter, Page, RequestContext, Store};
use serde_json::json;

use super::follow::{self, WaitFlag};
use super::{Output, PageArgs};
use crate::commands;

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Where backups go.
    #[command(subcommand)]
    Destinations(DestinationCommand),
    /// Back an account up now (to the default destination unless one is named).
    Run {
        /// The account's id.
        account: AccountId,
        /// The destination's id [default: the default destination].
        #[arg(long)]
        destination: Option<BackupDestinationId>,
        #[command(flatten)]
        wait: WaitFlag,
    },
    /// Backups, newest first: each with its archive, size, or the server's message.
    List {
        /// One account's.
        #[arg(long)]
        account: Option<AccountId>,
        /// Those in one destination.
        #[arg(long)]
        destination: Option<BackupDestinationId>,
        /// running, succeeded, failed or pruned.
        #[arg(long, value_parser = parse_state)]
        state: Option<BackupState>,
        /// Backups older than this id.
        #[arg(long)]
        after: Option<i64>,
        /// At most this many rows.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// An account's last good backup and its age.
    Last {
        /// The account's id.
        account: AccountId,
    },
}

#[derive(Debug, Subcommand)]
pub enum DestinationCommand {
    /// Add a destination: a directory on each account's own server.
    Add {
        /// Its name (lower-case letters, digits and hyphens).
        name: String,
        /// An absolute directory on the server, like /var/backups/drover, or on an SSH host
        /// every server reaches, like ssh://backup@vault.example.net:/srv/backups.
        #[arg(long)]
        location: String,
        #[command(flatten)]
        ssh: SshArgs,
        /// The newest backup of each of the last N days is kept.
        #[arg(long, default_value_t = 7)]
        keep_daily: u32,
        /// The newest backup of each of the last M weeks is kept too.
        #[arg(long, default_value_t = 4)]
        keep_weekly: u32,
        /// Scheduled backups go here (replacing the old default).
        #[arg(long)]
        default: bool,
    },
    /// Change a destination; only the flags given change (its name stays).
    Update {
        /// The destination's id.
        id: BackupDestinationId,
        /// A new directory for later backups (earlier archives stay where they are).
        #[arg(long)]
        location: Option<String>,
        #[command(flatten)]
        ssh: SshArgs,
        /// The newest backup of each of the last N days is kept.
        #[arg(long)]
        keep_daily: Option<u32>,
        /// The newest backup of each of the last M weeks is kept too.
        #[arg(long)]
        keep_weekly: Option<u32>,
        /// Make it the default (true) or not (false).
        #[arg(long)]
        default: Option<bool>,
    },
    /// Destinations, by id.
    List(PageArgs),
    /// Forget a destination no backup was written to.
    Delete {
        /// The destination's id.
        id: BackupDestinationId,
    },
}

/// How drover and the servers reach an SSH destination.
#[derive(Debug, clap::Args)]
pub struct SshArgs {
    /// Where the SSH user's password is found: env:NAME or file:/path.
    #[arg(long, conflicts_with = "key_file")]
    credentials: Option<String>,
    /// Instead of a password: a private key file on every server (its absolute path there),
    /// whose public half is in the SSH user's authorized_keys.
    #[arg(long)]
    key_file: Option<String>,
    /// The SSH host's key, pinned: SHA256:… as `ssh-keyscan -p PORT HOST | ssh-keygen -lf -`
    /// prints it (check it against the host itself).
    #[arg(long)]
    host_key: Option<String>,
}

impl SshArgs {
    fn credentials(&self) -> anyhow::Result<Option<CredentialRef>> {
        Ok(self
            .credentials
            .as_deref()
            .map(CredentialRef::parse)
            .transpose()?)
    }

    fn key_file(&self) -> anyhow::Result<Option<SshKeyFile>> {
        Ok(self
            .key_file
            .as_deref()
            .map(SshKeyFile::parse)
            .transpose()?)
    }

    fn host_key(&self) -> anyhow::Result<Option<SshHostKey>> {
        Ok(self
            .host_key
            .as_deref()
            .map(SshHostKey::parse)
            .transpose()?)
    }
}

fn parse_state(input: &str) -> Result<BackupState, String> {
    BackupState::parse(input).map_err(|e| e.to_string())
}

const COLUMNS: &[&str] = &[
    "id",
    "account_id",
    "domain",
    "state",
    "size_bytes",
    "started_at",
    "finished_at",
    "archive",
    "error",
];

pub async fn run(
    command: BackupCommand,
    store: &dyn Store,
    ctx: &RequestContext,
    config: &crate::config::Config,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        BackupCommand::Destinations(command) => {
            destinations(command, store, ctx, &config.secret_sources, out).await
        }
        BackupCommand::Run {
            account,
            destination,
            wait,
        } => {
            let job = commands::backup_account(store, ctx, account, destination).await?;
            let Some(output) = follow::follow(store, job, wait, out).await? else {
                return Ok(());
            };
            // The job completes with a failed backup recorded: the command says it failed.
            if let Some(error) = output.get("error").and_then(|e| e.as_str()) {
                bail!("the backup failed: {error}");
            }
            if let Some(refused) = output.get("refused").and_then(|e| e.as_str()) {
                bail!("{refused}");
            }
            out.one(&output)
        }
        BackupCommand::List {
            account,
            destination,
            state,
            after,
            limit,
        } => {
            let filter = BackupFilter {
                account,
                destination,
                state,
                page: Page::new(after, Some(limit)),
            };
            out.list(&store.backups(filter).await?, COLUMNS)
        }
        BackupCommand::Last { account } => {
            store.account(account).await?;
            let last = store.last_good_backup(account).await?;
            let age = last
                .as_ref()
                .and_then(|b| b.finished_at)
                .map(|t| jiff::Timestamp::now().duration_since(t).as_secs());
            out.one(&json!({
                "account_id": account,
                "last_good": last,
                "last_good_age_seconds": age,
            }))
        }
    }
}

async fn destinations(
    command: DestinationCommand,
    store: &dyn Store,
    ctx: &RequestContext,
    sources: &SecretSources,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        DestinationCommand::Add {
            name,
            location,
            ssh,
            keep_daily,
            keep_weekly,
            default,
        } => {
            let spec = BackupDestinationSpec {
                name: ServerName::parse(&name)?,
                location: BackupLocation::parse(&location)?,
                credentials: ssh.credentials()?,
                key_file: ssh.key_file()?,
                host_key: ssh.host_key()?,
                keep_daily,
                keep_weekly,
                default,
            };
            out.one(&commands::create_backup_destination(store, ctx, sources, spec).await?)
        }
        DestinationCommand::List(page) => {
            let all = store.backup_destinations().await?;
            let page = page.page();
            let shown: Vec<_> = all
                .into_iter()
                .filter(|d| page.after.is_none_or(|after| d.id.get() > after))
                .take(page.limit as usize)
                .collect();
            out.list(
                &shown,
                &[
                    "id",
                    "name",
                    "location",
                    "keep_daily",
                    "keep_weekly",
                    "default",
                ],
            )
        }
        DestinationCommand::Update {
            id,
            location,
            ssh,
            keep_daily,
            keep_weekly,
            default,
        } => {
            let patch = BackupDestinationPatch {
                location: location.as_deref().map(BackupLocation::parse).transpose()?,
                credentials: ssh.credentials()?,
                key_file: ssh.key_file()?,
                host_key: ssh.host_key()?,
                keep_daily,
                keep_weekly,
                default,
            };
            out.one(&commands::update_backup_destination(store, ctx, sources, id, patch).await?)
        }
        DestinationCommand::Delete { id } => {
            commands::delete_backup_destination(store, ctx, id).await?;
            out.one(&json!({ "id": id, "deleted": true }))
        }
    }
}
