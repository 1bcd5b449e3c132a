//! `drover aliases …` and `drover subservers …`: an account's alias domains and sub-servers,
//! recorded and queued for its server.

use clap::Subcommand;
use drover_core::AccountId;
use drover_store::{OtherDomainKind, RequestContext, Store};

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

#[derive(Debug, Subcommand)]
pub enum SubserverCommand {
    /// The account's sub-servers.
    List {
        /// The account's id.
        account: AccountId,
    },
    /// Add a sub-server, a name under the account's domain with a web root of its own, within
    /// the plan's limit; its addresses go into the account's zone.
    Create {
        /// The account's id.
        account: AccountId,
        /// `shop` or `shop.example.ro`.
        name: String,
    },
    /// Delete a sub-server and its website; --confirm repeats its full name.
    Delete {
        /// The account's id.
        account: AccountId,
        /// The sub-server.
        name: String,
        /// Its full name, repeated.
        #[arg(long)]
        confirm: String,
    },
}

pub async fn run_aliases(
    command: AliasCommand,
    store: &dyn Store,
    ctx: &RequestContext,
    out: Output,
) -> anyhow::Result<()> {
    let kind = OtherDomainKind::Alias;
    match command {
        AliasCommand::List { account } => list(store, account, kind, out).await,
        AliasCommand::Create { account, domain } => {
            out.one(&commands::create_alias(store, ctx, account, &domain).await?)
        }
        AliasCommand::Delete {
            account,
            domain,
            confirm,
        } => {
            let deleted = commands::delete_other_domain(
                store,
                ctx,
                account,
                kind,
                &domain,
                &drover_core::Confirmation::Typed(confirm),
            )
            .await?;
            out.one(&deleted)
        }
    }
}

pub async fn run_subservers(
    command: SubserverCommand,
    store: &dyn Store,
    ctx: &RequestContext,
    out: Output,
) -> anyhow::Result<()> {
    let kind = OtherDomainKind::Subserver;
    match command {
        SubserverCommand::List { account } => list(store, account, kind, out).await,
        SubserverCommand::Create { account, name } => {
            out.one(&commands::create_subserver(store, ctx, account, &name).await?)
        }
        SubserverCommand::Delete {
            account,
            name,
            confirm,
        } => {
            let deleted = commands::delete_other_domain(
                store,
                ctx,
                account,
                kind,
                &name,
                &drover_core::Confirmation::Typed(confirm),
            )
            .await?;
            out.one(&deleted)
        }
    }
}

async fn list(
    store: &dyn Store,
    account: AccountId,
    kind: OtherDomainKind,
    out: Output,
) -> anyhow::Result<()> {
    store.account(account).await?;
    out.list(
        &store.other_domains(account, kind).await?,
        &["domain", "deleting"],
    )
}
