//! `request_certificate`: asks the account's server for a Let's Encrypt certificate once the
//! account is on its server and its DNS points there, and again after a failure when
//! Let's Encrypt's limits allow. The job lives until the certificate is issued: every wait is a
//! snooze (River counts no attempt for it), every answer is recorded on the certificate.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use drover_core::{
    AccountId, CertificateState, DesiredState, ServiceStatus, dns_points_at, earliest_attempt,
    next_attempt,
};
use drover_store::{CertificateOutcome, StoreError};
use drover_virtualmin::VirtualminError;
use jiff::Timestamp;
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use super::job_context;
use crate::engine::Engine;

/// How long the job waits before looking again at an account not ready for a request.
const NOT_READY_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server could not be asked (unreachable, refused drover's login): not a request
    /// Let's Encrypt saw, so tried again as any failing job is.
    #[error("the account's server could not be asked for the certificate: {0}")]
    Server(#[from] VirtualminError),
    #[error(transparent)]
    Fleet(#[from] crate::engine::FleetError),
}

pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::RequestCertificate>,
) -> Result<WorkOutcome, CertificateError> {
    let ctx = job_context(job.id());
    let id = AccountId(job.args.account_id);
    let store = &engine.store;
    let now = Timestamp::now();
    let Some(certificate) = store.certificate(id).await? else {
        let _ = context.record_output(json!({ "done": "no certificate is asked for any more" }));
        return Ok(WorkOutcome::Complete);
    };
    let account = store.account(id).await?;
    let server = match readiness(&engine, &account, &certificate, now).await? {
        Turn::Done(why) => {
            let _ = context.record_output(json!({ "done": why }));
            return Ok(WorkOutcome::Complete);
        }
        Turn::Wait(why, until) => {
            let _ = context.record_output(json!({ "waiting_for": why }));
            let waiting = CertificateOutcome::Waiting { why, until };
            let now = store.record_certificate(&ctx, id, &waiting).await?;
            return Ok(snooze_until(&certificate, &now, until));
        }
        Turn::Ask(server) => *server,
    };
    let client = engine.fleet.client(&server)?;
    let domain = account.domain.as_str();
    match client.generate_letsencrypt_cert(domain).await {
        Ok(()) => {
            // The expiry as the server reports it; each usage sync reads it again.
            let expires_at = match client.get_domain(domain).await {
                Ok(listed) => listed
                    .and_then(|d| d.ssl_expiry_unix_time)
                    .and_then(|t| Timestamp::from_second(t).ok()),
                Err(_) => None,
            };
            store
                .record_certificate(&ctx, id, &CertificateOutcome::Issued { expires_at })
                .await?;
            let _ = context.record_output(json!({
                "issued": domain,
                "expires_at": expires_at.map(|t| t.to_string()),
            }));
            Ok(WorkOutcome::Complete)
        }
        // The program ran and said no: Let's Encrypt may have counted it.
        Err(e) if e.program_failed => {
            let failed_at = Timestamp::now();
            let mut failures = certificate.recent_failures.clone();
            failures.push(failed_at);
            let again = next_attempt(&failures, failed_at);
            let failed = CertificateOutcome::Failed {
                message: e.message.clone(),
                next_attempt_at: again,
            };
            let now = store.record_certificate(&ctx, id, &failed).await?;
            let _ = context.record_output(json!({
                "failed": e.message,
                "next_attempt_at": again.to_string(),
            }));
            Ok(snooze_until(&certificate, &now, again))
        }
        Err(e) => Err(e.into()),
    }
}

/// What this turn of the job does.
enum Turn {
    /// Nothing left to do.
    Done(&'static str),
    /// Not yet: why, and when to look again.
    Wait(String, Timestamp),
    /// Ask this server now.
    Ask(Box<drover_store::Server>),
}

/// Whether the account's certificate can be asked for now: the account enabled and made on its
/// server, its DNS pointing there, and Let's Encrypt's hourly limit not reached.
async fn readiness(
    engine: &Engine,
    account: &drover_store::Account,
    certificate: &drover_store::Certificate,
    now: Timestamp,
) -> Result<Turn, CertificateError> {
    let soon = now + NOT_READY_WAIT;
    let wait = |why: &str| Ok(Turn::Wait(why.to_owned(), soon));
    if certificate.state == CertificateState::Issued {
        return Ok(Turn::Done("issued"));
    }
    match account.desired_state {
        DesiredState::Absent => {
            let service = engine.store.service(account.service_id).await?;
            if service.status == ServiceStatus::Pending {
                return wait("the service to be activated");
            }
            return Ok(Turn::Done("the account is deleted"));
        }
        DesiredState::Disabled => {
            return wait(
                "the account to be unsuspended (its website does not answer while suspended)",
            );
        }
        DesiredState::Enabled => {}
    }
    let Some(server_id) = account.server_id else {
        return wait("the account to be placed on a server");
    };
    if account.observed_state.as_deref() != Some("enabled") {
        return wait("the account to be made on its server");
    }
    // A move asks again once the account is switched to its new server.
    if let Some(moving) = engine.store.migration(account.id).await?
        && moving.to_server != server_id
    {
        return wait("the account's move to be switched to its new server");
    }
    let server = engine.store.server(server_id).await?;
    if let Some(zone) = engine.store.account_zone(account.id).await? {
        let addresses: Vec<IpAddr> = [
            server.spec.ipv4.map(IpAddr::V4),
            server.spec.ipv6.map(IpAddr::V6),
        ]
        .into_iter()
        .flatten()
        .collect();
        if addresses.is_empty() {
            return wait(&format!(
                "an address for {} (none is recorded, so no DNS can point at it)",
                server.spec.name
            ));
        }
        if !zone.in_sync() || !dns_points_at(&zone.rrsets, &account.domain, &addresses) {
            return wait(&format!(
                "the DNS of {} to point at {} on every provider",
                account.domain, server.spec.name
            ));
        }
    }
    // Never a request Let's Encrypt would count as one failure too many.
    let allowed = earliest_attempt(&certificate.recent_failures, now);
    if allowed > now {
        return Ok(Turn::Wait(
            "Let's Encrypt's limit of 5 failed validations per name and hour".to_owned(),
            allowed,
        ));
    }
    Ok(Turn::Ask(Box::new(server)))
}

/// Waits until `until`, unless someone asked again while this turn ran (`now` is the record
/// after it, `then` the one it started from): then the next turn is at once.
fn snooze_until(
    then: &drover_store::Certificate,
    now: &drover_store::Certificate,
    until: Timestamp,
) -> WorkOutcome {
    if now.requested_at > then.requested_at {
        return WorkOutcome::Snooze(Duration::ZERO);
    }
    let wait = until.duration_since(Timestamp::now());
    WorkOutcome::Snooze(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}
