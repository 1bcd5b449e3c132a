//! `drover usage …`: each account's last figures as billing reads them, and a sync now.

use std::sync::Arc;

use clap::Subcommand;
use drover_core::{ServerId, ServiceId};
use drover_store::{Store, UsageFilter};

use super::{Output, PageArgs};
use crate::config::Config;
use crate::engine::{Engine, observable_servers, usage};

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Each account's last figures, by account id (`-` where its server does not measure one).
    List {
        /// Figures that came from this server.
        #[arg(long)]
        server: Option<ServerId>,
        #[arg(long)]
        service: Option<ServiceId>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Pull figures from the servers now, as the scheduler does: two listings per server.
    Sync {
        /// Only this server [default: every healthy or degraded one].
        #[arg(long)]
        server: Option<ServerId>,
    },
}

pub async fn run(
    command: UsageCommand,
    store: &Arc<dyn Store>,
    config: &Config,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        UsageCommand::List {
            server,
            service,
            page,
        } => {
            let filter = UsageFilter {
                server_id: server,
                service_id: service,
                page: page.page(),
            };
            out.list(
                &store.usage(filter).await?,
                &[
                    "account_id",
                    "service_id",
                    "domain",
                    "server_id",
                    "disk_bytes",
                    "bandwidth_bytes",
                    "mailboxes",
                    "databases",
                    "database_bytes",
                    "measured_at",
                ],
            )
        }
        UsageCommand::Sync { server } => {
            let engine = Engine::from_config(Arc::clone(store), config)?;
            let servers = observable_servers(&**store, server).await?;
            if servers.is_empty() && !out.json {
                println!("no healthy or degraded server to sync");
            }
            let mut reports = Vec::new();
            let mut failed = 0;
            for server in servers {
                match usage::sync_server(&engine, &server).await {
                    Ok(report) => reports.push(report),
                    Err(e) => {
                        eprintln!("{}: {e}", server.spec.name);
                        failed += 1;
                    }
                }
            }
            if out.json {
                out.one(&reports)?;
            } else {
                for r in &reports {
                    println!("{}: figures of {} accounts recorded", r.server, r.accounts);
                    if !r.not_listed.is_empty() {
                        println!(
                            "  not on the server (see drover drift scan): {}",
                            r.not_listed.join(", ")
                        );
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} servers could not be synced; their figures are unchanged");
            }
            Ok(())
        }
    }
}
