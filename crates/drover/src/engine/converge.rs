//! The converge job: observe the account's domain on its server with one call, decide with
//! `drover_core::converge`, apply the smallest set of calls, record what was seen. A change to
//! the account made while the job runs is picked up before it finishes.

use drover_core::{
    AccountId, Action, Blocked, DatabaseAction, DesiredState, DomainAction, DomainName, Feature,
    ListedDatabase, ListedMailbox, MailboxAction, MailboxName, Observed, Wanted, WantedDatabase,
    WantedDomain, WantedMailbox, converge, converge_databases, converge_domains,
    converge_mailboxes, subserver_features,
};
use drover_store::OtherDomainKind::{Alias, Subserver};
use drover_store::{ConvergeTarget, OtherDomain, OtherDomainKind, RequestContext};
use drover_virtualmin::{
    ErrorKind, MailboxPassword, NewDomain, PasswordHash, Placement, ServerPlan, VirtualminClient,
    VirtualminError,
};

use super::Engine;
use super::account_job::{ConvergeError, Round};
use super::seal::new_password;

/// Rounds of re-reading the record before leaving further changes to a follow-up job.
const MAX_ROUNDS: usize = 5;

pub(super) async fn rounds(
    engine: &Engine,
    ctx: &RequestContext,
    account: AccountId,
) -> Result<Round, ConvergeError> {
    let mut all_actions = Vec::new();
    let mut last_actions = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let target = engine.store.converge_target(account).await?;
        let generation = target.account.desired_generation;
        match round(engine, ctx, &target).await? {
            Round::Done { actions, .. } => {
                all_actions.extend(actions.iter().cloned());
                last_actions = actions;
            }
            other => return Ok(other),
        }
        // A change that arrived while this round ran is applied by the next one; a round
        // that changed the server is followed by one that looks again, since a server can
        // report success and leave part of it undone (a feature it dropped).
        let now = engine.store.converge_target(account).await?;
        if now.account.desired_generation == generation && last_actions.is_empty() {
            return Ok(Round::Done {
                generation,
                actions: all_actions,
            });
        }
    }
    if last_actions.is_empty() {
        Ok(Round::Wait(
            "the account kept changing while it was converged; trying again".into(),
        ))
    } else {
        Err(ConvergeError::NotApplied(
            serde_json::to_string(&last_actions).unwrap_or_default(),
        ))
    }
}

