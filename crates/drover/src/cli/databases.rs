//! `drover databases …`: an account's databases, recorded and queued for its server.

use clap::Subcommand;
use drover_core::AccountId;
use drover_store::{RequestContext, Store};

use super::Output;
use crate::commands;

#[derive(Debug, Subcommand)]
pub enum DatabaseCommand {
    /// The account's databases, by name.
    List {
        /// The account's id.
        account: AccountId,
    },
    /// Add a database, within the plan's limit; its name gets the account's prefix when it
    /// lacks it (`shop` becomes `ana_shop` for the account ana).
    Create {
        /// The account's id.
        account: AccountId,
        /// Its name.
        name: String,
        /// mysql, or postgres when the plan gives the feature postgres.
        #[arg(long = "type", default_value = "mysql")]
        kind: String,
    },
    /// Delete a database and its tables; --confirm repeats its full name.
    Delete {
        /// The account's id.
        account: AccountId,
        /// The database's name.
        name: String,
        /// The database's full name (with the account's prefix), repeated.
        #[arg(long)]
        confirm: String,
    },
}

pub async fn run(
    command: DatabaseCommand,
    store: &dyn Store,
    ctx: &RequestContext,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        DatabaseCommand::List { account } => {
            store.account(account).await?;
            out.list(
                &store.databases(account).await?,
                &["name", "type", "deleting"],
            )
        }
        DatabaseCommand::Create {
            account,
            name,
            kind,
        } => out.one(&commands::create_database(store, ctx, account, &name, &kind).await?),
        DatabaseCommand::Delete {
            account,
            name,
            confirm,
        } => out.one(
            &commands::delete_database(
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
