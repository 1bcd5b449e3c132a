//! An account's content (files, mail, databases) carried to the server a move takes it to.
//! A planned move backs the account up on its source to the default destination, when that
//! is an SSH host both servers reach, and restores it on the target; a failover (its source
//! gone) restores the last good backup kept on such a host. drover's records are applied on
//! top afterwards by the move itself.

use drover_core::{
    AccountId, BackupLocation, explained_failure, failure_lines, final_size_bytes, size_shortfall,
};
use drover_store::{BackupOutcome, RequestContext, Server};
use drover_virtualmin::VirtualminClient;
use jiff::Timestamp;
use serde::Serialize;

use super::Engine;
use super::account_job::ConvergeError;
use super::converge::known_features;
use super::ssh_host::archive_login;

/// How the account's content reached the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "content", rename_all = "snake_case")]
pub enum Content {
    /// Backed up on the source just now and restored on the target, checked there.
    Carried {
        backup_id: i64,
        size_bytes: Option<u64>,
    },
    /// Restored from the last good backup (the source is gone): as it was then.
    Restored { backup_id: i64, age_seconds: i64 },
    /// Not carried: the account is made empty on the target, and why.
    NotCarried { why: String },
}

/// Why content that could have been carried was not: the move stays where it is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotMoved(pub String);

/// Carries the account's content from `from` (reachable: a planned move) to `to`: backed up
/// there, restored here (onto what an earlier try left, replacing it), then checked: the
/// domain with the source's unix user and features, every mailbox and database the source
/// holds, every sub-server drover keeps for it, and its disk use within a tenth of the
/// source's (where both servers measure it). When no SSH destination is the default nothing
/// can be carried: the move goes on without content only where the operator allowed it
/// (`without_content`), and stops otherwise. A definite failure stops
/// the move (the account stays where it was, its traffic too); one that may pass (no answer,
/// a network fault) is an error, and the move is tried again later.
pub async fn carry(
    engine: &Engine,
    ctx: &RequestContext,
    account: AccountId,
    from: (&Server, &VirtualminClient),
    to: (&Server, &VirtualminClient),
    without_content: bool,
) -> Result<Result<Content, NotMoved>, ConvergeError> {
    let store = &engine.store;
    let record = store.account(account).await?;
    let domain = record.domain.as_str();
    let stop = |why: String| {
        Ok(Err(NotMoved(format!(
            "{domain}'s content could not be carried from {} to {}: {why}; it stays on {}",
            from.0.spec.name, to.0.spec.name, from.0.spec.name
        ))))
    };
    let destination = match store.default_backup_destination().await? {
        Some(d) if d.spec.location.shared() => d,
        // Nothing carries it (the default changed since the move was asked, if it was not
        // allowed then): empty only with the operator's leave.
        other => {
            let why = match other {
                Some(d) => format!(
                    "the default backup destination {} is on each server's own disk, not an SSH \
                     host both servers reach",
                    d.spec.name
                ),
                None => "no backup destination is the default".to_owned(),
            };
            if without_content {
                return Ok(Ok(not_carried(&why)));
            }
            return stop(format!(
                "{why} (move it without its content, --without-content, to make it empty there)"
            ));
        }
    };
    let archive = destination
        .spec
        .location
        .archive(&record.domain, Timestamp::now());
    let login = match archive_login(&engine.fleet, &destination.spec, &archive).await {
        Ok(login) => login,
        Err(why) => return stop(why),
    };
    // What the source holds, to find on the target afterwards.
    let Some(source) = from.1.get_domain(domain).await? else {
        return stop(format!("{} does not have it", from.0.spec.name));
    };
    let held = held(from.1, domain).await?;
    let started = store
        .start_backup(account, destination.id, from.0.id, &archive.to_string())
        .await?;
    let outcome = match from.1.backup_domain(domain, &archive, login.as_ref()).await {
        Ok(log) => BackupOutcome::Succeeded {
            size_bytes: final_size_bytes(&log),
        },
        Err(e) => {
            let failed = BackupOutcome::Failed {
                log: failure_lines(e.output.as_deref().unwrap_or_default()),
                error: explained_failure(&e.message),
            };
            store.finish_backup(ctx, started.id, &failed).await?;
            if e.program_failed {
                return stop(format!(
                    "its backup on {} failed: {}",
                    from.0.spec.name,
                    explained_failure(&e.message)
                ));
            }
            return Err(e.into());
        }
    };
    let backup = store.finish_backup(ctx, started.id, &outcome).await?;
    let domains = restored_domains(store.as_ref(), account).await?;
    if let Err(e) =
        to.1.restore_domain(&archive, login.as_ref(), &names(&domains))
            .await
    {
        // Not answered, or not reached: it may still run there; the next try restores again.
        if !e.program_failed {
            return Err(e.into());
        }
        return stop(format!(
            "its restore on {} failed: {}",
            to.0.spec.name, e.message
        ));
    }
    let (mut lacks, mut short) = (Vec::new(), Vec::new());
    match to.1.get_domain(domain).await? {
        None => lacks.push("the domain itself".to_owned()),
        Some(restored) => {
            if restored.unix_user != source.unix_user {
                lacks.push("the source's unix user".to_owned());
            }
            let features = known_features(&restored.features);
            lacks.extend(
                known_features(&source.features)
                    .into_iter()
                    .filter(|f| !features.contains(f))
                    .map(|f| format!("the feature {f}")),
            );
            // Files and mail by disk use, where both servers measure it. (Not databases:
            // a database restored from its dump is compacted, and may measure far smaller
            // with nothing missing.)
            let (was, is) = (&source.quota, &restored.quota);
            short.extend(size_shortfall(
                "disk use",
                was.server_byte_quota_used,
                is.server_byte_quota_used,
            ));
            // Sub-servers came in the same archive: each must be there too.
            if domains.len() > 1 {
                let listed = to.1.subservers_of(domain).await?;
                lacks.extend(
                    domains[1..]
                        .iter()
                        .filter(|d| !listed.contains(d))
                        .map(|d| format!("sub-server {d}")),
                );
            }
            let there = self::held(to.1, domain).await?;
            lacks.extend(
                held.mailboxes
                    .iter()
                    .filter(|m| !there.mailboxes.contains(m))
                    .map(|m| format!("mailbox {m}")),
            );
            lacks.extend(
                held.databases
                    .iter()
                    .filter(|d| !there.databases.contains(d))
                    .map(|d| format!("database {d}")),
            );
        }
    }
    let mut found = Vec::new();
    if !lacks.is_empty() {
        found.push(format!("lacks {}", lacks.join(", ")));
    }
    if !short.is_empty() {
        found.push(format!("measures {}", short.join(", ")));
    }
    if !found.is_empty() {
        return stop(format!(
            "after its restore {} {}",
            to.0.spec.name,
            found.join(" and ")
        ));
    }
    Ok(Ok(Content::Carried {
        backup_id: backup.id.get(),
        size_bytes: backup.size_bytes,
    }))
}

