//! Long work an operator asks for (a health check, a drift scan, a DNS plan, an adoption…):
//! checked to name what exists, audited with what was asked, and queued as a job. Someone may
//! be waiting on it (`--wait`), so it is tried a few times only and then says why it failed.

use drover_core::{
    AccountId, AddressMove, DnsProviderId, DomainName, Feature, JobId, ServerId, ZoneId,
};
use drover_store::jobs::{
    AdoptServer, CheckFleetHealth, CheckZones, CreateLoginLink, DeleteOrphan, DriftRepair,
    PlanZone, RequestedJob, RewriteAddresses, RunOverSsh, ScanDrift, SshProgram, SyncUsage,
};
use drover_store::{Job, RequestContext, Store};
use serde_json::json;

use super::Result;

/// How long a login link is valid: long enough to follow it, short enough that a copy
/// found later is worthless (the server's default is an hour).
pub const LOGIN_LINK_SECONDS: u32 = 300;

/// How often a job an operator asked for is tried.
const REQUESTED_ATTEMPTS: i32 = 3;

/// Work an operator asks for, carried out by a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    HealthCheck {
        server: Option<ServerId>,
        /// Compare the servers' plans with drover's too.
        plans: bool,
    },
    DriftScan {
        server: Option<ServerId>,
        repair: DriftRepair,
    },
    OrphanDeletion {
        server: ServerId,
        domain: DomainName,
    },
    UsageSync {
        server: Option<ServerId>,
    },
    ZonePlan {
        zone: ZoneId,
    },
    ZoneCheck {
        provider: Option<DnsProviderId>,
    },
    Adoption {
        server: ServerId,
        apply: bool,
        mapping: Option<Vec<drover_core::Mapping>>,
        accept_plan_changes: bool,
    },
    /// A one-time login link into the panel for the account's owner.
    LoginLink {
        account: AccountId,
    },
    /// One of Virtualmin's programs over SSH, on a server an operator marked (break glass).
    OverSsh {
        server: ServerId,
        program: SshProgram,
    },
}

/// What a requested job is about, checked to exist before the job is queued.
enum About {
    Fleet,
    Server(ServerId),
    Zone(ZoneId),
    Provider(DnsProviderId),
    Account(AccountId),
    /// A server an operator marked for the break-glass path, with SSH access.
    BreakGlass(ServerId),
}

