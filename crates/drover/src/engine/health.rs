//! Health checks: per server, a cheap API call (`info`) with its latency, the certificate the
//! server presents (expiry and pin), and drover's breaker for it; across the fleet, the
//! accounts' certificates their servers should have renewed by now. Results are recorded by the
//! store, which moves a server's state only after consecutive results agree.

use std::time::Instant;

use drover_core::{HealthProbe, ServerState};
use drover_store::{HealthChange, RequestContext, Server};
use drover_virtualmin::BreakerState;

use super::Engine;

/// Checks one server. Never fails: what went wrong is part of the probe.
pub async fn probe_server(engine: &Engine, server: &Server) -> HealthProbe {
    let timeout = engine.fleet.settings().timeouts.health_check;
    let started = Instant::now();
    let mut login_refused = false;
    let (api_ok, error, breaker_open) = match engine.fleet.probe_client(server) {
        Ok(client) => {
            let answer = tokio::time::timeout(timeout, client.info()).await;
            let breaker_open = client.breaker_state() == BreakerState::Open;
            match answer {
                Ok(Ok(_)) => (true, None, breaker_open),
                Ok(Err(e)) => {
                    login_refused = matches!(
                        e.kind,
                        drover_virtualmin::ErrorKind::Auth
                            | drover_virtualmin::ErrorKind::LockedOut
                    );
                    (false, Some(e.to_string()), breaker_open)
                }
                Err(_) => (
                    false,
                    Some(format!("no answer within {timeout:?}")),
                    breaker_open,
                ),
            }
        }
        Err(e) => {
            login_refused = e.waits;
            (false, Some(e.to_string()), false)
        }
    };
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (certificate_days_left, pin_matches) = match drover_virtualmin::presented_certificate(
        &server.spec.hostname.to_string(),
        server.spec.port,
        timeout,
    )
    .await
    {
        Ok(cert) => {
            let now = jiff::Timestamp::now().as_second();
            let days = (cert.not_after - now).div_euclid(86_400);
            (
                Some(days),
                server.spec.pinned_cert_sha256.map(|pin| pin == cert.sha256),
            )
        }
        // The API check above already says whether the server can be reached.
        Err(_) => (None, None),
    };
    HealthProbe {
        api_ok,
        latency_ms,
        error,
        certificate_days_left,
        pin_matches,
        breaker_open,
        login_refused,
    }
}

/// Checks every server that is not decommissioned (or only `only`), all at once, and records
/// the results.
pub async fn check_fleet(
    engine: &Engine,
    ctx: &RequestContext,
    only: Option<drover_core::ServerId>,
) -> crate::commands::Result<Vec<HealthChange>> {
    let servers: Vec<Server> = engine
        .store
        .servers(drover_store::Page::new(None, Some(10_000)))
        .await?
        .into_iter()
        .filter(|s| s.state != ServerState::Decommissioned)
        .filter(|s| only.is_none_or(|id| id == s.id))
        .collect();
    let probes =
        futures_util::future::join_all(servers.iter().map(|s| probe_server(engine, s))).await;
    let mut changes = Vec::new();
    for (server, probe) in servers.iter().zip(probes) {
        // A login that works again (new credentials) lifts an earlier refusal.
        if probe.api_ok && server.login_refused.is_some() {
            crate::commands::allow_login(&*engine.store, ctx, server.id).await?;
        }
        let change = engine
            .store
            .record_health(ctx, server.id, &probe, &engine.fleet_policy.health)
            .await?;
        for state in ServerState::ALL {
            let value = if state == change.server.state {
                1.0
            } else {
                0.0
            };
            metrics::gauge!("drover_server_state", "server" => server.spec.name.to_string(), "state" => state.as_str())
                .set(value);
        }
        metrics::gauge!("drover_server_check_latency_seconds", "server" => server.spec.name.to_string())
            .set(probe.latency_ms as f64 / 1000.0);
        if change.moved()
            && change.server.state == ServerState::Unavailable
            && engine.fleet_policy.failover
        {
            let plan =
                crate::commands::failover(&*engine.store, ctx, &engine.placement, &change.server)
                    .await?;
            tracing::warn!(
                server = %server.spec.name,
                moves = plan.moves.len(),
                unplaced = plan.unplaced.len(),
                "server unavailable: its accounts are being recreated elsewhere"
            );
        }
        if change.moved() {
            tracing::warn!(
                server = %server.spec.name,
                from = %change.before,
                to = %change.server.state,
                reasons = ?change.health.reasons,
                "server state moved"
            );
        }
        changes.push(change);
    }
    Ok(changes)
}

/// The accounts whose last good backup is older than their plan's schedule allows (or that
/// have none though old enough to): a warning, and their number a metric. Nothing while
/// backups are not scheduled (no interval, or no default destination), nor for a plan
/// without scheduled backups.
pub async fn backups_overdue(
    engine: &Engine,
) -> crate::commands::Result<Vec<drover_store::BackupAge>> {
    let Some(every) = engine.fleet_policy.backup_interval else {
        return Ok(Vec::new());
    };
    if engine.store.default_backup_destination().await?.is_none() {
        return Ok(Vec::new());
    }
    let fleet = jiff::SignedDuration::try_from(every).unwrap_or(jiff::SignedDuration::MAX);
    let mut overdue = Vec::new();
    for plan in super::jobs::all_plans(&engine.store).await? {
        let Some(interval) = plan.spec.backup_interval(fleet) else {
            continue;
        };
        let since = drover_core::overdue_before(interval, jiff::Timestamp::now());
        overdue.extend(engine.store.backups_older_than(plan.id, since).await?);
    }
    overdue.sort_by_key(|b| b.account_id);
    metrics::gauge!("drover_backups_overdue").set(overdue.len() as f64);
    if !overdue.is_empty() {
        tracing::warn!(
            count = overdue.len(),
            "accounts without a good backup within twice the backup interval"
        );
    }
    Ok(overdue)
}

/// The accounts' certificates their servers should have renewed by now (they renew 21 days
/// before expiry, and these expire within the warning days): a warning, and their number a
/// metric. The expiries are the ones the last usage syncs read.
pub async fn certificates_not_renewed(
    engine: &Engine,
) -> crate::commands::Result<Vec<drover_store::Certificate>> {
    let warn_days = engine.fleet_policy.health.certificate_warn_days;
    let now = jiff::Timestamp::now();
    let before = drover_core::expiring_within(now, u32::try_from(warn_days).unwrap_or(0))?;
    let mut overdue = Vec::new();
    let mut page = drover_store::Page::new(None, Some(drover_store::Page::MAX_LIMIT));
    loop {
        let batch = engine
            .store
            .certificates(drover_store::CertificateFilter {
                state: Some(drover_core::CertificateState::Issued),
                expiring_before: Some(before),
                page,
                ..Default::default()
            })
            .await?;
        let full = batch.len() == page.limit as usize;
        page.after = batch.last().map(|c| c.account_id.get());
        overdue.extend(batch);
        if !full {
            break;
        }
    }
    metrics::gauge!("drover_certificates_renewal_overdue").set(overdue.len() as f64);
    // One line per check, not one per certificate: the list is in the check's output.
    if let Some(soonest) = overdue.iter().filter_map(|c| c.expires_at).min() {
        tracing::warn!(
            count = overdue.len(),
            soonest_days_left = drover_core::days_left(soonest, now),
            "certificates not renewed by their servers"
        );
    }
    Ok(overdue)
}
