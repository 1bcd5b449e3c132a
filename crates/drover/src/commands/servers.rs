//! The fleet's servers as an operator changes them: maintenance, draining (every account moved
//! elsewhere by placement, each a migration), then retiring the empty server; and failover,
//! which recreates a lost server's accounts elsewhere.

use drover_core::{
    AccountId, DesiredState, Leaving, PlacementPolicy, ServerId, ServerPatch, ServerSpec,
    plan_moves,
};
use drover_store::{RequestContext, Server, Store};
use serde::Serialize;
use serde_json::json;

use super::Result;
use super::moves::{WithoutContent, content_carrier};

/// Records a server (checked whole first); it takes accounts from now on.
pub async fn create_server(
    store: &dyn Store,
    ctx: &RequestContext,
    spec: ServerSpec,
) -> Result<Server> {
    let spec = spec.validated()?;
    let mut tx = store.write().await?;
    let server = tx.insert_server(&spec).await?;
    tx.audit(
        ctx,
        "server.create",
        format!("server:{}", server.id),
        json!({ "server": server.spec }),
    )
    .await?;
    tx.commit().await?;
    Ok(server)
}

/// Changes what drover knows of a server: where it is, how to log in, its capacity and tags.
pub async fn update_server(
    store: &dyn Store,
    ctx: &RequestContext,
    id: ServerId,
    patch: ServerPatch,
) -> Result<Server> {
    let mut tx = store.write().await?;
    let before = tx.server(id).await?;
    let spec = before.spec.clone().patched(patch)?;
    let server = tx.update_server(id, &spec).await?;
    tx.audit(
        ctx,
        "server.update",
        format!("server:{id}"),
        json!({ "before": before.spec, "after": server.spec }),
    )
    .await?;
    tx.commit().await?;
    Ok(server)
}

/// Lets drover try to log in to the server again after it refused a login (an operator's
/// word, or a login that worked); audited when it was refused.
pub async fn allow_login(store: &dyn Store, ctx: &RequestContext, id: ServerId) -> Result<Server> {
    let mut tx = store.write().await?;
    if tx.clear_login_refused(id).await? {
        tx.audit(
            ctx,
            "server.login_allowed",
            format!("server:{id}"),
            json!({}),
        )
        .await?;
    }
    let server = tx.server(id).await?;
    tx.commit().await?;
    Ok(server)
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DrainMove {
    #[schema(value_type = i64)]
    pub account_id: AccountId,
    pub domain: String,
    #[schema(value_type = i64)]
    pub to_server: ServerId,
    pub to_name: String,
}

/// The moves a drain makes (or would make), and the accounts no server can take now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DrainPlan {
    pub server: String,
    pub dry_run: bool,
    pub moves: Vec<DrainMove>,
    /// Accounts with the reason no server can take them (they stay until one can), each as
    /// `[account id, domain, reason]`.
    #[schema(value_type = Vec<Vec<Value>>)]
    pub unplaced: Vec<(AccountId, String, String)>,
    /// Accounts already being moved.
    #[schema(value_type = Vec<i64>)]
    pub under_way: Vec<AccountId>,
    /// What happens to the accounts' files, mail and databases.
    pub content: String,
}

/// Starts emptying the server (it takes no new account from now on) and starts a migration
/// for each account it holds, to where placement puts it, keeping each old copy for `grace`;
/// a dry run only plans. Accounts no server can take now are listed and left. Refused, with
/// nothing changed, when the moves could not carry the accounts' content, unless moving
/// `without` it is allowed.
pub async fn drain(
    store: &dyn Store,
    ctx: &RequestContext,
    placement: &PlacementPolicy,
    id: ServerId,
    grace: std::time::Duration,
    dry_run: bool,
    without: WithoutContent,
) -> Result<DrainPlan> {
    let holds_accounts = crate::engine::accounts_on(store, id)
        .await?
        .iter()
        .any(|a| a.desired_state != DesiredState::Absent);
    if let (Err(why), WithoutContent::Refused, false, true) = (
        content_carrier(store).await?,
        without,
        dry_run,
        holds_accounts,
    ) {
        let server = store.server(id).await?;
        return Err(drover_core::Error::ContentWouldStay {
            what: format!("draining {}", server.spec.name),
            why,
        }
        .into());
    }
    let server = if dry_run {
        store.server(id).await?
    } else {
        change_state(store, ctx, id, "server.drain", |server| {
            server.state.drain(&server.spec.name)
        })
        .await?
    };
    let planned = Planned { grace, without };
    move_all(store, ctx, placement, &server, Some(planned), dry_run).await
}

