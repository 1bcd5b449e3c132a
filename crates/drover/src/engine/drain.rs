//! Emptying a server: draining moves every account elsewhere by placement (each a migration),
//! then the empty server is retired; failover recreates a lost server's accounts elsewhere.

use drover_core::{AccountId, DesiredState, Leaving, PlacementPolicy, ServerId, plan_moves};
use drover_store::{RequestContext, Server, Store, StoreError};
use serde::Serialize;

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
}

/// Plans drains from drover's records alone (placement and migrations): the moves themselves
/// are carried out by the migration jobs, so an API handler may run it.
#[derive(Debug, Clone, Copy)]
pub struct Planner<'a> {
    pub store: &'a dyn Store,
    pub placement: PlacementPolicy,
}

impl Planner<'_> {
    /// Plans (and unless `dry_run`, starts) moving every account off `server`. The server is
    /// marked draining first, so nothing new lands on it.
    pub async fn drain(
        &self,
        ctx: &RequestContext,
        server: &Server,
        grace: std::time::Duration,
        dry_run: bool,
    ) -> Result<DrainPlan, StoreError> {
        if !dry_run {
            self.store.begin_drain(ctx, server.id).await?;
        }
        self.move_all(ctx, server, Some(grace), dry_run).await
    }

    /// Recreates every account of a lost server elsewhere by placement (failover moves:
    /// nothing is asked of the lost server).
    pub async fn failover(
        &self,
        ctx: &RequestContext,
        server: &Server,
    ) -> Result<DrainPlan, StoreError> {
        self.move_all(ctx, server, None, false).await
    }

    /// Moves every account off `server`: migrations with `grace`, failovers without one.
    /// Where each goes is `drover_core::plan_moves`'s decision, from drover's records.
    async fn move_all(
        &self,
        ctx: &RequestContext,
        server: &Server,
        grace: Option<std::time::Duration>,
        dry_run: bool,
    ) -> Result<DrainPlan, StoreError> {
        let accounts: Vec<_> = super::accounts_on(self.store, server.id)
            .await?
            .into_iter()
            .filter(|a| a.desired_state != DesiredState::Absent)
            .collect();
        let mut leaving = Vec::with_capacity(accounts.len());
        for account in &accounts {
            let under_way = self
                .store
                .migration(account.id)
                .await?
                .is_some_and(|m| m.state.under_way());
            let target = self.store.converge_target(account.id).await?;
            leaving.push(Leaving {
                account: account.id,
                required_tags: target.plan.spec.required_tags,
                under_way,
            });
        }
        let candidates = self.store.placement_candidates().await?;
        let decided = plan_moves(server.id, &leaving, &candidates, &self.placement);
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
        };
        for (account, to) in decided.moves {
            if !dry_run {
                match grace {
                    Some(grace) => self.store.start_migration(ctx, account, to, grace).await?,
                    None => self.store.start_failover(ctx, account, to).await?,
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
}
