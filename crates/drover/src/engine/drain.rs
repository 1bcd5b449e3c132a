//! Emptying a server: draining moves every account elsewhere by placement (each a migration),
//! then the empty server is retired; failover recreates a lost server's accounts elsewhere.

use drover_core::{AccountId, DesiredState, PlacementPolicy, ServerId, place};
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
    async fn move_all(
        &self,
        ctx: &RequestContext,
        server: &Server,
        grace: Option<std::time::Duration>,
        dry_run: bool,
    ) -> Result<DrainPlan, StoreError> {
        let accounts = super::accounts_on(self.store, server.id).await?;
        let mut candidates: Vec<_> = self
            .store
            .placement_candidates()
            .await?
            .into_iter()
            .filter(|c| c.id != server.id)
            .collect();
        let mut plan = DrainPlan {
            server: server.spec.name.to_string(),
            dry_run,
            moves: Vec::new(),
            unplaced: Vec::new(),
            under_way: Vec::new(),
        };
        for account in accounts
            .iter()
            .filter(|a| a.desired_state != DesiredState::Absent)
        {
            if self
                .store
                .migration(account.id)
                .await?
                .is_some_and(|m| m.state.under_way())
            {
                plan.under_way.push(account.id);
                continue;
            }
            let target = self.store.converge_target(account.id).await?;
            match place(
                &candidates,
                &target.plan.spec.required_tags,
                &self.placement,
            ) {
                Ok(to) => {
                    // Count the move at once, so the next account sees the target's new load.
                    let chosen = candidates.iter_mut().find(|c| c.id == to);
                    let to_name = chosen.as_ref().map_or_else(String::new, |c| c.name.clone());
                    if let Some(c) = chosen {
                        c.accounts += 1;
                    }

                    if !dry_run {
                        match grace {
                            Some(grace) => {
                                self.store
                                    .start_migration(ctx, account.id, to, grace)
                                    .await?
                            }
                            None => self.store.start_failover(ctx, account.id, to).await?,
                        };
                    }
                    plan.moves.push(DrainMove {
                        account_id: account.id,
                        domain: account.domain.to_string(),
                        to_server: to,
                        to_name,
                    });
                }
                Err(reason) => plan
                    .unplaced
                    .push((account.id, account.domain.to_string(), reason)),
            }
        }
        Ok(plan)
    }
}
