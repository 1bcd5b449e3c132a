//! `request_certificate`: asks the account's server for Let's Encrypt certificates for the
//! account's names still without one (its domain, whose certificate covers its aliases, then
//! each sub-server's own) when [`drover_core::certificate_turn`] says it may, and again after
//! a failure when Let's Encrypt's limits allow. The job lives until the certificate is issued: every wait is a
//! snooze (River counts no attempt for it), every answer is recorded on the certificate, and a
//! request made while a turn ran is taken up by the next turn at once.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use drover_core::{
    AccountId, CertificateFacts, CertificateState, CertificateTurn, DomainName, ServerState,
    ServiceStatus, certificate_turn, dns_points_at, gives_website, next_attempt,
};
use drover_store::jobs::ConvergeAccount;
use drover_store::{
    Certificate, CertificateOutcome, JobFilter, JobState, NameAnswer, Server, StoreError,
};
use drover_virtualmin::ErrorKind;
use jiff::{SignedDuration, Timestamp};
use riverqueue::JobArgs;
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use super::job_context;
use crate::engine::Engine;

/// How long the job waits after its server could not be reached (nothing was asked of Let's
/// Encrypt, so nothing is counted).
const UNREACHED_WAIT: SignedDuration = SignedDuration::from_mins(5);

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::RequestCertificate>,
) -> Result<WorkOutcome, CertificateError> {
    let id = AccountId(job.args.account_id);
    let Some(certificate) = engine.store.certificate(id).await? else {
        let _ = context.record_output(json!({ "done": "no certificate is asked for any more" }));
        return Ok(WorkOutcome::Complete);
    };
    let turn = ThisTurn {
        engine: &engine,
        ctx: job_context(job.id()),
        context: &context,
        id,
        asked_at: certificate.requested_at,
    };
    if certificate.state == CertificateState::Issued {
        return Ok(turn.done("issued"));
    }
    let (facts, server) = facts(&engine, id, &certificate).await?;
    let server = match certificate_turn(&facts, Timestamp::now()) {
        CertificateTurn::Done(why) => return Ok(turn.done(why)),
        CertificateTurn::Wait { why, until } => return turn.wait(why, until, Vec::new()).await,
        CertificateTurn::Ask => server.expect("a turn that asks has a server"),
    };
    let unreached = Timestamp::now() + UNREACHED_WAIT;
    let client = match engine.fleet.client(&server) {
        Ok(client) => client,
        Err(e) => return turn.wait(e.to_string(), unreached, Vec::new()).await,
    };
    // The names still to ask, the account's domain first.
    let wanted: Vec<DomainName> = certificate
        .names
        .iter()
        .filter(|n| n.wanted())
        .map(|n| n.domain.clone())
        .collect();
    let mut answers = Vec::new();
    let (mut refused, mut not_made) = (Vec::new(), Vec::new());
    let mut unanswered = None;
    for name in &wanted {
        match client.generate_letsencrypt_cert(name.as_str()).await {
            Ok(()) => {
                // The expiry as the server reports it; each usage sync reads the domain's again.
                let expires_at = match client.get_domain(name.as_str()).await {
                    Ok(listed) => listed
                        .and_then(|d| d.ssl_expiry_unix_time)
                        .and_then(|t| Timestamp::from_second(t).ok()),
                    Err(_) => None,
                };
                answers.push(NameAnswer {
                    domain: name.clone(),
                    answer: Ok(expires_at),
                });
            }
            // The server has no such domain (yet): a converge makes it; nothing was asked.
            Err(e) if e.kind == ErrorKind::NotFound => not_made.push(name.to_unicode()),
            // The program ran and said no, or may have run: Let's Encrypt may have counted it.
            Err(e) if e.program_failed || e.unanswered => {
                refused.push((name.clone(), e.message.clone()));
                answers.push(NameAnswer {
                    domain: name.clone(),
                    answer: Err(e.message),
                });
            }
            // The server does not answer: the rest waits for it.
            Err(e) => {
                unanswered = Some(format!("{} to answer ({e})", server.spec.name));
                break;
            }
        }
    }
    let issued: Vec<String> = answers
        .iter()
        .filter(|a| a.answer.is_ok())
        .map(|a| a.domain.to_unicode())
        .collect();
    if !refused.is_empty() {
        let failed_at = Timestamp::now();
        let mut recent = facts.recent_failures.clone();
        recent.push(failed_at);
        let again = next_attempt(certificate.failures + 1, &recent, failed_at);
        // The server's own message; each name's when more than the account's domain failed.
        let message = match refused.as_slice() {
            [(name, message)] if *name == certificate.domain => message.clone(),
            _ => refused
                .iter()
                .map(|(name, message)| format!("{}: {message}", name.to_unicode()))
                .collect::<Vec<_>>()
                .join("; "),
        };
        turn.output(json!({
            "failed": message, "issued": issued, "next_attempt_at": again.to_string(),
        }));
        let failed = CertificateOutcome::Failed {
            message,
            next_attempt_at: again,
            answers,
        };
        let recorded = turn.record(&failed).await?;
        return Ok(snooze_until(recorded.map(|_| again)));
    }
    if let Some(why) = unanswered {
        return turn.wait(why, unreached, answers).await;
    }
    if !not_made.is_empty() {
        let why = format!("{} to be made on its server", not_made.join(", "));
        return turn.wait(why, unreached, answers).await;
    }
    let expires_at = answers
        .iter()
        .find(|a| a.domain == certificate.domain)
        .and_then(|a| a.answer.clone().ok().flatten());
    turn.output(json!({
        "issued": issued,
        "expires_at": expires_at.map(|t| t.to_string()),
    }));
    let recorded = turn
        .record(&CertificateOutcome::Issued {
            expires_at,
            answers,
        })
        .await?;
    // Asked again meanwhile (a move, a new sub-server): the next turn looks again at once.
    Ok(match recorded {
        Some(_) => WorkOutcome::Complete,
        None => snooze_until(None),
    })
}

