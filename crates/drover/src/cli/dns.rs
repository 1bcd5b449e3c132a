//! `drover dns …`: providers, zones and records, plan/apply, the consistency check and the
//! failover address rewrite. Plan, apply, check and rewrite are jobs (`--wait` follows them);
//! the rest changes the database and leaves the providers to the sync jobs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::commands::{self, Requested};
use anyhow::bail;
use clap::Subcommand;
use drover_core::{AddressMove, ApplyResult, DomainName, OwnerName, RecordType, RrSet};
use drover_store::{DnsProviderSpec, RequestContext, Store, ZoneFilter};
use serde_json::{Value, json};

use super::DetailedExitcode;
use super::follow::{WaitFlag, ask, follow};
use super::{Output, cell};

#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// The PowerDNS servers and Cloudflare accounts that serve zones.
    #[command(subcommand)]
    Providers(ProviderCommand),
    /// Zones drover holds.
    #[command(subcommand)]
    Zones(ZoneCommand),
    /// Records of a zone (providers follow through a sync job).
    #[command(subcommand)]
    Records(RecordCommand),
    /// Show what applying a zone would change on each of its providers.
    Plan {
        /// The zone, Unicode or punycode.
        zone: String,
        #[command(flatten)]
        wait: WaitFlag,
        #[command(flatten)]
        exit: DetailedExitcode,
    },
    /// Apply a zone to its providers. Plans over the safety limits need --force.
    Apply {
        /// The zone, Unicode or punycode.
        zone: String,
        /// Apply even a plan over the safety limits.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitFlag,
    },
    /// Compare providers with drover's data (zones missing, extra, different), and ask each
    /// PowerDNS server what it serves.
    Check {
        /// Only this provider.
        #[arg(long)]
        provider: Option<String>,
        #[command(flatten)]
        wait: WaitFlag,
    },
    /// Move every record pointing at the old addresses to the new ones, on every provider.
    Rewrite {
        /// Old addresses, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        from: Vec<IpAddr>,
        /// New addresses (one per family), comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        to: Vec<IpAddr>,
        #[command(flatten)]
        wait: WaitFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Add a provider.
    Add {
        /// drover's name for it, unique.
        #[arg(long)]
        name: String,
        /// powerdns or cloudflare.
        #[arg(long)]
        kind: String,
        /// PowerDNS: http://host:8081; Cloudflare: https://api.cloudflare.com/client/v4
        #[arg(long)]
        api_url: String,
        /// Where the API key or token is: env:NAME or file:/path.
        #[arg(long)]
        credentials: String,
        /// PowerDNS server id [default: localhost].
        #[arg(long)]
        server_id: Option<String>,
        /// Cloudflare account new zones are created in.
        #[arg(long)]
        account_id: Option<String>,
        /// PowerDNS: where it answers DNS (host:port), for checks.
        #[arg(long)]
        dns_address: Option<SocketAddr>,
        /// Cloudflare records per batch (200 free, 3500 paid).
        #[arg(long)]
        batch_size: Option<u32>,
        /// Put new account zones on this provider.
        #[arg(long)]
        serves_new_zones: bool,
    },
    /// List providers (never their credentials).
    List,
}

