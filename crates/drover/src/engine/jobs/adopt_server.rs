//! `adopt_server`: a server's domains read as drover's records (customers, plans, accounts) and,
//! when asked, recorded. Nothing is changed on the server.

use std::sync::Arc;

use drover_core::{
    DomainName, Found, FoundDatabase, FoundMailbox, MailboxName, ServerId, Target, propose,
};
use drover_store::{Page, StoreError};
use drover_virtualmin::VirtualminError;
use riverqueue::{Job, WorkContext, WorkOutcome};
use serde_json::json;

use crate::commands::{self, MailboxHashes};
use crate::engine::Engine;
use crate::engine::drift::listed;

#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Command(#[from] commands::Error),
    #[error("server {server} could not be listed, so nothing was adopted: {source}")]
    Listing {
        server: String,
        #[source]
        source: VirtualminError,
    },
    #[error("server {server}: {message}")]
    Unusable { server: String, message: String },
}

/// One listing of the server's domains and one of its plans, then the proposal as the job's
/// output (as data and as text). An apply the proposal refuses (plans drover lacks, or plans
/// the server carries otherwise without the operator's word) is discarded with the reason, as
/// is one the store refuses (a server decommissioned, a domain taken meanwhile).
pub async fn run(
    engine: Arc<Engine>,
    context: WorkContext,
    job: Job<drover_store::jobs::AdoptServer>,
) -> Result<WorkOutcome, AdoptError> {
    let ctx = super::job_context(job.id());
    let server = engine.store.server(ServerId(job.args.server_id)).await?;
    let name = server.spec.name.to_string();
    let client = engine
        .fleet
        .client(&server)
        .map_err(|e| AdoptError::Unusable {
            server: name.clone(),
            message: e.to_string(),
        })?;
    let domains = client
        .list_domains()
        .await
        .map_err(|source| AdoptError::Listing {
            server: name.clone(),
            source,
        })?;
    let listing = |source| AdoptError::Listing {
        server: name.clone(),
        source,
    };
    // Mailboxes in one listing of every domain's users; databases per account where the
    // server counts any.
    let users = match domains.iter().any(|d| d.parent.is_none()) {
        true => client.list_all_users().await.map_err(listing)?,
        false => Vec::new(),
    };
    // Indexed once: a server holds thousands of accounts.
    let mut mailboxes_of: std::collections::BTreeMap<&str, Vec<&drover_virtualmin::DomainUser>> =
        std::collections::BTreeMap::new();
    for user in users.iter().filter(|u| u.is_mailbox()) {
        mailboxes_of
            .entry(user.domain.as_str())
            .or_default()
            .push(user);
    }
    let mut hashes = MailboxHashes::new();
    let mut found = Vec::with_capacity(domains.len());
    for d in domains {
        let mailboxes = mailboxes_of
            .get(d.domain.as_str())
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|u| {
                if let (Ok(domain), Ok(mailbox), Some(hash)) = (
                    DomainName::parse(&u.domain),
                    MailboxName::parse(&u.user),
                    &u.password_hash,
                ) {
                    hashes.insert((domain, mailbox), hash.0.clone());
                }
                FoundMailbox {
                    name: u.user.clone(),
                    real_name: u.real_name.clone(),
                    quota_bytes: u.quota_bytes,
                    has_password_hash: u.password_hash.is_some(),
                    disabled: u.disabled,
                }
            })
            .collect();
        let databases = match d.parent.is_none() && d.quota.databases_count.unwrap_or(0) > 0 {
            true => client
                .databases(&d.domain)
                .await
                .map_err(listing)?
                .into_iter()
                .map(|db| FoundDatabase {
                    name: db.name,
                    kind: db.kind,
                })
                .collect(),
            false => Vec::new(),
        };
        found.push(Found {
            unix_user: d.unix_user.clone(),
            contact_email: d.contact_email.clone(),
            disabled_reason: d.disabled.as_ref().and_then(|why| why.reason.clone()),
            mailboxes,
            databases,
            listed: listed(d),
        });
    }
    let listed_plans = client.list_plans().await.map_err(listing)?;
    let plans = engine
        .store
        .plans(Page::new(None, Some(Page::MAX_LIMIT)))
        .await?;
    let (_, differing) =
        crate::engine::converge::plans_unlike_drovers(&plans, &server, &listed_plans);
    let target = Target {
        name: name.clone(),
        tags: server.spec.tags.clone(),
        differing_plans: differing.into_iter().collect(),
    };
    let known = engine.store.adoption_known().await?;
    let adoption = propose(&target, &found, job.args.mapping.as_deref(), &known);
    let refusal = adoption.refusal(job.args.accept_plan_changes);
    let mut text = adoption.to_string();
    if !job.args.apply {
        if let Some(refusal) = &refusal {
            text.push_str(&format!("\n--apply would be refused: {refusal}"));
        }
        let _ = context.record_output(json!({
            "server": name, "applied": false, "adoption": adoption, "text": text,
        }));
        return Ok(WorkOutcome::Complete);
    }
    let refuse = |refusal: String| {
        let _ = context
            .record_output(json!({ "refused": refusal, "adoption": adoption, "text": text }));
        Ok(WorkOutcome::Discard)
    };
    if let Some(refusal) = refusal {
        return refuse(refusal);
    }
    let adopted = commands::adopt(
        &*engine.store,
        &ctx,
        &engine.sealer,
        server.id,
        &adoption,
        &hashes,
    );
    let accounts = match adopted.await {
        Ok(accounts) => accounts,
        Err(
            e @ (commands::Error::Rule(_) | commands::Error::Store(StoreError::Conflict { .. })),
        ) => return refuse(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    let _ = context.record_output(json!({
        "server": name, "applied": true, "adoption": adoption, "text": text, "accounts": accounts,
    }));
    Ok(WorkOutcome::Complete)
}
