//! Moving an account between servers (a migration, a drain's move, a failover's recreation):
//! the states a move passes through and what its job does next in each.

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{AccountId, DesiredState, Error, ServerId, ServerState};

/// Where a move stands. The order is the order a move passes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MoveState {
    /// Being created on the target.
    Creating,
    /// The account and its DNS point at the target; the source still has its copy.
    Switched,
    /// The source's copy is disabled, kept until confirmed or the grace period ends.
    SourceDisabled,
    Done,
}

/// What a move's job does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveStep {
    /// Create the account on the target (unless there), disable it there if it is disabled,
    /// and point its zone at the target; then [`MoveState::Switched`].
    CreateOnTarget,
    /// The source is lost: there is nothing to disable or delete; then [`MoveState::Done`].
    EndFailover,
    /// Disable the source's copy; then [`MoveState::SourceDisabled`].
    DisableSource,
    /// Delete the source's copy (confirmed, or the grace period ended); then [`MoveState::Done`].
    DeleteSource,
    /// Look again at this time: the grace period runs.
    WaitUntil(Timestamp),
    /// The move is over.
    Nothing,
}

/// How often a waiting move looks again at its grace period (it may be confirmed meanwhile,
/// which enqueues it at once, or its grace shortened).
pub const GRACE_CHECK: SignedDuration = SignedDuration::from_hours(1);

impl MoveState {
    pub const ALL: [Self; 4] = [
        Self::Creating,
        Self::Switched,
        Self::SourceDisabled,
        Self::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Switched => "switched",
            Self::SourceDisabled => "source_disabled",
            Self::Done => "done",
        }
    }

    pub fn parse(input: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == input)
            .ok_or_else(|| {
                Error::invalid(
                    "move state",
                    input,
                    "one of creating, switched, source_disabled, done",
                )
            })
    }

    /// Whether the move still has work (an account under way cannot be moved again).
    pub fn under_way(self) -> bool {
        self != Self::Done
    }

    /// The step a move in this state takes now. `failover`: the source is lost.
    /// `confirmed`: an operator allowed the source's copy to go before its grace ends.
    pub fn next_step(
        self,
        failover: bool,
        confirmed: bool,
        delete_after: Timestamp,
        now: Timestamp,
    ) -> MoveStep {
        match self {
            Self::Creating => MoveStep::CreateOnTarget,
            Self::Switched if failover => MoveStep::EndFailover,
            Self::Switched => MoveStep::DisableSource,
            Self::SourceDisabled if confirmed || now >= delete_after => MoveStep::DeleteSource,
            Self::SourceDisabled => MoveStep::WaitUntil(
                now.checked_add(GRACE_CHECK)
                    .map_or(delete_after, |t| t.min(delete_after)),
            ),
            Self::Done => MoveStep::Nothing,
        }
    }
}

impl MoveStep {
    /// The state a move is in once this step is done; `None` when the step leaves it where it
    /// is (waiting, or nothing left).
    pub fn leads_to(self) -> Option<MoveState> {
        match self {
            Self::CreateOnTarget => Some(MoveState::Switched),
            Self::EndFailover | Self::DeleteSource => Some(MoveState::Done),
            Self::DisableSource => Some(MoveState::SourceDisabled),
            Self::WaitUntil(_) | Self::Nothing => None,
        }
    }
}

/// What decides whether an account may start moving to a server now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveRequest<'a> {
    pub account: AccountId,
    /// Where the account is; `None` before it is first placed.
    pub from: Option<ServerId>,
    pub desired: DesiredState,
    pub has_sealed_password: bool,
    /// A move of the account is under way already.
    pub moving: bool,
    pub to: ServerId,
    pub target_name: &'a str,
    pub target_state: ServerState,
}

/// Why an account cannot start a move (or confirm one) now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoveRefusal {
    #[error("account {account} is on no server yet; it is placed when activated")]
    NotPlaced { account: AccountId },
    #[error(
        "account {account} is not meant to be on a server (its service is pending or terminated)"
    )]
    NotActive { account: AccountId },
    #[error("account {account} is on server {server} already")]
    SameServer {
        account: AccountId,
        server: ServerId,
    },
    #[error("server {name} is {state}; a move needs a healthy or degraded target")]
    TargetUnusable { name: String, state: ServerState },
    #[error(
        "drover holds no sealed password for account {account}, so it cannot recreate it; set one first"
    )]
    NoPassword { account: AccountId },
    #[error("account {account} is being moved already")]
    UnderWay { account: AccountId },
    #[error("account {account} is not being moved")]
    NotMoving { account: AccountId },
}

