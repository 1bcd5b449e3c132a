//! Let's Encrypt certificates for accounts: asked for here (recorded, then requested by a job
//! once the account's DNS points at its server), renewed by the server, watched by drover.

use drover_core::{
    AccountId, DomainName, FAILED_VALIDATIONS_PER_HOUR, JobId, certificate_names,
    check_certificate_request, earliest_attempt,
};
use drover_store::jobs::RequestCertificate;
use drover_store::{Certificate, JobFilter, JobState, OtherDomainKind, RequestContext, Store};
use jiff::Timestamp;
use riverqueue::JobArgs;

use super::Result;

/// Asks for a certificate for the account's names (a pending service's once it is active):
/// refused when Let's Encrypt could not validate them (the service terminated or suspended, a
/// plan without a website) or would refuse them (five failed validations within the hour). A
/// request while one waits brings it forward, within those limits.
pub async fn request_certificate(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
) -> Result<(Certificate, JobId)> {
    let record = store.account(account).await?;
    let refused = |why: String| drover_core::Error::CertificateRefused {
        domain: record.domain_unicode.clone(),
        why,
    };
    let service = store.service(record.service_id).await?;
    let plan = store.plan(service.plan_id).await?.spec;
    check_certificate_request(&plan, service.status, &record.domain)?;
    let now = Timestamp::now();
    let allowed = earliest_attempt(&store.certificate_failures(account).await?, now);
    if allowed > now {
        return Err(refused(format!(
            "Let's Encrypt allows {FAILED_VALIDATIONS_PER_HOUR} failed validations per name and \
             hour and they have all been used; the next request can be made at {allowed} (a \
             request waiting meanwhile is tried then)"
        ))
        .into());
    }
    Ok(ask_again(store, ctx, account).await?)
}

/// Records the request for every name of the account (its domain and its sub-servers) and
/// queues its job; a job that waits (after a failure, for DNS) is brought forward, to look
/// again now.
pub async fn ask_again(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
) -> drover_store::Result<(Certificate, JobId)> {
    ask(store, ctx, account, Renew::All).await
}

/// Which of an account's names a request asks for again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renew {
    /// Every name (asked by an operator or billing, or the account made anew on a server).
    All,
    /// The account's domain, whose certificate covers its aliases: one was added or removed.
    Domain,
    /// Only names new to the request (a sub-server added); names gone are dropped.
    New,
}

/// After the account's aliases or sub-servers changed (and were committed): an account with a
/// certificate asks for what its names now need (`renew`), once its converge has put the
/// change on its server. A failure here is logged, not returned: the change stands, and an
/// operator's request asks for every name again.
pub async fn certificate_follows(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    renew: Renew,
) {
    let followed = async {
        let Some(held) = store.certificate(account).await? else {
            return Ok(());
        };
        if renew == Renew::New {
            let names = names_of(store, account).await?;
            // Nothing new to ask (a sub-server gone): the request stands, without that name.
            if names
                .iter()
                .all(|n| held.names.iter().any(|h| &h.domain == n))
            {
                return store.keep_certificate_names(account, &names).await;
            }
        }
        ask(store, ctx, account, renew).await.map(drop)
    };
    if let Err(e) = followed.await {
        tracing::error!(
            account = %account, error = %e,
            "the account's certificate was not asked for its changed names; request it again"
        );
    }
}

async fn ask(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
    renew: Renew,
) -> drover_store::Result<(Certificate, JobId)> {
    let names = names_of(store, account).await?;
    let renewed = match renew {
        Renew::All => names.clone(),
        // The account's domain is the first name.
        Renew::Domain => names[..1].to_vec(),
        Renew::New => Vec::new(),
    };
    let (certificate, job) = store
        .request_certificate(ctx, account, &names, &renewed)
        .await?;
    if job.joined {
        // A run still going either sees this request when it records its outcome (and looks
        // again at once) or recorded it just before: then it goes to wait for its backoff
        // unaware, and is brought forward once it has (seen in a loaded CI run: the request
        // was lost for five minutes). Runs end within moments of recording.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match store.job(job.id).await?.state.as_str() {
                "scheduled" => {
                    store.retry_job(job.id).await?;
                    break;
                }
                "running" if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                _ => break,
            }
        }
    }
    Ok((certificate, job.id))
}

/// Forgets the account's certificate request: drover stops asking, and a job waiting to ask
/// is cancelled. A certificate the server installed stays there (and is renewed by it).
pub async fn forget_certificate(
    store: &dyn Store,
    ctx: &RequestContext,
    account: AccountId,
) -> Result<()> {
    let record = store.account(account).await?;
    // The waiting job first: a request after the record's deletion gets a job of its own.
    // A running one is cancelled too: it may have recorded a failure and be about to wait
    // minutes before asking again, and the queue ends it as cancelled instead of waiting.
    let waiting = JobFilter {
        states: vec![
            JobState::Scheduled,
            JobState::Available,
            JobState::Retryable,
            JobState::Running,
        ],
        account_id: Some(account),
        limit: None,
    };
    for job in store.jobs(waiting).await? {
        if job.kind == RequestCertificate::KIND {
            // One that ended meanwhile is left as it ended; one that starts after this finds
            // no request and ends by itself.
            if let Err(e) = store.cancel_job(job.id).await {
                tracing::debug!(job = %job.id, error = %e, "certificate job not cancelled");
            }
        }
    }
    if !store.forget_certificate(ctx, account).await? {
        return Err(none_asked(&record).into());
    }
    Ok(())
}

/// The account's certificate; refused, naming its domain, when none was asked for.
pub async fn certificate(store: &dyn Store, account: AccountId) -> Result<Certificate> {
    let record = store.account(account).await?;
    match store.certificate(account).await? {
        Some(certificate) => Ok(certificate),
        None => Err(none_asked(&record).into()),
    }
}

/// The account's names a certificate request covers: its domain, then its sub-servers.
async fn names_of(store: &dyn Store, account: AccountId) -> drover_store::Result<Vec<DomainName>> {
    let record = store.account(account).await?;
    let subservers: Vec<DomainName> = store
        .other_domains(account, OtherDomainKind::Subserver)
        .await?
        .into_iter()
        .filter(|d| !d.deleting)
        .map(|d| d.domain)
        .collect();
    Ok(certificate_names(&record.domain, &subservers))
}

fn none_asked(record: &drover_store::Account) -> drover_store::StoreError {
    drover_store::StoreError::NotFound {
        what: "a certificate request for",
        id: record.domain_unicode.clone(),
    }
}