async fn round(
    engine: &Engine,
    ctx: &RequestContext,
    target: &ConvergeTarget,
) -> Result<Round, ConvergeError> {
    let account = &target.account;
    if !engine.auto_provisioning {
        return Ok(Round::Wait(
            "automatic provisioning is switched off (VIRTUALMIN_AUTO_PROVISIONING_ENABLED=false)"
                .into(),
        ));
    }
    let server = match (&target.server, account.desired_state) {
        (Some(server), _) => server.clone(),
        (None, DesiredState::Absent) => {
            // Never placed: nothing exists anywhere, its mailboxes and databases neither.
            engine.store.forget_resources(account.id).await?;
            engine
                .store
                .record_observation(account.id, "absent", account.desired_generation)
                .await?;
            return Ok(Round::Done {
                generation: account.desired_generation,
                actions: Vec::new(),
            });
        }
        (None, _) => {
            let placed = engine
                .store
                .place_account(
                    ctx,
                    account.id,
                    &target.plan.spec.required_tags,
                    &engine.placement,
                )
                .await?;
            match placed {
                Ok(server) => server,
                Err(reason) => return Ok(Round::Wait(reason)),
            }
        }
    };
    if matches!(
        server.state,
        drover_core::ServerState::Maintenance | drover_core::ServerState::Decommissioned
    ) {
        return Ok(Round::Wait(format!(
            "server {} is in {}",
            server.spec.name, server.state
        )));
    }
    let client = match engine.fleet.client(&server) {
        Ok(client) => client,
        Err(e) if e.waits => return Ok(Round::Wait(e.to_string())),
        Err(e) => return Ok(Round::Refused(e.to_string())),
    };
    let wanted = Wanted {
        domain: account.domain.clone(),
        unix_user: account.unix_username.clone(),
        state: account.desired_state,
        plan: target.plan.spec.name.to_string(),
        suspend_reason: account.suspend_reason.clone(),
        protected: account.protected_from_deletion,
        features: target.plan.spec.server_features(),
    };
    let observed = observe(&client, account.domain.as_str()).await?;
    let actions = match converge(&wanted, observed.as_ref()) {
        Ok(actions) => actions,
        Err(blocked @ Blocked::NotOurs { .. }) => return Ok(Round::Refused(blocked.to_string())),
        Err(held @ Blocked::Protected { .. }) => return Ok(Round::Held(held.to_string())),
    };
    for action in &actions {
        apply(engine, ctx, &client, target, action).await?;
    }
    if !actions.is_empty() {
        // Recorded only once a look at the server shows it matches (the next round).
        return Ok(Round::Done {
            generation: account.desired_generation,
            actions,
        });
    }
    // Its mailboxes and databases, once the domain is as it must be (a deleted domain takes
    // them along).
    if account.desired_state != DesiredState::Absent {
        let changes = resources_on(engine, ctx, &client, target).await?;
        if !changes.is_empty() {
            return Ok(Round::Done {
                generation: account.desired_generation,
                actions: changes,
            });
        }
    }
    // The account's DNS follows where it lives: a zone once it exists on its server, removed
    // (or kept, as configured) once it is deleted.
    match account.desired_state {
        DesiredState::Absent => {
            engine.dns.retire_account_zone(ctx, account.id).await?;
            // The domain took its mailboxes and databases along.
            engine.store.forget_resources(account.id).await?;
        }
        _ => {
            engine
                .dns
                .ensure_account_zone(ctx, account, &server)
                .await?;
            // Its aliases' zones, and its sub-servers' addresses in its own.
            let live = |all: Vec<OtherDomain>| -> Vec<DomainName> {
                all.into_iter()
                    .filter(|d| !d.deleting)
                    .map(|d| d.domain)
                    .collect()
            };
            let aliases = live(engine.store.other_domains(account.id, Alias).await?);
            engine
                .dns
                .ensure_alias_zones(ctx, account, &server, &aliases)
                .await?;
            let subservers = live(engine.store.other_domains(account.id, Subserver).await?);
            engine
                .dns
                .ensure_subserver_records(ctx, account, &server, &subservers)
                .await?;
        }
    }
    let state = match account.desired_state {
        DesiredState::Enabled => "enabled",
        DesiredState::Disabled => "disabled",
        DesiredState::Absent => "absent",
    };
    engine
        .store
        .record_observation(account.id, state, account.desired_generation)
        .await?;
    Ok(Round::Done {
        generation: account.desired_generation,
        actions,
    })
}

/// Makes the account's mailboxes, databases and alias domains on the server of `client` match
/// its records.
pub(super) async fn resources_on(
    engine: &Engine,
    ctx: &RequestContext,
    client: &VirtualminClient,
    target: &ConvergeTarget,
) -> Result<Vec<Action>, ConvergeError> {
    let mut actions: Vec<Action> = mailboxes_on(engine, client, target)
        .await?
        .into_iter()
        .map(Action::Mailbox)
        .collect();
    let databases = databases_on(engine, client, target).await?;
    actions.extend(databases.into_iter().map(Action::Database));
    let aliases = other_domains_on(engine, ctx, client, target, Alias).await?;
    actions.extend(aliases.into_iter().map(Action::Alias));
    let subservers = other_domains_on(engine, ctx, client, target, Subserver).await?;
    actions.extend(subservers.into_iter().map(Action::Subserver));
    Ok(actions)
}

/// Makes the account's alias domains or sub-servers on the server of `client` match its
/// records: one listing of the kind (none when it has no record of it), then one call per
/// difference. One deleted in drover and gone from the server leaves DNS (an alias's zone, a
/// sub-server's records in the account's), then drover forgets it.
async fn other_domains_on(
    engine: &Engine,
    ctx: &RequestContext,
    client: &VirtualminClient,
    target: &ConvergeTarget,
    kind: OtherDomainKind,
) -> Result<Vec<DomainAction>, ConvergeError> {
    let account = &target.account;
    let records = engine.store.other_domains(account.id, kind).await?;
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let listed = listed_of(client, &account.domain, kind).await?;
    let wanted: Vec<WantedDomain> = records
        .iter()
        .map(|d| WantedDomain {
            domain: d.domain.clone(),
            deleting: d.deleting,
        })
        .collect();
    let actions = converge_domains(&wanted, &listed);
    for action in &actions {
        apply_other_domain(client, target, kind, action).await?;
    }
    for gone in records.iter().filter(|d| d.deleting) {
        if !listed.iter().any(|l| l == gone.domain.as_str()) {
            match kind {
                Alias => {
                    let dns = &engine.dns;
                    dns.retire_alias_zone(ctx, account.id, &gone.domain).await?
                }
                Subserver => {
                    let dns = &engine.dns;
                    dns.retire_subserver_records(ctx, account, &gone.domain)
                        .await?
                }
            }
            engine
                .store
                .forget_other_domain(account.id, kind, &gone.domain)
                .await?;
        }
    }
    Ok(actions)
}