#[derive(Debug, Subcommand)]
pub enum ZoneCommand {
    /// Hold a new, empty zone served by the named providers.
    Create {
        /// The zone, Unicode or punycode.
        zone: String,
        /// A provider's name; repeat for more.
        #[arg(long = "provider")]
        providers: Vec<String>,
    },
    /// List zones.
    List {
        /// Only those this provider serves.
        #[arg(long)]
        provider: Option<String>,
    },
    /// A zone with its records and providers.
    Show {
        /// The zone, Unicode or punycode.
        zone: String,
    },
    /// The share of a zone's records one apply may change without --force.
    Safety {
        /// The zone, Unicode or punycode.
        zone: String,
        /// Percent, or `default` for the configured limit.
        #[arg(long)]
        max_change_percent: String,
    },
    /// Remove a zone from its providers and from drover; --confirm repeats its name.
    Delete {
        /// The zone, Unicode or punycode.
        zone: String,
        /// The zone's name, repeated.
        #[arg(long)]
        confirm: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecordCommand {
    /// Set an rrset: `drover dns records set example.ro www A 192.0.2.10 --ttl 300`.
    Set {
        /// The zone, Unicode or punycode.
        zone: String,
        /// `@` for the apex, a relative or an absolute name.
        name: String,
        /// A, AAAA, CNAME, MX, TXT, NS, SRV or CAA.
        #[arg(value_name = "TYPE")]
        rtype: String,
        /// Each record's content, as in a zone file (MX: `10 mail.example.ro.`).
        #[arg(required = true)]
        contents: Vec<String>,
        /// Seconds resolvers may keep it.
        #[arg(long, default_value_t = 3600)]
        ttl: u32,
    },
    /// Delete an rrset.
    Delete {
        /// The zone, Unicode or punycode.
        zone: String,
        /// `@` for the apex, a relative or an absolute name.
        name: String,
        /// Its type.
        #[arg(value_name = "TYPE")]
        rtype: String,
    },
}

fn zone_name(input: &str) -> anyhow::Result<DomainName> {
    Ok(DomainName::parse(input)?)
}

pub async fn run(
    command: DnsCommand,
    store: &Arc<dyn Store>,
    ctx: &RequestContext,
    config: &crate::config::Config,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        DnsCommand::Providers(ProviderCommand::Add {
            name,
            kind,
            api_url,
            credentials,
            server_id,
            account_id,
            dns_address,
            batch_size,
            serves_new_zones,
        }) => {
            // The flags become the JSON the API takes, read as the API reads it: a setting the
            // kind does not take gets the API's answer.
            let mut settings =
                json!({"kind": kind.trim().to_ascii_lowercase(), "api_url": api_url});
            let optional = [
                ("server_id", server_id.map(Value::from)),
                ("account_id", account_id.map(Value::from)),
                (
                    "dns_address",
                    dns_address.map(|a| Value::from(a.to_string())),
                ),
                ("batch_size", batch_size.map(Value::from)),
            ];
            for (key, value) in optional {
                if let Some(value) = value {
                    settings[key] = value;
                }
            }
            let body = json!({
                "name": name, "credentials": credentials, "serves_new_zones": serves_new_zones,
                "settings": settings,
            });
            let spec: DnsProviderSpec = super::from_flags(body)?;
            config.secret_sources.check(&spec.credentials)?;
            out.one(&commands::create_dns_provider(&**store, ctx, spec).await?)
        }
        DnsCommand::Providers(ProviderCommand::List) => out.list(
            &store.dns_providers().await?,
            &[
                "id",
                "name",
                "settings.kind",
                "settings.api_url",
                "serves_new_zones",
            ],
        ),
        DnsCommand::Zones(command) => zones(command, store, ctx, out).await,
        DnsCommand::Records(command) => records(command, store, ctx, out).await,
        DnsCommand::Plan { zone, wait, exit } => {
            let zone = store.zone_by_name(&zone_name(&zone)?).await?;
            let Some(output) = ask(
                &**store,
                ctx,
                Requested::ZonePlan { zone: zone.id },
                wait,
                out,
            )
            .await?
            else {
                return Ok(());
            };
            if out.json {
                out.one(&output["plan"])?;
            } else {
                print!("{}", cell(&output["text"]));
            }
            exit.report(output["changes"] == true)
        }
        DnsCommand::Apply { zone, force, wait } => {
            let zone = store.zone_by_name(&zone_name(&zone)?).await?;
            let job = crate::commands::sync_zone(&**store, ctx, zone.id, force).await?;
            let Some(output) = follow(&**store, job, wait, out).await? else {
                return Ok(());
            };
            let outcomes = output["outcomes"].as_array().cloned().unwrap_or_default();
            if out.json {
                out.one(&json!({ "plan": output["plan"], "outcomes": outcomes }))?;
            } else {
                print!("{}", output["text"].as_str().unwrap_or_default());
                for o in &outcomes {
                    let detail = o["message"]
                        .as_str()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default();
                    println!(
                        "{}: {} ({} requests){detail}",
                        cell(&o["provider"]),
                        cell(&o["result"]),
                        cell(&o["requests"])
                    );
                }
            }
            let not_applied = |o: &&Value| {
                [ApplyResult::Refused, ApplyResult::Failed]
                    .iter()
                    .any(|r| o["result"] == r.as_str())
            };
            if let Some(o) = outcomes.iter().find(not_applied) {
                bail!(
                    "zone {} was not applied on {}: {}",
                    zone.name,
                    cell(&o["provider"]),
                    cell(&o["result"])
                );
            }
            Ok(())
        }
        DnsCommand::Check { provider, wait } => {
            let provider = match provider {
                Some(name) => Some(store.dns_provider_by_name(&name).await?.id),
                None => None,
            };
            let Some(output) =
                ask(&**store, ctx, Requested::ZoneCheck { provider }, wait, out).await?
            else {
                return Ok(());
            };
            if out.json {
                out.one(&output["checks"])?;
            } else {
                print!("{}", cell(&output["text"]));
            }
            if output["consistent"] != Value::Bool(true) {
                bail!("DNS is not consistent with drover's data");
            }
            Ok(())
        }
        DnsCommand::Rewrite { from, to, wait } => {
            let moved = AddressMove { from, to };
            let job = crate::commands::rewrite_addresses(&**store, ctx, &moved).await?;
            let Some(report) = follow(&**store, job, wait, out).await? else {
                return Ok(());
            };
            if out.json {
                out.one(&report)?;
            } else {
                println!(
                    "{} zones rewritten: {} provider writes in {} requests, {} left to sync jobs, {} ms ({} ms in the database)",
                    cell(&report["zones"]),
                    cell(&report["pushed"]),
                    cell(&report["requests"]),
                    cell(&report["deferred"]),
                    cell(&report["elapsed_ms"]),
                    cell(&report["database_ms"])
                );
                for failure in report["failures"].as_array().into_iter().flatten() {
                    println!("  {}", cell(failure));
                }
            }
            Ok(())
        }
    }
}

async fn zones(
    command: ZoneCommand,
    store: &Arc<dyn Store>,
    ctx: &RequestContext,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        ZoneCommand::Create { zone, providers } => {
            let mut ids = Vec::new();
            for name in providers {
                ids.push(store.dns_provider_by_name(&name).await?.id);
            }
            out.one(
                &commands::create_zone(&**store, ctx, &zone_name(&zone)?, None, Vec::new(), &ids)
                    .await?,
            )
        }
        ZoneCommand::List { provider } => {
            let provider = match provider {
                Some(name) => Some(store.dns_provider_by_name(&name).await?.id),
                None => None,
            };
            let zones = store
                .zones(ZoneFilter {
                    provider,
                    ..ZoneFilter::default()
                })
                .await?;
            let rows: Vec<_> = zones
                .iter()
                .map(|z| {
                    json!({
                        "id": z.id, "name": z.name, "account_id": z.account_id,
                        "generation": z.generation, "rrsets": z.rrsets.len(),
                        "providers": z.providers.iter().map(|p| p.provider_name.clone()).collect::<Vec<_>>(),
                        "in_sync": z.in_sync(), "deleting": z.deleting,
                    })
                })
                .collect();
            out.list(
                &rows,
                &[
                    "id",
                    "name",
                    "account_id",
                    "rrsets",
                    "providers",
                    "in_sync",
                    "deleting",
                ],
            )
        }
        ZoneCommand::Show { zone } => out.one(&store.zone_by_name(&zone_name(&zone)?).await?),
        ZoneCommand::Safety {
            zone,
            max_change_percent,
        } => {
            let zone = store.zone_by_name(&zone_name(&zone)?).await?;
            let limit = match max_change_percent.as_str() {
                "default" => None,
                text => match text.parse::<u8>() {
                    Ok(p) => Some(p),
                    _ => bail!("--max-change-percent '{text}': expected 0 to 100, or 'default'"),
                },
            };
            out.one(&crate::commands::set_zone_safety(&**store, ctx, zone.id, limit).await?)
        }
        ZoneCommand::Delete { zone, confirm } => {
            let zone = store.zone_by_name(&zone_name(&zone)?).await?;
            out.one(&crate::commands::remove_zone(&**store, ctx, zone.id, &confirm).await?)
        }
    }
}

async fn records(
    command: RecordCommand,
    store: &Arc<dyn Store>,
    ctx: &RequestContext,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        RecordCommand::Set {
            zone,
            name,
            rtype,
            contents,
            ttl,
        } => {
            let zone = store.zone_by_name(&zone_name(&zone)?).await?;
            let owner = OwnerName::parse(&name, &zone.name)?;
            let rrset = RrSet::new(
                owner,
                RecordType::parse(&rtype)?,
                ttl,
                contents.iter().map(String::as_str),
            )?;
            out.one(&crate::commands::set_rrset(&**store, ctx, zone.id, rrset).await?)
        }
        RecordCommand::Delete { zone, name, rtype } => {
            let zone = store.zone_by_name(&zone_name(&zone)?).await?;
            let owner = OwnerName::parse(&name, &zone.name)?;
            let rtype = RecordType::parse(&rtype)?;
            let zone = crate::commands::delete_rrset(&**store, ctx, zone.id, &owner, rtype).await?;
            out.one(&zone)
        }
    }
}
