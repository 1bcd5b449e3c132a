//! Drift: one `list-domains multiline=` and one `list-users all-domains multiline=` call per
//! server (and a `list-databases` per account with databases to compare: the server has no
//! server-wide listing of them) compared with drover's accounts, their mailboxes and their
//! databases there,
//! each finding recorded, then a repair pass by policy (converge jobs for accounts, disabling
//! for quarantined orphans) unless it is larger than the limit. Orphans are deleted only by an
//! operator's explicit action.

use drover_core::{
    AccountId, DomainName, DriftAction, DriftKind, Expected, Listed, ListedDatabase, ListedUser,
    RepairPlan, find_alias_drift, find_database_drift, find_drift, find_mailbox_drift,
    find_subserver_drift, plan_repair,
};
use drover_store::{AccountFilter, DriftRecord, RequestContext, Server, StoreError};
use drover_virtualmin::{ErrorKind, VirtualminError};
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use super::Engine;

#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Command(#[from] crate::commands::Error),
    /// The listing failed: nothing is derived from a failed observation.
    #[error("server {server} could not be observed, so no drift was derived: {source}")]
    Observation {
        server: String,
        #[source]
        source: VirtualminError,
    },
    #[error("server {server}: {message}")]
    Unusable { server: String, message: String },
    #[error("{0}")]
    Refused(String),
}

/// A repair pass: its plan and what it did.
#[derive(Debug, Clone, Serialize)]
pub struct RepairOutcome {
    pub server: String,
    pub findings: Vec<DriftRecord>,
    pub plan: RepairPlan,
    pub dry_run: bool,
    /// Converge jobs enqueued for enforced accounts.
    pub jobs: Vec<drover_core::JobId>,
    pub quarantined: Vec<String>,
    pub failures: Vec<String>,
}

/// A domain as drift compares it.
pub(crate) fn listed(d: drover_virtualmin::DomainInfo) -> Listed {
    Listed {
        disabled: d.disabled.is_some(),
        features: super::converge::known_features(&d.features),
        plan: d.plan,
        parent: d.parent.or(d.alias_of.clone()),
        alias_of: d.alias_of,
        domain: d.domain,
    }
}

/// Lists the server's domains once and records what differs from drover's accounts there.
pub async fn scan_server(
    engine: &Engine,
    ctx: &RequestContext,
    server: &Server,
) -> Result<Vec<DriftRecord>, DriftError> {
    let name = server.spec.name.to_string();
    let client = engine
        .fleet
        .client(server)
        .map_err(|e| DriftError::Unusable {
            server: name.clone(),
            message: e.to_string(),
        })?;
    let domains = client
        .list_domains()
        .await
        .map_err(|source| DriftError::Observation {
            server: name,
            source,
        })?;
    // Every mailbox of every domain in one more listing.
    let users = client
        .list_all_users()
        .await
        .map_err(|source| DriftError::Observation {
            server: server.spec.name.to_string(),
            source,
        })?;
    let users: Vec<ListedUser> = users
        .into_iter()
        .filter(|u| u.is_mailbox())
        .map(|u| ListedUser {
            domain: u.domain,
            name: u.user,
            real_name: u.real_name,
            quota_bytes: u.quota_bytes,
        })
        .collect();
    let expected = engine.store.server_expectations(server.id).await?;
    let databases = list_databases(&client, &expected, &domains)
        .await
        .map_err(|source| DriftError::Observation {
            server: server.spec.name.to_string(),
            source,
        })?;
    let listed: Vec<Listed> = domains.into_iter().map(listed).collect();
    let mut findings = find_drift(&expected, &listed);
    findings.extend(find_mailbox_drift(&expected, &listed, &users));
    findings.extend(find_database_drift(&expected, &databases));
    findings.extend(find_alias_drift(&expected, &listed));
    findings.extend(find_subserver_drift(&expected, &listed));
    let records = engine.store.record_drift(ctx, server.id, &findings).await?;
    for kind in DriftKind::ALL {
        let count = findings.iter().filter(|f| f.kind == kind).count();
        metrics::gauge!("drover_drift_findings", "server" => server.spec.name.to_string(), "kind" => kind.as_str())
            .set(count as f64);
    }
    Ok(records)
}

/// The databases of the live accounts on the server that have any to compare: those with
/// database records, and those the domain listing counts more databases for than the one
/// the server makes with an account (a database made by hand). One `list-databases` each.
async fn list_databases(
    client: &drover_virtualmin::VirtualminClient,
    expected: &[Expected],
    domains: &[drover_virtualmin::DomainInfo],
) -> Result<BTreeMap<String, Vec<ListedDatabase>>, VirtualminError> {
    // Indexed once (the first of a name, as a walk would find it).
    let mut by_name: BTreeMap<&str, &drover_virtualmin::DomainInfo> = BTreeMap::new();
    for d in domains {
        by_name.entry(d.domain.as_str()).or_insert(d);
    }
    let mut listed = BTreeMap::new();
    for want in expected.iter().filter(|e| e.is_live()) {
        let domain = want.domain.as_str();
        let Some(info) = by_name.get(domain) else {
            continue;
        };
        let counted = info.quota.databases_count.unwrap_or(0);
        if want.databases.is_empty() && counted <= 1 {
            continue;
        }
        let databases = client
            .databases(domain)
            .await?
            .into_iter()
            .map(|d| ListedDatabase {
                name: d.name,
                kind: d.kind,
            })
            .collect();
        listed.insert(domain.to_owned(), databases);
    }
    Ok(listed)
}

