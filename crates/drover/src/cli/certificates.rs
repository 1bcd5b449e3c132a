//! `drover certificates …`: accounts' Let's Encrypt certificates, asked for, watched and
//! forgotten.

use clap::Subcommand;
use drover_core::{AccountId, CertificateState, ServerId};
use drover_store::{CertificateFilter, RequestContext, Store};

use super::{Output, PageArgs};
use crate::commands;

#[derive(Debug, Subcommand)]
pub enum CertificateCommand {
    /// Certificates by account id: how each stands, its expiry and the server's last message.
    List {
        /// requested, issued or failed.
        #[arg(long, value_parser = parse_state)]
        state: Option<CertificateState>,
        /// Accounts on this server.
        #[arg(long)]
        server: Option<ServerId>,
        /// Only issued certificates that expire within this many days (the server renews
        /// them 21 days before: these missed their renewal).
        #[arg(long)]
        expiring_within_days: Option<u32>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One account's certificate.
    Show {
        /// The account's id.
        account: AccountId,
    },
    /// Ask for a certificate for the account's names: a job requests it once the account's
    /// DNS points at its server, and tries again after a failure within Let's Encrypt's
    /// limits. Asked again, a request waiting after a failure goes now.
    Request {
        /// The account's id.
        account: AccountId,
    },
    /// Stop asking for the account's certificate (one the server installed stays there).
    Forget {
        /// The account's id.
        account: AccountId,
    },
}

fn parse_state(input: &str) -> Result<CertificateState, String> {
    CertificateState::parse(input).map_err(|e| e.to_string())
}

const COLUMNS: &[&str] = &[
    "account_id",
    "domain",
    "state",
    "expires_at",
    "failures",
    "next_attempt_at",
    "waiting_for",
    "last_error",
];

pub async fn run(
    command: CertificateCommand,
    store: &dyn Store,
    ctx: &RequestContext,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        CertificateCommand::List {
            state,
            server,
            expiring_within_days,
            page,
        } => {
            let filter = CertificateFilter {
                state,
                server,
                expiring_before: expiring_within_days
                    .map(|days| drover_core::expiring_within(jiff::Timestamp::now(), days))
                    .transpose()?,
                page: page.page(),
            };
            out.list(&store.certificates(filter).await?, COLUMNS)
        }
        CertificateCommand::Show { account } => {
            out.one(&commands::certificate(store, account).await?)
        }
        CertificateCommand::Request { account } => {
            let (certificate, job) = commands::request_certificate(store, ctx, account).await?;
            if !out.json {
                eprintln!("job {job} requests it once the account's DNS points at its server");
            }
            out.one(&certificate)
        }
        CertificateCommand::Forget { account } => {
            commands::forget_certificate(store, ctx, account).await?;
            out.one(&serde_json::json!({ "account_id": account, "forgotten": true }))
        }
    }
}