/// Queues the job that carries out `work`, audited as asked.
pub async fn request(store: &dyn Store, ctx: &RequestContext, work: Requested) -> Result<JobId> {
    let on = |server: Option<ServerId>| server.map_or(About::Fleet, About::Server);
    let id = |server: Option<ServerId>| server.map(ServerId::get);
    let (about, job, action) = match work {
        Requested::HealthCheck { server, plans } => {
            let args = CheckFleetHealth {
                server_id: id(server),
                plans,
            };
            let job = RequestedJob::HealthCheck(args);
            (on(server), job, "health.check_requested")
        }
        Requested::DriftScan { server, repair } => {
            let args = ScanDrift {
                server_id: id(server),
                repair,
            };
            (
                on(server),
                RequestedJob::DriftScan(args),
                "drift.scan_requested",
            )
        }
        Requested::OrphanDeletion { server, domain } => {
            let args = DeleteOrphan {
                server_id: server.get(),
                domain: domain.as_str().to_owned(),
            };
            let job = RequestedJob::OrphanDeletion(args);
            (
                About::Server(server),
                job,
                "drift.orphan_deletion_requested",
            )
        }
        Requested::UsageSync { server } => {
            let args = SyncUsage {
                server_id: id(server),
            };
            (
                on(server),
                RequestedJob::UsageSync(args),
                "usage.sync_requested",
            )
        }
        Requested::ZonePlan { zone } => {
            let args = PlanZone {
                zone_id: zone.get(),
            };
            (
                About::Zone(zone),
                RequestedJob::ZonePlan(args),
                "dns.plan_requested",
            )
        }
        Requested::ZoneCheck { provider } => {
            let args = CheckZones {
                provider_id: provider.map(DnsProviderId::get),
            };
            let about = provider.map_or(About::Fleet, About::Provider);
            (about, RequestedJob::ZoneCheck(args), "dns.check_requested")
        }
        Requested::Adoption {
            server,
            apply,
            mapping,
            accept_plan_changes,
        } => {
            let args = AdoptServer {
                server_id: server.get(),
                apply,
                mapping,
                accept_plan_changes,
            };
            let action = if apply {
                "server.adoption_requested"
            } else {
                "server.adoption_planned"
            };
            (About::Server(server), RequestedJob::Adoption(args), action)
        }
        Requested::LoginLink { account } => {
            let args = CreateLoginLink {
                account_id: account.get(),
                lifetime_seconds: LOGIN_LINK_SECONDS,
            };
            let job = RequestedJob::LoginLink(args);
            (About::Account(account), job, "account.login_link_requested")
        }
        Requested::OverSsh { server, program } => {
            // A domain as the server knows it: punycode.
            let domain = |d: &str| DomainName::parse(d).map(|d| d.as_str().to_owned());
            let program = match program {
                SshProgram::DisableDomain { domain: d, why } => SshProgram::DisableDomain {
                    domain: domain(&d)?,
                    why,
                },
                SshProgram::EnableDomain { domain: d } => SshProgram::EnableDomain {
                    domain: domain(&d)?,
                },
                look => look,
            };
            let args = RunOverSsh {
                server_id: server.get(),
                program,
            };
            let job = RequestedJob::OverSsh(args);
            (About::BreakGlass(server), job, "server.break_glass_call")
        }
    };
    let asked = job.asked();
    let mut tx = store.write().await?;
    let subject = match about {
        About::Fleet => "fleet".to_owned(),
        About::Server(server) => format!("server:{}", tx.server(server).await?.id),
        About::Zone(zone) => format!("zone:{}", tx.zone(zone).await?.id),
        About::Provider(provider) => {
            format!("dns_provider:{}", tx.dns_provider(provider).await?.id)
        }
        About::Account(account) => {
            // A login link needs a panel login: the plan's webmin feature (the server's
            // defaults give it).
            // Read, not locked: nothing of the account changes here.
            let record = store.account(account).await?;
            let service = store.service(record.service_id).await?;
            let plan = store.plan(service.plan_id).await?.spec;
            if !plan.features.is_empty() && !plan.features.contains(&Feature::Webmin) {
                return Err(drover_core::Error::FeatureMissing {
                    plan: plan.name.to_string(),
                    feature: Feature::Webmin,
                    what: "panel logins",
                }
                .into());
            }
            format!("account:{account}")
        }
        About::BreakGlass(server) => {
            let record = tx.server(server).await?;
            let name = record.spec.name.to_string();
            if record.spec.ssh.is_none() {
                return Err(drover_core::ServerRefusal::NoSshAccess { name }.into());
            }
            if record.break_glass.is_none() {
                return Err(drover_core::ServerRefusal::NotInBreakGlass { name }.into());
            }
            format!("server:{server}")
        }
    };
    let attempts = REQUESTED_ATTEMPTS;
    let queued = tx.enqueue(ctx, Job::Requested { job, attempts }).await?;
    tx.audit(
        ctx,
        action,
        subject,
        json!({ "job": queued.id, "asked": asked }),
    )
    .await?;
    tx.commit().await?;
    Ok(queued.id)
}

/// Moves every record pointing at `moved.from` to `moved.to`, on every provider (the failover
/// rewrite, when an operator asks for it); its report is the job's output.
pub async fn rewrite_addresses(
    store: &dyn Store,
    ctx: &RequestContext,
    moved: &AddressMove,
) -> Result<JobId> {
    let mut tx = store.write().await?;
    let args = RewriteAddresses {
        moved: moved.clone(),
    };
    let queued = tx.enqueue(ctx, Job::RewriteAddresses(args)).await?;
    tx.audit(
        ctx,
        "dns.rewrite.requested",
        "dns".to_owned(),
        json!({ "from": moved.from, "to": moved.to, "job": queued.id }),
    )
    .await?;
    tx.commit().await?;
    Ok(queued.id)
}