/// A drain's moves: each old copy kept for `grace`; content carried, or left `without`.
#[derive(Clone, Copy)]
struct Planned {
    grace: std::time::Duration,
    without: WithoutContent,
}

/// Recreates a lost server's accounts elsewhere at once (no grace: the old copies are gone).
pub async fn failover(
    store: &dyn Store,
    ctx: &RequestContext,
    placement: &PlacementPolicy,
    server: &Server,
) -> Result<DrainPlan> {
    let plan = move_all(store, ctx, placement, server, None, false).await?;
    if !plan.moves.is_empty() {
        let event = drover_store::NewEvent {
            event_type: drover_core::EventType::ServerFailoverStarted,
            account: None,
            subject: format!("server:{}", server.id),
            data: json!({
                "server_id": server.id,
                "name": server.spec.name,
                "accounts": plan.moves.len(),
                "unplaced": plan.unplaced.len(),
            }),
        };
        store.record_event(ctx, &event).await?;
    }
    Ok(plan)
}

/// Marks the server as worked on over SSH (`reason`), which lets the break-glass path reach
/// it and makes its accounts' jobs wait; `None` lifts the mark and the jobs carry on.
pub async fn set_break_glass(
    store: &dyn Store,
    ctx: &RequestContext,
    id: ServerId,
    reason: Option<&str>,
) -> Result<Server> {
    let mut tx = store.write().await?;
    let server = tx.server(id).await?;
    let name = server.spec.name.to_string();
    if reason.is_some() && server.spec.ssh.is_none() {
        return Err(drover_core::ServerRefusal::NoSshAccess { name }.into());
    }
    let reason = reason.map(str::trim);
    if reason.is_some_and(str::is_empty) {
        return Err(drover_core::Error::InvalidValue {
            what: "break-glass reason",
            input: String::new(),
            expected: "why the server is worked on over SSH, for the audit log and the other \
                       operators"
                .into(),
        }
        .into());
    }
    tx.update_break_glass(id, reason.map(|r| (r, ctx))).await?;
    let action = match reason {
        Some(_) => "server.break_glass",
        None => "server.break_glass_lifted",
    };
    tx.audit(
        ctx,
        action,
        format!("server:{id}"),
        json!({ "reason": reason }),
    )
    .await?;
    let after = tx.server(id).await?;
    tx.commit().await?;
    Ok(after)
}

/// Retires an empty server for good, once `confirm_name` repeats its name.
pub async fn decommission(
    store: &dyn Store,
    ctx: &RequestContext,
    id: ServerId,
    confirm_name: &str,
) -> Result<Server> {
    let mut tx = store.write().await?;
    let server = tx.server(id).await?;
    server
        .spec
        .name
        .confirm(confirm_name, || format!("retire server {id}"))?;
    let holding = tx.accounts_kept_on(id).await?;
    let state = server.state.decommission(id, &server.spec.name, holding)?;
    tx.update_server_state(id, state).await?;
    finish_state_change(tx, ctx, "server.decommission", &server).await
}

/// Puts the server in maintenance (no health verdicts, no new accounts) or takes it out; its
/// run of health checks starts again either way.
pub async fn set_maintenance(
    store: &dyn Store,
    ctx: &RequestContext,
    id: ServerId,
    on: bool,
) -> Result<Server> {
    let mut tx = store.write().await?;
    let server = tx.server(id).await?;
    let state = server.state.maintenance(&server.spec.name, on)?;
    tx.update_server_state(id, state).await?;
    tx.reset_health_streak(id).await?;
    finish_state_change(tx, ctx, "server.maintenance", &server).await
}

