//! What to do on a server to make one account match its record: a pure function, so lifecycle
//! changes, drift repair, rebuilds and migrations all decide the same way, and running it
//! again after success asks for nothing.

use serde::Serialize;

use crate::{DesiredState, DomainName, UnixUsername};

/// The account as drover's record says it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub domain: DomainName,
    pub unix_user: UnixUsername,
    pub state: DesiredState,
    /// The Virtualmin plan the account must carry.
    pub plan: String,
    pub suspend_reason: Option<String>,
    /// Deletion is refused while this is on.
    pub protected: bool,
}

/// The domain as the server showed it; `None` when the server said it does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub unix_user: Option<String>,
    pub disabled: bool,
    pub plan: Option<String>,
}

/// One change to make on the server, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Create,
    Enable,
    Disable { reason: Option<String> },
    ApplyPlan { plan: String },
    Delete,
}

/// Why converging cannot go on without a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Blocked {
    #[error(
        "{domain} exists on the server but belongs to unix user '{found}', not to this account's \
         '{expected}': it is someone else's domain, so drover will not touch it"
    )]
    NotOurs {
        domain: DomainName,
        expected: UnixUsername,
        found: String,
    },
    #[error(
        "{domain} is protected from deletion: lift the protection (repeating the domain name) \
         before the account can be deleted"
    )]
    Protected { domain: DomainName },
}

/// The actions that make the server match `wanted`, given what was `observed`.
pub fn converge(wanted: &Wanted, observed: Option<&Observed>) -> Result<Vec<Action>, Blocked> {
    let Some(observed) = observed else {
        return Ok(match wanted.state {
            DesiredState::Absent => Vec::new(),
            DesiredState::Enabled => vec![Action::Create],
            DesiredState::Disabled => vec![
                Action::Create,
                Action::Disable {
                    reason: wanted.suspend_reason.clone(),
                },
            ],
        });
    };
    let ours = observed.unix_user.as_deref() == Some(wanted.unix_user.as_str());
    if !ours {
        // A domain someone else holds is left alone; an absent account has nothing to do.
        return match wanted.state {
            DesiredState::Absent => Ok(Vec::new()),
            _ => Err(Blocked::NotOurs {
                domain: wanted.domain.clone(),
                expected: wanted.unix_user.clone(),
                found: observed
                    .unix_user
                    .clone()
                    .unwrap_or_else(|| "(none)".into()),
            }),
        };
    }
    let mut actions = Vec::new();
    match wanted.state {
        DesiredState::Absent if wanted.protected => {
            return Err(Blocked::Protected {
                domain: wanted.domain.clone(),
            });
        }
        DesiredState::Absent => return Ok(vec![Action::Delete]),
        DesiredState::Enabled if observed.disabled => actions.push(Action::Enable),
        DesiredState::Disabled if !observed.disabled => actions.push(Action::Disable {
            reason: wanted.suspend_reason.clone(),
        }),
        DesiredState::Enabled | DesiredState::Disabled => {}
    }
    if observed.plan.as_deref() != Some(wanted.plan.as_str()) {
        actions.push(Action::ApplyPlan {
            plan: wanted.plan.clone(),
        });
    }
    Ok(actions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(state: DesiredState, protected: bool) -> Wanted {
        Wanted {
            domain: DomainName::parse("example.ro").unwrap(),
            unix_user: UnixUsername::parse("example").unwrap(),
            state,
            plan: "Web".into(),
            suspend_reason: Some("unpaid".into()),
            protected,
        }
    }

    fn observed(user: &str, disabled: bool, plan: &str) -> Observed {
        Observed {
            unix_user: Some(user.into()),
            disabled,
            plan: Some(plan.into()),
        }
    }

    /// Every combination of wanted state, protection, presence, ownership, enabled state and
    /// plan, against the rule each must follow.
    #[test]
    fn every_combination_is_decided() {
        use DesiredState::*;
        for state in [Enabled, Disabled, Absent] {
            for protected in [false, true] {
                let w = wanted(state, protected);
                let absent = converge(&w, None).unwrap();
                let expected_absent = match state {
                    Absent => vec![],
                    Enabled => vec![Action::Create],
                    Disabled => vec![
                        Action::Create,
                        Action::Disable {
                            reason: Some("unpaid".into()),
                        },
                    ],
                };
                assert_eq!(absent, expected_absent, "{state} absent");
                for user in ["example", "someone"] {
                    for disabled in [false, true] {
                        for plan in ["Web", "Other"] {
                            let o = observed(user, disabled, plan);
                            let result = converge(&w, Some(&o));
                            let case = format!(
                                "{state} protected={protected} user={user} disabled={disabled} plan={plan}"
                            );
                            if user != "example" {
                                match state {
                                    Absent => assert_eq!(result, Ok(vec![]), "{case}"),
                                    _ => assert!(
                                        matches!(result, Err(Blocked::NotOurs { .. })),
                                        "{case}"
                                    ),
                                }
                                continue;
                            }
                            let mut expected = match (state, disabled) {
                                (Absent, _) if protected => {
                                    assert!(
                                        matches!(result, Err(Blocked::Protected { .. })),
                                        "{case}"
                                    );
                                    continue;
                                }
                                (Absent, _) => {
                                    assert_eq!(result, Ok(vec![Action::Delete]), "{case}");
                                    continue;
                                }
                                (Enabled, true) => vec![Action::Enable],
                                (Disabled, false) => vec![Action::Disable {
                                    reason: Some("unpaid".into()),
                                }],
                                _ => vec![],
                            };
                            if plan != "Web" {
                                expected.push(Action::ApplyPlan { plan: "Web".into() });
                            }
                            assert_eq!(result, Ok(expected), "{case}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn converging_twice_asks_for_nothing_the_second_time() {
        for state in [DesiredState::Enabled, DesiredState::Disabled] {
            let w = wanted(state, true);
            let after = observed("example", state == DesiredState::Disabled, "Web");
            assert_eq!(converge(&w, Some(&after)), Ok(vec![]), "{state}");
        }
        assert_eq!(
            converge(&wanted(DesiredState::Absent, false), None),
            Ok(vec![])
        );
    }

    #[test]
    fn refusals_explain_themselves() {
        let err = converge(
            &wanted(DesiredState::Enabled, false),
            Some(&observed("other", false, "Web")),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("belongs to unix user 'other'"),
            "{err}"
        );
        let err = converge(
            &wanted(DesiredState::Absent, true),
            Some(&observed("example", false, "Web")),
        )
        .unwrap_err();
        assert!(err.to_string().contains("protected from deletion"), "{err}");
    }
}
