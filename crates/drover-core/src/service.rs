//! The billing lifecycle of a service and what it asks of the hosting account.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, ServiceId};

/// Where billing has put a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    Pending,
    Active,
    Suspended,
    Terminated,
}

/// A move billing (or an operator) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    Activate,
    Suspend,
    Unsuspend,
    Terminate,
}

/// What the account on its server must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    /// Exists and serves.
    Enabled,
    /// Exists, disabled (suspended).
    Disabled,
    /// Does not exist on any server.
    Absent,
}

/// Whether the account of a service in `status` may have its `what` (mailboxes, databases…)
/// changed: not once the service is terminated (a pending one's are made when it is
/// activated).
pub fn check_resources_change(
    status: ServiceStatus,
    domain: &crate::DomainName,
    what: &'static str,
) -> Result<(), Error> {
    if status == ServiceStatus::Terminated {
        return Err(Error::AccountDeleted {
            domain: domain.to_unicode(),
            what,
        });
    }
    Ok(())
}

impl ServiceStatus {
    pub const ALL: [Self; 4] = [
        Self::Pending,
        Self::Active,
        Self::Suspended,
        Self::Terminated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Terminated => "terminated",
        }
    }

    pub fn parse(input: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == input)
            .ok_or_else(|| {
                Error::invalid(
                    "service status",
                    input,
                    "one of pending, active, suspended, terminated",
                )
            })
    }

    /// The status after `transition`, or why the move is illegal.
    pub fn apply(self, transition: Transition) -> Result<Self, Error> {
        if transition.allowed_from().contains(&self) {
            Ok(transition.target())
        } else {
            Err(Error::IllegalTransition {
                from: self,
                action: transition,
            })
        }
    }

    /// Whether the plan of service `id` may change now: a terminated service keeps its plan.
    pub fn check_plan_change(self, id: ServiceId) -> Result<(), Error> {
        if self == Self::Terminated {
            return Err(Error::PlanFixed { service: id });
        }
        Ok(())
    }

    /// The suspension reason the account keeps in this status: only a suspended one has one.
    pub fn kept_reason<R>(self, reason: Option<R>) -> Option<R> {
        reason.filter(|_| self.desired_account_state() == DesiredState::Disabled)
    }

    /// What the hosting account must be while the service is in this status.
    pub fn desired_account_state(self) -> DesiredState {
        match self {
            Self::Active => DesiredState::Enabled,
            Self::Suspended => DesiredState::Disabled,
            Self::Pending | Self::Terminated => DesiredState::Absent,
        }
    }
}

impl Transition {
    pub const ALL: [Self; 4] = [
        Self::Activate,
        Self::Suspend,
        Self::Unsuspend,
        Self::Terminate,
    ];

    pub fn verb(self) -> &'static str {
        match self {
            Self::Activate => "activate",
            Self::Suspend => "suspend",
            Self::Unsuspend => "unsuspend",
            Self::Terminate => "terminate",
        }
    }

    pub fn parse(input: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|t| t.verb() == input)
            .ok_or_else(|| {
                Error::invalid(
                    "service action",
                    input,
                    "one of activate, suspend, unsuspend, terminate",
                )
            })
    }

    pub fn allowed_from(self) -> &'static [ServiceStatus] {
        use ServiceStatus::*;
        match self {
            Self::Activate => &[Pending],
            Self::Suspend => &[Active],
            Self::Unsuspend => &[Suspended],
            Self::Terminate => &[Pending, Active, Suspended],
        }
    }

    pub fn target(self) -> ServiceStatus {
        match self {
            Self::Activate | Self::Unsuspend => ServiceStatus::Active,
            Self::Suspend => ServiceStatus::Suspended,
            Self::Terminate => ServiceStatus::Terminated,
        }
    }

    pub(crate) fn allowed_from_text(self) -> String {
        let names: Vec<_> = self.allowed_from().iter().map(|s| s.as_str()).collect();
        names.join(" or ")
    }
}

impl DesiredState {
    /// Whether another converge may end a failure of an account meant to be in this state: not
    /// while protection holds back its deletion (that needs an operator).
    pub fn retry_may_fix(self, protected: bool) -> bool {
        !(self == Self::Absent && protected)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::Absent => "absent",
        }
    }

    pub fn parse(input: &str) -> Result<Self, Error> {
        [Self::Enabled, Self::Disabled, Self::Absent]
            .into_iter()
            .find(|s| s.as_str() == input)
            .ok_or_else(|| {
                Error::invalid("account state", input, "one of enabled, disabled, absent")
            })
    }
}