/// Restores the account on `to` from its last good backup, when it is kept on an SSH host
/// (the source is gone: that copy is the only one). A failure is reported, not fatal: the
/// account is then made empty, so that it serves again, and can be restored later.
pub async fn restore_last(
    engine: &Engine,
    account: AccountId,
    to: (&Server, &VirtualminClient),
) -> Result<Content, drover_store::StoreError> {
    let Some(backup) = crate::commands::last_good_shared_backup(&*engine.store, account).await?
    else {
        return Ok(not_carried("it has no good backup on an SSH host"));
    };
    Ok(restore(engine, &backup, to)
        .await?
        .unwrap_or_else(|why| not_carried(&why)))
}

/// Restores the account on `to` from `backup` (an operator's restore onto another server):
/// anything that fails stops the move, and the account stays where it is.
pub async fn restore_chosen(
    engine: &Engine,
    backup: drover_core::BackupId,
    to: (&Server, &VirtualminClient),
) -> Result<Result<Content, NotMoved>, drover_store::StoreError> {
    let backup = engine.store.backup(backup).await?;
    let domain = engine.store.account(backup.account_id).await?.domain;
    Ok(restore(engine, &backup, to).await?.map_err(|why| {
        NotMoved(format!(
            "{domain} could not be restored onto {}: {why}; it stays where it is",
            to.0.spec.name
        ))
    }))
}

/// One of the account's backups restored on `to`, if its archive is where `to` can read it.
async fn restore(
    engine: &Engine,
    backup: &drover_store::Backup,
    to: (&Server, &VirtualminClient),
) -> Result<Result<Content, String>, drover_store::StoreError> {
    let store = &engine.store;
    let Ok(archive) = BackupLocation::parse(&backup.archive) else {
        return Ok(Err(format!(
            "backup {}'s archive cannot be read",
            backup.id
        )));
    };
    if !archive.shared() {
        return Ok(Err(format!(
            "backup {} is on its server's own disk, not on an SSH host",
            backup.id
        )));
    }
    let destination = store.backup_destination(backup.destination_id).await?;
    let login = match archive_login(&engine.fleet, &destination.spec, &archive).await {
        Ok(login) => login,
        Err(why) => return Ok(Err(why)),
    };
    let domains = restored_domains(store.as_ref(), backup.account_id).await?;
    if let Err(e) =
        to.1.restore_domain(&archive, login.as_ref(), &names(&domains))
            .await
    {
        return Ok(Err(format!(
            "its restore from backup {} on {} failed: {}",
            backup.id, to.0.spec.name, e.message
        )));
    }
    let taken = backup.finished_at.unwrap_or(backup.started_at);
    Ok(Ok(Content::Restored {
        backup_id: backup.id.get(),
        age_seconds: Timestamp::now().duration_since(taken).as_secs(),
    }))
}

/// The domains a restore of the account brings back: its own, then its sub-servers (a
/// domain's own backup leaves their directories out; the account's backups hold them).
pub(crate) async fn restored_domains(
    store: &dyn drover_store::Store,
    account: AccountId,
) -> Result<Vec<String>, drover_store::StoreError> {
    let mut domains = vec![store.account(account).await?.domain.to_string()];
    let subservers = store
        .other_domains(account, drover_store::OtherDomainKind::Subserver)
        .await?;
    domains.extend(
        subservers
            .into_iter()
            .filter(|d| !d.deleting)
            .map(|d| d.domain.to_string()),
    );
    Ok(domains)
}

pub(crate) fn names(domains: &[String]) -> Vec<&str> {
    domains.iter().map(String::as_str).collect()
}

fn not_carried(why: &str) -> Content {
    Content::NotCarried {
        why: format!("{why}: the account is made empty on its new server"),
    }
}

/// The mailboxes and databases a server holds for a domain, by name.
struct Held {
    mailboxes: Vec<String>,
    databases: Vec<String>,
}

async fn held(
    client: &VirtualminClient,
    domain: &str,
) -> Result<Held, drover_virtualmin::VirtualminError> {
    let mailboxes = client.mailboxes(domain).await?;
    let databases = client.databases(domain).await?;
    Ok(Held {
        mailboxes: mailboxes.into_iter().map(|m| m.user).collect(),
        databases: databases.into_iter().map(|d| d.name).collect(),
    })
}