/// One turn of the job: what it records is about the request it began from.
struct ThisTurn<'a> {
    engine: &'a Engine,
    ctx: drover_store::RequestContext,
    context: &'a WorkContext,
    id: AccountId,
    /// The certificate's `requested_at` when the turn began.
    asked_at: Timestamp,
}

impl ThisTurn<'_> {
    fn output(&self, value: serde_json::Value) {
        let _ = self.context.record_output(value);
    }

    fn done(&self, why: &str) -> WorkOutcome {
        self.output(json!({ "done": why }));
        WorkOutcome::Complete
    }

    /// `None` when the request was asked again (or forgotten) while the turn ran.
    async fn record(
        &self,
        outcome: &CertificateOutcome,
    ) -> Result<Option<Certificate>, StoreError> {
        self.engine
            .store
            .record_certificate(&self.ctx, self.id, self.asked_at, outcome)
            .await
    }

    /// Records a wait (nothing more asked of Let's Encrypt: `answers` for what was) and sleeps
    /// until it ends.
    async fn wait(
        &self,
        why: String,
        until: Timestamp,
        answers: Vec<NameAnswer>,
    ) -> Result<WorkOutcome, CertificateError> {
        self.output(json!({ "waiting_for": why }));
        let waiting = CertificateOutcome::Waiting {
            why,
            until,
            answers,
        };
        let recorded = self.record(&waiting).await?;
        Ok(snooze_until(recorded.map(|_| until)))
    }
}

/// What the account's turn is decided on, and its server.
async fn facts(
    engine: &Engine,
    id: AccountId,
    certificate: &Certificate,
) -> Result<(CertificateFacts, Option<Server>), StoreError> {
    let store = &engine.store;
    let account = store.account(id).await?;
    let service = store.service(account.service_id).await?;
    let plan = store.plan(service.plan_id).await?.spec;
    let server = match account.server_id {
        Some(server) => Some(store.server(server).await?),
        None => None,
    };
    let moving = store
        .migration(id)
        .await?
        .is_some_and(|m| Some(m.to_server) != account.server_id);
    // One waiting for a retry or its time (a server down, its rate) is waited for until then.
    let now = Timestamp::now();
    let converge_due = store
        .jobs(JobFilter {
            states: vec![
                JobState::Available,
                JobState::Running,
                JobState::Retryable,
                JobState::Scheduled,
            ],
            account_id: Some(id),
            limit: None,
        })
        .await?
        .iter()
        .filter(|j| j.kind == ConvergeAccount::KIND)
        .map(|j| match j.state.as_str() {
            "retryable" | "scheduled" => j.scheduled_at.max(now),
            _ => now,
        })
        .min();
    let addresses: Vec<IpAddr> = server
        .iter()
        .flat_map(|s| [s.spec.ipv4.map(IpAddr::V4), s.spec.ipv6.map(IpAddr::V6)])
        .flatten()
        .collect();
    let dns_points = match store.account_zone(id).await? {
        Some(zone) => {
            Some(zone.in_sync() && dns_points_at(&zone.rrsets, &account.domain, &addresses))
        }
        None => None,
    };
    let server_unusable = server.as_ref().and_then(|s| match s.state {
        ServerState::Maintenance | ServerState::Decommissioned | ServerState::Unavailable => {
            Some(format!("it is {}", s.state))
        }
        _ => s
            .login_refused
            .as_ref()
            .map(|_| "its login is refused".to_owned()),
    });
    let facts = CertificateFacts {
        domain: account.domain.to_string(),
        desired: account.desired_state,
        pending: service.status == ServiceStatus::Pending,
        server: server.as_ref().map(|s| s.spec.name.to_string()),
        made: account.observed_state.as_deref() == Some("enabled"),
        moving,
        converge_due,
        server_unusable,
        plan_gives_web: gives_website(&plan),
        server_has_address: !addresses.is_empty(),
        dns_points,
        recent_failures: certificate.recent_failures.clone(),
    };
    Ok((facts, server))
}

/// Sleeps until `until`; `None` (asked again, or forgotten, while the turn ran) looks again at
/// once.
fn snooze_until(until: Option<Timestamp>) -> WorkOutcome {
    let wait = until.map_or(SignedDuration::ZERO, |t| t.duration_since(Timestamp::now()));
    WorkOutcome::Snooze(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}
