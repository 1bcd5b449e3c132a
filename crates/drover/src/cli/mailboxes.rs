//! `drover mailboxes …`: an account's mailboxes, recorded and queued for its server. A
//! password is read from standard input, never from the command line.

use clap::Subcommand;
use drover_core::AccountId;
use drover_store::{RequestContext, Store};

use super::{Output, read_password};
use crate::commands;
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum MailboxCommand {
    /// The account's mailboxes, by name.
    List {
        /// The account's id.
        account: AccountId,
    },
    /// Add a mailbox (its password on standard input), within the plan's limit.
    Create {
        /// The account's id.
        account: AccountId,
        /// The local part of its address (`ana` for ana@example.ro).
        name: String,
        /// Its owner's name.
        #[arg(long, default_value = "")]
        real_name: String,
        /// Its disk quota in MB, at most the plan's mailbox quota [default: the plan's].
        #[arg(long)]
        quota_mb: Option<u64>,
    },
    /// Change a mailbox's real name, its quota, or its password (read from standard input).
    Update {
        /// The account's id.
        account: AccountId,
        /// The mailbox's name.
        name: String,
        /// Its owner's new name.
        #[arg(long)]
        real_name: Option<String>,
        /// Read a new password from standard input.
        #[arg(long)]
        password: bool,
        /// Its disk quota in MB, at most the plan's mailbox quota, or `plan` for the plan's.
        #[arg(long, value_parser = parse_quota)]
        quota_mb: Option<OwnQuota>,
    },
    /// Delete a mailbox and its mail; --confirm repeats its name.
    Delete {
        /// The account's id.
        account: AccountId,
        /// The mailbox's name.
        name: String,
        /// The mailbox's name, repeated.
        #[arg(long)]
        confirm: String,
    },
}

/// A mailbox's own quota, or its plan's.
#[derive(Debug, Clone, Copy)]
pub struct OwnQuota(Option<u64>);

fn parse_quota(input: &str) -> Result<OwnQuota, String> {
    match input {
        "plan" => Ok(OwnQuota(None)),
        mb => mb
            .parse()
            .map(|mb| OwnQuota(Some(mb)))
            .map_err(|_| format!("'{mb}' is not a number of MB, nor `plan`")),
    }
}

pub async fn run(
    command: MailboxCommand,
    store: &dyn Store,
    ctx: &RequestContext,
    config: &Config,
    out: Output,
) -> anyhow::Result<()> {
    let columns = [
        "name",
        "real_name",
        "quota_mb",
        "password_pending",
        "deleting",
    ];
    match command {
        MailboxCommand::List { account } => {
            store.account(account).await?;
            out.list(&store.mailboxes(account).await?, &columns)
        }
        MailboxCommand::Create {
            account,
            name,
            real_name,
            quota_mb,
        } => {
            let password = read_password()?;
            let sealer = crate::engine::seal::operator_key(store, &config.seal_key).await?;
            let mailbox = commands::create_mailbox(
                store, ctx, &sealer, account, &name, &real_name, password, quota_mb,
            )
            .await?;
            out.one(&mailbox)
        }
        MailboxCommand::Update {
            account,
            name,
            real_name,
            password,
            quota_mb,
        } => {
            let password = password.then(read_password).transpose()?;
            let sealer = crate::engine::seal::operator_key(store, &config.seal_key).await?;
            let mailbox = commands::update_mailbox(
                store,
                ctx,
                &sealer,
                account,
                &name,
                real_name.as_deref(),
                password,
                quota_mb.map(|q| q.0),
            )
            .await?;
            out.one(&mailbox)
        }
        MailboxCommand::Delete {
            account,
            name,
            confirm,
        } => out.one(
            &commands::delete_mailbox(
                store,
                ctx,
                account,
                &name,
                &drover_core::Confirmation::Typed(confirm),
            )
            .await?,
        ),
    }
}
