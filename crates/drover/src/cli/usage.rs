//! `drover usage …`: each account's last figures as billing reads them, and a sync now.

use std::sync::Arc;

use crate::commands::Requested;
use clap::Subcommand;
use drover_core::{ServerId, ServiceId};
use drover_store::{RequestContext, Store, UsageFilter};

use super::follow::{WaitFlag, ask};
use super::{Output, PageArgs, cell};

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Each account's last figures, by account id (`-` where its server does not measure one).
    List {
        /// Figures that came from this server.
        #[arg(long)]
        server: Option<ServerId>,
        /// Only this service's account.
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
        #[command(flatten)]
        wait: WaitFlag,
    },
}

pub async fn run(
    command: UsageCommand,
    store: &Arc<dyn Store>,
    ctx: &RequestContext,
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
        UsageCommand::Sync { server, wait } => {
            let Some(output) =
                ask(&**store, ctx, Requested::UsageSync { server }, wait, out).await?
            else {
                return Ok(());
            };
            let servers = output["servers"].as_object().cloned().unwrap_or_default();
            if servers.is_empty() && !out.json {
                println!("no healthy or degraded server to sync");
            }
            let (failed, synced): (Vec<_>, Vec<_>) =
                servers.iter().partition(|(_, r)| r.get("error").is_some());
            for (name, report) in &failed {
                eprintln!("{name}: {}", cell(&report["error"]));
            }
            if out.json {
                out.one(&synced.iter().map(|(name, r)| serde_json::json!({
                    "server": name, "accounts": r["accounts"], "not_listed": r["not_listed"],
                })).collect::<Vec<_>>())?;
            } else {
                for (name, report) in &synced {
                    println!(
                        "{name}: figures of {} accounts recorded",
                        cell(&report["accounts"])
                    );
                    let not_listed: Vec<String> = report["not_listed"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(cell)
                        .collect();
                    if !not_listed.is_empty() {
                        let not_listed = not_listed.join(", ");
                        println!("  not on the server (see drover drift scan): {not_listed}");
                    }
                }
            }
            if !failed.is_empty() {
                anyhow::bail!(
                    "{} servers could not be synced; their figures are unchanged",
                    failed.len()
                );
            }
            Ok(())
        }
    }
}