/// Decides whether the move may start; on yes, the server it leaves.
pub fn check_move(request: &MoveRequest<'_>) -> Result<ServerId, MoveRefusal> {
    let account = request.account;
    let Some(from) = request.from else {
        return Err(MoveRefusal::NotPlaced { account });
    };
    if request.desired == DesiredState::Absent {
        return Err(MoveRefusal::NotActive { account });
    }
    if from == request.to {
        return Err(MoveRefusal::SameServer {
            account,
            server: from,
        });
    }
    if !matches!(
        request.target_state,
        ServerState::Healthy | ServerState::Degraded
    ) {
        return Err(MoveRefusal::TargetUnusable {
            name: request.target_name.to_owned(),
            state: request.target_state,
        });
    }
    if !request.has_sealed_password {
        return Err(MoveRefusal::NoPassword { account });
    }
    if request.moving {
        return Err(MoveRefusal::UnderWay { account });
    }
    Ok(from)
}

/// An account a rebuild recreates on a fresh server, as drover's records hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recreated {
    pub account: crate::AccountId,
    pub domain: String,
    pub state: crate::DesiredState,
    pub has_sealed_password: bool,
    /// Its mailboxes, databases, aliases and sub-servers, each recreated too.
    pub resources: crate::ResourceCounts,
}

/// A rebuild's check and cost: the calls each account needs on the new server, and what
/// stops the rebuild.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildCheck {
    /// Per account recreated (absent ones are left out), in the order given.
    pub steps: Vec<(crate::AccountId, u32)>,
    pub calls: u32,
    /// At `rate_qps` calls a second.
    pub estimated_seconds: f64,
    pub problems: Vec<String>,
}

/// Checks that every account of a lost server can be recreated from drover's records alone
/// (its sealed password is the one thing drover cannot make up), and counts the calls.
pub fn check_rebuild(
    lost: crate::ServerId,
    onto: crate::ServerId,
    accounts: &[Recreated],
    rate_qps: f64,
) -> RebuildCheck {
    let mut check = RebuildCheck {
        steps: Vec::new(),
        calls: 0,
        estimated_seconds: 0.0,
        problems: Vec::new(),
    };
    if lost == onto {
        check
            .problems
            .push("a server cannot be rebuilt onto itself".into());
    }
    for account in accounts
        .iter()
        .filter(|a| a.state != crate::DesiredState::Absent)
    {
        if !account.has_sealed_password {
            check.problems.push(format!(
                "{} (account {}): no sealed password is held, so it cannot be recreated",
                account.domain, account.account
            ));
        }
        // One call to look, one to create, one more to disable a suspended account; per kind
        // of resource it holds, one listing and one call to create each.
        let held = &account.resources;
        let kinds = [
            held.mailboxes,
            held.mysql_databases + held.postgres_databases,
            held.aliases,
            held.subservers,
        ];
        let resources: usize = kinds.iter().filter(|n| **n > 0).map(|n| 1 + n).sum();
        let calls = 2
            + u32::from(account.state == crate::DesiredState::Disabled)
            + u32::try_from(resources).unwrap_or(u32::MAX);
        check.calls += calls;
        check.steps.push((account.account, calls));
    }
    check.estimated_seconds = f64::from(check.calls) / rate_qps.max(0.01);
    check
}