/// Scans the server, plans the repair by policy and, unless `dry_run` or over the limit
/// (without `force`), carries it out.
pub async fn repair_server(
    engine: &Engine,
    ctx: &RequestContext,
    server: &Server,
    force: bool,
    dry_run: bool,
) -> Result<RepairOutcome, DriftError> {
    let findings = scan_server(engine, ctx, server).await?;
    let accounts = engine
        .store
        .server_expectations(server.id)
        .await?
        .iter()
        .filter(|e| e.is_live())
        .count();
    let plain: Vec<_> = findings.iter().map(|r| r.finding.clone()).collect();
    let plan = plan_repair(&plain, accounts, &engine.fleet_policy.drift, force);
    let mut outcome = RepairOutcome {
        server: server.spec.name.to_string(),
        findings,
        plan,
        dry_run,
        jobs: Vec::new(),
        quarantined: Vec::new(),
        failures: Vec::new(),
    };
    if dry_run {
        return Ok(outcome);
    }
    if let Some(held) = &outcome.plan.held {
        engine
            .store
            .audit(
                ctx,
                "drift.held",
                format!("server:{}", server.id),
                json!({ "reason": held }),
            )
            .await?;
        return Ok(outcome);
    }
    let client = engine
        .fleet
        .client(server)
        .map_err(|e| DriftError::Unusable {
            server: outcome.server.clone(),
            message: e.to_string(),
        })?;
    let mut actions = Vec::new();
    let mut enforce: Vec<AccountId> = Vec::new();
    for (record, (_, action)) in outcome.findings.iter().zip(&outcome.plan.steps) {
        match action {
            DriftAction::Log => {}
            DriftAction::Enforce => enforce.extend(record.finding.account_id),
            DriftAction::Quarantine => {
                let reason = "drover: not in drover's records (quarantined orphan)";
                match client
                    .disable_domain(&record.finding.domain, Some(reason))
                    .await
                {
                    Ok(()) => outcome.quarantined.push(record.finding.domain.clone()),
                    Err(e) => {
                        outcome
                            .failures
                            .push(format!("{}: {e}", record.finding.domain));
                        continue;
                    }
                }
            }
        }
        actions.push((record.id, *action));
    }
    enforce.sort();
    enforce.dedup();
    outcome.jobs =
        crate::commands::record_drift_repair(&*engine.store, ctx, server.id, &actions, &enforce)
            .await?;
    Ok(outcome)
}

/// Deletes an orphan from its server: only on an operator's explicit request (the name was
/// repeated where it was asked for), only for a domain the last scan found as an orphan there
/// and that drover does not hold now. Gone already is done.
pub async fn delete_orphan(
    engine: &Engine,
    ctx: &RequestContext,
    server: &Server,
    domain: &DomainName,
) -> Result<(), DriftError> {
    let findings = engine.store.drift_findings(Some(server.id)).await?;
    let is_orphan = findings
        .iter()
        .any(|r| r.finding.kind == DriftKind::Orphan && r.finding.domain == domain.as_str());
    if !is_orphan {
        return Err(DriftError::Refused(format!(
            "{domain} is not an orphan found on {} by the last scan; scan first (drover drift scan)",
            server.spec.name
        )));
    }
    // The scan may be old: an account given this domain since is drover's, not an orphan.
    let held = AccountFilter {
        domain: Some(domain.clone()),
        ..AccountFilter::default()
    };
    if let Some(account) = engine.store.accounts(held).await?.first() {
        return Err(DriftError::Refused(format!(
            "{domain} is drover's account {} now; it is not deleted as an orphan",
            account.id
        )));
    }
    let client = engine
        .fleet
        .client(server)
        .map_err(|e| DriftError::Unusable {
            server: server.spec.name.to_string(),
            message: e.to_string(),
        })?;
    match client.delete_domain(domain.as_str()).await {
        Ok(()) => {}
        Err(e) if e.kind == ErrorKind::NotFound => {}
        Err(source) => {
            return Err(DriftError::Observation {
                server: server.spec.name.to_string(),
                source,
            });
        }
    }
    engine
        .store
        .audit(
            ctx,
            "drift.orphan_deleted",
            format!("server:{}", server.id),
            json!({ "domain": domain }),
        )
        .await?;
    Ok(())
}