impl fmt::Display for ServiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verb())
    }
}

impl fmt::Display for DesiredState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ServiceStatus::*;
    use super::Transition::*;
    use super::*;

    #[test]
    fn a_retry_may_fix_any_failure_but_a_protected_deletion() {
        use DesiredState::*;
        for state in [Enabled, Disabled] {
            assert!(state.retry_may_fix(true) && state.retry_may_fix(false));
        }
        assert!(Absent.retry_may_fix(false));
        assert!(!Absent.retry_may_fix(true));
    }

    #[test]
    fn a_terminated_service_keeps_its_plan_and_only_a_suspended_one_its_reason() {
        use ServiceStatus::*;
        for status in [Pending, Active, Suspended] {
            assert_eq!(status.check_plan_change(ServiceId(3)), Ok(()));
        }
        assert_eq!(
            Terminated
                .check_plan_change(ServiceId(3))
                .unwrap_err()
                .to_string(),
            "service 3 is terminated; its plan can no longer change"
        );
        assert_eq!(Suspended.kept_reason(Some("abuse")), Some("abuse"));
        for status in [Pending, Active, Terminated] {
            assert_eq!(status.kept_reason(Some("abuse")), None);
        }
    }

    #[test]
    fn states_and_moves_are_named_as_stored_and_shown() {
        for state in [
            DesiredState::Enabled,
            DesiredState::Disabled,
            DesiredState::Absent,
        ] {
            assert_eq!(DesiredState::parse(state.as_str()).unwrap(), state);
            assert_eq!(state.to_string(), state.as_str());
        }
        assert_eq!(DesiredState::Disabled.as_str(), "disabled");
        assert!(DesiredState::parse("gone").is_err());
        for transition in Transition::ALL {
            assert_eq!(
                Transition::parse(&transition.to_string()).unwrap(),
                transition
            );
        }
        assert_eq!(Terminate.to_string(), "terminate");
    }

    #[test]
    fn every_status_and_transition_pair_is_decided() {
        let legal = [
            (Pending, Activate, Active),
            (Pending, Terminate, Terminated),
            (Active, Suspend, Suspended),
            (Active, Terminate, Terminated),
            (Suspended, Unsuspend, Active),
            (Suspended, Terminate, Terminated),
        ];
        for from in ServiceStatus::ALL {
            for action in Transition::ALL {
                let expected = legal
                    .iter()
                    .find(|(f, a, _)| *f == from && *a == action)
                    .map(|(_, _, to)| *to);
                match (from.apply(action), expected) {
                    (Ok(to), Some(want)) => assert_eq!(to, want, "{from} --{action}-->"),
                    (Err(Error::IllegalTransition { from: f, action: a }), None) => {
                        assert_eq!((f, a), (from, action));
                    }
                    (got, want) => panic!("{from} --{action}--> gave {got:?}, expected {want:?}"),
                }
            }
        }
    }

    #[test]
    fn an_illegal_move_names_both_states() {
        let message = Terminated.apply(Activate).unwrap_err().to_string();
        assert_eq!(
            message,
            "cannot activate a service that is terminated: activate moves a service from pending to active"
        );
        let message = Active.apply(Unsuspend).unwrap_err().to_string();
        assert!(
            message.contains("is active") && message.contains("from suspended"),
            "{message}"
        );
    }

    #[test]
    fn each_status_asks_for_an_account_state() {
        assert_eq!(Pending.desired_account_state(), DesiredState::Absent);
        assert_eq!(Active.desired_account_state(), DesiredState::Enabled);
        assert_eq!(Suspended.desired_account_state(), DesiredState::Disabled);
        assert_eq!(Terminated.desired_account_state(), DesiredState::Absent);
    }

    #[test]
    fn names_round_trip() {
        for s in ServiceStatus::ALL {
            assert_eq!(ServiceStatus::parse(s.as_str()), Ok(s));
        }
        for t in Transition::ALL {
            assert_eq!(Transition::parse(t.verb()), Ok(t));
        }
        assert!(
            ServiceStatus::parse("paused")
                .unwrap_err()
                .to_string()
                .contains("one of")
        );
    }
}