impl fmt::Display for MoveState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn a_move_starts_only_from_a_placed_wanted_account_with_its_password_to_a_usable_server() {
        let ok = MoveRequest {
            account: AccountId(7),
            from: Some(ServerId(1)),
            desired: DesiredState::Disabled,
            has_sealed_password: true,
            moving: false,
            to: ServerId(2),
            target_name: "web2",
            target_state: ServerState::Degraded,
        };
        assert_eq!(check_move(&ok), Ok(ServerId(1)));
        assert_eq!(
            check_move(&MoveRequest {
                target_state: ServerState::Healthy,
                desired: DesiredState::Enabled,
                ..ok.clone()
            }),
            Ok(ServerId(1))
        );
        let account = ok.account;
        let refused = [
            (
                MoveRequest {
                    from: None,
                    ..ok.clone()
                },
                MoveRefusal::NotPlaced { account },
            ),
            (
                MoveRequest {
                    desired: DesiredState::Absent,
                    ..ok.clone()
                },
                MoveRefusal::NotActive { account },
            ),
            (
                MoveRequest {
                    to: ServerId(1),
                    ..ok.clone()
                },
                MoveRefusal::SameServer {
                    account,
                    server: ServerId(1),
                },
            ),
            (
                MoveRequest {
                    has_sealed_password: false,
                    ..ok.clone()
                },
                MoveRefusal::NoPassword { account },
            ),
            (
                MoveRequest {
                    moving: true,
                    ..ok.clone()
                },
                MoveRefusal::UnderWay { account },
            ),
        ];
        for (request, refusal) in refused {
            assert_eq!(check_move(&request), Err(refusal));
        }
        for state in [
            ServerState::Maintenance,
            ServerState::Draining,
            ServerState::Unavailable,
            ServerState::Decommissioned,
        ] {
            assert_eq!(
                check_move(&MoveRequest {
                    target_state: state,
                    ..ok.clone()
                }),
                Err(MoveRefusal::TargetUnusable {
                    name: "web2".into(),
                    state
                })
            );
        }
    }

    #[test]
    fn a_planned_move_creates_switches_disables_then_deletes_after_its_grace() {
        let grace_ends = at(10 * 3600);
        let mut state = MoveState::Creating;
        let mut steps = Vec::new();
        let mut now = at(0);
        while state.under_way() {
            let step = state.next_step(false, false, grace_ends, now);
            steps.push(step);
            match step.leads_to() {
                Some(next) => state = next,
                None => match step {
                    MoveStep::WaitUntil(then) => {
                        assert!(then > now && then <= grace_ends);
                        now = then;
                    }
                    other => panic!("{other:?} left the move where it was"),
                },
            }
        }
        assert_eq!(
            &steps[..2],
            &[MoveStep::CreateOnTarget, MoveStep::DisableSource]
        );
        // One look an hour through ten hours of grace, then the delete.
        assert_eq!(steps.len(), 2 + 10 + 1, "{steps:?}");
        assert_eq!(steps.last(), Some(&MoveStep::DeleteSource));
        assert_eq!(now, grace_ends);
    }

    #[test]
    fn a_confirmed_move_deletes_the_source_at_once_and_the_grace_end_is_inclusive() {
        let grace_ends = at(7200);
        let waiting = MoveState::SourceDisabled;
        assert_eq!(
            waiting.next_step(false, true, grace_ends, at(0)),
            MoveStep::DeleteSource
        );
        assert_eq!(
            waiting.next_step(false, false, grace_ends, grace_ends),
            MoveStep::DeleteSource
        );
        assert_eq!(
            waiting.next_step(false, false, grace_ends, at(7199)),
            MoveStep::WaitUntil(grace_ends),
            "the last look is at the end of the grace, not an hour after"
        );
        assert_eq!(
            waiting.next_step(false, false, grace_ends, at(0)),
            MoveStep::WaitUntil(at(3600))
        );
    }

    #[test]
    fn a_failover_ends_at_the_switch_and_never_touches_the_lost_source() {
        let step = MoveState::Switched.next_step(true, false, at(0), at(0));
        assert_eq!(step, MoveStep::EndFailover);
        assert_eq!(step.leads_to(), Some(MoveState::Done));
        assert_eq!(
            MoveState::Creating.next_step(true, false, at(0), at(0)),
            MoveStep::CreateOnTarget
        );
        assert_eq!(
            MoveState::Done.next_step(true, true, at(0), at(0)),
            MoveStep::Nothing
        );
        assert_eq!(MoveStep::Nothing.leads_to(), None);
    }

    #[test]
    fn a_rebuild_counts_calls_per_account_and_names_what_stops_it() {
        use crate::{AccountId, DesiredState, ServerId};
        let account = |id, state, sealed| Recreated {
            account: AccountId(id),
            domain: format!("a{id}.ro"),
            state,
            has_sealed_password: sealed,
            resources: crate::ResourceCounts::default(),
        };
        let holding = Recreated {
            resources: crate::ResourceCounts {
                mailboxes: 3,
                mysql_databases: 1,
                postgres_databases: 1,
                aliases: 0,
                subservers: 1,
                largest_mailbox_quota_mb: None,
            },
            ..account(5, DesiredState::Enabled, true)
        };
        let accounts = [
            account(1, DesiredState::Enabled, true),
            account(2, DesiredState::Disabled, true),
            account(3, DesiredState::Absent, false),
            holding,
        ];
        let check = check_rebuild(ServerId(1), ServerId(2), &accounts, 5.0);
        // The last: 2 for the domain, 1 + 3 mailboxes, 1 + 2 databases, 1 + 1 sub-server.
        assert_eq!(
            check.steps,
            [(AccountId(1), 2), (AccountId(2), 3), (AccountId(5), 11)]
        );
        assert_eq!(check.calls, 16);
        assert!((check.estimated_seconds - 3.2).abs() < 1e-9);
        assert!(
            check.problems.is_empty(),
            "an absent account is not recreated"
        );
        let unsealed = [account(4, DesiredState::Enabled, false)];
        let check = check_rebuild(ServerId(1), ServerId(1), &unsealed, 0.0);
        assert_eq!(
            check.problems,
            [
                "a server cannot be rebuilt onto itself",
                "a4.ro (account 4): no sealed password is held, so it cannot be recreated",
            ]
        );
        assert!(
            check.estimated_seconds.is_finite(),
            "a rate of 0 is taken as 0.01"
        );
    }

    #[test]
    fn states_are_stored_by_name() {
        for state in MoveState::ALL {
            assert_eq!(MoveState::parse(state.as_str()).unwrap(), state);
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::json!(state.as_str())
            );
        }
        assert!(MoveState::parse("moving").is_err());
        assert_eq!(MoveState::SourceDisabled.to_string(), "source_disabled");
        assert!(MoveState::Switched.under_way() && !MoveState::Done.under_way());
    }
}