/// Moves the server to the state `decide` gives for it, audited as `action`.
async fn change_state(
    store: &dyn Store,
    ctx: &RequestContext,
    id: ServerId,
    action: &str,
    decide: impl FnOnce(&Server) -> Result<drover_core::ServerState, drover_core::ServerRefusal>,
) -> Result<Server> {
    let mut tx = store.write().await?;
    let server = tx.server(id).await?;
    let state = decide(&server)?;
    tx.update_server_state(id, state).await?;
    finish_state_change(tx, ctx, action, &server).await
}

async fn finish_state_change(
    mut tx: Box<dyn drover_store::Write>,
    ctx: &RequestContext,
    action: &str,
    before: &Server,
) -> Result<Server> {
    let after = tx.server(before.id).await?;
    tx.audit(
        ctx,
        action,
        format!("server:{}", before.id),
        json!({ "from": before.state, "to": after.state }),
    )
    .await?;
    if after.state != before.state {
        let reason = format!("{action} by {}", ctx.actor);
        let event = drover_store::NewEvent::server_state_changed(before, after.state, &[reason]);
        tx.event(ctx, &event).await?;
    }
    tx.commit().await?;
    Ok(after)
}

/// What moves do with the accounts' content, said before they start: a planned move carries
/// it through the default destination when that is an SSH host; a failover restores each
/// account's last good backup kept on one.
async fn content_plan(store: &dyn Store, planned: Option<Planned>) -> Result<String> {
    let Some(planned) = planned else {
        return Ok(
            "restored from each account's last good backup on an SSH host; an account \
                   without one is made empty"
                .to_owned(),
        );
    };
    Ok(match content_carrier(store).await? {
        Ok(name) => format!(
            "carried through the backup destination {name}: each account backed up here, \
             restored on its new server and checked there before its DNS moves"
        ),
        Err(why) if planned.without == WithoutContent::Allowed => format!(
            "not carried: {why}; moved without it, as allowed: the accounts start empty on \
             their new servers"
        ),
        Err(why) => format!(
            "not carried: {why}; a drain is refused unless it may move the accounts without \
             their content (they start empty on their new servers)"
        ),
    })
}

async fn move_all(
    store: &dyn Store,
    ctx: &RequestContext,
    placement: &PlacementPolicy,
    server: &Server,
    planned: Option<Planned>,
    dry_run: bool,
) -> Result<DrainPlan> {
    let accounts: Vec<_> = crate::engine::accounts_on(store, server.id)
        .await?
        .into_iter()
        .filter(|a| a.desired_state != DesiredState::Absent)
        .collect();
    let mut leaving = Vec::with_capacity(accounts.len());
    for account in &accounts {
        let under_way = store
            .migration(account.id)
            .await?
            .is_some_and(|m| m.state.under_way());
        let target = store.converge_target(account.id).await?;
        leaving.push(Leaving {
            account: account.id,
            required_tags: target.plan.spec.required_tags,
            under_way,
        });
    }
    let candidates = store.placement_candidates().await?;
    let decided = plan_moves(server.id, &leaving, &candidates, placement);
    let domain = |id: AccountId| {
        accounts
            .iter()
            .find(|a| a.id == id)
            .map_or_else(String::new, |a| a.domain.to_string())
    };
    let mut plan = DrainPlan {
        server: server.spec.name.to_string(),
        dry_run,
        moves: Vec::new(),
        unplaced: decided
            .unplaced
            .into_iter()
            .map(|(id, reason)| (id, domain(id), reason))
            .collect(),
        under_way: decided.under_way,
        content: content_plan(store, planned).await?,
    };
    for (account, to) in decided.moves {
        if !dry_run {
            match planned {
                Some(Planned { grace, without }) => {
                    super::start_migration(store, ctx, account, to, grace, without).await?
                }
                None => super::start_failover(store, ctx, account, to).await?,
            };
        }
        let to_name = candidates
            .iter()
            .find(|c| c.id == to)
            .map_or_else(String::new, |c| c.name.clone());
        plan.moves.push(DrainMove {
            account_id: account,
            domain: domain(account),
            to_server: to,
            to_name,
        });
    }
    Ok(plan)
}