/// The domains the server keeps of `kind` under the account's domain: one listing.
async fn listed_of(
    client: &VirtualminClient,
    domain: &DomainName,
    kind: OtherDomainKind,
) -> Result<Vec<String>, VirtualminError> {
    match kind {
        Alias => client.aliases_of(domain.as_str()).await,
        Subserver => client.subservers_of(domain.as_str()).await,
    }
}

async fn apply_other_domain(
    client: &VirtualminClient,
    target: &ConvergeTarget,
    kind: OtherDomainKind,
    action: &DomainAction,
) -> Result<(), ConvergeError> {
    let domain = target.account.domain.as_str();
    match action {
        DomainAction::Create { domain: other } => {
            let made = match kind {
                Alias => {
                    let description = format!("drover alias of {domain}");
                    client
                        .create_alias(other.as_str(), domain, &description)
                        .await
                }
                Subserver => {
                    // Its own web root and website; never a user of its own (`--unix`).
                    let features: Vec<String> = subserver_features(&target.plan.spec)
                        .iter()
                        .map(|f| f.as_str().to_owned())
                        .collect();
                    let description = format!("drover sub-server of {domain}");
                    client
                        .create_subserver(other.as_str(), domain, &features, &description)
                        .await
                }
            };
            match made {
                Ok(()) => {}
                // Made by an earlier try whose answer was lost, or someone else's domain: only
                // one the server lists under this account is ours.
                Err(e) if e.kind == ErrorKind::AlreadyExists => {
                    let listed = listed_of(client, &target.account.domain, kind).await?;
                    if !listed.iter().any(|l| l == other.as_str()) {
                        return Err(VirtualminError::new(
                            e.kind,
                            format!(
                                "{}: {other} is on the server and is not a {} of {domain}",
                                e.message,
                                kind.as_str()
                            ),
                        )
                        .into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        DomainAction::Delete { domain: other } => {
            match client.delete_domain(other.as_str()).await {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Makes the account's mailboxes on the server of `client` match its records: one listing
/// (none when it has no mailbox record), then one call per difference. Mailboxes deleted in
/// drover and gone from the server are forgotten.
async fn mailboxes_on(
    engine: &Engine,
    client: &VirtualminClient,
    target: &ConvergeTarget,
) -> Result<Vec<MailboxAction>, ConvergeError> {
    let account = &target.account;
    let records = engine.store.mailboxes(account.id).await?;
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let domain = account.domain.as_str();
    let listed: Vec<ListedMailbox> = client
        .mailboxes(domain)
        .await?
        .into_iter()
        .map(|u| ListedMailbox {
            name: u.user,
            real_name: u.real_name,
            quota_bytes: u.quota_bytes,
        })
        .collect();
    let plan_quota = target.plan.spec.mailbox_quota_mb;
    let wanted: Vec<WantedMailbox> = records
        .iter()
        .map(|m| WantedMailbox {
            name: m.name.clone(),
            real_name: m.real_name.clone(),
            quota_mb: drover_core::effective_mailbox_quota(m.quota_mb, plan_quota),
            password_pending: m.password_pending,
            deleting: m.deleting,
        })
        .collect();
    let actions = converge_mailboxes(&wanted, &listed);
    for action in &actions {
        apply_mailbox(engine, client, target, action).await?;
    }
    for gone in records.iter().filter(|m| m.deleting) {
        if !listed.iter().any(|l| l.name == gone.name.as_str()) {
            engine.store.forget_mailbox(account.id, &gone.name).await?;
        }
    }
    Ok(actions)
}

async fn apply_mailbox(
    engine: &Engine,
    client: &VirtualminClient,
    target: &ConvergeTarget,
    action: &MailboxAction,
) -> Result<(), ConvergeError> {
    let account = &target.account;
    let domain = account.domain.as_str();
    match action {
        MailboxAction::Create {
            name,
            real_name,
            quota_mb,
        } => {
            let (password, generation) = mailbox_password(engine, target, name).await?;
            let real = Some(real_name.as_str()).filter(|r| !r.is_empty());
            match client
                .create_mailbox(domain, name.as_str(), password, real, *quota_mb)
                .await
            {
                Ok(()) => {
                    engine
                        .store
                        .mailbox_password_set(account.id, name, generation)
                        .await?;
                }
                // Made by an earlier try whose answer was lost: its password stays pending, and
                // the next round sets it. Anything else of that name (a mail alias) is not ours.
                Err(e) if e.kind == ErrorKind::AlreadyExists => {
                    let listed = client.mailboxes(domain).await?;
                    if !listed.iter().any(|u| u.user == name.as_str()) {
                        return Err(VirtualminError::new(
                            e.kind,
                            format!(
                                "{}: {name}@{domain} is a mail alias or another user on the \
                                 server, not a mailbox",
                                e.message
                            ),
                        )
                        .into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        MailboxAction::SetRealName { name, real_name } => {
            client
                .modify_mailbox(domain, name.as_str(), Some(real_name), None)
                .await?;
        }
        MailboxAction::SetQuota { name, quota_mb } => {
            client
                .set_mailbox_quota(domain, name.as_str(), *quota_mb)
                .await?;
        }
        MailboxAction::SetPassword { name } => {
            // Only a password set in drover is pending, and it replaced any adopted hash.
            let (MailboxPassword::Plain(secret), generation) =
                mailbox_password(engine, target, name).await?
            else {
                return Err(VirtualminError::new(
                    ErrorKind::Invalid,
                    format!("mailbox {name}@{domain}: only a hash of its password is kept"),
                )
                .into());
            };
            client
                .modify_mailbox(domain, name.as_str(), None, Some(secret))
                .await?;
            engine
                .store
                .mailbox_password_set(account.id, name, generation)
                .await?;
        }
        MailboxAction::Delete { name } => {
            match client.delete_mailbox(domain, name.as_str()).await {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Makes the account's databases on the server of `client` match its records: one listing
/// (none when it has no database record), then one call per difference. Databases deleted in
/// drover and gone from the server are forgotten.
async fn databases_on(
    engine: &Engine,
    client: &VirtualminClient,
    target: &ConvergeTarget,
) -> Result<Vec<DatabaseAction>, ConvergeError> {
    let account = &target.account;
    let records = engine.store.databases(account.id).await?;
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let domain = account.domain.as_str();
    let listed: Vec<ListedDatabase> = client
        .databases(domain)
        .await?
        .into_iter()
        .map(|d| ListedDatabase {
            name: d.name,
            kind: d.kind,
        })
        .collect();
    let wanted: Vec<WantedDatabase> = records
        .iter()
        .map(|d| WantedDatabase {
            name: d.name.clone(),
            kind: d.kind,
            deleting: d.deleting,
        })
        .collect();
    let actions = converge_databases(&wanted, &listed);
    for action in &actions {
        apply_database(client, domain, action).await?;
    }
    for gone in records.iter().filter(|d| d.deleting) {
        if !listed.iter().any(|l| l.name == gone.name.as_str()) {
            engine.store.forget_database(account.id, &gone.name).await?;
        }
    }
    Ok(actions)
}

async fn apply_database(
    client: &VirtualminClient,
    domain: &str,
    action: &DatabaseAction,
) -> Result<(), ConvergeError> {
    match action {
        DatabaseAction::Create { name, kind } => {
            match client
                .create_database(domain, name.as_str(), kind.as_str())
                .await
            {
                Ok(()) => {}
                // Made by an earlier try whose answer was lost, or another domain's: only a
                // database the domain lists is ours.
                Err(e) if e.kind == ErrorKind::AlreadyExists => {
                    let listed = client.databases(domain).await?;
                    if !listed.iter().any(|d| d.name == name.as_str()) {
                        return Err(VirtualminError::new(
                            e.kind,
                            format!(
                                "{}: database {name} belongs to another domain on the server",
                                e.message
                            ),
                        )
                        .into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        DatabaseAction::Delete { name, kind } => {
            match client
                .delete_database(domain, name.as_str(), kind.as_str())
                .await
            {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// A mailbox's password, opened (in clear, or the hash a server showed when it was adopted),
/// and the generation it is.
async fn mailbox_password(
    engine: &Engine,
    target: &ConvergeTarget,
    name: &MailboxName,
) -> Result<(MailboxPassword, i64), ConvergeError> {
    let account = &target.account;
    let kept = engine.store.mailbox_password(account.id, name).await?;
    let opened = engine.open_sealed(&kept.sealed).await.map_err(|e| {
        VirtualminError::new(
            ErrorKind::Invalid,
            format!("mailbox {name}@{}: {e}", account.domain),
        )
    })?;
    let password = match kept.is_hash {
        true => MailboxPassword::Hashed(PasswordHash(opened)),
        false => MailboxPassword::Plain(opened),
    };
    Ok((password, kept.generation))
}

/// The domain as the server has it: one `list-domains` call.
pub(super) async fn observe(
    client: &VirtualminClient,
    domain: &str,
) -> Result<Option<Observed>, VirtualminError> {
    Ok(client.get_domain(domain).await?.map(|d| Observed {
        unix_user: d.unix_user.clone(),
        disabled: d.is_disabled(),
        plan: d.plan.clone(),
        features: known_features(&d.features),
    }))
}

/// A plan missing on the server since the client checked it (removed by hand): the check is
/// forgotten and the call tried again, which puts the plan back first.
fn plan_gone(client: &VirtualminClient, error: VirtualminError) -> VirtualminError {
    let plan_missing = error.kind == ErrorKind::NotFound
        && (error.message.contains("plan") || error.message.contains("Plan"));
    if !plan_missing {
        return error;
    }
    client.forget_plans();
    VirtualminError::new(
        ErrorKind::Transient,
        format!("{} (the plan is put on the server again)", error.message),
    )
}

/// The features drover knows among those a server lists (plugins and the like are skipped).
pub(crate) fn known_features(listed: &[String]) -> Vec<Feature> {
    listed
        .iter()
        .filter_map(|f| Feature::parse(f).ok())
        .collect()
}

/// drover's plans a server may host (by their tags) that its plans (a `list-plans` listing)
/// lack, and those it carries with other limits or features than drover's, by name.
pub(crate) fn plans_unlike_drovers(
    plans: &[drover_store::Plan],
    server: &drover_store::Server,
    listed: &[drover_virtualmin::Record],
) -> (Vec<String>, Vec<String>) {
    let (mut missing, mut differing) = (Vec::new(), Vec::new());
    let hosted = plans.iter().filter(|p| {
        p.spec
            .required_tags
            .iter()
            .all(|t| server.spec.tags.contains(t))
    });
    for plan in hosted {
        let name = plan.spec.name.to_string();
        match server_plan(&plan.spec).presence(listed) {
            drover_virtualmin::PlanPresence::Missing => missing.push(name),
            drover_virtualmin::PlanPresence::Differs => differing.push(name),
            drover_virtualmin::PlanPresence::Matches => {}
        }
    }
    (missing, differing)
}

/// The plan as drover puts it on its servers: its limits in Virtualmin's units and the
/// features its accounts are created with.
pub(crate) fn server_plan(plan: &drover_core::PlanSpec) -> ServerPlan {
    const MIB: u64 = 1024 * 1024;
    ServerPlan {
        name: plan.name.to_string(),
        quota_blocks: plan.disk_quota_mb.map(|mb| mb * 1024),
        max_mailboxes: plan.max_mailboxes.map(u64::from),
        max_databases: plan.max_databases.map(u64::from),
        max_domains: plan.max_subservers.map(u64::from),
        max_bandwidth_bytes: plan.bandwidth_mb.map(|mb| mb * MIB),
        features: plan
            .server_features()
            .iter()
            .map(ToString::to_string)
            .collect(),
    }
}

/// A domain made anew on a server (a move, a failover, a rebuild) has no certificate there: an
/// account that had one asked for is asked for again, and its job waits for the account's DNS
/// to point at the new server.
pub(super) async fn certify_again(
    engine: &Engine,
    ctx: &RequestContext,
    account: drover_core::AccountId,
) -> Result<(), ConvergeError> {
    if engine.store.certificate(account).await?.is_some() {
        crate::commands::ask_certificate_again(&*engine.store, ctx, account).await?;
    }
    Ok(())
}

/// How many unix user names a create tries when the server keeps names for itself.
const USERNAME_TRIES: usize = 5;

pub(super) async fn apply(
    engine: &Engine,
    ctx: &RequestContext,
    client: &VirtualminClient,
    target: &ConvergeTarget,
    action: &Action,
) -> Result<(), ConvergeError> {
    let account = &target.account;
    let domain = account.domain.as_str();
    match action {
        Action::Create => {
            // The password is kept sealed before the domain exists, so a rebuild can recreate it.
            let password = match &target.sealed_password {
                Some(sealed) => engine.open_sealed(sealed).await.map_err(|e| {
                    VirtualminError::new(ErrorKind::Invalid, format!("account {}: {e}", account.id))
                })?,
                None => {
                    let password = new_password();
                    engine
                        .store
                        .store_sealed_password(
                            account.id,
                            &engine.sealer.seal(&password),
                            engine.sealer.id(),
                        )
                        .await?;
                    password
                }
            };
            let plan = &target.plan.spec;
            // The account is created from the plan's limits: the server must have the plan as
            // drover defines it.
            client.ensure_plan(&server_plan(plan)).await?;
            let mut new = NewDomain {
                domain: domain.to_owned(),
                password,
                unix_user: Some(account.unix_username.to_string()),
                plan: Some(plan.name.to_string()),
                template: plan.template.as_ref().map(ToString::to_string),
                features: plan
                    .server_features()
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                description: Some(format!("drover account {}", account.id)),
                placement: Placement::TopLevel,
                skip_warnings: false,
            };
            let mut username = account.unix_username.clone();
            for tried in 1..=USERNAME_TRIES {
                match client.create_domain(&new).await {
                    Ok(_) => {
                        // A move asks again once it switches the account.
                        let moving = engine.store.migration(account.id).await?.is_some();
                        if !moving {
                            certify_again(engine, ctx, account.id).await?;
                        }
                        return Ok(());
                    }
                    // Created by an earlier try whose answer was lost: the next round looks
                    // again and checks it is ours.
                    Err(e)
                        if e.kind == ErrorKind::AlreadyExists
                            && e.message.contains("already hosting this domain") =>
                    {
                        return Ok(());
                    }
                    // The server keeps that name for itself. Nothing was created, and an
                    // account that exists nowhere else may take another name; a moving one
                    // keeps its name (its source server has it).
                    Err(e)
                        if e.username_taken()
                            && tried < USERNAME_TRIES
                            && engine
                                .store
                                .migration(account.id)
                                .await?
                                .is_none_or(|m| !m.state.under_way()) =>
                    {
                        // An earlier create whose answer was lost may have made the user: if
                        // the domain is there now, the next round checks it is ours.
                        if observe(client, domain).await?.is_some() {
                            return Ok(());
                        }
                        username = engine
                            .store
                            .reassign_username(ctx, account.id, &username)
                            .await?;
                        tracing::info!(%domain, %username, reason = %e.message, "unix user name changed");
                        new.unix_user = Some(username.to_string());
                    }
                    // Anything else that exists (a database of that name) is a refusal.
                    Err(e) => return Err(plan_gone(client, e).into()),
                }
            }
            return Err(VirtualminError::new(
                ErrorKind::Invalid,
                format!("{domain}: the server refused {USERNAME_TRIES} unix user names, the last {username}"),
            )
            .into());
        }
        Action::Enable => client.enable_domain(domain).await?,
        Action::Disable { reason } => client.disable_domain(domain, reason.as_deref()).await?,
        Action::EnableFeatures { features } => {
            let flags: Vec<String> = features.iter().map(ToString::to_string).collect();
            client.enable_features(domain, &flags).await?;
        }
        Action::ApplyPlan { plan } => {
            client.ensure_plan(&server_plan(&target.plan.spec)).await?;
            let change = drover_virtualmin::DomainChange {
                apply_plan: Some(plan.clone()),
                ..Default::default()
            };
            client
                .modify_domain(domain, &change)
                .await
                .map_err(|e| plan_gone(client, e))?;
        }
        Action::Delete => client.delete_domain(domain).await?,
        Action::Mailbox(change) => apply_mailbox(engine, client, target, change).await?,
        Action::Database(change) => apply_database(client, domain, change).await?,
        Action::Alias(change) => apply_other_domain(client, target, Alias, change).await?,
        Action::Subserver(change) => apply_other_domain(client, target, Subserver, change).await?,
    }
    Ok(())
}
