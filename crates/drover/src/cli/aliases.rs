//! `drover aliases …`: an account's alias domains, recorded and queued for its server.

use clap::Subcommand;
use drover_core::AccountId;
use drover_store::{RequestContext, Store};

use super::Output;
use crate::commands;

#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// The account's alias domains.
    List {
        /// The account's id.
        account: AccountId,
    },
    /// Add an alias domain serving the account's site and mail, within the plan's limit; it
    /// gets a DNS zone of its own that follows the account.
    Create {
        /// The account's id.
        account: AccountId,
        /// The alias domain (Unicode or punycode).
        domain: String,
    },
    /// Delete an alias domain and its zone; --confirm repeats it.
    Delete {
        /// The account's id.
        account: AccountId,
        /// The alias domain.
        domain: String,
        /// The alias domain, repeated.
        #[arg(long)]
        confirm: String,
    },
}

pub async fn run(
    command: AliasCommand,
    store: &dyn Store,
    ctx: &RequestContext,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        AliasCommand::List { account } => {
            store.account(account).await?;
            out.list(&store.aliases(account).await?, &["domain", "deleting"])
        }
        AliasCommand::Create { account, domain } => {
            out.one(&commands::create_alias(store, ctx, account, &domain).await?)
        }
        AliasCommand::Delete {
            account,
            domain,
            confirm,
        } => out.one(&commands::delete_alias(store, ctx, account, &domain, &confirm).await?),
    }
}
